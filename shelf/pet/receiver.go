package pet

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// SecurityLevel is the lowest SNMPv3 security level accepted. The zero
// value is AuthPriv.
type SecurityLevel int

// Security levels, strongest first.
const (
	AuthPriv SecurityLevel = iota
	AuthNoPriv
	NoAuthNoPriv
)

// String names the level as RFC 3411 does.
func (l SecurityLevel) String() string {
	switch l {
	case AuthPriv:
		return "authPriv"
	case AuthNoPriv:
		return "authNoPriv"
	case NoAuthNoPriv:
		return "noAuthNoPriv"
	}
	return fmt.Sprintf("SecurityLevel(%d)", int(l))
}

// Defaults of Config.
const (
	DefaultQueueLen        = 256
	DefaultSourceRate      = 20  // traps per second per source address
	DefaultSourceBurst     = 200 // a shelf manager reporting a blade insertion sends a burst
	DefaultGlobalRate      = 200
	DefaultGlobalBurst     = 1000
	DefaultMaxSources      = 4096
	DefaultMaxEngines      = 1024
	DefaultReplayCacheSize = 65536
	DefaultReadBuffer      = 1 << 20
)

// Config configures a Receiver. Only Addr and, for SNMPv3, Users are
// required; zero numeric fields take the defaults above.
type Config struct {
	// Addr is the UDP address to listen on, e.g. "0.0.0.0:162" or
	// "127.0.0.1:0".
	Addr string
	// Users are the USM users allowed to send SNMPv3 traps.
	Users []User
	// MinSecurity is the lowest SNMPv3 security level accepted; the zero
	// value accepts authPriv only.
	MinSecurity SecurityLevel
	// Communities, when not empty, allows SNMPv1 and SNMPv2c traps with
	// one of these communities. Such traps are unauthenticated and can be
	// replayed; they are counted as insecure and flagged in Trap.Insecure.
	// Empty (the default) rejects every v1/v2c trap.
	Communities []Secret

	// Handler, when set, is called for each accepted trap from a
	// goroutine of the Receiver (one at a time, in order); otherwise
	// traps are read from Receiver.Traps. Either way the socket loop
	// never waits: a full queue drops the trap and counts it.
	Handler func(Trap)
	// QueueLen is the capacity of the delivery queue.
	QueueLen int

	// SourceRate and SourceBurst are the token bucket of each source
	// address (traps per second, bucket size); GlobalRate and
	// GlobalBurst that of all sources together.
	SourceRate  float64
	SourceBurst int
	GlobalRate  float64
	GlobalBurst int
	// MaxSources bounds the per-source rate state; the least recently
	// seen source is forgotten first.
	MaxSources int
	// MaxEngines bounds the remembered boots/time of sending engines.
	MaxEngines int
	// ReplayCacheSize bounds the replay cache. When it is full of
	// entries younger than the replay horizon, new traps are refused.
	ReplayCacheSize int
	// ReadBuffer is the socket receive buffer size in bytes.
	ReadBuffer int

	// Logger receives start/stop messages and, at most once per
	// SummaryInterval, a summary of dropped traps; single drops are
	// logged at debug level only. Default slog.Default().
	Logger *slog.Logger
	// SummaryInterval is the minimum time between drop summaries;
	// default one minute.
	SummaryInterval time.Duration

	// now replaces time.Now in tests.
	now func() time.Time
}

// LogValue describes c without secrets.
func (c Config) LogValue() slog.Value {
	users := make([]string, len(c.Users))
	for i, u := range c.Users {
		users[i] = u.Name
	}
	return slog.GroupValue(slog.String("addr", c.Addr), slog.Any("users", users),
		slog.String("min_security", c.MinSecurity.String()), slog.Int("communities", len(c.Communities)))
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.QueueLen, DefaultQueueLen)
	def(&c.SourceBurst, DefaultSourceBurst)
	def(&c.GlobalBurst, DefaultGlobalBurst)
	def(&c.MaxSources, DefaultMaxSources)
	def(&c.MaxEngines, DefaultMaxEngines)
	def(&c.ReplayCacheSize, DefaultReplayCacheSize)
	def(&c.ReadBuffer, DefaultReadBuffer)
	if c.SourceRate <= 0 {
		c.SourceRate = DefaultSourceRate
	}
	if c.GlobalRate <= 0 {
		c.GlobalRate = DefaultGlobalRate
	}
	if c.SummaryInterval <= 0 {
		c.SummaryInterval = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
}

