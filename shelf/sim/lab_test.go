package sim_test

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
)

// v15Request builds a session-less IPMI 1.5-format packet (authentication
// type none) with the given session sequence number and session ID.
func v15Request(seq, sid uint32, cmd uint8, data ...byte) []byte {
	msg := ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnApp, SrcAddr: 0x81, Seq: 5, Cmd: cmd, Data: data}.Marshal()
	b := []byte{0x06, 0x00, 0xff, 0x07, 0x00}
	b = binary.LittleEndian.AppendUint32(b, seq)
	b = binary.LittleEndian.AppendUint32(b, sid)
	return append(append(b, byte(len(msg))), msg...)
}

// askV15 sends pkt to addr and returns the IPMI 1.5-format answer to it
// (completion code first), or nil when none came within wait.
func askV15(t *testing.T, addr string, pkt []byte, cmd uint8, wait time.Duration) []byte {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(pkt); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil
		}
		if rmcpp.IsV20(buf[:n]) {
			t.Fatalf("IPMI 2.0-format answer to an IPMI 1.5 request: % x", buf[:n])
		}
		msg, err := rmcpp.DecodeV15(buf[:n])
		if err != nil {
			t.Fatalf("answer not in the IPMI 1.5 format with authentication type none: %v", err)
		}
		if sid := binary.LittleEndian.Uint32(buf[9:13]); sid != 0 {
			t.Fatalf("answer carries session ID 0x%08x", sid)
		}
		f, err := ipmi.ParseFrame(msg)
		if err != nil {
			t.Fatal(err)
		}
		if f.Cmd == cmd && f.Seq == 5 && f.NetFn == ipmi.NetFnApp.Response() && len(f.Data) > 0 {
			return f.Data
		}
	}
}

// TestPreSessionAsIpmiSim puts the simulated shelf next to ipmi_sim: both
// must answer the session-less pre-session requests a console sends in
// the IPMI 1.5 format, in that format, and both must ignore such a request
// with a session sequence number. Where a BMC with IPMI 1.5 sessions
// enabled (ipmi_sim) answers Get Session Challenge, the simulated shelf,
// which has them disabled, stays silent.
func TestPreSessionAsIpmiSim(t *testing.T) {
	lab := labshelf.Start(t)
	s := startShelf(t, nil)
	peers := []struct {
		name, addr  string
		v15Sessions bool // IPMI 1.5 sessions enabled
		counters    bool // the peer is the simulated shelf
	}{
		{name: "ipmi_sim", addr: lab.Addr(), v15Sessions: true},
		{name: "sim", addr: s.srv.Addr().String(), counters: true},
	}
	challenge := append([]byte{0x00}, []byte(lab.User)...)
	challenge = append(challenge, make([]byte, 17-len(challenge))...)
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			// Get Channel Authentication Capabilities, IPMI 2.0 extended data.
			caps := askV15(t, p.addr, v15Request(0, 0, 0x38, 0x8e, 0x04), 0x38, time.Second)
			if len(caps) != 9 || caps[0] != 0 {
				t.Fatalf("auth caps % x", caps)
			}
			if caps[2]&0x80 == 0 || caps[4]&0x02 == 0 {
				t.Errorf("auth caps % x: IPMI 2.0 not offered", caps)
			}
			if got := caps[2]&0x3f != 0; got != p.v15Sessions {
				t.Errorf("auth caps % x: IPMI 1.5 authentication types offered: %t, want %t", caps, got, p.v15Sessions)
			}
			// Get Channel Cipher Suites, page by page (16 bytes of records
			// each): suite 3 with its standard algorithms.
			var recs []byte
			pages := 0
			for idx := byte(0); idx < 64; idx++ {
				cs := askV15(t, p.addr, v15Request(0, 0, 0x54, 0x0e, 0x00, 0x80|idx), 0x54, time.Second)
				if len(cs) < 2 || cs[0] != 0 {
					t.Fatalf("cipher suites page %d: % x", idx, cs)
				}
				pages++
				recs = append(recs, cs[2:]...)
				if len(cs) < 2+16 {
					break
				}
			}
			if !containsSuite3(recs) {
				t.Errorf("cipher suite records % x lack suite 3 (HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128)", recs)
			}
			// A session-less request with a sequence number is ignored.
			if got := askV15(t, p.addr, v15Request(3, 0, 0x38, 0x8e, 0x04), 0x38, 500*time.Millisecond); got != nil {
				t.Errorf("answered a pre-session request with sequence number 3: % x", got)
			}
			// Get Session Challenge (an IPMI 1.5 login, auth type none).
			got := askV15(t, p.addr, v15Request(0, 0, 0x39, challenge...), 0x39, 500*time.Millisecond)
			if p.v15Sessions && got == nil {
				t.Error("no answer to Get Session Challenge from a BMC with IPMI 1.5 sessions")
			}
			if !p.v15Sessions && got != nil {
				t.Errorf("Get Session Challenge answered with IPMI 1.5 sessions disabled: % x", got)
			}
			if p.counters {
				c := s.sh.Counters()
				if c.PreSessionV15 != 1+pages || c.RefusedV15 != 2 || c.SessionsOpened != 0 {
					t.Errorf("counters %+v", c)
				}
			}
		})
	}
}

// containsSuite3 looks for the cipher suite record of suite 3 in
// Get Channel Cipher Suites record data (IPMI 2.0 table 22-18).
func containsSuite3(b []byte) bool {
	for i := 0; i+5 <= len(b); i++ {
		if b[i] == 0xC0 && b[i+1] == 3 && b[i+2] == 0x01 && b[i+3] == 0x41 && b[i+4] == 0x81 {
			return true
		}
	}
	return false
}
