package hpi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func severitySensor(num SensorNum, name string) RDR {
	return RDR{Type: SensorRDR, IDString: name, Sensor: &SensorRec{
		Num: num, Type: SensorPlatformAlert, Category: ECSeverity, EventCtrl: SECPerEvent,
		Events: ESOK | ESMinorFromOK | ESMajorFromLess | ESCriticalFromLess | ESMinorFromMore | ESMajorFromCritical | ESCritical,
	}}
}

func TestAlarmTable(t *testing.T) {
	t.Parallel()
	type step struct {
		states EventState
		// want is the severity of each active alarm, by AlarmID.
		want []Severity
	}
	tests := []struct {
		name  string
		rdr   RDR
		steps []step
	}{
		{"threshold", tempSensor(1, "Temp"), []step{
			{ESUpperMinor, nil},
			{ESUpperMinor | ESUpperMajor, []Severity{Major}},
			{ESUpperMinor | ESUpperMajor | ESUpperCrit, []Severity{Major, Critical}},
			{ESUpperMinor | ESUpperMajor, []Severity{Major}},
			{ESLowerMajor | ESLowerCrit, []Severity{Major, Critical}},
			{0, nil},
		}},
		{"severity", severitySensor(2, "Alert"), []step{
			{ESOK, nil},
			{ESMinorFromOK, nil},
			{ESMajorFromLess, []Severity{Major}},
			{ESCriticalFromLess, []Severity{Critical}},
			{ESCritical | ESMajorFromCritical, []Severity{Major, Critical}},
			{ESMinorFromMore, nil},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, clk := newTestDomain(t, Config{})
			id, err := d.UpsertResource(bladeEntry(4), []RDR{tc.rdr})
			if err != nil {
				t.Fatal(err)
			}
			num := tc.rdr.Sensor.Num
			for i, s := range tc.steps {
				clk.t = clk.t.Add(time.Second)
				before := d.Info()
				beforeAlarms := d.Alarms()
				if _, err := d.SetSensorReading(id, num, SensorReading{}, s.states, clk.t); err != nil {
					t.Fatal(err)
				}
				got := d.Alarms()
				if len(got) != len(s.want) {
					t.Fatalf("step %d (%#x): alarms %+v, want severities %v", i, uint16(s.states), got, s.want)
				}
				sorted := append([]Severity(nil), s.want...)
				crit, major := 0, 0
				for j, a := range got {
					if j > 0 && a.AlarmID <= got[j-1].AlarmID {
						t.Fatalf("alarms not ordered by ID")
					}
					if a.Condition.Type != CondSensor || a.Condition.ResourceID != id || a.Condition.SensorNum != num ||
						s.states&a.Condition.EventState == 0 {
						t.Fatalf("step %d: alarm condition %+v", i, a.Condition)
					}
					if !a.Condition.Entity.Equal(bladePath(4)) {
						t.Fatalf("alarm entity %s", a.Condition.Entity)
					}
					switch a.Severity {
					case Critical:
						crit++
					case Major:
						major++
					}
				}
				wc, wm := 0, 0
				for _, sev := range sorted {
					if sev == Critical {
						wc++
					} else {
						wm++
					}
				}
				if crit != wc || major != wm {
					t.Fatalf("step %d: %d critical %d major, want %d %d", i, crit, major, wc, wm)
				}
				info := d.Info()
				if info.ActiveAlarms != len(got) || info.CriticalAlarms != crit || info.MajorAlarms != major {
					t.Fatalf("step %d: info %+v", i, info)
				}
				changed := !sameAlarmIDs(beforeAlarms, got)
				if changed != (info.DatUpdateCount != before.DatUpdateCount) {
					t.Fatalf("step %d: alarms changed %v but DAT count %d→%d", i, changed, before.DatUpdateCount, info.DatUpdateCount)
				}
				if changed && !info.DatUpdateTimestamp.Equal(clk.t) {
					t.Fatalf("step %d: DAT timestamp %v, want %v", i, info.DatUpdateTimestamp, clk.t)
				}
			}
		})
	}
}

func sameAlarmIDs(a, b []Alarm) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].AlarmID != b[i].AlarmID {
			return false
		}
	}
	return true
}

