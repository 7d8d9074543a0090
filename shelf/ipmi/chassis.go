package ipmi

import (
	"context"
	"fmt"
)

// Chassis command numbers.
const (
	CmdGetChassisStatus uint8 = 0x01
	CmdChassisControl   uint8 = 0x02
)

// ChassisStatus is the answer to Get Chassis Status (IPMI 2.0 §28.2).
type ChassisStatus struct {
	PowerOn       bool
	Overload      bool
	Interlock     bool
	PowerFault    bool
	ControlFault  bool
	RestorePolicy uint8 // 0 stay off, 1 restore previous, 2 power on, 3 unknown
	LastEvent     uint8 // last power event bits
	Misc          uint8 // misc chassis state bits (intrusion, front panel lockout, drive fault, fan fault, identify)
	FrontPanel    uint8 // front panel button capabilities (optional byte)
	HasFrontPanel bool
}

// ParseChassisStatus decodes Get Chassis Status response data.
func ParseChassisStatus(b []byte) (ChassisStatus, error) {
	if len(b) < 3 {
		return ChassisStatus{}, short("get chassis status", len(b), 3)
	}
	s := ChassisStatus{
		PowerOn:       bit(b[0], 0),
		Overload:      bit(b[0], 1),
		Interlock:     bit(b[0], 2),
		PowerFault:    bit(b[0], 3),
		ControlFault:  bit(b[0], 4),
		RestorePolicy: (b[0] >> 5) & 3,
		LastEvent:     b[1],
		Misc:          b[2],
	}
	if len(b) >= 4 {
		s.FrontPanel, s.HasFrontPanel = b[3], true
	}
	return s, nil
}

// Marshal encodes s as Get Chassis Status response data.
func (s ChassisStatus) Marshal() []byte {
	b := []byte{setBit(s.PowerOn, 0) | setBit(s.Overload, 1) | setBit(s.Interlock, 2) | setBit(s.PowerFault, 3) |
		setBit(s.ControlFault, 4) | (s.RestorePolicy&3)<<5, s.LastEvent, s.Misc}
	if s.HasFrontPanel {
		b = append(b, s.FrontPanel)
	}
	return b
}

// GetChassisStatus reads the chassis status of the controller at to.
func GetChassisStatus(ctx context.Context, c Conn, to Addr) (ChassisStatus, error) {
	const what = "get chassis status"
	b, err := get(ctx, c, to, what, NetFnChassis, CmdGetChassisStatus)
	if err != nil {
		return ChassisStatus{}, err
	}
	s, err := ParseChassisStatus(b)
	if err != nil {
		return ChassisStatus{}, decodeErr(what, to, err)
	}
	return s, nil
}

// ChassisAction is the request of Chassis Control.
type ChassisAction uint8

// Chassis control actions.
const (
	ChassisPowerDown  ChassisAction = 0
	ChassisPowerUp    ChassisAction = 1
	ChassisPowerCycle ChassisAction = 2
	ChassisHardReset  ChassisAction = 3
	ChassisDiagPulse  ChassisAction = 4
	ChassisSoftOff    ChassisAction = 5 // ACPI soft shutdown via overtemperature emulation
)

func (a ChassisAction) String() string {
	switch a {
	case ChassisPowerDown:
		return "power down"
	case ChassisPowerUp:
		return "power up"
	case ChassisPowerCycle:
		return "power cycle"
	case ChassisHardReset:
		return "hard reset"
	case ChassisDiagPulse:
		return "diagnostic interrupt"
	case ChassisSoftOff:
		return "soft shutdown"
	}
	return fmt.Sprintf("action %d", uint8(a))
}

// ChassisControl asks the controller at to for a power action. It only
// acknowledges the request: confirm the result with GetChassisStatus.
func ChassisControl(ctx context.Context, c Conn, to Addr, a ChassisAction) error {
	if a > ChassisSoftOff {
		return fmt.Errorf("chassis control on %s: unknown %s", to, a)
	}
	_, err := set(ctx, c, to, "chassis control "+a.String(), NetFnChassis, CmdChassisControl, byte(a))
	return err
}
