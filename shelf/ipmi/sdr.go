package ipmi

import (
	"fmt"
	"strconv"
)

// SDRType is the record type of a Sensor Data Record (IPMI 2.0 §43).
type SDRType uint8

// SDR record types decoded by ParseSDR.
const (
	SDRFullSensor    SDRType = 0x01
	SDRCompactSensor SDRType = 0x02
	SDREventOnly     SDRType = 0x03
	SDRFRULocator    SDRType = 0x11
	SDRMCLocator     SDRType = 0x12
)

func (t SDRType) String() string {
	switch t {
	case SDRFullSensor:
		return "full sensor"
	case SDRCompactSensor:
		return "compact sensor"
	case SDREventOnly:
		return "event-only sensor"
	case SDRFRULocator:
		return "FRU device locator"
	case SDRMCLocator:
		return "MC device locator"
	}
	return fmt.Sprintf("type 0x%02x", uint8(t))
}

// SDRHeaderLen is the length of the record header (ID, version, type, length).
const SDRHeaderLen = 5

// SDRHeader is the five-byte header of every SDR.
type SDRHeader struct {
	RecordID uint16
	Version  uint8 // 0x51 for IPMI 1.5/2.0 records
	Type     SDRType
	Length   uint8 // bytes following the header
}

// ParseSDRHeader decodes a record header.
func ParseSDRHeader(b []byte) (SDRHeader, error) {
	if len(b) < SDRHeaderLen {
		return SDRHeader{}, short("sdr header", len(b), SDRHeaderLen)
	}
	return SDRHeader{RecordID: le16(b), Version: b[2], Type: SDRType(b[3]), Length: b[4]}, nil
}

// Marshal encodes h.
func (h SDRHeader) Marshal() []byte {
	return []byte{byte(h.RecordID), byte(h.RecordID >> 8), h.Version, byte(h.Type), h.Length}
}

// SDR is one decoded Sensor Data Record. Exactly one of Sensor,
// FRULocator and MCLocator is set for the types this package knows;
// other types keep only Header and Raw.
type SDR struct {
	Header     SDRHeader
	Raw        []byte // the whole record, header included
	Sensor     *SensorRecord
	FRULocator *FRULocatorRecord
	MCLocator  *MCLocatorRecord
}

// Units of a sensor (SDR bytes 20-22, 0-based).
type Units struct {
	Rate       uint8 // 0 none, 1 per µs, 2 per ms, 3 per s, 4 per minute, 5 per hour, 6 per day
	Relation   uint8 // modifier unit relation: 0 none, 1 base/modifier, 2 base*modifier
	Percentage bool
	Base       uint8
	Modifier   uint8
}

// Sharing describes the sensors that one compact or event-only record
// stands for (IPMI 2.0 §43.2, bytes 23-24).
type Sharing struct {
	Count             uint8 // number of sensors sharing the record (0 and 1 mean one)
	AlphaModifier     bool  // ID string instance modifier: false numeric, true alpha
	ModifierOffset    uint8 // 7 bits
	InstanceIncrement bool  // entity instance increments with each shared sensor
}

// Threshold indexes the six thresholds in the order of the Get/Set Sensor
// Thresholds mask bits.
type Threshold uint8

// Thresholds, in mask-bit order.
const (
	LowerNonCritical Threshold = iota
	LowerCritical
	LowerNonRecoverable
	UpperNonCritical
	UpperCritical
	UpperNonRecoverable
)

var thresholdAbbr = [6]string{"lnc", "lcr", "lnr", "unc", "ucr", "unr"}

func (t Threshold) String() string {
	if int(t) < len(thresholdAbbr) {
		return thresholdAbbr[t]
	}
	return fmt.Sprintf("threshold %d", uint8(t))
}

