package ipmi

import (
	"bytes"
	"context"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"
)

func TestParseSELRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    string
		want SELRecord
	}{
		// ipmi_sim, "ipmitool raw 0x0a 0x43 0 0 0 0 0 0xff" minus the next
		// record ID; ipmitool: "1 | Pre-Init |0000007828| FRU Hot Swap | Transition to M2 | Asserted".
		{"hot-swap event from blade, pre-init time", "01 00 02 94 1e 00 00 84 00 04 f0 00 6f a2 31 00",
			SELRecord{RecordID: 1, Type: 2, RawTime: 7828, Timestamp: time.Unix(7828, 0).UTC(), Generator: 0x0084,
				EvMRev: 4, SensorType: 0xf0, Sensor: 0, EventType: 0x6f, EventData: [3]uint8{0xa2, 0x31, 0}}},
		{"deassertion, software generator on channel 1 LUN 2", "10 00 02 00 00 00 70 41 12 04 01 05 81 57 aa bb",
			SELRecord{RecordID: 16, Type: 2, RawTime: 0x70000000, Timestamp: time.Unix(0x70000000, 0).UTC(), Generator: 0x1241,
				EvMRev: 4, SensorType: 1, Sensor: 5, Deassert: true, EventType: 1, EventData: [3]uint8{0x57, 0xaa, 0xbb}}},
		{"OEM timestamped", "02 00 c1 00 00 00 70 5a 31 00 01 02 03 04 05 06",
			SELRecord{RecordID: 2, Type: 0xc1, RawTime: 0x70000000, Timestamp: time.Unix(0x70000000, 0).UTC(),
				ManufacturerID: 0x315a, OEM: []byte{1, 2, 3, 4, 5, 6}}},
		{"OEM non-timestamped", "03 00 e0 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d",
			SELRecord{RecordID: 3, Type: 0xe0, OEM: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := hexb(t, tc.b)
			r, err := ParseSELRecord(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", r, tc.want)
			}
			if !bytes.Equal(r.Marshal(), b) {
				t.Fatalf("Marshal % x, want % x", r.Marshal(), b)
			}
		})
	}
	r, _ := ParseSELRecord(hexb(t, "01 00 02 94 1e 00 00 84 00 04 f0 00 6f a2 31 00"))
	if !r.PreInit() || r.GeneratorAddr() != 0x84 || r.Offset() != 2 {
		t.Fatalf("helpers: preinit %t gen 0x%02x offset %d", r.PreInit(), r.GeneratorAddr(), r.Offset())
	}
	if _, err := ParseSELRecord(make([]byte, 15)); !errors.Is(err, ErrShortResponse) {
		t.Fatalf("short record: %v", err)
	}
}

func TestReadSEL(t *testing.T) {
	recs := map[uint16][]byte{
		1: hexb(t, "01 00 02 94 1e 00 00 84 00 04 f0 00 6f a2 31 00"),
		5: hexb(t, "05 00 02 41 59 04 6b 84 00 04 f0 00 6f a3 12 00"),
	}
	next := map[uint16]uint16{0: 5, 1: 5, 5: LastRecordID}
	f := &fakeConn{handle: func(to Addr, req Request) (Response, error) {
		id := le16(req.Data[2:])
		if id == 0 {
			id = 1
		}
		if !req.ReadOnly || req.Data[5] != 0xff {
			return Response{Code: CCInvalidDataField}, nil
		}
		return Response{Data: append(put16(next[id]), recs[id]...)}, nil
	}}
	got, err := ReadSEL(context.Background(), f, Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].RecordID != 1 || got[1].RecordID != 5 || got[1].EventData[0] != 0xa3 {
		t.Fatalf("got %+v", got)
	}
	empty, err := ReadSEL(context.Background(), answer(CCNotPresent), Addr{})
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty SEL: %v, %v", empty, err)
	}
}

