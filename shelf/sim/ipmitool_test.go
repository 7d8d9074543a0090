package sim

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"hpiagent/shelf/ipmi"
)

// These tests run the real ipmitool against the simulated shelf manager
// over RMCP+ and check its output against the configured model.

type tool struct {
	t    *testing.T
	srv  *Server
	user User
}

func startSim(t *testing.T, cfg Config) *tool {
	t.Helper()
	if _, err := exec.LookPath("ipmitool"); err != nil {
		t.Skip("ipmitool not installed")
	}
	sh, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := Listen(ctx, sh, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &tool{t: t, srv: srv, user: sh.cfg.Users[0]}
}

// run executes ipmitool with the given user, cipher suite and arguments.
func (tl *tool) runAs(u User, suite int, priv string, args ...string) (string, error) {
	tl.t.Helper()
	base := []string{"-I", "lanplus", "-H", "127.0.0.1", "-p", strconv.Itoa(tl.srv.Addr().Port),
		"-U", u.Name, "-P", u.Password, "-C", strconv.Itoa(suite), "-N", "1", "-R", "1"}
	if priv != "" {
		base = append(base, "-L", priv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ipmitool", append(base, args...)...).CombinedOutput()
	return string(out), err
}

func (tl *tool) run(suite int, args ...string) string {
	tl.t.Helper()
	out, err := tl.runAs(tl.user, suite, "", args...)
	if err != nil {
		tl.t.Fatalf("ipmitool -C %d %s: %v\n%s", suite, strings.Join(args, " "), err, out)
	}
	return out
}

// field returns the value after "key :" in ipmitool's "key : value" output.
func field(t *testing.T, out, key string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(key) + `\s*:\s*(.*?)\s*$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q in output:\n%s", key, out)
	}
	return m[1]
}

func TestIpmitoolMCInfo(t *testing.T) {
	cfg := DefaultConfig()
	tl := startSim(t, cfg)
	for _, suite := range []int{3, 17} {
		out := tl.run(suite, "mc", "info")
		if got, want := field(t, out, "Manufacturer ID"), strconv.Itoa(int(tl.srv.shelf.cfg.ManufacturerID)); got != want {
			t.Errorf("-C %d: Manufacturer ID %q, want %q", suite, got, want)
		}
		if got := field(t, out, "IPMI Version"); got != "2.0" {
			t.Errorf("-C %d: IPMI version %q", suite, got)
		}
		if got := field(t, out, "Device Available"); got != "yes" {
			t.Errorf("-C %d: device available %q", suite, got)
		}
	}
}

func TestIpmitoolRefusesWeakAccess(t *testing.T) {
	tl := startSim(t, DefaultConfig())
	if out, err := tl.runAs(tl.user, 0, "", "mc", "info"); err == nil {
		t.Errorf("cipher suite 0 accepted:\n%s", out)
	}
	bad := tl.user
	bad.Password = "wrong-" + bad.Password
	if out, err := tl.runAs(bad, 17, "", "mc", "info"); err == nil {
		t.Errorf("wrong password accepted:\n%s", out)
	}
	// IPMI 1.5 sessions: the pre-session Get Channel Authentication
	// Capabilities is answered (no IPMI 1.5 authentication type offered),
	// any attempt at a session is not.
	for _, auth := range []string{"", "NONE", "MD5", "PASSWORD"} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		args := []string{"-I", "lan", "-H", "127.0.0.1", "-p", strconv.Itoa(tl.srv.Addr().Port),
			"-U", tl.user.Name, "-P", tl.user.Password, "-N", "1", "-R", "1"}
		if auth != "" {
			args = append(args, "-A", auth)
		}
		out, err := exec.CommandContext(ctx, "ipmitool", append(args, "mc", "info")...).CombinedOutput()
		cancel()
		if err == nil {
			t.Errorf("IPMI 1.5 (-I lan -A %q) accepted:\n%s", auth, out)
		}
	}
	c := tl.srv.shelf.Counters()
	if c.SessionsOpened != 0 {
		t.Errorf("%d sessions opened by refused clients", c.SessionsOpened)
	}
	if c.PreSessionV15 == 0 {
		t.Error("no IPMI 1.5 pre-session request answered")
	}
	if c.Refused == 0 {
		t.Error("Open Session with cipher suite 0 was not refused by the shelf")
	}
	for _, cmd := range []uint8{0x39, 0x3A, 0x01} { // Get Session Challenge, Activate Session, Get Device ID
		if n := c.Commands[CommandKey{tl.srv.shelf.cfg.Addr, ipmi.NetFnApp, cmd}]; n != 0 {
			t.Errorf("command 0x%02x executed %d times for refused clients", cmd, n)
		}
	}
	t.Logf("counters after the refused clients: %+v", c)
}

// convert applies the IPMI linear conversion of a sensor to a raw value.
func convert(sc SensorConfig, raw uint8) float64 {
	return (float64(sc.M)*float64(raw) + float64(sc.B)*math.Pow10(int(sc.BExp))) * math.Pow10(int(sc.RExp))
}

func near(a, b float64) bool { return math.Abs(a-b) < 0.006+math.Abs(b)*1e-6 }

// sdrLine is one line of "ipmitool sdr elist all".
type sdrLine struct{ name, num, status, entity, reading string }

func parseSDRElist(t *testing.T, out string) map[string]sdrLine {
	t.Helper()
	lines := map[string]sdrLine{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, "|")
		if len(f) != 5 {
			continue
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		// Sensor numbers repeat across controllers; key by name and number.
		lines[f[0]+"/"+f[1]] = sdrLine{f[0], f[1], f[2], f[3], f[4]}
	}
	return lines
}

func TestIpmitoolSDRAndSensors(t *testing.T) {
	for _, suite := range []int{3, 17} {
		t.Run(fmt.Sprintf("suite %d", suite), func(t *testing.T) {
			cfg := DefaultConfig()
			tl := startSim(t, cfg)
			sh := tl.srv.shelf
			// Move one reading away from its initial value so that a stale or
			// invented value cannot pass.
			b := cfg.IPMCs[1]
			if err := sh.SetSensorRaw(b.Addr, b.Sensors[1].Number, 117); err != nil {
				t.Fatal(err)
			}
			b.Sensors[1].Raw = 117
			cfg.IPMCs[1] = b
			lines := parseSDRElist(t, tl.run(suite, "sdr", "elist", "all"))
			mcs := append([]MCConfig{{Addr: cfg.Addr, Name: cfg.Name, HotSwapSensor: cfg.HotSwapSensor, Sensors: cfg.Sensors, EntityID: 0xF0, EntityInstance: 0x60}}, cfg.IPMCs...)
			n := 0
			for _, m := range mcs {
				loc, ok := lines[m.Name+"/00h"]
				if !ok || loc.reading != fmt.Sprintf("Dynamic MC @ %02Xh", m.Addr) || loc.entity != fmt.Sprintf("%d.%d", m.EntityID, m.EntityInstance) {
					t.Errorf("MC locator of 0x%02x: %+v", m.Addr, loc)
				}
				hs, ok := lines[fmt.Sprintf("%s/%02Xh", hsName(m.Name), m.HotSwapSensor)]
				if !ok || hs.reading != "Transition to M4" {
					t.Errorf("hot-swap sensor of 0x%02x: %+v", m.Addr, hs)
				}
				n += 2
				for _, sc := range m.Sensors {
					l, ok := lines[fmt.Sprintf("%s/%02Xh", sc.Name, sc.Number)]
					if !ok {
						t.Errorf("sensor %q (0x%02x on 0x%02x) missing", sc.Name, sc.Number, m.Addr)
						continue
					}
					n++
					v, err := strconv.ParseFloat(strings.Fields(l.reading)[0], 64)
					if err != nil || !near(v, convert(sc, sc.Raw)) || l.status != "ok" {
						t.Errorf("sensor %q on 0x%02x reads %q (%s), want %.3f", sc.Name, m.Addr, l.reading, l.status, convert(sc, sc.Raw))
					}
				}
			}
			if n+1 != len(lines) { // + the shelf FRU locator
				t.Errorf("%d SDR lines, model has %d", len(lines), n+1)
			}
			// "ipmitool sensor": thresholds converted with each sensor's factors.
			out := tl.run(suite, "sensor")
			for _, m := range mcs {
				for _, sc := range m.Sensors {
					var row []string
					for _, l := range strings.Split(out, "\n") {
						f := strings.Split(l, "|")
						if len(f) == 10 && strings.TrimSpace(f[0]) == sc.Name {
							v, _ := strconv.ParseFloat(strings.TrimSpace(f[1]), 64)
							if near(v, convert(sc, sc.Raw)) {
								row = f
							}
						}
					}
					if row == nil {
						t.Errorf("no sensor row for %q on 0x%02x", sc.Name, m.Addr)
						continue
					}
					// Columns: lnr, lcr, lnc, unc, ucr, unr.
					for col, idx := range []int{2, 1, 0, 3, 4, 5} {
						got := strings.TrimSpace(row[4+col])
						if sc.ThresholdMask&(1<<idx) == 0 {
							if got != "na" {
								t.Errorf("%q threshold %d: %q, want na", sc.Name, idx, got)
							}
							continue
						}
						v, err := strconv.ParseFloat(got, 64)
						if err != nil || !near(v, convert(sc, sc.Thresholds[idx])) {
							t.Errorf("%q threshold %d: %q, want %.3f", sc.Name, idx, got, convert(sc, sc.Thresholds[idx]))
						}
					}
				}
			}
		})
	}
}

func TestIpmitoolFRU(t *testing.T) {
	cfg := DefaultConfig()
	tl := startSim(t, cfg)
	out := tl.run(17, "fru", "print")
	for _, m := range cfg.IPMCs {
		if !strings.Contains(out, "Board Serial          : "+m.Serial) || !strings.Contains(out, "Board Product         : "+m.Name) {
			t.Errorf("FRU of 0x%02x (%s, %s) not printed:\n%s", m.Addr, m.Name, m.Serial, out)
		}
	}
	if !strings.Contains(out, "Shelf FRU Info (ID 1)") {
		t.Errorf("shelf FRU missing:\n%s", out)
	}
}

func TestIpmitoolPICMG(t *testing.T) {
	for _, style := range []BridgeStyle{BridgeSeparate, BridgeEmbedded} {
		t.Run(fmt.Sprintf("bridge style %d", style), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Bridge = style
			tl := startSim(t, cfg)
			sh := tl.srv.shelf
			out := tl.run(17, "picmg", "properties")
			if field(t, out, "PICMG Ext. Version") != "2.2" || field(t, out, "Max FRU Device ID") != "0x01" {
				t.Errorf("shelf manager properties:\n%s", out)
			}
			for _, m := range cfg.IPMCs {
				tgt := fmt.Sprintf("0x%02x", m.Addr)
				out := tl.run(3, "-t", tgt, "-b", "0", "picmg", "addrinfo")
				if field(t, out, "Hardware Address") != fmt.Sprintf("0x%02x", m.Addr>>1) ||
					field(t, out, "IPMB-0 Address") != tgt ||
					field(t, out, "Site ID") != fmt.Sprintf("0x%02x", m.SiteNumber) {
					t.Errorf("addrinfo of %s:\n%s", tgt, out)
				}
				out = tl.run(17, "-t", tgt, "-b", "0", "picmg", "power", "get", "0", "0")
				if field(t, out, "Actual Power Level") != strconv.Itoa(int(m.DesiredLevel)) ||
					field(t, out, "Power Multiplier") != strconv.Itoa(int(m.PowerMultiplier)) {
					t.Errorf("power of %s:\n%s", tgt, out)
				}
				for i, lvl := range m.PowerLevels {
					if got := field(t, out, fmt.Sprintf("Power Draw %d", i+1)); got != strconv.Itoa(int(lvl)*int(m.PowerMultiplier)/10) {
						t.Errorf("%s power draw %d = %s", tgt, i+1, got)
					}
				}
			}
			b := fmt.Sprintf("0x%02x", cfg.IPMCs[2].Addr)
			addr := cfg.IPMCs[2].Addr
			policy := func() string {
				return strings.Join(strings.Fields(tl.run(17, "-t", b, "picmg", "policy", "get", "0")), " ")
			}
			if got := policy(); got != "activation not locked deactivation not locked" {
				t.Errorf("policy %q", got)
			}
			tl.run(17, "-t", b, "picmg", "policy", "set", "0", "2", "2")
			if got := policy(); got != "activation not locked deactivation locked" {
				t.Errorf("policy after set %q", got)
			}
			if l, d, _ := sh.Policy(addr); l || !d {
				t.Errorf("model policy locked=%v deactivation-locked=%v", l, d)
			}
			_ = sh.Extract(addr)
			sh.Advance(5 * time.Second)
			mustState(t, sh, addr, M4)
			tl.run(17, "-t", b, "picmg", "policy", "set", "0", "2", "0")
			sh.Advance(5 * time.Second)
			mustState(t, sh, addr, M1)
			_ = sh.Insert(addr)
			sh.Advance(5 * time.Second)
			mustState(t, sh, addr, M4)
			// Deactivate as a fence does, then read back.
			tl.run(17, "-t", b, "picmg", "deactivate", "0")
			sh.Advance(5 * time.Second)
			mustState(t, sh, addr, M1)
			out = tl.run(17, "-t", b, "picmg", "power", "get", "0", "0")
			if field(t, out, "Actual Power Level") != "0" {
				t.Errorf("power after deactivation:\n%s", out)
			}
			if got := policy(); got != "activation locked deactivation not locked" {
				t.Errorf("policy after deactivation %q", got)
			}
			// Activation is refused in M1 (ipmitool reports an error) ...
			if out, err := tl.runAs(tl.user, 17, "", "-t", b, "picmg", "activate", "0"); err == nil && !strings.Contains(out, "Error") {
				t.Errorf("activate in M1 accepted:\n%s", out)
			}
			// ... and allowed from M2 once the lock is released and the shelf manager waits.
			sh.mu.Lock()
			sh.cfg.ManualActivation = true
			sh.mu.Unlock()
			tl.run(17, "-t", b, "picmg", "policy", "set", "0", "1", "0")
			mustState(t, sh, addr, M2)
			tl.run(17, "-t", b, "picmg", "activate", "0")
			mustState(t, sh, addr, M3)
			var seen []string
			for _, l := range strings.Split(tl.run(17, "sel", "elist"), "\n") {
				if strings.Contains(l, hsName(cfg.IPMCs[2].Name)) {
					f := strings.Split(l, "|")
					seen = append(seen, strings.TrimSpace(f[4]))
				}
			}
			want := []string{"Transition to M5", "Transition to M6", "Transition to M1", "Transition to M2", "Transition to M3", "Transition to M4",
				"Transition to M6", "Transition to M1", "Transition to M2", "Transition to M3"}
			if !slices.Equal(seen, want) {
				t.Errorf("SEL hot-swap events %q, want %q", seen, want)
			}
			out = tl.run(3, "chassis", "power", "status")
			if !strings.Contains(out, "Chassis Power is on") {
				t.Errorf("chassis power status: %s", out)
			}
			mon := cfg.Users[2]
			if out, err := tl.runAs(mon, 17, "USER", "chassis", "power", "off"); err == nil || !strings.Contains(out, "Insufficient privilege") {
				t.Errorf("user-level power off: %v\n%s", err, out)
			}
			if !sh.ChassisPower() {
				t.Error("shelf powered off by a user-level session")
			}
			tl.run(17, "chassis", "power", "off")
			if sh.ChassisPower() {
				t.Error("administrator could not power off")
			}
		})
	}
}

func TestIpmitoolRestartRealTime(t *testing.T) {
	if _, err := exec.LookPath("ipmitool"); err != nil {
		t.Skip("ipmitool not installed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := DefaultConfig()
	cfg.StepDelay = 50 * time.Millisecond
	srv, err := Start(ctx, cfg, "127.0.0.1:0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	tl := &tool{t: t, srv: srv, user: cfg.Users[0]}
	port := srv.Addr().Port
	tl.run(17, "mc", "info")
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if srv.Addr().Port != port {
		t.Fatalf("restarted on port %d, was %d", srv.Addr().Port, port)
	}
	if srv.Sessions() != 0 {
		t.Error("sessions survived the restart")
	}
	tl.run(3, "-t", "0x9c", "picmg", "deactivate", "0")
	// The real-time clock finishes the deactivation by itself.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := srv.Shelf().State(0x9c)
		if st == M1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("0x9c still in %v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := srv.Shelf().Counters(); c.SessionsOpened != 2 || c.Commands[CommandKey{0x9c, 0x2C, 0x0C}] != 1 {
		t.Errorf("counters %+v", c)
	}
}
