package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var t0 = time.Date(2026, 11, 23, 16, 0, 0, 123456789, time.UTC)

// fixedClock returns a clock that advances one second per call.
func fixedClock() func() time.Time {
	var mu sync.Mutex
	n := 0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		n++
		return t0.Add(time.Duration(n) * time.Second)
	}
}

func openT(t *testing.T, path string, opts Options) *Log {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedClock()
	}
	l, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func rec(i int) Record {
	return Record{Actor: "client/ops", Roles: []string{"operator"}, Action: "power.set",
		Target: fmt.Sprintf("res/%d", i), Result: "ok", Detail: fmt.Sprintf("state=on #%d", i)}
}

// writeLog writes n records to a new log and returns its path and lines.
func writeLog(t *testing.T, n int) (string, [][]byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openT(t, path, Options{})
	for i := 1; i <= n; i++ {
		if err := l.Append(context.Background(), rec(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, bytes.SplitAfter(b, []byte("\n"))[:n]
}

func TestAppendConcurrentAndVerify(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openT(t, path, Options{})
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := l.Append(context.Background(), rec(w*100+i)); err != nil {
					t.Errorf("Append: %v", err)
				}
			}
		})
	}
	wg.Wait()
	seq, hash := l.Last()
	if seq != workers*each {
		t.Fatalf("Last seq = %d, want %d", seq, workers*each)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Verify(f)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.Records != workers*each || rep.LastSeq != seq || rep.LastHash != hash || !rep.OK() {
		t.Fatalf("report %+v, want %d records ending at %d/%s", rep, workers*each, seq, hash)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestAppendFillsFields(t *testing.T) {
	t.Parallel()
	path, lines := writeLog(t, 2)
	_ = path
	r1, err := ParseLine(lines[0])
	if err != nil {
		t.Fatal(err)
	}
	r2, err := ParseLine(lines[1])
	if err != nil {
		t.Fatal(err)
	}
	if r1.Seq != 1 || r1.Prev != Genesis || r2.Seq != 2 || r2.Prev != r1.Hash {
		t.Fatalf("chain fields wrong: %+v %+v", r1, r2)
	}
	if !r1.Time.Equal(t0.Add(time.Second)) || !r2.Time.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("times %v %v not from the injected clock", r1.Time, r2.Time)
	}
	want := rec(1)
	if r1.Actor != want.Actor || r1.Action != want.Action || r1.Target != want.Target ||
		r1.Result != want.Result || r1.Detail != want.Detail || strings.Join(r1.Roles, ",") != "operator" {
		t.Fatalf("record read back %+v, wrote %+v", r1, want)
	}
}

func TestAppendKeepsGivenTimeAndRefusesBadRecords(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openT(t, path, Options{})
	given := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	if err := l.Append(context.Background(), Record{Action: "a", Time: given, Seq: 99, Prev: "x", Hash: "y"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		r    Record
		ctx  func() context.Context
	}{
		{"no action", Record{Actor: "x"}, context.Background},
		{"too large", Record{Action: "a", Detail: strings.Repeat("x", MaxLineBytes)}, context.Background},
		{"year out of range", Record{Action: "a", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, context.Background},
		{"cancelled", Record{Action: "a"}, func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}},
	}
	for _, tc := range tests {
		if err := l.Append(tc.ctx(), tc.r); err == nil {
			t.Errorf("%s: Append succeeded", tc.name)
		}
	}
	if seq, _ := l.Last(); seq != 1 {
		t.Fatalf("refused records changed the log: seq %d", seq)
	}
	l.Close()
	b, _ := os.ReadFile(path)
	r, err := ParseLine(b)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Time.Equal(given) || r.Seq != 1 || r.Prev != Genesis {
		t.Fatalf("got %+v", r)
	}
	if err := l.Append(context.Background(), Record{Action: "a"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
}

func TestReopenContinuesChain(t *testing.T) {
	t.Parallel()
	path, _ := writeLog(t, 3)
	l := openT(t, path, Options{})
	if seq, _ := l.Last(); seq != 3 {
		t.Fatalf("reopened at seq %d", seq)
	}
	if err := l.Append(context.Background(), rec(4)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	f, _ := os.Open(path)
	defer f.Close()
	rep, err := Verify(f)
	if err != nil || rep.Records != 4 {
		t.Fatalf("Verify after reopen: %+v %v", rep, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	readable := filepath.Join(dir, "readable.log")
	os.WriteFile(readable, nil, 0o600)
	os.Chmod(readable, 0o640)
	target := filepath.Join(dir, "target.log")
	os.WriteFile(target, nil, 0o600)
	link := filepath.Join(dir, "link.log")
	os.Symlink(target, link)
	tests := []struct{ name, path, want string }{
		{"group readable", readable, "group or others"},
		{"symlink", link, "too many levels of symbolic links"},
		{"directory", dir, "is a directory"},
	}
	for _, tc := range tests {
		_, err := Open(tc.path, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Open err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestOpenLockedByAnother(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	openT(t, path, Options{})
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Fatalf("second Open: %v", err)
	}
}

func TestOpenBrokenLog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mutate   func(lines [][]byte) []byte
		wantLine int
		wantKind ProblemKind
	}{
		{"torn last line", func(l [][]byte) []byte {
			return bytes.Join([][]byte{l[0], l[1], l[2][:40]}, nil)
		}, 3, ProblemTorn},
		{"changed record", func(l [][]byte) []byte {
			return bytes.Join([][]byte{l[0], bytes.Replace(l[1], []byte("res/2"), []byte("res/9"), 1), l[2]}, nil)
		}, 2, ProblemHash},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, lines := writeLog(t, 3)
			broken := tc.mutate(lines)
			if err := os.WriteFile(path, broken, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path, Options{})
			var ce *ChainError
			if !errors.As(err, &ce) || !errors.Is(err, ErrBroken) {
				t.Fatalf("Open: %v, want a ChainError", err)
			}
			if ce.First.Line != tc.wantLine || ce.First.Kind != tc.wantKind {
				t.Fatalf("first problem %v, want line %d %s", ce.First, tc.wantLine, tc.wantKind)
			}
			if b, _ := os.ReadFile(path); !bytes.Equal(b, broken) {
				t.Fatal("refused Open changed the file")
			}

			// With AllowBroken nothing is lost: the old bytes stay, a resume
			// record follows, chained to the last record that parsed.
			l := openT(t, path, Options{AllowBroken: true})
			if err := l.Append(context.Background(), rec(10)); err != nil {
				t.Fatal(err)
			}
			l.Close()
			b, _ := os.ReadFile(path)
			if !bytes.HasPrefix(b, broken) {
				t.Fatal("AllowBroken rewrote existing bytes")
			}
			rep, err := Verify(bytes.NewReader(b))
			if err == nil || rep.ProblemCount != 1 || rep.Problems[0].Line != tc.wantLine {
				t.Fatalf("Verify after resume: %+v %v; want only the old problem", rep, err)
			}
			all := bytes.SplitAfter(b, []byte("\n"))
			resume, err := ParseLine(all[len(all)-3])
			if err != nil || resume.Action != "audit.resume" || !strings.Contains(resume.Detail, fmt.Sprintf("line %d", tc.wantLine)) {
				t.Fatalf("resume record %+v %v", resume, err)
			}
		})
	}
}

func TestShortWriteLeavesLogIntact(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openT(t, path, Options{})
	ctx := context.Background()
	if err := l.Append(ctx, rec(1)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	l.write = func(f *os.File, b []byte) (int, error) {
		n, _ := f.Write(b[:len(b)/2])
		return n, unix.ENOSPC
	}
	err := l.Append(ctx, rec(2))
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Append on a full disk: %v, want ErrNoSpace", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatalf("partial record left behind:\n%q", after)
	}
	l.write = (*os.File).Write
	if err := l.Append(ctx, rec(2)); err != nil {
		t.Fatalf("Append after space returned: %v", err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	if rep, err := Verify(f); err != nil || rep.Records != 2 {
		t.Fatalf("Verify: %+v %v", rep, err)
	}
}

func TestFsyncFailureStopsAppends(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openT(t, path, Options{})
	l.sync = func(*os.File) error { return unix.EIO }
	if err := l.Append(context.Background(), rec(1)); !errors.Is(err, unix.EIO) {
		t.Fatalf("Append with failing fsync: %v", err)
	}
	l.sync = (*os.File).Sync
	if err := l.Append(context.Background(), rec(2)); err == nil || !strings.Contains(err.Error(), "reopen") {
		t.Fatalf("Append after failed fsync: %v", err)
	}
}

// TestFullTmpfs fills a real 64 KiB tmpfs: the append that does not fit
// fails with ErrNoSpace, nothing written is lost, and appends work again
// once space is freed. Needs permission to mount.
func TestFullTmpfs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v)", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	path := filepath.Join(dir, "audit.log")
	l := openT(t, path, Options{})
	// Fill most of the file system with another file, freed later.
	filler := filepath.Join(dir, "filler")
	os.WriteFile(filler, make([]byte, 40<<10), 0o600)
	ctx := context.Background()
	r := rec(0)
	r.Detail = strings.Repeat("d", 2000)
	var n int
	var err error
	for n = 0; n < 1000; n++ {
		if err = l.Append(ctx, r); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("after %d records: %v, want ErrNoSpace", n, err)
	}
	if n == 0 {
		t.Fatal("nothing fit at all; filler too large")
	}
	f, _ := os.Open(path)
	rep, verr := Verify(f)
	f.Close()
	if verr != nil || rep.Records != n {
		t.Fatalf("after ENOSPC: %+v %v, want %d intact records", rep, verr, n)
	}
	os.Remove(filler)
	if err := l.Append(ctx, r); err != nil {
		t.Fatalf("Append after freeing space: %v", err)
	}
	f, _ = os.Open(path)
	defer f.Close()
	if rep, err := Verify(f); err != nil || rep.Records != n+1 {
		t.Fatalf("final: %+v %v", rep, err)
	}
}

func TestChangedOutsideStopsAppends(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(path string) error
	}{
		{"appended", func(p string) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteString("{\"forged\":1}\n")
			return err
		}},
		{"truncated", func(p string) error { return os.Truncate(p, 0) }},
		{"removed", os.Remove},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "audit.log")
			l := openT(t, path, Options{})
			if err := l.Append(context.Background(), rec(1)); err != nil {
				t.Fatal(err)
			}
			if err := tc.change(path); err != nil {
				t.Fatal(err)
			}
			err := l.Append(context.Background(), rec(2))
			if err == nil || !strings.Contains(err.Error(), "outside the agent") && !strings.Contains(err.Error(), "removed") {
				t.Fatalf("Append after the file was %s: %v", tc.name, err)
			}
			if err := l.Append(context.Background(), rec(3)); err == nil {
				t.Fatal("later Append succeeded")
			}
		})
	}
}
