package shelf

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"hpiagent/shelf/ipmi"
)

// SensorID identifies a sensor of a shelf: the address its commands go to
// and its number there.
type SensorID struct {
	Owner  ipmi.Addr
	Number uint8
}

func (id SensorID) String() string { return fmt.Sprintf("%s#0x%02x", id.Owner, id.Number) }

// ID returns the sensor's SensorID.
func (s Sensor) ID() SensorID { return SensorID{Owner: s.Owner, Number: s.Number} }

// Poll defaults.
const (
	DefaultPollInterval     = 10 * time.Second
	DefaultHotSwapInterval  = 2 * time.Second
	DefaultPollJitter       = 0.1
	DefaultPollInFlight     = 4
	DefaultPollHistory      = 16
	DefaultPollMaxBackoff   = 5 * time.Minute
	DefaultThresholdRefresh = 5 * time.Minute
	DefaultPollLateAfter    = 250 * time.Millisecond
	DefaultPollReadTimeout  = 10 * time.Second
)

// PollConfig tunes a Poller. The zero value gives the defaults.
type PollConfig struct {
	// Default is the interval of sensors whose type has none in ByType
	// (DefaultPollInterval).
	Default time.Duration
	// ByType are intervals per sensor type code. Nil gives
	// DefaultHotSwapInterval for the PICMG hot-swap sensor (F0h).
	ByType map[uint8]time.Duration
	// BySensor overrides the interval of single sensors.
	BySensor map[SensorID]time.Duration
	// Jitter spreads each interval randomly by up to this fraction either
	// way (DefaultPollJitter; negative: none), and the first polls over one
	// interval, so that sensors do not all fire at once.
	Jitter float64
	// InFlight bounds the reads running at once (DefaultPollInFlight).
	InFlight int
	// History is how many readings are kept per sensor (DefaultPollHistory).
	History int
	// MaxBackoff caps the back-off of a failing sensor, whose interval
	// doubles with each failure in a row (DefaultPollMaxBackoff).
	MaxBackoff time.Duration
	// ThresholdRefresh is how often the thresholds and hysteresis of a
	// threshold sensor are read again (DefaultThresholdRefresh).
	ThresholdRefresh time.Duration
	// LateAfter is how long after its due time a read may start before
	// it counts as late in PollStats (DefaultPollLateAfter): a little
	// more than timer and scheduling noise, far less than any interval,
	// so that a late count means the poller could not keep up.
	LateAfter time.Duration
	// ReadTimeout bounds one read (thresholds included) of a sensor
	// (DefaultPollReadTimeout): a transport that waits for a lost shelf
	// manager must not hold the in-flight slots, so the read fails and
	// backs off instead.
	ReadTimeout time.Duration
}

func (c PollConfig) withDefaults() PollConfig {
	if c.Default <= 0 {
		c.Default = DefaultPollInterval
	}
	if c.ByType == nil {
		c.ByType = map[uint8]time.Duration{SensorTypeHotSwap: DefaultHotSwapInterval}
	}
	switch {
	case c.Jitter == 0:
		c.Jitter = DefaultPollJitter
	case c.Jitter < 0:
		c.Jitter = 0
	case c.Jitter > 0.5:
		c.Jitter = 0.5
	}
	if c.InFlight <= 0 {
		c.InFlight = DefaultPollInFlight
	}
	if c.History <= 0 {
		c.History = DefaultPollHistory
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultPollMaxBackoff
	}
	if c.ThresholdRefresh <= 0 {
		c.ThresholdRefresh = DefaultThresholdRefresh
	}
	if c.LateAfter <= 0 {
		c.LateAfter = DefaultPollLateAfter
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultPollReadTimeout
	}
	return c
}

// interval is the configured interval of s.
func (c PollConfig) interval(s Sensor) time.Duration {
	if d, ok := c.BySensor[s.ID()]; ok && d > 0 {
		return d
	}
	if s.Record != nil {
		if d, ok := c.ByType[s.Record.SensorType]; ok && d > 0 {
			return d
		}
	}
	return c.Default
}

