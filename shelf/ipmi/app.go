package ipmi

import (
	"context"
	"fmt"
	"time"
)

// App command numbers (IPMI 2.0 appendix G).
const (
	CmdGetDeviceID        uint8 = 0x01
	CmdResetWatchdogTimer uint8 = 0x22
	CmdSetWatchdogTimer   uint8 = 0x24
	CmdGetWatchdogTimer   uint8 = 0x25
)

// CCWatchdogUninitialized is the completion code of Reset Watchdog Timer
// when the timer was never set (IPMI 2.0 §27.5).
const CCWatchdogUninitialized CompletionCode = 0x80

// ManufacturerPICMG is the IANA enterprise number of PICMG (0x315A), the
// manufacturer ID of PICMG-defined records and of many ATCA controllers.
const ManufacturerPICMG = 12634

// DeviceID is the answer to Get Device ID (IPMI 2.0 §20.1).
type DeviceID struct {
	DeviceID       uint8
	DeviceRevision uint8 // 0..15
	ProvidesSDRs   bool  // device provides Device SDRs
	Available      bool  // false while a firmware/SDR update or self-initialisation is in progress
	FirmwareMajor  uint8 // 0..127
	FirmwareMinor  uint8 // BCD, as sent: 0x10 reads "1.10"
	IPMIVersion    uint8 // BCD, low nibble major, high nibble minor: 0x02 = 2.0, 0x51 = 1.5
	DeviceSupport  uint8 // additional device support bits
	ManufacturerID uint32
	ProductID      uint16
	AuxFirmware    []byte // 0 or 4 bytes
}

// Additional device support bits of DeviceID.DeviceSupport.
const (
	DevSupportSensor    uint8 = 1 << 0
	DevSupportSDRRepo   uint8 = 1 << 1
	DevSupportSEL       uint8 = 1 << 2
	DevSupportFRU       uint8 = 1 << 3
	DevSupportEventRecv uint8 = 1 << 4
	DevSupportEventGen  uint8 = 1 << 5
	DevSupportBridge    uint8 = 1 << 6
	DevSupportChassis   uint8 = 1 << 7
)

// FirmwareString renders the firmware revision the way ipmitool does ("1.10").
func (d DeviceID) FirmwareString() string {
	return fmt.Sprintf("%d.%02x", d.FirmwareMajor, d.FirmwareMinor)
}

// IPMIVersionString renders the IPMI version ("2.0").
func (d DeviceID) IPMIVersionString() string {
	return fmt.Sprintf("%d.%d", d.IPMIVersion&0x0f, d.IPMIVersion>>4)
}

// ParseDeviceID decodes the data of a Get Device ID response (after the
// completion code).
func ParseDeviceID(b []byte) (DeviceID, error) {
	if len(b) < 11 {
		return DeviceID{}, short("get device id", len(b), 11)
	}
	d := DeviceID{
		DeviceID:       b[0],
		DeviceRevision: b[1] & 0x0f,
		ProvidesSDRs:   bit(b[1], 7),
		Available:      !bit(b[2], 7),
		FirmwareMajor:  b[2] & 0x7f,
		FirmwareMinor:  b[3],
		IPMIVersion:    b[4],
		DeviceSupport:  b[5],
		ManufacturerID: uint32(b[6]) | uint32(b[7])<<8 | uint32(b[8]&0x0f)<<16,
		ProductID:      le16(b[9:11]),
	}
	if len(b) >= 15 {
		d.AuxFirmware = append([]byte(nil), b[11:15]...)
	}
	return d, nil
}

// Marshal encodes d as Get Device ID response data (without completion code).
func (d DeviceID) Marshal() []byte {
	b := []byte{
		d.DeviceID,
		d.DeviceRevision&0x0f | setBit(d.ProvidesSDRs, 7),
		d.FirmwareMajor&0x7f | setBit(!d.Available, 7),
		d.FirmwareMinor,
		d.IPMIVersion,
		d.DeviceSupport,
		byte(d.ManufacturerID), byte(d.ManufacturerID >> 8), byte(d.ManufacturerID>>16) & 0x0f,
		byte(d.ProductID), byte(d.ProductID >> 8),
	}
	if len(d.AuxFirmware) == 4 {
		b = append(b, d.AuxFirmware...)
	}
	return b
}

// GetDeviceID asks the controller at to for its identity.
func GetDeviceID(ctx context.Context, c Conn, to Addr) (DeviceID, error) {
	const what = "get device id"
	b, err := get(ctx, c, to, what, NetFnApp, CmdGetDeviceID)
	if err != nil {
		return DeviceID{}, err
	}
	d, err := ParseDeviceID(b)
	if err != nil {
		return DeviceID{}, decodeErr(what, to, err)
	}
	return d, nil
}

// WatchdogUse is the timer use field of the watchdog (IPMI 2.0 table 27-7).
type WatchdogUse uint8

