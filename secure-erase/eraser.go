package secureerase

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Errors of the safety checks. Nothing was changed when one is returned.
var (
	// ErrNotInPlan says a path is not a target of the wipe plan.
	ErrNotInPlan = errors.New("not in the wipe plan")
	// ErrIdentityMismatch says a device's serial number or WWN is not the
	// one the plan names, or the target is not of the planned kind.
	ErrIdentityMismatch = errors.New("target does not match the wipe plan")
	// ErrBadPlan says a wipe plan is malformed.
	ErrBadPlan = errors.New("invalid wipe plan")
	// ErrNoMethodSucceeded says every method of a target was tried and
	// none erased and verified it.
	ErrNoMethodSucceeded = errors.New("no erase method succeeded")
)

// PlanTarget is one target of a FRU's wipe plan.
type PlanTarget struct {
	// Path names the target. A block device may be named through symbolic
	// links (/dev/disk/by-id/...); a file or directory must be named by its
	// real path: a symbolic link anywhere in it is refused, so that
	// replacing a planned file by a link cannot redirect the erase.
	Path string `json:"path" yaml:"path"`
	Kind Kind   `json:"kind" yaml:"kind"`
	// Serial and WWN, when set, must equal what sysfs reports for the block
	// device; a device that reports none is refused.
	Serial string `json:"serial,omitempty" yaml:"serial,omitempty"`
	WWN    string `json:"wwn,omitempty" yaml:"wwn,omitempty"`
	// Methods are tried in order until one erases and verifies the
	// target. Default for block devices: crypto-erase, blksecdiscard,
	// blkdiscard, overwrite; for files and directories: overwrite (the
	// only method they allow).
	Methods []string `json:"methods,omitempty" yaml:"methods,omitempty"`
}

// WipePlan lists what must be sanitized before a FRU leaves.
type WipePlan struct {
	// FRU is the entity path of the FRU, recorded in certificates.
	FRU     string       `json:"fru" yaml:"fru"`
	Targets []PlanTarget `json:"targets" yaml:"targets"`
	// Destination is the Appendix G media destination, recorded in
	// certificates (for example "internal reuse").
	Destination string `json:"destination,omitempty" yaml:"destination,omitempty"`
}

// DefaultBlockMethods is the method order for block devices without one.
var defaultBlockMethods = []string{"crypto-erase", "blksecdiscard", "blkdiscard", "overwrite"}

func (t PlanTarget) methods() []string {
	if len(t.Methods) > 0 {
		return t.Methods
	}
	if t.Kind == KindBlockDevice {
		return defaultBlockMethods
	}
	return []string{"overwrite"}
}

// Config configures an Eraser.
type Config struct {
	// Signer is the node's private key (ed25519 or ECDSA P-256) that signs
	// certificates. Required: an unsigned certificate proves nothing.
	Signer crypto.Signer
	// Node names the node in certificates; os.Hostname() when empty.
	Node string
	// PerformedBy is recorded as the person performing the sanitization;
	// "hpiagent on <node>" when Name is empty.
	PerformedBy Person
	// Tool names the tool and version in certificates; "hpiagent" version
	// "unknown" when empty. The caller sets the build's version.
	Tool Tool
	// Overwrite configures the built-in methods' writes and verification.
	Overwrite OverwriteConfig
	// Methods replaces the built-in methods (crypto-erase, blksecdiscard,
	// blkdiscard, overwrite) when not nil; names must be unique.
	Methods []Method
	// Store, when set, receives every certificate issued.
	Store *Store
	// Progress receives progress reports of every method; may be nil.
	Progress ProgressFunc
	// Logger receives the audit records (refusals, attempts, outcomes);
	// slog.Default() when nil. Keys and data are never logged.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// SysRoot and ProcRoot are where sysfs and procfs are mounted; "/sys"
	// and "/proc" when empty.
	SysRoot  string
	ProcRoot string
}

// Eraser runs wipe plans. It is safe for concurrent use on different
// targets.
type Eraser struct {
	cfg     Config
	methods map[string]Method
	sys     sysfs
	log     *slog.Logger
}

