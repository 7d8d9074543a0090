package shelf

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/shelf/ipmi"
)

// seqRand returns a deterministic "random" source cycling through vals.
func seqRand(vals ...float64) func() float64 {
	i := 0
	return func() float64 {
		v := vals[i%len(vals)]
		i++
		return v
	}
}

func pollThresholdSensor(owner uint8, n uint8, conv ipmi.Conversion) Sensor {
	rec := &ipmi.SensorRecord{Type: ipmi.SDRFullSensor, OwnerID: owner, Number: n, SensorType: 0x01,
		EventReadingType: 0x01, Conv: conv, Capabilities: 0x68} // hysteresis and thresholds readable/settable
	return Sensor{Owner: ipmi.Addr{Slave: owner}, Number: n, Name: fmt.Sprintf("T%02x.%d", owner, n), Record: rec}
}

func pollHotSwapSensor(owner uint8) Sensor {
	rec := &ipmi.SensorRecord{Type: ipmi.SDRCompactSensor, OwnerID: owner, SensorType: SensorTypeHotSwap,
		EventReadingType: 0x6f, Conv: ipmi.Conversion{Format: ipmi.AnalogNoReadings}}
	return Sensor{Owner: ipmi.Addr{Slave: owner}, Number: 0, Name: "HS", Record: rec}
}

// upper thresholds UNC 85, UC 95, UNR 100 and lower LNC 10, LC 5; hysteresis 2 both ways.
var testLimits = Limits{
	Thresholds: ipmi.Thresholds{Mask: 0x3b, Value: [6]uint8{10, 5, 0, 85, 95, 100}},
	Hysteresis: ipmi.Hysteresis{Positive: 2, Negative: 2},
}

