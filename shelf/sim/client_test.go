package sim_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
	"hpiagent/shelf/sim"
)

// These tests drive the simulated shelf with hpiagent's own RMCP+ client
// and typed IPMI/PICMG commands over UDP on loopback: the client and the
// shelf are held to the same specification from both ends. Expected values
// come from the shelf's Config, never from the lab.

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// simShelf is a simulated shelf served on a free loopback port, its clock
// moving only when the test advances it.
type simShelf struct {
	srv *sim.Server
	sh  *sim.Shelf
	cfg sim.Config // with defaults applied
}

func startShelf(t *testing.T, edit func(*sim.Config)) *simShelf {
	t.Helper()
	cfg := sim.DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := sim.Start(ctx, cfg, "127.0.0.1:0", false, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &simShelf{srv: srv, sh: srv.Shelf(), cfg: srv.Shelf().Config()}
}

// admin returns a user of the shelf with administrator privilege.
func (s *simShelf) admin(t *testing.T) sim.User {
	t.Helper()
	for _, u := range s.cfg.Users {
		if u.MaxPrivilege == sim.PrivAdmin {
			return u
		}
	}
	t.Fatal("no administrator in the shelf configuration")
	return sim.User{}
}

func (s *simShelf) clientConfig(t *testing.T) rmcpp.Config {
	u := s.admin(t)
	return rmcpp.Config{Addr: s.srv.Addr().String(), Username: u.Name, Password: []byte(u.Password), Logger: testLog(t)}
}

func (s *simShelf) dial(t *testing.T, edit func(*rmcpp.Config)) *rmcpp.Session {
	t.Helper()
	cfg := s.clientConfig(t)
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := rmcpp.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial %s: %v", cfg.Addr, err)
	}
	t.Cleanup(func() { _ = sess.Close() })
	return sess
}

// blades returns the configured ATCA boards (at least two are needed).
func (s *simShelf) blades(t *testing.T) []sim.MCConfig {
	t.Helper()
	var out []sim.MCConfig
	for _, m := range s.cfg.IPMCs {
		if m.SiteType == sim.SiteATCABoard && m.Present {
			out = append(out, m)
		}
	}
	if len(out) < 2 {
		t.Fatalf("the shelf configuration has %d present boards, need 2", len(out))
	}
	return out
}

// absentAddr returns an even IPMB address that no controller of the shelf uses.
func (s *simShelf) absentAddr() uint8 {
	used := map[uint8]bool{s.cfg.Addr: true}
	for _, m := range s.cfg.IPMCs {
		used[m.Addr] = true
	}
	for a := uint8(0x40); ; a += 2 {
		if !used[a] {
			return a
		}
	}
}

