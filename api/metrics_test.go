package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"hpiagent/api"
	"hpiagent/api/apitest"
)

type health struct{ h api.Health }

func (h health) Health() api.Health { return h.h }

func TestMetrics(t *testing.T) {
	t.Parallel()
	hs := health{api.Health{
		Sessions: []api.SessionHealth{
			{Shelf: "shelf-a", Up: true, Sent: 100, Retries: 3, Timeouts: 1, Reconnects: 2, Rejected: map[string]uint64{"integrity": 4}},
			{Shelf: "shelf-b", Up: false},
		},
		EventQueueDepth: 7,
		TrapsRejected:   map[string]uint64{"replay": 5},
	}}
	h := newHarness(t, func(_ *api.Config, d *api.Deps) { d.Health = hs })
	h.do(h.client("viewer"), "GET", "/v1/resources", nil)
	a := h.do(h.client("viewer"), "GET", "/metrics", nil)
	if a.status != http.StatusOK {
		t.Fatalf("metrics: %d %s", a.status, a.body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(a.body)))
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	find := func(name string, labels map[string]string) (float64, bool) {
		f, ok := fams[name]
		if !ok {
			return 0, false
		}
	next:
		for _, m := range f.Metric {
			got := map[string]string{}
			for _, l := range m.Label {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			}
		}
		return 0, false
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"hpiagent_sensor_value", map[string]string{"entity_path": apitest.BladePath(5).String(), "sensor": "CPU Temp",
			"resource_id": fmt.Sprint(h.blade), "sensor_num": "3", "units": "DEGREES_C"}, 41.5},
		{"hpiagent_sensor_value", map[string]string{"entity_path": apitest.BladePath(6).String(), "sensor": "CPU Temp"}, 38},
		{"hpiagent_ipmi_session_up", map[string]string{"shelf": "shelf-a"}, 1},
		{"hpiagent_ipmi_session_up", map[string]string{"shelf": "shelf-b"}, 0},
		{"hpiagent_ipmi_retries_total", map[string]string{"shelf": "shelf-a"}, 3},
		{"hpiagent_ipmi_rejected_packets_total", map[string]string{"shelf": "shelf-a", "reason": "integrity"}, 4},
		{"hpiagent_event_queue_depth", map[string]string{"queue": "agent"}, 7},
		{"hpiagent_snmp_traps_rejected_total", map[string]string{"reason": "replay"}, 5},
		{"hpiagent_alarms_active", map[string]string{"severity": "MAJOR"}, 0},
	}
	for _, tt := range tests {
		got, ok := find(tt.name, tt.labels)
		if !ok || got != tt.want {
			t.Errorf("%s%v = %v (found %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	if v, ok := find("hpiagent_api_requests_total", map[string]string{"route": "GET /v1/resources", "code": "200"}); !ok || v != 1 {
		t.Errorf("request counter %v %v, want 1", v, ok)
	}
}

// TestBenchmarkDomain checks the synthetic domain for benchmarks: n sensors,
// every one exported.
func TestBenchmarkDomain(t *testing.T) {
	t.Parallel()
	d, err := apitest.SyntheticDomain(150)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(_ *api.Config, deps *api.Deps) { deps.Domain = d })
	a := h.do(h.client("viewer"), "GET", "/metrics", nil)
	if n := strings.Count(string(a.body), "\nhpiagent_sensor_value{"); n != 150 {
		t.Errorf("%d sensor values exported, want 150", n)
	}
}
