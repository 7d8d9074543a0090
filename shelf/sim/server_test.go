package sim

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
)

// console is an in-process RMCP+ console built from the rmcpp codec; it
// drives Server.HandlePacket without sockets.
type console struct {
	t     *testing.T
	srv   *Server
	peer  netip.AddrPort
	id    uint32 // BMC session ID
	cid   uint32
	keys  *rmcpp.SessionKeys
	seq   uint32
	rqSeq uint8
}

func (c *console) exchange(p rmcpp.Packet, keys *rmcpp.SessionKeys) []rmcpp.Packet {
	c.t.Helper()
	b, err := rmcpp.EncodePacket(p, keys, rand.Reader)
	if err != nil {
		c.t.Fatal(err)
	}
	var out []rmcpp.Packet
	for _, r := range c.srv.HandlePacket(c.peer, b) {
		pk, err := rmcpp.DecodePacket(r, keys)
		if err != nil {
			c.t.Fatalf("decoding the server's answer: %v", err)
		}
		out = append(out, pk)
	}
	return out
}

// handshakeResult is how far a handshake got.
type handshakeResult struct {
	open  rmcpp.Status
	rakp2 rmcpp.Status
	rakp4 rmcpp.Status
	err   error
}

func dialIn(t *testing.T, srv *Server, peer string, suiteID int, u User, role byte, rakp3Key string) (*console, handshakeResult) {
	t.Helper()
	c := &console{t: t, srv: srv, peer: netip.MustParseAddrPort(peer), cid: 0xC0DE0000 + uint32(suiteID)}
	suite, err := rmcpp.LookupSuite(suiteID)
	if err != nil {
		// Suites the codec refuses to use, built by hand (IPMI 2.0 table 22-20).
		suite = map[int]rmcpp.Suite{
			0: {ID: 0},
			1: {ID: 1, Auth: rmcpp.AuthHMACSHA1},
			2: {ID: 2, Auth: rmcpp.AuthHMACSHA1, Integrity: rmcpp.IntegrityHMACSHA1_96},
		}[suiteID]
	}
	var res handshakeResult
	out := c.exchange(rmcpp.Packet{Type: rmcpp.PayloadOpenSessionRequest, Payload: rmcpp.OpenSessionRequest{
		Tag: 1, MaxPrivilege: rmcpp.Privilege(role & 0x0f), ConsoleSessionID: c.cid,
		Auth: suite.Auth, Integrity: suite.Integrity, Conf: suite.Conf}.Marshal()}, nil)
	if len(out) != 1 {
		res.err = errors.New("no open session response")
		return c, res
	}
	osr, err := rmcpp.ParseOpenSessionResponse(out[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	if res.open = osr.Status; osr.Status != 0 {
		return c, res
	}
	if osr.ConsoleSessionID != c.cid || osr.Auth != suite.Auth || osr.Integrity != suite.Integrity || osr.Conf != suite.Conf {
		t.Fatalf("open session response %+v", osr)
	}
	c.id = osr.BMCSessionID
	hs := rmcpp.Handshake{Auth: suite.Auth, ConsoleSessionID: c.cid, BMCSessionID: c.id, Role: role, Username: []byte(u.Name)}
	_, _ = rand.Read(hs.ConsoleRandom[:])
	out = c.exchange(rmcpp.Packet{Type: rmcpp.PayloadRAKP1, Payload: rmcpp.RAKP1{Tag: 2, BMCSessionID: c.id,
		ConsoleRandom: hs.ConsoleRandom, Role: role, Username: hs.Username}.Marshal()}, nil)
	if len(out) != 1 {
		res.err = errors.New("no RAKP 2")
		return c, res
	}
	r2, err := rmcpp.ParseRAKP2(out[0].Payload, suite.Auth)
	if err != nil {
		t.Fatal(err)
	}
	if res.rakp2 = r2.Status; r2.Status != 0 {
		return c, res
	}
	hs.BMCRandom, hs.BMCGUID = r2.BMCRandom, r2.BMCGUID
	if err := hs.VerifyRAKP2([]byte(u.Password), r2.AuthCode); err != nil {
		res.err = err
	}
	out = c.exchange(rmcpp.Packet{Type: rmcpp.PayloadRAKP3, Payload: rmcpp.RAKP3{Tag: 3, BMCSessionID: c.id,
		AuthCode: hs.RAKP3AuthCode([]byte(rakp3Key))}.Marshal()}, nil)
	if len(out) != 1 {
		res.err = errors.New("no RAKP 4")
		return c, res
	}
	r4, err := rmcpp.ParseRAKP4(out[0].Payload, suite.Auth)
	if err != nil {
		t.Fatal(err)
	}
	if res.rakp4 = r4.Status; r4.Status != 0 {
		return c, res
	}
	sik := hs.SIK([]byte(u.Password))
	if err := hs.VerifyRAKP4(sik, r4.ICV); err != nil {
		t.Fatal(err)
	}
	c.keys = hs.Keys(sik, suite)
	return c, res
}

// request sends one IPMI request in the session with the next sequence
// number and returns the response frames.
func (c *console) request(netfn ipmi.NetFn, cmd uint8, data ...byte) []ipmi.Frame {
	c.t.Helper()
	c.seq++
	return c.requestSeq(c.seq, netfn, cmd, data...)
}

func (c *console) requestSeq(seq uint32, netfn ipmi.NetFn, cmd uint8, data ...byte) []ipmi.Frame {
	c.t.Helper()
	c.rqSeq = (c.rqSeq + 1) & 0x3f
	f := ipmi.Frame{DstAddr: 0x20, NetFn: netfn, SrcAddr: 0x81, Seq: c.rqSeq, Cmd: cmd, Data: data}
	var out []ipmi.Frame
	for _, p := range c.exchange(rmcpp.Packet{Type: rmcpp.PayloadIPMI, SessionID: c.id, Seq: seq, Payload: f.Marshal()}, c.keys) {
		if p.SessionID != c.cid {
			c.t.Errorf("response to session 0x%08x, want 0x%08x", p.SessionID, c.cid)
		}
		rf, err := ipmi.ParseFrame(p.Payload)
		if err != nil {
			c.t.Fatal(err)
		}
		out = append(out, rf)
	}
	return out
}

func newTestServer(t *testing.T, edit func(*Config)) (*Server, *time.Time) {
	t.Helper()
	sh := testShelf(t, edit)
	srv := newServer(sh, nil)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	srv.clock = func() time.Time { return now }
	return srv, &now
}

func TestServerHandshake(t *testing.T) {
	srv, _ := newTestServer(t, nil)
	users := srv.shelf.cfg.Users
	admin, monitor := users[0], users[2]
	tests := []struct {
		name  string
		suite int
		user  User
		role  byte
		key   string
		want  handshakeResult
		ok    bool
	}{
		{"suite 17 admin", 17, admin, 0x14, admin.Password, handshakeResult{}, true},
		{"suite 3 admin", 3, admin, 0x04, admin.Password, handshakeResult{}, true},
		{"suite 3 monitor as user", 3, monitor, 0x12, monitor.Password, handshakeResult{}, true},
		{"suite 0 refused", 0, admin, 0x14, admin.Password, handshakeResult{open: stInvalidAuthAlg}, false},
		{"suite 2 refused", 2, admin, 0x14, admin.Password, handshakeResult{open: stNoCipherSuite}, false},
		{"suite 1 refused", 1, admin, 0x14, admin.Password, handshakeResult{open: stNoCipherSuite}, false},
		{"wrong password refused at RAKP 3", 17, admin, 0x14, "not-the-password", handshakeResult{rakp4: stInvalidICV}, false},
		{"unknown user refused at RAKP 2", 17, User{Name: "mallory", Password: "x"}, 0x14, "x", handshakeResult{rakp2: stUnauthorizedName}, false},
		{"monitor cannot ask for admin", 17, monitor, 0x14, monitor.Password, handshakeResult{rakp2: stUnauthorizedRole}, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.shelf.Counters()
			c, res := dialIn(t, srv, "127.0.0.1:"+fmtInt(40000+i), tc.suite, tc.user, tc.role, tc.key)
			res.err = nil
			if res != tc.want {
				t.Fatalf("handshake %+v, want %+v", res, tc.want)
			}
			after := srv.shelf.Counters()
			if opened := after.SessionsOpened - before.SessionsOpened; (opened == 1) != tc.ok {
				t.Fatalf("%d sessions opened", opened)
			}
			if !tc.ok {
				// Nothing of the failed handshake stays.
				if _, ok := srv.sessions[c.id]; ok && c.id != 0 {
					t.Error("failed handshake left a session")
				}
				return
			}
			out := c.request(ipmi.NetFnApp, 0x01)
			if len(out) != 1 || out[0].Data[0] != 0 {
				t.Fatalf("Get Device ID in session: %+v", out)
			}
			// A session starts at user level; raise to the negotiated maximum.
			out = c.request(ipmi.NetFnApp, 0x3B, tc.role&0x0f)
			if out[0].Data[0] != 0 || out[0].Data[1] != tc.role&0x0f {
				t.Errorf("Set Session Privilege Level: % x", out[0].Data)
			}
			out = c.request(ipmi.NetFnApp, 0x3B, 0x04)
			if tc.role&0x0f < 4 && out[0].Data[0] != byte(ccPrivExceedsLimit) {
				t.Errorf("privilege above the negotiated maximum: % x", out[0].Data)
			}
			out = c.request(ipmi.NetFnChassis, 0x02, 0x00)
			wantCC := byte(0)
			if tc.role&0x0f < 3 {
				wantCC = byte(ipmi.CCInsufficientPrivilege)
			}
			if out[0].Data[0] != wantCC {
				t.Errorf("chassis power off at %d: % x", tc.role&0x0f, out[0].Data)
			}
			srv.shelf.Handle(ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnChassis, SrcAddr: 0x81, Cmd: 0x02, Data: []byte{1}}, PrivAdmin)
			// Close Session, after which the session is gone.
			out = c.request(ipmi.NetFnApp, 0x3C, binary.LittleEndian.AppendUint32(nil, c.id)...)
			if len(out) != 1 || out[0].Data[0] != 0 {
				t.Fatalf("Close Session: %+v", out)
			}
			if out := c.request(ipmi.NetFnApp, 0x01); len(out) != 0 {
				t.Error("closed session still answers")
			}
		})
	}
}

