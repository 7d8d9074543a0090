package hotswap

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var (
	fruA = FRU{Entity: "{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,3}", Shelf: "shelf-a", IPMB: 0x86, ID: 0}
	fruB = FRU{Shelf: "shelf-a", IPMB: 0x88, ID: 0}
	dig  = func(s string) string { return string(DigestOf([]byte(s))) }
	ms   = func(v uint8) *uint8 { return &v }
)

func started(id string, k Kind, f FRU, required ...string) Entry {
	e := Entry{V: EntryVersion, Type: TypeWorkflowStarted, Workflow: id, Kind: k, FRU: &f,
		Required: required, MaxAttempts: 2, Owner: "n1"}
	if k == KindForced {
		e.Actor = "alice"
	}
	return e
}

func ent(t EntryType, id string, mod ...func(*Entry)) Entry {
	e := Entry{V: EntryVersion, Type: t, Workflow: id}
	switch t {
	case TypeHeld:
		e.Policy = HoldLocked
	case TypeActivationConfirmed:
		e.MState = ms(4)
	case TypeDeactivationConfirmed:
		e.MState = ms(1)
	case TypeHookRefused, TypeRevokeRefused:
		e.Reason = "no"
		e.Attempt = 1
	case TypeAborted:
		e.Reason = "no"
	case TypeOverrideGranted:
		e.Actor, e.Reason = "alice", "wiped by hand"
	case TypeRetry:
		e.Attempt = 1
	}
	for _, m := range mod {
		m(&e)
	}
	return e
}

func member(n string) func(*Entry) {
	return func(e *Entry) { e.Member = n; e.Digest = dig(n) }
}

type applier struct {
	t   *testing.T
	m   *Machine
	idx uint64
	log [][]byte
}

func newApplier(t *testing.T) *applier { return &applier{t: t, m: NewMachine()} }

func (a *applier) apply(e Entry) Result {
	a.t.Helper()
	b, err := e.Encode()
	if err != nil {
		a.t.Fatalf("encode %+v: %v", e, err)
	}
	a.idx++
	a.log = append(a.log, b)
	r := a.m.Apply(a.idx, b).(Result)
	if r.Err != nil {
		a.t.Fatalf("apply %s: %v", e.Type, r.Err)
	}
	return r
}

func kinds(acts []Action) []string {
	var out []string
	for _, a := range acts {
		s := string(a.Kind)
		if a.Member != "" {
			s += ":" + a.Member
		}
		out = append(out, s)
	}
	return out
}

func TestInsertionWorkflow(t *testing.T) {
	a := newApplier(t)
	if r := a.apply(started("w1", KindInsertion, fruA, "n1", "n2", "n3")); !r.Accepted || r.Phase != PhaseHolding {
		t.Fatalf("start: %+v", r)
	}
	if got := kinds(a.m.NextActions()); !slices.Equal(got, []string{"hold"}) {
		t.Fatalf("actions after start = %v", got)
	}
	a.apply(ent(TypeHeld, "w1"))
	if got := kinds(a.m.NextActions()); !slices.Equal(got, []string{"apply_hooks:n1", "apply_hooks:n2", "apply_hooks:n3"}) {
		t.Fatalf("actions after held = %v", got)
	}
	// Activation before every ack is refused.
	if r := a.apply(ent(TypeActivationConfirmed, "w1")); r.Accepted {
		t.Fatalf("activation confirmed with acks missing: %+v", r)
	}
	a.apply(ent(TypeHookApplied, "w1", member("n2")))
	a.apply(ent(TypeHookApplied, "w1", member("n1")))
	if got := kinds(a.m.NextActions()); !slices.Equal(got, []string{"apply_hooks:n3"}) {
		t.Fatalf("actions with n3 missing = %v", got)
	}
	r := a.apply(ent(TypeHookApplied, "w1", member("n3")))
	if r.Phase != PhaseActivating {
		t.Fatalf("phase after last ack = %s", r.Phase)
	}
	if r := a.apply(ent(TypeHookApplied, "w1", member("n3"))); r.Accepted {
		t.Fatal("duplicate ack accepted")
	}
	if got := kinds(a.m.NextActions()); !slices.Equal(got, []string{"activate"}) {
		t.Fatalf("actions = %v", got)
	}
	a.apply(ent(TypeActivationRequested, "w1"))
	r = a.apply(ent(TypeActivationConfirmed, "w1"))
	if !r.Accepted || r.Outcome != OutcomeActivated {
		t.Fatalf("confirm: %+v", r)
	}
	if len(a.m.NextActions()) != 0 {
		t.Fatalf("actions after done: %v", a.m.NextActions())
	}
	if _, busy := a.m.ActiveFor(fruA); busy {
		t.Fatal("FRU still busy after the workflow finished")
	}
}

