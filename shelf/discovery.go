package shelf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"hpiagent/shelf/ipmi"
)

// Discovery reads a whole shelf through its shelf manager and keeps what
// it saw in a Snapshot. It is the reading half of building the HPI model;
// Model and Apply turn a Snapshot into HPI resources.
//
// What is read, in this order:
//
//  1. The shelf manager itself (the controller at the end of the
//     transport): Get Device ID, Get PICMG Properties, Get Address Info of
//     its FRU 0, which gives its own IPMB-0 address (never assumed to be
//     0x20 when the shelf manager can say it), and Get SDR Repository Info.
//  2. The whole main SDR repository: MC device locators (12h), FRU device
//     locators (11h), full, compact and event-only sensor records.
//  3. For every controller named by an MC device locator or owning a
//     sensor record (several at once, bounded by DiscoverOptions.InFlight;
//     requests to one controller go one after the other): Get Device ID,
//     Get PICMG Properties (a controller that answers 0xC1 is kept as a
//     plain, non-PICMG MC), and for each of its FRUs (FRU 0 and the logical
//     FRUs named by FRU device locators): Get Address Info, the FRU
//     inventory, FRU LED properties and colour capabilities, FRU Control
//     capabilities, the activation policy, the power level, the device
//     locator record ID and the reading of its hot-swap sensor (sensor
//     type F0h owned by the controller, found by type and entity, never by
//     number).
//
// Failures stay with the controller or FRU they concern: a controller that
// does not answer is kept with Lost set and its error, a command it
// answers with 0xC1 is listed in Unsupported, any other failed command in
// Problems. Discover itself fails only when the shelf manager cannot be
// reached or its SDR repository cannot be read.

// DiscoverOptions tune Discover.
type DiscoverOptions struct {
	// InFlight is how many controllers are read at once. Default 4.
	InFlight int
	// Readings also reads every sensor (with thresholds) into
	// Snapshot.Readings, as a first sweep.
	Readings bool
	// Logger receives one debug line per controller. Default slog.Default().
	Logger *slog.Logger
}

// Snapshot is what one discovery saw of a shelf. It is plain data; Model
// turns it into HPI resources.
type Snapshot struct {
	// Taken is when discovery started.
	Taken time.Time
	// LocalAddr is the IPMB-0 address of the shelf manager at the end of
	// the transport, from its Get Address Info. LocalAddrKnown is false
	// when it could not say (a non-PICMG BMC); LocalAddr is then the IPMI
	// BMC address 0x20 and a Problem of the shelf manager says so.
	LocalAddr      uint8
	LocalAddrKnown bool
	// Repository is the main SDR repository information read before the
	// records. Records holds every record read.
	Repository ipmi.SDRRepositoryInfo
	Records    []ipmi.SDR
	// MCs are the controllers of the shelf, the shelf manager first, then
	// by channel and IPMB address.
	MCs []*MC
	// Readings is the first sensor sweep (DiscoverOptions.Readings).
	Readings []Reading
}

// MC is one management controller: the shelf manager or an IPMC.
type MC struct {
	// Addr is where its commands go: the zero Addr for the shelf manager,
	// a bridged IPMB address for the others.
	Addr ipmi.Addr
	// IPMBAddr is its 8-bit IPMB-0 address.
	IPMBAddr uint8
	// ShelfManager is true for the controller at the end of the transport.
	ShelfManager bool
	// Locator is its MC device locator record; nil when the repository
	// has none (a sensor owner without a locator, or the shelf manager).
	Locator *ipmi.MCLocatorRecord
	// Device is its Get Device ID answer; nil when it did not answer.
	Device *ipmi.DeviceID
	// PICMG is its Get PICMG Properties answer; nil for a controller that
	// is not a PICMG controller (it answered 0xC1) or did not answer.
	PICMG *ipmi.PICMGProperties
	// FRUs are its FRUs: FRU 0 (the controller's own board) first.
	FRUs []*FRU
	// Sensors are the sensors of the repository it owns, shared records
	// expanded; event-only records are included (Sensor.Record.Type says
	// so).
	Sensors []Sensor
	// Lost is set when the controller did not answer at all; Err says how.
	Lost bool
	Err  error
	// Unsupported names the commands it answered with 0xC1 ("Get Power
	// Level (FRU 0)"). This is information, not failure.
	Unsupported []string
	// Problems are the other failed commands, with what failed.
	Problems []error
}

