package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hpiagent/api"
	"hpiagent/fencing"
	"hpiagent/internal/pki"
)

// clusterYAML is a valid configuration with every cluster section.
const clusterYAML = `shelves:
  - name: s1
    address: 192.0.2.1
    username: u
    password: {credential: s1pw}
cluster:
  node: a
  nodes:
    - {name: a, gossip: "10.0.0.1:7946", raft: "10.0.0.1:7947", rpc: "10.0.0.1:7948"}
    - {name: b, gossip: "10.0.0.2:7946", raft: "10.0.0.2:7947", rpc: "10.0.0.2:7948"}
    - {name: c, gossip: "10.0.0.3:7946", rpc: "10.0.0.3:7948", non_voter: true}
  gossip_keys:
    - {credential: gossip}
  tls:
    cert: /etc/hpiagent/peer.crt
    key: {credential: peer.key}
    ca: /etc/hpiagent/ca.crt
fencing:
  levels:
    - name: picmg
      attempts: 2
      confirm_timeout: 20s
      executors: [{type: picmg-power-level}]
    - name: chassis
      executors: [{type: chassis}]
  nodes:
    a: {shelf: s1, ipmb: 0x82}
    b: {shelf: s1, ipmb: 0x84, entity: "{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,2}"}
watchdog:
  devices:
    - {type: dev, path: /dev/watchdog1, timeout: 60s}
`

func TestClusterConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(clusterYAML))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Label != "hpiagent" || c.Cluster.DataDir != DefaultClusterDataDir {
		t.Errorf("label %q data_dir %q", c.Cluster.Label, c.Cluster.DataDir)
	}
	if time.Duration(c.Watchdog.SelfFenceAfter) != DefaultSelfFenceAfter || time.Duration(c.Watchdog.Interval) != DefaultWatchdogInterval {
		t.Errorf("watchdog %+v", c.Watchdog)
	}
	if got := c.Fencing.Levels[0].ConfirmTimeout; got != 20*time.Second {
		t.Errorf("confirm_timeout %s", got)
	}
	if got := c.Fencing.Nodes["b"].IPMB; got != 0x84 {
		t.Errorf("ipmb %#x", got)
	}
	if !c.Cluster.Nodes[2].NonVoter || c.Cluster.Nodes[0].NonVoter {
		t.Errorf("non_voter %+v", c.Cluster.Nodes)
	}
	// Without the sections the agent is standalone.
	c, err = ParseConfig([]byte("log_level: info\n"))
	if err != nil || c.Cluster != nil || c.Fencing != nil || c.Watchdog != nil {
		t.Errorf("standalone: %v %+v", err, c)
	}
}

func TestClusterConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
		want           string // substring: key and reason
	}{
		{"self not listed", "  node: a\n", "  node: z\n", `line 7: cluster.node: "z" is not one of cluster.nodes`},
		{"bad node name", "  node: a\n", "  node: 'a b'\n", "cluster.node:"},
		{"duplicate node", "{name: b, gossip", "{name: a, gossip", "cluster.nodes[1].name: \"a\" is listed twice"},
		{"gossip missing port", `gossip: "10.0.0.2:7946"`, `gossip: "10.0.0.2"`, "cluster.nodes[1].gossip:"},
		{"gossip no host", `gossip: "10.0.0.2:7946"`, `gossip: ":7946"`, "has no host"},
		{"raft required for voter", `raft: "10.0.0.2:7947", `, ``, "cluster.nodes[1].raft: required"},
		{"address twice", `rpc: "10.0.0.2:7948"`, `rpc: "10.0.0.1:7948"`, "cluster.nodes[1].rpc: 10.0.0.1:7948 is also the rpc address of a"},
		{"no gossip key", "  gossip_keys:\n    - {credential: gossip}\n", "", "cluster.gossip_keys: required"},
		{"gossip key two sources", "- {credential: gossip}", "- {credential: gossip, file: /k}", "cluster.gossip_keys[0]: set exactly one"},
		{"tls key missing", "    key: {credential: peer.key}\n", "", "cluster.tls.key: required"},
		{"tls ca missing", "    ca: /etc/hpiagent/ca.crt\n", "", "cluster.tls.ca: required"},
		{"unknown key", "  tls:\n", "  tsl: {}\n  tls:\n", "cluster.tsl: unknown key"},
		{"unknown source", "  tls:\n", "  fence_sources: [gut-feeling]\n  tls:\n", `cluster.fence_sources[0]: "gut-feeling"`},
		{"fencing without level", "      executors: [{type: chassis}]\n", "      executors: []\n", "fencing.levels[1].executors: required"},
		{"bad executor", "{type: chassis}", "{type: magic}", `fencing.levels[1].executors[0].type: "magic"`},
		{"fabric without switches", "{type: chassis}", "{type: fabric, switch: sw}", `fencing.levels[1].executors[0].switch: "sw" is not the name of one of fencing.switches`},
		{"switch on a power executor", "{type: chassis}", "{type: chassis, switch: sw}", "fencing.levels[1].executors[0].switch: applies to type fabric only"},
		{"level name", "    - name: chassis\n", "    - name: ''\n", "fencing.levels[1].name: required"},
		{"fence unknown node", "    a: {shelf: s1", "    q: {shelf: s1", `fencing.nodes["q"]: "q" is not one of cluster.nodes`},
		{"fence unknown shelf", "    a: {shelf: s1", "    a: {shelf: s9", `fencing.nodes["a"].shelf: "s9"`},
		{"fence odd ipmb", "ipmb: 0x82", "ipmb: 0x83", `fencing.nodes["a"].ipmb: 0x83`},
		{"fence bad timeout", "confirm_timeout: 20s", "confirm_timeout: soon", "fencing.levels[0].confirm_timeout"},
		{"watchdog type", "{type: dev, path: /dev/watchdog1, timeout: 60s}", "{type: bmc}", `watchdog.devices[0].type: "bmc"`},
		{"watchdog timeout fraction", "timeout: 60s}", "timeout: 1500ms}", "whole number of seconds"},
		{"watchdog timeout short", "timeout: 60s}", "timeout: 10s}", "under three feeding intervals"},
		{"self fence too short", "watchdog:\n", "watchdog:\n  self_fence_after: 1s\n", "watchdog.self_fence_after: 1s is below 3s"},
		{"fencing needs cluster", "cluster:\n  node: a\n", "clusterx:\n  node: a\n", "clusterx: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantConfigError(t, clusterYAML, tc.old, tc.new, tc.want)
		})
	}
}

// fabricYAML is clusterYAML with a level that deactivates the FRU and
// sets the node's fabric ports down.
var fabricYAML = strings.Replace(strings.Replace(strings.Replace(strings.Replace(clusterYAML,
	"    - name: chassis\n      executors: [{type: chassis}]\n",
	"    - name: chassis\n      executors: [{type: chassis}]\n    - name: isolate\n      executors: [{type: picmg-deactivate}, {type: fabric, switch: fab-a}]\n", 1),
	"    b: {shelf: s1, ipmb: 0x84,", "    b: {shelf: s1, ipmb: 0x84, fabric_ports: {fab-a: [12]},", 1),
	"    a: {shelf: s1, ipmb: 0x82}\n", "    a: {shelf: s1, ipmb: 0x82, fabric_ports: {fab-a: [10, 11]}}\n", 1),
	"watchdog:\n", `  switches:
    - name: fab-a
      address: "192.0.2.9:161"
      user: fencer
      auth_passphrase: {credential: fab-a.auth}
      priv_passphrase: {credential: fab-a.priv}
watchdog:
`, 1)

