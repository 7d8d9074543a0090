package shelf_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"hpiagent/hpi"
	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
	"hpiagent/shelf/sim"
)

// simMonitorSession starts the embedded shelf (clock following real time)
// and a cipher suite 17 session to it.
func simMonitorSession(t *testing.T, cfg sim.Config) (*sim.Server, *rmcpp.Session, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	srv, err := sim.Start(ctx, cfg, "127.0.0.1:0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	u := cfg.Users[0]
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: srv.Addr().String(), Username: u.Name, Password: []byte(u.Password), CipherSuites: []int{17}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return srv, sess, ctx
}

func simMonitorConfig() shelf.MonitorConfig {
	return shelf.MonitorConfig{Name: "sim", SELInterval: 200 * time.Millisecond, RediscoverCheck: 300 * time.Millisecond,
		RediscoverMinGap: 100 * time.Millisecond, ActionTimeout: 10 * time.Second, ConfirmInterval: 50 * time.Millisecond,
		Poll: shelf.PollConfig{Default: 2 * time.Second, ByType: map[uint8]time.Duration{shelf.SensorTypeHotSwap: 200 * time.Millisecond}}}
}

func waitSimState(ctx context.Context, t *testing.T, sh *sim.Shelf, addr uint8, want sim.MState) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		st, err := sh.State(addr)
		if err == nil && st == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("0x%02x: %v waiting for %s", addr, ctx.Err(), want)
		case <-deadline:
			t.Fatalf("0x%02x is in %s, want %s", addr, st, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestMonitorActionsOnEmbeddedShelf runs the hardware actions against
// the embedded shelf manager, which has activation policies and power
// levels, and reads the results back from the simulated hardware.
func TestMonitorActionsOnEmbeddedShelf(t *testing.T) {
	t.Parallel()
	cfg := sim.DefaultConfig()
	cfg.StepDelay = 100 * time.Millisecond
	srv, sess, ctx := simMonitorSession(t, cfg)
	sh := srv.Shelf()
	r := startMonitor(ctx, t, sess, simMonitorConfig())
	blade := cfg.IPMCs[0].Addr
	res, _ := fruResource(ctx, t, sess, r.d, blade)
	r.waitUntil(ctx, t, "blade active", 10*time.Second, func() bool {
		st, err := r.d.HotSwapState(res)
		return err == nil && st.Known && st.State == hpi.HsStateActive
	})
	hsState := func() hpi.HsState {
		st, err := r.d.HotSwapState(res)
		if err != nil {
			t.Fatal(err)
		}
		return st.State
	}

	t.Run("power off and on", func(t *testing.T) {
		if err := r.m.SetPowerState(ctx, res, hpi.PowerOff); err != nil {
			t.Fatal(err)
		}
		// Confirmed before returning: no waiting here.
		if st, _ := sh.State(blade); st != sim.M1 {
			t.Fatalf("after power off: %s", st)
		}
		if lvl, _ := sh.PowerLevel(blade); lvl != 0 {
			t.Fatalf("power level %d after power off", lvl)
		}
		if p, err := r.m.PowerState(ctx, res); err != nil || p != hpi.PowerOff {
			t.Fatalf("PowerState = %v, %v", p, err)
		}
		if s := hsState(); s != hpi.HsStateInactive {
			t.Fatalf("domain hot-swap state %s", s)
		}
		if err := r.m.SetPowerState(ctx, res, hpi.PowerOn); err != nil {
			t.Fatal(err)
		}
		if st, _ := sh.State(blade); st != sim.M4 {
			t.Fatalf("after power on: %s", st)
		}
		if lvl, _ := sh.PowerLevel(blade); lvl == 0 {
			t.Fatal("power level 0 after power on")
		}
		if p, err := r.m.PowerState(ctx, res); err != nil || p != hpi.PowerOn {
			t.Fatalf("PowerState = %v, %v", p, err)
		}
		if s := hsState(); s != hpi.HsStateActive {
			t.Fatalf("domain hot-swap state %s", s)
		}
	})

	t.Run("extraction request", func(t *testing.T) {
		if err := ipmi.SetFRUActivationPolicy(ctx, sess, ipmi.Addr{Slave: blade}, 0, ipmi.PolicyDeactivationLockedBit,
			ipmi.ActivationPolicy{DeactivationLocked: true}); err != nil {
			t.Fatal(err)
		}
		err := r.m.HotSwapAction(ctx, res, hpi.IntentRequestExtraction)
		if !errors.Is(err, hpi.ErrInvalidRequest) || !strings.Contains(err.Error(), "Deactivation-Locked") {
			t.Fatalf("extraction of a Deactivation-Locked FRU: %v", err)
		}
		if st, _ := sh.State(blade); st != sim.M4 {
			t.Fatalf("Deactivation-Locked FRU left M4: %s", st)
		}
		if err := ipmi.SetFRUActivationPolicy(ctx, sess, ipmi.Addr{Slave: blade}, 0, ipmi.PolicyDeactivationLockedBit,
			ipmi.ActivationPolicy{}); err != nil {
			t.Fatal(err)
		}
		if err := r.m.HotSwapAction(ctx, res, hpi.IntentRequestExtraction); err != nil {
			t.Fatal(err)
		}
		waitSimState(ctx, t, sh, blade, sim.M1)
		r.waitUntil(ctx, t, "domain inactive", 5*time.Second, func() bool { return hsState() == hpi.HsStateInactive })
		// Inactive: another extraction request is not valid.
		if err := r.m.HotSwapAction(ctx, res, hpi.IntentRequestExtraction); !errors.Is(err, hpi.ErrInvalidRequest) {
			t.Fatalf("extraction of an inactive FRU: %v", err)
		}
		// An insertion request clears the activation lock; the shelf
		// manager activates the FRU.
		if err := r.m.HotSwapAction(ctx, res, hpi.IntentRequestInsertion); err != nil {
			t.Fatal(err)
		}
		waitSimState(ctx, t, sh, blade, sim.M4)
		r.waitUntil(ctx, t, "domain active", 5*time.Second, func() bool { return hsState() == hpi.HsStateActive })
	})

	t.Run("LED", func(t *testing.T) {
		rdr, err := r.d.RDR(res, hpi.CtrlRDR, hpi.ATCACtrlNumBlueLED)
		if err != nil {
			t.Fatalf("blue LED control: %v", err)
		}
		if rdr.Control.OutputType != hpi.CtrlLED {
			t.Fatalf("blue LED RDR %+v", rdr.Control)
		}
		tests := []struct {
			name     string
			state    hpi.CtrlState
			override bool
			fn       uint8
			err      error
		}{
			{"on, blue", hpi.CtrlState{Type: hpi.CtrlTypeOEM, Oem: []byte{ipmi.LEDOn, 0, 1}}, true, ipmi.LEDOn, nil},
			{"blinking", hpi.CtrlState{Type: hpi.CtrlTypeOEM, Oem: []byte{50, 20}}, true, 50, nil},
			{"digital off", hpi.CtrlState{Type: hpi.CtrlTypeDigital, Digital: hpi.CtrlStateOff}, true, ipmi.LEDOff, nil},
			{"back to local control", hpi.CtrlState{Type: hpi.CtrlTypeOEM, Oem: []byte{ipmi.LEDLocalControl}}, false, 0, nil},
			{"too many bytes", hpi.CtrlState{Type: hpi.CtrlTypeOEM, Oem: []byte{1, 2, 3, 4}}, false, 0, hpi.ErrInvalidParams},
			{"analog", hpi.CtrlState{Type: hpi.CtrlTypeAnalog}, false, 0, hpi.ErrInvalidParams},
		}
		for _, tc := range tests {
			err := r.m.SetControl(ctx, res, hpi.ATCACtrlNumBlueLED, tc.state)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("%s: %v, want %v", tc.name, err, tc.err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			st, err := ipmi.GetFRULEDState(ctx, sess, ipmi.Addr{Slave: blade}, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if st.OverrideEnabled != tc.override || (tc.override && st.Override.Function != tc.fn) {
				t.Fatalf("%s: LED state %+v", tc.name, st)
			}
		}
		if err := r.m.SetControl(ctx, res, 0x77, hpi.CtrlState{Type: hpi.CtrlTypeDigital}); !errors.Is(err, hpi.ErrNotPresent) {
			t.Fatalf("unknown control: %v", err)
		}
	})

	t.Run("reset", func(t *testing.T) {
		before := sh.Resets(blade)
		if err := r.m.Reset(ctx, res, hpi.ColdReset); err != nil {
			t.Fatal(err)
		}
		if n := sh.Resets(blade); n != before+1 {
			t.Fatalf("resets %d, want %d", n, before+1)
		}
		if err := r.m.Reset(ctx, res, hpi.ResetAssert); !errors.Is(err, hpi.ErrInvalidRequest) {
			t.Fatalf("reset assert: %v", err)
		}
	})

	t.Run("unknown resource", func(t *testing.T) {
		if err := r.m.SetPowerState(ctx, 0x7777, hpi.PowerOff); !errors.Is(err, hpi.ErrInvalidResource) {
			t.Fatalf("SetPowerState: %v", err)
		}
		if _, err := r.m.PowerState(ctx, 0x7777); !errors.Is(err, hpi.ErrInvalidResource) {
			t.Fatalf("PowerState: %v", err)
		}
	})
	if st := r.m.Stats(); st.Actions == 0 || st.ActionFailures == 0 {
		t.Fatalf("actions not counted: %+v", st)
	}
}

// TestMonitorRediscoversInsertedBoard inserts a board the shelf did not
// have: the shelf manager's SDR repository changes, the Monitor
// rediscovers the shelf and the new resource appears on the same
// subscription; with an auto-insert timeout the Monitor activates it (the
// shelf manager waits for Set FRU Activation). Removing it again removes
// the resource.
func TestMonitorRediscoversInsertedBoard(t *testing.T) {
	t.Parallel()
	cfg := sim.DefaultConfig()
	cfg.StepDelay = 100 * time.Millisecond
	cfg.ManualActivation = true
	newBoard := cfg.IPMCs[2].Addr
	cfg.IPMCs[2].Present = false
	srv, sess, ctx := simMonitorSession(t, cfg)
	sh := srv.Shelf()
	r := startMonitor(ctx, t, sess, simMonitorConfig())
	if err := r.d.SetAutoInsertTimeout(hpi.Timeout(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	before := r.d.Info().RptUpdateCount
	n := len(r.m.Resources())
	if err := sh.Insert(newBoard); err != nil {
		t.Fatal(err)
	}
	r.waitUntil(ctx, t, "new resource", 20*time.Second, func() bool { return len(r.m.Resources()) > n })
	res, _ := fruResource(ctx, t, sess, r.d, newBoard)
	added := false
	for _, e := range r.snapshot() {
		added = added || (e.Type == hpi.EventResource && e.Resource.Type == hpi.ResourceAdded && e.Source == res)
	}
	if !added {
		t.Fatalf("no RESOURCE ADDED for %d on the subscription:%s", res, hpiEvents(r.snapshot()))
	}
	if r.d.Info().RptUpdateCount <= before {
		t.Fatal("RPT update count did not move")
	}
	// The auto-insert policy activates the board: M2 → (intent) → M4.
	waitSimState(ctx, t, sh, newBoard, sim.M4)
	r.waitUntil(ctx, t, "inserted board active", 10*time.Second, func() bool {
		st, err := r.d.HotSwapState(res)
		return err == nil && st.State == hpi.HsStateActive
	})
	if st := r.m.Stats(); st.Intents == 0 || st.Discoveries < 2 {
		t.Fatalf("stats %+v", st)
	}
	var hs []hpi.HotSwapEvent
	for _, e := range r.snapshot() {
		if e.Type == hpi.EventHotSwap && e.Source == res {
			hs = append(hs, e.HotSwap)
		}
	}
	if len(hs) == 0 || hs[len(hs)-1].HotSwapState != hpi.HsStateActive {
		t.Fatalf("hot-swap events of the new board: %+v", hs)
	}
	// The insertion itself is an event (what starts a hot-swap workflow):
	// the chain begins at NOT_PRESENT and every step continues the last.
	if hs[0].PreviousHotSwapState != hpi.HsStateNotPresent {
		t.Fatalf("first hot-swap event of the inserted board %+v, want one from NOT_PRESENT; all: %+v", hs[0], hs)
	}
	for i := 1; i < len(hs); i++ {
		if hs[i].PreviousHotSwapState != hs[i-1].HotSwapState {
			t.Fatalf("hot-swap events of the inserted board do not chain: %+v", hs)
		}
	}

	// Surprise removal: M0, the repository shrinks, the resource goes.
	if err := sh.Remove(newBoard); err != nil {
		t.Fatal(err)
	}
	r.waitUntil(ctx, t, "resource removed", 20*time.Second, func() bool {
		_, present := r.d.Resource(res)
		return !present
	})
}

// TestMonitorIPMCLost makes a blade's controller stop answering: after the
// grace time its resource is failed (M7, communication lost); when it
// answers again the resource is restored and keeps its hot-swap state.
func TestMonitorIPMCLost(t *testing.T) {
	t.Parallel()
	cfg := sim.DefaultConfig()
	srv, sess, ctx := simMonitorSession(t, cfg)
	sh := srv.Shelf()
	mcfg := simMonitorConfig()
	mcfg.LostGrace = 500 * time.Millisecond
	mcfg.Poll.ReadTimeout = time.Second
	mcfg.Poll.MaxBackoff = time.Second
	r := startMonitor(ctx, t, sess, mcfg)
	blade := cfg.IPMCs[1].Addr
	res, _ := fruResource(ctx, t, sess, r.d, blade)
	r.waitUntil(ctx, t, "blade active", 10*time.Second, func() bool {
		st, err := r.d.HotSwapState(res)
		return err == nil && st.Known && st.State == hpi.HsStateActive
	})
	if err := sh.SetUnresponsive(blade, true); err != nil {
		t.Fatal(err)
	}
	r.waitUntil(ctx, t, "blade failed", 20*time.Second, func() bool {
		e, ok := r.d.Resource(res)
		return ok && e.ResourceFailed
	})
	for _, id := range r.m.Resources() {
		if e, _ := r.d.Resource(id); id != res && e.ResourceFailed {
			t.Fatalf("resource %d (%s) failed too", id, e.EntityPath)
		}
	}
	if err := sh.SetUnresponsive(blade, false); err != nil {
		t.Fatal(err)
	}
	r.waitUntil(ctx, t, "blade restored", 20*time.Second, func() bool {
		e, ok := r.d.Resource(res)
		st, err := r.d.HotSwapState(res)
		return ok && !e.ResourceFailed && err == nil && st.State == hpi.HsStateActive
	})
	var failed, restored int
	for _, e := range r.snapshot() {
		if e.Type == hpi.EventResource && e.Source == res {
			switch e.Resource.Type {
			case hpi.ResourceFailure:
				failed++
			case hpi.ResourceRestored:
				restored++
			}
		}
	}
	if failed != 1 || restored != 1 {
		t.Fatalf("resource events: %d failures, %d restorations:%s", failed, restored, hpiEvents(r.snapshot()))
	}
}

// TestMonitorThresholdEvents moves a threshold sensor of the embedded
// shelf through its thresholds: the domain gets one sensor event per
// threshold crossed, respects the hysteresis on the way back, and raises
// and clears the major alarm.
func TestMonitorThresholdEvents(t *testing.T) {
	t.Parallel()
	cfg := sim.DefaultConfig()
	blade := cfg.IPMCs[0]
	var sc sim.SensorConfig
	for _, s := range blade.Sensors {
		if s.ThresholdMask&0x18 == 0x18 && s.M == 1 && s.B == 0 && s.RExp == 0 { // UNC and UC, raw = units
			sc = s
			break
		}
	}
	if sc.Name == "" {
		t.Fatal("no linear sensor with UNC and UC in the configuration")
	}
	srv, sess, ctx := simMonitorSession(t, cfg)
	mcfg := simMonitorConfig()
	mcfg.Poll.Default = 100 * time.Millisecond
	r := startMonitor(ctx, t, sess, mcfg)
	res, _ := fruResource(ctx, t, sess, r.d, blade.Addr)
	num := hpi.SensorNum(sc.Number)
	unc, uc, hyst := sc.Thresholds[3], sc.Thresholds[4], sc.HystPos
	state := func() hpi.EventState {
		v, ok, err := r.d.SensorValue(res, num)
		if err != nil || !ok {
			return 0xffff
		}
		return v.EventState
	}
	r.waitUntil(ctx, t, "first reading", 10*time.Second, func() bool { return state() == 0 })
	events := func() []hpi.SensorEvent {
		var out []hpi.SensorEvent
		for _, e := range r.snapshot() {
			if e.Type == hpi.EventSensor && e.Source == res && e.Sensor.Num == num {
				out = append(out, e.Sensor)
			}
		}
		return out
	}
	dat := r.d.Info().DatUpdateCount
	steps := []struct {
		raw    uint8
		want   hpi.EventState
		events int // sensor events so far
	}{
		{uc + 2, hpi.ESUpperMinor | hpi.ESUpperMajor, 2},
		{uc - hyst + 1, hpi.ESUpperMinor | hpi.ESUpperMajor, 2}, // inside UC's hysteresis
		{uc - hyst - 1, hpi.ESUpperMinor, 3},
		{unc - hyst - 1, 0, 4},
	}
	for _, s := range steps {
		if err := srv.Shelf().SetSensorRaw(blade.Addr, sc.Number, s.raw); err != nil {
			t.Fatal(err)
		}
		// Wait for two reads of the sensor after the change.
		at := time.Now()
		r.waitUntil(ctx, t, "two reads", 10*time.Second, func() bool {
			ps, _ := r.m.SensorStatus(shelf.SensorID{Owner: ipmi.Addr{Slave: blade.Addr}, Number: sc.Number})
			n := 0
			for _, smp := range ps.History {
				if smp.Time.After(at) {
					n++
				}
			}
			return n >= 2
		})
		if got := state(); got != s.want {
			t.Fatalf("raw %d: event state 0x%x, want 0x%x", s.raw, uint16(got), uint16(s.want))
		}
		if evs := events(); len(evs) != s.events {
			t.Fatalf("raw %d: %d sensor events, want %d: %+v", s.raw, len(evs), s.events, evs)
		}
	}
	evs := events()
	if !evs[1].Assertion || evs[1].EventState != hpi.ESUpperMajor || evs[2].Assertion || evs[2].EventState != hpi.ESUpperMajor {
		t.Fatalf("events %+v", evs)
	}
	if evs[1].OptionalDataPresent&hpi.SODTriggerThreshold == 0 || evs[1].TriggerThreshold.Float64 != float64(uc) {
		t.Fatalf("UC assertion without its threshold: %+v", evs[1])
	}
	if r.d.Info().DatUpdateCount < dat+2 {
		t.Fatalf("alarm table not updated: %+v", r.d.Info())
	}
}