func fmtInt(i int) string { return strconv.Itoa(i) }

func TestServerConfiguredSuites(t *testing.T) {
	srv, _ := newTestServer(t, func(c *Config) { c.CipherSuites = []uint8{3} })
	u := srv.shelf.cfg.Users[0]
	if _, res := dialIn(t, srv, "127.0.0.1:40200", 17, u, 0x14, u.Password); res.open != stNoCipherSuite {
		t.Errorf("suite 17 not offered but accepted: %+v", res)
	}
	if _, res := dialIn(t, srv, "127.0.0.1:40201", 3, u, 0x14, u.Password); res != (handshakeResult{}) {
		t.Errorf("suite 3: %+v", res)
	}
	if _, err := New(Config{CipherSuites: []uint8{3, 2}}, nil); err == nil {
		t.Error("cipher suite 2 configured without error")
	}
}

func TestServerSequenceWindow(t *testing.T) {
	srv, _ := newTestServer(t, nil)
	u := srv.shelf.cfg.Users[0]
	c, res := dialIn(t, srv, "127.0.0.1:40100", 17, u, 0x14, u.Password)
	if res != (handshakeResult{}) {
		t.Fatalf("handshake %+v", res)
	}
	steps := []struct {
		seq    uint32
		answer bool
	}{
		{0, false},  // never valid in a session
		{1, true},   //
		{1, false},  // replay
		{5, true},   // a gap is fine
		{3, true},   // late but inside the window
		{3, false},  // replay of a late one
		{30, false}, // too far ahead
		{21, true},  // 16 ahead of 5
		{4, false},  // fell out of the window
	}
	for _, st := range steps {
		out := c.requestSeq(st.seq, ipmi.NetFnApp, 0x01)
		if (len(out) == 1) != st.answer {
			t.Errorf("seq %d: %d answers, want answer=%v", st.seq, len(out), st.answer)
		}
	}
	// A packet with a flipped bit fails integrity and is dropped.
	c.seq = 22
	f := ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnApp, SrcAddr: 0x81, Cmd: 0x01}
	b, _ := rmcpp.EncodePacket(rmcpp.Packet{Type: rmcpp.PayloadIPMI, SessionID: c.id, Seq: 22, Payload: f.Marshal()}, c.keys, rand.Reader)
	b[20] ^= 0x01
	if out := srv.HandlePacket(c.peer, b); len(out) != 0 {
		t.Error("tampered packet answered")
	}
	// The same session from another address is refused.
	other := *c
	other.peer = netip.MustParseAddrPort("127.0.0.9:40100")
	if out := other.requestSeq(23, ipmi.NetFnApp, 0x01); len(out) != 0 {
		t.Error("session hijacked from another address")
	}
}

