package shelf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"hpiagent/hpi"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/pet"
)

// Monitor defaults.
const (
	DefaultSELInterval           = 2 * time.Second
	DefaultRediscoverCheck       = 30 * time.Second
	DefaultRediscoverMinGap      = 2 * time.Second
	DefaultDiscoveryRetry        = time.Second
	DefaultDiscoveryMaxBackoff   = 30 * time.Second
	DefaultLostGrace             = 10 * time.Second
	DefaultTickInterval          = 250 * time.Millisecond
	DefaultActionTimeout         = 15 * time.Second
	DefaultConfirmInterval       = 100 * time.Millisecond
	DefaultIntentQueue           = 64
	DefaultRequestTimeout        = 5 * time.Second
	DefaultDiscoveryTimeout      = 2 * time.Minute
	DefaultMonitorPollMaxBackoff = 30 * time.Second
)

// MonitorConfig configures a Monitor. The zero value gives the defaults
// named in each field's comment.
type MonitorConfig struct {
	// Name identifies the shelf manager in logs, audit records and the
	// dedup keys of its events ("shelf-a"). Events of different shelf
	// managers published to one domain never collide because of it.
	// Default "shelf".
	Name string

	// Poll tunes the sensor poll scheduler (see PollConfig; its zero value
	// gives 10 s for sensors, 2 s for hot-swap sensors, 10 % jitter). Its
	// MaxBackoff defaults to DefaultMonitorPollMaxBackoff (30 s) here
	// rather than the poller's 5 min: the hot-swap sensor of a FRU whose
	// controller stopped answering is how its return is noticed.
	Poll PollConfig

	// SELInterval is how often the shelf manager's SEL is read for new
	// events (DefaultSELInterval, 2 s). A PET trap reads it at once. Each
	// read also tells whether the shelf manager still answers.
	SELInterval time.Duration

	// RediscoverCheck is how often the SDR repository info of the shelf
	// manager is compared with the one of the last discovery
	// (DefaultRediscoverCheck, 30 s): a changed record count or time stamp
	// means controllers or sensors came or went and the shelf is
	// rediscovered. A hot-swap transition from or to M0 and an event from
	// an unknown controller rediscover at once.
	RediscoverCheck time.Duration

	// RediscoverMinGap is the least time between two rediscoveries
	// (DefaultRediscoverMinGap, 2 s): a burst of insertions costs one
	// rediscovery, not one per event.
	RediscoverMinGap time.Duration

	// DiscoveryRetry is the first wait after a failed discovery; it
	// doubles up to DiscoveryMaxBackoff (defaults 1 s and 30 s), so that an
	// unreachable shelf manager is retried promptly but not hammered.
	DiscoveryRetry      time.Duration
	DiscoveryMaxBackoff time.Duration

	// LostGrace is how long the shelf manager may fail to answer before
	// all of its resources are marked failed (DefaultLostGrace, 10 s):
	// long enough to ride over a session re-establishment or a lost
	// packet, short enough for a cluster manager to act on a dead shelf.
	LostGrace time.Duration

	// TickInterval is how often the domain's hot-swap timers are advanced
	// (DefaultTickInterval, 250 ms): auto-insert and auto-extract intents
	// fire at most this late.
	TickInterval time.Duration

	// ActionTimeout bounds how long a hardware action waits for the
	// hot-swap state or power level to confirm it (DefaultActionTimeout,
	// 15 s: an ATCA board takes seconds from M2 to M4).
	ActionTimeout time.Duration

	// ConfirmInterval is how often state is read back while an action
	// waits for confirmation (DefaultConfirmInterval, 100 ms).
	ConfirmInterval time.Duration

	// IntentQueue bounds the hot-swap intents waiting to be carried out
	// (DefaultIntentQueue, 64). An intent that finds the queue full is
	// dropped, logged and counted; the domain's timers fire again on the
	// next entry into the pending state.
	IntentQueue int

	// RequestTimeout bounds one IPMI operation of the Monitor's own loops
	// (a SEL read, a probe of the shelf manager, a repository check)
	// (DefaultRequestTimeout, 5 s): while the transport waits for a lost
	// shelf manager, the operation fails and counts towards LostGrace.
	// Keep it (and DiscoveryTimeout) above the transport's own timeout of
	// one attempt with its retries: a transport such as rmcpp notices a
	// lost session only from attempts that time out by themselves, not
	// from requests their caller gave up on earlier.
	RequestTimeout time.Duration

	// DiscoveryTimeout bounds one discovery of the whole shelf
	// (DefaultDiscoveryTimeout, 2 min: a full shelf is hundreds of
	// bridged requests).
	DiscoveryTimeout time.Duration

	// Discover tunes discovery (its InFlight; Logger is the Monitor's).
	Discover DiscoverOptions

	// Model tunes how discovered FRUs become resources (the entity path
	// root of the shelf).
	Model ModelOptions

	// Now is the clock for event and observation time stamps; time.Now
	// when nil.
	Now func() time.Time
}

