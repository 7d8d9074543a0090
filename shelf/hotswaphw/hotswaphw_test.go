package hotswaphw_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"hpiagent/hotswap"
	"hpiagent/hpi"
	"hpiagent/shelf"
	"hpiagent/shelf/hotswaphw"
)

func TestNew(t *testing.T) {
	t.Parallel()
	d := hpi.NewDomain(hpi.Config{})
	mon := func(name string) *shelf.Monitor {
		return shelf.NewMonitor(shelf.MonitorConfig{Name: name}, nil, d, nil)
	}
	cases := []struct {
		name     string
		monitors []*shelf.Monitor
		wantErr  string
	}{
		{"none", nil, "no Monitor"},
		{"nil", []*shelf.Monitor{nil}, "nil Monitor"},
		{"duplicate names", []*shelf.Monitor{mon("a"), mon("a")}, `two Monitors named "a"`},
		{"default name", []*shelf.Monitor{mon("")}, ""},
		{"two shelves", []*shelf.Monitor{mon("a"), mon("b")}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := hotswaphw.New(c.monitors...)
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("New: %v, want error %q", err, c.wantErr)
			}
		})
	}
}

// TestRouting checks that FRUs of shelf managers no Monitor watches and
// resources no Monitor knows are refused before any I/O (the Monitors
// here have no connection and no discovery).
func TestRouting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := hpi.NewDomain(hpi.Config{})
	hw, err := hotswaphw.New(shelf.NewMonitor(shelf.MonitorConfig{Name: "a"}, nil, d, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []hotswap.FRU{{Shelf: "b", IPMB: 0x82}, {Shelf: "a", IPMB: 0x82}, {Shelf: "", IPMB: 0x82}} {
		_, perr := hw.ActivationPolicy(ctx, f)
		_, merr := hw.MState(ctx, f)
		for op, err := range map[string]error{
			"SetActivationLock":   hw.SetActivationLock(ctx, f, true),
			"SetDeactivationLock": hw.SetDeactivationLock(ctx, f, true),
			"ActivationPolicy":    perr,
			"Activate":            hw.Activate(ctx, f),
			"Deactivate":          hw.Deactivate(ctx, f),
			"MState":              merr,
			"SetBlueLED":          hw.SetBlueLED(ctx, f, true),
		} {
			if !errors.Is(err, hpi.ErrInvalidResource) {
				t.Errorf("%s(%s): %v, want ErrInvalidResource", op, f.Key(), err)
			}
		}
	}
	events := []hpi.Event{
		{Type: hpi.EventHotSwap, Source: 7},
		{Type: hpi.EventSensor, Source: 7},
		{Type: hpi.EventHotSwap, Source: hpi.UnspecifiedResourceID},
	}
	for _, e := range events {
		if f, ok := hw.Resolve(e); ok {
			t.Errorf("Resolve(%v of %d) = %+v", e.Type, e.Source, f)
		}
	}
}
