package hpi

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestDomain(t *testing.T, cfg Config) (*Domain, *fakeClock) {
	t.Helper()
	c := &fakeClock{t: t0}
	cfg.Now = c.now
	return NewDomain(cfg), c
}

func bladePath(slot EntityLocation) EntityPath {
	return EntityPath{{EntPICMGFrontBlade, 0}, {EntPhysicalSlot, slot}, {EntAdvancedTCAChassis, 1}}
}

func tempSensor(num SensorNum, name string) RDR {
	return RDR{Type: SensorRDR, IDString: name, Sensor: &SensorRec{
		Num: num, Type: SensorTemperature, Category: ECThreshold, EventCtrl: SECPerEvent,
		Events: ESLowerMinor | ESLowerMajor | ESLowerCrit | ESUpperMinor | ESUpperMajor | ESUpperCrit,
		DataFormat: SensorDataFormat{IsSupported: true, ReadingType: ReadingFloat64, BaseUnits: UnitsDegreesC,
			Range: SensorRange{Flags: RangeNominal, Nominal: Float(40)}},
		ThresholdDefn: SensorThdDefn{IsAccessible: true, ReadThold: ThdUpCrit | ThdUpMajor | ThdUpHysteresis, WriteThold: ThdUpCrit},
	}}
}

func bladeEntry(slot EntityLocation) RPTEntry {
	return RPTEntry{EntityPath: bladePath(slot), Tag: "blade", Severity: Major,
		Capabilities: CapabilityResource | CapabilityRDR | CapabilitySensor | CapabilityFRU | CapabilityManagedHotswap}
}

// drain returns the events queued on s without blocking.
func drain(t *testing.T, s *Subscription) []Event {
	t.Helper()
	var out []Event
	for s.Pending() > 0 {
		ev, err := s.Receive(context.Background())
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		out = append(out, ev)
	}
	return out
}

func resourceEventTypes(evs []Event) []ResourceEventType {
	var out []ResourceEventType
	for _, e := range evs {
		if e.Type == EventResource {
			out = append(out, e.Resource.Type)
		}
	}
	return out
}

func TestUpsertRemoveEvents(t *testing.T) {
	d, clk := newTestDomain(t, Config{})
	sub, err := d.Subscribe(100)
	if err != nil {
		t.Fatal(err)
	}
	e := bladeEntry(5)
	rdrs := []RDR{tempSensor(2, "Temp B"), tempSensor(1, "Temp A")}

	type step struct {
		name      string
		do        func() error
		want      []ResourceEventType
		countStep uint32 // expected increase of RptUpdateCount
	}
	var id ResourceID
	steps := []step{
		{"add", func() (err error) { id, err = d.UpsertResource(e, rdrs); return }, []ResourceEventType{ResourceAdded}, 1},
		{"same again", func() error { _, err := d.UpsertResource(e, rdrs); return err }, nil, 0},
		{"same, other RDR order", func() error {
			_, err := d.UpsertResource(e, []RDR{rdrs[1], rdrs[0]})
			return err
		}, nil, 0},
		{"tag changed", func() error {
			e2 := e
			e2.Tag = "blade 5"
			_, err := d.UpsertResource(e2, rdrs)
			return err
		}, []ResourceEventType{ResourceUpdated}, 1},
		{"rdr changed", func() error {
			e2 := e
			e2.Tag = "blade 5"
			_, err := d.UpsertResource(e2, rdrs[:1])
			return err
		}, []ResourceEventType{ResourceUpdated}, 1},
		{"remove", func() error { return d.RemoveResource(id) }, []ResourceEventType{ResourceRemoved}, 1},
		{"remove again", func() error {
			if err := d.RemoveResource(id); !errors.Is(err, ErrInvalidResource) {
				t.Errorf("second remove: %v, want ErrInvalidResource", err)
			}
			return nil
		}, nil, 0},
		{"rediscover", func() error {
			id2, err := d.UpsertResource(e, rdrs)
			if id2 != id {
				t.Errorf("rediscovered ID %d, want stable %d", id2, id)
			}
			return err
		}, []ResourceEventType{ResourceAdded}, 1},
	}
	for _, st := range steps {
		before := d.Info()
		clk.t = clk.t.Add(time.Second)
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := resourceEventTypes(drain(t, sub))
		if len(got) != len(st.want) {
			t.Fatalf("%s: events %v, want %v", st.name, got, st.want)
		}
		for i := range got {
			if got[i] != st.want[i] {
				t.Fatalf("%s: events %v, want %v", st.name, got, st.want)
			}
		}
		after := d.Info()
		if after.RptUpdateCount-before.RptUpdateCount != st.countStep {
			t.Errorf("%s: RptUpdateCount +%d, want +%d", st.name, after.RptUpdateCount-before.RptUpdateCount, st.countStep)
		}
		if st.countStep > 0 && !after.RptUpdateTimestamp.Equal(clk.t) {
			t.Errorf("%s: RptUpdateTimestamp %v, want %v", st.name, after.RptUpdateTimestamp, clk.t)
		}
	}
	other, err := d.UpsertResource(bladeEntry(6), nil)
	if err != nil || other == id {
		t.Fatalf("second resource: id %d err %v", other, err)
	}
	got, err := d.RDRs(id)
	if err != nil || len(got) != 2 || got[0].Sensor.Num != 1 || got[1].Sensor.Num != 2 {
		t.Fatalf("RDRs = %+v, %v", got, err)
	}
	if !got[0].Entity.Equal(bladePath(5)) || got[0].RecordID != RecordIDFor(SensorRDR, 1) {
		t.Errorf("RDR defaults: entity %s record %x", got[0].Entity, got[0].RecordID)
	}
	// Returned data is a copy.
	got[0].Sensor.Num = 99
	again, _ := d.RDR(id, SensorRDR, 1)
	if again.Sensor.Num != 1 {
		t.Error("RDRs returned shared memory")
	}
}

