package fencing

import (
	"context"
	"fmt"
	"sort"
	"time"

	"hpiagent/hpi"
	"hpiagent/shelf/ipmi"
)

// Executor types in the topology configuration.
const (
	ExecPICMGPowerLevel = "picmg-power-level"
	ExecPICMGDeactivate = "picmg-deactivate"
	ExecChassis         = "chassis"
	ExecFabric          = "fabric"
)

// TopologyConfig is the fencing section of the daemon configuration: the
// levels in order (like Pacemaker's fencing topology) and, per cluster
// node, where its hardware is. Nothing in it is taken from a particular
// shelf: addresses, FRUs and sensor numbers come from configuration or
// discovery.
type TopologyConfig struct {
	// Levels are tried in order; each level's executors must all succeed.
	Levels []LevelConfig `yaml:"levels"`
	// Nodes maps cluster node names to their hardware.
	Nodes map[string]NodeHardware `yaml:"nodes"`
}

// LevelConfig is one level of the topology.
type LevelConfig struct {
	// Name identifies the level in logs and the audit trail. Required.
	Name string `yaml:"name"`
	// Attempts before the next level is used. Default 1.
	Attempts int `yaml:"attempts"`
	// ConfirmTimeout bounds the read-back of each executor. Default 15 s
	// (see ConfirmConfig.Timeout).
	ConfirmTimeout time.Duration `yaml:"confirm_timeout"`
	// Executors of the level. Required.
	Executors []ExecutorConfig `yaml:"executors"`
}

// ExecutorConfig is one executor of a level.
type ExecutorConfig struct {
	// Type is picmg-power-level, picmg-deactivate, chassis or fabric.
	Type string `yaml:"type"`
	// Switch names the fabric switch (fabric only): its SNMP settings
	// come from Resources.Switch and each node's ports from
	// NodeHardware.FabricPorts[Switch].
	Switch string `yaml:"switch"`
}

// NodeHardware says where a node's blade is.
type NodeHardware struct {
	// Entity is the blade's HPI entity path ("{SYSTEM_CHASSIS,1}{PHYSICAL_SLOT,3}"
	// or whatever discovery reports); failures of it fence the node.
	Entity string `yaml:"entity"`
	// Shelf names the shelf manager session (picmg, chassis executors).
	Shelf string `yaml:"shelf"`
	// IPMB is the blade IPMC's IPMB-0 address and FRU its FRU device ID.
	IPMB uint8 `yaml:"ipmb"`
	FRU  uint8 `yaml:"fru"`
	// ChassisIPMB is the controller with the chassis commands; default
	// IPMB (0 is not allowed: the shelf manager itself is never powered
	// down by a fence).
	ChassisIPMB uint8 `yaml:"chassis_ipmb"`
	// FabricPorts maps switch names to the node's ifIndex values.
	FabricPorts map[string][]int `yaml:"fabric_ports"`
}

// Resources are what Build needs from the running daemon.
type Resources struct {
	// Conn returns the session to the named shelf manager.
	Conn func(shelf string) (ipmi.Conn, error)
	// HotSwapSensor returns the discovered hot-swap sensor of a FRU
	// (picmg-deactivate needs it); ok false when discovery has not seen
	// one (yet): it is asked again whenever a fence needs the number.
	HotSwapSensor func(shelf string, ipmb, fru uint8) (num uint8, ok bool)
	// Switch returns the SNMP settings (with secrets) of a fabric switch,
	// without Ports (Build fills them in).
	Switch func(name string) (FabricConfig, error)
}

// Build validates the topology and constructs the levels and node map for
// a Coordinator.
func Build(cfg TopologyConfig, res Resources) ([]Level, map[string]NodeConfig, error) {
	if len(cfg.Levels) == 0 {
		return nil, nil, fmt.Errorf("fencing topology: no levels")
	}
	if len(cfg.Nodes) == 0 {
		return nil, nil, fmt.Errorf("fencing topology: no nodes")
	}
	nodes := make(map[string]NodeConfig, len(cfg.Nodes))
	names := make([]string, 0, len(cfg.Nodes))
	for name, n := range cfg.Nodes {
		if name == "" {
			return nil, nil, fmt.Errorf("fencing topology: empty node name")
		}
		var nc NodeConfig
		if n.Entity != "" {
			ep, err := hpi.ParseEntityPath(n.Entity)
			if err != nil {
				return nil, nil, fmt.Errorf("fencing topology: node %q entity %q: %w", name, n.Entity, err)
			}
			nc.Entity = ep
		}
		nodes[name] = nc
		names = append(names, name)
	}
	sort.Strings(names)
	seen := map[string]bool{}
	var levels []Level
	for i, lc := range cfg.Levels {
		if lc.Name == "" || seen[lc.Name] {
			return nil, nil, fmt.Errorf("fencing topology: level %d: missing or repeated name %q", i, lc.Name)
		}
		seen[lc.Name] = true
		if len(lc.Executors) == 0 {
			return nil, nil, fmt.Errorf("fencing topology: level %q has no executors", lc.Name)
		}
		if lc.Attempts < 0 || lc.Attempts > MaxAttempts {
			return nil, nil, fmt.Errorf("fencing topology: level %q: attempts %d (0..%d)", lc.Name, lc.Attempts, MaxAttempts)
		}
		l := Level{Name: lc.Name, Attempts: max(lc.Attempts, 1), Confirm: ConfirmConfig{Timeout: lc.ConfirmTimeout}}
		for j, ec := range lc.Executors {
			e, err := buildExecutor(lc.Name, j, ec, cfg.Nodes, names, res)
			if err != nil {
				return nil, nil, err
			}
			l.Executors = append(l.Executors, e)
		}
		levels = append(levels, l)
	}
	return levels, nodes, nil
}

