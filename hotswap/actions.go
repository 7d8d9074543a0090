package hotswap

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// ActionKind is what the leader must do next for a workflow.
type ActionKind string

// Actions. Each is derived from a workflow's state alone.
const (
	// ActHold: put the FRU on hold (Locked for an insertion,
	// Deactivation-Locked for an extraction), confirm, propose held.
	ActHold ActionKind = "hold"
	// ActApplyHooks: ask Member to apply its policy hooks; propose
	// hook_applied or hook_refused.
	ActApplyHooks ActionKind = "apply_hooks"
	// ActRevokeHooks: ask Member to revoke its policies; propose
	// policies_revoked or revoke_refused.
	ActRevokeHooks ActionKind = "revoke_hooks"
	// ActActivate: unlock, activate, confirm M4; propose
	// activation_confirmed.
	ActActivate ActionKind = "activate"
	// ActWipe: ask the owner to wipe and verify; propose wipe_result.
	ActWipe ActionKind = "wipe"
	// ActDeactivate: clear Deactivation-Locked, deactivate, confirm M1, blue
	// LED on; propose deactivation_confirmed.
	ActDeactivate ActionKind = "deactivate"
	// ActRetry: members refused; after the configured delay propose retry.
	ActRetry ActionKind = "retry"
	// ActAbort: members refused and no attempts are left; propose aborted.
	ActAbort ActionKind = "abort"
)

// Action is one thing the leader must do now.
type Action struct {
	Kind     ActionKind `json:"kind"`
	Workflow string     `json:"workflow"`
	// Member is the member to call (hooks) or the owner (wipe).
	Member string `json:"member,omitempty"`
	// Attempt is the workflow's current attempt (for refusals and retries).
	Attempt int `json:"attempt"`
	// Reason summarizes the refusals (retry, abort).
	Reason string `json:"reason,omitempty"`
}

// NextActions returns what the leader must do now for every workflow in
// flight, in workflow start order. It depends on the replicated state only.
func (m *Machine) NextActions() []Action {
	m.mu.Lock()
	defer m.mu.Unlock()
	ws := make([]*Workflow, 0, len(m.active))
	for _, id := range m.active {
		ws = append(ws, m.workflows[id])
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].StartIndex < ws[j].StartIndex })
	var out []Action
	for _, w := range ws {
		out = append(out, nextActions(w)...)
	}
	return out
}

// NextActionsFor returns the actions of one workflow.
func (m *Machine) NextActionsFor(id string) []Action {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.workflows[id]
	if w == nil {
		return nil
	}
	return nextActions(w)
}

func nextActions(w *Workflow) []Action {
	a := func(k ActionKind, member string) Action {
		return Action{Kind: k, Workflow: w.ID, Member: member, Attempt: w.Attempt}
	}
	switch w.Phase {
	case PhaseHolding:
		return []Action{a(ActHold, "")}
	case PhaseApplying:
		return memberActions(w, ActApplyHooks, w.Required, w.Applied)
	case PhaseActivating:
		if !allIn(w.Required, w.Applied) {
			return nil // unreachable: the phase is entered only with every ack
		}
		return []Action{a(ActActivate, "")}
	case PhaseRevoking:
		return memberActions(w, ActRevokeHooks, w.RevokeSet, w.Revoked)
	case PhaseWiping:
		return []Action{a(ActWipe, w.Owner)}
	case PhaseDeactivating:
		if w.Certificate == "" && w.Override == nil {
			return nil // unreachable
		}
		return []Action{a(ActDeactivate, "")}
	}
	return nil // wipe failed (waits for an operator) or done
}

func memberActions(w *Workflow, k ActionKind, set []string, done map[string]string) []Action {
	var out []Action
	for _, n := range set {
		if done[n] == "" && w.Refused[n] == "" {
			out = append(out, Action{Kind: k, Workflow: w.ID, Member: n, Attempt: w.Attempt})
		}
	}
	if len(out) > 0 || len(w.Refused) == 0 {
		return out
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(w.Refused)) {
		parts = append(parts, n+": "+w.Refused[n])
	}
	reason := truncate(strings.Join(parts, "; "), maxReasonLen-64)
	if w.Attempt < w.MaxAttempts {
		return []Action{{Kind: ActRetry, Workflow: w.ID, Attempt: w.Attempt, Reason: reason}}
	}
	return []Action{{Kind: ActAbort, Workflow: w.ID, Attempt: w.Attempt,
		Reason: fmt.Sprintf("%d attempts refused: %s", w.Attempt, reason)}}
}
