package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds a command of this module into dir.
func buildBinary(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// TestDemoEndToEnd is the README's first command, as a user runs it: the
// hpiagent demo binary, queried with the hpictl binary exactly as the demo
// says, through a scripted hot-swap, then stopped with SIGTERM.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries and runs the demo")
	}
	t.Parallel()
	bin := t.TempDir()
	agent := buildBinary(t, bin, "./cmd/hpiagent")
	hpictl := buildBinary(t, bin, "./cmd/hpictl")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	state := t.TempDir()
	demo := exec.CommandContext(ctx, agent, "demo", "-hotswap-every", "2s", "-interval", "1s", "-state-dir", state, "-quiet")
	var stderr syncBuffer
	demo.Stderr = &stderr
	stdout, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	defer func() {
		if demo.ProcessState == nil {
			demo.Process.Kill()
			<-exited
		}
	}()

	// Read the instructions up to the flags example.
	env := map[string]string{}
	var flagsLine string
	lines := bufio.NewScanner(stdout)
	exportRE := regexp.MustCompile(`^\s+export (HPICTL_[A-Z]+)=(\S+)$`)
	for lines.Scan() {
		l := lines.Text()
		if m := exportRE.FindStringSubmatch(l); m != nil {
			env[m[1]] = m[2]
		}
		if strings.Contains(l, "hpictl resources --endpoint") {
			flagsLine = l
			break
		}
	}
	go func() {
		for lines.Scan() {
		}
		exited <- demo.Wait()
	}()
	for _, k := range []string{"HPICTL_ENDPOINT", "HPICTL_CA", "HPICTL_CERT", "HPICTL_KEY"} {
		if env[k] == "" {
			t.Fatalf("the demo did not print %s\nstderr:\n%s", k, stderr.String())
		}
	}
	// The environment of hpictl is only what the demo printed (and PATH).
	hpictlEnv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		hpictlEnv = append(hpictlEnv, k+"="+v)
	}
	runCtl := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, hpictl, args...)
		cmd.Env = hpictlEnv
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("hpictl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	res := runCtl("resources", "--json")
	var rpt []map[string]any
	if err := json.Unmarshal([]byte(res), &rpt); err != nil {
		t.Fatalf("hpictl resources --json: %v\n%s", err, res)
	}
	if len(rpt) < 2 {
		t.Fatalf("%d resources:\n%s", len(rpt), res)
	}
	if table := runCtl("resources"); !strings.Contains(table, "{ADVANCEDTCA_CHASSIS,1}") {
		t.Errorf("resources table without entity paths:\n%s", table)
	}
	// The flags form the demo printed works too.
	f := strings.Fields(flagsLine)
	if i := slicesIndex(f, "resources"); i < 0 || len(f) < i+9 {
		t.Errorf("flags line %q", flagsLine)
	} else {
		cmd := exec.CommandContext(ctx, hpictl, f[i:]...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "{ADVANCEDTCA_CHASSIS,1}") {
			t.Errorf("hpictl with the printed flags: %v\n%s", err, out)
		}
	}
	sensors := runCtl("sensors")
	if !regexp.MustCompile(`(?m)^\d+\s+\d+\s+`).MatchString(sensors) {
		t.Errorf("no sensor rows:\n%s", sensors)
	}

	// Follow the event stream through a scripted extraction and insertion:
	// one resource goes ACTIVE -> EXTRACTION_PENDING -> INACTIVE ->
	// INSERTION_PENDING -> ACTIVE.
	fctx, fcancel := context.WithTimeout(ctx, 60*time.Second)
	defer fcancel()
	follow := exec.CommandContext(fctx, hpictl, "events", "--follow", "--json")
	follow.Env = hpictlEnv
	fout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var ferr syncBuffer
	follow.Stderr = &ferr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	want := []string{"EXTRACTION_PENDING", "INACTIVE", "INSERTION_PENDING", "ACTIVE"}
	seen := map[float64][]string{} // by source: hot-swap states in order
	var lastID float64
	done := false
	ev := bufio.NewScanner(fout)
	for !done && ev.Scan() {
		var e struct {
			ID      float64 `json:"id"`
			Source  float64 `json:"source"`
			Type    string  `json:"type"`
			HotSwap struct {
				State    string `json:"state"`
				Previous string `json:"previous_state"`
			} `json:"hotswap"`
		}
		if err := json.Unmarshal(ev.Bytes(), &e); err != nil {
			t.Fatalf("event line %q: %v", ev.Text(), err)
		}
		if e.ID <= lastID {
			t.Errorf("event %v after %v: not increasing", e.ID, lastID)
		}
		lastID = e.ID
		if e.Type != "HOTSWAP" {
			continue
		}
		s := seen[e.Source]
		if len(s) > 0 && s[len(s)-1] != e.HotSwap.Previous {
			t.Errorf("resource %v: %s -> %s after %v", e.Source, e.HotSwap.Previous, e.HotSwap.State, s)
		}
		if len(s) == 0 && e.HotSwap.State != "EXTRACTION_PENDING" {
			continue // joined in the middle of a swap
		}
		seen[e.Source] = append(s, e.HotSwap.State)
		if strings.Join(seen[e.Source], ",") == strings.Join(want, ",") {
			done = true
		}
	}
	fcancel()
	follow.Wait()
	if !done {
		t.Fatalf("no complete hot-swap sequence in the event stream: %v\nhpictl stderr:\n%s\nagent stderr:\n%s", seen, ferr.String(), stderr.String())
	}

	// SIGTERM: a clean exit with status 0.
	if err := demo.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Fatalf("demo exit after SIGTERM: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the demo did not exit after SIGTERM")
	}
	logs := stderr.String()
	if !strings.Contains(logs, "hpiagent stopped") {
		t.Errorf("no clean stop in the log:\n%s", logs)
	}
	if strings.Contains(logs, "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs)
	}

	t.Run("run under systemd notify", func(t *testing.T) { runUnderNotify(t, agent) })
}

// runUnderNotify starts `hpiagent run` as systemd would for Type=notify
// with WatchdogSec=, against the embedded shelf: READY=1, WATCHDOG=1,
// SIGHUP gives RELOADING=1 and READY=1 again, SIGTERM gives STOPPING=1 and
// exit status 0.
func runUnderNotify(t *testing.T, agent string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const password = "run-binary-pw"
	_, shelfAddr := startSimShelf(t, ctx, password)
	dir := t.TempDir()
	dp, err := writeDemoFiles(dir, shelfAddr, password, "127.0.0.1:0", time.Second, "info")
	if err != nil {
		t.Fatal(err)
	}
	notifyAddr, notes := newNotifications(t)
	cmd := exec.CommandContext(ctx, agent, "run", "-config", dp.config)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "NOTIFY_SOCKET=" + notifyAddr, "WATCHDOG_USEC=1000000"}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()
	notes.await(t, "READY=1")
	notes.await(t, "WATCHDOG=1")
	cmd.Process.Signal(syscall.SIGHUP)
	notes.await(t, "RELOADING=1")
	notes.await(t, "READY=1")
	cmd.Process.Signal(syscall.SIGTERM)
	notes.await(t, "STOPPING=1")
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if !strings.Contains(stderr.String(), "configuration reloaded") {
		t.Errorf("no reload in the log:\n%s", stderr.String())
	}
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
