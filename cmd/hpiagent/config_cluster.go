package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
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

	// GossipKeys are the memberlist keyring keys (AES keys of 16, 24 or
	// 32 bytes, each secret holding its standard base64 encoding, as from
	// `openssl rand -base64 32`; the first encrypts, all decrypt) read
	// from systemd credentials, a 0600 file or a prompt, never from this
	// file. Required: there is no unencrypted gossip.
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
	// manager; picmg-deactivate: Set FRU Activation (deactivate), read
	// back from the FRU's hot-swap sensor as discovery found it; chassis:
	// IPMI chassis power of the blade's controller; fabric: the node's
	// switch ports set down over SNMPv3, with switch naming one of
	// switches). Required, at least one.
	Levels []fencing.LevelConfig `yaml:"levels"`

	// Nodes maps cluster node names to their blade: shelf (a name of
	// shelves[]), ipmb, fru, chassis_ipmb, entity, and fabric_ports (switch
	// name to ifIndex list) for fabric levels. Required: a node without an
	// entry is never fenced.
	Nodes map[string]fencing.NodeHardware `yaml:"nodes"`

	// Switches are the fabric switches that fabric executors set ports
	// down on. Required when a level has a fabric executor.
	Switches []FabricSwitchConfig `yaml:"switches"`
}

// FabricSwitchConfig is one fabric switch reached over SNMPv3 authPriv
// (there is no v1/v2c: a community string is a password sent in clear,
// and a forged or replayed SET would cut a healthy blade off).
type FabricSwitchConfig struct {
	// Name is what fabric executors and nodes' fabric_ports call the
	// switch. Required, unique.
	Name string `yaml:"name"`
	// Address is the switch's SNMP agent, host:port (161 on most
	// switches). Required.
	Address string `yaml:"address"`
	// User is the SNMPv3 user with write access to IF-MIB ifAdminStatus.
	// Required.
	User string `yaml:"user"`
	// AuthProtocol is SHA, SHA-256 or SHA-512. Default: SHA, what every
	// switch offers; use SHA-2 where the switch has it.
	AuthProtocol string `yaml:"auth_protocol"`
	// AuthPassphrase and PrivPassphrase are secrets (systemd credential,
	// 0600 file or prompt), at least 8 bytes (RFC 3414). Required.
	AuthPassphrase SecretRef `yaml:"auth_passphrase"`
	// PrivProtocol is AES or AES-256. Default: AES (AES-128, what every
	// switch offers).
	PrivProtocol   string    `yaml:"priv_protocol"`
	PrivPassphrase SecretRef `yaml:"priv_passphrase"`
	// Timeout is how long one SNMP request waits for its answer. Default:
	// 2s; a request is sent up to 3 times (SETs of ifAdminStatus are
	// idempotent), within the level's confirm_timeout.
	Timeout Duration `yaml:"timeout"`
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
	// Type is dev (a kernel watchdog device such as /dev/watchdog),
	// systemd (the service watchdog, WatchdogSec=) or ipmi (the IPMI
	// watchdog timer of this blade's own controller, its IPMC or BMC,
	// which resets the blade from outside the host: it still acts when
	// the kernel hangs). Required.
	Type string `yaml:"type"`
	// Path is the kernel device (dev only). Default: /dev/watchdog.
	Path string `yaml:"path"`
	// Timeout is the countdown set on the device. dev: whole seconds;
	// default the driver's own (softdog: 60 s). ipmi: whole 100 ms units
	// (the timer's resolution), at most 6553.5s; default 60s, several
	// feeding intervals and longer than a slow health check, so only a
	// real hang or a deliberate stop lets it expire. Either way at least
	// three feeding intervals (interval), so one late or lost feed never
	// resets a healthy blade.
	Timeout Duration `yaml:"timeout"`

	// Device is the OpenIPMI device through which the local controller
	// is reached (ipmi only). Default: /dev/ipmi0, the normal case on a
	// blade whose IPMC or BMC the kernel's ipmi_si/ipmi_devintf drivers
	// serve. Not with shelf.
	Device string `yaml:"device"`
	// Shelf names a shelf of shelves whose RMCP+ session reaches the
	// controller (ipmi only), for a blade without a local IPMI driver.
	// The daemon's session to that shelf manager is used (it is
	// reconnected when lost; no second session is opened), so the
	// shelf's user needs operator privilege. Feeds then depend on the
	// shelf manager: timeout must be longer than a shelf manager
	// restart or failover, or an outage of it resets the blade.
	// Default: none (device is used). Needs ipmb.
	Shelf string `yaml:"shelf"`
	// IPMB is the IPMB-0 address of this blade's IPMC behind shelf
	// (e.g. 0x82 in slot 1 of an ATCA shelf), reached by bridging.
	// 0x20 addresses the controller at the end of the session itself,
	// without bridging: only right when that controller is this
	// machine's own BMC reached over LAN (on an ATCA shelf, 0x20 is the
	// shelf manager, whose watchdog would reset the shelf manager, not
	// this blade). Required with shelf, not allowed without it.
	IPMB uint8 `yaml:"ipmb"`
	// Action is what the controller does when the countdown expires
	// (ipmi only): hard-reset, power-down or power-cycle. Default:
	// hard-reset, enough to stop the node's services and the quickest
	// way back into the cluster; power-down keeps the blade off until an
	// operator powers it on.
	Action string `yaml:"action"`
	// PreTimeout is the interrupt the controller raises pre_timeout_interval
	// before the countdown expires (ipmi only): none, smi, nmi or
	// msg-interrupt. Default: none. nmi lets a kernel with
	// panic-on-NMI (kdump) write a crash dump of a hung node before the
	// reset.
	PreTimeout string `yaml:"pre_timeout"`
	// PreTimeoutInterval is how long before expiry the pre-timeout
	// interrupt fires (ipmi only, with pre_timeout): whole seconds, at
	// least 1s, at most 255s, and the countdown up to the interrupt
	// (timeout minus this) at least three feeding intervals, so a
	// healthy node never gets the interrupt. Default: none, required
	// with pre_timeout.
	PreTimeoutInterval Duration `yaml:"pre_timeout_interval"`
}

