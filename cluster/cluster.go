// Package cluster is hpiagent's cluster layer: membership and failure
// detection (hashicorp/memberlist), the coordination log (hashicorp/raft)
// with a multiplexing FSM, peer RPC, and quorum.
//
// Security model. Gossip is encrypted and authenticated with the memberlist
// keyring and Label; there is no plaintext gossip. A key holder can still
// claim any name in gossip, so:
//
//   - Only allow-listed names are accepted (AliveDelegate and MergeDelegate
//     refuse the rest, counted), and only at the gossip address listed for
//     that name.
//   - A gossip member is "unverified" until the cluster has dialled the
//     member's listed RPC address over mutual TLS and the certificate there
//     carries the member's name. Unverified members produce no MemberEvent.
//   - A member memberlist declares dead is dialled once more over mutual
//     TLS; if it answers, the death is not reported (counted as refuted). A
//     replayed or forged "dead" message therefore starts no failure event,
//     and replayed alive messages carry old incarnation numbers that
//     memberlist ignores.
//
// Raft and RPC run over mutual TLS 1.3 only; a listener hands out a
// connection only after the client's certificate verified and its identity
// is allow-listed (raft: a node of the raft configuration), and the dialer
// checks that the peer's identity is the node it meant to reach. New
// connections are rate-limited before the handshake.
//
// Raft voters come from Config.Nodes; every voter bootstraps with that same
// configuration when its data directory is empty. Changing the voter set of
// a running cluster is not supported yet.
//
// Decisions that must happen once and only on the majority side (fences,
// workflow steps) go through Propose on the leader; a new leader calls
// Barrier before it resumes work.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// ErrNotLeader is returned (wrapped in *NotLeaderError) by leader-only
// operations on a node that is not the leader.
var ErrNotLeader = errors.New("this node is not the raft leader")

// ErrClosed is returned by operations on a closed or not started Cluster.
var ErrClosed = errors.New("cluster is not running")

// NotLeaderError says which node leads, if any is known.
type NotLeaderError struct {
	// Leader is the name of the current leader, "" if unknown.
	Leader string
}

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return "not the raft leader (no leader known)"
	}
	return fmt.Sprintf("not the raft leader (leader is %q)", e.Leader)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// Cluster is one node of the cluster. Create it with New, register FSMs
// (and RPC handlers) and call Start; the other methods are for after Start
// has returned. All methods are safe for concurrent use.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	policy *tlsPolicy
	fsm    *muxFSM

	mu         sync.Mutex
	started    bool
	closed     bool
	handlers   map[string]Handler
	members    map[string]*member
	leaderSubs []chan bool
	lastLeader bool

	raft      *raftNode
	raftLn    *secureListener
	rpcLn     *secureListener
	rpcServer *http.Server
	rpcClient *http.Client
	ml        *memberlist.Memberlist
	keyring   *memberlist.Keyring

	events   chan MemberEvent
	work     chan memberWork
	quorumAt atomic.Int64 // unix nanos of the leader's last confirmed quorum

	cnt       counters
	raftStats listenerStats
	rpcStats  listenerStats
	cancel    context.CancelFunc
	ctx       context.Context
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	// incarnation is random per New: peers tell a restart of this node
	// from the same process still answering after it announced leaving.
	incarnation string
}

// New checks cfg and prepares a node; nothing listens until Start.
func New(cfg Config) (*Cluster, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg:      cfg,
		log:      cfg.Logger.With("node", cfg.NodeName),
		policy:   newTLSPolicy(&cfg),
		fsm:      newMuxFSM(),
		handlers: map[string]Handler{},
		members:  map[string]*member{},
		events:   make(chan MemberEvent, cfg.EventBuffer),
		work:     make(chan memberWork, 1024),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.handlers[methodHello] = c.handleHello
	c.handlers[methodKeyring] = c.handleKeyring
	c.handlers[methodLeaving] = c.handleLeaving
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("cluster: incarnation: %w", err)
	}
	c.incarnation = hex.EncodeToString(nonce[:])
	return c, nil
}

// RegisterFSM registers the state machine for entries of kind. It must be
// called before Start, so that raft's replay of the log on start reaches
// every FSM.
func (c *Cluster) RegisterFSM(kind string, f FSM) error {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if started {
		return fmt.Errorf("registering FSM %q: cluster already started", kind)
	}
	return c.fsm.register(kind, f)
}

