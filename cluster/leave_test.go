package cluster

import (
	"testing"
	"time"
)

// TestGracefulStopIsALeaveNotADeath: a node stopped with Close tells the
// others over mutual TLS before it leaves gossip, so even when gossip's
// own leave message is lost they report it as left, never dead (a clean
// stop must not be fenced). Restarted, it is a member again, and a later
// crash of the new incarnation is a death.
func TestGracefulStopIsALeaveNotADeath(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	n := newTestNet(t, names(3)...)
	n.startAll()
	a, b, c := n.nodes[0].Name, n.nodes[1].Name, n.nodes[2].Name
	n.waitVerified(30*time.Second, c, a, b)

	// Gossip between c and the others is cut (its leave broadcast is
	// lost; gossip will call it dead), mutual TLS calls still pass.
	n.faults.PartitionGossip([]string{a, b}, []string{c})
	stopping := n.member(c)
	n.mu.Lock()
	delete(n.live, c)
	n.mu.Unlock()
	if err := stopping.c.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	waitFor(t, 20*time.Second, func() bool {
		return n.member(a).events.count(EventLeave, c) > 0 && n.member(b).events.count(EventLeave, c) > 0
	}, "both members report the leave")
	// Longer than gossip needs to declare c dead and the check to run.
	time.Sleep(6 * time.Second)
	for _, x := range []string{a, b} {
		if d := n.member(x).events.count(EventDead, c); d != 0 {
			t.Fatalf("%s reported the cleanly stopped %s dead %d times: %+v", x, c, d, n.member(x).events.all())
		}
	}
	n.faults.Heal()

	// The restarted node (a new incarnation) is a member again, and when
	// it crashes it is dead.
	n.start(c)
	waitFor(t, 30*time.Second, func() bool {
		for _, x := range []string{a, b} {
			m := n.member(x).c
			m.mu.Lock()
			v := m.members[c] != nil && m.members[c].verified
			m.mu.Unlock()
			if !v {
				return false
			}
		}
		return true
	}, "restarted node verified again")
	n.kill(c)
	waitFor(t, 30*time.Second, func() bool {
		return n.member(a).events.count(EventDead, c) > 0 && n.member(b).events.count(EventDead, c) > 0
	}, "the crash of the new incarnation reported dead")
}