func (c MonitorConfig) withDefaults() MonitorConfig {
	if c.Name == "" {
		c.Name = "shelf"
	}
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	set(&c.SELInterval, DefaultSELInterval)
	set(&c.RediscoverCheck, DefaultRediscoverCheck)
	set(&c.RediscoverMinGap, DefaultRediscoverMinGap)
	set(&c.DiscoveryRetry, DefaultDiscoveryRetry)
	set(&c.DiscoveryMaxBackoff, DefaultDiscoveryMaxBackoff)
	set(&c.LostGrace, DefaultLostGrace)
	set(&c.TickInterval, DefaultTickInterval)
	set(&c.ActionTimeout, DefaultActionTimeout)
	set(&c.ConfirmInterval, DefaultConfirmInterval)
	set(&c.RequestTimeout, DefaultRequestTimeout)
	set(&c.DiscoveryTimeout, DefaultDiscoveryTimeout)
	set(&c.Poll.MaxBackoff, DefaultMonitorPollMaxBackoff)
	if c.IntentQueue <= 0 {
		c.IntentQueue = DefaultIntentQueue
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// MonitorStats are the counters of a Monitor, for metrics.
type MonitorStats struct {
	// Discoveries counts successful discoveries (the first and every
	// rediscovery); DiscoveryFailures failed attempts.
	Discoveries, DiscoveryFailures uint64
	// Poll are the sensor poller's counters.
	Poll PollStats
	// SELEntries counts SEL records read, SELGaps possible-gap markers,
	// SELFailures failed SEL reads.
	SELEntries, SELGaps, SELFailures uint64
	// Traps counts PET traps handed to Trap; TrapsUnconfirmed those whose
	// record the SEL did not show (ignored); Hints the targeted polls that
	// traps and SEL records started.
	Traps, TrapsUnconfirmed, Hints uint64
	// Published counts SEL records published to the domain (events of
	// sensors the poller cannot read); Duplicates those the domain
	// recognised as already published (a SEL re-read after its cursor was
	// lost).
	Published, Duplicates uint64
	// ShelfLost counts the times the shelf manager was declared lost;
	// Lost says whether it is lost now.
	ShelfLost uint64
	Lost      bool
	// Intents counts hot-swap intents carried out, IntentFailures those
	// that failed, IntentsDropped those refused by a full queue.
	Intents, IntentFailures, IntentsDropped uint64
	// Actions and ActionFailures count hardware actions (power, reset,
	// hot-swap, controls) requested through the Monitor.
	Actions, ActionFailures uint64
}

// Monitor keeps one shelf manager's part of an hpi.Domain up to date: it
// discovers the shelf (with retry and back-off), polls its sensors into
// the domain (readings, threshold and discrete event states, hot-swap
// M-states), follows the shelf manager's SEL, takes PET traps as hints for
// immediate targeted polls, rediscovers the shelf when its SDR repository
// changes or a FRU comes or goes, marks every resource failed when the
// shelf manager stops answering (and restores them when it is back),
// drives the domain's hot-swap timers and carries out the intents they
// produce, and performs the hardware actions the API asks for (power,
// reset, hot-swap, FRU LEDs), each confirmed by reading state back.
//
// Events reach the domain through state: sensor events come from
// Domain.SetSensorReading when a confirmed reading changes the event
// state (threshold states as the poller tracks them, hysteresis
// respected), hot-swap events from Domain.ObserveMState, which emit only on
// real changes, so a transition seen by poll, SEL and trap is one event.
// SEL records of sensors that cannot be read (event-only sensors, unknown
// sensors) are published with a dedup key (DedupKey) that a trap for the
// same record shares. Traps themselves never reach the domain: they only
// make the named sensor and the SEL be read at once.
type Monitor struct {
	cfg  MonitorConfig
	conn ipmi.Conn
	d    *hpi.Domain
	log  *slog.Logger

	mu      sync.Mutex
	idx     *monIndex
	poller  *Poller
	health  linkHealth
	lastRun time.Time // last rediscovery
	// failed are the resources the Monitor marked failed because the
	// shelf manager was lost; a discovery after its return clears them.
	failed map[hpi.ResourceID]bool
	// pending are the traps waiting for their SEL record, by dedup key.
	pending map[string]*pendingTrap
	// fruHealth tracks the hot-swap sensor reads of each FRU resource: a
	// controller that stops answering for LostGrace is observed in M7.
	fruHealth map[hpi.ResourceID]*linkHealth

	rediscover chan struct{}
	selKick    chan struct{}
	intents    chan hpi.Intent

	actMu sync.Mutex
	act   map[hpi.ResourceID]*sync.Mutex

	st monitorCounters
}

type monitorCounters struct {
	discoveries, discoveryFailures       atomic.Uint64
	selEntries, selGaps, selFailures     atomic.Uint64
	traps, hints, published, duplicates  atomic.Uint64
	trapsUnconfirmed                     atomic.Uint64
	shelfLost                            atomic.Uint64
	intents, intentFailures, intentsDrop atomic.Uint64
	actions, actionFailures              atomic.Uint64
}

// NewMonitor makes a Monitor of the shelf manager at the end of conn,
// feeding d. log nil means slog.Default(). Nothing happens until Run.
func NewMonitor(cfg MonitorConfig, conn ipmi.Conn, d *hpi.Domain, log *slog.Logger) *Monitor {
	if log == nil {
		log = slog.Default()
	}
	cfg = cfg.withDefaults()
	return &Monitor{
		cfg: cfg, conn: conn, d: d, log: log.With("shelf", cfg.Name),
		health:     linkHealth{grace: cfg.LostGrace},
		rediscover: make(chan struct{}, 1),
		selKick:    make(chan struct{}, 1),
		intents:    make(chan hpi.Intent, cfg.IntentQueue),
		act:        map[hpi.ResourceID]*sync.Mutex{},
		failed:     map[hpi.ResourceID]bool{},
		pending:    map[string]*pendingTrap{},
		fruHealth:  map[hpi.ResourceID]*linkHealth{},
	}
}

// Stats returns a snapshot of the Monitor's counters.
func (m *Monitor) Stats() MonitorStats {
	m.mu.Lock()
	p, lost := m.poller, m.health.lost
	m.mu.Unlock()
	s := MonitorStats{
		Discoveries: m.st.discoveries.Load(), DiscoveryFailures: m.st.discoveryFailures.Load(),
		SELEntries: m.st.selEntries.Load(), SELGaps: m.st.selGaps.Load(), SELFailures: m.st.selFailures.Load(),
		Traps: m.st.traps.Load(), TrapsUnconfirmed: m.st.trapsUnconfirmed.Load(), Hints: m.st.hints.Load(),
		Published: m.st.published.Load(), Duplicates: m.st.duplicates.Load(),
		ShelfLost: m.st.shelfLost.Load(), Lost: lost,
		Intents: m.st.intents.Load(), IntentFailures: m.st.intentFailures.Load(), IntentsDropped: m.st.intentsDrop.Load(),
		Actions: m.st.actions.Load(), ActionFailures: m.st.actionFailures.Load(),
	}
	if p != nil {
		s.Poll = p.Stats()
	}
	return s
}

// SensorStatus reports what the poller knows of sensor id: schedule,
// failures, thresholds and the ring of recent readings.
func (m *Monitor) SensorStatus(id SensorID) (SensorStatus, bool) {
	p := m.currentPoller()
	if p == nil {
		return SensorStatus{}, false
	}
	return p.Status(id)
}

// Resources returns the domain IDs of the resources of the last discovery.
func (m *Monitor) Resources() []hpi.ResourceID {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.idx == nil {
		return nil
	}
	return append([]hpi.ResourceID(nil), m.idx.resources...)
}

// Run discovers the shelf (retrying with back-off until it answers), then
// polls sensors, follows the SEL, drives the domain's hot-swap timers,
// carries out intents and rediscovers the shelf when it changes, until ctx
// ends. It returns ctx's error.
func (m *Monitor) Run(ctx context.Context) error {
	backoff := m.cfg.DiscoveryRetry
	for {
		err := m.discover(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("monitoring %s: %w", m.cfg.Name, ctx.Err())
		}
		m.log.Warn("shelf discovery failed; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("monitoring %s: %w", m.cfg.Name, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, m.cfg.DiscoveryMaxBackoff)
	}

	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	m.mu.Lock()
	p := m.poller
	m.mu.Unlock()
	run(func(ctx context.Context) { _ = p.Run(ctx) })
	run(m.selLoop)
	run(m.tickLoop)
	run(m.intentLoop)
	run(m.rediscoverLoop)
	wg.Wait()
	return fmt.Errorf("monitoring %s: %w", m.cfg.Name, ctx.Err())
}

// discover reads the whole shelf and applies it to the domain.
func (m *Monitor) discover(ctx context.Context) error {
	opts := m.cfg.Discover
	opts.Logger = m.log
	dctx, cancel := context.WithTimeout(ctx, m.cfg.DiscoveryTimeout)
	snap, err := Discover(dctx, m.conn, opts)
	cancel()
	if err != nil {
		m.st.discoveryFailures.Add(1)
		if ctx.Err() == nil {
			m.noteFailure()
		}
		return err
	}
	m.noteOK()
	m.mu.Lock()
	var prev []hpi.ResourceID
	rediscovery := m.idx != nil
	if rediscovery {
		prev = m.idx.resources
	}
	m.mu.Unlock()
	now := m.cfg.Now()
	res, applyErr := Apply(snap, m.d, ApplyOptions{ModelOptions: m.cfg.Model, Previous: prev, Now: now, Rediscovery: rediscovery})
	if applyErr != nil {
		m.log.Warn("parts of the shelf could not be modelled", "err", applyErr)
	}
	idx := buildIndex(snap, m.d, m.cfg.Model)
	m.mu.Lock()
	var restore []hpi.ResourceID
	if !m.health.lost {
		for id := range m.failed {
			if f, ok := idx.frus[id]; ok && !f.mc.Lost {
				restore = append(restore, id)
			}
		}
		clear(m.failed)
	}
	m.idx = idx
	m.lastRun = now
	if m.poller == nil {
		m.poller = NewPoller(m.conn, idx.polled, m.cfg.Poll, m, m.log)
	} else {
		m.poller.SetSensors(idx.polled)
		m.poller.RetryFailed()
	}
	m.mu.Unlock()
	m.st.discoveries.Add(1)
	for _, id := range restore {
		if err := m.d.SetResourceFailed(id, false, now); err != nil {
			m.log.Warn("restoring a resource", "resource", uint32(id), "err", err)
		}
	}
	for _, mc := range snap.MCs {
		if mc.Lost {
			m.log.Warn("controller does not answer", "mc", mc.String(), "err", mc.Err)
		}
	}
	m.log.Info("shelf discovered", "resources", len(res.Resources), "removed", len(res.Removed),
		"sensors", len(idx.polled), "sdr_records", snap.Repository.RecordCount)
	for _, in := range res.Intents {
		m.enqueue(in)
	}
	return nil
}

// requestRediscovery asks for a rediscovery soon; requests coalesce.
func (m *Monitor) requestRediscovery(why string) {
	select {
	case m.rediscover <- struct{}{}:
		m.log.Debug("rediscovery requested", "why", why)
	default:
	}
}

func (m *Monitor) rediscoverLoop(ctx context.Context) {
	check := time.NewTicker(m.cfg.RediscoverCheck)
	defer check.Stop()
	backoff := m.cfg.DiscoveryRetry
	for {
		select {
		case <-ctx.Done():
			return
		case <-check.C:
			if m.isLost() {
				continue
			}
			if changed, err := m.repositoryChanged(ctx); err != nil || !changed {
				continue
			}
		case <-m.rediscover:
		}
		m.mu.Lock()
		wait := m.cfg.RediscoverMinGap - m.cfg.Now().Sub(m.lastRun)
		m.mu.Unlock()
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		if err := m.discover(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			m.log.Warn("shelf rediscovery failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, m.cfg.DiscoveryMaxBackoff)
			m.requestRediscovery("retry")
			continue
		}
		backoff = m.cfg.DiscoveryRetry
	}
}

// repositoryChanged compares the SDR repository info with that of the
// last discovery.
func (m *Monitor) repositoryChanged(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	info, err := ipmi.GetSDRRepositoryInfo(ctx, m.conn, ipmi.Addr{})
	if err != nil {
		return false, fmt.Errorf("checking the SDR repository of %s: %w", m.cfg.Name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.idx == nil {
		return true, nil
	}
	old := m.idx.repo
	return old.RecordCount != info.RecordCount || !old.LastAddition.Equal(info.LastAddition) ||
		!old.LastErase.Equal(info.LastErase), nil
}

// selLoop follows the shelf manager's SEL and watches whether the shelf
// manager answers.
func (m *Monitor) selLoop(ctx context.Context) {
	f := &SELFollower{Conn: m.conn, SkipExisting: true, Log: m.log}
	t := time.NewTicker(m.cfg.SELInterval)
	defer t.Stop()
	for {
		opCtx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
		if m.isLost() {
			// Probe cheaply until the shelf manager answers again.
			if _, err := ipmi.GetDeviceID(opCtx, m.conn, ipmi.Addr{}); err == nil {
				m.noteOK()
			}
		} else {
			start := m.cfg.Now()
			evs, err := f.Poll(opCtx)
			for _, e := range evs {
				m.st.selEntries.Add(1)
				m.handleRecord(ctx, e)
			}
			switch {
			case err == nil:
				m.settleTraps(start)
				m.noteOK()
			case ctx.Err() == nil:
				m.st.selFailures.Add(1)
				m.log.Debug("reading the SEL failed", "err", err)
				m.noteFailure()
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.selKick:
		}
	}
}

func (m *Monitor) isLost() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.health.lost
}

// noteOK records that the shelf manager answered; after an outage it
// rediscovers the shelf, which restores the resources.
func (m *Monitor) noteOK() {
	m.mu.Lock()
	recovered := m.health.ok(m.cfg.Now())
	p := m.poller
	m.mu.Unlock()
	if recovered {
		m.log.Info("shelf manager answers again; rediscovering")
		m.audit("shelf manager back", "resources restored after rediscovery")
		if p != nil {
			p.RetryFailed()
		}
		m.requestRediscovery("shelf manager back")
	}
}

// noteFailure records that the shelf manager did not answer; after the
// grace time every resource of the shelf is marked failed.
func (m *Monitor) noteFailure() {
	now := m.cfg.Now()
	m.mu.Lock()
	lost := m.health.fail(now)
	var ids []hpi.ResourceID
	if lost && m.idx != nil {
		ids = append(ids, m.idx.resources...)
	}
	m.mu.Unlock()
	if !lost {
		return
	}
	m.st.shelfLost.Add(1)
	m.log.Error("shelf manager does not answer; marking its resources failed", "grace", m.cfg.LostGrace, "resources", len(ids))
	m.audit("shelf manager lost", fmt.Sprintf("%d resources marked failed", len(ids)))
	for _, id := range ids {
		if err := m.d.SetResourceFailed(id, true, now); err != nil && !errors.Is(err, hpi.ErrInvalidResource) {
			m.log.Warn("marking resource failed", "resource", uint32(id), "err", err)
			continue
		}
		m.mu.Lock()
		m.failed[id] = true
		m.mu.Unlock()
	}
}

func (m *Monitor) tickLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, in := range m.d.Tick(m.cfg.Now()) {
				m.enqueue(in)
			}
		}
	}
}

func (m *Monitor) enqueue(in hpi.Intent) {
	select {
	case m.intents <- in:
	default:
		m.st.intentsDrop.Add(1)
		m.log.Warn("hot-swap intent dropped: queue full", "resource", uint32(in.Resource), "action", in.Action.String())
	}
}

// intentLoop carries out the domain's intents one after the other.
func (m *Monitor) intentLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-m.intents:
			if m.d.IntentStale(in) {
				m.log.Debug("stale hot-swap intent skipped", "resource", uint32(in.Resource), "action", in.Action.String())
				continue
			}
			m.st.intents.Add(1)
			actx, cancel := context.WithTimeout(ctx, m.cfg.ActionTimeout+5*time.Second)
			err := m.carryOut(actx, in)
			cancel()
			if err != nil && ctx.Err() == nil {
				m.st.intentFailures.Add(1)
				m.log.Warn("hot-swap intent failed", "resource", uint32(in.Resource), "entity", in.Entity.String(),
					"action", in.Action.String(), "err", err)
			}
		}
	}
}