func TestFabricConfig(t *testing.T) {
	c, err := ParseConfig([]byte(fabricYAML))
	if err != nil {
		t.Fatal(err)
	}
	sw := c.Fencing.Switches[0]
	if sw.AuthProtocol != fencing.AuthSHA || sw.PrivProtocol != fencing.PrivAES || time.Duration(sw.Timeout) != 2*time.Second {
		t.Errorf("switch defaults %+v", sw)
	}
	if p := c.Fencing.Nodes["a"].FabricPorts["fab-a"]; len(p) != 2 || p[1] != 11 {
		t.Errorf("fabric ports of a: %v", p)
	}
	for _, tc := range []struct {
		name, old, new string
		want           string
	}{
		{"switch name unknown", "switch: fab-a}", "switch: fab-b}", `fencing.levels[2].executors[1].switch: "fab-b" is not the name of one of fencing.switches`},
		{"fabric without switch", "{type: fabric, switch: fab-a}", "{type: fabric}", "fencing.levels[2].executors[1].switch: required"},
		{"node without ports", ", fabric_ports: {fab-a: [12]}", "", `fencing.nodes["b"].fabric_ports: no ports on switch fab-a`},
		{"ports on unknown switch", "fabric_ports: {fab-a: [12]}", "fabric_ports: {fab-a: [12], fab-z: [1]}", `fencing.nodes["b"].fabric_ports: "fab-z" is not the name`},
		{"bad ifIndex", "fab-a: [12]", "fab-a: [0]", "0 is not an ifIndex"},
		{"switch address", `address: "192.0.2.9:161"`, `address: "192.0.2.9"`, "fencing.switches[0].address:"},
		{"switch user", "      user: fencer\n", "", "fencing.switches[0].user: required"},
		{"MD5 refused", "      user: fencer\n", "      user: fencer\n      auth_protocol: MD5\n", `fencing.switches[0].auth_protocol: "MD5"`},
		{"DES refused", "      user: fencer\n", "      user: fencer\n      priv_protocol: DES\n", `fencing.switches[0].priv_protocol: "DES"`},
		{"passphrase missing", "      priv_passphrase: {credential: fab-a.priv}\n", "", "fencing.switches[0].priv_passphrase: required"},
		{"passphrase inline refused", "      auth_passphrase: {credential: fab-a.auth}\n", "      auth_passphrase: hunter22\n", "fencing.switches[0].auth_passphrase"},
		{"switch twice", "  switches:\n", "  switches:\n    - {name: fab-a, address: \"192.0.2.8:161\", user: u, auth_passphrase: {credential: x}, priv_passphrase: {credential: y}}\n", `fencing.switches[1].name: "fab-a" is also the name of fencing.switches[0]`},
		{"switch unused", "{type: picmg-deactivate}, {type: fabric, switch: fab-a}", "{type: picmg-deactivate}", `fencing.switches[0]: switch "fab-a" is not used`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := wantConfigError(t, fabricYAML, tc.old, tc.new, tc.want)
			if strings.Contains(err.Error(), "hunter22") {
				t.Errorf("error shows the passphrase: %v", err)
			}
		})
	}
}

func TestFencingNeedsCluster(t *testing.T) {
	i := strings.Index(clusterYAML, "cluster:")
	j := strings.Index(clusterYAML, "fencing:")
	_, err := ParseConfig([]byte(clusterYAML[:i] + clusterYAML[j:]))
	if err == nil || !strings.Contains(err.Error(), "fencing: needs a cluster section") {
		t.Fatalf("error %v", err)
	}
}

