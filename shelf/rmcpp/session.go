package rmcpp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"hpiagent/shelf/ipmi"
)

var (
	// ErrSessionLost is returned for a request that changes state and was
	// in flight when the session was lost: it may or may not have been
	// executed, so it is not resent.
	ErrSessionLost = errors.New("rmcpp: session lost while the request was in flight; it may or may not have been executed")
	// ErrBridge matches a *BridgeError.
	ErrBridge = errors.New("rmcpp: IPMB bridging failed")
)

// BridgeError is a non-zero completion code of the Send Message command
// that carries a bridged request: the shelf manager could not deliver it
// (for example 0x83 NAK on IPMB write, 0x82 lost arbitration, 0x81 bus
// error). It is distinct from the completion code of the bridged command
// itself, which is returned in ipmi.Response.Code.
type BridgeError struct {
	To   ipmi.Addr
	Code ipmi.CompletionCode
}

func (e *BridgeError) Error() string {
	return fmt.Sprintf("Send Message to %s failed: completion code %s", e.To, e.Code)
}

// Is makes errors.Is(err, ErrBridge) true.
func (e *BridgeError) Is(target error) bool { return target == ErrBridge }

// Stats are counters of a Session since Dial.
type Stats struct {
	Sent       uint64            // packets sent (requests, retransmissions, keep-alives)
	Retries    uint64            // retransmissions of read-only requests
	Timeouts   uint64            // attempts that timed out
	Reconnects uint64            // sessions re-established after loss
	Bridged    uint64            // requests bridged with Send Message
	Rejected   map[string]uint64 // dropped packets by reason (Reject* constants)
}

// Session is an RMCP+ session with one shelf manager (client side). It
// implements ipmi.Conn and is safe for concurrent use. One owner
// goroutine owns the socket and the session state; Exchange hands
// requests to it over a channel.
//
// Retransmission: a ReadOnly request whose attempt timed out is resent
// with the SAME rqSeq (so a late answer to the first attempt still
// completes it, and a BMC may recognise the duplicate) in a packet with a
// NEW session sequence number (BMCs drop repeated session sequence
// numbers as replays). Requests that change state are never resent.
//
// rqSeq reuse: a request that ends without its one answer in full (it
// timed out, its context ended, it was sent more than once, Send Message
// failed, or a bridged answer came before the Send Message answer) leaves
// its rqSeq in quarantine for its attempt timeout plus 5 s, so that a late
// or duplicate answer finds no request instead of completing a later one
// with the same rqSeq, NetFn and Cmd. While every free rqSeq is in
// quarantine, new requests wait.
type Session struct {
	cfg       Config
	log       *slog.Logger
	calls     chan *call
	closed    chan struct{}
	ownerDone chan struct{}
	closeOnce sync.Once
	cancel    context.CancelFunc
	suite     atomic.Int32

	mu    sync.Mutex
	stats Stats
}

type result struct {
	resp ipmi.Response
	err  error
}

type call struct {
	ctx  context.Context
	to   ipmi.Addr
	req  ipmi.Request
	res  chan result // buffered 1
	keep bool        // keep-alive: nobody waits
	// requeued: a read-only call that ran out of attempts when the
	// session was found lost is kept for the new session, once.
	requeued bool
}

// inflight is a call sent to the BMC and waiting for its answer.
type inflight struct {
	c        *call
	seq      uint8
	msg      []byte    // the IPMI message, for retransmission
	deadline time.Time // of the current attempt
	attempts int
	outerOK  bool // bridged: Send Message answered with an empty response
}

