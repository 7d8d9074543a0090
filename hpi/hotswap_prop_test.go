package hpi

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// opSource yields the choices that drive a hot-swap scenario: a seeded
// random generator in the property test, fuzz bytes in the fuzz target.
type opSource interface {
	// intn returns a value in [0, n); ok is false when the source is used up.
	intn(n int) (v int, ok bool)
}

type randSource struct {
	r    *rand.Rand
	left int
}

func (s *randSource) intn(n int) (int, bool) {
	if s.left <= 0 {
		return 0, false
	}
	s.left--
	return s.r.IntN(n), true
}

type byteSource struct{ b []byte }

func (s *byteSource) intn(n int) (int, bool) {
	if len(s.b) == 0 {
		return 0, false
	}
	v := int(s.b[0]) % n
	s.b = s.b[1:]
	return v, true
}

// hsModel is what the checker expects of one resource.
type hsModel struct {
	present   bool
	id        ResourceID
	entry     RPTEntry
	known     bool
	state     HsState
	epoch     uint64
	deadline  time.Time // expected HotSwapStatus.Deadline
	autoFired bool      // an AUTO_POLICY intent was issued in this epoch
	canceled  bool      // policy cancelled (or taken over by a request) in this epoch
	trueM     MState    // the M-state the simulated shelf is in
	// lastPub is the state of the last published HOTSWAP event (hasPub).
	lastPub HsState
	hasPub  bool
}

// hsChecker drives a Domain with a scenario and checks the hot-swap
// invariants after every step.
type hsChecker struct {
	t      testing.TB
	d      *Domain
	clock  *fakeClock
	sub    *Subscription
	res    []*hsModel
	lastID uint64
	// intents issued so far, to check staleness after every step.
	intents []Intent
	step    int
	trace   []string
}

