package hpi

import (
	"strconv"
	"time"
)

// EventType is SaHpiEventTypeT.
type EventType uint8

// SaHpiEventTypeT values.
const (
	EventResource           EventType = 0 // SAHPI_ET_RESOURCE
	EventDomain             EventType = 1 // SAHPI_ET_DOMAIN
	EventSensor             EventType = 2 // SAHPI_ET_SENSOR
	EventSensorEnableChange EventType = 3 // SAHPI_ET_SENSOR_ENABLE_CHANGE
	EventHotSwap            EventType = 4 // SAHPI_ET_HOTSWAP
	EventWatchdog           EventType = 5 // SAHPI_ET_WATCHDOG
	EventHPISW              EventType = 6 // SAHPI_ET_HPI_SW
	EventOEM                EventType = 7 // SAHPI_ET_OEM
	EventUser               EventType = 8 // SAHPI_ET_USER
)

// String returns the OpenHPI text form ("HOTSWAP").
func (t EventType) String() string {
	switch t {
	case EventResource:
		return "RESOURCE"
	case EventDomain:
		return "DOMAIN"
	case EventSensor:
		return "SENSOR"
	case EventSensorEnableChange:
		return "SENSOR_ENABLE_CHANGE"
	case EventHotSwap:
		return "HOTSWAP"
	case EventWatchdog:
		return "WATCHDOG"
	case EventHPISW:
		return "HPI_SW"
	case EventOEM:
		return "OEM"
	case EventUser:
		return "USER"
	}
	return "UNKNOWN(" + strconv.Itoa(int(t)) + ")"
}

// ResourceEventType is SaHpiResourceEventTypeT.
type ResourceEventType uint8

// SaHpiResourceEventTypeT values.
const (
	ResourceFailure      ResourceEventType = 0 // SAHPI_RESE_RESOURCE_FAILURE
	ResourceRestored     ResourceEventType = 1 // SAHPI_RESE_RESOURCE_RESTORED
	ResourceAdded        ResourceEventType = 2 // SAHPI_RESE_RESOURCE_ADDED
	ResourceRemoved      ResourceEventType = 3 // SAHPI_RESE_RESOURCE_REMOVED
	ResourceInaccessible ResourceEventType = 4 // SAHPI_RESE_RESOURCE_INACCESSIBLE
	ResourceUpdated      ResourceEventType = 5 // SAHPI_RESE_RESOURCE_UPDATED
)

// String returns the OpenHPI text form ("ADDED").
func (t ResourceEventType) String() string {
	switch t {
	case ResourceFailure:
		return "FAILURE"
	case ResourceRestored:
		return "RESTORED"
	case ResourceAdded:
		return "ADDED"
	case ResourceRemoved:
		return "REMOVED"
	case ResourceInaccessible:
		return "INACCESSIBLE"
	case ResourceUpdated:
		return "UPDATED"
	}
	return "UNKNOWN(" + strconv.Itoa(int(t)) + ")"
}

// DomainEventType is SaHpiDomainEventTypeT.
type DomainEventType uint8

// SaHpiDomainEventTypeT values.
const (
	DomainRefAdded   DomainEventType = 0 // SAHPI_DOMAIN_REF_ADDED
	DomainRefRemoved DomainEventType = 1 // SAHPI_DOMAIN_REF_REMOVED
)

// SensorOptionalData is SaHpiSensorOptionalDataT.
type SensorOptionalData uint8

// SAHPI_SOD_* bits.
const (
	SODTriggerReading   SensorOptionalData = 0x01 // SAHPI_SOD_TRIGGER_READING
	SODTriggerThreshold SensorOptionalData = 0x02 // SAHPI_SOD_TRIGGER_THRESHOLD
	SODOEM              SensorOptionalData = 0x04 // SAHPI_SOD_OEM
	SODPreviousState    SensorOptionalData = 0x08 // SAHPI_SOD_PREVIOUS_STATE
	SODCurrentState     SensorOptionalData = 0x10 // SAHPI_SOD_CURRENT_STATE
	SODSensorSpecific   SensorOptionalData = 0x20 // SAHPI_SOD_SENSOR_SPECIFIC
)

// ResourceEvent is SaHpiResourceEventT.
type ResourceEvent struct {
	Type ResourceEventType
}

// DomainEvent is SaHpiDomainEventT.
type DomainEvent struct {
	Type     DomainEventType
	DomainID DomainID
}

// SensorEvent is SaHpiSensorEventT.
type SensorEvent struct {
	Num                 SensorNum
	SensorType          SensorType
	Category            EventCategory
	Assertion           bool
	EventState          EventState // the one state asserted or deasserted
	OptionalDataPresent SensorOptionalData
	TriggerReading      SensorReading
	TriggerThreshold    SensorReading
	PreviousState       EventState
	CurrentState        EventState
	Oem                 uint32
	SensorSpecific      uint32
}

// HotSwapEvent is SaHpiHotSwapEventT.
type HotSwapEvent struct {
	HotSwapState         HsState
	PreviousHotSwapState HsState
	CauseOfStateChange   HsCause
}

// UserEvent is SaHpiUserEventT; Data is the text of its UserEventData.
type UserEvent struct {
	Data string
}

// OEMEvent is SaHpiOemEventT.
type OEMEvent struct {
	MId  uint32
	Data string
}

// HPISWEvent is SaHpiHpiSwEventT; the model uses it to announce alarm table
// changes, with Alarm set.
type HPISWEvent struct {
	MId   uint32
	Type  uint8 // SaHpiSwEventTypeT: 0 AUDIT, 1 STARTUP, 2 OTHER
	Data  string
	Alarm *AlarmChange
}

// AlarmChange says what happened to an alarm of the domain alarm table.
type AlarmChange struct {
	Alarm  Alarm
	Action AlarmAction
}

// AlarmAction is what happened to an alarm.
type AlarmAction uint8

// AlarmAction values.
const (
	AlarmAdded AlarmAction = iota
	AlarmCleared
	AlarmAcknowledged
)

// String names the action.
func (a AlarmAction) String() string {
	switch a {
	case AlarmAdded:
		return "ADDED"
	case AlarmCleared:
		return "CLEARED"
	case AlarmAcknowledged:
		return "ACKNOWLEDGED"
	}
	return "UNKNOWN(" + strconv.Itoa(int(a)) + ")"
}

// Event is SaHpiEventT plus the stream position the Domain gives it. Only
// the payload field that matches Type is meaningful.
type Event struct {
	// ID is assigned by the Domain on publication: strictly increasing, never
	// reused, starting at 1. A subscriber resumes a stream after the last ID
	// it saw.
	ID uint64
	// Source is the resource the event is about, or UnspecifiedResourceID.
	Source ResourceID
	// Entity is the entity path of Source when the event was published
	// (filled in by the Domain when Source is known).
	Entity    EntityPath
	Type      EventType
	Timestamp time.Time
	Severity  Severity

	Resource ResourceEvent
	Domain   DomainEvent
	Sensor   SensorEvent
	HotSwap  HotSwapEvent
	User     UserEvent
	OEM      OEMEvent
	HPISW    HPISWEvent
}

func (e Event) clone() Event {
	e.Entity = e.Entity.Clone()
	e.Sensor.TriggerReading = e.Sensor.TriggerReading.clone()
	e.Sensor.TriggerThreshold = e.Sensor.TriggerThreshold.clone()
	if e.HPISW.Alarm != nil {
		a := *e.HPISW.Alarm
		a.Alarm = a.Alarm.clone()
		e.HPISW.Alarm = &a
	}
	return e
}
