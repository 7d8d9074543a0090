package hpi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// EntityType is SaHpiEntityTypeT. Values below EntSAFHPIGroup are the IPMI
// entity IDs (the IPMI group); values from EntSAFHPIGroup on are defined by
// HPI.
type EntityType uint32

// EntityLocation is SaHpiEntityLocationT, the instance of an entity within
// its parent.
type EntityLocation uint32

// MaxEntityPath is SAHPI_MAX_ENTITY_PATH.
const MaxEntityPath = 16

// Entity type groups.
const (
	EntIPMIGroup   EntityType = 0       // SAHPI_ENT_IPMI_GROUP
	EntSAFHPIGroup EntityType = 0x10000 // SAHPI_ENT_SAFHPI_GROUP
)

// Entity types of the IPMI group (SaHpi.h).
const (
	EntUnspecified           EntityType = 0
	EntOther                 EntityType = 1
	EntUnknown               EntityType = 2
	EntProcessor             EntityType = 3
	EntDiskBay               EntityType = 4
	EntPeripheralBay         EntityType = 5
	EntSysMgmntModule        EntityType = 6
	EntSystemBoard           EntityType = 7
	EntMemoryModule          EntityType = 8
	EntProcessorModule       EntityType = 9
	EntPowerSupply           EntityType = 10
	EntAddInCard             EntityType = 11
	EntFrontPanelBoard       EntityType = 12
	EntBackPanelBoard        EntityType = 13
	EntPowerSystemBoard      EntityType = 14
	EntDriveBackplane        EntityType = 15
	EntSysExpansionBoard     EntityType = 16
	EntOtherSystemBoard      EntityType = 17
	EntProcessorBoard        EntityType = 18
	EntPowerUnit             EntityType = 19
	EntPowerModule           EntityType = 20
	EntPowerMgmnt            EntityType = 21
	EntChassisBackPanelBoard EntityType = 22
	EntSystemChassis         EntityType = 23
	EntSubChassis            EntityType = 24
	EntOtherChassisBoard     EntityType = 25
	EntDiskDriveBay          EntityType = 26
	EntPeripheralBay2        EntityType = 27
	EntDeviceBay             EntityType = 28
	EntCoolingDevice         EntityType = 29
	EntCoolingUnit           EntityType = 30
	EntInterconnect          EntityType = 31
	EntMemoryDevice          EntityType = 32
	EntSysMgmntSoftware      EntityType = 33
	EntBIOS                  EntityType = 34
	EntOperatingSystem       EntityType = 35
	EntSystemBus             EntityType = 36
	EntGroup                 EntityType = 37
	EntRemote                EntityType = 38
	EntExternalEnvironment   EntityType = 39
	EntBattery               EntityType = 40
	EntProcessingBlade       EntityType = 41
	EntConnectivitySwitch    EntityType = 42
	EntProcessorMemoryModule EntityType = 43
	EntIOModule              EntityType = 44
	EntProcessorIOModule     EntityType = 45
	EntMCFirmware            EntityType = 46
	EntIPMIChannel           EntityType = 47
	EntPCIBus                EntityType = 48
	EntPCIExpressBus         EntityType = 49
	EntSCSIBus               EntityType = 50
	EntSATABus               EntityType = 51
	EntProcFSB               EntityType = 52
	EntClock                 EntityType = 53
	EntSystemFirmware        EntityType = 54
	EntChassisSpecific       EntityType = 0x90 // SAHPI_ENT_CHASSIS_SPECIFIC; 0x91..0x9D are CHASSIS_SPECIFIC01..13
	EntBoardSetSpecific      EntityType = 0xB0
	EntOEMSysIntSpecific     EntityType = 0xD0
	EntRoot                  EntityType = 0xFFFF // SAHPI_ENT_ROOT: ends an entity path, never printed
)

