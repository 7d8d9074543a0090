package fencing

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
)

// Phase is where a target stands in the fencing state machine.
type Phase string

// Target phases.
const (
	PhaseIdle      Phase = "idle"      // not fenced, nothing in flight
	PhaseFencing   Phase = "fencing"   // a fence operation is in flight
	PhaseFenced    Phase = "fenced"    // confirmed off; stays so until unfenced
	PhaseUnfencing Phase = "unfencing" // an unfence is in flight
	PhaseFailed    Phase = "failed"    // every level failed; the target's state is unknown
)

// maxResults bounds the result history kept per operation.
const maxResults = 64

// Result is one recorded level execution outcome.
type Result struct {
	Index    uint64 `json:"index"`
	Exec     uint64 `json:"exec"`
	Level    int    `json:"level"`
	Attempt  int    `json:"attempt"`
	OK       bool   `json:"ok"`
	Readback string `json:"readback,omitempty"`
	Err      string `json:"err,omitempty"`
}

// Operation is one fence operation of a target.
type Operation struct {
	ID           string      `json:"id"`
	Action       Action      `json:"action"`
	Reason       string      `json:"reason,omitempty"`
	Source       Source      `json:"source"`
	Requester    string      `json:"requester,omitempty"`
	Plan         []LevelPlan `json:"plan"`
	RequestIndex uint64      `json:"request_index"`
	// Level and Attempt are the step in progress (or the last one tried).
	Level   int `json:"level"`
	Attempt int `json:"attempt"`
	// Exec is the log index of the LevelStarted entry of the execution in
	// progress; 0 when the current step has not been started.
	Exec uint64 `json:"exec,omitempty"`
	// FencedBy is the level whose confirmed result fenced the target, or -1.
	FencedBy int `json:"fenced_by"`
	// Results are the recorded executions, oldest first (at most 64).
	Results []Result `json:"results,omitempty"`
	// Dedups counts requests folded into this operation.
	Dedups int `json:"dedups,omitempty"`
}

// Unfence is one unfence operation.
type Unfence struct {
	ID           string `json:"id"`
	Requester    string `json:"requester"`
	Reason       string `json:"reason,omitempty"`
	RequestIndex uint64 `json:"request_index"`
	Exec         uint64 `json:"exec,omitempty"`
	// From is the phase the target was in when the unfence was requested;
	// a failed unfence returns there.
	From Phase  `json:"from"`
	Err  string `json:"err,omitempty"`
}

// TargetState is the state of one target (cluster node).
type TargetState struct {
	Target string     `json:"target"`
	Phase  Phase      `json:"phase"`
	Fence  *Operation `json:"fence,omitempty"`
	// Unfence is the unfence in flight or the last one.
	Unfence *Unfence `json:"unfence,omitempty"`
	// Pending is a fence requested while an unfence was in flight; it
	// starts when the unfence ends.
	Pending *Operation `json:"pending,omitempty"`
	// Dedups counts fence requests that found an operation in flight or
	// the target already fenced; Ignored counts entries that did not apply
	// (stale results, wrong operation).
	Dedups    uint64 `json:"dedups,omitempty"`
	Ignored   uint64 `json:"ignored,omitempty"`
	LastIndex uint64 `json:"last_index"`
}

func (s *TargetState) clone() TargetState {
	c := *s
	c.Fence = s.Fence.clone()
	c.Pending = s.Pending.clone()
	if s.Unfence != nil {
		u := *s.Unfence
		c.Unfence = &u
	}
	return c
}

func (o *Operation) clone() *Operation {
	if o == nil {
		return nil
	}
	c := *o
	c.Plan = slices.Clone(o.Plan)
	c.Results = slices.Clone(o.Results)
	return &c
}

