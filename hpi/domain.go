package hpi

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Config configures a Domain. The zero value is usable.
type Config struct {
	DomainID DomainID
	// Now is the clock for timestamps the caller does not pass in;
	// time.Now when nil.
	Now func() time.Time
	// EventLogSize is the capacity of the domain event log; 1024 when 0.
	EventLogSize int
	// EventLogOverflow is what the event log does when full (default DROP,
	// SAHPI_EL_OVERFLOW_DROP being 0).
	EventLogOverflow OverflowAction
	// DedupSize is how many recent dedup keys Publish remembers; 4096 when 0.
	DedupSize int
	// AutoInsertTimeout is the domain's auto-insert timeout; nil means
	// TimeoutBlock (nothing is activated without a request).
	AutoInsertTimeout *Timeout
	// AutoExtractTimeout is the default auto-extract timeout of new
	// resources; nil means TimeoutBlock.
	AutoExtractTimeout *Timeout
	// Logger receives debug records; slog.Default() when nil.
	Logger *slog.Logger
}

// Domain is an HPI domain: the RPT with each resource's RDRs, current sensor
// values, hot-swap states, the event stream with its subscribers, the domain
// event log and the alarm table. All methods are safe for concurrent use.
type Domain struct {
	mu     sync.Mutex
	now    func() time.Time
	log    *slog.Logger
	info   DomainInfo
	ids    map[string]ResourceID // entity path key → ID, never forgotten
	nextID ResourceID
	res    map[ResourceID]*resource

	nextEventID uint64
	subs        map[*Subscription]struct{}
	el          eventLog
	dedup       dedupSet
	alarms      alarmTable

	autoInsert         Timeout
	defaultAutoExtract Timeout
	// hsEpoch numbers hot-swap epochs domain-wide, so that an intent never
	// matches a later stay of a removed and rediscovered resource.
	hsEpoch uint64

	// collect, when set, receives a copy of every event emitted (for the
	// methods that return the events they caused).
	collect *[]Event
}

type resource struct {
	entry   RPTEntry
	rdrs    []RDR // sorted by RecordID
	sensors map[SensorNum]*sensorValue
	hs      hsTrack
}

type sensorValue struct {
	SensorValue
	thresholds *SensorThresholds
}

// SensorValue is the current value of a sensor, kept apart from its RDR.
type SensorValue struct {
	Reading    SensorReading
	EventState EventState
	Timestamp  time.Time
}

type hsTrack struct {
	known          bool
	state          HsState
	lastM          MState
	policyCanceled bool
	epoch          uint64
	deadline       time.Time
	insertTimeout  *Timeout // nil: the domain's
	extractTimeout Timeout
}

// NewDomain returns an empty domain.
func NewDomain(cfg Config) *Domain {
	d := &Domain{
		now:                cfg.Now,
		log:                cfg.Logger,
		info:               DomainInfo{DomainID: cfg.DomainID},
		ids:                make(map[string]ResourceID),
		res:                make(map[ResourceID]*resource),
		subs:               make(map[*Subscription]struct{}),
		alarms:             alarmTable{byKey: make(map[string]*Alarm)},
		autoInsert:         TimeoutBlock,
		defaultAutoExtract: TimeoutBlock,
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	size := cfg.EventLogSize
	if size <= 0 {
		size = 1024
	}
	d.el = eventLog{size: size, action: cfg.EventLogOverflow, enabled: true}
	ds := cfg.DedupSize
	if ds <= 0 {
		ds = 4096
	}
	d.dedup = newDedupSet(ds)
	if cfg.AutoInsertTimeout != nil && validTimeout(*cfg.AutoInsertTimeout) {
		d.autoInsert = *cfg.AutoInsertTimeout
	}
	if cfg.AutoExtractTimeout != nil && validTimeout(*cfg.AutoExtractTimeout) {
		d.defaultAutoExtract = *cfg.AutoExtractTimeout
	}
	return d
}

func validTimeout(t Timeout) bool { return t >= 0 || t == TimeoutBlock }

// Info returns the domain's update counters and alarm counts
// (saHpiDomainInfoGet).
func (d *Domain) Info() DomainInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	info := d.info
	for _, a := range d.alarms.byKey {
		info.ActiveAlarms++
		switch a.Severity {
		case Critical:
			info.CriticalAlarms++
		case Major:
			info.MajorAlarms++
		case Minor:
			info.MinorAlarms++
		}
	}
	return info
}

