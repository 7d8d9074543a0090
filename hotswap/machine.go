package hotswap

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	secureerase "hpiagent/secure-erase"
)

// Phase is where a workflow stands.
type Phase string

// Workflow phases.
const (
	// PhaseHolding: the FRU is to be held (Locked for an insertion,
	// Deactivation-Locked for an extraction) before anything else.
	PhaseHolding Phase = "holding"
	// PhaseApplying: members apply their policy hooks (insertion).
	PhaseApplying Phase = "applying"
	// PhaseActivating: every required member acked; the FRU is being
	// unlocked, activated and confirmed in M4.
	PhaseActivating Phase = "activating"
	// PhaseRevoking: members revoke their policies (extraction, surprise
	// removal, and an aborted insertion whose members had applied).
	PhaseRevoking Phase = "revoking"
	// PhaseWiping: the owner wipes the FRU's sensitive state.
	PhaseWiping Phase = "wiping"
	// PhaseWipeFailed: the wipe failed; the FRU stays held
	// (Deactivation-Locked, M4) with an alarm until an operator retries or
	// overrides.
	PhaseWipeFailed Phase = "wipe_failed"
	// PhaseDeactivating: wiped (or overridden); the FRU is being
	// deactivated and confirmed in M1.
	PhaseDeactivating Phase = "deactivating"
	// PhaseDone: finished; Outcome says how.
	PhaseDone Phase = "done"
)

// Outcomes of finished workflows.
const (
	OutcomeActivated  = "activated"
	OutcomeExtracted  = "extracted"
	OutcomeRemoved    = "removed"
	OutcomeAborted    = "aborted"
	OutcomeSuperseded = "superseded"
)

// maxFinished bounds how many finished workflows the Machine keeps.
const maxFinished = 256

// Override records an operator's override of a failed wipe.
type Override struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
	Index  uint64 `json:"index"`
}

// Workflow is the replicated state of one workflow.
type Workflow struct {
	ID          string   `json:"id"`
	Kind        Kind     `json:"kind"`
	FRU         FRU      `json:"fru"`
	DeviceClass string   `json:"device_class,omitempty"`
	Required    []string `json:"required"`
	Owner       string   `json:"owner,omitempty"`
	MaxAttempts int      `json:"max_attempts"`
	Actor       string   `json:"actor,omitempty"`
	StartIndex  uint64   `json:"start_index"`
	Phase       Phase    `json:"phase"`
	// Attempt is the current attempt of the step in progress (1-based).
	Attempt int `json:"attempt"`
	// Hold is the hold policy confirmed by the held entry.
	Hold string `json:"hold,omitempty"`
	// Applied maps each member that applied its hooks to its digest.
	Applied map[string]string `json:"applied,omitempty"`
	// Refused maps members that refused (or could not be reached) in the
	// current attempt to the reason.
	Refused map[string]string `json:"refused,omitempty"`
	// RevokeSet are the members that must revoke; Revoked their digests.
	RevokeSet []string          `json:"revoke_set,omitempty"`
	Revoked   map[string]string `json:"revoked,omitempty"`
	// Aborting is set when an insertion is being rolled back.
	Aborting bool `json:"aborting,omitempty"`
	// ActivationRequests and DeactivationRequests count hardware requests
	// recorded (a new leader re-checks the hardware before repeating one).
	ActivationRequests   int `json:"activation_requests,omitempty"`
	DeactivationRequests int `json:"deactivation_requests,omitempty"`
	// WipeStarts counts wipe attempts; Certificate is the digest of the
	// certificate of the verified wipe; WipeError the last failure.
	WipeStarts  int       `json:"wipe_starts,omitempty"`
	Certificate string    `json:"certificate,omitempty"`
	WipeError   string    `json:"wipe_error,omitempty"`
	Override    *Override `json:"override,omitempty"`
	// Certificates are the signed certificates of the verified wipe (a
	// JSON array, digest Certificate) when the wipe result carried them,
	// and CertificateSigner the PKIX public key they verify with (the
	// owner's peer key). Every member holds them; see
	// Machine.WipeCertificates.
	Certificates      json.RawMessage `json:"certificates,omitempty"`
	CertificateSigner []byte          `json:"certificate_signer,omitempty"`
	// MState is the M-state read back by the confirming entry.
	MState *uint8 `json:"mstate,omitempty"`
	// Alarm is set while the workflow needs attention (a member refused or
	// is down, the wipe failed, the workflow was aborted).
	Alarm string `json:"alarm,omitempty"`
	// Outcome and Reason say how a finished workflow ended.
	Outcome  string `json:"outcome,omitempty"`
	Reason   string `json:"reason,omitempty"`
	EndIndex uint64 `json:"end_index,omitempty"`
	// LastIndex is the last entry applied to this workflow.
	LastIndex uint64 `json:"last_index"`
}

