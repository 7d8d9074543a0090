package api

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"hpiagent/hpi"
)

// The JSON forms of the model. Enumerations are their OpenHPI names,
// entity paths their canonical text form.

// ResourceView is one resource (RPT entry).
type ResourceView struct {
	ID                  uint32   `json:"id"`
	EntityPath          string   `json:"entity_path"`
	Tag                 string   `json:"tag"`
	Capabilities        []string `json:"capabilities"`
	HotSwapCapabilities uint32   `json:"hotswap_capabilities"`
	Severity            string   `json:"severity"`
	Failed              bool     `json:"failed"`
	ManufacturerID      uint32   `json:"manufacturer_id"`
	ProductID           uint16   `json:"product_id"`
	FirmwareRevision    string   `json:"firmware_revision"`
	GUID                string   `json:"guid,omitempty"`
}

func resourceView(e hpi.RPTEntry) ResourceView {
	caps := []string{}
	if s := e.Capabilities.String(); s != "" {
		caps = strings.Split(s, " | ")
	}
	v := ResourceView{
		ID: uint32(e.ResourceID), EntityPath: e.EntityPath.String(), Tag: e.Tag, Capabilities: caps,
		HotSwapCapabilities: uint32(e.HotSwapCapabilities), Severity: e.Severity.String(), Failed: e.ResourceFailed,
		ManufacturerID: e.ResourceInfo.ManufacturerID, ProductID: e.ResourceInfo.ProductID,
		FirmwareRevision: fmt.Sprintf("%d.%d", e.ResourceInfo.FirmwareMajorRev, e.ResourceInfo.FirmwareMinorRev),
	}
	if e.ResourceInfo.GUID != ([16]byte{}) {
		v.GUID = hex.EncodeToString(e.ResourceInfo.GUID[:])
	}
	return v
}

// RDRView is one resource data record.
type RDRView struct {
	RecordID    uint32              `json:"record_id"`
	Type        string              `json:"type"`
	Num         uint32              `json:"num"`
	Name        string              `json:"name"`
	EntityPath  string              `json:"entity_path,omitempty"`
	IsFRU       bool                `json:"is_fru"`
	Sensor      *SensorRecView      `json:"sensor,omitempty"`
	Control     *ControlRecView     `json:"control,omitempty"`
	Inventory   *InventorySummary   `json:"inventory,omitempty"`
	Watchdog    *WatchdogRecView    `json:"watchdog,omitempty"`
	Annunciator *AnnunciatorRecView `json:"annunciator,omitempty"`
}

// SensorRecView is the sensor part of an RDR.
type SensorRecView struct {
	Type            uint32   `json:"sensor_type"`
	Category        uint8    `json:"event_category"`
	ReadingType     string   `json:"reading_type,omitempty"`
	Units           string   `json:"units"`
	SupportedEvents uint16   `json:"supported_event_states"`
	ThresholdsRead  []string `json:"thresholds_readable"`
	ThresholdsWrite []string `json:"thresholds_writable"`
	EnableCtrl      bool     `json:"enable_ctrl"`
}

// ControlRecView is the control part of an RDR.
type ControlRecView struct {
	OutputType  string `json:"output_type"`
	Type        string `json:"type"`
	DefaultMode string `json:"default_mode"`
	ReadOnly    bool   `json:"mode_read_only"`
	WriteOnly   bool   `json:"write_only"`
	// Permission is what writing the control needs.
	Permission Permission `json:"permission"`
}

// InventorySummary is the inventory part of an RDR; the content is at
// /v1/resources/{id}/inventory.
type InventorySummary struct {
	IdrID      uint32 `json:"idr_id"`
	Persistent bool   `json:"persistent"`
	Areas      int    `json:"areas"`
}

// WatchdogRecView is the watchdog part of an RDR.
type WatchdogRecView struct {
	Num uint32 `json:"num"`
}

// AnnunciatorRecView is the annunciator part of an RDR.
type AnnunciatorRecView struct {
	Type          uint8  `json:"type"`
	ModeReadOnly  bool   `json:"mode_read_only"`
	MaxConditions uint32 `json:"max_conditions"`
}

