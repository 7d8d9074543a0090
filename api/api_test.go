package api_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"hpiagent/api"
	"hpiagent/api/apitest"
	"hpiagent/api/audit"
	"hpiagent/hpi"
)

func TestTLSRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	good, err := h.ca.Client("x", identity("viewer"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := apitest.NewCA("some other CA")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Client("x", identity("viewer"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tc     *tls.Config
		wantOK bool
	}{
		{"valid certificate", h.ca.ClientTLS(good), true},
		{"no client certificate", &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: h.ca.Pool}, false},
		{"certificate of an unknown CA", &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: h.ca.Pool, Certificates: []tls.Certificate{foreign}}, false},
		{"TLS 1.2 only", &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, RootCAs: h.ca.Pool, Certificates: []tls.Certificate{good}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.clientTLS(tt.tc)
			resp, err := c.Get(h.url + "/v1/whoami")
			if tt.wantOK {
				if err != nil {
					t.Fatalf("GET: %v", err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d", resp.StatusCode)
				}
				if resp.TLS.Version != tls.VersionTLS13 {
					t.Errorf("TLS version %x, want 1.3", resp.TLS.Version)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("request succeeded with status %d; want the handshake refused", resp.StatusCode)
			}
		})
	}
	// Refused handshakes never reach a handler, so nothing is audited for
	// them, but they are counted.
	a := h.do(h.client("viewer"), "GET", "/metrics", nil)
	if !strings.Contains(string(a.body), "hpiagent_api_tls_handshake_failures_total") {
		t.Errorf("metrics lack the handshake failure counter")
	}
	if strings.Contains(string(a.body), "hpiagent_api_tls_handshake_failures_total 0\n") {
		t.Errorf("handshake failures not counted:\n%s", grepLines(string(a.body), "handshake"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestIdentityFromCertificate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tests := []struct {
		client    string
		wantID    string
		wantRoles []api.Role
	}{
		{"fencer", identity("fencer"), []api.Role{api.RoleFencer}},
		{"", "cn-only-client", []api.Role{api.RoleViewer}}, // no URI SAN: the CN
		{"nobody", identity("nobody"), []api.Role{}},
	}
	for _, tt := range tests {
		a := h.do(h.client(tt.client), "GET", "/v1/whoami", nil)
		if a.status != http.StatusOK {
			t.Fatalf("whoami as %q: status %d %s", tt.client, a.status, a.body)
		}
		var w api.WhoAmI
		if err := json.Unmarshal(a.body, &w); err != nil {
			t.Fatal(err)
		}
		if w.Identity != tt.wantID || !slices.Equal(w.Roles, tt.wantRoles) {
			t.Errorf("whoami as %q = %+v, want identity %q roles %v", tt.client, w, tt.wantID, tt.wantRoles)
		}
	}
	a := h.do(h.client("nobody"), "GET", "/v1/resources", nil)
	if a.status != http.StatusForbidden || a.errorCode() != api.CodeNoRole {
		t.Errorf("identity without role: %d %s, want 403 no_role", a.status, a.body)
	}
}

// TestRoleMatrix checks every route for every role against a table
// written out here, independently of the table in rbac.go.
func TestRoleMatrix(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	// An alarm to acknowledge.
	if _, err := h.dom.SetSensorReading(h.blade, apitest.BladeTempSensor, hpi.Float(99), hpi.ESUpperMajor, time.Time{}); err != nil {
		t.Fatal(err)
	}
	alarms := h.dom.Alarms()
	if len(alarms) == 0 {
		t.Fatal("no alarm raised")
	}
	id := fmt.Sprint(h.blade)
	const (
		V = 1 << iota // viewer
		O             // operator
		F             // fencer
		A             // admin
		D             // diagnostics
		N             // identity without role
	)
	readers := V | O | F | A | D
	cases := []struct {
		method, path string
		body         any
		allowed      int
		pattern      string // the route it exercises
	}{
		{"GET", "/v1/whoami", nil, readers | N, "/v1/whoami"},
		{"GET", "/v1/openapi.json", nil, readers, "/v1/openapi.json"},
		{"GET", "/metrics", nil, readers, "/metrics"},
		{"GET", "/v1/resources", nil, readers, "/v1/resources"},
		{"GET", "/v1/resources/" + id, nil, readers, "/v1/resources/{id}"},
		{"GET", "/v1/resources/" + id + "/rdrs", nil, readers, "/v1/resources/{id}/rdrs"},
		{"GET", "/v1/resources/" + id + "/sensors/3", nil, readers, "/v1/resources/{id}/sensors/{num}"},
		{"GET", "/v1/resources/" + id + "/inventory", nil, readers, "/v1/resources/{id}/inventory"},
		{"GET", "/v1/resources/" + id + "/hotswap", nil, readers, "/v1/resources/{id}/hotswap"},
		{"POST", "/v1/resources/" + id + "/hotswap", map[string]string{"action": "REQUEST_EXTRACTION"}, O | A, "/v1/resources/{id}/hotswap"},
		{"GET", "/v1/resources/" + id + "/power", nil, readers, "/v1/resources/{id}/power"},
		{"PUT", "/v1/resources/" + id + "/power", map[string]string{"state": "OFF"}, F | A, "/v1/resources/{id}/power"},
		{"POST", "/v1/resources/" + id + "/reset", map[string]string{"action": "COLD_RESET"}, F | A, "/v1/resources/{id}/reset"},
		{"PUT", "/v1/resources/" + id + "/controls/1", map[string]any{"state": map[string]string{"type": "DIGITAL", "digital": "ON"}}, O | A, "/v1/resources/{id}/controls/{num}"},
		{"PUT", "/v1/resources/" + id + fmt.Sprintf("/controls/%d", apitest.BladeResetCtrl), map[string]any{"state": map[string]string{"type": "DIGITAL", "digital": "PULSE_ON"}}, F | A, "/v1/resources/{id}/controls/{num}"},
		{"PUT", "/v1/resources/" + id + fmt.Sprintf("/controls/%d", apitest.BladeOEMCtrl), map[string]any{"state": map[string]any{"type": "ANALOG", "analog": 7}}, A, "/v1/resources/{id}/controls/{num}"},
		{"GET", "/v1/eventlog", nil, readers, "/v1/eventlog"},
		{"GET", "/v1/alarms", nil, readers, "/v1/alarms"},
		{"POST", fmt.Sprintf("/v1/alarms/%d/ack", alarms[0].AlarmID), nil, O | A, "/v1/alarms/{id}/ack"},
		{"GET", "/v1/events", nil, readers, "/v1/events"},
		{"GET", "/v1/resources/" + id + "/sensors", nil, readers, "/v1/resources/{id}/sensors"},
		{"GET", "/v1/cluster", nil, readers, "/v1/cluster"},
		{"GET", "/v1/fence", nil, readers, "/v1/fence"},
		{"GET", "/v1/fence/node-b", nil, readers, "/v1/fence/{node}"},
		{"POST", "/v1/fence/node-b", map[string]string{"action": "off"}, F | A, "/v1/fence/{node}"},
		{"GET", "/v1/workflows", nil, readers, "/v1/workflows"},
		{"GET", "/v1/workflows/wf-1", nil, readers, "/v1/workflows/{id}"},
		{"POST", "/v1/resources/" + id + "/extract", map[string]string{"reason": "swap"}, O | A, "/v1/resources/{id}/extract"},
		{"POST", "/v1/workflows/wf-1/override", map[string]string{"reason": "disk destroyed on site"}, A, "/v1/workflows/{id}/override"},
		{"POST", "/v1/workflows/wf-1/retry", nil, O | A, "/v1/workflows/{id}/retry"},
		{"POST", "/v1/workflows/wf-2/abort", nil, O | A, "/v1/workflows/{id}/abort"},
		{"GET", "/v1/erase-certificates", nil, O | D | A, "/v1/erase-certificates"},
		{"GET", "/v1/erase-certificates/" + testCertID, nil, O | D | A, "/v1/erase-certificates/{id}"},
		{"GET", "/v1/audit/anchors", nil, readers, "/v1/audit/anchors"},
	}
	// Every route is exercised.
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.method+" "+c.pattern] = true
	}
	for _, r := range api.Routes() {
		if !covered[r.Method+" "+r.Path] {
			t.Errorf("route %s %s not in the matrix test", r.Method, r.Path)
		}
	}
	roles := []struct {
		bit    int
		client string
	}{{V, "viewer"}, {O, "operator"}, {F, "fencer"}, {A, "admin"}, {D, "diagnostics"}, {N, "nobody"}}
	for _, rl := range roles {
		c := h.client(rl.client)
		for _, tc := range cases {
			name := fmt.Sprintf("%s %s as %s", tc.method, tc.path, rl.client)
			before := len(h.aud.Records())
			var status int
			var code string
			if tc.pattern == "/v1/events" {
				status, code = streamStatus(t, c, h.url+tc.path)
			} else {
				a := h.do(c, tc.method, tc.path, tc.body)
				status, code = a.status, a.errorCode()
			}
			if tc.allowed&rl.bit != 0 {
				if status/100 != 2 {
					t.Errorf("%s: status %d (%s), want 2xx", name, status, code)
				}
				continue
			}
			want := api.CodeForbidden
			if rl.bit == N {
				want = api.CodeNoRole
			}
			if status != http.StatusForbidden || code != want {
				t.Errorf("%s: status %d code %q, want 403 %q", name, status, code, want)
				continue
			}
			recs := h.aud.Records()[before:]
			if len(recs) != 1 || recs[0].Actor != identity(rl.client) || recs[0].Result != want {
				t.Errorf("%s: audit records %+v, want one %q refusal of %s", name, recs, want, identity(rl.client))
			}
		}
	}
}

// streamStatus opens an event stream and closes it once the answer's
// status is known.
func streamStatus(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var eb api.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		return resp.StatusCode, eb.Error.Code
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("event stream content type %q", ct)
	}
	return resp.StatusCode, ""
}

func TestViewerPowerForbiddenAudited(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	a := h.do(h.client("viewer"), "PUT", fmt.Sprintf("/v1/resources/%d/power", h.blade), map[string]string{"state": "OFF"})
	if a.status != http.StatusForbidden || a.errorCode() != api.CodeForbidden {
		t.Fatalf("viewer power off: %d %s, want 403 forbidden", a.status, a.body)
	}
	var eb api.ErrorBody
	if err := json.Unmarshal(a.body, &eb); err != nil || eb.Error.RequestID == "" || eb.Error.RequestID != a.header.Get("X-Request-Id") {
		t.Errorf("error body %s lacks the request id %q", a.body, a.header.Get("X-Request-Id"))
	}
	if calls := h.hw.Calls(); len(calls) != 0 {
		t.Errorf("hardware called: %+v", calls)
	}
	recs := h.aud.Records()
	if len(recs) != 1 {
		t.Fatalf("audit records %+v, want 1", recs)
	}
	r := recs[0]
	if r.Actor != identity("viewer") || !slices.Equal(r.Roles, []string{"viewer"}) || r.Action != "power.set" ||
		r.Result != api.CodeForbidden || !strings.Contains(r.Target, "/power") || r.Time.IsZero() {
		t.Errorf("audit record %+v", r)
	}
}

func TestActionsCallHardwareAndAudit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	path := apitest.BladePath(5).String()
	tests := []struct {
		client, method, path string
		body                 any
		wantCall             apitest.HardwareCall
		action               string
	}{
		{"fencer", "PUT", fmt.Sprintf("/v1/resources/%d/power", h.blade), map[string]string{"state": "off"},
			apitest.HardwareCall{Op: "SetPowerState", ID: h.blade, Arg: "OFF"}, "power.set"},
		{"fencer", "PUT", "/v1/resources/" + url.PathEscape(path) + "/power", map[string]string{"state": "CYCLE"},
			apitest.HardwareCall{Op: "SetPowerState", ID: h.blade, Arg: "CYCLE"}, "power.set"},
		{"fencer", "POST", fmt.Sprintf("/v1/resources/%d/reset", h.blade2), map[string]string{"action": "WARM_RESET"},
			apitest.HardwareCall{Op: "Reset", ID: h.blade2, Arg: "WARM_RESET"}, "reset"},
		{"operator", "POST", fmt.Sprintf("/v1/resources/%d/hotswap", h.blade), map[string]string{"action": "request_extraction"},
			apitest.HardwareCall{Op: "HotSwapAction", ID: h.blade, Arg: "REQUEST_EXTRACTION"}, "hotswap.action"},
		{"operator", "PUT", fmt.Sprintf("/v1/resources/%d/controls/%d", h.blade, apitest.BladeLED), map[string]any{"state": map[string]string{"type": "DIGITAL", "digital": "ON"}},
			apitest.HardwareCall{Op: "SetControl", ID: h.blade, Arg: fmt.Sprintf("%d:0:1", apitest.BladeLED)}, "control.set"},
		{"admin", "PUT", fmt.Sprintf("/v1/resources/%d/controls/0x%x", h.blade, apitest.BladeOEMCtrl), map[string]any{"state": map[string]any{"type": "ANALOG", "analog": 9}},
			apitest.HardwareCall{Op: "SetControl", ID: h.blade, Arg: fmt.Sprintf("%d:2:9", apitest.BladeOEMCtrl)}, "control.set"},
	}
	for _, tt := range tests {
		nCalls, nRecs := len(h.hw.Calls()), len(h.aud.Records())
		a := h.do(h.client(tt.client), tt.method, tt.path, tt.body)
		if a.status != http.StatusOK {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, a.status, a.body)
			continue
		}
		calls := h.hw.Calls()[nCalls:]
		if len(calls) != 1 || calls[0] != tt.wantCall {
			t.Errorf("%s %s: hardware calls %+v, want %+v", tt.method, tt.path, calls, tt.wantCall)
		}
		recs := h.aud.Records()[nRecs:]
		if len(recs) != 2 || recs[0].Result != "attempt" || recs[1].Result != "ok" ||
			recs[0].Action != tt.action || recs[1].Actor != identity(tt.client) || !strings.Contains(recs[1].Target, "resource ") {
			t.Errorf("%s %s: audit %+v, want attempt then ok of %s", tt.method, tt.path, recs, tt.action)
		} else if rid := "request_id=" + a.header.Get("X-Request-Id"); !strings.HasSuffix(recs[0].Detail, rid) || !strings.HasSuffix(recs[1].Detail, rid) {
			t.Errorf("%s %s: audit details %q, %q lack %s", tt.method, tt.path, recs[0].Detail, recs[1].Detail, rid)
		}
	}
}

