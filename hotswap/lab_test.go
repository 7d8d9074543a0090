package hotswap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"hpiagent/hpi"
	"hpiagent/internal/labshelf"
	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
)

// TestWorkflowsOnIPMISim runs the workflows with three members against
// OpenIPMI's ipmi_sim ATCA shelf, whose IPMCs have a real PICMG FRU
// hot-swap sensor but no activation policy (0xC1): the FRU is then held
// by not commanding it. The insertion is driven from M2 set through the
// emulator console, as a closing handle would; the extraction from M5.
// Every state is read back from the blade's hot-swap sensor.
func TestWorkflowsOnIPMISim(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("needs an external peer process (-short)")
	}
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	snap, err := shelf.Discover(ctx, sess, shelf.DiscoverOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// The last board with a hot-swap sensor that discovery found in M4.
	var fru FRU
	var hs *shelf.Sensor
	for _, mc := range snap.MCs {
		if mc.ShelfManager || len(mc.FRUs) == 0 {
			continue
		}
		if f0 := mc.FRUs[0]; f0.Site != nil && f0.Site.SiteType == ipmi.SiteBoard && f0.HotSwap != nil && f0.HasMState && f0.MState == 4 {
			fru, hs = FRU{Shelf: "lab", IPMB: mc.IPMBAddr, ID: 0}, f0.HotSwap
		}
	}
	if hs == nil {
		t.Fatal("no active board with a hot-swap sensor discovered")
	}
	hw := &ipmiHW{conn: sess, snap: snap, shelf: "lab"}
	setM := func(m int) {
		t.Helper()
		if _, err := sh.Console(ctx, fmt.Sprintf("sensor_set_bit_clr_rest 0x%02x %d %d %d 1", fru.IPMB, hs.Record.OwnerLUN, hs.Number, m)); err != nil {
			t.Fatal(err)
		}
		if err := hw.wait(ctx, fru, hpi.MState(m), nil); err != nil {
			t.Fatal(err)
		}
	}
	readM := func() hpi.MState {
		t.Helper()
		m, err := hw.MState(ctx, fru)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	tc := newTestCluster(t, "n1", "n2", "n3")
	c := tc.coordinator("n1", nil)
	c.cfg.Hardware = hw
	m := tc.log.machine("n1")
	run := func() Workflow {
		t.Helper()
		id, ok := m.ActiveFor(fru)
		if !ok {
			t.Fatal("no workflow started")
		}
		for i := 0; i < 100; i++ {
			if w, _ := m.Workflow(id); !w.Active() || w.Phase == PhaseWipeFailed {
				return w
			}
			if p, err := c.Step(ctx); !p {
				if err != nil {
					t.Logf("step: %v", err)
				}
				tc.clock.Advance(2 * time.Second)
				time.Sleep(5 * time.Millisecond) // a wipe runs beside the steps
			}
		}
		w, _ := m.Workflow(id)
		t.Fatalf("workflow %s stuck in %s", id, w.Phase)
		return w
	}

	// A new board: deactivate, then the handle closes (M2).
	if err := ipmi.SetFRUActivation(ctx, sess, ipmi.Addr{Slave: fru.IPMB}, fru.ID, false); err != nil {
		t.Fatal(err)
	}
	if err := hw.wait(ctx, fru, hpi.M1, nil); err != nil {
		t.Fatal(err)
	}
	setM(2)

	// Insertion with n3 down: never activated, alarm, aborted.
	tc.peers.set("n3", nil, true)
	if err := c.Observe(ctx, fru, hpi.HsStateInactive, hpi.HsStateInsertionPending); err != nil {
		t.Fatal(err)
	}
	w := run()
	if w.Outcome != OutcomeAborted || w.Hold != HoldNotActivating {
		t.Fatalf("insertion with a member down: %+v", w)
	}
	if st := readM(); st != hpi.M2 {
		t.Fatalf("insertion with a member down moved the board to %s", st)
	}
	if a := strings.Join(tc.alarmTexts(), "\n"); !strings.Contains(a, "n3") {
		t.Fatalf("no alarm about n3: %s", a)
	}

	// Every member up: activated and read back in M4.
	tc.startMember("n3")
	if err := c.Observe(ctx, fru, hpi.HsStateInactive, hpi.HsStateInsertionPending); err != nil {
		t.Fatal(err)
	}
	if w := run(); w.Outcome != OutcomeActivated {
		t.Fatalf("insertion: %+v", w)
	}
	if st := readM(); st != hpi.M4 {
		t.Fatalf("after insertion: %s", st)
	}

	// The handle opens (M5) and the wipe fails: the board stays in M5
	// (not deactivated), alarm.
	tc.wipers["n2"].fail = errors.New("crypto erase: key slot still readable")
	setM(5)
	if err := c.Observe(ctx, fru, hpi.HsStateActive, hpi.HsStateExtractionPending); err != nil {
		t.Fatal(err)
	}
	w = run()
	if w.Phase != PhaseWipeFailed {
		t.Fatalf("failed wipe: %+v", w)
	}
	if st := readM(); st != hpi.M5 {
		t.Fatalf("after a failed wipe the board is in %s", st)
	}
	// Retried with a working wipe: deactivated, read back in M1.
	tc.wipers["n2"].mu.Lock()
	tc.wipers["n2"].fail = nil
	tc.wipers["n2"].mu.Unlock()
	if err := c.Retry(ctx, w.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	if w := run(); w.Outcome != OutcomeExtracted || w.Certificate == "" {
		t.Fatalf("extraction: %+v", w)
	}
	if st := readM(); st != hpi.M1 {
		t.Fatalf("after extraction: %s", st)
	}
}
