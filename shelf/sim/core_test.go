package sim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"hpiagent/shelf/ipmi"
)

const step = time.Second

func testShelf(t *testing.T, edit func(*Config)) *Shelf {
	t.Helper()
	cfg := DefaultConfig()
	cfg.StepDelay = step
	if edit != nil {
		edit(&cfg)
	}
	sh, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

// nextSeq picks a request sequence number that changes from request to
// request (the shelf counts every command it receives).
func nextSeq(sh *Shelf) uint8 {
	n := 0
	for _, v := range sh.Counters().Commands {
		n += v
	}
	return uint8(n+1) & 0x3f
}

// local sends a request to the shelf manager itself.
func local(t *testing.T, sh *Shelf, priv Privilege, netfn ipmi.NetFn, cmd uint8, data ...byte) (ipmi.CompletionCode, []byte) {
	t.Helper()
	req := ipmi.Frame{DstAddr: sh.cfg.Addr, NetFn: netfn, SrcAddr: ipmi.AddrRemoteConsole, Seq: nextSeq(sh), Cmd: cmd, Data: data}
	out := sh.Handle(req, priv)
	if len(out) != 1 {
		t.Fatalf("%d response frames for a local request", len(out))
	}
	f := out[0]
	if f.DstAddr != req.SrcAddr || f.SrcAddr != sh.cfg.Addr || f.Seq != req.Seq || f.Cmd != cmd || f.NetFn != netfn.Response() {
		t.Fatalf("response header %+v does not match request %+v", f, req)
	}
	return ipmi.CompletionCode(f.Data[0]), f.Data[1:]
}

// sendMessage wraps an IPMB request to target in Send Message.
func sendMessage(sh *Shelf, target uint8, netfn ipmi.NetFn, cmd uint8, data []byte) (outer, inner ipmi.Frame) {
	seq := nextSeq(sh)
	inner = ipmi.Frame{DstAddr: target, NetFn: netfn, SrcAddr: ipmi.AddrRemoteConsole, Seq: seq, Cmd: cmd, Data: data}
	outer = ipmi.Frame{DstAddr: sh.cfg.Addr, NetFn: ipmi.NetFnApp, SrcAddr: ipmi.AddrRemoteConsole, Seq: seq, Cmd: 0x34,
		Data: append([]byte{0x40}, inner.Marshal()...)}
	return outer, inner
}

// bridged sends a request to the IPMC at target through Send Message and
// returns the IPMC's completion code and data, whatever the reply style.
func bridged(t *testing.T, sh *Shelf, priv Privilege, target uint8, netfn ipmi.NetFn, cmd uint8, data ...byte) (ipmi.CompletionCode, []byte) {
	t.Helper()
	outer, inner := sendMessage(sh, target, netfn, cmd, data)
	out := sh.Handle(outer, priv)
	if len(out) == 0 || out[0].Cmd != 0x34 || out[0].Seq != outer.Seq {
		t.Fatalf("no Send Message response: %+v", out)
	}
	if cc := ipmi.CompletionCode(out[0].Data[0]); cc != ipmi.CCOK {
		t.Fatalf("Send Message to 0x%02x: %s", target, cc)
	}
	var f ipmi.Frame
	switch sh.cfg.Bridge {
	case BridgeSeparate:
		if len(out) != 2 || len(out[0].Data) != 1 {
			t.Fatalf("separate style: want empty Send Message response then the IPMC's, got %+v", out)
		}
		f = out[1]
	case BridgeEmbedded:
		if len(out) != 1 {
			t.Fatalf("embedded style: %d frames", len(out))
		}
		var err error
		if f, err = ipmi.ParseFrame(out[0].Data[1:]); err != nil {
			t.Fatalf("embedded response: %v", err)
		}
	}
	// The IPMC answers the shelf manager, which forwarded the request as its own.
	if f.DstAddr != sh.cfg.Addr || f.SrcAddr != target || f.Seq != inner.Seq || f.Cmd != cmd || f.NetFn != netfn.Response() {
		t.Fatalf("bridged response header %+v does not match request %+v", f, inner)
	}
	return ipmi.CompletionCode(f.Data[0]), f.Data[1:]
}

func picmg(t *testing.T, sh *Shelf, priv Privilege, target uint8, cmd uint8, data ...byte) (ipmi.CompletionCode, []byte) {
	t.Helper()
	d := append([]byte{0x00}, data...)
	if target == sh.cfg.Addr {
		return local(t, sh, priv, ipmi.NetFnGroup, cmd, d...)
	}
	return bridged(t, sh, priv, target, ipmi.NetFnGroup, cmd, d...)
}

// hsEvents lists the hot-swap events of the MC at addr as "Mfrom>Mto/cause".
func hsEvents(sh *Shelf, addr uint8) []string {
	var out []string
	for _, e := range sh.SEL() {
		if e.Generator == addr && e.SensorType == 0xF0 {
			if e.DirType != 0x6F || e.Data[0]&0xF0 != 0xA0 || e.Data[2] != 0 {
				out = append(out, fmt.Sprintf("malformed %x", e.Raw))
				continue
			}
			out = append(out, fmt.Sprintf("M%d>M%d/%d", e.Data[1]&0x0f, e.Data[0]&0x0f, e.Data[1]>>4))
		}
	}
	return out
}

func mustState(t *testing.T, sh *Shelf, addr uint8, want MState) {
	t.Helper()
	if got, err := sh.State(addr); err != nil || got != want {
		t.Fatalf("0x%02x in %v (%v), want %v", addr, got, err, want)
	}
}

func TestHotSwapTransitions(t *testing.T) {
	const b = 0x9c
	setPolicy := func(mask, bits byte) func(*testing.T, *Shelf) {
		return func(t *testing.T, sh *Shelf) {
			if cc, _ := picmg(t, sh, PrivOperator, b, 0x0A, 0, mask, bits); cc != ipmi.CCOK {
				t.Fatalf("Set FRU Activation Policy: %s", cc)
			}
		}
	}
	do := func(f func(*Shelf) error) func(*testing.T, *Shelf) {
		return func(t *testing.T, sh *Shelf) {
			if err := f(sh); err != nil {
				t.Fatal(err)
			}
		}
	}
	advance := func(d time.Duration) func(*testing.T, *Shelf) {
		return func(t *testing.T, sh *Shelf) { sh.Advance(d) }
	}
	activation := func(a byte, want ipmi.CompletionCode) func(*testing.T, *Shelf) {
		return func(t *testing.T, sh *Shelf) {
			if cc, _ := picmg(t, sh, PrivOperator, b, 0x0C, 0, a); cc != want {
				t.Fatalf("Set FRU Activation %d: %s, want %s", a, cc, want)
			}
		}
	}
	inactive := func(c *Config) {
		for i := range c.IPMCs {
			c.IPMCs[i].Activated = false
		}
	}
	absent := func(c *Config) {
		for i := range c.IPMCs {
			c.IPMCs[i].Present = false
		}
	}
	tests := []struct {
		name   string
		cfg    func(*Config)
		steps  []func(*testing.T, *Shelf)
		want   MState
		events []string
		locked bool
	}{
		{name: "extract, shelf manager deactivates",
			steps:  []func(*testing.T, *Shelf){do(func(s *Shelf) error { return s.Extract(b) }), advance(step), advance(step)},
			want:   M1,
			events: []string{"M4>M5/2", "M5>M6/1", "M6>M1/0"}},
		{name: "extract waits one step in M5",
			steps:  []func(*testing.T, *Shelf){do(func(s *Shelf) error { return s.Extract(b) }), advance(step / 2)},
			want:   M5,
			events: []string{"M4>M5/2"}},
		{name: "deactivation-locked stays in M4 until unlocked",
			steps: []func(*testing.T, *Shelf){setPolicy(0x02, 0x02), do(func(s *Shelf) error { return s.Extract(b) }), advance(10 * step)},
			want:  M4},
		{name: "deactivation lock released",
			steps:  []func(*testing.T, *Shelf){setPolicy(0x02, 0x02), do(func(s *Shelf) error { return s.Extract(b) }), advance(step), setPolicy(0x02, 0x00), advance(2 * step)},
			want:   M1,
			events: []string{"M4>M5/2", "M5>M6/1", "M6>M1/0"}},
		{name: "handle closed again in M5",
			steps:  []func(*testing.T, *Shelf){do(func(s *Shelf) error { return s.Extract(b) }), do(func(s *Shelf) error { return s.Insert(b) })},
			want:   M4,
			events: []string{"M4>M5/2", "M5>M4/2"}},
		{name: "insertion activates step by step",
			cfg:    absent,
			steps:  []func(*testing.T, *Shelf){do(func(s *Shelf) error { return s.Insert(b) }), advance(step), advance(step)},
			want:   M4,
			events: []string{"M0>M1/0", "M1>M2/2", "M2>M3/1", "M3>M4/0"}},
		{name: "insertion before the activation step",
			cfg:    absent,
			steps:  []func(*testing.T, *Shelf){do(func(s *Shelf) error { return s.Insert(b) }), advance(step - time.Millisecond)},
			want:   M2,
			events: []string{"M0>M1/0", "M1>M2/2"}},
		{name: "locked FRU stays in M1",
			cfg:    inactive,
			steps:  []func(*testing.T, *Shelf){setPolicy(0x01, 0x01), do(func(s *Shelf) error { return s.Insert(b) }), advance(10 * step)},
			want:   M1,
			locked: true},
		{name: "lock released in M1",
			cfg:    inactive,
			steps:  []func(*testing.T, *Shelf){setPolicy(0x01, 0x01), do(func(s *Shelf) error { return s.Insert(b) }), setPolicy(0x01, 0x00), advance(2 * step)},
			want:   M4,
			events: []string{"M1>M2/3", "M2>M3/1", "M3>M4/0"}},
		{name: "commanded deactivation locks the FRU in M1",
			steps:  []func(*testing.T, *Shelf){activation(0, ipmi.CCOK), advance(10 * step)},
			want:   M1,
			events: []string{"M4>M6/1", "M6>M1/0"},
			locked: true},
		{name: "activate refused in M4",
			steps: []func(*testing.T, *Shelf){activation(1, ipmi.CCNotSupportedInState)},
			want:  M4},
		{name: "deactivate refused in M1",
			cfg:   inactive,
			steps: []func(*testing.T, *Shelf){activation(0, ipmi.CCNotSupportedInState)},
			want:  M1},
		{name: "manual activation waits in M2 for Set FRU Activation and Set Power Level",
			cfg: func(c *Config) { absent(c); c.ManualActivation = true },
			steps: []func(*testing.T, *Shelf){do(func(s *Shelf) error { return s.Insert(b) }), advance(10 * step), activation(1, ipmi.CCOK), advance(10 * step),
				func(t *testing.T, sh *Shelf) {
					mustState(t, sh, b, M3)
					if cc, _ := picmg(t, sh, PrivOperator, b, 0x11, 0, 1, 0); cc != ipmi.CCOK {
						t.Fatalf("Set Power Level: %s", cc)
					}
				}},
			want:   M4,
			events: []string{"M0>M1/0", "M1>M2/2", "M2>M3/1", "M3>M4/0"}},
		{name: "power level 0 deactivates",
			steps: []func(*testing.T, *Shelf){func(t *testing.T, sh *Shelf) {
				if cc, _ := picmg(t, sh, PrivOperator, b, 0x11, 0, 0, 0); cc != ipmi.CCOK {
					t.Fatalf("Set Power Level 0: %s", cc)
				}
			}, advance(step)},
			want:   M1,
			events: []string{"M4>M6/1", "M6>M1/0"},
			locked: true},
		{name: "communication lost and regained",
			steps:  []func(*testing.T, *Shelf){do(func(s *Shelf) error { return s.SetUnresponsive(b, true) }), advance(10 * step), do(func(s *Shelf) error { return s.SetUnresponsive(b, false) })},
			want:   M4,
			events: []string{"M4>M7/4", "M7>M4/4"}},
		{name: "payload power lost",
			steps:  []func(*testing.T, *Shelf){do(func(s *Shelf) error { return s.PullPower(b) }), advance(step)},
			want:   M2, // handle still closed and not locked: it asks to be activated again
			events: []string{"M4>M6/9", "M6>M1/0", "M1>M2/0"}},
		{name: "surprise extraction",
			steps:  []func(*testing.T, *Shelf){do(func(s *Shelf) error { return s.Remove(b) })},
			want:   M0,
			events: []string{"M4>M0/6"}},
		{name: "payload power off by an IPMC chassis command, as a fence does",
			cfg: func(c *Config) { c.IPMCs[1].ChassisCommands = true },
			steps: []func(*testing.T, *Shelf){func(t *testing.T, sh *Shelf) {
				if cc, _ := bridged(t, sh, PrivOperator, b, ipmi.NetFnChassis, 0x02, 0x00); cc != ipmi.CCOK {
					t.Fatalf("chassis power off at the IPMC: %s", cc)
				}
				mustState(t, sh, b, M6)
			}, advance(step), func(t *testing.T, sh *Shelf) {
				if cc, d := bridged(t, sh, PrivUser, b, ipmi.NetFnChassis, 0x01); cc != ipmi.CCOK || d[0]&1 != 0 {
					t.Errorf("chassis status after power off: %s % x", cc, d)
				}
			}},
			want:   M1,
			events: []string{"M4>M6/1", "M6>M1/0"},
			locked: true},
		{name: "IPMCs have no chassis commands by default",
			steps: []func(*testing.T, *Shelf){func(t *testing.T, sh *Shelf) {
				if cc, _ := bridged(t, sh, PrivAdmin, b, ipmi.NetFnChassis, 0x02, 0x00); cc != ipmi.CCInvalidCommand {
					t.Errorf("chassis control at an IPMC: %s", cc)
				}
			}},
			want: M4},
		{name: "shelf power off and on",
			steps: []func(*testing.T, *Shelf){
				func(t *testing.T, sh *Shelf) {
					if cc, _ := local(t, sh, PrivOperator, ipmi.NetFnChassis, 0x02, 0x00); cc != ipmi.CCOK {
						t.Fatalf("chassis power down: %s", cc)
					}
				}, advance(5 * step),
				func(t *testing.T, sh *Shelf) {
					mustState(t, sh, b, M2) // handle closed, waiting for power
					if cc, _ := local(t, sh, PrivOperator, ipmi.NetFnChassis, 0x02, 0x01); cc != ipmi.CCOK {
						t.Fatalf("chassis power up: %s", cc)
					}
				}, advance(2 * step)},
			want:   M4,
			events: []string{"M4>M6/1", "M6>M1/0", "M1>M2/0", "M2>M3/1", "M3>M4/0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sh := testShelf(t, tc.cfg)
			for _, st := range tc.steps {
				st(t, sh)
			}
			mustState(t, sh, b, tc.want)
			if got := hsEvents(sh, b); !slices.Equal(got, tc.events) {
				t.Errorf("hot-swap events %q, want %q", got, tc.events)
			}
			locked, _, _ := sh.Policy(b)
			if locked != tc.locked {
				t.Errorf("Locked = %v, want %v", locked, tc.locked)
			}
			// The hot-swap sensor reads the same state.
			if tc.want != M0 && tc.want != M7 {
				cc, d := bridged(t, sh, PrivUser, b, ipmi.NetFnSensor, 0x2D, sh.mcs[b].hsSensor)
				if cc != ipmi.CCOK || d[2] != 1<<tc.want {
					t.Errorf("hot-swap sensor reading %s % x, want state bit %d", cc, d, tc.want)
				}
			}
			// Power level follows the state: 0 outside M3..M6 and in M6.
			pl, _ := sh.PowerLevel(b)
			if (tc.want == M4 || tc.want == M5) != (pl > 0) {
				t.Errorf("power level %d in %v", pl, tc.want)
			}
			// Other blades are not affected unless the whole shelf was.
			if tc.name != "shelf power off and on" {
				mustState(t, sh, 0x9a, sh.mcs[0x9a].state)
				if len(hsEvents(sh, 0x9a)) != 0 {
					t.Errorf("events for an untouched blade: %q", hsEvents(sh, 0x9a))
				}
			}
		})
	}
}

func TestBlueLEDFollowsState(t *testing.T) {
	sh := testShelf(t, nil)
	const b = 0x9e
	tests := []struct {
		act     func()
		state   MState
		fn, dur byte
	}{
		{func() {}, M4, 0x00, 0},
		{func() { _ = sh.Extract(b) }, M5, 0x0A, 0x5A},
		{func() { sh.Advance(2 * step) }, M1, 0xFF, 0},
		{func() { _ = sh.Insert(b) }, M2, 0x5A, 0x0A},
	}
	for _, tc := range tests {
		tc.act()
		mustState(t, sh, b, tc.state)
		cc, d := picmg(t, sh, PrivUser, b, 0x08, 0, 0)
		want := []byte{0x00, 0x01, tc.fn, tc.dur, 0x01}
		if cc != ipmi.CCOK || !bytes.Equal(d, want) {
			t.Errorf("%v: Get FRU LED State blue = %s % x, want % x", tc.state, cc, d, want)
		}
	}
}

func TestPICMGRepliesByteExact(t *testing.T) {
	sh := testShelf(t, nil)
	cfg := sh.Config()
	blade := cfg.IPMCs[0]
	fan := cfg.IPMCs[3]
	pl := func(m MCConfig, lvl byte, levels []uint8) []byte {
		return append([]byte{0x00, lvl, m.PowerDelay, m.PowerMultiplier}, levels...)
	}
	tests := []struct {
		name   string
		target uint8
		cmd    uint8
		data   []byte
		cc     ipmi.CompletionCode
		want   []byte // after the completion code, including the PICMG identifier
	}{
		// Table 3-9 Get PICMG Properties: id, version, max FRU, IPMC FRU.
		{"properties blade", blade.Addr, 0x00, nil, 0, []byte{0x00, 0x22, 0x00, 0x00}},
		{"properties shelf manager", cfg.Addr, 0x00, nil, 0, []byte{0x00, 0x22, 0x01, 0x00}},
		// Table 3-10 Get Address Info: id, HW addr, IPMB-0 addr, reserved FFh, FRU, site number, site type.
		{"address info blade", blade.Addr, 0x01, nil, 0, []byte{0x00, blade.Addr >> 1, blade.Addr, 0xFF, 0x00, blade.SiteNumber, 0x00}},
		{"address info fan tray", fan.Addr, 0x01, []byte{0x00}, 0, []byte{0x00, fan.Addr >> 1, fan.Addr, 0xFF, 0x00, fan.SiteNumber, 0x04}},
		{"address info by IPMB address at the shelf manager", cfg.Addr, 0x01, []byte{0x00, 0x01, cfg.IPMCs[1].Addr}, 0,
			[]byte{0x00, cfg.IPMCs[1].Addr >> 1, cfg.IPMCs[1].Addr, 0xFF, 0x00, cfg.IPMCs[1].SiteNumber, 0x00}},
		{"address info by site at the shelf manager", cfg.Addr, 0x01, []byte{0x00, 0x03, fan.SiteNumber, 0x04}, 0,
			[]byte{0x00, fan.Addr >> 1, fan.Addr, 0xFF, 0x00, fan.SiteNumber, 0x04}},
		{"address info unknown", cfg.Addr, 0x01, []byte{0x00, 0x01, 0x70}, ipmi.CCNotPresent, nil},
		// Table 3-24/3-25 FRU Control Capabilities, FRU Control.
		{"control capabilities", blade.Addr, 0x1E, []byte{0}, 0, []byte{0x00, 0x06}},
		{"cold reset", blade.Addr, 0x04, []byte{0, 0}, 0, []byte{0x00}},
		{"diagnostic interrupt not supported", blade.Addr, 0x04, []byte{0, 3}, ipmi.CCInvalidDataField, nil},
		// Table 3-27 LED properties, 3-28 color capabilities.
		{"LED properties", blade.Addr, 0x05, []byte{0}, 0, []byte{0x00, 0x07, 0x00}},
		{"blue LED colors", blade.Addr, 0x06, []byte{0, 0}, 0, []byte{0x00, 0x02, 0x01, 0x01}},
		{"LED1 colors", blade.Addr, 0x06, []byte{0, 1}, 0, []byte{0x00, 0x14, 0x02, 0x02}},
		{"no LED 3", blade.Addr, 0x06, []byte{0, 3}, ipmi.CCInvalidDataField, nil},
		// Table 3-30 Get FRU LED State after an override.
		{"LED1 override on red", blade.Addr, 0x07, []byte{0, 1, 0xFF, 0, 0x02}, 0, []byte{0x00}},
		{"LED1 state", blade.Addr, 0x08, []byte{0, 1}, 0, []byte{0x00, 0x03, 0x00, 0x00, 0x02, 0xFF, 0x00, 0x02}},
		{"LED1 color not supported", blade.Addr, 0x07, []byte{0, 1, 0xFF, 0, 0x03}, ipmi.CCInvalidDataField, nil},
		{"LED1 lamp test", blade.Addr, 0x07, []byte{0, 1, 0xFB, 5, 0x0E}, 0, []byte{0x00}},
		{"LED1 state in lamp test", blade.Addr, 0x08, []byte{0, 1}, 0, []byte{0x00, 0x07, 0x00, 0x00, 0x02, 0xFF, 0x00, 0x02, 5}},
		{"LED1 back to local control", blade.Addr, 0x07, []byte{0, 1, 0xFC, 0, 0x0E}, 0, []byte{0x00}},
		{"LED1 local state", blade.Addr, 0x08, []byte{0, 1}, 0, []byte{0x00, 0x01, 0x00, 0x00, 0x02}},
		// Tables 3-17/3-18 activation policy.
		{"policy set", blade.Addr, 0x0A, []byte{0, 0x02, 0x02}, 0, []byte{0x00}},
		{"policy get", blade.Addr, 0x0B, []byte{0}, 0, []byte{0x00, 0x02}},
		{"policy bad mask", blade.Addr, 0x0A, []byte{0, 0x04, 0x04}, ipmi.CCInvalidDataField, nil},
		// Table 3-37 Get Device Locator Record ID: the MC locator is the first device SDR.
		{"locator record", blade.Addr, 0x0D, []byte{0}, 0, []byte{0x00, 0x01, 0x00}},
		{"shelf FRU locator", cfg.Addr, 0x0D, []byte{1}, 0, []byte{0x00, 0x02, 0x00}},
		// Table 3-83/3-84 power levels.
		{"power steady present", blade.Addr, 0x12, []byte{0, 0}, 0, pl(blade, blade.DesiredLevel, blade.PowerLevels)},
		{"power early desired", blade.Addr, 0x12, []byte{0, 3}, 0, pl(blade, blade.DesiredLevel, blade.EarlyPowerLevels)},
		{"power fan", fan.Addr, 0x12, []byte{0, 0}, 0, pl(fan, fan.DesiredLevel, fan.PowerLevels)},
		{"power level too high", blade.Addr, 0x11, []byte{0, byte(len(blade.PowerLevels) + 1), 0}, ipmi.CCInvalidDataField, nil},
		{"power level 1", blade.Addr, 0x11, []byte{0, 1, 0}, 0, []byte{0x00}},
		{"power steady after set", blade.Addr, 0x12, []byte{0, 0}, 0, pl(blade, 1, blade.PowerLevels)},
		{"FRU 1 on a blade", blade.Addr, 0x0B, []byte{1}, ipmi.CCInvalidDataField, nil},
		{"short request", blade.Addr, 0x0B, nil, ipmi.CCRequestDataLength, nil},
		{"HPM.x capabilities not supported", blade.Addr, 0x3E, nil, ipmi.CCInvalidCommand, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cc, d := picmg(t, sh, PrivOperator, tc.target, tc.cmd, tc.data...)
			if cc != tc.cc || !bytes.Equal(d, tc.want) {
				t.Errorf("got %s % x, want %s % x", cc, d, tc.cc, tc.want)
			}
		})
	}
	// A defining body other than PICMG is refused.
	if cc, _ := local(t, sh, PrivUser, ipmi.NetFnGroup, 0x00, 0x01); cc != ipmi.CCInvalidDataField {
		t.Errorf("non-PICMG defining body: %s", cc)
	}
}

