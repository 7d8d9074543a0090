package hotswap

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newMember(t *testing.T, dir string, hooks ...Hook) *Member {
	t.Helper()
	m, err := NewMember(MemberConfig{Name: "n1", StateDir: dir, Hooks: map[string][]Hook{"*": hooks}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// crashingHook does its work and then "crashes" (returns an error) the
// first time, as an agent killed after the hook's effect and before the
// member recorded the step.
type crashingHook struct {
	inner   Hook
	crashes int
}

func (h *crashingHook) Name() string { return h.inner.Name() }
func (h *crashingHook) Apply(ctx context.Context, s Step) (Digest, error) {
	d, err := h.inner.Apply(ctx, s)
	if err == nil && h.crashes > 0 {
		h.crashes--
		return "", errors.New("killed")
	}
	return d, err
}
func (h *crashingHook) Revoke(ctx context.Context, s Step) (Digest, error) {
	return h.inner.Revoke(ctx, s)
}

// TestMemberRestartMidStep restarts a member after its step and in the
// middle of it: a recorded step is not run again; a step interrupted
// before the record runs again and, the hook being idempotent, ends in the
// same state with the same digest.
func TestMemberRestartMidStep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	if err := os.Mkdir(rules, 0o755); err != nil {
		t.Fatal(err)
	}
	reloads := filepath.Join(dir, "reloads")
	rfh := func() *RuleFileHook {
		return &RuleFileHook{HookName: "fw", Dir: rules,
			Render: func(s Step) ([]byte, error) { return []byte("allow " + s.FRU.Key() + "\n"), nil },
			Reload: CommandConfig{Path: script(t, dir, "reload", `echo x >> "$LOG"`), Env: []string{"PATH=/usr/bin:/bin", "LOG=" + reloads}}}
	}
	nReloads := func() int {
		b, _ := os.ReadFile(reloads)
		return strings.Count(string(b), "x")
	}
	ctx := context.Background()
	state := filepath.Join(dir, "state")

	// Clean run for reference (own state dir).
	ref, err := newMember(t, filepath.Join(dir, "ref"), rfh()).Apply(ctx, testStep(OpApply))
	if err != nil {
		t.Fatal(err)
	}
	base := nReloads()

	// Killed after the hook, before the record.
	m1 := newMember(t, state, &crashingHook{inner: rfh(), crashes: 1})
	if _, err := m1.Apply(ctx, testStep(OpApply)); err == nil {
		t.Fatal("crash not reported")
	}
	if _, ok := m1.Applied("w1", OpApply); ok {
		t.Fatal("a failed step was recorded")
	}
	// Restarted: the step is retried and completes with the same result.
	m2 := newMember(t, state, rfh())
	d, err := m2.Apply(ctx, testStep(OpApply))
	if err != nil || d != ref {
		t.Fatalf("retried step: %v, digest %s want %s", err, d, ref)
	}
	b, _ := os.ReadFile(filepath.Join(rules, "hpiagent-shelf-a-86-0.rules"))
	if string(b) != "allow shelf-a/0x86/0\n" {
		t.Fatalf("rule file %q", b)
	}
	after := nReloads()
	// Restarted again after the record: nothing runs, same digest.
	m3 := newMember(t, state, rfh())
	d3, err := m3.Apply(ctx, testStep(OpApply))
	if err != nil || d3 != ref {
		t.Fatalf("recorded step: %v %s", err, d3)
	}
	if nReloads() != after {
		t.Fatal("a recorded step ran its hooks again")
	}
	if after-base != 2 { // the crashed run and the retry
		t.Fatalf("%d reloads, want 2", after-base)
	}
}

func TestMemberRollsBackPartialApply(t *testing.T) {
	t.Parallel()
	good := newCountHook("good")
	bad := newCountHook("bad")
	bad.fail = errors.New("policy daemon refused")
	m := newMember(t, t.TempDir(), good, bad)
	_, err := m.Apply(context.Background(), testStep(OpApply))
	if err == nil || !strings.Contains(err.Error(), "policy daemon refused") {
		t.Fatalf("err = %v", err)
	}
	if good.count("apply", "w1") != 1 || good.count("revoke", "w1") != 1 {
		t.Fatalf("good hook: applied %d revoked %d; want it rolled back", good.count("apply", "w1"), good.count("revoke", "w1"))
	}
}

func TestMemberStateFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := newCountHook("h")
	m := newMember(t, dir, h)
	if _, err := m.Apply(context.Background(), testStep(OpApply)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "hotswap-steps.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hotswap-steps.json"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMember(MemberConfig{Name: "n1", StateDir: dir}); err == nil {
		t.Fatal("a corrupt step record was accepted (steps could apply twice)")
	}
}

func TestMemberBoundsRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m, err := NewMember(MemberConfig{Name: "n1", StateDir: dir, MaxRecords: 3, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c", "d"} {
		s := testStep(OpApply)
		s.Workflow, s.Key = id, stepKey(id, OpApply)
		if _, err := m.Apply(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := m.Applied("a", OpApply); ok {
		t.Fatal("oldest record kept beyond MaxRecords")
	}
	if _, ok := m.Applied("d", OpApply); !ok {
		t.Fatal("newest record dropped")
	}
}

func TestMemberHandlers(t *testing.T) {
	t.Parallel()
	h := newCountHook("h")
	w := &fakeWiper{}
	m, err := NewMember(MemberConfig{Name: "n1", StateDir: t.TempDir(), Hooks: map[string][]Hook{"*": {h}}, Wiper: w, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	hs := m.Handlers()
	ctx := context.Background()
	good, _ := json.Marshal(testStep(OpApply))
	tests := []struct {
		method, req, wantErr string
	}{
		{MethodApply, string(good), ""},
		{MethodApply, strings.Replace(string(good), `"key"`, `"extra":1,"key"`, 1), "unknown field"},
		{MethodApply, strings.Replace(string(good), `"w1/apply"`, `"w2/apply"`, 1), "key"},
		{MethodRevoke, strings.Replace(string(good), `"insertion"`, `"bogus"`, 1), "kind"},
		{MethodApply, `{`, "decoding"},
		{MethodWipe, `{"workflow":"w1","fru":{"shelf":"s","ipmb":130,"id":0},"attempt":1}`, ""},
		{MethodWipe, `{"workflow":"w 1","fru":{"shelf":"s","ipmb":130,"id":0}}`, "workflow"},
	}
	for _, tc := range tests {
		_, err := hs[tc.method](ctx, "n2", json.RawMessage(tc.req))
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s %s: err = %v, want %q", tc.method, tc.req, err, tc.wantErr)
		}
	}
	// The wipe is recorded: asked again, the same certificate, no second wipe.
	r1, _ := m.Wipe(ctx, WipeRequest{Workflow: "w1", FRU: FRU{Shelf: "s", IPMB: 130}})
	if !r1.OK || w.n() != 1 || DigestOf(r1.Certificate) != r1.Digest {
		t.Fatalf("wipe again: %+v, %d wipes", r1, w.n())
	}
}

func FuzzMemberRequest(f *testing.F) {
	good, _ := json.Marshal(testStep(OpApply))
	f.Add(string(MethodApply), good)
	f.Add(string(MethodWipe), []byte(`{"workflow":"w1","fru":{"shelf":"s","ipmb":130,"id":0},"attempt":1}`))
	f.Add(string(MethodRevoke), []byte(`{"key":"w/revoke","workflow":"w","op":"revoke","kind":"surprise","fru":{"shelf":"s"}}`))
	m, err := NewMember(MemberConfig{Name: "n1", StateDir: f.TempDir(), Wiper: &fakeWiper{}, MaxRecords: 16,
		Logger: testLogger(&testing.T{})})
	if err != nil {
		f.Fatal(err)
	}
	hs := m.Handlers()
	f.Fuzz(func(t *testing.T, method string, req []byte) {
		h, ok := hs[method]
		if !ok {
			return
		}
		out, err := h(context.Background(), "n2", req)
		if err != nil {
			return
		}
		switch r := out.(type) {
		case StepReply:
			if !validDigest(string(r.Digest)) {
				t.Fatalf("invalid digest %q", r.Digest)
			}
		case WipeReply:
			if r.OK && DigestOf(r.Certificate) != r.Digest {
				t.Fatal("certificate does not match its digest")
			}
		}
	})
}

func FuzzRestore(f *testing.F) {
	m := NewMachine()
	for i, e := range []Entry{started("w1", KindInsertion, fruA, "n1", "n2"), ent(TypeHeld, "w1"), ent(TypeHookApplied, "w1", member("n1"))} {
		b, _ := e.Encode()
		m.Apply(uint64(i+1), b)
	}
	snap, _ := m.Snapshot()
	f.Add(snap)
	f.Add([]byte(`{"v":1,"workflows":[]}`))
	// A finished extraction holding its wipe certificates.
	key := newKey(f)
	certs := issueCerts(f, key, "n1", 1)
	mc := NewMachine()
	for i, e := range []Entry{started("x1", KindExtraction, fruA, "n1"),
		ent(TypeHeld, "x1", func(e *Entry) { e.Policy = HoldDeactivationLocked }),
		ent(TypePoliciesRevoked, "x1", member("n1")), ent(TypeWipeStarted, "x1"),
		ent(TypeWipeResult, "x1", func(e *Entry) {
			e.OK, e.Attempt, e.Certificates, e.SignerKey, e.Digest = true, 1, certs, pkix(f, key.Public()), string(DigestOf(certs))
		})} {
		b, err := e.Encode()
		if err != nil {
			f.Fatal(err)
		}
		if r := mc.Apply(uint64(i+1), b).(Result); r.Err != nil || !r.Accepted {
			f.Fatalf("%s: %+v", e.Type, r)
		}
	}
	snap, _ = mc.Snapshot()
	f.Add(snap)
	f.Fuzz(func(t *testing.T, b []byte) {
		m := NewMachine()
		if err := m.Restore(b); err != nil {
			return
		}
		_ = m.NextActions()
		s1, err := m.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		m2 := NewMachine()
		if err := m2.Restore(s1); err != nil {
			t.Fatalf("a snapshot of a restored state does not restore: %v", err)
		}
		s2, _ := m2.Snapshot()
		if string(s1) != string(s2) {
			t.Fatal("snapshot/restore is not stable")
		}
	})
}
