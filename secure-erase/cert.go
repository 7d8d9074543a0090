package secureerase

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Person is who performed or validated a sanitization (NIST SP 800-88
// Appendix G "Person Performing Sanitization"). For an automatic erase it
// names the node and the agent.
type Person struct {
	Name         string `json:"name"`
	Title        string `json:"title,omitempty"`
	Organization string `json:"organization,omitempty"`
	Location     string `json:"location,omitempty"`
	Contact      string `json:"contact,omitempty"`
}

// Tool is the sanitization tool and its version.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Attempt is one method tried on a target.
type Attempt struct {
	Method       string        `json:"method"`
	Result       *Result       `json:"result,omitempty"`
	Verification *Verification `json:"verification,omitempty"`
	// Error says why the attempt did not succeed ("" when it did).
	Error string `json:"error,omitempty"`
}

// Sanitization is the "Sanitization Details" of Appendix G.
type Sanitization struct {
	// Category is Clear or Purge (empty when nothing succeeded).
	Category Category `json:"category,omitempty"`
	// Method is the Appendix G "Method Used": "Cryptographic Erase",
	// "Block Erase", "Overwrite" or "Other: discard".
	Method string `json:"method,omitempty"`
	// Technique details the method (passes, pattern, regions).
	Technique string `json:"technique,omitempty"`
	Tool      Tool   `json:"tool"`
	// VerificationMethod is "full" or "sampled"; Verification has the
	// outcome.
	VerificationMethod string       `json:"verification_method,omitempty"`
	Verification       Verification `json:"verification"`
	Attempts           []Attempt    `json:"attempts"`
	// PostClassification is the Appendix G post-sanitization
	// classification, when the operator set one.
	PostClassification string `json:"post_classification,omitempty"`
	Notes              string `json:"notes,omitempty"`
}

// Outcome values of a certificate.
const (
	OutcomeSuccess = "success"
	OutcomeFailed  = "failed"
)

// Signature is a certificate's signature.
type Signature struct {
	// Algorithm is "ed25519" or "ecdsa-p256-sha256".
	Algorithm string `json:"algorithm"`
	// KeyID is the hex SHA-256 of the signer's PKIX public key.
	KeyID string `json:"key_id"`
	Value []byte `json:"value"`
}

// Certificate is a record of one sanitization with the fields of NIST SP
// 800-88 Rev. 1 Appendix G (sample certificate of sanitization), signed
// with the node's key.
type Certificate struct {
	ID string `json:"id"`
	// FRU is the entity path of the FRU the media belongs to.
	FRU         string    `json:"fru"`
	Node        string    `json:"node"`
	PerformedBy Person    `json:"performed_by"`
	Media       Media     `json:"media"`
	Target      string    `json:"target"`
	Started     time.Time `json:"started"`
	Completed   time.Time `json:"completed"`
	// Outcome is OutcomeSuccess or OutcomeFailed.
	Outcome      string       `json:"outcome"`
	Error        string       `json:"error,omitempty"`
	Sanitization Sanitization `json:"sanitization"`
	// Destination is the Appendix G "Media Destination" (internal reuse,
	// external reuse, recycling, manufacturer, other), when known.
	Destination string     `json:"destination,omitempty"`
	Signature   *Signature `json:"signature,omitempty"`
}

// ErrBadSignature says a certificate's signature does not verify.
var ErrBadSignature = errors.New("certificate signature does not verify")

func newCertID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("certificate ID: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// signedBytes is the canonical form that is signed: the JSON encoding of
// the certificate without its signature.
func (c *Certificate) signedBytes() ([]byte, error) {
	cp := *c
	cp.Signature = nil
	b, err := json.Marshal(&cp)
	if err != nil {
		return nil, fmt.Errorf("encoding certificate %s: %w", c.ID, err)
	}
	return b, nil
}

func keyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding the public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// Sign signs c with signer, an ed25519 or ECDSA P-256 private key (any
// crypto.Signer with such a public key, an HSM's included). Times are
// stored in UTC so that the encoding is stable.
func (c *Certificate) Sign(signer crypto.Signer) error {
	c.Started, c.Completed = c.Started.UTC().Round(0), c.Completed.UTC().Round(0)
	id, err := keyID(signer.Public())
	if err != nil {
		return fmt.Errorf("signing certificate %s: %w", c.ID, err)
	}
	msg, err := c.signedBytes()
	if err != nil {
		return err
	}
	var sig Signature
	switch pub := signer.Public().(type) {
	case ed25519.PublicKey:
		sig.Algorithm = "ed25519"
		sig.Value, err = signer.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PublicKey:
		if pub.Curve.Params().Name != "P-256" {
			return fmt.Errorf("signing certificate %s: ECDSA curve %s, want P-256", c.ID, pub.Curve.Params().Name)
		}
		sig.Algorithm = "ecdsa-p256-sha256"
		sum := sha256.Sum256(msg)
		sig.Value, err = signer.Sign(rand.Reader, sum[:], crypto.SHA256)
	default:
		return fmt.Errorf("signing certificate %s: key type %T, want ed25519 or ECDSA P-256", c.ID, pub)
	}
	if err != nil {
		return fmt.Errorf("signing certificate %s: %w", c.ID, err)
	}
	sig.KeyID = id
	c.Signature = &sig
	return nil
}

// Verify checks the signature of c against pub (ed25519.PublicKey or
// *ecdsa.PublicKey). Any change to any field after signing makes it fail
// with ErrBadSignature.
func Verify(c *Certificate, pub crypto.PublicKey) error {
	if c == nil || c.Signature == nil {
		return fmt.Errorf("certificate is not signed: %w", ErrBadSignature)
	}
	id, err := keyID(pub)
	if err != nil {
		return fmt.Errorf("verifying certificate %s: %w", c.ID, err)
	}
	if id != c.Signature.KeyID {
		return fmt.Errorf("verifying certificate %s: signed by key %s, not %s: %w", c.ID, c.Signature.KeyID, id, ErrBadSignature)
	}
	msg, err := c.signedBytes()
	if err != nil {
		return err
	}
	ok := false
	switch k := pub.(type) {
	case ed25519.PublicKey:
		ok = c.Signature.Algorithm == "ed25519" && ed25519.Verify(k, msg, c.Signature.Value)
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(msg)
		ok = c.Signature.Algorithm == "ecdsa-p256-sha256" && ecdsa.VerifyASN1(k, sum[:], c.Signature.Value)
	default:
		return fmt.Errorf("verifying certificate %s: key type %T: %w", c.ID, pub, ErrBadSignature)
	}
	if !ok {
		return fmt.Errorf("verifying certificate %s: %w", c.ID, ErrBadSignature)
	}
	return nil
}
