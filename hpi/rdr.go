package hpi

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// RDRType is SaHpiRdrTypeT.
type RDRType uint8

// SaHpiRdrTypeT values.
const (
	NoRecord       RDRType = 0 // SAHPI_NO_RECORD
	CtrlRDR        RDRType = 1 // SAHPI_CTRL_RDR
	SensorRDR      RDRType = 2 // SAHPI_SENSOR_RDR
	InventoryRDR   RDRType = 3 // SAHPI_INVENTORY_RDR
	WatchdogRDR    RDRType = 4 // SAHPI_WATCHDOG_RDR
	AnnunciatorRDR RDRType = 5 // SAHPI_ANNUNCIATOR_RDR
)

// String returns the OpenHPI text form ("SENSOR_RDR").
func (t RDRType) String() string {
	switch t {
	case NoRecord:
		return "NO_RECORD"
	case CtrlRDR:
		return "CTRL_RDR"
	case SensorRDR:
		return "SENSOR_RDR"
	case InventoryRDR:
		return "INVENTORY_RDR"
	case WatchdogRDR:
		return "WATCHDOG_RDR"
	case AnnunciatorRDR:
		return "ANNUNCIATOR_RDR"
	}
	return "UNKNOWN(" + strconv.Itoa(int(t)) + ")"
}

// InstrumentID is SaHpiInstrumentIdT: the number of a sensor, control,
// IDR, watchdog or annunciator within its resource.
type InstrumentID = uint32

// SensorNum is SaHpiSensorNumT.
type SensorNum = InstrumentID

// CtrlNum is SaHpiCtrlNumT.
type CtrlNum = InstrumentID

// IdrID is SaHpiIdrIdT.
type IdrID = InstrumentID

// WatchdogNum is SaHpiWatchdogNumT.
type WatchdogNum = InstrumentID

// AnnunciatorNum is SaHpiAnnunciatorNumT.
type AnnunciatorNum = InstrumentID

// RDR is SaHpiRdrT. Exactly one of Sensor, Control, Inventory, Watchdog and
// Annunciator is set, the one that matches Type.
type RDR struct {
	// RecordID is assigned by the Domain from Type and the instrument number,
	// so it is stable across rediscovery.
	RecordID uint32
	Type     RDRType
	// Entity is the entity the instrument belongs to; empty means the
	// resource's own entity path.
	Entity   EntityPath
	IsFRU    bool
	IDString string

	Sensor      *SensorRec
	Control     *CtrlRec
	Inventory   *InventoryRec
	Watchdog    *WatchdogRec
	Annunciator *AnnunciatorRec
}

// Num returns the instrument number of the record.
func (r RDR) Num() InstrumentID {
	switch {
	case r.Type == SensorRDR && r.Sensor != nil:
		return r.Sensor.Num
	case r.Type == CtrlRDR && r.Control != nil:
		return r.Control.Num
	case r.Type == InventoryRDR && r.Inventory != nil:
		return r.Inventory.IdrID
	case r.Type == WatchdogRDR && r.Watchdog != nil:
		return r.Watchdog.WatchdogNum
	case r.Type == AnnunciatorRDR && r.Annunciator != nil:
		return r.Annunciator.AnnunciatorNum
	}
	return 0
}

// RecordIDFor returns the RecordID the Domain gives the record of type t and
// instrument number num.
func RecordIDFor(t RDRType, num InstrumentID) uint32 { return uint32(t)<<24 | num&0xFFFFFF }

func (r RDR) validate() error {
	set := 0
	for _, p := range []bool{r.Sensor != nil, r.Control != nil, r.Inventory != nil, r.Watchdog != nil, r.Annunciator != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("hpi: RDR %q of type %s has %d records set, want exactly one", r.IDString, r.Type, set)
	}
	ok := (r.Type == SensorRDR && r.Sensor != nil) || (r.Type == CtrlRDR && r.Control != nil) ||
		(r.Type == InventoryRDR && r.Inventory != nil) || (r.Type == WatchdogRDR && r.Watchdog != nil) ||
		(r.Type == AnnunciatorRDR && r.Annunciator != nil)
	if !ok {
		return fmt.Errorf("hpi: RDR %q has type %s but a record of another type", r.IDString, r.Type)
	}
	if r.Num() > 0xFFFFFF {
		return fmt.Errorf("hpi: RDR %q: %s number %d does not fit 24 bits", r.IDString, r.Type, r.Num())
	}
	if len(r.Entity) != 0 {
		if err := r.Entity.Validate(); err != nil {
			return fmt.Errorf("hpi: RDR %q: %w", r.IDString, err)
		}
	}
	return nil
}

