package hpi

import (
	"fmt"
	"sort"
	"time"
)

// hsResourceLocked returns the FRU resource id or an error.
func (d *Domain) hsResourceLocked(op string, id ResourceID) (*resource, error) {
	r, ok := d.res[id]
	if !ok {
		return nil, fmt.Errorf("hpi: %s resource %d: %w", op, id, ErrInvalidResource)
	}
	if !r.entry.Capabilities.Has(CapabilityFRU) {
		return nil, fmt.Errorf("hpi: %s resource %d (%s): not a FRU: %w", op, id, r.entry.EntityPath, ErrCapability)
	}
	return r, nil
}

// ObserveMState feeds an observed AdvancedTCA M-state of a FRU resource into
// the hot-swap state machine: from an ATCA hot-swap event (prev is the
// event's previous state) or from a poll (prev MStateUnknown). It emits HPI
// HOTSWAP events only for real HPI state changes (M2→M3 is none), each with
// the tracked previous HPI state and the given cause; when an observation
// skips HPI states (a missed event, M1→M4) each step of the shortest allowed
// path is emitted, so every emitted transition is allowed and the chain per
// resource is continuous.
//
// M7 (communication lost) is not an HPI state: entering it keeps the HPI
// state, marks the resource failed (RESOURCE FAILURE) and suspends its
// auto-policy timer; the first observation after M7 marks it restored
// (RESOURCE RESTORED) before any state change. A failure set with
// SetResourceFailed is not cleared by an M-state observation.
//
// The first observation of a resource sets its state without an event,
// unless prev is a known M-state that maps to another HPI state, in which
// case the transition from prev is emitted. Only the state the observation
// ends in is entered: entering a pending state of a managed hot-swap
// resource arms its auto-insert or auto-extract timer; with
// TimeoutImmediate the intent is returned at once. Returning from M7 into
// the same pending state re-arms the timer unless the policy was cancelled.
// Every state entered, M7 entry and M7 return start a new epoch, which makes
// earlier intents stale (IntentStale). The events emitted and intents due
// are returned.
func (d *Domain) ObserveMState(id ResourceID, prev, cur MState, cause HsCause, now time.Time) ([]Event, []Intent, error) {
	if cur > M7 {
		return nil, nil, fmt.Errorf("hpi: observe M-state of resource %d: %d is not an M-state: %w", id, cur, ErrInvalidParams)
	}
	if prev > M7 && prev != MStateUnknown {
		return nil, nil, fmt.Errorf("hpi: observe M-state of resource %d: previous %d is not an M-state: %w", id, prev, ErrInvalidParams)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r, err := d.hsResourceLocked("observe M-state of", id)
	if err != nil {
		return nil, nil, err
	}
	if now.IsZero() {
		now = d.now()
	}
	var collected []Event
	d.collect = &collected
	defer func() { d.collect = nil }()
	hs := &r.hs
	if hs.known && prev != MStateUnknown && hs.lastM != MStateUnknown && prev != hs.lastM {
		d.log.Debug("hpi: M-state observation does not continue the last one", "resource", uint32(id),
			"last", hs.lastM.String(), "prev", prev.String(), "cur", cur.String())
	}
	wasM7 := hs.lastM == M7
	if cur == M7 {
		hs.lastM = M7
		if !wasM7 {
			// Communication lost: nothing can be carried out, so the
			// timer stops and earlier intents become stale.
			hs.deadline = time.Time{}
			d.newEpochLocked(r)
		}
		d.setFailedLocked(r, true, now)
		return collected, nil, nil
	}
	hs.lastM = cur
	if wasM7 {
		d.setFailedLocked(r, false, now)
	}
	target, _ := HsStateFromMState(cur)
	changed := false
	if !hs.known {
		start := target
		if s, ok := HsStateFromMState(prev); ok && prev != cur {
			start = s
		}
		hs.known, hs.state, changed = true, start, true
	}
	for _, next := range hsPath(hs.state, target) {
		from := hs.state
		hs.state = next
		changed = true
		d.emitLocked(Event{Source: id, Type: EventHotSwap, Timestamp: now, Severity: r.entry.Severity,
			HotSwap: HotSwapEvent{HotSwapState: next, PreviousHotSwapState: from, CauseOfStateChange: cause}})
	}
	var intents []Intent
	if changed || wasM7 {
		// A return from M7 into the same state keeps a cancelled policy
		// cancelled: the operator's hold survives a communication loss.
		intents = d.enterHsLocked(r, hs.state, now, !changed)
	}
	return collected, intents, nil
}

// newEpochLocked starts a new hot-swap epoch of r; intents of earlier epochs
// are stale.
func (d *Domain) newEpochLocked(r *resource) {
	d.hsEpoch++
	r.hs.epoch = d.hsEpoch
}

// enterHsLocked starts a new epoch in state s, resets the per-state policy
// (unless keepCancel) and arms the auto timer of a pending state of a
// managed hot-swap resource. It returns the intent of an immediate timeout.
func (d *Domain) enterHsLocked(r *resource, s HsState, now time.Time, keepCancel bool) []Intent {
	hs := &r.hs
	d.newEpochLocked(r)
	if !keepCancel {
		hs.policyCanceled = false
	}
	hs.deadline = time.Time{}
	if hs.policyCanceled || !r.entry.Capabilities.Has(CapabilityManagedHotswap) {
		return nil
	}
	var t Timeout
	var action IntentAction
	switch s {
	case HsStateInsertionPending:
		t, action = d.insertTimeoutLocked(r), IntentActivate
	case HsStateExtractionPending:
		t, action = hs.extractTimeout, IntentDeactivate
	default:
		return nil
	}
	switch {
	case t == TimeoutImmediate:
		return []Intent{d.intentLocked(r, action, HsCauseAutoPolicy, now)}
	case t < 0:
		return nil
	}
	hs.deadline = now.Add(time.Duration(t))
	return nil
}

// insertTimeoutLocked is the auto-insert timeout that applies to r: IMMEDIATE
// for a resource with HsCapabilityAutoinsertImmediate, else its own override
// or the domain's.
func (d *Domain) insertTimeoutLocked(r *resource) Timeout {
	if r.entry.HotSwapCapabilities&HsCapabilityAutoinsertImmediate != 0 {
		return TimeoutImmediate
	}
	if r.hs.insertTimeout != nil {
		return *r.hs.insertTimeout
	}
	return d.autoInsert
}

func (d *Domain) intentLocked(r *resource, a IntentAction, cause HsCause, now time.Time) Intent {
	return Intent{Resource: r.entry.ResourceID, Entity: r.entry.EntityPath.Clone(), Action: a, Cause: cause,
		State: r.hs.state, Epoch: r.hs.epoch, At: now}
}

// IntentStale reports whether in no longer applies: its resource is gone or
// no longer a FRU, or the resource's hot-swap state moved (or communication
// was lost or restored) since the intent was made. A caller checks it just
// before carrying an intent out and drops a stale one.
func (d *Domain) IntentStale(in Intent) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.res[in.Resource]
	if !ok || !r.entry.Capabilities.Has(CapabilityFRU) {
		return true
	}
	return !r.hs.known || r.hs.epoch != in.Epoch || r.hs.state != in.State
}

