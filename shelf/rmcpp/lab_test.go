package rmcpp

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
	"hpiagent/shelf/ipmi"
)

func testLogger(t testing.TB) *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("RMCPP_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: lvl}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func labConfig(t testing.TB, sh *labshelf.Shelf) Config {
	return Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), Logger: testLogger(t)}
}

// rawHex parses the output of "ipmitool raw" into bytes.
func rawHex(t testing.TB, out string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(out), ""))
	if err != nil {
		t.Fatalf("ipmitool raw output %q: %v", out, err)
	}
	return b
}

func dial(t testing.TB, cfg Config) *Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var getDeviceID = ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 0x01, ReadOnly: true}
var picmgProps = ipmi.Request{NetFn: ipmi.NetFnGroup, Cmd: 0x00, Data: []byte{0x00}, ReadOnly: true}

func TestLabBasics(t *testing.T) {
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := dial(t, labConfig(t, sh))
	if s.CipherSuite() != 3 {
		t.Errorf("cipher suite %d, want 3 (ipmi_sim has no suite 17)", s.CipherSuite())
	}
	for _, tc := range []struct {
		name string
		to   ipmi.Addr
		req  ipmi.Request
		args []string
	}{
		{"device id", ipmi.Addr{}, getDeviceID, []string{"raw", "6", "1"}},
		{"bridged device id 0x82", ipmi.Addr{Slave: 0x82}, getDeviceID, []string{"-t", "0x82", "-b", "0", "raw", "6", "1"}},
		{"bridged device id 0x86", ipmi.Addr{Slave: 0x86}, getDeviceID, []string{"-t", "0x86", "-b", "0", "raw", "6", "1"}},
		{"bridged picmg properties 0x84", ipmi.Addr{Slave: 0x84}, picmgProps, []string{"-t", "0x84", "-b", "0", "raw", "0x2c", "0", "0"}},
		{"bridged picmg properties 0x88", ipmi.Addr{Slave: 0x88}, picmgProps, []string{"-t", "0x88", "-b", "0", "raw", "0x2c", "0", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := ipmi.Do(ctx, s, tc.to, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			out, err := sh.Ipmitool(ctx, tc.args...)
			if err != nil {
				t.Fatalf("ipmitool: %v", err)
			}
			if want := rawHex(t, out); !bytes.Equal(data, want) {
				t.Fatalf("response % x, ipmitool says % x", data, want)
			}
		})
	}
	t.Logf("stats %+v", s.Stats())
}
