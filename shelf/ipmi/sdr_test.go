package ipmi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	gotypes "github.com/bougou/go-ipmi/pkg/types"
)

// labSDRs splits the main SDR repository of the lab shelf, dumped from
// ipmi_sim with "ipmitool sdr dump", into records.
func labSDRs(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile("testdata/lab-main.sdr")
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	for len(b) >= SDRHeaderLen {
		n := SDRHeaderLen + int(b[4])
		recs = append(recs, b[:n])
		b = b[n:]
	}
	return recs
}

func TestParseSDRLab(t *testing.T) {
	// Values from "ipmitool sdr elist all" and "ipmitool sensor get" on the
	// same simulator.
	want := map[string]struct {
		typ      SDRType
		owner    uint8
		number   uint8
		entity   string
		reading  uint8   // a raw reading
		real     float64 // its value as ipmitool prints it
		unit     string
		ucr, lcr float64 // ipmitool's thresholds (0 = na)
		hyst     float64
	}{
		"B1 +12V":     {SDRFullSensor, 0x82, 3, "160.96", 201, 12.06, "Volts", 13.2, 10.8, 0.06},
		"Feed A -48V": {SDRFullSensor, 0x20, 3, "240.96", 160, 48, "Volts", 60, 40.5, 0.3},
		"FT1 Fan1":    {SDRFullSensor, 0x72, 1, "30.96", 96, 4800, "RPM", 12000, 1500, 0},
		"Shelf Inlet": {SDRFullSensor, 0x20, 1, "240.96", 24, 24, "degrees C", 50, 0, 2},
		"B3 HotSwap":  {SDRCompactSensor, 0x86, 0, "160.96", 0, 0, "", 0, 0, 0},
		"B2 IPMC":     {SDRMCLocator, 0x84, 0, "160.96", 0, 0, "", 0, 0, 0},
	}
	found := 0
	for _, raw := range labSDRs(t) {
		r, err := ParseSDR(raw)
		if err != nil {
			t.Fatalf("record % x: %v", raw, err)
		}
		w, ok := want[r.Name()]
		if !ok {
			continue
		}
		found++
		t.Run(r.Name(), func(t *testing.T) {
			if r.Header.Type != w.typ {
				t.Fatalf("type %s, want %s", r.Header.Type, w.typ)
			}
			if r.MCLocator != nil {
				m := r.MCLocator
				if m.SlaveAddress != w.owner || fmt.Sprintf("%d.%d", m.EntityID, m.EntityInstance) != w.entity {
					t.Fatalf("MC locator %+v", m)
				}
				return
			}
			s := r.Sensor
			if s.OwnerID != w.owner || s.Number != w.number || fmt.Sprintf("%d.%d", s.EntityID, s.EntityInstance) != w.entity {
				t.Fatalf("owner 0x%02x number %d entity %d.%d", s.OwnerID, s.Number, s.EntityID, s.EntityInstance)
			}
			if s.Type != SDRFullSensor {
				if s.SensorType != 0xf0 || s.EventReadingType != 0x6f {
					t.Fatalf("hot-swap sensor type 0x%02x/0x%02x", s.SensorType, s.EventReadingType)
				}
				return
			}
			if got := s.Units.String(); got != w.unit {
				t.Errorf("units %q, want %q", got, w.unit)
			}
			if v, err := s.Conv.Real(w.reading); err != nil || !near(v, w.real) {
				t.Errorf("reading 0x%02x = %v, %v; want %v", w.reading, v, err, w.real)
			}
			for th, wv := range map[Threshold]float64{UpperCritical: w.ucr, LowerCritical: w.lcr} {
				if wv == 0 {
					if s.Readable(th) {
						t.Errorf("%s readable, ipmitool says na", th)
					}
					continue
				}
				v, err := s.Conv.Real(s.Thresholds[th])
				if !s.Readable(th) || err != nil || !near(v, wv) {
					t.Errorf("%s = %v (%v, readable %t), want %v", th, v, err, s.Readable(th), wv)
				}
			}
			if w.hyst != 0 {
				if v, ok := s.Conv.Hysteresis(s.PosHysteresis); !ok || !near(v, w.hyst) {
					t.Errorf("hysteresis %v %t, want %v", v, ok, w.hyst)
				}
			}
		})
	}
	if found != len(want) {
		t.Fatalf("found %d of %d expected sensors in the dump", found, len(want))
	}
}

