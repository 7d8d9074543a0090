package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"hpiagent/cmd/hpictl/internal/apiclient"
)

// get runs a GET and prints either the raw JSON or, through show, a table.
func get[T any](ctx context.Context, inv *invocation, path string, show func(T) error) error {
	return send(ctx, inv, http.MethodGet, path, nil, show)
}

// send runs a call and prints its answer (the raw JSON with --json).
func send[T any](ctx context.Context, inv *invocation, method, path string, body any, show func(T) error) error {
	c, err := inv.client()
	if err != nil {
		return err
	}
	var v T
	raw, err := c.Call(ctx, method, path, body, &v)
	if err != nil {
		return err
	}
	if inv.o.json {
		return printJSON(inv.a.stdout, raw)
	}
	return show(v)
}

func parseNum(what, s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return 0, usagef("%s %q: want a number", what, s)
	}
	return uint32(n), nil
}

func cmdResources(ctx context.Context, a *app, inv *invocation) error {
	return get(ctx, inv, apiclient.ResourcesPath(), func(rs []apiclient.Resource) error {
		t := newTable(a.stdout, "ID", "ENTITY PATH", "TAG", "SEVERITY", "FAILED", "CAPABILITIES")
		for _, r := range rs {
			t.row(strconv.FormatUint(uint64(r.ID), 10), r.EntityPath, r.Tag, r.Severity, yesNo(r.Failed), strings.Join(r.Capabilities, ","))
		}
		return t.flush()
	})
}

func cmdResource(ctx context.Context, a *app, inv *invocation) error {
	return get(ctx, inv, apiclient.ResourcePath(inv.args[0], ""), func(r apiclient.Resource) error {
		t := newTable(a.stdout, "FIELD", "VALUE")
		t.row("id", strconv.FormatUint(uint64(r.ID), 10))
		t.row("entity path", r.EntityPath)
		t.row("tag", r.Tag)
		t.row("severity", r.Severity)
		t.row("failed", yesNo(r.Failed))
		t.row("capabilities", strings.Join(r.Capabilities, ","))
		t.row("hot-swap capabilities", fmt.Sprintf("0x%08x", r.HotSwapCapabilities))
		t.row("manufacturer id", strconv.FormatUint(uint64(r.ManufacturerID), 10))
		t.row("product id", strconv.FormatUint(uint64(r.ProductID), 10))
		t.row("firmware", r.FirmwareRevision)
		t.row("guid", orDash(r.GUID))
		return t.flush()
	})
}

func rdrDetail(r apiclient.RDR) string {
	switch {
	case r.Sensor != nil:
		s := fmt.Sprintf("type %d, units %s", r.Sensor.Type, r.Sensor.Units)
		if len(r.Sensor.ThresholdsRead) > 0 {
			s += ", thresholds " + strings.Join(r.Sensor.ThresholdsRead, ",")
		}
		return s
	case r.Control != nil:
		return fmt.Sprintf("%s %s, mode %s, needs %s", r.Control.OutputType, r.Control.Type, r.Control.DefaultMode, r.Control.Permission)
	case r.Inventory != nil:
		return fmt.Sprintf("IDR %d, %d areas", r.Inventory.IdrID, r.Inventory.Areas)
	case r.Watchdog != nil:
		return fmt.Sprintf("watchdog %d", r.Watchdog.Num)
	case r.Annunciator != nil:
		return fmt.Sprintf("annunciator type %d, %d conditions", r.Annunciator.Type, r.Annunciator.MaxConditions)
	}
	return ""
}

func cmdRDRs(ctx context.Context, a *app, inv *invocation) error {
	return get(ctx, inv, apiclient.ResourcePath(inv.args[0], "/rdrs"), func(rs []apiclient.RDR) error {
		t := newTable(a.stdout, "TYPE", "NUM", "NAME", "ENTITY", "DETAIL")
		for _, r := range rs {
			t.row(strings.TrimSuffix(r.Type, "_RDR"), strconv.FormatUint(uint64(r.Num), 10), r.Name, orDash(r.EntityPath), rdrDetail(r))
		}
		return t.flush()
	})
}

// sensorResult is one row of `hpictl sensors`.
type sensorResult struct {
	Resource uint32            `json:"resource_id"`
	Num      uint32            `json:"num"`
	Sensor   *apiclient.Sensor `json:"sensor,omitempty"`
	Error    string            `json:"error,omitempty"`
}