// FRU is one FRU of a controller.
type FRU struct {
	ID uint8
	// Locator is its FRU device locator record; nil for FRU 0 unless the
	// repository has one.
	Locator *ipmi.FRULocatorRecord
	// Site is its Get Address Info answer; nil when unknown.
	Site *ipmi.AddressInfo
	// Inventory is its decoded FRU inventory; nil when it has none or it
	// could not be read or decoded (see the MC's Problems).
	Inventory *ipmi.FRU
	// LEDs are its LEDs with their colour capabilities (PICMG only).
	LEDs []LED
	// Control is its FRU Control capabilities; nil when unknown.
	Control *ipmi.FRUControlCaps
	// Policy is its activation policy; nil when unsupported or unknown.
	Policy *ipmi.ActivationPolicy
	// Power is its steady-state power level; nil when unsupported or
	// unknown.
	Power *ipmi.PowerLevel
	// LocatorRecordID is the answer of Get Device Locator Record ID.
	LocatorRecordID    uint16
	HasLocatorRecordID bool
	// HotSwap is its hot-swap sensor (type F0h), nil when it has none.
	HotSwap *Sensor
	// MState is the M-state its hot-swap sensor read, valid when
	// HasMState.
	MState    int
	HasMState bool
}

// LED is one FRU LED with its colour capabilities.
type LED struct {
	ID     uint8
	Colors *ipmi.LEDColorCaps // nil when they could not be read
}

// FRUOf returns the MC's FRU with id, or nil.
func (m *MC) FRUOf(id uint8) *FRU {
	for _, f := range m.FRUs {
		if f.ID == id {
			return f
		}
	}
	return nil
}

// MCAt returns the controller with IPMB-0 address addr, or nil.
func (s *Snapshot) MCAt(addr uint8) *MC {
	for _, m := range s.MCs {
		if m.IPMBAddr == addr {
			return m
		}
	}
	return nil
}

// String names the controller for logs and errors.
func (m *MC) String() string {
	if m.ShelfManager {
		return fmt.Sprintf("shelf manager 0x%02x", m.IPMBAddr)
	}
	return fmt.Sprintf("IPMC 0x%02x", m.IPMBAddr)
}

// Discover reads the shelf behind c (see Discovery above). It returns an
// error only when the shelf manager does not answer, its SDR repository
// cannot be read, or ctx ends.
func Discover(ctx context.Context, c ipmi.Conn, opts DiscoverOptions) (*Snapshot, error) {
	if opts.InFlight <= 0 {
		opts.InFlight = 4
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	snap := &Snapshot{Taken: time.Now()}

	shm := &MC{ShelfManager: true}
	dev, err := ipmi.GetDeviceID(ctx, c, ipmi.Addr{})
	if err != nil {
		return nil, fmt.Errorf("discovering shelf: asking the shelf manager for its device ID: %w", err)
	}
	shm.Device = &dev
	shm.probePICMG(ctx, c)
	snap.LocalAddr = ipmi.AddrBMC
	if shm.PICMG != nil {
		ai, err := ipmi.GetAddressInfo(ctx, c, ipmi.Addr{}, ipmi.ByFRU(0))
		if err == nil {
			snap.LocalAddr, snap.LocalAddrKnown = ai.IPMBAddress, true
		} else {
			shm.note(err, "Get Address Info (FRU 0)")
		}
	}
	if !snap.LocalAddrKnown {
		shm.Problems = append(shm.Problems, fmt.Errorf("the shelf manager did not tell its IPMB-0 address; taking the IPMI BMC address 0x%02x", ipmi.AddrBMC))
	}
	shm.IPMBAddr = snap.LocalAddr

	snap.Repository, err = ipmi.GetSDRRepositoryInfo(ctx, c, ipmi.Addr{})
	if err != nil {
		return nil, fmt.Errorf("discovering shelf: reading the SDR repository info of the shelf manager: %w", err)
	}
	snap.Records, err = ipmi.ReadSDRRepository(ctx, c, ipmi.Addr{}, ipmi.MainSDR)
	if err != nil {
		return nil, fmt.Errorf("discovering shelf: reading the main SDR repository of the shelf manager: %w", err)
	}

	snap.MCs = mcsOf(snap.Records, snap.LocalAddr, shm)

	shmPICMG := shm.PICMG != nil
	sem := make(chan struct{}, opts.InFlight)
	var wg sync.WaitGroup
	for _, m := range snap.MCs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				m.Lost, m.Err = true, fmt.Errorf("discovering %s: %w", m, ctx.Err())
				return
			}
			defer func() { <-sem }()
			m.discover(ctx, c, shmPICMG)
			log.DebugContext(ctx, "discovered controller", "mc", m.String(), "frus", len(m.FRUs), "sensors", len(m.Sensors),
				"lost", m.Lost, "unsupported", len(m.Unsupported), "problems", len(m.Problems))
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("discovering shelf: %w", err)
	}

	if opts.Readings {
		var all []Sensor
		for _, m := range snap.MCs {
			for _, s := range m.Sensors {
				if s.Record.Type != ipmi.SDREventOnly && !m.Lost {
					all = append(all, s)
				}
			}
		}
		snap.Readings = ReadSensors(ctx, c, all, SweepOptions{InFlight: opts.InFlight, Thresholds: true})
	}
	return snap, nil
}

