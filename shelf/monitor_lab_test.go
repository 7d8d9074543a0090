package shelf_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/hpi"
	"hpiagent/internal/labshelf"
	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
)

// Hardware is the interface the API package declares for the shelf's
// hardware actions; the Monitor must satisfy it exactly.
type Hardware interface {
	SetPowerState(ctx context.Context, id hpi.ResourceID, s hpi.PowerState) error
	PowerState(ctx context.Context, id hpi.ResourceID) (hpi.PowerState, error)
	Reset(ctx context.Context, id hpi.ResourceID, a hpi.ResetAction) error
	HotSwapAction(ctx context.Context, id hpi.ResourceID, a hpi.IntentAction) error
	SetControl(ctx context.Context, id hpi.ResourceID, num hpi.CtrlNum, s hpi.CtrlState) error
}

var _ Hardware = (*shelf.Monitor)(nil)

func monLogger(t *testing.T) *slog.Logger {
	t.Helper()
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

// monRun is a Monitor running on a domain with a subscription opened
// before it started.
type monRun struct {
	m    *shelf.Monitor
	d    *hpi.Domain
	sub  *hpi.Subscription
	conn ipmi.Conn
	// events are every event the subscription received, in order.
	mu     sync.Mutex
	events []hpi.Event
	added  chan struct{}
	errc   chan error
}

func startMonitor(ctx context.Context, t *testing.T, conn ipmi.Conn, cfg shelf.MonitorConfig) *monRun {
	t.Helper()
	r := startMonitorNoWait(ctx, t, conn, cfg)
	r.waitUntil(ctx, t, "first discovery", 60*time.Second, func() bool { return r.m.Stats().Discoveries >= 1 })
	return r
}

// startMonitorNoWait is startMonitor without waiting for the discovery.
func startMonitorNoWait(ctx context.Context, t *testing.T, conn ipmi.Conn, cfg shelf.MonitorConfig) *monRun {
	t.Helper()
	d := hpi.NewDomain(hpi.Config{Logger: monLogger(t)})
	sub, err := d.Subscribe(4096)
	if err != nil {
		t.Fatal(err)
	}
	r := &monRun{d: d, sub: sub, conn: conn, added: make(chan struct{}, 1), errc: make(chan error, 1)}
	r.m = shelf.NewMonitor(cfg, conn, d, monLogger(t))
	runCtx, cancel := context.WithCancel(ctx)
	go func() { r.errc <- r.m.Run(runCtx) }()
	go func() {
		for {
			ev, err := sub.Receive(runCtx)
			if err != nil {
				if runCtx.Err() == nil {
					t.Errorf("subscription: %v", err)
				}
				return
			}
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
			select {
			case r.added <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.errc:
		case <-time.After(30 * time.Second):
			t.Errorf("Monitor.Run did not return after cancel")
		}
	})
	return r
}

func (r *monRun) snapshot() []hpi.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hpi.Event(nil), r.events...)
}

// waitUntil waits for cond, failing the test after limit.
func (r *monRun) waitUntil(ctx context.Context, t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.After(limit)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; stats %+v", what, ctx.Err(), r.m.Stats())
		case <-deadline:
			t.Fatalf("waiting for %s: not within %s; stats %+v; events:%s", what, limit, r.m.Stats(), hpiEvents(r.snapshot()))
		case <-r.added:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func hpiEvents(evs []hpi.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  #%d res %d %s", e.ID, e.Source, e.Type)
		switch e.Type {
		case hpi.EventHotSwap:
			fmt.Fprintf(&b, " %s -> %s (%s)", e.HotSwap.PreviousHotSwapState, e.HotSwap.HotSwapState, e.HotSwap.CauseOfStateChange)
		case hpi.EventResource:
			fmt.Fprintf(&b, " %s", e.Resource.Type)
		case hpi.EventSensor:
			fmt.Fprintf(&b, " sensor %d assert=%v state 0x%x", e.Sensor.Num, e.Sensor.Assertion, uint16(e.Sensor.EventState))
		}
	}
	return b.String()
}

