package shelf_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/hpi"
	"hpiagent/internal/labshelf"
	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/pet"
)

// PETs are sent with net-snmp's snmptrap (Debian package "snmp"), built
// like the reference lab's snmp/pet.py.

const monEngineHex = "0x80001f88804c414253494d01"

func monPETUser() pet.User {
	return pet.User{Name: "petuser", Auth: pet.AuthSHA, AuthPassphrase: pet.Secret("pet-auth-pass"),
		Priv: pet.PrivAES128, PrivPassphrase: pet.Secret("pet-priv-pass")}
}

// monPET is what a shelf manager puts into the PET of a SEL record.
type monPET struct {
	sensorType, eventType, offset uint8
	deassert                      bool
	owner, sensor                 uint8
	data                          [3]byte
	seq                           uint16
	ts                            uint32 // seconds since 1998-01-01
}

// petOfRecord is the PET a shelf manager sends for SEL record r.
func petOfRecord(r ipmi.SELRecord) monPET {
	return monPET{sensorType: r.SensorType, eventType: r.EventType & 0x7f, offset: r.EventData[0] & 0x0f,
		deassert: r.Deassert, owner: uint8(r.Generator), sensor: r.Sensor, data: r.EventData,
		seq: r.RecordID, ts: r.RawTime - 883612800}
}

func (s monPET) specific() uint32 {
	sp := uint32(s.sensorType)<<16 | uint32(s.eventType)<<8 | uint32(s.offset)
	if s.deassert {
		sp |= 0x80
	}
	return sp
}

func (s monPET) payload() []byte {
	b := make([]byte, 16)
	copy(b, "LABSIM-ATCASH-01")
	b = binary.BigEndian.AppendUint16(b, s.seq)
	b = binary.BigEndian.AppendUint32(b, s.ts)
	b = binary.BigEndian.AppendUint16(b, 0xffff)
	b = append(b, 0x20, 0x20, 0x02, s.owner, s.sensor, 0xa0, 0x60)
	b = append(b, s.data[0], s.data[1], s.data[2], 0xff, 0xff, 0xff, 0xff, 0xff)
	b = append(b, 0x19)
	b = binary.BigEndian.AppendUint32(b, 0x0000315a)
	b = binary.BigEndian.AppendUint16(b, 0x0001)
	return append(b, 0xc1)
}

// sendPET runs snmptrap with an isolated configuration.
func sendPET(t *testing.T, target string, s monPET, args ...string) {
	t.Helper()
	dir := t.TempDir()
	ent := "1.3.6.1.4.1.3183.1.1"
	full := append(slices.Clone(args), "udp:"+target, "", fmt.Sprintf("%s.0.%d", ent, s.specific()), ent+".1", "x", hex.EncodeToString(s.payload()))
	cmd := exec.Command("snmptrap", full...)
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+dir, "SNMPCONFPATH="+dir, "MIBS=", "MIBDIRS="+dir, "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("snmptrap %s: %v\n%s", args[:2], err, out)
	}
}

func v3AuthPriv() []string {
	return []string{"-v", "3", "-u", "petuser", "-l", "authPriv", "-e", monEngineHex,
		"-a", "SHA", "-A", "pet-auth-pass", "-x", "AES", "-X", "pet-priv-pass"}
}

// capProxy forwards datagrams to a receiver from its own address and
// keeps each, so that a test can send the exact bytes again.
type capProxy struct {
	in, out *net.UDPConn
	to      *net.UDPAddr
	mu      sync.Mutex
	pkts    [][]byte
}

func newCapProxy(t *testing.T, to net.Addr) *capProxy {
	t.Helper()
	in, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &capProxy{in: in, out: out, to: to.(*net.UDPAddr)}
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

func (p *capProxy) last(t *testing.T) []byte {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pkts) == 0 {
		t.Fatal("proxy captured nothing")
	}
	return slices.Clone(p.pkts[len(p.pkts)-1])
}

func (p *capProxy) send(pkt []byte) error {
	_, err := p.out.WriteToUDP(pkt, p.to)
	return err
}

