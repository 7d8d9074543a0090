package hpi

import (
	"strconv"
	"strings"
	"time"
)

// DomainID is SaHpiDomainIdT.
type DomainID uint32

// ResourceID is SaHpiResourceIdT. A Domain assigns it and keeps it stable
// for an entity path for the Domain's lifetime, across removal and
// rediscovery.
type ResourceID uint32

// UnspecifiedResourceID is SAHPI_UNSPECIFIED_RESOURCE_ID: an event not tied
// to a resource.
const UnspecifiedResourceID ResourceID = 0xFFFFFFFF

// Capabilities is SaHpiCapabilitiesT, the ResourceCapabilities bit set.
type Capabilities uint32

// SAHPI_CAPABILITY_* bits.
const (
	CapabilitySensor          Capabilities = 0x00000001 // SAHPI_CAPABILITY_SENSOR
	CapabilityRDR             Capabilities = 0x00000002 // SAHPI_CAPABILITY_RDR
	CapabilityEventLog        Capabilities = 0x00000004 // SAHPI_CAPABILITY_EVENT_LOG
	CapabilityInventoryData   Capabilities = 0x00000008 // SAHPI_CAPABILITY_INVENTORY_DATA
	CapabilityReset           Capabilities = 0x00000010 // SAHPI_CAPABILITY_RESET
	CapabilityPower           Capabilities = 0x00000020 // SAHPI_CAPABILITY_POWER
	CapabilityAnnunciator     Capabilities = 0x00000040 // SAHPI_CAPABILITY_ANNUNCIATOR
	CapabilityLoadID          Capabilities = 0x00000080 // SAHPI_CAPABILITY_LOAD_ID
	CapabilityFRU             Capabilities = 0x00000100 // SAHPI_CAPABILITY_FRU
	CapabilityControl         Capabilities = 0x00000200 // SAHPI_CAPABILITY_CONTROL
	CapabilityWatchdog        Capabilities = 0x00000400 // SAHPI_CAPABILITY_WATCHDOG
	CapabilityManagedHotswap  Capabilities = 0x00000800 // SAHPI_CAPABILITY_MANAGED_HOTSWAP
	CapabilityConfiguration   Capabilities = 0x00001000 // SAHPI_CAPABILITY_CONFIGURATION
	CapabilityAggregateStatus Capabilities = 0x00002000 // SAHPI_CAPABILITY_AGGREGATE_STATUS
	CapabilityDIMI            Capabilities = 0x00004000 // SAHPI_CAPABILITY_DIMI
	CapabilityEvtDeasserts    Capabilities = 0x00008000 // SAHPI_CAPABILITY_EVT_DEASSERTS
	CapabilityFUMI            Capabilities = 0x00010000 // SAHPI_CAPABILITY_FUMI
	CapabilityResource        Capabilities = 0x40000000 // SAHPI_CAPABILITY_RESOURCE
)

var capabilityNames = []struct {
	bit  Capabilities
	name string
}{
	{CapabilityResource, "RESOURCE"}, {CapabilityFUMI, "FUMI"}, {CapabilityEvtDeasserts, "EVT_DEASSERTS"},
	{CapabilityDIMI, "DIMI"}, {CapabilityAggregateStatus, "AGGREGATE_STATUS"},
	{CapabilityConfiguration, "CONFIGURATION"}, {CapabilityManagedHotswap, "MANAGED_HOTSWAP"},
	{CapabilityWatchdog, "WATCHDOG"}, {CapabilityControl, "CONTROL"}, {CapabilityFRU, "FRU"},
	{CapabilityLoadID, "LOAD_ID"}, {CapabilityAnnunciator, "ANNUNCIATOR"}, {CapabilityPower, "POWER"},
	{CapabilityReset, "RESET"}, {CapabilityInventoryData, "INVENTORY_DATA"},
	{CapabilityEventLog, "EVENT_LOG"}, {CapabilityRDR, "RDR"}, {CapabilitySensor, "SENSOR"},
}

// Has reports whether every bit of want is set in c.
func (c Capabilities) Has(want Capabilities) bool { return c&want == want }

// String lists the set bits as OpenHPI names joined by " | ".
func (c Capabilities) String() string {
	var parts []string
	rest := c
	for _, n := range capabilityNames {
		if c&n.bit != 0 {
			parts = append(parts, n.name)
			rest &^= n.bit
		}
	}
	if rest != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(rest), 16))
	}
	return strings.Join(parts, " | ")
}

