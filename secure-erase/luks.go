package secureerase

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// LUKS on-disk constants (LUKS1 specification 1.2.3, LUKS2 on-disk format
// 1.1.x).
const (
	luksSectorSize      = 512
	luks1HeaderSize     = 592
	luks1KeySlots       = 8
	luks1KeySlotOffset  = 208
	luks1KeySlotSize    = 48
	luks1KeyActive      = 0x00AC71F3
	luks1KeyDisabled    = 0x0000DEAD
	luks2BinaryHdrSize  = 4096
	luksMaxJSONAreaSize = 4 << 20 // LUKS2 allows 4 MiB header areas at most
)

var (
	luksMagic       = []byte{'L', 'U', 'K', 'S', 0xBA, 0xBE}
	luks2SecondMagi = []byte{'S', 'K', 'U', 'L', 0xBA, 0xBE}
)

// luks2SecondaryOffsets are the offsets where a LUKS2 secondary header may
// live (one per allowed header area size); crypto erase checks them all.
var luks2SecondaryOffsets = []int64{0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000}

// ErrNotLUKS says a target does not start with a LUKS header.
var ErrNotLUKS = errors.New("no LUKS header")

// Region is a byte range of a target.
type Region struct {
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	What   string `json:"what"`
}

// End returns the offset just past the region.
func (r Region) End() int64 { return r.Offset + r.Length }

// LUKSHeader is what crypto erase needs to know of a LUKS header: where
// the headers and the key-slot areas lie and where the encrypted data
// starts.
type LUKSHeader struct {
	Version int
	UUID    string
	// Headers are the binary headers with their JSON areas (LUKS2: primary
	// and secondary; LUKS1: the one 592-byte header).
	Headers []Region
	// KeySlots are the key material areas of every key slot, active or not.
	KeySlots []Region
	// DataOffset is where the encrypted payload starts (0 when the LUKS2
	// segment is "dynamic" and not known here).
	DataOffset int64
}

// Regions returns the headers and key-slot areas, ordered by offset.
func (h *LUKSHeader) Regions() []Region {
	out := append(append([]Region(nil), h.Headers...), h.KeySlots...)
	sort.Slice(out, func(i, j int) bool { return out[i].Offset < out[j].Offset })
	return out
}

// ParseLUKSHeader parses the start of a LUKS1 or LUKS2 volume. buf must hold
// at least the binary header (LUKS1: 592 bytes; LUKS2: 4096 bytes plus the
// JSON area, up to the hdr_size the header states). size is the size of
// the whole target; regions beyond it are refused. It never panics on bad
// input and names what is wrong.
func ParseLUKSHeader(buf []byte, size int64) (*LUKSHeader, error) {
	if len(buf) < 8 || !bytes.Equal(buf[:6], luksMagic) {
		return nil, ErrNotLUKS
	}
	switch v := binary.BigEndian.Uint16(buf[6:8]); v {
	case 1:
		return parseLUKS1(buf, size)
	case 2:
		return parseLUKS2(buf, size)
	default:
		return nil, fmt.Errorf("LUKS version %d is not supported", v)
	}
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func parseLUKS1(buf []byte, size int64) (*LUKSHeader, error) {
	if len(buf) < luks1HeaderSize {
		return nil, fmt.Errorf("LUKS1 header: %d bytes, want %d", len(buf), luks1HeaderSize)
	}
	payload := int64(binary.BigEndian.Uint32(buf[104:108])) * luksSectorSize
	keyBytes := int64(binary.BigEndian.Uint32(buf[108:112]))
	if keyBytes == 0 || keyBytes > 512 {
		return nil, fmt.Errorf("LUKS1 header: key size %d bytes", keyBytes)
	}
	h := &LUKSHeader{Version: 1, UUID: cString(buf[168:208]), DataOffset: payload,
		Headers: []Region{{0, luks1HeaderSize, "LUKS1 header"}}}
	for i := 0; i < luks1KeySlots; i++ {
		ks := buf[luks1KeySlotOffset+i*luks1KeySlotSize:]
		active := binary.BigEndian.Uint32(ks[0:4])
		if active != luks1KeyActive && active != luks1KeyDisabled {
			return nil, fmt.Errorf("LUKS1 key slot %d: state 0x%08x is neither active nor disabled", i, active)
		}
		off := int64(binary.BigEndian.Uint32(ks[40:44])) * luksSectorSize
		stripes := int64(binary.BigEndian.Uint32(ks[44:48]))
		if stripes == 0 || stripes > 1<<20 {
			return nil, fmt.Errorf("LUKS1 key slot %d: %d stripes", i, stripes)
		}
		length := (keyBytes*stripes + luksSectorSize - 1) / luksSectorSize * luksSectorSize
		if off < luks1HeaderSize {
			return nil, fmt.Errorf("LUKS1 key slot %d: key material at %d overlaps the header", i, off)
		}
		h.KeySlots = append(h.KeySlots, Region{off, length, "LUKS1 key slot " + strconv.Itoa(i)})
	}
	if err := checkRegions(h, size); err != nil {
		return nil, err
	}
	return h, nil
}

// luks2JSON is the part of the LUKS2 JSON metadata crypto erase reads.
type luks2JSON struct {
	Keyslots map[string]struct {
		Type string `json:"type"`
		Area struct {
			Type   string `json:"type"`
			Offset string `json:"offset"`
			Size   string `json:"size"`
		} `json:"area"`
	} `json:"keyslots"`
	Segments map[string]struct {
		Type   string `json:"type"`
		Offset string `json:"offset"`
	} `json:"segments"`
	Config struct {
		JSONSize     string `json:"json_size"`
		KeyslotsSize string `json:"keyslots_size"`
	} `json:"config"`
}

func parseU64(field, s string) (int64, error) {
	v, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return 0, fmt.Errorf("LUKS2 JSON %s %q: %w", field, s, err)
	}
	return int64(v), nil
}