// Sample is one reading kept in a sensor's history.
type Sample struct {
	Time time.Time
	Raw  uint8
	// Value is Raw in the sensor's unit, when HasValue.
	Value    float64
	HasValue bool
	// States are the threshold comparison bits or discrete state bits.
	States      uint16
	Unavailable bool
}

// Limits are the thresholds and hysteresis of a threshold sensor, raw, as
// the controller reports them.
type Limits struct {
	Thresholds ipmi.Thresholds
	Hysteresis ipmi.Hysteresis
}

// SensorStatus is what the poller knows about one sensor.
type SensorStatus struct {
	Sensor   Sensor
	Interval time.Duration
	Next     time.Time
	// Failures counts failed reads in a row; LastErr is the last failure.
	Failures int
	LastErr  error
	Limits   *Limits
	History  []Sample // oldest first
}

// sensorState is the schedule's per-sensor state.
type sensorState struct {
	sensor   Sensor
	interval time.Duration
	next     time.Time
	inFlight bool
	again    bool // PollNow while in flight
	targeted bool // made due by PollNow: not counted as late
	failures int
	lastErr  error

	ring []Sample
	head int // next write position
	n    int

	baseline bool   // a valid reading was seen
	asserted uint8  // threshold sensors: bit per ipmi.Threshold asserted
	states   uint16 // discrete sensors: state bits of the last reading

	limits   *Limits
	limitsAt time.Time
}

func (st *sensorState) push(s Sample) {
	st.ring[st.head] = s
	st.head = (st.head + 1) % len(st.ring)
	st.n = min(st.n+1, len(st.ring))
}

func (st *sensorState) history() []Sample {
	out := make([]Sample, 0, st.n)
	for i := range st.n {
		out = append(out, st.ring[(st.head-st.n+i+len(st.ring))%len(st.ring)])
	}
	return out
}

// pollJob is one read the schedule hands out.
type pollJob struct {
	id         SensorID
	sensor     Sensor
	wantLimits bool
	timeout    time.Duration // PollConfig.ReadTimeout when handed out
}

// pollResult is the outcome of a pollJob.
type pollResult struct {
	id      SensorID
	reading ipmi.SensorReading
	limits  *Limits // set when read
	err     error
}

// schedule is the poller's decision logic: what to read when, and which
// events two successive readings make. It does no I/O and takes the time
// as an argument, so it is tested with any clock. Not safe for concurrent
// use.
type schedule struct {
	cfg     PollConfig
	rnd     func() float64 // [0,1)
	sensors map[SensorID]*sensorState
	order   []SensorID
	running int
	stats   PollStats
}

// PollStats are the counters of a Poller.
type PollStats struct {
	// Reads counts reads handed out; Failures those that failed.
	Reads, Failures uint64
	// Targeted counts sensors made due at once by PollNow.
	Targeted uint64
	// Late counts scheduled reads that started more than
	// PollConfig.LateAfter after they were due (reads made due by PollNow
	// are not counted); MaxDelay is the largest such delay seen.
	Late     uint64
	MaxDelay time.Duration
}

func newSchedule(cfg PollConfig, sensors []Sensor, now time.Time, rnd func() float64) *schedule {
	cfg = cfg.withDefaults()
	s := &schedule{cfg: cfg, rnd: rnd, sensors: map[SensorID]*sensorState{}}
	s.setSensors(sensors, now)
	return s
}

