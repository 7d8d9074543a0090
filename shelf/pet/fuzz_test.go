package pet

import (
	"bytes"
	"testing"
)

func FuzzDecodePET(f *testing.F) {
	hs := defaultPETSpec()
	hs.oem = []byte{0x43, 'a', 'b', 'c', 0x02, 1, 2, 0xc1}
	f.Add(defaultPETSpec().specific(), defaultPETSpec().payload())
	f.Add(uint32(0xf06f84), hs.payload())
	f.Add(uint32(0), make([]byte, PETMinLen))
	f.Add(uint32(0xffffffff), bytes.Repeat([]byte{0xff}, 60))
	f.Add(uint32(1), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, specific uint32, data []byte) {
		p, err := DecodePET(specific, data)
		if err != nil {
			if len(data) >= PETMinLen && len(data) <= PETMaxLen {
				t.Fatalf("valid length %d refused: %v", len(data), err)
			}
			return
		}
		// Re-encode the fixed part and compare.
		s := petSpec{sensorType: p.SensorType, eventType: p.EventType, offset: p.Offset,
			severity: p.Severity, owner: p.SensorDevice, sensor: p.SensorNumber, entity: p.Entity,
			instance: p.EntityInstance, seq: p.Sequence, ts: p.LocalTimestamp, guid: string(p.GUID[:])}
		re := s.payload()[:PETMinLen]
		want := append([]byte(nil), data[:PETMinLen]...)
		copy(want[22:26], re[22:26]) // UTC offset, source types: fixed in the builder
		copy(want[34:], re[34:])     // event data 4-8 .. system ID: fixed in the builder
		copy(re[31:34], data[31:34]) // event data 1-3
		if !bytes.Equal(re, want) {
			t.Fatalf("round trip\n got %x\nwant %x", re, want)
		}
		if !bytes.Equal(p.OEM, data[PETMinLen:]) {
			t.Fatal("OEM area changed")
		}
		if p.Key() != p.Key() || p.Key().EventData != [3]byte(data[31:34]) {
			t.Fatal("key")
		}
		_, _ = p.OEMFields()
		_ = p.Time()
	})
}

func FuzzParseOID(f *testing.F) {
	for _, o := range []oid{oidPETVarBind(), oidSnmpTrapOID(), {2, 999, 1}, {0, 0}, append(oidPETTrapPrefix(), 0xffffffff)} {
		f.Add(encOID(o)[2:])
	}
	f.Add([]byte{0x80, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := parseOID(b)
		if err != nil {
			return
		}
		if re := encOID(o)[len(berLen(len(b)))+1:]; !bytes.Equal(re, b) {
			t.Fatalf("OID %s re-encodes as %x, input %x", o, re, b)
		}
	})
}

// FuzzHandlePacket drives the packet entry point with a permissive
// configuration (every version and security level allowed), so that every
// decoding path is reached.
func FuzzHandlePacket(f *testing.F) {
	for _, rp := range recordedPackets() {
		f.Add(readRecorded(f, rp.file))
	}
	spec := defaultPETSpec()
	pdu := v2TrapPDU(spec, 3)
	f.Add(authPrivMsg(labUser(), pdu, 1, 1, 1).build(f))
	f.Add(authPrivMsg(sha256User(), pdu, 1, 1, 1).build(f))
	na := authPrivMsg(labUser(), pdu, 1, 1, 1)
	na.flags = flagAuth
	f.Add(na.build(f))
	na.flags = 0
	f.Add(na.build(f))
	f.Add(communityMsg(1, "public", pdu))
	f.Add(communityMsg(0, "public", v1TrapPDU(spec)))
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff})

	clk := newFakeClock()
	r := unitReceiver(f, Config{Users: []User{labUser(), sha256User()}, MinSecurity: NoAuthNoPriv,
		Communities: []Secret{Secret("public")}, QueueLen: 1}, clk)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		// Fresh state per input, so that a failure reproduces alone.
		r.limit = newLimiter(&r.cfg, clk.now())
		r.engines = engines{m: newLRU[string, engineTime](r.cfg.MaxEngines)}
		r.replay = newReplayCache(r.cfg.ReplayCacheSize)
		before := r.Stats()
		orig := append([]byte(nil), pkt...)
		tr, ok := feed(r, pkt, srcA)
		after := r.Stats()
		if !bytes.Equal(orig, pkt) {
			t.Fatal("packet modified")
		}
		if after.Received != before.Received+1 || (after.Accepted+after.DroppedTotal()) != (before.Accepted+before.DroppedTotal()+1) {
			t.Fatalf("packet not accounted exactly once: %+v -> %+v", before, after)
		}
		if ok && tr.Version == V3 && !tr.Insecure && len(tr.EngineID) < 5 {
			t.Fatalf("authPriv trap with engine ID %x", tr.EngineID)
		}
	})
}
