// Package hotswaphw lets the hot-swap workflows (package hotswap) drive
// the shelves that shelf.Monitors watch: Hardware implements
// hotswap.Hardware by routing each FRU to the Monitor of its shelf manager
// (by name) and calling the Monitor's hot-swap methods, which address the
// FRU by IPMB address and FRU device ID, serialise and audit the action and
// confirm it by reading state back. Resolve maps the domain's hot-swap
// events to the workflows' FRUs (the resolver of Coordinator.RunEvents).
//
// It is a package of its own because package hotswap's tests use package
// shelf, so shelf cannot import hotswap; this package imports both and
// holds no state of its own beyond the routing table.
package hotswaphw

import (
	"context"
	"fmt"

	"hpiagent/hotswap"
	"hpiagent/hpi"
	"hpiagent/shelf"
)

// Hardware implements hotswap.Hardware over the Monitors of the agent's
// shelf managers. It is safe for concurrent use (the Monitors serialise
// actions per FRU).
type Hardware struct {
	monitors map[string]*shelf.Monitor
}

var _ hotswap.Hardware = (*Hardware)(nil)

// New returns the Hardware of the shelves that monitors watch. Every
// Monitor needs a distinct Name (MonitorConfig.Name): it is the Shelf of
// the workflows' FRUs.
func New(monitors ...*shelf.Monitor) (*Hardware, error) {
	h := &Hardware{monitors: make(map[string]*shelf.Monitor, len(monitors))}
	for _, m := range monitors {
		if m == nil {
			return nil, fmt.Errorf("hot-swap hardware: nil Monitor")
		}
		if _, dup := h.monitors[m.Name()]; dup {
			return nil, fmt.Errorf("hot-swap hardware: two Monitors named %q: FRUs could not be routed", m.Name())
		}
		h.monitors[m.Name()] = m
	}
	if len(h.monitors) == 0 {
		return nil, fmt.Errorf("hot-swap hardware: no Monitor")
	}
	return h, nil
}

// route finds the Monitor of fru's shelf manager.
func (h *Hardware) route(fru hotswap.FRU) (*shelf.Monitor, shelf.HotSwapFRU, error) {
	m, ok := h.monitors[fru.Shelf]
	if !ok {
		return nil, shelf.HotSwapFRU{}, fmt.Errorf("FRU %s: no shelf manager named %q is monitored: %w", fru.Key(), fru.Shelf, hpi.ErrInvalidResource)
	}
	return m, shelf.HotSwapFRU{Shelf: fru.Shelf, IPMB: fru.IPMB, ID: fru.ID}, nil
}

// SetActivationLock sets or clears the Locked bit of fru's activation
// policy, confirmed by reading the policy back.
func (h *Hardware) SetActivationLock(ctx context.Context, fru hotswap.FRU, locked bool) error {
	m, f, err := h.route(fru)
	if err != nil {
		return err
	}
	return m.SetActivationLock(ctx, f, locked)
}

// SetDeactivationLock sets or clears the Deactivation-Locked bit of fru's
// activation policy, confirmed by reading the policy back.
func (h *Hardware) SetDeactivationLock(ctx context.Context, fru hotswap.FRU, locked bool) error {
	m, f, err := h.route(fru)
	if err != nil {
		return err
	}
	return m.SetDeactivationLock(ctx, f, locked)
}

// ActivationPolicy reads fru's activation policy.
func (h *Hardware) ActivationPolicy(ctx context.Context, fru hotswap.FRU) (hotswap.Policy, error) {
	m, f, err := h.route(fru)
	if err != nil {
		return hotswap.Policy{}, err
	}
	p, err := m.ActivationPolicy(ctx, f)
	if err != nil {
		return hotswap.Policy{}, err
	}
	return hotswap.Policy{Locked: p.Locked, DeactivationLocked: p.DeactivationLocked}, nil
}

// Activate drives fru to M4 and returns once M4 is read back.
func (h *Hardware) Activate(ctx context.Context, fru hotswap.FRU) error {
	m, f, err := h.route(fru)
	if err != nil {
		return err
	}
	return m.Activate(ctx, f)
}

// Deactivate drives fru to M1 and returns once M1 is read back.
func (h *Hardware) Deactivate(ctx context.Context, fru hotswap.FRU) error {
	m, f, err := h.route(fru)
	if err != nil {
		return err
	}
	return m.Deactivate(ctx, f)
}

// MState reads fru's M-state from its hot-swap sensor.
func (h *Hardware) MState(ctx context.Context, fru hotswap.FRU) (hpi.MState, error) {
	m, f, err := h.route(fru)
	if err != nil {
		return 0, err
	}
	return m.MState(ctx, f)
}

// SetBlueLED turns fru's blue LED on, or back to local control (off),
// confirmed by reading the LED state back.
func (h *Hardware) SetBlueLED(ctx context.Context, fru hotswap.FRU, on bool) error {
	m, f, err := h.route(fru)
	if err != nil {
		return err
	}
	return m.SetBlueLED(ctx, f, on)
}

// FRUOf returns the workflows' FRU of resource id: false when no Monitor
// knows id as a FRU resource.
func (h *Hardware) FRUOf(id hpi.ResourceID) (hotswap.FRU, bool) {
	for _, m := range h.monitors {
		if f, ok := m.FRUOf(id); ok {
			return hotswap.FRU{Entity: f.Entity.String(), Shelf: f.Shelf, IPMB: f.IPMB, ID: f.ID}, true
		}
	}
	return hotswap.FRU{}, false
}

// Resolve is the resolver of hotswap.Coordinator.RunEvents: it maps a
// hot-swap event's resource to its FRU (false for other events and for
// resources no Monitor knows as a FRU).
func (h *Hardware) Resolve(e hpi.Event) (hotswap.FRU, bool) {
	if e.Type != hpi.EventHotSwap {
		return hotswap.FRU{}, false
	}
	return h.FRUOf(e.Source)
}
