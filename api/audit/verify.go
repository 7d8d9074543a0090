package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// ErrBroken is wrapped by every error that reports a log whose chain does
// not verify (see ChainError).
var ErrBroken = errors.New("audit log chain is broken")

// ProblemKind classifies what Verify found wrong with a line.
type ProblemKind string

// The kinds of problems Verify reports.
const (
	// ProblemMalformed: the line is not a record in canonical form.
	ProblemMalformed ProblemKind = "malformed"
	// ProblemTooLong: the line is longer than MaxLineBytes.
	ProblemTooLong ProblemKind = "too-long"
	// ProblemHash: the record's content was changed (its hash does not match).
	ProblemHash ProblemKind = "changed"
	// ProblemSeq: the record's seq does not follow the one before it (a
	// record was removed, inserted, duplicated or moved).
	ProblemSeq ProblemKind = "sequence"
	// ProblemChain: the record's prev is not the hash of the record before
	// it (a record before it was replaced, inserted or removed).
	ProblemChain ProblemKind = "chain"
	// ProblemTorn: the last line has no newline (a write cut short by a
	// crash, or a cut file).
	ProblemTorn ProblemKind = "torn"
	// ProblemAnchor: a record named by an Anchor is missing (the log was
	// cut) or has another hash (the log was rewritten).
	ProblemAnchor ProblemKind = "anchor"
)

// Anchor is a record's seq and hash kept outside the log (Log.Last), so
// that Verify can tell a log that was cut short or rewritten as a whole.
type Anchor struct {
	Seq  uint64
	Hash string
}

// ParseAnchor reads an anchor written as "<seq>:<hash>".
func ParseAnchor(s string) (Anchor, error) {
	seq, hash, ok := strings.Cut(s, ":")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil || n == 0 || len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
		return Anchor{}, fmt.Errorf("anchor %q: want <seq>:<64 hex digits of the hash>", s)
	}
	return Anchor{Seq: n, Hash: hash}, nil
}

func (a Anchor) String() string { return fmt.Sprintf("%d:%s", a.Seq, a.Hash) }

// Problem is one thing wrong with one line of a log.
type Problem struct {
	// Line is the 1-based line number in the file.
	Line int `json:"line"`
	// Seq is the seq the line claims, 0 when it does not parse.
	Seq uint64 `json:"seq,omitempty"`
	// Kind classifies the problem.
	Kind ProblemKind `json:"kind"`
	// Message says what is wrong in words.
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Seq != 0 {
		return fmt.Sprintf("line %d (seq %d): %s: %s", p.Line, p.Seq, p.Kind, p.Message)
	}
	return fmt.Sprintf("line %d: %s: %s", p.Line, p.Kind, p.Message)
}

// maxProblems bounds VerifyReport.Problems; ProblemCount keeps counting.
const maxProblems = 1000

// VerifyReport is what Verify found.
type VerifyReport struct {
	// Lines is the number of lines read (a torn last line included).
	Lines int `json:"lines"`
	// Records is the number of lines that parsed as records.
	Records int `json:"records"`
	// LastSeq and LastHash are those of the last line that parsed as a
	// record (0 and Genesis for an empty log): the values to anchor
	// elsewhere, and what the next record chains to.
	LastSeq  uint64 `json:"last_seq"`
	LastHash string `json:"last_hash"`
	// Problems lists what is wrong, in file order (at most 1000).
	Problems []Problem `json:"problems,omitempty"`
	// ProblemCount is the number of problems, including any not listed.
	ProblemCount int `json:"problem_count"`
	// Torn is set when the last line had no newline.
	Torn bool `json:"torn,omitempty"`
}

// OK says whether the chain verified.
func (r VerifyReport) OK() bool { return r.ProblemCount == 0 }

// ChainError is the error Verify and Open return for a log that does not
// verify; it wraps ErrBroken.
type ChainError struct {
	// First is the first problem in file order.
	First Problem
	// Count is the number of problems found.
	Count int
}

func (e *ChainError) Error() string {
	if e.Count > 1 {
		return fmt.Sprintf("%v: %v (and %d more problems)", ErrBroken, e.First, e.Count-1)
	}
	return fmt.Sprintf("%v: %v", ErrBroken, e.First)
}

// Unwrap returns ErrBroken.
func (e *ChainError) Unwrap() error { return ErrBroken }

// Verify reads a whole log and checks every line and the chain. It returns
// a *ChainError (wrapping ErrBroken) when anything is wrong, with the
// report listing every problem by line and seq; other errors are read
// errors. Verify cannot see records cut off the end of the log: compare
// the report's LastSeq and LastHash with an anchor kept elsewhere.
func Verify(r io.Reader) (VerifyReport, error) {
	return VerifyAnchored(r)
}

