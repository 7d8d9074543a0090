package shelf_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"hpiagent/hpi"
	"hpiagent/internal/labshelf"
	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
)

// toolSDR is one record as ipmitool sees it: a line of `ipmitool sdr
// elist all` joined with the owner address and record type taken from the
// raw records `ipmitool sdr dump` wrote (elist does not print owners).
type toolSDR struct {
	Name       string // as ipmitool prints it, trailing blanks removed
	Number     uint8  // sensor number; FRU device ID of a FRU locator
	Status     string // ok, ns, ...
	EntityID   uint8
	EntityInst uint8
	Text       string // reading or locator text
	// From the dump:
	Type       uint8 // SDR type: 01h full, 02h compact, 03h event-only, 11h FRU locator, 12h MC locator
	Owner      uint8 // sensor owner, MC locator slave address, FRU locator access address
	SensorType uint8 // sensors only
	Logical    bool  // FRU locators only
}

func (s toolSDR) isSensor() bool { return s.Type >= 1 && s.Type <= 3 }

var elistLine = regexp.MustCompile(`^(.*?)\s*\|\s*([0-9a-fA-F]{2})h\s*\|\s*(\w+)\s*\|\s*(\d+)\.(\d+)\s*\|\s*(.*?)\s*$`)

// parseElist parses `ipmitool sdr elist` output.
func parseElist(t *testing.T, out string) []toolSDR {
	t.Helper()
	var recs []toolSDR
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		m := elistLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unexpected sdr elist line %q", line)
		}
		num, _ := strconv.ParseUint(m[2], 16, 8)
		eid, _ := strconv.ParseUint(m[4], 10, 8)
		einst, _ := strconv.ParseUint(m[5], 10, 8)
		recs = append(recs, toolSDR{Name: m[1], Number: uint8(num), Status: m[3], EntityID: uint8(eid), EntityInst: uint8(einst), Text: m[6]})
	}
	return recs
}

// dumpRecord is what the test reads from one raw record of `ipmitool sdr
// dump`: only the few key bytes, at their offsets in IPMI 2.0 §43.
type dumpRecord struct {
	Type, Owner, Number, SensorType, EntityID, EntityInst uint8
	Logical                                               bool
	Name                                                  string
}

func parseSDRDump(t *testing.T, b []byte) []dumpRecord {
	t.Helper()
	var out []dumpRecord
	idAt := map[uint8]int{0x01: 47, 0x02: 31, 0x03: 16, 0x11: 15, 0x12: 15}
	for len(b) > 0 {
		if len(b) < 5 || len(b) < 5+int(b[4]) {
			t.Fatalf("truncated SDR dump (%d bytes left)", len(b))
		}
		rec := b[:5+int(b[4])]
		b = b[len(rec):]
		at, ok := idAt[rec[3]]
		if !ok || len(rec) <= at {
			continue
		}
		d := dumpRecord{Type: rec[3], Owner: rec[5]}
		n := int(rec[at] & 0x1f)
		if at+1+n > len(rec) {
			t.Fatalf("record %x: ID string runs past the record", rec)
		}
		d.Name = string(rec[at+1 : at+1+n])
		switch d.Type {
		case 0x01, 0x02, 0x03:
			d.Number, d.EntityID, d.EntityInst, d.SensorType = rec[7], rec[8], rec[9]&0x7f, rec[12]
		case 0x11:
			d.Number, d.Logical, d.EntityID, d.EntityInst = rec[6], rec[7]&0x80 != 0, rec[12], rec[13]&0x7f
		case 0x12:
			d.EntityID, d.EntityInst = rec[12], rec[13]&0x7f
		}
		out = append(out, d)
	}
	return out
}

