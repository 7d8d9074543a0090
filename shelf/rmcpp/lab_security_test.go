package rmcpp

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
	"hpiagent/shelf/ipmi"
)

// isSessionIPMI reports whether b is an authenticated IPMI message of a session.
func isSessionIPMI(b []byte) bool {
	return len(b) > 16 && b[4] == 0x06 && b[5] == 0xC0
}

func TestLabCipherSuitePolicy(t *testing.T) {
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("17 alone is not offered", func(t *testing.T) {
		cfg := labConfig(t, sh)
		cfg.CipherSuites = []int{17}
		s, err := Dial(ctx, cfg)
		if err == nil {
			s.Close()
			t.Fatal("Dial succeeded with suite 17 against ipmi_sim")
		}
		if !errors.Is(err, ErrNegotiation) || !strings.Contains(err.Error(), "no allowed cipher suite offered") || !strings.Contains(err.Error(), "allowed are [17]") {
			t.Fatalf("err = %v", err)
		}
		t.Logf("error: %v", err)
	})
	t.Run("17,3 falls back to 3", func(t *testing.T) {
		cfg := labConfig(t, sh)
		cfg.CipherSuites = []int{17, 3}
		s := dial(t, cfg)
		if s.CipherSuite() != 3 {
			t.Fatalf("suite %d", s.CipherSuite())
		}
		if _, err := ipmi.Do(ctx, s, ipmi.Addr{}, getDeviceID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("suite 0 refused by configuration", func(t *testing.T) {
		// ipmi_sim accepts suite 0 even with a wrong password ...
		out, err := exec.CommandContext(ctx, "ipmitool", "-I", "lanplus", "-H", sh.Host, "-p", strconv.Itoa(sh.Port),
			"-U", sh.User, "-P", "not-the-password", "-C", "0", "raw", "6", "1").CombinedOutput()
		if err != nil {
			t.Logf("ipmitool -C 0 with a wrong password failed (%v): %s", err, out)
		} else {
			t.Logf("ipmitool -C 0 with a wrong password succeeded against ipmi_sim: %s", strings.TrimSpace(string(out)))
		}
		// ... so the client never offers it, even when the allow-list names it.
		for _, list := range [][]int{{0}, {3, 0}, {17, 3, 1}, {3, 6}, {}} {
			cfg := labConfig(t, sh)
			cfg.CipherSuites = list
			if list != nil && len(list) == 0 {
				cfg.CipherSuites = []int{}
			}
			s, err := Dial(ctx, cfg)
			if err == nil {
				s.Close()
				t.Fatalf("Dial with %v succeeded", list)
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("Dial with %v: %v", list, err)
			}
			if len(list) > 0 && !errors.Is(err, ErrSuiteRefused) {
				t.Fatalf("Dial with %v: %v", list, err)
			}
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		cfg := labConfig(t, sh)
		cfg.Password = []byte("not-the-password")
		_, err := Dial(ctx, cfg)
		if !errors.Is(err, ErrAuthCode) {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), "not-the-password") || strings.Contains(err.Error(), sh.Password) {
			t.Fatalf("error leaks the password: %v", err)
		}
	})
}

func TestLabTamperedResponses(t *testing.T) {
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name   string
		mut    func(b []byte)
		reason string
	}{
		{"payload byte", func(b []byte) { b[20] ^= 0x01 }, RejectIntegrity},
		{"IV byte", func(b []byte) { b[16] ^= 0x80 }, RejectIntegrity},
		{"last auth code byte", func(b []byte) { b[len(b)-1] ^= 0x01 }, RejectIntegrity},
		{"session sequence", func(b []byte) { b[10] ^= 0x04 }, RejectIntegrity},
		{"session id", func(b []byte) { b[6] ^= 0x01 }, RejectSessionID},
		{"payload length", func(b []byte) { b[14] -= 16 }, RejectIntegrity},
		{"clear auth flag", func(b []byte) { b[5] &^= 0x40 }, RejectUnprotected},
		{"next header", func(b []byte) { b[len(b)-13] = 0 }, RejectIntegrity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			px := startProxy(t, sh.Addr())
			cfg := labConfig(t, sh)
			cfg.Addr = px.Addr()
			cfg.RequestTimeout = 300 * time.Millisecond
			cfg.Retries = 1
			cfg.MaxConsecutiveTimeouts = 1000
			s := dial(t, cfg)
			px.setToClient(func(b []byte) [][]byte {
				if isSessionIPMI(b) {
					tc.mut(b)
				}
				return [][]byte{b}
			})
			for _, req := range []ipmi.Request{getDeviceID, {NetFn: ipmi.NetFnApp, Cmd: 0x01}} {
				before := s.Stats()
				resp, err := s.Exchange(ctx, ipmi.Addr{}, req)
				if !errors.Is(err, ErrTimeout) {
					t.Fatalf("ReadOnly=%t: resp %+v err %v, want ErrTimeout", req.ReadOnly, resp, err)
				}
				after := s.Stats()
				attempts := 1
				if req.ReadOnly {
					attempts = 2
				}
				if got := after.Sent - before.Sent; got != uint64(attempts) {
					t.Errorf("ReadOnly=%t: sent %d packets, want %d", req.ReadOnly, got, attempts)
				}
				if got := after.Rejected[tc.reason] - before.Rejected[tc.reason]; got < uint64(attempts) {
					t.Errorf("ReadOnly=%t: rejected[%s] +%d, want +%d (%v)", req.ReadOnly, tc.reason, got, attempts, after.Rejected)
				}
			}
			px.setToClient(nil)
			if _, err := ipmi.Do(ctx, s, ipmi.Addr{}, getDeviceID); err != nil {
				t.Fatalf("after tampering stopped: %v", err)
			}
			if _, err := ipmi.Do(ctx, s, ipmi.Addr{Slave: 0x82}, getDeviceID); err != nil {
				t.Fatalf("bridged after tampering stopped: %v", err)
			}
		})
	}
}

func TestLabNegotiationRewritten(t *testing.T) {
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Open Session Response payload starts at byte 16; the algorithm
	// bytes are at payload offsets 16 (auth), 24 (integrity), 32 (conf).
	for _, tc := range []struct {
		name string
		off  int
		val  byte
	}{
		{"integrity none", 16 + 24, byte(IntegrityNone)},
		{"integrity md5", 16 + 24, byte(IntegrityMD5_128)},
		{"confidentiality none", 16 + 32, byte(ConfNone)},
		{"confidentiality xrc4", 16 + 32, byte(ConfXRC4_40)},
		{"authentication none", 16 + 16, byte(AuthNone)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			px := startProxy(t, sh.Addr())
			px.setToClient(func(b []byte) [][]byte {
				if len(b) == 16+36 && b[5] == byte(PayloadOpenSessionResponse) {
					b[tc.off] = tc.val
				}
				return [][]byte{b}
			})
			cfg := labConfig(t, sh)
			cfg.Addr = px.Addr()
			s, err := Dial(ctx, cfg)
			if err == nil {
				s.Close()
				t.Fatal("Dial succeeded")
			}
			if !errors.Is(err, ErrNegotiation) || !strings.Contains(err.Error(), "BMC negotiated") {
				t.Fatalf("err = %v", err)
			}
			t.Logf("%v", err)
		})
	}
}