// VerifyAnchored is Verify that also checks each anchor: the log must hold
// a record with the anchor's seq and hash (else a ProblemAnchor, reported
// at the line of that seq or after the last line).
func VerifyAnchored(r io.Reader, anchors ...Anchor) (VerifyReport, error) {
	var v verifier
	v.init()
	v.anchors = map[uint64]string{}
	for _, a := range anchors {
		v.anchors[a.Seq] = a.Hash
	}
	br := bufio.NewReaderSize(r, MaxLineBytes+1)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			v.rep.Lines++
			n, derr := drainLine(br)
			if derr != nil && !errors.Is(derr, io.EOF) {
				return v.rep, fmt.Errorf("reading audit log line %d: %w", v.rep.Lines, derr)
			}
			v.problem(Problem{Kind: ProblemTooLong, Message: fmt.Sprintf("line longer than %d bytes (%d+)", MaxLineBytes, len(line)+n)})
			if errors.Is(derr, io.EOF) {
				v.rep.Torn = true
				return v.finish()
			}
			continue
		case errors.Is(err, io.EOF):
			if len(line) > 0 {
				v.rep.Lines++
				v.rep.Torn = true
				v.problem(Problem{Kind: ProblemTorn, Message: fmt.Sprintf("last line has no newline (%d bytes): a write cut short or a cut file", len(line))})
			}
			return v.finish()
		case err != nil:
			return v.rep, fmt.Errorf("reading audit log after line %d: %w", v.rep.Lines, err)
		}
		v.rep.Lines++
		v.line(line[:len(line)-1])
	}
}

// drainLine skips the rest of an over-long line, returning bytes skipped.
func drainLine(br *bufio.Reader) (int, error) {
	n := 0
	for {
		b, err := br.ReadSlice('\n')
		n += len(b)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return n, err
	}
}

type verifier struct {
	rep     VerifyReport
	expSeq  uint64
	expPrev string
	anchors map[uint64]string // seq → hash still to be found
}

func (v *verifier) init() {
	v.expSeq, v.expPrev = 1, Genesis
	v.rep.LastHash = Genesis
}

func (v *verifier) problem(p Problem) {
	p.Line = v.rep.Lines
	v.rep.ProblemCount++
	if len(v.rep.Problems) < maxProblems {
		v.rep.Problems = append(v.rep.Problems, p)
	}
}

func (v *verifier) finish() (VerifyReport, error) {
	seqs := make([]uint64, 0, len(v.anchors))
	for seq := range v.anchors {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		v.problem(Problem{Seq: seq, Kind: ProblemAnchor, Message: fmt.Sprintf("anchored record %d is not in the log (last seq %d): records were cut off the end", seq, v.rep.LastSeq)})
	}
	if v.rep.ProblemCount > 0 {
		return v.rep, &ChainError{First: v.rep.Problems[0], Count: v.rep.ProblemCount}
	}
	return v.rep, nil
}

// line checks one complete line (without newline).
func (v *verifier) line(line []byte) {
	w, err := decodeLine(line)
	if err != nil {
		v.problem(Problem{Kind: ProblemMalformed, Message: err.Error()})
		return
	}
	v.rep.Records++
	h, err := hashOf(w)
	switch {
	case err != nil:
		v.problem(Problem{Seq: w.Seq, Kind: ProblemMalformed, Message: err.Error()})
	case h != w.Hash:
		v.problem(Problem{Seq: w.Seq, Kind: ProblemHash, Message: "record changed: its hash does not match its content"})
	case w.Seq > v.expSeq:
		v.problem(Problem{Seq: w.Seq, Kind: ProblemSeq, Message: fmt.Sprintf("expected seq %d: records %d to %d missing, or moved", v.expSeq, v.expSeq, w.Seq-1)})
	case w.Seq < v.expSeq:
		v.problem(Problem{Seq: w.Seq, Kind: ProblemSeq, Message: fmt.Sprintf("expected seq %d: record inserted, duplicated or moved", v.expSeq)})
	case w.Prev != v.expPrev:
		what := fmt.Sprintf("the hash of record %d", w.Seq-1)
		if w.Seq == 1 {
			what = "the genesis value"
		}
		v.problem(Problem{Seq: w.Seq, Kind: ProblemChain, Message: "prev is not " + what + ": a record before it was replaced, removed or inserted"})
	}
	if want, ok := v.anchors[w.Seq]; ok {
		delete(v.anchors, w.Seq)
		if want != w.Hash {
			v.problem(Problem{Seq: w.Seq, Kind: ProblemAnchor, Message: "hash differs from the anchor kept outside the log: the log was rewritten"})
		}
	}
	// Resynchronise on what the file says, so one change is reported once.
	v.expSeq, v.expPrev = w.Seq+1, w.Hash
	v.rep.LastSeq, v.rep.LastHash = w.Seq, w.Hash
}