// toolSDRs runs `ipmitool sdr elist all` and `ipmitool sdr dump` and joins
// them by name, number and entity. Every elist line must have exactly one
// raw record.
func toolSDRs(ctx context.Context, t *testing.T, run func(context.Context, ...string) (string, error)) []toolSDR {
	t.Helper()
	out, err := run(ctx, "sdr", "elist", "all")
	if err != nil {
		t.Fatal(err)
	}
	recs := parseElist(t, out)
	f := filepath.Join(t.TempDir(), "sdr.dump")
	if _, err := run(ctx, "sdr", "dump", f); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	dump := parseSDRDump(t, raw)
	for i := range recs {
		r := &recs[i]
		var hits []dumpRecord
		for _, d := range dump {
			if strings.TrimRight(d.Name, " ") == r.Name && d.EntityID == r.EntityID && d.EntityInst == r.EntityInst &&
				(d.Type == 0x12 || d.Type == 0x11 || d.Number == r.Number) {
				hits = append(hits, d)
			}
		}
		if len(hits) != 1 {
			t.Fatalf("sdr elist line %+v matches %d raw records of sdr dump", *r, len(hits))
		}
		h := hits[0]
		r.Type, r.Owner, r.SensorType, r.Logical = h.Type, h.Owner, h.SensorType, h.Logical
		if h.Type == 0x11 {
			r.Number = h.Number // elist prints the FRU device ID in the text only
		}
	}
	if len(recs) == 0 {
		t.Fatal("ipmitool lists no SDRs")
	}
	return recs
}

// discIndex finds the snapshot's and model's pieces by what ipmitool
// prints.
type discIndex struct {
	snap     *shelf.Snapshot
	res      []shelf.Resource
	readings map[[2]uint8]shelf.Reading // (IPMB address, sensor number)
}

func newDiscIndex(snap *shelf.Snapshot, res []shelf.Resource) *discIndex {
	ix := &discIndex{snap: snap, res: res, readings: map[[2]uint8]shelf.Reading{}}
	for _, r := range snap.Readings {
		a := snap.LocalAddr
		if !r.Sensor.Owner.Local() {
			a = r.Sensor.Owner.Slave
		}
		ix.readings[[2]uint8{a, r.Sensor.Number}] = r
	}
	return ix
}

func (ix *discIndex) resource(addr, fru uint8) *shelf.Resource {
	for i := range ix.res {
		if ix.res[i].MC.IPMBAddr == addr && ix.res[i].FRU.ID == fru {
			return &ix.res[i]
		}
	}
	return nil
}

func (ix *discIndex) sensor(addr, num uint8) (*shelf.MC, *shelf.Sensor) {
	m := ix.snap.MCAt(addr)
	if m == nil {
		return nil, nil
	}
	for i := range m.Sensors {
		if m.Sensors[i].Number == num && m.Sensors[i].Record.OwnerLUN == 0 {
			return m, &m.Sensors[i]
		}
	}
	return m, nil
}

var mStateText = regexp.MustCompile(`^Transition to M([0-7])$`)