func newHsChecker(t testing.TB) *hsChecker {
	c := &fakeClock{t: t0}
	d := NewDomain(Config{Now: c.now, EventLogSize: 64, EventLogOverflow: OverflowOverwrite})
	sub, err := d.Subscribe(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	h := &hsChecker{t: t, d: d, clock: c, sub: sub}
	managed := CapabilityResource | CapabilityRDR | CapabilityFRU | CapabilityManagedHotswap
	entries := []RPTEntry{
		{EntityPath: bladePath(1), Tag: "blade 1", Severity: Major, Capabilities: managed},
		{EntityPath: bladePath(2), Tag: "blade 2", Severity: Critical, Capabilities: managed,
			HotSwapCapabilities: HsCapabilityAutoinsertImmediate},
		// A FRU without managed hot swap: states are tracked, no policy runs.
		{EntityPath: bladePath(3), Tag: "blade 3", Severity: Minor, Capabilities: CapabilityResource | CapabilityFRU},
	}
	for _, e := range entries {
		m := &hsModel{entry: e, trueM: M1}
		h.res = append(h.res, m)
		h.add(m)
	}
	h.drainAndCheck(nil, nil)
	return h
}

func (h *hsChecker) failf(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("step %d: %s\ntrace (last steps):\n%s", h.step, fmt.Sprintf(format, args...), h.tail())
}

func (h *hsChecker) tail() string {
	s := ""
	from := max(0, len(h.trace)-15)
	for _, l := range h.trace[from:] {
		s += "  " + l + "\n"
	}
	return s
}

func (h *hsChecker) add(m *hsModel) {
	id, err := h.d.UpsertResource(m.entry, nil)
	if err != nil {
		h.failf("upsert: %v", err)
	}
	if m.id != 0 && id != m.id {
		h.failf("re-added resource got ID %d, had %d", id, m.id)
	}
	m.id, m.present = id, true
	m.known, m.epoch, m.deadline, m.autoFired, m.canceled, m.hasPub = false, 0, time.Time{}, false, false, false
}

func (h *hsChecker) status(m *hsModel) HotSwapStatus {
	st, err := h.d.HotSwapState(m.id)
	if err != nil {
		h.failf("HotSwapState(%d): %v", m.id, err)
	}
	return st
}

func (h *hsChecker) snapshot() []HotSwapStatus {
	out := make([]HotSwapStatus, len(h.res))
	for i, m := range h.res {
		if m.present {
			out[i] = h.status(m)
		}
	}
	return out
}

func managed(m *hsModel) bool { return m.entry.Capabilities.Has(CapabilityManagedHotswap) }

func pending(s HsState) bool {
	return s == HsStateInsertionPending || s == HsStateExtractionPending
}

func autoAction(s HsState) IntentAction {
	if s == HsStateExtractionPending {
		return IntentDeactivate
	}
	return IntentActivate
}

// drainAndCheck reads the events of the last step from the subscription and
// checks the event invariants; returned are the step's events.
func (h *hsChecker) drainAndCheck(obs *observation, returned []Event) []Event {
	h.t.Helper()
	var evs []Event
	for h.sub.Pending() > 0 {
		ev, err := h.sub.Receive(context.Background())
		if err != nil {
			h.failf("Receive: %v", err)
		}
		evs = append(evs, ev)
	}
	for _, ev := range evs {
		if ev.ID <= h.lastID {
			h.failf("event ID %d after %d", ev.ID, h.lastID)
		}
		h.lastID = ev.ID
		m := h.byID(ev.Source)
		switch ev.Type {
		case EventHotSwap:
			hs := ev.HotSwap
			if obs == nil || m == nil || m != obs.m {
				h.failf("HOTSWAP event %+v outside an observation of its resource", hs)
			}
			if !HsTransitionAllowed(hs.PreviousHotSwapState, hs.HotSwapState) {
				h.failf("published transition %s→%s is not allowed", hs.PreviousHotSwapState, hs.HotSwapState)
			}
			if m.hasPub && hs.PreviousHotSwapState != m.lastPub {
				h.failf("event previous state %s, last published %s", hs.PreviousHotSwapState, m.lastPub)
			}
			if hs.CauseOfStateChange != obs.cause {
				h.failf("cause %s, observed with %s", hs.CauseOfStateChange, obs.cause)
			}
			if ev.Severity != m.entry.Severity {
				h.failf("HOTSWAP severity %s, resource severity %s", ev.Severity, m.entry.Severity)
			}
			m.lastPub, m.hasPub = hs.HotSwapState, true
		case EventResource:
			if m != nil && (ev.Resource.Type == ResourceAdded || ev.Resource.Type == ResourceRemoved) {
				m.hasPub = false
			}
		}
	}
	if returned != nil {
		// ObserveMState returns exactly the events it caused.
		if len(returned) != len(evs) {
			h.failf("ObserveMState returned %d events, subscriber got %d", len(returned), len(evs))
		}
		for i := range evs {
			if returned[i].ID != evs[i].ID {
				h.failf("returned event %d has ID %d, subscriber's %d", i, returned[i].ID, evs[i].ID)
			}
		}
	}
	return evs
}

func (h *hsChecker) byID(id ResourceID) *hsModel {
	for _, m := range h.res {
		if m.id == id {
			return m
		}
	}
	return nil
}

type observation struct {
	m         *hsModel
	prev, cur MState
	cause     HsCause
}

// checkCommon checks every resource after any step: the published chain ends
// in the current state, deadlines are the expected ones, and staleness of
// every intent issued so far.
func (h *hsChecker) checkCommon(after []HotSwapStatus) {
	h.t.Helper()
	for i, m := range h.res {
		if !m.present {
			continue
		}
		st := after[i]
		if m.hasPub && st.State != m.lastPub {
			h.failf("resource %d in %s, last published %s", m.id, st.State, m.lastPub)
		}
		if !st.Deadline.Equal(m.deadline) {
			h.failf("resource %d (%s, M %s, canceled %v) deadline %v, want %v", m.id, st.State, st.LastMState,
				st.PolicyCanceled, st.Deadline, m.deadline)
		}
		if !st.Deadline.IsZero() && (!pending(st.State) || st.LastMState == M7 || st.PolicyCanceled || !managed(m)) {
			h.failf("resource %d has a deadline in %s (M %s, canceled %v)", m.id, st.State, st.LastMState, st.PolicyCanceled)
		}
	}
	var want time.Time
	ok := false
	for i, m := range h.res {
		if m.present && !after[i].Deadline.IsZero() && (!ok || after[i].Deadline.Before(want)) {
			want, ok = after[i].Deadline, true
		}
	}
	if got, gotOK := h.d.NextDeadline(); gotOK != ok || !got.Equal(want) {
		h.failf("NextDeadline = %v %v, want %v %v", got, gotOK, want, ok)
	}
	for _, in := range h.intents {
		m := h.byID(in.Resource)
		want := !m.present || !after[h.index(m)].Known || after[h.index(m)].Epoch != in.Epoch
		if got := h.d.IntentStale(in); got != want {
			h.failf("IntentStale(%+v) = %v, want %v", in, got, want)
		}
	}
}

func (h *hsChecker) index(m *hsModel) int {
	for i, r := range h.res {
		if r == m {
			return i
		}
	}
	return -1
}

// newEpoch updates the model when a resource's epoch changed in a step and
// returns the auto intent the step must have produced (IMMEDIATE timeout).
func (h *hsChecker) newEpoch(m *hsModel, before, st HotSwapStatus) (wantImmediate bool) {
	stateChanged := !m.known || st.State != m.state
	if stateChanged && st.PolicyCanceled {
		h.failf("resource %d entered %s with its policy still cancelled", m.id, st.State)
	}
	if !stateChanged && st.PolicyCanceled != m.canceled {
		h.failf("resource %d: cancel %v lost across M7 (now %v)", m.id, m.canceled, st.PolicyCanceled)
	}
	m.known, m.state, m.epoch, m.autoFired, m.canceled = st.Known, st.State, st.Epoch, false, st.PolicyCanceled
	m.deadline = time.Time{}
	if !pending(st.State) || st.LastMState == M7 || m.canceled || !managed(m) {
		return false
	}
	t := st.AutoInsertTimeout
	if st.State == HsStateExtractionPending {
		t = st.AutoExtractTimeout
	}
	switch {
	case t == TimeoutImmediate:
		return true
	case t > 0:
		m.deadline = h.clock.t.Add(time.Duration(t))
	}
	return false
}

func (h *hsChecker) checkAutoIntent(m *hsModel, in Intent, st HotSwapStatus) {
	h.t.Helper()
	if in.Cause != HsCauseAutoPolicy || in.Resource != m.id || in.State != st.State || in.Epoch != st.Epoch ||
		in.Action != autoAction(st.State) || !pending(st.State) || !in.At.Equal(h.clock.t) {
		h.failf("auto intent %+v for resource in %s epoch %d", in, st.State, st.Epoch)
	}
	if !managed(m) {
		h.failf("auto intent for a resource without managed hot swap")
	}
	if m.autoFired {
		h.failf("second auto intent in epoch %d of resource %d", st.Epoch, m.id)
	}
	if m.canceled {
		h.failf("auto intent after the policy was cancelled")
	}
	if st.LastMState == M7 {
		h.failf("auto intent while communication is lost")
	}
	m.autoFired = true
	h.intents = append(h.intents, in)
}

// nextM picks the M-state the shelf reports next: mostly a legal ATCA
// transition, sometimes a jump (a missed event), M7 or M0.
func nextM(src opSource, from MState) (MState, bool) {
	legal := map[MState][]MState{
		M0: {M1, M0},
		M1: {M2, M0},
		M2: {M3, M1, M0},
		M3: {M4, M6, M0},
		M4: {M5, M0},
		M5: {M6, M4, M0},
		M6: {M1, M0},
		M7: {M0, M1, M2, M3, M4, M5, M6},
	}
	k, ok := src.intn(10)
	if !ok {
		return 0, false
	}
	switch {
	case k < 6:
		opts := legal[from]
		i, _ := src.intn(len(opts))
		return opts[i], true
	case k < 8:
		v, _ := src.intn(8)
		return MState(v), true
	default:
		return M7, true
	}
}

var propTimeouts = []Timeout{TimeoutImmediate, TimeoutBlock, Timeout(time.Second), Timeout(3 * time.Second), Timeout(10 * time.Second)}

var propCauses = []HsCause{HsCauseAutoPolicy, HsCauseExtSoftware, HsCauseOperatorInit, HsCauseUnexpectedDeactivation,
	HsCauseSurpriseExtraction, HsCauseUnknown}

// run executes steps until src is used up.
func (h *hsChecker) run(src opSource) {
	for {
		op, ok := src.intn(15)
		if !ok {
			return
		}
		ri, _ := src.intn(len(h.res))
		m := h.res[ri]
		h.step++
		before := h.snapshot()
		switch {
		case op < 6:
			h.stepObserve(src, m, before)
		case op < 8:
			d, _ := src.intn(12)
			h.stepTick(time.Duration(d)*500*time.Millisecond, before)
		case op == 8:
			h.stepCancel(m, before)
		case op == 9:
			k, _ := src.intn(4)
			h.stepRequest(m, IntentAction(k), before)
		case op == 10:
			ti, _ := src.intn(len(propTimeouts) + 1)
			h.stepTimeouts(src, m, ti)
		case op == 11:
			if m.present {
				h.trace = append(h.trace, fmt.Sprintf("remove %d", m.id))
				if err := h.d.RemoveResource(m.id); err != nil {
					h.failf("remove: %v", err)
				}
				m.present = false
				h.drainAndCheck(nil, nil)
			} else {
				h.trace = append(h.trace, fmt.Sprintf("re-add %d", m.id))
				h.add(m)
				h.drainAndCheck(nil, nil)
				if st := h.status(m); st.Known || st.Failed || !st.Deadline.IsZero() {
					h.failf("re-added resource starts with %+v", st)
				}
			}
		case op == 12:
			if !m.present {
				continue
			}
			f, _ := src.intn(2)
			h.trace = append(h.trace, fmt.Sprintf("set failed %d %v", m.id, f == 1))
			if err := h.d.SetResourceFailed(m.id, f == 1, h.clock.t); err != nil {
				h.failf("SetResourceFailed: %v", err)
			}
			evs := h.drainAndCheck(nil, nil)
			if want := btoi(before[ri].Failed != (f == 1)); len(evs) < want || h.status(m).Failed != (f == 1) {
				h.failf("SetResourceFailed(%v) from %v: events %d", f == 1, before[ri].Failed, len(evs))
			}
		default:
			d, _ := src.intn(8)
			h.clock.t = h.clock.t.Add(time.Duration(d) * 250 * time.Millisecond)
			h.trace = append(h.trace, fmt.Sprintf("clock +%v", time.Duration(d)*250*time.Millisecond))
		}
		after := h.snapshot()
		h.checkCommon(after)
	}
}

func (h *hsChecker) stepObserve(src opSource, m *hsModel, before []HotSwapStatus) {
	if !m.present {
		if _, _, err := h.d.ObserveMState(m.id, MStateUnknown, M1, HsCauseUnknown, h.clock.t); !errors.Is(err, ErrInvalidResource) {
			h.failf("observe of a removed resource: %v", err)
		}
		return
	}
	cur, _ := nextM(src, m.trueM)
	pk, _ := src.intn(4)
	prev := MStateUnknown
	switch pk {
	case 1, 2:
		prev = m.trueM
	case 3:
		v, _ := src.intn(8)
		prev = MState(v)
	}
	ci, _ := src.intn(len(propCauses))
	cause := propCauses[ci]
	m.trueM = cur
	obs := &observation{m: m, prev: prev, cur: cur, cause: cause}
	h.trace = append(h.trace, fmt.Sprintf("observe %d %s→%s cause %s", m.id, prev, cur, cause))
	b := before[h.index(m)]
	returned, intents, err := h.d.ObserveMState(m.id, prev, cur, cause, h.clock.t)
	if err != nil {
		h.failf("ObserveMState: %v", err)
	}
	evs := h.drainAndCheck(obs, returned)
	st := h.status(m)
	var hsEvents, failures, restores int
	firstHs := -1
	restoreAt := -1
	for i, ev := range evs {
		switch {
		case ev.Type == EventHotSwap:
			hsEvents++
			if firstHs < 0 {
				firstHs = i
			}
		case ev.Type == EventResource && ev.Resource.Type == ResourceFailure:
			failures++
		case ev.Type == EventResource && ev.Resource.Type == ResourceRestored:
			restores++
			restoreAt = i
		}
	}
	if cur == M7 {
		if hsEvents != 0 {
			h.failf("M7 published %d HOTSWAP events", hsEvents)
		}
		if !st.Failed || st.State != b.State || st.Known != b.Known || st.LastMState != M7 {
			h.failf("after M7: %+v (before %+v)", st, b)
		}
		if want := btoi(!b.Failed); failures != want || restores != 0 {
			h.failf("M7 from failed=%v: %d failure and %d restored events", b.Failed, failures, restores)
		}
	} else {
		want, _ := HsStateFromMState(cur)
		if !st.Known || st.State != want || st.LastMState != cur {
			h.failf("after observing %s: %+v, want state %s", cur, st, want)
		}
		if b.Known && b.State == want && hsEvents != 0 {
			h.failf("%d HOTSWAP events for a non-transition %s", hsEvents, want)
		}
		if b.Known && b.State != want && hsEvents == 0 {
			h.failf("no HOTSWAP event for %s→%s", b.State, want)
		}
		if b.LastMState == M7 {
			if st.Failed {
				h.failf("still failed after leaving M7")
			}
			if restores != btoi(b.Failed) || failures != 0 {
				h.failf("leaving M7: %d restored, %d failure events", restores, failures)
			}
			if restoreAt >= 0 && firstHs >= 0 && restoreAt > firstHs {
				h.failf("RESTORED published after a HOTSWAP event")
			}
		} else if st.Failed != b.Failed || restores+failures != 0 {
			h.failf("failure flag changed %v→%v outside M7", b.Failed, st.Failed)
		}
	}
	wantImmediate := false
	if st.Epoch != m.epoch {
		wantImmediate = h.newEpoch(m, b, st)
	} else if st.State != m.state && m.known {
		h.failf("state moved %s→%s without a new epoch", m.state, st.State)
	}
	if len(intents) != btoi(wantImmediate) {
		h.failf("observation returned %d intents, want %d (state %s, status %+v)", len(intents), btoi(wantImmediate), st.State, st)
	}
	for _, in := range intents {
		h.checkAutoIntent(m, in, st)
	}
}

func (h *hsChecker) stepTick(adv time.Duration, before []HotSwapStatus) {
	h.clock.t = h.clock.t.Add(adv)
	now := h.clock.t
	h.trace = append(h.trace, fmt.Sprintf("tick +%v", adv))
	intents := h.d.Tick(now)
	h.drainAndCheck(nil, nil)
	due := map[ResourceID]bool{}
	for i, m := range h.res {
		if m.present && !before[i].Deadline.IsZero() && !now.Before(before[i].Deadline) {
			due[m.id] = true
		}
	}
	for i, in := range intents {
		if i > 0 && intents[i-1].Resource >= in.Resource {
			h.failf("Tick intents not ordered by resource")
		}
		m := h.byID(in.Resource)
		if m == nil || !due[in.Resource] {
			h.failf("Tick intent %+v for a resource whose deadline was not due", in)
		}
		delete(due, in.Resource)
		st := h.status(m)
		if st.Epoch != m.epoch {
			h.failf("Tick changed the epoch")
		}
		h.checkAutoIntent(m, in, st)
		m.deadline = time.Time{}
	}
	if len(due) != 0 {
		h.failf("Tick missed due deadlines of %v", due)
	}
}

func (h *hsChecker) stepCancel(m *hsModel, before []HotSwapStatus) {
	if !m.present {
		return
	}
	h.trace = append(h.trace, fmt.Sprintf("cancel %d", m.id))
	b := before[h.index(m)]
	err := h.d.HotSwapPolicyCancel(m.id)
	h.drainAndCheck(nil, nil)
	switch {
	case !managed(m):
		if !errors.Is(err, ErrCapability) {
			h.failf("cancel without managed hot swap: %v", err)
		}
	case !b.Known || !pending(b.State):
		if !errors.Is(err, ErrInvalidRequest) {
			h.failf("cancel in %s (known %v): %v", b.State, b.Known, err)
		}
	default:
		if err != nil {
			h.failf("cancel in %s: %v", b.State, err)
		}
		m.canceled, m.deadline = true, time.Time{}
		if st := h.status(m); !st.PolicyCanceled || st.Epoch != b.Epoch || st.State != b.State {
			h.failf("after cancel: %+v", st)
		}
	}
}

func (h *hsChecker) stepRequest(m *hsModel, a IntentAction, before []HotSwapStatus) {
	if !m.present {
		return
	}
	h.trace = append(h.trace, fmt.Sprintf("request %s %d", a, m.id))
	b := before[h.index(m)]
	var in Intent
	var err error
	var valid bool
	switch a {
	case IntentActivate:
		in, err = h.d.RequestActivate(m.id, h.clock.t)
		valid = pending(b.State)
	case IntentDeactivate:
		in, err = h.d.RequestInactivate(m.id, h.clock.t)
		valid = pending(b.State)
	case IntentRequestInsertion:
		in, err = h.d.RequestInsertion(m.id, h.clock.t)
		valid = b.State == HsStateInactive
	default:
		in, err = h.d.RequestExtraction(m.id, h.clock.t)
		valid = b.State == HsStateActive
	}
	h.drainAndCheck(nil, nil)
	valid = valid && b.Known
	switch {
	case !managed(m):
		if !errors.Is(err, ErrCapability) {
			h.failf("request without managed hot swap: %v", err)
		}
	case !valid:
		if !errors.Is(err, ErrInvalidRequest) {
			h.failf("request %s in %s: %v", a, b.State, err)
		}
	default:
		if err != nil {
			h.failf("request %s in %s: %v", a, b.State, err)
		}
		if in.Action != a || in.Cause != HsCauseExtSoftware || in.State != b.State || in.Epoch != b.Epoch || in.Resource != m.id {
			h.failf("request intent %+v in %s epoch %d", in, b.State, b.Epoch)
		}
		m.canceled, m.deadline = true, time.Time{}
		h.intents = append(h.intents, in)
	}
}

func (h *hsChecker) stepTimeouts(src opSource, m *hsModel, ti int) {
	which, _ := src.intn(3)
	var t Timeout
	if ti < len(propTimeouts) {
		t = propTimeouts[ti]
	} else {
		t = -5 // invalid
	}
	h.trace = append(h.trace, fmt.Sprintf("timeout kind %d = %v for %d", which, t, m.id))
	var err error
	switch which {
	case 0:
		err = h.d.SetAutoInsertTimeout(t)
	case 1:
		if !m.present {
			return
		}
		if ti == len(propTimeouts) {
			err = h.d.SetResourceAutoInsertTimeout(m.id, nil)
			t = 0
		} else {
			err = h.d.SetResourceAutoInsertTimeout(m.id, &t)
		}
	default:
		if !m.present {
			return
		}
		err = h.d.SetAutoExtractTimeout(m.id, t)
	}
	if which == 2 && t != -5 && !managed(m) {
		if !errors.Is(err, ErrCapability) {
			h.failf("auto-extract timeout of a resource without managed hot swap: %v", err)
		}
		return
	}
	if t == -5 {
		if !errors.Is(err, ErrInvalidParams) {
			h.failf("invalid timeout accepted: %v", err)
		}
		return
	}
	if err != nil {
		h.failf("set timeout: %v", err)
	}
	h.drainAndCheck(nil, nil)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestHotSwapProperties(t *testing.T) {
	t.Parallel()
	seeds := []uint64{1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181, 6765, 10946}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			h := newHsChecker(t)
			h.run(&randSource{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), left: 6000})
			if h.step < 100 {
				t.Fatalf("only %d steps ran", h.step)
			}
		})
	}
}

func FuzzHotSwap(f *testing.F) {
	f.Add([]byte{0, 0, 5, 0, 1, 6, 6, 3, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13})
	f.Add([]byte("observe tick cancel request remove re-add M7 M4 M1 M2 M3"))
	f.Add([]byte{1, 1, 9, 2, 0, 0, 10, 1, 2, 3, 2, 0, 3, 1, 9, 0, 1, 1, 6, 0, 11, 7, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			data = data[:4096]
		}
		h := newHsChecker(t)
		h.run(&byteSource{b: data})
	})
}
