package hotswap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Op is what a step does with the policies: apply or revoke.
type Op string

// Step operations.
const (
	OpApply  Op = "apply"
	OpRevoke Op = "revoke"
)

// Step is what a member's hooks are given: one workflow step for one FRU.
// It is the JSON an ExecHook receives on stdin.
type Step struct {
	// Key identifies the step cluster-wide ("<workflow>/<op>"); a hook
	// that keeps its own records can use it to recognise a retry.
	Key         string `json:"key"`
	Workflow    string `json:"workflow"`
	Kind        Kind   `json:"kind"`
	Op          Op     `json:"op"`
	FRU         FRU    `json:"fru"`
	DeviceClass string `json:"device_class,omitempty"`
	Attempt     int    `json:"attempt"`
}

// stepKey is the idempotency key of (workflow, op).
func stepKey(workflow string, op Op) string { return workflow + "/" + string(op) }

func (s Step) validate() error {
	if err := checkName("workflow ID", s.Workflow); err != nil {
		return fmt.Errorf("step: %w", err)
	}
	if s.Op != OpApply && s.Op != OpRevoke {
		return fmt.Errorf("step of workflow %s: unknown op %q", s.Workflow, truncate(string(s.Op), 20))
	}
	if !s.Kind.valid() {
		return fmt.Errorf("step of workflow %s: unknown kind %q", s.Workflow, truncate(string(s.Kind), 20))
	}
	if err := s.FRU.validate(); err != nil {
		return fmt.Errorf("step of workflow %s: %w", s.Workflow, err)
	}
	if len(s.DeviceClass) > maxClassLen || !printable(s.DeviceClass) {
		return fmt.Errorf("step of workflow %s: device class too long or not printable", s.Workflow)
	}
	if s.Key != stepKey(s.Workflow, s.Op) {
		return fmt.Errorf("step of workflow %s: key %q does not match", s.Workflow, truncate(s.Key, 80))
	}
	return nil
}

// Digest is "sha256:<64 hex digits>" of what a hook applied or revoked.
type Digest string

// DigestOf returns the Digest of the concatenation of parts, each
// length-prefixed so that different splits differ.
func DigestOf(parts ...[]byte) Digest {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	return Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
}

// Hook is one policy plug-in of a member. Apply puts the policy for the
// step's FRU in place, Revoke takes it away; both return a digest of what
// they did. Both must be idempotent: the Member does not re-run a step it
// recorded, but a crash between a hook's effect and that record means the
// hook runs again for the same Step.Key.
type Hook interface {
	Name() string
	Apply(ctx context.Context, s Step) (Digest, error)
	Revoke(ctx context.Context, s Step) (Digest, error)
}

// HookError is a hook that failed: the exit status and the (bounded)
// standard error of a command, or why it could not run. Error() leaves the
// standard error out (it goes into refusals in the replicated log and may
// say more than the cluster should keep); the Member logs it locally.
type HookError struct {
	Hook     string
	Op       Op
	ExitCode int // -1 when the command did not exit normally
	Stderr   string
	Err      error
}

