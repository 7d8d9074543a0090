package sim

import (
	"time"

	"hpiagent/shelf/ipmi"
)

// fruArea finishes a FRU info area: end marker, padding to a multiple of 8
// and the zero checksum; b[1] gets the length in 8-byte units.
func fruArea(b []byte) []byte {
	b = append(b, 0xC1)
	for (len(b)+1)%8 != 0 {
		b = append(b, 0)
	}
	b[1] = byte((len(b) + 1) / 8)
	return append(b, ipmi.Checksum(b))
}

func fruField(s string) []byte {
	if len(s) > 63 {
		s = s[:63]
	}
	return append([]byte{0xC0 | byte(len(s))}, s...)
}

// buildFRU builds a FRU inventory image (IPMI Platform Management FRU
// Information Storage Definition v1.0) with a board and a product area.
func buildFRU(name, manufacturer, part, serial string, mfgDate time.Time) []byte {
	mins := uint32(mfgDate.Sub(time.Date(1996, 1, 1, 0, 0, 0, 0, time.UTC)) / time.Minute)
	board := []byte{0x01, 0, 0x19, byte(mins), byte(mins >> 8), byte(mins >> 16)}
	for _, f := range []string{manufacturer, name, serial, part, "sim-fru"} {
		board = append(board, fruField(f)...)
	}
	board = fruArea(board)
	product := []byte{0x01, 0, 0x19}
	for _, f := range []string{manufacturer, name, part, "1.0", serial, "", "sim-fru"} {
		product = append(product, fruField(f)...)
	}
	product = fruArea(product)
	hdr := []byte{0x01, 0x00, 0x00, 0x01, byte(1 + len(board)/8), 0x00, 0x00}
	hdr = append(hdr, ipmi.Checksum(hdr))
	img := append(hdr, board...)
	return append(img, product...)
}