func readSDR(t *testing.T, get func(data ...byte) (ipmi.CompletionCode, []byte), resv uint16, id uint16, off, n byte) (ipmi.CompletionCode, uint16, []byte) {
	t.Helper()
	d := binary.LittleEndian.AppendUint16(nil, resv)
	d = binary.LittleEndian.AppendUint16(d, id)
	cc, out := get(append(d, off, n)...)
	if cc != ipmi.CCOK {
		return cc, 0, nil
	}
	return cc, binary.LittleEndian.Uint16(out), out[2:]
}

func TestSDRRepository(t *testing.T) {
	sh := testShelf(t, nil)
	mainGet := func(data ...byte) (ipmi.CompletionCode, []byte) {
		return local(t, sh, PrivUser, ipmi.NetFnStorage, 0x23, data...)
	}
	cc, info := local(t, sh, PrivUser, ipmi.NetFnStorage, 0x20)
	if cc != ipmi.CCOK || info[0] != 0x51 || info[13]&0x02 == 0 {
		t.Fatalf("Get SDR Repository Info: %s % x", cc, info)
	}
	count := int(binary.LittleEndian.Uint16(info[1:]))
	// 4 IPMCs and the shelf manager: locator + hot-swap + sensors each, and the shelf FRU locator.
	want := 1 + 1 + 1 + len(sh.cfg.Sensors)
	for _, m := range sh.cfg.IPMCs {
		want += 2 + len(m.Sensors)
	}
	if count != want {
		t.Fatalf("%d records, want %d", count, want)
	}
	// Walk with whole reads (no reservation needed at offset 0).
	var whole [][]byte
	for id := uint16(0); id != 0xFFFF; {
		cc, next, rec := readSDR(t, mainGet, 0, id, 0, 0xFF)
		if cc != ipmi.CCOK {
			t.Fatalf("Get SDR 0x%04x: %s", id, cc)
		}
		if int(rec[4])+5 != len(rec) {
			t.Fatalf("record 0x%04x: length byte %d, %d bytes", id, rec[4], len(rec))
		}
		whole = append(whole, rec)
		id = next
	}
	if len(whole) != count {
		t.Fatalf("walked %d records, info says %d", len(whole), count)
	}
	// Partial reads at an offset need the current reservation.
	rec := whole[3]
	id := binary.LittleEndian.Uint16(rec)
	if cc, _, _ := readSDR(t, mainGet, 0, id, 5, 8); cc != ipmi.CCReservationInvalid {
		t.Errorf("partial read without reservation: %s", cc)
	}
	cc, r := local(t, sh, PrivUser, ipmi.NetFnStorage, 0x22)
	if cc != ipmi.CCOK {
		t.Fatal(cc)
	}
	resv := binary.LittleEndian.Uint16(r)
	var got []byte
	for off := 0; off < len(rec); off += 7 {
		cc, _, part := readSDR(t, mainGet, resv, id, byte(off), 7)
		if cc != ipmi.CCOK {
			t.Fatalf("partial read at %d: %s", off, cc)
		}
		got = append(got, part...)
	}
	if !bytes.Equal(got, rec) {
		t.Errorf("partial reads give % x, whole read % x", got, rec)
	}
	if cc, _, _ := readSDR(t, mainGet, resv+1, id, 5, 8); cc != ipmi.CCReservationInvalid {
		t.Errorf("stale reservation accepted: %s", cc)
	}
	if cc, _, _ := readSDR(t, mainGet, 0, 0x7777, 0, 0xFF); cc != ipmi.CCNotPresent {
		t.Errorf("missing record: %s", cc)
	}
	// A change of the repository (an IPMC leaves) cancels the reservation.
	if err := sh.Remove(0x9e); err != nil {
		t.Fatal(err)
	}
	if cc, _, _ := readSDR(t, mainGet, resv, id, 5, 8); cc != ipmi.CCReservationInvalid {
		t.Errorf("reservation survived a repository change: %s", cc)
	}
	_, info = local(t, sh, PrivUser, ipmi.NetFnStorage, 0x20)
	if n := int(binary.LittleEndian.Uint16(info[1:])); n != count-2-len(sh.cfg.IPMCs[2].Sensors) {
		t.Errorf("%d records after removing a blade", n)
	}
}