func (d *Domain) rptChangedLocked(now time.Time) {
	d.info.RptUpdateCount++
	d.info.RptUpdateTimestamp = now
}

// ResourceIDFor returns the ID the domain has given path, whether or not the
// resource is present now.
func (d *Domain) ResourceIDFor(path EntityPath) (ResourceID, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.ids[path.key()]
	return id, ok
}

// normalizeRDRs validates rdrs and returns sorted copies with RecordIDs and
// entity paths filled in.
func normalizeRDRs(path EntityPath, rdrs []RDR) ([]RDR, error) {
	out := make([]RDR, 0, len(rdrs))
	seen := make(map[uint32]string, len(rdrs))
	for _, r := range rdrs {
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", err, ErrInvalidParams)
		}
		c := r.clone()
		c.RecordID = RecordIDFor(c.Type, c.Num())
		if len(c.Entity) == 0 {
			c.Entity = path.Clone()
		}
		if prev, dup := seen[c.RecordID]; dup {
			return nil, fmt.Errorf("hpi: %s number %d appears twice (%q and %q): %w", c.Type, c.Num(), prev, c.IDString, ErrDuplicate)
		}
		seen[c.RecordID] = c.IDString
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RecordID < out[j].RecordID })
	return out, nil
}

func rdrsEqual(a, b []RDR) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].equal(b[i]) {
			return false
		}
	}
	return true
}

// UpsertResource adds the resource at entry.EntityPath with its complete set
// of RDRs, or replaces both for a resource already present (rediscovery),
// atomically. It returns the resource's ID, which is the same for the same
// entity path for the Domain's lifetime. A new resource emits a RESOURCE
// ADDED event; a changed one (RPT entry or any RDR) emits UPDATED; an
// unchanged one emits nothing. Sensor values, alarms and hot-swap state of
// instruments that remain are kept; those of vanished sensors are dropped
// (their alarms cleared). entry.ResourceFailed is ignored: the domain keeps
// that flag (SetResourceFailed, ObserveMState). On error nothing changes.
func (d *Domain) UpsertResource(entry RPTEntry, rdrs []RDR) (ResourceID, error) {
	if err := entry.EntityPath.Validate(); err != nil {
		return 0, fmt.Errorf("hpi: upsert resource: %w: %w", err, ErrInvalidParams)
	}
	norm, err := normalizeRDRs(entry.EntityPath, rdrs)
	if err != nil {
		return 0, fmt.Errorf("hpi: upsert resource %s: %w", entry.EntityPath, err)
	}
	e := entry.clone()

	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	k := e.EntityPath.key()
	id, known := d.ids[k]
	if !known {
		if d.nextID+1 == UnspecifiedResourceID {
			return 0, fmt.Errorf("hpi: upsert resource %s: resource IDs exhausted: %w", e.EntityPath, ErrInvalidRequest)
		}
	}
	if e.ResourceID != 0 && (!known || e.ResourceID != id) {
		return 0, fmt.Errorf("hpi: upsert resource %s: caller's resource ID %d is not the domain's: %w", e.EntityPath, e.ResourceID, ErrInvalidParams)
	}
	if !known {
		d.nextID++
		id = d.nextID
		d.ids[k] = id
	}
	e.ResourceID = id
	r, present := d.res[id]
	if !present {
		e.ResourceFailed = false
		r = &resource{entry: e, rdrs: norm, sensors: make(map[SensorNum]*sensorValue)}
		r.hs = hsTrack{lastM: MStateUnknown, extractTimeout: d.defaultAutoExtract}
		d.res[id] = r
		d.rptChangedLocked(now)
		d.emitLocked(Event{Source: id, Type: EventResource, Timestamp: now, Severity: e.Severity,
			Resource: ResourceEvent{Type: ResourceAdded}})
		return id, nil
	}
	e.ResourceFailed = r.entry.ResourceFailed
	if e.equal(r.entry) && rdrsEqual(norm, r.rdrs) {
		return id, nil
	}
	r.entry = e
	r.rdrs = norm
	sensors := make(map[SensorNum]bool)
	for _, rd := range norm {
		if rd.Sensor != nil {
			sensors[rd.Sensor.Num] = true
		}
	}
	for num := range r.sensors {
		if !sensors[num] {
			delete(r.sensors, num)
		}
	}
	d.clearResourceAlarmsLocked(id, now, func(c Condition) bool {
		return c.Type != CondSensor || sensors[c.SensorNum]
	})
	if !e.Capabilities.Has(CapabilityFRU) {
		r.hs = hsTrack{lastM: MStateUnknown, extractTimeout: d.defaultAutoExtract}
	}
	d.rptChangedLocked(now)
	d.emitLocked(Event{Source: id, Type: EventResource, Timestamp: now, Severity: e.Severity,
		Resource: ResourceEvent{Type: ResourceUpdated}})
	return id, nil
}

