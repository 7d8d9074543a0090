package pet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"hpiagent/shelf/ipmi"
)

// ErrBadPET marks a trap that claims to be a PET but whose content cannot
// be decoded.
var ErrBadPET = errors.New("malformed IPMI PET")

// PETMinLen is the length of the fixed part of the PET variable binding
// (PET v1.0 table 3, through System ID).
const PETMinLen = 46

// PETMaxLen bounds the PET variable binding; the OEM custom fields take
// the rest.
const PETMaxLen = 1024

// petEpoch is the PET time origin, 1998-01-01 00:00:00, in seconds after
// the IPMI/Unix epoch.
const petEpoch = 883612800

// Values of PET fields with a fixed meaning.
const (
	// UTCOffsetUnspecified is the UTC offset value "unspecified".
	UTCOffsetUnspecified int16 = -1 // 0xFFFF
	// PET event severities (PET v1.0 table 3).
	SeverityUnspecified    uint8 = 0x00
	SeverityMonitor        uint8 = 0x01
	SeverityInformation    uint8 = 0x02
	SeverityOK             uint8 = 0x04
	SeverityNonCritical    uint8 = 0x08
	SeverityCritical       uint8 = 0x10
	SeverityNonRecoverable uint8 = 0x20
)

// PET is one decoded IPMI Platform Event Trap (IPMI PET Format
// Specification v1.0): the specific trap number and the 1.3.6.1.4.1.3183.1.1.1
// variable binding. The fields that a SEL system event record also has
// (generator, sensor type and number, event direction and type, event
// data 1-3, timestamp, record ID) are given in SEL terms by the methods.
type PET struct {
	// Specific is the specific trap number (v1 specific-trap, or the last
	// sub-identifier of snmpTrapOID 1.3.6.1.4.1.3183.1.1.0.<specific>).
	Specific uint32
	// SensorType is specific-trap bits 23:16.
	SensorType uint8
	// EventType is the event/reading type code, specific-trap bits 14:8.
	EventType uint8
	// Deassertion is the event direction. The PET specification puts it
	// in bit 7 of the offset byte (bit 7 of the specific trap); some
	// senders set bit 15 (bit 7 of the event type byte, where the SEL
	// keeps it) instead. Either sets Deassertion.
	Deassertion bool
	// Offset is the event offset, specific-trap bits 3:0.
	Offset uint8

	GUID [16]byte
	// Sequence is the sequence number / cookie. Senders that log the
	// event in a SEL (BMCs, ATCA shelf managers) put the SEL Record ID
	// of the entry here, the value a PET Acknowledge refers to.
	Sequence uint16
	// LocalTimestamp is seconds since 1998-01-01 00:00:00 local time of
	// the sender; 0 means unspecified.
	LocalTimestamp uint32
	// UTCOffset is in minutes; UTCOffsetUnspecified (0xFFFF) when unknown.
	UTCOffset       int16
	TrapSourceType  uint8
	EventSourceType uint8
	Severity        uint8
	// SensorDevice is the IPMB slave address (or software ID) of the
	// controller that owns the sensor: the SEL generator ID, byte 1.
	SensorDevice   uint8
	SensorNumber   uint8
	Entity         uint8
	EntityInstance uint8
	// EventData holds event data 1-8; 1-3 are those of the SEL record,
	// unused bytes are 0xFF.
	EventData      [8]byte
	LanguageCode   uint8
	ManufacturerID uint32
	SystemID       uint16
	// OEM is the raw OEM custom fields area (type/length records ended by
	// 0xC1), possibly empty. See OEMFields.
	OEM []byte
}

// DecodePET decodes a PET from its specific trap number and the content of
// its 1.3.6.1.4.1.3183.1.1.1 variable binding.
func DecodePET(specific uint32, data []byte) (PET, error) {
	if len(data) < PETMinLen {
		return PET{}, fmt.Errorf("%w: variable binding of %d bytes, want at least %d", ErrBadPET, len(data), PETMinLen)
	}
	if len(data) > PETMaxLen {
		return PET{}, fmt.Errorf("%w: variable binding of %d bytes, want at most %d", ErrBadPET, len(data), PETMaxLen)
	}
	p := PET{
		Specific:    specific,
		SensorType:  uint8(specific >> 16),
		EventType:   uint8(specific>>8) & 0x7f,
		Deassertion: specific&0x80 != 0 || specific&0x8000 != 0,
		Offset:      uint8(specific) & 0x0f,
	}
	copy(p.GUID[:], data[0:16])
	p.Sequence = binary.BigEndian.Uint16(data[16:])
	p.LocalTimestamp = binary.BigEndian.Uint32(data[18:])
	p.UTCOffset = int16(binary.BigEndian.Uint16(data[22:]))
	p.TrapSourceType = data[24]
	p.EventSourceType = data[25]
	p.Severity = data[26]
	p.SensorDevice = data[27]
	p.SensorNumber = data[28]
	p.Entity = data[29]
	p.EntityInstance = data[30]
	copy(p.EventData[:], data[31:39])
	p.LanguageCode = data[39]
	p.ManufacturerID = binary.BigEndian.Uint32(data[40:])
	p.SystemID = binary.BigEndian.Uint16(data[44:])
	if len(data) > PETMinLen {
		p.OEM = append([]byte(nil), data[PETMinLen:]...)
	}
	return p, nil
}