// HandleReading takes a finished read from the poller into the domain.
func (m *Monitor) HandleReading(ctx context.Context, r PolledReading) {
	m.mu.Lock()
	idx := m.idx
	m.mu.Unlock()
	if idx == nil {
		return
	}
	ref, ok := idx.sensors[r.Sensor.ID()]
	now := m.cfg.Now()
	if r.Err != nil {
		if ok && ref.hotSwap && ctx.Err() == nil {
			m.noteFRUFailure(ref.res, now)
		}
		return
	}
	if r.Sensor.Owner.Local() {
		m.noteOK()
	}
	if !ok {
		return
	}
	if ref.hotSwap {
		m.mu.Lock()
		if h := m.fruHealth[ref.res]; h != nil {
			h.ok(now)
		}
		m.mu.Unlock()
		if st, ok := singleState(r.Sample.States); ok && st <= 7 && !r.Sample.Unavailable {
			m.observe(ref.res, hpi.MStateUnknown, hpi.MState(st), hpi.HsCauseUnknown, now)
		}
	}
	if !r.HasStates {
		return
	}
	var v hpi.SensorReading
	if r.Sample.HasValue {
		v = hpi.Float(r.Sample.Value)
	}
	if r.Limits != nil && ref.sensor.Record.IsThreshold() && !idx.thresholdsSet[r.Sensor.ID()] {
		if err := m.d.SetSensorThresholds(ref.res, ref.num, hpiThresholds(ref.sensor, *r.Limits)); err == nil {
			m.mu.Lock()
			if m.idx == idx {
				idx.thresholdsSet[r.Sensor.ID()] = true
			}
			m.mu.Unlock()
		}
	}
	if _, err := m.d.SetSensorReading(ref.res, ref.num, v, hpi.EventState(r.States), now); err != nil {
		m.log.Debug("storing a reading", "sensor", r.Sensor.ID().String(), "err", err)
	}
}

