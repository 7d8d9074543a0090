package ipmi

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Storage command numbers (IPMI 2.0 appendix G).
const (
	CmdGetFRUInventoryAreaInfo uint8 = 0x10
	CmdReadFRUData             uint8 = 0x11
	CmdGetSDRRepositoryInfo    uint8 = 0x20
	CmdReserveSDRRepository    uint8 = 0x22
	CmdGetSDR                  uint8 = 0x23
	CmdGetSELInfo              uint8 = 0x40
	CmdReserveSEL              uint8 = 0x42
	CmdGetSELEntry             uint8 = 0x43
	CmdClearSEL                uint8 = 0x47
)

// SDRRepository selects the SDR repository to read: the main SDR
// repository of a shelf manager or BMC (Storage NetFn), or the Device SDRs
// of a controller (Sensor/Event NetFn).
type SDRRepository uint8

// SDR repositories.
const (
	MainSDR SDRRepository = iota
	DeviceSDR
)

func (r SDRRepository) String() string {
	if r == DeviceSDR {
		return "device SDR repository"
	}
	return "SDR repository"
}

func (r SDRRepository) cmds() (netfn NetFn, reserve, get uint8) {
	if r == DeviceSDR {
		return NetFnSensor, CmdReserveDeviceSDRRepo, CmdGetDeviceSDR
	}
	return NetFnStorage, CmdReserveSDRRepository, CmdGetSDR
}

// LastRecordID is the "next record ID" that ends a repository or the SEL.
const LastRecordID uint16 = 0xffff

// SDRRepositoryInfo is the answer to Get SDR Repository Info (§33.9).
type SDRRepositoryInfo struct {
	Version      uint8 // BCD, 0x51 = 1.5
	RecordCount  uint16
	FreeSpace    uint16 // bytes; 0xFFFF unspecified
	LastAddition time.Time
	LastErase    time.Time
	Support      uint8 // operation support bits (overflow, update modes, delete, partial add, reserve, get allocation info)
}

// ipmiTime converts an IPMI timestamp (seconds since 1970 UTC). 0xFFFFFFFF
// means unspecified and gives the zero Time. Values up to 0x20000000 are
// relative to controller initialisation and are kept as such (1970-based).
func ipmiTime(v uint32) time.Time {
	if v == 0xffffffff {
		return time.Time{}
	}
	return time.Unix(int64(v), 0).UTC()
}

func putTime(t time.Time) []byte {
	if t.IsZero() {
		return put32(0xffffffff)
	}
	return put32(uint32(t.Unix()))
}

// ParseSDRRepositoryInfo decodes Get SDR Repository Info response data.
func ParseSDRRepositoryInfo(b []byte) (SDRRepositoryInfo, error) {
	if len(b) < 14 {
		return SDRRepositoryInfo{}, short("get sdr repository info", len(b), 14)
	}
	return SDRRepositoryInfo{
		Version:      b[0],
		RecordCount:  le16(b[1:]),
		FreeSpace:    le16(b[3:]),
		LastAddition: ipmiTime(le32(b[5:])),
		LastErase:    ipmiTime(le32(b[9:])),
		Support:      b[13],
	}, nil
}

// Marshal encodes i as Get SDR Repository Info response data.
func (i SDRRepositoryInfo) Marshal() []byte {
	b := []byte{i.Version}
	b = append(b, put16(i.RecordCount)...)
	b = append(b, put16(i.FreeSpace)...)
	b = append(b, putTime(i.LastAddition)...)
	b = append(b, putTime(i.LastErase)...)
	return append(b, i.Support)
}

// GetSDRRepositoryInfo reads the main SDR repository information.
func GetSDRRepositoryInfo(ctx context.Context, c Conn, to Addr) (SDRRepositoryInfo, error) {
	const what = "get sdr repository info"
	b, err := get(ctx, c, to, what, NetFnStorage, CmdGetSDRRepositoryInfo)
	if err != nil {
		return SDRRepositoryInfo{}, err
	}
	i, err := ParseSDRRepositoryInfo(b)
	if err != nil {
		return SDRRepositoryInfo{}, decodeErr(what, to, err)
	}
	return i, nil
}

// DeviceSDRInfo is the answer to Get Device SDR Info (§35.2).
type DeviceSDRInfo struct {
	Count   uint8 // number of SDRs (as asked) or sensors
	Dynamic bool  // the sensor population may change
	LUNs    uint8 // bits 3:0: LUNs that have sensors
	// Change is the sensor population change indicator (timestamp or
	// counter), zero for static populations.
	Change uint32
}

