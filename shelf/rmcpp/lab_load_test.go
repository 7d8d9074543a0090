package rmcpp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
	"hpiagent/shelf/ipmi"
)

// stressDuration is RMCPP_STRESS_DURATION (a Go duration), or 10 s when
// CI is set, or 2 s.
func stressDuration(t testing.TB) time.Duration {
	if v := os.Getenv("RMCPP_STRESS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("RMCPP_STRESS_DURATION: %v", err)
		}
		return d
	}
	if os.Getenv("CI") != "" {
		return 10 * time.Second
	}
	return 2 * time.Second
}

func TestLabConcurrentMixed(t *testing.T) {
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := dial(t, labConfig(t, sh))

	// Reference answers, read once per target (read-only commands whose
	// answers do not change while the shelf runs).
	targets := []ipmi.Addr{{}, {Slave: 0x82}, {Slave: 0x84}, {Slave: 0x86}, {Slave: 0x88}}
	reqs := []ipmi.Request{getDeviceID, picmgProps}
	want := map[string][]byte{}
	key := func(to ipmi.Addr, r ipmi.Request) string { return fmt.Sprintf("%v/%v", to, r) }
	for _, to := range targets {
		for _, r := range reqs {
			d, err := ipmi.Do(ctx, s, to, r)
			if err != nil {
				t.Fatalf("reference %s: %v", key(to, r), err)
			}
			want[key(to, r)] = d
		}
	}
	d := stressDuration(t)
	end := time.Now().Add(d)
	var n, bad atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				to := targets[(g+i)%len(targets)]
				r := reqs[(g/2+i)%len(reqs)]
				got, err := ipmi.Do(ctx, s, to, r)
				n.Add(1)
				if err != nil || !bytes.Equal(got, want[key(to, r)]) {
					if bad.Add(1) <= 5 {
						t.Errorf("%s: % x, %v", key(to, r), got, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	t.Logf("%d requests in %v by 32 goroutines; stats %+v", n.Load(), d, st)
	if bad.Load() > 0 {
		t.Fatalf("%d of %d requests failed", bad.Load(), n.Load())
	}
	// The session is not wedged.
	if _, err := ipmi.Do(ctx, s, ipmi.Addr{Slave: 0x82}, getDeviceID); err != nil {
		t.Fatalf("after the load: %v", err)
	}
}

func TestLabRestart(t *testing.T) {
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := labConfig(t, sh)
	cfg.RequestTimeout = 300 * time.Millisecond
	cfg.ReconnectMin = 100 * time.Millisecond
	cfg.ReconnectMax = time.Second
	s := dial(t, cfg)
	if _, err := ipmi.Do(ctx, s, ipmi.Addr{}, getDeviceID); err != nil {
		t.Fatal(err)
	}
	sh.Restart(t)
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	if _, err := ipmi.Do(rctx, s, ipmi.Addr{}, getDeviceID); err != nil {
		t.Fatalf("first request after restart: %v (stats %+v)", err, s.Stats())
	}
	if _, err := ipmi.Do(rctx, s, ipmi.Addr{Slave: 0x84}, picmgProps); err != nil {
		t.Fatalf("bridged request after restart: %v", err)
	}
	if st := s.Stats(); st.Reconnects < 1 {
		t.Fatalf("no reconnect counted: %+v", st)
	}
}

func TestLabCloseCancelsInFlight(t *testing.T) {
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := runtime.NumGoroutine()
	px := startProxy(t, sh.Addr())
	cfg := labConfig(t, sh)
	cfg.Addr = px.Addr()
	s, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Swallow every answer so requests stay in flight.
	px.setToClient(func(b []byte) [][]byte {
		if isSessionIPMI(b) {
			return nil
		}
		return [][]byte{b}
	})
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := s.Exchange(ctx, ipmi.Addr{Slave: 0x82}, getDeviceID)
			errs <- err
		}()
	}
	// A window's worth is in flight, the others wait to be taken.
	waitFor(t, func() bool { return s.Stats().Sent >= uint64(DefaultConfig(cfg).Window) })
	s.Close()
	s.Close() // idempotent
	for range 8 {
		if err := <-errs; !errors.Is(err, ipmi.ErrClosed) {
			t.Fatalf("in-flight request ended with %v, want ipmi.ErrClosed", err)
		}
	}
	if _, err := s.Exchange(ctx, ipmi.Addr{}, getDeviceID); !errors.Is(err, ipmi.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	// No goroutine of the session is left (the proxy's are stopped by
	// its cleanup, so allow for them).
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base+2 {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines, %d before Dial:\n%s", g, base, buf[:runtime.Stack(buf, true)])
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
