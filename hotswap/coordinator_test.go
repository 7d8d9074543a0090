package hotswap

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/hpi"
)

type testCluster struct {
	t      *testing.T
	names  []string
	log    *fakeLog
	peers  *fakePeers
	hw     *fakeHW
	hooks  map[string]*countHook
	wipers map[string]*fakeWiper
	dirs   map[string]string
	clock  *fakeClock

	// verifySigner is the coordinators' VerifySigner (nil: digests only).
	verifySigner func(owner string, certDER []byte) (crypto.PublicKey, error)

	mu     sync.Mutex
	alarms []AlarmInfo
	certs  [][]byte
}

func newTestCluster(t *testing.T, names ...string) *testCluster {
	tc := &testCluster{t: t, names: names, log: newFakeLog(names...),
		peers: newFakePeers(),
		hw:    newFakeHW(), hooks: map[string]*countHook{}, wipers: map[string]*fakeWiper{},
		dirs: map[string]string{}, clock: &fakeClock{now: time.Unix(1_800_000_000, 0)}}
	for _, n := range names {
		tc.hooks[n] = newCountHook("count-" + n)
		tc.wipers[n] = &fakeWiper{}
		tc.dirs[n] = t.TempDir()
		tc.startMember(n)
	}
	return tc
}

func (tc *testCluster) startMember(n string) *Member {
	m, err := NewMember(MemberConfig{Name: n, StateDir: tc.dirs[n], Hooks: map[string][]Hook{"*": {tc.hooks[n]}},
		Wiper: tc.wipers[n], Now: tc.clock.Now, Logger: testLogger(tc.t)})
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.peers.set(n, m, false)
	return m
}

// coordinator returns node n's coordinator; cr (may be nil) injects a crash.
func (tc *testCluster) coordinator(n string, cr *crasher) *Coordinator {
	var lg Log = nodeLog{tc.log, n}
	var pe Peers = tc.peers.view(n)
	var hw Hardware = tc.hw
	if cr != nil {
		lg, pe, hw = crashLog{lg, cr}, crashPeers{pe, cr}, crashHW{tc.hw, cr}
	}
	seq := 0
	c, err := NewCoordinator(CoordinatorConfig{
		Node: n, Log: lg, Peers: pe, Machine: tc.log.machine(n), Hardware: hw,
		Members: func() []string { return tc.names }, Owner: func(FRU) string { return "n2" },
		MaxAttempts: 2, RetryDelay: time.Second, Now: tc.clock.Now,
		NewID: func() string { seq++; return fmt.Sprintf("%s-wf%d", n, seq) },
		Alarm: func(a AlarmInfo) {
			tc.mu.Lock()
			tc.alarms = append(tc.alarms, a)
			tc.mu.Unlock()
		},
		Certificate: func(_ string, _ FRU, cert []byte) {
			tc.mu.Lock()
			tc.certs = append(tc.certs, cert)
			tc.mu.Unlock()
		},
		VerifySigner: tc.verifySigner,
		Logger:       testLogger(tc.t),
	})
	if err != nil {
		tc.t.Fatal(err)
	}
	return c
}

func (tc *testCluster) alarmTexts() []string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var out []string
	for _, a := range tc.alarms {
		out = append(out, a.Text)
	}
	return out
}

// drive calls Step until done() or the coordinator stops making progress
// for a while (time is advanced past retry delays when it idles).
func (tc *testCluster) drive(ctx context.Context, c *Coordinator, done func() bool) {
	for i := 0; i < 200 && ctx.Err() == nil; i++ {
		if done() {
			return
		}
		p, _ := c.Step(ctx)
		if !p {
			tc.clock.Advance(2 * time.Second)
			time.Sleep(time.Millisecond) // let a wipe in flight report
		}
	}
}

// finished returns the finished workflows of fru in n's machine.
func finished(m *Machine, fru FRU) []Workflow {
	var out []Workflow
	for _, w := range m.Workflows() {
		if w.FRU.Key() == fru.Key() && !w.Active() {
			out = append(out, w)
		}
	}
	return out
}

