package watchdog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
	"hpiagent/shelf/sim"
)

func smsExpired(w ipmi.Watchdog) bool { return w.ExpirationFlags&(1<<uint(ipmi.WatchdogUseSMSOS)) != 0 }

// TestIPMIWatchdogOnIPMISim arms the BMC watchdog of an ipmi_sim shelf
// manager, feeds it through the Feeder while healthy (it must not expire),
// then lets the health check fail: the timer runs out.
func TestIPMIWatchdogOnIPMISim(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if testing.Short() {
		t.Skip("needs ipmi_sim (-short)")
	}
	sh := labshelf.Start(t)
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	// ipmi_sim runs no timer without an expiry action, and accepts hard
	// reset only with a VM connected; its shelf manager has power control
	// (a payload process), so the action is power down, and the expiry is
	// seen acting: the chassis power goes off.
	if st, err := ipmi.GetChassisStatus(ctx, sess, ipmi.Addr{}); err != nil || !st.PowerOn {
		t.Fatalf("shelf manager power before: %+v %v", st, err)
	}
	//
	// ipmi_sim 2.0.33 does not restart a pending countdown on Reset
	// Watchdog Timer (its timer start fails while one is pending, and the
	// error is ignored): the first countdown expires however often it is
	// reset. So here only arming, expiry and its action are checked; the
	// embedded shelf test checks that feeds keep the timer from expiring.
	testWatchdogCycle(ctx, t, sess, ipmi.Addr{}, ipmi.WatchdogPowerDown, false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := ipmi.GetChassisStatus(ctx, sess, ipmi.Addr{})
		if err == nil && !st.PowerOn {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watchdog expiry did not power down: %+v %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestIPMIWatchdogOnEmbeddedShelf does the same against the embedded
// shelf, whose Get Watchdog Timer reports the present countdown (ipmi_sim
// 2.0.33 leaves it out): the countdown is seen moving back up at each feed.
func TestIPMIWatchdogOnEmbeddedShelf(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := sim.DefaultConfig()
	srv, err := sim.Start(ctx, cfg, "127.0.0.1:0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	u := cfg.Users[0]
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: srv.Addr().String(), Username: u.Name, Password: []byte(u.Password), CipherSuites: []int{17}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	testWatchdogCycle(ctx, t, sess, ipmi.Addr{}, ipmi.WatchdogNoAction, true)
}

func testWatchdogCycle(ctx context.Context, t *testing.T, c ipmi.Conn, to ipmi.Addr, action ipmi.WatchdogAction, resetsRestart bool) {
	t.Helper()
	const timeout = 2 * time.Second
	dev, err := NewIPMI(IPMIConfig{Conn: c, Addr: to, Timeout: timeout, PreTimeout: PreTimeoutMsg, PreInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dev.cfg.Action = action // the tests keep the shelf manager alive
	var healthy atomic.Bool
	healthy.Store(true)
	f, err := NewFeeder(FeederConfig{Devices: []Device{dev}, Logger: quiet(), Interval: 300 * time.Millisecond,
		Checks: []HealthCheck{CheckFunc{N: "test", F: func(context.Context) error {
			if healthy.Load() {
				return nil
			}
			return errors.New("unhealthy")
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Arm(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := ipmi.GetWatchdog(ctx, c, to)
	if err != nil {
		t.Fatal(err)
	}
	// ipmi_sim 2.0.33 reports neither the running state nor the present
	// countdown (it echoes the "don't stop" bit it was sent); there only
	// the expiry flag and the expiry action tell whether the timer runs.
	full := w.PresentKnown
	if (full && !w.Running) || w.Use != ipmi.WatchdogUseSMSOS || w.Initial != timeout || smsExpired(w) ||
		w.Action != action || w.PreTimeout != uint8(PreTimeoutMsg) || w.PreInterval != 1 {
		t.Fatalf("after arm: %+v", w)
	}
	// Fed for longer than the timeout: it never expires, and a present
	// countdown (where reported) goes back up after each feed.
	var minSeen time.Duration = timeout
	end := time.Now().Add(2 * timeout)
	if !resetsRestart {
		end = time.Now().Add(timeout / 2)
	}
	for time.Now().Before(end) {
		if _, err := f.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
		w, err := ipmi.GetWatchdog(ctx, c, to)
		if err != nil {
			t.Fatal(err)
		}
		if (full && !w.Running) || smsExpired(w) {
			t.Fatalf("watchdog expired while fed: %+v", w)
		}
		if w.PresentKnown {
			minSeen = min(minSeen, w.Present)
			if w.Present < timeout/2 {
				t.Fatalf("present countdown %s soon after a feed", w.Present)
			}
		}
		time.Sleep(150 * time.Millisecond)
	}
	// Health fails: no more feeds; the countdown runs out.
	healthy.Store(false)
	if d, _ := f.Tick(ctx); d.Feed {
		t.Fatal("fed while unhealthy")
	}
	var last ipmi.Watchdog
	deadline := time.Now().Add(timeout + 3*time.Second)
	prev := timeout
	for {
		if _, err := f.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		last, err = ipmi.GetWatchdog(ctx, c, to)
		if err != nil {
			t.Fatal(err)
		}
		if last.PresentKnown && last.Running {
			if last.Present > prev {
				t.Fatalf("countdown went up without a feed: %s after %s", last.Present, prev)
			}
			prev = last.Present
		}
		if (!full || !last.Running) && smsExpired(last) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watchdog did not expire without feeding: %+v", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A clean shutdown disarms: the timer is stopped and stays so.
	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if w, err := ipmi.GetWatchdog(ctx, c, to); err != nil || (full && w.Running) || w.Action != ipmi.WatchdogNoAction {
		t.Fatalf("after shutdown: %+v %v", w, err)
	}
}

// TestDevWatchdogProtocol checks the kernel watchdog protocol on a plain
// file standing in for /dev/watchdog (this kernel has no softdog module):
// each feed writes a keep-alive byte, a clean shutdown writes the magic
// "V" and closes; a self-fencing node never writes "V".
func TestDevWatchdogProtocol(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		quorum []bool
		want   string
	}{
		{"clean shutdown", []bool{true, true, true}, "111V"},
		{"self-fencing leaves it armed", []bool{true, false, false}, "11"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "watchdog")
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			dev, err := NewDev(DevConfig{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			clk := &clock{now: t0}
			i := 0
			f, _ := NewFeeder(FeederConfig{Devices: []Device{dev}, Logger: quiet(), Now: clk.Now, SelfFenceAfter: time.Second,
				HasQuorum: func() bool { return tc.quorum[i] }})
			if err := f.Arm(ctx); err != nil {
				t.Fatal(err)
			}
			for i = range tc.quorum {
				if _, err := f.Tick(ctx); err != nil {
					t.Fatal(err)
				}
				clk.now = clk.now.Add(2 * time.Second)
			}
			if err := f.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			_ = dev.Release()
			b, _ := os.ReadFile(path)
			if string(b) != tc.want {
				t.Fatalf("device saw %q, want %q", b, tc.want)
			}
		})
	}
	// Setting a timeout on something that is not a watchdog fails plainly.
	path := filepath.Join(t.TempDir(), "notadog")
	_ = os.WriteFile(path, nil, 0o600)
	dev, _ := NewDev(DevConfig{Path: path, Timeout: 30 * time.Second})
	if err := dev.Arm(ctx); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("arming a non-watchdog with a timeout: %v", err)
	}
	if _, err := NewDev(DevConfig{Timeout: 1500 * time.Millisecond}); err == nil {
		t.Fatal("fractional timeout accepted")
	}
}

// TestSystemdNotify receives the sd_notify datagrams on a real unixgram
// socket, as systemd does: the device sends through the Notifier it is
// given, so its pings come from the same socket as the Notifier's own
// messages.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, abstract := range []bool{false, true} {
		name, conn := listenNotify(t, abstract)
		n, err := NewNotifier(name)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		s, err := NewSystemd(SystemdConfig{Notifier: n, Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if s.Timeout() != 30*time.Second {
			t.Errorf("timeout %s", s.Timeout())
		}
		if err := n.Notify(ctx, "READY=1"); err != nil {
			t.Fatal(err)
		}
		f, _ := NewFeeder(FeederConfig{Devices: []Device{s}, Logger: quiet()})
		if err := f.Arm(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if err := f.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		got, from := readAll(t, conn, 4)
		if strings.Join(got, ",") != "READY=1,WATCHDOG=1,WATCHDOG=1,STOPPING=1" {
			t.Fatalf("abstract=%v: systemd got %q", abstract, got)
		}
		if len(from) != 1 {
			t.Fatalf("abstract=%v: datagrams from %d senders %v, want one", abstract, len(from), from)
		}
	}
	disabled, _ := NewNotifier("")
	for _, cfg := range []SystemdConfig{{}, {Notifier: disabled}} {
		if _, err := NewSystemd(cfg); !errors.Is(err, ErrNoSystemdWatchdog) {
			t.Errorf("NewSystemd(%+v): %v, want ErrNoSystemdWatchdog", cfg, err)
		}
	}
}

// TestSelfFenceOnQuorumLossEmbeddedShelf: a healthy node that loses
// quorum keeps feeding for SelfFenceAfter, then stops for good (even when
// quorum comes back) and the BMC watchdog expires; Shutdown leaves it
// armed.
func TestSelfFenceOnQuorumLossEmbeddedShelf(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := sim.DefaultConfig()
	srv, err := sim.Start(ctx, cfg, "127.0.0.1:0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	u := cfg.Users[0]
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: srv.Addr().String(), Username: u.Name, Password: []byte(u.Password), CipherSuites: []int{17}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	dev, err := NewIPMI(IPMIConfig{Conn: sess, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dev.cfg.Action = ipmi.WatchdogNoAction // keep the shelf manager up
	var quorum atomic.Bool
	quorum.Store(true)
	cd := &countingDevice{Device: dev}
	f, _ := NewFeeder(FeederConfig{Devices: []Device{cd}, Logger: quiet(), SelfFenceAfter: 1500 * time.Millisecond, HasQuorum: quorum.Load})
	if err := f.Arm(ctx); err != nil {
		t.Fatal(err)
	}
	tick := func() Decision {
		d, err := f.Tick(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	tick()
	quorum.Store(false)
	lost := time.Now()
	for time.Since(lost) < time.Second {
		if d := tick(); !d.Feed {
			t.Fatalf("stopped feeding %s after quorum loss: %+v", time.Since(lost), d)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if d := tick(); d.Feed || !d.SelfFencing {
		t.Fatalf("still feeding %s after quorum loss: %+v", time.Since(lost), d)
	}
	quorum.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if d := tick(); d.Feed {
			t.Fatal("feeding resumed after self-fencing started")
		}
		w, err := ipmi.GetWatchdog(ctx, sess, ipmi.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		if smsExpired(w) && !w.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watchdog never expired: %+v", w)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if cd.disarms.Load() != 0 {
		t.Fatal("shutdown disarmed the watchdog of a self-fencing node")
	}
	if st := f.Status(); !st.SelfFencing || st.Feeding {
		t.Fatalf("status %+v", st)
	}
}

type countingDevice struct {
	Device
	disarms atomic.Int32
}

func (c *countingDevice) Disarm(ctx context.Context) error {
	c.disarms.Add(1)
	return c.Device.Disarm(ctx)
}

// TestIPMIWatchdogRearmsAfterBMCRestart: a BMC that restarted has lost the
// timer's settings and answers Reset Watchdog Timer with 0x80; the next
// feed sets the timer up again.
func TestIPMIWatchdogRearmsAfterBMCRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if testing.Short() {
		t.Skip("needs ipmi_sim (-short)")
	}
	sh := labshelf.Start(t)
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}, ReconnectMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	const timeout = 100 * time.Second // never expires during the test
	dev, err := NewIPMI(IPMIConfig{Conn: sess, Timeout: timeout, Action: ipmi.WatchdogPowerDown})
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Arm(ctx); err != nil {
		t.Fatal(err)
	}
	sh.Restart(t)
	// The restarted BMC knows nothing of the timer (read once the session
	// is back).
	var w ipmi.Watchdog
	deadline := time.Now().Add(30 * time.Second)
	for {
		w, err = ipmi.GetWatchdog(ctx, sess, ipmi.Addr{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session not back after BMC restart: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if w.Initial == timeout && w.Action == ipmi.WatchdogPowerDown {
		t.Fatalf("restarted BMC still has the timer settings: %+v", w)
	}
	if err := ipmi.ResetWatchdog(ctx, sess, ipmi.Addr{}); err == nil {
		t.Fatal("restarted BMC accepted Reset Watchdog Timer without settings")
	}
	if err := dev.Feed(ctx); err != nil {
		t.Fatalf("feed after BMC restart: %v", err)
	}
	w, err = ipmi.GetWatchdog(ctx, sess, ipmi.Addr{})
	if err != nil || w.Initial != timeout || w.Action != ipmi.WatchdogPowerDown || w.Use != ipmi.WatchdogUseSMSOS {
		t.Fatalf("after feed: %+v %v", w, err)
	}
	if err := dev.Disarm(ctx); err != nil {
		t.Fatal(err)
	}
}