// setSensors replaces the set of sensors: sensors that remain keep their
// state (history, baseline, schedule), new ones are scheduled like at the
// start, and those gone are forgotten (a read in flight of one of them is
// ignored when it ends).
func (s *schedule) setSensors(sensors []Sensor, now time.Time) {
	old := s.sensors
	s.sensors = map[SensorID]*sensorState{}
	s.order = s.order[:0]
	for _, sn := range sensors {
		id := sn.ID()
		if _, dup := s.sensors[id]; dup || sn.Record == nil {
			continue
		}
		iv := s.cfg.interval(sn)
		if st, ok := old[id]; ok {
			if st.sensor.Record != sn.Record && !sameRecord(st.sensor.Record, sn.Record) {
				// Another record (thresholds, conversion, type): start over.
				st.baseline, st.asserted, st.states, st.limits = false, 0, 0, nil
			}
			st.sensor, st.interval = sn, iv
			s.sensors[id] = st
			s.order = append(s.order, id)
			continue
		}
		first := now
		if s.cfg.Jitter > 0 {
			first = now.Add(time.Duration(s.rnd() * float64(iv)))
		}
		s.sensors[id] = &sensorState{sensor: sn, interval: iv, next: first, ring: make([]Sample, s.cfg.History)}
		s.order = append(s.order, id)
	}
	// Reads in flight of sensors that are gone no longer count.
	s.running = 0
	for _, st := range s.sensors {
		if st.inFlight {
			s.running++
		}
	}
}

// setConfig replaces the configuration. Every sensor keeps its history
// (the newest readings, when History shrinks), baseline, limits and
// failure count. A sensor's new interval applies from its next
// scheduling; a read already scheduled later than one new interval from
// now (the interval shrank) is brought forward to now plus that interval,
// unless the sensor is backing off after failures. The in-flight bound,
// read timeout and the rest apply to the next reads handed out.
func (s *schedule) setConfig(cfg PollConfig, now time.Time) {
	cfg = cfg.withDefaults()
	s.cfg = cfg
	for _, st := range s.sensors {
		iv := cfg.interval(st.sensor)
		st.interval = iv
		if !st.inFlight && st.failures == 0 && st.next.After(now.Add(iv)) {
			st.next = now.Add(iv)
		}
		if len(st.ring) != cfg.History {
			hist := st.history()
			hist = hist[max(0, len(hist)-cfg.History):]
			st.ring = make([]Sample, cfg.History)
			st.head, st.n = 0, 0
			for _, smp := range hist {
				st.push(smp)
			}
		}
	}
}

// sameRecord reports whether two sensor records describe the sensor the
// same way.
func sameRecord(a, b *ipmi.SensorRecord) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.SensorType == b.SensorType && a.EventReadingType == b.EventReadingType && a.Conv == b.Conv &&
		a.Thresholds == b.Thresholds && a.Capabilities == b.Capabilities
}

// retryFailed makes every sensor whose last read failed due at now, for
// example when its controller answers again after an outage.
func (s *schedule) retryFailed(now time.Time) int {
	n := 0
	for _, st := range s.sensors {
		if st.failures > 0 && !st.inFlight {
			st.next = now
			st.targeted = true
			n++
		}
	}
	return n
}

// jittered spreads d by the configured jitter.
func (s *schedule) jittered(d time.Duration) time.Duration {
	if s.cfg.Jitter == 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + s.cfg.Jitter*(2*s.rnd()-1)))
}

// due hands out the reads that are due at now, earliest first, at most as
// many as the in-flight bound still allows, and marks them in flight.
func (s *schedule) due(now time.Time) []pollJob {
	var ready []*sensorState
	for _, id := range s.order {
		st := s.sensors[id]
		if !st.inFlight && !st.next.After(now) {
			ready = append(ready, st)
		}
	}
	slices.SortStableFunc(ready, func(a, b *sensorState) int { return a.next.Compare(b.next) })
	var jobs []pollJob
	for _, st := range ready {
		if s.running >= s.cfg.InFlight {
			break
		}
		st.inFlight = true
		s.running++
		s.stats.Reads++
		if delay := now.Sub(st.next); !st.targeted && delay > s.cfg.LateAfter {
			s.stats.Late++
			s.stats.MaxDelay = max(s.stats.MaxDelay, delay)
		}
		st.targeted = false
		want := st.sensor.Record.IsThreshold() && (st.limits == nil || now.Sub(st.limitsAt) >= s.cfg.ThresholdRefresh)
		jobs = append(jobs, pollJob{id: st.sensor.ID(), sensor: st.sensor, wantLimits: want, timeout: s.cfg.ReadTimeout})
	}
	return jobs
}