// acceptedOf replays log into a fresh machine and counts accepted entries
// of type ty.
func acceptedOf(t *testing.T, log [][]byte, ty EntryType) int {
	m := NewMachine()
	n := 0
	for i, b := range log {
		r := m.Apply(uint64(i+1), b).(Result)
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if r.Accepted && r.Type == ty {
			n++
		}
	}
	return n
}

type scenario struct {
	name    string
	kind    Kind
	setup   func(tc *testCluster)
	trigger func(ctx context.Context, c *Coordinator) error
	check   func(t *testing.T, tc *testCluster, wf Workflow)
}

var scenarios = []scenario{
	{
		name: "insertion", kind: KindInsertion,
		setup: func(tc *testCluster) { tc.hw.set(fruA, hpi.M2, Policy{}) },
		trigger: func(ctx context.Context, c *Coordinator) error {
			return c.Observe(ctx, fruA, hpi.HsStateInactive, hpi.HsStateInsertionPending)
		},
		check: func(t *testing.T, tc *testCluster, wf Workflow) {
			st, pol, act, _ := tc.hw.get(fruA)
			if wf.Outcome != OutcomeActivated || st != hpi.M4 || pol.Locked || !pol.DeactivationLocked {
				t.Fatalf("outcome %s, FRU in %s, policy %+v", wf.Outcome, st, pol)
			}
			if act != 1 {
				t.Fatalf("Set FRU Activation sent %d times", act)
			}
			for _, n := range tc.names {
				if got := tc.hooks[n].count("apply", wf.ID); got != 1 {
					t.Fatalf("hooks of %s applied %d times", n, got)
				}
			}
			if n := acceptedOf(t, tc.log.log(), TypeActivationConfirmed); n != 1 {
				t.Fatalf("%d activation confirmations in the log", n)
			}
		},
	},
	{
		name: "extraction", kind: KindExtraction,
		setup: func(tc *testCluster) { tc.hw.set(fruA, hpi.M5, Policy{}) },
		trigger: func(ctx context.Context, c *Coordinator) error {
			return c.Observe(ctx, fruA, hpi.HsStateActive, hpi.HsStateExtractionPending)
		},
		check: func(t *testing.T, tc *testCluster, wf Workflow) {
			st, _, _, deact := tc.hw.get(fruA)
			if wf.Outcome != OutcomeExtracted || st != hpi.M1 {
				t.Fatalf("outcome %s, FRU in %s", wf.Outcome, st)
			}
			if deact != 1 {
				t.Fatalf("deactivation sent %d times", deact)
			}
			if n := tc.wipers["n2"].n(); n != 1 {
				t.Fatalf("owner wiped %d times", n)
			}
			if wf.Certificate == "" {
				t.Fatal("no certificate recorded")
			}
			tc.hw.mu.Lock()
			blue := tc.hw.blue[fruA.Key()]
			tc.hw.mu.Unlock()
			if !blue {
				t.Fatal("blue LED not on")
			}
			for _, n := range tc.names {
				if got := tc.hooks[n].count("revoke", wf.ID); got != 1 {
					t.Fatalf("policies of %s revoked %d times", n, got)
				}
			}
			if n := acceptedOf(t, tc.log.log(), TypeDeactivationConfirmed); n != 1 {
				t.Fatalf("%d deactivation confirmations in the log", n)
			}
		},
	},
}

