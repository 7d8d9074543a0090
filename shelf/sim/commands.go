package sim

import (
	"encoding/binary"
	"time"

	"hpiagent/shelf/ipmi"
)

// Send Message completion codes (IPMI 2.0 §22.7).
const (
	ccNAKOnWrite ipmi.CompletionCode = 0x83
	ccWDUninit   ipmi.CompletionCode = 0x80 // Reset Watchdog before Set Watchdog
)

// Handle processes one request from a LAN console to the shelf manager,
// in IPMB form (DstAddr = shelf manager, SrcAddr = console software ID),
// with the privilege of the console's session. It returns the frames to
// send back to the console in order: normally one response; for a bridged
// request in the separate reply style the Send Message response and then
// the IPMC's response; only the Send Message response when the IPMC does not
// answer. Handle does no I/O.
func (s *Shelf) Handle(req ipmi.Frame, priv Privilege) []ipmi.Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.NetFn.IsResponse() {
		return nil
	}
	if req.NetFn == ipmi.NetFnApp && req.Cmd == 0x34 {
		return s.sendMessage(req, priv)
	}
	cc, data := s.exec(s.shm, req, priv)
	return []ipmi.Frame{response(req, s.cfg.Addr, cc, data)}
}

func response(req ipmi.Frame, from uint8, cc ipmi.CompletionCode, data []byte) ipmi.Frame {
	return ipmi.Frame{
		DstAddr: req.SrcAddr, NetFn: req.NetFn.Response(), DstLUN: req.SrcLUN,
		SrcAddr: from, Seq: req.Seq, SrcLUN: req.DstLUN, Cmd: req.Cmd,
		Data: append([]byte{byte(cc)}, data...),
	}
}

// sendMessage bridges a request to an IPMC on IPMB-0.
func (s *Shelf) sendMessage(req ipmi.Frame, priv Privilege) []ipmi.Frame {
	s.counters.Bridged++
	s.counters.Commands[CommandKey{s.cfg.Addr, req.NetFn, req.Cmd}]++
	if priv < PrivUser {
		return []ipmi.Frame{response(req, s.cfg.Addr, ipmi.CCInsufficientPrivilege, nil)}
	}
	if len(req.Data) < 1+ipmi.MinFrameLen {
		return []ipmi.Frame{response(req, s.cfg.Addr, ipmi.CCRequestDataLength, nil)}
	}
	if req.Data[0]&0x0f != 0 || req.Data[0]&0xc0 == 0xc0 {
		// Only IPMB-0 exists on this shelf manager.
		return []ipmi.Frame{response(req, s.cfg.Addr, ipmi.CCInvalidDataField, nil)}
	}
	raw := req.Data[1:]
	target := raw[0]
	m, ok := s.mcs[target]
	if !ok || m.state == M0 {
		// Nobody acknowledges the address on IPMB.
		return []ipmi.Frame{response(req, s.cfg.Addr, ccNAKOnWrite, nil)}
	}
	inner, err := ipmi.ParseFrame(raw)
	if err != nil || m.unresponsive {
		// The IPMC discards a frame with a bad checksum and a lost IPMC
		// answers nothing: the bridged request times out.
		if s.cfg.Bridge == BridgeEmbedded {
			return []ipmi.Frame{response(req, s.cfg.Addr, ipmi.CCTimeout, nil)}
		}
		return []ipmi.Frame{response(req, s.cfg.Addr, ipmi.CCOK, nil)}
	}
	if inner.NetFn.IsResponse() {
		return []ipmi.Frame{response(req, s.cfg.Addr, ipmi.CCOK, nil)}
	}
	// The shelf manager forwards the request on IPMB as its own (requester
	// address = its address, the console's sequence number kept) and tracks
	// it; the IPMC's response therefore goes to the shelf manager, and is
	// passed to the console unchanged, as ipmi_sim does.
	inner.SrcAddr = s.cfg.Addr
	cc, data := s.exec(m, inner, priv)
	resp := response(inner, m.addr, cc, data)
	if s.cfg.Bridge == BridgeEmbedded {
		return []ipmi.Frame{response(req, s.cfg.Addr, ipmi.CCOK, resp.Marshal())}
	}
	return []ipmi.Frame{response(req, s.cfg.Addr, ipmi.CCOK, nil), resp}
}