func (r RDR) clone() RDR {
	r.Entity = r.Entity.Clone()
	if r.Sensor != nil {
		s := r.Sensor.clone()
		r.Sensor = &s
	}
	if r.Control != nil {
		c := r.Control.clone()
		r.Control = &c
	}
	if r.Inventory != nil {
		i := r.Inventory.clone()
		r.Inventory = &i
	}
	if r.Watchdog != nil {
		w := *r.Watchdog
		r.Watchdog = &w
	}
	if r.Annunciator != nil {
		a := *r.Annunciator
		r.Annunciator = &a
	}
	return r
}

func (r RDR) equal(o RDR) bool {
	if r.RecordID != o.RecordID || r.Type != o.Type || !r.Entity.Equal(o.Entity) || r.IsFRU != o.IsFRU || r.IDString != o.IDString {
		return false
	}
	switch {
	case r.Sensor != nil:
		return o.Sensor != nil && r.Sensor.equal(*o.Sensor)
	case r.Control != nil:
		return o.Control != nil && r.Control.equal(*o.Control)
	case r.Inventory != nil:
		return o.Inventory != nil && r.Inventory.equal(*o.Inventory)
	case r.Watchdog != nil:
		return o.Watchdog != nil && *r.Watchdog == *o.Watchdog
	case r.Annunciator != nil:
		return o.Annunciator != nil && *r.Annunciator == *o.Annunciator
	}
	return false
}

// ---- Sensors ----

// SensorType is SaHpiSensorTypeT.
type SensorType uint32

// A selection of SaHpiSensorTypeT values; every IPMI sensor type code is its
// own value.
const (
	SensorTemperature          SensorType = 0x01    // SAHPI_TEMPERATURE
	SensorVoltage              SensorType = 0x02    // SAHPI_VOLTAGE
	SensorCurrent              SensorType = 0x03    // SAHPI_CURRENT
	SensorFan                  SensorType = 0x04    // SAHPI_FAN
	SensorPhysicalSecurity     SensorType = 0x05    // SAHPI_PHYSICAL_SECURITY
	SensorProcessor            SensorType = 0x07    // SAHPI_PROCESSOR
	SensorPowerSupply          SensorType = 0x08    // SAHPI_POWER_SUPPLY
	SensorPowerUnit            SensorType = 0x09    // SAHPI_POWER_UNIT
	SensorCoolingDevice        SensorType = 0x0A    // SAHPI_COOLING_DEVICE
	SensorOtherUnitsBased      SensorType = 0x0B    // SAHPI_OTHER_UNITS_BASED_SENSOR
	SensorMemory               SensorType = 0x0C    // SAHPI_MEMORY
	SensorSystemEvent          SensorType = 0x12    // SAHPI_SYSTEM_EVENT
	SensorCriticalInterrupt    SensorType = 0x13    // SAHPI_CRITICAL_INTERRUPT
	SensorButton               SensorType = 0x14    // SAHPI_BUTTON
	SensorModuleBoard          SensorType = 0x15    // SAHPI_MODULE_BOARD
	SensorChassis              SensorType = 0x18    // SAHPI_CHASSIS
	SensorOtherFRU             SensorType = 0x1A    // SAHPI_OTHER_FRU
	SensorOSCriticalStop       SensorType = 0x20    // SAHPI_OS_CRITICAL_STOP
	SensorSlotConnector        SensorType = 0x21    // SAHPI_SLOT_CONNECTOR
	SensorPlatformAlert        SensorType = 0x24    // SAHPI_PLATFORM_ALERT
	SensorEntityPresence       SensorType = 0x25    // SAHPI_ENTITY_PRESENCE
	SensorLAN                  SensorType = 0x27    // SAHPI_LAN
	SensorManagementSubsystem  SensorType = 0x28    // SAHPI_MANAGEMENT_SUBSYSTEM_HEALTH
	SensorBattery              SensorType = 0x29    // SAHPI_BATTERY
	SensorOperational          SensorType = 0xA0    // SAHPI_OPERATIONAL
	SensorOEM                  SensorType = 0xC0    // SAHPI_OEM_SENSOR
	SensorCommChannelLinkState SensorType = 0x10001 // SAHPI_COMM_CHANNEL_LINK_STATE
	SensorManagementBusState   SensorType = 0x10002 // SAHPI_MANAGEMENT_BUS_STATE
	SensorCommChannelBusState  SensorType = 0x10003 // SAHPI_COMM_CHANNEL_BUS_STATE
	SensorConfigData           SensorType = 0x10004 // SAHPI_CONFIG_DATA
	SensorPowerBudget          SensorType = 0x10005 // SAHPI_POWER_BUDGET
)

