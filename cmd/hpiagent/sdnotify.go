package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// notifier speaks systemd's notify protocol (sd_notify(3)): datagrams of
// newline-separated VAR=value assignments to the unix socket named by
// $NOTIFY_SOCKET. A notifier without a socket (not started by systemd, or
// not Type=notify) does nothing.
type notifier struct {
	mu   sync.Mutex
	addr *net.UnixAddr // nil: no systemd
	conn *net.UnixConn
}

// newNotifier returns a notifier for $NOTIFY_SOCKET as getenv sees it. A
// name starting with '@' is an abstract socket.
func newNotifier(getenv func(string) string) (*notifier, error) {
	name := getenv("NOTIFY_SOCKET")
	if name == "" {
		return &notifier{}, nil
	}
	switch {
	case strings.HasPrefix(name, "@"):
		name = "\x00" + name[1:]
	case strings.HasPrefix(name, "/"):
	default:
		// vsock: addresses (systemd in a VM) are not supported.
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: only unix socket paths and abstract names are supported", name)
	}
	return &notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}, nil
}

// Enabled reports whether systemd listens.
func (n *notifier) Enabled() bool { return n != nil && n.addr != nil }

// Notify sends the assignments, e.g. "READY=1", "STATUS=...".
func (n *notifier) Notify(assignments ...string) error {
	if !n.Enabled() {
		return nil
	}
	msg := strings.Join(assignments, "\n")
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		c, err := net.DialUnix("unixgram", nil, n.addr)
		if err != nil {
			return fmt.Errorf("notifying systemd: %w", err)
		}
		n.conn = c
	}
	if _, err := n.conn.Write([]byte(msg)); err != nil {
		n.conn.Close()
		n.conn = nil
		return fmt.Errorf("notifying systemd: %w", err)
	}
	return nil
}

// Close closes the socket.
func (n *notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil {
		err := n.conn.Close()
		n.conn = nil
		return err
	}
	return nil
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, for RELOADING=1's
// MONOTONIC_USEC= (systemd 253 and later match it against the reload).
func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "0"
	}
	return strconv.FormatInt(ts.Nano()/1000, 10)
}

// watchdogInterval returns systemd's watchdog timeout from $WATCHDOG_USEC
// when $WATCHDOG_PID is unset or names pid; zero when there is no
// watchdog.
func watchdogInterval(getenv func(string) string, pid int) (time.Duration, error) {
	us := getenv("WATCHDOG_USEC")
	if us == "" {
		return 0, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return 0, fmt.Errorf("WATCHDOG_PID %q: %w", p, err)
		}
		if n != pid {
			return 0, nil // the watchdog is for another process
		}
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("WATCHDOG_USEC %q is not a positive number", us)
	}
	return time.Duration(n) * time.Microsecond, nil
}

// healthCheck reports whether a part of the agent works; an error stops
// the watchdog pings, so systemd restarts an agent that is stuck.
type healthCheck func() error

// watchdog pings systemd while every health check passes.
type watchdog struct {
	n      *notifier
	checks []healthCheck
	onFail func(error) // told once per failure spell
	failed bool
}

// step runs the checks and pings when all pass; it reports whether it
// pinged.
func (w *watchdog) step() bool {
	for _, c := range w.checks {
		if err := c(); err != nil {
			if !w.failed && w.onFail != nil {
				w.onFail(fmt.Errorf("health check failed, systemd watchdog pings stopped: %w", err))
			}
			w.failed = true
			return false
		}
	}
	w.failed = false
	if err := w.n.Notify("WATCHDOG=1"); err != nil {
		if w.onFail != nil {
			w.onFail(err)
		}
		return false
	}
	return true
}

// run steps every half timeout until ctx ends.
func (w *watchdog) run(ctx context.Context, timeout time.Duration) {
	if !w.n.Enabled() || timeout <= 0 {
		return
	}
	t := time.NewTicker(timeout / 2)
	defer t.Stop()
	for {
		w.step()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