// Defaults and limits of the ipmi watchdog device.
const (
	DefaultIPMIWatchdogDevice  = "/dev/ipmi0"
	DefaultIPMIWatchdogTimeout = 60 * time.Second
	DefaultIPMIWatchdogAction  = "hard-reset"
	maxIPMIWatchdogTimeout     = 6553500 * time.Millisecond
	maxIPMIPreTimeoutInterval  = 255 * time.Second
)

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
	switches := map[string]int{}
	for i := range f.Switches {
		if err := c.validateSwitch(i, switches); err != nil {
			return err
		}
	}
	usedSwitch := map[string]bool{}
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
			ek := fmt.Sprintf("%s.executors[%d]", k, j)
			switch e.Type {
			case fencing.ExecPICMGPowerLevel, fencing.ExecChassis, fencing.ExecPICMGDeactivate:
				if e.Switch != "" {
					return c.errAt(ek+".switch", "applies to type fabric only")
				}
			case fencing.ExecFabric:
				if e.Switch == "" {
					return c.errAt(ek+".switch", "required: the name of one of fencing.switches")
				}
				if _, ok := switches[e.Switch]; !ok {
					return c.errAt(ek+".switch", "%q is not the name of one of fencing.switches", e.Switch)
				}
				usedSwitch[e.Switch] = true
			default:
				return c.errAt(ek+".type", "%q is not one of picmg-power-level, picmg-deactivate, chassis, fabric", e.Type)
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
		for sw, ports := range hw.FabricPorts {
			if _, ok := switches[sw]; !ok {
				return c.errAt(k+".fabric_ports", "%q is not the name of one of fencing.switches", sw)
			}
			for _, p := range ports {
				if p <= 0 || p > 2147483647 {
					return c.errAt(k+".fabric_ports", "switch %s: %d is not an ifIndex (1..2147483647)", sw, p)
				}
			}
		}
		for sw := range usedSwitch {
			if len(hw.FabricPorts[sw]) == 0 {
				return c.errAt(k+".fabric_ports", "no ports on switch %s, which a fabric level uses: the node could not be isolated there", sw)
			}
		}
	}
	for i, sw := range f.Switches {
		if !usedSwitch[sw.Name] {
			return c.errAt(fmt.Sprintf("fencing.switches[%d]", i), "switch %q is not used by any fabric executor", sw.Name)
		}
	}
	return nil
}