var thresholdNames = []struct {
	m    hpi.SensorThdMask
	name string
}{
	{hpi.ThdLowMinor, "LOW_MINOR"}, {hpi.ThdLowMajor, "LOW_MAJOR"}, {hpi.ThdLowCrit, "LOW_CRIT"},
	{hpi.ThdUpMinor, "UP_MINOR"}, {hpi.ThdUpMajor, "UP_MAJOR"}, {hpi.ThdUpCrit, "UP_CRIT"},
	{hpi.ThdUpHysteresis, "UP_HYSTERESIS"}, {hpi.ThdLowHysteresis, "LOW_HYSTERESIS"},
}

func thdMaskNames(m hpi.SensorThdMask) []string {
	out := []string{}
	for _, t := range thresholdNames {
		if m&t.m != 0 {
			out = append(out, t.name)
		}
	}
	return out
}

var unitNames = map[hpi.SensorUnits]string{
	hpi.UnitsUnspecified: "UNSPECIFIED", hpi.UnitsDegreesC: "DEGREES_C", hpi.UnitsVolts: "VOLTS",
	hpi.UnitsAmps: "AMPS", hpi.UnitsWatts: "WATTS", hpi.UnitsRPM: "RPM", hpi.UnitsHz: "HZ", hpi.UnitsSecond: "SECOND",
}

func unitName(u hpi.SensorUnits) string {
	if n, ok := unitNames[u]; ok {
		return n
	}
	return fmt.Sprintf("%d", uint32(u))
}

var readingTypeNames = map[hpi.SensorReadingType]string{
	hpi.ReadingInt64: "INT64", hpi.ReadingUint64: "UINT64", hpi.ReadingFloat64: "FLOAT64", hpi.ReadingBuffer: "BUFFER",
}

var ctrlTypeNames = map[hpi.CtrlType]string{
	hpi.CtrlTypeDigital: "DIGITAL", hpi.CtrlTypeDiscrete: "DISCRETE", hpi.CtrlTypeAnalog: "ANALOG",
	hpi.CtrlTypeStream: "STREAM", hpi.CtrlTypeText: "TEXT", hpi.CtrlTypeOEM: "OEM",
}

var ctrlOutputNames = []string{"GENERIC", "LED", "FAN_SPEED", "DRY_CONTACT_CLOSURE", "POWER_SUPPLY_INHIBIT",
	"AUDIBLE", "FRONT_PANEL_LOCKOUT", "POWER_INTERLOCK", "POWER_STATE", "LCD_DISPLAY", "OEM",
	"GENERIC_ADDRESS", "IP_ADDRESS", "RESOURCE_ID", "POWER_BUDGET", "ACTIVATE", "RESET"}

var digitalNames = []string{"OFF", "ON", "PULSE_OFF", "PULSE_ON"}

func rdrView(r hpi.RDR) RDRView {
	v := RDRView{RecordID: r.RecordID, Type: r.Type.String(), Num: r.Num(), Name: r.IDString, IsFRU: r.IsFRU}
	if len(r.Entity) > 0 {
		v.EntityPath = r.Entity.String()
	}
	switch {
	case r.Sensor != nil:
		s := r.Sensor
		v.Sensor = &SensorRecView{
			Type: uint32(s.Type), Category: uint8(s.Category), Units: unitName(s.DataFormat.BaseUnits),
			SupportedEvents: uint16(s.Events), ThresholdsRead: []string{}, ThresholdsWrite: []string{}, EnableCtrl: s.EnableCtrl,
		}
		if s.DataFormat.IsSupported {
			v.Sensor.ReadingType = readingTypeNames[s.DataFormat.ReadingType]
		}
		if s.ThresholdDefn.IsAccessible {
			v.Sensor.ThresholdsRead = thdMaskNames(s.ThresholdDefn.ReadThold)
			v.Sensor.ThresholdsWrite = thdMaskNames(s.ThresholdDefn.WriteThold)
		}
	case r.Control != nil:
		c := r.Control
		v.Control = &ControlRecView{OutputType: ctrlOutputName(c.OutputType), Type: ctrlTypeName(c.Type),
			DefaultMode: modeName(c.DefaultMode.Mode), ReadOnly: c.DefaultMode.ReadOnly, WriteOnly: c.WriteOnly,
			Permission: controlPermission(c)}
	case r.Inventory != nil:
		v.Inventory = &InventorySummary{IdrID: r.Inventory.IdrID, Persistent: r.Inventory.Persistent, Areas: len(r.Inventory.Areas)}
	case r.Watchdog != nil:
		v.Watchdog = &WatchdogRecView{Num: r.Watchdog.WatchdogNum}
	case r.Annunciator != nil:
		v.Annunciator = &AnnunciatorRecView{Type: uint8(r.Annunciator.Type), ModeReadOnly: r.Annunciator.ModeReadOnly, MaxConditions: r.Annunciator.MaxConditions}
	}
	return v
}

