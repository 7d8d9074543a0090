package watchdog

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFeederStatus steps a clustered feeder with two devices (one that
// fails to feed at times) through health failures, a quorum loss that
// heals, and one that latches, with an injected clock, and checks the
// state it reports after every tick: what is withheld since when and why,
// since when quorum is lost, and each device's feeds, errors and last
// feed.
func TestFeederStatus(t *testing.T) {
	ctx := context.Background()
	clk := &clock{now: t0}
	good := &fakeDevice{name: "good"}
	flaky := &fakeDevice{name: "flaky"}
	var healthy, quorum bool
	var flakyErr error
	fences := 0
	f, err := NewFeeder(FeederConfig{
		Devices: []Device{good, &erringDevice{fakeDevice: flaky, err: &flakyErr}},
		Checks: []HealthCheck{CheckFunc{N: "loop", F: func(context.Context) error { return nil }}, CheckFunc{N: "api", F: func(context.Context) error {
			return map[bool]error{true: nil, false: errors.New("api stopped")}[healthy]
		}}},
		HasQuorum:      func() bool { return quorum },
		SelfFenceAfter: 10 * time.Second, Now: clk.Now, Logger: quiet(),
		OnSelfFence: func(context.Context, string) { fences++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Arm(ctx); err != nil {
		t.Fatal(err)
	}
	type want struct {
		feeding, fencing   bool
		reason             string // substring; "" when feeding
		withheldSince      time.Duration
		quorumLostSince    time.Duration
		goodFeeds, flakyOK uint64
		flakyErrors        uint64
		failing            []string
	}
	const none = -1
	steps := []struct {
		at              time.Duration
		healthy, quorum bool
		flakyFails      bool
		want            want
	}{
		{0, true, true, false, want{true, false, "", none, none, 1, 1, 0, nil}},
		{5 * time.Second, false, true, false, want{false, false, "health checks failing: api", 5 * time.Second, none, 1, 1, 0, []string{"api"}}},
		{10 * time.Second, false, true, false, want{false, false, "api", 5 * time.Second, none, 1, 1, 0, []string{"api"}}},
		{15 * time.Second, true, true, true, want{true, false, "", none, none, 2, 1, 1, nil}},
		{20 * time.Second, true, false, false, want{true, false, "", none, 20 * time.Second, 3, 2, 1, nil}},
		{25 * time.Second, true, true, false, want{true, false, "", none, none, 4, 3, 1, nil}},
		{30 * time.Second, true, false, false, want{true, false, "", none, 30 * time.Second, 5, 4, 1, nil}},
		{40 * time.Second, true, false, false, want{true, false, "", none, 30 * time.Second, 6, 5, 1, nil}},
		{41 * time.Second, true, false, false, want{false, true, "no quorum since", 41 * time.Second, 30 * time.Second, 6, 5, 1, nil}},
		{50 * time.Second, true, true, false, want{false, true, "self-fencing", 41 * time.Second, 30 * time.Second, 6, 5, 1, nil}},
	}
	for i, s := range steps {
		clk.now = t0.Add(s.at)
		healthy, quorum = s.healthy, s.quorum
		flakyErr = nil
		if s.flakyFails {
			flakyErr = errors.New("controller busy")
		}
		d, _ := f.Tick(ctx)
		st := f.Status()
		w := s.want
		at := func(d time.Duration) time.Time {
			if d == none {
				return time.Time{}
			}
			return t0.Add(d)
		}
		if d.Feed != w.feeding || st.Feeding != w.feeding || st.SelfFencing != w.fencing || !strings.Contains(st.Reason, w.reason) || (w.reason == "") != (st.Reason == "") {
			t.Fatalf("step %d: decision %+v status %+v, want feeding %v fencing %v reason ~%q", i, d, st, w.feeding, w.fencing, w.reason)
		}
		if !st.WithheldSince.Equal(at(w.withheldSince)) || !st.QuorumLostSince.Equal(at(w.quorumLostSince)) || !st.LastTick.Equal(clk.now) || !st.At.Equal(clk.now) {
			t.Fatalf("step %d: withheld since %v, quorum lost since %v, last tick %v; want %v %v %v", i, st.WithheldSince, st.QuorumLostSince, st.LastTick, at(w.withheldSince), at(w.quorumLostSince), clk.now)
		}
		if !st.Clustered || st.Stopped || len(st.Devices) != 2 || len(st.Checks) != 2 {
			t.Fatalf("step %d: %+v", i, st)
		}
		g, fl := st.Devices[0], st.Devices[1]
		if g.Name != "good" || g.Feeds != w.goodFeeds || !g.Armed || g.Fed != w.feeding || fl.Feeds != w.flakyOK || fl.Errors != w.flakyErrors || fl.Fed != (w.feeding && !s.flakyFails) {
			t.Fatalf("step %d: devices %+v, want good feeds %d, flaky feeds %d errors %d", i, st.Devices, w.goodFeeds, w.flakyOK, w.flakyErrors)
		}
		if w.feeding && !g.LastFeed.Equal(clk.now) {
			t.Fatalf("step %d: last feed %v, want %v", i, g.LastFeed, clk.now)
		}
		if w.flakyErrors > 0 && !strings.Contains(fl.LastError, "controller busy") {
			t.Fatalf("step %d: flaky's last error %q", i, fl.LastError)
		}
		var failing []string
		for _, c := range st.Checks {
			if c.Failing {
				failing = append(failing, c.Name)
				if c.Error == "" {
					t.Fatalf("step %d: check %s failing without an error", i, c.Name)
				}
			}
		}
		if !slices.Equal(failing, w.failing) {
			t.Fatalf("step %d: failing checks %v, want %v", i, failing, w.failing)
		}
	}
	if fences != 1 {
		t.Fatalf("OnSelfFence called %d times, want once", fences)
	}
	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	st := f.Status()
	if !st.Stopped || st.Feeding || !st.SelfFencing || !st.Devices[0].Armed || !st.WithheldSince.Equal(t0.Add(41*time.Second)) {
		t.Fatalf("after shutdown while self-fencing: %+v (devices must stay armed)", st)
	}
}

// erringDevice fails Feed with *err when it is set.
type erringDevice struct {
	*fakeDevice
	err *error
}

func (e *erringDevice) Feed(ctx context.Context) error {
	if *e.err != nil {
		return *e.err
	}
	return e.fakeDevice.Feed(ctx)
}

// TestFeederOnSelfFenceBeforeStop: the hook runs once, at the tick that
// decides, before that tick returns, and no device is fed from then on;
// a standalone feeder (no HasQuorum) never calls it.
func TestFeederOnSelfFenceBeforeStop(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		clustered bool
		wantCalls int
	}{
		{"clustered without quorum", true, 1},
		{"standalone", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{now: t0}
			dev := &fakeDevice{}
			var calls []int // feeds seen by the hook
			cfg := FeederConfig{Devices: []Device{dev}, SelfFenceAfter: 3 * time.Second, Now: clk.Now, Logger: quiet(),
				OnSelfFence: func(_ context.Context, reason string) {
					if !strings.Contains(reason, "self-fencing") {
						t.Errorf("reason %q", reason)
					}
					calls = append(calls, dev.feeds)
				}}
			if tc.clustered {
				cfg.HasQuorum = func() bool { return false }
			}
			f, err := NewFeeder(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Arm(ctx); err != nil {
				t.Fatal(err)
			}
			for range 10 {
				if _, err := f.Tick(ctx); err != nil {
					t.Fatal(err)
				}
				clk.now = clk.now.Add(time.Second)
			}
			if len(calls) != tc.wantCalls {
				t.Fatalf("hook called %d times, want %d", len(calls), tc.wantCalls)
			}
			if tc.clustered {
				// Fed at 0, 1, 2, 3 s (lost exactly SelfFenceAfter still
				// feeds), decided at 4 s; never fed again.
				if calls[0] != 4 || dev.feeds != 4 {
					t.Fatalf("fed %d times before the hook and %d in all, want 4 and 4", calls[0], dev.feeds)
				}
			} else if dev.feeds != 10 {
				t.Fatalf("standalone fed %d times, want 10", dev.feeds)
			}
		})
	}
}

// TestFeederHungCheck: a check that does not answer within CheckTimeout
// fails that round and is not started again while its call is still
// running; once it returns it is run again.
func TestFeederHungCheck(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	var mu sync.Mutex
	calls := 0
	hang := true
	dev := &fakeDevice{}
	f, err := NewFeeder(FeederConfig{Devices: []Device{dev}, CheckTimeout: 20 * time.Millisecond, Logger: quiet(),
		Checks: []HealthCheck{CheckFunc{N: "domain", F: func(context.Context) error {
			mu.Lock()
			calls++
			h := hang
			mu.Unlock()
			if h {
				<-release // ignores its context, as a deadlock would
			}
			return nil
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Arm(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		d, _ := f.Tick(ctx)
		if d.Feed || !slices.Equal(d.Failing, []string{"domain"}) {
			t.Fatalf("tick %d with a hung check: %+v", i, d)
		}
	}
	st := f.Status()
	if st.Checks[0].Error != "still running from an earlier round" || dev.feeds != 0 {
		t.Fatalf("status %+v, feeds %d", st.Checks, dev.feeds)
	}
	mu.Lock()
	if calls != 1 {
		t.Fatalf("hung check started %d times, want once", calls)
	}
	hang = false
	mu.Unlock()
	close(release)
	// The hung call returns in the background; the next rounds run the
	// check again and feed once it passes.
	for i := 0; ; i++ {
		d, _ := f.Tick(ctx)
		if d.Feed {
			break
		}
		if i > 1000 {
			t.Fatal("never fed after the check answered again")
		}
		time.Sleep(time.Millisecond)
	}
	if dev.feeds != 1 {
		t.Fatalf("feeds %d", dev.feeds)
	}
}

func TestNewFeederRefusesDuplicateDevices(t *testing.T) {
	if _, err := NewFeeder(FeederConfig{Devices: []Device{&fakeDevice{name: "a"}, &fakeDevice{name: "a"}}}); err == nil {
		t.Fatal("two devices with one name accepted")
	}
	if _, err := NewFeeder(FeederConfig{}); err == nil {
		t.Fatal("a feeder without devices accepted")
	}
}

// blockingDevice's Feed waits for release after telling entered.
type blockingDevice struct {
	fakeDevice
	entered, release chan struct{}
}

func (b *blockingDevice) Feed(ctx context.Context) error {
	b.entered <- struct{}{}
	<-b.release
	return b.fakeDevice.Feed(ctx)
}

// TestFeederStatusDuringSlowFeed: Status answers while a device is being
// fed (a controller behind a slow shelf manager), and Shutdown's disarm
// waits until that feed is over, so no feed follows a disarm.
func TestFeederStatusDuringSlowFeed(t *testing.T) {
	ctx := context.Background()
	dev := &blockingDevice{entered: make(chan struct{}), release: make(chan struct{})}
	f, err := NewFeeder(FeederConfig{Devices: []Device{dev}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Arm(ctx); err != nil {
		t.Fatal(err)
	}
	ticked := make(chan error, 1)
	go func() { _, err := f.Tick(ctx); ticked <- err }()
	<-dev.entered
	if st := f.Status(); !st.Devices[0].Armed || st.Devices[0].Feeds != 0 {
		t.Fatalf("status during the feed: %+v", st.Devices)
	}
	shut := make(chan error, 1)
	go func() { shut <- f.Shutdown(ctx) }()
	close(dev.release)
	if err := <-ticked; err != nil {
		t.Fatal(err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	dev.mu.Lock()
	defer dev.mu.Unlock()
	if dev.feeds != 1 || dev.disarms != 1 {
		t.Fatalf("feeds %d disarms %d, want 1 and 1", dev.feeds, dev.disarms)
	}
	if st := f.Status(); st.Devices[0].Armed || st.Devices[0].Feeds != 1 || !st.Stopped {
		t.Fatalf("status after shutdown: %+v", st)
	}
}