// steps advances the shelf clock by n automatic hot-swap steps.
func (s *simShelf) steps(n int) {
	for range n {
		s.sh.Advance(s.cfg.StepDelay)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func to(addr uint8) ipmi.Addr { return ipmi.Addr{Slave: addr} }

// wantState checks the hot-swap state of the board at m.Addr both over
// IPMI (its hot-swap sensor, bridged) and in the shelf's own state.
func (s *simShelf) wantState(t *testing.T, ctx context.Context, c ipmi.Conn, m sim.MCConfig, want sim.MState) {
	t.Helper()
	if got, err := s.sh.State(m.Addr); err != nil || got != want {
		t.Fatalf("shelf says board 0x%02x is in %v (%v), want %v", m.Addr, got, err, want)
	}
	r, err := ipmi.GetSensorReading(ctx, c, to(m.Addr), m.HotSwapSensor)
	if err != nil {
		t.Fatalf("reading the hot-swap sensor of 0x%02x: %v", m.Addr, err)
	}
	if r.States != 1<<want {
		t.Fatalf("hot-swap sensor of 0x%02x reads states 0x%04x, want %v", m.Addr, r.States, want)
	}
}

// wantPower checks the present power level of the board over IPMI (Get
// Power Level, steady state) and in the shelf.
func (s *simShelf) wantPower(t *testing.T, ctx context.Context, c ipmi.Conn, m sim.MCConfig, want uint8) {
	t.Helper()
	pl, err := ipmi.GetPowerLevel(ctx, c, to(m.Addr), 0, ipmi.PowerSteadyState)
	if err != nil {
		t.Fatalf("Get Power Level of 0x%02x: %v", m.Addr, err)
	}
	if pl.Level != want {
		t.Fatalf("Get Power Level of 0x%02x says level %d, want %d", m.Addr, pl.Level, want)
	}
	if got, err := s.sh.PowerLevel(m.Addr); err != nil || got != want {
		t.Fatalf("shelf says power level %d (%v) for 0x%02x, want %d", got, err, m.Addr, want)
	}
}

// wantPolicy checks the activation policy over IPMI and in the shelf.
func (s *simShelf) wantPolicy(t *testing.T, ctx context.Context, c ipmi.Conn, m sim.MCConfig, want ipmi.ActivationPolicy) {
	t.Helper()
	p, err := ipmi.GetFRUActivationPolicy(ctx, c, to(m.Addr), 0)
	if err != nil {
		t.Fatalf("Get FRU Activation Policy of 0x%02x: %v", m.Addr, err)
	}
	if p != want {
		t.Fatalf("Get FRU Activation Policy of 0x%02x: %+v, want %+v", m.Addr, p, want)
	}
	locked, dl, err := s.sh.Policy(m.Addr)
	if err != nil || locked != want.Locked || dl != want.DeactivationLocked {
		t.Fatalf("shelf says policy locked=%t deactivation-locked=%t (%v) for 0x%02x, want %+v", locked, dl, err, m.Addr, want)
	}
}

func wantCode(t *testing.T, err error, want ipmi.CompletionCode) {
	t.Helper()
	var be *rmcpp.BridgeError
	if errors.As(err, &be) {
		t.Fatalf("got a bridging failure %v, want completion code %s of the command", err, want)
	}
	if cc, ok := ipmi.CodeOf(err); !ok || cc != want {
		t.Fatalf("got %v, want completion code %s", err, want)
	}
}

func TestClientCipherSuites(t *testing.T) {
	tests := []struct {
		name        string
		shelfSuites []uint8
		client      []int
		want        int
		wantErr     error
	}{
		{"defaults on both sides", nil, nil, 17, nil},
		{"17 preferred over 3", []uint8{17, 3}, []int{17, 3}, 17, nil},
		{"3 preferred over 17", []uint8{17, 3}, []int{3, 17}, 3, nil},
		{"3 only", []uint8{17, 3}, []int{3}, 3, nil},
		{"shelf offers 3 only", []uint8{3}, []int{17, 3}, 3, nil},
		{"shelf offers 17 only", []uint8{17}, []int{3, 17}, 17, nil},
		{"no common suite", []uint8{3}, []int{17}, 0, rmcpp.ErrNegotiation},
		{"suite 0 refused by the client", []uint8{17, 3}, []int{0}, 0, rmcpp.ErrSuiteRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startShelf(t, func(c *sim.Config) { c.CipherSuites = tc.shelfSuites })
			cfg := s.clientConfig(t)
			cfg.CipherSuites = tc.client
			ctx := testCtx(t)
			sess, err := rmcpp.Dial(ctx, cfg)
			c := s.sh.Counters()
			if tc.wantErr != nil {
				if err == nil {
					sess.Close()
					t.Fatalf("Dial succeeded with suite %d", sess.CipherSuite())
				}
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Dial: %v, want %v", err, tc.wantErr)
				}
				if c.SessionsOpened != 0 {
					t.Errorf("%d sessions opened", c.SessionsOpened)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer sess.Close()
			if got := sess.CipherSuite(); got != tc.want {
				t.Errorf("cipher suite %d, want %d", got, tc.want)
			}
			// The pre-session requests were answered in the IPMI 1.5
			// format the client sends first: nothing was dropped, so the
			// client never waited for a timeout to fall back to the IPMI
			// 2.0 format, and each was asked exactly once.
			if c.Dropped != 0 || c.RefusedV15 != 0 {
				t.Errorf("the shelf dropped %d packets (%d IPMI 1.5) while the session was set up", c.Dropped, c.RefusedV15)
			}
			if c.PreSessionV15 != 2 {
				t.Errorf("%d IPMI 1.5 pre-session requests answered, want 2 (authentication capabilities, cipher suites)", c.PreSessionV15)
			}
			for _, cmd := range []uint8{0x38, 0x54} {
				if n := c.Commands[sim.CommandKey{Addr: s.cfg.Addr, NetFn: ipmi.NetFnApp, Cmd: cmd}]; n != 1 {
					t.Errorf("command 0x%02x asked %d times, want once", cmd, n)
				}
			}
			if c.SessionsOpened != 1 || s.srv.Sessions() != 1 {
				t.Errorf("%d sessions opened, %d active", c.SessionsOpened, s.srv.Sessions())
			}
			id, err := ipmi.GetDeviceID(ctx, sess, ipmi.Addr{})
			if err != nil {
				t.Fatal(err)
			}
			if id.ManufacturerID != s.cfg.ManufacturerID || id.ProductID != s.cfg.ProductID {
				t.Errorf("device ID %+v, want manufacturer 0x%x product 0x%x", id, s.cfg.ManufacturerID, s.cfg.ProductID)
			}
		})
	}
}

var bridgeStyles = []struct {
	name  string
	style sim.BridgeStyle
}{{"separate", sim.BridgeSeparate}, {"embedded", sim.BridgeEmbedded}}

func TestClientBridgeStyles(t *testing.T) {
	for _, bs := range bridgeStyles {
		t.Run(bs.name, func(t *testing.T) {
			s := startShelf(t, func(c *sim.Config) { c.Bridge = bs.style })
			sess := s.dial(t, nil)
			ctx := testCtx(t)
			id, err := ipmi.GetDeviceID(ctx, sess, ipmi.Addr{})
			if err != nil {
				t.Fatal(err)
			}
			if id.ManufacturerID != s.cfg.ManufacturerID || id.ProductID != s.cfg.ProductID {
				t.Errorf("shelf manager device ID %+v", id)
			}
			blades := s.blades(t)[:2]
			bridged := 0
			for _, m := range blades {
				// Asked of the IPMC itself, bridged...
				ai, err := ipmi.GetAddressInfo(ctx, sess, to(m.Addr), ipmi.ByFRU(0))
				bridged++
				if err != nil {
					t.Fatal(err)
				}
				want := ipmi.AddressInfo{HardwareAddress: m.Addr >> 1, IPMBAddress: m.Addr, SiteID: m.SiteNumber, SiteType: ipmi.SiteType(m.SiteType)}
				if ai != want {
					t.Errorf("address info from 0x%02x: %+v, want %+v", m.Addr, ai, want)
				}
				// ... and of the shelf manager, locally.
				for _, q := range []ipmi.AddressQuery{ipmi.ByIPMBAddress(m.Addr), ipmi.ByHardwareAddress(m.Addr >> 1), ipmi.BySite(ipmi.SiteType(m.SiteType), m.SiteNumber)} {
					ai, err := ipmi.GetAddressInfo(ctx, sess, ipmi.Addr{}, q)
					if err != nil {
						t.Fatal(err)
					}
					if ai != want {
						t.Errorf("address info %+v from the shelf manager: %+v, want %+v", q, ai, want)
					}
				}
				did, err := ipmi.GetDeviceID(ctx, sess, to(m.Addr))
				bridged++
				if err != nil {
					t.Fatal(err)
				}
				if !did.ProvidesSDRs || did.ManufacturerID != s.cfg.ManufacturerID {
					t.Errorf("device ID of 0x%02x: %+v", m.Addr, did)
				}
				// A bridged command that fails carries its own completion
				// code, not a bridging failure.
				_, err = ipmi.GetSensorReading(ctx, sess, to(m.Addr), unusedSensor(m))
				bridged++
				wantCode(t, err, ipmi.CCNotPresent)
			}
			c := s.sh.Counters()
			if c.Bridged != bridged {
				t.Errorf("shelf bridged %d requests, want %d", c.Bridged, bridged)
			}
			if st := sess.Stats(); st.Bridged != uint64(bridged) || st.Timeouts != 0 || st.Reconnects != 0 {
				t.Errorf("client stats %+v", st)
			}
			for _, m := range blades {
				if n := c.Commands[sim.CommandKey{Addr: m.Addr, NetFn: ipmi.NetFnGroup, Cmd: ipmi.CmdGetAddressInfo}]; n != 1 {
					t.Errorf("0x%02x got %d Get Address Info, want 1", m.Addr, n)
				}
			}
		})
	}
}

// unusedSensor returns a sensor number that m does not have.
func unusedSensor(m sim.MCConfig) uint8 {
	used := map[uint8]bool{m.HotSwapSensor: true}
	for _, sc := range m.Sensors {
		used[sc.Number] = true
	}
	for n := uint8(0x60); ; n++ {
		if !used[n] {
			return n
		}
	}
}

func TestClientBridgeToAbsentAddress(t *testing.T) {
	for _, bs := range bridgeStyles {
		t.Run(bs.name, func(t *testing.T) {
			s := startShelf(t, func(c *sim.Config) { c.Bridge = bs.style })
			sess := s.dial(t, nil)
			ctx := testCtx(t)
			absent := s.absentAddr()
			_, err := ipmi.GetDeviceID(ctx, sess, to(absent))
			var be *rmcpp.BridgeError
			if !errors.As(err, &be) {
				t.Fatalf("Get Device ID of absent 0x%02x: %v, want a *rmcpp.BridgeError", absent, err)
			}
			if be.Code != 0x83 || be.To != to(absent) {
				t.Errorf("bridge error %+v, want NAK on write (0x83) for 0x%02x", be, absent)
			}
			if !errors.Is(err, rmcpp.ErrBridge) {
				t.Error("not errors.Is ErrBridge")
			}
			if cc, ok := ipmi.CodeOf(err); ok {
				t.Errorf("bridging failure reported as completion code %s of the bridged command", cc)
			}
			// The session is unharmed.
			m := s.blades(t)[0]
			if _, err := ipmi.GetDeviceID(ctx, sess, to(m.Addr)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestClientUnresponsiveIPMC(t *testing.T) {
	for _, bs := range bridgeStyles {
		t.Run(bs.name, func(t *testing.T) {
			s := startShelf(t, func(c *sim.Config) { c.Bridge = bs.style })
			sess := s.dial(t, func(c *rmcpp.Config) {
				c.BridgeTimeout = 300 * time.Millisecond
				c.Retries = 1
			})
			ctx := testCtx(t)
			blades := s.blades(t)
			lost, alive := blades[0], blades[1:]
			if err := s.sh.SetUnresponsive(lost.Addr, true); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var lostErr error
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, lostErr = ipmi.GetDeviceID(ctx, sess, to(lost.Addr))
			}()
			// Meanwhile the shelf manager and the other IPMCs keep answering.
			errs := make(chan error, 4*len(alive)+4)
			for range 4 {
				for _, m := range alive {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, err := ipmi.GetPICMGProperties(ctx, sess, to(m.Addr))
						errs <- err
					}()
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := ipmi.GetDeviceID(ctx, sess, ipmi.Addr{})
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("request to a responsive controller failed: %v", err)
				}
			}
			switch bs.style {
			case sim.BridgeSeparate:
				// The shelf manager accepted the request; the IPMC's
				// answer never came.
				if !errors.Is(lostErr, rmcpp.ErrTimeout) {
					t.Errorf("request to the unresponsive IPMC: %v, want a timeout", lostErr)
				}
			case sim.BridgeEmbedded:
				// The shelf manager reports the IPMB timeout itself.
				var be *rmcpp.BridgeError
				if !errors.As(lostErr, &be) || be.Code != ipmi.CCTimeout {
					t.Errorf("request to the unresponsive IPMC: %v, want a bridging timeout (0xC3)", lostErr)
				}
			}
			if ctx.Err() != nil {
				t.Fatal("test context ended")
			}
			if st := sess.Stats(); st.Reconnects != 0 {
				t.Errorf("session re-established %d times because of one IPMC", st.Reconnects)
			}
			if c := s.sh.Counters(); c.SessionsOpened != 1 || s.srv.Sessions() != 1 {
				t.Errorf("%d sessions opened, %d active", c.SessionsOpened, s.srv.Sessions())
			}
			// The shelf manager shows the loss as M7 on the IPMC's hot-swap sensor.
			if st, _ := s.sh.State(lost.Addr); st != sim.M7 {
				t.Errorf("lost IPMC in %v", st)
			}
			if err := s.sh.SetUnresponsive(lost.Addr, false); err != nil {
				t.Fatal(err)
			}
			if _, err := ipmi.GetDeviceID(ctx, sess, to(lost.Addr)); err != nil {
				t.Errorf("IPMC answering again: %v", err)
			}
			s.wantState(t, ctx, sess, lost, sim.M4)
		})
	}
}

func TestClientSurvivesRestart(t *testing.T) {
	s := startShelf(t, nil)
	sess := s.dial(t, func(c *rmcpp.Config) {
		c.RequestTimeout = 200 * time.Millisecond
		c.ReconnectMin = 50 * time.Millisecond
	})
	ctx := testCtx(t)
	m := s.blades(t)[0]
	before, err := ipmi.GetDeviceID(ctx, sess, ipmi.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.srv.Sessions() != 0 {
		t.Fatal("sessions survived the restart on the shelf side")
	}
	after, err := ipmi.GetDeviceID(ctx, sess, ipmi.Addr{})
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if after.ManufacturerID != before.ManufacturerID || after.ProductID != before.ProductID {
		t.Errorf("device ID changed: %+v -> %+v", before, after)
	}
	if _, err := ipmi.GetAddressInfo(ctx, sess, to(m.Addr), ipmi.ByFRU(0)); err != nil {
		t.Errorf("bridged after restart: %v", err)
	}
	if st := sess.Stats(); st.Reconnects < 1 {
		t.Errorf("stats %+v: no re-establishment", st)
	}
	c := s.sh.Counters()
	if c.SessionsOpened != 2 || s.srv.Sessions() != 1 {
		t.Errorf("%d sessions opened, %d active; want 2 and 1", c.SessionsOpened, s.srv.Sessions())
	}
	if c.RefusedV15 != 0 {
		t.Errorf("%d IPMI 1.5 packets refused during re-establishment", c.RefusedV15)
	}
}

func TestClientActivationPolicyLocked(t *testing.T) {
	s := startShelf(t, nil)
	sess := s.dial(t, nil)
	ctx := testCtx(t)
	m := s.blades(t)[0]
	s.wantState(t, ctx, sess, m, sim.M4)
	s.wantPolicy(t, ctx, sess, m, ipmi.ActivationPolicy{})

	// Locked matters only in M1: the active board stays active.
	if err := ipmi.SetFRUActivationPolicy(ctx, sess, to(m.Addr), 0, ipmi.PolicyLockedBit, ipmi.ActivationPolicy{Locked: true}); err != nil {
		t.Fatal(err)
	}
	s.wantPolicy(t, ctx, sess, m, ipmi.ActivationPolicy{Locked: true})
	s.steps(2)
	s.wantState(t, ctx, sess, m, sim.M4)

	// The board is pulled and put back: it stays in M1 while Locked.
	if err := s.sh.Extract(m.Addr); err != nil {
		t.Fatal(err)
	}
	s.wantState(t, ctx, sess, m, sim.M5)
	s.steps(2)
	s.wantState(t, ctx, sess, m, sim.M1)
	s.wantPower(t, ctx, sess, m, 0)
	if err := s.sh.Insert(m.Addr); err != nil {
		t.Fatal(err)
	}
	s.steps(4)
	s.wantState(t, ctx, sess, m, sim.M1)

	// Set FRU Activation (activate) is refused outside M2.
	wantCode(t, ipmi.SetFRUActivation(ctx, sess, to(m.Addr), 0, true), ipmi.CCNotSupportedInState)

	// Unlocking lets it go: M2 at once, then the shelf manager activates it.
	if err := ipmi.SetFRUActivationPolicy(ctx, sess, to(m.Addr), 0, ipmi.PolicyLockedBit, ipmi.ActivationPolicy{}); err != nil {
		t.Fatal(err)
	}
	s.wantPolicy(t, ctx, sess, m, ipmi.ActivationPolicy{})
	s.wantState(t, ctx, sess, m, sim.M2)
	s.steps(1)
	s.wantState(t, ctx, sess, m, sim.M3)
	s.steps(1)
	s.wantState(t, ctx, sess, m, sim.M4)
	s.wantPower(t, ctx, sess, m, m.DesiredLevel)
}

func TestClientActivationPolicyDeactivationLocked(t *testing.T) {
	s := startShelf(t, nil)
	sess := s.dial(t, nil)
	ctx := testCtx(t)
	m := s.blades(t)[1]
	// Set both bits one at a time: the mask leaves the other bit alone.
	if err := ipmi.SetFRUActivationPolicy(ctx, sess, to(m.Addr), 0, ipmi.PolicyLockedBit, ipmi.ActivationPolicy{Locked: true}); err != nil {
		t.Fatal(err)
	}
	if err := ipmi.SetFRUActivationPolicy(ctx, sess, to(m.Addr), 0, ipmi.PolicyDeactivationLockedBit, ipmi.ActivationPolicy{DeactivationLocked: true}); err != nil {
		t.Fatal(err)
	}
	s.wantPolicy(t, ctx, sess, m, ipmi.ActivationPolicy{Locked: true, DeactivationLocked: true})
	if err := ipmi.SetFRUActivationPolicy(ctx, sess, to(m.Addr), 0, ipmi.PolicyLockedBit, ipmi.ActivationPolicy{}); err != nil {
		t.Fatal(err)
	}
	s.wantPolicy(t, ctx, sess, m, ipmi.ActivationPolicy{DeactivationLocked: true})

	// The handle opens, but the board stays active while Deactivation-Locked.
	if err := s.sh.Extract(m.Addr); err != nil {
		t.Fatal(err)
	}
	s.steps(4)
	s.wantState(t, ctx, sess, m, sim.M4)
	s.wantPower(t, ctx, sess, m, m.DesiredLevel)

	// Clearing the lock lets the extraction proceed to M1, power off.
	if err := ipmi.SetFRUActivationPolicy(ctx, sess, to(m.Addr), 0, ipmi.PolicyDeactivationLockedBit, ipmi.ActivationPolicy{}); err != nil {
		t.Fatal(err)
	}
	s.wantState(t, ctx, sess, m, sim.M5)
	s.steps(1)
	s.wantState(t, ctx, sess, m, sim.M6)
	s.steps(1)
	s.wantState(t, ctx, sess, m, sim.M1)
	s.wantPower(t, ctx, sess, m, 0)
	s.wantPolicy(t, ctx, sess, m, ipmi.ActivationPolicy{})
}

func TestClientActivationAndPowerLevel(t *testing.T) {
	// Manual activation: the shelf manager moves FRUs only when told.
	s := startShelf(t, func(c *sim.Config) { c.ManualActivation = true })
	sess := s.dial(t, nil)
	ctx := testCtx(t)
	m := s.blades(t)[0]
	other := s.blades(t)[1]
	s.wantPower(t, ctx, sess, m, m.DesiredLevel)

	// The power levels as configured.
	for _, tc := range []struct {
		typ   ipmi.PowerType
		level uint8
		draw  []uint8
	}{
		{ipmi.PowerSteadyState, m.DesiredLevel, m.PowerLevels},
		{ipmi.PowerDesiredSteadyState, m.DesiredLevel, m.PowerLevels},
		{ipmi.PowerEarly, m.DesiredLevel, m.EarlyPowerLevels},
		{ipmi.PowerDesiredEarly, m.DesiredLevel, m.EarlyPowerLevels},
	} {
		pl, err := ipmi.GetPowerLevel(ctx, sess, to(m.Addr), 0, tc.typ)
		if err != nil {
			t.Fatal(err)
		}
		if pl.Level != tc.level || !slices.Equal(pl.Draw, tc.draw) || pl.Multiplier != m.PowerMultiplier || pl.Delay != m.PowerDelay {
			t.Errorf("power type %d: %+v, want level %d draw %v multiplier %d delay %d", tc.typ, pl, tc.level, tc.draw, m.PowerMultiplier, m.PowerDelay)
		}
	}

	// Set Power Level changes the level of an active FRU; an undefined level is refused.
	if err := ipmi.SetPowerLevel(ctx, sess, to(m.Addr), 0, 1, false); err != nil {
		t.Fatal(err)
	}
	s.wantPower(t, ctx, sess, m, 1)
	s.wantState(t, ctx, sess, m, sim.M4)
	wantCode(t, ipmi.SetPowerLevel(ctx, sess, to(m.Addr), 0, uint8(len(m.PowerLevels))+1, false), ipmi.CCInvalidDataField)
	s.wantPower(t, ctx, sess, m, 1)

	// Deactivate: M4 -> M6 -> M1, power level 0, and the FRU is locked in M1.
	if err := ipmi.SetFRUActivation(ctx, sess, to(m.Addr), 0, false); err != nil {
		t.Fatal(err)
	}
	s.wantState(t, ctx, sess, m, sim.M6)
	s.steps(1)
	s.wantState(t, ctx, sess, m, sim.M1)
	s.wantPower(t, ctx, sess, m, 0)
	s.wantPolicy(t, ctx, sess, m, ipmi.ActivationPolicy{Locked: true})
	if !hasHotSwapEvent(s.sh.SEL(), m, sim.M4, sim.M6, sim.CauseShelfManager) {
		t.Errorf("no M4->M6 hot-swap event with cause 'shelf manager' for 0x%02x in the SEL", m.Addr)
	}
	// Nothing else moved.
	s.wantState(t, ctx, sess, other, sim.M4)
	wantCode(t, ipmi.SetFRUActivation(ctx, sess, to(m.Addr), 0, false), ipmi.CCNotSupportedInState)

	// Unlock: M2, where it waits for the shelf manager.
	if err := ipmi.SetFRUActivationPolicy(ctx, sess, to(m.Addr), 0, ipmi.PolicyLockedBit, ipmi.ActivationPolicy{}); err != nil {
		t.Fatal(err)
	}
	s.steps(3)
	s.wantState(t, ctx, sess, m, sim.M2)
	// Activate: M3, still unpowered until a power level is granted.
	if err := ipmi.SetFRUActivation(ctx, sess, to(m.Addr), 0, true); err != nil {
		t.Fatal(err)
	}
	s.steps(3)
	s.wantState(t, ctx, sess, m, sim.M3)
	s.wantPower(t, ctx, sess, m, 0)
	level := uint8(len(m.PowerLevels))
	if err := ipmi.SetPowerLevel(ctx, sess, to(m.Addr), 0, level, false); err != nil {
		t.Fatal(err)
	}
	s.wantState(t, ctx, sess, m, sim.M4)
	s.wantPower(t, ctx, sess, m, level)

	// Power level 0 deactivates as well.
	if err := ipmi.SetPowerLevel(ctx, sess, to(m.Addr), 0, 0, false); err != nil {
		t.Fatal(err)
	}
	s.steps(1)
	s.wantState(t, ctx, sess, m, sim.M1)
	s.wantPower(t, ctx, sess, m, 0)
}

// hasHotSwapEvent reports whether sel holds the PICMG hot-swap event of
// m's FRU 0 going from one state to another for cause.
func hasHotSwapEvent(sel []sim.SELEntry, m sim.MCConfig, was, now sim.MState, cause uint8) bool {
	for _, e := range sel {
		if e.SensorType == shelf.SensorTypeHotSwap && e.Sensor == m.HotSwapSensor && e.Generator&0xfe == m.Addr &&
			e.Data == [3]byte{0xA0 | byte(now), cause<<4 | byte(was), 0} {
			return true
		}
	}
	return false
}

// TestClientTypedCommands checks the PICMG commands that ipmi_sim answers
// too (its lab tests use the same decoders) against the simulated shelf.
func TestClientTypedCommands(t *testing.T) {
	s := startShelf(t, nil)
	sess := s.dial(t, nil)
	ctx := testCtx(t)
	main, err := ipmi.ReadSDRRepository(ctx, sess, ipmi.Addr{}, ipmi.MainSDR)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		addr  ipmi.Addr
		slave uint8
		mc    *sim.MCConfig
	}
	targets := []target{{ipmi.Addr{}, s.cfg.Addr, nil}}
	for i := range s.cfg.IPMCs {
		targets = append(targets, target{to(s.cfg.IPMCs[i].Addr), s.cfg.IPMCs[i].Addr, &s.cfg.IPMCs[i]})
	}
	for _, tg := range targets {
		t.Run(fmt.Sprintf("0x%02x", tg.slave), func(t *testing.T) {
			p, err := ipmi.GetPICMGProperties(ctx, sess, tg.addr)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(p.VersionString(), "2.") || p.IPMCFRUID != 0 || p.MaxFRUID < p.IPMCFRUID {
				t.Errorf("PICMG properties %+v (version %s)", p, p.VersionString())
			}
			ai, err := ipmi.GetAddressInfo(ctx, sess, tg.addr, ipmi.ByFRU(0))
			if err != nil {
				t.Fatal(err)
			}
			if ai.IPMBAddress != tg.slave || ai.HardwareAddress != tg.slave>>1 || ai.FRUID != 0 {
				t.Errorf("address info %+v", ai)
			}

			lp, err := ipmi.GetFRULEDProperties(ctx, sess, tg.addr, 0)
			if err != nil {
				t.Fatal(err)
			}
			if lp.General&1 == 0 {
				t.Errorf("LED properties %+v: no blue LED (PICMG 3.0 requires it)", lp)
			}
			for _, led := range lp.LEDIDs() {
				cc, err := ipmi.GetLEDColorCapabilities(ctx, sess, tg.addr, 0, led)
				if err != nil {
					t.Fatal(err)
				}
				if !cc.Supports(cc.DefaultLocal) || !cc.Supports(cc.DefaultOverride) || (led == 0 && !cc.Supports(ipmi.LEDBlue)) {
					t.Errorf("LED %d color capabilities %+v", led, cc)
				}
				st, err := ipmi.GetFRULEDState(ctx, sess, tg.addr, 0, led)
				if err != nil {
					t.Fatal(err)
				}
				if !st.HasLocal || st.OverrideEnabled {
					t.Errorf("LED %d state %+v, want local control", led, st)
				}
				if led == 0 && st.Local.Function != ipmi.LEDOff {
					t.Errorf("blue LED of an active FRU: %+v, want off", st.Local)
				}
				// Override and give back.
				set := ipmi.LEDSetting{Function: ipmi.LEDOn, Color: cc.DefaultOverride}
				if err := ipmi.SetFRULEDState(ctx, sess, tg.addr, 0, led, set); err != nil {
					t.Fatal(err)
				}
				if st, err := ipmi.GetFRULEDState(ctx, sess, tg.addr, 0, led); err != nil || !st.OverrideEnabled || st.Effective() != set {
					t.Errorf("LED %d after override: %+v %v", led, st, err)
				}
				if err := ipmi.SetFRULEDState(ctx, sess, tg.addr, 0, led, ipmi.LEDSetting{Function: ipmi.LEDLocalControl, Color: ipmi.LEDNoChange}); err != nil {
					t.Fatal(err)
				}
				if st, err := ipmi.GetFRULEDState(ctx, sess, tg.addr, 0, led); err != nil || st.OverrideEnabled {
					t.Errorf("LED %d back to local control: %+v %v", led, st, err)
				}
			}

			fc, err := ipmi.GetFRUControlCapabilities(ctx, sess, tg.addr, 0)
			if err != nil {
				t.Fatal(err)
			}
			if tg.mc != nil {
				want := ipmi.FRUControlCaps{WarmReset: tg.mc.ControlCapabilities&0x02 != 0, GracefulReboot: tg.mc.ControlCapabilities&0x04 != 0, DiagInterrupt: tg.mc.ControlCapabilities&0x08 != 0}
				if fc != want {
					t.Errorf("FRU control capabilities %+v, want %+v", fc, want)
				}
				for _, o := range []ipmi.FRUControlOption{ipmi.FRUColdReset, ipmi.FRUWarmReset, ipmi.FRUGracefulReboot, ipmi.FRUDiagInterrupt} {
					before := s.sh.Resets(tg.slave)
					err := ipmi.FRUControl(ctx, sess, tg.addr, 0, o)
					switch {
					case fc.Supports(o) && err != nil:
						t.Errorf("%s: %v", o, err)
					case fc.Supports(o) && s.sh.Resets(tg.slave) != before+1:
						t.Errorf("%s acknowledged but not carried out", o)
					case !fc.Supports(o):
						wantCode(t, err, ipmi.CCInvalidDataField)
					}
				}
			}

			// The device locator record ID names the controller's own MC
			// device locator: in its device SDRs (IPMC) or the main
			// repository (shelf manager).
			id, err := ipmi.GetDeviceLocatorRecordID(ctx, sess, tg.addr, 0)
			if err != nil {
				t.Fatal(err)
			}
			repo := main
			if tg.mc != nil {
				if repo, err = ipmi.ReadSDRRepository(ctx, sess, tg.addr, ipmi.DeviceSDR); err != nil {
					t.Fatal(err)
				}
			}
			i := slices.IndexFunc(repo, func(r ipmi.SDR) bool { return r.Header.RecordID == id })
			if i < 0 {
				t.Fatalf("record 0x%04x not in the repository", id)
			}
			if l := repo[i].MCLocator; l == nil || l.SlaveAddress != tg.slave {
				t.Errorf("record 0x%04x is %+v, want the MC device locator of 0x%02x", id, repo[i].Header, tg.slave)
			}
		})
	}
}

// rawValue applies the IPMI linear conversion y = (M*x + B*10^BExp) * 10^RExp.
func rawValue(sc sim.SensorConfig, raw uint8) float64 {
	return (float64(sc.M)*float64(raw) + float64(sc.B)*math.Pow10(int(sc.BExp))) * math.Pow10(int(sc.RExp))
}

// wantStatus is what Reading.Status should say for sc at raw: the most
// severe threshold reached (IPMI 2.0 §35.8: at or beyond).
func wantStatus(sc sim.SensorConfig, raw uint8) string {
	for _, th := range []ipmi.Threshold{ipmi.UpperNonRecoverable, ipmi.LowerNonRecoverable, ipmi.UpperCritical, ipmi.LowerCritical, ipmi.UpperNonCritical, ipmi.LowerNonCritical} {
		if sc.ThresholdMask&(1<<th) == 0 {
			continue
		}
		v := sc.Thresholds[th]
		if (th >= ipmi.UpperNonCritical && raw >= v) || (th < ipmi.UpperNonCritical && raw <= v) {
			return th.String()
		}
	}
	return "ok"
}

type mcSensors struct {
	owner   ipmi.Addr
	addr    uint8
	hs      uint8
	sensors []sim.SensorConfig
}

func (s *simShelf) allSensors() []mcSensors {
	out := []mcSensors{{ipmi.Addr{}, s.cfg.Addr, s.cfg.HotSwapSensor, s.cfg.Sensors}}
	for _, m := range s.cfg.IPMCs {
		out = append(out, mcSensors{to(m.Addr), m.Addr, m.HotSwapSensor, m.Sensors})
	}
	return out
}

func TestClientSensorSweep(t *testing.T) {
	for _, bs := range bridgeStyles {
		t.Run(bs.name, func(t *testing.T) {
			s := startShelf(t, func(c *sim.Config) { c.Bridge = bs.style })
			sess := s.dial(t, nil)
			ctx := testCtx(t)
			sdrs, err := ipmi.ReadSDRRepository(ctx, sess, ipmi.Addr{}, ipmi.MainSDR)
			if err != nil {
				t.Fatal(err)
			}
			sensors := shelf.SensorsOf(sdrs, s.cfg.Addr)
			raws := map[[2]uint8]uint8{} // (MC, sensor) -> raw reading set
			for _, mc := range s.allSensors() {
				for _, sc := range mc.sensors {
					raws[[2]uint8{mc.addr, sc.Number}] = sc.Raw
				}
			}
			check := func(t *testing.T) {
				t.Helper()
				readings := shelf.ReadSensors(ctx, sess, sensors, shelf.SweepOptions{InFlight: 6, Thresholds: true})
				find := func(owner ipmi.Addr, n uint8) *shelf.Reading {
					for i := range readings {
						if readings[i].Sensor.Owner == owner && readings[i].Sensor.Number == n {
							return &readings[i]
						}
					}
					return nil
				}
				want := 0
				for _, mc := range s.allSensors() {
					want += 1 + len(mc.sensors)
					hs := find(mc.owner, mc.hs)
					st, _ := s.sh.State(mc.addr)
					if hs == nil {
						t.Errorf("hot-swap sensor 0x%02x of 0x%02x not found", mc.hs, mc.addr)
					} else if m, ok := hs.MState(); !ok || m != int(st) || hs.Status() != st.String() {
						t.Errorf("hot-swap sensor of 0x%02x: M%d (%t) %q, want %v (%v)", mc.addr, m, ok, hs.Status(), st, hs.Err)
					}
					for _, sc := range mc.sensors {
						r := find(mc.owner, sc.Number)
						if r == nil {
							t.Errorf("sensor %q (0x%02x on 0x%02x) not found", sc.Name, sc.Number, mc.addr)
							continue
						}
						raw := raws[[2]uint8{mc.addr, sc.Number}]
						if r.Err != nil || !r.HasValue || r.Sensor.Name != sc.Name || r.Raw != raw {
							t.Errorf("sensor 0x%02x on 0x%02x: %q raw %d value %v (%t) err %v; want %q raw %d", sc.Number, mc.addr, r.Sensor.Name, r.Raw, r.Value, r.HasValue, r.Err, sc.Name, raw)
							continue
						}
						if v := rawValue(sc, raw); math.Abs(r.Value-v) > 1e-9*math.Max(1, math.Abs(v)) {
							t.Errorf("%s on 0x%02x: %v, want %v", sc.Name, mc.addr, r.Value, v)
						}
						if r.Sensor.Record.Units.Base != sc.Unit || r.Sensor.Record.SensorType != sc.Type {
							t.Errorf("%s on 0x%02x: unit %d type 0x%02x", sc.Name, mc.addr, r.Sensor.Record.Units.Base, r.Sensor.Record.SensorType)
						}
						if got, want := r.Status(), wantStatus(sc, raw); got != want {
							t.Errorf("%s on 0x%02x at raw %d: status %q, want %q", sc.Name, mc.addr, raw, got, want)
						}
						if r.Thresholds == nil || r.Thresholds.Mask != sc.ThresholdMask {
							t.Errorf("%s on 0x%02x: thresholds %+v, want mask 0x%02x", sc.Name, mc.addr, r.Thresholds, sc.ThresholdMask)
							continue
						}
						for i := range 6 {
							if sc.ThresholdMask&(1<<i) != 0 && r.Thresholds.Value[i] != sc.Thresholds[i] {
								t.Errorf("%s on 0x%02x: threshold %s %d, want %d", sc.Name, mc.addr, ipmi.Threshold(i), r.Thresholds.Value[i], sc.Thresholds[i])
							}
						}
					}
				}
				if len(readings) != want {
					t.Errorf("%d sensors read, the shelf has %d", len(readings), want)
				}
			}
			t.Run("as configured", check)

			// Move every sensor with an upper or lower threshold across it.
			for _, mc := range s.allSensors() {
				for _, sc := range mc.sensors {
					raw := sc.Raw
					switch {
					case sc.ThresholdMask&(1<<ipmi.UpperCritical) != 0:
						raw = sc.Thresholds[ipmi.UpperCritical]
					case sc.ThresholdMask&(1<<ipmi.LowerNonCritical) != 0:
						raw = sc.Thresholds[ipmi.LowerNonCritical]
					}
					if err := s.sh.SetSensorRaw(mc.addr, sc.Number, raw); err != nil {
						t.Fatal(err)
					}
					raws[[2]uint8{mc.addr, sc.Number}] = raw
				}
			}
			t.Run("thresholds crossed", check)
		})
	}
}

// TestClientUserPrivilegeCannotChangeState: a user-level session reads
// the hot-swap state and power level but cannot deactivate a FRU, change
// its power level or its policy, even bridged.
func TestClientUserPrivilegeCannotChangeState(t *testing.T) {
	s := startShelf(t, nil)
	var user sim.User
	for _, u := range s.cfg.Users {
		if u.MaxPrivilege == sim.PrivUser {
			user = u
		}
	}
	if user.Name == "" {
		t.Fatal("no user-level account in the shelf configuration")
	}
	sess := s.dial(t, func(c *rmcpp.Config) {
		c.Username, c.Password, c.Privilege = user.Name, []byte(user.Password), rmcpp.PrivilegeUser
	})
	ctx := testCtx(t)
	m := s.blades(t)[0]
	s.wantState(t, ctx, sess, m, sim.M4)
	s.wantPower(t, ctx, sess, m, m.DesiredLevel)
	s.wantPolicy(t, ctx, sess, m, ipmi.ActivationPolicy{})
	wantCode(t, ipmi.SetFRUActivation(ctx, sess, to(m.Addr), 0, false), ipmi.CCInsufficientPrivilege)
	wantCode(t, ipmi.SetPowerLevel(ctx, sess, to(m.Addr), 0, 0, false), ipmi.CCInsufficientPrivilege)
	wantCode(t, ipmi.SetFRUActivationPolicy(ctx, sess, to(m.Addr), 0, ipmi.PolicyLockedBit, ipmi.ActivationPolicy{Locked: true}), ipmi.CCInsufficientPrivilege)
	s.steps(3)
	s.wantState(t, ctx, sess, m, sim.M4)
	s.wantPower(t, ctx, sess, m, m.DesiredLevel)
	s.wantPolicy(t, ctx, sess, m, ipmi.ActivationPolicy{})
}
