package shelf

import (
	"context"
	"fmt"
	"time"

	"hpiagent/shelf/ipmi"
)

// EventKind says what a shelf Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventThreshold is a threshold sensor crossing a threshold (event/
	// reading type 01h).
	EventThreshold EventKind = iota + 1
	// EventDiscrete is a discrete sensor changing state (generic, sensor-
	// specific or OEM event/reading types), other than a FRU hot-swap.
	EventDiscrete
	// EventHotSwap is a PICMG FRU hot-swap transition (sensor type F0h,
	// event type 6Fh).
	EventHotSwap
	// EventOther is a SEL record this package does not decode further:
	// OEM records, reserved record types, malformed system events.
	EventOther
	// EventGap marks a place where events may have been lost: the SEL was
	// cleared or changed behind the reader's back, or it overflowed.
	EventGap
)

func (k EventKind) String() string {
	switch k {
	case EventThreshold:
		return "threshold"
	case EventDiscrete:
		return "discrete"
	case EventHotSwap:
		return "hot-swap"
	case EventOther:
		return "other"
	case EventGap:
		return "possible gap"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// EventSource says how an Event was learnt.
type EventSource uint8

// Event sources.
const (
	// SourceSEL events come from a controller's System Event Log.
	SourceSEL EventSource = iota + 1
	// SourcePoll events were derived by the poller from two successive
	// sensor readings.
	SourcePoll
)

func (s EventSource) String() string {
	switch s {
	case SourceSEL:
		return "sel"
	case SourcePoll:
		return "poll"
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// EventSink receives shelf events. HandleShelfEvent is called from the
// reading goroutine, one event at a time and in order; it should hand the
// event on quickly.
type EventSink interface {
	HandleShelfEvent(ctx context.Context, e Event)
}

// SinkFunc adapts a function to EventSink.
type SinkFunc func(ctx context.Context, e Event)

// HandleShelfEvent calls f.
func (f SinkFunc) HandleShelfEvent(ctx context.Context, e Event) { f(ctx, e) }

// Event is one shelf-level event: a decoded SEL record, a change the
// poller saw between two readings, or a possible-gap marker.
type Event struct {
	Kind   EventKind
	Source EventSource

	// Time is the controller's time stamp for SEL events (zero when the
	// record has none) and the time of the reading for polled events.
	Time time.Time
	// RawTime is the IPMI time stamp of SEL events: seconds since
	// 1970-01-01 UTC, or since controller initialisation when at most
	// 0x20000000 (PreInit).
	RawTime uint32
	// RecordID is the SEL record ID (SEL events only). IDs are reused
	// after a clear on some controllers: they do not identify an event.
	RecordID uint16
	// RecordType is the SEL record type (0x02 for system events).
	RecordType uint8

	// Generator is the generator ID: byte 0 the 8-bit IPMB slave address
	// (bit 0 clear) or software ID (bit 0 set), byte 1 channel<<4 | LUN.
	// Polled events carry the sensor owner here.
	Generator  uint16
	SensorType uint8
	Sensor     uint8
	// EventType is the event/reading type code (7 bits).
	EventType uint8
	// Deassert is the event direction.
	Deassert bool
	// Data are event data 1-3 as recorded (polled events: built the way
	// the controller would record them).
	Data [3]uint8

	Threshold *ThresholdEvent
	Discrete  *DiscreteEvent
	HotSwap   *HotSwapEvent
	Gap       *GapEvent
	// OEM holds the bytes of OEM SEL records (EventOther).
	OEM []byte
	// Note says why a system event was not decoded (EventOther).
	Note string
}

// ThresholdEvent is a threshold crossing.
type ThresholdEvent struct {
	Threshold ipmi.Threshold
	// GoingHigh: the event offset is a going-high one (upper thresholds
	// assert going high, lower ones going low).
	GoingHigh bool
	// Reading is the raw trigger reading, when HasReading.
	Reading    uint8
	HasReading bool
	// ThresholdRaw is the raw threshold value, when HasThreshold.
	ThresholdRaw uint8
	HasThreshold bool
	// Value and ThresholdValue are Reading and ThresholdRaw converted to
	// the sensor's unit (see Event.Convert), when HasValue / HasThresholdValue.
	Value             float64
	HasValue          bool
	ThresholdValue    float64
	HasThresholdValue bool
}

// DiscreteEvent is a state change of a discrete sensor.
type DiscreteEvent struct {
	// Offset is the state (event offset 0-14) asserted or deasserted.
	Offset uint8
	// Previous is the previous state offset, when HasPrevious (event data
	// 2 usage 1).
	Previous    uint8
	HasPrevious bool
	// States and PreviousStates are the whole state bit sets of polled
	// events (HasStates); SEL events name one offset only.
	States, PreviousStates uint16
	HasStates              bool
}

// HotSwapEvent is a PICMG 3.0 FRU hot-swap transition (PICMG 3.0 §3.2.4.3,
// table 3-23).
type HotSwapEvent struct {
	// New is the M-state entered (0-7).
	New uint8
	// Previous is the M-state left, when PreviousKnown. ipmi_sim's own
	// events and polled events without an earlier reading do not say.
	Previous      uint8
	PreviousKnown bool
	// Cause is the reason for the transition, when CauseKnown.
	Cause      HotSwapCause
	CauseKnown bool
	// FRU is the FRU device ID, when FRUKnown. Events that carry 0xFF in
	// data 3 (ipmi_sim) or do not follow the PICMG layout leave it
	// unknown; no FRU is assumed.
	FRU      uint8
	FRUKnown bool
}

// HotSwapCause is the cause of a hot-swap state change (PICMG 3.0 table
// 3-23).
type HotSwapCause uint8

// Hot-swap causes.
const (
	CauseNormal               HotSwapCause = 0x0
	CauseShelfManager         HotSwapCause = 0x1 // commanded by the shelf manager (Set FRU Activation)
	CauseHandle               HotSwapCause = 0x2 // operator changed the handle switch
	CauseProgrammatic         HotSwapCause = 0x3 // FRU programmatic action
	CauseCommunication        HotSwapCause = 0x4 // communication lost or regained
	CauseCommunicationLocal   HotSwapCause = 0x5 // communication lost or regained, detected locally
	CauseSurpriseExtraction   HotSwapCause = 0x6
	CauseProvidedInfo         HotSwapCause = 0x7 // state change due to provided information
	CauseInvalidHardwareAddr  HotSwapCause = 0x8
	CauseUnexpectedDeactivate HotSwapCause = 0x9
	CauseUnknown              HotSwapCause = 0xf
)

func (c HotSwapCause) String() string {
	switch c {
	case CauseNormal:
		return "normal state change"
	case CauseShelfManager:
		return "commanded by shelf manager"
	case CauseHandle:
		return "handle switch"
	case CauseProgrammatic:
		return "FRU programmatic action"
	case CauseCommunication:
		return "communication lost or regained"
	case CauseCommunicationLocal:
		return "communication lost or regained (local)"
	case CauseSurpriseExtraction:
		return "surprise extraction"
	case CauseProvidedInfo:
		return "provided information"
	case CauseInvalidHardwareAddr:
		return "invalid hardware address"
	case CauseUnexpectedDeactivate:
		return "unexpected deactivation"
	case CauseUnknown:
		return "unknown"
	}
	return fmt.Sprintf("cause 0x%x", uint8(c))
}

// GapEvent says that events may have been lost before the events that
// follow it.
type GapEvent struct {
	Reason string
}

// Event/reading type codes used by the decoder.
const (
	eventTypeThreshold      uint8 = 0x01
	eventTypeSensorSpecific uint8 = 0x6f
)

// DecodeSELRecord turns a SEL record into a shelf Event. It never fails:
// records it cannot decode become EventOther with a Note.
func DecodeSELRecord(r ipmi.SELRecord) Event {
	e := Event{Source: SourceSEL, RecordID: r.RecordID, RecordType: r.Type}
	if r.Timestamped() {
		e.RawTime, e.Time = r.RawTime, r.Timestamp
	}
	if !r.IsSystemEvent() {
		e.Kind = EventOther
		e.OEM = append([]byte(nil), r.OEM...)
		if r.Type < 0xc0 {
			// Reserved types are laid out as system events.
			e.Generator, e.SensorType, e.Sensor, e.EventType, e.Deassert, e.Data = r.Generator, r.SensorType, r.Sensor, r.EventType, r.Deassert, r.EventData
			e.Note = fmt.Sprintf("reserved record type 0x%02x", r.Type)
		}
		return e
	}
	e.Generator, e.SensorType, e.Sensor, e.EventType, e.Deassert, e.Data = r.Generator, r.SensorType, r.Sensor, r.EventType, r.Deassert, r.EventData
	decodeSystemEvent(&e)
	return e
}

// DecodeSELEntry parses one 16-byte SEL record and decodes it.
func DecodeSELEntry(b []byte) (Event, error) {
	r, err := ipmi.ParseSELRecord(b)
	if err != nil {
		return Event{}, fmt.Errorf("decoding sel entry: %w", err)
	}
	return DecodeSELRecord(r), nil
}

// decodeSystemEvent fills the typed part of e from its system event
// fields.
func decodeSystemEvent(e *Event) {
	d1 := e.Data[0]
	offset := d1 & 0x0f
	switch {
	case e.EventType == eventTypeThreshold:
		if offset > 11 {
			e.Kind, e.Note = EventOther, fmt.Sprintf("threshold event offset 0x%x out of range", offset)
			return
		}
		t := &ThresholdEvent{Threshold: ipmi.Threshold(offset / 2), GoingHigh: offset%2 == 1}
		if d1>>6 == 1 {
			t.Reading, t.HasReading = e.Data[1], true
		}
		if (d1>>4)&3 == 1 {
			t.ThresholdRaw, t.HasThreshold = e.Data[2], true
		}
		e.Kind, e.Threshold = EventThreshold, t
	case e.SensorType == SensorTypeHotSwap && e.EventType == eventTypeSensorSpecific:
		if offset > 7 {
			e.Kind, e.Note = EventOther, fmt.Sprintf("hot-swap event offset 0x%x is no M-state", offset)
			return
		}
		h := &HotSwapEvent{New: offset}
		if d1>>4 == 0xa {
			// PICMG layout: data 2 = cause<<4 | previous state, data 3 =
			// FRU device ID; 0xFF means "not given" (ipmi_sim).
			if d2 := e.Data[1]; d2 != 0xff {
				if p := d2 & 0x0f; p <= 7 {
					h.Previous, h.PreviousKnown = p, true
				}
				h.Cause, h.CauseKnown = HotSwapCause(d2>>4), d2>>4 != uint8(CauseUnknown)
			}
			if e.Data[2] != 0xff {
				h.FRU, h.FRUKnown = e.Data[2], true
			}
		} else if d1>>6 == 1 && e.Data[1]&0x0f <= 7 {
			// Generic IPMI layout: data 2 holds the previous state.
			h.Previous, h.PreviousKnown = e.Data[1]&0x0f, true
		}
		e.Kind, e.HotSwap = EventHotSwap, h
	default:
		if offset > 14 {
			e.Kind, e.Note = EventOther, fmt.Sprintf("discrete event offset 0x%x out of range", offset)
			return
		}
		d := &DiscreteEvent{Offset: offset}
		if d1>>6 == 1 && e.Data[1]&0x0f != 0x0f {
			d.Previous, d.HasPrevious = e.Data[1]&0x0f, true
		}
		e.Kind, e.Discrete = EventDiscrete, d
	}
}

// Convert fills the real values of a threshold event from the sensor's
// conversion factors. It does nothing for other events or non-analog
// sensors.
func (e *Event) Convert(c ipmi.Conversion) {
	t := e.Threshold
	if t == nil || !c.Analog() {
		return
	}
	if t.HasReading {
		if v, err := c.Real(t.Reading); err == nil {
			t.Value, t.HasValue = v, true
		}
	}
	if t.HasThreshold {
		if v, err := c.Real(t.ThresholdRaw); err == nil {
			t.ThresholdValue, t.HasThresholdValue = v, true
		}
	}
}

// GeneratorAddr is the 8-bit IPMB slave address (or software ID, bit 0
// set) of the event's generator.
func (e Event) GeneratorAddr() uint8 { return uint8(e.Generator) }

// Controller returns the address to send commands for the generating
// controller to, given the 8-bit IPMB address of the controller at the
// end of the transport (local). Events from software IDs (system software,
// BIOS) have no controller: ok is false.
func (e Event) Controller(local uint8) (a ipmi.Addr, ok bool) {
	return ControllerAddr(uint8(e.Generator), uint8(e.Generator>>12), uint8(e.Generator>>8)&3, local)
}

// ControllerAddr maps an event generator (8-bit slave address, channel,
// LUN) to the address of the controller, given the 8-bit IPMB address of
// the controller at the end of the transport: that one is the zero Addr,
// others are bridged. A software ID (bit 0 set) has no controller.
func ControllerAddr(slave, channel, lun, local uint8) (ipmi.Addr, bool) {
	if slave&1 == 1 || slave == 0 {
		return ipmi.Addr{}, false
	}
	if slave == local {
		return ipmi.Addr{LUN: lun}, true
	}
	return ipmi.Addr{Channel: channel, Slave: slave, LUN: lun}, true
}

// Key is the identity of the event, EventKey of its fields. A SEL event
// and the PET trap sent for it have the same key.
func (e Event) Key() string {
	dir := e.EventType & 0x7f
	if e.Deassert {
		dir |= 0x80
	}
	return EventKey(e.RawTime, uint8(e.Generator), e.SensorType, e.Sensor, dir, e.Data[0], e.Data[1], e.Data[2])
}

// EventKey is the identity of a platform event, built from fields that
// both a SEL record and a PET trap (IPMI Platform Event Trap 1.0) carry,
// so that the same event seen both ways can be recognised:
//
//   - ts: the event time stamp as the SEL records it (an IPMI time, in
//     seconds since 1970-01-01 of the controller's clock). A PET carries
//     the same clock reading counted from 1998-01-01 00:00 (add 883612800,
//     as pet.PET.SELTimestamp does). Do not apply the PET's UTC offset
//     field: the SEL record does not carry it, so a converted time stamp
//     would no longer match the record's. A pre-init time stamp (at most
//     0x20000000) is used as it is.
//   - gen: the 8-bit generator address (IPMB slave address or software
//     ID; the PET "sensor device" / event source address). Channel and
//     LUN are left out because PET does not carry them.
//   - sensorType, sensor: sensor type code and sensor number.
//   - eventDirType: event direction (bit 7, 1 = deassertion) and
//     event/reading type code (bits 6:0), as in the SEL record.
//   - data1..data3: event data 1-3 as recorded.
//
// The key is a fixed-width lowercase hex string
// "tttttttt-gg-ssnn-ee-d1d2d3" (time stamp, generator, sensor type and
// number, direction/type, data 1-3). Two events that agree in every field within the same second have
// the same key; consumers that must count repeats use the SEL record ID
// as well.
func EventKey(ts uint32, gen, sensorType, sensor, eventDirType, data1, data2, data3 uint8) string {
	return fmt.Sprintf("%08x-%02x-%02x%02x-%02x-%02x%02x%02x", ts, gen, sensorType, sensor, eventDirType, data1, data2, data3)
}
