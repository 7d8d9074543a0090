package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"hpiagent/api"
	"hpiagent/api/adapt"
	"hpiagent/api/audit"
	"hpiagent/cluster"
)

// auditAnchorEvery is how often a cluster member writes its audit log's
// head (seq and hash of the newest record) to the cluster's replicated
// log, when it changed. A minute: records cut off the end of a log are
// then found at the latest after a minute's worth of records, at the cost
// of one small log entry per member per minute of activity.
const auditAnchorEvery = time.Minute

// auditAnchorMethod is the peer RPC method by which a member hands its
// audit head to the leader, which writes it to the log. The member is
// the one its certificate names: nobody anchors another node's log.
const auditAnchorMethod = "audit.anchor"

// auditAnchors keeps this member's audit log anchored in the cluster's
// replicated log, so that every member holds the newest heads of every
// member's audit log: a log cut short or rewritten (which its hash chain
// alone cannot show) is found when the member starts and by an operator
// (hpictl audit verify --anchor).
type auditAnchors struct {
	book *audit.AnchorBook
	cl   *cluster.Cluster
	self string
	log  *slog.Logger
	// path is this member's audit log; head its current head.
	path string
	head func() (uint64, string)
	// record writes an audit record of this member (a conflict found).
	record func(action, result, detail string)
	// reported counts conflicts already reported.
	reported int
}

// registerAuditAnchors registers the anchor book with the cluster (before
// it starts, so that the log replay reaches it) and serves the anchor RPC.
func (n *node) registerAuditAnchors(d *daemon) error {
	a := &auditAnchors{book: audit.NewAnchorBook(), cl: n.cl, self: d.cfg.Cluster.Node, log: d.log.With("component", "audit-anchor"),
		path: d.cfg.Audit.Path, head: d.audit.Last, record: n.audit}
	if err := n.cl.RegisterFSM(audit.AnchorLogKind, a.book); err != nil {
		return fmt.Errorf("registering the audit anchor state machine: %w", err)
	}
	if err := n.cl.Handle(auditAnchorMethod, a.handle); err != nil {
		return fmt.Errorf("registering the audit anchor handler: %w", err)
	}
	n.anchors = a
	return nil
}

// handle serves auditAnchorMethod on the leader.
func (a *auditAnchors) handle(ctx context.Context, from string, raw json.RawMessage) (any, error) {
	var an audit.NodeAnchor
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&an); err != nil {
		return nil, fmt.Errorf("decoding an audit anchor from %s: %w", from, err)
	}
	if an.Node != from {
		return nil, fmt.Errorf("member %s may anchor only its own audit log, not %q", from, an.Node)
	}
	return nil, a.propose(ctx, an)
}

func (a *auditAnchors) propose(ctx context.Context, an audit.NodeAnchor) error {
	b, err := audit.EncodeAnchor(an)
	if err != nil {
		return err
	}
	_, res, err := a.cl.Propose(ctx, audit.AnchorLogKind, b)
	if err != nil {
		return fmt.Errorf("writing the audit anchor of %s to the cluster log: %w", an.Node, err)
	}
	if err, ok := res.(error); ok {
		return fmt.Errorf("writing the audit anchor of %s to the cluster log: %w", an.Node, err)
	}
	return nil
}

// anchor writes this member's current head to the log (through the leader
// when this member does not lead).
func (a *auditAnchors) anchor(ctx context.Context, seq uint64, hash string) error {
	an := audit.NodeAnchor{Node: a.self, Seq: seq, Hash: hash, Time: time.Now().UTC()}
	if a.cl.IsLeader() {
		return a.propose(ctx, an)
	}
	leader := a.cl.Status().Leader
	if leader == "" {
		return errors.New("no cluster leader to write the audit anchor")
	}
	return a.cl.Call(ctx, leader, auditAnchorMethod, an, nil)
}

