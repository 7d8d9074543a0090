package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/cmd/hpictl/internal/apiclient"
	"hpiagent/internal/pki"
)

// labPKI is a CA with an agent (server) certificate and an operator's
// client certificate, on disk as hpictl pki would write them.
type labPKI struct {
	dir string
	ca  *pki.CA
	srv *pki.Cert
}

func newLabPKI(t *testing.T) *labPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("lab-ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue(pki.IssueRequest{Name: "agent", Kind: pki.KindServer, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ca.Issue(pki.IssueRequest{Name: "ops", Kind: pki.KindClient, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Save(dir); err != nil {
		t.Fatal(err)
	}
	return &labPKI{dir: dir, ca: ca, srv: srv}
}

func (p *labPKI) flags(endpoint string) []string {
	return []string{"--endpoint", endpoint, "--ca", filepath.Join(p.dir, pki.CACertFile),
		"--cert", pki.CertFile(p.dir, "ops"), "--key", pki.KeyFile(p.dir, "ops")}
}

// request is what the mimic saw.
type request struct {
	Method, Path, Body, Identity string
}

// mimic is an HTTPS server answering like hpiagent's API, with the shapes
// of package apiclient (which the compat test holds to the server's).
type mimic struct {
	mu   sync.Mutex
	reqs []request
	srv  *httptest.Server
}

