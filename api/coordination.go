package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"hpiagent/hpi"
)

// The cluster, fencing, hot-swap workflow and erase certificate routes.

// ClusterView is the answer of GET /v1/cluster: this node's view of the
// cluster membership and of the replicated log.
type ClusterView struct {
	// Node is this node's cluster name.
	Node string `json:"node"`
	// Leader is the current leader's name; empty when none is known.
	Leader string `json:"leader"`
	// State is this node's consensus role: leader, follower, candidate or
	// shutdown.
	State string `json:"state"`
	// Term is the current election term.
	Term uint64 `json:"term"`
	// LastIndex, CommitIndex and AppliedIndex are the log positions.
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// Quorum is whether the leader (this node or another) holds a quorum
	// as this node sees it.
	Quorum bool `json:"quorum"`
	// Members lists every member this node knows.
	Members []ClusterMemberView `json:"members"`
}

// ClusterMemberView is one member of the cluster.
type ClusterMemberView struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// State is alive, suspect or dead (dead only once confirmed), left
	// after a graceful leave, unknown for a listed member never seen.
	State string `json:"state"`
	// Verified: the member proved its name by certificate.
	Verified bool `json:"verified"`
	// Voter: the member votes in elections.
	Voter bool `json:"voter"`
	// Self marks this node.
	Self bool `json:"self,omitempty"`
}

// FenceNodeView is the answer of GET /v1/fence/{node} and an element of
// GET /v1/fence: the replicated fencing phase of a node, its power state
// read back now and the last fence operation. cmd/fence_hpiagent reads it.
type FenceNodeView struct {
	Node string `json:"node"`
	// Phase is idle, fencing, fenced, unfencing or failed.
	Phase string `json:"phase"`
	// Power is on, off or unknown.
	Power string `json:"power"`
	// Fence is the last fence operation; absent when there was none.
	Fence *FenceOpView `json:"fence,omitempty"`
}

// FenceOpView is a fence operation.
type FenceOpView struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	Source string `json:"source"`
	// Done: confirmed off by read-back. Failed: every level failed.
	Done   bool   `json:"done"`
	Failed bool   `json:"failed"`
	Error  string `json:"error,omitempty"`
}

// FenceListView is the answer of GET /v1/fence.
type FenceListView struct {
	Nodes []FenceNodeView `json:"nodes"`
}

// FenceRequest is the body of POST /v1/fence/{node}.
type FenceRequest struct {
	// Action is off, on (unfence) or reboot.
	Action string `json:"action"`
	// Reason is recorded with the request; optional.
	Reason string `json:"reason,omitempty"`
}

// FenceOutcome is the answer (202) of POST /v1/fence/{node}: the
// operation the request was recorded as. A fence agent follows Op with GET
// /v1/fence/{node} until fence.done (or phase idle for "on").
type FenceOutcome struct {
	Node string `json:"node"`
	// Op is the operation's ID; for a request folded into a fence already
	// in flight, that fence's ID.
	Op string `json:"op"`
	// Phase is the node's phase once the request was recorded.
	Phase string `json:"phase"`
	// Accepted is false when the request changed nothing (deduplicated,
	// already fenced); Note says why.
	Accepted bool   `json:"accepted"`
	Note     string `json:"note,omitempty"`
}

// WorkflowView is one hot-swap workflow (GET /v1/workflows,
// /v1/workflows/{id}).
type WorkflowView struct {
	ID string `json:"id"`
	// Kind is insertion, extraction, surprise or forced.
	Kind string  `json:"kind"`
	FRU  FRUView `json:"fru"`
	// Phase is where the workflow stands; "done" when it ended.
	Phase   string `json:"phase"`
	Active  bool   `json:"active"`
	Attempt int    `json:"attempt"`
	// Actor started the workflow (an operator identity, or empty for the
	// shelf's own events).
	Actor string `json:"actor,omitempty"`
	// Required are the members whose hooks must apply (insertion) or
	// revoke (extraction); Applied, Refused and Revoked their answers.
	Required []string          `json:"required"`
	Applied  map[string]string `json:"applied,omitempty"`
	Refused  map[string]string `json:"refused,omitempty"`
	Revoked  map[string]string `json:"revoked,omitempty"`
	// Certificate is the digest of the verified wipe's certificate;
	// WipeError the last wipe failure.
	Certificate string `json:"certificate,omitempty"`
	WipeError   string `json:"wipe_error,omitempty"`
	// Override is set when an admin let the FRU go without a verified
	// wipe.
	Override *WorkflowOverrideView `json:"override,omitempty"`
	// Alarm says why the workflow needs attention.
	Alarm string `json:"alarm,omitempty"`
	// Outcome and Reason say how a finished workflow ended.
	Outcome    string `json:"outcome,omitempty"`
	Reason     string `json:"reason,omitempty"`
	StartIndex uint64 `json:"start_index"`
	EndIndex   uint64 `json:"end_index,omitempty"`
	LastIndex  uint64 `json:"last_index"`
}