// TestParseSDRAgreesWithGoIPMI compares the fields of every lab record
// with go-ipmi's decoder, which is right for these record types.
func TestParseSDRAgreesWithGoIPMI(t *testing.T) {
	for _, raw := range labSDRs(t) {
		ours, err := ParseSDR(raw)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := gotypes.ParseSDR(raw, 0)
		if err != nil {
			t.Fatalf("go-ipmi: %v", err)
		}
		switch {
		case theirs.Full != nil:
			f, s := theirs.Full, ours.Sensor
			if f.M != s.Conv.M || f.B != s.Conv.B || f.R_Exp != s.Conv.RExp || f.B_Exp != s.Conv.BExp ||
				f.UCR_Raw != s.Thresholds[UpperCritical] || f.LNC_Raw != s.Thresholds[LowerNonCritical] ||
				uint8(f.SensorNumber) != s.Number || uint8(f.SensorEntityID) != s.EntityID ||
				uint8(f.SensorUnit.BaseUnit) != s.Units.Base || string(f.IDStringBytes) != s.Name() ||
				f.PositiveHysteresisRaw != s.PosHysteresis || f.Accuracy != s.Conv.Accuracy {
				t.Errorf("record %d differs:\nours %+v\ngo-ipmi %+v", ours.Header.RecordID, s, f)
			}
		case theirs.Compact != nil:
			c, s := theirs.Compact, ours.Sensor
			if uint8(c.SensorNumber) != s.Number || string(c.IDStringBytes) != s.Name() || c.ShareCount != s.Share.Count {
				t.Errorf("record %d differs:\nours %+v\ngo-ipmi %+v", ours.Header.RecordID, s, c)
			}
		case theirs.MgmtControllerDeviceLocator != nil:
			m := theirs.MgmtControllerDeviceLocator
			if m.DeviceSlaveAddress != ours.MCLocator.SlaveAddress || string(m.DeviceIDBytes) != ours.Name() {
				t.Errorf("record %d differs:\nours %+v\ngo-ipmi %+v", ours.Header.RecordID, ours.MCLocator, m)
			}
		}
	}
}

func TestSDRMarshalRoundTrip(t *testing.T) {
	for _, raw := range labSDRs(t) {
		r, err := ParseSDR(raw)
		if err != nil {
			t.Fatal(err)
		}
		var again []byte
		switch {
		case r.Sensor != nil:
			again = r.Sensor.Marshal(r.Header.RecordID)
		case r.MCLocator != nil:
			again = r.MCLocator.Marshal(r.Header.RecordID)
		case r.FRULocator != nil:
			again = r.FRULocator.Marshal(r.Header.RecordID)
		}
		if !bytes.Equal(again, raw) {
			t.Errorf("record %d:\n got % x\nwant % x", r.Header.RecordID, again, raw)
		}
	}
}

func TestSharedSensorNames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		share Sharing
		want  []SharedSensor
	}{
		{"numeric from offset 1", Sharing{Count: 3, ModifierOffset: 1, InstanceIncrement: true},
			[]SharedSensor{{4, 1, "CPU1"}, {5, 2, "CPU2"}, {6, 3, "CPU3"}}},
		{"alpha, same instance", Sharing{Count: 2, AlphaModifier: true, ModifierOffset: 25},
			[]SharedSensor{{4, 1, "CPUZ"}, {5, 1, "CPUAA"}}},
		{"count 1 is not shared", Sharing{Count: 1, ModifierOffset: 1},
			[]SharedSensor{{4, 1, "CPU"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &SensorRecord{Type: SDRCompactSensor, Number: 4, EntityInstance: 1, ID: Text8("CPU"), Share: tc.share}
			got := s.Shared()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Shared() = %v, want %v", got, tc.want)
			}
			// The record survives its own encoding.
			r, err := ParseSDR(s.Marshal(7))
			if err != nil || fmt.Sprint(r.Sensor.Shared()) != fmt.Sprint(tc.want) {
				t.Fatalf("after round trip: %v, %v", r.Sensor, err)
			}
		})
	}
}

func TestParseSDRFRULocatorAndEventOnly(t *testing.T) {
	f := &FRULocatorRecord{AccessAddress: 0x82, FRUDeviceID: 1, Logical: true, AccessLUN: 0, Channel: 0,
		DeviceType: 0x10, EntityID: 0xc0, EntityInstance: 0x61, ID: Text8("RTM")}
	r, err := ParseSDR(f.Marshal(9))
	if err != nil || r.FRULocator == nil || r.Name() != "RTM" {
		t.Fatalf("FRU locator: %+v, %v", r.FRULocator, err)
	}
	if r.FRULocator.AccessAddress != 0x82 || r.FRULocator.FRUDeviceID != 1 || !r.FRULocator.Logical || r.FRULocator.EntityID != 0xc0 {
		t.Fatalf("FRU locator decoded as %+v", r.FRULocator)
	}
	e := &SensorRecord{Type: SDREventOnly, OwnerID: 0x20, Number: 9, EntityID: 7, EntityInstance: 1,
		SensorType: 0x12, EventReadingType: 0x6f, ID: TLString{Type: String6Bit, Raw: []byte{0x29, 0xdc, 0xa6}}}
	r, err = ParseSDR(e.Marshal(3))
	if err != nil || r.Sensor == nil || r.Sensor.SensorType != 0x12 || r.Sensor.Analog() {
		t.Fatalf("event-only: %+v, %v", r.Sensor, err)
	}
	if got := r.Name(); got != "IPMI" {
		t.Fatalf("6-bit name %q, want IPMI", got)
	}
}

