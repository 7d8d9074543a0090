package hotswap

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/cluster"
	"hpiagent/hpi"
	"hpiagent/internal/pki"
	secureerase "hpiagent/secure-erase"
)

// issueCerts returns n certificates of node signed with key, as the JSON
// array a wipe of a whole plan returns.
func issueCerts(t testing.TB, key crypto.Signer, node string, n int) []byte {
	t.Helper()
	b, err := makeCerts(key, node, n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func makeCerts(key crypto.Signer, node string, n int) ([]byte, error) {
	var certs []*secureerase.Certificate
	for i := range n {
		var id [16]byte
		_, _ = rand.Read(id[:])
		c := &secureerase.Certificate{ID: hex.EncodeToString(id[:]), FRU: fruA.Entity, Node: node,
			PerformedBy: secureerase.Person{Name: "hpiagent on " + node}, Target: fmt.Sprintf("/srv/secret-%d", i),
			Started: time.Unix(1800000000, 0), Completed: time.Unix(1800000060, 0), Outcome: secureerase.OutcomeSuccess,
			Sanitization: secureerase.Sanitization{Category: secureerase.Clear, Method: "Overwrite",
				Tool: secureerase.Tool{Name: "hpiagent", Version: "test"}, VerificationMethod: "full",
				Verification: secureerase.Verification{Method: "full", Bytes: 4096, Passed: true},
				Attempts:     []secureerase.Attempt{{Method: "overwrite"}}}}
		if err := c.Sign(key); err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	return json.Marshal(certs)
}

func pkix(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// toWiping applies an extraction of fruA owned by n1 up to its wipe.
func toWiping(a *applier) {
	a.apply(started("x1", KindExtraction, fruA, "n1", "n2"))
	a.apply(ent(TypeHeld, "x1", func(e *Entry) { e.Policy = HoldDeactivationLocked }))
	a.apply(ent(TypePoliciesRevoked, "x1", member("n1")))
	a.apply(ent(TypePoliciesRevoked, "x1", member("n2")))
	a.apply(ent(TypeWipeStarted, "x1"))
}

// TestWipeResultCertificates: a verified wipe's result carries the owner's
// signed certificates into every Machine (and its snapshot); a result whose
// certificates are of the wrong digest, badly signed, oversize, garbage,
// issued by another node or without their key is refused with an error
// saying so, and nothing changes: the workflow is still wiping and holds
// no certificates, and the good result is accepted afterwards.
func TestWipeResultCertificates(t *testing.T) {
	t.Parallel()
	owner, other := newKey(t), newKey(t)
	good := issueCerts(t, owner, "n1", 2)
	ownerKey := pkix(t, owner.Public())
	garbage := []byte(`{"not":"an array"}`)
	notOwner := issueCerts(t, owner, "n2", 1)
	otherSigned := issueCerts(t, other, "n1", 1)
	huge := issueCerts(t, owner, "n1", 60)
	if len(huge) <= secureerase.MaxCertificatesSize {
		t.Fatalf("oversize case is only %d bytes", len(huge))
	}
	result := func(certs, key []byte, digest string) Entry {
		return ent(TypeWipeResult, "x1", func(e *Entry) {
			e.OK, e.Attempt, e.Certificates, e.SignerKey, e.Digest = true, 1, certs, key, digest
		})
	}
	d := func(b []byte) string { return string(DigestOf(b)) }
	cases := []struct {
		name string
		e    Entry
		want string
	}{
		{"wrong digest", result(good, ownerKey, dig("something else")), "not the entry's digest"},
		{"bad signature", result(otherSigned, ownerKey, d(otherSigned)), "signed by key"},
		{"signer key of another", result(good, pkix(t, other.Public()), d(good)), "signed by key"},
		{"oversize", result(huge, ownerKey, d(huge)), "more than"},
		{"garbage JSON", result(garbage, ownerKey, d(garbage)), "not a JSON array"},
		{"not the owner's", result(notOwner, ownerKey, d(notOwner)), "not by the owner"},
		{"no signer key", result(good, nil, d(good)), "without the key"},
		{"signer key garbage", result(good, []byte("junk"), d(good)), "signer key"},
		{"key without certificates", result(nil, ownerKey, d(good)), "without certificates"},
		{"failed wipe with certificates", ent(TypeWipeResult, "x1", func(e *Entry) {
			e.Attempt, e.Reason, e.Certificates, e.SignerKey = 1, "verify failed", good, ownerKey
		}), "only with a verified wipe"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newApplier(t)
			toWiping(a)
			before, _ := a.m.Snapshot()
			// The encoder refuses what the Machine would refuse, except
			// what only the workflow can tell (the owner).
			if _, err := tc.e.Encode(); tc.name != "not the owner's" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Encode: %v, want an error containing %q", err, tc.want)
			}
			raw, _ := json.Marshal(tc.e) // bypass Encode's check
			r := a.m.Apply(a.idx+1, raw).(Result)
			if r.Err == nil || !strings.Contains(r.Err.Error(), tc.want) || r.Accepted {
				t.Fatalf("Apply: %+v (err %v), want refused with %q", r, r.Err, tc.want)
			}
			w, _ := a.m.Workflow("x1")
			if w.Phase != PhaseWiping || w.Certificate != "" || w.Certificates != nil || len(a.m.WipeCertificates()) != 0 {
				t.Fatalf("after a refused result: phase %s, digest %q, %d certificate bytes", w.Phase, w.Certificate, len(w.Certificates))
			}
			after, _ := a.m.Snapshot()
			var sb, sa snapshot
			_ = json.Unmarshal(before, &sb)
			_ = json.Unmarshal(after, &sa)
			sb.LastIndex, sa.LastIndex = 0, 0
			if !jsonEqual(t, sb, sa) {
				t.Fatalf("a refused result changed the state:\n%s\n%s", before, after)
			}
			a.idx++
			if r := a.apply(result(good, ownerKey, d(good))); !r.Accepted || r.Phase != PhaseDeactivating {
				t.Fatalf("the good result after a refused one: %+v", r)
			}
		})
	}

	// The good result: kept with its key, in the snapshot and in a replay.
	a := newApplier(t)
	toWiping(a)
	a.apply(result(good, ownerKey, d(good)))
	check := func(what string, m *Machine) {
		t.Helper()
		wc := m.WipeCertificates()
		if len(wc) != 1 || wc[0].Workflow != "x1" || wc[0].Owner != "n1" || wc[0].Digest != d(good) ||
			!bytes.Equal(wc[0].Certificates, good) || !bytes.Equal(wc[0].SignerKey, ownerKey) {
			t.Fatalf("%s: certificates %+v", what, wc)
		}
		if _, err := secureerase.VerifyCertificates(wc[0].Certificates, owner.Public()); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	check("applied", a.m)
	snap, err := a.m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored := NewMachine()
	if err := restored.Restore(snap); err != nil {
		t.Fatal(err)
	}
	check("restored", restored)
	replayed := NewMachine()
	for i, b := range a.log {
		replayed.Apply(uint64(i+1), b)
	}
	check("replayed", replayed)
	// A snapshot whose certificates do not match the digest is refused.
	bad := bytes.Replace(snap, []byte(d(good)), []byte(dig("x")), 1)
	if err := NewMachine().Restore(bad); err == nil || !strings.Contains(err.Error(), "do not match") {
		t.Fatalf("Restore of a snapshot with mismatched certificates: %v", err)
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// signingWiper issues real signed certificates of node.
type signingWiper struct {
	mu    sync.Mutex
	key   crypto.Signer
	node  string
	count int
}

func (w *signingWiper) Wipe(_ context.Context, _ FRU) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.count++
	return makeCerts(w.key, w.node, 2)
}

// peerIdentity is the daemon's rule: pki.Identity, then the peer name.
func peerIdentity(c *x509.Certificate) (string, error) {
	id, err := pki.Identity(c)
	if err != nil {
		return "", err
	}
	return cluster.PeerName(id)
}

// TestCoordinatorReplicatesCertificates: the owner's wipe reply carries
// its peer certificate; the leader checks it against the cluster CA and
// puts the certificates into the log, and every member holds them (after
// a replay too), verifiable with the owner's peer key. A reply the leader
// cannot check (a key that is not in the signer certificate, the
// certificate of another member or of another CA, certificates naming
// another node) is recorded as a failed wipe with the reason, and no
// member holds its certificates; a reply without a signer certificate is
// recorded by digest only.
func TestCoordinatorReplicatesCertificates(t *testing.T) {
	t.Parallel()
	ca, err := pki.NewCA("hotswap-certs-ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := pki.NewCA("another-ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(c *pki.CA, name string) *pki.Cert {
		pc, err := c.Issue(pki.IssueRequest{Name: name, Kind: pki.KindPeer, Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return pc
	}
	n2, n3, n2Other := issue(ca, "n2"), issue(ca, "n3"), issue(otherCA, "n2")
	stranger := newKey(t)
	cases := []struct {
		name     string
		key      crypto.Signer // signs the owner's certificates
		node     string        // the node the certificates name
		signer   []byte        // the owner's signer certificate
		ok       bool          // the wipe is recorded as verified
		attached bool          // with its certificates
		reason   string
	}{
		{"peer key", n2.Key, "n2", n2.Cert.Raw, true, true, ""},
		{"no signer certificate", n2.Key, "n2", nil, true, false, ""},
		{"key not the certificate's", stranger, "n2", n2.Cert.Raw, false, false, "signed by key"},
		{"certificate of another member", n3.Key, "n2", n3.Cert.Raw, false, false, `names "n3"`},
		{"certificate of another CA", n2Other.Key, "n2", n2Other.Cert.Raw, false, false, "unknown authority"},
		{"certificates naming another node", n2.Key, "n3", n2.Cert.Raw, false, false, "not the owner"},
		{"garbage signer certificate", n2.Key, "n2", []byte("junk"), false, false, "signer certificate"},
	}
	for _, sc := range cases {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			tc := newTestCluster(t, "n1", "n2", "n3")
			tc.verifySigner = SignerVerifier(ca.Pool(), peerIdentity, nil)
			wiper := &signingWiper{key: sc.key, node: sc.node}
			mem, err := NewMember(MemberConfig{Name: "n2", StateDir: t.TempDir(), Hooks: map[string][]Hook{"*": {tc.hooks["n2"]}},
				Wiper: wiper, SignerCertificate: sc.signer, Now: tc.clock.Now, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			tc.peers.set("n2", mem, false)
			tc.hw.set(fruA, hpi.M4, Policy{})
			ctx := context.Background()
			c := tc.coordinator("n1", nil)
			id, err := c.Start(ctx, KindForced, fruA, "alice", "replace blade")
			if err != nil {
				t.Fatal(err)
			}
			m := tc.log.machine("n1")
			tc.drive(ctx, c, func() bool {
				w, _ := m.Workflow(id)
				return !w.Active() || w.Phase == PhaseWipeFailed
			})
			w, _ := m.Workflow(id)
			if !sc.ok {
				if w.Phase != PhaseWipeFailed || !strings.Contains(w.WipeError, sc.reason) || !strings.Contains(w.WipeError, "cannot accept") {
					t.Fatalf("phase %s, wipe error %q; want a failed wipe saying %q", w.Phase, w.WipeError, sc.reason)
				}
				for _, n := range tc.names {
					if wc := tc.log.machine(n).WipeCertificates(); len(wc) != 0 {
						t.Fatalf("%s holds refused certificates: %+v", n, wc)
					}
				}
				return
			}
			if w.Outcome != OutcomeExtracted || w.Certificate == "" {
				t.Fatalf("workflow: %+v", w)
			}
			tc.log.restart("n3") // a fresh Machine replayed from the log
			for _, n := range tc.names {
				wc := tc.log.machine(n).WipeCertificates()
				if !sc.attached {
					if len(wc) != 0 {
						t.Fatalf("%s holds certificates the owner sent no signer for: %+v", n, wc)
					}
					continue
				}
				if len(wc) != 1 || wc[0].Workflow != id || wc[0].Owner != "n2" || string(DigestOf(wc[0].Certificates)) != w.Certificate {
					t.Fatalf("%s: certificates %+v", n, wc)
				}
				certs, err := secureerase.VerifyCertificates(wc[0].Certificates, n2.Cert.PublicKey)
				if err != nil || len(certs) != 2 {
					t.Fatalf("%s: the replicated certificates do not verify with the owner's peer key: %v", n, err)
				}
			}
		})
	}
}

// TestSignerVerifier: the daemon's check of a signer certificate accepts
// the owner's peer certificate of the cluster CA and nothing else.
func TestSignerVerifier(t *testing.T) {
	t.Parallel()
	must := func(c *pki.Cert, err error) *pki.Cert {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ca, err := pki.NewCA("ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("other", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	peer := must(ca.Issue(pki.IssueRequest{Name: "n2", Kind: pki.KindPeer, Validity: time.Hour}))
	client := must(ca.Issue(pki.IssueRequest{Name: "n2", Kind: pki.KindClient, Validity: time.Hour}))
	foreign := must(other.Issue(pki.IssueRequest{Name: "n2", Kind: pki.KindPeer, Validity: time.Hour}))
	cases := []struct {
		name  string
		owner string
		der   []byte
		now   time.Time
		want  string
	}{
		{"peer of the owner", "n2", peer.Cert.Raw, time.Now(), ""},
		{"another owner", "n3", peer.Cert.Raw, time.Now(), `names "n2"`},
		{"client certificate", "n2", client.Cert.Raw, time.Now(), "usage"},
		{"other CA", "n2", foreign.Cert.Raw, time.Now(), "unknown authority"},
		{"expired", "n2", peer.Cert.Raw, time.Now().Add(2 * time.Hour), "expired"},
		{"garbage", "n2", []byte{0x30, 0x03, 0x01, 0x01, 0x00}, time.Now(), "signer certificate"},
		{"empty", "n2", nil, time.Now(), "0 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			v := SignerVerifier(ca.Pool(), peerIdentity, func() time.Time { return now })
			pub, err := v(tc.owner, tc.der)
			if tc.want == "" {
				if err != nil || pub == nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