func TestServerLimitsAndTimeout(t *testing.T) {
	srv, now := newTestServer(t, func(c *Config) { c.MaxSessions = 2; c.SessionTimeout = 30 * time.Second })
	u := srv.shelf.cfg.Users[1]
	var cs []*console
	for i := 0; i < 2; i++ {
		c, res := dialIn(t, srv, "127.0.0.1:"+fmtInt(41000+i), 3, u, 0x03, u.Password)
		if res != (handshakeResult{}) {
			t.Fatalf("session %d: %+v", i, res)
		}
		cs = append(cs, c)
	}
	if _, res := dialIn(t, srv, "127.0.0.1:41002", 3, u, 0x03, u.Password); res.open != stNoResources {
		t.Fatalf("third session: %+v", res)
	}
	// Session 0 stays busy, session 1 idles past the timeout.
	*now = now.Add(20 * time.Second)
	cs[0].request(ipmi.NetFnApp, 0x01)
	*now = now.Add(20 * time.Second)
	srv.reap()
	if out := cs[0].request(ipmi.NetFnApp, 0x01); len(out) != 1 {
		t.Error("busy session closed")
	}
	if out := cs[1].request(ipmi.NetFnApp, 0x01); len(out) != 0 {
		t.Error("idle session still open")
	}
	if n := srv.Sessions(); n != 1 {
		t.Errorf("%d sessions", n)
	}
	if _, res := dialIn(t, srv, "127.0.0.1:41003", 3, u, 0x03, u.Password); res != (handshakeResult{}) {
		t.Errorf("session after timeout freed a slot: %+v", res)
	}
}