// requiredPrivilege is the privilege a command needs (IPMI 2.0 appendix G,
// PICMG 3.0 for NetFn 2Ch: state-changing commands need operator).
func requiredPrivilege(netfn ipmi.NetFn, cmd uint8) Privilege {
	switch netfn {
	case ipmi.NetFnChassis:
		if cmd == 0x02 {
			return PrivOperator
		}
	case ipmi.NetFnApp:
		switch cmd {
		case 0x22, 0x24:
			return PrivOperator
		case 0x38, 0x54, 0x37:
			return PrivCallback
		}
	case ipmi.NetFnSensor:
		switch cmd {
		case 0x00, 0x02, 0x24, 0x26, 0x28:
			return PrivOperator
		}
	case ipmi.NetFnStorage:
		switch cmd {
		case 0x44, 0x47, 0x49:
			return PrivOperator
		}
	case ipmi.NetFnGroup:
		switch cmd {
		case 0x04, 0x07, 0x0A, 0x0C, 0x11:
			return PrivOperator
		}
	}
	return PrivUser
}

// exec runs one request on controller m and returns the completion code and data.
func (s *Shelf) exec(m *mc, req ipmi.Frame, priv Privilege) (ipmi.CompletionCode, []byte) {
	s.counters.Commands[CommandKey{m.addr, req.NetFn, req.Cmd}]++
	if req.DstLUN != 0 {
		return ipmi.CCInvalidForLUN, nil
	}
	if priv < requiredPrivilege(req.NetFn, req.Cmd) {
		return ipmi.CCInsufficientPrivilege, nil
	}
	d := req.Data
	switch req.NetFn {
	case ipmi.NetFnApp:
		return s.appCmd(m, req.Cmd, d)
	case ipmi.NetFnChassis:
		if m.isShM || m.cfg.ChassisCommands {
			return s.chassisCmd(m, req.Cmd, d)
		}
	case ipmi.NetFnSensor:
		if req.Cmd == 0x02 && m.isShM { // Platform Event (Event Message) from software
			if len(d) != 7 {
				return ipmi.CCRequestDataLength, nil
			}
			s.sel.event(s.ts(), req.SrcAddr|1, d[1], d[2], d[3], d[4], d[5], d[6])
			return ipmi.CCOK, nil
		}
		return s.sensorCmd(m, req.Cmd, d)
	case ipmi.NetFnStorage:
		return s.storageCmd(m, req.Cmd, d)
	case ipmi.NetFnGroup:
		if len(d) < 1 || d[0] != 0x00 {
			return ipmi.CCInvalidDataField, nil
		}
		cc, out := s.picmgCmd(m, req.Cmd, d[1:])
		if cc == ipmi.CCOK || len(out) > 0 {
			return cc, append([]byte{0x00}, out...)
		}
		return cc, nil
	}
	return ipmi.CCInvalidCommand, nil
}

func (s *Shelf) appCmd(m *mc, cmd uint8, d []byte) (ipmi.CompletionCode, []byte) {
	switch cmd {
	case 0x01: // Get Device ID
		devRev := byte(0x01)
		if !m.isShM {
			devRev |= 0x80 // provides device SDRs
		}
		out := []byte{0x00, devRev, 0x02, 0x10, 0x02, s.deviceCaps(m)}
		id := s.cfg.ManufacturerID
		out = append(out, byte(id), byte(id>>8), byte(id>>16)&0x0f)
		pid := s.cfg.ProductID
		if !m.isShM {
			pid++
		}
		return ipmi.CCOK, append(out, byte(pid), byte(pid>>8))
	case 0x37: // Get System GUID
		return ipmi.CCOK, append([]byte(nil), s.cfg.GUID[:]...)
	case 0x38: // Get Channel Authentication Capabilities
		if !m.isShM {
			break
		}
		return s.authCaps(d)
	case 0x54: // Get Channel Cipher Suites
		if !m.isShM {
			break
		}
		return s.cipherSuites(d)
	case 0x22, 0x24, 0x25:
		if m.isShM {
			return s.watchdogCmd(cmd, d)
		}
	}
	return ipmi.CCInvalidCommand, nil
}

// authCaps serves Get Channel Authentication Capabilities: only IPMI 2.0
// (RMCP+) logins with user names are possible.
func (s *Shelf) authCaps(d []byte) (ipmi.CompletionCode, []byte) {
	if len(d) != 2 {
		return ipmi.CCRequestDataLength, nil
	}
	ch := d[0] & 0x0f
	if ch != 0x0e && ch != 1 {
		return ipmi.CCInvalidDataField, nil
	}
	if d[1]&0x0f < 1 || d[1]&0x0f > 5 {
		return ipmi.CCInvalidDataField, nil
	}
	if d[0]&0x80 == 0 {
		// An IPMI 1.5 request: no IPMI 1.5 authentication type is offered.
		return ipmi.CCOK, []byte{0x01, 0x00, 0x04, 0x00, 0, 0, 0, 0}
	}
	return ipmi.CCOK, []byte{0x01, 0x80, 0x04, 0x02, 0, 0, 0, 0}
}

