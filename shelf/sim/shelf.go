package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"hpiagent/shelf/ipmi"
)

// MState is a PICMG 3.0 FRU hot-swap state (M0..M7).
type MState uint8

// Hot-swap states (PICMG 3.0 §3.2.4).
const (
	M0 MState = iota // not installed
	M1               // inactive
	M2               // activation request
	M3               // activation in progress
	M4               // active
	M5               // deactivation request
	M6               // deactivation in progress
	M7               // communication lost
)

// String returns "M0".."M7".
func (m MState) String() string { return fmt.Sprintf("M%d", uint8(m)) }

// Hot-swap state change causes (PICMG 3.0 table 3-20), the upper nibble of
// event data 2 of a hot-swap event.
const (
	CauseNormal       uint8 = 0x0 // normal state change
	CauseShelfManager uint8 = 0x1 // commanded by the shelf manager with Set FRU Activation
	CauseHandle       uint8 = 0x2 // operator changed the handle switch
	CauseProgrammatic uint8 = 0x3 // FRU programmatic action
	CauseCommLost     uint8 = 0x4 // communication lost or regained
	CauseSurprise     uint8 = 0x6 // surprise state change due to extraction
	CauseUnexpected   uint8 = 0x9 // unexpected deactivation
)

// Errors of the test controls.
var (
	ErrNoSuchMC = errors.New("sim: no such controller")
	ErrState    = errors.New("sim: not possible in the FRU's present state")
)

// Shelf is a simulated ATCA shelf: a shelf manager and the IPMCs behind
// it. Its methods are safe for concurrent use. The shelf clock only moves
// with Advance (or RunClock), so tests are deterministic.
type Shelf struct {
	mu    sync.Mutex
	cfg   Config
	log   *slog.Logger
	now   time.Time
	shm   *mc
	ipmcs []*mc
	mcs   map[uint8]*mc

	main           sdrRepo
	sel            selLog
	chassisOn      bool
	lastPowerEvent byte
	wd             watchdog
	counters       Counters
}

// Counters count what the shelf received. Commands is keyed by target
// controller, NetFn and command.
type Counters struct {
	// Packets is the number of UDP datagrams received by the server.
	Packets int
	// Dropped counts datagrams dropped without an answer (malformed,
	// failed integrity, bad sequence number, unknown session, IPMI 1.5).
	Dropped int
	// SessionsOpened counts sessions that completed RAKP 4.
	SessionsOpened int
	// AuthFailures counts RAKP failures (unknown user, wrong password,
	// privilege refused).
	AuthFailures int
	// Refused counts Open Session requests refused (cipher suite, no free session).
	Refused int
	// PreSessionV15 counts session-less IPMI 1.5-format requests answered
	// (Get Channel Authentication Capabilities, Get Channel Cipher Suites).
	PreSessionV15 int
	// RefusedV15 counts IPMI 1.5-format packets refused without an answer
	// (IPMI 1.5 session set-up, authenticated or in-session packets, other
	// commands). They are also counted in Dropped.
	RefusedV15 int
	// Commands counts IPMI requests per target.
	Commands map[CommandKey]int
	// Bridged counts Send Message requests.
	Bridged int
}

// CommandKey identifies a command sent to a controller.
type CommandKey struct {
	Addr  uint8
	NetFn ipmi.NetFn
	Cmd   uint8
}

type sensor struct {
	cfg                  SensorConfig
	raw                  uint8
	th                   [6]uint8
	hystPos, hystNeg     uint8
	eventsOn, scanningOn bool
	assertEn, deassertEn uint16
	asserted             uint16
}

type led struct {
	caps, defLocal, defOverride byte
	override                    bool
	fn, onDur, color            byte
	lampTest                    bool
	lampDur                     byte
}

type mc struct {
	addr         uint8
	cfg          MCConfig
	isShM        bool
	state        MState
	beforeM7     MState
	handleClosed bool
	locked       bool
	deactLocked  bool
	lockOnM1     bool // commanded deactivation: set Locked on reaching M1
	powerLevel   uint8
	hasDue       bool
	due          time.Time
	unresponsive bool
	evReceiver   uint8 // IPMB address events go to (FFh = disabled)
	hsSensor     uint8
	sensors      map[uint8]*sensor
	sensorOrder  []uint8
	dev          sdrRepo
	fru          map[uint8][]byte
	leds         [3]led
	resets       int
}

