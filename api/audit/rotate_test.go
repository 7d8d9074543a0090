package audit

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// rotatedFiles returns the log's files oldest first: the rotated ones by
// name (their suffix is the last seq, zero-padded), then the current one.
func rotatedFiles(t *testing.T, path string) []string {
	t.Helper()
	old, err := filepath.Glob(path + ".*")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(old)
	return append(old, path)
}

func verifyPaths(t *testing.T, paths []string, anchors ...Anchor) (VerifyReport, error) {
	t.Helper()
	var files []File
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, File{Name: filepath.Base(p), R: f})
	}
	return VerifyFiles(files, anchors...)
}

func TestRotationKeepsOneChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openT(t, path, Options{MaxBytes: 2000, Logger: quietLog()})
	const n = 40
	for i := 1; i <= n; i++ {
		if err := l.Append(ctx, rec(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	seq, hash := l.Last()
	paths := rotatedFiles(t, path)
	if len(paths) < 3 {
		t.Fatalf("%d files after %d records with MaxBytes 2000, want several", len(paths), n)
	}
	for _, p := range paths[:len(paths)-1] {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("rotated file %s: %v %v", p, fi, err)
		}
	}
	// Together: one chain, every record once, the rotation records
	// included, ending where the log says it ends.
	rep, err := verifyPaths(t, paths, Anchor{Seq: seq, Hash: hash})
	if err != nil {
		t.Fatalf("VerifyFiles: %v", err)
	}
	if rep.FirstSeq != 1 || rep.LastSeq != seq || rep.Records != int(seq) || seq != uint64(n+len(paths)-1) {
		t.Fatalf("report %+v, last seq %d, want %d records and one rotation record per rotation", rep, seq, n+len(paths)-1)
	}
	// Each file alone verifies too; the current one starts with the
	// rotation record naming the file it continues.
	for _, p := range paths {
		if rep, err := verifyPaths(t, []string{p}); err != nil {
			t.Errorf("%s alone: %v", p, err)
		} else if p == path && (rep.FirstSeq <= 1 || rep.FirstPrev == Genesis) {
			t.Errorf("the current file does not continue a rotated one: %+v", rep)
		}
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(strings.SplitN(string(b), "\n", 2)[0], `"action":"audit.rotate","target":"`+filepath.Base(paths[len(paths)-2])+`"`) {
		t.Errorf("first record of the current file: %s", strings.SplitN(string(b), "\n", 2)[0])
	}
	// Reopened, the log goes on from the current file.
	l.Close()
	l2 := openT(t, path, Options{MaxBytes: 2000, Logger: quietLog()})
	if s2, h2 := l2.Last(); s2 != seq || h2 != hash {
		t.Fatalf("reopened at %d %s, want %d %s", s2, h2, seq, hash)
	}
	if err := l2.Append(ctx, rec(n+1)); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyPaths(t, rotatedFiles(t, path)); err != nil {
		t.Fatalf("after reopening: %v", err)
	}
}

func TestVerifyFilesDetectsMissingAndReorderedFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openT(t, path, Options{MaxBytes: 1500, Logger: quietLog()})
	for i := 1; i <= 40; i++ {
		if err := l.Append(ctx, rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	paths := rotatedFiles(t, path)
	if len(paths) < 4 {
		t.Fatalf("%d files, want at least 4", len(paths))
	}
	for _, tc := range []struct {
		name  string
		files []string
		kind  ProblemKind
	}{
		{"a middle file removed", slices.Delete(slices.Clone(paths), 1, 2), ProblemSeq},
		{"two files swapped", append([]string{paths[1], paths[0]}, paths[2:]...), ProblemChain},
		{"the oldest file removed and the chain's start hidden", paths[1:], ""},
		{"a file given twice", append(slices.Clone(paths[:2]), paths[1:]...), ProblemSeq},
	} {
		rep, err := verifyPaths(t, tc.files)
		if tc.kind == "" {
			// Without the oldest file the set still verifies: what is
			// missing before it shows only as FirstSeq above 1, which an
			// anchor or an archive has to account for.
			if err != nil || rep.FirstSeq <= 1 {
				t.Errorf("%s: %+v %v", tc.name, rep, err)
			}
			continue
		}
		var ce *ChainError
		if !errors.As(err, &ce) || ce.First.Kind != tc.kind || ce.First.File == "" {
			t.Errorf("%s: %v, want a %s problem naming the file", tc.name, err, tc.kind)
		}
	}
	// A file put after the set that is not a continuation: its first
	// record is not the rotation record.
	other := filepath.Join(t.TempDir(), "other.log")
	lo := openT(t, other, Options{})
	lo.Append(ctx, rec(1))
	lo.Close()
	_, err := verifyPaths(t, append(slices.Clone(paths), other))
	var ce *ChainError
	if !errors.As(err, &ce) || ce.First.Kind != ProblemChain || !strings.Contains(ce.First.Message, "audit.rotate") {
		t.Errorf("foreign file appended: %v", err)
	}
	// A file whose head was cut (its rotation record removed) no longer
	// verifies alone.
	b, _ := os.ReadFile(path)
	cut := filepath.Join(t.TempDir(), "cut.log")
	os.WriteFile(cut, []byte(strings.SplitN(string(b), "\n", 2)[1]), 0o600)
	if _, err := verifyPaths(t, []string{cut}); err == nil && strings.Count(string(b), "\n") > 1 {
		t.Error("a rotated file without its rotation record verified")
	}
}

// A rotation that cannot create the new file puts the old file back:
// the record is refused, nothing is lost, and the next Append rotates.
func TestRotationFailureLosesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openT(t, path, Options{MaxBytes: -1, Logger: quietLog()})
	for i := 1; i <= 3; i++ {
		if err := l.Append(ctx, rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.maxBytes = 1 // the next Append rotates
	seq, _ := l.Last()
	fail := errors.New("injected: no inode left")
	l.create = func(string) (*os.File, error) { return nil, fail }
	if err := l.Append(ctx, rec(4)); !errors.Is(err, fail) {
		t.Fatalf("Append during a failing rotation: %v", err)
	}
	if s, _ := l.Last(); s != seq {
		t.Fatalf("seq moved to %d after a refused record", s)
	}
	if files := rotatedFiles(t, path); len(files) != 1 {
		t.Fatalf("files after a failed rotation: %v", files)
	}
	if rep, err := verifyPaths(t, []string{path}); err != nil || rep.LastSeq != seq {
		t.Fatalf("log after a failed rotation: %+v %v", rep, err)
	}
	l.create = createExclusive
	if err := l.Append(ctx, rec(4)); err != nil {
		t.Fatalf("Append once creating works again: %v", err)
	}
	if _, err := verifyPaths(t, rotatedFiles(t, path)); err != nil {
		t.Fatal(err)
	}
}

func TestNoRotationWhenDisabled(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openT(t, path, Options{MaxBytes: -1})
	for i := 1; i <= 30; i++ {
		if err := l.Append(context.Background(), rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if files := rotatedFiles(t, path); len(files) != 1 {
		t.Fatalf("rotated with MaxBytes -1: %v", files)
	}
}
