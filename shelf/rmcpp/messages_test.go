package rmcpp

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"hash"
	"reflect"
	"testing"
)

func hm(h func() hash.Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(h, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// TestHandshakeKnownAnswer assembles the RAKP inputs byte by byte as
// IPMI 2.0 §13.31–13.32 lists them and compares with Handshake.
func TestHandshakeKnownAnswer(t *testing.T) {
	for _, tc := range []struct {
		suite Suite
		h     func() hash.Hash
		icv   int
	}{{suite3, sha1.New, 12}, {suite17, sha256.New, 16}} {
		hs := Handshake{
			Auth: tc.suite.Auth, ConsoleSessionID: 0xA0A1A2A3, BMCSessionID: 0x01020304,
			Role: 0x14, Username: []byte("admin"),
		}
		for i := range 16 {
			hs.ConsoleRandom[i] = byte(0x10 + i)
			hs.BMCRandom[i] = byte(0x30 + i)
			hs.BMCGUID[i] = byte(0x50 + i)
		}
		kuid := []byte("adminpass")
		sidm := []byte{0xA3, 0xA2, 0xA1, 0xA0}
		sidc := []byte{0x04, 0x03, 0x02, 0x01}
		user := []byte{0x14, 5, 'a', 'd', 'm', 'i', 'n'}
		want2 := hm(tc.h, kuid, sidm, sidc, hs.ConsoleRandom[:], hs.BMCRandom[:], hs.BMCGUID[:], user)
		if got := hs.RAKP2AuthCode(kuid); !bytes.Equal(got, want2) {
			t.Errorf("suite %d RAKP2 auth code", tc.suite.ID)
		}
		if err := hs.VerifyRAKP2(kuid, want2); err != nil {
			t.Errorf("VerifyRAKP2: %v", err)
		}
		if err := hs.VerifyRAKP2([]byte("wrong"), want2); !errors.Is(err, ErrAuthCode) {
			t.Errorf("VerifyRAKP2 wrong password: %v", err)
		}
		// Trailing zero padding of the password (ipmitool pads to 20) is equivalent.
		if err := hs.VerifyRAKP2(append(bytes.Clone(kuid), make([]byte, 11)...), want2); err != nil {
			t.Errorf("zero-padded password: %v", err)
		}
		want3 := hm(tc.h, kuid, hs.BMCRandom[:], sidm, user)
		if got := hs.RAKP3AuthCode(kuid); !bytes.Equal(got, want3) {
			t.Errorf("suite %d RAKP3 auth code", tc.suite.ID)
		}
		if err := hs.VerifyRAKP3(kuid, want3[:len(want3)-1]); !errors.Is(err, ErrAuthCode) {
			t.Errorf("VerifyRAKP3 truncated: %v", err)
		}
		kg := []byte("0123456789abcdefghij")
		sik := hm(tc.h, kg, hs.ConsoleRandom[:], hs.BMCRandom[:], user)
		if got := hs.SIK(kg); !bytes.Equal(got, sik) {
			t.Errorf("suite %d SIK", tc.suite.ID)
		}
		icv := hm(tc.h, sik, hs.ConsoleRandom[:], sidc, hs.BMCGUID[:])[:tc.icv]
		if got := hs.RAKP4ICV(sik); !bytes.Equal(got, icv) {
			t.Errorf("suite %d RAKP4 ICV", tc.suite.ID)
		}
		if err := hs.VerifyRAKP4(sik, icv); err != nil {
			t.Errorf("VerifyRAKP4: %v", err)
		}
		k := hs.Keys(sik, tc.suite)
		if !bytes.Equal(k.K1, hm(tc.h, sik, bytes.Repeat([]byte{1}, 20))) || !bytes.Equal(k.K2, hm(tc.h, sik, bytes.Repeat([]byte{2}, 20))) {
			t.Errorf("suite %d K1/K2", tc.suite.ID)
		}
	}
	bad := Handshake{Auth: AuthNone}
	if err := bad.VerifyRAKP2(nil, nil); !errors.Is(err, ErrSuiteRefused) {
		t.Errorf("RAKP-none: %v", err)
	}
}

func TestMessagesRoundTrip(t *testing.T) {
	osr := OpenSessionRequest{Tag: 7, MaxPrivilege: PrivilegeAdministrator, ConsoleSessionID: 0x11223344, Auth: AuthHMACSHA256, Integrity: IntegrityHMACSHA256128, Conf: ConfAESCBC128}
	b := osr.Marshal()
	want := []byte{7, 4, 0, 0, 0x44, 0x33, 0x22, 0x11, 0, 0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 8, 4, 0, 0, 0, 2, 0, 0, 8, 1, 0, 0, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("OpenSessionRequest = % x", b)
	}
	if got, err := ParseOpenSessionRequest(b); err != nil || got != osr {
		t.Fatalf("ParseOpenSessionRequest = %+v %v", got, err)
	}
	resp := OpenSessionResponse{Tag: 7, MaxPrivilege: 4, ConsoleSessionID: 1, BMCSessionID: 2, Auth: AuthHMACSHA1, Integrity: IntegrityHMACSHA1_96, Conf: ConfAESCBC128}
	if got, err := ParseOpenSessionResponse(resp.Marshal()); err != nil || got != resp {
		t.Fatalf("ParseOpenSessionResponse = %+v %v", got, err)
	}
	fail := OpenSessionResponse{Tag: 7, Status: 0x11, ConsoleSessionID: 1}
	if b := fail.Marshal(); len(b) != 8 {
		t.Fatalf("failed response length %d", len(b))
	} else if got, err := ParseOpenSessionResponse(b); err != nil || got != fail {
		t.Fatalf("failed response = %+v %v", got, err)
	}
	r1 := RAKP1{Tag: 1, BMCSessionID: 5, Role: 0x14, Username: []byte("operator")}
	r1.ConsoleRandom[3] = 9
	if got, err := ParseRAKP1(r1.Marshal()); err != nil || !reflect.DeepEqual(got, r1) {
		t.Fatalf("RAKP1 = %+v %v", got, err)
	}
	r2 := RAKP2{Tag: 1, ConsoleSessionID: 6, AuthCode: bytes.Repeat([]byte{1}, 32)}
	r2.BMCGUID[0] = 1
	if got, err := ParseRAKP2(r2.Marshal(), AuthHMACSHA256); err != nil || !reflect.DeepEqual(got, r2) {
		t.Fatalf("RAKP2 = %+v %v", got, err)
	}
	if _, err := ParseRAKP2(r2.Marshal(), AuthHMACSHA1); !errors.Is(err, ErrShort) {
		t.Fatalf("RAKP2 with SHA1 length: %v", err)
	}
	r3 := RAKP3{Tag: 1, BMCSessionID: 7, AuthCode: bytes.Repeat([]byte{2}, 20)}
	if got, err := ParseRAKP3(r3.Marshal(), AuthHMACSHA1); err != nil || !reflect.DeepEqual(got, r3) {
		t.Fatalf("RAKP3 = %+v %v", got, err)
	}
	r4 := RAKP4{Tag: 1, ConsoleSessionID: 8, ICV: bytes.Repeat([]byte{3}, 12)}
	if got, err := ParseRAKP4(r4.Marshal(), AuthHMACSHA1); err != nil || !reflect.DeepEqual(got, r4) {
		t.Fatalf("RAKP4 = %+v %v", got, err)
	}
	if _, err := ParseRAKP4(r4.Marshal(), AuthHMACSHA256); !errors.Is(err, ErrShort) {
		t.Fatalf("RAKP4 short ICV for SHA256: %v", err)
	}
}

func TestParseMessagesReject(t *testing.T) {
	osr := OpenSessionRequest{Tag: 7, MaxPrivilege: 4, Auth: 1, Integrity: 1, Conf: 1}.Marshal()
	resp := OpenSessionResponse{Tag: 7, MaxPrivilege: 4, Auth: 1, Integrity: 1, Conf: 1}.Marshal()
	for _, tc := range []struct {
		name  string
		parse func() error
		want  error
	}{
		{"osr short", func() error { _, err := ParseOpenSessionRequest(osr[:31]); return err }, ErrShort},
		{"osr payload type", func() error {
			b := bytes.Clone(osr)
			b[16] = 2
			_, err := ParseOpenSessionRequest(b)
			return err
		}, ErrFormat},
		{"resp short", func() error { _, err := ParseOpenSessionResponse(resp[:35]); return err }, ErrShort},
		{"resp alg length", func() error {
			b := bytes.Clone(resp)
			b[15] = 0
			_, err := ParseOpenSessionResponse(b)
			return err
		}, ErrFormat},
		{"rakp1 long name", func() error {
			b := RAKP1{Username: bytes.Repeat([]byte{'a'}, 17)}.Marshal()
			_, err := ParseRAKP1(b)
			return err
		}, ErrFormat},
		{"rakp1 length", func() error {
			b := RAKP1{Username: []byte("ab")}.Marshal()
			_, err := ParseRAKP1(b[:len(b)-1])
			return err
		}, ErrShort},
		{"rakp2 none", func() error { _, err := ParseRAKP2(make([]byte, 40), AuthNone); return err }, ErrSuiteRefused},
		{"rakp3 short", func() error { _, err := ParseRAKP3(make([]byte, 7), AuthHMACSHA1); return err }, ErrShort},
		{"rakp4 empty", func() error { _, err := ParseRAKP4(nil, AuthHMACSHA1); return err }, ErrShort},
	} {
		if err := tc.parse(); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzParseMessages(f *testing.F) {
	f.Add(uint8(0), OpenSessionRequest{Tag: 7, MaxPrivilege: 4, Auth: 1, Integrity: 1, Conf: 1}.Marshal())
	f.Add(uint8(1), OpenSessionResponse{Tag: 7, MaxPrivilege: 4, Auth: 3, Integrity: 4, Conf: 1}.Marshal())
	f.Add(uint8(2), RAKP1{Username: []byte("admin")}.Marshal())
	f.Add(uint8(3), RAKP2{AuthCode: make([]byte, 20)}.Marshal())
	f.Add(uint8(4), RAKP3{AuthCode: make([]byte, 32)}.Marshal())
	f.Add(uint8(5), RAKP4{ICV: make([]byte, 12)}.Marshal())
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		auth := AuthHMACSHA1
		if which&0x80 != 0 {
			auth = AuthHMACSHA256
		}
		var re []byte
		switch which % 6 {
		case 0:
			m, err := ParseOpenSessionRequest(b)
			if err != nil {
				return
			}
			re = m.Marshal()
		case 1:
			m, err := ParseOpenSessionResponse(b)
			if err != nil {
				return
			}
			if m.Status != 0 {
				return
			}
			re = m.Marshal()
		case 2:
			m, err := ParseRAKP1(b)
			if err != nil {
				return
			}
			re = m.Marshal()
		case 3:
			m, err := ParseRAKP2(b, auth)
			if err != nil || m.Status != 0 {
				return
			}
			re = m.Marshal()
		case 4:
			m, err := ParseRAKP3(b, auth)
			if err != nil || m.Status != 0 {
				return
			}
			re = m.Marshal()
		case 5:
			m, err := ParseRAKP4(b, auth)
			if err != nil || m.Status != 0 {
				return
			}
			re = m.Marshal()
		}
		if len(re) != len(b) {
			t.Fatalf("re-encoded length %d != %d", len(re), len(b))
		}
	})
}
