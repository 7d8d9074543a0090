package pet

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func unitReceiver(t testing.TB, cfg Config, clk *fakeClock) *Receiver {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	cfg.now = clk.now
	r, err := newReceiver(cfg)
	if err != nil {
		t.Fatalf("newReceiver: %v", err)
	}
	return r
}

var srcA = netip.MustParseAddrPort("192.0.2.10:40000")

// feed passes one packet and returns the trap delivered, if any.
func feed(r *Receiver, pkt []byte, src netip.AddrPort) (Trap, bool) {
	r.handlePacket(pkt, src)
	select {
	case t := <-r.queue:
		return t, true
	default:
		return Trap{}, false
	}
}

func TestHandlePacketReasons(t *testing.T) {
	spec := defaultPETSpec()
	pdu := v2TrapPDU(spec, 7)
	good := func(t testing.TB) []byte { return authPrivMsg(labUser(), pdu, 3, 5000, 1).build(t) }
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 0x01
		return c
	}
	wrongAuth := labUser()
	wrongAuth.AuthPassphrase = Secret("not-the-auth-pass")
	wrongPriv := labUser()
	wrongPriv.PrivPassphrase = Secret("not-the-priv-pass")
	otherUser := labUser()
	otherUser.Name = "intruder"
	otherTrap := enc(tagTrapV2, encInt(tagInteger, 1), encInt(tagInteger, 0), encInt(tagInteger, 0),
		enc(tagSequence,
			enc(tagSequence, encOID(oidSysUpTime()), encUint(tagTimeTicks, 1)),
			enc(tagSequence, encOID(oidSnmpTrapOID()), encOID(oid{1, 3, 6, 1, 6, 3, 1, 1, 5, 1}))))
	shortPET := spec
	shortPET.oem = nil
	shortPDU := enc(tagTrapV2, encInt(tagInteger, 1), encInt(tagInteger, 0), encInt(tagInteger, 0),
		enc(tagSequence,
			enc(tagSequence, encOID(oidSysUpTime()), encUint(tagTimeTicks, 1)),
			enc(tagSequence, encOID(oidSnmpTrapOID()), encOID(append(oidPETTrapPrefix(), spec.specific()))),
			enc(tagSequence, encOID(oidPETVarBind()), encOctets(spec.payload()[:40]))))
	inform := append([]byte{tagInform}, pdu[1:]...)

	tests := []struct {
		name   string
		cfg    func(*Config)
		pkt    func(t testing.TB) []byte
		reason Reason // "" = accepted
		insec  bool
	}{
		{name: "v3 authPriv SHA", pkt: good},
		{name: "v3 authPriv SHA-256", cfg: func(c *Config) { c.Users = append(c.Users, sha256User()) },
			pkt: func(t testing.TB) []byte { return authPrivMsg(sha256User(), pdu, 1, 1, 9).build(t) }},
		{name: "garbage", pkt: func(testing.TB) []byte { return []byte("hello") }, reason: ReasonMalformed},
		{name: "trailing bytes", pkt: func(t testing.TB) []byte { return append(good(t), 0) }, reason: ReasonMalformed},
		{name: "version 2", pkt: func(testing.TB) []byte { return communityMsg(2, "public", pdu) }, reason: ReasonBadVersion},
		{name: "v2c refused by default", pkt: func(testing.TB) []byte { return communityMsg(1, "public", pdu) }, reason: ReasonInsecureVersion},
		{name: "v1 refused by default", pkt: func(testing.TB) []byte { return communityMsg(0, "public", v1TrapPDU(spec)) }, reason: ReasonInsecureVersion},
		{name: "v2c allowed community", cfg: func(c *Config) { c.Communities = []Secret{Secret("public")} },
			pkt: func(testing.TB) []byte { return communityMsg(1, "public", pdu) }, insec: true},
		{name: "v1 allowed community", cfg: func(c *Config) { c.Communities = []Secret{Secret("public")} },
			pkt: func(testing.TB) []byte { return communityMsg(0, "public", v1TrapPDU(spec)) }, insec: true},
		{name: "v2c wrong community", cfg: func(c *Config) { c.Communities = []Secret{Secret("public")} },
			pkt: func(testing.TB) []byte { return communityMsg(1, "publi", pdu) }, reason: ReasonBadCommunity},
		{name: "v1 message with v2 PDU", cfg: func(c *Config) { c.Communities = []Secret{Secret("public")} },
			pkt: func(testing.TB) []byte { return communityMsg(0, "public", pdu) }, reason: ReasonUnsupportedPDU},
		{name: "authNoPriv refused", pkt: func(t testing.TB) []byte {
			m := authPrivMsg(labUser(), pdu, 1, 1, 1)
			m.flags = flagAuth
			return m.build(t)
		}, reason: ReasonSecurityLevel},
		{name: "authNoPriv allowed", cfg: func(c *Config) { c.MinSecurity = AuthNoPriv }, pkt: func(t testing.TB) []byte {
			m := authPrivMsg(labUser(), pdu, 1, 1, 1)
			m.flags = flagAuth
			return m.build(t)
		}, insec: true},
		{name: "noAuthNoPriv refused", pkt: func(t testing.TB) []byte {
			m := authPrivMsg(labUser(), pdu, 1, 1, 1)
			m.flags = 0
			return m.build(t)
		}, reason: ReasonSecurityLevel},
		{name: "priv without auth", pkt: func(t testing.TB) []byte {
			m := authPrivMsg(labUser(), pdu, 1, 1, 1)
			m.flags = flagAuth | flagPriv
			b := m.build(t)
			i := bytes.Index(b, []byte{0x04, 0x01, flagAuth | flagPriv})
			b[i+2] = flagPriv
			return b
		}, reason: ReasonSecurityLevel},
		{name: "security model 2", pkt: func(t testing.TB) []byte {
			m := authPrivMsg(labUser(), pdu, 1, 1, 1)
			m.flags, m.secModel = 0, 2
			return m.build(t)
		}, reason: ReasonSecurityModel},
		{name: "unknown user", pkt: func(t testing.TB) []byte { return authPrivMsg(otherUser, pdu, 1, 1, 1).build(t) }, reason: ReasonUnknownUser},
		{name: "engine not allowed", cfg: func(c *Config) { c.Users[0].EngineIDs = [][]byte{[]byte("other-engine")} },
			pkt: good, reason: ReasonUnknownEngine},
		{name: "engine allowed", cfg: func(c *Config) { c.Users[0].EngineIDs = [][]byte{labEngineID} }, pkt: good},
		{name: "wrong auth key", pkt: func(t testing.TB) []byte { return authPrivMsg(wrongAuth, pdu, 1, 1, 1).build(t) }, reason: ReasonAuthFailed},
		{name: "flipped last byte", pkt: func(t testing.TB) []byte { b := good(t); return flip(b, len(b)-1) }, reason: ReasonAuthFailed},
		{name: "flipped MAC byte", pkt: func(t testing.TB) []byte {
			b := good(t)
			m, _ := parseMessage(b)
			off, _ := offsetIn(b, m.usm.authParams)
			return flip(b, off+3)
		}, reason: ReasonAuthFailed},
		{name: "flipped salt byte", pkt: func(t testing.TB) []byte {
			b := good(t)
			m, _ := parseMessage(b)
			off, _ := offsetIn(b, m.usm.privParams)
			return flip(b, off)
		}, reason: ReasonAuthFailed},
		{name: "truncated MAC", pkt: func(t testing.TB) []byte {
			b := good(t)
			m, _ := parseMessage(b)
			off, _ := offsetIn(b, m.usm.authParams)
			return flip(b, off-1) // length byte 12 -> 13: the BER no longer fits
		}, reason: ReasonMalformed},
		{name: "wrong priv key", pkt: func(t testing.TB) []byte { return authPrivMsg(wrongPriv, pdu, 1, 1, 1).build(t) }, reason: ReasonDecryptFailed},
		{name: "boots at maximum", pkt: func(t testing.TB) []byte { return authPrivMsg(labUser(), pdu, maxInt31, 1, 1).build(t) }, reason: ReasonTimeWindow},
		{name: "inform refused", pkt: func(t testing.TB) []byte { return authPrivMsg(labUser(), inform, 1, 1, 1).build(t) }, reason: ReasonUnsupportedPDU},
		{name: "not a PET", pkt: func(t testing.TB) []byte { return authPrivMsg(labUser(), otherTrap, 1, 1, 1).build(t) }, reason: ReasonNotPET},
		{name: "short PET", pkt: func(t testing.TB) []byte { return authPrivMsg(labUser(), shortPDU, 1, 1, 1).build(t) }, reason: ReasonBadPET},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Users: []User{labUser()}}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			r := unitReceiver(t, cfg, newFakeClock())
			trap, ok := feed(r, tc.pkt(t), srcA)
			st := r.Stats()
			if tc.reason != "" {
				if ok {
					t.Fatalf("accepted, want drop %q", tc.reason)
				}
				if st.Dropped[tc.reason] != 1 || st.DroppedTotal() != 1 {
					t.Fatalf("dropped %v, want one %q", st.Dropped, tc.reason)
				}
				return
			}
			if !ok {
				t.Fatalf("dropped %v, want accepted", st.Dropped)
			}
			if trap.Insecure != tc.insec || (st.AcceptedInsecure == 1) != tc.insec || st.Accepted != 1 {
				t.Fatalf("Insecure=%v stats=%+v, want insecure %v", trap.Insecure, st, tc.insec)
			}
			if trap.PET.Key() != expectedKey(spec) {
				t.Fatalf("key %v, want %v", trap.PET.Key(), expectedKey(spec))
			}
			if trap.Source != srcA {
				t.Fatalf("source %v", trap.Source)
			}
		})
	}
}

