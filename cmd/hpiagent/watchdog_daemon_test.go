package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"hpiagent/internal/loopback"
	"hpiagent/internal/pki"
	wdog "hpiagent/watchdog"
)

// notifyRecorder is systemd's notification socket: it records every
// datagram in order with the address it came from.
type notifyRecorder struct {
	addr string // the $NOTIFY_SOCKET value

	mu   sync.Mutex
	msgs []notifyMsg
	more chan struct{} // closed and replaced on every datagram
}

type notifyMsg struct{ text, from string }

func newNotifyRecorder(t *testing.T) *notifyRecorder {
	t.Helper()
	addr, c := listenNotify(t, false)
	r := &notifyRecorder{addr: addr, more: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, from, err := c.ReadFromUnix(buf)
			if err != nil {
				return
			}
			m := notifyMsg{text: string(buf[:k])}
			if from != nil {
				m.from = from.Name
			}
			r.mu.Lock()
			r.msgs = append(r.msgs, m)
			close(r.more)
			r.more = make(chan struct{})
			r.mu.Unlock()
		}
	}()
	return r
}

// snapshot returns the datagrams so far.
func (r *notifyRecorder) snapshot() []notifyMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notifyMsg(nil), r.msgs...)
}

// await waits until cond holds for the datagrams so far.
func (r *notifyRecorder) await(t *testing.T, what string, cond func([]notifyMsg) bool) []notifyMsg {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		msgs, more := append([]notifyMsg(nil), r.msgs...), r.more
		r.mu.Unlock()
		if cond(msgs) {
			return msgs
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("waiting for %s; systemd got %q", what, texts(msgs))
		}
	}
}

// index returns the position of the first datagram at or after from that
// contains s, or -1.
func index(msgs []notifyMsg, from int, s string) int {
	for i := from; i < len(msgs); i++ {
		if strings.Contains(msgs[i].text, s) {
			return i
		}
	}
	return -1
}

func count(msgs []notifyMsg, s string) int {
	n := 0
	for _, m := range msgs {
		if strings.Contains(m.text, s) {
			n++
		}
	}
	return n
}

func texts(msgs []notifyMsg) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.text)
	}
	return out
}

// mark sends a marker through the daemon's own Notifier and waits until
// systemd got it: everything the agent sent before is then recorded
// before it (one socket, one receive queue). It returns the marker's
// position.
func mark(t *testing.T, d *daemon, r *notifyRecorder, name string) int {
	t.Helper()
	v := "X_HPIAGENT_TEST_MARK=" + name
	if err := d.notify.Notify(context.Background(), v); err != nil {
		t.Fatal(err)
	}
	msgs := r.await(t, v, func(m []notifyMsg) bool { return index(m, 0, v) >= 0 })
	return index(msgs, 0, v)
}

// singleWriter checks that every datagram came from one bound socket.
func singleWriter(t *testing.T, msgs []notifyMsg) {
	t.Helper()
	from := map[string]int{}
	for _, m := range msgs {
		from[m.from]++
	}
	if len(from) != 1 || from[""] != 0 {
		t.Errorf("datagrams from %d sockets %v, want all from one bound socket", len(from), from)
	}
}

