// Package pki is a small certificate authority for hpiagent clusters, labs
// and the demo: one cluster CA issues server, client and peer certificates,
// written as PEM files (keys mode 0600), and turned into TLS 1.3-only mutual
// TLS configurations.
//
// # Identity
//
// Every certificate the CA issues names its holder twice: the subject
// common name is the name, and the first URI SAN is
//
//	hpiagent://<kind>/<name>
//
// where kind is server, client or peer and name is 1 to 64 characters of
// letters, digits, '.', '_' and '-'. [Identity] is the one rule the API
// and the cluster use to turn a verified certificate into a principal:
//
//  1. If the certificate has URI SANs with the hpiagent scheme, there must
//     be exactly one, it must parse as hpiagent://<kind>/<name>, and its
//     kind must agree with the certificate's extended key usages (server:
//     serverAuth, client: clientAuth, peer: both). The identity is that
//     URI, e.g. "hpiagent://client/ops1". URI SANs of other schemes are
//     ignored.
//  2. Else the identity is the subject common name, e.g. "ops1", from
//     certificates of other CAs. A common name containing "://" is
//     refused, so that free text in a CN can never pose as a URI identity.
//  3. A certificate with neither has no identity (an error).
//
// Role bindings are therefore written as "hpiagent://client/ops1" for
// certificates of this package. The kind is part of the identity: a peer
// certificate named ops1 is not the client ops1.
//
// Identity does not verify the certificate: call it on a chain the TLS
// stack (or x509.Verify) has verified against the cluster CA.
//
// # Files
//
// [CA.Save] writes ca.crt and ca.key; [Cert.Save] writes <name>.crt and
// <name>.key. Keys are PKCS#8 PEM files of mode 0600, certificates PEM of
// mode 0644. Save never overwrites a file. Loading refuses a key file that
// group or others may access.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Kind says what a certificate is for.
type Kind string

// The kinds of certificates.
const (
	// KindServer authenticates a server (the agent's API): serverAuth.
	KindServer Kind = "server"
	// KindClient authenticates a client (hpictl, a cluster manager): clientAuth.
	KindClient Kind = "client"
	// KindPeer authenticates a cluster member both ways: serverAuth and clientAuth.
	KindPeer Kind = "peer"
)

// ParseKind turns "server", "client" or "peer" into a Kind.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindServer, KindClient, KindPeer:
		return k, nil
	}
	return "", fmt.Errorf("certificate kind %q: want server, client or peer", s)
}

func (k Kind) extKeyUsage() []x509.ExtKeyUsage {
	switch k {
	case KindServer:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case KindClient:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case KindPeer:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	return nil
}

// Scheme is the URI scheme of identities.
const Scheme = "hpiagent"

// Default validities.
const (
	// DefaultCAValidity is used by NewCA for a zero validity: ten years,
	// as a lab CA outlives many leaf certificates.
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
	// DefaultValidity is used by Issue for a zero validity: one year, so a
	// leaked key stops working on its own.
	DefaultValidity = 365 * 24 * time.Hour
	// backdate absorbs clock differences between cluster members.
	backdate = 5 * time.Minute
)

// ValidName reports whether name may be a certificate name: 1 to 64
// letters, digits, '.', '_' or '-', not starting with '.' or '-'.
func ValidName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("certificate name %q: want 1 to 64 characters", name)
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' ||
			(i > 0 && (c == '.' || c == '-'))
		if !ok {
			return fmt.Errorf("certificate name %q: only letters, digits, '.', '_' and '-' (not first) are allowed", name)
		}
	}
	return nil
}

// IdentityURI returns the identity URI of a certificate of kind k named name.
func IdentityURI(k Kind, name string) *url.URL {
	return &url.URL{Scheme: Scheme, Host: string(k), Path: "/" + name}
}

