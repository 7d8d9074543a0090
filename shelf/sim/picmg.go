package sim

import "hpiagent/shelf/ipmi"

// PICMG 3.0 command codes (NetFn 2Ch, defining body 00h).
const (
	picmgGetProperties     = 0x00
	picmgGetAddressInfo    = 0x01
	picmgFRUControl        = 0x04
	picmgGetLEDProperties  = 0x05
	picmgGetLEDColorCaps   = 0x06
	picmgSetLEDState       = 0x07
	picmgGetLEDState       = 0x08
	picmgSetPolicy         = 0x0A
	picmgGetPolicy         = 0x0B
	picmgSetActivation     = 0x0C
	picmgGetLocatorRecord  = 0x0D
	picmgSetPowerLevel     = 0x11
	picmgGetPowerLevel     = 0x12
	picmgGetFRUControlCaps = 0x1E
)

// picmgVersion is the PICMG extension version reported (2.2, PICMG 3.0 R2).
const picmgVersion = 0x22

// blueLocal is the blue LED's local control state in each M-state
// (PICMG 3.0 §3.2.5.1): on in M1, long blink in M2, short blink in M5.
func blueLocal(st MState) (fn, on byte) {
	switch st {
	case M1:
		return 0xFF, 0
	case M2:
		return 0x5A, 0x0A // 900 ms off, 100 ms on
	case M5:
		return 0x0A, 0x5A // 100 ms off, 900 ms on
	}
	return 0x00, 0
}

func (m *mc) ledLocal(id int) (fn, on, color byte) {
	switch id {
	case 0:
		fn, on = blueLocal(m.state)
	case 2:
		if m.state == M4 {
			fn = 0xFF
		}
	}
	return fn, on, m.leds[id].defLocal
}

