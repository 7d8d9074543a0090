package api

import (
	"errors"
	"net"
	"sync"
)

// connLimiter bounds the connections accepted in total and per source
// address. Anyone who can reach the port can open connections and start
// TLS handshakes, before any certificate is checked; a connection over a
// limit is closed at once (and counted) instead of waiting in the accept
// queue, so that a flood from one address cannot hold the slots of others.
type connLimiter struct {
	net.Listener
	max, maxPerIP int
	refused       func()

	mu    sync.Mutex
	total int
	perIP map[string]int
}

func newConnLimiter(l net.Listener, max, maxPerIP int, refused func()) *connLimiter {
	return &connLimiter{Listener: l, max: max, maxPerIP: maxPerIP, refused: refused, perIP: map[string]int{}}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := sourceIP(c.RemoteAddr())
		l.mu.Lock()
		ok := l.total < l.max && l.perIP[ip] < l.maxPerIP
		if ok {
			l.total++
			l.perIP[ip]++
		}
		l.mu.Unlock()
		if ok {
			return &limitedConn{Conn: c, release: func() { l.release(ip) }}, nil
		}
		_ = c.Close()
		l.refused()
	}
}

func (l *connLimiter) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

func sourceIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// limitedConn gives its slot back once, on the first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