// CA is the cluster certificate authority. Key is nil for a CA loaded
// without its key (enough to verify, not to issue).
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes a self-signed ECDSA P-256 CA named name, valid for validity
// (DefaultCAValidity when zero). It may only sign leaf certificates
// (path length 0).
func NewCA(name string, validity time.Duration) (*CA, error) {
	if err := ValidName(name); err != nil {
		return nil, fmt.Errorf("creating CA: %w", err)
	}
	if validity < 0 {
		return nil, fmt.Errorf("creating CA %s: negative validity %v", name, validity)
	}
	if validity == 0 {
		validity = DefaultCAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("creating CA %s: generating key: %w", name, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("creating CA %s: %w", name, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"hpiagent cluster CA"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating CA %s: signing: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("creating CA %s: parsing: %w", name, err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Pool returns a certificate pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// IssueRequest describes a certificate to issue.
type IssueRequest struct {
	// Name is the holder's name: the subject CN and the identity URI's
	// last part. Required; see ValidName.
	Name string
	// Kind is server, client or peer. Required.
	Kind Kind
	// DNSNames and IPs are the host names and addresses a server or peer
	// certificate is valid for (clients connect to these). Default none;
	// a server certificate without any cannot be verified by a client.
	DNSNames []string
	IPs      []net.IP
	// URIs are extra URI SANs after the identity URI. They may not use the
	// hpiagent scheme. Default none.
	URIs []*url.URL
	// Validity is how long the certificate is valid. Default
	// DefaultValidity; it may not outlast the CA.
	Validity time.Duration
}

// Cert is an issued certificate with its key.
type Cert struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Name returns the certificate's subject common name.
func (c *Cert) Name() string { return c.Cert.Subject.CommonName }

// TLSCertificate returns c for tls.Config.Certificates.
func (c *Cert) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key, Leaf: c.Cert}
}

// Issue signs a new certificate with a fresh ECDSA P-256 key.
func (ca *CA) Issue(req IssueRequest) (*Cert, error) {
	if ca.Key == nil {
		return nil, errors.New("issuing a certificate: the CA was loaded without its key")
	}
	if err := ValidName(req.Name); err != nil {
		return nil, fmt.Errorf("issuing a certificate: %w", err)
	}
	if _, err := ParseKind(string(req.Kind)); err != nil {
		return nil, fmt.Errorf("issuing a certificate for %s: %w", req.Name, err)
	}
	for _, u := range req.URIs {
		if u == nil || strings.EqualFold(u.Scheme, Scheme) {
			return nil, fmt.Errorf("issuing a certificate for %s: extra URI SAN %v: nil or of the %s scheme", req.Name, u, Scheme)
		}
	}
	if req.Validity < 0 {
		return nil, fmt.Errorf("issuing a certificate for %s: negative validity %v", req.Name, req.Validity)
	}
	if req.Validity == 0 {
		req.Validity = DefaultValidity
	}
	now := time.Now()
	notAfter := now.Add(req.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("issuing a certificate for %s: validity %v outlasts the CA (until %s)", req.Name, req.Validity, ca.Cert.NotAfter.Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issuing a certificate for %s: generating key: %w", req.Name, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("issuing a certificate for %s: %w", req.Name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.Name},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           req.Kind.extKeyUsage(),
		BasicConstraintsValid: true,
		DNSNames:              slices.Clone(req.DNSNames),
		IPAddresses:           slices.Clone(req.IPs),
		URIs:                  append([]*url.URL{IdentityURI(req.Kind, req.Name)}, req.URIs...),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issuing a certificate for %s: signing: %w", req.Name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issuing a certificate for %s: parsing: %w", req.Name, err)
	}
	return &Cert{Cert: cert, Key: key}, nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// Identity returns the principal a verified certificate stands for, by the
// rule in the package documentation: its one hpiagent:// URI SAN (whose
// kind must match its extended key usages), else its common name.
func Identity(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", errors.New("no certificate")
	}
	var ours []*url.URL
	for _, u := range cert.URIs {
		if u != nil && strings.EqualFold(u.Scheme, Scheme) {
			ours = append(ours, u)
		}
	}
	switch {
	case len(ours) > 1:
		return "", fmt.Errorf("certificate %q has %d %s:// URI SANs: ambiguous identity", cert.Subject.CommonName, len(ours), Scheme)
	case len(ours) == 1:
		k, name, err := parseIdentityURI(ours[0])
		if err != nil {
			return "", fmt.Errorf("certificate %q: %w", cert.Subject.CommonName, err)
		}
		for _, want := range k.extKeyUsage() {
			if !slices.Contains(cert.ExtKeyUsage, want) && !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny) {
				return "", fmt.Errorf("certificate %q claims kind %s but lacks its extended key usage", cert.Subject.CommonName, k)
			}
		}
		return IdentityURI(k, name).String(), nil
	}
	cn := cert.Subject.CommonName
	if cn == "" {
		return "", errors.New("certificate has neither an hpiagent:// URI SAN nor a common name")
	}
	if strings.Contains(cn, "://") {
		return "", fmt.Errorf("certificate common name %q looks like a URI but the certificate has no matching URI SAN", cn)
	}
	return cn, nil
}

// ParseIdentity splits an identity URI string ("hpiagent://peer/node1")
// into kind and name. It fails for a common-name identity.
func ParseIdentity(id string) (Kind, string, error) {
	u, err := url.Parse(id)
	if err != nil {
		return "", "", fmt.Errorf("identity %q: %w", id, err)
	}
	if !strings.EqualFold(u.Scheme, Scheme) {
		return "", "", fmt.Errorf("identity %q is not an %s:// URI", id, Scheme)
	}
	return parseIdentityURI(u)
}

func parseIdentityURI(u *url.URL) (Kind, string, error) {
	bad := func(why string) (Kind, string, error) {
		return "", "", fmt.Errorf("identity URI %q: %s; want %s://<server|client|peer>/<name>", u.String(), why, Scheme)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.Port() != "" {
		return bad("unexpected user, port, query or fragment")
	}
	k, err := ParseKind(u.Host)
	if err != nil {
		return bad("unknown kind")
	}
	name, ok := strings.CutPrefix(u.Path, "/")
	if !ok || ValidName(name) != nil || u.RawPath != "" {
		return bad("bad name")
	}
	return k, name, nil
}
