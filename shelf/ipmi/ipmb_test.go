package ipmi

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	// Get Device ID from a remote console to the BMC, as ipmitool sends it.
	f := Frame{DstAddr: 0x20, NetFn: NetFnApp, SrcAddr: 0x81, Seq: 5, Cmd: 0x01}
	b := f.Marshal()
	want := []byte{0x20, 0x18, 0xc8, 0x81, 0x14, 0x01, 0x6a}
	if !bytes.Equal(b, want) {
		t.Fatalf("Marshal = % x, want % x", b, want)
	}
	g, err := ParseFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if g.DstAddr != f.DstAddr || g.NetFn != f.NetFn || g.SrcAddr != f.SrcAddr || g.Seq != f.Seq || g.Cmd != f.Cmd || len(g.Data) != 0 {
		t.Fatalf("ParseFrame = %+v, want %+v", g, f)
	}
}

func TestParseFrameRejects(t *testing.T) {
	good := Frame{DstAddr: 0x82, NetFn: NetFnSensor, SrcAddr: 0x20, Seq: 63, SrcLUN: 2, Cmd: 0x2d, Data: []byte{3}}.Marshal()
	for _, tc := range []struct {
		name string
		mut  func([]byte) []byte
		want error
	}{
		{"short", func(b []byte) []byte { return b[:6] }, ErrFrameShort},
		{"header checksum", func(b []byte) []byte { b[1] ^= 4; return b }, ErrFrameChecksum},
		{"data checksum", func(b []byte) []byte { b[6] ^= 1; return b }, ErrFrameChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mut(append([]byte(nil), good...))
			if _, err := ParseFrame(b); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add(Frame{DstAddr: 0x20, NetFn: NetFnApp, SrcAddr: 0x81, Cmd: 1}.Marshal())
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ParseFrame(b)
		if err != nil {
			return
		}
		// A frame that parses re-encodes to the same bytes.
		if got := fr.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("re-encode % x != input % x", got, b)
		}
	})
}
