package devipmi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"hpiagent/shelf/ipmi"
)

func addrBytes(addrType int32, ch uint16, rest ...byte) []byte {
	b := make([]byte, 40)
	binary.NativeEndian.PutUint32(b, uint32(addrType))
	binary.NativeEndian.PutUint16(b[4:], ch)
	copy(b[6:], rest)
	return b
}

func TestDecodeRecv(t *testing.T) {
	data := make([]byte, maxMsgLen)
	copy(data, []byte{0x00, 0x20, 0x81})
	for _, tc := range []struct {
		name     string
		recvType int32
		addr     []byte
		addrLen  uint32
		dataLen  uint16
		want     received
		wantErr  error
	}{
		{"system interface response", recvTypeResponse, addrBytes(addrTypeSystemInterface, bmcChannel, 2), 8, 3,
			received{recvType: 1, addrType: addrTypeSystemInterface, from: ipmi.Addr{LUN: 2}, data: []byte{0x00, 0x20, 0x81}}, nil},
		{"IPMB response", recvTypeResponse, addrBytes(addrTypeIPMB, 7, 0x82, 1), 8, 1,
			received{recvType: 1, addrType: addrTypeIPMB, from: ipmi.Addr{Channel: 7, Slave: 0x82, LUN: 1}, data: []byte{0x00}}, nil},
		{"LAN source keeps the channel", recvTypeCommand, addrBytes(addrTypeLAN, 1, 4, 0, 0x81, 0x20, 0), 12, 0,
			received{recvType: 3, addrType: addrTypeLAN, from: ipmi.Addr{Channel: 1}, data: []byte{}}, nil},
		{"address length beyond buffer", recvTypeResponse, addrBytes(addrTypeIPMB, 0, 0x82), 41, 1, received{}, errRecvAddr},
		{"address too short", recvTypeResponse, addrBytes(addrTypeIPMB, 0, 0x82), 5, 1, received{}, errRecvAddr},
		{"IPMB address cut after the slave", recvTypeResponse, addrBytes(addrTypeIPMB, 0, 0x82), 7, 1, received{}, errRecvAddr},
		{"IPMB channel out of range", recvTypeResponse, addrBytes(addrTypeIPMB, 16, 0x82), 8, 1, received{}, errRecvAddr},
		{"data length beyond buffer", recvTypeResponse, addrBytes(addrTypeSystemInterface, bmcChannel), 8, maxMsgLen + 1, received{}, errRecvData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decodeRecv(tc.recvType, tc.addr, tc.addrLen, 5, 0x07, 0x01, data, tc.dataLen, false)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.recvType != tc.want.recvType || m.addrType != tc.want.addrType || m.from != tc.want.from ||
				m.msgid != 5 || m.netfn != 0x07 || m.cmd != 0x01 || !bytes.Equal(m.data, tc.want.data) {
				t.Fatalf("decoded %+v, want %+v", m, tc.want)
			}
		})
	}
}

// FuzzDecodeRecv feeds arbitrary driver output to the receive-side decoding
// and to the response checks.
func FuzzDecodeRecv(f *testing.F) {
	f.Add(int32(recvTypeResponse), addrBytes(addrTypeSystemInterface, bmcChannel, 0), uint32(8), int64(1), uint8(0x07), uint8(0x01), []byte{0x00, 0x20, 0x81}, uint16(3), false, false)
	f.Add(int32(recvTypeResponse), addrBytes(addrTypeIPMB, 0, 0x82, 0), uint32(8), int64(7), uint8(0x2d), uint8(0x0c), []byte{0xc3}, uint16(1), true, false)
	f.Add(int32(recvTypeAsyncEvent), addrBytes(addrTypeSystemInterface, bmcChannel), uint32(8), int64(0), uint8(0), uint8(0), make([]byte, 16), uint16(16), false, false)
	f.Add(int32(recvTypeCommand), addrBytes(addrTypeIPMB, 0, 0x20), uint32(8), int64(63), uint8(0x2c), uint8(0x0a), []byte{0, 1}, uint16(2), false, false)
	f.Add(int32(9), []byte{1, 2}, uint32(300), int64(-1), uint8(0xff), uint8(0xff), []byte{}, uint16(0xffff), false, true)
	f.Fuzz(func(t *testing.T, recvType int32, addr []byte, addrLen uint32, msgid int64, netfn, cmd uint8, data []byte, dataLen uint16, bridged, truncated bool) {
		m, err := decodeRecv(recvType, addr, addrLen, msgid, netfn, cmd, data, dataLen, truncated)
		if err != nil {
			if !errors.Is(err, errRecvAddr) && !errors.Is(err, errRecvData) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if int(dataLen) > len(data) || uint64(addrLen) > uint64(len(addr)) {
			t.Fatal("accepted lengths beyond the buffers")
		}
		if !bytes.Equal(m.data, data[:dataLen]) {
			t.Fatalf("data % x, want % x", m.data, data[:dataLen])
		}
		if len(m.data) > 0 && len(data) > 0 {
			data[0] ^= 0xff // the decoded message must not alias the driver buffer
			if m.data[0] == data[0] {
				t.Fatal("decoded data aliases the receive buffer")
			}
		}
		if ipmbType := m.addrType == addrTypeIPMB || m.addrType == addrTypeIPMBBroadcast || m.addrType == addrTypeIPMBDirect; ipmbType && m.from.Channel >= numChannels {
			t.Fatalf("IPMB source on channel %d accepted", m.from.Channel)
		}
		if m.from.LUN > 3 {
			t.Fatalf("LUN %d", m.from.LUN)
		}
		// The response checks accept only an exact answer and never make
		// a response out of a driver-generated code.
		p := &pending{to: ipmi.Addr{Slave: 0x82}, req: ipmi.Request{NetFn: ipmi.NetFn(netfn &^ 1 & 0x3f), Cmd: cmd}, bridged: bridged, attempts: 1}
		c := &Conn{path: "fuzz"}
		resp, err := c.interpret(p, m)
		if err != nil {
			var de *DriverError
			if !errors.Is(err, ErrBadResponse) && !errors.As(err, &de) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if truncated || netfn != uint8(p.req.NetFn)|1 || len(m.data) == 0 {
			t.Fatalf("accepted %+v as response to %v", m, p.req)
		}
		if resp.Code != ipmi.CompletionCode(m.data[0]) || !bytes.Equal(resp.Data, m.data[1:]) {
			t.Fatalf("response %v % x from % x", resp.Code, resp.Data, m.data)
		}
		if len(m.data) == 1 && isDriverCode(resp.Code, bridged) {
			t.Fatalf("driver code %v returned as a response", resp.Code)
		}
	})
}
