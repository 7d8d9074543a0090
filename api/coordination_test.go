package api_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"hpiagent/api"
	"hpiagent/api/apitest"
)

func TestCoordinationReads(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	v := h.client("viewer")

	a := h.do(v, "GET", "/v1/cluster", nil)
	var cl api.ClusterView
	if a.status != http.StatusOK || json.Unmarshal(a.body, &cl) != nil {
		t.Fatalf("cluster: %d %s", a.status, a.body)
	}
	if cl.Leader != "node-a" || cl.Term != 3 || !cl.Quorum || len(cl.Members) != 2 || cl.Members[1].State != "suspect" || !cl.Members[0].Self {
		t.Errorf("cluster view %+v", cl)
	}

	a = h.do(v, "GET", "/v1/fence", nil)
	var fl api.FenceListView
	if a.status != http.StatusOK || json.Unmarshal(a.body, &fl) != nil {
		t.Fatalf("fence list: %d %s", a.status, a.body)
	}
	if len(fl.Nodes) != 2 || fl.Nodes[0].Node != "node-b" || fl.Nodes[1].Power != "off" || fl.Nodes[1].Fence == nil || !fl.Nodes[1].Fence.Done {
		t.Errorf("fence list %+v", fl)
	}
	// The exact members cmd/fence_hpiagent reads.
	var raw map[string][]map[string]any
	_ = json.Unmarshal(a.body, &raw)
	for _, k := range []string{"node", "phase", "power"} {
		if _, ok := raw["nodes"][0][k]; !ok {
			t.Errorf("fence list element lacks %q: %s", k, a.body)
		}
	}

	a = h.do(v, "GET", "/v1/workflows", nil)
	var wfs []api.WorkflowView
	if a.status != http.StatusOK || json.Unmarshal(a.body, &wfs) != nil {
		t.Fatalf("workflows: %d %s", a.status, a.body)
	}
	if len(wfs) != 2 || wfs[0].ID != "wf-2" || wfs[1].ID != "wf-1" || wfs[1].WipeError == "" {
		t.Errorf("workflows %+v", wfs)
	}

	a = h.do(h.client("operator"), "GET", "/v1/erase-certificates", nil)
	var sums []api.EraseCertificateSummary
	if a.status != http.StatusOK || json.Unmarshal(a.body, &sums) != nil {
		t.Fatalf("certificates: %d %s", a.status, a.body)
	}
	if len(sums) != 1 || sums[0].ID != testCertID || sums[0].Outcome != "success" || sums[0].KeyID != "abcd" || sums[0].Error != "" {
		t.Errorf("certificate summaries %+v", sums)
	}
	a = h.do(h.client("diagnostics"), "GET", "/v1/erase-certificates/"+testCertID, nil)
	if a.status != http.StatusOK || string(a.body) != string(h.certs.Certs[testCertID]) {
		t.Errorf("certificate: %d %q, want the stored bytes unchanged", a.status, a.body)
	}

	a = h.do(v, "GET", fmt.Sprintf("/v1/resources/%d/sensors", h.blade), nil)
	var sensors []api.SensorView
	if a.status != http.StatusOK || json.Unmarshal(a.body, &sensors) != nil {
		t.Fatalf("sensors: %d %s", a.status, a.body)
	}
	if len(sensors) == 0 {
		t.Fatalf("no sensors: %s", a.body)
	}
	found := false
	for _, s := range sensors {
		if s.Num == apitest.BladeTempSensor {
			found = true
			if s.Reading == nil || fmt.Sprint(s.Reading.Value) != "41.5" {
				t.Errorf("temperature sensor %+v, want reading 41.5", s)
			}
		}
	}
	if !found {
		t.Errorf("sensor %d missing from %s", apitest.BladeTempSensor, a.body)
	}

	for _, tt := range []struct {
		client, path string
		status       int
		code         string
	}{
		{"viewer", "/v1/fence/node-z", 404, api.CodeNotFound},
		{"viewer", "/v1/fence/bad%20name", 400, api.CodeBadRequest},
		{"viewer", "/v1/workflows/nope", 404, api.CodeNotFound},
		{"operator", "/v1/erase-certificates/" + strings.Repeat("f", 32), 404, api.CodeNotFound},
		{"operator", "/v1/erase-certificates/..%2Fetc", 400, api.CodeBadRequest},
		{"viewer", "/v1/resources/4242/sensors", 404, api.CodeNotFound},
	} {
		a := h.do(h.client(tt.client), "GET", tt.path, nil)
		if a.status != tt.status || a.errorCode() != tt.code {
			t.Errorf("GET %s: %d %s, want %d %s", tt.path, a.status, a.body, tt.status, tt.code)
		}
	}
	if n := len(h.aud.Records()); n != 0 {
		t.Errorf("reads audited: %+v", h.aud.Records())
	}
}

