package api

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"hpiagent/hpi"
)

// metrics are the server's Prometheus metrics in a registry of its own.
type metrics struct {
	reg               *prometheus.Registry
	handler           http.Handler
	requests          *prometheus.CounterVec
	duration          *prometheus.HistogramVec
	refused           *prometheus.CounterVec
	rateLimited       prometheus.Counter
	auditFailures     prometheus.Counter
	handshakeFailures prometheus.Counter
	streamsOpened     prometheus.Counter
	connsRefused      prometheus.Counter
	streamOverflows   prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hpiagent_api_requests_total",
			Help: "API requests by route and HTTP status."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hpiagent_api_request_duration_seconds",
			Help: "API request duration by route (event streams: the whole stream).", Buckets: prometheus.DefBuckets}, []string{"route"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hpiagent_api_refused_total",
			Help: "API calls refused before their handler ran, by error code."}, []string{"code"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{Name: "hpiagent_api_rate_limited_total",
			Help: "API calls refused by the per-client rate limit."}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "hpiagent_api_audit_failures_total",
			Help: "Audit records that could not be written."}),
		handshakeFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "hpiagent_api_tls_handshake_failures_total",
			Help: "TLS handshakes refused (no client certificate, unknown CA, old TLS version, ...)."}),
		connsRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "hpiagent_api_connections_refused_total",
			Help: "Connections closed at once because a connection limit was reached."}),
		streamsOpened: prometheus.NewCounter(prometheus.CounterOpts{Name: "hpiagent_api_event_streams_opened_total",
			Help: "Event streams opened."}),
		streamOverflows: prometheus.NewCounter(prometheus.CounterOpts{Name: "hpiagent_api_event_stream_overflows_total",
			Help: "Times an event stream's queue overflowed and it caught up from the event log."}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.refused, m.rateLimited, m.auditFailures, m.handshakeFailures,
		m.streamsOpened, m.connsRefused, m.streamOverflows, &modelCollector{s: s})
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

// Registry returns the server's metric registry, for the daemon to add
// its own collectors.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

func (s *Server) getMetrics(c *call) (any, error) {
	s.metrics.handler.ServeHTTP(c.w, c.r)
	return handled{}, nil
}