func (m *mimic) last() request {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.reqs) == 0 {
		return request{}
	}
	return m.reqs[len(m.reqs)-1]
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q,"request_id":"rq42"}}`, code, msg)
}

func u32(v uint32) *uint32 { return &v }

func startMimic(t *testing.T, p *labPKI) *mimic {
	t.Helper()
	m := &mimic{}
	ts := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)
	blade := apiclient.Resource{ID: 3, EntityPath: "{SYSTEM_CHASSIS,1}{PHYSICAL_SLOT,3}", Tag: "Blade 3\x1b[2J", Capabilities: []string{"RESOURCE", "RDR", "SENSOR", "FRU", "POWER"}, Severity: "OK"}
	shm := apiclient.Resource{ID: 1, EntityPath: "{SYSTEM_CHASSIS,1}{SHELF_MANAGER,1}", Tag: "ShMC", Capabilities: []string{"RESOURCE"}, Severity: "MAJOR"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/whoami", func(w http.ResponseWriter, r *http.Request) {
		id, _ := pki.Identity(r.TLS.PeerCertificates[0])
		reply(w, apiclient.WhoAmI{Identity: id, Roles: []string{"operator"}, Permissions: []string{"read", "hotswap"}})
	})
	broken := apiclient.Resource{ID: 7, EntityPath: "{SYSTEM_CHASSIS,1}{PHYSICAL_SLOT,7}", Tag: "Blade 7", Capabilities: []string{"RESOURCE", "RDR", "SENSOR"}, Severity: "OK"}
	mux.HandleFunc("GET /v1/resources", func(w http.ResponseWriter, r *http.Request) { reply(w, []apiclient.Resource{shm, blade, broken}) })
	mux.HandleFunc("GET /v1/resources/{id}/sensors", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "3" {
			reply(w, []apiclient.Sensor{{ResourceID: 3, Num: 4, Name: "Temp CPU", Units: "DEGREES_C",
				Reading: &apiclient.Reading{Supported: true, Type: "FLOAT64", Value: 41.5}, EventState: 0x0001, Timestamp: &ts}})
			return
		}
		apiErr(w, 502, "hardware_error", "shelf manager unreachable")
	})
	mux.HandleFunc("GET /v1/resources/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("id") {
		case "3", blade.EntityPath:
			reply(w, blade)
		default:
			apiErr(w, 404, "not_found", fmt.Sprintf("no resource %q", r.PathValue("id")))
		}
	})
	mux.HandleFunc("GET /v1/resources/{id}/rdrs", func(w http.ResponseWriter, r *http.Request) {
		reply(w, []apiclient.RDR{
			{RecordID: 1, Type: "SENSOR_RDR", Num: 4, Name: "Temp CPU", Sensor: &apiclient.SensorRec{Type: 1, Units: "DEGREES_C"}},
			{RecordID: 2, Type: "SENSOR_RDR", Num: 9, Name: "Broken", Sensor: &apiclient.SensorRec{}},
			{RecordID: 3, Type: "CTRL_RDR", Num: 1, Name: "LED 1", Control: &apiclient.ControlRec{OutputType: "LED", Type: "DIGITAL", Permission: "led"}},
		})
	})
	mux.HandleFunc("GET /v1/resources/{id}/sensors/{num}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("num") == "4" {
			reply(w, apiclient.Sensor{ResourceID: 3, Num: 4, Name: "Temp CPU", Units: "DEGREES_C",
				Reading: &apiclient.Reading{Supported: true, Type: "FLOAT64", Value: 41.5}, EventState: 0x0001, Timestamp: &ts,
				Thresholds: &apiclient.Thresholds{UpCritical: &apiclient.Reading{Supported: true, Type: "FLOAT64", Value: 90.0}}})
			return
		}
		apiErr(w, 404, "not_found", "no sensor "+r.PathValue("num"))
	})
	mux.HandleFunc("GET /v1/resources/{id}/inventory", func(w http.ResponseWriter, r *http.Request) {
		reply(w, []apiclient.Inventory{{IdrID: 0, Name: "FRU 0", Areas: []apiclient.Area{{AreaID: 1, Type: 2, Fields: []apiclient.Field{{FieldID: 1, Type: 4, Value: "SN-1234"}}}}}})
	})
	mux.HandleFunc("GET /v1/resources/{id}/hotswap", func(w http.ResponseWriter, r *http.Request) {
		reply(w, apiclient.HotSwap{ResourceID: 3, State: "ACTIVE", Known: true, MState: "M4"})
	})
	mux.HandleFunc("POST /v1/resources/{id}/hotswap", func(w http.ResponseWriter, r *http.Request) {
		reply(w, apiclient.HotSwap{ResourceID: 3, State: "EXTRACTION_PENDING", Known: true, MState: "M5"})
	})
	mux.HandleFunc("PUT /v1/resources/{id}/power", func(w http.ResponseWriter, r *http.Request) {
		apiErr(w, 403, "forbidden", `roles [operator] do not grant "power"`)
	})
	mux.HandleFunc("GET /v1/resources/{id}/power", func(w http.ResponseWriter, r *http.Request) {
		reply(w, apiclient.Power{ResourceID: 3, State: "ON"})
	})
	mux.HandleFunc("POST /v1/resources/{id}/reset", func(w http.ResponseWriter, r *http.Request) {
		apiErr(w, 409, "capability", "resource has no reset capability")
	})
	mux.HandleFunc("PUT /v1/resources/{id}/controls/{num}", func(w http.ResponseWriter, r *http.Request) {
		var req apiclient.ControlRequest
		json.NewDecoder(r.Body).Decode(&req)
		reply(w, req.State)
	})
	mux.HandleFunc("GET /v1/eventlog", func(w http.ResponseWriter, r *http.Request) {
		reply(w, apiclient.EventLog{Info: apiclient.EventLogInfo{Entries: 1, Enabled: true}, Entries: []apiclient.EventLogEntry{
			{EntryID: 1, Timestamp: ts, Event: apiclient.Event{ID: 17, Type: "HOTSWAP", Severity: "INFORMATIONAL", EntityPath: blade.EntityPath, Timestamp: ts,
				HotSwap: &apiclient.HotSwapEvent{State: "ACTIVE", PreviousState: "INSERTION_PENDING", Cause: "OPERATOR_INIT"}}}}})
	})
	mux.HandleFunc("GET /v1/alarms", func(w http.ResponseWriter, r *http.Request) {
		reply(w, []apiclient.Alarm{{ID: 5, Timestamp: ts, Severity: "MAJOR", Condition: apiclient.Condition{Type: "SENSOR", EntityPath: blade.EntityPath, ResourceID: 3, SensorNum: 4, Name: "Temp CPU"}}})
	})
	mux.HandleFunc("POST /v1/alarms/{id}/ack", func(w http.ResponseWriter, r *http.Request) {
		reply(w, apiclient.Alarm{ID: 5, Acknowledged: true})
	})
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"openapi":"3.1.0"}`))
	})
	rec := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		id, _ := pki.Identity(r.TLS.PeerCertificates[0])
		m.mu.Lock()
		m.reqs = append(m.reqs, request{r.Method, r.URL.EscapedPath(), strings.TrimSpace(string(body)), id})
		m.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
	sc, err := pki.TLSConfigServer(p.ca, p.srv)
	if err != nil {
		t.Fatal(err)
	}
	m.srv = httptest.NewUnstartedServer(rec)
	m.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	m.srv.TLS = sc
	m.srv.StartTLS()
	t.Cleanup(m.srv.Close)
	return m
}

