//go:build linux

package devipmi

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// layoutCase is one structure of linux/ipmi.h with its size and field
// offsets.
type layoutCase struct {
	name    string
	size    uintptr
	offsets map[string]uintptr
}

// goLayout reports the Go mirror types' sizes and offsets under the C names.
func goLayout() map[string]layoutCase {
	var (
		si   ipmiSystemInterfaceAddr
		ipmb ipmiIPMBAddr
		addr ipmiAddrBuf
		msg  ipmiMsg
		req  ipmiReq
		st   ipmiReqSettime
		recv ipmiRecv
		cs   ipmiCmdspec
	)
	return map[string]layoutCase{
		"ipmi_cmdspec": {size: unsafe.Sizeof(cs), offsets: map[string]uintptr{"netfn": unsafe.Offsetof(cs.netfn), "cmd": unsafe.Offsetof(cs.cmd)}},
		"ipmi_system_interface_addr": {size: unsafe.Sizeof(si), offsets: map[string]uintptr{
			"addr_type": unsafe.Offsetof(si.addrType), "channel": unsafe.Offsetof(si.channel), "lun": unsafe.Offsetof(si.lun)}},
		"ipmi_ipmb_addr": {size: unsafe.Sizeof(ipmb), offsets: map[string]uintptr{
			"addr_type": unsafe.Offsetof(ipmb.addrType), "channel": unsafe.Offsetof(ipmb.channel),
			"slave_addr": unsafe.Offsetof(ipmb.slaveAddr), "lun": unsafe.Offsetof(ipmb.lun)}},
		"ipmi_addr": {size: unsafe.Sizeof(addr), offsets: map[string]uintptr{
			"addr_type": unsafe.Offsetof(addr.addrType), "channel": unsafe.Offsetof(addr.channel), "data": unsafe.Offsetof(addr.data)}},
		"ipmi_msg": {size: unsafe.Sizeof(msg), offsets: map[string]uintptr{
			"netfn": unsafe.Offsetof(msg.netfn), "cmd": unsafe.Offsetof(msg.cmd),
			"data_len": unsafe.Offsetof(msg.dataLen), "data": unsafe.Offsetof(msg.data)}},
		"ipmi_req": {size: unsafe.Sizeof(req), offsets: map[string]uintptr{
			"addr": unsafe.Offsetof(req.addr), "addr_len": unsafe.Offsetof(req.addrLen),
			"msgid": unsafe.Offsetof(req.msgid), "msg": unsafe.Offsetof(req.msg)}},
		"ipmi_req_settime": {size: unsafe.Sizeof(st), offsets: map[string]uintptr{
			"req": unsafe.Offsetof(st.req), "retries": unsafe.Offsetof(st.retries), "retry_time_ms": unsafe.Offsetof(st.retryTimeMs)}},
		"ipmi_recv": {size: unsafe.Sizeof(recv), offsets: map[string]uintptr{
			"recv_type": unsafe.Offsetof(recv.recvType), "addr": unsafe.Offsetof(recv.addr),
			"addr_len": unsafe.Offsetof(recv.addrLen), "msgid": unsafe.Offsetof(recv.msgid), "msg": unsafe.Offsetof(recv.msg)}},
	}
}

// cProbe prints, for the real kernel header, every size, offset and ioctl
// number this package depends on.
const cProbe = `#include <stdio.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <linux/ipmi.h>
#define S(t) printf("%s size %zu\n", #t, sizeof(struct t));
#define O(t, f) printf("%s %s %zu\n", #t, #f, offsetof(struct t, f));
#define I(n) printf("ioctl %s %lu\n", #n, (unsigned long)(n));
#define C(n) printf("const %s %ld\n", #n, (long)(n));
int main(void) {
	S(ipmi_system_interface_addr) O(ipmi_system_interface_addr, addr_type) O(ipmi_system_interface_addr, channel) O(ipmi_system_interface_addr, lun)
	S(ipmi_ipmb_addr) O(ipmi_ipmb_addr, addr_type) O(ipmi_ipmb_addr, channel) O(ipmi_ipmb_addr, slave_addr) O(ipmi_ipmb_addr, lun)
	S(ipmi_addr) O(ipmi_addr, addr_type) O(ipmi_addr, channel) O(ipmi_addr, data)
	S(ipmi_msg) O(ipmi_msg, netfn) O(ipmi_msg, cmd) O(ipmi_msg, data_len) O(ipmi_msg, data)
	S(ipmi_req) O(ipmi_req, addr) O(ipmi_req, addr_len) O(ipmi_req, msgid) O(ipmi_req, msg)
	S(ipmi_req_settime) O(ipmi_req_settime, req) O(ipmi_req_settime, retries) O(ipmi_req_settime, retry_time_ms)
	S(ipmi_recv) O(ipmi_recv, recv_type) O(ipmi_recv, addr) O(ipmi_recv, addr_len) O(ipmi_recv, msgid) O(ipmi_recv, msg)
	I(IPMICTL_RECEIVE_MSG_TRUNC) I(IPMICTL_SEND_COMMAND) I(IPMICTL_SET_GETS_EVENTS_CMD)
	S(ipmi_cmdspec) O(ipmi_cmdspec, netfn) O(ipmi_cmdspec, cmd) I(IPMICTL_REGISTER_FOR_CMD)
	I(IPMICTL_SET_MY_ADDRESS_CMD) I(IPMICTL_GET_MY_ADDRESS_CMD) I(IPMICTL_SEND_COMMAND_SETTIME)
	C(IPMI_SYSTEM_INTERFACE_ADDR_TYPE) C(IPMI_IPMB_ADDR_TYPE) C(IPMI_IPMB_BROADCAST_ADDR_TYPE) C(IPMI_IPMB_DIRECT_ADDR_TYPE) C(IPMI_LAN_ADDR_TYPE)
	C(IPMI_BMC_CHANNEL) C(IPMI_NUM_CHANNELS) C(IPMI_MAX_ADDR_SIZE) C(IPMI_MAX_MSG_LENGTH)
	C(IPMI_RESPONSE_RECV_TYPE) C(IPMI_ASYNC_EVENT_RECV_TYPE) C(IPMI_CMD_RECV_TYPE) C(IPMI_RESPONSE_RESPONSE_TYPE) C(IPMI_OEM_RECV_TYPE)
	C(IPMI_TIMEOUT_ERR) C(IPMI_LOST_ARBITRATION_ERR) C(IPMI_BUS_ERR) C(IPMI_NAK_ON_WRITE_ERR) C(IPMI_ERR_UNSPECIFIED)
	return 0;
}
`

