package rmcpp

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
	"hpiagent/shelf/ipmi"
)

const cmdGetSensorReading = 0x2D

func sensorReading(n uint8, readOnly bool) ipmi.Request {
	return ipmi.Request{NetFn: ipmi.NetFnSensor, Cmd: cmdGetSensorReading, Data: []byte{n}, ReadOnly: readOnly}
}

// lateAnswers is a fake BMC behaviour: it answers Get Sensor Reading with
// the sensor number as reading, but holds back one answer to the first
// request for sensor `held` (attempt `holdAttempt`, counting every packet
// carrying that request). The held answer is delivered late, as a genuine
// packet of the session, just before the answer to the next other request
// that carries the same rqSeq (the moment it can do the most harm), or
// before the answer to the first request after forceRelease.
type lateAnswers struct {
	held        uint8
	holdAttempt int

	mu       sync.Mutex
	seen     chan struct{} // closed when the held request arrived
	attempts int
	late     *ipmi.Frame
	force    bool
	released bool
}

func newLateAnswers(held uint8, holdAttempt int) *lateAnswers {
	return &lateAnswers{held: held, holdAttempt: holdAttempt, seen: make(chan struct{})}
}

func (la *lateAnswers) respond(req ipmi.Frame) ([]ipmi.Frame, bool) {
	la.mu.Lock()
	defer la.mu.Unlock()
	inner := req
	bridged := req.NetFn == ipmi.NetFnApp && req.Cmd == cmdSendMessage
	if bridged {
		f, err := ipmi.ParseFrame(req.Data[1:])
		if err != nil {
			return nil, false
		}
		inner = f
	}
	if inner.NetFn != ipmi.NetFnSensor || inner.Cmd != cmdGetSensorReading || len(inner.Data) != 1 {
		return nil, false
	}
	answer := func(r ipmi.Frame) []ipmi.Frame {
		ir := respFrame(r, 0, r.Data[0], 0xC0, 0, 0)
		if !bridged {
			return []ipmi.Frame{ir}
		}
		return []ipmi.Frame{respFrame(req, 0), ir} // style (b)
	}
	var out []ipmi.Frame
	if la.late != nil && !la.released {
		if (inner.Seq == la.late.Seq && inner.Data[0] != la.held) || la.force {
			la.released = true
			out = append(out, answer(*la.late)...)
		}
	}
	if inner.Data[0] == la.held && la.late == nil {
		la.attempts++
		if la.attempts == la.holdAttempt {
			r := inner
			la.late = &r
			close(la.seen)
			if bridged {
				return []ipmi.Frame{respFrame(req, 0)}, true
			}
			return nil, true
		}
	}
	return append(out, answer(inner)...), true
}

func (la *lateAnswers) forceRelease() {
	la.mu.Lock()
	defer la.mu.Unlock()
	la.force = true
}

func (la *lateAnswers) wasReleased() bool {
	la.mu.Lock()
	defer la.mu.Unlock()
	return la.released
}

