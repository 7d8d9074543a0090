package watchdog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listenNotify creates a unixgram socket as systemd does and returns the
// $NOTIFY_SOCKET value for it.
func listenNotify(t *testing.T, abstract bool) (string, *net.UnixConn) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify")
	if abstract {
		name = fmt.Sprintf("\x00hpiagent-watchdog-test-%d-%d", os.Getpid(), time.Now().UnixNano())
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

// readAll reads n datagrams (failing after a generous deadline) and
// returns them with the set of sender addresses seen.
func readAll(t *testing.T, c *net.UnixConn, n int) ([]string, map[string]bool) {
	t.Helper()
	var got []string
	from := map[string]bool{}
	buf := make([]byte, 4096)
	for range n {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, addr, err := c.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, string(buf[:k]))
		a := ""
		if addr != nil {
			a = addr.Name
		}
		from[a] = true
	}
	return got, from
}

// TestNotifier sends on real unixgram sockets (a path and an abstract
// name): one datagram per call, newline-separated assignments, all from
// the same bound sender address; a socket that went away is reopened.
func TestNotifier(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, abstract := range []bool{false, true} {
		t.Run(fmt.Sprintf("abstract=%t", abstract), func(t *testing.T) {
			addr, c := listenNotify(t, abstract)
			n, err := NewNotifier(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if !n.Enabled() || n.LocalAddr() != nil {
				t.Fatalf("enabled %v, local address before any send %v", n.Enabled(), n.LocalAddr())
			}
			msgs := [][]string{{"READY=1", "STATUS=2 shelves, 14 resources"}, {"WATCHDOG=1"}, {"STOPPING=1"}}
			for _, m := range msgs {
				if err := n.Notify(ctx, m...); err != nil {
					t.Fatal(err)
				}
			}
			got, from := readAll(t, c, len(msgs))
			for i, m := range msgs {
				if got[i] != strings.Join(m, "\n") {
					t.Errorf("datagram %d: %q, want %q", i, got[i], strings.Join(m, "\n"))
				}
			}
			if len(from) != 1 || from[""] {
				t.Errorf("senders %v, want one bound address", from)
			}
			if la := n.LocalAddr(); la == nil || !from[la.String()] {
				t.Errorf("local address %v is not the sender %v", la, from)
			}
		})
	}
	t.Run("reopened after the socket went away", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "notify")
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		n, _ := NewNotifier(path)
		defer n.Close()
		if err := n.Notify(ctx, "READY=1"); err != nil {
			t.Fatal(err)
		}
		c.Close()
		os.Remove(path)
		if err := n.Notify(ctx, "WATCHDOG=1"); err == nil {
			t.Fatal("sent to a socket nobody listens on")
		} else if strings.Contains(err.Error(), "=1") {
			t.Errorf("error %q shows a value", err)
		}
		c2, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		if err := n.Notify(ctx, "WATCHDOG=1"); err != nil {
			t.Fatalf("not reopened: %v", err)
		}
		if got, _ := readAll(t, c2, 1); got[0] != "WATCHDOG=1" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		addr, _ := listenNotify(t, false)
		n, _ := NewNotifier(addr)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := n.Notify(cctx, "WATCHDOG=1"); !errors.Is(err, context.Canceled) {
			t.Errorf("%v, want context.Canceled", err)
		}
	})
	n, err := NewNotifier("")
	if err != nil || n.Enabled() || n.Notify(ctx, "READY=1") != nil || n.Close() != nil {
		t.Errorf("without NOTIFY_SOCKET: enabled %v, %v", n.Enabled(), err)
	}
	var nilN *Notifier
	if nilN.Enabled() || nilN.Notify(ctx, "READY=1") != nil || nilN.Close() != nil || nilN.LocalAddr() != nil {
		t.Error("a nil Notifier is not a disabled one")
	}
	for _, bad := range []string{"vsock:2:1234", "relative/path", "x"} {
		if _, err := NewNotifier(bad); err == nil {
			t.Errorf("NOTIFY_SOCKET %q accepted", bad)
		}
	}
}

func TestSystemdWatchdogTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"", "4242", 0, false},
		{"30000000", "", 30 * time.Second, false},
		{"30000000", "4242", 30 * time.Second, false},
		{"400000", "", 400 * time.Millisecond, false},
		{"30000000", "1", 0, false}, // another process's watchdog
		{"soon", "", 0, true},
		{"-5", "", 0, true},
		{"0", "", 0, true},
		{"30000000", "x", 0, true},
		{"99999999999999999999", "", 0, true},
		{"9223372036854775807", "", 0, true}, // overflows a Duration
	} {
		env := map[string]string{"WATCHDOG_USEC": tc.usec, "WATCHDOG_PID": tc.pid}
		got, err := SystemdWatchdogTimeout(func(k string) string { return env[k] }, 4242)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("USEC=%q PID=%q: %v, %v; want %v, error %t", tc.usec, tc.pid, got, err, tc.want, tc.err)
		}
	}
}

// FuzzSystemdWatchdogTimeout: any environment gives either an error or a
// positive timeout (or zero without WATCHDOG_USEC or for another PID),
// never a panic.
func FuzzSystemdWatchdogTimeout(f *testing.F) {
	for _, s := range [][2]string{{"30000000", ""}, {"30000000", "4242"}, {"", "1"}, {"-1", ""}, {"1e9", "x"}, {"18446744073709551615", ""}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, usec, pid string) {
		env := map[string]string{"WATCHDOG_USEC": usec, "WATCHDOG_PID": pid}
		got, err := SystemdWatchdogTimeout(func(k string) string { return env[k] }, 4242)
		if err != nil && got != 0 {
			t.Fatalf("%v with error %v", got, err)
		}
		if err == nil && got < 0 {
			t.Fatalf("negative timeout %v", got)
		}
		if usec == "" && (got != 0 || err != nil) {
			t.Fatalf("no WATCHDOG_USEC: %v %v", got, err)
		}
	})
}

// FuzzNewNotifier: any NOTIFY_SOCKET value is refused with an error or
// gives a Notifier; only paths and abstract names are accepted.
func FuzzNewNotifier(f *testing.F) {
	for _, s := range []string{"", "/run/systemd/notify", "@abstract", "vsock:2:1", "rel", "@", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NewNotifier(s)
		if err != nil {
			if n != nil {
				t.Fatal("a Notifier with an error")
			}
			return
		}
		if n.Enabled() != (s != "") || (s != "" && s[0] != '/' && s[0] != '@') {
			t.Fatalf("%q accepted as enabled=%v", s, n.Enabled())
		}
	})
}
