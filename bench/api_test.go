package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hpiagent/internal/pki"
)

// apiLoadResult is the part of apiload's JSON output used here.
type apiLoadResult struct {
	Connections int            `json:"connections"`
	Dials       int64          `json:"dials"`
	Requests    uint64         `json:"requests"`
	Errors      uint64         `json:"errors"`
	Statuses    map[string]int `json:"statuses"`
	RPS         float64        `json:"rps"`
	BytesPerReq float64        `json:"bytes_per_request"`
	P50Ms       float64        `json:"p50_ms"`
	P99Ms       float64        `json:"p99_ms"`
}

// apiServer is a server process the load generator is pointed at.
type apiServer struct {
	name          string
	pid           int
	url           string
	ca, cert, key string
	// sensorPaths and rdrPaths are files of request paths.
	sensorPaths, rdrPaths string
}

// apiRow is one measured row: a server and the paths requested.
type apiRow struct {
	name   string
	server *apiServer
	// paths is a file of paths, or "" for one fixed path "/".
	paths string
}

// TestBenchAPI: cached sensor reads over mutual TLS with keep-alive, from
// the load generator bench/cmd/apiload running as its own process:
// requests per second and latency quantiles, against
//
//   - the API with a domain of 1,000 synthetic sensors (bench/cmd/apiserve),
//   - baselines answering the same fixed JSON body from a bare net/http
//     handler over the same mutual TLS, over TLS without client
//     certificates and over plain HTTP, so that the API's own cost is a
//     ratio,
//   - the real agent (`hpiagent run`) polling the demo shelf of
//     `hpiagent demo`, with the API's rate limit lifted,
//   - the real agent polling a simulated shelf (bench/cmd/simshelf, its own
//     process) whose blades carry 1,000 sensors behind IPMB bridging.
//
// It then reads VmRSS and VmHWM of the server processes after the load.
// HPIAGENT_BENCH_API_RUNS (default 3) runs per row, HPIAGENT_BENCH_API_SECONDS
// (default 5) measured seconds after 2 s of warm-up, HPIAGENT_BENCH_API_CONNS
// (default "1,8") the connection counts, HPIAGENT_BENCH_API_SENSORS (default
// 1000) the synthetic domain's size.
func TestBenchAPI(t *testing.T) {
	runs(t)
	reps := benchEnvInt("HPIAGENT_BENCH_API_RUNS", 3)
	secs := benchEnvInt("HPIAGENT_BENCH_API_SECONDS", 5)
	sensors := benchEnvInt("HPIAGENT_BENCH_API_SENSORS", 1000)
	conns := []int{1, 8}
	if s := os.Getenv("HPIAGENT_BENCH_API_CONNS"); s != "" {
		conns = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				t.Fatalf("HPIAGENT_BENCH_API_CONNS=%q: want a list of positive integers", s)
			}
			conns = append(conns, n)
		}
	}
	load0 := loadAvg()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := func(name, pkg string) string {
		p := filepath.Join(dir, name)
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", p, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
		return p
	}
	loadBin := bin("apiload", "./cmd/apiload")
	serveBin := bin("apiserve", "./cmd/apiserve")
	agentBin := bin("hpiagent", "../cmd/hpiagent")

	api := startAPIServe(ctx, t, serveBin, filepath.Join(dir, "api"), "api", sensors)
	rssIdle := readRSS(t, api.pid)
	mtls := startAPIServe(ctx, t, serveBin, filepath.Join(dir, "static-mtls"), "static-mtls", sensors)
	stls := startAPIServe(ctx, t, serveBin, filepath.Join(dir, "static-tls"), "static-tls", sensors)
	plain := startAPIServe(ctx, t, serveBin, filepath.Join(dir, "static-plain"), "static-plain", sensors)
	demo, agent := startDemoAgent(ctx, t, agentBin, filepath.Join(dir, "demo"))
	big := startBigShelfAgent(ctx, t, bin("simshelf", "./cmd/simshelf"), agentBin, filepath.Join(dir, "big"), sensors)

	rows := []apiRow{
		{fmt.Sprintf("API, GET one sensor (cycling through %d)", sensors), api, api.sensorPaths},
		{"API, GET the RDRs of a resource (64 sensors)", api, api.rdrPaths},
		{"net/http fixed sensor body, mutual TLS 1.3", mtls, ""},
		{"net/http fixed sensor body, TLS 1.3", stls, ""},
		{"net/http fixed sensor body, plain HTTP", plain, ""},
		{"agent on the demo shelf, GET one sensor", agent, agent.sensorPaths},
		{"agent on the demo shelf, GET the RDRs of a resource", agent, agent.rdrPaths},
		{fmt.Sprintf("agent on a %d-sensor shelf, GET one sensor", sensors), big, big.sensorPaths},
		{fmt.Sprintf("agent on a %d-sensor shelf, GET the RDRs of a resource", sensors), big, big.rdrPaths},
	}
	// The reference of the ratios: the same bytes from a bare handler
	// over the same mutual TLS.
	baseline := slices.IndexFunc(rows, func(r apiRow) bool { return r.server == mtls })
	type key struct{ row, conns int }
	results := map[key][]apiLoadResult{}
	for rep := range reps {
		for k := range rows {
			i := (k + rep) % len(rows)
			for _, c := range conns {
				r := runAPILoad(ctx, t, loadBin, rows[i], c, secs)
				results[key{i, c}] = append(results[key{i, c}], r)
			}
		}
	}
	rssAPI := readRSS(t, api.pid)
	rssAgent := readRSS(t, agent.pid)
	rssDemo := readRSS(t, demo.pid)
	rssBig := readRSS(t, big.pid)

	var sb strings.Builder
	fmt.Fprintf(&sb, "API reads over keep-alive connections from a separate load-generator process, %d s measured after 2 s warm-up, median of %d runs per row, %s\n\n",
		secs, reps, time.Now().UTC().Format(time.DateOnly))
	for _, c := range conns {
		ref := apiMedian(results[key{baseline, c}], func(r apiLoadResult) float64 { return r.RPS })
		fmt.Fprintf(&sb, "### %d connection(s)\n\n| row | req/s | p50 ms | p99 ms | bytes/response | req/s vs net/http mTLS fixed body |\n|---|---|---|---|---|---|\n", c)
		for i, row := range rows {
			rs := results[key{i, c}]
			rps := apiMedian(rs, func(r apiLoadResult) float64 { return r.RPS })
			fmt.Fprintf(&sb, "| %s | %.0f | %.3f | %.3f | %.0f | %.2f |\n", row.name, rps,
				apiMedian(rs, func(r apiLoadResult) float64 { return r.P50Ms }),
				apiMedian(rs, func(r apiLoadResult) float64 { return r.P99Ms }),
				apiMedian(rs, func(r apiLoadResult) float64 { return r.BytesPerReq }), rps/ref)
		}
		sb.WriteString("\n")
	}
	fmt.Fprintf(&sb, "### Resident memory (kB, /proc/<pid>/status)\n\n| process | VmRSS | VmHWM |\n|---|---|---|\n")
	fmt.Fprintf(&sb, "| apiserve, API with %d synthetic sensors, idle after start | %d | %d |\n", sensors, rssIdle.rss, rssIdle.hwm)
	fmt.Fprintf(&sb, "| apiserve, API with %d synthetic sensors, after the load | %d | %d |\n", sensors, rssAPI.rss, rssAPI.hwm)
	fmt.Fprintf(&sb, "| hpiagent run on the demo shelf (%d sensors), after the load | %d | %d |\n", countLines(t, agent.sensorPaths), rssAgent.rss, rssAgent.hwm)
	fmt.Fprintf(&sb, "| hpiagent demo (agent and embedded shelf in one process), API idle | %d | %d |\n", rssDemo.rss, rssDemo.hwm)
	fmt.Fprintf(&sb, "| hpiagent run on a simulated shelf with %d blade sensors (%d listed by the API), after the load | %d | %d |\n", sensors, countLines(t, big.sensorPaths), rssBig.rss, rssBig.hwm)
	fmt.Fprintf(&sb, "\nLoad average (/proc/loadavg) at the start: %s, at the end: %s\n", load0, loadAvg())
	t.Log("\n" + sb.String())
	if err := os.MkdirAll("out", 0o755); err == nil {
		os.WriteFile(filepath.Join("out", "api.md"), []byte(sb.String()), 0o644)
	}
}

