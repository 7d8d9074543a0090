package pet

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// BER tags used by SNMP (RFC 3416, RFC 1157).
const (
	tagInteger     = 0x02
	tagOctetString = 0x04
	tagNull        = 0x05
	tagOID         = 0x06
	tagSequence    = 0x30
	tagIPAddress   = 0x40
	tagCounter32   = 0x41
	tagGauge32     = 0x42
	tagTimeTicks   = 0x43
	tagOpaque      = 0x44
	tagCounter64   = 0x46

	tagGetRequest     = 0xa0
	tagGetNextRequest = 0xa1
	tagResponse       = 0xa2
	tagSetRequest     = 0xa3
	tagTrapV1         = 0xa4
	tagGetBulk        = 0xa5
	tagInform         = 0xa6
	tagTrapV2         = 0xa7
	tagReport         = 0xa8
)

const (
	maxOIDLen = 128 // sub-identifiers (RFC 2578 §3.5)
)

// errBER marks every BER decoding failure.
var errBER = errors.New("malformed BER")

// tlv is one decoded BER element; val aliases the input.
type tlv struct {
	tag byte
	val []byte
}

// berReader walks a BER encoded buffer. It never copies; every returned
// slice aliases the input.
type berReader struct {
	b []byte
}

func (r *berReader) empty() bool { return len(r.b) == 0 }

// next reads one element of any tag. Only the low-tag-number form and
// definite lengths of up to 4 length bytes are accepted (SNMP uses
// nothing else).
func (r *berReader) next() (tlv, error) {
	if len(r.b) < 2 {
		return tlv{}, fmt.Errorf("%w: truncated element header (%d bytes left)", errBER, len(r.b))
	}
	tag := r.b[0]
	if tag&0x1f == 0x1f {
		return tlv{}, fmt.Errorf("%w: high tag number form (tag 0x%02x)", errBER, tag)
	}
	l := int(r.b[1])
	off := 2
	if l&0x80 != 0 {
		n := l & 0x7f
		if n == 0 {
			return tlv{}, fmt.Errorf("%w: indefinite length (tag 0x%02x)", errBER, tag)
		}
		if n > 4 {
			return tlv{}, fmt.Errorf("%w: %d length bytes (tag 0x%02x)", errBER, n, tag)
		}
		if len(r.b) < 2+n {
			return tlv{}, fmt.Errorf("%w: truncated length (tag 0x%02x)", errBER, tag)
		}
		l = 0
		for _, c := range r.b[2 : 2+n] {
			l = l<<8 | int(c)
		}
		off += n
		if l < 0 {
			return tlv{}, fmt.Errorf("%w: length overflow (tag 0x%02x)", errBER, tag)
		}
	}
	if l > len(r.b)-off {
		return tlv{}, fmt.Errorf("%w: element of %d bytes with %d left (tag 0x%02x)", errBER, l, len(r.b)-off, tag)
	}
	t := tlv{tag: tag, val: r.b[off : off+l]}
	r.b = r.b[off+l:]
	return t, nil
}

// expect reads one element and checks its tag.
func (r *berReader) expect(tag byte, what string) ([]byte, error) {
	t, err := r.next()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if t.tag != tag {
		return nil, fmt.Errorf("%w: %s has tag 0x%02x, want 0x%02x", errBER, what, t.tag, tag)
	}
	return t.val, nil
}

func (r *berReader) sequence(what string) (berReader, error) {
	v, err := r.expect(tagSequence, what)
	return berReader{b: v}, err
}

func (r *berReader) octets(what string) ([]byte, error) { return r.expect(tagOctetString, what) }

// integer reads an INTEGER that must fit in int64.
func (r *berReader) integer(what string) (int64, error) {
	v, err := r.expect(tagInteger, what)
	if err != nil {
		return 0, err
	}
	n, err := parseInt(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return n, nil
}

// parseInt decodes a two's complement big-endian integer of 1 to 8 bytes.
func parseInt(v []byte) (int64, error) {
	if len(v) == 0 {
		return 0, fmt.Errorf("%w: empty integer", errBER)
	}
	if len(v) > 8 {
		return 0, fmt.Errorf("%w: integer of %d bytes", errBER, len(v))
	}
	n := int64(int8(v[0]))
	for _, c := range v[1:] {
		n = n<<8 | int64(c)
	}
	return n, nil
}

// oid is a decoded OBJECT IDENTIFIER.
type oid []uint32

func (o oid) String() string {
	var sb strings.Builder
	for i, s := range o {
		if i > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(strconv.FormatUint(uint64(s), 10))
	}
	return sb.String()
}

func (o oid) equal(p oid) bool {
	if len(o) != len(p) {
		return false
	}
	for i := range o {
		if o[i] != p[i] {
			return false
		}
	}
	return true
}

// hasPrefix reports whether p is a prefix of o.
func (o oid) hasPrefix(p oid) bool { return len(o) >= len(p) && o[:len(p)].equal(p) }

// parseOID decodes the contents of an OBJECT IDENTIFIER.
func parseOID(v []byte) (oid, error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: empty OID", errBER)
	}
	out := make(oid, 0, 16)
	var cur uint64
	inSub := false
	for i, c := range v {
		if !inSub && c == 0x80 {
			return nil, fmt.Errorf("%w: OID sub-identifier with leading 0x80", errBER)
		}
		inSub = true
		cur = cur<<7 | uint64(c&0x7f)
		if cur > 0xffffffff+80 { // first arc pair may exceed 2^32 by 80
			return nil, fmt.Errorf("%w: OID sub-identifier too large", errBER)
		}
		if c&0x80 != 0 {
			if i == len(v)-1 {
				return nil, fmt.Errorf("%w: truncated OID", errBER)
			}
			continue
		}
		if len(out) == 0 {
			switch {
			case cur < 40:
				out = append(out, 0, uint32(cur))
			case cur < 80:
				out = append(out, 1, uint32(cur-40))
			default:
				if cur-80 > 0xffffffff {
					return nil, fmt.Errorf("%w: OID sub-identifier too large", errBER)
				}
				out = append(out, 2, uint32(cur-80))
			}
		} else {
			if cur > 0xffffffff {
				return nil, fmt.Errorf("%w: OID sub-identifier too large", errBER)
			}
			out = append(out, uint32(cur))
		}
		if len(out) > maxOIDLen {
			return nil, fmt.Errorf("%w: OID longer than %d sub-identifiers", errBER, maxOIDLen)
		}
		cur = 0
		inSub = false
	}
	return out, nil
}
