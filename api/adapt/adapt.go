// Package adapt connects the API's consumer-side interfaces (api.Deps) to
// the daemon's components: the cluster (*cluster.Cluster), the fencing
// coordinator (*fencing.Coordinator), the hot-swap workflows
// (*hotswap.Coordinator and *hotswap.Machine) and the secure-erase
// certificate store (*secureerase.Store). It converts their types to the
// API's views and their errors to the ones the API classifies
// (api.NotLeaderError, api.ErrNotFound, api.ErrInvalidState). It holds no
// state of its own.
//
// It is a package of its own so that package api does not depend on the
// cluster's consensus and gossip libraries.
package adapt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"hpiagent/api"
	"hpiagent/api/audit"
	"hpiagent/cluster"
	"hpiagent/fencing"
	"hpiagent/hotswap"
	"hpiagent/hpi"
	secureerase "hpiagent/secure-erase"
)

// ClusterSource is what the cluster adapter reads; *cluster.Cluster
// implements it.
type ClusterSource interface {
	Status() cluster.Status
}

// Cluster adapts c to api.ClusterStatus.
func Cluster(c ClusterSource) api.ClusterStatus { return clusterStatus{c} }

type clusterStatus struct{ c ClusterSource }

func (s clusterStatus) ClusterStatus() api.ClusterView { return ClusterView(s.c.Status()) }

// ClusterView converts a cluster status to the API's view.
func ClusterView(st cluster.Status) api.ClusterView {
	v := api.ClusterView{
		Node: st.Node, Leader: st.Leader, State: st.RaftState, Term: st.Term, LastIndex: st.LastIndex,
		CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, Quorum: st.HasQuorum,
		Members: make([]api.ClusterMemberView, 0, len(st.Members)),
	}
	for _, m := range st.Members {
		v.Members = append(v.Members, api.ClusterMemberView{Name: m.Name, Address: m.Addr, State: string(m.State),
			Verified: m.Verified, Voter: m.Voter, Self: m.Self})
	}
	return v
}

// FenceCoordinator is what the fencing adapter uses; *fencing.Coordinator
// implements it.
type FenceCoordinator interface {
	Nodes() []string
	View(ctx context.Context, node string) (fencing.NodeView, error)
	Request(ctx context.Context, node string, action fencing.Action, source fencing.Source, reason, requester string) (fencing.Outcome, error)
	Unfence(ctx context.Context, node, requester, reason string) (fencing.Outcome, error)
}

// Leader returns the current cluster leader's name ("" when none is
// known) and its API endpoint (https://host:port, "" when unknown) for
// "not_leader" answers. The daemon builds it from cluster.Status().Leader
// and its configuration of the members' API endpoints.
type Leader func() (name, apiEndpoint string)

func (l Leader) notLeader() *api.NotLeaderError {
	if l == nil {
		return &api.NotLeaderError{}
	}
	n, u := l()
	return &api.NotLeaderError{Leader: n, LeaderAPI: u}
}

// Fencing adapts co to api.Fencing. leader names the leader in
// not-leader answers; nil reports none. Operator requests are made with
// fencing.SourceOperator.
func Fencing(co FenceCoordinator, leader Leader) api.Fencing {
	return fenceAdapter{co: co, leader: leader}
}

type fenceAdapter struct {
	co     FenceCoordinator
	leader Leader
}

func (f fenceAdapter) Nodes() []string { return f.co.Nodes() }

func (f fenceAdapter) View(ctx context.Context, node string) (api.FenceNodeView, error) {
	if !known(f.co.Nodes(), node) {
		return api.FenceNodeView{}, fmt.Errorf("fencing view of %s: %w: %w", node, api.ErrNotFound, fencing.ErrUnknownNode)
	}
	v, err := f.co.View(ctx, node)
	if err != nil {
		return api.FenceNodeView{}, f.err(err)
	}
	return FenceNodeView(v), nil
}

func (f fenceAdapter) Fence(ctx context.Context, node string, a api.FenceAction, requester, reason string) (api.FenceOutcome, error) {
	var fa fencing.Action
	switch a {
	case api.FenceOff:
		fa = fencing.ActionOff
	case api.FenceReboot:
		fa = fencing.ActionReboot
	default:
		return api.FenceOutcome{}, fmt.Errorf("fence action %q: %w", a, api.ErrInvalidState)
	}
	o, err := f.co.Request(ctx, node, fa, fencing.SourceOperator, reason, requester)
	if err != nil {
		return api.FenceOutcome{}, f.err(err)
	}
	return fenceOutcome(o), nil
}

func (f fenceAdapter) Unfence(ctx context.Context, node, requester, reason string) (api.FenceOutcome, error) {
	o, err := f.co.Unfence(ctx, node, requester, reason)
	if err != nil {
		return api.FenceOutcome{}, f.err(err)
	}
	return fenceOutcome(o), nil
}

