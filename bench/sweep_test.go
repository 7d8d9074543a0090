// Package bench compares hpiagent with the peer tools on the same simulated
// shelf in one run. Nothing here asserts timings: the figures are ratios
// written to bench/out/ and recorded by hand in RESULTS.md. Run with
// `make bench` (HPIAGENT_BENCH=1 go test -run Bench -v ./bench/).
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
)

func runs(t *testing.T) int {
	if os.Getenv("HPIAGENT_BENCH") == "" {
		t.Skip("benchmark: set HPIAGENT_BENCH=1 (make bench)")
	}
	n, err := strconv.Atoi(os.Getenv("HPIAGENT_BENCH_RUNS"))
	if err != nil || n <= 0 {
		n = 30
	}
	return n
}

// hyperfineResult is the part of hyperfine's JSON export used here.
type hyperfineResult struct {
	Results []struct {
		Command string    `json:"command"`
		Median  float64   `json:"median"`
		Times   []float64 `json:"times"`
	} `json:"results"`
}

// TestBenchSensorSweep: every sensor of the lab shelf (ipmi_sim, 29 sensors,
// 24 of them behind IPMB bridging), read by one client process (including
// its start and RMCP+ session set-up) with ipmitool, FreeIPMI and hpiagent,
// and by the daemon's warm sweep over its open session.
func TestBenchSensorSweep(t *testing.T) {
	n := runs(t)
	labshelf.RequireTools(t, "hyperfine", "ipmitool", "ipmi-sensors")
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir := t.TempDir()

	bin := filepath.Join(dir, "hpiagent")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../cmd/hpiagent").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(sh.Password), 0o600); err != nil {
		t.Fatal(err)
	}
	// FreeIPMI's configuration and cache, as labshelf sets them up: run it
	// once through the harness to create them.
	if _, err := sh.IpmiSensors(ctx, "--bridge-sensors", "--sdr-cache-recreate"); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(sh.Dir, "run")
	port := strconv.Itoa(sh.Port)
	agent := fmt.Sprintf("%s sensors -address %s -user %s -password-file %s -cipher-suites 3", bin, sh.Addr(), sh.User, pwFile)
	cmds := []client{
		{"ipmitool sensor", fmt.Sprintf("ipmitool -I lanplus -H %s -p %s -U %s -E -C 3 sensor", sh.Host, port, sh.User)},
		{"ipmi-sensors --bridge-sensors (SDR cache warm)", fmt.Sprintf("ipmi-sensors --config-file=%s -h %s -D LAN_2_0 -I 3 -l ADMIN -W opensesspriv --bridge-sensors --sdr-cache-directory=%s",
			filepath.Join(run, "freeipmi.conf"), sh.Addr(), filepath.Join(run, "freeipmi-cache"))},
		{"hpiagent sensors (SDRs read every run)", agent},
		{"hpiagent sensors (SDR cache warm)", agent + " -sdr-cache " + filepath.Join(dir, "sdr.cache") + " -sdr-cache-max-age 1h"},
		{"hpiagent sensors -thresholds=false (SDR cache warm)", agent + " -thresholds=false -sdr-cache " + filepath.Join(dir, "sdr.cache") + " -sdr-cache-max-age 1h"},
	}
	export := filepath.Join(dir, "hyperfine.json")
	args := []string{"-N", "--warmup", "3", "--runs", strconv.Itoa(n), "--export-json", export}
	for _, c := range cmds {
		args = append(args, "-n", c.name, c.cmd)
	}
	hf := exec.CommandContext(ctx, "hyperfine", args...)
	hf.Env = append(os.Environ(), "IPMI_PASSWORD="+sh.Password)
	if out, err := hf.CombinedOutput(); err != nil {
		t.Fatalf("hyperfine: %v\n%s", err, out)
	} else {
		t.Logf("hyperfine:\n%s", out)
	}
	var hr hyperfineResult
	b, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &hr); err != nil {
		t.Fatal(err)
	}
	med := map[string]float64{}
	for _, r := range hr.Results {
		med[r.Command] = r.Median
	}

	// The daemon's warm sweep: one open session, SDRs in memory.
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	sdrs, err := ipmi.ReadSDRRepository(ctx, sess, ipmi.Addr{}, ipmi.MainSDR)
	if err != nil {
		t.Fatal(err)
	}
	sensors := shelf.SensorsOf(sdrs, ipmi.AddrBMC)
	var sweeps []float64
	for i := range n + 3 {
		start := time.Now()
		for _, r := range shelf.ReadSensors(ctx, sess, sensors, shelf.SweepOptions{InFlight: 6, Thresholds: true}) {
			if r.Err != nil {
				t.Fatalf("warm sweep: %s: %v", r.Sensor.Name, r.Err)
			}
		}
		if i >= 3 { // same warm-up as hyperfine
			sweeps = append(sweeps, time.Since(start).Seconds())
		}
	}
	slices.Sort(sweeps)
	warm := sweeps[len(sweeps)/2]
	const daemon = "hpiagent daemon warm sweep (open session)"
	med[daemon] = warm

	var sb strings.Builder
	ipmitool := med[cmds[0].name]
	fmt.Fprintf(&sb, "Sensor sweep of the lab shelf (%d sensors, %d bridged), median of %d runs, %s\n\n", len(sensors), countBridged(sensors), n, time.Now().UTC().Format(time.DateOnly))
	fmt.Fprintf(&sb, "| client | median ms | ipmitool sensor / this |\n|---|---|---|\n")
	for _, name := range append(names(cmds), daemon) {
		fmt.Fprintf(&sb, "| %s | %.1f | %.2f |\n", name, med[name]*1000, ipmitool/med[name])
	}
	fmt.Fprintf(&sb, "\nLike for like: hpiagent one-shot with thresholds vs ipmitool sensor (both read readings and thresholds): %.2fx faster;\n", ipmitool/med[cmds[3].name])
	fmt.Fprintf(&sb, "hpiagent one-shot without thresholds vs ipmi-sensors (readings only), both with a warm SDR cache: %.2fx faster.\n", med[cmds[1].name]/med[cmds[4].name])
	fmt.Fprintf(&sb, "session stats after the warm sweeps: %+v\n", sess.Stats())
	t.Log("\n" + sb.String())
	if err := os.MkdirAll("out", 0o755); err == nil {
		os.WriteFile(filepath.Join("out", "sensor-sweep.md"), []byte(sb.String()), 0o644)
	}
}

// client is one command timed by hyperfine.
type client struct{ name, cmd string }

func names(cs []client) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.name)
	}
	return out
}

func countBridged(ss []shelf.Sensor) int {
	n := 0
	for _, s := range ss {
		if !s.Owner.Local() {
			n++
		}
	}
	return n
}
