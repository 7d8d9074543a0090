package rmcpp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"hpiagent/shelf/ipmi"
)

// receiveFixture is an owner with three requests in flight, for testing
// the matching of answers without a socket: rqSeq 5 to the shelf manager
// itself, rqSeq 6 bridged to 0x82 and rqSeq 7 bridged to 0x84.
type receiveFixture struct {
	o     *owner
	calls map[uint8]*call
}

const fixtureSID = 0x01020304

func newReceiveFixture(keys *SessionKeys) *receiveFixture {
	cfg := Config{Addr: "192.0.2.1:623", Password: []byte("pw"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}.withDefaults()
	s := &Session{cfg: cfg, log: cfg.Logger, stats: Stats{Rejected: map[string]uint64{}}}
	o := &owner{s: s, l: &link{keys: keys, consoleSID: fixtureSID, bmcAddr: 0x20},
		pending: map[uint8]*inflight{}, quarantine: map[uint8]time.Time{}}
	fx := &receiveFixture{o: o, calls: map[uint8]*call{}}
	for seq, to := range map[uint8]ipmi.Addr{5: {}, 6: {Slave: 0x82}, 7: {Slave: 0x84}} {
		req := ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: cmdGetDeviceID, ReadOnly: true}
		if to.Local() {
			req = sensorReading(3, true)
		}
		c := &call{ctx: context.Background(), to: to, req: req, res: make(chan result, 1)}
		fx.calls[seq] = c
		o.pending[seq] = &inflight{c: c, seq: seq, attempts: 1, deadline: time.Now().Add(time.Hour)}
	}
	return fx
}

// checkCompletions fails t if a request was completed by anything but an
// answer that matches it in every field; msg is the IPMI message that was
// delivered (nil if it could not be authentic).
func (fx *receiveFixture) checkCompletions(t *testing.T, msg []byte) {
	t.Helper()
	for seq, c := range fx.calls {
		var r result
		select {
		case r = <-c.res:
		default:
			continue
		}
		if msg == nil {
			t.Fatalf("rqSeq %d completed by a packet that cannot be authentic: %+v", seq, r)
		}
		f, err := ipmi.ParseFrame(msg)
		if err != nil {
			t.Fatalf("rqSeq %d completed by a message with bad checksums: %v", seq, err)
		}
		var be *BridgeError
		switch {
		case r.err == nil && c.to.Local():
			if f.DstAddr != 0x81 || f.SrcAddr != 0x20 || f.NetFn != c.req.NetFn.Response() || f.Cmd != c.req.Cmd || f.Seq != seq ||
				!bytes.Equal(append([]byte{byte(r.resp.Code)}, r.resp.Data...), f.Data) {
				t.Fatalf("local rqSeq %d completed by %+v: %+v", seq, f, r.resp)
			}
		case r.err == nil:
			inner := f
			if f.SrcAddr == 0x20 && f.DstAddr == 0x81 { // embedded in the Send Message answer
				if f.NetFn != ipmi.NetFnApp.Response() || f.Cmd != cmdSendMessage || f.Seq != seq || len(f.Data) < 1 || f.Data[0] != 0 {
					t.Fatalf("bridged rqSeq %d completed by outer %+v", seq, f)
				}
				if inner, err = ipmi.ParseFrame(f.Data[1:]); err != nil {
					t.Fatalf("bridged rqSeq %d completed by a bad embedded message: %v", seq, err)
				}
			}
			if inner.SrcAddr != c.to.Slave || inner.NetFn != c.req.NetFn.Response() || inner.Cmd != c.req.Cmd || inner.Seq != seq ||
				!bytes.Equal(append([]byte{byte(r.resp.Code)}, r.resp.Data...), inner.Data) {
				t.Fatalf("bridged rqSeq %d to %s completed by %+v: %+v", seq, c.to, inner, r.resp)
			}
		case errors.As(r.err, &be):
			if c.to.Local() || f.SrcAddr != 0x20 || f.DstAddr != 0x81 || f.NetFn != ipmi.NetFnApp.Response() || f.Cmd != cmdSendMessage ||
				f.Seq != seq || len(f.Data) < 1 || ipmi.CompletionCode(f.Data[0]) != be.Code || be.Code == 0 || be.To != c.to {
				t.Fatalf("rqSeq %d failed with %v by %+v", seq, r.err, f)
			}
		default:
			t.Fatalf("rqSeq %d ended with %v", seq, r.err)
		}
	}
}