// apiMedian returns the median of f over rs.
func apiMedian(rs []apiLoadResult, f func(apiLoadResult) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// runAPILoad runs the load generator against row for secs seconds with c
// connections. Any failed request fails the test: a benchmark of errors
// measures nothing.
func runAPILoad(ctx context.Context, t *testing.T, loadBin string, row apiRow, c, secs int) apiLoadResult {
	t.Helper()
	s := row.server
	args := []string{"-url", s.url, "-c", strconv.Itoa(c), "-d", fmt.Sprintf("%ds", secs), "-warmup", "2s", "-json"}
	if strings.HasPrefix(s.url, "https://") {
		args = append(args, "-ca", s.ca, "-cert", s.cert, "-key", s.key)
	}
	if row.paths != "" {
		args = append(args, "-paths-file", row.paths)
	}
	out, err := exec.CommandContext(ctx, loadBin, args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("apiload %s: %v\n%s\n%s", row.name, err, out, stderr)
	}
	var r apiLoadResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("apiload %s: %v\n%s", row.name, err, out)
	}
	// Keep-alive must hold: a connection re-dialled now and then (one in
	// tens of thousands of requests) is noise; a dial per request is not.
	switch {
	case r.Dials > 2*int64(c):
		t.Errorf("apiload %s: %d connections dialled for %d over %d requests: keep-alive did not hold", row.name, r.Dials, c, r.Requests)
	case r.Dials != int64(c):
		t.Logf("apiload %s: %d connections dialled for %d over %d requests", row.name, r.Dials, c, r.Requests)
	}
	t.Logf("%s, %d conn: %.0f req/s, p50 %.3f ms, p99 %.3f ms", row.name, c, r.RPS, r.P50Ms, r.P99Ms)
	return r
}

