package shelf

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"hpiagent/hpi"
	"hpiagent/shelf/ipmi"
)

// ModelOptions tune how a Snapshot becomes HPI resources.
type ModelOptions struct {
	// Root is the entity path of the shelf itself, the container of every
	// resource. Default {ADVANCEDTCA_CHASSIS,1}.
	Root hpi.EntityPath
}

func (o ModelOptions) root() hpi.EntityPath {
	if len(o.Root) == 0 {
		return hpi.EntityPath{{Type: hpi.EntAdvancedTCAChassis, Location: 1}}
	}
	return o.Root
}

// Resource is the HPI view of one FRU of a Snapshot: its RPT entry and
// RDRs, ready for hpi.Domain.UpsertResource.
type Resource struct {
	Entry hpi.RPTEntry
	RDRs  []hpi.RDR
	// MC and FRU are what it was made from.
	MC  *MC
	FRU *FRU
	// MState is the M-state read from the FRU's hot-swap sensor, valid when
	// HasMState. A resource of a controller that did not answer (MC.Lost)
	// has no M-state; Apply reports it as M7 (communication lost).
	MState    hpi.MState
	HasMState bool
}

// slotType is the ATCA slot entity type (SaHpiAtca.h) of a PICMG site.
func slotType(t ipmi.SiteType) hpi.EntityType {
	switch t {
	case ipmi.SiteBoard:
		return hpi.EntPhysicalSlot
	case ipmi.SitePowerEntry:
		return hpi.ATCAEntPowerEntryModuleSlot
	case ipmi.SiteShelfFRUInfo:
		return hpi.ATCAEntShelfFRUDeviceSlot
	case ipmi.SiteShelfManager:
		return hpi.ATCAEntShelfManagerSlot
	case ipmi.SiteFanTray:
		return hpi.ATCAEntFanTraySlot
	case ipmi.SiteFanFilterTray:
		return hpi.ATCAEntFanFilterTraySlot
	case ipmi.SiteAlarm:
		return hpi.ATCAEntAlarmSlot
	case ipmi.SiteAMC:
		return hpi.ATCAEntAMCSlot
	case ipmi.SitePMC:
		return hpi.ATCAEntPMCSlot
	case ipmi.SiteRTM:
		return hpi.ATCAEntRTMSlot
	}
	return hpi.EntPhysicalSlot
}

// siteEntity is the entity type of a FRU in a site of type t when no SDR
// names its entity.
func siteEntity(t ipmi.SiteType) hpi.EntityType {
	switch t {
	case ipmi.SiteBoard:
		return hpi.EntPICMGFrontBlade
	case ipmi.SitePowerEntry:
		return hpi.EntPowerSupply
	case ipmi.SiteShelfFRUInfo:
		return hpi.ATCAEntShelfFRUDevice
	case ipmi.SiteShelfManager:
		return hpi.EntShelfManager
	case ipmi.SiteFanTray:
		return hpi.EntCoolingUnit
	case ipmi.SiteFanFilterTray:
		return hpi.ATCAEntFiltrationUnit
	case ipmi.SiteAlarm:
		return hpi.EntAlarmManager
	case ipmi.SiteAMC:
		return hpi.ATCAEntAMC
	case ipmi.SiteRTM:
		return hpi.EntBackPanelBoard
	}
	return hpi.EntOther
}

// carried reports whether a site type is a site on a carrier board (AMC,
// PMC, RTM) rather than a site of the shelf.
func carried(t ipmi.SiteType) bool {
	return t == ipmi.SiteAMC || t == ipmi.SitePMC || t == ipmi.SiteRTM
}

