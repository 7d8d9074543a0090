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
	"hpiagent/shelf/sim"
)

// simHotSwapFRU starts the embedded shelf (manual activation: FRUs wait
// in M2 and M5 for the agent) and a Monitor of it, and returns the
// HotSwapFRU of the first blade as the Monitor reports it.
func simHotSwapFRU(t *testing.T) (*sim.Shelf, *monRun, shelf.HotSwapFRU, ipmi.Conn, context.Context) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.StepDelay = 50 * time.Millisecond
	cfg.ManualActivation = true
	srv, sess, ctx := simMonitorSession(t, cfg)
	r := startMonitor(ctx, t, sess, simMonitorConfig())
	blade := cfg.IPMCs[0].Addr
	res, _ := fruResource(ctx, t, sess, r.d, blade)
	f, ok := r.m.FRUOf(res)
	if !ok {
		t.Fatalf("FRUOf(%d): not a FRU of the Monitor", res)
	}
	rr, _ := r.d.Resource(res)
	if f.Shelf != "sim" || f.IPMB != blade || f.ID != 0 || f.Resource != res || !f.Entity.Equal(rr.EntityPath) {
		t.Fatalf("FRUOf(%d) = %+v, want shelf sim, IPMB 0x%02x, FRU 0, entity %s", res, f, blade, rr.EntityPath)
	}
	if id, err := r.m.ResourceOf(shelf.HotSwapFRU{Shelf: "sim", IPMB: blade}); err != nil || id != res {
		t.Fatalf("ResourceOf = %d, %v; want %d", id, err, res)
	}
	return srv.Shelf(), r, shelf.HotSwapFRU{Shelf: f.Shelf, IPMB: f.IPMB, ID: f.ID}, sess, ctx
}

