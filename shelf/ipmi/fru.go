package ipmi

import (
	"context"
	"fmt"
	"time"
)

// FRUAreaInfo is the answer to Get FRU Inventory Area Info (IPMI 2.0 §34.1).
type FRUAreaInfo struct {
	Size    uint16 // bytes
	ByWords bool   // device is accessed by words: offsets and counts are in words
}

// ParseFRUAreaInfo decodes Get FRU Inventory Area Info response data.
func ParseFRUAreaInfo(b []byte) (FRUAreaInfo, error) {
	if len(b) < 3 {
		return FRUAreaInfo{}, short("get fru inventory area info", len(b), 3)
	}
	return FRUAreaInfo{Size: le16(b), ByWords: bit(b[2], 0)}, nil
}

// Marshal encodes i as Get FRU Inventory Area Info response data.
func (i FRUAreaInfo) Marshal() []byte { return append(put16(i.Size), setBit(i.ByWords, 0)) }

// GetFRUAreaInfo reads the size of FRU device fru on the controller at to.
func GetFRUAreaInfo(ctx context.Context, c Conn, to Addr, fru uint8) (FRUAreaInfo, error) {
	what := fmt.Sprintf("get fru inventory area info of fru %d", fru)
	b, err := get(ctx, c, to, what, NetFnStorage, CmdGetFRUInventoryAreaInfo, fru)
	if err != nil {
		return FRUAreaInfo{}, err
	}
	i, err := ParseFRUAreaInfo(b)
	if err != nil {
		return FRUAreaInfo{}, decodeErr(what, to, err)
	}
	return i, nil
}

// ReadFRUData sends one Read FRU Data request: count units at offset,
// where units are bytes, or words for word-accessed devices (byWords; the
// count returned is then in words too). It returns the data read, which
// may be shorter than asked.
func ReadFRUData(ctx context.Context, c Conn, to Addr, fru uint8, offset uint16, count uint8, byWords bool) ([]byte, error) {
	what := fmt.Sprintf("read fru data of fru %d (offset %d, count %d)", fru, offset, count)
	b, err := get(ctx, c, to, what, NetFnStorage, CmdReadFRUData, fru, byte(offset), byte(offset>>8), count)
	if err != nil {
		return nil, err
	}
	if len(b) < 1 {
		return nil, decodeErr(what, to, short(what, 0, 1))
	}
	n := int(b[0])
	if byWords {
		n *= 2
	}
	if n > len(b)-1 {
		return nil, decodeErr(what, to, fmt.Errorf("%w: count %d, %d data bytes", ErrShortResponse, n, len(b)-1))
	}
	return b[1 : 1+n], nil
}

// DefaultFRUChunk is the first chunk size ReadFRU asks for; it fits a
// bridged IPMB response.
const DefaultFRUChunk = 16

// ReadFRU reads the whole inventory area of FRU device fru in chunks,
// halving the chunk when the controller refuses its size (0xC7, 0xC8,
// 0xCA).
func ReadFRU(ctx context.Context, c Conn, to Addr, fru uint8) ([]byte, error) {
	info, err := GetFRUAreaInfo(ctx, c, to, fru)
	if err != nil {
		return nil, err
	}
	unit := 1
	if info.ByWords {
		unit = 2
	}
	size := int(info.Size)
	out := make([]byte, 0, size)
	chunk := DefaultFRUChunk
	for len(out) < size {
		n := min(chunk, size-len(out))
		cnt := n / unit
		if cnt == 0 {
			cnt = 1
		}
		b, err := ReadFRUData(ctx, c, to, fru, uint16(len(out)/unit), uint8(cnt), info.ByWords)
		if code, ok := CodeOf(err); ok && (code == CCRequestDataLength || code == CCRequestDataTooLong || code == CCCannotReturnBytes) && chunk > unit {
			chunk = max(unit, chunk/2)
			continue
		}
		if err != nil {
			return out, err
		}
		if len(b) == 0 {
			return out, fmt.Errorf("read fru data of fru %d on %s: no data at offset %d of %d", fru, to, len(out), size)
		}
		out = append(out, b[:min(len(b), size-len(out))]...)
	}
	return out, nil
}

