package fencing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/hpi"
)

// tableExec is an in-process executor: a table of power states. It
// records which nodes it was asked to power off.
type tableExec struct {
	mu   sync.Mutex
	off  map[string]bool
	offs []string
}

func newTableExec() *tableExec { return &tableExec{off: map[string]bool{}} }

func (e *tableExec) Name() string { return "table" }
func (e *tableExec) Off(_ context.Context, n string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.off[n] = true
	e.offs = append(e.offs, n)
	return nil
}
func (e *tableExec) On(_ context.Context, n string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.off[n] = false
	return nil
}
func (e *tableExec) Status(_ context.Context, n string) (PowerStatus, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.off[n] {
		return PowerOff, nil
	}
	return PowerOn, nil
}
func (e *tableExec) offCalls(n string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := 0
	for _, x := range e.offs {
		if x == n {
			k++
		}
	}
	return k
}

func tableLevel(e Executor) []Level {
	return []Level{{Name: "table", Executors: []Executor{e}, Confirm: ConfirmConfig{Timeout: 2 * time.Second, Interval: 5 * time.Millisecond}}}
}

// transferLog is a fake log member that can hand the leadership over:
// to the member to (when ok) or failing with err.
type transferLog struct {
	*fakeLog
	mu    sync.Mutex
	to    int
	names []string
	err   error
	calls int
}

func (l *transferLog) TransferLeadership(ctx context.Context) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if !l.fakeLog.IsLeader() {
		return "", errFakeNotLeader
	}
	if l.err != nil {
		return "", l.err
	}
	l.c.setLeader(l.to)
	return l.names[l.to], nil
}

func (l *transferLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}

// slotPath is the entity path of the blade in slot s of a shelf.
func slotPath(s hpi.EntityLocation) hpi.EntityPath {
	return hpi.EntityPath{{Type: hpi.EntPhysicalSlot, Location: s}, {Type: hpi.EntAdvancedTCAChassis, Location: 1}}
}

// testShelfModel is an HPI domain with one FRU resource (a front board
// inside the slot) with one temperature sensor per blade slot.
type testShelfModel struct {
	d   *hpi.Domain
	ids map[hpi.EntityLocation]hpi.ResourceID
}

func newTestShelfModel(t *testing.T, slots ...hpi.EntityLocation) *testShelfModel {
	t.Helper()
	m := &testShelfModel{d: hpi.NewDomain(hpi.Config{Logger: quietLogger()}), ids: map[hpi.EntityLocation]hpi.ResourceID{}}
	for _, s := range slots {
		path := append(hpi.EntityPath{{Type: hpi.EntPICMGFrontBlade, Location: 0}}, slotPath(s)...)
		sensor := hpi.RDR{Type: hpi.SensorRDR, IDString: "temp", Sensor: &hpi.SensorRec{
			Num: 7, Type: hpi.SensorTemperature, Category: hpi.ECThreshold, EventCtrl: hpi.SECPerEvent,
			Events:     hpi.ESUpperMinor | hpi.ESUpperMajor | hpi.ESUpperCrit,
			DataFormat: hpi.SensorDataFormat{IsSupported: true, ReadingType: hpi.ReadingFloat64, BaseUnits: hpi.UnitsDegreesC}}}
		id, err := m.d.UpsertResource(hpi.RPTEntry{EntityPath: path, Tag: fmt.Sprintf("blade %d", s), Severity: hpi.Major,
			Capabilities: hpi.CapabilityResource | hpi.CapabilityRDR | hpi.CapabilitySensor | hpi.CapabilityFRU | hpi.CapabilityManagedHotswap},
			[]hpi.RDR{sensor})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.d.ObserveMState(id, hpi.MStateUnknown, hpi.M4, hpi.HsCauseUnknown, time.Now()); err != nil {
			t.Fatal(err)
		}
		m.ids[s] = id
	}
	return m
}