func TestHardwareFailureAudited(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.hw.Err = fmt.Errorf("set power: %w", hpi.ErrInvalidRequest)
	a := h.do(h.client("fencer"), "PUT", fmt.Sprintf("/v1/resources/%d/power", h.blade), map[string]string{"state": "ON"})
	if a.status != http.StatusConflict || a.errorCode() != api.CodeInvalidState {
		t.Fatalf("%d %s, want 409 invalid_state", a.status, a.body)
	}
	recs := h.aud.Records()
	if len(recs) != 2 || recs[0].Result != "attempt" || recs[1].Result != api.CodeInvalidState {
		t.Errorf("audit %+v", recs)
	}
}

func TestAuditFailureFailsClosed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.aud.Fail(apitest.ErrInjected)
	tests := []struct {
		client, method, path string
		body                 any
	}{
		{"fencer", "PUT", fmt.Sprintf("/v1/resources/%d/power", h.blade), map[string]string{"state": "OFF"}},
		{"fencer", "POST", fmt.Sprintf("/v1/resources/%d/reset", h.blade), map[string]string{"action": "COLD_RESET"}},
		{"operator", "POST", fmt.Sprintf("/v1/resources/%d/hotswap", h.blade), map[string]string{"action": "DEACTIVATE"}},
	}
	for _, tt := range tests {
		a := h.do(h.client(tt.client), tt.method, tt.path, tt.body)
		if a.status != http.StatusServiceUnavailable || a.errorCode() != api.CodeAuditUnavailable {
			t.Errorf("%s %s with a failing audit log: %d %s, want 503 audit_unavailable", tt.method, tt.path, a.status, a.body)
		}
	}
	if calls := h.hw.Calls(); len(calls) != 0 {
		t.Errorf("hardware called although the audit log failed: %+v", calls)
	}
	// Reads go on.
	if a := h.do(h.client("viewer"), "GET", "/v1/resources", nil); a.status != http.StatusOK {
		t.Errorf("read with a failing audit log: %d", a.status)
	}
}

