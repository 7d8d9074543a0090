package api

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// SetRoles replaces the role map (see Config.Roles), checked as New checks
// it; a map with an error is refused and the running one stays. It takes
// effect from the next request: open connections and event streams stay
// up, and a request already being served finishes under the roles it
// started with. The server keeps its own copy of m.
//
// SetRoles does not write the audit log: the caller (the daemon's
// configuration reload) audits the reload as a whole.
func (s *Server) SetRoles(m map[string][]Role) error {
	if err := validateRoles(m); err != nil {
		return fmt.Errorf("api: set roles: %w", err)
	}
	roles := cloneRoles(m)
	s.roles.Store(&roles)
	s.log.Info("api: role map replaced", "identities", len(roles))
	return nil
}

// SetCertificate replaces the server certificate: TLS handshakes from now
// on present cert; connections already established keep theirs. cert must
// hold a chain whose leaf parses and matches its private key; otherwise it
// is refused and the running certificate stays. The server keeps its own
// copy of cert.
//
// SetCertificate does not write the audit log: the caller audits the
// reload as a whole.
func (s *Server) SetCertificate(cert *tls.Certificate) error {
	leaf, err := checkCertificate(cert)
	if err != nil {
		return fmt.Errorf("api: set certificate: %w", err)
	}
	c := *cert
	c.Certificate = slices.Clone(cert.Certificate)
	c.Leaf = leaf
	s.cert.Store(&c)
	s.log.Info("api: server certificate replaced", "serial", c.Leaf.SerialNumber.String(), "subject", c.Leaf.Subject.String(), "not_after", c.Leaf.NotAfter)
	return nil
}

// checkCertificate checks that cert can serve handshakes and returns its
// parsed leaf.
func checkCertificate(cert *tls.Certificate) (*x509.Certificate, error) {
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, errors.New("no certificate")
	}
	if cert.PrivateKey == nil {
		return nil, errors.New("no private key")
	}
	leaf := cert.Leaf
	if leaf == nil {
		l, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("parse the leaf certificate: %w", err)
		}
		leaf = l
	}
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("the private key cannot sign")
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("the private key does not match the certificate")
	}
	return leaf, nil
}

// cloneRoles copies a role map, so that the caller's later changes do not
// reach the server.
func cloneRoles(m map[string][]Role) map[string][]Role {
	out := make(map[string][]Role, len(m))
	for id, roles := range maps.All(m) {
		out[id] = slices.Clone(roles)
	}
	return out
}
