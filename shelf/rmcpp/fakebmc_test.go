package rmcpp

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/shelf/ipmi"
)

// fakeBMC is an in-process RMCP+ responder built on the codec's server
// side. It covers what ipmi_sim cannot: suite 17, bridged answers
// embedded in the Send Message response (style a), Send Message errors.
type fakeBMC struct {
	conn        *net.UDPConn
	password    []byte
	offered     []int // cipher suites announced
	only15      bool  // announce IPMI 1.5 only
	embedded    bool  // bridging reply style (a)
	v2Only      bool  // answer pre-session messages only in the IPMI 2.0 format
	sendMsgCode map[uint8]ipmi.CompletionCode
	// respond, if set, answers session requests first: it returns the
	// messages to send (as genuine packets of the session) and true, or
	// false to leave the request to the default handling. It runs with
	// mu held and must not block.
	respond func(req ipmi.Frame) ([]ipmi.Frame, bool)
	// grantPriv, if set, is the privilege granted in the Open Session
	// Response and by Set Session Privilege Level, whatever was asked.
	grantPriv Privilege

	mu       sync.Mutex
	sessions map[uint32]*fakeSession
	nextSID  uint32
	wg       sync.WaitGroup
}

type fakeSession struct {
	suite  Suite
	hs     Handshake
	keys   *SessionKeys
	outSeq uint32
}

func startFakeBMC(t testing.TB, f *fakeBMC) *fakeBMC {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f.conn, f.sessions, f.nextSID = c, map[uint32]*fakeSession{}, 0x1000
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		buf := make([]byte, 4096)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			for _, out := range f.handle(append([]byte(nil), buf[:n]...)) {
				c.WriteToUDP(out, from)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); f.wg.Wait() })
	return f
}

func (f *fakeBMC) Addr() string { return f.conn.LocalAddr().String() }

func respFrame(req ipmi.Frame, code ipmi.CompletionCode, data ...byte) ipmi.Frame {
	return ipmi.Frame{DstAddr: req.SrcAddr, NetFn: req.NetFn.Response(), DstLUN: req.SrcLUN, SrcAddr: req.DstAddr,
		Seq: req.Seq, SrcLUN: req.DstLUN, Cmd: req.Cmd, Data: append([]byte{byte(code)}, data...)}
}

func (f *fakeBMC) handle(b []byte) [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !IsV20(b) && !f.v2Only {
		msg, err := DecodeV15(b)
		if err != nil {
			return nil
		}
		out, _ := EncodeV15(f.presession(msg).Marshal())
		return [][]byte{out}
	}
	if f.v2Only && IsV20(b) && len(b) > 5 && b[5] == 0 {
		p, err := DecodePacket(b, nil)
		if err != nil || p.SessionID != 0 {
			return nil
		}
		out, _ := EncodePacket(Packet{Type: PayloadIPMI, Payload: f.presession(p.Payload).Marshal()}, nil, nil)
		return [][]byte{out}
	}
	if !IsV20(b) {
		return nil
	}
	return f.session(b)
}

// presession answers an IPMI message outside a session.
func (f *fakeBMC) presession(msg []byte) ipmi.Frame {
	{
		req, err := ipmi.ParseFrame(msg)
		if err != nil {
			return ipmi.Frame{}
		}
		var r ipmi.Frame
		switch req.Cmd {
		case cmdGetChannelAuth:
			if f.only15 {
				r = respFrame(req, 0, 1, 0x14, 0x04, 0x01, 0, 0, 0, 0)
			} else {
				r = respFrame(req, 0, 1, 0x94, 0x04, 0x03, 0, 0, 0, 0)
			}
		case cmdGetCipherSuite:
			var recs []byte
			for _, id := range f.offered {
				switch id {
				case 0:
					recs = append(recs, 0xC0, 0, 0x00, 0x40, 0x80)
				case 3:
					recs = append(recs, 0xC0, 3, 0x01, 0x41, 0x81)
				case 17:
					recs = append(recs, 0xC0, 17, 0x03, 0x44, 0x81)
				default:
					recs = append(recs, 0xC0, byte(id), 0x02, 0x42, 0x82)
				}
			}
			idx := int(req.Data[2] & 0x3f)
			chunk := []byte{}
			if idx*16 < len(recs) {
				chunk = recs[idx*16 : min(len(recs), idx*16+16)]
			}
			r = respFrame(req, 0, append([]byte{1}, chunk...)...)
		default:
			r = respFrame(req, ipmi.CCInvalidCommand)
		}
		return r
	}
}