func TestBadRequestsOnMutatingRoutesAudited(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *api.Config, _ *api.Deps) { c.MaxBodyBytes = 256 })
	p := fmt.Sprintf("/v1/resources/%d/power", h.blade)
	tests := []struct {
		name, path string
		body       any
		status     int
		code       string
	}{
		{"not JSON", p, "state=off", 400, api.CodeBadRequest},
		{"unknown field", p, `{"state":"OFF","force":true}`, 400, api.CodeBadRequest},
		{"two values", p, `{"state":"OFF"}{"state":"ON"}`, 400, api.CodeBadRequest},
		{"bad state", p, `{"state":"HALF"}`, 400, api.CodeBadRequest},
		{"too large", p, `{"state":"` + strings.Repeat("O", 300) + `"}`, 413, api.CodeTooLarge},
		{"no such resource", "/v1/resources/999/power", `{"state":"OFF"}`, 404, api.CodeNotFound},
		{"bad entity path", "/v1/resources/" + url.PathEscape("{NO_SUCH_TYPE,1}") + "/power", `{"state":"OFF"}`, 400, api.CodeBadRequest},
		{"wrong control type", fmt.Sprintf("/v1/resources/%d/controls/%d", h.blade, apitest.BladeResetCtrl), `{"state":{"type":"ANALOG","analog":1}}`, 400, api.CodeBadRequest},
		{"no such control", fmt.Sprintf("/v1/resources/%d/controls/77", h.blade), `{"state":{"type":"DIGITAL","digital":"ON"}}`, 404, api.CodeNotFound},
	}
	c := h.client("admin")
	for _, tt := range tests {
		n := len(h.aud.Records())
		a := h.do(c, "PUT", tt.path, tt.body)
		if a.status != tt.status || a.errorCode() != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.name, a.status, a.body, tt.status, tt.code)
		}
		recs := h.aud.Records()[n:]
		if len(recs) != 1 || recs[0].Result != tt.code || recs[0].Actor != identity("admin") {
			t.Errorf("%s: audit %+v, want one %s record", tt.name, recs, tt.code)
		}
	}
	if calls := h.hw.Calls(); len(calls) != 0 {
		t.Errorf("hardware called: %+v", calls)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *api.Config, _ *api.Deps) { c.RateLimit = 0.5; c.RateBurst = 3 })
	viewer, admin := h.client("viewer"), h.client("admin")
	for i := range 3 {
		if a := h.do(viewer, "GET", "/v1/resources", nil); a.status != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i, a.status)
		}
	}
	a := h.do(viewer, "GET", "/v1/resources", nil)
	if a.status != http.StatusTooManyRequests || a.errorCode() != api.CodeRateLimited {
		t.Fatalf("request beyond the burst: %d %s, want 429 rate_limited", a.status, a.body)
	}
	if ra := a.header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2 (one token at 0.5/s)", ra)
	}
	recs := h.aud.Records()
	if len(recs) != 1 || recs[0].Result != api.CodeRateLimited || recs[0].Actor != identity("viewer") {
		t.Errorf("audit %+v, want the rate-limited call", recs)
	}
	// Another client has its own bucket.
	if a := h.do(admin, "GET", "/v1/resources", nil); a.status != http.StatusOK {
		t.Errorf("other client: %d", a.status)
	}
	h.clk.advance(2 * time.Second)
	if a := h.do(viewer, "GET", "/v1/resources", nil); a.status != http.StatusOK {
		t.Errorf("after the refill: %d", a.status)
	}
	if a := h.do(viewer, "GET", "/v1/resources", nil); a.status != http.StatusTooManyRequests {
		t.Errorf("second after one refill: %d, want 429", a.status)
	}
}

