package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/cluster"
	"hpiagent/fencing"
	"hpiagent/internal/labshelf"
	"hpiagent/internal/loopback"
	"hpiagent/internal/pki"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
	"hpiagent/shelf/sim"
)

// The fencing benchmark (issue 5): time from a blade failure (a cluster
// node killed without a goodbye, as a crash) to the fence confirmed by
// read-back, at 5 and 16 agents in one process on one embedded shelf, and
// the same fence's execution cost with fence_ipmilan on ipmi_sim. Corosync's
// default detection (token 3 s + consensus 3.6 s) is a computed row.

// corosyncDetection is what corosync's defaults imply for detecting a dead
// node: token timeout 3000 ms, then consensus 1.2 × token = 3600 ms before
// the new membership forms. Computed, not measured.
const corosyncDetection = 6.6

// fenceSample is one blade failure, in seconds from the kill.
type fenceSample struct {
	n, live int  // cluster size, members alive just before the kill
	leader  bool // the victim was the raft leader
	// dead: first EventDead for the victim on any survivor; requested:
	// fence-requested applied; started: level-started applied; done:
	// level-result confirming "off" applied (first member to apply each).
	dead, requested, started, done float64
}

// fenceRecorder collects what the members' Machines apply and their
// membership events, over one cluster.
type fenceRecorder struct {
	mu     sync.Mutex
	killed map[string]bool
	dead   map[string]time.Time
	kinds  map[string]map[fencing.Kind]time.Time
	// falseFences are accepted fence requests (or completions) of nodes
	// that were never killed.
	falseFences []string
	deadEvents  map[string]int
}

func newFenceRecorder() *fenceRecorder {
	return &fenceRecorder{killed: map[string]bool{}, dead: map[string]time.Time{}, kinds: map[string]map[fencing.Kind]time.Time{}, deadEvents: map[string]int{}}
}

func (r *fenceRecorder) observe(o fencing.Outcome) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !o.Accepted {
		return
	}
	k := o.Kind
	if k == fencing.KindLevelResult && o.Done {
		k = "done"
	}
	if (o.Kind == fencing.KindFenceRequested || o.Done) && !r.killed[o.Target] {
		r.falseFences = append(r.falseFences, fmt.Sprintf("%s %s (%s)", o.Kind, o.Target, o.Note))
	}
	m := r.kinds[o.Target]
	if m == nil {
		m = map[fencing.Kind]time.Time{}
		r.kinds[o.Target] = m
	}
	if _, ok := m[k]; !ok {
		m[k] = now
	}
}

func (r *fenceRecorder) memberDead(node string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deadEvents[node]++
	if _, ok := r.dead[node]; !ok {
		r.dead[node] = at
	}
}

func (r *fenceRecorder) kill(node string) {
	r.mu.Lock()
	r.killed[node] = true
	r.mu.Unlock()
}

// sample returns the victim's times from t0 once its fence is confirmed.
func (r *fenceRecorder) sample(node string, t0 time.Time) (fenceSample, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.kinds[node]
	done, ok := m["done"]
	if !ok {
		return fenceSample{}, false
	}
	sec := func(at time.Time) float64 {
		if at.IsZero() {
			return math.NaN()
		}
		return at.Sub(t0).Seconds()
	}
	return fenceSample{dead: sec(r.dead[node]), requested: sec(m[fencing.KindFenceRequested]), started: sec(m[fencing.KindLevelStarted]), done: sec(done)}, true
}

func (r *fenceRecorder) falses() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.falseFences)
}

// fenceNet is N agents (cluster + fencing Machine + Coordinator with a
// PICMG power-level executor over its own RMCP+ session) on one embedded
// shelf, each node owning one blade.
type fenceNet struct {
	t      *testing.T
	ca     *pki.CA
	key    []byte
	nodes  []cluster.Node
	blades map[string]uint8
	srv    *sim.Server
	user   sim.User
	faults *cluster.Faults
	rec    *fenceRecorder
	log    *slog.Logger

	mu      sync.Mutex
	members map[string]*fenceMember
}