// checkAgainstTool asserts that the snapshot and its model have every
// controller, FRU and sensor ipmitool lists, with the same names, entities
// and readings, and nothing ipmitool does not list. lost are the IPMB
// addresses of controllers that are expected not to answer.
func checkAgainstTool(t *testing.T, ix *discIndex, tool []toolSDR, lost map[uint8]bool) {
	t.Helper()
	sensors, mcs, frus := 0, 0, 0
	for _, w := range tool {
		switch {
		case w.Type == 0x12:
			mcs++
			m := ix.snap.MCAt(w.Owner)
			if m == nil {
				t.Errorf("MC locator %q (0x%02x) is not in the snapshot", w.Name, w.Owner)
				continue
			}
			if m.Locator == nil || m.Locator.ID.Text() != w.Name || m.Locator.EntityID != w.EntityID || m.Locator.EntityInstance&0x7f != w.EntityInst {
				t.Errorf("%s: locator %+v, ipmitool lists %q entity %d.%d", m, m.Locator, w.Name, w.EntityID, w.EntityInst)
			}
			if want := fmt.Sprintf("MC @ %02Xh", w.Owner); !strings.Contains(w.Text, want) {
				t.Errorf("ipmitool says %q for MC locator %q, the dump says 0x%02x", w.Text, w.Name, w.Owner)
			}
			if m.Lost != lost[w.Owner] {
				t.Errorf("%s: lost %v (%v), want %v", m, m.Lost, m.Err, lost[w.Owner])
			}
			r := ix.resource(w.Owner, 0)
			if r == nil {
				t.Errorf("%s: no resource for FRU 0", m)
			} else if r.Entry.Tag != w.Name {
				t.Errorf("%s: resource tag %q, locator name %q", m, r.Entry.Tag, w.Name)
			}
		case w.Type == 0x11:
			if !w.Logical {
				continue // non-intelligent FRUs are not discovered
			}
			frus++
			r := ix.resource(w.Owner, w.Number)
			if r == nil {
				t.Errorf("FRU locator %q (FRU %d at 0x%02x) has no resource", w.Name, w.Number, w.Owner)
			} else if r.Entry.Tag != w.Name {
				t.Errorf("FRU %d at 0x%02x: tag %q, locator name %q", w.Number, w.Owner, r.Entry.Tag, w.Name)
			}
		case w.isSensor():
			sensors++
			m, s := ix.sensor(w.Owner, w.Number)
			if s == nil {
				t.Errorf("sensor %q (#%d at 0x%02x) is not in the snapshot", w.Name, w.Number, w.Owner)
				continue
			}
			if s.Name != w.Name || s.Record.EntityID != w.EntityID || s.EntityInstance&0x7f != w.EntityInst || uint8(s.Record.Type) != w.Type {
				t.Errorf("sensor #%d at 0x%02x: %q entity %d.%d type %d, ipmitool %q %d.%d type %d",
					w.Number, w.Owner, s.Name, s.Record.EntityID, s.EntityInstance&0x7f, s.Record.Type, w.Name, w.EntityID, w.EntityInst, w.Type)
			}
			checkReading(t, ix, m, s, w)
			checkSensorRDR(t, ix, m, s)
		}
	}
	// Nothing invented: as many controllers, FRUs and sensors as ipmitool
	// lists (the shelf manager may lack a locator of its own).
	gotMCs, gotSensors, gotFRUs := 0, 0, 0
	for _, m := range ix.snap.MCs {
		if m.Locator != nil || !m.ShelfManager {
			gotMCs++
		}
		gotSensors += len(m.Sensors)
		for _, f := range m.FRUs {
			if f.ID != 0 {
				gotFRUs++
			}
		}
	}
	if gotMCs != mcs || gotSensors != sensors || gotFRUs != frus {
		t.Errorf("snapshot has %d MCs, %d FRUs besides FRU 0 and %d sensors; ipmitool lists %d, %d and %d", gotMCs, gotFRUs, gotSensors, mcs, frus, sensors)
	}
	// Every resource stands for a locator ipmitool lists (the shelf
	// manager's FRU 0 may have none).
	for _, r := range ix.res {
		found := r.MC.ShelfManager && r.FRU.ID == 0
		for _, w := range tool {
			found = found || (r.FRU.ID == 0 && w.Type == 0x12 && w.Owner == r.MC.IPMBAddr) ||
				(w.Type == 0x11 && w.Logical && w.Owner == r.MC.IPMBAddr && w.Number == r.FRU.ID)
		}
		if !found {
			t.Errorf("resource %s (%s FRU %d) has no locator in ipmitool's list", r.Entry.EntityPath, r.MC, r.FRU.ID)
		}
	}
	rdrs := 0
	for _, r := range ix.res {
		for _, rdr := range r.RDRs {
			if rdr.Type == hpi.SensorRDR {
				rdrs++
			}
		}
	}
	if rdrs != sensors {
		t.Errorf("model has %d sensor RDRs, ipmitool lists %d sensors", rdrs, sensors)
	}
}