// SensorRecord is a full (01h), compact (02h) or event-only (03h) sensor
// record. Fields that a record type lacks stay zero.
type SensorRecord struct {
	Type     SDRType
	OwnerID  uint8 // 8-bit: IPMB slave address (bit 0 clear) or software ID (bit 0 set)
	OwnerLUN uint8
	Channel  uint8
	Number   uint8

	EntityID       uint8
	EntityInstance uint8 // 7 bits
	LogicalEntity  bool

	Init         uint8 // sensor initialisation byte (full/compact)
	Capabilities uint8 // sensor capabilities byte (full/compact)

	SensorType       uint8
	EventReadingType uint8
	AssertMask       uint16 // assertion event mask / lower threshold reading mask
	DeassertMask     uint16 // deassertion event mask / upper threshold reading mask
	ReadingMask      uint16 // discrete reading mask / settable+readable threshold masks

	Units Units
	Conv  Conversion // full only (Format is also set for compact records)

	Direction     uint8 // 0 unspecified, 1 input, 2 output
	AnalogFlags   uint8 // full: bit0 nominal, bit1 normal max, bit2 normal min specified
	Nominal       uint8
	NormalMax     uint8
	NormalMin     uint8
	MaxReading    uint8
	MinReading    uint8
	Thresholds    [6]uint8 // full: initial thresholds, indexed by Threshold
	PosHysteresis uint8
	NegHysteresis uint8

	Share Sharing // compact and event-only
	OEM   uint8
	ID    TLString
}

// Threshold sensor helpers. Event/reading type 0x01 is "threshold".

// IsThreshold reports whether the sensor is a threshold-based sensor.
func (s *SensorRecord) IsThreshold() bool { return s.EventReadingType == 0x01 }

// Name is the sensor's ID string.
func (s *SensorRecord) Name() string { return s.ID.Text() }

// Readable reports whether threshold t is readable according to the SDR.
func (s *SensorRecord) Readable(t Threshold) bool {
	return s.IsThreshold() && s.ReadingMask&(1<<t) != 0
}

// Settable reports whether threshold t is settable according to the SDR.
func (s *SensorRecord) Settable(t Threshold) bool {
	return s.IsThreshold() && s.ReadingMask&(1<<(8+t)) != 0
}

// ThresholdAccess is the capabilities' threshold access support: 0 none,
// 1 readable, 2 readable and settable, 3 fixed and unreadable.
func (s *SensorRecord) ThresholdAccess() uint8 { return (s.Capabilities >> 2) & 3 }

// HysteresisAccess is the capabilities' hysteresis support, coded like
// ThresholdAccess.
func (s *SensorRecord) HysteresisAccess() uint8 { return (s.Capabilities >> 4) & 3 }

// EventControl is the capabilities' event message control: 0 per threshold/
// discrete state, 1 entire sensor only, 2 global disable only, 3 none.
func (s *SensorRecord) EventControl() uint8 { return s.Capabilities & 3 }

// Analog reports whether readings of the sensor convert to real values
// (full records with an analog data format).
func (s *SensorRecord) Analog() bool { return s.Type == SDRFullSensor && s.Conv.Analog() }

// SharedSensor is one of the sensors a compact or event-only record
// stands for.
type SharedSensor struct {
	Number         uint8
	EntityInstance uint8
	Name           string
}

// Shared expands a shared record into its sensors (one for full records
// or a share count of 0 or 1), applying the ID string instance modifier:
// numeric suffixes count from the offset, alpha suffixes are A..Z, AA..
func (s *SensorRecord) Shared() []SharedSensor {
	n := int(s.Share.Count)
	if s.Type == SDRFullSensor || n <= 1 {
		return []SharedSensor{{Number: s.Number, EntityInstance: s.EntityInstance, Name: s.Name()}}
	}
	out := make([]SharedSensor, 0, n)
	base := s.Name()
	for i := 0; i < n; i++ {
		k := int(s.Share.ModifierOffset) + i
		var suffix string
		if s.Share.AlphaModifier {
			suffix = alphaSuffix(k)
		} else {
			suffix = strconv.Itoa(k)
		}
		inst := s.EntityInstance
		if s.Share.InstanceIncrement {
			inst = (inst + uint8(i)) & 0x7f
		}
		out = append(out, SharedSensor{Number: s.Number + uint8(i), EntityInstance: inst, Name: base + suffix})
	}
	return out
}