// runScenario runs sc with the leader n1 crashing at its crashAt-th side
// effect (0: never); then n2 leads, n1 restarts as a follower (fresh
// machine replayed from the log, member from its state directory), and the
// workflow must finish exactly once. It returns n1's operation count.
func runScenario(t *testing.T, sc scenario, crashAt int, after bool) int {
	tc := newTestCluster(t, "n1", "n2", "n3")
	sc.setup(tc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cctx, ccancel := context.WithCancel(ctx)
	cr := &crasher{n: crashAt, after: after, cancel: ccancel}
	c1 := tc.coordinator("n1", cr)
	_ = sc.trigger(cctx, c1)
	done := func() bool { return len(finished(tc.log.machine("n1"), fruA)) > 0 || cr.crashed() }
	tc.drive(cctx, c1, done)
	if cr.crashed() {
		// n1 dies (whatever it had in flight ends with it); n2 is elected;
		// n1 comes back as a follower.
		c1.wg.Wait()
		tc.log.setUp("n1", false)
		tc.peers.set("n1", nil, true)
		tc.log.setLeader("n2")
		tc.log.restart("n1")
		tc.startMember("n1")
		c2 := tc.coordinator("n2", nil)
		// The new leader sees the FRU's state again (a missed event is
		// seen again by reconciliation); a workflow in flight is resumed,
		// not restarted.
		_ = sc.trigger(ctx, c2)
		tc.drive(ctx, c2, func() bool { return len(finished(tc.log.machine("n2"), fruA)) > 0 })
	}
	leader := "n2"
	if !cr.crashed() {
		leader = "n1"
	}
	fin := finished(tc.log.machine(leader), fruA)
	if len(fin) != 1 {
		t.Fatalf("%d finished workflows for the FRU (crash at %d, after=%v): %+v", len(fin), crashAt, after, fin)
	}
	sc.check(t, tc, fin[0])
	// Every node's machine agrees.
	for _, n := range tc.names {
		w, ok := tc.log.machine(n).Workflow(fin[0].ID)
		if !ok || w.Outcome != fin[0].Outcome {
			t.Fatalf("node %s sees %+v", n, w)
		}
	}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.count
}

// TestLeaderKilledAtEveryStep kills the leader at each of its side effects,
// before and after the effect, in both workflows, and checks that the
// workflow finishes exactly once: one activation or deactivation, hooks
// applied or revoked once per member, one wipe, one confirmation entry.
func TestLeaderKilledAtEveryStep(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			total := runScenario(t, sc, 0, false)
			if total < 8 {
				t.Fatalf("only %d operations in a clean run", total)
			}
			for n := 1; n <= total; n++ {
				for _, after := range []bool{false, true} {
					t.Run(fmt.Sprintf("op%d/after=%v", n, after), func(t *testing.T) {
						runScenario(t, sc, n, after)
					})
				}
			}
		})
	}
}

func TestMemberDownKeepsInsertionLocked(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, "n1", "n2", "n3")
	tc.hw.set(fruA, hpi.M2, Policy{})
	tc.peers.set("n3", nil, true) // n3 is down (the log still has a majority)
	ctx := context.Background()
	c := tc.coordinator("n1", nil)
	if err := c.Observe(ctx, fruA, hpi.HsStateInactive, hpi.HsStateInsertionPending); err != nil {
		t.Fatal(err)
	}
	m := tc.log.machine("n1")
	tc.drive(ctx, c, func() bool { return len(finished(m, fruA)) > 0 })
	fin := finished(m, fruA)
	if len(fin) != 1 || fin[0].Outcome != OutcomeAborted {
		t.Fatalf("workflow: %+v", fin)
	}
	st, pol, act, _ := tc.hw.get(fruA)
	if !pol.Locked || act != 0 || st == hpi.M4 {
		t.Fatalf("FRU in %s, policy %+v, activations %d: must stay locked", st, pol, act)
	}
	alarms := strings.Join(tc.alarmTexts(), "\n")
	if !strings.Contains(alarms, "n3") || !strings.Contains(alarms, "locked") {
		t.Fatalf("alarms: %s", alarms)
	}
	// What n1 and n2 applied was revoked again.
	for _, n := range []string{"n1", "n2"} {
		if tc.hooks[n].count("apply", fin[0].ID) != 1 || tc.hooks[n].count("revoke", fin[0].ID) != 1 {
			t.Fatalf("member %s: applied %d, revoked %d", n, tc.hooks[n].count("apply", fin[0].ID), tc.hooks[n].count("revoke", fin[0].ID))
		}
	}
	if !strings.Contains(alarms, "attempt 2 of 2") {
		t.Fatalf("not retried up to MaxAttempts: %s", alarms)
	}
}

