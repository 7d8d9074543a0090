package rmcpp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"hpiagent/shelf/ipmi"
)

// Errors of session establishment.
var (
	// ErrNegotiation: the BMC offers no allowed cipher suite, only IPMI
	// 1.5, or answered Open Session with other algorithms than requested.
	ErrNegotiation = errors.New("rmcpp: session negotiation failed")
	// ErrTimeout: no valid response arrived in time.
	ErrTimeout = errors.New("rmcpp: no response")
	// ErrPrivilege: the BMC granted the session another privilege level
	// than Config.Privilege (typically less: the user's limit is lower).
	ErrPrivilege = errors.New("rmcpp: privilege level not granted")
)

const (
	swidRemoteConsole = ipmi.AddrRemoteConsole // 0x81, requester in LAN messages
	addrBMC           = ipmi.AddrBMC           // 0x20, responder of LAN messages
	cmdGetDeviceID    = 0x01
	cmdSendMessage    = 0x34
	cmdGetChannelAuth = 0x38
	cmdSetSessionPriv = 0x3B
	cmdCloseSession   = 0x3C
	cmdGetCipherSuite = 0x54
	maxPacket         = 2048
)

// link is one established session: the socket, the keys and the
// sequence state. Only one goroutine uses a link at a time.
type link struct {
	conn       net.Conn
	suite      Suite
	keys       *SessionKeys
	consoleSID uint32
	bmcSID     uint32
	outSeq     uint32
	win        SeqWindow
	bmcAddr    uint8
	priv       Privilege
}

// offeredSuite is one record of Get Channel Cipher Suites.
type offeredSuite struct {
	id        int
	auth      AuthAlg
	integrity IntegrityAlg
	conf      ConfAlg
	oem       bool
}

// establish opens a UDP socket to cfg.Addr and negotiates a session.
func establish(ctx context.Context, cfg Config, log *slog.Logger) (*link, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Addr, err)
	}
	l, err := negotiate(ctx, conn, cfg, log)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("establishing RMCP+ session with %s: %w", cfg.Addr, err)
	}
	return l, nil
}

func randomUint32() uint32 {
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		if v := binary.LittleEndian.Uint32(b[:]); v != 0 {
			return v
		}
	}
}

// roundTrip sends out and reads packets until accept says one is the
// answer, retrying tries times with per-attempt timeout. accept returns
// (true, err) to stop; (false, nil) ignores the packet.
func roundTrip(ctx context.Context, conn net.Conn, out []byte, timeout time.Duration, tries int, accept func([]byte) (bool, error)) error {
	buf := make([]byte, maxPacket)
	// Cancelling ctx interrupts a read at once (the deadline set below is
	// then followed by a check of ctx, so a cancellation cannot be lost).
	var mu sync.Mutex
	returned := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !returned { // never touch the socket once its next user has it
			_ = conn.SetReadDeadline(time.Unix(1, 0))
		}
	})
	defer func() {
		if !stop() {
			mu.Lock()
			returned = true
			mu.Unlock()
		}
	}()
	for range tries {
		if _, err := conn.Write(out); err != nil {
			return fmt.Errorf("sending: %w", err)
		}
		deadline := time.Now().Add(timeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		if err := conn.SetReadDeadline(deadline); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					break
				}
				// ICMP port unreachable shows up as a read error on a
				// connected UDP socket: treat it like a lost packet.
				if errors.Is(err, net.ErrClosed) {
					return err
				}
				if time.Now().After(deadline) {
					break
				}
				continue
			}
			done, err := accept(buf[:n])
			if done || err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return ErrTimeout
}