// Active reports whether the workflow is still in flight.
func (w *Workflow) Active() bool { return w.Phase != PhaseDone }

func (w *Workflow) clone() Workflow {
	c := *w
	c.Required = slices.Clone(w.Required)
	c.RevokeSet = slices.Clone(w.RevokeSet)
	c.Applied = maps.Clone(w.Applied)
	c.Refused = maps.Clone(w.Refused)
	c.Revoked = maps.Clone(w.Revoked)
	if w.Override != nil {
		o := *w.Override
		c.Override = &o
	}
	if w.MState != nil {
		m := *w.MState
		c.MState = &m
	}
	c.Certificates = slices.Clone(w.Certificates)
	c.CertificateSigner = slices.Clone(w.CertificateSigner)
	return c
}

// Result is what Machine.Apply returns for one entry (the FSM result the
// proposer receives).
type Result struct {
	Index    uint64    `json:"index"`
	Type     EntryType `json:"type"`
	Workflow string    `json:"workflow"`
	// Accepted is true when the entry changed state.
	Accepted bool `json:"accepted"`
	// Note says what the entry did or why it was not accepted.
	Note  string `json:"note,omitempty"`
	Phase Phase  `json:"phase,omitempty"`
	// Alarm is the workflow's alarm after this entry; AlarmRaised is true
	// when this entry raised it.
	Alarm       string `json:"alarm,omitempty"`
	AlarmRaised bool   `json:"alarm_raised,omitempty"`
	// Outcome is set when this entry finished the workflow.
	Outcome string `json:"outcome,omitempty"`
	// Err is set when the payload could not be decoded; nothing changed.
	Err error `json:"-"`
}

// Machine is the replicated hot-swap state machine. It does no I/O and is
// deterministic: the same entries in the same order give the same state on
// every node. It implements the cluster's FSM interface (Apply, Snapshot,
// Restore). Safe for concurrent use.
type Machine struct {
	mu        sync.Mutex
	workflows map[string]*Workflow
	// active maps FRU keys to the workflow in flight for them.
	active    map[string]string
	lastIndex uint64
}

// NewMachine returns an empty Machine.
func NewMachine() *Machine {
	return &Machine{workflows: make(map[string]*Workflow), active: make(map[string]string)}
}

// Apply decodes and applies the log entry at index. It returns a Result
// (Err set for an undecodable payload, which changes nothing). An index at
// or below the last applied one is ignored, so re-delivery is harmless.
func (m *Machine) Apply(index uint64, payload []byte) any {
	e, err := DecodeEntry(payload)
	if err != nil {
		return Result{Index: index, Err: fmt.Errorf("applying hot-swap entry %d: %w", index, err)}
	}
	return m.ApplyEntry(index, e)
}