// TestLateAnswerNeverCompletesAnotherRequest: a genuine but late answer
// (to a request abandoned by its caller, timed out, or answered already
// after a retransmission) must never complete a later request that got
// the same rqSeq: same command, same target, other sensor.
func TestLateAnswerNeverCompletesAnotherRequest(t *testing.T) {
	for _, tc := range []struct {
		name        string
		target      uint8
		holdAttempt int
		// run sends the request whose answer is held and checks its outcome.
		run func(ctx context.Context, t *testing.T, s *Session, la *lateAnswers, to ipmi.Addr)
		cfg func(*Config)
	}{
		{name: "abandoned by its context", holdAttempt: 1,
			cfg: func(c *Config) { c.RequestTimeout, c.BridgeTimeout = 2*time.Second, 2*time.Second },
			run: func(ctx context.Context, t *testing.T, s *Session, la *lateAnswers, to ipmi.Addr) {
				cctx, cancel := context.WithCancel(ctx)
				go func() { <-la.seen; cancel() }()
				if _, err := s.Exchange(cctx, to, sensorReading(1, true)); !errors.Is(err, context.Canceled) {
					t.Fatalf("abandoned request: %v", err)
				}
			}},
		{name: "timed out", holdAttempt: 1,
			cfg: func(c *Config) {
				c.RequestTimeout, c.BridgeTimeout = 100*time.Millisecond, 100*time.Millisecond
				c.NoRetries = true
			},
			run: func(ctx context.Context, t *testing.T, s *Session, la *lateAnswers, to ipmi.Addr) {
				if _, err := s.Exchange(ctx, to, sensorReading(1, false)); !errors.Is(err, ErrTimeout) {
					t.Fatalf("held request: %v, want ErrTimeout", err)
				}
			}},
		{name: "answered after a retransmission", holdAttempt: 1,
			cfg: func(c *Config) {
				c.RequestTimeout, c.BridgeTimeout, c.Retries = 100*time.Millisecond, 100*time.Millisecond, 2
			},
			run: func(ctx context.Context, t *testing.T, s *Session, la *lateAnswers, to ipmi.Addr) {
				d, err := ipmi.Do(ctx, s, to, sensorReading(1, true))
				if err != nil || d[0] != 1 {
					t.Fatalf("retransmitted request: % x %v", d, err)
				}
			}},
		{name: "bridged, abandoned by its context", target: 0x84, holdAttempt: 1,
			cfg: func(c *Config) { c.RequestTimeout, c.BridgeTimeout = 2*time.Second, 2*time.Second },
			run: func(ctx context.Context, t *testing.T, s *Session, la *lateAnswers, to ipmi.Addr) {
				cctx, cancel := context.WithCancel(ctx)
				go func() { <-la.seen; cancel() }()
				if _, err := s.Exchange(cctx, to, sensorReading(1, true)); !errors.Is(err, context.Canceled) {
					t.Fatalf("abandoned request: %v", err)
				}
			}},
		{name: "bridged, answered after a retransmission", target: 0x84, holdAttempt: 1,
			cfg: func(c *Config) {
				c.RequestTimeout, c.BridgeTimeout, c.Retries = 100*time.Millisecond, 100*time.Millisecond, 2
			},
			run: func(ctx context.Context, t *testing.T, s *Session, la *lateAnswers, to ipmi.Addr) {
				d, err := ipmi.Do(ctx, s, to, sensorReading(1, true))
				if err != nil || d[0] != 1 {
					t.Fatalf("retransmitted request: % x %v", d, err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			la := newLateAnswers(1, tc.holdAttempt)
			f := startFakeBMC(t, &fakeBMC{password: []byte("pw"), offered: []int{17}, respond: la.respond})
			cfg := fakeConfig(t, f)
			cfg.MaxConsecutiveTimeouts = 1000
			cfg.KeepAlive = time.Hour
			tc.cfg(&cfg)
			s := dial(t, cfg)
			to := ipmi.Addr{Slave: tc.target}
			tc.run(ctx, t, s, la, to)
			// Give the session time to recycle the rqSeq (an abandoned
			// request is noticed at the next tick); then deliver the late
			// answer anyway.
			recycle := time.Now().Add(1500 * time.Millisecond)
			for i := 0; !la.wasReleased(); i++ {
				if i > 100000 {
					t.Fatal("the late answer was never delivered")
				}
				if time.Now().After(recycle) {
					la.forceRelease()
				}
				d, err := ipmi.Do(ctx, s, to, sensorReading(2, true))
				if errors.Is(err, ErrTimeout) {
					continue // 100 ms attempts on a loaded machine; what matters is no wrong answer
				}
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if d[0] != 2 {
					t.Fatalf("request %d for sensor 2 completed by the late answer for sensor 1: % x", i, d)
				}
			}
			// The request right after the late answer is fine too.
			if d, err := ipmi.Do(ctx, s, to, sensorReading(2, true)); err != nil || d[0] != 2 {
				t.Fatalf("after the late answer: % x %v", d, err)
			}
		})
	}
}

// TestSecretsNeverFormatted: the password, K_G and the session keys do
// not appear in any fmt verb or structured log of the values that hold
// them.
func TestSecretsNeverFormatted(t *testing.T) {
	pw, kg := "pw-Secret-1234", "kg-Secret-5678"
	f := startFakeBMC(t, &fakeBMC{password: []byte(pw), offered: []int{17}})
	cfg := fakeConfig(t, f)
	cfg.Password = []byte(pw)
	var logged bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := dial(t, cfg)
	if _, err := ipmi.Do(context.Background(), s, ipmi.Addr{}, getDeviceID); err != nil {
		t.Fatal(err)
	}
	withKG := cfg
	withKG.KG = []byte(kg)
	keys := testKeys(suite17, 3)
	var secrets []string
	for _, sec := range [][]byte{[]byte(pw), []byte(kg), keys.K1, keys.K2} {
		inner := func(s string) string { return strings.Trim(s, "[]{}") }
		secrets = append(secrets, string(sec), fmt.Sprintf("%x", sec), fmt.Sprintf("%X", sec[:8]),
			inner(fmt.Sprint(sec[:8])), inner(fmt.Sprintf("%#v", sec[:8])[len("[]byte"):]),
			base64.StdEncoding.EncodeToString(sec)[:8])
	}
	for _, v := range []struct {
		name string
		v    any
	}{{"Config", withKG}, {"*Config", &withKG}, {"*Session", s}, {"*SessionKeys", keys}, {"SessionKeys", *keys}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
			out := fmt.Sprintf(verb, v.v)
			for _, sec := range secrets {
				if strings.Contains(out, sec) {
					t.Errorf("%s formatted with %s shows a secret: %s", v.name, verb, out)
				}
			}
		}
		logged.Reset()
		slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "v", v.v)
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "v", v.v)
		for _, sec := range secrets {
			if strings.Contains(logged.String(), sec) {
				t.Errorf("%s logged shows a secret: %s", v.name, logged.String())
			}
		}
	}
}

