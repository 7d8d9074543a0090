package ipmi

import (
	"bytes"
	"context"
	"math"
	"os"
	"reflect"
	"testing"
)

func FuzzParseSDR(f *testing.F) {
	for _, r := range labSDRs(f) {
		f.Add(r)
	}
	f.Add((&FRULocatorRecord{AccessAddress: 0x82, FRUDeviceID: 1, Logical: true, ID: Text8("RTM")}).Marshal(1))
	f.Add((&SensorRecord{Type: SDREventOnly, Number: 3, Share: Sharing{Count: 4, AlphaModifier: true}, ID: TLString{String6Bit, []byte{0x29, 0xdc, 0xa6}}}).Marshal(2))
	f.Add([]byte{0, 0, 0x51, 0x01, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseSDR(b)
		if err != nil {
			return
		}
		_ = r.Name()
		var again []byte
		switch {
		case r.Sensor != nil:
			s := r.Sensor
			for _, sh := range s.Shared() {
				_ = sh.Name
			}
			for raw := 0; raw < 256; raw += 17 {
				_, _ = s.Conv.Real(uint8(raw))
				_, _ = s.Conv.Hysteresis(uint8(raw))
			}
			_ = s.Units.String()
			again = s.Marshal(r.Header.RecordID)
		case r.FRULocator != nil:
			again = r.FRULocator.Marshal(r.Header.RecordID)
		case r.MCLocator != nil:
			again = r.MCLocator.Marshal(r.Header.RecordID)
		default:
			return
		}
		// What decodes, re-encodes to a record that decodes the same.
		r2, err := ParseSDR(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v\n% x", err, again)
		}
		if !reflect.DeepEqual(r2.Sensor, r.Sensor) || !reflect.DeepEqual(r2.FRULocator, r.FRULocator) || !reflect.DeepEqual(r2.MCLocator, r.MCLocator) {
			t.Fatalf("round trip differs:\n%+v\n%+v", r, r2)
		}
	})
}

func FuzzParseFRU(f *testing.F) {
	for _, p := range []string{"testdata/lab-shmc.fru", "testdata/lab-blade-84.fru"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(FRU{Chassis: &ChassisInfo{Type: 1, Serial: TLString{StringBCDPlus, []byte{0x12}}},
		MultiRecords: []MultiRecord{{Type: 0xc0, Version: 2, Data: []byte{0x5a, 0x31, 0}}}}.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ParseFRU(b)
		if err != nil {
			return
		}
		if fr.Product != nil {
			_ = fr.Product.Name.Text()
		}
		img := fr.Marshal()
		if len(img) > 255*8 {
			return // offsets no longer fit the common header
		}
		g, err := ParseFRU(img)
		if err != nil {
			t.Fatalf("re-encoded image does not decode: %v", err)
		}
		if !reflect.DeepEqual(g.Chassis, fr.Chassis) || !reflect.DeepEqual(g.Board, fr.Board) ||
			!reflect.DeepEqual(g.Product, fr.Product) || !reflect.DeepEqual(g.MultiRecords, fr.MultiRecords) {
			t.Fatalf("round trip differs:\n%+v\n%+v", fr, g)
		}
	})
}

func FuzzParseSELRecord(f *testing.F) {
	f.Add([]byte{0x01, 0x00, 0x02, 0x94, 0x1e, 0x00, 0x00, 0x84, 0x00, 0x04, 0xf0, 0x00, 0x6f, 0xa2, 0x31, 0x00})
	f.Add([]byte{0x02, 0x00, 0xc1, 0, 0, 0, 0x70, 0x5a, 0x31, 0, 1, 2, 3, 4, 5, 6})
	f.Add([]byte{0x03, 0x00, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseSELRecord(b)
		if err != nil {
			if len(b) >= SELRecordLen {
				t.Fatalf("16 bytes or more must decode: %v", err)
			}
			return
		}
		_ = r.String()
		if got := r.Marshal(); !bytes.Equal(got, b[:SELRecordLen]) {
			t.Fatalf("re-encode % x != % x", got, b[:SELRecordLen])
		}
	})
}

func FuzzConversion(f *testing.F) {
	f.Add(uint8(0), uint8(0x70), uint16(6), uint16(0), uint8(0xe0), uint8(201), 12.06)
	f.Add(uint8(2), uint8(0x05), uint16(0x3fe), uint16(0x200), uint8(0x1f), uint8(0x80), -3.5)
	f.Add(uint8(1), uint8(0x07), uint16(1), uint16(5), uint8(0x81), uint8(0xff), 0.0)
	f.Fuzz(func(t *testing.T, format, lin uint8, m, b uint16, exps, raw uint8, v float64) {
		c := Conversion{Format: AnalogFormat(format & 3), Linearization: Linearization(lin & 0x7f),
			M: signExtend(m, 10), B: signExtend(b, 10), RExp: int8(signExtend(uint16(exps>>4), 4)), BExp: int8(signExtend(uint16(exps&15), 4))}
		y, err := c.Real(raw)
		if err == nil && (math.IsNaN(y) || math.IsInf(y, 0)) {
			t.Fatalf("Real gave %v without an error", y)
		}
		if h, ok := c.Hysteresis(raw); ok && (h < 0 || math.IsNaN(h)) {
			t.Fatalf("Hysteresis = %v", h)
		}
		if err == nil {
			back, err := c.Raw(y)
			if err != nil {
				t.Fatalf("Raw(Real(%d) = %v): %v", raw, y, err)
			}
			if y2, _ := c.Real(back); y2 != y {
				t.Fatalf("Raw(%v) = %d, which reads %v", y, back, y2)
			}
		}
		_, _ = c.Raw(v)
	})
}