// session handles RMCP+ packets: the handshake and session messages.
func (f *fakeBMC) session(b []byte) [][]byte {
	s, _ := DecodeRMCP(b)
	h, err := PeekHeader(s)
	if err != nil {
		return nil
	}
	if h.SessionID == 0 {
		return f.handshake(b)
	}
	sess := f.sessions[h.SessionID]
	if sess == nil || sess.keys == nil {
		return nil
	}
	p, err := DecodePacket(b, sess.keys)
	if err != nil || p.Type != PayloadIPMI {
		return nil
	}
	req, err := ipmi.ParseFrame(p.Payload)
	if err != nil {
		return nil
	}
	var msgs []ipmi.Frame
	handled := false
	if f.respond != nil {
		msgs, handled = f.respond(req)
	}
	switch {
	case handled:
	case req.NetFn == ipmi.NetFnApp && req.Cmd == cmdSetSessionPriv:
		granted := req.Data[0]
		if f.grantPriv != 0 {
			granted = uint8(f.grantPriv)
		}
		msgs = append(msgs, respFrame(req, 0, granted))
	case req.NetFn == ipmi.NetFnApp && req.Cmd == cmdGetDeviceID:
		msgs = append(msgs, respFrame(req, 0, 0x20, 0x81, 2, 3, 0x51, 0xa9))
	case req.NetFn == ipmi.NetFnApp && req.Cmd == cmdCloseSession:
		delete(f.sessions, h.SessionID)
		msgs = append(msgs, respFrame(req, 0))
	case req.NetFn == ipmi.NetFnApp && req.Cmd == cmdSendMessage:
		inner, err := ipmi.ParseFrame(req.Data[1:])
		if err != nil || req.Data[0]&0x40 == 0 {
			msgs = append(msgs, respFrame(req, ipmi.CCInvalidDataField))
			break
		}
		if code, ok := f.sendMsgCode[inner.DstAddr]; ok {
			msgs = append(msgs, respFrame(req, code))
			break
		}
		// The IPMC answers Get Device ID with its own address as device ID.
		ir := respFrame(inner, 0, inner.DstAddr, 0x81)
		if inner.Cmd != cmdGetDeviceID {
			ir = respFrame(inner, ipmi.CCInvalidCommand)
		}
		if f.embedded {
			msgs = append(msgs, respFrame(req, 0, ir.Marshal()...))
		} else {
			msgs = append(msgs, respFrame(req, 0), ir)
		}
	default:
		msgs = append(msgs, respFrame(req, ipmi.CCInvalidCommand))
	}
	var outs [][]byte
	for _, m := range msgs {
		sess.outSeq++
		out, err := EncodePacket(Packet{Type: PayloadIPMI, SessionID: sess.hs.ConsoleSessionID, Seq: sess.outSeq, Payload: m.Marshal()}, sess.keys, rand.Reader)
		if err == nil {
			outs = append(outs, out)
		}
	}
	return outs
}