func TestInsertionRefusalRetryAbort(t *testing.T) {
	a := newApplier(t)
	a.apply(started("w1", KindInsertion, fruA, "n1", "n2"))
	a.apply(ent(TypeHeld, "w1"))
	a.apply(ent(TypeHookApplied, "w1", member("n1")))
	r := a.apply(ent(TypeHookRefused, "w1", func(e *Entry) { e.Member = "n2"; e.Reason = "unreachable" }))
	if !r.AlarmRaised || !strings.Contains(r.Alarm, "n2") || !strings.Contains(r.Alarm, "locked") {
		t.Fatalf("refusal raised no alarm: %+v", r)
	}
	if got := kinds(a.m.NextActions()); !slices.Equal(got, []string{"retry"}) {
		t.Fatalf("actions after refusal = %v", got)
	}
	// A stale refusal of attempt 1 after the retry is ignored.
	a.apply(ent(TypeRetry, "w1"))
	if r := a.apply(ent(TypeHookRefused, "w1", func(e *Entry) { e.Member = "n2" })); r.Accepted {
		t.Fatal("stale refusal accepted")
	}
	if got := kinds(a.m.NextActions()); !slices.Equal(got, []string{"apply_hooks:n2"}) {
		t.Fatalf("actions after retry = %v", got)
	}
	a.apply(ent(TypeHookRefused, "w1", func(e *Entry) { e.Member = "n2"; e.Attempt = 2 }))
	acts := a.m.NextActions()
	if got := kinds(acts); !slices.Equal(got, []string{"abort"}) {
		t.Fatalf("actions with no attempts left = %v", got)
	}
	r = a.apply(ent(TypeAborted, "w1", func(e *Entry) { e.Reason = acts[0].Reason }))
	if r.Phase != PhaseRevoking {
		t.Fatalf("aborting an insertion with acks should revoke them first: %+v", r)
	}
	if got := kinds(a.m.NextActions()); !slices.Equal(got, []string{"revoke_hooks:n1"}) {
		t.Fatalf("rollback actions = %v", got)
	}
	r = a.apply(ent(TypePoliciesRevoked, "w1", member("n1")))
	if r.Outcome != OutcomeAborted {
		t.Fatalf("after rollback: %+v", r)
	}
	w, _ := a.m.Workflow("w1")
	if w.Alarm == "" {
		t.Fatal("aborted workflow has no alarm")
	}
}