func expectedKey(s petSpec) Key {
	dt := s.eventType
	if s.deassert {
		dt |= 0x80
	}
	return Key{RecordID: s.seq, Timestamp: s.ts + 883612800, Generator: s.owner, SensorType: s.sensorType,
		SensorNumber: s.sensor, EventDirType: dt, EventData: s.data}
}

// TestReplayAndTimeWindow follows one engine through replays, a reboot
// and time going backwards.
func TestReplayAndTimeWindow(t *testing.T) {
	clk := newFakeClock()
	r := unitReceiver(t, Config{Users: []User{labUser()}}, clk)
	pdu := v2TrapPDU(defaultPETSpec(), 1)
	msg := func(boots, tm, id int64) []byte { return authPrivMsg(labUser(), pdu, boots, tm, id).build(t) }

	first := msg(5, 1000, 1)
	steps := []struct {
		name    string
		advance time.Duration
		pkt     []byte
		reason  Reason
	}{
		{"first message learns the engine", 0, first, ""},
		{"exact replay", 0, first, ReasonReplay},
		{"new message same time", 0, msg(5, 1000, 2), ""},
		{"replay 100 s later", 100 * time.Second, first, ReasonReplay},
		{"later message", 0, msg(5, 1100, 3), ""},
		{"slightly older message inside the window", 0, msg(5, 960, 4), ""},
		{"older than the window", 0, msg(5, 940, 5), ReasonTimeWindow},
		{"replay after the cache horizon is outside the window", 400 * time.Second, first, ReasonTimeWindow},
		{"boots going backwards", 0, msg(4, 999999, 6), ReasonTimeWindow},
		{"reboot: boots up, time restarts", 0, msg(6, 3, 7), ""},
		{"old boots after reboot", 0, msg(5, 1600, 8), ReasonTimeWindow},
	}
	for _, s := range steps {
		clk.advance(s.advance)
		before := r.Stats()
		_, ok := feed(r, s.pkt, srcA)
		after := r.Stats()
		if s.reason == "" {
			if !ok {
				t.Fatalf("%s: dropped %v", s.name, after.Dropped)
			}
			continue
		}
		if ok || after.Dropped[s.reason] != before.Dropped[s.reason]+1 {
			t.Fatalf("%s: accepted=%v dropped %v, want %q", s.name, ok, after.Dropped, s.reason)
		}
	}
}

