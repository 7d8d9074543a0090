package hotswap

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/cluster"
	"hpiagent/hpi"
	"hpiagent/internal/loopback"
	"hpiagent/internal/pki"
	secureerase "hpiagent/secure-erase"
)

// blockingHW holds the first Activate until its context ends and then
// fails without acting: the leader dies in the middle of the hardware
// step.
type blockingHW struct {
	*fakeHW
	once    sync.Once
	entered chan struct{}
}

func (h *blockingHW) Activate(ctx context.Context, f FRU) error {
	first := false
	h.once.Do(func() { first = true })
	if first {
		close(h.entered)
		<-ctx.Done()
		return ctx.Err()
	}
	return h.fakeHW.Activate(ctx, f)
}

type clusterNode struct {
	c       *cluster.Cluster
	m       *Machine
	coord   *Coordinator
	cancel  context.CancelFunc
	stopped chan struct{}
}

// realCluster is agents of the cluster package (raft log, mutual TLS peer
// RPC) over loopback sockets, each with a Machine, a Member and a
// Coordinator.
type realCluster struct {
	t     *testing.T
	names []string
	ca    *pki.CA
	key   []byte
	nodes []cluster.Node
	peer  map[string]*pki.Cert
	dirs  map[string]string
	tc    *testCluster
	hw    Hardware
	// member, when set, builds node name's Member (default: tc's).
	member func(name string) *Member
	// verify is the coordinators' VerifySigner.
	verify func(owner string, certDER []byte) (crypto.PublicKey, error)
	// owner is the coordinators' Owner (default: the leader).
	owner func(FRU) string

	mu   sync.Mutex
	live map[string]*clusterNode
}

