package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"hpiagent/hpi"
	"hpiagent/internal/pki"
	"hpiagent/shelf/sim"
)

// cmdDemo starts the embedded simulated ATCA shelf on loopback and runs
// the agent against it exactly as `hpiagent run` does: an RMCP+ session
// (cipher suite 17), discovery, sensor polling, SEL following, hot-swap,
// the mutual-TLS API and the audit log. Its configuration, throwaway
// certificates and audit log live in a temporary directory (or
// -state-dir). Every -hotswap-every one blade's handle is opened and
// closed again, and a few sensors drift, now and then past a threshold.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "UDP `address` of the simulated shelf manager (loopback only)")
	apiListen := fs.String("api", "127.0.0.1:0", "TCP `address` of the API (loopback only)")
	stateDir := fs.String("state-dir", "", "`directory` for the demo's configuration, certificates and audit log (default: a temporary directory removed at exit)")
	interval := fs.Duration("interval", 5*time.Second, "sensor poll interval")
	hotswap := fs.Duration("hotswap-every", time.Minute, "time between scripted blade extractions (0: never)")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	quiet := fs.Bool("quiet", false, "do not print the domain's events")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if err := loopbackOnly(*listen); err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	if err := loopbackOnly(*apiListen); err != nil {
		return fmt.Errorf("-api: %w", err)
	}
	switch *level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("-log-level: %q is not one of debug, info, warn, error", *level)
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	stdout = &lockedWriter{w: stdout}
	simLog := newLogger(stderr, "warn").With("component", "sim")

	// A throwaway password: the demo shelf exists only in this process.
	var pw [10]byte
	rand.Read(pw[:])
	password := hex.EncodeToString(pw[:])
	cfg := sim.DefaultConfig()
	cfg.Users = []sim.User{{Name: "hpiagent", Password: password, MaxPrivilege: sim.PrivAdmin}}
	cfg.Start = time.Now() // SEL timestamps in the present
	sh, err := sim.New(cfg, simLog)
	if err != nil {
		return fmt.Errorf("building the demo shelf: %w", err)
	}
	srv, err := sim.Listen(ctx, sh, *listen, simLog)
	if err != nil {
		return fmt.Errorf("starting the demo shelf: %w", err)
	}
	defer srv.Close()
	go sh.RunClock(ctx, 100*time.Millisecond)

	dir := *stateDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "hpiagent-demo-"); err != nil {
			return fmt.Errorf("making the demo directory: %w", err)
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("making the demo directory: %w", err)
	}
	dp, err := writeDemoFiles(dir, srv.Addr().String(), password, *apiListen, *interval, *level)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "demo shelf manager listening on udp %s (RMCP+, cipher suites 17 and 3)\n", srv.Addr())
	fmt.Fprintf(stdout, "demo configuration, certificates and audit log in %s\n", dir)

	if *hotswap > 0 {
		go scriptHotSwap(ctx, sh, *hotswap, simLog)
	}
	go driftSensors(ctx, sh, time.Second, simLog)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var printer sync.WaitGroup
	defer printer.Wait()
	pctx, stopPrinter := context.WithCancel(ctx)
	defer stopPrinter()
	return runDaemon(ctx, daemonOptions{
		ConfigPath: dp.config, Stderr: stderr, Reload: hup,
		// The demo never reads credentials from the environment.
		LookupEnv: func(string) (string, bool) { return "", false },
		Getenv:    func(string) string { return "" },
		Domain: func(c hpi.Config) *hpi.Domain {
			d := hpi.NewDomain(c)
			if !*quiet {
				if sub, err := d.Subscribe(256); err == nil {
					printer.Add(1)
					go func() { defer printer.Done(); printEvents(pctx, d, sub, stdout) }()
				}
			}
			return d
		},
		OnReady: func(addr net.Addr, status string) {
			// One write, so that event lines do not land in the middle.
			var b bytes.Buffer
			fmt.Fprintf(&b, "agent ready: %s\n\n", status)
			printHpictl(&b, dp, addr)
			stdout.Write(b.Bytes())
		},
	})
}

// loopbackOnly refuses a demo address that is not on loopback: the demo's
// shelf and API use throwaway secrets.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", host)
	}
	return nil
}

// demoPaths are the files the demo writes.
type demoPaths struct {
	dir, config, ca, cert, key, clientID string
}