func TestMemberBackInTimeActivates(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, "n1", "n2", "n3")
	tc.hw.set(fruA, hpi.M2, Policy{})
	tc.peers.set("n3", nil, true)
	ctx := context.Background()
	c := tc.coordinator("n1", nil)
	if err := c.Observe(ctx, fruA, hpi.HsStateInactive, hpi.HsStateInsertionPending); err != nil {
		t.Fatal(err)
	}
	m := tc.log.machine("n1")
	for i := 0; i < 5; i++ {
		_, _ = c.Step(ctx)
	}
	if _, pol, act, _ := tc.hw.get(fruA); act != 0 || !pol.Locked {
		t.Fatal("activated with n3 missing")
	}
	tc.startMember("n3") // n3 is back before the retry
	tc.drive(ctx, c, func() bool { return len(finished(m, fruA)) > 0 })
	if fin := finished(m, fruA); len(fin) != 1 || fin[0].Outcome != OutcomeActivated {
		t.Fatalf("workflow: %+v", fin)
	}
}

func TestWipeFailureKeepsFRUHeld(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, "n1", "n2", "n3")
	tc.hw.set(fruA, hpi.M4, Policy{})
	tc.wipers["n2"].fail = errors.New("verification found 3 non-zero blocks")
	ctx := context.Background()
	c := tc.coordinator("n1", nil)
	id, err := c.Start(ctx, KindForced, fruA, "alice", "replace blade")
	if err != nil {
		t.Fatal(err)
	}
	m := tc.log.machine("n1")
	tc.drive(ctx, c, func() bool { w, _ := m.Workflow(id); return w.Phase == PhaseWipeFailed })
	for i := 0; i < 5; i++ {
		tc.clock.Advance(time.Minute)
		_, _ = c.Step(ctx)
	}
	w, _ := m.Workflow(id)
	st, pol, _, deact := tc.hw.get(fruA)
	if w.Phase != PhaseWipeFailed || st != hpi.M4 || !pol.DeactivationLocked || deact != 0 {
		t.Fatalf("phase %s, FRU in %s, policy %+v, deactivations %d: must stay held", w.Phase, st, pol, deact)
	}
	if alarms := strings.Join(tc.alarmTexts(), "\n"); !strings.Contains(alarms, "wipe failed") {
		t.Fatalf("alarms: %s", alarms)
	}
	for _, n := range tc.names {
		if al := tc.log.machine(n).Alarms(); len(al) != 1 || al[0].Workflow != id || !strings.Contains(al[0].Text, "wipe failed") {
			t.Fatalf("node %s replicated alarms: %+v", n, al)
		}
	}
	// An operator's override (role checked by the API) lets it go, audited
	// in the log.
	if err := c.Override(ctx, id, "bob", "drive destroyed physically"); err != nil {
		t.Fatal(err)
	}
	tc.drive(ctx, c, func() bool { w, _ := m.Workflow(id); return !w.Active() })
	w, _ = m.Workflow(id)
	st, _, _, deact = tc.hw.get(fruA)
	if w.Outcome != OutcomeExtracted || w.Override == nil || w.Override.Actor != "bob" || st != hpi.M1 || deact != 1 {
		t.Fatalf("after override: %+v, FRU in %s, deactivations %d", w, st, deact)
	}
	if err := c.Override(ctx, id, "bob", "again"); err == nil {
		t.Fatal("override of a finished workflow accepted")
	}
}

func TestWipeRetryAfterFailure(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, "n1", "n2", "n3")
	tc.hw.set(fruA, hpi.M4, Policy{})
	tc.wipers["n2"].fail = errors.New("device busy")
	ctx := context.Background()
	c := tc.coordinator("n1", nil)
	id, err := c.Start(ctx, KindForced, fruA, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	m := tc.log.machine("n1")
	tc.drive(ctx, c, func() bool { w, _ := m.Workflow(id); return w.Phase == PhaseWipeFailed })
	tc.wipers["n2"].mu.Lock()
	tc.wipers["n2"].fail = nil
	tc.wipers["n2"].mu.Unlock()
	if err := c.Retry(ctx, id, "alice"); err != nil {
		t.Fatal(err)
	}
	tc.drive(ctx, c, func() bool { w, _ := m.Workflow(id); return !w.Active() })
	w, _ := m.Workflow(id)
	if w.Outcome != OutcomeExtracted || w.Certificate == "" || w.Override != nil {
		t.Fatalf("%+v", w)
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.certs) != 1 || DigestOf(tc.certs[0]) != Digest(w.Certificate) {
		t.Fatalf("certificates %q, digest in the log %s", tc.certs, w.Certificate)
	}
}

