package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hpiagent/internal/loopback"
	"hpiagent/internal/pki"
	secureerase "hpiagent/secure-erase"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
	"hpiagent/shelf/sim"
)

// hotswapLab is three agent processes sharing one embedded shelf manager
// (manual activation: a FRU in M2 waits for the cluster), each with an
// exec hook that appends "<node> <op> <step key>" to one file and node-1
// owning the wipe plan (one temporary file) of the lab's blade.
type hotswapLab struct {
	*clusterLab
	srv     *sim.Server
	sess    *rmcpp.Session
	blade   sim.MCConfig
	hookLog string
	secret  string // the wipe plan's target
	client  *http.Client
}

var wipeSecret = []byte("SECRET-KEY-MATERIAL-")

// newHotSwapLab starts the lab with its blade out of service (M1,
// Locked).
func newHotSwapLab(t *testing.T, ctx context.Context, bin string) *hotswapLab {
	t.Helper()
	return newHotSwapLabWith(t, ctx, bin, false)
}

// newHotSwapLabWith is newHotSwapLab; with waitingInM2 the blade is
// already inserted and waiting in M2 when the agents start.
func newHotSwapLabWith(t *testing.T, ctx context.Context, bin string, waitingInM2 bool) *hotswapLab {
	t.Helper()
	b := make([]byte, 2)
	rand.Read(b)
	netPrefix := fmt.Sprintf("127.%d.%d.", 1+int(b[0])%250, 1+int(b[1])%250)
	scfg := sim.DefaultConfig()
	scfg.MaxSessions = 16
	scfg.StepDelay = 50 * time.Millisecond
	scfg.ManualActivation = true
	srv, err := sim.Start(ctx, scfg, netPrefix+"254:0", true, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	var blades []sim.MCConfig
	for _, mc := range scfg.IPMCs {
		if mc.SiteType == sim.SiteATCABoard {
			blades = append(blades, mc)
		}
	}
	const n = 3
	// The last blade is the one the workflows move; the blades before it
	// are the fencing section's (the cluster logs membership with it).
	if len(blades) < 2 {
		t.Fatalf("the embedded shelf has %d blades, want at least 2", len(blades))
	}
	u := scfg.Users[0]
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: srv.Addr().String(), Username: u.Name, Password: []byte(u.Password), CipherSuites: []int{17}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })

	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("test-cluster-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	keyFile := writeGossipKey(t, dir)
	pwFile := filepath.Join(dir, "shelf.password")
	writeSecret(t, pwFile, []byte(u.Password))
	cc, err := ca.Issue(pki.IssueRequest{Name: "operator", Kind: pki.KindClient, Validity: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pki.TLSConfigClient(ca, cc)
	if err != nil {
		t.Fatal(err)
	}
	hookLog := filepath.Join(dir, "hooks.log")
	hook := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\ncat >/dev/null\necho \"$1 $HPIAGENT_OP $HPIAGENT_STEP_KEY\" >> \"$2\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "blade-secret.bin")
	if err := os.WriteFile(secret, bytes.Repeat(wipeSecret, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(secret, secret+".probe"); err != nil {
		t.Fatal(err)
	}
	blade := blades[len(blades)-1]

	var nodesYAML, fenceYAML strings.Builder
	apis := make([]string, n)
	for i := range n {
		host := fmt.Sprintf("%s%d", netPrefix, i+1)
		p := func() string { return net.JoinHostPort(host, fmt.Sprint(loopback.Ports(t, host, 1)[0])) }
		fmt.Fprintf(&nodesYAML, "    - {name: node-%d, gossip: %q, raft: %q, rpc: %q}\n", i+1, p(), p(), p())
		apis[i] = p()
		if i < len(blades)-1 {
			fmt.Fprintf(&fenceYAML, "    node-%d: {shelf: sim, ipmb: %#x}\n", i+1, blades[i].Addr)
		}
	}
	lab := &hotswapLab{clusterLab: &clusterLab{t: t, bin: bin, dir: dir}, srv: srv, sess: sess, blade: blade,
		hookLog: hookLog, secret: secret,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 20 * time.Second}}
	for i := range n {
		name := fmt.Sprintf("node-%d", i+1)
		c, err := ca.Issue(pki.IssueRequest{Name: name, Kind: pki.KindPeer, Validity: 30 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		ndir := filepath.Join(dir, name)
		if err := os.Mkdir(ndir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := c.Save(ndir); err != nil {
			t.Fatal(err)
		}
		host, _, _ := net.SplitHostPort(apis[i])
		sc, err := ca.Issue(pki.IssueRequest{Name: "api-" + name, Kind: pki.KindServer, IPs: []net.IP{net.ParseIP(host)}, Validity: 30 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if err := sc.Save(ndir); err != nil {
			t.Fatal(err)
		}
		cfg := fmt.Sprintf(`log_level: info
log_format: json
shelves:
  - name: sim
    address: %q
    username: %s
    password: {file: %s}
audit:
  path: %s
monitor:
  poll_interval: 2s
  hotswap_poll_interval: 200ms
cluster:
  node: %s
  nodes:
%s  gossip_keys:
    - {file: %s}
  tls:
    cert: %s
    key: {file: %s}
    ca: %s
  data_dir: %s
  fence_sources: [hardware]
fencing:
  levels:
    - {name: power-level, executors: [{type: picmg-power-level}]}
  nodes:
%sapi:
  listen: %q
  tls:
    cert: %s
    key: {file: %s}
    ca: %s
  roles:
    "hpiagent://client/operator": [operator]
hotswap:
  retry_delay: 500ms
  max_attempts: 100
  device_classes:
    blade:
      - {type: exec, name: record, command: [%s, %s, %s], timeout: 10s}
  frus:
    - shelf: sim
      ipmb: %#x
      fru: 0
      device_class: blade
      owner: node-1
      wipe:
        targets:
          - {path: %s, kind: file, methods: [overwrite]}
`, srv.Addr().String(), u.Name, pwFile, filepath.Join(ndir, "audit.log"), name, nodesYAML.String(), keyFile,
			pki.CertFile(ndir, name), pki.KeyFile(ndir, name), filepath.Join(dir, pki.CACertFile), filepath.Join(ndir, "data"),
			fenceYAML.String(), apis[i], pki.CertFile(ndir, "api-"+name), pki.KeyFile(ndir, "api-"+name), filepath.Join(dir, pki.CACertFile),
			hook, name, hookLog, blade.Addr, secret)
		path := filepath.Join(ndir, "hpiagent.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		lab.agents = append(lab.agents, &clusterAgent{name: name, config: path, api: apis[i]})
	}
	// The blade starts out of service (M1, Locked) with an empty SEL, so
	// that no agent sees its deactivation as an extraction request.
	to := ipmi.Addr{Slave: blade.Addr}
	if err := ipmi.SetFRUActivationPolicy(ctx, sess, to, 0, ipmi.PolicyLockedBit, ipmi.ActivationPolicy{Locked: true}); err != nil {
		t.Fatal(err)
	}
	if err := ipmi.SetFRUActivation(ctx, sess, to, 0, false); err != nil {
		t.Fatal(err)
	}
	lab.waitFor("the blade in M1", 10*time.Second, func() bool {
		st, err := srv.Shelf().State(blade.Addr)
		return err == nil && st == sim.M1
	})
	if waitingInM2 {
		lab.insert(ctx)
		lab.waitFor("the blade in M2", 10*time.Second, func() bool {
			st, err := srv.Shelf().State(blade.Addr)
			return err == nil && st == sim.M2
		})
	}
	if err := ipmi.ClearSEL(ctx, sess, ipmi.Addr{}, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, ag := range lab.agents {
		lab.start(ag)
	}
	lab.waitFormed()
	lab.waitFor("every agent to discover the shelf", 20*time.Second, func() bool {
		for _, ag := range lab.agents {
			if len(ag.records("shelf discovered")) == 0 {
				return false
			}
		}
		return true
	})
	return lab
}

// hookRuns counts the hook runs of op by node (any workflow when wf is "").
func (l *hotswapLab) hookRuns(op, wf string) map[string]int {
	b, _ := os.ReadFile(l.hookLog)
	out := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[1] != op || (wf != "" && f[2] != wf+"/"+op) {
			continue
		}
		out[f[0]]++
	}
	return out
}

// apiDo sends a request to ag's API and decodes the JSON answer into out.
func (l *hotswapLab) apiDo(ag *clusterAgent, method, path string, body any, out any) int {
	l.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "https://"+ag.api+path, rd)
	if err != nil {
		l.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := l.client.Do(req)
	if err != nil {
		l.t.Logf("%s %s on %s: %v", method, path, ag.name, err)
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			l.t.Fatalf("%s %s on %s: decoding %q: %v", method, path, ag.name, b, err)
		}
	}
	if resp.StatusCode >= 300 {
		l.t.Logf("%s %s on %s: %d %s", method, path, ag.name, resp.StatusCode, b)
	}
	return resp.StatusCode
}

type wfView struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Phase   string `json:"phase"`
	Active  bool   `json:"active"`
	Alarm   string `json:"alarm"`
	Outcome string `json:"outcome"`
	FRU     struct {
		IPMB uint8 `json:"ipmb"`
		ID   uint8 `json:"id"`
	} `json:"fru"`
	Refused map[string]string `json:"refused"`
	Cert    string            `json:"certificate"`
}

// workflows lists ag's workflows of the lab blade.
func (l *hotswapLab) workflows(ag *clusterAgent) []wfView {
	var all, out []wfView
	time.Sleep(100 * time.Millisecond) // well under the API's rate limit
	if l.apiDo(ag, "GET", "/v1/workflows", nil, &all) != http.StatusOK {
		return nil
	}
	for _, w := range all {
		if w.FRU.IPMB == l.blade.Addr && w.FRU.ID == 0 {
			out = append(out, w)
		}
	}
	return out
}

// insert clears the blade's Locked bit, as a newly inserted board has it
// cleared: it goes to M2 and waits there (manual activation).
func (l *hotswapLab) insert(ctx context.Context) {
	l.t.Helper()
	if err := ipmi.SetFRUActivationPolicy(ctx, l.sess, ipmi.Addr{Slave: l.blade.Addr}, 0, ipmi.PolicyLockedBit, ipmi.ActivationPolicy{}); err != nil {
		l.t.Fatal(err)
	}
}

// waitInsertion waits until an insertion of the lab blade has finished
// and checks that it activated the blade (M4, read from the shelf) with
// every agent's apply hook run once.
func (l *hotswapLab) waitInsertion(what string, timeout time.Duration) wfView {
	l.t.Helper()
	var ins wfView
	l.waitFor(what, timeout, func() bool {
		for _, w := range l.workflows(l.agents[0]) {
			if w.Kind == "insertion" && !w.Active {
				ins = w
				return true
			}
		}
		return false
	})
	if ins.Outcome != "activated" {
		l.t.Fatalf("insertion: %+v", ins)
	}
	if st, _ := l.srv.Shelf().State(l.blade.Addr); st != sim.M4 {
		l.t.Fatalf("blade in %s after the insertion, want M4", st)
	}
	runs := l.hookRuns("apply", ins.ID)
	for _, ag := range l.agents {
		if runs[ag.name] != 1 {
			l.t.Errorf("%s ran its apply hook %d times for %s, want 1 (%v)", ag.name, runs[ag.name], ins.ID, runs)
		}
	}
	return ins
}

// TestHotSwapInsertionAndForcedExtraction: an insertion runs every
// agent's exec hook once and the blade reaches M4 (read back from the
// shelf); a forced extraction requested through the API revokes on every
// agent, wipes the wipe plan's file at its owner (a certificate is listed
// at its API) and leaves the blade in M1.
func TestHotSwapInsertionAndForcedExtraction(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three agent processes")
	}
	t.Parallel()
	bin := buildBinary(t, t.TempDir(), "./cmd/hpiagent")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := newHotSwapLab(t, ctx, bin)
	sh := l.srv.Shelf()
	l.insert(ctx)
	ins := l.waitInsertion("the insertion to finish", 30*time.Second)

	// Forced extraction through a non-owner's API (forwarded to the
	// leader when that node does not lead).
	var res []struct {
		ID         uint32 `json:"id"`
		EntityPath string `json:"entity_path"`
	}
	if code := l.apiDo(l.agents[2], "GET", "/v1/resources", nil, &res); code != http.StatusOK {
		t.Fatalf("GET /v1/resources: %d", code)
	}
	var id uint32
	for _, r := range res {
		if strings.Contains(r.EntityPath, fmt.Sprintf("{PHYSICAL_SLOT,%d}", l.blade.SiteNumber)) && strings.HasSuffix(r.EntityPath, fmt.Sprintf("{SYSTEM_BOARD,%d}", l.blade.SiteNumber)) {
			id = r.ID
		}
	}
	if id == 0 {
		// Entity naming differs between shelves: fall back to the resource
		// the workflow names.
		for _, r := range res {
			if r.EntityPath == insEntity(l, ins.ID) {
				id = r.ID
			}
		}
	}
	if id == 0 {
		t.Fatalf("no resource for the blade in %+v", res)
	}
	var started struct {
		Workflow string `json:"workflow"`
		ID       string `json:"id"`
	}
	l.waitFor("the extraction to be accepted", 15*time.Second, func() bool {
		code := l.apiDo(l.agents[2], "POST", fmt.Sprintf("/v1/resources/%d/extract", id), map[string]string{"reason": "blade replacement"}, &started)
		return code >= 200 && code < 300
	})
	var ext wfView
	l.waitFor("the forced extraction to finish", 30*time.Second, func() bool {
		for _, w := range l.workflows(l.agents[1]) {
			if w.Kind == "forced" && !w.Active {
				ext = w
				return true
			}
		}
		return false
	})
	if ext.Outcome != "extracted" || ext.Cert == "" {
		t.Fatalf("forced extraction: %+v", ext)
	}
	if st, _ := sh.State(l.blade.Addr); st != sim.M1 {
		t.Fatalf("blade in %s after the extraction, want M1", st)
	}
	runs := l.hookRuns("revoke", ext.ID)
	for _, ag := range l.agents {
		if runs[ag.name] != 1 {
			t.Errorf("%s ran its revoke hook %d times for %s, want 1 (%v)", ag.name, runs[ag.name], ext.ID, runs)
		}
	}
	// The eraser unlinks a file it overwrote and verified; the probe link
	// to the same inode shows what is left of its data.
	if _, err := os.Stat(l.secret); !os.IsNotExist(err) {
		t.Errorf("the wipe target is still there: %v", err)
	}
	b, err := os.ReadFile(l.secret + ".probe")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4096*len(wipeSecret) || bytes.Contains(b, wipeSecret) {
		t.Fatalf("the wipe target still holds its secret (%d bytes)", len(b))
	}
	var certs []struct {
		ID string `json:"id"`
	}
	if code := l.apiDo(l.agents[0], "GET", "/v1/erase-certificates", nil, &certs); code != http.StatusOK || len(certs) != 1 {
		t.Fatalf("GET /v1/erase-certificates on the owner: %d, %+v; want one certificate", code, certs)
	}
	certID := certs[0].ID

	// Every other member serves it too (it came through the cluster log),
	// and it verifies with the owner's peer key, the key of the owner's
	// cluster.tls.cert; it is the certificate the log's digest names.
	owner, err := pki.LoadCert(filepath.Join(l.dir, "node-1"), "node-1")
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(ag *clusterAgent) bool {
		time.Sleep(100 * time.Millisecond) // well under the API's rate limit
		var list []struct {
			ID   string `json:"id"`
			Node string `json:"node"`
		}
		if l.apiDo(ag, "GET", "/v1/erase-certificates", nil, &list) != http.StatusOK || len(list) != 1 || list[0].ID != certID || list[0].Node != "node-1" {
			return false
		}
		var cert secureerase.Certificate
		if l.apiDo(ag, "GET", "/v1/erase-certificates/"+certID, nil, &cert) != http.StatusOK {
			return false
		}
		if err := secureerase.Verify(&cert, owner.Cert.PublicKey); err != nil {
			t.Fatalf("certificate %s served by %s: %v", certID, ag.name, err)
		}
		if cert.Outcome != secureerase.OutcomeSuccess || cert.Node != "node-1" || cert.Target != l.secret {
			t.Fatalf("certificate %s served by %s: %+v", certID, ag.name, cert)
		}
		return true
	}
	for _, ag := range l.agents {
		l.waitFor("the certificate served and verified by "+ag.name, 10*time.Second, func() bool { return fetch(ag) })
	}
	var wfFull struct {
		Certificate string `json:"certificate"`
	}
	if l.apiDo(l.agents[2], "GET", "/v1/workflows/"+ext.ID, nil, &wfFull); wfFull.Certificate != ext.Cert {
		t.Fatalf("workflow %s on node-3 names certificate digest %q, node-2 %q", ext.ID, wfFull.Certificate, ext.Cert)
	}

	// The owner goes away (its blade is often the one removed), and a
	// non-owner restarts: the others still serve the certificate, the
	// restarted one from its store or the log's replay.
	l.kill9(l.agents[0])
	l.kill9(l.agents[1])
	l.start(l.agents[1])
	for _, ag := range l.agents[1:] {
		l.waitFor("the certificate served by "+ag.name+" with the owner down", 30*time.Second, func() bool { return fetch(ag) })
	}
}

// insEntity returns the entity path of workflow id as node-1's API shows
// it.
func insEntity(l *hotswapLab, id string) string {
	var w struct {
		FRU struct {
			Entity string `json:"entity"`
		} `json:"fru"`
	}
	l.apiDo(l.agents[0], "GET", "/v1/workflows/"+id, nil, &w)
	return w.FRU.Entity
}

// TestHotSwapInsertionWaitingAtStart: a board already waiting in M2 when
// the agents start reaches the model without an event (its first state
// is just set); the leader finds it waiting and runs its insertion: every
// agent's hook once, the blade in M4, one workflow.
func TestHotSwapInsertionWaitingAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three agent processes")
	}
	t.Parallel()
	bin := buildBinary(t, t.TempDir(), "./cmd/hpiagent")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := newHotSwapLabWith(t, ctx, bin, true)
	l.waitInsertion("the insertion of the waiting blade to finish", 40*time.Second)
	// Reconciling again (every few seconds) starts nothing more.
	time.Sleep(6 * time.Second)
	if n := len(l.workflows(l.agents[1])); n != 1 {
		t.Errorf("%d workflows for the blade, want 1", n)
	}
}

// TestHotSwapInsertionHeldWhileMemberDown: with one agent killed, an
// insertion stays held (the blade stays out of M4 with its Locked bit
// set) and the workflow shows the refusal through the API; once the
// agent is back the insertion completes.
func TestHotSwapInsertionHeldWhileMemberDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three agent processes")
	}
	t.Parallel()
	bin := buildBinary(t, t.TempDir(), "./cmd/hpiagent")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := newHotSwapLab(t, ctx, bin)
	sh := l.srv.Shelf()
	leader := l.leader()
	var down *clusterAgent
	for _, ag := range l.agents {
		if ag != leader {
			down = ag
			break
		}
	}
	l.kill9(down)
	l.insert(ctx)
	var held wfView
	l.waitFor("the insertion to be held with a refusal", 30*time.Second, func() bool {
		for _, w := range l.workflows(leader) {
			if w.Kind == "insertion" && w.Active && (w.Refused[down.name] != "" || strings.Contains(w.Alarm, down.name)) {
				held = w
				return true
			}
		}
		return false
	})
	t.Logf("held: phase %s, alarm %q", held.Phase, held.Alarm)
	if held.Alarm == "" || held.Phase != "applying" {
		t.Errorf("held insertion: phase %q alarm %q; want applying with an alarm", held.Phase, held.Alarm)
	}
	st, _ := sh.State(l.blade.Addr)
	locked, _, _ := sh.Policy(l.blade.Addr)
	if st == sim.M4 || st == sim.M3 || !locked {
		t.Fatalf("blade in %s, locked=%v while a member is down; want held (M1/M2, Locked)", st, locked)
	}
	if runs := l.hookRuns("apply", held.ID); runs[down.name] != 0 {
		t.Fatalf("the stopped agent ran its hook: %v", runs)
	}
	l.start(down)
	var ins wfView
	l.waitFor("the insertion to finish once the agent is back", 45*time.Second, func() bool {
		for _, w := range l.workflows(leader) {
			if w.ID == held.ID && !w.Active {
				ins = w
				return true
			}
		}
		return false
	})
	if ins.Outcome != "activated" {
		t.Fatalf("insertion: %+v", ins)
	}
	if st, _ := sh.State(l.blade.Addr); st != sim.M4 {
		t.Fatalf("blade in %s, want M4", st)
	}
	runs := l.hookRuns("apply", held.ID)
	for _, ag := range l.agents {
		if runs[ag.name] != 1 {
			t.Errorf("%s ran its apply hook %d times, want 1 (%v)", ag.name, runs[ag.name], runs)
		}
	}
}