func checkReading(t *testing.T, ix *discIndex, m *shelf.MC, s *shelf.Sensor, w toolSDR) {
	t.Helper()
	r, ok := ix.readings[[2]uint8{m.IPMBAddr, s.Number}]
	if w.Status == "ns" {
		if ok && r.Err == nil && (r.HasValue || r.States != 0) {
			t.Errorf("%s: ipmitool has no reading, discovery read %+v", w.Name, r.SensorReading)
		}
		return
	}
	if s.Record.Type == ipmi.SDREventOnly {
		return
	}
	if !ok || r.Err != nil {
		t.Errorf("%s: no reading (%v), ipmitool shows %q", w.Name, r.Err, w.Text)
		return
	}
	if st := mStateText.FindStringSubmatch(w.Text); st != nil {
		got, ok := r.MState()
		if !ok || strconv.Itoa(got) != st[1] {
			t.Errorf("%s: M-state %d (%v), ipmitool %q", w.Name, got, ok, w.Text)
		}
		if f := m.FRUOf(0); f != nil && f.HotSwap != nil && f.HotSwap.Number == s.Number && (!f.HasMState || strconv.Itoa(f.MState) != st[1]) {
			t.Errorf("%s FRU 0: M-state %d (%v), ipmitool %q", m, f.MState, f.HasMState, w.Text)
		}
		return
	}
	if !r.HasValue {
		return // other discrete sensors: ipmitool prints state names
	}
	fields := strings.Fields(w.Text)
	if len(fields) == 0 {
		t.Errorf("%s: ipmitool prints no reading", w.Name)
		return
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	// ipmitool's sdr list prints whole values without decimals, others
	// with two.
	if err != nil || math.Abs(v-r.Value) > 0.0051 {
		t.Errorf("%s: reading %v, ipmitool %q", w.Name, r.Value, w.Text)
	}
}

// checkSensorRDR asserts that the sensor is modelled exactly once, as an
// RDR of the resource of its controller.
func checkSensorRDR(t *testing.T, ix *discIndex, m *shelf.MC, s *shelf.Sensor) {
	t.Helper()
	n := 0
	for _, r := range ix.res {
		for _, rdr := range r.RDRs {
			if rdr.Type == hpi.SensorRDR && r.MC == m && rdr.Sensor.Num == shelf.SensorNumOf(*s) {
				n++
				if rdr.IDString != s.Name || uint8(rdr.Sensor.Type) != s.Record.SensorType {
					t.Errorf("%s sensor #%d: RDR %q type %d, SDR %q type %d", m, s.Number, rdr.IDString, rdr.Sensor.Type, s.Name, s.Record.SensorType)
				}
			}
		}
	}
	if n != 1 {
		t.Errorf("%s sensor %q: %d RDRs", m, s.Name, n)
	}
}

// picmgSiteSlot maps ipmitool's site type names (picmg addrinfo) to the
// ATCA slot entity types of the HPI-to-AdvancedTCA mapping.
var picmgSiteSlot = map[string]hpi.EntityType{
	"ATCA board":              hpi.EntPhysicalSlot,
	"Power Entry":             hpi.ATCAEntPowerEntryModuleSlot,
	"Power Entry Module":      hpi.ATCAEntPowerEntryModuleSlot,
	"Shelf FRU Information":   hpi.ATCAEntShelfFRUDeviceSlot,
	"Dedicated Shelf Manager": hpi.ATCAEntShelfManagerSlot,
	"Fan Tray":                hpi.ATCAEntFanTraySlot,
	"Fan Filter Tray":         hpi.ATCAEntFanFilterTraySlot,
	"Alarm":                   hpi.ATCAEntAlarmSlot,
	"AdvancedMC Module":       hpi.ATCAEntAMCSlot,
	"PMC":                     hpi.ATCAEntPMCSlot,
	"Rear Transition Module":  hpi.ATCAEntRTMSlot,
}

// toolSite asks ipmitool for the site of the controller at addr (Get
// Address Info bridged to it; the shelf manager itself unbridged).
func toolSite(ctx context.Context, t *testing.T, sh *labshelf.Shelf, addr uint8, local bool) (site uint64, slot hpi.EntityType) {
	t.Helper()
	args := []string{"picmg", "addrinfo"}
	if !local {
		args = append([]string{"-t", fmt.Sprintf("0x%02x", addr), "-b", "0"}, args...)
	}
	out, err := sh.Ipmitool(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	kv := colonFields(out)
	site, err = strconv.ParseUint(kv["Site ID"], 0, 8)
	if err != nil {
		t.Fatalf("picmg addrinfo of 0x%02x: site ID: %v\n%s", addr, err, out)
	}
	slot, ok := picmgSiteSlot[kv["Site Type"]]
	if !ok {
		t.Fatalf("picmg addrinfo of 0x%02x: unknown site type %q", addr, kv["Site Type"])
	}
	return site, slot
}

func colonFields(out string) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return kv
}

// toolFRU is one block of `ipmitool fru print`.
type toolFRU struct {
	Desc   string
	Fields [][2]string // label, value in order
}

func parseFRUPrint(out string) []toolFRU {
	var frus []toolFRU
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "FRU Device Description" {
			frus = append(frus, toolFRU{Desc: v})
			continue
		}
		if len(frus) > 0 {
			frus[len(frus)-1].Fields = append(frus[len(frus)-1].Fields, [2]string{k, v})
		}
	}
	return frus
}

