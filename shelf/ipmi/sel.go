package ipmi

import (
	"context"
	"fmt"
	"time"
)

// SELInfo is the answer to Get SEL Info (IPMI 2.0 §31.2).
type SELInfo struct {
	Version      uint8 // BCD, 0x51 = 1.5
	Entries      uint16
	FreeSpace    uint16 // bytes
	LastAddition time.Time
	LastErase    time.Time
	Support      uint8 // bit7 overflow, bit3 delete, bit2 partial add, bit1 reserve, bit0 get allocation info
}

// Overflow reports whether events were dropped because the SEL was full.
func (i SELInfo) Overflow() bool { return bit(i.Support, 7) }

// ParseSELInfo decodes Get SEL Info response data.
func ParseSELInfo(b []byte) (SELInfo, error) {
	if len(b) < 14 {
		return SELInfo{}, short("get sel info", len(b), 14)
	}
	return SELInfo{
		Version:      b[0],
		Entries:      le16(b[1:]),
		FreeSpace:    le16(b[3:]),
		LastAddition: ipmiTime(le32(b[5:])),
		LastErase:    ipmiTime(le32(b[9:])),
		Support:      b[13],
	}, nil
}

// Marshal encodes i as Get SEL Info response data.
func (i SELInfo) Marshal() []byte {
	return SDRRepositoryInfo{Version: i.Version, RecordCount: i.Entries, FreeSpace: i.FreeSpace,
		LastAddition: i.LastAddition, LastErase: i.LastErase, Support: i.Support}.Marshal() // same layout
}

// GetSELInfo reads the SEL information of the controller at to.
func GetSELInfo(ctx context.Context, c Conn, to Addr) (SELInfo, error) {
	const what = "get sel info"
	b, err := get(ctx, c, to, what, NetFnStorage, CmdGetSELInfo)
	if err != nil {
		return SELInfo{}, err
	}
	i, err := ParseSELInfo(b)
	if err != nil {
		return SELInfo{}, decodeErr(what, to, err)
	}
	return i, nil
}

// ReserveSEL reserves the SEL (needed by Clear SEL).
func ReserveSEL(ctx context.Context, c Conn, to Addr) (uint16, error) {
	return reserve(ctx, c, to, "reserve sel", NetFnStorage, CmdReserveSEL)
}

// SELRecordLen is the length of every SEL record.
const SELRecordLen = 16

// SEL record types.
const (
	SELSystemEvent uint8 = 0x02
	// 0xC0-0xDF: OEM timestamped; 0xE0-0xFF: OEM non-timestamped.
)

// SELRecord is one decoded SEL entry (IPMI 2.0 §32).
type SELRecord struct {
	RecordID uint16
	Type     uint8
	// Timestamp is set for system event and OEM timestamped records.
	// IPMI timestamps at or below 0x20000000 count from controller
	// initialisation ("pre-init"); see PreInit.
	Timestamp time.Time
	RawTime   uint32

	// System event records (Type 0x02).
	Generator  uint16 // generator ID: byte 1 = slave address (bit0 0) or software ID (bit0 1), byte 2 = channel<<4 | LUN
	EvMRev     uint8
	SensorType uint8
	Sensor     uint8
	Deassert   bool  // event direction: true deassertion
	EventType  uint8 // event/reading type code (7 bits)
	EventData  [3]uint8

	// OEM timestamped (0xC0-0xDF): ManufacturerID and 6 OEM bytes in OEM.
	// OEM non-timestamped (0xE0-0xFF): 13 OEM bytes in OEM.
	ManufacturerID uint32
	OEM            []byte
}

// PreInit reports whether the timestamp is relative to controller
// initialisation instead of an absolute time (IPMI 2.0 §37.1).
func (r SELRecord) PreInit() bool { return r.RawTime <= 0x20000000 }

// IsSystemEvent reports whether r is a standard system event record.
func (r SELRecord) IsSystemEvent() bool { return r.Type == SELSystemEvent }

// Timestamped reports whether r carries a timestamp.
func (r SELRecord) Timestamped() bool { return r.Type < 0xe0 }

// GeneratorAddr is the 8-bit slave address or software ID of the event
// generator (bit 0 set for software IDs).
func (r SELRecord) GeneratorAddr() uint8 { return uint8(r.Generator) }

// GeneratorLUN is the LUN of the generator.
func (r SELRecord) GeneratorLUN() uint8 { return uint8(r.Generator>>8) & 3 }

// GeneratorChannel is the channel of the generator.
func (r SELRecord) GeneratorChannel() uint8 { return uint8(r.Generator >> 12) }

// Offset is the event offset (event data 1 bits 3:0).
func (r SELRecord) Offset() uint8 { return r.EventData[0] & 0x0f }

// Data2Usage says what event data 2 holds (event data 1 bits 7:6): 0
// unspecified, 1 trigger reading (threshold) or previous state (discrete),
// 2 OEM, 3 sensor-specific extension.
func (r SELRecord) Data2Usage() uint8 { return r.EventData[0] >> 6 }

// Data3Usage says what event data 3 holds (event data 1 bits 5:4): 0
// unspecified, 1 trigger threshold (threshold) or OEM (discrete), 2 OEM,
// 3 sensor-specific extension.
func (r SELRecord) Data3Usage() uint8 { return (r.EventData[0] >> 4) & 3 }

