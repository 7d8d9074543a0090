package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration of one hpiagent. Every field says its
// default and why; a zero value means "use the default".
type Config struct {
	// Shelves are the shelf managers this agent talks to over RMCP+.
	// Default: none (an agent without shelves only serves its local BMC).
	Shelves []ShelfConfig `yaml:"shelves"`

	// LogLevel is one of debug, info, warn, error. Default: info, which
	// logs session set-up and loss but not every request.
	LogLevel string `yaml:"log_level"`
}

// ShelfConfig is one shelf manager reached over IPMI LAN (RMCP+).
type ShelfConfig struct {
	// Name identifies the shelf in logs and metrics. Required.
	Name string `yaml:"name"`

	// Address is host or host:port of the shelf manager's LAN channel.
	// Default port: 623, the IPMI RMCP port.
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
}

// Duration is a time.Duration written as "1s", "250ms".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 500ms, 2s): %w", n.Line, n.Value, err)
	}
	*d = Duration(v)
	return nil
}

// DefaultCipherSuites is the cipher suite allow-list when none is configured.
var DefaultCipherSuites = []int{17, 3}

// LoadConfig reads and validates a configuration file. Unknown keys are errors.
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
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if err := c.setDefaultsAndValidate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) setDefaultsAndValidate() error {
	switch c.LogLevel {
	case "":
		c.LogLevel = "info"
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	names := map[string]bool{}
	for i := range c.Shelves {
		s := &c.Shelves[i]
		where := fmt.Sprintf("shelves[%d]", i)
		if s.Name == "" {
			return fmt.Errorf("%s.name: required", where)
		}
		where = fmt.Sprintf("shelves[%d] (%s)", i, s.Name)
		if names[s.Name] {
			return fmt.Errorf("%s.name: duplicate shelf name", where)
		}
		names[s.Name] = true
		if s.Address == "" {
			return fmt.Errorf("%s.address: required", where)
		}
		if _, _, err := net.SplitHostPort(s.Address); err != nil {
			s.Address = net.JoinHostPort(s.Address, "623")
		}
		if _, p, err := net.SplitHostPort(s.Address); err != nil {
			return fmt.Errorf("%s.address: %w", where, err)
		} else if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s.address: bad port %q", where, p)
		}
		if s.Username == "" {
			return fmt.Errorf("%s.username: required", where)
		}
		if (s.Password.Credential == "") == (s.Password.File == "") {
			return fmt.Errorf("%s.password: set exactly one of credential or file", where)
		}
		if len(s.CipherSuites) == 0 {
			s.CipherSuites = slices.Clone(DefaultCipherSuites)
		}
		for _, cs := range s.CipherSuites {
			if cs != 17 && cs != 3 {
				return fmt.Errorf("%s.cipher_suites: suite %d refused: only 17 and 3 (authenticated, integrity-protected and encrypted) are allowed", where, cs)
			}
		}
		if s.RequestTimeout == 0 {
			s.RequestTimeout = Duration(time.Second)
		}
		if s.RequestTimeout < 0 {
			return fmt.Errorf("%s.request_timeout: must be positive", where)
		}
		if s.Retries == nil {
			r := 2
			s.Retries = &r
		} else if *s.Retries < 0 {
			return fmt.Errorf("%s.retries: must not be negative", where)
		}
		if s.Window == 0 {
			s.Window = 4
		} else if s.Window < 1 || s.Window > 32 {
			return fmt.Errorf("%s.window: %d is outside 1..32", where, s.Window)
		}
	}
	return nil
}
