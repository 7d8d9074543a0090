package fencing

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"hpiagent/shelf/ipmi"
)

const topologyYAML = `
levels:
  - name: shelf-power
    attempts: 2
    confirm_timeout: 5s
    executors:
      - type: picmg-power-level
  - name: isolate
    executors:
      - type: chassis
      - type: fabric
        switch: fab-a
nodes:
  node-a:
    entity: "{SYSTEM_CHASSIS,1}{PHYSICAL_SLOT,3}"
    shelf: shelf-1
    ipmb: 0x9a
    fabric_ports: {fab-a: [3, 4]}
  node-b:
    shelf: shelf-2
    ipmb: 0x82
    chassis_ipmb: 0x84
    fabric_ports: {fab-a: [7]}
`

type nopConn struct{ name string }

func (nopConn) Exchange(context.Context, ipmi.Addr, ipmi.Request) (ipmi.Response, error) {
	return ipmi.Response{}, errors.New("not connected")
}
func (nopConn) Close() error { return nil }

func testResources() Resources {
	return Resources{
		Conn: func(shelf string) (ipmi.Conn, error) {
			if shelf == "missing" {
				return nil, errors.New("no such shelf")
			}
			return nopConn{shelf}, nil
		},
		HotSwapSensor: func(shelf string, ipmb, fru uint8) (uint8, bool) { return 7, ipmb == 0x9a },
		Switch: func(name string) (FabricConfig, error) {
			return FabricConfig{Address: "127.0.0.1:16100", User: "u", AuthPassphrase: "authpass1", PrivPassphrase: "privpass1"}, nil
		},
	}
}

func TestBuildTopology(t *testing.T) {
	var cfg TopologyConfig
	dec := yaml.NewDecoder(strings.NewReader(topologyYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	levels, nodes, err := Build(cfg, testResources())
	if err != nil {
		t.Fatal(err)
	}
	if len(levels) != 2 || levels[0].Attempts != 2 || levels[1].Attempts != 1 || len(levels[1].Executors) != 2 || levels[0].Confirm.Timeout != 5*time.Second {
		t.Fatalf("levels %+v", levels)
	}
	if len(nodes) != 2 || len(nodes["node-a"].Entity) != 2 || len(nodes["node-b"].Entity) != 0 {
		t.Fatalf("nodes %+v", nodes)
	}
	// Each node is routed to its own shelf's executor with its own address.
	ch := levels[1].Executors[0].(*multi)
	if got := ch.byNode["node-b"].(*Chassis).cfg.Targets["node-b"].Addr.Slave; got != 0x84 {
		t.Errorf("chassis address of node-b 0x%02x", got)
	}
	if ch.byNode["node-a"] == ch.byNode["node-b"] {
		t.Error("nodes on different shelves share an executor")
	}
	fab := levels[1].Executors[1].(*Fabric)
	if len(fab.cfg.Ports["node-a"]) != 2 || fab.cfg.Ports["node-b"][0] != 7 {
		t.Errorf("fabric ports %v", fab.cfg.Ports)
	}
	if _, err := ch.Status(context.Background(), "node-z"); !errors.Is(err, ErrUnknownTarget) {
		t.Errorf("unknown node: %v", err)
	}

	bad := []struct {
		name string
		mod  func(*TopologyConfig)
		want string
	}{
		{"no levels", func(c *TopologyConfig) { c.Levels = nil }, "no levels"},
		{"no nodes", func(c *TopologyConfig) { c.Nodes = nil }, "no nodes"},
		{"duplicate level", func(c *TopologyConfig) { c.Levels[1].Name = c.Levels[0].Name }, "repeated name"},
		{"unknown type", func(c *TopologyConfig) { c.Levels[0].Executors[0].Type = "ssh" }, "unknown executor type"},
		{"bad entity", func(c *TopologyConfig) { n := c.Nodes["node-a"]; n.Entity = "{BOGUS"; c.Nodes["node-a"] = n }, "entity"},
		{"odd IPMB", func(c *TopologyConfig) { n := c.Nodes["node-a"]; n.IPMB = 0x9b; c.Nodes["node-a"] = n }, "IPMB"},
		{"missing shelf", func(c *TopologyConfig) { n := c.Nodes["node-a"]; n.Shelf = "missing"; c.Nodes["node-a"] = n }, "no such shelf"},
		{"no ports on switch", func(c *TopologyConfig) { n := c.Nodes["node-b"]; n.FabricPorts = nil; c.Nodes["node-b"] = n }, "no ports"},
		{"too many attempts", func(c *TopologyConfig) { c.Levels[0].Attempts = 99 }, "attempts"},
	}
	for _, tc := range bad {
		var c TopologyConfig
		_ = yaml.Unmarshal([]byte(topologyYAML), &c)
		tc.mod(&c)
		if _, _, err := Build(c, testResources()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// The deactivation method's hot-swap sensor may be discovered after the
// topology is built: the executor asks for it each time it needs it and
// refuses the node (so the next level is used) until it is known.
func TestBuildDeactivateLooksUpHotSwapSensorLate(t *testing.T) {
	var c TopologyConfig
	if err := yaml.Unmarshal([]byte(topologyYAML), &c); err != nil {
		t.Fatal(err)
	}
	c.Levels[0].Executors[0].Type = ExecPICMGDeactivate
	res := testResources()
	discovered := map[uint8]bool{0x9a: true} // node-a's FRU is known at build time, node-b's is not
	var asked []string
	res.HotSwapSensor = func(shelf string, ipmb, fru uint8) (uint8, bool) {
		asked = append(asked, shelf)
		return 7, discovered[ipmb]
	}
	levels, _, err := Build(c, res)
	if err != nil {
		t.Fatalf("a FRU whose hot-swap sensor is not discovered yet must not fail the build: %v", err)
	}
	e := levels[0].Executors[0]
	ctx := context.Background()
	// node-a: known, so the executor talks to the shelf (which fails here:
	// the connection is a stub), not ErrUnknownTarget.
	if _, err := e.Status(ctx, "node-a"); err == nil || errors.Is(err, ErrUnknownTarget) {
		t.Errorf("node-a with a known sensor: %v, want a shelf error", err)
	}
	if _, err := e.Status(ctx, "node-b"); !errors.Is(err, ErrUnknownTarget) || !strings.Contains(err.Error(), "no hot-swap sensor known") {
		t.Errorf("node-b before discovery: %v, want ErrUnknownTarget naming the missing sensor", err)
	}
	if err := e.Off(ctx, "node-b"); !errors.Is(err, ErrUnknownTarget) {
		t.Errorf("node-b off before discovery: %v, want ErrUnknownTarget", err)
	}
	discovered[0x82] = true
	if _, err := e.Status(ctx, "node-b"); err == nil || errors.Is(err, ErrUnknownTarget) {
		t.Errorf("node-b after discovery: %v, want a shelf error", err)
	}
	if asked[len(asked)-1] != "shelf-2" {
		t.Errorf("looked up on shelves %v, want node-b's shelf-2 last", asked)
	}
}
