package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hpiagent/hpi"
	"hpiagent/internal/labshelf"
	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/pet"
	"hpiagent/shelf/rmcpp"
)

// The SNMPv3 user of the trap path (a bench fixture, not a secret).
const (
	petUser     = "benchpet"
	petAuthPass = "bench-auth-pass"
	petPrivPass = "bench-priv-pass"
)

// hotSwapSink turns the poller's hot-swap transitions into domain
// observations, as the agent's monitor does: the domain publishes the HPI
// hot-swap event.
type hotSwapSink struct {
	d     *hpi.Domain
	local uint8
	// res maps a controller's IPMB address to its FRU 0 resource.
	res map[uint8]hpi.ResourceID
}

func (s *hotSwapSink) HandleShelfEvent(_ context.Context, e shelf.Event) {
	if e.HotSwap == nil {
		return
	}
	addr := e.GeneratorAddr()
	if a, ok := e.Controller(s.local); ok && a.Local() {
		addr = s.local
	}
	id, ok := s.res[addr]
	if !ok {
		return
	}
	prev := hpi.MStateUnknown
	if e.HotSwap.PreviousKnown {
		prev = hpi.MState(e.HotSwap.Previous)
	}
	_, _, _ = s.d.ObserveMState(id, prev, hpi.MState(e.HotSwap.New), hpi.HsCauseUnknown, time.Now())
}

// petPayload builds an IPMI PET (PET v1.0 §3.2) for a PICMG hot-swap
// event entering state m of the FRU 0 hot-swap sensor num of the
// controller at owner. seq is a counter, not the SEL record ID a shelf
// manager would put there, so a consumer cannot match the trap to its SEL
// record (shelf.Monitor counts it unconfirmed); the targeted read it
// starts is the same.
func petPayload(owner, num, entity, inst, m uint8, seq uint16) []byte {
	b := make([]byte, 16) // GUID
	copy(b, "HPIAGENT-BENCH01")
	b = binary.BigEndian.AppendUint16(b, seq)
	b = binary.BigEndian.AppendUint32(b, uint32(time.Since(time.Date(1998, 1, 1, 0, 0, 0, 0, time.UTC)).Seconds()))
	b = binary.BigEndian.AppendUint16(b, 0xffff)
	b = append(b, 0x20, 0x20, 0x08, owner, num, entity, inst)
	b = append(b, 0xa0|m, 0xff, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff)
	b = append(b, 0x19)
	b = binary.BigEndian.AppendUint32(b, 0x0000315a)
	b = binary.BigEndian.AppendUint16(b, 0x0001)
	return append(b, 0xc1)
}

// sendPET sends one SNMPv3 authPriv PET with net-snmp's snmptrap, as a
// shelf manager does when the event enters its SEL. Each call uses an
// engine ID of its own, so that every trap is a first message of its
// engine for the receiver's USM time window.
func sendPET(ctx context.Context, dir, target string, payload []byte, specific uint32, engine uint64) error {
	ent := "1.3.6.1.4.1.3183.1.1"
	args := []string{"-v", "3", "-u", petUser, "-l", "authPriv", "-a", "SHA", "-A", petAuthPass, "-x", "AES", "-X", petPrivPass,
		"-e", fmt.Sprintf("0x80001f8880%016x", engine),
		"udp:" + target, "", fmt.Sprintf("%s.0.%d", ent, specific), ent + ".1", "x", hex.EncodeToString(payload)}
	cmd := exec.CommandContext(ctx, "snmptrap", args...)
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+dir, "SNMPCONFPATH="+dir, "MIBS=", "MIBDIRS="+dir, "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("snmptrap: %w: %s", err, out)
	}
	return nil
}

// latencyAgent is one event path whose delay is measured: something that
// publishes HPI hot-swap events, and what a PET trap does to it.
type latencyAgent struct {
	name string
	// waitState waits for the HPI hot-swap event of the resource at path
	// into state st and returns when it was received.
	waitState func(ctx context.Context, path hpi.EntityPath, st hpi.HsState) (time.Time, error)
	// drain forgets the events received so far.
	drain func()
	// trap takes a PET; nil for an agent without a trap receiver.
	trap  func(pet.Trap)
	stats func() string
	stop  func()
}

// domainWaiter waits for hot-swap events on a subscription of d.
func domainWaiter(d *hpi.Domain) (wait func(context.Context, hpi.EntityPath, hpi.HsState) (time.Time, error), drain func(), unsubscribe func(), err error) {
	sub, err := d.Subscribe(4096)
	if err != nil {
		return nil, nil, nil, err
	}
	wait = func(ctx context.Context, path hpi.EntityPath, st hpi.HsState) (time.Time, error) {
		for {
			ev, err := sub.Receive(ctx)
			if err != nil {
				return time.Time{}, err
			}
			if ev.Type == hpi.EventHotSwap && ev.Entity.Equal(path) && ev.HotSwap.HotSwapState == st {
				return time.Now(), nil
			}
		}
	}
	drain = func() {
		for sub.Pending() > 0 {
			_, _ = sub.Receive(context.Background())
		}
	}
	return wait, drain, sub.Unsubscribe, nil
}

