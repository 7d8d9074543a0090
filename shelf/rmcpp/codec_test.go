package rmcpp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"math/rand/v2"
	"testing"
)

// detRand is a deterministic io.Reader for IVs in tests.
type detRand struct{ r *rand.ChaCha8 }

func newDetRand(seed byte) *detRand {
	var s [32]byte
	s[0] = seed
	return &detRand{rand.NewChaCha8(s)}
}
func (d *detRand) Read(p []byte) (int, error) { return d.r.Read(p) }

func testKeys(s Suite, seed byte) *SessionKeys {
	h := Handshake{Auth: s.Auth}
	sik := bytes.Repeat([]byte{seed}, 20)
	return h.Keys(sik, s)
}

var suite3 = Suite{ID: 3, Auth: AuthHMACSHA1, Integrity: IntegrityHMACSHA1_96, Conf: ConfAESCBC128}
var suite17 = Suite{ID: 17, Auth: AuthHMACSHA256, Integrity: IntegrityHMACSHA256128, Conf: ConfAESCBC128}

func TestPacketRoundTrip(t *testing.T) {
	for _, s := range []Suite{suite3, suite17} {
		for n := 0; n <= 40; n++ {
			keys := testKeys(s, 7)
			payload := bytes.Repeat([]byte{0xA5}, n)
			p := Packet{Type: PayloadIPMI, SessionID: 0x11223344, Seq: uint32(n + 1), Payload: payload}
			b, err := EncodePacket(p, keys, newDetRand(1))
			if err != nil {
				t.Fatal(err)
			}
			ac := s.Integrity.codeLen()
			// Layout checks, computed independently of the encoder.
			if b[4] != 0x06 || b[5] != 0xC0 {
				t.Fatalf("suite %d n=%d: format/flags % x", s.ID, n, b[4:6])
			}
			if got := binary.LittleEndian.Uint32(b[6:]); got != p.SessionID {
				t.Fatalf("session id %x", got)
			}
			plen := int(binary.LittleEndian.Uint16(b[14:]))
			if plen%16 != 0 || plen < 16+n+1 || plen > 16+n+16 {
				t.Fatalf("suite %d n=%d: encrypted length %d", s.ID, n, plen)
			}
			if (len(b)-4-ac)%4 != 0 {
				t.Fatalf("suite %d n=%d: integrity-covered length %d not a multiple of 4", s.ID, n, len(b)-4-ac)
			}
			var hf func() hash.Hash = sha1.New
			if s.ID == 17 {
				hf = sha256.New
			}
			m := hmac.New(hf, keys.K1)
			m.Write(b[4 : len(b)-ac])
			if !bytes.Equal(m.Sum(nil)[:ac], b[len(b)-ac:]) {
				t.Fatalf("suite %d n=%d: auth code mismatch", s.ID, n)
			}
			// Decrypt independently.
			enc := b[16 : 16+plen]
			blk, _ := aes.NewCipher(keys.K2[:16])
			clear := make([]byte, plen-16)
			cipher.NewCBCDecrypter(blk, enc[:16]).CryptBlocks(clear, enc[16:])
			pad := int(clear[len(clear)-1])
			if len(clear)-1-pad != n {
				t.Fatalf("suite %d n=%d: pad length %d", s.ID, n, pad)
			}
			for i := 0; i < pad; i++ {
				if clear[n+i] != byte(i+1) {
					t.Fatalf("pad byte %d = %d", i, clear[n+i])
				}
			}
			got, err := DecodePacket(b, keys)
			if err != nil {
				t.Fatalf("suite %d n=%d: %v", s.ID, n, err)
			}
			if !bytes.Equal(got.Payload, payload) || got.Seq != p.Seq || got.SessionID != p.SessionID || got.Type != p.Type {
				t.Fatalf("round trip: %+v", got)
			}
		}
	}
}

// reseal recomputes the integrity code after a test tampered with the
// covered bytes, so that a later check is reached.
func reseal(b []byte, k *SessionKeys) []byte {
	ac := k.Integrity.codeLen()
	copy(b[len(b)-ac:], k.authCode(b[4:len(b)-ac]))
	return b
}

// encryptRaw encrypts clear (already padded by the test) under k.
func encryptRaw(k *SessionKeys, clear []byte) []byte {
	blk, _ := aes.NewCipher(k.K2[:16])
	out := make([]byte, 16+len(clear))
	cipher.NewCBCEncrypter(blk, out[:16]).CryptBlocks(out[16:], clear)
	return out
}

