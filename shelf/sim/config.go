package sim

import (
	"fmt"
	"time"

	"hpiagent/shelf/rmcpp"
)

// Privilege is an IPMI privilege level: the client's type, so that the
// shelf and the client can never disagree on the values.
type Privilege = rmcpp.Privilege

// Privilege levels.
const (
	PrivCallback = rmcpp.PrivilegeCallback
	PrivUser     = rmcpp.PrivilegeUser
	PrivOperator = rmcpp.PrivilegeOperator
	PrivAdmin    = rmcpp.PrivilegeAdministrator
)

// BridgeStyle says how the shelf manager returns the response of a request
// bridged with Send Message to an IPMC.
type BridgeStyle uint8

// Bridge reply styles.
const (
	// BridgeSeparate answers Send Message with an empty response (completion
	// code only) and then passes the IPMC's IPMB response to the console as
	// a separate IPMI message, as ipmi_sim 2.0.33 and many BMCs do with
	// "track request": requester address = the shelf manager (which
	// forwarded the request as its own), sequence number and command those
	// of the bridged request, responder = the IPMC.
	BridgeSeparate BridgeStyle = iota
	// BridgeEmbedded puts the IPMC's whole IPMB response frame (with its
	// checksums) after the completion code of the Send Message response.
	BridgeEmbedded
)

// SiteType is a PICMG 3.0 site type (PICMG 3.0 table 3-25).
type SiteType uint8

// Site types used by the simulated shelf.
const (
	SiteATCABoard  SiteType = 0x00
	SitePEM        SiteType = 0x01
	SiteShelfFRU   SiteType = 0x02
	SiteShelfMgr   SiteType = 0x03
	SiteFanTray    SiteType = 0x04
	SiteFanFilter  SiteType = 0x05
	SiteAlarm      SiteType = 0x06
	SiteAMC        SiteType = 0x07
	SitePMC        SiteType = 0x08
	SiteRearModule SiteType = 0x09
)

// User is an account of the shelf manager's LAN channel.
type User struct {
	// Name is the user name sent in RAKP 1 (at most 16 bytes).
	Name string
	// Password is the user's key K_UID (at most 20 bytes). It is never logged.
	Password string
	// MaxPrivilege is the highest privilege a session of this user may
	// reach (the channel/user privilege limit).
	MaxPrivilege Privilege
}

// SensorConfig describes one threshold-based analog sensor. Its reading is
// converted with the IPMI linear formula y = (M*x + B*10^BExp) * 10^RExp.
type SensorConfig struct {
	// Number is the sensor number on its controller.
	Number uint8
	// Name is the SDR ID string (at most 16 bytes).
	Name string
	// Type is the IPMI sensor type (0x01 temperature, 0x02 voltage, 0x04 fan, ...).
	Type uint8
	// Unit is the IPMI base unit code (1 = degrees C, 4 = volts, 18 = RPM, ...).
	Unit uint8
	// M, B (10-bit signed), BExp and RExp (4-bit signed) are the conversion factors.
	M, B       int16
	BExp, RExp int8
	// Raw is the initial raw reading.
	Raw uint8
	// Nominal is the nominal raw reading written to the SDR.
	Nominal uint8
	// Thresholds are the raw thresholds in Get Sensor Thresholds order:
	// lower non-critical, lower critical, lower non-recoverable, upper
	// non-critical, upper critical, upper non-recoverable.
	Thresholds [6]uint8
	// ThresholdMask says which of the six thresholds exist (bit 0 = LNC ...
	// bit 5 = UNR, as in Get Sensor Thresholds). All present thresholds are
	// readable and settable.
	ThresholdMask uint8
	// HystPos and HystNeg are the raw positive- and negative-going hysteresis.
	HystPos, HystNeg uint8
}

