package sim

import "hpiagent/shelf/ipmi"

// evaluate returns the threshold event offsets (bits 0..11 of the IPMI
// threshold event mask) that are asserted for the present reading, given
// the ones asserted before (hysteresis applies to deassertion).
func (se *sensor) evaluate(before uint16) uint16 {
	var now uint16
	mask := se.cfg.ThresholdMask
	r := int(se.raw)
	for i := 0; i < 6; i++ {
		if mask&(1<<i) == 0 {
			continue
		}
		t := int(se.th[i])
		if i < 3 {
			bit := uint16(1) << (2 * i) // going low
			if r <= t || (before&bit != 0 && r <= t+int(se.hystPos)) {
				now |= bit
			}
		} else {
			bit := uint16(1) << (2*i + 1) // going high
			if r >= t || (before&bit != 0 && r >= t-int(se.hystNeg)) {
				now |= bit
			}
		}
	}
	return now
}

// status is byte 3 of Get Sensor Reading for a threshold sensor.
func (se *sensor) status() byte {
	var b byte
	for i := 0; i < 6; i++ {
		if se.cfg.ThresholdMask&(1<<i) == 0 {
			continue
		}
		if (i < 3 && se.raw <= se.th[i]) || (i >= 3 && se.raw >= se.th[i]) {
			b |= 1 << i
		}
	}
	return b
}

// updateEvents re-evaluates se after a change of reading or thresholds and
// logs the assertion and deassertion events its MC would send.
func (s *Shelf) updateEvents(m *mc, se *sensor) {
	before := se.asserted
	now := se.evaluate(before)
	se.asserted = now
	if m.state == M7 || m.state == M0 {
		return
	}
	for off := 0; off < 12; off++ {
		bit := uint16(1) << off
		if (before^now)&bit == 0 {
			continue
		}
		th := se.th[off/2]
		if now&bit != 0 {
			if se.eventsOn && se.assertEn&bit != 0 {
				s.mcEvent(m, se.cfg.Type, se.cfg.Number, eventTypeThresh, 0x50|byte(off), se.raw, th)
			}
		} else if se.eventsOn && se.deassertEn&bit != 0 {
			s.mcEvent(m, se.cfg.Type, se.cfg.Number, 0x80|eventTypeThresh, 0x50|byte(off), se.raw, th)
		}
	}
}

// mcEvent delivers an event message from m's sensor to its event
// receiver; the shelf manager's event receiver logs it in the SEL. An MC
// whose event receiver is disabled (FFh) or elsewhere sends nothing here.
func (s *Shelf) mcEvent(m *mc, sensorType, sensor, dirType, d1, d2, d3 byte) {
	if m.evReceiver != s.cfg.Addr {
		return
	}
	s.sel.event(s.ts(), m.addr, sensorType, sensor, dirType, d1, d2, d3)
}

