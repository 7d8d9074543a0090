package adapt_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/api"
	"hpiagent/api/adapt"
	"hpiagent/cluster"
	"hpiagent/fencing"
	"hpiagent/hotswap"
	"hpiagent/hpi"
	secureerase "hpiagent/secure-erase"
)

// soloLog is a one-member replicated log: entries apply to the FSM at
// once. leader says whether this member leads.
type soloLog struct {
	mu     sync.Mutex
	apply  func(uint64, []byte) any
	idx    uint64
	leader bool
}

func (l *soloLog) Propose(_ context.Context, _ string, payload []byte) (uint64, any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.idx++
	return l.idx, l.apply(l.idx, payload), nil
}
func (l *soloLog) IsLeader() bool                { l.mu.Lock(); defer l.mu.Unlock(); return l.leader }
func (l *soloLog) HasQuorum() bool               { return true }
func (l *soloLog) Barrier(context.Context) error { return nil }
func (l *soloLog) setLeader(b bool)              { l.mu.Lock(); l.leader = b; l.mu.Unlock() }

// powerExec is an executor over an in-memory power table.
type powerExec struct {
	mu  sync.Mutex
	off map[string]bool
}

func (p *powerExec) Name() string { return "table" }
func (p *powerExec) Off(_ context.Context, n string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off[n] = true
	return nil
}
func (p *powerExec) On(_ context.Context, n string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off[n] = false
	return nil
}
func (p *powerExec) Status(_ context.Context, n string) (fencing.PowerStatus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.off[n] {
		return fencing.PowerOff, nil
	}
	return fencing.PowerOn, nil
}