type watchdog struct {
	set, running        bool
	use, actions, pre   byte
	expFlags            byte
	initial, remaining  uint16 // 100 ms units
	sub                 time.Duration
	expirations, resets int
}

// New builds a shelf from cfg (defaults applied to unset fields). log may
// be nil.
func New(cfg Config, log *slog.Logger) (*Shelf, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("sim: invalid shelf configuration: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Shelf{cfg: cfg, log: log, now: cfg.Start, mcs: map[uint8]*mc{}, chassisOn: true}
	s.sel.capacity = cfg.SELCapacity
	s.counters.Commands = map[CommandKey]int{}
	shmCfg := MCConfig{Addr: cfg.Addr, Name: cfg.Name, SiteType: SiteShelfMgr, SiteNumber: 1,
		EntityID: 0xF0, EntityInstance: 0x60, HotSwapSensor: cfg.HotSwapSensor, Sensors: cfg.Sensors,
		Present: true, Activated: true, PowerMultiplier: 1, PowerLevels: []uint8{1}, EarlyPowerLevels: []uint8{1},
		DesiredLevel: 1, Manufacturer: "Sim Systems", PartNumber: "SHMC-1", Serial: "SIMSHM01", ChassisCommands: true}
	s.shm = s.newMC(shmCfg, true)
	s.shm.fru[1] = buildFRU("Sim Shelf", "Sim Systems", "SHELF-14", "SIMSHELF01", cfg.Start.AddDate(-1, 0, 0))
	for _, mcfg := range cfg.IPMCs {
		m := s.newMC(mcfg, false)
		s.ipmcs = append(s.ipmcs, m)
	}
	s.rebuildMainSDR()
	return s, nil
}

func (s *Shelf) newMC(c MCConfig, isShM bool) *mc {
	m := &mc{addr: c.Addr, cfg: c, isShM: isShM, hsSensor: c.HotSwapSensor, evReceiver: s.cfg.Addr, sensors: map[uint8]*sensor{},
		fru: map[uint8][]byte{0: buildFRU(c.Name, c.Manufacturer, c.PartNumber, c.Serial, s.cfg.Start.AddDate(0, -3, 0))}}
	for _, sc := range c.Sensors {
		se := &sensor{cfg: sc, raw: sc.Raw, th: sc.Thresholds, hystPos: sc.HystPos, hystNeg: sc.HystNeg,
			eventsOn: true, scanningOn: true}
		se.th = maskThresholds(sc.Thresholds, sc.ThresholdMask)
		se.assertEn, se.deassertEn = thresholdEventMask(sc.ThresholdMask), thresholdEventMask(sc.ThresholdMask)
		se.asserted = se.evaluate(0)
		m.sensors[sc.Number] = se
		m.sensorOrder = append(m.sensorOrder, sc.Number)
	}
	m.leds = [3]led{
		{caps: 0x02, defLocal: 1, defOverride: 1},
		{caps: 0x14, defLocal: 2, defOverride: 2},
		{caps: 0x08, defLocal: 3, defOverride: 3},
	}
	switch {
	case !c.Present:
		m.state = M0
	case c.Activated:
		m.state, m.handleClosed, m.powerLevel = M4, true, c.DesiredLevel
	default:
		m.state = M1
	}
	s.mcs[c.Addr] = m
	m.dev.set(s.deviceSDRs(m), s.ts())
	return m
}

func maskThresholds(t [6]uint8, mask uint8) [6]uint8 {
	for i := range t {
		if mask&(1<<i) == 0 {
			t[i] = 0
		}
	}
	return t
}

func thresholdEventMask(th uint8) uint16 {
	var ev uint16
	for i := 0; i < 6; i++ {
		if th&(1<<i) == 0 {
			continue
		}
		if i < 3 {
			ev |= 1 << (2 * i)
		} else {
			ev |= 1 << (2*i + 1)
		}
	}
	return ev
}

func (s *Shelf) ts() uint32 { return uint32(s.now.Unix()) }

func (s *Shelf) deviceCaps(m *mc) byte {
	if m.isShM {
		return 0xFF
	}
	c := byte(0x29) // sensor device, FRU inventory, IPMB event generator
	if m.cfg.ChassisCommands {
		c |= 0x80
	}
	return c
}

// deviceSDRs are the records of an MC's own device SDR repository.
func (s *Shelf) deviceSDRs(m *mc) [][]byte {
	c := m.cfg
	recs := [][]byte{mcLocatorRecord(m.addr, s.deviceCaps(m), c.EntityID, c.EntityInstance, c.Name)}
	if m.isShM {
		recs = append(recs, fruLocatorRecord(m.addr, 1, 0xF2, 0x60, "Shelf FRU Info"))
	}
	recs = append(recs, hotSwapRecord(m.addr, m.hsSensor, c.EntityID, c.EntityInstance, hsName(c.Name)))
	for _, n := range m.sensorOrder {
		se := m.sensors[n]
		recs = append(recs, fullSensorRecord(m.addr, c.EntityID, c.EntityInstance, &se.cfg))
	}
	return recs
}

func hsName(name string) string {
	n := name + " HS"
	if len(n) > 16 {
		n = n[len(n)-16:]
	}
	return n
}

// rebuildMainSDR aggregates the device SDRs of the shelf manager and of
// every installed IPMC into the main repository, as a shelf manager does
// when it discovers or loses an IPMC. Any reservation is cancelled.
func (s *Shelf) rebuildMainSDR() {
	recs := s.deviceSDRs(s.shm)
	for _, m := range s.ipmcs {
		if m.state != M0 {
			recs = append(recs, s.deviceSDRs(m)...)
		}
	}
	s.main.set(recs, s.ts())
}

// --- clock -------------------------------------------------------------

// Now returns the shelf clock.
func (s *Shelf) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Advance moves the shelf clock forward by d and carries out, in time
// order, every automatic hot-swap step and watchdog countdown that falls
// due.
func (s *Shelf) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(d)
}