// mcsOf lists the controllers the repository names: the shelf manager,
// every MC device locator and every other owner of a sensor record, with
// their FRUs and sensors attached but nothing read yet.
func mcsOf(recs []ipmi.SDR, local uint8, shm *MC) []*MC {
	byAddr := map[uint8]*MC{local: shm}
	get := func(channel, addr uint8) *MC {
		if m, ok := byAddr[addr]; ok {
			return m
		}
		m := &MC{Addr: ipmi.Addr{Channel: channel, Slave: addr}, IPMBAddr: addr}
		byAddr[addr] = m
		return m
	}
	for _, r := range recs {
		if l := r.MCLocator; l != nil {
			m := get(l.Channel, l.SlaveAddress)
			if m.Locator == nil {
				m.Locator = l
			}
		}
	}
	for _, r := range recs {
		s := r.Sensor
		if s == nil || s.OwnerID&1 != 0 { // software IDs are not controllers on IPMB
			continue
		}
		m := get(s.Channel, s.OwnerID)
		owner := m.Addr
		for _, sh := range s.Shared() {
			m.Sensors = append(m.Sensors, Sensor{Owner: owner, Number: sh.Number, Name: sh.Name, EntityInstance: sh.EntityInstance, Record: s})
		}
	}
	for _, m := range byAddr {
		m.FRUs = []*FRU{{ID: 0}}
	}
	for _, r := range recs {
		l := r.FRULocator
		if l == nil || !l.Logical {
			continue // non-intelligent FRUs behind private buses are not read here
		}
		m := get(l.Channel, l.AccessAddress)
		if len(m.FRUs) == 0 {
			m.FRUs = []*FRU{{ID: 0}}
		}
		f := m.FRUOf(l.FRUDeviceID)
		if f == nil {
			f = &FRU{ID: l.FRUDeviceID}
			m.FRUs = append(m.FRUs, f)
		}
		f.Locator = l
	}
	out := make([]*MC, 0, len(byAddr))
	for _, m := range byAddr {
		slices.SortFunc(m.FRUs, func(a, b *FRU) int { return int(a.ID) - int(b.ID) })
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *MC) int {
		switch {
		case a.ShelfManager != b.ShelfManager:
			if a.ShelfManager {
				return -1
			}
			return 1
		case a.Addr.Channel != b.Addr.Channel:
			return int(a.Addr.Channel) - int(b.Addr.Channel)
		}
		return int(a.IPMBAddr) - int(b.IPMBAddr)
	})
	return out
}