// New returns an Eraser.
func New(cfg Config) (*Eraser, error) {
	if cfg.Signer == nil {
		return nil, errors.New("secure erase: no signer for certificates")
	}
	if _, err := keyID(cfg.Signer.Public()); err != nil {
		return nil, fmt.Errorf("secure erase: signer: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Overwrite.Now = cfg.Now
	if cfg.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("secure erase: node name: %w", err)
		}
		cfg.Node = h
	}
	if cfg.PerformedBy.Name == "" {
		cfg.PerformedBy.Name = "hpiagent on " + cfg.Node
	}
	if cfg.Tool.Name == "" {
		cfg.Tool.Name = "hpiagent"
	}
	if cfg.Tool.Version == "" {
		cfg.Tool.Version = "unknown"
	}
	if cfg.SysRoot == "" {
		cfg.SysRoot = "/sys"
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if err := cfg.Overwrite.withDefaults().validate(); err != nil {
		return nil, fmt.Errorf("secure erase: %w", err)
	}
	e := &Eraser{cfg: cfg, methods: map[string]Method{}, sys: sysfs{root: cfg.SysRoot, proc: cfg.ProcRoot}, log: cfg.Logger}
	if e.log == nil {
		e.log = slog.Default()
	}
	ms := cfg.Methods
	if ms == nil {
		ms = []Method{
			&CryptoErase{Config: cfg.Overwrite},
			&Discard{Secure: true, Check: cfg.Overwrite},
			&Discard{Check: cfg.Overwrite},
			&Overwrite{Config: cfg.Overwrite},
		}
	}
	for _, m := range ms {
		if _, dup := e.methods[m.Name()]; dup {
			return nil, fmt.Errorf("secure erase: method %q twice", m.Name())
		}
		e.methods[m.Name()] = m
	}
	return e, nil
}

// Validate checks a plan against the Eraser's methods.
func (e *Eraser) Validate(plan WipePlan) error {
	if len(plan.Targets) == 0 {
		return fmt.Errorf("wipe plan of %q has no targets: %w", plan.FRU, ErrBadPlan)
	}
	for i, t := range plan.Targets {
		if !filepath.IsAbs(t.Path) {
			return fmt.Errorf("wipe plan target %d: path %q is not absolute: %w", i, t.Path, ErrBadPlan)
		}
		switch t.Kind {
		case KindBlockDevice:
		case KindFile, KindDirectory:
			if t.Serial != "" || t.WWN != "" {
				return fmt.Errorf("wipe plan target %s: serial/WWN apply to block devices only: %w", t.Path, ErrBadPlan)
			}
			for _, m := range t.Methods {
				if m != "overwrite" && !(t.Kind == KindFile && m == "crypto-erase") {
					return fmt.Errorf("wipe plan target %s: method %q does not apply to a %s: %w", t.Path, m, t.Kind, ErrBadPlan)
				}
			}
		default:
			return fmt.Errorf("wipe plan target %s: kind %q: %w", t.Path, t.Kind, ErrBadPlan)
		}
		for _, m := range t.methods() {
			if _, ok := e.methods[m]; !ok {
				return fmt.Errorf("wipe plan target %s: unknown method %q: %w", t.Path, m, ErrBadPlan)
			}
		}
	}
	return nil
}

// match finds the plan target path resolves to.
func (e *Eraser) match(plan WipePlan, path string) (PlanTarget, string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return PlanTarget{}, "", fmt.Errorf("resolving %s: %w", path, err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return PlanTarget{}, "", fmt.Errorf("resolving %s: %w", path, err)
	}
	for _, t := range plan.Targets {
		tr, err := filepath.EvalSymlinks(t.Path)
		if err != nil || tr != resolved {
			continue
		}
		if t.Kind != KindBlockDevice && tr != filepath.Clean(t.Path) {
			return PlanTarget{}, "", fmt.Errorf("wipe plan names %s through a symbolic link (it resolves to %s): %w",
				t.Path, tr, ErrIdentityMismatch)
		}
		return t, resolved, nil
	}
	return PlanTarget{}, "", fmt.Errorf("%s (resolved %s) of FRU %q: %w", path, resolved, plan.FRU, ErrNotInPlan)
}

func (e *Eraser) progress(target string) ProgressFunc {
	if e.cfg.Progress == nil {
		return nil
	}
	return func(p Progress) {
		p.Target = target
		e.cfg.Progress(p)
	}
}

// EraseAll erases every target of plan in order and returns the
// certificates issued (failed ones included); the error joins every
// target's error.
func (e *Eraser) EraseAll(ctx context.Context, plan WipePlan) ([]*Certificate, error) {
	if err := e.Validate(plan); err != nil {
		return nil, err
	}
	var certs []*Certificate
	var errs []error
	for _, t := range plan.Targets {
		c, err := e.Erase(ctx, plan, t.Path)
		if c != nil {
			certs = append(certs, c)
		}
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return certs, errors.Join(errs...)
}

// Erase erases the one target of plan that path names and returns its
// signed certificate. A refusal (not in the plan, identity mismatch, device
// in use) returns no certificate: nothing was changed. Once the target is
// opened, the outcome is certified either way: a certificate with Outcome
// OutcomeFailed and the error when no method erased and verified it (a
// cancelled erase included).
func (e *Eraser) Erase(ctx context.Context, plan WipePlan, path string) (*Certificate, error) {
	if err := e.Validate(plan); err != nil {
		return nil, err
	}
	pt, resolved, err := e.match(plan, path)
	if err != nil {
		e.log.Warn("secure erase refused", "fru", plan.FRU, "path", path, "err", err)
		return nil, fmt.Errorf("secure erase: %w", err)
	}
	id, err := newCertID()
	if err != nil {
		return nil, err
	}
	cert := &Certificate{ID: id, FRU: plan.FRU, Node: e.cfg.Node, PerformedBy: e.cfg.PerformedBy, Target: resolved,
		Started: e.cfg.Now(), Destination: plan.Destination, Outcome: OutcomeFailed}
	cert.Sanitization.Tool = e.cfg.Tool
	cert.Sanitization.Attempts = []Attempt{}
	var opened bool
	switch pt.Kind {
	case KindDirectory:
		opened, err = e.eraseDir(ctx, pt, resolved, cert)
	default:
		opened, err = e.eraseOne(ctx, pt, resolved, cert)
	}
	if !opened {
		e.log.Warn("secure erase refused", "fru", plan.FRU, "path", resolved, "err", err)
		return nil, fmt.Errorf("secure erase: %w", err)
	}
	cert.Completed = e.cfg.Now()
	if err == nil {
		cert.Outcome = OutcomeSuccess
	} else {
		cert.Error = err.Error()
	}
	if serr := cert.Sign(e.cfg.Signer); serr != nil {
		return nil, errors.Join(err, serr)
	}
	if e.cfg.Store != nil {
		if serr := e.cfg.Store.Save(cert); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	e.log.Info("secure erase done", "fru", plan.FRU, "target", resolved, "certificate", cert.ID,
		"outcome", cert.Outcome, "method", cert.Sanitization.Method, "err", err)
	if err != nil {
		return cert, fmt.Errorf("secure erase of %s: %w", resolved, err)
	}
	return cert, nil
}

// open runs the safety checks and opens a block device or regular file.
func (e *Eraser) open(pt PlanTarget, resolved string) (*Target, error) {
	var st unix.Stat_t
	if err := unix.Lstat(resolved, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", resolved, err)
	}
	t := &Target{Path: resolved, Kind: pt.Kind}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		if pt.Kind != KindBlockDevice {
			return nil, fmt.Errorf("%s is a block device, the plan says %s: %w", resolved, pt.Kind, ErrIdentityMismatch)
		}
		m, err := e.sys.media(resolved, st.Rdev, 0)
		if err != nil {
			return nil, err
		}
		if pt.Serial != "" && m.Serial != pt.Serial {
			return nil, fmt.Errorf("%s has serial %q, the plan names %q: %w", resolved, m.Serial, pt.Serial, ErrIdentityMismatch)
		}
		if pt.WWN != "" && !strings.EqualFold(m.WWN, pt.WWN) {
			return nil, fmt.Errorf("%s has WWN %q, the plan names %q: %w", resolved, m.WWN, pt.WWN, ErrIdentityMismatch)
		}
		if err := e.sys.checkNotInUse(resolved, st.Rdev); err != nil {
			return nil, err
		}
		// O_EXCL makes the kernel refuse a device that is mounted or held,
		// closing the window after the checks above.
		f, err := os.OpenFile(resolved, os.O_RDWR|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.EBUSY) {
				return nil, fmt.Errorf("opening %s exclusively: %w: %w", resolved, ErrInUse, err)
			}
			return nil, fmt.Errorf("opening %s: %w", resolved, err)
		}
		var fst unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &fst); err != nil || fst.Rdev != st.Rdev {
			f.Close()
			return nil, fmt.Errorf("%s changed while it was opened: %w", resolved, ErrIdentityMismatch)
		}
		size, err := blockSize(f)
		if err != nil {
			f.Close()
			return nil, err
		}
		m.Size = size
		t.File, t.Size, t.Media = f, size, m
	case unix.S_IFREG:
		if pt.Kind != KindFile {
			return nil, fmt.Errorf("%s is a regular file, the plan says %s: %w", resolved, pt.Kind, ErrIdentityMismatch)
		}
		f, err := openSameFile(unix.AT_FDCWD, resolved, resolved, &st)
		if err != nil {
			return nil, err
		}
		t.File, t.Size = f, st.Size
		t.Media = Media{Type: "file", Path: resolved, Size: st.Size, Device: majMin(st.Dev)}
	default:
		return nil, fmt.Errorf("%s is neither a block device nor a regular file (mode %#o): %w", resolved, st.Mode&unix.S_IFMT, ErrIdentityMismatch)
	}
	return t, nil
}

