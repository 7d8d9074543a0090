package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoSpace is wrapped by Append's error when the file system is full. The
// record was not written and the log is unchanged; Append may be retried
// once space is freed.
var ErrNoSpace = errors.New("no space left for the audit record")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit log is closed")

// Options tunes Open. The zero value is the safe default.
type Options struct {
	// AllowBroken lets Open return a Log for a file whose chain does not
	// verify (a torn last line or a changed record). Default: false, so
	// the agent refuses to add to a log that may have been tampered with
	// until an operator has looked (hpictl audit verify). When set, the
	// problem is logged, nothing is truncated, a torn line is closed with a
	// newline, and an "audit.resume" record naming the problem chains to
	// the last record that parsed; Verify keeps reporting the old break.
	AllowBroken bool

	// Now is the clock for records with a zero Time. Default: time.Now.
	// Tests inject a fixed clock.
	Now func() time.Time

	// Logger receives warnings (a broken log opened with AllowBroken).
	// Default: slog.Default().
	Logger *slog.Logger

	// MaxBytes is the size at which the log is rotated: the file is
	// renamed to <path>.<last seq, 12 digits> and a new file at path
	// starts with an "audit.rotate" record that continues the chain (its
	// seq follows and its prev is the last hash of the renamed file), so
	// the files verify as one chain (VerifyFiles) and each file alone.
	// Rotated files are never deleted here: they are evidence, to be
	// archived by the operator. Default: DefaultMaxBytes; negative: never
	// rotate.
	MaxBytes int64
}

// DefaultMaxBytes is Options.MaxBytes by default: 64 MiB, some hundred
// thousand records, a file still quick to verify at start.
const DefaultMaxBytes = 64 << 20

// RotateAction is the action of the first record of a rotated log's new
// file.
const RotateAction = "audit.rotate"

// Log is an open audit log. Its methods are safe for concurrent use.
type Log struct {
	path   string
	f      *os.File
	now    func() time.Time
	logger *slog.Logger
	report VerifyReport

	// sem serialises appends (a channel so waiting honours ctx).
	sem     chan struct{}
	seq     uint64 // last seq written
	hash    string // hash of the last record written
	size    int64  // file size after the last complete record
	failed  error  // set after a failed fsync; appends refused
	closed  bool
	reserve func(f *os.File, off, n int64) error // fallocate; tests inject
	write   func(f *os.File, b []byte) (int, error)
	sync    func(f *os.File) error
	// maxBytes is Options.MaxBytes (0: never rotate); create opens the
	// new file of a rotation (tests inject failures).
	maxBytes int64
	create   func(path string) (*os.File, error)
}

