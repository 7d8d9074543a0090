package shelf_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
)

// collector is an EventSink that keeps every event and lets a test wait
// for a condition on them.
type collector struct {
	mu     sync.Mutex
	events []shelf.Event
	added  chan struct{}
}

func newCollector() *collector { return &collector{added: make(chan struct{}, 1)} }

func (c *collector) HandleShelfEvent(_ context.Context, e shelf.Event) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
	select {
	case c.added <- struct{}{}:
	default:
	}
}

func (c *collector) snapshot() []shelf.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]shelf.Event(nil), c.events...)
}

// waitFor waits until cond holds on the events so far, or fails the test
// at ctx's deadline.
func (c *collector) waitFor(ctx context.Context, t *testing.T, what string, cond func([]shelf.Event) bool) []shelf.Event {
	t.Helper()
	for {
		evs := c.snapshot()
		if cond(evs) {
			return evs
		}
		select {
		case <-c.added:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; events: %s", what, ctx.Err(), describe(evs))
		}
	}
}

func describe(evs []shelf.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %s", eventString(e))
	}
	return b.String()
}

func eventString(e shelf.Event) string {
	switch {
	case e.HotSwap != nil:
		h := e.HotSwap
		prev := "M?"
		if h.PreviousKnown {
			prev = fmt.Sprintf("M%d", h.Previous)
		}
		cause := "?"
		if h.CauseKnown {
			cause = fmt.Sprint(uint8(h.Cause))
		}
		return fmt.Sprintf("%v 0x%02x hot-swap %s->M%d cause %s", e.Source, e.GeneratorAddr(), prev, h.New, cause)
	case e.Threshold != nil:
		dir := "+"
		if e.Deassert {
			dir = "-"
		}
		return fmt.Sprintf("%v 0x%02x #%d %s%v", e.Source, e.GeneratorAddr(), e.Sensor, dir, e.Threshold.Threshold)
	case e.Gap != nil:
		return fmt.Sprintf("%v gap: %s", e.Source, e.Gap.Reason)
	}
	return fmt.Sprintf("%v %v 0x%02x #%d data %x", e.Source, e.Kind, e.GeneratorAddr(), e.Sensor, e.Data)
}

