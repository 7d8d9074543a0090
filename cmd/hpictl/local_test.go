package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/api/audit"
	"hpiagent/cmd/hpictl/internal/apiclient"
	"hpiagent/internal/pki"
)

func writeAuditLog(t *testing.T, n int) (string, [][]byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if err := l.Append(context.Background(), audit.Record{Actor: "hpiagent://client/ops", Roles: []string{"operator"},
			Action: "hotswap.action", Target: fmt.Sprintf("resource %d", i), Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	b, _ := os.ReadFile(path)
	return path, bytes.SplitAfter(b, []byte("\n"))[:n]
}

func TestAuditVerify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mutate   func(l [][]byte) [][]byte
		wantCode int
		wantOut  string
	}{
		{"intact", func(l [][]byte) [][]byte { return l }, 0, "chain intact: 4 records, last seq 4"},
		{"changed", func(l [][]byte) [][]byte {
			l[1] = bytes.Replace(l[1], []byte("resource 2"), []byte("resource 9"), 1)
			return l
		}, 1, "line 2 (seq 2): changed"},
		{"removed", func(l [][]byte) [][]byte { return append(l[:1:1], l[2:]...) }, 1, "line 2 (seq 3): sequence"},
		{"reordered", func(l [][]byte) [][]byte {
			l[2], l[3] = l[3], l[2]
			return l
		}, 1, "line 3 (seq 4): sequence"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, lines := writeAuditLog(t, 4)
			os.WriteFile(path, bytes.Join(tc.mutate(lines), nil), 0o600)
			code, out, errs := runCLI(t, nil, "audit", "verify", path)
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) {
				t.Fatalf("exit %d (want %d)\n%s%s\nwant %q", code, tc.wantCode, out, errs, tc.wantOut)
			}
		})
	}
	// An anchor catches records cut off the end.
	path, lines := writeAuditLog(t, 4)
	last, err := audit.ParseLine(lines[3])
	if err != nil {
		t.Fatal(err)
	}
	anchor := audit.Anchor{Seq: last.Seq, Hash: last.Hash}.String()
	if code, out, _ := runCLI(t, nil, "audit", "verify", "--anchor", anchor, path); code != 0 {
		t.Fatalf("anchored intact log: exit %d\n%s", code, out)
	}
	os.WriteFile(path, bytes.Join(lines[:3], nil), 0o600)
	if code, out, _ := runCLI(t, nil, "audit", "verify", path); code != 0 {
		t.Fatalf("cut log without anchor: exit %d\n%s", code, out)
	}
	if code, out, _ := runCLI(t, nil, "audit", "verify", path, "--anchor", anchor); code != ExitError || !strings.Contains(out, "anchor") {
		t.Fatalf("cut log with anchor: exit %d\n%s", code, out)
	}
	if code, _, _ := runCLI(t, nil, "audit", "verify", path, "--anchor", "4:xyz"); code != ExitUsage {
		t.Fatalf("bad anchor: exit %d", code)
	}
	if code, _, _ := runCLI(t, nil, "audit", "verify", filepath.Join(t.TempDir(), "missing")); code != ExitError {
		t.Fatalf("missing file: exit %d", code)
	}
	if code, _, _ := runCLI(t, nil, "audit", "check", "x"); code != ExitUsage {
		t.Fatalf("unknown subcommand: exit %d", code)
	}
}

// TestPKICommandsMakeWorkingTLS: pki init and issue write files that a
// mutual-TLS handshake accepts, and hpictl talks through them.
func TestPKICommandsMakeWorkingTLS(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pki")
	steps := [][]string{
		{"pki", "init", dir, "--ca-name", "lab"},
		{"pki", "issue", dir, "--name", "agent1", "--kind", "server", "--dns", "localhost", "--ip", "127.0.0.1"},
		{"pki", "issue", dir, "--name", "ops", "--kind", "client"},
	}
	for _, s := range steps {
		if code, out, errs := runCLI(t, nil, s...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", s, code, out, errs)
		}
	}
	for _, f := range []string{pki.CAKeyFile, "agent1.key", "ops.key"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", f, fi.Mode(), err)
		}
	}
	refusals := [][]string{
		{"pki", "init", dir}, // CA exists
		{"pki", "issue", dir, "--name", "ops", "--kind", "client"}, // name exists
		{"pki", "issue", dir, "--name", "x", "--kind", "admin"},
		{"pki", "issue", dir, "--name", "x/y", "--kind", "client"},
		{"pki", "issue", dir, "--kind", "client"},
	}
	for _, s := range refusals {
		if code, _, _ := runCLI(t, nil, s...); code == 0 {
			t.Errorf("%v succeeded", s)
		}
	}

	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := pki.LoadCert(dir, "agent1")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := pki.TLSConfigServer(ca, srvCert)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pki.Identity(r.TLS.PeerCertificates[0])
		if err != nil {
			apiErr(w, 403, "no_role", err.Error())
			return
		}
		reply(w, apiclient.WhoAmI{Identity: id, Roles: []string{}, Permissions: []string{}})
	}))
	s.TLS = sc
	s.StartTLS()
	defer s.Close()
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	for _, host := range []string{"127.0.0.1", "localhost"} {
		code, out, errs := runCLI(t, nil, "whoami", "--endpoint", "https://"+net.JoinHostPort(host, port),
			"--ca", filepath.Join(dir, pki.CACertFile), "--cert", filepath.Join(dir, "ops.crt"), "--key", filepath.Join(dir, "ops.key"))
		if code != 0 || !strings.Contains(out, "hpiagent://client/ops") {
			t.Fatalf("whoami via %s: exit %d\n%s%s", host, code, out, errs)
		}
	}
	// The server's own certificate is not a client certificate.
	code, _, _ := runCLI(t, nil, "whoami", "--endpoint", s.URL,
		"--ca", filepath.Join(dir, pki.CACertFile), "--cert", filepath.Join(dir, "agent1.crt"), "--key", filepath.Join(dir, "agent1.key"))
	if code != ExitTLS {
		t.Fatalf("server certificate used as client: exit %d, want %d", code, ExitTLS)
	}
}

