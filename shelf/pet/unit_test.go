package pet

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"hpiagent/shelf/ipmi"
)

// RFC 3414 appendix A.3.2: password "maplesyrup", SHA, engine ID
// 000000000000000000000002.
func TestKeyLocalizationRFC3414(t *testing.T) {
	ku := passwordToKey(sha1.New, []byte("maplesyrup"))
	if got := hex.EncodeToString(ku); got != "9fb5cc0381497b3793528939ff788d5d79145211" {
		t.Fatalf("Ku = %s", got)
	}
	engine, _ := hex.DecodeString("000000000000000000000002")
	if got := hex.EncodeToString(localizeKey(sha1.New, ku, engine)); got != "6695febc9288e36282235fc7151f128497b38f3f" {
		t.Fatalf("Kul = %s", got)
	}
}

func TestBERReader(t *testing.T) {
	tests := []struct {
		name string
		in   string // hex
		tag  byte
		val  string
		err  string
	}{
		{"short form", "0403616263", 0x04, "616263", ""},
		{"long form", "048103616263", 0x04, "616263", ""},
		{"empty value", "0400", 0x04, "", ""},
		{"truncated header", "04", 0, "", "truncated element header"},
		{"indefinite length", "3080", 0, "", "indefinite"},
		{"five length bytes", "04850000000001", 0, "", "length bytes"},
		{"high tag number", "1f0100", 0, "", "high tag"},
		{"length beyond data", "040561", 0, "", "with 1 left"},
		{"huge length", "0484ffffffff", 0, "", "left"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := hex.DecodeString(tc.in)
			r := berReader{b: b}
			got, err := r.next()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errBER) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got.tag != tc.tag || hex.EncodeToString(got.val) != tc.val {
				t.Fatalf("got %x %x %v", got.tag, got.val, err)
			}
		})
	}
}

func TestParseIntAndOID(t *testing.T) {
	ints := []struct {
		in   string
		want int64
		err  bool
	}{
		{"00", 0, false}, {"7f", 127, false}, {"80", -128, false}, {"0080", 128, false},
		{"ffffffff", -1, false}, {"7fffffffffffffff", 1<<63 - 1, false}, {"", 0, true}, {"010000000000000000", 0, true},
	}
	for _, tc := range ints {
		b, _ := hex.DecodeString(tc.in)
		got, err := parseInt(b)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("parseInt(%s) = %d, %v", tc.in, got, err)
		}
	}
	oids := []struct {
		in   string
		want string
		err  bool
	}{
		{"2b06010401986f010101", "1.3.6.1.4.1.3183.1.1.1", false},
		{"2b0601040198", "", true}, // truncated sub-identifier
		{"", "", true},
		{"2b8001", "", true},     // leading 0x80
		{"8837", "2.999", false}, // first arc 2
		{"2b8fffffff7f", "1.3.4294967295", false},
		{"2b9080808000", "", true}, // 2^32
	}
	for _, tc := range oids {
		b, _ := hex.DecodeString(tc.in)
		got, err := parseOID(b)
		if (err != nil) != tc.err || (!tc.err && got.String() != tc.want) {
			t.Errorf("parseOID(%s) = %s, %v", tc.in, got, err)
		}
	}
}

func TestDecodePET(t *testing.T) {
	base := defaultPETSpec()
	tests := []struct {
		name     string
		specific uint32
		data     []byte
		err      bool
		check    func(PET) bool
	}{
		{"lab default", base.specific(), base.payload(), false, func(p PET) bool {
			return p.SensorType == 1 && p.EventType == 1 && p.Offset == 9 && !p.Deassertion && p.SensorDevice == 0x82
		}},
		{"deassert bit 7", 0x010189, base.payload(), false, func(p PET) bool { return p.Deassertion && p.Offset == 9 && p.EventDirType() == 0x81 }},
		{"deassert bit 15", 0x018109, base.payload(), false, func(p PET) bool { return p.Deassertion && p.EventType == 1 && p.EventDirType() == 0x81 }},
		{"dell chassis intrusion cleared", 356224, base.payload(), false, func(p PET) bool {
			return p.SensorType == 5 && p.EventType == 0x6f && p.Offset == 0 && p.Deassertion
		}},
		{"no OEM area", base.specific(), base.payload()[:PETMinLen], false, func(p PET) bool { return p.OEM == nil }},
		{"too short", base.specific(), base.payload()[:PETMinLen-1], true, nil},
		{"empty", 0, nil, true, nil},
		{"too long", 0, make([]byte, PETMaxLen+1), true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := DecodePET(tc.specific, tc.data)
			if tc.err {
				if !errors.Is(err, ErrBadPET) {
					t.Fatalf("err %v, want ErrBadPET", err)
				}
				return
			}
			if err != nil || !tc.check(p) {
				t.Fatalf("decoded %+v, %v", p, err)
			}
		})
	}
}