// writeDemoFiles makes a throwaway CA with a server certificate for the
// API and a client certificate for hpictl, the shelf password file and a
// configuration that uses them.
func writeDemoFiles(dir, shelfAddr, password, apiListen string, interval time.Duration, level string) (demoPaths, error) {
	dp := demoPaths{dir: dir, config: filepath.Join(dir, "hpiagent.yaml"), ca: pki.CertFile(dir, "ca")}
	// The files of an earlier demo in the same directory are throwaway:
	// replace them (the audit log stays and grows).
	for _, n := range []string{"ca", "hpiagent-demo", "demo-operator"} {
		for _, p := range []string{pki.CertFile(dir, n), pki.KeyFile(dir, n)} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return dp, fmt.Errorf("removing an earlier demo's file: %w", err)
			}
		}
	}
	for _, p := range []string{dp.config, filepath.Join(dir, "shelf.password")} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return dp, fmt.Errorf("removing an earlier demo's file: %w", err)
		}
	}
	ca, err := pki.NewCA("hpiagent-demo-ca", 8*24*time.Hour)
	if err != nil {
		return dp, fmt.Errorf("making the demo CA: %w", err)
	}
	host, _, _ := net.SplitHostPort(apiListen)
	server, err := ca.Issue(pki.IssueRequest{Name: "hpiagent-demo", Kind: pki.KindServer, IPs: []net.IP{net.ParseIP(host)}, DNSNames: []string{"localhost"}, Validity: 7 * 24 * time.Hour})
	if err != nil {
		return dp, fmt.Errorf("issuing the demo API certificate: %w", err)
	}
	client, err := ca.Issue(pki.IssueRequest{Name: "demo-operator", Kind: pki.KindClient, Validity: 7 * 24 * time.Hour})
	if err != nil {
		return dp, fmt.Errorf("issuing the demo client certificate: %w", err)
	}
	for _, save := range []func(string) error{ca.Save, server.Save, client.Save} {
		if err := save(dir); err != nil {
			return dp, fmt.Errorf("writing the demo certificates: %w", err)
		}
	}
	dp.cert, dp.key = pki.CertFile(dir, "demo-operator"), pki.KeyFile(dir, "demo-operator")
	dp.clientID = pki.IdentityURI(pki.KindClient, "demo-operator").String()
	pwFile := filepath.Join(dir, "shelf.password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return dp, fmt.Errorf("writing the demo shelf password: %w", err)
	}
	y := fmt.Sprintf(`# hpiagent demo configuration (throwaway; made by hpiagent demo)
log_level: %s
shelves:
  - name: demo
    address: %q
    username: hpiagent
    password: {file: %q}
api:
  listen: %q
  tls:
    cert: %q
    key: {file: %q}
    ca: %q
  roles:
    %q: [admin]
audit:
  path: %q
monitor:
  poll_interval: %s
  hotswap_poll_interval: 500ms
  sel_poll_interval: 1s
`, level, shelfAddr, pwFile, apiListen, pki.CertFile(dir, "hpiagent-demo"), pki.KeyFile(dir, "hpiagent-demo"), dp.ca,
		dp.clientID, filepath.Join(dir, "audit.log"), interval)
	if err := os.WriteFile(dp.config, []byte(y), 0o600); err != nil {
		return dp, fmt.Errorf("writing the demo configuration: %w", err)
	}
	return dp, nil
}

// printHpictl tells the user how to query the demo agent.
func printHpictl(w io.Writer, dp demoPaths, addr net.Addr) {
	if addr == nil {
		return
	}
	fmt.Fprintf(w, "Query it with hpictl (client certificate %s, role admin):\n\n", dp.clientID)
	fmt.Fprintf(w, "  export HPICTL_ENDPOINT=https://%s\n", addr)
	fmt.Fprintf(w, "  export HPICTL_CA=%s\n", dp.ca)
	fmt.Fprintf(w, "  export HPICTL_CERT=%s\n", dp.cert)
	fmt.Fprintf(w, "  export HPICTL_KEY=%s\n", dp.key)
	fmt.Fprintf(w, "  go run ./cmd/hpictl resources\n")
	fmt.Fprintf(w, "  go run ./cmd/hpictl sensors\n")
	fmt.Fprintf(w, "  go run ./cmd/hpictl events --follow\n\n")
	fmt.Fprintf(w, "or with flags:\n\n  go run ./cmd/hpictl resources --endpoint https://%s --ca %s --cert %s --key %s\n\n", addr, dp.ca, dp.cert, dp.key)
}