func TestCoordinationActionsAudited(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tests := []struct {
		client, path string
		body         any
		status       int
		action       string
		call         apitest.CoordCall
		fencing      bool
	}{
		{"fencer", "/v1/fence/node-b", map[string]string{"action": "off"}, 202, "fence.action",
			apitest.CoordCall{Op: "Fence", Target: "node-b", Actor: identity("fencer"), Arg: "off"}, true},
		{"admin", "/v1/fence/node-c", map[string]string{"action": "on", "reason": "repaired"}, 202, "fence.action",
			apitest.CoordCall{Op: "Unfence", Target: "node-c", Actor: identity("admin"), Arg: "on"}, true},
		{"fencer", "/v1/fence/node-b", map[string]string{"action": "REBOOT"}, 202, "fence.action",
			apitest.CoordCall{Op: "Fence", Target: "node-b", Actor: identity("fencer"), Arg: "reboot"}, true},
		{"operator", fmt.Sprintf("/v1/resources/%d/extract", h.blade2), map[string]string{"reason": "replace board"}, 202, "workflow.extract",
			apitest.CoordCall{Op: "Extract", Target: apitest.BladePath(6).String(), Actor: identity("operator"), Arg: "replace board"}, false},
		{"admin", "/v1/workflows/wf-1/override", map[string]string{"reason": "disk physically destroyed"}, 200, "workflow.override",
			apitest.CoordCall{Op: "Override", Target: "wf-1", Actor: identity("admin"), Arg: "disk physically destroyed"}, false},
		{"operator", "/v1/workflows/wf-1/retry", nil, 200, "workflow.retry",
			apitest.CoordCall{Op: "Retry", Target: "wf-1", Actor: identity("operator")}, false},
		{"operator", "/v1/workflows/wf-1/abort", map[string]string{"reason": "wrong slot"}, 200, "workflow.abort",
			apitest.CoordCall{Op: "Abort", Target: "wf-1", Actor: identity("operator"), Arg: "wrong slot"}, false},
	}
	for _, tt := range tests {
		nRecs := len(h.aud.Records())
		nCalls := len(h.fen.Calls()) + len(h.wfs.Calls())
		a := h.do(h.client(tt.client), "POST", tt.path, tt.body)
		if a.status != tt.status {
			t.Errorf("POST %s: %d %s, want %d", tt.path, a.status, a.body, tt.status)
			continue
		}
		var calls []apitest.CoordCall
		if tt.fencing {
			calls = h.fen.Calls()
		} else {
			calls = h.wfs.Calls()
		}
		if len(h.fen.Calls())+len(h.wfs.Calls()) != nCalls+1 || calls[len(calls)-1] != tt.call {
			t.Errorf("POST %s: calls %+v, want %+v last", tt.path, calls, tt.call)
		}
		recs := h.aud.Records()[nRecs:]
		if len(recs) != 2 || recs[0].Result != "attempt" || recs[1].Result != "ok" || recs[0].Action != tt.action ||
			recs[0].Actor != identity(tt.client) || recs[0].Target == "" || recs[0].Target != recs[1].Target {
			t.Errorf("POST %s: audit %+v, want attempt then ok of %s", tt.path, recs, tt.action)
		}
		if r, ok := tt.body.(map[string]string); ok && r["reason"] != "" && tt.action != "fence.action" && !strings.Contains(recs[0].Detail, r["reason"]) {
			t.Errorf("POST %s: audit detail %q lacks the reason", tt.path, recs[0].Detail)
		}
		if tt.fencing {
			var o api.FenceOutcome
			if err := json.Unmarshal(a.body, &o); err != nil || o.Op == "" || o.Phase == "" {
				t.Errorf("POST %s: answer %s lacks op and phase", tt.path, a.body)
			}
		}
	}
}

