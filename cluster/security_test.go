package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"hpiagent/internal/loopback"
	"hpiagent/internal/pki"
)

// dialOnly is a raft StreamLayer for a test client that only dials.
type dialOnly struct {
	net.Listener
	dial func(raft.ServerAddress, time.Duration) (net.Conn, error)
}

func (d dialOnly) Dial(a raft.ServerAddress, t time.Duration) (net.Conn, error) { return d.dial(a, t) }

func TestRaftRefusesPeersOutsideTheVoterList(t *testing.T) {
	n := newTestNet(t, names(4)...)
	// d is allow-listed (gossip, RPC) but not in the raft configuration.
	n.nodes[3].RaftAddr, n.nodes[3].NonVoter = "", true
	for _, name := range names(4) {
		n.start(name)
	}
	leader := n.waitLeader(20*time.Second, "a", "b", "c")
	target, _ := func() (Node, bool) { c := n.config(leader); return c.node(leader) }()
	otherCA := newTestCA(t)

	cases := []struct {
		name      string
		cert      tls.Certificate
		plaintext bool
		counter   func(Counters) uint64
	}{
		{"certificate not on the allow-list", n.ca.issue(t, "mallory"), false, func(c Counters) uint64 { return c.RaftPeerRefused }},
		{"allow-listed non-voter", n.cert("d"), false, func(c Counters) uint64 { return c.RaftPeerRefused }},
		{"client certificate named like a voter", n.ca.issueKind(t, "b", pki.KindClient), false, func(c Counters) uint64 { return c.RaftPeerRefused }},
		{"voter's name from another CA", otherCA.issue(t, "b"), false, func(c Counters) uint64 { return c.RaftHandshakeFailed }},
		{"plaintext", tls.Certificate{}, true, func(c Counters) uint64 { return c.RaftHandshakeFailed }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lm := n.member(leader)
			before := tc.counter(lm.c.Status().Counters)
			term := lm.c.Status().Term
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var dial func(raft.ServerAddress, time.Duration) (net.Conn, error)
			if tc.plaintext {
				dial = func(a raft.ServerAddress, to time.Duration) (net.Conn, error) {
					return net.DialTimeout("tcp", string(a), to)
				}
			} else {
				cfg := n.config(leader)
				cfg.ClientTLS = &tls.Config{Certificates: []tls.Certificate{tc.cert}, RootCAs: n.ca.pool}
				p := newTLSPolicy(&cfg)
				dial = func(a raft.ServerAddress, to time.Duration) (net.Conn, error) {
					ctx, cancel := context.WithTimeout(context.Background(), to)
					defer cancel()
					return p.dial(ctx, string(a), leader)
				}
			}
			trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
				Stream: dialOnly{Listener: ln, dial: dial}, MaxPool: 1, Timeout: 2 * time.Second,
			})
			defer trans.Close()
			req := &raft.RequestVoteRequest{
				RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("b"), Addr: []byte(target.RaftAddr)},
				Term:      term + 100, LastLogIndex: 1 << 40, LastLogTerm: term + 99,
			}
			var resp raft.RequestVoteResponse
			if err := trans.RequestVote(raft.ServerID(leader), raft.ServerAddress(target.RaftAddr), req, &resp); err == nil {
				t.Fatalf("vote request answered: %+v", resp)
			}
			waitFor(t, 5*time.Second, func() bool { return tc.counter(lm.c.Status().Counters) > before }, "refusal counted")
			if got := lm.c.Status().Term; got >= term+100 {
				t.Fatalf("term moved to %d by a refused peer", got)
			}
		})
	}
	// d still works as an RPC peer and member.
	n.waitVerified(10*time.Second, leader, "d")
	if err := n.member("d").c.Call(context.Background(), leader, methodHello, helloReq{}, &helloResp{}); err != nil {
		t.Fatalf("RPC from allow-listed non-voter: %v", err)
	}
}