func TestDeviceSDRBridged(t *testing.T) {
	for _, style := range []BridgeStyle{BridgeSeparate, BridgeEmbedded} {
		sh := testShelf(t, func(c *Config) { c.Bridge = style })
		m := sh.cfg.IPMCs[1]
		cc, info := bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnSensor, 0x20, 0x01)
		if cc != ipmi.CCOK || int(info[0]) != 2+len(m.Sensors) {
			t.Fatalf("Get Device SDR Info: %s % x", cc, info)
		}
		cc, r := bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnSensor, 0x22)
		if cc != ipmi.CCOK {
			t.Fatalf("Reserve Device SDR Repository: %s", cc)
		}
		resv := binary.LittleEndian.Uint16(r)
		get := func(data ...byte) (ipmi.CompletionCode, []byte) {
			return bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnSensor, 0x21, data...)
		}
		var names []string
		for id := uint16(0); id != 0xFFFF; {
			cc, _, hdr := readSDR(t, get, resv, id, 0, 5)
			if cc != ipmi.CCOK {
				t.Fatalf("header of 0x%04x: %s", id, cc)
			}
			// A whole record does not fit an IPMB message: the IPMC says so.
			if cc, _, _ := readSDR(t, get, resv, id, 0, 0xFF); cc != ipmi.CCCannotReturnBytes {
				t.Errorf("whole-record read over IPMB: %s", cc)
			}
			var body []byte
			var next uint16
			for off := 5; off < 5+int(hdr[4]); off += 16 {
				n := min(16, 5+int(hdr[4])-off)
				var part []byte
				cc, next, part = readSDR(t, get, resv, id, byte(off), byte(n))
				if cc != ipmi.CCOK || len(part) != n {
					t.Fatalf("body of 0x%04x at %d: %s (%d bytes)", id, off, cc, len(part))
				}
				body = append(body, part...)
			}
			if body[0] != m.Addr {
				t.Errorf("record 0x%04x owned by 0x%02x", id, body[0])
			}
			names = append(names, idOf(hdr[3], body))
			id = next
		}
		want := []string{m.Name, hsName(m.Name)}
		for _, s := range m.Sensors {
			want = append(want, s.Name)
		}
		if !slices.Equal(names, want) {
			t.Errorf("style %d: device SDR names %q, want %q", style, names, want)
		}
	}
}

