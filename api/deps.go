package api

import (
	"context"
	"errors"
	"time"

	"hpiagent/api/audit"
	"hpiagent/hpi"
)

// Hardware carries out actions on the shelf. Implementations confirm an
// action by reading the state back before they return; an error means the
// action failed or could not be confirmed. shelf.Monitor implements it.
type Hardware interface {
	SetPowerState(ctx context.Context, id hpi.ResourceID, s hpi.PowerState) error
	PowerState(ctx context.Context, id hpi.ResourceID) (hpi.PowerState, error)
	Reset(ctx context.Context, id hpi.ResourceID, a hpi.ResetAction) error
	HotSwapAction(ctx context.Context, id hpi.ResourceID, a hpi.IntentAction) error
	SetControl(ctx context.Context, id hpi.ResourceID, num hpi.CtrlNum, s hpi.CtrlState) error
}

// AuditRecord is one record of the audit log: who (Actor with Roles) did
// what (Action) to what (Target), with which Result, when. Seq, Prev and
// Hash are filled in by the log.
type AuditRecord = audit.Record

// Auditor appends records to the audit log; Append returns only once the
// record is durable. An error means the record may not have been stored.
// *audit.Log implements it.
type Auditor interface {
	Append(ctx context.Context, r AuditRecord) error
}

// ThresholdReader returns the current thresholds of a sensor (ok false
// when none were read yet). Deps.Thresholds defaults to the Domain when it
// implements this.
type ThresholdReader interface {
	SensorThresholds(id hpi.ResourceID, num hpi.SensorNum) (t hpi.SensorThresholds, ok bool, err error)
}

// SessionHealth are the counters of one IPMI session to a shelf manager or
// controller.
type SessionHealth struct {
	// Shelf names the peer (the configured shelf name).
	Shelf string
	// Up is whether the session is established now.
	Up bool
	// Sent, Retries, Timeouts and Reconnects count since start.
	Sent, Retries, Timeouts, Reconnects uint64
	// Rejected counts dropped packets by reason.
	Rejected map[string]uint64
}

// Health is the agent's own health as /metrics exports it.
type Health struct {
	// Sessions lists every IPMI session.
	Sessions []SessionHealth
	// EventQueueDepth is the number of events waiting in the agent's
	// internal queues (shelf events not yet applied to the model).
	EventQueueDepth int
	// TrapsRejected counts SNMP traps refused, by reason.
	TrapsRejected map[string]uint64
	// Watchdog is the state of the agent's watchdog feeder; nil when the
	// agent feeds no watchdog.
	Watchdog *WatchdogHealth
}

// WatchdogHealth is the state of the one feeder of the agent's watchdogs
// (systemd's service watchdog, /dev/watchdog, the IPMI BMC watchdog).
type WatchdogHealth struct {
	// Feeding: the last decision fed the watchdogs.
	Feeding bool
	// SelfFencing: feeding stopped for good after a quorum loss; the
	// node is about to be reset.
	SelfFencing bool
	// Reason says why feeding is withheld ("" while feeding).
	Reason string
	// Withheld is how long feeding has been withheld (0 while feeding).
	Withheld time.Duration
	// Clustered: feeding is gated on the cluster's quorum.
	Clustered bool
	// QuorumLost is how long the node has been without quorum (0 while
	// it holds quorum or is not clustered).
	QuorumLost time.Duration
	// FailingChecks names the health checks failing now.
	FailingChecks []string
	// Checks names every health check feeding depends on.
	Checks []string
	// Devices lists every watchdog device.
	Devices []WatchdogDeviceHealth
}

// WatchdogDeviceHealth is one watchdog device.
type WatchdogDeviceHealth struct {
	// Name is the device ("systemd", "/dev/watchdog", "ipmi-bmc", ...).
	Name string
	// Armed: the device is armed (an unarmed one is armed again at each
	// feed).
	Armed bool
	// Fed: the device was fed at the last feeding round.
	Fed bool
	// Feeds and Errors count successful feeds and failed arms, feeds
	// and disarms since start.
	Feeds, Errors uint64
	// LastFeed is the time of the last successful feed (zero: none).
	LastFeed time.Time
}

// HealthSource reports the agent's health; it is called on every scrape of
// /metrics and must not block on I/O.
type HealthSource interface {
	Health() Health
}

// Deps are what the server serves and acts through.
type Deps struct {
	// Domain is the HPI model read by every GET route. Required.
	Domain *hpi.Domain
	// Hardware carries out actions; nil makes every action answer 503
	// "unavailable" (a read-only API).
	Hardware Hardware
	// Auditor records state changes and refusals. Required: without an
	// audit log no call that changes state could run.
	Auditor Auditor
	// Health is exported on /metrics; optional.
	Health HealthSource
	// Thresholds reads sensor thresholds; nil uses Domain when it
	// implements ThresholdReader, else thresholds are reported as unknown.
	Thresholds ThresholdReader
	// Cluster reports the cluster membership and consensus state for GET
	// /v1/cluster; nil makes that route answer 501 "not_configured" (a
	// node running without a cluster). adapt.Cluster wraps *cluster.Cluster.
	Cluster ClusterStatus
	// Fencing serves /v1/fence; nil answers 501 "not_configured" (fencing
	// is off in the configuration). adapt.Fencing wraps
	// *fencing.Coordinator.
	Fencing Fencing
	// Workflows serves the hot-swap workflow routes; nil answers 501
	// "not_configured". adapt.Workflows wraps *hotswap.Coordinator and
	// *hotswap.Machine.
	Workflows Workflows
	// EraseCertificates serves /v1/erase-certificates; nil answers 501
	// "not_configured" (no secure erase on this node).
	// adapt.EraseCertificates wraps *secureerase.Store.
	EraseCertificates EraseCertificates
	// AuditAnchors serves /v1/audit/anchors; nil answers 501
	// "not_configured" (a standalone agent: anchors live in the cluster
	// log). adapt.AuditAnchors wraps *audit.AnchorBook.
	AuditAnchors AuditAnchors
}