// temp sets the sensor of slot s to states.
func (m *testShelfModel) temp(t *testing.T, s hpi.EntityLocation, states hpi.EventState) {
	t.Helper()
	if _, err := m.d.SetSensorReading(m.ids[s], 7, hpi.Float(50), states, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// mstate observes slot s's FRU in M-state ms.
func (m *testShelfModel) mstate(t *testing.T, s hpi.EntityLocation, ms hpi.MState) {
	t.Helper()
	if _, _, err := m.d.ObserveMState(m.ids[s], hpi.MStateUnknown, ms, hpi.HsCauseUnknown, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func (m *testShelfModel) failures() []Failure { return CurrentFailures(m.d) }

func TestCurrentFailures(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, m *testShelfModel)
		want  []string // reasons' distinctive parts, per failure, in order
		slots []hpi.EntityLocation
	}{
		{"healthy shelf", func(*testing.T, *testShelfModel) {}, nil, nil},
		{"controller silent (M7)", func(t *testing.T, m *testShelfModel) { m.mstate(t, 3, hpi.M7) }, []string{"communication lost (M7)"}, []hpi.EntityLocation{3}},
		{"back from M7", func(t *testing.T, m *testShelfModel) { m.mstate(t, 3, hpi.M7); m.mstate(t, 3, hpi.M4) }, nil, nil},
		{"shelf manager lost: failed without M7", func(t *testing.T, m *testShelfModel) {
			if err := m.d.SetResourceFailed(m.ids[3], true, time.Now()); err != nil {
				t.Fatal(err)
			}
		}, nil, nil},
		{"critical sensor", func(t *testing.T, m *testShelfModel) { m.temp(t, 4, hpi.ESUpperMinor|hpi.ESUpperMajor|hpi.ESUpperCrit) }, []string{"critical sensor 7 of resource 2 \"blade 4\" asserts state 0x20"}, []hpi.EntityLocation{4}},
		{"major sensor", func(t *testing.T, m *testShelfModel) { m.temp(t, 4, hpi.ESUpperMinor|hpi.ESUpperMajor) }, nil, nil},
		{"critical sensor cleared", func(t *testing.T, m *testShelfModel) {
			m.temp(t, 4, hpi.ESUpperCrit)
			m.temp(t, 4, hpi.ESUpperMajor)
		}, nil, nil},
		{"both", func(t *testing.T, m *testShelfModel) { m.mstate(t, 3, hpi.M7); m.temp(t, 4, hpi.ESUpperCrit) }, []string{"M7", "critical"}, []hpi.EntityLocation{3, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestShelfModel(t, 3, 4)
			tc.setup(t, m)
			got := m.failures()
			if len(got) != len(tc.want) {
				t.Fatalf("failures %+v, want %d", got, len(tc.want))
			}
			for i, f := range got {
				if !strings.Contains(f.Reason, tc.want[i]) {
					t.Errorf("failure %d reason %q, want it to say %q", i, f.Reason, tc.want[i])
				}
				// Reported under the resource's path, inside the slot.
				if !f.Entity[len(f.Entity)-2:].Equal(slotPath(tc.slots[i])) {
					t.Errorf("failure %d entity %s, want inside %s", i, f.Entity, slotPath(tc.slots[i]))
				}
			}
		})
	}
}

// hwCoordinator builds a coordinator of member i of fc (not running: the
// tests call its scan directly, so every step is deterministic).
func hwCoordinator(t *testing.T, fc *fakeCluster, i int, log Log, m *testShelfModel, exec Executor, now *time.Time, handOvers *[]HandOver) *Coordinator {
	t.Helper()
	var mu sync.Mutex
	co, err := NewCoordinator(CoordinatorConfig{Self: fmt.Sprintf("n%d", i+1), Log: log, Machine: fc.machines[i], Logger: quietLogger(),
		Nodes:          map[string]NodeConfig{"n1": {Entity: slotPath(3)}, "n2": {Entity: slotPath(4)}, "n3": {Entity: slotPath(5)}},
		Levels:         tableLevel(exec),
		FailedHardware: m.failures,
		RepeatInterval: 10 * time.Second,
		Now:            func() time.Time { return *now },
		OnHandOver: func(h HandOver) {
			mu.Lock()
			*handOvers = append(*handOvers, h)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return co
}

// scanOnce runs one scan round of co as Run does on the leader.
func scanOnce(ctx context.Context, co *Coordinator) {
	failed := co.hardwareFailures()
	if co.leader() {
		co.scan(ctx, failed)
	}
}

// settle scans with co until node is in phase want on co's machine (the
// scan starts the drivers that carry operations forward).
func settle(t *testing.T, ctx context.Context, co *Coordinator, node string, want Phase) TargetState {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		scanOnce(ctx, co)
		st, _ := co.cfg.Machine.State(node)
		if st.Phase == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s, want %s (%+v)", node, st.Phase, want, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestScanFencesFailureSeenOnlyInModel: a failure that reached no event
// consumer (it happened before this node led) is found by the leader's
// scan in the model and fenced once; the unfence rule keeps a persisting
// failure from fencing again; a failed fence is not retried from the scan.
func TestScanFencesFailureSeenOnlyInModel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := newTestShelfModel(t, 3, 4, 5)
	fc := newFakeCluster(2)
	exec := newTableExec()
	now := t0coord
	var hos []HandOver
	co := hwCoordinator(t, fc, 0, fc.log(0), m, exec, &now, &hos)
	entries := func() int { fc.mu.Lock(); defer fc.mu.Unlock(); return len(fc.entries) }

	scanOnce(ctx, co)
	if n := entries(); n != 0 {
		t.Fatalf("healthy shelf: %d log entries", n)
	}
	m.temp(t, 4, hpi.ESUpperCrit) // n2's blade
	scanOnce(ctx, co)
	st := waitPhase(t, fc, "n2", PhaseFenced, 10*time.Second)
	if st.Fence.Source != SourceHardware || !strings.Contains(st.Fence.Reason, "critical sensor 7") {
		t.Fatalf("fence %+v", st.Fence)
	}
	// Later scans while the failure persists add nothing.
	before := entries()
	for range 3 {
		scanOnce(ctx, co)
	}
	if n := entries(); n != before {
		t.Fatalf("scans of a fenced node wrote %d entries", n-before)
	}

	steps := []struct {
		name   string
		change func()
		fenced bool // a new fence is requested by the next scan
	}{
		{"unfenced while the sensor still reads critical: not fenced again", func() {
			if _, err := co.Unfence(ctx, "n2", "alice", "let it boot"); err != nil {
				t.Fatal(err)
			}
			settle(t, ctx, co, "n2", PhaseIdle)
		}, false},
		{"still critical: still not fenced", func() {}, false},
		{"sensor clears", func() { m.temp(t, 4, hpi.ESUpperMinor) }, false},
		{"critical again: a new failure, fenced once", func() { m.temp(t, 4, hpi.ESUpperCrit) }, true},
	}
	for _, s := range steps {
		s.change()
		before := entries()
		scanOnce(ctx, co)
		if s.fenced {
			waitPhase(t, fc, "n2", PhaseFenced, 10*time.Second)
		} else {
			scanOnce(ctx, co)
			if n := entries(); n != before {
				t.Fatalf("%s: %d log entries written", s.name, n-before)
			}
		}
	}
	if n := exec.offCalls("n2"); n != 2 {
		t.Errorf("n2 powered off %d times, want 2", n)
	}

	// A fence that failed on every level is not retried from the scan.
	failing := &failExec{}
	fc2 := newFakeCluster(1)
	co2, err := NewCoordinator(CoordinatorConfig{Self: "n1", Log: fc2.log(0), Machine: fc2.machines[0], Logger: quietLogger(),
		Nodes: map[string]NodeConfig{"n3": {Entity: slotPath(5)}}, Levels: tableLevel(failing), FailedHardware: m.failures})
	if err != nil {
		t.Fatal(err)
	}
	m.mstate(t, 5, hpi.M7)
	scanOnce(ctx, co2)
	waitPhase(t, fc2, "n3", PhaseFailed, 10*time.Second)
	before = func() int { fc2.mu.Lock(); defer fc2.mu.Unlock(); return len(fc2.entries) }()
	for range 3 {
		scanOnce(ctx, co2)
	}
	if n := func() int { fc2.mu.Lock(); defer fc2.mu.Unlock(); return len(fc2.entries) }(); n != before {
		t.Fatalf("a failed fence was retried from the scan: %d entries", n-before)
	}
	if len(hos) != 0 {
		t.Errorf("hand-overs %+v for failures of other nodes", hos)
	}
}

// failExec fails every power-off.
type failExec struct{}

func (failExec) Name() string                                        { return "fail" }
func (failExec) Off(context.Context, string) error                   { return errors.New("no answer") }
func (failExec) On(context.Context, string) error                    { return errors.New("no answer") }
func (failExec) Status(context.Context, string) (PowerStatus, error) { return PowerUnknown, nil }

// TestLeaderHandsOverOnOwnFailure: the leader n1 finds its own blade
// failed (M7) in the model: it hands the leadership over and fences
// nothing itself; the new leader n2's scan fences n1, once.
func TestLeaderHandsOverOnOwnFailure(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := newTestShelfModel(t, 3, 4, 5)
	fc := newFakeCluster(3)
	names := []string{"n1", "n2", "n3"}
	exec1, exec2 := newTableExec(), newTableExec()
	now := t0coord
	var hos1, hos2 []HandOver
	log1 := &transferLog{fakeLog: fc.log(0).(*fakeLog), to: 1, names: names}
	log2 := &transferLog{fakeLog: fc.log(1).(*fakeLog), to: 0, names: names}
	co1 := hwCoordinator(t, fc, 0, log1, m, exec1, &now, &hos1)
	co2 := hwCoordinator(t, fc, 1, log2, m, exec2, &now, &hos2)

	m.mstate(t, 3, hpi.M7) // n1's blade
	scanOnce(ctx, co2)     // a follower does nothing
	scanOnce(ctx, co1)
	if len(hos1) != 1 || hos1[0].To != "n2" || hos1[0].Err != nil || !strings.Contains(hos1[0].Reason, "M7") {
		t.Fatalf("hand-overs of n1: %+v", hos1)
	}
	if log1.IsLeader() || !log2.IsLeader() {
		t.Fatal("leadership did not move to n2")
	}
	if st, _ := fc.machines[0].State("n1"); st.Phase != PhaseIdle {
		t.Fatalf("n1 wrote a fence of itself: %+v", st)
	}
	scanOnce(ctx, co1) // now a follower: nothing
	scanOnce(ctx, co2)
	st := waitPhase(t, fc, "n1", PhaseFenced, 10*time.Second)
	if st.Fence.Source != SourceHardware || st.Dedups != 0 {
		t.Fatalf("fence %+v", st)
	}
	for range 3 {
		scanOnce(ctx, co2)
		scanOnce(ctx, co1)
	}
	if n1, n2 := exec1.offCalls("n1"), exec2.offCalls("n1"); n1 != 0 || n2 != 1 {
		t.Fatalf("n1 powered off %d times by itself and %d times by n2, want 0 and 1", n1, n2)
	}
	if len(hos1) != 1 || len(hos2) != 0 || log1.count() != 1 {
		t.Fatalf("hand-overs: n1 %+v, n2 %+v, %d transfer calls", hos1, hos2, log1.count())
	}
}

// TestHandOverRateLimitAndRefusals: a leader whose hand-over fails tries
// again only after RepeatInterval, keeps leading and fences nothing; an
// operator asking the leader to fence itself gets ErrSelf then, and
// ErrNotLeader (retry on the new leader) once the hand-over works; a
// follower answers ErrNotLeader (the leader fences it).
func TestHandOverRateLimitAndRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := newTestShelfModel(t, 3, 4, 5)
	fc := newFakeCluster(3)
	names := []string{"n1", "n2", "n3"}
	now := t0coord
	var hos []HandOver
	log1 := &transferLog{fakeLog: fc.log(0).(*fakeLog), to: 2, names: names, err: errors.New("no other voter alive")}
	co1 := hwCoordinator(t, fc, 0, log1, m, newTableExec(), &now, &hos)
	var hos2 []HandOver
	co2 := hwCoordinator(t, fc, 1, fc.log(1), m, newTableExec(), &now, &hos2)

	m.temp(t, 3, hpi.ESUpperCrit) // n1's blade
	steps := []struct {
		name    string
		advance time.Duration
		calls   int
	}{
		{"first scan tries", 0, 1},
		{"scan within the interval does not", time.Second, 1},
		{"again within the interval", 8 * time.Second, 1},
		{"after the interval tries again", 2 * time.Second, 2},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		scanOnce(ctx, co1)
		if got := log1.count(); got != s.calls {
			t.Fatalf("%s: %d transfer calls, want %d", s.name, got, s.calls)
		}
	}
	if !log1.IsLeader() || fc.machines[0].LastIndex() != 0 {
		t.Fatalf("leader changed or wrote entries: leader %v, last index %d", log1.IsLeader(), fc.machines[0].LastIndex())
	}
	if len(hos) != 2 || hos[0].Err == nil || hos[0].To != "" {
		t.Fatalf("hand-overs %+v", hos)
	}

	// Operator requests for the leader's own node.
	if _, err := co2.Request(ctx, "n2", ActionOff, SourceOperator, "test", "alice"); !errors.Is(err, ErrNotLeader) {
		t.Errorf("follower asked to fence itself: %v, want ErrNotLeader", err)
	}
	_, err := co1.Request(ctx, "n1", ActionOff, SourceOperator, "test", "alice")
	if !errors.Is(err, ErrSelf) || errors.Is(err, ErrNotLeader) {
		t.Fatalf("rate-limited self fence: %v, want ErrSelf only", err)
	}
	now = now.Add(10 * time.Second)
	_, err = co1.Request(ctx, "n1", ActionOff, SourceOperator, "test", "alice")
	if !errors.Is(err, ErrSelf) || errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), "no other voter alive") {
		t.Fatalf("self fence without a hand-over: %v, want ErrSelf naming the cause", err)
	}
	log1.mu.Lock()
	log1.err = nil
	log1.mu.Unlock()
	now = now.Add(10 * time.Second)
	_, err = co1.Request(ctx, "n1", ActionOff, SourceOperator, "test", "alice")
	if !errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), "n3") {
		t.Fatalf("self fence with a hand-over: %v, want ErrNotLeader naming n3", err)
	}
	if log1.IsLeader() || fc.machines[0].LastIndex() != 0 {
		t.Fatal("the leader did not hand over, or wrote an entry")
	}
	// Without a log that can hand over: ErrSelf, nothing written.
	fc3 := newFakeCluster(1)
	co3, err := NewCoordinator(CoordinatorConfig{Self: "n1", Log: fc3.log(0), Machine: fc3.machines[0], Logger: quietLogger(),
		Nodes: map[string]NodeConfig{"n1": {}}, Levels: tableLevel(newTableExec())})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := co3.Request(ctx, "n1", ActionOff, SourceOperator, "x", "alice"); !errors.Is(err, ErrSelf) || errors.Is(err, ErrNotLeader) {
		t.Fatalf("no hand-over possible: %v, want ErrSelf", err)
	}
}

