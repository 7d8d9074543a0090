package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hpiagent/api/audit"
	"hpiagent/internal/labshelf"
	"hpiagent/internal/loopback"
	"hpiagent/internal/pki"
	"hpiagent/shelf/sim"
)

// clusterAgent is one hpiagent process of an end-to-end cluster test.
type clusterAgent struct {
	name   string
	blade  uint8
	config string
	api    string   // host:port of the API, "" without
	netns  string   // network namespace to run in, "" for this one
	env    []string // extra environment
	cmd    *exec.Cmd
	done   chan struct{}
	// dumpOnFail is set once a cleanup prints the agent's last log lines
	// if the test fails.
	dumpOnFail bool

	mu    sync.Mutex
	lines []map[string]any
	raw   []string
}

// records returns the decoded JSON log lines so far whose msg is msg.
func (a *clusterAgent) records(msg string) []map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []map[string]any
	for _, l := range a.lines {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

func (a *clusterAgent) tail(n int) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.raw) > n {
		return strings.Join(a.raw[len(a.raw)-n:], "\n")
	}
	return strings.Join(a.raw, "\n")
}

// clusterLab is a shelf shared by several agents, each agent's node being
// one blade of it.
type clusterLab struct {
	t      *testing.T
	bin    string
	shelf  *labshelf.Shelf
	agents []*clusterAgent
	// dir holds ca.crt and, with an API, the client certificate
	// pacemaker.crt/.key with the fencer and viewer roles.
	dir string
}

