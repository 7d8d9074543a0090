package hotswaphw_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/hotswap"
	"hpiagent/hpi"
	"hpiagent/shelf"
	"hpiagent/shelf/hotswaphw"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
	"hpiagent/shelf/sim"
)

func testLogger(t *testing.T) *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("HPIAGENT_TEST_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: lvl}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// memLog is an in-process coordination log: every entry is applied to
// every node's Machine in order; the first node leads.
type memLog struct {
	mu       sync.Mutex
	leader   string
	entries  [][]byte
	machines map[string]*hotswap.Machine
	applied  map[string]int
}

func (l *memLog) catchUp(n string) any {
	var last any
	for l.applied[n] < len(l.entries) {
		l.applied[n]++
		last = l.machines[n].Apply(uint64(l.applied[n]), l.entries[l.applied[n]-1])
	}
	return last
}

// nodeLog is node's view of a memLog (hotswap.Log).
type nodeLog struct {
	l    *memLog
	node string
}

func (n nodeLog) Propose(ctx context.Context, kind string, payload []byte) (uint64, any, error) {
	if kind != hotswap.LogKind {
		return 0, nil, fmt.Errorf("unknown log kind %q", kind)
	}
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	if n.l.leader != n.node {
		return 0, nil, errors.New("not the leader")
	}
	n.l.entries = append(n.l.entries, append([]byte(nil), payload...))
	var res any
	for name := range n.l.machines {
		if r := n.l.catchUp(name); name == n.node {
			res = r
		}
	}
	return uint64(len(n.l.entries)), res, ctx.Err()
}

func (n nodeLog) IsLeader() bool {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	return n.l.leader == n.node
}

func (n nodeLog) HasQuorum() bool { return true }

func (n nodeLog) Barrier(ctx context.Context) error {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	n.l.catchUp(n.node)
	return ctx.Err()
}

// memPeers calls Members' handlers through JSON, as the peer RPC does.
type memPeers struct {
	from    string
	members map[string]*hotswap.Member
}

func (p memPeers) Call(ctx context.Context, node, method string, req, resp any) error {
	m := p.members[node]
	if m == nil {
		return fmt.Errorf("dial %s: connection refused", node)
	}
	h := m.Handlers()[method]
	if h == nil {
		return fmt.Errorf("%s: no method %s", node, method)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	out, err := h(ctx, p.from, b)
	if err != nil {
		return fmt.Errorf("remote %s: %w", node, err)
	}
	if b, err = json.Marshal(out); err != nil {
		return err
	}
	return json.Unmarshal(b, resp)
}

// countHook counts the steps applied and revoked per FRU.
type countHook struct {
	mu      sync.Mutex
	applied map[string]int
	revoked map[string]int
}

func (h *countHook) Name() string { return "count" }

func (h *countHook) Apply(_ context.Context, s hotswap.Step) (hotswap.Digest, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applied[s.FRU.Key()]++
	return hotswap.DigestOf([]byte("apply " + s.FRU.Key())), nil
}

func (h *countHook) Revoke(_ context.Context, s hotswap.Step) (hotswap.Digest, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.revoked[s.FRU.Key()]++
	return hotswap.DigestOf([]byte("revoke " + s.FRU.Key())), nil
}

func (h *countHook) counts(key string) (int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.applied[key], h.revoked[key]
}

// certWiper "wipes" a FRU and returns a certificate naming it.
type certWiper struct {
	mu    sync.Mutex
	wiped []string
}

func (w *certWiper) Wipe(_ context.Context, f hotswap.FRU) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wiped = append(w.wiped, f.Key())
	return json.Marshal(map[string]string{"fru": f.Key(), "method": "test"})
}

// testCluster is three in-process members (n1, n2, n3) with an
// in-process log; n1 leads, runs the Coordinator on the Hardware under
// test and owns the wipes.
type testCluster struct {
	t     *testing.T
	names []string
	m     *hotswap.Machine
	c     *hotswap.Coordinator
	hooks map[string]*countHook
	wiper *certWiper

	mu     sync.Mutex
	alarms []string
}

// startCluster starts the cluster with the Coordinator running (Run) and
// fed the hot-swap events of d (RunEvents with hw.Resolve) until the test
// ends.
func startCluster(ctx context.Context, t *testing.T, hw *hotswaphw.Hardware, d *hpi.Domain) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, names: []string{"n1", "n2", "n3"}, hooks: map[string]*countHook{}, wiper: &certWiper{}}
	lg := &memLog{leader: "n1", machines: map[string]*hotswap.Machine{}, applied: map[string]int{}}
	members := map[string]*hotswap.Member{}
	for _, n := range tc.names {
		lg.machines[n] = hotswap.NewMachine()
		tc.hooks[n] = &countHook{applied: map[string]int{}, revoked: map[string]int{}}
		mc := hotswap.MemberConfig{Name: n, StateDir: t.TempDir(),
			Hooks: map[string][]hotswap.Hook{"*": {tc.hooks[n]}}, Logger: testLogger(t)}
		if n == "n1" {
			mc.Wiper = tc.wiper
		}
		m, err := hotswap.NewMember(mc)
		if err != nil {
			t.Fatal(err)
		}
		members[n] = m
	}
	tc.m = lg.machines["n1"]
	c, err := hotswap.NewCoordinator(hotswap.CoordinatorConfig{
		Node: "n1", Log: nodeLog{lg, "n1"}, Peers: memPeers{from: "n1", members: members},
		Machine: tc.m, Hardware: hw, Member: members["n1"],
		Members:      func() []string { return tc.names },
		RetryDelay:   100 * time.Millisecond,
		PollInterval: 50 * time.Millisecond,
		Alarm: func(a hotswap.AlarmInfo) {
			tc.mu.Lock()
			tc.alarms = append(tc.alarms, a.Text)
			tc.mu.Unlock()
		},
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	tc.c = c
	sub, err := d.Subscribe(1024)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { _ = c.RunEvents(runCtx, sub, hw.Resolve); done <- struct{}{} }()
	go func() { _ = c.Run(runCtx); done <- struct{}{} }()
	t.Cleanup(func() { stop(); <-done; <-done })
	return tc
}

func (tc *testCluster) alarmTexts() []string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return append([]string(nil), tc.alarms...)
}