// openSameFile opens name (relative to dirfd) read-write without following
// a symbolic link and checks it is still the file st describes.
func openSameFile(dirfd int, name, display string, st *unix.Stat_t) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", display, err)
	}
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil || fst.Dev != st.Dev || fst.Ino != st.Ino || fst.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s changed while it was opened: %w", display, ErrIdentityMismatch)
	}
	return os.NewFile(uintptr(fd), display), nil
}

// methodUsed is the Appendix G "Method Used" of a method.
func methodUsed(name string) string {
	switch name {
	case "crypto-erase":
		return "Cryptographic Erase"
	case "blksecdiscard":
		return "Block Erase"
	case "blkdiscard":
		return "Other: discard (unmap), verified to read back zeros"
	case "overwrite":
		return "Overwrite"
	}
	return "Other: " + name
}

// eraseOne erases a block device or a file; opened is false when a safety
// check refused it.
func (e *Eraser) eraseOne(ctx context.Context, pt PlanTarget, resolved string, cert *Certificate) (opened bool, err error) {
	t, err := e.open(pt, resolved)
	if err != nil {
		return false, err
	}
	cert.Media = t.Media
	err = e.tryMethods(ctx, t, pt.methods(), cert)
	var st unix.Stat_t
	if err == nil && t.Kind == KindFile {
		err = unix.Fstat(int(t.File.Fd()), &st)
	}
	if cerr := t.File.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing %s: %w", resolved, cerr)
	}
	if err == nil && t.Kind == KindFile {
		err = unlinkSame(unix.AT_FDCWD, resolved, resolved, &st)
	}
	return true, err
}

