package ipmi

import (
	"context"
	"fmt"
	"strings"
)

// Sensor/Event command numbers (IPMI 2.0 appendix G).
const (
	CmdGetDeviceSDRInfo     uint8 = 0x20
	CmdGetDeviceSDR         uint8 = 0x21
	CmdReserveDeviceSDRRepo uint8 = 0x22
	CmdSetSensorHysteresis  uint8 = 0x24
	CmdGetSensorHysteresis  uint8 = 0x25
	CmdSetSensorThresholds  uint8 = 0x26
	CmdGetSensorThresholds  uint8 = 0x27
	CmdSetSensorEventEnable uint8 = 0x28
	CmdGetSensorEventEnable uint8 = 0x29
	CmdGetSensorReading     uint8 = 0x2d
)

// Owner returns the address to send sensor commands for s to, given the
// 8-bit IPMB address of the controller at the end of the transport (the
// shelf manager, often but not always 0x20; Get Address Info of FRU 0
// tells). Sensors owned by a software ID (OwnerID bit 0 set) are not on
// IPMB and cannot be read this way.
func (s *SensorRecord) Owner(local uint8) Addr {
	if s.OwnerID == local {
		return Addr{LUN: s.OwnerLUN}
	}
	return Addr{Channel: s.Channel, Slave: s.OwnerID, LUN: s.OwnerLUN}
}

// SensorReading is the answer to Get Sensor Reading (IPMI 2.0 §35.14).
type SensorReading struct {
	Raw             uint8
	EventsEnabled   bool // false: all event messages disabled
	ScanningEnabled bool // false: sensor scanning disabled
	Unavailable     bool // reading/state unavailable (e.g. initial update in progress)
	// States: threshold sensors: comparison status bits 5:0 (bit = Threshold,
	// set when at or beyond it). Discrete sensors: state bits 14:0.
	States uint16
}

// Valid reports whether Raw carries a reading: scanning enabled and the
// reading available.
func (r SensorReading) Valid() bool { return r.ScanningEnabled && !r.Unavailable }

// Beyond reports whether a threshold sensor reads at or beyond threshold t.
func (r SensorReading) Beyond(t Threshold) bool { return r.States&(1<<t) != 0 }

// ParseSensorReading decodes Get Sensor Reading response data. Bytes 3-4
// are optional in the specification and read as zero when absent.
func ParseSensorReading(b []byte) (SensorReading, error) {
	if len(b) < 2 {
		return SensorReading{}, short("get sensor reading", len(b), 2)
	}
	r := SensorReading{
		Raw:             b[0],
		EventsEnabled:   bit(b[1], 7),
		ScanningEnabled: bit(b[1], 6),
		Unavailable:     bit(b[1], 5),
	}
	if len(b) >= 3 {
		r.States = uint16(b[2])
	}
	if len(b) >= 4 {
		r.States |= uint16(b[3]&0x7f) << 8
	}
	return r, nil
}

// Marshal encodes r as Get Sensor Reading response data (4 bytes).
func (r SensorReading) Marshal() []byte {
	return []byte{r.Raw, setBit(r.EventsEnabled, 7) | setBit(r.ScanningEnabled, 6) | setBit(r.Unavailable, 5), byte(r.States), byte(r.States>>8) & 0x7f}
}

// GetSensorReading reads sensor number n of the controller at to.
func GetSensorReading(ctx context.Context, c Conn, to Addr, n uint8) (SensorReading, error) {
	what := fmt.Sprintf("get sensor reading of sensor 0x%02x", n)
	b, err := get(ctx, c, to, what, NetFnSensor, CmdGetSensorReading, n)
	if err != nil {
		return SensorReading{}, err
	}
	r, err := ParseSensorReading(b)
	if err != nil {
		return SensorReading{}, decodeErr(what, to, err)
	}
	return r, nil
}

// Thresholds are raw threshold values with a mask of those present
// (readable in Get, to be set in Set), bit n = Threshold n.
type Thresholds struct {
	Mask  uint8
	Value [6]uint8
}

// Has reports whether t is in the mask.
func (t Thresholds) Has(th Threshold) bool { return t.Mask&(1<<th) != 0 }

// With returns t with threshold th set to raw.
func (t Thresholds) With(th Threshold, raw uint8) Thresholds {
	t.Mask |= 1 << th
	t.Value[th] = raw
	return t
}

// ParseThresholds decodes Get Sensor Thresholds response data.
func ParseThresholds(b []byte) (Thresholds, error) {
	if len(b) < 7 {
		return Thresholds{}, short("get sensor thresholds", len(b), 7)
	}
	t := Thresholds{Mask: b[0] & 0x3f}
	copy(t.Value[:], b[1:7])
	return t, nil
}

// Marshal encodes t as Get Sensor Thresholds response data (and, after
// the sensor number, as Set Sensor Thresholds request data).
func (t Thresholds) Marshal() []byte {
	return append([]byte{t.Mask & 0x3f}, t.Value[:]...)
}