// presession exchanges one IPMI message with the BMC outside a session,
// in the IPMI 1.5 format (auth type none) or, with v2, the IPMI 2.0
// format with session ID 0.
func presession(ctx context.Context, conn net.Conn, cfg Config, seq uint8, cmd uint8, data []byte, v2 bool, tries int) (ipmi.Response, error) {
	msg := ipmi.Frame{DstAddr: addrBMC, NetFn: ipmi.NetFnApp, SrcAddr: swidRemoteConsole, Seq: seq, Cmd: cmd, Data: data}.Marshal()
	var out []byte
	var err error
	if v2 {
		out, err = EncodePacket(Packet{Type: PayloadIPMI, Payload: msg}, nil, nil)
	} else {
		out, err = EncodeV15(msg)
	}
	if err != nil {
		return ipmi.Response{}, err
	}
	var resp ipmi.Response
	err = roundTrip(ctx, conn, out, cfg.RequestTimeout, tries, func(b []byte) (bool, error) {
		var m []byte
		if IsV20(b) {
			p, err := DecodePacket(b, nil)
			if err != nil || p.Type != PayloadIPMI {
				return false, nil
			}
			m = p.Payload
		} else {
			m, err = DecodeV15(b)
			if err != nil {
				return false, nil
			}
		}
		f, err := ipmi.ParseFrame(m)
		if err != nil || f.Seq != seq || f.Cmd != cmd || f.NetFn != ipmi.NetFnApp.Response() || len(f.Data) < 1 {
			return false, nil
		}
		resp = ipmi.Response{Code: ipmi.CompletionCode(f.Data[0]), Data: f.Data[1:]}
		return true, nil
	})
	return resp, err
}

// negotiate runs capabilities discovery, Open Session, RAKP 1–4 and Set
// Session Privilege Level on conn.
func negotiate(ctx context.Context, conn net.Conn, cfg Config, log *slog.Logger) (*link, error) {
	tries := cfg.Retries + 1
	// Get Channel Authentication Capabilities, IPMI 2.0 extended form.
	caps, err := presession(ctx, conn, cfg, 0, cmdGetChannelAuth, []byte{0x8E, uint8(cfg.Privilege)}, false, tries)
	if errors.Is(err, ErrTimeout) {
		// Some BMCs answer pre-session messages only in the IPMI 2.0 format.
		caps, err = presession(ctx, conn, cfg, 0, cmdGetChannelAuth, []byte{0x8E, uint8(cfg.Privilege)}, true, 1)
	}
	if err != nil {
		return nil, fmt.Errorf("Get Channel Authentication Capabilities: %w", err)
	}
	if caps.Code != ipmi.CCOK {
		return nil, fmt.Errorf("Get Channel Authentication Capabilities: completion code %s", caps.Code)
	}
	if len(caps.Data) < 8 {
		return nil, fmt.Errorf("Get Channel Authentication Capabilities: %w: %d data bytes", ErrShort, len(caps.Data))
	}
	if caps.Data[1]&0x80 == 0 || caps.Data[3]&0x02 == 0 {
		return nil, fmt.Errorf("%w: the BMC does not support IPMI 2.0 (RMCP+); IPMI 1.5 sessions are refused", ErrNegotiation)
	}

	// Get Channel Cipher Suites. Optional: some BMCs do not implement it.
	offered, err := cipherSuites(ctx, conn, cfg)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var candidates []Suite
	if err != nil {
		log.Debug("Get Channel Cipher Suites unavailable, probing the allow-list with Open Session", "addr", cfg.Addr, "err", err)
		for _, id := range cfg.CipherSuites {
			s, _ := LookupSuite(id)
			candidates = append(candidates, s)
		}
	} else {
		var ids []int
		for _, o := range offered {
			ids = append(ids, o.id)
		}
		for _, id := range cfg.CipherSuites {
			s, _ := LookupSuite(id)
			i := slices.IndexFunc(offered, func(o offeredSuite) bool { return o.id == id && !o.oem })
			if i < 0 {
				continue
			}
			if o := offered[i]; o.auth != s.Auth || o.integrity != s.Integrity || o.conf != s.Conf {
				log.Warn("BMC describes a cipher suite with non-standard algorithms; skipping it", "addr", cfg.Addr, "suite", id)
				continue
			}
			candidates = append(candidates, s)
		}
		if len(candidates) == 0 {
			return nil, fmt.Errorf("%w: no allowed cipher suite offered: the BMC offers %v, allowed are %v", ErrNegotiation, ids, cfg.CipherSuites)
		}
	}

	var refused []string
	for _, s := range candidates {
		l, err := openSession(ctx, conn, cfg, s)
		if err == nil {
			return l, nil
		}
		var se *StatusError
		if errors.As(err, &se) && se.Stage == "Open Session" && (se.Status == 0x04 || se.Status == 0x05 || se.Status == 0x10 || se.Status == 0x11) {
			refused = append(refused, fmt.Sprintf("%d (%s)", s.ID, se.Status))
			continue
		}
		return nil, err
	}
	return nil, fmt.Errorf("%w: no allowed cipher suite offered: the BMC refused %v; allowed are %v", ErrNegotiation, refused, cfg.CipherSuites)
}

