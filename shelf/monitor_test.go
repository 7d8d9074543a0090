package shelf

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"hpiagent/hpi"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/pet"
)

func TestLinkHealth(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	type step struct {
		at      time.Duration
		ok      bool
		lost    bool // fail: becomes lost now
		recover bool // ok: was lost until now
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"failures shorter than the grace", []step{
			{0, false, false, false}, {4 * time.Second, false, false, false}, {5 * time.Second, true, false, false}}},
		{"lost after the grace, once", []step{
			{0, false, false, false}, {9 * time.Second, false, false, false}, {10 * time.Second, false, true, false},
			{20 * time.Second, false, false, false}, {21 * time.Second, true, false, true}, {22 * time.Second, true, false, false}}},
		{"a success restarts the grace", []step{
			{0, false, false, false}, {8 * time.Second, true, false, false}, {9 * time.Second, false, false, false},
			{18 * time.Second, false, false, false}, {19 * time.Second, false, true, false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := linkHealth{grace: 10 * time.Second}
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				if s.ok {
					if got := h.ok(now); got != s.recover {
						t.Fatalf("step %d: ok() = %v, want %v", i, got, s.recover)
					}
				} else if got := h.fail(now); got != s.lost {
					t.Fatalf("step %d: fail() = %v, want %v", i, got, s.lost)
				}
			}
		})
	}
}

func TestHsCause(t *testing.T) {
	tests := []struct {
		h    *HotSwapEvent
		want hpi.HsCause
	}{
		{nil, hpi.HsCauseUnknown},
		{&HotSwapEvent{Cause: CauseHandle}, hpi.HsCauseUnknown}, // cause not known
		{&HotSwapEvent{Cause: CauseHandle, CauseKnown: true}, hpi.HsCauseOperatorInit},
		{&HotSwapEvent{Cause: CauseShelfManager, CauseKnown: true}, hpi.HsCauseExtSoftware},
		{&HotSwapEvent{Cause: CauseSurpriseExtraction, CauseKnown: true}, hpi.HsCauseSurpriseExtraction},
		{&HotSwapEvent{Cause: CauseUnexpectedDeactivate, CauseKnown: true}, hpi.HsCauseUnexpectedDeactivation},
		{&HotSwapEvent{Cause: CauseCommunication, CauseKnown: true}, hpi.HsCauseHardwareFault},
		{&HotSwapEvent{Cause: CauseInvalidHardwareAddr, CauseKnown: true}, hpi.HsCauseUnknown},
	}
	for _, tc := range tests {
		if got := hsCause(tc.h); got != tc.want {
			t.Errorf("hsCause(%+v) = %s, want %s", tc.h, got, tc.want)
		}
	}
}