// FRUView names a FRU: its entity path, the shelf manager it sits behind,
// its IPMC's IPMB address and FRU device ID.
type FRUView struct {
	Entity string `json:"entity"`
	Shelf  string `json:"shelf"`
	IPMB   uint8  `json:"ipmb"`
	ID     uint8  `json:"id"`
}

// WorkflowOverrideView records an override of a failed wipe.
type WorkflowOverrideView struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
	Index  uint64 `json:"index"`
}

// WorkflowRequest is the body of the workflow actions (extract, override,
// abort, retry). Reason is required for an override and recorded for all.
type WorkflowRequest struct {
	Reason string `json:"reason,omitempty"`
}

// WorkflowStarted is the answer (202) of POST /v1/resources/{id}/extract.
type WorkflowStarted struct {
	Workflow string `json:"workflow"`
}

// EraseCertificateSummary is an element of GET /v1/erase-certificates.
type EraseCertificateSummary struct {
	ID        string     `json:"id"`
	FRU       string     `json:"fru"`
	Node      string     `json:"node"`
	Target    string     `json:"target"`
	Outcome   string     `json:"outcome"`
	Completed *time.Time `json:"completed,omitempty"`
	// KeyID is the signer's key ID (hex SHA-256 of its public key); empty
	// when unsigned.
	KeyID string `json:"key_id,omitempty"`
	// Error is set instead of the fields above when the certificate could
	// not be read.
	Error string `json:"error,omitempty"`
}

// maxReasonLen bounds the reason of an operator request (it goes to the
// audit log and the replicated log).
const maxReasonLen = 512

func notConfigured(what string) error {
	return newErr(CodeNotConfigured, what+" is not configured on this node")
}

// decodeOptional is decode for a body that may be empty.
func decodeOptional(c *call, v any) error {
	if c.r.Body == nil {
		return nil
	}
	b, err := io.ReadAll(c.r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newErr(CodeTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
		}
		return newErr(CodeBadRequest, "request body: "+err.Error())
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	c.r.Body = io.NopCloser(bytes.NewReader(b))
	return decode(c, v)
}

// checkReason refuses reasons that are too long or hold control
// characters (they go to logs).
func checkReason(r string) (string, error) {
	r = strings.TrimSpace(r)
	if len(r) > maxReasonLen {
		return "", newErr(CodeBadRequest, fmt.Sprintf("reason longer than %d bytes", maxReasonLen))
	}
	for _, ch := range r {
		if ch < 0x20 || ch == 0x7f {
			return "", newErr(CodeBadRequest, "reason holds control characters")
		}
	}
	return r, nil
}

func (s *Server) getCluster(c *call) (any, error) {
	if s.cluster == nil {
		return nil, notConfigured("the cluster")
	}
	v := s.cluster.ClusterStatus()
	if v.Members == nil {
		v.Members = []ClusterMemberView{}
	}
	return v, nil
}

// nodeName checks the {node} path value: a cluster node name.
var nodeNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func fenceNode(c *call) (string, error) {
	n := c.r.PathValue("node")
	c.target = "node " + n
	if !nodeNamePattern.MatchString(n) {
		c.target = "node (malformed)"
		return "", newErr(CodeBadRequest, "node name: want letters, digits, '.', '_' or '-'")
	}
	return n, nil
}

func (s *Server) getFenceList(c *call) (any, error) {
	if s.fencing == nil {
		return nil, notConfigured("fencing")
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), s.cfg.ActionTimeout)
	defer cancel()
	out := FenceListView{Nodes: []FenceNodeView{}}
	for _, n := range s.fencing.Nodes() {
		v, err := s.fencing.View(ctx, n)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// One unreadable node does not hide the others.
			v = FenceNodeView{Node: n, Phase: "unknown", Power: "unknown"}
		}
		out.Nodes = append(out.Nodes, v)
	}
	return out, nil
}