// waitTicks waits until the feeder has decided n more times.
func waitTicks(t *testing.T, f *wdog.Feeder, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := f.Status().LastTick
	for n > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watchdog feeder stopped deciding")
		}
		if lt := f.Status().LastTick; !lt.Equal(last) {
			last = lt
			n--
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitStatus waits until the feeder's status satisfies cond.
func waitStatus(t *testing.T, f *wdog.Feeder, what string, cond func(wdog.Status) bool) wdog.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := f.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s; feeder status %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// switchCheck is a health check the test turns on and off.
type switchCheck struct{ failing atomic.Bool }

func (c *switchCheck) Name() string { return "test-switch" }
func (c *switchCheck) Check(context.Context) error {
	if c.failing.Load() {
		return errors.New("made to fail by the test")
	}
	return nil
}

// runTestDaemon runs runDaemon with env until the test ends and returns
// the daemon once started, a channel with runDaemon's result, and the
// API address (nil without API) once ready.
func runTestDaemon(t *testing.T, ctx context.Context, config string, env map[string]string, check wdog.HealthCheck) (*daemon, <-chan error, <-chan net.Addr) {
	t.Helper()
	started := make(chan *daemon, 1)
	done := make(chan error, 1)
	ready := make(chan net.Addr, 1)
	var stderr syncBuffer
	go func() {
		done <- runDaemon(ctx, daemonOptions{
			ConfigPath: config, Stderr: &stderr,
			Getenv:      func(k string) string { return env[k] },
			LookupEnv:   func(string) (string, bool) { return "", false },
			OnReady:     func(a net.Addr, _ string) { ready <- a },
			started:     func(d *daemon) { started <- d },
			healthCheck: check,
		})
	}()
	select {
	case d := <-started:
		return d, done, ready
	case err := <-done:
		t.Fatalf("runDaemon: %v\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the daemon did not start\n%s", stderr.String())
	}
	return nil, nil, nil
}

// waitDone waits for runDaemon to return without error.
func waitDone(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runDaemon: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon did not stop")
	}
}

// TestDaemonFeedsSystemdWatchdogStandalone: a standalone agent (no
// cluster, no watchdog section) under systemd with WatchdogSec= feeds
// systemd's watchdog through its one feeder and its one socket; the pings
// stop while a health check fails and come back when it passes; /metrics,
// STATUS= and the audit log show it.
func TestDaemonFeedsSystemdWatchdogStandalone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded shelf and the API")
	}
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const password = "wd-standalone-pw"
	_, shelfAddr := startSimShelf(t, ctx, password)
	dir := t.TempDir()
	dp, err := writeDemoFiles(dir, shelfAddr, password, "127.0.0.1:0", time.Second, "info")
	if err != nil {
		t.Fatal(err)
	}
	rec := newNotifyRecorder(t)
	check := &switchCheck{}
	d, done, ready := runTestDaemon(t, ctx, dp.config, map[string]string{"NOTIFY_SOCKET": rec.addr, "WATCHDOG_USEC": "200000"}, check)
	apiAddr := <-ready
	f := d.feeder()
	if f == nil {
		t.Fatal("no watchdog feeder with WATCHDOG_USEC set")
	}
	if f.Interval() != 100*time.Millisecond {
		t.Errorf("feeding every %s, want half of WatchdogSec (100ms)", f.Interval())
	}
	st := f.Status()
	if st.Clustered || len(st.Devices) != 1 || st.Devices[0].Name != "systemd" {
		t.Fatalf("standalone feeder %+v, want systemd alone without quorum", st)
	}
	var checks []string
	for _, c := range st.Checks {
		checks = append(checks, c.Name)
	}
	if strings.Join(checks, ",") != "domain,shelf-loops,api,test-switch" {
		t.Errorf("health checks %v", checks)
	}
	msgs := rec.await(t, "READY=1 and three pings", func(m []notifyMsg) bool {
		r := index(m, 0, "READY=1")
		return r >= 0 && count(m[r:], "WATCHDOG=1") >= 3
	})
	if r := msgs[index(msgs, 0, "READY=1")].text; !strings.Contains(r, "watchdogs fed") {
		t.Errorf("READY=1 status %q does not show the watchdog", r)
	}
	metrics := scrapeMetrics(t, dir, apiAddr)
	if v := metrics("hpiagent_watchdog_feeding", "device", "systemd"); v != 1 {
		t.Errorf("hpiagent_watchdog_feeding{device=systemd} = %v while healthy", v)
	}
	if v := metrics("hpiagent_watchdog_feeds_total", "device", "systemd"); v < 3 {
		t.Errorf("hpiagent_watchdog_feeds_total{device=systemd} = %v", v)
	}
	if v := metrics("hpiagent_watchdog_health_check_failing", "check", "test-switch"); v != 0 {
		t.Errorf("test-switch failing = %v while passing", v)
	}

	// A failing health check withholds the pings.
	check.failing.Store(true)
	waitStatus(t, f, "feeding withheld", func(s wdog.Status) bool { return !s.Feeding })
	m1 := mark(t, d, rec, "withheld")
	waitTicks(t, f, 5)
	m2 := mark(t, d, rec, "still-withheld")
	msgs = rec.snapshot()
	if n := count(msgs[m1:m2], "WATCHDOG=1"); n != 0 {
		t.Fatalf("%d pings while a health check failed: %q", n, texts(msgs[m1:m2]))
	}
	st = f.Status()
	if st.Feeding || !strings.Contains(st.Reason, "test-switch") || st.WithheldSince.IsZero() || st.Devices[0].Fed {
		t.Errorf("status while withheld: %+v", st)
	}
	if s := d.status(); !strings.Contains(s, "watchdogs not fed: health checks failing: test-switch") {
		t.Errorf("STATUS=%s", s)
	}
	metrics = scrapeMetrics(t, dir, apiAddr)
	if v := metrics("hpiagent_watchdog_feeding", "device", "systemd"); v != 0 {
		t.Errorf("hpiagent_watchdog_feeding{device=systemd} = %v while withheld", v)
	}
	if v := metrics("hpiagent_watchdog_withheld_seconds", "", ""); v <= 0 {
		t.Errorf("hpiagent_watchdog_withheld_seconds = %v while withheld", v)
	}
	if v := metrics("hpiagent_watchdog_health_check_failing", "check", "test-switch"); v != 1 {
		t.Errorf("test-switch failing = %v", v)
	}

	// Passing again: the pings resume.
	check.failing.Store(false)
	rec.await(t, "pings after recovery", func(m []notifyMsg) bool { return index(m, m2, "WATCHDOG=1") >= 0 })

	cancel()
	waitDone(t, done)
	msgs = rec.snapshot()
	if index(msgs, m2, "STOPPING=1") < 0 {
		t.Errorf("no STOPPING=1: %q", texts(msgs[m2:]))
	}
	singleWriter(t, msgs)
	auditPath := filepath.Join(dir, "audit.log")
	if rs := auditRecords(t, auditPath, "watchdog.start", "hpiagent"); len(rs) != 1 || rs[0].Result != "ok" || !strings.Contains(rs[0].Detail, "systemd") {
		t.Errorf("watchdog.start records %+v", rs)
	}
	if rs := auditRecords(t, auditPath, "watchdog.stop", "hpiagent"); len(rs) != 1 || rs[0].Result != "ok" || !strings.Contains(rs[0].Detail, "disarmed: systemd") {
		t.Errorf("watchdog.stop records %+v", rs)
	}
	if rs := auditRecords(t, auditPath, "watchdog.selffence", "hpiagent"); len(rs) != 0 {
		t.Errorf("a standalone agent audited a self-fence: %+v", rs)
	}
}