// MCConfig describes one IPMC (blade, fan tray, ...) reachable by IPMB bridging.
type MCConfig struct {
	// Addr is the IPMB-0 address (8-bit form, even), e.g. 0x9a.
	Addr uint8
	// Name is the device ID string of the MC device locator and FRU.
	Name string
	// SiteType and SiteNumber are reported by Get Address Info.
	SiteType   SiteType
	SiteNumber uint8
	// EntityID and EntityInstance identify the FRU's entity in the SDRs
	// (0xA0 = PICMG front board, 0x1E = fan tray / cooling unit; instance
	// 0x60+n for device-relative instances).
	EntityID, EntityInstance uint8
	// HotSwapSensor is the number of the FRU hot-swap sensor (type 0xF0).
	HotSwapSensor uint8
	// Sensors are the MC's threshold-based sensors.
	Sensors []SensorConfig
	// Present says whether the board is in the shelf at start (M0 otherwise).
	Present bool
	// Activated says whether a present board starts in M4 (true) or in M1
	// with its handle open (false).
	Activated bool
	// PowerMultiplier is the unit of the power draw levels in 0.1 W.
	PowerMultiplier uint8
	// PowerLevels are the steady-state power draw levels 1..n (at most 20),
	// in PowerMultiplier units. Level 0 is always "off".
	PowerLevels []uint8
	// EarlyPowerLevels are the early power draw levels (same count).
	EarlyPowerLevels []uint8
	// PowerDelay is the delay to stable power in 0.1 s.
	PowerDelay uint8
	// DesiredLevel is the power level the FRU asks for (1..len(PowerLevels)).
	DesiredLevel uint8
	// ControlCapabilities is the Get FRU Control Capabilities mask (bit 1
	// warm reset, bit 2 graceful reboot, bit 3 diagnostic interrupt; cold
	// reset is always supported).
	ControlCapabilities uint8
	// ChassisCommands makes the IPMC answer Chassis Get Status and Chassis
	// Control for its payload. Real IPMCs normally do not (0xC1).
	ChassisCommands bool
	// Manufacturer, PartNumber and Serial go into the FRU board and product areas.
	Manufacturer, PartNumber, Serial string
}

// Config describes a simulated shelf. The zero value of an optional field
// takes the default given in its comment.
type Config struct {
	// Addr is the shelf manager's IPMB-0 address. Default 0x20.
	Addr uint8
	// Name is the shelf manager's device ID string. Default "Sim ShMC".
	Name string
	// ManufacturerID is the IANA number in Get Device ID (20 bits). Default 0x00315A (PICMG).
	ManufacturerID uint32
	// ProductID is the product ID in Get Device ID. Default 0x5348.
	ProductID uint16
	// GUID is the system GUID used in RAKP. Default: a fixed non-zero GUID.
	GUID [16]byte
	// HotSwapSensor is the number of the shelf manager's own hot-swap sensor.
	HotSwapSensor uint8
	// Sensors are the shelf manager's own threshold sensors.
	Sensors []SensorConfig
	// IPMCs are the controllers behind the shelf manager, reached by bridging.
	IPMCs []MCConfig
	// Users of the LAN channel. At least one is needed to open sessions.
	Users []User
	// CipherSuites offered, in order of preference. Only 3 and 17 are
	// implemented; the default is {17, 3}.
	CipherSuites []uint8
	// Bridge is the reply style of Send Message. Default BridgeSeparate.
	Bridge BridgeStyle
	// MaxSessions is the number of concurrent RMCP+ sessions. Default 4.
	MaxSessions int
	// SessionTimeout closes a session idle this long. Default 60 s.
	SessionTimeout time.Duration
	// SELCapacity is the number of SEL entries; new events are dropped when
	// it is full. Default 512.
	SELCapacity int
	// StepDelay is the time each automatic hot-swap step takes (M2→M3 by the
	// shelf manager's activation, M3→M4 power negotiation, M5→M6 by its
	// deactivation, M6→M1 payload shutdown). Default 500 ms.
	StepDelay time.Duration
	// ManualActivation stops the shelf manager from activating FRUs in M2
	// and deactivating FRUs in M5 by itself; they then wait for Set FRU
	// Activation. Default false (automatic, as most shelf managers are).
	ManualActivation bool
	// FRUReadMax is the largest count the shelf manager accepts in Read FRU
	// Data and Get SDR over LAN; a larger count gets 0xCA. IPMCs answer over
	// IPMB and never accept more than fits a 32-byte IPMB message. Default 64.
	FRUReadMax int
	// Start is the initial time of the shelf clock (SEL timestamps). Default:
	// 2026-01-01 00:00:00 UTC.
	Start time.Time
}