// Outcome is what Machine.Apply returns for one entry (as the FSM result the
// proposer receives).
type Outcome struct {
	Index  uint64 `json:"index"`
	Kind   Kind   `json:"kind"`
	Target string `json:"target"`
	// ID is the operation the entry was applied to (for a deduplicated
	// request: the operation in flight, not the request's own ID).
	ID string `json:"id"`
	// Accepted is true when the entry changed the target's state.
	Accepted bool `json:"accepted"`
	// Note says why an entry was not accepted or what it did.
	Note  string `json:"note,omitempty"`
	Phase Phase  `json:"phase"`
	// Done is true when this entry confirmed the fence; Failed when it
	// made every level fail (raise an alarm); Unfenced when it confirmed
	// an unfence.
	Done     bool `json:"done,omitempty"`
	Failed   bool `json:"failed,omitempty"`
	Unfenced bool `json:"unfenced,omitempty"`
	// Err is set when the payload could not be decoded; nothing changed.
	Err error `json:"-"`
}

// Machine is the replicated fencing state machine. It does no I/O and is
// deterministic: the same entries applied in the same order give the same
// state on every node. It implements the cluster's FSM interface (Apply,
// Snapshot, Restore). Safe for concurrent use.
type Machine struct {
	mu        sync.Mutex
	targets   map[string]*TargetState
	lastIndex uint64
	observer  func(Outcome)
}

// Observe sets a function called with the outcome of every entry this
// member applies (after the state changed, outside the Machine's lock), on
// followers as on the leader: the place for audit records, alarms and
// event streams that must see every decision once per member. It must be
// quick and must not call Apply. Set it before the cluster starts.
func (m *Machine) Observe(f func(Outcome)) {
	m.mu.Lock()
	m.observer = f
	m.mu.Unlock()
}

// NewMachine returns an empty Machine.
func NewMachine() *Machine {
	return &Machine{targets: make(map[string]*TargetState)}
}

// Apply decodes and applies the log entry at index. It returns an Outcome
// (with Err set for an undecodable payload, which changes nothing). An
// index at or below the last applied one is ignored, so re-delivery is
// harmless.
func (m *Machine) Apply(index uint64, payload []byte) any {
	c, err := Decode(payload)
	if err != nil {
		return Outcome{Index: index, Err: fmt.Errorf("applying fencing entry %d: %w", index, err)}
	}
	return m.ApplyCommand(index, c)
}

// ApplyCommand applies an already decoded (and validated) command.
func (m *Machine) ApplyCommand(index uint64, c Command) Outcome {
	o, obs := m.apply(index, c)
	if obs != nil && o.Err == nil && o.Note != "already applied" {
		obs(o)
	}
	return o
}

func (m *Machine) apply(index uint64, c Command) (Outcome, func(Outcome)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	obs := m.observer
	o := Outcome{Index: index, Kind: c.Kind, Target: c.Target, ID: c.ID}
	if err := c.Validate(); err != nil {
		o.Err = err
		return o, obs
	}
	if index != 0 && index <= m.lastIndex {
		o.Note = "already applied"
		if t := m.targets[c.Target]; t != nil {
			o.Phase = t.Phase
		}
		return o, obs
	}
	m.lastIndex = index
	t := m.targets[c.Target]
	if t == nil {
		t = &TargetState{Target: c.Target, Phase: PhaseIdle}
		m.targets[c.Target] = t
	}
	t.LastIndex = index
	switch c.Kind {
	case KindFenceRequested:
		applyFenceRequested(t, index, c, &o)
	case KindLevelStarted:
		applyLevelStarted(t, index, c, &o)
	case KindLevelResult:
		applyLevelResult(t, index, c, &o)
	case KindUnfenceRequested:
		applyUnfenceRequested(t, index, c, &o)
	case KindUnfenceStarted:
		applyUnfenceStarted(t, index, c, &o)
	case KindUnfenceResult:
		applyUnfenceResult(t, index, c, &o)
	}
	if !o.Accepted && o.Note != "" && c.Kind != KindFenceRequested {
		t.Ignored++
	}
	o.Phase = t.Phase
	return o, obs
}

func newOperation(index uint64, c Command) *Operation {
	return &Operation{
		ID: c.ID, Action: c.Action, Reason: c.Reason, Source: c.Source, Requester: c.Requester,
		Plan: slices.Clone(c.Plan), RequestIndex: index, Level: 0, Attempt: 1, FencedBy: -1,
	}
}

