package rmcpp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors returned by the decoders. Every decode error wraps one of them.
var (
	// ErrShort: the input ends before a field or length it announces.
	ErrShort = errors.New("rmcpp: packet too short")
	// ErrNotRMCP: not an RMCP packet of the expected version/class.
	ErrNotRMCP = errors.New("rmcpp: not an RMCP IPMI packet")
	// ErrFormat: a field holds a value the protocol does not allow.
	ErrFormat = errors.New("rmcpp: malformed packet")
	// ErrIntegrity: the integrity code (AuthCode) does not match.
	ErrIntegrity = errors.New("rmcpp: integrity check failed")
	// ErrBadPad: confidentiality or integrity padding is wrong.
	ErrBadPad = errors.New("rmcpp: bad padding")
	// ErrUnexpectedPayload: authentication/encryption flags or payload type
	// not allowed where the packet was received.
	ErrUnexpectedPayload = errors.New("rmcpp: unexpected payload")
	// ErrSuiteRefused: a cipher suite or algorithm refused by policy.
	ErrSuiteRefused = errors.New("rmcpp: cipher suite refused")
	// ErrAuthCode: a RAKP authentication code or integrity check value
	// does not match (wrong password, wrong K_G, or tampering).
	ErrAuthCode = errors.New("rmcpp: RAKP authentication code mismatch")
)

// RMCP constants (DMTF ASF 2.0 §3.2.2, IPMI 2.0 §13.1.3).
const (
	rmcpVersion   = 0x06
	rmcpNoAck     = 0xFF
	rmcpClassASF  = 0x06
	rmcpClassIPMI = 0x07
	asfIANA       = 4542
	asfPing       = 0x80
	asfPong       = 0x40
	// RMCPHeaderLen is the length of the RMCP header.
	RMCPHeaderLen = 4
)

// EncodeRMCP prepends the RMCP header for class IPMI to msg.
func EncodeRMCP(msg []byte) []byte {
	b := make([]byte, 0, RMCPHeaderLen+len(msg))
	b = append(b, rmcpVersion, 0x00, rmcpNoAck, rmcpClassIPMI)
	return append(b, msg...)
}

// DecodeRMCP checks the RMCP header of an IPMI-class packet and returns
// the IPMI session part behind it.
func DecodeRMCP(b []byte) ([]byte, error) {
	if len(b) < RMCPHeaderLen {
		return nil, fmt.Errorf("decoding RMCP header: %w: %d bytes", ErrShort, len(b))
	}
	if b[0] != rmcpVersion || b[3]&0x7f != rmcpClassIPMI || b[3]&0x80 != 0 {
		return nil, fmt.Errorf("decoding RMCP header: %w: version 0x%02x class 0x%02x", ErrNotRMCP, b[0], b[3])
	}
	return b[RMCPHeaderLen:], nil
}

// EncodePing returns an ASF Presence Ping with message tag tag.
func EncodePing(tag uint8) []byte {
	b := []byte{rmcpVersion, 0, rmcpNoAck, rmcpClassASF, 0, 0, 0, 0, asfPing, tag, 0, 0}
	binary.BigEndian.PutUint32(b[4:], asfIANA)
	return b
}

// EncodePong returns an ASF Presence Pong answering a ping with tag tag,
// announcing IPMI and RMCP+ (IPMI 2.0) support.
func EncodePong(tag uint8) []byte {
	b := []byte{rmcpVersion, 0, rmcpNoAck, rmcpClassASF, 0, 0, 0, 0, asfPong, tag, 0, 16,
		0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[4:], asfIANA)
	binary.BigEndian.PutUint32(b[12:], asfIANA)
	return b
}

// Pong is a decoded ASF Presence Pong.
type Pong struct {
	Tag uint8
	// IPMI reports that the responder supports IPMI (supported entities bit 7).
	IPMI bool
}

// DecodePing decodes an ASF Presence Ping and returns its tag.
func DecodePing(b []byte) (uint8, error) {
	if len(b) < 12 {
		return 0, fmt.Errorf("decoding ASF ping: %w: %d bytes", ErrShort, len(b))
	}
	if b[0] != rmcpVersion || b[3] != rmcpClassASF || binary.BigEndian.Uint32(b[4:]) != asfIANA || b[8] != asfPing {
		return 0, fmt.Errorf("decoding ASF ping: %w", ErrNotRMCP)
	}
	return b[9], nil
}