func TestAlarmAcknowledge(t *testing.T) {
	t.Parallel()
	d, clk := newTestDomain(t, Config{})
	sub, _ := d.Subscribe(64)
	id, _ := d.UpsertResource(bladeEntry(5), []RDR{tempSensor(1, "T")})
	d.SetSensorReading(id, 1, SensorReading{}, ESUpperMajor, t0)
	drain(t, sub)
	a := d.Alarms()[0]
	tests := []struct {
		name       string
		alarm      uint32
		wantErr    error
		wantChange bool
	}{
		{"first", a.AlarmID, nil, true},
		{"again", a.AlarmID, nil, false},
		{"unknown", a.AlarmID + 100, ErrNotPresent, false},
	}
	for _, tc := range tests {
		clk.t = clk.t.Add(time.Minute)
		before := d.Info()
		err := d.AcknowledgeAlarm(tc.alarm)
		if !errors.Is(err, tc.wantErr) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
		after := d.Info()
		evs := drain(t, sub)
		if tc.wantChange != (after.DatUpdateCount == before.DatUpdateCount+1) || tc.wantChange != (len(evs) == 1) {
			t.Fatalf("%s: DAT %d→%d, %d events", tc.name, before.DatUpdateCount, after.DatUpdateCount, len(evs))
		}
		if tc.wantChange {
			ch := evs[0].HPISW.Alarm
			if evs[0].Type != EventHPISW || ch == nil || ch.Action != AlarmAcknowledged || ch.Alarm.AlarmID != a.AlarmID || !ch.Alarm.Acknowledged {
				t.Fatalf("%s: event %+v", tc.name, evs[0])
			}
			if !after.DatUpdateTimestamp.Equal(clk.t) {
				t.Fatalf("DAT timestamp %v", after.DatUpdateTimestamp)
			}
		}
	}
	al := d.Alarms()
	if len(al) != 1 || !al[0].Acknowledged {
		t.Fatalf("acknowledged alarm must stay until its condition clears: %+v", al)
	}
	// The condition goes: the alarm goes, with a CLEARED event.
	d.SetSensorReading(id, 1, SensorReading{}, 0, clk.t)
	if n := len(d.Alarms()); n != 0 {
		t.Fatalf("%d alarms after the condition cleared", n)
	}
	var cleared bool
	for _, ev := range drain(t, sub) {
		if ev.Type == EventHPISW && ev.HPISW.Alarm != nil && ev.HPISW.Alarm.Action == AlarmCleared && ev.HPISW.Alarm.Alarm.AlarmID == a.AlarmID {
			cleared = true
		}
	}
	if !cleared {
		t.Error("no CLEARED event")
	}
	// A new alarm for the same condition gets a new ID and is not acknowledged.
	d.SetSensorReading(id, 1, SensorReading{}, ESUpperMajor, clk.t)
	if al := d.Alarms(); len(al) != 1 || al[0].AlarmID == a.AlarmID || al[0].Acknowledged {
		t.Fatalf("re-raised alarm %+v", al)
	}
}