var (
	descSensor = prometheus.NewDesc("hpiagent_sensor_value",
		"Current reading of a numeric sensor in its base units.",
		[]string{"resource_id", "entity_path", "sensor", "sensor_num", "units"}, nil)
	descSensorState = prometheus.NewDesc("hpiagent_sensor_event_state",
		"Current event state bits of a sensor (SaHpiEventStateT).",
		[]string{"resource_id", "entity_path", "sensor", "sensor_num"}, nil)
	descResourceFailed = prometheus.NewDesc("hpiagent_resource_failed",
		"1 when the resource is marked failed.", []string{"resource_id", "entity_path"}, nil)
	descAlarms = prometheus.NewDesc("hpiagent_alarms_active",
		"Active alarms by severity.", []string{"severity"}, nil)
	descLastEvent = prometheus.NewDesc("hpiagent_last_event_id",
		"ID of the last event published in the domain.", nil, nil)
	descEventLog = prometheus.NewDesc("hpiagent_event_log_entries",
		"Entries in the domain event log.", nil, nil)
	descEventLogDropped = prometheus.NewDesc("hpiagent_event_log_dropped",
		"Events dropped or overwritten by the domain event log since it was cleared.", nil, nil)
	descStreams = prometheus.NewDesc("hpiagent_api_event_streams",
		"Open event streams.", nil, nil)
	descQueue = prometheus.NewDesc("hpiagent_event_queue_depth",
		"Events waiting in queues, by queue.", []string{"queue"}, nil)
	descSessionUp = prometheus.NewDesc("hpiagent_ipmi_session_up",
		"1 when the IPMI session to the shelf is established.", []string{"shelf"}, nil)
	descSessionSent = prometheus.NewDesc("hpiagent_ipmi_packets_sent_total",
		"IPMI packets sent.", []string{"shelf"}, nil)
	descSessionRetries = prometheus.NewDesc("hpiagent_ipmi_retries_total",
		"Retransmissions of read-only IPMI requests.", []string{"shelf"}, nil)
	descSessionTimeouts = prometheus.NewDesc("hpiagent_ipmi_timeouts_total",
		"IPMI request attempts that timed out.", []string{"shelf"}, nil)
	descSessionReconnects = prometheus.NewDesc("hpiagent_ipmi_reconnects_total",
		"IPMI sessions re-established after loss.", []string{"shelf"}, nil)
	descRejected = prometheus.NewDesc("hpiagent_ipmi_rejected_packets_total",
		"IPMI packets dropped, by reason.", []string{"shelf", "reason"}, nil)
	descTrapsRejected = prometheus.NewDesc("hpiagent_snmp_traps_rejected_total",
		"SNMP traps refused, by reason.", []string{"reason"}, nil)
	descWatchdogFeeding = prometheus.NewDesc("hpiagent_watchdog_feeding",
		"1 when the watchdog device was fed at the last feeding round.", []string{"device"}, nil)
	descWatchdogArmed = prometheus.NewDesc("hpiagent_watchdog_armed",
		"1 when the watchdog device is armed.", []string{"device"}, nil)
	descWatchdogFeeds = prometheus.NewDesc("hpiagent_watchdog_feeds_total",
		"Successful feeds of the watchdog device.", []string{"device"}, nil)
	descWatchdogErrors = prometheus.NewDesc("hpiagent_watchdog_errors_total",
		"Failed arms, feeds and disarms of the watchdog device.", []string{"device"}, nil)
	descWatchdogLastFeed = prometheus.NewDesc("hpiagent_watchdog_last_feed_timestamp_seconds",
		"Time of the last successful feed of the watchdog device (Unix seconds).", []string{"device"}, nil)
	descWatchdogWithheld = prometheus.NewDesc("hpiagent_watchdog_withheld_seconds",
		"How long feeding the watchdogs has been withheld (0 while fed).", nil, nil)
	descWatchdogSelfFencing = prometheus.NewDesc("hpiagent_watchdog_self_fencing",
		"1 once feeding stopped for good after a quorum loss: the node is about to be reset.", nil, nil)
	descWatchdogQuorumLost = prometheus.NewDesc("hpiagent_watchdog_quorum_lost_seconds",
		"How long the node has been without cluster quorum as the watchdog feeder sees it (0 with quorum or without a cluster).", nil, nil)
	descWatchdogCheck = prometheus.NewDesc("hpiagent_watchdog_health_check_failing",
		"1 when the health check that feeding depends on is failing.", []string{"check"}, nil)
)

// modelCollector reads the domain and the health source at scrape time.
type modelCollector struct{ s *Server }

func (mc *modelCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSensor, descSensorState, descResourceFailed, descAlarms, descLastEvent,
		descEventLog, descEventLogDropped, descStreams, descQueue, descSessionUp, descSessionSent, descSessionRetries,
		descSessionTimeouts, descSessionReconnects, descRejected, descTrapsRejected,
		descWatchdogFeeding, descWatchdogArmed, descWatchdogFeeds, descWatchdogErrors, descWatchdogLastFeed,
		descWatchdogWithheld, descWatchdogSelfFencing, descWatchdogQuorumLost, descWatchdogCheck} {
		ch <- d
	}
}