// RemoveResource removes a resource with its RDRs, sensor values and alarms
// (the alarms are cleared with events) and emits RESOURCE REMOVED. Its ID
// stays reserved for its entity path.
func (d *Domain) RemoveResource(id ResourceID) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.res[id]
	if !ok {
		return fmt.Errorf("hpi: remove resource %d: %w", id, ErrInvalidResource)
	}
	now := d.now()
	d.clearResourceAlarmsLocked(id, now, nil)
	d.emitLocked(Event{Source: id, Type: EventResource, Timestamp: now, Severity: r.entry.Severity,
		Resource: ResourceEvent{Type: ResourceRemoved}})
	delete(d.res, id)
	d.rptChangedLocked(now)
	return nil
}

// Resource returns the RPT entry of id (saHpiRptEntryGetByResourceId).
func (d *Domain) Resource(id ResourceID) (RPTEntry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.res[id]
	if !ok {
		return RPTEntry{}, false
	}
	return r.entry.clone(), true
}

// ResourceByPath returns the RPT entry of the resource at path.
func (d *Domain) ResourceByPath(path EntityPath) (RPTEntry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.ids[path.key()]
	if !ok {
		return RPTEntry{}, false
	}
	r, ok := d.res[id]
	if !ok {
		return RPTEntry{}, false
	}
	return r.entry.clone(), true
}

// Resources returns the RPT ordered by ResourceID.
func (d *Domain) Resources() []RPTEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]RPTEntry, 0, len(d.res))
	for _, r := range d.res {
		out = append(out, r.entry.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ResourceID < out[j].ResourceID })
	return out
}

// RDRs returns the RDRs of resource id ordered by RecordID.
func (d *Domain) RDRs(id ResourceID) ([]RDR, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.res[id]
	if !ok {
		return nil, fmt.Errorf("hpi: RDRs of resource %d: %w", id, ErrInvalidResource)
	}
	out := make([]RDR, len(r.rdrs))
	for i, rd := range r.rdrs {
		out[i] = rd.clone()
	}
	return out, nil
}

// RDR returns one RDR of resource id (saHpiRdrGetByInstrumentId).
func (d *Domain) RDR(id ResourceID, t RDRType, num InstrumentID) (RDR, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.res[id]
	if !ok {
		return RDR{}, fmt.Errorf("hpi: RDR of resource %d: %w", id, ErrInvalidResource)
	}
	rd, ok := r.rdr(t, num)
	if !ok {
		return RDR{}, fmt.Errorf("hpi: %s %d of resource %d: %w", t, num, id, ErrNotPresent)
	}
	return rd.clone(), nil
}

func (r *resource) rdr(t RDRType, num InstrumentID) (RDR, bool) {
	rid := RecordIDFor(t, num)
	i := sort.Search(len(r.rdrs), func(i int) bool { return r.rdrs[i].RecordID >= rid })
	if i < len(r.rdrs) && r.rdrs[i].RecordID == rid && r.rdrs[i].Num() == num {
		return r.rdrs[i], true
	}
	return RDR{}, false
}

// emitLocked gives ev the next event ID, logs it and queues it for every
// subscriber. It never blocks.
func (d *Domain) emitLocked(ev Event) Event {
	d.nextEventID++
	ev.ID = d.nextEventID
	if ev.Timestamp.IsZero() {
		ev.Timestamp = d.now()
	}
	if len(ev.Entity) == 0 {
		if r, ok := d.res[ev.Source]; ok {
			ev.Entity = r.entry.EntityPath.Clone()
		}
	}
	d.el.add(ev.clone(), ev.Timestamp)
	for s := range d.subs {
		s.push(ev.clone())
	}
	if d.collect != nil {
		*d.collect = append(*d.collect, ev.clone())
	}
	d.log.Debug("hpi event", "id", ev.ID, "type", ev.Type.String(), "source", uint32(ev.Source), "severity", ev.Severity.String())
	return ev
}