// TestLeaderNeverDrivesItsOwnFence: a fence of the leader's own node in
// the log (requested by an earlier leader) is not executed by it; it
// hands over and the new leader completes it.
func TestLeaderNeverDrivesItsOwnFence(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := newTestShelfModel(t, 3, 4, 5)
	fc := newFakeCluster(3)
	names := []string{"n1", "n2", "n3"}
	exec1, exec2 := newTableExec(), newTableExec()
	now := t0coord
	var hos1, hos2 []HandOver
	log1 := &transferLog{fakeLog: fc.log(0).(*fakeLog), to: 1, names: names}
	co1 := hwCoordinator(t, fc, 0, log1, m, exec1, &now, &hos1)
	co2 := hwCoordinator(t, fc, 1, fc.log(1), m, exec2, &now, &hos2)
	// n2 led and requested the fence of n1, then n1 was elected.
	fc.setLeader(1)
	if _, err := co2.Request(ctx, "n1", ActionOff, SourceOperator, "maintenance", "bob"); err != nil {
		t.Fatal(err)
	}
	fc.setLeader(0)
	scanOnce(ctx, co1)
	if len(hos1) != 1 || hos1[0].To != "n2" {
		t.Fatalf("hand-overs %+v", hos1)
	}
	scanOnce(ctx, co2)
	waitPhase(t, fc, "n1", PhaseFenced, 10*time.Second)
	if exec1.offCalls("n1") != 0 || exec2.offCalls("n1") != 1 {
		t.Fatalf("n1 powered off %d times by itself, %d by n2", exec1.offCalls("n1"), exec2.offCalls("n1"))
	}
}

