package hotswap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"hpiagent/hpi"
)

// fakeLog is an in-process replicated log: entries are appended by the
// leader and applied, in order, to the Machine of every node that is up.
// A node that restarts gets a fresh Machine that replays the whole log.
type fakeLog struct {
	mu      sync.Mutex
	entries [][]byte
	leader  string
	nodes   map[string]*fakeNode
}

type fakeNode struct {
	name    string
	machine *Machine
	applied int
	up      bool
}

func newFakeLog(names ...string) *fakeLog {
	l := &fakeLog{nodes: map[string]*fakeNode{}, leader: names[0]}
	for _, n := range names {
		l.nodes[n] = &fakeNode{name: n, machine: NewMachine(), up: true}
	}
	return l
}

// catchUp applies the entries node n has not applied (l.mu held).
func (l *fakeLog) catchUp(n *fakeNode) any {
	var last any
	for n.applied < len(l.entries) {
		n.applied++
		last = n.machine.Apply(uint64(n.applied), l.entries[n.applied-1])
	}
	return last
}

// restart gives node name a fresh Machine replayed from the log.
func (l *fakeLog) restart(name string) *Machine {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.nodes[name]
	n.machine, n.applied, n.up = NewMachine(), 0, true
	l.catchUp(n)
	return n.machine
}

func (l *fakeLog) setUp(name string, up bool) {
	l.mu.Lock()
	l.nodes[name].up = up
	l.mu.Unlock()
}

func (l *fakeLog) setLeader(name string) {
	l.mu.Lock()
	l.leader = name
	l.mu.Unlock()
}

func (l *fakeLog) machine(name string) *Machine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nodes[name].machine
}

func (l *fakeLog) log() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.entries...)
}

// nodeLog is one node's view of the fake log (implements Log).
type nodeLog struct {
	l    *fakeLog
	name string
}

var errNotLeader = errors.New("not the leader")

func (n nodeLog) Propose(ctx context.Context, kind string, payload []byte) (uint64, any, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	if kind != LogKind {
		return 0, nil, fmt.Errorf("unknown kind %q", kind)
	}
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	if n.l.leader != n.name || !n.l.nodes[n.name].up {
		return 0, nil, errNotLeader
	}
	n.l.entries = append(n.l.entries, append([]byte(nil), payload...))
	var res any
	for _, node := range n.l.nodes {
		if !node.up {
			continue
		}
		r := n.l.catchUp(node)
		if node.name == n.name {
			res = r
		}
	}
	return uint64(len(n.l.entries)), res, nil
}

func (n nodeLog) IsLeader() bool {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	return n.l.leader == n.name && n.l.nodes[n.name].up
}

func (n nodeLog) HasQuorum() bool {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	up := 0
	for _, node := range n.l.nodes {
		if node.up {
			up++
		}
	}
	return up*2 > len(n.l.nodes)
}

func (n nodeLog) Barrier(ctx context.Context) error {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	n.l.catchUp(n.l.nodes[n.name])
	return ctx.Err()
}

// fakePeers routes calls to Members by name through JSON, like the RPC.
type fakePeers struct {
	from string
	t    *peerTable
}

type peerTable struct {
	mu      sync.Mutex
	members map[string]*Member
	down    map[string]bool
}

func newFakePeers() *fakePeers {
	return &fakePeers{t: &peerTable{members: map[string]*Member{}, down: map[string]bool{}}}
}

func (p *fakePeers) set(name string, m *Member, down bool) {
	p.t.mu.Lock()
	defer p.t.mu.Unlock()
	p.t.members[name] = m
	p.t.down[name] = down
}

func (p *fakePeers) Call(ctx context.Context, node, method string, req, resp any) error {
	p.t.mu.Lock()
	m, down := p.t.members[node], p.t.down[node]
	p.t.mu.Unlock()
	if m == nil || down {
		return fmt.Errorf("dial %s: connection refused", node)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	h := m.Handlers()[method]
	if h == nil {
		return fmt.Errorf("no method %s", method)
	}
	out, err := h(ctx, p.from, b)
	if err != nil {
		return fmt.Errorf("remote %s: %s", node, err.Error())
	}
	ob, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return json.Unmarshal(ob, resp)
}

// view returns p calling from node from.
func (p *fakePeers) view(from string) *fakePeers { return &fakePeers{from: from, t: p.t} }

// fakeHW is a shelf with FRUs that follow the activation policy, counting
// every command.
type fakeHW struct {
	mu     sync.Mutex
	state  map[string]hpi.MState
	policy map[string]Policy
	blue   map[string]bool
	calls  map[string]int
	noPol  bool
}

func newFakeHW() *fakeHW {
	return &fakeHW{state: map[string]hpi.MState{}, policy: map[string]Policy{}, blue: map[string]bool{}, calls: map[string]int{}}
}

func (h *fakeHW) set(f FRU, m hpi.MState, p Policy) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state[f.Key()], h.policy[f.Key()] = m, p
}

func (h *fakeHW) get(f FRU) (hpi.MState, Policy, int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state[f.Key()], h.policy[f.Key()], h.calls["activate"], h.calls["deactivate"]
}

func (h *fakeHW) SetActivationLock(_ context.Context, f FRU, locked bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls["lock"]++
	if h.noPol {
		return fmt.Errorf("set activation policy: %w", hpi.ErrCapability)
	}
	p := h.policy[f.Key()]
	p.Locked = locked
	h.policy[f.Key()] = p
	return nil
}

