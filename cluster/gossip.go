package cluster

import (
	"context"
	"fmt"
	"log"
	"net"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// MemberState is a member's gossip state.
type MemberState string

// Member states.
const (
	StateUnknown MemberState = "unknown" // listed, never seen
	StateAlive   MemberState = "alive"
	StateSuspect MemberState = "suspect"
	StateDead    MemberState = "dead"
	StateLeft    MemberState = "left"
)

// EventKind is the kind of a MemberEvent.
type EventKind string

// Member event kinds.
const (
	// EventJoin: a member is verified and alive for the first time.
	EventJoin EventKind = "join"
	// EventAlive: a member that was dead or had left is alive again.
	EventAlive EventKind = "alive"
	// EventDead: memberlist declared the member dead and it did not
	// answer a mutual TLS dial either.
	EventDead EventKind = "dead"
	// EventLeave: the member left gracefully.
	EventLeave EventKind = "leave"
)

// MemberEvent is a change of an allow-listed, verified member.
type MemberEvent struct {
	Kind EventKind
	Node string
	// Addr is the member's gossip address.
	Addr string
	Time time.Time
}

// MemberStatus is one member as this node sees it.
type MemberStatus struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	// State is alive or suspect as gossip says; dead only once the death
	// was confirmed (an EventDead was sent): gossip's "dead" that a mutual
	// TLS dial has not confirmed shows as suspect. Left after a graceful
	// leave, unknown for a listed node never seen.
	State MemberState `json:"state"`
	// Verified: the member's RPC endpoint proved its name by certificate.
	Verified bool `json:"verified"`
	Voter    bool `json:"voter"`
	Self     bool `json:"self,omitempty"`
}

// Counters count refusals and losses since start.
type Counters struct {
	// GossipRefusedNotListed: alive or merge messages for names not on the
	// allow-list.
	GossipRefusedNotListed uint64 `json:"gossip_refused_not_listed"`
	// GossipRefusedAddress: alive messages for a listed name from another
	// address than listed.
	GossipRefusedAddress uint64 `json:"gossip_refused_address"`
	// VerifyFailed: mutual TLS checks of a gossip member that failed (no
	// answer or the wrong certificate).
	VerifyFailed uint64 `json:"verify_failed"`
	// DeadRefuted: members memberlist declared dead that answered over
	// mutual TLS (no event was sent).
	DeadRefuted uint64 `json:"dead_refuted"`
	// EventsDropped: MemberEvents not delivered because the channel was full.
	EventsDropped uint64 `json:"events_dropped"`
	// RaftRateLimited, RPCRateLimited: connections closed before the
	// handshake by the rate limit.
	RaftRateLimited uint64 `json:"raft_rate_limited"`
	RPCRateLimited  uint64 `json:"rpc_rate_limited"`
	// RaftHandshakeFailed, RPCHandshakeFailed: failed TLS handshakes
	// (plaintext, no or untrusted client certificate, old TLS).
	RaftHandshakeFailed uint64 `json:"raft_handshake_failed"`
	RPCHandshakeFailed  uint64 `json:"rpc_handshake_failed"`
	// RaftPeerRefused, RPCPeerRefused: verified certificates whose identity
	// is not allowed on that listener.
	RaftPeerRefused uint64 `json:"raft_peer_refused"`
	RPCPeerRefused  uint64 `json:"rpc_peer_refused"`
}

type counters struct {
	notListed, badAddr, verifyFailed, deadRefuted, dropped atomic.Uint64
}