func ctrlOutputName(t hpi.CtrlOutputType) string {
	if int(t) < len(ctrlOutputNames) {
		return ctrlOutputNames[t]
	}
	return fmt.Sprintf("%d", uint8(t))
}

func ctrlTypeName(t hpi.CtrlType) string {
	if n, ok := ctrlTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("%d", uint8(t))
}

func modeName(m hpi.CtrlMode) string {
	if m == hpi.CtrlModeManual {
		return "MANUAL"
	}
	return "AUTO"
}

// ReadingView is a sensor reading: Value holds INT64, UINT64 and FLOAT64
// readings, Buffer (hex) BUFFER readings.
type ReadingView struct {
	Supported bool   `json:"supported"`
	Type      string `json:"type,omitempty"`
	Value     any    `json:"value,omitempty"`
	Buffer    string `json:"buffer,omitempty"`
}

func readingView(r hpi.SensorReading) ReadingView {
	v := ReadingView{Supported: r.IsSupported}
	if !r.IsSupported {
		return v
	}
	v.Type = readingTypeNames[r.Type]
	switch r.Type {
	case hpi.ReadingInt64:
		v.Value = r.Int64
	case hpi.ReadingUint64:
		v.Value = r.Uint64
	case hpi.ReadingFloat64:
		v.Value = r.Float64
	case hpi.ReadingBuffer:
		v.Buffer = hex.EncodeToString(r.Buffer)
	}
	return v
}

// readingFloat returns a numeric reading as float64.
func readingFloat(r hpi.SensorReading) (float64, bool) {
	if !r.IsSupported {
		return 0, false
	}
	switch r.Type {
	case hpi.ReadingInt64:
		return float64(r.Int64), true
	case hpi.ReadingUint64:
		return float64(r.Uint64), true
	case hpi.ReadingFloat64:
		return r.Float64, true
	}
	return 0, false
}

// ThresholdsView are the current thresholds of a sensor; unsupported ones
// are omitted.
type ThresholdsView struct {
	LowCritical      *ReadingView `json:"low_critical,omitempty"`
	LowMajor         *ReadingView `json:"low_major,omitempty"`
	LowMinor         *ReadingView `json:"low_minor,omitempty"`
	UpCritical       *ReadingView `json:"up_critical,omitempty"`
	UpMajor          *ReadingView `json:"up_major,omitempty"`
	UpMinor          *ReadingView `json:"up_minor,omitempty"`
	PosThdHysteresis *ReadingView `json:"pos_hysteresis,omitempty"`
	NegThdHysteresis *ReadingView `json:"neg_hysteresis,omitempty"`
}

func optReading(r hpi.SensorReading) *ReadingView {
	if !r.IsSupported {
		return nil
	}
	v := readingView(r)
	return &v
}

func thresholdsView(t hpi.SensorThresholds) ThresholdsView {
	return ThresholdsView{
		LowCritical: optReading(t.LowCritical), LowMajor: optReading(t.LowMajor), LowMinor: optReading(t.LowMinor),
		UpCritical: optReading(t.UpCritical), UpMajor: optReading(t.UpMajor), UpMinor: optReading(t.UpMinor),
		PosThdHysteresis: optReading(t.PosThdHysteresis), NegThdHysteresis: optReading(t.NegThdHysteresis),
	}
}

// SensorView is the answer of GET /v1/resources/{id}/sensors/{num}.
type SensorView struct {
	ResourceID uint32 `json:"resource_id"`
	Num        uint32 `json:"num"`
	Name       string `json:"name"`
	EntityPath string `json:"entity_path"`
	Units      string `json:"units"`
	// Reading is null until the sensor was read once.
	Reading    *ReadingView `json:"reading"`
	EventState uint16       `json:"event_state"`
	Timestamp  *time.Time   `json:"timestamp"`
	// Thresholds is null when they are unknown.
	Thresholds *ThresholdsView `json:"thresholds"`
}