// TestMonitorHotSwapHardwareOnEmbeddedShelf drives one blade of the
// embedded shelf manager through the operations of the hot-swap
// workflows and checks each result on the simulated hardware itself.
func TestMonitorHotSwapHardwareOnEmbeddedShelf(t *testing.T) {
	t.Parallel()
	sh, r, f, sess, ctx := simHotSwapFRU(t)
	simState := func() (sim.MState, bool, bool) {
		t.Helper()
		st, err := sh.State(f.IPMB)
		if err != nil {
			t.Fatal(err)
		}
		l, d, err := sh.Policy(f.IPMB)
		if err != nil {
			t.Fatal(err)
		}
		return st, l, d
	}
	mstate := func(want hpi.MState) {
		t.Helper()
		ms, err := r.m.MState(ctx, f)
		if err != nil || ms != want {
			t.Fatalf("MState = %s, %v; want %s", ms, err, want)
		}
	}
	policy := func(wantLocked, wantDL bool) {
		t.Helper()
		p, err := r.m.ActivationPolicy(ctx, f)
		if err != nil || p.Locked != wantLocked || p.DeactivationLocked != wantDL {
			t.Fatalf("ActivationPolicy = %+v, %v; want locked=%v deactivation-locked=%v", p, err, wantLocked, wantDL)
		}
		if _, l, d := simState(); l != wantLocked || d != wantDL {
			t.Fatalf("shelf policy locked=%v deactivation-locked=%v; want %v %v", l, d, wantLocked, wantDL)
		}
	}
	mstate(hpi.M4)

	// Each bit alone: setting one leaves the other as it was.
	locks := []struct {
		name         string
		set          func(bool) error
		on           bool
		wantL, wantD bool
	}{
		{"lock", func(b bool) error { return r.m.SetActivationLock(ctx, f, b) }, true, true, false},
		{"deactivation lock", func(b bool) error { return r.m.SetDeactivationLock(ctx, f, b) }, true, true, true},
		{"unlock", func(b bool) error { return r.m.SetActivationLock(ctx, f, b) }, false, false, true},
		{"deactivation unlock", func(b bool) error { return r.m.SetDeactivationLock(ctx, f, b) }, false, false, false},
		{"deactivation lock again", func(b bool) error { return r.m.SetDeactivationLock(ctx, f, b) }, true, false, true},
	}
	for _, c := range locks {
		if err := c.set(c.on); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		policy(c.wantL, c.wantD)
	}

	// Deactivation-Locked: opening the handle leaves the blade in M4,
	// and Deactivate refuses to pull it out.
	if err := sh.Extract(f.IPMB); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // several shelf steps (StepDelay 50 ms)
	if st, _, _ := simState(); st != sim.M4 {
		t.Fatalf("Deactivation-Locked blade left M4 when its handle was opened: %s", st)
	}
	mstate(hpi.M4)
	if err := r.m.Deactivate(ctx, f); !errors.Is(err, hpi.ErrInvalidRequest) || !strings.Contains(err.Error(), "Deactivation-Locked") {
		t.Fatalf("Deactivate of a Deactivation-Locked blade: %v", err)
	}
	if st, _, _ := simState(); st != sim.M4 {
		t.Fatalf("refused Deactivate moved the blade to %s", st)
	}

	// Unlocked, the open handle takes it to M5, where the shelf manager
	// (manual activation) waits; Deactivate brings it to M1.
	if err := r.m.SetDeactivationLock(ctx, f, false); err != nil {
		t.Fatal(err)
	}
	waitSimState(ctx, t, sh, f.IPMB, sim.M5)
	mstate(hpi.M5)
	if err := r.m.Deactivate(ctx, f); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := simState(); st != sim.M1 {
		t.Fatalf("after Deactivate: %s", st)
	}
	mstate(hpi.M1)
	r.waitUntil(ctx, t, "domain inactive", 5*time.Second, func() bool {
		st, err := r.d.HotSwapState(f2res(t, r, f))
		return err == nil && st.State == hpi.HsStateInactive
	})
	// Deactivating an inactive blade is done at once.
	if err := r.m.Deactivate(ctx, f); err != nil {
		t.Fatalf("Deactivate in M1: %v", err)
	}

	// The shelf left it Locked; Activate refuses while it is.
	if _, l, _ := simState(); !l {
		t.Fatal("the embedded shelf should leave a deactivated blade Locked")
	}
	if err := r.m.Activate(ctx, f); !errors.Is(err, hpi.ErrInvalidRequest) || !strings.Contains(err.Error(), "Locked") {
		t.Fatalf("Activate of a Locked blade: %v", err)
	}
	// Handle closed and unlocked: the blade goes to M2 and waits there.
	if err := sh.Insert(f.IPMB); err != nil {
		t.Fatal(err)
	}
	if err := r.m.SetActivationLock(ctx, f, false); err != nil {
		t.Fatal(err)
	}
	waitSimState(ctx, t, sh, f.IPMB, sim.M2)
	time.Sleep(150 * time.Millisecond)
	if st, _, _ := simState(); st != sim.M2 {
		t.Fatalf("manual-activation shelf moved the blade on by itself: %s", st)
	}
	mstate(hpi.M2)
	// Activate from M2: Set FRU Activation, then power granted in M3.
	if err := r.m.Activate(ctx, f); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := simState(); st != sim.M4 {
		t.Fatalf("after Activate: %s", st)
	}
	if lvl, _ := sh.PowerLevel(f.IPMB); lvl == 0 {
		t.Fatal("power level 0 after Activate")
	}
	mstate(hpi.M4)
	if err := r.m.Activate(ctx, f); err != nil {
		t.Fatalf("Activate in M4: %v", err)
	}

	// Blue LED: on (override, blue) and back to local control.
	leds := []struct {
		on           bool
		wantOverride bool
	}{{true, true}, {false, false}, {true, true}, {false, false}}
	for _, c := range leds {
		if err := r.m.SetBlueLED(ctx, f, c.on); err != nil {
			t.Fatalf("SetBlueLED(%v): %v", c.on, err)
		}
		st, err := ipmi.GetFRULEDState(ctx, sess, ipmi.Addr{Slave: f.IPMB}, f.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st.OverrideEnabled != c.wantOverride || (c.on && (st.Override.Function != ipmi.LEDOn || st.Override.Color != ipmi.LEDBlue)) {
			t.Fatalf("SetBlueLED(%v): LED state %+v", c.on, st)
		}
	}
}

func f2res(t *testing.T, r *monRun, f shelf.HotSwapFRU) hpi.ResourceID {
	t.Helper()
	id, err := r.m.ResourceOf(f)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestMonitorHotSwapRouting checks that FRUs of another shelf manager or
// unknown addresses are refused without touching the hardware.
func TestMonitorHotSwapRouting(t *testing.T) {
	t.Parallel()
	sh, r, f, _, ctx := simHotSwapFRU(t)
	cases := []struct {
		name string
		fru  shelf.HotSwapFRU
	}{
		{"other shelf", shelf.HotSwapFRU{Shelf: "other", IPMB: f.IPMB, ID: f.ID}},
		{"unknown controller", shelf.HotSwapFRU{Shelf: f.Shelf, IPMB: 0xfe, ID: 0}},
		{"unknown FRU", shelf.HotSwapFRU{Shelf: f.Shelf, IPMB: f.IPMB, ID: 200}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := map[string]error{
				"lock":       r.m.SetActivationLock(ctx, c.fru, true),
				"deactlock":  r.m.SetDeactivationLock(ctx, c.fru, true),
				"deactivate": r.m.Deactivate(ctx, c.fru),
				"led":        r.m.SetBlueLED(ctx, c.fru, true),
			}
			_, errs["policy"] = r.m.ActivationPolicy(ctx, c.fru)
			_, errs["mstate"] = r.m.MState(ctx, c.fru)
			for op, err := range errs {
				if !errors.Is(err, hpi.ErrInvalidResource) {
					t.Errorf("%s: %v, want ErrInvalidResource", op, err)
				}
			}
		})
	}
	if st, l, d, _ := simPolicyState(sh, f.IPMB); st != sim.M4 || l || d {
		t.Fatalf("a refused request changed the blade: %s locked=%v deactivation-locked=%v", st, l, d)
	}
	if _, ok := r.m.FRUOf(hpi.ResourceID(0xfffffff0)); ok {
		t.Fatal("FRUOf of an unknown resource")
	}
}

func simPolicyState(sh *sim.Shelf, addr uint8) (sim.MState, bool, bool, error) {
	st, err := sh.State(addr)
	if err != nil {
		return 0, false, false, err
	}
	l, d, err := sh.Policy(addr)
	return st, l, d, err
}