// cipherSuites serves Get Channel Cipher Suites (IPMI 2.0 §22.15).
func (s *Shelf) cipherSuites(d []byte) (ipmi.CompletionCode, []byte) {
	if len(d) != 3 {
		return ipmi.CCRequestDataLength, nil
	}
	if d[0]&0x0f != 0x0e && d[0]&0x0f != 1 {
		return ipmi.CCInvalidDataField, nil
	}
	if d[1] != 0 { // only the IPMI payload
		return ipmi.CCInvalidDataField, nil
	}
	var recs []byte
	for _, id := range s.cfg.CipherSuites {
		switch id {
		case 3:
			recs = append(recs, 0xC0, 3, 0x01, 0x41, 0x81)
		case 17:
			recs = append(recs, 0xC0, 17, 0x03, 0x44, 0x81)
		}
	}
	idx := int(d[2] & 0x3f)
	start := idx * 16
	if start > len(recs) {
		return ipmi.CCParameterOutOfRange, nil
	}
	end := min(start+16, len(recs))
	return ipmi.CCOK, append([]byte{0x01}, recs[start:end]...)
}

func (s *Shelf) watchdogCmd(cmd uint8, d []byte) (ipmi.CompletionCode, []byte) {
	w := &s.wd
	switch cmd {
	case 0x24: // Set Watchdog Timer
		if len(d) != 6 {
			return ipmi.CCRequestDataLength, nil
		}
		w.use, w.actions, w.pre = d[0], d[1], d[2]
		w.expFlags &^= d[3]
		w.initial = binary.LittleEndian.Uint16(d[4:])
		w.remaining, w.sub, w.set = w.initial, 0, true
		if d[0]&0x40 == 0 { // "don't stop" clear: the timer stops
			w.running = false
		}
		return ipmi.CCOK, nil
	case 0x25: // Get Watchdog Timer
		use := w.use &^ 0x40
		if w.running {
			use |= 0x40
		}
		out := []byte{use, w.actions, w.pre, w.expFlags}
		out = binary.LittleEndian.AppendUint16(out, w.initial)
		return ipmi.CCOK, binary.LittleEndian.AppendUint16(out, w.remaining)
	case 0x22: // Reset Watchdog Timer
		if !w.set {
			return ccWDUninit, nil
		}
		w.remaining, w.sub, w.running = w.initial, 0, true
		w.resets++
		return ipmi.CCOK, nil
	}
	return ipmi.CCInvalidCommand, nil
}

func (s *Shelf) tickWatchdog(d time.Duration) {
	w := &s.wd
	if !w.running || d <= 0 {
		return
	}
	w.sub += d
	ticks := w.sub / (100 * time.Millisecond)
	w.sub -= ticks * 100 * time.Millisecond
	if int64(ticks) < int64(w.remaining) {
		w.remaining -= uint16(ticks)
		return
	}
	w.remaining = 0
	w.running = false
	w.expirations++
	w.expFlags |= 1 << (w.use & 0x07)
	switch w.actions & 0x07 {
	case 1, 3: // hard reset, power cycle
		s.lastPowerEvent = 0x00
	case 2: // power down
		s.chassisPower(false)
	}
}

func (s *Shelf) chassisPower(on bool) {
	if s.chassisOn == on {
		return
	}
	s.chassisOn = on
	for _, m := range s.ipmcs {
		if on {
			s.settle(m, CauseNormal)
		} else {
			s.deactivate(m, CauseShelfManager, false)
		}
	}
}

