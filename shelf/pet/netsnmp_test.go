package pet

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Interoperability tests against net-snmp's snmptrap (Debian package
// "snmp"), sending PETs built like the lab's snmp/pet.py and send-pet.sh
// (copies in testdata/). They are skipped when snmptrap is missing.

const labEngineHex = "0x80001f88804c414253494d01"

func requireSnmptrap(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("snmptrap"); err != nil {
		t.Skip("snmptrap (net-snmp) not installed")
	}
}

// snmptrap runs net-snmp's snmptrap with an isolated configuration and
// persistent directory and sends the PET s to target.
func snmptrap(t *testing.T, target string, s petSpec, args ...string) {
	t.Helper()
	dir := t.TempDir()
	ent := "1.3.6.1.4.1.3183.1.1"
	hexPET := hex.EncodeToString(s.payload())
	var full []string
	full = append(full, args...)
	if slices.Contains(args, "1") && args[0] == "-v" && args[1] == "1" {
		full = append(full, "udp:"+target, ent, "127.0.0.20", "6", fmt.Sprint(s.specific()), "", ent+".1", "x", hexPET)
	} else {
		full = append(full, "udp:"+target, "", fmt.Sprintf("%s.0.%d", ent, s.specific()), ent+".1", "x", hexPET)
	}
	cmd := exec.Command("snmptrap", full...)
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+dir, "SNMPCONFPATH="+dir, "MIBS=", "MIBDIRS="+dir, "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("snmptrap %s: %v\n%s", strings.Join(redactArgs(full), " "), err, out)
	}
}

// redactArgs hides passphrases in failure messages.
func redactArgs(a []string) []string {
	out := slices.Clone(a)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == "-A" || out[i] == "-X" || out[i] == "-c" {
			out[i+1] = "REDACTED"
		}
	}
	return out
}

func v3Args(user, authProto, authPass, privPass, level string, extra ...string) []string {
	a := []string{"-v", "3", "-u", user, "-l", level, "-e", labEngineHex}
	if level != "noAuthNoPriv" {
		a = append(a, "-a", authProto, "-A", authPass)
	}
	if level == "authPriv" {
		a = append(a, "-x", "AES", "-X", privPass)
	}
	return append(a, extra...)
}

func labV3Args(extra ...string) []string {
	return v3Args("petuser", "SHA", "pet-auth-pass", "pet-priv-pass", "authPriv", extra...)
}

func listenTest(t *testing.T, cfg Config) *Receiver {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	r, err := Listen(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func nextTrap(t *testing.T, r *Receiver) Trap {
	t.Helper()
	select {
	case tr := <-r.Traps():
		return tr
	case <-time.After(10 * time.Second):
		t.Fatalf("no trap delivered; stats %+v", r.Stats())
	}
	return Trap{}
}

// waitReceived waits until the receiver has read and accounted for
// (accepted or dropped) n packets in total.
func waitReceived(t *testing.T, r *Receiver, n uint64) Stats {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := r.Stats()
		if st.Received >= n && st.Accepted+st.DroppedTotal() >= n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d packets, want %d; stats %+v", st.Received, n, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func noTrap(t *testing.T, r *Receiver) {
	t.Helper()
	select {
	case tr := <-r.Traps():
		t.Fatalf("unexpected trap delivered: %+v", tr)
	default:
	}
}

func TestNetSNMPv3AuthPrivDecoded(t *testing.T) {
	requireSnmptrap(t)
	hotswap := petSpec{sensorType: 0xf0, eventType: 0x6f, offset: 0x04, severity: 0x02, owner: 0x84,
		sensor: 0x00, entity: 0xa0, instance: 0x61, data: [3]byte{0xa4, 0x33, 0x00}, seq: 0x1234,
		ts: 912345678, guid: "LABSIM-ATCASH-01", oem: []byte{0x43, 'a', 'b', 'c', 0xc1}}
	deassert := defaultPETSpec()
	deassert.deassert, deassert.data[0] = true, 0x09
	labStyle := deassert
	labStyle.deassertInEventType = true
	tests := []struct {
		name string
		user User
		args []string
		spec petSpec
	}{
		{"SHA lab default", labUser(), labV3Args(), defaultPETSpec()},
		{"SHA-256 hot-swap M4", sha256User(), v3Args("petuser256", "SHA-256", "pet-auth-pass-256", "pet-priv-pass-256", "authPriv"), hotswap},
		{"deassertion per PET spec (bit 7)", labUser(), labV3Args(), deassert},
		{"deassertion as pet.py sends it (bit 15)", labUser(), labV3Args(), labStyle},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := listenTest(t, Config{Users: []User{tc.user}})
			snmptrap(t, r.Addr().String(), tc.spec, tc.args...)
			tr := nextTrap(t, r)
			if tr.Version != V3 || tr.Insecure || tr.User != tc.user.Name || string(tr.EngineID) != string(labEngineID) {
				t.Fatalf("trap meta %v insecure=%v user=%q engine=%x", tr.Version, tr.Insecure, tr.User, tr.EngineID)
			}
			if !tr.Source.Addr().IsLoopback() {
				t.Fatalf("source %v", tr.Source)
			}
			checkPET(t, tr.PET, tc.spec)
		})
	}
}