// writeSecret writes b to a 0600 file.
func writeSecret(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeGossipKey writes a new gossip key to dir/gossip.key as an
// operator would (`openssl rand -base64 32 > gossip.key`) and returns the
// file's path.
func writeGossipKey(t *testing.T, dir string) string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	path := filepath.Join(dir, "gossip.key")
	writeSecret(t, path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"))
	return path
}

// newClusterLab starts a lab shelf and n agents on their own loopback
// addresses, agent i fencing-mapped to blade i of the shelf with the
// given fencing levels (YAML).
// Agents after the shelf's blades have no blade (they are members, not
// fencing targets).
func newClusterLab(t *testing.T, bin string, n int, levelsYAML string, withAPI bool) *clusterLab {
	t.Helper()
	return newClusterLabWith(t, bin, n, clusterLabOptions{levels: levelsYAML, withAPI: withAPI})
}

// clusterLabOptions are the less common settings of a cluster lab.
type clusterLabOptions struct {
	// levels is the fencing.levels YAML; withAPI gives each agent an API
	// and the lab a fencer client certificate.
	levels  string
	withAPI bool
	// nodeFencing, if set, returns extra flow-style keys (", key: value")
	// of the fencing.nodes entry of node i (0-based).
	nodeFencing func(i int) string
	// fencing is appended to the fencing section (for example switches),
	// indented by two spaces.
	fencing string
}

func newClusterLabWith(t *testing.T, bin string, n int, o clusterLabOptions) *clusterLab {
	t.Helper()
	levelsYAML, withAPI := o.levels, o.withAPI
	sh := labshelf.Start(t)
	dir := t.TempDir()
	ca, err := pki.NewCA("test-cluster-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	keyFile := writeGossipKey(t, dir)
	pwFile := filepath.Join(dir, "shelf.password")
	writeSecret(t, pwFile, []byte(sh.Password))

	// One loopback network per test: 127.A.B.(1..n).
	a, b := 1+mrand.IntN(250), 1+mrand.IntN(250)
	type addrs struct{ gossip, raft, rpc string }
	nodes := make([]addrs, n)
	var nodesYAML, fenceYAML strings.Builder
	for i := range n {
		host := fmt.Sprintf("127.%d.%d.%d", a, b, i+1)
		nodes[i] = addrs{
			gossip: net.JoinHostPort(host, strconv.Itoa(loopback.Ports(t, host, 1)[0])),
			raft:   net.JoinHostPort(host, strconv.Itoa(loopback.Ports(t, host, 1)[0])),
			rpc:    net.JoinHostPort(host, strconv.Itoa(loopback.Ports(t, host, 1)[0])),
		}
		name := fmt.Sprintf("node-%d", i+1)
		fmt.Fprintf(&nodesYAML, "    - {name: %s, gossip: %q, raft: %q, rpc: %q}\n", name, nodes[i].gossip, nodes[i].raft, nodes[i].rpc)
		if i < len(sh.Blades) {
			extra := ""
			if o.nodeFencing != nil {
				extra = o.nodeFencing(i)
			}
			fmt.Fprintf(&fenceYAML, "    %s: {shelf: lab, ipmb: %#x%s}\n", name, sh.Blades[i], extra)
		}
	}
	lab := &clusterLab{t: t, bin: bin, shelf: sh, dir: dir}
	if withAPI {
		c, err := ca.Issue(pki.IssueRequest{Name: "pacemaker", Kind: pki.KindClient, Validity: 30 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Save(dir); err != nil {
			t.Fatal(err)
		}
	}
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
		cfg := fmt.Sprintf(`log_level: info
log_format: json
shelves:
  - name: lab
    address: %q
    username: %s
    password: {file: %s}
    cipher_suites: [3]
audit:
  path: %s
monitor:
  poll_interval: 2s
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
  fence_sources: [member-dead]
fencing:
  levels:
%s  nodes:
%s`, sh.Addr(), sh.User, pwFile, filepath.Join(ndir, "audit.log"), name, nodesYAML.String(), keyFile,
			pki.CertFile(ndir, name), pki.KeyFile(ndir, name), filepath.Join(dir, pki.CACertFile), filepath.Join(ndir, "data"),
			levelsYAML, fenceYAML.String())
		cfg += o.fencing
		apiAddr := ""
		if withAPI {
			host, _, _ := net.SplitHostPort(nodes[i].rpc)
			apiAddr = net.JoinHostPort(host, strconv.Itoa(loopback.Ports(t, host, 1)[0]))
			sc, err := ca.Issue(pki.IssueRequest{Name: "api-" + name, Kind: pki.KindServer, IPs: []net.IP{net.ParseIP(host)}, Validity: 30 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if err := sc.Save(ndir); err != nil {
				t.Fatal(err)
			}
			cfg += fmt.Sprintf(`api:
  listen: %q
  tls:
    cert: %s
    key: {file: %s}
    ca: %s
  roles:
    "hpiagent://client/pacemaker": [viewer, fencer]
`, apiAddr, pki.CertFile(ndir, "api-"+name), pki.KeyFile(ndir, "api-"+name), filepath.Join(dir, pki.CACertFile))
		}
		path := filepath.Join(ndir, "hpiagent.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		ag := &clusterAgent{name: name, config: path, api: apiAddr}
		if i < len(sh.Blades) {
			ag.blade = sh.Blades[i]
		}
		lab.agents = append(lab.agents, ag)
	}
	for _, ag := range lab.agents {
		lab.start(ag)
	}
	return lab
}

// start runs agent ag as a separate process and collects its JSON logs.
func (l *clusterLab) start(ag *clusterAgent) {
	t := l.t
	t.Helper()
	cmd := exec.Command(l.bin, "run", "-config", ag.config)
	if ag.netns != "" {
		cmd = exec.Command("ip", "netns", "exec", ag.netns, l.bin, "run", "-config", ag.config)
	}
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, ag.env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ag.cmd, ag.done = cmd, make(chan struct{})
	if !ag.dumpOnFail {
		ag.dumpOnFail = true
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("--- %s (last lines)\n%s", ag.name, ag.tail(80))
			}
		})
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m map[string]any
			line := sc.Text()
			ag.mu.Lock()
			ag.raw = append(ag.raw, line)
			if json.Unmarshal([]byte(line), &m) == nil {
				ag.lines = append(ag.lines, m)
			}
			ag.mu.Unlock()
		}
		cmd.Wait()
		close(ag.done)
	}()
	t.Cleanup(func() {
		select {
		case <-ag.done:
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-ag.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-ag.done
		}
	})
}

// kill9 kills ag as a crash would.
func (l *clusterLab) kill9(ag *clusterAgent) {
	ag.cmd.Process.Signal(syscall.SIGKILL)
	<-ag.done
}

// waitFor polls cond until it holds or the timeout passes.
func (l *clusterLab) waitFor(what string, timeout time.Duration, cond func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			for _, ag := range l.agents {
				l.t.Logf("--- %s (last lines)\n%s", ag.name, ag.tail(40))
			}
			l.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFormed waits until every agent has seen every other one join.
func (l *clusterLab) waitFormed() {
	l.waitFor("the cluster to form and elect a leader", 30*time.Second, func() bool {
		for _, ag := range l.agents {
			seen := map[any]bool{}
			for _, r := range ag.records("cluster member event") {
				if r["kind"] == "join" || r["kind"] == "alive" {
					seen[r["member"]] = true
				}
			}
			if len(seen) < len(l.agents)-1 {
				return false
			}
		}
		return l.leader() != nil
	})
}

// leader returns the agent that most recently logged becoming raft
// leader (among those still running), nil if none.
func (l *clusterLab) leader() *clusterAgent {
	var best *clusterAgent
	var bestTime string
	for _, ag := range l.agents {
		select {
		case <-ag.done:
			continue
		default:
		}
		ag.mu.Lock()
		for _, m := range ag.lines {
			if msg, _ := m["msg"].(string); strings.Contains(msg, "entering leader state") {
				if ts, _ := m["time"].(string); ts > bestTime {
					best, bestTime = ag, ts
				}
			}
		}
		ag.mu.Unlock()
	}
	return best
}

// fenceEntries returns, as ag saw them applied, the fencing log entries of
// target with the given kind.
func fenceEntries(ag *clusterAgent, target, kind string) []map[string]any {
	var out []map[string]any
	for _, r := range ag.records("fencing entry observed") {
		if r["target"] == target && r["kind"] == kind {
			out = append(out, r)
		}
	}
	return out
}

func countTrue(rs []map[string]any, key string) int {
	n := 0
	for _, r := range rs {
		if r[key] == true {
			n++
		}
	}
	return n
}

// bladePower reads a blade's chassis power through the shelf manager with
// ipmitool (bridged), independent of the agents.
func (l *clusterLab) bladePower(ctx context.Context, blade uint8) string {
	out, err := l.shelf.Ipmitool(ctx, "-b", "0", "-t", "0x"+hex.EncodeToString([]byte{blade}), "chassis", "power", "status")
	if err != nil {
		return "error: " + err.Error()
	}
	switch {
	case strings.Contains(out, "is off"):
		return "off"
	case strings.Contains(out, "is on"):
		return "on"
	}
	return "unknown: " + out
}

// TestClusterFenceDeadAgent: three agents on one shelf; one is killed
// with SIGKILL; the leader among the other two fences its blade by
// chassis power through the shelf manager, the blade reads off by
// ipmitool, and the fence is decided and confirmed exactly once.
func TestClusterFenceDeadAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an ipmi_sim shelf and three agent processes")
	}
	labshelf.RequireTools(t, "ipmi_sim", "ipmitool")
	t.Parallel()
	bin := buildBinary(t, t.TempDir(), "./cmd/hpiagent")
	lab := newClusterLab(t, bin, 3, "    - {name: chassis, attempts: 2, confirm_timeout: 10s, executors: [{type: chassis}]}\n", false)
	lab.waitFormed()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	victim := lab.agents[2]
	if p := lab.bladePower(ctx, victim.blade); p != "on" {
		t.Fatalf("blade %#x of %s reads %s before the test", victim.blade, victim.name, p)
	}
	lab.kill9(victim)
	survivors := lab.agents[:2]
	lab.waitFor("the fence of "+victim.name+" to be confirmed on every survivor", 40*time.Second, func() bool {
		for _, ag := range survivors {
			if countTrue(fenceEntries(ag, victim.name, "level-result"), "done") == 0 {
				return false
			}
		}
		return true
	})
	if p := lab.bladePower(ctx, victim.blade); p != "off" {
		t.Errorf("blade %#x of %s reads %s after the fence, want off", victim.blade, victim.name, p)
	}
	t.Logf("%s: blade %#x reads off after the fence", victim.name, victim.blade)
	// The others' blades are untouched.
	for _, ag := range survivors {
		if p := lab.bladePower(ctx, ag.blade); p != "on" {
			t.Errorf("blade %#x of %s reads %s, want on", ag.blade, ag.name, p)
		}
	}
	lab.checkFencedOnce(survivors, victim)
}

// fenceAgent runs fence_hpiagent as Pacemaker does: key=value lines on
// stdin, against the API of ag. It returns the exit status and output.
func (l *clusterLab) fenceAgent(ctx context.Context, bin string, ag *clusterAgent, action, plug string) (int, string) {
	l.t.Helper()
	host, port, _ := net.SplitHostPort(ag.api)
	in := fmt.Sprintf("action=%s\nplug=%s\nip=%s\nipport=%s\nssl_cert=%s\nssl_key=%s\nssl_ca=%s\npower_timeout=30\n",
		action, plug, host, port, pki.CertFile(l.dir, "pacemaker"), pki.KeyFile(l.dir, "pacemaker"), filepath.Join(l.dir, pki.CACertFile))
	cmd := exec.CommandContext(ctx, bin)
	cmd.Stdin = strings.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return 0, string(out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	l.t.Fatalf("fence_hpiagent %s %s: %v\n%s", action, plug, err, out)
	return -1, ""
}

// TestClusterFenceAgentPacemaker drives fence_hpiagent like Pacemaker
// (stdin key=value) against one agent's API: status, off, status, on,
// with the blade's power read back by ipmitool after each change.
func TestClusterFenceAgentPacemaker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an ipmi_sim shelf and three agent processes")
	}
	labshelf.RequireTools(t, "ipmi_sim", "ipmitool")
	t.Parallel()
	bdir := t.TempDir()
	bin := buildBinary(t, bdir, "./cmd/hpiagent")
	fa := buildBinary(t, bdir, "./cmd/fence_hpiagent")
	lab := newClusterLab(t, bin, 3, "    - {name: chassis, attempts: 2, confirm_timeout: 10s, executors: [{type: chassis}]}\n", true)
	lab.waitFormed()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// fence_hpiagent talks to a follower (its request is forwarded to
	// the leader) about the other follower.
	leader := lab.leader()
	var followers []*clusterAgent
	for _, ag := range lab.agents {
		if ag != leader {
			followers = append(followers, ag)
		}
	}
	via, target := followers[0], followers[1]
	t.Logf("leader %s; fence_hpiagent asks %s about %s", leader.name, via.name, target.name)
	steps := []struct {
		action   string
		wantCode int
		power    string // read back by ipmitool after the step; "" no check
	}{
		{"status", 0, "on"},
		{"off", 0, "off"},
		{"status", 2, "off"},
		{"on", 0, "on"},
		{"status", 0, "on"},
	}
	for _, st := range steps {
		code, out := lab.fenceAgent(ctx, fa, via, st.action, target.name)
		if code != st.wantCode {
			for _, ag := range lab.agents {
				t.Logf("--- %s (last lines)\n%s", ag.name, ag.tail(30))
			}
			t.Fatalf("fence_hpiagent action=%s plug=%s: exit %d, want %d\n%s", st.action, target.name, code, st.wantCode, out)
		}
		if st.power != "" {
			if p := lab.bladePower(ctx, target.blade); p != st.power {
				t.Fatalf("after action=%s blade %#x reads %s, want %s", st.action, target.blade, p, st.power)
			}
		}
		t.Logf("action=%s: exit %d, blade %#x %s", st.action, code, target.blade, st.power)
	}
	// list names every fencing target.
	if code, out := lab.fenceAgent(ctx, fa, via, "list", ""); code != 0 {
		t.Errorf("fence_hpiagent action=list: exit %d\n%s", code, out)
	} else {
		for _, ag := range lab.agents {
			if !strings.Contains(out, ag.name) {
				t.Errorf("fence_hpiagent action=list does not name %s:\n%s", ag.name, out)
			}
		}
	}
	// The off went through the log once, on every member.
	for _, ag := range lab.agents {
		if n := countTrue(fenceEntries(ag, target.name, "level-result"), "done"); n != 1 {
			t.Errorf("%s applied %d confirming fence results for %s, want 1", ag.name, n, target.name)
		}
		if n := countTrue(fenceEntries(ag, target.name, "unfence-result"), "unfenced"); n != 1 {
			t.Errorf("%s applied %d confirming unfence results for %s, want 1", ag.name, n, target.name)
		}
	}

	// A clean stop (SIGTERM, as systemctl stop) leaves the cluster: the
	// others do not fence the node.
	target.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-target.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not stop within 15 s of SIGTERM", target.name)
	}
	// Membership needs about 2 s to call a silent member dead; wait for
	// well beyond that.
	time.Sleep(6 * time.Second)
	for _, ag := range []*clusterAgent{via, leader} {
		for _, r := range ag.records("cluster member event") {
			if r["member"] == target.name {
				t.Logf("%s saw %s: %v", ag.name, target.name, r["kind"])
			}
		}
		if n := len(fenceEntries(ag, target.name, "fence-requested")); n != 1 {
			t.Errorf("%s applied %d fence requests for %s after its clean stop, want only the operator's 1", ag.name, n, target.name)
			for _, r := range ag.records("fencing entry observed") {
				t.Logf("%s: %v", ag.name, r)
			}
		}
	}
	if p := lab.bladePower(ctx, target.blade); p != "on" {
		t.Errorf("blade %#x of the cleanly stopped %s reads %s, want on", target.blade, target.name, p)
	}
}