// nextWake is when the next read falls due (false: none is waiting).
func (s *schedule) nextWake() (time.Time, bool) {
	var t time.Time
	ok := false
	for _, st := range s.sensors {
		if st.inFlight {
			continue
		}
		if !ok || st.next.Before(t) {
			t, ok = st.next, true
		}
	}
	return t, ok
}

// pollNow makes the sensors of owner (all of them, or those numbered)
// due at now; one being read is read again when its read ends. It returns
// how many sensors matched.
func (s *schedule) pollNow(now time.Time, owner ipmi.Addr, numbers ...uint8) int {
	n := 0
	for _, id := range s.order {
		if id.Owner != owner || (len(numbers) > 0 && !slices.Contains(numbers, id.Number)) {
			continue
		}
		st := s.sensors[id]
		if st.inFlight {
			st.again = true
		} else {
			st.next = now
			st.targeted = true
		}
		n++
	}
	s.stats.Targeted += uint64(n)
	return n
}

// PolledReading is one finished read as the poller hands it to a
// ReadingSink.
type PolledReading struct {
	Sensor Sensor
	// Sample is the reading as kept in the history (zero on failure).
	Sample Sample
	// States is the sensor's event state after this reading: for a
	// threshold sensor the thresholds asserted as the poller tracks them,
	// with hysteresis (bit n = ipmi.Threshold n, the layout of HPI's
	// threshold event states), for a discrete sensor its state bits.
	// HasStates is false when the reading was unavailable or the
	// thresholds of a threshold sensor are not known yet.
	States    uint16
	HasStates bool
	// Limits are the sensor's thresholds and hysteresis, when known.
	Limits *Limits
	// Err says why the read failed.
	Err error
}

// ReadingSink is implemented by an EventSink that also wants every
// reading: the Poller calls HandleReading for each finished read, from
// Run's goroutine, before handing on the events of that reading.
type ReadingSink interface {
	HandleReading(ctx context.Context, r PolledReading)
}

// done records the result of a read finished at now, schedules the next
// read and returns the events the reading makes.
func (s *schedule) done(now time.Time, r pollResult) []Event {
	evs, _ := s.doneReading(now, r)
	return evs
}

// doneReading is done that also returns the reading for a ReadingSink
// (ok false: the sensor is no longer scheduled).
func (s *schedule) doneReading(now time.Time, r pollResult) (evs []Event, pr PolledReading) {
	st, ok := s.sensors[r.id]
	if !ok {
		return nil, PolledReading{}
	}
	pr.Sensor = st.sensor
	if st.inFlight {
		st.inFlight = false
		s.running--
	}
	defer func() {
		if st.again {
			st.next, st.again, st.targeted = now, false, true
		}
		pr.Limits = st.limits
	}()
	if r.err != nil {
		pr.Err = r.err
		s.stats.Failures++
		st.failures++
		st.lastErr = r.err
		back := st.interval << min(st.failures, 16)
		st.next = now.Add(s.jittered(min(back, max(s.cfg.MaxBackoff, st.interval))))
		return nil, pr
	}
	st.failures, st.lastErr = 0, nil
	st.next = now.Add(s.jittered(st.interval))
	if r.limits != nil {
		st.limits, st.limitsAt = r.limits, now
	}
	rec := st.sensor.Record
	rd := r.reading
	smp := Sample{Time: now, Raw: rd.Raw, States: rd.States, Unavailable: !rd.Valid()}
	if rd.Valid() && rec.Analog() {
		if v, err := rec.Conv.Real(rd.Raw); err == nil {
			smp.Value, smp.HasValue = v, true
		}
	}
	st.push(smp)
	pr.Sample = smp
	if !rd.Valid() {
		return nil, pr
	}
	if rec.IsThreshold() {
		if st.limits == nil {
			return nil, pr
		}
		asserted, evs := thresholdCrossings(st.sensor, *st.limits, st.asserted, st.baseline, rd.Raw, now)
		st.asserted, st.baseline = asserted, true
		pr.States, pr.HasStates = uint16(asserted), true
		return evs, pr
	}
	prev, had := st.states, st.baseline
	st.states, st.baseline = rd.States, true
	pr.States, pr.HasStates = rd.States&0x7fff, true
	if !had || prev == rd.States {
		return nil, pr
	}
	return discreteChanges(st.sensor, prev, rd.States, now), pr
}