// Open opens the audit log at path for appending, creating it (mode 0600)
// if missing, and verifies the existing chain. It refuses a file that is a
// symlink or not a regular file, that group or others may access, that is
// owned by another user, or that another process holds open through Open.
// A log that does not verify returns an error wrapping ErrBroken (a
// *ChainError) unless opts.AllowBroken is set.
func Open(path string, opts Options) (*Log, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	_, statErr := os.Lstat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening audit log %s: %w", path, err)
	}
	l, err := open(f, path, created, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

func open(f *os.File, path string, created bool, opts Options) (*Log, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checking audit log %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("audit log %s is not a regular file (%v)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("audit log %s has mode %04o: group or others may access it; use chmod 600", path, perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("audit log %s is owned by uid %d, not by this process (uid %d)", path, st.Uid, os.Geteuid())
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, fmt.Errorf("locking audit log %s (is another agent using it?): %w", path, err)
	}
	if created {
		if err := syncDir(filepath.Dir(path)); err != nil {
			return nil, err
		}
	}

	// Read through a second descriptor; make sure it is the same file.
	rf, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening audit log %s for verification: %w", path, err)
	}
	defer rf.Close()
	rfi, err := rf.Stat()
	if err != nil {
		return nil, fmt.Errorf("checking audit log %s: %w", path, err)
	}
	if !os.SameFile(fi, rfi) {
		return nil, fmt.Errorf("audit log %s was replaced while being opened", path)
	}
	rep, verr := Verify(io.LimitReader(rf, fi.Size()))
	var chainErr *ChainError
	if verr != nil && !errors.As(verr, &chainErr) {
		return nil, fmt.Errorf("verifying audit log %s: %w", path, verr)
	}

	l := &Log{
		path: path, f: f, now: opts.Now, logger: opts.Logger, report: rep,
		sem: make(chan struct{}, 1), seq: rep.LastSeq, hash: rep.LastHash, size: fi.Size(),
		reserve: fallocate, write: (*os.File).Write, sync: (*os.File).Sync,
		maxBytes: opts.MaxBytes, create: createExclusive,
	}
	if l.maxBytes == 0 {
		l.maxBytes = DefaultMaxBytes
	} else if l.maxBytes < 0 {
		l.maxBytes = 0
	}
	if chainErr == nil {
		return l, nil
	}
	if !opts.AllowBroken {
		return nil, fmt.Errorf("opening audit log %s: %w", path, chainErr)
	}
	l.logger.Warn("audit log does not verify; appending anyway as configured",
		"path", path, "first_problem", chainErr.First.String(), "problems", chainErr.Count)
	if rep.Torn {
		if err := l.appendBytes([]byte("\n")); err != nil {
			return nil, fmt.Errorf("closing the torn last line of audit log %s: %w", path, err)
		}
	}
	resume := Record{
		Actor:  "agent",
		Action: "audit.resume",
		Target: path,
		Result: "broken",
		Detail: fmt.Sprintf("log opened with %d problem(s); first: %s", chainErr.Count, chainErr.First),
	}
	if err := l.Append(context.Background(), resume); err != nil {
		return nil, err
	}
	return l, nil
}

// Report returns what Open's verification found.
func (l *Log) Report() VerifyReport { return l.report }

// Last returns the seq and hash of the newest record (0 and Genesis for an
// empty log): the values to anchor outside the file.
func (l *Log) Last() (seq uint64, hash string) {
	l.sem <- struct{}{}
	defer func() { <-l.sem }()
	return l.seq, l.hash
}

// Append adds r to the log. It fills Seq, Prev and Hash, and Time when
// zero, writes the record as one line and fsyncs before returning. On a
// full disk it returns an error wrapping ErrNoSpace and the file is as it
// was. Records larger than MaxLineBytes are refused.
func (l *Log) Append(ctx context.Context, r Record) error {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("appending %q to audit log: %w", r.Action, ctx.Err())
	}
	defer func() { <-l.sem }()
	if l.closed {
		return ErrClosed
	}
	if l.failed != nil {
		return fmt.Errorf("audit log %s refuses appends after an earlier failure (reopen to verify it): %w", l.path, l.failed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("appending %q to audit log: %w", r.Action, err)
	}
	if r.Action == "" {
		return errors.New("audit record without an action")
	}
	if r.Time.IsZero() {
		r.Time = l.now()
	}
	if l.maxBytes > 0 && l.size >= l.maxBytes && l.seq > 0 {
		if err := l.rotate(r.Time); err != nil {
			return fmt.Errorf("appending %q to audit log: %w", r.Action, err)
		}
	}
	return l.appendLocked(r)
}

// appendLocked encodes r after the last record and writes it; the caller
// holds sem.
func (l *Log) appendLocked(r Record) error {
	r.Seq, r.Prev, r.Hash = l.seq+1, l.hash, ""
	w, err := toWire(r)
	if err != nil {
		return fmt.Errorf("appending %q to audit log: %w", r.Action, err)
	}
	line, h, err := encodeLine(w)
	if err != nil {
		return err
	}
	if len(line) > MaxLineBytes {
		return fmt.Errorf("audit record %q is %d bytes, more than %d", r.Action, len(line), MaxLineBytes)
	}
	if err := l.appendBytes(line); err != nil {
		return fmt.Errorf("appending record %d (%s) to audit log %s: %w", r.Seq, r.Action, l.path, err)
	}
	l.seq, l.hash = r.Seq, h
	return nil
}