// alphaSuffix renders 0 as A, 25 as Z, 26 as AA (bijective base 26).
func alphaSuffix(k int) string {
	var b []byte
	for k++; k > 0; k = (k - 1) / 26 {
		b = append([]byte{byte('A' + (k-1)%26)}, b...)
	}
	return string(b)
}

// FRULocatorRecord is a FRU Device Locator record (11h, IPMI 2.0 §43.8).
type FRULocatorRecord struct {
	AccessAddress  uint8 // 8-bit slave address of the controller holding the FRU data
	FRUDeviceID    uint8 // FRU device ID (logical) or slave address (non-intelligent)
	Logical        bool  // logical FRU device (accessed with Read FRU Data)
	AccessLUN      uint8
	PrivateBus     uint8
	Channel        uint8
	DeviceType     uint8
	DeviceModifier uint8
	EntityID       uint8
	EntityInstance uint8
	OEM            uint8
	ID             TLString
}

// MCLocatorRecord is a Management Controller Device Locator record (12h, §43.9).
type MCLocatorRecord struct {
	SlaveAddress   uint8 // 8-bit IPMB address
	Channel        uint8
	PowerState     uint8 // power state notification / global initialisation byte
	Capabilities   uint8 // device capabilities (same bits as DeviceID.DeviceSupport)
	EntityID       uint8
	EntityInstance uint8
	OEM            uint8
	ID             TLString
}

// ParseSDR decodes one whole record (header included).
func ParseSDR(b []byte) (SDR, error) {
	h, err := ParseSDRHeader(b)
	if err != nil {
		return SDR{}, err
	}
	what := fmt.Sprintf("sdr record 0x%04x (%s)", h.RecordID, h.Type)
	if len(b) < SDRHeaderLen+int(h.Length) {
		return SDR{}, fmt.Errorf("%s: %w: header announces %d bytes, %d present", what, ErrShortResponse, h.Length, len(b)-SDRHeaderLen)
	}
	b = b[:SDRHeaderLen+int(h.Length)]
	r := SDR{Header: h, Raw: append([]byte(nil), b...)}
	b = r.Raw
	switch h.Type {
	case SDRFullSensor:
		r.Sensor, err = parseFull(b, what)
	case SDRCompactSensor:
		r.Sensor, err = parseCompact(b, what)
	case SDREventOnly:
		r.Sensor, err = parseEventOnly(b, what)
	case SDRFRULocator:
		r.FRULocator, err = parseFRULocator(b, what)
	case SDRMCLocator:
		r.MCLocator, err = parseMCLocator(b, what)
	}
	if err != nil {
		return SDR{}, err
	}
	return r, nil
}

func sensorKey(b []byte, t SDRType) *SensorRecord {
	return &SensorRecord{
		Type:           t,
		OwnerID:        b[5],
		OwnerLUN:       b[6] & 0x03,
		Channel:        b[6] >> 4,
		Number:         b[7],
		EntityID:       b[8],
		EntityInstance: b[9] & 0x7f,
		LogicalEntity:  bit(b[9], 7),
	}
}

// sensorCommon decodes bytes 10..22 shared by full and compact records.
func sensorCommon(s *SensorRecord, b []byte) {
	s.Init = b[10]
	s.Capabilities = b[11]
	s.SensorType = b[12]
	s.EventReadingType = b[13]
	s.AssertMask = le16(b[14:])
	s.DeassertMask = le16(b[16:])
	s.ReadingMask = le16(b[18:])
	s.Conv.Format = AnalogFormat(b[20] >> 6)
	s.Units = Units{
		Rate:       (b[20] >> 3) & 0x07,
		Relation:   (b[20] >> 1) & 0x03,
		Percentage: bit(b[20], 0),
		Base:       b[21],
		Modifier:   b[22],
	}
}