// InventoryView is one inventory data repository with its areas.
type InventoryView struct {
	IdrID      uint32     `json:"idr_id"`
	Name       string     `json:"name"`
	Persistent bool       `json:"persistent"`
	Areas      []AreaView `json:"areas"`
}

// AreaView is one IDR area.
type AreaView struct {
	AreaID   uint32      `json:"area_id"`
	Type     uint8       `json:"type"`
	ReadOnly bool        `json:"read_only"`
	Fields   []FieldView `json:"fields"`
}

// FieldView is one IDR field.
type FieldView struct {
	FieldID  uint32 `json:"field_id"`
	Type     uint8  `json:"type"`
	ReadOnly bool   `json:"read_only"`
	Value    string `json:"value"`
}

func inventoryView(r hpi.RDR) InventoryView {
	v := InventoryView{IdrID: r.Inventory.IdrID, Name: r.IDString, Persistent: r.Inventory.Persistent, Areas: []AreaView{}}
	for _, a := range r.Inventory.Areas {
		av := AreaView{AreaID: a.AreaID, Type: uint8(a.Type), ReadOnly: a.ReadOnly, Fields: []FieldView{}}
		for _, f := range a.Fields {
			av.Fields = append(av.Fields, FieldView{FieldID: f.FieldID, Type: uint8(f.Type), ReadOnly: f.ReadOnly, Value: f.Value})
		}
		v.Areas = append(v.Areas, av)
	}
	return v
}

// HotSwapView is the hot-swap state of a FRU resource.
type HotSwapView struct {
	ResourceID         uint32     `json:"resource_id"`
	State              string     `json:"state"`
	Known              bool       `json:"known"`
	MState             string     `json:"m_state,omitempty"`
	Failed             bool       `json:"failed"`
	PolicyCanceled     bool       `json:"policy_canceled"`
	Deadline           *time.Time `json:"deadline,omitempty"`
	AutoInsertTimeout  string     `json:"auto_insert_timeout"`
	AutoExtractTimeout string     `json:"auto_extract_timeout"`
}

func hotSwapView(id hpi.ResourceID, st hpi.HotSwapStatus) HotSwapView {
	v := HotSwapView{ResourceID: uint32(id), State: st.State.String(), Known: st.Known, Failed: st.Failed,
		PolicyCanceled: st.PolicyCanceled, AutoInsertTimeout: st.AutoInsertTimeout.String(), AutoExtractTimeout: st.AutoExtractTimeout.String()}
	if st.LastMState != hpi.MStateUnknown {
		v.MState = st.LastMState.String()
	}
	if !st.Deadline.IsZero() {
		d := st.Deadline
		v.Deadline = &d
	}
	return v
}

// ControlStateView is a control state: Type names the field that holds it.
type ControlStateView struct {
	// Type is DIGITAL, DISCRETE, ANALOG, STREAM or TEXT.
	Type string `json:"type"`
	// Digital is OFF, ON, PULSE_OFF or PULSE_ON.
	Digital  string  `json:"digital,omitempty"`
	Discrete *uint32 `json:"discrete,omitempty"`
	Analog   *int32  `json:"analog,omitempty"`
	// Stream is hex.
	Stream string `json:"stream,omitempty"`
	Text   string `json:"text,omitempty"`
}

func (v ControlStateView) summary() string {
	switch strings.ToUpper(v.Type) {
	case "DIGITAL":
		return "DIGITAL " + strings.ToUpper(v.Digital)
	case "DISCRETE":
		if v.Discrete != nil {
			return fmt.Sprintf("DISCRETE %d", *v.Discrete)
		}
	case "ANALOG":
		if v.Analog != nil {
			return fmt.Sprintf("ANALOG %d", *v.Analog)
		}
	case "STREAM":
		return fmt.Sprintf("STREAM %d bytes", len(v.Stream)/2)
	case "TEXT":
		return fmt.Sprintf("TEXT %d chars", len(v.Text))
	}
	return strings.ToUpper(v.Type)
}