func parseLUKS2(buf []byte, size int64) (*LUKSHeader, error) {
	if len(buf) < luks2BinaryHdrSize {
		return nil, fmt.Errorf("LUKS2 header: %d bytes, want at least %d", len(buf), luks2BinaryHdrSize)
	}
	hdrSize := int64(binary.BigEndian.Uint64(buf[8:16]))
	if hdrSize < luks2BinaryHdrSize+4096 || hdrSize > luksMaxJSONAreaSize || hdrSize%4096 != 0 {
		return nil, fmt.Errorf("LUKS2 header: header size %d is not a valid area size", hdrSize)
	}
	if off := binary.BigEndian.Uint64(buf[256:264]); off != 0 {
		return nil, fmt.Errorf("LUKS2 header: primary header claims offset %d", off)
	}
	if int64(len(buf)) < hdrSize {
		return nil, fmt.Errorf("LUKS2 header: %d bytes read, header area is %d", len(buf), hdrSize)
	}
	area := buf[luks2BinaryHdrSize:hdrSize]
	if i := bytes.IndexByte(area, 0); i >= 0 {
		area = area[:i]
	}
	var meta luks2JSON
	if err := json.Unmarshal(area, &meta); err != nil {
		return nil, fmt.Errorf("LUKS2 JSON metadata: %w", err)
	}
	h := &LUKSHeader{Version: 2, UUID: cString(buf[168:208]), Headers: []Region{
		{0, hdrSize, "LUKS2 primary header"},
		{hdrSize, hdrSize, "LUKS2 secondary header"},
	}}
	ids := make([]string, 0, len(meta.Keyslots))
	for id := range meta.Keyslots {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		ks := meta.Keyslots[id]
		if ks.Area.Type != "raw" && ks.Area.Type != "" {
			// Other area types (none, journal, checksum, datashift) hold
			// no key material of their own.
			continue
		}
		off, err := parseU64("keyslot "+id+" area offset", ks.Area.Offset)
		if err != nil {
			return nil, err
		}
		length, err := parseU64("keyslot "+id+" area size", ks.Area.Size)
		if err != nil {
			return nil, err
		}
		if off < 2*hdrSize || length == 0 {
			return nil, fmt.Errorf("LUKS2 keyslot %s: area %d+%d overlaps the headers or is empty", id, off, length)
		}
		h.KeySlots = append(h.KeySlots, Region{off, length, "LUKS2 keyslot " + id})
	}
	for _, seg := range meta.Segments {
		off, err := parseU64("segment offset", seg.Offset)
		if err != nil {
			return nil, err
		}
		if h.DataOffset == 0 || off < h.DataOffset {
			h.DataOffset = off
		}
	}
	if err := checkRegions(h, size); err != nil {
		return nil, err
	}
	return h, nil
}

// checkRegions refuses regions that overflow, lie beyond the target or
// beyond the data offset.
func checkRegions(h *LUKSHeader, size int64) error {
	for _, r := range h.Regions() {
		if r.Offset < 0 || r.Length <= 0 || r.End() < r.Offset {
			return fmt.Errorf("%s: bad region %d+%d", r.What, r.Offset, r.Length)
		}
		if size > 0 && r.End() > size {
			return fmt.Errorf("%s: region %d+%d lies beyond the end of the target (%d bytes)", r.What, r.Offset, r.Length, size)
		}
		if h.DataOffset > 0 && r.End() > h.DataOffset {
			return fmt.Errorf("%s: region %d+%d overlaps the data at %d", r.What, r.Offset, r.Length, h.DataOffset)
		}
	}
	return nil
}