func TestExtractionWorkflow(t *testing.T) {
	for _, wipeOK := range []bool{true, false} {
		t.Run(fmt.Sprint("wipeOK=", wipeOK), func(t *testing.T) {
			a := newApplier(t)
			a.apply(started("x1", KindExtraction, fruA, "n1", "n2"))
			if r := a.apply(ent(TypeHeld, "x1")); r.Accepted {
				t.Fatal("an extraction accepted the Locked hold")
			}
			a.apply(ent(TypeHeld, "x1", func(e *Entry) { e.Policy = HoldDeactivationLocked }))
			if got := kinds(a.m.NextActions()); !slices.Equal(got, []string{"revoke_hooks:n1", "revoke_hooks:n2"}) {
				t.Fatalf("actions = %v", got)
			}
			a.apply(ent(TypePoliciesRevoked, "x1", member("n2")))
			if r := a.apply(ent(TypeWipeResult, "x1", func(e *Entry) { e.OK = true; e.Digest = dig("c") })); r.Accepted {
				t.Fatal("wipe result accepted before every member revoked")
			}
			a.apply(ent(TypePoliciesRevoked, "x1", member("n1")))
			if got := kinds(a.m.NextActions()); !slices.Equal(got, []string{"wipe:n1"}) {
				t.Fatalf("actions = %v", got)
			}
			if r := a.apply(ent(TypeDeactivationConfirmed, "x1")); r.Accepted {
				t.Fatal("deactivation before the wipe accepted")
			}
			if r := a.apply(ent(TypeWipeResult, "x1", func(e *Entry) { e.OK = true; e.Digest = dig("c"); e.Attempt = 1 })); r.Accepted {
				t.Fatal("wipe result without a wipe started accepted")
			}
			a.apply(ent(TypeWipeStarted, "x1"))
			if wipeOK {
				a.apply(ent(TypeWipeResult, "x1", func(e *Entry) { e.OK = true; e.Digest = dig("c"); e.Attempt = 1 }))
			} else {
				r := a.apply(ent(TypeWipeResult, "x1", func(e *Entry) { e.Reason = "verify mismatch"; e.Attempt = 1 }))
				if r.Phase != PhaseWipeFailed || !r.AlarmRaised {
					t.Fatalf("wipe failure: %+v", r)
				}
				if acts := a.m.NextActions(); len(acts) != 0 {
					t.Fatalf("actions after a failed wipe = %v (the FRU must stay held)", kinds(acts))
				}
				if r := a.apply(ent(TypeDeactivationConfirmed, "x1")); r.Accepted {
					t.Fatal("deactivation after a failed wipe accepted")
				}
				if r := a.apply(ent(TypeOverrideGranted, "x1")); !r.Accepted {
					t.Fatalf("override: %+v", r)
				}
			}
			if got := kinds(a.m.NextActions()); !slices.Equal(got, []string{"deactivate"}) {
				t.Fatalf("actions = %v", got)
			}
			r := a.apply(ent(TypeDeactivationConfirmed, "x1"))
			if r.Outcome != OutcomeExtracted {
				t.Fatalf("done: %+v", r)
			}
			w, _ := a.m.Workflow("x1")
			if wipeOK != (w.Certificate != "") || wipeOK != (w.Override == nil) {
				t.Fatalf("certificate %q override %+v", w.Certificate, w.Override)
			}
		})
	}
}

func TestOneWorkflowPerFRUAndSurprise(t *testing.T) {
	a := newApplier(t)
	a.apply(started("w1", KindInsertion, fruA, "n1"))
	if r := a.apply(started("w2", KindExtraction, fruA, "n1")); r.Accepted {
		t.Fatal("second workflow for the same FRU accepted")
	}
	if r := a.apply(started("w1", KindInsertion, fruB, "n1")); r.Accepted {
		t.Fatal("duplicate workflow ID accepted")
	}
	if r := a.apply(started("w3", KindInsertion, fruB, "n1")); !r.Accepted {
		t.Fatal("workflow for another FRU refused")
	}
	r := a.apply(started("s1", KindSurprise, fruA, "n1", "n2"))
	if !r.Accepted || r.Phase != PhaseRevoking {
		t.Fatalf("surprise: %+v", r)
	}
	if w, _ := a.m.Workflow("w1"); w.Outcome != OutcomeSuperseded {
		t.Fatalf("w1 = %+v", w)
	}
	a.apply(ent(TypePoliciesRevoked, "s1", member("n1")))
	r = a.apply(ent(TypePoliciesRevoked, "s1", member("n2")))
	if r.Outcome != OutcomeRemoved {
		t.Fatalf("surprise done: %+v", r)
	}
}

func TestDecodeEntryErrors(t *testing.T) {
	good, _ := started("w1", KindInsertion, fruA, "n1").Encode()
	tests := []struct {
		name, payload, want string
	}{
		{"good", string(good), ""},
		{"version", strings.Replace(string(good), `"v":1`, `"v":2`, 1), "version"},
		{"unknown field", strings.Replace(string(good), `"v":1`, `"v":1,"x":1`, 1), "unknown field"},
		{"trailing", string(good) + "{}", "trailing"},
		{"type", `{"v":1,"type":"boom","workflow":"w"}`, "unknown type"},
		{"no fru", `{"v":1,"type":"workflow_started","workflow":"w","kind":"insertion","required":["a"],"max_attempts":1}`, "no FRU"},
		{"bad digest", `{"v":1,"type":"hook_applied","workflow":"w","member":"a","digest":"md5:00"}`, "digest"},
		{"bad id", `{"v":1,"type":"retry","workflow":"w x"}`, "character"},
		{"forced without actor", strings.Replace(string(good), `"insertion"`, `"forced"`, 1), "operator"},
		{"odd ipmb", strings.Replace(string(good), `"ipmb":134`, `"ipmb":135`, 1), "IPMB"},
		{"bad entity", strings.Replace(string(good), `PHYSICAL_SLOT,3`, `NOPE,3`, 1), "entity"},
		{"refusal without reason", `{"v":1,"type":"hook_refused","workflow":"w","member":"a"}`, "reason"},
		{"confirm without mstate", `{"v":1,"type":"activation_confirmed","workflow":"w"}`, "M-state"},
		{"override without actor", `{"v":1,"type":"override_granted","workflow":"w","reason":"r"}`, "operator"},
		{"not json", `{`, "decoding"},
		{"field of another type", `{"v":1,"type":"retry","workflow":"w","member":"x"}`, "does not belong"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeEntry([]byte(tc.payload))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			// A bad entry changes nothing.
			m := NewMachine()
			before, _ := m.Snapshot()
			if r := m.Apply(1, []byte(tc.payload)).(Result); r.Err == nil {
				t.Fatal("Apply accepted a bad payload")
			}
			after, _ := m.Snapshot()
			if !bytes.Equal(before, after) {
				t.Fatal("a bad payload changed the state")
			}
		})
	}
}