func sessionPacket(k *SessionKeys, payload []byte) []byte {
	b := []byte{6, 0, 0xff, 7, 6, 0xC0, 1, 0, 0, 0, 5, 0, 0, 0}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(payload)))
	b = append(b, payload...)
	pad := (4 - (len(b)-4+2)%4) % 4
	for range pad {
		b = append(b, 0xff)
	}
	b = append(b, byte(pad), 7)
	b = append(b, make([]byte, k.Integrity.codeLen())...)
	return reseal(b, k)
}

func TestDecodePacketRejects(t *testing.T) {
	k := testKeys(suite17, 3)
	other := testKeys(suite17, 4)
	good, err := EncodePacket(Packet{Type: PayloadIPMI, SessionID: 9, Seq: 5, Payload: []byte{1, 2, 3, 4, 5}}, k, newDetRand(2))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := EncodePacket(Packet{Type: PayloadIPMI, Payload: []byte{1, 2, 3}}, nil, nil)
	for _, tc := range []struct {
		name string
		b    func() []byte
		keys *SessionKeys
		want error
	}{
		{"flip auth code", func() []byte { b := bytes.Clone(good); b[len(b)-1] ^= 1; return b }, k, ErrIntegrity},
		{"flip payload", func() []byte { b := bytes.Clone(good); b[20] ^= 0x80; return b }, k, ErrIntegrity},
		{"flip seq", func() []byte { b := bytes.Clone(good); b[10] ^= 1; return b }, k, ErrIntegrity},
		{"wrong keys", func() []byte { return bytes.Clone(good) }, other, ErrIntegrity},
		{"truncated", func() []byte { return good[:len(good)-3] }, k, ErrShort},
		{"truncated header", func() []byte { return good[:10] }, k, ErrShort},
		{"not rmcp", func() []byte { b := bytes.Clone(good); b[0] = 5; return b }, k, ErrNotRMCP},
		{"ipmi 1.5 format", func() []byte { b := bytes.Clone(good); b[4] = 0; return b }, k, ErrFormat},
		{"plain inside session", func() []byte { return bytes.Clone(plain) }, k, ErrUnexpectedPayload},
		{"session packet outside session", func() []byte { return bytes.Clone(good) }, nil, ErrUnexpectedPayload},
		{"plain trailing", func() []byte { return append(bytes.Clone(plain), 0) }, nil, ErrFormat},
		{"bad conf pad byte", func() []byte {
			clear := append(bytes.Repeat([]byte{9}, 12), 1, 3, 3, 3) // pad 1,3,3 len 3
			return sessionPacket(k, encryptRaw(k, clear))
		}, k, ErrBadPad},
		{"conf pad length too big", func() []byte {
			clear := append(bytes.Repeat([]byte{9}, 15), 16)
			return sessionPacket(k, encryptRaw(k, clear))
		}, k, ErrBadPad},
		{"not whole blocks", func() []byte { return sessionPacket(k, make([]byte, 33)) }, k, ErrBadPad},
		{"only IV", func() []byte { return sessionPacket(k, make([]byte, 16)) }, k, ErrShort},
		{"integrity pad byte", func() []byte {
			p := encryptRaw(k, append(bytes.Repeat([]byte{9}, 15), 0))
			b := sessionPacket(k, p)
			// payload 32 bytes: 12+32=44, +2 = 46 -> pad 2
			b[4+12+32] = 0x00
			return reseal(b, k)
		}, k, ErrBadPad},
		{"next header", func() []byte {
			p := encryptRaw(k, append(bytes.Repeat([]byte{9}, 15), 0))
			b := sessionPacket(k, p)
			b[len(b)-17] = 0x08
			return reseal(b, k)
		}, k, ErrBadPad},
		{"oem payload", func() []byte { b := bytes.Clone(plain); b[5] = 0x02; return b }, nil, ErrUnexpectedPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodePacket(tc.b(), tc.keys)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEncodePacketRefusesWeakKeys(t *testing.T) {
	for _, k := range []*SessionKeys{
		{Integrity: IntegrityNone, Conf: ConfAESCBC128, K1: make([]byte, 20), K2: make([]byte, 20)},
		{Integrity: IntegrityHMACSHA1_96, Conf: ConfNone, K1: make([]byte, 20), K2: make([]byte, 20)},
		{Integrity: IntegrityHMACMD5_128, Conf: ConfAESCBC128, K1: make([]byte, 20), K2: make([]byte, 20)},
	} {
		if _, err := EncodePacket(Packet{}, k, newDetRand(0)); !errors.Is(err, ErrSuiteRefused) {
			t.Errorf("%s/%s: err = %v", k.Integrity, k.Conf, err)
		}
	}
}

func TestLookupSuite(t *testing.T) {
	for _, tc := range []struct {
		id   int
		ok   bool
		auth AuthAlg
	}{{0, false, 0}, {1, false, 0}, {2, false, 0}, {3, true, AuthHMACSHA1}, {6, false, 0}, {8, false, 0}, {12, false, 0}, {15, false, 0}, {16, false, 0}, {17, true, AuthHMACSHA256}, {-1, false, 0}} {
		s, err := LookupSuite(tc.id)
		if tc.ok != (err == nil) || (tc.ok && (s.Auth != tc.auth || s.Conf != ConfAESCBC128 || s.Integrity == IntegrityNone)) {
			t.Errorf("LookupSuite(%d) = %v, %v", tc.id, s, err)
		}
		if !tc.ok && !errors.Is(err, ErrSuiteRefused) {
			t.Errorf("LookupSuite(%d) err = %v", tc.id, err)
		}
	}
}

func TestV15(t *testing.T) {
	msg := []byte{0x20, 0x18, 0xc8, 0x81, 0x04, 0x38, 0x8e, 0x04, 0xb5}
	b, err := EncodeV15(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{6, 0, 0xff, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9}, msg...)
	if !bytes.Equal(b, want) {
		t.Fatalf("EncodeV15 = % x", b)
	}
	got, err := DecodeV15(b)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("DecodeV15 = % x, %v", got, err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"md5", append([]byte{6, 0, 0xff, 7, 2}, b[5:]...), ErrUnexpectedPayload},
		{"short", b[:len(b)-2], ErrShort},
		{"trailing", append(bytes.Clone(b), 0, 0), ErrFormat},
		{"asf", append([]byte{6, 0, 0xff, 6}, b[4:]...), ErrNotRMCP},
	} {
		if _, err := DecodeV15(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestPingPong(t *testing.T) {
	tag, err := DecodePing(EncodePing(0x42))
	if err != nil || tag != 0x42 {
		t.Fatalf("ping tag %x %v", tag, err)
	}
	p, err := DecodePong(EncodePong(0x42))
	if err != nil || p.Tag != 0x42 || !p.IPMI {
		t.Fatalf("pong %+v %v", p, err)
	}
	if _, err := DecodePong(EncodePing(1)); !errors.Is(err, ErrNotRMCP) {
		t.Fatalf("ping as pong: %v", err)
	}
	if _, err := DecodePong(EncodePong(1)[:20]); !errors.Is(err, ErrShort) {
		t.Fatalf("short pong: %v", err)
	}
}

func FuzzDecodePacket(f *testing.F) {
	k3 := testKeys(suite3, 1)
	k17 := testKeys(suite17, 1)
	for i, k := range []*SessionKeys{k3, k17} {
		b, _ := EncodePacket(Packet{Type: PayloadIPMI, SessionID: 1, Seq: 2, Payload: []byte{0x81, 0x1c, 0x63, 0x20, 0x04, 0x01, 0, 0xdb}}, k, newDetRand(byte(i)))
		f.Add(b, uint8(i+1))
	}
	plain, _ := EncodePacket(Packet{Type: PayloadOpenSessionResponse, Payload: make([]byte, 36)}, nil, nil)
	f.Add(plain, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, which uint8) {
		var k *SessionKeys
		switch which % 3 {
		case 1:
			k = k3
		case 2:
			k = k17
		}
		p, err := DecodePacket(b, k)
		if err != nil {
			return
		}
		if k == nil {
			// The RMCP reserved and sequence bytes are not checked.
			re, err := EncodePacket(p, nil, nil)
			if err != nil || !bytes.Equal(re[4:], b[4:]) || re[0] != b[0] || re[3] != b[3] {
				t.Fatalf("re-encode % x != % x (%v)", re, b, err)
			}
			return
		}
		// A packet that passed must re-encode and decode to the same payload.
		re, err := EncodePacket(p, k, newDetRand(9))
		if err != nil {
			t.Fatal(err)
		}
		p2, err := DecodePacket(re, k)
		if err != nil || !bytes.Equal(p2.Payload, p.Payload) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDecodeV15(f *testing.F) {
	b, _ := EncodeV15([]byte{0x81, 0x1c, 0x63, 0x20, 0x04, 0x38, 0, 0x01, 0x80, 0x04, 0x02, 0, 0, 0, 0, 0x41})
	f.Add(b)
	f.Add(EncodePong(3))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeV15(b)
		if err != nil {
			return
		}
		re, _ := EncodeV15(m)
		m2, err := DecodeV15(re)
		if err != nil || !bytes.Equal(m, m2) || len(b) < len(re) || !bytes.Equal(b[len(b)-len(m)-(len(b)-len(re)):][:len(m)], m) {
			t.Fatalf("re-encode % x does not carry the message of % x", re, b)
		}
		_, _ = DecodePong(b)
		_, _ = DecodePing(b)
		_, _ = PeekHeader(b)
	})
}
