// Command simshelf runs the embedded ATCA shelf manager (shelf/sim) with
// as many blade sensors as a benchmark asks for, so that the agent's
// memory and API can be measured with a large shelf.
//
//	simshelf -dir DIR -sensors 1000 -blades 14
//
// The sensors are spread over the blades (at most 200 per IPMC), each a
// threshold temperature sensor behind IPMB bridging. The shelf's only
// user's password is random and written to DIR/shelf.password (0600). Once
// it listens it prints one JSON line (Ready); it stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"hpiagent/shelf/sim"
)

// Ready is the line printed once the shelf listens.
type Ready struct {
	PID int `json:"pid"`
	// Addr is the shelf manager's UDP address.
	Addr         string `json:"addr"`
	User         string `json:"user"`
	PasswordFile string `json:"password_file"`
	Blades       int    `json:"blades"`
	// Sensors counts the blade sensors (the shelf manager's own and the
	// hot-swap sensors come on top).
	Sensors int `json:"sensors"`
}

// maxPerBlade bounds the sensors of one IPMC: sensor numbers 1..200 leave
// room for the hot-swap sensor.
const maxPerBlade = 200

// Config builds a shelf of blades with sensors sensors in total.
func Config(sensors, blades int, password string) (sim.Config, error) {
	if blades < 1 || blades > 16 {
		return sim.Config{}, fmt.Errorf("%d blades: an ATCA shelf has 1 to 16 slots", blades)
	}
	if sensors < 0 || sensors > blades*maxPerBlade {
		return sim.Config{}, fmt.Errorf("%d sensors on %d blades: at most %d per blade", sensors, blades, maxPerBlade)
	}
	cfg := sim.DefaultConfig()
	cfg.IPMCs = nil
	cfg.Users = []sim.User{{Name: "hpiagent", Password: password, MaxPrivilege: sim.PrivAdmin}}
	cfg.Start = time.Now()
	for b := range blades {
		slot := uint8(b + 1)
		n := sensors / blades
		if b < sensors%blades {
			n++
		}
		mc := sim.MCConfig{
			Addr: 0x80 + 2*slot, Name: fmt.Sprintf("Bench Blade %d", slot), SiteType: sim.SiteATCABoard, SiteNumber: slot,
			EntityID: 0xA0, EntityInstance: 0x60, HotSwapSensor: 0xF0,
			Present: true, Activated: true,
			PowerMultiplier: 5, PowerLevels: []uint8{40, 60, 80}, EarlyPowerLevels: []uint8{30, 40, 50}, PowerDelay: 3, DesiredLevel: 2,
			ControlCapabilities: 0x06,
			Manufacturer:        "Bench Systems", PartNumber: "BB-1", Serial: fmt.Sprintf("BENCH%04d", slot),
		}
		for i := range n {
			raw := uint8(30 + i%40)
			mc.Sensors = append(mc.Sensors, sim.SensorConfig{
				Number: uint8(i + 1), Name: fmt.Sprintf("Temp %d", i+1), Type: 0x01, Unit: 1, M: 1, Raw: raw, Nominal: raw,
				Thresholds: [6]uint8{5, 2, 0, 85, 95, 105}, ThresholdMask: 0x3f, HystPos: 2, HystNeg: 2,
			})
		}
		cfg.IPMCs = append(cfg.IPMCs, mc)
	}
	return cfg, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "simshelf:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simshelf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "`directory` for the password file (required)")
	sensors := fs.Int("sensors", 1000, "number of blade sensors")
	blades := fs.Int("blades", 14, "number of blades (1 to 16)")
	listen := fs.String("listen", "127.0.0.1:0", "UDP `address` (loopback)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("-dir is required")
	}
	var pw [10]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return fmt.Errorf("making a password: %w", err)
	}
	password := hex.EncodeToString(pw[:])
	cfg, err := Config(*sensors, *blades, password)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("making %s: %w", *dir, err)
	}
	pwFile := filepath.Join(*dir, "shelf.password")
	if err := os.WriteFile(pwFile, []byte(password), 0o600); err != nil {
		return fmt.Errorf("writing the password file: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := sim.Start(ctx, cfg, *listen, true, log)
	if err != nil {
		return fmt.Errorf("starting the shelf: %w", err)
	}
	if err := json.NewEncoder(stdout).Encode(Ready{PID: os.Getpid(), Addr: srv.Addr().String(), User: "hpiagent", PasswordFile: pwFile, Blades: *blades, Sensors: *sensors}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