func TestParseFRULab(t *testing.T) {
	// Expected values as "ipmitool fru print" shows them on the lab shelf.
	for _, tc := range []struct {
		file                           string
		chassisPN, boardProd, boardSN  string
		prodName, prodVer, asset, date string
	}{
		{"testdata/lab-shmc.fru", "LAB-SHELF-14", "ShMC Board", "SM-0001", "Lab ATCA ShMC", "1.0", "asset-shmc", "Mon Jan 15 12:00:00 2024 UTC"},
		{"testdata/lab-blade-84.fru", "LAB-SHELF-14", "ATCA Blade 2", "BL-0002", "Lab Compute Blade", "2.2", "asset-blade2", "Mon Jan 15 12:00:00 2024 UTC"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseFRU(b)
			if err != nil {
				t.Fatal(err)
			}
			if f.Chassis == nil || f.Board == nil || f.Product == nil {
				t.Fatalf("areas missing: %+v", f)
			}
			if f.Chassis.Type != 0x17 || f.Chassis.PartNumber.Text() != tc.chassisPN {
				t.Errorf("chassis %+v", f.Chassis)
			}
			if f.Board.Product.Text() != tc.boardProd || f.Board.Serial.Text() != tc.boardSN || f.Board.Manufacturer.Text() != "LabSim" {
				t.Errorf("board %+v", f.Board)
			}
			if got := f.Board.MfgTime.Format("Mon Jan 2 15:04:05 2006 MST"); got != tc.date {
				t.Errorf("board date %q, want %q", got, tc.date)
			}
			if f.Product.Name.Text() != tc.prodName || f.Product.Version.Text() != tc.prodVer || f.Product.AssetTag.Text() != tc.asset {
				t.Errorf("product %+v", f.Product)
			}
			// Re-encoding gives an image that decodes the same.
			g, err := ParseFRU(f.Marshal())
			if err != nil || !reflect.DeepEqual(g.Product, f.Product) || !reflect.DeepEqual(g.Board, f.Board) {
				t.Fatalf("round trip: %v\n%+v\n%+v", err, g.Board, f.Board)
			}
		})
	}
}