// scrapeMetrics reads /metrics with the demo's operator certificate and
// returns a lookup of a metric's value by name and one label (k "" for
// none); a missing metric is -1.
func scrapeMetrics(t *testing.T, dir string, apiAddr net.Addr) func(name, k, v string) float64 {
	t.Helper()
	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	op, err := pki.LoadCert(dir, "demo-operator")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pki.TLSConfigClient(ca, op)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}).Get("https://" + apiAddr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return func(name, k, v string) float64 {
		fam, ok := fams[name]
		if !ok {
			return -1
		}
		for _, m := range fam.Metric {
			match := k == ""
			for _, l := range m.Label {
				match = match || (l.GetName() == k && l.GetValue() == v)
			}
			switch {
			case !match:
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			}
		}
		return -1
	}
}

// TestDaemonWatchdogSectionFeedsSystemd: with a watchdog section that does
// not list systemd, systemd's watchdog (WATCHDOG_USEC) is fed by the
// section's feeder together with its devices, at most every half
// WatchdogSec, over the one socket; a clean stop disarms the kernel
// device (magic close) and is audited.
func TestDaemonWatchdogSectionFeedsSystemd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded shelf")
	}
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const password = "wd-section-pw"
	_, shelfAddr := startSimShelf(t, ctx, password)
	dir := t.TempDir()
	dev := filepath.Join(dir, "watchdog") // a plain file standing in for /dev/watchdog
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	config := watchdogAgentConfig(t, dir, shelfAddr, "hpiagent", password, 17, fmt.Sprintf(`watchdog:
  interval: 2s
  devices:
    - {type: dev, path: %s}
`, dev))
	rec := newNotifyRecorder(t)
	d, done, _ := runTestDaemon(t, ctx, config, map[string]string{"NOTIFY_SOCKET": rec.addr, "WATCHDOG_USEC": "400000"}, nil)
	f := d.feeder()
	if f == nil || d.node == nil || d.node.feeder != f || d.sdFeeder != nil {
		t.Fatalf("feeder %p, node feeder %p, standalone feeder %p: want the node's alone", f, d.node.feeder, d.sdFeeder)
	}
	if f.Interval() != 200*time.Millisecond {
		t.Errorf("feeding every %s, want the section's 2s shortened to half WatchdogSec (200ms)", f.Interval())
	}
	st := waitStatus(t, f, "both devices fed", func(s wdog.Status) bool {
		return len(s.Devices) == 2 && s.Devices[0].Feeds > 0 && s.Devices[1].Feeds > 0
	})
	if st.Devices[0].Name != dev || st.Devices[1].Name != "systemd" || st.Clustered {
		t.Fatalf("devices %+v clustered %v, want %s and systemd, not clustered", st.Devices, st.Clustered, dev)
	}
	rec.await(t, "pings", func(m []notifyMsg) bool { return count(m, "WATCHDOG=1") >= 2 })
	cancel()
	waitDone(t, done)
	singleWriter(t, rec.snapshot())
	b, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || !strings.HasSuffix(string(b), "V") || strings.Count(string(b), "V") != 1 {
		t.Errorf("the kernel device saw %q, want keep-alives and one magic close at the end", b)
	}
	auditPath := filepath.Join(dir, "audit.log")
	if rs := auditRecords(t, auditPath, "watchdog.start", "hpiagent"); len(rs) != 1 || !strings.Contains(rs[0].Detail, dev+", systemd") {
		t.Errorf("watchdog.start records %+v", rs)
	}
	if rs := auditRecords(t, auditPath, "watchdog.stop", "hpiagent"); len(rs) != 1 || rs[0].Result != "ok" || !strings.Contains(rs[0].Detail, "disarmed: "+dev+", systemd") {
		t.Errorf("watchdog.stop records %+v", rs)
	}
}

