//go:build linux && amd64

package devipmi

import (
	"encoding/binary"
	"errors"
	"sync"
	"syscall"
	"unsafe"
)

// fakeDriver stands in for ipmi_devintf in unit tests. It reads and writes
// the ioctl structures at the byte offsets of the C layout on amd64 (derived
// from linux/ipmi.h by hand, independently of the Go mirror types), and it
// accepts only the ioctl numbers the real driver uses, so a layout or
// numbering mistake in the package makes these tests fail.
type fakeDriver struct {
	mu         sync.Mutex
	queue      []kmsg
	sent       []sentReq
	woken      bool
	closed     bool
	closeCount int
	notify     chan struct{}
	pollErr    error

	// onSend answers a request: the messages it returns are queued at
	// once, a non-nil error is the ioctl's result (nothing is sent then).
	onSend func(r sentReq) ([]kmsg, error)
	// sentCh, if set, receives every accepted request.
	sentCh chan sentReq

	getsEvents    []int32
	myAddr        uint32
	setAddrs      []uint32
	getsEventsErr error
	registered    [][2]uint8
	registerErr   error
}

// sentReq is a request as the driver saw it.
type sentReq struct {
	settime  bool
	addrType int32
	channel  int16
	slave    uint8
	lun      uint8
	addrLen  uint32
	msgid    int64
	netfn    uint8
	cmd      uint8
	data     []byte
	retries  int32
	retryMs  uint32
}

// kmsg is a message in the driver's receive queue.
type kmsg struct {
	recvType int32
	addr     []byte
	msgid    int64
	netfn    uint8
	cmd      uint8
	data     []byte
}

// The real ioctl numbers on amd64 (as ipmitool and the kernel compute them).
const (
	kSendCommand   = 0x8028690d
	kSendSettime   = 0x80306915
	kReceiveTrunc  = 0xc030690b
	kSetGetsEvents = 0x80046910
	kSetMyAddress  = 0x80046911
	kGetMyAddress  = 0x80046912
	kRegisterCmd   = 0x8002690e
)

func newFakeDriver() *fakeDriver {
	return &fakeDriver{notify: make(chan struct{}, 1), myAddr: 0x20}
}

func (f *fakeDriver) signal() {
	select {
	case f.notify <- struct{}{}:
	default:
	}
}

// deliver queues messages as if they arrived from the controller.
func (f *fakeDriver) deliver(ms ...kmsg) {
	f.mu.Lock()
	f.queue = append(f.queue, ms...)
	f.mu.Unlock()
	f.signal()
}

func (f *fakeDriver) failPoll(err error) {
	f.mu.Lock()
	f.pollErr = err
	f.mu.Unlock()
	f.signal()
}

func (f *fakeDriver) sentRequests() []sentReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentReq(nil), f.sent...)
}

func rd32(p unsafe.Pointer, off uintptr) uint32 {
	return binary.LittleEndian.Uint32(unsafe.Slice((*byte)(unsafe.Add(p, off)), 4))
}
func rd16(p unsafe.Pointer, off uintptr) uint16 {
	return binary.LittleEndian.Uint16(unsafe.Slice((*byte)(unsafe.Add(p, off)), 2))
}
func rd64(p unsafe.Pointer, off uintptr) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice((*byte)(unsafe.Add(p, off)), 8))
}
func rd8(p unsafe.Pointer, off uintptr) uint8 { return *(*uint8)(unsafe.Add(p, off)) }
func rdPtr(p unsafe.Pointer, off uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Add(p, off))
}
func wr32(p unsafe.Pointer, off uintptr, v uint32) {
	binary.LittleEndian.PutUint32(unsafe.Slice((*byte)(unsafe.Add(p, off)), 4), v)
}
func wr16(p unsafe.Pointer, off uintptr, v uint16) {
	binary.LittleEndian.PutUint16(unsafe.Slice((*byte)(unsafe.Add(p, off)), 2), v)
}
func wr64(p unsafe.Pointer, off uintptr, v uint64) {
	binary.LittleEndian.PutUint64(unsafe.Slice((*byte)(unsafe.Add(p, off)), 8), v)
}