func TestApplyIgnoresOldIndex(t *testing.T) {
	m := NewMachine()
	b, _ := started("w1", KindInsertion, fruA, "n1").Encode()
	m.Apply(5, b)
	b2, _ := started("w2", KindInsertion, fruB, "n1").Encode()
	if r := m.Apply(5, b2).(Result); r.Accepted {
		t.Fatal("entry at an applied index accepted")
	}
}

// randomEntry builds a plausible entry for one of a few workflows, so that
// random sequences reach every phase, with duplicates and reordering.
func randomEntry(rng *rand.Rand, ids []string, frus []FRU, members []string) Entry {
	id := ids[rng.Intn(len(ids))]
	mem := members[rng.Intn(len(members))]
	att := 1 + rng.Intn(2)
	switch rng.Intn(16) {
	case 0, 1:
		k := []Kind{KindInsertion, KindExtraction, KindSurprise, KindForced}[rng.Intn(4)]
		n := 1 + rng.Intn(len(members))
		return started(id, k, frus[rng.Intn(len(frus))], members[:n]...)
	case 2:
		return ent(TypeHeld, id, func(e *Entry) {
			e.Policy = []string{HoldLocked, HoldDeactivationLocked, HoldNotActivating}[rng.Intn(3)]
		})
	case 3, 4, 5:
		return ent(TypeHookApplied, id, member(mem))
	case 6:
		return ent(TypeHookRefused, id, func(e *Entry) { e.Member = mem; e.Attempt = att })
	case 7:
		return ent([]EntryType{TypeActivationRequested, TypeActivationConfirmed}[rng.Intn(2)], id)
	case 8, 9:
		return ent(TypePoliciesRevoked, id, member(mem))
	case 10:
		return ent(TypeRevokeRefused, id, func(e *Entry) { e.Member = mem; e.Attempt = att })
	case 11:
		return ent(TypeWipeStarted, id)
	case 12:
		return ent(TypeWipeResult, id, func(e *Entry) {
			e.Attempt = att
			if rng.Intn(2) == 0 {
				e.OK, e.Digest = true, dig("cert")
			} else {
				e.Reason = "failed"
			}
		})
	case 13:
		return ent([]EntryType{TypeDeactivationRequested, TypeDeactivationConfirmed}[rng.Intn(2)], id)
	case 14:
		ty := TypeRetry
		if rng.Intn(4) == 0 {
			ty = TypeAborted
		}
		return ent(ty, id, func(e *Entry) {
			if ty == TypeRetry {
				e.Attempt = att
			}
		})
	default:
		return ent(TypeOverrideGranted, id)
	}
}

