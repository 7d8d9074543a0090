package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"hpiagent/api"
	"hpiagent/api/adapt"
	"hpiagent/fencing"
	"hpiagent/hotswap"
	secureerase "hpiagent/secure-erase"
)

// hotswapYAML is clusterYAML with a hotswap section.
const hotswapYAML = clusterYAML + `hotswap:
  device_classes:
    blade:
      - {type: exec, command: [/usr/libexec/hpiagent/cm-hook, --blade]}
      - {type: rule-file, name: firewall, dir: /etc/nftables.d, file: /etc/hpiagent/blade.rules.tmpl, reload: [/usr/sbin/nft, -f, /etc/nftables.conf], timeout: 5s}
  frus:
    - shelf: s1
      ipmb: 0x82
      device_class: blade
      owner: a
      wipe:
        targets:
          - {path: /dev/disk/by-id/ata-DISK1, kind: block-device, serial: S1}
          - {path: /var/lib/blade/keys, kind: directory}
    - {shelf: s1, ipmb: 0x84, fru: 1}
`

func TestHotSwapConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(hotswapYAML))
	if err != nil {
		t.Fatal(err)
	}
	h := c.HotSwap
	if h.StateDir != filepath.Join(DefaultClusterDataDir, "hotswap") || h.CertificatesDir != filepath.Join(DefaultClusterDataDir, "erase-certificates") {
		t.Errorf("state_dir %q certificates_dir %q", h.StateDir, h.CertificatesDir)
	}
	if time.Duration(h.RetryDelay) != DefaultHotSwapRetryDelay || h.MaxAttempts != DefaultHotSwapMaxAttempts || h.LeaveActiveUnlocked {
		t.Errorf("retry_delay %s max_attempts %d leave_active_unlocked %v", time.Duration(h.RetryDelay), h.MaxAttempts, h.LeaveActiveUnlocked)
	}
	hk := h.DeviceClasses["blade"]
	if len(hk) != 2 || hk[0].Name != "blade-0" || time.Duration(hk[0].Timeout) != DefaultHookTimeout || hk[1].Name != "firewall" || time.Duration(hk[1].Timeout) != 5*time.Second {
		t.Errorf("hooks %+v", hk)
	}
	if f := h.FRUs[1]; f.DeviceClass != "*" || f.Owner != "" || f.FRU != 1 || f.IPMB != 0x84 {
		t.Errorf("second FRU %+v", f)
	}
	p := h.FRUs[0].wipePlan("{ADVANCEDTCA_CHASSIS,1}")
	if p == nil || p.FRU != "{ADVANCEDTCA_CHASSIS,1}" || len(p.Targets) != 2 || p.Targets[0].Kind != secureerase.KindBlockDevice || p.Targets[0].Serial != "S1" {
		t.Errorf("wipe plan %+v", p)
	}
	if h.FRUs[1].wipePlan("x") != nil {
		t.Error("a FRU without a wipe section has a plan")
	}
	// Without the section nothing changes.
	c, err = ParseConfig([]byte(clusterYAML))
	if err != nil || c.HotSwap != nil {
		t.Errorf("without hotswap: %v %+v", err, c.HotSwap)
	}
}

func TestHotSwapConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
		want           string
	}{
		{"unknown key", "  device_classes:\n", "  device_clases: {}\n  device_classes:\n", "hotswap.device_clases: unknown key"},
		{"hook type", "{type: exec, command", "{type: shell, command", `hotswap.device_classes["blade"][0].type: "shell"`},
		{"exec without command", "{type: exec, command: [/usr/libexec/hpiagent/cm-hook, --blade]}", "{type: exec}", `[0].command: required`},
		{"exec relative", "command: [/usr/libexec/hpiagent/cm-hook", "command: [cm-hook", "is not an absolute path"},
		{"exec with dir", "{type: exec, command", "{type: exec, dir: /tmp, command", "[0].dir: applies to type rule-file only"},
		{"rule-file without reload", ", reload: [/usr/sbin/nft, -f, /etc/nftables.conf]", "", `[1].reload: required`},
		{"rule-file without file", " file: /etc/hpiagent/blade.rules.tmpl,", "", `[1].file: required`},
		{"rule-file relative dir", "dir: /etc/nftables.d", "dir: nftables.d", `[1].dir: required`},
		{"duplicate hook name", "{type: exec, command", "{type: exec, name: firewall, command", `[1].name: "firewall" is used twice`},
		{"bad class name", "    blade:\n", "    'bl ade':\n", `is not a device class name`},
		{"hook timeout", "timeout: 5s}", "timeout: soon}", "timeout"},
		{"unknown shelf", "    - shelf: s1\n", "    - shelf: s9\n", `hotswap.frus[0].shelf: "s9"`},
		{"odd ipmb", "      ipmb: 0x82\n", "      ipmb: 0x83\n", "hotswap.frus[0].ipmb: 0x83"},
		{"duplicate FRU", "{shelf: s1, ipmb: 0x84, fru: 1}", "{shelf: s1, ipmb: 0x82}", "is also hotswap.frus[0]"},
		{"unknown owner", "      owner: a\n", "      owner: zz\n", `hotswap.frus[0].owner: "zz" is not one of cluster.nodes`},
		{"wipe without owner", "      owner: a\n", "", "hotswap.frus[0].owner: required with a wipe plan"},
		{"wipe without targets", "          - {path: /dev/disk/by-id/ata-DISK1, kind: block-device, serial: S1}\n          - {path: /var/lib/blade/keys, kind: directory}\n", "          []\n", "wipe.targets: required"},
		{"wipe kind", "kind: directory}", "kind: tape}", `wipe.targets[1].kind: "tape"`},
		{"wipe relative", "path: /var/lib/blade/keys", "path: keys", "wipe.targets[1].path: required"},
		{"serial on a directory", "kind: directory}", "kind: directory, serial: X}", "wipe.targets[1].serial: applies to block devices only"},
		{"signing key two sources", "hotswap:\n", "hotswap:\n  signing_key: {credential: k, file: /k}\n", "hotswap.signing_key: set exactly one"},
		{"retry delay short", "hotswap:\n", "hotswap:\n  retry_delay: 1ms\n", "hotswap.retry_delay: 1ms is below"},
		{"max attempts", "hotswap:\n", "hotswap:\n  max_attempts: 1000\n", "hotswap.max_attempts: 1000 is outside"},
		{"relative state dir", "hotswap:\n", "hotswap:\n  state_dir: state\n", "hotswap.state_dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantConfigError(t, hotswapYAML, tc.old, tc.new, tc.want)
		})
	}
}

func TestHotSwapNeedsCluster(t *testing.T) {
	y := "shelves:\n  - {name: s1, address: 192.0.2.1, username: u, password: {credential: p}}\nhotswap:\n  retry_delay: 1s\n"
	_, err := ParseConfig([]byte(y))
	if err == nil || !strings.Contains(err.Error(), "hotswap: needs a cluster section") {
		t.Fatalf("error %v", err)
	}
}

func pemKey(t testing.TB, key any, typ string) []byte {
	t.Helper()
	var der []byte
	var err error
	if typ == "EC PRIVATE KEY" {
		der, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	} else {
		der, err = x509.MarshalPKCS8PrivateKey(key)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParseSigningKey(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	for _, tc := range []struct {
		name string
		in   []byte
		want string // "" for success
	}{
		{"ed25519 pkcs8", pemKey(t, edKey, "PRIVATE KEY"), ""},
		{"p256 pkcs8", pemKey(t, p256, "PRIVATE KEY"), ""},
		{"p256 sec1", pemKey(t, p256, "EC PRIVATE KEY"), ""},
		{"p384", pemKey(t, p384, "PRIVATE KEY"), "P-256"},
		{"rsa", pemKey(t, rsaKey, "PRIVATE KEY"), "cannot sign certificates"},
		{"not pem", []byte("secret-bytes"), "no PEM block"},
		{"certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), "is not a PKCS#8"},
		{"garbage der", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("secret-bytes")}), "does not parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseSigningKey(tc.in)
			if tc.want == "" {
				if err != nil || s == nil {
					t.Fatalf("parseSigningKey: %v", err)
				}
				// The key signs a certificate that verifies.
				c := &secureerase.Certificate{ID: "x", Node: "a", Outcome: secureerase.OutcomeSuccess}
				if err := c.Sign(s); err != nil {
					t.Fatal(err)
				}
				if err := secureerase.Verify(c, s.Public()); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret-bytes") {
				t.Fatalf("error quotes the key: %v", err)
			}
		})
	}
}

func FuzzParseSigningKey(f *testing.F) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add(pemKey(f, edKey, "PRIVATE KEY"))
	f.Add(pemKey(f, p256, "EC PRIVATE KEY"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseSigningKey(b)
		if (s == nil) == (err == nil) {
			t.Fatalf("signer %v and error %v", s, err)
		}
	})
}

