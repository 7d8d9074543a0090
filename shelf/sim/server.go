package sim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
)

// RMCP+ status codes used by the server (IPMI 2.0 table 13-15).
const (
	stOK               rmcpp.Status        = 0x00
	stNoResources      rmcpp.Status        = 0x01
	stInvalidSession   rmcpp.Status        = 0x02
	stInvalidAuthAlg   rmcpp.Status        = 0x04
	stInvalidRole      rmcpp.Status        = 0x09
	stUnauthorizedRole rmcpp.Status        = 0x0A
	stUnauthorizedName rmcpp.Status        = 0x0D
	stInvalidICV       rmcpp.Status        = 0x0F
	stNoCipherSuite    rmcpp.Status        = 0x11
	handshakeTimeout                       = 10 * time.Second
	seqWindow                              = 16
	maxDatagram                            = 2048
	ccPrivNotAvailable ipmi.CompletionCode = 0x80
	ccPrivExceedsLimit ipmi.CompletionCode = 0x81
	ccInvalidSessionID ipmi.CompletionCode = 0x87
	sessionStateOpen                       = 1
	sessionStateRAKP2                      = 2
	sessionStateActive                     = 3
)

// Server answers RMCP+ (IPMI 2.0, cipher suites 3 and 17) for a Shelf on a
// UDP socket. IPMI 1.5 sessions are refused: the only IPMI 1.5 packets
// answered are the session-less pre-session requests Get Channel
// Authentication Capabilities (whose answer says that no IPMI 1.5
// authentication type is available) and Get Channel Cipher Suites.
type Server struct {
	shelf  *Shelf
	log    *slog.Logger
	random io.Reader

	mu       sync.Mutex
	conn     *net.UDPConn
	addr     *net.UDPAddr
	sessions map[uint32]*session
	nextID   uint32
	clock    func() time.Time
	done     chan struct{}
	served   chan struct{} // closed when the serving goroutine has returned
	closed   bool
}

type session struct {
	id, consoleID uint32
	peer          netip.AddrPort
	state         int
	suite         rmcpp.Suite
	user          User
	tag           uint8
	maxPriv       Privilege
	priv          Privilege
	hs            rmcpp.Handshake
	keys          *rmcpp.SessionKeys
	inSeq         uint32
	seen          uint32 // bit i: inSeq-i already received
	outSeq        uint32
	last          time.Time
}

// Listen starts an RMCP+ server for shelf on addr (e.g. "127.0.0.1:0";
// Addr tells the port chosen). It serves until ctx ends or Close.
func Listen(ctx context.Context, shelf *Shelf, addr string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("sim: resolving listen address %q: %w", addr, err)
	}
	s := newServer(shelf, log)
	if err := s.start(ctx, ua); err != nil {
		return nil, err
	}
	return s, nil
}

func newServer(shelf *Shelf, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{shelf: shelf, log: log, random: rand.Reader, sessions: map[uint32]*session{}, clock: time.Now, nextID: 0x5a000000}
}

func (s *Server) start(ctx context.Context, ua *net.UDPAddr) error {
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return fmt.Errorf("sim: listening for RMCP+ on %s: %w", ua, err)
	}
	s.mu.Lock()
	s.conn = conn
	s.addr = conn.LocalAddr().(*net.UDPAddr)
	s.sessions = map[uint32]*session{}
	s.done = make(chan struct{})
	s.served = make(chan struct{})
	s.closed = false
	done, served := s.done, s.served
	s.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-done:
		}
	}()
	go func() {
		defer close(served)
		s.serve(conn, done)
	}()
	s.log.Info("simulated shelf manager listening", "addr", s.addr.String())
	return nil
}

// Addr returns the UDP address the server listens on.
func (s *Server) Addr() *net.UDPAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shelf returns the shelf the server answers for.
func (s *Server) Shelf() *Shelf { return s.shelf }

// Close stops the server and drops every session.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.sessions = map[uint32]*session{}
	err := s.conn.Close()
	served := s.served
	s.mu.Unlock()
	// The serving goroutine takes s.mu for each datagram: wait outside it,
	// so that nothing is served or logged once Close has returned.
	<-served
	return err
}

