// Package labswitch starts a fabric switch for tests: net-snmp's snmpd on
// a free loopback UDP port, with veth pairs standing for a blade's fabric
// ports. snmpd sets IF-MIB ifAdminStatus only on real interfaces, so a
// SET really takes the link down and a test can check the kernel's view
// (OperDown) beside what the switch answers.
//
// It needs root (veth interfaces), snmpd and ip. Outside CI a missing
// privilege or tool skips the test; in CI (CI set) it fails it.
package labswitch

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Credentials of the switch's SNMPv3 user (SHA / AES, authPriv, with
// write access).
const (
	User     = "fencer"
	AuthPass = "auth-secret-1"
	PrivPass = "priv-secret-2"
)

// Switch is a running test switch.
type Switch struct {
	// Addr is the SNMP agent's host:port.
	Addr string
	// Ports are the ifIndex values of the switch-side veth ends and
	// Names their interface names, in the same order.
	Ports []int
	Names []string
}

// RequireRoot skips (outside CI) or fails (in CI) a test that is not
// running as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root (veth interfaces) and CI runs as root")
		}
		t.Skip("needs root to create veth interfaces")
	}
}

func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Start starts a switch with nports ports; everything is removed when the
// test ends.
func Start(t testing.TB, nports int) *Switch {
	t.Helper()
	if testing.Short() {
		t.Skip("needs an external peer process (-short)")
	}
	RequireRoot(t)
	for _, tool := range []string{"snmpd", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (apt-get install snmpd iproute2): %v", tool, err)
		}
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	tag := hex.EncodeToString(rnd[:])
	sw := &Switch{}
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
		sw.Ports = append(sw.Ports, n)
		sw.Names = append(sw.Names, a)
	}
	dir := t.TempDir()
	sw.Addr = fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	conf := fmt.Sprintf(`agentAddress udp:%s
createUser %s SHA "%s" AES "%s"
rwuser %s priv
sysName hpiagent-test-fabric
`, sw.Addr, User, AuthPass, PrivPass, User)
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

// OperDown reports whether the kernel holds interface name down (IFF_UP
// clear), independent of what the switch answers over SNMP.
func OperDown(name string) bool {
	b, err := os.ReadFile("/sys/class/net/" + name + "/flags")
	if err != nil {
		return false
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(string(b), "0x")), 16, 32)
	return v&1 == 0
}