// checkPET compares every decoded field with the spec the PET was built
// from.
func checkPET(t *testing.T, p PET, s petSpec) {
	t.Helper()
	var guid [16]byte
	copy(guid[:], s.guid)
	type kv struct {
		name      string
		got, want any
	}
	for _, c := range []kv{
		{"specific", p.Specific, s.specific()},
		{"sensor type", p.SensorType, s.sensorType},
		{"event type", p.EventType, s.eventType},
		{"deassertion", p.Deassertion, s.deassert},
		{"offset", p.Offset, s.offset},
		{"guid", p.GUID, guid},
		{"sequence", p.Sequence, s.seq},
		{"timestamp", p.LocalTimestamp, s.ts},
		{"utc offset", p.UTCOffset, UTCOffsetUnspecified},
		{"severity", p.Severity, s.severity},
		{"sensor device", p.SensorDevice, s.owner},
		{"sensor number", p.SensorNumber, s.sensor},
		{"entity", p.Entity, s.entity},
		{"instance", p.EntityInstance, s.instance},
		{"event data", [3]byte(p.EventData[:3]), s.data},
		{"manufacturer", p.ManufacturerID, uint32(0x315a)},
		{"system id", p.SystemID, uint16(1)},
		{"oem", string(p.OEM), string(s.oem)},
		{"key", p.Key(), expectedKey(s)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// udpProxy forwards packets to a receiver from its own source address and
// keeps a copy of each, so that a test can replay the exact bytes.
type udpProxy struct {
	in, out *net.UDPConn
	to      *net.UDPAddr
	mu      sync.Mutex
	pkts    [][]byte
}

func newProxy(t *testing.T, srcIP string, to net.Addr) *udpProxy {
	t.Helper()
	in, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(srcIP)})
	if err != nil {
		t.Fatal(err)
	}
	p := &udpProxy{in: in, out: out, to: to.(*net.UDPAddr)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := in.ReadFromUDP(buf)
			if err != nil {
				return
			}
			pkt := append([]byte(nil), buf[:n]...)
			p.mu.Lock()
			p.pkts = append(p.pkts, pkt)
			p.mu.Unlock()
			_, _ = out.WriteToUDP(pkt, p.to)
		}
	}()
	t.Cleanup(func() { in.Close(); out.Close(); <-done })
	return p
}

func (p *udpProxy) addr() string { return p.in.LocalAddr().String() }

func (p *udpProxy) packet(t *testing.T, i int) []byte {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if i >= len(p.pkts) {
		t.Fatalf("proxy captured %d packets, want packet %d", len(p.pkts), i)
	}
	return slices.Clone(p.pkts[i])
}

func (p *udpProxy) send(t *testing.T, pkt []byte) {
	t.Helper()
	if _, err := p.out.WriteToUDP(pkt, p.to); err != nil {
		t.Fatalf("proxy send: %v", err)
	}
}