// Status is this node's view of the cluster.
type Status struct {
	Node         string         `json:"node"`
	Leader       string         `json:"leader"`
	RaftState    string         `json:"raft_state"`
	Term         uint64         `json:"term"`
	LastIndex    uint64         `json:"last_index"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	HasQuorum    bool           `json:"has_quorum"`
	Members      []MemberStatus `json:"members"`
	Counters     Counters       `json:"counters"`
}

// member is the cluster's record of one allow-listed node.
type member struct {
	addr      string
	state     MemberState
	verified  bool
	busy      bool      // a verification or confirmation is running
	announced EventKind // last event sent; "" none yet
	// leaving is the incarnation that announced a graceful stop; until
	// the member answers with another incarnation (it restarted), its
	// disappearance is a leave, not a death.
	leaving string
}

type workKind int

const (
	workAlive workKind = iota
	workDead
	workLeft
	workVerified
	workVerifyFailed
	workConfirmed // dead confirmed
	workRefuted   // dead refuted: it answered
	workLeaving   // the member announced a graceful stop over mutual TLS
)

type memberWork struct {
	kind        workKind
	node        string
	addr        string
	incarnation string // workVerified, workLeaving
}

// gossipDelegate implements memberlist's Alive, Merge, Event and Conflict
// delegates. Its methods run under memberlist's locks: no blocking.
type gossipDelegate struct{ c *Cluster }

func (d gossipDelegate) check(n *memberlist.Node) error {
	listed, ok := d.c.cfg.node(n.Name)
	if !ok {
		d.c.cnt.notListed.Add(1)
		return fmt.Errorf("node %q is not on the allow-list", n.Name)
	}
	got := net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	if normAddr(got) != normAddr(listed.GossipAddr) {
		d.c.cnt.badAddr.Add(1)
		return fmt.Errorf("node %q announced from %s, listed at %s", n.Name, got, listed.GossipAddr)
	}
	return nil
}

// NotifyAlive implements memberlist.AliveDelegate.
func (d gossipDelegate) NotifyAlive(n *memberlist.Node) error { return d.check(n) }

// NotifyMerge implements memberlist.MergeDelegate.
func (d gossipDelegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, n := range peers {
		if err := d.check(n); err != nil {
			d.c.log.Warn("cluster: gossip merge refused", "err", err)
			return err
		}
	}
	return nil
}

// NotifyConflict implements memberlist.ConflictDelegate.
func (d gossipDelegate) NotifyConflict(existing, other *memberlist.Node) {
	d.c.log.Warn("cluster: gossip name conflict", "node", existing.Name, "existing", existing.Address(), "other", other.Address())
}

// NotifyJoin implements memberlist.EventDelegate.
func (d gossipDelegate) NotifyJoin(n *memberlist.Node) {
	d.c.post(memberWork{kind: workAlive, node: n.Name, addr: n.Address()})
}

// NotifyUpdate implements memberlist.EventDelegate.
func (d gossipDelegate) NotifyUpdate(n *memberlist.Node) {
	d.c.post(memberWork{kind: workAlive, node: n.Name, addr: n.Address()})
}

// NotifyLeave implements memberlist.EventDelegate.
func (d gossipDelegate) NotifyLeave(n *memberlist.Node) {
	k := workDead
	if n.State == memberlist.StateLeft {
		k = workLeft
	}
	d.c.post(memberWork{kind: k, node: n.Name, addr: n.Address()})
}

func (c *Cluster) post(w memberWork) {
	select {
	case c.work <- w:
	default:
		c.cnt.dropped.Add(1)
		c.log.Error("cluster: membership work queue full, change dropped", "node", w.node)
	}
}

func (c *Cluster) startGossip(self Node) error {
	host, portStr, _ := net.SplitHostPort(self.GossipAddr)
	port, _ := strconv.Atoi(portStr)
	mlog := log.New(&logWriter{log: c.log, component: "memberlist"}, "", 0)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{host},
		BindPort:  port,
		Logger:    mlog,
	})
	if err != nil {
		return fmt.Errorf("opening gossip transport on %s: %w", self.GossipAddr, err)
	}
	kr, err := memberlist.NewKeyring(c.cfg.GossipKeys, c.cfg.GossipKeys[0])
	if err != nil {
		nt.Shutdown()
		return fmt.Errorf("gossip keyring: %w", err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.cfg.NodeName
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	mc.Label = c.cfg.Label
	mc.Keyring = kr
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	mc.ProbeInterval = c.cfg.ProbeInterval
	mc.ProbeTimeout = c.cfg.ProbeTimeout
	mc.SuspicionMult = c.cfg.SuspicionMult
	mc.SuspicionMaxTimeoutMult = c.cfg.SuspicionMaxTimeoutMult
	mc.GossipInterval = c.cfg.GossipInterval
	mc.GossipNodes = c.cfg.GossipNodes
	mc.PushPullInterval = c.cfg.PushPullInterval
	mc.AwarenessMaxMultiplier = 4
	mc.TCPTimeout = 2 * time.Second
	mc.Logger = mlog
	d := gossipDelegate{c: c}
	mc.Alive, mc.Merge, mc.Events, mc.Conflict = d, d, d, d
	if c.cfg.Faults != nil {
		mc.Transport = newFaultTransport(nt, c.cfg.Faults, &c.cfg)
	} else {
		mc.Transport = nt
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		mc.Transport.Shutdown()
		return fmt.Errorf("starting memberlist on %s: %w", self.GossipAddr, err)
	}
	c.ml, c.keyring = ml, kr
	return nil
}

// joinLoop (re)joins listed nodes that memberlist does not see alive: at
// start, after a partition heals and after a member restarts.
func (c *Cluster) joinLoop() {
	defer c.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-c.ctx.Done():
			return
		}
		alive := map[string]bool{}
		for _, m := range c.ml.Members() {
			alive[m.Name] = true
		}
		var addrs []string
		for _, n := range c.cfg.Nodes {
			if n.Name != c.cfg.NodeName && !alive[n.Name] {
				addrs = append(addrs, n.GossipAddr)
			}
		}
		if len(addrs) > 0 {
			if _, err := c.ml.Join(addrs); err != nil {
				c.log.Debug("cluster: joining listed nodes", "err", err)
			}
		}
		t.Reset(time.Second)
	}
}

// memberWorker owns the member table's transitions and sends events.
func (c *Cluster) memberWorker() {
	defer c.wg.Done()
	for {
		select {
		case w := <-c.work:
			c.handleWork(w)
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *Cluster) handleWork(w memberWork) {
	if w.node == c.cfg.NodeName {
		return
	}
	c.mu.Lock()
	m := c.members[w.node]
	if m == nil {
		m = &member{state: StateUnknown}
		c.members[w.node] = m
	}
	var emit EventKind
	start := func(f func(string)) {
		if !m.busy {
			m.busy = true
			c.wg.Add(1)
			go func() { defer c.wg.Done(); f(w.node) }()
		}
	}
	switch w.kind {
	case workAlive:
		m.addr = w.addr
		m.state = StateAlive
		if !m.verified {
			start(c.verify)
		} else if m.announced != EventJoin && m.announced != EventAlive {
			emit = EventAlive
		}
	case workDead:
		m.state = StateDead
		if m.leaving != "" {
			// It said it was stopping: gone is a leave.
			if m.verified {
				m.verified = false
				emit = EventLeave
			}
			break
		}
		if m.verified && !m.busy {
			start(c.confirmDead)
		}
	case workLeaving:
		m.leaving = w.incarnation
		if m.verified {
			m.verified = false
			emit = EventLeave
		}
	case workLeft:
		m.state = StateLeft
		if m.verified {
			m.verified = false
			emit = EventLeave
		}
	case workVerified:
		m.busy = false
		if m.state != StateAlive {
			break
		}
		if m.leaving != "" {
			if w.incarnation == m.leaving {
				break // the stopping process still answers: not back
			}
			m.leaving = "" // restarted
		}
		m.verified = true
		switch m.announced {
		case "":
			emit = EventJoin
		case EventDead, EventLeave:
			emit = EventAlive
		}
	case workVerifyFailed:
		m.busy = false
	case workConfirmed:
		m.busy = false
		if m.state == StateDead && m.leaving != "" {
			if m.verified {
				m.verified = false
				emit = EventLeave
			}
		} else if m.state == StateDead {
			m.verified = false
			emit = EventDead
		} else if m.state == StateAlive && !m.verified {
			start(c.verify)
		}
	case workRefuted:
		m.busy = false
	}
	if emit != "" {
		m.announced = emit
	}
	addr := m.addr
	c.mu.Unlock()
	if emit != "" {
		c.emit(MemberEvent{Kind: emit, Node: w.node, Addr: addr, Time: time.Now()})
	}
}

func (c *Cluster) emit(e MemberEvent) {
	c.log.Info("cluster: member event", "audit", true, "event", string(e.Kind), "member", e.Node, "addr", e.Addr)
	select {
	case c.events <- e:
	default:
		c.cnt.dropped.Add(1)
		c.log.Error("cluster: member event dropped, channel full", "event", string(e.Kind), "member", e.Node)
	}
}

// hello asks node over mutual TLS who it is; the TLS dial already checks
// the certificate identity against node.
func (c *Cluster) hello(ctx context.Context, node string) (incarnation string, err error) {
	var resp helloResp
	if err := c.Call(ctx, node, methodHello, helloReq{From: c.cfg.NodeName}, &resp); err != nil {
		return "", err
	}
	if resp.Node != node {
		return "", fmt.Errorf("node at the address of %q says it is %q", node, resp.Node)
	}
	return resp.Incarnation, nil
}

// verify binds a gossip member to its certificate, retrying while the
// member stays alive in gossip.
func (c *Cluster) verify(node string) {
	backoff := 200 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.HandshakeTimeout)
		inc, err := c.hello(ctx, node)
		cancel()
		if err == nil {
			c.post(memberWork{kind: workVerified, node: node, incarnation: inc})
			return
		}
		c.cnt.verifyFailed.Add(1)
		c.log.Warn("cluster: gossip member not verified", "member", node, "err", err)
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
		c.mu.Lock()
		alive := c.members[node] != nil && c.members[node].state == StateAlive
		c.mu.Unlock()
		if !alive {
			c.post(memberWork{kind: workVerifyFailed, node: node})
			return
		}
	}
}

// confirmDead dials a member memberlist declared dead once over mutual TLS.
func (c *Cluster) confirmDead(node string) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.HandshakeTimeout)
	_, err := c.hello(ctx, node)
	cancel()
	if c.ctx.Err() != nil {
		return
	}
	if err == nil {
		c.cnt.deadRefuted.Add(1)
		c.log.Warn("cluster: gossip says member is dead but it answers over mutual TLS; not reported", "audit", true, "member", node)
		c.post(memberWork{kind: workRefuted, node: node})
		return
	}
	c.post(memberWork{kind: workConfirmed, node: node})
}

// Status returns this node's view of the cluster.
func (c *Cluster) Status() Status {
	st := Status{Node: c.cfg.NodeName}
	if c.raft != nil {
		r := c.raft.r
		st.Leader = c.leaderName()
		st.RaftState = r.State().String()
		st.Term = r.CurrentTerm()
		st.LastIndex = r.LastIndex()
		st.CommitIndex = r.CommitIndex()
		st.AppliedIndex = r.AppliedIndex()
		st.HasQuorum = c.HasQuorum()
	}
	gossip := map[string]*memberlist.Node{}
	if c.ml != nil {
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if !closed {
			for _, n := range c.ml.Members() {
				gossip[n.Name] = n
			}
		}
	}
	c.mu.Lock()
	for _, n := range c.cfg.Nodes {
		ms := MemberStatus{Name: n.Name, Addr: n.GossipAddr, State: StateUnknown, Voter: !n.NonVoter && n.RaftAddr != ""}
		if n.Name == c.cfg.NodeName {
			ms.Self, ms.Verified, ms.State = true, true, StateAlive
		} else if m := c.members[n.Name]; m != nil {
			ms.Verified = m.verified
			switch {
			case m.state == StateDead && m.announced != EventDead:
				// Gossip says dead, but no mutual TLS dial confirmed it
				// (yet): a forged or replayed death, or one being checked.
				ms.State = StateSuspect
			default:
				ms.State = m.state
			}
		}
		if g := gossip[n.Name]; g != nil && !ms.Self {
			switch g.State {
			case memberlist.StateAlive:
				ms.State = StateAlive
			case memberlist.StateSuspect:
				ms.State = StateSuspect
			}
		}
		st.Members = append(st.Members, ms)
	}
	c.mu.Unlock()
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].Name < st.Members[j].Name })
	st.Counters = Counters{
		GossipRefusedNotListed: c.cnt.notListed.Load(),
		GossipRefusedAddress:   c.cnt.badAddr.Load(),
		VerifyFailed:           c.cnt.verifyFailed.Load(),
		DeadRefuted:            c.cnt.deadRefuted.Load(),
		EventsDropped:          c.cnt.dropped.Load(),
		RaftRateLimited:        c.raftStats.rateLimited.Load(),
		RPCRateLimited:         c.rpcStats.rateLimited.Load(),
		RaftHandshakeFailed:    c.raftStats.handshakeFail.Load(),
		RPCHandshakeFailed:     c.rpcStats.handshakeFail.Load(),
		RaftPeerRefused:        c.raftStats.notAllowed.Load(),
		RPCPeerRefused:         c.rpcStats.notAllowed.Load(),
	}
	return st
}
