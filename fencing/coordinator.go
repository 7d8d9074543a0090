package fencing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"hpiagent/hpi"
)

// Log is what the coordinator needs from the cluster's replicated log
// (hashicorp/raft behind the cluster package; *cluster.Cluster implements
// it). Propose appends an entry of kind (always LogKind here) and returns,
// once it is committed and applied locally, its index and what the FSM's
// Apply returned for it. Only the leader may propose.
type Log interface {
	Propose(ctx context.Context, kind string, payload []byte) (index uint64, result any, err error)
	IsLeader() bool
	HasQuorum() bool
	Barrier(ctx context.Context) error
}

// LeadershipTransferer is implemented by a Log that can hand the
// leadership to another voter (*cluster.Cluster.TransferLeadership). The
// coordinator uses it, when the Log has it, to have another member fence
// this node: a leader never fences itself. It returns the name of the
// voter that took over, or an error when nobody could.
type LeadershipTransferer interface {
	TransferLeadership(ctx context.Context) (to string, err error)
}

// LogKind is the kind under which the fencing Machine is registered with
// the cluster (cluster.RegisterFSM) and every fencing entry is proposed.
const LogKind = "fencing"

// Errors of the coordinator, matched with errors.Is.
var (
	// ErrNotLeader: this node is not the leader holding quorum; fence
	// decisions are taken only there.
	ErrNotLeader = errors.New("fencing: not the cluster leader with quorum")
	// ErrUnknownNode: the node is not a configured fencing target.
	ErrUnknownNode = errors.New("fencing: not a configured fencing target")
	// ErrSelf: a node never fences itself. The leader asked to fence its
	// own node hands the leadership over so that another member does it;
	// when that is not possible the request is refused with ErrSelf and
	// the node's watchdog remains its fence. When the hand-over worked the
	// error wraps ErrNotLeader as well: retry on the new leader.
	ErrSelf = errors.New("fencing: refusing to fence this node itself")
)

// NodeConfig describes one cluster node as a fencing target.
type NodeConfig struct {
	// Entity is the entity path of the node's blade in the HPI model; a
	// failure reported for this entity or one inside it fences the node.
	// Empty: hardware failures are not mapped to this node.
	Entity hpi.EntityPath
}

// CoordinatorConfig configures a Coordinator.
type CoordinatorConfig struct {
	// Self is this node's cluster name. It is never fenced by this node:
	// when it must be fenced and this node leads, the leadership is handed
	// over (see HandOver).
	Self string
	// Log is the cluster's replicated log. Required.
	Log Log
	// Machine is the state machine the cluster applies the log to on this
	// node. Required.
	Machine *Machine
	// Levels is the fencing topology in order: level 0 first. Required.
	Levels []Level
	// Nodes are the fencing targets by cluster node name. A request for a
	// node not listed is refused. Required.
	Nodes map[string]NodeConfig
	// Sources are the failure sources that may start a fence. Default
	// every source. Operators can always fence (SourceOperator).
	Sources []Source
	// DeadMembers, if set, lists the nodes cluster membership holds dead
	// now (cluster.Status members in state dead). The leader calls it
	// after its Barrier and at every scan and requests a fence for each
	// listed target that is idle, so a death reported to a node before it
	// became leader is not lost. A failed fence is not retried from here
	// (an operator or a new failure report starts it again), nor is a node
	// that was ever unfenced (it is dead to membership while it boots).
	DeadMembers func() []string
	// FailedHardware, if set, lists the hardware failures the HPI model
	// holds now (CurrentFailures of the agent's domain). It is called at
	// every scan on every member; the leader requests a fence
	// (SourceHardware, if enabled) for each failed entity's node (NodeFor)
	// that is idle, so a failure reported as an event before this node
	// became leader, or one of the previous leader's own blade, is not
	// lost. A RESOURCE FAILURE event only starts a scan (the model's state
	// decides, see CurrentFailures: M7 is a blade's failure, failed
	// without M7 is a lost shelf manager), while a CRITICAL sensor
	// assertion still requests a fence at once. Without FailedHardware a
	// blade whose controller is lost (M7) is not fenced.
	//
	// Rule against fence loops: a target whose last fence failed on every
	// level is not retried from here (as with DeadMembers; an operator or
	// a new failure event starts it again). A target an operator unfenced
	// (or a reboot powered on again) is fenced from here only after this
	// member has seen it idle without any hardware failure since that
	// unfence: a failure that persists from before the unfence, or one
	// this member never saw clear (it started after the unfence), fences
	// nothing from the scan, so a blade whose sensor still reads critical
	// is not powered off again every second after an operator let it boot.
	// A failure that clears and comes back fences it again, once.
	//
	// When the failed node is this node and this node leads, it hands the
	// leadership over instead (see OnHandOver), and the new leader's scan
	// fences it.
	FailedHardware func() []Failure
	// OnHandOver, if set, is called (synchronously, keep it short) after
	// every attempt of this node to hand its leadership over because its
	// own node must be fenced: the place for the audit record. Attempts
	// are limited to one per RepeatInterval; without a Log implementing
	// LeadershipTransferer every attempt fails and the watchdog remains
	// the fence.
	OnHandOver func(HandOver)
	// HandOverTimeout bounds one hand-over attempt. Default 15 s: raft
	// tries each other voter for about its election timeout.
	HandOverTimeout time.Duration
	// Scan is how often the leader re-scans the state machine for work
	// (a fence it did not start, or one to resume). Default 1 s.
	Scan time.Duration
	// LevelTimeout bounds one level execution including read-back.
	// Default 60 s: longer than any executor's confirmation timeout.
	LevelTimeout time.Duration
	// OnOutcome, if set, is called (synchronously, keep it short) with
	// the outcome of every entry this node proposed and saw applied. An
	// entry whose Propose failed (leadership moved) may still commit
	// without it: for a complete audit trail and alarms on every member
	// use Machine.Observe.
	OnOutcome func(Outcome)
	// RepeatInterval limits log entries for repeated failure reports: while
	// a node is being fenced or is fenced, a report from the same
	// non-operator source is written to the log (as a recorded duplicate)
	// at most once per interval; others are dropped here. Default 10 s: a
	// flapping sensor or a membership storm must not flood the log.
	RepeatInterval time.Duration
	// Now is the clock of RepeatInterval. Default time.Now.
	Now func() time.Time
	// NewID returns a new operation ID. Default: 16 random hex digits.
	NewID func() string
	// Logger receives fence decisions at Info, failures at Warn/Error.
	// Default slog.Default().
	Logger *slog.Logger
}