func TestServerPreSession(t *testing.T) {
	srv, _ := newTestServer(t, nil)
	peer := netip.MustParseAddrPort("127.0.0.1:42000")
	authCaps := ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnApp, SrcAddr: 0x81, Cmd: 0x38, Data: []byte{0x8e, 0x04}}
	// IPMI 1.5 format: Get Channel Authentication Capabilities offers no
	// IPMI 1.5 authentication type and IPMI 2.0 only.
	b, _ := rmcpp.EncodeV15(authCaps.Marshal())
	out := srv.HandlePacket(peer, b)
	if len(out) != 1 {
		t.Fatal("no answer to Get Channel Authentication Capabilities")
	}
	msg, err := rmcpp.DecodeV15(out[0])
	if err != nil {
		t.Fatal(err)
	}
	f, _ := ipmi.ParseFrame(msg)
	if !bytes.Equal(f.Data, []byte{0, 0x01, 0x80, 0x04, 0x02, 0, 0, 0, 0}) {
		t.Errorf("auth caps % x", f.Data)
	}
	// RMCP+ pre-session: cipher suites offered, in preference order.
	cs := ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnApp, SrcAddr: 0x81, Cmd: 0x54, Data: []byte{0x0e, 0x00, 0x80}}
	b, _ = rmcpp.EncodePacket(rmcpp.Packet{Type: rmcpp.PayloadIPMI, Payload: cs.Marshal()}, nil, rand.Reader)
	out = srv.HandlePacket(peer, b)
	if len(out) != 1 {
		t.Fatal("no cipher suites")
	}
	p, _ := rmcpp.DecodePacket(out[0], nil)
	f, _ = ipmi.ParseFrame(p.Payload)
	want := []byte{0, 0x01, 0xC0, 17, 0x03, 0x44, 0x81, 0xC0, 3, 0x01, 0x41, 0x81}
	if !bytes.Equal(f.Data, want) {
		t.Errorf("cipher suites % x, want % x", f.Data, want)
	}
	// Other commands need a session.
	dev := ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnApp, SrcAddr: 0x81, Cmd: 0x01}
	b, _ = rmcpp.EncodePacket(rmcpp.Packet{Type: rmcpp.PayloadIPMI, Payload: dev.Marshal()}, nil, rand.Reader)
	if out := srv.HandlePacket(peer, b); len(out) != 0 {
		t.Error("Get Device ID answered outside a session")
	}
	// ASF presence ping.
	if out := srv.HandlePacket(peer, rmcpp.EncodePing(7)); len(out) != 1 {
		t.Error("no pong")
	} else if pong, err := rmcpp.DecodePong(out[0]); err != nil || pong.Tag != 7 || !pong.IPMI {
		t.Errorf("pong %+v %v", pong, err)
	}
}

// v15Packet builds an IPMI 1.5-format RMCP packet with any authentication
// type, sequence number and session ID (a 16-byte zero authentication code
// follows the header when the type is not none).
func v15Packet(auth byte, seq, sid uint32, f ipmi.Frame) []byte {
	msg := f.Marshal()
	b := []byte{0x06, 0x00, 0xff, 0x07, auth}
	b = binary.LittleEndian.AppendUint32(b, seq)
	b = binary.LittleEndian.AppendUint32(b, sid)
	if auth != 0 {
		b = append(b, make([]byte, 16)...)
	}
	b = append(b, byte(len(msg)))
	return append(b, msg...)
}

