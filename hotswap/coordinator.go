package hotswap

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"hpiagent/hpi"
	secureerase "hpiagent/secure-erase"
)

// Log is the coordination log as the Coordinator needs it (the cluster
// package's Cluster has these methods).
type Log interface {
	// Propose appends an entry of kind and returns its index and the FSM's
	// Apply result once applied on this node; only the leader proposes.
	Propose(ctx context.Context, kind string, payload []byte) (uint64, any, error)
	// IsLeader reports whether this node is the leader now.
	IsLeader() bool
	// HasQuorum reports whether this node is in contact with a majority.
	HasQuorum() bool
	// Barrier returns once every entry committed before it is applied.
	Barrier(ctx context.Context) error
}

// Peers is the peer RPC the Coordinator calls members with.
type Peers interface {
	Call(ctx context.Context, node, method string, req, resp any) error
}

// Policy is a FRU's activation policy (PICMG 3.0 Set/Get FRU Activation
// Policy).
type Policy struct {
	// Locked keeps the FRU in M1.
	Locked bool
	// DeactivationLocked keeps the FRU in M4.
	DeactivationLocked bool
}

// Hardware is what the Coordinator needs of the shelf (shelf.Monitor is to
// implement it). Every method returns only when the change is confirmed by
// reading state back, or with an error saying what was done to which FRU.
// A shelf manager that lacks a command returns an error wrapping
// hpi.ErrCapability.
type Hardware interface {
	// SetActivationLock sets or clears the Locked bit of fru's activation
	// policy (only that bit).
	SetActivationLock(ctx context.Context, fru FRU, locked bool) error
	// SetDeactivationLock sets or clears the Deactivation-Locked bit (only
	// that bit).
	SetDeactivationLock(ctx context.Context, fru FRU, locked bool) error
	// ActivationPolicy reads fru's activation policy.
	ActivationPolicy(ctx context.Context, fru FRU) (Policy, error)
	// Activate sends Set FRU Activation (activate) and drives the FRU to
	// M4 (granting power where the shelf manager needs it); it returns
	// once M4 is read back.
	Activate(ctx context.Context, fru FRU) error
	// Deactivate sends Set FRU Activation (deactivate); it returns once M1
	// is read back.
	Deactivate(ctx context.Context, fru FRU) error
	// MState reads fru's M-state from its hot-swap sensor.
	MState(ctx context.Context, fru FRU) (hpi.MState, error)
	// SetBlueLED turns fru's blue (hot-swap) LED on or off (or back to
	// local control when off).
	SetBlueLED(ctx context.Context, fru FRU, on bool) error
}

// AlarmInfo is an alarm the Coordinator raises: a workflow is held up and
// needs attention.
type AlarmInfo struct {
	Workflow string
	FRU      FRU
	Text     string
}

