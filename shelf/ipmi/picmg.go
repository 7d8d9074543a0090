package ipmi

import (
	"context"
	"errors"
	"fmt"
)

// PICMGID is the defining body identifier of PICMG in the Group Extension
// NetFn: the first byte of every PICMG request and response.
const PICMGID uint8 = 0x00

// PICMG 3.0 command numbers (PICMG 3.0 R3.0 table 3-10 and following).
const (
	CmdGetPICMGProperties        uint8 = 0x00
	CmdGetAddressInfo            uint8 = 0x01
	CmdFRUControl                uint8 = 0x04
	CmdGetFRULEDProperties       uint8 = 0x05
	CmdGetLEDColorCapabilities   uint8 = 0x06
	CmdSetFRULEDState            uint8 = 0x07
	CmdGetFRULEDState            uint8 = 0x08
	CmdSetFRUActivationPolicy    uint8 = 0x0a
	CmdGetFRUActivationPolicy    uint8 = 0x0b
	CmdSetFRUActivation          uint8 = 0x0c
	CmdGetDeviceLocatorRecordID  uint8 = 0x0d
	CmdSetPowerLevel             uint8 = 0x11
	CmdGetPowerLevel             uint8 = 0x12
	CmdGetFRUControlCapabilities uint8 = 0x1e
)

// ErrNotPICMG is matched (errors.Is) when a Group Extension response does
// not start with the PICMG identifier.
var ErrNotPICMG = errors.New("response is not from the PICMG defining body")

// picmg sends a PICMG command: the identifier is prepended to data and
// checked and stripped from the response.
func picmg(ctx context.Context, c Conn, to Addr, what string, cmd uint8, readOnly bool, data ...byte) ([]byte, error) {
	req := Request{NetFn: NetFnGroup, Cmd: cmd, Data: append([]byte{PICMGID}, data...), ReadOnly: readOnly}
	b, err := call(ctx, c, to, what, req)
	if err != nil {
		return nil, err
	}
	if len(b) < 1 {
		return nil, decodeErr(what, to, short(what, 0, 1))
	}
	if b[0] != PICMGID {
		return nil, decodeErr(what, to, fmt.Errorf("%w: identifier 0x%02x", ErrNotPICMG, b[0]))
	}
	return b[1:], nil
}

// picmgResp prepends the PICMG identifier to response data (for Marshal).
func picmgResp(b ...byte) []byte { return append([]byte{PICMGID}, b...) }

// picmgBody checks and strips the PICMG identifier of response data.
func picmgBody(b []byte, what string, need int) ([]byte, error) {
	if len(b) < 1+need {
		return nil, short(what, len(b), 1+need)
	}
	if b[0] != PICMGID {
		return nil, fmt.Errorf("%s: %w: identifier 0x%02x", what, ErrNotPICMG, b[0])
	}
	return b[1:], nil
}

// PICMGProperties is the answer to Get PICMG Properties (table 3-11).
type PICMGProperties struct {
	Version   uint8 // PICMG extension version: low nibble major, high nibble minor (0x22 = 2.2)
	MaxFRUID  uint8
	IPMCFRUID uint8 // FRU device ID of the IPM controller itself (0)
}

// VersionString renders the extension version ("2.2").
func (p PICMGProperties) VersionString() string {
	return fmt.Sprintf("%d.%d", p.Version&0x0f, p.Version>>4)
}

// ParsePICMGProperties decodes Get PICMG Properties response data
// (identifier included).
func ParsePICMGProperties(b []byte) (PICMGProperties, error) {
	d, err := picmgBody(b, "get picmg properties", 3)
	if err != nil {
		return PICMGProperties{}, err
	}
	return PICMGProperties{Version: d[0], MaxFRUID: d[1], IPMCFRUID: d[2]}, nil
}

// Marshal encodes p as response data (identifier included).
func (p PICMGProperties) Marshal() []byte { return picmgResp(p.Version, p.MaxFRUID, p.IPMCFRUID) }

// GetPICMGProperties reads the PICMG properties of the controller at to.
func GetPICMGProperties(ctx context.Context, c Conn, to Addr) (PICMGProperties, error) {
	const what = "get picmg properties"
	b, err := picmg(ctx, c, to, what, CmdGetPICMGProperties, true)
	if err != nil {
		return PICMGProperties{}, err
	}
	return decodePICMG(what, to, b, ParsePICMGProperties)
}