// cipherSuites reads the cipher suite records of the channel.
func cipherSuites(ctx context.Context, conn net.Conn, cfg Config) ([]offeredSuite, error) {
	var data []byte
	for idx := range 64 {
		var resp ipmi.Response
		var err error
		for _, v2 := range []bool{false, true} {
			if v2 && idx > 0 {
				break
			}
			resp, err = presession(ctx, conn, cfg, uint8(1+idx%62), cmdGetCipherSuite, []byte{0x0E, 0x00, 0x80 | uint8(idx)}, v2, 1)
			if err == nil {
				break
			}
		}
		if err != nil {
			return nil, err
		}
		if resp.Code != ipmi.CCOK {
			return nil, fmt.Errorf("completion code %s", resp.Code)
		}
		if len(resp.Data) < 1 {
			return nil, fmt.Errorf("%w: empty cipher suite response", ErrShort)
		}
		data = append(data, resp.Data[1:]...)
		if len(resp.Data) < 17 {
			break
		}
	}
	return parseCipherSuiteRecords(data)
}

// parseCipherSuiteRecords decodes Get Channel Cipher Suites record data
// (IPMI 2.0 table 22-18).
func parseCipherSuiteRecords(b []byte) ([]offeredSuite, error) {
	var out []offeredSuite
	for i := 0; i < len(b); {
		var o offeredSuite
		switch b[i] {
		case 0xC0:
			if i+2 > len(b) {
				return out, fmt.Errorf("%w: cipher suite record cut short", ErrShort)
			}
			o.id = int(b[i+1])
			i += 2
		case 0xC1:
			if i+5 > len(b) {
				return out, fmt.Errorf("%w: OEM cipher suite record cut short", ErrShort)
			}
			o.id, o.oem = int(b[i+1]), true
			i += 5
		default:
			return out, fmt.Errorf("%w: cipher suite record starts with 0x%02x", ErrFormat, b[i])
		}
		for i < len(b) && b[i]&0xC0 != 0xC0 {
			switch b[i] >> 6 {
			case 0:
				o.auth = AuthAlg(b[i] & 0x3f)
			case 1:
				o.integrity = IntegrityAlg(b[i] & 0x3f)
			case 2:
				o.conf = ConfAlg(b[i] & 0x3f)
			}
			i++
		}
		out = append(out, o)
	}
	return out, nil
}

// forConsole reports whether a handshake answer with this status and
// console session ID answers the console session consoleSID. Answers for
// another console session are ignored rather than fatal: until RAKP 2 is
// verified anybody can send them. An error status without a session ID
// (ipmi_sim sends only tag and status) is taken as it is.
func forConsole(status Status, id, consoleSID uint32) bool {
	return id == consoleSID || (status != 0 && id == 0)
}