func (f *fakeBMC) handshake(b []byte) [][]byte {
	p, err := DecodePacket(b, nil)
	if err != nil {
		return nil
	}
	var reply Packet
	switch p.Type {
	case PayloadOpenSessionRequest:
		req, err := ParseOpenSessionRequest(p.Payload)
		if err != nil {
			return nil
		}
		resp := OpenSessionResponse{Tag: req.Tag, ConsoleSessionID: req.ConsoleSessionID, MaxPrivilege: req.MaxPrivilege}
		if f.grantPriv != 0 {
			resp.MaxPrivilege = f.grantPriv
		}
		s, err := SuiteFor(req.Auth, req.Integrity, req.Conf)
		offered := err == nil && func() bool {
			for _, id := range f.offered {
				if id == s.ID {
					return true
				}
			}
			return false
		}()
		if !offered {
			resp.Status = 0x11
		} else {
			f.nextSID++
			resp.BMCSessionID, resp.Auth, resp.Integrity, resp.Conf = f.nextSID, s.Auth, s.Integrity, s.Conf
			f.sessions[f.nextSID] = &fakeSession{suite: s, hs: Handshake{Auth: s.Auth, ConsoleSessionID: req.ConsoleSessionID, BMCSessionID: f.nextSID}}
		}
		reply = Packet{Type: PayloadOpenSessionResponse, Payload: resp.Marshal()}
	case PayloadRAKP1:
		m, err := ParseRAKP1(p.Payload)
		if err != nil || f.sessions[m.BMCSessionID] == nil {
			return nil
		}
		sess := f.sessions[m.BMCSessionID]
		hs := &sess.hs
		hs.ConsoleRandom, hs.Role, hs.Username = m.ConsoleRandom, m.Role, m.Username
		rand.Read(hs.BMCRandom[:])
		copy(hs.BMCGUID[:], "FAKE-BMC-GUID-01")
		r2 := RAKP2{Tag: m.Tag, ConsoleSessionID: hs.ConsoleSessionID, BMCRandom: hs.BMCRandom, BMCGUID: hs.BMCGUID, AuthCode: hs.RAKP2AuthCode(f.password)}
		reply = Packet{Type: PayloadRAKP2, Payload: r2.Marshal()}
	case PayloadRAKP3:
		if len(p.Payload) < 8 {
			return nil
		}
		var sess *fakeSession
		for id, s := range f.sessions {
			if id == leUint32(p.Payload[4:]) {
				sess = s
			}
		}
		if sess == nil {
			return nil
		}
		m, err := ParseRAKP3(p.Payload, sess.suite.Auth)
		if err != nil {
			return nil
		}
		r4 := RAKP4{Tag: m.Tag, ConsoleSessionID: sess.hs.ConsoleSessionID}
		if err := sess.hs.VerifyRAKP3(f.password, m.AuthCode); err != nil {
			r4.Status = 0x0F
		} else {
			sik := sess.hs.SIK(f.password)
			sess.keys = sess.hs.Keys(sik, sess.suite)
			r4.ICV = sess.hs.RAKP4ICV(sik)
		}
		reply = Packet{Type: PayloadRAKP4, Payload: r4.Marshal()}
	default:
		return nil
	}
	out, err := EncodePacket(reply, nil, nil)
	if err != nil {
		return nil
	}
	return [][]byte{out}
}

func leUint32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func fakeConfig(t testing.TB, f *fakeBMC) Config {
	return Config{Addr: f.Addr(), Username: "admin", Password: f.password, Logger: testLogger(t),
		RequestTimeout: 300 * time.Millisecond, BridgeTimeout: 300 * time.Millisecond}
}