// idOf extracts the ID string of a record body by type.
func idOf(typ byte, body []byte) string {
	off := map[byte]int{0x01: 42, 0x02: 26, 0x11: 10, 0x12: 10}[typ]
	n := int(body[off] & 0x1f)
	return string(body[off+1 : off+1+n])
}

func TestFullSensorRecordConversion(t *testing.T) {
	sc := SensorConfig{Number: 7, Name: "X", Type: 2, Unit: 4, M: -300, B: 411, BExp: -3, RExp: 5,
		Thresholds: [6]uint8{1, 2, 3, 4, 5, 6}, ThresholdMask: 0x2d, HystPos: 9, HystNeg: 8}
	rec := fullSensorRecord(0x9a, 0xA0, 0x60, &sc)
	b := rec[5:]
	m := int16(uint16(b[19])|uint16(b[20]>>6)<<8) << 6 >> 6
	bb := int16(uint16(b[21])|uint16(b[22]>>6)<<8) << 6 >> 6
	rexp := int8(b[24]) >> 4
	bexp := int8(b[24]<<4) >> 4
	if m != sc.M || bb != sc.B || rexp != sc.RExp || bexp != sc.BExp {
		t.Errorf("decoded M=%d B=%d Rexp=%d Bexp=%d, want %d %d %d %d", m, bb, rexp, bexp, sc.M, sc.B, sc.RExp, sc.BExp)
	}
	if b[13] != 0x2d || b[14] != 0x2d {
		t.Errorf("threshold masks % x", b[13:15])
	}
	// Thresholds in SDR order UNR..LNC, then hysteresis.
	if !bytes.Equal(b[31:39], []byte{6, 5, 4, 3, 2, 1, 9, 8}) {
		t.Errorf("thresholds/hysteresis % x", b[31:39])
	}
	if rec[4] != byte(len(b)) || idOf(1, b) != "X" {
		t.Errorf("length %d, id %q", rec[4], idOf(1, b))
	}
}

