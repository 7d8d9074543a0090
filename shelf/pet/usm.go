package pet

import (
	"crypto/aes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"log/slog"
)

// AuthProtocol is a USM authentication protocol.
type AuthProtocol int

// USM authentication protocols.
const (
	// AuthNone: no authentication (noAuthNoPriv users only).
	AuthNone AuthProtocol = iota
	// AuthSHA is usmHMACSHAAuthProtocol, HMAC-SHA-1-96 (RFC 3414 §7),
	// net-snmp "-a SHA".
	AuthSHA
	// AuthSHA256 is usmHMAC192SHA256AuthProtocol (RFC 7860), net-snmp
	// "-a SHA-256".
	AuthSHA256
)

// String names the protocol as net-snmp does.
func (a AuthProtocol) String() string {
	switch a {
	case AuthNone:
		return "none"
	case AuthSHA:
		return "SHA"
	case AuthSHA256:
		return "SHA-256"
	}
	return fmt.Sprintf("AuthProtocol(%d)", int(a))
}

func (a AuthProtocol) hash() func() hash.Hash {
	if a == AuthSHA256 {
		return sha256.New
	}
	return sha1.New
}

// macLen is the length of msgAuthenticationParameters.
func (a AuthProtocol) macLen() int {
	if a == AuthSHA256 {
		return 24
	}
	return 12
}

// PrivProtocol is a USM privacy protocol.
type PrivProtocol int

// USM privacy protocols.
const (
	// PrivNone: no encryption (authNoPriv and noAuthNoPriv users only).
	PrivNone PrivProtocol = iota
	// PrivAES128 is usmAESCfb128Protocol (RFC 3826), net-snmp "-x AES".
	PrivAES128
)

// String names the protocol as net-snmp does.
func (p PrivProtocol) String() string {
	switch p {
	case PrivNone:
		return "none"
	case PrivAES128:
		return "AES"
	}
	return fmt.Sprintf("PrivProtocol(%d)", int(p))
}

// Secret holds a passphrase or key. It formats and logs as "REDACTED" so
// that it never reaches a log line or an error string by accident.
type Secret []byte

const redacted = "REDACTED"

// String returns a fixed placeholder.
func (Secret) String() string { return redacted }

// GoString returns a fixed placeholder.
func (Secret) GoString() string { return redacted }

// Format prints a fixed placeholder for every verb.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue keeps the secret out of slog output.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText keeps the secret out of JSON and text encodings.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// User is a USM user allowed to send traps. The keys are derived from the
// passphrases (RFC 3414 A.2) and localized to the sending engine: for
// traps the sender is the authoritative engine.
type User struct {
	Name           string
	Auth           AuthProtocol
	AuthPassphrase Secret
	Priv           PrivProtocol
	PrivPassphrase Secret
	// EngineIDs, when not empty, are the only authoritative (sending)
	// engine IDs accepted for this user, as net-snmp's
	// "createUser -e ENGINEID". Empty accepts any engine that proves
	// knowledge of the keys.
	EngineIDs [][]byte
}

// LogValue describes u without its passphrases.
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", u.Name), slog.String("auth", u.Auth.String()),
		slog.String("priv", u.Priv.String()), slog.Int("engines", len(u.EngineIDs)))
}

// level is the security level the user supports.
func (u User) level() SecurityLevel {
	switch {
	case u.Auth != AuthNone && u.Priv != PrivNone:
		return AuthPriv
	case u.Auth != AuthNone:
		return AuthNoPriv
	}
	return NoAuthNoPriv
}

// usmUser is a configured user with its master keys (Ku).
type usmUser struct {
	name    string
	auth    AuthProtocol
	priv    PrivProtocol
	authKu  []byte
	privKu  []byte
	engines map[string]bool // nil: any engine
}

