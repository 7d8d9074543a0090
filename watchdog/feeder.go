package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// HealthCheck is one condition the agent must meet to feed its watchdogs
// (its event loop turns, the shelf session answers, the disk is writable).
type HealthCheck interface {
	Name() string
	Check(ctx context.Context) error
}

// CheckFunc adapts a function to HealthCheck.
type CheckFunc struct {
	N string
	F func(ctx context.Context) error
}

// Name implements HealthCheck.
func (c CheckFunc) Name() string { return c.N }

// Check implements HealthCheck.
func (c CheckFunc) Check(ctx context.Context) error { return c.F(ctx) }

// FeederConfig configures a Feeder.
type FeederConfig struct {
	// Devices are fed together. Required (at least one).
	Devices []Device
	// Checks must all pass for a feed.
	Checks []HealthCheck
	// HasQuorum reports whether this node is in the cluster's quorum.
	// Nil: the node is not clustered and never self-fences.
	HasQuorum func() bool
	// SelfFenceAfter is how long quorum may be lost before feeding stops
	// for good. Default 15 s. It must be well above the time the majority
	// itself goes without quorum while electing a new leader (raft
	// heartbeat + election timeouts, a few seconds), or healthy members
	// reset themselves when a leader fails. The majority may count this
	// node as reset after SelfFenceAfter + the longest device timeout
	// (+ margin).
	SelfFenceAfter time.Duration
	// Interval is the time between feeds. Default 5 s, which must be
	// well below every device's timeout (a third or less).
	Interval time.Duration
	// CheckTimeout bounds one round of health checks. Default Interval/2:
	// a hung check counts as failing, it does not delay the decision.
	CheckTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Feeder feeds the watchdogs while the Decider allows it.
type Feeder struct {
	cfg FeederConfig

	mu      sync.Mutex
	dec     *Decider
	last    Decision
	armed   []bool // per device, in the order of cfg.Devices
	stopped bool
	feeds   uint64
}

// NewFeeder validates cfg and returns a Feeder.
func NewFeeder(cfg FeederConfig) (*Feeder, error) {
	if len(cfg.Devices) == 0 {
		return nil, fmt.Errorf("watchdog: feeder without devices")
	}
	if cfg.SelfFenceAfter <= 0 {
		cfg.SelfFenceAfter = 15 * time.Second
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = cfg.Interval / 2
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Feeder{cfg: cfg, dec: NewDecider(cfg.SelfFenceAfter), last: Decision{Feed: true}, armed: make([]bool, len(cfg.Devices))}, nil
}

// ErrStopped is returned by Arm after Shutdown: a stopped feeder never
// arms a device again, so a disarmed watchdog cannot be armed behind a
// clean stop's back.
var ErrStopped = errors.New("watchdog: feeder stopped")

// Arm arms every device not armed yet. A device that fails to arm is an
// error (running without the watchdog the configuration asks for is not
// safe), but it does not stop the others: they are armed, and Tick arms
// the failed one again at each feed, so that a controller reached through
// a session that is not up yet (a shelf manager still starting) is armed
// as soon as it answers, and a device armed meanwhile is fed.
func (f *Feeder) Arm(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return ErrStopped
	}
	return f.armLocked(ctx)
}

func (f *Feeder) armLocked(ctx context.Context) error {
	var errs []error
	for i, d := range f.cfg.Devices {
		if f.armed[i] {
			continue
		}
		if err := d.Arm(ctx); err != nil {
			errs = append(errs, fmt.Errorf("arming watchdog %s: %w", d.Name(), err))
			continue
		}
		f.armed[i] = true
		f.cfg.Logger.Info("watchdog armed", "device", d.Name())
	}
	return errors.Join(errs...)
}

func (f *Feeder) armedCount() int {
	n := 0
	for _, a := range f.armed {
		if a {
			n++
		}
	}
	return n
}

// Tick runs the health checks, asks the Decider and, if allowed, feeds
// every armed device and arms again those that failed to arm (a device is
// armed only when it would be fed: arming one while the node is unhealthy
// or self-fencing would only start a countdown nobody feeds). It returns
// the decision and the errors of devices that could not be fed or armed.
func (f *Feeder) Tick(ctx context.Context) (Decision, error) {
	var failing []string
	cctx, cancel := context.WithTimeout(ctx, f.cfg.CheckTimeout)
	for _, c := range f.cfg.Checks {
		if err := c.Check(cctx); err != nil {
			failing = append(failing, c.Name())
			f.cfg.Logger.Debug("watchdog health check failing", "check", c.Name(), "error", err)
		}
	}
	cancel()
	quorum := true
	if f.cfg.HasQuorum != nil {
		quorum = f.cfg.HasQuorum()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return Decision{Reason: "feeder stopped"}, nil
	}
	d := f.dec.Decide(f.cfg.Now(), failing, quorum)
	if d.Feed != f.last.Feed || d.SelfFencing != f.last.SelfFencing {
		switch {
		case d.SelfFencing:
			f.cfg.Logger.Error("watchdogs no longer fed: the node will reset", "reason", d.Reason)
		case !d.Feed:
			f.cfg.Logger.Warn("watchdogs not fed", "reason", d.Reason)
		default:
			f.cfg.Logger.Info("watchdogs fed again")
		}
	}
	f.last = d
	if !d.Feed {
		return d, nil
	}
	var errs []error
	fed := false
	for i, dev := range f.cfg.Devices {
		if !f.armed[i] {
			continue
		}
		if err := dev.Feed(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		fed = true
	}
	if fed {
		f.feeds++
	}
	if f.armedCount() < len(f.armed) {
		errs = append(errs, f.armLocked(ctx))
	}
	return d, errors.Join(errs...)
}

// Run arms the devices and ticks every Interval until ctx ends; a device
// that fails to arm is logged and armed again at each feed. It does not
// disarm: call Shutdown on a clean stop. Leaving without disarming is
// what an unclean stop must do.
func (f *Feeder) Run(ctx context.Context) error {
	if err := f.Arm(ctx); errors.Is(err, ErrStopped) {
		return err
	} else if err != nil {
		f.cfg.Logger.Error("watchdog not armed; trying again at each feed", "error", err)
	}
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := f.Tick(ctx); err != nil {
			f.cfg.Logger.Warn("feeding watchdogs", "error", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Shutdown stops feeding and, unless the node is self-fencing, disarms
// every device (magic close, BMC timer stopped). A self-fencing node keeps
// its watchdogs armed: the reset must happen.
func (f *Feeder) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	if f.dec.SelfFencing() {
		f.cfg.Logger.Warn("watchdogs left armed at shutdown: self-fencing")
		return nil
	}
	var errs []error
	for i, d := range f.cfg.Devices {
		if !f.armed[i] {
			continue
		}
		if err := d.Disarm(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		f.armed[i] = false
		f.cfg.Logger.Info("watchdog disarmed", "device", d.Name())
	}
	return errors.Join(errs...)
}

// Status is the feeder's state for the API and metrics.
type Status struct {
	Feeding     bool
	SelfFencing bool
	Reason      string
	Feeds       uint64
	// Unarmed names the devices that failed to arm and are armed again
	// at each feed.
	Unarmed []string
}

// Status returns the last decision.
func (f *Feeder) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Status{Feeding: f.last.Feed && f.armedCount() > 0 && !f.stopped, SelfFencing: f.last.SelfFencing, Reason: f.last.Reason, Feeds: f.feeds}
	if !f.stopped {
		for i, d := range f.cfg.Devices {
			if !f.armed[i] {
				st.Unarmed = append(st.Unarmed, d.Name())
			}
		}
	}
	return st
}

// Heartbeat is a health check for a loop that must keep turning (the
// agent's event loop, the shelf poller): the loop calls Beat every round,
// and the check fails when the last beat is older than MaxAge (or there
// was none yet).
type Heartbeat struct {
	// N is the check's name.
	N string
	// MaxAge is how old the last beat may be. Required.
	MaxAge time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time

	mu   sync.Mutex
	last time.Time
}

// Beat records that the loop is alive.
func (h *Heartbeat) Beat() {
	now := h.now()
	h.mu.Lock()
	h.last = now
	h.mu.Unlock()
}

func (h *Heartbeat) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Name implements HealthCheck.
func (h *Heartbeat) Name() string { return h.N }

// Check implements HealthCheck.
func (h *Heartbeat) Check(context.Context) error {
	h.mu.Lock()
	last := h.last
	h.mu.Unlock()
	if last.IsZero() {
		return fmt.Errorf("%s: no heartbeat yet", h.N)
	}
	if age := h.now().Sub(last); age > h.MaxAge {
		return fmt.Errorf("%s: last heartbeat %s ago (more than %s)", h.N, age, h.MaxAge)
	}
	return nil
}
