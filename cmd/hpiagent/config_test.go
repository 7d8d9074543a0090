package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	if *s.Retries != 2 || s.Window != 4 || c.LogLevel != "info" || c.LogFormat != "auto" {
		t.Errorf("defaults not applied: %+v", s)
	}
	if len(s.trapSources) != 1 || s.trapSources[0].String() != "10.0.0.2" {
		t.Errorf("trap sources = %v, want the shelf manager's address", s.trapSources)
	}
	if c.API.Listen != "" || c.PET.Listen != "" {
		t.Errorf("API or PET on by default: %+v %+v", c.API, c.PET)
	}
	if c.PET.MinSecurity != "authPriv" || c.Domain.EventLogCapacity != 1024 || c.Domain.EventLogOverflow != "overwrite" {
		t.Errorf("defaults not applied: %+v %+v", c.PET, c.Domain)
	}
	if time.Duration(c.Monitor.PollInterval) != 10*time.Second || c.Monitor.InFlight != 4 || c.Audit.Path != DefaultAuditPath {
		t.Errorf("defaults not applied: %+v %+v", c.Monitor, c.Audit)
	}
	if c.API.RateLimit.PerSecond != DefaultAPIRate || c.API.RateLimit.Burst != DefaultAPIBurst {
		t.Errorf("rate limit defaults not applied: %+v", c.API.RateLimit)
	}
}

// goodConfig is a configuration with every section; the error table
// breaks one thing at a time.
const goodConfig = `log_level: info
shelves:
  - name: a
    address: 127.0.0.1:6230
    username: u
    password: {file: /x}
api:
  listen: 127.0.0.1:0
  tls:
    cert: /c.pem
    key: {credential: api.key}
    ca: /ca.pem
  roles:
    hpictl-admin: [admin]
    cluster: [viewer, operator]
pet:
  listen: 127.0.0.1:0
  users:
    - name: shelfmgr
      auth_passphrase: {credential: pet.auth}
      priv_passphrase: {credential: pet.priv}
monitor:
  poll_interval: 5s
domain:
  event_log_capacity: 2048
`