// Error says which hook failed and how (exit status or cause).
func (e *HookError) Error() string {
	s := fmt.Sprintf("hook %s %s: %v", e.Hook, e.Op, e.Err)
	if e.ExitCode > 0 {
		s = fmt.Sprintf("hook %s %s: exit status %d", e.Hook, e.Op, e.ExitCode)
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *HookError) Unwrap() error { return e.Err }

// CommandConfig configures the commands hooks run. No shell is involved:
// Path is executed with Args as they are.
type CommandConfig struct {
	// Path is the executable (absolute path). Required.
	Path string
	// Args are its arguments (without argv[0]). Default none.
	Args []string
	// Timeout bounds one run; the command's process group is killed when
	// it expires. Default 30 s: long enough for a firewall or
	// cluster-manager reload, short enough that a stuck hook shows as a
	// refusal within a workflow attempt.
	Timeout time.Duration
	// MaxOutput bounds the stdout and stderr kept (each). Default 64 KiB:
	// enough for a digest-worthy answer, bounded against a runaway hook.
	MaxOutput int
	// Env is the whole environment of the command (KEY=value); nothing is
	// inherited from the agent. Default PATH=/usr/sbin:/usr/bin:/sbin:/bin
	// and LANG=C.
	Env []string
	// Dir is the working directory. Default "/".
	Dir string
}

func (c CommandConfig) withDefaults() CommandConfig {
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.MaxOutput <= 0 {
		c.MaxOutput = 64 << 10
	}
	if c.Env == nil {
		c.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	}
	if c.Dir == "" {
		c.Dir = "/"
	}
	return c
}

func (c CommandConfig) check(what string) error {
	if c.Path == "" || !filepath.IsAbs(c.Path) {
		return fmt.Errorf("%s: command path %q must be absolute", what, c.Path)
	}
	return nil
}

// boundedBuffer keeps the first n bytes written and counts the rest.
type boundedBuffer struct {
	n       int
	buf     bytes.Buffer
	dropped int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	room := b.n - b.buf.Len()
	if room > len(p) {
		room = len(p)
	}
	if room > 0 {
		b.buf.Write(p[:room])
	}
	b.dropped += len(p) - max(room, 0)
	return len(p), nil
}

// runResult is the outcome of one command run.
type runResult struct {
	stdout, stderr []byte
	truncated      bool
}

// run executes c with stdin, extra environment and the timeout, capturing
// bounded output. A non-zero exit is a *HookError.
func (c CommandConfig) run(ctx context.Context, hook string, op Op, stdin []byte, env ...string) (runResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = append(append([]string(nil), c.Env...), env...)
	cmd.Dir = c.Dir
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb = &boundedBuffer{n: c.MaxOutput}, &boundedBuffer{n: c.MaxOutput}
	cmd.Stdout, cmd.Stderr = out, errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Kill the whole process group: a hook's children must not outlive it.
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return nil
	}
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	res := runResult{stdout: out.buf.Bytes(), stderr: errb.buf.Bytes(), truncated: out.dropped > 0 || errb.dropped > 0}
	if err == nil {
		return res, nil
	}
	he := &HookError{Hook: hook, Op: op, ExitCode: -1, Stderr: string(res.stderr), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		he.ExitCode = ee.ExitCode()
	}
	if ctx.Err() != nil {
		he.Err = fmt.Errorf("%w (timeout %s)", ctx.Err(), c.Timeout)
		he.ExitCode = -1
	}
	return res, he
}

// ExecHook runs an executable for each step with the step as JSON on stdin.
// Its environment holds HPIAGENT_OP (apply|revoke) and HPIAGENT_STEP_KEY
// besides CommandConfig.Env. Exit status 0 is success; the digest covers
// the op, the step key and the command's stdout, so what the command says
// it applied is what the member acks.
type ExecHook struct {
	// HookName names the hook in digests, logs and errors. Required.
	HookName string
	// Command is run for apply and for revoke (HPIAGENT_OP tells which).
	Command CommandConfig
}

// Name returns HookName.
func (h *ExecHook) Name() string { return h.HookName }

// Apply runs the command with op apply.
func (h *ExecHook) Apply(ctx context.Context, s Step) (Digest, error) { return h.run(ctx, OpApply, s) }

// Revoke runs the command with op revoke.
func (h *ExecHook) Revoke(ctx context.Context, s Step) (Digest, error) {
	return h.run(ctx, OpRevoke, s)
}

func (h *ExecHook) run(ctx context.Context, op Op, s Step) (Digest, error) {
	c := h.Command.withDefaults()
	if err := c.check("hook " + h.HookName); err != nil {
		return "", err
	}
	s.Op = op
	in, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("hook %s: encoding step %s: %w", h.HookName, s.Key, err)
	}
	in = append(in, '\n') // one line: a shell hook can `read` it
	res, err := c.run(ctx, h.HookName, op, in, "HPIAGENT_OP="+string(op), "HPIAGENT_STEP_KEY="+s.Key)
	if err != nil {
		return "", err
	}
	return DigestOf([]byte(op), []byte(s.Key), res.stdout), nil
}

