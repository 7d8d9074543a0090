package api_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"hpiagent/api"
	"hpiagent/api/adapt"
	"hpiagent/api/apitest"
	"hpiagent/api/audit"
	"hpiagent/hpi"
)

// clock is an injected clock for rate limiting and audit times.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness is a running API server over real mutual TLS on loopback with a
// domain holding two blades.
type harness struct {
	t      *testing.T
	url    string
	addr   string
	ca     *apitest.CA
	dom    *hpi.Domain
	hw     *apitest.Hardware
	aud    *apitest.Auditor
	srv    *api.Server
	clk    *clock
	cl     *apitest.Cluster
	fen    *apitest.Fencing
	wfs    *apitest.Workflows
	certs  *apitest.EraseCertificates
	blade  hpi.ResourceID
	blade2 hpi.ResourceID
}

// testCertID is the ID of the erase certificate the harness stores.
const testCertID = "0123456789abcdef0123456789abcdef"

func identity(name string) string { return "hpiagent://client/" + name }

// newHarness starts a server; mod may change the config and deps.
func newHarness(t *testing.T, mod func(*api.Config, *api.Deps)) *harness {
	t.Helper()
	return newHarnessLog(t, 256, mod)
}

// newHarnessLog is newHarness with an event log of logSize entries
// (overwriting the oldest when full).
func newHarnessLog(t *testing.T, logSize int, mod func(*api.Config, *api.Deps)) *harness {
	t.Helper()
	ca, err := apitest.NewCA("test cluster CA")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ca.Server()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ca: ca, hw: &apitest.Hardware{Power: hpi.PowerOn}, aud: &apitest.Auditor{},
		clk: &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}}
	h.dom = hpi.NewDomain(hpi.Config{EventLogSize: logSize, EventLogOverflow: hpi.OverflowOverwrite})
	if h.blade, err = apitest.AddBlade(h.dom, 5, 41.5); err != nil {
		t.Fatal(err)
	}
	if h.blade2, err = apitest.AddBlade(h.dom, 6, 38); err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{
		Certificate: &sc, ClientCAs: ca.Pool,
		Roles: map[string][]api.Role{
			identity("viewer"):      {api.RoleViewer},
			identity("operator"):    {api.RoleOperator},
			identity("fencer"):      {api.RoleFencer},
			identity("admin"):       {api.RoleAdmin},
			identity("diagnostics"): {api.RoleDiagnostics},
			"cn-only-client":        {api.RoleViewer},
		},
		RateLimit: 1e6, RateBurst: 1e6, Now: h.clk.now,
	}
	h.cl = &apitest.Cluster{View: api.ClusterView{Node: "node-a", Leader: "node-a", State: "leader", Term: 3, LastIndex: 42,
		CommitIndex: 42, AppliedIndex: 42, Quorum: true, Members: []api.ClusterMemberView{
			{Name: "node-a", Address: "10.0.0.1:7946", State: "alive", Verified: true, Voter: true, Self: true},
			{Name: "node-b", Address: "10.0.0.2:7946", State: "suspect", Verified: true, Voter: true},
		}}}
	h.fen = &apitest.Fencing{Views: map[string]api.FenceNodeView{
		"node-b": {Node: "node-b", Phase: "idle", Power: "on"},
		"node-c": {Node: "node-c", Phase: "fenced", Power: "off", Fence: &api.FenceOpView{ID: "op-0", Action: "off", Source: "member-dead", Done: true}},
	}}
	h.wfs = &apitest.Workflows{WFs: map[string]api.WorkflowView{
		"wf-1": {ID: "wf-1", Kind: "extraction", FRU: api.FRUView{Entity: apitest.BladePath(5).String(), Shelf: "shelf1", IPMB: 0x82},
			Phase: "wiping", Active: true, Attempt: 1, Required: []string{"node-a", "node-b"}, WipeError: "verify failed", StartIndex: 10},
		"wf-2": {ID: "wf-2", Kind: "insertion", FRU: api.FRUView{Entity: apitest.BladePath(6).String(), Shelf: "shelf1", IPMB: 0x84},
			Phase: "done", Outcome: "activated", Required: []string{"node-a"}, StartIndex: 5},
	}}
	h.certs = &apitest.EraseCertificates{Certs: map[string][]byte{
		testCertID: []byte(`{"id":"` + testCertID + `","fru":"{SYSTEM_BOARD,5}","node":"node-a","target":"/dev/sdb","outcome":"success","signature":{"algorithm":"ed25519","key_id":"abcd","value":"AAAA"}}`),
	}}
	deps := api.Deps{Domain: h.dom, Hardware: h.hw, Auditor: h.aud, Cluster: h.cl, Fencing: h.fen, Workflows: h.wfs, EraseCertificates: h.certs,
		AuditAnchors: adapt.AuditAnchors(audit.NewAnchorBook())}
	if mod != nil {
		mod(&cfg, &deps)
	}
	h.srv, err = api.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = l.Addr().String()
	h.url = "https://" + h.addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return h
}

// client returns an HTTP client with a certificate whose URI SAN is
// identity(name) (a name of "" gives a certificate with CN cn only).
func (h *harness) client(name string) *http.Client {
	h.t.Helper()
	uri := ""
	if name != "" {
		uri = identity(name)
	}
	cert, err := h.ca.Client("cn-only-client", uri)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.clientTLS(h.ca.ClientTLS(cert))
}

func (h *harness) clientTLS(tc *tls.Config) *http.Client {
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}, Timeout: 20 * time.Second}
	h.t.Cleanup(c.CloseIdleConnections)
	return c
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) errorCode() string {
	var eb api.ErrorBody
	_ = json.Unmarshal(a.body, &eb)
	return eb.Error.Code
}

func (h *harness) do(c *http.Client, method, path string, body any) answer {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = bytes.NewBufferString(b)
		default:
			j, err := json.Marshal(b)
			if err != nil {
				h.t.Fatal(err)
			}
			rd = bytes.NewReader(j)
		}
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}