func TestParseSDRRejects(t *testing.T) {
	full := labSDRs(t)[2]
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"header only part", full[:4]},
		{"body shorter than announced", full[:len(full)-1]},
		{"full record too short for its type", withHeader(1, SDRFullSensor, make([]byte, 20))},
		{"id string longer than record", append([]byte(nil), full[:51]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			if tc.name == "id string longer than record" {
				b[4] = byte(len(b) - SDRHeaderLen)
			}
			if _, err := ParseSDR(b); !errors.Is(err, ErrShortResponse) {
				t.Fatalf("err = %v, want ErrShortResponse", err)
			}
		})
	}
}

// repoFake serves an SDR repository over Get SDR / Get Device SDR with
// configurable misbehaviour.
type repoFake struct {
	recs        [][]byte
	device      bool
	noReserve   bool // answer Reserve with 0xC1
	maxRead     int  // answer 0xCA above this many bytes (0 = no limit)
	cancelAfter int  // cancel the reservation after this many reads (0 = never)
	reads       int
	res         uint16
}

func (f *repoFake) conn() *fakeConn {
	return &fakeConn{handle: func(to Addr, req Request) (Response, error) {
		netfn, reserveCmd, getCmd := MainSDR.cmds()
		if f.device {
			netfn, reserveCmd, getCmd = DeviceSDR.cmds()
		}
		if req.NetFn != netfn {
			return Response{Code: CCInvalidCommand}, nil
		}
		switch req.Cmd {
		case reserveCmd:
			if f.noReserve {
				return Response{Code: CCInvalidCommand}, nil
			}
			f.res++
			return Response{Data: put16(f.res)}, nil
		case getCmd:
			d := req.Data
			if len(d) != 6 {
				return Response{Code: CCRequestDataLength}, nil
			}
			if !f.noReserve && le16(d) != f.res {
				return Response{Code: CCReservationInvalid}, nil
			}
			f.reads++
			if f.cancelAfter > 0 && f.reads%f.cancelAfter == 0 {
				f.res++ // someone else reserved
			}
			id, off, n := int(le16(d[2:])), int(d[4]), int(d[5])
			if id == 0 {
				id = 1
			}
			if id > len(f.recs) {
				return Response{Code: CCNotPresent}, nil
			}
			rec := f.recs[id-1]
			if f.maxRead > 0 && n > f.maxRead {
				return Response{Code: CCCannotReturnBytes}, nil
			}
			if off > len(rec) {
				return Response{Code: CCParameterOutOfRange}, nil
			}
			next := uint16(id + 1)
			if id == len(f.recs) {
				next = LastRecordID
			}
			return Response{Data: append(put16(next), rec[off:min(len(rec), off+n)]...)}, nil
		}
		return Response{Code: CCInvalidCommand}, nil
	}}
}

func TestReadSDRRepository(t *testing.T) {
	lab := labSDRs(t)
	for _, tc := range []struct {
		name string
		f    repoFake
	}{
		{"main repository", repoFake{}},
		{"device SDRs without reservation (ipmi_sim IPMC)", repoFake{device: true, noReserve: true}},
		{"chunk shrinks on 0xCA", repoFake{maxRead: 7}},
		{"reservation cancelled now and then", repoFake{cancelAfter: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.recs = lab
			repo := MainSDR
			if f.device {
				repo = DeviceSDR
			}
			got, err := ReadSDRRepository(context.Background(), f.conn(), Addr{Slave: 0x82}, repo)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(lab) {
				t.Fatalf("read %d records, want %d", len(got), len(lab))
			}
			for i := range got {
				if !bytes.Equal(got[i].Raw, lab[i]) {
					t.Fatalf("record %d:\n got % x\nwant % x", i, got[i].Raw, lab[i])
				}
			}
		})
	}
}