func cmdSensors(ctx context.Context, a *app, inv *invocation) error {
	c, err := inv.client()
	if err != nil {
		return err
	}
	var ids []string
	if len(inv.args) == 1 {
		ids = []string{inv.args[0]}
	} else {
		rs, err := c.Resources(ctx)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if hasCap(r.Capabilities, "SENSOR") || hasCap(r.Capabilities, "RDR") {
				ids = append(ids, strconv.FormatUint(uint64(r.ID), 10))
			}
		}
	}
	// One request per resource; a few in flight: fast, and well within
	// the agent's rate limit.
	type perResource struct {
		sensors []apiclient.Sensor
		err     error
	}
	got := make([]perResource, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			got[i].sensors, got[i].err = c.Sensors(ctx, id)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	var results []sensorResult
	var resOf []string // the resource argument of each result
	for i, g := range got {
		if g.err != nil {
			var ae *apiclient.APIError
			if len(ids) > 1 && errors.As(g.err, &ae) && (ae.Code == "capability" || ae.Status == http.StatusNotFound) {
				continue // gone or without RDRs since the listing
			}
			if len(ids) == 1 {
				return g.err
			}
			results = append(results, sensorResult{Error: g.err.Error()})
			resOf = append(resOf, ids[i])
			continue
		}
		for j := range g.sensors {
			s := g.sensors[j]
			results = append(results, sensorResult{Resource: s.ResourceID, Num: s.Num, Sensor: &s})
			resOf = append(resOf, ids[i])
		}
	}
	failed := 0
	for i := range results {
		if results[i].Error != "" {
			failed++
			if n, err := strconv.ParseUint(resOf[i], 10, 32); err == nil {
				results[i].Resource = uint32(n)
			}
		}
	}
	sort.SliceStable(results, func(i, j int) bool {
		if results[i].Resource != results[j].Resource {
			return results[i].Resource < results[j].Resource
		}
		return results[i].Num < results[j].Num
	})
	if inv.o.json {
		if err := printValue(a.stdout, results); err != nil {
			return err
		}
	} else {
		t := newTable(a.stdout, "RES", "NUM", "NAME", "READING", "UNITS", "STATE", "ENTITY")
		for _, r := range results {
			if r.Sensor == nil {
				t.row(strconv.FormatUint(uint64(r.Resource), 10), strconv.FormatUint(uint64(r.Num), 10), "?", "error: "+r.Error, "", "", "")
				continue
			}
			s := r.Sensor
			reading := "not read yet"
			if s.Reading != nil {
				reading = fmtReading(s.Reading)
			}
			t.row(strconv.FormatUint(uint64(s.ResourceID), 10), strconv.FormatUint(uint64(s.Num), 10), s.Name, reading,
				unitSuffix(s.Units), fmt.Sprintf("0x%04x", s.EventState), s.EntityPath)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("the sensors of %d of %d resources could not be read", failed, len(ids))
	}
	return nil
}

func hasCap(caps []string, c string) bool {
	for _, x := range caps {
		if x == c {
			return true
		}
	}
	return false
}

func cmdSensor(ctx context.Context, a *app, inv *invocation) error {
	num, err := parseNum("sensor number", inv.args[1])
	if err != nil {
		return err
	}
	return get(ctx, inv, apiclient.SensorPath(inv.args[0], num), func(s apiclient.Sensor) error {
		t := newTable(a.stdout, "FIELD", "VALUE")
		t.row("resource", strconv.FormatUint(uint64(s.ResourceID), 10))
		t.row("sensor", strconv.FormatUint(uint64(s.Num), 10))
		t.row("name", s.Name)
		t.row("entity path", s.EntityPath)
		if s.Reading == nil {
			t.row("reading", "not read yet")
		} else {
			t.row("reading", strings.TrimSpace(fmtReading(s.Reading)+" "+unitSuffix(s.Units)))
		}
		t.row("event state", fmt.Sprintf("0x%04x", s.EventState))
		if s.Timestamp != nil {
			t.row("read at", fmtTime(*s.Timestamp))
		}
		if th := s.Thresholds; th != nil {
			for _, x := range []struct {
				n string
				r *apiclient.Reading
			}{{"lower critical", th.LowCritical}, {"lower major", th.LowMajor}, {"lower minor", th.LowMinor},
				{"upper minor", th.UpMinor}, {"upper major", th.UpMajor}, {"upper critical", th.UpCritical},
				{"positive hysteresis", th.PosThdHysteresis}, {"negative hysteresis", th.NegThdHysteresis}} {
				if x.r != nil {
					t.row(x.n, fmtReading(x.r))
				}
			}
		}
		return t.flush()
	})
}

func cmdInventory(ctx context.Context, a *app, inv *invocation) error {
	return get(ctx, inv, apiclient.ResourcePath(inv.args[0], "/inventory"), func(idrs []apiclient.Inventory) error {
		t := newTable(a.stdout, "IDR", "AREA", "AREA TYPE", "FIELD", "FIELD TYPE", "VALUE")
		for _, idr := range idrs {
			for _, ar := range idr.Areas {
				for _, f := range ar.Fields {
					t.row(fmt.Sprintf("%d %s", idr.IdrID, idr.Name), strconv.FormatUint(uint64(ar.AreaID), 10),
						strconv.Itoa(int(ar.Type)), strconv.FormatUint(uint64(f.FieldID), 10), strconv.Itoa(int(f.Type)), f.Value)
				}
			}
		}
		return t.flush()
	})
}

func showHotSwap(a *app) func(apiclient.HotSwap) error {
	return func(h apiclient.HotSwap) error {
		t := newTable(a.stdout, "RES", "STATE", "M-STATE", "KNOWN", "FAILED", "DEADLINE")
		deadline := "-"
		if h.Deadline != nil {
			deadline = fmtTime(*h.Deadline)
		}
		t.row(strconv.FormatUint(uint64(h.ResourceID), 10), h.State, orDash(h.MState), yesNo(h.Known), yesNo(h.Failed), deadline)
		return t.flush()
	}
}

// hotSwapActions maps the CLI words to the API's actions.
var hotSwapActions = map[string]string{
	"insert": "REQUEST_INSERTION", "extract": "REQUEST_EXTRACTION",
	"activate": "ACTIVATE", "deactivate": "DEACTIVATE",
}

func cmdHotSwap(ctx context.Context, a *app, inv *invocation) error {
	path := apiclient.ResourcePath(inv.args[0], "/hotswap")
	if len(inv.args) == 1 {
		return get(ctx, inv, path, showHotSwap(a))
	}
	act, ok := hotSwapActions[strings.ToLower(inv.args[1])]
	if !ok {
		return usagef("hot-swap action %q: want insert, extract, activate or deactivate", inv.args[1])
	}
	return send(ctx, inv, http.MethodPost, path, apiclient.HotSwapRequest{Action: act}, showHotSwap(a))
}

func cmdPower(ctx context.Context, a *app, inv *invocation) error {
	path := apiclient.ResourcePath(inv.args[0], "/power")
	show := func(p apiclient.Power) error {
		fmt.Fprintf(a.stdout, "resource %d power %s\n", p.ResourceID, clean(p.State))
		return nil
	}
	if len(inv.args) == 1 {
		return get(ctx, inv, path, show)
	}
	st := strings.ToUpper(inv.args[1])
	switch st {
	case "ON", "OFF", "CYCLE":
	default:
		return usagef("power state %q: want on, off or cycle", inv.args[1])
	}
	return send(ctx, inv, http.MethodPut, path, apiclient.PowerRequest{State: st}, show)
}

var resetActions = map[string]string{
	"cold": "COLD_RESET", "warm": "WARM_RESET", "assert": "RESET_ASSERT", "deassert": "RESET_DEASSERT",
	"cold_reset": "COLD_RESET", "warm_reset": "WARM_RESET", "reset_assert": "RESET_ASSERT", "reset_deassert": "RESET_DEASSERT",
}

func cmdReset(ctx context.Context, a *app, inv *invocation) error {
	act, ok := resetActions[strings.ToLower(inv.args[1])]
	if !ok {
		return usagef("reset action %q: want cold, warm, assert or deassert", inv.args[1])
	}
	return send(ctx, inv, http.MethodPost, apiclient.ResourcePath(inv.args[0], "/reset"), apiclient.ResetRequest{Action: act},
		func(r apiclient.Reset) error {
			fmt.Fprintf(a.stdout, "resource %d %s done\n", r.ResourceID, clean(r.Action))
			return nil
		})
}

func showControl(a *app, res string, num uint32) func(apiclient.ControlState) error {
	return func(s apiclient.ControlState) error {
		v := s.Digital
		switch {
		case s.Discrete != nil:
			v = strconv.FormatUint(uint64(*s.Discrete), 10)
		case s.Analog != nil:
			v = strconv.FormatInt(int64(*s.Analog), 10)
		case s.Stream != "":
			v = "0x" + s.Stream
		case s.Text != "":
			v = strconv.Quote(s.Text)
		}
		fmt.Fprintf(a.stdout, "resource %s control %d set to %s %s\n", clean(res), num, clean(s.Type), clean(v))
		return nil
	}
}

func cmdLED(ctx context.Context, a *app, inv *invocation) error {
	num, err := parseNum("control number", inv.args[1])
	if err != nil {
		return err
	}
	st := strings.ToUpper(inv.args[2])
	switch st {
	case "ON", "OFF", "PULSE_ON", "PULSE_OFF":
	default:
		return usagef("LED state %q: want on, off, pulse_on or pulse_off", inv.args[2])
	}
	body := apiclient.ControlRequest{State: apiclient.ControlState{Type: "DIGITAL", Digital: st}}
	return send(ctx, inv, http.MethodPut, apiclient.ControlPath(inv.args[0], num), body, showControl(a, inv.args[0], num))
}

func cmdControl(ctx context.Context, a *app, inv *invocation) error {
	num, err := parseNum("control number", inv.args[1])
	if err != nil {
		return err
	}
	st, err := parseControlState(inv.args[2], inv.args[3])
	if err != nil {
		return err
	}
	return send(ctx, inv, http.MethodPut, apiclient.ControlPath(inv.args[0], num), apiclient.ControlRequest{State: st}, showControl(a, inv.args[0], num))
}

func parseControlState(typ, val string) (apiclient.ControlState, error) {
	st := apiclient.ControlState{Type: strings.ToUpper(typ)}
	switch st.Type {
	case "DIGITAL":
		st.Digital = strings.ToUpper(val)
	case "DISCRETE":
		n, err := strconv.ParseUint(val, 0, 32)
		if err != nil {
			return st, usagef("discrete state %q: want a number", val)
		}
		d := uint32(n)
		st.Discrete = &d
	case "ANALOG":
		n, err := strconv.ParseInt(val, 0, 32)
		if err != nil {
			return st, usagef("analog state %q: want a number", val)
		}
		v := int32(n)
		st.Analog = &v
	case "STREAM":
		st.Stream = strings.TrimPrefix(strings.ToLower(val), "0x")
	case "TEXT":
		st.Text = val
	default:
		return st, usagef("control type %q: want digital, discrete, analog, stream or text", typ)
	}
	return st, nil
}

func cmdEventLog(ctx context.Context, a *app, inv *invocation) error {
	return get(ctx, inv, apiclient.EventLogPath(inv.o.after, inv.o.limit), func(el apiclient.EventLog) error {
		t := newTable(a.stdout, eventHeader...)
		for _, en := range el.Entries {
			t.row(eventRow(&en.Event)...)
		}
		if err := t.flush(); err != nil {
			return err
		}
		if el.Info.Overflow {
			fmt.Fprintf(a.stderr, "hpictl: the event log overflowed (%s); %d events dropped\n", clean(el.Info.OverflowAction), el.Info.Dropped)
		}
		return nil
	})
}

func cmdAlarms(ctx context.Context, a *app, inv *invocation) error {
	return get(ctx, inv, "/v1/alarms", func(as []apiclient.Alarm) error {
		t := newTable(a.stdout, "ID", "TIME", "SEVERITY", "ACKED", "TYPE", "ENTITY", "RES", "SENSOR", "NAME")
		for _, al := range as {
			c := al.Condition
			t.row(strconv.FormatUint(uint64(al.ID), 10), fmtTime(al.Timestamp), al.Severity, yesNo(al.Acknowledged), c.Type,
				orDash(c.EntityPath), strconv.FormatUint(uint64(c.ResourceID), 10), strconv.FormatUint(uint64(c.SensorNum), 10), c.Name)
		}
		return t.flush()
	})
}

func cmdAck(ctx context.Context, a *app, inv *invocation) error {
	id, err := parseNum("alarm ID", inv.args[0])
	if err != nil {
		return err
	}
	return send(ctx, inv, http.MethodPost, apiclient.AlarmAckPath(id), nil, func(al apiclient.Alarm) error {
		fmt.Fprintf(a.stdout, "alarm %d acknowledged\n", al.ID)
		return nil
	})
}

func cmdWhoAmI(ctx context.Context, a *app, inv *invocation) error {
	return get(ctx, inv, "/v1/whoami", func(w apiclient.WhoAmI) error {
		t := newTable(a.stdout, "FIELD", "VALUE")
		t.row("identity", w.Identity)
		t.row("roles", orDash(strings.Join(w.Roles, ",")))
		t.row("permissions", orDash(strings.Join(w.Permissions, ",")))
		return t.flush()
	})
}

func cmdOpenAPI(ctx context.Context, a *app, inv *invocation) error {
	c, err := inv.client()
	if err != nil {
		return err
	}
	raw, err := c.Call(ctx, http.MethodGet, "/v1/openapi.json", nil, nil)
	if err != nil {
		return err
	}
	return printJSON(a.stdout, raw)
}

func cmdConfig(ctx context.Context, a *app, inv *invocation) error {
	s, err := resolveSettings(inv.o.conn, a.getenv)
	if err != nil {
		return &exitError{ExitUsage, err}
	}
	if inv.o.json {
		return printValue(a.stdout, map[string]any{"endpoint": s.Endpoint, "ca": s.CA, "cert": s.Cert, "key": s.Key,
			"server_name": s.ServerName, "timeout": s.Timeout.String(), "sources": s.Sources})
	}
	t := newTable(a.stdout, "SETTING", "VALUE", "FROM")
	for _, x := range []struct{ k, v string }{{"endpoint", s.Endpoint}, {"ca", s.CA}, {"cert", s.Cert}, {"key", s.Key},
		{"server_name", s.ServerName}} {
		t.row(x.k, orDash(x.v), orDash(s.Sources[x.k]))
	}
	to := "60s (default)"
	if s.Timeout > 0 {
		to = s.Timeout.String()
	}
	t.row("timeout", to, orDash(s.Sources["timeout"]))
	return t.flush()
}

func cmdEvents(ctx context.Context, a *app, inv *invocation) error {
	c, err := inv.client()
	if err != nil {
		return err
	}
	if !inv.o.follow {
		var t *table
		if !inv.o.json {
			t = newTable(a.stdout, eventHeader...)
		}
		el, err := c.EventLog(ctx, inv.o.after, -1)
		if err != nil {
			return err
		}
		for _, en := range el.Entries {
			if inv.o.json {
				if err := printCompact(a, en.Event); err != nil {
					return err
				}
				continue
			}
			t.row(eventRow(&en.Event)...)
		}
		if t != nil {
			return t.flush()
		}
		return nil
	}
	header := false
	f := &apiclient.Follower{
		Client: c, After: inv.o.after, Resume: inv.set["after"],
		Notice: func(msg string) { fmt.Fprintf(a.stderr, "hpictl: %s\n", clean(msg)) },
		Deliver: func(it apiclient.StreamItem) error {
			switch {
			case it.Event != nil && inv.o.json:
				_, err := fmt.Fprintf(a.stdout, "%s\n", it.Raw)
				return err
			case it.Event != nil:
				if !header {
					header = true
					streamRow(a.stdout, eventHeader)
				}
				streamRow(a.stdout, eventRow(it.Event))
			case it.Gap != nil:
				fmt.Fprintf(a.stderr, "hpictl: events %d to %d were lost (the agent's event log no longer holds them)\n", it.Gap.FirstMissing, it.Gap.LastMissing)
			case it.Reset != nil:
				fmt.Fprintf(a.stderr, "hpictl: the agent's event IDs began again (%s); showing its whole event log\n", clean(it.Reset.Reason))
			}
			return nil
		},
	}
	return f.Run(ctx)
}

func printCompact(a *app, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", b)
	return err
}

// streamRow prints one row of the followed stream in fixed columns (a
// stream cannot be aligned after the fact).
func streamRow(w io.Writer, cells []string) {
	widths := []int{6, 19, 9, 8, 34}
	var b strings.Builder
	for i, c := range cells {
		c = clean(c)
		if i < len(widths) {
			fmt.Fprintf(&b, "%-*s ", widths[i], c)
		} else {
			b.WriteString(c)
		}
	}
	fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
}