// openSession runs Open Session and RAKP 1–4 for suite s.
func openSession(ctx context.Context, conn net.Conn, cfg Config, s Suite) (*link, error) {
	tries := cfg.Retries + 1
	consoleSID := randomUint32()
	tag := uint8(randomUint32())
	req := OpenSessionRequest{Tag: tag, MaxPrivilege: cfg.Privilege, ConsoleSessionID: consoleSID, Auth: s.Auth, Integrity: s.Integrity, Conf: s.Conf}
	out, _ := EncodePacket(Packet{Type: PayloadOpenSessionRequest, Payload: req.Marshal()}, nil, nil)
	var osr OpenSessionResponse
	err := roundTrip(ctx, conn, out, cfg.RequestTimeout, tries, func(b []byte) (bool, error) {
		p, err := DecodePacket(b, nil)
		if err != nil || p.Type != PayloadOpenSessionResponse {
			return false, nil
		}
		m, err := ParseOpenSessionResponse(p.Payload)
		if err != nil || m.Tag != tag || !forConsole(m.Status, m.ConsoleSessionID, consoleSID) {
			return false, nil
		}
		osr = m
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("Open Session (%s): %w", s, err)
	}
	if osr.Status != 0 {
		return nil, &StatusError{Stage: "Open Session", Status: osr.Status}
	}
	if osr.ConsoleSessionID != consoleSID {
		return nil, fmt.Errorf("%w: Open Session Response for console session 0x%08x, requested 0x%08x", ErrNegotiation, osr.ConsoleSessionID, consoleSID)
	}
	if osr.Auth != s.Auth || osr.Integrity != s.Integrity || osr.Conf != s.Conf {
		return nil, fmt.Errorf("%w: BMC negotiated %s/%s/%s, requested %s/%s/%s (%s)", ErrNegotiation,
			osr.Auth, osr.Integrity, osr.Conf, s.Auth, s.Integrity, s.Conf, s)
	}
	if osr.BMCSessionID == 0 {
		return nil, fmt.Errorf("%w: BMC session ID 0", ErrNegotiation)
	}
	if osr.MaxPrivilege < cfg.Privilege {
		return nil, fmt.Errorf("%w: Open Session Response allows at most %s, %s requested", ErrPrivilege, osr.MaxPrivilege, cfg.Privilege)
	}

	// RAKP 1 / 2.
	hs := Handshake{Auth: s.Auth, ConsoleSessionID: consoleSID, BMCSessionID: osr.BMCSessionID,
		Role: 0x10 | uint8(cfg.Privilege), Username: []byte(cfg.Username)}
	if _, err := rand.Read(hs.ConsoleRandom[:]); err != nil {
		return nil, err
	}
	tag++
	r1 := RAKP1{Tag: tag, BMCSessionID: osr.BMCSessionID, ConsoleRandom: hs.ConsoleRandom, Role: hs.Role, Username: hs.Username}
	out, _ = EncodePacket(Packet{Type: PayloadRAKP1, Payload: r1.Marshal()}, nil, nil)
	var r2 RAKP2
	err = roundTrip(ctx, conn, out, cfg.RequestTimeout, tries, func(b []byte) (bool, error) {
		p, err := DecodePacket(b, nil)
		if err != nil || p.Type != PayloadRAKP2 {
			return false, nil
		}
		m, err := ParseRAKP2(p.Payload, s.Auth)
		if err != nil || m.Tag != tag || !forConsole(m.Status, m.ConsoleSessionID, consoleSID) {
			return false, nil
		}
		r2 = m
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("RAKP 1/2: %w", err)
	}
	if r2.Status != 0 {
		return nil, &StatusError{Stage: "RAKP 2", Status: r2.Status}
	}
	if r2.ConsoleSessionID != consoleSID {
		return nil, fmt.Errorf("%w: RAKP 2 for console session 0x%08x", ErrNegotiation, r2.ConsoleSessionID)
	}
	hs.BMCRandom, hs.BMCGUID = r2.BMCRandom, r2.BMCGUID
	if err := hs.VerifyRAKP2(cfg.Password, r2.AuthCode); err != nil {
		return nil, err
	}
	kg := cfg.Password
	if len(cfg.KG) > 0 {
		kg = cfg.KG
	}
	sik := hs.SIK(kg)

	// RAKP 3 / 4.
	tag++
	r3 := RAKP3{Tag: tag, BMCSessionID: osr.BMCSessionID, AuthCode: hs.RAKP3AuthCode(cfg.Password)}
	out, _ = EncodePacket(Packet{Type: PayloadRAKP3, Payload: r3.Marshal()}, nil, nil)
	var r4 RAKP4
	err = roundTrip(ctx, conn, out, cfg.RequestTimeout, tries, func(b []byte) (bool, error) {
		p, err := DecodePacket(b, nil)
		if err != nil || p.Type != PayloadRAKP4 {
			return false, nil
		}
		m, err := ParseRAKP4(p.Payload, s.Auth)
		if err != nil || m.Tag != tag || !forConsole(m.Status, m.ConsoleSessionID, consoleSID) {
			return false, nil
		}
		r4 = m
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("RAKP 3/4: %w", err)
	}
	if r4.Status != 0 {
		return nil, &StatusError{Stage: "RAKP 4", Status: r4.Status}
	}
	if r4.ConsoleSessionID != consoleSID {
		return nil, fmt.Errorf("%w: RAKP 4 for console session 0x%08x", ErrNegotiation, r4.ConsoleSessionID)
	}
	if err := hs.VerifyRAKP4(sik, r4.ICV); err != nil {
		return nil, err
	}

	l := &link{conn: conn, suite: s, keys: hs.Keys(sik, s), consoleSID: consoleSID, bmcSID: osr.BMCSessionID,
		bmcAddr: cfg.BMCIPMBAddress, priv: cfg.Privilege}
	// Set Session Privilege Level: the first authenticated, encrypted
	// exchange; it proves both sides derived the same keys.
	resp, err := l.syncExchange(ctx, cfg, cmdSetSessionPriv, []byte{uint8(cfg.Privilege)})
	if err != nil {
		return nil, fmt.Errorf("Set Session Privilege Level: %w", err)
	}
	if resp.Code != ipmi.CCOK {
		return nil, fmt.Errorf("Set Session Privilege Level to %s: %w: completion code %s", cfg.Privilege, ErrPrivilege, resp.Code)
	}
	if len(resp.Data) < 1 || Privilege(resp.Data[0]&0x0f) != cfg.Privilege {
		got := "nothing"
		if len(resp.Data) > 0 {
			got = Privilege(resp.Data[0] & 0x0f).String()
		}
		return nil, fmt.Errorf("Set Session Privilege Level to %s: %w: the BMC set %s", cfg.Privilege, ErrPrivilege, got)
	}
	return l, nil
}

// encode builds the next authenticated, encrypted packet carrying msg.
func (l *link) encode(msg []byte) ([]byte, error) {
	l.outSeq++
	if l.outSeq == 0 {
		l.outSeq = 1
	}
	return EncodePacket(Packet{Type: PayloadIPMI, SessionID: l.bmcSID, Seq: l.outSeq, Payload: msg}, l.keys, rand.Reader)
}

// Reasons a received packet is dropped (keys of Stats.Rejected).
const (
	RejectFormat      = "format"       // not an RMCP+ packet
	RejectSessionID   = "session-id"   // another session's packet
	RejectPayloadType = "payload-type" // not an IPMI message
	RejectUnprotected = "unprotected"  // not authenticated and encrypted
	RejectIntegrity   = "integrity"    // integrity code mismatch
	RejectPadding     = "padding"      // bad integrity or confidentiality pad
	RejectShort       = "short"        // truncated
	RejectSequence    = "sequence"     // duplicate, replayed or far-out session sequence number
	RejectChecksum    = "checksum"     // IPMI message checksum or framing
	RejectUnmatched   = "unmatched"    // no request waiting for it
)

// decode verifies a packet received on the link and returns the IPMI
// message in it, or the reason it was rejected.
func (l *link) decode(b []byte) (ipmi.Frame, string, error) {
	s, err := DecodeRMCP(b)
	if err != nil || !IsV20(b) {
		return ipmi.Frame{}, RejectFormat, fmt.Errorf("%w: not an RMCP+ packet", ErrNotRMCP)
	}
	h, err := PeekHeader(s)
	if err != nil {
		return ipmi.Frame{}, reasonOf(err), err
	}
	if h.SessionID != l.consoleSID {
		return ipmi.Frame{}, RejectSessionID, fmt.Errorf("%w: session ID 0x%08x", ErrUnexpectedPayload, h.SessionID)
	}
	if h.Type != PayloadIPMI {
		return ipmi.Frame{}, RejectPayloadType, fmt.Errorf("%w: %s", ErrUnexpectedPayload, h.Type)
	}
	p, err := DecodePacket(b, l.keys)
	if err != nil {
		return ipmi.Frame{}, reasonOf(err), err
	}
	if !l.win.Accept(p.Seq) {
		return ipmi.Frame{}, RejectSequence, fmt.Errorf("session sequence number %d outside the window or seen before", p.Seq)
	}
	f, err := ipmi.ParseFrame(p.Payload)
	if err != nil {
		return ipmi.Frame{}, RejectChecksum, err
	}
	return f, "", nil
}

func reasonOf(err error) string {
	switch {
	case errors.Is(err, ErrIntegrity):
		return RejectIntegrity
	case errors.Is(err, ErrBadPad):
		return RejectPadding
	case errors.Is(err, ErrShort):
		return RejectShort
	case errors.Is(err, ErrUnexpectedPayload):
		return RejectUnprotected
	}
	return RejectFormat
}

// syncExchange sends one App request to the BMC inside the session and
// waits for its response, before the owner goroutine takes over.
func (l *link) syncExchange(ctx context.Context, cfg Config, cmd uint8, data []byte) (ipmi.Response, error) {
	seq := uint8(1)
	msg := ipmi.Frame{DstAddr: addrBMC, NetFn: ipmi.NetFnApp, SrcAddr: swidRemoteConsole, Seq: seq, Cmd: cmd, Data: data}.Marshal()
	var resp ipmi.Response
	for range cfg.Retries + 1 {
		out, err := l.encode(msg)
		if err != nil {
			return resp, err
		}
		err = roundTrip(ctx, l.conn, out, cfg.RequestTimeout, 1, func(b []byte) (bool, error) {
			f, _, err := l.decode(b)
			if err != nil || !matchLocal(f, ipmi.NetFnApp, cmd, seq) {
				return false, nil
			}
			resp = ipmi.Response{Code: ipmi.CompletionCode(f.Data[0]), Data: f.Data[1:]}
			return true, nil
		})
		if !errors.Is(err, ErrTimeout) {
			return resp, err
		}
	}
	return resp, ErrTimeout
}

func matchLocal(f ipmi.Frame, netfn ipmi.NetFn, cmd, seq uint8) bool {
	return f.DstAddr == swidRemoteConsole && f.SrcAddr == addrBMC && f.NetFn == netfn.Response() &&
		f.Cmd == cmd && f.Seq == seq && len(f.Data) >= 1
}

// closeSession sends Close Session best effort (no wait for the answer).
func (l *link) closeSession() {
	msg := ipmi.Frame{DstAddr: addrBMC, NetFn: ipmi.NetFnApp, SrcAddr: swidRemoteConsole, Seq: 0, Cmd: cmdCloseSession,
		Data: binary.LittleEndian.AppendUint32(nil, l.bmcSID)}.Marshal()
	if out, err := l.encode(msg); err == nil {
		_, _ = l.conn.Write(out)
	}
}

// SeqWindow is the sliding window of accepted inbound session sequence
// numbers (IPMI 2.0 §6.12.13), for clients and servers alike: Accept
// accepts a number once, if it is at most 32 above the highest accepted
// so far or less than 16 below it; 0 is never accepted. The zero value is
// ready to use. Check only packets whose integrity code was verified.
type SeqWindow struct {
	started bool
	top     uint32
	seen    uint64 // bit i: top-i was accepted
}

const (
	windowAhead  = 32
	windowBehind = 16
)

// Accept reports whether s is new and within the window, and records it.
func (w *SeqWindow) Accept(s uint32) bool {
	if s == 0 {
		return false
	}
	if !w.started {
		w.started, w.top, w.seen = true, s, 1
		return true
	}
	if s > w.top {
		d := s - w.top
		if d > windowAhead {
			return false
		}
		w.seen = w.seen<<d | 1
		w.top = s
		return true
	}
	d := w.top - s
	if d >= windowBehind || w.seen&(1<<d) != 0 {
		return false
	}
	w.seen |= 1 << d
	return true
}
