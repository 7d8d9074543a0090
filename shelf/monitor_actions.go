package shelf

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"hpiagent/hpi"
	"hpiagent/shelf/ipmi"
)

// The hardware actions. Each is routed by resource ID to the FRU and
// controller the resource was discovered from, serialised per resource,
// audited, and confirmed by reading state back (hot-swap sensor, power
// level, LED state) before it returns. A command the shelf manager answers
// with 0xC1 is replaced by the next mechanism where there is one (power
// level → FRU activation → chassis power); where there is none the error
// says plainly that the shelf manager does not support it and wraps
// hpi.ErrCapability.

// errNotSupportedBy is the error of an action the shelf manager offers no
// mechanism for.
func (m *Monitor) errNotSupportedBy(f *fruRef, what string, err error) error {
	return fmt.Errorf("%s of %s: not supported by shelf manager %s (%w): %w", what, f, m.cfg.Name, err, hpi.ErrCapability)
}

// fruOf finds the FRU behind resource id.
func (m *Monitor) fruOf(id hpi.ResourceID) (*fruRef, error) {
	m.mu.Lock()
	idx := m.idx
	m.mu.Unlock()
	if idx != nil {
		if f, ok := idx.frus[id]; ok {
			return f, nil
		}
	}
	return nil, fmt.Errorf("resource %d is not a resource of shelf %s: %w", id, m.cfg.Name, hpi.ErrInvalidResource)
}

// lockResource serialises actions on one resource.
func (m *Monitor) lockResource(id hpi.ResourceID) func() {
	m.actMu.Lock()
	l, ok := m.act[id]
	if !ok {
		l = &sync.Mutex{}
		m.act[id] = l
	}
	m.actMu.Unlock()
	l.Lock()
	return l.Unlock
}

// action wraps one hardware action: lock, count, audit.
func (m *Monitor) action(ctx context.Context, id hpi.ResourceID, what string, do func(ctx context.Context, f *fruRef) error) error {
	m.st.actions.Add(1)
	f, err := m.fruOf(id)
	if err != nil {
		m.st.actionFailures.Add(1)
		return fmt.Errorf("%s: %w", what, err)
	}
	unlock := m.lockResource(id)
	defer unlock()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ActionTimeout+5*time.Second)
	defer cancel()
	err = do(ctx, f)
	if err != nil {
		m.st.actionFailures.Add(1)
		m.audit(what, "failed", "resource", uint32(id), "fru", f.String(), "err", err)
		return err
	}
	m.audit(what, "done and confirmed", "resource", uint32(id), "fru", f.String())
	return nil
}

// readMState reads the M-state of f from its hot-swap sensor.
func (m *Monitor) readMState(ctx context.Context, f *fruRef) (hpi.MState, error) {
	hs := f.fru.HotSwap
	if hs == nil {
		return 0, fmt.Errorf("reading the M-state of %s: it has no hot-swap sensor: %w", f, hpi.ErrCapability)
	}
	rd, err := ipmi.GetSensorReading(ctx, m.conn, hs.Owner, hs.Number)
	if err != nil {
		return 0, fmt.Errorf("reading the hot-swap sensor of %s: %w", f, err)
	}
	st, ok := singleState(rd.States)
	if !ok || st > 7 || !rd.Valid() {
		return 0, fmt.Errorf("reading the hot-swap sensor of %s: no single M-state (states 0x%04x)", f, rd.States)
	}
	return hpi.MState(st), nil
}

// waitMState reads the M-state of f until want accepts it, feeding every
// state seen into the domain, and fails after ActionTimeout. step, when
// not nil, is called with each state seen and may send a command (for
// example activate a FRU that stopped in M2).
func (m *Monitor) waitMState(ctx context.Context, f *fruRef, what string, want func(hpi.MState) bool, step func(hpi.MState) error) (hpi.MState, error) {
	deadline := time.Now().Add(m.cfg.ActionTimeout)
	last := hpi.MStateUnknown
	for {
		ms, err := m.readMState(ctx, f)
		if err == nil {
			m.observe(f.res, hpi.MStateUnknown, ms, hpi.HsCauseExtSoftware, m.cfg.Now())
			last = ms
			if want(ms) {
				return ms, nil
			}
			if step != nil {
				if err := step(ms); err != nil {
					return ms, err
				}
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return last, fmt.Errorf("%s of %s: not confirmed: %w", what, f, err)
			}
			return last, fmt.Errorf("%s of %s: not confirmed within %s: FRU is in %s", what, f, m.cfg.ActionTimeout, last)
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("%s of %s: waiting for confirmation: %w", what, f, ctx.Err())
		case <-time.After(m.cfg.ConfirmInterval):
		}
	}
}

