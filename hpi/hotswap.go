package hpi

import (
	"strconv"
	"time"
)

// HsState is SaHpiHsStateT, the HPI hot-swap state of a FRU resource.
type HsState uint8

// SaHpiHsStateT values.
const (
	HsStateInactive          HsState = 0 // SAHPI_HS_STATE_INACTIVE
	HsStateInsertionPending  HsState = 1 // SAHPI_HS_STATE_INSERTION_PENDING
	HsStateActive            HsState = 2 // SAHPI_HS_STATE_ACTIVE
	HsStateExtractionPending HsState = 3 // SAHPI_HS_STATE_EXTRACTION_PENDING
	HsStateNotPresent        HsState = 4 // SAHPI_HS_STATE_NOT_PRESENT
)

// String returns the OpenHPI text form ("INSERTION_PENDING").
func (s HsState) String() string {
	switch s {
	case HsStateInactive:
		return "INACTIVE"
	case HsStateInsertionPending:
		return "INSERTION_PENDING"
	case HsStateActive:
		return "ACTIVE"
	case HsStateExtractionPending:
		return "EXTRACTION_PENDING"
	case HsStateNotPresent:
		return "NOT_PRESENT"
	}
	return "UNKNOWN(" + strconv.Itoa(int(s)) + ")"
}

// Valid reports whether s is one of the five HPI hot-swap states.
func (s HsState) Valid() bool { return s <= HsStateNotPresent }

// HsCause is SaHpiHsCauseOfStateChangeT.
type HsCause uint16

// SaHpiHsCauseOfStateChangeT values.
const (
	HsCauseAutoPolicy             HsCause = 0      // SAHPI_HS_CAUSE_AUTO_POLICY
	HsCauseExtSoftware            HsCause = 1      // SAHPI_HS_CAUSE_EXT_SOFTWARE
	HsCauseOperatorInit           HsCause = 2      // SAHPI_HS_CAUSE_OPERATOR_INIT
	HsCauseUserUpdate             HsCause = 3      // SAHPI_HS_CAUSE_USER_UPDATE
	HsCauseUnexpectedDeactivation HsCause = 4      // SAHPI_HS_CAUSE_UNEXPECTED_DEACTIVATION
	HsCauseSurpriseExtraction     HsCause = 5      // SAHPI_HS_CAUSE_SURPRISE_EXTRACTION
	HsCauseExtractionUpdate       HsCause = 6      // SAHPI_HS_CAUSE_EXTRACTION_UPDATE
	HsCauseHardwareFault          HsCause = 7      // SAHPI_HS_CAUSE_HARDWARE_FAULT
	HsCauseContainingFRU          HsCause = 8      // SAHPI_HS_CAUSE_CONTAINING_FRU
	HsCauseUnknown                HsCause = 0xFFFF // SAHPI_HS_CAUSE_UNKNOWN
)

// String returns the OpenHPI text form ("AUTO_POLICY").
func (c HsCause) String() string {
	switch c {
	case HsCauseAutoPolicy:
		return "AUTO_POLICY"
	case HsCauseExtSoftware:
		return "EXT_SOFTWARE"
	case HsCauseOperatorInit:
		return "OPERATOR_INIT"
	case HsCauseUserUpdate:
		return "USER_UPDATE"
	case HsCauseUnexpectedDeactivation:
		return "UNEXPECTED_DEACTIVATION"
	case HsCauseSurpriseExtraction:
		return "SURPRISE_EXTRACTION"
	case HsCauseExtractionUpdate:
		return "EXTRACTION_UPDATE"
	case HsCauseHardwareFault:
		return "HARDWARE_FAULT"
	case HsCauseContainingFRU:
		return "CONTAINING_FRU"
	case HsCauseUnknown:
		return "UNKNOWN"
	}
	return "UNKNOWN(" + strconv.Itoa(int(c)) + ")"
}

// allowedHs is the HPI B.03 hot-swap transition table (§3.2 figure of the
// hot-swap state model, including the simplified model's NOT_PRESENT ↔
// ACTIVE and the unexpected deactivation ACTIVE → INACTIVE).
var allowedHs = [5][5]bool{
	HsStateNotPresent:        {HsStateInactive: true, HsStateInsertionPending: true, HsStateActive: true},
	HsStateInactive:          {HsStateInsertionPending: true, HsStateNotPresent: true},
	HsStateInsertionPending:  {HsStateActive: true, HsStateInactive: true, HsStateNotPresent: true},
	HsStateActive:            {HsStateExtractionPending: true, HsStateInactive: true, HsStateNotPresent: true},
	HsStateExtractionPending: {HsStateInactive: true, HsStateActive: true, HsStateNotPresent: true},
}

// HsTransitionAllowed reports whether HPI allows a direct transition from
// one hot-swap state to another.
func HsTransitionAllowed(from, to HsState) bool {
	if !from.Valid() || !to.Valid() {
		return false
	}
	return allowedHs[from][to]
}