func TestUpsertRejectsBadInput(t *testing.T) {
	d, _ := newTestDomain(t, Config{})
	good := bladeEntry(1)
	tests := []struct {
		name  string
		entry RPTEntry
		rdrs  []RDR
		want  error
	}{
		{"empty path", RPTEntry{}, nil, ErrInvalidParams},
		{"root in path", RPTEntry{EntityPath: EntityPath{{EntFan, 1}, {EntRoot, 0}}}, nil, ErrInvalidParams},
		{"two records set", good, []RDR{{Type: SensorRDR, Sensor: &SensorRec{Num: 1}, Control: &CtrlRec{Num: 1}}}, ErrInvalidParams},
		{"type mismatch", good, []RDR{{Type: CtrlRDR, Sensor: &SensorRec{Num: 1}}}, ErrInvalidParams},
		{"no record", good, []RDR{{Type: SensorRDR}}, ErrInvalidParams},
		{"duplicate sensor", good, []RDR{tempSensor(3, "a"), tempSensor(3, "b")}, ErrDuplicate},
		{"foreign ID", RPTEntry{ResourceID: 77, EntityPath: bladePath(1)}, nil, ErrInvalidParams},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.UpsertResource(tc.entry, tc.rdrs)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if n := len(d.Resources()); n != 0 {
				t.Fatalf("%d resources after a rejected upsert", n)
			}
			if d.LastEventID() != 0 {
				t.Fatal("event emitted for a rejected upsert")
			}
		})
	}
	// Same sensor and control number is fine: different RDR types.
	ctrl := ATCAFRUActivationControl()
	if _, err := d.UpsertResource(good, []RDR{tempSensor(0x1020, "s"), {Type: CtrlRDR, Control: &ctrl}}); err != nil {
		t.Fatalf("sensor and control with one number: %v", err)
	}
}