// DecodePong decodes an ASF Presence Pong.
func DecodePong(b []byte) (Pong, error) {
	if len(b) < 12 {
		return Pong{}, fmt.Errorf("decoding ASF pong: %w: %d bytes", ErrShort, len(b))
	}
	if b[0] != rmcpVersion || b[3] != rmcpClassASF || binary.BigEndian.Uint32(b[4:]) != asfIANA || b[8] != asfPong {
		return Pong{}, fmt.Errorf("decoding ASF pong: %w", ErrNotRMCP)
	}
	n := int(b[11])
	if len(b) < 12+n || n < 16 {
		return Pong{}, fmt.Errorf("decoding ASF pong: %w: data length %d", ErrShort, n)
	}
	return Pong{Tag: b[9], IPMI: b[12+8]&0x80 != 0}, nil
}

// PayloadType is an RMCP+ payload type (IPMI 2.0 table 13-16).
type PayloadType uint8

// Payload types used by hpiagent.
const (
	PayloadIPMI                PayloadType = 0x00
	PayloadSOL                 PayloadType = 0x01
	PayloadOEM                 PayloadType = 0x02
	PayloadOpenSessionRequest  PayloadType = 0x10
	PayloadOpenSessionResponse PayloadType = 0x11
	PayloadRAKP1               PayloadType = 0x12
	PayloadRAKP2               PayloadType = 0x13
	PayloadRAKP3               PayloadType = 0x14
	PayloadRAKP4               PayloadType = 0x15
)

func (p PayloadType) String() string {
	switch p {
	case PayloadIPMI:
		return "IPMI message"
	case PayloadSOL:
		return "SOL"
	case PayloadOEM:
		return "OEM"
	case PayloadOpenSessionRequest:
		return "Open Session Request"
	case PayloadOpenSessionResponse:
		return "Open Session Response"
	case PayloadRAKP1, PayloadRAKP2, PayloadRAKP3, PayloadRAKP4:
		return fmt.Sprintf("RAKP %d", p-PayloadRAKP1+1)
	}
	return fmt.Sprintf("payload type 0x%02x", uint8(p))
}

const (
	authTypeRMCPPlus = 0x06
	flagEncrypted    = 0x80
	flagAuthed       = 0x40
	nextHeader       = 0x07
	sessHeaderLen    = 12 // auth type, payload type, session ID, seq, length
	// MaxPayload bounds payload lengths accepted and produced.
	MaxPayload = 1024
)

// Header is the IPMI 2.0 session header of a packet.
type Header struct {
	Type          PayloadType
	Encrypted     bool
	Authenticated bool
	SessionID     uint32
	Seq           uint32
	// Len is the payload length as sent (including IV and padding when
	// encrypted).
	Len int
}

// PeekHeader decodes the IPMI 2.0 session header (after the RMCP header)
// without verifying anything else, so that a server can find the session
// (and its keys) a packet belongs to.
func PeekHeader(b []byte) (Header, error) {
	if len(b) < sessHeaderLen {
		return Header{}, fmt.Errorf("decoding session header: %w: %d bytes", ErrShort, len(b))
	}
	if b[0] != authTypeRMCPPlus {
		return Header{}, fmt.Errorf("decoding session header: %w: auth type/format 0x%02x is not RMCP+", ErrFormat, b[0])
	}
	pt := PayloadType(b[1] & 0x3f)
	if pt == PayloadOEM {
		return Header{}, fmt.Errorf("decoding session header: %w: OEM payloads are not supported", ErrUnexpectedPayload)
	}
	h := Header{
		Type:          pt,
		Encrypted:     b[1]&flagEncrypted != 0,
		Authenticated: b[1]&flagAuthed != 0,
		SessionID:     binary.LittleEndian.Uint32(b[2:]),
		Seq:           binary.LittleEndian.Uint32(b[6:]),
		Len:           int(binary.LittleEndian.Uint16(b[10:])),
	}
	if len(b) < sessHeaderLen+h.Len {
		return h, fmt.Errorf("decoding session header: %w: payload length %d, %d bytes left", ErrShort, h.Len, len(b)-sessHeaderLen)
	}
	return h, nil
}

// Packet is one IPMI 2.0 session packet with its payload in the clear.
type Packet struct {
	Type      PayloadType
	SessionID uint32 // the receiver's session ID (0 outside a session)
	Seq       uint32 // session sequence number (0 outside a session)
	Payload   []byte
}

