package shelf

import (
	"context"
	"errors"
	"fmt"

	"hpiagent/hpi"
	"hpiagent/shelf/ipmi"
)

// The hot-swap workflow hardware: the operations the cluster-synchronized
// hot-swap workflows drive a FRU with (activation policy locks,
// activation, deactivation, M-state, blue LED). They are addressed the way
// the workflows name a FRU, by shelf manager name, IPMB address and FRU
// device ID, and carried out like every other hardware action of the
// Monitor: serialised per resource, audited, and confirmed by reading
// state back before they return. A command the shelf manager lacks gives
// an error wrapping hpi.ErrCapability that says it is not supported by the
// shelf manager.
//
// The workflows' own types live in package hotswap, which this package
// must not import; package shelf/hotswaphw adapts these methods to
// hotswap.Hardware.

// HotSwapFRU names a FRU the way the hot-swap workflows do: where it is
// reached (Shelf, IPMB, ID) and, as found by the last discovery, its
// resource and entity path. The Monitor's hot-swap methods route by
// Shelf, IPMB and ID only.
type HotSwapFRU struct {
	// Shelf is the Name of the Monitor (MonitorConfig.Name) whose shelf
	// manager the FRU sits behind.
	Shelf string
	// IPMB is the 8-bit IPMB address of the FRU's controller.
	IPMB uint8
	// ID is the FRU device ID on that controller (0: the board itself).
	ID uint8
	// Resource is the FRU's resource in the domain (filled in by FRUOf;
	// ignored for routing).
	Resource hpi.ResourceID
	// Entity is the FRU's entity path (filled in by FRUOf; ignored for
	// routing).
	Entity hpi.EntityPath
}

// String names the FRU by its routing fields, for logs and errors.
func (f HotSwapFRU) String() string {
	return fmt.Sprintf("FRU %d at IPMB 0x%02x of shelf %q", f.ID, f.IPMB, f.Shelf)
}

// Name returns the Monitor's shelf manager name (MonitorConfig.Name after
// defaults), the Shelf of its HotSwapFRUs.
func (m *Monitor) Name() string { return m.cfg.Name }

// FRUOf returns the FRU behind resource id as of the last discovery;
// false when id is not a FRU resource of this shelf manager.
func (m *Monitor) FRUOf(id hpi.ResourceID) (HotSwapFRU, bool) {
	m.mu.Lock()
	idx := m.idx
	m.mu.Unlock()
	if idx == nil {
		return HotSwapFRU{}, false
	}
	f, ok := idx.frus[id]
	if !ok {
		return HotSwapFRU{}, false
	}
	out := HotSwapFRU{Shelf: m.cfg.Name, IPMB: f.mc.IPMBAddr, ID: f.fru.ID, Resource: id}
	if r, ok := m.d.Resource(id); ok {
		out.Entity = r.EntityPath.Clone()
	}
	return out, true
}

// ResourceOf returns the resource of the FRU that f names (by Shelf, IPMB
// and ID) as of the last discovery.
func (m *Monitor) ResourceOf(f HotSwapFRU) (hpi.ResourceID, error) {
	if f.Shelf != m.cfg.Name {
		return 0, fmt.Errorf("%s: this Monitor serves shelf %q: %w", f, m.cfg.Name, hpi.ErrInvalidResource)
	}
	m.mu.Lock()
	idx := m.idx
	m.mu.Unlock()
	if idx == nil {
		return 0, fmt.Errorf("%s: shelf not discovered yet: %w", f, hpi.ErrInvalidResource)
	}
	if id, _, ok := idx.fruAt(f.IPMB, f.ID); ok {
		return id, nil
	}
	return 0, fmt.Errorf("%s: no such FRU in the discovered shelf: %w", f, hpi.ErrInvalidResource)
}

// hotSwapAction routes f to its resource and runs do as an action.
func (m *Monitor) hotSwapAction(ctx context.Context, f HotSwapFRU, what string, do func(ctx context.Context, r *fruRef) error) error {
	id, err := m.ResourceOf(f)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return m.action(ctx, id, what, do)
}

// getPolicy reads the activation policy of r.
func (m *Monitor) getPolicy(ctx context.Context, r *fruRef) (ipmi.ActivationPolicy, error) {
	p, err := ipmi.GetFRUActivationPolicy(ctx, m.conn, r.addr, r.fru.ID)
	if err != nil {
		return ipmi.ActivationPolicy{}, m.commandErr(r, "reading the activation policy (Get FRU Activation Policy)", err)
	}
	return p, nil
}