// decodePICMG runs a response decoder on body data (identifier already stripped).
func decodePICMG[T any](what string, to Addr, body []byte, parse func([]byte) (T, error)) (T, error) {
	v, err := parse(picmgResp(body...))
	if err != nil {
		var zero T
		return zero, decodeErr(what, to, err)
	}
	return v, nil
}

// SiteType is a PICMG site type (table 3-12).
type SiteType uint8

// Site types.
const (
	SiteBoard         SiteType = 0x00 // PICMG board (front board)
	SitePowerEntry    SiteType = 0x01
	SiteShelfFRUInfo  SiteType = 0x02
	SiteShelfManager  SiteType = 0x03 // dedicated shelf management controller
	SiteFanTray       SiteType = 0x04
	SiteFanFilterTray SiteType = 0x05
	SiteAlarm         SiteType = 0x06
	SiteAMC           SiteType = 0x07
	SitePMC           SiteType = 0x08
	SiteRTM           SiteType = 0x09
	SiteUnknown       SiteType = 0xff
)

var siteNames = map[SiteType]string{
	SiteBoard: "ATCA board", SitePowerEntry: "Power Entry", SiteShelfFRUInfo: "Shelf FRU Information",
	SiteShelfManager: "Dedicated Shelf Manager", SiteFanTray: "Fan Tray", SiteFanFilterTray: "Fan Filter Tray",
	SiteAlarm: "Alarm", SiteAMC: "AdvancedMC Module", SitePMC: "PMC", SiteRTM: "Rear Transition Module",
}

func (s SiteType) String() string {
	if n, ok := siteNames[s]; ok {
		return n
	}
	return fmt.Sprintf("site type 0x%02x", uint8(s))
}

// AddressInfo is the answer to Get Address Info (table 3-14).
type AddressInfo struct {
	HardwareAddress uint8 // 7-bit hardware address (IPMB-0 address = 2*HA)
	IPMBAddress     uint8 // IPMB-0 address
	FRUID           uint8
	SiteID          uint8
	SiteType        SiteType
	Carrier         uint8 // carrier number (MicroTCA); 0 when absent
}

// ParseAddressInfo decodes Get Address Info response data (identifier included).
func ParseAddressInfo(b []byte) (AddressInfo, error) {
	d, err := picmgBody(b, "get address info", 6)
	if err != nil {
		return AddressInfo{}, err
	}
	a := AddressInfo{HardwareAddress: d[0], IPMBAddress: d[1], FRUID: d[3], SiteID: d[4], SiteType: SiteType(d[5])}
	if len(d) >= 7 {
		a.Carrier = d[6]
	}
	return a, nil
}

// Marshal encodes a as response data (identifier included; byte 3,
// reserved, is 0xFF; the carrier number only when non-zero).
func (a AddressInfo) Marshal() []byte {
	b := picmgResp(a.HardwareAddress, a.IPMBAddress, 0xff, a.FRUID, a.SiteID, byte(a.SiteType))
	if a.Carrier != 0 {
		b = append(b, a.Carrier)
	}
	return b
}

// AddressKey says how Get Address Info selects the controller it answers about.
type AddressKey uint8

// Address keys. KeyFRU (the zero value) asks about a FRU of the addressed
// controller itself.
const (
	KeyFRU      AddressKey = iota // by FRU device ID of the addressed controller
	KeyHardware                   // by hardware address
	KeyIPMB                       // by IPMB-0 address
	KeySite                       // by site type and site number
)

// AddressQuery selects what Get Address Info answers about. The zero
// value asks about FRU 0 of the addressed controller.
type AddressQuery struct {
	FRUID uint8
	By    AddressKey
	Key   uint8    // hardware address, IPMB-0 address or site number
	Site  SiteType // with KeySite
}

// ByFRU asks about FRU fru of the addressed controller.
func ByFRU(fru uint8) AddressQuery { return AddressQuery{FRUID: fru} }