// TestResourceFailureEventIsAHint: with FailedHardware set, a RESOURCE
// FAILURE event of a shelf manager that stopped answering (failed without
// M7) fences nothing; a critical sensor event still fences at once.
func TestResourceFailureEventIsAHint(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := newTestShelfModel(t, 3, 4, 5)
	sub, err := m.d.Subscribe(64)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	fc := newFakeCluster(1)
	now := t0coord
	var hos []HandOver
	co := hwCoordinator(t, fc, 0, fc.log(0), m, newTableExec(), &now, &hos)
	go func() { _ = co.WatchEvents(ctx, sub) }()
	for _, s := range []hpi.EntityLocation{3, 4, 5} {
		if err := m.d.SetResourceFailed(m.ids[s], true, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	m.temp(t, 5, hpi.ESUpperCrit) // n3: a marker that the events were read
	deadline := time.Now().Add(10 * time.Second)
	for st, _ := fc.machines[0].State("n3"); st.Phase == PhaseIdle; st, _ = fc.machines[0].State("n3") {
		if time.Now().After(deadline) {
			t.Fatal("the critical sensor event of n3 was not acted on")
		}
		time.Sleep(5 * time.Millisecond)
	}
	st := settle(t, ctx, co, "n3", PhaseFenced)
	if !strings.Contains(st.Fence.Reason, "critical sensor") {
		t.Fatalf("n3 fence reason %q", st.Fence.Reason)
	}
	scanOnce(ctx, co)
	for _, n := range []string{"n1", "n2"} {
		if st, _ := fc.machines[0].State(n); st.Phase != PhaseIdle {
			t.Errorf("%s fenced for a lost shelf manager: %+v", n, st)
		}
	}
	if len(hos) != 0 {
		t.Errorf("the leader handed over for a lost shelf manager: %+v", hos)
	}
}