func newUSMUser(u User) (*usmUser, error) {
	if u.Name == "" || len(u.Name) > 32 {
		return nil, fmt.Errorf("user name %q: want 1 to 32 bytes", u.Name)
	}
	switch u.Auth {
	case AuthNone, AuthSHA, AuthSHA256:
	default:
		return nil, fmt.Errorf("user %q: unsupported auth protocol %v", u.Name, u.Auth)
	}
	switch u.Priv {
	case PrivNone, PrivAES128:
	default:
		return nil, fmt.Errorf("user %q: unsupported privacy protocol %v", u.Name, u.Priv)
	}
	if u.Priv != PrivNone && u.Auth == AuthNone {
		return nil, fmt.Errorf("user %q: privacy without authentication", u.Name)
	}
	uu := &usmUser{name: u.Name, auth: u.Auth, priv: u.Priv}
	if u.Auth != AuthNone {
		// RFC 3414 §11.2: at least 8 characters.
		if len(u.AuthPassphrase) < 8 {
			return nil, fmt.Errorf("user %q: auth passphrase shorter than 8 bytes", u.Name)
		}
		uu.authKu = passwordToKey(u.Auth.hash(), u.AuthPassphrase)
	}
	if u.Priv != PrivNone {
		if len(u.PrivPassphrase) < 8 {
			return nil, fmt.Errorf("user %q: privacy passphrase shorter than 8 bytes", u.Name)
		}
		// The privacy key is derived with the authentication hash.
		uu.privKu = passwordToKey(u.Auth.hash(), u.PrivPassphrase)
	}
	if len(u.EngineIDs) > 0 {
		uu.engines = make(map[string]bool, len(u.EngineIDs))
		for _, e := range u.EngineIDs {
			if len(e) < 5 || len(e) > 32 {
				return nil, fmt.Errorf("user %q: engine ID %x: want 5 to 32 bytes", u.Name, e)
			}
			uu.engines[string(e)] = true
		}
	}
	return uu, nil
}

// passwordToKey is the password to key algorithm of RFC 3414 A.2: the
// hash of 1 MiB of the repeated passphrase.
func passwordToKey(newHash func() hash.Hash, pass []byte) []byte {
	h := newHash()
	const total = 1 << 20
	buf := make([]byte, 64)
	idx := 0
	for n := 0; n < total; n += len(buf) {
		for i := range buf {
			buf[i] = pass[idx%len(pass)]
			idx++
		}
		h.Write(buf)
	}
	return h.Sum(nil)
}

// localizeKey is Kul = H(Ku | engineID | Ku) (RFC 3414 A.2).
func localizeKey(newHash func() hash.Hash, ku, engineID []byte) []byte {
	h := newHash()
	h.Write(ku)
	h.Write(engineID)
	h.Write(ku)
	return h.Sum(nil)
}

// offsetIn returns the offset of sub inside whole; sub must alias whole.
func offsetIn(whole, sub []byte) (int, bool) {
	off := cap(whole) - cap(sub)
	if off < 0 || off+len(sub) > len(whole) || (len(sub) > 0 && &whole[off] != &sub[0]) {
		return 0, false
	}
	return off, true
}

// authenticate checks msgAuthenticationParameters of a whole message
// (RFC 3414 §6.3.2, RFC 7860 §4.2.2): the HMAC over the message with the
// parameters zeroed, keyed with the user's key localized to engineID.
func (u *usmUser) authenticate(whole []byte, p *usmParams) bool {
	n := u.auth.macLen()
	if len(p.authParams) != n {
		return false
	}
	off, ok := offsetIn(whole, p.authParams)
	if !ok {
		return false
	}
	buf := make([]byte, len(whole))
	copy(buf, whole)
	clear(buf[off : off+n])
	key := localizeKey(u.auth.hash(), u.authKu, p.engineID)
	m := hmac.New(u.auth.hash(), key)
	m.Write(buf)
	return hmac.Equal(m.Sum(nil)[:n], p.authParams)
}

// decrypt decrypts the encryptedPDU with AES-128 in CFB-128 mode
// (RFC 3826 §3.1.4): IV = engine boots | engine time | salt.
func (u *usmUser) decrypt(p *usmParams, ct []byte) ([]byte, error) {
	if u.priv != PrivAES128 {
		return nil, fmt.Errorf("user %q has no privacy protocol", u.name)
	}
	if len(p.privParams) != 8 {
		return nil, fmt.Errorf("msgPrivacyParameters of %d bytes, want 8", len(p.privParams))
	}
	key := localizeKey(u.auth.hash(), u.privKu, p.engineID)[:16]
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("AES key: %w", err)
	}
	var iv [16]byte
	binary.BigEndian.PutUint32(iv[0:], uint32(p.boots))
	binary.BigEndian.PutUint32(iv[4:], uint32(p.time))
	copy(iv[8:], p.privParams)
	out := make([]byte, len(ct))
	prev := iv[:]
	var ks [16]byte
	for i := 0; i < len(ct); i += 16 {
		block.Encrypt(ks[:], prev)
		end := min(i+16, len(ct))
		for j := i; j < end; j++ {
			out[j] = ct[j] ^ ks[j-i]
		}
		prev = ct[i:end]
	}
	return out, nil
}