// Entity types of the SAF HPI group (SaHpi.h).
const (
	EntRack                  EntityType = EntSAFHPIGroup + iota // SAHPI_ENT_RACK
	EntSubrack                                                  // SAHPI_ENT_SUBRACK
	EntCompactPCIChassis                                        // SAHPI_ENT_COMPACTPCI_CHASSIS
	EntAdvancedTCAChassis                                       // SAHPI_ENT_ADVANCEDTCA_CHASSIS
	EntRackMountedServer                                        // SAHPI_ENT_RACK_MOUNTED_SERVER
	EntSystemBlade                                              // SAHPI_ENT_SYSTEM_BLADE
	EntSwitch                                                   // SAHPI_ENT_SWITCH
	EntSwitchBlade                                              // SAHPI_ENT_SWITCH_BLADE
	EntSBCBlade                                                 // SAHPI_ENT_SBC_BLADE
	EntIOBlade                                                  // SAHPI_ENT_IO_BLADE
	EntDiskBlade                                                // SAHPI_ENT_DISK_BLADE
	EntDiskDrive                                                // SAHPI_ENT_DISK_DRIVE
	EntFan                                                      // SAHPI_ENT_FAN
	EntPowerDistributionUnit                                    // SAHPI_ENT_POWER_DISTRIBUTION_UNIT
	EntSpecProcBlade                                            // SAHPI_ENT_SPEC_PROC_BLADE
	EntIOSubboard                                               // SAHPI_ENT_IO_SUBBOARD
	EntSBCSubboard                                              // SAHPI_ENT_SBC_SUBBOARD
	EntAlarmManager                                             // SAHPI_ENT_ALARM_MANAGER
	EntShelfManager                                             // SAHPI_ENT_SHELF_MANAGER
	EntDisplayPanel                                             // SAHPI_ENT_DISPLAY_PANEL
	EntSubboardCarrierBlade                                     // SAHPI_ENT_SUBBOARD_CARRIER_BLADE
	EntPhysicalSlot                                             // SAHPI_ENT_PHYSICAL_SLOT
	EntPICMGFrontBlade                                          // SAHPI_ENT_PICMG_FRONT_BLADE
	EntSystemInventoryDevice                                    // SAHPI_ENT_SYSTEM_INVENTORY_DEVICE
	EntFiltrationUnit                                           // SAHPI_ENT_FILTRATION_UNIT
	EntAMC                                                      // SAHPI_ENT_AMC
)

// Further SAF HPI group entity types (SaHpi.h, B.03).
const (
	EntBMC             EntityType = EntSAFHPIGroup + 0x30 + iota // SAHPI_ENT_BMC
	EntIPMC                                                      // SAHPI_ENT_IPMC
	EntMMC                                                       // SAHPI_ENT_MMC
	EntSHMC                                                      // SAHPI_ENT_SHMC
	EntCPLD                                                      // SAHPI_ENT_CPLD
	EntEPLD                                                      // SAHPI_ENT_EPLD
	EntFPGA                                                      // SAHPI_ENT_FPGA
	EntDASD                                                      // SAHPI_ENT_DASD
	EntNIC                                                       // SAHPI_ENT_NIC
	EntDSP                                                       // SAHPI_ENT_DSP
	EntUcode                                                     // SAHPI_ENT_UCODE
	EntNPU                                                       // SAHPI_ENT_NPU
	EntOEM                                                       // SAHPI_ENT_OEM
	EntInterface                                                 // SAHPI_ENT_INTERFACE
	EntMicroTCAChassis                                           // SAHPI_ENT_MICROTCA_CHASSIS
	EntCarrier                                                   // SAHPI_ENT_CARRIER
	EntCarrierManager                                            // SAHPI_ENT_CARRIER_MANAGER
	EntConfigData                                                // SAHPI_ENT_CONFIG_DATA
	EntIndicator                                                 // SAHPI_ENT_INDICATOR
)

// AdvancedTCA entity types (SaHpiAtca.h). The slot types reuse the
// chassis-specific range of the IPMI group, so OpenHPI prints them as
// CHASSIS_SPECIFIC01..09; the others are aliases of SAF HPI group types.
const (
	ATCAEntPowerEntryModuleSlot EntityType = 0x91 // ATCAHPI_ENT_POWER_ENTRY_MODULE_SLOT
	ATCAEntShelfFRUDeviceSlot   EntityType = 0x92 // ATCAHPI_ENT_SHELF_FRU_DEVICE_SLOT
	ATCAEntShelfManagerSlot     EntityType = 0x93 // ATCAHPI_ENT_SHELF_MANAGER_SLOT
	ATCAEntFanTraySlot          EntityType = 0x94 // ATCAHPI_ENT_FAN_TRAY_SLOT
	ATCAEntFanFilterTraySlot    EntityType = 0x95 // ATCAHPI_ENT_FAN_FILTER_TRAY_SLOT
	ATCAEntAlarmSlot            EntityType = 0x96 // ATCAHPI_ENT_ALARM_SLOT
	ATCAEntAMCSlot              EntityType = 0x97 // ATCAHPI_ENT_AMC_SLOT
	ATCAEntPMCSlot              EntityType = 0x98 // ATCAHPI_ENT_PMC_SLOT
	ATCAEntRTMSlot              EntityType = 0x99 // ATCAHPI_ENT_RTM_SLOT

	ATCAEntPICMGFrontBlade = EntPICMGFrontBlade       // ATCAHPI_ENT_PICMG_FRONT_BLADE
	ATCAEntShelfFRUDevice  = EntSystemInventoryDevice // ATCAHPI_ENT_SHELF_FRU_DEVICE
	ATCAEntFiltrationUnit  = EntFiltrationUnit        // ATCAHPI_ENT_FILTRATION_UNIT
	ATCAEntAMC             = EntAMC                   // ATCAHPI_ENT_AMC
)

