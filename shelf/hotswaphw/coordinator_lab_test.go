package hotswaphw_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"hpiagent/hotswap"
	"hpiagent/hpi"
	"hpiagent/internal/labshelf"
	"hpiagent/shelf"
	"hpiagent/shelf/hotswaphw"
	"hpiagent/shelf/rmcpp"
)

// TestCoordinatorOnIPMISim runs an insertion and an extraction through
// the Coordinator against OpenIPMI's ipmi_sim ATCA shelf, which has no
// activation policy: ActivationPolicy says so (hpi.ErrCapability), the
// Coordinator holds the FRU by not commanding it, and the board's
// M-states, set through the emulator console on the hot-swap sensor that
// discovery found by type (as a closing or opening handle would), reach
// the Coordinator as domain events through the Monitor and Resolve.
func TestCoordinatorOnIPMISim(t *testing.T) {
	t.Parallel()
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	// The hot-swap sensor of the board, from a discovery of our own (for
	// the console; the Monitor finds it by itself).
	blade := sh.Blades[len(sh.Blades)-1]
	var hs *shelf.Sensor
	for range 5 {
		snap, err := shelf.Discover(ctx, sess, shelf.DiscoverOptions{Logger: testLogger(t)})
		if err == nil {
			if mc := snap.MCAt(blade); mc != nil && mc.FRUOf(0) != nil {
				hs = mc.FRUOf(0).HotSwap
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if hs == nil {
		t.Fatalf("no hot-swap sensor discovered for the board at 0x%02x", blade)
	}

	d := hpi.NewDomain(hpi.Config{Logger: testLogger(t)})
	mon := shelf.NewMonitor(shelf.MonitorConfig{Name: "lab", SELInterval: 300 * time.Millisecond,
		ActionTimeout: 10 * time.Second, ConfirmInterval: 50 * time.Millisecond,
		Poll: shelf.PollConfig{Default: 5 * time.Second, ByType: map[uint8]time.Duration{shelf.SensorTypeHotSwap: 200 * time.Millisecond}}},
		sess, d, testLogger(t))
	runCtx, stop := context.WithCancel(ctx)
	monDone := make(chan error, 1)
	go func() { monDone <- mon.Run(runCtx) }()
	defer func() { stop(); <-monDone }()
	hw, err := hotswaphw.New(mon)
	if err != nil {
		t.Fatal(err)
	}
	var fru hotswap.FRU
	var res hpi.ResourceID
	waitFor(ctx, t, "the board's resource", func() bool {
		for _, id := range mon.Resources() {
			if f, ok := hw.FRUOf(id); ok && f.IPMB == blade && f.ID == 0 {
				fru, res = f, id
				return true
			}
		}
		return false
	})
	if _, err := hw.ActivationPolicy(ctx, fru); !errors.Is(err, hpi.ErrCapability) {
		t.Fatalf("ActivationPolicy on ipmi_sim: %v, want ErrCapability", err)
	}
	setM := func(m int) {
		t.Helper()
		if _, err := sh.Console(ctx, fmt.Sprintf("sensor_set_bit_clr_rest 0x%02x %d %d %d 1", blade, hs.Record.OwnerLUN, hs.Number, m)); err != nil {
			t.Fatal(err)
		}
	}
	hsState := func(want hpi.HsState) func() bool {
		return func() bool {
			st, err := d.HotSwapState(res)
			return err == nil && st.Known && st.State == want
		}
	}
	// Out of service before the cluster starts: M1.
	if err := hw.Deactivate(ctx, fru); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "domain inactive", hsState(hpi.HsStateInactive))

	tc := startCluster(ctx, t, hw, d)

	// The handle closes: M2, the insertion activates the board (M4).
	setM(2)
	wf := tc.finished(ctx, fru, hotswap.KindInsertion, "")
	if wf.Outcome != hotswap.OutcomeActivated || wf.Hold != hotswap.HoldNotActivating {
		t.Fatalf("insertion: %+v (alarms %q)", wf, tc.alarmTexts())
	}
	if ms, err := hw.MState(ctx, fru); err != nil || ms != hpi.M4 {
		t.Fatalf("after the insertion: %s, %v", ms, err)
	}

	// The handle opens: M5, the extraction revokes, wipes, deactivates (M1).
	waitFor(ctx, t, "domain active", hsState(hpi.HsStateActive))
	setM(5)
	wf = tc.finished(ctx, fru, hotswap.KindExtraction, "")
	if wf.Outcome != hotswap.OutcomeExtracted || wf.Certificate == "" {
		t.Fatalf("extraction: %+v (alarms %q)", wf, tc.alarmTexts())
	}
	if ms, err := hw.MState(ctx, fru); err != nil || ms != hpi.M1 {
		t.Fatalf("after the extraction: %s, %v", ms, err)
	}
	for _, n := range tc.names {
		if a, r := tc.hooks[n].counts(fru.Key()); a != 1 || r != 1 {
			t.Errorf("member %s: hooks applied %d, revoked %d times; want 1, 1", n, a, r)
		}
	}
}
