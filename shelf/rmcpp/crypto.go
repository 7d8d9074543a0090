package rmcpp

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"log/slog"
	"slices"
)

// AuthAlg is an RMCP+ authentication (RAKP) algorithm (IPMI 2.0 table 13-17).
type AuthAlg uint8

// IntegrityAlg is an RMCP+ integrity algorithm (IPMI 2.0 table 13-18).
type IntegrityAlg uint8

// ConfAlg is an RMCP+ confidentiality algorithm (IPMI 2.0 table 13-19).
type ConfAlg uint8

// Algorithms. Only the ones of suites 3 and 17 are implemented; the others
// are named so that errors can say what a BMC offered.
const (
	AuthNone       AuthAlg = 0x00
	AuthHMACSHA1   AuthAlg = 0x01
	AuthHMACMD5    AuthAlg = 0x02
	AuthHMACSHA256 AuthAlg = 0x03

	IntegrityNone          IntegrityAlg = 0x00
	IntegrityHMACSHA1_96   IntegrityAlg = 0x01
	IntegrityHMACMD5_128   IntegrityAlg = 0x02
	IntegrityMD5_128       IntegrityAlg = 0x03
	IntegrityHMACSHA256128 IntegrityAlg = 0x04

	ConfNone      ConfAlg = 0x00
	ConfAESCBC128 ConfAlg = 0x01
	ConfXRC4_128  ConfAlg = 0x02
	ConfXRC4_40   ConfAlg = 0x03
)

func (a AuthAlg) String() string {
	switch a {
	case AuthNone:
		return "RAKP-none"
	case AuthHMACSHA1:
		return "RAKP-HMAC-SHA1"
	case AuthHMACMD5:
		return "RAKP-HMAC-MD5"
	case AuthHMACSHA256:
		return "RAKP-HMAC-SHA256"
	}
	return fmt.Sprintf("auth-0x%02x", uint8(a))
}

func (a IntegrityAlg) String() string {
	switch a {
	case IntegrityNone:
		return "none"
	case IntegrityHMACSHA1_96:
		return "HMAC-SHA1-96"
	case IntegrityHMACMD5_128:
		return "HMAC-MD5-128"
	case IntegrityMD5_128:
		return "MD5-128"
	case IntegrityHMACSHA256128:
		return "HMAC-SHA256-128"
	}
	return fmt.Sprintf("integrity-0x%02x", uint8(a))
}

func (a ConfAlg) String() string {
	switch a {
	case ConfNone:
		return "none"
	case ConfAESCBC128:
		return "AES-CBC-128"
	case ConfXRC4_128:
		return "xRC4-128"
	case ConfXRC4_40:
		return "xRC4-40"
	}
	return fmt.Sprintf("conf-0x%02x", uint8(a))
}

func (a AuthAlg) hash() func() hash.Hash {
	switch a {
	case AuthHMACSHA1:
		return sha1.New
	case AuthHMACSHA256:
		return sha256.New
	}
	return nil
}

// icvLen is the RAKP4 integrity check value length.
func (a AuthAlg) icvLen() int {
	switch a {
	case AuthHMACSHA1:
		return 12
	case AuthHMACSHA256:
		return 16
	}
	return 0
}

// AuthCodeLen is the length of the RAKP2/RAKP3 auth codes for a.
func (a AuthAlg) AuthCodeLen() int {
	switch a {
	case AuthHMACSHA1:
		return sha1.Size
	case AuthHMACSHA256:
		return sha256.Size
	}
	return 0
}

// ICVLen is the length of the RAKP4 integrity check value for a.
func (a AuthAlg) ICVLen() int { return a.icvLen() }

func (a IntegrityAlg) hash() func() hash.Hash {
	switch a {
	case IntegrityHMACSHA1_96:
		return sha1.New
	case IntegrityHMACSHA256128:
		return sha256.New
	}
	return nil
}

func (a IntegrityAlg) codeLen() int {
	switch a {
	case IntegrityHMACSHA1_96:
		return 12
	case IntegrityHMACSHA256128:
		return 16
	}
	return 0
}