// entityTypeNames holds the OpenHPI text forms (oh_lookup_entitytype: the
// SAHPI_ENT_ name without its prefix).
var entityTypeNames = map[EntityType]string{
	EntUnspecified: "UNSPECIFIED", EntOther: "OTHER", EntUnknown: "UNKNOWN",
	EntProcessor: "PROCESSOR", EntDiskBay: "DISK_BAY", EntPeripheralBay: "PERIPHERAL_BAY",
	EntSysMgmntModule: "SYS_MGMNT_MODULE", EntSystemBoard: "SYSTEM_BOARD",
	EntMemoryModule: "MEMORY_MODULE", EntProcessorModule: "PROCESSOR_MODULE",
	EntPowerSupply: "POWER_SUPPLY", EntAddInCard: "ADD_IN_CARD",
	EntFrontPanelBoard: "FRONT_PANEL_BOARD", EntBackPanelBoard: "BACK_PANEL_BOARD",
	EntPowerSystemBoard: "POWER_SYSTEM_BOARD", EntDriveBackplane: "DRIVE_BACKPLANE",
	EntSysExpansionBoard: "SYS_EXPANSION_BOARD", EntOtherSystemBoard: "OTHER_SYSTEM_BOARD",
	EntProcessorBoard: "PROCESSOR_BOARD", EntPowerUnit: "POWER_UNIT",
	EntPowerModule: "POWER_MODULE", EntPowerMgmnt: "POWER_MGMNT",
	EntChassisBackPanelBoard: "CHASSIS_BACK_PANEL_BOARD", EntSystemChassis: "SYSTEM_CHASSIS",
	EntSubChassis: "SUB_CHASSIS", EntOtherChassisBoard: "OTHER_CHASSIS_BOARD",
	EntDiskDriveBay: "DISK_DRIVE_BAY", EntPeripheralBay2: "PERIPHERAL_BAY_2",
	EntDeviceBay: "DEVICE_BAY", EntCoolingDevice: "COOLING_DEVICE",
	EntCoolingUnit: "COOLING_UNIT", EntInterconnect: "INTERCONNECT",
	EntMemoryDevice: "MEMORY_DEVICE", EntSysMgmntSoftware: "SYS_MGMNT_SOFTWARE",
	EntBIOS: "BIOS", EntOperatingSystem: "OPERATING_SYSTEM", EntSystemBus: "SYSTEM_BUS",
	EntGroup: "GROUP", EntRemote: "REMOTE", EntExternalEnvironment: "EXTERNAL_ENVIRONMENT",
	EntBattery: "BATTERY", EntProcessingBlade: "PROCESSING_BLADE",
	EntConnectivitySwitch: "CONNECTIVITY_SWITCH", EntProcessorMemoryModule: "PROCESSOR_MEMORY_MODULE",
	EntIOModule: "IO_MODULE", EntProcessorIOModule: "PROCESSOR_IO_MODULE",
	EntMCFirmware: "MC_FIRMWARE", EntIPMIChannel: "IPMI_CHANNEL", EntPCIBus: "PCI_BUS",
	EntPCIExpressBus: "PCI_EXPRESS_BUS", EntSCSIBus: "SCSI_BUS", EntSATABus: "SATA_BUS",
	EntProcFSB: "PROC_FSB", EntClock: "CLOCK", EntSystemFirmware: "SYSTEM_FIRMWARE",
	EntChassisSpecific: "CHASSIS_SPECIFIC",
	0x91:               "CHASSIS_SPECIFIC01", 0x92: "CHASSIS_SPECIFIC02", 0x93: "CHASSIS_SPECIFIC03",
	0x94: "CHASSIS_SPECIFIC04", 0x95: "CHASSIS_SPECIFIC05", 0x96: "CHASSIS_SPECIFIC06",
	0x97: "CHASSIS_SPECIFIC07", 0x98: "CHASSIS_SPECIFIC08", 0x99: "CHASSIS_SPECIFIC09",
	0x9A: "CHASSIS_SPECIFIC10", 0x9B: "CHASSIS_SPECIFIC11", 0x9C: "CHASSIS_SPECIFIC12",
	0x9D:                "CHASSIS_SPECIFIC13",
	EntBoardSetSpecific: "BOARD_SET_SPECIFIC", EntOEMSysIntSpecific: "OEM_SYSINT_SPECIFIC",
	EntRoot: "ROOT",
	EntRack: "RACK", EntSubrack: "SUBRACK", EntCompactPCIChassis: "COMPACTPCI_CHASSIS",
	EntAdvancedTCAChassis: "ADVANCEDTCA_CHASSIS", EntRackMountedServer: "RACK_MOUNTED_SERVER",
	EntSystemBlade: "SYSTEM_BLADE", EntSwitch: "SWITCH", EntSwitchBlade: "SWITCH_BLADE",
	EntSBCBlade: "SBC_BLADE", EntIOBlade: "IO_BLADE", EntDiskBlade: "DISK_BLADE",
	EntDiskDrive: "DISK_DRIVE", EntFan: "FAN", EntPowerDistributionUnit: "POWER_DISTRIBUTION_UNIT",
	EntSpecProcBlade: "SPEC_PROC_BLADE", EntIOSubboard: "IO_SUBBOARD", EntSBCSubboard: "SBC_SUBBOARD",
	EntAlarmManager: "ALARM_MANAGER", EntShelfManager: "SHELF_MANAGER", EntDisplayPanel: "DISPLAY_PANEL",
	EntSubboardCarrierBlade: "SUBBOARD_CARRIER_BLADE", EntPhysicalSlot: "PHYSICAL_SLOT",
	EntPICMGFrontBlade: "PICMG_FRONT_BLADE", EntSystemInventoryDevice: "SYSTEM_INVENTORY_DEVICE",
	EntFiltrationUnit: "FILTRATION_UNIT", EntAMC: "AMC",
	EntBMC: "BMC", EntIPMC: "IPMC", EntMMC: "MMC", EntSHMC: "SHMC", EntCPLD: "CPLD", EntEPLD: "EPLD",
	EntFPGA: "FPGA", EntDASD: "DASD", EntNIC: "NIC", EntDSP: "DSP", EntUcode: "UCODE", EntNPU: "NPU",
	EntOEM: "OEM", EntInterface: "INTERFACE", EntMicroTCAChassis: "MICROTCA_CHASSIS",
	EntCarrier: "CARRIER", EntCarrierManager: "CARRIER_MANAGER", EntConfigData: "CONFIG_DATA",
	EntIndicator: "INDICATOR",
}