// RuleFileHook drops a rule file for the FRU into a directory (written to a
// temporary file, fsynced, renamed, directory fsynced) and runs a reload
// command; Revoke removes the file and reloads. Writing the same content
// again and removing a missing file are no-ops for the file, so the hook is
// idempotent as long as the reload command is.
type RuleFileHook struct {
	// HookName names the hook. Required.
	HookName string
	// Dir is the directory the rule files go to. Required; it must exist.
	Dir string
	// FileName returns the rule file's name for a step (no directory
	// part). Default "hpiagent-<shelf>-<ipmb>-<fru>.rules" with the
	// shelf name reduced to [A-Za-z0-9._-].
	FileName func(s Step) string
	// Render returns the rule file's content for a step. Required.
	Render func(s Step) ([]byte, error)
	// Mode is the rule file's permission. Default 0640: rules may say
	// what the cluster trusts; other users need not read them.
	Mode os.FileMode
	// Reload is run after every change. Required: a rule file nobody
	// reloads is not applied.
	Reload CommandConfig

	mu sync.Mutex
}

// Name returns HookName.
func (h *RuleFileHook) Name() string { return h.HookName }

func (h *RuleFileHook) fileName(s Step) (string, error) {
	var name string
	if h.FileName != nil {
		name = h.FileName(s)
	} else {
		name = fmt.Sprintf("hpiagent-%s-%02x-%d.rules", safeName(s.FRU.Shelf), s.FRU.IPMB, s.FRU.ID)
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("hook %s: rule file name %q is not a plain file name", h.HookName, truncate(name, 80))
	}
	return name, nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// Apply writes the rule file atomically and reloads.
func (h *RuleFileHook) Apply(ctx context.Context, s Step) (Digest, error) {
	if h.Render == nil || h.Dir == "" {
		return "", fmt.Errorf("hook %s: Dir and Render are required", h.HookName)
	}
	name, err := h.fileName(s)
	if err != nil {
		return "", err
	}
	content, err := h.Render(s)
	if err != nil {
		return "", fmt.Errorf("hook %s: rendering the rules of %s: %w", h.HookName, s.FRU.Key(), err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	mode := h.Mode
	if mode == 0 {
		mode = 0o640
	}
	if err := writeFileAtomic(filepath.Join(h.Dir, name), content, mode); err != nil {
		return "", fmt.Errorf("hook %s: %w", h.HookName, err)
	}
	if err := h.reload(ctx, OpApply, s); err != nil {
		return "", err
	}
	return DigestOf([]byte(OpApply), []byte(name), content), nil
}

// Revoke removes the rule file (a missing one is fine) and reloads.
func (h *RuleFileHook) Revoke(ctx context.Context, s Step) (Digest, error) {
	if h.Dir == "" {
		return "", fmt.Errorf("hook %s: Dir is required", h.HookName)
	}
	name, err := h.fileName(s)
	if err != nil {
		return "", err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	path := filepath.Join(h.Dir, name)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("hook %s: removing rule file: %w", h.HookName, err)
	}
	if err := syncDir(h.Dir); err != nil {
		return "", fmt.Errorf("hook %s: %w", h.HookName, err)
	}
	if err := h.reload(ctx, OpRevoke, s); err != nil {
		return "", err
	}
	return DigestOf([]byte(OpRevoke), []byte(name)), nil
}

func (h *RuleFileHook) reload(ctx context.Context, op Op, s Step) error {
	c := h.Reload.withDefaults()
	if err := c.check("hook " + h.HookName + " reload"); err != nil {
		return err
	}
	_, err := c.run(ctx, h.HookName, op, nil, "HPIAGENT_OP="+string(op), "HPIAGENT_STEP_KEY="+s.Key)
	return err
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory: write, fsync, rename, fsync the directory. Readers see the old
// or the new content, never a part.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %s to fsync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync of directory %s: %w", dir, err)
	}
	return nil
}