// EncodePacket builds an RMCP packet (RMCP header included) carrying p.
// With keys nil it builds an unauthenticated, unencrypted packet (outside
// a session). With keys it encrypts the payload with AES-CBC-128 (IV read
// from random) and appends the integrity trailer.
func EncodePacket(p Packet, keys *SessionKeys, random io.Reader) ([]byte, error) {
	payload := p.Payload
	flags := uint8(0)
	if keys != nil {
		if err := keys.check(); err != nil {
			return nil, err
		}
		var err error
		payload, err = encryptAES(keys.K2[:16], p.Payload, random)
		if err != nil {
			return nil, fmt.Errorf("encrypting %s payload: %w", p.Type, err)
		}
		flags = flagEncrypted | flagAuthed
	}
	if len(payload) > MaxPayload+32 {
		return nil, fmt.Errorf("encoding %s: %w: payload of %d bytes too long", p.Type, ErrFormat, len(p.Payload))
	}
	b := make([]byte, 0, RMCPHeaderLen+sessHeaderLen+len(payload)+4+2+32)
	b = append(b, rmcpVersion, 0x00, rmcpNoAck, rmcpClassIPMI)
	b = append(b, authTypeRMCPPlus, flags|uint8(p.Type)&0x3f)
	b = binary.LittleEndian.AppendUint32(b, p.SessionID)
	b = binary.LittleEndian.AppendUint32(b, p.Seq)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(payload)))
	b = append(b, payload...)
	if keys != nil {
		// Integrity pad: from auth type through next header a multiple of 4.
		n := len(b) - RMCPHeaderLen + 2
		pad := (4 - n%4) % 4
		for range pad {
			b = append(b, 0xFF)
		}
		b = append(b, uint8(pad), nextHeader)
		b = append(b, keys.authCode(b[RMCPHeaderLen:])...)
	}
	return b, nil
}

// DecodePacket decodes an RMCP packet (RMCP header included). With keys
// nil it accepts only unauthenticated, unencrypted packets; with keys only
// authenticated and encrypted ones, whose integrity code it verifies
// before decrypting. It checks the payload length and all padding.
func DecodePacket(b []byte, keys *SessionKeys) (Packet, error) {
	s, err := DecodeRMCP(b)
	if err != nil {
		return Packet{}, err
	}
	h, err := PeekHeader(s)
	if err != nil {
		return Packet{}, err
	}
	end := sessHeaderLen + h.Len
	payload := s[sessHeaderLen:end]
	if keys == nil {
		if h.Encrypted || h.Authenticated {
			return Packet{}, fmt.Errorf("decoding %s: %w: authenticated/encrypted packet outside a session", h.Type, ErrUnexpectedPayload)
		}
		if end != len(s) {
			return Packet{}, fmt.Errorf("decoding %s: %w: %d trailing bytes", h.Type, ErrFormat, len(s)-end)
		}
		return Packet{Type: h.Type, SessionID: h.SessionID, Seq: h.Seq, Payload: append([]byte(nil), payload...)}, nil
	}
	if err := keys.check(); err != nil {
		return Packet{}, err
	}
	if !h.Encrypted || !h.Authenticated {
		return Packet{}, fmt.Errorf("decoding %s: %w: session packet not authenticated and encrypted (flags enc=%t auth=%t)", h.Type, ErrUnexpectedPayload, h.Encrypted, h.Authenticated)
	}
	// Trailer: integrity pad, pad length, next header, auth code.
	ac := keys.Integrity.codeLen()
	if len(s) < end+2+ac {
		return Packet{}, fmt.Errorf("decoding %s: %w: no room for the integrity trailer", h.Type, ErrShort)
	}
	// Verify the integrity code before looking at anything it covers.
	covered := s[:len(s)-ac]
	if !hmac.Equal(keys.authCode(covered), s[len(s)-ac:]) {
		return Packet{}, fmt.Errorf("decoding %s seq %d: %w", h.Type, h.Seq, ErrIntegrity)
	}
	trailer := s[end:]
	padLen := len(trailer) - 2 - ac
	if padLen > 3 {
		return Packet{}, fmt.Errorf("decoding %s: %w: %d bytes between payload and trailer", h.Type, ErrBadPad, padLen)
	}
	if int(trailer[padLen]) != padLen || trailer[padLen+1] != nextHeader || len(covered)%4 != 0 {
		return Packet{}, fmt.Errorf("decoding %s: %w: integrity pad length %d, next header 0x%02x", h.Type, ErrBadPad, trailer[padLen], trailer[padLen+1])
	}
	for _, c := range trailer[:padLen] {
		if c != 0xFF {
			return Packet{}, fmt.Errorf("decoding %s: %w: integrity pad byte 0x%02x", h.Type, ErrBadPad, c)
		}
	}
	clear, err := decryptAES(keys.K2[:16], payload)
	if err != nil {
		return Packet{}, fmt.Errorf("decrypting %s seq %d: %w", h.Type, h.Seq, err)
	}
	return Packet{Type: h.Type, SessionID: h.SessionID, Seq: h.Seq, Payload: clear}, nil
}

