package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"hpiagent/api"
	"hpiagent/api/adapt"
	"hpiagent/cluster"
	"hpiagent/fencing"
)

// apiCluster returns the node's cluster as the API's ClusterStatus, nil
// (an untyped nil interface: the route answers not_configured) without
// a cluster.
func (n *node) apiCluster() api.ClusterStatus {
	if n == nil || n.cl == nil {
		return nil
	}
	return adapt.Cluster(n.cl)
}

// apiFencing returns the node's fencing coordinator as the API's
// Fencing, nil without fencing.
func (n *node) apiFencing() api.Fencing {
	if n == nil || n.fc == nil {
		return nil
	}
	return fencingAPI{cl: n.cl, fc: n.fc}
}

// fencingAPI adapts *fencing.Coordinator to api.Fencing.
type fencingAPI struct {
	cl *cluster.Cluster
	fc *fencing.Coordinator
}

// Nodes implements api.Fencing.
func (f fencingAPI) Nodes() []string { return f.fc.Nodes() }

// View implements api.Fencing.
func (f fencingAPI) View(ctx context.Context, node string) (api.FenceNodeView, error) {
	v, err := f.fc.View(ctx, node)
	if err != nil {
		return api.FenceNodeView{}, f.apiErr(err)
	}
	return adapt.FenceNodeView(v), nil
}

// leaderWait is how long a fence request waits for a leader that can
// take it (an election, or a new leader's Barrier, takes a second or
// two) before the API answers not_leader.
const leaderWait = 5 * time.Second

// whileNoLeader calls fn until it does not answer *api.NotLeaderError,
// for at most leaderWait or until ctx ends.
func whileNoLeader(ctx context.Context, fn func() (api.FenceOutcome, error)) (api.FenceOutcome, error) {
	deadline := time.Now().Add(leaderWait)
	for {
		out, err := fn()
		var nl *api.NotLeaderError
		if !errors.As(err, &nl) || time.Now().After(deadline) {
			return out, err
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return out, err
		case <-t.C:
		}
	}
}

// Fence implements api.Fencing.
func (f fencingAPI) Fence(ctx context.Context, node string, action api.FenceAction, requester, reason string) (api.FenceOutcome, error) {
	return whileNoLeader(ctx, func() (api.FenceOutcome, error) { return f.fence(ctx, node, action, requester, reason) })
}

func (f fencingAPI) fence(ctx context.Context, node string, action api.FenceAction, requester, reason string) (api.FenceOutcome, error) {
	var a fencing.Action
	switch action {
	case api.FenceOff:
		a = fencing.ActionOff
	case api.FenceReboot:
		a = fencing.ActionReboot
	case api.FenceOn:
		return f.unfence(ctx, node, requester, reason)
	default:
		return api.FenceOutcome{}, fmt.Errorf("fence action %q: %w", action, api.ErrInvalidState)
	}
	o, err := f.fc.Request(ctx, node, a, fencing.SourceOperator, reason, requester)
	if errors.Is(err, fencing.ErrNotLeader) {
		return f.forward(ctx, fenceForward{Node: node, Action: string(action), Requester: requester, Reason: reason})
	}
	if err != nil {
		return api.FenceOutcome{}, f.apiErr(err)
	}
	return outcomeView(node, o), nil
}

// Unfence implements api.Fencing.
func (f fencingAPI) Unfence(ctx context.Context, node, requester, reason string) (api.FenceOutcome, error) {
	return whileNoLeader(ctx, func() (api.FenceOutcome, error) { return f.unfence(ctx, node, requester, reason) })
}

func (f fencingAPI) unfence(ctx context.Context, node, requester, reason string) (api.FenceOutcome, error) {
	o, err := f.fc.Unfence(ctx, node, requester, reason)
	if errors.Is(err, fencing.ErrNotLeader) {
		return f.forward(ctx, fenceForward{Node: node, Action: string(api.FenceOn), Requester: requester, Reason: reason})
	}
	if err != nil {
		return api.FenceOutcome{}, f.apiErr(err)
	}
	return outcomeView(node, o), nil
}