// run anchors the head at start and then every auditAnchorEvery while it
// changes. Once the first anchor of this run is applied here (so every
// earlier anchor of this member is too), it checks this member's log
// against them; afterwards it reports every new conflict of this member.
func (a *auditAnchors) run(ctx context.Context) {
	t := time.NewTicker(auditAnchorEvery)
	defer t.Stop()
	retry := time.NewTicker(2 * time.Second)
	defer retry.Stop()
	// anchored is the seq last anchored; first the first one of this
	// run, which is what the check waits for: entries apply in order, so
	// once it is applied here every earlier anchor is too (waiting for
	// the latest instead could wait forever while the head keeps moving).
	var anchored, first uint64
	checked := false
	for {
		seq, hash := a.head()
		if seq != 0 && seq != anchored {
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := a.anchor(actx, seq, hash)
			cancel()
			switch {
			case err != nil:
				a.log.Debug("anchoring the audit log", "seq", seq, "err", err)
			case first == 0:
				a.log.Info("audit log anchored in the cluster log", "seq", seq, "hash", hash)
				anchored, first = seq, seq
			default:
				a.log.Debug("audit log anchored in the cluster log", "seq", seq, "hash", hash)
				anchored = seq
			}
		}
		if !checked && first != 0 && a.appliedHere(first) {
			checked = true
			a.checkLocal()
		}
		a.reportConflicts()
		wait := t.C
		if !checked {
			wait = retry.C
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		}
	}
}

// appliedHere reports whether this member's anchor at seq is in its own
// copy of the book.
func (a *auditAnchors) appliedHere(seq uint64) bool {
	for _, an := range a.book.Anchors(a.self) {
		if an.Seq == seq {
			return true
		}
	}
	return false
}

// checkLocal verifies this member's current audit log file against the
// anchors the cluster holds for it: an anchored record missing (cut off
// the end) or with another hash (rewritten) is a conflict. Anchors of
// records in rotated files (before the file's first record) are left to
// hpictl audit verify over the rotated files.
func (a *auditAnchors) checkLocal() {
	f, err := os.Open(a.path)
	if err != nil {
		a.log.Error("checking the audit log against its anchors", "path", a.path, "err", err)
		return
	}
	defer f.Close()
	var anchors []audit.Anchor
	for _, an := range a.book.Anchors(a.self) {
		anchors = append(anchors, an.Anchor())
	}
	rep, err := audit.VerifyAnchored(f, anchors...)
	var ce *audit.ChainError
	if err != nil && !errors.As(err, &ce) {
		a.log.Error("checking the audit log against its anchors", "path", a.path, "err", err)
		return
	}
	var mismatch []audit.Problem
	checked := len(anchors)
	for _, p := range rep.Problems {
		switch {
		case p.Kind != audit.ProblemAnchor:
			return // the log's own problems were reported when it was opened
		case p.Seq < rep.FirstSeq:
			checked-- // in a rotated file, before this one
		default:
			mismatch = append(mismatch, p)
		}
	}
	if len(mismatch) > 0 {
		detail := fmt.Sprintf("the audit log does not hold what the cluster log anchored for it: %s", mismatch[0])
		a.log.Error("audit log cut short or rewritten", "path", a.path, "problem", mismatch[0].String(), "problems", len(mismatch))
		a.record("audit.anchor-mismatch", "failed", detail)
		return
	}
	a.log.Info("audit log matches its anchors in the cluster log", "anchors", checked, "last_seq", rep.LastSeq)
}

// reportConflicts logs and audits conflicts of this member's anchors not
// reported yet (the book keeps them for every member).
func (a *auditAnchors) reportConflicts() {
	cs := a.book.Conflicts()
	for _, c := range cs[min(a.reported, len(cs)):] {
		if c.Later.Node != a.self {
			continue
		}
		a.log.Error("audit anchor conflict", "reason", c.Reason, "earlier_seq", c.Earlier.Seq, "later_seq", c.Later.Seq)
		a.record("audit.anchor-conflict", "failed", c.Reason)
	}
	a.reported = len(cs)
}

// apiAuditAnchors returns the API's anchor route, nil without a cluster.
func (n *node) apiAuditAnchors() api.AuditAnchors {
	if n == nil || n.anchors == nil {
		return nil
	}
	return adapt.AuditAnchors(n.anchors.book)
}