func newRealCluster(t *testing.T, tc *testCluster, hw Hardware) *realCluster {
	t.Helper()
	ca, err := pki.NewCA("hotswap-test-ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rc := &realCluster{t: t, names: tc.names, ca: ca, key: make([]byte, 32), peer: map[string]*pki.Cert{},
		dirs: map[string]string{}, tc: tc, hw: hw, live: map[string]*clusterNode{}}
	_, _ = rand.Read(rc.key)
	for _, n := range tc.names {
		g, r, p := loopback.ClusterAddrs(t)
		rc.nodes = append(rc.nodes, cluster.Node{Name: n, GossipAddr: g, RaftAddr: r, RPCAddr: p})
		c, err := ca.Issue(pki.IssueRequest{Name: n, Kind: pki.KindPeer, Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		rc.peer[n] = c
		rc.dirs[n] = t.TempDir()
	}
	t.Cleanup(func() {
		rc.mu.Lock()
		var all []string
		for n := range rc.live {
			all = append(all, n)
		}
		rc.mu.Unlock()
		for _, n := range all {
			rc.kill(n)
		}
	})
	return rc
}

func (rc *realCluster) start(name string) *clusterNode {
	t := rc.t
	t.Helper()
	cert := rc.peer[name].TLSCertificate()
	cfg := cluster.DefaultConfig()
	cfg.NodeName, cfg.Nodes, cfg.GossipKeys = name, rc.nodes, [][]byte{rc.key}
	cfg.ServerTLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: rc.ca.Pool(), MinVersion: tls.VersionTLS13}
	cfg.ClientTLS = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: rc.ca.Pool(), MinVersion: tls.VersionTLS13}
	cfg.DataDir = rc.dirs[name]
	cfg.Logger = testLogger(t)
	c, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMachine()
	if err := c.RegisterFSM(LogKind, m); err != nil {
		t.Fatal(err)
	}
	var mem *Member
	if rc.member != nil {
		mem = rc.member(name)
	} else {
		mem = rc.tc.startMember(name)
	}
	for method, h := range mem.Handlers() {
		if err := c.Handle(method, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	tc := rc.tc
	coord, err := NewCoordinator(CoordinatorConfig{
		Node: name, Log: c, Peers: c, Machine: m, Hardware: rc.hw, Member: mem,
		Members: func() []string { return rc.names }, MaxAttempts: 50, RetryDelay: 200 * time.Millisecond,
		StepTimeout: 5 * time.Second, PollInterval: 50 * time.Millisecond, Owner: rc.owner, VerifySigner: rc.verify,
		Alarm: func(a AlarmInfo) {
			tc.mu.Lock()
			tc.alarms = append(tc.alarms, a)
			tc.mu.Unlock()
		},
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &clusterNode{c: c, m: m, coord: coord, cancel: cancel, stopped: make(chan struct{})}
	go func() { defer close(n.stopped); _ = coord.Run(ctx) }()
	rc.mu.Lock()
	rc.live[name] = n
	rc.mu.Unlock()
	return n
}

func (rc *realCluster) kill(name string) {
	rc.mu.Lock()
	n := rc.live[name]
	delete(rc.live, name)
	rc.mu.Unlock()
	n.cancel()
	<-n.stopped
	_ = n.c.Kill()
	rc.tc.peers.set(name, nil, true)
}

func (rc *realCluster) node(name string) *clusterNode {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.live[name]
}

func (rc *realCluster) waitLeader() string {
	rc.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		rc.mu.Lock()
		for name, n := range rc.live {
			if n.c.IsLeader() && n.c.HasQuorum() {
				rc.mu.Unlock()
				return name
			}
		}
		rc.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	rc.t.Fatal("no leader")
	return ""
}

func (rc *realCluster) waitFor(what string, cond func() bool) {
	rc.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			rc.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWorkflowOverRealCluster runs an insertion over the cluster package
// (raft log, mutual TLS peer RPC) with three agents, kills the leader while
// it is activating the FRU, and checks that the new leader finishes the
// workflow exactly once; the killed agent restarts, replays the log and
// sees the same outcome. Then a follower is down during an insertion: the
// FRU stays locked with an alarm until it is back.
func TestWorkflowOverRealCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a three-node cluster over loopback sockets (-short)")
	}
	names := []string{"n1", "n2", "n3"}
	tc := newTestCluster(t, names...) // hooks, wipers, member state dirs, alarms
	hw := &blockingHW{fakeHW: tc.hw, entered: make(chan struct{})}
	hw.set(fruA, hpi.M2, Policy{})
	rc := newRealCluster(t, tc, hw)
	for _, n := range names {
		rc.start(n)
	}
	leader := rc.waitLeader()
	ln := rc.node(leader)
	ctx := context.Background()
	if err := ln.coord.Observe(ctx, fruA, hpi.HsStateInactive, hpi.HsStateInsertionPending); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hw.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the leader never started activating")
	}
	id, _ := ln.m.ActiveFor(fruA)
	rc.kill(leader)
	nn := rc.node(rc.waitLeader())
	rc.waitFor("the new leader to finish", func() bool { w, _ := nn.m.Workflow(id); return w.Outcome == OutcomeActivated })
	st, pol, act, _ := tc.hw.get(fruA)
	if st != hpi.M4 || pol.Locked || act != 1 {
		t.Fatalf("FRU in %s, policy %+v, effective activations %d", st, pol, act)
	}
	for _, n := range names {
		if got := tc.hooks[n].count("apply", id); got != 1 {
			t.Fatalf("hooks of %s applied %d times", n, got)
		}
	}
	// The killed agent restarts: raft replays the log into a fresh Machine.
	restarted := rc.start(leader)
	rc.waitFor("the restarted agent to replay", func() bool { w, _ := restarted.m.Workflow(id); return w.Outcome == OutcomeActivated })

	// A follower down during an insertion keeps the FRU locked, with an
	// alarm, until it is back.
	leader = rc.waitLeader()
	var down string
	for _, n := range names {
		if n != leader {
			down = n
			break
		}
	}
	rc.kill(down)
	hw.set(fruB, hpi.M2, Policy{})
	ln = rc.node(leader)
	if err := ln.coord.Observe(ctx, fruB, hpi.HsStateInactive, hpi.HsStateInsertionPending); err != nil {
		t.Fatal(err)
	}
	rc.waitFor("an alarm about "+down, func() bool { return strings.Contains(strings.Join(tc.alarmTexts(), "\n"), down) })
	if st, pol, _, _ := hw.get(fruB); st != hpi.M2 || !pol.Locked {
		t.Fatalf("with %s down the FRU is in %s, policy %+v", down, st, pol)
	}
	rc.start(down)
	rc.waitFor("the insertion to finish once "+down+" is back", func() bool {
		st, _, _, _ := hw.get(fruB)
		return st == hpi.M4
	})
}

// TestCertificatesOverRealCluster: a forced extraction over the cluster
// package whose owner signs its wipe certificates with its peer key (as
// the daemon does): the certificates reach every member's Machine through
// the raft log and verify with the owner's peer certificate; with the owner
// killed (its blade was the one removed), the others still hold them, and
// a member that restarts gets them back from the log.
func TestCertificatesOverRealCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a three-node cluster over loopback sockets (-short)")
	}
	names := []string{"n1", "n2", "n3"}
	tc := newTestCluster(t, names...)
	tc.hw.set(fruA, hpi.M4, Policy{})
	rc := newRealCluster(t, tc, tc.hw)
	rc.verify = SignerVerifier(rc.ca.Pool(), peerIdentity, nil)
	rc.owner = func(FRU) string { return "n2" }
	rc.member = func(name string) *Member {
		cfg := MemberConfig{Name: name, StateDir: tc.dirs[name], Hooks: map[string][]Hook{"*": {tc.hooks[name]}},
			Now: tc.clock.Now, Logger: testLogger(t)}
		if name == "n2" {
			cfg.Wiper = &signingWiper{key: rc.peer[name].Key, node: name}
			cfg.SignerCertificate = rc.peer[name].Cert.Raw
		}
		m, err := NewMember(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tc.peers.set(name, m, false)
		return m
	}
	for _, n := range names {
		rc.start(n)
	}
	ln := rc.node(rc.waitLeader())
	ctx := context.Background()
	var id string
	rc.waitFor("the extraction to be accepted", func() bool {
		var err error
		id, err = ln.coord.Start(ctx, KindForced, fruA, "alice", "replace blade")
		return err == nil
	})
	holds := func(name string) bool {
		n := rc.node(name)
		if n == nil {
			return false
		}
		wc := n.m.WipeCertificates()
		if len(wc) != 1 || wc[0].Workflow != id || wc[0].Owner != "n2" {
			return false
		}
		certs, err := secureerase.VerifyCertificates(wc[0].Certificates, rc.peer["n2"].Cert.PublicKey)
		return err == nil && len(certs) == 2
	}
	rc.waitFor("the extraction to finish with certificates on every member", func() bool {
		w, _ := ln.m.Workflow(id)
		return w.Outcome == OutcomeExtracted && holds("n1") && holds("n2") && holds("n3")
	})
	// The owner goes away with its blade; a non-owner restarts and
	// replays the log.
	rc.kill("n2")
	other := "n1"
	if rc.node("n1") == ln {
		other = "n3"
	}
	rc.kill(other)
	rc.start(other)
	rc.waitFor(other+" to hold the certificates again after its restart", func() bool { return holds(other) })
	for _, n := range names {
		if n != "n2" && !holds(n) {
			t.Fatalf("%s lost the certificates", n)
		}
	}
}