// hsPath returns the states after from, ending in to, that walk the allowed
// table along a shortest path. It is used when an observation skips states
// (a missed IPMI event): each step is then reported as its own event so that
// every emitted transition is an allowed one.
func hsPath(from, to HsState) []HsState {
	if from == to {
		return nil
	}
	if HsTransitionAllowed(from, to) {
		return []HsState{to}
	}
	prev := map[HsState]HsState{from: from}
	queue := []HsState{from}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for n := HsStateInactive; n <= HsStateNotPresent; n++ {
			if _, seen := prev[n]; seen || !allowedHs[s][n] {
				continue
			}
			prev[n] = s
			if n == to {
				var path []HsState
				for c := to; c != from; c = prev[c] {
					path = append([]HsState{c}, path...)
				}
				return path
			}
			queue = append(queue, n)
		}
	}
	return []HsState{to} // unreachable: the table is strongly connected
}

// MState is an AdvancedTCA FRU operational state (PICMG 3.0 §3.2.4): M0..M7.
type MState uint8

// AdvancedTCA M-states.
const (
	M0 MState = iota // not installed
	M1               // inactive
	M2               // activation request
	M3               // activation in progress
	M4               // active
	M5               // deactivation request
	M6               // deactivation in progress
	M7               // communication lost
	// MStateUnknown says the previous M-state is not known (a poll, not an
	// event).
	MStateUnknown MState = 0xFF
)

// String prints "M0".."M7".
func (m MState) String() string {
	if m <= M7 {
		return "M" + strconv.Itoa(int(m))
	}
	if m == MStateUnknown {
		return "M?"
	}
	return "M(" + strconv.Itoa(int(m)) + ")"
}

// HsStateFromMState maps an ATCA M-state to the HPI hot-swap state (HPI to
// AdvancedTCA mapping): M0 NOT_PRESENT, M1 INACTIVE, M2/M3
// INSERTION_PENDING, M4 ACTIVE, M5/M6 EXTRACTION_PENDING. M7 has no HPI
// state of its own (the state is kept and the resource marked failed), so
// ok is false for M7 and for values that are not M-states.
func HsStateFromMState(m MState) (s HsState, ok bool) {
	switch m {
	case M0:
		return HsStateNotPresent, true
	case M1:
		return HsStateInactive, true
	case M2, M3:
		return HsStateInsertionPending, true
	case M4:
		return HsStateActive, true
	case M5, M6:
		return HsStateExtractionPending, true
	}
	return 0, false
}

// Timeout is SaHpiTimeoutT for the auto-insert and auto-extract timeouts:
// a duration, TimeoutImmediate or TimeoutBlock.
type Timeout time.Duration

// SaHpiTimeoutT special values.
const (
	TimeoutImmediate Timeout = 0  // SAHPI_TIMEOUT_IMMEDIATE
	TimeoutBlock     Timeout = -1 // SAHPI_TIMEOUT_BLOCK
)

// String prints IMMEDIATE, BLOCK or the duration.
func (t Timeout) String() string {
	switch {
	case t == TimeoutImmediate:
		return "IMMEDIATE"
	case t < 0:
		return "BLOCK"
	}
	return time.Duration(t).String()
}

// IntentAction is what an Intent asks the caller to do over IPMI.
type IntentAction uint8

// IntentAction values. Activate/Deactivate are Set FRU Activation
// (activate/deactivate) for a FRU in M2/M5 (HPI saHpiResourceActiveSet and
// saHpiResourceInactiveSet, or the auto policy); RequestInsertion and
// RequestExtraction are saHpiHotSwapActionRequest from INACTIVE and ACTIVE.
const (
	IntentActivate IntentAction = iota
	IntentDeactivate
	IntentRequestInsertion
	IntentRequestExtraction
)

// String names the action.
func (a IntentAction) String() string {
	switch a {
	case IntentActivate:
		return "ACTIVATE"
	case IntentDeactivate:
		return "DEACTIVATE"
	case IntentRequestInsertion:
		return "REQUEST_INSERTION"
	case IntentRequestExtraction:
		return "REQUEST_EXTRACTION"
	}
	return "UNKNOWN(" + strconv.Itoa(int(a)) + ")"
}

// Intent is an action the model wants carried out; the Domain never performs
// it. The caller executes it over IPMI, reads the state back and reports
// what happened through ObserveMState.
type Intent struct {
	Resource ResourceID
	Entity   EntityPath
	Action   IntentAction
	// Cause is the cause the resulting transition should carry
	// (AUTO_POLICY for timeouts, EXT_SOFTWARE for requests).
	Cause HsCause
	// State is the hot-swap state the intent was made in; an intent is stale
	// once the resource has left it.
	State HsState
	// Epoch identifies the stay in State the intent was made in (see
	// Domain.IntentStale): a resource that leaves State and comes back is in
	// a new epoch.
	Epoch uint64
	At    time.Time
}

// HotSwapStatus is the hot-swap view of one FRU resource.
type HotSwapStatus struct {
	State HsState
	// Known is false until the first M-state observation.
	Known bool
	// LastMState is the last observed M-state (MStateUnknown before any).
	LastMState MState
	Failed     bool
	// PolicyCanceled is set by HotSwapPolicyCancel while pending.
	PolicyCanceled bool
	// Deadline is when the auto policy fires; zero when no timer runs.
	Deadline           time.Time
	AutoExtractTimeout Timeout
	// AutoInsertTimeout is the auto-insert timeout that applies to this
	// resource (IMMEDIATE with HsCapabilityAutoinsertImmediate).
	AutoInsertTimeout Timeout
	// Epoch changes whenever the resource enters a hot-swap state and when
	// communication is lost (M7) or restored; Intent.Epoch is compared with
	// it.
	Epoch uint64
}
