package watchdog

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Sender sends sd_notify assignments ("READY=1", "WATCHDOG=1", ...) to
// the service manager. *Notifier implements it; Systemd takes one so that
// an agent has a single writer on its notification socket.
type Sender interface {
	Notify(ctx context.Context, assignments ...string) error
}

// notifyWriteTimeout bounds a write when ctx has no deadline: a manager
// too busy to read its socket must not stall the caller for ever.
const notifyWriteTimeout = 2 * time.Second

// Notifier speaks systemd's notify protocol (sd_notify(3)): datagrams of
// newline-separated VAR=value assignments to the unix socket named by
// $NOTIFY_SOCKET, over one socket for the life of the Notifier. The
// socket is bound to an autobind address, so the manager (and a test)
// sees every datagram of this Notifier come from the same sender. A
// Notifier without a socket (not started by systemd, or not Type=notify)
// sends nothing. Safe for concurrent use.
type Notifier struct {
	addr *net.UnixAddr // nil: no systemd

	mu   sync.Mutex
	conn *net.UnixConn
}

// NewNotifier returns a Notifier for socket, the value of $NOTIFY_SOCKET:
// a path, or an abstract name starting with "@". An empty socket gives a
// Notifier that sends nothing. vsock addresses (systemd in a VM) are
// refused.
func NewNotifier(socket string) (*Notifier, error) {
	name := socket
	switch {
	case name == "":
		return &Notifier{}, nil
	case strings.HasPrefix(name, "@"):
		name = "\x00" + name[1:]
	case strings.HasPrefix(name, "/"):
	default:
		return nil, fmt.Errorf("watchdog: NOTIFY_SOCKET %q: only unix socket paths and abstract names are supported", socket)
	}
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}, nil
}

// Enabled reports whether a service manager listens.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Notify implements Sender: it sends the assignments as one datagram. A
// socket that fails is closed and opened again at the next call.
func (n *Notifier) Notify(ctx context.Context, assignments ...string) error {
	if !n.Enabled() {
		return nil
	}
	msg := strings.Join(assignments, "\n")
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("watchdog: notifying systemd (%s): %w", what(assignments), err)
	}
	if n.conn == nil {
		c, err := dialAutobound(n.addr.Name)
		if err != nil {
			return fmt.Errorf("watchdog: connecting to the systemd notification socket: %w", err)
		}
		n.conn = c
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(notifyWriteTimeout)
	}
	_ = n.conn.SetWriteDeadline(dl)
	if _, err := n.conn.Write([]byte(msg)); err != nil {
		n.conn.Close()
		n.conn = nil
		return fmt.Errorf("watchdog: notifying systemd (%s): %w", what(assignments), err)
	}
	return nil
}

// dialAutobound opens a unixgram socket bound to an autobind address
// (Linux gives it a unique abstract name) and connected to name. net's
// DialUnix leaves an unnamed local address unbound.
func dialAutobound(name string) (*net.UnixConn, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("creating a unix socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "sd_notify")
	defer f.Close() // FileConn dups the descriptor
	if err := unix.Bind(fd, &unix.SockaddrUnix{}); err != nil {
		return nil, fmt.Errorf("binding to an autobind address: %w", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: name}); err != nil {
		return nil, err
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("not a unix socket: %T", c)
	}
	return uc, nil
}

// what names the variables of assignments (not their values) for an
// error message.
func what(assignments []string) string {
	names := make([]string, 0, len(assignments))
	for _, a := range assignments {
		k, _, _ := strings.Cut(a, "=")
		names = append(names, k)
	}
	return strings.Join(names, ", ")
}

// LocalAddr is the address the Notifier sends from (nil before the first
// send or without a socket).
func (n *Notifier) LocalAddr() net.Addr {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	return n.conn.LocalAddr()
}

// Close closes the socket; a later Notify opens it again.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn = nil
	return err
}

// SystemdWatchdogTimeout returns the service watchdog timeout systemd set
// for process pid ($WATCHDOG_USEC, when $WATCHDOG_PID is unset or names
// pid), as getenv sees the environment; zero when there is none.
func SystemdWatchdogTimeout(getenv func(string) string, pid int) (time.Duration, error) {
	us := getenv("WATCHDOG_USEC")
	if us == "" {
		return 0, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return 0, fmt.Errorf("watchdog: WATCHDOG_PID %q: %w", p, err)
		}
		if n != pid {
			return 0, nil // the watchdog is for another process
		}
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/int64(time.Microsecond) {
		return 0, fmt.Errorf("watchdog: WATCHDOG_USEC %q is not a positive number of microseconds", us)
	}
	return time.Duration(n) * time.Microsecond, nil
}