// Restart simulates a shelf manager reboot: the socket closes, every
// session is lost, and the server listens again on the same address. The
// shelf's state (hot-swap states, SEL, sensors) survives.
func (s *Server) Restart(ctx context.Context) error {
	addr := s.Addr()
	if err := s.Close(); err != nil {
		return fmt.Errorf("sim: restarting server on %s: %w", addr, err)
	}
	return s.start(ctx, addr)
}

// Sessions returns the number of active (authenticated) sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, se := range s.sessions {
		if se.state == sessionStateActive {
			n++
		}
	}
	return n
}

func (s *Server) serve(conn *net.UDPConn, done chan struct{}) {
	buf := make([]byte, maxDatagram)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, peer, err := conn.ReadFromUDPAddrPort(buf)
		select {
		case <-done:
			return
		default:
		}
		s.reap()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Warn("reading RMCP+ datagram", "err", err)
			return
		}
		for _, out := range s.HandlePacket(peer, buf[:n]) {
			if _, err := conn.WriteToUDPAddrPort(out, peer); err != nil {
				select {
				case <-done:
					return // closed meanwhile: not worth a warning
				default:
				}
				s.log.Warn("sending RMCP+ datagram", "peer", peer.String(), "err", err)
			}
		}
	}
}

// reap closes sessions idle longer than the session timeout and
// handshakes that did not finish.
func (s *Server) reap() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	timeout := s.shelf.cfg.SessionTimeout
	for id, se := range s.sessions {
		limit := timeout
		if se.state != sessionStateActive {
			limit = handshakeTimeout
		}
		if now.Sub(se.last) > limit {
			s.log.Info("closing idle session", "session", fmt.Sprintf("0x%08x", id), "user", se.user.Name)
			delete(s.sessions, id)
		}
	}
}

// HandlePacket processes one datagram from peer and returns the datagrams
// to send back (none when the packet is dropped). It is the server's
// entry point without I/O.
func (s *Server) HandlePacket(peer netip.AddrPort, b []byte) [][]byte {
	s.shelf.count(func(c *Counters) { c.Packets++ })
	out, why := s.handle(peer, b)
	if out == nil && why != "" {
		s.shelf.count(func(c *Counters) { c.Dropped++ })
		s.log.Debug("dropping RMCP packet", "peer", peer.String(), "reason", why)
	}
	return out
}