func applyFenceRequested(t *TargetState, index uint64, c Command, o *Outcome) {
	switch t.Phase {
	case PhaseIdle, PhaseFailed:
		t.Fence = newOperation(index, c)
		t.Phase = PhaseFencing
		o.Accepted = true
		o.Note = "fence started"
	case PhaseFencing:
		t.Fence.Dedups++
		t.Dedups++
		o.ID = t.Fence.ID
		o.Note = "deduplicated: fence " + t.Fence.ID + " in flight"
	case PhaseFenced:
		t.Dedups++
		o.ID = t.Fence.ID
		o.Note = "deduplicated: already fenced by " + t.Fence.ID
	case PhaseUnfencing:
		if t.Pending == nil {
			t.Pending = newOperation(index, c)
			o.Accepted = true
			o.Note = "queued until the unfence in flight ends"
			return
		}
		t.Pending.Dedups++
		t.Dedups++
		o.ID = t.Pending.ID
		o.Note = "deduplicated: fence " + t.Pending.ID + " queued"
	}
}

func applyLevelStarted(t *TargetState, index uint64, c Command, o *Outcome) {
	f := t.Fence
	if t.Phase != PhaseFencing || f == nil || f.ID != c.ID {
		o.Note = "ignored: no such fence in flight"
		return
	}
	if c.Level != f.Level || c.Attempt != f.Attempt {
		o.Note = fmt.Sprintf("ignored: fence is at level %d attempt %d", f.Level, f.Attempt)
		return
	}
	if f.Exec != 0 {
		o.Note = fmt.Sprintf("resumed: execution %d superseded", f.Exec)
	} else {
		o.Note = "level started"
	}
	f.Exec = index
	o.Accepted = true
}

func addResult(f *Operation, r Result) {
	f.Results = append(f.Results, r)
	if len(f.Results) > maxResults {
		f.Results = slices.Clone(f.Results[len(f.Results)-maxResults:])
	}
}

func applyLevelResult(t *TargetState, index uint64, c Command, o *Outcome) {
	f := t.Fence
	if t.Phase != PhaseFencing || f == nil || f.ID != c.ID {
		o.Note = "ignored: no such fence in flight"
		return
	}
	if f.Exec == 0 || c.Exec != f.Exec || c.Level != f.Level || c.Attempt != f.Attempt {
		o.Note = fmt.Sprintf("ignored: stale result of execution %d (current %d)", c.Exec, f.Exec)
		return
	}
	confirmed := c.OK && c.Readback == ReadbackOff
	r := Result{Index: index, Exec: c.Exec, Level: c.Level, Attempt: c.Attempt, OK: confirmed, Readback: c.Readback, Err: c.Err}
	if c.OK && !confirmed {
		r.Err = "success reported without an off read-back (" + c.Readback + ")"
	}
	addResult(f, r)
	o.Accepted = true
	f.Exec = 0
	if confirmed {
		t.Phase = PhaseFenced
		f.FencedBy = f.Level
		o.Done = true
		o.Note = fmt.Sprintf("fenced by level %d (%s)", f.Level, f.Plan[f.Level].Name)
		return
	}
	if f.Attempt < f.Plan[f.Level].Attempts {
		f.Attempt++
		o.Note = fmt.Sprintf("level %d failed, attempt %d next", f.Level, f.Attempt)
		return
	}
	if f.Level+1 < len(f.Plan) {
		f.Level++
		f.Attempt = 1
		o.Note = fmt.Sprintf("level %d exhausted, level %d next", f.Level-1, f.Level)
		return
	}
	t.Phase = PhaseFailed
	o.Failed = true
	o.Note = "every level failed"
}

func applyUnfenceRequested(t *TargetState, index uint64, c Command, o *Outcome) {
	switch t.Phase {
	case PhaseFenced, PhaseFailed:
		t.Unfence = &Unfence{ID: c.ID, Requester: c.Requester, Reason: c.Reason, RequestIndex: index, From: t.Phase}
		t.Phase = PhaseUnfencing
		o.Accepted = true
		o.Note = "unfence started"
	case PhaseUnfencing:
		o.ID = t.Unfence.ID
		o.Note = "deduplicated: unfence " + t.Unfence.ID + " in flight"
	case PhaseFencing:
		o.Note = "refused: a fence is in flight"
	default:
		o.Note = "refused: not fenced"
	}
}