// labSession starts a lab shelf and an RMCP+ session to its shelf
// manager, and reads the shelf manager's own IPMB address and sensors.
func labSession(t *testing.T, opts ...labshelf.Option) (*labshelf.Shelf, *rmcpp.Session, uint8, []shelf.Sensor, context.Context) {
	t.Helper()
	sh := labshelf.Start(t, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	ai, err := ipmi.GetAddressInfo(ctx, sess, ipmi.Addr{}, ipmi.ByFRU(0))
	if err != nil {
		t.Fatal(err)
	}
	sdrs, err := ipmi.ReadSDRRepository(ctx, sess, ipmi.Addr{}, ipmi.MainSDR)
	if err != nil {
		t.Fatal(err)
	}
	return sh, sess, ai.IPMBAddress, shelf.SensorsOf(sdrs, ai.IPMBAddress), ctx
}

// pollSEL polls f every 200 ms, handing events to c, until cond holds on
// c's events, and then extra more times (to show that nothing is
// reported twice). It fails the test at ctx's deadline.
func pollSEL(ctx context.Context, t *testing.T, f *shelf.SELFollower, c *collector, extra int, what string, cond func([]shelf.Event) bool) []shelf.Event {
	t.Helper()
	for done := -1; done < extra; {
		evs, err := f.Poll(ctx)
		for _, e := range evs {
			c.HandleShelfEvent(ctx, e)
		}
		if err != nil {
			t.Logf("sel poll: %v", err)
		}
		if done >= 0 || cond(c.snapshot()) {
			done++
			continue
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; events: %s", what, ctx.Err(), describe(c.snapshot()))
		case <-time.After(200 * time.Millisecond):
		}
	}
	return c.snapshot()
}

func hotSwapOf(evs []shelf.Event, src shelf.EventSource, gen uint8) []shelf.Event {
	var out []shelf.Event
	for _, e := range evs {
		if e.Source == src && e.HotSwap != nil && e.GeneratorAddr() == gen {
			out = append(out, e)
		}
	}
	return out
}

// TestHotSwapPolledAndFromSEL moves a blade's hot-swap sensor with the
// emulator console (ipmi_sim writes its own event, data 2/3 = 0xFF) and
// checks that the poller reports the previous and new M-state and the SEL
// follower the same transition exactly once.
func TestHotSwapPolledAndFromSEL(t *testing.T) {
	sh, sess, local, sensors, ctx := labSession(t)
	blade := sh.Blades[1]
	bladeAddr, _ := shelf.ControllerAddr(blade, 0, 0, local)
	var hs []shelf.Sensor
	for _, s := range sensors {
		if s.Record.SensorType == shelf.SensorTypeHotSwap {
			hs = append(hs, s)
		}
	}
	const interval = 500 * time.Millisecond
	polled, fromSEL := newCollector(), newCollector()
	p := shelf.NewPoller(sess, hs, shelf.PollConfig{ByType: map[uint8]time.Duration{shelf.SensorTypeHotSwap: interval}}, polled, nil)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go p.Run(runCtx)
	f := &shelf.SELFollower{Conn: sess, SkipExisting: true}
	if _, err := f.Poll(ctx); err != nil {
		t.Fatal(err)
	}

	id := shelf.SensorID{Owner: bladeAddr, Number: 0}
	for {
		st, ok := p.Status(id)
		if !ok {
			t.Fatalf("hot-swap sensor of 0x%02x not polled; sensors %v", blade, hs)
		}
		if n := len(st.History); n > 0 && st.History[n-1].States == 1<<4 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no M4 baseline for 0x%02x: %+v", blade, st)
		case <-time.After(50 * time.Millisecond):
		}
	}

	changed := time.Now()
	if _, err := sh.Console(ctx, fmt.Sprintf("sensor_set_bit_clr_rest 0x%02x 0 0 2 1", blade)); err != nil {
		t.Fatal(err)
	}
	deadline, cancel := context.WithTimeout(ctx, 2*interval+5*time.Second)
	defer cancel()
	evs := polled.waitFor(deadline, t, "polled M4->M2", func(evs []shelf.Event) bool { return len(hotSwapOf(evs, shelf.SourcePoll, blade)) > 0 })
	pe := hotSwapOf(evs, shelf.SourcePoll, blade)
	t.Logf("poller saw the transition %v after the change (interval %v)", pe[0].Time.Sub(changed).Round(time.Millisecond), interval)
	if h := pe[0].HotSwap; len(pe) != 1 || !h.PreviousKnown || h.Previous != 4 || h.New != 2 {
		t.Errorf("polled events %s, want one M4->M2", describe(pe))
	}
	pollSEL(deadline, t, f, fromSEL, 3, "SEL M2", func(evs []shelf.Event) bool { return len(hotSwapOf(evs, shelf.SourceSEL, blade)) > 0 })
	se := hotSwapOf(fromSEL.snapshot(), shelf.SourceSEL, blade)
	if len(se) != 1 {
		t.Fatalf("SEL follower reported %d hot-swap events for 0x%02x, want 1: %s", len(se), blade, describe(se))
	}
	h := se[0].HotSwap
	if h.New != 2 || h.PreviousKnown || h.FRUKnown {
		t.Errorf("SEL event %s: want M?->M2 with previous state and FRU unknown (ipmi_sim's own event)", eventString(se[0]))
	}
	if a, ok := se[0].Controller(local); !ok || a != bladeAddr {
		t.Errorf("SEL event controller %v %v, want %v", a, ok, bladeAddr)
	}
	if pa, _ := pe[0].Controller(local); pa != bladeAddr {
		t.Errorf("polled event controller %v, want %v", pa, bladeAddr)
	}
	// ipmitool sees the same record.
	out, err := sh.Ipmitool(ctx, "sel", "get", fmt.Sprintf("0x%04x", se[0].RecordID))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Hot Swap") || !strings.Contains(out, fmt.Sprintf("%02x", blade)) {
		t.Errorf("ipmitool sel get 0x%04x:\n%s", se[0].RecordID, out)
	}
}