func TestSEL(t *testing.T) {
	sh := testShelf(t, func(c *Config) { c.SELCapacity = 3 })
	stor := func(cmd uint8, d ...byte) (ipmi.CompletionCode, []byte) {
		return local(t, sh, PrivOperator, ipmi.NetFnStorage, cmd, d...)
	}
	entry := func(i byte) []byte {
		return []byte{0, 0, 0x02, 0, 0, 0, 0, 0x41, 0, 0x04, 0x01, 0x30 + i, 0x01, 0x57, 90, 85}
	}
	var ids []uint16
	for i := byte(0); i < 3; i++ {
		cc, d := stor(0x44, entry(i)...)
		if cc != ipmi.CCOK {
			t.Fatalf("Add SEL Entry %d: %s", i, cc)
		}
		ids = append(ids, binary.LittleEndian.Uint16(d))
	}
	if cc, _ := stor(0x44, entry(9)...); cc != ipmi.CCOutOfSpace {
		t.Errorf("add to full SEL: %s", cc)
	}
	_ = sh.Extract(0x9a) // the event is dropped: SEL full
	cc, info := stor(0x40)
	if cc != ipmi.CCOK || binary.LittleEndian.Uint16(info[1:]) != 3 || info[13]&0x80 == 0 {
		t.Errorf("Get SEL Info: %s % x", cc, info)
	}
	// Entries come back with the SEL's record IDs and timestamps.
	next := uint16(0)
	for i, id := range ids {
		cc, d := stor(0x43, 0, 0, byte(next), byte(next>>8), 0, 0xFF)
		if cc != ipmi.CCOK {
			t.Fatalf("Get SEL Entry: %s", cc)
		}
		rec := d[2:]
		if binary.LittleEndian.Uint16(rec) != id || rec[11] != 0x30+byte(i) || binary.LittleEndian.Uint32(rec[3:]) != uint32(sh.Now().Unix()) {
			t.Errorf("entry %d: % x", i, rec)
		}
		next = binary.LittleEndian.Uint16(d)
	}
	if next != 0xFFFF {
		t.Errorf("last next ID 0x%04x", next)
	}
	// Clear needs the current reservation.
	clr := func(resv uint16, op byte) (ipmi.CompletionCode, []byte) {
		return stor(0x47, byte(resv), byte(resv>>8), 'C', 'L', 'R', op)
	}
	if cc, _ := clr(0x1234, 0xAA); cc != ipmi.CCReservationInvalid {
		t.Errorf("clear without reservation: %s", cc)
	}
	_, r := stor(0x42)
	resv := binary.LittleEndian.Uint16(r)
	if cc, _ := stor(0x47, byte(resv), byte(resv>>8), 'C', 'L', 'X', 0xAA); cc != ipmi.CCInvalidDataField {
		t.Errorf("clear without CLR: %s", cc)
	}
	if cc, d := clr(resv, 0xAA); cc != ipmi.CCOK || d[0]&0x0f != 1 {
		t.Errorf("clear: %s % x", cc, d)
	}
	if cc, d := clr(resv, 0x00); cc != ipmi.CCOK || d[0]&0x0f != 1 {
		t.Errorf("erasure status: %s % x", cc, d)
	}
	_, info = stor(0x40)
	if binary.LittleEndian.Uint16(info[1:]) != 0 || info[13]&0x80 != 0 {
		t.Errorf("SEL info after clear: % x", info)
	}
	if cc, _ := stor(0x43, 0, 0, 0, 0, 0, 0xFF); cc != ipmi.CCNotPresent {
		t.Errorf("entry in empty SEL: %s", cc)
	}
	// A new Reserve SEL cancels the old reservation.
	_, r2 := stor(0x42)
	if binary.LittleEndian.Uint16(r2) == resv {
		t.Error("same reservation ID twice")
	}
	if cc, _ := clr(resv, 0xAA); cc != ipmi.CCReservationInvalid {
		t.Errorf("clear with a superseded reservation: %s", cc)
	}
}

