package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
)

// cmdSensors is the one-shot sweep: open a session, read the SDRs (from a
// validated cache when asked), read every sensor and its thresholds, print.
func cmdSensors(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sensors", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("address", "", "shelf manager `host:port` (port 623 if omitted)")
	user := fs.String("user", "", "IPMI user name")
	passFile := fs.String("password-file", "", "`file` holding the password (mode 0600 or stricter)")
	passCred := fs.String("password-credential", "", "systemd credential `name` holding the password")
	passPrompt := fs.Bool("password-prompt", false, "ask for the password on the terminal")
	suites := fs.String("cipher-suites", "17,3", "allowed RMCP+ cipher suites in order of preference (only 17 and 3)")
	cache := fs.String("sdr-cache", "", "SDR cache `file`; reused while the shelf's SDR repository is unchanged")
	cacheAge := fs.Duration("sdr-cache-max-age", 10*time.Minute, "longest use of the SDR cache for a shelf manager that does not timestamp its repository")
	inFlight := fs.Int("in-flight", 6, "sensors read at once")
	withThresholds := fs.Bool("thresholds", true, "also read the thresholds of threshold sensors (one more request each)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *addr == "" || *user == "" {
		fmt.Fprintln(stderr, "hpiagent sensors: -address and -user are required")
		fs.Usage()
		return errUsage
	}
	sc := ShelfConfig{Name: "command-line", Address: *addr, Username: *user, Password: SecretRef{File: *passFile, Credential: *passCred, Prompt: *passPrompt}}
	for _, f := range strings.Split(*suites, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("-cipher-suites: %q is not a number", f)
		}
		sc.CipherSuites = append(sc.CipherSuites, n)
	}
	cfg := Config{Shelves: []ShelfConfig{sc}}
	if err := cfg.setDefaultsAndValidate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	pw, err := (&SecretReader{Prompt: TerminalPrompt(os.Stdin, stderr)}).Read(cfg.Shelves[0].Password)
	if err != nil {
		return fmt.Errorf("password: %w", err)
	}
	sess, err := dialShelf(ctx, cfg.Shelves[0], pw, newLogger(stderr, "warn"))
	if err != nil {
		return err
	}
	defer sess.Close()

	var sdrs []ipmi.SDR
	if *cache != "" {
		sdrs, _, err = shelf.ReadSDRsCached(ctx, sess, ipmi.Addr{}, filepath.Clean(*cache), *cacheAge)
	} else {
		sdrs, err = ipmi.ReadSDRRepository(ctx, sess, ipmi.Addr{}, ipmi.MainSDR)
	}
	if err != nil {
		return fmt.Errorf("reading the SDR repository of %s: %w", sc.Address, err)
	}
	readings := shelf.ReadSensors(ctx, sess, shelf.SensorsOf(sdrs, ipmi.AddrBMC), shelf.SweepOptions{InFlight: *inFlight, Thresholds: *withThresholds})
	if *asJSON {
		return writeReadingsJSON(stdout, readings)
	}
	return shelf.WriteSensorTable(stdout, readings)
}

// dialShelf opens an RMCP+ session to the shelf manager of sc.
func dialShelf(ctx context.Context, sc ShelfConfig, pw []byte, log *slog.Logger) (*rmcpp.Session, error) {
	s, err := rmcpp.Dial(ctx, rmcpp.Config{
		Addr:           sc.Address,
		Username:       sc.Username,
		Password:       pw,
		CipherSuites:   sc.CipherSuites,
		RequestTimeout: time.Duration(sc.RequestTimeout),
		Retries:        *sc.Retries,
		NoRetries:      *sc.Retries == 0,
		Window:         sc.Window,
		Logger:         log.With("shelf", sc.Name),
	})
	if err != nil {
		return nil, fmt.Errorf("shelf %s: %w", sc.Name, err)
	}
	return s, nil
}

type readingJSON struct {
	Name      string   `json:"name"`
	Owner     uint8    `json:"owner_ipmb,omitempty"`
	Number    uint8    `json:"number"`
	Value     *float64 `json:"value,omitempty"`
	Unit      string   `json:"unit,omitempty"`
	Status    string   `json:"status"`
	Error     string   `json:"error,omitempty"`
	RawStates uint16   `json:"states"`
}

func writeReadingsJSON(w io.Writer, readings []shelf.Reading) error {
	out := make([]readingJSON, 0, len(readings))
	for _, r := range readings {
		j := readingJSON{Name: r.Sensor.Name, Owner: r.Sensor.Owner.Slave, Number: r.Sensor.Number, Status: r.Status(), RawStates: r.States}
		if r.HasValue {
			v := r.Value
			j.Value, j.Unit = &v, r.Sensor.Record.Units.String()
		}
		if r.Err != nil {
			j.Error = r.Err.Error()
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
