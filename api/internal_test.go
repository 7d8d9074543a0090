package api

import (
	"bytes"
	"container/list"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"hpiagent/hpi"
)

func TestCursor(t *testing.T) {
	tests := []struct {
		name  string
		start uint64
		ids   []uint64
		// want lists what is sent: an ID, or -from,-to pairs for gaps
		// written as [2]uint64 in gaps.
		sent []uint64
		gaps [][2]uint64
	}{
		{"contiguous", 0, []uint64{1, 2, 3}, []uint64{1, 2, 3}, nil},
		{"duplicates dropped", 2, []uint64{1, 2, 3, 3, 2, 4}, []uint64{3, 4}, nil},
		{"gap reported once", 5, []uint64{6, 9, 10}, []uint64{6, 9, 10}, [][2]uint64{{7, 8}}},
		{"gap at the start", 0, []uint64{4, 5}, []uint64{4, 5}, [][2]uint64{{1, 3}}},
		{"stale after gap dropped", 1, []uint64{5, 3, 4, 6}, []uint64{5, 6}, [][2]uint64{{2, 4}}},
	}
	for _, tt := range tests {
		c := cursor{last: tt.start}
		var sent []uint64
		var gaps [][2]uint64
		for _, id := range tt.ids {
			send, from, to := c.offer(id)
			if to > 0 {
				gaps = append(gaps, [2]uint64{from, to})
			}
			if send {
				sent = append(sent, id)
			}
		}
		if !slices.Equal(sent, tt.sent) || !slices.Equal(gaps, tt.gaps) {
			t.Errorf("%s: sent %v gaps %v, want %v %v", tt.name, sent, gaps, tt.sent, tt.gaps)
		}
	}
}

func TestParseResume(t *testing.T) {
	tests := []struct {
		header, query string
		after         uint64
		ok, err       bool
	}{
		{"", "", 0, false, false},
		{"17", "", 17, true, false},
		{"", "0", 0, true, false},
		{"17", "3", 17, true, false},
		{" 8 ", "", 8, true, false},
		{"x", "", 0, false, true},
		{"", "-1", 0, false, true},
		{"", "18446744073709551616", 0, false, true},
	}
	for _, tt := range tests {
		after, ok, err := parseResume(tt.header, tt.query)
		if after != tt.after || ok != tt.ok || (err != nil) != tt.err {
			t.Errorf("parseResume(%q, %q) = %d %v %v", tt.header, tt.query, after, ok, err)
		}
	}
}

func FuzzParseResume(f *testing.F) {
	for _, s := range []string{"", "0", "17", "x", "-1", "18446744073709551615", " 3"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, header, query string) {
		after, ok, err := parseResume(header, query)
		if err != nil && (ok || after != 0) {
			t.Fatalf("error with a result: %d %v %v", after, ok, err)
		}
	})
}

func TestControlPermission(t *testing.T) {
	tests := []struct {
		rec  hpi.CtrlRec
		want Permission
	}{
		{hpi.CtrlRec{Num: hpi.ATCACtrlNumBlueLED, OutputType: hpi.CtrlLED}, PermLED},
		{hpi.CtrlRec{Num: 7, OutputType: hpi.CtrlLED}, PermLED},
		{hpi.ATCAFRUActivationControl(), PermHotSwap},
		{hpi.CtrlRec{Num: hpi.ATCACtrlNumFRUControl, OutputType: hpi.CtrlGeneric}, PermReset},
		{hpi.CtrlRec{Num: hpi.ATCACtrlNumFRUIPMCReset, OutputType: hpi.CtrlReset}, PermReset},
		{hpi.CtrlRec{Num: hpi.ATCACtrlNumDesiredPwr, OutputType: hpi.CtrlGeneric}, PermPower},
		{hpi.CtrlRec{Num: 9, OutputType: hpi.CtrlPowerState}, PermPower},
		{hpi.CtrlRec{Num: 9, OutputType: hpi.CtrlReset}, PermReset},
		{hpi.CtrlRec{Num: 9, OutputType: hpi.CtrlFanSpeed}, PermControl},
		{hpi.CtrlRec{Num: 9, OutputType: hpi.CtrlOEM}, PermControl},
	}
	for _, tt := range tests {
		if got := controlPermission(&tt.rec); got != tt.want {
			t.Errorf("control %#x output %d: %q, want %q", tt.rec.Num, tt.rec.OutputType, got, tt.want)
		}
	}
}