// note records the outcome of a failed command: 0xC1 as unsupported,
// anything else as a problem.
func (m *MC) note(err error, what string) {
	if errors.Is(err, ipmi.ErrNotSupported) {
		m.Unsupported = append(m.Unsupported, what)
		return
	}
	m.Problems = append(m.Problems, fmt.Errorf("%s: %s: %w", m, what, err))
}

func (m *MC) probePICMG(ctx context.Context, c ipmi.Conn) {
	p, err := ipmi.GetPICMGProperties(ctx, c, m.Addr)
	if err != nil {
		m.note(err, "Get PICMG Properties")
		return
	}
	m.PICMG = &p
}

func (m *MC) discover(ctx context.Context, c ipmi.Conn, shmPICMG bool) {
	if !m.ShelfManager {
		dev, err := ipmi.GetDeviceID(ctx, c, m.Addr)
		if err != nil {
			if !isPlainCode(err) {
				m.Lost, m.Err = true, fmt.Errorf("%s does not answer Get Device ID: %w", m, err)
			} else {
				m.note(err, "Get Device ID")
			}
		} else {
			m.Device = &dev
		}
		if !m.Lost {
			m.probePICMG(ctx, c)
		}
	}
	if !m.Lost {
		for _, f := range m.FRUs {
			m.discoverFRU(ctx, c, f)
			if ctx.Err() != nil {
				return
			}
		}
	}
	// The shelf manager knows the site of every IPMB address it manages,
	// also of a controller that does not answer or cannot tell.
	if f0 := m.FRUOf(0); !m.ShelfManager && f0 != nil && f0.Site == nil && shmPICMG {
		if ai, err := ipmi.GetAddressInfo(ctx, c, ipmi.Addr{}, ipmi.ByIPMBAddress(m.IPMBAddr)); err == nil {
			f0.Site = &ai
		} else {
			m.note(err, "Get Address Info of its IPMB address from the shelf manager")
		}
	}
}

// isPlainCode reports whether err carries a completion code of the
// controller itself rather than of the bridge (0x81..0x83: IPMB NAK, lost
// arbitration, bus error, which some bridges return in place of the
// answer).
func isPlainCode(err error) bool {
	code, ok := ipmi.CodeOf(err)
	return ok && (code < 0x81 || code > 0x83)
}

func (m *MC) discoverFRU(ctx context.Context, c ipmi.Conn, f *FRU) {
	what := func(cmd string) string { return fmt.Sprintf("%s (FRU %d)", cmd, f.ID) }

	if m.PICMG != nil {
		if ai, err := ipmi.GetAddressInfo(ctx, c, m.Addr, ipmi.ByFRU(f.ID)); err == nil {
			f.Site = &ai
		} else {
			m.note(err, what("Get Address Info"))
		}
	}

	if m.hasInventory(f) {
		raw, err := ipmi.ReadFRU(ctx, c, m.Addr, f.ID)
		switch {
		case err != nil:
			m.note(err, what("Read FRU Data"))
		default:
			inv, err := ipmi.ParseFRU(raw)
			if err != nil {
				m.Problems = append(m.Problems, fmt.Errorf("%s: decoding the inventory of FRU %d: %w", m, f.ID, err))
			} else {
				f.Inventory = &inv
			}
		}
	}

	if m.PICMG != nil {
		if p, err := ipmi.GetFRULEDProperties(ctx, c, m.Addr, f.ID); err == nil {
			for _, id := range p.LEDIDs() {
				led := LED{ID: id}
				if cc, err := ipmi.GetLEDColorCapabilities(ctx, c, m.Addr, f.ID, id); err == nil {
					led.Colors = &cc
				} else {
					m.note(err, what(fmt.Sprintf("Get LED Color Capabilities (LED %d)", id)))
				}
				f.LEDs = append(f.LEDs, led)
			}
		} else {
			m.note(err, what("Get FRU LED Properties"))
		}
		if cc, err := ipmi.GetFRUControlCapabilities(ctx, c, m.Addr, f.ID); err == nil {
			f.Control = &cc
		} else {
			m.note(err, what("Get FRU Control Capabilities"))
		}
		if p, err := ipmi.GetFRUActivationPolicy(ctx, c, m.Addr, f.ID); err == nil {
			f.Policy = &p
		} else {
			m.note(err, what("Get FRU Activation Policy"))
		}
		if p, err := ipmi.GetPowerLevel(ctx, c, m.Addr, f.ID, ipmi.PowerSteadyState); err == nil {
			f.Power = &p
		} else {
			m.note(err, what("Get Power Level"))
		}
		if id, err := ipmi.GetDeviceLocatorRecordID(ctx, c, m.Addr, f.ID); err == nil {
			f.LocatorRecordID, f.HasLocatorRecordID = id, true
		} else {
			m.note(err, what("Get Device Locator Record ID"))
		}
	}

	if hs := m.hotSwapSensorOf(f); hs != nil {
		f.HotSwap = hs
		r := readSensor(ctx, c, *hs, false)
		if r.Err != nil {
			m.note(r.Err, what("Get Sensor Reading (hot-swap sensor)"))
		} else if st, ok := r.MState(); ok {
			f.MState, f.HasMState = st, true
		} else {
			m.Problems = append(m.Problems, fmt.Errorf("%s: hot-swap sensor %q of FRU %d shows no single M-state (states 0x%04x)", m, hs.Name, f.ID, r.States))
		}
	}
}

