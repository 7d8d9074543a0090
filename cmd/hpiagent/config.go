package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"hpiagent/api/audit"
)

// Config is the whole configuration of one hpiagent, decoded strictly from
// YAML: an unknown key, a key given twice, a value of the wrong type and a
// value out of range are errors that name the key and its line. Every
// field says its default and why; a zero value means "use the default".
type Config struct {
	// LogLevel is one of debug, info, warn, error. Default: info, which
	// logs session set-up and loss, discoveries and state changes but
	// not every request. Applied again on reload.
	LogLevel string `yaml:"log_level"`

	// LogFormat is auto, text, json or journal. Default: auto, which
	// writes the journal's native protocol when stderr is connected to
	// the journal (systemd sets $JOURNAL_STREAM) and text to stderr
	// otherwise. json suits log shippers; journal forces the native
	// protocol.
	LogFormat string `yaml:"log_format"`

	// Shelves are the shelf managers this agent talks to over RMCP+.
	// Default: none (an agent without shelves only serves its API).
	Shelves []ShelfConfig `yaml:"shelves"`

	// API is the HTTPS (mutual TLS) API the cluster manager and hpictl
	// query.
	API APIConfig `yaml:"api"`

	// Audit is the audit log of every state change and every refused
	// request.
	Audit AuditConfig `yaml:"audit"`

	// PET is the receiver of Platform Event Traps from the shelf
	// managers. Off unless pet.listen is set.
	PET PETConfig `yaml:"pet"`

	// Monitor tunes how often the shelves are polled.
	Monitor MonitorConfig `yaml:"monitor"`

	// Domain tunes the HPI domain.
	Domain DomainConfig `yaml:"domain"`

	// Cluster makes this agent a node of a cluster (see ClusterConfig).
	// Default: none, the agent runs standalone.
	Cluster *ClusterConfig `yaml:"cluster"`

	// Fencing is the fencing topology (see FencingConfig). Default: none,
	// no fencing. Needs Cluster.
	Fencing *FencingConfig `yaml:"fencing"`

	// HotSwap runs the cluster-synchronized hot-swap workflows (see
	// HotSwapConfig). Default: none, no workflows. Needs Cluster.
	HotSwap *HotSwapConfig `yaml:"hotswap"`

	// Watchdog names the watchdogs fed while the agent is healthy and in
	// quorum (see WatchdogConfig). Default: none.
	Watchdog *WatchdogConfig `yaml:"watchdog"`

	pos positions
}

// ShelfConfig is one shelf manager reached over IPMI LAN (RMCP+).
type ShelfConfig struct {
	// Name identifies the shelf in logs, metrics and entity paths.
	// Required, unique.
	Name string `yaml:"name"`

	// Address is host or host:port of the shelf manager's LAN channel.
	// Required. Default port: 623, the IPMI RMCP port.
	Address string `yaml:"address"`

	// Username is the IPMI user the agent logs in as. Required. Use a user
	// whose privilege limit is what the agent needs (operator for sensor
	// reads and hot-swap; administrator only where fencing is enabled).
	Username string `yaml:"username"`

	// Password says where the password comes from; it is never written in
	// this file. Required.
	Password SecretRef `yaml:"password"`

	// CipherSuites is the allow-list of RMCP+ cipher suites in order of
	// preference. Default: [17, 3] (HMAC-SHA256 before HMAC-SHA1, both
	// with AES-CBC-128). Only 17 and 3 may be listed: suite 0 and every
	// suite without integrity or confidentiality are refused, and so is
	// IPMI 1.5.
	CipherSuites []int `yaml:"cipher_suites"`

	// RequestTimeout bounds one attempt of one request. Default: 1s, well
	// above a shelf manager's usual answer time (a few ms) yet short
	// enough to retry within a fencing deadline.
	RequestTimeout Duration `yaml:"request_timeout"`

	// Retries is how many times a read-only request is resent after a
	// timeout. Default: 2. Requests that change state are never resent.
	Retries *int `yaml:"retries"`

	// Window is how many requests may be in flight on the session at once.
	// Default: 4; shelf managers queue more poorly than they answer.
	Window int `yaml:"window"`

	// ChassisInstance is the instance of the shelf's entity path root
	// {ADVANCEDTCA_CHASSIS,N}, which keeps the resources of several
	// shelves in one domain apart. Default: the shelf's position in this
	// list, from 1; set it when the list may be reordered, so that the
	// entity paths clients know stay the same.
	ChassisInstance int `yaml:"chassis_instance"`

	// TrapSources are the addresses whose PET traps are hints for this
	// shelf (a shelf manager may send from another address than the one
	// the agent reaches it at, e.g. its redundant peer). Default: the
	// host of Address when it is an IP address.
	TrapSources []string `yaml:"trap_sources"`

	trapSources []netip.Addr
}

