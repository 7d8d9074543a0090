package sim

import (
	"encoding/binary"

	"hpiagent/shelf/ipmi"
)

// SDR record types (IPMI 2.0 §43).
const (
	sdrFull         = 0x01
	sdrCompact      = 0x02
	sdrFRULocator   = 0x11
	sdrMCLocator    = 0x12
	sdrVersion      = 0x51
	sensorTypeHS    = 0xF0 // PICMG FRU hot-swap sensor
	eventTypeSensor = 0x6F // sensor-specific discrete
	eventTypeThresh = 0x01
)

// idString encodes an 8-bit ASCII type/length byte and the string.
func idString(s string) []byte {
	if len(s) > 16 {
		s = s[:16]
	}
	return append([]byte{0xC0 | byte(len(s))}, s...)
}

// sdrRecord builds a record with header (record ID filled in later).
func sdrRecord(typ byte, body []byte) []byte {
	r := []byte{0, 0, sdrVersion, typ, byte(len(body))}
	return append(r, body...)
}

func fullSensorRecord(owner uint8, entity, inst uint8, s *SensorConfig) []byte {
	th := s.ThresholdMask & 0x3f
	// Assertion/deassertion masks: "going low" events for lower, "going
	// high" events for upper thresholds present.
	var ev uint16
	for i := 0; i < 6; i++ {
		if th&(1<<i) == 0 {
			continue
		}
		if i < 3 {
			ev |= 1 << (2 * i) // LNC/LC/LNR going low
		} else {
			ev |= 1 << (2*i + 1) // UNC/UC/UNR going high
		}
	}
	lowerCmp := uint16(th&0x07) << 12
	upperCmp := uint16(th>>3&0x07) << 12
	m := uint16(s.M) & 0x3ff
	b := uint16(s.B) & 0x3ff
	body := []byte{
		owner, 0x00, s.Number, entity, inst,
		0x7F, // init: scanning, events, thresholds, hysteresis, type; events and scanning enabled
		0x68, // auto re-arm, hysteresis readable+settable, thresholds readable+settable per mask
		s.Type, eventTypeThresh,
	}
	body = binary.LittleEndian.AppendUint16(body, ev|lowerCmp)
	body = binary.LittleEndian.AppendUint16(body, ev|upperCmp)
	body = append(body, th, th) // readable, settable threshold masks
	body = append(body,
		0x00, s.Unit, 0x00, 0x00, // unsigned, base unit, no modifier, linear
		byte(m), byte(m>>8)<<6, // M, tolerance 0
		byte(b), byte(b>>8)<<6, // B, accuracy 0
		0x00,                                 // accuracy, direction unspecified
		byte(s.RExp&0xf)<<4|byte(s.BExp&0xf), // R exp, B exp
		0x01, s.Nominal, 0xFF, 0x00,          // nominal specified
		0xFF, 0x00, // sensor max, min
	)
	t := s.Thresholds
	body = append(body, t[5], t[4], t[3], t[2], t[1], t[0], s.HystPos, s.HystNeg, 0, 0, 0)
	body = append(body, idString(s.Name)...)
	return sdrRecord(sdrFull, body)
}

func hotSwapRecord(owner, number, entity, inst uint8, name string) []byte {
	body := []byte{
		owner, 0x00, number, entity, inst,
		0x63, // init scanning, init events, events + scanning enabled
		0x40, // auto re-arm, no hysteresis, no thresholds, per-state event control
		sensorTypeHS, eventTypeSensor,
		0xFF, 0x00, // assertion mask M0..M7
		0x00, 0x00, // deassertion mask
		0xFF, 0x00, // discrete reading mask
		0xC0, 0x00, 0x00, // units: no analog reading
		0x00, 0x00, // no record sharing
		0x00, 0x00, // hysteresis
		0, 0, 0, 0, // reserved, OEM
	}
	body = append(body, idString(name)...)
	return sdrRecord(sdrCompact, body)
}