func TestSensorReadingEventsAndAlarms(t *testing.T) {
	d, _ := newTestDomain(t, Config{})
	id, err := d.UpsertResource(bladeEntry(3), []RDR{tempSensor(1, "Temp")})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := d.SensorThresholds(id, 1); ok || err != nil {
		t.Fatalf("thresholds before any were set: ok %v err %v", ok, err)
	}
	thr := SensorThresholds{UpMinor: Float(70), UpMajor: Float(80), UpCritical: Float(90)}
	if err := d.SetSensorThresholds(id, 1, thr); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := d.SensorThresholds(id, 1); !ok || err != nil || !reflect.DeepEqual(got, thr) {
		t.Fatalf("SensorThresholds = %+v, %v, %v; want what was set", got, ok, err)
	}
	if _, _, err := d.SensorThresholds(id, 99); !errors.Is(err, ErrNotPresent) {
		t.Fatalf("thresholds of a missing sensor: %v", err)
	}
	type sensEv struct {
		state  EventState
		assert bool
		sev    Severity
	}
	tests := []struct {
		name       string
		value      float64
		states     EventState
		want       []sensEv
		wantAlarms []Severity
	}{
		{"normal", 40, 0, nil, nil},
		{"minor", 75, ESUpperMinor, []sensEv{{ESUpperMinor, true, Minor}}, nil},
		{"major", 85, ESUpperMinor | ESUpperMajor, []sensEv{{ESUpperMajor, true, Major}}, []Severity{Major}},
		{"same state again", 86, ESUpperMinor | ESUpperMajor, nil, []Severity{Major}},
		{"critical", 95, ESUpperMinor | ESUpperMajor | ESUpperCrit, []sensEv{{ESUpperCrit, true, Critical}}, []Severity{Major, Critical}},
		{"back to minor", 72, ESUpperMinor, []sensEv{{ESUpperMajor, false, OK}, {ESUpperCrit, false, OK}}, nil},
		{"normal", 50, 0, []sensEv{{ESUpperMinor, false, OK}}, nil},
	}
	for _, tc := range tests {
		evs, err := d.SetSensorReading(id, 1, Float(tc.value), tc.states, t0)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []sensEv
		for _, e := range evs {
			if e.Type == EventSensor {
				got = append(got, sensEv{e.Sensor.EventState, e.Sensor.Assertion, e.Severity})
				if e.Sensor.CurrentState != tc.states || e.Sensor.TriggerReading.Float64 != tc.value {
					t.Errorf("%s: event current %x trigger %v", tc.name, e.Sensor.CurrentState, e.Sensor.TriggerReading)
				}
				if want, ok := thr.forState(e.Sensor.EventState); ok && e.Sensor.TriggerThreshold.Float64 != want.Float64 {
					t.Errorf("%s: trigger threshold %v, want %v", tc.name, e.Sensor.TriggerThreshold.Float64, want.Float64)
				}
			}
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: sensor events %+v, want %+v", tc.name, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("%s: sensor events %+v, want %+v", tc.name, got, tc.want)
			}
		}
		alarms := d.Alarms()
		if len(alarms) != len(tc.wantAlarms) {
			t.Fatalf("%s: alarms %+v, want severities %v", tc.name, alarms, tc.wantAlarms)
		}
		for i, a := range alarms {
			if a.Severity != tc.wantAlarms[i] || a.Condition.ResourceID != id || a.Condition.SensorNum != 1 {
				t.Fatalf("%s: alarm %d = %+v, want severity %s", tc.name, i, a, tc.wantAlarms[i])
			}
		}
		v, ok, err := d.SensorValue(id, 1)
		if err != nil || !ok || v.Reading.Float64 != tc.value || v.EventState != tc.states {
			t.Fatalf("%s: SensorValue = %+v %v %v", tc.name, v, ok, err)
		}
	}
	if _, err := d.SetSensorReading(id, 9, Float(1), 0, t0); !errors.Is(err, ErrNotPresent) {
		t.Errorf("unknown sensor: %v", err)
	}
	if _, err := d.SetSensorReading(id+100, 1, Float(1), 0, t0); !errors.Is(err, ErrInvalidResource) {
		t.Errorf("unknown resource: %v", err)
	}
}