func waitPET(ctx context.Context, t *testing.T, rc *pet.Receiver, what string, cond func(pet.Stats) bool) pet.Stats {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		st := rc.Stats()
		if cond(st) {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v; stats %+v", what, ctx.Err(), st)
		case <-deadline:
			t.Fatalf("%s: not within 20 s; stats %+v", what, st)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// sensorLogEntries counts the event log's sensor events of sensor type
// st, number num.
func sensorLogEntries(d *hpi.Domain, st uint8, num hpi.SensorNum) int {
	n := 0
	for _, e := range d.EventLogEntries() {
		if e.Event.Type == hpi.EventSensor && e.Event.Sensor.SensorType == hpi.SensorType(st) && e.Event.Sensor.Num == num {
			n++
		}
	}
	return n
}

// TestMonitorPETFromLab: a PET (snmptrap v3 authPriv) for an event in the
// shelf manager's SEL lands in the event log once (the trap makes the SEL
// be read; the record is what is logged); a replayed trap and a v2c trap
// are refused and counted; a trap naming a polled sensor makes an
// immediate targeted read; a trap that the SEL does not confirm never
// reaches the domain; a flood of traps does not make sensor polls late.
func TestMonitorPETFromLab(t *testing.T) {
	labshelf.RequireTools(t, "snmptrap")
	t.Parallel()
	sh, sess, ctx := labMonitorSession(t)
	const hsInterval = 200 * time.Millisecond
	cfg := shelf.MonitorConfig{Name: "lab", SELInterval: 500 * time.Millisecond,
		Poll: shelf.PollConfig{Default: time.Hour, LateAfter: hsInterval, // late: a whole interval missed
			ByType: map[uint8]time.Duration{shelf.SensorTypeHotSwap: hsInterval}}}
	r := startMonitor(ctx, t, sess, cfg)
	rc, err := pet.Listen(ctx, pet.Config{Addr: "127.0.0.1:0", Users: []pet.User{monPETUser()}, Logger: monLogger(t),
		Handler: r.m.Trap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	px := newCapProxy(t, rc.Addr())

	ai, err := ipmi.GetAddressInfo(ctx, sess, ipmi.Addr{}, ipmi.ByFRU(0))
	if err != nil {
		t.Fatal(err)
	}
	local := ai.IPMBAddress
	sdrs, err := ipmi.ReadSDRRepository(ctx, sess, ipmi.Addr{}, ipmi.MainSDR)
	if err != nil {
		t.Fatal(err)
	}
	sensors := shelf.SensorsOf(sdrs, local)
	used := map[uint8]bool{}
	for _, s := range sensors {
		if s.Owner.Local() {
			used[s.Number] = true
		}
	}
	unread := uint8(0xf0)
	for used[unread] {
		unread--
	}

	// A physical security event of a sensor the poller cannot read,
	// logged by the shelf manager.
	const secType = 0x05
	if _, err := sh.Console(ctx, fmt.Sprintf("sel_add 0x%02x 0x02 0 0 0 0 0x%02x 0x00 0x04 0x%02x 0x%02x 0x6f 0x00 0xff 0xff",
		local, local, secType, unread)); err != nil {
		t.Fatal(err)
	}
	rec, _, err := ipmi.GetSELEntry(ctx, sess, ipmi.Addr{}, ipmi.LastRecordID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Sensor != unread || rec.SensorType != secType {
		t.Fatalf("last SEL record %+v is not the one added", rec)
	}
	sendPET(t, strings.TrimPrefix(px.in.LocalAddr().String(), ""), petOfRecord(rec), v3AuthPriv()...)
	r.waitUntil(ctx, t, "trap and SEL record handled", 20*time.Second, func() bool {
		st := r.m.Stats()
		return st.Traps == 1 && st.Published == 1 && st.SELEntries >= 1
	})
	time.Sleep(4 * cfg.SELInterval) // more SEL reads: still once
	if n := sensorLogEntries(r.d, secType, hpi.SensorNum(unread)); n != 1 {
		t.Fatalf("event log holds the event %d times, want once; stats %+v", n, r.m.Stats())
	}
	for _, e := range r.d.EventLogEntries() {
		if e.Event.Type == hpi.EventSensor && e.Event.Sensor.Num == hpi.SensorNum(unread) {
			if !e.Event.Sensor.Assertion || e.Event.Sensor.EventState != 1 {
				t.Fatalf("logged event %+v", e.Event.Sensor)
			}
			if src, ok := r.d.Resource(e.Event.Source); !ok || len(src.EntityPath) == 0 {
				t.Fatalf("event source %d is not the shelf manager's resource", e.Event.Source)
			}
		}
	}

	// The same bytes again: a replay.
	orig := px.last(t)
	before := rc.Stats()
	if err := px.send(orig); err != nil {
		t.Fatal(err)
	}
	waitPET(ctx, t, rc, "replay counted", func(st pet.Stats) bool {
		return st.Dropped[pet.ReasonReplay] == before.Dropped[pet.ReasonReplay]+1
	})
	// A v2c trap: refused.
	sendPET(t, rc.Addr().String(), petOfRecord(rec), "-v", "2c", "-c", "public")
	waitPET(ctx, t, rc, "v2c counted", func(st pet.Stats) bool {
		return st.Dropped[pet.ReasonInsecureVersion] == before.Dropped[pet.ReasonInsecureVersion]+1
	})
	if st := r.m.Stats(); st.Traps != 1 {
		t.Fatalf("refused traps reached the monitor: %+v", st)
	}
	if n := sensorLogEntries(r.d, secType, hpi.SensorNum(unread)); n != 1 {
		t.Fatalf("event log holds the event %d times after replays", n)
	}

	// A trap naming a polled threshold sensor of a blade: a targeted
	// read at once (its interval is an hour).
	var th *shelf.Sensor
	for i, s := range sensors {
		if s.Owner.Slave == sh.Blades[0] && s.Record.IsThreshold() {
			th = &sensors[i]
			break
		}
	}
	if th == nil {
		t.Fatal("no threshold sensor of a blade")
	}
	polled := r.m.Stats().Poll.Targeted
	hint := monPET{sensorType: th.Record.SensorType, eventType: 0x01, offset: 0x09, owner: sh.Blades[0], sensor: th.Number,
		data: [3]byte{0x59, 0x50, 0x48}, seq: 0xfffe, ts: rec.RawTime - 883612800 + 1}
	sendPET(t, rc.Addr().String(), hint, v3AuthPriv()...)
	r.waitUntil(ctx, t, "targeted read", 20*time.Second, func() bool {
		st := r.m.Stats()
		return st.Traps == 2 && st.Hints >= 1 && st.Poll.Targeted > polled
	})
	if st := r.m.Stats(); st.Published != 1 {
		t.Fatalf("a trap of a polled sensor was published instead of confirmed by a read: %+v", st)
	}

	// A trap (properly authenticated) for an event the SEL does not have:
	// a hint that nothing confirms; it never reaches the domain.
	forged := petOfRecord(rec)
	forged.sensor, forged.ts = unread-1, forged.ts+7
	sendPET(t, rc.Addr().String(), forged, v3AuthPriv()...)
	r.waitUntil(ctx, t, "unconfirmed traps counted", 20*time.Second, func() bool {
		st := r.m.Stats()
		return st.Traps == 3 && st.TrapsUnconfirmed == 2 // the hint above had no SEL record either
	})
	if n := sensorLogEntries(r.d, secType, hpi.SensorNum(unread-1)); n != 0 || r.m.Stats().Published != 1 {
		t.Fatalf("unconfirmed trap published: %d entries, stats %+v", n, r.m.Stats())
	}

	// A flood of captured traps while the hot-swap sensors are polled
	// every 200 ms. A poll that missed a whole interval counts as late.
	// One stall of the (shared, race-instrumented) test machine can make a
	// poll late by itself, so the flood is tried twice: a flood that
	// delays polling does so both times.
	const flood = 3000
	var st shelf.MonitorStats
	for attempt := 1; ; attempt++ {
		lateBefore, readsBefore := r.m.Stats().Poll.Late, r.m.Stats().Poll.Reads
		recvBefore := rc.Stats().Received
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < flood; i++ {
				_ = px.send(orig)
				if i%200 == 199 {
					time.Sleep(5 * time.Millisecond) // keep the socket buffer from overflowing
				}
			}
		}()
		wg.Wait()
		waitPET(ctx, t, rc, "flood read", func(st pet.Stats) bool { return st.Received >= recvBefore+flood/2 })
		time.Sleep(3 * hsInterval)
		st = r.m.Stats()
		if st.Poll.Reads <= readsBefore {
			t.Fatalf("no polls during the flood: %+v", st.Poll)
		}
		if st.Poll.Late == lateBefore {
			break
		}
		if attempt == 2 {
			t.Fatalf("polls became late during both trap floods: late %d -> %d (max delay %s)", lateBefore, st.Poll.Late, st.Poll.MaxDelay)
		}
		t.Logf("polls late during the first flood (late %d -> %d, max delay %s); flooding again", lateBefore, st.Poll.Late, st.Poll.MaxDelay)
	}
	if st.Traps != 3 {
		t.Fatalf("flooded copies reached the monitor: %+v", st)
	}
	if ps := rc.Stats(); ps.Dropped[pet.ReasonReplay]+ps.Dropped[pet.ReasonRateLimitedSource]+ps.Dropped[pet.ReasonRateLimitedGlobal] < flood/2 {
		t.Fatalf("flood not refused: %+v", ps)
	}
}
