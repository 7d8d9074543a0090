package fencing

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"hpiagent/shelf/ipmi"
)

// FRUTarget is where a node's blade sits behind a shelf manager.
type FRUTarget struct {
	// Addr is the IPMC (bridged through the shelf manager: Slave = its
	// IPMB address) or, for chassis power, the controller that has the
	// chassis commands.
	Addr ipmi.Addr
	// FRU is the FRU device ID of the blade on its IPMC (normally 0).
	FRU uint8
	// HotSwapSensor is the number of the FRU's PICMG hot-swap sensor
	// (sensor type F0h) on the IPMC, as discovered from the SDRs. It is
	// read back by the deactivation method; HasHotSwapSensor false makes
	// that method refuse the node.
	HotSwapSensor    uint8
	HasHotSwapSensor bool
}

// PICMGMethod selects how the PICMG executor removes a blade's power.
type PICMGMethod string

// PICMG methods. FRU Control cold reset is not offered: a reset is not an
// off state that can be read back, so it cannot confirm a fence.
const (
	// PICMGPowerLevel: Set Power Level 0, confirmed by Get Power Level
	// reading 0 (on: the FRU's Locked policy is cleared and it is
	// activated; confirmed by a non-zero power level).
	PICMGPowerLevel PICMGMethod = "power-level"
	// PICMGDeactivate: Set FRU Activation (deactivate), confirmed by the
	// hot-swap sensor reading M1 (or M0); the FRU's Locked policy is set
	// first where supported so it stays in M1. On: policy cleared,
	// activated; confirmed by M4.
	PICMGDeactivate PICMGMethod = "deactivate"
)

// PICMGConfig configures a PICMG executor.
type PICMGConfig struct {
	// Name is the executor's name in logs. Default "picmg-" + Method.
	Name string
	// Conn is the session to the shelf manager (shelf/rmcpp). Required.
	Conn ipmi.Conn
	// Method is PICMGPowerLevel or PICMGDeactivate. Required.
	Method PICMGMethod
	// Targets maps cluster node names to their blade FRU. Required.
	Targets map[string]FRUTarget
	// HotSwapSensor, if set, is asked for the hot-swap sensor number of a
	// target that has none (HasHotSwapSensor false) each time the
	// deactivation method needs it, so the number can come from a
	// discovery that finishes after the executor is built (the daemon
	// builds its fencing topology before the first discovery). ok false:
	// the target is refused for now (ErrUnknownTarget, the next level is
	// used). Default nil: only the numbers in Targets are used.
	HotSwapSensor func(addr ipmi.Addr, fru uint8) (num uint8, ok bool)
}

// PICMG fences blades through the shelf manager with PICMG 3.0 commands.
type PICMG struct {
	cfg PICMGConfig
	mu  sync.Mutex // guards nothing but serialises commands per executor
}

// NewPICMG returns a PICMG executor.
func NewPICMG(cfg PICMGConfig) (*PICMG, error) {
	if cfg.Conn == nil {
		return nil, fmt.Errorf("fencing: PICMG executor without a shelf manager connection")
	}
	switch cfg.Method {
	case PICMGPowerLevel, PICMGDeactivate:
	default:
		return nil, fmt.Errorf("fencing: PICMG method %q (want %q or %q)", cfg.Method, PICMGPowerLevel, PICMGDeactivate)
	}
	if cfg.Name == "" {
		cfg.Name = "picmg-" + string(cfg.Method)
	}
	return &PICMG{cfg: cfg}, nil
}

// Name implements Executor.
func (p *PICMG) Name() string { return p.cfg.Name }

func (p *PICMG) target(node string) (FRUTarget, error) {
	t, ok := p.cfg.Targets[node]
	if !ok {
		return t, fmt.Errorf("%s: node %q: %w", p.cfg.Name, node, ErrUnknownTarget)
	}
	if p.cfg.Method == PICMGDeactivate && !t.HasHotSwapSensor && p.cfg.HotSwapSensor != nil {
		t.HotSwapSensor, t.HasHotSwapSensor = p.cfg.HotSwapSensor(t.Addr, t.FRU)
	}
	if p.cfg.Method == PICMGDeactivate && !t.HasHotSwapSensor {
		return t, fmt.Errorf("%s: node %q: no hot-swap sensor known (yet) for %s FRU %d to read back: %w", p.cfg.Name, node, t.Addr, t.FRU, ErrUnknownTarget)
	}
	return t, nil
}

// ipmiErr turns "not supported" completion codes into ErrUnsupported so the
// level fails plainly and the next level is used.
func ipmiErr(what string, t FRUTarget, err error) error {
	if errors.Is(err, ipmi.ErrNotSupported) {
		return fmt.Errorf("%s on %s FRU %d: not supported by this shelf manager: %w (%v)", what, t.Addr, t.FRU, ErrUnsupported, err)
	}
	return fmt.Errorf("%s on %s FRU %d: %w", what, t.Addr, t.FRU, err)
}

// Off implements Executor.
func (p *PICMG) Off(ctx context.Context, node string) error {
	t, err := p.target(node)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.cfg.Method {
	case PICMGPowerLevel:
		if err := ipmi.SetPowerLevel(ctx, p.cfg.Conn, t.Addr, t.FRU, 0, false); err != nil {
			return ipmiErr("Set Power Level 0", t, err)
		}
	case PICMGDeactivate:
		// Keep the FRU in M1 after deactivation where the shelf manager
		// supports the policy; without it the blade is held by not
		// activating it, and the read-back still decides.
		if err := ipmi.SetFRUActivationPolicy(ctx, p.cfg.Conn, t.Addr, t.FRU, ipmi.PolicyLockedBit, ipmi.ActivationPolicy{Locked: true}); err != nil && !errors.Is(err, ipmi.ErrNotSupported) {
			return ipmiErr("Set FRU Activation Policy (locked)", t, err)
		}
		st, err := p.mstate(ctx, t)
		if err == nil && (st == 0 || st == 1) {
			return nil // already off; deactivation would be refused
		}
		if err := ipmi.SetFRUActivation(ctx, p.cfg.Conn, t.Addr, t.FRU, false); err != nil {
			return ipmiErr("Set FRU Activation (deactivate)", t, err)
		}
	}
	return nil
}

