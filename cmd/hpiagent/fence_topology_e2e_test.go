package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
	"hpiagent/internal/labswitch"
)

// bladeMState reads the M-state of a blade's FRU 0 through the shelf
// manager with ipmitool, independent of the agents: it finds the blade
// IPMC's hot-swap sensor by its type (Get Sensor Type answering F0h), so
// nothing assumes its number, and reads it.
func (l *clusterLab) bladeMState(ctx context.Context, blade uint8) (int, error) {
	m, _, err := l.bladeHotSwap(ctx, blade)
	return m, err
}

// bladeHotSwap is bladeMState that also returns the sensor's number.
func (l *clusterLab) bladeHotSwap(ctx context.Context, blade uint8) (mstate, sensor int, err error) {
	t := fmt.Sprintf("0x%02x", blade)
	for n := 0; n < 256; n++ {
		out, err := l.shelf.Ipmitool(ctx, "-b", "0", "-t", t, "raw", "0x04", "0x2f", fmt.Sprintf("0x%02x", n))
		if err != nil || !strings.HasPrefix(strings.TrimSpace(out), "f0") {
			continue
		}
		out, err = l.shelf.Ipmitool(ctx, "-b", "0", "-t", t, "raw", "0x04", "0x2d", fmt.Sprintf("0x%02x", n))
		if err != nil {
			return -1, n, fmt.Errorf("reading hot-swap sensor %d of %s: %w", n, t, err)
		}
		f := strings.Fields(out)
		if len(f) < 3 {
			return -1, n, fmt.Errorf("hot-swap sensor %d of %s: short answer %q", n, t, out)
		}
		states, err := strconv.ParseUint(f[2], 16, 8)
		if err != nil {
			return -1, n, fmt.Errorf("hot-swap sensor %d of %s: answer %q: %w", n, t, out, err)
		}
		for m := 0; m < 8; m++ {
			if states == 1<<m {
				return m, n, nil
			}
		}
		return -1, n, fmt.Errorf("hot-swap sensor %d of %s asserts states %#x, not one M-state", n, t, states)
	}
	return -1, -1, fmt.Errorf("no hot-swap sensor found on %s", t)
}

