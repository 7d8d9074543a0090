package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hpiagent/api"
	"hpiagent/api/adapt"
	"hpiagent/api/apitest"
	"hpiagent/api/audit"
	secureerase "hpiagent/secure-erase"
)

// anchorBook holds anchors of node-a (5, then 12) and of node-b (9, then
// 3: a conflict).
func anchorBook(t *testing.T) *audit.AnchorBook {
	t.Helper()
	b := audit.NewAnchorBook()
	for i, a := range []struct {
		node string
		seq  uint64
	}{{"node-a", 5}, {"node-b", 9}, {"node-a", 12}, {"node-b", 3}} {
		e, err := audit.EncodeAnchor(audit.NodeAnchor{Node: a.node, Seq: a.seq, Hash: fmt.Sprintf("%064x", a.seq), Time: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		b.Apply(uint64(i+1), e)
	}
	return b
}

// signedCert returns a certificate signed with key, as the store keeps it.
func signedCert(t *testing.T, id string, key ed25519.PrivateKey, tamper bool) []byte {
	t.Helper()
	c := &secureerase.Certificate{ID: id, FRU: "{SYSTEM_BOARD,5}", Node: "node-a", PerformedBy: secureerase.Person{Name: "hpiagent on node-a"},
		Media: secureerase.Media{Type: "file", Path: "/var/lib/x", Size: 4096}, Target: "/var/lib/x",
		Started: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), Completed: time.Date(2026, 11, 23, 10, 1, 0, 0, time.UTC),
		Outcome: secureerase.OutcomeSuccess}
	if err := c.Sign(key); err != nil {
		t.Fatal(err)
	}
	if tamper {
		c.Target = "/var/lib/other"
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCoordinationCommandsAgainstRealAPIServer runs the cluster, workflow
// and certificate commands against the API server with stand-ins for the
// cluster, the workflow coordinator and the certificate store.
func TestCoordinationCommandsAgainstRealAPIServer(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const goodID, badID = "11111111111111111111111111111111", "22222222222222222222222222222222"
	wfs := &apitest.Workflows{WFs: map[string]api.WorkflowView{
		"wf-1": {ID: "wf-1", Kind: "extraction", FRU: api.FRUView{Entity: apitest.BladePath(5).String(), Shelf: "shelf1", IPMB: 0x8a},
			Phase: "wiping", Active: true, Attempt: 2, Required: []string{"node-a", "node-b"}, WipeError: "verify failed at offset 4096", StartIndex: 10},
		"wf-2": {ID: "wf-2", Kind: "insertion", FRU: api.FRUView{Entity: apitest.BladePath(6).String()}, Phase: "done", Outcome: "activated", StartIndex: 5},
	}}
	fen := &apitest.Fencing{Views: map[string]api.FenceNodeView{
		"node-b": {Node: "node-b", Phase: "idle", Power: "on"},
		"node-c": {Node: "node-c", Phase: "fenced", Power: "off", Fence: &api.FenceOpView{ID: "op-0", Action: "off", Source: "member-dead", Done: true}},
	}}
	ra := startRealAgentWith(t, func(d *api.Deps) {
		d.Cluster = &apitest.Cluster{View: api.ClusterView{Node: "node-a", Leader: "node-b", State: "follower", Term: 7, LastIndex: 99, Quorum: true,
			Members: []api.ClusterMemberView{{Name: "node-a", Address: "10.0.0.1:7946", State: "alive", Verified: true, Voter: true, Self: true},
				{Name: "node-b", Address: "10.0.0.2:7946", State: "alive", Verified: true, Voter: true},
				{Name: "node-c", Address: "10.0.0.3:7946", State: "dead", Voter: true}}}}
		d.Workflows = wfs
		d.Fencing = fen
		d.EraseCertificates = &apitest.EraseCertificates{Certs: map[string][]byte{
			goodID: signedCert(t, goodID, priv, false), badID: signedCert(t, badID, priv, true)}}
		d.AuditAnchors = adapt.AuditAnchors(anchorBook(t))
	})
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(ra.dir, "node-a.pub.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprint(ra.blade)
	tests := []struct {
		who      string
		args     []string
		wantCode int
		want     []string // in stdout+stderr
	}{
		{"viewer", []string{"cluster"}, 0, []string{"leader node-b", "term 7", "node-c", "dead", "(this node)"}},
		{"viewer", []string{"workflows"}, 0, []string{"wf-1", "wiping", "wf-2", "done (activated)"}},
		{"viewer", []string{"workflow", "wf-1"}, 0, []string{"verify failed at offset 4096", "IPMB 0x8a", "node-a,node-b"}},
		{"viewer", []string{"workflow", "wf-9"}, ExitNotFound, []string{"not_found"}},
		{"viewer", []string{"extract", id}, ExitRefused, []string{"forbidden"}},
		{"ops", []string{"extract", id, "--reason", "replace board"}, 0, []string{"forced extraction started: workflow wf-new-1"}},
		{"ops", []string{"override", "wf-1", "--reason", "destroyed"}, ExitRefused, []string{"forbidden"}},
		{"admin", []string{"override", "wf-1"}, ExitUsage, []string{"--reason is required"}},
		{"admin", []string{"override", "wf-1", "--reason", "disk physically destroyed"}, 0, []string{"workflow wf-1: override done"}},
		{"admin", []string{"override", "wf-2", "--reason", "x"}, ExitError, []string{"invalid_state"}},
		{"ops", []string{"retry", "wf-1"}, 0, []string{"workflow wf-1: retry done"}},
		{"ops", []string{"abort", "wf-2", "--reason", "wrong slot"}, 0, []string{"workflow wf-2: abort done"}},
		{"viewer", []string{"fence"}, 0, []string{"node-b", "node-c", "op-0 off by member-dead (done)"}},
		{"viewer", []string{"fence", "node-c"}, 0, []string{"fenced", "off"}},
		{"viewer", []string{"fence", "node-z"}, ExitNotFound, []string{"not_found"}},
		{"viewer", []string{"fence", "node-b", "off"}, ExitRefused, []string{"forbidden"}},
		{"admin", []string{"fence", "node-b", "halt"}, ExitUsage, []string{"off, on or reboot"}},
		{"admin", []string{"fence", "node-b", "off", "--reason", "hung"}, 0, []string{"off of node-b recorded as operation op-1; phase fencing"}},
		{"viewer", []string{"certs"}, ExitRefused, []string{"forbidden"}},
		{"ops", []string{"certs"}, 0, []string{goodID, badID, "success"}},
		{"ops", []string{"cert", goodID}, 0, []string{"{SYSTEM_BOARD,5}", "ed25519"}},
		{"ops", []string{"cert", goodID, "--verify", "--pubkey", pubFile}, 0, []string{"signature verified"}},
		{"ops", []string{"cert", badID, "--verify", "--pubkey", pubFile}, ExitError, []string{"does NOT verify"}},
		{"ops", []string{"cert", goodID, "--verify"}, ExitUsage, []string{"--pubkey"}},
		{"ops", []string{"cert", "33333333333333333333333333333333"}, ExitNotFound, []string{"not_found"}},
		{"viewer", []string{"anchors"}, 0, []string{"node-a", "12:" + fmt.Sprintf("%064x", 12), "node-b", "CONFLICT node-b", "cut off"}},
		{"viewer", []string{"anchors", "node-a"}, 0, []string{"5:" + fmt.Sprintf("%064x", 5), "12:"}},
		{"viewer", []string{"anchors", "bad name"}, ExitError, []string{"bad_request"}},
	}
	for _, tc := range tests {
		code, out, errs := runCLI(t, nil, ra.as(tc.who, tc.args...)...)
		if code != tc.wantCode {
			t.Errorf("%s %v: exit %d, want %d\n%s%s", tc.who, tc.args, code, tc.wantCode, out, errs)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out+errs, w) {
				t.Errorf("%s %v: output lacks %q:\n%s%s", tc.who, tc.args, w, out, errs)
			}
		}
	}
	// The workflow coordinator saw exactly the allowed requests, by the
	// certificate's identity.
	var got []string
	for _, c := range wfs.Calls() {
		got = append(got, c.Op+" "+c.Target+" "+c.Actor+" "+c.Arg)
	}
	want := []string{
		"Extract " + apitest.BladePath(5).String() + " hpiagent://client/ops replace board",
		"Override wf-1 hpiagent://client/admin disk physically destroyed",
		"Retry wf-1 hpiagent://client/ops ",
		"Abort wf-2 hpiagent://client/ops wrong slot",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("coordinator calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c := fen.Calls(); len(c) != 1 || c[0] != (apitest.CoordCall{Op: "Fence", Target: "node-b", Actor: "hpiagent://client/admin", Arg: "off"}) {
		t.Errorf("fence calls %+v", c)
	}
	// On a follower the client is told where the leader is.
	wfs.NotLeader, wfs.NotLeaderAPI = "node-b", "https://10.0.0.2:8443"
	code, out, errs := runCLI(t, nil, ra.as("ops", "retry", "wf-1")...)
	if code != ExitError || !strings.Contains(errs, "not_leader") || !strings.Contains(errs, "node-b at https://10.0.0.2:8443") {
		t.Errorf("retry on a follower: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, nil, "audit", "verify", ra.auditPath)
	if code != 0 || !strings.Contains(out, "chain intact") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, errs)
	}
}