// startAPIServe starts bench/cmd/apiserve in mode and waits for its ready
// line.
func startAPIServe(ctx context.Context, t *testing.T, bin, dir, mode string, sensors int) *apiServer {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "-dir", dir, "-mode", mode, "-sensors", strconv.Itoa(sensors))
	lines := startProcess(t, cmd, true)
	select {
	case line := <-lines:
		var r struct {
			PID         int    `json:"pid"`
			URL         string `json:"url"`
			CA          string `json:"ca"`
			Cert        string `json:"cert"`
			Key         string `json:"key"`
			SensorPaths string `json:"sensor_paths"`
			RDRPaths    string `json:"rdr_paths"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("apiserve %s: ready line %q: %v", mode, line, err)
		}
		return &apiServer{name: "apiserve " + mode, pid: r.PID, url: r.URL, ca: r.CA, cert: r.Cert, key: r.Key, sensorPaths: r.SensorPaths, rdrPaths: r.RDRPaths}
	case <-time.After(30 * time.Second):
		t.Fatalf("apiserve %s did not become ready", mode)
	}
	return nil
}

// startDemoAgent starts `hpiagent demo` (its embedded shelf and its own
// agent) and a second agent, `hpiagent run`, on the demo's configuration
// with its own audit log and the API rate limit lifted, so that load
// measures the agent, not its limiter. It writes the sensor and RDR paths
// the agent's API lists.
func startDemoAgent(ctx context.Context, t *testing.T, bin, dir string) (demo, agent *apiServer) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "demo", "-quiet", "-hotswap-every", "0", "-state-dir", dir, "-log-level", "info")
	lines := startProcess(t, cmd, true)
	demo = &apiServer{name: "hpiagent demo", pid: cmd.Process.Pid}
	deadline := time.After(60 * time.Second)
	for demo.key == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("hpiagent demo exited before it was ready")
			}
			line = strings.TrimSpace(line)
			for prefix, dst := range map[string]*string{"export HPICTL_ENDPOINT=": &demo.url, "export HPICTL_CA=": &demo.ca, "export HPICTL_CERT=": &demo.cert, "export HPICTL_KEY=": &demo.key} {
				if v, ok := strings.CutPrefix(line, prefix); ok {
					*dst = v
				}
			}
		case <-deadline:
			t.Fatal("hpiagent demo did not become ready in 60 s")
		}
	}

	// The second agent: the demo's configuration, its own audit log, no
	// effective rate limit.
	cfg, err := os.ReadFile(filepath.Join(dir, "hpiagent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	auditRe := regexp.MustCompile(`(?m)^audit:\n  path: .*$`)
	if !auditRe.Match(cfg) {
		t.Fatalf("the demo configuration has no audit section in the expected form:\n%s", cfg)
	}
	runDir := filepath.Join(dir, "run")
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg = auditRe.ReplaceAll(cfg, fmt.Appendf(nil, "  rate_limit:\n    per_second: 1000000000\n    burst: 1000000000\naudit:\n  path: %q", filepath.Join(runDir, "audit.log")))
	runCfg := filepath.Join(runDir, "hpiagent.yaml")
	if err := os.WriteFile(runCfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	agent = &apiServer{name: "hpiagent run", ca: demo.ca, cert: demo.cert, key: demo.key}
	agent.pid, agent.url = startAgent(ctx, t, bin, runCfg)
	agent.sensorPaths, agent.rdrPaths = listAgentPaths(ctx, t, agent, runDir)
	return demo, agent
}

// startBigShelfAgent starts bench/cmd/simshelf with sensors blade sensors
// and `hpiagent run` against it, with its own throwaway PKI and the API
// rate limit lifted, and waits until the agent is ready.
func startBigShelfAgent(ctx context.Context, t *testing.T, simBin, agentBin, dir string, sensors int) *apiServer {
	t.Helper()
	lines := startProcess(t, exec.CommandContext(ctx, simBin, "-dir", dir, "-sensors", strconv.Itoa(sensors)), true)
	var shelf struct {
		Addr         string `json:"addr"`
		User         string `json:"user"`
		PasswordFile string `json:"password_file"`
	}
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &shelf); err != nil {
			t.Fatalf("simshelf: ready line %q: %v", line, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("simshelf did not become ready")
	}
	ca, err := pki.NewCA("bench-big-ca", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue(pki.IssueRequest{Name: "bench-agent", Kind: pki.KindServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(pki.IssueRequest{Name: "bench-load", Kind: pki.KindClient, Validity: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, save := range []func(string) error{ca.Save, server.Save, client.Save} {
		if err := save(dir); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`log_level: info
shelves:
  - name: bench
    address: %q
    username: %s
    password: {file: %q}
api:
  listen: "127.0.0.1:0"
  tls:
    cert: %q
    key: {file: %q}
    ca: %q
  roles:
    %q: [viewer]
  rate_limit:
    per_second: 1000000000
    burst: 1000000000
audit:
  path: %q
`, shelf.Addr, shelf.User, shelf.PasswordFile, pki.CertFile(dir, "bench-agent"), pki.KeyFile(dir, "bench-agent"), pki.CertFile(dir, "ca"),
		pki.IdentityURI(pki.KindClient, "bench-load").String(), filepath.Join(dir, "audit.log"))
	cfgFile := filepath.Join(dir, "hpiagent.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := &apiServer{name: "hpiagent run (big shelf)", ca: pki.CertFile(dir, "ca"), cert: pki.CertFile(dir, "bench-load"), key: pki.KeyFile(dir, "bench-load")}
	agent.pid, agent.url = startAgent(ctx, t, agentBin, cfgFile)
	agent.sensorPaths, agent.rdrPaths = listAgentPaths(ctx, t, agent, dir)
	return agent
}

// startAgent starts `hpiagent run -config cfgFile` and waits until it is
// ready; it returns the process ID and the API's URL.
func startAgent(ctx context.Context, t *testing.T, bin, cfgFile string) (int, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "run", "-config", cfgFile)
	lines := startProcess(t, cmd, false)
	listening := regexp.MustCompile(`msg="API listening" addr=(\S+)`)
	deadline := time.After(120 * time.Second)
	url := ""
	for ready := false; !ready; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("hpiagent run -config %s exited before it was ready", cfgFile)
			}
			if m := listening.FindStringSubmatch(line); m != nil {
				url = "https://" + m[1]
			}
			ready = strings.Contains(line, `msg="hpiagent ready"`)
		case <-deadline:
			t.Fatalf("hpiagent run -config %s did not become ready in 120 s", cfgFile)
		}
	}
	if url == "" {
		t.Fatal("hpiagent run did not log its API address")
	}
	return cmd.Process.Pid, url
}

// listAgentPaths asks the agent's API for its resources and their sensor
// RDRs and writes the request paths.
func listAgentPaths(ctx context.Context, t *testing.T, s *apiServer, dir string) (sensorPaths, rdrPaths string) {
	t.Helper()
	ca, err := pki.LoadCACert(s.ca)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.LoadKeyPair(s.cert, s.key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{cert.TLSCertificate()}}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	getJSON := func(path string, v any) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d: %s", path, resp.StatusCode, b)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, b)
		}
	}
	var resources []struct {
		ID uint32 `json:"id"`
	}
	getJSON("/v1/resources", &resources)
	var sensors, rdrs strings.Builder
	for _, r := range resources {
		var list []struct {
			Type string `json:"type"`
			Num  uint32 `json:"num"`
		}
		getJSON(fmt.Sprintf("/v1/resources/%d/rdrs", r.ID), &list)
		n := 0
		for _, rdr := range list {
			if rdr.Type == "SENSOR_RDR" {
				fmt.Fprintf(&sensors, "/v1/resources/%d/sensors/%d\n", r.ID, rdr.Num)
				n++
			}
		}
		if n > 0 {
			fmt.Fprintf(&rdrs, "/v1/resources/%d/rdrs\n", r.ID)
		}
	}
	if sensors.Len() == 0 {
		t.Fatalf("the agent's API lists no sensor among %d resources", len(resources))
	}
	sensorPaths, rdrPaths = filepath.Join(dir, "sensor-paths.txt"), filepath.Join(dir, "rdr-paths.txt")
	if err := os.WriteFile(sensorPaths, []byte(sensors.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rdrPaths, []byte(rdrs.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return sensorPaths, rdrPaths
}

// startProcess starts cmd and returns its stdout (or stderr) lines; the
// other stream is logged. The process gets SIGTERM at cleanup.
func startProcess(t *testing.T, cmd *exec.Cmd, stdoutLines bool) <-chan string {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errp, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	lines := make(chan string, 1024)
	var wg sync.WaitGroup
	scan := func(r io.Reader, send bool) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if send {
				select {
				case lines <- sc.Text():
				default: // nobody reads any more
				}
			}
		}
	}
	wg.Add(2)
	go scan(out, stdoutLines)
	go scan(errp, !stdoutLines)
	go func() { wg.Wait(); close(lines) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { wg.Wait(); cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return lines
}

// rssKB are a process's resident set size and its peak.
type rssKB struct{ rss, hwm int }

// readRSS reads VmRSS and VmHWM of pid.
func readRSS(t *testing.T, pid int) rssKB {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the memory of process %d: %v", pid, err)
	}
	var r rssKB
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			r.rss = n
		case "VmHWM:":
			r.hwm = n
		}
	}
	if r.rss == 0 {
		t.Fatalf("process %d: no VmRSS in /proc/%d/status", pid, pid)
	}
	return r
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}
