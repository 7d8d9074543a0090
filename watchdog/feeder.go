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
	// Checks must all pass for a feed. Default none: feed while the
	// process runs (and, clustered, while self-fencing is not decided).
	Checks []HealthCheck
	// HasQuorum reports whether this node is in the cluster's quorum.
	// Default nil: the node is not clustered, feeds on its health checks
	// alone and never self-fences.
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
	// well below every device's timeout (a third or less; half or less of
	// systemd's WatchdogSec).
	Interval time.Duration
	// CheckTimeout bounds one round of health checks. Default Interval/2:
	// a hung check counts as failing, it does not delay the decision (a
	// check still running from an earlier round fails at once rather
	// than being started twice).
	CheckTimeout time.Duration
	// OnSelfFence is called once, when the feeder decides to stop feeding
	// for good, with the reason, before Tick returns and before any later
	// tick: the place to write a durable record that the node is about
	// to be reset. It runs without the feeder's lock held (Status works
	// meanwhile) and never brings feeding back. Default nil.
	OnSelfFence func(ctx context.Context, reason string)
	// SelfFenced, when not empty, starts the feeder self-fencing with this
	// reason: the decision was taken before the agent restarted on this
	// boot (see SelfFenceMark). Such a feeder arms and feeds nothing, so
	// that the watchdogs armed before the restart run out. Default "".
	SelfFenced string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// deviceState is what the Feeder knows of one device.
type deviceState struct {
	armed    bool
	fed      bool // fed at the last tick
	feeds    uint64
	errors   uint64
	lastFeed time.Time
	lastErr  string
}

// checkState is what the Feeder knows of one health check.
type checkState struct {
	running bool // a Check call has not returned yet
	failing bool
	err     string
}

// Feeder feeds the watchdogs while the Decider allows it.
type Feeder struct {
	cfg FeederConfig

	cmu    sync.Mutex // guards checks
	checks []checkState

	// io serialises the devices' I/O (arming, feeding, disarming), so
	// that no feed runs after Shutdown's disarm; mu guards the state
	// below and is never held during device I/O, so that Status answers
	// while a slow controller is fed.
	io            sync.Mutex
	mu            sync.Mutex
	dec           *Decider
	last          Decision
	lastTick      time.Time
	withheldSince time.Time     // zero while feeding
	fencingSince  time.Time     // when self-fencing was decided
	devs          []deviceState // in the order of cfg.Devices
	stopped       bool
	feeds         uint64
}

// NewFeeder validates cfg and returns a Feeder.
func NewFeeder(cfg FeederConfig) (*Feeder, error) {
	if len(cfg.Devices) == 0 {
		return nil, fmt.Errorf("watchdog: feeder without devices")
	}
	seen := map[string]bool{}
	for _, d := range cfg.Devices {
		if seen[d.Name()] {
			return nil, fmt.Errorf("watchdog: two devices named %q", d.Name())
		}
		seen[d.Name()] = true
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
	f := &Feeder{cfg: cfg, dec: NewDecider(cfg.SelfFenceAfter), last: Decision{Feed: true},
		devs: make([]deviceState, len(cfg.Devices)), checks: make([]checkState, len(cfg.Checks))}
	if cfg.SelfFenced != "" {
		now := cfg.Now()
		f.dec.Latch(cfg.SelfFenced)
		f.last = Decision{SelfFencing: true, Reason: cfg.SelfFenced}
		f.withheldSince, f.fencingSince = now, now
	}
	return f, nil
}

// Interval is the time between feeds.
func (f *Feeder) Interval() time.Duration { return f.cfg.Interval }

// ErrStopped is returned by Arm after Shutdown: a stopped feeder never
// arms a device again, so a disarmed watchdog cannot be armed behind a
// clean stop's back.
var ErrStopped = errors.New("watchdog: feeder stopped")

// ErrSelfFencing is returned by Arm once the feeder is self-fencing:
// arming a watchdog then would restart a countdown that must run out.
var ErrSelfFencing = errors.New("watchdog: self-fencing, nothing is armed")

// Arm arms every device not armed yet. A device that fails to arm is an
// error (running without the watchdog the configuration asks for is not
// safe), but it does not stop the others: they are armed, and Tick arms
// the failed one again at each feed, so that a controller reached through
// a session that is not up yet (a shelf manager still starting) is armed
// as soon as it answers, and a device armed meanwhile is fed.
func (f *Feeder) Arm(ctx context.Context) error {
	f.io.Lock()
	defer f.io.Unlock()
	f.mu.Lock()
	stopped, fencing := f.stopped, f.dec.SelfFencing()
	f.mu.Unlock()
	if stopped {
		return ErrStopped
	}
	if fencing {
		return ErrSelfFencing
	}
	return f.armUnarmed(ctx)
}

// armUnarmed arms every device not armed yet. f.io must be held.
func (f *Feeder) armUnarmed(ctx context.Context) error {
	var errs []error
	for i, d := range f.cfg.Devices {
		f.mu.Lock()
		armed := f.devs[i].armed
		f.mu.Unlock()
		if armed {
			continue
		}
		err := d.Arm(ctx)
		f.mu.Lock()
		st := &f.devs[i]
		if err != nil {
			err = fmt.Errorf("arming watchdog %s: %w", d.Name(), err)
			st.errors++
			st.lastErr = err.Error()
			errs = append(errs, err)
		} else {
			st.armed = true
		}
		f.mu.Unlock()
		if err == nil {
			f.cfg.Logger.Info("watchdog armed", "device", d.Name())
		}
	}
	return errors.Join(errs...)
}

func (f *Feeder) armedCount() int {
	n := 0
	for _, d := range f.devs {
		if d.armed {
			n++
		}
	}
	return n
}

// runChecks runs every health check at once, each bounded by
// CheckTimeout, and returns the names of those failing. A check that did
// not answer in time fails; it is not started again until its call has
// returned.
func (f *Feeder) runChecks(ctx context.Context) []string {
	if len(f.cfg.Checks) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, f.cfg.CheckTimeout)
	defer cancel()
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(f.cfg.Checks))
	started := 0
	skipped := make([]bool, len(f.cfg.Checks))
	f.cmu.Lock()
	for i, c := range f.cfg.Checks {
		if f.checks[i].running {
			skipped[i] = true
			continue
		}
		st := &f.checks[i]
		st.running = true
		started++
		go func() {
			err := c.Check(cctx)
			f.cmu.Lock()
			f.checks[i].running = false
			f.cmu.Unlock()
			results <- result{i, err}
		}()
	}
	f.cmu.Unlock()
	done := make([]bool, len(f.cfg.Checks))
	errs := make([]error, len(f.cfg.Checks))