// EntityPathOf builds the entity path of FRU f of controller m:
//
//   - a FRU with PICMG site information: root + {slot type of the site,
//     site number} + {its entity type, 0}, for example
//     {ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,5}{PICMG_FRONT_BLADE,0} for
//     a front board, {CHASSIS_SPECIFIC04,2}{COOLING_UNIT,0} for a fan tray
//     (the ATCA slot types print as CHASSIS_SPECIFICnn). Sites on a carrier
//     (AMC, PMC, RTM) go below the carrier's FRU 0.
//   - another FRU of a controller whose FRU 0 has a path, in the same site
//     or without site information: FRU 0's path + {its entity type, FRU
//     device ID}.
//   - FRU 0 of a controller without site information (not a PICMG
//     controller, or not answering): root + {its entity type, its entity
//     instance when system-relative, else its IPMB address}.
//
// The entity type comes from the FRU's (or, for FRU 0, the controller's)
// device locator through hpi.EntityTypeFromIPMI, else from the site type.
func EntityPathOf(m *MC, f *FRU, opts ModelOptions) hpi.EntityPath {
	root := opts.root()
	typ := hpi.EntOther
	eid, einst, hasEntity := m.entityOf(f)
	switch {
	case hasEntity:
		typ = hpi.EntityTypeFromIPMI(eid)
	case f.Site != nil:
		typ = siteEntity(f.Site.SiteType)
	case !m.ShelfManager:
		typ = hpi.EntSysMgmntModule
	default:
		typ = hpi.EntShelfManager
	}
	var f0 hpi.EntityPath
	if f.ID != 0 {
		if z := m.FRUOf(0); z != nil {
			f0 = EntityPathOf(m, z, opts)
		}
	}
	if f.Site != nil {
		site0 := m.FRUOf(0)
		sameSite := f.ID != 0 && site0 != nil && site0.Site != nil && site0.Site.SiteType == f.Site.SiteType && site0.Site.SiteID == f.Site.SiteID
		if !sameSite {
			slot := hpi.Entity{Type: slotType(f.Site.SiteType), Location: hpi.EntityLocation(f.Site.SiteID)}
			parent := root
			if f.ID != 0 && carried(f.Site.SiteType) && f0 != nil {
				parent = f0
			}
			return hpi.EntityPath{{Type: typ, Location: 0}, slot}.Concat(parent)
		}
	}
	if f.ID != 0 && f0 != nil {
		return hpi.EntityPath{{Type: typ, Location: hpi.EntityLocation(f.ID)}}.Concat(f0)
	}
	loc := hpi.EntityLocation(m.IPMBAddr)
	if hasEntity && einst&0x7f < 0x60 {
		loc = hpi.IPMIEntityLocation(einst)
	}
	return hpi.EntityPath{{Type: typ, Location: loc}}.Concat(root)
}

// Model turns a snapshot into HPI resources, one per FRU, in the order of
// the snapshot. It is pure: the same snapshot gives the same resources.
// Two FRUs that would get the same entity path (a shelf whose site
// information is inconsistent) are reported in the error, and only the
// first of them is modelled.
func Model(snap *Snapshot, opts ModelOptions) ([]Resource, error) {
	var out []Resource
	var errs []error
	seen := map[string]string{}
	for _, m := range snap.MCs {
		for _, f := range m.FRUs {
			r := modelFRU(m, f, opts)
			k := r.Entry.EntityPath.String()
			what := fmt.Sprintf("%s FRU %d", m, f.ID)
			if prev, dup := seen[k]; dup {
				errs = append(errs, fmt.Errorf("modelling %s: entity path %s is already %s", what, k, prev))
				continue
			}
			seen[k] = what
			out = append(out, r)
		}
	}
	return out, errors.Join(errs...)
}