// TestPrivilegeGrantedLess: a BMC that grants less privilege than asked
// (in the Open Session Response or in the answer to Set Session Privilege
// Level) fails Dial with a clear error instead of handing out a session
// whose power and hot-swap commands would then fail one by one.
func TestPrivilegeGrantedLess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name    string
		ask     Privilege
		granted Privilege
		ok      bool
	}{
		{"admin asked, admin granted", PrivilegeAdministrator, PrivilegeAdministrator, true},
		{"operator asked, admin granted", PrivilegeOperator, PrivilegeAdministrator, false},
		{"admin asked, operator granted", PrivilegeAdministrator, PrivilegeOperator, false},
		{"admin asked, user granted", PrivilegeAdministrator, PrivilegeUser, false},
		{"operator asked, user granted", PrivilegeOperator, PrivilegeUser, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeBMC(t, &fakeBMC{password: []byte("pw"), offered: []int{17}, grantPriv: tc.granted})
			cfg := fakeConfig(t, f)
			cfg.Privilege = tc.ask
			s, err := Dial(ctx, cfg)
			if tc.ok {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("Dial succeeded with %s granted for %s asked", tc.granted, tc.ask)
			}
			if !errors.Is(err, ErrPrivilege) || !strings.Contains(err.Error(), tc.granted.String()) {
				t.Fatalf("err = %v, want ErrPrivilege naming %s", err, tc.granted)
			}
		})
	}
}

// TestLabPrivilegeLimits: against ipmi_sim, a user whose limit is below
// the requested level gets no session, like ipmitool; users at their
// level do.
func TestLabPrivilegeLimits(t *testing.T) {
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tc := range []struct {
		user, password string
		ask            Privilege
		ipmitoolLevel  string
	}{
		{sh.User, sh.Password, PrivilegeAdministrator, "ADMINISTRATOR"},
		{"operator", "oppass", PrivilegeOperator, "OPERATOR"},
		{"operator", "oppass", PrivilegeAdministrator, "ADMINISTRATOR"},
		{"monitor", "monpass", PrivilegeUser, "USER"},
		{"monitor", "monpass", PrivilegeOperator, "OPERATOR"},
		{"monitor", "monpass", PrivilegeAdministrator, "ADMINISTRATOR"},
	} {
		t.Run(tc.user+" as "+tc.ask.String(), func(t *testing.T) {
			_, ipmitoolErr := sh.Ipmitool(ctx, "-U", tc.user, "-P", tc.password, "-L", tc.ipmitoolLevel, "raw", "6", "1")
			cfg := labConfig(t, sh)
			cfg.Username, cfg.Password, cfg.Privilege = tc.user, []byte(tc.password), tc.ask
			s, err := Dial(ctx, cfg)
			if err == nil {
				defer s.Close()
				if _, err := ipmi.Do(ctx, s, ipmi.Addr{}, getDeviceID); err != nil {
					t.Fatalf("session: %v", err)
				}
			}
			t.Logf("ipmitool: %v; Dial: %v", ipmitoolErr, err)
			if (err == nil) != (ipmitoolErr == nil) {
				t.Fatalf("Dial: %v, but ipmitool: %v", err, ipmitoolErr)
			}
		})
	}
}