// err maps the coordinator's errors to the API's.
func (f fenceAdapter) err(err error) error {
	switch {
	case errors.Is(err, fencing.ErrNotLeader):
		return f.leader.notLeader()
	case errors.Is(err, fencing.ErrUnknownNode):
		return fmt.Errorf("%w: %w", api.ErrNotFound, err)
	case errors.Is(err, fencing.ErrSelf):
		return fmt.Errorf("%w: %w", api.ErrInvalidState, err)
	}
	return err
}

func known(nodes []string, n string) bool {
	for _, x := range nodes {
		if x == n {
			return true
		}
	}
	return false
}

// FenceNodeView converts a fencing node view to the API's.
func FenceNodeView(v fencing.NodeView) api.FenceNodeView {
	out := api.FenceNodeView{Node: v.Node, Phase: string(v.Phase), Power: v.Power}
	if v.Fence != nil {
		out.Fence = &api.FenceOpView{ID: v.Fence.ID, Action: string(v.Fence.Action), Source: string(v.Fence.Source),
			Done: v.Fence.Done, Failed: v.Fence.Failed, Error: v.Fence.Error}
	}
	return out
}

func fenceOutcome(o fencing.Outcome) api.FenceOutcome {
	return api.FenceOutcome{Node: o.Target, Op: o.ID, Phase: string(o.Phase), Accepted: o.Accepted, Note: o.Note}
}

// WorkflowCoordinator is what the workflow adapter drives;
// *hotswap.Coordinator implements it.
type WorkflowCoordinator interface {
	Start(ctx context.Context, kind hotswap.Kind, fru hotswap.FRU, actor, reason string) (string, error)
	Override(ctx context.Context, workflow, actor, reason string) error
	Abort(ctx context.Context, workflow, actor, reason string) error
	Retry(ctx context.Context, workflow, actor string) error
}

// WorkflowState is the replicated workflow state the adapter reads;
// *hotswap.Machine implements it.
type WorkflowState interface {
	Workflows() []hotswap.Workflow
	Workflow(id string) (hotswap.Workflow, bool)
}

// WorkflowsConfig configures the workflow adapter.
type WorkflowsConfig struct {
	// Coordinator runs operator requests. Required.
	Coordinator WorkflowCoordinator
	// State is the replicated state the routes read. Required.
	State WorkflowState
	// FRU resolves a resource of the HPI model to the FRU a workflow is
	// about (shelf manager, IPMB address, FRU device ID): the daemon's
	// discovery knows it. ok false answers 409 "capability". Required.
	FRU func(hpi.RPTEntry) (fru hotswap.FRU, ok bool)
	// Leader names the leader in not-leader answers; nil reports none.
	Leader Leader
}

// Workflows adapts a hot-swap coordinator and its machine to
// api.Workflows.
func Workflows(cfg WorkflowsConfig) (api.Workflows, error) {
	if cfg.Coordinator == nil || cfg.State == nil || cfg.FRU == nil {
		return nil, errors.New("workflow adapter: Coordinator, State and FRU are required")
	}
	return wfAdapter{cfg}, nil
}

type wfAdapter struct{ cfg WorkflowsConfig }

func (w wfAdapter) List() []api.WorkflowView {
	wfs := w.cfg.State.Workflows()
	out := make([]api.WorkflowView, len(wfs))
	for i, x := range wfs {
		out[i] = WorkflowView(x)
	}
	return out
}

func (w wfAdapter) Get(id string) (api.WorkflowView, bool) {
	x, ok := w.cfg.State.Workflow(id)
	if !ok {
		return api.WorkflowView{}, false
	}
	return WorkflowView(x), true
}

func (w wfAdapter) Extract(ctx context.Context, res hpi.RPTEntry, actor, reason string) (string, error) {
	fru, ok := w.cfg.FRU(res)
	if !ok {
		return "", fmt.Errorf("forced extraction of resource %d %s: %w: no FRU known for it", res.ResourceID, res.EntityPath, hpi.ErrCapability)
	}
	id, err := w.cfg.Coordinator.Start(ctx, hotswap.KindForced, fru, actor, reason)
	if err != nil {
		if id != "" && !errors.Is(err, hotswap.ErrNotLeaderHere) {
			return id, fmt.Errorf("%w: %w", api.ErrInvalidState, err)
		}
		return "", w.err(err)
	}
	return id, nil
}

func (w wfAdapter) Override(ctx context.Context, id, actor, reason string) error {
	return w.op(id, w.cfg.Coordinator.Override(ctx, id, actor, reason))
}

func (w wfAdapter) Abort(ctx context.Context, id, actor, reason string) error {
	return w.op(id, w.cfg.Coordinator.Abort(ctx, id, actor, reason))
}