func TestReplayCacheFullFailsClosed(t *testing.T) {
	clk := newFakeClock()
	r := unitReceiver(t, Config{Users: []User{labUser()}, ReplayCacheSize: 3}, clk)
	pdu := v2TrapPDU(defaultPETSpec(), 1)
	for id := int64(1); id <= 3; id++ {
		if _, ok := feed(r, authPrivMsg(labUser(), pdu, 1, 10, id).build(t), srcA); !ok {
			t.Fatalf("message %d dropped: %v", id, r.Stats().Dropped)
		}
	}
	if _, ok := feed(r, authPrivMsg(labUser(), pdu, 1, 10, 4).build(t), srcA); ok {
		t.Fatal("fourth message accepted with a full replay cache")
	}
	if n := r.Stats().Dropped[ReasonReplayCacheFull]; n != 1 {
		t.Fatalf("replay_cache_full = %d", n)
	}
	clk.advance(2*timeWindow + time.Second) // entries expire
	if _, ok := feed(r, authPrivMsg(labUser(), pdu, 1, 400, 5).build(t), srcA); !ok {
		t.Fatalf("message after expiry dropped: %v", r.Stats().Dropped)
	}
	if n := r.Stats().ReplayEntries; n != 1 {
		t.Fatalf("replay entries %d, want 1", n)
	}
}

