package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
)

// cmdRun monitors the configured shelves: one RMCP+ session per shelf
// manager, SDR discovery, and a sensor sweep every interval, logged.
func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/hpiagent/hpiagent.yaml", "configuration `file`")
	interval := fs.Duration("interval", 10*time.Second, "time between sensor sweeps")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg, err := LoadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	var wg sync.WaitGroup
	for _, sc := range cfg.Shelves {
		wg.Add(1)
		go func() {
			defer wg.Done()
			monitorShelf(ctx, sc, *interval, log.With("shelf", sc.Name))
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// monitorShelf keeps a session to one shelf manager and sweeps its sensors
// until ctx ends. A shelf manager that cannot be reached is retried with
// backoff; the session itself re-establishes after losses.
func monitorShelf(ctx context.Context, sc ShelfConfig, interval time.Duration, log *slog.Logger) {
	backoff := time.Second
	for ctx.Err() == nil {
		err := sweepShelf(ctx, sc, interval, log)
		if ctx.Err() != nil {
			return
		}
		log.Error("shelf monitoring failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

func sweepShelf(ctx context.Context, sc ShelfConfig, interval time.Duration, log *slog.Logger) error {
	sess, err := dialShelf(ctx, sc, log)
	if err != nil {
		return err
	}
	defer sess.Close()
	sdrs, err := ipmi.ReadSDRRepository(ctx, sess, ipmi.Addr{}, ipmi.MainSDR)
	if err != nil {
		return fmt.Errorf("reading the SDR repository: %w", err)
	}
	sensors := shelf.SensorsOf(sdrs, ipmi.AddrBMC)
	log.Info("shelf discovered", "sdrs", len(sdrs), "sensors", len(sensors), "cipher_suite", sess.CipherSuite())
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		failed := 0
		for _, r := range shelf.ReadSensors(ctx, sess, sensors, shelf.SweepOptions{}) {
			switch st := r.Status(); {
			case r.Err != nil:
				failed++
				log.Warn("sensor read failed", "sensor", r.Sensor.Name, "err", r.Err)
			case st != "ok" && r.Sensor.Record.IsThreshold():
				log.Warn("sensor beyond threshold", "sensor", r.Sensor.Name, "value", r.Value, "status", st)
			}
		}
		log.Debug("sweep done", "sensors", len(sensors), "failed", failed)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