func TestServerPreSessionV15(t *testing.T) {
	app := func(cmd uint8, data ...byte) ipmi.Frame {
		return ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnApp, SrcAddr: 0x81, Seq: 3, Cmd: cmd, Data: data}
	}
	authCaps := app(0x38, 0x8e, 0x04)
	tests := []struct {
		name string
		pkt  []byte
		// want is the response data (completion code first), nil when
		// the packet must be refused without an answer.
		want []byte
	}{
		{"auth caps, IPMI 2.0 extended", v15Packet(0, 0, 0, authCaps), []byte{0, 0x01, 0x80, 0x04, 0x02, 0, 0, 0, 0}},
		{"auth caps, IPMI 1.5 request", v15Packet(0, 0, 0, app(0x38, 0x0e, 0x04)), []byte{0, 0x01, 0x00, 0x04, 0x00, 0, 0, 0, 0}},
		{"auth caps, bad channel", v15Packet(0, 0, 0, app(0x38, 0x85, 0x04)), []byte{byte(ipmi.CCInvalidDataField)}},
		{"cipher suites", v15Packet(0, 0, 0, app(0x54, 0x0e, 0x00, 0x80)), []byte{0, 0x01, 0xC0, 17, 0x03, 0x44, 0x81, 0xC0, 3, 0x01, 0x41, 0x81}},
		{"get session challenge", v15Packet(0, 0, 0, app(0x39, append([]byte{0x02}, make([]byte, 16)...)...)), nil},
		{"activate session", v15Packet(0, 0, 0, app(0x3A, append([]byte{0x02, 0x04}, make([]byte, 20)...)...)), nil},
		{"get device id outside a session", v15Packet(0, 0, 0, app(0x01)), nil},
		{"get system guid", v15Packet(0, 0, 0, app(0x37)), nil},
		{"auth caps with MD5 authentication", v15Packet(0x02, 0, 0, authCaps), nil},
		{"auth caps with straight password", v15Packet(0x04, 0, 0, authCaps), nil},
		{"auth caps in an IPMI 1.5 session", v15Packet(0, 1, 0x1234, authCaps), nil},
		{"auth caps with a sequence number", v15Packet(0, 7, 0, authCaps), nil},
		{"session packet with MD5", v15Packet(0x02, 5, 0x1234, app(0x01)), nil},
		{"chassis control", v15Packet(0, 0, 0, ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnChassis, SrcAddr: 0x81, Cmd: 0x02, Data: []byte{0}}), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := newTestServer(t, nil)
			out := srv.HandlePacket(netip.MustParseAddrPort("127.0.0.1:42001"), tc.pkt)
			c := srv.shelf.Counters()
			if tc.want == nil {
				if len(out) != 0 {
					t.Fatalf("answered % x", out)
				}
				if c.RefusedV15 != 1 || c.Dropped != 1 || c.PreSessionV15 != 0 {
					t.Errorf("counters %+v, want one refused IPMI 1.5 packet", c)
				}
				if !srv.shelf.ChassisPower() {
					t.Error("a refused packet changed the chassis power")
				}
				return
			}
			if len(out) != 1 {
				t.Fatalf("%d answers", len(out))
			}
			if rmcpp.IsV20(out[0]) || out[0][4] != 0 {
				t.Fatalf("answer not in IPMI 1.5 format with authentication type none: % x", out[0])
			}
			if sid := binary.LittleEndian.Uint32(out[0][9:13]); sid != 0 {
				t.Errorf("answer carries session ID 0x%08x", sid)
			}
			msg, err := rmcpp.DecodeV15(out[0])
			if err != nil {
				t.Fatal(err)
			}
			f, err := ipmi.ParseFrame(msg)
			if err != nil {
				t.Fatal(err)
			}
			if f.NetFn != ipmi.NetFnApp.Response() || f.Seq != 3 || f.DstAddr != 0x81 {
				t.Errorf("response header %+v", f)
			}
			if !bytes.Equal(f.Data, tc.want) {
				t.Errorf("data % x, want % x", f.Data, tc.want)
			}
			if c.PreSessionV15 != 1 || c.Dropped != 0 || c.RefusedV15 != 0 {
				t.Errorf("counters %+v, want one answered pre-session request", c)
			}
		})
	}
}