// CoordinatorConfig configures a Coordinator.
type CoordinatorConfig struct {
	// Node is this node's cluster name. Required.
	Node string
	// Log is the coordination log. Required.
	Log Log
	// Peers calls other members. Required unless every member is Member.
	Peers Peers
	// Machine is this node's hot-swap FSM, the one registered with the log
	// under LogKind. Required.
	Machine *Machine
	// Hardware drives the shelf. Required.
	Hardware Hardware
	// Member is this node's own member; steps for Node are run on it
	// directly instead of over RPC. Default nil: over RPC like the others.
	Member *Member
	// Members returns the members every workflow started now must hear
	// from (all configured cluster nodes, up or not: a member that is down
	// must keep an insertion locked). Required.
	Members func() []string
	// Owner returns the member that wipes an extracted FRU's sensitive
	// state. Default: this node (the leader).
	Owner func(fru FRU) string
	// DeviceClass returns a FRU's device class (which hooks run). Default:
	// "" (the "*" hooks).
	DeviceClass func(fru FRU) string
	// MaxAttempts is how often a refused step is tried before the workflow
	// is aborted. Default 3.
	MaxAttempts int
	// LeaveActiveUnlocked, when true, leaves an activated FRU without the
	// Deactivation-Locked bit. Default false: every FRU an insertion
	// activates gets Deactivation-Locked, so that opening its handle cannot
	// take it out of M4 (or let an automatic shelf manager deactivate it in
	// M5) before the cluster revoked its policies and wiped it; extraction
	// is then started by an operator (KindForced) or by the shelf's report
	// of the handle. Set it on shelves whose shelf manager waits in M5 for
	// the agent, so that the handle alone starts an extraction.
	LeaveActiveUnlocked bool
	// RetryDelay is the wait before a refused step (or a failed hardware
	// action) is tried again. Default 10 s: a restarting member is back by
	// then, and an operator sees the alarm first.
	RetryDelay time.Duration
	// StepTimeout bounds one member call (hooks included) and one hardware
	// action. Default 60 s: longer than the default hook timeout (30 s),
	// so the member, not the caller, reports a slow hook.
	StepTimeout time.Duration
	// WipeTimeout bounds one wipe at the owner (wipe and verification).
	// Default 2 h: a crypto erase takes seconds, but an overwrite with full
	// verification of a large disk takes long. Wipes run beside the other
	// actions, so a long one holds up only its own workflow.
	WipeTimeout time.Duration
	// PollInterval is how often leadership is checked when nothing else
	// wakes the coordinator. Default 500 ms.
	PollInterval time.Duration
	// Now is the clock for retry delays. Default time.Now.
	Now func() time.Time
	// NewID returns a new workflow ID. Default: 16 random hex digits.
	NewID func() string
	// Veto, when set, is asked before a workflow is started from a
	// hot-swap event (Observe); a non-empty answer is the reason it is not
	// started. The daemon wires the fencing state here: a FRU fenced into
	// M1 with the Locked bit must not be activated by an insertion that an
	// M1 observation started. Default nil: no veto. Operator requests
	// (Start) are not vetoed.
	Veto func(kind Kind, fru FRU) string
	// Waiting, if set, lists the FRUs the model shows waiting in
	// InsertionPending (M2) or ExtractionPending (M5) now. The leader
	// hands them to Reconcile at most every ReconcileInterval, so a FRU
	// whose transition came without an event (its first state at
	// discovery) or while no node led still gets its workflow. It must
	// not block on I/O. Default nil: events only.
	Waiting func() []WaitingFRU
	// ReconcileInterval is how often Step reconciles the Waiting FRUs.
	// Default 5 s: a waiting FRU is picked up soon, and a pass is a walk
	// over the model (plus an M-state read for a FRU not yet in a
	// workflow).
	ReconcileInterval time.Duration
	// Alarm is called when a workflow raises an alarm (refusal, member
	// down, wipe failure, abort, hardware failure). Default: logged only.
	Alarm func(AlarmInfo)
	// Certificate receives the certificate of every verified wipe, before
	// the result goes into the log; a leader that repeats the step hands
	// the same certificate again, so store it by workflow ID. Default:
	// none (the owner keeps it in its state directory).
	Certificate func(workflow string, fru FRU, cert []byte)
	// VerifySigner checks that certDER (the X.509 certificate an owner
	// sends with its wipe reply) is a certificate the cluster CA issued to
	// member owner, and returns its public key. With it, the certificates
	// of a verified wipe go into the log with the result, after the leader
	// checked that they decode, match their digest, were issued by the
	// owner and verify with that key (secureerase.VerifyCertificates); a
	// reply that fails any check is recorded as a failed wipe (the FRU
	// stays held until an operator retries or overrides), since evidence
	// the cluster cannot check is no evidence. An owner that sends no
	// signer certificate (its signing key is not its peer key) has its
	// wipe recorded by digest only, as without VerifySigner. Default nil:
	// digests only; the certificates stay on the owner.
	VerifySigner func(owner string, certDER []byte) (crypto.PublicKey, error)
	// Logger receives logs and audit records (audit=true). Default
	// slog.Default().
	Logger *slog.Logger
}

// Coordinator drives the hot-swap workflows while its node is the leader.
type Coordinator struct {
	cfg  CoordinatorConfig
	log  *slog.Logger
	wake chan struct{}

	mu         sync.Mutex
	retryAt    map[string]time.Time // "workflow/attempt/kind" -> when
	hwFailedAt map[string]time.Time // workflow -> last hardware failure
	wiping     map[string]bool      // workflows whose wipe is in flight here
	wasLeader  bool
	reconciled time.Time // last pass over Waiting
	wg         sync.WaitGroup
}

// WaitingFRU is a FRU waiting in a pending hot-swap state (Waiting).
type WaitingFRU struct {
	FRU   FRU
	State hpi.HsState
}