// unlinkSame removes name if it is still the file st describes.
func unlinkSame(dirfd int, name, display string, st *unix.Stat_t) error {
	var now unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("unlinking %s: %w", display, err)
	}
	if now.Dev != st.Dev || now.Ino != st.Ino {
		return fmt.Errorf("unlinking %s: replaced after it was erased: %w", display, ErrIdentityMismatch)
	}
	if err := unix.Unlinkat(dirfd, name, 0); err != nil {
		return fmt.Errorf("unlinking %s: %w", display, err)
	}
	return nil
}

// tryMethods runs the methods in order until one erases and verifies t.
func (e *Eraser) tryMethods(ctx context.Context, t *Target, names []string, cert *Certificate) error {
	var last error
	for _, name := range names {
		m := e.methods[name]
		att := Attempt{Method: name}
		e.log.Info("secure erase: method starts", "target", t.Path, "method", name)
		res, err := m.Erase(ctx, t, e.progress(t.Path))
		if err != nil {
			att.Error = err.Error()
			if res.Bytes > 0 {
				att.Result = &res
			}
			cert.Sanitization.Attempts = append(cert.Sanitization.Attempts, att)
			e.log.Info("secure erase: method did not erase", "target", t.Path, "method", name, "err", err)
			last = err
			if ctx.Err() != nil {
				return err
			}
			continue
		}
		att.Result = &res
		v, err := m.Verify(ctx, t, res, e.progress(t.Path))
		clear(res.key) // the keystream key is not needed any more
		att.Verification = &v
		if err == nil && !v.Passed {
			err = fmt.Errorf("%s of %s: %s: %w", name, t.Path, v.Detail, ErrVerifyFailed)
		}
		if err != nil {
			att.Error = err.Error()
			cert.Sanitization.Attempts = append(cert.Sanitization.Attempts, att)
			e.log.Warn("secure erase: verification failed", "target", t.Path, "method", name, "err", err)
			last = err
			if ctx.Err() != nil {
				return err
			}
			continue
		}
		cert.Sanitization.Attempts = append(cert.Sanitization.Attempts, att)
		s := &cert.Sanitization
		s.Category, s.Method, s.Technique = res.Category, methodUsed(name), res.Technique
		s.VerificationMethod, s.Verification = v.Method, v
		e.log.Info("secure erase: method erased and verified", "target", t.Path, "method", name, "bytes", res.Bytes)
		return nil
	}
	if last == nil {
		last = errors.New("no methods")
	}
	return fmt.Errorf("%w for %s: last: %w", ErrNoMethodSucceeded, t.Path, last)
}
