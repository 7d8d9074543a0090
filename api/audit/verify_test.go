package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// chainBytes builds a valid log of n records in memory.
func chainBytes(t testing.TB, n int) [][]byte {
	t.Helper()
	prev := Genesis
	var lines [][]byte
	for i := 1; i <= n; i++ {
		r := rec(i)
		r.Time = t0.Add(time.Duration(i) * time.Second)
		r.Seq, r.Prev = uint64(i), prev
		w, err := toWire(r)
		if err != nil {
			t.Fatal(err)
		}
		line, h, err := encodeLine(w)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
		prev = h
	}
	return lines
}

// rehash re-signs a changed line as an attacker who knows the format would.
func rehash(t *testing.T, line []byte) []byte {
	t.Helper()
	var w wire
	if err := json.Unmarshal(line, &w); err != nil {
		t.Fatal(err)
	}
	b, _, err := encodeLine(w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	type want struct {
		line int
		seq  uint64
		kind ProblemKind
	}
	tests := []struct {
		name   string
		mutate func(l [][]byte) [][]byte
		want   *want
	}{
		{"intact", func(l [][]byte) [][]byte { return l }, nil},
		{"empty log", func(l [][]byte) [][]byte { return nil }, nil},
		{"changed field", func(l [][]byte) [][]byte {
			l[2] = bytes.Replace(l[2], []byte(`"result":"ok"`), []byte(`"result":"no"`), 1)
			return l
		}, &want{3, 3, ProblemHash}},
		{"changed field and rehashed", func(l [][]byte) [][]byte {
			l[2] = rehash(t, bytes.Replace(l[2], []byte(`"result":"ok"`), []byte(`"result":"no"`), 1))
			return l
		}, &want{4, 4, ProblemChain}},
		{"removed record", func(l [][]byte) [][]byte {
			return append(l[:2:2], l[3:]...)
		}, &want{3, 4, ProblemSeq}},
		{"removed first record", func(l [][]byte) [][]byte { return l[1:] }, &want{1, 2, ProblemSeq}},
		{"inserted copy", func(l [][]byte) [][]byte {
			return append(l[:3:3], append([][]byte{l[1]}, l[3:]...)...)
		}, &want{4, 2, ProblemSeq}},
		{"swapped records", func(l [][]byte) [][]byte {
			l[1], l[2] = l[2], l[1]
			return l
		}, &want{2, 3, ProblemSeq}},
		{"forged first record", func(l [][]byte) [][]byte {
			var w wire
			json.Unmarshal(l[0], &w)
			w.Prev = strings.Repeat("1", 64)
			b, _, _ := encodeLine(w)
			l[0] = b
			return l
		}, &want{1, 1, ProblemChain}},
		{"extra member", func(l [][]byte) [][]byte {
			l[1] = bytes.Replace(l[1], []byte(`{"seq"`), []byte(`{"note":"x","seq"`), 1)
			return l
		}, &want{2, 0, ProblemMalformed}},
		{"duplicate member", func(l [][]byte) [][]byte {
			l[1] = bytes.Replace(l[1], []byte(`"actor":"client/ops",`), []byte(`"actor":"client/ops","actor":"root",`), 1)
			return l
		}, &want{2, 0, ProblemMalformed}},
		{"spacing", func(l [][]byte) [][]byte {
			l[1] = bytes.Replace(l[1], []byte(`,"actor"`), []byte(`, "actor"`), 1)
			return l
		}, &want{2, 0, ProblemMalformed}},
		{"non-UTC time rehashed", func(l [][]byte) [][]byte {
			var w wire
			json.Unmarshal(l[1], &w)
			tm, _ := time.Parse(timeLayout, w.Time)
			w.Time = tm.In(time.FixedZone("X", 3600)).Format(timeLayout)
			b, _, _ := encodeLine(w)
			l[1] = b
			return l
		}, &want{2, 0, ProblemMalformed}},
		{"empty line", func(l [][]byte) [][]byte {
			return append(l[:2:2], append([][]byte{[]byte("\n")}, l[2:]...)...)
		}, &want{3, 0, ProblemMalformed}},
		{"torn tail", func(l [][]byte) [][]byte {
			l[4] = l[4][:len(l[4])-1]
			return l
		}, &want{5, 0, ProblemTorn}},
		{"over-long line", func(l [][]byte) [][]byte {
			l[1] = append(bytes.Repeat([]byte("x"), MaxLineBytes+10), '\n')
			return l
		}, &want{2, 0, ProblemTooLong}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := bytes.Join(tc.mutate(chainBytes(t, 5)), nil)
			rep, err := Verify(bytes.NewReader(in))
			if tc.want == nil {
				if err != nil || !rep.OK() {
					t.Fatalf("Verify: %+v %v", rep, err)
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) || !errors.Is(err, ErrBroken) {
				t.Fatalf("Verify err = %v, want a ChainError", err)
			}
			got := ce.First
			if got.Line != tc.want.line || got.Seq != tc.want.seq || got.Kind != tc.want.kind {
				t.Fatalf("first problem %v, want line %d seq %d %s", got, tc.want.line, tc.want.seq, tc.want.kind)
			}
			if rep.OK() || len(rep.Problems) == 0 {
				t.Fatalf("report says OK: %+v", rep)
			}
		})
	}
}

func TestVerifyOneChangeReportedOnce(t *testing.T) {
	t.Parallel()
	l := chainBytes(t, 6)
	l[3] = bytes.Replace(l[3], []byte(`res/4`), []byte(`res/X`), 1)
	rep, _ := Verify(bytes.NewReader(bytes.Join(l, nil)))
	if rep.ProblemCount != 1 {
		t.Fatalf("problems %v, want exactly one", rep.Problems)
	}
	if rep.LastSeq != 6 || rep.Records != 6 {
		t.Fatalf("report %+v", rep)
	}
}

func TestParseLineRoundTripsSanitised(t *testing.T) {
	t.Parallel()
	r := Record{Time: t0, Actor: "a\xffb", Roles: []string{"x\xfe"}, Action: "<act>", Target: "t\u2028", Result: "ok", Detail: "\x00", Seq: 1, Prev: Genesis}
	w, err := toWire(r)
	if err != nil {
		t.Fatal(err)
	}
	line, h, err := encodeLine(w)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash != h || got.Actor != "a\uFFFDb" || got.Roles[0] != "x\uFFFD" || got.Action != "<act>" || got.Target != "t\u2028" || got.Detail != "\x00" {
		t.Fatalf("round trip: %+v", got)
	}
}

func FuzzVerify(f *testing.F) {
	lines := chainBytes(f, 3)
	f.Add(bytes.Join(lines, nil))
	f.Add(bytes.Join([][]byte{lines[0], lines[2]}, nil))
	f.Add(bytes.Join([][]byte{lines[1], lines[0]}, nil))
	f.Add(lines[0][:30])
	f.Add([]byte("\n\n"))
	f.Add([]byte(`{"seq":1}` + "\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := Verify(bytes.NewReader(in))
		if (err == nil) != rep.OK() {
			t.Fatalf("err %v but report OK=%v", err, rep.OK())
		}
		if err != nil && !errors.Is(err, ErrBroken) {
			t.Fatalf("non-chain error from a memory reader: %v", err)
		}
		if rep.Records > rep.Lines || len(rep.Problems) > rep.ProblemCount {
			t.Fatalf("inconsistent report %+v", rep)
		}
		if err == nil {
			// A log that verifies: every line parses, seqs run 1..n.
			for i, line := range bytes.SplitAfter(in, []byte("\n")) {
				if len(line) == 0 {
					continue
				}
				r, perr := ParseLine(line)
				if perr != nil || r.Seq != uint64(i+1) {
					t.Fatalf("verified log, but line %d: %+v %v", i+1, r, perr)
				}
			}
		}
	})
}

// FuzzEncodeVerify: whatever a caller puts in a record, the line Append
// would write verifies and reads back as the sanitised record.
func FuzzEncodeVerify(f *testing.F) {
	f.Add("client/ops", "operator", "power.set", "res/1", "ok", "detail", int64(0))
	f.Add("\xff", "", "<>&", "\u2028", "", "\x00\n", int64(-1))
	f.Fuzz(func(t *testing.T, actor, role, action, target, result, detail string, ns int64) {
		r := Record{Time: t0.Add(time.Duration(ns)), Actor: actor, Action: action, Target: target, Result: result, Detail: detail, Seq: 1, Prev: Genesis}
		if role != "" {
			r.Roles = []string{role, role}
		}
		w, err := toWire(r)
		if err != nil {
			t.Skip()
		}
		line, h, err := encodeLine(w)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(bytes.NewReader(line))
		if err != nil || rep.Records != 1 || rep.LastHash != h {
			t.Fatalf("own line does not verify: %v %+v\n%q", err, rep, line)
		}
		got, err := ParseLine(line)
		if err != nil || got.Detail != validUTF8(detail) || got.Actor != validUTF8(actor) || !got.Time.Equal(r.Time) {
			t.Fatalf("read back %+v %v", got, err)
		}
	})
}

// rewrite recomputes every hash of a changed log, as someone holding the
// file (but not the anchor) could.
func rewrite(t *testing.T, lines [][]byte, change func(w *wire)) [][]byte {
	t.Helper()
	prev := Genesis
	out := make([][]byte, len(lines))
	for i, l := range lines {
		var w wire
		if err := json.Unmarshal(l, &w); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			change(&w)
		}
		w.Prev = prev
		b, h, err := encodeLine(w)
		if err != nil {
			t.Fatal(err)
		}
		out[i], prev = b, h
	}
	return out
}