// On implements Executor.
func (p *PICMG) On(ctx context.Context, node string) error {
	t, err := p.target(node)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ipmi.SetFRUActivationPolicy(ctx, p.cfg.Conn, t.Addr, t.FRU, ipmi.PolicyLockedBit, ipmi.ActivationPolicy{}); err != nil && !errors.Is(err, ipmi.ErrNotSupported) {
		return ipmiErr("Set FRU Activation Policy (unlocked)", t, err)
	}
	err = ipmi.SetFRUActivation(ctx, p.cfg.Conn, t.Addr, t.FRU, true)
	if code, ok := ipmi.CodeOf(err); ok && code == ipmi.CCNotSupportedInState {
		// Not in M2: either still on its way there (the unlocked FRU moves
		// M1 → M2 → M3 by itself) or already active. The read-back decides.
		return nil
	}
	if err != nil {
		return ipmiErr("Set FRU Activation (activate)", t, err)
	}
	return nil
}

// mstate reads the FRU's M-state from its hot-swap sensor.
func (p *PICMG) mstate(ctx context.Context, t FRUTarget) (int, error) {
	r, err := ipmi.GetSensorReading(ctx, p.cfg.Conn, t.Addr, t.HotSwapSensor)
	if err != nil {
		return -1, ipmiErr(fmt.Sprintf("reading hot-swap sensor %d", t.HotSwapSensor), t, err)
	}
	if !r.Valid() {
		return -1, nil
	}
	for m := 0; m <= 7; m++ {
		if r.States == 1<<m {
			return m, nil
		}
	}
	return -1, nil // no single state asserted: in transition or bogus
}

// Status implements Executor.
func (p *PICMG) Status(ctx context.Context, node string) (PowerStatus, error) {
	t, err := p.target(node)
	if err != nil {
		return PowerUnknown, err
	}
	switch p.cfg.Method {
	case PICMGPowerLevel:
		l, err := ipmi.GetPowerLevel(ctx, p.cfg.Conn, t.Addr, t.FRU, ipmi.PowerSteadyState)
		if err != nil {
			return PowerUnknown, ipmiErr("Get Power Level", t, err)
		}
		if l.Level == 0 {
			return PowerOff, nil
		}
		return PowerOn, nil
	default:
		m, err := p.mstate(ctx, t)
		if err != nil {
			return PowerUnknown, err
		}
		switch m {
		case 0, 1:
			return PowerOff, nil
		case 4:
			return PowerOn, nil
		}
		return PowerUnknown, nil
	}
}

// ChassisConfig configures a chassis power executor.
type ChassisConfig struct {
	// Name is the executor's name in logs. Default "chassis".
	Name string
	// Conn is the session (shelf manager, bridged to the blade's
	// controller, or a node BMC). Required.
	Conn ipmi.Conn
	// Targets maps node names to the controller with the chassis commands
	// (FRU is not used). Required.
	Targets map[string]FRUTarget
}

// Chassis fences with IPMI Chassis Control (power down / power up),
// confirmed by Get Chassis Status.
type Chassis struct{ cfg ChassisConfig }

// NewChassis returns a chassis power executor.
func NewChassis(cfg ChassisConfig) (*Chassis, error) {
	if cfg.Conn == nil {
		return nil, fmt.Errorf("fencing: chassis executor without a connection")
	}
	if cfg.Name == "" {
		cfg.Name = "chassis"
	}
	return &Chassis{cfg: cfg}, nil
}

// Name implements Executor.
func (c *Chassis) Name() string { return c.cfg.Name }

func (c *Chassis) target(node string) (FRUTarget, error) {
	t, ok := c.cfg.Targets[node]
	if !ok {
		return t, fmt.Errorf("%s: node %q: %w", c.cfg.Name, node, ErrUnknownTarget)
	}
	return t, nil
}

// Off implements Executor.
func (c *Chassis) Off(ctx context.Context, node string) error {
	t, err := c.target(node)
	if err != nil {
		return err
	}
	if err := ipmi.ChassisControl(ctx, c.cfg.Conn, t.Addr, ipmi.ChassisPowerDown); err != nil {
		return ipmiErr("Chassis Control power down", t, err)
	}
	return nil
}

// On implements Executor.
func (c *Chassis) On(ctx context.Context, node string) error {
	t, err := c.target(node)
	if err != nil {
		return err
	}
	if err := ipmi.ChassisControl(ctx, c.cfg.Conn, t.Addr, ipmi.ChassisPowerUp); err != nil {
		return ipmiErr("Chassis Control power up", t, err)
	}
	return nil
}

// Status implements Executor.
func (c *Chassis) Status(ctx context.Context, node string) (PowerStatus, error) {
	t, err := c.target(node)
	if err != nil {
		return PowerUnknown, err
	}
	s, err := ipmi.GetChassisStatus(ctx, c.cfg.Conn, t.Addr)
	if err != nil {
		return PowerUnknown, ipmiErr("Get Chassis Status", t, err)
	}
	if s.PowerOn {
		return PowerOn, nil
	}
	return PowerOff, nil
}
