package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"time"

	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
	"hpiagent/shelf/sim"
)

// cmdDemo starts the embedded simulated ATCA shelf on loopback and runs the
// agent's real code path against it over RMCP+: session set-up, SDR
// discovery through the shelf manager, bridged sensor reads, hot-swap
// states. Every minute one FRU is pulled out and put back, and a few
// sensors drift, now and then past a threshold.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "UDP `address` of the simulated shelf manager (loopback only)")
	interval := fs.Duration("interval", 5*time.Second, "time between sensor sweeps")
	hotswap := fs.Duration("hotswap-every", time.Minute, "time between scripted blade extractions (0: never)")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	log := newLogger(stderr, *level)
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	// A throwaway password: the demo shelf exists only in this process.
	var pw [10]byte
	rand.Read(pw[:])
	password := hex.EncodeToString(pw[:])
	cfg := sim.DefaultConfig()
	cfg.Users = []sim.User{{Name: "hpiagent", Password: password, MaxPrivilege: sim.PrivAdmin}}
	cfg.Start = time.Now() // SEL timestamps in the present
	sh, err := sim.New(cfg, log.With("component", "sim"))
	if err != nil {
		return fmt.Errorf("building the demo shelf: %w", err)
	}
	srv, err := sim.Listen(ctx, sh, *listen, log.With("component", "sim"))
	if err != nil {
		return fmt.Errorf("starting the demo shelf: %w", err)
	}
	defer srv.Close()
	go sh.RunClock(ctx, 100*time.Millisecond)
	fmt.Fprintf(stdout, "demo shelf manager listening on udp %s (RMCP+, cipher suites 17 and 3)\n", srv.Addr())

	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: srv.Addr().String(), Username: "hpiagent", Password: []byte(password), Logger: log})
	if err != nil {
		return err
	}
	defer sess.Close()
	sdrs, err := ipmi.ReadSDRRepository(ctx, sess, ipmi.Addr{}, ipmi.MainSDR)
	if err != nil {
		return fmt.Errorf("reading the demo shelf's SDR repository: %w", err)
	}
	sensors := shelf.SensorsOf(sdrs, ipmi.AddrBMC)
	fmt.Fprintf(stdout, "session up with cipher suite %d; %d SDRs, %d sensors\n", sess.CipherSuite(), len(sdrs), len(sensors))

	if *hotswap > 0 {
		go scriptHotSwap(ctx, sh, *hotswap, log)
	}
	go driftSensors(ctx, sh, time.Second, log)
	mstates := map[string]int{}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		readings := shelf.ReadSensors(ctx, sess, sensors, shelf.SweepOptions{InFlight: 6})
		if ctx.Err() != nil {
			return nil
		}
		fmt.Fprintf(stdout, "\n--- sweep at %s\n", time.Now().Format(time.TimeOnly))
		if err := shelf.WriteSensorTable(stdout, readings); err != nil {
			return err
		}
		for _, r := range readings {
			if m, ok := r.MState(); ok {
				key := fmt.Sprintf("%s (0x%02x)", r.Sensor.Name, r.Sensor.Owner.Slave)
				if prev, seen := mstates[key]; seen && prev != m {
					fmt.Fprintf(stdout, "hot-swap: %s M%d -> M%d\n", key, prev, m)
				}
				mstates[key] = m
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// scriptHotSwap opens the latch of one FRU (blade, fan tray) after another
// every period and closes it again once the FRU has reached M1, as an
// operator swapping a board would.
func scriptHotSwap(ctx context.Context, sh *sim.Shelf, period time.Duration, log *slog.Logger) {
	var blades []uint8
	for _, a := range sh.Addrs() {
		if a != sh.Config().Addr {
			blades = append(blades, a)
		}
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b := blades[i%len(blades)]
		log.Info("demo: opening the latch", "ipmc", fmt.Sprintf("0x%02x", b))
		if err := sh.Extract(b); err != nil {
			log.Warn("demo: extract", "err", err)
			continue
		}
		for ctx.Err() == nil {
			if st, err := sh.State(b); err == nil && st == sim.MState(1) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		log.Info("demo: closing the latch", "ipmc", fmt.Sprintf("0x%02x", b))
		if err := sh.Insert(b); err != nil {
			log.Warn("demo: insert", "err", err)
		}
	}
}

// drifter moves the raw reading of one threshold sensor: a small random
// walk around its nominal value and, now and then, an excursion just past
// its upper non-critical threshold and back.
type drifter struct {
	addr, sensor    uint8
	raw, home, peak uint8
	target          uint8
}

// newDrifter returns a drifter for sc on the controller at addr, or false
// when sc has no upper non-critical threshold comfortably above nominal.
func newDrifter(addr uint8, sc sim.SensorConfig) (*drifter, bool) {
	const unc = 3 // Get Sensor Thresholds order: lnc, lcr, lnr, unc, ucr, unr
	if sc.ThresholdMask&(1<<unc) == 0 || sc.Thresholds[unc] < sc.Nominal+3 || sc.Thresholds[unc] > 253 || sc.Nominal == 0 {
		return nil, false
	}
	return &drifter{addr: addr, sensor: sc.Number, raw: sc.Nominal, home: sc.Nominal, peak: sc.Thresholds[unc] + 1, target: sc.Nominal}, true
}

// step moves the reading 1-3 counts toward its target; at home it jitters
// by one count or, one time in four, sets out for the peak.
func (d *drifter) step(rng *mrand.Rand) {
	raw, target, n := int(d.raw), int(d.target), 1+rng.IntN(3)
	switch {
	case raw < target:
		d.raw = uint8(min(target, raw+n))
	case raw > target:
		d.raw = uint8(max(target, raw-n))
	case d.target == d.peak:
		d.target = d.home
	case rng.IntN(4) == 0:
		d.target = d.peak
	default:
		d.raw = d.home - 1 + uint8(rng.IntN(3))
	}
}

// driftSensors makes the first suitable sensor of the shelf manager and of
// the first IPMC that has one drift, one step every period.
func driftSensors(ctx context.Context, sh *sim.Shelf, period time.Duration, log *slog.Logger) {
	cfg := sh.Config()
	var ds []*drifter
	pick := func(addr uint8, sensors []sim.SensorConfig) bool {
		for _, sc := range sensors {
			if d, ok := newDrifter(addr, sc); ok {
				ds = append(ds, d)
				return true
			}
		}
		return false
	}
	pick(cfg.Addr, cfg.Sensors)
	for _, m := range cfg.IPMCs {
		if pick(m.Addr, m.Sensors) {
			break
		}
	}
	rng := mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, d := range ds {
			d.step(rng)
			if err := sh.SetSensorRaw(d.addr, d.sensor, d.raw); err != nil {
				log.Warn("demo: drifting a sensor", "err", err)
			}
		}
	}
}