// GetSensorThresholds reads the raw thresholds of sensor n.
func GetSensorThresholds(ctx context.Context, c Conn, to Addr, n uint8) (Thresholds, error) {
	what := fmt.Sprintf("get sensor thresholds of sensor 0x%02x", n)
	b, err := get(ctx, c, to, what, NetFnSensor, CmdGetSensorThresholds, n)
	if err != nil {
		return Thresholds{}, err
	}
	t, err := ParseThresholds(b)
	if err != nil {
		return Thresholds{}, decodeErr(what, to, err)
	}
	return t, nil
}

// SetSensorThresholds sets the thresholds of sensor n that are in t.Mask.
// Use Conversion.Raw to turn real values into raw ones.
func SetSensorThresholds(ctx context.Context, c Conn, to Addr, n uint8, t Thresholds) error {
	what := fmt.Sprintf("set sensor thresholds %s of sensor 0x%02x", maskNames(t.Mask), n)
	_, err := set(ctx, c, to, what, NetFnSensor, CmdSetSensorThresholds, append([]byte{n}, t.Marshal()...)...)
	return err
}

func maskNames(m uint8) string {
	var s []string
	for t := LowerNonCritical; t <= UpperNonRecoverable; t++ {
		if m&(1<<t) != 0 {
			s = append(s, t.String())
		}
	}
	return "[" + strings.Join(s, " ") + "]"
}

// Hysteresis is the raw positive- and negative-going hysteresis of a sensor.
type Hysteresis struct {
	Positive uint8
	Negative uint8
}

// ParseHysteresis decodes Get Sensor Hysteresis response data.
func ParseHysteresis(b []byte) (Hysteresis, error) {
	if len(b) < 2 {
		return Hysteresis{}, short("get sensor hysteresis", len(b), 2)
	}
	return Hysteresis{Positive: b[0], Negative: b[1]}, nil
}

// Marshal encodes h as Get Sensor Hysteresis response data.
func (h Hysteresis) Marshal() []byte { return []byte{h.Positive, h.Negative} }

// GetSensorHysteresis reads the raw hysteresis of sensor n.
func GetSensorHysteresis(ctx context.Context, c Conn, to Addr, n uint8) (Hysteresis, error) {
	what := fmt.Sprintf("get sensor hysteresis of sensor 0x%02x", n)
	b, err := get(ctx, c, to, what, NetFnSensor, CmdGetSensorHysteresis, n, 0xff)
	if err != nil {
		return Hysteresis{}, err
	}
	h, err := ParseHysteresis(b)
	if err != nil {
		return Hysteresis{}, decodeErr(what, to, err)
	}
	return h, nil
}

// SetSensorHysteresis sets the raw hysteresis of sensor n.
func SetSensorHysteresis(ctx context.Context, c Conn, to Addr, n uint8, h Hysteresis) error {
	what := fmt.Sprintf("set sensor hysteresis of sensor 0x%02x", n)
	_, err := set(ctx, c, to, what, NetFnSensor, CmdSetSensorHysteresis, n, 0xff, h.Positive, h.Negative)
	return err
}

// EventEnable is the event enable state of a sensor (Get/Set Sensor Event
// Enable, IPMI 2.0 §35.10-11). Bit n of Assert/Deassert is event offset n
// (threshold sensors: the 12 going-low/going-high events).
type EventEnable struct {
	EventsEnabled   bool // all event messages from the sensor
	ScanningEnabled bool
	Assert          uint16
	Deassert        uint16
}

// ParseEventEnable decodes Get Sensor Event Enable response data. The
// mask bytes are optional and read as zero when absent.
func ParseEventEnable(b []byte) (EventEnable, error) {
	if len(b) < 1 {
		return EventEnable{}, short("get sensor event enable", len(b), 1)
	}
	e := EventEnable{EventsEnabled: bit(b[0], 7), ScanningEnabled: bit(b[0], 6)}
	var m [4]byte
	copy(m[:], b[1:])
	e.Assert = uint16(m[0]) | uint16(m[1]&0x7f)<<8
	e.Deassert = uint16(m[2]) | uint16(m[3]&0x7f)<<8
	return e, nil
}

// Marshal encodes e as Get Sensor Event Enable response data.
func (e EventEnable) Marshal() []byte {
	return []byte{setBit(e.EventsEnabled, 7) | setBit(e.ScanningEnabled, 6),
		byte(e.Assert), byte(e.Assert>>8) & 0x7f, byte(e.Deassert), byte(e.Deassert>>8) & 0x7f}
}

// GetSensorEventEnable reads the event enables of sensor n.
func GetSensorEventEnable(ctx context.Context, c Conn, to Addr, n uint8) (EventEnable, error) {
	what := fmt.Sprintf("get sensor event enable of sensor 0x%02x", n)
	b, err := get(ctx, c, to, what, NetFnSensor, CmdGetSensorEventEnable, n)
	if err != nil {
		return EventEnable{}, err
	}
	e, err := ParseEventEnable(b)
	if err != nil {
		return EventEnable{}, decodeErr(what, to, err)
	}
	return e, nil
}