// printEvents prints the domain's hot-swap, threshold and resource events.
func printEvents(ctx context.Context, d *hpi.Domain, sub *hpi.Subscription, w io.Writer) {
	defer sub.Unsubscribe()
	for {
		e, err := sub.Receive(ctx)
		if err != nil {
			var oe *hpi.OverflowError
			if errors.As(err, &oe) {
				continue
			}
			return
		}
		name := fmt.Sprintf("resource %d", e.Source)
		if r, ok := d.Resource(e.Source); ok {
			name = fmt.Sprintf("%s (%d)", r.Tag, e.Source)
		}
		switch e.Type {
		case hpi.EventHotSwap:
			fmt.Fprintf(w, "event %d: hot-swap %s: %s -> %s (%s)\n", e.ID, name, e.HotSwap.PreviousHotSwapState, e.HotSwap.HotSwapState, e.HotSwap.CauseOfStateChange)
		case hpi.EventSensor:
			// Threshold crossings only: the hot-swap sensors' own events
			// repeat the hot-swap events above.
			if e.Sensor.Category != hpi.ECThreshold {
				continue
			}
			verb := "back within"
			if e.Sensor.Assertion {
				verb = "crossed"
			}
			fmt.Fprintf(w, "event %d: sensor %d of %s %s threshold (state 0x%04x, %s)\n", e.ID, e.Sensor.Num, name, verb, uint16(e.Sensor.EventState), e.Severity)
		case hpi.EventResource:
			fmt.Fprintf(w, "event %d: resource %s: %s (%s)\n", e.ID, name, e.Resource.Type, e.Severity)
		default:
			fmt.Fprintf(w, "event %d: %s of %s (%s)\n", e.ID, e.Type, name, e.Severity)
		}
	}
}

// scriptHotSwap opens the latch of one FRU (blade, fan tray) after another
// every period and closes it again once the FRU has reached M1, as an
// operator swapping a board would.
func scriptHotSwap(ctx context.Context, sh *sim.Shelf, period time.Duration, log *slog.Logger) {
	var blades []uint8
	for _, a := range sh.Addrs() {
		if a != sh.Config().Addr {
			blades = append(blades, a)
		}
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b := blades[i%len(blades)]
		log.Info("demo: opening the latch", "ipmc", fmt.Sprintf("0x%02x", b))
		if err := sh.Extract(b); err != nil {
			log.Warn("demo: extract", "err", err)
			continue
		}
		for ctx.Err() == nil {
			if st, err := sh.State(b); err == nil && st == sim.MState(1) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		log.Info("demo: closing the latch", "ipmc", fmt.Sprintf("0x%02x", b))
		if err := sh.Insert(b); err != nil {
			log.Warn("demo: insert", "err", err)
		}
	}
}

// drifter moves the raw reading of one threshold sensor: a small random
// walk around its nominal value and, now and then, an excursion just past
// its upper non-critical threshold and back.
type drifter struct {
	addr, sensor    uint8
	raw, home, peak uint8
	target          uint8
}

// newDrifter returns a drifter for sc on the controller at addr, or false
// when sc has no upper non-critical threshold comfortably above nominal.
func newDrifter(addr uint8, sc sim.SensorConfig) (*drifter, bool) {
	const unc = 3 // Get Sensor Thresholds order: lnc, lcr, lnr, unc, ucr, unr
	if sc.ThresholdMask&(1<<unc) == 0 || sc.Thresholds[unc] < sc.Nominal+3 || sc.Thresholds[unc] > 253 || sc.Nominal == 0 {
		return nil, false
	}
	return &drifter{addr: addr, sensor: sc.Number, raw: sc.Nominal, home: sc.Nominal, peak: sc.Thresholds[unc] + 1, target: sc.Nominal}, true
}

// step moves the reading 1-3 counts toward its target; at home it jitters
// by one count or, one time in four, sets out for the peak.
func (d *drifter) step(rng *mrand.Rand) {
	raw, target, n := int(d.raw), int(d.target), 1+rng.IntN(3)
	switch {
	case raw < target:
		d.raw = uint8(min(target, raw+n))
	case raw > target:
		d.raw = uint8(max(target, raw-n))
	case d.target == d.peak:
		d.target = d.home
	case rng.IntN(4) == 0:
		d.target = d.peak
	default:
		d.raw = d.home - 1 + uint8(rng.IntN(3))
	}
}

// driftSensors makes the first suitable sensor of the shelf manager and of
// the first IPMC that has one drift, one step every period.
func driftSensors(ctx context.Context, sh *sim.Shelf, period time.Duration, log *slog.Logger) {
	cfg := sh.Config()
	var ds []*drifter
	pick := func(addr uint8, sensors []sim.SensorConfig) bool {
		for _, sc := range sensors {
			if d, ok := newDrifter(addr, sc); ok {
				ds = append(ds, d)
				return true
			}
		}
		return false
	}
	pick(cfg.Addr, cfg.Sensors)
	for _, m := range cfg.IPMCs {
		if pick(m.Addr, m.Sensors) {
			break
		}
	}
	rng := mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, d := range ds {
			d.step(rng)
			if err := sh.SetSensorRaw(d.addr, d.sensor, d.raw); err != nil {
				log.Warn("demo: drifting a sensor", "err", err)
			}
		}
	}
}

// lockedWriter serializes writes from the demo's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