// pollerAgent is the poll path alone: shelf.Poller (default intervals:
// hot-swap sensors every 2 s) into hpi.Domain, a trap asking for a
// targeted poll of the sensor it names.
func pollerAgent(ctx context.Context, t *testing.T, sh *labshelf.Shelf, snap *shelf.Snapshot, log *slog.Logger) *latencyAgent {
	t.Helper()
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	d := hpi.NewDomain(hpi.Config{Logger: log})
	wait, drain, unsub, err := domainWaiter(d)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := shelf.Apply(snap, d, shelf.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sink := &hotSwapSink{d: d, local: snap.LocalAddr, res: map[uint8]hpi.ResourceID{}}
	res, _ := shelf.Model(snap, shelf.ModelOptions{})
	for i, r := range res {
		if r.FRU.ID == 0 {
			sink.res[r.MC.IPMBAddr] = applied.Resources[i]
		}
	}
	var sensors []shelf.Sensor
	for _, m := range snap.MCs {
		for _, s := range m.Sensors {
			if s.Record.Type != ipmi.SDREventOnly {
				sensors = append(sensors, s)
			}
		}
	}
	poller := shelf.NewPoller(sess, sensors, shelf.PollConfig{}, sink, log)
	pctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = poller.Run(pctx) }()
	return &latencyAgent{
		name:      "hpiagent, shelf.Poller + hpi.Domain",
		waitState: wait,
		drain:     drain,
		trap: func(tr pet.Trap) {
			if m := snap.MCAt(tr.PET.SensorDevice); m != nil {
				poller.PollNow(m.Addr, tr.PET.SensorNumber)
			}
		},
		stats: func() string { return fmt.Sprintf("%+v", poller.Stats()) },
		stop:  func() { cancel(); wg.Wait(); unsub(); sess.Close() },
	}
}

// monitorAgent is the agent's shelf monitor (shelf.Monitor with its
// defaults: polls, SEL follower every 2 s, traps as hints).
func monitorAgent(ctx context.Context, t *testing.T, sh *labshelf.Shelf, log *slog.Logger) *latencyAgent {
	t.Helper()
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	d := hpi.NewDomain(hpi.Config{Logger: log})
	wait, drain, unsub, err := domainWaiter(d)
	if err != nil {
		t.Fatal(err)
	}
	m := shelf.NewMonitor(shelf.MonitorConfig{Name: "bench"}, sess, d, log)
	mctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- m.Run(mctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for m.Stats().Discoveries < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("monitor: no discovery within 60 s: %+v", m.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &latencyAgent{
		name:      "hpiagent, shelf.Monitor",
		waitState: wait,
		drain:     drain,
		trap:      m.Trap,
		stats:     func() string { return fmt.Sprintf("%+v", m.Stats()) },
		stop:      func() { cancel(); <-errc; unsub(); sess.Close() },
	}
}

// hsEvent is one HPI hot-swap event hpievents printed.
type hsEvent struct {
	at    time.Time
	path  string
	state string
}

// openhpidAgent is openhpid with the ipmidirect plugin, its events read
// with hpievents (line-buffered through stdbuf). ipmidirect learns of
// hot-swap transitions from the shelf manager's SEL; it has no trap
// receiver.
func openhpidAgent(ctx context.Context, t *testing.T, sh *labshelf.Shelf) *latencyAgent {
	t.Helper()
	labshelf.RequireTools(t, "openhpid", "hpitree", "hpievents", "stdbuf")
	dir := t.TempDir()
	conf := openhpiConf(t, sh, dir, 1, "")
	_, _, _, port, stopd := openhpidRun(ctx, t, conf, dir, 0, 2*time.Second)
	cmd := exec.Command("stdbuf", "-oL", "hpievents", "-N", fmt.Sprintf("127.0.0.1:%d", port), "-t", "BLOCK")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	events := make(chan hsEvent, 1024)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(out)
		var cur hsEvent
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimSpace(v)
			switch k {
			case "Event Type":
				cur = hsEvent{}
			case "From Resource":
				cur.path = v
			case "HotSwapState":
				cur.at, cur.state = time.Now(), v
				select {
				case events <- cur:
				default:
				}
			}
		}
	}()
	return &latencyAgent{
		name: "openhpid + ipmidirect",
		waitState: func(ctx context.Context, path hpi.EntityPath, st hpi.HsState) (time.Time, error) {
			for {
				select {
				case <-ctx.Done():
					return time.Time{}, ctx.Err()
				case ev, ok := <-events:
					if !ok {
						return time.Time{}, fmt.Errorf("hpievents exited")
					}
					// hpievents prints the OpenHPI names, as HsState.String does.
					if ev.path == path.String() && ev.state == st.String() {
						return ev.at, nil
					}
				}
			}
		},
		drain: func() {
			for len(events) > 0 {
				<-events
			}
		},
		stats: func() string { return "" },
		stop:  func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); stopd() },
	}
}