func modelFRU(m *MC, f *FRU, opts ModelOptions) Resource {
	r := Resource{MC: m, FRU: f}
	e := &r.Entry
	e.EntityPath = EntityPathOf(m, f, opts)
	e.Capabilities = hpi.CapabilityResource | hpi.CapabilityRDR | hpi.CapabilityFRU
	e.Severity = hpi.Major
	e.Tag = tagOf(m, f)
	if f.ID == 0 && m.Device != nil {
		d := m.Device
		e.ResourceInfo = hpi.ResourceInfo{
			ResourceRev: d.DeviceRevision, SpecificVer: d.IPMIVersion, DeviceSupport: d.DeviceSupport,
			ManufacturerID: d.ManufacturerID, ProductID: d.ProductID,
			FirmwareMajorRev: d.FirmwareMajor, FirmwareMinorRev: d.FirmwareMinor,
		}
		if len(d.AuxFirmware) > 0 {
			e.ResourceInfo.AuxFirmwareRev = d.AuxFirmware[0]
		}
	}

	for _, s := range m.SensorsOfFRU(f) {
		r.RDRs = append(r.RDRs, SensorRDR(s))
		e.Capabilities |= hpi.CapabilitySensor
	}
	if f.Inventory != nil {
		r.RDRs = append(r.RDRs, InventoryRDR(f.Inventory, 0, e.Tag))
		e.Capabilities |= hpi.CapabilityInventoryData
	}
	for _, led := range f.LEDs {
		r.RDRs = append(r.RDRs, LEDControlRDR(led))
		e.Capabilities |= hpi.CapabilityControl
		if led.ID == 0 {
			e.HotSwapCapabilities |= hpi.HsCapabilityIndicatorSupported
		}
	}
	if m.PICMG != nil && f.HotSwap != nil {
		c := hpi.ATCAFRUActivationControl()
		r.RDRs = append(r.RDRs, hpi.RDR{Type: hpi.CtrlRDR, IsFRU: true, IDString: "FRU activation", Control: &c})
		e.Capabilities |= hpi.CapabilityControl | hpi.CapabilityManagedHotswap
	}
	if f.Control != nil {
		e.Capabilities |= hpi.CapabilityReset
	}
	if f.Power != nil {
		e.Capabilities |= hpi.CapabilityPower
	}
	if f.HasMState {
		r.MState, r.HasMState = hpi.MState(f.MState), true
	}
	return r
}

func tagOf(m *MC, f *FRU) string {
	switch {
	case f.Locator != nil && f.Locator.ID.Text() != "":
		return f.Locator.ID.Text()
	case f.ID == 0 && m.Locator != nil && m.Locator.ID.Text() != "":
		return m.Locator.ID.Text()
	case f.Inventory != nil && f.Inventory.Board != nil && f.Inventory.Board.Product.Text() != "":
		return f.Inventory.Board.Product.Text()
	case f.Inventory != nil && f.Inventory.Product != nil && f.Inventory.Product.Name.Text() != "":
		return f.Inventory.Product.Name.Text()
	}
	return fmt.Sprintf("%s FRU %d", m, f.ID)
}

// SensorNumOf is the HPI sensor number of an IPMI sensor: its LUN in bits
// 9:8 and its number in bits 7:0, so sensors of the same controller on
// different LUNs stay apart.
func SensorNumOf(s Sensor) hpi.SensorNum {
	return hpi.SensorNum(s.Record.OwnerLUN&3)<<8 | hpi.SensorNum(s.Number)
}

// thresholdMask maps an IPMI threshold to its HPI threshold mask bit.
var thresholdMask = [6]hpi.SensorThdMask{
	ipmi.LowerNonCritical:    hpi.ThdLowMinor,
	ipmi.LowerCritical:       hpi.ThdLowMajor,
	ipmi.LowerNonRecoverable: hpi.ThdLowCrit,
	ipmi.UpperNonCritical:    hpi.ThdUpMinor,
	ipmi.UpperCritical:       hpi.ThdUpMajor,
	ipmi.UpperNonRecoverable: hpi.ThdUpCrit,
}

// categoryOf maps an IPMI event/reading type code to the HPI event
// category: HPI numbers its categories after the IPMI generic codes 01h to
// 0Ch; 6Fh is sensor-specific; the rest (OEM, unspecified) is generic.
func categoryOf(ert uint8) hpi.EventCategory {
	switch {
	case ert >= 0x01 && ert <= 0x0c:
		return hpi.EventCategory(ert)
	case ert == 0x6f:
		return hpi.ECSensorSpecific
	case ert == 0x00:
		return hpi.ECUnspecified
	}
	return hpi.ECGeneric
}