type fenceMember struct {
	c      *cluster.Cluster
	co     *fencing.Coordinator
	cancel context.CancelFunc
	sess   *rmcpp.Session
	done   chan struct{}
}

// fenceShelfConfig is an ATCA shelf with blades front boards in slots
// 1..blades, enough sessions for one per agent.
func fenceShelfConfig(blades int) sim.Config {
	cfg := sim.DefaultConfig()
	cfg.IPMCs = nil
	cfg.MaxSessions = blades + 4
	cfg.Start = time.Now()
	for b := range blades {
		slot := uint8(b + 1)
		cfg.IPMCs = append(cfg.IPMCs, sim.MCConfig{
			Addr: 0x80 + 2*slot, Name: fmt.Sprintf("Fence Blade %d", slot), SiteType: sim.SiteATCABoard, SiteNumber: slot,
			EntityID: 0xA0, EntityInstance: 0x60, HotSwapSensor: 0xF0, Present: true, Activated: true,
			PowerMultiplier: 5, PowerLevels: []uint8{40, 60, 80}, EarlyPowerLevels: []uint8{30, 40, 50}, PowerDelay: 3, DesiredLevel: 2,
			ControlCapabilities: 0x06, Manufacturer: "Bench Systems", PartNumber: "FB-1", Serial: fmt.Sprintf("FENCE%04d", slot),
		})
	}
	return cfg
}

// fenceLoopbackNode picks a random 127.x.y.z with three free TCP ports, the
// first also free for UDP (memberlist).
func fenceLoopbackNode(t *testing.T, name string) cluster.Node {
	t.Helper()
	g, r, p := loopback.ClusterAddrs(t)
	return cluster.Node{Name: name, GossipAddr: g, RaftAddr: r, RPCAddr: p}
}