wait:
	for range started {
		select {
		case r := <-results:
			done[r.i], errs[r.i] = true, r.err
		case <-cctx.Done():
			break wait
		}
	}
	for drained := false; !drained; { // answers that came with the deadline
		select {
		case r := <-results:
			done[r.i], errs[r.i] = true, r.err
		default:
			drained = true
		}
	}
	var failing []string
	f.cmu.Lock()
	defer f.cmu.Unlock()
	for i, c := range f.cfg.Checks {
		st := &f.checks[i]
		switch {
		case skipped[i]:
			st.failing, st.err = true, "still running from an earlier round"
		case !done[i]:
			st.failing, st.err = true, fmt.Sprintf("no answer within %s", f.cfg.CheckTimeout)
		case errs[i] != nil:
			st.failing, st.err = true, errs[i].Error()
		default:
			st.failing, st.err = false, ""
		}
		if st.failing {
			failing = append(failing, c.Name())
			f.cfg.Logger.Debug("watchdog health check failing", "check", c.Name(), "error", st.err)
		}
	}
	return failing
}

// Tick runs the health checks, asks the Decider and, if allowed, feeds
// every armed device and arms again those that failed to arm (a device is
// armed only when it would be fed: arming one while the node is unhealthy
// or self-fencing would only start a countdown nobody feeds). It returns
// the decision and the errors of devices that could not be fed or armed.
// When the decision turns to self-fencing, OnSelfFence is called before
// Tick returns.
func (f *Feeder) Tick(ctx context.Context) (Decision, error) {
	failing := f.runChecks(ctx)
	quorum := true
	if f.cfg.HasQuorum != nil {
		quorum = f.cfg.HasQuorum()
	}
	f.io.Lock()
	defer f.io.Unlock()
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return Decision{Reason: "feeder stopped"}, nil
	}
	now := f.cfg.Now()
	d := f.dec.Decide(now, failing, quorum)
	f.lastTick = now
	startedFencing := d.SelfFencing && !f.last.SelfFencing
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
	if startedFencing {
		f.fencingSince = now
	}
	f.last = d
	armed := make([]bool, len(f.devs))
	for i := range f.devs {
		f.devs[i].fed = false
		armed[i] = f.devs[i].armed
	}
	if !d.Feed {
		if f.withheldSince.IsZero() {
			f.withheldSince = now
		}
		f.mu.Unlock()
		if startedFencing && f.cfg.OnSelfFence != nil {
			f.cfg.OnSelfFence(ctx, d.Reason)
		}
		return d, nil
	}
	f.withheldSince = time.Time{}
	f.mu.Unlock()

	var errs []error
	fed, unarmed := false, false
	for i, dev := range f.cfg.Devices {
		if !armed[i] {
			unarmed = true
			continue
		}
		err := dev.Feed(ctx)
		f.mu.Lock()
		st := &f.devs[i]
		if err != nil {
			st.errors++
			st.lastErr = err.Error()
			errs = append(errs, err)
		} else {
			st.fed = true
			st.feeds++
			st.lastFeed = f.cfg.Now()
			fed = true
		}
		f.mu.Unlock()
	}
	if fed {
		f.mu.Lock()
		f.feeds++
		f.mu.Unlock()
	}
	if unarmed {
		errs = append(errs, f.armUnarmed(ctx))
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
	} else if errors.Is(err, ErrSelfFencing) {
		f.cfg.Logger.Error("watchdogs neither armed nor fed: the node is self-fencing", "reason", f.cfg.SelfFenced)
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
// its watchdogs armed: the reset must happen. Status tells which it was.
func (f *Feeder) Shutdown(ctx context.Context) error {
	f.io.Lock()
	defer f.io.Unlock()
	f.mu.Lock()
	f.stopped = true
	for i := range f.devs {
		f.devs[i].fed = false
	}
	if f.withheldSince.IsZero() {
		f.withheldSince = f.cfg.Now()
	}
	fencing := f.dec.SelfFencing()
	f.mu.Unlock()
	if fencing {
		f.cfg.Logger.Warn("watchdogs left armed at shutdown: self-fencing")
		return nil
	}
	var errs []error
	for i, d := range f.cfg.Devices {
		f.mu.Lock()
		armed := f.devs[i].armed
		f.mu.Unlock()
		if !armed {
			continue
		}
		err := d.Disarm(ctx)
		f.mu.Lock()
		st := &f.devs[i]
		if err != nil {
			err = fmt.Errorf("disarming watchdog %s: %w", d.Name(), err)
			st.errors++
			st.lastErr = err.Error()
			errs = append(errs, err)
		} else {
			st.armed = false
		}
		f.mu.Unlock()
		if err == nil {
			f.cfg.Logger.Info("watchdog disarmed", "device", d.Name())
		}
	}
	return errors.Join(errs...)
}

// Status is the feeder's state for the API and metrics.
type Status struct {
	// At is the feeder's clock when the Status was taken, to compute how
	// long something has lasted with the same clock.
	At time.Time
	// Feeding: the last decision fed and at least one device is armed.
	Feeding bool
	// SelfFencing: feeding stopped for good (since SelfFencingSince).
	SelfFencing      bool
	SelfFencingSince time.Time
	// Stopped: Shutdown was called.
	Stopped bool
	// Clustered: the feeder is gated on quorum (HasQuorum set).
	Clustered bool
	// Reason says why feeding is withheld ("" while feeding).
	Reason string
	// WithheldSince is when feeding was last withheld (a failing health
	// check, self-fencing, a stop); zero while feeding.
	WithheldSince time.Time
	// QuorumLostSince is when quorum was lost, zero while it is held or
	// when not clustered.
	QuorumLostSince time.Time
	// LastTick is when the last decision was taken (zero before any).
	LastTick time.Time
	// Feeds counts the ticks that fed at least one device.
	Feeds uint64
	// Unarmed names the devices that failed to arm and are armed again
	// at each feed (empty once stopped).
	Unarmed []string
	// Devices and Checks are in the order of the configuration.
	Devices []DeviceStatus
	Checks  []CheckStatus
}

// DeviceStatus is one device's state.
type DeviceStatus struct {
	Name string
	// Armed: the device was armed and is not disarmed.
	Armed bool
	// Fed: the device was fed at the last tick.
	Fed bool
	// Feeds counts successful feeds, Errors failed arms, feeds and
	// disarms.
	Feeds, Errors uint64
	// LastFeed is the time of the last successful feed (zero: none).
	LastFeed time.Time
	// LastError is the last arm, feed or disarm error ("" if none).
	LastError string
}

// CheckStatus is one health check's state after the last round.
type CheckStatus struct {
	Name    string
	Failing bool
	// Error is why it failed ("" when passing).
	Error string
}

// Status returns the feeder's state.
func (f *Feeder) Status() Status {
	f.mu.Lock()
	st := Status{At: f.cfg.Now(), Feeding: f.last.Feed && f.armedCount() > 0 && !f.stopped,
		SelfFencing: f.last.SelfFencing, SelfFencingSince: f.fencingSince, Stopped: f.stopped,
		Clustered: f.cfg.HasQuorum != nil, Reason: f.last.Reason, WithheldSince: f.withheldSince,
		QuorumLostSince: f.last.QuorumLostSince, LastTick: f.lastTick, Feeds: f.feeds}
	if f.stopped && !st.SelfFencing {
		st.Reason = "feeder stopped"
	}
	for i, d := range f.cfg.Devices {
		ds := f.devs[i]
		if !f.stopped && !ds.armed {
			st.Unarmed = append(st.Unarmed, d.Name())
		}
		st.Devices = append(st.Devices, DeviceStatus{Name: d.Name(), Armed: ds.armed, Fed: ds.fed, Feeds: ds.feeds,
			Errors: ds.errors, LastFeed: ds.lastFeed, LastError: ds.lastErr})
	}
	f.mu.Unlock()
	f.cmu.Lock()
	for i, c := range f.cfg.Checks {
		st.Checks = append(st.Checks, CheckStatus{Name: c.Name(), Failing: f.checks[i].failing, Error: f.checks[i].err})
	}
	f.cmu.Unlock()
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