// buildExecutor makes one executor per shelf (PICMG, chassis) or switch.
// A level executor serving nodes on several shelves is a multiShelf.
func buildExecutor(level string, j int, ec ExecutorConfig, hw map[string]NodeHardware, names []string, res Resources) (Executor, error) {
	where := fmt.Sprintf("fencing topology: level %q executor %d (%s)", level, j, ec.Type)
	switch ec.Type {
	case ExecPICMGPowerLevel, ExecPICMGDeactivate, ExecChassis:
		if res.Conn == nil {
			return nil, fmt.Errorf("%s: no shelf sessions available", where)
		}
		byShelf := map[string]map[string]FRUTarget{}
		for _, name := range names {
			n := hw[name]
			if n.Shelf == "" || n.IPMB == 0 || n.IPMB&1 != 0 {
				return nil, fmt.Errorf("%s: node %q needs a shelf and an even, non-zero IPMB address", where, name)
			}
			t := FRUTarget{Addr: ipmi.Addr{Slave: n.IPMB}, FRU: n.FRU}
			switch ec.Type {
			case ExecPICMGDeactivate:
				if res.HotSwapSensor == nil {
					return nil, fmt.Errorf("%s: no hot-swap sensor discovery available", where)
				}
				// Known now or looked up when a fence needs it (discovery
				// may not have run yet).
				t.HotSwapSensor, t.HasHotSwapSensor = res.HotSwapSensor(n.Shelf, n.IPMB, n.FRU)
			case ExecChassis:
				if n.ChassisIPMB != 0 {
					if n.ChassisIPMB&1 != 0 {
						return nil, fmt.Errorf("%s: node %q: odd chassis IPMB address", where, name)
					}
					t.Addr = ipmi.Addr{Slave: n.ChassisIPMB}
				}
			}
			if byShelf[n.Shelf] == nil {
				byShelf[n.Shelf] = map[string]FRUTarget{}
			}
			byShelf[n.Shelf][name] = t
		}
		m := &multi{name: ec.Type, byNode: map[string]Executor{}}
		for shelf, targets := range byShelf {
			conn, err := res.Conn(shelf)
			if err != nil {
				return nil, fmt.Errorf("%s: shelf %q: %w", where, shelf, err)
			}
			var e Executor
			if ec.Type == ExecChassis {
				e, err = NewChassis(ChassisConfig{Name: "chassis@" + shelf, Conn: conn, Targets: targets})
			} else {
				method := PICMGPowerLevel
				if ec.Type == ExecPICMGDeactivate {
					method = PICMGDeactivate
				}
				pc := PICMGConfig{Name: ec.Type + "@" + shelf, Conn: conn, Method: method, Targets: targets}
				if method == PICMGDeactivate {
					shelf := shelf
					pc.HotSwapSensor = func(a ipmi.Addr, fru uint8) (uint8, bool) { return res.HotSwapSensor(shelf, a.Slave, fru) }
				}
				e, err = NewPICMG(pc)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			for n := range targets {
				m.byNode[n] = e
			}
		}
		return m, nil
	case ExecFabric:
		if ec.Switch == "" || res.Switch == nil {
			return nil, fmt.Errorf("%s: needs a switch name and switch settings", where)
		}
		fc, err := res.Switch(ec.Switch)
		if err != nil {
			return nil, fmt.Errorf("%s: switch %q: %w", where, ec.Switch, err)
		}
		fc.Ports = map[string][]int{}
		for _, name := range names {
			ports := hw[name].FabricPorts[ec.Switch]
			if len(ports) == 0 {
				return nil, fmt.Errorf("%s: node %q has no ports on switch %q", where, name, ec.Switch)
			}
			for _, p := range ports {
				if p <= 0 {
					return nil, fmt.Errorf("%s: node %q: ifIndex %d", where, name, p)
				}
			}
			fc.Ports[name] = ports
		}
		if fc.Name == "" {
			fc.Name = "fabric@" + ec.Switch
		}
		return NewFabric(fc)
	}
	return nil, fmt.Errorf("%s: unknown executor type (want %s, %s, %s or %s)", where, ExecPICMGPowerLevel, ExecPICMGDeactivate, ExecChassis, ExecFabric)
}

// multi dispatches to the executor of the node's shelf.
type multi struct {
	name   string
	byNode map[string]Executor
}

func (m *multi) Name() string { return m.name }

func (m *multi) pick(node string) (Executor, error) {
	e, ok := m.byNode[node]
	if !ok {
		return nil, fmt.Errorf("%s: node %q: %w", m.name, node, ErrUnknownTarget)
	}
	return e, nil
}

func (m *multi) Off(ctx context.Context, node string) error {
	e, err := m.pick(node)
	if err != nil {
		return err
	}
	return e.Off(ctx, node)
}

func (m *multi) On(ctx context.Context, node string) error {
	e, err := m.pick(node)
	if err != nil {
		return err
	}
	return e.On(ctx, node)
}

func (m *multi) Status(ctx context.Context, node string) (PowerStatus, error) {
	e, err := m.pick(node)
	if err != nil {
		return PowerUnknown, err
	}
	return e.Status(ctx, node)
}