// NewCoordinator checks cfg and returns a Coordinator.
func NewCoordinator(cfg CoordinatorConfig) (*Coordinator, error) {
	if err := checkName("node name", cfg.Node); err != nil {
		return nil, fmt.Errorf("hot-swap coordinator: %w", err)
	}
	if cfg.Log == nil || cfg.Machine == nil || cfg.Hardware == nil || cfg.Members == nil {
		return nil, errors.New("hot-swap coordinator: Log, Machine, Hardware and Members are required")
	}
	if cfg.Owner == nil {
		node := cfg.Node
		cfg.Owner = func(FRU) string { return node }
	}
	if cfg.DeviceClass == nil {
		cfg.DeviceClass = func(FRU) string { return "" }
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 10 * time.Second
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = time.Minute
	}
	if cfg.WipeTimeout <= 0 {
		cfg.WipeTimeout = 2 * time.Hour
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = func() string {
			var b [8]byte
			_, _ = rand.Read(b[:])
			return hex.EncodeToString(b[:])
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Coordinator{
		cfg: cfg, log: cfg.Logger.With("component", "hotswap", "node", cfg.Node),
		wake: make(chan struct{}, 1), retryAt: map[string]time.Time{}, hwFailedAt: map[string]time.Time{},
		wiping: map[string]bool{},
	}, nil
}

// ErrNotLeaderHere is returned by operator requests on a node that is not
// the leader (the API forwards them to the leader).
var ErrNotLeaderHere = errors.New("this node does not lead the hot-swap workflows")

func (c *Coordinator) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// propose appends e and returns the Machine's result.
func (c *Coordinator) propose(ctx context.Context, e Entry) (Result, error) {
	e.V = EntryVersion
	b, err := e.Encode()
	if err != nil {
		return Result{}, fmt.Errorf("proposing %s of workflow %s: %w", e.Type, e.Workflow, err)
	}
	_, res, err := c.cfg.Log.Propose(ctx, LogKind, b)
	if err != nil {
		return Result{}, fmt.Errorf("proposing %s of workflow %s: %w", e.Type, e.Workflow, err)
	}
	r, ok := res.(Result)
	if !ok {
		return Result{}, fmt.Errorf("proposing %s of workflow %s: unexpected FSM result %T (is the Machine registered as %q?)", e.Type, e.Workflow, res, LogKind)
	}
	if r.Err != nil {
		return r, fmt.Errorf("proposing %s of workflow %s: %w", e.Type, e.Workflow, r.Err)
	}
	c.log.Info("hot-swap step", "audit", true, "workflow", e.Workflow, "type", e.Type, "member", e.Member,
		"actor", e.Actor, "accepted", r.Accepted, "note", r.Note, "phase", r.Phase)
	if r.AlarmRaised {
		c.alarm(e.Workflow, r.Alarm)
	}
	return r, nil
}

func (c *Coordinator) alarm(workflow, text string) {
	w, _ := c.cfg.Machine.Workflow(workflow)
	c.log.Warn("hot-swap alarm", "audit", true, "workflow", workflow, "fru", w.FRU.Key(), "alarm", text)
	if c.cfg.Alarm != nil {
		c.cfg.Alarm(AlarmInfo{Workflow: workflow, FRU: w.FRU, Text: text})
	}
}

// Start proposes a new workflow of kind for fru (the leader only). It
// returns the workflow's ID; when a workflow is already in flight for the
// FRU, its ID and an error saying so.
func (c *Coordinator) Start(ctx context.Context, kind Kind, fru FRU, actor, reason string) (string, error) {
	if !c.cfg.Log.IsLeader() {
		return "", ErrNotLeaderHere
	}
	if cur, busy := c.cfg.Machine.ActiveFor(fru); busy && kind != KindSurprise {
		return cur, fmt.Errorf("starting %s of %s: workflow %s is in flight", kind, fru.Key(), cur)
	}
	e := Entry{Type: TypeWorkflowStarted, Workflow: c.cfg.NewID(), Kind: kind, FRU: &fru,
		DeviceClass: c.cfg.DeviceClass(fru), Required: c.cfg.Members(), MaxAttempts: c.cfg.MaxAttempts,
		Actor: actor, Reason: reason}
	if kind.extracts() {
		e.Owner = c.cfg.Owner(fru)
	}
	r, err := c.propose(ctx, e)
	if err != nil {
		return "", err
	}
	if !r.Accepted {
		cur, _ := c.cfg.Machine.ActiveFor(fru)
		return cur, fmt.Errorf("starting %s of %s: %s", kind, fru.Key(), r.Note)
	}
	c.kick()
	return e.Workflow, nil
}

// Override lets a FRU whose wipe failed be deactivated anyway. The caller
// (the API) checks the actor's role; the override is in the log with the
// actor and reason.
func (c *Coordinator) Override(ctx context.Context, workflow, actor, reason string) error {
	return c.operator(ctx, Entry{Type: TypeOverrideGranted, Workflow: workflow, Actor: actor, Reason: reason})
}

// Abort ends a workflow; an insertion whose members applied is rolled back
// (revoked) first. The FRU stays held.
func (c *Coordinator) Abort(ctx context.Context, workflow, actor, reason string) error {
	return c.operator(ctx, Entry{Type: TypeAborted, Workflow: workflow, Actor: actor, Reason: reason})
}

// Retry starts the next attempt of a refused step or a failed wipe.
func (c *Coordinator) Retry(ctx context.Context, workflow, actor string) error {
	w, ok := c.cfg.Machine.Workflow(workflow)
	if !ok {
		return fmt.Errorf("retrying workflow %s: no such workflow", workflow)
	}
	return c.operator(ctx, Entry{Type: TypeRetry, Workflow: workflow, Actor: actor, Attempt: w.Attempt})
}

func (c *Coordinator) operator(ctx context.Context, e Entry) error {
	if !c.cfg.Log.IsLeader() {
		return ErrNotLeaderHere
	}
	r, err := c.propose(ctx, e)
	if err != nil {
		return err
	}
	if !r.Accepted {
		return fmt.Errorf("%s of workflow %s: %s", e.Type, e.Workflow, r.Note)
	}
	c.kick()
	return nil
}

// Observe takes a hot-swap transition of fru and starts the workflow it
// calls for (the leader only; elsewhere it does nothing): M2 (or a FRU
// newly present in M1) starts an insertion, M5 an extraction, a FRU gone
// from any other state than M1 a surprise removal.
func (c *Coordinator) Observe(ctx context.Context, fru FRU, prev, cur hpi.HsState) error {
	if !c.cfg.Log.IsLeader() {
		return nil
	}
	var kind Kind
	_, busy := c.cfg.Machine.ActiveFor(fru)
	switch {
	case cur == hpi.HsStateInsertionPending,
		cur == hpi.HsStateInactive && prev == hpi.HsStateNotPresent:
		kind = KindInsertion
	case cur == hpi.HsStateExtractionPending:
		kind = KindExtraction
	case cur == hpi.HsStateNotPresent && (busy || prev != hpi.HsStateInactive) && prev != hpi.HsStateNotPresent:
		kind = KindSurprise
	default:
		return nil
	}
	if busy && kind != KindSurprise {
		return nil // the workflow in flight goes on
	}
	if kind == KindInsertion {
		// An event is a hint, the shelf decides: a poll read before a
		// deactivation and applied after it makes the model pass through
		// INSERTION_PENDING on its way back, and a late or replayed event
		// says the same. Only a FRU that waits in M2 now (or, newly
		// present, in M1) is inserted.
		m, err := c.cfg.Hardware.MState(ctx, fru)
		if err != nil {
			return fmt.Errorf("confirming the insertion request of %s: %w", fru.Key(), err)
		}
		if m != hpi.M2 && (m != hpi.M1 || cur != hpi.HsStateInactive) {
			c.log.Info("hot-swap insertion not started: the FRU is not waiting in M2", "audit", true, "fru", fru.Key(), "mstate", m.String(), "event", fmt.Sprintf("%s -> %s", prev, cur))
			return nil
		}
	}
	if kind == KindExtraction {
		// An extraction wipes the FRU: an event is a hint, the shelf
		// decides. Only a FRU that waits in M5 now (extraction requested,
		// held by Deactivation-Locked) is extracted; a late or replayed
		// EXTRACTION_PENDING of a FRU that has since moved on starts
		// nothing.
		m, err := c.cfg.Hardware.MState(ctx, fru)
		if err != nil {
			return fmt.Errorf("confirming the extraction request of %s: %w", fru.Key(), err)
		}
		if m != hpi.M5 {
			c.log.Info("hot-swap extraction not started: the FRU is not waiting in M5", "audit", true, "fru", fru.Key(), "mstate", m.String(), "event", fmt.Sprintf("%s -> %s", prev, cur))
			return nil
		}
	}
	if c.cfg.Veto != nil {
		if why := c.cfg.Veto(kind, fru); why != "" {
			c.log.Info("hot-swap workflow not started", "audit", true, "kind", kind, "fru", fru.Key(), "reason", why)
			return nil
		}
	}
	_, err := c.Start(ctx, kind, fru, "", fmt.Sprintf("hot-swap %s -> %s", prev, cur))
	return err
}

// Reconcile starts the workflow a FRU's current state calls for when no
// event says so: a new leader calls it for every FRU it finds waiting in
// InsertionPending (M2) or ExtractionPending (M5), whose transition it may
// have missed (CoordinatorConfig.Waiting makes Step do so). FRUs in other
// states start nothing here (an M1 FRU may be fenced, not newly
// inserted). A FRU whose last workflow was aborted by an operator stays as
// the operator left it: it is not restarted here (a new hot-swap event, or
// Start through the API, starts it again), so the leader may call
// Reconcile as often as it likes.
func (c *Coordinator) Reconcile(ctx context.Context, fru FRU, cur hpi.HsState) error {
	if cur != hpi.HsStateInsertionPending && cur != hpi.HsStateExtractionPending {
		return nil
	}
	if w, ok := c.lastWorkflow(fru); ok && !w.Active() && w.Outcome == OutcomeAborted {
		return nil
	}
	switch cur {
	case hpi.HsStateInsertionPending:
		return c.Observe(ctx, fru, hpi.HsStateInactive, cur)
	case hpi.HsStateExtractionPending:
		return c.Observe(ctx, fru, hpi.HsStateActive, cur)
	}
	return nil
}

// reconcileWaiting hands the Waiting FRUs to Reconcile, at most every
// ReconcileInterval; the caller leads, with the log applied (Step).
func (c *Coordinator) reconcileWaiting(ctx context.Context) {
	if c.cfg.Waiting == nil {
		return
	}
	now := c.cfg.Now()
	c.mu.Lock()
	due := now.Sub(c.reconciled) >= c.cfg.ReconcileInterval
	if due {
		c.reconciled = now
	}
	c.mu.Unlock()
	if !due {
		return
	}
	for _, w := range c.cfg.Waiting() {
		if err := c.Reconcile(ctx, w.FRU, w.State); err != nil && ctx.Err() == nil {
			c.log.Warn("hot-swap: reconciling a FRU waiting in a pending state", "fru", w.FRU.Key(), "state", w.State.String(), "err", err)
		}
	}
}

// lastWorkflow returns the most recently started workflow of fru the
// Machine holds.
func (c *Coordinator) lastWorkflow(fru FRU) (Workflow, bool) {
	all := c.cfg.Machine.Workflows()
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].FRU.Key() == fru.Key() {
			return all[i], true
		}
	}
	return Workflow{}, false
}