func TestAlarmsClearedWithResourceAndSensor(t *testing.T) {
	d, _ := newTestDomain(t, Config{})
	id, _ := d.UpsertResource(bladeEntry(3), []RDR{tempSensor(1, "T1"), tempSensor(2, "T2")})
	d.SetSensorReading(id, 1, Float(99), ESUpperCrit, t0)
	d.SetSensorReading(id, 2, Float(99), ESUpperCrit, t0)
	if n := len(d.Alarms()); n != 2 {
		t.Fatalf("%d alarms, want 2", n)
	}
	// Ack, and ack again: one event, still active.
	a := d.Alarms()[0]
	if err := d.AcknowledgeAlarm(a.AlarmID); err != nil {
		t.Fatal(err)
	}
	if !d.Alarms()[0].Acknowledged {
		t.Error("not acknowledged")
	}
	if err := d.AcknowledgeAlarm(12345); !errors.Is(err, ErrNotPresent) {
		t.Errorf("ack unknown: %v", err)
	}
	// Sensor 2 vanishes on rediscovery: its alarm goes, sensor 1's stays.
	if _, err := d.UpsertResource(bladeEntry(3), []RDR{tempSensor(1, "T1 renamed")}); err != nil {
		t.Fatal(err)
	}
	al := d.Alarms()
	if len(al) != 1 || al[0].Condition.SensorNum != 1 {
		t.Fatalf("alarms after rediscovery: %+v", al)
	}
	// Clearing works although the sensor's name changed.
	d.SetSensorReading(id, 1, Float(20), 0, t0)
	if n := len(d.Alarms()); n != 0 {
		t.Fatalf("%d alarms after clear", n)
	}
	d.SetSensorReading(id, 1, Float(99), ESUpperCrit, t0)
	if err := d.SetResourceFailed(id, true, t0); err != nil {
		t.Fatal(err)
	}
	if n := len(d.Alarms()); n != 2 {
		t.Fatalf("%d alarms, want sensor + failed", n)
	}
	info := d.Info()
	if info.ActiveAlarms != 2 || info.CriticalAlarms != 1 || info.MajorAlarms != 1 {
		t.Errorf("info alarm counts %+v", info)
	}
	if err := d.RemoveResource(id); err != nil {
		t.Fatal(err)
	}
	if n := len(d.Alarms()); n != 0 {
		t.Fatalf("%d alarms after remove", n)
	}
}

func TestResourceFailedEvents(t *testing.T) {
	d, _ := newTestDomain(t, Config{})
	sub, _ := d.Subscribe(10)
	id, _ := d.UpsertResource(bladeEntry(2), nil)
	drain(t, sub)
	seq := []struct {
		failed bool
		want   []ResourceEventType
	}{
		{true, []ResourceEventType{ResourceFailure}},
		{true, nil},
		{false, []ResourceEventType{ResourceRestored}},
		{false, nil},
	}
	for i, s := range seq {
		if err := d.SetResourceFailed(id, s.failed, t0); err != nil {
			t.Fatal(err)
		}
		got := resourceEventTypes(drain(t, sub))
		if len(got) != len(s.want) || (len(got) > 0 && got[0] != s.want[0]) {
			t.Fatalf("step %d: %v, want %v", i, got, s.want)
		}
		e, _ := d.Resource(id)
		if e.ResourceFailed != s.failed {
			t.Fatalf("step %d: ResourceFailed %v", i, e.ResourceFailed)
		}
	}
	// Upsert does not touch the flag.
	d.SetResourceFailed(id, true, t0)
	e := bladeEntry(2)
	e.ResourceFailed = false
	d.UpsertResource(e, nil)
	if got, _ := d.Resource(id); !got.ResourceFailed {
		t.Error("UpsertResource cleared ResourceFailed")
	}
}

func TestPublishDedupAndValidation(t *testing.T) {
	d, _ := newTestDomain(t, Config{DedupSize: 2})
	sub, _ := d.Subscribe(10)
	ev := Event{Type: EventSensor, Source: UnspecifiedResourceID, Severity: Major, Sensor: SensorEvent{Num: 4, Assertion: true}}
	tests := []struct {
		key     string
		wantDup bool
	}{
		{"sel:1", false}, {"sel:1", true}, {"sel:2", false}, {"", false}, {"", false},
		{"sel:1", true}, {"sel:3", false}, {"sel:1", false}, // evicted after two newer keys
	}
	var lastID uint64
	for i, tc := range tests {
		got, dup, err := d.Publish(ev, tc.key)
		if err != nil {
			t.Fatal(err)
		}
		if dup != tc.wantDup {
			t.Fatalf("step %d key %q: dup %v, want %v", i, tc.key, dup, tc.wantDup)
		}
		if !dup {
			if got.ID <= lastID {
				t.Fatalf("event ID %d not after %d", got.ID, lastID)
			}
			lastID = got.ID
		}
	}
	if n := len(drain(t, sub)); n != 6 {
		t.Errorf("subscriber got %d events, want 6", n)
	}
	for _, bad := range []Event{
		{Type: EventHotSwap}, {Type: EventResource}, {Type: EventType(99)}, {Type: EventUser, Severity: Severity(9)},
	} {
		if _, _, err := d.Publish(bad, "x"); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("Publish(%v): %v", bad.Type, err)
		}
	}
}