func TestLEDSetting(t *testing.T) {
	tests := []struct {
		name string
		s    hpi.CtrlState
		want ipmi.LEDSetting
		err  error
	}{
		{"digital on", hpi.CtrlState{Type: hpi.CtrlTypeDigital, Digital: hpi.CtrlStateOn}, ipmi.LEDSetting{Function: ipmi.LEDOn, Color: 0x0f}, nil},
		{"digital off", hpi.CtrlState{Type: hpi.CtrlTypeDigital, Digital: hpi.CtrlStateOff}, ipmi.LEDSetting{Function: ipmi.LEDOff, Color: 0x0f}, nil},
		{"digital pulse", hpi.CtrlState{Type: hpi.CtrlTypeDigital, Digital: hpi.CtrlStatePulseOn}, ipmi.LEDSetting{}, hpi.ErrInvalidParams},
		{"oem function only", hpi.CtrlState{Type: hpi.CtrlTypeOEM, Oem: []byte{ipmi.LEDLocalControl}}, ipmi.LEDSetting{Function: ipmi.LEDLocalControl, Color: 0x0f}, nil},
		{"oem blink red", hpi.CtrlState{Type: hpi.CtrlTypeOEM, Oem: []byte{30, 20, 2}}, ipmi.LEDSetting{Function: 30, OnDuration: 20, Color: 2}, nil},
		{"oem bad color", hpi.CtrlState{Type: hpi.CtrlTypeOEM, Oem: []byte{30, 20, 0x10}}, ipmi.LEDSetting{}, hpi.ErrInvalidParams},
		{"oem color 0", hpi.CtrlState{Type: hpi.CtrlTypeOEM, Oem: []byte{30, 20, 0}}, ipmi.LEDSetting{}, hpi.ErrInvalidParams},
		{"oem empty", hpi.CtrlState{Type: hpi.CtrlTypeOEM}, ipmi.LEDSetting{}, hpi.ErrInvalidParams},
		{"lamp test too long", hpi.CtrlState{Type: hpi.CtrlTypeOEM, Oem: []byte{ipmi.LEDLampTest, 200}}, ipmi.LEDSetting{}, hpi.ErrInvalidParams},
		{"text", hpi.CtrlState{Type: hpi.CtrlTypeText, Text: "on"}, ipmi.LEDSetting{}, hpi.ErrInvalidParams},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ledSetting(tc.s)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// petFor builds the PET a shelf manager sends for SEL record r, with a
// UTC offset (minutes) in the PET.
func petFor(r ipmi.SELRecord, utcOffset int16, deassertInType bool) (uint32, []byte) {
	specific := uint32(r.SensorType)<<16 | uint32(r.EventType&0x7f)<<8 | uint32(r.EventData[0]&0x0f)
	if r.Deassert {
		if deassertInType {
			specific |= 0x8000
		} else {
			specific |= 0x80
		}
	}
	b := make([]byte, 16)
	copy(b, "TEST-SHELF-GUID!")
	b = binary.BigEndian.AppendUint16(b, r.RecordID)
	b = binary.BigEndian.AppendUint32(b, r.RawTime-883612800)
	b = binary.BigEndian.AppendUint16(b, uint16(utcOffset))
	b = append(b, 0x20, 0x20, 0x02, uint8(r.Generator), r.Sensor, 0xa0, 0x60)
	b = append(b, r.EventData[0], r.EventData[1], r.EventData[2], 0xff, 0xff, 0xff, 0xff, 0xff)
	b = append(b, 0x19, 0, 0, 0x31, 0x5a, 0, 1, 0xc1)
	return specific, b
}

// TestTrapKeyMatchesSEL checks that the event a PET trap gives and the
// SEL record it reports have the same key (the dedup key), also when the
// PET names a UTC offset and whichever bit carries the deassertion, and
// that other records have other keys.
func TestTrapKeyMatchesSEL(t *testing.T) {
	base := ipmi.SELRecord{RecordID: 0x0123, Type: 0x02, RawTime: 1_790_000_000, Generator: 0x0084, EvMRev: 4,
		SensorType: 0xf0, Sensor: 0, EventType: 0x6f, EventData: [3]uint8{0xa5, 0x24, 0x00}}
	deassert := base
	deassert.SensorType, deassert.Sensor, deassert.EventType, deassert.Deassert, deassert.EventData = 0x01, 3, 0x01, true, [3]uint8{0x59, 0x60, 0x5f}
	tests := []struct {
		name           string
		rec            ipmi.SELRecord
		offset         int16
		deassertInType bool
	}{
		{"hot-swap, no UTC offset", base, pet.UTCOffsetUnspecified, false},
		{"hot-swap, UTC+2", base, 120, false},
		{"threshold deassertion, bit 7", deassert, pet.UTCOffsetUnspecified, false},
		{"threshold deassertion, bit 15", deassert, -300, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ipmi.ParseSELRecord(tc.rec.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			sel := DecodeSELRecord(r)
			p, err := pet.DecodePET(petFor(r, tc.offset, tc.deassertInType))
			if err != nil {
				t.Fatal(err)
			}
			tr := eventOfPET(p)
			if tr.Key() != sel.Key() || DedupKey("a", tr) != DedupKey("a", sel) {
				t.Fatalf("trap key %s, SEL key %s", tr.Key(), sel.Key())
			}
			if tr.Kind != sel.Kind || tr.Deassert != sel.Deassert {
				t.Fatalf("trap decoded as %v deassert %v, SEL as %v deassert %v", tr.Kind, tr.Deassert, sel.Kind, sel.Deassert)
			}
			if DedupKey("a", tr) == DedupKey("b", sel) {
				t.Fatal("keys of two shelves collide")
			}
			later := r
			later.RawTime++
			if DecodeSELRecord(later).Key() == tr.Key() {
				t.Fatal("a record one second later has the same key")
			}
		})
	}
}

func TestHPIEventOf(t *testing.T) {
	s := pollThresholdSensor(0x84, 3, ipmi.Conversion{M: 1})
	idx := &monIndex{all: map[sensorKey]sensorRef{{gen: 0x84, num: 3}: {res: 7, num: 0x103, sensor: s}},
		fru0: map[uint8]hpi.ResourceID{0x84: 5}}
	th := func(off uint8, deassert bool) Event {
		e := Event{Source: SourceSEL, Generator: 0x84, SensorType: 1, Sensor: 3, EventType: 1, Deassert: deassert,
			Data: [3]uint8{0x50 | off, 97, 95}}
		decodeSystemEvent(&e)
		return e
	}
	disc := Event{Source: SourceSEL, Generator: 0x84, SensorType: 5, Sensor: 9, EventType: 0x6f, Data: [3]uint8{0x04, 0xff, 0xff}}
	decodeSystemEvent(&disc)
	unknown := disc
	unknown.Generator = 0x90
	tests := []struct {
		name  string
		e     Event
		src   hpi.ResourceID
		num   hpi.SensorNum
		state hpi.EventState
		sev   hpi.Severity
		read  bool
	}{
		{"upper critical going high", th(0x09, false), 7, 0x103, hpi.ESUpperMajor, hpi.Major, true},
		{"upper non-recoverable", th(0x0b, false), 7, 0x103, hpi.ESUpperCrit, hpi.Critical, true},
		{"lower non-critical deasserted", th(0x00, true), 7, 0x103, hpi.ESLowerMinor, hpi.OK, true},
		{"discrete of an unknown sensor of a known controller", disc, 5, 9, 1 << 4, hpi.Informational, false},
		{"unknown controller", unknown, hpi.UnspecifiedResourceID, 9, 1 << 4, hpi.Informational, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := hpiEventOf(tc.e, idx, sensorKey{gen: tc.e.GeneratorAddr(), num: tc.e.Sensor}, time.Unix(1, 0))
			se := ev.Sensor
			if ev.Type != hpi.EventSensor || ev.Source != tc.src || se.Num != tc.num || se.EventState != tc.state ||
				ev.Severity != tc.sev || se.Assertion == tc.e.Deassert {
				t.Fatalf("event %+v", ev)
			}
			if got := se.OptionalDataPresent&hpi.SODTriggerReading != 0; got != tc.read {
				t.Fatalf("trigger reading present %v, want %v", got, tc.read)
			}
			if tc.read && se.TriggerReading.Float64 != 97 {
				t.Fatalf("trigger reading %v", se.TriggerReading)
			}
		})
	}
}

// TestScheduleStats checks the poller's late count with a fake clock:
// a read handed out within LateAfter of its due time is on time, later
// is late; reads made due by PollNow or RetryFailed never count as late.
func TestScheduleStats(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	hs := pollHotSwapSensor(0x84)
	s := newSchedule(PollConfig{Default: time.Second, ByType: map[uint8]time.Duration{SensorTypeHotSwap: time.Second},
		Jitter: -1, LateAfter: 100 * time.Millisecond}, []Sensor{hs}, t0, seqRand(0))
	ok := pollResult{id: hs.ID(), reading: ipmi.SensorReading{States: 1 << 4, ScanningEnabled: true}}
	steps := []struct {
		name     string
		pollNow  bool
		retry    bool
		handout  time.Duration // after the due time
		fail     bool
		wantLate uint64
	}{
		{"on time", false, false, 0, false, 0},
		{"within LateAfter", false, false, 90 * time.Millisecond, false, 0},
		{"late", false, false, 300 * time.Millisecond, false, 1},
		{"targeted", true, false, 0, true, 1},
		{"retry of a failed read", false, true, 0, false, 1},
		{"late again", false, false, 2 * time.Second, false, 2},
	}
	now := t0
	for _, st := range steps {
		due := s.sensors[hs.ID()].next
		switch {
		case st.pollNow:
			s.pollNow(now, hs.Owner)
			due = now
		case st.retry:
			s.retryFailed(now)
			due = now
		}
		now = due.Add(st.handout)
		jobs := s.due(now)
		if len(jobs) != 1 {
			t.Fatalf("%s: %d jobs", st.name, len(jobs))
		}
		r := ok
		if st.fail {
			r.err = errors.New("no answer")
		}
		_, pr := s.doneReading(now, r)
		if s.stats.Late != st.wantLate {
			t.Fatalf("%s: late %d, want %d", st.name, s.stats.Late, st.wantLate)
		}
		if !st.fail && (!pr.HasStates || pr.States != 1<<4) {
			t.Fatalf("%s: reading %+v", st.name, pr)
		}
	}
	if s.stats.Reads != uint64(len(steps)) || s.stats.Failures != 1 || s.stats.Targeted != 1 || s.stats.MaxDelay != 2*time.Second {
		t.Fatalf("stats %+v", s.stats)
	}
}

// TestScheduleSetSensors checks that a rediscovery keeps the history and
// baseline of sensors that remain and forgets those gone.
func TestScheduleSetSensors(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	a, b, c := pollHotSwapSensor(0x84), pollHotSwapSensor(0x86), pollHotSwapSensor(0x88)
	s := newSchedule(PollConfig{Jitter: -1}, []Sensor{a, b}, t0, seqRand(0))
	for _, j := range s.due(t0) {
		s.done(t0, pollResult{id: j.id, reading: ipmi.SensorReading{States: 1 << 4, ScanningEnabled: true}})
	}
	// b's read is in flight when the sensors change.
	jobs := s.due(t0.Add(time.Hour))
	if len(jobs) != 2 {
		t.Fatalf("%d jobs", len(jobs))
	}
	s.done(t0.Add(time.Hour), pollResult{id: a.ID(), reading: ipmi.SensorReading{States: 1 << 4, ScanningEnabled: true}})
	s.setSensors([]Sensor{a, c}, t0.Add(time.Hour))
	if st, _ := s.status(a.ID()); len(st.History) != 2 {
		t.Fatalf("history of a kept sensor: %d samples", len(st.History))
	}
	if _, ok := s.status(b.ID()); ok {
		t.Fatal("removed sensor still scheduled")
	}
	if st, _ := s.status(c.ID()); len(st.History) != 0 {
		t.Fatal("new sensor has history")
	}
	if s.running != 0 {
		t.Fatalf("running %d after the in-flight sensor went", s.running)
	}
	// The late answer of the removed sensor is ignored.
	if evs := s.done(t0.Add(time.Hour), pollResult{id: b.ID()}); evs != nil || s.running != 0 {
		t.Fatalf("answer of a removed sensor: %v, running %d", evs, s.running)
	}
	// a changes state: the kept baseline makes it an event.
	s.sensors[a.ID()].next = t0
	s.due(t0.Add(2 * time.Hour))
	evs := s.done(t0.Add(2*time.Hour), pollResult{id: a.ID(), reading: ipmi.SensorReading{States: 1 << 5, ScanningEnabled: true}})
	if len(evs) != 1 || evs[0].HotSwap == nil || evs[0].HotSwap.Previous != 4 || evs[0].HotSwap.New != 5 {
		t.Fatalf("events after rediscovery: %+v", evs)
	}
}

// FuzzEventOfPET decodes arbitrary PETs into events: no panic, and the
// dedup key is a function of the PET's SEL fields only.
func FuzzEventOfPET(f *testing.F) {
	base := ipmi.SELRecord{RecordID: 7, Type: 0x02, RawTime: 1_790_000_000, Generator: 0x84, SensorType: 0xf0,
		EventType: 0x6f, EventData: [3]uint8{0xa4, 0x13, 0}}
	sp, b := petFor(base, pet.UTCOffsetUnspecified, false)
	f.Add(sp, b)
	th := base
	th.SensorType, th.EventType, th.Deassert, th.EventData = 1, 1, true, [3]uint8{0x57, 1, 2}
	sp, b = petFor(th, 60, true)
	f.Add(sp, b)
	f.Add(uint32(0), []byte{})
	f.Add(uint32(0xffffffff), make([]byte, 46))
	f.Fuzz(func(t *testing.T, specific uint32, data []byte) {
		p, err := pet.DecodePET(specific, data)
		if err != nil {
			return
		}
		e := eventOfPET(p)
		if e.Kind == 0 {
			t.Fatalf("event of PET %+v has no kind", p)
		}
		if e.Key() != eventOfPET(p).Key() {
			t.Fatal("key not deterministic")
		}
		q := p
		q.GUID[0] ^= 0xff
		q.Severity ^= 0xff
		if eventOfPET(q).Key() != e.Key() {
			t.Fatal("key depends on fields a SEL record does not carry")
		}
	})
}

// FuzzLEDSetting parses arbitrary OEM LED states.
func FuzzLEDSetting(f *testing.F) {
	f.Add([]byte{ipmi.LEDOn, 0, 1})
	f.Add([]byte{ipmi.LEDLampTest, 10})
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ledSetting(hpi.CtrlState{Type: hpi.CtrlTypeOEM, Oem: b})
		if err != nil {
			if !errors.Is(err, hpi.ErrInvalidParams) {
				t.Fatalf("error %v does not wrap ErrInvalidParams", err)
			}
			return
		}
		if len(b) == 0 || s.Function != b[0] || s.Color == 0 || s.Color > 0x0f {
			t.Fatalf("%x parsed as %+v", b, s)
		}
	})
}