func mcLocatorRecord(addr uint8, caps uint8, entity, inst uint8, name string) []byte {
	body := []byte{addr, 0x00, 0x00, caps, 0, 0, 0, entity, inst, 0}
	body = append(body, idString(name)...)
	return sdrRecord(sdrMCLocator, body)
}

func fruLocatorRecord(addr, fruID uint8, entity, inst uint8, name string) []byte {
	body := []byte{addr, fruID, 0x80, 0x00, 0x00, 0x10, 0x00, entity, inst, 0}
	body = append(body, idString(name)...)
	return sdrRecord(sdrFRULocator, body)
}

// sdrRepo is an SDR repository (main or device) with reservations.
type sdrRepo struct {
	records     [][]byte // each with its record ID set
	reservation uint16
	reserved    bool
	addTime     uint32
	eraseTime   uint32
}

// set replaces the repository's content, renumbering records from 1 and
// cancelling any reservation (the repository changed).
func (r *sdrRepo) set(recs [][]byte, now uint32) {
	r.records = r.records[:0]
	for i, rec := range recs {
		c := append([]byte(nil), rec...)
		binary.LittleEndian.PutUint16(c, uint16(i+1))
		r.records = append(r.records, c)
	}
	r.reserved = false
	r.addTime = now
}

func (r *sdrRepo) reserve() uint16 {
	r.reservation++
	if r.reservation == 0 {
		r.reservation = 1
	}
	r.reserved = true
	return r.reservation
}

func (r *sdrRepo) info() []byte {
	free := 0x4000 - 64*len(r.records)
	if free < 0 {
		free = 0
	}
	b := []byte{sdrVersion}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.records)))
	b = binary.LittleEndian.AppendUint16(b, uint16(free))
	b = binary.LittleEndian.AppendUint32(b, r.addTime)
	b = binary.LittleEndian.AppendUint32(b, r.eraseTime)
	return append(b, 0x02) // Reserve SDR Repository supported
}

// get serves Get SDR / Get Device SDR:
// reservation ID (2), record ID (2), offset, bytes to read (0xFF = all).
// A read of more than max bytes gets 0xCA, as from a controller whose
// messages cannot hold it.
func (r *sdrRepo) get(d []byte, max int) (ipmi.CompletionCode, []byte) {
	if len(d) != 6 {
		return ipmi.CCRequestDataLength, nil
	}
	resv := binary.LittleEndian.Uint16(d[0:])
	id := binary.LittleEndian.Uint16(d[2:])
	off, n := int(d[4]), int(d[5])
	// A reservation is needed for partial reads that do not start at 0;
	// a given reservation must be the current one.
	if resv != 0 || off != 0 {
		if !r.reserved || resv != r.reservation {
			return ipmi.CCReservationInvalid, nil
		}
	}
	if len(r.records) == 0 {
		return ipmi.CCNotPresent, nil
	}
	idx := -1
	switch id {
	case 0x0000:
		idx = 0
	case 0xFFFF:
		idx = len(r.records) - 1
	default:
		for i, rec := range r.records {
			if binary.LittleEndian.Uint16(rec) == id {
				idx = i
				break
			}
		}
	}
	if idx < 0 {
		return ipmi.CCNotPresent, nil
	}
	rec := r.records[idx]
	if off > len(rec) {
		return ipmi.CCParameterOutOfRange, nil
	}
	if n == 0xFF || off+n > len(rec) {
		n = len(rec) - off
	}
	if n > max {
		return ipmi.CCCannotReturnBytes, nil
	}
	next := uint16(0xFFFF)
	if idx+1 < len(r.records) {
		next = binary.LittleEndian.Uint16(r.records[idx+1])
	}
	out := binary.LittleEndian.AppendUint16(nil, next)
	return ipmi.CCOK, append(out, rec[off:off+n]...)
}

// recordID returns the ID of the first record of the given type whose
// body starts with the given owner/address byte, or 0.
func (r *sdrRepo) recordID(typ byte, addr uint8) uint16 {
	for _, rec := range r.records {
		if rec[3] == typ && len(rec) > 5 && rec[5] == addr {
			return binary.LittleEndian.Uint16(rec)
		}
	}
	return 0
}
