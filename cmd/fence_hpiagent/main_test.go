package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hpiagent/fencing"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
	"hpiagent/shelf/sim"
)

const metadataRNG = "/usr/share/cluster/relaxng/metadata.rng"

// pki is a throw-away CA with a server and two client certificates.
type pki struct {
	dir                   string
	ca                    string
	serverCert            tls.Certificate
	clientCert, clientKey string
	otherCert, otherKey   string // signed by another CA
	caPool                *x509.CertPool
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, path, typ string, der []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		t.Fatal(err)
	}
}

func makeCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	k := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, server bool) ([]byte, *ecdsa.PrivateKey) {
	k := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: []string{"fencer"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, k
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{dir: dir, ca: filepath.Join(dir, "ca.pem")}
	ca, caKey := makeCA(t, "test CA")
	writePEM(t, p.ca, "CERTIFICATE", ca.Raw, 0o644)
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(ca)
	sder, skey := issue(t, ca, caKey, "hpiagent api", true)
	p.serverCert = tls.Certificate{Certificate: [][]byte{sder}, PrivateKey: skey}
	write := func(name string, der []byte, k *ecdsa.PrivateKey) (string, string) {
		c, kf := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
		writePEM(t, c, "CERTIFICATE", der, 0o644)
		kb, _ := x509.MarshalECPrivateKey(k)
		writePEM(t, kf, "EC PRIVATE KEY", kb, 0o600)
		return c, kf
	}
	cder, ckey := issue(t, ca, caKey, "pacemaker-fencer", false)
	p.clientCert, p.clientKey = write("client", cder, ckey)
	other, otherKey := makeCA(t, "other CA")
	oder, okey := issue(t, other, otherKey, "intruder", false)
	p.otherCert, p.otherKey = write("other", oder, okey)
	return p
}

// soloLog is a one-member replicated log: entries apply to the Machine at
// once. The test exercises the agent and the HTTPS contract; the fencing
// package tests the log semantics with several members.
type soloLog struct {
	mu  sync.Mutex
	m   *fencing.Machine
	idx uint64
}

func (l *soloLog) Propose(ctx context.Context, kind string, payload []byte) (uint64, any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.idx++
	return l.idx, l.m.Apply(l.idx, payload), nil
}
func (l *soloLog) IsLeader() bool                { return true }
func (l *soloLog) HasQuorum() bool               { return true }
func (l *soloLog) Barrier(context.Context) error { return nil }

// fenceAPI serves the /v1/fence contract over a real Coordinator; the
// requester is the client certificate's common name.
func fenceAPI(co *fencing.Coordinator) http.Handler {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /v1/fence", func(w http.ResponseWriter, r *http.Request) {
		var out struct {
			Nodes []fencing.NodeView `json:"nodes"`
		}
		for _, n := range co.Nodes() {
			v, _ := co.View(r.Context(), n)
			out.Nodes = append(out.Nodes, v)
		}
		writeJSON(w, 200, out)
	})
	mux.HandleFunc("GET /v1/fence/{node}", func(w http.ResponseWriter, r *http.Request) {
		v, err := co.View(r.Context(), r.PathValue("node"))
		if err != nil {
			writeJSON(w, 404, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, 200, v)
	})
	mux.HandleFunc("POST /v1/fence/{node}", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Action string `json:"action"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
			writeJSON(w, 400, map[string]string{"error": "bad request body"})
			return
		}
		who := r.TLS.PeerCertificates[0].Subject.CommonName
		node := r.PathValue("node")
		var o fencing.Outcome
		var err error
		switch req.Action {
		case "off", "reboot":
			o, err = co.Request(r.Context(), node, fencing.Action(req.Action), fencing.SourceOperator, "fence agent request", who)
		case "on":
			o, err = co.Unfence(r.Context(), node, who, "fence agent request")
		default:
			writeJSON(w, 400, map[string]string{"error": "action must be off, on or reboot"})
			return
		}
		switch {
		case errors.Is(err, fencing.ErrUnknownNode):
			writeJSON(w, 404, map[string]string{"error": err.Error()})
		case err != nil:
			writeJSON(w, 503, map[string]string{"error": err.Error()})
		default:
			writeJSON(w, 202, map[string]string{"op": o.ID, "phase": string(o.Phase)})
		}
	})
	return mux
}

type testEnv struct {
	p     *pki
	srv   *httptest.Server
	shelf *sim.Shelf
	nodes map[string]uint8 // node name -> IPMB address
	host  string
	port  string
}

func startEnv(t *testing.T) *testEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := sim.DefaultConfig()
	cfg.StepDelay = 50 * time.Millisecond
	ss, err := sim.Start(ctx, cfg, "127.0.0.1:0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ss.Close() })
	u := cfg.Users[0]
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: ss.Addr().String(), Username: u.Name, Password: []byte(u.Password), CipherSuites: []int{17}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	env := &testEnv{p: newPKI(t), shelf: ss.Shelf(), nodes: map[string]uint8{}}
	targets := map[string]fencing.FRUTarget{}
	nodes := map[string]fencing.NodeConfig{}
	for _, m := range cfg.IPMCs {
		if m.SiteType == sim.SiteATCABoard && m.Present && m.Activated {
			name := fmt.Sprintf("node%d", len(env.nodes)+1)
			env.nodes[name] = m.Addr
			targets[name] = fencing.FRUTarget{Addr: ipmi.Addr{Slave: m.Addr}, HotSwapSensor: m.HotSwapSensor, HasHotSwapSensor: true}
			nodes[name] = fencing.NodeConfig{}
		}
	}
	pl, _ := fencing.NewPICMG(fencing.PICMGConfig{Conn: sess, Method: fencing.PICMGPowerLevel, Targets: targets})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	co, err := fencing.NewCoordinator(fencing.CoordinatorConfig{Self: "self", Log: &soloLog{m: fencing.NewMachine()}, Machine: nil, Nodes: nodes, Logger: quiet,
		Scan: 20 * time.Millisecond, Levels: []fencing.Level{{Name: "picmg", Executors: []fencing.Executor{pl}, Confirm: fencing.ConfirmConfig{Timeout: 5 * time.Second, Interval: 50 * time.Millisecond}}}})
	if err == nil {
		t.Fatal("coordinator without machine accepted")
	}
	m := fencing.NewMachine()
	co, err = fencing.NewCoordinator(fencing.CoordinatorConfig{Self: "self", Log: &soloLog{m: m}, Machine: m, Nodes: nodes, Logger: quiet,
		Scan: 20 * time.Millisecond, Levels: []fencing.Level{{Name: "picmg", Executors: []fencing.Executor{pl}, Confirm: fencing.ConfirmConfig{Timeout: 5 * time.Second, Interval: 50 * time.Millisecond}}}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = co.Run(ctx) }()
	srv := httptest.NewUnstartedServer(fenceAPI(co))
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{env.p.serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: env.p.caPool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	env.srv = srv
	env.host, env.port, _ = net.SplitHostPort(srv.Listener.Addr().String())
	return env
}

// stdin renders the key=value lines Pacemaker would send.
func (e *testEnv) stdin(action, plug string, extra ...string) string {
	lines := []string{"# sent by the test as pacemaker-fenced would", "action=" + action, "ipaddr=" + e.host, "ipport=" + e.port,
		"ssl_cert=" + e.p.clientCert, "ssl_key=" + e.p.clientKey, "ssl_ca=" + e.p.ca, "nodename=node-under-test", "power_timeout=20", "pcmk_host_check=static-list"}
	if plug != "" {
		lines = append(lines, "port="+plug)
	}
	return strings.Join(append(lines, extra...), "\n") + "\n"
}

func runAgent(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestMetadataValidatesAgainstFenceAgentsSchema(t *testing.T) {
	if testing.Short() {
		t.Skip("needs xmllint and fence-agents' schema (-short)")
	}
	for _, tool := range []string{"xmllint"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (apt-get install libxml2-utils): %v", tool, err)
		}
	}
	if _, err := os.Stat(metadataRNG); err != nil {
		t.Fatalf("%s missing (apt-get install fence-agents): %v", metadataRNG, err)
	}
	for _, how := range [][]string{{"-o", "metadata"}, {"--action=metadata"}, nil} {
		stdin := ""
		if how == nil {
			stdin = "action=metadata\n"
		}
		code, out, _ := runAgent(t, stdin, how...)
		if code != exitOK {
			t.Fatalf("%v: exit %d", how, code)
		}
		f := filepath.Join(t.TempDir(), "meta.xml")
		_ = os.WriteFile(f, []byte(out), 0o600)
		res, err := exec.Command("xmllint", "--noout", "--relaxng", metadataRNG, f).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: metadata does not validate: %v\n%s\n%s", how, err, res, out)
		}
		if strings.Contains(out, `name="password"`) || strings.Contains(out, `name="login"`) || strings.Contains(out, `name="username"`) {
			t.Error("metadata offers login or password parameters")
		}
		for _, want := range []string{`<action name="off" />`, `<action name="validate-all" />`, `name="plug"`, `name="port"`, `name="ssl_ca"`} {
			if !strings.Contains(out, want) {
				t.Errorf("metadata lacks %s", want)
			}
		}
	}
	// The schema check can fail: a broken document is refused.
	f := filepath.Join(t.TempDir(), "bad.xml")
	_ = os.WriteFile(f, []byte(`<resource-agent name="x" shortdesc="y"><longdesc/></resource-agent>`), 0o600)
	if err := exec.Command("xmllint", "--noout", "--relaxng", metadataRNG, f).Run(); err == nil {
		t.Fatal("xmllint accepted an invalid document")
	}
}

func TestValidateAll(t *testing.T) {
	p := newPKI(t)
	worldKey := filepath.Join(p.dir, "world.key")
	b, _ := os.ReadFile(p.clientKey)
	_ = os.WriteFile(worldKey, b, 0o644)
	base := "action=validate-all\nssl_cert=" + p.clientCert + "\nssl_ca=" + p.ca + "\n"
	tests := []struct {
		name  string
		stdin string
		code  int
		want  string
	}{
		{"complete", base + "ssl_key=" + p.clientKey + "\n", exitOK, ""},
		{"no key", base, exitError, "ssl_key is required"},
		{"world-readable key", base + "ssl_key=" + worldKey + "\n", exitError, "group or others"},
		{"insecure refused", base + "ssl_key=" + p.clientKey + "\nssl_insecure=1\n", exitError, "cannot be turned off"},
		{"bad port", base + "ssl_key=" + p.clientKey + "\nipport=99999\n", exitError, "not a TCP port"},
		{"bad timeout", base + "ssl_key=" + p.clientKey + "\npower_timeout=soon\n", exitError, "not a number of seconds"},
	}
	for _, tc := range tests {
		code, _, errOut := runAgent(t, tc.stdin)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d (%q), want %d with %q", tc.name, code, errOut, tc.code, tc.want)
		}
		if strings.Contains(errOut, "PRIVATE KEY") {
			t.Errorf("%s: key material in output", tc.name)
		}
	}
}

func TestArgumentParsing(t *testing.T) {
	tests := []struct {
		args []string
		want map[string]string
		err  bool
	}{
		{[]string{"-o", "off", "-n", "node2"}, map[string]string{"action": "off", "plug": "node2"}, false},
		{[]string{"--action=status", "--plug", "n", "-v"}, map[string]string{"action": "status", "plug": "n", "verbose": "1"}, false},
		{[]string{"-ooff", "--port=n3", "-a", "10.0.0.1", "-u", "9443"}, map[string]string{"action": "off", "plug": "n3", "ip": "10.0.0.1", "ipport": "9443"}, false},
		{[]string{"-o", "status", "-l", "admin", "-p", "secret-pw", "-n", "x"}, map[string]string{"action": "status", "plug": "x", "password": ""}, false},
		{[]string{"--bogus"}, nil, true},
		{[]string{"-o"}, nil, true},
		{[]string{"--verbose=1"}, nil, true},
	}
	for _, tc := range tests {
		o, err := parseArgs(tc.args)
		if (err != nil) != tc.err {
			t.Errorf("%v: err %v", tc.args, err)
			continue
		}
		for k, v := range tc.want {
			if o.get(k) != v {
				t.Errorf("%v: %s=%q, want %q", tc.args, k, o.get(k), v)
			}
		}
	}
	o, _ := parseStdin(strings.NewReader("option=off\nport=\"n 1\"\nverbose=yes\nunknown_thing=1\nnodename=x\npasswd=secret-pw\n\n# c\n"))
	if o.get("action") != "off" || o.get("plug") != "n 1" || !o.flag("verbose") || len(o.warnings) != 2 || o.get("password") != "" {
		t.Fatalf("stdin parse: %+v", o)
	}
}

func FuzzParseStdin(f *testing.F) {
	f.Add("action=off\nport=node1\n")
	f.Add("option=\"reboot\"\nverbose=maybe\n# x\n=\n")
	f.Add("ssl_insecure=1\nplug=" + strings.Repeat("a", 100) + "\n")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parseStdin(strings.NewReader(s))
		if err != nil {
			return
		}
		for k := range o.values {
			if _, ok := lookupParam(k); !ok {
				t.Fatalf("unknown key %q kept", k)
			}
		}
	})
}

// TestPowerActionsOverMutualTLS drives the agent as Pacemaker does (stdin)
// against an HTTPS server with mutual TLS 1.3 that serves the fence
// contract from a real Coordinator fencing blades of the embedded shelf.
func TestPowerActionsOverMutualTLS(t *testing.T) {
	e := startEnv(t)
	addr := e.nodes["node1"]
	steps := []struct {
		name   string
		action string
		plug   string
		code   int
		out    string
		check  func() error
	}{
		{"monitor", "monitor", "", exitOK, "", nil},
		{"list", "list", "", exitOK, "node1,node1\nnode2,node2\n", nil},
		{"status on", "status", "node1", exitOK, "Status: ON", nil},
		{"off", "off", "node1", exitOK, "Success: Powered OFF", func() error {
			if l, _ := e.shelf.PowerLevel(addr); l != 0 {
				return fmt.Errorf("blade power level %d", l)
			}
			return nil
		}},
		{"status off", "status", "node1", exitOff, "Status: OFF", nil},
		{"off again", "off", "node1", exitOK, "Already OFF", nil},
		{"list-status", "list-status", "", exitOK, "node1,node1,OFF\nnode2,node2,ON\n", nil},
		{"on", "on", "node1", exitOK, "Success: Powered ON", nil},
		{"reboot", "reboot", "node2", exitOK, "Success: Rebooted", nil},
		{"unknown node", "off", "node9", exitError, "", nil},
		{"no plug", "off", "", exitError, "", nil},
	}
	for _, s := range steps {
		code, out, errOut := runAgent(t, e.stdin(s.action, s.plug))
		if code != s.code || !strings.Contains(out, s.out) {
			t.Fatalf("%s: exit %d out %q err %q, want %d %q", s.name, code, out, errOut, s.code, s.out)
		}
		if s.check != nil {
			if err := s.check(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
	}
	// A client certificate from another CA is refused by the server.
	stdin := strings.NewReplacer(e.p.clientCert, e.p.otherCert, e.p.clientKey, e.p.otherKey).Replace(e.stdin("status", "node1"))
	if code, _, errOut := runAgent(t, stdin); code != exitError {
		t.Fatalf("foreign client certificate: exit %d (%s)", code, errOut)
	}
}

// TestBinaryLikePacemaker runs the built binary with key=value lines on
// stdin and with command-line options.
func TestBinaryLikePacemaker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary (-short)")
	}
	e := startEnv(t)
	bin := filepath.Join(t.TempDir(), "fence_hpiagent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	exitOf := func(err error) int {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	cmd := exec.Command(bin)
	cmd.Stdin = strings.NewReader(e.stdin("status", "node2"))
	out, err := cmd.Output()
	if exitOf(err) != 0 || !strings.Contains(string(out), "Status: ON") {
		t.Fatalf("stdin status: %v %q", err, out)
	}
	cmd = exec.Command(bin, "-o", "off", "-n", "node2", "-a", e.host, "-u", e.port, "--ssl-cert", e.p.clientCert, "--ssl-key", e.p.clientKey, "--ssl-ca", e.p.ca)
	out, err = cmd.Output()
	if exitOf(err) != 0 || !strings.Contains(string(out), "Powered OFF") {
		t.Fatalf("cli off: %v %q", err, out)
	}
	cmd = exec.Command(bin)
	cmd.Stdin = strings.NewReader(e.stdin("status", "node2"))
	out, err = cmd.Output()
	if exitOf(err) != 2 || !strings.Contains(string(out), "Status: OFF") {
		t.Fatalf("stdin status off: exit %d %q", exitOf(err), out)
	}
	out, err = exec.Command(bin, "-o", "metadata").Output()
	if exitOf(err) != 0 || !strings.Contains(string(out), "<resource-agent name=\"fence_hpiagent\"") {
		t.Fatalf("metadata: %v", err)
	}
	if code := exitOf(exec.Command(bin, "-o", "dance").Run()); code != 1 {
		t.Fatalf("unknown action exit %d", code)
	}
}

// TestFollowsLeader: Pacemaker may point the agent at any member's API;
// a member that is not the cluster leader answers "not_leader" with the
// leader's endpoint, and the agent repeats the request there over mutual
// TLS (the leader authenticates the requester itself). Only an https
// endpoint is followed, and only once.
func TestFollowsLeader(t *testing.T) {
	e := startEnv(t)
	follower := func(leaderAPI string) (*httptest.Server, *atomic.Int64) {
		var hits atomic.Int64
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"error":{"code":"not_leader","message":"this node is not the cluster leader","request_id":"r1","leader":"node-a","leader_api":%q}}`, leaderAPI)
		}))
		srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{e.p.serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: e.p.caPool}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv, &hits
	}
	stdinFor := func(srv *httptest.Server, action, plug string) string {
		host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		return strings.NewReplacer("ipaddr="+e.host+"\n", "ipaddr="+host+"\n", "ipport="+e.port+"\n", "ipport="+port+"\n").Replace(e.stdin(action, plug))
	}

	f, hits := follower(e.srv.URL)
	if code, out, errOut := runAgent(t, stdinFor(f, "off", "node1")); code != exitOK || !strings.Contains(out, "Success: Powered OFF") {
		t.Fatalf("off through a follower: exit %d out %q err %q", code, out, errOut)
	}
	if l, _ := e.shelf.PowerLevel(e.nodes["node1"]); l != 0 {
		t.Fatalf("node1 power level %d after a fence through a follower", l)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the follower was asked %d times, want once (then the leader)", n)
	}
	if code, out, _ := runAgent(t, stdinFor(f, "status", "node1")); code != exitOff || !strings.Contains(out, "Status: OFF") {
		t.Fatalf("status through a follower: exit %d out %q", code, out)
	}

	// A plain-HTTP leader endpoint is never followed.
	plain, plainHits := follower("http://" + e.srv.Listener.Addr().String())
	if code, _, errOut := runAgent(t, stdinFor(plain, "status", "node2")); code != exitError || !strings.Contains(errOut, "not_leader") {
		t.Fatalf("http leader endpoint: exit %d err %q", code, errOut)
	}
	if n := plainHits.Load(); n != 1 {
		t.Errorf("follower with an http leader asked %d times", n)
	}

	// Two followers naming each other: followed once, then an error.
	var second *httptest.Server
	loopA, loopHits := follower("placeholder")
	second, _ = follower(loopA.URL)
	loopA.Config.Handler = second.Config.Handler
	if code, _, errOut := runAgent(t, stdinFor(loopA, "status", "node2")); code != exitError || !strings.Contains(errOut, "not_leader") {
		t.Fatalf("followers naming each other: exit %d err %q", code, errOut)
	}
	_ = loopHits
}