// noteFRUFailure records a failed read of a FRU's hot-swap sensor; after
// LostGrace without an answer (and while the shelf manager itself
// answers) the FRU is observed in M7, communication lost, which marks it
// failed until its hot-swap sensor answers again.
func (m *Monitor) noteFRUFailure(id hpi.ResourceID, now time.Time) {
	m.mu.Lock()
	if m.health.failing || m.health.lost {
		m.mu.Unlock()
		return
	}
	h := m.fruHealth[id]
	if h == nil {
		h = &linkHealth{grace: m.cfg.LostGrace}
		m.fruHealth[id] = h
	}
	lost := h.fail(now)
	m.mu.Unlock()
	if lost {
		m.log.Warn("controller does not answer; FRU in M7 (communication lost)", "resource", uint32(id), "grace", m.cfg.LostGrace)
		m.audit("FRU communication lost", "resource marked failed (M7)", "resource", uint32(id))
		m.observe(id, hpi.MStateUnknown, hpi.M7, hpi.HsCauseUnknown, now)
	}
}

// observe feeds an M-state into the domain and queues the intents.
func (m *Monitor) observe(id hpi.ResourceID, prev, cur hpi.MState, cause hpi.HsCause, now time.Time) {
	before, _ := m.d.HotSwapState(id)
	_, intents, err := m.d.ObserveMState(id, prev, cur, cause, now)
	if err != nil {
		m.log.Debug("observing an M-state", "resource", uint32(id), "err", err)
		return
	}
	for _, in := range intents {
		m.enqueue(in)
	}
	if before.Known && before.LastMState != cur && (before.LastMState == hpi.M0 || cur == hpi.M0) {
		m.requestRediscovery("FRU inserted or removed")
	}
}