// appendBytes writes b at the end and fsyncs; the caller holds sem. On a
// failed write the file is cut back to its previous size.
func (l *Log) appendBytes(b []byte) error {
	// The flock is advisory: check that nobody else wrote, cut or removed
	// the file since our last record, so that we never chain onto (or
	// hide behind) a change we did not make.
	fi, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("checking the file: %w", err)
	}
	if fi.Size() != l.size {
		l.failed = fmt.Errorf("the file was changed outside the agent (size %d, expected %d)", fi.Size(), l.size)
		return l.failed
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
		l.failed = errors.New("the file was removed")
		return l.failed
	}
	if err := l.reserve(l.f, l.size, int64(len(b))); err != nil {
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
			return fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		return fmt.Errorf("reserving space: %w", err)
	}
	n, err := l.write(l.f, b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		if n > 0 {
			if terr := l.f.Truncate(l.size); terr != nil {
				l.failed = fmt.Errorf("write failed (%w) and removing the partial record failed: %w", err, terr)
				return l.failed
			}
		}
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
			return fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		return fmt.Errorf("writing: %w", err)
	}
	if err := l.sync(l.f); err != nil {
		// After a failed fsync the kernel may have dropped the pages; the
		// only honest state is "unknown" until reopened and verified.
		l.failed = fmt.Errorf("fsync: %w", err)
		return l.failed
	}
	l.size += int64(len(b))
	return nil
}

// rotate renames the full file to <path>.<last seq> and starts a new file
// at path whose first record continues the chain; the caller holds sem.
// If anything fails before the new file holds its first record, the old
// file is put back and nothing is lost: the caller's record is refused,
// and the next Append tries again.
func (l *Log) rotate(now time.Time) error {
	old := fmt.Sprintf("%s.%012d", l.path, l.seq)
	if _, err := os.Lstat(old); err == nil {
		return fmt.Errorf("rotating audit log %s: %s already exists", l.path, old)
	}
	if err := os.Rename(l.path, old); err != nil {
		return fmt.Errorf("rotating audit log %s: %w", l.path, err)
	}
	undo := func(cause error, nf *os.File) error {
		if nf != nil {
			nf.Close()
			_ = os.Remove(l.path)
		}
		if err := os.Rename(old, l.path); err != nil {
			l.failed = fmt.Errorf("rotation failed (%w) and putting %s back failed: %w", cause, old, err)
			return l.failed
		}
		return fmt.Errorf("rotating audit log %s: %w", l.path, cause)
	}
	nf, err := l.create(l.path)
	if err != nil {
		return undo(err, nil)
	}
	if err := unix.Flock(int(nf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return undo(fmt.Errorf("locking the new file: %w", err), nf)
	}
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		return undo(err, nf)
	}
	prevF, prevSize := l.f, l.size
	l.f, l.size = nf, 0
	rec := Record{Time: now, Actor: "agent", Action: RotateAction, Target: filepath.Base(old), Result: "ok",
		Detail: fmt.Sprintf("continues %s, which ends with record %d", filepath.Base(old), l.seq)}
	if err := l.appendLocked(rec); err != nil {
		if l.failed != nil {
			prevF.Close()
			return err // the new file is in an unknown state: reopen verifies it
		}
		l.f, l.size = prevF, prevSize
		return undo(err, nf)
	}
	if err := prevF.Close(); err != nil {
		l.logger.Warn("closing the rotated audit log", "path", old, "err", err)
	}
	l.logger.Info("audit log rotated", "path", l.path, "rotated_to", old)
	return nil
}

func createExclusive(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
}

// Close closes the log. Appends after Close return ErrClosed.
func (l *Log) Close() error {
	l.sem <- struct{}{}
	defer func() { <-l.sem }()
	if l.closed {
		return nil
	}
	l.closed = true
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("closing audit log %s: %w", l.path, err)
	}
	return nil
}

// fallocate reserves [off, off+n) without changing the file size, so that
// a full disk is found before any byte is written. File systems without
// fallocate are written to directly (a partial write is then cut back).
func fallocate(f *os.File, off, n int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return nil
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening audit log directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing audit log directory %s: %w", dir, err)
	}
	return nil
}
