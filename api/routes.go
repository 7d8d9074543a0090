package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"hpiagent/hpi"
)

// route is one entry of the route table.
type route struct {
	Method string
	// Path is the ServeMux pattern path, which is also the OpenAPI path.
	Path string
	// Perm is the permission the route needs (for controls: the least one;
	// the control's kind decides the rest).
	Perm Permission
	// Mutating routes change state: every call is audited.
	Mutating bool
	// Action names the call in audit records.
	Action  string
	handler func(*Server, *call) (any, error)
}

// RouteInfo describes a route for documentation and clients.
type RouteInfo struct {
	Method     string
	Path       string
	Permission Permission
	Mutating   bool
	Action     string
}

// Routes lists every route the server registers.
func Routes() []RouteInfo {
	out := make([]RouteInfo, len(routeTable))
	for i, r := range routeTable {
		out[i] = RouteInfo{Method: r.Method, Path: r.Path, Permission: r.Perm, Mutating: r.Mutating, Action: r.Action}
	}
	return out
}

var routeTable = []route{
	{"GET", "/v1/whoami", PermNone, false, "whoami", (*Server).getWhoami},
	{"GET", "/v1/openapi.json", PermRead, false, "openapi", (*Server).getOpenAPI},
	{"GET", "/metrics", PermRead, false, "metrics", (*Server).getMetrics},
	{"GET", "/v1/resources", PermRead, false, "resources.list", (*Server).getResources},
	{"GET", "/v1/resources/{id}", PermRead, false, "resource.get", (*Server).getResource},
	{"GET", "/v1/resources/{id}/rdrs", PermRead, false, "rdrs.list", (*Server).getRDRs},
	{"GET", "/v1/resources/{id}/sensors/{num}", PermRead, false, "sensor.get", (*Server).getSensor},
	{"GET", "/v1/resources/{id}/inventory", PermRead, false, "inventory.get", (*Server).getInventory},
	{"GET", "/v1/resources/{id}/hotswap", PermRead, false, "hotswap.get", (*Server).getHotSwap},
	{"POST", "/v1/resources/{id}/hotswap", PermHotSwap, true, "hotswap.action", (*Server).postHotSwap},
	{"GET", "/v1/resources/{id}/power", PermRead, false, "power.get", (*Server).getPower},
	{"PUT", "/v1/resources/{id}/power", PermPower, true, "power.set", (*Server).putPower},
	{"POST", "/v1/resources/{id}/reset", PermReset, true, "reset", (*Server).postReset},
	{"PUT", "/v1/resources/{id}/controls/{num}", PermAnyControl, true, "control.set", (*Server).putControl},
	{"GET", "/v1/eventlog", PermRead, false, "eventlog.get", (*Server).getEventLog},
	{"GET", "/v1/alarms", PermRead, false, "alarms.list", (*Server).getAlarms},
	{"POST", "/v1/alarms/{id}/ack", PermAlarmAck, true, "alarm.ack", (*Server).postAlarmAck},
	{"GET", "/v1/events", PermRead, false, "events.stream", (*Server).getEvents},
	{"GET", "/v1/resources/{id}/sensors", PermRead, false, "sensors.list", (*Server).getSensors},
	{"GET", "/v1/cluster", PermRead, false, "cluster.get", (*Server).getCluster},
	{"GET", "/v1/fence", PermRead, false, "fence.list", (*Server).getFenceList},
	{"GET", "/v1/fence/{node}", PermRead, false, "fence.get", (*Server).getFence},
	{"POST", "/v1/fence/{node}", PermFence, true, "fence.action", (*Server).postFence},
	{"GET", "/v1/workflows", PermRead, false, "workflows.list", (*Server).getWorkflows},
	{"GET", "/v1/workflows/{id}", PermRead, false, "workflow.get", (*Server).getWorkflow},
	{"POST", "/v1/resources/{id}/extract", PermHotSwap, true, "workflow.extract", (*Server).postExtract},
	{"POST", "/v1/workflows/{id}/override", PermOverride, true, "workflow.override", (*Server).postOverride},
	{"POST", "/v1/workflows/{id}/abort", PermHotSwap, true, "workflow.abort", (*Server).postAbort},
	{"POST", "/v1/workflows/{id}/retry", PermHotSwap, true, "workflow.retry", (*Server).postRetry},
	{"GET", "/v1/erase-certificates", PermEraseCerts, false, "erase_certificates.list", (*Server).getEraseCerts},
	{"GET", "/v1/erase-certificates/{id}", PermEraseCerts, false, "erase_certificate.get", (*Server).getEraseCert},
	{"GET", "/v1/audit/anchors", PermRead, false, "audit_anchors.get", (*Server).getAuditAnchors},
}