// Dial validates cfg, establishes a session and starts its owner
// goroutine. ctx bounds the establishment only.
func Dial(ctx context.Context, cfg Config) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Password = append([]byte(nil), cfg.Password...)
	cfg.KG = append([]byte(nil), cfg.KG...)
	cfg.CipherSuites = append([]int(nil), cfg.CipherSuites...)
	log := cfg.Logger.With("shelf_manager", cfg.Addr)
	l, err := establish(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	log.Info("RMCP+ session established", "suite", l.suite.ID, "privilege", cfg.Privilege.String())
	life, cancel := context.WithCancel(context.Background())
	s := &Session{
		cfg:       cfg,
		log:       log,
		calls:     make(chan *call),
		closed:    make(chan struct{}),
		ownerDone: make(chan struct{}),
		cancel:    cancel,
		stats:     Stats{Rejected: map[string]uint64{}},
	}
	s.suite.Store(int32(l.suite.ID))
	go s.own(life, l)
	return s, nil
}

// String describes the session without its secrets.
func (s *Session) String() string {
	return fmt.Sprintf("rmcpp.Session{shelf manager %s, cipher suite %d, %s}", s.cfg.Addr, s.CipherSuite(), s.cfg.Privilege)
}

// GoString describes the session without its secrets (fmt's %#v).
func (s *Session) GoString() string { return s.String() }

// Format makes every fmt verb print String, so that no verb shows the
// password or keys.
func (s *Session) Format(f fmt.State, verb rune) { formatRedacted(f, verb, s.String()) }

// LogValue keeps the secrets out of structured logs.
func (s *Session) LogValue() slog.Value {
	return slog.GroupValue(slog.String("shelf_manager", s.cfg.Addr), slog.Int("cipher_suite", s.CipherSuite()),
		slog.String("privilege", s.cfg.Privilege.String()))
}

// CipherSuite returns the ID of the cipher suite of the current session.
func (s *Session) CipherSuite() int { return int(s.suite.Load()) }

// Stats returns a copy of the session's counters.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Rejected = maps.Clone(s.stats.Rejected)
	return st
}

func (s *Session) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// Close ends the session (Close Session is sent best effort), fails every
// queued and in-flight request with ipmi.ErrClosed and waits for the
// owner goroutine to stop. It is idempotent.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.cancel()
	})
	<-s.ownerDone
	return nil
}

// Exchange sends req to the controller at to and returns its response
// whatever its completion code. A non-local to is bridged with Send
// Message over IPMB (track request; the reply may come embedded in the
// Send Message response or as a separate message, both are handled).
// ctx bounds the whole exchange, including waiting for a lost session to
// be re-established. Like ErrTimeout and ErrSessionLost, ctx's error does
// not say whether a request that changes state reached the controller:
// read the state back. Errors (which do not repeat the request and target;
// ipmi.Do adds them): ctx's error, ipmi.ErrClosed, ErrTimeout,
// ErrSessionLost, *BridgeError.
func (s *Session) Exchange(ctx context.Context, to ipmi.Addr, req ipmi.Request) (ipmi.Response, error) {
	c := &call{ctx: ctx, to: to, req: req, res: make(chan result, 1)}
	c.req.Data = append([]byte(nil), req.Data...)
	select {
	case <-s.closed:
		return ipmi.Response{}, ipmi.ErrClosed
	default:
	}
	select {
	case s.calls <- c:
	case <-ctx.Done():
		return ipmi.Response{}, fmt.Errorf("waiting for the RMCP+ session with %s: %w", s.cfg.Addr, ctx.Err())
	case <-s.closed:
		return ipmi.Response{}, ipmi.ErrClosed
	}
	select {
	case r := <-c.res:
		return r.resp, r.err
	case <-ctx.Done():
		return ipmi.Response{}, fmt.Errorf("waiting for the answer from %s: %w", s.cfg.Addr, ctx.Err())
	case <-s.ownerDone:
		select {
		case r := <-c.res:
			return r.resp, r.err
		default:
			return ipmi.Response{}, ipmi.ErrClosed
		}
	}
}

// owner state
type owner struct {
	s         *Session
	l         *link
	pkts      chan []byte
	readDone  chan struct{}
	queue     []*call
	pending   map[uint8]*inflight
	nextSeq   uint8
	timeouts  int
	lastSend  time.Time
	keepAlive bool // a keep-alive is queued or in flight
	// quarantine holds rqSeqs freed while an answer to them may still
	// arrive (the request timed out, was abandoned, or was sent more than
	// once), with the time until which they are not reused: a late answer
	// must find no request rather than complete another one.
	quarantine map[uint8]time.Time
}

