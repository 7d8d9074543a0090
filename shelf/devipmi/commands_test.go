//go:build linux && amd64

package devipmi

import (
	"bytes"
	"context"
	"errors"
	"syscall"
	"testing"

	"hpiagent/shelf/ipmi"
)

func TestCommandsAndRespond(t *testing.T) {
	for _, tc := range []struct {
		name       string
		reportCode byte
		wantErr    bool
	}{
		{"response sent", 0x00, false},
		{"response NAKed on IPMB", 0x83, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDriver()
			var got []sentReq
			f.onSend = func(r sentReq) ([]kmsg, error) {
				got = append(got, r)
				return []kmsg{{recvType: 4, addr: ipmbAddr(uint8(r.channel), r.slave, r.lun), msgid: r.msgid, netfn: r.netfn, cmd: r.cmd, data: []byte{tc.reportCode}}}, nil
			}
			c := startFake(t, f, Options{KeepDriverAddress: true, Commands: []CommandSpec{{NetFn: ipmi.NetFnOEM, Cmd: 0x01}, {NetFn: ipmi.NetFnGroup, Cmd: 0x0a}}})
			f.mu.Lock()
			reg := append([][2]uint8(nil), f.registered...)
			f.mu.Unlock()
			if len(reg) != 2 || reg[0] != [2]uint8{0x2e, 0x01} || reg[1] != [2]uint8{0x2c, 0x0a} {
				t.Fatalf("registered %x, want [2e 01] [2c 0a]", reg)
			}
			f.deliver(kmsg{recvType: 3, addr: ipmbAddr(0, 0x20, 2), msgid: 17, netfn: 0x2e, cmd: 0x01, data: []byte{1, 2}})
			ev := <-c.Events()
			if ev.Kind != Command || ev.From != (ipmi.Addr{Slave: 0x20, LUN: 2}) || ev.Seq != 17 || !bytes.Equal(ev.Data, []byte{1, 2}) {
				t.Fatalf("event %+v", ev)
			}
			err := c.Respond(testCtx(t), ev, ipmi.CCOK, []byte{0xaa})
			if len(got) != 1 {
				t.Fatalf("driver saw %d sends, want 1", len(got))
			}
			r := got[0]
			if r.settime || r.addrType != 0x01 || r.slave != 0x20 || r.lun != 2 || r.channel != 0 || r.msgid != 17 ||
				r.netfn != 0x2f || r.cmd != 0x01 || !bytes.Equal(r.data, []byte{0x00, 0xaa}) {
				t.Fatalf("driver saw %+v", r)
			}
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("Respond: %v", err)
				}
				return
			}
			if code, ok := ipmi.CodeOf(err); !errors.Is(err, ErrNoResponse) || !ok || code != ipmi.CompletionCode(tc.reportCode) {
				t.Fatalf("Respond = %v, want ErrNoResponse with code 0x%02x", err, tc.reportCode)
			}
		})
	}
}

func TestRespondRejects(t *testing.T) {
	f := newFakeDriver()
	c := startFake(t, f, Options{KeepDriverAddress: true})
	for _, ev := range []Event{{Kind: AsyncEvent, Data: make([]byte, 16)}, {Kind: Command}} {
		if err := c.Respond(testCtx(t), ev, 0, nil); !errors.Is(err, ErrBadRequest) {
			t.Errorf("Respond(%+v) = %v, want ErrBadRequest", ev, err)
		}
	}
	if n := len(f.sentRequests()); n != 0 {
		t.Fatalf("%d sends", n)
	}
}

func TestRegisterFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec CommandSpec
		err  error
		want error
	}{
		{"taken by another user", CommandSpec{NetFn: ipmi.NetFnOEM, Cmd: 1}, syscall.EBUSY, syscall.EBUSY},
		{"response netfn", CommandSpec{NetFn: ipmi.NetFnOEM | 1, Cmd: 1}, nil, ErrBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDriver()
			f.registerErr = tc.err
			_, err := start(context.Background(), "/dev/ipmi-test", f, Options{KeepDriverAddress: true, Commands: []CommandSpec{tc.spec}, Logger: quietLogger()})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if f.closeCount != 1 {
				t.Fatalf("device closed %d times", f.closeCount)
			}
		})
	}
}