// matchesPath reports whether p matches the route's path pattern.
func (r route) matchesPath(p string) bool {
	want := strings.Split(strings.Trim(r.Path, "/"), "/")
	got := strings.Split(strings.Trim(p, "/"), "/")
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		if strings.HasPrefix(want[i], "{") {
			continue
		}
		if want[i] != got[i] {
			return false
		}
	}
	return true
}

// resource resolves the {id} path value: a resource ID in decimal or an
// entity path in OpenHPI's text form. It sets the call's audit target.
func (s *Server) resource(c *call) (hpi.RPTEntry, error) {
	raw := c.r.PathValue("id")
	var (
		e  hpi.RPTEntry
		ok bool
	)
	if n, err := strconv.ParseUint(raw, 10, 32); err == nil {
		e, ok = s.domain.Resource(hpi.ResourceID(n))
	} else if strings.HasPrefix(raw, "{") {
		p, err := hpi.ParseEntityPath(raw)
		if err != nil {
			return e, newErr(CodeBadRequest, fmt.Sprintf("resource %q: %v", raw, err))
		}
		e, ok = s.domain.ResourceByPath(p)
	} else {
		return e, newErr(CodeBadRequest, fmt.Sprintf("resource %q: want a resource ID or an entity path", raw))
	}
	if !ok {
		return e, newErr(CodeNotFound, fmt.Sprintf("no resource %q", raw))
	}
	c.target = fmt.Sprintf("resource %d %s", e.ResourceID, e.EntityPath)
	return e, nil
}

// instrument parses the {num} path value (decimal or 0x hex).
func instrument(c *call) (hpi.InstrumentID, error) {
	raw := c.r.PathValue("num")
	n, err := strconv.ParseUint(raw, 0, 32)
	if err != nil {
		return 0, newErr(CodeBadRequest, fmt.Sprintf("instrument number %q: want a number", raw))
	}
	return hpi.InstrumentID(n), nil
}

// decode reads a JSON request body into v: application/json, within the
// size limit, no unknown fields, nothing after the value.
func decode(c *call, v any) error {
	if ct := c.r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return newErr(CodeUnsupportedMedia, "request body must be application/json")
		}
	}
	dec := json.NewDecoder(c.r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newErr(CodeTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
		}
		return newErr(CodeBadRequest, "request body: "+err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return newErr(CodeBadRequest, "request body: data after the JSON value")
	}
	return nil
}

func (s *Server) needHardware() error {
	if s.hw == nil {
		return newErr(CodeUnavailable, "no hardware access is configured: this API is read-only")
	}
	return nil
}

// act writes the audit attempt and, only if it is stored, runs f with the
// action timeout.
func (s *Server) act(c *call, f func(ctx context.Context) error) error {
	if err := s.auditAttempt(c); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), s.cfg.ActionTimeout)
	defer cancel()
	if err := f(ctx); err != nil {
		s.log.Warn("api: action failed", "action", s.action(c), "target", c.target, "actor", c.identity, "err", err)
		return err
	}
	return nil
}

// WhoAmI is the answer of GET /v1/whoami.
type WhoAmI struct {
	Identity    string       `json:"identity"`
	Roles       []Role       `json:"roles"`
	Permissions []Permission `json:"permissions"`
}

func (s *Server) getWhoami(c *call) (any, error) {
	out := WhoAmI{Identity: c.identity, Roles: c.roles, Permissions: []Permission{}}
	if out.Roles == nil {
		out.Roles = []Role{}
	}
	for _, p := range allPermissions {
		if allowed(c.roles, p) {
			out.Permissions = append(out.Permissions, p)
		}
	}
	return out, nil
}