// APIConfig is the HTTPS API. Every connection is mutual TLS 1.3.
type APIConfig struct {
	// Listen is the TCP address of the API. Default: none, the API is
	// off. A cluster manager on the same blade needs only a loopback
	// address (127.0.0.1:PORT); listen on other addresses only when
	// peers or operators query from elsewhere.
	Listen string `yaml:"listen"`

	// TLS names the agent's certificate, its key and the CA that signs
	// client certificates. Required when Listen is set. Re-read on
	// reload, without dropping open connections.
	TLS TLSConfig `yaml:"tls"`

	// Roles maps a client identity (the first URI SAN of its
	// certificate, else its common name) to its roles: viewer (read),
	// operator (hot-swap, LEDs, alarm acknowledgement), fencer (power and
	// reset), diagnostics (dumps and logs), admin (everything). Default:
	// none, so every client is refused until it is named here; least
	// privilege. Applied again on reload.
	Roles map[string][]string `yaml:"roles"`

	// RateLimit bounds the requests of each client.
	RateLimit RateLimitConfig `yaml:"rate_limit"`
}

// TLSConfig names the files of the agent's TLS identity.
type TLSConfig struct {
	// Cert is the PEM certificate chain the agent presents. Required
	// with api.listen.
	Cert string `yaml:"cert"`
	// Key is the PEM private key: a secret, so a systemd credential or a
	// 0600 file (or a prompt). Required with api.listen.
	Key SecretRef `yaml:"key"`
	// CA is the PEM bundle of CAs whose client certificates are
	// accepted. Required with api.listen: there is no anonymous access.
	CA string `yaml:"ca"`
}

// RateLimitConfig is a token bucket.
type RateLimitConfig struct {
	// PerSecond is the sustained requests per second of one client.
	// Default: 50, far above what a cluster manager polling every second
	// needs, low enough that a runaway client cannot starve the shelf
	// sessions.
	PerSecond float64 `yaml:"per_second"`
	// Burst is the bucket size. Default: 100, so a client's start-up
	// burst (resources, then the RDRs of each) passes.
	Burst int `yaml:"burst"`
}

// AuditConfig is the audit log.
type AuditConfig struct {
	// Path is the append-only audit log file. Default:
	// /var/log/hpiagent/audit.log (systemd's LogsDirectory=hpiagent).
	Path string `yaml:"path"`

	// RotateMiB is the size in MiB at which the log is rotated: the file
	// becomes <path>.<last seq> and a new file continues the hash chain
	// (hpictl audit verify takes the files oldest first). Rotated files
	// are never deleted by the agent: they are evidence, archive them.
	// Default: 64, a file still quick to verify at start; -1: never
	// rotate.
	RotateMiB int `yaml:"rotate_mib"`
}

// PETConfig is the PET (SNMP trap) receiver. Traps are hints: they make
// the agent poll the shelf now; state is always confirmed over IPMI.
type PETConfig struct {
	// Listen is the UDP address to receive traps on. Default: none, no
	// receiver (polling alone sees every event, only later). The SNMP
	// trap port is 162.
	Listen string `yaml:"listen"`

	// Users are the SNMPv3 USM users that may send traps. Required with
	// listen unless communities are set.
	Users []PETUser `yaml:"users"`

	// MinSecurity is the lowest SNMPv3 level accepted: authPriv,
	// authNoPriv or noAuthNoPriv. Default: authPriv; anything less lets a
	// stranger on the management LAN read or forge traps.
	MinSecurity string `yaml:"min_security"`

	// Communities, when given, allow SNMPv1/v2c traps with one of these
	// community strings (secrets, so references). Default: none, v1/v2c
	// refused: they are unauthenticated and replayable. Such traps are
	// flagged insecure and counted.
	Communities []SecretRef `yaml:"communities"`

	// SourceRate and SourceBurst bound the traps of one source address
	// per second. Default: 20 and 200, enough for a shelf manager's burst
	// at a blade insertion.
	SourceRate  float64 `yaml:"source_rate"`
	SourceBurst int     `yaml:"source_burst"`
	// GlobalRate and GlobalBurst bound all sources together. Default:
	// 200 and 1000.
	GlobalRate  float64 `yaml:"global_rate"`
	GlobalBurst int     `yaml:"global_burst"`
}

