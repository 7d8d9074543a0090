package sim

import (
	"crypto/rand"
	"net/netip"
	"testing"

	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
)

// FuzzServerPacket feeds arbitrary datagrams to the RMCP+ server: it must
// never panic, and nothing but a pong, a pre-session answer or a handshake
// message may come back to a peer without a session.
func FuzzServerPacket(f *testing.F) {
	authCaps := ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnApp, SrcAddr: 0x81, Cmd: 0x38, Data: []byte{0x8e, 0x04}}
	v15, _ := rmcpp.EncodeV15(authCaps.Marshal())
	f.Add(v15)
	f.Add(rmcpp.EncodePing(1))
	cs := ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnApp, SrcAddr: 0x81, Cmd: 0x54, Data: []byte{0x0e, 0, 0x80}}
	p, _ := rmcpp.EncodePacket(rmcpp.Packet{Type: rmcpp.PayloadIPMI, Payload: cs.Marshal()}, nil, rand.Reader)
	f.Add(p)
	for _, id := range []int{3, 17} {
		s, _ := rmcpp.LookupSuite(id)
		open := rmcpp.OpenSessionRequest{Tag: 1, MaxPrivilege: 4, ConsoleSessionID: 7, Auth: s.Auth, Integrity: s.Integrity, Conf: s.Conf}
		p, _ = rmcpp.EncodePacket(rmcpp.Packet{Type: rmcpp.PayloadOpenSessionRequest, Payload: open.Marshal()}, nil, rand.Reader)
		f.Add(p)
	}
	r1 := rmcpp.RAKP1{Tag: 2, BMCSessionID: 0x5b010101, Role: 0x14, Username: []byte("admin")}
	p, _ = rmcpp.EncodePacket(rmcpp.Packet{Type: rmcpp.PayloadRAKP1, Payload: r1.Marshal()}, nil, rand.Reader)
	f.Add(p)
	f.Add([]byte{0x06, 0x00, 0xff, 0x07, 0x06, 0xc0, 1, 1, 1, 0x5b, 1, 0, 0, 0, 0x20, 0})
	// IPMI 1.5 format: pre-session requests, a login attempt, an
	// authenticated packet and one inside an IPMI 1.5 session.
	v15cs, _ := rmcpp.EncodeV15(cs.Marshal())
	f.Add(v15cs)
	challenge := ipmi.Frame{DstAddr: 0x20, NetFn: ipmi.NetFnApp, SrcAddr: 0x81, Cmd: 0x39, Data: append([]byte{0x02}, make([]byte, 16)...)}
	f.Add(v15Packet(0, 0, 0, challenge))
	f.Add(v15Packet(0x02, 0, 0, authCaps))
	f.Add(v15Packet(0, 9, 0x01020304, authCaps))
	f.Add([]byte{})
	sh, err := New(DefaultConfig(), nil)
	if err != nil {
		f.Fatal(err)
	}
	srv := newServer(sh, nil)
	peer := netip.MustParseAddrPort("127.0.0.1:50000")
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, out := range srv.HandlePacket(peer, b) {
			if len(out) < 4 {
				t.Fatalf("runt answer % x", out)
			}
			if !rmcpp.IsV20(out) {
				if _, err := rmcpp.DecodePong(out); err == nil {
					continue
				}
				// IPMI 1.5 format: only session-less answers to Get Channel
				// Authentication Capabilities and Get Channel Cipher Suites.
				msg, err := rmcpp.DecodeV15(out)
				if err != nil {
					t.Fatalf("server produced an undecodable IPMI 1.5 packet: %v", err)
				}
				if out[4] != 0 || [8]byte(out[5:13]) != [8]byte{} {
					t.Fatalf("IPMI 1.5 answer with authentication or a session: % x", out)
				}
				if r, err := ipmi.ParseFrame(msg); err != nil || r.NetFn != ipmi.NetFnApp.Response() || (r.Cmd != 0x38 && r.Cmd != 0x54) {
					t.Fatalf("IPMI 1.5 answer %+v (%v)", r, err)
				}
				continue
			}
			h, err := rmcpp.PeekHeader(out[rmcpp.RMCPHeaderLen:])
			if err != nil {
				t.Fatalf("server produced an undecodable packet: %v", err)
			}
			if h.Type == rmcpp.PayloadIPMI && h.SessionID != 0 {
				t.Fatalf("in-session answer to a fuzzed packet: %+v", h)
			}
		}
	})
}

