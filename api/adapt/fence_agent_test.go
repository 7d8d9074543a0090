package adapt_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hpiagent/api"
	"hpiagent/api/adapt"
	"hpiagent/api/apitest"
	"hpiagent/fencing"
	"hpiagent/hpi"
	"hpiagent/internal/pki"
)

// TestFenceAgentAgainstAPI runs the fence_hpiagent program, as Pacemaker
// would, against the API server over mutual TLS with the real fencing
// coordinator (one-member log) behind adapt.Fencing: the contract of
// /v1/fence end to end.
func TestFenceAgentAgainstAPI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "fence_hpiagent")
	if out, err := exec.Command("go", "build", "-o", bin, "hpiagent/cmd/fence_hpiagent").CombinedOutput(); err != nil {
		t.Fatalf("building fence_hpiagent: %v\n%s", err, out)
	}
	ca, err := pki.NewCA("lab", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, req := range []pki.IssueRequest{
		{Name: "agent", Kind: pki.KindServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: time.Hour},
		{Name: "pcmk", Kind: pki.KindClient, Validity: time.Hour},
		{Name: "watcher", Kind: pki.KindClient, Validity: time.Hour},
	} {
		c, err := ca.Issue(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Save(dir); err != nil {
			t.Fatal(err)
		}
	}

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := fencing.NewMachine()
	log := &soloLog{apply: m.Apply, leader: true}
	power := &powerExec{off: map[string]bool{}}
	co, err := fencing.NewCoordinator(fencing.CoordinatorConfig{
		Self: "node-a", Log: log, Machine: m, Scan: 20 * time.Millisecond, Logger: quiet,
		Levels: []fencing.Level{{Name: "table", Executors: []fencing.Executor{power},
			Confirm: fencing.ConfirmConfig{Interval: 10 * time.Millisecond, Timeout: 2 * time.Second}}},
		Nodes: map[string]fencing.NodeConfig{"node-a": {}, "node-b": {}, "node-c": {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- co.Run(ctx) }()

	aud := &apitest.Auditor{}
	srv, err := api.New(api.Config{
		CertFile: pki.CertFile(dir, "agent"), KeyFile: pki.KeyFile(dir, "agent"), ClientCAFile: filepath.Join(dir, pki.CACertFile),
		Identity: pki.Identity,
		Roles: map[string][]api.Role{
			"hpiagent://client/pcmk":    {api.RoleFencer},
			"hpiagent://client/watcher": {api.RoleViewer},
		},
		RateLimit: 1000, RateBurst: 1000, Logger: quiet,
	}, api.Deps{Domain: hpi.NewDomain(hpi.Config{EventLogSize: 16}), Auditor: aud, Fencing: adapt.Fencing(co, func() (string, string) { return "node-b", "https://127.0.0.2:1" })})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		<-srvDone
		if err := <-runDone; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("coordinator: %v", err)
		}
	})

	agent := func(who string, args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"-a", "127.0.0.1", "-u", port,
			"--ssl-ca", filepath.Join(dir, pki.CACertFile), "--ssl-cert", pki.CertFile(dir, who), "--ssl-key", pki.KeyFile(dir, who),
			"--power-timeout", "10"}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	}
	steps := []struct {
		name     string
		who      string
		args     []string
		wantCode int
		want     string // in stdout+stderr
	}{
		{"list", "pcmk", []string{"-o", "list"}, 0, "node-b,node-b"},
		{"status on", "pcmk", []string{"-o", "status", "-n", "node-b"}, 0, "Status: ON"},
		{"viewer may read status", "watcher", []string{"-o", "status", "-n", "node-b"}, 0, "Status: ON"},
		{"viewer may not fence", "watcher", []string{"-o", "off", "-n", "node-b"}, 1, "forbidden"},
		{"off", "pcmk", []string{"-o", "off", "-n", "node-b"}, 0, "Success: Powered OFF"},
		{"status off", "pcmk", []string{"-o", "status", "-n", "node-b"}, 2, "Status: OFF"},
		{"list-status", "pcmk", []string{"-o", "list-status"}, 0, "node-b,node-b,OFF"},
		{"on", "pcmk", []string{"-o", "on", "-n", "node-b"}, 0, "Success: Powered ON"},
		{"this node itself", "pcmk", []string{"-o", "off", "-n", "node-a"}, 1, "invalid_state"},
		{"unknown node", "pcmk", []string{"-o", "status", "-n", "node-z"}, 1, "not_found"},
	}
	for _, s := range steps {
		code, out, errs := agent(s.who, s.args...)
		if code != s.wantCode || !strings.Contains(out+errs, s.want) {
			t.Fatalf("%s: exit %d, want %d with %q\nstdout: %s\nstderr: %s", s.name, code, s.wantCode, s.want, out, errs)
		}
	}
	if st, _ := power.Status(context.Background(), "node-b"); st != fencing.PowerOn {
		t.Errorf("node-b %v after on", st)
	}
	// Requests came from the certificate's identity and were audited ahead.
	var results []string
	for _, r := range aud.Records() {
		if r.Action == "fence.action" {
			results = append(results, r.Actor+" "+r.Result)
		}
	}
	want := []string{
		"hpiagent://client/watcher forbidden",
		"hpiagent://client/pcmk attempt", "hpiagent://client/pcmk ok",
		"hpiagent://client/pcmk attempt", "hpiagent://client/pcmk ok",
		"hpiagent://client/pcmk attempt", "hpiagent://client/pcmk invalid_state",
	}
	if strings.Join(results, "\n") != strings.Join(want, "\n") {
		t.Errorf("fence audit:\n%s\nwant:\n%s", strings.Join(results, "\n"), strings.Join(want, "\n"))
	}
	st, _ := co.Status("node-b")
	if st.Fence == nil || st.Fence.Requester != "hpiagent://client/pcmk" {
		t.Errorf("fence requester in the replicated state: %+v", st.Fence)
	}

	// A follower sends the agent to the leader's endpoint (here one where
	// nothing listens, so the agent fails there, having followed it).
	log.setLeader(false)
	code, out, errs := agent("pcmk", "-o", "off", "-n", "node-c")
	if code != 1 || !strings.Contains(out+errs, "https://127.0.0.2:1/v1/fence/node-c") {
		t.Errorf("off on a follower: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
}