// ByHardwareAddress asks about FRU 0 of the controller with hardware address ha.
func ByHardwareAddress(ha uint8) AddressQuery { return AddressQuery{By: KeyHardware, Key: ha} }

// ByIPMBAddress asks about FRU 0 of the controller with IPMB-0 address a.
func ByIPMBAddress(a uint8) AddressQuery { return AddressQuery{By: KeyIPMB, Key: a} }

// BySite asks about the controller in site number n of type t.
func BySite(t SiteType, n uint8) AddressQuery { return AddressQuery{By: KeySite, Key: n, Site: t} }

// request encodes the query (after the PICMG identifier): FRU ID, then the
// address key type on the wire (0 hardware address, 1 IPMB-0, 3 physical
// address / site), the key and, for sites, the site type.
func (q AddressQuery) request() []byte {
	switch q.By {
	case KeyHardware:
		return []byte{q.FRUID, 0x00, q.Key}
	case KeyIPMB:
		return []byte{q.FRUID, 0x01, q.Key}
	case KeySite:
		return []byte{q.FRUID, 0x03, q.Key, byte(q.Site)}
	}
	return []byte{q.FRUID}
}

// GetAddressInfo asks the controller at to (normally the shelf manager)
// for address information.
func GetAddressInfo(ctx context.Context, c Conn, to Addr, q AddressQuery) (AddressInfo, error) {
	what := "get address info"
	switch q.By {
	case KeyHardware:
		what += fmt.Sprintf(" of hardware address 0x%02x", q.Key)
	case KeyIPMB:
		what += fmt.Sprintf(" of IPMB address 0x%02x", q.Key)
	case KeySite:
		what += fmt.Sprintf(" of %s site %d", q.Site, q.Key)
	default:
		what += fmt.Sprintf(" of fru %d", q.FRUID)
	}
	b, err := picmg(ctx, c, to, what, CmdGetAddressInfo, true, q.request()...)
	if err != nil {
		return AddressInfo{}, err
	}
	return decodePICMG(what, to, b, ParseAddressInfo)
}

// FRUControlOption is the action of FRU Control (table 3-25).
type FRUControlOption uint8

// FRU control options.
const (
	FRUColdReset      FRUControlOption = 0
	FRUWarmReset      FRUControlOption = 1
	FRUGracefulReboot FRUControlOption = 2
	FRUDiagInterrupt  FRUControlOption = 3
	FRUQuiesce        FRUControlOption = 4
)

func (o FRUControlOption) String() string {
	switch o {
	case FRUColdReset:
		return "cold reset"
	case FRUWarmReset:
		return "warm reset"
	case FRUGracefulReboot:
		return "graceful reboot"
	case FRUDiagInterrupt:
		return "issue diagnostic interrupt"
	case FRUQuiesce:
		return "quiesce"
	}
	return fmt.Sprintf("fru control option %d", uint8(o))
}

// FRUControl asks for a reset/reboot/interrupt/quiesce of FRU fru.
func FRUControl(ctx context.Context, c Conn, to Addr, fru uint8, o FRUControlOption) error {
	if o > FRUQuiesce {
		return fmt.Errorf("fru control on %s: unknown %s", to, o)
	}
	_, err := picmg(ctx, c, to, fmt.Sprintf("fru control %s of fru %d", o, fru), CmdFRUControl, false, fru, byte(o))
	return err
}

// FRUControlCaps is the answer to Get FRU Control Capabilities (table 3-29).
// Cold reset is always supported.
type FRUControlCaps struct {
	WarmReset      bool
	GracefulReboot bool
	DiagInterrupt  bool
}

// Supports reports whether option o is supported.
func (f FRUControlCaps) Supports(o FRUControlOption) bool {
	switch o {
	case FRUColdReset:
		return true
	case FRUWarmReset:
		return f.WarmReset
	case FRUGracefulReboot:
		return f.GracefulReboot
	case FRUDiagInterrupt:
		return f.DiagInterrupt
	}
	return false
}

// ParseFRUControlCaps decodes the response data (identifier included).
func ParseFRUControlCaps(b []byte) (FRUControlCaps, error) {
	d, err := picmgBody(b, "get fru control capabilities", 1)
	if err != nil {
		return FRUControlCaps{}, err
	}
	return FRUControlCaps{WarmReset: bit(d[0], 1), GracefulReboot: bit(d[0], 2), DiagInterrupt: bit(d[0], 3)}, nil
}

