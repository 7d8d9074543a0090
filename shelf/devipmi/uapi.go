package devipmi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"hpiagent/shelf/ipmi"
)

// Go mirrors of the structures of the kernel header include/uapi/linux/ipmi.h.
// Go lays out fields with the same natural alignment as C on Linux, and Go's
// int has the size of C's long on every Linux port (LP64 and ILP32), so
// these types match the C layout without explicit padding. layout_test.go
// checks every size and offset, against numbers derived from the header and,
// when gcc is installed, against the header itself.

// cLong is C's long (the msgid fields).
type cLong = int

// Address types and channels (linux/ipmi.h).
const (
	addrTypeSystemInterface = 0x0c // IPMI_SYSTEM_INTERFACE_ADDR_TYPE
	addrTypeIPMB            = 0x01 // IPMI_IPMB_ADDR_TYPE
	addrTypeIPMBBroadcast   = 0x41 // IPMI_IPMB_BROADCAST_ADDR_TYPE
	addrTypeIPMBDirect      = 0x81 // IPMI_IPMB_DIRECT_ADDR_TYPE
	addrTypeLAN             = 0x04 // IPMI_LAN_ADDR_TYPE

	bmcChannel  = 0x0f // IPMI_BMC_CHANNEL
	numChannels = 0x10 // IPMI_NUM_CHANNELS

	maxAddrSize = 32  // IPMI_MAX_ADDR_SIZE
	maxMsgLen   = 272 // IPMI_MAX_MSG_LENGTH (linux/ipmi_msgdefs.h)
)

// Receive types (recv_type of struct ipmi_recv).
const (
	recvTypeResponse         = 1 // IPMI_RESPONSE_RECV_TYPE
	recvTypeAsyncEvent       = 2 // IPMI_ASYNC_EVENT_RECV_TYPE
	recvTypeCommand          = 3 // IPMI_CMD_RECV_TYPE
	recvTypeResponseResponse = 4 // IPMI_RESPONSE_RESPONSE_TYPE
	recvTypeOEM              = 5 // IPMI_OEM_RECV_TYPE
)

// ipmiAddrBuf is struct ipmi_addr: big enough for any address type.
type ipmiAddrBuf struct {
	addrType int32
	channel  int16
	data     [maxAddrSize]byte
}

// ipmiSystemInterfaceAddr is struct ipmi_system_interface_addr.
type ipmiSystemInterfaceAddr struct {
	addrType int32
	channel  int16
	lun      uint8
}

// ipmiIPMBAddr is struct ipmi_ipmb_addr.
type ipmiIPMBAddr struct {
	addrType  int32
	channel   int16
	slaveAddr uint8
	lun       uint8
}

// ipmiMsg is struct ipmi_msg.
type ipmiMsg struct {
	netfn   uint8
	cmd     uint8
	dataLen uint16
	data    unsafe.Pointer
}

// ipmiReq is struct ipmi_req (IPMICTL_SEND_COMMAND).
type ipmiReq struct {
	addr    unsafe.Pointer
	addrLen uint32
	msgid   cLong
	msg     ipmiMsg
}

// ipmiReqSettime is struct ipmi_req_settime (IPMICTL_SEND_COMMAND_SETTIME).
type ipmiReqSettime struct {
	req         ipmiReq
	retries     int32
	retryTimeMs uint32
}

// ipmiRecv is struct ipmi_recv (IPMICTL_RECEIVE_MSG_TRUNC).
type ipmiRecv struct {
	recvType int32
	addr     unsafe.Pointer
	addrLen  uint32
	msgid    cLong
	msg      ipmiMsg
}

// ioctl request numbers, computed like the kernel's _IOR/_IOWR macros.
var (
	ioctlReceiveMsgTrunc = iowr('i', 11, unsafe.Sizeof(ipmiRecv{}))
	ioctlSendCommand     = ior('i', 13, unsafe.Sizeof(ipmiReq{}))
	ioctlSetGetsEvents   = ior('i', 16, unsafe.Sizeof(int32(0)))
	ioctlSetMyAddress    = ior('i', 17, unsafe.Sizeof(uint32(0)))
	ioctlGetMyAddress    = ior('i', 18, unsafe.Sizeof(uint32(0)))
	ioctlSendSettime     = ior('i', 21, unsafe.Sizeof(ipmiReqSettime{}))
)

func ioc(dir, typ, nr, size uintptr) uintptr {
	return dir<<iocDirShift | typ<<iocTypeShift | nr<<iocNRShift | size<<iocSizeShift
}

func ior(typ byte, nr uintptr, size uintptr) uintptr {
	return ioc(iocRead, uintptr(typ), nr, size)
}

func iowr(typ byte, nr uintptr, size uintptr) uintptr {
	return ioc(iocRead|iocWrite, uintptr(typ), nr, size)
}

const (
	iocNRShift   = 0
	iocTypeShift = 8
	iocSizeShift = 16
	iocDirShift  = iocSizeShift + iocSizeBits
)

// destination is the driver address a request goes to.
type destination struct {
	si   ipmiSystemInterfaceAddr
	ipmb ipmiIPMBAddr
	isSI bool
}