func (w wfAdapter) Retry(ctx context.Context, id, actor string) error {
	if _, ok := w.cfg.State.Workflow(id); !ok {
		return fmt.Errorf("retrying workflow %s: %w", id, api.ErrNotFound)
	}
	return w.op(id, w.cfg.Coordinator.Retry(ctx, id, actor))
}

// op maps an operator request's error: a refusal by the state machine (the
// entry was not accepted) is a 409.
func (w wfAdapter) op(id string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, hotswap.ErrNotLeaderHere) {
		return w.err(err)
	}
	if _, ok := w.cfg.State.Workflow(id); !ok {
		return fmt.Errorf("workflow %s: %w: %w", id, api.ErrNotFound, err)
	}
	return fmt.Errorf("%w: %w", api.ErrInvalidState, err)
}

func (w wfAdapter) err(err error) error {
	if errors.Is(err, hotswap.ErrNotLeaderHere) {
		return w.cfg.Leader.notLeader()
	}
	return err
}

// WorkflowView converts a hot-swap workflow to the API's view.
func WorkflowView(x hotswap.Workflow) api.WorkflowView {
	v := api.WorkflowView{
		ID: x.ID, Kind: string(x.Kind), Phase: string(x.Phase), Active: x.Active(), Attempt: x.Attempt, Actor: x.Actor,
		FRU:      api.FRUView{Entity: x.FRU.Entity, Shelf: x.FRU.Shelf, IPMB: x.FRU.IPMB, ID: x.FRU.ID},
		Required: append([]string{}, x.Required...), Applied: x.Applied, Refused: x.Refused, Revoked: x.Revoked,
		Certificate: x.Certificate, WipeError: x.WipeError, Alarm: x.Alarm, Outcome: x.Outcome, Reason: x.Reason,
		StartIndex: x.StartIndex, EndIndex: x.EndIndex, LastIndex: x.LastIndex,
	}
	if x.Override != nil {
		v.Override = &api.WorkflowOverrideView{Actor: x.Override.Actor, Reason: x.Override.Reason, Index: x.Override.Index}
	}
	return v
}

// CertificateStore is what the certificate adapter reads;
// *secureerase.Store implements it.
type CertificateStore interface {
	List() ([]string, error)
	Load(id string) (*secureerase.Certificate, error)
}

// EraseCertificates adapts a certificate store to api.EraseCertificates.
func EraseCertificates(s CertificateStore) api.EraseCertificates { return certAdapter{s} }

type certAdapter struct{ s CertificateStore }

func (c certAdapter) CertificateIDs() ([]string, error) { return c.s.List() }

// Certificate returns the stored certificate encoded again as JSON. The
// signature covers the certificate's fields (secureerase.Verify), not the
// file's bytes, so it verifies the same.
func (c certAdapter) Certificate(id string) ([]byte, error) {
	cert, err := c.s.Load(id)
	if errors.Is(err, secureerase.ErrNoCertificate) {
		return nil, fmt.Errorf("%w: %w", api.ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(cert, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding certificate %s: %w", id, err)
	}
	return b, nil
}

// The daemon's components satisfy the adapters' interfaces.
var (
	_ ClusterSource       = (*cluster.Cluster)(nil)
	_ FenceCoordinator    = (*fencing.Coordinator)(nil)
	_ WorkflowCoordinator = (*hotswap.Coordinator)(nil)
	_ WorkflowState       = (*hotswap.Machine)(nil)
	_ CertificateStore    = (*secureerase.Store)(nil)
)

// AuditAnchors adapts the cluster's audit anchor book to
// api.AuditAnchors.
func AuditAnchors(b *audit.AnchorBook) api.AuditAnchors { return anchorAdapter{b} }

type anchorAdapter struct{ b *audit.AnchorBook }

func anchorView(a audit.NodeAnchor) api.AuditAnchor {
	return api.AuditAnchor{Node: a.Node, Seq: a.Seq, Hash: a.Hash, Time: a.Time, Index: a.Index}
}

func anchorViews(as []audit.NodeAnchor) []api.AuditAnchor {
	out := make([]api.AuditAnchor, len(as))
	for i, a := range as {
		out[i] = anchorView(a)
	}
	return out
}

func (a anchorAdapter) LatestAnchors() []api.AuditAnchor { return anchorViews(a.b.Latest()) }

func (a anchorAdapter) NodeAnchors(node string) []api.AuditAnchor {
	return anchorViews(a.b.Anchors(node))
}

func (a anchorAdapter) AnchorConflicts() []api.AuditAnchorConflict {
	cs := a.b.Conflicts()
	out := make([]api.AuditAnchorConflict, len(cs))
	for i, c := range cs {
		out[i] = api.AuditAnchorConflict{Node: c.Later.Node, Reason: c.Reason, Earlier: anchorView(c.Earlier), Later: anchorView(c.Later)}
	}
	return out
}