// RunEvents feeds the hot-swap events of sub into Observe until ctx ends.
// resolve maps an event's resource to its FRU (false: not a FRU this
// coordinator handles).
func (c *Coordinator) RunEvents(ctx context.Context, sub *hpi.Subscription, resolve func(hpi.Event) (FRU, bool)) error {
	for {
		ev, err := sub.Receive(ctx)
		if err != nil {
			var of *hpi.OverflowError
			if errors.As(err, &of) {
				c.log.Warn("hot-swap events were dropped; a missed transition is picked up when it is seen again", "err", err)
				continue
			}
			return fmt.Errorf("receiving hot-swap events: %w", err)
		}
		if ev.Type != hpi.EventHotSwap {
			continue
		}
		fru, ok := resolve(ev)
		if !ok {
			continue
		}
		if err := c.Observe(ctx, fru, ev.HotSwap.PreviousHotSwapState, ev.HotSwap.HotSwapState); err != nil {
			c.log.Warn("starting a hot-swap workflow failed", "fru", fru.Key(), "err", err)
		}
	}
}

// Run drives the workflows while this node leads, until ctx ends. A node
// that becomes leader first waits for the log (Barrier) and then resumes
// every workflow where the log says it stands.
func (c *Coordinator) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.PollInterval)
	defer t.Stop()
	// A step that proposed entries usually makes the next step possible
	// (acks in → activate): step again at once rather than a poll interval
	// later, but at most maxEager times in a row so a step that keeps
	// proposing cannot spin.
	const maxEager = 16
	eager := 0
	for {
		progress, err := c.Step(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("hot-swap step failed", "err", err)
		}
		if progress && err == nil && eager < maxEager && ctx.Err() == nil {
			eager++
			continue
		}
		eager = 0
		select {
		case <-ctx.Done():
			c.wg.Wait()
			return ctx.Err()
		case <-c.wake:
		case <-t.C:
		}
	}
}