// Suite is an RMCP+ cipher suite.
type Suite struct {
	ID        int
	Auth      AuthAlg
	Integrity IntegrityAlg
	Conf      ConfAlg
}

func (s Suite) String() string {
	return fmt.Sprintf("cipher suite %d (%s, %s, %s)", s.ID, s.Auth, s.Integrity, s.Conf)
}

// suites are the only cipher suites hpiagent will use: both have RAKP
// authentication, integrity and confidentiality.
var suites = [...]Suite{
	{ID: 3, Auth: AuthHMACSHA1, Integrity: IntegrityHMACSHA1_96, Conf: ConfAESCBC128},
	{ID: 17, Auth: AuthHMACSHA256, Integrity: IntegrityHMACSHA256128, Conf: ConfAESCBC128},
}

// LookupSuite returns cipher suite id if policy allows it (3 or 17).
// Every other suite, in particular 0 and any suite lacking integrity or
// confidentiality, is refused with ErrSuiteRefused.
func LookupSuite(id int) (Suite, error) {
	for _, s := range suites {
		if s.ID == id {
			return s, nil
		}
	}
	return Suite{}, fmt.Errorf("%w: cipher suite %d is not allowed (allowed: 3, 17)", ErrSuiteRefused, id)
}

// SuiteFor returns the allowed suite made of exactly these algorithms.
func SuiteFor(a AuthAlg, i IntegrityAlg, c ConfAlg) (Suite, error) {
	for _, s := range suites {
		if s.Auth == a && s.Integrity == i && s.Conf == c {
			return s, nil
		}
	}
	return Suite{}, fmt.Errorf("%w: %s/%s/%s is not an allowed combination", ErrSuiteRefused, a, i, c)
}

// SessionKeys are the keys and algorithms protecting the packets of one
// established session. K1 keys the integrity code, the first 16 bytes of
// K2 the AES-CBC-128 payload encryption.
type SessionKeys struct {
	Integrity IntegrityAlg
	Conf      ConfAlg
	K1        []byte
	K2        []byte
}

// String describes k without the keys.
func (k SessionKeys) String() string {
	return fmt.Sprintf("rmcpp.SessionKeys{Integrity:%s Conf:%s K1:%s K2:%s}", k.Integrity, k.Conf, redacted(k.K1), redacted(k.K2))
}

// GoString describes k without the keys (fmt's %#v).
func (k SessionKeys) GoString() string { return k.String() }

// Format makes every fmt verb print String, so that no verb shows K1 or K2.
func (k SessionKeys) Format(f fmt.State, verb rune) { formatRedacted(f, verb, k.String()) }

// LogValue keeps the keys out of structured logs.
func (k SessionKeys) LogValue() slog.Value {
	return slog.GroupValue(slog.String("integrity", k.Integrity.String()), slog.String("confidentiality", k.Conf.String()))
}

func (k *SessionKeys) check() error {
	if k.Integrity.hash() == nil || k.Conf != ConfAESCBC128 {
		return fmt.Errorf("%w: session keys for %s/%s", ErrSuiteRefused, k.Integrity, k.Conf)
	}
	if len(k.K1) == 0 || len(k.K2) < 16 {
		return fmt.Errorf("%w: session keys missing (K1 %d bytes, K2 %d bytes)", ErrFormat, len(k.K1), len(k.K2))
	}
	return nil
}

func (k *SessionKeys) authCode(b []byte) []byte {
	m := hmac.New(k.Integrity.hash(), k.K1)
	m.Write(b)
	return m.Sum(nil)[:k.Integrity.codeLen()]
}

// Handshake holds what both sides of RAKP know after RAKP 2 and computes
// the codes of IPMI 2.0 §13.31–13.32. IDs are as carried on the wire
// (little-endian); Role is the byte sent in RAKP 1 (privilege level and
// the name-only lookup bit); Username is at most 16 bytes.
type Handshake struct {
	Auth             AuthAlg
	ConsoleSessionID uint32   // SID_M, chosen by the remote console
	BMCSessionID     uint32   // SID_C, chosen by the managed system
	ConsoleRandom    [16]byte // R_M
	BMCRandom        [16]byte // R_C
	BMCGUID          [16]byte // GUID_C
	Role             uint8
	Username         []byte
}