// sensorCmd serves the Sensor/Event commands of one MC.
func (s *Shelf) sensorCmd(m *mc, cmd uint8, d []byte) (ipmi.CompletionCode, []byte) {
	switch cmd {
	case 0x00: // Set Event Receiver
		if len(d) != 2 {
			return ipmi.CCRequestDataLength, nil
		}
		m.evReceiver = d[0]
		return ipmi.CCOK, nil
	case 0x01: // Get Event Receiver
		return ipmi.CCOK, []byte{m.evReceiver, 0x00}
	case 0x20: // Get Device SDR Info
		if len(d) > 0 && d[0]&1 != 0 {
			return ipmi.CCOK, []byte{byte(len(m.dev.records)), 0x01}
		}
		return ipmi.CCOK, []byte{byte(len(m.sensors) + 1), 0x01}
	case 0x21: // Get Device SDR
		return m.dev.get(d, s.maxData(m, 2))
	case 0x22: // Reserve Device SDR Repository
		r := m.dev.reserve()
		return ipmi.CCOK, []byte{byte(r), byte(r >> 8)}
	}
	if len(d) < 1 {
		return ipmi.CCRequestDataLength, nil
	}
	num := d[0]
	if num == m.hsSensor {
		return s.hotSwapSensorCmd(m, cmd, d)
	}
	se, ok := m.sensors[num]
	if !ok {
		switch cmd {
		case 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2D:
			return ipmi.CCNotPresent, nil
		}
		return ipmi.CCInvalidCommand, nil
	}
	switch cmd {
	case 0x2D: // Get Sensor Reading
		if len(d) != 1 {
			return ipmi.CCRequestDataLength, nil
		}
		return ipmi.CCOK, []byte{se.raw, se.enableByte(), se.status()}
	case 0x27: // Get Sensor Thresholds
		if len(d) != 1 {
			return ipmi.CCRequestDataLength, nil
		}
		out := []byte{se.cfg.ThresholdMask}
		return ipmi.CCOK, append(out, se.th[:]...)
	case 0x26: // Set Sensor Thresholds
		if len(d) != 8 {
			return ipmi.CCRequestDataLength, nil
		}
		set := d[1] & 0x3f
		if set&^se.cfg.ThresholdMask != 0 {
			return ipmi.CCInvalidDataField, nil
		}
		for i := 0; i < 6; i++ {
			if set&(1<<i) != 0 {
				se.th[i] = d[2+i]
			}
		}
		s.updateEvents(m, se)
		return ipmi.CCOK, nil
	case 0x25: // Get Sensor Hysteresis
		if len(d) != 2 {
			return ipmi.CCRequestDataLength, nil
		}
		return ipmi.CCOK, []byte{se.hystPos, se.hystNeg}
	case 0x24: // Set Sensor Hysteresis
		if len(d) != 4 {
			return ipmi.CCRequestDataLength, nil
		}
		se.hystPos, se.hystNeg = d[2], d[3]
		return ipmi.CCOK, nil
	case 0x29: // Get Sensor Event Enable
		if len(d) != 1 {
			return ipmi.CCRequestDataLength, nil
		}
		return ipmi.CCOK, []byte{se.enableByte(), byte(se.assertEn), byte(se.assertEn >> 8), byte(se.deassertEn), byte(se.deassertEn >> 8)}
	case 0x28: // Set Sensor Event Enable
		if len(d) < 2 || len(d) > 6 {
			return ipmi.CCRequestDataLength, nil
		}
		se.eventsOn = d[1]&0x80 != 0
		se.scanningOn = d[1]&0x40 != 0
		valid := thresholdEventMask(se.cfg.ThresholdMask)
		var a, da uint16
		if len(d) > 2 {
			a = uint16(d[2])
		}
		if len(d) > 3 {
			a |= uint16(d[3]) << 8
		}
		if len(d) > 4 {
			da = uint16(d[4])
		}
		if len(d) > 5 {
			da |= uint16(d[5]) << 8
		}
		switch d[1] >> 4 & 3 {
		case 1: // enable selected
			se.assertEn |= a & valid
			se.deassertEn |= da & valid
		case 2: // disable selected
			se.assertEn &^= a
			se.deassertEn &^= da
		case 3:
			return ipmi.CCInvalidDataField, nil
		}
		return ipmi.CCOK, nil
	}
	return ipmi.CCInvalidCommand, nil
}

func (se *sensor) enableByte() byte {
	var b byte
	if se.eventsOn {
		b |= 0x80
	}
	if se.scanningOn {
		b |= 0x40
	}
	return b
}

func (s *Shelf) hotSwapSensorCmd(m *mc, cmd uint8, d []byte) (ipmi.CompletionCode, []byte) {
	switch cmd {
	case 0x2D:
		if len(d) != 1 {
			return ipmi.CCRequestDataLength, nil
		}
		return ipmi.CCOK, []byte{0x00, 0xC0, 1 << m.state, 0x80}
	case 0x29:
		return ipmi.CCOK, []byte{0xC0, 0xFF, 0x00, 0x00, 0x00}
	case 0x26, 0x27, 0x24, 0x25, 0x28:
		return ipmi.CCIllegalForSensor, nil
	}
	return ipmi.CCInvalidCommand, nil
}