// seqExpiry is how long after its last use an rqSeq whose answer may
// still be on its way is kept from reuse, on top of the request's attempt
// timeout (the IPMB sequence number expiration interval is 5 s).
const seqExpiry = 5 * time.Second

func (s *Session) own(life context.Context, l *link) {
	defer close(s.ownerDone)
	// rqSeq 1 was used by Set Session Privilege Level during establishment.
	o := &owner{s: s, pending: map[uint8]*inflight{}, nextSeq: 2, quarantine: map[uint8]time.Time{}}
	o.attach(l)
	tick := time.NewTicker(o.tickEvery())
	defer tick.Stop()
	for {
		var calls chan *call
		if len(o.pending)+len(o.queue) < s.cfg.Window {
			calls = s.calls
		}
		o.sendQueued()
		select {
		case <-life.Done():
			o.shutdown()
			return
		case c := <-calls:
			o.queue = append(o.queue, c)
		case b, ok := <-o.pkts:
			if !ok {
				// The socket failed: treat it as a lost session.
				o.reconnect(life, "socket closed")
				continue
			}
			o.receive(b)
		case now := <-tick.C:
			o.expire(now)
			if o.timeouts >= s.cfg.MaxConsecutiveTimeouts {
				o.reconnect(life, fmt.Sprintf("%d consecutive timeouts", o.timeouts))
				continue
			}
			if !o.keepAlive && now.Sub(o.lastSend) >= s.cfg.KeepAlive {
				o.keepAlive = true
				o.queue = append(o.queue, &call{ctx: context.Background(), keep: true, res: make(chan result, 1),
					req: ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: cmdGetDeviceID, ReadOnly: true}})
			}
		}
	}
}

func (o *owner) tickEvery() time.Duration {
	d := min(o.s.cfg.RequestTimeout, o.s.cfg.BridgeTimeout) / 10
	return max(d, 5*time.Millisecond)
}

// attach starts the reader goroutine of link l.
func (o *owner) attach(l *link) {
	o.l = l
	_ = l.conn.SetReadDeadline(time.Time{}) // establishment used deadlines
	o.pkts = make(chan []byte, 16)
	o.readDone = make(chan struct{})
	o.lastSend = time.Now()
	o.timeouts = 0
	// Answers of the previous session carry its session ID and are
	// dropped, so its rqSeqs are free again.
	clear(o.quarantine)
	go reader(l.conn, o.pkts, o.readDone)
}

// reader copies packets from conn to pkts until conn is closed.
func reader(conn net.Conn, pkts chan<- []byte, done chan<- struct{}) {
	defer close(done)
	defer close(pkts)
	buf := make([]byte, maxPacket)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors (port unreachable while the BMC restarts) and
			// the like: keep reading; timeouts handle the loss.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		b := append([]byte(nil), buf[:n]...)
		pkts <- b // the owner always drains pkts until readDone
	}
}

// detach closes the socket and waits for the reader.
func (o *owner) detach() {
	if o.l == nil {
		return
	}
	o.l.conn.Close()
	for range o.pkts { // drain so that the reader can finish
	}
	<-o.readDone
	o.l = nil
	o.pkts = nil // blocks in select until the next attach
}

func (o *owner) finish(c *call, r result) {
	if c.keep {
		o.keepAlive = false
	}
	c.res <- r
}

