package shelf

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"hpiagent/hpi"
	"hpiagent/shelf/ipmi"
)

func site(t ipmi.SiteType, n uint8) *ipmi.AddressInfo {
	return &ipmi.AddressInfo{SiteType: t, SiteID: n}
}

func picmgMC(addr uint8, locEntity, locInst uint8, s *ipmi.AddressInfo) *MC {
	m := &MC{Addr: ipmi.Addr{Slave: addr}, IPMBAddr: addr, PICMG: &ipmi.PICMGProperties{Version: 0x22}}
	if locEntity != 0 {
		m.Locator = &ipmi.MCLocatorRecord{SlaveAddress: addr, EntityID: locEntity, EntityInstance: locInst, ID: ipmi.TLString{}}
	}
	m.FRUs = []*FRU{{ID: 0, Site: s}}
	return m
}

// TestEntityPathOf is the mapping table from what discovery saw (site
// information from Get Address Info, device locators) to ATCA entity
// paths.
func TestEntityPathOf(t *testing.T) {
	carrier := picmgMC(0x82, 0xA0, 0x60, site(ipmi.SiteBoard, 5))
	carrier.FRUs = append(carrier.FRUs,
		&FRU{ID: 1, Site: site(ipmi.SiteAMC, 2)},   // an AMC on the carrier
		&FRU{ID: 2, Site: site(ipmi.SiteBoard, 5)}, // a second FRU in the carrier's own site
		&FRU{ID: 3},                              // no site information
		&FRU{ID: 4, Site: site(ipmi.SiteRTM, 5)}, // rear transition module of the same slot
		&FRU{ID: 5, Locator: &ipmi.FRULocatorRecord{EntityID: 0xC1, EntityInstance: 0x61, Logical: true}, Site: site(ipmi.SiteAMC, 3)},
	)
	shm := picmgMC(0x10, 0xF0, 0x60, site(ipmi.SiteShelfManager, 1))
	shm.ShelfManager = true
	shm.FRUs = append(shm.FRUs, &FRU{ID: 1, Locator: &ipmi.FRULocatorRecord{EntityID: 0xF2, EntityInstance: 0x60, Logical: true}})
	plain := &MC{Addr: ipmi.Addr{Slave: 0x44}, IPMBAddr: 0x44, FRUs: []*FRU{{ID: 0}}}
	sysRel := &MC{Addr: ipmi.Addr{Slave: 0x46}, IPMBAddr: 0x46, Locator: &ipmi.MCLocatorRecord{EntityID: 0x07, EntityInstance: 0x02}, FRUs: []*FRU{{ID: 0}}}
	devRel := &MC{Addr: ipmi.Addr{Slave: 0x48}, IPMBAddr: 0x48, Locator: &ipmi.MCLocatorRecord{EntityID: 0x07, EntityInstance: 0x62}, FRUs: []*FRU{{ID: 0}}}

	tests := []struct {
		name string
		m    *MC
		fru  uint8
		root hpi.EntityPath
		want string
	}{
		{"front board from its locator entity", picmgMC(0x9a, 0xA0, 0x60, site(ipmi.SiteBoard, 13)), 0, nil,
			"{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,13}{PICMG_FRONT_BLADE,0}"},
		{"front board without locator: entity from the site type", picmgMC(0x9a, 0, 0, site(ipmi.SiteBoard, 3)), 0, nil,
			"{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,3}{PICMG_FRONT_BLADE,0}"},
		{"shelf manager", shm, 0, nil, "{ADVANCEDTCA_CHASSIS,1}{CHASSIS_SPECIFIC03,1}{SHELF_MANAGER,0}"},
		{"shelf FRU behind the shelf manager", shm, 1, nil, "{ADVANCEDTCA_CHASSIS,1}{CHASSIS_SPECIFIC03,1}{SHELF_MANAGER,0}{SYSTEM_INVENTORY_DEVICE,1}"},
		{"fan tray", picmgMC(0x72, 0x1E, 0x60, site(ipmi.SiteFanTray, 2)), 0, nil, "{ADVANCEDTCA_CHASSIS,1}{CHASSIS_SPECIFIC04,2}{COOLING_UNIT,0}"},
		{"power entry module", picmgMC(0x74, 0, 0, site(ipmi.SitePowerEntry, 1)), 0, nil, "{ADVANCEDTCA_CHASSIS,1}{CHASSIS_SPECIFIC01,1}{POWER_SUPPLY,0}"},
		{"AMC on a carrier goes below the carrier", carrier, 1, nil,
			"{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,5}{PICMG_FRONT_BLADE,0}{CHASSIS_SPECIFIC07,2}{AMC,0}"},
		{"second FRU in the carrier's site", carrier, 2, nil,
			"{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,5}{PICMG_FRONT_BLADE,0}{PICMG_FRONT_BLADE,2}"},
		{"FRU without site information", carrier, 3, nil,
			"{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,5}{PICMG_FRONT_BLADE,0}{SYS_MGMNT_MODULE,3}"},
		{"RTM below its carrier", carrier, 4, nil,
			"{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,5}{PICMG_FRONT_BLADE,0}{CHASSIS_SPECIFIC09,5}{BACK_PANEL_BOARD,0}"},
		{"AMC with a FRU locator", carrier, 5, nil,
			"{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,5}{PICMG_FRONT_BLADE,0}{CHASSIS_SPECIFIC07,3}{AMC,0}"},
		{"non-PICMG controller without locator: IPMB address", plain, 0, nil, "{ADVANCEDTCA_CHASSIS,1}{SYS_MGMNT_MODULE,68}"},
		{"non-PICMG controller, system-relative instance", sysRel, 0, nil, "{ADVANCEDTCA_CHASSIS,1}{SYSTEM_BOARD,2}"},
		{"non-PICMG controller, device-relative instance: IPMB address", devRel, 0, nil, "{ADVANCEDTCA_CHASSIS,1}{SYSTEM_BOARD,72}"},
		{"configured root", picmgMC(0x9a, 0xA0, 0x60, site(ipmi.SiteBoard, 13)), 0,
			hpi.EntityPath{{Type: hpi.EntAdvancedTCAChassis, Location: 3}, {Type: hpi.EntRack, Location: 7}},
			"{RACK,7}{ADVANCEDTCA_CHASSIS,3}{PHYSICAL_SLOT,13}{PICMG_FRONT_BLADE,0}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := EntityPathOf(tc.m, tc.m.FRUOf(tc.fru), ModelOptions{Root: tc.root})
			if got.String() != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("invalid path %s: %v", got, err)
			}
		})
	}
}