// TestForgedHandshakeAnswersIgnored: handshake messages are not
// authenticated until RAKP 2, so a stranger who guesses the 8-bit message
// tag can send answers first. One that names another console session ID
// must be ignored (the genuine answer follows), neither aborting the
// negotiation nor moving it to another cipher suite.
func TestForgedHandshakeAnswersIgnored(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		// answer builds the forged answer to a client message of type pt
		// with payload req (tag in req[0]), or returns nil.
		answer func(pt PayloadType, req []byte) *Packet
	}{
		{"Open Session refused (no cipher suite match)", func(pt PayloadType, req []byte) *Packet {
			if pt != PayloadOpenSessionRequest {
				return nil
			}
			m := OpenSessionResponse{Tag: req[0], Status: 0x11, ConsoleSessionID: 0x0BADF00D}
			return &Packet{Type: PayloadOpenSessionResponse, Payload: m.Marshal()}
		}},
		{"Open Session accepted for another console", func(pt PayloadType, req []byte) *Packet {
			if pt != PayloadOpenSessionRequest {
				return nil
			}
			r, _ := ParseOpenSessionRequest(req)
			m := OpenSessionResponse{Tag: req[0], MaxPrivilege: 4, ConsoleSessionID: 0x0BADF00D, BMCSessionID: 0x666,
				Auth: r.Auth, Integrity: r.Integrity, Conf: r.Conf}
			return &Packet{Type: PayloadOpenSessionResponse, Payload: m.Marshal()}
		}},
		{"RAKP 2 unauthorized name", func(pt PayloadType, req []byte) *Packet {
			if pt != PayloadRAKP1 {
				return nil
			}
			m := RAKP2{Tag: req[0], Status: 0x0D, ConsoleSessionID: 0x0BADF00D}
			return &Packet{Type: PayloadRAKP2, Payload: m.Marshal()}
		}},
		{"RAKP 2 for another console", func(pt PayloadType, req []byte) *Packet {
			if pt != PayloadRAKP1 {
				return nil
			}
			m := RAKP2{Tag: req[0], ConsoleSessionID: 0x0BADF00D, AuthCode: make([]byte, 32)}
			return &Packet{Type: PayloadRAKP2, Payload: m.Marshal()}
		}},
		{"RAKP 4 invalid integrity check value", func(pt PayloadType, req []byte) *Packet {
			if pt != PayloadRAKP3 {
				return nil
			}
			m := RAKP4{Tag: req[0], Status: 0x0F, ConsoleSessionID: 0x0BADF00D}
			return &Packet{Type: PayloadRAKP4, Payload: m.Marshal()}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeBMC(t, &fakeBMC{password: []byte("pw"), offered: []int{3, 17}})
			px := startProxy(t, f.Addr())
			px.setToServer(func(b []byte) [][]byte {
				if p, err := DecodePacket(b, nil); err == nil && len(p.Payload) > 0 {
					if fp := tc.answer(p.Type, p.Payload); fp != nil {
						out, _ := EncodePacket(*fp, nil, nil)
						px.inject(out) // ahead of the genuine answer
					}
				}
				return [][]byte{b}
			})
			cfg := fakeConfig(t, f)
			cfg.Addr = px.Addr()
			s, err := Dial(ctx, cfg)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer s.Close()
			if s.CipherSuite() != 17 {
				t.Fatalf("cipher suite %d, want 17", s.CipherSuite())
			}
			if _, err := ipmi.Do(ctx, s, ipmi.Addr{}, getDeviceID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDialCancelled: cancelling Dial's context ends the establishment at
// once, not when the current attempt's timeout would have run out.
func TestDialCancelled(t *testing.T) {
	hole, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	got := make(chan struct{}, 100)
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := hole.ReadFromUDP(buf); err != nil {
				return
			}
			got <- struct{}{}
		}
	}()
	cfg := Config{Addr: hole.LocalAddr().String(), Username: "admin", Password: []byte("pw"), Logger: testLogger(t),
		RequestTimeout: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Dial(ctx, cfg)
		done <- err
	}()
	<-got // the first request is out; Dial waits for its answer
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Dial: %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Dial still waiting 30 s after its context was cancelled")
	}
}

// TestGarbageFlood: packets from any other address never reach the
// session (its socket is connected to the shelf manager), and a flood of
// garbage that does come from the shelf manager's address is dropped
// without starving the genuine answers.
func TestGarbageFlood(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := startFakeBMC(t, &fakeBMC{password: []byte("pw"), offered: []int{17}})
	px := startProxy(t, f.Addr())
	cfg := fakeConfig(t, f)
	cfg.Addr = px.Addr()
	cfg.KeepAlive = time.Hour
	s := dial(t, cfg)
	stranger, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	px.mu.Lock()
	session := px.client
	px.mu.Unlock()
	garbage := [][]byte{
		{0x06, 0x00, 0xff, 0x07, 0x06, 0xc0, 1, 2, 3, 4, 5, 6, 7, 8, 0x20, 0},
		bytes.Repeat([]byte{0xA5}, 3000),
		EncodePing(1),
		{},
	}
	// Strangers: dropped by the kernel, so not even counted as rejected.
	for range 200 {
		for _, g := range garbage {
			stranger.WriteToUDP(g, session)
		}
	}
	if _, err := ipmi.Do(ctx, s, ipmi.Addr{}, getDeviceID); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); len(st.Rejected) != 0 {
		t.Fatalf("packets from a stranger reached the session: %+v", st.Rejected)
	}
	// Garbage from the shelf manager's address, ahead of every answer.
	px.setToClient(func(b []byte) [][]byte {
		out := [][]byte{}
		for range 5 {
			out = append(out, garbage...)
		}
		return append(out, b)
	})
	for i := range 200 {
		to := ipmi.Addr{}
		if i%2 == 1 {
			to.Slave = 0x82
		}
		if _, err := ipmi.Do(ctx, s, to, getDeviceID); err != nil {
			t.Fatalf("request %d under garbage: %v (stats %+v)", i, err, s.Stats())
		}
	}
	st := s.Stats()
	if st.Rejected[RejectFormat]+st.Rejected[RejectShort]+st.Rejected[RejectIntegrity] < 200 {
		t.Fatalf("garbage not seen and rejected: %+v", st)
	}
	t.Logf("stats %+v", st)
}