func TestFakeBMCSuitesAndBridging(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name      string
		offered   []int
		allow     []int
		embedded  bool
		wantSuite int
	}{
		{"17 preferred, separate bridged answer", []int{0, 1, 2, 3, 17}, nil, false, 17},
		{"17 preferred, embedded bridged answer", []int{3, 17}, nil, true, 17},
		{"3 preferred by allow-list", []int{3, 17}, []int{3, 17}, true, 3},
		{"only 3 offered", []int{0, 3}, nil, false, 3},
		{"pre-session in IPMI 2.0 format only", []int{17}, nil, false, 17},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeBMC(t, &fakeBMC{password: []byte("secret-pw"), offered: tc.offered, embedded: tc.embedded,
				v2Only: strings.Contains(tc.name, "2.0 format")})
			cfg := fakeConfig(t, f)
			cfg.CipherSuites = tc.allow
			s := dial(t, cfg)
			if s.CipherSuite() != tc.wantSuite {
				t.Fatalf("suite %d, want %d", s.CipherSuite(), tc.wantSuite)
			}
			for _, slave := range []uint8{0x82, 0x9a} {
				d, err := ipmi.Do(ctx, s, ipmi.Addr{Slave: slave}, getDeviceID)
				if err != nil || len(d) != 2 || d[0] != slave {
					t.Fatalf("bridged to 0x%02x: % x %v", slave, d, err)
				}
			}
			// The bridged command's own completion code is the Response code.
			resp, err := s.Exchange(ctx, ipmi.Addr{Slave: 0x82}, picmgProps)
			if err != nil || resp.Code != ipmi.CCInvalidCommand {
				t.Fatalf("bridged unsupported command: %+v %v", resp, err)
			}
			if st := s.Stats(); len(st.Rejected) != 0 || st.Bridged != 3 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestFakeBMCSendMessageError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, code := range []ipmi.CompletionCode{0x83, 0x82, 0x81, ipmi.CCDestinationUnavail} {
		f := startFakeBMC(t, &fakeBMC{password: []byte("pw"), offered: []int{17}, sendMsgCode: map[uint8]ipmi.CompletionCode{0x8a: code}})
		s := dial(t, fakeConfig(t, f))
		_, err := s.Exchange(ctx, ipmi.Addr{Slave: 0x8a}, getDeviceID)
		var be *BridgeError
		if !errors.As(err, &be) || be.Code != code || !errors.Is(err, ErrBridge) || be.To.Slave != 0x8a {
			t.Fatalf("code %s: err = %v", code, err)
		}
		if _, isCC := ipmi.CodeOf(err); isCC {
			t.Fatalf("a Send Message failure must not read as the bridged command's completion code: %v", err)
		}
		if _, err := ipmi.Do(ctx, s, ipmi.Addr{Slave: 0x82}, getDeviceID); err != nil {
			t.Fatalf("other IPMC: %v", err)
		}
	}
}

func TestFakeBMCNegotiationRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name   string
		bmc    func() *fakeBMC
		want   error
		substr string
	}{
		{"IPMI 1.5 only", func() *fakeBMC { return &fakeBMC{only15: true, offered: []int{3}} }, ErrNegotiation, "IPMI 1.5"},
		{"no allowed suite", func() *fakeBMC { return &fakeBMC{offered: []int{0, 1, 2, 6}} }, ErrNegotiation, "offers [0 1 2 6], allowed are [17 3]"},
		{"wrong password", func() *fakeBMC { return &fakeBMC{offered: []int{17}, password: []byte("other")} }, ErrAuthCode, "RAKP 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bmc := tc.bmc()
			if bmc.password == nil {
				bmc.password = []byte("pw")
			}
			f := startFakeBMC(t, bmc)
			cfg := fakeConfig(t, f)
			cfg.Password = []byte("pw")
			_, err := Dial(ctx, cfg)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.substr)
			}
		})
	}
}

// TestFakeBMCUnprotectedInjection: a forged plain (unauthenticated)
// answer with the right session ID is dropped.
func TestFakeBMCUnprotectedInjection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := startFakeBMC(t, &fakeBMC{password: []byte("pw"), offered: []int{17}})
	px := startProxy(t, f.Addr())
	cfg := fakeConfig(t, f)
	cfg.Addr = px.Addr()
	cfg.Retries = 1
	cfg.MaxConsecutiveTimeouts = 100
	s := dial(t, cfg)
	var consoleSID uint32
	f.mu.Lock()
	for _, fs := range f.sessions {
		consoleSID = fs.hs.ConsoleSessionID
	}
	f.mu.Unlock()
	px.setToClient(func(b []byte) [][]byte { return nil })
	px.setToServer(func(b []byte) [][]byte {
		if isSessionIPMI(b) {
			// Answer with a forged, unauthenticated Get Device ID response.
			for seq := uint8(1); seq < 64; seq++ {
				m := ipmi.Frame{DstAddr: 0x81, NetFn: ipmi.NetFnApp.Response(), SrcAddr: 0x20, Seq: seq, Cmd: 1, Data: []byte{0, 0x66}}
				out, _ := EncodePacket(Packet{Type: PayloadIPMI, SessionID: consoleSID, Seq: 1000 + uint32(seq), Payload: m.Marshal()}, nil, nil)
				px.inject(out)
			}
		}
		return [][]byte{b}
	})
	resp, err := s.Exchange(ctx, ipmi.Addr{}, getDeviceID)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("forged answer accepted: %+v %v", resp, err)
	}
	if s.Stats().Rejected[RejectUnprotected] < 63 {
		t.Fatalf("stats %+v", s.Stats())
	}
}