// threshold returns a full threshold sensor record for a unit test.
func threshold(owner, num uint8, name string) *ipmi.SensorRecord {
	return &ipmi.SensorRecord{Type: ipmi.SDRFullSensor, OwnerID: owner, Number: num, EntityID: 0xA0, EntityInstance: 0x60,
		SensorType: 0x01, EventReadingType: 0x01, Conv: ipmi.Conversion{M: 1}, MaxReading: 0xff,
		ID: ipmi.Text8(name)}
}

func hotSwap(owner, num uint8) *ipmi.SensorRecord {
	return &ipmi.SensorRecord{Type: ipmi.SDRCompactSensor, OwnerID: owner, Number: num, EntityID: 0xA0, EntityInstance: 0x60,
		SensorType: SensorTypeHotSwap, EventReadingType: 0x6f, AssertMask: 0xff, ID: ipmi.Text8("HS")}
}

// testSnapshot is a shelf manager and two blades, each blade with a
// hot-swap sensor in M4 and one threshold sensor.
func testSnapshot() *Snapshot {
	shm := picmgMC(0x20, 0xF0, 0x60, site(ipmi.SiteShelfManager, 1))
	shm.Addr, shm.ShelfManager = ipmi.Addr{}, true
	snap := &Snapshot{LocalAddr: 0x20, LocalAddrKnown: true, MCs: []*MC{shm}}
	for i, a := range []uint8{0x9a, 0x9c} {
		m := picmgMC(a, 0xA0, 0x60, site(ipmi.SiteBoard, uint8(i+1)))
		hs := Sensor{Owner: m.Addr, Number: 0x10, Name: "HS", EntityInstance: 0x60, Record: hotSwap(a, 0x10)}
		th := Sensor{Owner: m.Addr, Number: 0x11, Name: "Temp", EntityInstance: 0x60, Record: threshold(a, 0x11, "Temp")}
		m.Sensors = []Sensor{hs, th}
		m.FRUs[0].HotSwap = &m.Sensors[0]
		m.FRUs[0].MState, m.FRUs[0].HasMState = 4, true
		m.FRUs[0].LEDs = []LED{{ID: 0}, {ID: 1}}
		snap.MCs = append(snap.MCs, m)
	}
	return snap
}