// FRU holds a decoded FRU inventory image (Platform Management FRU
// Information Storage Definition v1.0). Areas that are absent are nil.
type FRU struct {
	Header       FRUHeader
	Chassis      *ChassisInfo
	Board        *BoardInfo
	Product      *ProductInfo
	MultiRecords []MultiRecord
}

// FRUHeader is the common header: area offsets in bytes (0 = absent).
type FRUHeader struct {
	Version     uint8
	InternalUse int
	Chassis     int
	Board       int
	Product     int
	MultiRecord int
}

// ChassisInfo is the chassis info area.
type ChassisInfo struct {
	Type       uint8 // SMBIOS chassis type (0x17 = rack mount chassis)
	PartNumber TLString
	Serial     TLString
	Custom     []TLString
}

// BoardInfo is the board info area.
type BoardInfo struct {
	Language     uint8
	MfgTime      time.Time // zero when unspecified
	Manufacturer TLString
	Product      TLString
	Serial       TLString
	PartNumber   TLString
	FileID       TLString
	Custom       []TLString
}

// ProductInfo is the product info area.
type ProductInfo struct {
	Language     uint8
	Manufacturer TLString
	Name         TLString
	PartNumber   TLString
	Version      TLString
	Serial       TLString
	AssetTag     TLString
	FileID       TLString
	Custom       []TLString
}

// MultiRecord is one record of the multi-record area. PICMG records are
// OEM type 0xC0 with the PICMG manufacturer ID 0x315A in Data[0:3].
type MultiRecord struct {
	Type    uint8
	Version uint8
	Data    []byte
}

// fruEpoch is the origin of board manufacturing times.
var fruEpoch = time.Date(1996, 1, 1, 0, 0, 0, 0, time.UTC)

func zeroSum(b []byte) bool {
	var s uint8
	for _, c := range b {
		s += c
	}
	return s == 0
}

// ParseFRU decodes a FRU inventory image. The common header and every
// area must have a correct checksum; an area that is damaged makes the
// whole decode fail with an error naming it.
func ParseFRU(b []byte) (FRU, error) {
	if len(b) < 8 {
		return FRU{}, short("fru common header", len(b), 8)
	}
	if !zeroSum(b[:8]) {
		return FRU{}, fmt.Errorf("fru common header: %w: checksum mismatch", ErrMalformed)
	}
	if b[0]&0x0f != 1 {
		return FRU{}, fmt.Errorf("fru common header: %w: format version %d, want 1", ErrMalformed, b[0]&0x0f)
	}
	var f FRU
	f.Header = FRUHeader{Version: b[0] & 0x0f, InternalUse: int(b[1]) * 8, Chassis: int(b[2]) * 8,
		Board: int(b[3]) * 8, Product: int(b[4]) * 8, MultiRecord: int(b[5]) * 8}
	var err error
	if off := f.Header.Chassis; off != 0 {
		a, e := fruArea(b, off, "chassis info area")
		if err = e; err != nil {
			return FRU{}, err
		}
		if f.Chassis, err = parseChassisInfo(a); err != nil {
			return FRU{}, err
		}
	}
	if off := f.Header.Board; off != 0 {
		a, e := fruArea(b, off, "board info area")
		if err = e; err != nil {
			return FRU{}, err
		}
		if f.Board, err = parseBoardInfo(a); err != nil {
			return FRU{}, err
		}
	}
	if off := f.Header.Product; off != 0 {
		a, e := fruArea(b, off, "product info area")
		if err = e; err != nil {
			return FRU{}, err
		}
		if f.Product, err = parseProductInfo(a); err != nil {
			return FRU{}, err
		}
	}
	if off := f.Header.MultiRecord; off != 0 {
		if f.MultiRecords, err = ParseMultiRecords(b, off); err != nil {
			return FRU{}, err
		}
	}
	return f, nil
}

// fruArea returns the area at off, checked for version, length and checksum.
func fruArea(b []byte, off int, what string) ([]byte, error) {
	if off+2 > len(b) {
		return nil, fmt.Errorf("%s at offset %d: %w: image has %d bytes", what, off, ErrShortResponse, len(b))
	}
	n := int(b[off+1]) * 8
	if n < 8 {
		return nil, fmt.Errorf("%s at offset %d: %w: length %d", what, off, ErrMalformed, n)
	}
	if off+n > len(b) {
		return nil, fmt.Errorf("%s at offset %d: %w: length %d, image has %d bytes", what, off, ErrShortResponse, n, len(b))
	}
	a := b[off : off+n]
	if a[0]&0x0f != 1 {
		return nil, fmt.Errorf("%s at offset %d: %w: format version %d, want 1", what, off, ErrMalformed, a[0]&0x0f)
	}
	if !zeroSum(a) {
		return nil, fmt.Errorf("%s at offset %d: %w: checksum mismatch", what, off, ErrMalformed)
	}
	return a, nil
}