func (s *Shelf) advance(d time.Duration) {
	if d < 0 {
		return
	}
	end := s.now.Add(d)
	for {
		var next *mc
		for _, m := range append([]*mc{s.shm}, s.ipmcs...) {
			if m.hasDue && !m.due.After(end) && (next == nil || m.due.Before(next.due)) {
				next = m
			}
		}
		if next == nil {
			break
		}
		s.tickWatchdog(next.due.Sub(s.now))
		s.now = next.due
		next.hasDue = false
		s.autoStep(next)
	}
	s.tickWatchdog(end.Sub(s.now))
	s.now = end
}

// RunClock advances the shelf clock with real time every tick until ctx
// ends. It is the real-time mode of the demo.
func (s *Shelf) RunClock(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.Advance(now.Sub(last))
			last = now
		}
	}
}

// --- hot-swap state machine ----------------------------------------------

func (s *Shelf) auto() bool { return !s.cfg.ManualActivation }

// setState moves m to state to and logs the hot-swap event.
func (s *Shelf) setState(m *mc, to MState, cause uint8) {
	from := m.state
	if from == to {
		return
	}
	m.state = to
	m.hasDue = false
	switch to {
	case M0, M1, M2:
		m.powerLevel = 0
	}
	if to == M1 && m.lockOnM1 {
		m.locked = true
		m.lockOnM1 = false
	}
	s.log.Debug("FRU hot-swap state change", "ipmc", fmt.Sprintf("0x%02x", m.addr), "from", from, "to", to, "cause", cause)
	if to == M7 || from == M7 {
		// The shelf manager records the loss (and regain) of communication
		// itself, under the IPMC's hot-swap sensor.
		s.sel.event(s.ts(), m.addr, sensorTypeHS, m.hsSensor, eventTypeSensor, 0xA0|byte(to), cause<<4|byte(from), 0)
	} else {
		s.mcEvent(m, sensorTypeHS, m.hsSensor, eventTypeSensor, 0xA0|byte(to), cause<<4|byte(from), 0)
	}
	if from == M0 || to == M0 {
		s.rebuildMainSDR()
	}
}

// settle applies the transitions that happen at once, then schedules the
// next automatic step.
func (s *Shelf) settle(m *mc, cause uint8) {
	for i := 0; i < 8; i++ {
		switch {
		case m.state == M1 && m.handleClosed && !m.locked:
			s.setState(m, M2, cause)
		case m.state == M2 && !m.handleClosed:
			s.setState(m, M1, CauseHandle)
		case m.state == M4 && !m.handleClosed && !m.deactLocked:
			s.setState(m, M5, CauseHandle)
		case m.state == M5 && m.handleClosed:
			s.setState(m, M4, CauseHandle)
		case m.state == M3 && m.powerLevel > 0:
			s.setState(m, M4, CauseNormal)
		default:
			s.schedule(m)
			return
		}
	}
	s.schedule(m)
}