// HsCapabilities is SaHpiHsCapabilitiesT.
type HsCapabilities uint32

// SAHPI_HS_CAPABILITY_* bits.
const (
	HsCapabilityAutoextractReadOnly HsCapabilities = 0x80000000 // SAHPI_HS_CAPABILITY_AUTOEXTRACT_READ_ONLY
	HsCapabilityIndicatorSupported  HsCapabilities = 0x40000000 // SAHPI_HS_CAPABILITY_INDICATOR_SUPPORTED
	HsCapabilityAutoinsertImmediate HsCapabilities = 0x20000000 // SAHPI_HS_CAPABILITY_AUTOINSERT_IMMEDIATE
)

// Severity is SaHpiSeverityT. Lower values are more severe.
type Severity uint8

// SaHpiSeverityT values.
const (
	Critical      Severity = 0    // SAHPI_CRITICAL
	Major         Severity = 1    // SAHPI_MAJOR
	Minor         Severity = 2    // SAHPI_MINOR
	Informational Severity = 3    // SAHPI_INFORMATIONAL
	OK            Severity = 4    // SAHPI_OK
	Debug         Severity = 0xF0 // SAHPI_DEBUG
	AllSeverities Severity = 0xFF // SAHPI_ALL_SEVERITIES
)

// String returns the OpenHPI text form ("CRITICAL").
func (s Severity) String() string {
	switch s {
	case Critical:
		return "CRITICAL"
	case Major:
		return "MAJOR"
	case Minor:
		return "MINOR"
	case Informational:
		return "INFORMATIONAL"
	case OK:
		return "OK"
	case Debug:
		return "DEBUG"
	case AllSeverities:
		return "ALL_SEVERITIES"
	}
	return "UNKNOWN(" + strconv.Itoa(int(s)) + ")"
}

// ResourceInfo is SaHpiResourceInfoT, from the controller's Get Device ID.
type ResourceInfo struct {
	ResourceRev      uint8
	SpecificVer      uint8
	DeviceSupport    uint8
	ManufacturerID   uint32
	ProductID        uint16
	FirmwareMajorRev uint8
	FirmwareMinorRev uint8
	AuxFirmwareRev   uint8
	GUID             [16]byte
}

// RPTEntry is SaHpiRptEntryT, one resource of the resource presence table.
type RPTEntry struct {
	// ResourceID is assigned by the Domain; callers of UpsertResource leave it
	// zero or set it to the ID the Domain returned earlier for the same path.
	ResourceID          ResourceID
	ResourceInfo        ResourceInfo
	EntityPath          EntityPath
	Capabilities        Capabilities
	HotSwapCapabilities HsCapabilities
	// Severity is the severity of the resource's own events (ResourceSeverity).
	Severity Severity
	// ResourceFailed is kept by the Domain (SetResourceFailed, ATCA M7);
	// UpsertResource ignores the caller's value.
	ResourceFailed bool
	// Tag is the ResourceTag text.
	Tag string
}

func (e RPTEntry) clone() RPTEntry {
	e.EntityPath = e.EntityPath.Clone()
	return e
}

func (e RPTEntry) equal(o RPTEntry) bool {
	return e.ResourceID == o.ResourceID && e.ResourceInfo == o.ResourceInfo &&
		e.EntityPath.Equal(o.EntityPath) && e.Capabilities == o.Capabilities &&
		e.HotSwapCapabilities == o.HotSwapCapabilities && e.Severity == o.Severity &&
		e.ResourceFailed == o.ResourceFailed && e.Tag == o.Tag
}

// DomainInfo is the part of SaHpiDomainInfoT the model keeps.
type DomainInfo struct {
	DomainID DomainID
	// RptUpdateCount and RptUpdateTimestamp change on every change of the RPT
	// or of any resource's RDRs.
	RptUpdateCount     uint32
	RptUpdateTimestamp time.Time
	// DatUpdateCount and DatUpdateTimestamp change on every change of the
	// alarm table (domain alarm table, DAT).
	DatUpdateCount     uint32
	DatUpdateTimestamp time.Time
	ActiveAlarms       int
	CriticalAlarms     int
	MajorAlarms        int
	MinorAlarms        int
}