func TestSurpriseRemovalSupersedesInsertion(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, "n1", "n2", "n3")
	tc.hw.set(fruA, hpi.M2, Policy{})
	tc.peers.set("n3", nil, true)
	ctx := context.Background()
	c := tc.coordinator("n1", nil)
	_ = c.Observe(ctx, fruA, hpi.HsStateInactive, hpi.HsStateInsertionPending)
	_, _ = c.Step(ctx)
	_, _ = c.Step(ctx)
	tc.startMember("n3")
	if err := c.Observe(ctx, fruA, hpi.HsStateInactive, hpi.HsStateNotPresent); err != nil {
		t.Fatal(err)
	}
	m := tc.log.machine("n1")
	tc.drive(ctx, c, func() bool { _, busy := m.ActiveFor(fruA); return !busy })
	var outcomes []string
	for _, w := range finished(m, fruA) {
		outcomes = append(outcomes, string(w.Kind)+":"+w.Outcome)
	}
	if strings.Join(outcomes, ",") != "insertion:superseded,surprise:removed" {
		t.Fatalf("outcomes %v", outcomes)
	}
	if _, _, act, _ := tc.hw.get(fruA); act != 0 {
		t.Fatal("a removed FRU was activated")
	}
}

func TestNoPolicySupportHoldsByNotActivating(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, "n1", "n2", "n3")
	tc.hw.noPol = true
	tc.hw.set(fruA, hpi.M2, Policy{})
	ctx := context.Background()
	c := tc.coordinator("n1", nil)
	_ = c.Observe(ctx, fruA, hpi.HsStateInactive, hpi.HsStateInsertionPending)
	m := tc.log.machine("n1")
	tc.drive(ctx, c, func() bool { return len(finished(m, fruA)) > 0 })
	fin := finished(m, fruA)
	if len(fin) != 1 || fin[0].Outcome != OutcomeActivated || fin[0].Hold != HoldNotActivating {
		t.Fatalf("%+v", fin)
	}
}

func TestFollowerDoesNothing(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, "n1", "n2", "n3")
	tc.hw.set(fruA, hpi.M2, Policy{})
	ctx := context.Background()
	c2 := tc.coordinator("n2", nil)
	if err := c2.Observe(ctx, fruA, hpi.HsStateInactive, hpi.HsStateInsertionPending); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Start(ctx, KindForced, fruA, "alice", ""); !errors.Is(err, ErrNotLeaderHere) {
		t.Fatalf("Start on a follower: %v", err)
	}
	if p, _ := c2.Step(ctx); p || len(tc.log.log()) != 0 {
		t.Fatal("a follower proposed")
	}
}

