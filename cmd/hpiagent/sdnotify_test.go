package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
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

// TestNewNotifier: the daemon's Notifier is the one for $NOTIFY_SOCKET
// (watchdog.Notifier, tested there), disabled without it.
func TestNewNotifier(t *testing.T) {
	addr, c := listenNotify(t, false)
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
	if err := n.Notify(context.Background(), "READY=1", "STATUS=ok"); err != nil {
		t.Fatal(err)
	}
	if got := readDatagram(t, c); got != "READY=1\nSTATUS=ok" {
		t.Errorf("got %q", got)
	}
	noDatagram(t, c)
	if n, err := newNotifier(func(string) string { return "" }); err != nil || n.Enabled() {
		t.Errorf("without NOTIFY_SOCKET: %v %v", n.Enabled(), err)
	}
	if _, err := newNotifier(func(string) string { return "vsock:2:1234" }); err == nil {
		t.Error("vsock address accepted")
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