// finished waits for a workflow of kind for fru (id "": any) to finish.
func (tc *testCluster) finished(ctx context.Context, fru hotswap.FRU, kind hotswap.Kind, id string) hotswap.Workflow {
	tc.t.Helper()
	var wf hotswap.Workflow
	waitFor(ctx, tc.t, "a "+string(kind)+" workflow to finish", func() bool {
		for _, w := range tc.m.Workflows() {
			if w.FRU.Key() == fru.Key() && w.Kind == kind && (id == "" || w.ID == id) && !w.Active() {
				wf = w
				return true
			}
		}
		return false
	})
	return wf
}

// TestCoordinatorOnEmbeddedShelf runs one insertion and one forced
// extraction with three in-process members through the hot-swap
// Coordinator, with a shelf.Monitor of the embedded shelf manager behind
// Hardware and the Monitor's domain events resolved by Resolve. A blade
// whose Locked bit is cleared leaves M1 for M2, where the shelf manager
// (manual activation) waits; the event starts the insertion, every member
// applies its hooks once, and the blade is activated: read back on the
// simulated hardware in M4, unlocked and Deactivation-Locked. The forced
// extraction then revokes, wipes and deactivates it (M1, blue LED on).
func TestCoordinatorOnEmbeddedShelf(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := sim.DefaultConfig()
	cfg.StepDelay = 50 * time.Millisecond
	cfg.ManualActivation = true
	srv, err := sim.Start(ctx, cfg, "127.0.0.1:0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sh := srv.Shelf()
	u := cfg.Users[0]
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: srv.Addr().String(), Username: u.Name, Password: []byte(u.Password), CipherSuites: []int{17}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	d := hpi.NewDomain(hpi.Config{Logger: testLogger(t)})
	mon := shelf.NewMonitor(shelf.MonitorConfig{Name: "sim", SELInterval: 200 * time.Millisecond,
		ActionTimeout: 10 * time.Second, ConfirmInterval: 50 * time.Millisecond,
		Poll: shelf.PollConfig{Default: 2 * time.Second, ByType: map[uint8]time.Duration{shelf.SensorTypeHotSwap: 200 * time.Millisecond}}},
		sess, d, testLogger(t))
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	monDone := make(chan error, 1)
	go func() { monDone <- mon.Run(runCtx) }()
	defer func() { stop(); <-monDone }()
	hw, err := hotswaphw.New(mon)
	if err != nil {
		t.Fatal(err)
	}

	// The blade: the resource the Monitor reports at the first blade's
	// IPMB address, active.
	blade := cfg.IPMCs[0].Addr
	var fru hotswap.FRU
	var res hpi.ResourceID
	waitFor(ctx, t, "the blade's resource", func() bool {
		for _, id := range mon.Resources() {
			if f, ok := hw.FRUOf(id); ok && f.IPMB == blade && f.ID == 0 {
				fru, res = f, id
				return true
			}
		}
		return false
	})
	if fru.Shelf != "sim" || fru.Entity == "" {
		t.Fatalf("FRU of the blade: %+v", fru)
	}
	if f, ok := hw.Resolve(hpi.Event{Type: hpi.EventHotSwap, Source: res}); !ok || f != fru {
		t.Fatalf("Resolve of a hot-swap event of the blade = %+v, %v; want %+v", f, ok, fru)
	}
	if f, ok := hw.Resolve(hpi.Event{Type: hpi.EventSensor, Source: res}); ok {
		t.Fatalf("Resolve of a sensor event = %+v", f)
	}
	if ms, err := hw.MState(ctx, fru); err != nil || ms != hpi.M4 {
		t.Fatalf("blade in %s, %v; want M4", ms, err)
	}
	// Take it out of service before the cluster starts: M1, Locked.
	if err := hw.Deactivate(ctx, fru); err != nil {
		t.Fatal(err)
	}
	if l, _, _ := sh.Policy(blade); !l {
		t.Fatal("the embedded shelf should leave a deactivated blade Locked")
	}
	waitFor(ctx, t, "domain inactive", func() bool {
		st, err := d.HotSwapState(res)
		return err == nil && st.State == hpi.HsStateInactive
	})

	tc := startCluster(ctx, t, hw, d)
	names, hooks, wiper, c := tc.names, tc.hooks, tc.wiper, tc.c

	// The insertion: the blade's Locked bit is cleared (as a new board's
	// is), it goes to M2 and waits there for activation.
	if err := ipmi.SetFRUActivationPolicy(ctx, sess, ipmi.Addr{Slave: blade}, 0, ipmi.PolicyLockedBit, ipmi.ActivationPolicy{}); err != nil {
		t.Fatal(err)
	}
	wf := tc.finished(ctx, fru, hotswap.KindInsertion, "")
	if a := tc.alarmTexts(); len(a) > 0 {
		t.Logf("alarms: %q", a)
	}
	if wf.Outcome != hotswap.OutcomeActivated {
		t.Fatalf("insertion: %+v", wf)
	}
	if wf.FRU.Entity != fru.Entity {
		t.Fatalf("workflow FRU entity %q, want %q", wf.FRU.Entity, fru.Entity)
	}
	st, _ := sh.State(blade)
	locked, dl, _ := sh.Policy(blade)
	if st != sim.M4 || locked || !dl {
		t.Fatalf("after the insertion: %s locked=%v deactivation-locked=%v; want M4, unlocked, Deactivation-Locked", st, locked, dl)
	}
	if lvl, _ := sh.PowerLevel(blade); lvl == 0 {
		t.Fatal("blade in M4 without a power level")
	}
	for _, n := range names {
		if a, r := hooks[n].counts(fru.Key()); a != 1 || r != 0 {
			t.Errorf("member %s: hooks applied %d, revoked %d times; want 1, 0", n, a, r)
		}
	}

	// A forced extraction: revoked everywhere, wiped by the leader,
	// Deactivation-Locked cleared, deactivated to M1, blue LED on.
	id, err := c.Start(ctx, hotswap.KindForced, fru, "alice", "blade replacement")
	if err != nil {
		t.Fatal(err)
	}
	if wf := tc.finished(ctx, fru, hotswap.KindForced, id); wf.Outcome != hotswap.OutcomeExtracted || wf.Certificate == "" {
		t.Fatalf("extraction: %+v", wf)
	}
	st, _ = sh.State(blade)
	locked, dl, _ = sh.Policy(blade)
	if st != sim.M1 || dl {
		t.Fatalf("after the extraction: %s locked=%v deactivation-locked=%v; want M1, not Deactivation-Locked", st, locked, dl)
	}
	led, err := ipmi.GetFRULEDState(ctx, sess, ipmi.Addr{Slave: blade}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !led.OverrideEnabled || led.Override.Function != ipmi.LEDOn || led.Override.Color != ipmi.LEDBlue {
		t.Fatalf("blue LED after the extraction: %+v", led)
	}
	for _, n := range names {
		if a, r := hooks[n].counts(fru.Key()); a != 1 || r != 1 {
			t.Errorf("member %s: hooks applied %d, revoked %d times; want 1, 1", n, a, r)
		}
	}
	wiper.mu.Lock()
	if len(wiper.wiped) != 1 || wiper.wiped[0] != fru.Key() {
		t.Errorf("wiped %q, want once %s", wiper.wiped, fru.Key())
	}
	wiper.mu.Unlock()
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-deadline:
			t.Fatalf("%s: not within 30 s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