func TestThresholdEvents(t *testing.T) {
	sh := testShelf(t, nil)
	m := sh.cfg.IPMCs[0]
	sc := m.Sensors[0] // CPU Die: UNC 85, UC 95, UNR 105, hysteresis 2
	events := func() []string {
		var out []string
		for _, e := range sh.SEL() {
			if e.Generator == m.Addr && e.Sensor == sc.Number {
				out = append(out, fmt.Sprintf("%02x %02x %d %d", e.DirType, e.Data[0], e.Data[1], e.Data[2]))
			}
		}
		return out
	}
	steps := []struct {
		raw  uint8
		want []string
	}{
		{86, []string{"01 57 86 85"}},                // UNC going high asserted
		{84, nil},                                    // within hysteresis
		{82, []string{"81 57 82 85"}},                // deasserted
		{96, []string{"01 57 96 85", "01 59 96 95"}}, // UNC and UC
		{0, []string{"01 50 0 5", "01 52 0 2", "01 54 0 0", "81 57 0 85", "81 59 0 95"}}, // all lower
	}
	for _, st := range steps {
		before := len(events())
		if err := sh.SetSensorRaw(m.Addr, sc.Number, st.raw); err != nil {
			t.Fatal(err)
		}
		got := events()[before:]
		if !slices.Equal(got, st.want) {
			t.Errorf("raw %d: events %q, want %q", st.raw, got, st.want)
		}
		cc, d := bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnSensor, 0x2D, sc.Number)
		if cc != ipmi.CCOK || d[0] != st.raw {
			t.Errorf("reading %s % x, want raw %d", cc, d, st.raw)
		}
	}
	// Disabled assertion events are not logged.
	if cc, _ := bridged(t, sh, PrivOperator, m.Addr, ipmi.NetFnSensor, 0x28, sc.Number, 0xC0|0x20, 0xFF, 0x0F, 0xFF, 0x0F); cc != ipmi.CCOK {
		t.Fatal(cc)
	}
	before := len(events())
	_ = sh.SetSensorRaw(m.Addr, sc.Number, 50)
	if got := events()[before:]; len(got) != 0 {
		t.Errorf("events with all events disabled: %q", got)
	}
	cc, d := bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnSensor, 0x29, sc.Number)
	if cc != ipmi.CCOK || !bytes.Equal(d, []byte{0xC0, 0, 0, 0, 0}) {
		t.Errorf("Get Sensor Event Enable: %s % x", cc, d)
	}
}

