package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"hpiagent/internal/loopback"
	"hpiagent/internal/pki"
)

// testCA is the cluster CA of internal/pki, issuing peer certificates.
type testCA struct {
	ca   *pki.CA
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	ca, err := pki.NewCA("test-cluster-ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{ca: ca, pool: ca.Pool()}
}

func (ca *testCA) issueKind(t testing.TB, name string, kind pki.Kind) tls.Certificate {
	t.Helper()
	c, err := ca.ca.Issue(pki.IssueRequest{Name: name, Kind: kind, Validity: 12 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return c.TLSCertificate()
}

func (ca *testCA) issue(t testing.TB, name string) tls.Certificate {
	return ca.issueKind(t, name, pki.KindPeer)
}

func (ca *testCA) serverTLS(c tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c}, ClientCAs: ca.pool, MinVersion: tls.VersionTLS13}
}

func (ca *testCA) clientTLS(c tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c}, RootCAs: ca.pool, MinVersion: tls.VersionTLS13}
}

func testNode(t testing.TB, name string) Node {
	h := loopback.Host()
	p := loopback.Ports(t, h, 3)
	return Node{
		Name:       name,
		GossipAddr: net.JoinHostPort(h, strconv.Itoa(p[0])),
		RaftAddr:   net.JoinHostPort(h, strconv.Itoa(p[1])),
		RPCAddr:    net.JoinHostPort(h, strconv.Itoa(p[2])),
	}
}

// testNet is a set of nodes in one test process.
type testNet struct {
	t      *testing.T
	ca     *testCA
	faults *Faults
	nodes  []Node
	keys   [][]byte
	dirs   map[string]string
	certs  map[string]tls.Certificate

	mu   sync.Mutex
	live map[string]*testMember
}

type testMember struct {
	c      *Cluster
	fsm    *logFSM
	events *eventLog
}

func newTestNet(t *testing.T, names ...string) *testNet {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	n := &testNet{
		t: t, ca: newTestCA(t), faults: NewFaults(), keys: [][]byte{key},
		dirs: map[string]string{}, certs: map[string]tls.Certificate{}, live: map[string]*testMember{},
	}
	for _, name := range names {
		n.nodes = append(n.nodes, testNode(t, name))
		n.dirs[name] = t.TempDir()
	}
	t.Cleanup(n.stopAll)
	return n
}

func (n *testNet) cert(name string) tls.Certificate {
	if c, ok := n.certs[name]; ok {
		return c
	}
	c := n.ca.issue(n.t, name)
	n.certs[name] = c
	return c
}