func parseFull(b []byte, what string) (*SensorRecord, error) {
	const fixed = 48
	if len(b) < fixed {
		return nil, short(what, len(b), fixed)
	}
	s := sensorKey(b, SDRFullSensor)
	sensorCommon(s, b)
	s.Conv = parseConversion(b)
	s.Direction = b[28] & 0x03
	s.AnalogFlags = b[30] & 0x07
	s.Nominal, s.NormalMax, s.NormalMin = b[31], b[32], b[33]
	s.MaxReading, s.MinReading = b[34], b[35]
	s.Thresholds[UpperNonRecoverable] = b[36]
	s.Thresholds[UpperCritical] = b[37]
	s.Thresholds[UpperNonCritical] = b[38]
	s.Thresholds[LowerNonRecoverable] = b[39]
	s.Thresholds[LowerCritical] = b[40]
	s.Thresholds[LowerNonCritical] = b[41]
	s.PosHysteresis, s.NegHysteresis = b[42], b[43]
	s.OEM = b[46]
	id, _, err := parseTL(b[47:], what+" id string")
	if err != nil {
		return nil, err
	}
	s.ID = id
	return s, nil
}

func parseSharing(b1, b2 byte) (Sharing, uint8) {
	return Sharing{
		Count:             b1 & 0x0f,
		AlphaModifier:     (b1>>4)&0x03 == 1,
		ModifierOffset:    b2 & 0x7f,
		InstanceIncrement: bit(b2, 7),
	}, b1 >> 6
}

func parseCompact(b []byte, what string) (*SensorRecord, error) {
	const fixed = 32
	if len(b) < fixed {
		return nil, short(what, len(b), fixed)
	}
	s := sensorKey(b, SDRCompactSensor)
	sensorCommon(s, b)
	s.Share, s.Direction = parseSharing(b[23], b[24])
	s.PosHysteresis, s.NegHysteresis = b[25], b[26]
	s.OEM = b[30]
	id, _, err := parseTL(b[31:], what+" id string")
	if err != nil {
		return nil, err
	}
	s.ID = id
	return s, nil
}

func parseEventOnly(b []byte, what string) (*SensorRecord, error) {
	const fixed = 17
	if len(b) < fixed {
		return nil, short(what, len(b), fixed)
	}
	s := sensorKey(b, SDREventOnly)
	s.Conv.Format = AnalogNoReadings
	s.SensorType = b[10]
	s.EventReadingType = b[11]
	s.Share, s.Direction = parseSharing(b[12], b[13])
	s.OEM = b[15]
	id, _, err := parseTL(b[16:], what+" id string")
	if err != nil {
		return nil, err
	}
	s.ID = id
	return s, nil
}

func parseFRULocator(b []byte, what string) (*FRULocatorRecord, error) {
	const fixed = 16
	if len(b) < fixed {
		return nil, short(what, len(b), fixed)
	}
	f := &FRULocatorRecord{
		AccessAddress:  b[5] &^ 1,
		FRUDeviceID:    b[6],
		Logical:        bit(b[7], 7),
		AccessLUN:      (b[7] >> 3) & 0x03,
		PrivateBus:     b[7] & 0x07,
		Channel:        b[8] >> 4,
		DeviceType:     b[10],
		DeviceModifier: b[11],
		EntityID:       b[12],
		EntityInstance: b[13],
		OEM:            b[14],
	}
	id, _, err := parseTL(b[15:], what+" id string")
	if err != nil {
		return nil, err
	}
	f.ID = id
	return f, nil
}

func parseMCLocator(b []byte, what string) (*MCLocatorRecord, error) {
	const fixed = 16
	if len(b) < fixed {
		return nil, short(what, len(b), fixed)
	}
	m := &MCLocatorRecord{
		SlaveAddress:   b[5] &^ 1,
		Channel:        b[6] & 0x0f,
		PowerState:     b[7],
		Capabilities:   b[8],
		EntityID:       b[12],
		EntityInstance: b[13],
		OEM:            b[14],
	}
	id, _, err := parseTL(b[15:], what+" id string")
	if err != nil {
		return nil, err
	}
	m.ID = id
	return m, nil
}

// Name is the record's ID string, for any record type that has one.
func (r SDR) Name() string {
	switch {
	case r.Sensor != nil:
		return r.Sensor.Name()
	case r.FRULocator != nil:
		return r.FRULocator.ID.Text()
	case r.MCLocator != nil:
		return r.MCLocator.ID.Text()
	}
	return ""
}