// TestRolePermissionsMatrix spells out the access matrix once more so
// that a change of the access matrix is a deliberate one.
func TestRolePermissionsMatrix(t *testing.T) {
	all := []Permission{PermRead, PermHotSwap, PermLED, PermAlarmAck, PermPower, PermReset, PermControl, PermDiagnostics, PermFence, PermOverride, PermEraseCerts}
	const letters = "rhlapzcdfoe"
	want := map[Role]string{ // one letter per permission in the order of all
		RoleViewer:      "r----------",
		RoleOperator:    "rhla------e",
		RoleFencer:      "r---pz--f--",
		RoleDiagnostics: "r------d--e",
		RoleAdmin:       "rhlapzcdfoe",
	}
	if !slices.Equal(all, allPermissions) {
		t.Errorf("allPermissions %v, want %v", allPermissions, all)
	}
	for _, role := range AllRoles() {
		var b strings.Builder
		for i, p := range all {
			if allowed([]Role{role}, p) {
				b.WriteByte(letters[i])
			} else {
				b.WriteByte('-')
			}
		}
		if b.String() != want[role] {
			t.Errorf("%s: %s, want %s", role, b.String(), want[role])
		}
	}
	for _, tt := range []struct {
		role Role
		want bool
	}{{RoleViewer, false}, {RoleDiagnostics, false}, {RoleOperator, true}, {RoleFencer, true}, {RoleAdmin, true}} {
		if got := allowed([]Role{tt.role}, PermAnyControl); got != tt.want {
			t.Errorf("%s any control: %v, want %v", tt.role, got, tt.want)
		}
	}
	if allowed(nil, PermRead) || !allowed(nil, PermNone) {
		t.Errorf("no role: read allowed or PermNone refused")
	}
}

// FuzzControlRequest feeds arbitrary bodies to the control request decoder
// and the state check: never a panic, and an accepted state always has the
// control's type and lies within its limits.
func FuzzControlRequest(f *testing.F) {
	for _, s := range []string{
		`{"state":{"type":"DIGITAL","digital":"ON"}}`,
		`{"state":{"type":"ANALOG","analog":7}}`,
		`{"state":{"type":"ANALOG","analog":70}}`,
		`{"state":{"type":"DISCRETE","discrete":3}}`,
		`{"state":{"type":"STREAM","stream":"0a0b"}}`,
		`{"state":{"type":"TEXT","text":"hello"}}`,
		`{"state":{"type":"digital","digital":"pulse_on"}}`,
		`{"state":{}}`, `{}`, `[]`, `{"state":{"type":"DIGITAL"}} {}`, `{"x":1}`,
	} {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, body []byte, ctype uint8) {
		rec := hpi.CtrlRec{Num: 1, OutputType: hpi.CtrlLED, Type: hpi.CtrlType(ctype % 5), AnalogMin: 0, AnalogMax: 15,
			DefaultMode: hpi.CtrlDefaultMode{Mode: hpi.CtrlModeManual}}
		r := httptest.NewRequest("PUT", "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		r.Body = http.MaxBytesReader(w, r.Body, 1024)
		var req ControlRequest
		if err := decode(&call{w: w, r: r}, &req); err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("decode error %T %v is not an API error", err, err)
			}
			return
		}
		st, err := req.State.toHPI(&rec)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("state error %T %v is not an API error", err, err)
			}
			return
		}
		if st.Type != rec.Type {
			t.Fatalf("state type %d for a control of type %d", st.Type, rec.Type)
		}
		if rec.Type == hpi.CtrlTypeAnalog && (st.Analog < rec.AnalogMin || st.Analog > rec.AnalogMax) {
			t.Fatalf("analog %d accepted outside %d..%d", st.Analog, rec.AnalogMin, rec.AnalogMax)
		}
		if _, err := json.Marshal(req.State); err != nil {
			t.Fatal(err)
		}
	})
}