// destinationFor chooses the driver address for a request to to, given the
// IPMB address of the local controller (myAddr): the system interface for
// the local controller (Slave 0 or Slave == myAddr, as ipmitool does), an
// IPMB address otherwise.
func destinationFor(to ipmi.Addr, myAddr uint8) (destination, error) {
	if to.LUN > 3 {
		return destination{}, fmt.Errorf("%w: LUN %d (must be 0..3)", ErrBadRequest, to.LUN)
	}
	if to.Slave == 0 || to.Slave == myAddr {
		return destination{isSI: true, si: ipmiSystemInterfaceAddr{
			addrType: addrTypeSystemInterface,
			channel:  bmcChannel,
			lun:      to.LUN,
		}}, nil
	}
	if to.Channel >= numChannels {
		return destination{}, fmt.Errorf("%w: channel %d (must be 0..15)", ErrBadRequest, to.Channel)
	}
	return destination{ipmb: ipmiIPMBAddr{
		addrType:  addrTypeIPMB,
		channel:   int16(to.Channel),
		slaveAddr: to.Slave,
		lun:       to.LUN,
	}}, nil
}

// pointer returns the address of the chosen C structure and its length.
// d must stay alive (and unmoved: it lives on the heap) during the ioctl.
func (d *destination) pointer() (unsafe.Pointer, uint32) {
	if d.isSI {
		return unsafe.Pointer(&d.si), uint32(unsafe.Sizeof(d.si))
	}
	return unsafe.Pointer(&d.ipmb), uint32(unsafe.Sizeof(d.ipmb))
}

// received is one message taken from the driver's receive queue, decoded
// and copied out of the receive buffers.
type received struct {
	recvType int32
	addrType int32
	from     ipmi.Addr
	msgid    int64
	netfn    uint8 // as the driver reports it (responses: odd)
	cmd      uint8
	data     []byte
	src      []byte // the raw source address, to answer a command
	// truncated is set when the message did not fit the receive buffer
	// and the driver cut it (IPMICTL_RECEIVE_MSG_TRUNC returned EMSGSIZE).
	truncated bool
}

// Errors from decodeRecv.
var (
	errRecvAddr = errors.New("malformed source address from the IPMI driver")
	errRecvData = errors.New("malformed message length from the IPMI driver")
)

// decodeRecv decodes what IPMICTL_RECEIVE_MSG_TRUNC left in the receive
// structure: the address buffer and its reported length, the data buffer and
// its reported length. It never trusts the lengths: a length beyond its
// buffer is an error. data is copied.
func decodeRecv(recvType int32, addrBuf []byte, addrLen uint32, msgid int64, netfn, cmd uint8, dataBuf []byte, dataLen uint16, truncated bool) (received, error) {
	m := received{recvType: recvType, msgid: msgid, netfn: netfn, cmd: cmd, truncated: truncated}
	if uint64(addrLen) > uint64(len(addrBuf)) {
		return m, fmt.Errorf("%w: address length %d exceeds the %d-byte buffer", errRecvAddr, addrLen, len(addrBuf))
	}
	if int(dataLen) > len(dataBuf) {
		return m, fmt.Errorf("%w: data length %d exceeds the %d-byte buffer", errRecvData, dataLen, len(dataBuf))
	}
	at, from, err := decodeAddr(addrBuf[:addrLen])
	if err != nil {
		return m, err
	}
	m.addrType, m.from = at, from
	m.src = append([]byte(nil), addrBuf[:addrLen]...)
	m.data = append([]byte(nil), dataBuf[:dataLen]...)
	return m, nil
}

// decodeAddr decodes a struct ipmi_addr of any known type. Unknown types
// keep only the channel.
func decodeAddr(b []byte) (int32, ipmi.Addr, error) {
	if len(b) < 6 {
		return 0, ipmi.Addr{}, fmt.Errorf("%w: %d bytes, need at least 6", errRecvAddr, len(b))
	}
	at := int32(binary.NativeEndian.Uint32(b[0:4]))
	ch := binary.NativeEndian.Uint16(b[4:6])
	switch at {
	case addrTypeSystemInterface:
		if len(b) < 7 {
			return at, ipmi.Addr{}, fmt.Errorf("%w: system interface address of %d bytes", errRecvAddr, len(b))
		}
		return at, ipmi.Addr{LUN: b[6] & 3}, nil
	case addrTypeIPMB, addrTypeIPMBBroadcast, addrTypeIPMBDirect:
		if len(b) < 8 {
			return at, ipmi.Addr{}, fmt.Errorf("%w: IPMB address of %d bytes", errRecvAddr, len(b))
		}
		if ch >= numChannels {
			return at, ipmi.Addr{}, fmt.Errorf("%w: IPMB channel %d", errRecvAddr, ch)
		}
		return at, ipmi.Addr{Channel: uint8(ch), Slave: b[6], LUN: b[7] & 3}, nil
	default:
		return at, ipmi.Addr{Channel: uint8(ch)}, nil
	}
}