func (s *Shelf) chassisCmd(m *mc, cmd uint8, d []byte) (ipmi.CompletionCode, []byte) {
	switch cmd {
	case 0x01: // Get Chassis Status
		on := s.chassisOn
		if !m.isShM {
			on = m.powerLevel > 0
		}
		st := byte(0x40) // restore policy: always on
		if on {
			st |= 0x01
		}
		return ipmi.CCOK, []byte{st, s.lastPowerEvent, 0x00, 0x00}
	case 0x02: // Chassis Control
		if len(d) != 1 {
			return ipmi.CCRequestDataLength, nil
		}
		op := d[0] & 0x0f
		if op > 5 || op == 4 {
			return ipmi.CCInvalidDataField, nil
		}
		if m.isShM {
			switch op {
			case 0, 5:
				s.chassisPower(false)
			case 1:
				s.chassisPower(true)
				s.lastPowerEvent = 0x10
			case 2:
				s.chassisPower(false)
				s.chassisPower(true)
				s.lastPowerEvent = 0x10
			}
			return ipmi.CCOK, nil
		}
		switch op {
		case 0, 5: // payload power off, as a fence does it
			s.deactivate(m, CauseShelfManager, true)
		case 1:
			if m.state == M1 || m.state == M2 {
				m.locked = false
				s.settle(m, CauseShelfManager)
				if m.state == M2 {
					s.setState(m, M3, CauseShelfManager)
					s.settle(m, CauseShelfManager)
				}
			}
		case 2, 3:
			if m.state == M4 {
				m.resets++
			}
		}
		return ipmi.CCOK, nil
	}
	return ipmi.CCInvalidCommand, nil
}

// ipmbMaxData is the largest response data (after the completion code) an
// IPMB message of 32 bytes can carry.
const ipmbMaxData = 32 - ipmi.MinFrameLen - 1

// maxData is the largest count a read command (Read FRU Data, Get SDR)
// accepts on m, whose response has overhead bytes before the data: an IPMC
// answers over IPMB, the shelf manager over LAN.
func (s *Shelf) maxData(m *mc, overhead int) int {
	if m.isShM {
		return s.cfg.FRUReadMax
	}
	return min(s.cfg.FRUReadMax, ipmbMaxData-overhead)
}

func (s *Shelf) storageCmd(m *mc, cmd uint8, d []byte) (ipmi.CompletionCode, []byte) {
	switch cmd {
	case 0x10: // Get FRU Inventory Area Info
		if len(d) != 1 {
			return ipmi.CCRequestDataLength, nil
		}
		img, ok := m.fru[d[0]]
		if !ok || d[0] == 0xFF {
			return ipmi.CCInvalidDataField, nil
		}
		return ipmi.CCOK, []byte{byte(len(img)), byte(len(img) >> 8), 0x00}
	case 0x11: // Read FRU Data
		if len(d) != 4 {
			return ipmi.CCRequestDataLength, nil
		}
		img, ok := m.fru[d[0]]
		if !ok || d[0] == 0xFF {
			return ipmi.CCInvalidDataField, nil
		}
		off := int(binary.LittleEndian.Uint16(d[1:]))
		n := int(d[3])
		if n > s.maxData(m, 1) {
			return ipmi.CCCannotReturnBytes, nil
		}
		if off >= len(img) {
			return ipmi.CCParameterOutOfRange, nil
		}
		n = min(n, len(img)-off)
		return ipmi.CCOK, append([]byte{byte(n)}, img[off:off+n]...)
	}
	if !m.isShM {
		return ipmi.CCInvalidCommand, nil
	}
	switch cmd {
	case 0x20: // Get SDR Repository Info
		return ipmi.CCOK, s.main.info()
	case 0x22: // Reserve SDR Repository
		r := s.main.reserve()
		return ipmi.CCOK, []byte{byte(r), byte(r >> 8)}
	case 0x23: // Get SDR
		return s.main.get(d, 0xFF) // over LAN a whole record fits
	case 0x40: // Get SEL Info
		return ipmi.CCOK, s.sel.info()
	case 0x42: // Reserve SEL
		r := s.sel.reserve()
		return ipmi.CCOK, []byte{byte(r), byte(r >> 8)}
	case 0x43: // Get SEL Entry
		return s.sel.get(d)
	case 0x44: // Add SEL Entry
		if len(d) != 16 {
			return ipmi.CCRequestDataLength, nil
		}
		var rec [16]byte
		copy(rec[:], d)
		if rec[2] == 0x02 || (rec[2] >= 0xC0 && rec[2] <= 0xDF) {
			binary.LittleEndian.PutUint32(rec[3:], s.ts()) // the SEL device stamps the time
		}
		id, ok := s.sel.add(rec, s.ts())
		if !ok {
			return ipmi.CCOutOfSpace, nil
		}
		return ipmi.CCOK, []byte{byte(id), byte(id >> 8)}
	case 0x47: // Clear SEL
		return s.sel.clear(d, s.ts())
	case 0x48: // Get SEL Time
		return ipmi.CCOK, binary.LittleEndian.AppendUint32(nil, s.ts())
	}
	return ipmi.CCInvalidCommand, nil
}