// hasInventory reports whether FRU f is expected to hold inventory data:
// FRUs named by a FRU locator always, FRU 0 unless the MC locator says the
// controller has no FRU inventory device.
func (m *MC) hasInventory(f *FRU) bool {
	if f.ID != 0 || f.Locator != nil || m.Locator == nil {
		return true
	}
	return m.Locator.Capabilities&ipmi.DevSupportFRU != 0
}

// entityOf returns the IPMI entity (ID, instance) of FRU f: its FRU
// locator's, or for FRU 0 the MC locator's.
func (m *MC) entityOf(f *FRU) (id, inst uint8, ok bool) {
	switch {
	case f.Locator != nil:
		return f.Locator.EntityID, f.Locator.EntityInstance, true
	case f.ID == 0 && m.Locator != nil:
		return m.Locator.EntityID, m.Locator.EntityInstance, true
	}
	return 0, 0, false
}

// hotSwapSensorOf finds the hot-swap sensor (type F0h) of FRU f among the
// sensors the controller owns: the one whose entity is the FRU's entity;
// failing that, for FRU 0, the only hot-swap sensor not matching another
// FRU's entity.
func (m *MC) hotSwapSensorOf(f *FRU) *Sensor {
	var cands []*Sensor
	for i := range m.Sensors {
		if m.Sensors[i].Record.SensorType == SensorTypeHotSwap {
			cands = append(cands, &m.Sensors[i])
		}
	}
	if id, inst, ok := m.entityOf(f); ok {
		for _, s := range cands {
			if s.Record.EntityID == id && s.EntityInstance&0x7f == inst&0x7f {
				return s
			}
		}
	}
	if f.ID != 0 {
		return nil
	}
	var rest []*Sensor
	for _, s := range cands {
		if m.fruOfEntity(s.Record.EntityID, s.EntityInstance) == nil {
			rest = append(rest, s)
		}
	}
	if len(rest) == 1 {
		return rest[0]
	}
	return nil
}

// fruOfEntity returns the FRU other than FRU 0 whose locator names the
// entity, or nil.
func (m *MC) fruOfEntity(id, inst uint8) *FRU {
	for _, f := range m.FRUs {
		if f.ID != 0 && f.Locator != nil && f.Locator.EntityID == id && f.Locator.EntityInstance&0x7f == inst&0x7f {
			return f
		}
	}
	return nil
}

// SensorsOfFRU returns the sensors of the controller that belong to FRU
// f: those whose entity is that of a FRU locator go to that FRU, all
// others to FRU 0.
func (m *MC) SensorsOfFRU(f *FRU) []Sensor {
	var out []Sensor
	for _, s := range m.Sensors {
		owner := m.fruOfEntity(s.Record.EntityID, s.EntityInstance)
		if (owner == nil && f.ID == 0) || owner == f {
			out = append(out, s)
		}
	}
	return out
}
