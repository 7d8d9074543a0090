package fencing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

var testPlan = []LevelPlan{{Name: "picmg", Attempts: 2}, {Name: "chassis", Attempts: 1}}

func mustEncode(t testing.TB, c Command) []byte {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatalf("encode %+v: %v", c, err)
	}
	return b
}

func fenceReq(target, id string) Command {
	return Command{Kind: KindFenceRequested, Target: target, ID: id, Action: ActionOff, Source: SourceMemberDead, Reason: "member dead", Plan: testPlan}
}

func apply(t testing.TB, m *Machine, idx uint64, c Command) Outcome {
	t.Helper()
	o := m.Apply(idx, mustEncode(t, c)).(Outcome)
	if o.Err != nil {
		t.Fatalf("apply %d %+v: %v", idx, c, o.Err)
	}
	return o
}

func TestMachineScenarios(t *testing.T) {
	type step struct {
		c        Command
		accepted bool
		phase    Phase
		done     bool
		failed   bool
	}
	started := func(id string, level, attempt int) Command {
		return Command{Kind: KindLevelStarted, Target: "n1", ID: id, Level: level, Attempt: attempt}
	}
	result := func(id string, level, attempt int, exec uint64, ok bool, rb string) Command {
		return Command{Kind: KindLevelResult, Target: "n1", ID: id, Level: level, Attempt: attempt, Exec: exec, OK: ok, Readback: rb}
	}
	unfence := Command{Kind: KindUnfenceRequested, Target: "n1", ID: "u1", Requester: "alice"}
	tests := []struct {
		name  string
		steps []step // entry i is applied at index i+1
	}{
		{"first level confirms", []step{
			{fenceReq("n1", "f1"), true, PhaseFencing, false, false},
			{started("f1", 0, 1), true, PhaseFencing, false, false},
			{result("f1", 0, 1, 2, true, ReadbackOff), true, PhaseFenced, true, false},
			{fenceReq("n1", "f2"), false, PhaseFenced, false, false}, // stays fenced
		}},
		{"second request while in flight is deduplicated", []step{
			{fenceReq("n1", "f1"), true, PhaseFencing, false, false},
			{fenceReq("n1", "f2"), false, PhaseFencing, false, false},
			{started("f2", 0, 1), false, PhaseFencing, false, false}, // not the op in flight
		}},
		{"success without off read-back is a failure", []step{
			{fenceReq("n1", "f1"), true, PhaseFencing, false, false},
			{started("f1", 0, 1), true, PhaseFencing, false, false},
			{result("f1", 0, 1, 2, true, "on"), true, PhaseFencing, false, false},
			{started("f1", 0, 2), true, PhaseFencing, false, false},
			{result("f1", 0, 2, 4, true, ""), true, PhaseFencing, false, false},
			{started("f1", 1, 1), true, PhaseFencing, false, false},
			{result("f1", 1, 1, 6, false, ""), true, PhaseFailed, false, true},
			{fenceReq("n1", "f3"), true, PhaseFencing, false, false}, // failed target can be fenced again
		}},
		{"result without start and stale result ignored", []step{
			{fenceReq("n1", "f1"), true, PhaseFencing, false, false},
			{result("f1", 0, 1, 1, true, ReadbackOff), false, PhaseFencing, false, false},
			{started("f1", 0, 1), true, PhaseFencing, false, false},
			{started("f1", 0, 1), true, PhaseFencing, false, false},                       // new leader resumes
			{result("f1", 0, 1, 3, true, ReadbackOff), false, PhaseFencing, false, false}, // old leader's execution
			{result("f1", 0, 1, 4, true, ReadbackOff), true, PhaseFenced, true, false},
			{result("f1", 0, 1, 4, true, ReadbackOff), false, PhaseFenced, false, false}, // exactly once
		}},
		{"unfence and queued fence", []step{
			{unfence, false, PhaseIdle, false, false}, // not fenced
			{fenceReq("n1", "f1"), true, PhaseFencing, false, false},
			{unfence, false, PhaseFencing, false, false}, // refused while fencing
			{started("f1", 0, 1), true, PhaseFencing, false, false},
			{result("f1", 0, 1, 4, true, ReadbackOff), true, PhaseFenced, true, false},
			{unfence, true, PhaseUnfencing, false, false},
			{fenceReq("n1", "f2"), true, PhaseUnfencing, false, false}, // queued
			{fenceReq("n1", "f3"), false, PhaseUnfencing, false, false},
			{Command{Kind: KindUnfenceStarted, Target: "n1", ID: "u1"}, true, PhaseUnfencing, false, false},
			{Command{Kind: KindUnfenceResult, Target: "n1", ID: "u1", Exec: 9, OK: true, Readback: ReadbackOn}, true, PhaseFencing, false, false},
		}},
		{"failed unfence returns to fenced", []step{
			{fenceReq("n1", "f1"), true, PhaseFencing, false, false},
			{started("f1", 0, 1), true, PhaseFencing, false, false},
			{result("f1", 0, 1, 2, true, ReadbackOff), true, PhaseFenced, true, false},
			{unfence, true, PhaseUnfencing, false, false},
			{Command{Kind: KindUnfenceStarted, Target: "n1", ID: "u1"}, true, PhaseUnfencing, false, false},
			{Command{Kind: KindUnfenceResult, Target: "n1", ID: "u1", Exec: 5, OK: true, Readback: "off"}, true, PhaseFenced, false, false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine()
			for i, s := range tc.steps {
				o := apply(t, m, uint64(i+1), s.c)
				if o.Accepted != s.accepted || o.Phase != s.phase || o.Done != s.done || o.Failed != s.failed {
					t.Fatalf("step %d (%s): got accepted=%v phase=%s done=%v failed=%v (%s), want %v %s %v %v",
						i+1, s.c.Kind, o.Accepted, o.Phase, o.Done, o.Failed, o.Note, s.accepted, s.phase, s.done, s.failed)
				}
			}
		})
	}
}

func TestMachineApplyBadPayload(t *testing.T) {
	m := NewMachine()
	apply(t, m, 1, fenceReq("n1", "f1"))
	before, _ := m.Snapshot()
	for _, p := range [][]byte{nil, []byte("{"), []byte(`{"v":2,"kind":"fence-requested"}`), []byte(`{"v":1,"kind":"nope","target":"a","id":"b"}`)} {
		o := m.Apply(2, p).(Outcome)
		if !errors.Is(o.Err, ErrBadCommand) {
			t.Errorf("payload %q: err %v, want ErrBadCommand", p, o.Err)
		}
	}
	after, _ := m.Snapshot()
	if !bytes.Equal(before, after) {
		t.Fatal("a bad payload changed the state")
	}
}

// genCommand produces a plausible or stale command, biased towards the
// next valid step so sequences reach every phase.
func genCommand(r *rand.Rand, m *Machine, idx uint64) Command {
	targets := []string{"n1", "n2", "n3"}
	tg := targets[r.IntN(len(targets))]
	st, _ := m.State(tg)
	step := NextStep(st)
	id := fmt.Sprintf("op%d", r.IntN(6))
	switch r.IntN(10) {
	case 0, 1:
		c := fenceReq(tg, id)
		if r.IntN(2) == 0 {
			c.Action = ActionReboot
		}
		return c
	case 2:
		return Command{Kind: KindUnfenceRequested, Target: tg, ID: id, Requester: "op"}
	case 3:
		// Random stale or bogus result.
		return Command{Kind: KindLevelResult, Target: tg, ID: id, Level: r.IntN(2), Attempt: 1 + r.IntN(2), Exec: uint64(1 + r.IntN(int(idx))), OK: r.IntN(2) == 0, Readback: []string{ReadbackOff, ReadbackOn, ""}[r.IntN(3)]}
	}
	switch step.Kind {
	case StepStartLevel:
		return Command{Kind: KindLevelStarted, Target: tg, ID: step.ID, Level: step.Level, Attempt: step.Attempt}
	case StepExecuteLevel:
		if r.IntN(4) == 0 { // a new leader re-starts the execution
			return Command{Kind: KindLevelStarted, Target: tg, ID: step.ID, Level: step.Level, Attempt: step.Attempt}
		}
		ok := r.IntN(3) == 0
		rb := ReadbackOn
		if ok && r.IntN(4) != 0 {
			rb = ReadbackOff
		}
		return Command{Kind: KindLevelResult, Target: tg, ID: step.ID, Level: step.Level, Attempt: step.Attempt, Exec: step.Exec, OK: ok, Readback: rb}
	case StepStartUnfence:
		return Command{Kind: KindUnfenceStarted, Target: tg, ID: step.ID}
	case StepExecuteUnfence:
		return Command{Kind: KindUnfenceResult, Target: tg, ID: step.ID, Exec: step.Exec, OK: r.IntN(2) == 0, Readback: ReadbackOn}
	}
	return fenceReq(tg, id)
}

// TestMachineProperties applies random command sequences and checks the
// invariants: never two fences in flight for a target, done only after a
// confirmed read-back of the execution in flight, replay gives the same
// state, snapshot/restore at any point is equivalent.
func TestMachineProperties(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 100; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		m := NewMachine()
		var log [][]byte
		inFlight := map[string]string{} // target -> operation in flight (fencing phase)
		cut := 1 + r.IntN(150)
		var snapAt []byte
		for i := 1; i <= 200; i++ {
			idx := uint64(i)
			c := genCommand(r, m, idx)
			payload := mustEncode(t, c)
			log = append(log, payload)
			before, _ := m.State(c.Target)
			o := m.Apply(idx, payload).(Outcome)
			if o.Err != nil {
				t.Fatalf("seed %d: %v", seed, o.Err)
			}
			after, _ := m.State(c.Target)
			// Never two fences in flight for one target.
			if after.Phase == PhaseFencing {
				if cur, ok := inFlight[c.Target]; ok && cur != after.Fence.ID && before.Phase == PhaseFencing {
					t.Fatalf("seed %d idx %d: fence %s started while %s in flight", seed, idx, after.Fence.ID, cur)
				}
				inFlight[c.Target] = after.Fence.ID
			} else {
				delete(inFlight, c.Target)
			}
			// Done only after a confirmed read-back of the current execution.
			if o.Done {
				if c.Kind != KindLevelResult || !c.OK || c.Readback != ReadbackOff || before.Fence == nil || c.Exec != before.Fence.Exec || c.Exec == 0 {
					t.Fatalf("seed %d idx %d: done by %+v (before %+v)", seed, idx, c, before.Fence)
				}
			}
			if after.Phase == PhaseFenced {
				last := after.Fence.Results[len(after.Fence.Results)-1]
				if !last.OK || last.Readback != ReadbackOff {
					t.Fatalf("seed %d idx %d: fenced without confirmed result %+v", seed, idx, last)
				}
			}
			if before.Phase == PhaseFenced && after.Phase != PhaseFenced && after.Phase != PhaseUnfencing {
				t.Fatalf("seed %d idx %d: fenced target left fenced without unfence (%s by %s)", seed, idx, after.Phase, c.Kind)
			}
			if i == cut {
				snapAt, _ = m.Snapshot()
			}
		}
		want, _ := m.Snapshot()
		// Replay gives the same state.
		replay := NewMachine()
		for i, p := range log {
			replay.Apply(uint64(i+1), p)
		}
		if got, _ := replay.Snapshot(); !bytes.Equal(got, want) {
			t.Fatalf("seed %d: replay differs:\n%s\n%s", seed, got, want)
		}
		// Snapshot at the cut, restore, apply the rest.
		restored := NewMachine()
		if err := restored.Restore(snapAt); err != nil {
			t.Fatalf("seed %d: restore: %v", seed, err)
		}
		for i := cut; i < len(log); i++ {
			restored.Apply(uint64(i+1), log[i])
		}
		if got, _ := restored.Snapshot(); !bytes.Equal(got, want) {
			t.Fatalf("seed %d: snapshot/restore differs", seed)
		}
		// Re-delivering old entries changes nothing.
		for i, p := range log[:10] {
			replay.Apply(uint64(i+1), p)
		}
		if got, _ := replay.Snapshot(); !bytes.Equal(got, want) {
			t.Fatalf("seed %d: re-delivery changed state", seed)
		}
	}
}