// TestMachineProperties applies random entry sequences and checks the
// invariants after every entry, and that replays and snapshots agree.
func TestMachineProperties(t *testing.T) {
	ids := []string{"w1", "w2", "w3", "w4"}
	frus := []FRU{fruA, fruB}
	members := []string{"n1", "n2", "n3"}
	t.Parallel()
	reached := map[EntryType]int{}
	defer func() {
		// The generator must reach the guarded steps, or the test proves nothing.
		for _, ty := range []EntryType{TypeActivationConfirmed, TypeDeactivationConfirmed, TypeOverrideGranted, TypeRetry, TypeAborted} {
			if reached[ty] == 0 {
				t.Errorf("no accepted %s in any sequence", ty)
			}
		}
		t.Logf("accepted: %v", reached)
	}()
	seeds := int64(150)
	if testing.Short() {
		seeds = 30
	}
	for seed := int64(1); seed <= seeds; seed++ {
		rng := rand.New(rand.NewSource(seed))
		m := NewMachine()
		var log [][]byte
		certified := map[string]bool{} // workflows with an accepted OK wipe result
		overridden := map[string]bool{}
		var mid []byte
		midAt := 1 + rng.Intn(150)
		for i := 1; i <= 200; i++ {
			e := randomEntry(rng, ids, frus, members)
			if rng.Intn(3) != 0 {
				if g, ok := guidedEntry(rng, m); ok {
					e = g
				}
			}
			if rng.Intn(5) == 0 && len(log) > 0 {
				// Re-propose an earlier entry (a retried proposal).
				d, err := DecodeEntry(log[rng.Intn(len(log))])
				if err != nil {
					t.Fatal(err)
				}
				e = d
			}
			b, err := e.Encode()
			if err != nil {
				t.Fatalf("seed %d: encode: %v", seed, err)
			}
			log = append(log, b)
			before, _ := m.Workflow(e.Workflow)
			r := m.Apply(uint64(i), b).(Result)
			if r.Err != nil {
				t.Fatalf("seed %d: %v", seed, r.Err)
			}
			after, _ := m.Workflow(e.Workflow)
			if r.Accepted {
				reached[e.Type]++
				switch e.Type {
				case TypeActivationRequested, TypeActivationConfirmed:
					if !allIn(before.Required, before.Applied) {
						t.Fatalf("seed %d: %s accepted with acks %v of %v", seed, e.Type, before.Applied, before.Required)
					}
				case TypeDeactivationRequested, TypeDeactivationConfirmed:
					if !certified[e.Workflow] && !overridden[e.Workflow] {
						t.Fatalf("seed %d: %s accepted without a verified wipe or override", seed, e.Type)
					}
				case TypeWipeResult:
					certified[e.Workflow] = e.OK
				case TypeOverrideGranted:
					overridden[e.Workflow] = true
				case TypeWorkflowStarted:
					delete(certified, e.Workflow)
					delete(overridden, e.Workflow)
				case TypeHookApplied, TypePoliciesRevoked:
					if before.Applied[e.Member] != "" && e.Type == TypeHookApplied {
						t.Fatalf("seed %d: duplicate ack accepted", seed)
					}
				}
			}
			// Duplicates of acks and results never change state.
			if !r.Accepted && e.Type != TypeWorkflowStarted && before.ID != "" && !reflect.DeepEqual(stripIdx(before), stripIdx(after)) {
				t.Fatalf("seed %d: unaccepted %s changed workflow %s", seed, e.Type, e.Workflow)
			}
			checkInvariants(t, seed, m, certified, overridden)
			if i == midAt {
				mid, _ = m.Snapshot()
			}
		}
		// A new leader replays the log into a fresh Machine: same state.
		final, _ := m.Snapshot()
		replay := NewMachine()
		for i, b := range log {
			replay.Apply(uint64(i+1), b)
		}
		if got, _ := replay.Snapshot(); !bytes.Equal(got, final) {
			t.Fatalf("seed %d: replay differs:\n%s\n%s", seed, got, final)
		}
		// Restoring the mid snapshot and applying the rest: same state.
		restored := NewMachine()
		if err := restored.Restore(mid); err != nil {
			t.Fatal(err)
		}
		for i := midAt; i < len(log); i++ {
			restored.Apply(uint64(i+1), log[i])
		}
		if got, _ := restored.Snapshot(); !bytes.Equal(got, final) {
			t.Fatalf("seed %d: snapshot+rest differs", seed)
		}
		if !reflect.DeepEqual(restored.NextActions(), m.NextActions()) {
			t.Fatalf("seed %d: restored machine asks for other actions", seed)
		}
	}
}