func (h *fakeHW) SetDeactivationLock(_ context.Context, f FRU, locked bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls["dlock"]++
	if h.noPol {
		return fmt.Errorf("set activation policy: %w", hpi.ErrCapability)
	}
	p := h.policy[f.Key()]
	p.DeactivationLocked = locked
	h.policy[f.Key()] = p
	return nil
}

func (h *fakeHW) ActivationPolicy(_ context.Context, f FRU) (Policy, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.policy[f.Key()], nil
}

func (h *fakeHW) Activate(_ context.Context, f FRU) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls["activate"]++
	if h.policy[f.Key()].Locked {
		return errors.New("FRU is locked")
	}
	h.state[f.Key()] = hpi.M4
	return nil
}

func (h *fakeHW) Deactivate(_ context.Context, f FRU) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls["deactivate"]++
	if h.policy[f.Key()].DeactivationLocked {
		return errors.New("FRU is deactivation-locked")
	}
	h.state[f.Key()] = hpi.M1
	p := h.policy[f.Key()]
	p.Locked = true
	h.policy[f.Key()] = p
	return nil
}

func (h *fakeHW) MState(_ context.Context, f FRU) (hpi.MState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state[f.Key()], nil
}

func (h *fakeHW) SetBlueLED(_ context.Context, f FRU, on bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.blue[f.Key()] = on
	return nil
}

// crasher kills a coordinator at its n-th side effect (proposal, member
// call, hardware command or read): before the operation, or after it
// happened but before its result is seen.
type crasher struct {
	mu     sync.Mutex
	n      int // crash at this operation (1-based); 0: never
	after  bool
	count  int
	cancel context.CancelFunc
	hit    bool
}

var errCrashed = errors.New("crashed")

// op runs do unless this is the crash point.
func (c *crasher) op(do func() error) error {
	c.mu.Lock()
	if c.hit {
		c.mu.Unlock()
		return errCrashed
	}
	c.count++
	crash := c.n != 0 && c.count == c.n
	if crash {
		c.hit = true
	}
	c.mu.Unlock()
	if !crash {
		return do()
	}
	if c.after {
		_ = do()
	}
	c.cancel()
	return errCrashed
}

func (c *crasher) crashed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hit
}

type crashLog struct {
	Log
	c *crasher
}

func (l crashLog) Propose(ctx context.Context, kind string, p []byte) (idx uint64, res any, err error) {
	err = l.c.op(func() error {
		var e error
		idx, res, e = l.Log.Propose(ctx, kind, p)
		return e
	})
	return idx, res, err
}

type crashPeers struct {
	Peers
	c *crasher
}

func (p crashPeers) Call(ctx context.Context, node, method string, req, resp any) error {
	return p.c.op(func() error { return p.Peers.Call(ctx, node, method, req, resp) })
}

type crashHW struct {
	h *fakeHW
	c *crasher
}

func (w crashHW) SetActivationLock(ctx context.Context, f FRU, l bool) error {
	return w.c.op(func() error { return w.h.SetActivationLock(ctx, f, l) })
}
func (w crashHW) SetDeactivationLock(ctx context.Context, f FRU, l bool) error {
	return w.c.op(func() error { return w.h.SetDeactivationLock(ctx, f, l) })
}
func (w crashHW) ActivationPolicy(ctx context.Context, f FRU) (p Policy, err error) {
	err = w.c.op(func() error { var e error; p, e = w.h.ActivationPolicy(ctx, f); return e })
	return p, err
}
func (w crashHW) Activate(ctx context.Context, f FRU) error {
	return w.c.op(func() error { return w.h.Activate(ctx, f) })
}
func (w crashHW) Deactivate(ctx context.Context, f FRU) error {
	return w.c.op(func() error { return w.h.Deactivate(ctx, f) })
}
func (w crashHW) MState(ctx context.Context, f FRU) (m hpi.MState, err error) {
	err = w.c.op(func() error { var e error; m, e = w.h.MState(ctx, f); return e })
	return m, err
}
func (w crashHW) SetBlueLED(ctx context.Context, f FRU, on bool) error {
	return w.c.op(func() error { return w.h.SetBlueLED(ctx, f, on) })
}

// countHook counts how often each step key was applied or revoked.
type countHook struct {
	mu     sync.Mutex
	name   string
	counts map[string]int
	fail   error
}

func newCountHook(name string) *countHook { return &countHook{name: name, counts: map[string]int{}} }

func (h *countHook) Name() string { return h.name }
func (h *countHook) Apply(_ context.Context, s Step) (Digest, error) {
	return h.do("apply", s)
}
func (h *countHook) Revoke(_ context.Context, s Step) (Digest, error) {
	return h.do("revoke", s)
}
func (h *countHook) do(op string, s Step) (Digest, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail != nil {
		return "", h.fail
	}
	h.counts[op+" "+s.Workflow]++
	return DigestOf([]byte(op), []byte(s.FRU.Key())), nil
}

func (h *countHook) count(op, wf string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[op+" "+wf]
}

// fakeWiper wipes by counting; fail makes it fail.
type fakeWiper struct {
	mu    sync.Mutex
	count int
	fail  error
}

func (w *fakeWiper) Wipe(_ context.Context, f FRU) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return nil, w.fail
	}
	w.count++
	return []byte(fmt.Sprintf(`{"fru":%q,"method":"crypto-erase","verified":true}`, f.Key())), nil
}

func (w *fakeWiper) n() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testLogger writes to the test's output with -v, else nowhere.
func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