// EventCategory is SaHpiEventCategoryT.
type EventCategory uint8

// SaHpiEventCategoryT values.
const (
	ECUnspecified    EventCategory = 0x00 // SAHPI_EC_UNSPECIFIED
	ECThreshold      EventCategory = 0x01 // SAHPI_EC_THRESHOLD
	ECUsage          EventCategory = 0x02 // SAHPI_EC_USAGE
	ECState          EventCategory = 0x03 // SAHPI_EC_STATE
	ECPredFail       EventCategory = 0x04 // SAHPI_EC_PRED_FAIL
	ECLimit          EventCategory = 0x05 // SAHPI_EC_LIMIT
	ECPerformance    EventCategory = 0x06 // SAHPI_EC_PERFORMANCE
	ECSeverity       EventCategory = 0x07 // SAHPI_EC_SEVERITY
	ECPresence       EventCategory = 0x08 // SAHPI_EC_PRESENCE
	ECEnable         EventCategory = 0x09 // SAHPI_EC_ENABLE
	ECAvailability   EventCategory = 0x0A // SAHPI_EC_AVAILABILITY
	ECRedundancy     EventCategory = 0x0B // SAHPI_EC_REDUNDANCY
	ECSensorSpecific EventCategory = 0x7E // SAHPI_EC_SENSOR_SPECIFIC
	ECGeneric        EventCategory = 0x7F // SAHPI_EC_GENERIC
)

// EventState is SaHpiEventStateT: a bit set whose meaning depends on the
// event category.
type EventState uint16

// SaHpiEventStateT values of the threshold category and a few others.
const (
	ESUnspecified EventState = 0x0000 // SAHPI_ES_UNSPECIFIED
	ESLowerMinor  EventState = 0x0001 // SAHPI_ES_LOWER_MINOR
	ESLowerMajor  EventState = 0x0002 // SAHPI_ES_LOWER_MAJOR
	ESLowerCrit   EventState = 0x0004 // SAHPI_ES_LOWER_CRIT
	ESUpperMinor  EventState = 0x0008 // SAHPI_ES_UPPER_MINOR
	ESUpperMajor  EventState = 0x0010 // SAHPI_ES_UPPER_MAJOR
	ESUpperCrit   EventState = 0x0020 // SAHPI_ES_UPPER_CRIT

	ESStateDeasserted EventState = 0x0001 // SAHPI_ES_STATE_DEASSERTED
	ESStateAsserted   EventState = 0x0002 // SAHPI_ES_STATE_ASSERTED
	ESAbsent          EventState = 0x0001 // SAHPI_ES_ABSENT
	ESPresent         EventState = 0x0002 // SAHPI_ES_PRESENT

	ESOK                EventState = 0x0001 // SAHPI_ES_OK
	ESMinorFromOK       EventState = 0x0002 // SAHPI_ES_MINOR_FROM_OK
	ESMajorFromLess     EventState = 0x0004 // SAHPI_ES_MAJOR_FROM_LESS
	ESCriticalFromLess  EventState = 0x0008 // SAHPI_ES_CRITICAL_FROM_LESS
	ESMinorFromMore     EventState = 0x0010 // SAHPI_ES_MINOR_FROM_MORE
	ESMajorFromCritical EventState = 0x0020 // SAHPI_ES_MAJOR_FROM_CRITICAL
	ESCritical          EventState = 0x0040 // SAHPI_ES_CRITICAL
	ESMonitor           EventState = 0x0080 // SAHPI_ES_MONITOR
	ESInformational     EventState = 0x0100 // SAHPI_ES_INFORMATIONAL
	ESAllEventStates    EventState = 0xFFFF // SAHPI_ALL_EVENT_STATES
)

// SensorEventCtrl is SaHpiSensorEventCtrlT.
type SensorEventCtrl uint8

// SaHpiSensorEventCtrlT values.
const (
	SECPerEvent      SensorEventCtrl = 0 // SAHPI_SEC_PER_EVENT
	SECReadOnlyMasks SensorEventCtrl = 1 // SAHPI_SEC_READ_ONLY_MASKS
	SECReadOnly      SensorEventCtrl = 2 // SAHPI_SEC_READ_ONLY
)

// SensorReadingType is SaHpiSensorReadingTypeT.
type SensorReadingType uint8