// TestRunEventsFromDomain feeds M-state observations into an hpi.Domain and
// checks that the coordinator, subscribed to its events, starts the right
// workflows: an insertion at M2, an extraction at M5.
func TestRunEventsFromDomain(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, "n1", "n2", "n3")
	c := tc.coordinator("n1", nil)
	d := hpi.NewDomain(hpi.Config{Logger: testLogger(t)})
	path, err := hpi.ParseEntityPath(fruA.Entity)
	if err != nil {
		t.Fatal(err)
	}
	id, err := d.UpsertResource(hpi.RPTEntry{EntityPath: path, Tag: "blade",
		Capabilities: hpi.CapabilityResource | hpi.CapabilityFRU | hpi.CapabilityManagedHotswap}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := d.Subscribe(64)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- c.RunEvents(ctx, sub, func(ev hpi.Event) (FRU, bool) {
			return fruA, ev.Source == id
		})
	}()
	m := tc.log.machine("n1")
	waitKind := func(k Kind) Workflow {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if wid, ok := m.ActiveFor(fruA); ok {
				if w, _ := m.Workflow(wid); w.Kind == k {
					return w
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("no %s workflow started", k)
		return Workflow{}
	}
	now := tc.clock.Now()
	tc.hw.set(fruA, hpi.M2, Policy{}) // the shelf: inserted, waiting in M2
	for _, st := range []hpi.MState{hpi.M1, hpi.M2} {
		if _, _, err := d.ObserveMState(id, hpi.MStateUnknown, st, hpi.HsCauseUnknown, now); err != nil {
			t.Fatal(err)
		}
	}
	w := waitKind(KindInsertion)
	if w.Required == nil || w.FRU != fruA {
		t.Fatalf("workflow %+v", w)
	}
	// Finish it (hardware fake: M2 → M4), then the handle opens.
	tc.hw.set(fruA, hpi.M2, Policy{})
	tc.drive(ctx, c, func() bool { _, busy := m.ActiveFor(fruA); return !busy })
	_, pol, _, _ := tc.hw.get(fruA)
	tc.hw.set(fruA, hpi.M5, pol) // the shelf: handle open, held in M5
	for _, st := range []hpi.MState{hpi.M3, hpi.M4, hpi.M5} {
		if _, _, err := d.ObserveMState(id, hpi.MStateUnknown, st, hpi.HsCauseUnknown, now); err != nil {
			t.Fatal(err)
		}
	}
	waitKind(KindExtraction)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("RunEvents: %v", err)
	}
}

func TestVetoStopsEventStart(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, "n1", "n2", "n3")
	c := tc.coordinator("n1", nil)
	c.cfg.Veto = func(k Kind, f FRU) string {
		if k == KindInsertion && f == fruA {
			return "fenced"
		}
		return ""
	}
	ctx := context.Background()
	tc.hw.set(fruA, hpi.M1, Policy{}) // newly present: only the veto stops it
	if err := c.Observe(ctx, fruA, hpi.HsStateNotPresent, hpi.HsStateInactive); err != nil {
		t.Fatal(err)
	}
	if len(tc.log.log()) != 0 {
		t.Fatal("a vetoed insertion was started")
	}
	tc.hw.set(fruB, hpi.M1, Policy{}) // newly present
	if err := c.Observe(ctx, fruB, hpi.HsStateNotPresent, hpi.HsStateInactive); err != nil {
		t.Fatal(err)
	}
	if _, busy := tc.log.machine("n1").ActiveFor(fruB); !busy {
		t.Fatal("insertion of another FRU not started")
	}
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		state hpi.HsState
		hw    hpi.MState // what the shelf reads back
		want  Kind
	}{
		{hpi.HsStateInsertionPending, hpi.M2, KindInsertion},
		// A stale INSERTION_PENDING (a poll read before a deactivation,
		// applied after it) of a FRU the shelf shows elsewhere starts no
		// insertion (which would activate a FRU just taken out).
		{hpi.HsStateInsertionPending, hpi.M1, ""},
		{hpi.HsStateInsertionPending, hpi.M4, ""},
		{hpi.HsStateExtractionPending, hpi.M5, KindExtraction},
		// A late EXTRACTION_PENDING of a FRU the shelf shows elsewhere
		// starts no extraction (and no wipe).
		{hpi.HsStateExtractionPending, hpi.M4, ""},
		{hpi.HsStateExtractionPending, hpi.M1, ""},
		{hpi.HsStateInactive, hpi.M1, ""},
		{hpi.HsStateActive, hpi.M4, ""},
		{hpi.HsStateNotPresent, hpi.M0, ""},
	}
	for _, tt := range tests {
		tc := newTestCluster(t, "n1", "n2", "n3")
		tc.hw.set(fruA, tt.hw, Policy{})
		c := tc.coordinator("n1", nil)
		if err := c.Reconcile(context.Background(), fruA, tt.state); err != nil {
			t.Fatal(err)
		}
		m := tc.log.machine("n1")
		id, busy := m.ActiveFor(fruA)
		w, _ := m.Workflow(id)
		if busy != (tt.want != "") || w.Kind != tt.want {
			t.Errorf("%s: started %q, want %q", tt.state, w.Kind, tt.want)
		}
	}
}

