package shelf

import (
	"math"
	"regexp"
	"testing"

	"hpiagent/shelf/ipmi"
)

// selBytes builds a 16-byte system event record.
func selBytes(id uint16, ts uint32, gen uint16, sensorType, sensor, dirType, d1, d2, d3 uint8) []byte {
	return []byte{byte(id), byte(id >> 8), 0x02, byte(ts), byte(ts >> 8), byte(ts >> 16), byte(ts >> 24),
		byte(gen), byte(gen >> 8), 0x04, sensorType, sensor, dirType, d1, d2, d3}
}

func TestDecodeSELEntry(t *testing.T) {
	const ts = 0x6b0460b7
	tests := []struct {
		name  string
		rec   []byte
		check func(t *testing.T, e Event)
	}{
		{"picmg hot-swap M4->M6 cause shelf manager FRU 0", selBytes(0x12, ts, 0x0084, 0xf0, 0, 0x6f, 0xa6, 0x14, 0x00), func(t *testing.T, e Event) {
			h := e.HotSwap
			if e.Kind != EventHotSwap || h == nil {
				t.Fatalf("kind %v, hot-swap %v", e.Kind, h)
			}
			want := HotSwapEvent{New: 6, Previous: 4, PreviousKnown: true, Cause: CauseShelfManager, CauseKnown: true, FRU: 0, FRUKnown: true}
			if *h != want {
				t.Errorf("got %+v, want %+v", *h, want)
			}
		}},
		{"picmg hot-swap FRU 3 cause unknown", selBytes(1, ts, 0x0082, 0xf0, 0, 0x6f, 0xa1, 0xf6, 0x03), func(t *testing.T, e Event) {
			want := HotSwapEvent{New: 1, Previous: 6, PreviousKnown: true, Cause: CauseUnknown, FRU: 3, FRUKnown: true}
			if e.HotSwap == nil || *e.HotSwap != want {
				t.Errorf("got %+v, want %+v", e.HotSwap, want)
			}
		}},
		{"ipmi_sim hot-swap 0xff data", selBytes(0x0d, ts, 0x0084, 0xf0, 0, 0x6f, 0x02, 0xff, 0xff), func(t *testing.T, e Event) {
			want := HotSwapEvent{New: 2}
			if e.HotSwap == nil || *e.HotSwap != want {
				t.Errorf("got %+v, want %+v (previous, cause and FRU unknown)", e.HotSwap, want)
			}
		}},
		{"picmg layout with 0xff data 2/3", selBytes(1, ts, 0x0084, 0xf0, 0, 0x6f, 0xa3, 0xff, 0xff), func(t *testing.T, e Event) {
			want := HotSwapEvent{New: 3}
			if e.HotSwap == nil || *e.HotSwap != want {
				t.Errorf("got %+v, want %+v", e.HotSwap, want)
			}
		}},
		{"hot-swap offset beyond M7", selBytes(1, ts, 0x0084, 0xf0, 0, 0x6f, 0xa9, 0x04, 0x00), func(t *testing.T, e Event) {
			if e.Kind != EventOther || e.HotSwap != nil || e.Note == "" {
				t.Errorf("kind %v hot-swap %v note %q, want other with a note", e.Kind, e.HotSwap, e.Note)
			}
		}},
		{"threshold UNC going high asserted with reading and threshold", selBytes(0x0e, ts, 0x0086, 0x01, 2, 0x01, 0x57, 0x61, 0x55), func(t *testing.T, e Event) {
			th := e.Threshold
			if e.Kind != EventThreshold || th == nil {
				t.Fatalf("kind %v", e.Kind)
			}
			want := ThresholdEvent{Threshold: ipmi.UpperNonCritical, GoingHigh: true, Reading: 0x61, HasReading: true, ThresholdRaw: 0x55, HasThreshold: true}
			if *th != want || e.Deassert {
				t.Errorf("got %+v deassert %v, want %+v", *th, e.Deassert, want)
			}
		}},
		{"threshold UC deasserted", selBytes(0x10, ts, 0x0086, 0x01, 2, 0x81, 0x59, 0x5c, 0x5f), func(t *testing.T, e Event) {
			if e.Threshold == nil || e.Threshold.Threshold != ipmi.UpperCritical || !e.Deassert || e.Threshold.Reading != 0x5c {
				t.Errorf("got %+v deassert %v", e.Threshold, e.Deassert)
			}
		}},
		{"threshold LC going low, no data 2/3", selBytes(3, ts, 0x0020, 0x02, 3, 0x01, 0x02, 0xff, 0xff), func(t *testing.T, e Event) {
			th := e.Threshold
			if th == nil || th.Threshold != ipmi.LowerCritical || th.GoingHigh || th.HasReading || th.HasThreshold {
				t.Errorf("got %+v", th)
			}
		}},
		{"threshold offset out of range", selBytes(3, ts, 0x0020, 0x02, 3, 0x01, 0x0c, 0, 0), func(t *testing.T, e Event) {
			if e.Kind != EventOther || e.Note == "" {
				t.Errorf("kind %v note %q", e.Kind, e.Note)
			}
		}},
		{"generic discrete with previous state", selBytes(4, ts, 0x0072, 0x04, 5, 0x07, 0x42, 0x31, 0xff), func(t *testing.T, e Event) {
			want := DiscreteEvent{Offset: 2, Previous: 1, HasPrevious: true}
			if e.Kind != EventDiscrete || e.Discrete == nil || *e.Discrete != want {
				t.Errorf("got %v %+v, want %+v", e.Kind, e.Discrete, want)
			}
		}},
		{"sensor-specific discrete without previous", selBytes(4, ts, 0x0072, 0x08, 5, 0x6f, 0x01, 0xff, 0xff), func(t *testing.T, e Event) {
			if e.Discrete == nil || e.Discrete.Offset != 1 || e.Discrete.HasPrevious {
				t.Errorf("got %+v", e.Discrete)
			}
		}},
		{"oem timestamped", []byte{5, 0, 0xc1, 0xb7, 0x60, 0x04, 0x6b, 0x5a, 0x31, 0, 1, 2, 3, 4, 5, 6}, func(t *testing.T, e Event) {
			if e.Kind != EventOther || len(e.OEM) != 6 || e.RawTime != ts {
				t.Errorf("kind %v oem %x time %x", e.Kind, e.OEM, e.RawTime)
			}
		}},
		{"oem non-timestamped", []byte{6, 0, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, func(t *testing.T, e Event) {
			if e.Kind != EventOther || len(e.OEM) != 13 || !e.Time.IsZero() {
				t.Errorf("kind %v oem %x time %v", e.Kind, e.OEM, e.Time)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := DecodeSELEntry(tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			if e.Source != SourceSEL || e.RecordID != uint16(tc.rec[0])|uint16(tc.rec[1])<<8 {
				t.Errorf("source %v record 0x%04x", e.Source, e.RecordID)
			}
			tc.check(t, e)
		})
	}
}

func TestDecodeSELEntryShort(t *testing.T) {
	if _, err := DecodeSELEntry(make([]byte, 15)); err == nil {
		t.Fatal("15-byte record decoded without error")
	}
}

func TestEventConvert(t *testing.T) {
	e, err := DecodeSELEntry(selBytes(1, 0x6b0460b7, 0x0086, 0x02, 3, 0x01, 0x57, 100, 90))
	if err != nil {
		t.Fatal(err)
	}
	// Volts: y = (2*x + 5*10^1) * 10^-2
	e.Convert(ipmi.Conversion{M: 2, B: 5, BExp: 1, RExp: -2})
	th := e.Threshold
	if !th.HasValue || !th.HasThresholdValue || math.Abs(th.Value-2.5) > 1e-9 || math.Abs(th.ThresholdValue-2.3) > 1e-9 {
		t.Errorf("values %v/%v %v/%v, want 2.5 and 2.3", th.Value, th.HasValue, th.ThresholdValue, th.HasThresholdValue)
	}
}

func TestControllerAddr(t *testing.T) {
	tests := []struct {
		gen   uint16
		local uint8
		want  ipmi.Addr
		ok    bool
	}{
		{0x0084, 0x20, ipmi.Addr{Slave: 0x84}, true},
		{0x0020, 0x20, ipmi.Addr{}, true},
		{0x0020, 0x10, ipmi.Addr{Slave: 0x20}, true},
		{0x7182, 0x20, ipmi.Addr{Channel: 7, Slave: 0x82, LUN: 1}, true},
		{0x0041, 0x20, ipmi.Addr{}, false}, // software ID (BIOS)
	}
	for _, tc := range tests {
		got, ok := Event{Generator: tc.gen}.Controller(tc.local)
		if got != tc.want || ok != tc.ok {
			t.Errorf("generator 0x%04x local 0x%02x: %v %v, want %v %v", tc.gen, tc.local, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEventKey(t *testing.T) {
	base := selBytes(0x12, 0x6b0460b8, 0x0084, 0xf0, 0, 0x6f, 0xa6, 0x14, 0x00)
	e, _ := DecodeSELEntry(base)
	k := e.Key()
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{2}-[0-9a-f]{4}-[0-9a-f]{2}-[0-9a-f]{6}$`).MatchString(k) {
		t.Fatalf("key %q does not have the documented form", k)
	}
	// The PET path calls EventKey with the plain fields.
	if pet := EventKey(0x6b0460b8, 0x84, 0xf0, 0, 0x6f, 0xa6, 0x14, 0x00); pet != k {
		t.Errorf("EventKey from plain fields %q, from the record %q", pet, k)
	}
	// Another record ID, channel or LUN (not carried by PET) keeps the key.
	other := selBytes(0x99, 0x6b0460b8, 0x1084, 0xf0, 0, 0x6f, 0xa6, 0x14, 0x00)
	if e2, _ := DecodeSELEntry(other); e2.Key() != k {
		t.Errorf("record ID/LUN changed the key: %q vs %q", e2.Key(), k)
	}
	// Every identifying field changes it.
	for _, idx := range []int{3, 7, 10, 11, 12, 13, 14, 15} {
		b := append([]byte(nil), base...)
		b[idx] ^= 0x02
		if e2, _ := DecodeSELEntry(b); e2.Key() == k {
			t.Errorf("changing byte %d kept the key %q", idx, k)
		}
	}
}

// FuzzDecodeSELEntry checks that any 16 bytes decode without panicking,
// into an event whose typed part agrees with its kind and whose values are
// in range.
func FuzzDecodeSELEntry(f *testing.F) {
	f.Add(selBytes(0x12, 0x6b0460b8, 0x0084, 0xf0, 0, 0x6f, 0xa6, 0x14, 0x00))
	f.Add(selBytes(0x0d, 0x6b0460b7, 0x0084, 0xf0, 0, 0x6f, 0x02, 0xff, 0xff))
	f.Add(selBytes(0x0e, 0x6b0460b7, 0x0086, 0x01, 2, 0x01, 0x57, 0x61, 0x55))
	f.Add(selBytes(0x10, 0x6b0460b7, 0x0086, 0x01, 2, 0x81, 0x59, 0x5c, 0x5f))
	f.Add(selBytes(4, 0x10, 0x0072, 0x04, 5, 0x07, 0x42, 0x31, 0xff))
	f.Add([]byte{5, 0, 0xc1, 0xb7, 0x60, 0x04, 0x6b, 0x5a, 0x31, 0, 1, 2, 3, 4, 5, 6})
	f.Add([]byte{6, 0, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeSELEntry(b)
		if err != nil {
			if len(b) >= ipmi.SELRecordLen {
				t.Fatalf("16 bytes or more refused: %v", err)
			}
			return
		}
		typed := 0
		for _, p := range []bool{e.Threshold != nil, e.Discrete != nil, e.HotSwap != nil, e.Gap != nil} {
			if p {
				typed++
			}
		}
		switch e.Kind {
		case EventThreshold:
			if e.Threshold == nil || e.Threshold.Threshold > ipmi.UpperNonRecoverable {
				t.Fatalf("threshold event %+v", e.Threshold)
			}
		case EventHotSwap:
			h := e.HotSwap
			if h == nil || h.New > 7 || (h.PreviousKnown && h.Previous > 7) {
				t.Fatalf("hot-swap event %+v", h)
			}
		case EventDiscrete:
			if e.Discrete == nil || e.Discrete.Offset > 14 {
				t.Fatalf("discrete event %+v", e.Discrete)
			}
		case EventOther:
			if typed != 0 {
				t.Fatalf("other event with a typed part: %+v", e)
			}
		default:
			t.Fatalf("kind %v from a SEL record", e.Kind)
		}
		if e.Kind != EventOther && typed != 1 {
			t.Fatalf("%v event with %d typed parts", e.Kind, typed)
		}
		if e.Key() != e.Key() {
			t.Fatal("key not deterministic")
		}
		if e.Time.IsZero() != (e.RecordType >= 0xe0 || ipmiZeroTime(e.RawTime)) {
			t.Fatalf("time %v for record type 0x%02x raw 0x%x", e.Time, e.RecordType, e.RawTime)
		}
	})
}

// ipmiZeroTime reports whether raw is the IPMI "unspecified" time stamp.
func ipmiZeroTime(raw uint32) bool { return raw == 0xffffffff }