func TestParseConfigGood(t *testing.T) {
	c, err := ParseConfig([]byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.API.Roles["cluster"]; len(got) != 2 || got[1] != "operator" {
		t.Errorf("roles = %v", c.API.Roles)
	}
	if u := c.PET.Users[0]; u.Auth != "sha256" || u.Priv != "aes" || u.AuthPassphrase.Credential != "pet.auth" {
		t.Errorf("pet user = %+v", u)
	}
	if time.Duration(c.Monitor.PollInterval) != 5*time.Second || c.Domain.EventLogCapacity != 2048 {
		t.Errorf("monitor/domain = %+v %+v", c.Monitor, c.Domain)
	}
}

// TestParseConfigErrors checks that each bad configuration gives an error
// that names the key path and the line.
func TestParseConfigErrors(t *testing.T) {
	good := goodConfig
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("test bug: %q not in the good configuration", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	tests := []struct {
		name, yaml string
		line       int
		key, want  string
	}{
		{"unknown top-level key", "log_levl: info\n", 1, "log_levl", "unknown key"},
		{"unknown key nested in a shelf", replace("    username: u\n", "    username: u\n    pasword: x\n"), 6, "shelves[0].pasword", "unknown key"},
		{"unknown key nested deeper", replace("    ca: /ca.pem\n", "    ca: /ca.pem\n    crl: /crl.pem\n"), 13, "api.tls.crl", "unknown key"},
		{"unknown key in a secret ref", replace("{file: /x}", "{path: /x}"), 6, "shelves[0].password.path", "unknown key"},
		{"key given twice", replace("    username: u\n", "    username: u\n    username: v\n"), 6, "shelves[0].username", "given twice (first on line 5)"},
		{"wrong type: string for int", replace("  - name: a\n", "  - name: a\n    window: many\n"), 4, "shelves[0].window", `"many" is not an integer`},
		{"wrong type: mapping for list", replace("shelves:\n", "shelves: {a: 1}\nx:\n"), 2, "shelves", "want a list"},
		{"wrong type: list for string", "log_level: [info]\n", 1, "log_level", "want a string"},
		{"wrong type: roles not a list", replace("[admin]", "admin"), 14, `api.roles["hpictl-admin"]`, "want a list"},
		{"bad duration", replace("poll_interval: 5s", "poll_interval: soon"), 23, "monitor.poll_interval", `"soon" is not a duration`},
		{"duration too short", replace("poll_interval: 5s", "poll_interval: 1ms"), 23, "monitor.poll_interval", "below the minimum"},
		{"missing required name", replace("  - name: a\n", "  - name: \"\"\n"), 3, "shelves[0].name", "required"},
		{"missing required address", replace("    address: 127.0.0.1:6230\n", ""), 3, "shelves[0].address", "required"},
		{"missing password", replace("    password: {file: /x}\n", ""), 3, "shelves[0].password", "required"},
		{"two secret sources", replace("{file: /x}", "{file: /x, credential: y}"), 6, "shelves[0].password", "exactly one"},
		{"duplicate shelf name", replace("api:\n", "  - name: a\n    address: 10.0.0.1\n    username: u\n    password: {prompt: true}\napi:\n"), 7, "shelves[1].name", `duplicate shelf name "a"`},
		{"suite 0 in the allow-list", replace("    username: u\n", "    username: u\n    cipher_suites: [17, 0]\n"), 6, "shelves[0].cipher_suites[1]", "suite 0 refused"},
		{"suite 1 in the allow-list", replace("    username: u\n", "    username: u\n    cipher_suites:\n      - 1\n"), 7, "shelves[0].cipher_suites[0]", "suite 1 refused"},
		{"window out of range", replace("    username: u\n", "    username: u\n    window: 99\n"), 6, "shelves[0].window", "99 is outside"},
		{"bad port", replace("127.0.0.1:6230", "127.0.0.1:70000"), 4, "shelves[0].address", "bad port"},
		{"log level", "\n\nlog_level: chatty\n", 3, "log_level", "not one of"},
		{"api without tls key", replace("    key: {credential: api.key}\n", ""), 9, "api.tls.key", "required"},
		{"api without ca", replace("    ca: /ca.pem\n", ""), 9, "api.tls.ca", "required"},
		{"unknown role", replace("[viewer, operator]", "[viewer, root]"), 15, `api.roles["cluster"]`, `unknown role "root"`},
		{"api tls without listen", replace("  listen: 127.0.0.1:0\n  tls:", "  tls:"), 8, "api.tls", "without api.listen"},
		{"api listen not host:port", replace("  listen: 127.0.0.1:0\n  tls:", "  listen: everywhere\n  tls:"), 8, "api.listen", "want host:port"},
		{"pet without users", replace("  users:\n    - name: shelfmgr\n      auth_passphrase: {credential: pet.auth}\n      priv_passphrase: {credential: pet.priv}\n", ""), 16, "pet.users", "required with pet.listen"},
		{"pet user without priv passphrase", replace("      priv_passphrase: {credential: pet.priv}\n", ""), 19, "pet.users[0].priv_passphrase", "required"},
		{"pet priv none under authPriv", replace("      priv_passphrase: {credential: pet.priv}\n", "      priv: none\n"), 21, "pet.users[0].priv", "authNoPriv or lower"},
		{"pet bad engine id", replace("      priv_passphrase: {credential: pet.priv}\n", "      priv_passphrase: {credential: pet.priv}\n      engine_ids: [zz]\n"), 22, "pet.users[0].engine_ids[0]", "not an engine ID"},
		{"pet min security", replace("pet:\n", "pet:\n  min_security: none\n"), 17, "pet.min_security", "not one of"},
		{"event log overflow", replace("  event_log_capacity: 2048\n", "  event_log_overflow: wrap\n"), 25, "domain.event_log_overflow", "not drop or overwrite"},
		{"event log capacity", replace("2048", "3"), 25, "domain.event_log_capacity", "outside"},
		{"yaml syntax", "shelves:\n  - name: a\n   bad indent: [\n", 1, "", "not valid YAML"},
		{"alias refused", "a: &x info\nlog_level: *x\n", 1, "a", "unknown key"},
		{"alias refused in a known key", "log_level: &x info\nlog_format: *x\n", 2, "log_format", "aliases are not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ConfigError\n%s", err, tc.yaml)
			}
			if ce.Line != tc.line || ce.Key != tc.key || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q (line %d, key %q), want line %d, key %q, containing %q\n%s", err, ce.Line, ce.Key, tc.line, tc.key, tc.want, tc.yaml)
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Errorf("message %q does not name the key", err)
			}
		})
	}
}