func TestCoordinationRefusalsAudited(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tests := []struct {
		name, client, path string
		body               any
		status             int
		code               string
		attempted          bool // an attempt record precedes the result
	}{
		{"override without reason", "admin", "/v1/workflows/wf-1/override", map[string]string{}, 400, api.CodeBadRequest, false},
		{"override with blank reason", "admin", "/v1/workflows/wf-1/override", map[string]string{"reason": "  "}, 400, api.CodeBadRequest, false},
		{"override by operator", "operator", "/v1/workflows/wf-1/override", map[string]string{"reason": "x"}, 403, api.CodeForbidden, false},
		{"override of a workflow whose wipe did not fail", "admin", "/v1/workflows/wf-2/override", map[string]string{"reason": "x"}, 409, api.CodeInvalidState, true},
		{"override of an unknown workflow", "admin", "/v1/workflows/wf-9/override", map[string]string{"reason": "x"}, 404, api.CodeNotFound, false},
		{"reason with a newline", "operator", "/v1/workflows/wf-1/abort", map[string]string{"reason": "a\nb"}, 400, api.CodeBadRequest, false},
		{"reason too long", "operator", "/v1/workflows/wf-1/abort", map[string]string{"reason": strings.Repeat("x", 600)}, 400, api.CodeBadRequest, false},
		{"unknown fence action", "fencer", "/v1/fence/node-b", map[string]string{"action": "explode"}, 400, api.CodeBadRequest, false},
		{"fence body with unknown member", "fencer", "/v1/fence/node-b", map[string]string{"action": "off", "force": "yes"}, 400, api.CodeBadRequest, false},
		{"fence of an unknown node", "fencer", "/v1/fence/node-z", map[string]string{"action": "off"}, 404, api.CodeNotFound, true},
		{"fence by operator", "operator", "/v1/fence/node-b", map[string]string{"action": "off"}, 403, api.CodeForbidden, false},
		{"extract of a non-FRU", "operator", "/v1/resources/4242/extract", nil, 404, api.CodeNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nRecs := len(h.aud.Records())
			nCalls := len(h.fen.Calls()) + len(h.wfs.Calls())
			a := h.do(h.client(tt.client), "POST", tt.path, tt.body)
			if a.status != tt.status || a.errorCode() != tt.code {
				t.Fatalf("%d %s, want %d %s", a.status, a.body, tt.status, tt.code)
			}
			if n := len(h.fen.Calls()) + len(h.wfs.Calls()); n != nCalls {
				t.Errorf("the coordinator was called")
			}
			recs := h.aud.Records()[nRecs:]
			var results []string
			for _, r := range recs {
				results = append(results, r.Result)
			}
			want := []string{tt.code}
			if tt.attempted {
				want = []string{"attempt", tt.code}
			}
			if !slices.Equal(results, want) || recs[0].Actor != identity(tt.client) {
				t.Errorf("audit %+v, want results %v", recs, want)
			}
		})
	}
}