func applyUnfenceStarted(t *TargetState, index uint64, c Command, o *Outcome) {
	u := t.Unfence
	if t.Phase != PhaseUnfencing || u == nil || u.ID != c.ID {
		o.Note = "ignored: no such unfence in flight"
		return
	}
	if u.Exec != 0 {
		o.Note = fmt.Sprintf("resumed: execution %d superseded", u.Exec)
	} else {
		o.Note = "unfence executing"
	}
	u.Exec = index
	o.Accepted = true
}

func applyUnfenceResult(t *TargetState, index uint64, c Command, o *Outcome) {
	u := t.Unfence
	if t.Phase != PhaseUnfencing || u == nil || u.ID != c.ID {
		o.Note = "ignored: no such unfence in flight"
		return
	}
	if u.Exec == 0 || c.Exec != u.Exec {
		o.Note = fmt.Sprintf("ignored: stale result of execution %d (current %d)", c.Exec, u.Exec)
		return
	}
	o.Accepted = true
	u.Exec = 0
	if c.OK && c.Readback == ReadbackOn {
		t.Phase = PhaseIdle
		u.Err = ""
		o.Unfenced = true
		o.Note = "unfenced"
	} else {
		t.Phase = u.From
		u.Err = c.Err
		if c.OK {
			u.Err = "success reported without an on read-back (" + c.Readback + ")"
		}
		if u.Err == "" {
			u.Err = "unfence failed"
		}
		o.Note = "unfence failed: " + u.Err
	}
	if t.Pending != nil {
		t.Fence = t.Pending
		t.Pending = nil
		t.Phase = PhaseFencing
		o.Note += "; queued fence " + t.Fence.ID + " started"
	}
}

// State returns a copy of the state of target.
func (m *Machine) State(target string) (TargetState, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.targets[target]
	if t == nil {
		return TargetState{Target: target, Phase: PhaseIdle}, false
	}
	return t.clone(), true
}

// Targets returns a copy of every target's state, sorted by name.
func (m *Machine) Targets() []TargetState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]TargetState, 0, len(m.targets))
	for _, t := range m.targets {
		out = append(out, t.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Target < out[j].Target })
	return out
}

// LastIndex is the index of the last entry applied.
func (m *Machine) LastIndex() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastIndex
}

type snapshot struct {
	V         int           `json:"v"`
	LastIndex uint64        `json:"last_index"`
	Targets   []TargetState `json:"targets"`
}

// Snapshot encodes the whole state (deterministically: targets sorted).
func (m *Machine) Snapshot() ([]byte, error) {
	ts := m.Targets()
	m.mu.Lock()
	li := m.lastIndex
	m.mu.Unlock()
	b, err := json.Marshal(snapshot{V: CommandVersion, LastIndex: li, Targets: ts})
	if err != nil {
		return nil, fmt.Errorf("encoding fencing snapshot: %w", err)
	}
	return b, nil
}

// Restore replaces the state with a snapshot. A snapshot that does not
// decode or is inconsistent is refused and the state is left unchanged.
func (m *Machine) Restore(b []byte) error {
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("restoring fencing snapshot: %w", err)
	}
	if s.V != CommandVersion {
		return fmt.Errorf("restoring fencing snapshot: version %d, want %d", s.V, CommandVersion)
	}
	targets := make(map[string]*TargetState, len(s.Targets))
	for i := range s.Targets {
		t := s.Targets[i]
		if err := t.check(); err != nil {
			return fmt.Errorf("restoring fencing snapshot: target %q: %w", t.Target, err)
		}
		if _, dup := targets[t.Target]; dup {
			return fmt.Errorf("restoring fencing snapshot: target %q twice", t.Target)
		}
		targets[t.Target] = &t
	}
	m.mu.Lock()
	m.targets = targets
	m.lastIndex = s.LastIndex
	m.mu.Unlock()
	return nil
}