// syncBuffer is a goroutine-safe writer that cancels when it sees stop.
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	stop   string
	cancel context.CancelFunc
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
	if strings.Contains(s.b.String(), s.stop) {
		s.cancel()
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEventsFollow: `hpictl events --follow` over a stream that drops
// twice prints every event once, in order, and resumes with Last-Event-ID.
func TestEventsFollow(t *testing.T) {
	t.Parallel()
	p := newLabPKI(t)
	ev := func(id int) string {
		return fmt.Sprintf("id: %d\nevent: hpi\ndata: {\"id\":%d,\"type\":\"USER\",\"severity\":\"INFORMATIONAL\",\"user\":{\"data\":\"note %d\"}}\n\n", id, id, id)
	}
	script := []string{ev(11) + ev(12), ev(12) + ev(13) + "id: 14\nevent: hpi\ndata: {\"id\"", ev(14) + ev(15)}
	var mu sync.Mutex
	var lastIDs []string
	conn := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/events" {
			apiErr(w, 404, "not_found", "unexpected")
			return
		}
		mu.Lock()
		i := conn
		conn++
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		if i < len(script) {
			w.Write([]byte(script[i]))
			w.(http.Flusher).Flush()
			if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
				c.Close()
			}
			return
		}
		<-r.Context().Done()
	})
	sc, err := pki.TLSConfigServer(p.ca, p.srv)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(h)
	s.TLS = sc
	s.StartTLS()
	defer s.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{stop: `"id":15`, cancel: cancel}
	var errb bytes.Buffer
	a := &app{stdout: out, stderr: &errb, getenv: func(string) string { return "" },
		clientHook: func(c *apiclient.Config) {
			c.Sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
		}}
	args := append([]string{"events", "--follow", "--after", "10", "--json"}, p.flags(s.URL)...)
	if code := a.run(ctx, args); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var id int
		fmt.Sscanf(line, `{"id":%d`, &id)
		ids = append(ids, fmt.Sprint(id))
	}
	if got := strings.Join(ids, " "); got != "11 12 13 14 15" {
		t.Fatalf("printed events %q, want 11 12 13 14 15\n%s", got, out.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(lastIDs, ","); got != "10,12,13" {
		t.Fatalf("Last-Event-ID %q, want 10,12,13", got)
	}
	if !strings.Contains(errb.String(), "reconnecting") {
		t.Fatalf("no reconnection notice: %q", errb.String())
	}
}

// TestAuditVerifyRotated: the files of a rotated log verify together,
// oldest first; a missing middle file is found and named.
func TestAuditVerifyRotated(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, audit.Options{MaxBytes: 1200, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := l.Append(context.Background(), audit.Record{Actor: "client/ops", Action: "power.set", Target: fmt.Sprintf("resource %d", i), Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	seq, hash := l.Last()
	l.Close()
	old, _ := filepath.Glob(path + ".*")
	slices.Sort(old)
	if len(old) < 2 {
		t.Fatalf("rotated files %v, want at least 2", old)
	}
	all := append(slices.Clone(old), path)
	anchor := audit.Anchor{Seq: seq, Hash: hash}.String()
	args := append([]string{"audit", "verify", "--anchor", anchor}, all...)
	if code, out, errs := runCLI(t, nil, args...); code != 0 || !strings.Contains(out, fmt.Sprintf("chain intact: %d records, last seq %d", seq, seq)) {
		t.Fatalf("rotated set: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := runCLI(t, nil, "audit", "verify", path); code != 0 || !strings.Contains(out, "continuing a rotated file") {
		t.Fatalf("current file alone: exit %d\n%s", code, out)
	}
	gap := append([]string{"audit", "verify"}, slices.Delete(slices.Clone(all), 1, 2)...)
	if code, out, _ := runCLI(t, nil, gap...); code != ExitError || !strings.Contains(out, filepath.Base(all[2])) {
		t.Fatalf("set with a missing file: exit %d\n%s", code, out)
	}
}
