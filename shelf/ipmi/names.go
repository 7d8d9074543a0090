package ipmi

import "fmt"

// entityNames follows IPMI 2.0 table 43-13 and PICMG 3.0 table 3-39
// (ipmitool's spelling where it has one).
var entityNames = map[uint8]string{
	0x00: "Unspecified", 0x01: "Other", 0x02: "Unknown", 0x03: "Processor", 0x04: "Disk or Disk Bay",
	0x05: "Peripheral Bay", 0x06: "System Management Module", 0x07: "System Board", 0x08: "Memory Module",
	0x09: "Processor Module", 0x0a: "Power Supply", 0x0b: "Add-in Card", 0x0c: "Front Panel Board",
	0x0d: "Back Panel Board", 0x0e: "Power System Board", 0x0f: "Drive Backplane",
	0x10: "System Internal Expansion Board", 0x11: "Other System Board", 0x12: "Processor Board",
	0x13: "Power Unit", 0x14: "Power Module", 0x15: "Power Management", 0x16: "Chassis Back Panel Board",
	0x17: "System Chassis", 0x18: "Sub-Chassis", 0x19: "Other Chassis Board", 0x1a: "Disk Drive Bay",
	0x1b: "Peripheral Bay", 0x1c: "Device Bay", 0x1d: "Fan Device", 0x1e: "Cooling Unit",
	0x1f: "Cable/Interconnect", 0x20: "Memory Device", 0x21: "System Management Software",
	0x22: "BIOS", 0x23: "Operating System", 0x24: "System Bus", 0x25: "Group", 0x26: "Remote Management Device",
	0x27: "External Environment", 0x28: "Battery", 0x29: "Processing Blade", 0x2a: "Connectivity Switch",
	0x2b: "Processor/Memory Module", 0x2c: "I/O Module", 0x2d: "Processor/IO Module",
	0x2e: "Management Controller Firmware", 0x2f: "IPMI Channel", 0x30: "PCI Bus", 0x31: "PCI Express Bus",
	0x32: "SCSI Bus (parallel)", 0x33: "SATA/SAS Bus", 0x34: "Processor/Front-Side Bus",
	0x35: "Real Time Clock", 0x37: "Air Inlet", 0x40: "Air Inlet", 0x41: "Processor", 0x42: "Baseboard",
	0xa0: "PICMG Front Board", 0xc0: "PICMG Rear Transition Module", 0xc1: "PICMG AdvancedMC Module",
	0xc2: "PICMG MicroTCA Carrier Hub", 0xf0: "PICMG Shelf Management Controller",
	0xf1: "PICMG Filtration Unit", 0xf2: "PICMG Shelf FRU Information", 0xf3: "PICMG Alarm Panel",
}

// EntityName is the name of entity ID id; chassis-specific (0x90-0xAF),
// board-set specific (0xB0-0xCF) and OEM (0xD0-0xFF) codes that PICMG
// does not define are named by their range.
func EntityName(id uint8) string {
	if n, ok := entityNames[id]; ok {
		return n
	}
	switch {
	case id >= 0x90 && id <= 0xaf:
		return fmt.Sprintf("Chassis-specific entity 0x%02x", id)
	case id >= 0xb0 && id <= 0xcf:
		return fmt.Sprintf("Board-set specific entity 0x%02x", id)
	case id >= 0xd0:
		return fmt.Sprintf("OEM entity 0x%02x", id)
	}
	return fmt.Sprintf("entity 0x%02x", id)
}

// sensorTypeNames follows IPMI 2.0 table 42-3 plus the PICMG 3.0 types.
var sensorTypeNames = map[uint8]string{
	0x01: "Temperature", 0x02: "Voltage", 0x03: "Current", 0x04: "Fan", 0x05: "Physical Security",
	0x06: "Platform Security", 0x07: "Processor", 0x08: "Power Supply", 0x09: "Power Unit",
	0x0a: "Cooling Device", 0x0b: "Other", 0x0c: "Memory", 0x0d: "Drive Slot / Bay",
	0x0e: "POST Memory Resize", 0x0f: "System Firmware Progress", 0x10: "Event Logging Disabled",
	0x11: "Watchdog1", 0x12: "System Event", 0x13: "Critical Interrupt", 0x14: "Button / Switch",
	0x15: "Module / Board", 0x16: "Microcontroller / Coprocessor", 0x17: "Add-in Card", 0x18: "Chassis",
	0x19: "Chip Set", 0x1a: "Other FRU", 0x1b: "Cable / Interconnect", 0x1c: "Terminator",
	0x1d: "System Boot Initiated", 0x1e: "Boot Error", 0x1f: "OS Boot", 0x20: "OS Critical Stop",
	0x21: "Slot / Connector", 0x22: "System ACPI Power State", 0x23: "Watchdog2",
	0x24: "Platform Alert", 0x25: "Entity Presence", 0x26: "Monitor ASIC", 0x27: "LAN",
	0x28: "Management Subsystem Health", 0x29: "Battery", 0x2a: "Session Audit",
	0x2b: "Version Change", 0x2c: "FRU State",
	0xf0: "FRU Hot Swap", 0xf1: "IPMB Physical Link", 0xf2: "Module Hot Swap", 0xf3: "Power Channel Notification",
	0xf4: "Telco Alarm Input",
}

// SensorTypeName is the name of sensor type code t.
func SensorTypeName(t uint8) string {
	if n, ok := sensorTypeNames[t]; ok {
		return n
	}
	if t >= 0xc0 {
		return fmt.Sprintf("OEM sensor type 0x%02x", t)
	}
	return fmt.Sprintf("sensor type 0x%02x", t)
}