func TestEventLogOverflow(t *testing.T) {
	for _, action := range []OverflowAction{OverflowDrop, OverflowOverwrite} {
		t.Run(action.String(), func(t *testing.T) {
			d, _ := newTestDomain(t, Config{EventLogSize: 3, EventLogOverflow: action})
			var ids []uint64
			for i := 0; i < 5; i++ {
				ev, _, err := d.Publish(Event{Type: EventUser, Severity: Informational, User: UserEvent{Data: "x"}}, "")
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, ev.ID)
			}
			info := d.EventLogInfo()
			if !info.OverflowFlag || info.Entries != 3 || info.Dropped != 2 || info.OverflowAction != action {
				t.Fatalf("info %+v", info)
			}
			want := ids[:3]
			if action == OverflowOverwrite {
				want = ids[2:]
			}
			entries := d.EventLogEntries()
			for i, e := range entries {
				if e.Event.ID != want[i] {
					t.Fatalf("entry %d has event %d, want %d", i, e.Event.ID, want[i])
				}
				if i > 0 && e.EntryID <= entries[i-1].EntryID {
					t.Fatalf("entry IDs not increasing: %d after %d", e.EntryID, entries[i-1].EntryID)
				}
			}
			lastEntry := entries[len(entries)-1].EntryID
			d.ResetEventLogOverflow()
			if d.EventLogInfo().OverflowFlag {
				t.Error("overflow flag after reset")
			}
			d.ClearEventLog()
			if info := d.EventLogInfo(); info.Entries != 0 || info.OverflowFlag {
				t.Errorf("after clear %+v", info)
			}
			d.Publish(Event{Type: EventUser}, "")
			if e := d.EventLogEntries(); len(e) != 1 || e[0].EntryID <= lastEntry {
				t.Errorf("after clear entries %+v", e)
			}
			d.SetEventLogState(false)
			d.Publish(Event{Type: EventUser}, "")
			if n := d.EventLogInfo().Entries; n != 1 {
				t.Errorf("disabled log grew to %d", n)
			}
		})
	}
}

func TestSubscriptionOverflowMarker(t *testing.T) {
	d, _ := newTestDomain(t, Config{})
	sub, _ := d.Subscribe(2)
	if _, err := d.Subscribe(0); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("Subscribe(0): %v", err)
	}
	pub := func() uint64 {
		ev, _, _ := d.Publish(Event{Type: EventUser}, "")
		return ev.ID
	}
	a, b := pub(), pub()
	pub()
	pub()
	pub() // three dropped
	ctx := context.Background()
	for _, want := range []uint64{a, b} {
		ev, err := sub.Receive(ctx)
		if err != nil || ev.ID != want {
			t.Fatalf("Receive = %d, %v; want %d", ev.ID, err, want)
		}
	}
	_, err := sub.Receive(ctx)
	var of *OverflowError
	if !errors.As(err, &of) || of.Missed != 3 {
		t.Fatalf("Receive = %v, want overflow of 3", err)
	}
	c := pub()
	if ev, err := sub.Receive(ctx); err != nil || ev.ID != c {
		t.Fatalf("after overflow Receive = %d, %v; want %d", ev.ID, err, c)
	}
	// Receive honours the context and Unsubscribe.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := sub.Receive(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Receive on cancelled ctx: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := sub.Receive(ctx); done <- err }()
	sub.Unsubscribe()
	if err := <-done; !errors.Is(err, ErrUnsubscribed) {
		t.Errorf("Receive after Unsubscribe: %v", err)
	}
	sub.Unsubscribe()
	pub() // no subscriber left; must not block or panic
}