// TestClusterFenceDeactivateAndFabric: the fencing topology of the daemon
// configuration with a level of two executors, PICMG FRU deactivation
// (read back from the hot-swap sensor the agents discovered, not from the
// configuration) and the node's fabric port set down over SNMPv3 on a
// net-snmp switch. An agent killed with SIGKILL has its blade in M1 and
// its port down, read back by ipmitool and the kernel; nobody else's
// blade or port is touched; fence_hpiagent on (unfence) brings the port
// back up.
func TestClusterFenceDeactivateAndFabric(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an ipmi_sim shelf, snmpd and three agent processes")
	}
	labshelf.RequireTools(t, "ipmi_sim", "ipmitool")
	sw := labswitch.Start(t, 3)
	t.Parallel()
	bdir := t.TempDir()
	bin := buildBinary(t, bdir, "./cmd/hpiagent")
	fa := buildBinary(t, bdir, "./cmd/fence_hpiagent")
	sdir := t.TempDir()
	authFile, privFile := filepath.Join(sdir, "fab-a.auth"), filepath.Join(sdir, "fab-a.priv")
	writeSecret(t, authFile, []byte(labswitch.AuthPass))
	writeSecret(t, privFile, []byte(labswitch.PrivPass))
	lab := newClusterLabWith(t, bin, 3, clusterLabOptions{
		levels:      "    - {name: isolate, attempts: 2, confirm_timeout: 15s, executors: [{type: picmg-deactivate}, {type: fabric, switch: fab-a}]}\n",
		withAPI:     true,
		nodeFencing: func(i int) string { return fmt.Sprintf(", fabric_ports: {fab-a: [%d]}", sw.Ports[i]) },
		fencing: fmt.Sprintf("  switches:\n    - {name: fab-a, address: %q, user: %s, auth_protocol: SHA, auth_passphrase: {file: %s}, priv_passphrase: {file: %s}, timeout: 1s}\n",
			sw.Addr, labswitch.User, authFile, privFile),
	})
	lab.waitFormed()

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for i, ag := range lab.agents {
		if m, err := lab.bladeMState(ctx, ag.blade); err != nil || m != 4 {
			t.Fatalf("blade %#x of %s in M%d (%v) before the test, want M4", ag.blade, ag.name, m, err)
		}
		if labswitch.OperDown(sw.Names[i]) {
			t.Fatalf("port %s of %s down before the test", sw.Names[i], ag.name)
		}
	}
	// Discovery must have run on the survivors before the fence needs the
	// hot-swap sensor; it does within a poll or two of the start.
	victim, vport := lab.agents[2], sw.Names[2]
	lab.kill9(victim)
	survivors := lab.agents[:2]
	lab.waitFor("the fence of "+victim.name+" to be confirmed on every survivor", 60*time.Second, func() bool {
		for _, ag := range survivors {
			if countTrue(fenceEntries(ag, victim.name, "level-result"), "done") == 0 {
				return false
			}
		}
		return true
	})
	if m, err := lab.bladeMState(ctx, victim.blade); err != nil || (m != 1 && m != 0) {
		t.Errorf("blade %#x of %s in M%d (%v) after the fence, want M1", victim.blade, victim.name, m, err)
	}
	if !labswitch.OperDown(vport) {
		t.Errorf("fabric port %s of %s still up after the fence", vport, victim.name)
	}
	for i, ag := range survivors {
		if m, err := lab.bladeMState(ctx, ag.blade); err != nil || m != 4 {
			t.Errorf("blade %#x of the live %s in M%d (%v), want M4", ag.blade, ag.name, m, err)
		}
		if labswitch.OperDown(sw.Names[i]) {
			t.Errorf("fabric port %s of the live %s went down", sw.Names[i], ag.name)
		}
	}
	lab.checkFencedOnce(survivors, victim)

	// The operator unfences through fence_hpiagent: the FRU is activated
	// first, then the port comes back up. A real shelf moves an unlocked
	// FRU from M1 to M2 by itself; ipmi_sim has no activation policy and
	// leaves it in M1, so the test moves it (as the handle switch would)
	// while the unfence waits for M4; the agent's repeated activation
	// request then activates it.
	_, hsNum, err := lab.bladeHotSwap(ctx, victim.blade)
	if err != nil {
		t.Fatal(err)
	}
	leader := lab.leader()
	type result struct {
		code int
		out  string
	}
	res := make(chan result, 1)
	go func() {
		code, out := lab.fenceAgent(ctx, fa, leader, "on", victim.name)
		res <- result{code, out}
	}()
	time.Sleep(time.Second)
	if _, err := lab.shelf.Console(ctx, fmt.Sprintf("sensor_set_bit_clr_rest 0x%02x 0 %d 2 1", victim.blade, hsNum)); err != nil {
		t.Fatalf("moving blade %#x to M2: %v", victim.blade, err)
	}
	if r := <-res; r.code != 0 {
		t.Fatalf("fence_hpiagent on %s: exit %d\n%s", victim.name, r.code, r.out)
	}
	if labswitch.OperDown(vport) {
		t.Errorf("fabric port %s of %s still down after unfencing", vport, victim.name)
	}
	if m, err := lab.bladeMState(ctx, victim.blade); err != nil || m != 4 {
		t.Errorf("blade %#x of %s in M%d (%v) after unfencing, want M4", victim.blade, victim.name, m, err)
	}
}

// checkFencedOnce gives a duplicate a chance to show, then checks that
// every survivor applied exactly one accepted fence request and one
// confirming result for victim, and no fence request for a survivor.
func (l *clusterLab) checkFencedOnce(survivors []*clusterAgent, victim *clusterAgent) {
	l.t.Helper()
	time.Sleep(2 * time.Second)
	for _, ag := range survivors {
		if n := countTrue(fenceEntries(ag, victim.name, "fence-requested"), "accepted"); n != 1 {
			l.t.Errorf("%s applied %d accepted fence requests for %s, want 1", ag.name, n, victim.name)
		}
		if n := countTrue(fenceEntries(ag, victim.name, "level-result"), "done"); n != 1 {
			l.t.Errorf("%s applied %d confirming results for %s, want 1", ag.name, n, victim.name)
		}
		for _, other := range survivors {
			if len(fenceEntries(ag, other.name, "fence-requested")) != 0 {
				l.t.Errorf("%s saw a fence request for the live %s", ag.name, other.name)
			}
		}
	}
}
