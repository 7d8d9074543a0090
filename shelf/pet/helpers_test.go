package pet

import (
	"crypto/aes"
	"crypto/hmac"
	"encoding/binary"
	"sync"
	"testing"
	"time"
)

// This file holds an SNMP encoder for unit tests. The interoperability
// tests use net-snmp's snmptrap instead, so that the decoder is never only
// checked against this encoder.

func berLen(n int) []byte {
	switch {
	case n < 0x80:
		return []byte{byte(n)}
	case n < 0x100:
		return []byte{0x81, byte(n)}
	case n < 0x10000:
		return []byte{0x82, byte(n >> 8), byte(n)}
	}
	return []byte{0x83, byte(n >> 16), byte(n >> 8), byte(n)}
}

func enc(tag byte, parts ...[]byte) []byte {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	out := append([]byte{tag}, berLen(len(body))...)
	return append(out, body...)
}

func encInt(tag byte, v int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(v))
	// minimal two's complement
	for len(b) > 1 && ((b[0] == 0 && b[1]&0x80 == 0) || (b[0] == 0xff && b[1]&0x80 != 0)) {
		b = b[1:]
	}
	return enc(tag, b)
}

func encUint(tag byte, v uint32) []byte {
	b := []byte{0, byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	for len(b) > 1 && b[0] == 0 && b[1]&0x80 == 0 {
		b = b[1:]
	}
	return enc(tag, b)
}

func encOctets(b []byte) []byte { return enc(tagOctetString, b) }

func encOID(o oid) []byte {
	var body []byte
	sub := func(v uint64) {
		var tmp []byte
		tmp = append(tmp, byte(v&0x7f))
		for v >>= 7; v > 0; v >>= 7 {
			tmp = append(tmp, byte(v&0x7f)|0x80)
		}
		for i := len(tmp) - 1; i >= 0; i-- {
			body = append(body, tmp[i])
		}
	}
	sub(uint64(o[0])*40 + uint64(o[1]))
	for _, s := range o[2:] {
		sub(uint64(s))
	}
	return enc(tagOID, body)
}

// petSpec describes a PET to build, after the lab's pet.py.
type petSpec struct {
	sensorType, eventType, offset uint8
	deassert                      bool
	deassertInEventType           bool // pet.py style: bit 15 instead of bit 7
	severity, owner, sensor       uint8
	entity, instance              uint8
	data                          [3]byte
	seq                           uint16
	ts                            uint32 // seconds since 1998
	guid                          string
	oem                           []byte
}

func defaultPETSpec() petSpec {
	return petSpec{sensorType: 0x01, eventType: 0x01, offset: 0x09, severity: 0x10, owner: 0x82,
		sensor: 0x02, entity: 0xa0, instance: 0x60, data: [3]byte{0x09, 0xff, 0xff}, seq: 1,
		ts: 912345678, guid: "LABSIM-ATCASH-01", oem: []byte{0xc1}}
}

func (s petSpec) specific() uint32 {
	sp := uint32(s.sensorType)<<16 | uint32(s.eventType)<<8 | uint32(s.offset)
	if s.deassert {
		if s.deassertInEventType {
			sp |= 0x8000
		} else {
			sp |= 0x80
		}
	}
	return sp
}

func (s petSpec) payload() []byte {
	g := make([]byte, 16)
	copy(g, s.guid)
	b := append([]byte(nil), g...)
	b = binary.BigEndian.AppendUint16(b, s.seq)
	b = binary.BigEndian.AppendUint32(b, s.ts)
	b = binary.BigEndian.AppendUint16(b, 0xffff)
	b = append(b, 0x20, 0x20, s.severity, s.owner, s.sensor, s.entity, s.instance)
	b = append(b, s.data[0], s.data[1], s.data[2], 0xff, 0xff, 0xff, 0xff, 0xff)
	b = append(b, 0x19)
	b = binary.BigEndian.AppendUint32(b, 0x0000315a)
	b = binary.BigEndian.AppendUint16(b, 0x0001)
	return append(b, s.oem...)
}

// v2TrapPDU builds an SNMPv2-Trap PDU for the PET s.
func v2TrapPDU(s petSpec, reqID int64) []byte {
	trapOID := append(oidPETTrapPrefix(), s.specific())
	return enc(tagTrapV2, encInt(tagInteger, reqID), encInt(tagInteger, 0), encInt(tagInteger, 0),
		enc(tagSequence,
			enc(tagSequence, encOID(oidSysUpTime()), encUint(tagTimeTicks, 12345)),
			enc(tagSequence, encOID(oidSnmpTrapOID()), encOID(trapOID)),
			enc(tagSequence, encOID(oidPETVarBind()), encOctets(s.payload()))))
}

// v1TrapPDU builds an SNMPv1 Trap-PDU for the PET s.
func v1TrapPDU(s petSpec) []byte {
	return enc(tagTrapV1, encOID(oidPETEnterprise()), enc(tagIPAddress, []byte{127, 0, 0, 20}),
		encInt(tagInteger, 6), encInt(tagInteger, int64(s.specific())), encUint(tagTimeTicks, 12345),
		enc(tagSequence, enc(tagSequence, encOID(oidPETVarBind()), encOctets(s.payload()))))
}

func communityMsg(version int64, community string, pdu []byte) []byte {
	return enc(tagSequence, encInt(tagInteger, version), encOctets([]byte(community)), pdu)
}

// v3Msg describes an SNMPv3 message to build.
type v3Msg struct {
	user        User
	engineID    []byte
	boots, time int64
	msgID       int64
	flags       byte
	salt        [8]byte
	secModel    int64
	pdu         []byte
}

// build encodes, encrypts and authenticates m (RFC 3414, RFC 3826).
func (m v3Msg) build(t testing.TB) []byte {
	t.Helper()
	uu, err := newUSMUser(m.user)
	if err != nil {
		t.Fatalf("test user: %v", err)
	}
	if m.secModel == 0 {
		m.secModel = securityModelUSM
	}
	scoped := enc(tagSequence, encOctets(m.engineID), encOctets(nil), m.pdu)
	var data, privParams []byte
	if m.flags&flagPriv != 0 {
		key := localizeKey(uu.auth.hash(), uu.privKu, m.engineID)[:16]
		block, err := aes.NewCipher(key)
		if err != nil {
			t.Fatal(err)
		}
		var iv [16]byte
		binary.BigEndian.PutUint32(iv[0:], uint32(m.boots))
		binary.BigEndian.PutUint32(iv[4:], uint32(m.time))
		copy(iv[8:], m.salt[:])
		ct := make([]byte, len(scoped))
		prev := iv[:]
		var ks [16]byte
		for i := 0; i < len(scoped); i += 16 {
			block.Encrypt(ks[:], prev)
			end := min(i+16, len(scoped))
			for j := i; j < end; j++ {
				ct[j] = scoped[j] ^ ks[j-i]
			}
			prev = ct[i:end]
		}
		data = encOctets(ct)
		privParams = m.salt[:]
	} else {
		data = scoped
	}
	macLen := 0
	if m.flags&flagAuth != 0 {
		macLen = uu.auth.macLen()
	}
	sec := enc(tagSequence, encOctets(m.engineID), encInt(tagInteger, m.boots), encInt(tagInteger, m.time),
		encOctets([]byte(m.user.Name)), encOctets(make([]byte, macLen)), encOctets(privParams))
	msg := enc(tagSequence, encInt(tagInteger, 3),
		enc(tagSequence, encInt(tagInteger, m.msgID), encInt(tagInteger, 65507), encOctets([]byte{m.flags}), encInt(tagInteger, m.secModel)),
		encOctets(sec), data)
	if macLen > 0 {
		parsed, err := parseMessage(msg)
		if err != nil {
			t.Fatalf("test message does not parse: %v", err)
		}
		off, ok := offsetIn(msg, parsed.usm.authParams)
		if !ok {
			t.Fatal("auth params not inside message")
		}
		h := hmac.New(uu.auth.hash(), localizeKey(uu.auth.hash(), uu.authKu, m.engineID))
		h.Write(msg)
		copy(msg[off:], h.Sum(nil)[:macLen])
	}
	return msg
}

// Test users, as in the lab's snmptrapd.conf (the passphrases are test
// fixtures, not secrets).
var labEngineID = []byte{0x80, 0x00, 0x1f, 0x88, 0x80, 0x4c, 0x41, 0x42, 0x53, 0x49, 0x4d, 0x01}

func labUser() User {
	return User{Name: "petuser", Auth: AuthSHA, AuthPassphrase: Secret("pet-auth-pass"),
		Priv: PrivAES128, PrivPassphrase: Secret("pet-priv-pass")}
}

func sha256User() User {
	return User{Name: "petuser256", Auth: AuthSHA256, AuthPassphrase: Secret("pet-auth-pass-256"),
		Priv: PrivAES128, PrivPassphrase: Secret("pet-priv-pass-256")}
}

func authPrivMsg(u User, pdu []byte, boots, tm, msgID int64) v3Msg {
	return v3Msg{user: u, engineID: labEngineID, boots: boots, time: tm, msgID: msgID,
		flags: flagAuth | flagPriv, salt: [8]byte{1, 2, 3, 4, 5, 6, 7, byte(msgID)}, pdu: pdu}
}

// fakeClock is a settable clock for Config.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