// status reports the state of sensor id.
func (s *schedule) status(id SensorID) (SensorStatus, bool) {
	st, ok := s.sensors[id]
	if !ok {
		return SensorStatus{}, false
	}
	return SensorStatus{Sensor: st.sensor, Interval: st.interval, Next: st.next, Failures: st.failures,
		LastErr: st.lastErr, Limits: st.limits, History: st.history()}, true
}

// generatorOf is the generator ID events of sensor s carry: its owner.
func generatorOf(s Sensor) uint16 {
	r := s.Record
	return uint16(r.OwnerID) | uint16(r.OwnerLUN&3)<<8 | uint16(r.Channel&0x0f)<<12
}

// level is the position of raw value raw on the sensor's scale: its real
// value for analog sensors, the signed raw count otherwise.
func level(rec *ipmi.SensorRecord, raw uint8) (float64, bool) {
	if rec.Analog() {
		v, err := rec.Conv.Real(raw)
		return v, err == nil
	}
	return float64(rec.Conv.Signed(raw)), true
}

// hysteresis is raw hysteresis h in the units of level. Non-linear
// sensors have no fixed distance: none is applied.
func hysteresis(rec *ipmi.SensorRecord, h uint8) float64 {
	if h == 0 || h == 0xff {
		return 0
	}
	if rec.Analog() {
		v, _ := rec.Conv.Hysteresis(h)
		return v
	}
	return float64(h)
}

func isUpper(t ipmi.Threshold) bool { return t >= ipmi.UpperNonCritical }

// thresholdCrossings compares a reading with the sensor's thresholds,
// given which were asserted after the previous reading. A threshold is
// asserted when the reading reaches it going out (at or above an upper
// threshold, at or below a lower one) and deasserted only when the reading
// comes back past it by the hysteresis: below upper − positive-going
// hysteresis, above lower + negative-going hysteresis. The first reading
// (baseline false) sets the state without events. Events come out in
// threshold order.
func thresholdCrossings(s Sensor, lim Limits, asserted uint8, baseline bool, raw uint8, now time.Time) (uint8, []Event) {
	rec := s.Record
	v, ok := level(rec, raw)
	if !ok {
		return asserted, nil
	}
	var evs []Event
	for t := ipmi.LowerNonCritical; t <= ipmi.UpperNonRecoverable; t++ {
		if !lim.Thresholds.Has(t) {
			asserted &^= 1 << t
			continue
		}
		tv, ok := level(rec, lim.Thresholds.Value[t])
		if !ok {
			continue
		}
		was := asserted&(1<<t) != 0
		var now2 bool
		if isUpper(t) {
			now2 = v >= tv || (was && v >= tv-hysteresis(rec, lim.Hysteresis.Positive))
		} else {
			now2 = v <= tv || (was && v <= tv+hysteresis(rec, lim.Hysteresis.Negative))
		}
		if now2 {
			asserted |= 1 << t
		} else {
			asserted &^= 1 << t
		}
		if !baseline || now2 == was {
			continue
		}
		offset := uint8(t) * 2
		if isUpper(t) {
			offset++ // going high
		}
		e := Event{Kind: EventThreshold, Source: SourcePoll, Time: now, Generator: generatorOf(s),
			SensorType: rec.SensorType, Sensor: s.Number, EventType: eventTypeThreshold, Deassert: !now2,
			Data: [3]uint8{0x50 | offset, raw, lim.Thresholds.Value[t]},
			Threshold: &ThresholdEvent{Threshold: t, GoingHigh: isUpper(t), Reading: raw, HasReading: true,
				ThresholdRaw: lim.Thresholds.Value[t], HasThreshold: true}}
		if rec.Analog() {
			e.Convert(rec.Conv)
		}
		evs = append(evs, e)
	}
	return asserted, evs
}

// singleState returns the only state bit set in b.
func singleState(b uint16) (uint8, bool) {
	for m := range 15 {
		if b == 1<<m {
			return uint8(m), true
		}
	}
	return 0, false
}