func sealedIPMI(k *SessionKeys, sid, seq uint32, msg []byte) []byte {
	b, err := EncodePacket(Packet{Type: PayloadIPMI, SessionID: sid, Seq: seq, Payload: msg}, k, newDetRand(5))
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzReceive delivers (a) fuzzed IPMI messages in genuine packets of the
// session and (b) fuzzed raw packets to the owner, and checks that a
// request is completed only by an answer matching it in every field:
// rqSeq, NetFn, Cmd, addresses, the bridged target (an answer from 0x82
// never completes a request to 0x84), checksums.
func FuzzReceive(f *testing.F) {
	keys := testKeys(suite17, 4)
	local := respFrame(ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnSensor, SrcAddr: 0x81, Seq: 5, Cmd: cmdGetSensorReading}, 0, 0x40, 0xC0)
	inner82 := respFrame(ipmi.Frame{DstAddr: 0x82, NetFn: ipmi.NetFnApp, SrcAddr: 0x20, Seq: 6, Cmd: cmdGetDeviceID}, 0, 0x82, 0x81)
	inner84 := respFrame(ipmi.Frame{DstAddr: 0x84, NetFn: ipmi.NetFnApp, SrcAddr: 0x20, Seq: 7, Cmd: cmdGetDeviceID}, 0, 0x84, 0x81)
	wrong := respFrame(ipmi.Frame{DstAddr: 0x82, NetFn: ipmi.NetFnApp, SrcAddr: 0x20, Seq: 7, Cmd: cmdGetDeviceID}, 0, 0x82, 0x81)
	send := func(seq uint8, cc ipmi.CompletionCode, embedded []byte) []byte {
		return respFrame(ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnApp, SrcAddr: 0x81, Seq: seq, Cmd: cmdSendMessage}, cc, embedded...).Marshal()
	}
	for _, m := range [][]byte{local.Marshal(), inner82.Marshal(), inner84.Marshal(), wrong.Marshal(),
		send(6, 0, nil), send(7, 0, inner84.Marshal()), send(6, 0, inner84.Marshal()), send(7, 0x83, nil), {}} {
		f.Add(false, uint32(9), m)
		f.Add(true, uint32(0), sealedIPMI(keys, fixtureSID, 9, m))
	}
	f.Fuzz(func(t *testing.T, raw bool, seq uint32, b []byte) {
		if len(b) > 2*maxPacket || (!raw && len(b) > MaxPayload) {
			return
		}
		fx := newReceiveFixture(keys)
		if raw {
			// Without K1 nobody can make a packet pass; only the
			// sealed seeds may (they are genuine, with seq 9).
			fx.o.receive(b)
			var msg []byte
			if p, err := DecodePacket(b, keys); err == nil && p.SessionID == fixtureSID && p.Type == PayloadIPMI {
				msg = p.Payload
			}
			fx.checkCompletions(t, msg)
			return
		}
		// A style (b) answer may follow the empty Send Message answer.
		fx.o.receive(sealedIPMI(keys, fixtureSID, seq, send(6, 0, nil)))
		fx.o.receive(sealedIPMI(keys, fixtureSID, seq+1, b))
		if seq+1 == 0 {
			fx.checkCompletions(t, nil) // sequence number 0 is never accepted
			return
		}
		fx.checkCompletions(t, b)
		// Replaying the same packet completes nothing more.
		fx.o.receive(sealedIPMI(keys, fixtureSID, seq+1, b))
		fx.checkCompletions(t, nil)
	})
}