// setPolicyBit sets or clears one bit of the activation policy of f and
// reads the policy back.
func (m *Monitor) setPolicyBit(ctx context.Context, f HotSwapFRU, mask uint8, on bool) error {
	name, what := "Locked", "set activation lock"
	if mask == ipmi.PolicyDeactivationLockedBit {
		name, what = "Deactivation-Locked", "set deactivation lock"
	}
	if !on {
		what = "clear" + what[len("set"):]
	}
	return m.hotSwapAction(ctx, f, what, func(ctx context.Context, r *fruRef) error {
		want := ipmi.ActivationPolicy{Locked: on && mask == ipmi.PolicyLockedBit,
			DeactivationLocked: on && mask == ipmi.PolicyDeactivationLockedBit}
		if err := ipmi.SetFRUActivationPolicy(ctx, m.conn, r.addr, r.fru.ID, mask, want); err != nil {
			return m.commandErr(r, what+" (Set FRU Activation Policy)", err)
		}
		p, err := m.getPolicy(ctx, r)
		if err != nil {
			return fmt.Errorf("%s: reading it back: %w", what, err)
		}
		got := p.Locked
		if mask == ipmi.PolicyDeactivationLockedBit {
			got = p.DeactivationLocked
		}
		if got != on {
			return fmt.Errorf("%s of %s: the %s bit reads back %v", what, r, name, got)
		}
		return nil
	})
}

// SetActivationLock sets or clears the Locked bit of f's activation
// policy (only that bit; Set FRU Activation Policy with mask bit 0) and
// returns once Get FRU Activation Policy reads it back.
func (m *Monitor) SetActivationLock(ctx context.Context, f HotSwapFRU, locked bool) error {
	return m.setPolicyBit(ctx, f, ipmi.PolicyLockedBit, locked)
}

// SetDeactivationLock sets or clears the Deactivation-Locked bit of f's
// activation policy (only that bit; mask bit 1) and returns once it is
// read back.
func (m *Monitor) SetDeactivationLock(ctx context.Context, f HotSwapFRU, locked bool) error {
	return m.setPolicyBit(ctx, f, ipmi.PolicyDeactivationLockedBit, locked)
}

// ActivationPolicy reads f's activation policy (Get FRU Activation
// Policy).
func (m *Monitor) ActivationPolicy(ctx context.Context, f HotSwapFRU) (ipmi.ActivationPolicy, error) {
	id, err := m.ResourceOf(f)
	if err != nil {
		return ipmi.ActivationPolicy{}, fmt.Errorf("reading the activation policy: %w", err)
	}
	r, err := m.fruOf(id)
	if err != nil {
		return ipmi.ActivationPolicy{}, fmt.Errorf("reading the activation policy: %w", err)
	}
	return m.getPolicy(ctx, r)
}

// MState reads f's M-state from its hot-swap sensor (the one discovery
// found by sensor type).
func (m *Monitor) MState(ctx context.Context, f HotSwapFRU) (hpi.MState, error) {
	id, err := m.ResourceOf(f)
	if err != nil {
		return 0, fmt.Errorf("reading the M-state: %w", err)
	}
	r, err := m.fruOf(id)
	if err != nil {
		return 0, fmt.Errorf("reading the M-state: %w", err)
	}
	return m.readMState(ctx, r)
}

// policyHolds reports whether r's activation policy has the bit that
// holds it (Locked or Deactivation-Locked) set; a shelf manager without
// activation policies holds nothing.
func (m *Monitor) policyHolds(ctx context.Context, r *fruRef, deactivation bool) (bool, error) {
	p, err := ipmi.GetFRUActivationPolicy(ctx, m.conn, r.addr, r.fru.ID)
	switch {
	case errors.Is(err, ipmi.ErrNotSupported):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading the activation policy of %s: %w", r, err)
	case deactivation:
		return p.DeactivationLocked, nil
	}
	return p.Locked, nil
}