// Start opens the listeners, starts raft and memberlist and begins joining
// the listed nodes. It returns once this node is running; joining goes on in
// the background (MemberEvents and Status tell when peers arrive).
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.started || c.closed {
		c.mu.Unlock()
		return errors.New("cluster: Start called twice or after Close")
	}
	c.started = true
	c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	self, _ := c.cfg.node(c.cfg.NodeName)
	ok := false
	defer func() {
		if !ok {
			c.shutdown(false)
		}
	}()

	// RPC first: member verification needs it on every node.
	rpcLn, err := newSecureListener(&c.cfg, c.policy, self.RPCAddr, "rpc", c.allowed, &c.rpcStats)
	if err != nil {
		return err
	}
	c.rpcLn = rpcLn
	c.startRPC()

	if self.RaftAddr != "" {
		raftLn, err := newSecureListener(&c.cfg, c.policy, self.RaftAddr, "raft", c.raftAllowed, &c.raftStats)
		if err != nil {
			return err
		}
		c.raftLn = raftLn
		byAddr := map[string]string{}
		for _, n := range c.cfg.Nodes {
			if n.RaftAddr != "" {
				byAddr[normAddr(n.RaftAddr)] = n.Name
			}
		}
		stream := &raftStream{secureListener: raftLn, policy: c.policy, byAddr: byAddr, faults: c.cfg.Faults, self: c.cfg.NodeName}
		rn, err := startRaft(&c.cfg, c.fsm, stream, newHCLogger(c.log))
		if err != nil {
			return err
		}
		c.raft = rn
		c.wg.Add(2)
		go c.observeRaft()
		go c.quorumLoop()
	}

	if err := c.startGossip(self); err != nil {
		return err
	}
	c.wg.Add(2)
	go c.memberWorker()
	go c.joinLoop()
	ok = true
	c.log.Info("cluster: node started", "audit", true, "gossip", self.GossipAddr, "raft", self.RaftAddr, "rpc", self.RPCAddr)
	return nil
}

// allowed reports whether id is on the allow-list.
func (c *Cluster) allowed(id string) bool {
	_, ok := c.cfg.node(id)
	return ok
}

// raftAllowed reports whether id is in the raft configuration.
func (c *Cluster) raftAllowed(id string) bool {
	n, ok := c.cfg.node(id)
	return ok && n.RaftAddr != ""
}

// observeRaft fans leadership changes out to LeaderCh subscribers.
func (c *Cluster) observeRaft() {
	defer c.wg.Done()
	ch := make(chan raft.Observation, 64)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	c.raft.r.RegisterObserver(obs)
	defer c.raft.r.DeregisterObserver(obs)
	tick := time.NewTicker(c.cfg.HeartbeatTimeout)
	defer tick.Stop()
	for {
		select {
		case <-ch:
		case <-tick.C:
		case <-c.ctx.Done():
			return
		}
		c.publishLeadership(c.raft.r.State() == raft.Leader)
	}
}

func (c *Cluster) publishLeadership(leader bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if leader == c.lastLeader {
		return
	}
	c.lastLeader = leader
	if !leader {
		c.quorumAt.Store(0)
	}
	c.log.Info("cluster: leadership changed", "audit", true, "leader", leader, "term", c.raft.r.CurrentTerm())
	for _, s := range c.leaderSubs {
		select {
		case <-s: // drop the stale value: subscribers want the latest
		default:
		}
		s <- leader
	}
}

// quorumLoop confirms, while leading, that a majority still answers.
func (c *Cluster) quorumLoop() {
	defer c.wg.Done()
	every := c.cfg.LeaderLeaseTimeout / 2
	tick := time.NewTicker(every)
	defer tick.Stop()
	// raft's VerifyLeader future can stay unanswered when leadership or
	// the node goes away under it, so it is never waited for in this loop
	// (which Close waits for): its answer comes on a channel, one check at
	// a time, and a check that does not answer simply lets quorumAt age
	// out, so HasQuorum turns false.
	var verifying chan error
	var started time.Time
	for {
		select {
		case <-c.ctx.Done():
			return
		case err := <-verifying:
			verifying = nil
			if err != nil {
				c.quorumAt.Store(0)
			} else {
				c.quorumAt.Store(started.UnixNano())
			}
			continue
		case <-tick.C:
		}
		if c.raft.r.State() != raft.Leader {
			c.quorumAt.Store(0)
			continue
		}
		if verifying != nil {
			continue // the previous check has not answered yet
		}
		started = time.Now()
		f := c.raft.r.VerifyLeader()
		ch := make(chan error, 1)
		go func() { ch <- f.Error() }() // may never return; not part of wg
		verifying = ch
	}
}

// Propose appends an entry of kind to the log and waits until this node has
// applied it; it returns the entry's index and the FSM's Apply result. Only
// the leader proposes: elsewhere the error is a *NotLeaderError
// (errors.Is(err, ErrNotLeader)). If ctx ends first the entry may still be
// committed later.
func (c *Cluster) Propose(ctx context.Context, kind string, payload []byte) (uint64, any, error) {
	if c.raft == nil {
		return 0, nil, ErrClosed
	}
	data, err := encodeEntry(kind, payload)
	if err != nil {
		return 0, nil, err
	}
	r := c.raft.r
	if r.State() != raft.Leader {
		return 0, nil, &NotLeaderError{Leader: c.leaderName()}
	}
	timeout := c.cfg.RPCTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := r.Apply(data, timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
				return 0, nil, fmt.Errorf("proposing %q: %w", kind, &NotLeaderError{Leader: c.leaderName()})
			}
			return 0, nil, fmt.Errorf("proposing %q: %w", kind, err)
		}
		return f.Index(), f.Response(), nil
	case <-ctx.Done():
		return 0, nil, fmt.Errorf("proposing %q: %w (the entry may still be committed)", kind, ctx.Err())
	}
}

