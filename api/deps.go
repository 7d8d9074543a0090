package api

import (
	"context"

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
}
