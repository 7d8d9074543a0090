package apiclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/internal/pki"
)

// tlsPair returns a mutual-TLS server config and client config of one CA.
func tlsPair(t *testing.T) (*tls.Config, *tls.Config) {
	t.Helper()
	ca, err := pki.NewCA("ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue(pki.IssueRequest{Name: "agent", Kind: pki.KindServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ca.Issue(pki.IssueRequest{Name: "ops", Kind: pki.KindClient, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := pki.TLSConfigServer(ca, srv)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := pki.TLSConfigClient(ca, cli)
	if err != nil {
		t.Fatal(err)
	}
	return sc, cc
}

// startServer runs h over mutual TLS on loopback.
func startServer(t *testing.T, h http.Handler) (*httptest.Server, *tls.Config) {
	t.Helper()
	sc, cc := tlsPair(t)
	s := httptest.NewUnstartedServer(h)
	s.TLS = sc
	s.StartTLS()
	t.Cleanup(s.Close)
	return s, cc
}

func noSleep(ctx context.Context, d time.Duration) error { return ctx.Err() }

func newClient(t *testing.T, s *httptest.Server, cc *tls.Config) *Client {
	t.Helper()
	c, err := New(Config{Endpoint: s.URL, TLS: cc, Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", "req-1")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q,"request_id":"req-1"}}`, code, msg)
}

func TestCallDecodesAndReportsErrors(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls429 := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/resources/{SYSTEM_CHASSIS,1}{PHYSICAL_SLOT,3}":
			json.NewEncoder(w).Encode(Resource{ID: 7, EntityPath: "{SYSTEM_CHASSIS,1}{PHYSICAL_SLOT,3}", Tag: "blade"})
		case "/v1/forbidden":
			writeErr(w, 403, "forbidden", "roles [viewer] do not grant \"power\"")
		case "/v1/limited":
			mu.Lock()
			calls429++
			n := calls429
			mu.Unlock()
			if n < 3 {
				w.Header().Set("Retry-After", "1")
				writeErr(w, 429, "rate_limited", "slow down")
				return
			}
			w.Write([]byte(`[]`))
		case "/v1/proxy":
			w.WriteHeader(502)
			w.Write([]byte("<html>bad gateway</html>"))
		default:
			writeErr(w, 404, "not_found", "no such route "+r.URL.EscapedPath())
		}
	})
	s, cc := startServer(t, h)
	c := newClient(t, s, cc)
	ctx := context.Background()

	var r Resource
	if _, err := c.Call(ctx, "GET", ResourcePath("{SYSTEM_CHASSIS,1}{PHYSICAL_SLOT,3}", ""), nil, &r); err != nil || r.ID != 7 {
		t.Fatalf("entity path resource: %+v %v", r, err)
	}
	tests := []struct {
		path, method string
		wantStatus   int
		wantCode     string
	}{
		{"/v1/forbidden", "GET", 403, "forbidden"},
		{"/v1/nothing", "GET", 404, "not_found"},
		{"/v1/proxy", "GET", 502, ""},
	}
	for _, tc := range tests {
		_, err := c.Call(ctx, tc.method, tc.path, nil, nil)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != tc.wantStatus || ae.Code != tc.wantCode {
			t.Errorf("%s: err %v, want status %d code %q", tc.path, err, tc.wantStatus, tc.wantCode)
			continue
		}
		if tc.wantCode != "" && (ae.RequestID != "req-1" || !strings.Contains(err.Error(), tc.wantCode)) {
			t.Errorf("%s: error %q lacks code or request id", tc.path, err)
		}
	}
	if _, err := c.Call(ctx, "GET", "/v1/limited", nil, nil); err != nil {
		t.Fatalf("GET after two 429: %v", err)
	}
	mu.Lock()
	calls429 = 0
	mu.Unlock()
	if _, err := c.Call(ctx, "POST", "/v1/limited", nil, nil); err == nil {
		t.Fatal("a POST refused with 429 was retried")
	}
}

func TestEndpointParsing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"https://agent:8443", "https://agent:8443", true},
		{"agent:8443", "https://agent:8443", true},
		{"https://agent:8443/", "https://agent:8443", true},
		{"http://agent:8443", "", false},
		{"https://user@agent:8443", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		u, err := ParseEndpoint(tc.in)
		if (err == nil) != tc.ok || (tc.ok && u.String() != tc.want) {
			t.Errorf("%q: %v %v, want %q ok=%v", tc.in, u, err, tc.want, tc.ok)
		}
	}
}

// sseServer serves scripted event stream connections: script[i] is what
// connection i writes before it drops; it records each Last-Event-ID.
type sseServer struct {
	mu      sync.Mutex
	script  []string
	lastIDs []string
	conns   int
}

func (s *sseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/eventlog" {
		w.Write([]byte(`{"info":{},"entries":[{"entry_id":1,"event":{"id":2,"type":"USER"}}]}`))
		return
	}
	s.mu.Lock()
	i := s.conns
	s.conns++
	s.lastIDs = append(s.lastIDs, r.Header.Get("Last-Event-ID"))
	s.mu.Unlock()
	if i >= len(s.script) {
		// Nothing more to say: hold the connection until the client goes.
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	io.WriteString(w, s.script[i])
	w.(http.Flusher).Flush()
	// Drop the connection abruptly, as a network failure would.
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
		}
	}
}