// PETUser is an SNMPv3 USM user.
type PETUser struct {
	// Name is the USM user name. Required.
	Name string `yaml:"name"`
	// Auth is sha or sha256. Default: sha256 (HMAC-192-SHA-256).
	Auth string `yaml:"auth"`
	// AuthPassphrase is the authentication passphrase. Required unless
	// min_security is noAuthNoPriv.
	AuthPassphrase SecretRef `yaml:"auth_passphrase"`
	// Priv is aes or none. Default: aes (AES-128-CFB).
	Priv string `yaml:"priv"`
	// PrivPassphrase is the privacy passphrase. Required with priv aes.
	PrivPassphrase SecretRef `yaml:"priv_passphrase"`
	// EngineIDs, in hex, are the only sending engines accepted for this
	// user. Default: any engine that proves knowledge of the keys.
	EngineIDs []string `yaml:"engine_ids"`
}

// MonitorConfig tunes polling. Applied again on reload.
type MonitorConfig struct {
	// PollInterval is how often a sensor is read. Default: 10s; a
	// threshold crossing is also reported by the SEL and by traps.
	PollInterval Duration `yaml:"poll_interval"`
	// HotSwapPollInterval is how often the FRU hot-swap sensors are
	// read. Default: 2s, so an opened handle is seen at once.
	HotSwapPollInterval Duration `yaml:"hotswap_poll_interval"`
	// SELPollInterval is how often the shelf manager's SEL is read for
	// new events. Default: 2s.
	SELPollInterval Duration `yaml:"sel_poll_interval"`
	// ThresholdRefresh is how often sensor thresholds are read again.
	// Default: 5m; they rarely change.
	ThresholdRefresh Duration `yaml:"threshold_refresh"`
	// InFlight bounds the sensor reads running at once per shelf.
	// Default: 4, matching the session window.
	InFlight int `yaml:"in_flight"`
}

// DomainConfig tunes the HPI domain.
type DomainConfig struct {
	// EventLogCapacity is the number of entries of the domain event log.
	// Default: 1024. Takes effect at start only (a reload keeps the log).
	EventLogCapacity int `yaml:"event_log_capacity"`
	// EventLogOverflow is overwrite (the oldest entry goes when the log is
	// full) or drop (new entries are dropped, the HPI default, keeping the
	// oldest evidence). Default: overwrite, because the API's event stream
	// resumes from the event log: with drop, a long-running agent whose
	// log filled up could no longer replay what a reconnecting client
	// missed (it would be told of a gap every time).
	EventLogOverflow string `yaml:"event_log_overflow"`
}

// SecretRef names where a secret is read from. Exactly one field is set.
type SecretRef struct {
	// Credential is the name of a systemd credential, read from
	// $CREDENTIALS_DIRECTORY/<name> (LoadCredential= or
	// LoadCredentialEncrypted= in the unit).
	Credential string `yaml:"credential"`
	// File is an explicitly named file holding the secret; it must not be
	// readable or writable by group or others (mode 0600 or stricter).
	File string `yaml:"file"`
	// Prompt asks for the secret on the terminal at start. Only when
	// stdin is a terminal; kept across reloads.
	Prompt bool `yaml:"prompt"`

	key  string
	line int
}

func (r *SecretRef) setPosition(path string, line int) { r.key, r.line = path, line }

// IsSet reports whether any source is named.
func (r SecretRef) IsSet() bool { return r.Credential != "" || r.File != "" || r.Prompt }

func (r SecretRef) sources() int {
	n := 0
	for _, b := range []bool{r.Credential != "", r.File != "", r.Prompt} {
		if b {
			n++
		}
	}
	return n
}

// Duration is a time.Duration written as "1s", "250ms".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration (e.g. 500ms, 2s), got %s", kindName(n))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 500ms, 2s)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// DefaultCipherSuites is the cipher suite allow-list when none is configured.
var DefaultCipherSuites = []int{17, 3}