// Tick advances the auto-insert and auto-extract timers to now and returns
// the intents whose timeout expired (ACTIVATE for INSERTION_PENDING,
// DEACTIVATE for EXTRACTION_PENDING, cause AUTO_POLICY), ordered by
// resource ID. Each timer fires once per entry into its pending state.
func (d *Domain) Tick(now time.Time) []Intent {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Intent
	for _, r := range d.res {
		hs := &r.hs
		if hs.deadline.IsZero() || now.Before(hs.deadline) {
			continue
		}
		hs.deadline = time.Time{}
		var a IntentAction
		switch hs.state {
		case HsStateInsertionPending:
			a = IntentActivate
		case HsStateExtractionPending:
			a = IntentDeactivate
		default:
			continue
		}
		out = append(out, d.intentLocked(r, a, HsCauseAutoPolicy, now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource < out[j].Resource })
	return out
}

// NextDeadline returns the earliest running auto-policy deadline, for the
// caller to schedule its next Tick; ok is false when none runs.
func (d *Domain) NextDeadline() (t time.Time, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.res {
		if dl := r.hs.deadline; !dl.IsZero() && (!ok || dl.Before(t)) {
			t, ok = dl, true
		}
	}
	return t, ok
}

// HotSwapState returns the hot-swap view of a FRU resource
// (saHpiHotSwapStateGet and more).
func (d *Domain) HotSwapState(id ResourceID) (HotSwapStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, err := d.hsResourceLocked("hot-swap state of", id)
	if err != nil {
		return HotSwapStatus{}, err
	}
	hs := r.hs
	return HotSwapStatus{State: hs.state, Known: hs.known, LastMState: hs.lastM, Failed: r.entry.ResourceFailed,
		PolicyCanceled: hs.policyCanceled, Deadline: hs.deadline, AutoExtractTimeout: hs.extractTimeout,
		AutoInsertTimeout: d.insertTimeoutLocked(r), Epoch: hs.epoch}, nil
}

// HotSwapPolicyCancel stops the auto policy of a resource in
// INSERTION_PENDING or EXTRACTION_PENDING (saHpiHotSwapPolicyCancel): its
// timer does not fire until the resource enters a pending state again
// (a loss of communication, M7, and its return do not count as leaving).
// It fails with ErrCapability for a resource without managed hot swap and
// with ErrInvalidRequest outside the pending states.
func (d *Domain) HotSwapPolicyCancel(id ResourceID) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, err := d.hsResourceLocked("cancel hot-swap policy of", id)
	if err != nil {
		return err
	}
	if !r.entry.Capabilities.Has(CapabilityManagedHotswap) {
		return fmt.Errorf("hpi: cancel hot-swap policy of resource %d: no managed hot swap: %w", id, ErrCapability)
	}
	if !r.hs.known || (r.hs.state != HsStateInsertionPending && r.hs.state != HsStateExtractionPending) {
		return fmt.Errorf("hpi: cancel hot-swap policy of resource %d in state %s: %w", id, r.hs.state, ErrInvalidRequest)
	}
	r.hs.policyCanceled = true
	r.hs.deadline = time.Time{}
	return nil
}