func TestSensorThresholdCommands(t *testing.T) {
	sh := testShelf(t, nil)
	m := sh.cfg.IPMCs[2]
	sc := m.Sensors[2] // Payload 12V: mask 0x1b (LNC, LC, UNC, UC)
	cc, d := bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnSensor, 0x27, sc.Number)
	th := maskThresholds(sc.Thresholds, 0x1b)
	want := append([]byte{0x1b}, th[:]...)
	if cc != ipmi.CCOK || !bytes.Equal(d, want) {
		t.Fatalf("Get Sensor Thresholds: %s % x, want % x", cc, d, want)
	}
	if cc, _ := bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnSensor, 0x26, sc.Number, 0x01, 170, 0, 0, 0, 0, 0); cc != ipmi.CCInsufficientPrivilege {
		t.Errorf("user-level Set Sensor Thresholds: %s", cc)
	}
	if cc, _ := bridged(t, sh, PrivOperator, m.Addr, ipmi.NetFnSensor, 0x26, sc.Number, 0x04, 0, 0, 99, 0, 0, 0); cc != ipmi.CCInvalidDataField {
		t.Errorf("setting an absent threshold: %s", cc)
	}
	if cc, _ := bridged(t, sh, PrivOperator, m.Addr, ipmi.NetFnSensor, 0x26, sc.Number, 0x01, 191, 0, 0, 0, 0, 0); cc != ipmi.CCOK {
		t.Fatalf("Set Sensor Thresholds: %s", cc)
	}
	_, d = bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnSensor, 0x27, sc.Number)
	if d[1] != 191 {
		t.Errorf("LNC after set: % x", d)
	}
	_, d = bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnSensor, 0x2D, sc.Number)
	if d[2]&0x01 == 0 {
		t.Errorf("reading 190 not flagged below LNC 191: % x", d)
	}
	if cc, _ := bridged(t, sh, PrivOperator, m.Addr, ipmi.NetFnSensor, 0x24, sc.Number, 0xFF, 4, 3); cc != ipmi.CCOK {
		t.Fatal(cc)
	}
	if _, d := bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnSensor, 0x25, sc.Number, 0xFF); !bytes.Equal(d, []byte{4, 3}) {
		t.Errorf("hysteresis % x", d)
	}
	if cc, _ := bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnSensor, 0x2D, 0xEE); cc != ipmi.CCNotPresent {
		t.Errorf("absent sensor: %s", cc)
	}
	if cc, _ := bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnSensor, 0x27, m.HotSwapSensor); cc != ipmi.CCIllegalForSensor {
		t.Errorf("thresholds of the hot-swap sensor: %s", cc)
	}
}

func TestBridgeFailures(t *testing.T) {
	for _, style := range []BridgeStyle{BridgeSeparate, BridgeEmbedded} {
		t.Run(fmt.Sprint(style), func(t *testing.T) {
			sh := testShelf(t, func(c *Config) { c.Bridge = style })
			timeoutCC := ipmi.CCOK
			if style == BridgeEmbedded {
				timeoutCC = ipmi.CCTimeout
			}
			send := func(f ipmi.Frame) []ipmi.Frame { return sh.Handle(f, PrivAdmin) }
			// No controller at the address: nobody acknowledges, NAK on write.
			outer, _ := sendMessage(sh, 0x70, ipmi.NetFnApp, 0x01, nil)
			if out := send(outer); len(out) != 1 || out[0].Data[0] != byte(ccNAKOnWrite) || len(out[0].Data) != 1 {
				t.Errorf("absent controller: %+v", out)
			}
			// Bad data checksum: the IPMC drops the frame, the request times out.
			outer, _ = sendMessage(sh, 0x9a, ipmi.NetFnApp, 0x01, nil)
			outer.Data[len(outer.Data)-1]++
			if out := send(outer); len(out) != 1 || out[0].Data[0] != byte(timeoutCC) || len(out[0].Data) != 1 {
				t.Errorf("bad checksum: %+v", out)
			}
			// Bad header checksum likewise.
			outer, _ = sendMessage(sh, 0x9a, ipmi.NetFnApp, 0x01, nil)
			outer.Data[3]++
			if out := send(outer); len(out) != 1 || out[0].Data[0] != byte(timeoutCC) {
				t.Errorf("bad header checksum: %+v", out)
			}
			// Lost IPMC.
			_ = sh.SetUnresponsive(0x9c, true)
			outer, _ = sendMessage(sh, 0x9c, ipmi.NetFnApp, 0x01, nil)
			if out := send(outer); len(out) != 1 || out[0].Data[0] != byte(timeoutCC) {
				t.Errorf("unresponsive IPMC: %+v", out)
			}
			// Removed board: NAK.
			_ = sh.Remove(0x9e)
			outer, _ = sendMessage(sh, 0x9e, ipmi.NetFnApp, 0x01, nil)
			if out := send(outer); len(out) != 1 || out[0].Data[0] != byte(ccNAKOnWrite) {
				t.Errorf("removed board: %+v", out)
			}
			// Another channel than IPMB-0.
			outer, _ = sendMessage(sh, 0x9a, ipmi.NetFnApp, 0x01, nil)
			outer.Data[0] = 0x47
			if out := send(outer); out[0].Data[0] != byte(ipmi.CCInvalidDataField) {
				t.Errorf("channel 7: %+v", out)
			}
			if c := sh.Counters(); c.Bridged != 6 || c.Commands[CommandKey{0x9a, ipmi.NetFnApp, 0x01}] != 0 {
				t.Errorf("counters %+v", c)
			}
		})
	}
}