// TestOpenAPIMatchesRoutes checks that every registered route is in the
// OpenAPI document and every documented operation is registered, and that
// the documented error codes are exactly ErrorCodes.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Properties map[string]struct {
						Enum []string `json:"enum"`
					} `json:"properties"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	registered := map[string]bool{}
	for _, r := range Routes() {
		registered[r.Method+" "+r.Path] = true
		ops, ok := doc.Paths[r.Path]
		if !ok || ops[strings.ToLower(r.Method)] == nil {
			t.Errorf("route %s %s missing from the OpenAPI document", r.Method, r.Path)
			continue
		}
		var op struct {
			Perm    string `json:"x-permission"`
			Audited bool   `json:"x-audited"`
		}
		if err := json.Unmarshal(ops[strings.ToLower(r.Method)], &op); err != nil {
			t.Fatal(err)
		}
		wantPerm := string(r.Permission)
		if wantPerm == "" {
			wantPerm = "none"
		}
		if op.Perm != wantPerm || op.Audited != r.Mutating {
			t.Errorf("%s %s: documented permission %q audited %v, want %q %v", r.Method, r.Path, op.Perm, op.Audited, wantPerm, r.Mutating)
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			if !registered[strings.ToUpper(m)+" "+p] {
				t.Errorf("documented %s %s is not a registered route", strings.ToUpper(m), p)
			}
		}
	}
	codes := doc.Components.Schemas["Error"].Properties["error"].Properties["code"].Enum
	var want []string
	for c := range ErrorCodes() {
		want = append(want, c)
	}
	slices.Sort(codes)
	slices.Sort(want)
	if !slices.Equal(codes, want) {
		t.Errorf("documented error codes %v, want %v", codes, want)
	}
}

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &Server{cfg: Config{RateLimit: 0.25, RateBurst: 2, MaxClients: 2, Now: func() time.Time { return now }}.withDefaults(),
		limiters: map[string]*list.Element{}, lru: list.New()}
	steps := []struct {
		id      string
		advance time.Duration
		ok      bool
		wait    time.Duration
	}{
		{"a", 0, true, 0},
		{"a", 0, true, 0},
		{"a", 0, false, 4 * time.Second},
		{"a", time.Second, false, 3 * time.Second},
		{"b", 0, true, 0},
		{"a", 3 * time.Second, true, 0},
		{"a", 0, false, 4 * time.Second},
		{"c", 0, true, 0}, // evicts b, the least recently used
		{"b", 0, true, 0}, // a fresh bucket for b, evicting a
		{"a", 0, true, 0}, // a was forgotten: a full bucket again
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		wait, ok := s.limit(st.id)
		if ok != st.ok || wait != st.wait {
			t.Errorf("step %d (%s): ok %v wait %v, want %v %v", i, st.id, ok, wait, st.ok, st.wait)
		}
		if s.lru.Len() > 2 || len(s.limiters) > 2 {
			t.Fatalf("step %d: %d limiters kept, want at most 2", i, len(s.limiters))
		}
	}
}

// FuzzCertSummary feeds arbitrary stored certificates to the summary
// decoder: never a panic, and a summary without error names the ID asked
// for.
func FuzzCertSummary(f *testing.F) {
	const id = "0123456789abcdef0123456789abcdef"
	for _, s := range []string{
		`{"id":"` + id + `","fru":"{SYSTEM_BOARD,5}","node":"a","target":"/dev/sdb","outcome":"success","completed":"2026-11-23T10:00:00Z","signature":{"algorithm":"ed25519","key_id":"ab","value":"AAAA"}}`,
		`{"id":"` + id + `"}`, `{"id":"other"}`, `{"id":"` + id + `","completed":"yesterday"}`, `{"id":"` + id + `","signature":null}`,
		`[]`, `null`, ``, `{`, `{"id":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := certSummary(id, b)
		if s.ID != id {
			t.Fatalf("summary of %s names %q", id, s.ID)
		}
		if _, err := json.Marshal(s); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzWorkflowRequest feeds arbitrary bodies to the optional-body decoder
// and the reason check: never a panic; an accepted reason is bounded and
// free of control characters.
func FuzzWorkflowRequest(f *testing.F) {
	for _, s := range []string{`{"reason":"disk destroyed"}`, ``, `  `, `{}`, `{"reason":"a\nb"}`, `{"reason":1}`, `{"x":1}`, `{"reason":"r"} {}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		w := httptest.NewRecorder()
		r.Body = http.MaxBytesReader(w, r.Body, 1024)
		var req WorkflowRequest
		if err := decodeOptional(&call{w: w, r: r}, &req); err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("decode error %T %v is not an API error", err, err)
			}
			return
		}
		reason, err := checkReason(req.Reason)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("reason error %T %v is not an API error", err, err)
			}
			return
		}
		if len(reason) > maxReasonLen || strings.ContainsFunc(reason, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("reason %q accepted", reason)
		}
	})
}
