package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"hpiagent/cmd/hpictl/internal/apiclient"
)

// clean makes a string from the agent (or a shelf) safe to print on a
// terminal: control characters, tabs and bidirectional overrides are
// shown escaped, so a crafted FRU field cannot move the cursor or forge
// table columns.
func clean(s string) string {
	bad := false
	for _, r := range s {
		if !printable(r) {
			bad = true
			break
		}
	}
	if !bad {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if printable(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRuneToASCII(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

func printable(r rune) bool {
	if r == unicode.ReplacementChar {
		return true
	}
	if unicode.Is(unicode.Bidi_Control, r) {
		return false
	}
	return unicode.IsPrint(r)
}

// table writes aligned columns; every cell is cleaned.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

// row writes one row. It never writes to cells: callers pass shared
// header slices (eventHeader...) from concurrent commands.
func (t *table) row(cells ...string) {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = clean(c)
	}
	fmt.Fprintln(t.tw, strings.Join(out, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// printJSON prints raw JSON indented.
func printJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		_, err = w.Write(append(raw, '\n'))
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// printValue prints v as indented JSON.
func printValue(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// fmtReading shows a reading's value ("-" when unsupported).
func fmtReading(r *apiclient.Reading) string {
	if r == nil || !r.Supported {
		return "-"
	}
	if r.Buffer != "" {
		return "0x" + r.Buffer
	}
	switch v := r.Value.(type) {
	case json.Number:
		if f, err := v.Float64(); err == nil && strings.ContainsAny(v.String(), ".eE") {
			return strconv.FormatFloat(f, 'f', -1, 64)
		}
		return v.String()
	case nil:
		return "-"
	default:
		return fmt.Sprint(v)
	}
}

// unitSuffix turns "DEGREES_C" into a short unit for tables.
func unitSuffix(u string) string {
	switch u {
	case "DEGREES_C":
		return "°C"
	case "VOLTS":
		return "V"
	case "AMPS":
		return "A"
	case "WATTS":
		return "W"
	case "RPM":
		return "RPM"
	case "HZ":
		return "Hz"
	case "SECOND":
		return "s"
	case "UNSPECIFIED", "":
		return ""
	}
	return u
}

// eventSummary says in a few words what an event is about.
func eventSummary(e *apiclient.Event) string {
	switch {
	case e.Sensor != nil:
		dir := "deasserted"
		if e.Sensor.Assertion {
			dir = "asserted"
		}
		s := fmt.Sprintf("sensor %d state 0x%04x %s", e.Sensor.Num, e.Sensor.EventState, dir)
		if e.Sensor.TriggerReading != nil {
			s += " reading " + fmtReading(e.Sensor.TriggerReading)
		}
		if e.Sensor.TriggerThreshold != nil {
			s += " threshold " + fmtReading(e.Sensor.TriggerThreshold)
		}
		return s
	case e.HotSwap != nil:
		return fmt.Sprintf("hot-swap %s -> %s (%s)", e.HotSwap.PreviousState, e.HotSwap.State, e.HotSwap.Cause)
	case e.Resource != nil:
		return "resource " + e.Resource.Type
	case e.User != nil:
		return "user: " + e.User.Data
	case e.OEM != nil:
		return fmt.Sprintf("OEM %d: %s", e.OEM.MId, e.OEM.Data)
	case e.HPISW != nil:
		if e.HPISW.Alarm != nil {
			return fmt.Sprintf("alarm %d %s %s", e.HPISW.Alarm.ID, e.HPISW.Action, e.HPISW.Alarm.Condition.Name)
		}
		return fmt.Sprintf("HPI software event %d %s", e.HPISW.Type, e.HPISW.Data)
	case e.Domain != nil:
		return fmt.Sprintf("domain %d event %d", e.Domain.DomainID, e.Domain.Type)
	}
	return ""
}

// eventRow is one line of an event table.
func eventRow(e *apiclient.Event) []string {
	return []string{strconv.FormatUint(e.ID, 10), fmtTime(e.Timestamp), e.Severity, e.Type,
		orDash(e.EntityPath), eventSummary(e)}
}

var eventHeader = []string{"ID", "TIME", "SEVERITY", "TYPE", "ENTITY", "WHAT"}