func (h *Handshake) mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(h.Auth.hash(), key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func (h *Handshake) user() []byte {
	return append([]byte{h.Role, uint8(len(h.Username))}, h.Username...)
}

func (h *Handshake) checkAlg() error {
	if h.Auth.hash() == nil {
		return fmt.Errorf("%w: authentication algorithm %s", ErrSuiteRefused, h.Auth)
	}
	return nil
}

// RAKP2AuthCode is the key exchange authentication code the BMC sends in
// RAKP 2: HMAC_Kuid(SID_M, SID_C, R_M, R_C, GUID_C, Role, ULen, UName).
func (h *Handshake) RAKP2AuthCode(kuid []byte) []byte {
	return h.mac(kuid, le32(h.ConsoleSessionID), le32(h.BMCSessionID), h.ConsoleRandom[:], h.BMCRandom[:], h.BMCGUID[:], h.user())
}

// RAKP3AuthCode is the code the console sends in RAKP 3:
// HMAC_Kuid(R_C, SID_M, Role, ULen, UName).
func (h *Handshake) RAKP3AuthCode(kuid []byte) []byte {
	return h.mac(kuid, h.BMCRandom[:], le32(h.ConsoleSessionID), h.user())
}

// SIK is the session integrity key: HMAC_KG(R_M, R_C, Role, ULen, UName).
// kg is the BMC key K_G, or the user password when no K_G is set.
func (h *Handshake) SIK(kg []byte) []byte {
	return h.mac(kg, h.ConsoleRandom[:], h.BMCRandom[:], h.user())
}

// RAKP4ICV is the integrity check value the BMC sends in RAKP 4:
// HMAC_SIK(R_M, SID_C, GUID_C), truncated (12 bytes for SHA1, 16 for SHA256).
func (h *Handshake) RAKP4ICV(sik []byte) []byte {
	return h.mac(sik, h.ConsoleRandom[:], le32(h.BMCSessionID), h.BMCGUID[:])[:h.Auth.icvLen()]
}

// Keys derives K1 and K2 from the SIK (K_n = HMAC_SIK(constant n, 20
// bytes)) for the integrity and confidentiality algorithms of suite s.
func (h *Handshake) Keys(sik []byte, s Suite) *SessionKeys {
	c1 := slices.Repeat([]byte{1}, 20)
	c2 := slices.Repeat([]byte{2}, 20)
	return &SessionKeys{Integrity: s.Integrity, Conf: s.Conf, K1: h.mac(sik, c1), K2: h.mac(sik, c2)}
}

// VerifyRAKP2 checks the auth code of a RAKP 2 message (client side).
func (h *Handshake) VerifyRAKP2(kuid, code []byte) error {
	if err := h.checkAlg(); err != nil {
		return err
	}
	if !hmac.Equal(h.RAKP2AuthCode(kuid), code) {
		return fmt.Errorf("verifying RAKP 2 key exchange auth code: %w (wrong user name or password?)", ErrAuthCode)
	}
	return nil
}

// VerifyRAKP3 checks the auth code of a RAKP 3 message (server side).
func (h *Handshake) VerifyRAKP3(kuid, code []byte) error {
	if err := h.checkAlg(); err != nil {
		return err
	}
	if !hmac.Equal(h.RAKP3AuthCode(kuid), code) {
		return fmt.Errorf("verifying RAKP 3 auth code: %w", ErrAuthCode)
	}
	return nil
}

// VerifyRAKP4 checks the integrity check value of RAKP 4 (client side).
func (h *Handshake) VerifyRAKP4(sik, icv []byte) error {
	if err := h.checkAlg(); err != nil {
		return err
	}
	if !hmac.Equal(h.RAKP4ICV(sik), icv) {
		return fmt.Errorf("verifying RAKP 4 integrity check value: %w (wrong K_G?)", ErrAuthCode)
	}
	return nil
}
