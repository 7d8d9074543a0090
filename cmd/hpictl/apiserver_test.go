package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/api"
	"hpiagent/api/apitest"
	"hpiagent/api/audit"
	"hpiagent/cmd/hpictl/internal/apiclient"
	"hpiagent/hpi"
	"hpiagent/internal/pki"
)

// auditLog adapts api/audit.Log to the API's Auditor.
type auditLog struct{ l *audit.Log }

func (a auditLog) Append(ctx context.Context, r api.AuditRecord) error {
	return a.l.Append(ctx, audit.Record(r))
}

// realAgent is the real API server (package api) over mutual TLS with
// certificates from this PKI, a domain holding one blade, a recording
// hardware stand-in and a real audit log.
type realAgent struct {
	url, auditPath string
	dir            string
	dom            *hpi.Domain
	blade          hpi.ResourceID
	hw             *apitest.Hardware
}

func startRealAgent(t *testing.T) *realAgent {
	t.Helper()
	return startRealAgentWith(t, nil)
}

// startRealAgentWith is startRealAgent with mod applied to the deps; it
// also issues an "admin" client certificate with the admin role.
func startRealAgentWith(t *testing.T, mod func(*api.Deps)) *realAgent {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("lab", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, req := range []pki.IssueRequest{
		{Name: "agent", Kind: pki.KindServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: time.Hour},
		{Name: "ops", Kind: pki.KindClient, Validity: time.Hour},
		{Name: "viewer", Kind: pki.KindClient, Validity: time.Hour},
		{Name: "nobody", Kind: pki.KindClient, Validity: time.Hour},
		{Name: "admin", Kind: pki.KindClient, Validity: time.Hour},
	} {
		c, err := ca.Issue(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Save(dir); err != nil {
			t.Fatal(err)
		}
	}
	ra := &realAgent{dir: dir, auditPath: filepath.Join(dir, "audit.log"), hw: &apitest.Hardware{Power: hpi.PowerOn}}
	al, err := audit.Open(ra.auditPath, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	ra.dom = hpi.NewDomain(hpi.Config{EventLogSize: 64, EventLogOverflow: hpi.OverflowOverwrite})
	if ra.blade, err = apitest.AddBlade(ra.dom, 5, 41.5); err != nil {
		t.Fatal(err)
	}
	deps := api.Deps{Domain: ra.dom, Hardware: ra.hw, Auditor: auditLog{al}}
	if mod != nil {
		mod(&deps)
	}
	srv, err := api.New(api.Config{
		CertFile: pki.CertFile(dir, "agent"), KeyFile: pki.KeyFile(dir, "agent"),
		ClientCAFile: filepath.Join(dir, pki.CACertFile),
		Identity:     pki.Identity,
		Roles: map[string][]api.Role{
			"hpiagent://client/ops":    {api.RoleOperator},
			"hpiagent://client/viewer": {api.RoleViewer},
			"hpiagent://client/admin":  {api.RoleAdmin},
		},
		RateLimit: 1000, RateBurst: 1000, KeepAlive: time.Second,
	}, deps)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ra.url = "https://" + l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	return ra
}

func (ra *realAgent) as(who string, args ...string) []string {
	return append(args, "--endpoint", ra.url, "--ca", filepath.Join(ra.dir, pki.CACertFile),
		"--cert", pki.CertFile(ra.dir, who), "--key", pki.KeyFile(ra.dir, who))
}

// TestAgainstRealAPIServer runs hpictl against the API server itself.
func TestAgainstRealAPIServer(t *testing.T) {
	t.Parallel()
	ra := startRealAgent(t)
	id := fmt.Sprint(ra.blade)
	path := apitest.BladePath(5).String()
	tests := []struct {
		who      string
		args     []string
		wantCode int
		want     string // in stdout (or stderr when the call fails)
	}{
		{"ops", []string{"whoami"}, 0, "hpiagent://client/ops"},
		{"nobody", []string{"whoami"}, 0, "hpiagent://client/nobody"},
		{"nobody", []string{"resources"}, ExitRefused, "no_role"},
		{"viewer", []string{"resources"}, 0, "blade 5"},
		{"viewer", []string{"resource", path}, 0, path},
		{"viewer", []string{"rdrs", id}, 0, "CPU Temp"},
		{"viewer", []string{"sensors"}, 0, "41.5"},
		{"viewer", []string{"sensor", id, "3"}, 0, "41.5 °C"},
		{"viewer", []string{"inventory", id}, 0, "SN-0005"},
		{"viewer", []string{"hotswap", id}, 0, "INACTIVE"},
		{"viewer", []string{"power", id}, 0, "power ON"},
		{"viewer", []string{"power", id, "off"}, ExitRefused, "forbidden"},
		{"ops", []string{"led", id, fmt.Sprint(apitest.BladeLED), "on"}, 0, "DIGITAL ON"},
		{"ops", []string{"reset", id, "cold"}, ExitRefused, "forbidden"},
		{"viewer", []string{"resource", "4242"}, ExitNotFound, "not_found"},
		{"viewer", []string{"alarms"}, 0, "ID"},
		{"viewer", []string{"eventlog"}, 0, "ID"},
		{"viewer", []string{"openapi"}, 0, "openapi"},
	}
	for _, tc := range tests {
		code, out, errs := runCLI(t, nil, ra.as(tc.who, tc.args...)...)
		if code != tc.wantCode {
			t.Errorf("%s %v: exit %d, want %d\n%s%s", tc.who, tc.args, code, tc.wantCode, out, errs)
			continue
		}
		if !strings.Contains(out+errs, tc.want) {
			t.Errorf("%s %v: output lacks %q:\n%s%s", tc.who, tc.args, tc.want, out, errs)
		}
	}
	for _, c := range ra.hw.Calls() {
		if c.Op != "PowerState" && c.Op != "SetControl" {
			t.Errorf("hardware call %+v: a refused action reached the hardware", c)
		}
	}
	// Every state change and refusal went to the audit log, which verifies.
	code, out, errs := runCLI(t, nil, "audit", "verify", ra.auditPath)
	if code != 0 || !strings.Contains(out, "chain intact") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, errs)
	}
}

// TestFollowRealStream follows the real event stream while events are
// published, and checks each is printed once and in order.
func TestFollowRealStream(t *testing.T) {
	t.Parallel()
	ra := startRealAgent(t)
	publish := func(n int) {
		for i := 0; i < n; i++ {
			if _, _, err := ra.dom.Publish(hpi.Event{Type: hpi.EventUser, Severity: hpi.Informational, User: hpi.UserEvent{Data: "note"}}, ""); err != nil {
				t.Error(err)
			}
		}
	}
	publish(3) // logged before the client starts (after the blade's RESOURCE event): shown with --after 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{stop: `"id":7,`, cancel: cancel}
	var errb strings.Builder
	var wg sync.WaitGroup
	a := &app{stdout: out, stderr: &errb, getenv: func(string) string { return "" }}
	wg.Go(func() {
		if code := a.run(ctx, ra.as("viewer", "events", "--follow", "--after", "0", "--json")); code != 0 {
			t.Errorf("exit %d: %s", code, errb.String())
		}
	})
	// Live events: published until the client has printed them (the
	// stream starts asynchronously, so wait for the backlog first).
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), `"id":4,`) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	publish(3)
	wg.Wait()
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var id int
		fmt.Sscanf(line, `{"id":%d`, &id)
		ids = append(ids, fmt.Sprint(id))
	}
	if got := strings.Join(ids, " "); got != "1 2 3 4 5 6 7" {
		t.Fatalf("events %q, want 1 to 7 once each\n%s", got, out.String())
	}
}

