package hpi

import (
	"errors"
	"testing"
	"time"
)

// TestHotSwapATCASequence walks a blade through insertion, communication
// loss and extraction and checks events, intents and timers at each step.
func TestHotSwapATCASequence(t *testing.T) {
	t.Parallel()
	ai := Timeout(2 * time.Second)
	d, clk := newTestDomain(t, Config{AutoInsertTimeout: &ai})
	id, err := d.UpsertResource(bladeEntry(7), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetAutoExtractTimeout(id, TimeoutImmediate); err != nil {
		t.Fatal(err)
	}
	type hs struct{ from, to HsState }
	var stale []Intent
	steps := []struct {
		name        string
		do          func() ([]Event, []Intent, error)
		wantHs      []hs
		wantRes     []ResourceEventType
		wantIntents []IntentAction
		wantState   HsState
		wantDL      time.Duration // deadline relative to now; 0 none
		wantFailed  bool
	}{
		{"first poll M1: state set, no event", func() ([]Event, []Intent, error) {
			return d.ObserveMState(id, MStateUnknown, M1, HsCauseUnknown, clk.t)
		}, nil, nil, nil, HsStateInactive, 0, false},
		{"M1→M2 arms auto-insert", func() ([]Event, []Intent, error) {
			return d.ObserveMState(id, M1, M2, HsCauseOperatorInit, clk.t)
		}, []hs{{HsStateInactive, HsStateInsertionPending}}, nil, nil, HsStateInsertionPending, 2 * time.Second, false},
		{"M2→M3 is no HPI transition", func() ([]Event, []Intent, error) {
			return d.ObserveMState(id, M2, M3, HsCauseAutoPolicy, clk.t)
		}, nil, nil, nil, HsStateInsertionPending, 2 * time.Second, false},
		{"tick before the deadline", func() ([]Event, []Intent, error) {
			clk.t = clk.t.Add(time.Second)
			return nil, d.Tick(clk.t), nil
		}, nil, nil, nil, HsStateInsertionPending, time.Second, false},
		{"communication lost stops the timer", func() ([]Event, []Intent, error) {
			return d.ObserveMState(id, M3, M7, HsCauseUnknown, clk.t)
		}, nil, []ResourceEventType{ResourceFailure}, nil, HsStateInsertionPending, 0, true},
		{"tick while lost: nothing", func() ([]Event, []Intent, error) {
			clk.t = clk.t.Add(time.Hour)
			return nil, d.Tick(clk.t), nil
		}, nil, nil, nil, HsStateInsertionPending, 0, true},
		{"back in M3: restored, timer re-armed", func() ([]Event, []Intent, error) {
			return d.ObserveMState(id, M7, M3, HsCauseUnknown, clk.t)
		}, nil, []ResourceEventType{ResourceRestored}, nil, HsStateInsertionPending, 2 * time.Second, false},
		{"tick at the deadline: one ACTIVATE", func() ([]Event, []Intent, error) {
			clk.t = clk.t.Add(2 * time.Second)
			return nil, d.Tick(clk.t), nil
		}, nil, nil, []IntentAction{IntentActivate}, HsStateInsertionPending, 0, false},
		{"tick again: nothing more", func() ([]Event, []Intent, error) {
			clk.t = clk.t.Add(time.Hour)
			return nil, d.Tick(clk.t), nil
		}, nil, nil, nil, HsStateInsertionPending, 0, false},
		{"missed events: M3→M5 passes ACTIVE, immediate auto-extract", func() ([]Event, []Intent, error) {
			return d.ObserveMState(id, MStateUnknown, M5, HsCauseExtSoftware, clk.t)
		}, []hs{{HsStateInsertionPending, HsStateActive}, {HsStateActive, HsStateExtractionPending}}, nil,
			[]IntentAction{IntentDeactivate}, HsStateExtractionPending, 0, false},
		{"M6→M1", func() ([]Event, []Intent, error) {
			return d.ObserveMState(id, M6, M1, HsCauseExtSoftware, clk.t)
		}, []hs{{HsStateExtractionPending, HsStateInactive}}, nil, nil, HsStateInactive, 0, false},
		{"pulled: M0", func() ([]Event, []Intent, error) {
			return d.ObserveMState(id, M1, M0, HsCauseSurpriseExtraction, clk.t)
		}, []hs{{HsStateInactive, HsStateNotPresent}}, nil, nil, HsStateNotPresent, 0, false},
	}
	for _, s := range steps {
		evs, intents, err := s.do()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		var gotHs []hs
		var gotRes []ResourceEventType
		for _, ev := range evs {
			switch ev.Type {
			case EventHotSwap:
				gotHs = append(gotHs, hs{ev.HotSwap.PreviousHotSwapState, ev.HotSwap.HotSwapState})
			case EventResource:
				gotRes = append(gotRes, ev.Resource.Type)
			}
		}
		if len(gotHs) != len(s.wantHs) || len(gotRes) != len(s.wantRes) || len(intents) != len(s.wantIntents) {
			t.Fatalf("%s: hot-swap %v resource %v intents %+v; want %v %v %v", s.name, gotHs, gotRes, intents, s.wantHs, s.wantRes, s.wantIntents)
		}
		for i := range gotHs {
			if gotHs[i] != s.wantHs[i] {
				t.Fatalf("%s: hot-swap events %v, want %v", s.name, gotHs, s.wantHs)
			}
		}
		for i := range gotRes {
			if gotRes[i] != s.wantRes[i] {
				t.Fatalf("%s: resource events %v, want %v", s.name, gotRes, s.wantRes)
			}
		}
		for i, in := range intents {
			if in.Action != s.wantIntents[i] || in.Cause != HsCauseAutoPolicy || d.IntentStale(in) {
				t.Fatalf("%s: intent %+v", s.name, in)
			}
			stale = append(stale, in)
		}
		st, _ := d.HotSwapState(id)
		if st.State != s.wantState || st.Failed != s.wantFailed {
			t.Fatalf("%s: status %+v", s.name, st)
		}
		var wantDL time.Time
		if s.wantDL > 0 {
			wantDL = clk.t.Add(s.wantDL)
		}
		if !st.Deadline.Equal(wantDL) {
			t.Fatalf("%s: deadline %v, want %v", s.name, st.Deadline, wantDL)
		}
	}
	for _, in := range stale {
		if !d.IntentStale(in) {
			t.Errorf("intent %+v still current in NOT_PRESENT", in)
		}
	}
}

func TestHotSwapPolicyCancelAndRequests(t *testing.T) {
	t.Parallel()
	ai := Timeout(time.Second)
	d, clk := newTestDomain(t, Config{AutoInsertTimeout: &ai})
	id, _ := d.UpsertResource(bladeEntry(8), nil)
	plain := bladeEntry(9)
	plain.Capabilities &^= CapabilityManagedHotswap
	pid, _ := d.UpsertResource(plain, nil)
	notFRU := bladeEntry(10)
	notFRU.Capabilities &^= CapabilityFRU | CapabilityManagedHotswap
	nid, _ := d.UpsertResource(notFRU, nil)
	d.ObserveMState(pid, MStateUnknown, M2, HsCauseUnknown, clk.t)
	tests := []struct {
		name string
		err  error
		do   func() error
	}{
		{"cancel unknown state", ErrInvalidRequest, func() error { return d.HotSwapPolicyCancel(id) }},
		{"cancel without managed hot swap", ErrCapability, func() error { return d.HotSwapPolicyCancel(pid) }},
		{"cancel not a FRU", ErrCapability, func() error { return d.HotSwapPolicyCancel(nid) }},
		{"cancel no resource", ErrInvalidResource, func() error { return d.HotSwapPolicyCancel(999) }},
		{"no timer without managed hot swap", nil, func() error {
			if st, _ := d.HotSwapState(pid); !st.Deadline.IsZero() {
				return errors.New("deadline armed")
			}
			return nil
		}},
		{"activate in INACTIVE", ErrInvalidRequest, func() error {
			d.ObserveMState(id, MStateUnknown, M1, HsCauseUnknown, clk.t)
			_, err := d.RequestActivate(id, clk.t)
			return err
		}},
		{"insertion in INACTIVE", nil, func() error {
			in, err := d.RequestInsertion(id, clk.t)
			if err == nil && (in.Action != IntentRequestInsertion || in.Cause != HsCauseExtSoftware) {
				return errors.New("wrong intent")
			}
			return err
		}},
		{"cancel in INSERTION_PENDING", nil, func() error {
			d.ObserveMState(id, M1, M2, HsCauseUnknown, clk.t)
			return d.HotSwapPolicyCancel(id)
		}},
		{"cancelled policy does not fire", nil, func() error {
			clk.t = clk.t.Add(time.Hour)
			if in := d.Tick(clk.t); len(in) != 0 {
				return errors.New("intent after cancel")
			}
			return nil
		}},
		{"cancel survives communication loss", nil, func() error {
			d.ObserveMState(id, M2, M7, HsCauseUnknown, clk.t)
			if _, in, _ := d.ObserveMState(id, M7, M2, HsCauseUnknown, clk.t); len(in) != 0 {
				return errors.New("intent on return")
			}
			if st, _ := d.HotSwapState(id); !st.PolicyCanceled || !st.Deadline.IsZero() {
				return errors.New("cancel lost")
			}
			return nil
		}},
		{"extraction in INSERTION_PENDING", ErrInvalidRequest, func() error {
			_, err := d.RequestExtraction(id, clk.t)
			return err
		}},
		{"auto-extract timeout without managed hot swap", ErrCapability, func() error {
			return d.SetAutoExtractTimeout(pid, TimeoutBlock)
		}},
		{"negative timeout", ErrInvalidParams, func() error { return d.SetAutoInsertTimeout(-3) }},
		{"observe a non M-state", ErrInvalidParams, func() error {
			_, _, err := d.ObserveMState(id, MStateUnknown, MState(8), HsCauseUnknown, clk.t)
			return err
		}},
	}
	for _, tc := range tests {
		if err := tc.do(); !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
}