// latencyResult is one agent's measurements.
type latencyResult struct {
	agent           string
	poll, trap      []float64
	console, stats  string
	accepted, drops uint64
}

// TestBenchHotSwapLatency: a blade's hot-swap sensor changes state in
// ipmi_sim and its IPMC's PICMG hot-swap event enters the shelf manager's
// SEL (emulator console, as the lab's blade payload does it), and the
// time until the HPI hot-swap event is published is measured: for
// hpiagent's poll path alone (shelf.Poller into hpi.Domain) and its shelf
// monitor (shelf.Monitor: polls and SEL), each without a trap and with an
// SNMPv3 authPriv PET sent with the change (snmptrap → shelf/pet receiver
// → targeted poll), and for openhpid + ipmidirect (SEL, no trap
// receiver). Changes come at random moments so that they fall at random
// points of the poll cycles.
func TestBenchHotSwapLatency(t *testing.T) {
	n := runs(t) + runs(t)/3
	if v, err := strconv.Atoi(os.Getenv("HPIAGENT_BENCH_HOTSWAP_ITER")); err == nil && v > 0 {
		n = v
	}
	labshelf.RequireTools(t, "snmptrap")
	sh := labshelf.Start(t, labshelf.WithoutHotSwapSync())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)

	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := shelf.Discover(ctx, sess, shelf.DiscoverOptions{Logger: quiet})
	sess.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The blade: the last IPMC in a front-board site with a hot-swap
	// sensor, found by discovery (no address or sensor number assumed).
	var blade *shelf.MC
	var hs *shelf.Sensor
	for _, m := range snap.MCs {
		f := m.FRUOf(0)
		if !m.ShelfManager && f != nil && f.HotSwap != nil && f.Site != nil && f.Site.SiteType == ipmi.SiteBoard {
			blade, hs = m, f.HotSwap
		}
	}
	if blade == nil {
		t.Fatal("no blade with a hot-swap sensor discovered")
	}
	bladePath := shelf.EntityPathOf(blade, blade.FRUOf(0), shelf.ModelOptions{})
	// setState moves the blade's hot-swap sensor from prev to m without
	// an event of ipmi_sim's own (its events carry no previous state or
	// FRU, and ipmidirect ignores them), and logs the PICMG hot-swap event
	// the IPMC sends (generator = the IPMC, data 1 = A0h|state, data 2 =
	// cause 0 (normal)<<4 | previous state, data 3 = FRU 0).
	setState := func(prev, m uint8) error {
		_, err := sh.Console(ctx,
			fmt.Sprintf("sensor_set_bit_clr_rest 0x%02x %d %d %d 0", blade.IPMBAddr, hs.Record.OwnerLUN, hs.Number, m),
			fmt.Sprintf("sel_add 0x%02x 0x02 0 0 0 0 0x%02x 0x%02x 0x04 0x%02x 0x%02x 0x6f 0x%02x 0x%02x 0x00",
				snap.LocalAddr, blade.IPMBAddr, hs.Record.OwnerLUN, shelf.SensorTypeHotSwap, hs.Number, 0xa0|m, prev))
		return err
	}
	trapDir := t.TempDir()
	seq := uint16(0)
	engine := rand.Uint64() >> 8
	cur := uint8(1)

	run := func(a *latencyAgent, iters int) latencyResult {
		defer a.stop()
		var recv *pet.Receiver
		if a.trap != nil {
			recv, err = pet.Listen(ctx, pet.Config{
				Addr:    "127.0.0.1:0",
				Users:   []pet.User{{Name: petUser, Auth: pet.AuthSHA, AuthPassphrase: pet.Secret(petAuthPass), Priv: pet.PrivAES128, PrivPassphrase: pet.Secret(petPrivPass)}},
				Handler: a.trap,
				Logger:  quiet,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer recv.Close()
		}
		// Start from M1 and let the agent see it.
		if cur != 1 {
			if err := setState(cur, 1); err != nil {
				t.Fatal(err)
			}
			cur = 1
		}
		time.Sleep(3 * time.Second)
		a.drain()
		var console []float64
		measure := func(withTrap bool) (lat []float64) {
			for range iters {
				// A random moment of the poll cycles.
				time.Sleep(time.Duration(rand.Int64N(int64(2200 * time.Millisecond))))
				next := uint8(3) - cur // M1 <-> M2
				want, _ := hpi.HsStateFromMState(hpi.MState(next))
				t0 := time.Now()
				if err := setState(cur, next); err != nil {
					t.Fatal(err)
				}
				console = append(console, time.Since(t0).Seconds())
				if withTrap {
					seq++
					engine++
					spec := uint32(shelf.SensorTypeHotSwap)<<16 | 0x6f<<8 | uint32(next)
					if err := sendPET(ctx, trapDir, recv.Addr().String(), petPayload(blade.IPMBAddr, hs.Number, hs.Record.EntityID, hs.EntityInstance, next, seq), spec, engine); err != nil {
						t.Fatal(err)
					}
				}
				wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
				at, err := a.waitState(wctx, bladePath, want)
				wcancel()
				if err != nil {
					t.Fatalf("%s: no HPI hot-swap event into %s: %v", a.name, want, err)
				}
				lat = append(lat, at.Sub(t0).Seconds())
				cur = next
			}
			return lat
		}
		r := latencyResult{agent: a.name}
		r.poll = measure(false)
		if a.trap != nil {
			r.trap = measure(true)
			st := recv.Stats()
			r.accepted, r.drops = st.Accepted, st.DroppedTotal()
		}
		r.console = fmt.Sprintf("%.1f", median(console)*1000)
		r.stats = a.stats()
		return r
	}
	results := []latencyResult{
		run(pollerAgent(ctx, t, sh, snap, quiet), n),
		run(monitorAgent(ctx, t, sh, quiet), n),
		run(openhpidAgent(ctx, t, sh), min(n, 20)),
	}

	// The trap path's own floor: one snmptrap process.
	var snmptrapCost []float64
	sink, err := pet.Listen(ctx, pet.Config{Addr: "127.0.0.1:0", Handler: func(pet.Trap) {}, Logger: quiet,
		Users: []pet.User{{Name: petUser, Auth: pet.AuthSHA, AuthPassphrase: pet.Secret(petAuthPass), Priv: pet.PrivAES128, PrivPassphrase: pet.Secret(petPrivPass)}}})
	if err != nil {
		t.Fatal(err)
	}
	for range min(n, 20) {
		seq++
		engine++
		t0 := time.Now()
		if err := sendPET(ctx, trapDir, sink.Addr().String(), petPayload(blade.IPMBAddr, hs.Number, hs.Record.EntityID, hs.EntityInstance, 1, seq), 0xf06f01, engine); err != nil {
			t.Fatal(err)
		}
		snmptrapCost = append(snmptrapCost, time.Since(t0).Seconds())
	}
	sink.Close()

	pct := func(xs []float64, p float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		i := int(p*float64(len(s))+0.5) - 1
		return s[max(0, min(len(s)-1, i))]
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "Hot-swap state change in ipmi_sim (with the IPMC's PICMG SEL event) → HPI hot-swap event published (blade IPMC 0x%02x, hot-swap sensor #%d, M1 <-> M2), %s\n\n",
		blade.IPMBAddr, hs.Number, time.Now().UTC().Format(time.DateOnly))
	ref := median(results[len(results)-1].poll)
	fmt.Fprintf(&sb, "| agent | path | changes | median ms | p90 ms | p99 ms | max ms | openhpid / this (median) |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		row := func(name string, xs []float64) {
			if len(xs) == 0 {
				return
			}
			fmt.Fprintf(&sb, "| %s | %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f |\n", r.agent, name, len(xs), median(xs)*1000, pct(xs, 0.9)*1000, pct(xs, 0.99)*1000, slices.Max(xs)*1000, ref/median(xs))
		}
		row("no trap", r.poll)
		row("SNMPv3 authPriv PET sent with the change", r.trap)
	}
	for _, r := range results[:2] {
		fmt.Fprintf(&sb, "\n%s: no trap / PET (median) = %.1f", r.agent, median(r.poll)/median(r.trap))
	}
	fmt.Fprintf(&sb, "\n\nIncluded in every figure: the emulator console commands that make the change (median ms: ")
	for i, r := range results {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%s %s", r.agent, r.console)
	}
	fmt.Fprintf(&sb, "). Included in the trap figures: one snmptrap process (median %.1f ms to send a trap alone).\n", median(snmptrapCost)*1000)
	for _, r := range results[:2] {
		fmt.Fprintf(&sb, "%s: PET receiver accepted %d, dropped %d; stats %s\n", r.agent, r.accepted, r.drops, r.stats)
	}
	t.Log("\n" + sb.String())
	if err := os.MkdirAll("out", 0o755); err == nil {
		_ = os.WriteFile(filepath.Join("out", "hotswap-latency.md"), []byte(sb.String()), 0o644)
	}
}
