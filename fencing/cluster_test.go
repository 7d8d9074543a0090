package fencing

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"hpiagent/cluster"
	"hpiagent/hpi"
	"hpiagent/internal/loopback"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
	"hpiagent/shelf/sim"
	"hpiagent/watchdog"
)

// clusterNet runs real cluster nodes (memberlist + raft over mutual TLS on
// loopback), each with a fencing Machine and Coordinator whose executors
// power blades of one embedded shelf.
type clusterNet struct {
	t      *testing.T
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	nodes  []cluster.Node
	key    []byte
	shelf  *simPeer
	blades map[string]uint8 // node -> IPMB address of its blade
	faults *cluster.Faults
	// entities, if set before start, maps nodes to entity paths, and
	// failed is then every member's FailedHardware.
	entities map[string]hpi.EntityPath
	failed   func() []Failure

	mu      sync.Mutex
	members map[string]*clusterMember
}

type clusterMember struct {
	c        *cluster.Cluster
	m        *Machine
	co       *Coordinator
	cancel   context.CancelFunc
	outcome  outcomes
	observed outcomes
}

func newClusterNet(t *testing.T, ctx context.Context, names ...string) *clusterNet {
	t.Helper()
	n := &clusterNet{t: t, members: map[string]*clusterMember{}, blades: map[string]uint8{}, key: make([]byte, 32), faults: cluster.NewFaults()}
	_, _ = rand.Read(n.key)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fencing test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	n.ca, _ = x509.ParseCertificate(der)
	n.caKey = key
	n.pool = x509.NewCertPool()
	n.pool.AddCert(n.ca)
	n.shelf = startSimPeer(ctx, t)
	// Nodes after the shelf's blades are members without a blade (not
	// fencing targets).
	for i, name := range names {
		n.nodes = append(n.nodes, loopbackNode(t, name))
		if i < len(n.shelf.blades) {
			n.blades[name] = n.shelf.blades[i]
		}
	}
	t.Cleanup(func() {
		n.faults.Heal()
		n.mu.Lock()
		ms := n.members
		n.members = map[string]*clusterMember{}
		n.mu.Unlock()
		for _, m := range ms {
			m.cancel()
			_ = m.c.Kill()
		}
	})
	return n
}

func loopbackNode(t *testing.T, name string) cluster.Node {
	g, r, p := loopback.ClusterAddrs(t)
	return cluster.Node{Name: name, GossipAddr: g, RaftAddr: r, RPCAddr: p}
}

func (n *clusterNet) cert(name string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse("hpiagent://peer/" + name)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(mrand.Int64N(1 << 62)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, URIs: []*url.URL{u}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, n.ca, &key.PublicKey, n.caKey)
	if err != nil {
		n.t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// start runs node name; wrap, if set, wraps its PICMG executor.
func (n *clusterNet) start(ctx context.Context, name string, wrap func(Executor) Executor) *clusterMember {
	n.t.Helper()
	cfg := cluster.DefaultConfig()
	cfg.NodeName = name
	cfg.Nodes = n.nodes
	cfg.GossipKeys = [][]byte{n.key}
	crt := n.cert(name)
	cfg.ServerTLS = &tls.Config{Certificates: []tls.Certificate{crt}, ClientCAs: n.pool, MinVersion: tls.VersionTLS13}
	cfg.ClientTLS = &tls.Config{Certificates: []tls.Certificate{crt}, RootCAs: n.pool, MinVersion: tls.VersionTLS13}
	cfg.DataDir = n.t.TempDir()
	cfg.Logger = quietLogger()
	cfg.Faults = n.faults
	c, err := cluster.New(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	mem := &clusterMember{c: c, m: NewMachine()}
	mem.m.Observe(mem.observed.add)
	if err := c.RegisterFSM(LogKind, mem.m); err != nil {
		n.t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		n.t.Fatal(err)
	}
	// Each member has its own session to the shelf manager.
	u := sim.DefaultConfig().Users[0]
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: n.shelf.srv.Addr().String(), Username: u.Name, Password: []byte(u.Password), CipherSuites: []int{17}, Logger: quietLogger()})
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { sess.Close() })
	targets := map[string]FRUTarget{}
	nodes := map[string]NodeConfig{}
	for node, addr := range n.blades {
		targets[node] = FRUTarget{Addr: ipmi.Addr{Slave: addr}}
		nodes[node] = NodeConfig{Entity: n.entities[node]}
	}
	var e Executor
	e, _ = NewPICMG(PICMGConfig{Conn: sess, Method: PICMGPowerLevel, Targets: targets})
	if wrap != nil {
		e = wrap(e)
	}
	mctx, cancel := context.WithCancel(ctx)
	mem.cancel = cancel
	dead := func() []string {
		var out []string
		for _, m := range c.Status().Members {
			if m.State == cluster.MemberState("dead") {
				out = append(out, m.Name)
			}
		}
		return out
	}
	mem.co, err = NewCoordinator(CoordinatorConfig{Self: name, Log: c, Machine: mem.m, Nodes: nodes, Logger: quietLogger(), Scan: 100 * time.Millisecond,
		OnOutcome: mem.outcome.add, DeadMembers: dead, FailedHardware: n.failed,
		Levels: []Level{{Name: "picmg", Executors: []Executor{e}, Confirm: ConfirmConfig{Timeout: 5 * time.Second, Interval: 50 * time.Millisecond}}}})
	if err != nil {
		n.t.Fatal(err)
	}
	go func() { _ = mem.co.Run(mctx) }()
	// The daemon's wiring: membership deaths become fence requests (only
	// the leader's are taken).
	go func() {
		for {
			select {
			case <-mctx.Done():
				return
			case ev := <-c.MemberEvents():
				if ev.Kind == cluster.EventDead {
					_, _ = mem.co.MemberDead(mctx, ev.Node, "memberlist: dead")
				}
			}
		}
	}()
	n.mu.Lock()
	n.members[name] = mem
	n.mu.Unlock()
	return mem
}