// picmgCmd serves a PICMG command; d starts after the PICMG identifier and
// the returned data goes after it.
func (s *Shelf) picmgCmd(m *mc, cmd uint8, d []byte) (ipmi.CompletionCode, []byte) {
	maxFRU := byte(0)
	if m.isShM {
		maxFRU = 1
	}
	need := map[uint8]int{
		picmgFRUControl: 2, picmgGetLEDProperties: 1, picmgGetLEDColorCaps: 2, picmgSetLEDState: 5,
		picmgGetLEDState: 2, picmgSetPolicy: 3, picmgGetPolicy: 1, picmgSetActivation: 2,
		picmgGetLocatorRecord: 1, picmgSetPowerLevel: 3, picmgGetPowerLevel: 2, picmgGetFRUControlCaps: 1,
	}
	n, fruCmd := need[cmd]
	if !fruCmd && cmd != picmgGetProperties && cmd != picmgGetAddressInfo {
		return ipmi.CCInvalidCommand, nil
	}
	// Commands that name a FRU: check it exists (FRU 0 = the MC's own board).
	if fruCmd {
		if len(d) < 1 {
			return ipmi.CCRequestDataLength, nil
		}
		if d[0] > maxFRU || (d[0] != 0 && cmd != picmgGetLocatorRecord) {
			return ipmi.CCInvalidDataField, nil
		}
	}
	if fruCmd && len(d) != n {
		return ipmi.CCRequestDataLength, nil
	}
	switch cmd {
	case picmgGetProperties:
		if len(d) != 0 {
			return ipmi.CCRequestDataLength, nil
		}
		return ipmi.CCOK, []byte{picmgVersion, maxFRU, 0x00}
	case picmgGetAddressInfo:
		return s.addressInfo(m, d)
	case picmgGetFRUControlCaps:
		return ipmi.CCOK, []byte{m.cfg.ControlCapabilities & 0x0e}
	case picmgFRUControl:
		opt := d[1]
		if opt > 3 || (opt != 0 && m.cfg.ControlCapabilities&(1<<opt) == 0) {
			return ipmi.CCInvalidDataField, nil
		}
		if m.state != M4 {
			return ipmi.CCNotSupportedInState, nil
		}
		m.resets++
		return ipmi.CCOK, nil
	case picmgGetLEDProperties:
		return ipmi.CCOK, []byte{0x07, 0x00} // blue LED, LED1, LED2; no application LEDs
	case picmgGetLEDColorCaps:
		if d[1] > 2 {
			return ipmi.CCInvalidDataField, nil
		}
		l := m.leds[d[1]]
		return ipmi.CCOK, []byte{l.caps, l.defLocal, l.defOverride}
	case picmgSetLEDState:
		return s.setLED(m, d)
	case picmgGetLEDState:
		if d[1] > 2 {
			return ipmi.CCInvalidDataField, nil
		}
		id := int(d[1])
		l := m.leds[id]
		fn, on, color := m.ledLocal(id)
		st := byte(0x01)
		out := []byte{0, fn, on, color}
		if l.override || l.lampTest {
			st |= 0x02
			out = append(out, l.fn, l.onDur, l.color)
		}
		if l.lampTest {
			st |= 0x04
			out = append(out, l.lampDur)
		}
		out[0] = st
		return ipmi.CCOK, out
	case picmgSetPolicy:
		mask, bits := d[1], d[2]
		if mask&^0x03 != 0 {
			return ipmi.CCInvalidDataField, nil
		}
		if mask&0x01 != 0 {
			m.locked = bits&0x01 != 0
		}
		if mask&0x02 != 0 {
			m.deactLocked = bits&0x02 != 0
		}
		s.settle(m, CauseProgrammatic)
		return ipmi.CCOK, nil
	case picmgGetPolicy:
		var p byte
		if m.locked {
			p |= 0x01
		}
		if m.deactLocked {
			p |= 0x02
		}
		return ipmi.CCOK, []byte{p}
	case picmgSetActivation:
		switch d[1] {
		case 0x01: // activate
			if m.state != M2 {
				return ipmi.CCNotSupportedInState, nil
			}
			s.setState(m, M3, CauseShelfManager)
			s.settle(m, CauseShelfManager)
			return ipmi.CCOK, nil
		case 0x00: // deactivate
			if !s.deactivate(m, CauseShelfManager, true) {
				return ipmi.CCNotSupportedInState, nil
			}
			return ipmi.CCOK, nil
		}
		return ipmi.CCInvalidDataField, nil
	case picmgGetLocatorRecord:
		var id uint16
		if d[0] == 0 {
			id = m.dev.recordID(sdrMCLocator, m.addr)
		} else {
			id = m.dev.recordID(sdrFRULocator, m.addr)
		}
		if id == 0 {
			return ipmi.CCNotPresent, nil
		}
		return ipmi.CCOK, []byte{byte(id), byte(id >> 8)}
	case picmgGetPowerLevel:
		return s.getPowerLevel(m, d[1])
	case picmgSetPowerLevel:
		return s.setPowerLevel(m, d[1])
	}
	return ipmi.CCInvalidCommand, nil
}

func (s *Shelf) addressInfo(m *mc, d []byte) (ipmi.CompletionCode, []byte) {
	target := m
	fru := byte(0)
	switch len(d) {
	case 0, 1:
		if len(d) == 1 {
			fru = d[0]
		}
	case 3, 4:
		fru = d[0]
		var found *mc
		for _, c := range append([]*mc{s.shm}, s.ipmcs...) {
			switch d[1] {
			case 0x00: // hardware address
				if c.addr>>1 == d[2] {
					found = c
				}
			case 0x01: // IPMB-0 address
				if c.addr == d[2] {
					found = c
				}
			case 0x03: // physical address: site number (+ site type)
				if c.cfg.SiteNumber == d[2] && (len(d) < 4 || byte(c.cfg.SiteType) == d[3]) {
					found = c
				}
			default:
				return ipmi.CCInvalidDataField, nil
			}
			if found != nil {
				break
			}
		}
		// An IPMC knows only itself; the shelf manager knows the shelf.
		if found == nil || (!m.isShM && found != m) {
			return ipmi.CCNotPresent, nil
		}
		target = found
	default:
		return ipmi.CCRequestDataLength, nil
	}
	maxFRU := byte(0)
	if target.isShM {
		maxFRU = 1
	}
	if fru > maxFRU {
		return ipmi.CCInvalidDataField, nil
	}
	return ipmi.CCOK, []byte{target.addr >> 1, target.addr, 0xFF, fru, target.cfg.SiteNumber, byte(target.cfg.SiteType)}
}