func TestLabReplayedResponses(t *testing.T) {
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	px := startProxy(t, sh.Addr())
	var mu sync.Mutex
	var recorded [][]byte
	record := true
	px.setToClient(func(b []byte) [][]byte {
		mu.Lock()
		defer mu.Unlock()
		if isSessionIPMI(b) && record {
			recorded = append(recorded, append([]byte(nil), b...))
		}
		return [][]byte{b}
	})
	cfg := labConfig(t, sh)
	cfg.Addr = px.Addr()
	cfg.RequestTimeout = 300 * time.Millisecond
	cfg.Retries = 1
	cfg.MaxConsecutiveTimeouts = 1000
	s := dial(t, cfg)

	// The first request gets rqSeq 1; rqSeq runs round robin over 1..63.
	first, err := ipmi.Do(ctx, s, ipmi.Addr{}, getDeviceID)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	old := recorded[len(recorded)-1]
	record = false
	mu.Unlock()

	// An immediate duplicate is rejected by the window.
	before := s.Stats().Rejected[RejectSequence]
	px.inject(old)
	if _, err := ipmi.Do(ctx, s, ipmi.Addr{}, getDeviceID); err != nil {
		t.Fatal(err)
	}
	if s.Stats().Rejected[RejectSequence] != before+1 {
		t.Fatalf("duplicate not rejected by sequence: %v", s.Stats().Rejected)
	}
	// Run until the next request reuses rqSeq 1 (63 requests after the first).
	for range 61 {
		if _, err := ipmi.Do(ctx, s, ipmi.Addr{}, getDeviceID); err != nil {
			t.Fatal(err)
		}
	}
	// Now drop the genuine answers and replay the old answer to the
	// request with the same rqSeq, NetFn and Cmd: only the session
	// sequence window tells them apart.
	px.setToClient(func(b []byte) [][]byte {
		if isSessionIPMI(b) {
			return nil
		}
		return [][]byte{b}
	})
	px.setToServer(func(b []byte) [][]byte {
		if isSessionIPMI(b) {
			go px.inject(old)
		}
		return [][]byte{b}
	})
	before = s.Stats().Rejected[RejectSequence]
	resp, err := s.Exchange(ctx, ipmi.Addr{}, getDeviceID)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("replayed answer accepted: %+v %v (first answer was % x)", resp, err, first)
	}
	if got := s.Stats().Rejected[RejectSequence] - before; got < 2 {
		t.Fatalf("rejected[sequence] +%d, want +2", got)
	}
	px.setToClient(nil)
	px.setToServer(nil)
	if _, err := ipmi.Do(ctx, s, ipmi.Addr{}, getDeviceID); err != nil {
		t.Fatal(err)
	}
}