func notInState(err error) bool {
	code, ok := ipmi.CodeOf(err)
	return ok && code == ipmi.CCNotSupportedInState
}

// hasChassis reports whether the controller of f says it is a chassis
// device (IPMI device support bit 7), so that Chassis Control can power
// its payload.
func hasChassis(f *fruRef) bool {
	return f.fru.ID == 0 && f.mc.Device != nil && f.mc.Device.DeviceSupport&0x80 != 0
}

// SetPowerState powers the FRU of resource id off or on (or cycles it)
// and returns once the hot-swap state (M1 off, M4 on) and, where the shelf
// manager supports it, the power level confirm it.
func (m *Monitor) SetPowerState(ctx context.Context, id hpi.ResourceID, s hpi.PowerState) error {
	return m.action(ctx, id, "set power state "+s.String(), func(ctx context.Context, f *fruRef) error {
		if f.fru.HotSwap == nil && f.fru.Power == nil {
			return fmt.Errorf("set power state of %s: no power level and no hot-swap sensor: %w", f, hpi.ErrCapability)
		}
		switch s {
		case hpi.PowerOff:
			return m.powerOff(ctx, f)
		case hpi.PowerOn:
			return m.powerOn(ctx, f)
		case hpi.PowerCycle:
			if err := m.powerOff(ctx, f); err != nil {
				return err
			}
			return m.powerOn(ctx, f)
		}
		return fmt.Errorf("set power state of %s to %s: %w", f, s, hpi.ErrInvalidParams)
	})
}

// powerOff removes the payload power: Set Power Level 0, else Set FRU
// Activation (deactivate), else Chassis Control power down; confirmed by
// M1 (or M0) and a power level of 0 where readable.
func (m *Monitor) powerOff(ctx context.Context, f *fruRef) error {
	if f.fru.HotSwap != nil {
		if ms, err := m.readMState(ctx, f); err == nil && (ms == hpi.M1 || ms == hpi.M0) {
			if err := m.confirmChassis(ctx, f, false); err != nil {
				return err
			}
			return m.confirmLevel(ctx, f, false)
		}
	}
	type mech struct {
		name string
		do   func() error
	}
	mechs := []mech{
		{"Set Power Level 0", func() error { return ipmi.SetPowerLevel(ctx, m.conn, f.addr, f.fru.ID, 0, false) }},
		{"Set FRU Activation (deactivate)", func() error { return ipmi.SetFRUActivation(ctx, m.conn, f.addr, f.fru.ID, false) }},
	}
	if hasChassis(f) {
		mechs = append(mechs, mech{"Chassis Control (power down)", func() error { return ipmi.ChassisControl(ctx, m.conn, f.addr, ipmi.ChassisPowerDown) }})
	}
	var errs []error
	done := false
	for _, mc := range mechs {
		err := mc.do()
		if err == nil || notInState(err) {
			m.log.Debug("power off", "fru", f.String(), "mechanism", mc.name, "err", err)
			done = err == nil
			if done {
				break
			}
			errs = append(errs, fmt.Errorf("%s: %w", mc.name, err))
			continue
		}
		if !errors.Is(err, ipmi.ErrNotSupported) {
			return fmt.Errorf("power off %s with %s: %w", f, mc.name, err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", mc.name, err))
	}
	if !done {
		if len(errs) > 0 && allNotSupported(errs) {
			return m.errNotSupportedBy(f, "power off", errors.Join(errs...))
		}
		return fmt.Errorf("power off %s: no mechanism worked: %w: %w", f, errors.Join(errs...), hpi.ErrInvalidRequest)
	}
	if f.fru.HotSwap != nil {
		if _, err := m.waitMState(ctx, f, "power off", func(ms hpi.MState) bool { return ms == hpi.M1 || ms == hpi.M0 }, nil); err != nil {
			return err
		}
	}
	if err := m.confirmChassis(ctx, f, false); err != nil {
		return err
	}
	return m.confirmLevel(ctx, f, false)
}

// confirmChassis makes sure that a controller which is also a chassis
// device (some IPMCs, and ipmi_sim's lab blades, whose hot-swap state does
// not follow their payload power) shows its payload power as wanted,
// using Chassis Control when it does not. Others are left alone.
func (m *Monitor) confirmChassis(ctx context.Context, f *fruRef, on bool) error {
	if !hasChassis(f) {
		return nil
	}
	st, err := ipmi.GetChassisStatus(ctx, m.conn, f.addr)
	if errors.Is(err, ipmi.ErrNotSupported) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading back the chassis power of %s: %w", f, err)
	}
	if st.PowerOn == on {
		return nil
	}
	a := ipmi.ChassisPowerDown
	if on {
		a = ipmi.ChassisPowerUp
	}
	m.log.Info("payload power does not follow the hot-swap state; using Chassis Control", "fru", f.String(), "want_on", on)
	if err := ipmi.ChassisControl(ctx, m.conn, f.addr, a); err != nil {
		return fmt.Errorf("chassis power %v of %s: %w", on, f, err)
	}
	deadline := time.Now().Add(m.cfg.ActionTimeout)
	for {
		st, err := ipmi.GetChassisStatus(ctx, m.conn, f.addr)
		if err == nil && st.PowerOn == on {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chassis power of %s not confirmed within %s (last error: %v)", f, m.cfg.ActionTimeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the chassis power of %s: %w", f, ctx.Err())
		case <-time.After(m.cfg.ConfirmInterval):
		}
	}
}