// AuditAnchors are the audit log heads the cluster log holds for its
// members. Its methods must not block on I/O.
type AuditAnchors interface {
	// LatestAnchors returns the newest anchor of every member, by name.
	LatestAnchors() []AuditAnchor
	// NodeAnchors returns the anchors kept for one member, oldest first.
	NodeAnchors(node string) []AuditAnchor
	// AnchorConflicts returns the conflicts seen, oldest first.
	AnchorConflicts() []AuditAnchorConflict
}

// ClusterStatus reports this node's view of the cluster. It is called on
// every GET /v1/cluster and must not block on I/O.
type ClusterStatus interface {
	ClusterStatus() ClusterView
}

// NotLeaderError is returned by Fencing and Workflows when this node is not
// the cluster leader holding quorum, where those decisions are taken. The
// API answers 503 "not_leader" with the leader's name (and API endpoint,
// when known) so that a client retries there.
type NotLeaderError struct {
	// Leader is the leader's cluster name; empty when no leader is known
	// (no quorum).
	Leader string
	// LeaderAPI is the leader's API endpoint (https://host:port) when the
	// daemon knows it; clients with the same CA and roles retry there.
	LeaderAPI string
}

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return "this node is not the cluster leader and no leader is known"
	}
	return "this node is not the cluster leader; the leader is " + e.Leader
}

// Errors adapters wrap (with %w) so that the API answers with the right
// code: ErrNotFound 404 "not_found", ErrInvalidState 409 "invalid_state".
var (
	ErrNotFound     = errors.New("not found")
	ErrInvalidState = errors.New("not allowed in the current state")
)

// FenceAction is what POST /v1/fence/{node} asks for.
type FenceAction string

// The fence actions.
const (
	// FenceOff powers the node off and keeps it off until unfenced.
	FenceOff FenceAction = "off"
	// FenceReboot fences the node, then unfences it once the fence is
	// confirmed.
	FenceReboot FenceAction = "reboot"
	// FenceOn unfences a fenced (or failed) node: powers it on again.
	FenceOn FenceAction = "on"
)

// Fencing is the cluster's fencing coordinator as the API uses it. Fence
// and Unfence return a *NotLeaderError on a node that is not the leader,
// an error wrapping ErrNotFound for a node that is not a fencing target
// and one wrapping ErrInvalidState for a request the coordinator refuses
// (fencing this node itself, a disabled source).
type Fencing interface {
	// Nodes lists the fencing targets, sorted.
	Nodes() []string
	// View returns a node's replicated fencing phase with a live power
	// read-back (it may do I/O; ctx bounds it).
	View(ctx context.Context, node string) (FenceNodeView, error)
	// Fence records an operator's fence of node (off or reboot) in the
	// cluster log; the leader then carries it out. requester is the
	// authenticated identity.
	Fence(ctx context.Context, node string, action FenceAction, requester, reason string) (FenceOutcome, error)
	// Unfence records an operator's request to power a fenced node on.
	Unfence(ctx context.Context, node, requester, reason string) (FenceOutcome, error)
}

// Workflows is the hot-swap workflow coordinator as the API uses it.
// Extract, Override, Abort and Retry return a *NotLeaderError on a node
// that is not the leader, errors wrapping ErrNotFound for an unknown
// workflow and ErrInvalidState for a refused step (a workflow already in
// flight for the FRU, an override of a workflow whose wipe did not fail).
type Workflows interface {
	// List returns every workflow the replicated state holds (in flight
	// and recently finished), oldest first; no I/O.
	List() []WorkflowView
	// Get returns one workflow; no I/O.
	Get(id string) (WorkflowView, bool)
	// Extract starts an operator-forced extraction of the FRU of res and
	// returns the workflow's ID.
	Extract(ctx context.Context, res hpi.RPTEntry, actor, reason string) (string, error)
	// Override lets a workflow whose wipe failed deactivate the FRU
	// anyway (admin only; reason is required and recorded).
	Override(ctx context.Context, id, actor, reason string) error
	// Abort ends a workflow.
	Abort(ctx context.Context, id, actor, reason string) error
	// Retry starts the next attempt of a refused step or failed wipe.
	Retry(ctx context.Context, id, actor string) error
}

// EraseCertificates is the store of signed secure-erase certificates.
type EraseCertificates interface {
	// CertificateIDs lists the stored certificates' IDs, sorted.
	CertificateIDs() ([]string, error)
	// Certificate returns the signed certificate as JSON, unchanged, so
	// that a client can verify its signature with the node's public key;
	// an error wrapping ErrNotFound when there is none with that ID.
	Certificate(id string) ([]byte, error)
}
