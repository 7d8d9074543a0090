package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"hpiagent/internal/pki"
)

// PeerName turns a certificate identity (as returned by Config.Identity,
// by default pki.Identity) into a node name: the identity
// hpiagent://peer/<name> gives <name>; other hpiagent kinds (client,
// server) are refused, because a client certificate named like a node is
// not that node; an identity of another form (the common name of a
// certificate from another CA) is the name itself.
func PeerName(identity string) (string, error) {
	if !strings.Contains(identity, "://") {
		if identity == "" {
			return "", errors.New("empty certificate identity")
		}
		return identity, nil
	}
	kind, name, err := pki.ParseIdentity(identity)
	if err != nil {
		return "", fmt.Errorf("certificate identity %q: %w", identity, err)
	}
	if kind != pki.KindPeer {
		return "", fmt.Errorf("certificate identity %q is a %s certificate, not a peer certificate", identity, kind)
	}
	return name, nil
}

// tlsPolicy derives the TLS configurations of every link from the caller's.
type tlsPolicy struct {
	server   *tls.Config
	client   *tls.Config
	identity func(*x509.Certificate) (string, error)
}

func newTLSPolicy(cfg *Config) *tlsPolicy {
	s := cfg.ServerTLS.Clone()
	s.MinVersion = tls.VersionTLS13
	s.MaxVersion = 0
	s.ClientAuth = tls.RequireAndVerifyClientCert
	s.NextProtos = nil
	c := cfg.ClientTLS.Clone()
	c.MinVersion = tls.VersionTLS13
	c.MaxVersion = 0
	c.NextProtos = nil
	idf := cfg.Identity
	return &tlsPolicy{server: s, client: c, identity: func(cert *x509.Certificate) (string, error) {
		id, err := idf(cert)
		if err != nil {
			return "", err
		}
		return PeerName(id)
	}}
}

// clientFor returns the client configuration to reach node expect: the chain
// is verified against RootCAs (server auth) and the peer's identity must be
// expect; the host name plays no part.
func (p *tlsPolicy) clientFor(expect string) *tls.Config {
	c := p.client.Clone()
	roots := c.RootCAs
	c.InsecureSkipVerify = true // replaced by VerifyConnection below, which is stricter
	c.ServerName = expect
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			return fmt.Errorf("verifying certificate of %q: %w", expect, err)
		}
		id, err := p.identity(cs.PeerCertificates[0])
		if err != nil {
			return fmt.Errorf("identity of the certificate presented for %q: %w", expect, err)
		}
		if id != expect {
			return fmt.Errorf("peer at the address of %q presented the certificate of %q", expect, id)
		}
		return nil
	}
	return c
}

// dial opens a mutual TLS connection to node name at addr.
func (p *tlsPolicy) dial(ctx context.Context, addr, name string) (*tls.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, p.clientFor(name))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake with %q at %s: %w", name, addr, err)
	}
	return tc, nil
}

// peerConn is an accepted connection whose peer proved an allowed identity.
type peerConn struct {
	net.Conn
	peer string
}

// listenerStats counts refusals on a listener.
type listenerStats struct {
	rateLimited   atomic.Uint64
	handshakeFail atomic.Uint64
	notAllowed    atomic.Uint64
}

// secureListener accepts TCP connections, rate-limits them, completes the
// TLS handshake off the accept loop and hands out only connections whose
// client identity is allowed.
type secureListener struct {
	inner    net.Listener
	policy   *tlsPolicy
	allowed  func(id string) bool
	what     string
	timeout  time.Duration
	rate     rate.Limit
	burst    int
	limMu    sync.Mutex
	limiters map[string]*rate.Limiter // per source IP
	sem      chan struct{}
	faults   *Faults
	self     string
	log      *slog.Logger
	stats    *listenerStats

	out       chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func newSecureListener(cfg *Config, policy *tlsPolicy, addr, what string, allowed func(string) bool, stats *listenerStats) (*secureListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for %s on %s: %w", what, addr, err)
	}
	l := &secureListener{
		inner:    ln,
		policy:   policy,
		allowed:  allowed,
		what:     what,
		timeout:  cfg.HandshakeTimeout,
		rate:     rate.Limit(cfg.AcceptRate),
		burst:    cfg.AcceptBurst,
		limiters: map[string]*rate.Limiter{},
		sem:      make(chan struct{}, cfg.MaxHandshakes),
		faults:   cfg.Faults,
		self:     cfg.NodeName,
		log:      cfg.Logger,
		stats:    stats,
		out:      make(chan net.Conn),
		done:     make(chan struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

func (l *secureListener) acceptLoop() {
	defer l.wg.Done()
	for {
		raw, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !l.allow(raw.RemoteAddr()) {
			l.stats.rateLimited.Add(1)
			raw.Close()
			continue
		}
		select {
		case l.sem <- struct{}{}:
		default:
			l.stats.rateLimited.Add(1)
			raw.Close()
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-l.sem }()
			l.handshake(raw)
		}()
	}
}

// maxLimiters bounds the per-source limiter table; when it is full the
// table starts afresh (sources then get a new full bucket, which is still
// bounded by MaxHandshakes).
const maxLimiters = 4096

// allow takes a token from the bucket of the connection's source IP.
func (l *secureListener) allow(a net.Addr) bool {
	ip := a.String()
	if ta, ok := a.(*net.TCPAddr); ok {
		ip = ta.IP.String()
	}
	l.limMu.Lock()
	defer l.limMu.Unlock()
	lim := l.limiters[ip]
	if lim == nil {
		if len(l.limiters) >= maxLimiters {
			l.limiters = map[string]*rate.Limiter{}
		}
		lim = rate.NewLimiter(l.rate, l.burst)
		l.limiters[ip] = lim
	}
	return lim.Allow()
}

func (l *secureListener) handshake(raw net.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	tc := tls.Server(raw, l.policy.server)
	if err := tc.HandshakeContext(ctx); err != nil {
		l.stats.handshakeFail.Add(1)
		l.log.Debug("cluster: TLS handshake refused", "listener", l.what, "remote", raw.RemoteAddr().String(), "err", err)
		raw.Close()
		return
	}
	cs := tc.ConnectionState()
	id := ""
	var err error
	if len(cs.PeerCertificates) > 0 {
		id, err = l.policy.identity(cs.PeerCertificates[0])
	} else {
		err = errors.New("no client certificate")
	}
	if err != nil || !l.allowed(id) {
		l.stats.notAllowed.Add(1)
		l.log.Warn("cluster: peer refused", "listener", l.what, "remote", raw.RemoteAddr().String(), "identity", id, "err", err)
		tc.Close()
		return
	}
	var c net.Conn = tc
	if l.faults != nil {
		c = l.faults.wrapConn(tc, l.self, id)
	}
	select {
	case l.out <- &peerConn{Conn: c, peer: id}:
	case <-l.done:
		c.Close()
	}
}

// Accept returns the next authenticated connection.
func (l *secureListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.out:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and waits for handshakes in progress.
func (l *secureListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.inner.Close()
		l.wg.Wait()
	})
	return err
}

// Addr is the listening address.
func (l *secureListener) Addr() net.Addr { return l.inner.Addr() }
