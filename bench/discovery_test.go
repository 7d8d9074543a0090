package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"hpiagent/hpi"
	"hpiagent/internal/labshelf"
	"hpiagent/shelf"
	"hpiagent/shelf/rmcpp"
)

// Environment of the child process TestBenchDiscoveryOnce.
const (
	envDiscoverAddr = "HPIAGENT_BENCH_DISCOVER_ADDR"
	envDiscoverUser = "HPIAGENT_BENCH_DISCOVER_USER"
	envDiscoverPW   = "HPIAGENT_BENCH_DISCOVER_PASSWORD_FILE"
)

// discoveryCounts is what one discovery put into the domain.
type discoveryCounts struct {
	Resources, Sensors, Controls, Inventories int
}

func countDomain(d *hpi.Domain) discoveryCounts {
	var c discoveryCounts
	for _, e := range d.Resources() {
		c.Resources++
		rdrs, _ := d.RDRs(e.ResourceID)
		for _, r := range rdrs {
			switch r.Type {
			case hpi.SensorRDR:
				c.Sensors++
			case hpi.CtrlRDR:
				c.Controls++
			case hpi.InventoryRDR:
				c.Inventories++
			}
		}
	}
	return c
}

// discoverOnce is the whole cold discovery of a shelf as the daemon does
// it: RMCP+ session (cipher suite 3, as ipmi_sim has no 17), Discover with
// the first sensor sweep, Model and Apply into a new domain.
func discoverOnce(ctx context.Context, addr, user string, pw []byte, log *slog.Logger) (*hpi.Domain, error) {
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: addr, Username: user, Password: pw, CipherSuites: []int{3}, Logger: log})
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	snap, err := shelf.Discover(ctx, sess, shelf.DiscoverOptions{Readings: true, Logger: log})
	if err != nil {
		return nil, err
	}
	d := hpi.NewDomain(hpi.Config{Logger: log})
	if _, err := shelf.Apply(snap, d, shelf.ApplyOptions{}); err != nil {
		return nil, err
	}
	return d, nil
}