// TestStateChangeSentOnce: a request that changes state is put on the
// wire once, whether its answer is lost, the session is lost and
// re-established meanwhile, or it is bridged; a read-only one is resent.
func TestStateChangeSentOnce(t *testing.T) {
	const cmdChassisControl = 0x02
	for _, tc := range []struct {
		name     string
		to       ipmi.Addr
		readOnly bool
		wantMin  int
		wantMax  int
	}{
		{"local", ipmi.Addr{}, false, 1, 1},
		{"bridged", ipmi.Addr{Slave: 0x86}, false, 1, 1},
		{"read-only local", ipmi.Addr{}, true, 2, 100},
		{"read-only bridged", ipmi.Addr{Slave: 0x86}, true, 2, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var mu sync.Mutex
			seen := 0
			f := startFakeBMC(t, &fakeBMC{password: []byte("pw"), offered: []int{17}, respond: func(req ipmi.Frame) ([]ipmi.Frame, bool) {
				inner := req
				if req.NetFn == ipmi.NetFnApp && req.Cmd == cmdSendMessage {
					inner, _ = ipmi.ParseFrame(req.Data[1:])
				}
				if inner.NetFn == ipmi.NetFnChassis && inner.Cmd == cmdChassisControl {
					mu.Lock()
					seen++
					mu.Unlock()
				}
				return nil, false
			}})
			px := startProxy(t, f.Addr())
			cfg := fakeConfig(t, f)
			cfg.Addr = px.Addr()
			cfg.RequestTimeout, cfg.BridgeTimeout = 100*time.Millisecond, 100*time.Millisecond
			cfg.Retries = 2
			cfg.MaxConsecutiveTimeouts = 1
			cfg.ReconnectMin = 10 * time.Millisecond
			cfg.KeepAlive = time.Hour
			s := dial(t, cfg)
			// Lose every answer of the first session: the session is
			// found lost and re-established while the request is out.
			var first []byte
			px.setToClient(func(b []byte) [][]byte {
				mu.Lock()
				defer mu.Unlock()
				if isSessionIPMI(b) {
					if first == nil {
						first = append([]byte(nil), b[6:10]...)
					}
					if bytes.Equal(b[6:10], first) {
						return nil
					}
				}
				return [][]byte{b}
			})
			req := ipmi.Request{NetFn: ipmi.NetFnChassis, Cmd: cmdChassisControl, Data: []byte{0x00}, ReadOnly: tc.readOnly}
			_, err := s.Exchange(ctx, tc.to, req)
			if !tc.readOnly && !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrSessionLost) {
				t.Fatalf("state change with its answer lost: %v, want ErrTimeout or ErrSessionLost", err)
			}
			if tc.readOnly && err != nil {
				t.Fatalf("read-only request across the re-establishment: %v", err)
			}
			// The new session works (and would have carried a resend).
			if _, err := ipmi.Do(ctx, s, ipmi.Addr{}, getDeviceID); err != nil {
				t.Fatalf("after re-establishment: %v", err)
			}
			if s.Stats().Reconnects < 1 {
				t.Fatalf("no re-establishment: %+v", s.Stats())
			}
			mu.Lock()
			defer mu.Unlock()
			if seen < tc.wantMin || seen > tc.wantMax {
				t.Fatalf("the BMC received the request %d times, want %d..%d", seen, tc.wantMin, tc.wantMax)
			}
		})
	}
}
