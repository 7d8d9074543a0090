package fencing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
	"hpiagent/shelf/sim"
)

// simPeer is an embedded shelf on loopback with a session to it and the
// fence targets of its blades as discovery found them.
type simPeer struct {
	srv     *sim.Server
	sess    *rmcpp.Session
	targets map[string]FRUTarget // node name "blade-0xNN" -> FRU
	blades  []uint8
}

func startSimPeer(ctx context.Context, t *testing.T) *simPeer {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.StepDelay = 50 * time.Millisecond
	cfg.MaxSessions = 8 // one per cluster member, up to five, and this one
	srv, err := sim.Start(ctx, cfg, "127.0.0.1:0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	u := cfg.Users[0]
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: srv.Addr().String(), Username: u.Name, Password: []byte(u.Password), CipherSuites: []int{17}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	// The targets come from the shelf's own description (what discovery
	// reports in the daemon): the test takes no sensor number for granted.
	p := &simPeer{srv: srv, sess: sess, targets: map[string]FRUTarget{}}
	for _, m := range cfg.IPMCs {
		if m.SiteType == sim.SiteATCABoard && m.Present && m.Activated {
			p.blades = append(p.blades, m.Addr)
			p.targets[nodeOf(m.Addr)] = FRUTarget{Addr: ipmi.Addr{Slave: m.Addr}, HotSwapSensor: m.HotSwapSensor, HasHotSwapSensor: true}
		}
	}
	if len(p.blades) < 2 {
		t.Fatalf("embedded shelf has %d active boards, want 2", len(p.blades))
	}
	return p
}

func nodeOf(addr uint8) string {
	return fmt.Sprintf("blade-0x%02x", addr)
}

func TestPICMGOnEmbeddedShelf(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startSimPeer(ctx, t)
	confirm := ConfirmConfig{Timeout: 10 * time.Second, Interval: 50 * time.Millisecond}
	for i, method := range []PICMGMethod{PICMGPowerLevel, PICMGDeactivate} {
		t.Run(string(method), func(t *testing.T) {
			addr := p.blades[i]
			node := nodeOf(addr)
			if _, ok := p.targets[node]; !ok {
				t.Fatalf("no hot-swap sensor discovered for %s (targets %v)", node, p.targets)
			}
			e, err := NewPICMG(PICMGConfig{Conn: p.sess, Method: method, Targets: p.targets})
			if err != nil {
				t.Fatal(err)
			}
			if st, err := e.Status(ctx, node); err != nil || st != PowerOn {
				t.Fatalf("status before: %v %v", st, err)
			}
			st, err := SetAndConfirm(ctx, e, node, PowerOff, confirm)
			if err != nil || st != PowerOff {
				t.Fatalf("off: %v %v", st, err)
			}
			// The shelf itself agrees, and the FRU is held in M1.
			if lvl, _ := p.srv.Shelf().PowerLevel(addr); lvl != 0 {
				t.Errorf("shelf says power level %d after fence", lvl)
			}
			waitState(t, p, addr, sim.M1)
			if locked, _, _ := p.srv.Shelf().Policy(addr); !locked {
				t.Errorf("FRU not locked after fence")
			}
			// Off again is harmless (a new leader re-executes a level).
			if st, err := SetAndConfirm(ctx, e, node, PowerOff, confirm); err != nil || st != PowerOff {
				t.Fatalf("second off: %v %v", st, err)
			}
			st, err = SetAndConfirm(ctx, e, node, PowerOn, confirm)
			if err != nil || st != PowerOn {
				t.Fatalf("on: %v %v", st, err)
			}
			waitState(t, p, addr, sim.M4)
		})
	}
	t.Run("unknown node", func(t *testing.T) {
		e, _ := NewPICMG(PICMGConfig{Conn: p.sess, Method: PICMGPowerLevel, Targets: p.targets})
		if _, err := SetAndConfirm(ctx, e, "no-such-node", PowerOff, confirm); !errors.Is(err, ErrUnknownTarget) {
			t.Fatalf("err %v, want ErrUnknownTarget", err)
		}
	})
}

func waitState(t *testing.T, p *simPeer, addr uint8, want sim.MState) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := p.srv.Shelf().State(addr)
		if err == nil && st == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("IPMC 0x%02x in %v (%v), want %v", addr, st, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// labPeer is an ipmi_sim ATCA shelf with an RMCP+ session.
func startLabPeer(ctx context.Context, t *testing.T) (*labshelf.Shelf, *rmcpp.Session) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs an external peer process (-short)")
	}
	sh := labshelf.Start(t)
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return sh, sess
}

func TestExecutorsOnIPMISim(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sh, sess := startLabPeer(ctx, t)
	blade := sh.Blades[0]
	node := nodeOf(blade)
	targets := map[string]FRUTarget{node: {Addr: ipmi.Addr{Slave: blade}}}
	confirm := ConfirmConfig{Timeout: 10 * time.Second, Interval: 100 * time.Millisecond}

	// ipmi_sim has no power levels: the PICMG level says so plainly.
	pl, _ := NewPICMG(PICMGConfig{Conn: sess, Method: PICMGPowerLevel, Targets: targets})
	_, err := SetAndConfirm(ctx, pl, node, PowerOff, confirm)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "not supported by this shelf manager") {
		t.Fatalf("power level on ipmi_sim: %v, want ErrUnsupported", err)
	}

	ch, _ := NewChassis(ChassisConfig{Conn: sess, Targets: targets})
	if running, err := sh.PayloadRunning(blade); err != nil || !running {
		t.Fatalf("payload of 0x%02x not running before fence: %v %v", blade, running, err)
	}
	level := Level{Name: "chassis", Executors: []Executor{ch}, Confirm: confirm}
	if st, err := level.Off(ctx, node); err != nil || st != PowerOff {
		t.Fatalf("chassis off: %v %v", st, err)
	}
	// The read-back agrees with ipmitool and with the payload process.
	out, err := sh.Ipmitool(ctx, "-b", "0", "-t", fmt.Sprintf("0x%02x", blade), "chassis", "power", "status")
	if err != nil || !strings.Contains(out, "off") {
		t.Errorf("ipmitool says %q (%v) after fence", out, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		running, err := sh.PayloadRunning(blade)
		if err == nil && !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("payload still running after confirmed fence")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st, err := level.Status(ctx, node); err != nil || st != PowerOff {
		t.Fatalf("status: %v %v", st, err)
	}
	if st, err := level.On(ctx, node); err != nil || st != PowerOn {
		t.Fatalf("chassis on: %v %v", st, err)
	}
	// Another blade was never touched.
	other := sh.Blades[1]
	if running, err := sh.PayloadRunning(other); err != nil || !running {
		t.Errorf("blade 0x%02x affected: running=%v %v", other, running, err)
	}
}