func TestNetSNMPReplayAndTamperingRejected(t *testing.T) {
	requireSnmptrap(t)
	r := listenTest(t, Config{Users: []User{labUser()}})
	px := newProxy(t, "127.0.0.2", r.Addr())
	snmptrap(t, px.addr(), defaultPETSpec(), labV3Args()...)
	tr := nextTrap(t, r)
	if tr.Source.Addr() != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("trap from %v, want the proxy's 127.0.0.2", tr.Source)
	}
	orig := px.packet(t, 0)

	flipped := func(i int) []byte { b := slices.Clone(orig); b[i] ^= 0x20; return b }
	m, err := parseMessage(orig)
	if err != nil {
		t.Fatal(err)
	}
	macOff, _ := offsetIn(orig, m.usm.authParams)
	cases := []struct {
		name   string
		pkt    []byte
		reason Reason
	}{
		{"exact replay", orig, ReasonReplay},
		{"second exact replay", orig, ReasonReplay},
		{"flipped byte in encrypted PDU", flipped(len(orig) - 5), ReasonAuthFailed},
		{"flipped byte in MAC", flipped(macOff), ReasonAuthFailed},
		{"flipped msgID", flipped(msgIDLast(t, orig)), ReasonAuthFailed},
	}
	for i, c := range cases {
		before := r.Stats()
		px.send(t, c.pkt)
		st := waitReceived(t, r, uint64(i+2))
		if st.Dropped[c.reason] != before.Dropped[c.reason]+1 {
			t.Fatalf("%s: dropped %v, want one more %q", c.name, st.Dropped, c.reason)
		}
		noTrap(t, r)
	}
}

func TestNetSNMPSecurityPolicy(t *testing.T) {
	requireSnmptrap(t)
	restricted := labUser()
	restricted.EngineIDs = [][]byte{[]byte("some-other-engine")}
	public := []Secret{Secret("public")}
	tests := []struct {
		name   string
		cfg    Config
		args   []string
		reason Reason // "" = accepted
		insec  bool
	}{
		{"v2c refused by default", Config{Users: []User{labUser()}}, []string{"-v", "2c", "-c", "public"}, ReasonInsecureVersion, false},
		{"v1 refused by default", Config{Users: []User{labUser()}}, []string{"-v", "1", "-c", "public"}, ReasonInsecureVersion, false},
		{"v2c with allowed community", Config{Communities: public}, []string{"-v", "2c", "-c", "public"}, "", true},
		{"v1 with allowed community", Config{Communities: public}, []string{"-v", "1", "-c", "public"}, "", true},
		{"v2c with other community", Config{Communities: public}, []string{"-v", "2c", "-c", "private"}, ReasonBadCommunity, false},
		{"authNoPriv refused", Config{Users: []User{labUser()}},
			v3Args("petuser", "SHA", "pet-auth-pass", "", "authNoPriv"), ReasonSecurityLevel, false},
		{"noAuthNoPriv refused", Config{Users: []User{labUser()}},
			v3Args("petuser", "", "", "", "noAuthNoPriv"), ReasonSecurityLevel, false},
		{"authNoPriv when allowed", Config{Users: []User{labUser()}, MinSecurity: AuthNoPriv},
			v3Args("petuser", "SHA", "pet-auth-pass", "", "authNoPriv"), "", true},
		{"wrong auth passphrase", Config{Users: []User{labUser()}},
			v3Args("petuser", "SHA", "wrong-auth-pass", "pet-priv-pass", "authPriv"), ReasonAuthFailed, false},
		{"SHA-256 sender for a SHA user", Config{Users: []User{labUser()}},
			v3Args("petuser", "SHA-256", "pet-auth-pass", "pet-priv-pass", "authPriv"), ReasonAuthFailed, false},
		{"wrong priv passphrase", Config{Users: []User{labUser()}},
			v3Args("petuser", "SHA", "pet-auth-pass", "wrong-priv-pass", "authPriv"), ReasonDecryptFailed, false},
		{"unknown user", Config{Users: []User{labUser()}},
			v3Args("someone", "SHA", "pet-auth-pass", "pet-priv-pass", "authPriv"), ReasonUnknownUser, false},
		{"engine not allowed for user", Config{Users: []User{restricted}}, labV3Args(), ReasonUnknownEngine, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := listenTest(t, tc.cfg)
			snmptrap(t, r.Addr().String(), defaultPETSpec(), tc.args...)
			if tc.reason == "" {
				tr := nextTrap(t, r)
				if tr.Insecure != tc.insec {
					t.Fatalf("Insecure = %v", tr.Insecure)
				}
				checkPET(t, tr.PET, defaultPETSpec())
				if st := r.Stats(); st.AcceptedInsecure != 1 && tc.insec {
					t.Fatalf("insecure not counted: %+v", st)
				}
				return
			}
			st := waitReceived(t, r, 1)
			if st.Dropped[tc.reason] != 1 || st.DroppedTotal() != 1 {
				t.Fatalf("dropped %v, want one %q", st.Dropped, tc.reason)
			}
			noTrap(t, r)
		})
	}
}