func TestFencingAdapter(t *testing.T) {
	t.Parallel()
	m := fencing.NewMachine()
	log := &soloLog{apply: m.Apply, leader: true}
	co, err := fencing.NewCoordinator(fencing.CoordinatorConfig{
		Self: "node-a", Log: log, Machine: m,
		Levels: []fencing.Level{{Name: "table", Executors: []fencing.Executor{&powerExec{off: map[string]bool{}}}}},
		Nodes:  map[string]fencing.NodeConfig{"node-a": {}, "node-b": {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := adapt.Fencing(co, func() (string, string) { return "node-c", "https://10.0.0.3:8443" })
	ctx := context.Background()
	if got := strings.Join(f.Nodes(), ","); got != "node-a,node-b" {
		t.Errorf("nodes %q", got)
	}
	v, err := f.View(ctx, "node-b")
	if err != nil || v.Node != "node-b" || v.Phase != "idle" || v.Power != "on" || v.Fence != nil {
		t.Fatalf("view %+v %v, want idle and on", v, err)
	}
	o, err := f.Fence(ctx, "node-b", api.FenceOff, "hpiagent://client/pcmk", "test")
	if err != nil || o.Op == "" || o.Phase != "fencing" || !o.Accepted || o.Node != "node-b" {
		t.Fatalf("fence %+v %v", o, err)
	}
	v, err = f.View(ctx, "node-b")
	if err != nil || v.Phase != "fencing" || v.Fence == nil || v.Fence.ID != o.Op || v.Fence.Action != "off" || v.Fence.Source != "operator" {
		t.Errorf("view after the request %+v %v", v, err)
	}
	// A second request is folded into the one in flight.
	o2, err := f.Fence(ctx, "node-b", api.FenceReboot, "hpiagent://client/pcmk", "again")
	if err != nil || o2.Op != o.Op {
		t.Errorf("duplicate request %+v %v, want op %s", o2, err, o.Op)
	}
	for _, tt := range []struct {
		name string
		call func() error
		want func(error) bool
	}{
		{"unknown node view", func() error { _, err := f.View(ctx, "node-z"); return err }, func(e error) bool { return errors.Is(e, api.ErrNotFound) }},
		{"unknown node fence", func() error { _, err := f.Fence(ctx, "node-z", api.FenceOff, "x", "r"); return err }, func(e error) bool { return errors.Is(e, api.ErrNotFound) }},
		{"self fence", func() error { _, err := f.Fence(ctx, "node-a", api.FenceOff, "x", "r"); return err }, func(e error) bool { return errors.Is(e, api.ErrInvalidState) }},
	} {
		if err := tt.call(); !tt.want(err) {
			t.Errorf("%s: error %v", tt.name, err)
		}
	}
	log.setLeader(false)
	_, err = f.Unfence(ctx, "node-b", "x", "r")
	var nl *api.NotLeaderError
	if !errors.As(err, &nl) || nl.Leader != "node-c" || nl.LeaderAPI != "https://10.0.0.3:8443" {
		t.Errorf("unfence on a follower: %v, want NotLeaderError naming node-c", err)
	}
}

// noHardware fails every call: the adapter test never runs the workflows.
type noHardware struct{}

var errNoHW = errors.New("no hardware in this test")

func (noHardware) SetActivationLock(context.Context, hotswap.FRU, bool) error   { return errNoHW }
func (noHardware) SetDeactivationLock(context.Context, hotswap.FRU, bool) error { return errNoHW }
func (noHardware) ActivationPolicy(context.Context, hotswap.FRU) (hotswap.Policy, error) {
	return hotswap.Policy{}, errNoHW
}
func (noHardware) Activate(context.Context, hotswap.FRU) error   { return errNoHW }
func (noHardware) Deactivate(context.Context, hotswap.FRU) error { return errNoHW }
func (noHardware) MState(context.Context, hotswap.FRU) (hpi.MState, error) {
	return 0, errNoHW
}
func (noHardware) SetBlueLED(context.Context, hotswap.FRU, bool) error { return errNoHW }

func TestWorkflowsAdapter(t *testing.T) {
	t.Parallel()
	m := hotswap.NewMachine()
	log := &soloLog{apply: m.Apply, leader: true}
	n := 0
	co, err := hotswap.NewCoordinator(hotswap.CoordinatorConfig{
		Node: "node-a", Log: log, Machine: m, Hardware: noHardware{}, Members: func() []string { return []string{"node-a"} },
		NewID: func() string { n++; return fmt.Sprintf("wf%d", n) },
	})
	if err != nil {
		t.Fatal(err)
	}
	bladePath := hpi.EntityPath{{Type: hpi.EntPhysicalSlot, Location: 4}}
	w, err := adapt.Workflows(adapt.WorkflowsConfig{Coordinator: co, State: m, Leader: func() (string, string) { return "node-b", "" },
		FRU: func(e hpi.RPTEntry) (hotswap.FRU, bool) {
			if e.ResourceID != 7 {
				return hotswap.FRU{}, false
			}
			return hotswap.FRU{Entity: e.EntityPath.String(), Shelf: "shelf1", IPMB: 0x88}, true
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	blade := hpi.RPTEntry{ResourceID: 7, EntityPath: bladePath}
	id, err := w.Extract(ctx, blade, "hpiagent://client/ops", "replace")
	if err != nil || id != "wf1" {
		t.Fatalf("extract: %q %v", id, err)
	}
	v, ok := w.Get(id)
	if !ok || v.Kind != "forced" || !v.Active || v.FRU.IPMB != 0x88 || v.FRU.Shelf != "shelf1" || v.Actor != "hpiagent://client/ops" {
		t.Errorf("workflow %+v", v)
	}
	if l := w.List(); len(l) != 1 || l[0].ID != id {
		t.Errorf("list %+v", l)
	}
	// A second extraction of the same FRU is refused with the workflow in
	// flight.
	if id2, err := w.Extract(ctx, blade, "x", "again"); !errors.Is(err, api.ErrInvalidState) || id2 != id {
		t.Errorf("second extract: %q %v, want invalid state with %s", id2, err, id)
	}
	if _, err := w.Extract(ctx, hpi.RPTEntry{ResourceID: 8}, "x", "r"); !errors.Is(err, hpi.ErrCapability) {
		t.Errorf("extract without FRU: %v", err)
	}
	// Override is refused: the wipe has not failed.
	if err := w.Override(ctx, id, "hpiagent://client/admin", "why"); !errors.Is(err, api.ErrInvalidState) {
		t.Errorf("override before a wipe failure: %v", err)
	}
	if err := w.Retry(ctx, "nope", "x"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("retry of an unknown workflow: %v", err)
	}
	if err := w.Abort(ctx, id, "hpiagent://client/ops", "wrong slot"); err != nil {
		t.Errorf("abort: %v", err)
	}
	log.setLeader(false)
	var nl *api.NotLeaderError
	if _, err := w.Extract(ctx, blade, "x", "r"); !errors.As(err, &nl) || nl.Leader != "node-b" {
		t.Errorf("extract on a follower: %v", err)
	}
	if err := w.Retry(ctx, id, "x"); !errors.As(err, &nl) {
		t.Errorf("retry on a follower: %v", err)
	}
}

func TestEraseCertificatesAdapter(t *testing.T) {
	t.Parallel()
	st, err := secureerase.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	c := &secureerase.Certificate{ID: "0123456789abcdef0123456789abcdef", FRU: "{SYSTEM_BOARD,4}", Node: "node-a", Target: "/dev/sdz",
		Started: time.Now(), Completed: time.Now(), Outcome: secureerase.OutcomeSuccess}
	if err := c.Sign(priv); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(c); err != nil {
		t.Fatal(err)
	}
	a := adapt.EraseCertificates(st)
	ids, err := a.CertificateIDs()
	if err != nil || len(ids) != 1 || ids[0] != c.ID {
		t.Fatalf("ids %v %v", ids, err)
	}
	b, err := a.Certificate(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got secureerase.Certificate
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if err := secureerase.Verify(&got, pub); err != nil {
		t.Errorf("served certificate does not verify: %v", err)
	}
	if _, err := a.Certificate("ffffffffffffffffffffffffffffffff"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("unknown certificate: %v", err)
	}
}

func TestClusterView(t *testing.T) {
	t.Parallel()
	st := cluster.Status{Node: "node-a", Leader: "node-b", RaftState: "Follower", Term: 4, LastIndex: 9, CommitIndex: 9, AppliedIndex: 8, HasQuorum: true,
		Members: []cluster.MemberStatus{{Name: "node-a", Addr: "10.0.0.1:1", State: cluster.StateAlive, Verified: true, Voter: true, Self: true},
			{Name: "node-b", Addr: "10.0.0.2:1", State: cluster.StateSuspect, Voter: true}}}
	v := adapt.Cluster(fixedStatus(st)).ClusterStatus()
	if v.Node != "node-a" || v.Leader != "node-b" || v.State != "Follower" || v.Term != 4 || v.AppliedIndex != 8 || !v.Quorum ||
		len(v.Members) != 2 || v.Members[1].State != "suspect" || v.Members[1].Verified || !v.Members[0].Self || v.Members[0].Address != "10.0.0.1:1" {
		t.Errorf("view %+v", v)
	}
}

type fixedStatus cluster.Status

func (f fixedStatus) Status() cluster.Status { return cluster.Status(f) }