func (s *Shelf) schedule(m *mc) {
	m.hasDue = false
	switch m.state {
	case M2:
		m.hasDue = s.auto() && s.chassisOn
	case M3:
		m.hasDue = s.auto()
	case M5:
		m.hasDue = s.auto()
	case M6:
		m.hasDue = true
	}
	if m.hasDue {
		m.due = s.now.Add(s.cfg.StepDelay)
	}
}

// autoStep carries out the step that fell due for m.
func (s *Shelf) autoStep(m *mc) {
	switch m.state {
	case M2:
		s.setState(m, M3, CauseShelfManager)
	case M3:
		m.powerLevel = m.cfg.DesiredLevel
	case M5:
		m.lockOnM1 = false
		s.setState(m, M6, CauseShelfManager)
	case M6:
		s.setState(m, M1, CauseNormal)
	}
	s.settle(m, CauseNormal)
}

// deactivate starts a commanded deactivation (Set FRU Activation, Set Power
// Level 0, power down). The FRU stays locked in M1 afterwards.
func (s *Shelf) deactivate(m *mc, cause uint8, lock bool) bool {
	switch m.state {
	case M2:
		m.locked = m.locked || lock
		s.setState(m, M1, cause)
	case M3, M4, M5:
		m.lockOnM1 = lock
		m.powerLevel = 0
		s.setState(m, M6, cause)
	default:
		return false
	}
	s.settle(m, cause)
	return true
}

// --- test controls ---------------------------------------------------------

func (s *Shelf) ipmc(addr uint8) (*mc, error) {
	m, ok := s.mcs[addr]
	if !ok || m.isShM {
		return nil, fmt.Errorf("%w at IPMB 0x%02x", ErrNoSuchMC, addr)
	}
	return m, nil
}

// Insert puts the board at addr into the shelf with its handle closed
// (M0 → M1, then M2 unless its policy is Locked; the shelf manager then
// activates it step by step as the clock advances). A board already in the
// shelf just gets its handle closed.
func (s *Shelf) Insert(addr uint8) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.ipmc(addr)
	if err != nil {
		return err
	}
	if m.state == M7 {
		return fmt.Errorf("insert board 0x%02x: %w (%s)", addr, ErrState, m.state)
	}
	if m.state == M0 {
		m.locked, m.deactLocked = false, false
		s.setState(m, M1, CauseNormal)
	}
	m.handleClosed = true
	s.settle(m, CauseHandle)
	return nil
}

// Extract opens the handle of the board at addr: M4 → M5 (unless its
// policy is Deactivation-Locked), then the shelf manager deactivates it
// (M6, M1) as the clock advances.
func (s *Shelf) Extract(addr uint8) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.ipmc(addr)
	if err != nil {
		return err
	}
	if m.state == M0 || m.state == M7 {
		return fmt.Errorf("open handle of board 0x%02x: %w (%s)", addr, ErrState, m.state)
	}
	m.handleClosed = false
	s.settle(m, CauseHandle)
	return nil
}

// Remove takes the board at addr out of the shelf (→ M0). From M1 this is
// a normal removal; from any other state a surprise extraction.
func (s *Shelf) Remove(addr uint8) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.ipmc(addr)
	if err != nil {
		return err
	}
	if m.state == M0 {
		return nil
	}
	cause := CauseNormal
	if m.state != M1 {
		cause = CauseSurprise
	}
	m.unresponsive = false
	m.handleClosed = false
	s.setState(m, M0, cause)
	s.schedule(m)
	return nil
}

// SetUnresponsive makes the IPMC at addr stop answering (true: the shelf
// manager records M7 communication lost, bridged requests time out) or
// answer again (false: back to the state it had).
func (s *Shelf) SetUnresponsive(addr uint8, lost bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.ipmc(addr)
	if err != nil {
		return err
	}
	if m.state == M0 || m.unresponsive == lost {
		return nil
	}
	m.unresponsive = lost
	if lost {
		m.beforeM7 = m.state
		s.setState(m, M7, CauseCommLost)
		return nil
	}
	s.setState(m, m.beforeM7, CauseCommLost)
	s.settle(m, CauseNormal)
	return nil
}