// SensorRDR builds the HPI sensor record of s (SAF HPI B.03 / the IPMI
// mapping of the OpenHPI IPMI plugins): number, type, category, event
// states from the assertion and deassertion masks, data format with units,
// range and accuracy for analog sensors, and which thresholds are readable
// and writable.
func SensorRDR(s Sensor) hpi.RDR {
	rec := s.Record
	sr := hpi.SensorRec{
		Num:      SensorNumOf(s),
		Type:     hpi.SensorType(rec.SensorType),
		Category: categoryOf(rec.EventReadingType),
	}
	switch rec.EventControl() {
	case 0:
		sr.EventCtrl, sr.EnableCtrl = hpi.SECPerEvent, true
	case 1, 2:
		sr.EventCtrl, sr.EnableCtrl = hpi.SECReadOnlyMasks, true
	default:
		sr.EventCtrl = hpi.SECReadOnly
	}
	events := rec.AssertMask | rec.DeassertMask
	if rec.IsThreshold() {
		// Each threshold has a going-low and a going-high event bit.
		for th := range 6 {
			if events&(3<<(2*th)) != 0 {
				sr.Events |= hpi.EventState(thresholdMask[th])
			}
		}
	} else {
		sr.Events = hpi.EventState(events & 0x7fff)
	}
	if rec.Analog() {
		df := &sr.DataFormat
		df.IsSupported = true
		df.ReadingType = hpi.ReadingFloat64
		df.BaseUnits = hpi.SensorUnits(rec.Units.Base)
		df.ModifierUnits = hpi.SensorUnits(rec.Units.Modifier)
		df.ModifierUse = hpi.SensorModUnitUse(rec.Units.Relation)
		df.Percentage = rec.Units.Percentage
		df.AccuracyFactor = rec.Conv.AccuracyPercent() / 100
		rg := &df.Range
		set := func(flag hpi.SensorRangeFlags, dst *hpi.SensorReading, raw uint8) {
			if v, err := rec.Conv.Real(raw); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
				*dst = hpi.Float(v)
				rg.Flags |= flag
			}
		}
		lo, hi := rec.MinReading, rec.MaxReading
		// With a decreasing conversion (negative M) the raw minimum is the
		// real maximum.
		if a, errA := rec.Conv.Real(lo); errA == nil {
			if b, errB := rec.Conv.Real(hi); errB == nil && a > b {
				lo, hi = hi, lo
			}
		}
		set(hpi.RangeMin, &rg.Min, lo)
		set(hpi.RangeMax, &rg.Max, hi)
		if rec.AnalogFlags&1 != 0 {
			set(hpi.RangeNominal, &rg.Nominal, rec.Nominal)
		}
		if rec.AnalogFlags&2 != 0 {
			set(hpi.RangeNormalMax, &rg.NormalMax, rec.NormalMax)
		}
		if rec.AnalogFlags&4 != 0 {
			set(hpi.RangeNormalMin, &rg.NormalMin, rec.NormalMin)
		}
	}
	if rec.IsThreshold() && (rec.ThresholdAccess() == 1 || rec.ThresholdAccess() == 2) {
		td := &sr.ThresholdDefn
		td.IsAccessible = true
		for th := ipmi.Threshold(0); th < 6; th++ {
			if rec.Readable(th) {
				td.ReadThold |= thresholdMask[th]
			}
			if rec.Settable(th) {
				td.WriteThold |= thresholdMask[th]
			}
		}
		switch rec.HysteresisAccess() {
		case 2:
			td.WriteThold |= hpi.ThdUpHysteresis | hpi.ThdLowHysteresis
			fallthrough
		case 1:
			td.ReadThold |= hpi.ThdUpHysteresis | hpi.ThdLowHysteresis
		}
		td.Nonlinear = rec.Conv.Linearization != ipmi.LinLinear
	}
	return hpi.RDR{Type: hpi.SensorRDR, IDString: s.Name, Sensor: &sr}
}

