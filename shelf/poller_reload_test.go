package shelf

import (
	"errors"
	"slices"
	"testing"
	"time"

	"hpiagent/shelf/ipmi"
)

// TestScheduleSetConfig replaces the poll configuration of a running
// schedule (injected clock, no jitter): every sensor keeps its history,
// baseline and failures; new intervals apply from the next scheduling; a
// read scheduled beyond a shortened interval is brought forward; a
// back-off is not shortened; a read in flight is rescheduled with the new
// interval when it ends; the in-flight bound applies to the next reads.
func TestScheduleSetConfig(t *testing.T) {
	t0 := time.Unix(2_000_000, 0)
	hs := pollHotSwapSensor(0x84)
	temp := pollThresholdSensor(0x84, 1, ipmi.Conversion{M: 1})
	cpu := pollThresholdSensor(0x86, 2, ipmi.Conversion{M: 1})
	volt := pollThresholdSensor(0x86, 3, ipmi.Conversion{M: 1})
	fan := pollThresholdSensor(0x86, 4, ipmi.Conversion{M: 1})
	old := PollConfig{Default: 60 * time.Second, Jitter: -1, History: 4, InFlight: 8, MaxBackoff: 10 * time.Minute}
	s := newSchedule(old, []Sensor{hs, temp, cpu, volt, fan}, t0, seqRand(0))

	// Readings at t0, t0+60 s, t0+120 s for every sensor: temp crosses its
	// upper non-critical threshold (85) at the second reading; volt fails
	// from the third on and backs off.
	raws := []uint8{40, 90, 91}
	now := t0
	for i, raw := range raws {
		now = t0.Add(time.Duration(i) * time.Minute)
		jobs := s.due(now)
		if len(jobs) != 5 {
			t.Fatalf("round %d: %d jobs, want 5", i, len(jobs))
		}
		for _, j := range jobs {
			r := pollResult{id: j.id, reading: ipmi.SensorReading{Raw: raw, States: 1 << 4, ScanningEnabled: true}}
			if j.wantLimits {
				r.limits = &testLimits
			}
			if j.id == volt.ID() && i == 2 {
				r = pollResult{id: j.id, err: errors.New("no answer")}
			}
			s.done(now, r)
		}
	}
	// now = t0+120 s; temp, cpu, fan next at t0+180 s, hs at t0+122 s
	// (hot-swap default 2 s), volt backing off (60 s << 1 = 120 s).
	voltNext := s.sensors[volt.ID()].next
	if want := now.Add(2 * time.Minute); !voltNext.Equal(want) {
		t.Fatalf("volt backs off to %v, want %v", voltNext.Sub(t0), want.Sub(t0))
	}
	// fan's read is in flight across the change.
	s.sensors[fan.ID()].next = now
	if jobs := s.due(now); len(jobs) != 1 || jobs[0].id != fan.ID() {
		t.Fatalf("fan not handed out: %v", jobs)
	}

	change := now.Add(10 * time.Second) // t0+130 s
	s.setConfig(PollConfig{Default: 20 * time.Second, Jitter: -1, History: 2, InFlight: 1, MaxBackoff: 10 * time.Minute, ReadTimeout: 3 * time.Second,
		ByType:   map[uint8]time.Duration{SensorTypeHotSwap: 5 * time.Second},
		BySensor: map[SensorID]time.Duration{cpu.ID(): 5 * time.Minute}}, change)

	tests := []struct {
		name     string
		id       SensorID
		interval time.Duration
		next     time.Time // zero: not checked (in flight)
		history  []uint8
		failures int
	}{
		// Scheduled at t0+180 s, beyond change+20 s: brought forward.
		{"shortened interval", temp.ID(), 20 * time.Second, change.Add(20 * time.Second), []uint8{90, 91}, 0},
		// Scheduled at t0+180 s, within the new 5 min: stays.
		{"lengthened interval", cpu.ID(), 5 * time.Minute, t0.Add(3 * time.Minute), []uint8{90, 91}, 0},
		// Scheduled at t0+122 s, already due: stays.
		{"hot-swap by type", hs.ID(), 5 * time.Second, t0.Add(122 * time.Second), []uint8{90, 91}, 0},
		// Backing off: the back-off is not shortened.
		{"backing off", volt.ID(), 20 * time.Second, voltNext, []uint8{40, 90}, 1},
		{"in flight", fan.ID(), 20 * time.Second, time.Time{}, []uint8{90, 91}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, ok := s.status(tt.id)
			if !ok {
				t.Fatal("sensor gone")
			}
			if st.Interval != tt.interval {
				t.Errorf("interval %v, want %v", st.Interval, tt.interval)
			}
			if !tt.next.IsZero() && !st.Next.Equal(tt.next) {
				t.Errorf("next read at t0+%v, want t0+%v", st.Next.Sub(t0), tt.next.Sub(t0))
			}
			var raws []uint8
			for _, h := range st.History {
				raws = append(raws, h.Raw)
			}
			if !slices.Equal(raws, tt.history) {
				t.Errorf("history %v, want the newest %v", raws, tt.history)
			}
			if st.Failures != tt.failures {
				t.Errorf("failures %d, want %d", st.Failures, tt.failures)
			}
		})
	}

	// The read in flight ends: its next read is one new interval later.
	end := change.Add(time.Second)
	s.done(end, pollResult{id: fan.ID(), reading: ipmi.SensorReading{Raw: 92, ScanningEnabled: true}})
	if st, _ := s.status(fan.ID()); !st.Next.Equal(end.Add(20*time.Second)) || len(st.History) != 2 || st.History[1].Raw != 92 {
		t.Errorf("fan after its read: next t0+%v history %v", st.Next.Sub(t0), st.History)
	}

	// The new in-flight bound: one read at a time.
	later := change.Add(time.Hour)
	jobs := s.due(later)
	if len(jobs) != 1 {
		t.Fatalf("%d jobs, want the new bound 1", len(jobs))
	}
	if jobs[0].timeout != 3*time.Second {
		t.Errorf("read timeout %v, want the new 3 s", jobs[0].timeout)
	}

	// The baseline survived: temp coming back below 85 - 2 deasserts the
	// threshold asserted before the change, with an event.
	var evs []Event
	for found := false; !found; jobs = s.due(later) {
		if len(jobs) == 0 {
			t.Fatal("temp never handed out")
		}
		for _, j := range jobs {
			if j.id == temp.ID() {
				found = true
				evs = s.done(later, pollResult{id: j.id, reading: ipmi.SensorReading{Raw: 50, ScanningEnabled: true}})
				continue
			}
			s.done(later, pollResult{id: j.id, reading: ipmi.SensorReading{Raw: 91, States: 1 << 4, ScanningEnabled: true}})
		}
	}
	if len(evs) != 1 || evs[0].Threshold == nil || evs[0].Threshold.Threshold != ipmi.UpperNonCritical || !evs[0].Deassert {
		t.Errorf("events after the change %+v, want the deassertion of the upper non-critical threshold", evs)
	}

	// History growing keeps every sample.
	s.setConfig(PollConfig{Default: 20 * time.Second, Jitter: -1, History: 8}, later)
	if st, _ := s.status(temp.ID()); len(st.History) != 2 || st.History[0].Raw != 91 || st.History[1].Raw != 50 {
		t.Errorf("history after growing %v, want [91 50]", st.History)
	}
}