func newFenceNet(ctx context.Context, t *testing.T, n int, faults *cluster.Faults) *fenceNet {
	t.Helper()
	ca, err := pki.NewCA("fence-bench-ca", 6*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fenceShelfConfig(n)
	srv, err := sim.Start(ctx, cfg, "127.0.0.1:0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fenceNet{t: t, ca: ca, key: make([]byte, 32), blades: map[string]uint8{}, srv: srv, user: cfg.Users[0],
		faults: faults, rec: newFenceRecorder(), log: slog.New(slog.NewTextHandler(io.Discard, nil)), members: map[string]*fenceMember{}}
	if os.Getenv("HPIAGENT_BENCH_FENCE_LOG") != "" {
		f.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	_, _ = rand.Read(f.key)
	for i := range n {
		name := fmt.Sprintf("node%02d", i+1)
		f.nodes = append(f.nodes, fenceLoopbackNode(t, name))
		f.blades[name] = cfg.IPMCs[i].Addr
	}
	return f
}

func (f *fenceNet) start(ctx context.Context, name string) {
	t := f.t
	t.Helper()
	crt, err := f.ca.Issue(pki.IssueRequest{Name: name, Kind: pki.KindPeer, Validity: 5 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pool := f.ca.Pool()
	cfg := cluster.DefaultConfig()
	cfg.NodeName = name
	cfg.Nodes = f.nodes
	cfg.GossipKeys = [][]byte{f.key}
	cfg.ServerTLS = &tls.Config{Certificates: []tls.Certificate{crt.TLSCertificate()}, ClientCAs: pool, MinVersion: tls.VersionTLS13}
	cfg.ClientTLS = &tls.Config{Certificates: []tls.Certificate{crt.TLSCertificate()}, RootCAs: pool, MinVersion: tls.VersionTLS13}
	cfg.DataDir = t.TempDir()
	cfg.Logger = f.log.With("node", name)
	cfg.Faults = f.faults
	c, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := fencing.NewMachine()
	m.Observe(f.rec.observe)
	if err := c.RegisterFSM(fencing.LogKind, m); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: f.srv.Addr().String(), Username: f.user.Name, Password: []byte(f.user.Password), CipherSuites: []int{17}, Logger: f.log})
	if err != nil {
		t.Fatalf("%s: session to the shelf manager: %v", name, err)
	}
	targets := map[string]fencing.FRUTarget{}
	nodes := map[string]fencing.NodeConfig{}
	for node, addr := range f.blades {
		targets[node] = fencing.FRUTarget{Addr: ipmi.Addr{Slave: addr}}
		nodes[node] = fencing.NodeConfig{}
	}
	e, err := fencing.NewPICMG(fencing.PICMGConfig{Conn: sess, Method: fencing.PICMGPowerLevel, Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	dead := func() []string {
		var out []string
		for _, ms := range c.Status().Members {
			if ms.State == cluster.StateDead {
				out = append(out, ms.Name)
			}
		}
		return out
	}
	// Production timings: the coordinator's and the read-back's defaults.
	co, err := fencing.NewCoordinator(fencing.CoordinatorConfig{Self: name, Log: c, Machine: m, Nodes: nodes, Logger: f.log, DeadMembers: dead,
		Levels: []fencing.Level{{Name: "picmg", Executors: []fencing.Executor{e}}}})
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	mem := &fenceMember{c: c, co: co, cancel: cancel, sess: sess, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = co.Run(mctx) }()
	// The daemon's wiring: membership deaths become fence requests (only
	// the leader's are taken).
	go func() {
		defer wg.Done()
		for {
			select {
			case <-mctx.Done():
				return
			case ev := <-c.MemberEvents():
				if ev.Kind == cluster.EventDead {
					f.rec.memberDead(ev.Node, time.Now())
					_, _ = co.MemberDead(mctx, ev.Node, "memberlist: dead")
				}
			}
		}
	}()
	go func() { wg.Wait(); close(mem.done) }()
	f.mu.Lock()
	f.members[name] = mem
	f.mu.Unlock()
}

// kill crashes node: no goodbye, its coordinator stops with it.
func (f *fenceNet) kill(name string) {
	f.mu.Lock()
	m := f.members[name]
	delete(f.members, name)
	f.mu.Unlock()
	m.cancel()
	_ = m.c.Kill()
	<-m.done
	m.sess.Close()
}

func (f *fenceNet) close() {
	f.faults.Heal()
	f.mu.Lock()
	names := make([]string, 0, len(f.members))
	for n := range f.members {
		names = append(names, n)
	}
	f.mu.Unlock()
	for _, n := range names {
		f.kill(n)
	}
	_ = f.srv.Close()
}

func (f *fenceNet) live() map[string]*fenceMember {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.members)
}

// settled reports the leader when every live member sees every other live
// member alive and verified and agrees on one leader holding quorum.
func (f *fenceNet) settled() (string, bool) {
	live := f.live()
	leader := ""
	for name, m := range live {
		st := m.c.Status()
		if st.Leader == "" || (leader != "" && st.Leader != leader) {
			return "", false
		}
		leader = st.Leader
		alive := 0
		for _, ms := range st.Members {
			if live[ms.Name] != nil && ms.State == cluster.StateAlive && (ms.Verified || ms.Name == name) {
				alive++
			}
		}
		if alive != len(live) {
			return "", false
		}
	}
	if lm := live[leader]; lm == nil || !lm.c.IsLeader() || !lm.c.HasQuorum() {
		return "", false
	}
	return leader, true
}

func (f *fenceNet) waitSettled(ctx context.Context, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if l, ok := f.settled(); ok {
			return l, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("cluster of %d not settled within %v", len(f.live()), timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fenceBatch starts an N-agent cluster, kills victims members one after
// the other (each fence confirmed before the next kill): random non-leaders,
// or the leader itself when leader is set (then a new leader must be
// elected before anything is fenced). It returns the samples and the false
// fences seen, including live members' blades found without power.
func fenceBatch(ctx context.Context, t *testing.T, n, victims int, leader bool) ([]fenceSample, []string) {
	t.Helper()
	f := newFenceNet(ctx, t, n, cluster.NewFaults())
	defer f.close()
	for _, node := range f.nodes {
		f.start(ctx, node.Name)
	}
	var out []fenceSample
	for range victims {
		lead, err := f.waitSettled(ctx, 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// A random moment of the probe cycle, after the membership settled.
		time.Sleep(time.Second + time.Duration(mrand.Int64N(int64(300*time.Millisecond))))
		live := f.live()
		var cands []string
		for name := range live {
			if (name == lead) == leader {
				cands = append(cands, name)
			}
		}
		slices.Sort(cands)
		victim := cands[mrand.IntN(len(cands))]
		f.rec.kill(victim)
		t0 := time.Now()
		f.kill(victim)
		deadline := time.Now().Add(60 * time.Second)
		var s fenceSample
		for {
			var ok bool
			if s, ok = f.rec.sample(victim, t0); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("N=%d: %s not fenced within 60 s of its kill", n, victim)
			}
			time.Sleep(5 * time.Millisecond)
		}
		s.n, s.live, s.leader = n, len(live), leader
		if lvl, err := f.srv.Shelf().PowerLevel(f.blades[victim]); err != nil || lvl != 0 {
			t.Fatalf("N=%d: %s fenced but its blade 0x%02x reads power level %d (%v)", n, victim, f.blades[victim], lvl, err)
		}
		out = append(out, s)
		t.Logf("N=%d live=%d leader=%v victim=%s dead %.3f requested %.3f started %.3f done %.3f s", n, len(live), leader, victim, s.dead, s.requested, s.started, s.done)
	}
	falses := f.rec.falses()
	f.rec.mu.Lock()
	killed := maps.Clone(f.rec.killed)
	f.rec.mu.Unlock()
	for name, addr := range f.blades {
		if !killed[name] {
			if lvl, err := f.srv.Shelf().PowerLevel(addr); err != nil || lvl == 0 {
				falses = append(falses, fmt.Sprintf("blade of live %s reads power level %d (%v)", name, lvl, err))
			}
		}
	}
	return out, falses
}

// fenceSoak runs an N-agent cluster for d with gossip packet loss and no
// failure; it returns the false fences and the members' counters.
func fenceSoak(ctx context.Context, t *testing.T, n int, loss float64, d time.Duration) (falses []string, deadEvents int, refuted uint64) {
	t.Helper()
	faults := cluster.NewFaults()
	f := newFenceNet(ctx, t, n, faults)
	defer f.close()
	for _, node := range f.nodes {
		f.start(ctx, node.Name)
	}
	if _, err := f.waitSettled(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	faults.SetLoss(loss)
	select {
	case <-time.After(d):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	faults.SetLoss(0)
	for _, m := range f.live() {
		refuted += m.c.Status().Counters.DeadRefuted
	}
	f.rec.mu.Lock()
	for _, c := range f.rec.deadEvents {
		deadEvents += c
	}
	f.rec.mu.Unlock()
	falses = f.rec.falses()
	for name, addr := range f.blades {
		if lvl, err := f.srv.Shelf().PowerLevel(addr); err != nil || lvl == 0 {
			falses = append(falses, fmt.Sprintf("blade of live %s reads power level %d (%v)", name, lvl, err))
		}
	}
	return falses, deadEvents, refuted
}

// ipmiTarget is where fence_ipmilan reaches a blade: a shelf manager's
// LAN channel and the blade IPMC's IPMB address (bridged).
type ipmiTarget struct {
	host           string
	port           int
	user, password string
	cipher         int
	blade          uint8
}

// fenceIPMILan runs fence_ipmilan -o off against the blade of tg with its
// options on stdin (the password stays out of the process list), and
// returns its wall time.
func fenceIPMILan(ctx context.Context, tg ipmiTarget, powerWait string) (float64, error) {
	opts := []string{"action=off", "ip=" + tg.host, "ipport=" + strconv.Itoa(tg.port), "username=" + tg.user, "password=" + tg.password,
		"lanplus=1", "cipher=" + strconv.Itoa(tg.cipher), fmt.Sprintf("target=0x%02x", tg.blade)}
	if powerWait != "" {
		opts = append(opts, "power_wait="+powerWait)
	}
	cmd := exec.CommandContext(ctx, "fence_ipmilan")
	cmd.Stdin = strings.NewReader(strings.Join(opts, "\n") + "\n")
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0).Seconds()
	if err != nil {
		return 0, fmt.Errorf("fence_ipmilan off of 0x%02x: %w: %s", tg.blade, err, strings.ReplaceAll(string(out), tg.password, "***"))
	}
	return d, nil
}

// fencePeerRows times, on one ipmi_sim ATCA shelf, fence_ipmilan -o off
// (default power_wait and power_wait=0) and hpiagent's chassis level
// (Chassis Control power down, read back by Get Chassis Status over an open
// RMCP+ session, the read-back defaults), interleaved, runs times each.
func fencePeerRows(ctx context.Context, t *testing.T, runs int) map[string][]float64 {
	t.Helper()
	labshelf.RequireTools(t, "fence_ipmilan", "ipmitool")
	sh := labshelf.Start(t)
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	blade := sh.Blades[0]
	node := fmt.Sprintf("blade-0x%02x", blade)
	ch, err := fencing.NewChassis(fencing.ChassisConfig{Conn: sess, Targets: map[string]fencing.FRUTarget{node: {Addr: ipmi.Addr{Slave: blade}}}})
	if err != nil {
		t.Fatal(err)
	}
	level := fencing.Level{Name: "chassis", Executors: []fencing.Executor{ch}}
	tg := ipmiTarget{host: sh.Host, port: sh.Port, user: sh.User, password: sh.Password, cipher: 3, blade: blade}
	on := func() {
		if st, err := level.On(ctx, node); err != nil || st != fencing.PowerOn {
			t.Fatalf("power on 0x%02x: %v %v", blade, st, err)
		}
		// Let the payload start and the FRU settle, as between failures.
		deadline := time.Now().Add(10 * time.Second)
		for {
			if r, err := sh.PayloadRunning(blade); err == nil && r {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("payload of 0x%02x not running after power on", blade)
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Second)
	}
	rows := map[string][]float64{}
	const (
		rowDefault = "fence_ipmilan -o off (default power_wait 2 s)"
		rowWait0   = "fence_ipmilan -o off, power_wait=0"
		rowAgent   = "hpiagent chassis level (open session)"
	)
	for i := range runs {
		for _, r := range []string{rowDefault, rowWait0, rowAgent} {
			on()
			var d float64
			switch r {
			case rowAgent:
				t0 := time.Now()
				st, err := level.Off(ctx, node)
				d = time.Since(t0).Seconds()
				if err != nil || st != fencing.PowerOff {
					t.Fatalf("hpiagent chassis off: %v %v", st, err)
				}
			case rowDefault:
				d, err = fenceIPMILan(ctx, tg, "")
			case rowWait0:
				d, err = fenceIPMILan(ctx, tg, "0")
			}
			if err != nil {
				t.Fatal(err)
			}
			// Every row must leave the blade off.
			if out, err := sh.Ipmitool(ctx, "-b", "0", "-t", fmt.Sprintf("0x%02x", blade), "chassis", "power", "status"); err != nil || !strings.Contains(out, "off") {
				t.Fatalf("%s: ipmitool says %q (%v)", r, out, err)
			}
			rows[r] = append(rows[r], d)
			t.Logf("run %d %s: %.3f s", i+1, r, d)
		}
	}
	return rows
}

// fenceEmbeddedPeerRows times, on the embedded shelf the cluster runs
// against (its blades answering chassis commands here, bridged through the
// shelf manager), fence_ipmilan -o off beside hpiagent's chassis and PICMG
// power-level levels over an open session, interleaved, runs times each.
func fenceEmbeddedPeerRows(ctx context.Context, t *testing.T, runs int) map[string][]float64 {
	t.Helper()
	labshelf.RequireTools(t, "fence_ipmilan")
	cfg := fenceShelfConfig(2)
	for i := range cfg.IPMCs {
		cfg.IPMCs[i].ChassisCommands = true
	}
	srv, err := sim.Start(ctx, cfg, "127.0.0.1:0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	u := cfg.Users[0]
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: srv.Addr().String(), Username: u.Name, Password: []byte(u.Password), CipherSuites: []int{17}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	chBlade, pmBlade := cfg.IPMCs[0].Addr, cfg.IPMCs[1].Addr
	targets := map[string]fencing.FRUTarget{"ch": {Addr: ipmi.Addr{Slave: chBlade}}, "pm": {Addr: ipmi.Addr{Slave: pmBlade}}}
	ch, err := fencing.NewChassis(fencing.ChassisConfig{Conn: sess, Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	pm, err := fencing.NewPICMG(fencing.PICMGConfig{Conn: sess, Method: fencing.PICMGPowerLevel, Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	chLevel := fencing.Level{Name: "chassis", Executors: []fencing.Executor{ch}}
	pmLevel := fencing.Level{Name: "picmg", Executors: []fencing.Executor{pm}}
	host, port, _ := net.SplitHostPort(srv.Addr().String())
	p, _ := strconv.Atoi(port)
	tg := ipmiTarget{host: host, port: p, user: u.Name, password: u.Password, cipher: 17, blade: chBlade}
	on := func(l fencing.Level, node string, addr uint8) {
		if st, err := l.On(ctx, node); err != nil || st != fencing.PowerOn {
			t.Fatalf("power on 0x%02x: %v %v", addr, st, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if st, err := srv.Shelf().State(addr); err == nil && st == sim.M4 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("blade 0x%02x not back in M4", addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	const (
		rowDefault = "fence_ipmilan -o off (default power_wait 2 s)"
		rowWait0   = "fence_ipmilan -o off, power_wait=0"
		rowChassis = "hpiagent chassis level (open session)"
		rowPICMG   = "hpiagent PICMG power-level level (open session)"
	)
	rows := map[string][]float64{}
	for i := range runs {
		for _, r := range []string{rowDefault, rowWait0, rowChassis, rowPICMG} {
			var d float64
			var before int
			switch r {
			case rowPICMG:
				on(pmLevel, "pm", pmBlade)
				before = srv.Shelf().Counters().Packets
				t0 := time.Now()
				st, err := pmLevel.Off(ctx, "pm")
				d = time.Since(t0).Seconds()
				if err != nil || st != fencing.PowerOff {
					t.Fatalf("hpiagent PICMG off: %v %v", st, err)
				}
			case rowChassis:
				on(chLevel, "ch", chBlade)
				before = srv.Shelf().Counters().Packets
				t0 := time.Now()
				st, err := chLevel.Off(ctx, "ch")
				d = time.Since(t0).Seconds()
				if err != nil || st != fencing.PowerOff {
					t.Fatalf("hpiagent chassis off: %v %v", st, err)
				}
			default:
				on(chLevel, "ch", chBlade)
				before = srv.Shelf().Counters().Packets
				pw := ""
				if r == rowWait0 {
					pw = "0"
				}
				if d, err = fenceIPMILan(ctx, tg, pw); err != nil {
					t.Fatal(err)
				}
			}
			addr := chBlade
			if r == rowPICMG {
				addr = pmBlade
			}
			if lvl, err := srv.Shelf().PowerLevel(addr); err != nil || lvl != 0 {
				t.Fatalf("%s: blade 0x%02x power level %d (%v) after the fence", r, addr, lvl, err)
			}
			rows[r] = append(rows[r], d)
			t.Logf("embedded run %d %s: %.3f ms, %d RMCP+ packets to the shelf manager", i+1, r, d*1000, srv.Shelf().Counters().Packets-before)
		}
	}
	return rows
}

// fencePct is the nearest-rank percentile p (0..1) of xs.
func fencePct(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// TestBenchFence: blade failure → confirmed fence at 5 and 16 agents (the
// detection and execution parts), false fences over the run and in a lossy
// soak, and the execution cost of fence_ipmilan on ipmi_sim beside
// hpiagent's. HPIAGENT_BENCH_FENCE_ITER (20) follower and
// HPIAGENT_BENCH_FENCE_LEADER_ITER (10) leader failures per size,
// HPIAGENT_BENCH_FENCE_SIZES ("5,16"), HPIAGENT_BENCH_FENCE_SOAK (60 s),
// HPIAGENT_BENCH_FENCE_PEER_RUNS (15).
func TestBenchFence(t *testing.T) {
	runs(t)
	iter := benchEnvInt("HPIAGENT_BENCH_FENCE_ITER", 20)
	leaderIter := benchEnvInt("HPIAGENT_BENCH_FENCE_LEADER_ITER", 10)
	soak := time.Duration(benchEnvInt("HPIAGENT_BENCH_FENCE_SOAK", 60)) * time.Second
	peerRuns := benchEnvInt("HPIAGENT_BENCH_FENCE_PEER_RUNS", 15)
	sizes := []int{5, 16}
	if s := os.Getenv("HPIAGENT_BENCH_FENCE_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 3 || n > 16 {
				t.Fatalf("HPIAGENT_BENCH_FENCE_SIZES: %q is not a size of 3 to 16", f)
			}
			sizes = append(sizes, n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	start := time.Now()
	loadBefore := loadAvg()

	type key struct {
		n      int
		leader bool
	}
	samples := map[key][]fenceSample{}
	var falses []string
	for _, n := range sizes {
		for _, k := range []struct {
			leader bool
			iter   int
		}{{false, iter}, {true, leaderIter}} {
			// At most a minority of the members may die before quorum is
			// lost: each cluster loses (n-1)/2 members, then a fresh one
			// starts.
			per := (n - 1) / 2
			kk := key{n, k.leader}
			for len(samples[kk]) < k.iter {
				ss, fs := fenceBatch(ctx, t, n, min(per, k.iter-len(samples[kk])), k.leader)
				samples[kk] = append(samples[kk], ss...)
				falses = append(falses, fs...)
			}
		}
	}
	soakFalses, soakDead, soakRefuted := fenceSoak(ctx, t, 5, 0.05, soak)
	peer := fencePeerRows(ctx, t, peerRuns)
	embedded := fenceEmbeddedPeerRows(ctx, t, peerRuns)
	loadAfter := loadAvg()

	var sb strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&sb, "# Fencing: blade failure → confirmed fence\n\nMeasured %s on %s, nproc %d, load average before %s, after %s; took %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, nproc(), loadBefore, loadAfter, time.Since(start).Round(time.Second))
	col := func(ss []fenceSample, f func(fenceSample) float64) []float64 {
		var xs []float64
		for _, s := range ss {
			if v := f(s); !math.IsNaN(v) {
				xs = append(xs, v)
			}
		}
		return xs
	}
	total := func(s fenceSample) float64 { return s.done }
	detect := func(s fenceSample) float64 { return s.dead }
	decide := func(s fenceSample) float64 { return s.started - s.dead }
	execute := func(s fenceSample) float64 { return s.done - s.started }
	fmt.Fprintf(&sb, "| agents | blade that failed | failures | part | median ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|\n")
	for _, n := range sizes {
		for _, leader := range []bool{false, true} {
			ss := samples[key{n, leader}]
			who := "a follower's"
			if leader {
				who = "the raft leader's"
			}
			for _, p := range []struct {
				name string
				f    func(fenceSample) float64
			}{
				{"kill → fence confirmed (end to end)", total},
				{"detection: kill → first member-dead event", detect},
				{"decision: dead event → level started (logged)", decide},
				{"execution: level started → confirmed off (logged)", execute},
			} {
				xs := col(ss, p.f)
				if len(xs) == 0 {
					continue
				}
				fmt.Fprintf(&sb, "| %d | %s | %d | %s | %.0f | %.0f | %.0f |\n", n, who, len(xs), p.name, median(xs)*1000, fencePct(xs, 0.99)*1000, slices.Max(xs)*1000)
			}
		}
	}
	fmt.Fprintf(&sb, "| corosync defaults | any | | detection: token 3000 ms + consensus 3600 ms (computed, not measured) | %.0f | | |\n\n", corosyncDetection*1000)
	for _, n := range sizes {
		for _, leader := range []bool{false, true} {
			xs := col(samples[key{n, leader}], total)
			if len(xs) == 0 {
				continue
			}
			fmt.Fprintf(&sb, "- N=%d, leader killed %v: end to end median %.2f s, p99 %.2f s; corosync's default detection alone (6.6 s) / this median = %.1f; fences later than 3 s: %d of %d.\n",
				n, leader, median(xs), fencePct(xs, 0.99), corosyncDetection/median(xs), countOver(xs, 3), len(xs))
		}
	}
	fmt.Fprintf(&sb, "\nFalse fences (a fence requested or confirmed for a node that was not killed, or a live node's blade found without power) over the failure runs: **%d**", len(falses))
	if len(falses) > 0 {
		fmt.Fprintf(&sb, ": %s", strings.Join(falses, "; "))
	}
	fmt.Fprintf(&sb, ".\n\nNo-failure soak, 5 agents, %.0f%% gossip packet loss (cluster.Faults), %s: false fences **%d**, member-dead events %d, deaths refuted by the mutual-TLS check %d.\n",
		5.0, soak, len(soakFalses), soakDead, soakRefuted)
	if len(soakFalses) > 0 {
		fmt.Fprintf(&sb, "Soak false fences: %s\n", strings.Join(soakFalses, "; "))
	}
	fmt.Fprintf(&sb, "\n## Execution only: fence_ipmilan vs hpiagent on the embedded shelf (the cluster's simulator)\n\n")
	fmt.Fprintf(&sb, "| executor | runs | median ms | p99 ms | max ms | this / hpiagent PICMG (median) |\n|---|---|---|---|---|---|\n")
	pmMed := median(embedded["hpiagent PICMG power-level level (open session)"])
	for _, r := range []string{"fence_ipmilan -o off (default power_wait 2 s)", "fence_ipmilan -o off, power_wait=0", "hpiagent chassis level (open session)", "hpiagent PICMG power-level level (open session)"} {
		xs := embedded[r]
		fmt.Fprintf(&sb, "| %s | %d | %.1f | %.1f | %.1f | %.1f |\n", r, len(xs), median(xs)*1000, fencePct(xs, 0.99)*1000, slices.Max(xs)*1000, median(xs)/pmMed)
	}
	for _, n := range sizes {
		xs := col(samples[key{n, false}], execute)
		fmt.Fprintf(&sb, "| hpiagent in the cluster, N=%d: PICMG level, logged start → logged confirmed result (two raft commits included) | %d | %.1f | %.1f | %.1f | %.1f |\n", n, len(xs), median(xs)*1000, fencePct(xs, 0.99)*1000, slices.Max(xs)*1000, median(xs)/pmMed)
	}
	fmt.Fprintf(&sb, "\n## Execution only: fence_ipmilan vs hpiagent on one ipmi_sim blade\n\n")
	fmt.Fprintf(&sb, "| executor | runs | median ms | p99 ms | max ms | this / hpiagent (median) |\n|---|---|---|---|---|---|\n")
	agentMed := median(peer["hpiagent chassis level (open session)"])
	for _, r := range []string{"fence_ipmilan -o off (default power_wait 2 s)", "fence_ipmilan -o off, power_wait=0", "hpiagent chassis level (open session)"} {
		xs := peer[r]
		fmt.Fprintf(&sb, "| %s | %d | %.0f | %.0f | %.0f | %.2f |\n", r, len(xs), median(xs)*1000, fencePct(xs, 0.99)*1000, slices.Max(xs)*1000, median(xs)/agentMed)
	}
	t.Log("\n" + sb.String())
	if err := os.MkdirAll("out", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("out", "fence.md"), []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(falses)+len(soakFalses) > 0 {
		t.Errorf("false fences: %d in the failure runs, %d in the soak", len(falses), len(soakFalses))
	}
}

func countOver(xs []float64, limit float64) int {
	n := 0
	for _, x := range xs {
		if x > limit {
			n++
		}
	}
	return n
}

func nproc() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return -1
	}
	return n
}