// SaHpiSensorReadingTypeT values.
const (
	ReadingInt64   SensorReadingType = 0 // SAHPI_SENSOR_READING_TYPE_INT64
	ReadingUint64  SensorReadingType = 1 // SAHPI_SENSOR_READING_TYPE_UINT64
	ReadingFloat64 SensorReadingType = 2 // SAHPI_SENSOR_READING_TYPE_FLOAT64
	ReadingBuffer  SensorReadingType = 3 // SAHPI_SENSOR_READING_TYPE_BUFFER
)

// SensorReading is SaHpiSensorReadingT; the field that matches Type holds
// the value.
type SensorReading struct {
	IsSupported bool
	Type        SensorReadingType
	Int64       int64
	Uint64      uint64
	Float64     float64
	Buffer      []byte // at most 32 bytes (SAHPI_SENSOR_BUFFER_LENGTH)
}

// Float returns a float64 reading.
func Float(v float64) SensorReading {
	return SensorReading{IsSupported: true, Type: ReadingFloat64, Float64: v}
}

func (r SensorReading) clone() SensorReading {
	if r.Buffer != nil {
		r.Buffer = append([]byte(nil), r.Buffer...)
	}
	return r
}

func (r SensorReading) equal(o SensorReading) bool {
	return r.IsSupported == o.IsSupported && r.Type == o.Type && r.Int64 == o.Int64 &&
		r.Uint64 == o.Uint64 && floatEqual(r.Float64, o.Float64) && bytes.Equal(r.Buffer, o.Buffer)
}