// Activate brings f to M4 and returns once its hot-swap sensor reads M4:
// Set FRU Activation (activate) when it waits in M2, its desired power
// level granted (Set Power Level) when it waits in M3. A FRU in M1 must
// not be held by the Locked bit (the caller clears it first); it then
// proceeds to M2 by itself and is activated there.
func (m *Monitor) Activate(ctx context.Context, f HotSwapFRU) error {
	return m.hotSwapAction(ctx, f, "activate", func(ctx context.Context, r *fruRef) error {
		if r.fru.HotSwap == nil || r.mc.PICMG == nil {
			return fmt.Errorf("activate %s: no managed hot swap: %w", r, hpi.ErrCapability)
		}
		ms, err := m.readMState(ctx, r)
		if err != nil {
			return fmt.Errorf("activate: %w", err)
		}
		switch ms {
		case hpi.M4:
			m.observe(r.res, hpi.MStateUnknown, ms, hpi.HsCauseExtSoftware, m.cfg.Now())
			return nil
		case hpi.M1:
			held, err := m.policyHolds(ctx, r, false)
			if err != nil {
				return fmt.Errorf("activate: %w", err)
			}
			if held {
				return fmt.Errorf("activate %s: the FRU is held in M1 by the Locked bit of its activation policy; clear it first: %w", r, hpi.ErrInvalidRequest)
			}
		case hpi.M2, hpi.M3:
		default:
			return fmt.Errorf("activate %s: FRU is in %s: %w", r, ms, hpi.ErrInvalidRequest)
		}
		// activateInM2 sends Set FRU Activation in M2 and grants power
		// in M3, both once.
		step := m.activateInM2(ctx, r)
		_, err = m.waitMState(ctx, r, "activate", func(ms hpi.MState) bool { return ms == hpi.M4 }, func(ms hpi.MState) error {
			if ms != hpi.M1 && ms != hpi.M2 && ms != hpi.M3 && ms != hpi.M4 {
				return fmt.Errorf("activate %s: FRU went to %s: %w", r, ms, hpi.ErrInvalidRequest)
			}
			if err := step(ms); err != nil {
				if errors.Is(err, ipmi.ErrNotSupported) {
					return m.errNotSupportedBy(r, "activate", err)
				}
				return err
			}
			return nil
		})
		return err
	})
}

// Deactivate sends Set FRU Activation (deactivate) to f and returns once
// its hot-swap sensor reads M1. A FRU in M4 must not be held by the
// Deactivation-Locked bit (the caller clears it first).
func (m *Monitor) Deactivate(ctx context.Context, f HotSwapFRU) error {
	return m.hotSwapAction(ctx, f, "deactivate", func(ctx context.Context, r *fruRef) error {
		if r.fru.HotSwap == nil || r.mc.PICMG == nil {
			return fmt.Errorf("deactivate %s: no managed hot swap: %w", r, hpi.ErrCapability)
		}
		ms, err := m.readMState(ctx, r)
		if err != nil {
			return fmt.Errorf("deactivate: %w", err)
		}
		switch ms {
		case hpi.M1:
			m.observe(r.res, hpi.MStateUnknown, ms, hpi.HsCauseExtSoftware, m.cfg.Now())
			return nil
		case hpi.M4:
			held, err := m.policyHolds(ctx, r, true)
			if err != nil {
				return fmt.Errorf("deactivate: %w", err)
			}
			if held {
				return fmt.Errorf("deactivate %s: the FRU is held in M4 by the Deactivation-Locked bit of its activation policy; clear it first: %w", r, hpi.ErrInvalidRequest)
			}
		case hpi.M2, hpi.M3, hpi.M5, hpi.M6:
		default:
			return fmt.Errorf("deactivate %s: FRU is in %s: %w", r, ms, hpi.ErrInvalidRequest)
		}
		if ms != hpi.M6 {
			if err := ipmi.SetFRUActivation(ctx, m.conn, r.addr, r.fru.ID, false); err != nil && !notInState(err) {
				return m.commandErr(r, "deactivate (Set FRU Activation)", err)
			}
		}
		got, err := m.waitMState(ctx, r, "deactivate", func(ms hpi.MState) bool { return ms == hpi.M1 || ms == hpi.M0 }, nil)
		if err != nil {
			return err
		}
		if got == hpi.M0 {
			return fmt.Errorf("deactivate %s: the FRU left the shelf (M0) instead of reaching M1", r)
		}
		return nil
	})
}

// SetBlueLED turns f's blue LED (PICMG FRU LED 0) on, or off: back to
// local control where the LED has it (the controller then shows the
// M-state again), else off. It returns once Get FRU LED State reads the
// setting back.
func (m *Monitor) SetBlueLED(ctx context.Context, f HotSwapFRU, on bool) error {
	what := "blue LED off"
	if on {
		what = "blue LED on"
	}
	return m.hotSwapAction(ctx, f, what, func(ctx context.Context, r *fruRef) error {
		set := ipmi.LEDSetting{Function: ipmi.LEDOn, Color: ipmi.LEDBlue}
		if !on {
			st, err := ipmi.GetFRULEDState(ctx, m.conn, r.addr, r.fru.ID, 0)
			if err != nil {
				return m.commandErr(r, "reading the blue LED state (Get FRU LED State)", err)
			}
			set = ipmi.LEDSetting{Function: ipmi.LEDOff, Color: ipmi.LEDBlue}
			if st.HasLocal {
				set = ipmi.LEDSetting{Function: ipmi.LEDLocalControl, Color: ipmi.LEDBlue}
			}
		}
		return m.setLED(ctx, r, 0, set)
	})
}