// HandleShelfEvent takes events from the poller. Polled changes reach the
// domain through HandleReading (state, not events), so they are not
// handled twice here.
func (m *Monitor) HandleShelfEvent(ctx context.Context, e Event) {
	if e.Source == SourceSEL {
		m.handleRecord(ctx, e)
	}
}

// Hint asks for an immediate read of the sensor (or, with no sensor
// numbers, every sensor) of the controller with IPMB address gen, for
// example because an event said it changed. It returns how many sensors
// are read.
func (m *Monitor) Hint(gen uint8, sensors ...uint8) int {
	m.mu.Lock()
	idx, p := m.idx, m.poller
	m.mu.Unlock()
	if idx == nil || p == nil {
		return 0
	}
	owner, ok := ControllerAddr(gen, 0, 0, idx.local)
	if !ok {
		return 0
	}
	if ch, known := idx.channel[gen]; known {
		owner.Channel = ch
	}
	n := p.PollNow(owner, sensors...)
	if n > 0 {
		m.st.hints.Add(1)
	}
	return n
}

// Trap takes a PET trap from the shelf manager (a pet.Receiver Handler
// routed by source address). A trap is a hint, never a fact: it starts an
// immediate read of the sensor it names and of the SEL, and only what
// those reads return (over the integrity-checked session) reaches the
// domain. A trap whose record the SEL does not show within two reads
// after it is counted as unconfirmed and logged; a forged trap costs a
// sensor read and a SEL read, nothing more.
func (m *Monitor) Trap(tr pet.Trap) {
	m.st.traps.Add(1)
	e := eventOfPET(tr.PET)
	m.mu.Lock()
	idx := m.idx
	if idx != nil && len(m.pending) < maxPendingTraps {
		m.pending[DedupKey(m.cfg.Name, e)] = &pendingTrap{at: m.cfg.Now(), gen: e.GeneratorAddr(), sensor: e.Sensor}
	}
	m.mu.Unlock()
	if idx != nil {
		key := sensorKey{gen: e.GeneratorAddr(), num: e.Sensor}
		_, hs := idx.hotSwapByGen[key]
		_, polled := idx.polledByGen[key]
		if hs || polled {
			m.Hint(key.gen, key.num)
		}
	}
	select {
	case m.selKick <- struct{}{}:
	default:
	}
}