// InventoryRDR builds the inventory RDR (IDR id) of a decoded FRU image:
// one area per chassis, board and product info area with their fields in
// the order of the FRU specification, and one OEM area per multi-record
// (its data in hex, in one custom field). Areas and fields are numbered
// from 1 in that order. Everything is read-only: hpiagent does not write
// FRU data.
func InventoryRDR(inv *ipmi.FRU, id hpi.IdrID, name string) hpi.RDR {
	rec := hpi.InventoryRec{IdrID: id}
	add := func(t hpi.IdrAreaType, fields []hpi.IdrField) {
		for i := range fields {
			fields[i].FieldID = uint32(i + 1)
			fields[i].ReadOnly = true
		}
		rec.Areas = append(rec.Areas, hpi.IdrArea{AreaID: uint32(len(rec.Areas) + 1), Type: t, ReadOnly: true, Fields: fields})
	}
	field := func(t hpi.IdrFieldType, s ipmi.TLString) hpi.IdrField {
		return hpi.IdrField{Type: t, Value: s.Text()}
	}
	customs := func(fs []hpi.IdrField, cs []ipmi.TLString) []hpi.IdrField {
		for _, c := range cs {
			fs = append(fs, field(hpi.IdrFieldCustom, c))
		}
		return fs
	}
	if c := inv.Chassis; c != nil {
		fs := []hpi.IdrField{
			{Type: hpi.IdrFieldChassisType, Value: fmt.Sprintf("%d", c.Type)},
			field(hpi.IdrFieldPartNumber, c.PartNumber),
			field(hpi.IdrFieldSerialNumber, c.Serial),
		}
		add(hpi.IdrAreaChassisInfo, customs(fs, c.Custom))
	}
	if b := inv.Board; b != nil {
		var fs []hpi.IdrField
		if !b.MfgTime.IsZero() {
			fs = append(fs, hpi.IdrField{Type: hpi.IdrFieldMfgDatetime, Value: b.MfgTime.UTC().Format(time.RFC3339)})
		}
		fs = append(fs,
			field(hpi.IdrFieldManufacturer, b.Manufacturer),
			field(hpi.IdrFieldProductName, b.Product),
			field(hpi.IdrFieldSerialNumber, b.Serial),
			field(hpi.IdrFieldPartNumber, b.PartNumber),
			field(hpi.IdrFieldFileID, b.FileID),
		)
		add(hpi.IdrAreaBoardInfo, customs(fs, b.Custom))
	}
	if p := inv.Product; p != nil {
		fs := []hpi.IdrField{
			field(hpi.IdrFieldManufacturer, p.Manufacturer),
			field(hpi.IdrFieldProductName, p.Name),
			field(hpi.IdrFieldPartNumber, p.PartNumber),
			field(hpi.IdrFieldProductVersion, p.Version),
			field(hpi.IdrFieldSerialNumber, p.Serial),
			field(hpi.IdrFieldAssetTag, p.AssetTag),
			field(hpi.IdrFieldFileID, p.FileID),
		}
		add(hpi.IdrAreaProductInfo, customs(fs, p.Custom))
	}
	for _, mr := range inv.MultiRecords {
		add(hpi.IdrAreaOEM, []hpi.IdrField{{Type: hpi.IdrFieldCustom, Value: fmt.Sprintf("type 0x%02x: %x", mr.Type, mr.Data)}})
	}
	return hpi.RDR{Type: hpi.InventoryRDR, IsFRU: true, IDString: name, Inventory: &rec}
}