func (n *clusterNet) kill(name string) {
	n.mu.Lock()
	m := n.members[name]
	delete(n.members, name)
	n.mu.Unlock()
	m.cancel()
	_ = m.c.Kill()
}

func (n *clusterNet) leader(timeout time.Duration) (string, *clusterMember) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n.mu.Lock()
		for name, m := range n.members {
			if m.c.IsLeader() && m.c.HasQuorum() {
				n.mu.Unlock()
				return name, m
			}
		}
		n.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Fatal("no leader with quorum")
	return "", nil
}

// waitAll waits until every live member's Machine shows target in phase.
func (n *clusterNet) waitAll(target string, want Phase, timeout time.Duration) TargetState {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	var st TargetState
	for {
		all := true
		n.mu.Lock()
		for _, m := range n.members {
			st, _ = m.m.State(target)
			if st.Phase != want {
				all = false
			}
		}
		n.mu.Unlock()
		if all {
			return st
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s is %s, want %s on every member", target, st.Phase, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterFencesDeadMember: three agents on a real cluster; one is
// killed (no goodbye); the leader fences its blade once, and every
// remaining member's replicated state agrees.
func TestClusterFencesDeadMember(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n := newClusterNet(t, ctx, "a", "b", "c")
	for _, name := range []string{"a", "b", "c"} {
		n.start(ctx, name, nil)
	}
	leader, _ := n.leader(20 * time.Second)
	victim := "a"
	if leader == "a" {
		victim = "b"
	}
	// Wait until membership is complete before the kill.
	time.Sleep(2 * time.Second)
	n.kill(victim)
	st := n.waitAll(victim, PhaseFenced, 30*time.Second)
	if st.Fence.Source != SourceMemberDead || len(st.Fence.Results) != 1 {
		t.Fatalf("fence %+v", st.Fence)
	}
	if lvl, _ := n.shelf.srv.Shelf().PowerLevel(n.blades[victim]); lvl != 0 {
		t.Fatalf("victim blade power level %d", lvl)
	}
	for name, addr := range n.blades {
		if name != victim {
			if lvl, _ := n.shelf.srv.Shelf().PowerLevel(addr); lvl == 0 {
				t.Fatalf("blade of live node %s lost power", name)
			}
		}
	}
	// Exactly one confirmed result in the replicated state of every member
	// (the proposer's outcome hook may miss it when leadership moved while
	// the entry committed; Machine.Observe sees it on every member).
	n.mu.Lock()
	for name, m := range n.members {
		st, _ := m.m.State(victim)
		ok := 0
		for _, r := range st.Fence.Results {
			if r.OK {
				ok++
			}
		}
		if ok != 1 || m.observed.count(func(o Outcome) bool { return o.Done && o.Target == victim }) != 1 {
			n.mu.Unlock()
			t.Fatalf("member %s: %d confirmed results, %d observed completions", name, ok, m.observed.count(func(o Outcome) bool { return o.Done }))
		}
	}
	n.mu.Unlock()
}

// TestClusterLeaderKilledMidFence: the leader powers the target off and
// is killed before it logs the result; the new leader (elected by the
// remaining majority) resumes the fence from the log and completes it
// exactly once.
func TestClusterLeaderKilledMidFence(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n := newClusterNet(t, ctx, "a", "b", "c")
	gates := map[string]*gatedExecutor{}
	for _, name := range []string{"a", "b", "c"} {
		g := &gatedExecutor{entered: make(chan struct{})}
		gates[name] = g
		n.start(ctx, name, func(e Executor) Executor { g.Executor = e; return g })
	}
	leader, lm := n.leader(20 * time.Second)
	target := "a"
	if leader == "a" {
		target = "b"
	}
	if _, err := lm.co.Request(ctx, target, ActionOff, SourceOperator, "test", "alice"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gates[leader].entered:
	case <-ctx.Done():
		t.Fatal("leader never executed the level")
	}
	// The others must not block: open their gates (they act only once
	// they lead).
	for name, g := range gates {
		if name != leader {
			g.open()
		}
	}
	st, _ := lm.m.State(target)
	oldExec := st.Fence.Exec
	n.kill(leader)
	st = n.waitAll(target, PhaseFenced, 40*time.Second)
	if len(st.Fence.Results) != 1 || st.Fence.Results[0].Exec == oldExec || !st.Fence.Results[0].OK {
		t.Fatalf("results %+v (old execution %d)", st.Fence.Results, oldExec)
	}
	newLeader, _ := n.leader(10 * time.Second)
	if newLeader == leader {
		t.Fatal("killed leader still leads")
	}
	if lvl, _ := n.shelf.srv.Shelf().PowerLevel(n.blades[target]); lvl != 0 {
		t.Fatalf("target blade power level %d", lvl)
	}
}

// TestClusterPartitionMinoritySelfFences: the leader is cut off alone. The
// majority elects a new leader and fences the isolated node's blade; the
// isolated node cannot decide anything (no quorum) and its watchdog feeder
// stops feeding after SelfFenceAfter, so it would reset itself. The
// majority's feeders keep feeding: SelfFenceAfter (5 s here) is longer
// than the majority's own leaderless time while it elects a new leader.
func TestClusterPartitionMinoritySelfFences(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	names := []string{"a", "b", "c"}
	n := newClusterNet(t, ctx, names...)
	feeders := map[string]*watchdogFile{}
	for _, name := range names {
		m := n.start(ctx, name, nil)
		feeders[name] = startFileFeeder(ctx, t, m.c.HasQuorum)
	}
	isolated, _ := n.leader(20 * time.Second)
	time.Sleep(2 * time.Second) // membership complete, feeders running
	var majority []string
	for _, name := range names {
		if name != isolated {
			majority = append(majority, name)
		}
	}
	n.faults.Partition([]string{isolated})
	cut := time.Now()

	// The majority fences the isolated node.
	deadline := time.Now().Add(40 * time.Second)
	for {
		ok := true
		for _, name := range majority {
			st, _ := n.member(name).m.State(isolated)
			ok = ok && st.Phase == PhaseFenced
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("majority did not fence %s", isolated)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lvl, _ := n.shelf.srv.Shelf().PowerLevel(n.blades[isolated]); lvl != 0 {
		t.Fatalf("isolated blade power level %d", lvl)
	}
	for _, name := range majority {
		if lvl, _ := n.shelf.srv.Shelf().PowerLevel(n.blades[name]); lvl == 0 {
			t.Fatalf("majority node %s lost power", name)
		}
	}
	// The isolated node stops feeding for good; the majority keeps on.
	for !feeders[isolated].f.Status().SelfFencing {
		if time.Since(cut) > 20*time.Second {
			t.Fatalf("isolated node still feeding: %+v", feeders[isolated].f.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := feeders[isolated].size()
	majBefore := map[string]int64{}
	for _, name := range majority {
		majBefore[name] = feeders[name].size()
	}
	time.Sleep(time.Second)
	if got := feeders[isolated].size(); got != before {
		t.Fatalf("isolated node fed its watchdog after self-fencing (%d -> %d)", before, got)
	}
	for _, name := range majority {
		if st := feeders[name].f.Status(); st.SelfFencing || feeders[name].size() <= majBefore[name] {
			t.Fatalf("majority node %s stopped feeding: %+v", name, st)
		}
	}
	// The isolated node decided nothing: its replicated state has no fence.
	for _, name := range majority {
		if st, _ := n.member(isolated).m.State(name); st.Phase != PhaseIdle {
			t.Fatalf("isolated node's state shows %s %s", name, st.Phase)
		}
	}
}

func (n *clusterNet) member(name string) *clusterMember {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.members[name]
}

// watchdogFile is a Feeder on a file standing for /dev/watchdog.
type watchdogFile struct {
	path string
	f    *watchdog.Feeder
}

func (w *watchdogFile) size() int64 {
	fi, err := os.Stat(w.path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

func startFileFeeder(ctx context.Context, t *testing.T, quorum func() bool) *watchdogFile {
	t.Helper()
	path := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dev, err := watchdog.NewDev(watchdog.DevConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	f, err := watchdog.NewFeeder(watchdog.FeederConfig{Devices: []watchdog.Device{dev}, HasQuorum: quorum,
		SelfFenceAfter: 5 * time.Second, Interval: 100 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = f.Run(ctx) }()
	t.Cleanup(func() { _ = dev.Release() })
	return &watchdogFile{path: path, f: f}
}

// offCounter wraps an executor and counts power-offs per node.
type offCounter struct {
	Executor
	mu   sync.Mutex
	offs map[string]int
}

func (o *offCounter) Off(ctx context.Context, node string) error {
	o.mu.Lock()
	o.offs[node]++
	o.mu.Unlock()
	return o.Executor.Off(ctx, node)
}

func (o *offCounter) count(node string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.offs[node]
}

// TestClusterLeaderHandsOverOwnFailure: on a real cluster, the model
// every member reads reports a hardware failure of the leader's own
// blade. The leader hands the leadership over through raft; the new
// leader's scan fences the old leader's blade, once, and the old leader
// never powered anything off.
func TestClusterLeaderHandsOverOwnFailure(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	names := []string{"a", "b", "c"}
	n := newClusterNet(t, ctx, names...)
	var mu sync.Mutex
	var failures []Failure
	n.entities = map[string]hpi.EntityPath{}
	for i, name := range names {
		n.entities[name] = slotPath(hpi.EntityLocation(i + 1))
	}
	n.failed = func() []Failure {
		mu.Lock()
		defer mu.Unlock()
		return append([]Failure(nil), failures...)
	}
	counters := map[string]*offCounter{}
	for _, name := range names {
		oc := &offCounter{offs: map[string]int{}}
		counters[name] = oc
		n.start(ctx, name, func(e Executor) Executor { oc.Executor = e; return oc })
	}
	leader, _ := n.leader(20 * time.Second)
	// Membership must hold the others alive and verified to hand over.
	time.Sleep(2 * time.Second)
	mu.Lock()
	failures = []Failure{{Entity: append(hpi.EntityPath{{Type: hpi.EntPICMGFrontBlade, Location: 0}}, n.entities[leader]...), Reason: "test: communication lost (M7)"}}
	mu.Unlock()
	st := n.waitAll(leader, PhaseFenced, 30*time.Second)
	if st.Fence.Source != SourceHardware || len(st.Fence.Results) != 1 {
		t.Fatalf("fence of the old leader %+v", st.Fence)
	}
	newLeader, _ := n.leader(10 * time.Second)
	if newLeader == leader {
		t.Fatalf("%s still leads", leader)
	}
	if lvl, _ := n.shelf.srv.Shelf().PowerLevel(n.blades[leader]); lvl != 0 {
		t.Fatalf("old leader's blade power level %d", lvl)
	}
	for name, addr := range n.blades {
		if name != leader {
			if lvl, _ := n.shelf.srv.Shelf().PowerLevel(addr); lvl == 0 {
				t.Fatalf("blade of %s lost power", name)
			}
		}
	}
	time.Sleep(500 * time.Millisecond) // several scans: room for a duplicate
	if k := counters[leader].count(leader); k != 0 {
		t.Errorf("the old leader powered its own blade off %d times", k)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, m := range n.members {
		if k := m.observed.count(func(o Outcome) bool { return o.Target == leader && o.Kind == KindFenceRequested && o.Accepted }); k != 1 {
			t.Errorf("member %s observed %d accepted fence requests of %s, want 1", name, k, leader)
		}
		if k := m.observed.count(func(o Outcome) bool { return o.Target == leader && o.Done }); k != 1 {
			t.Errorf("member %s observed %d completions of %s, want 1", name, k, leader)
		}
	}
}