// fieldReader walks the type/length fields of an area up to 0xC1.
type fieldReader struct {
	b       []byte
	pos     int
	what    string
	end     bool
	unicode bool // type 3 fields are 2-byte Unicode (language not English)
}

// english reports whether a FRU language code means English (0 or 25).
func english(lang uint8) bool { return lang == 0 || lang == 25 }

func (r *fieldReader) next(name string) (TLString, error) {
	if r.end {
		return TLString{}, nil // fields after the end marker are absent
	}
	if r.pos >= len(r.b)-1 { // last byte is the checksum
		return TLString{}, fmt.Errorf("%s: %w: field %s runs past the end of the area", r.what, ErrMalformed, name)
	}
	if r.b[r.pos] == 0xc1 {
		r.end = true
		return TLString{}, nil
	}
	s, n, err := parseTL(r.b[r.pos:len(r.b)-1], r.what+" "+name)
	if err != nil {
		return TLString{}, err
	}
	if r.unicode && s.Type == String8Bit {
		s.Type = StringUnicode
	}
	r.pos += n
	return s, nil
}

func (r *fieldReader) custom() ([]TLString, error) {
	var out []TLString
	for !r.end {
		s, err := r.next("custom field")
		if err != nil {
			return nil, err
		}
		if r.end {
			break
		}
		out = append(out, s)
	}
	return out, nil
}

func (r *fieldReader) fields(names []string, dst ...*TLString) error {
	for i, d := range dst {
		s, err := r.next(names[i])
		if err != nil {
			return err
		}
		*d = s
	}
	return nil
}

func parseChassisInfo(a []byte) (*ChassisInfo, error) {
	const what = "chassis info area"
	if len(a) < 3 {
		return nil, short(what, len(a), 3)
	}
	c := &ChassisInfo{Type: a[2]}
	r := &fieldReader{b: a, pos: 3, what: what}
	if err := r.fields([]string{"part number", "serial number"}, &c.PartNumber, &c.Serial); err != nil {
		return nil, err
	}
	var err error
	c.Custom, err = r.custom()
	return c, err
}

func parseBoardInfo(a []byte) (*BoardInfo, error) {
	const what = "board info area"
	if len(a) < 7 {
		return nil, short(what, len(a), 7)
	}
	bi := &BoardInfo{Language: a[2]}
	if m := uint32(a[3]) | uint32(a[4])<<8 | uint32(a[5])<<16; m != 0 {
		bi.MfgTime = fruEpoch.Add(time.Duration(m) * time.Minute)
	}
	r := &fieldReader{b: a, pos: 6, what: what, unicode: !english(bi.Language)}
	if err := r.fields([]string{"manufacturer", "product name", "serial number", "part number", "fru file id"},
		&bi.Manufacturer, &bi.Product, &bi.Serial, &bi.PartNumber, &bi.FileID); err != nil {
		return nil, err
	}
	var err error
	bi.Custom, err = r.custom()
	return bi, err
}

func parseProductInfo(a []byte) (*ProductInfo, error) {
	const what = "product info area"
	if len(a) < 3 {
		return nil, short(what, len(a), 3)
	}
	p := &ProductInfo{Language: a[2]}
	r := &fieldReader{b: a, pos: 3, what: what, unicode: !english(p.Language)}
	if err := r.fields([]string{"manufacturer", "name", "part number", "version", "serial number", "asset tag", "fru file id"},
		&p.Manufacturer, &p.Name, &p.PartNumber, &p.Version, &p.Serial, &p.AssetTag, &p.FileID); err != nil {
		return nil, err
	}
	var err error
	p.Custom, err = r.custom()
	return p, err
}