// TestThresholdCrossings feeds reading sequences and checks the events,
// which must respect the hysteresis on the way back.
func TestThresholdCrossings(t *testing.T) {
	linear := ipmi.Conversion{M: 1}
	// Negative slope: real = -raw + 200. Raw thresholds are given so that
	// real UNC = 85 (raw 115), UC = 95 (raw 105); hysteresis raw 2 = 2 units.
	negative := ipmi.Conversion{M: -1, B: 200}
	negLimits := Limits{Thresholds: ipmi.Thresholds{Mask: 0x18, Value: [6]uint8{0, 0, 0, 115, 105, 0}},
		Hysteresis: ipmi.Hysteresis{Positive: 2, Negative: 2}}
	tests := []struct {
		name     string
		conv     ipmi.Conversion
		lim      Limits
		readings []uint8
		want     []string // per reading: its events, "+UNC" assertion, "-UC" deassertion
	}{
		// 90 is the baseline (UNC asserted silently); 94 and 93 are inside
		// UC's hysteresis, 84 and 83 inside UNC's.
		{"up through two thresholds and back", linear, testLimits,
			[]uint8{90, 97, 94, 93, 92, 84, 83, 82},
			[]string{"", "+UC", "", "", "-UC", "", "", "-UNC"}},
		{"jump over several at once", linear, testLimits,
			[]uint8{50, 100, 50},
			[]string{"", "+UNC,+UC,+UNR", "-UNC,-UC,-UNR"}},
		{"lower thresholds", linear, testLimits,
			[]uint8{20, 10, 11, 12, 13, 5, 7, 8},
			[]string{"", "+LNC", "", "", "-LNC", "+LNC,+LC", "", "-LC"}},
		{"exactly at the threshold asserts", linear, testLimits,
			[]uint8{84, 85, 84, 83, 82},
			[]string{"", "+UNC", "", "", "-UNC"}},
		{"no hysteresis", linear, Limits{Thresholds: testLimits.Thresholds},
			[]uint8{80, 95, 94, 84},
			[]string{"", "+UNC,+UC", "-UC", "-UNC"}},
		{"negative slope converts before comparing", negative, negLimits,
			// real values: 90, 97, 94, 92, 84, 82
			[]uint8{110, 103, 106, 108, 116, 118},
			[]string{"", "+UC", "", "-UC", "", "-UNC"}},
	}
	names := map[ipmi.Threshold]string{ipmi.LowerNonCritical: "LNC", ipmi.LowerCritical: "LC", ipmi.LowerNonRecoverable: "LNR",
		ipmi.UpperNonCritical: "UNC", ipmi.UpperCritical: "UC", ipmi.UpperNonRecoverable: "UNR"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := pollThresholdSensor(0x86, 2, tc.conv)
			var asserted uint8
			var got []string
			now := time.Unix(1000, 0)
			for i, raw := range tc.readings {
				var evs []Event
				asserted, evs = thresholdCrossings(s, tc.lim, asserted, i > 0, raw, now)
				var names1 []string
				for _, e := range evs {
					sign := "+"
					if e.Deassert {
						sign = "-"
					}
					names1 = append(names1, sign+names[e.Threshold.Threshold])
					if e.Kind != EventThreshold || e.Source != SourcePoll || e.Sensor != 2 || e.GeneratorAddr() != 0x86 ||
						e.Threshold.Reading != raw || !e.Threshold.HasValue || e.Data[1] != raw {
						t.Errorf("reading %d: event %+v %+v", raw, e, *e.Threshold)
					}
				}
				got = append(got, strings.Join(names1, ","))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestSchedule checks the decision logic with an injected clock: jittered
// first polls, the in-flight bound, intervals per type and per sensor,
// back-off, PollNow and the history ring.
func TestSchedule(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	hs := pollHotSwapSensor(0x84)
	temp := pollThresholdSensor(0x84, 1, ipmi.Conversion{M: 1})
	cpu := pollThresholdSensor(0x86, 2, ipmi.Conversion{M: 1})
	volt := pollThresholdSensor(0x86, 3, ipmi.Conversion{M: 1})
	cfg := PollConfig{Default: 10 * time.Second, InFlight: 2, History: 3, Jitter: 0.1, MaxBackoff: 60 * time.Second,
		BySensor: map[SensorID]time.Duration{volt.ID(): 30 * time.Second}}
	s := newSchedule(cfg, []Sensor{hs, temp, cpu, volt, temp}, t0, seqRand(0.5, 0.0, 0.9, 0.25))

	t.Run("intervals and first polls spread", func(t *testing.T) {
		if len(s.order) != 4 {
			t.Fatalf("%d sensors scheduled, want 4 (duplicate dropped)", len(s.order))
		}
		want := map[SensorID]time.Duration{hs.ID(): DefaultHotSwapInterval, temp.ID(): 10 * time.Second, cpu.ID(): 10 * time.Second, volt.ID(): 30 * time.Second}
		for id, iv := range want {
			st := s.sensors[id]
			if st.interval != iv {
				t.Errorf("%s: interval %v, want %v", id, st.interval, iv)
			}
			if st.next.Before(t0) || !st.next.Before(t0.Add(iv)) {
				t.Errorf("%s: first poll at %v, want within one interval of start", id, st.next.Sub(t0))
			}
		}
		if s.sensors[hs.ID()].next.Equal(s.sensors[temp.ID()].next) && s.sensors[temp.ID()].next.Equal(s.sensors[cpu.ID()].next) {
			t.Error("first polls not spread")
		}
	})

	t.Run("in-flight bound and order", func(t *testing.T) {
		jobs := s.due(t0.Add(time.Minute))
		if len(jobs) != 2 {
			t.Fatalf("%d jobs, want the in-flight bound 2", len(jobs))
		}
		// temp's first poll (rand 0.0) is the earliest, then hs (0.5 of 2 s).
		if jobs[0].id != temp.ID() || jobs[1].id != hs.ID() {
			t.Errorf("jobs %v, %v: want earliest first", jobs[0].id, jobs[1].id)
		}
		if !jobs[0].wantLimits || jobs[1].wantLimits {
			t.Errorf("limits wanted: %v %v; want only for the threshold sensor", jobs[0].wantLimits, jobs[1].wantLimits)
		}
		if more := s.due(t0.Add(time.Minute)); len(more) != 0 {
			t.Errorf("%d more jobs while the bound is reached", len(more))
		}
		now := t0.Add(time.Minute)
		s.done(now, pollResult{id: temp.ID(), reading: ipmi.SensorReading{Raw: 40, ScanningEnabled: true}, limits: &testLimits})
		st := s.sensors[temp.ID()]
		if d := st.next.Sub(now); d < 9*time.Second || d > 11*time.Second {
			t.Errorf("next poll in %v, want 10 s ± 10%%", d)
		}
		if jobs := s.due(now); len(jobs) != 1 {
			t.Errorf("%d jobs after one finished, want 1", len(jobs))
		}
	})

	t.Run("back-off", func(t *testing.T) {
		now := t0.Add(2 * time.Minute)
		id := hs.ID()
		var gaps []time.Duration
		for range 7 {
			s.done(now, pollResult{id: id, err: errors.New("no answer")})
			st := s.sensors[id]
			gaps = append(gaps, st.next.Sub(now))
			now = st.next
			st.inFlight, s.running = true, s.running+1
		}
		for i := 1; i < len(gaps); i++ {
			if gaps[i] < gaps[i-1] && gaps[i-1] < 50*time.Second {
				t.Errorf("back-off shrank: %v", gaps)
			}
		}
		if gaps[0] < 3*time.Second || gaps[len(gaps)-1] > 66*time.Second || gaps[len(gaps)-1] < 54*time.Second {
			t.Errorf("back-off %v: want doubling from the 2 s interval, capped at 60 s ± jitter", gaps)
		}
		if st, _ := s.status(id); st.Failures != 7 || st.LastErr == nil {
			t.Errorf("status %+v", st)
		}
		s.done(now, pollResult{id: id, reading: ipmi.SensorReading{States: 1 << 4, ScanningEnabled: true}})
		if st, _ := s.status(id); st.Failures != 0 || st.Next.Sub(now) > 3*time.Second {
			t.Errorf("after success: failures %d next in %v", st.Failures, st.Next.Sub(now))
		}
	})

	t.Run("PollNow", func(t *testing.T) {
		now := t0.Add(3 * time.Minute)
		for _, id := range s.order {
			if s.sensors[id].inFlight {
				s.done(now, pollResult{id: id, err: errors.New("x")})
			}
		}
		if n := s.pollNow(now, ipmi.Addr{Slave: 0x86}); n != 2 {
			t.Errorf("owner 0x86 matched %d sensors, want 2", n)
		}
		if n := s.pollNow(now, ipmi.Addr{Slave: 0x84}, 0); n != 1 {
			t.Errorf("0x84 #0 matched %d, want 1", n)
		}
		if n := s.pollNow(now, ipmi.Addr{Slave: 0x99}); n != 0 {
			t.Errorf("unknown owner matched %d", n)
		}
		jobs := s.due(now)
		if len(jobs) != 2 {
			t.Fatalf("%d jobs due after PollNow, want 2 (bound)", len(jobs))
		}
		// A PollNow during a read makes it read again right after.
		s.pollNow(now, jobs[0].id.Owner, jobs[0].id.Number)
		later := now.Add(time.Second)
		s.done(later, pollResult{id: jobs[0].id, err: errors.New("x")})
		if st := s.sensors[jobs[0].id]; !st.next.Equal(later) {
			t.Errorf("re-poll at %v, want right after the read (%v)", st.next, later)
		}
	})

	t.Run("history ring", func(t *testing.T) {
		id := cpu.ID()
		st := s.sensors[id]
		st.inFlight = false
		now := t0.Add(4 * time.Minute)
		for i, raw := range []uint8{50, 51, 52, 53, 54} {
			s.done(now.Add(time.Duration(i)*time.Second), pollResult{id: id, reading: ipmi.SensorReading{Raw: raw, ScanningEnabled: true}, limits: &testLimits})
		}
		got, _ := s.status(id)
		var raws []uint8
		for _, h := range got.History {
			raws = append(raws, h.Raw)
			if !h.HasValue || h.Value != float64(h.Raw) {
				t.Errorf("sample %+v without its value", h)
			}
		}
		if !slices.Equal(raws, []uint8{52, 53, 54}) {
			t.Errorf("history %v, want the last 3 oldest first", raws)
		}
	})
}

// TestScheduleDiscrete checks hot-swap and generic discrete state changes.
func TestScheduleDiscrete(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	hs := pollHotSwapSensor(0x84)
	gen := pollHotSwapSensor(0x72)
	gen.Record.SensorType, gen.Number = 0x08, 5
	s := newSchedule(PollConfig{Jitter: -1}, []Sensor{hs, gen}, t0, seqRand(0))
	read := func(sn Sensor, states uint16, valid bool) []Event {
		s.sensors[sn.ID()].inFlight = true
		s.running++
		return s.done(t0, pollResult{id: sn.ID(), reading: ipmi.SensorReading{States: states, ScanningEnabled: true, Unavailable: !valid}})
	}
	if evs := read(hs, 1<<4, true); len(evs) != 0 {
		t.Errorf("baseline made events: %v", evs)
	}
	if evs := read(hs, 1<<4, true); len(evs) != 0 {
		t.Errorf("unchanged state made events: %v", evs)
	}
	if evs := read(hs, 0, false); len(evs) != 0 {
		t.Errorf("unavailable reading made events: %v", evs)
	}
	evs := read(hs, 1<<6, true)
	if len(evs) != 1 || evs[0].HotSwap == nil {
		t.Fatalf("M4->M6: %v", evs)
	}
	want := HotSwapEvent{New: 6, Previous: 4, PreviousKnown: true, Cause: CauseUnknown}
	if *evs[0].HotSwap != want || evs[0].Data != [3]uint8{0xa6, 0xf4, 0xff} || evs[0].GeneratorAddr() != 0x84 {
		t.Errorf("got %+v data %x, want %+v", *evs[0].HotSwap, evs[0].Data, want)
	}
	// Decoding the polled event's data gives the same transition.
	if d := DecodeSELRecord(ipmi.SELRecord{Type: 2, SensorType: 0xf0, EventType: 0x6f, EventData: evs[0].Data}); d.HotSwap == nil || d.HotSwap.New != 6 || d.HotSwap.Previous != 4 || d.HotSwap.FRUKnown {
		t.Errorf("polled event data decodes to %+v", d.HotSwap)
	}
	read(gen, 0b0011, true)
	evs = read(gen, 0b0110, true)
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%d:%v", e.Discrete.Offset, e.Deassert))
	}
	if !slices.Equal(got, []string{"0:true", "2:false"}) {
		t.Errorf("discrete changes %v", got)
	}
}

// fakeSensors answers Get Sensor Reading, Thresholds and Hysteresis from
// a table and can fail a sensor; it counts reads in flight.
type fakeSensors struct {
	mu       sync.Mutex
	raw      map[SensorID]uint8
	states   map[SensorID]uint16
	fail     map[SensorID]bool
	inFlight int
	maxIn    int
	reads    map[SensorID]int
}

func (f *fakeSensors) Close() error { return nil }

func (f *fakeSensors) Exchange(ctx context.Context, to ipmi.Addr, req ipmi.Request) (ipmi.Response, error) {
	f.mu.Lock()
	f.inFlight++
	f.maxIn = max(f.maxIn, f.inFlight)
	id := SensorID{Owner: to, Number: req.Data[0]}
	f.mu.Unlock()
	time.Sleep(time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight--
	if f.fail[id] {
		return ipmi.Response{}, errors.New("timeout")
	}
	switch req.Cmd {
	case ipmi.CmdGetSensorThresholds:
		return ipmi.Response{Data: testLimits.Thresholds.Marshal()}, nil
	case ipmi.CmdGetSensorHysteresis:
		return ipmi.Response{Data: testLimits.Hysteresis.Marshal()}, nil
	case ipmi.CmdGetSensorReading:
		f.reads[id]++
		return ipmi.Response{Data: ipmi.SensorReading{Raw: f.raw[id], States: f.states[id], ScanningEnabled: true, EventsEnabled: true}.Marshal()}, nil
	}
	return ipmi.Response{Code: ipmi.CCInvalidCommand}, nil
}

// TestPollerRun runs the poller against in-process sensors: events reach
// the sink, a failing sensor does not stop the others, and the in-flight
// bound holds.
func TestPollerRun(t *testing.T) {
	var sensors []Sensor
	for n := range uint8(8) {
		sensors = append(sensors, pollThresholdSensor(0x82, n+1, ipmi.Conversion{M: 1}))
	}
	hs := pollHotSwapSensor(0x84)
	sensors = append(sensors, hs)
	fs := &fakeSensors{raw: map[SensorID]uint8{}, states: map[SensorID]uint16{hs.ID(): 1 << 4},
		fail: map[SensorID]bool{sensors[0].ID(): true}, reads: map[SensorID]int{}}
	for _, s := range sensors[:8] {
		fs.raw[s.ID()] = 50
	}
	evc := make(chan Event, 100)
	p := NewPoller(fs, sensors, PollConfig{Default: 20 * time.Millisecond, ByType: map[uint8]time.Duration{}, InFlight: 3},
		SinkFunc(func(_ context.Context, e Event) { evc <- e }), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s", what)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	baseline := func(id SensorID) func() bool {
		return func() bool { st, _ := p.Status(id); return len(st.History) > 0 }
	}
	waitFor("baselines", func() bool { return baseline(hs.ID())() && baseline(sensors[3].ID())() })

	fs.mu.Lock()
	fs.states[hs.ID()] = 1 << 6
	fs.raw[sensors[3].ID()] = 97
	fs.mu.Unlock()
	if n := p.PollNow(ipmi.Addr{Slave: 0x84}); n != 1 {
		t.Errorf("PollNow matched %d", n)
	}
	var got []string
	for len(got) < 3 {
		select {
		case e := <-evc:
			switch {
			case e.HotSwap != nil:
				got = append(got, fmt.Sprintf("M%d->M%d", e.HotSwap.Previous, e.HotSwap.New))
			case e.Threshold != nil:
				got = append(got, fmt.Sprintf("#%d %v", e.Sensor, e.Threshold.Threshold))
			}
		case <-ctx.Done():
			t.Fatalf("events so far %v", got)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"#4 " + ipmi.UpperCritical.String(), "#4 " + ipmi.UpperNonCritical.String(), "M4->M6"}) {
		t.Errorf("events %v", got)
	}
	st, _ := p.Status(sensors[0].ID())
	if st.Failures == 0 || st.LastErr == nil {
		t.Errorf("failing sensor status %+v", st)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.maxIn > 3 {
		t.Errorf("%d requests in flight, bound 3", fs.maxIn)
	}
}

// FuzzThresholdCrossings feeds random thresholds, hysteresis and readings
// to the crossing detection of a linear sensor and checks its promises
// after every reading: at or beyond a threshold means asserted, past it by
// more than the hysteresis on the way back means deasserted, and an event
// is emitted exactly when a threshold's state changes (none for the
// baseline).
func FuzzThresholdCrossings(f *testing.F) {
	f.Add(uint8(0x3b), []byte{10, 5, 0, 85, 95, 100}, uint8(2), uint8(2), []byte{90, 97, 94, 92, 84, 82, 10, 4, 8})
	f.Add(uint8(0x3f), []byte{0, 0, 0, 255, 255, 255}, uint8(0xff), uint8(0), []byte{0, 255, 128})
	f.Fuzz(func(t *testing.T, mask uint8, th []byte, hpos, hneg uint8, readings []byte) {
		if len(th) < 6 {
			return
		}
		lim := Limits{Thresholds: ipmi.Thresholds{Mask: mask & 0x3f}, Hysteresis: ipmi.Hysteresis{Positive: hpos, Negative: hneg}}
		copy(lim.Thresholds.Value[:], th)
		s := pollThresholdSensor(0x82, 1, ipmi.Conversion{M: 1})
		band := func(h uint8) int {
			if h == 0xff {
				return 0
			}
			return int(h)
		}
		var asserted uint8
		for i, raw := range readings {
			before := asserted
			var evs []Event
			asserted, evs = thresholdCrossings(s, lim, asserted, i > 0, raw, time.Time{})
			changed := 0
			for tt := ipmi.LowerNonCritical; tt <= ipmi.UpperNonRecoverable; tt++ {
				bit := uint8(1) << tt
				on := asserted&bit != 0
				if !lim.Thresholds.Has(tt) {
					if on {
						t.Fatalf("threshold %v not in the mask but asserted", tt)
					}
					continue
				}
				v, tv := int(raw), int(lim.Thresholds.Value[tt])
				if isUpper(tt) {
					if v >= tv && !on || v < tv-band(hpos) && on {
						t.Fatalf("reading %d, %v %d hysteresis %d: asserted %v", v, tt, tv, hpos, on)
					}
				} else if v <= tv && !on || v > tv+band(hneg) && on {
					t.Fatalf("reading %d, %v %d hysteresis %d: asserted %v", v, tt, tv, hneg, on)
				}
				if (before^asserted)&bit != 0 {
					changed++
				}
			}
			if i == 0 {
				changed = 0
			}
			if len(evs) != changed {
				t.Fatalf("reading %d: %d events for %d changes", raw, len(evs), changed)
			}
			for _, e := range evs {
				if e.Deassert == (asserted&(1<<e.Threshold.Threshold) != 0) {
					t.Fatalf("event direction %v disagrees with the state", e.Deassert)
				}
			}
		}
	})
}
