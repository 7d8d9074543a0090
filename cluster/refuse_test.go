package cluster

import (
	"context"
	"crypto/rand"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// gossipNames returns the names node's memberlist sees alive or suspect.
func gossipNames(c *Cluster) []string {
	var out []string
	for _, m := range c.ml.Members() {
		out = append(out, m.Name)
	}
	slices.Sort(out)
	return out
}

func TestKeyHolderNotOnAllowListCannotJoin(t *testing.T) {
	all := names(3)
	n := newTestNet(t, all...)
	n.startAll()
	n.waitLeader(20*time.Second, all...)
	n.waitVerified(10*time.Second, "a", "b", "c")

	// The rogue holds the gossip key and a certificate of the same CA, and
	// lists itself; the cluster does not list it.
	rogueNode := testNode(t, "rogue")
	cfg := n.config("a")
	cfg.NodeName = "rogue"
	cfg.Nodes = append(cfg.Nodes, rogueNode)
	cfg.ServerTLS = n.ca.serverTLS(n.cert("rogue"))
	cfg.ClientTLS = n.ca.clientTLS(n.cert("rogue"))
	cfg.DataDir = t.TempDir()
	rogue, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rogue.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer rogue.Kill()

	waitFor(t, 10*time.Second, func() bool {
		return n.member("a").c.Status().Counters.GossipRefusedNotListed > 0
	}, "a counts the refused rogue")
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, name := range all {
			if got := gossipNames(n.member(name).c); !slices.Equal(got, all) {
				t.Fatalf("%s gossip members %v, want %v", name, got, all)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Raft and RPC refuse its certificate too.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rogue.Call(ctx, "a", methodHello, helloReq{From: "rogue"}, &helloResp{}); err == nil {
		t.Fatal("rogue's RPC call was served")
	}
	waitFor(t, 10*time.Second, func() bool {
		st := n.member("a").c.Status().Counters
		return st.RPCPeerRefused > 0 && st.RaftPeerRefused > 0
	}, "a refused the rogue's raft and RPC connections")
	for _, name := range all {
		for _, e := range n.member(name).events.all() {
			if e.Node == "rogue" {
				t.Fatalf("%s got an event for the rogue: %+v", name, e)
			}
		}
	}
}

func TestListedNameWithAnotherCertificateIsRefused(t *testing.T) {
	all := names(3)
	n := newTestNet(t, all...)
	n.start("a")
	n.start("c")
	n.waitLeader(20*time.Second, "a", "c")
	// The impostor runs at b's addresses under b's name, with c's
	// certificate and the gossip key.
	n.start("b", func(cfg *Config) {
		cfg.ServerTLS = n.ca.serverTLS(n.cert("c"))
		cfg.ClientTLS = n.ca.clientTLS(n.cert("c"))
	})
	waitFor(t, 10*time.Second, func() bool {
		return slices.Contains(gossipNames(n.member("a").c), "b") && n.member("a").c.Status().Counters.VerifyFailed > 0
	}, "a saw b in gossip and failed to verify it")
	time.Sleep(2 * time.Second)
	for _, name := range []string{"a", "c"} {
		st := n.member(name).c.Status()
		for _, ms := range st.Members {
			if ms.Name == "b" && ms.Verified {
				t.Fatalf("%s verified the impostor: %+v", name, ms)
			}
		}
		if k := n.member(name).events.count(EventJoin, "b"); k != 0 {
			t.Fatalf("%s announced the impostor as joined", name)
		}
	}
}

func rawMemberlist(t *testing.T, name, addr string, mod func(*memberlist.Config)) *memberlist.Memberlist {
	t.Helper()
	host, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)
	mc := memberlist.DefaultLANConfig()
	mc.Name = name
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	mc.Logger = log.New(io.Discard, "", 0)
	mc.TCPTimeout = time.Second
	mod(mc)
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Shutdown() })
	return ml
}

func TestGossipWithoutTheKeyIsRefused(t *testing.T) {
	n := newTestNet(t, names(3)...)
	n.start("a")
	n.start("c")
	n.waitVerified(10*time.Second, "a", "c")
	wrong := make([]byte, 32)
	rand.Read(wrong)
	cases := []struct {
		name string
		mod  func(*memberlist.Config)
	}{
		{"plaintext", func(mc *memberlist.Config) { mc.Label = "hpiagent" }},
		{"wrong key", func(mc *memberlist.Config) {
			mc.Label = "hpiagent"
			mc.Keyring, _ = memberlist.NewKeyring(nil, wrong)
		}},
		{"right key, other label", func(mc *memberlist.Config) {
			mc.Label = "other"
			mc.Keyring, _ = memberlist.NewKeyring(nil, n.keys[0])
		}},
	}
	cfgB := n.config("b")
	b, _ := cfgB.node("b")
	cfgA := n.config("a")
	a, _ := cfgA.node("a")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// It even claims a listed name at the listed address.
			ml := rawMemberlist(t, "b", b.GossipAddr, tc.mod)
			if _, err := ml.Join([]string{a.GossipAddr}); err == nil {
				t.Fatal("join without the right key and label succeeded")
			}
			time.Sleep(time.Second)
			for _, name := range []string{"a", "c"} {
				if got := gossipNames(n.member(name).c); !slices.Equal(got, []string{"a", "c"}) {
					t.Fatalf("%s gossip members %v", name, got)
				}
			}
			ml.Shutdown()
		})
	}
}

func TestListedNameFromAnotherAddressIsRefused(t *testing.T) {
	n := newTestNet(t, names(3)...)
	n.start("a")
	n.start("c")
	n.waitVerified(10*time.Second, "a", "c")
	// b's own certificate and the key, but not b's listed gossip address.
	moved := testNode(t, "b")
	n.start("b", func(cfg *Config) {
		for i := range cfg.Nodes {
			if cfg.Nodes[i].Name == "b" {
				cfg.Nodes[i] = moved
			}
		}
	})
	waitFor(t, 10*time.Second, func() bool {
		return n.member("a").c.Status().Counters.GossipRefusedAddress > 0
	}, "a counts b's gossip from the wrong address")
	time.Sleep(2 * time.Second)
	for _, name := range []string{"a", "c"} {
		if got := gossipNames(n.member(name).c); !slices.Equal(got, []string{"a", "c"}) {
			t.Fatalf("%s gossip members %v", name, got)
		}
	}
}