func TestReads(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	c := h.client("viewer")
	ep := apitest.BladePath(5).String()

	var rs []api.ResourceView
	getJSON(t, h, c, "/v1/resources", &rs)
	if len(rs) != 2 || rs[0].EntityPath != ep || !slices.Contains(rs[0].Capabilities, "POWER") {
		t.Errorf("resources %+v", rs)
	}
	var r api.ResourceView
	getJSON(t, h, c, "/v1/resources/"+url.PathEscape(ep), &r)
	if r.ID != uint32(h.blade) {
		t.Errorf("resource by entity path: %+v, want id %d", r, h.blade)
	}
	var rdrs []api.RDRView
	getJSON(t, h, c, fmt.Sprintf("/v1/resources/%d/rdrs", h.blade), &rdrs)
	var led *api.RDRView
	for i := range rdrs {
		if rdrs[i].Control != nil && rdrs[i].Num == apitest.BladeLED {
			led = &rdrs[i]
		}
	}
	if len(rdrs) != 5 || led == nil || led.Control.OutputType != "LED" || led.Control.Permission != api.PermLED {
		t.Errorf("rdrs %+v", rdrs)
	}
	var s api.SensorView
	getJSON(t, h, c, fmt.Sprintf("/v1/resources/%d/sensors/%d", h.blade, apitest.BladeTempSensor), &s)
	if s.Reading == nil || s.Reading.Value != 41.5 || s.Name != "CPU Temp" || s.Units != "DEGREES_C" || s.EntityPath != ep {
		t.Errorf("sensor %+v", s)
	}
	var inv []api.InventoryView
	getJSON(t, h, c, fmt.Sprintf("/v1/resources/%d/inventory", h.blade), &inv)
	if len(inv) != 1 || len(inv[0].Areas) != 1 || inv[0].Areas[0].Fields[1].Value != "SN-0005" {
		t.Errorf("inventory %+v", inv)
	}
	if _, _, err := h.dom.ObserveMState(h.blade, hpi.MStateUnknown, hpi.M4, hpi.HsCauseUnknown, time.Time{}); err != nil {
		t.Fatal(err)
	}
	var hs api.HotSwapView
	getJSON(t, h, c, fmt.Sprintf("/v1/resources/%d/hotswap", h.blade), &hs)
	if hs.State != "ACTIVE" || hs.MState != "M4" || !hs.Known {
		t.Errorf("hotswap %+v", hs)
	}
	var pw api.PowerView
	getJSON(t, h, c, fmt.Sprintf("/v1/resources/%d/power", h.blade), &pw)
	if pw.State != "ON" {
		t.Errorf("power %+v", pw)
	}
	if _, err := h.dom.SetSensorReading(h.blade, apitest.BladeTempSensor, hpi.Float(95), hpi.ESUpperMajor, time.Time{}); err != nil {
		t.Fatal(err)
	}
	var al []api.AlarmView
	getJSON(t, h, c, "/v1/alarms", &al)
	if len(al) != 1 || al[0].Severity != "MAJOR" || al[0].Condition.EntityPath != ep || al[0].Acknowledged {
		t.Fatalf("alarms %+v", al)
	}
	var acked api.AlarmView
	a := h.do(h.client("operator"), "POST", fmt.Sprintf("/v1/alarms/%d/ack", al[0].ID), nil)
	if a.status != http.StatusOK || json.Unmarshal(a.body, &acked) != nil || !acked.Acknowledged {
		t.Errorf("ack: %d %s", a.status, a.body)
	}
	if al := h.dom.Alarms(); !al[0].Acknowledged {
		t.Errorf("alarm not acknowledged in the domain")
	}
	var el api.EventLogView
	getJSON(t, h, c, "/v1/eventlog?after=2&limit=3", &el)
	if len(el.Entries) != 3 || el.Entries[0].Event.ID != 3 || el.Info.Entries == 0 {
		t.Errorf("event log %+v", el)
	}
	// Errors of reads.
	for _, tt := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/resources/12345", 404, api.CodeNotFound},
		{"/v1/resources/abc", 400, api.CodeBadRequest},
		{fmt.Sprintf("/v1/resources/%d/sensors/99", h.blade), 404, api.CodeNotFound},
		{fmt.Sprintf("/v1/resources/%d/sensors/x", h.blade), 400, api.CodeBadRequest},
		{"/v1/nothing", 404, api.CodeNotFound},
		{"/v1/eventlog?after=-1", 400, api.CodeBadRequest},
	} {
		if a := h.do(c, "GET", tt.path, nil); a.status != tt.status || a.errorCode() != tt.code {
			t.Errorf("GET %s: %d %s, want %d %s", tt.path, a.status, a.body, tt.status, tt.code)
		}
	}
	if a := h.do(c, "DELETE", "/v1/resources", nil); a.status != 405 || a.errorCode() != api.CodeMethodNotAllowed || a.header.Get("Allow") != "GET" {
		t.Errorf("DELETE /v1/resources: %d %s allow %q", a.status, a.body, a.header.Get("Allow"))
	}
}