func (s *Server) getOpenAPI(c *call) (any, error) {
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(openAPIDoc)
	return handled{}, nil
}

func (s *Server) getResources(c *call) (any, error) {
	rs := s.domain.Resources()
	out := make([]ResourceView, len(rs))
	for i, r := range rs {
		out[i] = resourceView(r)
	}
	return out, nil
}

func (s *Server) getResource(c *call) (any, error) {
	e, err := s.resource(c)
	if err != nil {
		return nil, err
	}
	return resourceView(e), nil
}

func (s *Server) getRDRs(c *call) (any, error) {
	e, err := s.resource(c)
	if err != nil {
		return nil, err
	}
	rdrs, err := s.domain.RDRs(e.ResourceID)
	if err != nil {
		return nil, err
	}
	out := make([]RDRView, len(rdrs))
	for i, r := range rdrs {
		out[i] = rdrView(r)
	}
	return out, nil
}

func (s *Server) getSensor(c *call) (any, error) {
	e, err := s.resource(c)
	if err != nil {
		return nil, err
	}
	num, err := instrument(c)
	if err != nil {
		return nil, err
	}
	rdr, err := s.domain.RDR(e.ResourceID, hpi.SensorRDR, num)
	if err != nil {
		return nil, err
	}
	return s.sensorView(e, rdr)
}