// ApplyEntry applies an already decoded entry (validated again here).
func (m *Machine) ApplyEntry(index uint64, e Entry) Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := Result{Index: index, Type: e.Type, Workflow: e.Workflow}
	if err := e.Validate(); err != nil {
		r.Err = err
		return r
	}
	if index != 0 && index <= m.lastIndex {
		r.Note = "already applied"
		return r
	}
	if index != 0 {
		m.lastIndex = index
	}
	if e.Type == TypeWorkflowStarted {
		m.applyStarted(index, e, &r)
		return r
	}
	w := m.workflows[e.Workflow]
	if w == nil {
		r.Note = "ignored: no such workflow"
		return r
	}
	if w.Phase == PhaseDone {
		r.Note = "ignored: workflow finished (" + w.Outcome + ")"
		r.Phase = w.Phase
		return r
	}
	hadAlarm := w.Alarm
	switch e.Type {
	case TypeHeld:
		applyHeld(w, e, &r)
	case TypeHookApplied:
		applyHookApplied(w, e, &r)
	case TypeHookRefused:
		applyRefused(w, PhaseApplying, e, &r)
	case TypeActivationRequested:
		if w.Phase != PhaseActivating {
			r.Note = "ignored: not activating"
			break
		}
		w.ActivationRequests++
		r.Accepted, r.Note = true, "activation requested"
	case TypeActivationConfirmed:
		if w.Phase != PhaseActivating || !allIn(w.Required, w.Applied) {
			r.Note = "ignored: not activating"
			break
		}
		w.MState = e.MState
		m.finish(w, index, OutcomeActivated, "")
		r.Accepted, r.Note = true, "activation confirmed"
	case TypePoliciesRevoked:
		applyRevoked(w, e, &r)
		m.finalize(w, index)
	case TypeRevokeRefused:
		applyRefused(w, PhaseRevoking, e, &r)
	case TypeWipeStarted:
		if w.Phase != PhaseWiping {
			r.Note = "ignored: not wiping"
			break
		}
		w.WipeStarts++
		r.Accepted, r.Note = true, "wipe started"
	case TypeWipeResult:
		applyWipeResult(w, e, &r)
	case TypeDeactivationRequested:
		if w.Phase != PhaseDeactivating {
			r.Note = "ignored: not deactivating"
			break
		}
		w.DeactivationRequests++
		r.Accepted, r.Note = true, "deactivation requested"
	case TypeDeactivationConfirmed:
		if w.Phase != PhaseDeactivating || (w.Certificate == "" && w.Override == nil) {
			r.Note = "ignored: not deactivating"
			break
		}
		w.MState = e.MState
		m.finish(w, index, OutcomeExtracted, "")
		r.Accepted, r.Note = true, "deactivation confirmed"
	case TypeRetry:
		applyRetry(w, e, &r)
	case TypeAborted:
		m.applyAborted(w, index, e, &r)
	case TypeOverrideGranted:
		if w.Phase != PhaseWipeFailed {
			r.Note = "ignored: an override applies only to a failed wipe"
			break
		}
		w.Override = &Override{Actor: e.Actor, Reason: e.Reason, Index: index}
		w.Phase = PhaseDeactivating
		w.Alarm = ""
		r.Accepted, r.Note = true, "override granted by "+e.Actor
	}
	if r.Accepted {
		w.LastIndex = index
	}
	r.Phase = w.Phase
	r.Alarm = w.Alarm
	r.AlarmRaised = w.Alarm != "" && w.Alarm != hadAlarm
	if w.Phase == PhaseDone {
		r.Outcome = w.Outcome
	}
	return r
}

func (m *Machine) applyStarted(index uint64, e Entry, r *Result) {
	if w, ok := m.workflows[e.Workflow]; ok {
		r.Note = "duplicate: workflow exists"
		r.Phase = w.Phase
		return
	}
	key := e.FRU.Key()
	if cur, busy := m.active[key]; busy {
		cw := m.workflows[cur]
		if e.Kind != KindSurprise || cw.Kind == KindSurprise {
			r.Note = "refused: workflow " + cur + " is in flight for FRU " + key
			r.Phase = cw.Phase
			return
		}
		// The FRU is gone: whatever was in flight cannot finish.
		m.finish(cw, index, OutcomeSuperseded, "superseded by surprise removal "+e.Workflow)
	}
	w := &Workflow{
		ID: e.Workflow, Kind: e.Kind, FRU: *e.FRU, DeviceClass: e.DeviceClass,
		Required: sortedUnique(e.Required), Owner: e.Owner, MaxAttempts: e.MaxAttempts,
		Actor: e.Actor, StartIndex: index, Attempt: 1, LastIndex: index,
		Applied: map[string]string{}, Refused: map[string]string{}, Revoked: map[string]string{},
	}
	if e.Kind == KindSurprise {
		w.Phase = PhaseRevoking
		w.RevokeSet = slices.Clone(w.Required)
	} else {
		w.Phase = PhaseHolding
	}
	m.workflows[w.ID] = w
	m.active[key] = w.ID
	r.Accepted, r.Note, r.Phase = true, string(e.Kind)+" started", w.Phase
}

