package watchdog

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestDeciderTable(t *testing.T) {
	type obs struct {
		at      time.Duration
		failing []string
		quorum  bool
		feed    bool
		fencing bool
	}
	tests := []struct {
		name string
		obs  []obs
	}{
		{"healthy with quorum feeds", []obs{{0, nil, true, true, false}, {time.Hour, nil, true, true, false}}},
		{"health failure stops feeding, recovery resumes", []obs{
			{0, nil, true, true, false}, {5 * time.Second, []string{"shelf"}, true, false, false}, {10 * time.Second, nil, true, true, false}}},
		{"short quorum loss tolerated", []obs{
			{0, nil, false, true, false}, {10 * time.Second, nil, false, true, false}, {11 * time.Second, nil, true, true, false},
			{12 * time.Second, nil, false, true, false}, {22 * time.Second, nil, false, true, false}}},
		{"quorum lost exactly SelfFenceAfter still feeds", []obs{{0, nil, false, true, false}, {10 * time.Second, nil, false, true, false}}},
		{"long quorum loss latches", []obs{
			{0, nil, false, true, false}, {10*time.Second + 1, nil, false, false, true},
			{11 * time.Second, nil, true, false, true}, {time.Hour, nil, true, false, true}}},
		{"latch even when health fails too", []obs{{0, []string{"x"}, false, false, false}, {11 * time.Second, []string{"x"}, false, false, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecider(10 * time.Second)
			for i, o := range tc.obs {
				got := d.Decide(t0.Add(o.at), o.failing, o.quorum)
				if got.Feed != o.feed || got.SelfFencing != o.fencing {
					t.Fatalf("obs %d: %+v, want feed=%v fencing=%v", i, got, o.feed, o.fencing)
				}
				if !got.Feed && got.Reason == "" {
					t.Fatalf("obs %d: no reason for not feeding", i)
				}
			}
		})
	}
}

// TestDeciderProperties checks random observation sequences against the
// rules: never feed with a failing check; never feed once quorum has been
// lost continuously for more than SelfFenceAfter, and never again after
// that; otherwise always feed.
func TestDeciderProperties(t *testing.T) {
	const after = 7 * time.Second
	for seed := uint64(1); seed <= 500; seed++ {
		r := rand.New(rand.NewPCG(seed, 1))
		d := NewDecider(after)
		now := t0
		var lostSince time.Time
		latched := false
		for i := 0; i < 200; i++ {
			now = now.Add(time.Duration(r.IntN(4000)) * time.Millisecond)
			quorum := r.IntN(5) != 0
			if r.IntN(3) == 0 {
				quorum = !quorum && r.IntN(2) == 0
			}
			var failing []string
			if r.IntN(6) == 0 {
				failing = []string{"check"}
			}
			if quorum {
				lostSince = time.Time{}
			} else if lostSince.IsZero() {
				lostSince = now
			}
			if !quorum && now.Sub(lostSince) > after {
				latched = true
			}
			got := d.Decide(now, failing, quorum)
			want := !latched && len(failing) == 0
			if got.Feed != want || got.SelfFencing != latched {
				t.Fatalf("seed %d step %d: got %+v, want feed=%v latched=%v", seed, i, got, want, latched)
			}
		}
	}
}

// fakeDevice records what the Feeder did to it (unit tests of the loop).
type fakeDevice struct {
	mu                   sync.Mutex
	name                 string
	arms, feeds, disarms int
	failFeed             error
	failArms             int // the first failArms calls of Arm fail
}

func (f *fakeDevice) Name() string {
	if f.name != "" {
		return f.name
	}
	return "fake"
}
func (f *fakeDevice) Arm(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.arms++
	if f.arms <= f.failArms {
		return errors.New("controller not reachable")
	}
	return nil
}
func (f *fakeDevice) Feed(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.feeds++
	return f.failFeed
}
func (f *fakeDevice) Disarm(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.disarms++
	return nil
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestFeederTickAndShutdown(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		healthy     []bool
		quorum      []bool
		wantFeeds   int
		wantDisarms int
	}{
		{"healthy", []bool{true, true, true}, []bool{true, true, true}, 3, 1},
		{"health fails in the middle", []bool{true, false, true}, []bool{true, true, true}, 2, 1},
		{"quorum lost too long: no feed, stays armed", []bool{true, true, true, true}, []bool{true, false, false, true}, 2, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{now: t0}
			dev := &fakeDevice{}
			i := 0
			f, err := NewFeeder(FeederConfig{
				Devices: []Device{dev},
				Checks: []HealthCheck{CheckFunc{N: "h", F: func(context.Context) error {
					if tc.healthy[i] {
						return nil
					}
					return errors.New("down")
				}}},
				HasQuorum:      func() bool { return tc.quorum[i] },
				SelfFenceAfter: 5 * time.Second, Now: clk.Now, Logger: quiet(),
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Arm(ctx); err != nil {
				t.Fatal(err)
			}
			for i = range tc.healthy {
				if _, err := f.Tick(ctx); err != nil {
					t.Fatal(err)
				}
				clk.now = clk.now.Add(6 * time.Second)
			}
			if err := f.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if dev.feeds != tc.wantFeeds || dev.disarms != tc.wantDisarms || dev.arms != 1 {
				t.Fatalf("arms %d feeds %d disarms %d, want 1 %d %d", dev.arms, dev.feeds, dev.disarms, tc.wantFeeds, tc.wantDisarms)
			}
			if _, err := f.Tick(ctx); err != nil || dev.feeds != tc.wantFeeds {
				t.Fatalf("fed after shutdown")
			}
		})
	}
}

func TestFeederReportsDeviceErrors(t *testing.T) {
	dev := &fakeDevice{failFeed: errors.New("bmc gone")}
	f, _ := NewFeeder(FeederConfig{Devices: []Device{dev}, Logger: quiet()})
	_ = f.Arm(context.Background())
	if _, err := f.Tick(context.Background()); err == nil {
		t.Fatal("device error not reported")
	}
}

func TestHeartbeat(t *testing.T) {
	clk := &clock{now: t0}
	h := &Heartbeat{N: "loop", MaxAge: 3 * time.Second, Now: clk.Now}
	steps := []struct {
		beat    bool
		advance time.Duration
		ok      bool
	}{
		{false, 0, false}, // never beat
		{true, 0, true},
		{false, 3 * time.Second, true},
		{false, time.Millisecond, false},
		{true, 0, true},
	}
	for i, s := range steps {
		clk.now = clk.now.Add(s.advance)
		if s.beat {
			h.Beat()
		}
		if err := h.Check(context.Background()); (err == nil) != s.ok {
			t.Fatalf("step %d: %v, want ok=%v", i, err, s.ok)
		}
	}
}

// TestFeederArmRetries: a device that fails to arm (its controller not
// reachable yet) does not keep the others from being armed and fed; it is
// armed again at each feed, only while feeding is allowed, and a feeder
// that was shut down never arms anything again.
func TestFeederArmRetries(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		failArms    int
		healthy     []bool
		wantArms    int // calls of the failing device's Arm
		wantFeeds   int // feeds of the failing device
		wantUnarmed bool
	}{
		{"armed at the first feed", 1, []bool{true, true, true}, 2, 2, false},
		{"armed at the third feed", 3, []bool{true, true, true, true}, 4, 1, false},
		{"never armed while unhealthy", 1, []bool{false, false, false}, 1, 0, true},
		{"armed once healthy again", 1, []bool{false, true, true}, 2, 1, false},
		{"never reachable", 100, []bool{true, true, true}, 4, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			good := &fakeDevice{name: "good"}
			bad := &fakeDevice{name: "bad", failArms: tc.failArms}
			i := 0
			f, err := NewFeeder(FeederConfig{Devices: []Device{bad, good}, Logger: quiet(),
				Checks: []HealthCheck{CheckFunc{N: "h", F: func(context.Context) error {
					if tc.healthy[i] {
						return nil
					}
					return errors.New("down")
				}}}})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Arm(ctx); err == nil || !strings.Contains(err.Error(), "arming watchdog bad") {
				t.Fatalf("arm error %v, want one naming the failed device", err)
			}
			if st := f.Status(); !slices.Equal(st.Unarmed, []string{"bad"}) {
				t.Fatalf("status after a failed arm: %+v", st)
			}
			for i = range tc.healthy {
				_, err := f.Tick(ctx)
				if tc.healthy[i] && (err != nil) != (bad.arms <= tc.failArms) {
					t.Fatalf("tick %d: error %v with %d arm calls", i, err, bad.arms)
				}
			}
			healthyTicks := 0
			for _, h := range tc.healthy {
				if h {
					healthyTicks++
				}
			}
			if bad.arms != tc.wantArms || bad.feeds != tc.wantFeeds || good.arms != 1 || good.feeds != healthyTicks {
				t.Fatalf("bad: arms %d feeds %d (want %d %d); good: arms %d feeds %d (want 1 %d)",
					bad.arms, bad.feeds, tc.wantArms, tc.wantFeeds, good.arms, good.feeds, healthyTicks)
			}
			if st := f.Status(); (len(st.Unarmed) != 0) != tc.wantUnarmed {
				t.Fatalf("status %+v, want unarmed %v", st, tc.wantUnarmed)
			}
			if err := f.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			wantBadDisarms := 1
			if tc.wantUnarmed {
				wantBadDisarms = 0
			}
			if good.disarms != 1 || bad.disarms != wantBadDisarms {
				t.Fatalf("disarms good %d bad %d, want 1 %d", good.disarms, bad.disarms, wantBadDisarms)
			}
			arms := bad.arms + good.arms
			if err := f.Arm(ctx); !errors.Is(err, ErrStopped) {
				t.Fatalf("arm after shutdown: %v", err)
			}
			if _, err := f.Tick(ctx); err != nil || bad.arms+good.arms != arms {
				t.Fatalf("armed after shutdown (%v)", err)
			}
			if err := f.Run(ctx); !errors.Is(err, ErrStopped) {
				t.Fatalf("run after shutdown: %v", err)
			}
		})
	}
}
