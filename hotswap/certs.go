package hotswap

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	secureerase "hpiagent/secure-erase"
)

// SignerVerifier returns a CoordinatorConfig.VerifySigner that accepts an
// owner's signer certificate when it is a single X.509 certificate
// (DER) that chains to roots (the cluster CA) for server authentication at
// the time now returns, like the peer certificate the owner's RPC
// listener presents, whose identity (identity, for example pki.Identity
// followed by cluster.PeerName) is the owner's member name, and whose key
// can sign certificates (ed25519 or ECDSA P-256). now defaults to
// time.Now.
func SignerVerifier(roots *x509.CertPool, identity func(*x509.Certificate) (string, error), now func() time.Time) func(owner string, certDER []byte) (crypto.PublicKey, error) {
	if now == nil {
		now = time.Now
	}
	return func(owner string, certDER []byte) (crypto.PublicKey, error) {
		if roots == nil || identity == nil {
			return nil, fmt.Errorf("signer certificate of %s: no cluster CA to check it against", owner)
		}
		if len(certDER) == 0 || len(certDER) > maxSignerCertSize {
			return nil, fmt.Errorf("signer certificate of %s: %d bytes (want 1..%d)", owner, len(certDER), maxSignerCertSize)
		}
		c, err := x509.ParseCertificate(certDER)
		if err != nil {
			return nil, fmt.Errorf("signer certificate of %s: %w", owner, err)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return nil, fmt.Errorf("signer certificate of %s: %w", owner, err)
		}
		id, err := identity(c)
		if err != nil {
			return nil, fmt.Errorf("signer certificate of %s: identity: %w", owner, err)
		}
		if id != owner {
			return nil, fmt.Errorf("signer certificate of %s names %q", owner, truncate(id, 64))
		}
		if err := secureerase.CheckSignerKey(c.PublicKey); err != nil {
			return nil, fmt.Errorf("signer certificate of %s: %w", owner, err)
		}
		return c.PublicKey, nil
	}
}