// TestFakeBMCSessionLoss: when the session is lost, a read-only request
// is carried over to the new session, while a request that changes state
// and was in flight fails with ErrSessionLost instead of being resent.
func TestFakeBMCSessionLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := startFakeBMC(t, &fakeBMC{password: []byte("pw"), offered: []int{17}})
	px := startProxy(t, f.Addr())
	cfg := fakeConfig(t, f)
	cfg.Addr = px.Addr()
	cfg.RequestTimeout = 100 * time.Millisecond
	cfg.BridgeTimeout = 10 * time.Second
	cfg.NoRetries = true
	cfg.MaxConsecutiveTimeouts = 1
	cfg.ReconnectMin = 10 * time.Millisecond
	s := dial(t, cfg)
	// Black-hole the answers of the first session only.
	var mu sync.Mutex
	var lost []byte
	px.setToClient(func(b []byte) [][]byte {
		mu.Lock()
		defer mu.Unlock()
		if isSessionIPMI(b) {
			if lost == nil {
				lost = append([]byte(nil), b[6:10]...)
			}
			if string(b[6:10]) == string(lost) {
				return nil
			}
		}
		return [][]byte{b}
	})
	write := make(chan error, 1)
	go func() {
		_, err := s.Exchange(ctx, ipmi.Addr{Slave: 0x82}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 0x01})
		write <- err
	}()
	waitFor(t, func() bool { return s.Stats().Bridged == 1 }) // the bridged request is in flight first
	d, err := ipmi.Do(ctx, s, ipmi.Addr{}, getDeviceID)
	if err != nil || len(d) == 0 {
		t.Fatalf("read-only request across the reconnect: % x %v", d, err)
	}
	if err := <-write; !errors.Is(err, ErrSessionLost) {
		t.Fatalf("state-changing request in flight: %v, want ErrSessionLost", err)
	}
	if st := s.Stats(); st.Reconnects != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestShortDeadlinesNoticeSilentBMC: callers whose deadlines end before
// an attempt times out must still let a BMC that stopped answering be
// noticed, so the session is re-established instead of failing forever.
func TestShortDeadlinesNoticeSilentBMC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := startFakeBMC(t, &fakeBMC{password: []byte("pw"), offered: []int{17}})
	px := startProxy(t, f.Addr())
	cfg := fakeConfig(t, f)
	cfg.Addr = px.Addr()
	cfg.RequestTimeout = 400 * time.Millisecond
	cfg.MaxConsecutiveTimeouts = 2
	cfg.ReconnectMin = 10 * time.Millisecond
	s := dial(t, cfg)
	var mu sync.Mutex
	var lost []byte
	px.setToClient(func(b []byte) [][]byte {
		mu.Lock()
		defer mu.Unlock()
		if isSessionIPMI(b) {
			if lost == nil {
				lost = append([]byte(nil), b[6:10]...)
			}
			if string(b[6:10]) == string(lost) {
				return nil // the first session's answers vanish
			}
		}
		return [][]byte{b}
	})
	for s.Stats().Reconnects == 0 {
		if ctx.Err() != nil {
			t.Fatalf("session never re-established with 300 ms callers: %+v", s.Stats())
		}
		short, c := context.WithTimeout(ctx, 300*time.Millisecond)
		_, _ = s.Exchange(short, ipmi.Addr{}, getDeviceID)
		c()
	}
	if _, err := ipmi.Do(ctx, s, ipmi.Addr{}, getDeviceID); err != nil {
		t.Fatalf("after re-establishment: %v", err)
	}
}