// EventDirType is the SEL "Event Dir | Event Type" byte.
func (p PET) EventDirType() uint8 {
	if p.Deassertion {
		return 0x80 | p.EventType
	}
	return p.EventType
}

// SELTimestamp is LocalTimestamp moved to the IPMI SEL time origin
// (seconds since 1970-01-01 in the same local time), 0 if unspecified.
func (p PET) SELTimestamp() uint32 {
	if p.LocalTimestamp == 0 {
		return 0
	}
	return p.LocalTimestamp + petEpoch
}

// Time is the event time as UTC when the sender gave its UTC offset,
// otherwise the local time read as UTC; zero if unspecified.
func (p PET) Time() time.Time {
	if p.LocalTimestamp == 0 {
		return time.Time{}
	}
	t := time.Unix(int64(p.LocalTimestamp)+petEpoch, 0).UTC()
	if p.UTCOffset != UTCOffsetUnspecified {
		t = t.Add(-time.Duration(p.UTCOffset) * time.Minute)
	}
	return t
}

// OEMField is one record of the PET OEM custom fields area.
type OEMField struct {
	// Type is the type/length byte bits 7:6 (as in IPMI FRU type/length:
	// 0 binary, 1 BCD plus, 2 6-bit ASCII, 3 language text).
	Type uint8
	Data []byte
}

// OEMFields splits the OEM custom fields area into its records, up to the
// 0xC1 end marker (PET v1.0 table 3). An area without an end marker is
// accepted when its records end exactly at the end of the data.
func (p PET) OEMFields() ([]OEMField, error) {
	var out []OEMField
	b := p.OEM
	for len(b) > 0 {
		tl := b[0]
		if tl == 0xc1 {
			return out, nil
		}
		n := int(tl & 0x3f)
		if len(b) < 1+n {
			return out, fmt.Errorf("%w: OEM field of %d bytes with %d left", ErrBadPET, n, len(b)-1)
		}
		out = append(out, OEMField{Type: tl >> 6, Data: b[1 : 1+n]})
		b = b[1+n:]
	}
	return out, nil
}

// Key identifies the SEL event behind a PET, so that a consumer that also
// reads the SEL handles each event once. It is made of exactly the fields
// that both a PET and a SEL system event record carry:
//
//   - RecordID: the PET sequence number, which senders that log the event
//     set to the SEL Record ID (the field a PET Acknowledge echoes back);
//   - Timestamp: the event time in SEL form (PET local time + 1998 epoch).
//     Record IDs are reused after a SEL clear (ipmidirect clears the
//     ShMC SEL at discovery) and in circular SELs; the timestamp keeps a
//     new event with a reused ID from matching an old one;
//   - Generator (sensor device / IPMB address), SensorType, SensorNumber,
//     EventDirType and EventData 1-3: the event itself.
//
// The GUID is left out: a SEL record does not carry it, and redundant
// shelf managers may report different GUIDs. A Key is therefore only
// meaningful per shelf manager (per trap source). When a sender leaves
// the timestamp unspecified, or does not use the record ID as sequence
// number, Keys of a PET and of its SEL record differ: the event is seen
// twice, which is harmless for hints, never dropped by mistake.
type Key struct {
	RecordID     uint16
	Timestamp    uint32
	Generator    uint8
	SensorType   uint8
	SensorNumber uint8
	EventDirType uint8
	EventData    [3]byte
}

// Key returns the deduplication key of the SEL event behind p.
func (p PET) Key() Key {
	k := Key{
		RecordID:     p.Sequence,
		Timestamp:    p.SELTimestamp(),
		Generator:    p.SensorDevice,
		SensorType:   p.SensorType,
		SensorNumber: p.SensorNumber,
		EventDirType: p.EventDirType(),
	}
	copy(k.EventData[:], p.EventData[:3])
	return k
}

// SELKey returns the Key of a SEL system event record, comparable with
// PET.Key of the trap that reported it.
func SELKey(r ipmi.SELRecord) Key {
	dirType := r.EventType & 0x7f
	if r.Deassert {
		dirType |= 0x80
	}
	return Key{
		RecordID:     r.RecordID,
		Timestamp:    r.RawTime,
		Generator:    r.GeneratorAddr(),
		SensorType:   r.SensorType,
		SensorNumber: r.Sensor,
		EventDirType: dirType,
		EventData:    r.EventData,
	}
}

// String formats k for logs.
func (k Key) String() string {
	return fmt.Sprintf("rec=0x%04x ts=%d gen=0x%02x st=0x%02x sn=0x%02x dt=0x%02x data=%02x%02x%02x",
		k.RecordID, k.Timestamp, k.Generator, k.SensorType, k.SensorNumber, k.EventDirType,
		k.EventData[0], k.EventData[1], k.EventData[2])
}
