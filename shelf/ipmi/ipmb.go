package ipmi

import (
	"errors"
	"fmt"
)

// Well-known IPMB addresses.
const (
	// AddrBMC is the IPMB address of a BMC / shelf manager (0x20).
	AddrBMC uint8 = 0x20
	// AddrRemoteConsole is the software ID a remote console uses as requester
	// address in LAN messages (IPMI 2.0 §5.5, 0x81).
	AddrRemoteConsole uint8 = 0x81
)

// Frame is one message in IPMB format (IPMI 2.0 §5.5 / IPMB 1.0): the form
// of the IPMI payload of an RMCP+ packet and of the message a Send Message
// request carries. For a request, Dst is the responder (rsSA/rsLUN) and Src
// the requester; for a response it is the other way round. For a response,
// Data[0] is the completion code.
type Frame struct {
	DstAddr uint8
	NetFn   NetFn
	DstLUN  uint8
	SrcAddr uint8
	Seq     uint8 // 6-bit sequence number
	SrcLUN  uint8
	Cmd     uint8
	Data    []byte
}

// MinFrameLen is the length of a frame with no data: six header bytes and
// the trailing checksum.
const MinFrameLen = 7

// Checksum is the IPMB two's-complement checksum of b.
func Checksum(b []byte) uint8 {
	var s uint8
	for _, c := range b {
		s += c
	}
	return -s
}

// Marshal encodes f with both checksums.
func (f Frame) Marshal() []byte {
	b := make([]byte, 0, MinFrameLen+len(f.Data))
	b = append(b, f.DstAddr, uint8(f.NetFn)<<2|f.DstLUN&3)
	b = append(b, Checksum(b[0:2]))
	b = append(b, f.SrcAddr, f.Seq<<2|f.SrcLUN&3, f.Cmd)
	b = append(b, f.Data...)
	return append(b, Checksum(b[3:]))
}

// Errors from ParseFrame, matched with errors.Is.
var (
	ErrFrameShort    = errors.New("ipmb frame too short")
	ErrFrameChecksum = errors.New("ipmb frame checksum mismatch")
)

// ParseFrame decodes an IPMB-format message and verifies both checksums.
// The returned Data aliases b.
func ParseFrame(b []byte) (Frame, error) {
	if len(b) < MinFrameLen {
		return Frame{}, fmt.Errorf("%w: %d bytes, need at least %d", ErrFrameShort, len(b), MinFrameLen)
	}
	if Checksum(b[0:2]) != b[2] {
		return Frame{}, fmt.Errorf("%w: header checksum 0x%02x, computed 0x%02x", ErrFrameChecksum, b[2], Checksum(b[0:2]))
	}
	n := len(b)
	if Checksum(b[3:n-1]) != b[n-1] {
		return Frame{}, fmt.Errorf("%w: data checksum 0x%02x, computed 0x%02x", ErrFrameChecksum, b[n-1], Checksum(b[3:n-1]))
	}
	return Frame{
		DstAddr: b[0],
		NetFn:   NetFn(b[1] >> 2),
		DstLUN:  b[1] & 3,
		SrcAddr: b[3],
		Seq:     b[4] >> 2,
		SrcLUN:  b[4] & 3,
		Cmd:     b[5],
		Data:    b[6 : n-1],
	}, nil
}
