package fencing

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// PowerStatus is the power state of a target as an executor reads it back.
type PowerStatus uint8

// Power states.
const (
	PowerUnknown PowerStatus = iota // could not be told (transient state, no answer)
	PowerOff                        // confirmed off (fabric port down, FRU in M1, power level 0, chassis off)
	PowerOn                         // confirmed on
)

func (p PowerStatus) String() string {
	switch p {
	case PowerOff:
		return ReadbackOff
	case PowerOn:
		return ReadbackOn
	}
	return "unknown"
}

// Executor is one fencing mechanism (node_exporter collector style: small,
// uniform, registered by name in a level). Off and On only ask for the
// change; Status reads the state back. Implementations map a cluster node
// name to their own hardware address and return ErrUnknownTarget for a node
// they have no mapping for. All methods must honour ctx and be safe for
// concurrent use.
type Executor interface {
	Name() string
	Off(ctx context.Context, node string) error
	On(ctx context.Context, node string) error
	Status(ctx context.Context, node string) (PowerStatus, error)
}

// Errors of executors, matched with errors.Is.
var (
	// ErrUnknownTarget: the executor has no address for this node.
	ErrUnknownTarget = errors.New("fencing: no address for this node")
	// ErrUnsupported: the peer does not support this mechanism (for
	// example a shelf manager answering 0xC1 to Set Power Level); the
	// level fails and the next level is used.
	ErrUnsupported = errors.New("fencing: mechanism not supported by the peer")
	// ErrNotConfirmed: the change was asked for but the read-back did not
	// show it within the confirmation timeout.
	ErrNotConfirmed = errors.New("fencing: state not confirmed by read-back")
)

// ConfirmConfig says how long and how often a change is read back.
type ConfirmConfig struct {
	// Timeout is how long the read-back may take to show the new state.
	// Default 15 s: ipmi_sim takes up to 1.5 s to act on chassis power
	// off, real blades take seconds to shut their payload down (PICMG M6
	// may last for a graceful shutdown), and net-snmp needs about 2.5 s
	// for interface caches.
	Timeout time.Duration
	// Interval is the pause between read-backs. Default 250 ms: fast
	// enough to finish a fence soon after the hardware acts, slow enough
	// not to load a shelf manager.
	Interval time.Duration
	// Reissue is how long the read-back may disagree before the change is
	// asked for again (every request here is idempotent). Default a third
	// of Timeout: a shelf manager may drop or override a request it got
	// in a transitional state (a FRU still in M6 re-locks on reaching M1).
	Reissue time.Duration
}

func (c ConfirmConfig) withDefaults() ConfirmConfig {
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Second
	}
	if c.Interval <= 0 {
		c.Interval = 250 * time.Millisecond
	}
	if c.Reissue <= 0 {
		c.Reissue = c.Timeout / 3
	}
	return c
}

// SetAndConfirm asks e to switch node to want (PowerOff or PowerOn), then
// reads the state back until it shows want or the confirmation timeout
// passes. It returns the last read-back and an error unless confirmed.
func SetAndConfirm(ctx context.Context, e Executor, node string, want PowerStatus, cfg ConfirmConfig) (PowerStatus, error) {
	cfg = cfg.withDefaults()
	ask := func(ctx context.Context) error {
		if want == PowerOff {
			return e.Off(ctx, node)
		}
		return e.On(ctx, node)
	}
	if want != PowerOff && want != PowerOn {
		return PowerUnknown, fmt.Errorf("fencing: %s of %q: cannot ask for state %s", e.Name(), node, want)
	}
	if err := ask(ctx); err != nil {
		return PowerUnknown, fmt.Errorf("%s: switching %q %s: %w", e.Name(), node, want, err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	asked := time.Now()
	last, lastErr := PowerUnknown, error(nil)
	for {
		if time.Since(asked) >= cfg.Reissue {
			// Ask again; a refusal now (wrong state for the request) is
			// not final, the read-back decides.
			asked = time.Now()
			_ = ask(ctx)
		}
		st, err := e.Status(ctx, node)
		if err == nil && st == want {
			return st, nil
		}
		if err == nil {
			last, lastErr = st, nil
		} else {
			lastErr = err
			if errors.Is(err, ErrUnsupported) || errors.Is(err, ErrUnknownTarget) {
				return PowerUnknown, fmt.Errorf("%s: reading back %q: %w", e.Name(), node, err)
			}
		}
		t := time.NewTimer(cfg.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			if lastErr != nil {
				return last, fmt.Errorf("%s: %q not %s within %s (last read-back %s, %v): %w", e.Name(), node, want, cfg.Timeout, last, lastErr, ErrNotConfirmed)
			}
			return last, fmt.Errorf("%s: %q not %s within %s (last read-back %s): %w", e.Name(), node, want, cfg.Timeout, last, ErrNotConfirmed)
		case <-t.C:
		}
	}
}

// Level is one level of the fencing topology: every executor must succeed
// (for example "power off the blade AND cut its fabric ports").
type Level struct {
	// Name identifies the level in the log and the audit trail.
	Name string
	// Attempts is how often the level is tried before the next level is
	// used. Default 1.
	Attempts int
	// Executors all run, in order, for the level to succeed.
	Executors []Executor
	// Confirm is the read-back timing of this level's executors.
	Confirm ConfirmConfig
}

// Off switches node off with every executor of the level, each confirmed
// by read-back. It stops at the first failure.
func (l Level) Off(ctx context.Context, node string) (PowerStatus, error) {
	if len(l.Executors) == 0 {
		return PowerUnknown, fmt.Errorf("fencing level %q has no executors", l.Name)
	}
	for _, e := range l.Executors {
		st, err := SetAndConfirm(ctx, e, node, PowerOff, l.Confirm)
		if err != nil {
			return st, fmt.Errorf("fencing level %q: %w", l.Name, err)
		}
	}
	return PowerOff, nil
}

// On switches node on with every executor of the level in reverse order
// (power before fabric, the reverse of fencing), each confirmed.
func (l Level) On(ctx context.Context, node string) (PowerStatus, error) {
	for i := len(l.Executors) - 1; i >= 0; i-- {
		st, err := SetAndConfirm(ctx, l.Executors[i], node, PowerOn, l.Confirm)
		if err != nil {
			return st, fmt.Errorf("unfencing level %q: %w", l.Name, err)
		}
	}
	return PowerOn, nil
}

// Status reads node's state through the level's executors: off if any
// executor reads off (the node is isolated), on if all read on.
func (l Level) Status(ctx context.Context, node string) (PowerStatus, error) {
	all := PowerOn
	var errs []error
	for _, e := range l.Executors {
		st, err := e.Status(ctx, node)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.Name(), err))
			all = PowerUnknown
			continue
		}
		if st == PowerOff {
			return PowerOff, nil
		}
		if st != PowerOn {
			all = PowerUnknown
		}
	}
	return all, errors.Join(errs...)
}