// Step carries out every action the Machine asks for now, once, if this
// node is the leader and has quorum. It reports whether any entry was
// proposed. Run calls it in a loop; tests call it directly.
func (c *Coordinator) Step(ctx context.Context) (progress bool, err error) {
	if !c.cfg.Log.IsLeader() {
		c.mu.Lock()
		c.wasLeader = false
		c.mu.Unlock()
		return false, nil
	}
	c.mu.Lock()
	fresh := !c.wasLeader
	c.mu.Unlock()
	if fresh {
		if err := c.cfg.Log.Barrier(ctx); err != nil {
			return false, fmt.Errorf("waiting for the log before resuming hot-swap workflows: %w", err)
		}
		c.mu.Lock()
		c.wasLeader = true
		c.mu.Unlock()
		c.log.Info("leading hot-swap workflows", "last_index", c.cfg.Machine.LastIndex())
	}
	if !c.cfg.Log.HasQuorum() {
		return false, nil
	}
	c.reconcileWaiting(ctx)
	c.forgetFinished()
	acts := c.cfg.Machine.NextActions()
	// Member calls of one round run in parallel; the rest one by one.
	var calls []Action
	var errs []error
	for _, a := range acts {
		if a.Kind == ActApplyHooks || a.Kind == ActRevokeHooks {
			calls = append(calls, a)
			continue
		}
		p, err := c.do(ctx, a)
		progress = progress || p
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			return progress, ctx.Err()
		}
	}
	if len(calls) > 0 {
		type res struct {
			a   Action
			d   Digest
			err error
		}
		out := make([]res, len(calls))
		var wg sync.WaitGroup
		for i, a := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := c.callHooks(ctx, a)
				out[i] = res{a, d, err}
			}()
		}
		wg.Wait()
		for _, r := range out {
			if ctx.Err() != nil {
				return progress, ctx.Err()
			}
			p, err := c.hooksDone(ctx, r.a, r.d, r.err)
			progress = progress || p
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return progress, errors.Join(errs...)
}

// forgetFinished drops the retry timers of workflows no longer in flight.
func (c *Coordinator) forgetFinished() {
	c.mu.Lock()
	defer c.mu.Unlock()
	active := func(id string) bool { w, ok := c.cfg.Machine.Workflow(id); return ok && w.Active() }
	for k := range c.retryAt {
		if id := k[:max(strings.LastIndex(k, "/"), 0)]; !active(id) {
			delete(c.retryAt, k)
		}
	}
	for id := range c.hwFailedAt {
		if !active(id) {
			delete(c.hwFailedAt, id)
		}
	}
}

func (c *Coordinator) step(a Action) (Step, Workflow, bool) {
	w, ok := c.cfg.Machine.Workflow(a.Workflow)
	if !ok {
		return Step{}, w, false
	}
	op := OpApply
	if a.Kind == ActRevokeHooks {
		op = OpRevoke
	}
	return Step{Key: stepKey(w.ID, op), Workflow: w.ID, Kind: w.Kind, Op: op, FRU: w.FRU,
		DeviceClass: w.DeviceClass, Attempt: a.Attempt}, w, true
}