// TestClusterFenceLeaderKilledMidFence: five agents; a blade's agent is
// killed, and the leader is killed as soon as it logged the start of the
// fence level (while the shelf is still powering the blade off). The new
// leader resumes the fence, which completes exactly once.
func TestClusterFenceLeaderKilledMidFence(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an ipmi_sim shelf and five agent processes")
	}
	labshelf.RequireTools(t, "ipmi_sim", "ipmitool")
	t.Parallel()
	bin := buildBinary(t, t.TempDir(), "./cmd/hpiagent")
	lab := newClusterLab(t, bin, 5, "    - {name: chassis, attempts: 3, confirm_timeout: 10s, executors: [{type: chassis}]}\n", false)
	lab.waitFormed()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := lab.leader()
	var victim *clusterAgent
	for _, ag := range lab.agents {
		if ag != leader && ag.blade != 0 {
			victim = ag
			break
		}
	}
	t.Logf("leader %s, victim %s (blade %#x)", leader.name, victim.name, victim.blade)
	if p := lab.bladePower(ctx, victim.blade); p != "on" {
		t.Fatalf("blade %#x reads %s before the test", victim.blade, p)
	}
	lab.kill9(victim)
	lab.waitFor("the leader to start the fence level", 20*time.Second, func() bool {
		return len(fenceEntries(leader, victim.name, "level-started")) > 0
	})
	if n := len(fenceEntries(leader, victim.name, "level-result")); n != 0 {
		t.Fatalf("the leader already applied %d results before it was killed: the test did not kill it mid-fence", n)
	}
	lab.kill9(leader)
	t.Logf("killed the leader %s after it logged level-started", leader.name)
	var survivors []*clusterAgent
	for _, ag := range lab.agents {
		if ag != leader && ag != victim {
			survivors = append(survivors, ag)
		}
	}
	lab.waitFor("the new leader to complete the fence of "+victim.name, 40*time.Second, func() bool {
		for _, ag := range survivors {
			if countTrue(fenceEntries(ag, victim.name, "level-result"), "done") == 0 {
				return false
			}
		}
		return true
	})
	if p := lab.bladePower(ctx, victim.blade); p != "off" {
		t.Errorf("blade %#x of %s reads %s after the fence, want off", victim.blade, victim.name, p)
	}
	time.Sleep(2 * time.Second)
	for _, ag := range survivors {
		if n := countTrue(fenceEntries(ag, victim.name, "fence-requested"), "accepted"); n != 1 {
			t.Errorf("%s applied %d accepted fence requests for %s, want 1", ag.name, n, victim.name)
		}
		if n := countTrue(fenceEntries(ag, victim.name, "level-result"), "done"); n != 1 {
			t.Errorf("%s applied %d confirming results for %s, want 1", ag.name, n, victim.name)
		}
		// The old leader's execution was superseded by the new leader's.
		if n := len(fenceEntries(ag, victim.name, "level-started")); n < 2 {
			t.Errorf("%s applied %d level-started entries for %s, want at least 2 (the new leader's resumption)", ag.name, n, victim.name)
		}
	}
}

