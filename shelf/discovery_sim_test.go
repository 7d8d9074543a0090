package shelf_test

import (
	"context"
	"math"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"hpiagent/hpi"
	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
	"hpiagent/shelf/sim"
)

// simSlot maps the embedded shelf's site types to the ATCA slot entity
// types.
var simSlot = map[sim.SiteType]hpi.EntityType{
	sim.SiteATCABoard:  hpi.EntPhysicalSlot,
	sim.SitePEM:        hpi.ATCAEntPowerEntryModuleSlot,
	sim.SiteShelfFRU:   hpi.ATCAEntShelfFRUDeviceSlot,
	sim.SiteShelfMgr:   hpi.ATCAEntShelfManagerSlot,
	sim.SiteFanTray:    hpi.ATCAEntFanTraySlot,
	sim.SiteFanFilter:  hpi.ATCAEntFanFilterTraySlot,
	sim.SiteAlarm:      hpi.ATCAEntAlarmSlot,
	sim.SiteAMC:        hpi.ATCAEntAMCSlot,
	sim.SitePMC:        hpi.ATCAEntPMCSlot,
	sim.SiteRearModule: hpi.ATCAEntRTMSlot,
}

type simShelf struct {
	cfg  sim.Config
	srv  *sim.Server
	sess *rmcpp.Session
}

