package rmcpp

import (
	"encoding/binary"
	"fmt"
)

// Privilege is an IPMI privilege level.
type Privilege uint8

// Privilege levels (IPMI 2.0 table 22-22).
const (
	PrivilegeCallback      Privilege = 1
	PrivilegeUser          Privilege = 2
	PrivilegeOperator      Privilege = 3
	PrivilegeAdministrator Privilege = 4
	PrivilegeOEM           Privilege = 5
)

func (p Privilege) String() string {
	switch p {
	case 0:
		return "highest available"
	case PrivilegeCallback:
		return "callback"
	case PrivilegeUser:
		return "user"
	case PrivilegeOperator:
		return "operator"
	case PrivilegeAdministrator:
		return "administrator"
	case PrivilegeOEM:
		return "OEM"
	}
	return fmt.Sprintf("privilege 0x%x", uint8(p))
}

// Status is an RMCP+ and RAKP message status code (IPMI 2.0 table 13-15).
type Status uint8

var statusNames = map[Status]string{
	0x00: "no errors",
	0x01: "insufficient resources to create a session",
	0x02: "invalid session ID",
	0x03: "invalid payload type",
	0x04: "invalid authentication algorithm",
	0x05: "invalid integrity algorithm",
	0x06: "no matching authentication payload",
	0x07: "no matching integrity payload",
	0x08: "inactive session ID",
	0x09: "invalid role",
	0x0A: "unauthorized role or privilege level requested",
	0x0B: "insufficient resources to create a session at the requested role",
	0x0C: "invalid name length",
	0x0D: "unauthorized name",
	0x0E: "unauthorized GUID",
	0x0F: "invalid integrity check value",
	0x10: "invalid confidentiality algorithm",
	0x11: "no cipher suite match with proposed security algorithms",
	0x12: "illegal or unrecognized parameter",
}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return fmt.Sprintf("0x%02x (%s)", uint8(s), n)
	}
	return fmt.Sprintf("0x%02x", uint8(s))
}

// StatusError is a non-zero status in an Open Session Response or RAKP
// message from the BMC.
type StatusError struct {
	Stage  string // "Open Session", "RAKP 2", "RAKP 4"
	Status Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s refused by the BMC: status %s", e.Stage, e.Status)
}

// OpenSessionRequest is the Open Session Request payload (IPMI 2.0 §13.17).
type OpenSessionRequest struct {
	Tag              uint8
	MaxPrivilege     Privilege // requested maximum privilege; 0 = highest the user has
	ConsoleSessionID uint32
	Auth             AuthAlg
	Integrity        IntegrityAlg
	Conf             ConfAlg
}

func algPayload(kind, alg uint8) []byte { return []byte{kind, 0, 0, 8, alg, 0, 0, 0} }

// Marshal encodes the request.
func (m OpenSessionRequest) Marshal() []byte {
	b := []byte{m.Tag, uint8(m.MaxPrivilege) & 0x0f, 0, 0}
	b = binary.LittleEndian.AppendUint32(b, m.ConsoleSessionID)
	b = append(b, algPayload(0, uint8(m.Auth))...)
	b = append(b, algPayload(1, uint8(m.Integrity))...)
	return append(b, algPayload(2, uint8(m.Conf))...)
}

// parseAlgs decodes the three 8-byte algorithm payloads.
func parseAlgs(b []byte, what string) (AuthAlg, IntegrityAlg, ConfAlg, error) {
	var algs [3]uint8
	for i := range 3 {
		p := b[8*i : 8*i+8]
		if p[0] != uint8(i) || p[3] != 8 {
			return 0, 0, 0, fmt.Errorf("decoding %s: %w: algorithm payload %d has type 0x%02x length %d", what, ErrFormat, i, p[0], p[3])
		}
		algs[i] = p[4] & 0x3f
	}
	return AuthAlg(algs[0]), IntegrityAlg(algs[1]), ConfAlg(algs[2]), nil
}

// ParseOpenSessionRequest decodes an Open Session Request (server side).
func ParseOpenSessionRequest(b []byte) (OpenSessionRequest, error) {
	if len(b) != 32 {
		return OpenSessionRequest{}, fmt.Errorf("decoding Open Session Request: %w: %d bytes, want 32", ErrShort, len(b))
	}
	a, i, c, err := parseAlgs(b[8:], "Open Session Request")
	if err != nil {
		return OpenSessionRequest{}, err
	}
	return OpenSessionRequest{
		Tag: b[0], MaxPrivilege: Privilege(b[1] & 0x0f),
		ConsoleSessionID: binary.LittleEndian.Uint32(b[4:]),
		Auth:             a, Integrity: i, Conf: c,
	}, nil
}

