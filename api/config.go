package api

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"hpiagent/internal/pki"
)

// Config configures a Server. Zero fields take the defaults given with each
// field; TLS material and Roles have none.
type Config struct {
	// CertFile and KeyFile are the server's certificate chain and private key
	// (PEM). Used when Certificate is nil. No default: a server without a
	// certificate is refused by New.
	CertFile, KeyFile string
	// Certificate is the server certificate; takes precedence over
	// CertFile/KeyFile (tests and the daemon when keys come from elsewhere).
	Certificate *tls.Certificate
	// ClientCAFile is a PEM bundle of the CA certificates that sign client
	// certificates (the cluster CA). Used when ClientCAs is nil. No default:
	// without it no client could be verified and New refuses.
	ClientCAFile string
	// ClientCAs is the pool of CAs that sign client certificates; takes
	// precedence over ClientCAFile.
	ClientCAs *x509.CertPool

	// Identity derives a client's identity from its verified leaf
	// certificate. Default pki.Identity (the hpiagent:// URI SAN, else the
	// subject CN), the one rule every hpiagent component uses; replace it
	// only in tests.
	Identity func(*x509.Certificate) (string, error)
	// Roles maps an identity to its roles (RoleViewer, RoleOperator,
	// RoleFencer, RoleAdmin, RoleDiagnostics). An identity that is not here
	// has no role and is refused everywhere but /v1/whoami. No default:
	// least privilege.
	Roles map[string][]Role

	// RateLimit is the sustained number of requests per second allowed per
	// client identity. Default 50: far above what an operator's tool or a
	// cluster manager polling every second needs, low enough that one
	// misbehaving client cannot starve the shelf links behind the API.
	RateLimit float64
	// RateBurst is the bucket size of the per-client limiter. Default 100,
	// so a client's start-up burst (list resources, then each RDR) passes.
	RateBurst int
	// MaxClients bounds the number of per-client limiters kept; the least
	// recently used is forgotten first. Default 4096.
	MaxClients int

	// MaxConnections bounds the open connections. Default 1024. Connections
	// beyond it are closed at once and counted.
	MaxConnections int
	// MaxConnectionsPerIP bounds the open connections from one source
	// address. Default 64: a client's connection pool fits, a flood from one
	// address does not take every slot. Handshakes of strangers are also
	// bounded in time by ReadHeaderTimeout.
	MaxConnectionsPerIP int

	// MaxEventStreams is the number of concurrent /v1/events streams.
	// Default 64: each holds a subscription queue in the domain.
	MaxEventStreams int
	// MaxEventStreamsPerClient is the number of concurrent streams of one
	// identity. Default 4, so one client cannot take every stream.
	MaxEventStreamsPerClient int
	// EventQueueSize is the subscription queue size of each stream. Default
	// 1024 events; a stream that falls further behind gets a "gap" event.
	EventQueueSize int
	// KeepAlive is how often an idle event stream sends a comment line so
	// that dead clients are noticed. Default 15 s.
	KeepAlive time.Duration

	// MaxBodyBytes limits request bodies. Default 64 KiB: every request body
	// of this API is a few hundred bytes.
	MaxBodyBytes int64
	// ReadHeaderTimeout bounds reading request headers. Default 5 s
	// (slowloris).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request. Default 15 s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response (event streams extend their
	// own deadline per event). Default 60 s: long enough for a power action
	// that is read back from the shelf.
	WriteTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections. Default 120 s.
	IdleTimeout time.Duration
	// ActionTimeout bounds one hardware action (power, reset, hot-swap,
	// control). Default 45 s, within WriteTimeout.
	ActionTimeout time.Duration

	// Now is the clock of rate limiting and audit records. Default time.Now.
	Now func() time.Time
	// Logger receives the server's log records. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Identity == nil {
		c.Identity = pki.Identity
	}
	if c.RateLimit == 0 {
		c.RateLimit = 50
	}
	if c.RateBurst == 0 {
		c.RateBurst = 100
	}
	if c.MaxClients == 0 {
		c.MaxClients = 4096
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = 1024
	}
	if c.MaxConnectionsPerIP == 0 {
		c.MaxConnectionsPerIP = 64
	}
	if c.MaxEventStreams == 0 {
		c.MaxEventStreams = 64
	}
	if c.MaxEventStreamsPerClient == 0 {
		c.MaxEventStreamsPerClient = 4
	}
	if c.EventQueueSize == 0 {
		c.EventQueueSize = 1024
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 15 * time.Second
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = 5 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 15 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 60 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 120 * time.Second
	}
	if c.ActionTimeout == 0 {
		c.ActionTimeout = 45 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.RateLimit < 0 || c.RateBurst < 0:
		return errors.New("rate limit and burst must not be negative")
	case c.MaxClients < 0 || c.MaxConnections < 0 || c.MaxConnectionsPerIP < 0 || c.MaxEventStreams < 0 || c.MaxEventStreamsPerClient < 0 || c.EventQueueSize < 0:
		return errors.New("limits must not be negative")
	case c.MaxBodyBytes < 0:
		return errors.New("body limit must not be negative")
	}
	return validateRoles(c.Roles)
}

// validateRoles checks a role map: no empty identity, only known roles.
func validateRoles(m map[string][]Role) error {
	for id, roles := range m {
		if id == "" {
			return errors.New("role map: empty identity")
		}
		for _, r := range roles {
			if !slices.Contains(AllRoles(), r) {
				return fmt.Errorf("role map: identity %q: unknown role %q", id, r)
			}
		}
	}
	return nil
}

// TLSConfig returns the server's TLS configuration: TLS 1.3 only, client
// certificates required and verified against the client CAs.
func (c Config) TLSConfig() (*tls.Config, error) {
	cert := c.Certificate
	if cert == nil {
		if c.CertFile == "" || c.KeyFile == "" {
			return nil, errors.New("api: TLS: no server certificate configured")
		}
		kp, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			// The error of LoadX509KeyPair names files, never key material.
			return nil, fmt.Errorf("api: TLS: load server certificate %s: %w", c.CertFile, err)
		}
		cert = &kp
	}
	pool := c.ClientCAs
	if pool == nil {
		if c.ClientCAFile == "" {
			return nil, errors.New("api: TLS: no client CA configured")
		}
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("api: TLS: read client CA bundle: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("api: TLS: client CA bundle %s holds no PEM certificate", c.ClientCAFile)
		}
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{*cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}