// TestUpdateCounters checks that the RPT and DAT update counters and
// timestamps change on every change of their table and only then.
func TestUpdateCounters(t *testing.T) {
	t.Parallel()
	d, clk := newTestDomain(t, Config{})
	var id ResourceID
	tests := []struct {
		name          string
		op            func() error
		rptChange     int // expected increments
		datChange     bool
		wantUnchanged bool
	}{
		{"add", func() (err error) { id, err = d.UpsertResource(bladeEntry(1), []RDR{tempSensor(1, "T")}); return }, 1, false, false},
		{"same again", func() error { _, err := d.UpsertResource(bladeEntry(1), []RDR{tempSensor(1, "T")}); return err }, 0, false, true},
		{"tag changed", func() error {
			e := bladeEntry(1)
			e.Tag = "renamed"
			_, err := d.UpsertResource(e, []RDR{tempSensor(1, "T")})
			return err
		}, 1, false, false},
		{"RDR changed", func() error {
			e := bladeEntry(1)
			e.Tag = "renamed"
			_, err := d.UpsertResource(e, []RDR{tempSensor(1, "T"), tempSensor(2, "T2")})
			return err
		}, 1, false, false},
		{"reading without alarm", func() error { _, err := d.SetSensorReading(id, 1, Float(1), ESUpperMinor, time.Time{}); return err }, 0, false, true},
		{"thresholds", func() error { return d.SetSensorThresholds(id, 1, SensorThresholds{UpMajor: Float(80)}) }, 0, false, true},
		{"reading raises alarm", func() error { _, err := d.SetSensorReading(id, 2, Float(1), ESUpperCrit, time.Time{}); return err }, 0, true, false},
		{"same reading", func() error { _, err := d.SetSensorReading(id, 2, Float(2), ESUpperCrit, time.Time{}); return err }, 0, false, true},
		{"failed", func() error { return d.SetResourceFailed(id, true, time.Time{}) }, 1, true, false},
		{"failed again", func() error { return d.SetResourceFailed(id, true, time.Time{}) }, 0, false, true},
		{"publish", func() error { _, _, err := d.Publish(Event{Type: EventUser}, ""); return err }, 0, false, true},
		{"restored", func() error { return d.SetResourceFailed(id, false, time.Time{}) }, 1, true, false},
		{"sensor vanishes with its alarm", func() error {
			e := bladeEntry(1)
			e.Tag = "renamed"
			_, err := d.UpsertResource(e, []RDR{tempSensor(1, "T")})
			return err
		}, 1, true, false},
		{"remove", func() error { return d.RemoveResource(id) }, 1, false, false},
		{"remove again", func() error { return d.RemoveResource(id) }, 0, false, true},
	}
	for _, tc := range tests {
		clk.t = clk.t.Add(time.Second)
		before := d.Info()
		err := tc.op()
		if err != nil && !tc.wantUnchanged {
			t.Fatalf("%s: %v", tc.name, err)
		}
		after := d.Info()
		if got := int(after.RptUpdateCount - before.RptUpdateCount); got != tc.rptChange {
			t.Errorf("%s: RPT count +%d, want +%d", tc.name, got, tc.rptChange)
		}
		if tc.rptChange > 0 && !after.RptUpdateTimestamp.Equal(clk.t) {
			t.Errorf("%s: RPT timestamp %v, want %v", tc.name, after.RptUpdateTimestamp, clk.t)
		}
		if tc.rptChange == 0 && !after.RptUpdateTimestamp.Equal(before.RptUpdateTimestamp) {
			t.Errorf("%s: RPT timestamp moved without a change", tc.name)
		}
		if got := after.DatUpdateCount != before.DatUpdateCount; got != tc.datChange {
			t.Errorf("%s: DAT changed %v, want %v", tc.name, got, tc.datChange)
		}
		if !tc.datChange && !after.DatUpdateTimestamp.Equal(before.DatUpdateTimestamp) {
			t.Errorf("%s: DAT timestamp moved without a change", tc.name)
		}
		if tc.datChange && !after.DatUpdateTimestamp.Equal(clk.t) {
			t.Errorf("%s: DAT timestamp %v, want %v", tc.name, after.DatUpdateTimestamp, clk.t)
		}
	}
}

func TestEventLogCapacityAndFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		size     int
		action   OverflowAction
		publish  int
		wantLen  int
		wantFlag bool
		wantDrop uint64
		// wantFirst is the index (0-based) of the first published event kept.
		wantFirst int
	}{
		{"below capacity drop", 4, OverflowDrop, 3, 3, false, 0, 0},
		{"exactly full drop", 4, OverflowDrop, 4, 4, false, 0, 0},
		{"one over drop", 4, OverflowDrop, 5, 4, true, 1, 0},
		{"far over drop", 4, OverflowDrop, 11, 4, true, 7, 0},
		{"exactly full overwrite", 4, OverflowOverwrite, 4, 4, false, 0, 0},
		{"one over overwrite", 4, OverflowOverwrite, 5, 4, true, 1, 1},
		{"far over overwrite", 4, OverflowOverwrite, 11, 4, true, 7, 7},
		{"size one overwrite", 1, OverflowOverwrite, 3, 1, true, 2, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, _ := newTestDomain(t, Config{EventLogSize: tc.size, EventLogOverflow: tc.action})
			var ids []uint64
			for i := 0; i < tc.publish; i++ {
				ev, _, err := d.Publish(Event{Type: EventUser, User: UserEvent{Data: fmt.Sprint(i)}}, "")
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, ev.ID)
			}
			info := d.EventLogInfo()
			if info.Entries != tc.wantLen || info.Size != tc.size || info.OverflowFlag != tc.wantFlag || info.Dropped != tc.wantDrop {
				t.Fatalf("info %+v", info)
			}
			entries := d.EventLogEntries()
			for i, e := range entries {
				if want := ids[tc.wantFirst+i]; e.Event.ID != want {
					t.Fatalf("entry %d holds event %d, want %d", i, e.Event.ID, want)
				}
			}
			if tc.wantFlag {
				d.ResetEventLogOverflow()
				if info := d.EventLogInfo(); info.OverflowFlag || info.Entries != tc.wantLen {
					t.Fatalf("after reset %+v", info)
				}
				// Still full: the next event overflows again.
				d.Publish(Event{Type: EventUser}, "")
				if !d.EventLogInfo().OverflowFlag {
					t.Fatal("no overflow flag after reset and another overflow")
				}
			}
		})
	}
}

func TestEventsSince(t *testing.T) {
	t.Parallel()
	pubN := func(d *Domain, n int) []uint64 {
		var ids []uint64
		for i := 0; i < n; i++ {
			ev, _, err := d.Publish(Event{Type: EventUser}, "")
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, ev.ID)
		}
		return ids
	}
	tests := []struct {
		name  string
		cfg   Config
		setup func(d *Domain) []uint64 // returns the published IDs
		since func(ids []uint64) uint64
		want  func(ids []uint64) []uint64
		full  bool
	}{
		{"from start", Config{EventLogSize: 8},
			func(d *Domain) []uint64 { return pubN(d, 5) },
			func([]uint64) uint64 { return 0 },
			func(ids []uint64) []uint64 { return ids }, true},
		{"from middle", Config{EventLogSize: 8},
			func(d *Domain) []uint64 { return pubN(d, 5) },
			func(ids []uint64) uint64 { return ids[1] },
			func(ids []uint64) []uint64 { return ids[2:] }, true},
		{"up to date", Config{EventLogSize: 8},
			func(d *Domain) []uint64 { return pubN(d, 5) },
			func(ids []uint64) uint64 { return ids[4] },
			func([]uint64) []uint64 { return nil }, true},
		{"ahead of the domain", Config{EventLogSize: 8},
			func(d *Domain) []uint64 { return pubN(d, 2) },
			func(ids []uint64) uint64 { return ids[1] + 10 },
			func([]uint64) []uint64 { return nil }, true},
		{"overwritten", Config{EventLogSize: 3, EventLogOverflow: OverflowOverwrite},
			func(d *Domain) []uint64 { return pubN(d, 6) },
			func(ids []uint64) uint64 { return ids[0] },
			func(ids []uint64) []uint64 { return ids[3:] }, false},
		{"overwritten but still held", Config{EventLogSize: 3, EventLogOverflow: OverflowOverwrite},
			func(d *Domain) []uint64 { return pubN(d, 6) },
			func(ids []uint64) uint64 { return ids[2] },
			func(ids []uint64) []uint64 { return ids[3:] }, true},
		{"dropped at the end", Config{EventLogSize: 3, EventLogOverflow: OverflowDrop},
			func(d *Domain) []uint64 { return pubN(d, 6) },
			func(ids []uint64) uint64 { return ids[0] },
			func(ids []uint64) []uint64 { return ids[1:3] }, false},
		{"disabled in the middle", Config{EventLogSize: 16},
			func(d *Domain) []uint64 {
				ids := pubN(d, 2)
				d.SetEventLogState(false)
				ids = append(ids, pubN(d, 2)...)
				d.SetEventLogState(true)
				return append(ids, pubN(d, 2)...)
			},
			func(ids []uint64) uint64 { return ids[0] },
			func(ids []uint64) []uint64 { return []uint64{ids[1], ids[4], ids[5]} }, false},
		{"after the gap", Config{EventLogSize: 16},
			func(d *Domain) []uint64 {
				ids := pubN(d, 2)
				d.SetEventLogState(false)
				ids = append(ids, pubN(d, 2)...)
				d.SetEventLogState(true)
				return append(ids, pubN(d, 2)...)
			},
			func(ids []uint64) uint64 { return ids[3] },
			func(ids []uint64) []uint64 { return ids[4:] }, true},
		{"cleared", Config{EventLogSize: 16},
			func(d *Domain) []uint64 {
				ids := pubN(d, 3)
				d.ClearEventLog()
				return append(ids, pubN(d, 1)...)
			},
			func(ids []uint64) uint64 { return ids[0] },
			func(ids []uint64) []uint64 { return ids[3:] }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, _ := newTestDomain(t, tc.cfg)
			ids := tc.setup(d)
			entries, complete := d.EventsSince(tc.since(ids))
			want := tc.want(ids)
			if complete != tc.full || len(entries) != len(want) {
				t.Fatalf("EventsSince = %d entries complete %v, want %v complete %v", len(entries), complete, want, tc.full)
			}
			for i, e := range entries {
				if e.Event.ID != want[i] {
					t.Fatalf("entry %d: event %d, want %d", i, e.Event.ID, want[i])
				}
			}
		})
	}
}