// TestSecretErrorsNameKeyAndLine reads the secrets of a configuration
// whose references are wrong in different ways.
func TestSecretErrorsNameKeyAndLine(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.pw")
	if err := os.WriteFile(open, []byte("hunter2-secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(dir, "private.pw")
	if err := os.WriteFile(private, []byte("hunter2-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := func(ref string) string {
		return "shelves:\n  - name: a\n    address: 10.0.0.1\n    username: u\n    password: " + ref + "\n"
	}
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	tests := []struct {
		name, ref string
		prompt    func(string) ([]byte, error)
		env       map[string]string
		want      string
	}{
		{"world-readable file", "{file: " + open + "}", nil, nil, "chmod 600"},
		{"missing file", "{file: " + filepath.Join(dir, "nope") + "}", nil, nil, "no such file"},
		{"credential without systemd", "{credential: x}", nil, nil, "CREDENTIALS_DIRECTORY is not set"},
		{"credential missing", "{credential: x}", nil, map[string]string{"CREDENTIALS_DIRECTORY": dir}, "no such file"},
		{"credential leaving its directory", "{credential: ../private.pw}", nil, map[string]string{"CREDENTIALS_DIRECTORY": dir}, "not a plain credential name"},
		{"prompt without a terminal", "{prompt: true}", nil, nil, "no terminal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(cfg(tc.ref)))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ReadSecrets(&SecretReader{LookupEnv: env(tc.env), Prompt: tc.prompt})
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Line != 5 || ce.Key != "shelves[0].password" || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want line 5, key shelves[0].password, containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("secret in the error: %v", err)
			}
		})
	}
	// The good sources.
	c, err := ParseConfig([]byte(cfg("{file: " + private + "}")))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.ReadSecrets(&SecretReader{LookupEnv: env(nil)})
	if err != nil || string(s.ShelfPasswords["a"]) != "hunter2-secret" {
		t.Fatalf("0600 file: %v", err)
	}
	asked := 0
	r := &SecretReader{LookupEnv: env(nil), Prompt: func(what string) ([]byte, error) {
		asked++
		if what != "shelves[0].password" {
			t.Errorf("prompt asked for %q", what)
		}
		return []byte("typed\n"), nil
	}}
	c, err = ParseConfig([]byte(cfg("{prompt: true}")))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a reload does not ask again
		s, err = c.ReadSecrets(r)
		if err != nil || string(s.ShelfPasswords["a"]) != "typed" {
			t.Fatalf("prompt: %q, %v", s.ShelfPasswords["a"], err)
		}
	}
	if asked != 1 {
		t.Errorf("asked %d times, want once", asked)
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
	group := write("group", 0o640)
	write("cred", 0o644) // systemd credentials are protected by their directory

	if b, err := ReadSecret(SecretRef{File: private}, env(nil)); err != nil || string(b) != "s3cret" {
		t.Errorf("0600 file: %q, %v", b, err)
	}
	for _, p := range []string{open, group} {
		_, err := ReadSecret(SecretRef{File: p}, env(nil))
		if err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: err = %v, want a refusal that does not show the secret", p, err)
		}
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
	c, err := LoadConfig("../../configs/hpiagent.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Shelves) == 0 || c.API.Listen == "" || c.PET.Listen == "" {
		t.Errorf("the example should show shelves, api and pet: %+v", c)
	}
}

// FuzzParseConfig: no input makes the decoder panic, and every error is a
// *ConfigError.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte("shelves: [{name: a, address: b, username: c, password: {prompt: true}}]\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Add([]byte("api:\n  roles:\n    x: [admin, admin]\n"))
	f.Add([]byte("- 1\n- 2\n"))
	f.Add([]byte("log_level: !!binary aGVsbG8=\n"))
	if b, err := os.ReadFile("../../configs/hpiagent.example.yaml"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := ParseConfig(b)
		var ce *ConfigError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("error %v (%T) is not a *ConfigError", err, err)
		}
	})
}

