package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitSettings reads the [Service] section of a unit into key → values.
func unitSettings(t *testing.T, text string) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	section := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("bad line %q", line)
			}
			m[k] = append(m[k], v)
		}
	}
	return m
}

// TestSystemdUnit checks the hardening the unit promises and, where
// systemd-analyze exists, that systemd accepts the unit.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("../../configs/hpiagent.service")
	if err != nil {
		t.Fatal(err)
	}
	s := unitSettings(t, string(b))
	for _, want := range []struct{ key, value string }{
		{"Type", "notify"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"},
		{"DevicePolicy", "closed"},
		{"DeviceAllow", "/dev/ipmi0 rw"},
		{"DeviceAllow", "/dev/watchdog rw"},
		{"RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"},
		{"SystemCallFilter", "@system-service"},
		{"ExecReload", "/bin/kill -HUP $MAINPID"},
		{"UMask", "0077"},
	} {
		found := false
		for _, v := range s[want.key] {
			found = found || v == want.value
		}
		if !found {
			t.Errorf("%s=%s missing (have %q)", want.key, want.value, s[want.key])
		}
	}
	for _, key := range []string{"WatchdogSec", "LoadCredentialEncrypted", "ReadWritePaths", "StateDirectory"} {
		if len(s[key]) == 0 {
			t.Errorf("%s missing", key)
		}
	}
	if len(s["ExecStart"]) != 1 || !strings.HasPrefix(s["ExecStart"][0], "/usr/bin/hpiagent run -config ") {
		t.Errorf("ExecStart = %q", s["ExecStart"])
	}
	// The credentials the unit loads are the ones the example
	// configuration names.
	cfg, err := LoadConfig("../../configs/hpiagent.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	loaded := map[string]bool{}
	for _, v := range s["LoadCredentialEncrypted"] {
		name, _, _ := strings.Cut(v, ":")
		loaded[name] = true
	}
	refs := []SecretRef{cfg.API.TLS.Key}
	for _, sh := range cfg.Shelves {
		refs = append(refs, sh.Password)
	}
	for _, u := range cfg.PET.Users {
		refs = append(refs, u.AuthPassphrase, u.PrivPassphrase)
	}
	for _, r := range refs {
		if r.Credential != "" && !loaded[r.Credential] {
			t.Errorf("the example configuration uses credential %q that the unit does not load", r.Credential)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is not installed")
		}
		t.Skip("systemd-analyze is not installed")
	}
	// verify checks that ExecStart's binary exists: point it at this test
	// binary.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "hpiagent.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), "/usr/bin/hpiagent", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