// getSensors reads every sensor of a resource, in RDR order.
func (s *Server) getSensors(c *call) (any, error) {
	e, err := s.resource(c)
	if err != nil {
		return nil, err
	}
	rdrs, err := s.domain.RDRs(e.ResourceID)
	if err != nil {
		return nil, err
	}
	out := []SensorView{}
	for _, r := range rdrs {
		if r.Type != hpi.SensorRDR {
			continue
		}
		v, err := s.sensorView(e, r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// sensorView is the current reading (and thresholds, when known) of the
// sensor rdr of resource e.
func (s *Server) sensorView(e hpi.RPTEntry, rdr hpi.RDR) (SensorView, error) {
	num := rdr.Num()
	v, ok, err := s.domain.SensorValue(e.ResourceID, num)
	if err != nil {
		return SensorView{}, err
	}
	out := SensorView{ResourceID: uint32(e.ResourceID), Num: num, Name: rdr.IDString, EntityPath: e.EntityPath.String()}
	if len(rdr.Entity) > 0 {
		out.EntityPath = rdr.Entity.String()
	}
	if rdr.Sensor != nil {
		out.Units = unitName(rdr.Sensor.DataFormat.BaseUnits)
	}
	if ok {
		rv := readingView(v.Reading)
		out.Reading = &rv
		out.EventState = uint16(v.EventState)
		out.Timestamp = &v.Timestamp
	}
	if s.thr != nil {
		t, tok, err := s.thr.SensorThresholds(e.ResourceID, num)
		if err != nil {
			return SensorView{}, err
		}
		if tok {
			tv := thresholdsView(t)
			out.Thresholds = &tv
		}
	}
	return out, nil
}

func (s *Server) getInventory(c *call) (any, error) {
	e, err := s.resource(c)
	if err != nil {
		return nil, err
	}
	rdrs, err := s.domain.RDRs(e.ResourceID)
	if err != nil {
		return nil, err
	}
	out := []InventoryView{}
	for _, r := range rdrs {
		if r.Type == hpi.InventoryRDR && r.Inventory != nil {
			out = append(out, inventoryView(r))
		}
	}
	return out, nil
}

func (s *Server) getHotSwap(c *call) (any, error) {
	e, err := s.resource(c)
	if err != nil {
		return nil, err
	}
	st, err := s.domain.HotSwapState(e.ResourceID)
	if err != nil {
		return nil, err
	}
	return hotSwapView(e.ResourceID, st), nil
}

// HotSwapRequest is the body of POST /v1/resources/{id}/hotswap.
type HotSwapRequest struct {
	// Action is ACTIVATE, DEACTIVATE, REQUEST_INSERTION or REQUEST_EXTRACTION.
	Action string `json:"action"`
}

func parseIntent(s string) (hpi.IntentAction, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	for _, a := range []hpi.IntentAction{hpi.IntentActivate, hpi.IntentDeactivate, hpi.IntentRequestInsertion, hpi.IntentRequestExtraction} {
		if u == a.String() {
			return a, nil
		}
	}
	return 0, newErr(CodeBadRequest, fmt.Sprintf("hot-swap action %q: want ACTIVATE, DEACTIVATE, REQUEST_INSERTION or REQUEST_EXTRACTION", s))
}

func (s *Server) postHotSwap(c *call) (any, error) {
	e, err := s.resource(c)
	if err != nil {
		return nil, err
	}
	var req HotSwapRequest
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	a, err := parseIntent(req.Action)
	if err != nil {
		return nil, err
	}
	c.detail = "action=" + a.String()
	if !e.Capabilities.Has(hpi.CapabilityFRU) {
		return nil, newErr(CodeCapability, "resource is not a FRU")
	}
	if err := s.needHardware(); err != nil {
		return nil, err
	}
	if err := s.act(c, func(ctx context.Context) error { return s.hw.HotSwapAction(ctx, e.ResourceID, a) }); err != nil {
		return nil, err
	}
	st, err := s.domain.HotSwapState(e.ResourceID)
	if err != nil {
		return nil, err
	}
	return hotSwapView(e.ResourceID, st), nil
}

// PowerView is the answer of the power routes.
type PowerView struct {
	ResourceID uint32 `json:"resource_id"`
	State      string `json:"state"`
}

// PowerRequest is the body of PUT /v1/resources/{id}/power.
type PowerRequest struct {
	// State is ON, OFF or CYCLE.
	State string `json:"state"`
}

func (s *Server) getPower(c *call) (any, error) {
	e, err := s.resource(c)
	if err != nil {
		return nil, err
	}
	if !e.Capabilities.Has(hpi.CapabilityPower) {
		return nil, newErr(CodeCapability, "resource has no power capability")
	}
	if err := s.needHardware(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), s.cfg.ActionTimeout)
	defer cancel()
	p, err := s.hw.PowerState(ctx, e.ResourceID)
	if err != nil {
		return nil, err
	}
	return PowerView{ResourceID: uint32(e.ResourceID), State: p.String()}, nil
}

func (s *Server) putPower(c *call) (any, error) {
	e, err := s.resource(c)
	if err != nil {
		return nil, err
	}
	var req PowerRequest
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	p, err := hpi.ParsePowerState(req.State)
	if err != nil {
		return nil, newErr(CodeBadRequest, err.Error())
	}
	c.detail = "state=" + p.String()
	if !e.Capabilities.Has(hpi.CapabilityPower) {
		return nil, newErr(CodeCapability, "resource has no power capability")
	}
	if err := s.needHardware(); err != nil {
		return nil, err
	}
	if err := s.act(c, func(ctx context.Context) error { return s.hw.SetPowerState(ctx, e.ResourceID, p) }); err != nil {
		return nil, err
	}
	out := PowerView{ResourceID: uint32(e.ResourceID), State: p.String()}
	if p == hpi.PowerCycle {
		out.State = hpi.PowerOn.String()
	}
	return out, nil
}

// ResetRequest is the body of POST /v1/resources/{id}/reset.
type ResetRequest struct {
	// Action is COLD_RESET, WARM_RESET, RESET_ASSERT or RESET_DEASSERT.
	Action string `json:"action"`
}

// ResetView is the answer of POST /v1/resources/{id}/reset.
type ResetView struct {
	ResourceID uint32 `json:"resource_id"`
	Action     string `json:"action"`
}

func (s *Server) postReset(c *call) (any, error) {
	e, err := s.resource(c)
	if err != nil {
		return nil, err
	}
	var req ResetRequest
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	a, err := hpi.ParseResetAction(req.Action)
	if err != nil {
		return nil, newErr(CodeBadRequest, err.Error())
	}
	c.detail = "action=" + a.String()
	if !e.Capabilities.Has(hpi.CapabilityReset) {
		return nil, newErr(CodeCapability, "resource has no reset capability")
	}
	if err := s.needHardware(); err != nil {
		return nil, err
	}
	if err := s.act(c, func(ctx context.Context) error { return s.hw.Reset(ctx, e.ResourceID, a) }); err != nil {
		return nil, err
	}
	return ResetView{ResourceID: uint32(e.ResourceID), Action: a.String()}, nil
}

// ControlRequest is the body of PUT /v1/resources/{id}/controls/{num}.
type ControlRequest struct {
	State ControlStateView `json:"state"`
}

func (s *Server) putControl(c *call) (any, error) {
	e, err := s.resource(c)
	if err != nil {
		return nil, err
	}
	num, err := instrument(c)
	if err != nil {
		return nil, err
	}
	c.target += fmt.Sprintf(" control %d", num)
	rdr, err := s.domain.RDR(e.ResourceID, hpi.CtrlRDR, num)
	if err != nil {
		return nil, err
	}
	need := controlPermission(rdr.Control)
	if !allowed(c.roles, need) {
		return nil, newErr(CodeForbidden, fmt.Sprintf("roles %v do not grant %q needed for this control", c.roles, need))
	}
	var req ControlRequest
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	st, err := req.State.toHPI(rdr.Control)
	if err != nil {
		return nil, err
	}
	c.detail = "state=" + req.State.summary()
	if err := s.needHardware(); err != nil {
		return nil, err
	}
	if err := s.act(c, func(ctx context.Context) error { return s.hw.SetControl(ctx, e.ResourceID, num, st) }); err != nil {
		return nil, err
	}
	return req.State, nil
}

// EventLogView is the answer of GET /v1/eventlog.
type EventLogView struct {
	Info    EventLogInfoView    `json:"info"`
	Entries []EventLogEntryView `json:"entries"`
}

func (s *Server) getEventLog(c *call) (any, error) {
	q := c.r.URL.Query()
	var after uint64
	limit := -1
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, newErr(CodeBadRequest, fmt.Sprintf("after=%q: want an event ID", v))
		}
		after = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, newErr(CodeBadRequest, fmt.Sprintf("limit=%q: want a count", v))
		}
		limit = n
	}
	info := s.domain.EventLogInfo()
	entries := s.domain.EventLogEntries()
	out := EventLogView{Info: eventLogInfoView(info), Entries: []EventLogEntryView{}}
	for _, en := range entries {
		if en.Event.ID <= after {
			continue
		}
		if limit >= 0 && len(out.Entries) >= limit {
			break
		}
		out.Entries = append(out.Entries, EventLogEntryView{EntryID: en.EntryID, Timestamp: en.Timestamp, Event: eventView(en.Event)})
	}
	return out, nil
}