// hotSwapEvents returns the HOTSWAP events of resource id.
func hotSwapEvents(evs []hpi.Event, id hpi.ResourceID) []hpi.HotSwapEvent {
	var out []hpi.HotSwapEvent
	for _, e := range evs {
		if e.Type == hpi.EventHotSwap && e.Source == id {
			out = append(out, e.HotSwap)
		}
	}
	return out
}

// labMonitorSession starts a lab shelf and a session to it.
func labMonitorSession(t *testing.T, opts ...labshelf.Option) (*labshelf.Shelf, *rmcpp.Session, context.Context) {
	t.Helper()
	sh := labshelf.Start(t, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return sh, sess, ctx
}

// fruResource finds, by a discovery of its own, the resource of FRU 0 of
// the controller at IPMB address addr and its hot-swap sensor.
func fruResource(ctx context.Context, t *testing.T, conn ipmi.Conn, d *hpi.Domain, addr uint8) (hpi.ResourceID, *shelf.Sensor) {
	t.Helper()
	// The Monitor may be reading the repository at the same time, which
	// cancels reservations: retry.
	var snap *shelf.Snapshot
	var err error
	for range 5 {
		if snap, err = shelf.Discover(ctx, conn, shelf.DiscoverOptions{}); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	mc := snap.MCAt(addr)
	if mc == nil {
		t.Fatalf("no controller 0x%02x discovered", addr)
	}
	f := mc.FRUOf(0)
	id, ok := d.ResourceIDFor(shelf.EntityPathOf(mc, f, shelf.ModelOptions{}))
	if !ok {
		t.Fatalf("no resource for %s FRU 0 (%s)", mc, shelf.EntityPathOf(mc, f, shelf.ModelOptions{}))
	}
	return id, f.HotSwap
}

// TestMonitorHotSwapFromLab drives a blade's hot-swap sensor through the
// M-states with the emulator console (ipmi_sim logs its own events) and
// checks the HPI hot-swap events on a subscription: the right previous
// and new states, one event per HPI transition although both the poller
// and the SEL follower see every change, each within a few poll intervals.
func TestMonitorHotSwapFromLab(t *testing.T) {
	t.Parallel()
	sh, sess, ctx := labMonitorSession(t)
	const interval = 300 * time.Millisecond
	cfg := shelf.MonitorConfig{Name: "lab", SELInterval: interval,
		Poll: shelf.PollConfig{Default: 5 * time.Second, ByType: map[uint8]time.Duration{shelf.SensorTypeHotSwap: interval}}}
	r := startMonitor(ctx, t, sess, cfg)
	blade := sh.Blades[2]
	res, hs := fruResource(ctx, t, sess, r.d, blade)
	if hs == nil {
		t.Fatalf("blade 0x%02x has no hot-swap sensor", blade)
	}
	r.waitUntil(ctx, t, "blade active", 10*time.Second, func() bool {
		st, err := r.d.HotSwapState(res)
		return err == nil && st.Known && st.State == hpi.HsStateActive
	})
	// Console commands name the owner and sensor number from the SDRs,
	// and LUN 0.
	set := func(m int) {
		t.Helper()
		if _, err := sh.Console(ctx, fmt.Sprintf("sensor_set_bit_clr_rest 0x%02x 0 %d %d 1", blade, hs.Number, m)); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		m    int
		want []hpi.HotSwapEvent // HPI transitions this step makes
	}{
		{5, []hpi.HotSwapEvent{{PreviousHotSwapState: hpi.HsStateActive, HotSwapState: hpi.HsStateExtractionPending}}},
		{6, nil},
		{1, []hpi.HotSwapEvent{{PreviousHotSwapState: hpi.HsStateExtractionPending, HotSwapState: hpi.HsStateInactive}}},
		{2, []hpi.HotSwapEvent{{PreviousHotSwapState: hpi.HsStateInactive, HotSwapState: hpi.HsStateInsertionPending}}},
		{3, nil},
		{4, []hpi.HotSwapEvent{{PreviousHotSwapState: hpi.HsStateInsertionPending, HotSwapState: hpi.HsStateActive}}},
	}
	var want []hpi.HotSwapEvent
	polls := r.m.Stats().Poll.Reads
	for _, s := range steps {
		set(s.m)
		setAt := time.Now()
		want = append(want, s.want...)
		// The change must be in the domain before the next-but-one read of
		// the sensor after the change has been handled: the poller's own
		// history of readings is the clock, not the wall clock (a loaded
		// CI machine only makes every read slower).
		r.waitUntil(ctx, t, fmt.Sprintf("M%d observed", s.m), 30*time.Second, func() bool {
			st, err := r.d.HotSwapState(res)
			if err == nil && st.LastMState == hpi.MState(s.m) && len(hotSwapEvents(r.snapshot(), res)) >= len(want) {
				return true
			}
			ps, _ := r.m.SensorStatus(hs.ID())
			after := 0
			for _, smp := range ps.History {
				if smp.Time.After(setAt) {
					after++
				}
			}
			if after >= 3 {
				t.Fatalf("M%d: not in the domain after %d reads since the change (last M-state %s, err %v):%s", s.m, after, st.LastMState, err, hpiEvents(r.snapshot()))
			}
			return false
		})
	}
	// Let the SEL follower read every record and the poller read again.
	sel := r.m.Stats().SELEntries
	r.waitUntil(ctx, t, "SEL records read", 10*time.Second, func() bool { return r.m.Stats().SELEntries >= sel+1 || r.m.Stats().SELEntries >= uint64(len(steps)) })
	time.Sleep(4 * interval)
	got := hotSwapEvents(r.snapshot(), res)
	if len(got) != len(want) {
		t.Fatalf("hot-swap events of resource %d: got %d, want %d:%s", res, len(got), len(want), hpiEvents(r.snapshot()))
	}
	for i := range want {
		if got[i].PreviousHotSwapState != want[i].PreviousHotSwapState || got[i].HotSwapState != want[i].HotSwapState {
			t.Errorf("event %d: %s -> %s, want %s -> %s", i, got[i].PreviousHotSwapState, got[i].HotSwapState,
				want[i].PreviousHotSwapState, want[i].HotSwapState)
		}
	}
	if st := r.m.Stats(); st.SELEntries == 0 || st.Poll.Reads <= polls {
		t.Fatalf("SEL or poller idle: %+v", st)
	}
	// Only this blade changed: no other resource has hot-swap events.
	for _, e := range r.snapshot() {
		if e.Type == hpi.EventHotSwap && e.Source != res {
			t.Errorf("unexpected hot-swap event of resource %d: %s -> %s", e.Source, e.HotSwap.PreviousHotSwapState, e.HotSwap.HotSwapState)
		}
	}
}

// TestMonitorShelfManagerLost stops the shelf manager: after the grace
// time every resource of the shelf is marked failed (RESOURCE FAILURE
// events); when it is back the shelf is rediscovered and every resource
// restored, on the same subscription.
func TestMonitorShelfManagerLost(t *testing.T) {
	t.Parallel()
	sh, sess, ctx := labMonitorSession(t)
	cfg := shelf.MonitorConfig{Name: "lab", SELInterval: 200 * time.Millisecond, LostGrace: time.Second,
		DiscoveryRetry: 200 * time.Millisecond, DiscoveryMaxBackoff: time.Second, RediscoverMinGap: 100 * time.Millisecond,
		Poll: shelf.PollConfig{Default: 2 * time.Second, ByType: map[uint8]time.Duration{shelf.SensorTypeHotSwap: 500 * time.Millisecond}}}
	r := startMonitor(ctx, t, sess, cfg)
	ids := r.m.Resources()
	if len(ids) < 2 {
		t.Fatalf("resources %v", ids)
	}
	count := func(typ hpi.ResourceEventType) map[hpi.ResourceID]int {
		n := map[hpi.ResourceID]int{}
		for _, e := range r.snapshot() {
			if e.Type == hpi.EventResource && e.Resource.Type == typ {
				n[e.Source]++
			}
		}
		return n
	}
	all := func(typ hpi.ResourceEventType, want int) func() bool {
		return func() bool {
			n := count(typ)
			for _, id := range ids {
				if n[id] < want {
					return false
				}
			}
			return true
		}
	}
	sh.Stop()
	r.waitUntil(ctx, t, "every resource failed", 20*time.Second, all(hpi.ResourceFailure, 1))
	for _, id := range ids {
		if e, ok := r.d.Resource(id); !ok || !e.ResourceFailed {
			t.Fatalf("resource %d not marked failed: %+v", id, e)
		}
	}
	if st := r.m.Stats(); !st.Lost || st.ShelfLost != 1 {
		t.Fatalf("stats %+v", st)
	}
	sh.Restart(t)
	r.waitUntil(ctx, t, "every resource restored", 60*time.Second, all(hpi.ResourceRestored, 1))
	for _, id := range ids {
		if e, ok := r.d.Resource(id); !ok || e.ResourceFailed {
			t.Fatalf("resource %d still failed: %+v", id, e)
		}
	}
	if st := r.m.Stats(); st.Lost || st.Discoveries < 2 {
		t.Fatalf("stats %+v", st)
	}
	if n := count(hpi.ResourceFailure); len(n) != len(ids) {
		t.Fatalf("failure events for %d resources, want %d", len(n), len(ids))
	}
}

// TestMonitorActionsOnLab runs the actions that need an activation policy
// or power levels against ipmi_sim, which answers those commands with
// 0xC1: the Monitor uses the next mechanism (FRU activation, chassis
// power of the lab's blades) or says plainly that the shelf manager does
// not support the action.
func TestMonitorActionsOnLab(t *testing.T) {
	t.Parallel()
	sh, sess, ctx := labMonitorSession(t)
	cfg := shelf.MonitorConfig{Name: "lab", SELInterval: 500 * time.Millisecond, ActionTimeout: 15 * time.Second,
		Poll: shelf.PollConfig{Default: 5 * time.Second, ByType: map[uint8]time.Duration{shelf.SensorTypeHotSwap: 300 * time.Millisecond}}}
	r := startMonitor(ctx, t, sess, cfg)
	blade := sh.Blades[0]
	res, _ := fruResource(ctx, t, sess, r.d, blade)
	if p, err := r.m.PowerState(ctx, res); err != nil || p != hpi.PowerOn {
		t.Fatalf("PowerState = %v, %v", p, err)
	}
	payload := func(want bool) {
		t.Helper()
		r.waitUntil(ctx, t, fmt.Sprintf("payload running %v", want), 15*time.Second, func() bool {
			on, err := sh.PayloadRunning(blade)
			return err == nil && on == want
		})
	}
	if err := r.m.SetPowerState(ctx, res, hpi.PowerOff); err != nil {
		t.Fatalf("power off: %v", err)
	}
	payload(false)
	if p, err := r.m.PowerState(ctx, res); err != nil || p != hpi.PowerOff {
		t.Fatalf("PowerState = %v, %v", p, err)
	}
	// The lab's payload walks its hot-swap sensor (M6, M1) as it stops.
	r.waitUntil(ctx, t, "blade inactive", 10*time.Second, func() bool {
		st, err := r.d.HotSwapState(res)
		return err == nil && st.State == hpi.HsStateInactive && st.LastMState == hpi.M1
	})
	// Clearing the activation lock needs Set FRU Activation Policy.
	err := r.m.HotSwapAction(ctx, res, hpi.IntentRequestInsertion)
	if !errors.Is(err, hpi.ErrCapability) || !strings.Contains(err.Error(), "not supported by shelf manager lab") {
		t.Fatalf("insertion request: %v", err)
	}
	// Power on from M1 without an activation policy: chassis power.
	if err := r.m.SetPowerState(ctx, res, hpi.PowerOn); err != nil {
		t.Fatalf("power on: %v", err)
	}
	payload(true)
	if st, err := r.d.HotSwapState(res); err != nil || st.State != hpi.HsStateActive {
		t.Fatalf("hot-swap state after power on: %+v, %v", st, err)
	}
}

// TestMonitorRediscoversSDRChangeOnLab adds a sensor record to the shelf
// manager's main SDR repository at run time (ipmi_sim console
// main_sdr_add): the Monitor sees the repository change, rediscovers the
// shelf, and the shelf manager's resource gets the new sensor (RESOURCE
// UPDATED on the subscription that was open all along).
func TestMonitorRediscoversSDRChangeOnLab(t *testing.T) {
	t.Parallel()
	sh, sess, ctx := labMonitorSession(t)
	cfg := shelf.MonitorConfig{Name: "lab", SELInterval: 300 * time.Millisecond, RediscoverCheck: 300 * time.Millisecond,
		RediscoverMinGap: 100 * time.Millisecond, Poll: shelf.PollConfig{Default: 5 * time.Second}}
	r := startMonitor(ctx, t, sess, cfg)
	ai, err := ipmi.GetAddressInfo(ctx, sess, ipmi.Addr{}, ipmi.ByFRU(0))
	if err != nil {
		t.Fatal(err)
	}
	local := ai.IPMBAddress
	res, _ := fruResource(ctx, t, sess, r.d, local)
	sdrs, err := ipmi.ReadSDRRepository(ctx, sess, ipmi.Addr{}, ipmi.MainSDR)
	if err != nil {
		t.Fatal(err)
	}
	// A copy of one of the shelf manager's full sensor records under an
	// unused sensor number.
	used := map[uint8]bool{}
	var tmpl []byte
	for _, s := range sdrs {
		if s.Sensor != nil && s.Sensor.OwnerID == local {
			used[s.Sensor.Number] = true
			if s.Sensor.Type == ipmi.SDRFullSensor && tmpl == nil {
				tmpl = append([]byte(nil), s.Raw...)
			}
		}
	}
	if tmpl == nil {
		t.Fatal("no full sensor record of the shelf manager")
	}
	num := uint8(0xe0)
	for used[num] {
		num--
	}
	tmpl[7] = num
	cmd := fmt.Sprintf("main_sdr_add 0x%02x", local)
	for _, b := range tmpl {
		cmd += fmt.Sprintf(" 0x%02x", b)
	}
	rdrs := func() int {
		l, err := r.d.RDRs(res)
		if err != nil {
			t.Fatal(err)
		}
		return len(l)
	}
	before, count, disc := rdrs(), r.d.Info().RptUpdateCount, r.m.Stats().Discoveries
	if _, err := sh.Console(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	// The discovery counter is bumped just after the new model is applied:
	// wait for both.
	r.waitUntil(ctx, t, "new sensor RDR", 20*time.Second, func() bool { return rdrs() == before+1 && r.m.Stats().Discoveries > disc })
	if _, err := r.d.RDR(res, hpi.SensorRDR, hpi.SensorNum(num)); err != nil {
		t.Fatalf("new sensor %d: %v", num, err)
	}
	if r.d.Info().RptUpdateCount <= count || r.m.Stats().Discoveries <= disc {
		t.Fatalf("update count %d -> %d, discoveries %d -> %d", count, r.d.Info().RptUpdateCount, disc, r.m.Stats().Discoveries)
	}
	updated := false
	for _, e := range r.snapshot() {
		updated = updated || (e.Type == hpi.EventResource && e.Resource.Type == hpi.ResourceUpdated && e.Source == res)
	}
	if !updated {
		t.Fatalf("no RESOURCE UPDATED on the subscription:%s", hpiEvents(r.snapshot()))
	}
}

// TestMonitorDiscoveryRetry starts the Monitor while the shelf manager
// does not answer: discovery fails and is retried with back-off until the
// shelf manager is back, then the shelf is modelled.
func TestMonitorDiscoveryRetry(t *testing.T) {
	t.Parallel()
	sh, sess, ctx := labMonitorSession(t)
	sh.Stop()
	// DiscoveryTimeout leaves the session time to notice the loss (several
	// attempts time out) and to re-establish itself.
	cfg := shelf.MonitorConfig{Name: "lab", DiscoveryTimeout: 5 * time.Second, DiscoveryRetry: 100 * time.Millisecond,
		DiscoveryMaxBackoff: 500 * time.Millisecond}
	r := startMonitorNoWait(ctx, t, sess, cfg)
	r.waitUntil(ctx, t, "failed discoveries", 30*time.Second, func() bool { return r.m.Stats().DiscoveryFailures >= 2 })
	if st := r.m.Stats(); st.Discoveries != 0 || len(r.d.Resources()) != 0 {
		t.Fatalf("discovered a stopped shelf: %+v", st)
	}
	sh.Restart(t)
	r.waitUntil(ctx, t, "discovery after the restart", 60*time.Second, func() bool { return r.m.Stats().Discoveries >= 1 })
	if len(r.m.Resources()) < 2 {
		t.Fatalf("resources %v", r.m.Resources())
	}
}
