//go:build linux && amd64

package devipmi

import "testing"

// TestLayoutAMD64 compares the Go mirrors with the x86-64 C layout worked
// out by hand from linux/ipmi.h (int 4, short 2, long and pointers 8, each
// aligned to its size).
func TestLayoutAMD64(t *testing.T) {
	want := []layoutCase{
		{"ipmi_system_interface_addr", 8, map[string]uintptr{"addr_type": 0, "channel": 4, "lun": 6}},
		{"ipmi_ipmb_addr", 8, map[string]uintptr{"addr_type": 0, "channel": 4, "slave_addr": 6, "lun": 7}},
		{"ipmi_addr", 40, map[string]uintptr{"addr_type": 0, "channel": 4, "data": 6}},
		{"ipmi_msg", 16, map[string]uintptr{"netfn": 0, "cmd": 1, "data_len": 2, "data": 8}},
		{"ipmi_req", 40, map[string]uintptr{"addr": 0, "addr_len": 8, "msgid": 16, "msg": 24}},
		{"ipmi_req_settime", 48, map[string]uintptr{"req": 0, "retries": 40, "retry_time_ms": 44}},
		{"ipmi_cmdspec", 2, map[string]uintptr{"netfn": 0, "cmd": 1}},
		{"ipmi_recv", 48, map[string]uintptr{"recv_type": 0, "addr": 8, "addr_len": 16, "msgid": 24, "msg": 32}},
	}
	got := goLayout()
	for _, w := range want {
		t.Run(w.name, func(t *testing.T) {
			g, ok := got[w.name]
			if !ok {
				t.Fatal("no Go mirror")
			}
			if g.size != w.size {
				t.Errorf("sizeof = %d, want %d", g.size, w.size)
			}
			if len(g.offsets) != len(w.offsets) {
				t.Errorf("%d fields, want %d", len(g.offsets), len(w.offsets))
			}
			for f, off := range w.offsets {
				if g.offsets[f] != off {
					t.Errorf("offsetof(%s) = %d, want %d", f, g.offsets[f], off)
				}
			}
		})
	}
}

// TestIoctlNumbersAMD64 compares the computed request numbers with the
// values of the _IOR/_IOWR macros on x86-64.
func TestIoctlNumbersAMD64(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"IPMICTL_RECEIVE_MSG_TRUNC", ioctlReceiveMsgTrunc, 0xc030690b},
		{"IPMICTL_SEND_COMMAND", ioctlSendCommand, 0x8028690d},
		{"IPMICTL_SET_GETS_EVENTS_CMD", ioctlSetGetsEvents, 0x80046910},
		{"IPMICTL_SET_MY_ADDRESS_CMD", ioctlSetMyAddress, 0x80046911},
		{"IPMICTL_GET_MY_ADDRESS_CMD", ioctlGetMyAddress, 0x80046912},
		{"IPMICTL_SEND_COMMAND_SETTIME", ioctlSendSettime, 0x80306915},
		{"IPMICTL_REGISTER_FOR_CMD", ioctlRegisterForCmd, 0x8002690e},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
}