// entityTypeByName is the reverse of entityTypeNames (oh_encode_entitytype).
var entityTypeByName = func() map[string]EntityType {
	m := make(map[string]EntityType, len(entityTypeNames))
	for t, n := range entityTypeNames {
		m[n] = t
	}
	return m
}()

// String returns the OpenHPI text form of t ("PHYSICAL_SLOT"), or its decimal
// value when HPI names no such type (OpenHPI's numeric entity types).
func (t EntityType) String() string {
	if n, ok := entityTypeNames[t]; ok {
		return n
	}
	return strconv.FormatUint(uint64(t), 10)
}

// Named reports whether t has an HPI name.
func (t EntityType) Named() bool {
	_, ok := entityTypeNames[t]
	return ok
}

// ParseEntityType reads an entity type in OpenHPI's text form: a name
// without the SAHPI_ENT_ prefix, or a positive number (decimal, 0x hex or
// 0 octal, as strtol with base 0 reads it).
func ParseEntityType(s string) (EntityType, error) {
	s = strings.TrimSpace(s)
	if t, ok := entityTypeByName[s]; ok {
		return t, nil
	}
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("hpi: entity type %q is neither an HPI name nor a positive number", s)
	}
	return EntityType(n), nil
}

// Entity is SaHpiEntityT: one element of an entity path.
type Entity struct {
	Type     EntityType
	Location EntityLocation
}

