package ipmi

import (
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf16"
)

// StringType is the type of a type/length-coded string (bits 7:6 of the
// type/length byte; Platform Management FRU Information Storage Definition
// §13, IPMI 2.0 §43.15).
type StringType uint8

// String encodings.
const (
	StringBinary  StringType = 0 // binary or unspecified
	StringBCDPlus StringType = 1
	String6Bit    StringType = 2 // 6-bit ASCII, packed
	String8Bit    StringType = 3 // 8-bit ASCII + Latin 1 (language English) or text
	// StringUnicode is type 3 in a board or product area whose language
	// code is not English: 2-byte Unicode, least significant byte first.
	// It is encoded as type 3 on the wire.
	StringUnicode StringType = 4
)

func (t StringType) String() string {
	switch t {
	case StringBinary:
		return "binary"
	case StringBCDPlus:
		return "BCD plus"
	case String6Bit:
		return "6-bit ASCII"
	case StringUnicode:
		return "Unicode"
	default:
		return "8-bit ASCII"
	}
}

// TLString is one type/length-coded string: its encoding and raw bytes.
type TLString struct {
	Type StringType
	Raw  []byte
}

const bcdPlus = "0123456789 -.:,_"

// Text decodes s to text: BCD plus and 6-bit ASCII are unpacked, 8-bit
// bytes are Latin 1, binary is rendered as hex.
func (s TLString) Text() string {
	switch s.Type {
	case StringBinary:
		return hex.EncodeToString(s.Raw)
	case StringBCDPlus:
		var sb strings.Builder
		for _, c := range s.Raw {
			sb.WriteByte(bcdPlus[c>>4])
			sb.WriteByte(bcdPlus[c&0x0f])
		}
		return sb.String()
	case String6Bit:
		return unpack6Bit(s.Raw)
	case StringUnicode:
		u := make([]uint16, 0, len(s.Raw)/2)
		for i := 0; i+1 < len(s.Raw); i += 2 {
			u = append(u, uint16(s.Raw[i])|uint16(s.Raw[i+1])<<8)
		}
		return strings.TrimRight(string(utf16.Decode(u)), "\x00")
	default:
		r := make([]rune, 0, len(s.Raw))
		for _, c := range s.Raw {
			if c == 0 {
				break // some controllers NUL-terminate inside the length
			}
			r = append(r, rune(c))
		}
		return string(r)
	}
}

func (s TLString) String() string { return s.Text() }

// unpack6Bit unpacks 6-bit ASCII: four characters (0x20 + value) in
// every three bytes, least significant bits first.
func unpack6Bit(b []byte) string {
	var sb strings.Builder
	n := len(b) * 8 / 6
	for i := 0; i < n; i++ {
		bitpos := i * 6
		byteIdx, shift := bitpos/8, uint(bitpos%8)
		v := uint16(b[byteIdx]) >> shift
		if shift > 2 && byteIdx+1 < len(b) {
			v |= uint16(b[byteIdx+1]) << (8 - shift)
		}
		sb.WriteByte(byte(v&0x3f) + 0x20)
	}
	return sb.String()
}

// TypeLength returns the type/length byte that introduces s.
func (s TLString) TypeLength() byte {
	t := s.Type
	if t == StringUnicode {
		t = String8Bit
	}
	return byte(t&3)<<6 | byte(len(s.Raw)&0x3f)
}

// Marshal encodes s as type/length byte plus bytes. Raw must be at most 63 bytes.
func (s TLString) Marshal() []byte {
	return append([]byte{s.TypeLength()}, s.Raw...)
}

// Text8 makes an 8-bit ASCII type/length string from text (truncated to 63 bytes).
func Text8(text string) TLString {
	b := []byte(text)
	if len(b) > 63 {
		b = b[:63]
	}
	return TLString{Type: String8Bit, Raw: b}
}

// parseTL decodes one type/length-coded string at the start of b and
// returns it and the number of bytes used.
func parseTL(b []byte, what string) (TLString, int, error) {
	if len(b) < 1 {
		return TLString{}, 0, short(what, 0, 1)
	}
	tl := b[0]
	n := int(tl & 0x3f)
	if len(b) < 1+n {
		return TLString{}, 0, fmt.Errorf("%s: %w: type/length 0x%02x announces %d bytes, %d present", what, ErrShortResponse, tl, n, len(b)-1)
	}
	return TLString{Type: StringType(tl >> 6), Raw: append([]byte(nil), b[1:1+n]...)}, 1 + n, nil
}
