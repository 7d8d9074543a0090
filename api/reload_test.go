package api_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"

	"hpiagent/api"
)

// tlsGet is a GET over c that reports the server's leaf certificate and
// whether the request went over a connection opened before.
func tlsGet(t *testing.T, h *harness, c *http.Client, path string) (status int, leaf *x509.Certificate, reused bool) {
	t.Helper()
	req, err := http.NewRequest("GET", h.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.TLS.PeerCertificates[0], reused
}

// TestSetRoles replaces the role map of a running server over real
// mutual TLS: the next request of a connection already open is judged by
// the new map, a bad map is refused and changes nothing, and the server
// keeps its own copy.
func TestSetRoles(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	viewer, newcomer := h.client("viewer"), h.client("newcomer")
	if code, _, _ := tlsGet(t, h, newcomer, "/v1/resources"); code != http.StatusForbidden {
		t.Fatalf("newcomer before: %d, want 403", code)
	}
	if code, _, _ := tlsGet(t, h, viewer, "/v1/resources"); code != http.StatusOK {
		t.Fatalf("viewer before: %d, want 200", code)
	}
	roles := map[string][]api.Role{identity("newcomer"): {api.RoleViewer}, identity("admin"): {api.RoleAdmin}}
	if err := h.srv.SetRoles(roles); err != nil {
		t.Fatal(err)
	}
	// The caller's map is copied: changing it afterwards changes nothing.
	roles[identity("viewer")] = []api.Role{api.RoleViewer}
	roles[identity("newcomer")][0] = api.RoleAdmin

	bad := []struct {
		name  string
		roles map[string][]api.Role
		want  string
	}{
		{"unknown role", map[string][]api.Role{identity("viewer"): {"root"}}, "unknown role"},
		{"empty identity", map[string][]api.Role{"": {api.RoleViewer}}, "empty identity"},
	}
	for _, tt := range bad {
		if err := h.srv.SetRoles(tt.roles); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}

	tests := []struct {
		name   string
		c      *http.Client
		method string
		path   string
		want   int
		code   string
	}{
		{"newcomer reads", newcomer, "GET", "/v1/resources", http.StatusOK, ""},
		{"newcomer stays a viewer", newcomer, "PUT", fmt.Sprintf("/v1/resources/%d/power", h.blade), http.StatusForbidden, api.CodeForbidden},
		{"viewer lost its role", viewer, "GET", "/v1/resources", http.StatusForbidden, api.CodeNoRole},
		{"admin", h.client("admin"), "GET", "/v1/resources", http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.method == "PUT" {
				body = map[string]string{"state": "OFF"}
			}
			a := h.do(tt.c, tt.method, tt.path, body)
			if a.status != tt.want || a.errorCode() != tt.code {
				t.Errorf("%d %q, want %d %q", a.status, a.errorCode(), tt.want, tt.code)
			}
		})
	}
	if code, _, reused := tlsGet(t, h, viewer, "/v1/whoami"); code != http.StatusOK || !reused {
		t.Errorf("viewer's connection from before: whoami %d, reused %t", code, reused)
	}
}

// TestSetCertificate renews the server certificate of a running server
// over real mutual TLS: a connection opened before keeps working with the
// old certificate, a new connection gets the new one, and a certificate
// that cannot serve is refused and changes nothing.
func TestSetCertificate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	kept := h.client("viewer")
	code, before, _ := tlsGet(t, h, kept, "/v1/resources")
	if code != http.StatusOK {
		t.Fatalf("before: %d", code)
	}
	renewed, err := h.ca.Server()
	if err != nil {
		t.Fatal(err)
	}
	other, err := h.ca.Server()
	if err != nil {
		t.Fatal(err)
	}
	renewedLeaf, err := x509.ParseCertificate(renewed.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if renewedLeaf.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Fatal("the renewed certificate has the old serial")
	}
	if err := h.srv.SetCertificate(&renewed); err != nil {
		t.Fatal(err)
	}

	code, still, reused := tlsGet(t, h, kept, "/v1/resources")
	if code != http.StatusOK || !reused || still.SerialNumber.Cmp(before.SerialNumber) != 0 {
		t.Errorf("connection from before: %d, reused %t, serial %v, want 200 over the old connection with %v", code, reused, still.SerialNumber, before.SerialNumber)
	}
	serialOfNew := func() *big.Int {
		t.Helper()
		code, leaf, reused := tlsGet(t, h, h.client("viewer"), "/v1/resources")
		if code != http.StatusOK || reused {
			t.Fatalf("new connection: %d reused %t", code, reused)
		}
		return leaf.SerialNumber
	}
	if got := serialOfNew(); got.Cmp(renewedLeaf.SerialNumber) != 0 {
		t.Errorf("new connection: serial %v, want the renewed %v", got, renewedLeaf.SerialNumber)
	}

	mismatched := tls.Certificate{Certificate: renewed.Certificate, PrivateKey: other.PrivateKey}
	bad := []struct {
		name string
		cert *tls.Certificate
		want string
	}{
		{"nil", nil, "no certificate"},
		{"empty chain", &tls.Certificate{PrivateKey: renewed.PrivateKey}, "no certificate"},
		{"no key", &tls.Certificate{Certificate: renewed.Certificate}, "no private key"},
		{"key of another certificate", &mismatched, "does not match"},
		{"garbage leaf", &tls.Certificate{Certificate: [][]byte{[]byte("not DER")}, PrivateKey: renewed.PrivateKey}, "parse the leaf"},
	}
	for _, tt := range bad {
		if err := h.srv.SetCertificate(tt.cert); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}
	if got := serialOfNew(); got.Cmp(renewedLeaf.SerialNumber) != 0 {
		t.Errorf("after refused certificates: serial %v, want still %v", got, renewedLeaf.SerialNumber)
	}
}