// String prints the element as "{TYPE,location}".
func (e Entity) String() string {
	return "{" + e.Type.String() + "," + strconv.FormatUint(uint64(e.Location), 10) + "}"
}

// EntityPath is SaHpiEntityPathT without its root terminator: element 0 is
// the most specific entity (the resource itself), the last element is the
// outermost container. The implicit {ROOT,0} is never stored. The zero value
// (empty path) denotes the root itself.
type EntityPath []Entity

// ErrEntityPath is wrapped by every entity path parse or validation error.
var ErrEntityPath = errors.New("invalid entity path")

// String prints p in OpenHPI's canonical text form (oh_decode_entitypath):
// outermost container first, most specific entity last, the root omitted,
// e.g. "{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,5}{PICMG_FRONT_BLADE,0}". A
// {ROOT} element inside p ends the printed path, as in OpenHPI. The empty
// path prints as "".
func (p EntityPath) String() string {
	end := len(p)
	for i, e := range p {
		if e.Type == EntRoot {
			end = i
			break
		}
	}
	var b strings.Builder
	for i := end - 1; i >= 0; i-- {
		b.WriteString(p[i].String())
	}
	return b.String()
}

// ParseEntityPath reads the canonical text form printed by String (and by
// OpenHPI's oh_decode_entitypath), the inverse of String. Whitespace around
// elements, names and numbers is ignored. Type names are OpenHPI's; numeric
// types are accepted as OpenHPI does. A leading {ROOT,0} (the implicit root)
// is accepted and dropped. Unlike OpenHPI, which silently truncates, a ROOT
// element anywhere else, an empty element, text outside braces, a missing
// closing brace or more than MaxEntityPath elements is an error.
func ParseEntityPath(s string) (EntityPath, error) {
	rest := strings.TrimSpace(s)
	if rest == "" {
		return nil, fmt.Errorf("hpi: parse entity path: empty string: %w", ErrEntityPath)
	}
	var outerFirst []Entity
	for rest != "" {
		if rest[0] != '{' {
			return nil, fmt.Errorf("hpi: parse entity path %q: expected '{' at %q: %w", s, clip(rest), ErrEntityPath)
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("hpi: parse entity path %q: missing '}': %w", s, ErrEntityPath)
		}
		body := rest[1:end]
		rest = strings.TrimSpace(rest[end+1:])
		typStr, locStr, ok := strings.Cut(body, ",")
		if !ok {
			return nil, fmt.Errorf("hpi: parse entity path %q: element {%s} has no ',': %w", s, clip(body), ErrEntityPath)
		}
		if strings.ContainsAny(typStr, "{") {
			return nil, fmt.Errorf("hpi: parse entity path %q: nested '{': %w", s, ErrEntityPath)
		}
		t, err := ParseEntityType(typStr)
		if err != nil {
			return nil, fmt.Errorf("hpi: parse entity path %q: %w: %w", s, err, ErrEntityPath)
		}
		locStr = strings.TrimSpace(locStr)
		if locStr == "" || locStr[0] < '0' || locStr[0] > '9' {
			return nil, fmt.Errorf("hpi: parse entity path %q: location %q is not a decimal number: %w", s, clip(locStr), ErrEntityPath)
		}
		loc, err := strconv.ParseUint(locStr, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("hpi: parse entity path %q: location %q is not a 32-bit decimal number: %w", s, clip(locStr), ErrEntityPath)
		}
		if t == EntRoot {
			if len(outerFirst) != 0 || loc != 0 {
				return nil, fmt.Errorf("hpi: parse entity path %q: {ROOT,0} may only lead the path: %w", s, ErrEntityPath)
			}
			continue
		}
		outerFirst = append(outerFirst, Entity{Type: t, Location: EntityLocation(loc)})
		if len(outerFirst) > MaxEntityPath {
			return nil, fmt.Errorf("hpi: parse entity path %q: more than %d elements: %w", s, MaxEntityPath, ErrEntityPath)
		}
	}
	if len(outerFirst) == 0 {
		return nil, fmt.Errorf("hpi: parse entity path %q: no element below the root: %w", s, ErrEntityPath)
	}
	p := make(EntityPath, len(outerFirst))
	for i, e := range outerFirst {
		p[len(outerFirst)-1-i] = e
	}
	return p, nil
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// Validate checks that p has 1..MaxEntityPath elements and no ROOT element.
func (p EntityPath) Validate() error {
	if len(p) == 0 {
		return fmt.Errorf("hpi: entity path is empty: %w", ErrEntityPath)
	}
	if len(p) > MaxEntityPath {
		return fmt.Errorf("hpi: entity path %s has %d elements, more than %d: %w", p, len(p), MaxEntityPath, ErrEntityPath)
	}
	for i, e := range p {
		if e.Type == EntRoot {
			return fmt.Errorf("hpi: entity path has a ROOT element at %d: %w", i, ErrEntityPath)
		}
	}
	return nil
}

// Equal reports whether p and q name the same entity (oh_cmp_ep).
func (p EntityPath) Equal(q EntityPath) bool {
	if len(p) != len(q) {
		return false
	}
	for i := range p {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// Clone returns a copy of p that shares no memory with it.
func (p EntityPath) Clone() EntityPath {
	if p == nil {
		return nil
	}
	return append(EntityPath(nil), p...)
}

// Concat returns child's elements followed by parent's: the path of child
// placed inside parent (oh_concat_ep).
func (p EntityPath) Concat(parent EntityPath) EntityPath {
	out := make(EntityPath, 0, len(p)+len(parent))
	out = append(out, p...)
	return append(out, parent...)
}

// Location returns the location of the first (most specific) element of type
// t, and whether there is one.
func (p EntityPath) Location(t EntityType) (EntityLocation, bool) {
	for _, e := range p {
		if e.Type == t {
			return e.Location, true
		}
	}
	return 0, false
}

// key is the map key of a path; the canonical text form is unique per path
// because String prints every type unambiguously.
func (p EntityPath) key() string { return p.String() }

// IPMI entity IDs of PICMG 3.0 ("PICMG entity IDs") that HPI maps
// to types outside the IPMI group.
const (
	IPMIEntityPICMGFrontBoard          uint8 = 0xA0
	IPMIEntityPICMGRearTransition      uint8 = 0xC0
	IPMIEntityPICMGAdvancedMC          uint8 = 0xC1
	IPMIEntityPICMGMicroTCACarrierHub  uint8 = 0xC2
	IPMIEntityPICMGShelfManager        uint8 = 0xF0
	IPMIEntityPICMGFiltrationUnit      uint8 = 0xF1
	IPMIEntityPICMGShelfFRUInformation uint8 = 0xF2
	IPMIEntityPICMGAlarmPanel          uint8 = 0xF3
)

// EntityTypeFromIPMI maps an IPMI entity ID (IPMI 2.0 table 43-13 and the
// PICMG 3.0 additions) to the HPI entity type, as the OpenHPI IPMI direct
// plugin does: the PICMG IDs become their HPI/ATCA types (0xA0 front board
// → PICMG_FRONT_BLADE, 0xF0 shelf manager → SHELF_MANAGER, ...), every other
// ID is its own value in the IPMI group (0x1E cooling unit, the ATCA fan
// tray → COOLING_UNIT; 0x0A power supply, the ATCA PEM → POWER_SUPPLY;
// 0x17 → SYSTEM_CHASSIS). It is a pure table lookup.
func EntityTypeFromIPMI(id uint8) EntityType {
	switch id {
	case IPMIEntityPICMGFrontBoard:
		return EntPICMGFrontBlade
	case IPMIEntityPICMGRearTransition:
		return EntBackPanelBoard
	case IPMIEntityPICMGAdvancedMC:
		return EntAMC
	case IPMIEntityPICMGMicroTCACarrierHub:
		return EntSwitchBlade
	case IPMIEntityPICMGShelfManager:
		return EntShelfManager
	case IPMIEntityPICMGFiltrationUnit:
		return EntFiltrationUnit
	case IPMIEntityPICMGShelfFRUInformation:
		return EntSystemInventoryDevice
	case IPMIEntityPICMGAlarmPanel:
		return EntAlarmManager
	}
	return EntIPMIGroup + EntityType(id)
}

// IPMIEntityLocation maps an IPMI entity instance to an HPI location:
// device-relative instances (0x60..0x7F) lose their 0x60 offset, as in the
// OpenHPI IPMI direct plugin.
func IPMIEntityLocation(instance uint8) EntityLocation {
	instance &= 0x7F
	if instance >= 0x60 {
		instance -= 0x60
	}
	return EntityLocation(instance)
}