func getJSON(t *testing.T, h *harness, c *http.Client, path string, v any) {
	t.Helper()
	a := h.do(c, "GET", path, nil)
	if a.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: content type %q", path, ct)
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, a.body)
	}
}

type thresholds map[hpi.SensorNum]hpi.SensorThresholds

func (th thresholds) SensorThresholds(id hpi.ResourceID, num hpi.SensorNum) (hpi.SensorThresholds, bool, error) {
	t, ok := th[num]
	return t, ok, nil
}

func TestSensorThresholds(t *testing.T) {
	t.Parallel()
	th := thresholds{apitest.BladeTempSensor: {UpCritical: hpi.Float(90), UpMajor: hpi.Float(80)}}
	h := newHarness(t, func(_ *api.Config, d *api.Deps) { d.Thresholds = th })
	var s api.SensorView
	getJSON(t, h, h.client("viewer"), fmt.Sprintf("/v1/resources/%d/sensors/%d", h.blade, apitest.BladeTempSensor), &s)
	if s.Thresholds == nil || s.Thresholds.UpCritical == nil || s.Thresholds.UpCritical.Value != 90.0 ||
		s.Thresholds.UpMajor.Value != 80.0 || s.Thresholds.LowMinor != nil {
		t.Errorf("thresholds %+v", s.Thresholds)
	}
}

func TestNoHardwareIsReadOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(_ *api.Config, d *api.Deps) { d.Hardware = nil })
	a := h.do(h.client("admin"), "PUT", fmt.Sprintf("/v1/resources/%d/power", h.blade), map[string]string{"state": "OFF"})
	if a.status != http.StatusServiceUnavailable || a.errorCode() != api.CodeUnavailable {
		t.Errorf("%d %s, want 503 unavailable", a.status, a.body)
	}
}

func TestNewRefusesIncompleteSetup(t *testing.T) {
	t.Parallel()
	ca, err := apitest.NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ca.Server()
	if err != nil {
		t.Fatal(err)
	}
	d := hpi.NewDomain(hpi.Config{})
	aud := &apitest.Auditor{}
	good := api.Config{Certificate: &sc, ClientCAs: ca.Pool}
	tests := []struct {
		name string
		cfg  api.Config
		deps api.Deps
		want string
	}{
		{"no auditor", good, api.Deps{Domain: d}, "auditor"},
		{"no domain", good, api.Deps{Auditor: aud}, "domain"},
		{"no certificate", api.Config{ClientCAs: ca.Pool}, api.Deps{Domain: d, Auditor: aud}, "server certificate"},
		{"no client CA", api.Config{Certificate: &sc}, api.Deps{Domain: d, Auditor: aud}, "client CA"},
		{"unknown role", api.Config{Certificate: &sc, ClientCAs: ca.Pool, Roles: map[string][]api.Role{"x": {"root"}}}, api.Deps{Domain: d, Auditor: aud}, "unknown role"},
		{"missing files", api.Config{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem", ClientCAs: ca.Pool}, api.Deps{Domain: d, Auditor: aud}, "load server certificate"},
	}
	for _, tt := range tests {
		_, err := api.New(tt.cfg, tt.deps)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}
	s, err := api.New(good, api.Deps{Domain: d, Auditor: aud})
	if err != nil {
		t.Fatal(err)
	}
	tc := s.TLSConfig()
	if tc.MinVersion != tls.VersionTLS13 || tc.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("TLS config min %x auth %v", tc.MinVersion, tc.ClientAuth)
	}
}

func TestHandlerWithoutTLSRefuses(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	rec := newRecorder()
	req, _ := http.NewRequest("GET", "/v1/resources", nil)
	h.srv.Handler().ServeHTTP(rec, req)
	if rec.status != http.StatusForbidden {
		t.Errorf("request without TLS: %d, want 403", rec.status)
	}
	if recs := h.aud.Records(); len(recs) != 1 || recs[0].Result != api.CodeForbidden {
		t.Errorf("audit %+v", recs)
	}
}

type recorder struct {
	h      http.Header
	status int
	body   strings.Builder
}

func newRecorder() *recorder                    { return &recorder{h: http.Header{}} }
func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

// TestRefusalInRealAuditLog runs a refused and a successful power call
// against the file-backed, hash-chained audit log and verifies the file.
func TestRefusalInRealAuditLog(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/audit.log"
	lg, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	h := newHarness(t, func(_ *api.Config, d *api.Deps) { d.Auditor = lg })
	p := fmt.Sprintf("/v1/resources/%d/power", h.blade)
	if a := h.do(h.client("viewer"), "PUT", p, map[string]string{"state": "OFF"}); a.status != http.StatusForbidden {
		t.Fatalf("viewer: %d", a.status)
	}
	if a := h.do(h.client("fencer"), "PUT", p, map[string]string{"state": "OFF"}); a.status != http.StatusOK {
		t.Fatalf("fencer: %d %s", a.status, a.body)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := audit.Verify(f)
	if err != nil || !rep.OK() || rep.Records != 3 {
		t.Fatalf("verify: %v %+v, want 3 records", err, rep)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i, want := range []string{`"actor":"hpiagent://client/viewer"`, `"result":"attempt"`, `"result":"ok"`} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], `"action":"power.set"`) {
			t.Errorf("audit line %d = %s, want %s", i+1, lines[i], want)
		}
	}
}