// guidedEntry returns an entry that fits the state of a random workflow in
// flight, so that random sequences get deep into the workflows.
func guidedEntry(rng *rand.Rand, m *Machine) (Entry, bool) {
	var act []Workflow
	for _, w := range m.Workflows() {
		if w.Active() {
			act = append(act, w)
		}
	}
	if len(act) == 0 {
		return Entry{}, false
	}
	w := act[rng.Intn(len(act))]
	pick := func(s []string) string { return s[rng.Intn(len(s))] }
	at := func(e *Entry) { e.Attempt = w.Attempt }
	switch w.Phase {
	case PhaseHolding:
		p := HoldLocked
		if w.Kind.extracts() {
			p = HoldDeactivationLocked
		}
		return ent(TypeHeld, w.ID, func(e *Entry) { e.Policy = p }), true
	case PhaseApplying:
		switch rng.Intn(6) {
		case 0:
			return ent(TypeHookRefused, w.ID, at, func(e *Entry) { e.Member = pick(w.Required) }), true
		case 1:
			return ent(TypeRetry, w.ID, at), true
		}
		return ent(TypeHookApplied, w.ID, member(pick(w.Required))), true
	case PhaseActivating:
		return ent([]EntryType{TypeActivationRequested, TypeActivationConfirmed}[rng.Intn(2)], w.ID), true
	case PhaseRevoking:
		switch rng.Intn(6) {
		case 0:
			return ent(TypeRevokeRefused, w.ID, at, func(e *Entry) { e.Member = pick(w.RevokeSet) }), true
		case 1:
			return ent(TypeRetry, w.ID, at), true
		}
		return ent(TypePoliciesRevoked, w.ID, member(pick(w.RevokeSet))), true
	case PhaseWiping:
		if rng.Intn(2) == 0 {
			return ent(TypeWipeStarted, w.ID), true
		}
		return ent(TypeWipeResult, w.ID, at, func(e *Entry) {
			if rng.Intn(2) == 0 {
				e.OK, e.Digest = true, dig("cert")
			} else {
				e.Reason = "failed"
			}
		}), true
	case PhaseWipeFailed:
		if rng.Intn(2) == 0 {
			return ent(TypeRetry, w.ID, at), true
		}
		return ent(TypeOverrideGranted, w.ID), true
	case PhaseDeactivating:
		return ent([]EntryType{TypeDeactivationRequested, TypeDeactivationConfirmed}[rng.Intn(2)], w.ID), true
	}
	return Entry{}, false
}

func stripIdx(w Workflow) Workflow { w.LastIndex = 0; return w }

func checkInvariants(t *testing.T, seed int64, m *Machine, certified, overridden map[string]bool) {
	t.Helper()
	busy := map[string]string{}
	for _, w := range m.Workflows() {
		if !w.Active() {
			continue
		}
		if o, dup := busy[w.FRU.Key()]; dup {
			t.Fatalf("seed %d: workflows %s and %s both in flight for %s", seed, o, w.ID, w.FRU.Key())
		}
		busy[w.FRU.Key()] = w.ID
	}
	for _, a := range m.NextActions() {
		w, _ := m.Workflow(a.Workflow)
		switch a.Kind {
		case ActActivate:
			if !allIn(w.Required, w.Applied) || w.Kind != KindInsertion {
				t.Fatalf("seed %d: activate asked for with acks %v of %v", seed, w.Applied, w.Required)
			}
		case ActDeactivate:
			if !certified[w.ID] && !overridden[w.ID] {
				t.Fatalf("seed %d: deactivate asked for without a verified wipe or override", seed)
			}
			if !w.Kind.extracts() {
				t.Fatalf("seed %d: deactivate for a %s", seed, w.Kind)
			}
		case ActWipe:
			if !allIn(w.RevokeSet, w.Revoked) {
				t.Fatalf("seed %d: wipe before every member revoked", seed)
			}
		}
	}
}

func TestAckOrderDoesNotMatter(t *testing.T) {
	members := []string{"n1", "n2", "n3", "n4"}
	var want []byte
	for seed := int64(0); seed < 50; seed++ {
		rng := rand.New(rand.NewSource(seed))
		m := NewMachine()
		apply := func(i int, e Entry) {
			b, _ := e.Encode()
			m.Apply(uint64(i), b)
		}
		apply(1, started("w1", KindInsertion, fruA, members...))
		apply(2, ent(TypeHeld, "w1"))
		var acks []Entry
		for _, n := range members {
			acks = append(acks, ent(TypeHookApplied, "w1", member(n)))
			if rng.Intn(2) == 0 {
				acks = append(acks, ent(TypeHookApplied, "w1", member(n)))
			}
		}
		rng.Shuffle(len(acks), func(i, j int) { acks[i], acks[j] = acks[j], acks[i] })
		for i, e := range acks {
			apply(3+i, e)
		}
		w, _ := m.Workflow("w1")
		if w.Phase != PhaseActivating {
			t.Fatalf("seed %d: phase %s", seed, w.Phase)
		}
		got, _ := json.Marshal(w.Applied)
		if want == nil {
			want = got
		} else if !bytes.Equal(got, want) {
			t.Fatalf("seed %d: applied %s, want %s", seed, got, want)
		}
	}
}

