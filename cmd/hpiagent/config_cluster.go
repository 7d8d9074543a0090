package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"time"

	"hpiagent/fencing"
	"hpiagent/internal/pki"
)

// ClusterConfig is the cluster section: the allow-listed nodes, their
// addresses, the gossip keys and this node's peer certificate. Without it
// the agent runs standalone (no fencing, no cluster-wide workflows).
type ClusterConfig struct {
	// Node is this agent's node name. It must be one of Nodes and equal
	// the name in the peer certificate (hpiagent://peer/<node>).
	// Required.
	Node string `yaml:"node"`

	// Nodes is the allow-list of every node that may join, with the
	// addresses every other node reaches it at. Every node of a cluster
	// must have the same list. Required, at least this node.
	Nodes []ClusterNodeConfig `yaml:"nodes"`

	// GossipKeys are the memberlist keyring keys (16, 24 or 32 bytes, AES;
	// the first encrypts, all decrypt) read from systemd credentials, a
	// 0600 file or a prompt, never from this file. Required: there is no
	// unencrypted gossip.
	GossipKeys []SecretRef `yaml:"gossip_keys"`

	// Label is bound into every gossip packet, so clusters sharing a key
	// by mistake still do not mix. Default: hpiagent.
	Label string `yaml:"label"`

	// TLS is this node's peer certificate (hpiagent://peer/<node>), its
	// key (a secret) and the cluster CA. Raft and peer RPC are mutual TLS
	// 1.3 only. Required.
	TLS TLSConfig `yaml:"tls"`

	// DataDir holds the raft log and snapshots. Default:
	// /var/lib/hpiagent/cluster (systemd's StateDirectory=hpiagent); it
	// must survive restarts, or a restarted node forgets fence decisions.
	DataDir string `yaml:"data_dir"`

	// Sources are the failure sources that may start a fence:
	// member-dead, hardware, watchdog. Default: all of them. Operators can
	// always fence.
	Sources []string `yaml:"fence_sources"`
}

// ClusterNodeConfig is one node of the cluster allow-list.
type ClusterNodeConfig struct {
	// Name is the node's name, the name in its peer certificate. Required.
	Name string `yaml:"name"`
	// Gossip is host:port of memberlist (UDP and TCP). Required.
	Gossip string `yaml:"gossip"`
	// Raft is host:port of the raft transport (mutual TLS). Required for
	// voters.
	Raft string `yaml:"raft"`
	// RPC is host:port of the peer RPC server (mutual TLS); the cluster
	// also dials it to bind a gossip member to its certificate. Required.
	RPC string `yaml:"rpc"`
	// NonVoter makes the node a member that does not count for quorum.
	// Default: false, every listed node votes, because a blade cluster is
	// small and every blade should count.
	NonVoter bool `yaml:"non_voter"`
}

// FencingConfig is the fencing section: the fencing topology in order
// (like Pacemaker's) and, per cluster node, where its blade is. It needs
// the cluster section: fences are decided through the cluster's log.
type FencingConfig struct {
	// Levels are tried in order; each level's executors must all succeed
	// (types picmg-power-level: PICMG Set Power Level 0 through the shelf
	// manager; chassis: IPMI chassis power of the blade's controller).
	// Required, at least one.
	Levels []fencing.LevelConfig `yaml:"levels"`

	// Nodes maps cluster node names to their blade: shelf (a name of
	// shelves[]), ipmb, fru, chassis_ipmb, entity. Required: a node
	// without an entry is never fenced.
	Nodes map[string]fencing.NodeHardware `yaml:"nodes"`
}

// WatchdogConfig is the watchdog section: which watchdogs are fed while
// the agent is healthy and in quorum.
type WatchdogConfig struct {
	// Devices are fed together. Required, at least one.
	Devices []WatchdogDeviceConfig `yaml:"devices"`

	// SelfFenceAfter is how long the node may be without quorum before it
	// stops feeding for good and lets the watchdogs reset it. Default:
	// 15s, well above a raft election on the majority side, so healthy
	// members never reset themselves when a leader fails.
	SelfFenceAfter Duration `yaml:"self_fence_after"`

	// Interval is the time between feeds. Default: 5s, a third or less of
	// every device's timeout.
	Interval Duration `yaml:"interval"`
}

// WatchdogDeviceConfig is one watchdog device.
type WatchdogDeviceConfig struct {
	// Type is dev (a kernel watchdog device such as /dev/watchdog) or
	// systemd (the service watchdog, WatchdogSec=). Required.
	Type string `yaml:"type"`
	// Path is the kernel device (dev only). Default: /dev/watchdog.
	Path string `yaml:"path"`
	// Timeout is set on the device (dev only, whole seconds). Default:
	// the driver's own (softdog: 60 s).
	Timeout Duration `yaml:"timeout"`
}