func allNotSupported(errs []error) bool {
	for _, e := range errs {
		if !errors.Is(e, ipmi.ErrNotSupported) {
			return false
		}
	}
	return true
}

// confirmLevel checks the present power level where the shelf manager
// can tell it (a shelf manager answering 0xC1 leaves the hot-swap state as
// the only confirmation).
func (m *Monitor) confirmLevel(ctx context.Context, f *fruRef, on bool) error {
	p, err := ipmi.GetPowerLevel(ctx, m.conn, f.addr, f.fru.ID, ipmi.PowerSteadyState)
	switch {
	case errors.Is(err, ipmi.ErrNotSupported):
		if f.fru.HotSwap == nil {
			return m.errNotSupportedBy(f, "reading the power level", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading back the power level of %s: %w", f, err)
	case (p.Level > 0) != on:
		return fmt.Errorf("power of %s not confirmed: power level reads %d", f, p.Level)
	}
	return nil
}

// powerOn brings the FRU to M4: from M1 the activation lock is cleared
// (Set FRU Activation Policy), else Chassis Control powers the payload;
// a FRU waiting in M2 is activated (Set FRU Activation).
func (m *Monitor) powerOn(ctx context.Context, f *fruRef) error {
	if f.fru.HotSwap == nil {
		if err := ipmi.SetPowerLevel(ctx, m.conn, f.addr, f.fru.ID, 1, true); err != nil {
			return fmt.Errorf("power on %s with Set Power Level: %w", f, err)
		}
		return m.confirmLevel(ctx, f, true)
	}
	ms, err := m.readMState(ctx, f)
	if err != nil {
		return fmt.Errorf("power on: %w", err)
	}
	switch ms {
	case hpi.M4:
		return m.confirmLevel(ctx, f, true)
	case hpi.M1:
		if err := m.unlockActivation(ctx, f); err != nil {
			if !errors.Is(err, ipmi.ErrNotSupported) {
				return fmt.Errorf("power on %s: %w", f, err)
			}
			if !hasChassis(f) {
				return m.errNotSupportedBy(f, "power on (activating a FRU in M1 needs Set FRU Activation Policy)", err)
			}
			if err := ipmi.ChassisControl(ctx, m.conn, f.addr, ipmi.ChassisPowerUp); err != nil {
				return fmt.Errorf("power on %s with Chassis Control (Set FRU Activation Policy is not supported): %w", f, err)
			}
		}
	case hpi.M2:
	case hpi.M3:
	default:
		return fmt.Errorf("power on %s: FRU is in %s: %w", f, ms, hpi.ErrInvalidRequest)
	}
	if _, err := m.waitMState(ctx, f, "power on", func(ms hpi.MState) bool { return ms == hpi.M4 }, m.activateInM2(ctx, f)); err != nil {
		return err
	}
	if err := m.confirmChassis(ctx, f, true); err != nil {
		return err
	}
	return m.confirmLevel(ctx, f, true)
}

// activateInM2 returns a waitMState step for a shelf manager that does
// not activate FRUs by itself: it sends Set FRU Activation (activate) once
// when the FRU waits in M2, and grants the FRU its desired power level
// (Set Power Level) once when it stays in M3, where it waits for power.
// A shelf manager that answers 0xC1 to the power commands manages power
// itself.
func (m *Monitor) activateInM2(ctx context.Context, f *fruRef) func(hpi.MState) error {
	sent, granted, inM3 := false, false, 0
	return func(ms hpi.MState) error {
		switch {
		case ms == hpi.M2 && !sent:
			sent = true
			if err := ipmi.SetFRUActivation(ctx, m.conn, f.addr, f.fru.ID, true); err != nil && !notInState(err) {
				return fmt.Errorf("activating %s in M2: %w", f, err)
			}
		case ms == hpi.M3 && !granted:
			if inM3++; inM3 < 3 {
				return nil
			}
			granted = true
			want, err := ipmi.GetPowerLevel(ctx, m.conn, f.addr, f.fru.ID, ipmi.PowerDesiredSteadyState)
			if errors.Is(err, ipmi.ErrNotSupported) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading the desired power level of %s in M3: %w", f, err)
			}
			if err := ipmi.SetPowerLevel(ctx, m.conn, f.addr, f.fru.ID, want.Level, false); err != nil &&
				!errors.Is(err, ipmi.ErrNotSupported) && !notInState(err) {
				return fmt.Errorf("granting %s its power level %d in M3: %w", f, want.Level, err)
			}
		}
		return nil
	}
}

// unlockActivation clears the Locked bit of the activation policy, which
// lets a FRU in M1 proceed to M2.
func (m *Monitor) unlockActivation(ctx context.Context, f *fruRef) error {
	err := ipmi.SetFRUActivationPolicy(ctx, m.conn, f.addr, f.fru.ID, ipmi.PolicyLockedBit, ipmi.ActivationPolicy{})
	if err != nil {
		return fmt.Errorf("clearing the activation lock of %s: %w", f, err)
	}
	return nil
}

// PowerState reads the power state of the FRU of resource id: its power
// level where the shelf manager supports Get Power Level, else its
// hot-swap state (M3-M5 on, others off).
func (m *Monitor) PowerState(ctx context.Context, id hpi.ResourceID) (hpi.PowerState, error) {
	f, err := m.fruOf(id)
	if err != nil {
		return 0, fmt.Errorf("power state: %w", err)
	}
	p, err := ipmi.GetPowerLevel(ctx, m.conn, f.addr, f.fru.ID, ipmi.PowerSteadyState)
	if err == nil {
		if p.Level > 0 {
			return hpi.PowerOn, nil
		}
		return hpi.PowerOff, nil
	}
	if !errors.Is(err, ipmi.ErrNotSupported) {
		return 0, fmt.Errorf("power state of %s: %w", f, err)
	}
	if f.fru.HotSwap == nil {
		return 0, m.errNotSupportedBy(f, "reading the power state", err)
	}
	ms, err := m.readMState(ctx, f)
	if err != nil {
		return 0, fmt.Errorf("power state: %w", err)
	}
	if ms >= hpi.M3 && ms <= hpi.M5 {
		return hpi.PowerOn, nil
	}
	return hpi.PowerOff, nil
}

// Reset resets the FRU of resource id with FRU Control (cold or warm
// reset). An ATCA FRU cannot be held in reset: RESET_ASSERT and
// RESET_DEASSERT are refused.
func (m *Monitor) Reset(ctx context.Context, id hpi.ResourceID, a hpi.ResetAction) error {
	return m.action(ctx, id, "reset "+a.String(), func(ctx context.Context, f *fruRef) error {
		var opt ipmi.FRUControlOption
		switch a {
		case hpi.ColdReset:
			opt = ipmi.FRUColdReset
		case hpi.WarmReset:
			opt = ipmi.FRUWarmReset
		case hpi.ResetAssert, hpi.ResetDeassert:
			return fmt.Errorf("reset %s: %s: an ATCA FRU cannot be held in reset: %w", f, a, hpi.ErrInvalidRequest)
		default:
			return fmt.Errorf("reset %s: action %d: %w", f, a, hpi.ErrInvalidParams)
		}
		if f.fru.Control == nil {
			return fmt.Errorf("reset %s: FRU Control capabilities unknown: %w", f, hpi.ErrCapability)
		}
		if !f.fru.Control.Supports(opt) {
			return fmt.Errorf("reset %s: %s not supported by the FRU: %w", f, opt, hpi.ErrCapability)
		}
		if err := ipmi.FRUControl(ctx, m.conn, f.addr, f.fru.ID, opt); err != nil {
			if errors.Is(err, ipmi.ErrNotSupported) {
				return m.errNotSupportedBy(f, "reset", err)
			}
			return fmt.Errorf("reset %s: %w", f, err)
		}
		// A reset leaves no state to read back; the controller must at
		// least answer again.
		if _, err := ipmi.GetDeviceID(ctx, m.conn, f.addr); err != nil {
			return fmt.Errorf("reset %s: controller does not answer after the reset: %w", f, err)
		}
		return nil
	})
}

// HotSwapAction runs a hot-swap request on resource id: the domain checks
// it against the HPI state (Request*), then it is carried out over IPMI
// and confirmed by the M-state.
func (m *Monitor) HotSwapAction(ctx context.Context, id hpi.ResourceID, a hpi.IntentAction) error {
	return m.action(ctx, id, "hot-swap "+a.String(), func(ctx context.Context, f *fruRef) error {
		now := m.cfg.Now()
		var in hpi.Intent
		var err error
		switch a {
		case hpi.IntentActivate:
			in, err = m.d.RequestActivate(id, now)
		case hpi.IntentDeactivate:
			in, err = m.d.RequestInactivate(id, now)
		case hpi.IntentRequestInsertion:
			in, err = m.d.RequestInsertion(id, now)
		case hpi.IntentRequestExtraction:
			in, err = m.d.RequestExtraction(id, now)
		default:
			return fmt.Errorf("hot-swap action %d on %s: %w", a, f, hpi.ErrInvalidParams)
		}
		if err != nil {
			return err
		}
		return m.carryOutOn(ctx, f, in)
	})
}

// carryOut carries out an intent of the domain (auto policy).
func (m *Monitor) carryOut(ctx context.Context, in hpi.Intent) error {
	return m.action(ctx, in.Resource, "hot-swap intent "+in.Action.String(), func(ctx context.Context, f *fruRef) error {
		return m.carryOutOn(ctx, f, in)
	})
}

func (m *Monitor) carryOutOn(ctx context.Context, f *fruRef, in hpi.Intent) error {
	if f.fru.HotSwap == nil || f.mc.PICMG == nil {
		return fmt.Errorf("%s on %s: no managed hot swap: %w", in.Action, f, hpi.ErrCapability)
	}
	switch in.Action {
	case hpi.IntentActivate:
		if err := ipmi.SetFRUActivation(ctx, m.conn, f.addr, f.fru.ID, true); err != nil {
			return m.commandErr(f, "activate", err)
		}
		_, err := m.waitMState(ctx, f, "activate", func(ms hpi.MState) bool { return ms == hpi.M4 }, m.activateInM2(ctx, f))
		return err
	case hpi.IntentDeactivate:
		if err := ipmi.SetFRUActivation(ctx, m.conn, f.addr, f.fru.ID, false); err != nil {
			return m.commandErr(f, "deactivate", err)
		}
		_, err := m.waitMState(ctx, f, "deactivate", func(ms hpi.MState) bool { return ms == hpi.M1 || ms == hpi.M0 }, nil)
		return err
	case hpi.IntentRequestInsertion:
		if err := m.unlockActivation(ctx, f); err != nil {
			return m.commandErr(f, "insertion request (clearing the activation lock)", err)
		}
		_, err := m.waitMState(ctx, f, "insertion request", func(ms hpi.MState) bool { return ms >= hpi.M2 && ms <= hpi.M4 }, nil)
		return err
	case hpi.IntentRequestExtraction:
		held, err := m.policyHolds(ctx, f, true)
		switch {
		case err != nil:
			return fmt.Errorf("extraction request: %w", err)
		case held:
			return fmt.Errorf("extraction request of %s: the FRU is Deactivation-Locked (held in M4 by its activation policy); clear the lock first: %w", f, hpi.ErrInvalidRequest)
		}
		if err := ipmi.SetFRUActivation(ctx, m.conn, f.addr, f.fru.ID, false); err != nil {
			return m.commandErr(f, "extraction request (deactivate)", err)
		}
		_, err = m.waitMState(ctx, f, "extraction request", func(ms hpi.MState) bool { return ms >= hpi.M5 && ms <= hpi.M6 || ms == hpi.M1 || ms == hpi.M0 }, nil)
		return err
	}
	return fmt.Errorf("%s on %s: %w", in.Action, f, hpi.ErrInvalidParams)
}

// commandErr says why a hot-swap command failed: not supported by the
// shelf manager (ErrCapability), not in the FRU's state
// (ErrInvalidRequest), or how it failed.
func (m *Monitor) commandErr(f *fruRef, what string, err error) error {
	switch {
	case errors.Is(err, ipmi.ErrNotSupported):
		return m.errNotSupportedBy(f, what, err)
	case notInState(err):
		return fmt.Errorf("%s of %s: %w: %w", what, f, err, hpi.ErrInvalidRequest)
	}
	return fmt.Errorf("%s of %s: %w", what, f, err)
}

// SetControl writes a control of resource id: a FRU LED (Set FRU LED
// State, confirmed by Get FRU LED State) or the FRU activation control
// (digital ON activates, OFF deactivates, confirmed by the M-state).
//
// An LED takes an OEM state whose bytes are the PICMG LED function
// (0x00 off, 0x01-0xFA blink off-time, 0xFB lamp test, 0xFC local
// control, 0xFF on), the on-duration and the color (0x0F: the LED's
// default), or a digital state: ON lights it, OFF switches it off.
func (m *Monitor) SetControl(ctx context.Context, id hpi.ResourceID, num hpi.CtrlNum, s hpi.CtrlState) error {
	return m.action(ctx, id, fmt.Sprintf("set control %d", num), func(ctx context.Context, f *fruRef) error {
		rdr, err := m.d.RDR(id, hpi.CtrlRDR, num)
		if err != nil {
			return fmt.Errorf("set control %d of %s: %w", num, f, err)
		}
		switch {
		case num == hpi.ATCACtrlNumFRUActivation:
			if s.Type != hpi.CtrlTypeDigital || (s.Digital != hpi.CtrlStateOn && s.Digital != hpi.CtrlStateOff) {
				return fmt.Errorf("set FRU activation control of %s: want a digital ON or OFF: %w", f, hpi.ErrInvalidParams)
			}
			if s.Digital == hpi.CtrlStateOn {
				return m.activateControl(ctx, f)
			}
			if err := ipmi.SetFRUActivation(ctx, m.conn, f.addr, f.fru.ID, false); err != nil && !notInState(err) {
				return m.commandErr(f, "deactivate", err)
			}
			_, err := m.waitMState(ctx, f, "deactivate", func(ms hpi.MState) bool { return ms == hpi.M1 || ms == hpi.M0 }, nil)
			return err
		case rdr.Control != nil && rdr.Control.OutputType == hpi.CtrlLED && num < 0x100:
			set, err := ledSetting(s)
			if err != nil {
				return fmt.Errorf("set LED %d of %s: %w", num, f, err)
			}
			return m.setLED(ctx, f, uint8(num), set)
		}
		return fmt.Errorf("set control %d of %s: this control cannot be written: %w", num, f, hpi.ErrCapability)
	})
}

// activateControl activates a FRU through the FRU activation control.
func (m *Monitor) activateControl(ctx context.Context, f *fruRef) error {
	ms, err := m.readMState(ctx, f)
	if err != nil {
		return err
	}
	switch ms {
	case hpi.M4:
		return nil
	case hpi.M1:
		if err := m.unlockActivation(ctx, f); err != nil {
			return m.commandErr(f, "activate (clearing the activation lock)", err)
		}
	case hpi.M2, hpi.M3:
	default:
		return fmt.Errorf("activate %s: FRU is in %s: %w", f, ms, hpi.ErrInvalidRequest)
	}
	_, err = m.waitMState(ctx, f, "activate", func(ms hpi.MState) bool { return ms == hpi.M4 }, m.activateInM2(ctx, f))
	return err
}

// ledSetting turns an HPI control state into a PICMG LED setting.
func ledSetting(s hpi.CtrlState) (ipmi.LEDSetting, error) {
	const defaultColor = ipmi.LEDColor(0x0f)
	switch s.Type {
	case hpi.CtrlTypeDigital:
		switch s.Digital {
		case hpi.CtrlStateOn:
			return ipmi.LEDSetting{Function: ipmi.LEDOn, Color: defaultColor}, nil
		case hpi.CtrlStateOff:
			return ipmi.LEDSetting{Function: ipmi.LEDOff, Color: defaultColor}, nil
		}
		return ipmi.LEDSetting{}, fmt.Errorf("digital state %d: want ON or OFF: %w", s.Digital, hpi.ErrInvalidParams)
	case hpi.CtrlTypeOEM:
		if len(s.Oem) == 0 || len(s.Oem) > 3 {
			return ipmi.LEDSetting{}, fmt.Errorf("OEM state of %d bytes: want function[, on-duration[, color]]: %w", len(s.Oem), hpi.ErrInvalidParams)
		}
		set := ipmi.LEDSetting{Function: s.Oem[0], Color: defaultColor}
		if len(s.Oem) > 1 {
			set.OnDuration = s.Oem[1]
		}
		if len(s.Oem) > 2 {
			if s.Oem[2] > 0x0f || s.Oem[2] == 0 {
				return ipmi.LEDSetting{}, fmt.Errorf("LED color 0x%02x: %w", s.Oem[2], hpi.ErrInvalidParams)
			}
			set.Color = ipmi.LEDColor(s.Oem[2])
		}
		if set.Function == ipmi.LEDLampTest && set.OnDuration >= 128 {
			return ipmi.LEDSetting{}, fmt.Errorf("lamp test of %d00 ms: %w", set.OnDuration, hpi.ErrInvalidParams)
		}
		return set, nil
	}
	return ipmi.LEDSetting{}, fmt.Errorf("control state type %d: want OEM or digital: %w", s.Type, hpi.ErrInvalidParams)
}

// setLED sets an LED and reads its state back.
func (m *Monitor) setLED(ctx context.Context, f *fruRef, led uint8, set ipmi.LEDSetting) error {
	if err := ipmi.SetFRULEDState(ctx, m.conn, f.addr, f.fru.ID, led, set); err != nil {
		return m.commandErr(f, fmt.Sprintf("set LED %d", led), err)
	}
	st, err := ipmi.GetFRULEDState(ctx, m.conn, f.addr, f.fru.ID, led)
	if err != nil {
		return fmt.Errorf("reading back LED %d of %s: %w", led, f, err)
	}
	switch {
	case set.Function == ipmi.LEDLocalControl:
		if st.OverrideEnabled {
			return fmt.Errorf("LED %d of %s still overridden after returning it to local control", led, f)
		}
	case set.Function == ipmi.LEDLampTest:
		if !st.LampTestEnabled {
			return fmt.Errorf("LED %d of %s: lamp test not running after it was started", led, f)
		}
	default:
		got := st.Override
		if !st.OverrideEnabled || got.Function != set.Function ||
			(set.Function != ipmi.LEDOn && set.Function != ipmi.LEDOff && got.OnDuration != set.OnDuration) ||
			(set.Color != 0x0f && set.Color != 0x0e && got.Color != set.Color) {
			return fmt.Errorf("LED %d of %s reads back %+v (override %v), want %+v", led, f, got, st.OverrideEnabled, set)
		}
	}
	return nil
}

// HotSwapSensorOf returns the number of the hot-swap sensor of FRU fru on
// the controller at IPMB-0 address ipmb, as of the last discovery, when
// that controller owns it (a fencing executor reads it back through the
// same bridged address). ok is false before the first discovery, for a
// FRU the shelf does not report, and for one without a hot-swap sensor.
func (m *Monitor) HotSwapSensorOf(ipmb, fru uint8) (num uint8, ok bool) {
	m.mu.Lock()
	idx := m.idx
	m.mu.Unlock()
	_, f, ok := idx.fruAt(ipmb, fru)
	if !ok || f.fru.HotSwap == nil || f.fru.HotSwap.Owner.Slave != ipmb {
		return 0, false
	}
	return f.fru.HotSwap.Number, true
}