func hpiEv(id uint64) string {
	return fmt.Sprintf("id: %d\nevent: hpi\ndata: {\"id\":%d,\"type\":\"USER\",\"user\":{\"data\":\"e%d\"}}\n\n", id, id, id)
}

func TestFollowerResumesWithoutDuplicates(t *testing.T) {
	t.Parallel()
	srv := &sseServer{script: []string{
		// 1: after the log's newest event (2): events 3 and 4, then a
		// half-written event 5, then the drop.
		"retry: 10\n\n" + hpiEv(3) + hpiEv(4) + "id: 5\nevent: hpi\ndata: {\"id\":5",
		// 2: a server or proxy replaying what was already seen, then 5, 6.
		hpiEv(3) + hpiEv(4) + hpiEv(5) + ": keep-alive\n\n" + hpiEv(6),
		// 3: a gap: 7 and 8 are gone for good; then 9.
		"id: 8\nevent: gap\ndata: {\"first_missing\":7,\"last_missing\":8,\"count\":2}\n\n" + hpiEv(9),
		// 4: the agent restarted: reset, then its log from the start.
		"event: reset\ndata: {\"resume_id\":9,\"last_event_id\":1,\"reason\":\"restart\"}\n\n" + hpiEv(1),
	}}
	s, cc := startServer(t, srv)
	c := newClient(t, s, cc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []string
	f := &Follower{Client: c, Deliver: func(it StreamItem) error {
		switch {
		case it.Event != nil:
			got = append(got, strconv.FormatUint(it.Event.ID, 10))
			if it.Event.ID == 1 {
				cancel()
			}
		case it.Gap != nil:
			got = append(got, fmt.Sprintf("gap%d-%d", it.Gap.FirstMissing, it.Gap.LastMissing))
		case it.Reset != nil:
			got = append(got, "reset")
		}
		return nil
	}}
	if err := f.Run(ctx); err != nil {
		t.Fatal(err)
	}
	want := "3 4 5 6 gap7-8 9 reset 1"
	if g := strings.Join(got, " "); g != want {
		t.Fatalf("delivered %q, want %q", g, want)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if g := strings.Join(srv.lastIDs, ","); g != "2,4,6,9" {
		t.Fatalf("Last-Event-ID sent %q, want 2,4,6,9", g)
	}
}

func TestFollowerStopsOnRefusalAndIdle(t *testing.T) {
	t.Parallel()
	t.Run("403 stops", func(t *testing.T) {
		t.Parallel()
		s, cc := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeErr(w, 403, "no_role", "identity has no role")
		}))
		f := &Follower{Client: newClient(t, s, cc), Resume: true, Deliver: func(StreamItem) error { return nil }}
		err := f.Run(context.Background())
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != "no_role" {
			t.Fatalf("Run: %v, want the 403", err)
		}
	})
	t.Run("silent connection is abandoned", func(t *testing.T) {
		t.Parallel()
		srv := &sseServer{} // every connection stays silent
		s, cc := startServer(t, srv)
		f := &Follower{Client: newClient(t, s, cc), Resume: true, After: 5, IdleTimeout: 50 * time.Millisecond,
			MaxFailures: 3, Deliver: func(StreamItem) error { return nil }}
		if err := f.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "3 attempts") {
			t.Fatalf("Run: %v", err)
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if srv.conns != 3 || srv.lastIDs[2] != "5" {
			t.Fatalf("connections %d, Last-Event-IDs %v", srv.conns, srv.lastIDs)
		}
	})
}

func TestSSEReader(t *testing.T) {
	t.Parallel()
	in := "retry: 100\n\n: comment\nid: 1\nevent: hpi\ndata: a\ndata: b\n\nid:2\ndata:c\r\n\r\n" + "data: cut"
	r := NewSSEReader(strings.NewReader(in))
	var got []string
	for {
		ev, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s|%s|%q|%v", ev.ID, ev.Type, ev.Data, ev.Retry))
	}
	want := []string{`||""|100ms`, `1|hpi|"a\nb"|0s`, `2|message|"c"|0s`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	long := "data: " + strings.Repeat("x", maxSSELine+1) + "\n\n"
	if _, err := NewSSEReader(strings.NewReader(long)).Next(); err == nil || err == io.EOF {
		t.Fatalf("over-long line: %v", err)
	}
}

func FuzzSSEReader(f *testing.F) {
	f.Add([]byte(hpiEv(1) + hpiEv(2)))
	f.Add([]byte("retry: 5\n\n: x\n\ndata\n\nid: \x00\n\n"))
	f.Add([]byte("event: gap\ndata: {}\r\n\r\ndata: cut"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewSSEReader(bufio.NewReader(strings.NewReader(string(in))))
		for i := 0; i < 10000; i++ {
			ev, err := r.Next()
			if err != nil {
				return
			}
			if strings.ContainsRune(ev.ID, 0) {
				t.Fatalf("id with NUL accepted: %q", ev.ID)
			}
			if ev.Type == "" && ev.Retry == 0 {
				t.Fatalf("event without type: %+v", ev)
			}
		}
		t.Fatal("reader does not make progress")
	})
}