func startSimShelf(ctx context.Context, t *testing.T, cfg sim.Config, bridgeTimeout time.Duration) *simShelf {
	t.Helper()
	srv, err := sim.Start(ctx, cfg, "127.0.0.1:0", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	u := cfg.Users[0]
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: srv.Addr().String(), Username: u.Name, Password: []byte(u.Password), CipherSuites: []int{17}, BridgeTimeout: bridgeTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return &simShelf{cfg: cfg, srv: srv, sess: sess}
}

// ipmitool runs ipmitool against the embedded shelf (suite 3: ipmitool
// has no suite 17 with this shelf's users either way).
func (s *simShelf) ipmitool(ctx context.Context, args ...string) (string, error) {
	u := s.cfg.Users[0]
	base := []string{"-I", "lanplus", "-H", "127.0.0.1", "-p", strconv.Itoa(s.srv.Addr().Port), "-U", u.Name, "-E", "-C", "3", "-N", "1", "-R", "2"}
	cmd := exec.CommandContext(ctx, "ipmitool", append(base, args...)...)
	cmd.Env = append(os.Environ(), "IPMI_PASSWORD="+u.Password)
	out, err := cmd.Output()
	return string(out), err
}

func (s *simShelf) discover(ctx context.Context, t *testing.T) (*shelf.Snapshot, []shelf.Resource) {
	t.Helper()
	snap, err := shelf.Discover(ctx, s.sess, shelf.DiscoverOptions{Readings: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := shelf.Model(snap, shelf.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return snap, res
}

// linear is the embedded shelf's conversion, y = (M x + B 10^BExp) 10^RExp.
func linear(c sim.SensorConfig, raw uint8) float64 {
	return (float64(c.M)*float64(raw) + float64(c.B)*math.Pow10(int(c.BExp))) * math.Pow10(int(c.RExp))
}

// simMCs lists the controllers of cfg as the shelf manager reports them:
// the shelf manager itself (site 1 of the dedicated shelf manager type,
// entity F0h) and every present IPMC.
func simMCs(cfg sim.Config) []sim.MCConfig {
	out := []sim.MCConfig{{Addr: cfg.Addr, Name: cfg.Name, SiteType: sim.SiteShelfMgr, SiteNumber: 1, EntityID: 0xF0,
		EntityInstance: 0x60, HotSwapSensor: cfg.HotSwapSensor, Sensors: cfg.Sensors}}
	for _, m := range cfg.IPMCs {
		if m.Present {
			out = append(out, m)
		}
	}
	return out
}

// TestDiscoverEmbeddedShelf discovers the embedded shelf (cipher suite
// 17, other addresses, sites, sensor numbers, names and conversion
// factors than the lab) and checks the snapshot and model against the
// shelf's configuration, and the same ipmitool comparison as on the lab.
func TestDiscoverEmbeddedShelf(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := sim.DefaultConfig()
	s := startSimShelf(ctx, t, cfg, 0)
	snap, res := s.discover(ctx, t)
	ix := newDiscIndex(snap, res)

	if !snap.LocalAddrKnown || snap.LocalAddr != cfg.Addr {
		t.Errorf("shelf manager address 0x%02x (known %v), configured 0x%02x", snap.LocalAddr, snap.LocalAddrKnown, cfg.Addr)
	}
	want := simMCs(cfg)
	if len(snap.MCs) != len(want) {
		t.Errorf("%d controllers, the shelf has %d", len(snap.MCs), len(want))
	}
	for _, c := range want {
		m := snap.MCAt(c.Addr)
		if m == nil {
			t.Errorf("controller 0x%02x %q not discovered", c.Addr, c.Name)
			continue
		}
		if m.Lost || m.PICMG == nil || m.Locator == nil || m.Locator.ID.Text() != c.Name ||
			m.Locator.EntityID != c.EntityID || m.Locator.EntityInstance != c.EntityInstance {
			t.Errorf("%s: lost %v (%v), PICMG %v, locator %+v; configured %q entity %#x.%#x", m, m.Lost, m.Err, m.PICMG, m.Locator, c.Name, c.EntityID, c.EntityInstance)
		}
		// Sensors: the hot-swap sensor and every threshold sensor, with
		// the configured numbers, names and converted readings.
		if len(m.Sensors) != 1+len(c.Sensors) {
			t.Errorf("%s: %d sensors, configured 1+%d", m, len(m.Sensors), len(c.Sensors))
		}
		_, hs := ix.sensor(c.Addr, c.HotSwapSensor)
		if hs == nil || hs.Record.SensorType != shelf.SensorTypeHotSwap {
			t.Errorf("%s: hot-swap sensor #%#x not found as type F0h: %+v", m, c.HotSwapSensor, hs)
		}
		for _, sc := range c.Sensors {
			_, got := ix.sensor(c.Addr, sc.Number)
			if got == nil || got.Name != sc.Name {
				t.Errorf("%s: sensor #%#x %q: got %+v", m, sc.Number, sc.Name, got)
				continue
			}
			r, ok := ix.readings[[2]uint8{c.Addr, sc.Number}]
			if w := linear(sc, sc.Raw); !ok || r.Err != nil || !r.HasValue || math.Abs(r.Value-w) > 1e-9 {
				t.Errorf("%s %q: reading %v (%v), want %v", m, sc.Name, r.Value, r.Err, w)
			}
			checkSensorRDR(t, ix, m, got)
		}
		// FRU 0: site, entity path, hot-swap state, inventory.
		f := m.FRUOf(0)
		r := ix.resource(c.Addr, 0)
		if f == nil || r == nil {
			t.Errorf("%s: no FRU 0 resource", m)
			continue
		}
		if f.Site == nil || f.Site.SiteID != c.SiteNumber || f.Site.SiteType != ipmi.SiteType(c.SiteType) {
			t.Errorf("%s: site %+v, configured %d type %d", m, f.Site, c.SiteNumber, c.SiteType)
		}
		wantPath := hpi.EntityPath{
			{Type: hpi.EntityTypeFromIPMI(c.EntityID), Location: 0},
			{Type: simSlot[c.SiteType], Location: hpi.EntityLocation(c.SiteNumber)},
			{Type: hpi.EntAdvancedTCAChassis, Location: 1},
		}
		if !r.Entry.EntityPath.Equal(wantPath) {
			t.Errorf("%s: entity path %s, want %s", m, r.Entry.EntityPath, wantPath)
		}
		st, err := s.srv.Shelf().State(c.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if !r.HasMState || int(r.MState) != int(st) {
			t.Errorf("%s: M-state %v (%v), the shelf says %v", m, r.MState, r.HasMState, st)
		}
		if !r.Entry.Capabilities.Has(hpi.CapabilityManagedHotswap | hpi.CapabilityInventoryData | hpi.CapabilitySensor | hpi.CapabilityControl) {
			t.Errorf("%s: capabilities %s", m, r.Entry.Capabilities)
		}
		if c.Addr != cfg.Addr {
			// The embedded IPMCs have power levels and activation
			// policies (ipmi_sim has neither).
			if f.Power == nil || f.Policy == nil || !r.Entry.Capabilities.Has(hpi.CapabilityPower) {
				t.Errorf("%s: power level %v, policy %v, caps %s", m, f.Power, f.Policy, r.Entry.Capabilities)
			}
		}
		if f.Inventory == nil || f.Inventory.Board == nil {
			t.Errorf("%s: no board inventory", m)
		} else if b := f.Inventory.Board; c.Manufacturer != "" && (b.Manufacturer.Text() != c.Manufacturer || b.PartNumber.Text() != c.PartNumber || b.Serial.Text() != c.Serial) {
			t.Errorf("%s: board %q %q %q, configured %q %q %q", m, b.Manufacturer.Text(), b.PartNumber.Text(), b.Serial.Text(), c.Manufacturer, c.PartNumber, c.Serial)
		}
	}

	// ipmitool on the same shelf: every locator and sensor it lists is
	// there with the same readings, and nothing else.
	if _, err := exec.LookPath("ipmitool"); err != nil {
		t.Skip("ipmitool not installed")
	}
	tool := toolSDRs(ctx, t, s.ipmitool)
	checkAgainstTool(t, ix, tool, nil)
	out, err := s.ipmitool(ctx, "fru", "print")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range parseFRUPrint(out) {
		var r *shelf.Resource
		if w.Desc == "Builtin FRU Device (ID 0)" {
			r = ix.resource(snap.LocalAddr, 0)
		}
		for _, tw := range tool {
			if tw.Type == 0x12 && tw.Name == w.Desc {
				r = ix.resource(tw.Owner, 0)
			}
			if tw.Type == 0x11 && w.Desc == tw.Name+" (ID "+strconv.Itoa(int(tw.Number))+")" {
				r = ix.resource(tw.Owner, tw.Number)
			}
		}
		if r == nil {
			t.Errorf("ipmitool prints FRU %q, which has no resource", w.Desc)
			continue
		}
		checkInventory(t, r, w)
	}
}

// TestDiscoverEmbeddedShelfChanges rediscovers the embedded shelf after an
// IPMC stops answering and after a board is removed, and applies each
// snapshot to one domain: the silent IPMC's resource is failed (M7) and
// everything else still there; the removed board's resource goes; an
// unchanged rediscovery changes nothing.
func TestDiscoverEmbeddedShelfChanges(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := sim.DefaultConfig()
	// A silent IPMC costs bridge timeouts (with retries); keep them short.
	s := startSimShelf(ctx, t, cfg, 200*time.Millisecond)
	d := hpi.NewDomain(hpi.Config{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	snap, _ := s.discover(ctx, t)
	first, err := shelf.Apply(snap, d, shelf.ApplyOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	snap, _ = s.discover(ctx, t)
	before := d.Info().RptUpdateCount
	again, err := shelf.Apply(snap, d, shelf.ApplyOptions{Now: now, Previous: first.Resources})
	if err != nil {
		t.Fatal(err)
	}
	if d.Info().RptUpdateCount != before || len(again.Removed) != 0 || len(again.Resources) != len(first.Resources) {
		t.Errorf("unchanged shelf: RPT update count %d -> %d, removed %v", before, d.Info().RptUpdateCount, again.Removed)
	}

	var blades []uint8
	for _, m := range cfg.IPMCs {
		if m.Present && m.SiteType == sim.SiteATCABoard {
			blades = append(blades, m.Addr)
		}
	}
	if len(blades) < 2 {
		t.Fatal("the default embedded shelf should have two blades at least")
	}
	silent, removed := blades[0], blades[1]

	if err := s.srv.Shelf().SetUnresponsive(silent, true); err != nil {
		t.Fatal(err)
	}
	snap, res := s.discover(ctx, t)
	if m := snap.MCAt(silent); m == nil || !m.Lost {
		t.Fatalf("IPMC 0x%02x: %+v, want lost", silent, m)
	}
	lostRes := newDiscIndex(snap, res).resource(silent, 0)
	if lostRes == nil || lostRes.Entry.EntityPath.String() == "" {
		t.Fatal("no resource for the silent IPMC")
	}
	ar, err := shelf.Apply(snap, d, shelf.ApplyOptions{Now: now, Previous: first.Resources})
	if err != nil {
		t.Fatal(err)
	}
	if len(ar.Removed) != 0 || len(ar.Resources) != len(first.Resources) {
		t.Errorf("silent IPMC: removed %v, %d resources, want none removed", ar.Removed, len(ar.Resources))
	}
	for _, e := range d.Resources() {
		if e.ResourceFailed != e.EntityPath.Equal(lostRes.Entry.EntityPath) {
			t.Errorf("%s: failed %v", e.EntityPath, e.ResourceFailed)
		}
	}
	if err := s.srv.Shelf().SetUnresponsive(silent, false); err != nil {
		t.Fatal(err)
	}

	if err := s.srv.Shelf().Remove(removed); err != nil {
		t.Fatal(err)
	}
	snap, res = s.discover(ctx, t)
	if snap.MCAt(removed) != nil {
		t.Errorf("removed IPMC 0x%02x still discovered", removed)
	}
	gone, ok := d.ResourceIDFor(func() hpi.EntityPath {
		for _, r := range first.Resources {
			if e, ok := d.Resource(r); ok {
				if l, ok := e.EntityPath.Location(hpi.EntPhysicalSlot); ok && l == hpi.EntityLocation(siteOf(cfg, removed)) {
					return e.EntityPath
				}
			}
		}
		return nil
	}())
	if !ok {
		t.Fatal("the removed blade's resource is not in the domain before the removal is applied")
	}
	ar, err = shelf.Apply(snap, d, shelf.ApplyOptions{Now: now, Previous: first.Resources})
	if err != nil {
		t.Fatal(err)
	}
	if len(ar.Removed) != 1 || ar.Removed[0] != gone {
		t.Errorf("removed %v, want [%d]", ar.Removed, gone)
	}
	if _, ok := d.Resource(gone); ok {
		t.Error("the removed blade's resource is still in the domain")
	}
	if len(d.Resources()) != len(res) {
		t.Errorf("domain has %d resources, the snapshot %d", len(d.Resources()), len(res))
	}
	for _, e := range d.Resources() {
		if e.ResourceFailed {
			t.Errorf("%s still failed after its IPMC answers again", e.EntityPath)
		}
	}
}

func siteOf(cfg sim.Config, addr uint8) uint8 {
	for _, m := range cfg.IPMCs {
		if m.Addr == addr {
			return m.SiteNumber
		}
	}
	return 0
}