// TestShapesMatchServer holds the client's JSON shapes to the server's
// types: the same members, of the same kinds, recursively.
func TestShapesMatchServer(t *testing.T) {
	t.Parallel()
	pairs := []struct{ client, server any }{
		{apiclient.Resource{}, api.ResourceView{}},
		{apiclient.RDR{}, api.RDRView{}},
		{apiclient.Sensor{}, api.SensorView{}},
		{apiclient.Inventory{}, api.InventoryView{}},
		{apiclient.HotSwap{}, api.HotSwapView{}},
		{apiclient.HotSwapRequest{}, api.HotSwapRequest{}},
		{apiclient.Power{}, api.PowerView{}},
		{apiclient.PowerRequest{}, api.PowerRequest{}},
		{apiclient.ResetRequest{}, api.ResetRequest{}},
		{apiclient.Reset{}, api.ResetView{}},
		{apiclient.ControlRequest{}, api.ControlRequest{}},
		{apiclient.Event{}, api.EventView{}},
		{apiclient.Alarm{}, api.AlarmView{}},
		{apiclient.EventLog{}, api.EventLogView{}},
		{apiclient.WhoAmI{}, api.WhoAmI{}},
		{apiclient.Gap{}, api.GapView{}},
		{apiclient.StreamReset{}, api.StreamResetView{}},
		{apiclient.ErrorBody{}, api.ErrorBody{}},
		{apiclient.Cluster{}, api.ClusterView{}},
		{apiclient.FenceNode{}, api.FenceNodeView{}},
		{apiclient.FenceList{}, api.FenceListView{}},
		{apiclient.FenceRequest{}, api.FenceRequest{}},
		{apiclient.FenceOutcome{}, api.FenceOutcome{}},
		{apiclient.Workflow{}, api.WorkflowView{}},
		{apiclient.WorkflowRequest{}, api.WorkflowRequest{}},
		{apiclient.WorkflowStarted{}, api.WorkflowStarted{}},
		{apiclient.EraseCertificateSummary{}, api.EraseCertificateSummary{}},
		{apiclient.AuditAnchors{}, api.AuditAnchorsView{}},
	}
	for _, p := range pairs {
		ct, st := reflect.TypeOf(p.client), reflect.TypeOf(p.server)
		for _, d := range diffShapes(ct, st, ct.Name()) {
			t.Errorf("%s vs api.%s: %s", ct.Name(), st.Name(), d)
		}
	}
}

var timeType = reflect.TypeOf(time.Time{})

// diffShapes lists the differences between the JSON forms of two types.
func diffShapes(c, s reflect.Type, at string) []string {
	for c.Kind() == reflect.Pointer {
		c = c.Elem()
	}
	for s.Kind() == reflect.Pointer {
		s = s.Elem()
	}
	if c == timeType || s == timeType {
		if c != s {
			return []string{at + ": time vs not time"}
		}
		return nil
	}
	if c.Kind() != s.Kind() {
		return []string{fmt.Sprintf("%s: %s vs %s", at, c.Kind(), s.Kind())}
	}
	switch c.Kind() {
	case reflect.Slice, reflect.Array:
		return diffShapes(c.Elem(), s.Elem(), at+"[]")
	case reflect.Struct:
		cf, sf := jsonFields(c), jsonFields(s)
		var out []string
		for name, ct := range cf {
			st, ok := sf[name]
			if !ok {
				out = append(out, at+"."+name+": not sent by the server")
				continue
			}
			out = append(out, diffShapes(ct, st, at+"."+name)...)
		}
		for name := range sf {
			if _, ok := cf[name]; !ok {
				out = append(out, at+"."+name+": missing in the client")
			}
		}
		return out
	}
	return nil
}

func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