func TestParseFRURejects(t *testing.T) {
	good, err := os.ReadFile("testdata/lab-shmc.fru")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mut  func(b []byte) []byte
		want error
	}{
		{"header checksum", func(b []byte) []byte { b[7]++; return b }, ErrMalformed},
		{"header version", func(b []byte) []byte { b[0], b[7] = 2, b[7]-1; return b }, ErrMalformed},
		{"board area checksum", func(b []byte) []byte { b[int(b[3])*8+8]++; return b }, ErrMalformed},
		{"truncated image", func(b []byte) []byte { return b[:int(b[4])*8+4] }, ErrShortResponse},
		{"short header", func(b []byte) []byte { return b[:5] }, ErrShortResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseFRU(tc.mut(append([]byte(nil), good...))); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTypeLengthStrings(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    TLString
		want string
	}{
		{"8-bit", TLString{String8Bit, []byte("LabSim")}, "LabSim"},
		{"8-bit NUL padded", TLString{String8Bit, []byte("ab\x00\x00")}, "ab"},
		{"BCD plus", TLString{StringBCDPlus, []byte{0x12, 0xab, 0xc9}}, "12 -.9"},
		{"6-bit ASCII", TLString{String6Bit, []byte{0x29, 0xdc, 0xa6}}, "IPMI"},
		{"6-bit ASCII partial group", TLString{String6Bit, []byte{0x29, 0xdc}}, "IP"},
		{"binary", TLString{StringBinary, []byte{0xde, 0xad}}, "dead"},
	} {
		if got := tc.s.Text(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestMultiRecords(t *testing.T) {
	recs := []MultiRecord{
		{Type: 0xc0, Version: 2, Data: []byte{0x5a, 0x31, 0x00, 0x10, 0x00}},
		{Type: 0x01, Version: 2, Data: []byte{1, 2, 3}},
	}
	b := MarshalMultiRecords(recs)
	got, err := ParseMultiRecords(b, 0)
	if err != nil || !reflect.DeepEqual(got, recs) {
		t.Fatalf("got %+v, %v", got, err)
	}
	bad := append([]byte(nil), b...)
	bad[6]++ // data of the first record
	if _, err := ParseMultiRecords(bad, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("data checksum: %v", err)
	}
	f := FRU{Product: &ProductInfo{Name: Text8("x")}, MultiRecords: recs}
	g, err := ParseFRU(f.Marshal())
	if err != nil || !reflect.DeepEqual(g.MultiRecords, recs) {
		t.Fatalf("FRU with multi-records: %+v, %v", g.MultiRecords, err)
	}
}

// fruFake serves a FRU image with Read FRU Data, refusing reads larger
// than max with code.
func fruFake(img []byte, max int, code CompletionCode, words bool) *fakeConn {
	return &fakeConn{handle: func(to Addr, req Request) (Response, error) {
		switch req.Cmd {
		case CmdGetFRUInventoryAreaInfo:
			return Response{Data: FRUAreaInfo{Size: uint16(len(img)), ByWords: words}.Marshal()}, nil
		case CmdReadFRUData:
			unit := 1
			if words {
				unit = 2
			}
			off, n := int(le16(req.Data[1:]))*unit, int(req.Data[3])*unit
			if n > max {
				return Response{Code: code}, nil
			}
			end := min(len(img), off+n)
			return Response{Data: append([]byte{byte((end - off) / unit)}, img[off:end]...)}, nil
		}
		return Response{Code: CCInvalidCommand}, nil
	}}
}

func TestReadFRU(t *testing.T) {
	img, err := os.ReadFile("testdata/lab-blade-84.fru")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		max   int
		code  CompletionCode
		words bool
	}{
		{"no limit", 1000, 0, false},
		{"shrinks on 0xC7", 5, CCRequestDataLength, false},
		{"shrinks on 0xCA", 9, CCCannotReturnBytes, false},
		{"word access", 1000, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadFRU(context.Background(), fruFake(img, tc.max, tc.code, tc.words), Addr{Slave: 0x84}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, img) {
				t.Fatalf("read % x\nwant % x", got, img)
			}
		})
	}
	t.Run("gives up at one byte", func(t *testing.T) {
		_, err := ReadFRU(context.Background(), fruFake(img, 0, CCCannotReturnBytes, false), Addr{}, 0)
		if code, ok := CodeOf(err); !ok || code != CCCannotReturnBytes {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestFRUUnicodeFields(t *testing.T) {
	// Language 0x29 (not English): type 3 fields are 2-byte Unicode, LSB first.
	name := TLString{Type: StringUnicode, Raw: []byte{'B', 0, 0x6b, 0x30, 0, 0}} // "B", HIRAGANA KA, NUL pad
	f := FRU{Product: &ProductInfo{Language: 0x29, Name: name, Manufacturer: Text8("x")}}
	g, err := ParseFRU(f.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if g.Product.Name.Type != StringUnicode || g.Product.Name.Text() != "B\u306b" {
		t.Fatalf("name %v %q", g.Product.Name.Type, g.Product.Name.Text())
	}
	// The same bytes in an English area are Latin 1.
	f.Product.Language = 0
	f.Product.Name.Type = String8Bit
	g, err = ParseFRU(f.Marshal())
	if err != nil || g.Product.Name.Type != String8Bit || g.Product.Name.Text() != "B" {
		t.Fatalf("english: %v %q %v", g.Product.Name.Type, g.Product.Name.Text(), err)
	}
}

func TestFRUOneCharacterField(t *testing.T) {
	// 0xC1 (8-bit, length 1) is the end-of-fields marker, so a one-letter
	// field must be encoded differently and still read back.
	f := FRU{Board: &BoardInfo{Manufacturer: Text8("x"), Product: Text8("y2")}}
	g, err := ParseFRU(f.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if g.Board.Manufacturer.Text() != "x" || g.Board.Product.Text() != "y2" {
		t.Fatalf("board %+v", g.Board)
	}
}
