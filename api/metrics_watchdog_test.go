package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"hpiagent/api"
)

// scrape reads /metrics as a viewer and returns a function finding the
// value of the metric name with the label k=v (any when k is "").
func scrape(t *testing.T, h *harness) func(name, k, v string) (float64, bool) {
	t.Helper()
	a := h.do(h.client("viewer"), "GET", "/metrics", nil)
	if a.status != http.StatusOK {
		t.Fatalf("metrics: %d %s", a.status, a.body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(a.body)))
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	return func(name, k, v string) (float64, bool) {
		f, ok := fams[name]
		if !ok {
			return 0, false
		}
		for _, m := range f.Metric {
			match := k == ""
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					match = true
				}
			}
			switch {
			case !match:
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			}
		}
		return 0, false
	}
}

// TestWatchdogMetrics: the watchdog feeder's state from the health
// source is exported per device and per health check; without a feeder
// no watchdog metric is.
func TestWatchdogMetrics(t *testing.T) {
	t.Parallel()
	last := time.Date(2026, 11, 23, 19, 0, 0, 500_000_000, time.UTC)
	withheld := &api.WatchdogHealth{
		Feeding: false, Reason: "health checks failing: api", Withheld: 12500 * time.Millisecond,
		Clustered: true, QuorumLost: 3 * time.Second,
		Checks: []string{"shelf-loops", "api"}, FailingChecks: []string{"api"},
		Devices: []api.WatchdogDeviceHealth{
			{Name: "systemd", Armed: true, Feeds: 40, LastFeed: last},
			{Name: "ipmi-bmc (IPMB 0x82)", Armed: false, Errors: 7},
		},
	}
	feeding := &api.WatchdogHealth{Feeding: true, Checks: []string{"api"},
		Devices: []api.WatchdogDeviceHealth{{Name: "systemd", Armed: true, Fed: true, Feeds: 41, LastFeed: last}}}
	fencing := &api.WatchdogHealth{SelfFencing: true, Reason: "no quorum since ...: self-fencing", Withheld: time.Second,
		Clustered: true, QuorumLost: 20 * time.Second, Devices: []api.WatchdogDeviceHealth{{Name: "/dev/watchdog", Armed: true, Feeds: 9}}}
	type want struct {
		name, k, v string
		val        float64
		present    bool
	}
	tests := []struct {
		name string
		wd   *api.WatchdogHealth
		want []want
	}{
		{"withheld", withheld, []want{
			{"hpiagent_watchdog_feeding", "device", "systemd", 0, true},
			{"hpiagent_watchdog_armed", "device", "systemd", 1, true},
			{"hpiagent_watchdog_armed", "device", "ipmi-bmc (IPMB 0x82)", 0, true},
			{"hpiagent_watchdog_feeds_total", "device", "systemd", 40, true},
			{"hpiagent_watchdog_errors_total", "device", "ipmi-bmc (IPMB 0x82)", 7, true},
			{"hpiagent_watchdog_last_feed_timestamp_seconds", "device", "systemd", float64(last.UnixNano()) / 1e9, true},
			{"hpiagent_watchdog_last_feed_timestamp_seconds", "device", "ipmi-bmc (IPMB 0x82)", 0, false},
			{"hpiagent_watchdog_withheld_seconds", "", "", 12.5, true},
			{"hpiagent_watchdog_quorum_lost_seconds", "", "", 3, true},
			{"hpiagent_watchdog_self_fencing", "", "", 0, true},
			{"hpiagent_watchdog_health_check_failing", "check", "api", 1, true},
			{"hpiagent_watchdog_health_check_failing", "check", "shelf-loops", 0, true},
		}},
		{"feeding", feeding, []want{
			{"hpiagent_watchdog_feeding", "device", "systemd", 1, true},
			{"hpiagent_watchdog_feeds_total", "device", "systemd", 41, true},
			{"hpiagent_watchdog_withheld_seconds", "", "", 0, true},
			{"hpiagent_watchdog_health_check_failing", "check", "api", 0, true},
		}},
		{"self-fencing", fencing, []want{
			{"hpiagent_watchdog_self_fencing", "", "", 1, true},
			{"hpiagent_watchdog_feeding", "device", "/dev/watchdog", 0, true},
			{"hpiagent_watchdog_armed", "device", "/dev/watchdog", 1, true},
			{"hpiagent_watchdog_quorum_lost_seconds", "", "", 20, true},
		}},
		{"no feeder", nil, []want{
			{"hpiagent_watchdog_feeding", "", "", 0, false},
			{"hpiagent_watchdog_withheld_seconds", "", "", 0, false},
			{"hpiagent_watchdog_self_fencing", "", "", 0, false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hs := health{api.Health{Watchdog: tc.wd}}
			h := newHarness(t, func(_ *api.Config, d *api.Deps) { d.Health = hs })
			find := scrape(t, h)
			for _, w := range tc.want {
				got, ok := find(w.name, w.k, w.v)
				if ok != w.present || got != w.val {
					t.Errorf("%s{%s=%q} = %v (present %v), want %v (present %v)", w.name, w.k, w.v, got, ok, w.val, w.present)
				}
			}
		})
	}
}