func TestPrivileges(t *testing.T) {
	sh := testShelf(t, nil)
	tests := []struct {
		name string
		priv Privilege
		do   func(Privilege) ipmi.CompletionCode
		want ipmi.CompletionCode
	}{
		{"user cannot power off", PrivUser, func(p Privilege) ipmi.CompletionCode {
			cc, _ := local(t, sh, p, ipmi.NetFnChassis, 0x02, 0x00)
			return cc
		}, ipmi.CCInsufficientPrivilege},
		{"user cannot deactivate a blade", PrivUser, func(p Privilege) ipmi.CompletionCode {
			cc, _ := picmg(t, sh, p, 0x9a, 0x0C, 0, 0)
			return cc
		}, ipmi.CCInsufficientPrivilege},
		{"user cannot clear the SEL", PrivUser, func(p Privilege) ipmi.CompletionCode {
			cc, _ := local(t, sh, p, ipmi.NetFnStorage, 0x47, 0, 0, 'C', 'L', 'R', 0xAA)
			return cc
		}, ipmi.CCInsufficientPrivilege},
		{"user reads chassis status", PrivUser, func(p Privilege) ipmi.CompletionCode {
			cc, _ := local(t, sh, p, ipmi.NetFnChassis, 0x01)
			return cc
		}, ipmi.CCOK},
		{"callback cannot bridge", PrivCallback, func(p Privilege) ipmi.CompletionCode {
			outer, _ := sendMessage(sh, 0x9a, ipmi.NetFnApp, 0x01, nil)
			return ipmi.CompletionCode(sh.Handle(outer, p)[0].Data[0])
		}, ipmi.CCInsufficientPrivilege},
		{"operator deactivates", PrivOperator, func(p Privilege) ipmi.CompletionCode {
			cc, _ := picmg(t, sh, p, 0x9a, 0x0C, 0, 0)
			return cc
		}, ipmi.CCOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.do(tc.priv); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	if !sh.ChassisPower() {
		t.Error("a user-level request powered the shelf off")
	}
}

func TestFRUInventory(t *testing.T) {
	sh := testShelf(t, nil)
	m := sh.cfg.IPMCs[0]
	cc, info := bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnStorage, 0x10, 0)
	if cc != ipmi.CCOK {
		t.Fatal(cc)
	}
	size := int(binary.LittleEndian.Uint16(info))
	var img []byte
	for off := 0; off < size; off += 20 {
		cc, d := bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnStorage, 0x11, 0, byte(off), byte(off>>8), 20)
		if cc != ipmi.CCOK || int(d[0]) != len(d)-1 {
			t.Fatalf("Read FRU Data at %d: %s % x", off, cc, d)
		}
		img = append(img, d[1:]...)
	}
	if len(img) != size || ipmi.Checksum(img[:8]) != 0 {
		t.Fatalf("FRU image %d bytes (want %d), header % x", len(img), size, img[:8])
	}
	board := img[int(img[3])*8:]
	board = board[:int(board[1])*8]
	if ipmi.Checksum(board) != 0 || !bytes.Contains(board, []byte(m.Serial)) || !bytes.Contains(board, []byte(m.Name)) {
		t.Errorf("board area % x", board)
	}
	if cc, _ := bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnStorage, 0x11, 0, 0, 0, byte(sh.cfg.FRUReadMax+1)); cc != ipmi.CCCannotReturnBytes {
		t.Errorf("oversized read: %s", cc)
	}
	if cc, _ := bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnStorage, 0x11, 0, byte(size), byte(size>>8), 1); cc != ipmi.CCParameterOutOfRange {
		t.Errorf("read past the end: %s", cc)
	}
	if cc, _ := bridged(t, sh, PrivUser, m.Addr, ipmi.NetFnStorage, 0x10, 1); cc != ipmi.CCInvalidDataField {
		t.Errorf("FRU 1 on a blade: %s", cc)
	}
}

func TestWatchdog(t *testing.T) {
	sh := testShelf(t, nil)
	app := func(cmd uint8, d ...byte) (ipmi.CompletionCode, []byte) {
		return local(t, sh, PrivOperator, ipmi.NetFnApp, cmd, d...)
	}
	if cc, _ := app(0x22); cc != ccWDUninit {
		t.Errorf("reset before set: %s", cc)
	}
	// SMS/OS timer, power down on expiry, 3.0 s.
	if cc, _ := app(0x24, 0x04, 0x02, 0, 0, 30, 0); cc != ipmi.CCOK {
		t.Fatal(cc)
	}
	if cc, _ := app(0x22); cc != ipmi.CCOK {
		t.Fatal(cc)
	}
	sh.Advance(1 * time.Second)
	_, d := app(0x25)
	if d[0] != 0x44 || binary.LittleEndian.Uint16(d[6:]) != 20 {
		t.Errorf("Get Watchdog after 1 s: % x", d)
	}
	sh.Advance(2*time.Second + 100*time.Millisecond)
	_, d = app(0x25)
	if d[0]&0x40 != 0 || d[3]&0x10 == 0 || sh.ChassisPower() {
		t.Errorf("after expiry: % x, chassis on %v", d, sh.ChassisPower())
	}
}

func TestEventReceiver(t *testing.T) {
	sh := testShelf(t, nil)
	const b = 0x9a
	cc, d := bridged(t, sh, PrivUser, b, ipmi.NetFnSensor, 0x01)
	if cc != ipmi.CCOK || !bytes.Equal(d, []byte{sh.cfg.Addr, 0}) {
		t.Fatalf("Get Event Receiver: %s % x", cc, d)
	}
	// With its event receiver disabled the IPMC sends no events.
	if cc, _ := bridged(t, sh, PrivOperator, b, ipmi.NetFnSensor, 0x00, 0xFF, 0); cc != ipmi.CCOK {
		t.Fatal(cc)
	}
	_ = sh.Extract(b)
	if ev := hsEvents(sh, b); len(ev) != 0 {
		t.Errorf("events with the receiver disabled: %q", ev)
	}
	mustState(t, sh, b, M5)
	if cc, _ := bridged(t, sh, PrivOperator, b, ipmi.NetFnSensor, 0x00, sh.cfg.Addr, 0); cc != ipmi.CCOK {
		t.Fatal(cc)
	}
	sh.Advance(step)
	if ev := hsEvents(sh, b); !slices.Equal(ev, []string{"M5>M6/1"}) {
		t.Errorf("events after re-enabling: %q", ev)
	}
	// Platform Event from software: logged with the software ID as generator.
	if cc, _ := local(t, sh, PrivUser, ipmi.NetFnSensor, 0x02, 0x04, 0x01, 0x42, 0x01, 0x57, 1, 2); cc != ipmi.CCInsufficientPrivilege {
		t.Errorf("user-level Platform Event: %s", cc)
	}
	if cc, _ := local(t, sh, PrivOperator, ipmi.NetFnSensor, 0x02, 0x04, 0x01, 0x42, 0x01, 0x57, 1, 2); cc != ipmi.CCOK {
		t.Fatal(cc)
	}
	sel := sh.SEL()
	last := sel[len(sel)-1]
	if last.Generator != ipmi.AddrRemoteConsole || last.Sensor != 0x42 || last.Data != [3]byte{0x57, 1, 2} {
		t.Errorf("platform event logged as %+v", last)
	}
}