// TestBenchDiscoveryOnce is the process hyperfine times for hpiagent: one
// cold discovery, then it prints what it found. It runs only as the child
// of TestBenchDiscovery.
func TestBenchDiscoveryOnce(t *testing.T) {
	addr := os.Getenv(envDiscoverAddr)
	if addr == "" {
		t.Skip("child process of TestBenchDiscovery")
	}
	pw, err := os.ReadFile(os.Getenv(envDiscoverPW))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := discoverOnce(ctx, addr, os.Getenv(envDiscoverUser), pw, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(countDomain(d))
	fmt.Printf("counts %s\n", b)
}

// freeTCPPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// openhpiConf renders the lab's openhpid + ipmidirect configuration for
// sh. ipmidirect speaks IPMI 1.5 (RMCP) only, so it uses an MD5 session;
// the time-outs are the lab's reference settings, maxOutstanding the
// number of requests ipmidirect keeps in flight (the lab uses 1). With a
// logfile, ipmidirect logs every IPMI message there with a time stamp.
func openhpiConf(t *testing.T, sh *labshelf.Shelf, dir string, maxOutstanding int, logfile string) string {
	logflags := `logflags = ""`
	if logfile != "" {
		logflags = fmt.Sprintf("logflags = \"file\"\n        logfile = %q", logfile)
	}
	t.Helper()
	conf := fmt.Sprintf(`OPENHPI_LOG_ON_SEV = "MINOR"
OPENHPI_EVT_QUEUE_LIMIT = 10000
OPENHPI_DEL_SIZE_LIMIT = 10000
OPENHPI_DEL_SAVE = "NO"
OPENHPI_DAT_SAVE = "NO"
OPENHPI_PATH = "/usr/lib/openhpi"
OPENHPI_VARPATH = "%s"
OPENHPI_AUTOINSERT_TIMEOUT = 0
OPENHPI_AUTOINSERT_TIMEOUT_READONLY = "YES"
handler libipmidirect {
        entity_root = "{ADVANCEDTCA_CHASSIS,1}"
        name = "lan"
        addr = "%s"
        port = "%d"
        auth_type = "md5"
        auth_level = "admin"
        username = "%s"
        password = "%s"
        IpmiConnectionTimeout = "5000"
        AtcaConnectionTimeout = "1000"
        MaxOutstanding = "%d"
        %s
}
`, filepath.Join(dir, "hpi-var"), sh.Host, sh.Port, sh.User, sh.Password, maxOutstanding, logflags)
	if err := os.MkdirAll(filepath.Join(dir, "hpi-var"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, fmt.Sprintf("openhpi-%d-%t.conf", maxOutstanding, logfile != ""))
	// openhpid refuses a configuration that others can read.
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var resourceIDLine = regexp.MustCompile(`(?m)^\s*ResourceId:`)

// hpitreeCount counts the RPT entries hpitree lists; -1 when the daemon
// does not answer yet.
func hpitreeCount(ctx context.Context, port int) int {
	out, err := exec.CommandContext(ctx, "hpitree", "-N", fmt.Sprintf("127.0.0.1:%d", port), "-r").Output()
	if err != nil {
		return -1
	}
	return len(resourceIDLine.FindAllString(string(out), -1))
}

// openhpidRun starts openhpid with the ipmidirect plugin and returns how
// long it took from the start of the daemon until hpitree listed want
// RPT entries (want 0: until the count has not changed for settle; want
// < 0: until the daemon answers at all),
// how long until hpitree got any answer from the daemon, and the count
// seen. stop stops the daemon.
func openhpidRun(ctx context.Context, t *testing.T, conf, dir string, want int, settle time.Duration) (d, answered time.Duration, n, port int, stop func()) {
	t.Helper()
	port = freeTCPPort(t)
	cmd := exec.Command("openhpid", "-n", "-b", "127.0.0.1", "-p", strconv.Itoa(port), "-c", conf, "-f", filepath.Join(dir, "openhpid.pid"))
	cmd.Env = append(os.Environ(), "OPENHPI_CONF="+conf)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("openhpid: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	deadline := start.Add(60 * time.Second)
	last, lastChange := -1, time.Now()
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatalf("openhpid exited early")
		default:
		}
		c := hpitreeCount(ctx, port)
		now := time.Now()
		if c >= 0 && answered == 0 {
			answered = now.Sub(start)
		}
		if (want > 0 && c >= want) || (want < 0 && c >= 0) {
			return now.Sub(start), answered, c, port, stop
		}
		if c != last {
			last, lastChange = c, now
		}
		if want == 0 && c > 0 && now.Sub(lastChange) >= settle {
			return lastChange.Sub(start), answered, c, port, stop
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	t.Fatalf("openhpid: %d RPT entries after 60 s (want %d)", last, want)
	return
}

// hpitreeCounts counts resources and RDRs in `hpitree -a` output.
func hpitreeCounts(out string) discoveryCounts {
	var c discoveryCounts
	c.Resources = len(resourceIDLine.FindAllString(out, -1))
	for _, line := range strings.Split(out, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(l, "RdrType:") && strings.Contains(l, "SENSOR"):
			c.Sensors++
		case strings.HasPrefix(l, "RdrType:") && strings.Contains(l, "CTRL"):
			c.Controls++
		case strings.HasPrefix(l, "RdrType:") && strings.Contains(l, "INVENTORY"):
			c.Inventories++
		}
	}
	return c
}

// TestBenchDiscovery: cold discovery of the lab shelf (ipmi_sim, shelf
// manager, fan tray, four blades) by hpiagent (one process: RMCP+ session,
// Discover with the first sweep, Model, Apply) and by openhpid with the
// ipmidirect plugin (daemon start until hpitree lists the full RPT), on
// the same simulator.
func TestBenchDiscovery(t *testing.T) {
	n := runs(t)
	labshelf.RequireTools(t, "hyperfine", "openhpid", "hpitree")
	if _, err := os.Stat("/usr/lib/openhpi/libipmidirect.so"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openhpi-plugin-ipmidirect is not installed")
		}
		t.Skip("openhpi-plugin-ipmidirect is not installed")
	}
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir := t.TempDir()
	quiet := slog.New(slog.DiscardHandler)

	// hpiagent: what it finds, then hyperfine over the child process.
	d, err := discoverOnce(ctx, sh.Addr(), sh.User, []byte(sh.Password), quiet)
	if err != nil {
		t.Fatal(err)
	}
	ours := countDomain(d)
	var paths []string
	for _, e := range d.Resources() {
		paths = append(paths, e.EntityPath.String())
	}
	slices.Sort(paths)

	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(sh.Password), 0o600); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(dir, "hyperfine.json")
	const agentName = "hpiagent: Dial + Discover (+first sweep) + Model + Apply, one process"
	hf := exec.CommandContext(ctx, "hyperfine", "-N", "--warmup", "3", "--runs", strconv.Itoa(n), "--export-json", export,
		"-n", agentName, os.Args[0]+" -test.run=^TestBenchDiscoveryOnce$ -test.count=1")
	hf.Env = append(os.Environ(), envDiscoverAddr+"="+sh.Addr(), envDiscoverUser+"="+sh.User, envDiscoverPW+"="+pwFile)
	if out, err := hf.CombinedOutput(); err != nil {
		t.Fatalf("hyperfine: %v\n%s", err, out)
	}
	var hr hyperfineResult
	if b, err := os.ReadFile(export); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &hr); err != nil {
		t.Fatal(err)
	}
	agentMed := hr.Results[0].Median
	agentTimes := hr.Results[0].Times

	// The same discovery inside a running process (no process start).
	var inproc []float64
	for i := range n + 3 {
		start := time.Now()
		if _, err := discoverOnce(ctx, sh.Addr(), sh.User, []byte(sh.Password), quiet); err != nil {
			t.Fatal(err)
		}
		if i >= 3 {
			inproc = append(inproc, time.Since(start).Seconds())
		}
	}

	// openhpid + ipmidirect: first run until the RPT stops growing, to
	// learn the full count; then timed runs until that count is listed.
	conf := openhpiConf(t, sh, dir, 1, "")
	_, _, full, port, stop := openhpidRun(ctx, t, conf, dir, 0, 3*time.Second)
	treeOut, _ := exec.CommandContext(ctx, "hpitree", "-N", fmt.Sprintf("127.0.0.1:%d", port), "-a").Output()
	stop()
	theirs := hpitreeCounts(string(treeOut))
	var answered []float64
	openhpid := func(conf string) []float64 {
		var ts []float64
		for range min(n, 10) {
			time.Sleep(500 * time.Millisecond) // let ipmi_sim close the old session
			d, a, _, _, stop := openhpidRun(ctx, t, conf, dir, full, 0)
			stop()
			ts = append(ts, d.Seconds())
			answered = append(answered, a.Seconds())
		}
		return ts
	}
	hpiTimes := openhpid(conf)
	hpiTimes4 := openhpid(openhpiConf(t, sh, dir, 4, ""))
	// openhpid's own start, without any plugin.
	emptyConf := filepath.Join(dir, "openhpi-empty.conf")
	if err := os.WriteFile(emptyConf, []byte(fmt.Sprintf("OPENHPI_PATH = \"/usr/lib/openhpi\"\nOPENHPI_VARPATH = %q\n", filepath.Join(dir, "hpi-var"))), 0o600); err != nil {
		t.Fatal(err)
	}
	var emptyStart []float64
	for range min(n, 5) {
		_, a, _, _, stop := openhpidRun(ctx, t, emptyConf, dir, -1, 0)
		stop()
		emptyStart = append(emptyStart, a.Seconds())
	}
	// ipmidirect's own discovery, from its message log: first IPMI
	// command to "All BMC Discoveries Completed".
	var ipmiSpans []float64
	for i := range min(n, 10) {
		logDir := filepath.Join(dir, fmt.Sprintf("log%d", i))
		if err := os.MkdirAll(logDir, 0o700); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		_, _, _, _, stop := openhpidRun(ctx, t, openhpiConf(t, sh, dir, 1, filepath.Join(logDir, "ipmidirect")), dir, full, 0)
		stop()
		span, err := ipmidirectSpan(logDir)
		if err != nil {
			t.Fatal(err)
		}
		ipmiSpans = append(ipmiSpans, span.Seconds())
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "Cold discovery of the lab shelf (ipmi_sim ATCA), %s\n\n", time.Now().UTC().Format(time.DateOnly))
	fmt.Fprintf(&sb, "| client | runs | median ms | min–max ms | openhpid / this |\n|---|---|---|---|---|\n")
	hpiMed := median(hpiTimes)
	row := func(name string, ts []float64) {
		fmt.Fprintf(&sb, "| %s | %d | %.1f | %.1f–%.1f | %.2f |\n", name, len(ts), median(ts)*1000, slices.Min(ts)*1000, slices.Max(ts)*1000, hpiMed/median(ts))
	}
	plain := func(name string, ts []float64) {
		fmt.Fprintf(&sb, "| %s | %d | %.1f | %.1f–%.1f | |\n", name, len(ts), median(ts)*1000, slices.Min(ts)*1000, slices.Max(ts)*1000)
	}
	row("openhpid + ipmidirect (MaxOutstanding 1, the lab's setting): daemon start → hpitree lists all RPT entries", hpiTimes)
	row("openhpid + ipmidirect (MaxOutstanding 4)", hpiTimes4)
	row(agentName, agentTimes)
	row("hpiagent: the same inside a running process", inproc)
	plain("openhpid without any plugin: daemon start → hpitree gets an answer", emptyStart)
	plain("ipmidirect's IPMI discovery alone (MaxOutstanding 1; first command → \"All BMC Discoveries Completed\" in its log)", ipmiSpans)
	fmt.Fprintf(&sb, "\nopenhpid answered hpitree for the first time %.1f ms after its start (median of its runs with ipmidirect), already with the full RPT; hpitree itself takes about 10–20 ms per poll.\n", median(answered)*1000)
	fmt.Fprintf(&sb, "Like for like: start → full RPT, openhpid / hpiagent one process = %.1f; IPMI discovery alone, ipmidirect (IPMI 1.5 MD5 session, its discovery as its log marks it) / hpiagent in a running process (RMCP+ session with RAKP, discovery, first sweep with thresholds, model, apply) = %.1f.\n",
		hpiMed/median(agentTimes), median(ipmiSpans)/median(inproc))
	_ = agentMed
	fmt.Fprintf(&sb, "\nWhat each found:\n\n| | resources | sensor RDRs | control RDRs | inventory RDRs |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&sb, "| openhpid + ipmidirect | %d | %d | %d | %d |\n", theirs.Resources, theirs.Sensors, theirs.Controls, theirs.Inventories)
	fmt.Fprintf(&sb, "| hpiagent | %d | %d | %d | %d |\n", ours.Resources, ours.Sensors, ours.Controls, ours.Inventories)
	fmt.Fprintf(&sb, "\nhpiagent entity paths:\n\n")
	for _, p := range paths {
		fmt.Fprintf(&sb, "    %s\n", p)
	}
	t.Log("\n" + sb.String())
	if err := os.MkdirAll("out", 0o755); err == nil {
		_ = os.WriteFile(filepath.Join("out", "discovery.md"), []byte(sb.String()), 0o644)
		_ = os.WriteFile(filepath.Join("out", "openhpid-hpitree.txt"), treeOut, 0o644)
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ipmidirectSpan reads ipmidirect's log files in dir and returns the time
// from its first IPMI command to "All BMC Discoveries Completed".
func ipmidirectSpan(dir string) (time.Duration, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "ipmidirect*"))
	slices.Sort(files)
	var first, done time.Time
	const layout = "2006.01.02 15:04:05.000"
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if len(line) < len(layout) {
				continue
			}
			ts, err := time.Parse(layout, line[:len(layout)])
			if err != nil {
				continue
			}
			rest := line[len(layout):]
			if first.IsZero() && strings.Contains(rest, ">cmd") {
				first = ts
			}
			if done.IsZero() && strings.Contains(rest, "All BMC Discoveries Completed") {
				done = ts
			}
		}
	}
	if first.IsZero() || done.IsZero() {
		return 0, fmt.Errorf("ipmidirect log in %s: no first command or no completion line", dir)
	}
	return done.Sub(first), nil
}