// Coordinator drives fences on the leader: it turns failure reports into
// log entries, executes the levels the state machine asks for, and writes
// their results back, resuming what a previous leader left in flight.
type Coordinator struct {
	cfg    CoordinatorConfig
	levels map[string]Level
	wake   chan struct{}

	mu      sync.Mutex
	running map[string]bool      // targets with a driver goroutine
	repeats map[string]time.Time // node/source -> last duplicate report written to the log
	ours    map[uint64]bool      // executions this node started in its current leadership
	sources map[Source]bool
	// clean: node -> RequestIndex of its latest unfence, once this member
	// saw the node idle without a hardware failure after that unfence.
	clean map[string]uint64
	// lastHandOver is when this node last tried to hand its leadership over.
	lastHandOver time.Time
}

// HandOver is one attempt of the leader to hand its leadership over
// because its own node must be fenced.
type HandOver struct {
	// Node is this node; Reason why it must be fenced.
	Node   string
	Reason string
	// To is the voter that took the leadership over; empty when Err is set.
	To  string
	Err error
}

// NewCoordinator validates cfg and returns a Coordinator. Call Run.
func NewCoordinator(cfg CoordinatorConfig) (*Coordinator, error) {
	if cfg.Log == nil || cfg.Machine == nil {
		return nil, fmt.Errorf("fencing: coordinator needs a log and a state machine")
	}
	if len(cfg.Levels) == 0 || len(cfg.Levels) > MaxLevels {
		return nil, fmt.Errorf("fencing: coordinator needs 1..%d levels, got %d", MaxLevels, len(cfg.Levels))
	}
	levels := map[string]Level{}
	for i, l := range cfg.Levels {
		if l.Name == "" || len(l.Executors) == 0 {
			return nil, fmt.Errorf("fencing: level %d has no name or no executors", i)
		}
		if _, dup := levels[l.Name]; dup {
			return nil, fmt.Errorf("fencing: level name %q used twice", l.Name)
		}
		if l.Attempts <= 0 {
			cfg.Levels[i].Attempts = 1
		}
		if cfg.Levels[i].Attempts > MaxAttempts {
			return nil, fmt.Errorf("fencing: level %q: at most %d attempts", l.Name, MaxAttempts)
		}
		levels[l.Name] = cfg.Levels[i]
	}
	if len(cfg.Nodes) == 0 {
		return nil, fmt.Errorf("fencing: coordinator without fencing targets")
	}
	if cfg.Scan <= 0 {
		cfg.Scan = time.Second
	}
	if cfg.LevelTimeout <= 0 {
		cfg.LevelTimeout = 60 * time.Second
	}
	if cfg.NewID == nil {
		cfg.NewID = randomID
	}
	if cfg.RepeatInterval <= 0 {
		cfg.RepeatInterval = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HandOverTimeout <= 0 {
		cfg.HandOverTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	src := map[Source]bool{SourceOperator: true}
	if len(cfg.Sources) == 0 {
		cfg.Sources = []Source{SourceMemberDead, SourceHardware, SourceWatchdog}
	}
	for _, s := range cfg.Sources {
		src[s] = true
	}
	return &Coordinator{cfg: cfg, levels: levels, wake: make(chan struct{}, 1),
		running: map[string]bool{}, repeats: map[string]time.Time{}, ours: map[uint64]bool{}, sources: src,
		clean: map[string]uint64{}}, nil
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *Coordinator) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Coordinator) plan() []LevelPlan {
	p := make([]LevelPlan, len(c.cfg.Levels))
	for i, l := range c.cfg.Levels {
		p[i] = LevelPlan{Name: l.Name, Attempts: l.Attempts}
	}
	return p
}

func (c *Coordinator) leader() bool { return c.cfg.Log.IsLeader() && c.cfg.Log.HasQuorum() }

// propose writes one command and returns its outcome.
func (c *Coordinator) propose(ctx context.Context, cmd Command) (Outcome, error) {
	if !c.leader() {
		return Outcome{}, ErrNotLeader
	}
	b, err := Encode(cmd)
	if err != nil {
		return Outcome{}, fmt.Errorf("encoding %s for %q: %w", cmd.Kind, cmd.Target, err)
	}
	idx, res, err := c.cfg.Log.Propose(ctx, LogKind, b)
	if err != nil {
		if !c.leader() {
			return Outcome{}, fmt.Errorf("proposing %s for %q: %w: %w", cmd.Kind, cmd.Target, ErrNotLeader, err)
		}
		return Outcome{}, fmt.Errorf("proposing %s for %q: %w", cmd.Kind, cmd.Target, err)
	}
	o, ok := res.(Outcome)
	if !ok {
		return Outcome{}, fmt.Errorf("proposing %s for %q: entry %d applied with unexpected result %T", cmd.Kind, cmd.Target, idx, res)
	}
	if o.Err != nil {
		return o, fmt.Errorf("proposing %s for %q: %w", cmd.Kind, cmd.Target, o.Err)
	}
	c.record(cmd, o)
	return o, nil
}

func (c *Coordinator) record(cmd Command, o Outcome) {
	log := c.cfg.Logger
	attrs := []any{"target", o.Target, "op", o.ID, "kind", o.Kind, "index", o.Index, "phase", o.Phase, "note", o.Note}
	switch {
	case o.Failed:
		log.Error("fence failed on every level", attrs...)
	case o.Done:
		log.Info("fence confirmed", attrs...)
	case cmd.Kind == KindLevelResult && !cmd.OK:
		log.Warn("fence level failed", append(attrs, "level", cmd.Level, "attempt", cmd.Attempt, "error", cmd.Err)...)
	default:
		log.Info("fencing entry applied", attrs...)
	}
	if c.cfg.OnOutcome != nil {
		c.cfg.OnOutcome(o)
	}
}

// Request asks for node to be fenced. It is refused unless this node is
// the leader with quorum, the node is a configured target, and source is
// enabled. A request while a fence of the node is in flight, or when it is
// already fenced, is recorded and deduplicated.
//
// A request to fence this node itself is never written by this node: on a
// follower it is refused with ErrNotLeader (the leader takes it, as for
// any node); on the leader, the leadership is handed over (at most once
// per RepeatInterval) and the error wraps ErrNotLeader and ErrSelf, so the
// caller retries on the new leader; if no other voter can take over it is
// refused with ErrSelf alone.
func (c *Coordinator) Request(ctx context.Context, node string, action Action, source Source, reason, requester string) (Outcome, error) {
	if node == c.cfg.Self {
		return Outcome{}, c.requestSelf(ctx, source, reason)
	}
	if _, ok := c.cfg.Nodes[node]; !ok {
		return Outcome{}, fmt.Errorf("fence of %q: %w", node, ErrUnknownNode)
	}
	if !c.sources[source] {
		return Outcome{}, fmt.Errorf("fence of %q: source %q is not enabled", node, source)
	}
	if action == "" {
		action = ActionOff
	}
	key := node + "\x00" + string(source)
	if source != SourceOperator {
		if st, _ := c.cfg.Machine.State(node); (st.Phase == PhaseFencing || st.Phase == PhaseFenced) && st.Fence != nil {
			c.mu.Lock()
			last, seen := c.repeats[key]
			c.mu.Unlock()
			if seen && c.cfg.Now().Sub(last) < c.cfg.RepeatInterval {
				return Outcome{Kind: KindFenceRequested, Target: node, ID: st.Fence.ID, Phase: st.Phase, Note: "repeated report dropped before the log"}, nil
			}
		}
		c.mu.Lock()
		c.repeats[key] = c.cfg.Now()
		c.mu.Unlock()
	}
	o, err := c.propose(ctx, Command{Kind: KindFenceRequested, Target: node, ID: c.cfg.NewID(), Action: action,
		Source: source, Reason: reason, Requester: requester, Plan: c.plan()})
	if err != nil {
		return o, err
	}
	c.poke()
	return o, nil
}

// requestSelf answers a request to fence this node (see Request).
func (c *Coordinator) requestSelf(ctx context.Context, source Source, reason string) error {
	node := c.cfg.Self
	if !c.sources[source] {
		return fmt.Errorf("fence of %q: source %q is not enabled", node, source)
	}
	if !c.leader() {
		return fmt.Errorf("fence of %q, this node: %w", node, ErrNotLeader)
	}
	to, err := c.handOver(ctx, reason)
	if err != nil {
		return fmt.Errorf("fence of %q: this node leads the cluster and never fences itself, and it could not hand the leadership over (%w); its watchdog remains its fence: %w", node, err, ErrSelf)
	}
	return fmt.Errorf("fence of %q: this node led the cluster and never fences itself; it handed the leadership to %s, retry there: %w: %w", node, to, ErrNotLeader, ErrSelf)
}

// errHandOverLimited: a hand-over was tried less than RepeatInterval ago.
var errHandOverLimited = errors.New("a leadership hand-over was tried less than the repeat interval ago")

// handOver hands this leader's leadership to another voter because its
// own node must be fenced, at most once per RepeatInterval. It logs and
// reports (OnHandOver) every attempt.
func (c *Coordinator) handOver(ctx context.Context, reason string) (string, error) {
	c.mu.Lock()
	now := c.cfg.Now()
	if !c.lastHandOver.IsZero() && now.Sub(c.lastHandOver) < c.cfg.RepeatInterval {
		c.mu.Unlock()
		return "", errHandOverLimited
	}
	c.lastHandOver = now
	c.mu.Unlock()
	log := c.cfg.Logger
	log.Warn("fencing: this node must be fenced and leads the cluster; handing the leadership over", "node", c.cfg.Self, "reason", reason)
	var to string
	var err error
	if tr, ok := c.cfg.Log.(LeadershipTransferer); ok {
		tctx, cancel := context.WithTimeout(ctx, c.cfg.HandOverTimeout)
		to, err = tr.TransferLeadership(tctx)
		cancel()
	} else {
		err = errors.New("the cluster log cannot hand the leadership over")
	}
	if err != nil {
		err = fmt.Errorf("handing the leadership over: %w", err)
		log.Error("fencing: this node must be fenced but no other member can take the leadership over; nothing is fenced, its watchdog remains its fence",
			"node", c.cfg.Self, "reason", reason, "error", err)
	} else {
		log.Info("fencing: leadership handed over so that another member fences this node", "node", c.cfg.Self, "to", to, "reason", reason)
	}
	if c.cfg.OnHandOver != nil {
		c.cfg.OnHandOver(HandOver{Node: c.cfg.Self, Reason: reason, To: to, Err: err})
	}
	return to, err
}

// Unfence asks for a fenced (or failed) node to be powered on again
// (operator request; requester is the authenticated operator).
func (c *Coordinator) Unfence(ctx context.Context, node, requester, reason string) (Outcome, error) {
	if _, ok := c.cfg.Nodes[node]; !ok {
		return Outcome{}, fmt.Errorf("unfence of %q: %w", node, ErrUnknownNode)
	}
	o, err := c.propose(ctx, Command{Kind: KindUnfenceRequested, Target: node, ID: c.cfg.NewID(), Requester: requester, Reason: reason})
	if err != nil {
		return o, err
	}
	c.poke()
	return o, nil
}

// MemberDead reports that cluster membership declared node dead.
func (c *Coordinator) MemberDead(ctx context.Context, node, detail string) (Outcome, error) {
	return c.Request(ctx, node, ActionOff, SourceMemberDead, "member dead: "+detail, "")
}

// WatchdogExpired reports a watchdog expiry of node (for example a BMC
// watchdog event seen in the shelf's SEL).
func (c *Coordinator) WatchdogExpired(ctx context.Context, node, detail string) (Outcome, error) {
	return c.Request(ctx, node, ActionOff, SourceWatchdog, "watchdog expired: "+detail, "")
}

// Status returns the replicated state of node (any member can answer).
func (c *Coordinator) Status(node string) (TargetState, bool) { return c.cfg.Machine.State(node) }

// NodeFor returns the configured node whose entity path contains entity
// (equal, or entity is inside it).
func (c *Coordinator) NodeFor(entity hpi.EntityPath) (string, bool) {
	for name, n := range c.cfg.Nodes {
		if len(n.Entity) == 0 || len(entity) < len(n.Entity) {
			continue
		}
		if entity[len(entity)-len(n.Entity):].Equal(n.Entity) {
			return name, true
		}
	}
	return "", false
}

// SensorWatchdog2 is the IPMI "Watchdog 2" sensor type (IPMI 2.0 table
// 42-3); its assertions report a watchdog expiry and the action taken.
const SensorWatchdog2 hpi.SensorType = 0x23

// FailureOf says whether ev reports a failure that warrants fencing the
// resource's node, and from which source: a resource failure (lost
// communication, M7) or a critical sensor assertion is a hardware failure;
// a Watchdog 2 sensor assertion is a watchdog expiry. It is pure.
func FailureOf(ev hpi.Event) (src Source, reason string, ok bool) {
	switch ev.Type {
	case hpi.EventResource:
		if ev.Resource.Type == hpi.ResourceFailure {
			return SourceHardware, "resource failed", true
		}
	case hpi.EventSensor:
		if !ev.Sensor.Assertion {
			return "", "", false
		}
		if ev.Sensor.SensorType == SensorWatchdog2 {
			return SourceWatchdog, fmt.Sprintf("watchdog sensor %d asserted state %#x", ev.Sensor.Num, ev.Sensor.EventState), true
		}
		if ev.Severity == hpi.Critical {
			return SourceHardware, fmt.Sprintf("critical sensor %d asserted state %#x", ev.Sensor.Num, ev.Sensor.EventState), true
		}
	}
	return "", "", false
}

// Events is an HPI event stream (hpi.Subscription).
type Events interface {
	Receive(ctx context.Context) (hpi.Event, error)
}

// WatchEvents consumes HPI domain events until ctx ends and requests a
// fence for every failure (FailureOf) of a node's entity. Only the leader acts
// on them; on other members they are ignored (every member sees the same
// shelf, so the leader sees the event as well, and FailedHardware lets a
// new leader find what it missed). A failure of this node's own entity
// makes the leader hand its leadership over (Request). With
// FailedHardware set, a RESOURCE FAILURE event starts a scan instead of a
// request: the model's state says whether it is a blade's failure (M7) or
// a lost shelf manager. An overflow of the subscription is logged and
// reading continues.
func (c *Coordinator) WatchEvents(ctx context.Context, ev Events) error {
	for {
		e, err := ev.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var of *hpi.OverflowError
			if errors.As(err, &of) {
				c.cfg.Logger.Warn("fencing missed HPI events", "error", err)
				continue
			}
			return fmt.Errorf("fencing: reading HPI events: %w", err)
		}
		src, reason, bad := FailureOf(e)
		if !bad {
			continue
		}
		node, ok := c.NodeFor(e.Entity)
		if !ok || !c.leader() {
			continue
		}
		if e.Type == hpi.EventResource {
			// A RESOURCE FAILURE alone cannot tell a blade's lost
			// controller (M7) from a lost shelf manager, which marks
			// every resource of its shelf failed: fencing on the event
			// would power off every blade. The model decides at the scan
			// (FailedHardware); without it the event fences nothing.
			if c.cfg.FailedHardware != nil {
				c.poke()
			} else {
				c.cfg.Logger.Warn("fencing: a resource failure is not acted on without FailedHardware (the model's state)", "node", node, "entity", e.Entity.String())
			}
			continue
		}
		why := fmt.Sprintf("%s on %s (event %d)", reason, e.Entity, e.ID)
		if node == c.cfg.Self {
			if st, _ := c.cfg.Machine.State(node); st.Phase != PhaseIdle {
				continue // fenced, failed or in flight: the scan sees to it
			}
			if err := c.requestSelf(ctx, src, why); err != nil && !errors.Is(err, ErrNotLeader) && !errors.Is(err, errHandOverLimited) {
				c.cfg.Logger.Warn("fencing: failure of this node's own blade", "node", node, "error", err)
			}
			continue
		}
		if _, err := c.Request(ctx, node, ActionOff, src, why, ""); err != nil {
			c.cfg.Logger.Warn("fence request for hardware failure not taken", "node", node, "error", err)
		}
	}
}