// Version is the SNMP version of a received trap.
type Version int

// SNMP versions.
const (
	V1  Version = 1
	V2c Version = 2
	V3  Version = 3
)

// String returns "v1", "v2c" or "v3".
func (v Version) String() string {
	switch v {
	case V1:
		return "v1"
	case V2c:
		return "v2c"
	case V3:
		return "v3"
	}
	return fmt.Sprintf("Version(%d)", int(v))
}

// Trap is an accepted PET with how it arrived.
type Trap struct {
	Received time.Time
	Source   netip.AddrPort
	Version  Version
	// Insecure is set for v1/v2c traps (community only: no
	// authentication, no replay protection) and for v3 traps below
	// authPriv.
	Insecure bool
	// User and EngineID are the USM user and the sender's authoritative
	// engine ID (v3 only).
	User     string
	EngineID []byte
	PET      PET
}

// Reason says why a packet was dropped.
type Reason string

// Drop reasons, the keys of Stats.Dropped.
const (
	ReasonRateLimitedSource Reason = "rate_limited_source"
	ReasonRateLimitedGlobal Reason = "rate_limited_global"
	ReasonMalformed         Reason = "malformed"
	ReasonBadVersion        Reason = "bad_version"
	ReasonInsecureVersion   Reason = "insecure_version"   // v1/v2c without configured communities
	ReasonBadCommunity      Reason = "bad_community"      // v1/v2c community not allowed
	ReasonSecurityLevel     Reason = "security_level"     // v3 below MinSecurity or invalid flags
	ReasonSecurityModel     Reason = "bad_security_model" // v3 model other than USM
	ReasonUnknownUser       Reason = "unknown_user"
	ReasonUnknownEngine     Reason = "unknown_engine" // engine not allowed for the user
	ReasonAuthFailed        Reason = "auth_failed"
	ReasonTimeWindow        Reason = "not_in_time_window"
	ReasonReplay            Reason = "replay"
	ReasonReplayCacheFull   Reason = "replay_cache_full"
	ReasonDecryptFailed     Reason = "decrypt_failed"
	ReasonUnsupportedPDU    Reason = "unsupported_pdu"
	ReasonNotPET            Reason = "not_pet"
	ReasonBadPET            Reason = "bad_pet"
	ReasonQueueFull         Reason = "queue_full"
)

// allReasons fixes the order of the counters.
func allReasons() []Reason {
	return []Reason{ReasonRateLimitedSource, ReasonRateLimitedGlobal, ReasonMalformed, ReasonBadVersion,
		ReasonInsecureVersion, ReasonBadCommunity, ReasonSecurityLevel, ReasonSecurityModel,
		ReasonUnknownUser, ReasonUnknownEngine, ReasonAuthFailed, ReasonTimeWindow, ReasonReplay,
		ReasonReplayCacheFull, ReasonDecryptFailed, ReasonUnsupportedPDU, ReasonNotPET, ReasonBadPET,
		ReasonQueueFull}
}

// Stats are the counters of a Receiver.
type Stats struct {
	Received         uint64 // packets read from the socket
	Accepted         uint64 // traps queued for delivery
	AcceptedInsecure uint64 // of Accepted: v1/v2c or v3 below authPriv
	Dropped          map[Reason]uint64
	// Current sizes of the bounded tables.
	Sources, Engines, ReplayEntries int
}

// DroppedTotal is the sum of Dropped.
func (s Stats) DroppedTotal() uint64 {
	var n uint64
	for _, v := range s.Dropped {
		n += v
	}
	return n
}

// Receiver receives PETs on one UDP socket.
type Receiver struct {
	cfg    Config
	conn   *net.UDPConn
	log    *slog.Logger
	queue  chan Trap
	users  map[string]*usmUser
	cancel context.CancelFunc
	done   chan struct{} // closed when the socket loop has ended
	hdone  chan struct{} // closed when the handler goroutine has ended
	once   sync.Once

	received, accepted, insecure atomic.Uint64
	dropped                      map[Reason]*atomic.Uint64

	// Owned by the socket loop (and by handlePacket callers in tests);
	// mu guards them for Stats.
	mu      sync.Mutex
	limit   *limiter
	engines engines
	replay  *replayCache

	lastSummary time.Time
	summarized  uint64
}