// Marshal encodes f as response data (identifier included).
func (f FRUControlCaps) Marshal() []byte {
	return picmgResp(setBit(f.WarmReset, 1) | setBit(f.GracefulReboot, 2) | setBit(f.DiagInterrupt, 3))
}

// GetFRUControlCapabilities reads which FRU Control options FRU fru supports.
func GetFRUControlCapabilities(ctx context.Context, c Conn, to Addr, fru uint8) (FRUControlCaps, error) {
	what := fmt.Sprintf("get fru control capabilities of fru %d", fru)
	b, err := picmg(ctx, c, to, what, CmdGetFRUControlCapabilities, true, fru)
	if err != nil {
		return FRUControlCaps{}, err
	}
	return decodePICMG(what, to, b, ParseFRUControlCaps)
}

// LEDProperties is the answer to Get FRU LED Properties (table 3-27).
type LEDProperties struct {
	// General is the bitmask of general status LEDs under IPMC control:
	// bit 0 blue LED, bits 1-3 LEDs 1-3.
	General uint8
	// AppSpecific is the number of application-specific LEDs (IDs 4..).
	AppSpecific uint8
}

// LEDIDs lists every LED ID of the FRU: the general ones present, then
// the application-specific ones.
func (p LEDProperties) LEDIDs() []uint8 {
	var ids []uint8
	for i := uint8(0); i < 4; i++ {
		if p.General&(1<<i) != 0 {
			ids = append(ids, i)
		}
	}
	n := p.AppSpecific
	if n == 0xff || n > 0xfb-4 {
		n = 0
	}
	for i := uint8(0); i < n; i++ {
		ids = append(ids, 4+i)
	}
	return ids
}

// ParseLEDProperties decodes the response data (identifier included).
func ParseLEDProperties(b []byte) (LEDProperties, error) {
	d, err := picmgBody(b, "get fru led properties", 2)
	if err != nil {
		return LEDProperties{}, err
	}
	return LEDProperties{General: d[0] & 0x0f, AppSpecific: d[1]}, nil
}

// Marshal encodes p as response data (identifier included).
func (p LEDProperties) Marshal() []byte { return picmgResp(p.General, p.AppSpecific) }

// GetFRULEDProperties reads which LEDs FRU fru has.
func GetFRULEDProperties(ctx context.Context, c Conn, to Addr, fru uint8) (LEDProperties, error) {
	what := fmt.Sprintf("get fru led properties of fru %d", fru)
	b, err := picmg(ctx, c, to, what, CmdGetFRULEDProperties, true, fru)
	if err != nil {
		return LEDProperties{}, err
	}
	return decodePICMG(what, to, b, ParseLEDProperties)
}

// LEDColor is a PICMG LED color code.
type LEDColor uint8

// LED colors.
const (
	LEDBlue     LEDColor = 1
	LEDRed      LEDColor = 2
	LEDGreen    LEDColor = 3
	LEDAmber    LEDColor = 4
	LEDOrange   LEDColor = 5
	LEDWhite    LEDColor = 6
	LEDNoChange LEDColor = 0x0e
)

var colorNames = [...]string{"reserved", "blue", "red", "green", "amber", "orange", "white"}

func (c LEDColor) String() string {
	if int(c) < len(colorNames) {
		return colorNames[c]
	}
	if c == LEDNoChange {
		return "do not change"
	}
	return fmt.Sprintf("color 0x%x", uint8(c))
}

// LEDColorCaps is the answer to Get LED Color Capabilities (table 3-28).
type LEDColorCaps struct {
	Colors          uint8 // bit n set: color n supported (bits 1-6)
	DefaultLocal    LEDColor
	DefaultOverride LEDColor
}

// Supports reports whether color col is supported.
func (c LEDColorCaps) Supports(col LEDColor) bool { return col < 8 && c.Colors&(1<<col) != 0 }