// fruLabel maps ipmitool's fru print labels to IDR area and field types.
var fruLabel = map[string][2]uint8{
	"Chassis Type":         {uint8(hpi.IdrAreaChassisInfo), uint8(hpi.IdrFieldChassisType)},
	"Chassis Part Number":  {uint8(hpi.IdrAreaChassisInfo), uint8(hpi.IdrFieldPartNumber)},
	"Chassis Serial":       {uint8(hpi.IdrAreaChassisInfo), uint8(hpi.IdrFieldSerialNumber)},
	"Chassis Extra":        {uint8(hpi.IdrAreaChassisInfo), uint8(hpi.IdrFieldCustom)},
	"Board Mfg Date":       {uint8(hpi.IdrAreaBoardInfo), uint8(hpi.IdrFieldMfgDatetime)},
	"Board Mfg":            {uint8(hpi.IdrAreaBoardInfo), uint8(hpi.IdrFieldManufacturer)},
	"Board Product":        {uint8(hpi.IdrAreaBoardInfo), uint8(hpi.IdrFieldProductName)},
	"Board Serial":         {uint8(hpi.IdrAreaBoardInfo), uint8(hpi.IdrFieldSerialNumber)},
	"Board Part Number":    {uint8(hpi.IdrAreaBoardInfo), uint8(hpi.IdrFieldPartNumber)},
	"Board FRU ID":         {uint8(hpi.IdrAreaBoardInfo), uint8(hpi.IdrFieldFileID)},
	"Board Extra":          {uint8(hpi.IdrAreaBoardInfo), uint8(hpi.IdrFieldCustom)},
	"Product Manufacturer": {uint8(hpi.IdrAreaProductInfo), uint8(hpi.IdrFieldManufacturer)},
	"Product Name":         {uint8(hpi.IdrAreaProductInfo), uint8(hpi.IdrFieldProductName)},
	"Product Part Number":  {uint8(hpi.IdrAreaProductInfo), uint8(hpi.IdrFieldPartNumber)},
	"Product Version":      {uint8(hpi.IdrAreaProductInfo), uint8(hpi.IdrFieldProductVersion)},
	"Product Serial":       {uint8(hpi.IdrAreaProductInfo), uint8(hpi.IdrFieldSerialNumber)},
	"Product Asset Tag":    {uint8(hpi.IdrAreaProductInfo), uint8(hpi.IdrFieldAssetTag)},
	"Product FRU ID":       {uint8(hpi.IdrAreaProductInfo), uint8(hpi.IdrFieldFileID)},
	"Product Extra":        {uint8(hpi.IdrAreaProductInfo), uint8(hpi.IdrFieldCustom)},
}

// chassisTypes are the SMBIOS chassis type names ipmitool prints, by
// code.
var chassisTypes = []string{"Unspecified", "Other", "Unknown", "Desktop", "Low Profile Desktop", "Pizza Box",
	"Mini Tower", "Tower", "Portable", "LapTop", "Notebook", "Hand Held", "Docking Station", "All in One",
	"Sub Notebook", "Space-saving", "Lunch Box", "Main Server Chassis", "Expansion Chassis", "SubChassis",
	"Bus Expansion Chassis", "Peripheral Chassis", "RAID Chassis", "Rack Mount Chassis"}