// ParseSELRecord decodes one 16-byte SEL record.
func ParseSELRecord(b []byte) (SELRecord, error) {
	if len(b) < SELRecordLen {
		return SELRecord{}, short("sel record", len(b), SELRecordLen)
	}
	r := SELRecord{RecordID: le16(b), Type: b[2]}
	switch {
	case r.Type >= 0xe0:
		r.OEM = append([]byte(nil), b[3:16]...)
		return r, nil
	case r.Type >= 0xc0:
		r.RawTime = le32(b[3:])
		r.Timestamp = ipmiTime(r.RawTime)
		r.ManufacturerID = uint32(b[7]) | uint32(b[8])<<8 | uint32(b[9])<<16
		r.OEM = append([]byte(nil), b[10:16]...)
		return r, nil
	}
	// System event layout; types other than 0x02 below 0xC0 are
	// reserved, decoded the same way and marked by Type.
	r.RawTime = le32(b[3:])
	r.Timestamp = ipmiTime(r.RawTime)
	r.Generator = le16(b[7:])
	r.EvMRev = b[9]
	r.SensorType = b[10]
	r.Sensor = b[11]
	r.Deassert = bit(b[12], 7)
	r.EventType = b[12] & 0x7f
	copy(r.EventData[:], b[13:16])
	return r, nil
}

// Marshal encodes r as a 16-byte SEL record.
func (r SELRecord) Marshal() []byte {
	b := make([]byte, SELRecordLen)
	b[0], b[1], b[2] = byte(r.RecordID), byte(r.RecordID>>8), r.Type
	switch {
	case r.Type >= 0xe0:
		copy(b[3:], r.OEM)
	case r.Type >= 0xc0:
		copy(b[3:], put32(r.RawTime))
		b[7], b[8], b[9] = byte(r.ManufacturerID), byte(r.ManufacturerID>>8), byte(r.ManufacturerID>>16)
		copy(b[10:], r.OEM)
	default:
		copy(b[3:], put32(r.RawTime))
		b[7], b[8] = byte(r.Generator), byte(r.Generator>>8)
		b[9], b[10], b[11] = r.EvMRev, r.SensorType, r.Sensor
		b[12] = r.EventType&0x7f | setBit(r.Deassert, 7)
		copy(b[13:], r.EventData[:])
	}
	return b
}

func (r SELRecord) String() string {
	if !r.IsSystemEvent() {
		return fmt.Sprintf("SEL 0x%04x type 0x%02x", r.RecordID, r.Type)
	}
	dir := "Asserted"
	if r.Deassert {
		dir = "Deasserted"
	}
	return fmt.Sprintf("SEL 0x%04x gen 0x%04x sensor type 0x%02x #0x%02x event type 0x%02x %s data %02x %02x %02x",
		r.RecordID, r.Generator, r.SensorType, r.Sensor, r.EventType, dir, r.EventData[0], r.EventData[1], r.EventData[2])
}

// GetSELEntry reads SEL record id (0 = first, 0xFFFF = last) whole and
// returns it with the ID of the next record.
func GetSELEntry(ctx context.Context, c Conn, to Addr, id uint16) (SELRecord, uint16, error) {
	what := fmt.Sprintf("get sel entry 0x%04x", id)
	req := append(put16(0), put16(id)...)
	b, err := get(ctx, c, to, what, NetFnStorage, CmdGetSELEntry, append(req, 0, 0xff)...)
	if err != nil {
		return SELRecord{}, 0, err
	}
	if len(b) < 2 {
		return SELRecord{}, 0, decodeErr(what, to, short(what, len(b), 2))
	}
	r, err := ParseSELRecord(b[2:])
	if err != nil {
		return SELRecord{}, 0, decodeErr(what, to, err)
	}
	return r, le16(b), nil
}

// ReadSEL reads every SEL record from the first, following next-record
// IDs to 0xFFFF. An empty SEL (0xCB on the first record) gives no records.
func ReadSEL(ctx context.Context, c Conn, to Addr) ([]SELRecord, error) {
	var out []SELRecord
	seen := map[uint16]bool{}
	for id := uint16(0); id != LastRecordID; {
		if seen[id] {
			return out, fmt.Errorf("reading sel on %s: record chain loops back to 0x%04x", to, id)
		}
		seen[id] = true
		r, next, err := GetSELEntry(ctx, c, to, id)
		if code, ok := CodeOf(err); ok && code == CCNotPresent && id == 0 {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
		id = next
	}
	return out, nil
}

// clearSEL sends one Clear SEL request with action 0xAA (initiate) or 0x00
// (get status) and returns the erasure progress (bits 3:0: 1 = completed).
func clearSEL(ctx context.Context, c Conn, to Addr, res uint16, action uint8) (uint8, error) {
	what := "clear sel (initiate erase)"
	req := Request{NetFn: NetFnStorage, Cmd: CmdClearSEL, Data: append(put16(res), 'C', 'L', 'R', action)}
	if action == 0 {
		what, req.ReadOnly = "clear sel (get erasure status)", true
	}
	b, err := call(ctx, c, to, what, req)
	if err != nil {
		return 0, err
	}
	if len(b) < 1 {
		return 0, decodeErr(what, to, short(what, len(b), 1))
	}
	return b[0] & 0x0f, nil
}

// ClearSEL erases the SEL: it reserves the SEL, initiates the erase and
// polls the erasure status every poll interval until it completes or ctx
// ends.
func ClearSEL(ctx context.Context, c Conn, to Addr, poll time.Duration) error {
	res, err := ReserveSEL(ctx, c, to)
	if err != nil {
		return err
	}
	st, err := clearSEL(ctx, c, to, res, 0xaa)
	if err != nil {
		return err
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for st&0x0f != 1 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("clear sel on %s: waiting for the erase to complete: %w", to, ctx.Err())
		case <-t.C:
		}
		if st, err = clearSEL(ctx, c, to, res, 0); err != nil {
			return err
		}
	}
	return nil
}
