package hotswap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Peer RPC methods a Member serves (register them with the cluster's
// Handle; see Member.Handlers).
const (
	MethodApply  = "hotswap.apply"
	MethodRevoke = "hotswap.revoke"
	MethodWipe   = "hotswap.wipe"
)

// Wiper wipes a FRU's sensitive state, verifies the wipe and returns the
// certificate (JSON) that records it. secure-erase backs it.
type Wiper interface {
	Wipe(ctx context.Context, fru FRU) (certificateJSON []byte, err error)
}

// MemberConfig configures a Member.
type MemberConfig struct {
	// Name is this member's cluster node name. Required.
	Name string
	// StateDir holds the record of applied steps (hotswap-steps.json,
	// written atomically and fsynced). Required; created 0700 if missing.
	// It must survive restarts: it is what makes a retried step a no-op.
	StateDir string
	// Hooks are the policy hooks per device class, run in order on apply
	// and in reverse order on revoke. The class "*" applies to classes
	// without their own list. Default none: the member acks with the
	// digest of an empty hook list (it has no policy to apply).
	Hooks map[string][]Hook
	// Wiper wipes FRUs this member owns. Default nil: a wipe request is
	// answered as a failed wipe ("no wiper on this member").
	Wiper Wiper
	// SignerCertificate is the X.509 certificate (DER) whose public key
	// verifies the certificates Wiper issues: the member's peer
	// certificate, when its key signs them. It goes with every wipe reply
	// so that the leader can check the certificates against the cluster CA
	// and put them into the log for every member. Default nil: replies
	// carry none, the log records the wipe by its digest only and the
	// certificates stay on this member.
	SignerCertificate []byte
	// MaxRecords bounds the applied-step records kept (oldest dropped).
	// Default 4096: far more steps than workflows a shelf sees between
	// restarts of the whole cluster.
	MaxRecords int
	// Now is the clock (records carry the time for operators). Default
	// time.Now.
	Now func() time.Time
	// Logger receives the audit records of every step. Default
	// slog.Default().
	Logger *slog.Logger
}

// record is one applied step.
type record struct {
	Seq    uint64 `json:"seq"`
	Digest Digest `json:"digest,omitempty"`
	// Certificate is the wipe certificate (wipe steps).
	Certificate json.RawMessage `json:"certificate,omitempty"`
	At          time.Time       `json:"at"`
}

type stateFile struct {
	V       int                `json:"v"`
	Seq     uint64             `json:"seq"`
	Records map[string]*record `json:"records"`
}

// Member runs this node's policy hooks for workflow steps and the wipes of
// the FRUs it owns, each at most once per step: a step already recorded
// returns the recorded digest (or certificate) without running again.
// Safe for concurrent use; steps run one at a time.
type Member struct {
	cfg  MemberConfig
	log  *slog.Logger
	path string

	// stepMu serialises hook steps, wipeMu wipes; mu guards state.
	stepMu sync.Mutex
	wipeMu sync.Mutex
	mu     sync.Mutex
	state  stateFile
}

// NewMember loads the applied-step records from cfg.StateDir.
func NewMember(cfg MemberConfig) (*Member, error) {
	if err := checkName("member name", cfg.Name); err != nil {
		return nil, fmt.Errorf("hot-swap member: %w", err)
	}
	if cfg.StateDir == "" {
		return nil, errors.New("hot-swap member: StateDir is required")
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 4096
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("hot-swap member: creating state directory: %w", err)
	}
	m := &Member{cfg: cfg, log: cfg.Logger.With("component", "hotswap-member", "member", cfg.Name),
		path: filepath.Join(cfg.StateDir, "hotswap-steps.json")}
	m.state = stateFile{V: 1, Records: map[string]*record{}}
	b, err := os.ReadFile(m.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("hot-swap member: reading %s: %w", m.path, err)
	default:
		var st stateFile
		if err := json.Unmarshal(b, &st); err != nil || st.V != 1 {
			// Refuse to guess: without the records a retried step could apply twice.
			return nil, fmt.Errorf("hot-swap member: %s is not a valid step record (fix or move it away): %v", m.path, err)
		}
		if st.Records == nil {
			st.Records = map[string]*record{}
		}
		m.state = st
	}
	return m, nil
}

// Name returns the member's name.
func (m *Member) Name() string { return m.cfg.Name }

func (m *Member) hooksFor(class string) []Hook {
	if h, ok := m.cfg.Hooks[class]; ok {
		return h
	}
	return m.cfg.Hooks["*"]
}

// Applied returns the recorded digest of (workflow, op), if any.
func (m *Member) Applied(workflow string, op Op) (Digest, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.state.Records[stepKey(workflow, op)]
	if !ok {
		return "", false
	}
	return r.Digest, true
}

// Apply runs the hooks of s's device class in order and returns the digest
// of what they applied. A step already recorded returns the recorded
// digest and runs nothing. If a hook fails, the hooks of this step that had
// applied are revoked again (best effort) and the error is returned.
func (m *Member) Apply(ctx context.Context, s Step) (Digest, error) {
	s.Op = OpApply
	return m.step(ctx, s)
}

// Revoke runs the hooks' Revoke in reverse order; recorded like Apply.
func (m *Member) Revoke(ctx context.Context, s Step) (Digest, error) {
	s.Op = OpRevoke
	return m.step(ctx, s)
}

func (m *Member) step(ctx context.Context, s Step) (Digest, error) {
	if s.Key == "" {
		s.Key = stepKey(s.Workflow, s.Op)
	}
	if err := s.validate(); err != nil {
		return "", err
	}
	m.stepMu.Lock()
	defer m.stepMu.Unlock()
	m.mu.Lock()
	r, ok := m.state.Records[s.Key]
	m.mu.Unlock()
	if ok {
		m.log.Info("hot-swap step already applied; not run again", "audit", true, "step", s.Key, "digest", r.Digest)
		return r.Digest, nil
	}
	hooks := m.hooksFor(s.DeviceClass)
	var parts [][]byte
	parts = append(parts, []byte(s.Op), []byte(s.Key))
	var done []Hook
	order := hooks
	if s.Op == OpRevoke {
		order = make([]Hook, len(hooks))
		for i, h := range hooks {
			order[len(hooks)-1-i] = h
		}
	}
	for _, h := range order {
		var d Digest
		var err error
		if s.Op == OpApply {
			d, err = h.Apply(ctx, s)
		} else {
			d, err = h.Revoke(ctx, s)
		}
		if err != nil {
			var stderr string
			var he *HookError
			if errors.As(err, &he) {
				stderr = truncate(strings.TrimSpace(he.Stderr), 1024)
			}
			m.log.Warn("hot-swap hook failed", "audit", true, "step", s.Key, "hook", h.Name(), "fru", s.FRU.Key(), "err", err, "stderr", stderr)
			if s.Op == OpApply {
				m.rollback(ctx, s, done)
			}
			return "", fmt.Errorf("member %s, step %s: %w", m.cfg.Name, s.Key, err)
		}
		done = append(done, h)
		parts = append(parts, []byte(h.Name()), []byte(d))
	}
	d := DigestOf(parts...)
	if err := m.record(s.Key, &record{Digest: d}); err != nil {
		return "", fmt.Errorf("member %s, step %s: %w", m.cfg.Name, s.Key, err)
	}
	m.log.Info("hot-swap step applied", "audit", true, "step", s.Key, "fru", s.FRU.Key(),
		"class", s.DeviceClass, "hooks", len(hooks), "digest", d)
	return d, nil
}

func (m *Member) rollback(ctx context.Context, s Step, done []Hook) {
	rs := s
	rs.Op = OpRevoke
	for i := len(done) - 1; i >= 0; i-- {
		if _, err := done[i].Revoke(ctx, rs); err != nil {
			m.log.Warn("hot-swap hook rollback failed", "audit", true, "step", s.Key, "hook", done[i].Name(), "err", err)
		}
	}
}

// WipeRequest asks the owner to wipe a FRU.
type WipeRequest struct {
	Workflow string `json:"workflow"`
	FRU      FRU    `json:"fru"`
	Attempt  int    `json:"attempt"`
}

// WipeReply is the owner's answer. A failed wipe is OK=false with a
// reason, not an RPC error.
type WipeReply struct {
	OK          bool            `json:"ok"`
	Certificate json.RawMessage `json:"certificate,omitempty"`
	Digest      Digest          `json:"digest,omitempty"`
	Reason      string          `json:"reason,omitempty"`
	// Signer is the owner's MemberConfig.SignerCertificate (with OK).
	Signer []byte `json:"signer,omitempty"`
}

// Wipe wipes the FRU through the Wiper and records the certificate; a
// workflow already wiped returns the recorded certificate without wiping
// again. A failed wipe is not recorded, so a retry wipes again.
func (m *Member) Wipe(ctx context.Context, req WipeRequest) (WipeReply, error) {
	if err := checkName("workflow ID", req.Workflow); err != nil {
		return WipeReply{}, fmt.Errorf("wipe request: %w", err)
	}
	if err := req.FRU.validate(); err != nil {
		return WipeReply{}, fmt.Errorf("wipe request of workflow %s: %w", req.Workflow, err)
	}
	key := req.Workflow + "/wipe"
	m.wipeMu.Lock()
	defer m.wipeMu.Unlock()
	m.mu.Lock()
	r, ok := m.state.Records[key]
	m.mu.Unlock()
	if ok {
		return WipeReply{OK: true, Certificate: r.Certificate, Digest: r.Digest, Signer: m.cfg.SignerCertificate}, nil
	}
	if m.cfg.Wiper == nil {
		return WipeReply{Reason: "no wiper on member " + m.cfg.Name}, nil
	}
	cert, err := m.cfg.Wiper.Wipe(ctx, req.FRU)
	if err != nil {
		m.log.Warn("wipe failed", "audit", true, "workflow", req.Workflow, "fru", req.FRU.Key(), "err", err)
		return WipeReply{Reason: truncate("wipe of "+req.FRU.Key()+" failed: "+err.Error(), maxReasonLen)}, nil
	}
	if !json.Valid(cert) || len(bytes.TrimSpace(cert)) == 0 {
		return WipeReply{Reason: "wipe of " + req.FRU.Key() + " returned no valid certificate"}, nil
	}
	d := DigestOf(cert)
	if err := m.record(key, &record{Digest: d, Certificate: cert}); err != nil {
		return WipeReply{}, fmt.Errorf("member %s, wipe of %s: %w", m.cfg.Name, req.FRU.Key(), err)
	}
	m.log.Info("wiped and verified", "audit", true, "workflow", req.Workflow, "fru", req.FRU.Key(), "certificate", d)
	return WipeReply{OK: true, Certificate: cert, Digest: d, Signer: m.cfg.SignerCertificate}, nil
}

// record stores r under key and persists the records.
func (m *Member) record(key string, r *record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state.Seq++
	r.Seq = m.state.Seq
	r.At = m.cfg.Now().UTC()
	m.state.Records[key] = r
	if n := len(m.state.Records) - m.cfg.MaxRecords; n > 0 {
		keys := make([]string, 0, len(m.state.Records))
		for k := range m.state.Records {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return m.state.Records[keys[i]].Seq < m.state.Records[keys[j]].Seq })
		for _, k := range keys[:n] {
			delete(m.state.Records, k)
		}
	}
	b, err := json.Marshal(m.state)
	if err == nil {
		err = writeFileAtomic(m.path, b, 0o600)
	}
	if err != nil {
		// Not persisted: forget it, so the caller's error and the state agree.
		delete(m.state.Records, key)
		return fmt.Errorf("recording step %s: %w", key, err)
	}
	return nil
}

