package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
	"hpiagent/shelf/sim"
)

// cmdDemo starts the embedded simulated ATCA shelf on loopback and runs the
// agent's real code path against it over RMCP+: session set-up, SDR
// discovery through the shelf manager, bridged sensor reads, hot-swap
// states. Every minute one blade is pulled out and put back.
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

// scriptHotSwap opens the latch of one blade after another every period
// and closes it again once the blade has reached M1, as an operator
// swapping a board would.
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
