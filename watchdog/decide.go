// Package watchdog feeds the node's watchdogs — the IPMI BMC watchdog, the
// kernel's /dev/watchdog and systemd's service watchdog — only while the
// agent is healthy, and stops feeding them for good once the node has been
// without cluster quorum longer than a configured time. The watchdogs then
// reset the node, which is what lets the majority treat it as fenced (the
// SBD idea): a node cut off from the cluster cannot keep running services.
//
// The decision is a pure state machine (Decider) with an injected clock;
// Feeder is the I/O driver around it with uniform Device plug-ins. An
// agent runs one Feeder and one Notifier (its only writer on systemd's
// notification socket): the Systemd device sends WATCHDOG=1 through that
// Notifier, so nothing else pings systemd, and a self-fence stops those
// pings too. SelfFenceMark keeps a self-fence decision across restarts of
// the agent within one boot.
package watchdog

import (
	"fmt"
	"strings"
	"time"
)

// Decision is what the Decider says about one feeding tick.
type Decision struct {
	// Feed is true when the watchdogs may be fed now.
	Feed bool
	// SelfFencing is true once the node has been without quorum longer
	// than SelfFenceAfter; it never becomes false again (until restart).
	SelfFencing bool
	// Reason says why feeding stopped ("" when Feed).
	Reason string
	// Failing names the health checks that failed in this observation.
	Failing []string
	// QuorumLostSince is when the node last lost quorum; zero while it
	// holds quorum (and for a node that is not clustered). Once
	// self-fencing it stays at the loss that latched.
	QuorumLostSince time.Time
}

// Decider decides whether to feed. It does no I/O and reads no clock: the
// caller passes now. Not safe for concurrent use (the Feeder serialises).
type Decider struct {
	selfFenceAfter time.Duration
	lostSince      time.Time // zero while quorum is held
	latched        bool
	latchReason    string
}

// NewDecider returns a Decider that self-fences once quorum has been
// lost for longer than selfFenceAfter (> 0).
func NewDecider(selfFenceAfter time.Duration) *Decider {
	return &Decider{selfFenceAfter: selfFenceAfter}
}

// Decide takes one observation: the names of failing health checks (none:
// healthy) and whether the node holds quorum, at time now.
//
// Rules: once self-fencing, never feed again (resuming would let a node the
// majority already counts as reset come back to life). Otherwise feed only
// when every health check passes; a health failure alone does not latch,
// since a node with quorum is still watched by its peers.
func (d *Decider) Decide(now time.Time, failing []string, quorum bool) Decision {
	if d.latched {
		return Decision{SelfFencing: true, Reason: d.latchReason, Failing: failing, QuorumLostSince: d.lostSince}
	}
	if quorum {
		d.lostSince = time.Time{}
	} else if d.lostSince.IsZero() {
		d.lostSince = now
	}
	if !quorum && now.Sub(d.lostSince) > d.selfFenceAfter {
		d.latched = true
		d.latchReason = fmt.Sprintf("no quorum since %s (longer than %s): self-fencing", d.lostSince.UTC().Format(time.RFC3339), d.selfFenceAfter)
		return Decision{SelfFencing: true, Reason: d.latchReason, Failing: failing, QuorumLostSince: d.lostSince}
	}
	if len(failing) > 0 {
		return Decision{Reason: "health checks failing: " + strings.Join(failing, ", "), Failing: failing, QuorumLostSince: d.lostSince}
	}
	return Decision{Feed: true, QuorumLostSince: d.lostSince}
}

// Latch makes the Decider self-fencing for good with reason, as if it
// had decided so: for a decision taken before a restart of the agent.
func (d *Decider) Latch(reason string) {
	d.latched, d.latchReason = true, reason
}

// SelfFencing reports whether the Decider has latched.
func (d *Decider) SelfFencing() bool { return d.latched }