func (o *Operation) check() error {
	if o.ID == "" || len(o.Plan) == 0 || len(o.Plan) > MaxLevels {
		return fmt.Errorf("operation %q with a plan of %d levels", o.ID, len(o.Plan))
	}
	for i, l := range o.Plan {
		if l.Name == "" || l.Attempts < 1 || l.Attempts > MaxAttempts {
			return fmt.Errorf("operation %q: level %d %q with %d attempts", o.ID, i, l.Name, l.Attempts)
		}
	}
	if o.Level < 0 || o.Level >= len(o.Plan) || o.Attempt < 1 || o.Attempt > o.Plan[o.Level].Attempts {
		return fmt.Errorf("operation %q at level %d attempt %d", o.ID, o.Level, o.Attempt)
	}
	if o.FencedBy < -1 || o.FencedBy >= len(o.Plan) {
		return fmt.Errorf("operation %q fenced by level %d", o.ID, o.FencedBy)
	}
	if len(o.Results) > maxResults {
		return fmt.Errorf("operation %q with %d results", o.ID, len(o.Results))
	}
	return nil
}

func (t *TargetState) check() error {
	if t.Target == "" {
		return fmt.Errorf("empty target name")
	}
	if t.Fence != nil {
		if err := t.Fence.check(); err != nil {
			return err
		}
	}
	if t.Pending != nil {
		if err := t.Pending.check(); err != nil {
			return err
		}
		if t.Phase != PhaseUnfencing {
			return fmt.Errorf("pending fence in phase %s", t.Phase)
		}
	}
	switch t.Phase {
	case PhaseIdle:
	case PhaseFencing, PhaseFailed:
		if t.Fence == nil {
			return fmt.Errorf("phase %s without a fence operation", t.Phase)
		}
	case PhaseFenced:
		if t.Fence == nil || t.Fence.FencedBy < 0 {
			return fmt.Errorf("phase fenced without a confirmed fence operation")
		}
	case PhaseUnfencing:
		if t.Unfence == nil || t.Fence == nil {
			return fmt.Errorf("phase unfencing without unfence and fence operations")
		}
		if t.Unfence.From != PhaseFenced && t.Unfence.From != PhaseFailed {
			return fmt.Errorf("unfence from phase %q", t.Unfence.From)
		}
	default:
		return fmt.Errorf("unknown phase %q", t.Phase)
	}
	return nil
}

// StepKind is what the leader must do next for a target.
type StepKind uint8

// Next steps.
const (
	StepNone           StepKind = iota // nothing to do
	StepStartLevel                     // propose LevelStarted for Level/Attempt
	StepExecuteLevel                   // execute Level (Exec started, no result yet), then propose the result
	StepStartUnfence                   // propose UnfenceStarted
	StepExecuteUnfence                 // execute the unfence (Exec started), then propose the result
)

// Step is the next action for a target, derived from its state alone.
type Step struct {
	Kind    StepKind
	Target  string
	ID      string
	Level   int
	Attempt int
	Exec    uint64
	// Levels is, for an unfence, how many levels of the last fence plan
	// may have acted (levels 0..Levels-1 are unfenced in reverse order).
	Levels int
	Plan   []LevelPlan
}

// NextStep says what the leader must do next for t. It is pure.
func NextStep(t TargetState) Step {
	s := Step{Target: t.Target}
	switch t.Phase {
	case PhaseFencing:
		f := t.Fence
		s.ID, s.Level, s.Attempt, s.Exec, s.Plan = f.ID, f.Level, f.Attempt, f.Exec, slices.Clone(f.Plan)
		if f.Exec == 0 {
			s.Kind = StepStartLevel
		} else {
			s.Kind = StepExecuteLevel
		}
	case PhaseUnfencing:
		u := t.Unfence
		s.ID, s.Exec = u.ID, u.Exec
		if t.Fence != nil {
			s.Plan = slices.Clone(t.Fence.Plan)
			s.Levels = len(t.Fence.Plan)
			if t.Fence.FencedBy >= 0 {
				s.Levels = t.Fence.FencedBy + 1
			} else {
				s.Levels = t.Fence.Level + 1
			}
		}
		if u.Exec == 0 {
			s.Kind = StepStartUnfence
		} else {
			s.Kind = StepExecuteUnfence
		}
	}
	return s
}