// ParseLEDColorCaps decodes the response data (identifier included).
func ParseLEDColorCaps(b []byte) (LEDColorCaps, error) {
	d, err := picmgBody(b, "get led color capabilities", 3)
	if err != nil {
		return LEDColorCaps{}, err
	}
	return LEDColorCaps{Colors: d[0] & 0x7e, DefaultLocal: LEDColor(d[1] & 0x0f), DefaultOverride: LEDColor(d[2] & 0x0f)}, nil
}

// Marshal encodes c as response data (identifier included).
func (c LEDColorCaps) Marshal() []byte {
	return picmgResp(c.Colors&0x7e, byte(c.DefaultLocal)&0x0f, byte(c.DefaultOverride)&0x0f)
}

// GetLEDColorCapabilities reads the colors LED led of FRU fru supports.
func GetLEDColorCapabilities(ctx context.Context, c Conn, to Addr, fru, led uint8) (LEDColorCaps, error) {
	what := fmt.Sprintf("get led color capabilities of fru %d led %d", fru, led)
	b, err := picmg(ctx, c, to, what, CmdGetLEDColorCapabilities, true, fru, led)
	if err != nil {
		return LEDColorCaps{}, err
	}
	return decodePICMG(what, to, b, ParseLEDColorCaps)
}

// LED function codes (Set/Get FRU LED State). Values 0x01-0xFA are the
// off-duration of blinking in tens of ms.
const (
	LEDOff          uint8 = 0x00
	LEDLampTest     uint8 = 0xfb
	LEDLocalControl uint8 = 0xfc
	LEDOn           uint8 = 0xff
)

// LEDSetting is one LED state: function (LEDOff, LEDOn, blink off-time,
// LEDLampTest, LEDLocalControl), on-duration in tens of ms (blink; lamp
// test: hundreds of ms) and color.
type LEDSetting struct {
	Function   uint8
	OnDuration uint8
	Color      LEDColor
}

// AllLEDs addresses every LED of a FRU in Set FRU LED State.
const AllLEDs uint8 = 0xff

// SetFRULEDState sets LED led (or AllLEDs) of FRU fru.
func SetFRULEDState(ctx context.Context, c Conn, to Addr, fru, led uint8, s LEDSetting) error {
	what := fmt.Sprintf("set fru led state of fru %d led %d", fru, led)
	_, err := picmg(ctx, c, to, what, CmdSetFRULEDState, false, fru, led, s.Function, s.OnDuration, byte(s.Color)&0x0f)
	return err
}

// LEDState is the answer to Get FRU LED State (table 3-31).
type LEDState struct {
	HasLocal         bool // local control state available
	OverrideEnabled  bool
	LampTestEnabled  bool
	Local            LEDSetting
	Override         LEDSetting // valid when OverrideEnabled or LampTestEnabled
	LampTestDuration uint8      // hundreds of ms, valid when LampTestEnabled
}

// Effective is the setting the LED shows: the override when enabled,
// else the local control state.
func (s LEDState) Effective() LEDSetting {
	if s.OverrideEnabled || s.LampTestEnabled {
		return s.Override
	}
	return s.Local
}

// ParseLEDState decodes the response data (identifier included).
func ParseLEDState(b []byte) (LEDState, error) {
	d, err := picmgBody(b, "get fru led state", 4)
	if err != nil {
		return LEDState{}, err
	}
	s := LEDState{
		HasLocal:        bit(d[0], 0),
		OverrideEnabled: bit(d[0], 1),
		LampTestEnabled: bit(d[0], 2),
		Local:           LEDSetting{Function: d[1], OnDuration: d[2], Color: LEDColor(d[3] & 0x0f)},
	}
	if s.OverrideEnabled || s.LampTestEnabled {
		if len(d) < 7 {
			return LEDState{}, fmt.Errorf("get fru led state: %w: override enabled but override state missing (%d bytes)", ErrShortResponse, len(d)+1)
		}
		s.Override = LEDSetting{Function: d[4], OnDuration: d[5], Color: LEDColor(d[6] & 0x0f)}
	}
	if s.LampTestEnabled {
		if len(d) < 8 {
			return LEDState{}, fmt.Errorf("get fru led state: %w: lamp test enabled but duration missing", ErrShortResponse)
		}
		s.LampTestDuration = d[7]
	}
	return s, nil
}

