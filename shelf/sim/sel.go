package sim

import (
	"encoding/binary"

	"hpiagent/shelf/ipmi"
)

// selLog is the shelf manager's System Event Log.
type selLog struct {
	capacity    int
	entries     [][16]byte
	nextID      uint16
	reservation uint16
	reserved    bool
	addTime     uint32
	eraseTime   uint32
	overflow    bool
}

func (l *selLog) add(rec [16]byte, now uint32) (uint16, bool) {
	if len(l.entries) >= l.capacity {
		l.overflow = true
		return 0, false
	}
	l.nextID++
	if l.nextID == 0 || l.nextID == 0xFFFF {
		l.nextID = 1
	}
	binary.LittleEndian.PutUint16(rec[0:], l.nextID)
	l.entries = append(l.entries, rec)
	l.addTime = now
	return l.nextID, true
}

// event logs a platform event record (type 02h) from generator gen.
func (l *selLog) event(now uint32, gen uint8, sensorType, sensor, dirType, d1, d2, d3 byte) {
	var r [16]byte
	r[2] = 0x02
	binary.LittleEndian.PutUint32(r[3:], now)
	r[7] = gen
	r[8] = 0x00 // channel 0, LUN 0
	r[9] = 0x04 // IPMI 1.5+ event message format
	r[10], r[11], r[12] = sensorType, sensor, dirType
	r[13], r[14], r[15] = d1, d2, d3
	l.add(r, now)
}

func (l *selLog) info() []byte {
	b := []byte{sdrVersion}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(l.entries)))
	b = binary.LittleEndian.AppendUint16(b, uint16(16*(l.capacity-len(l.entries))))
	b = binary.LittleEndian.AppendUint32(b, l.addTime)
	b = binary.LittleEndian.AppendUint32(b, l.eraseTime)
	op := byte(0x02) // Reserve SEL supported
	if l.overflow {
		op |= 0x80
	}
	return append(b, op)
}

func (l *selLog) reserve() uint16 {
	l.reservation++
	if l.reservation == 0 {
		l.reservation = 1
	}
	l.reserved = true
	return l.reservation
}

// get serves Get SEL Entry: reservation (2), record ID (2), offset, count.
func (l *selLog) get(d []byte) (ipmi.CompletionCode, []byte) {
	if len(d) != 6 {
		return ipmi.CCRequestDataLength, nil
	}
	resv := binary.LittleEndian.Uint16(d[0:])
	id := binary.LittleEndian.Uint16(d[2:])
	off, n := int(d[4]), int(d[5])
	if off != 0 && (!l.reserved || resv != l.reservation) {
		return ipmi.CCReservationInvalid, nil
	}
	if len(l.entries) == 0 {
		return ipmi.CCNotPresent, nil
	}
	idx := -1
	switch id {
	case 0x0000:
		idx = 0
	case 0xFFFF:
		idx = len(l.entries) - 1
	default:
		for i := range l.entries {
			if binary.LittleEndian.Uint16(l.entries[i][0:]) == id {
				idx = i
				break
			}
		}
	}
	if idx < 0 {
		return ipmi.CCNotPresent, nil
	}
	if off > 16 {
		return ipmi.CCParameterOutOfRange, nil
	}
	if n == 0xFF || off+n > 16 {
		n = 16 - off
	}
	next := uint16(0xFFFF)
	if idx+1 < len(l.entries) {
		next = binary.LittleEndian.Uint16(l.entries[idx+1][0:])
	}
	out := binary.LittleEndian.AppendUint16(nil, next)
	return ipmi.CCOK, append(out, l.entries[idx][off:off+n]...)
}

// clear serves Clear SEL: reservation (2), 'C' 'L' 'R', 0xAA initiate or
// 0x00 get status. Erasure completes at once.
func (l *selLog) clear(d []byte, now uint32) (ipmi.CompletionCode, []byte) {
	if len(d) != 6 {
		return ipmi.CCRequestDataLength, nil
	}
	if d[2] != 'C' || d[3] != 'L' || d[4] != 'R' {
		return ipmi.CCInvalidDataField, nil
	}
	if !l.reserved || binary.LittleEndian.Uint16(d[0:]) != l.reservation {
		return ipmi.CCReservationInvalid, nil
	}
	switch d[5] {
	case 0xAA:
		l.entries = nil
		l.overflow = false
		l.eraseTime = now
	case 0x00:
	default:
		return ipmi.CCInvalidDataField, nil
	}
	return ipmi.CCOK, []byte{0x01} // erasure completed
}