// PullPower makes the payload of the board at addr lose power unexpectedly
// (M3/M4/M5 → M6 with cause "unexpected deactivation", then M1).
func (s *Shelf) PullPower(addr uint8) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.ipmc(addr)
	if err != nil {
		return err
	}
	switch m.state {
	case M3, M4, M5:
		m.powerLevel = 0
		s.setState(m, M6, CauseUnexpected)
		s.settle(m, CauseNormal)
		return nil
	}
	return fmt.Errorf("pull power of board 0x%02x: %w (%s)", addr, ErrState, m.state)
}

// SetSensorRaw sets the raw reading of sensor number n on the controller at
// addr (the shelf manager's address for its own sensors). Threshold
// crossings log events the way the sensor's MC would send them.
func (s *Shelf) SetSensorRaw(addr, n uint8, raw uint8) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.mcs[addr]
	if !ok {
		return fmt.Errorf("%w at IPMB 0x%02x", ErrNoSuchMC, addr)
	}
	se, ok := m.sensors[n]
	if !ok {
		return fmt.Errorf("sim: no threshold sensor 0x%02x on 0x%02x", n, addr)
	}
	se.raw = raw
	s.updateEvents(m, se)
	return nil
}

// State returns the hot-swap state of the FRU 0 of the controller at addr.
func (s *Shelf) State(addr uint8) (MState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.mcs[addr]
	if !ok {
		return 0, fmt.Errorf("%w at IPMB 0x%02x", ErrNoSuchMC, addr)
	}
	return m.state, nil
}

// PowerLevel returns the present power level of the FRU 0 at addr.
func (s *Shelf) PowerLevel(addr uint8) (uint8, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.mcs[addr]
	if !ok {
		return 0, fmt.Errorf("%w at IPMB 0x%02x", ErrNoSuchMC, addr)
	}
	return m.powerLevel, nil
}

// Policy returns the FRU activation policy bits (Locked, Deactivation-Locked) of FRU 0 at addr.
func (s *Shelf) Policy(addr uint8) (locked, deactLocked bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.mcs[addr]
	if !ok {
		return false, false, fmt.Errorf("%w at IPMB 0x%02x", ErrNoSuchMC, addr)
	}
	return m.locked, m.deactLocked, nil
}

// ChassisPower reports whether the shelf (chassis) power is on.
func (s *Shelf) ChassisPower() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chassisOn
}

// SELEntry is a decoded SEL record as stored by the shelf manager.
type SELEntry struct {
	ID         uint16
	Time       uint32
	Generator  uint8
	SensorType uint8
	Sensor     uint8
	DirType    uint8
	Data       [3]byte
	Raw        [16]byte
}

// SEL returns a copy of the SEL.
func (s *Shelf) SEL() []SELEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SELEntry, 0, len(s.sel.entries))
	for _, r := range s.sel.entries {
		out = append(out, SELEntry{ID: uint16(r[0]) | uint16(r[1])<<8, Time: uint32(r[3]) | uint32(r[4])<<8 | uint32(r[5])<<16 | uint32(r[6])<<24,
			Generator: r[7], SensorType: r[10], Sensor: r[11], DirType: r[12], Data: [3]byte{r[13], r[14], r[15]}, Raw: r})
	}
	return out
}

// Counters returns a copy of the counters.
func (s *Shelf) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counters
	c.Commands = make(map[CommandKey]int, len(s.counters.Commands))
	for k, v := range s.counters.Commands {
		c.Commands[k] = v
	}
	return c
}

// Resets returns how many FRU Control resets the FRU 0 at addr received.
func (s *Shelf) Resets(addr uint8) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.mcs[addr]; ok {
		return m.resets
	}
	return 0
}

// Addrs returns the IPMB addresses of the configured IPMCs in ascending order.
func (s *Shelf) Addrs() []uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var a []uint8
	for _, m := range s.ipmcs {
		a = append(a, m.addr)
	}
	sort.Slice(a, func(i, j int) bool { return a[i] < a[j] })
	return a
}

// Config returns the shelf's configuration with defaults applied.
func (s *Shelf) Config() Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

func (s *Shelf) count(f func(c *Counters)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.counters)
}
