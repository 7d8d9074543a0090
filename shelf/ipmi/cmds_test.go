package ipmi

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestCommands checks request bytes and response decoding of the typed
// commands. Response bytes are those ipmi_sim (ATCA mode) returned to
// "ipmitool raw" on the lab shelf unless the name says otherwise.
func TestCommands(t *testing.T) {
	ctx := context.Background()
	blade := Addr{Slave: 0x82}
	for _, tc := range []struct {
		name     string
		call     func(c Conn) (any, error)
		resp     string
		netfn    NetFn
		cmd      uint8
		data     string
		readOnly bool
		want     any
	}{
		{"get device id (shelf manager)",
			func(c Conn) (any, error) { return GetDeviceID(ctx, c, Addr{}) },
			"00 01 01 10 02 9f 5a 31 00 01 00 00 00 00 00", NetFnApp, CmdGetDeviceID, "", true,
			DeviceID{DeviceRevision: 1, Available: true, FirmwareMajor: 1, FirmwareMinor: 0x10, IPMIVersion: 0x02,
				DeviceSupport: 0x9f, ManufacturerID: ManufacturerPICMG, ProductID: 1, AuxFirmware: []byte{0, 0, 0, 0}}},
		{"get sensor reading B1 +12V",
			func(c Conn) (any, error) { return GetSensorReading(ctx, c, blade, 3) },
			"c9 c0 00 00", NetFnSensor, CmdGetSensorReading, "03", true,
			SensorReading{Raw: 0xc9, EventsEnabled: true, ScanningEnabled: true}},
		{"get sensor reading hot-swap M4",
			func(c Conn) (any, error) { return GetSensorReading(ctx, c, blade, 0) },
			"04 c0 10 00", NetFnSensor, CmdGetSensorReading, "00", true,
			SensorReading{Raw: 4, EventsEnabled: true, ScanningEnabled: true, States: 0x10}},
		{"get sensor reading unavailable, scanning disabled (spec example)",
			func(c Conn) (any, error) { return GetSensorReading(ctx, c, blade, 3) },
			"00 20", NetFnSensor, CmdGetSensorReading, "03", true,
			SensorReading{Unavailable: true}},
		{"get sensor thresholds",
			func(c Conn) (any, error) { return GetSensorThresholds(ctx, c, blade, 3) },
			"3f be b4 aa d2 dc e6", NetFnSensor, CmdGetSensorThresholds, "03", true,
			Thresholds{Mask: 0x3f, Value: [6]uint8{0xbe, 0xb4, 0xaa, 0xd2, 0xdc, 0xe6}}},
		{"set sensor thresholds unc ucr",
			func(c Conn) (any, error) {
				return nil, SetSensorThresholds(ctx, c, blade, 3, Thresholds{}.With(UpperNonCritical, 0xd3).With(UpperCritical, 0xdd))
			},
			"", NetFnSensor, CmdSetSensorThresholds, "03 18 00 00 00 d3 dd 00", false, nil},
		{"get sensor hysteresis",
			func(c Conn) (any, error) { return GetSensorHysteresis(ctx, c, blade, 3) },
			"01 01", NetFnSensor, CmdGetSensorHysteresis, "03 ff", true, Hysteresis{1, 1}},
		{"set sensor hysteresis",
			func(c Conn) (any, error) { return nil, SetSensorHysteresis(ctx, c, blade, 3, Hysteresis{2, 3}) },
			"", NetFnSensor, CmdSetSensorHysteresis, "03 ff 02 03", false, nil},
		{"get sensor event enable",
			func(c Conn) (any, error) { return GetSensorEventEnable(ctx, c, blade, 3) },
			"c0 95 7a 95 7a", NetFnSensor, CmdGetSensorEventEnable, "03", true,
			EventEnable{EventsEnabled: true, ScanningEnabled: true, Assert: 0x7a95, Deassert: 0x7a95}},
		{"set sensor event enable: disable selected",
			func(c Conn) (any, error) {
				return nil, SetSensorEventEnable(ctx, c, blade, 3, EventEnable{EventsEnabled: true, ScanningEnabled: true, Assert: 0x0280}, EventEnableDisable)
			},
			"", NetFnSensor, CmdSetSensorEventEnable, "03 e0 80 02 00 00", false, nil},
		{"set sensor event enable: global bits only",
			func(c Conn) (any, error) {
				return nil, SetSensorEventEnable(ctx, c, blade, 3, EventEnable{ScanningEnabled: true}, EventEnableKeep)
			},
			"", NetFnSensor, CmdSetSensorEventEnable, "03 40", false, nil},
		{"get sel info",
			func(c Conn) (any, error) { return GetSELInfo(ctx, c, Addr{}) },
			"51 0c 00 c0 3d 41 59 04 6b 00 00 00 00 0a", NetFnStorage, CmdGetSELInfo, "", true,
			SELInfo{Version: 0x51, Entries: 12, FreeSpace: 0x3dc0, LastAddition: time.Unix(0x6b045941, 0).UTC(),
				LastErase: time.Unix(0, 0).UTC(), Support: 0x0a}},
		{"get chassis status",
			func(c Conn) (any, error) { return GetChassisStatus(ctx, c, blade) },
			"01 00 00", NetFnChassis, CmdGetChassisStatus, "", true, ChassisStatus{PowerOn: true}},
		{"chassis control power cycle",
			func(c Conn) (any, error) { return nil, ChassisControl(ctx, c, blade, ChassisPowerCycle) },
			"", NetFnChassis, CmdChassisControl, "02", false, nil},
		{"get watchdog (ipmi_sim leaves out the present countdown)",
			func(c Conn) (any, error) { return GetWatchdog(ctx, c, Addr{}) },
			"00 00 00 00 00 00", NetFnApp, CmdGetWatchdogTimer, "", true, Watchdog{}},
		{"get watchdog running SMS/OS hard reset (spec layout)",
			func(c Conn) (any, error) { return GetWatchdog(ctx, c, Addr{}) },
			"44 01 00 10 58 02 2c 01", NetFnApp, CmdGetWatchdogTimer, "", true,
			Watchdog{Use: WatchdogUseSMSOS, Running: true, Action: WatchdogHardReset, ExpirationFlags: 0x10,
				Initial: 60 * time.Second, Present: 30 * time.Second, PresentKnown: true}},
		{"set watchdog",
			func(c Conn) (any, error) {
				return nil, SetWatchdog(ctx, c, Addr{}, Watchdog{Use: WatchdogUseSMSOS, Running: true, Action: WatchdogPowerCycle, ExpirationFlags: 0x10, Initial: 90 * time.Second})
			},
			"", NetFnApp, CmdSetWatchdogTimer, "44 03 00 10 84 03", false, nil},
		{"reset watchdog",
			func(c Conn) (any, error) { return nil, ResetWatchdog(ctx, c, Addr{}) },
			"", NetFnApp, CmdResetWatchdogTimer, "", false, nil},
		{"get fru inventory area info",
			func(c Conn) (any, error) { return GetFRUAreaInfo(ctx, c, blade, 0) },
			"00 01 00", NetFnStorage, CmdGetFRUInventoryAreaInfo, "00", true, FRUAreaInfo{Size: 256}},
		{"read fru data",
			func(c Conn) (any, error) { return ReadFRUData(ctx, c, blade, 0, 0, 16, false) },
			"10 01 00 01 05 0c 00 00 ed 01 04 17 cc 4c 41 42 2d", NetFnStorage, CmdReadFRUData, "00 00 00 10", true,
			hexb(t, "01 00 01 05 0c 00 00 ed 01 04 17 cc 4c 41 42 2d")},
		{"reserve sdr repository",
			func(c Conn) (any, error) { return ReserveSDRRepository(ctx, c, Addr{}, MainSDR) },
			"05 00", NetFnStorage, CmdReserveSDRRepository, "", false, uint16(5)},
		{"get device sdr",
			func(c Conn) (any, error) {
				next, b, err := GetSDR(ctx, c, blade, DeviceSDR, 0, 0x0003, 5, 16)
				return []any{next, b}, err
			},
			"04 00 aa bb", NetFnSensor, CmdGetDeviceSDR, "00 00 03 00 05 10", true, []any{uint16(4), []byte{0xaa, 0xbb}}},
		// PICMG
		{"get picmg properties",
			func(c Conn) (any, error) { return GetPICMGProperties(ctx, c, blade) },
			"00 22 00 00", NetFnGroup, CmdGetPICMGProperties, "00", true, PICMGProperties{Version: 0x22}},
		{"get address info of fru 0",
			func(c Conn) (any, error) { return GetAddressInfo(ctx, c, Addr{}, ByFRU(0)) },
			"00 10 20 ff 00 01 03", NetFnGroup, CmdGetAddressInfo, "00 00", true,
			AddressInfo{HardwareAddress: 0x10, IPMBAddress: 0x20, SiteID: 1, SiteType: SiteShelfManager}},
		{"get address info by hardware address",
			func(c Conn) (any, error) { return GetAddressInfo(ctx, c, Addr{}, ByHardwareAddress(0x41)) },
			"00 41 82 ff 00 01 00", NetFnGroup, CmdGetAddressInfo, "00 00 00 41", true,
			AddressInfo{HardwareAddress: 0x41, IPMBAddress: 0x82, SiteID: 1, SiteType: SiteBoard}},
		{"get address info by site",
			func(c Conn) (any, error) { return GetAddressInfo(ctx, c, Addr{}, BySite(SiteBoard, 3)) },
			"00 43 86 ff 00 03 00", NetFnGroup, CmdGetAddressInfo, "00 00 03 03 00", true,
			AddressInfo{HardwareAddress: 0x43, IPMBAddress: 0x86, SiteID: 3, SiteType: SiteBoard}},
		{"fru control graceful reboot",
			func(c Conn) (any, error) { return nil, FRUControl(ctx, c, blade, 0, FRUGracefulReboot) },
			"00", NetFnGroup, CmdFRUControl, "00 00 02", false, nil},
		{"get fru control capabilities",
			func(c Conn) (any, error) { return GetFRUControlCapabilities(ctx, c, blade, 0) },
			"00 0e", NetFnGroup, CmdGetFRUControlCapabilities, "00 00", true,
			FRUControlCaps{WarmReset: true, GracefulReboot: true, DiagInterrupt: true}},
		{"get fru led properties",
			func(c Conn) (any, error) { return GetFRULEDProperties(ctx, c, blade, 0) },
			"00 03 00", NetFnGroup, CmdGetFRULEDProperties, "00 00", true, LEDProperties{General: 3}},
		{"get led color capabilities",
			func(c Conn) (any, error) { return GetLEDColorCapabilities(ctx, c, blade, 0, 0) },
			"00 02 01 01", NetFnGroup, CmdGetLEDColorCapabilities, "00 00 00", true,
			LEDColorCaps{Colors: 0x02, DefaultLocal: LEDBlue, DefaultOverride: LEDBlue}},
		{"get fru led state (local control)",
			func(c Conn) (any, error) { return GetFRULEDState(ctx, c, blade, 0, 0) },
			"00 01 00 00 01", NetFnGroup, CmdGetFRULEDState, "00 00 00", true,
			LEDState{HasLocal: true, Local: LEDSetting{Color: LEDBlue}}},
		{"get fru led state (override, spec layout)",
			func(c Conn) (any, error) { return GetFRULEDState(ctx, c, blade, 0, 1) },
			"00 03 00 00 03 32 32 02", NetFnGroup, CmdGetFRULEDState, "00 00 01", true,
			LEDState{HasLocal: true, OverrideEnabled: true, Local: LEDSetting{Color: LEDGreen}, Override: LEDSetting{Function: 50, OnDuration: 50, Color: LEDRed}}},
		{"set fru led state on",
			func(c Conn) (any, error) {
				return nil, SetFRULEDState(ctx, c, blade, 0, 1, LEDSetting{Function: LEDOn, Color: LEDRed})
			},
			"00", NetFnGroup, CmdSetFRULEDState, "00 00 01 ff 00 02", false, nil},
		{"set fru activation policy: lock, keep deactivation-locked",
			func(c Conn) (any, error) {
				return nil, SetFRUActivationPolicy(ctx, c, Addr{}, 0, PolicyLockedBit, ActivationPolicy{Locked: true, DeactivationLocked: true})
			},
			"00", NetFnGroup, CmdSetFRUActivationPolicy, "00 00 01 01", false, nil},
		{"get fru activation policy",
			func(c Conn) (any, error) { return GetFRUActivationPolicy(ctx, c, Addr{}, 0) },
			"00 02", NetFnGroup, CmdGetFRUActivationPolicy, "00 00", true, ActivationPolicy{DeactivationLocked: true}},
		{"set fru activation: activate",
			func(c Conn) (any, error) { return nil, SetFRUActivation(ctx, c, blade, 0, true) },
			"00", NetFnGroup, CmdSetFRUActivation, "00 00 01", false, nil},
		{"set fru activation: deactivate",
			func(c Conn) (any, error) { return nil, SetFRUActivation(ctx, c, blade, 0, false) },
			"00", NetFnGroup, CmdSetFRUActivation, "00 00 00", false, nil},
		{"get device locator record id",
			func(c Conn) (any, error) { return GetDeviceLocatorRecordID(ctx, c, Addr{}, 0) },
			"00 0c 00", NetFnGroup, CmdGetDeviceLocatorRecordID, "00 00", true, uint16(12)},
		{"get power level",
			func(c Conn) (any, error) { return GetPowerLevel(ctx, c, Addr{}, 0, PowerSteadyState) },
			"00 81 05 0a 14 28 3c", NetFnGroup, CmdGetPowerLevel, "00 00 00", true,
			PowerLevel{Dynamic: true, Level: 1, Delay: 5, Multiplier: 10, Draw: []uint8{20, 40, 60}}},
		{"set power level off",
			func(c Conn) (any, error) { return nil, SetPowerLevel(ctx, c, Addr{}, 0, 0, false) },
			"00", NetFnGroup, CmdSetPowerLevel, "00 00 00 00", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := answer(CCOK, hexb(t, tc.resp)...)
			got, err := tc.call(f)
			if err != nil {
				t.Fatal(err)
			}
			wantReq(t, f, tc.netfn, tc.cmd, hexb(t, tc.data), tc.readOnly)
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestMarshalRoundTrip: what the embedded shelf encodes decodes to the
// same value.
func TestMarshalRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		v     any
		b     []byte
		parse func([]byte) (any, error)
	}{
		{"device id", DeviceID{DeviceID: 0x12, ProvidesSDRs: true, Available: true, FirmwareMajor: 3, IPMIVersion: 2, ManufacturerID: 0xabcde, ProductID: 0x1234},
			nil, func(b []byte) (any, error) { return ParseDeviceID(b) }},
		{"sensor reading", SensorReading{Raw: 9, ScanningEnabled: true, States: 0x4001},
			nil, func(b []byte) (any, error) { return ParseSensorReading(b) }},
		{"chassis status", ChassisStatus{PowerOn: true, RestorePolicy: 2, Misc: 1, HasFrontPanel: true, FrontPanel: 3},
			nil, func(b []byte) (any, error) { return ParseChassisStatus(b) }},
		{"led state lamp test", LEDState{HasLocal: true, LampTestEnabled: true, Override: LEDSetting{Function: LEDLampTest, Color: LEDAmber}, LampTestDuration: 20},
			nil, func(b []byte) (any, error) { return ParseLEDState(b) }},
		{"power level", PowerLevel{Level: 2, Multiplier: 10, Draw: []uint8{1, 2}},
			nil, func(b []byte) (any, error) { return ParsePowerLevel(b) }},
		{"address info", AddressInfo{HardwareAddress: 0x41, IPMBAddress: 0x82, SiteID: 1},
			nil, func(b []byte) (any, error) { return ParseAddressInfo(b) }},
		{"activation policy", ActivationPolicy{Locked: true},
			nil, func(b []byte) (any, error) { return ParseActivationPolicy(b) }},
		{"watchdog", Watchdog{Use: WatchdogUseOSLoad, Initial: time.Second, Present: 500 * time.Millisecond, PresentKnown: true},
			nil, func(b []byte) (any, error) { return ParseWatchdog(b) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := tc.v.(interface{ Marshal() []byte })
			if !ok {
				t.Fatalf("%T has no Marshal", tc.v)
			}
			got, err := tc.parse(m.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.v) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.v)
			}
		})
	}
}

func TestCommandErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("activation policy not supported by the shelf manager", func(t *testing.T) {
		_, err := GetFRUActivationPolicy(ctx, answer(CCInvalidCommand), Addr{}, 0)
		if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "not supported by this shelf manager") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("power level not supported by a bridged controller", func(t *testing.T) {
		err := SetPowerLevel(ctx, answer(CCInvalidCommand), Addr{Slave: 0x82}, 0, 1, false)
		if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "not supported by this controller") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("other completion codes are not 'not supported'", func(t *testing.T) {
		_, err := GetSensorReading(ctx, answer(CCNotPresent), Addr{}, 9)
		if errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "sensor 0x09") {
			t.Fatalf("err = %v", err)
		}
		if code, ok := CodeOf(err); !ok || code != CCNotPresent {
			t.Fatalf("code = %v %t", code, ok)
		}
	})
	t.Run("wrong PICMG identifier", func(t *testing.T) {
		_, err := GetPICMGProperties(ctx, answer(CCOK, 0x01, 0x22, 0, 0), Addr{})
		if !errors.Is(err, ErrNotPICMG) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("short response", func(t *testing.T) {
		_, err := GetSensorThresholds(ctx, answer(CCOK, 0x3f, 1, 2), Addr{}, 1)
		if !errors.Is(err, ErrShortResponse) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("transport error is wrapped", func(t *testing.T) {
		boom := errors.New("session lost")
		c := &fakeConn{handle: func(Addr, Request) (Response, error) { return Response{}, boom }}
		_, err := GetChassisStatus(ctx, c, Addr{Slave: 0x84})
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "IPMB 0x84") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad arguments are refused before sending", func(t *testing.T) {
		f := answer(CCOK, 0)
		for name, err := range map[string]error{
			"policy mask":   SetFRUActivationPolicy(ctx, f, Addr{}, 0, 0x04, ActivationPolicy{}),
			"power level":   SetPowerLevel(ctx, f, Addr{}, 0, 21, false),
			"fru control":   FRUControl(ctx, f, Addr{}, 0, FRUControlOption(9)),
			"chassis":       ChassisControl(ctx, f, Addr{}, ChassisAction(9)),
			"watchdog time": SetWatchdog(ctx, f, Addr{}, Watchdog{Initial: 2 * time.Hour}),
		} {
			if err == nil {
				t.Errorf("%s: no error", name)
			}
		}
		if len(f.sent) != 0 {
			t.Fatalf("sent %d requests", len(f.sent))
		}
	})
}

func TestLEDIDs(t *testing.T) {
	for _, tc := range []struct {
		p    LEDProperties
		want []uint8
	}{
		{LEDProperties{General: 3}, []uint8{0, 1}},
		{LEDProperties{General: 0x0f, AppSpecific: 2}, []uint8{0, 1, 2, 3, 4, 5}},
		{LEDProperties{General: 0x04, AppSpecific: 0xff}, []uint8{2}},
	} {
		if got := tc.p.LEDIDs(); !bytes.Equal(got, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestClearSEL(t *testing.T) {
	polls := 0
	f := &fakeConn{handle: func(to Addr, req Request) (Response, error) {
		switch req.Cmd {
		case CmdReserveSEL:
			return Response{Data: []byte{0x34, 0x12}}, nil
		case CmdClearSEL:
			if !bytes.Equal(req.Data[:5], []byte{0x34, 0x12, 'C', 'L', 'R'}) {
				return Response{Code: CCInvalidDataField}, nil
			}
			if req.Data[5] == 0xaa {
				return Response{Data: []byte{0}}, nil // erase in progress
			}
			polls++
			if polls < 3 {
				return Response{Data: []byte{0}}, nil
			}
			return Response{Data: []byte{1}}, nil
		}
		return Response{Code: CCInvalidCommand}, nil
	}}
	if err := ClearSEL(context.Background(), f, Addr{}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if polls != 3 {
		t.Fatalf("polled %d times, want until completion (3)", polls)
	}
	if f.sent[1].Req.ReadOnly || !f.sent[2].Req.ReadOnly {
		t.Fatal("initiate must not be read-only, status polls must be")
	}
	// A controller that never completes is abandoned when ctx ends.
	polls = -1 << 30
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ClearSEL(ctx, f, Addr{}, time.Millisecond); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