func (c *Config) validateSwitch(i int, seen map[string]int) error {
	sw := &c.Fencing.Switches[i]
	k := fmt.Sprintf("fencing.switches[%d]", i)
	if err := pki.ValidName(sw.Name); err != nil {
		return c.errAt(k+".name", "%q is not a switch name: %v", sw.Name, err)
	}
	if j, dup := seen[sw.Name]; dup {
		return c.errAt(k+".name", "%q is also the name of fencing.switches[%d]", sw.Name, j)
	}
	seen[sw.Name] = i
	if sw.Address == "" {
		return c.errAt(k+".address", "required: host:port of the switch's SNMP agent")
	}
	if err := checkHostPort(sw.Address); err != nil {
		return c.errAt(k+".address", "%v", err)
	}
	if sw.User == "" {
		return c.errAt(k+".user", "required: the SNMPv3 user with write access to ifAdminStatus")
	}
	switch sw.AuthProtocol {
	case "":
		sw.AuthProtocol = fencing.AuthSHA
	case fencing.AuthSHA, fencing.AuthSHA256, fencing.AuthSHA512:
	default:
		return c.errAt(k+".auth_protocol", "%q is not one of SHA, SHA-256, SHA-512 (MD5 is not accepted)", sw.AuthProtocol)
	}
	switch sw.PrivProtocol {
	case "":
		sw.PrivProtocol = fencing.PrivAES
	case fencing.PrivAES, fencing.PrivAES256:
	default:
		return c.errAt(k+".priv_protocol", "%q is not one of AES, AES-256 (DES is not accepted)", sw.PrivProtocol)
	}
	if err := c.checkRef(k+".auth_passphrase", sw.AuthPassphrase, true); err != nil {
		return err
	}
	if err := c.checkRef(k+".priv_passphrase", sw.PrivPassphrase, true); err != nil {
		return err
	}
	if sw.Timeout < 0 {
		return c.errAt(k+".timeout", "%s is negative", time.Duration(sw.Timeout))
	}
	if sw.Timeout == 0 {
		sw.Timeout = Duration(2 * time.Second)
	}
	return nil
}