func TestCheckCommand(t *testing.T) {
	example, err := os.ReadFile("../../configs/hpiagent.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pwLine := 1 + strings.Count(string(example[:strings.Index(string(example), "    password:")]), "\n")
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("shelves:\n  - name: a\n    address: 10.0.0.1\n    username: u\n    password: {prompt: true}\n    cipher_suites: [17, 0]\n"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"check", "-config", "../../configs/hpiagent.example.yaml"}, 0, "configuration OK (1 shelves, API on 127.0.0.1:8443, PET receiver on 0.0.0.0:162)"},
		{[]string{"check", "-config", "../../configs/hpiagent.example.yaml", "-secrets"}, 1, fmt.Sprintf("line %d: shelves[0].password: credential \"shelf-a.password\": $CREDENTIALS_DIRECTORY is not set", pwLine)},
		{[]string{"check", "-config", bad}, 1, "line 6: shelves[0].cipher_suites[1]: suite 0 refused"},
	} {
		var out, errb syncBuffer
		if code := run(tc.args, &out, &errb); code != tc.code || !strings.Contains(out.String()+errb.String(), tc.out) {
			t.Errorf("%v: exit %d, output %q %q; want %d and %q", tc.args, code, out.String(), errb.String(), tc.code, tc.out)
		}
	}
}

// TestExampleClusterSectionsParse: the commented cluster, fencing and
// watchdog sections of the example, uncommented, are a valid
// configuration, so an operator who copies them starts from something
// that loads.
func TestExampleClusterSectionsParse(t *testing.T) {
	b, err := os.ReadFile("../../configs/hpiagent.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var active, commented []string
	in := false
	for _, l := range lines {
		if l == "# cluster:" {
			in = true
		}
		switch {
		case !in:
			active = append(active, l)
		case l == "#":
			commented = append(commented, "")
		case strings.HasPrefix(l, "# "):
			commented = append(commented, strings.TrimPrefix(l, "# "))
		default:
			in = false
			active = append(active, l)
		}
	}
	if len(commented) == 0 {
		t.Fatal("the example has no commented cluster section")
	}
	c, err := ParseConfig([]byte(strings.Join(active, "\n") + "\n" + strings.Join(commented, "\n") + "\n"))
	if err != nil {
		t.Fatalf("uncommented cluster sections of the example: %v", err)
	}
	if c.Cluster == nil || c.Fencing == nil || c.Watchdog == nil || len(c.Fencing.Switches) == 0 {
		t.Errorf("the example should show cluster, fencing with a fabric switch, and watchdog: %+v", c)
	}
}

func TestAuditRotateConfig(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  string
	}{
		{"log_level: info\n", 64, ""},
		{"audit:\n  rotate_mib: 8\n", 8, ""},
		{"audit:\n  rotate_mib: -1\n", -1, ""},
		{"audit:\n  rotate_mib: -5\n", 0, "line 2: audit.rotate_mib: -5 is not 1..1048576"},
		{"audit:\n  rotate_mib: big\n", 0, "audit.rotate_mib"},
	} {
		c, err := ParseConfig([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || c.Audit.RotateMiB != tc.want {
			t.Errorf("%q: rotate_mib %d, %v; want %d", tc.in, c.Audit.RotateMiB, err, tc.want)
		}
	}
}

// wantConfigError parses base with old replaced by new and checks that
// the result is a *ConfigError with a line whose text holds want; it
// returns the error.
func wantConfigError(t *testing.T, base, old, new, want string) error {
	t.Helper()
	if !strings.Contains(base, old) {
		t.Fatalf("test input %q not in the base configuration", old)
	}
	_, err := ParseConfig([]byte(strings.Replace(base, old, new, 1)))
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *ConfigError", err)
	}
	if ce.Line == 0 || !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want a line and %q", err, want)
	}
	return err
}