func TestRestoreRejectsBadSnapshots(t *testing.T) {
	m := NewMachine()
	b, _ := started("w1", KindInsertion, fruA, "n1").Encode()
	m.Apply(1, b)
	good, _ := m.Snapshot()
	for _, bad := range []string{`{`, `{"v":9}`, `{"v":1,"workflows":[{"id":""}]}`,
		`{"v":1,"workflows":[{"id":"a","phase":"applying","fru":{"shelf":"s"}},{"id":"b","phase":"applying","fru":{"shelf":"s"}}]}`} {
		if err := m.Restore([]byte(bad)); err == nil {
			t.Errorf("Restore(%s) accepted", bad)
		}
		if now, _ := m.Snapshot(); !bytes.Equal(now, good) {
			t.Fatalf("failed Restore(%s) changed the state", bad)
		}
	}
	if err := m.Restore(nil); err != nil || len(m.Workflows()) != 0 {
		t.Fatal("Restore(nil) did not reset")
	}
}

func FuzzDecodeEntry(f *testing.F) {
	for _, e := range []Entry{
		started("w1", KindInsertion, fruA, "n1", "n2"),
		started("x1", KindForced, fruB, "n1"),
		ent(TypeHeld, "w1"),
		ent(TypeHookApplied, "w1", member("n1")),
		ent(TypeHookRefused, "w1", func(e *Entry) { e.Member = "n2" }),
		ent(TypeActivationConfirmed, "w1"),
		ent(TypeWipeResult, "x1", func(e *Entry) { e.OK = true; e.Digest = dig("c") }),
		ent(TypeOverrideGranted, "x1"),
		ent(TypeAborted, "x1"),
	} {
		b, err := e.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// A verified wipe with its certificates, and a copy with one byte of
	// the certificates changed.
	key := newKey(f)
	certs := issueCerts(f, key, "n1", 1)
	withCerts, err := ent(TypeWipeResult, "x1", func(e *Entry) {
		e.OK, e.Attempt, e.Certificates, e.SignerKey, e.Digest = true, 1, certs, pkix(f, key.Public()), string(DigestOf(certs))
	}).Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(withCerts)
	f.Add(bytes.Replace(withCerts, []byte("secret-0"), []byte("secret-1"), 1))
	f.Add([]byte(`{"v":1,"type":"retry","workflow":"w","attempt":-1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		m := NewMachine()
		r := m.Apply(1, b).(Result)
		if err != nil {
			if r.Err == nil {
				t.Fatal("Apply accepted what DecodeEntry refused")
			}
			return
		}
		again, err := e.Encode()
		if err != nil {
			t.Fatalf("a decoded entry does not encode: %v", err)
		}
		e2, err := DecodeEntry(again)
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if third, _ := e2.Encode(); !bytes.Equal(third, again) {
			t.Fatalf("round trip not stable:\n%s\n%s", again, third)
		}
		_ = m.NextActions()
		if _, err := m.Snapshot(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAbortDuringHardwareStep(t *testing.T) {
	a := newApplier(t)
	a.apply(started("w1", KindInsertion, fruA, "n1"))
	a.apply(ent(TypeHeld, "w1"))
	a.apply(ent(TypeHookApplied, "w1", member("n1")))
	if r := a.apply(ent(TypeAborted, "w1")); r.Accepted {
		t.Fatal("automatic abort during activation accepted")
	}
	r := a.apply(ent(TypeAborted, "w1", func(e *Entry) { e.Actor = "alice"; e.Reason = "board dead" }))
	if !r.Accepted || r.Outcome != OutcomeAborted || !strings.Contains(r.Alarm, "alice") {
		t.Fatalf("operator abort: %+v", r)
	}
	if _, busy := a.m.ActiveFor(fruA); busy {
		t.Fatal("FRU still busy")
	}
}
