package cluster

import (
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Faults injects network faults between the nodes of one test process: loss
// of gossip packets, partitions (gossip packets, gossip streams, raft and RPC
// connections) and a tap on gossip packets as they leave a node (to replay
// them). One Faults is shared by every node's Config. Production leaves
// Config.Faults nil. Safe for concurrent use.
type Faults struct {
	mu    sync.Mutex
	loss  float64
	group map[string]int // node → partition group; nodes absent are in group 0
	// ggroup partitions gossip only (packets and memberlist streams), so
	// that gossip can declare a node dead that still answers raft and RPC.
	ggroup map[string]int
	tap    func(from, to string, packet []byte)
	conns  map[*faultConn]struct{}
}

// NewFaults returns a Faults with no loss and no partition.
func NewFaults() *Faults {
	return &Faults{group: map[string]int{}, ggroup: map[string]int{}, conns: map[*faultConn]struct{}{}}
}

// SetLoss drops the fraction p (0..1) of gossip packets at random, and
// fails the same fraction of memberlist's stream dials (its TCP fallback
// probes and state syncs), as a lossy link would make some of them time out.
func (f *Faults) SetLoss(p float64) {
	f.mu.Lock()
	f.loss = p
	f.mu.Unlock()
}

// Partition splits the named nodes into groups that cannot reach each other;
// nodes not named form one more group together. Connections crossing groups
// are closed at once.
func (f *Faults) Partition(groups ...[]string) {
	f.mu.Lock()
	f.group = map[string]int{}
	for i, g := range groups {
		for _, n := range g {
			f.group[n] = i + 1
		}
	}
	var cut []*faultConn
	for c := range f.conns {
		if !f.reachableLocked(c.self, c.peer) {
			cut = append(cut, c)
		}
	}
	f.mu.Unlock()
	for _, c := range cut {
		c.Conn.Close()
	}
}

// PartitionGossip splits the named nodes into groups whose gossip (packets
// and memberlist streams) cannot reach each other, while raft and RPC still
// can: gossip then declares members dead that are alive.
func (f *Faults) PartitionGossip(groups ...[]string) {
	f.mu.Lock()
	f.ggroup = map[string]int{}
	for i, g := range groups {
		for _, n := range g {
			f.ggroup[n] = i + 1
		}
	}
	f.mu.Unlock()
}

// Heal removes every partition.
func (f *Faults) Heal() {
	f.PartitionGossip()
	f.Partition()
}

func (f *Faults) gossipReachable(a, b string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reachableLocked(a, b) && f.ggroup[a] == f.ggroup[b]
}

// Tap calls fn with a copy of every gossip packet a node sends (after
// encryption, as it goes on the wire); nil removes the tap.
func (f *Faults) Tap(fn func(from, to string, packet []byte)) {
	f.mu.Lock()
	f.tap = fn
	f.mu.Unlock()
}

func (f *Faults) reachableLocked(a, b string) bool {
	return f.group[a] == f.group[b]
}

// Reachable reports whether node a can reach node b.
func (f *Faults) Reachable(a, b string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reachableLocked(a, b)
}

// dropPacket decides the fate of one gossip packet from → to.
func (f *Faults) dropPacket(from, to string, b []byte) bool {
	f.mu.Lock()
	drop := !f.reachableLocked(from, to) || f.ggroup[from] != f.ggroup[to] || (f.loss > 0 && rand.Float64() < f.loss)
	tap := f.tap
	f.mu.Unlock()
	if tap != nil && !drop {
		tap(from, to, append([]byte(nil), b...))
	}
	return drop
}

func (f *Faults) lossy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.loss > 0 && rand.Float64() < f.loss
}

var errPartitioned = errors.New("fault injection: peer unreachable (partition)")

// wrapConn registers a connection between self and peer so that a partition
// cuts it.
func (f *Faults) wrapConn(c net.Conn, self, peer string) net.Conn {
	fc := &faultConn{Conn: c, f: f, self: self, peer: peer}
	f.mu.Lock()
	if !f.reachableLocked(self, peer) {
		f.mu.Unlock()
		c.Close()
		return fc
	}
	f.conns[fc] = struct{}{}
	f.mu.Unlock()
	return fc
}

type faultConn struct {
	net.Conn
	f          *Faults
	self, peer string
}

func (c *faultConn) check() error {
	if !c.f.Reachable(c.self, c.peer) {
		c.Conn.Close()
		return errPartitioned
	}
	return nil
}

func (c *faultConn) Read(b []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *faultConn) Write(b []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *faultConn) Close() error {
	c.f.mu.Lock()
	delete(c.f.conns, c)
	c.f.mu.Unlock()
	return c.Conn.Close()
}

// faultTransport wraps memberlist's NetTransport for fault injection.
type faultTransport struct {
	*memberlist.NetTransport
	f      *Faults
	self   string
	byAddr map[string]string // gossip address → node
	in     chan *memberlist.Packet
	done   chan struct{}
	once   sync.Once
}

func newFaultTransport(inner *memberlist.NetTransport, f *Faults, cfg *Config) *faultTransport {
	t := &faultTransport{
		NetTransport: inner,
		f:            f,
		self:         cfg.NodeName,
		byAddr:       map[string]string{},
		in:           make(chan *memberlist.Packet),
		done:         make(chan struct{}),
	}
	for _, n := range cfg.Nodes {
		t.byAddr[normAddr(n.GossipAddr)] = n.Name
	}
	go t.pump()
	return t
}

func normAddr(a string) string {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return a
	}
	if ip := net.ParseIP(h); ip != nil {
		h = ip.String()
	}
	return net.JoinHostPort(h, p)
}

func (t *faultTransport) nodeOf(addr string) string {
	if n, ok := t.byAddr[normAddr(addr)]; ok {
		return n
	}
	return "?" + addr // strangers share no group with listed nodes unless healed
}

func (t *faultTransport) pump() {
	src := t.NetTransport.PacketCh()
	for {
		select {
		case p := <-src:
			from := t.nodeOf(p.From.String())
			if !t.f.gossipReachable(from, t.self) {
				continue
			}
			select {
			case t.in <- p:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *faultTransport) PacketCh() <-chan *memberlist.Packet { return t.in }

func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.f.dropPacket(t.self, t.nodeOf(addr), b) {
		return time.Now(), nil
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *faultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.f.dropPacket(t.self, t.nodeOf(a.Addr), b) {
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if !t.f.gossipReachable(t.self, t.nodeOf(addr)) {
		return nil, errPartitioned
	}
	if t.f.lossy() {
		return nil, errors.New("fault injection: stream dial lost")
	}
	return t.NetTransport.DialTimeout(addr, timeout)
}

func (t *faultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// Shutdown stops the inner transport first: its UDP reader blocks until
// its packet is taken, so the pump must keep draining until it has stopped.
func (t *faultTransport) Shutdown() error {
	err := t.NetTransport.Shutdown()
	t.once.Do(func() { close(t.done) })
	return err
}