func applyHeld(w *Workflow, e Entry, r *Result) {
	if w.Phase != PhaseHolding {
		r.Note = "ignored: already held"
		return
	}
	want := HoldLocked
	if w.Kind.extracts() {
		want = HoldDeactivationLocked
	}
	if e.Policy != want && e.Policy != HoldNotActivating {
		r.Note = "ignored: hold " + e.Policy + " does not fit a " + string(w.Kind)
		return
	}
	w.Hold = e.Policy
	if w.Kind == KindInsertion {
		w.Phase = PhaseApplying
	} else {
		w.Phase = PhaseRevoking
		w.RevokeSet = slices.Clone(w.Required)
	}
	r.Accepted, r.Note = true, "held ("+e.Policy+")"
}

func applyHookApplied(w *Workflow, e Entry, r *Result) {
	if !slices.Contains(w.Required, e.Member) {
		r.Note = "ignored: " + e.Member + " is not a required member"
		return
	}
	if d, ok := w.Applied[e.Member]; ok {
		r.Note = "duplicate ack"
		if d != e.Digest {
			r.Note = "duplicate ack with another digest (first kept)"
		}
		return
	}
	if w.Phase != PhaseApplying {
		r.Note = "ignored: not applying"
		return
	}
	w.Applied[e.Member] = e.Digest
	delete(w.Refused, e.Member)
	r.Accepted, r.Note = true, "hooks applied by "+e.Member
	if allIn(w.Required, w.Applied) {
		w.Phase = PhaseActivating
		w.Alarm = ""
		r.Note += "; every required member acked"
	}
}

func applyRefused(w *Workflow, phase Phase, e Entry, r *Result) {
	set, done := w.Required, w.Applied
	if phase == PhaseRevoking {
		set, done = w.RevokeSet, w.Revoked
	}
	switch {
	case w.Phase != phase:
		r.Note = "ignored: not " + string(phase)
	case !slices.Contains(set, e.Member):
		r.Note = "ignored: " + e.Member + " is not a required member"
	case done[e.Member] != "":
		r.Note = "ignored: " + e.Member + " already done"
	case e.Attempt != w.Attempt:
		r.Note = fmt.Sprintf("ignored: refusal of attempt %d, now at %d", e.Attempt, w.Attempt)
	case w.Refused[e.Member] != "":
		r.Note = "duplicate refusal"
	default:
		w.Refused[e.Member] = e.Reason
		w.Alarm = alarmText(w)
		r.Accepted, r.Note = true, e.Member+" refused: "+e.Reason
	}
}

func alarmText(w *Workflow) string {
	names := slices.Sorted(maps.Keys(w.Refused))
	what := "apply its policies"
	hold := "FRU stays locked in M1"
	if w.Phase == PhaseRevoking {
		what, hold = "revoke its policies", "FRU stays held"
	}
	return fmt.Sprintf("%s %s: %s did not %s (attempt %d of %d); %s",
		w.Kind, w.FRU.Key(), strings.Join(names, ", "), what, w.Attempt, w.MaxAttempts, hold)
}

func applyRevoked(w *Workflow, e Entry, r *Result) {
	if !slices.Contains(w.RevokeSet, e.Member) {
		r.Note = "ignored: " + e.Member + " has nothing to revoke here"
		return
	}
	if _, ok := w.Revoked[e.Member]; ok {
		r.Note = "duplicate revocation"
		return
	}
	if w.Phase != PhaseRevoking {
		r.Note = "ignored: not revoking"
		return
	}
	w.Revoked[e.Member] = e.Digest
	delete(w.Refused, e.Member)
	r.Accepted, r.Note = true, "policies revoked by "+e.Member
	if !allIn(w.RevokeSet, w.Revoked) {
		return
	}
	switch {
	case w.Aborting:
		// finish is done by the caller through the phase check below.
		w.Phase = PhaseDone
	case w.Kind == KindSurprise:
		w.Phase = PhaseDone
		w.Alarm = ""
	default:
		w.Phase = PhaseWiping
		w.Alarm = ""
		w.Attempt = 1
	}
	r.Note += "; every member revoked"
}

