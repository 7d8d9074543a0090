package fencing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hpiagent/hpi"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/sim"
)

// fakeCluster is an in-process replicated log: entries are applied in order
// to every member's Machine that is not cut off; only the leader proposes.
type fakeCluster struct {
	mu       sync.Mutex
	entries  [][]byte
	machines []*Machine
	applied  []int
	leader   int
	cut      map[int]bool
}

func newFakeCluster(n int) *fakeCluster {
	c := &fakeCluster{leader: 0, cut: map[int]bool{}}
	for i := 0; i < n; i++ {
		c.machines = append(c.machines, NewMachine())
		c.applied = append(c.applied, 0)
	}
	return c
}

func (c *fakeCluster) catchUpLocked(i int) (last any) {
	for c.applied[i] < len(c.entries) {
		idx := c.applied[i]
		last = c.machines[i].Apply(uint64(idx+1), c.entries[idx])
		c.applied[i]++
	}
	return last
}

func (c *fakeCluster) setLeader(i int) {
	c.mu.Lock()
	c.leader = i
	c.mu.Unlock()
}

func (c *fakeCluster) log(i int) Log { return &fakeLog{c: c, i: i} }

type fakeLog struct {
	c *fakeCluster
	i int
}

var errFakeNotLeader = errors.New("fake log: not the leader")

func (l *fakeLog) Propose(ctx context.Context, kind string, payload []byte) (uint64, any, error) {
	c := l.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	if c.leader != l.i || c.cut[l.i] {
		return 0, nil, errFakeNotLeader
	}
	c.entries = append(c.entries, append([]byte(nil), payload...))
	var res any
	for j := range c.machines {
		if c.cut[j] {
			continue
		}
		r := c.catchUpLocked(j)
		if j == l.i {
			res = r
		}
	}
	return uint64(len(c.entries)), res, nil
}

func (l *fakeLog) IsLeader() bool {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	return l.c.leader == l.i && !l.c.cut[l.i]
}

func (l *fakeLog) HasQuorum() bool { return l.IsLeader() }

func (l *fakeLog) Barrier(ctx context.Context) error {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	l.c.catchUpLocked(l.i)
	return nil
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// waitPhase waits until every machine of the cluster shows node in phase.
func waitPhase(t *testing.T, c *fakeCluster, node string, want Phase, timeout time.Duration) TargetState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		for i := range c.machines {
			if !c.cut[i] {
				c.catchUpLocked(i)
			}
		}
		c.mu.Unlock()
		all := true
		var st TargetState
		for _, m := range c.machines {
			s, _ := m.State(node)
			if s.Phase != want {
				all = false
			}
			st = s
		}
		if all {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s, want %s (%+v)", node, st.Phase, want, st.Fence)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type outcomes struct {
	mu  sync.Mutex
	all []Outcome
}

func (o *outcomes) add(x Outcome) { o.mu.Lock(); o.all = append(o.all, x); o.mu.Unlock() }
func (o *outcomes) count(f func(Outcome) bool) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, x := range o.all {
		if f(x) {
			n++
		}
	}
	return n
}

func startCoordinator(t *testing.T, ctx context.Context, cfg CoordinatorConfig) *Coordinator {
	t.Helper()
	if cfg.Scan == 0 {
		cfg.Scan = 20 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	co, err := NewCoordinator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = co.Run(ctx) }()
	return co
}