// runCLI runs hpictl with env (HOME points at an empty directory unless
// env says otherwise) and returns exit status, stdout and stderr.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	home := t.TempDir()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, getenv: func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		if k == "HOME" {
			return home
		}
		return ""
	}}
	code := a.run(context.Background(), args)
	return code, out.String(), errb.String()
}

func TestCommandsAgainstMimic(t *testing.T) {
	t.Parallel()
	p := newLabPKI(t)
	m := startMimic(t, p)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string // substrings of stdout
		wantErr  []string // substrings of stderr
		wantReq  request  // last request (Identity always checked)
	}{
		{"whoami", []string{"whoami"}, 0, []string{"hpiagent://client/ops", "operator"}, nil, request{Method: "GET", Path: "/v1/whoami"}},
		{"resources", []string{"resources"}, 0, []string{"{SYSTEM_CHASSIS,1}{PHYSICAL_SLOT,3}", "ShMC", `Blade 3\x1b[2J`}, nil, request{Method: "GET", Path: "/v1/resources"}},
		{"resource by entity path", []string{"resource", "{SYSTEM_CHASSIS,1}{PHYSICAL_SLOT,3}"}, 0, []string{"POWER"}, nil,
			request{Method: "GET", Path: "/v1/resources/%7BSYSTEM_CHASSIS%2C1%7D%7BPHYSICAL_SLOT%2C3%7D"}},
		{"unknown resource", []string{"resource", "99"}, ExitNotFound, nil, []string{"not_found", `no resource "99"`, "rq42"}, request{Method: "GET", Path: "/v1/resources/99"}},
		{"rdrs", []string{"rdrs", "3"}, 0, []string{"Temp CPU", "LED DIGITAL"}, nil, request{Method: "GET", Path: "/v1/resources/3/rdrs"}},
		{"sensor", []string{"sensor", "3", "4"}, 0, []string{"41.5 °C", "upper critical", "90"}, nil, request{Method: "GET", Path: "/v1/resources/3/sensors/4"}},
		{"inventory", []string{"inventory", "3"}, 0, []string{"SN-1234"}, nil, request{Method: "GET", Path: "/v1/resources/3/inventory"}},
		{"hotswap state", []string{"hotswap", "3"}, 0, []string{"ACTIVE", "M4"}, nil, request{Method: "GET", Path: "/v1/resources/3/hotswap"}},
		{"hotswap extract", []string{"hotswap", "3", "extract"}, 0, []string{"EXTRACTION_PENDING"}, nil,
			request{Method: "POST", Path: "/v1/resources/3/hotswap", Body: `{"action":"REQUEST_EXTRACTION"}`}},
		{"hotswap bad action", []string{"hotswap", "3", "yank"}, ExitUsage, nil, []string{"insert, extract"}, request{}},
		{"power state", []string{"power", "3"}, 0, []string{"resource 3 power ON"}, nil, request{Method: "GET", Path: "/v1/resources/3/power"}},
		{"power refused", []string{"power", "3", "off"}, ExitRefused, nil, []string{"forbidden", "do not grant", "rq42"},
			request{Method: "PUT", Path: "/v1/resources/3/power", Body: `{"state":"OFF"}`}},
		{"reset conflict", []string{"reset", "3", "cold"}, ExitError, nil, []string{"capability"},
			request{Method: "POST", Path: "/v1/resources/3/reset", Body: `{"action":"COLD_RESET"}`}},
		{"led", []string{"led", "3", "1", "on"}, 0, []string{"DIGITAL ON"}, nil,
			request{Method: "PUT", Path: "/v1/resources/3/controls/1", Body: `{"state":{"type":"DIGITAL","digital":"ON"}}`}},
		{"control analog", []string{"control", "3", "2", "analog", "--", "-5"}, 0, []string{"ANALOG -5"}, nil,
			request{Method: "PUT", Path: "/v1/resources/3/controls/2", Body: `{"state":{"type":"ANALOG","analog":-5}}`}},
		{"eventlog", []string{"eventlog", "--after", "3", "--limit", "10"}, 0, []string{"17", "hot-swap INSERTION_PENDING -> ACTIVE"}, nil,
			request{Method: "GET", Path: "/v1/eventlog"}},
		{"alarms", []string{"alarms"}, 0, []string{"MAJOR", "Temp CPU"}, nil, request{Method: "GET", Path: "/v1/alarms"}},
		{"ack", []string{"ack", "5"}, 0, []string{"alarm 5 acknowledged"}, nil, request{Method: "POST", Path: "/v1/alarms/5/ack"}},
		{"events without follow", []string{"events"}, 0, []string{"17"}, nil, request{Method: "GET", Path: "/v1/eventlog"}},
		{"openapi", []string{"openapi"}, 0, []string{`"openapi": "3.1.0"`}, nil, request{Method: "GET", Path: "/v1/openapi.json"}},
		{"json output", []string{"hotswap", "3", "--json"}, 0, []string{`"m_state": "M4"`}, nil, request{Method: "GET", Path: "/v1/resources/3/hotswap"}},
		{"sensors of one resource", []string{"sensors", "3"}, 0, []string{"Temp CPU", "41.5"}, nil, request{Method: "GET", Path: "/v1/resources/3/sensors"}},
		{"sensors with a failing resource", []string{"sensors"}, ExitError, []string{"Temp CPU", "41.5", "error: hardware_error"}, []string{"1 of 2 resources"}, request{}},
		{"unknown command", []string{"frobnicate"}, ExitUsage, nil, []string{"unknown command"}, request{}},
		{"missing argument", []string{"rdrs"}, ExitUsage, nil, []string{"want arguments"}, request{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{}, tc.args...), p.flags(m.srv.URL)...)
			if tc.args[0] == "frobnicate" {
				args = tc.args
			}
			// Flags after "--" would be positional: put them first there.
			if i := indexOf(tc.args, "--"); i >= 0 {
				args = append(append([]string{tc.args[0]}, p.flags(m.srv.URL)...), tc.args[1:]...)
			}
			before := m.last()
			code, out, errs := runCLI(t, nil, args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, out, errs)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			if strings.Contains(out, "\x1b") || strings.Contains(errs, "\x1b") {
				t.Errorf("raw escape character printed to the terminal")
			}
			got := m.last()
			if tc.wantReq.Method == "" {
				return
			}
			if got == before {
				t.Fatal("no request reached the server")
			}
			if got.Method != tc.wantReq.Method || got.Path != tc.wantReq.Path || got.Body != tc.wantReq.Body || got.Identity != "hpiagent://client/ops" {
				t.Fatalf("request %+v, want %+v from hpiagent://client/ops", got, tc.wantReq)
			}
		})
	}
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