// Publish delivers an event that happened outside the model (a shelf SEL
// entry, a PET trap, a user or OEM event) to the event log and every
// subscriber, and returns it with its ID. With a non-empty dedupKey (for
// example the SEL record identity of a shelf event) an event whose key was
// seen among the last DedupSize keys is dropped and dup is true: the same
// event arriving by trap and by SEL is published once. RESOURCE and HOTSWAP
// events are refused: the Domain emits those itself (UpsertResource,
// RemoveResource, SetResourceFailed, ObserveMState), which keeps the
// hot-swap event chain consistent.
func (d *Domain) Publish(ev Event, dedupKey string) (published Event, dup bool, err error) {
	switch ev.Type {
	case EventResource, EventHotSwap:
		return Event{}, false, fmt.Errorf("hpi: publish %s event: emitted by the domain itself: %w", ev.Type, ErrInvalidParams)
	case EventDomain, EventSensor, EventSensorEnableChange, EventWatchdog, EventHPISW, EventOEM, EventUser:
	default:
		return Event{}, false, fmt.Errorf("hpi: publish: unknown event type %d: %w", ev.Type, ErrInvalidParams)
	}
	if ev.Severity > OK && ev.Severity != Debug {
		return Event{}, false, fmt.Errorf("hpi: publish %s event: severity %d: %w", ev.Type, ev.Severity, ErrInvalidParams)
	}
	ev = ev.clone()
	ev.ID = 0
	d.mu.Lock()
	defer d.mu.Unlock()
	if dedupKey != "" && d.dedup.seen(dedupKey) {
		return Event{}, true, nil
	}
	return d.emitLocked(ev), false, nil
}

// LastEventID returns the ID of the last event published (0 before any).
func (d *Domain) LastEventID() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nextEventID
}

// failedCondition is the alarm condition of a failed resource.
func failedCondition(r *resource) Condition {
	return Condition{Type: CondResource, Entity: r.entry.EntityPath.Clone(), ResourceID: r.entry.ResourceID, Name: condResourceFailed}
}

func failedSeverity(r *resource) Severity {
	if r.entry.Severity == Critical {
		return Critical
	}
	return Major
}

// SetResourceFailed sets or clears the ResourceFailed flag of a resource
// (for example when its controller stops answering). A change emits
// RESOURCE FAILURE or RESTORED, counts as an RPT change and raises or clears
// the resource's alarm.
func (d *Domain) SetResourceFailed(id ResourceID, failed bool, now time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.res[id]
	if !ok {
		return fmt.Errorf("hpi: set resource %d failed: %w", id, ErrInvalidResource)
	}
	d.setFailedLocked(r, failed, now)
	return nil
}

func (d *Domain) setFailedLocked(r *resource, failed bool, now time.Time) {
	if r.entry.ResourceFailed == failed {
		return
	}
	if now.IsZero() {
		now = d.now()
	}
	r.entry.ResourceFailed = failed
	d.rptChangedLocked(now)
	t, sev := ResourceRestored, OK
	if failed {
		t, sev = ResourceFailure, failedSeverity(r)
	}
	d.emitLocked(Event{Source: r.entry.ResourceID, Type: EventResource, Timestamp: now, Severity: sev,
		Resource: ResourceEvent{Type: t}})
	if failed {
		d.raiseAlarmLocked(failedCondition(r), failedSeverity(r), now)
	} else {
		d.clearAlarmLocked(failedCondition(r), now)
	}
}

// SetSensorThresholds stores the current thresholds of a sensor; sensor
// events then carry the crossed threshold as TriggerThreshold.
func (d *Domain) SetSensorThresholds(id ResourceID, num SensorNum, t SensorThresholds) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.res[id]
	if !ok {
		return fmt.Errorf("hpi: set thresholds of sensor %d of resource %d: %w", num, id, ErrInvalidResource)
	}
	if _, ok := r.rdr(SensorRDR, num); !ok {
		return fmt.Errorf("hpi: set thresholds of sensor %d of resource %d: %w", num, id, ErrNotPresent)
	}
	v := r.sensors[num]
	if v == nil {
		v = &sensorValue{}
		r.sensors[num] = v
	}
	c := t
	v.thresholds = &c
	return nil
}