func (d *Domain) requestLocked(op string, id ResourceID, a IntentAction, valid []HsState, now time.Time) (Intent, error) {
	r, err := d.hsResourceLocked(op, id)
	if err != nil {
		return Intent{}, err
	}
	if !r.entry.Capabilities.Has(CapabilityManagedHotswap) {
		return Intent{}, fmt.Errorf("hpi: %s resource %d: no managed hot swap: %w", op, id, ErrCapability)
	}
	ok := false
	for _, s := range valid {
		ok = ok || (r.hs.known && r.hs.state == s)
	}
	if !ok {
		return Intent{}, fmt.Errorf("hpi: %s resource %d in state %s: %w", op, id, r.hs.state, ErrInvalidRequest)
	}
	if now.IsZero() {
		now = d.now()
	}
	// The request takes over from the auto policy.
	r.hs.policyCanceled = true
	r.hs.deadline = time.Time{}
	return d.intentLocked(r, a, HsCauseExtSoftware, now), nil
}

// RequestActivate is saHpiResourceActiveSet: valid in INSERTION_PENDING or
// EXTRACTION_PENDING, it returns an ACTIVATE intent and cancels the auto
// policy for the pending state. The state changes only when the caller
// reports the new M-state.
func (d *Domain) RequestActivate(id ResourceID, now time.Time) (Intent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requestLocked("activate", id, IntentActivate,
		[]HsState{HsStateInsertionPending, HsStateExtractionPending}, now)
}