// LEDControlRDR builds the control record of a PICMG FRU LED as the HPI to
// AdvancedTCA mapping numbers them (0 blue LED, 1-3 LEDs 1-3, 4 and up the
// application-specific LEDs): an OEM control of output type LED whose Oem
// field carries the colour capabilities as Colors | DefaultLocal<<8 |
// DefaultOverride<<16 (0 when unknown).
func LEDControlRDR(l LED) hpi.RDR {
	var oem uint32
	if l.Colors != nil {
		oem = uint32(l.Colors.Colors) | uint32(l.Colors.DefaultLocal)<<8 | uint32(l.Colors.DefaultOverride)<<16
	}
	name := fmt.Sprintf("LED %d", l.ID)
	switch {
	case l.ID == 0:
		name = "Blue LED"
	case l.ID >= 4:
		name = fmt.Sprintf("Application LED %d", l.ID-3)
	}
	c := hpi.CtrlRec{
		Num:         hpi.CtrlNum(l.ID),
		OutputType:  hpi.CtrlLED,
		Type:        hpi.CtrlTypeOEM,
		Default:     hpi.CtrlState{Type: hpi.CtrlTypeOEM},
		DefaultMode: hpi.CtrlDefaultMode{Mode: hpi.CtrlModeAuto},
		Oem:         oem,
	}
	return hpi.RDR{Type: hpi.CtrlRDR, IDString: name, Control: &c}
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	ModelOptions
	// Previous are the resources the previous Apply put into the domain
	// (ApplyResult.Resources); those the new snapshot no longer has are
	// removed. Resources of other origins are never touched.
	Previous []hpi.ResourceID
	// Now is the time of the observations; time.Now() when zero.
	Now time.Time
	// Rediscovery says the domain already holds this shelf from an earlier
	// Apply. A FRU resource that appears in a rediscovery was inserted
	// since (or its controller came back): its first M-state is observed
	// as a transition from M0, so the domain emits NOT_PRESENT → its state
	// and hot-swap workflows see the insertion. In the first discovery the
	// states are initial and emit nothing.
	Rediscovery bool
}

// ApplyResult says what Apply did.
type ApplyResult struct {
	// Resources are the domain IDs of every resource of the snapshot.
	Resources []hpi.ResourceID
	// Removed are the previous resources the snapshot no longer has.
	Removed []hpi.ResourceID
	// Intents are hot-swap intents the domain returned for the observed
	// M-states (with an immediate auto-insert policy); the caller carries
	// them out.
	Intents []hpi.Intent
}

// Apply puts the resources of snap into d: every FRU is upserted with its
// complete set of RDRs (the domain keeps resource IDs per entity path and
// changes nothing when a rediscovered resource is unchanged), its M-state
// is observed (a controller that did not answer is observed in M7,
// communication lost, which marks its resources failed), and the resources
// of the previous Apply that are gone are removed. An error of one
// resource does not stop the others; all errors are returned joined.
func Apply(snap *Snapshot, d *hpi.Domain, opts ApplyOptions) (ApplyResult, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	var res ApplyResult
	resources, err := Model(snap, opts.ModelOptions)
	errs := []error{err}
	for _, r := range resources {
		_, existed := d.ResourceByPath(r.Entry.EntityPath)
		id, err := d.UpsertResource(r.Entry, r.RDRs)
		if err != nil {
			errs = append(errs, fmt.Errorf("applying %s FRU %d: %w", r.MC, r.FRU.ID, err))
			continue
		}
		res.Resources = append(res.Resources, id)
		switch {
		case r.MC.Lost:
			_, intents, err := d.ObserveMState(id, hpi.MStateUnknown, hpi.M7, hpi.HsCauseUnknown, now)
			if err != nil {
				errs = append(errs, fmt.Errorf("marking %s FRU %d lost: %w", r.MC, r.FRU.ID, err))
			}
			res.Intents = append(res.Intents, intents...)
		case r.HasMState:
			prev := hpi.MStateUnknown
			if opts.Rediscovery && !existed && r.MState != hpi.M0 {
				prev = hpi.M0
			}
			_, intents, err := d.ObserveMState(id, prev, r.MState, hpi.HsCauseUnknown, now)
			if err != nil {
				errs = append(errs, fmt.Errorf("observing the M-state of %s FRU %d: %w", r.MC, r.FRU.ID, err))
			}
			res.Intents = append(res.Intents, intents...)
		default:
			if err := d.SetResourceFailed(id, false, now); err != nil {
				errs = append(errs, fmt.Errorf("restoring %s FRU %d: %w", r.MC, r.FRU.ID, err))
			}
		}
	}
	for _, id := range opts.Previous {
		if slices.Contains(res.Resources, id) {
			continue
		}
		if _, ok := d.Resource(id); !ok {
			continue
		}
		if err := d.RemoveResource(id); err != nil {
			errs = append(errs, fmt.Errorf("removing resource %d: %w", id, err))
			continue
		}
		res.Removed = append(res.Removed, id)
	}
	return res, errors.Join(errs...)
}
