package shelf

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"hpiagent/shelf/ipmi"
)

// SensorTypeHotSwap is the PICMG 3.0 FRU Hot Swap sensor type (F0h); its
// discrete states 0..7 are the M-states M0..M7.
const SensorTypeHotSwap uint8 = 0xF0

// MState returns the M-state a PICMG hot-swap sensor reading shows, or
// false when r is not such a reading or shows no single state.
func (r Reading) MState() (int, bool) {
	if r.Err != nil || r.Sensor.Record.SensorType != SensorTypeHotSwap || !r.Valid() {
		return 0, false
	}
	for m := range 8 {
		if r.States == 1<<m {
			return m, true
		}
	}
	return 0, false
}

// Status summarises a reading the way an operator scans a table: "ok", the
// most severe threshold crossed ("ucr", "lnc"...), "M4" for a hot-swap
// sensor, "unavailable", or "error".
func (r Reading) Status() string {
	switch {
	case r.Err != nil:
		return "error"
	case !r.Valid():
		return "unavailable"
	}
	if m, ok := r.MState(); ok {
		return fmt.Sprintf("M%d", m)
	}
	if !r.Sensor.Record.IsThreshold() {
		return fmt.Sprintf("0x%04x", r.States)
	}
	for _, th := range []ipmi.Threshold{ipmi.UpperNonRecoverable, ipmi.LowerNonRecoverable, ipmi.UpperCritical, ipmi.LowerCritical, ipmi.UpperNonCritical, ipmi.LowerNonCritical} {
		if r.Beyond(th) {
			return th.String()
		}
	}
	return "ok"
}

// WriteSensorTable prints readings as an aligned table: sensor, owner,
// value, unit, status.
func WriteSensorTable(w io.Writer, readings []Reading) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SENSOR\tOWNER\tVALUE\tUNIT\tSTATUS")
	for _, r := range readings {
		owner := "shelf manager"
		if !r.Sensor.Owner.Local() {
			owner = fmt.Sprintf("IPMC 0x%02x", r.Sensor.Owner.Slave)
		}
		value, unit := "-", ""
		if r.HasValue {
			value = strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", r.Value), "0"), ".")
			unit = r.Sensor.Record.Units.String()
		}
		status := r.Status()
		if r.Err != nil {
			status = "error: " + r.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Sensor.Name, owner, value, unit, status)
	}
	return tw.Flush()
}