func TestPETTime(t *testing.T) {
	s := defaultPETSpec()
	s.ts = 1 // 1998-01-01 00:00:01 local
	p, _ := DecodePET(s.specific(), s.payload())
	if got := p.Time(); !got.Equal(time.Date(1998, 1, 1, 0, 0, 1, 0, time.UTC)) {
		t.Fatalf("time %v", got)
	}
	d := s.payload()
	d[22], d[23] = 0, 60 // UTC+1h: local 00:00:01 is 23:00:01 UTC the day before
	p, _ = DecodePET(s.specific(), d)
	if got := p.Time(); !got.Equal(time.Date(1997, 12, 31, 23, 0, 1, 0, time.UTC)) {
		t.Fatalf("time with offset %v", got)
	}
	s.ts = 0
	p, _ = DecodePET(s.specific(), s.payload())
	if !p.Time().IsZero() || p.SELTimestamp() != 0 {
		t.Fatal("unspecified timestamp not zero")
	}
}

func TestOEMFields(t *testing.T) {
	tests := []struct {
		name string
		oem  []byte
		want int
		err  bool
	}{
		{"end marker only", []byte{0xc1}, 0, false},
		{"none", nil, 0, false},
		{"two fields", []byte{0xc3, 'a', 'b', 'c', 0x02, 1, 2, 0xc1}, 2, false},
		{"no end marker", []byte{0x01, 9}, 1, false},
		{"truncated", []byte{0x05, 1, 2}, 0, true},
	}
	for _, tc := range tests {
		p := PET{OEM: tc.oem}
		got, err := p.OEMFields()
		if (err != nil) != tc.err || len(got) != tc.want {
			t.Errorf("%s: %v %v", tc.name, got, err)
		}
	}
	p := PET{OEM: []byte{0xc3, 'a', 'b', 'c', 0xc1}}
	f, _ := p.OEMFields()
	if f[0].Type != 3 || string(f[0].Data) != "abc" {
		t.Fatalf("field %+v", f[0])
	}
}

// TestKeyMatchesSEL builds the SEL record a shelf manager would hold for
// a PET and checks that both give the same Key, and that each field of the
// key matters.
func TestKeyMatchesSEL(t *testing.T) {
	s := defaultPETSpec()
	s.seq, s.deassert = 0x0123, true
	p, err := DecodePET(s.specific(), s.payload())
	if err != nil {
		t.Fatal(err)
	}
	sel := func(mut func([]byte)) ipmi.SELRecord {
		ts := s.ts + 883612800
		b := []byte{0x23, 0x01, 0x02, byte(ts), byte(ts >> 8), byte(ts >> 16), byte(ts >> 24),
			s.owner, 0x00, 0x04, s.sensorType, s.sensor, 0x80 | s.eventType, s.data[0], s.data[1], s.data[2]}
		mut(b)
		r, err := ipmi.ParseSELRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if got := SELKey(sel(func([]byte) {})); got != p.Key() {
		t.Fatalf("SEL key %v\n PET key %v", got, p.Key())
	}
	for name, mut := range map[string]func([]byte){
		"record id":   func(b []byte) { b[0]++ },
		"timestamp":   func(b []byte) { b[3]++ },
		"generator":   func(b []byte) { b[7] = 0x84 },
		"sensor type": func(b []byte) { b[10]++ },
		"sensor":      func(b []byte) { b[11]++ },
		"direction":   func(b []byte) { b[12] &^= 0x80 },
		"data 3":      func(b []byte) { b[15]-- },
	} {
		if SELKey(sel(mut)) == p.Key() {
			t.Errorf("%s change does not change the key", name)
		}
	}
}

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := bucket{tokens: 2, last: t0}
	steps := []struct {
		at   time.Duration
		want bool
	}{{0, true}, {0, true}, {0, false}, {500 * time.Millisecond, false}, {time.Second, true}, {time.Second, false},
		{time.Hour, true}, {time.Hour, true}, {time.Hour, false}}
	for i, s := range steps {
		if got := b.take(t0.Add(s.at), 1, 2); got != s.want {
			t.Fatalf("step %d at %v: %v", i, s.at, got)
		}
	}
}

func TestLRUEvictsLeastRecent(t *testing.T) {
	c := newLRU[string, int](2)
	mk := func() int { return 0 }
	*must(c.get("a", mk)) = 1
	*must(c.get("b", mk)) = 2
	c.lookup("a") // a is now the most recent
	if _, ev := c.get("c", mk); !ev {
		t.Fatal("no eviction at capacity")
	}
	if _, ok := c.lookup("b"); ok {
		t.Fatal("b should have been evicted")
	}
	if v, ok := c.lookup("a"); !ok || *v != 1 || c.len() != 2 {
		t.Fatal("a lost")
	}
}

func must[V any](v *V, _ bool) *V { return v }

func TestLimiterPerSourceBeforeGlobal(t *testing.T) {
	t0 := time.Unix(0, 0)
	cfg := Config{SourceRate: 1, SourceBurst: 3, GlobalRate: 1, GlobalBurst: 5, MaxSources: 10}
	l := newLimiter(&cfg, t0)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	var got []Reason
	for range 10 {
		got = append(got, l.allow(a, t0))
	}
	got = append(got, l.allow(b, t0), l.allow(b, t0), l.allow(b, t0))
	want := []Reason{"", "", "", ReasonRateLimitedSource, ReasonRateLimitedSource, ReasonRateLimitedSource,
		ReasonRateLimitedSource, ReasonRateLimitedSource, ReasonRateLimitedSource, ReasonRateLimitedSource,
		"", "", ReasonRateLimitedGlobal}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("packet %d: %q, want %q (all %q)", i, got[i], want[i], got)
		}
	}
}