func (f *fakeDriver) ioctl(op uintptr, arg unsafe.Pointer) error {
	switch op {
	case kSendCommand, kSendSettime:
		// struct ipmi_req: addr@0 (ptr), addr_len@8 (u32), msgid@16 (long),
		// msg@24: netfn@24, cmd@25, data_len@26 (u16), data@32 (ptr).
		// struct ipmi_req_settime: req@0, retries@40 (int), retry_time_ms@44.
		r := sentReq{settime: op == kSendSettime}
		addr := rdPtr(arg, 0)
		r.addrLen = rd32(arg, 8)
		if r.addrLen < 8 || r.addrLen > 40 {
			return syscall.EINVAL
		}
		r.addrType = int32(rd32(addr, 0))
		r.channel = int16(rd16(addr, 4))
		switch r.addrType {
		case 0x0c:
			r.lun = rd8(addr, 6)
		case 0x01:
			r.slave, r.lun = rd8(addr, 6), rd8(addr, 7)
		default:
			return syscall.EINVAL
		}
		r.msgid = int64(rd64(arg, 16))
		r.netfn, r.cmd = rd8(arg, 24), rd8(arg, 25)
		n := rd16(arg, 26)
		if n > 272 {
			return syscall.EMSGSIZE
		}
		if d := rdPtr(arg, 32); d != nil && n > 0 {
			r.data = append([]byte(nil), unsafe.Slice((*byte)(d), n)...)
		}
		if r.settime {
			r.retries = int32(rd32(arg, 40))
			r.retryMs = rd32(arg, 44)
		}
		var replies []kmsg
		if f.onSend != nil {
			var err error
			if replies, err = f.onSend(r); err != nil {
				return err
			}
		}
		f.mu.Lock()
		f.sent = append(f.sent, r)
		f.queue = append(f.queue, replies...)
		f.mu.Unlock()
		if f.sentCh != nil {
			f.sentCh <- r
		}
		f.signal()
		return nil

	case kReceiveTrunc:
		// struct ipmi_recv: recv_type@0 (int), addr@8 (ptr), addr_len@16
		// (u32), msgid@24 (long), msg@32: netfn@32, cmd@33, data_len@34,
		// data@40.
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.queue) == 0 {
			return syscall.EAGAIN
		}
		m := f.queue[0]
		if int(rd32(arg, 16)) < len(m.addr) {
			return syscall.EINVAL // the real driver leaves the message queued
		}
		f.queue = f.queue[1:]
		copy(unsafe.Slice((*byte)(rdPtr(arg, 8)), len(m.addr)), m.addr)
		wr32(arg, 16, uint32(len(m.addr)))
		wr32(arg, 0, uint32(m.recvType))
		wr64(arg, 24, uint64(m.msgid))
		*(*uint8)(unsafe.Add(arg, 32)) = m.netfn
		*(*uint8)(unsafe.Add(arg, 33)) = m.cmd
		var err error
		n := len(m.data)
		if bufLen := int(rd16(arg, 34)); n > bufLen {
			n, err = bufLen, syscall.EMSGSIZE
		}
		copy(unsafe.Slice((*byte)(rdPtr(arg, 40)), n), m.data)
		wr16(arg, 34, uint16(n))
		return err

	case kSetGetsEvents:
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.getsEventsErr != nil {
			return f.getsEventsErr
		}
		f.getsEvents = append(f.getsEvents, int32(rd32(arg, 0)))
		return nil
	case kSetMyAddress:
		f.mu.Lock()
		defer f.mu.Unlock()
		f.myAddr = rd32(arg, 0)
		f.setAddrs = append(f.setAddrs, f.myAddr)
		return nil
	case kRegisterCmd:
		// struct ipmi_cmdspec: netfn@0, cmd@1.
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.registerErr != nil {
			return f.registerErr
		}
		f.registered = append(f.registered, [2]uint8{rd8(arg, 0), rd8(arg, 1)})
		return nil
	case kGetMyAddress:
		f.mu.Lock()
		defer f.mu.Unlock()
		wr32(arg, 0, f.myAddr)
		return nil
	}
	return syscall.ENOTTY
}

func (f *fakeDriver) poll() (bool, error) {
	for {
		f.mu.Lock()
		switch {
		case f.closed:
			f.mu.Unlock()
			return false, errors.New("fake driver: poll after close")
		case f.pollErr != nil:
			err := f.pollErr
			f.mu.Unlock()
			return false, err
		case len(f.queue) > 0:
			f.mu.Unlock()
			return true, nil
		case f.woken:
			f.woken = false
			f.mu.Unlock()
			return false, nil
		}
		f.mu.Unlock()
		<-f.notify
	}
}

func (f *fakeDriver) wake() {
	f.mu.Lock()
	f.woken = true
	f.mu.Unlock()
	f.signal()
}

func (f *fakeDriver) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.closeCount++
	return nil
}

// Address bytes as the driver copies them out (struct ipmi_addr prefix).
func siAddr(lun uint8) []byte {
	return []byte{0x0c, 0, 0, 0, 0x0f, 0, lun, 0}
}

func ipmbAddr(ch, slave, lun uint8) []byte {
	return []byte{0x01, 0, 0, 0, ch, 0, slave, lun}
}

// reply is the driver's response message to r carrying data (completion
// code first).
func reply(r sentReq, data ...byte) kmsg {
	a := siAddr(r.lun)
	if r.addrType == 0x01 {
		a = ipmbAddr(uint8(r.channel), r.slave, r.lun)
	}
	return kmsg{recvType: 1, addr: a, msgid: r.msgid, netfn: r.netfn | 1, cmd: r.cmd, data: data}
}