// OpenSessionResponse is the Open Session Response payload (IPMI 2.0 §13.18).
type OpenSessionResponse struct {
	Tag              uint8
	Status           Status
	MaxPrivilege     Privilege
	ConsoleSessionID uint32
	BMCSessionID     uint32
	Auth             AuthAlg
	Integrity        IntegrityAlg
	Conf             ConfAlg
}

// Marshal encodes the response; with a non-zero Status only the first 8
// bytes are sent, as the specification allows.
func (m OpenSessionResponse) Marshal() []byte {
	b := []byte{m.Tag, uint8(m.Status), uint8(m.MaxPrivilege) & 0x0f, 0}
	b = binary.LittleEndian.AppendUint32(b, m.ConsoleSessionID)
	if m.Status != 0 {
		return b
	}
	b = binary.LittleEndian.AppendUint32(b, m.BMCSessionID)
	b = append(b, algPayload(0, uint8(m.Auth))...)
	b = append(b, algPayload(1, uint8(m.Integrity))...)
	return append(b, algPayload(2, uint8(m.Conf))...)
}

// ParseOpenSessionResponse decodes an Open Session Response (client side).
// A response with a non-zero status may be short; its other fields are
// then zero.
func ParseOpenSessionResponse(b []byte) (OpenSessionResponse, error) {
	if len(b) < 2 {
		return OpenSessionResponse{}, fmt.Errorf("decoding Open Session Response: %w: %d bytes", ErrShort, len(b))
	}
	m := OpenSessionResponse{Tag: b[0], Status: Status(b[1])}
	if m.Status != 0 {
		if len(b) >= 8 {
			m.MaxPrivilege = Privilege(b[2] & 0x0f)
			m.ConsoleSessionID = binary.LittleEndian.Uint32(b[4:])
		}
		return m, nil
	}
	if len(b) != 36 {
		return OpenSessionResponse{}, fmt.Errorf("decoding Open Session Response: %w: %d bytes, want 36", ErrShort, len(b))
	}
	m.MaxPrivilege = Privilege(b[2] & 0x0f)
	m.ConsoleSessionID = binary.LittleEndian.Uint32(b[4:])
	m.BMCSessionID = binary.LittleEndian.Uint32(b[8:])
	var err error
	m.Auth, m.Integrity, m.Conf, err = parseAlgs(b[12:], "Open Session Response")
	if err != nil {
		return OpenSessionResponse{}, err
	}
	return m, nil
}

// RAKP1 is the RAKP Message 1 payload (IPMI 2.0 §13.20).
type RAKP1 struct {
	Tag           uint8
	BMCSessionID  uint32
	ConsoleRandom [16]byte
	Role          uint8 // requested privilege (bits 3:0) | 0x10 for name-only lookup
	Username      []byte
}

// Marshal encodes the message.
func (m RAKP1) Marshal() []byte {
	b := []byte{m.Tag, 0, 0, 0}
	b = binary.LittleEndian.AppendUint32(b, m.BMCSessionID)
	b = append(b, m.ConsoleRandom[:]...)
	b = append(b, m.Role, 0, 0, uint8(len(m.Username)))
	return append(b, m.Username...)
}

// ParseRAKP1 decodes a RAKP 1 message (server side).
func ParseRAKP1(b []byte) (RAKP1, error) {
	if len(b) < 28 {
		return RAKP1{}, fmt.Errorf("decoding RAKP 1: %w: %d bytes", ErrShort, len(b))
	}
	n := int(b[27])
	if n > 16 {
		return RAKP1{}, fmt.Errorf("decoding RAKP 1: %w: user name length %d", ErrFormat, n)
	}
	if len(b) != 28+n {
		return RAKP1{}, fmt.Errorf("decoding RAKP 1: %w: %d bytes for a user name of %d", ErrShort, len(b), n)
	}
	m := RAKP1{Tag: b[0], BMCSessionID: binary.LittleEndian.Uint32(b[4:]), Role: b[24], Username: append([]byte{}, b[28:]...)}
	copy(m.ConsoleRandom[:], b[8:24])
	return m, nil
}

// RAKP2 is the RAKP Message 2 payload (IPMI 2.0 §13.21).
type RAKP2 struct {
	Tag              uint8
	Status           Status
	ConsoleSessionID uint32
	BMCRandom        [16]byte
	BMCGUID          [16]byte
	AuthCode         []byte
}

// Marshal encodes the message.
func (m RAKP2) Marshal() []byte {
	b := []byte{m.Tag, uint8(m.Status), 0, 0}
	b = binary.LittleEndian.AppendUint32(b, m.ConsoleSessionID)
	if m.Status != 0 {
		return b
	}
	b = append(b, m.BMCRandom[:]...)
	b = append(b, m.BMCGUID[:]...)
	return append(b, m.AuthCode...)
}