// TestPlanWiper wipes a planned file through the Member's Wiper and
// checks the certificates it returns; a FRU without a plan is refused.
func TestPlanWiper(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "key.bin")
	if err := os.WriteFile(target, []byte(strings.Repeat("secret", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	store, err := secureerase.OpenStore(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	er, err := secureerase.New(secureerase.Config{Signer: key, Node: "a", Store: store})
	if err != nil {
		t.Fatal(err)
	}
	fc := HotSwapFRUConfig{Shelf: "s1", IPMB: 0x82, Owner: "a", Wipe: &HotSwapWipeConfig{Targets: []HotSwapWipeTarget{{Path: target, Kind: "file", Methods: []string{"overwrite"}}}}}
	fru := hotswap.FRU{Shelf: "s1", IPMB: 0x82, Entity: "{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,1}"}
	w := &planWiper{eraser: er, plans: map[string]HotSwapFRUConfig{fru.Key(): fc}}
	for _, tc := range []struct {
		name string
		fru  hotswap.FRU
		ok   bool
	}{
		{"unplanned FRU", hotswap.FRU{Shelf: "s1", IPMB: 0x84}, false},
		{"planned FRU", fru, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := w.Wipe(context.Background(), tc.fru)
			if !tc.ok {
				if err == nil {
					t.Fatalf("wiped an unplanned FRU: %s", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var certs []secureerase.Certificate
			if err := json.Unmarshal(b, &certs); err != nil || len(certs) != 1 {
				t.Fatalf("certificates %s: %v", b, err)
			}
			c := certs[0]
			if c.Outcome != secureerase.OutcomeSuccess || c.FRU != fru.Entity {
				t.Fatalf("certificate %+v", c)
			}
			if err := secureerase.Verify(&c, key.Public()); err != nil {
				t.Fatal(err)
			}
			// What the wiper returns is what the cluster log accepts.
			if _, err := secureerase.VerifyCertificates(b, key.Public()); err != nil {
				t.Fatalf("the wiper's certificates (%d bytes) would not go into the log: %v", len(b), err)
			}
			t.Logf("one certificate is %d bytes of JSON", len(b))
			if ids, _ := store.List(); len(ids) != 1 || ids[0] != c.ID {
				t.Fatalf("stored %v, want %s", ids, c.ID)
			}
			if _, err := os.Stat(target); !os.IsNotExist(err) {
				t.Fatalf("target still there: %v", err)
			}
		})
	}
}

func TestFenceVeto(t *testing.T) {
	nodes := map[string]fencing.NodeHardware{
		"a": {Shelf: "s1", IPMB: 0x82},
		"b": {Shelf: "s1", IPMB: 0x84, FRU: 1},
	}
	phases := map[string]fencing.Phase{"a": fencing.PhaseFenced, "b": fencing.PhaseIdle}
	veto := fenceVeto(nodes, func(n string) (fencing.TargetState, bool) {
		p, ok := phases[n]
		return fencing.TargetState{Target: n, Phase: p}, ok
	})
	for _, tc := range []struct {
		name string
		kind hotswap.Kind
		fru  hotswap.FRU
		veto bool
	}{
		{"fenced node's blade", hotswap.KindInsertion, hotswap.FRU{Shelf: "s1", IPMB: 0x82}, true},
		{"fenced blade, extraction", hotswap.KindExtraction, hotswap.FRU{Shelf: "s1", IPMB: 0x82}, false},
		{"idle node's blade", hotswap.KindInsertion, hotswap.FRU{Shelf: "s1", IPMB: 0x84, ID: 1}, false},
		{"other FRU of a fenced IPMC", hotswap.KindInsertion, hotswap.FRU{Shelf: "s1", IPMB: 0x82, ID: 2}, false},
		{"other shelf", hotswap.KindInsertion, hotswap.FRU{Shelf: "s2", IPMB: 0x82}, false},
		{"no node", hotswap.KindInsertion, hotswap.FRU{Shelf: "s1", IPMB: 0x86}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			why := veto(tc.kind, tc.fru)
			if (why != "") != tc.veto {
				t.Fatalf("veto %q, want veto %v", why, tc.veto)
			}
			if tc.veto && !strings.Contains(why, "fenced") {
				t.Fatalf("reason %q does not say why", why)
			}
		})
	}
}

// verifiedWipe returns a Machine whose log holds a finished forced
// extraction owned by node "b" whose wipe result carries certs, signed by
// key.
func verifiedWipe(t *testing.T, key ed25519.PrivateKey, certs []byte) *hotswap.Machine {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	fru := hotswap.FRU{Shelf: "s1", IPMB: 0x82}
	one := uint8(1)
	m := hotswap.NewMachine()
	for i, e := range []hotswap.Entry{
		{Type: hotswap.TypeWorkflowStarted, Workflow: "x1", Kind: hotswap.KindForced, FRU: &fru, Required: []string{"a", "b"}, Owner: "b", MaxAttempts: 1, Actor: "ops"},
		{Type: hotswap.TypeHeld, Workflow: "x1", Policy: hotswap.HoldDeactivationLocked},
		{Type: hotswap.TypePoliciesRevoked, Workflow: "x1", Member: "a", Digest: string(hotswap.DigestOf([]byte("a")))},
		{Type: hotswap.TypePoliciesRevoked, Workflow: "x1", Member: "b", Digest: string(hotswap.DigestOf([]byte("b")))},
		{Type: hotswap.TypeWipeStarted, Workflow: "x1"},
		{Type: hotswap.TypeWipeResult, Workflow: "x1", Attempt: 1, OK: true, Digest: string(hotswap.DigestOf(certs)), Certificates: certs, SignerKey: der},
		{Type: hotswap.TypeDeactivationConfirmed, Workflow: "x1", MState: &one},
	} {
		b, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if r := m.Apply(uint64(i+1), b).(hotswap.Result); r.Err != nil || !r.Accepted {
			t.Fatalf("entry %s: %+v", e.Type, r)
		}
	}
	return m
}

// signedCerts issues n certificates of node, signed with key, by wiping
// n files with a real Eraser.
func signedCerts(t *testing.T, key ed25519.PrivateKey, node string, n int) ([]byte, []string) {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	er, err := secureerase.New(secureerase.Config{Signer: key, Node: node})
	if err != nil {
		t.Fatal(err)
	}
	plan := secureerase.WipePlan{FRU: "{PHYSICAL_SLOT,2}"}
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("secret-%d", i))
		if err := os.WriteFile(p, []byte(strings.Repeat("key", 50)), 0o600); err != nil {
			t.Fatal(err)
		}
		plan.Targets = append(plan.Targets, secureerase.PlanTarget{Path: p, Kind: secureerase.KindFile, Methods: []string{"overwrite"}})
	}
	certs, err := er.EraseAll(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range certs {
		ids = append(ids, c.ID)
	}
	b, err := json.Marshal(certs)
	if err != nil {
		t.Fatal(err)
	}
	return b, ids
}

// TestClusterCertificates: a member's certificate routes serve its own
// certificates and those of another member's wipe that the log holds
// (they verify with that member's key); the copies saved into its store
// outlive the log's workflow and a restart.
func TestClusterCertificates(t *testing.T) {
	t.Parallel()
	_, keyA, _ := ed25519.GenerateKey(rand.Reader)
	_, keyB, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	store, err := secureerase.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	own, ownIDs := signedCerts(t, keyA, "a", 1)
	var ownCerts []*secureerase.Certificate
	if err := json.Unmarshal(own, &ownCerts); err != nil {
		t.Fatal(err)
	}
	if err := store.Save(ownCerts[0]); err != nil {
		t.Fatal(err)
	}
	remote, remoteIDs := signedCerts(t, keyB, "b", 2)
	m := verifiedWipe(t, keyB, remote)
	want := append(append([]string{}, ownIDs...), remoteIDs...)
	sort.Strings(want)

	c := &clusterCertificates{store: store, log: m, cache: map[string][]*secureerase.Certificate{}}
	routes := adapt.EraseCertificates(c)
	check := func(what string, routes api.EraseCertificates) {
		t.Helper()
		ids, err := routes.CertificateIDs()
		if err != nil || !slices.Equal(ids, want) {
			t.Fatalf("%s: IDs %v (%v), want %v", what, ids, err, want)
		}
		for _, id := range ids {
			b, err := routes.Certificate(id)
			if err != nil {
				t.Fatalf("%s: certificate %s: %v", what, id, err)
			}
			var ct secureerase.Certificate
			if err := json.Unmarshal(b, &ct); err != nil {
				t.Fatal(err)
			}
			key := keyB.Public()
			if ct.Node == "a" {
				key = keyA.Public()
			}
			if err := secureerase.Verify(&ct, key); err != nil {
				t.Fatalf("%s: certificate %s of %s: %v", what, id, ct.Node, err)
			}
		}
		if _, err := routes.Certificate(strings.Repeat("0", 32)); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("%s: unknown certificate: %v", what, err)
		}
	}
	check("from the store and the log", routes)
	if ids, _ := store.List(); len(ids) != 1 {
		t.Fatalf("the store holds %v before the copy", ids)
	}
	if n, err := c.saveReplicated(); n != 2 || err != nil {
		t.Fatalf("saveReplicated: %d, %v", n, err)
	}
	if n, err := c.saveReplicated(); n != 0 || err != nil {
		t.Fatalf("saveReplicated again: %d, %v", n, err)
	}
	// Restarted, with a log that no longer holds the workflow.
	store2, err := secureerase.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	check("after a restart, from the store", adapt.EraseCertificates(&clusterCertificates{store: store2, log: hotswap.NewMachine(), cache: map[string][]*secureerase.Certificate{}}))
}