// Marshal encodes s as response data (identifier included).
func (s LEDState) Marshal() []byte {
	b := picmgResp(setBit(s.HasLocal, 0)|setBit(s.OverrideEnabled, 1)|setBit(s.LampTestEnabled, 2),
		s.Local.Function, s.Local.OnDuration, byte(s.Local.Color)&0x0f)
	if s.OverrideEnabled || s.LampTestEnabled {
		b = append(b, s.Override.Function, s.Override.OnDuration, byte(s.Override.Color)&0x0f)
	}
	if s.LampTestEnabled {
		b = append(b, s.LampTestDuration)
	}
	return b
}

// GetFRULEDState reads the state of LED led of FRU fru.
func GetFRULEDState(ctx context.Context, c Conn, to Addr, fru, led uint8) (LEDState, error) {
	what := fmt.Sprintf("get fru led state of fru %d led %d", fru, led)
	b, err := picmg(ctx, c, to, what, CmdGetFRULEDState, true, fru, led)
	if err != nil {
		return LEDState{}, err
	}
	return decodePICMG(what, to, b, ParseLEDState)
}

// ActivationPolicy is the FRU activation policy (tables 3-20/3-21).
type ActivationPolicy struct {
	// Locked keeps the FRU in M1: it does not proceed to M2 on insertion.
	Locked bool
	// DeactivationLocked keeps the FRU in M4: it does not proceed to M5
	// on an extraction request.
	DeactivationLocked bool
}

// Activation policy bits, also the mask bits of Set FRU Activation Policy.
const (
	PolicyLockedBit             uint8 = 1 << 0
	PolicyDeactivationLockedBit uint8 = 1 << 1
)

// ParseActivationPolicy decodes Get FRU Activation Policy response data
// (identifier included).
func ParseActivationPolicy(b []byte) (ActivationPolicy, error) {
	d, err := picmgBody(b, "get fru activation policy", 1)
	if err != nil {
		return ActivationPolicy{}, err
	}
	return ActivationPolicy{Locked: bit(d[0], 0), DeactivationLocked: bit(d[0], 1)}, nil
}

// Marshal encodes p as Get FRU Activation Policy response data.
func (p ActivationPolicy) Marshal() []byte {
	return picmgResp(setBit(p.Locked, 0) | setBit(p.DeactivationLocked, 1))
}

// GetFRUActivationPolicy reads the activation policy of FRU fru.
func GetFRUActivationPolicy(ctx context.Context, c Conn, to Addr, fru uint8) (ActivationPolicy, error) {
	what := fmt.Sprintf("get fru activation policy of fru %d", fru)
	b, err := picmg(ctx, c, to, what, CmdGetFRUActivationPolicy, true, fru)
	if err != nil {
		return ActivationPolicy{}, err
	}
	return decodePICMG(what, to, b, ParseActivationPolicy)
}

// SetFRUActivationPolicy changes the policy bits selected by mask
// (PolicyLockedBit, PolicyDeactivationLockedBit) to the values in p.
// Bits outside mask are left as they are.
func SetFRUActivationPolicy(ctx context.Context, c Conn, to Addr, fru uint8, mask uint8, p ActivationPolicy) error {
	what := fmt.Sprintf("set fru activation policy of fru %d (mask 0x%02x, locked %t, deactivation-locked %t)", fru, mask, p.Locked, p.DeactivationLocked)
	if mask&^(PolicyLockedBit|PolicyDeactivationLockedBit) != 0 || mask == 0 {
		return fmt.Errorf("%s on %s: invalid mask", what, to)
	}
	bits := (setBit(p.Locked, 0) | setBit(p.DeactivationLocked, 1)) & mask
	_, err := picmg(ctx, c, to, what, CmdSetFRUActivationPolicy, false, fru, mask, bits)
	return err
}

// SetFRUActivation activates (true) or deactivates (false) FRU fru.
func SetFRUActivation(ctx context.Context, c Conn, to Addr, fru uint8, activate bool) error {
	op, v := "deactivate", byte(0)
	if activate {
		op, v = "activate", 1
	}
	_, err := picmg(ctx, c, to, fmt.Sprintf("set fru activation (%s) of fru %d", op, fru), CmdSetFRUActivation, false, fru, v)
	return err
}