func TestCoordinatorFencesThroughEmbeddedShelf(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startSimPeer(ctx, t)
	n2, n3 := nodeOf(p.blades[0]), nodeOf(p.blades[1])
	pl, _ := NewPICMG(PICMGConfig{Conn: p.sess, Method: PICMGPowerLevel, Targets: p.targets})
	levels := []Level{{Name: "picmg", Executors: []Executor{pl}, Confirm: ConfirmConfig{Timeout: 5 * time.Second, Interval: 50 * time.Millisecond}}}
	nodes := map[string]NodeConfig{"n1": {}, n2: {}, n3: {}}
	fc := newFakeCluster(3)
	var seen outcomes
	leader := startCoordinator(t, ctx, CoordinatorConfig{Self: "n1", Log: fc.log(0), Machine: fc.machines[0], Levels: levels, Nodes: nodes, OnOutcome: seen.add})
	follower := startCoordinator(t, ctx, CoordinatorConfig{Self: "n2x", Log: fc.log(1), Machine: fc.machines[1], Levels: levels, Nodes: nodes})

	t.Run("refusals", func(t *testing.T) {
		tests := []struct {
			name string
			co   *Coordinator
			node string
			want error
		}{
			{"follower", follower, n2, ErrNotLeader},
			{"self", leader, "n1", ErrSelf},
			{"unknown", leader, "n9", ErrUnknownNode},
		}
		for _, tc := range tests {
			if _, err := tc.co.MemberDead(ctx, tc.node, "test"); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		if st, _ := fc.machines[0].State(n2); st.Phase != PhaseIdle {
			t.Fatalf("a refused request changed the state: %s", st.Phase)
		}
	})

	o, err := leader.MemberDead(ctx, n2, "suspect by memberlist")
	if err != nil || !o.Accepted {
		t.Fatalf("member dead: %+v %v", o, err)
	}
	o2, err := leader.Request(ctx, n2, ActionOff, SourceHardware, "critical sensor", "")
	if err != nil || o2.Accepted || o2.ID != o.ID {
		t.Fatalf("second request not deduplicated: %+v %v", o2, err)
	}
	st := waitPhase(t, fc, n2, PhaseFenced, 10*time.Second)
	if lvl, _ := p.srv.Shelf().PowerLevel(p.blades[0]); lvl != 0 {
		t.Fatalf("fenced but blade power level %d", lvl)
	}
	if st.Fence.FencedBy != 0 || st.Dedups != 1 { // in flight or already fenced: either way one recorded duplicate
		t.Errorf("fence record %+v", st.Fence)
	}
	if lvl, _ := p.srv.Shelf().PowerLevel(p.blades[1]); lvl == 0 {
		t.Fatal("the other blade lost power")
	}
	// A fenced node stays fenced: another failure report changes nothing.
	if o, err := leader.MemberDead(ctx, n2, "still dead"); err != nil || o.Accepted || o.Phase != PhaseFenced {
		t.Fatalf("request on fenced node: %+v %v", o, err)
	}
	// Unfence by an operator.
	if o, err := leader.Unfence(ctx, n2, "alice", "repaired"); err != nil || !o.Accepted {
		t.Fatalf("unfence: %+v %v", o, err)
	}
	waitPhase(t, fc, n2, PhaseIdle, 10*time.Second)
	waitState(t, p, p.blades[0], sim.M4)
	if n := seen.count(func(o Outcome) bool { return o.Done }); n != 1 {
		t.Errorf("%d done outcomes, want 1", n)
	}

	// Reboot: off confirmed, then on again without an operator.
	if _, err := leader.Request(ctx, n3, ActionReboot, SourceOperator, "maintenance", "bob"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, _ := fc.machines[0].State(n3)
		if s.Phase == PhaseIdle && s.Unfence != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reboot of %s did not finish: %+v", n3, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitState(t, p, p.blades[1], sim.M4)
}

// gatedExecutor wraps an executor; its Off does the real work and then
// blocks until the context ends (a leader that dies after acting, before
// logging the result).
type gatedExecutor struct {
	Executor
	entered chan struct{}
	once    sync.Once
	through atomic.Bool
}

// open makes the executor pass calls through without blocking.
func (g *gatedExecutor) open() { g.through.Store(true) }

func (g *gatedExecutor) Off(ctx context.Context, node string) error {
	if g.through.Load() {
		return g.Executor.Off(ctx, node)
	}
	err := g.Executor.Off(ctx, node)
	g.once.Do(func() { close(g.entered) })
	<-ctx.Done()
	if err != nil {
		return err
	}
	return ctx.Err()
}

func TestCoordinatorNewLeaderFinishesFenceOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startSimPeer(ctx, t)
	target := nodeOf(p.blades[0])
	pl, _ := NewPICMG(PICMGConfig{Conn: p.sess, Method: PICMGPowerLevel, Targets: p.targets})
	confirm := ConfirmConfig{Timeout: 5 * time.Second, Interval: 50 * time.Millisecond}
	gate := &gatedExecutor{Executor: pl, entered: make(chan struct{})}
	nodes := map[string]NodeConfig{"n1": {}, "n2": {}, target: {}}
	fc := newFakeCluster(3)
	var seenA, seenB outcomes

	ctxA, killA := context.WithCancel(ctx)
	a := startCoordinator(t, ctxA, CoordinatorConfig{Self: "n1", Log: fc.log(0), Machine: fc.machines[0], Nodes: nodes, OnOutcome: seenA.add,
		Levels: []Level{{Name: "picmg", Executors: []Executor{gate}, Confirm: confirm}}})
	if _, err := a.MemberDead(ctx, target, "gone"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gate.entered:
	case <-ctx.Done():
		t.Fatal("old leader never executed the level")
	}
	// The old leader powered the blade off but dies before logging the
	// result; n2 is elected.
	killA()
	fc.setLeader(1)
	st, _ := fc.machines[1].State(target)
	oldExec := st.Fence.Exec
	if st.Phase != PhaseFencing || oldExec == 0 {
		t.Fatalf("state at failover: %+v", st)
	}
	startCoordinator(t, ctx, CoordinatorConfig{Self: "n2", Log: fc.log(1), Machine: fc.machines[1], Nodes: nodes, OnOutcome: seenB.add,
		Levels: []Level{{Name: "picmg", Executors: []Executor{pl}, Confirm: confirm}}})
	st = waitPhase(t, fc, target, PhaseFenced, 10*time.Second)
	if len(st.Fence.Results) != 1 || st.Fence.Results[0].Exec == oldExec || !st.Fence.Results[0].OK {
		t.Fatalf("results %+v (old execution %d)", st.Fence.Results, oldExec)
	}
	doneCount := func() int {
		return seenA.count(func(o Outcome) bool { return o.Done }) + seenB.count(func(o Outcome) bool { return o.Done })
	}
	waitAtLeast(t, doneCount, 1)
	time.Sleep(200 * time.Millisecond) // room for a second completion, were there one
	if n := doneCount(); n != 1 {
		t.Fatalf("fence completed %d times", n)
	}
	// The old leader's late result, were it ever committed, is ignored.
	o := fc.machines[1].Apply(fc.machines[1].LastIndex()+1, mustEncode(t, Command{Kind: KindLevelResult, Target: target, ID: st.Fence.ID, Level: 0, Attempt: 1, Exec: oldExec, OK: true, Readback: ReadbackOff})).(Outcome)
	if o.Accepted || o.Done {
		t.Fatalf("late result of the old leader counted: %+v", o)
	}
	if lvl, _ := p.srv.Shelf().PowerLevel(p.blades[0]); lvl != 0 {
		t.Fatalf("blade power level %d", lvl)
	}
}

func TestCoordinatorFallsThroughLevelsOnIPMISim(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sh, sess := startLabPeer(ctx, t)
	blade := sh.Blades[2]
	node := nodeOf(blade)
	targets := map[string]FRUTarget{node: {Addr: ipmi.Addr{Slave: blade}}}
	pl, _ := NewPICMG(PICMGConfig{Conn: sess, Method: PICMGPowerLevel, Targets: targets})
	ch, _ := NewChassis(ChassisConfig{Conn: sess, Targets: targets})
	confirm := ConfirmConfig{Timeout: 10 * time.Second, Interval: 100 * time.Millisecond}
	fc := newFakeCluster(1)
	var seen outcomes
	co := startCoordinator(t, ctx, CoordinatorConfig{Self: "n1", Log: fc.log(0), Machine: fc.machines[0], OnOutcome: seen.add,
		Nodes:  map[string]NodeConfig{node: {}},
		Levels: []Level{{Name: "picmg", Attempts: 2, Executors: []Executor{pl}, Confirm: confirm}, {Name: "chassis", Executors: []Executor{ch}, Confirm: confirm}}})
	if _, err := co.WatchdogExpired(ctx, node, "BMC watchdog expired"); err != nil {
		t.Fatal(err)
	}
	st := waitPhase(t, fc, node, PhaseFenced, 30*time.Second)
	if st.Fence.FencedBy != 1 || len(st.Fence.Results) != 3 {
		t.Fatalf("fence %+v", st.Fence)
	}
	for _, r := range st.Fence.Results[:2] {
		if r.OK || r.Level != 0 || !containsAll(r.Err, "not supported by this shelf manager") {
			t.Errorf("picmg result %+v", r)
		}
	}
	out, err := sh.Ipmitool(ctx, "-b", "0", "-t", fmt.Sprintf("0x%02x", blade), "chassis", "power", "status")
	if err != nil || !containsAll(out, "off") {
		t.Fatalf("ipmitool: %q %v", out, err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

func TestCoordinatorAllLevelsFail(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startSimPeer(ctx, t)
	// A node mapped to an address where no IPMC answers: every attempt fails.
	targets := map[string]FRUTarget{"ghost": {Addr: ipmi.Addr{Slave: 0xEE}}}
	pl, _ := NewPICMG(PICMGConfig{Conn: p.sess, Method: PICMGPowerLevel, Targets: targets})
	fc := newFakeCluster(2)
	var seen outcomes
	co := startCoordinator(t, ctx, CoordinatorConfig{Self: "n1", Log: fc.log(0), Machine: fc.machines[0], OnOutcome: seen.add,
		Nodes:  map[string]NodeConfig{"ghost": {}},
		Levels: []Level{{Name: "picmg", Attempts: 2, Executors: []Executor{pl}, Confirm: ConfirmConfig{Timeout: time.Second}}}})
	if _, err := co.MemberDead(ctx, "ghost", "test"); err != nil {
		t.Fatal(err)
	}
	st := waitPhase(t, fc, "ghost", PhaseFailed, 30*time.Second)
	if len(st.Fence.Results) != 2 {
		t.Fatalf("results %+v", st.Fence.Results)
	}
	// The alarm outcome reaches the hook once Propose returned.
	deadline := time.Now().Add(5 * time.Second)
	for seen.count(func(o Outcome) bool { return o.Failed }) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d failed outcomes, want 1", seen.count(func(o Outcome) bool { return o.Failed }))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A failed target may be fenced again.
	if o, err := co.MemberDead(ctx, "ghost", "retry"); err != nil || !o.Accepted {
		t.Fatalf("retry after failure: %+v %v", o, err)
	}
}

func TestHardwareFailureAndNodeFor(t *testing.T) {
	blade := hpi.EntityPath{{Type: hpi.EntPhysicalSlot, Location: 3}, {Type: hpi.EntRack, Location: 1}}
	other := hpi.EntityPath{{Type: hpi.EntPhysicalSlot, Location: 4}, {Type: hpi.EntRack, Location: 1}}
	fc := newFakeCluster(1)
	co, err := NewCoordinator(CoordinatorConfig{Self: "n1", Log: fc.log(0), Machine: fc.machines[0], Logger: quietLogger(),
		Nodes:  map[string]NodeConfig{"n3": {Entity: blade}, "n4": {Entity: other}, "n5": {}},
		Levels: []Level{{Name: "x", Executors: []Executor{&Chassis{}}}}})
	if err != nil {
		t.Fatal(err)
	}
	inner := append(hpi.EntityPath{{Type: hpi.EntProcessor, Location: 0}}, blade...)
	tests := []struct {
		name   string
		ev     hpi.Event
		src    Source
		entity hpi.EntityPath
		node   string
	}{
		{"resource failed", hpi.Event{Type: hpi.EventResource, Resource: hpi.ResourceEvent{Type: hpi.ResourceFailure}}, SourceHardware, blade, "n3"},
		{"resource restored", hpi.Event{Type: hpi.EventResource, Resource: hpi.ResourceEvent{Type: hpi.ResourceRestored}}, "", blade, "n3"},
		{"critical sensor inside blade", hpi.Event{Type: hpi.EventSensor, Severity: hpi.Critical, Sensor: hpi.SensorEvent{Assertion: true}}, SourceHardware, inner, "n3"},
		{"critical deassert", hpi.Event{Type: hpi.EventSensor, Severity: hpi.Critical}, "", other, "n4"},
		{"watchdog expiry", hpi.Event{Type: hpi.EventSensor, Severity: hpi.Minor, Sensor: hpi.SensorEvent{Assertion: true, SensorType: SensorWatchdog2, EventState: 1 << 1}}, SourceWatchdog, other, "n4"},
		{"major sensor", hpi.Event{Type: hpi.EventSensor, Severity: hpi.Major, Sensor: hpi.SensorEvent{Assertion: true}}, "", other, "n4"},
		{"unmapped entity", hpi.Event{Type: hpi.EventResource, Resource: hpi.ResourceEvent{Type: hpi.ResourceFailure}}, SourceHardware, hpi.EntityPath{{Type: hpi.EntRack, Location: 1}}, ""},
	}
	for _, tc := range tests {
		src, _, fail := FailureOf(tc.ev)
		if fail != (tc.src != "") || src != tc.src {
			t.Errorf("%s: FailureOf=%q %v, want %q", tc.name, src, fail, tc.src)
		}
		node, _ := co.NodeFor(tc.entity)
		if node != tc.node {
			t.Errorf("%s: NodeFor=%q, want %q", tc.name, node, tc.node)
		}
	}
}

// TestWatchEventsFromDomain feeds a real hpi.Domain's events: a blade
// whose controller is lost (M7) becomes a fence request in the log, found
// through the model at the scan the event starts; a resource marked
// failed without M7 (what a lost shelf manager does to every resource)
// fences nothing, nor does any resource failure without FailedHardware.
func TestWatchEventsFromDomain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		m7        bool
		withModel bool
		fenced    bool
	}{
		{"M7 with the model", true, true, true},
		{"failed without M7", false, true, false},
		{"M7 without the model", true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			m := newTestShelfModel(t, 3, 4)
			sub, err := m.d.Subscribe(16)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			fc := newFakeCluster(2)
			never := &gatedExecutor{Executor: &Chassis{cfg: ChassisConfig{Name: "never"}}, entered: make(chan struct{})}
			cfg := CoordinatorConfig{Self: "n1", Log: fc.log(0), Machine: fc.machines[0], Logger: quietLogger(), Scan: 20 * time.Millisecond,
				Nodes:  map[string]NodeConfig{"n3": {Entity: slotPath(3)}, "n4": {Entity: slotPath(4)}},
				Levels: []Level{{Name: "x", Executors: []Executor{never}}}}
			if tc.withModel {
				cfg.FailedHardware = m.failures
			}
			co, err := NewCoordinator(cfg)
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = co.WatchEvents(ctx, sub) }()
			if tc.m7 {
				m.mstate(t, 3, hpi.M7)
			} else if err := m.d.SetResourceFailed(m.ids[3], true, time.Now()); err != nil {
				t.Fatal(err)
			}
			// A critical sensor of n4 marks that the events were read and
			// acted on.
			m.temp(t, 4, hpi.ESUpperCrit)
			deadline := time.Now().Add(5 * time.Second)
			for st, _ := fc.machines[1].State("n4"); st.Phase == PhaseIdle; st, _ = fc.machines[1].State("n4") {
				if time.Now().After(deadline) {
					t.Fatal("the critical sensor event of n4 was not acted on")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if tc.withModel {
				scanOnce(ctx, co)
			}
			st, _ := fc.machines[1].State("n3")
			if fenced := st.Phase != PhaseIdle; fenced != tc.fenced {
				t.Fatalf("n3 in %s, want fenced %v", st.Phase, tc.fenced)
			}
			if tc.fenced && st.Fence.Source != SourceHardware {
				t.Fatalf("source %s", st.Fence.Source)
			}
		})
	}
}

func TestRepeatedReportsAreRateLimited(t *testing.T) {
	fc := newFakeCluster(1)
	now := t0coord
	co, err := NewCoordinator(CoordinatorConfig{Self: "n1", Log: fc.log(0), Machine: fc.machines[0], Logger: quietLogger(),
		Now: func() time.Time { return now }, RepeatInterval: 10 * time.Second,
		Nodes: map[string]NodeConfig{"n2": {}}, Levels: []Level{{Name: "x", Executors: []Executor{&Chassis{}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	entries := func() int { fc.mu.Lock(); defer fc.mu.Unlock(); return len(fc.entries) }
	steps := []struct {
		name    string
		advance time.Duration
		source  Source
		entries int
	}{
		{"first report starts the fence", 0, SourceMemberDead, 1},
		{"repeat within the interval dropped", time.Second, SourceMemberDead, 1},
		{"another source is recorded", 0, SourceHardware, 2},
		{"repeat after the interval recorded", 10 * time.Second, SourceMemberDead, 3},
		{"operator always recorded", 0, SourceOperator, 4},
		{"operator again recorded", 0, SourceOperator, 5},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		if _, err := co.Request(ctx, "n2", ActionOff, s.source, "test", "op"); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := entries(); got != s.entries {
			t.Fatalf("%s: %d log entries, want %d", s.name, got, s.entries)
		}
	}
	st, _ := fc.machines[0].State("n2")
	if st.Dedups != 4 || st.Phase != PhaseFencing {
		t.Fatalf("state %+v", st)
	}
}

var t0coord = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// waitAtLeast waits until count() reaches n (outcome hooks run after the
// entry is applied, so they may trail the replicated state a little).
func waitAtLeast(t *testing.T, count func() int, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("count %d, want at least %d", count(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