func (c *Config) validateWatchdog() error {
	w := c.Watchdog
	if len(w.Devices) == 0 {
		return c.errAt("watchdog.devices", "required: at least one device (dev, systemd or ipmi)")
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
	interval := time.Duration(w.Interval)
	controllers := map[string]int{} // the controllers of ipmi devices, to refuse two feeders of one timer
	for i := range w.Devices {
		d := &w.Devices[i]
		k := fmt.Sprintf("watchdog.devices[%d]", i)
		switch d.Type {
		case "dev", "systemd":
			if d.Device != "" || d.Shelf != "" || d.IPMB != 0 || d.Action != "" || d.PreTimeout != "" || d.PreTimeoutInterval != 0 {
				return c.errAt(k, "device, shelf, ipmb, action, pre_timeout and pre_timeout_interval apply to type ipmi only")
			}
		}
		switch d.Type {
		case "dev":
			if d.Timeout < 0 || time.Duration(d.Timeout)%time.Second != 0 {
				return c.errAt(k+".timeout", "%s is not a whole number of seconds", time.Duration(d.Timeout))
			}
		case "systemd":
			if d.Path != "" || d.Timeout != 0 {
				return c.errAt(k, "path and timeout apply to types dev and ipmi only")
			}
		case "ipmi":
			if err := c.validateIPMIWatchdog(k, d, interval); err != nil {
				return err
			}
			where := "device " + d.Device
			if d.Shelf != "" {
				where = fmt.Sprintf("shelf %s IPMB %#x", d.Shelf, d.IPMB)
			}
			if j, dup := controllers[where]; dup {
				return c.errAt(k, "the same controller (%s) as watchdog.devices[%d]: one timer fed with two settings", where, j)
			}
			controllers[where] = i
		default:
			return c.errAt(k+".type", "%q is not one of dev, systemd, ipmi", d.Type)
		}
		if d.Type != "systemd" && d.Timeout != 0 && time.Duration(d.Timeout) < 3*interval {
			return c.errAt(k+".timeout", "%s is under three feeding intervals (%s)", time.Duration(d.Timeout), interval)
		}
	}
	return nil
}

// validateIPMIWatchdog checks an ipmi watchdog device k and applies its
// defaults.
func (c *Config) validateIPMIWatchdog(k string, d *WatchdogDeviceConfig, interval time.Duration) error {
	if d.Path != "" {
		return c.errAt(k+".path", "path is for type dev; an ipmi device takes device (the OpenIPMI device) or shelf and ipmb")
	}
	switch {
	case d.Shelf != "" && d.Device != "":
		return c.errAt(k+".device", "device and shelf are exclusive: the controller is reached either through the local OpenIPMI device or through a shelf manager's session")
	case d.Shelf != "":
		found := false
		for _, s := range c.Shelves {
			found = found || s.Name == d.Shelf
		}
		if !found {
			return c.errAt(k+".shelf", "%q is not the name of a shelf in shelves", d.Shelf)
		}
		if d.IPMB == 0 {
			return c.errAt(k+".ipmb", "required with shelf: the IPMB-0 address of this blade's IPMC")
		}
		if d.IPMB&1 != 0 {
			return c.errAt(k+".ipmb", "%#x is not an IPMB slave address (even, not 0)", d.IPMB)
		}
	default:
		if d.IPMB != 0 {
			return c.errAt(k+".ipmb", "ipmb applies with shelf only: the device reaches this blade's own controller")
		}
		if d.Device == "" {
			d.Device = DefaultIPMIWatchdogDevice
		}
		if !strings.HasPrefix(d.Device, "/") {
			return c.errAt(k+".device", "%q is not an absolute path", d.Device)
		}
	}
	timeout := time.Duration(d.Timeout)
	switch {
	case timeout == 0:
		timeout = DefaultIPMIWatchdogTimeout
		d.Timeout = Duration(timeout)
	case timeout < 0 || timeout%(100*time.Millisecond) != 0:
		return c.errAt(k+".timeout", "%s is not a whole number of 100ms units (the IPMI timer's resolution)", timeout)
	case timeout > maxIPMIWatchdogTimeout:
		return c.errAt(k+".timeout", "%s is above the IPMI timer's 6553.5s", timeout)
	case timeout < 3*interval:
		return c.errAt(k+".timeout", "%s is under three feeding intervals (%s)", timeout, interval)
	}
	switch d.Action {
	case "":
		d.Action = DefaultIPMIWatchdogAction
	case "hard-reset", "power-down", "power-cycle":
	default:
		return c.errAt(k+".action", "%q is not one of hard-reset, power-down, power-cycle", d.Action)
	}
	pre := time.Duration(d.PreTimeoutInterval)
	switch d.PreTimeout {
	case "", "none":
		d.PreTimeout = "none"
		if pre != 0 {
			return c.errAt(k+".pre_timeout_interval", "applies only with a pre_timeout other than none")
		}
		return nil
	case "smi", "nmi", "msg-interrupt":
	default:
		return c.errAt(k+".pre_timeout", "%q is not one of none, smi, nmi, msg-interrupt", d.PreTimeout)
	}
	switch {
	case pre == 0:
		return c.errAt(k+".pre_timeout_interval", "required with pre_timeout %s: how long before expiry the interrupt fires (whole seconds)", d.PreTimeout)
	case pre < time.Second || pre%time.Second != 0:
		return c.errAt(k+".pre_timeout_interval", "%s is not a whole number of seconds (at least 1s)", pre)
	case pre > maxIPMIPreTimeoutInterval:
		return c.errAt(k+".pre_timeout_interval", "%s is above 255s", pre)
	case pre >= timeout:
		return c.errAt(k+".pre_timeout_interval", "%s is not below the timeout (%s)", pre, timeout)
	case timeout-pre < 3*interval:
		return c.errAt(k+".pre_timeout_interval", "the interrupt would fire %s after the last feed, under three feeding intervals (%s): a healthy node would get it", timeout-pre, interval)
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

// SameClusterSections reports whether a and b have the same cluster,
// fencing and watchdog sections (where secrets come from, not what the
// secrets are; positions in the file do not count). The running node is
// built from them once, so a reload that changes them needs a restart.
func SameClusterSections(a, b *Config) bool { return len(ChangedClusterSections(a, b)) == 0 }

// ChangedClusterSections names the cluster, fencing, watchdog and hotswap
// sections that differ between a and b, compared by their JSON form,
// which leaves out where secret references were written.
func ChangedClusterSections(a, b *Config) []string {
	var changed []string
	for _, part := range []struct {
		name     string
		old, new any
	}{{"cluster", a.Cluster, b.Cluster}, {"fencing", a.Fencing, b.Fencing}, {"watchdog", a.Watchdog, b.Watchdog}, {"hotswap", a.HotSwap, b.HotSwap}} {
		ja, errA := json.Marshal(part.old)
		jb, errB := json.Marshal(part.new)
		if errA != nil || errB != nil || !bytes.Equal(ja, jb) {
			changed = append(changed, part.name)
		}
	}
	return changed
}