// sendQueued sends queued calls while sequence numbers are free.
func (o *owner) sendQueued() {
	if o.l == nil {
		return // no session (shutting down)
	}
	for len(o.queue) > 0 && len(o.pending) < o.s.cfg.Window {
		c := o.queue[0]
		if err := c.ctx.Err(); err != nil {
			o.queue = o.queue[1:]
			o.finish(c, result{err: err})
			continue
		}
		seq, ok := o.allocSeq()
		if !ok {
			return // every rqSeq is in flight or in quarantine; retried at the next tick
		}
		o.queue = o.queue[1:]
		f := &inflight{c: c, seq: seq, msg: o.message(c, seq)}
		o.pending[seq] = f
		if !c.to.Local() {
			o.s.count(func(st *Stats) { st.Bridged++ })
		}
		o.transmit(f)
	}
}

// allocSeq returns the next free rqSeq (1..63), round robin so that a
// number is reused as late as possible. A number is free if no request
// is in flight with it and it is not in quarantine.
func (o *owner) allocSeq() (uint8, bool) {
	now := time.Now()
	for range 63 {
		s := o.nextSeq
		o.nextSeq = o.nextSeq%63 + 1
		if _, busy := o.pending[s]; busy {
			continue
		}
		if until, ok := o.quarantine[s]; ok {
			if now.Before(until) {
				continue
			}
			delete(o.quarantine, s)
		}
		return s, true
	}
	return 0, false
}

// message builds the IPMI message of c with rqSeq seq.
func (o *owner) message(c *call, seq uint8) []byte {
	if c.to.Local() {
		return ipmi.Frame{DstAddr: addrBMC, NetFn: c.req.NetFn, DstLUN: c.to.LUN, SrcAddr: swidRemoteConsole,
			Seq: seq, Cmd: c.req.Cmd, Data: c.req.Data}.Marshal()
	}
	inner := ipmi.Frame{DstAddr: c.to.Slave, NetFn: c.req.NetFn, DstLUN: c.to.LUN, SrcAddr: o.s.cfg.BMCIPMBAddress,
		Seq: seq, Cmd: c.req.Cmd, Data: c.req.Data}.Marshal()
	data := append([]byte{0x40 | c.to.Channel&0x0f}, inner...) // track request
	return ipmi.Frame{DstAddr: addrBMC, NetFn: ipmi.NetFnApp, SrcAddr: swidRemoteConsole, Seq: seq,
		Cmd: cmdSendMessage, Data: data}.Marshal()
}

func (o *owner) timeoutFor(c *call) time.Duration {
	if c.to.Local() {
		return o.s.cfg.RequestTimeout
	}
	return o.s.cfg.BridgeTimeout
}

func (o *owner) transmit(f *inflight) {
	if o.l == nil {
		return // the attempt times out; reconnect or shutdown follows
	}
	f.attempts++
	f.outerOK = false
	f.deadline = time.Now().Add(o.timeoutFor(f.c))
	out, err := o.l.encode(f.msg)
	if err != nil {
		delete(o.pending, f.seq)
		o.finish(f.c, result{err: fmt.Errorf("encoding the request for %s: %w", o.s.cfg.Addr, err)})
		return
	}
	o.lastSend = time.Now()
	o.s.count(func(st *Stats) { st.Sent++ })
	if _, err := o.l.conn.Write(out); err != nil {
		o.s.log.Debug("sending failed", "err", err)
	}
}

func (o *owner) reject(reason string, err error) {
	o.s.count(func(st *Stats) { st.Rejected[reason]++ })
	o.s.log.Debug("dropped packet", "reason", reason, "err", err)
}