func (s *Shelf) setLED(m *mc, d []byte) (ipmi.CompletionCode, []byte) {
	id, fn, on, color := d[1], d[2], d[3], d[4]
	ids := []int{int(id)}
	if id == 0xFF {
		ids = []int{0, 1, 2}
	} else if id > 2 {
		return ipmi.CCInvalidDataField, nil
	}
	if fn == 0xFD || fn == 0xFE || (fn == 0xFB && on >= 128) {
		return ipmi.CCInvalidDataField, nil
	}
	for _, i := range ids {
		c := color & 0x0f
		if c >= 1 && c <= 6 && m.leds[i].caps&(1<<c) == 0 {
			return ipmi.CCInvalidDataField, nil
		}
		if c == 0 || (c > 6 && c < 0x0e) {
			return ipmi.CCInvalidDataField, nil
		}
	}
	for _, i := range ids {
		l := &m.leds[i]
		switch fn {
		case 0xFC: // restore local control
			l.override, l.lampTest = false, false
			continue
		case 0xFB: // lamp test
			l.lampTest, l.lampDur = true, on
			continue
		}
		l.override, l.lampTest = true, false
		l.fn, l.onDur = fn, on
		if fn == 0x00 || fn == 0xFF {
			l.onDur = 0
		}
		switch c := color & 0x0f; c {
		case 0x0e:
			if l.color == 0 {
				l.color = l.defOverride
			}
		case 0x0f:
			l.color = l.defOverride
		default:
			l.color = c
		}
	}
	return ipmi.CCOK, nil
}

// getPowerLevel serves Get Power Level (PICMG 3.0 table 3-84).
func (s *Shelf) getPowerLevel(m *mc, typ byte) (ipmi.CompletionCode, []byte) {
	var levels []uint8
	var lvl byte
	switch typ {
	case 0: // steady state, present level
		levels, lvl = m.cfg.PowerLevels, m.powerLevel
	case 1: // desired steady state
		levels, lvl = m.cfg.PowerLevels, m.cfg.DesiredLevel
	case 2: // early, present level
		levels, lvl = m.cfg.EarlyPowerLevels, m.powerLevel
	case 3: // desired early
		levels, lvl = m.cfg.EarlyPowerLevels, m.cfg.DesiredLevel
	default:
		return ipmi.CCInvalidDataField, nil
	}
	out := []byte{lvl & 0x1f, m.cfg.PowerDelay, m.cfg.PowerMultiplier}
	return ipmi.CCOK, append(out, levels...)
}

// setPowerLevel serves Set Power Level: the shelf manager grants power in
// M3 (the FRU then reaches M4), changes it in M4, and level 0 removes the
// payload power, which deactivates the FRU.
func (s *Shelf) setPowerLevel(m *mc, lvl byte) (ipmi.CompletionCode, []byte) {
	if lvl == 0xFF {
		return ipmi.CCOK, nil
	}
	if int(lvl) > len(m.cfg.PowerLevels) {
		return ipmi.CCInvalidDataField, nil
	}
	if m.isShM {
		return ipmi.CCNotSupportedInState, nil
	}
	if lvl == 0 {
		switch m.state {
		case M3, M4, M5:
			s.deactivate(m, CauseShelfManager, true)
		}
		return ipmi.CCOK, nil
	}
	switch m.state {
	case M3, M4, M5:
		m.powerLevel = lvl
		s.settle(m, CauseNormal)
		return ipmi.CCOK, nil
	}
	return ipmi.CCNotSupportedInState, nil
}