func TestClusterTLSConfig(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue(pki.IssueRequest{Name: "a", Kind: pki.KindPeer, Validity: time.Minute * 30})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(pki.KeyFile(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := pki.NewCA("other", time.Hour)
	oc, _ := other.Issue(pki.IssueRequest{Name: "a", Kind: pki.KindPeer, Validity: time.Minute * 30})
	if err := oc.Save(filepath.Join(dir, "o")); err != nil {
		t.Fatal(err)
	}
	okey, _ := os.ReadFile(pki.KeyFile(filepath.Join(dir, "o"), "a"))
	cc := &ClusterConfig{Node: "a", Label: "l", DataDir: dir,
		Nodes: []ClusterNodeConfig{{Name: "a", Gossip: "127.0.0.1:1", Raft: "127.0.0.1:2", RPC: "127.0.0.1:3"}},
		TLS:   TLSConfig{Cert: pki.CertFile(dir, "a"), CA: filepath.Join(dir, pki.CACertFile)}}
	for _, tc := range []struct {
		name    string
		key     []byte
		ca      string
		wantErr string
	}{
		{"good", key, filepath.Join(dir, pki.CACertFile), ""},
		{"key of another certificate", okey, filepath.Join(dir, pki.CACertFile), "do not form a key pair"},
		{"CA file missing", key, filepath.Join(dir, "nope.crt"), "cluster.tls.ca"},
		{"CA not PEM", key, pki.KeyFile(dir, "a"), "holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *cc
			c.TLS.CA = tc.ca
			cfg, err := clusterConfig(&c, [][]byte{make([]byte, 32)}, tc.key, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "PRIVATE KEY") {
					t.Errorf("error shows key material: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ServerTLS.MinVersion != 0x0304 || cfg.ClientTLS.MinVersion != 0x0304 || cfg.ServerTLS.ClientCAs == nil || cfg.ClientTLS.RootCAs == nil {
				t.Errorf("TLS configuration %+v %+v", cfg.ServerTLS, cfg.ClientTLS)
			}
			if len(cfg.Nodes) != 1 || cfg.Nodes[0].RPCAddr != "127.0.0.1:3" || cfg.NodeName != "a" {
				t.Errorf("nodes %+v", cfg.Nodes)
			}
		})
	}
}

func TestFencingAPIErrors(t *testing.T) {
	f := fencingAPI{}
	for _, tc := range []struct {
		in   error
		want error
	}{
		{fencing.ErrUnknownNode, api.ErrNotFound},
		{fencing.ErrSelf, api.ErrInvalidState},
	} {
		got := f.apiErr(tc.in)
		if !errors.Is(got, tc.want) || !errors.Is(got, tc.in) {
			t.Errorf("apiErr(%v) = %v, want it to match %v", tc.in, got, tc.want)
		}
	}
	other := errors.New("shelf manager unreachable")
	if got := f.apiErr(other); got != other {
		t.Errorf("apiErr changed an unrelated error: %v", got)
	}
	var nilNode *node
	if nilNode.apiCluster() != nil || nilNode.apiFencing() != nil {
		t.Error("a node without cluster gives non-nil API interfaces")
	}
	if err := nilNode.start(nil); err != nil {
		t.Error(err)
	}
}

// FuzzParseClusterConfig runs the strict decoder and the cluster
// validation on mutations of a configuration with every cluster section:
// no panic, and an error is always a *ConfigError.
func FuzzParseClusterConfig(f *testing.F) {
	f.Add([]byte(clusterYAML))
	f.Add([]byte("cluster:\n  node: a\n  nodes: [{name: a, gossip: 'h:1', raft: 'h:2', rpc: 'h:3'}]\n"))
	f.Add([]byte("fencing:\n  levels: [{name: x, executors: [{type: chassis}]}]\n"))
	f.Add([]byte("watchdog:\n  devices: [{type: dev, timeout: 1s}]\n  self_fence_after: 1h\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ConfigError", err)
			}
			return
		}
		if c.Cluster != nil && (c.Cluster.Label == "" || c.Cluster.DataDir == "") {
			t.Fatalf("cluster defaults not applied: %+v", c.Cluster)
		}
		if c.Fencing != nil && c.Cluster == nil {
			t.Fatal("fencing accepted without a cluster")
		}
	})
}

func TestSameClusterSections(t *testing.T) {
	base, err := ParseConfig([]byte(clusterYAML))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, old, new string
		same           bool
	}{
		{"identical", "", "", true},
		{"moved by a comment line", "cluster:\n", "# the cluster\ncluster:\n", true},
		{"other log level", "shelves:\n", "log_level: debug\nshelves:\n", true},
		{"node address", `rpc: "10.0.0.2:7948"`, `rpc: "10.0.0.9:7948"`, false},
		{"gossip key source", "{credential: gossip}", "{credential: gossip2}", false},
		{"fence level attempts", "attempts: 2", "attempts: 3", false},
		{"watchdog timeout", "timeout: 60s}", "timeout: 90s}", false},
		{"hotswap section added", "watchdog:\n", "hotswap:\n  retry_delay: 20s\nwatchdog:\n", false},
		{"no cluster", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(clusterYAML, tc.old, tc.new, 1)
			if tc.name == "no cluster" {
				y = "log_level: info\n"
			}
			c, err := ParseConfig([]byte(y))
			if err != nil {
				t.Fatal(err)
			}
			if got := SameClusterSections(base, c); got != tc.same {
				t.Errorf("SameClusterSections = %v, want %v", got, tc.same)
			}
		})
	}
}

func TestDecodeGossipKey(t *testing.T) {
	// A raw key whose last byte is a line feed: read raw from a file it
	// would lose that byte; as base64 it survives.
	raw := []byte("0123456789abcdef0123456789abcde\n")
	enc := base64.StdEncoding.EncodeToString(raw)
	for _, tc := range []struct {
		name, in string
		want     []byte
		err      string
	}{
		{"32 bytes with a line feed", enc + "\n", raw, ""},
		{"16 bytes", base64.StdEncoding.EncodeToString(raw[:16]), raw[:16], ""},
		{"24 bytes, spaces around", "  " + base64.StdEncoding.EncodeToString(raw[:24]) + " \r\n", raw[:24], ""},
		{"raw bytes", string(raw[:31]), nil, "not base64"},
		{"wrong length", base64.StdEncoding.EncodeToString(raw[:20]), nil, "decodes to 20 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeGossipKey([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), strings.TrimSpace(tc.in)) {
					t.Errorf("error shows the key: %v", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