// Watchdog timer uses.
const (
	WatchdogUseBIOSFRB2 WatchdogUse = 1
	WatchdogUseBIOSPOST WatchdogUse = 2
	WatchdogUseOSLoad   WatchdogUse = 3
	WatchdogUseSMSOS    WatchdogUse = 4
	WatchdogUseOEM      WatchdogUse = 5
)

// WatchdogAction is the timeout action of the watchdog.
type WatchdogAction uint8

// Watchdog timeout actions.
const (
	WatchdogNoAction   WatchdogAction = 0
	WatchdogHardReset  WatchdogAction = 1
	WatchdogPowerDown  WatchdogAction = 2
	WatchdogPowerCycle WatchdogAction = 3
)

// Watchdog is the state of the IPMI watchdog timer (Get Watchdog Timer,
// IPMI 2.0 §27.7) and the settings of Set Watchdog Timer (§27.6).
type Watchdog struct {
	Use         WatchdogUse
	DontLog     bool
	Running     bool // Get: timer is running. Set: "don't stop timer" if already running
	Action      WatchdogAction
	PreTimeout  uint8 // pre-timeout interrupt type (bits 6:4 of the actions byte)
	PreInterval uint8 // pre-timeout interval in seconds
	// ExpirationFlags: Get: timer use expiration flags (bit n = use n expired).
	// Set: flags to clear.
	ExpirationFlags uint8
	Initial         time.Duration // initial countdown (100 ms resolution)
	Present         time.Duration // present countdown (Get only)
	// PresentKnown is false when the controller left out the present
	// countdown (ipmi_sim 2.0.33 answers with 6 bytes).
	PresentKnown bool
}

// ParseWatchdog decodes Get Watchdog Timer response data. A response
// without the present countdown (6 bytes) is accepted with PresentKnown
// false.
func ParseWatchdog(b []byte) (Watchdog, error) {
	if len(b) < 6 {
		return Watchdog{}, short("get watchdog timer", len(b), 6)
	}
	w := Watchdog{
		Use:             WatchdogUse(b[0] & 0x07),
		DontLog:         bit(b[0], 7),
		Running:         bit(b[0], 6),
		Action:          WatchdogAction(b[1] & 0x07),
		PreTimeout:      (b[1] >> 4) & 0x07,
		PreInterval:     b[2],
		ExpirationFlags: b[3],
		Initial:         time.Duration(le16(b[4:6])) * 100 * time.Millisecond,
	}
	if len(b) >= 8 {
		w.Present, w.PresentKnown = time.Duration(le16(b[6:8]))*100*time.Millisecond, true
	}
	return w, nil
}

// Marshal encodes w as Get Watchdog Timer response data.
func (w Watchdog) Marshal() []byte {
	b := w.setBytes()
	if !w.PresentKnown {
		return b
	}
	return append(b, put16(uint16(w.Present/(100*time.Millisecond)))...)
}

func (w Watchdog) setBytes() []byte {
	b := []byte{
		byte(w.Use)&0x07 | setBit(w.Running, 6) | setBit(w.DontLog, 7),
		byte(w.Action)&0x07 | (w.PreTimeout&0x07)<<4,
		w.PreInterval,
		w.ExpirationFlags,
	}
	return append(b, put16(uint16(w.Initial/(100*time.Millisecond)))...)
}

// GetWatchdog reads the watchdog timer of the controller at to.
func GetWatchdog(ctx context.Context, c Conn, to Addr) (Watchdog, error) {
	const what = "get watchdog timer"
	b, err := get(ctx, c, to, what, NetFnApp, CmdGetWatchdogTimer)
	if err != nil {
		return Watchdog{}, err
	}
	w, err := ParseWatchdog(b)
	if err != nil {
		return Watchdog{}, decodeErr(what, to, err)
	}
	return w, nil
}

// SetWatchdog configures the watchdog timer (Set Watchdog Timer). w.Running
// is sent as "don't stop timer"; w.Initial must be at most 6553.5 s.
func SetWatchdog(ctx context.Context, c Conn, to Addr, w Watchdog) error {
	const what = "set watchdog timer"
	if w.Initial < 0 || w.Initial > 0xffff*100*time.Millisecond {
		return fmt.Errorf("%s on %s: initial countdown %v out of range 0..6553.5s", what, to, w.Initial)
	}
	_, err := set(ctx, c, to, what, NetFnApp, CmdSetWatchdogTimer, w.setBytes()...)
	return err
}

// ResetWatchdog starts or restarts the watchdog countdown. A controller
// whose timer was never set answers 0x80, reported as a *CompletionError
// with code CCWatchdogUninitialized.
func ResetWatchdog(ctx context.Context, c Conn, to Addr) error {
	_, err := set(ctx, c, to, "reset watchdog timer", NetFnApp, CmdResetWatchdogTimer)
	return err
}