// receive verifies a packet and completes the request it answers.
func (o *owner) receive(b []byte) {
	f, reason, err := o.l.decode(b)
	if err != nil {
		o.reject(reason, err)
		return
	}
	// Any authentic packet shows the session is alive.
	o.timeouts = 0
	if f.DstAddr == swidRemoteConsole && f.SrcAddr == addrBMC {
		p := o.pending[f.Seq]
		if p == nil {
			o.reject(RejectUnmatched, fmt.Errorf("no request with rqSeq %d", f.Seq))
			return
		}
		if p.c.to.Local() {
			if !matchLocal(f, p.c.req.NetFn, p.c.req.Cmd, p.seq) {
				o.reject(RejectUnmatched, fmt.Errorf("response netfn 0x%02x cmd 0x%02x does not match %s", uint8(f.NetFn), f.Cmd, p.c.req))
				return
			}
			o.complete(p, ipmi.Response{Code: ipmi.CompletionCode(f.Data[0]), Data: f.Data[1:]}, nil, p.attempts == 1)
			return
		}
		// Bridged: the answer to Send Message itself.
		if !matchLocal(f, ipmi.NetFnApp, cmdSendMessage, p.seq) {
			// Style (b) with the BMC's address rewritten to 0x81 would
			// come from SrcAddr 0x20 only for requests to 0x20 itself.
			o.reject(RejectUnmatched, fmt.Errorf("response netfn 0x%02x cmd 0x%02x to a bridged request", uint8(f.NetFn), f.Cmd))
			return
		}
		if cc := ipmi.CompletionCode(f.Data[0]); cc != ipmi.CCOK {
			// The IPMC may still answer late (e.g. after a timeout on
			// IPMB), so the rqSeq is not settled.
			o.complete(p, ipmi.Response{}, &BridgeError{To: p.c.to, Code: cc}, false)
			return
		}
		if len(f.Data) == 1 { // style (b): the answer follows separately
			p.outerOK = true
			return
		}
		inner, err := ipmi.ParseFrame(f.Data[1:]) // style (a): embedded
		if err != nil {
			o.reject(RejectChecksum, fmt.Errorf("embedded bridged response: %w", err))
			return
		}
		o.innerResponse(p, inner, p.attempts == 1)
		return
	}
	// Style (b): a bridged response forwarded as its own message.
	p := o.pending[f.Seq]
	if p == nil || p.c.to.Local() || f.SrcAddr != p.c.to.Slave {
		o.reject(RejectUnmatched, fmt.Errorf("message from 0x%02x to 0x%02x rqSeq %d matches no bridged request", f.SrcAddr, f.DstAddr, f.Seq))
		return
	}
	// The Send Message answer may still be on its way.
	o.innerResponse(p, f, p.attempts == 1 && p.outerOK)
}

// innerResponse completes bridged request p with its IPMC's answer f.
// settled says no further packet for p's rqSeq is expected.
func (o *owner) innerResponse(p *inflight, f ipmi.Frame, settled bool) {
	if f.SrcAddr != p.c.to.Slave || f.NetFn != p.c.req.NetFn.Response() || f.Cmd != p.c.req.Cmd || f.Seq != p.seq || len(f.Data) < 1 ||
		(f.DstAddr != o.s.cfg.BMCIPMBAddress && f.DstAddr != swidRemoteConsole) {
		o.reject(RejectUnmatched, fmt.Errorf("bridged response from 0x%02x netfn 0x%02x cmd 0x%02x rqSeq %d does not match %s to %s",
			f.SrcAddr, uint8(f.NetFn), f.Cmd, f.Seq, p.c.req, p.c.to))
		return
	}
	o.complete(p, ipmi.Response{Code: ipmi.CompletionCode(f.Data[0]), Data: f.Data[1:]}, nil, settled)
}

// complete ends request p. Unless settled (its one packet was answered in
// full), its rqSeq is quarantined: an answer may still arrive for it.
func (o *owner) complete(p *inflight, r ipmi.Response, err error, settled bool) {
	delete(o.pending, p.seq)
	if !settled {
		o.quarantine[p.seq] = time.Now().Add(o.timeoutFor(p.c) + seqExpiry)
	}
	o.finish(p.c, result{resp: r, err: err})
}