// Listen opens the UDP socket and starts receiving. The Receiver stops
// when ctx is done or Close is called.
func Listen(ctx context.Context, cfg Config) (*Receiver, error) {
	cfg.setDefaults()
	r, err := newReceiver(cfg)
	if err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("pet: resolving listen address %q: %w", cfg.Addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("pet: listening on %s: %w", cfg.Addr, err)
	}
	if err := conn.SetReadBuffer(cfg.ReadBuffer); err != nil {
		r.log.Warn("pet: cannot set socket receive buffer", "bytes", cfg.ReadBuffer, "err", err)
	}
	r.conn = conn
	ctx, r.cancel = context.WithCancel(ctx)
	go r.loop()
	go func() {
		<-ctx.Done()
		_ = r.conn.Close()
	}()
	if cfg.Handler != nil {
		go r.deliver()
	} else {
		close(r.hdone)
	}
	r.log.Info("pet: receiving traps", "addr", conn.LocalAddr().String(), "config", cfg)
	return r, nil
}

// newReceiver builds a Receiver without a socket (tests feed packets to
// handlePacket directly).
func newReceiver(cfg Config) (*Receiver, error) {
	cfg.setDefaults()
	if cfg.MinSecurity < AuthPriv || cfg.MinSecurity > NoAuthNoPriv {
		return nil, fmt.Errorf("pet: invalid MinSecurity %v", cfg.MinSecurity)
	}
	r := &Receiver{
		cfg:     cfg,
		log:     cfg.Logger,
		queue:   make(chan Trap, cfg.QueueLen),
		users:   make(map[string]*usmUser, len(cfg.Users)),
		done:    make(chan struct{}),
		hdone:   make(chan struct{}),
		dropped: make(map[Reason]*atomic.Uint64),
	}
	for _, reason := range allReasons() {
		r.dropped[reason] = new(atomic.Uint64)
	}
	for _, u := range cfg.Users {
		if u.level() > cfg.MinSecurity {
			return nil, fmt.Errorf("pet: user %q supports %v only, below the minimum %v", u.Name, u.level(), cfg.MinSecurity)
		}
		uu, err := newUSMUser(u)
		if err != nil {
			return nil, fmt.Errorf("pet: %w", err)
		}
		if _, dup := r.users[u.Name]; dup {
			return nil, fmt.Errorf("pet: user %q configured twice", u.Name)
		}
		r.users[u.Name] = uu
	}
	for i, c := range cfg.Communities {
		if len(c) == 0 {
			return nil, fmt.Errorf("pet: community %d is empty", i)
		}
	}
	now := cfg.now()
	r.limit = newLimiter(&r.cfg, now)
	r.engines = engines{m: newLRU[string, engineTime](cfg.MaxEngines)}
	r.replay = newReplayCache(cfg.ReplayCacheSize)
	r.lastSummary = now
	return r, nil
}

// Addr is the local address of the socket.
func (r *Receiver) Addr() net.Addr { return r.conn.LocalAddr() }

// Traps delivers accepted traps when Config.Handler is nil. It is closed
// after Close.
func (r *Receiver) Traps() <-chan Trap { return r.queue }

// Close stops the Receiver and waits for its goroutines (including a
// running Handler call). It is safe to call more than once.
func (r *Receiver) Close() error {
	r.once.Do(func() {
		r.cancel()
		_ = r.conn.Close()
	})
	<-r.done
	<-r.hdone
	return nil
}

// Stats returns a snapshot of the counters.
func (r *Receiver) Stats() Stats {
	s := Stats{
		Received:         r.received.Load(),
		Accepted:         r.accepted.Load(),
		AcceptedInsecure: r.insecure.Load(),
		Dropped:          make(map[Reason]uint64),
	}
	for reason, c := range r.dropped {
		if v := c.Load(); v > 0 {
			s.Dropped[reason] = v
		}
	}
	r.mu.Lock()
	s.Sources, s.Engines, s.ReplayEntries = r.limit.sources.len(), r.engines.m.len(), r.replay.len()
	r.mu.Unlock()
	return s
}