// checkInventory asserts that the inventory RDR of r has exactly the
// fields ipmitool prints for the same FRU, with the same values.
func checkInventory(t *testing.T, r *shelf.Resource, w toolFRU) {
	t.Helper()
	var inv *hpi.InventoryRec
	for _, rdr := range r.RDRs {
		if rdr.Type == hpi.InventoryRDR {
			if inv != nil {
				t.Errorf("%s: two inventory RDRs", r.Entry.Tag)
			}
			inv = rdr.Inventory
		}
	}
	if inv == nil {
		t.Errorf("%s: no inventory RDR; ipmitool prints FRU %q", r.Entry.Tag, w.Desc)
		return
	}
	type key struct {
		area, field uint8
		value       string
	}
	got := map[key]int{}
	for _, a := range inv.Areas {
		for _, f := range a.Fields {
			// ipmitool prints the FRU file ID only with -v.
			if f.Value != "" && f.Type != hpi.IdrFieldFileID {
				got[key{uint8(a.Type), uint8(f.Type), f.Value}]++
			}
		}
	}
	for _, kv := range w.Fields {
		at, ok := fruLabel[kv[0]]
		if !ok {
			t.Errorf("%s: ipmitool field %q has no IDR mapping in this test", w.Desc, kv[0])
			continue
		}
		v := kv[1]
		switch kv[0] {
		case "Chassis Type":
			i := slicesIndex(chassisTypes, v)
			if i < 0 {
				t.Errorf("%s: chassis type %q unknown to this test", w.Desc, v)
				continue
			}
			v = strconv.Itoa(i)
		case "Board Mfg Date":
			tm, err := time.Parse("Mon Jan _2 15:04:05 2006 MST", v)
			if err != nil {
				t.Errorf("%s: board date %q: %v", w.Desc, v, err)
				continue
			}
			v = tm.UTC().Format(time.RFC3339)
		}
		k := key{at[0], at[1], v}
		if got[k] == 0 {
			t.Errorf("%s: inventory lacks %s = %q (area %#x field %#x)", r.Entry.Tag, kv[0], v, at[0], at[1])
			continue
		}
		got[k]--
		if got[k] == 0 {
			delete(got, k)
		}
	}
	for k := range got {
		t.Errorf("%s: inventory has area %#x field %#x = %q, which ipmitool does not print", r.Entry.Tag, k.area, k.field, k.value)
	}
}

func slicesIndex(s []string, v string) int {
	for i := range s {
		if s[i] == v {
			return i
		}
	}
	return -1
}

// ledCount asks ipmitool how many LEDs FRU 0 of the controller has.
func ledCount(ctx context.Context, t *testing.T, sh *labshelf.Shelf, addr uint8, local bool) int {
	t.Helper()
	args := []string{"picmg", "led", "prop", "0"}
	if !local {
		args = append([]string{"-t", fmt.Sprintf("0x%02x", addr), "-b", "0"}, args...)
	}
	out, err := sh.Ipmitool(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	kv := colonFields(out)
	// ipmitool prints "0x%2x": "0x 3".
	gen, err1 := strconv.ParseUint(strings.ReplaceAll(strings.TrimPrefix(kv["General Status LED Properties"], "0x"), " ", ""), 16, 8)
	app, err2 := strconv.ParseUint(strings.ReplaceAll(strings.TrimPrefix(kv["App. Specific  LED Count"], "0x"), " ", ""), 16, 8)
	if err1 != nil || err2 != nil {
		t.Fatalf("picmg led prop of 0x%02x: %v %v\n%s", addr, err1, err2, out)
	}
	n := int(app)
	for b := gen; b != 0; b >>= 1 {
		n += int(b & 1)
	}
	return n
}

func labDiscover(ctx context.Context, t *testing.T, sh *labshelf.Shelf) (*rmcpp.Session, *shelf.Snapshot) {
	t.Helper()
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	snap, err := shelf.Discover(ctx, sess, shelf.DiscoverOptions{Readings: true})
	if err != nil {
		t.Fatal(err)
	}
	return sess, snap
}

// TestDiscoverMatchesIpmitool discovers the lab shelf (ipmi_sim in ATCA
// mode) and compares everything with ipmitool on the same simulator: every
// MC locator, FRU locator and sensor of `sdr elist all` with its owner,
// name, entity and reading; nothing more; entity paths from each
// controller's Get Address Info as ipmitool reads it; inventory fields
// from `fru print`; LED controls from `picmg led prop`.
func TestDiscoverMatchesIpmitool(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []labshelf.Option
	}{
		// The main repository aggregates every IPMC's SDRs, as real
		// shelf managers do.
		{"aggregated main SDR repository", nil},
		// Only the shelf manager's sensors and the IPMC locators: the
		// IPMCs' own sensors are not in the repository, so discovery
		// must not invent them (no hot-swap sensor, no activation
		// control for the IPMCs).
		{"shelf manager's own SDRs only", []labshelf.Option{labshelf.WithMainSDR(labshelf.MainSDROwn)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testDiscoverMatchesIpmitool(t, tc.opts...)
		})
	}
}