// ParseRecordID decodes Get Device Locator Record ID response data
// (identifier included).
func ParseRecordID(b []byte) (uint16, error) {
	d, err := picmgBody(b, "get device locator record id", 2)
	if err != nil {
		return 0, err
	}
	return le16(d), nil
}

// MarshalRecordID encodes Get Device Locator Record ID response data
// (identifier included).
func MarshalRecordID(id uint16) []byte { return picmgResp(byte(id), byte(id>>8)) }

// GetDeviceLocatorRecordID returns the SDR record ID of the device locator
// record of FRU fru.
func GetDeviceLocatorRecordID(ctx context.Context, c Conn, to Addr, fru uint8) (uint16, error) {
	what := fmt.Sprintf("get device locator record id of fru %d", fru)
	b, err := picmg(ctx, c, to, what, CmdGetDeviceLocatorRecordID, true, fru)
	if err != nil {
		return 0, err
	}
	return decodePICMG(what, to, b, ParseRecordID)
}

// PowerType selects which levels Get Power Level returns (table 3-84).
type PowerType uint8

// Power types.
const (
	PowerSteadyState        PowerType = 0
	PowerDesiredSteadyState PowerType = 1
	PowerEarly              PowerType = 2
	PowerDesiredEarly       PowerType = 3
)

// PowerLevel is the answer to Get Power Level.
type PowerLevel struct {
	Dynamic    bool  // dynamic power configuration supported
	Level      uint8 // current (or, for desired types, desired) power level, 0 = off
	Delay      uint8 // delay to stable power, tenths of a second
	Multiplier uint8 // power multiplier, tenths of a watt
	Draw       []uint8
}

// Watts returns the draw of level l (1-based) in watts, or false.
func (p PowerLevel) Watts(l uint8) (float64, bool) {
	if l == 0 || int(l) > len(p.Draw) {
		return 0, false
	}
	return float64(p.Draw[l-1]) * float64(p.Multiplier) / 10, true
}

// ParsePowerLevel decodes Get Power Level response data (identifier included).
func ParsePowerLevel(b []byte) (PowerLevel, error) {
	d, err := picmgBody(b, "get power level", 3)
	if err != nil {
		return PowerLevel{}, err
	}
	p := PowerLevel{Dynamic: bit(d[0], 7), Level: d[0] & 0x1f, Delay: d[1], Multiplier: d[2]}
	if len(d) > 3 {
		p.Draw = append([]byte(nil), d[3:min(len(d), 3+20)]...)
	}
	return p, nil
}

// Marshal encodes p as Get Power Level response data.
func (p PowerLevel) Marshal() []byte {
	b := picmgResp(setBit(p.Dynamic, 7)|p.Level&0x1f, p.Delay, p.Multiplier)
	return append(b, p.Draw...)
}

// GetPowerLevel reads the power levels of FRU fru.
func GetPowerLevel(ctx context.Context, c Conn, to Addr, fru uint8, t PowerType) (PowerLevel, error) {
	what := fmt.Sprintf("get power level (type %d) of fru %d", t, fru)
	b, err := picmg(ctx, c, to, what, CmdGetPowerLevel, true, fru, byte(t))
	if err != nil {
		return PowerLevel{}, err
	}
	return decodePICMG(what, to, b, ParsePowerLevel)
}

// PowerLevelNoChange in SetPowerLevel keeps the power level.
const PowerLevelNoChange uint8 = 0xff

// SetPowerLevel sets the power level of FRU fru (0 = off, 1-20, or
// PowerLevelNoChange). copyDesired also copies the desired levels to the
// present levels.
func SetPowerLevel(ctx context.Context, c Conn, to Addr, fru, level uint8, copyDesired bool) error {
	what := fmt.Sprintf("set power level %d of fru %d", level, fru)
	if level > 20 && level != PowerLevelNoChange {
		return fmt.Errorf("%s on %s: level out of range 0..20", what, to)
	}
	cp := byte(0)
	if copyDesired {
		cp = 1
	}
	_, err := picmg(ctx, c, to, what, CmdSetPowerLevel, false, fru, level, cp)
	return err
}