func TestVerifyAnchored(t *testing.T) {
	t.Parallel()
	lines := chainBytes(t, 5)
	rep, err := Verify(bytes.NewReader(bytes.Join(lines, nil)))
	if err != nil {
		t.Fatal(err)
	}
	last := Anchor{Seq: rep.LastSeq, Hash: rep.LastHash}
	r3, _ := ParseLine(lines[2])
	mid := Anchor{Seq: 3, Hash: r3.Hash}
	tests := []struct {
		name     string
		log      [][]byte
		anchors  []Anchor
		wantKind ProblemKind
		wantLine int
	}{
		{"intact", lines, []Anchor{last, mid}, "", 0},
		{"cut short", lines[:3], []Anchor{last}, ProblemAnchor, 3},
		{"rewritten", rewrite(t, lines, func(w *wire) { w.Result = "denied" }), []Anchor{mid}, ProblemAnchor, 3},
		{"rewritten, without anchor", rewrite(t, lines, func(w *wire) { w.Result = "denied" }), nil, "", 0},
	}
	for _, tc := range tests {
		rep, err := VerifyAnchored(bytes.NewReader(bytes.Join(tc.log, nil)), tc.anchors...)
		if tc.wantKind == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var ce *ChainError
		if !errors.As(err, &ce) || ce.First.Kind != tc.wantKind || ce.First.Line != tc.wantLine || rep.OK() {
			t.Errorf("%s: %v, want %s at line %d", tc.name, err, tc.wantKind, tc.wantLine)
		}
	}
	for _, s := range []string{"0:" + last.Hash, "5:" + last.Hash[:10], "x:y", "5" + last.Hash, "5:" + strings.ToUpper(last.Hash)} {
		if _, err := ParseAnchor(s); err == nil {
			t.Errorf("ParseAnchor(%q) accepted", s)
		}
	}
	if a, err := ParseAnchor(last.String()); err != nil || a != last {
		t.Errorf("ParseAnchor round trip: %v %v", a, err)
	}
}