// ParseDeviceSDRInfo decodes Get Device SDR Info response data.
func ParseDeviceSDRInfo(b []byte) (DeviceSDRInfo, error) {
	if len(b) < 2 {
		return DeviceSDRInfo{}, short("get device sdr info", len(b), 2)
	}
	i := DeviceSDRInfo{Count: b[0], Dynamic: bit(b[1], 7), LUNs: b[1] & 0x0f}
	if i.Dynamic && len(b) >= 6 {
		i.Change = le32(b[2:]) // present only for dynamic populations
	}
	return i, nil
}

// Marshal encodes i as Get Device SDR Info response data.
func (i DeviceSDRInfo) Marshal() []byte {
	b := []byte{i.Count, setBit(i.Dynamic, 7) | i.LUNs&0x0f}
	if i.Dynamic {
		b = append(b, put32(i.Change)...)
	}
	return b
}

// GetDeviceSDRInfo asks the controller at to how many device SDRs it has
// (operation "get SDR count"). Controllers that refuse the optional
// operation byte (0xC7, IPMI 1.5 style) are asked again without it, which
// returns the number of sensors instead.
func GetDeviceSDRInfo(ctx context.Context, c Conn, to Addr) (DeviceSDRInfo, error) {
	const what = "get device sdr info"
	b, err := get(ctx, c, to, what, NetFnSensor, CmdGetDeviceSDRInfo, 0x01)
	if code, ok := CodeOf(err); ok && code == CCRequestDataLength {
		b, err = get(ctx, c, to, what+" (sensor count)", NetFnSensor, CmdGetDeviceSDRInfo)
	}
	if err != nil {
		return DeviceSDRInfo{}, err
	}
	i, err := ParseDeviceSDRInfo(b)
	if err != nil {
		return DeviceSDRInfo{}, decodeErr(what, to, err)
	}
	return i, nil
}

// reserve sends a reservation command and returns the reservation ID.
func reserve(ctx context.Context, c Conn, to Addr, what string, netfn NetFn, cmd uint8) (uint16, error) {
	b, err := set(ctx, c, to, what, netfn, cmd)
	if err != nil {
		return 0, err
	}
	if len(b) < 2 {
		return 0, decodeErr(what, to, short(what, len(b), 2))
	}
	return le16(b), nil
}

// ReserveSDRRepository reserves the SDR repository (or the device SDRs)
// and returns the reservation ID for partial reads.
func ReserveSDRRepository(ctx context.Context, c Conn, to Addr, repo SDRRepository) (uint16, error) {
	netfn, cmd, _ := repo.cmds()
	return reserve(ctx, c, to, "reserve "+repo.String(), netfn, cmd)
}

// GetSDR reads n bytes (0xFF: the whole record) at offset of record id
// with reservation res and returns the next record ID and the bytes read.
func GetSDR(ctx context.Context, c Conn, to Addr, repo SDRRepository, res, id uint16, offset, n uint8) (next uint16, data []byte, err error) {
	netfn, _, cmd := repo.cmds()
	what := fmt.Sprintf("get sdr 0x%04x (offset %d, %d bytes) from %s", id, offset, n, repo)
	req := append(put16(res), put16(id)...)
	req = append(req, offset, n)
	b, err := get(ctx, c, to, what, netfn, cmd, req...)
	if err != nil {
		return 0, nil, err
	}
	if len(b) < 2 {
		return 0, nil, decodeErr(what, to, short(what, len(b), 2))
	}
	return le16(b), b[2:], nil
}

// SDRReader reads SDR records with partial reads: the header first, then
// the body in chunks. It renews the reservation when the controller
// cancels it (0xC5), shrinks the chunk when the controller cannot return
// that many bytes (0xCA, or 0xC7/0xC8 from some bridges), and reads
// without a reservation from controllers that have no Reserve command
// (0xC1), as ipmitool and ipmidirect do. A reader is not safe for
// concurrent use.
type SDRReader struct {
	c     Conn
	to    Addr
	repo  SDRRepository
	res   uint16
	have  bool // reservation held (or known to be unsupported)
	chunk uint8
}

// DefaultSDRChunk is the first body chunk size SDRReader asks for; it
// fits a bridged IPMB response (32-byte frames).
const DefaultSDRChunk = 16

// maxSDRAttempts bounds restarts of one record after cancelled reservations.
const maxSDRAttempts = 5