// discreteChanges makes the events of a discrete sensor whose state bits
// went from prev to cur: for the PICMG hot-swap sensor one hot-swap event
// (previous and new M-state, cause unknown), for others one event per
// state asserted or deasserted.
func discreteChanges(s Sensor, prev, cur uint16, now time.Time) []Event {
	rec := s.Record
	base := Event{Source: SourcePoll, Time: now, Generator: generatorOf(s), SensorType: rec.SensorType,
		Sensor: s.Number, EventType: rec.EventReadingType}
	if rec.SensorType == SensorTypeHotSwap {
		if m, ok := singleState(cur); ok && m <= 7 {
			h := &HotSwapEvent{New: m, Cause: CauseUnknown}
			d2 := uint8(0xff)
			if p, ok := singleState(prev); ok && p <= 7 {
				h.Previous, h.PreviousKnown = p, true
				d2 = uint8(CauseUnknown)<<4 | p
			}
			e := base
			e.Kind, e.HotSwap, e.Data = EventHotSwap, h, [3]uint8{0xa0 | m, d2, 0xff}
			return []Event{e}
		}
	}
	var evs []Event
	for off := range uint8(15) {
		bit := uint16(1) << off
		if (prev^cur)&bit == 0 {
			continue
		}
		e := base
		e.Kind, e.Deassert = EventDiscrete, cur&bit == 0
		e.Data = [3]uint8{off, 0xff, 0xff}
		e.Discrete = &DiscreteEvent{Offset: off, States: cur, PreviousStates: prev, HasStates: true}
		evs = append(evs, e)
	}
	return evs
}

// Poller reads a shelf's sensors on a schedule: per-sensor intervals with
// jitter, a bounded number of reads in flight, back-off for failing
// sensors, immediate targeted reads on request (PollNow, for example when
// a PET trap arrives), a history of the last readings per sensor, and
// events to an EventSink: threshold crossings with the sensor's hysteresis
// respected, and state changes of discrete sensors (hot-swap transitions
// for the PICMG F0h sensor). The first reading of a sensor only sets its
// baseline: events report changes after it.
type Poller struct {
	conn ipmi.Conn
	sink EventSink
	log  *slog.Logger

	mu    sync.Mutex
	sched *schedule
	wake  chan struct{}
}

// NewPoller makes a poller for sensors (as SensorsOf lists them) read over
// c. log nil means slog.Default().
func NewPoller(c ipmi.Conn, sensors []Sensor, cfg PollConfig, sink EventSink, log *slog.Logger) *Poller {
	if log == nil {
		log = slog.Default()
	}
	sched := newSchedule(cfg, sensors, time.Now(), rand.Float64)
	return &Poller{conn: c, sink: sink, log: log,
		sched: sched,
		wake:  make(chan struct{}, 1)}
}

// PollNow reads the sensors of the controller at owner at once: all of
// them, or the numbered ones. It returns how many sensors it matched.
func (p *Poller) PollNow(owner ipmi.Addr, sensors ...uint8) int {
	p.mu.Lock()
	n := p.sched.pollNow(time.Now(), owner, sensors...)
	p.mu.Unlock()
	if n > 0 {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	return n
}

// SetSensors replaces the sensors polled, for example after a
// rediscovery: sensors that remain keep their history, baseline and
// schedule; new ones start like at the beginning.
func (p *Poller) SetSensors(sensors []Sensor) {
	p.mu.Lock()
	p.sched.setSensors(sensors, time.Now())
	p.mu.Unlock()
	p.kick()
}

// SetConfig replaces the poller's configuration while it runs, for
// example on a configuration reload. No history is lost: every sensor
// keeps its readings (the newest, when History shrinks), baseline,
// thresholds and failure count. New intervals apply from each sensor's
// next scheduling; a read scheduled later than one new interval from now
// is brought forward so that a shortened interval does not wait out the
// old one. The in-flight bound and read timeout apply to the next reads.
func (p *Poller) SetConfig(cfg PollConfig) {
	p.mu.Lock()
	p.sched.setConfig(cfg, time.Now())
	p.mu.Unlock()
	p.kick()
}

// RetryFailed makes every sensor whose last read failed (and is now
// backing off) due at once, for example when its controller answers again.
// It returns how many there were.
func (p *Poller) RetryFailed() int {
	p.mu.Lock()
	n := p.sched.retryFailed(time.Now())
	p.mu.Unlock()
	if n > 0 {
		p.kick()
	}
	return n
}

// Stats returns the poller's counters.
func (p *Poller) Stats() PollStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sched.stats
}