// TestAllocSeqQuarantine: rqSeqs in flight or in quarantine are skipped,
// an expired quarantine frees its number, and with every number taken
// allocation reports failure instead of looping.
func TestAllocSeqQuarantine(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name       string
		pending    []uint8
		quarantine map[uint8]time.Time
		next       uint8
		want       uint8
		ok         bool
	}{
		{"free", nil, nil, 2, 2, true},
		{"in flight skipped", []uint8{2, 3}, nil, 2, 4, true},
		{"quarantined skipped", []uint8{2}, map[uint8]time.Time{3: now.Add(time.Hour)}, 2, 4, true},
		{"expired quarantine reused", nil, map[uint8]time.Time{2: now.Add(-time.Second)}, 2, 2, true},
		{"wraps after 63", []uint8{63}, nil, 63, 1, true},
		{"all taken", seqRange(1, 32), quarantineRange(33, 63, now.Add(time.Hour)), 5, 0, false},
		{"one left", seqRange(1, 32), quarantineRange(34, 63, now.Add(time.Hour)), 5, 33, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &owner{pending: map[uint8]*inflight{}, quarantine: map[uint8]time.Time{}, nextSeq: tc.next}
			for _, s := range tc.pending {
				o.pending[s] = &inflight{seq: s}
			}
			for s, until := range tc.quarantine {
				o.quarantine[s] = until
			}
			got, ok := o.allocSeq()
			if got != tc.want || ok != tc.ok {
				t.Fatalf("allocSeq = %d, %t; want %d, %t", got, ok, tc.want, tc.ok)
			}
			if ok {
				if _, q := o.quarantine[got]; q {
					t.Fatalf("rqSeq %d handed out but still in quarantine", got)
				}
			}
		})
	}
}

func seqRange(from, to uint8) []uint8 {
	var out []uint8
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func quarantineRange(from, to uint8, until time.Time) map[uint8]time.Time {
	m := map[uint8]time.Time{}
	for _, s := range seqRange(from, to) {
		m[s] = until
	}
	return m
}

// TestWindowMovesOnlyForAuthenticPackets: packets that fail any check
// before the sequence window (integrity, session ID, flags) do not move
// it, so forged far-ahead sequence numbers cannot make the genuine
// answers look old.
func TestWindowMovesOnlyForAuthenticPackets(t *testing.T) {
	keys := testKeys(suite3, 6)
	other := testKeys(suite3, 7)
	answer := respFrame(ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnSensor, SrcAddr: 0x81, Seq: 5, Cmd: cmdGetSensorReading}, 0, 0x40).Marshal()
	unmatched := respFrame(ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnSensor, SrcAddr: 0x81, Seq: 9, Cmd: cmdGetSensorReading}, 0, 0x40).Marshal()
	flip := func(b []byte) []byte { b[len(b)-1] ^= 1; return b }
	plain := func(seq uint32) []byte {
		b, _ := EncodePacket(Packet{Type: PayloadIPMI, SessionID: fixtureSID, Seq: seq, Payload: answer}, nil, nil)
		return b
	}
	for _, tc := range []struct {
		name   string
		forged []byte
		reason string
	}{
		{"bad integrity code", flip(sealedIPMI(keys, fixtureSID, 131, unmatched)), RejectIntegrity},
		{"other keys", sealedIPMI(other, fixtureSID, 131, unmatched), RejectIntegrity},
		{"other session", sealedIPMI(keys, fixtureSID+1, 131, unmatched), RejectSessionID},
		{"unprotected", plain(131), RejectUnprotected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newReceiveFixture(keys)
			fx.o.receive(sealedIPMI(keys, fixtureSID, 100, unmatched))
			fx.o.receive(tc.forged)
			if got := fx.o.s.stats.Rejected[tc.reason]; got != 1 {
				t.Fatalf("rejected %v, want one %s", fx.o.s.stats.Rejected, tc.reason)
			}
			fx.o.receive(sealedIPMI(keys, fixtureSID, 99, answer)) // 1 behind the genuine top
			select {
			case r := <-fx.calls[5].res:
				if r.err != nil || r.resp.Data[0] != 0x40 {
					t.Fatalf("answer: %+v", r)
				}
			default:
				t.Fatalf("genuine answer rejected after the forged packet: %v", fx.o.s.stats.Rejected)
			}
		})
	}
}
