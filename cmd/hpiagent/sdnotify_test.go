package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// listenNotify creates a unixgram socket as systemd would and returns
// the $NOTIFY_SOCKET value for it.
func listenNotify(t *testing.T, abstract bool) (string, *net.UnixConn) {
	t.Helper()
	var name string
	if abstract {
		name = fmt.Sprintf("\x00hpiagent-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	} else {
		name = filepath.Join(t.TempDir(), "notify")
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if abstract {
		return "@" + name[1:], c
	}
	return name, c
}

// readDatagram reads one datagram or fails after a generous deadline.
func readDatagram(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

// noDatagram checks that nothing is queued (sends are synchronous, so what
// was sent is already there).
func noDatagram(t *testing.T, c *net.UnixConn) {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("unexpected notification %q", buf[:n])
	}
}

func TestNotifier(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run(fmt.Sprintf("abstract=%t", abstract), func(t *testing.T) {
			addr, c := listenNotify(t, abstract)
			n, err := newNotifier(func(k string) string {
				if k == "NOTIFY_SOCKET" {
					return addr
				}
				return ""
			})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if err := n.Notify("READY=1", "STATUS=2 shelves, 14 resources"); err != nil {
				t.Fatal(err)
			}
			if got := readDatagram(t, c); got != "READY=1\nSTATUS=2 shelves, 14 resources" {
				t.Errorf("got %q", got)
			}
			if err := n.Notify("RELOADING=1", "MONOTONIC_USEC="+monotonicUsec()); err != nil {
				t.Fatal(err)
			}
			got := readDatagram(t, c)
			if !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") || strings.HasSuffix(got, "=0") {
				t.Errorf("got %q", got)
			}
		})
	}
	n, err := newNotifier(func(string) string { return "" })
	if err != nil || n.Enabled() || n.Notify("READY=1") != nil {
		t.Errorf("without NOTIFY_SOCKET: %v %v", n.Enabled(), err)
	}
	if _, err := newNotifier(func(string) string { return "vsock:2:1234" }); err == nil {
		t.Error("vsock address accepted")
	}
}

func TestWatchdogInterval(t *testing.T) {
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, false},
		{"30000000", "4242", 30 * time.Second, false},
		{"30000000", "1", 0, false}, // another process's watchdog
		{"soon", "", 0, true},
		{"-5", "", 0, true},
		{"30000000", "x", 0, true},
	} {
		env := map[string]string{"WATCHDOG_USEC": tc.usec, "WATCHDOG_PID": tc.pid}
		got, err := watchdogInterval(func(k string) string { return env[k] }, 4242)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("USEC=%q PID=%q: %v, %v; want %v, error %t", tc.usec, tc.pid, got, err, tc.want, tc.err)
		}
	}
}

// TestWatchdogPingsOnlyWhileHealthy steps the watchdog through a healthy,
// a failing and a recovered check.
func TestWatchdogPingsOnlyWhileHealthy(t *testing.T) {
	addr, c := listenNotify(t, false)
	n, _ := newNotifier(func(string) string { return addr })
	defer n.Close()
	var health error
	var told []error
	w := &watchdog{n: n, checks: []healthCheck{func() error { return nil }, func() error { return health }}, onFail: func(err error) { told = append(told, err) }}
	steps := []struct {
		health error
		ping   bool
	}{
		{nil, true},
		{errors.New("shelf-a monitor stopped"), false},
		{errors.New("shelf-a monitor stopped"), false},
		{nil, true},
		{errors.New("domain stuck"), false},
	}
	for i, s := range steps {
		health = s.health
		if got := w.step(); got != s.ping {
			t.Fatalf("step %d pinged %t, want %t", i, got, s.ping)
		}
		if s.ping {
			if got := readDatagram(t, c); got != "WATCHDOG=1" {
				t.Fatalf("step %d: %q", i, got)
			}
		} else {
			noDatagram(t, c)
		}
	}
	if len(told) != 2 || !strings.Contains(told[0].Error(), "shelf-a monitor stopped") {
		t.Errorf("failures told: %v, want one per failure spell", told)
	}
}

// parseJournal decodes native-protocol fields.
func parseJournal(t *testing.T, b []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			t.Fatalf("unterminated field in %q", b)
		}
		line := b[:i]
		if k, v, ok := bytes.Cut(line, []byte("=")); ok {
			m[string(k)] = string(v)
			b = b[i+1:]
			continue
		}
		b = b[i+1:]
		n := binary.LittleEndian.Uint64(b[:8])
		m[string(line)] = string(b[8 : 8+n])
		b = b[8+n+1:]
	}
	return m
}

func TestJournalHandler(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "journal.socket")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	level := new(slog.LevelVar)
	log, where, err := logSetup{Format: "journal", Level: level, JournalSocket: sock}.build()
	if err != nil || where != "journal" {
		t.Fatal(where, err)
	}
	log.With("shelf", "shelf-a").Warn("sensor beyond threshold", "sensor", "CPU Temp", "detail", "line one\nline two")
	buf := make([]byte, 65536)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	f := parseJournal(t, buf[:n])
	if f["PRIORITY"] != "4" || f["SYSLOG_IDENTIFIER"] != "hpiagent" {
		t.Errorf("fields %q", f)
	}
	if want := `sensor beyond threshold shelf=shelf-a sensor="CPU Temp" detail="line one\nline two"`; f["MESSAGE"] != want {
		t.Errorf("MESSAGE = %q, want %q", f["MESSAGE"], want)
	}
	log.Debug("not at info")
	level.Set(slog.LevelDebug)
	log.Debug("now at debug")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err = c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if f := parseJournal(t, buf[:n]); f["MESSAGE"] != "now at debug" || f["PRIORITY"] != "7" {
		t.Errorf("after the level change: %q", f)
	}
	// A multi-line value uses the length-prefixed form.
	var b bytes.Buffer
	journalField(&b, "MESSAGE", "a\nb")
	if got := parseJournal(t, b.Bytes()); got["MESSAGE"] != "a\nb" {
		t.Errorf("multi-line field: %q", b.Bytes())
	}
}

func TestLogFormatAuto(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "journal.socket")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	st := fi.Sys().(*syscall.Stat_t)
	stream := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	for _, tc := range []struct {
		format, journalStream, want string
	}{
		{"auto", stream, "journal"},
		{"auto", "", "text on stderr"},
		{"auto", "1:2", "text on stderr"}, // stderr was redirected elsewhere
		{"text", stream, "text on stderr"},
		{"json", "", "json on stderr"},
	} {
		_, where, err := logSetup{Format: tc.format, Level: new(slog.LevelVar), Stderr: f, StderrFile: f, JournalSocket: sock,
			Getenv: func(k string) string {
				if k == "JOURNAL_STREAM" {
					return tc.journalStream
				}
				return ""
			}}.build()
		if err != nil || where != tc.want {
			t.Errorf("%s with JOURNAL_STREAM=%q: %q, %v; want %q", tc.format, tc.journalStream, where, err, tc.want)
		}
	}
}
