package secureerase

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// signedSet returns n certificates signed with key, as the JSON array a
// wipe of a whole plan returns.
func signedSet(t testing.TB, key ed25519.PrivateKey, n int) []byte {
	t.Helper()
	var certs []*Certificate
	for i := range n {
		c := &Certificate{ID: fmt.Sprintf("%032x", i+1), FRU: "{PHYSICAL_SLOT,4}", Node: "n1",
			PerformedBy: Person{Name: "hpiagent on n1"}, Target: fmt.Sprintf("/srv/secret-%d", i),
			Started: time.Unix(1700000000, 0), Completed: time.Unix(1700000100, 0), Outcome: OutcomeSuccess,
			Sanitization: Sanitization{Category: Clear, Method: "Overwrite", Tool: Tool{"hpiagent", "test"},
				VerificationMethod: "full", Verification: Verification{Method: "full", Bytes: 10, Passed: true},
				Attempts: []Attempt{{Method: "overwrite", Result: &Result{Method: "overwrite", Bytes: 10}}}}}
		if err := c.Sign(key); err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	b, err := json.Marshal(certs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerifyCertificates: a set signed by the key verifies; every kind of
// bad input is refused with an error naming the problem and wrapping
// ErrBadCertificates.
func TestVerifyCertificates(t *testing.T) {
	t.Parallel()
	key := testSigner(t)
	other := testSigner(t)
	good := signedSet(t, key, 3)
	// A certificate whose target was changed after signing.
	var tampered []*Certificate
	if err := json.Unmarshal(good, &tampered); err != nil {
		t.Fatal(err)
	}
	tampered[1].Target = "/srv/elsewhere"
	tb, _ := json.Marshal(tampered)
	var unsigned []*Certificate
	_ = json.Unmarshal(good, &unsigned)
	unsigned[0].Signature = nil
	ub, _ := json.Marshal(unsigned)
	var dup []*Certificate
	_ = json.Unmarshal(good, &dup)
	dup = append(dup, dup[0])
	db, _ := json.Marshal(dup)
	var badID []*Certificate
	_ = json.Unmarshal(good, &badID)
	badID[0].ID = "../../etc/passwd"
	bb, _ := json.Marshal(badID)
	big := signedSet(t, key, 40)

	cases := []struct {
		name string
		in   []byte
		pub  any
		want string // "" = accepted
		sig  bool   // the error is ErrBadSignature
	}{
		{"good", good, key.Public(), "", false},
		{"other key", good, other.Public(), "signed by key", true},
		{"tampered", tb, key.Public(), "does not verify", true},
		{"unsigned", ub, key.Public(), "not signed", false},
		{"duplicate", db, key.Public(), "appears twice", false},
		{"malformed ID", bb, key.Public(), "malformed ID", false},
		{"oversize", big, key.Public(), "more than", false},
		{"garbage", []byte("not json at all"), key.Public(), "not a JSON array", false},
		{"object", []byte(`{"id":"x"}`), key.Public(), "not a JSON array", false},
		{"empty array", []byte(`[]`), key.Public(), "0 certificates", false},
		{"null element", []byte(`[null]`), key.Public(), "is null", false},
		{"unknown field", []byte(`[{"id":"00000000000000000000000000000001","evil":1}]`), key.Public(), "unknown field", false},
		{"trailing", append(append([]byte{}, good...), []byte(` []`)...), key.Public(), "trailing", false},
	}
	if len(big) <= MaxCertificatesSize {
		t.Fatalf("the oversize case is only %d bytes", len(big))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := VerifyCertificates(tc.in, tc.pub)
			if tc.want == "" {
				if err != nil || len(certs) != 3 {
					t.Fatalf("VerifyCertificates: %d certificates, %v", len(certs), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrBadCertificates) {
				t.Fatalf("error %v, want one containing %q wrapping ErrBadCertificates", err, tc.want)
			}
			if errors.Is(err, ErrBadSignature) != tc.sig {
				t.Fatalf("error %v: ErrBadSignature %v, want %v", err, !tc.sig, tc.sig)
			}
			if certs != nil {
				t.Fatalf("certificates returned with the error: %d", len(certs))
			}
		})
	}
}

// TestParseSignerKey: ed25519 and ECDSA P-256 keys parse; other curves,
// RSA-sized junk and garbage are refused.
func TestParseSignerKey(t *testing.T) {
	t.Parallel()
	ed := testSigner(t)
	edDER, _ := x509.MarshalPKIXPublicKey(ed.Public())
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p256DER, _ := x509.MarshalPKIXPublicKey(&p256.PublicKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	cases := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"ed25519", edDER, true},
		{"p256", p256DER, true},
		{"p384", p384DER, false},
		{"empty", nil, false},
		{"garbage", []byte("garbage"), false},
		{"too long", make([]byte, MaxSignerKeySize+1), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseSignerKey(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("ParseSignerKey: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadCertificates) {
				t.Fatalf("error %v does not wrap ErrBadCertificates", err)
			}
			if tc.ok {
				id1, _ := keyID(k)
				var pub any = ed.Public()
				if tc.name == "p256" {
					pub = &p256.PublicKey
				}
				id2, _ := keyID(pub)
				if id1 != id2 {
					t.Fatalf("key ID %s after parsing, %s before", id1, id2)
				}
			}
		})
	}
}

// FuzzVerifyCertificates: no input panics; whatever is accepted is a
// non-empty set of signed certificates with unique IDs that all verify.
func FuzzVerifyCertificates(f *testing.F) {
	key := testSigner(f)
	good := signedSet(f, key, 2)
	f.Add(good)
	f.Add(signedSet(f, key, 1))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[null]`))
	f.Add([]byte(`[{"id":"00000000000000000000000000000001","signature":{"algorithm":"ed25519","key_id":"","value":""}}]`))
	f.Add([]byte(`{"id":"x"}`))
	f.Add([]byte("garbage"))
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := VerifyCertificates(b, key.Public())
		if err != nil {
			if !errors.Is(err, ErrBadCertificates) {
				t.Fatalf("error %v does not wrap ErrBadCertificates", err)
			}
			if certs != nil {
				t.Fatal("certificates returned with an error")
			}
			return
		}
		if len(certs) == 0 || len(b) > MaxCertificatesSize {
			t.Fatalf("accepted %d certificates from %d bytes", len(certs), len(b))
		}
		seen := map[string]bool{}
		for _, c := range certs {
			if seen[c.ID] || Verify(c, key.Public()) != nil {
				t.Fatalf("accepted a duplicate or unverifiable certificate %s", c.ID)
			}
			seen[c.ID] = true
		}
		if _, err := DecodeCertificates(b); err != nil {
			t.Fatalf("verified but does not decode: %v", err)
		}
	})
}

// FuzzParseSignerKey: no input panics; an accepted key can verify.
func FuzzParseSignerKey(f *testing.F) {
	ed := testSigner(f)
	edDER, _ := x509.MarshalPKIXPublicKey(ed.Public())
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p256DER, _ := x509.MarshalPKIXPublicKey(&p256.PublicKey)
	f.Add(edDER)
	f.Add(p256DER)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseSignerKey(b)
		if err != nil {
			return
		}
		if err := CheckSignerKey(k); err != nil {
			t.Fatalf("accepted a key CheckSignerKey refuses: %v", err)
		}
	})
}
