package secureerase

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Bounds of a set of certificates handed from the node that wiped a FRU to
// the rest of the cluster (the hot-swap log carries them, so that every
// member can serve them even when that node is gone). A wipe plan names a
// handful of targets and one certificate is about 1–2 KiB of JSON.
const (
	// MaxCertificatesSize bounds the JSON of one set of certificates.
	// 32 KiB: a wipe plan of 15 or more targets fits, and a hostile or
	// buggy node cannot make one log entry much larger than that.
	MaxCertificatesSize = 32 << 10
	// MaxCertificates bounds how many certificates one set holds.
	MaxCertificates = 64
	// MaxSignerKeySize bounds the PKIX encoding of a signer's public key
	// (an ed25519 key is 44 bytes, an ECDSA P-256 key 91).
	MaxSignerKeySize = 256
)

// ErrBadCertificates says a set of certificates was refused: malformed,
// too large, or not signed by the expected key. Nothing of it is kept.
var ErrBadCertificates = errors.New("certificates refused")

// DecodeCertificates decodes a JSON array of certificates (what a wipe of
// a FRU's whole plan issues) strictly: at most MaxCertificatesSize bytes
// and MaxCertificates certificates, at least one, no unknown fields, no
// trailing data, every certificate with a well-formed ID (unique in the
// set) and a signature. It does not verify the signatures (see
// VerifyCertificates). Errors wrap ErrBadCertificates.
func DecodeCertificates(b []byte) ([]*Certificate, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("decoding certificates: %s: %w", fmt.Sprintf(format, a...), ErrBadCertificates)
	}
	if len(b) > MaxCertificatesSize {
		return nil, bad("%d bytes is more than %d", len(b), MaxCertificatesSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var certs []*Certificate
	if err := dec.Decode(&certs); err != nil {
		return nil, bad("not a JSON array of certificates: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, bad("trailing data after the array")
	}
	if len(certs) == 0 || len(certs) > MaxCertificates {
		return nil, bad("%d certificates (want 1..%d)", len(certs), MaxCertificates)
	}
	seen := make(map[string]bool, len(certs))
	for i, c := range certs {
		switch {
		case c == nil:
			return nil, bad("certificate %d is null", i)
		case !certIDPattern.MatchString(c.ID):
			return nil, bad("certificate %d has a malformed ID", i)
		case seen[c.ID]:
			return nil, bad("certificate %s appears twice", c.ID)
		case c.Signature == nil:
			return nil, bad("certificate %s is not signed", c.ID)
		}
		seen[c.ID] = true
	}
	return certs, nil
}

// VerifyCertificates decodes b as DecodeCertificates does and verifies
// every certificate's signature with pub. Errors wrap ErrBadCertificates
// (and ErrBadSignature for a signature that does not verify).
func VerifyCertificates(b []byte, pub crypto.PublicKey) ([]*Certificate, error) {
	certs, err := DecodeCertificates(b)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		if err := Verify(c, pub); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadCertificates, err)
		}
	}
	return certs, nil
}

// ParseSignerKey parses a PKIX (DER) public key that can sign
// certificates: ed25519 or ECDSA P-256, at most MaxSignerKeySize bytes.
// Errors wrap ErrBadCertificates.
func ParseSignerKey(der []byte) (crypto.PublicKey, error) {
	if len(der) == 0 || len(der) > MaxSignerKeySize {
		return nil, fmt.Errorf("signer key of %d bytes (want 1..%d): %w", len(der), MaxSignerKeySize, ErrBadCertificates)
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("signer key: %v: %w", err, ErrBadCertificates)
	}
	if err := CheckSignerKey(k); err != nil {
		return nil, err
	}
	return k, nil
}

// CheckSignerKey reports whether pub can verify certificates (ed25519 or
// ECDSA P-256). Errors wrap ErrBadCertificates.
func CheckSignerKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("signer key: ed25519 key of %d bytes: %w", len(k), ErrBadCertificates)
		}
		return nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("signer key: ECDSA curve %s, want P-256: %w", k.Curve.Params().Name, ErrBadCertificates)
		}
		return nil
	}
	return fmt.Errorf("signer key: %T cannot sign certificates (want ed25519 or ECDSA P-256): %w", pub, ErrBadCertificates)
}

// Has reports whether the store holds a certificate with the given ID.
func (s *Store) Has(id string) bool {
	_, err := s.Load(id)
	return err == nil
}