func (r *Receiver) loop() {
	defer close(r.done)
	defer close(r.queue)
	buf := make([]byte, 65536)
	for {
		n, src, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				r.log.Info("pet: receiver stopped", "addr", r.conn.LocalAddr().String())
				return
			}
			r.log.Warn("pet: reading trap socket", "err", err)
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		r.handlePacket(buf[:n], src)
	}
}

// deliver runs Config.Handler for each queued trap.
func (r *Receiver) deliver() {
	defer close(r.hdone)
	for t := range r.queue {
		r.cfg.Handler(t)
	}
}

// handlePacket is the packet entry point: every check, then delivery.
// It never blocks.
func (r *Receiver) handlePacket(pkt []byte, src netip.AddrPort) {
	r.received.Add(1)
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	now := r.cfg.now()
	t, reason, err := r.process(pkt, src, now)
	if reason != "" {
		r.dropped[reason].Add(1)
		if r.log.Enabled(context.Background(), slog.LevelDebug) {
			r.log.Debug("pet: trap dropped", "src", src.String(), "reason", string(reason), "err", err)
		}
		r.summarize(now)
		return
	}
	select {
	case r.queue <- t:
		r.accepted.Add(1)
		if t.Insecure {
			r.insecure.Add(1)
		}
	default:
		r.dropped[ReasonQueueFull].Add(1)
		r.summarize(now)
	}
}

// summarize logs the drop counters at most once per SummaryInterval.
func (r *Receiver) summarize(now time.Time) {
	if now.Sub(r.lastSummary) < r.cfg.SummaryInterval {
		return
	}
	s := r.Stats()
	total := s.DroppedTotal()
	if total == r.summarized {
		return
	}
	attrs := []any{"dropped_since_last", total - r.summarized, "dropped_total", total}
	r.lastSummary, r.summarized = now, total
	for reason, v := range s.Dropped {
		attrs = append(attrs, string(reason), v)
	}
	r.log.Warn("pet: traps dropped", attrs...)
}

// process runs the checks in order of cost: rate limits, parsing,
// version and security level, authentication, time window and replay,
// decryption, PDU and PET decoding.
func (r *Receiver) process(pkt []byte, src netip.AddrPort, now time.Time) (Trap, Reason, error) {
	r.mu.Lock()
	reason := r.limit.allow(src.Addr(), now)
	r.mu.Unlock()
	if reason != "" {
		return Trap{}, reason, nil
	}
	m, err := parseMessage(pkt)
	if err != nil {
		return Trap{}, ReasonMalformed, err
	}
	t := Trap{Received: now, Source: src}
	var pdu tlv
	switch m.version {
	case snmpV1, snmpV2c:
		t.Version, t.Insecure = V2c, true
		if m.version == snmpV1 {
			t.Version = V1
		}
		if len(r.cfg.Communities) == 0 {
			return t, ReasonInsecureVersion, fmt.Errorf("SNMP %v trap refused: only SNMPv3 is allowed", t.Version)
		}
		if !r.communityAllowed(m.community) {
			return t, ReasonBadCommunity, fmt.Errorf("SNMP %v trap with a community not allowed", t.Version)
		}
		pdu = m.pdu
		if (m.version == snmpV1) != (pdu.tag == tagTrapV1) {
			return t, ReasonUnsupportedPDU, fmt.Errorf("SNMP %v message with PDU 0x%02x", t.Version, pdu.tag)
		}
	case snmpV3:
		t.Version = V3
		var reason Reason
		if pdu, reason, err = r.checkV3(pkt, &m, &t, now); reason != "" {
			return t, reason, err
		}
	default:
		return t, ReasonBadVersion, fmt.Errorf("SNMP message version %d", m.version)
	}
	c, err := parseTrapPDU(pdu)
	if err != nil {
		var pt errPDUType
		if errors.As(err, &pt) {
			return t, ReasonUnsupportedPDU, err
		}
		return t, ReasonMalformed, err
	}
	specific, data, err := c.petPayload()
	if err != nil {
		var np errNotPET
		if errors.As(err, &np) {
			return t, ReasonNotPET, err
		}
		return t, ReasonBadPET, err
	}
	if t.PET, err = DecodePET(specific, data); err != nil {
		return t, ReasonBadPET, err
	}
	return t, "", nil
}