// Defaults of the configuration.
const (
	DefaultAuditPath        = "/var/log/hpiagent/audit.log"
	DefaultAPIRate          = 50
	DefaultAPIBurst         = 100
	DefaultEventLogCapacity = 1024
	DefaultSELPollInterval  = 2 * time.Second
)

// Roles a client may be given in api.roles.
var knownRoles = []string{"viewer", "operator", "fencer", "diagnostics", "admin"}

// LoadConfig reads and validates a configuration file. Errors name the
// key and line.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes a YAML configuration strictly and applies defaults.
// Every error is a *ConfigError.
func ParseConfig(b []byte) (*Config, error) {
	c := &Config{pos: positions{}}
	if err := decodeStrict(b, c, c.pos); err != nil {
		return nil, err
	}
	if err := c.setDefaultsAndValidate(); err != nil {
		return nil, err
	}
	return c, nil
}

// errAt makes a *ConfigError for key.
func (c *Config) errAt(key, format string, args ...any) error {
	return &ConfigError{Line: c.pos.lineOf(key), Key: key, Err: fmt.Errorf(format, args...)}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func (c *Config) setDefaultsAndValidate() error {
	if c.pos == nil {
		c.pos = positions{}
	}
	switch c.LogLevel {
	case "":
		c.LogLevel = "info"
	case "debug", "info", "warn", "error":
	default:
		return c.errAt("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case "":
		c.LogFormat = "auto"
	case "auto", "text", "json", "journal":
	default:
		return c.errAt("log_format", "%q is not one of auto, text, json, journal", c.LogFormat)
	}
	names := map[string]int{}
	for i := range c.Shelves {
		if err := c.validateShelf(i, names); err != nil {
			return err
		}
	}
	if err := c.validateAPI(); err != nil {
		return err
	}
	if c.Audit.Path == "" {
		c.Audit.Path = DefaultAuditPath
	}
	switch r := c.Audit.RotateMiB; {
	case r == 0:
		c.Audit.RotateMiB = audit.DefaultMaxBytes >> 20
	case r == -1:
	case r < 1 || r > 1<<20:
		return c.errAt("audit.rotate_mib", "%d is not 1..%d (or -1: never rotate)", r, 1<<20)
	}
	if err := c.validatePET(); err != nil {
		return err
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	if err := c.validateHotSwap(); err != nil {
		return err
	}
	m := &c.Monitor
	for _, d := range []struct {
		key string
		v   *Duration
		def time.Duration
		min time.Duration
	}{
		{"monitor.poll_interval", &m.PollInterval, 10 * time.Second, 100 * time.Millisecond},
		{"monitor.hotswap_poll_interval", &m.HotSwapPollInterval, 2 * time.Second, 100 * time.Millisecond},
		{"monitor.sel_poll_interval", &m.SELPollInterval, DefaultSELPollInterval, 100 * time.Millisecond},
		{"monitor.threshold_refresh", &m.ThresholdRefresh, 5 * time.Minute, time.Second},
	} {
		if *d.v == 0 {
			*d.v = Duration(d.def)
		} else if time.Duration(*d.v) < d.min {
			return c.errAt(d.key, "%s is below the minimum of %s", time.Duration(*d.v), d.min)
		}
	}
	if m.InFlight == 0 {
		m.InFlight = 4
	} else if m.InFlight < 1 || m.InFlight > 32 {
		return c.errAt("monitor.in_flight", "%d is outside 1..32", m.InFlight)
	}
	if c.Domain.EventLogCapacity == 0 {
		c.Domain.EventLogCapacity = DefaultEventLogCapacity
	} else if c.Domain.EventLogCapacity < 16 || c.Domain.EventLogCapacity > 1<<20 {
		return c.errAt("domain.event_log_capacity", "%d is outside 16..1048576", c.Domain.EventLogCapacity)
	}
	switch c.Domain.EventLogOverflow {
	case "":
		c.Domain.EventLogOverflow = "overwrite"
	case "drop", "overwrite":
	default:
		return c.errAt("domain.event_log_overflow", "%q is not drop or overwrite", c.Domain.EventLogOverflow)
	}
	return nil
}

func (c *Config) validateShelf(i int, names map[string]int) error {
	s := &c.Shelves[i]
	where := fmt.Sprintf("shelves[%d]", i)
	if s.Name == "" {
		return c.errAt(where+".name", "required")
	}
	if !nameRE.MatchString(s.Name) {
		return c.errAt(where+".name", "%q: use letters, digits, '.', '_' and '-' (at most 63)", s.Name)
	}
	if first, dup := names[s.Name]; dup {
		return c.errAt(where+".name", "duplicate shelf name %q (also shelves[%d])", s.Name, first)
	}
	names[s.Name] = i
	if s.Address == "" {
		return c.errAt(where+".address", "required")
	}
	if _, _, err := net.SplitHostPort(s.Address); err != nil {
		s.Address = net.JoinHostPort(s.Address, "623")
	}
	host, p, err := net.SplitHostPort(s.Address)
	if err != nil {
		return c.errAt(where+".address", "%q: %v", s.Address, err)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return c.errAt(where+".address", "bad port %q", p)
	}
	if host == "" {
		return c.errAt(where+".address", "no host in %q", s.Address)
	}
	if s.Username == "" {
		return c.errAt(where+".username", "required")
	}
	if len(s.Username) > 16 {
		return c.errAt(where+".username", "IPMI user names are at most 16 bytes")
	}
	if err := c.checkRef(where+".password", s.Password, true); err != nil {
		return err
	}
	if len(s.CipherSuites) == 0 {
		s.CipherSuites = slices.Clone(DefaultCipherSuites)
	}
	for j, cs := range s.CipherSuites {
		if cs != 17 && cs != 3 {
			return c.errAt(fmt.Sprintf("%s.cipher_suites[%d]", where, j), "suite %d refused: only 17 and 3 (authenticated, integrity-protected and encrypted) are allowed", cs)
		}
	}
	if s.RequestTimeout == 0 {
		s.RequestTimeout = Duration(time.Second)
	}
	if s.RequestTimeout < 0 {
		return c.errAt(where+".request_timeout", "must be positive")
	}
	if s.Retries == nil {
		r := 2
		s.Retries = &r
	} else if *s.Retries < 0 || *s.Retries > 10 {
		return c.errAt(where+".retries", "%d is outside 0..10", *s.Retries)
	}
	if s.Window == 0 {
		s.Window = 4
	} else if s.Window < 1 || s.Window > 32 {
		return c.errAt(where+".window", "%d is outside 1..32", s.Window)
	}
	if s.ChassisInstance < 0 || s.ChassisInstance > 255 {
		return c.errAt(where+".chassis_instance", "%d is outside 1..255", s.ChassisInstance)
	}
	s.trapSources = nil
	if len(s.TrapSources) == 0 {
		if a, err := netip.ParseAddr(host); err == nil {
			s.trapSources = []netip.Addr{a.Unmap()}
		}
	}
	for j, t := range s.TrapSources {
		a, err := netip.ParseAddr(t)
		if err != nil {
			return c.errAt(fmt.Sprintf("%s.trap_sources[%d]", where, j), "%q is not an IP address", t)
		}
		s.trapSources = append(s.trapSources, a.Unmap())
	}
	return nil
}

// checkRef checks that ref names exactly one source (or none when not
// required).
func (c *Config) checkRef(key string, ref SecretRef, required bool) error {
	switch n := ref.sources(); {
	case n == 0 && required:
		return c.errAt(key, "required: set one of credential, file or prompt")
	case n > 1:
		return c.errAt(key, "set exactly one of credential, file or prompt")
	}
	return nil
}

func (c *Config) validateAPI() error {
	a := &c.API
	if a.Listen == "" {
		for _, k := range []string{"api.tls", "api.roles"} {
			if _, set := c.pos[k]; set {
				return c.errAt(k, "given without api.listen")
			}
		}
	} else {
		host, p, err := net.SplitHostPort(a.Listen)
		if err != nil {
			return c.errAt("api.listen", "%q: want host:port", a.Listen)
		}
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
			return c.errAt("api.listen", "bad port %q", p)
		}
		if host != "" && net.ParseIP(host) == nil && host != "localhost" {
			return c.errAt("api.listen", "%q: the host must be an IP address", host)
		}
		if a.TLS.Cert == "" {
			return c.errAt("api.tls.cert", "required with api.listen")
		}
		if err := c.checkRef("api.tls.key", a.TLS.Key, true); err != nil {
			return err
		}
		if a.TLS.CA == "" {
			return c.errAt("api.tls.ca", "required with api.listen: every client presents a certificate")
		}
	}
	for id, roles := range a.Roles {
		key := fmt.Sprintf("api.roles[%q]", id)
		if id == "" {
			return c.errAt(key, "empty identity")
		}
		if len(roles) == 0 {
			return c.errAt(key, "no roles: remove the entry instead")
		}
		for _, r := range roles {
			if !slices.Contains(knownRoles, r) {
				return c.errAt(key, "unknown role %q (known: %s)", r, strings.Join(knownRoles, ", "))
			}
		}
	}
	if a.RateLimit.PerSecond == 0 {
		a.RateLimit.PerSecond = DefaultAPIRate
	} else if a.RateLimit.PerSecond < 0 {
		return c.errAt("api.rate_limit.per_second", "must be positive")
	}
	if a.RateLimit.Burst == 0 {
		a.RateLimit.Burst = DefaultAPIBurst
	} else if a.RateLimit.Burst < 1 {
		return c.errAt("api.rate_limit.burst", "must be at least 1")
	}
	return nil
}

func (c *Config) validatePET() error {
	p := &c.PET
	if p.Listen == "" {
		for _, k := range []string{"pet.users", "pet.communities"} {
			if _, set := c.pos[k]; set {
				return c.errAt(k, "given without pet.listen")
			}
		}
	} else {
		if _, err := netip.ParseAddrPort(p.Listen); err != nil {
			return c.errAt("pet.listen", "%q: want ip:port", p.Listen)
		}
		if len(p.Users) == 0 && len(p.Communities) == 0 {
			return c.errAt("pet.users", "required with pet.listen: at least one SNMPv3 user")
		}
	}
	switch p.MinSecurity {
	case "":
		p.MinSecurity = "authPriv"
	case "authPriv", "authNoPriv", "noAuthNoPriv":
	default:
		return c.errAt("pet.min_security", "%q is not one of authPriv, authNoPriv, noAuthNoPriv", p.MinSecurity)
	}
	seen := map[string]bool{}
	for i := range p.Users {
		u := &p.Users[i]
		where := fmt.Sprintf("pet.users[%d]", i)
		if u.Name == "" {
			return c.errAt(where+".name", "required")
		}
		if seen[u.Name] {
			return c.errAt(where+".name", "duplicate user %q", u.Name)
		}
		seen[u.Name] = true
		switch u.Auth {
		case "":
			u.Auth = "sha256"
		case "sha", "sha256":
		case "none":
			if p.MinSecurity != "noAuthNoPriv" {
				return c.errAt(where+".auth", "none needs pet.min_security noAuthNoPriv")
			}
		default:
			return c.errAt(where+".auth", "%q is not sha or sha256", u.Auth)
		}
		switch u.Priv {
		case "":
			u.Priv = "aes"
		case "aes":
		case "none":
			if p.MinSecurity == "authPriv" {
				return c.errAt(where+".priv", "none needs pet.min_security authNoPriv or lower")
			}
		default:
			return c.errAt(where+".priv", "%q is not aes or none", u.Priv)
		}
		if u.Auth != "none" {
			if err := c.checkRef(where+".auth_passphrase", u.AuthPassphrase, true); err != nil {
				return err
			}
		}
		if u.Priv == "aes" {
			if u.Auth == "none" {
				return c.errAt(where+".priv", "privacy needs authentication")
			}
			if err := c.checkRef(where+".priv_passphrase", u.PrivPassphrase, true); err != nil {
				return err
			}
		}
		for j, e := range u.EngineIDs {
			if b, err := hex.DecodeString(e); err != nil || len(b) < 5 || len(b) > 32 {
				return c.errAt(fmt.Sprintf("%s.engine_ids[%d]", where, j), "%q is not an engine ID (5 to 32 bytes in hex)", e)
			}
		}
	}
	for i, r := range p.Communities {
		if err := c.checkRef(fmt.Sprintf("pet.communities[%d]", i), r, true); err != nil {
			return err
		}
	}
	for _, r := range []struct {
		key string
		f   *float64
		b   *int
	}{{"pet.source_rate", &p.SourceRate, &p.SourceBurst}, {"pet.global_rate", &p.GlobalRate, &p.GlobalBurst}} {
		if *r.f < 0 {
			return c.errAt(r.key, "must not be negative")
		}
		if *r.b < 0 {
			return c.errAt(r.key[:len(r.key)-4]+"burst", "must not be negative")
		}
	}
	return nil
}

// errNoSecretSource is returned for a SecretRef with no source.
var errNoSecretSource = errors.New("no secret source configured")
