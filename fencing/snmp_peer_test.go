package fencing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fabricSwitch is net-snmp's snmpd on a free loopback port, with veth
// pairs standing for a blade's fabric ports (snmpd sets ifAdminStatus only
// on real interfaces: it really takes the link down).
type fabricSwitch struct {
	addr  string
	ports []int    // ifIndex of the switch-side veth ends
	names []string // their names
}

const (
	testSNMPUser = "fencer"
	testAuthPass = "auth-secret-1"
	testPrivPass = "priv-secret-2"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root (veth interfaces) and CI runs as root")
		}
		t.Skip("needs root to create veth interfaces")
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func startFabricSwitch(t *testing.T, nports int) *fabricSwitch {
	t.Helper()
	if testing.Short() {
		t.Skip("needs an external peer process (-short)")
	}
	requireRoot(t)
	for _, tool := range []string{"snmpd", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (apt-get install snmpd iproute2): %v", tool, err)
		}
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	tag := hex.EncodeToString(rnd[:])
	sw := &fabricSwitch{}
	for i := 0; i < nports; i++ {
		a, b := fmt.Sprintf("hf%s%da", tag, i), fmt.Sprintf("hf%s%db", tag, i)
		if out, err := exec.Command("ip", "link", "add", a, "type", "veth", "peer", "name", b).CombinedOutput(); err != nil {
			t.Fatalf("ip link add %s: %v: %s", a, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "link", "del", a).Run() })
		for _, n := range []string{a, b} {
			if out, err := exec.Command("ip", "link", "set", n, "up").CombinedOutput(); err != nil {
				t.Fatalf("ip link set %s up: %v: %s", n, err, out)
			}
		}
		idx, err := os.ReadFile("/sys/class/net/" + a + "/ifindex")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(idx)))
		sw.ports = append(sw.ports, n)
		sw.names = append(sw.names, a)
	}
	dir := t.TempDir()
	port := freeUDPPort(t)
	sw.addr = fmt.Sprintf("127.0.0.1:%d", port)
	conf := fmt.Sprintf(`agentAddress udp:%s
createUser %s SHA "%s" AES "%s"
rwuser %s priv
sysName hpiagent-test-fabric
`, sw.addr, testSNMPUser, testAuthPass, testPrivPass, testSNMPUser)
	cf := filepath.Join(dir, "snmpd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("snmpd", "-f", "-C", "-c", cf, "-Lf", filepath.Join(dir, "snmpd.log"), "-p", filepath.Join(dir, "snmpd.pid"))
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+dir, "MIBS=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "snmpd.log"))
			t.Logf("snmpd log:\n%s", b)
		}
	})
	return sw
}

func operDown(name string) bool {
	b, err := os.ReadFile("/sys/class/net/" + name + "/flags")
	if err != nil {
		return false
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(string(b), "0x")), 16, 32)
	return v&1 == 0 // IFF_UP clear
}

func TestFabricOnNetSNMP(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sw := startFabricSwitch(t, 3)
	cfg := FabricConfig{Address: sw.addr, User: testSNMPUser, AuthPassphrase: testAuthPass, PrivPassphrase: testPrivPass,
		Ports: map[string][]int{"node-a": sw.ports[:2], "node-b": sw.ports[2:]}, Timeout: 500 * time.Millisecond}
	f, err := NewFabric(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for snmpd to answer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := f.Status(ctx, "node-a")
		if err == nil && st == PowerOn {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("snmpd not answering: %v %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	confirm := ConfirmConfig{Timeout: 10 * time.Second, Interval: 100 * time.Millisecond}
	if st, err := SetAndConfirm(ctx, f, "node-a", PowerOff, confirm); err != nil || st != PowerOff {
		t.Fatalf("off: %v %v", st, err)
	}
	for _, n := range sw.names[:2] {
		if !operDown(n) {
			t.Errorf("interface %s still up after fabric fence", n)
		}
	}
	if operDown(sw.names[2]) {
		t.Errorf("node-b's port %s went down", sw.names[2])
	}
	if st, err := f.Status(ctx, "node-b"); err != nil || st != PowerOn {
		t.Errorf("node-b: %v %v", st, err)
	}
	if st, err := SetAndConfirm(ctx, f, "node-a", PowerOn, confirm); err != nil || st != PowerOn {
		t.Fatalf("on: %v %v", st, err)
	}

	t.Run("refusals", func(t *testing.T) {
		tests := []struct {
			name string
			mod  func(*FabricConfig)
			want string
		}{
			{"wrong auth passphrase", func(c *FabricConfig) { c.AuthPassphrase = "not-the-one" }, ""},
			{"unknown user", func(c *FabricConfig) { c.User = "nobody" }, ""},
		}
		for _, tc := range tests {
			c := cfg
			c.Timeout, c.Retries = 300*time.Millisecond, 1
			tc.mod(&c)
			f2, err := NewFabric(c)
			if err != nil {
				t.Fatal(err)
			}
			if err := f2.Off(ctx, "node-a"); err == nil {
				t.Errorf("%s: SET accepted", tc.name)
			} else if strings.Contains(err.Error(), c.AuthPassphrase) || strings.Contains(err.Error(), c.PrivPassphrase) {
				t.Errorf("%s: error leaks a passphrase: %v", tc.name, err)
			}
			if operDown(sw.names[0]) {
				t.Fatalf("%s: port went down", tc.name)
			}
		}
		if _, err := f.Status(ctx, "node-z"); !errors.Is(err, ErrUnknownTarget) {
			t.Errorf("unknown node: %v", err)
		}
	})
}

func TestNewFabricRefusesWeakConfig(t *testing.T) {
	base := FabricConfig{Address: "127.0.0.1:1161", User: "u", AuthPassphrase: "12345678", PrivPassphrase: "12345678"}
	tests := []struct {
		name string
		mod  func(*FabricConfig)
	}{
		{"no port", func(c *FabricConfig) { c.Address = "127.0.0.1" }},
		{"no user", func(c *FabricConfig) { c.User = "" }},
		{"short passphrase", func(c *FabricConfig) { c.PrivPassphrase = "short" }},
		{"MD5", func(c *FabricConfig) { c.AuthProtocol = "MD5" }},
		{"DES", func(c *FabricConfig) { c.PrivProtocol = "DES" }},
	}
	for _, tc := range tests {
		c := base
		tc.mod(&c)
		if _, err := NewFabric(c); err == nil {
			t.Errorf("%s: accepted", tc.name)
		} else if strings.Contains(err.Error(), "12345678") {
			t.Errorf("%s: error leaks a passphrase: %v", tc.name, err)
		}
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, base); strings.Contains(s, "12345678") {
			t.Errorf("config prints its passphrase with %s: %s", verb, s)
		}
	}
}