// toHPI checks the state against the control's record and converts it.
func (v ControlStateView) toHPI(rec *hpi.CtrlRec) (hpi.CtrlState, error) {
	want := ctrlTypeName(rec.Type)
	if strings.ToUpper(v.Type) != want {
		return hpi.CtrlState{}, newErr(CodeBadRequest, fmt.Sprintf("control state type %q: the control is %s", v.Type, want))
	}
	if rec.DefaultMode.ReadOnly && rec.DefaultMode.Mode == hpi.CtrlModeAuto {
		return hpi.CtrlState{}, newErr(CodeReadOnly, "the control is in AUTO mode and its mode is read-only")
	}
	st := hpi.CtrlState{Type: rec.Type}
	switch rec.Type {
	case hpi.CtrlTypeDigital:
		found := false
		for i, n := range digitalNames {
			if strings.ToUpper(v.Digital) == n {
				st.Digital, found = hpi.CtrlStateDigital(i), true
			}
		}
		if !found {
			return st, newErr(CodeBadRequest, fmt.Sprintf("digital state %q: want OFF, ON, PULSE_OFF or PULSE_ON", v.Digital))
		}
	case hpi.CtrlTypeDiscrete:
		if v.Discrete == nil {
			return st, newErr(CodeBadRequest, "discrete state missing")
		}
		st.Discrete = *v.Discrete
	case hpi.CtrlTypeAnalog:
		if v.Analog == nil {
			return st, newErr(CodeBadRequest, "analog state missing")
		}
		if *v.Analog < rec.AnalogMin || *v.Analog > rec.AnalogMax {
			return st, newErr(CodeBadRequest, fmt.Sprintf("analog state %d outside %d..%d", *v.Analog, rec.AnalogMin, rec.AnalogMax))
		}
		st.Analog = *v.Analog
	case hpi.CtrlTypeStream:
		b, err := hex.DecodeString(v.Stream)
		if err != nil || len(b) > 4 {
			return st, newErr(CodeBadRequest, "stream state: want at most 4 bytes in hex")
		}
		st.Stream = b
	case hpi.CtrlTypeText:
		if len(v.Text) > 255 {
			return st, newErr(CodeBadRequest, "text state longer than 255 bytes")
		}
		st.Text = v.Text
	default:
		return st, newErr(CodeBadRequest, "OEM controls cannot be set through this API")
	}
	return st, nil
}

// EventView is one event.
type EventView struct {
	ID         uint64    `json:"id"`
	Source     uint32    `json:"source"`
	EntityPath string    `json:"entity_path,omitempty"`
	Type       string    `json:"type"`
	Timestamp  time.Time `json:"timestamp"`
	Severity   string    `json:"severity"`

	Resource *struct {
		Type string `json:"type"`
	} `json:"resource,omitempty"`
	Sensor  *SensorEventView  `json:"sensor,omitempty"`
	HotSwap *HotSwapEventView `json:"hotswap,omitempty"`
	User    *TextEventView    `json:"user,omitempty"`
	OEM     *TextEventView    `json:"oem,omitempty"`
	HPISW   *HPISWEventView   `json:"hpi_sw,omitempty"`
	Domain  *DomainEventView  `json:"domain,omitempty"`
}

// SensorEventView is the payload of a SENSOR event.
type SensorEventView struct {
	Num              uint32       `json:"num"`
	SensorType       uint32       `json:"sensor_type"`
	Category         uint8        `json:"event_category"`
	Assertion        bool         `json:"assertion"`
	EventState       uint16       `json:"event_state"`
	TriggerReading   *ReadingView `json:"trigger_reading,omitempty"`
	TriggerThreshold *ReadingView `json:"trigger_threshold,omitempty"`
	PreviousState    uint16       `json:"previous_state"`
	CurrentState     uint16       `json:"current_state"`
}

// HotSwapEventView is the payload of a HOTSWAP event.
type HotSwapEventView struct {
	State         string `json:"state"`
	PreviousState string `json:"previous_state"`
	Cause         string `json:"cause"`
}

// TextEventView is the payload of USER and OEM events.
type TextEventView struct {
	MId  uint32 `json:"manufacturer_id,omitempty"`
	Data string `json:"data"`
}

// HPISWEventView is the payload of an HPI_SW event (alarm table changes).
type HPISWEventView struct {
	Type   uint8      `json:"type"`
	Data   string     `json:"data,omitempty"`
	Alarm  *AlarmView `json:"alarm,omitempty"`
	Action string     `json:"alarm_action,omitempty"`
}

// DomainEventView is the payload of a DOMAIN event.
type DomainEventView struct {
	Type     uint8  `json:"type"`
	DomainID uint32 `json:"domain_id"`
}