func TestApplyRediscovery(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		// change alters the second snapshot.
		change func(*Snapshot)
		// check inspects the domain after the second Apply.
		check func(t *testing.T, d *hpi.Domain, first, second ApplyResult, countBefore uint32)
	}{
		{
			name:   "unchanged: nothing changes",
			change: func(*Snapshot) {},
			check: func(t *testing.T, d *hpi.Domain, first, second ApplyResult, before uint32) {
				if c := d.Info().RptUpdateCount; c != before {
					t.Errorf("RPT update count %d -> %d", before, c)
				}
				if !slices.Equal(first.Resources, second.Resources) || len(second.Removed) != 0 {
					t.Errorf("resources %v -> %v, removed %v", first.Resources, second.Resources, second.Removed)
				}
			},
		},
		{
			name: "an MC vanished: its resource is removed",
			change: func(s *Snapshot) {
				s.MCs = slices.DeleteFunc(s.MCs, func(m *MC) bool { return m.IPMBAddr == 0x9c })
			},
			check: func(t *testing.T, d *hpi.Domain, first, second ApplyResult, before uint32) {
				gone := first.Resources[2]
				if !slices.Equal(second.Removed, []hpi.ResourceID{gone}) {
					t.Errorf("removed %v, want [%d]", second.Removed, gone)
				}
				if _, ok := d.Resource(gone); ok {
					t.Error("the vanished MC's resource is still in the domain")
				}
				if len(d.Resources()) != 2 || d.Info().RptUpdateCount == before {
					t.Errorf("%d resources, RPT update count %d -> %d", len(d.Resources()), before, d.Info().RptUpdateCount)
				}
			},
		},
		{
			name: "a sensor was added: its RDR is added",
			change: func(s *Snapshot) {
				m := s.MCAt(0x9a)
				m.Sensors = append(m.Sensors, Sensor{Owner: m.Addr, Number: 0x12, Name: "Volt", EntityInstance: 0x60, Record: threshold(0x9a, 0x12, "Volt")})
				m.FRUs[0].HotSwap = &m.Sensors[0]
			},
			check: func(t *testing.T, d *hpi.Domain, first, second ApplyResult, before uint32) {
				if !slices.Equal(first.Resources, second.Resources) {
					t.Errorf("resources %v -> %v", first.Resources, second.Resources)
				}
				rdr, err := d.RDR(first.Resources[1], hpi.SensorRDR, 0x12)
				if err != nil || rdr.IDString != "Volt" {
					t.Errorf("new sensor RDR: %+v, %v", rdr, err)
				}
				if d.Info().RptUpdateCount == before {
					t.Error("RPT update count unchanged after an RDR was added")
				}
				if rdrs, _ := d.RDRs(first.Resources[2]); len(rdrs) == 0 {
					t.Error("the other blade lost its RDRs")
				}
			},
		},
		{
			name: "an MC stopped answering: its resource is failed, not removed",
			change: func(s *Snapshot) {
				m := s.MCAt(0x9a)
				m.Lost, m.Device, m.PICMG = true, nil, nil
				m.FRUs[0].HasMState, m.FRUs[0].LEDs = false, nil
			},
			check: func(t *testing.T, d *hpi.Domain, first, second ApplyResult, before uint32) {
				if len(second.Removed) != 0 {
					t.Errorf("removed %v", second.Removed)
				}
				for i, id := range first.Resources {
					e, _ := d.Resource(id)
					if e.ResourceFailed != (i == 1) {
						t.Errorf("resource %d (%s): failed %v", id, e.EntityPath, e.ResourceFailed)
					}
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := hpi.NewDomain(hpi.Config{Now: func() time.Time { return now }})
			first, err := Apply(testSnapshot(), d, ApplyOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if len(first.Resources) != 3 {
				t.Fatalf("first apply: %d resources", len(first.Resources))
			}
			before := d.Info().RptUpdateCount
			snap := testSnapshot()
			tc.change(snap)
			second, err := Apply(snap, d, ApplyOptions{Now: now, Previous: first.Resources})
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, d, first, second, before)
		})
	}
}