// fenceForwardMethod is the peer RPC method by which a member hands an
// operator's fence request, authorised by its own API, to the leader: a
// fence agent (Pacemaker's fence_hpiagent) talks to the agent on its own
// blade, which need not be the leader.
const fenceForwardMethod = "fencing.forward"

// fenceForward is the request of fenceForwardMethod.
type fenceForward struct {
	Node      string `json:"node"`
	Action    string `json:"action"`
	Requester string `json:"requester"`
	Reason    string `json:"reason,omitempty"`
}

// forward sends req to the current leader.
func (f fencingAPI) forward(ctx context.Context, req fenceForward) (api.FenceOutcome, error) {
	st := f.cl.Status()
	if st.Leader == "" || st.Leader == st.Node {
		return api.FenceOutcome{}, &api.NotLeaderError{Leader: st.Leader}
	}
	var out api.FenceOutcome
	if err := f.cl.Call(ctx, st.Leader, fenceForwardMethod, req, &out); err != nil {
		var re *cluster.RemoteError
		if errors.As(err, &re) && re.Message == fencing.ErrNotLeader.Error() {
			return api.FenceOutcome{}, &api.NotLeaderError{Leader: st.Leader}
		}
		return api.FenceOutcome{}, fmt.Errorf("forwarding the fence request for %s to the leader %s: %w", req.Node, st.Leader, err)
	}
	return out, nil
}

// handleFenceForward serves fenceForwardMethod on the leader. The caller
// is a cluster member proven by its certificate; the operator's identity
// was authenticated and authorised by that member's API and is recorded
// as "<requester> via <member>".
func handleFenceForward(fc *fencing.Coordinator) cluster.Handler {
	return func(ctx context.Context, from string, raw json.RawMessage) (any, error) {
		var req fenceForward
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, fmt.Errorf("decoding a forwarded fence request: %w", err)
		}
		requester := req.Requester + " via " + from
		var o fencing.Outcome
		var err error
		switch api.FenceAction(req.Action) {
		case api.FenceOff:
			o, err = fc.Request(ctx, req.Node, fencing.ActionOff, fencing.SourceOperator, req.Reason, requester)
		case api.FenceReboot:
			o, err = fc.Request(ctx, req.Node, fencing.ActionReboot, fencing.SourceOperator, req.Reason, requester)
		case api.FenceOn:
			o, err = fc.Unfence(ctx, req.Node, requester, req.Reason)
		default:
			return nil, fmt.Errorf("forwarded fence action %q is not off, reboot or on", req.Action)
		}
		if errors.Is(err, fencing.ErrNotLeader) {
			return nil, fencing.ErrNotLeader
		}
		if err != nil {
			return nil, err
		}
		return outcomeView(req.Node, o), nil
	}
}

func outcomeView(node string, o fencing.Outcome) api.FenceOutcome {
	return api.FenceOutcome{Node: node, Op: o.ID, Phase: string(o.Phase), Accepted: o.Accepted, Note: o.Note}
}

// apiErr maps the coordinator's errors to the API's: not the leader
// (with the leader's name, so the client retries there), not a target,
// refused.
func (f fencingAPI) apiErr(err error) error {
	switch {
	case errors.Is(err, fencing.ErrNotLeader), errors.Is(err, cluster.ErrNotLeader):
		return &api.NotLeaderError{Leader: f.cl.Status().Leader}
	case errors.Is(err, fencing.ErrUnknownNode):
		return fmt.Errorf("%w: %w", api.ErrNotFound, err)
	case errors.Is(err, fencing.ErrSelf):
		return fmt.Errorf("%w: %w", api.ErrInvalidState, err)
	}
	return err
}