func floatEqual(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

// SensorUnits is SaHpiSensorUnitsT (SAHPI_SU_*, the IPMI unit codes).
type SensorUnits uint32

// A selection of SaHpiSensorUnitsT values.
const (
	UnitsUnspecified SensorUnits = 0  // SAHPI_SU_UNSPECIFIED
	UnitsDegreesC    SensorUnits = 1  // SAHPI_SU_DEGREES_C
	UnitsVolts       SensorUnits = 4  // SAHPI_SU_VOLTS
	UnitsAmps        SensorUnits = 5  // SAHPI_SU_AMPS
	UnitsWatts       SensorUnits = 6  // SAHPI_SU_WATTS
	UnitsRPM         SensorUnits = 18 // SAHPI_SU_RPM
	UnitsHz          SensorUnits = 19 // SAHPI_SU_HZ
	UnitsSecond      SensorUnits = 22 // SAHPI_SU_SECOND
)

// SensorModUnitUse is SaHpiSensorModUnitUseT.
type SensorModUnitUse uint8

// SaHpiSensorModUnitUseT values.
const (
	ModUnitNone               SensorModUnitUse = 0 // SAHPI_SMUU_NONE
	ModUnitBasicOverModifier  SensorModUnitUse = 1 // SAHPI_SMUU_BASIC_OVER_MODIFIER
	ModUnitBasicTimesModifier SensorModUnitUse = 2 // SAHPI_SMUU_BASIC_TIMES_MODIFIER
)

// SensorRangeFlags is SaHpiSensorRangeFlagsT.
type SensorRangeFlags uint8

// SAHPI_SRF_* bits.
const (
	RangeMin       SensorRangeFlags = 0x10 // SAHPI_SRF_MIN
	RangeMax       SensorRangeFlags = 0x08 // SAHPI_SRF_MAX
	RangeNormalMin SensorRangeFlags = 0x04 // SAHPI_SRF_NORMAL_MIN
	RangeNormalMax SensorRangeFlags = 0x02 // SAHPI_SRF_NORMAL_MAX
	RangeNominal   SensorRangeFlags = 0x01 // SAHPI_SRF_NOMINAL
)

// SensorRange is SaHpiSensorRangeT.
type SensorRange struct {
	Flags     SensorRangeFlags
	Max       SensorReading
	Min       SensorReading
	Nominal   SensorReading
	NormalMax SensorReading
	NormalMin SensorReading
}

// SensorDataFormat is SaHpiSensorDataFormatT.
type SensorDataFormat struct {
	IsSupported    bool
	ReadingType    SensorReadingType
	BaseUnits      SensorUnits
	ModifierUnits  SensorUnits
	ModifierUse    SensorModUnitUse
	Percentage     bool
	Range          SensorRange
	AccuracyFactor float64
}

// SensorThdMask is SaHpiSensorThdMaskT.
type SensorThdMask uint8

// SAHPI_STM_* bits.
const (
	ThdLowMinor      SensorThdMask = 0x01 // SAHPI_STM_LOW_MINOR
	ThdLowMajor      SensorThdMask = 0x02 // SAHPI_STM_LOW_MAJOR
	ThdLowCrit       SensorThdMask = 0x04 // SAHPI_STM_LOW_CRIT
	ThdUpMinor       SensorThdMask = 0x08 // SAHPI_STM_UP_MINOR
	ThdUpMajor       SensorThdMask = 0x10 // SAHPI_STM_UP_MAJOR
	ThdUpCrit        SensorThdMask = 0x20 // SAHPI_STM_UP_CRIT
	ThdUpHysteresis  SensorThdMask = 0x40 // SAHPI_STM_UP_HYSTERESIS
	ThdLowHysteresis SensorThdMask = 0x80 // SAHPI_STM_LOW_HYSTERESIS
)

// SensorThdDefn is SaHpiSensorThdDefnT: which thresholds are readable and
// writable (hysteresis support is the *_HYSTERESIS bits).
type SensorThdDefn struct {
	IsAccessible bool
	ReadThold    SensorThdMask
	WriteThold   SensorThdMask
	Nonlinear    bool
}

// SensorThresholds is SaHpiSensorThresholdsT.
type SensorThresholds struct {
	LowCritical      SensorReading
	LowMajor         SensorReading
	LowMinor         SensorReading
	UpCritical       SensorReading
	UpMajor          SensorReading
	UpMinor          SensorReading
	PosThdHysteresis SensorReading
	NegThdHysteresis SensorReading
}

// forState returns the threshold that the threshold event state bit st
// crosses.
func (t SensorThresholds) forState(st EventState) (SensorReading, bool) {
	var r SensorReading
	switch st {
	case ESLowerMinor:
		r = t.LowMinor
	case ESLowerMajor:
		r = t.LowMajor
	case ESLowerCrit:
		r = t.LowCritical
	case ESUpperMinor:
		r = t.UpMinor
	case ESUpperMajor:
		r = t.UpMajor
	case ESUpperCrit:
		r = t.UpCritical
	default:
		return r, false
	}
	return r, r.IsSupported
}

// SensorRec is SaHpiSensorRecT.
type SensorRec struct {
	Num           SensorNum
	Type          SensorType
	Category      EventCategory
	EnableCtrl    bool
	EventCtrl     SensorEventCtrl
	Events        EventState // event states the sensor supports
	DataFormat    SensorDataFormat
	ThresholdDefn SensorThdDefn
	Oem           uint32
}

func (s SensorRec) clone() SensorRec {
	r := &s.DataFormat.Range
	r.Max, r.Min, r.Nominal = r.Max.clone(), r.Min.clone(), r.Nominal.clone()
	r.NormalMax, r.NormalMin = r.NormalMax.clone(), r.NormalMin.clone()
	return s
}

func (s SensorRec) equal(o SensorRec) bool {
	a, b := s.DataFormat, o.DataFormat
	if s.Num != o.Num || s.Type != o.Type || s.Category != o.Category || s.EnableCtrl != o.EnableCtrl ||
		s.EventCtrl != o.EventCtrl || s.Events != o.Events || s.ThresholdDefn != o.ThresholdDefn || s.Oem != o.Oem {
		return false
	}
	return a.IsSupported == b.IsSupported && a.ReadingType == b.ReadingType && a.BaseUnits == b.BaseUnits &&
		a.ModifierUnits == b.ModifierUnits && a.ModifierUse == b.ModifierUse && a.Percentage == b.Percentage &&
		floatEqual(a.AccuracyFactor, b.AccuracyFactor) && a.Range.Flags == b.Range.Flags &&
		a.Range.Max.equal(b.Range.Max) && a.Range.Min.equal(b.Range.Min) && a.Range.Nominal.equal(b.Range.Nominal) &&
		a.Range.NormalMax.equal(b.Range.NormalMax) && a.Range.NormalMin.equal(b.Range.NormalMin)
}

// ---- Controls ----

// CtrlType is SaHpiCtrlTypeT.
type CtrlType uint8

// SaHpiCtrlTypeT values.
const (
	CtrlTypeDigital  CtrlType = 0x00 // SAHPI_CTRL_TYPE_DIGITAL
	CtrlTypeDiscrete CtrlType = 0x01 // SAHPI_CTRL_TYPE_DISCRETE
	CtrlTypeAnalog   CtrlType = 0x02 // SAHPI_CTRL_TYPE_ANALOG
	CtrlTypeStream   CtrlType = 0x03 // SAHPI_CTRL_TYPE_STREAM
	CtrlTypeText     CtrlType = 0x04 // SAHPI_CTRL_TYPE_TEXT
	CtrlTypeOEM      CtrlType = 0xC0 // SAHPI_CTRL_TYPE_OEM
)

// CtrlStateDigital is SaHpiCtrlStateDigitalT.
type CtrlStateDigital uint8

// SaHpiCtrlStateDigitalT values.
const (
	CtrlStateOff      CtrlStateDigital = 0 // SAHPI_CTRL_STATE_OFF
	CtrlStateOn       CtrlStateDigital = 1 // SAHPI_CTRL_STATE_ON
	CtrlStatePulseOff CtrlStateDigital = 2 // SAHPI_CTRL_STATE_PULSE_OFF
	CtrlStatePulseOn  CtrlStateDigital = 3 // SAHPI_CTRL_STATE_PULSE_ON
)

// CtrlMode is SaHpiCtrlModeT.
type CtrlMode uint8

// SaHpiCtrlModeT values.
const (
	CtrlModeAuto   CtrlMode = 0 // SAHPI_CTRL_MODE_AUTO
	CtrlModeManual CtrlMode = 1 // SAHPI_CTRL_MODE_MANUAL
)

// CtrlOutputType is SaHpiCtrlOutputTypeT.
type CtrlOutputType uint8

// SaHpiCtrlOutputTypeT values.
const (
	CtrlGeneric            CtrlOutputType = 0  // SAHPI_CTRL_GENERIC
	CtrlLED                CtrlOutputType = 1  // SAHPI_CTRL_LED
	CtrlFanSpeed           CtrlOutputType = 2  // SAHPI_CTRL_FAN_SPEED
	CtrlDryContactClosure  CtrlOutputType = 3  // SAHPI_CTRL_DRY_CONTACT_CLOSURE
	CtrlPowerSupplyInhibit CtrlOutputType = 4  // SAHPI_CTRL_POWER_SUPPLY_INHIBIT
	CtrlAudible            CtrlOutputType = 5  // SAHPI_CTRL_AUDIBLE
	CtrlFrontPanelLockout  CtrlOutputType = 6  // SAHPI_CTRL_FRONT_PANEL_LOCKOUT
	CtrlPowerInterlock     CtrlOutputType = 7  // SAHPI_CTRL_POWER_INTERLOCK
	CtrlPowerState         CtrlOutputType = 8  // SAHPI_CTRL_POWER_STATE
	CtrlLCDDisplay         CtrlOutputType = 9  // SAHPI_CTRL_LCD_DISPLAY
	CtrlOEM                CtrlOutputType = 10 // SAHPI_CTRL_OEM
	CtrlGenericAddress     CtrlOutputType = 11 // SAHPI_CTRL_GENERIC_ADDRESS
	CtrlIPAddress          CtrlOutputType = 12 // SAHPI_CTRL_IP_ADDRESS
	CtrlResourceID         CtrlOutputType = 13 // SAHPI_CTRL_RESOURCE_ID
	CtrlPowerBudget        CtrlOutputType = 14 // SAHPI_CTRL_POWER_BUDGET
	CtrlActivate           CtrlOutputType = 15 // SAHPI_CTRL_ACTIVATE
	CtrlReset              CtrlOutputType = 16 // SAHPI_CTRL_RESET
)

// CtrlState is SaHpiCtrlStateT; the field that matches Type holds the
// state.
type CtrlState struct {
	Type     CtrlType
	Digital  CtrlStateDigital
	Discrete uint32
	Analog   int32
	Stream   []byte
	Text     string
	Oem      []byte
}

func (s CtrlState) clone() CtrlState {
	if s.Stream != nil {
		s.Stream = append([]byte(nil), s.Stream...)
	}
	if s.Oem != nil {
		s.Oem = append([]byte(nil), s.Oem...)
	}
	return s
}

func (s CtrlState) equal(o CtrlState) bool {
	return s.Type == o.Type && s.Digital == o.Digital && s.Discrete == o.Discrete && s.Analog == o.Analog &&
		bytes.Equal(s.Stream, o.Stream) && s.Text == o.Text && bytes.Equal(s.Oem, o.Oem)
}

// CtrlDefaultMode is SaHpiCtrlDefaultModeT.
type CtrlDefaultMode struct {
	Mode     CtrlMode
	ReadOnly bool
}

// CtrlRec is SaHpiCtrlRecT.
type CtrlRec struct {
	Num        CtrlNum
	OutputType CtrlOutputType
	Type       CtrlType
	// Default is the type-specific default state.
	Default CtrlState
	// AnalogMin and AnalogMax bound an analog control.
	AnalogMin, AnalogMax int32
	DefaultMode          CtrlDefaultMode
	WriteOnly            bool
	Oem                  uint32
}

func (c CtrlRec) clone() CtrlRec { c.Default = c.Default.clone(); return c }

func (c CtrlRec) equal(o CtrlRec) bool {
	return c.Num == o.Num && c.OutputType == o.OutputType && c.Type == o.Type && c.Default.equal(o.Default) &&
		c.AnalogMin == o.AnalogMin && c.AnalogMax == o.AnalogMax && c.DefaultMode == o.DefaultMode &&
		c.WriteOnly == o.WriteOnly && c.Oem == o.Oem
}

// AdvancedTCA control numbers (SaHpiAtca.h).
const (
	ATCACtrlNumBlueLED               CtrlNum = 0x00   // ATCAHPI_CTRL_NUM_BLUE_LED
	ATCACtrlNumLED1                  CtrlNum = 0x01   // ATCAHPI_CTRL_NUM_LED1
	ATCACtrlNumLED2                  CtrlNum = 0x02   // ATCAHPI_CTRL_NUM_LED2
	ATCACtrlNumLED3                  CtrlNum = 0x03   // ATCAHPI_CTRL_NUM_LED3
	ATCACtrlNumAppLED                CtrlNum = 0x04   // ATCAHPI_CTRL_NUM_APP_LED
	ATCACtrlNumFailedResourceExtract CtrlNum = 0x101E // ATCAHPI_CTRL_NUM_FAILED_RESOURCE_EXTRACT
	ATCACtrlNumFRUActivation         CtrlNum = 0x1020 // ATCAHPI_CTRL_NUM_FRU_ACTIVATION
	ATCACtrlNumDesiredPwr            CtrlNum = 0x1030 // ATCAHPI_CTRL_NUM_DESIRED_PWR
	ATCACtrlNumFRUControl            CtrlNum = 0x1200 // ATCAHPI_CTRL_NUM_FRU_CONTROL
	ATCACtrlNumFRUIPMCReset          CtrlNum = 0x1201 // ATCAHPI_CTRL_NUM_FRU_IPMC_RESET
)

// AdvancedTCA sensor numbers (SaHpiAtca.h).
const (
	ATCASensorNumSlotState   SensorNum = 0x1010 // ATCAHPI_SENSOR_NUM_SLOT_STATE
	ATCASensorNumAssignedPwr SensorNum = 0x1011 // ATCAHPI_SENSOR_NUM_ASSIGNED_PWR
	ATCASensorNumMaxPwr      SensorNum = 0x1012 // ATCAHPI_SENSOR_NUM_MAX_PWR
	ATCASensorNumIPMB0       SensorNum = 0x1100 // ATCAHPI_SENSOR_NUM_IPMB0
)

// ATCAFRUActivationControl returns the record of the ATCA FRU activation
// control (ATCAHPI_CTRL_NUM_FRU_ACTIVATION): a digital control, default
// mode AUTO. Writing ON asks for activation of the FRU, OFF for its
// deactivation; in AUTO mode the shelf manager's activation policy decides.
func ATCAFRUActivationControl() CtrlRec {
	return CtrlRec{
		Num:         ATCACtrlNumFRUActivation,
		OutputType:  CtrlGeneric,
		Type:        CtrlTypeDigital,
		Default:     CtrlState{Type: CtrlTypeDigital, Digital: CtrlStateOn},
		DefaultMode: CtrlDefaultMode{Mode: CtrlModeAuto},
		WriteOnly:   false,
	}
}

// ---- Inventory ----

// IdrAreaType is SaHpiIdrAreaTypeT.
type IdrAreaType uint8

// SaHpiIdrAreaTypeT values.
const (
	IdrAreaInternalUse IdrAreaType = 0xB0 // SAHPI_IDR_AREATYPE_INTERNAL_USE
	IdrAreaChassisInfo IdrAreaType = 0xB1 // SAHPI_IDR_AREATYPE_CHASSIS_INFO
	IdrAreaBoardInfo   IdrAreaType = 0xB2 // SAHPI_IDR_AREATYPE_BOARD_INFO
	IdrAreaProductInfo IdrAreaType = 0xB3 // SAHPI_IDR_AREATYPE_PRODUCT_INFO
	IdrAreaOEM         IdrAreaType = 0xC0 // SAHPI_IDR_AREATYPE_OEM
	IdrAreaUnspecified IdrAreaType = 0xFF // SAHPI_IDR_AREATYPE_UNSPECIFIED
)

// IdrFieldType is SaHpiIdrFieldTypeT.
type IdrFieldType uint8

// SaHpiIdrFieldTypeT values.
const (
	IdrFieldChassisType    IdrFieldType = 0x00 // SAHPI_IDR_FIELDTYPE_CHASSIS_TYPE
	IdrFieldMfgDatetime    IdrFieldType = 0x01 // SAHPI_IDR_FIELDTYPE_MFG_DATETIME
	IdrFieldManufacturer   IdrFieldType = 0x02 // SAHPI_IDR_FIELDTYPE_MANUFACTURER
	IdrFieldProductName    IdrFieldType = 0x03 // SAHPI_IDR_FIELDTYPE_PRODUCT_NAME
	IdrFieldProductVersion IdrFieldType = 0x04 // SAHPI_IDR_FIELDTYPE_PRODUCT_VERSION
	IdrFieldSerialNumber   IdrFieldType = 0x05 // SAHPI_IDR_FIELDTYPE_SERIAL_NUMBER
	IdrFieldPartNumber     IdrFieldType = 0x06 // SAHPI_IDR_FIELDTYPE_PART_NUMBER
	IdrFieldFileID         IdrFieldType = 0x07 // SAHPI_IDR_FIELDTYPE_FILE_ID
	IdrFieldAssetTag       IdrFieldType = 0x08 // SAHPI_IDR_FIELDTYPE_ASSET_TAG
	IdrFieldCustom         IdrFieldType = 0x09 // SAHPI_IDR_FIELDTYPE_CUSTOM
	IdrFieldUnspecified    IdrFieldType = 0xFF // SAHPI_IDR_FIELDTYPE_UNSPECIFIED
)

// IdrField is SaHpiIdrFieldT.
type IdrField struct {
	FieldID  uint32
	Type     IdrFieldType
	ReadOnly bool
	Value    string
}

// IdrArea is an IDR area (SaHpiIdrAreaHeaderT) with its fields.
type IdrArea struct {
	AreaID   uint32
	Type     IdrAreaType
	ReadOnly bool
	Fields   []IdrField
}

// InventoryRec is SaHpiInventoryRecT together with the content of the
// inventory data repository (IDR) it describes.
type InventoryRec struct {
	IdrID      IdrID
	Persistent bool
	Oem        uint32
	Areas      []IdrArea
}

func (i InventoryRec) clone() InventoryRec {
	if i.Areas == nil {
		return i
	}
	areas := make([]IdrArea, len(i.Areas))
	for k, a := range i.Areas {
		a.Fields = append([]IdrField(nil), a.Fields...)
		areas[k] = a
	}
	i.Areas = areas
	return i
}

func (i InventoryRec) equal(o InventoryRec) bool {
	if i.IdrID != o.IdrID || i.Persistent != o.Persistent || i.Oem != o.Oem || len(i.Areas) != len(o.Areas) {
		return false
	}
	for k := range i.Areas {
		a, b := i.Areas[k], o.Areas[k]
		if a.AreaID != b.AreaID || a.Type != b.Type || a.ReadOnly != b.ReadOnly || len(a.Fields) != len(b.Fields) {
			return false
		}
		for f := range a.Fields {
			if a.Fields[f] != b.Fields[f] {
				return false
			}
		}
	}
	return true
}

// ---- Watchdog and annunciator ----

// WatchdogRec is SaHpiWatchdogRecT.
type WatchdogRec struct {
	WatchdogNum WatchdogNum
	Oem         uint32
}

// AnnunciatorType is SaHpiAnnunciatorTypeT.
type AnnunciatorType uint8

// SaHpiAnnunciatorTypeT values.
const (
	AnnunciatorLED               AnnunciatorType = 0 // SAHPI_ANNUNCIATOR_TYPE_LED
	AnnunciatorDryContactClosure AnnunciatorType = 1 // SAHPI_ANNUNCIATOR_TYPE_DRY_CONTACT_CLOSURE
	AnnunciatorAudible           AnnunciatorType = 2 // SAHPI_ANNUNCIATOR_TYPE_AUDIBLE
	AnnunciatorLCDDisplay        AnnunciatorType = 3 // SAHPI_ANNUNCIATOR_TYPE_LCD_DISPLAY
	AnnunciatorMessage           AnnunciatorType = 4 // SAHPI_ANNUNCIATOR_TYPE_MESSAGE
	AnnunciatorComposite         AnnunciatorType = 5 // SAHPI_ANNUNCIATOR_TYPE_COMPOSITE
	AnnunciatorOEM               AnnunciatorType = 6 // SAHPI_ANNUNCIATOR_TYPE_OEM
)

// AnnunciatorRec is SaHpiAnnunciatorRecT.
type AnnunciatorRec struct {
	AnnunciatorNum AnnunciatorNum
	Type           AnnunciatorType
	ModeReadOnly   bool
	MaxConditions  uint32
	Oem            uint32
}
