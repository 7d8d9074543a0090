package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestClusterFormsAndReplicates(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			all := names(size)
			n := newTestNet(t, all...)
			n.startAll()
			leader := n.waitLeader(20*time.Second, all...)
			for _, name := range all {
				others := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == name })
				n.waitVerified(10*time.Second, name, others...)
			}
			// Followers refuse to propose and name the leader.
			for _, name := range all {
				if name == leader {
					continue
				}
				_, _, err := n.member(name).c.Propose(context.Background(), "log", []byte("x"))
				var nl *NotLeaderError
				if !errors.Is(err, ErrNotLeader) || !errors.As(err, &nl) || nl.Leader != leader {
					t.Fatalf("Propose on follower %s: err %v, want NotLeaderError naming %s", name, err, leader)
				}
			}
			var want []string
			var last uint64
			for i := range 20 {
				p := fmt.Sprintf("entry-%d", i)
				idx := n.member(leader).propose(t, p)
				if idx <= last {
					t.Fatalf("index %d after %d", idx, last)
				}
				last = idx
				want = append(want, p)
			}
			for _, name := range all {
				m := n.member(name)
				waitFor(t, 10*time.Second, func() bool { return slices.Equal(m.fsm.payloads(), want) },
					fmt.Sprintf("%s applied all entries in order", name))
			}
			// Every node saw a join of every other node, and nothing else.
			for _, name := range all {
				m := n.member(name)
				for _, o := range all {
					if o == name {
						continue
					}
					waitFor(t, 5*time.Second, func() bool { return m.events.count(EventJoin, o) == 1 }, name+" got join of "+o)
				}
				if d := m.events.count(EventDead, ""); d != 0 {
					t.Errorf("%s: %d dead events in a healthy cluster", name, d)
				}
			}
			st := n.member(leader).c.Status()
			if !st.HasQuorum || st.Leader != leader || st.RaftState != "Leader" || st.AppliedIndex < last {
				t.Errorf("leader status %+v", st)
			}
		})
	}
}

func TestLeaderFailoverKeepsEntries(t *testing.T) {
	all := names(3)
	n := newTestNet(t, all...)
	n.startAll()
	leader := n.waitLeader(20*time.Second, all...)
	var want []string
	for i := range 5 {
		p := fmt.Sprintf("before-%d", i)
		n.member(leader).propose(t, p)
		want = append(want, p)
	}
	for _, name := range all {
		m := n.member(name)
		waitFor(t, 10*time.Second, func() bool { return slices.Equal(m.fsm.payloads(), want) }, name+" applied")
	}
	rest := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == leader })
	leaderCh := map[string]<-chan bool{}
	for _, name := range rest {
		ch := n.member(name).c.LeaderCh()
		if v := <-ch; v {
			t.Fatalf("%s: LeaderCh says leader while %s leads", name, leader)
		}
		leaderCh[name] = ch
	}
	n.kill(leader)
	newLeader := n.waitLeader(15*time.Second, rest...)
	if newLeader == leader {
		t.Fatalf("leader unchanged")
	}
	select {
	case v := <-leaderCh[newLeader]:
		if !v {
			t.Fatalf("LeaderCh of %s sent false", newLeader)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("LeaderCh of %s sent nothing", newLeader)
	}
	nl := n.member(newLeader)
	if err := nl.c.Barrier(context.Background()); err != nil {
		t.Fatalf("Barrier on new leader: %v", err)
	}
	if got := nl.fsm.payloads(); !slices.Equal(got, want) {
		t.Fatalf("new leader lost entries: %v", got)
	}
	for i := range 5 {
		p := fmt.Sprintf("after-%d", i)
		nl.propose(t, p)
		want = append(want, p)
	}
	// The others see the old leader dead (confirmed over mutual TLS).
	for _, name := range rest {
		m := n.member(name)
		waitFor(t, 10*time.Second, func() bool { return m.events.count(EventDead, leader) == 1 }, name+" got dead event of "+leader)
		for _, ms := range m.c.Status().Members {
			if ms.Name == leader && ms.State != StateDead {
				t.Errorf("%s reports the killed %s as %s", name, leader, ms.State)
			}
		}
	}
	// The old leader restarts from its data dir: it replays its log from
	// disk and catches up, and the others see it alive again.
	old := n.start(leader)
	waitFor(t, 15*time.Second, func() bool { return slices.Equal(old.fsm.payloads(), want) }, "restarted node caught up")
	for _, name := range rest {
		m := n.member(name)
		waitFor(t, 10*time.Second, func() bool { return m.events.count(EventAlive, leader) == 1 }, name+" got alive event of "+leader)
	}
}

func TestPartitionOnlyMajorityLeads(t *testing.T) {
	all := names(5)
	n := newTestNet(t, all...)
	n.startAll()
	leader := n.waitLeader(20*time.Second, all...)
	// The old leader is on the minority side.
	var minority, majority []string
	minority = append(minority, leader)
	for _, name := range all {
		if name == leader {
			continue
		}
		if len(minority) < 2 {
			minority = append(minority, name)
		} else {
			majority = append(majority, name)
		}
	}
	n.member(leader).propose(t, "before")
	n.faults.Partition(minority, majority)
	newLeader := n.waitLeader(15*time.Second, majority...)
	waitFor(t, 10*time.Second, func() bool {
		for _, name := range minority {
			if n.member(name).c.HasQuorum() || n.member(name).c.IsLeader() {
				return false
			}
		}
		return true
	}, "minority without leader or quorum")
	// Stays so.
	for range 10 {
		for _, name := range minority {
			if n.member(name).c.HasQuorum() {
				t.Fatalf("%s on the minority side claims quorum", name)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, _, err := n.member(leader).c.Propose(context.Background(), "log", []byte("minority")); err == nil {
		t.Fatalf("old leader on the minority side committed an entry")
	}
	n.member(newLeader).propose(t, "majority")
	n.faults.Heal()
	final := n.waitLeader(20*time.Second, all...)
	n.member(final).propose(t, "healed")
	for _, name := range all {
		m := n.member(name)
		waitFor(t, 15*time.Second, func() bool {
			return slices.Equal(m.fsm.payloads(), []string{"before", "majority", "healed"})
		}, name+" converged")
	}
}

func TestPeerRPC(t *testing.T) {
	n := newTestNet(t, names(2)...)
	n.startAll()
	a, b := n.member("a").c, n.member("b").c
	type echo struct {
		From string `json:"from"`
		Msg  string `json:"msg"`
	}
	if err := a.Handle("echo", func(ctx context.Context, from string, req json.RawMessage) (any, error) {
		var e echo
		if err := json.Unmarshal(req, &e); err != nil {
			return nil, err
		}
		if e.Msg == "fail" {
			return nil, errors.New("refused by handler")
		}
		return echo{From: from, Msg: e.Msg}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Handle("cluster.hello", nil); err == nil {
		t.Fatal("reserved method registered")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cases := []struct {
		name, node, method, msg string
		wantErr                 string
	}{
		{"ok", "a", "echo", "hi", ""},
		{"handler error", "a", "echo", "fail", "refused by handler"},
		{"unknown method", "a", "nope", "x", "unknown method"},
		{"node not listed", "zz", "echo", "x", "not a listed node"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got echo
			err := b.Call(ctx, tc.node, tc.method, echo{Msg: tc.msg}, &got)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				// The handler sees the caller's name from its certificate.
				if got.From != "b" || got.Msg != tc.msg {
					t.Fatalf("got %+v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}