// NewSDRReader makes a reader for repo on the controller at to.
func NewSDRReader(c Conn, to Addr, repo SDRRepository) *SDRReader {
	return &SDRReader{c: c, to: to, repo: repo, chunk: DefaultSDRChunk}
}

func (r *SDRReader) reserve(ctx context.Context) error {
	res, err := ReserveSDRRepository(ctx, r.c, r.to, r.repo)
	if errors.Is(err, ErrNotSupported) {
		r.res, r.have = 0, true // read without reservation
		return nil
	}
	if err != nil {
		return err
	}
	r.res, r.have = res, true
	return nil
}

// Record reads record id and returns it with the ID of the next record.
func (r *SDRReader) Record(ctx context.Context, id uint16) (SDR, uint16, error) {
	raw, next, err := r.RecordBytes(ctx, id)
	if err != nil {
		return SDR{}, 0, err
	}
	rec, err := ParseSDR(raw)
	if err != nil {
		return SDR{}, 0, fmt.Errorf("decoding record 0x%04x of %s on %s: %w", id, r.repo, r.to, err)
	}
	return rec, next, nil
}

// RecordBytes reads the raw bytes of record id and the next record ID.
func (r *SDRReader) RecordBytes(ctx context.Context, id uint16) ([]byte, uint16, error) {
	var lastErr error
	for attempt := 0; attempt < maxSDRAttempts; attempt++ {
		if !r.have {
			if err := r.reserve(ctx); err != nil {
				return nil, 0, err
			}
		}
		raw, next, err := r.readOnce(ctx, id)
		if code, ok := CodeOf(err); ok && code == CCReservationInvalid {
			r.have = false
			lastErr = err
			continue
		}
		return raw, next, err
	}
	return nil, 0, fmt.Errorf("reading record 0x%04x of %s on %s: reservation cancelled %d times: %w", id, r.repo, r.to, maxSDRAttempts, lastErr)
}

func (r *SDRReader) readOnce(ctx context.Context, id uint16) ([]byte, uint16, error) {
	next, hdr, err := GetSDR(ctx, r.c, r.to, r.repo, r.res, id, 0, SDRHeaderLen)
	if err != nil {
		return nil, 0, err
	}
	if len(hdr) < SDRHeaderLen {
		return nil, 0, fmt.Errorf("reading record 0x%04x of %s on %s: header: %w", id, r.repo, r.to, short("sdr header", len(hdr), SDRHeaderLen))
	}
	total := SDRHeaderLen + int(hdr[4])
	buf := make([]byte, 0, total)
	buf = append(buf, hdr[:SDRHeaderLen]...)
	for len(buf) < total {
		if len(buf) > 0xff {
			return nil, 0, fmt.Errorf("reading record 0x%04x of %s on %s: record of %d bytes is longer than partial reads can address", id, r.repo, r.to, total)
		}
		n := min(int(r.chunk), total-len(buf))
		_, part, err := GetSDR(ctx, r.c, r.to, r.repo, r.res, id, uint8(len(buf)), uint8(n))
		if code, ok := CodeOf(err); ok && (code == CCCannotReturnBytes || code == CCRequestDataLength || code == CCRequestDataTooLong) && r.chunk > 1 {
			r.chunk = max(1, r.chunk/2)
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		if len(part) == 0 {
			return nil, 0, fmt.Errorf("reading record 0x%04x of %s on %s: empty answer at offset %d", id, r.repo, r.to, len(buf))
		}
		buf = append(buf, part[:min(len(part), total-len(buf))]...)
	}
	return buf, next, nil
}

// All reads every record of the repository, following next-record IDs
// from the first record (ID 0) to 0xFFFF. It stops with an error on a
// loop in the chain.
func (r *SDRReader) All(ctx context.Context) ([]SDR, error) {
	var out []SDR
	seen := map[uint16]bool{}
	for id := uint16(0); id != LastRecordID; {
		if seen[id] {
			return out, fmt.Errorf("reading %s on %s: record chain loops back to 0x%04x", r.repo, r.to, id)
		}
		seen[id] = true
		rec, next, err := r.Record(ctx, id)
		if err != nil {
			return out, err
		}
		out = append(out, rec)
		id = next
	}
	return out, nil
}

// ReadSDRRepository reads every record of repo on the controller at to.
func ReadSDRRepository(ctx context.Context, c Conn, to Addr, repo SDRRepository) ([]SDR, error) {
	return NewSDRReader(c, to, repo).All(ctx)
}
