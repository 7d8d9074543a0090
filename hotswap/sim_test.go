package hotswap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"hpiagent/hpi"
	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
	"hpiagent/shelf/sim"
)

// ipmiHW implements Hardware over an IPMI session to a shelf manager with
// PICMG commands; the hot-swap sensor of each FRU comes from discovery
// (never assumed). It stands in for shelf.Monitor, which is to implement
// Hardware in the daemon.
type ipmiHW struct {
	conn  ipmi.Conn
	snap  *shelf.Snapshot
	shelf string
}

func (h *ipmiHW) addr(f FRU) (ipmi.Addr, *shelf.FRU, error) {
	mc := h.snap.MCAt(f.IPMB)
	if mc == nil || f.Shelf != h.shelf {
		return ipmi.Addr{}, nil, fmt.Errorf("FRU %s: no such controller in the discovered shelf", f.Key())
	}
	fr := mc.FRUOf(f.ID)
	if fr == nil {
		return ipmi.Addr{}, nil, fmt.Errorf("FRU %s: no such FRU", f.Key())
	}
	return mc.Addr, fr, nil
}

func (h *ipmiHW) setBit(ctx context.Context, f FRU, mask uint8, p ipmi.ActivationPolicy) error {
	a, _, err := h.addr(f)
	if err != nil {
		return err
	}
	if err := ipmi.SetFRUActivationPolicy(ctx, h.conn, a, f.ID, mask, p); err != nil {
		if errors.Is(err, ipmi.ErrNotSupported) {
			return fmt.Errorf("set FRU activation policy of %s: %w: %w", f.Key(), err, hpi.ErrCapability)
		}
		return fmt.Errorf("set FRU activation policy of %s: %w", f.Key(), err)
	}
	return nil
}

func (h *ipmiHW) SetActivationLock(ctx context.Context, f FRU, locked bool) error {
	return h.setBit(ctx, f, ipmi.PolicyLockedBit, ipmi.ActivationPolicy{Locked: locked})
}

func (h *ipmiHW) SetDeactivationLock(ctx context.Context, f FRU, locked bool) error {
	return h.setBit(ctx, f, ipmi.PolicyDeactivationLockedBit, ipmi.ActivationPolicy{DeactivationLocked: locked})
}

func (h *ipmiHW) ActivationPolicy(ctx context.Context, f FRU) (Policy, error) {
	a, _, err := h.addr(f)
	if err != nil {
		return Policy{}, err
	}
	p, err := ipmi.GetFRUActivationPolicy(ctx, h.conn, a, f.ID)
	if err != nil {
		return Policy{}, fmt.Errorf("reading the activation policy of %s: %w", f.Key(), err)
	}
	return Policy{Locked: p.Locked, DeactivationLocked: p.DeactivationLocked}, nil
}

func (h *ipmiHW) MState(ctx context.Context, f FRU) (hpi.MState, error) {
	_, fr, err := h.addr(f)
	if err != nil {
		return 0, err
	}
	if fr.HotSwap == nil {
		return 0, fmt.Errorf("FRU %s has no hot-swap sensor: %w", f.Key(), hpi.ErrCapability)
	}
	rd, err := ipmi.GetSensorReading(ctx, h.conn, fr.HotSwap.Owner, fr.HotSwap.Number)
	if err != nil {
		return 0, fmt.Errorf("reading the hot-swap sensor of %s: %w", f.Key(), err)
	}
	for m := range 8 {
		if rd.States == 1<<m {
			return hpi.MState(m), nil
		}
	}
	return 0, fmt.Errorf("hot-swap sensor of %s: no single M-state (0x%04x)", f.Key(), rd.States)
}