// TestSpoofedSourceFloodBounded sends from many distinct (spoofed) source
// addresses: every table stays within its bound and the global bucket
// caps what passes.
func TestSpoofedSourceFloodBounded(t *testing.T) {
	clk := newFakeClock()
	cfg := Config{Users: []User{labUser()}, MaxSources: 1000, MaxEngines: 10, ReplayCacheSize: 100,
		GlobalBurst: 500, GlobalRate: 1, SourceBurst: 5, SourceRate: 1}
	r := unitReceiver(t, cfg, clk)
	pkt := authPrivMsg(labUser(), v2TrapPDU(defaultPETSpec(), 1), 1, 1, 1).build(t)
	const n = 50000
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		feed(r, pkt, netip.AddrPortFrom(a, 162))
	}
	st := r.Stats()
	if st.Sources > cfg.MaxSources || st.Engines > cfg.MaxEngines || st.ReplayEntries > cfg.ReplayCacheSize {
		t.Fatalf("tables beyond bounds: %+v", st)
	}
	if st.Received != n {
		t.Fatalf("received %d", st.Received)
	}
	passed := n - st.Dropped[ReasonRateLimitedGlobal]
	if passed != uint64(cfg.GlobalBurst) {
		t.Fatalf("%d passed the global bucket, want %d (dropped %v)", passed, cfg.GlobalBurst, st.Dropped)
	}
	if st.Accepted != 1 || st.Dropped[ReasonReplay] != uint64(cfg.GlobalBurst-1) {
		t.Fatalf("want one accepted and the rest replays: %+v", st)
	}
}

func TestQueueFullCounted(t *testing.T) {
	r := unitReceiver(t, Config{Users: []User{labUser()}, QueueLen: 2}, newFakeClock())
	pdu := v2TrapPDU(defaultPETSpec(), 1)
	for id := int64(1); id <= 5; id++ {
		r.handlePacket(authPrivMsg(labUser(), pdu, 1, 1, id).build(t), srcA)
	}
	st := r.Stats()
	if st.Accepted != 2 || st.Dropped[ReasonQueueFull] != 3 {
		t.Fatalf("stats %+v, want 2 accepted and 3 queue_full", st)
	}
}

func TestConfigValidation(t *testing.T) {
	short := labUser()
	short.AuthPassphrase = Secret("short")
	noPriv := labUser()
	noPriv.Priv = PrivNone
	privNoAuth := User{Name: "x", Priv: PrivAES128, PrivPassphrase: Secret("12345678")}
	badEngine := labUser()
	badEngine.EngineIDs = [][]byte{{1, 2}}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"short passphrase", Config{Users: []User{short}}, "shorter than 8"},
		{"authNoPriv user under authPriv", Config{Users: []User{noPriv}}, "below the minimum"},
		{"priv without auth", Config{Users: []User{privNoAuth}, MinSecurity: NoAuthNoPriv}, "privacy without authentication"},
		{"duplicate user", Config{Users: []User{labUser(), labUser()}}, "twice"},
		{"bad engine id", Config{Users: []User{badEngine}}, "5 to 32 bytes"},
		{"empty community", Config{Communities: []Secret{nil}}, "empty"},
		{"bad level", Config{MinSecurity: 7}, "MinSecurity"},
		{"empty user name", Config{Users: []User{{Auth: AuthSHA, AuthPassphrase: Secret("12345678"), Priv: PrivAES128, PrivPassphrase: Secret("12345678")}}}, "1 to 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newReceiver(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "pet-auth-pass") || strings.Contains(err.Error(), "short\"") {
				t.Fatalf("error leaks a passphrase: %v", err)
			}
		})
	}
}

func TestSecretsNeverFormatted(t *testing.T) {
	u := labUser()
	cfg := Config{Addr: "127.0.0.1:0", Users: []User{u}, Communities: []Secret{Secret("community-secret")}}
	var logBuf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l.Info("cfg", "config", cfg, "user", u, "secret", u.AuthPassphrase)
	outputs := []string{
		fmt.Sprintf("%v %+v %#v %s %x %q", u, u, u, u.AuthPassphrase, u.PrivPassphrase, u.AuthPassphrase),
		fmt.Sprintf("%v %+v", cfg, cfg.Communities),
		logBuf.String(),
	}
	for _, out := range outputs {
		for _, s := range []string{"pet-auth-pass", "pet-priv-pass", "community-secret",
			fmt.Sprintf("%x", "pet-auth-pass"), "112 101 116"} {
			if strings.Contains(out, s) {
				t.Fatalf("secret %q in output %q", s, out)
			}
		}
	}
}
