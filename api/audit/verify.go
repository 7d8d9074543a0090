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
	// File names the file (VerifyFiles), empty for a single log.
	File string `json:"file,omitempty"`
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
	where := fmt.Sprintf("line %d", p.Line)
	if p.File != "" {
		where = p.File + ": " + where
	}
	if p.Seq != 0 {
		return fmt.Sprintf("%s (seq %d): %s: %s", where, p.Seq, p.Kind, p.Message)
	}
	return fmt.Sprintf("%s: %s: %s", where, p.Kind, p.Message)
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
	// FirstSeq and FirstPrev are those of the first record. A log that
	// starts with an "audit.rotate" record (the new file of a rotation)
	// continues another file: FirstSeq is then above 1 and FirstPrev is
	// the last hash of the file it continues.
	FirstSeq  uint64 `json:"first_seq,omitempty"`
	FirstPrev string `json:"first_prev,omitempty"`
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
	v := newVerifier(anchors)
	if err := v.read("", r); err != nil {
		return v.rep, err
	}
	return v.finish()
}

// File is one file of a rotated log for VerifyFiles.
type File struct {
	// Name is what problems are reported against (the file's path).
	Name string
	R    io.Reader
}

// VerifyFiles checks the files of a rotated log, oldest first, as one
// chain: each file after the first must start with the "audit.rotate"
// record continuing the file before it (seq and prev), so a file removed,
// reordered or replaced between them is reported, as is anything Verify
// reports inside a file. Anchors apply to the whole set. Like Verify, it
// cannot see records or whole files cut off the end: compare with an
// anchor.
func VerifyFiles(files []File, anchors ...Anchor) (VerifyReport, error) {
	v := newVerifier(anchors)
	for i, f := range files {
		v.fileLine = 0
		v.newFile = i > 0
		if err := v.read(f.Name, f.R); err != nil {
			return v.rep, err
		}
		if v.torn && i < len(files)-1 {
			// A torn line may end only the newest file.
			v.torn = false
		}
	}
	return v.finish()
}

func newVerifier(anchors []Anchor) *verifier {
	v := &verifier{anchors: map[uint64]string{}}
	v.init()
	for _, a := range anchors {
		v.anchors[a.Seq] = a.Hash
	}
	return v
}

// read checks every line of one file.
func (v *verifier) read(name string, r io.Reader) error {
	v.file = name
	br := bufio.NewReaderSize(r, MaxLineBytes+1)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			v.nextLine()
			n, derr := drainLine(br)
			if derr != nil && !errors.Is(derr, io.EOF) {
				return fmt.Errorf("reading audit log %sline %d: %w", prefix(name), v.fileLine, derr)
			}
			v.problem(Problem{Kind: ProblemTooLong, Message: fmt.Sprintf("line longer than %d bytes (%d+)", MaxLineBytes, len(line)+n)})
			if errors.Is(derr, io.EOF) {
				v.rep.Torn, v.torn = true, true
				return nil
			}
			continue
		case errors.Is(err, io.EOF):
			if len(line) > 0 {
				v.nextLine()
				v.rep.Torn, v.torn = true, true
				v.problem(Problem{Kind: ProblemTorn, Message: fmt.Sprintf("last line has no newline (%d bytes): a write cut short or a cut file", len(line))})
			}
			return nil
		case err != nil:
			return fmt.Errorf("reading audit log %safter line %d: %w", prefix(name), v.fileLine, err)
		}
		v.nextLine()
		v.line(line[:len(line)-1])
	}
}

func prefix(name string) string {
	if name == "" {
		return ""
	}
	return name + " "
}

func (v *verifier) nextLine() {
	v.rep.Lines++
	v.fileLine++
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
	// file and fileLine say where problems are; newFile is set while a
	// file after the first has not yet shown its first record; torn that
	// the file read last ended with a torn line.
	file     string
	fileLine int
	newFile  bool
	torn     bool
}

func (v *verifier) init() {
	v.expSeq, v.expPrev = 1, Genesis
	v.rep.LastHash = Genesis
}

func (v *verifier) problem(p Problem) {
	p.File, p.Line = v.file, v.fileLine
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
	first, newFile := v.rep.Records == 1, v.newFile
	v.newFile = false
	if first {
		v.rep.FirstSeq, v.rep.FirstPrev = w.Seq, w.Prev
	}
	h, err := hashOf(w)
	switch {
	case err == nil && h == w.Hash && first && w.Action == RotateAction && w.Seq > 1:
		// The new file of a rotation: it continues a file not given
		// here, whose last record it names by seq and hash.
	case err == nil && h == w.Hash && newFile && w.Action != RotateAction:
		v.problem(Problem{Seq: w.Seq, Kind: ProblemChain, Message: fmt.Sprintf("the file does not start with the %q record continuing the file before it", RotateAction)})
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