func (s *Server) getAlarms(c *call) (any, error) {
	as := s.domain.Alarms()
	out := make([]AlarmView, len(as))
	for i, a := range as {
		out[i] = alarmView(a)
	}
	return out, nil
}

func (s *Server) postAlarmAck(c *call) (any, error) {
	raw := c.r.PathValue("id")
	n, err := strconv.ParseUint(raw, 10, 32)
	if err != nil {
		return nil, newErr(CodeBadRequest, fmt.Sprintf("alarm %q: want an alarm ID", raw))
	}
	c.target = "alarm " + raw
	var found *hpi.Alarm
	for _, a := range s.domain.Alarms() {
		if a.AlarmID == uint32(n) {
			found = &a
			break
		}
	}
	if found == nil {
		return nil, newErr(CodeNotFound, "no active alarm "+raw)
	}
	c.target = fmt.Sprintf("alarm %d %s", n, found.Condition.Entity)
	if err := s.act(c, func(context.Context) error { return s.domain.AcknowledgeAlarm(uint32(n)) }); err != nil {
		return nil, err
	}
	for _, a := range s.domain.Alarms() {
		if a.AlarmID == uint32(n) {
			return alarmView(a), nil
		}
	}
	// Cleared meanwhile.
	v := alarmView(*found)
	v.Acknowledged = true
	return v, nil
}
