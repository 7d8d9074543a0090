package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"
)

// FileConfig is hpictl's configuration file (~/.config/hpictl/config.yaml
// or --config). Every field may be overridden by the environment and by a
// flag; flags win over the environment, the environment over the file.
type FileConfig struct {
	// Endpoint is the agent's API, https://host:port. Default: none.
	Endpoint string `yaml:"endpoint"`
	// CA is the cluster CA certificate file (PEM). Default: none.
	CA string `yaml:"ca"`
	// Cert and Key are this client's certificate and key files (PEM, key
	// mode 0600). Default: none.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ServerName is the name to expect in the agent's certificate when it
	// differs from the endpoint's host. Default: the endpoint's host.
	ServerName string `yaml:"server_name"`
	// Timeout bounds one request, e.g. "60s". Default 60 s, above the
	// agent's bound on one hardware action.
	Timeout string `yaml:"timeout"`
}

// Settings are the resolved connection settings.
type Settings struct {
	Endpoint, CA, Cert, Key, ServerName string
	Timeout                             time.Duration
	// Sources says where each setting came from, for `hpictl config`.
	Sources map[string]string
}

// Environment variable names.
const (
	EnvEndpoint = "HPICTL_ENDPOINT"
	EnvCA       = "HPICTL_CA"
	EnvCert     = "HPICTL_CERT"
	EnvKey      = "HPICTL_KEY"
	EnvConfig   = "HPICTL_CONFIG"
)

// flagSettings are the connection flags as given (empty = not given).
type flagSettings struct {
	Config, Endpoint, CA, Cert, Key, ServerName string
	Timeout                                     time.Duration
}

// defaultConfigPath is $XDG_CONFIG_HOME/hpictl/config.yaml, else
// ~/.config/hpictl/config.yaml.
func defaultConfigPath(getenv func(string) string) string {
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "hpictl", "config.yaml")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "hpictl", "config.yaml")
	}
	return ""
}

// loadFileConfig reads a config file strictly (unknown keys are errors).
// Relative paths in it are relative to the file's directory.
func loadFileConfig(path string) (FileConfig, error) {
	var fc FileConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return fc, fmt.Errorf("reading config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fc, fmt.Errorf("config file %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&fc.CA, &fc.Cert, &fc.Key} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return fc, nil
}

// resolveSettings merges the file, the environment and the flags.
// An explicitly named config file (--config or HPICTL_CONFIG) must exist;
// the default one may be missing.
func resolveSettings(fl flagSettings, getenv func(string) string) (Settings, error) {
	s := Settings{Sources: map[string]string{}}
	path, explicit := fl.Config, true
	if path == "" {
		path = getenv(EnvConfig)
	}
	if path == "" {
		path, explicit = defaultConfigPath(getenv), false
	}
	var fc FileConfig
	if path != "" {
		var err error
		fc, err = loadFileConfig(path)
		if err != nil {
			if explicit || !errors.Is(err, os.ErrNotExist) {
				return s, err
			}
			fc = FileConfig{}
		}
	}
	pick := func(name, file, env, flag string) string {
		switch {
		case flag != "":
			s.Sources[name] = "flag"
			return flag
		case env != "":
			s.Sources[name] = "environment"
			return env
		case file != "":
			s.Sources[name] = "config file " + path
			return file
		}
		return ""
	}
	s.Endpoint = pick("endpoint", fc.Endpoint, getenv(EnvEndpoint), fl.Endpoint)
	s.CA = pick("ca", fc.CA, getenv(EnvCA), fl.CA)
	s.Cert = pick("cert", fc.Cert, getenv(EnvCert), fl.Cert)
	s.Key = pick("key", fc.Key, getenv(EnvKey), fl.Key)
	s.ServerName = pick("server_name", fc.ServerName, "", fl.ServerName)
	switch {
	case fl.Timeout > 0:
		s.Timeout = fl.Timeout
		s.Sources["timeout"] = "flag"
	case fc.Timeout != "":
		d, err := time.ParseDuration(fc.Timeout)
		if err != nil || d <= 0 {
			return s, fmt.Errorf("config file %s: timeout %q: want a positive duration like 60s", path, fc.Timeout)
		}
		s.Timeout = d
		s.Sources["timeout"] = "config file " + path
	}
	return s, nil
}