// ParseMultiRecords decodes the multi-record area starting at off: each
// record has a five-byte header (type, end-of-list/version, length,
// record checksum, header checksum) that is checked, as is its data.
func ParseMultiRecords(b []byte, off int) ([]MultiRecord, error) {
	var out []MultiRecord
	for {
		if off+5 > len(b) {
			return out, fmt.Errorf("multi-record at offset %d: %w: header runs past the image (%d bytes)", off, ErrShortResponse, len(b))
		}
		h := b[off : off+5]
		if !zeroSum(h) {
			return out, fmt.Errorf("multi-record at offset %d: %w: header checksum mismatch", off, ErrMalformed)
		}
		n := int(h[2])
		if off+5+n > len(b) {
			return out, fmt.Errorf("multi-record at offset %d: %w: %d data bytes announced, image has %d", off, ErrShortResponse, n, len(b)-off-5)
		}
		d := b[off+5 : off+5+n]
		if !zeroSum(append([]byte{h[3]}, d...)) {
			return out, fmt.Errorf("multi-record type 0x%02x at offset %d: %w: data checksum mismatch", h[0], off, ErrMalformed)
		}
		out = append(out, MultiRecord{Type: h[0], Version: h[1] & 0x0f, Data: append([]byte(nil), d...)})
		if bit(h[1], 7) {
			return out, nil
		}
		off += 5 + n
	}
}

// MarshalMultiRecords encodes records as a multi-record area (end-of-list
// set on the last one).
func MarshalMultiRecords(recs []MultiRecord) []byte {
	var out []byte
	for i, r := range recs {
		h := []byte{r.Type, r.Version & 0x0f, byte(len(r.Data)), -sum8(r.Data), 0}
		if i == len(recs)-1 {
			h[1] |= 0x80
		}
		h[4] = -sum8(h[:4])
		out = append(out, h...)
		out = append(out, r.Data...)
	}
	return out
}

func sum8(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

func marshalArea(head []byte, fields []TLString, custom []TLString) []byte {
	a := append([]byte(nil), head...)
	for _, f := range append(fields, custom...) {
		if f.TypeLength() == 0xc1 {
			// A one-byte text field would read as the end-of-fields
			// marker: pad it with a NUL, which Text drops.
			f.Raw = append(append([]byte(nil), f.Raw...), 0)
		}
		a = append(a, f.Marshal()...)
	}
	a = append(a, 0xc1)
	for (len(a)+1)%8 != 0 {
		a = append(a, 0)
	}
	a[1] = byte((len(a) + 1) / 8)
	return append(a, -sum8(a))
}

// Marshal encodes the chassis info area.
func (c *ChassisInfo) Marshal() []byte {
	return marshalArea([]byte{1, 0, c.Type}, []TLString{c.PartNumber, c.Serial}, c.Custom)
}

// Marshal encodes the board info area.
func (bi *BoardInfo) Marshal() []byte {
	var m uint32
	if !bi.MfgTime.IsZero() {
		m = uint32(bi.MfgTime.Sub(fruEpoch) / time.Minute)
	}
	return marshalArea([]byte{1, 0, bi.Language, byte(m), byte(m >> 8), byte(m >> 16)},
		[]TLString{bi.Manufacturer, bi.Product, bi.Serial, bi.PartNumber, bi.FileID}, bi.Custom)
}

// Marshal encodes the product info area.
func (p *ProductInfo) Marshal() []byte {
	return marshalArea([]byte{1, 0, p.Language},
		[]TLString{p.Manufacturer, p.Name, p.PartNumber, p.Version, p.Serial, p.AssetTag, p.FileID}, p.Custom)
}

// Marshal encodes f as a FRU image (header offsets are recomputed; the
// internal use area is not written).
func (f FRU) Marshal() []byte {
	img := make([]byte, 8)
	img[0] = 1
	add := func(slot int, a []byte) {
		if a == nil {
			return
		}
		img[slot] = byte(len(img) / 8)
		img = append(img, a...)
		for len(img)%8 != 0 {
			img = append(img, 0)
		}
	}
	if f.Chassis != nil {
		add(2, f.Chassis.Marshal())
	}
	if f.Board != nil {
		add(3, f.Board.Marshal())
	}
	if f.Product != nil {
		add(4, f.Product.Marshal())
	}
	if len(f.MultiRecords) > 0 {
		add(5, MarshalMultiRecords(f.MultiRecords))
	}
	img[7] = -sum8(img[:7])
	return img
}