func TestRestoreRefusesInconsistent(t *testing.T) {
	m := NewMachine()
	apply(t, m, 1, fenceReq("n1", "f1"))
	good, _ := m.Snapshot()
	bad := []string{
		`{`,
		`{"v":9,"targets":[]}`,
		`{"v":1,"targets":[{"target":"a","phase":"fencing"}]}`,
		`{"v":1,"targets":[{"target":"a","phase":"weird"}]}`,
		`{"v":1,"targets":[{"target":"","phase":"idle"}]}`,
		`{"v":1,"targets":[{"target":"a","phase":"idle"},{"target":"a","phase":"idle"}]}`,
	}
	for _, b := range bad {
		if err := m.Restore([]byte(b)); err == nil {
			t.Errorf("Restore(%s) accepted", b)
		}
	}
	if got, _ := m.Snapshot(); !bytes.Equal(got, good) {
		t.Fatal("a refused snapshot changed the state")
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range []Command{
		fenceReq("n1", "f1"),
		{Kind: KindLevelStarted, Target: "n1", ID: "f1", Level: 1, Attempt: 1},
		{Kind: KindLevelResult, Target: "n1", ID: "f1", Level: 0, Attempt: 1, Exec: 3, OK: true, Readback: ReadbackOff},
		{Kind: KindUnfenceRequested, Target: "n1", ID: "u", Requester: "bob"},
		{Kind: KindUnfenceResult, Target: "n1", ID: "u", Exec: 4, OK: true, Readback: ReadbackOn},
	} {
		f.Add(mustEncode(f, c))
	}
	f.Add([]byte(`{"v":1,"kind":"fence-requested","target":"x","id":"y","plan":[{"name":"a","attempts":99}]}`))
	f.Add([]byte(`{"v":1} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("error %v does not match ErrBadCommand", err)
			}
			return
		}
		// A decoded command re-encodes and decodes to the same command.
		b2, err := Encode(c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		c2, err := Decode(b2)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		j1, _ := json.Marshal(c)
		j2, _ := json.Marshal(c2)
		if !bytes.Equal(j1, j2) {
			t.Fatalf("round trip differs: %s vs %s", j1, j2)
		}
		// Applying never panics and a restore of the snapshot is equal.
		m := NewMachine()
		m.Apply(1, b)
		s, err := m.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		m2 := NewMachine()
		if err := m2.Restore(s); err != nil {
			t.Fatalf("restore own snapshot: %v", err)
		}
	})
}

func FuzzRestore(f *testing.F) {
	m := NewMachine()
	apply(f, m, 1, fenceReq("n1", "f1"))
	apply(f, m, 2, Command{Kind: KindLevelStarted, Target: "n1", ID: "f1", Level: 0, Attempt: 1})
	good, _ := m.Snapshot()
	f.Add(good)
	f.Add([]byte(`{"v":1,"targets":[{"target":"a","phase":"unfencing"}]}`))
	f.Add([]byte(`{"v":1,"last_index":5,"targets":[{"target":"a","phase":"fenced","fence":{"plan":[{"name":"x","attempts":1}],"level":3}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := NewMachine()
		if err := m.Restore(b); err != nil {
			return
		}
		// Whatever was accepted must be usable: next steps and further
		// entries never panic, and a snapshot restores to the same bytes.
		for _, ts := range m.Targets() {
			NextStep(ts)
			p, err := Encode(fenceReq(ts.Target, "fz"))
			if err == nil {
				m.Apply(m.LastIndex()+1, p)
			}
			p, err = Encode(Command{Kind: KindLevelResult, Target: ts.Target, ID: "fz", Level: 0, Attempt: 1, Exec: m.LastIndex(), OK: true, Readback: ReadbackOff})
			if err == nil {
				m.Apply(m.LastIndex()+1, p)
			}
		}
		s1, err := m.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		m2 := NewMachine()
		if err := m2.Restore(s1); err != nil {
			t.Fatalf("own snapshot refused: %v", err)
		}
		if s2, _ := m2.Snapshot(); !bytes.Equal(s1, s2) {
			t.Fatal("snapshot not stable")
		}
	})
}

func TestMachineObserve(t *testing.T) {
	m := NewMachine()
	var got []Outcome
	m.Observe(func(o Outcome) { got = append(got, o) })
	apply(t, m, 1, fenceReq("n1", "f1"))
	apply(t, m, 2, Command{Kind: KindLevelStarted, Target: "n1", ID: "f1", Level: 0, Attempt: 1})
	m.Apply(2, mustEncode(t, Command{Kind: KindLevelStarted, Target: "n1", ID: "f1", Level: 0, Attempt: 1})) // re-delivered
	m.Apply(3, []byte("garbage"))
	apply(t, m, 4, Command{Kind: KindLevelResult, Target: "n1", ID: "f1", Level: 0, Attempt: 1, Exec: 2, OK: true, Readback: ReadbackOff})
	if len(got) != 3 || !got[2].Done || got[0].Kind != KindFenceRequested {
		t.Fatalf("observed %+v", got)
	}
}