// callHooks asks a member to apply or revoke.
func (c *Coordinator) callHooks(ctx context.Context, a Action) (Digest, error) {
	s, _, ok := c.step(a)
	if !ok {
		return "", fmt.Errorf("workflow %s vanished", a.Workflow)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StepTimeout)
	defer cancel()
	if a.Member == c.cfg.Node && c.cfg.Member != nil {
		if s.Op == OpApply {
			return c.cfg.Member.Apply(ctx, s)
		}
		return c.cfg.Member.Revoke(ctx, s)
	}
	if c.cfg.Peers == nil {
		return "", fmt.Errorf("no peer RPC to reach member %s", a.Member)
	}
	method := MethodApply
	if s.Op == OpRevoke {
		method = MethodRevoke
	}
	var rep StepReply
	if err := c.cfg.Peers.Call(ctx, a.Member, method, s, &rep); err != nil {
		return "", fmt.Errorf("member %s unreachable or refused: %w", a.Member, err)
	}
	if !validDigest(string(rep.Digest)) {
		return "", fmt.Errorf("member %s answered an invalid digest", a.Member)
	}
	return rep.Digest, nil
}

func (c *Coordinator) hooksDone(ctx context.Context, a Action, d Digest, callErr error) (bool, error) {
	e := Entry{Workflow: a.Workflow, Member: a.Member, Attempt: a.Attempt}
	switch {
	case callErr == nil && a.Kind == ActApplyHooks:
		e.Type, e.Digest = TypeHookApplied, string(d)
	case callErr == nil:
		e.Type, e.Digest = TypePoliciesRevoked, string(d)
	case ctx.Err() != nil:
		return false, ctx.Err() // our own shutdown is not the member's refusal
	case a.Kind == ActApplyHooks:
		e.Type, e.Reason = TypeHookRefused, truncate(callErr.Error(), maxReasonLen)
	default:
		e.Type, e.Reason = TypeRevokeRefused, truncate(callErr.Error(), maxReasonLen)
	}
	_, err := c.propose(ctx, e)
	return err == nil, err
}

// do carries out one action that is not a member call.
func (c *Coordinator) do(ctx context.Context, a Action) (bool, error) {
	w, ok := c.cfg.Machine.Workflow(a.Workflow)
	if !ok {
		return false, nil
	}
	switch a.Kind {
	case ActRetry:
		key := fmt.Sprintf("%s/%d", a.Workflow, a.Attempt)
		now := c.cfg.Now()
		c.mu.Lock()
		at, seen := c.retryAt[key]
		if !seen {
			at = now.Add(c.cfg.RetryDelay)
			c.retryAt[key] = at
		}
		c.mu.Unlock()
		if now.Before(at) {
			return false, nil
		}
		c.mu.Lock()
		delete(c.retryAt, key)
		c.mu.Unlock()
		_, err := c.propose(ctx, Entry{Type: TypeRetry, Workflow: a.Workflow, Attempt: a.Attempt, Reason: a.Reason})
		return err == nil, err
	case ActAbort:
		_, err := c.propose(ctx, Entry{Type: TypeAborted, Workflow: a.Workflow, Reason: a.Reason})
		return err == nil, err
	case ActWipe:
		c.mu.Lock()
		busy := c.wiping[w.ID]
		c.wiping[w.ID] = true
		c.mu.Unlock()
		if busy {
			return false, nil
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer func() {
				c.mu.Lock()
				delete(c.wiping, w.ID)
				c.mu.Unlock()
				c.kick()
			}()
			wctx, cancel := context.WithTimeout(ctx, c.cfg.WipeTimeout)
			defer cancel()
			if _, err := c.wipe(wctx, ctx, w); err != nil && ctx.Err() == nil {
				c.log.Warn("wipe step failed", "workflow", w.ID, "err", err)
			}
		}()
		return false, nil
	}
	// Hardware actions: after a failure wait RetryDelay before trying again.
	c.mu.Lock()
	failedAt, failed := c.hwFailedAt[a.Workflow]
	c.mu.Unlock()
	if failed && c.cfg.Now().Before(failedAt.Add(c.cfg.RetryDelay)) {
		return false, nil
	}
	hctx, cancel := context.WithTimeout(ctx, c.cfg.StepTimeout)
	defer cancel()
	var p bool
	var err error
	switch a.Kind {
	case ActHold:
		p, err = c.hold(hctx, ctx, w)
	case ActActivate:
		p, err = c.activate(hctx, ctx, w)
	case ActDeactivate:
		p, err = c.deactivate(hctx, ctx, w)
	}
	if err != nil && ctx.Err() == nil && !isProposeErr(err) {
		c.mu.Lock()
		c.hwFailedAt[a.Workflow] = c.cfg.Now()
		c.mu.Unlock()
		c.alarm(a.Workflow, fmt.Sprintf("%s %s: %s failed: %v; retrying in %s", w.Kind, w.FRU.Key(), a.Kind, err, c.cfg.RetryDelay))
	} else if err == nil {
		c.mu.Lock()
		delete(c.hwFailedAt, a.Workflow)
		c.mu.Unlock()
	}
	return p, err
}