func applyWipeResult(w *Workflow, e Entry, r *Result) {
	if w.Phase != PhaseWiping {
		r.Note = "ignored: not wiping"
		return
	}
	if w.WipeStarts == 0 {
		r.Note = "ignored: no wipe was started"
		return
	}
	if e.Attempt != w.Attempt {
		r.Note = fmt.Sprintf("ignored: result of attempt %d, now at %d", e.Attempt, w.Attempt)
		return
	}
	if e.OK {
		if err := checkCertificateNodes(w, e); err != nil {
			r.Err = err
			r.Note = "refused: " + err.Error()
			return
		}
		w.Certificate = e.Digest
		w.Certificates = slices.Clone(e.Certificates)
		w.CertificateSigner = slices.Clone(e.SignerKey)
		w.WipeError = ""
		w.Phase = PhaseDeactivating
		r.Accepted, r.Note = true, "wiped and verified"
		return
	}
	w.WipeError = e.Reason
	w.Phase = PhaseWipeFailed
	w.Alarm = fmt.Sprintf("%s %s: wipe failed: %s; FRU stays held (Deactivation-Locked, M4)", w.Kind, w.FRU.Key(), e.Reason)
	r.Accepted, r.Note = true, "wipe failed"
}

// checkCertificateNodes refuses certificates (already checked by
// Entry.Validate) that another node than the workflow's owner issued.
func checkCertificateNodes(w *Workflow, e Entry) error {
	if len(e.Certificates) == 0 {
		return nil
	}
	certs, err := secureerase.DecodeCertificates(e.Certificates)
	if err != nil {
		return fmt.Errorf("hot-swap entry %s of workflow %s: %w", e.Type, e.Workflow, err)
	}
	for _, c := range certs {
		if c.Node != w.Owner {
			return fmt.Errorf("hot-swap entry %s of workflow %s: certificate %s was issued by %q, not by the owner %s: %w",
				e.Type, e.Workflow, c.ID, truncate(c.Node, 64), w.Owner, secureerase.ErrBadCertificates)
		}
	}
	return nil
}

func applyRetry(w *Workflow, e Entry, r *Result) {
	if e.Attempt != w.Attempt {
		r.Note = fmt.Sprintf("ignored: retry of attempt %d, now at %d", e.Attempt, w.Attempt)
		return
	}
	if w.Attempt >= w.MaxAttempts {
		r.Note = "ignored: no attempts left"
		return
	}
	switch w.Phase {
	case PhaseApplying, PhaseRevoking:
		if len(w.Refused) == 0 {
			r.Note = "ignored: nothing refused"
			return
		}
		w.Refused = map[string]string{}
	case PhaseWipeFailed:
		w.Phase = PhaseWiping
	default:
		r.Note = "ignored: nothing to retry"
		return
	}
	w.Attempt++
	w.Alarm = ""
	r.Accepted, r.Note = true, fmt.Sprintf("attempt %d", w.Attempt)
}