// maxPendingTraps bounds the traps waiting for their SEL record.
const maxPendingTraps = 1024

// pendingTrap is a trap whose SEL record has not been read yet.
type pendingTrap struct {
	at          time.Time
	gen, sensor uint8
	polls       int // successful SEL reads started after the trap
}

// settleTraps is called after a successful SEL read that started at
// start: traps it confirmed are gone already; those that two reads after
// them did not confirm are counted and logged.
func (m *Monitor) settleTraps(start time.Time) {
	var unconfirmed []*pendingTrap
	m.mu.Lock()
	for k, p := range m.pending {
		if start.After(p.at) {
			p.polls++
		}
		if p.polls >= 2 {
			unconfirmed = append(unconfirmed, p)
			delete(m.pending, k)
		}
	}
	m.mu.Unlock()
	for _, p := range unconfirmed {
		m.st.trapsUnconfirmed.Add(1)
		m.log.Info("trap not confirmed by the SEL; ignored", "generator", fmt.Sprintf("0x%02x", p.gen), "sensor", p.sensor)
	}
}

// confirmTrap marks the trap of SEL record e (if any) as confirmed.
func (m *Monitor) confirmTrap(e Event) {
	m.mu.Lock()
	delete(m.pending, DedupKey(m.cfg.Name, e))
	m.mu.Unlock()
}