func TestConnectionFailures(t *testing.T) {
	t.Parallel()
	p := newLabPKI(t)
	m := startMimic(t, p)
	other := newLabPKI(t) // another CA

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"nothing listening", append([]string{"whoami"}, p.flags(closed)...), ExitUnreachable},
		{"server of another CA", append([]string{"whoami"}, other.flags(m.srv.URL)...), ExitTLS},
		{"client of another CA", []string{"whoami", "--endpoint", m.srv.URL, "--ca", filepath.Join(p.dir, pki.CACertFile),
			"--cert", pki.CertFile(other.dir, "ops"), "--key", pki.KeyFile(other.dir, "ops")}, ExitTLS},
		{"plain http endpoint", []string{"whoami", "--endpoint", "http://127.0.0.1:1", "--ca", "x", "--cert", "y", "--key", "z"}, ExitUsage},
		{"no endpoint", []string{"whoami"}, ExitUsage},
	}
	for _, tc := range tests {
		code, out, errs := runCLI(t, nil, tc.args...)
		if code != tc.wantCode {
			t.Errorf("%s: exit %d, want %d\n%s%s", tc.name, code, tc.wantCode, out, errs)
		}
	}
	// A readable key is refused before anything is sent.
	os.Chmod(pki.KeyFile(p.dir, "ops"), 0o644)
	if code, _, errs := runCLI(t, nil, append([]string{"whoami"}, p.flags(m.srv.URL)...)...); code != ExitUsage || !strings.Contains(errs, "group or others") {
		t.Errorf("0644 key: exit %d: %s", code, errs)
	}
}

func TestSettingsPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgFile, []byte("endpoint: https://file:1\nca: certs/ca.crt\ncert: /abs/file.crt\nkey: file.key\ntimeout: 5s\n"), 0o600)
	xdg := t.TempDir()
	os.MkdirAll(filepath.Join(xdg, "hpictl"), 0o700)
	os.WriteFile(filepath.Join(xdg, "hpictl", "config.yaml"), []byte("endpoint: https://xdg:1\n"), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("endpiont: https://typo:1\n"), 0o600)

	tests := []struct {
		name    string
		fl      flagSettings
		env     map[string]string
		want    Settings
		wantErr string
	}{
		{"file only", flagSettings{Config: cfgFile}, nil,
			Settings{Endpoint: "https://file:1", CA: filepath.Join(dir, "certs/ca.crt"), Cert: "/abs/file.crt", Key: filepath.Join(dir, "file.key"), Timeout: 5 * time.Second}, ""},
		{"env over file", flagSettings{Config: cfgFile}, map[string]string{EnvEndpoint: "https://env:1", EnvKey: "/env.key"},
			Settings{Endpoint: "https://env:1", CA: filepath.Join(dir, "certs/ca.crt"), Cert: "/abs/file.crt", Key: "/env.key", Timeout: 5 * time.Second}, ""},
		{"flag over env", flagSettings{Config: cfgFile, Endpoint: "https://flag:1", Timeout: time.Second}, map[string]string{EnvEndpoint: "https://env:1"},
			Settings{Endpoint: "https://flag:1", CA: filepath.Join(dir, "certs/ca.crt"), Cert: "/abs/file.crt", Key: filepath.Join(dir, "file.key"), Timeout: time.Second}, ""},
		{"config file from environment", flagSettings{}, map[string]string{EnvConfig: cfgFile},
			Settings{Endpoint: "https://file:1", CA: filepath.Join(dir, "certs/ca.crt"), Cert: "/abs/file.crt", Key: filepath.Join(dir, "file.key"), Timeout: 5 * time.Second}, ""},
		{"default file under XDG_CONFIG_HOME", flagSettings{}, map[string]string{"XDG_CONFIG_HOME": xdg}, Settings{Endpoint: "https://xdg:1"}, ""},
		{"missing default file is fine", flagSettings{}, map[string]string{"HOME": dir}, Settings{}, ""},
		{"missing named file is not", flagSettings{Config: filepath.Join(dir, "nope.yaml")}, nil, Settings{}, "no such file"},
		{"unknown key", flagSettings{Config: bad}, nil, Settings{}, "endpiont"},
	}
	for _, tc := range tests {
		got, err := resolveSettings(tc.fl, func(k string) string { return tc.env[k] })
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		got.Sources = nil
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %+v %v\nwant %+v", tc.name, got, err, tc.want)
		}
	}
}

// TestConfigFileAgainstMimic: a config file alone is enough to talk to
// the agent, and an environment variable overrides it.
func TestConfigFileAgainstMimic(t *testing.T) {
	t.Parallel()
	p := newLabPKI(t)
	m := startMimic(t, p)
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".config", "hpictl"), 0o700)
	cfg := fmt.Sprintf("endpoint: https://127.0.0.1:1\nca: %s\ncert: %s\nkey: %s\n", filepath.Join(p.dir, pki.CACertFile), pki.CertFile(p.dir, "ops"), pki.KeyFile(p.dir, "ops"))
	os.WriteFile(filepath.Join(home, ".config", "hpictl", "config.yaml"), []byte(cfg), 0o600)
	env := map[string]string{"HOME": home}
	if code, _, _ := runCLI(t, env, "whoami"); code != ExitUnreachable {
		t.Fatalf("file's endpoint: exit %d, want unreachable", code)
	}
	env[EnvEndpoint] = m.srv.URL
	if code, out, errs := runCLI(t, env, "whoami"); code != 0 || !strings.Contains(out, "hpiagent://client/ops") {
		t.Fatalf("env endpoint over file: exit %d\n%s%s", code, out, errs)
	}
	if code, _, _ := runCLI(t, env, "whoami", "--endpoint", "https://127.0.0.1:1"); code != ExitUnreachable {
		t.Fatalf("flag over env: exit %d", code)
	}
}

// TestServerName: an agent whose certificate names only a DNS name is
// reached by address with --server-name, and refused without it.
func TestServerName(t *testing.T) {
	t.Parallel()
	p := newLabPKI(t)
	srv, err := p.ca.Issue(pki.IssueRequest{Name: "blade5", Kind: pki.KindServer, DNSNames: []string{"blade5.example"}, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p.srv = srv
	m := startMimic(t, p)
	if code, _, errs := runCLI(t, nil, append([]string{"whoami"}, p.flags(m.srv.URL)...)...); code != ExitTLS {
		t.Fatalf("without --server-name: exit %d, want %d: %s", code, ExitTLS, errs)
	}
	if code, out, errs := runCLI(t, nil, append([]string{"whoami", "--server-name", "blade5.example"}, p.flags(m.srv.URL)...)...); code != 0 || !strings.Contains(out, "hpiagent://client/ops") {
		t.Fatalf("with --server-name: exit %d\n%s%s", code, out, errs)
	}
}
