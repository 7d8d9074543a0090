package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"hpiagent/api"
	"hpiagent/api/adapt"
	"hpiagent/api/audit"
)

func TestAuditAnchorsRoute(t *testing.T) {
	t.Parallel()
	book := audit.NewAnchorBook()
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	idx := uint64(0)
	add := func(node string, seq uint64) {
		idx++
		b, err := audit.EncodeAnchor(audit.NodeAnchor{Node: node, Seq: seq, Hash: fmt.Sprintf("%064x", seq), Time: at})
		if err != nil {
			t.Fatal(err)
		}
		if res, ok := book.Apply(idx, b).(error); ok {
			t.Fatal(res)
		}
	}
	add("node-a", 10)
	add("node-b", 7)
	add("node-a", 12)
	add("node-a", 11) // cut back: a conflict of node-a
	h := newHarness(t, func(_ *api.Config, d *api.Deps) { d.AuditAnchors = adapt.AuditAnchors(book) })
	v := h.client("viewer")

	var all api.AuditAnchorsView
	a := h.do(v, "GET", "/v1/audit/anchors", nil)
	if a.status != http.StatusOK || json.Unmarshal(a.body, &all) != nil {
		t.Fatalf("anchors: %d %s", a.status, a.body)
	}
	if len(all.Anchors) != 2 || all.Anchors[0].Node != "node-a" || all.Anchors[0].Seq != 11 || all.Anchors[1].Seq != 7 ||
		all.Anchors[0].Index != 4 || all.Anchors[0].Hash != fmt.Sprintf("%064x", 11) {
		t.Errorf("latest anchors %+v", all.Anchors)
	}
	if len(all.Conflicts) != 1 || all.Conflicts[0].Node != "node-a" || all.Conflicts[0].Earlier.Seq != 12 || all.Conflicts[0].Later.Seq != 11 {
		t.Errorf("conflicts %+v", all.Conflicts)
	}

	var one api.AuditAnchorsView
	a = h.do(v, "GET", "/v1/audit/anchors?node=node-b", nil)
	if a.status != http.StatusOK || json.Unmarshal(a.body, &one) != nil {
		t.Fatalf("anchors of node-b: %d %s", a.status, a.body)
	}
	if len(one.Anchors) != 1 || one.Anchors[0].Seq != 7 || len(one.Conflicts) != 0 {
		t.Errorf("node-b: %+v", one)
	}
	a = h.do(v, "GET", "/v1/audit/anchors?node=node-a", nil)
	if json.Unmarshal(a.body, &one) != nil || len(one.Anchors) != 3 || len(one.Conflicts) != 1 {
		t.Errorf("node-a: %d %s", a.status, a.body)
	}
	if a := h.do(v, "GET", "/v1/audit/anchors?node=bad%20name", nil); a.status != http.StatusBadRequest {
		t.Errorf("bad node name: %d %s", a.status, a.body)
	}

	// Without a cluster the route says so.
	h2 := newHarness(t, func(_ *api.Config, d *api.Deps) { d.AuditAnchors = nil })
	if a := h2.do(h2.client("viewer"), "GET", "/v1/audit/anchors", nil); a.status != http.StatusNotImplemented {
		t.Errorf("standalone: %d %s", a.status, a.body)
	}
}