func TestConnectionLimitPerIP(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *api.Config, _ *api.Deps) { c.MaxConnectionsPerIP = 2 })
	var raw []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, c)
		defer c.Close()
	}
	// Both slots are held by connections that never finish a handshake.
	viewer := h.client("viewer")
	deadline := time.Now().Add(10 * time.Second)
	refused := false
	for !refused && time.Now().Before(deadline) {
		viewer.CloseIdleConnections()
		resp, err := viewer.Get(h.url + "/v1/whoami")
		if err != nil {
			refused = true
			break
		}
		resp.Body.Close()
		time.Sleep(10 * time.Millisecond) // the raw connections may not be accepted yet
	}
	if !refused {
		t.Fatal("a third connection from the same address was served")
	}
	raw[0].Close()
	var lastErr error
	for time.Now().Before(deadline) {
		viewer.CloseIdleConnections()
		resp, err := viewer.Get(h.url + "/v1/whoami")
		if err == nil {
			resp.Body.Close()
			lastErr = nil
			break
		}
		lastErr = err
		time.Sleep(10 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("no connection after a slot was freed: %v", lastErr)
	}
	a := h.do(viewer, "GET", "/metrics", nil)
	if !strings.Contains(string(a.body), "hpiagent_api_connections_refused_total") ||
		strings.Contains(string(a.body), "hpiagent_api_connections_refused_total 0\n") {
		t.Errorf("refused connections not counted:\n%s", grepLines(string(a.body), "connections_refused"))
	}
}
