package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRun drives a real loopback HTTP server and checks what Run counts:
// one connection per worker kept alive, every measured request answered,
// failed answers counted apart.
func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		conns      int
		wantErrors bool
	}{
		{"ok, one connection", http.StatusOK, 1, false},
		{"ok, four connections", http.StatusOK, 4, false},
		{"server errors", http.StatusInternalServerError, 2, true},
		{"rate limited", http.StatusTooManyRequests, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var served atomic.Int64
			var paths pathSet
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				served.Add(1)
				paths.add(r.URL.Path)
				w.WriteHeader(tt.status)
				w.Write([]byte(`{"ok":true}`))
			}))
			defer srv.Close()
			res, err := Run(context.Background(), Config{URL: srv.URL, Paths: []string{"/a", "/b"}, Connections: tt.conns, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			// Keep-alive: one connection each, and on a loaded machine
			// now and then one more (the transport's idle-connection race),
			// never one per request.
			if res.Dials < int64(tt.conns) || res.Dials > 2*int64(tt.conns) {
				t.Errorf("dials = %d, want %d (keep-alive)", res.Dials, tt.conns)
			}
			total := res.Requests + res.Errors
			if total == 0 || int64(total) > served.Load() {
				t.Errorf("counted %d requests, server answered %d", total, served.Load())
			}
			if tt.wantErrors {
				if res.Requests != 0 || res.Errors == 0 || !strings.Contains(res.FirstError, "status") {
					t.Errorf("want only errors, got %+v", res)
				}
			} else {
				if res.Errors != 0 || res.RPS <= 0 || res.P99Ms < res.P50Ms || res.MaxMs < res.P99Ms || res.BytesPerReq != 11 {
					t.Errorf("implausible result %+v", res)
				}
			}
			if got := paths.get(); !got["/a"] || !got["/b"] {
				t.Errorf("paths requested %v, want /a and /b", got)
			}
		})
	}
}

// pathSet records the paths a server saw.
type pathSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (p *pathSet) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]bool{}
	}
	p.m[s] = true
}

func (p *pathSet) get() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m
}