func (mc *modelCollector) Collect(ch chan<- prometheus.Metric) {
	d := mc.s.domain
	for _, r := range d.Resources() {
		rid := strconv.FormatUint(uint64(r.ResourceID), 10)
		ep := r.EntityPath.String()
		failed := 0.0
		if r.ResourceFailed {
			failed = 1
		}
		ch <- prometheus.MustNewConstMetric(descResourceFailed, prometheus.GaugeValue, failed, rid, ep)
		rdrs, err := d.RDRs(r.ResourceID)
		if err != nil {
			continue // removed meanwhile
		}
		for _, rd := range rdrs {
			if rd.Type != hpi.SensorRDR || rd.Sensor == nil {
				continue
			}
			v, ok, err := d.SensorValue(r.ResourceID, rd.Sensor.Num)
			if err != nil || !ok {
				continue
			}
			sep := ep
			if len(rd.Entity) > 0 {
				sep = rd.Entity.String()
			}
			num := strconv.FormatUint(uint64(rd.Sensor.Num), 10)
			if f, ok := readingFloat(v.Reading); ok {
				ch <- prometheus.MustNewConstMetric(descSensor, prometheus.GaugeValue, f, rid, sep, rd.IDString, num,
					unitName(rd.Sensor.DataFormat.BaseUnits))
			}
			ch <- prometheus.MustNewConstMetric(descSensorState, prometheus.GaugeValue, float64(v.EventState), rid, sep, rd.IDString, num)
		}
	}
	counts := map[string]int{}
	for _, a := range d.Alarms() {
		counts[a.Severity.String()]++
	}
	for _, sev := range []hpi.Severity{hpi.Critical, hpi.Major, hpi.Minor, hpi.Informational, hpi.OK} {
		ch <- prometheus.MustNewConstMetric(descAlarms, prometheus.GaugeValue, float64(counts[sev.String()]), sev.String())
	}
	ch <- prometheus.MustNewConstMetric(descLastEvent, prometheus.CounterValue, float64(d.LastEventID()))
	info := d.EventLogInfo()
	ch <- prometheus.MustNewConstMetric(descEventLog, prometheus.GaugeValue, float64(info.Entries))
	ch <- prometheus.MustNewConstMetric(descEventLogDropped, prometheus.GaugeValue, float64(info.Dropped))
	streams, depth := mc.s.streamQueueDepth()
	ch <- prometheus.MustNewConstMetric(descStreams, prometheus.GaugeValue, float64(streams))
	ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(depth), "api_streams")
	if mc.s.health == nil {
		return
	}
	h := mc.s.health.Health()
	ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(h.EventQueueDepth), "agent")
	seen := map[string]bool{}
	for _, sh := range h.Sessions {
		if seen[sh.Shelf] {
			mc.s.log.Warn("api: metrics: duplicate session name from health source", "shelf", sh.Shelf)
			continue
		}
		seen[sh.Shelf] = true
		up := 0.0
		if sh.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descSessionUp, prometheus.GaugeValue, up, sh.Shelf)
		ch <- prometheus.MustNewConstMetric(descSessionSent, prometheus.CounterValue, float64(sh.Sent), sh.Shelf)
		ch <- prometheus.MustNewConstMetric(descSessionRetries, prometheus.CounterValue, float64(sh.Retries), sh.Shelf)
		ch <- prometheus.MustNewConstMetric(descSessionTimeouts, prometheus.CounterValue, float64(sh.Timeouts), sh.Shelf)
		ch <- prometheus.MustNewConstMetric(descSessionReconnects, prometheus.CounterValue, float64(sh.Reconnects), sh.Shelf)
		for reason, n := range sh.Rejected {
			ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(n), sh.Shelf, reason)
		}
	}
	for reason, n := range h.TrapsRejected {
		ch <- prometheus.MustNewConstMetric(descTrapsRejected, prometheus.CounterValue, float64(n), reason)
	}
	if h.Watchdog != nil {
		mc.collectWatchdog(ch, h.Watchdog)
	}
}

func (mc *modelCollector) collectWatchdog(ch chan<- prometheus.Metric, w *WatchdogHealth) {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	ch <- prometheus.MustNewConstMetric(descWatchdogWithheld, prometheus.GaugeValue, w.Withheld.Seconds())
	ch <- prometheus.MustNewConstMetric(descWatchdogSelfFencing, prometheus.GaugeValue, b(w.SelfFencing))
	ch <- prometheus.MustNewConstMetric(descWatchdogQuorumLost, prometheus.GaugeValue, w.QuorumLost.Seconds())
	seen := map[string]bool{}
	for _, d := range w.Devices {
		if seen[d.Name] {
			mc.s.log.Warn("api: metrics: duplicate watchdog device name from health source", "device", d.Name)
			continue
		}
		seen[d.Name] = true
		ch <- prometheus.MustNewConstMetric(descWatchdogFeeding, prometheus.GaugeValue, b(d.Fed), d.Name)
		ch <- prometheus.MustNewConstMetric(descWatchdogArmed, prometheus.GaugeValue, b(d.Armed), d.Name)
		ch <- prometheus.MustNewConstMetric(descWatchdogFeeds, prometheus.CounterValue, float64(d.Feeds), d.Name)
		ch <- prometheus.MustNewConstMetric(descWatchdogErrors, prometheus.CounterValue, float64(d.Errors), d.Name)
		if !d.LastFeed.IsZero() {
			ch <- prometheus.MustNewConstMetric(descWatchdogLastFeed, prometheus.GaugeValue, float64(d.LastFeed.UnixNano())/1e9, d.Name)
		}
	}
	clear(seen)
	for _, c := range w.Checks {
		if seen[c] {
			continue
		}
		seen[c] = true
		ch <- prometheus.MustNewConstMetric(descWatchdogCheck, prometheus.GaugeValue, b(slices.Contains(w.FailingChecks, c)), c)
	}
}
