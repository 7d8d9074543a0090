package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`
shelves:
  - name: shelf-a
    address: 10.0.0.2
    username: hpiagent
    password: {credential: shelf-a.password}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Shelves[0]
	if s.Address != "10.0.0.2:623" {
		t.Errorf("address = %q, want default port 623", s.Address)
	}
	if len(s.CipherSuites) != 2 || s.CipherSuites[0] != 17 || s.CipherSuites[1] != 3 {
		t.Errorf("cipher suites = %v, want [17 3]", s.CipherSuites)
	}
	if *s.Retries != 2 || s.Window != 4 || c.LogLevel != "info" {
		t.Errorf("defaults not applied: %+v", s)
	}
}

func TestParseConfigErrors(t *testing.T) {
	base := "shelves:\n  - name: a\n    address: 127.0.0.1:6230\n    username: u\n    password: {file: /x}\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key names key and line", base + "    pasword: x\n", "line 6: field pasword not found"},
		{"suite 0 refused", base + "    cipher_suites: [0]\n", "suite 0 refused"},
		{"suite 1 refused", base + "    cipher_suites: [3, 1]\n", "suite 1 refused"},
		{"two secret sources", strings.Replace(base, "{file: /x}", "{file: /x, credential: y}", 1), "exactly one"},
		{"no secret", strings.Replace(base, "    password: {file: /x}\n", "", 1), "password: set exactly one"},
		{"bad duration", base + "    request_timeout: soon\n", "line 6: \"soon\" is not a duration"},
		{"window", base + "    window: 99\n", "window: 99 is outside"},
		{"log level", "log_level: chatty\n", "log_level"},
		{"duplicate", base + strings.Replace(base, "shelves:\n", "", 1), "duplicate shelf name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("s3cret\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	private := write("private", 0o600)
	open := write("open", 0o644)
	write("cred", 0o644) // systemd credentials are protected by their directory

	if b, err := ReadSecret(SecretRef{File: private}, env(nil)); err != nil || string(b) != "s3cret" {
		t.Errorf("0600 file: %q, %v", b, err)
	}
	_, err := ReadSecret(SecretRef{File: open}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("0644 file: err = %v, want a refusal that does not show the secret", err)
	}
	if b, err := ReadSecret(SecretRef{Credential: "cred"}, env(map[string]string{"CREDENTIALS_DIRECTORY": dir})); err != nil || string(b) != "s3cret" {
		t.Errorf("credential: %q, %v", b, err)
	}
	if _, err := ReadSecret(SecretRef{Credential: "cred"}, env(nil)); err == nil || !strings.Contains(err.Error(), "CREDENTIALS_DIRECTORY") {
		t.Errorf("credential without directory: %v", err)
	}
	if _, err := ReadSecret(SecretRef{Credential: "../private"}, env(map[string]string{"CREDENTIALS_DIRECTORY": dir})); err == nil {
		t.Error("credential name with a path was accepted")
	}
}

func TestExampleConfigParses(t *testing.T) {
	if _, err := LoadConfig("../../configs/hpiagent.example.yaml"); err != nil {
		t.Fatal(err)
	}
}