// TestDaemonSelfFenceStopsSystemdAndIsAudited: a cluster node whose only
// peer never answers has no quorum; after self_fence_after its one feeder
// decides to self-fence: the decision is in the audit log, systemd gets
// no WATCHDOG=1 from then on, the health view says so, and the stop
// leaves the watchdogs armed (audited).
func TestDaemonSelfFenceStopsSystemdAndIsAudited(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded shelf and a cluster node")
	}
	t.Parallel()
	shelfCtx, shelfCancel := context.WithCancel(context.Background())
	defer shelfCancel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const password = "wd-cluster-pw"
	_, shelfAddr := startSimShelf(t, shelfCtx, password)
	dir := t.TempDir()
	ca, err := pki.NewCA("wd-test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue(pki.IssueRequest{Name: "node-1", Kind: pki.KindPeer, Validity: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	host := fmt.Sprintf("127.%d.%d.1", 1+rand.IntN(250), 1+rand.IntN(250))
	port := func() string { return strconv.Itoa(loopback.Ports(t, host, 1)[0]) }
	ghost := fmt.Sprintf("127.%d.%d.2", 1+rand.IntN(250), 1+rand.IntN(250))
	config := watchdogAgentConfig(t, dir, shelfAddr, "hpiagent", password, 17, fmt.Sprintf(`cluster:
  node: node-1
  nodes:
    - {name: node-1, gossip: "%s:%s", raft: "%s:%s", rpc: "%s:%s"}
    - {name: node-2, gossip: "%s:7946", raft: "%s:7947", rpc: "%s:7948"}
  gossip_keys:
    - {file: %s}
  tls:
    cert: %s
    key: {file: %s}
    ca: %s
  data_dir: %s
watchdog:
  self_fence_after: 3s
  interval: 200ms
  devices: [{type: systemd}]
`, host, port(), host, port(), host, port(), ghost, ghost, ghost, writeGossipKey(t, dir),
		pki.CertFile(dir, "node-1"), pki.KeyFile(dir, "node-1"), filepath.Join(dir, pki.CACertFile), filepath.Join(dir, "data")))
	rec := newNotifyRecorder(t)
	d, done, _ := runTestDaemon(t, ctx, config, map[string]string{"NOTIFY_SOCKET": rec.addr}, nil)
	f := d.feeder()
	if f == nil || !f.Status().Clustered {
		t.Fatalf("no quorum-gated feeder: %+v", f)
	}
	auditPath := filepath.Join(dir, "audit.log")
	// Fed while quorum has been lost for less than self_fence_after.
	rec.await(t, "pings before the self-fence", func(m []notifyMsg) bool { return count(m, "WATCHDOG=1") >= 2 })
	waitStatus(t, f, "self-fencing", func(s wdog.Status) bool { return s.SelfFencing })
	// The decision is audited before the tick that took it returns, so
	// before the next one.
	waitTicks(t, f, 1)
	rs := auditRecords(t, auditPath, "watchdog.selffence", "hpiagent")
	if len(rs) != 1 || rs[0].Result != "ok" || !strings.Contains(rs[0].Detail, "no quorum since") {
		t.Fatalf("watchdog.selffence records %+v", rs)
	}
	m1 := mark(t, d, rec, "self-fencing")
	waitTicks(t, f, 5)
	m2 := mark(t, d, rec, "still-self-fencing")
	msgs := rec.snapshot()
	if n := count(msgs[m1:m2], "WATCHDOG=1"); n != 0 {
		t.Fatalf("systemd fed %d times after the self-fence decision: %q", n, texts(msgs[m1:m2]))
	}
	h := d.watchdogHealth()
	if h == nil || !h.SelfFencing || h.Feeding || !h.Clustered || h.QuorumLost < 3*time.Second || h.Withheld <= 0 || len(h.Devices) != 1 || h.Devices[0].Fed || !h.Devices[0].Armed {
		t.Errorf("health view %+v", h)
	}
	if s := d.status(); !strings.Contains(s, "watchdogs not fed: self-fencing") {
		t.Errorf("STATUS=%s", s)
	}
	cancel()
	waitDone(t, done)
	singleWriter(t, rec.snapshot())
	if rs := auditRecords(t, auditPath, "watchdog.stop", "hpiagent"); len(rs) != 1 || rs[0].Result != "ok" || !strings.Contains(rs[0].Detail, "left armed") {
		t.Errorf("watchdog.stop records %+v", rs)
	}
	if rs := auditRecords(t, auditPath, "watchdog.selffence", "hpiagent"); len(rs) != 1 {
		t.Errorf("%d watchdog.selffence records, want 1", len(rs))
	}

	// systemd restarts the agent whose pings stopped: in the same boot
	// the decision holds, nothing is armed or fed.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	rec2 := newNotifyRecorder(t)
	d2, done2, ready2 := runTestDaemon(t, ctx2, config, map[string]string{"NOTIFY_SOCKET": rec2.addr}, nil)
	<-ready2
	f2 := d2.feeder()
	if st := f2.Status(); !st.SelfFencing || st.Feeding || !strings.Contains(st.Reason, "before the agent restarted") || st.Devices[0].Armed {
		t.Fatalf("restarted feeder %+v, want self-fencing with nothing armed", st)
	}
	waitTicks(t, f2, 5)
	mark(t, d2, rec2, "restarted")
	cancel2()
	waitDone(t, done2)
	if msgs := rec2.snapshot(); count(msgs, "WATCHDOG=1") != 0 || index(msgs, 0, "READY=1") < 0 {
		t.Errorf("the restarted agent sent %q, want READY=1 and no WATCHDOG=1", texts(msgs))
	}
	starts := auditRecords(t, auditPath, "watchdog.start", "hpiagent")
	if len(starts) != 2 || starts[0].Result != "ok" || starts[1].Result != "refused" || !strings.Contains(starts[1].Detail, "no quorum since") {
		t.Errorf("watchdog.start records %+v, want ok then refused", starts)
	}
	if rs := auditRecords(t, auditPath, "watchdog.selffence", "hpiagent"); len(rs) != 1 {
		t.Errorf("%d watchdog.selffence records after the restart, want still 1", len(rs))
	}
}