// Barrier returns once the leader has applied every entry committed before
// it; a new leader calls it before acting on FSM state.
func (c *Cluster) Barrier(ctx context.Context) error {
	if c.raft == nil {
		return ErrClosed
	}
	if c.raft.r.State() != raft.Leader {
		return &NotLeaderError{Leader: c.leaderName()}
	}
	timeout := c.cfg.RPCTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := c.raft.r.Barrier(timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				return fmt.Errorf("raft barrier: %w", &NotLeaderError{Leader: c.leaderName()})
			}
			return fmt.Errorf("raft barrier: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("raft barrier: %w", ctx.Err())
	}
}

// IsLeader reports whether this node is the raft leader now.
func (c *Cluster) IsLeader() bool {
	return c.raft != nil && c.raft.r.State() == raft.Leader
}

// LeaderCh returns a new channel that receives true when this node becomes
// leader and false when it stops. It holds only the latest value (capacity
// 1): a slow reader sees the current state, not every flap. The current
// state is sent at once.
func (c *Cluster) LeaderCh() <-chan bool {
	ch := make(chan bool, 1)
	c.mu.Lock()
	c.leaderSubs = append(c.leaderSubs, ch)
	ch <- c.lastLeader
	c.mu.Unlock()
	return ch
}

// HasQuorum reports whether this node is in contact with a majority: the
// leader has had a heartbeat round answered by a majority within
// HeartbeatTimeout; a follower has heard from a leader within
// HeartbeatTimeout.
func (c *Cluster) HasQuorum() bool {
	if c.raft == nil {
		return false
	}
	r := c.raft.r
	switch r.State() {
	case raft.Leader:
		at := c.quorumAt.Load()
		return at != 0 && time.Since(time.Unix(0, at)) <= c.cfg.HeartbeatTimeout
	case raft.Follower:
		addr, _ := r.LeaderWithID()
		return addr != "" && time.Since(r.LastContact()) <= c.cfg.HeartbeatTimeout
	}
	return false
}

func (c *Cluster) leaderName() string {
	if c.raft == nil {
		return ""
	}
	_, id := c.raft.r.LeaderWithID()
	return string(id)
}

// MemberEvents returns the channel of membership changes of allow-listed,
// verified members (see MemberEvent). It is bounded (Config.EventBuffer);
// events that do not fit are dropped and counted in Status().Counters.
func (c *Cluster) MemberEvents() <-chan MemberEvent { return c.events }

// Close leaves the cluster gracefully (members see "left", not "dead"),
// stops raft, memberlist and the listeners and waits for them.
func (c *Cluster) Close() error { return c.shutdown(true) }

// Kill stops the node without announcing its departure, as a crash would:
// the others detect it as dead. For tests and for a node that fences itself.
func (c *Cluster) Kill() error { return c.shutdown(false) }

// announceLeaving tells every verified member over mutual TLS that this
// node is stopping gracefully, before it leaves gossip: a member that then
// finds it gone reports it as left, not dead, so a clean stop (an upgrade,
// a reboot by the operator) is never fenced. Gossip's own leave message
// can be lost; this one is acknowledged. Best effort, bounded in time.
func (c *Cluster) announceLeaving() {
	c.mu.Lock()
	var peers []string
	for name, m := range c.members {
		if m.verified {
			peers = append(peers, name)
		}
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RPCTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Call(ctx, p, methodLeaving, leavingReq{Incarnation: c.incarnation}, nil); err != nil {
				c.log.Warn("cluster: could not tell a member this node is leaving", "member", p, "err", err)
			}
		}()
	}
	wg.Wait()
}

func (c *Cluster) shutdown(leave bool) error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		var errs []error
		if leave {
			c.announceLeaving()
		}
		if c.ml != nil {
			if leave {
				if err := c.ml.Leave(time.Second); err != nil {
					errs = append(errs, fmt.Errorf("leaving memberlist: %w", err))
				}
			}
			if err := c.ml.Shutdown(); err != nil {
				errs = append(errs, fmt.Errorf("stopping memberlist: %w", err))
			}
		}
		c.cancel()
		if c.raft != nil {
			if err := c.raft.shutdown(); err != nil {
				errs = append(errs, fmt.Errorf("stopping raft: %w", err))
			}
		}
		if c.raftLn != nil {
			c.raftLn.Close()
		}
		if c.rpcServer != nil {
			c.rpcServer.Close()
		}
		if c.rpcLn != nil {
			c.rpcLn.Close()
		}
		if c.rpcClient != nil {
			c.rpcClient.CloseIdleConnections()
		}
		c.wg.Wait()
		c.closeErr = errors.Join(errs...)
		c.log.Info("cluster: node stopped", "audit", true, "graceful", leave)
	})
	return c.closeErr
}