// TestModelDuplicatePaths: two controllers claiming the same site keep
// the first and report the second.
func TestModelDuplicatePaths(t *testing.T) {
	snap := testSnapshot()
	snap.MCs[2].FRUs[0].Site = site(ipmi.SiteBoard, 1) // same site as 0x9a
	res, err := Model(snap, ModelOptions{})
	if err == nil {
		t.Fatal("no error for two FRUs on one entity path")
	}
	if len(res) != 2 || res[1].MC.IPMBAddr != 0x9a {
		t.Errorf("modelled %d resources", len(res))
	}
}

// TestModelResources checks the RDRs and capabilities of one modelled
// blade: one sensor RDR per sensor, the LED controls, the activation
// control for a FRU with a hot-swap sensor, the M-state.
func TestModelResources(t *testing.T) {
	res, err := Model(testSnapshot(), ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := res[1]
	var sensors, leds, act int
	for _, rdr := range r.RDRs {
		switch {
		case rdr.Type == hpi.SensorRDR:
			sensors++
		case rdr.Type == hpi.CtrlRDR && rdr.Control.OutputType == hpi.CtrlLED:
			leds++
		case rdr.Type == hpi.CtrlRDR && rdr.Control.Num == hpi.ATCAFRUActivationControl().Num:
			act++
		}
	}
	if sensors != 2 || leds != 2 || act != 1 {
		t.Errorf("sensors %d, LEDs %d, activation controls %d", sensors, leds, act)
	}
	if !r.HasMState || r.MState != hpi.M4 || !r.Entry.Capabilities.Has(hpi.CapabilityManagedHotswap|hpi.CapabilitySensor|hpi.CapabilityControl) {
		t.Errorf("M-state %v/%v, caps %s", r.MState, r.HasMState, r.Entry.Capabilities)
	}
	// The shelf manager has no hot-swap sensor here: no activation
	// control, not a managed hot-swap resource.
	if res[0].Entry.Capabilities.Has(hpi.CapabilityManagedHotswap) {
		t.Errorf("shelf manager caps %s", res[0].Entry.Capabilities)
	}
}

// FuzzDiscoveryRecords feeds arbitrary SDR records (as a shelf manager's
// repository might hold them) and site answers through the part of
// discovery that interprets them: controllers, FRUs and sensors from the
// records (mcsOf), hot-swap sensor matching, entity paths and the model.
// Nothing may panic, every entity path must be valid, and no two
// resources may share one.
func FuzzDiscoveryRecords(f *testing.F) {
	mc := (&ipmi.MCLocatorRecord{SlaveAddress: 0x82, EntityID: 0xA0, EntityInstance: 0x60, Capabilities: 0x29}).Marshal(1)
	fru := (&ipmi.FRULocatorRecord{AccessAddress: 0x82, FRUDeviceID: 1, Logical: true, EntityID: 0xC1, EntityInstance: 0x61}).Marshal(2)
	hs := hotSwap(0x82, 0).Marshal(3)
	th := threshold(0x82, 1, "Temp").Marshal(4)
	shm := threshold(0x20, 1, "Inlet").Marshal(5)
	join := func(recs ...[]byte) []byte {
		var b []byte
		for _, r := range recs {
			b = append(b, r...)
		}
		return b
	}
	f.Add(join(mc, fru, hs, th, shm), []byte{0x00, 5, 0x07, 2})
	f.Add(join(mc, hs, th), []byte{0x00, 1})
	f.Add(join(shm, fru), []byte{})
	f.Add(join(mc, mc, fru, fru), []byte{0x00, 1, 0x00, 1, 0x00, 1})
	f.Fuzz(func(t *testing.T, raw, sites []byte) {
		var recs []ipmi.SDR
		for len(raw) >= 5 && len(recs) < 64 {
			n := 5 + int(raw[4])
			if n > len(raw) {
				break
			}
			if r, err := ipmi.ParseSDR(raw[:n]); err == nil {
				recs = append(recs, r)
			}
			raw = raw[n:]
		}
		shmMC := &MC{ShelfManager: true, IPMBAddr: 0x20, PICMG: &ipmi.PICMGProperties{}}
		snap := &Snapshot{LocalAddr: 0x20, LocalAddrKnown: true, Records: recs}
		snap.MCs = mcsOf(recs, 0x20, shmMC)
		// Hand out site answers in order, as Get Address Info would.
		for _, m := range snap.MCs {
			if len(sites)%2 == 1 {
				m.PICMG = nil
			}
			for _, fr := range m.FRUs {
				if len(sites) >= 2 {
					fr.Site = &ipmi.AddressInfo{SiteType: ipmi.SiteType(sites[0] % 12), SiteID: sites[1], IPMBAddress: m.IPMBAddr, FRUID: fr.ID}
					sites = sites[2:]
				}
				fr.HotSwap = m.hotSwapSensorOf(fr)
				if fr.HotSwap != nil {
					fr.MState, fr.HasMState = int(binary.BigEndian.Uint16([]byte{0, fr.ID})%8), true
				}
			}
		}
		res, _ := Model(snap, ModelOptions{})
		seen := map[string]bool{}
		for _, r := range res {
			p := r.Entry.EntityPath
			if err := p.Validate(); err != nil {
				t.Fatalf("invalid entity path %s: %v", p, err)
			}
			if seen[p.String()] {
				t.Fatalf("two resources on %s", p)
			}
			seen[p.String()] = true
		}
		d := hpi.NewDomain(hpi.Config{})
		if _, err := Apply(snap, d, ApplyOptions{Now: time.Unix(0, 0)}); err == nil && len(d.Resources()) != len(res) {
			t.Fatalf("applied %d resources, modelled %d", len(d.Resources()), len(res))
		}
	})
}

// TestMCsOfRecords: every kind of record of a main SDR repository lands
// where it belongs: MC locators and sensor owners become controllers,
// full, compact (shared records expanded) and event-only sensors go to
// their owners, logical FRU locators add FRUs, sensors go to the FRU
// whose entity they name; software-owned sensors and non-intelligent
// FRUs are left out.
func TestMCsOfRecords(t *testing.T) {
	shared := &ipmi.SensorRecord{Type: ipmi.SDRCompactSensor, OwnerID: 0x82, Number: 4, EntityID: 0xA0, EntityInstance: 0x60,
		SensorType: 0x02, EventReadingType: 0x01, Share: ipmi.Sharing{Count: 3}, ID: ipmi.Text8("V")}
	evOnly := &ipmi.SensorRecord{Type: ipmi.SDREventOnly, OwnerID: 0x82, Number: 9, EntityID: 0xA0, EntityInstance: 0x60,
		SensorType: 0x08, EventReadingType: 0x6f, ID: ipmi.Text8("PSU")}
	amcTemp := threshold(0x82, 0x20, "AMC Temp")
	amcTemp.EntityID, amcTemp.EntityInstance = 0xC1, 0x61
	soft := threshold(0x41, 1, "BIOS")
	orphan := threshold(0x84, 7, "Orphan")
	recs := []ipmi.SDR{
		{MCLocator: &ipmi.MCLocatorRecord{SlaveAddress: 0x20, EntityID: 0xF0, EntityInstance: 0x60, ID: ipmi.Text8("ShMC")}},
		{MCLocator: &ipmi.MCLocatorRecord{SlaveAddress: 0x82, EntityID: 0xA0, EntityInstance: 0x60, ID: ipmi.Text8("Blade")}},
		{Sensor: threshold(0x20, 1, "Inlet")},
		{Sensor: shared}, {Sensor: evOnly}, {Sensor: amcTemp}, {Sensor: soft}, {Sensor: orphan},
		{FRULocator: &ipmi.FRULocatorRecord{AccessAddress: 0x82, FRUDeviceID: 2, Logical: true, EntityID: 0xC1, EntityInstance: 0x61, ID: ipmi.Text8("AMC")}},
		{FRULocator: &ipmi.FRULocatorRecord{AccessAddress: 0x82, FRUDeviceID: 0xA2, Logical: false, EntityID: 0x0A, ID: ipmi.Text8("SEEPROM")}},
	}
	shm := &MC{ShelfManager: true, IPMBAddr: 0x20}
	mcs := mcsOf(recs, 0x20, shm)
	type sensorKey struct {
		num  uint8
		name string
	}
	want := []struct {
		addr    uint8
		frus    []uint8
		sensors []sensorKey
		byFRU   map[uint8]int
	}{
		{0x20, []uint8{0}, []sensorKey{{1, "Inlet"}}, map[uint8]int{0: 1}},
		{0x82, []uint8{0, 2}, []sensorKey{{4, "V0"}, {5, "V1"}, {6, "V2"}, {9, "PSU"}, {0x20, "AMC Temp"}}, map[uint8]int{0: 4, 2: 1}},
		{0x84, []uint8{0}, []sensorKey{{7, "Orphan"}}, map[uint8]int{0: 1}},
	}
	if len(mcs) != len(want) || mcs[0] != shm {
		t.Fatalf("%d controllers (shelf manager first: %v), want %d", len(mcs), len(mcs) > 0 && mcs[0] == shm, len(want))
	}
	for i, w := range want {
		m := mcs[i]
		if m.IPMBAddr != w.addr {
			t.Errorf("controller %d: 0x%02x, want 0x%02x", i, m.IPMBAddr, w.addr)
			continue
		}
		var frus []uint8
		for _, f := range m.FRUs {
			frus = append(frus, f.ID)
			if n := len(m.SensorsOfFRU(f)); n != w.byFRU[f.ID] {
				t.Errorf("%s FRU %d: %d sensors, want %d", m, f.ID, n, w.byFRU[f.ID])
			}
		}
		if !slices.Equal(frus, w.frus) {
			t.Errorf("%s: FRUs %v, want %v", m, frus, w.frus)
		}
		var got []sensorKey
		for _, s := range m.Sensors {
			got = append(got, sensorKey{s.Number, s.Name})
		}
		if !slices.Equal(got, w.sensors) {
			t.Errorf("%s: sensors %v, want %v", m, got, w.sensors)
		}
	}
	if mcs[1].Locator == nil || mcs[1].Locator.ID.Text() != "Blade" || mcs[2].Locator != nil {
		t.Errorf("locators: %+v, %+v", mcs[1].Locator, mcs[2].Locator)
	}
	// The event-only sensor is modelled (HPI has no reading for it) and
	// every sensor has exactly one RDR.
	res, err := Model(&Snapshot{LocalAddr: 0x20, MCs: mcs}, ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rdrs := 0
	for _, r := range res {
		for _, rdr := range r.RDRs {
			if rdr.Type == hpi.SensorRDR {
				rdrs++
				if rdr.IDString == "PSU" && rdr.Sensor.DataFormat.IsSupported {
					t.Error("event-only sensor modelled with a reading format")
				}
			}
		}
	}
	if len(res) != 4 || rdrs != 7 {
		t.Errorf("%d resources with %d sensor RDRs, want 4 and 7", len(res), rdrs)
	}
}