func TestSubscribeAfterResumesWithoutGap(t *testing.T) {
	t.Parallel()
	d, _ := newTestDomain(t, Config{EventLogSize: 100})
	var last uint64
	for i := 0; i < 5; i++ {
		ev, _, _ := d.Publish(Event{Type: EventUser}, "")
		if i == 1 {
			last = ev.ID
		}
	}
	sub, backlog, complete, err := d.SubscribeAfter(last, 10)
	if err != nil || !complete || len(backlog) != 3 {
		t.Fatalf("SubscribeAfter = %d entries, %v, %v", len(backlog), complete, err)
	}
	next, _, _ := d.Publish(Event{Type: EventUser}, "")
	ev, err := sub.Receive(context.Background())
	if err != nil || ev.ID != next.ID || backlog[2].Event.ID+1 != ev.ID {
		t.Fatalf("after the backlog %d came %d (%v), want %d", backlog[2].Event.ID, ev.ID, err, next.ID)
	}
	if _, _, _, err := d.SubscribeAfter(0, 0); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("SubscribeAfter with buffer 0: %v", err)
	}
}

func TestSubscriptionQueue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		size int
		// script: >0 publish that many, <0 receive that many.
		script []int
		// want is what the receives return: event index (order of
		// publication) or -n for an overflow of n.
		want []int
	}{
		{"fits", 3, []int{3, -3}, []int{0, 1, 2}},
		{"one over", 3, []int{4, -4}, []int{0, 1, 2, -1}},
		{"many over", 2, []int{10, -3}, []int{0, 1, -8}},
		{"gap then more", 2, []int{4, -3, 1, -1}, []int{0, 1, -2, 4}},
		{"two gaps", 1, []int{3, -1, 2, -3}, []int{0, -2, 3, -1}},
		{"room after receive", 2, []int{2, -1, 1, -2}, []int{0, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, _ := newTestDomain(t, Config{})
			sub, err := d.Subscribe(tc.size)
			if err != nil {
				t.Fatal(err)
			}
			var ids []uint64
			var got []int
			for _, n := range tc.script {
				for ; n > 0; n-- {
					ev, _, _ := d.Publish(Event{Type: EventUser}, "")
					ids = append(ids, ev.ID)
					if p := sub.Pending(); p > tc.size {
						t.Fatalf("%d events queued, bound %d", p, tc.size)
					}
				}
				for ; n < 0; n++ {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					ev, err := sub.Receive(ctx)
					cancel()
					var of *OverflowError
					switch {
					case errors.As(err, &of):
						got = append(got, -int(of.Missed))
					case err != nil:
						t.Fatal(err)
					default:
						idx := -1
						for i, id := range ids {
							if id == ev.ID {
								idx = i
							}
						}
						got = append(got, idx)
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("received %v, want %v", got, tc.want)
			}
			sub.Unsubscribe()
			d.Publish(Event{Type: EventUser}, "")
			if sub.Pending() != 0 {
				t.Fatal("events queued after Unsubscribe")
			}
			if _, err := sub.Receive(context.Background()); !errors.Is(err, ErrUnsubscribed) {
				t.Fatalf("Receive after Unsubscribe: %v", err)
			}
		})
	}
}

// TestDomainConcurrency runs writers, readers and subscribers at once; run
// it with -race. Every subscriber must see strictly increasing event IDs,
// and overflow gaps must account for every event it missed.
func TestDomainConcurrency(t *testing.T) {
	t.Parallel()
	d, _ := newTestDomain(t, Config{EventLogSize: 256, EventLogOverflow: OverflowOverwrite})
	const writers, perWriter = 8, 200
	var ids []ResourceID
	for slot := EntityLocation(1); slot <= 4; slot++ {
		id, err := d.UpsertResource(bladeEntry(slot), []RDR{tempSensor(1, "T")})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	startID := d.LastEventID()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type subResult struct {
		received, missed uint64
		err              error
	}
	results := make(chan subResult, 6)
	var subsReady sync.WaitGroup
	var done sync.WaitGroup
	for i := 0; i < 6; i++ {
		sub, err := d.Subscribe(8 + i*32)
		if err != nil {
			t.Fatal(err)
		}
		subsReady.Add(1)
		go func() {
			subsReady.Done()
			var r subResult
			var last uint64
			for {
				ev, err := sub.Receive(ctx)
				var of *OverflowError
				switch {
				case errors.As(err, &of):
					r.missed += of.Missed
					continue
				case err != nil:
					results <- r
					return
				}
				if ev.ID <= last {
					r.err = fmt.Errorf("event %d after %d", ev.ID, last)
				}
				last = ev.ID
				r.received++
			}
		}()
	}
	subsReady.Wait()
	for w := 0; w < writers; w++ {
		done.Add(1)
		go func() {
			defer done.Done()
			for i := 0; i < perWriter; i++ {
				id := ids[(w+i)%len(ids)]
				switch i % 6 {
				case 0:
					d.Publish(Event{Type: EventUser}, fmt.Sprintf("w%d-%d", w, i))
				case 1:
					d.SetSensorReading(id, 1, Float(float64(i)), EventState(i%3)*ESUpperMajor, time.Time{})
				case 2:
					d.ObserveMState(id, MStateUnknown, MState(i%8), HsCauseUnknown, time.Time{})
				case 3:
					d.SetResourceFailed(id, i%2 == 0, time.Time{})
				case 4:
					for _, a := range d.Alarms() {
						d.AcknowledgeAlarm(a.AlarmID)
					}
					d.Info()
					d.EventsSince(d.LastEventID() / 2)
				case 5:
					e := bladeEntry(EntityLocation((w+i)%len(ids) + 1))
					e.Tag = fmt.Sprint("tag", i%3)
					d.UpsertResource(e, []RDR{tempSensor(1, "T")})
					d.Tick(time.Now())
					s, _ := d.Subscribe(1)
					s.Unsubscribe()
				}
			}
		}()
	}
	done.Wait()
	end := d.LastEventID()
	// Let the subscribers drain, then stop them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		pending := 0
		for s := range d.subs {
			s.mu.Lock()
			pending += len(s.queue) // events and overflow markers
			s.mu.Unlock()
		}
		d.mu.Unlock()
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	for i := 0; i < 6; i++ {
		r := <-results
		if r.err != nil {
			t.Error(r.err)
		}
		if r.received+r.missed != end-startID {
			t.Errorf("subscriber received %d + missed %d, want %d events", r.received, r.missed, end-startID)
		}
	}
	entries := d.EventLogEntries()
	for i := 1; i < len(entries); i++ {
		if entries[i].Event.ID <= entries[i-1].Event.ID || entries[i].EntryID <= entries[i-1].EntryID {
			t.Fatalf("event log out of order at %d", i)
		}
	}
}