// eventOfPET gives the SEL view of a PET: the same fields a SEL system
// event record carries, so that Key matches the record's.
func eventOfPET(p pet.PET) Event {
	e := Event{Source: SourceSEL, RecordID: p.Sequence, RecordType: 0x02,
		RawTime: p.SELTimestamp(), Generator: uint16(p.SensorDevice), SensorType: p.SensorType,
		Sensor: p.SensorNumber, EventType: p.EventType & 0x7f, Deassert: p.Deassertion,
		Data: [3]uint8{p.EventData[0], p.EventData[1], p.EventData[2]}}
	if !p.Time().IsZero() {
		e.Time = p.Time()
	}
	decodeSystemEvent(&e)
	return e
}

// DedupKey is the key under which a Monitor named name publishes a shelf
// event: the shelf's name and the event's Key (its SEL fields, which a PET
// trap for the same record carries too).
func DedupKey(name string, e Event) string { return "shelf:" + name + ":" + e.Key() }

// handleRecord takes a SEL record into the domain: hot-swap records that
// continue the domain's M-state are applied with their cause, records of
// sensors the poller reads make it read them at once (the reading is the
// state), records of other sensors are published once.
func (m *Monitor) handleRecord(ctx context.Context, e Event) {
	if e.Kind != EventGap {
		m.confirmTrap(e)
	}
	m.mu.Lock()
	idx := m.idx
	m.mu.Unlock()
	if idx == nil {
		return
	}
	switch e.Kind {
	case EventGap:
		m.st.selGaps.Add(1)
		m.log.Warn("shelf events may have been lost; reading every sensor again", "reason", e.Gap.Reason)
		if p := m.currentPoller(); p != nil {
			for owner := range idx.owners {
				p.PollNow(owner)
			}
		}
		return
	case EventOther:
		if e.OEM != nil {
			return // OEM record without sensor fields
		}
	}
	gen := e.GeneratorAddr()
	if gen&1 == 0 && gen != 0 && !idx.known[gen] {
		m.requestRediscovery(fmt.Sprintf("event from unknown controller 0x%02x", gen))
	}
	key := sensorKey{gen: gen, num: e.Sensor}
	if e.Kind == EventHotSwap {
		if res, ok := idx.hotSwapByGen[key]; ok {
			h := e.HotSwap
			if st, err := m.d.HotSwapState(res); err == nil && h.PreviousKnown && st.Known && st.LastMState == hpi.MState(h.Previous) {
				// The record continues the state the domain has: apply it
				// with its cause. A stale or repeated one is only a hint.
				m.observe(res, hpi.MState(h.Previous), hpi.MState(h.New), hsCause(h), m.cfg.Now())
			}
			if h.New == 0 || (h.PreviousKnown && h.Previous == 0) {
				m.requestRediscovery("FRU inserted or removed")
			}
			m.Hint(gen, e.Sensor)
			return
		}
	}
	if _, polled := idx.polledByGen[key]; polled {
		m.Hint(gen, e.Sensor)
		return
	}
	ev := hpiEventOf(e, idx, key, m.cfg.Now())
	_, dup, err := m.d.Publish(ev, DedupKey(m.cfg.Name, e))
	switch {
	case err != nil:
		m.log.Debug("publishing a shelf event", "err", err)
	case dup:
		m.st.duplicates.Add(1)
	default:
		m.st.published.Add(1)
	}
}

// SetPollConfig replaces the sensor poll configuration (MonitorConfig.Poll,
// with the same defaults) while the Monitor runs, for example on a
// configuration reload. The poller keeps every sensor's history and
// state; new intervals apply from each sensor's next scheduling (see
// Poller.SetConfig). A poller started later (the first discovery has not
// succeeded yet) starts with cfg.
func (m *Monitor) SetPollConfig(cfg PollConfig) {
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMonitorPollMaxBackoff
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg.Poll = cfg
	if m.poller != nil {
		m.poller.SetConfig(cfg)
	}
	m.log.Info("sensor poll configuration replaced", "default_interval", cfg.withDefaults().Default, "in_flight", cfg.withDefaults().InFlight)
}

func (m *Monitor) currentPoller() *Poller {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.poller
}

// audit writes an audit record of a state change.
func (m *Monitor) audit(what, detail string, attrs ...any) {
	m.log.Info("audit: "+what, append([]any{"audit", true, "detail", detail}, attrs...)...)
}