func (r *Receiver) communityAllowed(c []byte) bool {
	ok := 0
	for _, a := range r.cfg.Communities {
		ok |= subtle.ConstantTimeCompare(a, c)
	}
	return ok == 1
}

// checkV3 applies the USM checks of RFC 3414 §3.2 (steps 3-8) plus the
// replay cache, and returns the plaintext PDU.
func (r *Receiver) checkV3(pkt []byte, m *message, t *Trap, now time.Time) (tlv, Reason, error) {
	if m.secModel != securityModelUSM {
		return tlv{}, ReasonSecurityModel, fmt.Errorf("security model %d", m.secModel)
	}
	auth, priv := m.flags&flagAuth != 0, m.flags&flagPriv != 0
	level := NoAuthNoPriv
	switch {
	case priv && !auth:
		return tlv{}, ReasonSecurityLevel, fmt.Errorf("msgFlags 0x%02x: privacy without authentication", m.flags)
	case priv:
		level = AuthPriv
	case auth:
		level = AuthNoPriv
	}
	if level > r.cfg.MinSecurity {
		return tlv{}, ReasonSecurityLevel, fmt.Errorf("security level %v below the minimum %v", level, r.cfg.MinSecurity)
	}
	if (m.pdu.tag == tagOctetString) != priv {
		return tlv{}, ReasonMalformed, fmt.Errorf("msgData tag 0x%02x does not match msgFlags 0x%02x", m.pdu.tag, m.flags)
	}
	u := r.users[string(m.usm.user)]
	if u == nil {
		return tlv{}, ReasonUnknownUser, fmt.Errorf("USM user %q unknown", m.usm.user)
	}
	t.User, t.EngineID = u.name, append([]byte(nil), m.usm.engineID...)
	t.Insecure = level != AuthPriv
	if (auth && u.auth == AuthNone) || (priv && u.priv == PrivNone) {
		return tlv{}, ReasonSecurityLevel, fmt.Errorf("USM user %q does not support %v", u.name, level)
	}
	if len(m.usm.engineID) < 5 {
		return tlv{}, ReasonUnknownEngine, fmt.Errorf("engine ID of %d bytes", len(m.usm.engineID))
	}
	if u.engines != nil && !u.engines[string(m.usm.engineID)] {
		return tlv{}, ReasonUnknownEngine, fmt.Errorf("engine %x not allowed for user %q", m.usm.engineID, u.name)
	}
	if !auth {
		// noAuthNoPriv: nothing is proven, so nothing is remembered.
		return plainScopedPDU(m.pdu)
	}
	if !u.authenticate(pkt, &m.usm) {
		return tlv{}, ReasonAuthFailed, fmt.Errorf("authentication failed for user %q engine %x", u.name, m.usm.engineID)
	}
	r.mu.Lock()
	inWindow := r.engines.check(m.usm.engineID, m.usm.boots, m.usm.time, now)
	var reason Reason
	if inWindow {
		reason = r.replay.add(replayKey(m), now)
	}
	r.mu.Unlock()
	if !inWindow {
		return tlv{}, ReasonTimeWindow, fmt.Errorf("engine %x boots %d time %d outside the time window", m.usm.engineID, m.usm.boots, m.usm.time)
	}
	if reason != "" {
		return tlv{}, reason, fmt.Errorf("engine %x msgID %d", m.usm.engineID, m.msgID)
	}
	if !priv {
		return plainScopedPDU(m.pdu)
	}
	plain, err := u.decrypt(&m.usm, m.pdu.val)
	if err != nil {
		return tlv{}, ReasonDecryptFailed, err
	}
	pdu, err := parseScopedPDU(plain)
	if err != nil {
		// Authentic but undecodable after decryption: the privacy key
		// is wrong or the sender is broken.
		return tlv{}, ReasonDecryptFailed, fmt.Errorf("decrypted ScopedPDU: %w", err)
	}
	return pdu, "", nil
}

// plainScopedPDU decodes the PDU of a plaintext ScopedPDU element.
func plainScopedPDU(p tlv) (tlv, Reason, error) {
	pdu, err := scopedPDUContent(berReader{b: p.val})
	if err != nil {
		return tlv{}, ReasonMalformed, err
	}
	return pdu, "", nil
}