// proposeErr marks errors of proposing (not of the hardware).
type proposeErr struct{ error }

func (e proposeErr) Unwrap() error { return e.error }

func isProposeErr(err error) bool {
	var p proposeErr
	return errors.As(err, &p)
}

func (c *Coordinator) mustPropose(ctx context.Context, e Entry) error {
	if _, err := c.propose(ctx, e); err != nil {
		return proposeErr{err}
	}
	return nil
}

func (c *Coordinator) hold(hctx, ctx context.Context, w Workflow) (bool, error) {
	hw := c.cfg.Hardware
	policy := HoldLocked
	var err error
	if w.Kind == KindInsertion {
		err = hw.SetActivationLock(hctx, w.FRU, true)
	} else {
		policy = HoldDeactivationLocked
		err = hw.SetDeactivationLock(hctx, w.FRU, true)
	}
	switch {
	case errors.Is(err, hpi.ErrCapability):
		c.log.Warn("shelf manager has no activation policy; holding the FRU by not commanding it", "workflow", w.ID, "fru", w.FRU.Key())
		policy = HoldNotActivating
	case err != nil:
		return false, fmt.Errorf("holding %s for workflow %s: %w", w.FRU.Key(), w.ID, err)
	default:
		p, err := hw.ActivationPolicy(hctx, w.FRU)
		if err != nil {
			return false, fmt.Errorf("reading back the hold of %s: %w", w.FRU.Key(), err)
		}
		if (w.Kind == KindInsertion && !p.Locked) || (w.Kind != KindInsertion && !p.DeactivationLocked) {
			return false, fmt.Errorf("holding %s: policy read back as %+v", w.FRU.Key(), p)
		}
	}
	if w.Kind == KindInsertion {
		if ms, err := hw.MState(hctx, w.FRU); err == nil && (ms == hpi.M3 || ms == hpi.M4) {
			c.alarm(w.ID, fmt.Sprintf("insertion %s: FRU reached %s before the cluster applied its policies (the shelf manager did not hold it)", w.FRU.Key(), ms))
		}
	}
	return true, c.mustPropose(ctx, Entry{Type: TypeHeld, Workflow: w.ID, Policy: policy})
}

func mstatePtr(m hpi.MState) *uint8 { v := uint8(m); return &v }

func (c *Coordinator) activate(hctx, ctx context.Context, w Workflow) (bool, error) {
	hw := c.cfg.Hardware
	ms, err := hw.MState(hctx, w.FRU)
	if err != nil {
		return false, fmt.Errorf("activating %s: reading its M-state: %w", w.FRU.Key(), err)
	}
	if ms != hpi.M4 {
		if err := c.mustPropose(ctx, Entry{Type: TypeActivationRequested, Workflow: w.ID}); err != nil {
			return false, err
		}
		if w.Hold != HoldNotActivating {
			if err := hw.SetActivationLock(hctx, w.FRU, false); err != nil {
				return true, fmt.Errorf("activating %s: unlocking: %w", w.FRU.Key(), err)
			}
		}
		if err := hw.Activate(hctx, w.FRU); err != nil {
			return true, fmt.Errorf("activating %s: %w", w.FRU.Key(), err)
		}
		if ms, err = hw.MState(hctx, w.FRU); err != nil {
			return true, fmt.Errorf("activating %s: reading back its M-state: %w", w.FRU.Key(), err)
		}
		if ms != hpi.M4 {
			return true, fmt.Errorf("activating %s: read back %s, not M4", w.FRU.Key(), ms)
		}
	}
	if !c.cfg.LeaveActiveUnlocked && w.Hold != HoldNotActivating {
		if err := hw.SetDeactivationLock(hctx, w.FRU, true); err != nil && !errors.Is(err, hpi.ErrCapability) {
			return true, fmt.Errorf("activating %s: setting Deactivation-Locked: %w", w.FRU.Key(), err)
		}
	}
	return true, c.mustPropose(ctx, Entry{Type: TypeActivationConfirmed, Workflow: w.ID, MState: mstatePtr(ms)})
}