// SensorThresholds returns the thresholds last stored for a sensor by
// SetSensorThresholds; ok is false when none were stored yet.
func (d *Domain) SensorThresholds(id ResourceID, num SensorNum) (t SensorThresholds, ok bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, found := d.res[id]
	if !found {
		return SensorThresholds{}, false, fmt.Errorf("hpi: thresholds of sensor %d of resource %d: %w", num, id, ErrInvalidResource)
	}
	if _, found := r.rdr(SensorRDR, num); !found {
		return SensorThresholds{}, false, fmt.Errorf("hpi: thresholds of sensor %d of resource %d: %w", num, id, ErrNotPresent)
	}
	v := r.sensors[num]
	if v == nil || v.thresholds == nil {
		return SensorThresholds{}, false, nil
	}
	return *v.thresholds, true, nil
}

// SensorValue returns the current value of a sensor; ok is false when no
// reading was stored yet.
func (d *Domain) SensorValue(id ResourceID, num SensorNum) (v SensorValue, ok bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, found := d.res[id]
	if !found {
		return SensorValue{}, false, fmt.Errorf("hpi: sensor %d of resource %d: %w", num, id, ErrInvalidResource)
	}
	if _, found := r.rdr(SensorRDR, num); !found {
		return SensorValue{}, false, fmt.Errorf("hpi: sensor %d of resource %d: %w", num, id, ErrNotPresent)
	}
	sv := r.sensors[num]
	if sv == nil || sv.Timestamp.IsZero() {
		return SensorValue{}, false, nil
	}
	out := sv.SensorValue
	out.Reading = out.Reading.clone()
	return out, true, nil
}

// SetSensorReading stores the current reading and event state of a sensor
// and emits one SENSOR event per event-state bit that changed: deassertions
// first, then assertions, lowest bit first. The first reading of a sensor
// compares against no state asserted. Alarms follow the MAJOR and CRITICAL
// states (threshold and severity categories): raised when asserted, cleared
// when deasserted. It returns the events emitted (sensor and alarm events).
func (d *Domain) SetSensorReading(id ResourceID, num SensorNum, value SensorReading, states EventState, now time.Time) ([]Event, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.res[id]
	if !ok {
		return nil, fmt.Errorf("hpi: set reading of sensor %d of resource %d: %w", num, id, ErrInvalidResource)
	}
	rd, ok := r.rdr(SensorRDR, num)
	if !ok {
		return nil, fmt.Errorf("hpi: set reading of sensor %d of resource %d: %w", num, id, ErrNotPresent)
	}
	if now.IsZero() {
		now = d.now()
	}
	rec := rd.Sensor
	v := r.sensors[num]
	if v == nil {
		v = &sensorValue{}
		r.sensors[num] = v
	}
	old := v.EventState
	v.Reading = value.clone()
	v.EventState = states
	v.Timestamp = now

	var out []Event
	d.collect = &out
	defer func() { d.collect = nil }()
	emit := func(bit EventState, assert bool) {
		ev := Event{Source: id, Type: EventSensor, Timestamp: now, Severity: OK,
			Sensor: SensorEvent{Num: num, SensorType: rec.Type, Category: rec.Category, Assertion: assert,
				EventState: bit, PreviousState: old, CurrentState: states,
				OptionalDataPresent: SODPreviousState | SODCurrentState}}
		if assert {
			ev.Severity = eventSeverity(rec.Category, bit)
		}
		if value.IsSupported {
			ev.Sensor.TriggerReading = value.clone()
			ev.Sensor.OptionalDataPresent |= SODTriggerReading
		}
		if v.thresholds != nil && rec.Category == ECThreshold {
			if thr, ok := v.thresholds.forState(bit); ok {
				ev.Sensor.TriggerThreshold = thr.clone()
				ev.Sensor.OptionalDataPresent |= SODTriggerThreshold
			}
		}
		d.emitLocked(ev)
		cond := Condition{Type: CondSensor, Entity: rd.Entity.Clone(), ResourceID: id, SensorNum: num, EventState: bit,
			Name: fmt.Sprintf("sensor %d %q state 0x%04x", num, rd.IDString, uint16(bit))}
		if sev, isAlarm := alarmSeverity(rec.Category, bit); isAlarm {
			if assert {
				d.raiseAlarmLocked(cond, sev, now)
			} else {
				d.clearAlarmLocked(cond, now)
			}
		}
	}
	for bit := EventState(1); bit != 0; bit <<= 1 {
		if old&bit != 0 && states&bit == 0 {
			emit(bit, false)
		}
	}
	for bit := EventState(1); bit != 0; bit <<= 1 {
		if old&bit == 0 && states&bit != 0 {
			emit(bit, true)
		}
	}
	return out, nil
}