// TestLayoutAgainstKernelHeader compiles cProbe against the installed
// linux/ipmi.h and compares every number with this package. It is skipped
// when gcc or the header is missing.
func TestLayoutAgainstKernelHeader(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	if _, err := os.Stat("/usr/include/linux/ipmi.h"); err != nil {
		t.Skip("linux/ipmi.h not installed (linux-libc-dev)")
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "probe.c"), filepath.Join(dir, "probe")
	if err := os.WriteFile(src, []byte(cProbe), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("probe: %v", err)
	}

	layout := goLayout()
	ioctls := map[string]uintptr{
		"IPMICTL_RECEIVE_MSG_TRUNC":    ioctlReceiveMsgTrunc,
		"IPMICTL_SEND_COMMAND":         ioctlSendCommand,
		"IPMICTL_SET_GETS_EVENTS_CMD":  ioctlSetGetsEvents,
		"IPMICTL_SET_MY_ADDRESS_CMD":   ioctlSetMyAddress,
		"IPMICTL_GET_MY_ADDRESS_CMD":   ioctlGetMyAddress,
		"IPMICTL_SEND_COMMAND_SETTIME": ioctlSendSettime,
		"IPMICTL_REGISTER_FOR_CMD":     ioctlRegisterForCmd,
	}
	consts := map[string]int64{
		"IPMI_SYSTEM_INTERFACE_ADDR_TYPE": addrTypeSystemInterface, "IPMI_IPMB_ADDR_TYPE": addrTypeIPMB,
		"IPMI_IPMB_BROADCAST_ADDR_TYPE": addrTypeIPMBBroadcast, "IPMI_IPMB_DIRECT_ADDR_TYPE": addrTypeIPMBDirect,
		"IPMI_LAN_ADDR_TYPE": addrTypeLAN, "IPMI_BMC_CHANNEL": bmcChannel, "IPMI_NUM_CHANNELS": numChannels,
		"IPMI_MAX_ADDR_SIZE": maxAddrSize, "IPMI_MAX_MSG_LENGTH": maxMsgLen,
		"IPMI_RESPONSE_RECV_TYPE": recvTypeResponse, "IPMI_ASYNC_EVENT_RECV_TYPE": recvTypeAsyncEvent,
		"IPMI_CMD_RECV_TYPE": recvTypeCommand, "IPMI_RESPONSE_RESPONSE_TYPE": recvTypeResponseResponse,
		"IPMI_OEM_RECV_TYPE": recvTypeOEM,
		"IPMI_TIMEOUT_ERR":   0xc3, "IPMI_LOST_ARBITRATION_ERR": int64(ccLostArbitration),
		"IPMI_BUS_ERR": int64(ccBusError), "IPMI_NAK_ON_WRITE_ERR": int64(ccNAKOnWrite), "IPMI_ERR_UNSPECIFIED": 0xff,
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			t.Fatalf("probe line %q", sc.Text())
		}
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatalf("probe line %q: %v", sc.Text(), err)
		}
		checked++
		switch {
		case f[0] == "ioctl":
			if got := ioctls[f[1]]; uint64(got) != uint64(n) {
				t.Errorf("%s = %#x, header says %#x", f[1], got, n)
			}
		case f[0] == "const":
			if got, ok := consts[f[1]]; !ok || got != n {
				t.Errorf("%s = %#x, header says %#x", f[1], got, n)
			}
		case f[1] == "size":
			if got := layout[f[0]].size; uint64(got) != uint64(n) {
				t.Errorf("sizeof(struct %s) = %d, header says %d", f[0], got, n)
			}
		default:
			got, ok := layout[f[0]].offsets[f[1]]
			if !ok || uint64(got) != uint64(n) {
				t.Errorf("offsetof(struct %s, %s) = %d, header says %d", f[0], f[1], got, n)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("probe printed only %d values", checked)
	}
}