func (h *ipmiHW) wait(ctx context.Context, f FRU, want hpi.MState, send func(hpi.MState) error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ms, err := h.MState(ctx, f)
		if err == nil && ms == want {
			return nil
		}
		if err == nil && send != nil {
			if err := send(ms); err != nil {
				return err
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not in %s within 10 s (last %s, %v)", f.Key(), want, ms, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (h *ipmiHW) Activate(ctx context.Context, f FRU) error {
	a, _, err := h.addr(f)
	if err != nil {
		return err
	}
	sent := false
	return h.wait(ctx, f, hpi.M4, func(ms hpi.MState) error {
		if (ms == hpi.M1 || ms == hpi.M2) && !sent {
			sent = true
			if err := ipmi.SetFRUActivation(ctx, h.conn, a, f.ID, true); err != nil {
				return fmt.Errorf("set FRU activation (activate) of %s: %w", f.Key(), err)
			}
		}
		return nil
	})
}

func (h *ipmiHW) Deactivate(ctx context.Context, f FRU) error {
	a, _, err := h.addr(f)
	if err != nil {
		return err
	}
	if err := ipmi.SetFRUActivation(ctx, h.conn, a, f.ID, false); err != nil {
		return fmt.Errorf("set FRU activation (deactivate) of %s: %w", f.Key(), err)
	}
	return h.wait(ctx, f, hpi.M1, nil)
}

func (h *ipmiHW) SetBlueLED(ctx context.Context, f FRU, on bool) error {
	a, _, err := h.addr(f)
	if err != nil {
		return err
	}
	s := ipmi.LEDSetting{Function: ipmi.LEDLocalControl, Color: ipmi.LEDBlue}
	if on {
		s = ipmi.LEDSetting{Function: ipmi.LEDOn, Color: ipmi.LEDBlue}
	}
	return ipmi.SetFRULEDState(ctx, h.conn, a, f.ID, 0, s)
}

// TestWorkflowsOnEmbeddedShelf runs the workflows with three members
// against the embedded ATCA shelf manager (which implements the activation
// policy locks that ipmi_sim lacks), reading every result back from the
// simulated hardware: a forced extraction wipes and deactivates a blade
// (M1, Locked); an insertion with a member down keeps it locked in M1 and
// raises an alarm; with every member up it is activated (M4); a failed
// wipe keeps it held (Deactivation-Locked, M4) with an alarm.
func TestWorkflowsOnEmbeddedShelf(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := sim.DefaultConfig()
	cfg.StepDelay = 50 * time.Millisecond
	srv, err := sim.Start(ctx, cfg, "127.0.0.1:0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	u := cfg.Users[0]
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: srv.Addr().String(), Username: u.Name, Password: []byte(u.Password), CipherSuites: []int{17}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	snap, err := shelf.Discover(ctx, sess, shelf.DiscoverOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// Pick a blade from what discovery found, not from the sim's config.
	var fru FRU
	for _, mc := range snap.MCs {
		if mc.ShelfManager || len(mc.FRUs) == 0 {
			continue
		}
		if f0 := mc.FRUs[0]; f0.Site != nil && f0.Site.SiteType == ipmi.SiteBoard && f0.HotSwap != nil && f0.HasMState && f0.MState == 4 {
			fru = FRU{Shelf: "sim", IPMB: mc.IPMBAddr, ID: 0}
			break
		}
	}
	if fru.Shelf == "" {
		t.Fatal("no active blade with a hot-swap sensor discovered")
	}
	sh := srv.Shelf()
	hw := &ipmiHW{conn: sess, snap: snap, shelf: "sim"}

	tc := newTestCluster(t, "n1", "n2", "n3")
	c := tc.coordinator("n1", nil)
	c.cfg.Hardware = hw
	m := tc.log.machine("n1")
	run := func(id string) Workflow {
		t.Helper()
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
	simState := func() (sim.MState, bool, bool) {
		st, err := sh.State(fru.IPMB)
		if err != nil {
			t.Fatal(err)
		}
		l, d, err := sh.Policy(fru.IPMB)
		if err != nil {
			t.Fatal(err)
		}
		return st, l, d
	}

	// 1. Forced extraction: revoked everywhere, wiped by the owner (n2),
	// deactivated; the shelf leaves it in M1 with the Locked bit.
	id, err := c.Start(ctx, KindForced, fru, "alice", "blade replacement")
	if err != nil {
		t.Fatal(err)
	}
	if w := run(id); w.Outcome != OutcomeExtracted || w.Certificate == "" {
		t.Fatalf("extraction: %+v", w)
	}
	if st, locked, _ := simState(); st != sim.M1 || !locked {
		t.Fatalf("after extraction: %s locked=%v", st, locked)
	}

	// 2. Insertion with n3 down: held in M1 by the Locked policy, alarm,
	// aborted after MaxAttempts; the blade never left M1.
	tc.peers.set("n3", nil, true)
	if err := c.Observe(ctx, fru, hpi.HsStateNotPresent, hpi.HsStateInactive); err != nil {
		t.Fatal(err)
	}
	id, _ = m.ActiveFor(fru)
	if w := run(id); w.Outcome != OutcomeAborted {
		t.Fatalf("insertion with a member down: %+v", w)
	}
	if st, locked, _ := simState(); st != sim.M1 || !locked {
		t.Fatalf("insertion with a member down left the blade in %s locked=%v", st, locked)
	}
	if a := strings.Join(tc.alarmTexts(), "\n"); !strings.Contains(a, "n3") {
		t.Fatalf("no alarm about n3: %s", a)
	}

	// 3. n3 back: the insertion activates the blade (read back M4, unlocked).
	tc.startMember("n3")
	id, err = c.Start(ctx, KindInsertion, fru, "alice", "retry insertion")
	if err != nil {
		t.Fatal(err)
	}
	if w := run(id); w.Outcome != OutcomeActivated {
		t.Fatalf("insertion: %+v", w)
	}
	if st, locked, dl := simState(); st != sim.M4 || locked || !dl {
		t.Fatalf("after insertion: %s locked=%v deactivation-locked=%v", st, locked, dl)
	}

	// 4. Wipe failure: held in M4 with Deactivation-Locked, alarm; opening
	// the handle does not take it out of M4 either.
	tc.wipers["n2"].fail = errors.New("verification failed at block 12")
	id, err = c.Start(ctx, KindForced, fru, "alice", "blade replacement")
	if err != nil {
		t.Fatal(err)
	}
	if w := run(id); w.Phase != PhaseWipeFailed {
		t.Fatalf("failed wipe: %+v", w)
	}
	if err := sh.Extract(fru.IPMB); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // several shelf steps (StepDelay 50 ms)
	if st, _, dl := simState(); st != sim.M4 || !dl {
		t.Fatalf("after a failed wipe: %s deactivation-locked=%v", st, dl)
	}
	if a := strings.Join(tc.alarmTexts(), "\n"); !strings.Contains(a, "wipe failed") {
		t.Fatalf("no wipe alarm: %s", a)
	}
}