func TestReadSDRRepositoryFailures(t *testing.T) {
	lab := labSDRs(t)
	t.Run("reservation always cancelled", func(t *testing.T) {
		f := repoFake{recs: lab, cancelAfter: 1}
		_, err := ReadSDRRepository(context.Background(), f.conn(), Addr{}, MainSDR)
		if code, ok := CodeOf(err); !ok || code != CCReservationInvalid {
			t.Fatalf("err = %v, want reservation cancelled", err)
		}
	})
	t.Run("record chain loops", func(t *testing.T) {
		rec := lab[0]
		c := &fakeConn{handle: func(to Addr, req Request) (Response, error) {
			if req.Cmd == CmdReserveSDRRepository {
				return Response{Data: []byte{1, 0}}, nil
			}
			off, n := int(req.Data[4]), int(req.Data[5])
			return Response{Data: append([]byte{0, 0}, rec[off:min(len(rec), off+n)]...)}, nil
		}}
		if _, err := ReadSDRRepository(context.Background(), c, Addr{}, MainSDR); err == nil {
			t.Fatal("no error for a looping chain")
		}
	})
	t.Run("not supported says so", func(t *testing.T) {
		_, err := ReadSDRRepository(context.Background(), answer(CCInvalidCommand), Addr{}, MainSDR)
		if !errors.Is(err, ErrNotSupported) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestGetSDRRepositoryInfo(t *testing.T) {
	f := answer(CCOK, hexb(t, "51 24 00 00 00 ff ff ff ff ff ff ff ff 02")...)
	i, err := GetSDRRepositoryInfo(context.Background(), f, Addr{})
	if err != nil {
		t.Fatal(err)
	}
	wantReq(t, f, NetFnStorage, CmdGetSDRRepositoryInfo, nil, true)
	if i.Version != 0x51 || i.RecordCount != 36 || !i.LastAddition.IsZero() || i.Support != 2 {
		t.Fatalf("%+v", i)
	}
	if got := i.Marshal(); !bytes.Equal(got, hexb(t, "51 24 00 00 00 ff ff ff ff ff ff ff ff 02")) {
		t.Fatalf("Marshal % x", got)
	}
}

func TestGetDeviceSDRInfo(t *testing.T) {
	f := answer(CCOK, 0x05, 0x01)
	i, err := GetDeviceSDRInfo(context.Background(), f, Addr{Slave: 0x82})
	if err != nil {
		t.Fatal(err)
	}
	wantReq(t, f, NetFnSensor, CmdGetDeviceSDRInfo, []byte{1}, true)
	if i.Count != 5 || i.Dynamic || i.LUNs != 1 {
		t.Fatalf("%+v", i)
	}
}

func TestThresholdsFromReal(t *testing.T) {
	var plus12 *SensorRecord
	for _, raw := range labSDRs(t) {
		r, err := ParseSDR(raw)
		if err != nil {
			t.Fatal(err)
		}
		if r.Name() == "B1 +12V" {
			plus12 = r.Sensor
		}
	}
	if plus12 == nil {
		t.Fatal("B1 +12V not in the lab SDRs")
	}
	th, err := plus12.ThresholdsFromReal(map[Threshold]float64{UpperNonCritical: 12.5, LowerCritical: 10.8})
	if err != nil {
		t.Fatal(err)
	}
	want := Thresholds{}.With(UpperNonCritical, 208).With(LowerCritical, 180) // 12.48 V (nearest), 10.80 V
	if th != want {
		t.Fatalf("got %+v, want %+v", th, want)
	}
	back := plus12.ThresholdsReal(th)
	if len(back) != 2 || !near(back[UpperNonCritical], 12.48) || !near(back[LowerCritical], 10.8) {
		t.Fatalf("ThresholdsReal = %v", back)
	}
	for name, vals := range map[string]map[Threshold]float64{
		"out of range": {UpperCritical: 99},
		"not settable": {UpperNonCritical: 12.5, Threshold(9): 1},
	} {
		if _, err := plus12.ThresholdsFromReal(vals); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	ro := *plus12
	ro.ReadingMask &^= 1 << (8 + UpperCritical)
	if _, err := ro.ThresholdsFromReal(map[Threshold]float64{UpperCritical: 13}); err == nil {
		t.Error("threshold not settable in the SDR was accepted")
	}
}

func TestGetDeviceSDRInfoWithoutOperationByte(t *testing.T) {
	f := &fakeConn{handle: func(to Addr, req Request) (Response, error) {
		if len(req.Data) != 0 {
			return Response{Code: CCRequestDataLength}, nil
		}
		return Response{Data: []byte{4, 0x81, 1, 0, 0, 0}}, nil
	}}
	i, err := GetDeviceSDRInfo(context.Background(), f, Addr{Slave: 0x9a})
	if err != nil {
		t.Fatal(err)
	}
	if i.Count != 4 || !i.Dynamic || i.Change != 1 || len(f.sent) != 2 {
		t.Fatalf("%+v after %d requests", i, len(f.sent))
	}
}