// RequestInactivate is saHpiResourceInactiveSet: valid in INSERTION_PENDING
// or EXTRACTION_PENDING, it returns a DEACTIVATE intent.
func (d *Domain) RequestInactivate(id ResourceID, now time.Time) (Intent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requestLocked("inactivate", id, IntentDeactivate,
		[]HsState{HsStateInsertionPending, HsStateExtractionPending}, now)
}

// RequestInsertion is saHpiHotSwapActionRequest(SAHPI_HS_ACTION_INSERTION):
// valid in INACTIVE, it returns a REQUEST_INSERTION intent (ATCA: activate
// the FRU in M1 so that it moves to M2).
func (d *Domain) RequestInsertion(id ResourceID, now time.Time) (Intent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requestLocked("request insertion of", id, IntentRequestInsertion, []HsState{HsStateInactive}, now)
}

// RequestExtraction is saHpiHotSwapActionRequest(SAHPI_HS_ACTION_EXTRACTION):
// valid in ACTIVE, it returns a REQUEST_EXTRACTION intent (ATCA: deactivate
// the FRU in M4 so that it moves to M5).
func (d *Domain) RequestExtraction(id ResourceID, now time.Time) (Intent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requestLocked("request extraction of", id, IntentRequestExtraction, []HsState{HsStateActive}, now)
}

// SetAutoInsertTimeout sets the domain's auto-insert timeout
// (saHpiAutoInsertTimeoutSet). It applies to timers armed afterwards.
func (d *Domain) SetAutoInsertTimeout(t Timeout) error {
	if !validTimeout(t) {
		return fmt.Errorf("hpi: set auto-insert timeout %d: %w", t, ErrInvalidParams)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.autoInsert = t
	return nil
}

// AutoInsertTimeout returns the domain's auto-insert timeout.
func (d *Domain) AutoInsertTimeout() Timeout {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.autoInsert
}

// SetResourceAutoInsertTimeout overrides the domain's auto-insert timeout
// for one resource; nil restores the domain's.
func (d *Domain) SetResourceAutoInsertTimeout(id ResourceID, t *Timeout) error {
	if t != nil && !validTimeout(*t) {
		return fmt.Errorf("hpi: set auto-insert timeout of resource %d to %d: %w", id, *t, ErrInvalidParams)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r, err := d.hsResourceLocked("set auto-insert timeout of", id)
	if err != nil {
		return err
	}
	if t == nil {
		r.hs.insertTimeout = nil
	} else {
		c := *t
		r.hs.insertTimeout = &c
	}
	return nil
}

// SetAutoExtractTimeout sets the auto-extract timeout of a resource
// (saHpiAutoExtractTimeoutSet); refused with ErrCapability for a resource
// without managed hot swap and with ErrReadOnly when the resource has
// HsCapabilityAutoextractReadOnly. It applies from the next entry into
// EXTRACTION_PENDING.
func (d *Domain) SetAutoExtractTimeout(id ResourceID, t Timeout) error {
	if !validTimeout(t) {
		return fmt.Errorf("hpi: set auto-extract timeout of resource %d to %d: %w", id, t, ErrInvalidParams)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r, err := d.hsResourceLocked("set auto-extract timeout of", id)
	if err != nil {
		return err
	}
	if !r.entry.Capabilities.Has(CapabilityManagedHotswap) {
		return fmt.Errorf("hpi: set auto-extract timeout of resource %d: no managed hot swap: %w", id, ErrCapability)
	}
	if r.entry.HotSwapCapabilities&HsCapabilityAutoextractReadOnly != 0 {
		return fmt.Errorf("hpi: set auto-extract timeout of resource %d: %w", id, ErrReadOnly)
	}
	r.hs.extractTimeout = t
	return nil
}