func eventView(e hpi.Event) EventView {
	v := EventView{ID: e.ID, Source: uint32(e.Source), Type: e.Type.String(), Timestamp: e.Timestamp, Severity: e.Severity.String()}
	if len(e.Entity) > 0 {
		v.EntityPath = e.Entity.String()
	}
	switch e.Type {
	case hpi.EventResource:
		v.Resource = &struct {
			Type string `json:"type"`
		}{e.Resource.Type.String()}
	case hpi.EventSensor:
		s := e.Sensor
		sv := &SensorEventView{Num: s.Num, SensorType: uint32(s.SensorType), Category: uint8(s.Category), Assertion: s.Assertion,
			EventState: uint16(s.EventState), PreviousState: uint16(s.PreviousState), CurrentState: uint16(s.CurrentState)}
		if s.OptionalDataPresent&hpi.SODTriggerReading != 0 {
			sv.TriggerReading = optReading(s.TriggerReading)
		}
		if s.OptionalDataPresent&hpi.SODTriggerThreshold != 0 {
			sv.TriggerThreshold = optReading(s.TriggerThreshold)
		}
		v.Sensor = sv
	case hpi.EventHotSwap:
		v.HotSwap = &HotSwapEventView{State: e.HotSwap.HotSwapState.String(), PreviousState: e.HotSwap.PreviousHotSwapState.String(),
			Cause: e.HotSwap.CauseOfStateChange.String()}
	case hpi.EventUser:
		v.User = &TextEventView{Data: e.User.Data}
	case hpi.EventOEM:
		v.OEM = &TextEventView{MId: e.OEM.MId, Data: e.OEM.Data}
	case hpi.EventHPISW:
		h := &HPISWEventView{Type: e.HPISW.Type, Data: e.HPISW.Data}
		if e.HPISW.Alarm != nil {
			a := alarmView(e.HPISW.Alarm.Alarm)
			h.Alarm = &a
			h.Action = e.HPISW.Alarm.Action.String()
		}
		v.HPISW = h
	case hpi.EventDomain:
		v.Domain = &DomainEventView{Type: uint8(e.Domain.Type), DomainID: uint32(e.Domain.DomainID)}
	}
	return v
}

// AlarmView is one alarm of the domain alarm table.
type AlarmView struct {
	ID           uint32        `json:"id"`
	Timestamp    time.Time     `json:"timestamp"`
	Severity     string        `json:"severity"`
	Acknowledged bool          `json:"acknowledged"`
	Condition    ConditionView `json:"condition"`
}

// ConditionView is what an alarm is about.
type ConditionView struct {
	Type       string `json:"type"`
	EntityPath string `json:"entity_path"`
	ResourceID uint32 `json:"resource_id"`
	SensorNum  uint32 `json:"sensor_num"`
	EventState uint16 `json:"event_state"`
	Name       string `json:"name"`
}

func alarmView(a hpi.Alarm) AlarmView {
	return AlarmView{ID: a.AlarmID, Timestamp: a.Timestamp, Severity: a.Severity.String(), Acknowledged: a.Acknowledged,
		Condition: ConditionView{Type: a.Condition.Type.String(), EntityPath: a.Condition.Entity.String(),
			ResourceID: uint32(a.Condition.ResourceID), SensorNum: a.Condition.SensorNum,
			EventState: uint16(a.Condition.EventState), Name: a.Condition.Name}}
}

// EventLogInfoView describes the domain event log.
type EventLogInfoView struct {
	Entries        int        `json:"entries"`
	Size           int        `json:"size"`
	Enabled        bool       `json:"enabled"`
	Overflow       bool       `json:"overflow"`
	OverflowAction string     `json:"overflow_action"`
	Dropped        uint64     `json:"dropped"`
	Updated        *time.Time `json:"updated,omitempty"`
}

func eventLogInfoView(i hpi.EventLogInfo) EventLogInfoView {
	v := EventLogInfoView{Entries: i.Entries, Size: i.Size, Enabled: i.Enabled, Overflow: i.OverflowFlag,
		OverflowAction: i.OverflowAction.String(), Dropped: i.Dropped}
	if !i.UpdateTimestamp.IsZero() {
		t := i.UpdateTimestamp
		v.Updated = &t
	}
	return v
}

// EventLogEntryView is one entry of the domain event log.
type EventLogEntryView struct {
	EntryID   uint32    `json:"entry_id"`
	Timestamp time.Time `json:"timestamp"`
	Event     EventView `json:"event"`
}