func (m *Machine) applyAborted(w *Workflow, index uint64, e Entry, r *Result) {
	switch w.Phase {
	case PhaseActivating, PhaseDeactivating:
		if e.Actor == "" {
			r.Note = "refused: only an operator can abort a hardware step in flight"
			return
		}
		// An operator gives up on a FRU whose hardware step keeps failing.
		// Nothing is rolled back: the FRU's state is whatever the hardware
		// did, and the alarm says to check it.
		r.Accepted, r.Note = true, "aborted by "+e.Actor+" during "+string(w.Phase)
		w.Alarm = fmt.Sprintf("%s %s aborted by %s during %s: %s; check the FRU's state", w.Kind, w.FRU.Key(), e.Actor, w.Phase, e.Reason)
		m.finish(w, index, OutcomeAborted, e.Reason)
		return
	case PhaseRevoking:
		if w.Aborting {
			// Rolling back failed too: give up; the FRU stays locked.
			r.Accepted, r.Note = true, "aborted while rolling back"
			w.Alarm = fmt.Sprintf("%s %s aborted: %s; FRU stays locked", w.Kind, w.FRU.Key(), e.Reason)
			m.finish(w, index, OutcomeAborted, w.Reason+"; "+e.Reason)
			return
		}
	}
	r.Accepted = true
	w.Reason = e.Reason
	if w.Kind == KindInsertion && len(w.Applied) > 0 && w.Phase != PhaseRevoking {
		// Roll back what members applied; the FRU stays locked.
		w.Aborting = true
		w.Phase = PhaseRevoking
		w.RevokeSet = slices.Sorted(maps.Keys(w.Applied))
		w.Refused = map[string]string{}
		w.Attempt = 1
		w.Alarm = fmt.Sprintf("%s %s aborted: %s; revoking, FRU stays locked", w.Kind, w.FRU.Key(), e.Reason)
		r.Note = "aborted; revoking applied policies"
		return
	}
	w.Alarm = fmt.Sprintf("%s %s aborted: %s; FRU stays held", w.Kind, w.FRU.Key(), e.Reason)
	m.finish(w, index, OutcomeAborted, e.Reason)
	r.Note = "aborted"
}

// finish ends w (its phase is set to done) and frees its FRU.
func (m *Machine) finish(w *Workflow, index uint64, outcome, reason string) {
	w.Phase = PhaseDone
	w.Outcome = outcome
	if reason != "" {
		w.Reason = reason
	}
	w.EndIndex = index
	w.LastIndex = index
	if m.active[w.FRU.Key()] == w.ID {
		delete(m.active, w.FRU.Key())
	}
	m.evict()
}

// finalize completes workflows whose phase became done inside a helper.
func (m *Machine) finalize(w *Workflow, index uint64) {
	if w.Phase == PhaseDone && w.Outcome == "" {
		switch {
		case w.Aborting:
			m.finish(w, index, OutcomeAborted, "")
		case w.Kind == KindSurprise:
			m.finish(w, index, OutcomeRemoved, "")
		}
	}
}

func (m *Machine) evict() {
	var done []*Workflow
	for _, w := range m.workflows {
		if w.Phase == PhaseDone {
			done = append(done, w)
		}
	}
	if len(done) <= maxFinished {
		return
	}
	sort.Slice(done, func(i, j int) bool {
		if done[i].EndIndex != done[j].EndIndex {
			return done[i].EndIndex < done[j].EndIndex
		}
		return done[i].ID < done[j].ID
	})
	for _, w := range done[:len(done)-maxFinished] {
		delete(m.workflows, w.ID)
	}
}

func allIn(names []string, m map[string]string) bool {
	for _, n := range names {
		if m[n] == "" {
			return false
		}
	}
	return true
}

// Workflow returns a copy of workflow id.
func (m *Machine) Workflow(id string) (Workflow, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.workflows[id]
	if !ok {
		return Workflow{}, false
	}
	return w.clone(), true
}

// Workflows returns copies of every workflow the Machine holds (in flight
// and the most recent finished ones), in start order.
func (m *Machine) Workflows() []Workflow {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Workflow, 0, len(m.workflows))
	for _, w := range m.workflows {
		out = append(out, w.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartIndex < out[j].StartIndex })
	return out
}

// ActiveFor returns the ID of the workflow in flight for fru.
func (m *Machine) ActiveFor(fru FRU) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.active[fru.Key()]
	return id, ok
}

// LastIndex is the index of the last applied entry.
func (m *Machine) LastIndex() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastIndex
}

type snapshot struct {
	V         int        `json:"v"`
	LastIndex uint64     `json:"last_index"`
	Workflows []Workflow `json:"workflows"`
}

// Snapshot returns the Machine's whole state.
func (m *Machine) Snapshot() ([]byte, error) {
	s := snapshot{V: EntryVersion, LastIndex: m.LastIndex(), Workflows: m.Workflows()}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("snapshotting hot-swap workflows: %w", err)
	}
	return b, nil
}

