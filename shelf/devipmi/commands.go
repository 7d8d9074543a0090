package devipmi

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"hpiagent/shelf/ipmi"
)

// CommandSpec names a command that other controllers may send to this
// system (Options.Commands).
type CommandSpec struct {
	NetFn ipmi.NetFn
	Cmd   uint8
}

// ipmiCmdspec is struct ipmi_cmdspec (IPMICTL_REGISTER_FOR_CMD).
type ipmiCmdspec struct {
	netfn uint8
	cmd   uint8
}

var ioctlRegisterForCmd = ior('i', 14, unsafe.Sizeof(ipmiCmdspec{}))

// registerCommands asks the driver to deliver the given commands to this
// user. Setup only (before the owner goroutine starts).
func (c *Conn) registerCommands(specs []CommandSpec) error {
	for _, s := range specs {
		if s.NetFn > 0x3f || s.NetFn.IsResponse() {
			return fmt.Errorf("%s: %w: register for netfn 0x%02x: not a request netfn", c.path, ErrBadRequest, uint8(s.NetFn))
		}
		cs := &ipmiCmdspec{netfn: uint8(s.NetFn), cmd: s.Cmd}
		err := c.dev.ioctl(ioctlRegisterForCmd, unsafe.Pointer(cs))
		runtime.KeepAlive(cs)
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("%s: register for netfn 0x%02x cmd 0x%02x: another user of the driver already has it: %w", c.path, uint8(s.NetFn), s.Cmd, err)
		}
		if err != nil {
			return fmt.Errorf("%s: register for netfn 0x%02x cmd 0x%02x (IPMICTL_REGISTER_FOR_CMD): %w", c.path, uint8(s.NetFn), s.Cmd, err)
		}
	}
	return nil
}

// responding is a Respond waiting for the driver's report on sending it.
type responding struct {
	ctx  context.Context
	ev   Event
	code ipmi.CompletionCode
	data []byte
	res  chan error
}

// Respond answers a Command event with completion code code and data. It
// returns when the driver reports whether the response went out (an
// IPMI_RESPONSE_RESPONSE_TYPE message); a non-zero code in that report is
// an error wrapping ErrNoResponse and the code (ipmi.CodeOf).
func (c *Conn) Respond(ctx context.Context, ev Event, code ipmi.CompletionCode, data []byte) error {
	if ev.Kind != Command || len(ev.src) == 0 {
		return fmt.Errorf("%s: %w: respond to a %s", c.path, ErrBadRequest, ev.Kind)
	}
	if len(data)+1 > maxMsgLen {
		return fmt.Errorf("%s: %w: response of %d bytes", c.path, ErrBadRequest, len(data)+1)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
	}
	rp := &responding{ctx: ctx, ev: ev, code: code, data: append([]byte(nil), data...), res: make(chan error, 1)}
	if err := c.submit(ctx, op{kind: opRespond, rp: rp}); err != nil {
		return err
	}
	select {
	case err := <-rp.res:
		return err
	case <-ctx.Done():
		select {
		case err := <-rp.res:
			return err
		default:
		}
		select {
		case c.ops <- op{kind: opCancelRespond, rp: rp}:
			c.dev.wake()
		case <-c.exited:
		}
		return fmt.Errorf("%s: response to netfn 0x%02x cmd 0x%02x from %s: no report from the driver: %w", c.path, uint8(ev.NetFn), ev.Cmd, ev.From, context.Cause(ctx))
	case <-c.exited:
		select {
		case err := <-rp.res:
			return err
		default:
			return c.exitErr
		}
	}
}

// sendResponse hands a response to the driver. Owner goroutine.
func (c *Conn) sendResponse(rp *responding) error {
	ev := rp.ev
	a := new(ipmiAddrBuf)
	ab := unsafe.Slice((*byte)(unsafe.Pointer(a)), unsafe.Sizeof(*a))
	n := copy(ab, ev.src)
	body := append([]byte{byte(rp.code)}, rp.data...)
	r := &ipmiReq{
		addr:    unsafe.Pointer(a),
		addrLen: uint32(n),
		msgid:   cLong(ev.Seq),
		msg:     ipmiMsg{netfn: uint8(ev.NetFn) | 1, cmd: ev.Cmd, dataLen: uint16(len(body)), data: unsafe.Pointer(&body[0])},
	}
	err := c.dev.ioctl(ioctlSendCommand, unsafe.Pointer(r))
	runtime.KeepAlive(a)
	runtime.KeepAlive(body)
	runtime.KeepAlive(r)
	if err != nil {
		return fmt.Errorf("%s: send response to netfn 0x%02x cmd 0x%02x from %s: %s: %w", c.path, uint8(ev.NetFn), ev.Cmd, ev.From, sendErrnoMeaning(err), err)
	}
	c.responding[ev.Seq] = append(c.responding[ev.Seq], rp)
	return nil
}

// handleResponseResponse completes the oldest Respond with the msgid.
func (c *Conn) handleResponseResponse(m received) {
	q := c.responding[m.msgid]
	if len(q) == 0 {
		c.log.Debug("devipmi: response-send report for no waiting Respond", "msgid", m.msgid)
		return
	}
	rp := q[0]
	if len(q) == 1 {
		delete(c.responding, m.msgid)
	} else {
		c.responding[m.msgid] = q[1:]
	}
	var err error
	switch {
	case len(m.data) == 0:
		err = fmt.Errorf("%s: %w: response-send report without completion code", c.path, ErrBadResponse)
	case m.data[0] != 0:
		err = &DriverError{Addr: rp.ev.From, NetFn: rp.ev.NetFn.Response(), Cmd: rp.ev.Cmd, Code: ipmi.CompletionCode(m.data[0]), Attempts: 1}
	}
	rp.res <- err
}

func (c *Conn) cancelRespond(rp *responding) {
	q := c.responding[rp.ev.Seq]
	for i, x := range q {
		if x == rp {
			q = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(c.responding, rp.ev.Seq)
	} else {
		c.responding[rp.ev.Seq] = q
	}
}
