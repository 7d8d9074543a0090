package devipmi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"hpiagent/shelf/ipmi"
)

// DefaultPath is the device of the first IPMI interface.
const DefaultPath = "/dev/ipmi0"

// Defaults of Options.
const (
	DefaultEventBuffer = 64
	DefaultTimeout     = 10 * time.Second
	DefaultIPMBTimeout = 2 * time.Second
	DefaultRetries     = 2
)

// maxReceivePerWake bounds how many messages the owner goroutine takes from
// the driver before it looks at new requests again.
const maxReceivePerWake = 64

// Options tune a Conn. The zero value is ready for an ATCA blade.
type Options struct {
	// IPMBAddress is the IPMB-0 address of the local controller (an ATCA
	// IPMC's address depends on its slot, for example 0x82).
	// The driver puts it into bridged requests as the requester's address,
	// so that responses find their way back. 0 asks the controller with
	// PICMG Get Address Info; a controller that does not implement it
	// keeps the driver's address (normally 0x20).
	IPMBAddress uint8
	// KeepDriverAddress leaves the driver's IPMB address alone: no
	// discovery, IPMBAddress is ignored.
	KeepDriverAddress bool
	// NoEvents does not ask the driver for asynchronous events.
	NoEvents bool
	// EventBuffer is the capacity of the Events channel (default 64).
	EventBuffer int
	// Timeout bounds an Exchange whose context has no deadline (default
	// 10 s).
	Timeout time.Duration
	// IPMBTimeout is how long the driver waits for the response to one
	// bridged request before it reports completion code 0xC3 (default
	// 2 s). The driver checks its timers once a second, so the effective
	// time is rounded up to whole seconds.
	IPMBTimeout time.Duration
	// Retries is how many times a ReadOnly request is sent again after the
	// driver reported no response (default 2; negative for none). Requests
	// that are not ReadOnly are never sent twice.
	Retries int
	// Commands are registered with the driver (IPMICTL_REGISTER_FOR_CMD):
	// when another controller sends one of them to this system, it is
	// delivered on Events as a Command, to be answered with Respond.
	Commands []CommandSpec
	// Logger receives diagnostics (default slog.Default()).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.EventBuffer <= 0 {
		o.EventBuffer = DefaultEventBuffer
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.IPMBTimeout <= 0 {
		o.IPMBTimeout = DefaultIPMBTimeout
	}
	switch {
	case o.Retries == 0:
		o.Retries = DefaultRetries
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Conn is an open OpenIPMI device. It implements ipmi.Conn and is safe for
// concurrent use.
type Conn struct {
	path   string
	dev    device
	opts   Options
	log    *slog.Logger
	ops    chan op
	events chan Event

	closing   chan struct{} // closed by Close
	exited    chan struct{} // closed when the owner goroutine has finished
	closeOnce sync.Once
	dropped   atomic.Uint64

	// Set by the owner goroutine before exited is closed.
	exitErr  error
	closeErr error

	// Owned by the owner goroutine (and by Open before it starts).
	pending    map[int64]*pending
	responding map[int64][]*responding
	lastID     int64
	myAddr     uint8
	lost       uint64
	recv       ipmiRecv
	recvAddr   ipmiAddrBuf
	recvData   [maxMsgLen]byte
}

var _ ipmi.Conn = (*Conn)(nil)

type opKind uint8

const (
	opSubmit opKind = iota + 1
	opCancel
	opControl
	opRespond
	opCancelRespond
)

type op struct {
	kind opKind
	p    *pending
	fn   func() error
	done chan error
	rp   *responding
}

type pending struct {
	ctx      context.Context
	to       ipmi.Addr
	req      ipmi.Request
	res      chan result
	msgid    int64
	attempts int
	bridged  bool
}

type result struct {
	resp ipmi.Response
	err  error
}

// Open opens the OpenIPMI device at path (normally DefaultPath), asks the
// driver for asynchronous events, settles the local IPMB address (see
// Options.IPMBAddress) and starts the owner goroutine. ctx bounds the
// setup only.
func Open(ctx context.Context, path string, opts Options) (*Conn, error) {
	dev, err := openDevice(path)
	if err != nil {
		return nil, err
	}
	return start(ctx, path, dev, opts)
}

func start(ctx context.Context, path string, dev device, opts Options) (*Conn, error) {
	opts = opts.withDefaults()
	c := &Conn{
		path:       path,
		dev:        dev,
		opts:       opts,
		log:        opts.Logger.With("device", path),
		ops:        make(chan op, 64),
		events:     make(chan Event, opts.EventBuffer),
		closing:    make(chan struct{}),
		exited:     make(chan struct{}),
		pending:    make(map[int64]*pending),
		responding: make(map[int64][]*responding),
		myAddr:     ipmi.AddrBMC,
	}
	// Setup before the owner goroutine starts: this goroutine is the only
	// user of dev until then.
	if !opts.NoEvents {
		on := new(int32)
		*on = 1
		if err := dev.ioctl(ioctlSetGetsEvents, unsafe.Pointer(on)); err != nil {
			dev.close()
			return nil, fmt.Errorf("%s: enable asynchronous events (IPMICTL_SET_GETS_EVENTS_CMD): %w", path, err)
		}
	}
	addr := new(uint32)
	if err := dev.ioctl(ioctlGetMyAddress, unsafe.Pointer(addr)); err != nil {
		c.log.Warn("devipmi: cannot read the driver's IPMB address; assuming 0x20", "err", err)
	} else {
		c.myAddr = uint8(*addr)
	}
	if opts.IPMBAddress != 0 && !opts.KeepDriverAddress {
		if err := c.setMyAddress(opts.IPMBAddress); err != nil {
			dev.close()
			return nil, err
		}
	}
	if err := c.registerCommands(opts.Commands); err != nil {
		dev.close()
		return nil, err
	}
	driverAddr := c.myAddr
	go c.run()
	if opts.IPMBAddress == 0 && !opts.KeepDriverAddress {
		if err := c.discoverAddress(ctx, driverAddr); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// setMyAddress sets the driver's IPMB-0 address. Owner goroutine or setup.
func (c *Conn) setMyAddress(a uint8) error {
	if a == 0 || a&1 != 0 {
		return fmt.Errorf("%s: %w: IPMB address 0x%02x (must be even and non-zero)", c.path, ErrBadRequest, a)
	}
	v := new(uint32)
	*v = uint32(a)
	if err := c.dev.ioctl(ioctlSetMyAddress, unsafe.Pointer(v)); err != nil {
		return fmt.Errorf("%s: set the local IPMB address to 0x%02x (IPMICTL_SET_MY_ADDRESS_CMD): %w", c.path, a, err)
	}
	c.myAddr = a
	return nil
}

// PICMG Get Address Info (PICMG 3.0 table 3-9).
const (
	picmgID             = 0x00
	cmdGetAddressInfo   = 0x01
	addrInfoIPMB0Offset = 2 // response data after the completion code: PICMG ID, HW address, IPMB-0 address, ...
)

// discoverAddress asks the local controller for its IPMB-0 address and
// gives it to the driver, whose address is driverAddr so far.
func (c *Conn) discoverAddress(ctx context.Context, driverAddr uint8) error {
	resp, err := c.Exchange(ctx, ipmi.Addr{}, ipmi.Request{NetFn: ipmi.NetFnGroup, Cmd: cmdGetAddressInfo, Data: []byte{picmgID}, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("%s: ask the local controller for its IPMB address (PICMG Get Address Info): %w", c.path, err)
	}
	if resp.Code != ipmi.CCOK {
		c.log.Info("devipmi: local controller does not answer PICMG Get Address Info; keeping the driver's IPMB address",
			"code", resp.Code.String(), "ipmb_address", fmt.Sprintf("0x%02x", driverAddr))
		return nil
	}
	if len(resp.Data) <= addrInfoIPMB0Offset || resp.Data[0] != picmgID {
		c.log.Warn("devipmi: malformed PICMG Get Address Info response; keeping the driver's IPMB address",
			"data", fmt.Sprintf("% x", resp.Data))
		return nil
	}
	a := resp.Data[addrInfoIPMB0Offset]
	if a == 0 || a&1 != 0 {
		c.log.Warn("devipmi: PICMG Get Address Info reports an invalid IPMB-0 address; keeping the driver's",
			"reported", fmt.Sprintf("0x%02x", a))
		return nil
	}
	return c.control(ctx, func() error {
		if a == c.myAddr {
			return nil
		}
		if err := c.setMyAddress(a); err != nil {
			return err
		}
		c.log.Info("devipmi: local IPMB address set from PICMG Get Address Info", "ipmb_address", fmt.Sprintf("0x%02x", a))
		return nil
	})
}

// control runs fn on the owner goroutine.
func (c *Conn) control(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	if err := c.submit(ctx, op{kind: opControl, fn: fn, done: done}); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-c.exited:
		select {
		case err := <-done:
			return err
		default:
			return c.exitErr
		}
	}
}

func (c *Conn) submit(ctx context.Context, o op) error {
	select {
	case <-c.exited:
		return c.exitErr
	default:
	}
	select {
	case c.ops <- o:
		c.dev.wake()
		return nil
	case <-c.exited:
		return c.exitErr
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", c.path, context.Cause(ctx))
	}
}

// Events delivers asynchronous events and incoming commands. It is closed
// when the Conn is closed. The channel is bounded: when it is full, events
// are dropped and counted (Dropped, Event.Lost).
func (c *Conn) Events() <-chan Event { return c.events }

// Dropped is the number of events dropped so far because Events was full.
func (c *Conn) Dropped() uint64 { return c.dropped.Load() }

// Exchange sends req to the controller at to and waits for its response.
// The zero Addr (or the local controller's own IPMB address) is the local
// controller; any other Slave is reached over IPMB on to.Channel. A
// context without deadline gets Options.Timeout.
func (c *Conn) Exchange(ctx context.Context, to ipmi.Addr, req ipmi.Request) (ipmi.Response, error) {
	if err := validate(to, req); err != nil {
		return ipmi.Response{}, fmt.Errorf("%s: %w", c.path, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
	}
	req.Data = append([]byte(nil), req.Data...)
	p := &pending{ctx: ctx, to: to, req: req, res: make(chan result, 1)}
	if err := c.submit(ctx, op{kind: opSubmit, p: p}); err != nil {
		return ipmi.Response{}, err
	}
	select {
	case r := <-p.res:
		return r.resp, r.err
	case <-ctx.Done():
		select {
		case r := <-p.res:
			return r.resp, r.err
		default:
		}
		// Let the owner forget the request; a late response is dropped.
		select {
		case c.ops <- op{kind: opCancel, p: p}:
			c.dev.wake()
		case <-c.exited:
		}
		return ipmi.Response{}, fmt.Errorf("%s: no response from %s: %w", c.path, to, context.Cause(ctx))
	case <-c.exited:
		select {
		case r := <-p.res:
			return r.resp, r.err
		default:
			return ipmi.Response{}, c.exitErr
		}
	}
}

func validate(to ipmi.Addr, req ipmi.Request) error {
	if req.NetFn > 0x3f || req.NetFn.IsResponse() {
		return fmt.Errorf("%w: netfn 0x%02x is not a request netfn", ErrBadRequest, uint8(req.NetFn))
	}
	if len(req.Data) > maxMsgLen {
		return fmt.Errorf("%w: %d data bytes, the driver takes at most %d", ErrBadRequest, len(req.Data), maxMsgLen)
	}
	_, err := destinationFor(to, 0)
	return err
}

// Close stops the owner goroutine, fails requests in flight with
// ipmi.ErrClosed, closes Events and the device. It is idempotent; only the
// first call reports an error from closing the device.
func (c *Conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.closing)
		c.dev.wake()
	})
	<-c.exited
	if first {
		return c.closeErr
	}
	return nil
}

// run is the owner goroutine.
func (c *Conn) run() {
	var cause error
	defer func() { c.shutdown(cause) }()
	for {
		if !c.drainOps() {
			return
		}
		readable, err := c.dev.poll()
		if err != nil {
			cause = err
			return
		}
		if readable {
			if err := c.receive(); err != nil {
				cause = err
				return
			}
		}
	}
}

// drainOps handles every queued op. It returns false when the Conn is
// closing.
func (c *Conn) drainOps() bool {
	for {
		select {
		case <-c.closing:
			return false
		default:
		}
		select {
		case o := <-c.ops:
			c.handleOp(o)
		default:
			return true
		}
	}
}

func (c *Conn) handleOp(o op) {
	switch o.kind {
	case opSubmit:
		p := o.p
		if err := p.ctx.Err(); err != nil {
			p.res <- result{err: fmt.Errorf("%s: %w", c.path, context.Cause(p.ctx))}
			return
		}
		if err := c.send(p); err != nil {
			p.res <- result{err: err}
		}
	case opCancel:
		if q, ok := c.pending[o.p.msgid]; ok && q == o.p {
			delete(c.pending, o.p.msgid)
		}
	case opControl:
		o.done <- o.fn()
	case opRespond:
		if err := o.rp.ctx.Err(); err != nil {
			o.rp.res <- fmt.Errorf("%s: %w", c.path, context.Cause(o.rp.ctx))
			return
		}
		if err := c.sendResponse(o.rp); err != nil {
			o.rp.res <- err
		}
	case opCancelRespond:
		c.cancelRespond(o.rp)
	}
}

// send hands p to the driver with a fresh msgid.
func (c *Conn) send(p *pending) error {
	dest, err := destinationFor(p.to, c.myAddr)
	if err != nil {
		return fmt.Errorf("%s: %w", c.path, err)
	}
	d := new(destination)
	*d = dest
	addr, addrLen := d.pointer()
	id := c.nextMsgID()
	r := new(ipmiReqSettime)
	r.req = ipmiReq{
		addr:    addr,
		addrLen: addrLen,
		msgid:   cLong(id),
		msg:     ipmiMsg{netfn: uint8(p.req.NetFn), cmd: p.req.Cmd, dataLen: uint16(len(p.req.Data))},
	}
	var data []byte
	if len(p.req.Data) > 0 {
		data = append([]byte(nil), p.req.Data...)
		r.req.msg.data = unsafe.Pointer(&data[0])
	}
	ioctlOp, arg := ioctlSendCommand, unsafe.Pointer(&r.req)
	if !d.isSI {
		// The driver's own retries would resend state-changing
		// requests; this package retries ReadOnly ones itself.
		r.retries = 0
		r.retryTimeMs = c.attemptTimeMs(p.ctx)
		ioctlOp, arg = ioctlSendSettime, unsafe.Pointer(r)
	}
	err = c.dev.ioctl(ioctlOp, arg)
	runtime.KeepAlive(d)
	runtime.KeepAlive(data)
	runtime.KeepAlive(r)
	if err != nil {
		return fmt.Errorf("%s: send %s to %s: %s: %w", c.path, p.req, p.to, sendErrnoMeaning(err), err)
	}
	p.msgid = id
	p.attempts++
	p.bridged = !d.isSI
	c.pending[id] = p
	return nil
}

// nextMsgID returns a msgid no request in flight uses. msgids stay within
// 31 bits so that they survive C's long on 32-bit systems when they wrap.
func (c *Conn) nextMsgID() int64 {
	for {
		c.lastID++
		if c.lastID > math.MaxInt32 {
			c.lastID = 1
		}
		if _, used := c.pending[c.lastID]; !used {
			return c.lastID
		}
	}
}

// attemptTimeMs is the driver timeout of one bridged attempt: IPMBTimeout,
// or less if the caller's deadline is nearer.
func (c *Conn) attemptTimeMs(ctx context.Context) uint32 {
	t := c.opts.IPMBTimeout
	if dl, ok := ctx.Deadline(); ok {
		if rem := time.Until(dl); rem < t {
			t = rem
		}
	}
	ms := t.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return uint32(ms)
}

func sendErrnoMeaning(err error) string {
	switch {
	case errors.Is(err, syscall.EINVAL):
		return "the driver rejected the address or command (no IPMB on that channel?)"
	case errors.Is(err, syscall.EMSGSIZE):
		return "the message is too long for the channel"
	case errors.Is(err, syscall.EBUSY):
		return "the driver has no free IPMB sequence number (too many requests in flight)"
	case errors.Is(err, syscall.ENOMEM):
		return "the driver is out of memory"
	case errors.Is(err, syscall.ENODEV), errors.Is(err, syscall.ENXIO):
		return "the IPMI interface is gone"
	}
	return "ioctl IPMICTL_SEND_COMMAND failed"
}

// receive takes messages from the driver until its queue is empty (or
// maxReceivePerWake messages were handled). Only a failing device is an
// error.
func (c *Conn) receive() error {
	for range maxReceivePerWake {
		m, err := c.receiveOne()
		switch {
		case errors.Is(err, syscall.EAGAIN):
			return nil
		case errors.Is(err, errRecvAddr), errors.Is(err, errRecvData):
			// The message is consumed; fail its request if it was a
			// response, and carry on.
			c.log.Warn("devipmi: undecodable message from the driver", "err", err, "recv_type", m.recvType, "msgid", m.msgid)
			if m.recvType == recvTypeResponse {
				c.complete(m.msgid, result{err: fmt.Errorf("%s: %w: %w", c.path, ErrBadResponse, err)})
			}
		case err != nil:
			return fmt.Errorf("receive (IPMICTL_RECEIVE_MSG_TRUNC): %w", err)
		default:
			c.handleMessage(m)
		}
	}
	return nil
}

func (c *Conn) receiveOne() (received, error) {
	c.recv = ipmiRecv{
		addr:    unsafe.Pointer(&c.recvAddr),
		addrLen: uint32(unsafe.Sizeof(c.recvAddr)),
		msg:     ipmiMsg{data: unsafe.Pointer(&c.recvData[0]), dataLen: uint16(len(c.recvData))},
	}
	err := c.dev.ioctl(ioctlReceiveMsgTrunc, unsafe.Pointer(&c.recv))
	truncated := false
	if errors.Is(err, syscall.EMSGSIZE) {
		truncated = true // the driver cut the message to the buffer and consumed it
	} else if err != nil {
		return received{}, err
	}
	addrBuf := unsafe.Slice((*byte)(unsafe.Pointer(&c.recvAddr)), unsafe.Sizeof(c.recvAddr))
	return decodeRecv(c.recv.recvType, addrBuf, c.recv.addrLen, int64(c.recv.msgid),
		c.recv.msg.netfn, c.recv.msg.cmd, c.recvData[:], c.recv.msg.dataLen, truncated)
}

func (c *Conn) handleMessage(m received) {
	switch m.recvType {
	case recvTypeResponse:
		c.handleResponse(m)
	case recvTypeAsyncEvent:
		if len(m.data) != SELRecordLen {
			c.log.Warn("devipmi: asynchronous event is not a 16-byte SEL record; delivered as is", "len", len(m.data))
		}
		c.emit(Event{Kind: AsyncEvent, From: m.from, NetFn: ipmi.NetFn(m.netfn), Cmd: m.cmd, Data: m.data})
	case recvTypeCommand:
		c.emit(Event{Kind: Command, From: m.from, NetFn: ipmi.NetFn(m.netfn), Cmd: m.cmd, Seq: m.msgid, Data: m.data, src: m.src})
	case recvTypeOEM:
		c.emit(Event{Kind: OEMMessage, From: m.from, NetFn: ipmi.NetFn(m.netfn), Cmd: m.cmd, Seq: m.msgid, Data: m.data})
	case recvTypeResponseResponse:
		c.handleResponseResponse(m)
	default:
		c.log.Warn("devipmi: message of unknown receive type from the driver", "recv_type", m.recvType, "msgid", m.msgid)
	}
}

func (c *Conn) complete(msgid int64, r result) {
	p, ok := c.pending[msgid]
	if !ok {
		return
	}
	delete(c.pending, msgid)
	p.res <- r
}

func (c *Conn) handleResponse(m received) {
	p, ok := c.pending[m.msgid]
	if !ok {
		c.log.Debug("devipmi: response for no waiting request (late or cancelled)", "msgid", m.msgid,
			"netfn", fmt.Sprintf("0x%02x", m.netfn), "cmd", fmt.Sprintf("0x%02x", m.cmd))
		return
	}
	delete(c.pending, m.msgid)
	resp, err := c.interpret(p, m)
	var de *DriverError
	if errors.As(err, &de) && p.req.ReadOnly && de.retryable() && p.attempts <= c.opts.Retries && p.ctx.Err() == nil {
		c.log.Debug("devipmi: no response; sending read-only request again", "to", p.to.String(), "req", p.req.String(), "attempt", p.attempts+1, "code", de.Code.String())
		serr := c.send(p)
		if serr == nil {
			return
		}
		err = fmt.Errorf("%w; resend: %w", err, serr)
	}
	p.res <- result{resp: resp, err: err}
}

// interpret checks that m answers p and turns it into a Response.
func (c *Conn) interpret(p *pending, m received) (ipmi.Response, error) {
	if m.truncated {
		return ipmi.Response{}, fmt.Errorf("%s: %w: response to %s from %s longer than %d bytes, truncated by the driver", c.path, ErrBadResponse, p.req, p.to, maxMsgLen)
	}
	if m.netfn != uint8(p.req.NetFn.Response()) || m.cmd != p.req.Cmd {
		return ipmi.Response{}, fmt.Errorf("%s: %w: netfn 0x%02x cmd 0x%02x in answer to %s to %s", c.path, ErrBadResponse, m.netfn, m.cmd, p.req, p.to)
	}
	if len(m.data) == 0 {
		return ipmi.Response{}, fmt.Errorf("%s: %w: response to %s from %s has no completion code", c.path, ErrBadResponse, p.req, p.to)
	}
	code := ipmi.CompletionCode(m.data[0])
	if len(m.data) == 1 && isDriverCode(code, p.bridged) {
		return ipmi.Response{}, &DriverError{Addr: p.to, NetFn: p.req.NetFn, Cmd: p.req.Cmd, Code: code, Attempts: p.attempts}
	}
	return ipmi.Response{Code: code, Data: m.data[1:]}, nil
}

// emit delivers ev without ever blocking the owner goroutine.
func (c *Conn) emit(ev Event) {
	ev.Lost = c.lost
	select {
	case c.events <- ev:
		c.lost = 0
	default:
		c.lost++
		n := c.dropped.Add(1)
		if c.lost == 1 {
			c.log.Warn("devipmi: event channel full; dropping events until the consumer catches up",
				"kind", ev.Kind.String(), "dropped_total", n)
		}
	}
}

// shutdown fails everything still waiting and releases the device.
func (c *Conn) shutdown(cause error) {
	err := ipmi.ErrClosed
	if cause != nil {
		err = fmt.Errorf("%s: %w (device failed: %w)", c.path, ipmi.ErrClosed, cause)
		c.log.Error("devipmi: device failed; connection closed", "err", cause)
	}
	for id, p := range c.pending {
		delete(c.pending, id)
		p.res <- result{err: err}
	}
	for id, q := range c.responding {
		delete(c.responding, id)
		for _, rp := range q {
			rp.res <- err
		}
	}
	c.exitErr = err
	c.closeErr = c.dev.close()
	for {
		select {
		case o := <-c.ops:
			switch o.kind {
			case opSubmit:
				o.p.res <- result{err: err}
			case opControl:
				o.done <- err
			case opRespond:
				o.rp.res <- err
			}
			continue
		default:
		}
		break
	}
	close(c.events)
	close(c.exited)
}