// ParseRAKP2 decodes a RAKP 2 message (client side) for authentication
// algorithm auth, which fixes the auth code length.
func ParseRAKP2(b []byte, auth AuthAlg) (RAKP2, error) {
	if len(b) < 2 {
		return RAKP2{}, fmt.Errorf("decoding RAKP 2: %w: %d bytes", ErrShort, len(b))
	}
	m := RAKP2{Tag: b[0], Status: Status(b[1])}
	if m.Status != 0 {
		if len(b) >= 8 {
			m.ConsoleSessionID = binary.LittleEndian.Uint32(b[4:])
		}
		return m, nil
	}
	want := 40 + auth.AuthCodeLen()
	if auth.AuthCodeLen() == 0 {
		return RAKP2{}, fmt.Errorf("decoding RAKP 2: %w: authentication algorithm %s", ErrSuiteRefused, auth)
	}
	if len(b) != want {
		return RAKP2{}, fmt.Errorf("decoding RAKP 2: %w: %d bytes, want %d for %s", ErrShort, len(b), want, auth)
	}
	m.ConsoleSessionID = binary.LittleEndian.Uint32(b[4:])
	copy(m.BMCRandom[:], b[8:24])
	copy(m.BMCGUID[:], b[24:40])
	m.AuthCode = append([]byte{}, b[40:]...)
	return m, nil
}

// RAKP3 is the RAKP Message 3 payload (IPMI 2.0 §13.22).
type RAKP3 struct {
	Tag          uint8
	Status       Status
	BMCSessionID uint32
	AuthCode     []byte
}

// Marshal encodes the message.
func (m RAKP3) Marshal() []byte {
	b := []byte{m.Tag, uint8(m.Status), 0, 0}
	b = binary.LittleEndian.AppendUint32(b, m.BMCSessionID)
	return append(b, m.AuthCode...)
}

// ParseRAKP3 decodes a RAKP 3 message (server side) for algorithm auth.
func ParseRAKP3(b []byte, auth AuthAlg) (RAKP3, error) {
	if len(b) < 8 {
		return RAKP3{}, fmt.Errorf("decoding RAKP 3: %w: %d bytes", ErrShort, len(b))
	}
	m := RAKP3{Tag: b[0], Status: Status(b[1]), BMCSessionID: binary.LittleEndian.Uint32(b[4:])}
	if m.Status != 0 {
		return m, nil
	}
	if auth.AuthCodeLen() == 0 {
		return RAKP3{}, fmt.Errorf("decoding RAKP 3: %w: authentication algorithm %s", ErrSuiteRefused, auth)
	}
	if len(b) != 8+auth.AuthCodeLen() {
		return RAKP3{}, fmt.Errorf("decoding RAKP 3: %w: %d bytes, want %d for %s", ErrShort, len(b), 8+auth.AuthCodeLen(), auth)
	}
	m.AuthCode = append([]byte{}, b[8:]...)
	return m, nil
}

// RAKP4 is the RAKP Message 4 payload (IPMI 2.0 §13.23).
type RAKP4 struct {
	Tag              uint8
	Status           Status
	ConsoleSessionID uint32
	ICV              []byte
}

// Marshal encodes the message.
func (m RAKP4) Marshal() []byte {
	b := []byte{m.Tag, uint8(m.Status), 0, 0}
	b = binary.LittleEndian.AppendUint32(b, m.ConsoleSessionID)
	if m.Status != 0 {
		return b
	}
	return append(b, m.ICV...)
}

// ParseRAKP4 decodes a RAKP 4 message (client side) for algorithm auth.
func ParseRAKP4(b []byte, auth AuthAlg) (RAKP4, error) {
	if len(b) < 2 {
		return RAKP4{}, fmt.Errorf("decoding RAKP 4: %w: %d bytes", ErrShort, len(b))
	}
	m := RAKP4{Tag: b[0], Status: Status(b[1])}
	if m.Status != 0 {
		if len(b) >= 8 {
			m.ConsoleSessionID = binary.LittleEndian.Uint32(b[4:])
		}
		return m, nil
	}
	if auth.icvLen() == 0 {
		return RAKP4{}, fmt.Errorf("decoding RAKP 4: %w: authentication algorithm %s", ErrSuiteRefused, auth)
	}
	if len(b) != 8+auth.icvLen() {
		return RAKP4{}, fmt.Errorf("decoding RAKP 4: %w: %d bytes, want %d for %s", ErrShort, len(b), 8+auth.icvLen(), auth)
	}
	m.ConsoleSessionID = binary.LittleEndian.Uint32(b[4:])
	m.ICV = append([]byte{}, b[8:]...)
	return m, nil
}
