package cluster

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"hpiagent/internal/pki"
)

func TestEntryRoundTrip(t *testing.T) {
	cases := []struct {
		kind    string
		payload []byte
		wantErr bool
	}{
		{"fence", []byte(`{"node":"b"}`), false},
		{"k", nil, false},
		{strings.Repeat("k", maxKindLen), []byte{0, 1, 2}, false},
		{"", []byte("x"), true},
		{strings.Repeat("k", maxKindLen+1), nil, true},
	}
	for _, tc := range cases {
		b, err := encodeEntry(tc.kind, tc.payload)
		if (err != nil) != tc.wantErr {
			t.Fatalf("encodeEntry(%q): err %v, wantErr %v", tc.kind, err, tc.wantErr)
		}
		if err != nil {
			continue
		}
		k, p, err := decodeEntry(b)
		if err != nil || k != tc.kind || !bytes.Equal(p, tc.payload) {
			t.Fatalf("decodeEntry(encodeEntry(%q)) = %q, %q, %v", tc.kind, k, p, err)
		}
	}
}

func TestDecodeEntryRefusesBadInput(t *testing.T) {
	cases := map[string][]byte{
		"empty":         nil,
		"header only":   {entryVersion},
		"wrong version": {2, 1, 'k'},
		"zero kind":     {entryVersion, 0, 'x'},
		"kind too long": append([]byte{entryVersion, maxKindLen + 1}, bytes.Repeat([]byte("k"), maxKindLen+1)...),
		"truncated":     {entryVersion, 5, 'a', 'b'},
	}
	for name, b := range cases {
		if _, _, err := decodeEntry(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	good, _ := encodeEntry("fence", []byte("payload"))
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{entryVersion, 0})
	f.Add([]byte{entryVersion, 200, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, payload, err := decodeEntry(b)
		if err != nil {
			return
		}
		re, err := encodeEntry(kind, payload)
		if err != nil {
			t.Fatalf("decoded kind %q does not encode: %v", kind, err)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("round trip changed %x to %x", b, re)
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	good, _ := encodeSnapshot(map[string][]byte{"fence": []byte("x"), "hotswap": nil})
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":2,"fsms":{}}`))
	f.Add([]byte(`{"version":1,"fsms":{"":"AA=="}}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeSnapshot(b)
		if err != nil {
			return
		}
		re, err := encodeSnapshot(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeSnapshot(re)
		if err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v", err)
		}
		if len(m2) != len(m) {
			t.Fatalf("round trip changed %d kinds to %d", len(m), len(m2))
		}
		for k, v := range m {
			if !bytes.Equal(m2[k], v) {
				t.Fatalf("kind %q changed", k)
			}
		}
	})
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

func TestMuxFSMDispatchSnapshotRestore(t *testing.T) {
	m := newMuxFSM()
	fa, fb := &logFSM{}, &logFSM{}
	if err := m.register("a", fa); err != nil {
		t.Fatal(err)
	}
	if err := m.register("b", fb); err != nil {
		t.Fatal(err)
	}
	if err := m.register("a", fb); err == nil {
		t.Fatal("duplicate kind registered")
	}
	apply := func(i uint64, kind, p string) any {
		d, err := encodeEntry(kind, []byte(p))
		if err != nil {
			t.Fatal(err)
		}
		return m.Apply(&raft.Log{Index: i, Type: raft.LogCommand, Data: d})
	}
	apply(1, "a", "a1")
	apply(2, "b", "b1")
	apply(3, "a", "a2")
	if res := apply(4, "unknown", "u"); !errors.Is(res.(error), ErrUnknownKind) {
		t.Fatalf("unknown kind result %v", res)
	}
	if res := m.Apply(&raft.Log{Index: 5, Type: raft.LogCommand, Data: []byte{9}}); res == nil {
		t.Fatal("garbage entry applied without error")
	}
	if !slices.Equal(fa.payloads(), []string{"a1", "a2"}) || !slices.Equal(fb.payloads(), []string{"b1"}) {
		t.Fatalf("dispatch: a %v b %v", fa.payloads(), fb.payloads())
	}
	// A snapshot taken on a node with a, b and an orphan kind restores on
	// a node with only a, which keeps b's state for its own snapshots.
	m.orphans["c"] = []byte("c-state")
	snap, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	m2 := newMuxFSM()
	fa2 := &logFSM{}
	m2.register("a", fa2)
	if err := m2.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fa2.payloads(), []string{"a1", "a2"}) {
		t.Fatalf("restored a: %v", fa2.payloads())
	}
	if len(m2.orphans) != 2 || m2.orphans["c"] == nil || m2.orphans["b"] == nil {
		t.Fatalf("orphans lost: %v", m2.orphans)
	}
	if err := m2.Restore(io.NopCloser(strings.NewReader("garbage"))); err == nil {
		t.Fatal("garbage snapshot restored")
	}
	if !slices.Equal(fa2.payloads(), []string{"a1", "a2"}) {
		t.Fatal("a failed restore changed the state")
	}
}

func TestPeerNameOfCertificates(t *testing.T) {
	ca := newTestCA(t)
	leaf := func(c tls.Certificate) *x509.Certificate { return c.Leaf }
	foreign := &x509.Certificate{Subject: pkix.Name{CommonName: "blade-4"}}
	cases := []struct {
		name string
		cert *x509.Certificate
		want string
		err  bool
	}{
		{"peer certificate", leaf(ca.issue(t, "blade-3")), "blade-3", false},
		{"client certificate with a node's name", leaf(ca.issueKind(t, "blade-3", pki.KindClient)), "", true},
		{"server certificate with a node's name", leaf(ca.issueKind(t, "blade-3", pki.KindServer)), "", true},
		{"common name of another CA", foreign, "blade-4", false},
		{"common name posing as a URI", &x509.Certificate{Subject: pkix.Name{CommonName: "hpiagent://peer/x"}}, "", true},
		{"nothing", &x509.Certificate{}, "", true},
	}
	policy := newTLSPolicy(&Config{ServerTLS: &tls.Config{}, ClientTLS: &tls.Config{}, Identity: pki.Identity})
	for _, tc := range cases {
		got, err := policy.identity(tc.cert)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q, err %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	ca := newTestCA(t)
	cert := ca.issue(t, "a")
	base := func() Config {
		c := DefaultConfig()
		c.NodeName = "a"
		c.Nodes = []Node{
			{Name: "a", GossipAddr: "127.0.0.1:7001", RaftAddr: "127.0.0.1:7002", RPCAddr: "127.0.0.1:7003"},
			{Name: "b", GossipAddr: "127.0.0.2:7001", RaftAddr: "127.0.0.2:7002", RPCAddr: "127.0.0.2:7003"},
		}
		c.GossipKeys = [][]byte{bytes.Repeat([]byte{1}, 32)}
		c.ServerTLS = ca.serverTLS(cert)
		c.ClientTLS = ca.clientTLS(cert)
		c.DataDir = t.TempDir()
		return c
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; "" = valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no name", func(c *Config) { c.NodeName = "" }, "NodeName"},
		{"not listed", func(c *Config) { c.NodeName = "z" }, "not in Nodes"},
		{"duplicate", func(c *Config) { c.Nodes[1].Name = "a" }, "twice"},
		{"shared address", func(c *Config) { c.Nodes[1].RPCAddr = "127.0.0.1:7003" }, "already used"},
		{"port 0", func(c *Config) { c.Nodes[1].RaftAddr = "127.0.0.2:0" }, "port 0"},
		{"host name", func(c *Config) { c.Nodes[1].GossipAddr = "b.example:7001" }, "IP address"},
		{"voter without raft", func(c *Config) { c.Nodes[1].RaftAddr = "" }, "RaftAddr"},
		{"no keys", func(c *Config) { c.GossipKeys = nil }, "plaintext"},
		{"bad key", func(c *Config) { c.GossipKeys = [][]byte{{1, 2, 3}} }, "GossipKeys[0]"},
		{"no client CAs", func(c *Config) { c.ServerTLS = &tls.Config{Certificates: []tls.Certificate{cert}} }, "ClientCAs"},
		{"no server cert", func(c *Config) { c.ServerTLS = &tls.Config{ClientCAs: ca.pool} }, "ServerTLS"},
		{"no roots", func(c *Config) { c.ClientTLS = &tls.Config{Certificates: []tls.Certificate{cert}} }, "RootCAs"},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "DataDir"},
		{"probe timeout", func(c *Config) { c.ProbeTimeout = c.ProbeInterval }, "ProbeTimeout"},
		{"lease", func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }, "LeaderLeaseTimeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			_, err := New(c)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	// The key never appears in an error.
	c := base()
	c.GossipKeys = [][]byte{[]byte("secret-key-x")}
	if _, err := New(c); err == nil || strings.Contains(err.Error(), "secret-key") {
		t.Fatalf("key in error: %v", err)
	}
}

func FuzzPeerName(f *testing.F) {
	for _, s := range []string{"hpiagent://peer/a", "hpiagent://client/a", "blade-3", "", "hpiagent://peer/", "hpiagent://peer/a/b", "x://y/z", "hpiagent://peer/%2e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		name, err := PeerName(id)
		if err != nil {
			return
		}
		if name == "" || strings.Contains(name, "://") {
			t.Fatalf("PeerName(%q) = %q", id, name)
		}
		if strings.Contains(id, "://") && (!strings.HasSuffix(id, "/"+name) || !strings.EqualFold(id[:len(id)-len(name)], "hpiagent://peer/")) {
			t.Fatalf("PeerName(%q) = %q: not the peer identity of that name", id, name)
		}
	})
}