// encryptAES implements AES-CBC-128 confidentiality (IPMI 2.0 §13.29):
// IV || E(data || 1,2,...,N || N), a whole number of blocks.
func encryptAES(key, data []byte, random io.Reader) ([]byte, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	n := (aes.BlockSize - (len(data)+1)%aes.BlockSize) % aes.BlockSize
	out := make([]byte, aes.BlockSize, aes.BlockSize+len(data)+n+1)
	if _, err := io.ReadFull(random, out); err != nil {
		return nil, fmt.Errorf("reading IV: %w", err)
	}
	out = append(out, data...)
	for i := 1; i <= n; i++ {
		out = append(out, uint8(i))
	}
	out = append(out, uint8(n))
	cipher.NewCBCEncrypter(blk, out[:aes.BlockSize]).CryptBlocks(out[aes.BlockSize:], out[aes.BlockSize:])
	return out, nil
}

func decryptAES(key, data []byte) ([]byte, error) {
	if len(data) < 2*aes.BlockSize {
		return nil, fmt.Errorf("%w: encrypted payload of %d bytes", ErrShort, len(data))
	}
	if len(data)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: encrypted payload of %d bytes is not a whole number of blocks", ErrBadPad, len(data))
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(data)-aes.BlockSize)
	cipher.NewCBCDecrypter(blk, data[:aes.BlockSize]).CryptBlocks(out, data[aes.BlockSize:])
	n := int(out[len(out)-1])
	if n >= aes.BlockSize {
		return nil, fmt.Errorf("%w: confidentiality pad length %d", ErrBadPad, n)
	}
	pad := out[len(out)-1-n : len(out)-1]
	for i, c := range pad {
		if int(c) != i+1 {
			return nil, fmt.Errorf("%w: confidentiality pad byte %d is 0x%02x", ErrBadPad, i+1, c)
		}
	}
	return out[:len(out)-1-n], nil
}

// V15 pre-session format (IPMI 1.5 session header, auth type none,
// session ID 0), used only for Get Channel Authentication Capabilities.

// EncodeV15 builds an RMCP packet carrying an IPMI message (an IPMB-style
// frame, see ipmi.Frame) in the IPMI 1.5 format with authentication type
// none, session sequence 0 and session ID 0.
func EncodeV15(msg []byte) ([]byte, error) {
	if len(msg) > 255 {
		return nil, fmt.Errorf("encoding IPMI 1.5 message: %w: %d bytes", ErrFormat, len(msg))
	}
	b := make([]byte, 0, RMCPHeaderLen+10+len(msg))
	b = append(b, rmcpVersion, 0x00, rmcpNoAck, rmcpClassIPMI)
	b = append(b, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, uint8(len(msg)))
	return append(b, msg...), nil
}

// DecodeV15 decodes an RMCP packet in the IPMI 1.5 format with
// authentication type none and returns the IPMI message. Packets with any
// other authentication type are refused (ErrUnexpectedPayload).
func DecodeV15(b []byte) ([]byte, error) {
	s, err := DecodeRMCP(b)
	if err != nil {
		return nil, err
	}
	if len(s) < 10 {
		return nil, fmt.Errorf("decoding IPMI 1.5 packet: %w: %d bytes", ErrShort, len(s))
	}
	if s[0] != 0x00 {
		return nil, fmt.Errorf("decoding IPMI 1.5 packet: %w: authentication type 0x%02x", ErrUnexpectedPayload, s[0])
	}
	n := int(s[9])
	if len(s) < 10+n {
		return nil, fmt.Errorf("decoding IPMI 1.5 packet: %w: message length %d, %d bytes left", ErrShort, n, len(s)-10)
	}
	if len(s) > 10+n+1 { // some BMCs add one legacy pad byte
		return nil, fmt.Errorf("decoding IPMI 1.5 packet: %w: %d trailing bytes", ErrFormat, len(s)-10-n)
	}
	return bytes.Clone(s[10 : 10+n]), nil
}

// IsV20 reports whether an RMCP IPMI-class packet uses the IPMI 2.0
// (RMCP+) session format, so a receiver can pick DecodePacket or DecodeV15.
func IsV20(b []byte) bool {
	return len(b) > RMCPHeaderLen && b[RMCPHeaderLen] == authTypeRMCPPlus
}