func (c Config) withDefaults() Config {
	if c.Addr == 0 {
		c.Addr = 0x20
	}
	if c.Name == "" {
		c.Name = "Sim ShMC"
	}
	if c.ManufacturerID == 0 {
		c.ManufacturerID = 0x00315A
	}
	if c.ProductID == 0 {
		c.ProductID = 0x5348
	}
	if c.GUID == ([16]byte{}) {
		c.GUID = [16]byte{0x5a, 0x31, 0x4e, 0x9d, 0x02, 0x77, 0x4c, 0x61, 0x8e, 0x1f, 0x3b, 0xa2, 0x6c, 0x0d, 0x95, 0x44}
	}
	if len(c.CipherSuites) == 0 {
		c.CipherSuites = []uint8{17, 3}
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 4
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 60 * time.Second
	}
	if c.SELCapacity == 0 {
		c.SELCapacity = 512
	}
	if c.StepDelay == 0 {
		c.StepDelay = 500 * time.Millisecond
	}
	if c.FRUReadMax == 0 {
		c.FRUReadMax = 64
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	for i := range c.IPMCs {
		m := &c.IPMCs[i]
		if m.PowerMultiplier == 0 {
			m.PowerMultiplier = 10
		}
		if len(m.PowerLevels) == 0 {
			m.PowerLevels = []uint8{10}
		}
		if len(m.EarlyPowerLevels) == 0 {
			m.EarlyPowerLevels = m.PowerLevels
		}
		if m.DesiredLevel == 0 || int(m.DesiredLevel) > len(m.PowerLevels) {
			m.DesiredLevel = uint8(len(m.PowerLevels))
		}
	}
	return c
}

func (c Config) validate() error {
	if c.Addr&1 != 0 {
		return fmt.Errorf("shelf manager address 0x%02x is odd", c.Addr)
	}
	seen := map[uint8]bool{c.Addr: true}
	for _, m := range c.IPMCs {
		if m.Addr == 0 || m.Addr&1 != 0 {
			return fmt.Errorf("IPMC %q: invalid IPMB address 0x%02x", m.Name, m.Addr)
		}
		if seen[m.Addr] {
			return fmt.Errorf("IPMC %q: address 0x%02x used twice", m.Name, m.Addr)
		}
		seen[m.Addr] = true
		if len(m.PowerLevels) > 20 || len(m.EarlyPowerLevels) != len(m.PowerLevels) {
			return fmt.Errorf("IPMC 0x%02x: need 1..20 power levels and as many early levels", m.Addr)
		}
		if err := checkSensors(m.Addr, m.HotSwapSensor, m.Sensors); err != nil {
			return err
		}
	}
	if err := checkSensors(c.Addr, c.HotSwapSensor, c.Sensors); err != nil {
		return err
	}
	for _, s := range c.CipherSuites {
		if s != 3 && s != 17 {
			return fmt.Errorf("cipher suite %d is not implemented (only 3 and 17)", s)
		}
	}
	for _, u := range c.Users {
		if u.Name == "" || len(u.Name) > 16 || len(u.Password) > 20 {
			return fmt.Errorf("user %q: name must be 1..16 bytes and password at most 20", u.Name)
		}
		if u.MaxPrivilege < PrivCallback || u.MaxPrivilege > PrivAdmin {
			return fmt.Errorf("user %q: invalid privilege limit %d", u.Name, u.MaxPrivilege)
		}
	}
	return nil
}

func checkSensors(addr, hs uint8, ss []SensorConfig) error {
	seen := map[uint8]bool{hs: true}
	for _, s := range ss {
		if seen[s.Number] {
			return fmt.Errorf("MC 0x%02x: sensor number 0x%02x used twice", addr, s.Number)
		}
		seen[s.Number] = true
		if len(s.Name) > 16 {
			return fmt.Errorf("MC 0x%02x: sensor name %q longer than 16 bytes", addr, s.Name)
		}
		if s.M < -512 || s.M > 511 || s.B < -512 || s.B > 511 || s.BExp < -8 || s.BExp > 7 || s.RExp < -8 || s.RExp > 7 {
			return fmt.Errorf("MC 0x%02x sensor %q: conversion factors out of range", addr, s.Name)
		}
	}
	return nil
}

// DefaultConfig is a small shelf for the demo and tests: a shelf manager at
// 0x20 with two sensors, three blades at 0x9a, 0x9c and 0x9e and a fan tray
// at 0x62. Sensor numbers, names, hot-swap sensor numbers and conversion
// factors deliberately differ between controllers and from the lab shelf.
// Users: "admin" (administrator), "operator" (operator), "monitor" (user),
// with the demo passwords "sim-admin", "sim-operator" and "sim-monitor".
func DefaultConfig() Config {
	temp := func(n uint8, name string, m int16, rexp int8, raw uint8, th [6]uint8) SensorConfig {
		return SensorConfig{Number: n, Name: name, Type: 0x01, Unit: 1, M: m, RExp: rexp, Raw: raw, Nominal: raw,
			Thresholds: th, ThresholdMask: 0x3f, HystPos: 2, HystNeg: 2}
	}
	blade := func(addr, site, hs uint8, serial string) MCConfig {
		return MCConfig{
			Addr: addr, Name: fmt.Sprintf("Sim Blade %d", site), SiteType: SiteATCABoard, SiteNumber: site,
			EntityID: 0xA0, EntityInstance: 0x60, HotSwapSensor: hs,
			Sensors: []SensorConfig{
				temp(hs+1, "CPU Die", 1, 0, 52, [6]uint8{5, 2, 0, 85, 95, 105}),
				// 0.5 degC per count, offset -20 degC: (5x - 200) * 10^-1.
				{Number: hs + 2, Name: "Board Inlet", Type: 0x01, Unit: 1, M: 5, B: -200, RExp: -1, Raw: 100, Nominal: 100,
					Thresholds: [6]uint8{60, 50, 40, 150, 160, 170}, ThresholdMask: 0x3f, HystPos: 1, HystNeg: 1},
				// 12 V rail, 0.063 V per count.
				{Number: hs + 3, Name: "Payload 12V", Type: 0x02, Unit: 4, M: 63, RExp: -3, Raw: 190, Nominal: 190,
					Thresholds: [6]uint8{180, 175, 170, 200, 205, 210}, ThresholdMask: 0x1b, HystPos: 1, HystNeg: 1},
			},
			Present: true, Activated: true,
			PowerMultiplier: 5, PowerLevels: []uint8{40, 60, 80}, EarlyPowerLevels: []uint8{30, 40, 50}, PowerDelay: 3, DesiredLevel: 2,
			ControlCapabilities: 0x06,
			Manufacturer:        "Sim Systems", PartNumber: "SB-7100", Serial: serial,
		}
	}
	return Config{
		Addr: 0x20, Name: "Sim ShMC",
		HotSwapSensor: 0x81,
		Sensors: []SensorConfig{
			temp(0x82, "Air Inlet", 1, 0, 24, [6]uint8{3, 0, 0, 40, 45, 50}),
			{Number: 0x83, Name: "Feed -48V", Type: 0x02, Unit: 4, M: 3, RExp: -1, Raw: 160, Nominal: 160,
				Thresholds: [6]uint8{140, 133, 127, 0, 0, 0}, ThresholdMask: 0x07, HystPos: 2, HystNeg: 2},
		},
		IPMCs: []MCConfig{
			blade(0x9a, 13, 0x10, "SIM0013"),
			blade(0x9c, 14, 0x04, "SIM0014"),
			blade(0x9e, 15, 0x22, "SIM0015"),
			{
				Addr: 0x62, Name: "Sim Fan Tray", SiteType: SiteFanTray, SiteNumber: 2,
				EntityID: 0x1E, EntityInstance: 0x61, HotSwapSensor: 0x07,
				Sensors: []SensorConfig{
					{Number: 0x08, Name: "Fan A", Type: 0x04, Unit: 18, M: 30, Raw: 120, Nominal: 120,
						Thresholds: [6]uint8{40, 30, 20, 0, 0, 0}, ThresholdMask: 0x07, HystPos: 2, HystNeg: 2},
					{Number: 0x09, Name: "Fan B", Type: 0x04, Unit: 18, M: 30, Raw: 118, Nominal: 120,
						Thresholds: [6]uint8{40, 30, 20, 0, 0, 0}, ThresholdMask: 0x07, HystPos: 2, HystNeg: 2},
				},
				Present: true, Activated: true,
				PowerMultiplier: 10, PowerLevels: []uint8{3, 6}, EarlyPowerLevels: []uint8{2, 3}, PowerDelay: 1, DesiredLevel: 2,
				Manufacturer: "Sim Systems", PartNumber: "FT-20", Serial: "SIMFT02",
			},
		},
		Users: []User{
			{Name: "admin", Password: "sim-admin", MaxPrivilege: PrivAdmin},
			{Name: "operator", Password: "sim-operator", MaxPrivilege: PrivOperator},
			{Name: "monitor", Password: "sim-monitor", MaxPrivilege: PrivUser},
		},
		CipherSuites: []uint8{17, 3},
		Bridge:       BridgeSeparate,
	}
}