// expire handles abandoned calls and attempt timeouts.
func (o *owner) expire(now time.Time) {
	kept := o.queue[:0]
	for _, c := range o.queue {
		if err := c.ctx.Err(); err != nil {
			o.finish(c, result{err: err})
			continue
		}
		kept = append(kept, c)
	}
	o.queue = kept
	for _, p := range o.pending {
		if err := p.c.ctx.Err(); err != nil {
			// A caller whose deadline is shorter than an attempt would
			// otherwise never let a silent BMC be noticed: an attempt
			// abandoned at its caller's deadline after waiting at least
			// half its own timeout counts as a timeout too.
			if errors.Is(err, context.DeadlineExceeded) && p.attempts > 0 {
				t := o.timeoutFor(p.c)
				if sent := p.deadline.Add(-t); now.Sub(sent) >= t/2 {
					o.timeouts++
					o.s.count(func(st *Stats) { st.Timeouts++ })
				}
			}
			o.complete(p, ipmi.Response{}, err, false)
			continue
		}
		if now.Before(p.deadline) {
			continue
		}
		o.timeouts++
		o.s.count(func(st *Stats) { st.Timeouts++ })
		if p.c.req.ReadOnly && p.attempts <= o.s.cfg.Retries {
			o.s.count(func(st *Stats) { st.Retries++ })
			o.transmit(p)
			continue
		}
		if p.c.req.ReadOnly && !p.c.requeued && o.timeouts >= o.s.cfg.MaxConsecutiveTimeouts {
			// The session is about to be re-established: try once more
			// on the new session instead of failing.
			p.c.requeued = true
			delete(o.pending, p.seq)
			o.quarantine[p.seq] = time.Now().Add(o.timeoutFor(p.c) + seqExpiry)
			o.queue = append([]*call{p.c}, o.queue...)
			continue
		}
		o.complete(p, ipmi.Response{}, fmt.Errorf("%w from %s after %d attempt(s)", ErrTimeout, o.s.cfg.Addr, p.attempts), false)
	}
}

// reconnect replaces a lost session. Read-only requests in flight are
// queued again; others fail with ErrSessionLost. Queued requests wait.
func (o *owner) reconnect(life context.Context, why string) {
	s := o.s
	s.log.Warn("RMCP+ session lost, re-establishing", "reason", why)
	if o.l != nil {
		o.l.closeSession()
	}
	o.detach()
	var again []*call
	for _, p := range o.pending {
		if p.c.req.ReadOnly {
			again = append(again, p.c)
		} else {
			o.finish(p.c, result{err: fmt.Errorf("%w (%s)", ErrSessionLost, o.s.cfg.Addr)})
		}
	}
	clear(o.pending)
	o.queue = append(again, o.queue...)
	backoff := s.cfg.ReconnectMin
	for {
		ctx, cancel := context.WithTimeout(life, s.cfg.ReconnectMax+time.Duration(s.cfg.Retries+1)*4*s.cfg.RequestTimeout)
		l, err := establish(ctx, s.cfg, s.log)
		cancel()
		if err == nil {
			s.suite.Store(int32(l.suite.ID))
			s.count(func(st *Stats) { st.Reconnects++ })
			s.log.Info("RMCP+ session re-established", "suite", l.suite.ID)
			o.attach(l)
			return
		}
		if life.Err() != nil {
			return // shutdown follows in the main loop
		}
		s.log.Warn("re-establishing RMCP+ session failed", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-life.Done():
			t.Stop()
			return
		case <-t.C:
		}
		o.expireQueued()
		backoff = min(backoff*2, s.cfg.ReconnectMax)
	}
}

func (o *owner) expireQueued() {
	kept := o.queue[:0]
	for _, c := range o.queue {
		if err := c.ctx.Err(); err != nil {
			o.finish(c, result{err: err})
			continue
		}
		kept = append(kept, c)
	}
	o.queue = kept
}

func (o *owner) shutdown() {
	if o.l != nil {
		o.l.closeSession()
	}
	o.detach()
	for _, p := range o.pending {
		o.finish(p.c, result{err: ipmi.ErrClosed})
	}
	clear(o.pending)
	for _, c := range o.queue {
		o.finish(c, result{err: ipmi.ErrClosed})
	}
	o.queue = nil
	// Calls handed over after this point cannot exist: Exchange selects
	// on s.closed, and the owner no longer receives from s.calls.
}