func (s *Server) getFence(c *call) (any, error) {
	node, err := fenceNode(c)
	if err != nil {
		return nil, err
	}
	if s.fencing == nil {
		return nil, notConfigured("fencing")
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), s.cfg.ActionTimeout)
	defer cancel()
	return s.fencing.View(ctx, node)
}

func (s *Server) postFence(c *call) (any, error) {
	node, err := fenceNode(c)
	if err != nil {
		return nil, err
	}
	var req FenceRequest
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	a := FenceAction(strings.ToLower(strings.TrimSpace(req.Action)))
	switch a {
	case FenceOff, FenceOn, FenceReboot:
	default:
		return nil, newErr(CodeBadRequest, fmt.Sprintf("fence action %q: want off, on or reboot", req.Action))
	}
	reason, err := checkReason(req.Reason)
	if err != nil {
		return nil, err
	}
	c.detail = "action=" + string(a)
	if reason == "" {
		reason = "operator request through the API"
	} else {
		c.detail += " reason=" + fmt.Sprintf("%q", reason)
	}
	if s.fencing == nil {
		return nil, notConfigured("fencing")
	}
	var o FenceOutcome
	err = s.act(c, func(ctx context.Context) error {
		var err error
		if a == FenceOn {
			o, err = s.fencing.Unfence(ctx, node, c.identity, reason)
		} else {
			o, err = s.fencing.Fence(ctx, node, a, c.identity, reason)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	c.detail += " op=" + o.Op
	o.Node = node
	return accepted{o}, nil
}

func (s *Server) getWorkflows(c *call) (any, error) {
	if s.wf == nil {
		return nil, notConfigured("hot-swap workflows")
	}
	out := s.wf.List()
	if out == nil {
		out = []WorkflowView{}
	}
	return out, nil
}

// workflowID checks the {id} path value of a workflow route.
var workflowIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

func workflowID(c *call) (string, error) {
	id := c.r.PathValue("id")
	c.target = "workflow " + id
	if !workflowIDPattern.MatchString(id) {
		c.target = "workflow (malformed)"
		return "", newErr(CodeBadRequest, "workflow ID: want letters, digits, '.', '_', ':' or '-'")
	}
	return id, nil
}

func (s *Server) getWorkflow(c *call) (any, error) {
	id, err := workflowID(c)
	if err != nil {
		return nil, err
	}
	if s.wf == nil {
		return nil, notConfigured("hot-swap workflows")
	}
	w, ok := s.wf.Get(id)
	if !ok {
		return nil, newErr(CodeNotFound, "no workflow "+id)
	}
	return w, nil
}

func (s *Server) postExtract(c *call) (any, error) {
	e, err := s.resource(c)
	if err != nil {
		return nil, err
	}
	var req WorkflowRequest
	if err := decodeOptional(c, &req); err != nil {
		return nil, err
	}
	reason, err := checkReason(req.Reason)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		reason = "forced extraction requested through the API"
	}
	c.detail = "reason=" + fmt.Sprintf("%q", reason)
	if !e.Capabilities.Has(hpi.CapabilityFRU) {
		return nil, newErr(CodeCapability, "resource is not a FRU")
	}
	if s.wf == nil {
		return nil, notConfigured("hot-swap workflows")
	}
	var id string
	if err := s.act(c, func(ctx context.Context) error {
		var err error
		id, err = s.wf.Extract(ctx, e, c.identity, reason)
		return err
	}); err != nil {
		return nil, err
	}
	c.detail += " workflow=" + id
	return accepted{WorkflowStarted{Workflow: id}}, nil
}

// workflowAction runs one operator action on a workflow and answers with
// the workflow's state after it.
func (s *Server) workflowAction(c *call, needReason bool, f func(ctx context.Context, id, reason string) error) (any, error) {
	id, err := workflowID(c)
	if err != nil {
		return nil, err
	}
	var req WorkflowRequest
	if err := decodeOptional(c, &req); err != nil {
		return nil, err
	}
	reason, err := checkReason(req.Reason)
	if err != nil {
		return nil, err
	}
	if needReason && reason == "" {
		return nil, newErr(CodeBadRequest, "a reason is required")
	}
	if reason != "" {
		c.detail = "reason=" + fmt.Sprintf("%q", reason)
	}
	if s.wf == nil {
		return nil, notConfigured("hot-swap workflows")
	}
	if _, ok := s.wf.Get(id); !ok {
		return nil, newErr(CodeNotFound, "no workflow "+id)
	}
	if err := s.act(c, func(ctx context.Context) error { return f(ctx, id, reason) }); err != nil {
		return nil, err
	}
	w, _ := s.wf.Get(id)
	return w, nil
}

func (s *Server) postOverride(c *call) (any, error) {
	return s.workflowAction(c, true, func(ctx context.Context, id, reason string) error {
		return s.wf.Override(ctx, id, c.identity, reason)
	})
}

func (s *Server) postAbort(c *call) (any, error) {
	return s.workflowAction(c, false, func(ctx context.Context, id, reason string) error {
		if reason == "" {
			reason = "aborted through the API"
		}
		return s.wf.Abort(ctx, id, c.identity, reason)
	})
}

func (s *Server) postRetry(c *call) (any, error) {
	return s.workflowAction(c, false, func(ctx context.Context, id, _ string) error {
		return s.wf.Retry(ctx, id, c.identity)
	})
}

// certIDPattern is the form of an erase certificate's ID.
var certIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// certSummary decodes the fields of a certificate the list shows.
func certSummary(id string, b []byte) EraseCertificateSummary {
	var c struct {
		ID        string     `json:"id"`
		FRU       string     `json:"fru"`
		Node      string     `json:"node"`
		Target    string     `json:"target"`
		Outcome   string     `json:"outcome"`
		Completed *time.Time `json:"completed"`
		Signature *struct {
			KeyID string `json:"key_id"`
		} `json:"signature"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return EraseCertificateSummary{ID: id, Error: "unreadable certificate: " + err.Error()}
	}
	if c.ID != id {
		return EraseCertificateSummary{ID: id, Error: fmt.Sprintf("certificate stored as %s says it is %q", id, c.ID)}
	}
	out := EraseCertificateSummary{ID: id, FRU: c.FRU, Node: c.Node, Target: c.Target, Outcome: c.Outcome, Completed: c.Completed}
	if c.Signature != nil {
		out.KeyID = c.Signature.KeyID
	}
	return out
}

func (s *Server) getEraseCerts(c *call) (any, error) {
	if s.certs == nil {
		return nil, notConfigured("secure erase")
	}
	ids, err := s.certs.CertificateIDs()
	if err != nil {
		s.log.Error("api: listing erase certificates", "err", err)
		return nil, newErr(CodeInternal, "the erase certificates cannot be listed")
	}
	out := []EraseCertificateSummary{}
	for _, id := range ids {
		b, err := s.certs.Certificate(id)
		if err != nil {
			out = append(out, EraseCertificateSummary{ID: id, Error: "unreadable certificate"})
			s.log.Warn("api: reading erase certificate", "id", id, "err", err)
			continue
		}
		out = append(out, certSummary(id, b))
	}
	return out, nil
}

func (s *Server) getEraseCert(c *call) (any, error) {
	id := c.r.PathValue("id")
	if !certIDPattern.MatchString(id) {
		return nil, newErr(CodeBadRequest, "certificate ID: want 32 lower-case hex digits")
	}
	if s.certs == nil {
		return nil, notConfigured("secure erase")
	}
	b, err := s.certs.Certificate(id)
	if errors.Is(err, ErrNotFound) {
		return nil, newErr(CodeNotFound, "no erase certificate "+id)
	}
	if err != nil {
		s.log.Error("api: reading erase certificate", "id", id, "err", err)
		return nil, newErr(CodeInternal, "the erase certificate cannot be read")
	}
	if !json.Valid(b) {
		return nil, newErr(CodeInternal, "the stored erase certificate is not valid JSON")
	}
	// The stored bytes, unchanged: re-encoding could change what the
	// client verifies.
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(b)
	return handled{}, nil
}