func (p *Poller) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Status reports what the poller knows about sensor id, including its
// history of readings.
func (p *Poller) Status(id SensorID) (SensorStatus, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sched.status(id)
}

// Run reads sensors until ctx ends, then waits for the reads in flight
// and returns ctx's error. Events go to the sink from Run's goroutine, in
// the order the readings finished.
func (p *Poller) Run(ctx context.Context) error {
	results := make(chan pollResult)
	running := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		jobs := p.sched.due(time.Now())
		wakeAt, has := p.sched.nextWake()
		p.mu.Unlock()
		for _, j := range jobs {
			running++
			go func() { results <- p.read(ctx, j) }()
		}
		wait := time.Hour
		if has {
			wait = max(time.Until(wakeAt), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			for ; running > 0; running-- {
				<-results
			}
			return fmt.Errorf("polling sensors: %w", ctx.Err())
		case r := <-results:
			running--
			p.mu.Lock()
			evs, pr := p.sched.doneReading(time.Now(), r)
			p.mu.Unlock()
			if r.err != nil && ctx.Err() == nil {
				p.log.Debug("sensor read failed", "sensor", r.id.String(), "err", r.err)
			}
			if rs, ok := p.sink.(ReadingSink); ok && pr.Sensor.Record != nil && ctx.Err() == nil {
				rs.HandleReading(ctx, pr)
			}
			for _, e := range evs {
				p.sink.HandleShelfEvent(ctx, e)
			}
		case <-timer.C:
		case <-p.wake:
		}
	}
}

// read performs one poll job.
func (p *Poller) read(ctx context.Context, j pollJob) pollResult {
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	r := pollResult{id: j.id}
	if j.wantLimits {
		lim, err := readLimits(ctx, p.conn, j.sensor)
		if err != nil {
			r.err = err
			return r
		}
		r.limits = &lim
	}
	rd, err := ipmi.GetSensorReading(ctx, p.conn, j.sensor.Owner, j.sensor.Number)
	if err != nil {
		r.err = fmt.Errorf("reading sensor %q (%s): %w", j.sensor.Name, j.id, err)
		return r
	}
	r.reading = rd
	return r
}

// readLimits reads the thresholds and hysteresis of a threshold sensor
// from its controller, falling back to the SDR's values where the SDR says
// they cannot be read.
func readLimits(ctx context.Context, c ipmi.Conn, s Sensor) (Limits, error) {
	rec := s.Record
	var lim Limits
	switch rec.ThresholdAccess() {
	case 1, 2:
		th, err := ipmi.GetSensorThresholds(ctx, c, s.Owner, s.Number)
		if err != nil {
			return lim, fmt.Errorf("reading thresholds of sensor %q (%s): %w", s.Name, s.ID(), err)
		}
		lim.Thresholds = th
	default:
		// Fixed thresholds: the SDR's values, for the thresholds its
		// reading mask (bits 5:0) calls readable.
		lim.Thresholds = ipmi.Thresholds{Mask: uint8(rec.ReadingMask) & 0x3f, Value: rec.Thresholds}
	}
	switch rec.HysteresisAccess() {
	case 1, 2:
		h, err := ipmi.GetSensorHysteresis(ctx, c, s.Owner, s.Number)
		if err != nil {
			return lim, fmt.Errorf("reading hysteresis of sensor %q (%s): %w", s.Name, s.ID(), err)
		}
		lim.Hysteresis = h
	default:
		lim.Hysteresis = ipmi.Hysteresis{Positive: rec.PosHysteresis, Negative: rec.NegHysteresis}
	}
	return lim, nil
}