func TestNetSNMPTimeWindow(t *testing.T) {
	requireSnmptrap(t)
	r := listenTest(t, Config{Users: []User{labUser()}})
	steps := []struct {
		bootsTime string
		reason    Reason
	}{
		{"5,1000", ""},
		{"5,1100", ""},
		{"4,5000", ReasonTimeWindow}, // boots going backwards
		{"5,900", ReasonTimeWindow},  // older than 150 s before the latest
		{"5,1000", ""},               // inside the window, new msgID: accepted
		{"6,1", ""},                  // reboot
		{"5,2000", ReasonTimeWindow}, // previous boot
	}
	for i, s := range steps {
		before := r.Stats()
		snmptrap(t, r.Addr().String(), defaultPETSpec(), labV3Args("-Z", s.bootsTime)...)
		if s.reason == "" {
			nextTrap(t, r)
			continue
		}
		st := waitReceived(t, r, uint64(i+1))
		if st.Dropped[s.reason] != before.Dropped[s.reason]+1 {
			t.Fatalf("step %d (-Z %s): dropped %v, want %q", i, s.bootsTime, st.Dropped, s.reason)
		}
		noTrap(t, r)
	}
}

// TestNetSNMPFloodFromOneSource floods the receiver with 5,000 copies of
// a captured trap from one source; the source is rate limited, the tables
// stay bounded and a trap from another source still gets through. The
// receiver's clock is frozen, so the token buckets do not refill and the
// counts are exact.
func TestNetSNMPFloodFromOneSource(t *testing.T) {
	requireSnmptrap(t)
	clk := newFakeClock()
	cfg := Config{Users: []User{labUser()}, SourceBurst: 50, SourceRate: 1, GlobalBurst: 1000, GlobalRate: 1,
		MaxSources: 16, now: clk.now}
	r := listenTest(t, cfg)
	flood := newProxy(t, "127.0.0.2", r.Addr())
	snmptrap(t, flood.addr(), defaultPETSpec(), labV3Args("-Z", "1,100")...)
	nextTrap(t, r)
	pkt := flood.packet(t, 0)

	const n = 5000
	for i := 0; i < n; i += 100 {
		for j := 0; j < 100; j++ {
			flood.send(t, pkt)
		}
		// Pace the flood by what the receiver has read, so that the
		// kernel socket buffer never overflows and every packet is
		// counted by the receiver.
		waitReceived(t, r, uint64(1+i+100))
	}
	st := r.Stats()
	wantLimited := uint64(n - (cfg.SourceBurst - 1))
	if st.Dropped[ReasonRateLimitedSource] != wantLimited || st.Dropped[ReasonReplay] != uint64(cfg.SourceBurst-1) {
		t.Fatalf("dropped %v, want %d rate_limited_source and %d replay", st.Dropped, wantLimited, cfg.SourceBurst-1)
	}
	if st.Sources > cfg.MaxSources || st.ReplayEntries != 1 || st.Engines != 1 {
		t.Fatalf("tables: %+v", st)
	}

	// Another source, while the flooding one is still limited.
	other := defaultPETSpec()
	other.seq = 2
	snmptrap(t, r.Addr().String(), other, labV3Args("-Z", "1,100")...)
	tr := nextTrap(t, r)
	if tr.PET.Sequence != 2 || tr.Source.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("got trap seq %d from %v", tr.PET.Sequence, tr.Source)
	}
	snmptrap(t, flood.addr(), other, labV3Args("-Z", "1,100")...)
	st2 := waitReceived(t, r, st.Received+2)
	if st2.Dropped[ReasonRateLimitedSource] != wantLimited+1 {
		t.Fatalf("the flooding source is no longer limited: %v", st2.Dropped)
	}
}