// Marshal encodes a sensor record as a whole SDR (header included) with
// record ID id: a full, compact or event-only record according to s.Type.
// Fields a type lacks are ignored.
func (s *SensorRecord) Marshal(id uint16) []byte {
	var b []byte
	key := []byte{s.OwnerID, s.Channel<<4 | s.OwnerLUN&3, s.Number, s.EntityID, s.EntityInstance&0x7f | setBit(s.LogicalEntity, 7)}
	common := func() []byte {
		c := []byte{s.Init, s.Capabilities, s.SensorType, s.EventReadingType}
		c = append(c, put16(s.AssertMask)...)
		c = append(c, put16(s.DeassertMask)...)
		c = append(c, put16(s.ReadingMask)...)
		u := s.Units
		c = append(c, byte(s.Conv.Format)<<6|(u.Rate&7)<<3|(u.Relation&3)<<1|setBit(u.Percentage, 0), u.Base, u.Modifier)
		return c
	}
	sharing := func() []byte {
		sh := s.Share
		mt := byte(0)
		if sh.AlphaModifier {
			mt = 1
		}
		return []byte{s.Direction<<6 | mt<<4 | sh.Count&0x0f, sh.ModifierOffset&0x7f | setBit(sh.InstanceIncrement, 7)}
	}
	switch s.Type {
	case SDRFullSensor:
		c := s.Conv
		m, bb := uint16(c.M)&0x3ff, uint16(c.B)&0x3ff
		b = append(key, common()...)
		b = append(b, byte(c.Linearization)&0x7f,
			byte(m), byte(m>>8)<<6|c.Tolerance&0x3f,
			byte(bb), byte(bb>>8)<<6|byte(c.Accuracy)&0x3f,
			byte(c.Accuracy>>6)<<4|(c.AccuracyExp&3)<<2|s.Direction&3,
			byte(c.RExp)<<4|byte(c.BExp)&0x0f,
			s.AnalogFlags, s.Nominal, s.NormalMax, s.NormalMin, s.MaxReading, s.MinReading,
			s.Thresholds[UpperNonRecoverable], s.Thresholds[UpperCritical], s.Thresholds[UpperNonCritical],
			s.Thresholds[LowerNonRecoverable], s.Thresholds[LowerCritical], s.Thresholds[LowerNonCritical],
			s.PosHysteresis, s.NegHysteresis, 0, 0, s.OEM)
	case SDRCompactSensor:
		b = append(key, common()...)
		b = append(b, sharing()...)
		b = append(b, s.PosHysteresis, s.NegHysteresis, 0, 0, 0, s.OEM)
	default:
		b = append(key, s.SensorType, s.EventReadingType)
		b = append(b, sharing()...)
		b = append(b, 0, s.OEM)
	}
	b = append(b, s.ID.Marshal()...)
	return withHeader(id, s.Type, b)
}

func withHeader(id uint16, t SDRType, body []byte) []byte {
	h := SDRHeader{RecordID: id, Version: 0x51, Type: t, Length: uint8(len(body))}
	return append(h.Marshal(), body...)
}

// Marshal encodes f as a whole SDR with record ID id.
func (f *FRULocatorRecord) Marshal(id uint16) []byte {
	b := []byte{f.AccessAddress &^ 1, f.FRUDeviceID, setBit(f.Logical, 7) | (f.AccessLUN&3)<<3 | f.PrivateBus&7,
		f.Channel << 4, 0, f.DeviceType, f.DeviceModifier, f.EntityID, f.EntityInstance, f.OEM}
	return withHeader(id, SDRFRULocator, append(b, f.ID.Marshal()...))
}

// Marshal encodes m as a whole SDR with record ID id.
func (m *MCLocatorRecord) Marshal(id uint16) []byte {
	b := []byte{m.SlaveAddress &^ 1, m.Channel & 0x0f, m.PowerState, m.Capabilities, 0, 0, 0, m.EntityID, m.EntityInstance, m.OEM}
	return withHeader(id, SDRMCLocator, append(b, m.ID.Marshal()...))
}