func testLogger(t testing.TB, name string) *slog.Logger {
	if os.Getenv("CLUSTER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("t", name)
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (n *testNet) config(name string) Config {
	cfg := DefaultConfig()
	cfg.NodeName = name
	cfg.Nodes = append([]Node(nil), n.nodes...)
	cfg.GossipKeys = n.keys
	cfg.ServerTLS = n.ca.serverTLS(n.cert(name))
	cfg.ClientTLS = n.ca.clientTLS(n.cert(name))
	cfg.DataDir = n.dirs[name]
	cfg.Faults = n.faults
	cfg.Logger = testLogger(n.t, name)
	return cfg
}

// start starts node name with its default config, changed by mods.
func (n *testNet) start(name string, mods ...func(*Config)) *testMember {
	n.t.Helper()
	cfg := n.config(name)
	for _, m := range mods {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		n.t.Fatalf("New(%s): %v", name, err)
	}
	m := &testMember{c: c, fsm: &logFSM{}}
	if err := c.RegisterFSM("log", m.fsm); err != nil {
		n.t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		n.t.Fatalf("Start(%s): %v", name, err)
	}
	m.events = collectEvents(c)
	n.mu.Lock()
	n.live[name] = m
	n.mu.Unlock()
	return m
}

func (n *testNet) startAll() {
	for _, node := range n.nodes {
		n.start(node.Name)
	}
}

func (n *testNet) member(name string) *testMember {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.live[name]
}

func (n *testNet) members() map[string]*testMember {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]*testMember{}
	for k, v := range n.live {
		out[k] = v
	}
	return out
}

func (n *testNet) kill(name string) {
	n.mu.Lock()
	m := n.live[name]
	delete(n.live, name)
	n.mu.Unlock()
	if m != nil {
		m.c.Kill()
	}
}

func (n *testNet) stopAll() {
	for name := range n.members() {
		n.kill(name)
	}
}

// leader waits until exactly one live node leads and every live node in
// among agrees; it returns the leader's name.
func (n *testNet) waitLeader(timeout time.Duration, among ...string) string {
	n.t.Helper()
	var leader string
	waitFor(n.t, timeout, func() bool {
		ms := n.members()
		if len(among) == 0 {
			for k := range ms {
				among = append(among, k)
			}
		}
		leader = ""
		for _, name := range among {
			m := ms[name]
			if m == nil {
				return false
			}
			if m.c.IsLeader() {
				if leader != "" {
					return false
				}
				leader = name
			}
		}
		if leader == "" || !ms[leader].c.HasQuorum() {
			return false
		}
		for _, name := range among {
			if ms[name].c.Status().Leader != leader {
				return false
			}
		}
		return true
	}, "a single leader with quorum")
	return leader
}

// waitVerified waits until node sees every name in others alive and
// verified.
func (n *testNet) waitVerified(timeout time.Duration, node string, others ...string) {
	n.t.Helper()
	waitFor(n.t, timeout, func() bool {
		m := n.member(node)
		if m == nil {
			return false
		}
		st := m.c.Status()
		for _, o := range others {
			ok := false
			for _, ms := range st.Members {
				if ms.Name == o && ms.State == StateAlive && ms.Verified {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		return true
	}, fmt.Sprintf("%s sees %v alive and verified", node, others))
}

func waitFor(t testing.TB, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func names(n int) []string {
	all := []string{"a", "b", "c", "d", "e", "f", "g"}
	return all[:n]
}

// logFSM records the entries it applies.
type logFSM struct {
	mu      sync.Mutex
	entries []logEntry
}

type logEntry struct {
	Index   uint64 `json:"index"`
	Payload string `json:"payload"`
}

func (f *logFSM) Apply(index uint64, payload []byte) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, logEntry{index, string(payload)})
	return len(f.entries)
}

func (f *logFSM) Snapshot() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return json.Marshal(f.entries)
}

func (f *logFSM) Restore(b []byte) error {
	var e []logEntry
	if b != nil {
		if err := json.Unmarshal(b, &e); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.entries = e
	f.mu.Unlock()
	return nil
}

func (f *logFSM) payloads() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.entries))
	for i, e := range f.entries {
		out[i] = e.Payload
	}
	return out
}

// eventLog collects a node's member events.
type eventLog struct {
	mu  sync.Mutex
	evs []MemberEvent
}

func collectEvents(c *Cluster) *eventLog {
	l := &eventLog{}
	go func() {
		for {
			select {
			case e := <-c.MemberEvents():
				l.mu.Lock()
				l.evs = append(l.evs, e)
				l.mu.Unlock()
			case <-c.ctx.Done():
				return
			}
		}
	}()
	return l
}

func (l *eventLog) all() []MemberEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]MemberEvent(nil), l.evs...)
}

func (l *eventLog) count(kind EventKind, node string) int {
	n := 0
	for _, e := range l.all() {
		if e.Kind == kind && (node == "" || e.Node == node) {
			n++
		}
	}
	return n
}

func (m *testMember) propose(t testing.TB, payload string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	idx, _, err := m.c.Propose(ctx, "log", []byte(payload))
	if err != nil {
		t.Fatalf("Propose(%q): %v", payload, err)
	}
	return idx
}