// TestNetSNMPHandlerAndClose uses the callback delivery and checks that
// Close is idempotent and that cancelling the context stops the receiver.
func TestNetSNMPHandlerAndClose(t *testing.T) {
	requireSnmptrap(t)
	got := make(chan Trap, 1)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := Listen(ctx, Config{Addr: "127.0.0.1:0", Users: []User{labUser()}, Logger: quietLogger(),
		Handler: func(tr Trap) { got <- tr }})
	if err != nil {
		t.Fatal(err)
	}
	snmptrap(t, r.Addr().String(), defaultPETSpec(), labV3Args()...)
	select {
	case tr := <-got:
		checkPET(t, tr.PET, defaultPETSpec())
	case <-time.After(10 * time.Second):
		t.Fatalf("handler not called; stats %+v", r.Stats())
	}
	cancel()
	<-r.done
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPETBuilderMatchesLabScript checks the test PET builder against the
// lab's pet.py (copied to testdata), byte for byte except the timestamp,
// which pet.py takes from the clock.
func TestPETBuilderMatchesLabScript(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	tests := []struct {
		args []string
		spec func(*petSpec)
	}{
		{nil, func(*petSpec) {}},
		{[]string{"--deassert", "--seq", "0x1234", "--owner", "0x84", "--sensor", "0", "--sensor-type", "0xf0",
			"--event-type", "0x6f", "--offset", "4", "--data2", "0x33", "--data3", "0", "--severity", "2"},
			func(s *petSpec) {
				s.deassert, s.deassertInEventType, s.seq, s.owner, s.sensor = true, true, 0x1234, 0x84, 0
				s.sensorType, s.eventType, s.offset, s.data, s.severity = 0xf0, 0x6f, 4, [3]byte{4, 0x33, 0}, 2
			}},
	}
	for _, tc := range tests {
		out, err := exec.Command("python3", append([]string{filepath.Join("testdata", "pet.py")}, tc.args...)...).Output()
		if err != nil {
			t.Fatalf("pet.py: %v", err)
		}
		var spec uint32
		var hx string
		if _, err := fmt.Sscan(string(out), &spec, &hx); err != nil {
			t.Fatalf("pet.py output %q: %v", out, err)
		}
		b, err := hex.DecodeString(hx)
		if err != nil {
			t.Fatal(err)
		}
		s := defaultPETSpec()
		tc.spec(&s)
		want := s.payload()
		copy(b[18:22], want[18:22])
		if spec != s.specific() || hex.EncodeToString(b) != hex.EncodeToString(want) {
			t.Fatalf("pet.py %v: %d %x\nbuilder: %d %x", tc.args, spec, b, s.specific(), want)
		}
	}
}

// msgIDLast is the offset of the last byte of msgID in a v3 message with
// a 3-byte outer header ("30 81 LL").
func msgIDLast(t *testing.T, b []byte) int {
	t.Helper()
	// 30 81 LL | 02 01 03 | 30 LL | 02 NN <msgID>
	if len(b) < 12 || b[0] != 0x30 || b[1] != 0x81 || b[6] != 0x30 || b[8] != 0x02 {
		t.Fatalf("unexpected message layout % x", b[:min(len(b), 12)])
	}
	return 9 + int(b[9])
}
