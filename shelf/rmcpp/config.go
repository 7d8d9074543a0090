package rmcpp

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Config configures a client Session. The zero value of every optional
// field selects the default documented on it; DefaultConfig returns a
// Config with those defaults filled in.
type Config struct {
	// Addr is the shelf manager's RMCP+ endpoint as "host:port"
	// (port 623 is the IPMI standard). Required.
	Addr string

	// Username is the IPMI user name (at most 16 bytes). It may be empty
	// for the anonymous user, which hpiagent deployments should not use.
	Username string

	// Password is the user's password (at most 20 bytes, IPMI 2.0). It is
	// the RAKP key K_UID and never appears in logs or errors. Required.
	Password []byte

	// KG is the optional BMC key K_G (at most 20 bytes) for two-key
	// logins. Nil means the BMC has no K_G set and the password is used,
	// as the specification says.
	KG []byte

	// Privilege is the session privilege level requested in Open Session
	// and RAKP 1. Default PrivilegeAdministrator: hot-swap and power
	// control need it. Level 0 ("highest available") is not used, because
	// some BMCs (ipmi_sim) then grant no privilege at all. A BMC that
	// allows less (Open Session Response) or sets another level (Set
	// Session Privilege Level) fails Dial with ErrPrivilege.
	Privilege Privilege

	// CipherSuites is the allow-list of cipher suite IDs in order of
	// preference. Default [17, 3]. Only 3 and 17 are accepted: every
	// other suite, including 0, is refused by Validate, because they lack
	// authentication, integrity or confidentiality (or use MD5/RC4).
	CipherSuites []int

	// RequestTimeout is how long one attempt of a request to the shelf
	// manager itself waits for its response. Default 1 s (a shelf manager
	// answers within milliseconds on a healthy LAN; IPMI 2.0 suggests
	// retries rather than long waits).
	RequestTimeout time.Duration

	// BridgeTimeout is how long one attempt of a request bridged over IPMB
	// waits. Default 3 s: the shelf manager itself retries on IPMB, and
	// PICMG 3.0 allows IPMCs up to a few hundred ms per try.
	BridgeTimeout time.Duration

	// Retries is how often a ReadOnly request is resent after an attempt
	// timed out. Requests that change state are never resent. Default 2.
	// Set NoRetries to disable resending.
	Retries   int
	NoRetries bool

	// Window is the number of requests in flight at once. Default 4. The
	// IPMI rqSeq field allows 64, but BMCs have small receive queues and
	// ipmi_sim drops packets under bursts. At most 32.
	Window int

	// MaxConsecutiveTimeouts is how many attempt timeouts in a row (with no
	// valid packet in between) mean the session is lost and is
	// re-established. Default 3.
	MaxConsecutiveTimeouts int

	// ReconnectMin and ReconnectMax bound the exponential backoff between
	// attempts to re-establish a lost session. Defaults 200 ms and 10 s.
	ReconnectMin time.Duration
	ReconnectMax time.Duration

	// KeepAlive is the idle time after which a Get Device ID is sent to
	// keep the session open: BMCs (ipmi_sim: 60 s by default; real ones
	// often 30–60 s) close idle sessions. Default 15 s.
	KeepAlive time.Duration

	// BMCIPMBAddress is the shelf manager's own IPMB slave address, used
	// as the requester address of bridged messages. Default 0x20 (the
	// shelf manager logical address, PICMG 3.0 §3.2.1).
	BMCIPMBAddress uint8

	// Logger receives session events (establishment, loss, dropped
	// packets at debug level). Default slog.Default().
	Logger *slog.Logger
}

// ErrConfig is wrapped by every error of Config.Validate.
var ErrConfig = errors.New("rmcpp: invalid configuration")

// String describes c without its secrets.
func (c Config) String() string {
	return fmt.Sprintf("rmcpp.Config{Addr:%q Username:%q Password:[redacted] KG:%s Privilege:%s CipherSuites:%v}",
		c.Addr, c.Username, redacted(c.KG), c.Privilege, c.CipherSuites)
}

// GoString describes c without its secrets (fmt's %#v).
func (c Config) GoString() string { return c.String() }

// Format makes every fmt verb (%v, %+v, %#v, %s, %x, %q, ...) print
// String, so that no verb shows the password or K_G.
func (c Config) Format(f fmt.State, verb rune) { formatRedacted(f, verb, c.String()) }

// formatRedacted writes desc for any verb: quoted for %q, else as is.
func formatRedacted(f fmt.State, verb rune, desc string) {
	if verb == 'q' {
		desc = strconv.Quote(desc)
	}
	_, _ = io.WriteString(f, desc)
}

// LogValue keeps the secrets out of structured logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("addr", c.Addr), slog.String("user", c.Username),
		slog.Any("cipher_suites", c.CipherSuites), slog.String("privilege", c.Privilege.String()))
}

func redacted(b []byte) string {
	if len(b) == 0 {
		return "none"
	}
	return "[redacted]"
}

// withDefaults returns c with every unset optional field set to its
// default.
func (c Config) withDefaults() Config {
	if c.Privilege == 0 {
		c.Privilege = PrivilegeAdministrator
	}
	if c.CipherSuites == nil {
		c.CipherSuites = []int{17, 3}
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = time.Second
	}
	if c.BridgeTimeout <= 0 {
		c.BridgeTimeout = 3 * time.Second
	}
	if c.NoRetries {
		c.Retries = 0
	} else if c.Retries <= 0 {
		c.Retries = 2
	}
	if c.Window <= 0 {
		c.Window = 4
	}
	if c.MaxConsecutiveTimeouts <= 0 {
		c.MaxConsecutiveTimeouts = 3
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 200 * time.Millisecond
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = 10 * time.Second
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 15 * time.Second
	}
	if c.BMCIPMBAddress == 0 {
		c.BMCIPMBAddress = 0x20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// DefaultConfig returns c with the defaults filled in.
func DefaultConfig(c Config) Config { return c.withDefaults() }

// Validate reports what is wrong with c (after defaults), wrapping
// ErrConfig and, for a refused cipher suite, ErrSuiteRefused.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("%w: Addr %q: %v", ErrConfig, c.Addr, err)
	}
	if len(c.Username) > 16 {
		return fmt.Errorf("%w: user name longer than 16 bytes", ErrConfig)
	}
	if len(c.Password) == 0 {
		return fmt.Errorf("%w: no password", ErrConfig)
	}
	if len(c.Password) > 20 {
		return fmt.Errorf("%w: password longer than 20 bytes", ErrConfig)
	}
	if len(c.KG) > 20 {
		return fmt.Errorf("%w: K_G longer than 20 bytes", ErrConfig)
	}
	if c.Privilege < PrivilegeCallback || c.Privilege > PrivilegeOEM {
		return fmt.Errorf("%w: privilege %d", ErrConfig, c.Privilege)
	}
	if len(c.CipherSuites) == 0 {
		return fmt.Errorf("%w: empty cipher suite allow-list", ErrConfig)
	}
	for _, id := range c.CipherSuites {
		if _, err := LookupSuite(id); err != nil {
			return fmt.Errorf("%w: CipherSuites: %w", ErrConfig, err)
		}
	}
	if c.Window > 32 {
		return fmt.Errorf("%w: window %d larger than 32", ErrConfig, c.Window)
	}
	return nil
}