// An operator's abort holds: the FRU, still waiting in M2, is not
// restarted by Reconcile (which the leader calls periodically), while
// another FRU waiting in M2 is, and a second Reconcile of a FRU with a
// workflow in flight starts nothing more.
func TestReconcileRespectsAbort(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tc := newTestCluster(t, "n1", "n2", "n3")
	tc.hw.set(fruA, hpi.M2, Policy{})
	tc.hw.set(fruB, hpi.M2, Policy{})
	c := tc.coordinator("n1", nil)
	m := tc.log.machine("n1")
	if err := c.Reconcile(ctx, fruA, hpi.HsStateInsertionPending); err != nil {
		t.Fatal(err)
	}
	id, busy := m.ActiveFor(fruA)
	if !busy {
		t.Fatal("no insertion started for a FRU waiting in M2")
	}
	if err := c.Reconcile(ctx, fruA, hpi.HsStateInsertionPending); err != nil {
		t.Fatal(err)
	}
	if n := len(m.Workflows()); n != 1 {
		t.Fatalf("%d workflows after a second Reconcile, want 1", n)
	}
	if err := c.Abort(ctx, id, "operator", "not this board"); err != nil {
		t.Fatal(err)
	}
	if _, busy := m.ActiveFor(fruA); busy {
		t.Fatal("workflow still in flight after the abort")
	}
	for range 3 {
		if err := c.Reconcile(ctx, fruA, hpi.HsStateInsertionPending); err != nil {
			t.Fatal(err)
		}
	}
	if _, busy := m.ActiveFor(fruA); busy {
		t.Error("Reconcile restarted the insertion an operator aborted")
	}
	if err := c.Reconcile(ctx, fruB, hpi.HsStateInsertionPending); err != nil {
		t.Fatal(err)
	}
	if _, busy := m.ActiveFor(fruB); !busy {
		t.Error("another FRU waiting in M2 was not reconciled")
	}
}

// Step reconciles the FRUs Waiting reports, at most every
// ReconcileInterval, on the leader only.
func TestStepReconcilesWaiting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tc := newTestCluster(t, "n1", "n2", "n3")
	tc.hw.set(fruA, hpi.M2, Policy{})
	tc.hw.set(fruB, hpi.M2, Policy{})
	waiting := []WaitingFRU{{FRU: fruA, State: hpi.HsStateInsertionPending}}
	calls := 0
	mk := func(n string) *Coordinator {
		c := tc.coordinator(n, nil)
		c.cfg.ReconcileInterval = 10 * time.Second
		c.cfg.Waiting = func() []WaitingFRU { calls++; return waiting }
		return c
	}
	follower := mk("n2")
	if _, err := follower.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if calls != 0 {
		t.Fatal("a follower reconciled")
	}
	c := mk("n1")
	if _, err := c.Step(ctx); err != nil {
		t.Fatal(err)
	}
	m := tc.log.machine("n1")
	if _, busy := m.ActiveFor(fruA); !busy || calls != 1 {
		t.Fatalf("waiting FRU not reconciled (calls %d)", calls)
	}
	// Not again before the interval, then again.
	waiting = append(waiting, WaitingFRU{FRU: fruB, State: hpi.HsStateInsertionPending})
	if _, err := c.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if _, busy := m.ActiveFor(fruB); busy || calls != 1 {
		t.Fatalf("reconciled again within the interval (calls %d)", calls)
	}
	tc.clock.Advance(11 * time.Second)
	if _, err := c.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if _, busy := m.ActiveFor(fruB); !busy || calls != 2 {
		t.Fatalf("second waiting FRU not reconciled after the interval (calls %d)", calls)
	}
}