// FuzzShelfFrame feeds arbitrary IPMB frames (as a session would after
// decryption) to the shelf manager at every privilege level: no panic,
// every answer well formed, and nothing changes state below operator.
func FuzzShelfFrame(f *testing.F) {
	add := func(netfn ipmi.NetFn, cmd uint8, data ...byte) {
		f.Add(ipmi.Frame{DstAddr: 0x20, NetFn: netfn, SrcAddr: 0x81, Seq: 3, Cmd: cmd, Data: data}.Marshal(), uint8(4))
	}
	add(ipmi.NetFnApp, 0x01)
	add(ipmi.NetFnStorage, 0x23, 0, 0, 0, 0, 0, 0xFF)
	add(ipmi.NetFnStorage, 0x43, 0, 0, 0, 0, 0, 0xFF)
	add(ipmi.NetFnStorage, 0x11, 1, 0, 0, 16)
	add(ipmi.NetFnChassis, 0x02, 0)
	add(ipmi.NetFnGroup, 0x01, 0, 0, 3, 13, 0)
	add(ipmi.NetFnGroup, 0x07, 0, 0, 0xFF, 0xFB, 3, 0x0E)
	inner := ipmi.Frame{DstAddr: 0x9a, NetFn: ipmi.NetFnGroup, SrcAddr: 0x81, Seq: 4, Cmd: 0x0C, Data: []byte{0, 0, 0}}
	add(ipmi.NetFnApp, 0x34, append([]byte{0x40}, inner.Marshal()...)...)
	inner = ipmi.Frame{DstAddr: 0x9c, NetFn: ipmi.NetFnSensor, SrcAddr: 0x81, Seq: 5, Cmd: 0x21, Data: []byte{0, 0, 2, 0, 5, 8}}
	add(ipmi.NetFnApp, 0x34, append([]byte{0x40}, inner.Marshal()...)...)
	f.Fuzz(func(t *testing.T, b []byte, priv uint8) {
		req, err := ipmi.ParseFrame(b)
		if err != nil {
			return
		}
		for _, style := range []BridgeStyle{BridgeSeparate, BridgeEmbedded} {
			cfg := DefaultConfig()
			cfg.Bridge = style
			sh, err := New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			p := Privilege(priv % 5)
			before := sh.SEL()
			out := sh.Handle(req, p)
			if req.NetFn.IsResponse() {
				if len(out) != 0 {
					t.Fatal("answered a response")
				}
				continue
			}
			if len(out) == 0 || len(out) > 2 {
				t.Fatalf("%d answers", len(out))
			}
			for i, r := range out {
				if len(r.Data) < 1 || !r.NetFn.IsResponse() {
					t.Fatalf("answer %d malformed: %+v", i, r)
				}
				if _, err := ipmi.ParseFrame(r.Marshal()); err != nil {
					t.Fatal(err)
				}
			}
			if out[0].Cmd != req.Cmd || out[0].Seq != req.Seq || out[0].DstAddr != req.SrcAddr {
				t.Fatalf("answer %+v does not match %+v", out[0], req)
			}
			sh.Advance(0)
			if p < PrivOperator && len(sh.SEL()) != len(before) {
				t.Fatalf("privilege %d changed the shelf: %d SEL entries", p, len(sh.SEL()))
			}
			if p < PrivOperator && !sh.ChassisPower() {
				t.Fatal("chassis powered off below operator")
			}
		}
	})
}