// Defaults of the cluster sections.
const (
	DefaultClusterDataDir   = "/var/lib/hpiagent/cluster"
	DefaultSelfFenceAfter   = 15 * time.Second
	DefaultWatchdogInterval = 5 * time.Second
)

// validateCluster checks the cluster, fencing and watchdog sections and
// applies their defaults. Fencing and watchdog self-fencing need a
// cluster.
func (c *Config) validateCluster() error {
	if c.Cluster == nil {
		if c.Fencing != nil {
			return c.errAt("fencing", "needs a cluster section: fences are decided through the cluster's log")
		}
		if c.Watchdog != nil {
			if err := c.validateWatchdog(); err != nil {
				return err
			}
		}
		return nil
	}
	cl := c.Cluster
	if err := pki.ValidName(cl.Node); err != nil {
		return c.errAt("cluster.node", "%q is not a node name: %v", cl.Node, err)
	}
	if len(cl.Nodes) == 0 {
		return c.errAt("cluster.nodes", "required: list every node of the cluster, this one included")
	}
	seen := map[string]int{}
	addrs := map[string]string{}
	self := false
	voters := 0
	for i, n := range cl.Nodes {
		k := fmt.Sprintf("cluster.nodes[%d]", i)
		if err := pki.ValidName(n.Name); err != nil {
			return c.errAt(k+".name", "%q is not a node name: %v", n.Name, err)
		}
		if j, dup := seen[n.Name]; dup {
			return c.errAt(k+".name", "%q is listed twice (first as cluster.nodes[%d])", n.Name, j)
		}
		seen[n.Name] = i
		if n.Name == cl.Node {
			self = true
		}
		for _, a := range []struct{ key, v string }{{"gossip", n.Gossip}, {"raft", n.Raft}, {"rpc", n.RPC}} {
			if a.v == "" {
				if a.key == "raft" && n.NonVoter {
					continue
				}
				return c.errAt(k+"."+a.key, "required: host:port")
			}
			if err := checkHostPort(a.v); err != nil {
				return c.errAt(k+"."+a.key, "%v", err)
			}
			if prev, dup := addrs[a.key+"/"+a.v]; dup {
				return c.errAt(k+"."+a.key, "%s is also the %s address of %s", a.v, a.key, prev)
			}
			addrs[a.key+"/"+a.v] = n.Name
		}
		if !n.NonVoter {
			voters++
		}
	}
	if !self {
		return c.errAt("cluster.node", "%q is not one of cluster.nodes", cl.Node)
	}
	if voters == 0 {
		return c.errAt("cluster.nodes", "no voter: at least one node must not be non_voter")
	}
	if len(cl.GossipKeys) == 0 {
		return c.errAt("cluster.gossip_keys", "required: at least one key (there is no unencrypted gossip)")
	}
	for i, r := range cl.GossipKeys {
		if err := c.checkRef(fmt.Sprintf("cluster.gossip_keys[%d]", i), r, true); err != nil {
			return err
		}
	}
	if cl.Label == "" {
		cl.Label = "hpiagent"
	}
	if cl.TLS.Cert == "" {
		return c.errAt("cluster.tls.cert", "required: the node's peer certificate")
	}
	if cl.TLS.CA == "" {
		return c.errAt("cluster.tls.ca", "required: the cluster CA")
	}
	if err := c.checkRef("cluster.tls.key", cl.TLS.Key, true); err != nil {
		return err
	}
	if cl.DataDir == "" {
		cl.DataDir = DefaultClusterDataDir
	}
	for i, s := range cl.Sources {
		switch fencing.Source(s) {
		case fencing.SourceMemberDead, fencing.SourceHardware, fencing.SourceWatchdog:
		default:
			return c.errAt(fmt.Sprintf("cluster.fence_sources[%d]", i), "%q is not one of member-dead, hardware, watchdog", s)
		}
	}
	if c.Fencing != nil {
		if err := c.validateFencing(seen); err != nil {
			return err
		}
	}
	if c.Watchdog != nil {
		if err := c.validateWatchdog(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateFencing(nodes map[string]int) error {
	f := c.Fencing
	if len(f.Levels) == 0 {
		return c.errAt("fencing.levels", "required: at least one level")
	}
	for i, l := range f.Levels {
		k := fmt.Sprintf("fencing.levels[%d]", i)
		if l.Name == "" {
			return c.errAt(k+".name", "required")
		}
		if l.Attempts < 0 || l.Attempts > fencing.MaxAttempts {
			return c.errAt(k+".attempts", "%d is outside 0..%d", l.Attempts, fencing.MaxAttempts)
		}
		if len(l.Executors) == 0 {
			return c.errAt(k+".executors", "required: at least one executor")
		}
		for j, e := range l.Executors {
			switch e.Type {
			case fencing.ExecPICMGPowerLevel, fencing.ExecChassis:
			case fencing.ExecPICMGDeactivate:
				// The deactivation method reads the FRU's hot-swap sensor
				// back, whose number only discovery knows, and the topology
				// is built at start, before the first discovery.
				return c.errAt(fmt.Sprintf("%s.executors[%d].type", k, j), "picmg-deactivate is not available in this version (it needs the discovered hot-swap sensor at start); use picmg-power-level or chassis")
			case fencing.ExecFabric:
				return c.errAt(fmt.Sprintf("%s.executors[%d].type", k, j), "fabric executors are not configurable in this version")
			default:
				return c.errAt(fmt.Sprintf("%s.executors[%d].type", k, j), "%q is not one of picmg-power-level, chassis", e.Type)
			}
		}
	}
	if len(f.Levels) > fencing.MaxLevels {
		return c.errAt("fencing.levels", "%d levels, at most %d", len(f.Levels), fencing.MaxLevels)
	}
	shelves := map[string]bool{}
	for _, s := range c.Shelves {
		shelves[s.Name] = true
	}
	for name, hw := range f.Nodes {
		k := fmt.Sprintf("fencing.nodes[%q]", name)
		if _, ok := nodes[name]; !ok {
			return c.errAt(k, "%q is not one of cluster.nodes", name)
		}
		if !shelves[hw.Shelf] {
			return c.errAt(k+".shelf", "%q is not the name of a shelf in shelves", hw.Shelf)
		}
		if hw.IPMB == 0 || hw.IPMB&1 != 0 {
			return c.errAt(k+".ipmb", "%#x is not an IPMB slave address (even, not 0)", hw.IPMB)
		}
		if hw.ChassisIPMB&1 != 0 {
			return c.errAt(k+".chassis_ipmb", "%#x is not an IPMB slave address (even)", hw.ChassisIPMB)
		}
	}
	return nil
}

func (c *Config) validateWatchdog() error {
	w := c.Watchdog
	if len(w.Devices) == 0 {
		return c.errAt("watchdog.devices", "required: at least one device (dev or systemd)")
	}
	for i, d := range w.Devices {
		k := fmt.Sprintf("watchdog.devices[%d]", i)
		switch d.Type {
		case "dev":
			if d.Timeout < 0 || time.Duration(d.Timeout)%time.Second != 0 {
				return c.errAt(k+".timeout", "%s is not a whole number of seconds", time.Duration(d.Timeout))
			}
		case "systemd":
			if d.Path != "" || d.Timeout != 0 {
				return c.errAt(k, "path and timeout apply to type dev only")
			}
		default:
			return c.errAt(k+".type", "%q is not one of dev, systemd", d.Type)
		}
	}
	if w.SelfFenceAfter == 0 {
		w.SelfFenceAfter = Duration(DefaultSelfFenceAfter)
	} else if time.Duration(w.SelfFenceAfter) < 3*time.Second {
		return c.errAt("watchdog.self_fence_after", "%s is below 3s, shorter than a raft election on the majority side", time.Duration(w.SelfFenceAfter))
	}
	if w.Interval == 0 {
		w.Interval = Duration(DefaultWatchdogInterval)
	} else if time.Duration(w.Interval) < 100*time.Millisecond {
		return c.errAt("watchdog.interval", "%s is below 100ms", time.Duration(w.Interval))
	}
	for i, d := range w.Devices {
		if d.Type == "dev" && d.Timeout != 0 && time.Duration(d.Timeout) < 3*time.Duration(w.Interval) {
			return c.errAt(fmt.Sprintf("watchdog.devices[%d].timeout", i), "%s is under three feeding intervals (%s)", time.Duration(d.Timeout), time.Duration(w.Interval))
		}
	}
	return nil
}

func checkHostPort(s string) error {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", s, err)
	}
	if h == "" {
		return fmt.Errorf("%q has no host: a node's address must be one the others can reach", s)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not 1..65535", s, p)
	}
	return nil
}

// OwnsSystemdWatchdog reports whether the watchdog section feeds systemd's
// service watchdog. Then nothing else may send WATCHDOG=1: a second feeder
// would keep a node that decided to self-fence alive.
func (c *Config) OwnsSystemdWatchdog() bool {
	if c.Watchdog == nil {
		return false
	}
	for _, d := range c.Watchdog.Devices {
		if d.Type == "systemd" {
			return true
		}
	}
	return false
}

// SameClusterSections reports whether a and b have the same cluster,
// fencing and watchdog sections (where secrets come from, not what the
// secrets are; positions in the file do not count). The running node is
// built from them once, so a reload that changes them needs a restart.
func SameClusterSections(a, b *Config) bool {
	enc := func(c *Config) []byte {
		j, err := json.Marshal(struct {
			C *ClusterConfig
			F *FencingConfig
			W *WatchdogConfig
			H *HotSwapConfig
		}{c.Cluster, c.Fencing, c.Watchdog, c.HotSwap})
		if err != nil { // not reachable: plain data
			return nil
		}
		return j
	}
	ja, jb := enc(a), enc(b)
	return ja != nil && jb != nil && bytes.Equal(ja, jb)
}