func TestNotLeader(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.fen.NotLeader, h.wfs.NotLeader = "node-b", "node-b"
	h.fen.NotLeaderAPI, h.wfs.NotLeaderAPI = "https://10.0.0.2:8443", "https://10.0.0.2:8443"
	for _, tt := range []struct{ client, path string }{
		{"fencer", "/v1/fence/node-c"},
		{"operator", fmt.Sprintf("/v1/resources/%d/extract", h.blade)},
		{"operator", "/v1/workflows/wf-1/abort"},
		{"operator", "/v1/workflows/wf-1/retry"},
		{"admin", "/v1/workflows/wf-1/override"},
	} {
		body := map[string]string{"reason": "r"}
		if strings.HasPrefix(tt.path, "/v1/fence") {
			body = map[string]string{"action": "off"}
		}
		nRecs := len(h.aud.Records())
		a := h.do(h.client(tt.client), "POST", tt.path, body)
		var eb api.ErrorBody
		_ = json.Unmarshal(a.body, &eb)
		if a.status != http.StatusServiceUnavailable || eb.Error.Code != api.CodeNotLeader || eb.Error.Leader != "node-b" || eb.Error.LeaderAPI != "https://10.0.0.2:8443" {
			t.Errorf("POST %s on a follower: %d %s, want 503 not_leader naming node-b", tt.path, a.status, a.body)
		}
		recs := h.aud.Records()[nRecs:]
		if len(recs) != 2 || recs[0].Result != "attempt" || recs[1].Result != api.CodeNotLeader {
			t.Errorf("POST %s: audit %+v, want attempt then not_leader", tt.path, recs)
		}
	}
	if c := append(h.fen.Calls(), h.wfs.Calls()...); len(c) != 0 {
		t.Errorf("calls recorded on a follower: %+v", c)
	}
}

func TestNotConfigured(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(_ *api.Config, d *api.Deps) {
		d.Cluster, d.Fencing, d.Workflows, d.EraseCertificates = nil, nil, nil, nil
	})
	for _, tt := range []struct {
		client, method, path string
		body                 any
	}{
		{"viewer", "GET", "/v1/cluster", nil},
		{"viewer", "GET", "/v1/fence", nil},
		{"viewer", "GET", "/v1/fence/node-b", nil},
		{"fencer", "POST", "/v1/fence/node-b", map[string]string{"action": "off"}},
		{"viewer", "GET", "/v1/workflows", nil},
		{"viewer", "GET", "/v1/workflows/wf-1", nil},
		{"operator", "POST", fmt.Sprintf("/v1/resources/%d/extract", h.blade), nil},
		{"admin", "POST", "/v1/workflows/wf-1/override", map[string]string{"reason": "r"}},
		{"operator", "POST", "/v1/workflows/wf-1/abort", nil},
		{"operator", "POST", "/v1/workflows/wf-1/retry", nil},
		{"operator", "GET", "/v1/erase-certificates", nil},
		{"operator", "GET", "/v1/erase-certificates/" + testCertID, nil},
	} {
		nRecs := len(h.aud.Records())
		a := h.do(h.client(tt.client), tt.method, tt.path, tt.body)
		if a.status != http.StatusNotImplemented || a.errorCode() != api.CodeNotConfigured {
			t.Errorf("%s %s: %d %s, want 501 not_configured", tt.method, tt.path, a.status, a.body)
		}
		recs := h.aud.Records()[nRecs:]
		if tt.method == "POST" && (len(recs) != 1 || recs[0].Result != api.CodeNotConfigured) {
			t.Errorf("%s %s: audit %+v, want one not_configured record", tt.method, tt.path, recs)
		}
	}
}

func TestFenceFailsClosedWithoutAudit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.aud.Fail(errors.New("disk full"))
	a := h.do(h.client("fencer"), "POST", "/v1/fence/node-b", map[string]string{"action": "off"})
	if a.status != http.StatusServiceUnavailable || a.errorCode() != api.CodeAuditUnavailable {
		t.Fatalf("%d %s, want 503 audit_unavailable", a.status, a.body)
	}
	if c := h.fen.Calls(); len(c) != 0 {
		t.Errorf("fence requested without an audit record: %+v", c)
	}
}