func (s *Server) handle(peer netip.AddrPort, b []byte) ([][]byte, string) {
	if tag, err := rmcpp.DecodePing(b); err == nil {
		return [][]byte{rmcpp.EncodePong(tag)}, ""
	}
	if _, err := rmcpp.DecodeRMCP(b); err != nil {
		return nil, err.Error()
	}
	if !rmcpp.IsV20(b) {
		return s.handleV15(b)
	}
	h, err := rmcpp.PeekHeader(b[rmcpp.RMCPHeaderLen:])
	if err != nil {
		return nil, err.Error()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.SessionID == 0 {
		pkt, err := rmcpp.DecodePacket(b, nil)
		if err != nil {
			return nil, err.Error()
		}
		switch pkt.Type {
		case rmcpp.PayloadOpenSessionRequest:
			return s.openSession(peer, pkt.Payload)
		case rmcpp.PayloadRAKP1:
			return s.rakp1(peer, pkt.Payload)
		case rmcpp.PayloadRAKP3:
			return s.rakp3(peer, pkt.Payload)
		case rmcpp.PayloadIPMI:
			return s.sessionless(pkt.Payload, func(f []byte) ([]byte, error) {
				return rmcpp.EncodePacket(rmcpp.Packet{Type: rmcpp.PayloadIPMI, Payload: f}, nil, s.random)
			})
		}
		return nil, "unexpected payload outside a session: " + pkt.Type.String()
	}
	se, ok := s.sessions[h.SessionID]
	if !ok || se.state != sessionStateActive {
		return nil, fmt.Sprintf("unknown or inactive session 0x%08x", h.SessionID)
	}
	if se.peer != peer {
		return nil, "session packet from another address"
	}
	pkt, err := rmcpp.DecodePacket(b, se.keys)
	if err != nil {
		return nil, err.Error()
	}
	if pkt.Type != rmcpp.PayloadIPMI {
		return nil, "unsupported payload in session: " + pkt.Type.String()
	}
	if !se.acceptSeq(pkt.Seq) {
		return nil, fmt.Sprintf("session sequence number %d rejected (last %d)", pkt.Seq, se.inSeq)
	}
	se.last = s.clock()
	req, err := ipmi.ParseFrame(pkt.Payload)
	if err != nil {
		return nil, err.Error()
	}
	var frames []ipmi.Frame
	closeAfter := false
	switch {
	case req.NetFn == ipmi.NetFnApp && req.Cmd == 0x3B:
		frames = []ipmi.Frame{s.setSessionPrivilege(se, req)}
	case req.NetFn == ipmi.NetFnApp && req.Cmd == 0x3C:
		var f ipmi.Frame
		f, closeAfter = s.closeSession(se, req)
		frames = []ipmi.Frame{f}
	default:
		frames = s.shelf.Handle(req, se.priv)
	}
	var out [][]byte
	for _, f := range frames {
		se.outSeq++
		if se.outSeq == 0 {
			se.outSeq = 1
		}
		p, err := rmcpp.EncodePacket(rmcpp.Packet{Type: rmcpp.PayloadIPMI, SessionID: se.consoleID, Seq: se.outSeq, Payload: f.Marshal()}, se.keys, s.random)
		if err != nil {
			s.log.Warn("encoding response", "err", err)
			continue
		}
		out = append(out, p)
	}
	if closeAfter {
		delete(s.sessions, se.id)
	}
	return out, ""
}

// acceptSeq applies the RMCP+ sliding window: a sequence number is
// accepted once, if it is not 0 and lies within 16 of the highest seen.
func (se *session) acceptSeq(seq uint32) bool {
	if seq == 0 {
		return false
	}
	switch {
	case seq > se.inSeq:
		d := seq - se.inSeq
		if d > seqWindow {
			return false
		}
		if d >= 32 {
			se.seen = 0
		} else {
			se.seen <<= d
		}
		se.seen |= 1
		se.inSeq = seq
		return true
	default:
		d := se.inSeq - seq
		if d >= seqWindow || se.seen&(1<<d) != 0 {
			return false
		}
		se.seen |= 1 << d
		return true
	}
}

// sessionless answers the IPMI requests allowed before a session exists.
func (s *Server) sessionless(payload []byte, encode func([]byte) ([]byte, error)) ([][]byte, string) {
	req, err := ipmi.ParseFrame(payload)
	if err != nil {
		return nil, err.Error()
	}
	if req.NetFn != ipmi.NetFnApp || (req.Cmd != 0x38 && req.Cmd != 0x54 && req.Cmd != 0x37) {
		return nil, fmt.Sprintf("command %02x/%02x outside a session", uint8(req.NetFn), req.Cmd)
	}
	frames := s.shelf.Handle(req, PrivCallback)
	var out [][]byte
	for _, f := range frames {
		p, err := encode(f.Marshal())
		if err != nil {
			return nil, err.Error()
		}
		out = append(out, p)
	}
	return out, ""
}

// handleV15 answers the pre-session requests a console may send in the
// IPMI 1.5 format before it opens an RMCP+ session (IPMI 2.0 §13.14,
// §22.13): Get Channel Authentication Capabilities, whose answer offers
// IPMI 2.0 and no IPMI 1.5 authentication type, and Get Channel Cipher
// Suites, both session-less (authentication type none, session ID and
// sequence number 0) and answered in the same framing. Everything else in
// the IPMI 1.5 format (Get Session Challenge, Activate Session, any packet
// of an IPMI 1.5 session or with authentication) is refused: IPMI 1.5
// sessions are not supported.
func (s *Server) handleV15(b []byte) ([][]byte, string) {
	out, why := s.preSessionV15(b)
	if out == nil {
		s.shelf.count(func(c *Counters) { c.RefusedV15++ })
		return nil, why
	}
	s.shelf.count(func(c *Counters) { c.PreSessionV15++ })
	return out, ""
}

func (s *Server) preSessionV15(b []byte) ([][]byte, string) {
	// IPMI 1.5 session header after the RMCP header: authentication type,
	// session sequence number (4), session ID (4), [authentication code
	// (16) unless type none], message length.
	h := b[rmcpp.RMCPHeaderLen:]
	if len(h) < 9 {
		return nil, "IPMI 1.5 packet refused: short session header"
	}
	if h[0] != 0x00 {
		return nil, fmt.Sprintf("IPMI 1.5 packet refused: authentication type 0x%02x (IPMI 1.5 sessions are not supported)", h[0])
	}
	if seq, id := binary.LittleEndian.Uint32(h[1:5]), binary.LittleEndian.Uint32(h[5:9]); seq != 0 || id != 0 {
		return nil, fmt.Sprintf("IPMI 1.5 packet refused: session 0x%08x sequence %d (IPMI 1.5 sessions are not supported)", id, seq)
	}
	msg, err := rmcpp.DecodeV15(b)
	if err != nil {
		return nil, "IPMI 1.5 packet refused: " + err.Error()
	}
	req, err := ipmi.ParseFrame(msg)
	if err != nil {
		return nil, "IPMI 1.5 packet refused: " + err.Error()
	}
	if req.NetFn != ipmi.NetFnApp || (req.Cmd != 0x38 && req.Cmd != 0x54) {
		return nil, fmt.Sprintf("IPMI 1.5 packet refused: netfn 0x%02x cmd 0x%02x (IPMI 1.5 sessions are not supported)", uint8(req.NetFn), req.Cmd)
	}
	return s.sessionless(msg, rmcpp.EncodeV15)
}

func (s *Server) newSessionID() uint32 {
	for {
		s.nextID += 0x01010101
		if s.nextID != 0 && s.sessions[s.nextID] == nil {
			return s.nextID
		}
	}
}

func (s *Server) suiteAllowed(a rmcpp.AuthAlg, i rmcpp.IntegrityAlg, c rmcpp.ConfAlg) (rmcpp.Suite, rmcpp.Status) {
	st, err := rmcpp.SuiteFor(a, i, c)
	if err != nil {
		if a != rmcpp.AuthHMACSHA1 && a != rmcpp.AuthHMACSHA256 {
			return rmcpp.Suite{}, stInvalidAuthAlg
		}
		return rmcpp.Suite{}, stNoCipherSuite
	}
	for _, id := range s.shelf.cfg.CipherSuites {
		if int(id) == st.ID {
			return st, stOK
		}
	}
	return rmcpp.Suite{}, stNoCipherSuite
}

func (s *Server) openSession(peer netip.AddrPort, p []byte) ([][]byte, string) {
	req, err := rmcpp.ParseOpenSessionRequest(p)
	if err != nil {
		return nil, err.Error()
	}
	resp := rmcpp.OpenSessionResponse{Tag: req.Tag, ConsoleSessionID: req.ConsoleSessionID, MaxPrivilege: req.MaxPrivilege}
	suite, st := s.suiteAllowed(req.Auth, req.Integrity, req.Conf)
	switch {
	case st != stOK:
		resp.Status = st
	case req.MaxPrivilege > rmcpp.Privilege(PrivAdmin):
		resp.Status = stInvalidRole
	case len(s.sessions) >= s.shelf.cfg.MaxSessions:
		resp.Status = stNoResources
	}
	if resp.Status != stOK {
		s.shelf.count(func(c *Counters) { c.Refused++ })
		return s.sessionlessReply(rmcpp.PayloadOpenSessionResponse, resp.Marshal())
	}
	maxPriv := Privilege(req.MaxPrivilege)
	if maxPriv == 0 {
		maxPriv = PrivAdmin // the highest level the channel allows
	}
	se := &session{id: s.newSessionID(), consoleID: req.ConsoleSessionID, peer: peer, state: sessionStateOpen,
		suite: suite, maxPriv: maxPriv, last: s.clock()}
	s.sessions[se.id] = se
	resp.BMCSessionID = se.id
	resp.MaxPrivilege = rmcpp.Privilege(maxPriv)
	resp.Auth, resp.Integrity, resp.Conf = suite.Auth, suite.Integrity, suite.Conf
	return s.sessionlessReply(rmcpp.PayloadOpenSessionResponse, resp.Marshal())
}

func (s *Server) sessionlessReply(t rmcpp.PayloadType, payload []byte) ([][]byte, string) {
	b, err := rmcpp.EncodePacket(rmcpp.Packet{Type: t, Payload: payload}, nil, s.random)
	if err != nil {
		return nil, err.Error()
	}
	return [][]byte{b}, ""
}

func (s *Server) rakp1(peer netip.AddrPort, p []byte) ([][]byte, string) {
	m, err := rmcpp.ParseRAKP1(p)
	if err != nil {
		return nil, err.Error()
	}
	se, ok := s.sessions[m.BMCSessionID]
	if !ok || se.state != sessionStateOpen || se.peer != peer {
		return s.sessionlessReply(rmcpp.PayloadRAKP2, rmcpp.RAKP2{Tag: m.Tag, Status: stInvalidSession}.Marshal())
	}
	fail := func(st rmcpp.Status) ([][]byte, string) {
		delete(s.sessions, se.id)
		s.shelf.count(func(c *Counters) { c.AuthFailures++ })
		return s.sessionlessReply(rmcpp.PayloadRAKP2, rmcpp.RAKP2{Tag: m.Tag, Status: st, ConsoleSessionID: se.consoleID}.Marshal())
	}
	priv := Privilege(m.Role & 0x0f)
	if priv < PrivCallback || priv > PrivAdmin || priv > se.maxPriv {
		return fail(stInvalidRole)
	}
	var user *User
	for i := range s.shelf.cfg.Users {
		if s.shelf.cfg.Users[i].Name == string(m.Username) {
			user = &s.shelf.cfg.Users[i]
			break
		}
	}
	if user == nil || len(m.Username) == 0 {
		return fail(stUnauthorizedName)
	}
	if priv > user.MaxPrivilege {
		return fail(stUnauthorizedRole)
	}
	se.user = *user
	se.maxPriv = priv
	se.tag = m.Tag
	se.hs = rmcpp.Handshake{Auth: se.suite.Auth, ConsoleSessionID: se.consoleID, BMCSessionID: se.id,
		ConsoleRandom: m.ConsoleRandom, BMCGUID: s.shelf.cfg.GUID, Role: m.Role, Username: m.Username}
	if _, err := io.ReadFull(s.random, se.hs.BMCRandom[:]); err != nil {
		return fail(stNoResources)
	}
	se.state = sessionStateRAKP2
	se.last = s.clock()
	r2 := rmcpp.RAKP2{Tag: m.Tag, ConsoleSessionID: se.consoleID, BMCRandom: se.hs.BMCRandom, BMCGUID: se.hs.BMCGUID,
		AuthCode: se.hs.RAKP2AuthCode([]byte(user.Password))}
	return s.sessionlessReply(rmcpp.PayloadRAKP2, r2.Marshal())
}

func (s *Server) rakp3(peer netip.AddrPort, p []byte) ([][]byte, string) {
	if len(p) < 8 {
		return nil, "short RAKP 3"
	}
	se, ok := s.sessions[binary.LittleEndian.Uint32(p[4:])]
	if !ok || se.state != sessionStateRAKP2 || se.peer != peer {
		return s.sessionlessReply(rmcpp.PayloadRAKP4, rmcpp.RAKP4{Tag: p[0], Status: stInvalidSession}.Marshal())
	}
	m, err := rmcpp.ParseRAKP3(p, se.suite.Auth)
	if err != nil {
		delete(s.sessions, se.id)
		return nil, err.Error()
	}
	if m.Status != stOK {
		// The console gave up (for example it could not verify RAKP 2).
		delete(s.sessions, se.id)
		s.shelf.count(func(c *Counters) { c.AuthFailures++ })
		return nil, "console aborted the handshake: " + m.Status.String()
	}
	kuid := []byte(se.user.Password)
	if err := se.hs.VerifyRAKP3(kuid, m.AuthCode); err != nil {
		delete(s.sessions, se.id)
		s.shelf.count(func(c *Counters) { c.AuthFailures++ })
		s.log.Info("RAKP 3 authentication failed", "user", se.user.Name, "peer", peer.String())
		return s.sessionlessReply(rmcpp.PayloadRAKP4, rmcpp.RAKP4{Tag: m.Tag, Status: stInvalidICV, ConsoleSessionID: se.consoleID}.Marshal())
	}
	sik := se.hs.SIK(kuid)
	se.keys = se.hs.Keys(sik, se.suite)
	se.state = sessionStateActive
	se.priv = min(PrivUser, se.maxPriv)
	se.last = s.clock()
	s.shelf.count(func(c *Counters) { c.SessionsOpened++ })
	s.log.Info("session opened", "session", fmt.Sprintf("0x%08x", se.id), "user", se.user.Name, "suite", se.suite.ID, "max_privilege", se.maxPriv.String())
	return s.sessionlessReply(rmcpp.PayloadRAKP4, rmcpp.RAKP4{Tag: m.Tag, ConsoleSessionID: se.consoleID, ICV: se.hs.RAKP4ICV(sik)}.Marshal())
}

func (s *Server) setSessionPrivilege(se *session, req ipmi.Frame) ipmi.Frame {
	if len(req.Data) != 1 {
		return response(req, s.shelf.cfg.Addr, ipmi.CCRequestDataLength, nil)
	}
	p := Privilege(req.Data[0] & 0x0f)
	switch {
	case p == 0:
	case p > PrivAdmin:
		return response(req, s.shelf.cfg.Addr, ccPrivNotAvailable, nil)
	case p > se.maxPriv:
		return response(req, s.shelf.cfg.Addr, ccPrivExceedsLimit, nil)
	default:
		se.priv = p
	}
	return response(req, s.shelf.cfg.Addr, ipmi.CCOK, []byte{byte(se.priv)})
}

func (s *Server) closeSession(se *session, req ipmi.Frame) (ipmi.Frame, bool) {
	if len(req.Data) < 4 {
		return response(req, s.shelf.cfg.Addr, ipmi.CCRequestDataLength, nil), false
	}
	id := binary.LittleEndian.Uint32(req.Data)
	if id == se.id {
		return response(req, s.shelf.cfg.Addr, ipmi.CCOK, nil), true
	}
	other, ok := s.sessions[id]
	if !ok {
		return response(req, s.shelf.cfg.Addr, ccInvalidSessionID, nil), false
	}
	if se.priv < PrivAdmin {
		return response(req, s.shelf.cfg.Addr, ipmi.CCInsufficientPrivilege, nil), false
	}
	delete(s.sessions, other.id)
	return response(req, s.shelf.cfg.Addr, ipmi.CCOK, nil), false
}

// Start builds a shelf from cfg and serves it over RMCP+ on addr (e.g.
// "127.0.0.1:0"). With realTime the shelf clock follows the wall clock (the
// demo's mode: hot-swap steps advance by themselves); otherwise it moves
// only with Shelf.Advance. Everything stops when ctx ends.
func Start(ctx context.Context, cfg Config, addr string, realTime bool, log *slog.Logger) (*Server, error) {
	sh, err := New(cfg, log)
	if err != nil {
		return nil, err
	}
	srv, err := Listen(ctx, sh, addr, log)
	if err != nil {
		return nil, err
	}
	if realTime {
		go sh.RunClock(ctx, 100*time.Millisecond)
	}
	return srv, nil
}
