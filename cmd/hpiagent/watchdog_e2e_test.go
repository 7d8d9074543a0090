package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
	"hpiagent/shelf/sim"
)

// watchdogAgentConfig writes the configuration of a standalone agent (no
// cluster section) with one shelf and the given watchdog section, and
// returns its path.
func watchdogAgentConfig(t *testing.T, dir, shelfAddr, user, password string, suite int, watchdogYAML string) string {
	t.Helper()
	pw := filepath.Join(dir, "shelf.password")
	writeSecret(t, pw, []byte(password))
	cfg := fmt.Sprintf(`log_level: info
log_format: json
shelves:
  - name: lab
    address: %q
    username: %s
    password: {file: %s}
    cipher_suites: [%d]
audit:
  path: %s
monitor:
  poll_interval: 2s
%s`, shelfAddr, user, pw, suite, filepath.Join(dir, "audit.log"), watchdogYAML)
	path := filepath.Join(dir, "hpiagent.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// wdExpired reports whether the SMS/OS use of the watchdog has expired.
func wdExpired(w ipmi.Watchdog) bool { return w.ExpirationFlags&(1<<uint(ipmi.WatchdogUseSMSOS)) != 0 }

// stopAgent sends sig to the agent and waits until it has exited.
func stopAgent(t *testing.T, ag *clusterAgent, sig syscall.Signal) {
	t.Helper()
	if err := ag.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ag.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("agent did not exit within 15 s of %v\n%s", sig, ag.tail(30))
	}
}

// TestWatchdogIPMIEmbeddedShelf runs the agent binary with an ipmi
// watchdog fed through its session to the embedded shelf, whose Get
// Watchdog Timer reports the running state and the present countdown:
// while the agent is healthy the timer runs and is fed (fed for twice its
// timeout, it never expires and its countdown keeps going back up); a
// clean stop (SIGTERM) disarms it and the shelf stays powered past the
// timeout; an agent killed with SIGKILL leaves it running, the countdown
// runs out and the controller powers the chassis down.
func TestWatchdogIPMIEmbeddedShelf(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	t.Parallel()
	bin := buildBinary(t, t.TempDir(), "./cmd/hpiagent")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	scfg := sim.DefaultConfig()
	srv, err := sim.Start(ctx, scfg, "127.0.0.1:0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var admin sim.User
	for _, u := range scfg.Users {
		if u.MaxPrivilege == rmcpp.PrivilegeAdministrator {
			admin = u
		}
	}
	const timeout = 3 * time.Second
	dir := t.TempDir()
	path := watchdogAgentConfig(t, dir, srv.Addr().String(), admin.Name, admin.Password, 17, `watchdog:
  interval: 500ms
  devices:
    - {type: ipmi, shelf: lab, ipmb: 0x20, timeout: 3s, action: power-down, pre_timeout: msg-interrupt, pre_timeout_interval: 1s}
`)
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: srv.Addr().String(), Username: admin.Name, Password: []byte(admin.Password), CipherSuites: []int{17}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	get := func() ipmi.Watchdog {
		t.Helper()
		w, err := ipmi.GetWatchdog(ctx, sess, ipmi.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		if !w.PresentKnown {
			t.Fatalf("the embedded shelf left out the present countdown: %+v", w)
		}
		return w
	}
	power := func() bool {
		t.Helper()
		st, err := ipmi.GetChassisStatus(ctx, sess, ipmi.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		return st.PowerOn
	}
	armed := func(w ipmi.Watchdog) bool {
		return w.Running && w.Use == ipmi.WatchdogUseSMSOS && w.Action == ipmi.WatchdogPowerDown && w.Initial == timeout &&
			w.PreTimeout == 3 && w.PreInterval == 1
	}
	lab := &clusterLab{t: t, bin: bin}
	start := func() *clusterAgent {
		ag := &clusterAgent{name: "agent", config: path}
		lab.agents = []*clusterAgent{ag}
		lab.start(ag)
		lab.waitFor("the agent to arm the shelf's watchdog", 20*time.Second, func() bool { return armed(get()) })
		return ag
	}
	if w := get(); w.Running || wdExpired(w) {
		t.Fatalf("watchdog before the agent: %+v", w)
	}

	// Healthy: fed, never expires.
	ag := start()
	end := time.Now().Add(2 * timeout)
	for time.Now().Before(end) {
		w := get()
		if !armed(w) || wdExpired(w) {
			t.Fatalf("watchdog not running while the agent is healthy: %+v\n%s", w, ag.tail(20))
		}
		// Fed every 500 ms: the countdown never gets near its end.
		if w.Present < timeout/2 {
			t.Fatalf("present countdown %s: not fed\n%s", w.Present, ag.tail(20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(ag.records("watchdog armed")) != 1 {
		t.Fatalf("armed %d times\n%s", len(ag.records("watchdog armed")), ag.tail(20))
	}

	// Clean stop: disarmed, and the shelf stays powered past the timeout.
	stopAgent(t, ag, syscall.SIGTERM)
	if w := get(); w.Running || w.Action != ipmi.WatchdogNoAction {
		t.Fatalf("watchdog after SIGTERM: %+v\n%s", w, ag.tail(20))
	}
	time.Sleep(timeout + time.Second)
	if w := get(); w.Running || wdExpired(w) || !power() {
		t.Fatalf("after a clean stop: watchdog %+v, power on %v", w, power())
	}
	if len(ag.records("watchdog disarmed")) != 1 {
		t.Fatalf("no disarm logged\n%s", ag.tail(20))
	}

	// Killed: nobody feeds or disarms; the countdown runs out and the
	// controller powers down.
	ag = start()
	killed := time.Now()
	stopAgent(t, ag, syscall.SIGKILL)
	lab.waitFor("the watchdog to power the shelf down", timeout+5*time.Second, func() bool { return !power() })
	w := get()
	if w.Running || !wdExpired(w) {
		t.Fatalf("after expiry: %+v", w)
	}
	if took := time.Since(killed); took < timeout-time.Second {
		t.Fatalf("powered down %s after the kill, before the countdown could run out", took)
	}
}

// TestWatchdogIPMILabShelf runs the agent binary against ipmi_sim with two
// ipmi watchdogs through its session: the shelf manager's own (0x20, the
// only controller of the lab with a watchdog) and blade 0x82's, which
// ipmi_sim does not implement (0xC1). The first is armed and fed while the
// second's arming fails, names the bridged IPMC and is tried again at each
// feed. ipmitool reads the timer back independently. SIGTERM disarms it
// (the shelf manager stays powered past the timeout); after SIGKILL it
// runs out and ipmi_sim powers the shelf manager's payload down.
//
// ipmi_sim 2.0.33 does not restart a pending countdown on Reset Watchdog
// Timer and does not report the running state, so here the clean stop
// happens within the first countdown and the embedded shelf test is the
// one showing that feeds keep the timer from expiring.
func TestWatchdogIPMILabShelf(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ipmi_sim and builds the agent binary")
	}
	t.Parallel()
	bin := buildBinary(t, t.TempDir(), "./cmd/hpiagent")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sh := labshelf.Start(t)
	const timeout = 8 * time.Second
	dir := t.TempDir()
	// ipmi_sim refuses hard-reset (0xCC) without a VM connected.
	path := watchdogAgentConfig(t, dir, sh.Addr(), sh.OperatorUser, sh.OperatorPassword, 3, `watchdog:
  interval: 1s
  devices:
    - {type: ipmi, shelf: lab, ipmb: 0x20, timeout: 8s, action: power-down}
    - {type: ipmi, shelf: lab, ipmb: 0x82, timeout: 8s}
`)
	// mc watchdog get, as ipmitool prints it.
	get := func() map[string]string {
		t.Helper()
		out, err := sh.Ipmitool(ctx, "mc", "watchdog", "get")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				m[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		return m
	}
	armed := func(m map[string]string) bool {
		return strings.HasPrefix(m["Watchdog Timer Use"], "SMS/OS") && strings.HasPrefix(m["Watchdog Timer Action"], "Power Down") &&
			m["Initial Countdown"] == "8.0 sec" && strings.HasPrefix(m["Timer Expiration Flags"], "None")
	}
	powered := func() bool {
		on, err := sh.PayloadRunning(labshelf.ShMC)
		if err != nil {
			t.Fatal(err)
		}
		return on
	}
	lab := &clusterLab{t: t, bin: bin, shelf: sh}
	start := func() (*clusterAgent, time.Time) {
		ag := &clusterAgent{name: "agent", config: path}
		lab.agents = []*clusterAgent{ag}
		lab.start(ag)
		var at time.Time
		lab.waitFor("the agent to arm the shelf manager's watchdog", 20*time.Second, func() bool {
			at = time.Now()
			return armed(get())
		})
		return ag, at
	}
	if m := get(); armed(m) || !powered() {
		t.Fatalf("before the agent: %v, powered %v", m, powered())
	}

	ag, armedAt := start()
	// Arming blade 0x82's watchdog fails with ipmi_sim's answer and is
	// tried again at each feed, while 0x20's is armed and fed.
	lab.waitFor("two failed armings of blade 0x82's watchdog", 10*time.Second, func() bool {
		n := 0
		for _, msg := range []string{"watchdog not armed; trying again at each feed", "feeding watchdogs"} {
			for _, r := range ag.records(msg) {
				if e, _ := r["error"].(string); strings.Contains(e, "arming watchdog ipmi-bmc (IPMB 0x82)") && strings.Contains(e, "0xc1") {
					n++
				}
			}
		}
		return n >= 2
	})
	if n := len(ag.records("watchdog armed")); n != 1 {
		t.Fatalf("%d devices armed, want 1 (0x20)\n%s", n, ag.tail(20))
	}
	if since := time.Since(armedAt); since > timeout-2*time.Second {
		t.Fatalf("%s since arming: too close to the end of ipmi_sim's single countdown for a clean stop within it", since)
	}
	stopAgent(t, ag, syscall.SIGTERM)
	if m := get(); !strings.HasPrefix(m["Watchdog Timer Action"], "No action") {
		t.Fatalf("after SIGTERM: %v\n%s", m, ag.tail(20))
	}
	time.Sleep(time.Until(armedAt.Add(timeout + 2*time.Second)))
	if m := get(); !strings.HasPrefix(m["Timer Expiration Flags"], "None") || !powered() {
		t.Fatalf("the countdown ran out after a clean stop: %v, powered %v", m, powered())
	}

	ag, _ = start()
	killed := time.Now()
	stopAgent(t, ag, syscall.SIGKILL)
	lab.waitFor("ipmi_sim to power the shelf manager down", timeout+5*time.Second, func() bool { return !powered() })
	if m := get(); !strings.Contains(m["Timer Expiration Flags"], "0x10") {
		t.Fatalf("after expiry: %v", m)
	}
	if took := time.Since(killed); took < time.Second {
		t.Fatalf("powered down %s after the kill", took)
	}
}

// TestDaemonRefusesUnusableIPMIDevice: an agent whose ipmi watchdog's
// OpenIPMI device cannot be used does not start (running without the
// watchdog the configuration asks for is not safe) and says which device
// of the configuration failed.
func TestDaemonRefusesUnusableIPMIDevice(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "not-a-device")
	if err := os.WriteFile(plain, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, device, want string }{
		{"missing", filepath.Join(dir, "ipmi0"), "watchdog.devices[1]: opening " + filepath.Join(dir, "ipmi0")},
		{"not an OpenIPMI device", plain, "watchdog.devices[1]: the controller behind " + plain + " does not answer Get Device ID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			yaml := fmt.Sprintf("audit:\n  path: %s\nwatchdog:\n  devices:\n    - {type: dev, path: %s}\n    - {type: ipmi, device: %s}\n",
				filepath.Join(filepath.Dir(p), "audit.log"), filepath.Join(dir, "no-watchdog"), tc.device)
			if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var stderr syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := runDaemon(ctx, daemonOptions{ConfigPath: p, Stderr: &stderr,
				Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false }})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