// Restore replaces the Machine's state by a snapshot; nil resets it. A
// snapshot that does not decode leaves the state as it was.
func (m *Machine) Restore(b []byte) error {
	if b == nil {
		m.mu.Lock()
		m.workflows, m.active, m.lastIndex = map[string]*Workflow{}, map[string]string{}, 0
		m.mu.Unlock()
		return nil
	}
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("restoring hot-swap workflows: %w", err)
	}
	if s.V != EntryVersion {
		return fmt.Errorf("restoring hot-swap workflows: unsupported snapshot version %d", s.V)
	}
	wfs := make(map[string]*Workflow, len(s.Workflows))
	active := make(map[string]string)
	for i := range s.Workflows {
		w := s.Workflows[i].clone()
		if w.ID == "" || wfs[w.ID] != nil {
			return fmt.Errorf("restoring hot-swap workflows: empty or duplicate workflow ID %q", w.ID)
		}
		for _, mp := range []*map[string]string{&w.Applied, &w.Refused, &w.Revoked} {
			if *mp == nil {
				*mp = map[string]string{}
			}
		}
		if len(w.Certificates) != 0 && string(DigestOf(w.Certificates)) != w.Certificate {
			return fmt.Errorf("restoring hot-swap workflows: the certificates of workflow %s do not match its digest", w.ID)
		}
		if w.Active() {
			if other, busy := active[w.FRU.Key()]; busy {
				return fmt.Errorf("restoring hot-swap workflows: workflows %s and %s both in flight for FRU %s", other, w.ID, w.FRU.Key())
			}
			active[w.FRU.Key()] = w.ID
		}
		wfs[w.ID] = &w
	}
	m.mu.Lock()
	m.workflows, m.active, m.lastIndex = wfs, active, s.LastIndex
	m.mu.Unlock()
	return nil
}

// Alarms returns the alarms of the workflows in flight, in start order.
// Every node has them (they are replicated state), so any node's API can
// show them, whoever leads.
func (m *Machine) Alarms() []AlarmInfo {
	m.mu.Lock()
	ws := make([]*Workflow, 0, len(m.active))
	for _, id := range m.active {
		if w := m.workflows[id]; w.Alarm != "" {
			ws = append(ws, w)
		}
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].StartIndex < ws[j].StartIndex })
	var out []AlarmInfo
	for _, w := range ws {
		out = append(out, AlarmInfo{Workflow: w.ID, FRU: w.FRU, Text: w.Alarm})
	}
	m.mu.Unlock()
	return out
}

// WipeCertificates is the signed certificates of one verified wipe as the
// log recorded them.
type WipeCertificates struct {
	// Workflow is the extraction whose wipe they certify.
	Workflow string
	// FRU is the wiped FRU; Owner the member that wiped it and signed.
	FRU   FRU
	Owner string
	// Digest is the digest the log recorded for them.
	Digest string
	// Certificates is the JSON array of secure-erase certificates, as
	// the owner issued it.
	Certificates json.RawMessage
	// SignerKey is the PKIX public key they verify with.
	SignerKey []byte
}

// WipeCertificates returns the certificates of every verified wipe whose
// result carried them, of the workflows the Machine still holds (those in
// flight and the most recent finished ones: older finished workflows are
// dropped with their certificates, so a member that must keep every
// certificate copies them to its own store), in start order.
//
// Why the log carries them rather than members fetching them from the
// owner when asked: the FRU being removed is often the owner's own blade,
// and the evidence of its wipe must outlive it; the log survives any
// minority of members, and a restarted member gets them back from the
// log or a snapshot.
func (m *Machine) WipeCertificates() []WipeCertificates {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ws []*Workflow
	for _, w := range m.workflows {
		if len(w.Certificates) != 0 {
			ws = append(ws, w)
		}
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].StartIndex < ws[j].StartIndex })
	out := make([]WipeCertificates, 0, len(ws))
	for _, w := range ws {
		out = append(out, WipeCertificates{Workflow: w.ID, FRU: w.FRU, Owner: w.Owner, Digest: w.Certificate,
			Certificates: slices.Clone(w.Certificates), SignerKey: slices.Clone(w.CertificateSigner)})
	}
	return out
}