// netLab is a set of network namespaces joined by a bridge (side A),
// with a second bridge (side B) to move namespaces to for a partition.
type netLab struct {
	t      *testing.T
	id     string
	prefix string // "10.R.S."
	brA    string
	brB    string
	hostIP string // this namespace's address on side A
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetLab creates the two bridges; the test's own namespace is on side
// A at .254 (the shelf manager lives there).
func newNetLab(t *testing.T) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("network namespaces need root")
		}
		t.Skip("network namespaces need root")
	}
	labshelf.RequireTools(t, "ip")
	b := make([]byte, 3)
	rand.Read(b)
	id := fmt.Sprintf("%02x%02x", b[0], b[1])
	n := &netLab{t: t, id: id, prefix: fmt.Sprintf("10.%d.%d.", 100+int(b[2])%100, b[0]), brA: "hbA" + id, brB: "hbB" + id}
	n.hostIP = n.prefix + "254"
	ipCmd(t, "link", "add", n.brA, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", n.brA).Run() })
	ipCmd(t, "link", "add", n.brB, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", n.brB).Run() })
	ipCmd(t, "addr", "add", n.hostIP+"/24", "dev", n.brA)
	ipCmd(t, "link", "set", n.brA, "up")
	ipCmd(t, "link", "set", n.brB, "up")
	return n
}

// host creates namespace i with address prefix+i on side A.
func (n *netLab) host(i int) (ns, ip string) {
	t := n.t
	ns = fmt.Sprintf("hpiag-%s-%d", n.id, i)
	veth := fmt.Sprintf("hv%s%d", n.id, i)
	ipCmd(t, "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ipCmd(t, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	ipCmd(t, "link", "set", veth, "master", n.brA)
	ipCmd(t, "link", "set", veth, "up")
	ip = fmt.Sprintf("%s%d", n.prefix, i)
	ipCmd(t, "-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
	ipCmd(t, "-n", ns, "link", "set", "eth0", "up")
	ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	return ns, ip
}

// isolate moves host i to side B: it reaches the other side-B hosts only.
func (n *netLab) isolate(i int) {
	ipCmd(n.t, "link", "set", fmt.Sprintf("hv%s%d", n.id, i), "master", n.brB)
}

// notifySocket is a systemd notification socket that counts WATCHDOG=1.
type notifySocket struct {
	path string
	mu   sync.Mutex
	last time.Time
	n    int
}

func newNotifySocket(t *testing.T, path string) *notifySocket {
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &notifySocket{path: path}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := c.ReadFromUnix(buf)
			if err != nil {
				return
			}
			if strings.Contains(string(buf[:k]), "WATCHDOG=1") {
				s.mu.Lock()
				s.n++
				s.last = time.Now()
				s.mu.Unlock()
			}
		}
	}()
	return s
}

func (s *notifySocket) feeds() (int, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, s.last
}

// TestClusterPartitionMinoritySelfFences: five agents, each in its own
// network namespace, share the embedded shelf manager. The bridge link of
// two of them is moved to another bridge (a 2|3 partition): the majority
// fences the minority's blades (power level 0 read back from the shelf),
// once each, and the minority fences nobody; the minority's watchdog
// decision turns to self-fencing and it stops feeding, while the
// majority keeps feeding.
func TestClusterPartitionMinoritySelfFences(t *testing.T) {
	if testing.Short() {
		t.Skip("creates network namespaces and five agent processes")
	}
	nl := newNetLab(t)
	t.Parallel()
	bin := buildBinary(t, t.TempDir(), "./cmd/hpiagent")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	scfg := sim.DefaultConfig()
	scfg.MaxSessions = 16
	srv, err := sim.Start(ctx, scfg, nl.hostIP+":0", true, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	shelf := srv.Shelf()
	var blades []uint8
	for _, mc := range scfg.IPMCs {
		if mc.SiteType == sim.SiteATCABoard {
			blades = append(blades, mc.Addr)
		}
	}
	if len(blades) < 3 {
		t.Fatalf("the embedded shelf has %d blades", len(blades))
	}

	dir := t.TempDir()
	ca, err := pki.NewCA("test-cluster-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	keyFile := writeGossipKey(t, dir)
	pwFile := filepath.Join(dir, "shelf.password")
	writeSecret(t, pwFile, []byte("sim-admin"))

	const n = 5
	var nodesYAML, fenceYAML strings.Builder
	nss := make([]string, n)
	for i := range n {
		ns, ip := nl.host(i + 1)
		nss[i] = ns
		name := fmt.Sprintf("node-%d", i+1)
		fmt.Fprintf(&nodesYAML, "    - {name: %s, gossip: \"%s:17946\", raft: \"%s:17947\", rpc: \"%s:17948\"}\n", name, ip, ip, ip)
		if i < 3 {
			fmt.Fprintf(&fenceYAML, "    %s: {shelf: sim, ipmb: %#x}\n", name, blades[i])
		}
	}
	lab := &clusterLab{t: t, bin: bin, dir: dir}
	socks := make([]*notifySocket, n)
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
		cfg := fmt.Sprintf(`log_level: info
log_format: json
shelves:
  - name: sim
    address: %q
    username: admin
    password: {file: %s}
audit:
  path: %s
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
  fence_sources: [member-dead]
fencing:
  levels:
    - {name: power-level, attempts: 2, confirm_timeout: 10s, executors: [{type: picmg-power-level}]}
  nodes:
%swatchdog:
  devices: [{type: systemd}]
  self_fence_after: 8s
  interval: 500ms
`, srv.Addr().String(), pwFile, filepath.Join(ndir, "audit.log"), name, nodesYAML.String(), keyFile,
			pki.CertFile(ndir, name), pki.KeyFile(ndir, name), filepath.Join(dir, pki.CACertFile), filepath.Join(ndir, "data"),
			fenceYAML.String())
		path := filepath.Join(ndir, "hpiagent.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		socks[i] = newNotifySocket(t, filepath.Join(ndir, "notify.sock"))
		ag := &clusterAgent{name: name, config: path, netns: nss[i], env: []string{"NOTIFY_SOCKET=" + socks[i].path}}
		if i < 3 {
			ag.blade = blades[i]
		}
		lab.agents = append(lab.agents, ag)
	}
	for _, ag := range lab.agents {
		lab.start(ag)
	}
	// The minority is cut off: a graceful leave cannot reach anyone, so
	// end every agent at once rather than one clean stop after another.
	defer func() {
		for _, ag := range lab.agents {
			ag.cmd.Process.Kill()
		}
		for _, ag := range lab.agents {
			<-ag.done
		}
	}()
	start := time.Now()
	lab.waitFormed()
	t.Logf("cluster formed after %s", time.Since(start).Round(time.Millisecond))
	for _, b := range blades[:3] {
		if lvl, err := shelf.PowerLevel(b); err != nil || lvl == 0 {
			t.Fatalf("blade %#x power level %d (%v) before the partition", b, lvl, err)
		}
	}
	lab.waitFor("every agent to feed its watchdog", 20*time.Second, func() bool {
		for _, s := range socks {
			if k, _ := s.feeds(); k == 0 {
				return false
			}
		}
		return true
	})

	// Partition: node-1 and node-2 | node-3, node-4, node-5.
	minority, majority := lab.agents[:2], lab.agents[2:]
	nl.isolate(1)
	nl.isolate(2)
	parted := time.Now()
	t.Logf("partitioned %s, %s | %s, %s, %s", minority[0].name, minority[1].name, majority[0].name, majority[1].name, majority[2].name)

	lab.waitFor("the majority to fence the minority's blades", 40*time.Second, func() bool {
		for _, m := range minority {
			if lvl, err := shelf.PowerLevel(m.blade); err != nil || lvl != 0 {
				return false
			}
			for _, ag := range majority {
				if countTrue(fenceEntries(ag, m.name, "level-result"), "done") == 0 {
					return false
				}
			}
		}
		return true
	})
	t.Logf("minority fenced %s after the partition", time.Since(parted).Round(time.Millisecond))
	lab.waitFor("the minority's watchdog decision to turn to self-fencing", 30*time.Second, func() bool {
		for _, ag := range minority {
			if len(ag.records("watchdogs no longer fed: the node will reset")) == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("minority self-fencing %s after the partition", time.Since(parted).Round(time.Millisecond))
	// Feeding has stopped on the minority and goes on on the majority.
	var before [n]int
	for i, s := range socks {
		before[i], _ = s.feeds()
	}
	time.Sleep(2 * time.Second)
	for i, s := range socks {
		after, _ := s.feeds()
		if i < 2 && after != before[i] {
			t.Errorf("%s fed its watchdog %d times after deciding to self-fence", lab.agents[i].name, after-before[i])
		}
		if i >= 2 && after == before[i] {
			t.Errorf("%s of the majority stopped feeding its watchdog", lab.agents[i].name)
		}
	}
	for _, ag := range majority {
		if len(ag.records("watchdogs no longer fed: the node will reset")) != 0 {
			t.Errorf("%s of the majority decided to self-fence", ag.name)
		}
		for _, m := range minority {
			if k := countTrue(fenceEntries(ag, m.name, "level-result"), "done"); k != 1 {
				t.Errorf("%s applied %d confirming results for %s, want 1", ag.name, k, m.name)
			}
		}
		for _, o := range majority {
			if len(fenceEntries(ag, o.name, "fence-requested")) != 0 {
				t.Errorf("%s saw a fence request for %s of the majority", ag.name, o.name)
			}
		}
	}
	// The minority decided no fence: no fencing entry applied there after
	// the partition reached the majority's blades.
	if lvl, err := shelf.PowerLevel(blades[2]); err != nil || lvl == 0 {
		t.Errorf("blade %#x of %s (majority) power level %d (%v)", blades[2], majority[0].name, lvl, err)
	}
	for _, ag := range minority {
		for _, o := range majority {
			if len(fenceEntries(ag, o.name, "fence-requested")) != 0 {
				t.Errorf("%s (minority) applied a fence request for %s", ag.name, o.name)
			}
		}
	}
}

// simClusterLab is a clusterLab on the embedded shelf manager: agent i's
// node is the blade blades[i], mapped by the entity path of its slot.
type simClusterLab struct {
	*clusterLab
	shelf  *sim.Shelf
	blades []sim.MCConfig
	audits []string // agent i's audit log
}

// newSimClusterLab starts the embedded shelf manager and n agents, each
// agent's node being one of its blades, with hardware failures as the
// fencing source and PICMG power level 0 as the fence. It waits until the
// cluster formed and every agent discovered the shelf.
func newSimClusterLab(t *testing.T, ctx context.Context, bin string, n int) *simClusterLab {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	netPrefix := fmt.Sprintf("127.%d.%d.", 1+int(b[0])%250, 1+int(b[1])%250)
	scfg := sim.DefaultConfig()
	scfg.MaxSessions = 16
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
	if len(blades) < n {
		t.Fatalf("the embedded shelf has %d blades", len(blades))
	}

	dir := t.TempDir()
	ca, err := pki.NewCA("test-cluster-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	keyFile := writeGossipKey(t, dir)
	pwFile := filepath.Join(dir, "shelf.password")
	writeSecret(t, pwFile, []byte("sim-admin"))
	var nodesYAML, fenceYAML strings.Builder
	for i := range n {
		host := fmt.Sprintf("%s%d", netPrefix, i+1)
		p := func() string { return net.JoinHostPort(host, fmt.Sprint(loopback.Ports(t, host, 1)[0])) }
		name := fmt.Sprintf("node-%d", i+1)
		fmt.Fprintf(&nodesYAML, "    - {name: %s, gossip: %q, raft: %q, rpc: %q}\n", name, p(), p(), p())
		// The slot's entity path: every resource of the blade is inside it.
		fmt.Fprintf(&fenceYAML, "    %s: {shelf: sim, ipmb: %#x, entity: \"{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,%d}\"}\n", name, blades[i].Addr, blades[i].SiteNumber)
	}
	lab := &simClusterLab{clusterLab: &clusterLab{t: t, bin: bin, dir: dir}, shelf: srv.Shelf(), blades: blades[:n]}
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
		auditPath := filepath.Join(ndir, "audit.log")
		cfg := fmt.Sprintf(`log_level: info
log_format: json
shelves:
  - name: sim
    address: %q
    username: admin
    password: {file: %s}
audit:
  path: %s
monitor:
  poll_interval: 500ms
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
    - {name: power-level, confirm_timeout: 10s, executors: [{type: picmg-power-level}]}
  nodes:
%s`, srv.Addr().String(), pwFile, auditPath, name, nodesYAML.String(), keyFile,
			pki.CertFile(ndir, name), pki.KeyFile(ndir, name), filepath.Join(dir, pki.CACertFile), filepath.Join(ndir, "data"),
			fenceYAML.String())
		path := filepath.Join(ndir, "hpiagent.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		lab.agents = append(lab.agents, &clusterAgent{name: name, config: path, blade: blades[i].Addr})
		lab.audits = append(lab.audits, auditPath)
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

// criticalSensor returns the first sensor of blade mc with an upper
// non-recoverable threshold (HPI severity CRITICAL) that a raw value can
// exceed.
func criticalSensor(t *testing.T, mc sim.MCConfig) sim.SensorConfig {
	t.Helper()
	for _, s := range mc.Sensors {
		if s.ThresholdMask&0x20 != 0 && s.Thresholds[5] < 250 && s.M > 0 {
			return s
		}
	}
	t.Fatalf("blade %#x has no sensor with an upper non-recoverable threshold", mc.Addr)
	return sim.SensorConfig{}
}

// auditRecords returns the records of the audit log at path with the
// given action and target.
func auditRecords(t *testing.T, path, action, target string) []audit.Record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(bytes.Trim(line, "\x00"))) == 0 {
			continue
		}
		r, err := audit.ParseLine(line)
		if err != nil {
			t.Fatalf("audit log %s: %v", path, err)
		}
		if r.Action == action && r.Target == target {
			out = append(out, r)
		}
	}
	return out
}

// TestClusterFenceOnCriticalSensor: three agents share the embedded
// shelf manager; each node's entity path is its blade's slot. A blade's
// sensor is driven above its upper non-recoverable threshold: every
// agent's HPI domain sees the CRITICAL assertion, and the leader fences
// that blade's node, once, through PICMG power level 0 (read back from
// the shelf); the other blades keep their power.
func TestClusterFenceOnCriticalSensor(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three agent processes")
	}
	t.Parallel()
	bin := buildBinary(t, t.TempDir(), "./cmd/hpiagent")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lab := newSimClusterLab(t, ctx, bin, 3)
	shelf, blades := lab.shelf, lab.blades
	leader := lab.leader()
	var victim *clusterAgent
	var vcfg sim.MCConfig
	for i, ag := range lab.agents {
		if ag != leader {
			victim, vcfg = ag, blades[i]
			break
		}
	}
	sensor := criticalSensor(t, vcfg)
	t.Logf("leader %s; driving %q of %s's blade %#x above its upper non-recoverable threshold", leader.name, sensor.Name, victim.name, vcfg.Addr)
	if err := shelf.SetSensorRaw(vcfg.Addr, sensor.Number, sensor.Thresholds[5]+3); err != nil {
		t.Fatal(err)
	}
	lab.waitFor("the leader to fence "+victim.name, 30*time.Second, func() bool {
		for _, ag := range lab.agents {
			if countTrue(fenceEntries(ag, victim.name, "level-result"), "done") == 0 {
				return false
			}
		}
		lvl, err := shelf.PowerLevel(vcfg.Addr)
		return err == nil && lvl == 0
	})
	time.Sleep(2 * time.Second)
	for _, ag := range lab.agents {
		if k := countTrue(fenceEntries(ag, victim.name, "fence-requested"), "accepted"); k != 1 {
			t.Errorf("%s applied %d accepted fence requests for %s, want 1", ag.name, k, victim.name)
		}
		for _, o := range lab.agents {
			if o != victim && len(fenceEntries(ag, o.name, "fence-requested")) != 0 {
				t.Errorf("%s applied a fence request for %s", ag.name, o.name)
			}
		}
	}
	for i, ag := range lab.agents {
		if ag == victim {
			continue
		}
		if lvl, err := shelf.PowerLevel(blades[i].Addr); err != nil || lvl == 0 {
			t.Errorf("blade %#x of %s: power level %d (%v), want on", blades[i].Addr, ag.name, lvl, err)
		}
	}
}

// TestClusterFenceLeaderOwnBlade: the blade of the leader itself reports
// a CRITICAL sensor. A node never fences itself, so the leader hands its
// leadership over (audited); the new leader finds the failure in its own
// model of the shelf and fences the old leader's blade, once, through
// PICMG power level 0 (read back from the shelf). The other blades keep
// their power and the old leader never becomes leader again meanwhile.
func TestClusterFenceLeaderOwnBlade(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three agent processes")
	}
	t.Parallel()
	bin := buildBinary(t, t.TempDir(), "./cmd/hpiagent")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lab := newSimClusterLab(t, ctx, bin, 3)
	shelf, blades := lab.shelf, lab.blades
	old := lab.leader()
	oldIdx := slicesIndexAgent(lab.agents, old)
	vcfg := blades[oldIdx]
	sensor := criticalSensor(t, vcfg)
	t.Logf("driving %q of the leader %s's own blade %#x above its upper non-recoverable threshold", sensor.Name, old.name, vcfg.Addr)
	if err := shelf.SetSensorRaw(vcfg.Addr, sensor.Number, sensor.Thresholds[5]+3); err != nil {
		t.Fatal(err)
	}
	lab.waitFor("another member to fence the old leader "+old.name, 40*time.Second, func() bool {
		for _, ag := range lab.agents {
			if countTrue(fenceEntries(ag, old.name, "level-result"), "done") == 0 {
				return false
			}
		}
		lvl, err := shelf.PowerLevel(vcfg.Addr)
		return err == nil && lvl == 0
	})
	time.Sleep(2 * time.Second) // room for a duplicate, were there one
	newLeader := lab.leader()
	if newLeader == nil || newLeader == old {
		t.Fatalf("leadership did not move from %s (now %v)", old.name, newLeader)
	}
	t.Logf("leadership moved from %s to %s", old.name, newLeader.name)
	if n := len(old.records("fencing: leadership handed over so that another member fences this node")); n != 1 {
		t.Errorf("%s logged %d hand-overs, want 1", old.name, n)
	}
	if hs := auditRecords(t, lab.audits[oldIdx], "fencing.handover", old.name); len(hs) != 1 || hs[0].Result != "ok" {
		t.Errorf("%s audited hand-overs %+v, want one ok", old.name, hs)
	}
	for i, ag := range lab.agents {
		if k := countTrue(fenceEntries(ag, old.name, "fence-requested"), "accepted"); k != 1 {
			t.Errorf("%s applied %d accepted fence requests for %s, want 1", ag.name, k, old.name)
		}
		if k := countTrue(fenceEntries(ag, old.name, "level-result"), "done"); k != 1 {
			t.Errorf("%s applied %d confirming results for %s, want 1", ag.name, k, old.name)
		}
		if rs := auditRecords(t, lab.audits[i], "fencing.fence-requested", old.name); len(rs) != 1 {
			t.Errorf("%s audited %d accepted fence requests for %s, want 1", ag.name, len(rs), old.name)
		}
		for _, o := range lab.agents {
			if o != old && len(fenceEntries(ag, o.name, "fence-requested")) != 0 {
				t.Errorf("%s applied a fence request for %s", ag.name, o.name)
			}
		}
	}
	// The old leader executed no fence level: the new leader did.
	for _, r := range old.records("fencing: executing level") {
		t.Errorf("the old leader %s executed a fence level itself: %v", old.name, r)
	}
	for i, ag := range lab.agents {
		if ag == old {
			continue
		}
		if lvl, err := shelf.PowerLevel(blades[i].Addr); err != nil || lvl == 0 {
			t.Errorf("blade %#x of %s: power level %d (%v), want on", blades[i].Addr, ag.name, lvl, err)
		}
	}
}

func slicesIndexAgent(agents []*clusterAgent, a *clusterAgent) int {
	for i, x := range agents {
		if x == a {
			return i
		}
	}
	return -1
}

// TestClusterFenceAgentFencesLeader: Pacemaker's fence_hpiagent asks the
// leader's own API to power off the leader's node. The leader never
// fences itself: it hands the leadership over and the request, retried
// by the API on the new leader, is carried out there, once; the blade
// reads off by ipmitool and fence_hpiagent reports success.
func TestClusterFenceAgentFencesLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an ipmi_sim shelf and three agent processes")
	}
	labshelf.RequireTools(t, "ipmi_sim", "ipmitool")
	t.Parallel()
	bdir := t.TempDir()
	bin := buildBinary(t, bdir, "./cmd/hpiagent")
	fa := buildBinary(t, bdir, "./cmd/fence_hpiagent")
	lab := newClusterLab(t, bin, 3, "    - {name: chassis, attempts: 2, confirm_timeout: 10s, executors: [{type: chassis}]}\n", true)
	lab.waitFormed()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	old := lab.leader()
	if p := lab.bladePower(ctx, old.blade); p != "on" {
		t.Fatalf("blade %#x of the leader %s reads %s before the test", old.blade, old.name, p)
	}
	// Membership must hold the others alive and verified for a hand-over.
	time.Sleep(2 * time.Second)
	code, out := lab.fenceAgent(ctx, fa, old, "off", old.name)
	if code != 0 {
		for _, ag := range lab.agents {
			t.Logf("--- %s (last lines)\n%s", ag.name, ag.tail(30))
		}
		t.Fatalf("fence_hpiagent action=off plug=%s against %s's own API: exit %d\n%s", old.name, old.name, code, out)
	}
	if p := lab.bladePower(ctx, old.blade); p != "off" {
		t.Fatalf("blade %#x of %s reads %s after the fence, want off", old.blade, old.name, p)
	}
	newLeader := lab.leader()
	if newLeader == nil || newLeader == old {
		t.Fatalf("leadership did not move from %s", old.name)
	}
	t.Logf("%s handed the leadership to %s, which fenced it", old.name, newLeader.name)
	time.Sleep(2 * time.Second)
	for _, ag := range lab.agents {
		if n := countTrue(fenceEntries(ag, old.name, "fence-requested"), "accepted"); n != 1 {
			t.Errorf("%s applied %d accepted fence requests for %s, want 1", ag.name, n, old.name)
		}
		if n := countTrue(fenceEntries(ag, old.name, "level-result"), "done"); n != 1 {
			t.Errorf("%s applied %d confirming results for %s, want 1", ag.name, n, old.name)
		}
	}
	if rs := old.records("fencing: executing level"); len(rs) != 0 {
		t.Errorf("the old leader %s executed %d fence levels itself", old.name, len(rs))
	}
	for _, ag := range lab.agents {
		if ag != old {
			if p := lab.bladePower(ctx, ag.blade); p != "on" {
				t.Errorf("blade %#x of %s reads %s, want on", ag.blade, ag.name, p)
			}
		}
	}
}