// Run drives fences while this node is the leader with quorum, until ctx
// ends. On becoming leader it waits for a Barrier (every committed entry
// applied here), then resumes every fence and unfence in flight.
func (c *Coordinator) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Scan)
	defer t.Stop()
	wasLeader := false
	var termCtx context.Context
	var termCancel context.CancelFunc = func() {}
	defer func() { termCancel() }()
	for {
		lead := c.leader()
		switch {
		case lead && !wasLeader:
			if err := c.cfg.Log.Barrier(ctx); err != nil {
				c.cfg.Logger.Warn("fencing: barrier after leadership failed", "error", err)
				lead = false
				break
			}
			c.mu.Lock()
			c.ours = map[uint64]bool{}
			c.mu.Unlock()
			termCtx, termCancel = newTerm(ctx)
			c.cfg.Logger.Info("fencing: leading; resuming fences in flight")
		case !lead && wasLeader:
			termCancel()
			c.cfg.Logger.Info("fencing: no longer leading")
		}
		wasLeader = lead
		failed := c.hardwareFailures()
		if lead {
			c.scan(termCtx, failed)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-c.wake:
		}
	}
}

// newTerm returns the context of one leadership term; it is cancelled when
// leadership is lost so that executions of that term stop.
func newTerm(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

// hardwareFailures asks FailedHardware and maps the failures to nodes
// (reasons joined per node). It also notes, for the unfence rule of
// FailedHardware, the unfenced targets seen idle without a failure. It
// runs on every member, leader or not.
func (c *Coordinator) hardwareFailures() map[string]string {
	if c.cfg.FailedHardware == nil {
		return nil
	}
	failed := map[string]string{}
	for _, f := range c.cfg.FailedHardware() {
		node, ok := c.NodeFor(f.Entity)
		if !ok {
			continue
		}
		if r, seen := failed[node]; seen {
			if len(r) < maxStringLen/2 {
				failed[node] = r + "; " + f.Reason
			}
			continue
		}
		failed[node] = f.Reason
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for node := range c.cfg.Nodes {
		if _, bad := failed[node]; bad {
			continue
		}
		if st, _ := c.cfg.Machine.State(node); st.Phase == PhaseIdle && st.Unfence != nil {
			c.clean[node] = st.Unfence.RequestIndex
		}
	}
	return failed
}

// hardwareFenceable says whether a hardware failure of node now may start
// a fence from the scan (see FailedHardware): node idle, and never
// unfenced or seen without a failure since its latest unfence.
func (c *Coordinator) hardwareFenceable(node string) bool {
	st, _ := c.cfg.Machine.State(node)
	if st.Phase != PhaseIdle {
		return false
	}
	if st.Unfence == nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	idx, ok := c.clean[node]
	return ok && idx == st.Unfence.RequestIndex
}

// scan requests fences for dead members and failed hardware and starts a
// driver for every target with work and none running. A fence of this
// node itself is never driven here: the leadership is handed over.
func (c *Coordinator) scan(ctx context.Context, failed map[string]string) {
	if c.cfg.DeadMembers != nil {
		for _, node := range c.cfg.DeadMembers() {
			if _, ok := c.cfg.Nodes[node]; !ok || node == c.cfg.Self {
				continue
			}
			// Not a node an operator unfenced: it stays "dead" to
			// membership until its agent is back, and must be let boot.
			if st, _ := c.cfg.Machine.State(node); st.Phase != PhaseIdle || st.Unfence != nil {
				continue
			}
			if _, err := c.Request(ctx, node, ActionOff, SourceMemberDead, "member dead (membership view of the new leader)", ""); err != nil && ctx.Err() == nil {
				c.cfg.Logger.Warn("fencing: request for dead member not taken", "node", node, "error", err)
			}
		}
	}
	if c.sources[SourceHardware] {
		nodes := make([]string, 0, len(failed))
		for node := range failed {
			nodes = append(nodes, node)
		}
		sort.Strings(nodes)
		for _, node := range nodes {
			if !c.hardwareFenceable(node) {
				continue
			}
			reason := truncate("hardware failure (model state seen by the leader): " + failed[node])
			if node == c.cfg.Self {
				if err := c.requestSelf(ctx, SourceHardware, reason); err != nil && !errors.Is(err, ErrNotLeader) && !errors.Is(err, errHandOverLimited) && ctx.Err() == nil {
					c.cfg.Logger.Warn("fencing: failure of this node's own blade", "node", node, "error", err)
				}
				continue
			}
			if _, err := c.Request(ctx, node, ActionOff, SourceHardware, reason, ""); err != nil && ctx.Err() == nil {
				c.cfg.Logger.Warn("fencing: request for failed hardware not taken", "node", node, "error", err)
			}
		}
	}
	for _, ts := range c.cfg.Machine.Targets() {
		next := NextStep(ts).Kind
		if next == StepNone {
			continue
		}
		if ts.Target == c.cfg.Self && isFenceStep(next) {
			if err := c.requestSelf(ctx, SourceOperator, "a fence of this node is in flight"); err != nil && !errors.Is(err, ErrNotLeader) && !errors.Is(err, errHandOverLimited) && ctx.Err() == nil {
				c.cfg.Logger.Warn("fencing: a fence of this node is in flight and this node leads", "node", ts.Target, "error", err)
			}
			continue
		}
		c.mu.Lock()
		busy := c.running[ts.Target]
		if !busy {
			c.running[ts.Target] = true
		}
		c.mu.Unlock()
		if busy {
			continue
		}
		go func(node string) {
			defer func() {
				c.mu.Lock()
				delete(c.running, node)
				c.mu.Unlock()
			}()
			if err := c.drive(ctx, node); err != nil && ctx.Err() == nil {
				c.cfg.Logger.Warn("fencing: driving target stopped", "target", node, "error", err)
			}
		}(ts.Target)
	}
}

// isFenceStep: the step executes or starts a fence level (not an unfence).
func isFenceStep(k StepKind) bool { return k == StepStartLevel || k == StepExecuteLevel }

func (c *Coordinator) mine(exec uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ours[exec]
}

func (c *Coordinator) started(o Outcome) {
	c.mu.Lock()
	c.ours[o.Index] = true
	c.mu.Unlock()
}

// drive carries one target's operation forward step by step until nothing
// is left to do, leadership is lost or ctx ends.
func (c *Coordinator) drive(ctx context.Context, node string) error {
	for ctx.Err() == nil {
		ts, _ := c.cfg.Machine.State(node)
		st := NextStep(ts)
		if node == c.cfg.Self && isFenceStep(st.Kind) {
			return nil // never fences itself; scan hands the leadership over
		}
		switch st.Kind {
		case StepNone:
			return nil
		case StepStartLevel:
			o, err := c.propose(ctx, Command{Kind: KindLevelStarted, Target: node, ID: st.ID, Level: st.Level, Attempt: st.Attempt})
			if err != nil {
				return err
			}
			if o.Accepted {
				c.started(o)
			}
		case StepExecuteLevel:
			if !c.mine(st.Exec) {
				// Started by a previous leader (or a previous term of
				// ours): supersede that execution so a late result of it
				// is ignored, then execute again. Power-off is idempotent
				// and the read-back decides.
				o, err := c.propose(ctx, Command{Kind: KindLevelStarted, Target: node, ID: st.ID, Level: st.Level, Attempt: st.Attempt})
				if err != nil {
					return err
				}
				if o.Accepted {
					c.started(o)
				}
				continue
			}
			res := c.executeLevel(ctx, node, st)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			o, err := c.propose(ctx, res)
			if err != nil {
				return err
			}
			if o.Done {
				if f, _ := c.cfg.Machine.State(node); f.Fence != nil && f.Fence.ID == st.ID && f.Fence.Action == ActionReboot {
					if _, err := c.propose(ctx, Command{Kind: KindUnfenceRequested, Target: node, ID: c.cfg.NewID(), Requester: "reboot " + st.ID, Reason: "reboot: power on after confirmed fence"}); err != nil {
						return err
					}
				}
			}
		case StepStartUnfence:
			o, err := c.propose(ctx, Command{Kind: KindUnfenceStarted, Target: node, ID: st.ID})
			if err != nil {
				return err
			}
			if o.Accepted {
				c.started(o)
			}
		case StepExecuteUnfence:
			if !c.mine(st.Exec) {
				o, err := c.propose(ctx, Command{Kind: KindUnfenceStarted, Target: node, ID: st.ID})
				if err != nil {
					return err
				}
				if o.Accepted {
					c.started(o)
				}
				continue
			}
			res := c.executeUnfence(ctx, node, st)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if _, err := c.propose(ctx, res); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

func (c *Coordinator) executeLevel(ctx context.Context, node string, st Step) Command {
	res := Command{Kind: KindLevelResult, Target: node, ID: st.ID, Level: st.Level, Attempt: st.Attempt, Exec: st.Exec}
	name := st.Plan[st.Level].Name
	l, ok := c.levels[name]
	if !ok {
		res.Err = fmt.Sprintf("level %q is not configured on this node", name)
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.LevelTimeout)
	defer cancel()
	c.cfg.Logger.Info("fencing: executing level", "target", node, "op", st.ID, "level", name, "attempt", st.Attempt)
	got, err := l.Off(ctx, node)
	res.Readback = got.String()
	if err != nil {
		res.Err = truncate(err.Error())
		return res
	}
	res.OK = got == PowerOff
	return res
}

func (c *Coordinator) executeUnfence(ctx context.Context, node string, st Step) Command {
	res := Command{Kind: KindUnfenceResult, Target: node, ID: st.ID, Exec: st.Exec}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.LevelTimeout)
	defer cancel()
	var errs []error
	for i := st.Levels - 1; i >= 0; i-- {
		name := st.Plan[i].Name
		l, ok := c.levels[name]
		if !ok {
			errs = append(errs, fmt.Errorf("level %q is not configured on this node", name))
			continue
		}
		if _, err := l.On(ctx, node); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		res.Err = truncate(err.Error())
		res.Readback = PowerUnknown.String()
		return res
	}
	res.OK, res.Readback = true, ReadbackOn
	return res
}

func truncate(s string) string {
	if len(s) > maxStringLen {
		s = s[:maxStringLen-3] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// FenceView is the fence operation part of NodeView.
type FenceView struct {
	ID     string `json:"id"`
	Action Action `json:"action"`
	Source Source `json:"source"`
	// Done: confirmed off by read-back. Failed: every level failed.
	Done   bool   `json:"done"`
	Failed bool   `json:"failed"`
	Error  string `json:"error,omitempty"`
}

// NodeView is what the API serves for GET /v1/fence/{node} (and, per node,
// GET /v1/fence): the replicated phase, the power state read back now
// through the fencing levels, and the last fence operation.
type NodeView struct {
	Node  string     `json:"node"`
	Phase Phase      `json:"phase"`
	Power string     `json:"power"`
	Fence *FenceView `json:"fence,omitempty"`
}

// Nodes lists the configured fencing targets, sorted.
func (c *Coordinator) Nodes() []string {
	out := make([]string, 0, len(c.cfg.Nodes))
	for n := range c.cfg.Nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// View returns node's state with a live power read-back: "off" if any
// level reads it off, "on" if the first level that answers reads on,
// "unknown" otherwise.
func (c *Coordinator) View(ctx context.Context, node string) (NodeView, error) {
	if _, ok := c.cfg.Nodes[node]; !ok {
		return NodeView{}, fmt.Errorf("status of %q: %w", node, ErrUnknownNode)
	}
	st, _ := c.cfg.Machine.State(node)
	v := NodeView{Node: node, Phase: st.Phase, Power: PowerUnknown.String()}
	if f := st.Fence; f != nil {
		fv := &FenceView{ID: f.ID, Action: f.Action, Source: f.Source, Done: f.FencedBy >= 0, Failed: st.Phase == PhaseFailed && f.FencedBy < 0}
		if n := len(f.Results); n > 0 && !f.Results[n-1].OK {
			fv.Error = f.Results[n-1].Err
		}
		if st.Unfence != nil && st.Unfence.Err != "" && st.Phase == PhaseFenced {
			fv.Error = st.Unfence.Err
		}
		v.Fence = fv
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	on := false
	for _, l := range c.cfg.Levels {
		p, err := l.Status(ctx, node)
		if p == PowerOff {
			v.Power = PowerOff.String()
			return v, nil
		}
		if err == nil && p == PowerOn {
			on = true
		}
	}
	if on {
		v.Power = PowerOn.String()
	}
	return v, nil
}
