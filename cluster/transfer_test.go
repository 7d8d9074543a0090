package cluster

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestTransferLeadership: the leader of three hands the leadership to
// another voter that membership holds alive and verified; the others
// agree on the new leader, which holds quorum and takes entries; a
// follower cannot hand over.
func TestTransferLeadership(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	t.Parallel()
	all := names(3)
	n := newTestNet(t, all...)
	n.startAll()
	old := n.waitLeader(20*time.Second, all...)
	rest := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == old })
	n.waitVerified(20*time.Second, old, rest...)
	n.member(old).propose(t, "before")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := n.member(rest[0]).c.TransferLeadership(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a follower's TransferLeadership: %v, want ErrNotLeader", err)
	}
	to, err := n.member(old).c.TransferLeadership(ctx)
	if err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	if to == old || !slices.Contains(rest, to) {
		t.Fatalf("handed over to %q, want one of %v", to, rest)
	}
	if n.member(old).c.IsLeader() {
		t.Fatalf("%s still leads after handing over", old)
	}
	newLeader := n.waitLeader(10*time.Second, all...)
	if newLeader == old {
		t.Fatalf("leadership did not move from %s", old)
	}
	n.member(newLeader).propose(t, "after")
	for _, name := range all {
		m := n.member(name)
		waitFor(t, 10*time.Second, func() bool { return slices.Equal(m.fsm.payloads(), []string{"before", "after"}) }, name+" applied both entries")
	}
}

// TestTransferLeadershipWithoutCandidate: a lone voter (a one-node
// cluster) has nobody to hand over to: ErrNoTransferTarget, and it keeps
// leading.
func TestTransferLeadershipWithoutCandidate(t *testing.T) {
	t.Parallel()
	n := newTestNet(t, "solo")
	m := n.start("solo")
	n.waitLeader(20*time.Second, "solo")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	to, err := m.c.TransferLeadership(ctx)
	if !errors.Is(err, ErrNoTransferTarget) || to != "" {
		t.Fatalf("TransferLeadership alone: %q %v, want ErrNoTransferTarget", to, err)
	}
	if !m.c.IsLeader() {
		t.Fatal("the lone voter stopped leading")
	}
}