// StepReply is the answer to MethodApply and MethodRevoke.
type StepReply struct {
	Digest Digest `json:"digest"`
}

// Handlers returns the peer RPC handlers of the member, by method, in the
// shape of the cluster's Handler.
func (m *Member) Handlers() map[string]func(ctx context.Context, from string, req json.RawMessage) (any, error) {
	step := func(op Op) func(ctx context.Context, from string, req json.RawMessage) (any, error) {
		return func(ctx context.Context, from string, req json.RawMessage) (any, error) {
			var s Step
			if err := strictJSON(req, &s); err != nil {
				return nil, fmt.Errorf("%s from %s: %w", op, from, err)
			}
			var d Digest
			var err error
			if op == OpApply {
				d, err = m.Apply(ctx, s)
			} else {
				d, err = m.Revoke(ctx, s)
			}
			if err != nil {
				return nil, err
			}
			return StepReply{Digest: d}, nil
		}
	}
	return map[string]func(ctx context.Context, from string, req json.RawMessage) (any, error){
		MethodApply:  step(OpApply),
		MethodRevoke: step(OpRevoke),
		MethodWipe: func(ctx context.Context, from string, req json.RawMessage) (any, error) {
			var w WipeRequest
			if err := strictJSON(req, &w); err != nil {
				return nil, fmt.Errorf("wipe from %s: %w", from, err)
			}
			return m.Wipe(ctx, w)
		},
	}
}

func strictJSON(b []byte, v any) error {
	if len(b) > maxPayloadSize {
		return fmt.Errorf("request of %d bytes is too large", len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding request: %w", err)
	}
	return nil
}