// responseDecoders are every decoder of response data, indexed for the fuzzer.
var responseDecoders = []func([]byte) (any, error){
	func(b []byte) (any, error) { return ParseDeviceID(b) },
	func(b []byte) (any, error) { return ParseWatchdog(b) },
	func(b []byte) (any, error) { return ParseSensorReading(b) },
	func(b []byte) (any, error) { return ParseThresholds(b) },
	func(b []byte) (any, error) { return ParseHysteresis(b) },
	func(b []byte) (any, error) { return ParseEventEnable(b) },
	func(b []byte) (any, error) { return ParseSDRRepositoryInfo(b) },
	func(b []byte) (any, error) { return ParseDeviceSDRInfo(b) },
	func(b []byte) (any, error) { return ParseSELInfo(b) },
	func(b []byte) (any, error) { return ParseFRUAreaInfo(b) },
	func(b []byte) (any, error) { return ParseChassisStatus(b) },
	func(b []byte) (any, error) { return ParsePICMGProperties(b) },
	func(b []byte) (any, error) { return ParseAddressInfo(b) },
	func(b []byte) (any, error) { return ParseFRUControlCaps(b) },
	func(b []byte) (any, error) { return ParseLEDProperties(b) },
	func(b []byte) (any, error) { return ParseLEDColorCaps(b) },
	func(b []byte) (any, error) { return ParseLEDState(b) },
	func(b []byte) (any, error) { return ParseActivationPolicy(b) },
	func(b []byte) (any, error) { return ParseRecordID(b) },
	func(b []byte) (any, error) { return ParsePowerLevel(b) },
	func(b []byte) (any, error) { return ParseSDRHeader(b) },
}

func FuzzResponseDecoders(f *testing.F) {
	// Real ipmi_sim answers, one per decoder (index first).
	for i, s := range []string{
		"00 01 01 10 02 9f 5a 31 00 01 00 00 00 00 00", "00 00 00 00 00 00", "c9 c0 00 00", "3f be b4 aa d2 dc e6",
		"01 01", "c0 95 7a 95 7a", "51 24 00 00 00 ff ff ff ff ff ff ff ff 02", "06 01",
		"51 0c 00 c0 3d 41 59 04 6b 00 00 00 00 0a", "00 01 00", "01 00 00", "00 22 00 00",
		"00 10 20 ff 00 01 03", "00 0e", "00 03 00", "00 02 01 01", "00 01 00 00 01", "00 02", "00 0c 00",
		"00 81 05 0a 14 28 3c", "01 00 51 12 0f",
	} {
		f.Add(uint8(i), hexb(f, s))
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		dec := responseDecoders[int(which)%len(responseDecoders)]
		v, err := dec(b)
		if err != nil {
			return
		}
		// What decodes and can be encoded decodes the same after encoding.
		m, ok := v.(interface{ Marshal() []byte })
		if !ok {
			return
		}
		v2, err := dec(m.Marshal())
		if err != nil {
			t.Fatalf("%T: re-encoded response does not decode: %v", v, err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("%T round trip:\n%+v\n%+v", v, v, v2)
		}
	})
}

// FuzzSDRReader feeds the repository reader arbitrary answers: it must
// end (no endless loop) with records or an error, never panic.
func FuzzSDRReader(f *testing.F) {
	f.Add([]byte{0xff, 0xff, 0x01, 0x00, 0x51, 0x12, 0x02, 0xaa, 0xbb}, uint8(0))
	f.Add([]byte{0x00, 0x00, 0x01, 0x00, 0x51, 0x12, 0x10}, uint8(0xca))
	f.Add([]byte{}, uint8(0xc5))
	f.Fuzz(func(t *testing.T, answer []byte, code uint8) {
		calls := 0
		c := &fakeConn{handle: func(to Addr, req Request) (Response, error) {
			calls++
			if calls > 10000 {
				t.Fatal("reader does not stop")
			}
			if calls%3 == 0 {
				return Response{Code: CompletionCode(code)}, nil
			}
			if req.Cmd == CmdGetSDR && len(req.Data) == 6 {
				off := int(req.Data[4])
				d := answer
				if len(d) > 2 && off < len(d)-2 {
					d = append(d[:2:2], d[2+off:]...)
				}
				return Response{Data: d}, nil
			}
			return Response{Data: answer}, nil
		}}
		_, _ = ReadSDRRepository(context.Background(), c, Addr{}, MainSDR)
	})
}
