package shelf_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"hpiagent/hpi"
	"hpiagent/shelf"
)

// TestMonitorHotSwapHardwareOnLab runs the hot-swap workflow operations
// against ipmi_sim, which lacks Get/Set FRU Activation Policy: the lock
// operations say so (ErrCapability) and change nothing, and MState reads
// the hot-swap sensor that discovery found by its type, following the
// states the emulator console sets on it.
func TestMonitorHotSwapHardwareOnLab(t *testing.T) {
	t.Parallel()
	sh, sess, ctx := labMonitorSession(t)
	r := startMonitor(ctx, t, sess, shelf.MonitorConfig{Name: "lab", ActionTimeout: 5 * time.Second, ConfirmInterval: 50 * time.Millisecond})
	blade := sh.Blades[0]
	res, hs := fruResource(ctx, t, sess, r.d, blade)
	if hs == nil {
		t.Fatalf("blade 0x%02x has no hot-swap sensor", blade)
	}
	f, ok := r.m.FRUOf(res)
	if !ok || f.Shelf != "lab" || f.IPMB != blade || f.ID != 0 {
		t.Fatalf("FRUOf(%d) = %+v, %v", res, f, ok)
	}

	capErr := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, hpi.ErrCapability) || !strings.Contains(err.Error(), "not supported by shelf manager lab") {
			t.Errorf("%s on a shelf manager without activation policies: %v", op, err)
		}
	}
	_, err := r.m.ActivationPolicy(ctx, f)
	capErr("ActivationPolicy", err)
	for _, c := range []struct {
		name string
		do   func() error
	}{
		{"SetActivationLock", func() error { return r.m.SetActivationLock(ctx, f, true) }},
		{"SetDeactivationLock", func() error { return r.m.SetDeactivationLock(ctx, f, true) }},
	} {
		capErr(c.name, c.do())
	}

	// MState follows the hot-swap sensor (owner and number from the SDRs).
	for _, m := range []int{4, 5, 1, 2, 4} {
		if _, err := sh.Console(ctx, fmt.Sprintf("sensor_set_bit_clr_rest 0x%02x 0 %d %d 1", blade, hs.Number, m)); err != nil {
			t.Fatal(err)
		}
		got, err := r.m.MState(ctx, f)
		if err != nil || got != hpi.MState(m) {
			t.Fatalf("MState after setting M%d on the hot-swap sensor: %s, %v", m, got, err)
		}
	}
	// Activating an active blade is done at once.
	if err := r.m.Activate(ctx, f); err != nil {
		t.Fatalf("Activate in M4: %v", err)
	}
	// The blue LED, read back with Get FRU LED State.
	for _, on := range []bool{true, false} {
		if err := r.m.SetBlueLED(ctx, f, on); err != nil {
			t.Fatalf("SetBlueLED(%v): %v", on, err)
		}
	}
	// No policy holds the blade in M4: Deactivate reaches M1.
	if err := r.m.Deactivate(ctx, f); err != nil {
		t.Fatalf("Deactivate: %v", err)
	}
	if got, err := r.m.MState(ctx, f); err != nil || got != hpi.M1 {
		t.Fatalf("MState after Deactivate: %s, %v", got, err)
	}
}