func testDiscoverMatchesIpmitool(t *testing.T, opts ...labshelf.Option) {
	sh := labshelf.Start(t, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, snap := labDiscover(ctx, t, sh)
	res, err := shelf.Model(snap, shelf.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ix := newDiscIndex(snap, res)
	tool := toolSDRs(ctx, t, sh.Ipmitool)
	checkAgainstTool(t, ix, tool, nil)

	if !snap.LocalAddrKnown {
		t.Error("the shelf manager's IPMB address was not learnt from Get Address Info")
	}
	bridged := 0
	for _, r := range snap.Readings {
		if !r.Sensor.Owner.Local() && r.Err == nil {
			bridged++
		}
	}
	toolBridged := 0
	for _, w := range tool {
		if w.isSensor() && w.Owner != snap.LocalAddr {
			toolBridged++
		}
	}
	if bridged != toolBridged {
		t.Errorf("%d sensors read through IPMB bridging, ipmitool lists %d owned by IPMCs", bridged, toolBridged)
	}

	// Entity paths and LED controls per controller.
	for _, m := range snap.MCs {
		r := ix.resource(m.IPMBAddr, 0)
		if r == nil {
			t.Errorf("%s: no resource", m)
			continue
		}
		site, slot := toolSite(ctx, t, sh, m.IPMBAddr, m.ShelfManager)
		if m.Locator == nil {
			t.Errorf("%s: no MC locator", m)
			continue
		}
		want := hpi.EntityPath{
			{Type: hpi.EntityTypeFromIPMI(m.Locator.EntityID), Location: 0},
			{Type: slot, Location: hpi.EntityLocation(site)},
			{Type: hpi.EntAdvancedTCAChassis, Location: 1},
		}
		if !r.Entry.EntityPath.Equal(want) {
			t.Errorf("%s: entity path %s, want %s", m, r.Entry.EntityPath, want)
		}
		leds := 0
		activation := 0
		for _, rdr := range r.RDRs {
			switch {
			case rdr.Type == hpi.CtrlRDR && rdr.Control.OutputType == hpi.CtrlLED:
				leds++
			case rdr.Type == hpi.CtrlRDR && rdr.Control.Num == hpi.ATCAFRUActivationControl().Num:
				activation++
			}
		}
		if want := ledCount(ctx, t, sh, m.IPMBAddr, m.ShelfManager); leds != want {
			t.Errorf("%s: %d LED controls, ipmitool reports %d LEDs", m, leds, want)
		}
		// Every lab FRU has a hot-swap sensor (compact, type F0h), so
		// every resource is a managed hot-swap one with an activation
		// control.
		hasHS := false
		for _, w := range tool {
			hasHS = hasHS || (w.isSensor() && w.Owner == m.IPMBAddr && w.SensorType == 0xf0)
		}
		if hasHS != (activation == 1) || hasHS != r.Entry.Capabilities.Has(hpi.CapabilityManagedHotswap) {
			t.Errorf("%s: hot-swap sensor %v, activation controls %d, caps %s", m, hasHS, activation, r.Entry.Capabilities)
		}
		if hasHS && (!r.HasMState || r.MState != hpi.M4) {
			t.Errorf("%s: M-state %v (%v), the lab's FRUs are active", m, r.MState, r.HasMState)
		}
	}

	// Inventory.
	out, err := sh.Ipmitool(ctx, "fru", "print")
	if err != nil {
		t.Fatal(err)
	}
	frus := parseFRUPrint(out)
	invs := 0
	for _, r := range res {
		for _, rdr := range r.RDRs {
			if rdr.Type == hpi.InventoryRDR {
				invs++
			}
		}
	}
	if len(frus) == 0 || invs != len(frus) {
		t.Errorf("model has %d inventory RDRs, ipmitool prints %d FRUs", invs, len(frus))
	}
	for _, w := range frus {
		var r *shelf.Resource
		switch {
		case strings.HasPrefix(w.Desc, "Builtin FRU Device (ID 0)"):
			r = ix.resource(snap.LocalAddr, 0)
		default:
			for _, tw := range tool {
				if tw.Type == 0x12 && tw.Name == strings.TrimSpace(w.Desc) {
					r = ix.resource(tw.Owner, 0)
				}
				if tw.Type == 0x11 && strings.HasPrefix(w.Desc, tw.Name+" (ID ") {
					r = ix.resource(tw.Owner, tw.Number)
				}
			}
		}
		if r == nil {
			t.Errorf("ipmitool prints FRU %q, which has no resource", w.Desc)
			continue
		}
		checkInventory(t, r, w)
	}
}

// TestDiscoverLabLostIPMC disables one blade IPMC in ipmi_sim (it stops
// answering; bridged requests get 0x83) and checks that discovery still
// succeeds, with that controller lost, its resource failed after Apply,
// no readings of its sensors (ipmitool shows none either), and everything
// else as ipmitool lists it.
func TestDiscoverLabLostIPMC(t *testing.T) {
	t.Parallel()
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tool := toolSDRs(ctx, t, sh.Ipmitool)
	// Pick the last IPMC ipmitool lists, not a fixed address: any MC
	// locator but the shelf manager's own (its IPMB-0 address as
	// ipmitool's Get Address Info shows it).
	out, err := sh.Ipmitool(ctx, "picmg", "addrinfo")
	if err != nil {
		t.Fatal(err)
	}
	local, err := strconv.ParseUint(colonFields(out)["IPMB-0 Address"], 0, 8)
	if err != nil {
		t.Fatalf("picmg addrinfo: %v\n%s", err, out)
	}
	var victim uint8
	for _, w := range tool {
		if w.Type == 0x12 && w.Owner != uint8(local) {
			victim = w.Owner
		}
	}
	if victim == 0 {
		t.Fatal("ipmitool lists no IPMC")
	}
	if _, err := sh.Console(ctx, fmt.Sprintf("mc_disable 0x%02x", victim)); err != nil {
		t.Fatal(err)
	}
	tool = toolSDRs(ctx, t, sh.Ipmitool)
	_, snap := labDiscover(ctx, t, sh)
	d := hpi.NewDomain(hpi.Config{})
	res, err := shelf.Model(snap, shelf.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstTool(t, newDiscIndex(snap, res), tool, map[uint8]bool{victim: true})
	m := snap.MCAt(victim)
	if m == nil || !m.Lost || m.Err == nil {
		t.Fatalf("IPMC 0x%02x: %+v, want lost with an error", victim, m)
	}
	if _, err := shelf.Apply(snap, d, shelf.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, e := range d.Resources() {
		if e.ResourceFailed {
			failed++
		}
	}
	for _, r := range res {
		e, ok := d.ResourceByPath(r.Entry.EntityPath)
		if !ok {
			t.Errorf("%s: not in the domain", r.Entry.EntityPath)
			continue
		}
		if e.ResourceFailed != (r.MC.IPMBAddr == victim) {
			t.Errorf("%s (%s): failed %v", e.EntityPath, r.MC, e.ResourceFailed)
		}
	}
	if failed != 1 {
		t.Errorf("%d failed resources, want 1", failed)
	}
	// Its site is still known from the shelf manager, so its entity path
	// is the ATCA one, not an address-based fallback.
	if f := m.FRUOf(0); f == nil || f.Site == nil {
		t.Errorf("IPMC 0x%02x: no site from the shelf manager (unsupported %q, problems %v)", victim, m.Unsupported, m.Problems)
	}
}
