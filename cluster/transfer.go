package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// ErrNoTransferTarget is returned by TransferLeadership when no other voter
// is alive and verified, so nobody could take the leadership over.
var ErrNoTransferTarget = errors.New("no other voter alive and verified to take the leadership over")

// TransferLeadership hands this node's raft leadership to another voter
// and returns that voter's name once this node has stepped down. It is for
// a leader that must not act itself: the leader whose own blade has to be
// fenced. Candidates are the other voters that membership holds alive and
// verified, tried one after the other (sorted by name) with raft's
// LeadershipTransferToServer: raft stops taking new entries, brings the
// candidate up to date and tells it to start an election at once. Each try
// ends within about ElectionTimeout. Errors: *NotLeaderError when this node
// does not lead, ErrNoTransferTarget when there is no candidate, otherwise
// the reasons every candidate failed. If ctx ends first, a transfer in
// progress may still complete.
func (c *Cluster) TransferLeadership(ctx context.Context) (string, error) {
	if c.raft == nil {
		return "", ErrClosed
	}
	r := c.raft.r
	if r.State() != raft.Leader {
		return "", &NotLeaderError{Leader: c.leaderName()}
	}
	raftAddr := map[string]string{}
	for _, n := range c.cfg.Nodes {
		raftAddr[n.Name] = n.RaftAddr
	}
	var candidates []string
	for _, m := range c.Status().Members { // sorted by name
		if m.Self || !m.Voter || !m.Verified || m.State != StateAlive || raftAddr[m.Name] == "" {
			continue
		}
		candidates = append(candidates, m.Name)
	}
	if len(candidates) == 0 {
		c.log.Warn("cluster: cannot hand the leadership over", "err", ErrNoTransferTarget)
		return "", ErrNoTransferTarget
	}
	var errs []error
	for _, name := range candidates {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if r.State() != raft.Leader {
			// Lost while trying (an election elsewhere): no longer ours
			// to hand over.
			return "", &NotLeaderError{Leader: c.leaderName()}
		}
		f := r.LeadershipTransferToServer(raft.ServerID(name), raft.ServerAddress(raftAddr[name]))
		done := make(chan error, 1)
		go func() { done <- f.Error() }()
		var err error
		select {
		case err = <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("handing the leadership to %s: %w (the transfer may still complete)", name, ctx.Err()))
			return "", errors.Join(errs...)
		}
		if err == nil {
			c.log.Info("cluster: leadership handed over", "audit", true, "to", name)
			return name, nil
		}
		c.log.Warn("cluster: handing the leadership over failed", "to", name, "err", err)
		errs = append(errs, fmt.Errorf("handing the leadership to %s: %w", name, err))
	}
	return "", fmt.Errorf("handing the leadership over: %w", errors.Join(errs...))
}