// EventEnableAction says what Set Sensor Event Enable does with the masks.
type EventEnableAction uint8

// Event enable actions (byte 2 bits 5:4).
const (
	EventEnableKeep    EventEnableAction = 0 // only the global bits change
	EventEnableSelect  EventEnableAction = 1 // enable the events in the masks
	EventEnableDisable EventEnableAction = 2 // disable the events in the masks
)

// SetSensorEventEnable sets the global event/scanning bits of sensor n
// and enables or disables the events in e's masks according to action.
func SetSensorEventEnable(ctx context.Context, c Conn, to Addr, n uint8, e EventEnable, action EventEnableAction) error {
	what := fmt.Sprintf("set sensor event enable of sensor 0x%02x", n)
	b := e.Marshal()
	b[0] |= byte(action&3) << 4
	if action == EventEnableKeep {
		b = b[:1]
	}
	_, err := set(ctx, c, to, what, NetFnSensor, CmdSetSensorEventEnable, append([]byte{n}, b...)...)
	return err
}

// unitNames follows IPMI 2.0 table 43-15 with ipmitool's spelling.
var unitNames = [...]string{
	"unspecified", "degrees C", "degrees F", "degrees K", "Volts", "Amps", "Watts", "Joules",
	"Coulombs", "VA", "Nits", "lumen", "lux", "Candela", "kPa", "PSI", "Newton", "CFM", "RPM",
	"Hz", "microsecond", "millisecond", "second", "minute", "hour", "day", "week", "mil",
	"inches", "feet", "cu in", "cu feet", "mm", "cm", "m", "cu cm", "cu m", "liters",
	"fluid ounce", "radians", "steradians", "revolutions", "cycles", "gravities", "ounce",
	"pound", "ft-lb", "oz-in", "gauss", "gilberts", "henry", "millihenry", "farad",
	"microfarad", "ohms", "siemens", "mole", "becquerel", "PPM", "reserved", "Decibels",
	"DbA", "DbC", "gray", "sievert", "color temp deg K", "bit", "kilobit", "megabit",
	"gigabit", "byte", "kilobyte", "megabyte", "gigabyte", "word", "dword", "qword", "line",
	"hit", "miss", "retry", "reset", "overflow", "underrun", "collision", "packets",
	"messages", "characters", "error", "correctable error", "uncorrectable error",
	"fatal error", "grams",
}

// UnitName is the name of sensor unit code u ("Volts", "RPM", ...).
func UnitName(u uint8) string {
	if int(u) < len(unitNames) {
		return unitNames[u]
	}
	return fmt.Sprintf("unit 0x%02x", u)
}

var rateNames = [...]string{"", " per µs", " per ms", " per s", " per minute", " per hour", " per day", " per (reserved)"}

// String renders the units the way ipmitool does ("degrees C", "% Volts",
// "Watts/hour"), plus the rate unit, which ipmitool leaves out.
func (u Units) String() string {
	pct := ""
	if u.Percentage {
		pct = "% "
	}
	var s string
	switch u.Relation {
	case 1:
		s = pct + UnitName(u.Base) + "/" + UnitName(u.Modifier)
	case 2:
		s = pct + UnitName(u.Base) + "*" + UnitName(u.Modifier)
	default:
		if u.Base == 0 && u.Percentage {
			s = "percent"
		} else {
			s = pct + UnitName(u.Base)
		}
	}
	return s + rateNames[u.Rate&7]
}

// ThresholdsFromReal converts real threshold values into a Set Sensor
// Thresholds request for s, refusing thresholds the SDR does not mark
// settable and values the sensor cannot represent.
func (s *SensorRecord) ThresholdsFromReal(vals map[Threshold]float64) (Thresholds, error) {
	var t Thresholds
	if !s.Analog() {
		return t, fmt.Errorf("sensor %q: %w", s.Name(), ErrNotAnalog)
	}
	for th, v := range vals {
		if th > UpperNonRecoverable {
			return Thresholds{}, fmt.Errorf("sensor %q: unknown threshold %d", s.Name(), uint8(th))
		}
		if !s.Settable(th) {
			return Thresholds{}, fmt.Errorf("sensor %q: threshold %s is not settable", s.Name(), th)
		}
		raw, err := s.Conv.Raw(v)
		if err != nil {
			return Thresholds{}, fmt.Errorf("sensor %q threshold %s: %w", s.Name(), th, err)
		}
		t = t.With(th, raw)
	}
	return t, nil
}

// ThresholdsReal converts the thresholds in t's mask to real values.
// Thresholds whose raw value has no real value are left out.
func (s *SensorRecord) ThresholdsReal(t Thresholds) map[Threshold]float64 {
	out := map[Threshold]float64{}
	for th := LowerNonCritical; th <= UpperNonRecoverable; th++ {
		if !t.Has(th) {
			continue
		}
		if v, err := s.Conv.Real(t.Value[th]); err == nil {
			out[th] = v
		}
	}
	return out
}
