package hotswap

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/cluster"
	"hpiagent/hpi"
	"hpiagent/internal/pki"
)

func clusterFreeAddrs(t *testing.T) (gossip, raftAddr, rpc string) {
	t.Helper()
	host := fmt.Sprintf("127.%d.%d.%d", 1+mrand.IntN(250), mrand.IntN(256), 2+mrand.IntN(250))
	var ports []int
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for len(ports) < 3 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		if len(ports) == 0 {
			u, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(p)))
			if err != nil {
				l.Close()
				continue
			}
			closers = append(closers, u)
		}
		closers = append(closers, l)
		ports = append(ports, p)
	}
	j := func(p int) string { return net.JoinHostPort(host, strconv.Itoa(p)) }
	return j(ports[0]), j(ports[1]), j(ports[2])
}

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
	ca, err := pki.NewCA("hotswap-test-ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	var nodes []cluster.Node
	certs := map[string]tls.Certificate{}
	dirs := map[string]string{}
	for _, n := range names {
		g, r, p := clusterFreeAddrs(t)
		nodes = append(nodes, cluster.Node{Name: n, GossipAddr: g, RaftAddr: r, RPCAddr: p})
		c, err := ca.Issue(pki.IssueRequest{Name: n, Kind: pki.KindPeer, Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		certs[n] = c.TLSCertificate()
		dirs[n] = t.TempDir()
	}
	tc := newTestCluster(t, names...) // hooks, wipers, member state dirs, alarms
	hw := &blockingHW{fakeHW: tc.hw, entered: make(chan struct{})}
	hw.set(fruA, hpi.M2, Policy{})

	var mu sync.Mutex
	live := map[string]*clusterNode{}
	start := func(name string) *clusterNode {
		t.Helper()
		cfg := cluster.DefaultConfig()
		cfg.NodeName, cfg.Nodes, cfg.GossipKeys = name, nodes, [][]byte{key}
		cfg.ServerTLS = &tls.Config{Certificates: []tls.Certificate{certs[name]}, ClientCAs: ca.Pool(), MinVersion: tls.VersionTLS13}
		cfg.ClientTLS = &tls.Config{Certificates: []tls.Certificate{certs[name]}, RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}
		cfg.DataDir = dirs[name]
		cfg.Logger = testLogger(t)
		c, err := cluster.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		m := NewMachine()
		if err := c.RegisterFSM(LogKind, m); err != nil {
			t.Fatal(err)
		}
		mem := tc.startMember(name)
		for method, h := range mem.Handlers() {
			if err := c.Handle(method, h); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		coord, err := NewCoordinator(CoordinatorConfig{
			Node: name, Log: c, Peers: c, Machine: m, Hardware: hw, Member: mem,
			Members: func() []string { return names }, MaxAttempts: 50, RetryDelay: 200 * time.Millisecond,
			StepTimeout: 5 * time.Second, PollInterval: 50 * time.Millisecond,
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
		mu.Lock()
		live[name] = n
		mu.Unlock()
		return n
	}
	kill := func(name string) {
		mu.Lock()
		n := live[name]
		delete(live, name)
		mu.Unlock()
		n.cancel()
		<-n.stopped
		_ = n.c.Kill()
		tc.peers.set(name, nil, true)
	}
	t.Cleanup(func() {
		mu.Lock()
		var all []string
		for n := range live {
			all = append(all, n)
		}
		mu.Unlock()
		for _, n := range all {
			kill(n)
		}
	})
	waitLeader := func() string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			for name, n := range live {
				if n.c.IsLeader() && n.c.HasQuorum() {
					mu.Unlock()
					return name
				}
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("no leader")
		return ""
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, n := range names {
		start(n)
	}
	leader := waitLeader()
	mu.Lock()
	ln := live[leader]
	mu.Unlock()
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
	kill(leader)
	next := waitLeader()
	mu.Lock()
	nn := live[next]
	mu.Unlock()
	waitFor("the new leader to finish", func() bool { w, _ := nn.m.Workflow(id); return w.Outcome == OutcomeActivated })
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
	restarted := start(leader)
	waitFor("the restarted agent to replay", func() bool { w, _ := restarted.m.Workflow(id); return w.Outcome == OutcomeActivated })

	// A follower down during an insertion keeps the FRU locked, with an
	// alarm, until it is back.
	leader = waitLeader()
	var down string
	for _, n := range names {
		if n != leader {
			down = n
			break
		}
	}
	kill(down)
	hw.set(fruB, hpi.M2, Policy{})
	mu.Lock()
	ln = live[leader]
	mu.Unlock()
	if err := ln.coord.Observe(ctx, fruB, hpi.HsStateInactive, hpi.HsStateInsertionPending); err != nil {
		t.Fatal(err)
	}
	waitFor("an alarm about "+down, func() bool { return strings.Contains(strings.Join(tc.alarmTexts(), "\n"), down) })
	if st, pol, _, _ := hw.get(fruB); st != hpi.M2 || !pol.Locked {
		t.Fatalf("with %s down the FRU is in %s, policy %+v", down, st, pol)
	}
	start(down)
	waitFor("the insertion to finish once "+down+" is back", func() bool {
		st, _, _, _ := hw.get(fruB)
		return st == hpi.M4
	})
}