// transitions renders the hot-swap events of one controller as
// "M4->M6/1" (previous, new, cause).
func transitions(evs []shelf.Event, gen uint8) []string {
	var out []string
	for _, e := range hotSwapOf(evs, shelf.SourceSEL, gen) {
		h := e.HotSwap
		s := fmt.Sprintf("M?->M%d", h.New)
		if h.PreviousKnown {
			s = fmt.Sprintf("M%d->M%d", h.Previous, h.New)
		}
		if h.CauseKnown {
			s += fmt.Sprintf("/%d", uint8(h.Cause))
		}
		out = append(out, s)
	}
	return out
}

func hasSuffix(got, want []string) bool {
	return len(got) >= len(want) && fmt.Sprint(got[len(got)-len(want):]) == fmt.Sprint(want)
}

// powerBlade switches a blade's payload with Chassis Control bridged
// through the shelf manager and waits until the simulated hardware agrees.
func powerBlade(ctx context.Context, t *testing.T, sh *labshelf.Shelf, sess ipmi.Conn, to ipmi.Addr, on bool) {
	t.Helper()
	a := ipmi.ChassisPowerDown
	if on {
		a = ipmi.ChassisPowerUp
	}
	if err := ipmi.ChassisControl(ctx, sess, to, a); err != nil {
		t.Fatal(err)
	}
	for {
		running, err := sh.PayloadRunning(to.Slave)
		if err != nil {
			t.Fatal(err)
		}
		if running == on {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("blade %v power %v: %v", to, on, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestSELPowerCycle power-cycles a blade and checks that the PICMG hot-swap
// events its IPMC logs (M4->M6->M1, then M1->M2->M3->M4) are read once
// each, in order, with previous state, cause and FRU, and that the
// follower read as many records as ipmitool lists.
func TestSELPowerCycle(t *testing.T) {
	sh, sess, local, _, ctx := labSession(t)
	blade := sh.Blades[2]
	to, _ := shelf.ControllerAddr(blade, 0, 0, local)
	f := &shelf.SELFollower{Conn: sess}
	c := newCollector()
	// The start-up walk M1->M2->M3->M4 of every blade is already logged.
	pollSEL(ctx, t, f, c, 0, "start-up events", func(evs []shelf.Event) bool {
		return hasSuffix(transitions(evs, blade), []string{"M3->M4/0"})
	})
	before := len(transitions(c.snapshot(), blade))

	powerBlade(ctx, t, sh, sess, to, false)
	pollSEL(ctx, t, f, c, 0, "M6, M1", func(evs []shelf.Event) bool {
		return hasSuffix(transitions(evs, blade), []string{"M4->M6/1", "M6->M1/0"})
	})
	powerBlade(ctx, t, sh, sess, to, true)
	evs := pollSEL(ctx, t, f, c, 3, "M2, M3, M4", func(evs []shelf.Event) bool {
		return hasSuffix(transitions(evs, blade), []string{"M1->M2/3", "M2->M3/1", "M3->M4/0"})
	})
	got := transitions(evs, blade)[before:]
	want := []string{"M4->M6/1", "M6->M1/0", "M1->M2/3", "M2->M3/1", "M3->M4/0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("power cycle of 0x%02x: %v, want %v", blade, got, want)
	}
	for _, e := range hotSwapOf(evs, shelf.SourceSEL, blade) {
		if !e.HotSwap.FRUKnown || e.HotSwap.FRU != 0 {
			t.Errorf("%s: FRU %d known %v, want FRU 0", eventString(e), e.HotSwap.FRU, e.HotSwap.FRUKnown)
		}
	}
	out, err := sh.Ipmitool(ctx, "sel", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(strings.TrimSpace(out), "\n") + 1
	if lines != len(evs) {
		t.Errorf("follower read %d records, ipmitool sel list shows %d:\n%s%s", len(evs), lines, out, describe(evs))
	}
}

// TestSELClearMidRun clears the SEL while a blade power-cycles: the
// follower reports a possible gap, then every event logged after the
// clear once, and nothing from before it again.
func TestSELClearMidRun(t *testing.T) {
	sh, sess, local, _, ctx := labSession(t)
	blade := sh.Blades[0]
	to, _ := shelf.ControllerAddr(blade, 0, 0, local)
	f := &shelf.SELFollower{Conn: sess}
	c := newCollector()
	pollSEL(ctx, t, f, c, 0, "start-up events", func(evs []shelf.Event) bool {
		return hasSuffix(transitions(evs, blade), []string{"M3->M4/0"})
	})
	powerBlade(ctx, t, sh, sess, to, false)
	pollSEL(ctx, t, f, c, 0, "M6, M1", func(evs []shelf.Event) bool {
		return hasSuffix(transitions(evs, blade), []string{"M6->M1/0"})
	})
	n := len(c.snapshot())

	if err := ipmi.ClearSEL(ctx, sess, ipmi.Addr{}, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// One event right after the clear, before the follower looks again.
	if _, err := sh.Console(ctx, fmt.Sprintf("sensor_set_value 0x%02x 0 3 0xa0 1", sh.Blades[1])); err != nil {
		t.Fatal(err)
	}
	powerBlade(ctx, t, sh, sess, to, true)
	evs := pollSEL(ctx, t, f, c, 3, "M2, M3, M4 after the clear", func(evs []shelf.Event) bool {
		return hasSuffix(transitions(evs, blade), []string{"M3->M4/0"})
	})
	after := evs[n:]
	if len(after) == 0 || after[0].Kind != shelf.EventGap {
		t.Fatalf("after the clear: %s; want a possible-gap marker first", describe(after))
	}
	if got, want := transitions(after, blade), []string{"M1->M2/3", "M2->M3/1", "M3->M4/0"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the clear: %v, want %v", got, want)
	}
	// Everything after the marker is in the SEL now, once.
	out, err := sh.Ipmitool(ctx, "sel", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(strings.TrimSpace(out), "\n") + 1
	if lines != len(after)-1 {
		t.Errorf("after the clear the follower reported %d records, ipmitool lists %d:\n%s%s", len(after)-1, lines, out, describe(after))
	}
	seen := map[uint16]bool{}
	for _, e := range after[1:] {
		if e.Kind == shelf.EventGap {
			t.Errorf("second gap marker: %s", e.Gap.Reason)
		}
		if seen[e.RecordID] {
			t.Errorf("record 0x%04x reported twice", e.RecordID)
		}
		seen[e.RecordID] = true
	}
}

func thresholdEvents(evs []shelf.Event, src shelf.EventSource, gen, sensor uint8) []shelf.Event {
	var out []shelf.Event
	for _, e := range evs {
		if e.Source == src && e.Threshold != nil && e.GeneratorAddr() == gen && e.Sensor == sensor {
			out = append(out, e)
		}
	}
	return out
}

func thresholdStrings(evs []shelf.Event) []string {
	var out []string
	for _, e := range evs {
		d := "+"
		if e.Deassert {
			d = "-"
		}
		out = append(out, d+e.Threshold.Threshold.String())
	}
	return out
}

// TestThresholdCrossingHysteresis drives a blade's CPU temperature past its
// upper critical threshold, back inside the hysteresis band (no
// deassertion yet) and then beyond it, and checks the poller's crossing
// events against the events ipmi_sim logs in the SEL for the same moves.
func TestThresholdCrossingHysteresis(t *testing.T) {
	sh, sess, local, sensors, ctx := labSession(t)
	blade := sh.Blades[2]
	owner, _ := shelf.ControllerAddr(blade, 0, 0, local)
	var cpu shelf.Sensor
	for _, s := range sensors {
		if s.Owner == owner && s.Number == 2 {
			cpu = s
		}
	}
	if cpu.Record == nil || !cpu.Record.IsThreshold() {
		t.Fatalf("no threshold sensor #2 on 0x%02x", blade)
	}
	th, err := ipmi.GetSensorThresholds(ctx, sess, owner, cpu.Number)
	if err != nil {
		t.Fatal(err)
	}
	hy, err := ipmi.GetSensorHysteresis(ctx, sess, owner, cpu.Number)
	if err != nil {
		t.Fatal(err)
	}
	if !th.Has(ipmi.UpperCritical) || !th.Has(ipmi.UpperNonCritical) || hy.Positive < 2 || hy.Positive == 0xff {
		t.Fatalf("lab sensor lacks UNC/UC or a hysteresis of 2 or more: %+v %+v", th, hy)
	}
	uc, unc := th.Value[ipmi.UpperCritical], th.Value[ipmi.UpperNonCritical]
	above := uc + 2
	within := uc - hy.Positive + 1 // inside the band: UC stays asserted
	beyond := uc - hy.Positive - 1 // past the band: UC deasserts, UNC stays
	if beyond <= unc || uc > 250 {
		t.Fatalf("thresholds too close for the test: UNC %d UC %d hysteresis %d", unc, uc, hy.Positive)
	}

	polled, fromSEL := newCollector(), newCollector()
	p := shelf.NewPoller(sess, []shelf.Sensor{cpu}, shelf.PollConfig{Default: 300 * time.Millisecond}, polled, nil)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go p.Run(runCtx)
	f := &shelf.SELFollower{Conn: sess, SkipExisting: true}
	if _, err := f.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	sawRaw := func(raw uint8) {
		t.Helper()
		for {
			st, _ := p.Status(cpu.ID())
			if n := len(st.History); n > 0 && st.History[n-1].Raw == raw && st.Limits != nil {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("poller never read raw %d: %+v", raw, st)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	set := func(raw uint8) {
		t.Helper()
		if _, err := sh.Console(ctx, fmt.Sprintf("sensor_set_value 0x%02x 0 %d %d 1", blade, cpu.Number, raw)); err != nil {
			t.Fatal(err)
		}
	}
	sawRaw(func() uint8 { s, _ := ipmi.GetSensorReading(ctx, sess, owner, cpu.Number); return s.Raw }())

	set(above)
	polled.waitFor(ctx, t, "UNC and UC asserted", func(evs []shelf.Event) bool {
		return len(thresholdEvents(evs, shelf.SourcePoll, blade, cpu.Number)) >= 2
	})
	set(within)
	sawRaw(within)
	if got := thresholdStrings(thresholdEvents(polled.snapshot(), shelf.SourcePoll, blade, cpu.Number)); len(got) != 2 {
		t.Errorf("after reading %d (inside the hysteresis of UC %d): %v, want the two assertions only", within, uc, got)
	}
	pollSEL(ctx, t, f, fromSEL, 2, "SEL assertions", func(evs []shelf.Event) bool {
		return len(thresholdEvents(evs, shelf.SourceSEL, blade, cpu.Number)) >= 2
	})
	set(beyond)
	polled.waitFor(ctx, t, "UC deasserted", func(evs []shelf.Event) bool {
		return len(thresholdEvents(evs, shelf.SourcePoll, blade, cpu.Number)) >= 3
	})
	sawRaw(beyond)
	pollSEL(ctx, t, f, fromSEL, 2, "SEL deassertion", func(evs []shelf.Event) bool {
		return len(thresholdEvents(evs, shelf.SourceSEL, blade, cpu.Number)) >= 3
	})

	pe := thresholdEvents(polled.snapshot(), shelf.SourcePoll, blade, cpu.Number)
	se := thresholdEvents(fromSEL.snapshot(), shelf.SourceSEL, blade, cpu.Number)
	want := []string{"+" + ipmi.UpperNonCritical.String(), "+" + ipmi.UpperCritical.String(), "-" + ipmi.UpperCritical.String()}
	if got := thresholdStrings(pe); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("poller: %v, want %v", got, want)
	}
	if got := thresholdStrings(se); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ipmi_sim's SEL: %v, want %v", got, want)
	}
	if len(pe) == 3 && pe[2].Threshold.Reading != beyond {
		t.Errorf("UC deasserted at raw %d, want at %d (past the hysteresis)", pe[2].Threshold.Reading, beyond)
	}
	for i := range min(len(pe), len(se)) {
		// Same event data as the controller logs; with the SEL's time
		// stamp the poller's event has the SEL event's key.
		if pe[i].Data != se[i].Data {
			t.Errorf("event %d: polled data %x, SEL data %x", i, pe[i].Data, se[i].Data)
		}
		withTime := pe[i]
		withTime.RawTime = se[i].RawTime
		if withTime.Key() != se[i].Key() {
			t.Errorf("event %d: keys %s vs %s", i, withTime.Key(), se[i].Key())
		}
		want, _ := cpu.Record.Conv.Real(pe[i].Threshold.Reading)
		if !pe[i].Threshold.HasValue || pe[i].Threshold.Value != want {
			t.Errorf("event %d: value %v, want %v", i, pe[i].Threshold.Value, want)
		}
	}
}