func TestKeyringRotationKeepsTheCluster(t *testing.T) {
	all := names(3)
	n := newTestNet(t, all...)
	n.startAll()
	leader := n.waitLeader(20*time.Second, all...)
	n.waitVerified(10*time.Second, "a", "b", "c")
	old := n.keys[0]
	k2 := make([]byte, 32)
	rand.Read(k2)
	ctx := context.Background()
	a := n.member("a").c

	if err := a.InstallKey(ctx, k2); err != nil {
		t.Fatalf("InstallKey: %v", err)
	}
	for _, name := range all {
		if ids := n.member(name).c.KeyIDs(); !slices.Equal(ids, []string{keyID(old), keyID(k2)}) {
			t.Fatalf("%s after install: %v", name, ids)
		}
	}
	if err := a.UseKey(ctx, k2); err != nil {
		t.Fatalf("UseKey: %v", err)
	}
	if err := a.RemoveKey(ctx, k2); err == nil {
		t.Fatal("removing the primary key succeeded")
	}
	if err := a.RemoveKey(ctx, old); err != nil {
		t.Fatalf("RemoveKey: %v", err)
	}
	for _, name := range all {
		if ids := n.member(name).c.KeyIDs(); !slices.Equal(ids, []string{keyID(k2)}) {
			t.Fatalf("%s after rotation: %v", name, ids)
		}
	}
	// Gossip goes on with the new key only.
	time.Sleep(3 * time.Second)
	for _, name := range all {
		m := n.member(name)
		if d := m.events.count(EventDead, ""); d != 0 {
			t.Fatalf("%s: %d dead events during rotation", name, d)
		}
		if got := gossipNames(m.c); !slices.Equal(got, all) {
			t.Fatalf("%s members %v", name, got)
		}
	}
	n.member(leader).propose(t, "after rotation")
	// The old key no longer gets in.
	stranger := testNode(t, "x")
	ml := rawMemberlist(t, "x", stranger.GossipAddr, func(mc *memberlist.Config) {
		mc.Label = "hpiagent"
		mc.Keyring, _ = memberlist.NewKeyring(nil, old)
	})
	cfgA := n.config("a")
	nodeA, _ := cfgA.node("a")
	if _, err := ml.Join([]string{nodeA.GossipAddr}); err == nil {
		t.Fatal("join with the removed key succeeded")
	}
	// A member restarted with the new key from its secret store rejoins.
	n.kill("c")
	waitFor(t, 10*time.Second, func() bool { return n.member("a").events.count(EventDead, "c") == 1 }, "c dead")
	n.start("c", func(cfg *Config) { cfg.GossipKeys = [][]byte{k2} })
	waitFor(t, 10*time.Second, func() bool { return n.member("a").events.count(EventAlive, "c") == 1 }, "c back")
}

func TestPacketLossStartsNoFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 20 s")
	}
	all := names(5)
	n := newTestNet(t, all...)
	n.startAll()
	leader := n.waitLeader(20*time.Second, all...)
	for _, name := range all {
		n.waitVerified(10*time.Second, name, slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == name })...)
	}
	// Let the start-up settle (a node's first probes race its peers'
	// start), then count only what happens under loss.
	time.Sleep(3 * time.Second)
	refutedBefore := map[string]uint64{}
	for _, name := range all {
		refutedBefore[name] = n.member(name).c.Status().Counters.DeadRefuted
	}
	n.faults.SetLoss(0.05)
	deadline := time.Now().Add(20 * time.Second)
	i := 0
	for time.Now().Before(deadline) {
		if l := n.member(leader); l.c.IsLeader() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			l.c.Propose(ctx, "log", []byte{byte(i)})
			cancel()
		}
		i++
		time.Sleep(200 * time.Millisecond)
	}
	n.faults.SetLoss(0)
	for _, name := range all {
		m := n.member(name)
		if d := m.events.count(EventDead, ""); d != 0 {
			t.Errorf("%s: %d dead events under 5%% packet loss: %+v", name, d, m.events.all())
		}
		// Not even gossip alone declared anyone dead (the mutual TLS
		// confirmation would have hidden it from the events).
		if r := m.c.Status().Counters.DeadRefuted - refutedBefore[name]; r != 0 {
			t.Errorf("%s: gossip declared %d live members dead under 5%% packet loss", name, r)
		}
		for _, ms := range m.c.Status().Members {
			if ms.State != StateAlive && ms.State != StateSuspect {
				t.Errorf("%s sees %s %s", name, ms.Name, ms.State)
			}
		}
	}
}