func (c *Coordinator) wipe(hctx, ctx context.Context, w Workflow) (bool, error) {
	if err := c.mustPropose(ctx, Entry{Type: TypeWipeStarted, Workflow: w.ID}); err != nil {
		return false, err
	}
	req := WipeRequest{Workflow: w.ID, FRU: w.FRU, Attempt: w.Attempt}
	var rep WipeReply
	var err error
	if w.Owner == c.cfg.Node && c.cfg.Member != nil {
		rep, err = c.cfg.Member.Wipe(hctx, req)
	} else if c.cfg.Peers == nil {
		err = fmt.Errorf("no peer RPC to reach owner %s", w.Owner)
	} else {
		err = c.cfg.Peers.Call(hctx, w.Owner, MethodWipe, req, &rep)
	}
	if ctx.Err() != nil {
		return true, ctx.Err()
	}
	e := Entry{Type: TypeWipeResult, Workflow: w.ID, Attempt: w.Attempt}
	switch {
	case err != nil:
		e.Reason = truncate(fmt.Sprintf("owner %s did not wipe: %v", w.Owner, err), maxReasonLen)
	case rep.OK && DigestOf(rep.Certificate) == rep.Digest:
		e.OK, e.Digest = true, string(rep.Digest)
		if aerr := c.attachCertificates(&e, w, rep); aerr != nil {
			c.log.Warn("wipe certificates refused", "audit", true, "workflow", w.ID, "owner", w.Owner, "err", aerr)
			e = Entry{Type: TypeWipeResult, Workflow: w.ID, Attempt: w.Attempt,
				Reason: truncate(fmt.Sprintf("owner %s answered certificates the cluster cannot accept: %v", w.Owner, aerr), maxReasonLen)}
		}
	case rep.OK:
		e.Reason = "owner " + w.Owner + " answered a certificate that does not match its digest"
	default:
		e.Reason = truncate(rep.Reason, maxReasonLen)
		if e.Reason == "" {
			e.Reason = "wipe failed"
		}
	}
	if e.OK && c.cfg.Certificate != nil {
		// Handed over before the result is in the log: once it is, the
		// workflow may deactivate the FRU at once.
		c.cfg.Certificate(w.ID, w.FRU, rep.Certificate)
	}
	if err := c.mustPropose(ctx, e); err != nil {
		return true, err
	}
	return true, nil
}

// maxSignerCertSize bounds the signer certificate of a wipe reply (a peer
// certificate is well under 2 KiB).
const maxSignerCertSize = 16 << 10

// attachCertificates puts the certificates of rep into e (a verified wipe
// result) when VerifySigner is set and the owner sent its signer
// certificate; see CoordinatorConfig.VerifySigner.
func (c *Coordinator) attachCertificates(e *Entry, w Workflow, rep WipeReply) error {
	if c.cfg.VerifySigner == nil {
		return nil
	}
	if len(rep.Signer) == 0 {
		c.log.Warn("the owner sent no signer certificate: its wipe certificates stay on it, the log records their digest",
			"workflow", w.ID, "owner", w.Owner)
		return nil
	}
	if len(rep.Signer) > maxSignerCertSize {
		return fmt.Errorf("signer certificate of %d bytes, more than %d: %w", len(rep.Signer), maxSignerCertSize, secureerase.ErrBadCertificates)
	}
	pub, err := c.cfg.VerifySigner(w.Owner, rep.Signer)
	if err != nil {
		return fmt.Errorf("checking the signer certificate of %s: %w", w.Owner, err)
	}
	certs, err := secureerase.VerifyCertificates(rep.Certificate, pub)
	if err != nil {
		return err
	}
	for _, ct := range certs {
		if ct.Node != w.Owner {
			return fmt.Errorf("certificate %s names node %q, not the owner: %w", ct.ID, truncate(ct.Node, 64), secureerase.ErrBadCertificates)
		}
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("encoding the signer key of %s: %w", w.Owner, err)
	}
	a := *e
	a.Certificates, a.SignerKey = rep.Certificate, der
	// The entry must come out of the log as it goes in: the Machine
	// checks the certificates against the digest byte for byte.
	b, err := a.Encode()
	if err == nil {
		_, err = DecodeEntry(b)
	}
	if err != nil {
		return err
	}
	*e = a
	return nil
}

func (c *Coordinator) deactivate(hctx, ctx context.Context, w Workflow) (bool, error) {
	hw := c.cfg.Hardware
	ms, err := hw.MState(hctx, w.FRU)
	if err != nil {
		return false, fmt.Errorf("deactivating %s: reading its M-state: %w", w.FRU.Key(), err)
	}
	if ms != hpi.M1 {
		if err := c.mustPropose(ctx, Entry{Type: TypeDeactivationRequested, Workflow: w.ID}); err != nil {
			return false, err
		}
		if w.Hold != HoldNotActivating {
			if err := hw.SetDeactivationLock(hctx, w.FRU, false); err != nil {
				return true, fmt.Errorf("deactivating %s: clearing the deactivation lock: %w", w.FRU.Key(), err)
			}
		}
		if err := hw.Deactivate(hctx, w.FRU); err != nil {
			return true, fmt.Errorf("deactivating %s: %w", w.FRU.Key(), err)
		}
		if ms, err = hw.MState(hctx, w.FRU); err != nil {
			return true, fmt.Errorf("deactivating %s: reading back its M-state: %w", w.FRU.Key(), err)
		}
		if ms != hpi.M1 {
			return true, fmt.Errorf("deactivating %s: read back %s, not M1", w.FRU.Key(), ms)
		}
	}
	if err := hw.SetBlueLED(hctx, w.FRU, true); err != nil {
		// The IPMC lights it by itself in M1; ours is a confirmation.
		c.log.Warn("blue LED not confirmed on", "workflow", w.ID, "fru", w.FRU.Key(), "err", err)
	}
	return true, c.mustPropose(ctx, Entry{Type: TypeDeactivationConfirmed, Workflow: w.ID, MState: mstatePtr(ms)})
}