// TestReplayedGossipChangesNothing captures the encrypted gossip packets b
// receives while c dies, then after c is back replays them to b.
func TestReplayedGossipChangesNothing(t *testing.T) {
	all := names(3)
	n := newTestNet(t, all...)
	n.startAll()
	n.waitLeader(20*time.Second, all...)
	n.waitVerified(10*time.Second, "b", "a", "c")
	var mu sync.Mutex
	var captured [][]byte
	n.faults.Tap(func(from, to string, p []byte) {
		if to == "b" {
			mu.Lock()
			captured = append(captured, p)
			mu.Unlock()
		}
	})
	n.kill("c")
	b := n.member("b")
	waitFor(t, 10*time.Second, func() bool { return b.events.count(EventDead, "c") == 1 }, "b sees c dead")
	time.Sleep(time.Second) // capture the dead gossip being spread
	n.faults.Tap(nil)
	n.start("c")
	waitFor(t, 15*time.Second, func() bool { return b.events.count(EventAlive, "c") == 1 }, "b sees c alive again")
	n.waitVerified(10*time.Second, "b", "c")
	time.Sleep(time.Second)

	mu.Lock()
	pkts := captured
	mu.Unlock()
	if len(pkts) < 10 {
		t.Fatalf("captured only %d packets", len(pkts))
	}
	// Not plaintext: the captured bytes do not carry the node name.
	for _, p := range pkts {
		if bytes.Contains(p, []byte{0xa1, 'c'}) && bytes.Contains(p, []byte("Incarnation")) {
			t.Fatalf("gossip packet in plaintext: %q", p)
		}
	}
	bNode, _ := func() (Node, bool) { c := n.config("b"); return c.node("b") }()
	conn, err := net.Dial("udp", bNode.GossipAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for round := 0; round < 3; round++ {
		for _, p := range pkts {
			conn.Write(p)
		}
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	if d := b.events.count(EventDead, "c"); d != 1 {
		t.Fatalf("replay produced dead events: %d, %+v", d, b.events.all())
	}
	for _, ms := range b.c.Status().Members {
		if ms.State != StateAlive || !ms.Verified {
			t.Fatalf("after replay b sees %+v", ms)
		}
	}
	if got := gossipNames(b.c); !slices.Equal(got, all) {
		t.Fatalf("b members %v", got)
	}
}

// TestGossipDeathOfAnAnsweringNodeStartsNoEvent: gossip declares c dead
// (as a forged dead message from a key holder would) while c answers over
// mutual TLS: no dead event.
func TestGossipDeathOfAnAnsweringNodeStartsNoEvent(t *testing.T) {
	all := names(3)
	n := newTestNet(t, all...)
	n.startAll()
	n.waitLeader(20*time.Second, all...)
	n.waitVerified(10*time.Second, "a", "b", "c")
	n.faults.PartitionGossip([]string{"a", "b"}, []string{"c"})
	waitFor(t, 15*time.Second, func() bool {
		return !slices.Contains(gossipNames(n.member("a").c), "c") && !slices.Contains(gossipNames(n.member("b").c), "c")
	}, "gossip on a and b declared c dead")
	for range 20 { // time for the confirmation dial; c never shows as dead
		for _, name := range []string{"a", "b"} {
			for _, ms := range n.member(name).c.Status().Members {
				if ms.State == StateDead {
					t.Fatalf("%s reports %s dead", name, ms.Name)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, name := range []string{"a", "b"} {
		if r := n.member(name).c.Status().Counters.DeadRefuted; r == 0 {
			t.Errorf("%s did not count the refuted death", name)
		}
	}
	n.faults.Heal()
	time.Sleep(2 * time.Second)
	for _, name := range all {
		m := n.member(name)
		if d := m.events.count(EventDead, ""); d != 0 {
			t.Fatalf("%s: dead events %+v", name, m.events.all())
		}
		if a := m.events.count(EventAlive, ""); a != 0 {
			t.Fatalf("%s: spurious alive events %+v", name, m.events.all())
		}
	}
	n.waitVerified(10*time.Second, "a", "c")
}

func TestUnauthenticatedConnectionsAreRateLimited(t *testing.T) {
	n := newTestNet(t, names(2)...)
	n.start("a", func(cfg *Config) { cfg.AcceptRate, cfg.AcceptBurst = 5, 5 })
	n.start("b")
	cfgA := n.config("a")
	a, _ := cfgA.node("a")
	// A flood from one source address.
	flooder := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(loopback.Host())}}
	var conns []net.Conn
	for range 40 {
		c, err := flooder.Dial("tcp", a.RPCAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	waitFor(t, 5*time.Second, func() bool { return n.member("a").c.Status().Counters.RPCRateLimited >= 30 }, "connections over the limit closed")
	// A peer from another address is not locked out.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.member("b").c.Call(ctx, "a", methodHello, helloReq{}, &helloResp{}); err != nil {
		t.Fatalf("peer locked out by another source's flood: %v", err)
	}
}
