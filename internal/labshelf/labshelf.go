// Package labshelf starts simulated AdvancedTCA shelves for tests: an OpenIPMI
// ipmi_sim process in ATCA mode with a shelf manager (IPMB 0x20), a fan tray
// IPMC (0x72) and four blade IPMCs (0x82, 0x84, 0x86, 0x88), each blade with a
// payload process whose life is its power state and which walks the blade's
// FRU hot-swap sensor through the M-states.
//
// Every shelf runs on its own loopback address with free ports in the test's
// temporary directory, so packages can start shelves in parallel. The lab
// data (command file, SDRs, FRU images) is embedded in the package; see
// README.md for where it comes from and how to regenerate it.
//
// The shelf layout is a lab fixture. Product code must not depend on it: real
// shelves have other addresses, sites, sensor numbers, names and conversion
// factors. Tests use it to compare with ipmitool and FreeIPMI on the same
// simulator.
package labshelf

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"
)

//go:embed lab
var labFiles embed.FS

// Lab credentials from lab/lan.conf.tmpl.
const (
	adminUser        = "admin"
	adminPassword    = "adminpass"
	operatorUser     = "operator"
	operatorPassword = "oppass"
	monitorUser      = "monitor"
	monitorPassword  = "monpass"
)

// IPMB addresses of the lab shelf's controllers.
const (
	// ShMC is the shelf manager (the BMC at the end of the LAN channel).
	ShMC uint8 = 0x20
	// FanTray is the fan tray IPMC.
	FanTray uint8 = 0x72
)

// blades lists the blade IPMCs; each has a payload process (power control).
func blades() []uint8 { return []uint8{0x82, 0x84, 0x86, 0x88} }

// payloadMCs lists every MC with a payload process (startcmd in lan.conf).
func payloadMCs() []uint8 { return append([]uint8{ShMC}, blades()...) }

// How long Start waits for a shelf to be ready.
const readyTimeout = 60 * time.Second

// HotSwapEvents selects who writes the blades' hot-swap SEL events.
type HotSwapEvents string

const (
	// EventsPICMG (the default): the payload sets the hot-swap sensor
	// silently and adds a PICMG 3.0 conformant event to the shelf manager's
	// SEL (data1 = 0xA0|state, data2 = cause<<4|previous state, data3 = FRU 0).
	EventsPICMG HotSwapEvents = "picmg"
	// EventsSim: ipmi_sim generates the event itself; its data2 and data3
	// are 0xFF (no previous state, no FRU id), as some shelves do.
	EventsSim HotSwapEvents = "sim"
)

// MainSDR selects the content of the shelf manager's main SDR repository.
type MainSDR string

const (
	// MainSDRFull (the default): like a real shelf manager, the main
	// repository aggregates every MC's locators and sensors (29 sensors).
	MainSDRFull MainSDR = "full"
	// MainSDROwn: the shelf manager's own sensors and the IPMC device
	// locators only; IPMC sensors are visible only in their device SDRs.
	MainSDROwn MainSDR = "own"
)

type config struct {
	events   HotSwapEvents
	hsSync   bool
	mainSDR  MainSDR
	commands []string
}

// Option changes how a shelf is built.
type Option func(*config)

// WithHotSwapEvents selects the hot-swap event style (LAB_HS_EVENTS).
func WithHotSwapEvents(e HotSwapEvents) Option { return func(c *config) { c.events = e } }

// WithoutHotSwapSync leaves the blades' hot-swap sensors alone (LAB_HS_SYNC=0):
// they stay in M1 whatever the payload does, and Start does not wait for M4.
func WithoutHotSwapSync() Option { return func(c *config) { c.hsSync = false } }

// WithMainSDR selects the main SDR repository of the shelf manager.
func WithMainSDR(m MainSDR) Option { return func(c *config) { c.mainSDR = m } }

// WithCommands appends emulator commands (ipmi_sim_cmd(5), one per string)
// to the shelf's command file, so they run before the shelf is ready: for
// example other initial sensor values or thresholds. A command that ipmi_sim
// rejects makes Start fail with its error.
func WithCommands(cmds ...string) Option {
	return func(c *config) { c.commands = append(c.commands, cmds...) }
}

// Shelf is a running ipmi_sim ATCA shelf. Its exported fields are read-only.
type Shelf struct {
	// Host is the loopback address the shelf listens on, e.g. "127.143.7.9".
	Host string
	// Port is the UDP port of the RMCP/RMCP+ LAN channel (channel 1).
	Port int
	// ConsolePort is the TCP port of the ipmi_sim emulator console on Host.
	ConsolePort int
	// User and Password are the administrator's credentials.
	User, Password string
	// OperatorUser and OperatorPassword have operator privilege.
	OperatorUser, OperatorPassword string
	// MonitorUser and MonitorPassword have user privilege.
	MonitorUser, MonitorPassword string
	// Blades are the IPMB addresses of the blade IPMCs with power control.
	Blades []uint8
	// Dir is the runtime directory: Dir/lab holds the shelf's files (the
	// working directory of ipmi_sim), Dir/run its state, logs, payload pid
	// and log files and the board temperature files.
	Dir string

	cfg         config
	serialPorts map[string]int

	mu      sync.Mutex
	cmd     *exec.Cmd
	stdin   io.Closer     // ipmi_sim exits at EOF on its stdin console
	exited  chan struct{} // closed when ipmi_sim has been waited for
	stopped bool
}

// Start starts a fresh ipmi_sim ATCA shelf on a loopback address of its own
// with free ports, in t.TempDir(), and waits until it answers over RMCP+, its
// SEL clock is set and every payload process runs (and, with hot-swap sync,
// every blade has reached M4). A cleanup stops ipmi_sim and its payload
// processes.
//
// Without ipmi_sim or ipmitool the test is skipped, unless the environment
// variable CI is non-empty: then it fails.
func Start(t testing.TB, opts ...Option) *Shelf {
	t.Helper()
	RequireTools(t, "ipmi_sim", "ipmitool")
	cfg := config{events: EventsPICMG, hsSync: true, mainSDR: MainSDRFull}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		t.Fatalf("labshelf: %v", err)
	}
	s := &Shelf{
		User: adminUser, Password: adminPassword,
		OperatorUser: operatorUser, OperatorPassword: operatorPassword,
		MonitorUser: monitorUser, MonitorPassword: monitorPassword,
		Blades: blades(),
		Dir:    t.TempDir(),
		cfg:    cfg,
	}
	t.Cleanup(s.Stop)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.pickEndpoints(); err != nil {
			continue
		}
		err = s.start()
		if err == nil || !errors.Is(err, errBind) {
			break
		}
		s.Stop()
	}
	if err != nil {
		t.Fatalf("labshelf: start shelf: %v", err)
	}
	t.Logf("labshelf: shelf on %s (console %s, dir %s)", s.Addr(), s.ConsoleAddr(), s.Dir)
	return s
}

// RequireTools skips the test when one of the named programs is not
// installed, or fails it when the environment variable CI is non-empty (CI
// must never skip silently).
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("labshelf: %s not installed (Debian packages openipmi, ipmitool, freeipmi-tools)", strings.Join(missing, ", "))
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func (c config) validate() error {
	switch c.events {
	case EventsPICMG, EventsSim:
	default:
		return fmt.Errorf("unknown hot-swap event style %q", c.events)
	}
	switch c.mainSDR {
	case MainSDRFull, MainSDROwn:
	default:
		return fmt.Errorf("unknown main SDR repository %q", c.mainSDR)
	}
	for _, cmd := range c.commands {
		if strings.ContainsAny(cmd, "\r\n") {
			return fmt.Errorf("emulator command %q contains a line break", cmd)
		}
		if strings.TrimSpace(cmd) == "quit" {
			return errors.New("emulator command \"quit\" would stop the shelf")
		}
	}
	return nil
}

// Addr returns the LAN channel's address as "host:port".
func (s *Shelf) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// ConsoleAddr returns the emulator console's address as "host:port".
func (s *Shelf) ConsoleAddr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.ConsolePort)) }

// Restart stops the shelf (if it still runs) and starts a fresh one (new
// state, empty SEL, payloads and hot-swap walk as at Start) on the same host
// and ports, as a shelf manager reboot does. Stop followed later by Restart
// gives an outage of any length.
func (s *Shelf) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var err error
	// A port of the old instance may take a moment to become free.
	for attempt := 0; attempt < 5; attempt++ {
		t0 := time.Now()
		if err = s.start(); err == nil || !errors.Is(err, errBind) {
			break
		}
		s.Stop()
		t.Logf("labshelf: restart on %s: port in use (%v), retrying", s.Addr(), time.Since(t0))
		time.Sleep(300 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("labshelf: restart shelf on %s: %v", s.Addr(), err)
	}
}

// SetBoardTemp sets the board temperature sensor (#1) of the blade at IPMB
// address addr by writing its value file, which ipmi_sim reads once a second.
// The lab's SDR converts raw to degrees 1:1, so celsius must be 0..255.
func (s *Shelf) SetBoardTemp(addr uint8, celsius int) error {
	if celsius < 0 || celsius > 255 {
		return fmt.Errorf("set board temperature of IPMC 0x%02x: %d °C out of range 0..255", addr, celsius)
	}
	dir := filepath.Join(s.Dir, "run", "sensors")
	name := filepath.Join(dir, fmt.Sprintf("%02x-temp", addr))
	if _, err := os.Stat(name); err != nil {
		return fmt.Errorf("set board temperature of IPMC 0x%02x: no temperature file: %w", addr, err)
	}
	tmp, err := os.CreateTemp(dir, ".temp-*")
	if err != nil {
		return fmt.Errorf("set board temperature of IPMC 0x%02x: %w", addr, err)
	}
	_, werr := fmt.Fprintf(tmp, "%d\n", celsius)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("set board temperature of IPMC 0x%02x: %w", addr, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("set board temperature of IPMC 0x%02x: %w", addr, err)
	}
	return nil
}

// PayloadRunning reports whether the payload process of the MC at IPMB
// address addr runs, that is whether its power is on as the simulator sees
// it. It reads the process table, not IPMI, so tests can check a power
// command against the simulated hardware.
func (s *Shelf) PayloadRunning(addr uint8) (bool, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, "run", fmt.Sprintf("blade-%02x.pid", addr)))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // removed by the payload at power off
	}
	if err != nil {
		return false, fmt.Errorf("read payload pid of MC 0x%02x: %w", addr, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return false, fmt.Errorf("payload pid file of MC 0x%02x: %w", addr, err)
	}
	for _, p := range s.processes() {
		if p == pid {
			return true, nil
		}
	}
	return false, nil // killed after kill_wait, or the shelf is stopped
}

// errBind marks a start that failed because a port was taken.
var errBind = errors.New("address in use")

// pickEndpoints chooses a private loopback address and free ports on it.
// The whole of 127.0.0.0/8 reaches the loopback interface on Linux; a random
// address of its own keeps the shelf away from fixed lab addresses and from
// other shelves. If such addresses cannot be bound, 127.0.0.1 is used.
func (s *Shelf) pickEndpoints() error {
	hosts := []string{
		fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(100), 1+rand.IntN(254), 1+rand.IntN(254)),
		"127.0.0.1",
	}
	var err error
	for _, h := range hosts {
		if err = s.pickPorts(h); err == nil {
			return nil
		}
	}
	return fmt.Errorf("pick loopback address and ports: %w", err)
}

func (s *Shelf) pickPorts(host string) error {
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	u, err := net.ListenPacket("udp4", net.JoinHostPort(host, "0"))
	if err != nil {
		return err
	}
	closers = append(closers, u)
	tcp := func() (int, error) {
		l, err := net.Listen("tcp4", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		closers = append(closers, l)
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	console, err := tcp()
	if err != nil {
		return err
	}
	serial := map[string]int{}
	for _, mc := range payloadMCs() {
		p, err := tcp()
		if err != nil {
			return err
		}
		serial[fmt.Sprintf("%02x", mc)] = p
	}
	s.Host = host
	s.Port = u.LocalAddr().(*net.UDPAddr).Port
	s.ConsolePort = console
	s.serialPorts = serial
	return nil
}

// start builds the runtime directory and starts ipmi_sim on s's endpoints.
func (s *Shelf) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.build(); err != nil {
		return err
	}
	labDir := filepath.Join(s.Dir, "lab")
	runDir := filepath.Join(s.Dir, "run")
	logName := filepath.Join(runDir, "log", "ipmi_sim.log")
	logf, err := os.Create(logName)
	if err != nil {
		return fmt.Errorf("create ipmi_sim log: %w", err)
	}
	defer logf.Close()
	// ipmi_sim does not ignore SIGPIPE: a console client that goes away with
	// a reset while ipmi_sim copies its session log to it kills the shelf
	// (shelfctl.sh in the payloads does that). So start it with SIGPIPE
	// ignored, which exec keeps.
	cmd := exec.Command("/bin/sh", "-c", `trap '' PIPE; exec ipmi_sim "$@"`, "ipmi_sim",
		"-c", "lan.conf", "-f", "shelf.emu", "-s", filepath.Join(runDir, "state"))
	cmd.Dir = labDir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(),
		"LAB_RUN="+runDir,
		"SHELF_CONSOLE_HOST="+s.Host,
		"SHELF_CONSOLE_PORT="+strconv.Itoa(s.ConsolePort),
		"LAB_HS_EVENTS="+string(s.cfg.events),
		"LAB_HS_SYNC="+map[bool]string{true: "1", false: "0"}[s.cfg.hsSync],
	)
	// ipmi_sim shuts down at EOF on stdin (its local console), so it gets a
	// pipe that stays open while the shelf runs. If the test binary dies,
	// the pipe closes and ipmi_sim exits; the payloads follow their parent.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("ipmi_sim stdin: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ipmi_sim: %w", err)
	}
	s.cmd, s.stdin, s.exited, s.stopped = cmd, stdin, make(chan struct{}), false
	exited := s.exited
	go func() {
		cmd.Wait()
		close(exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := s.waitReady(ctx, logName, cmd, exited); err != nil {
		return err
	}
	return nil
}

// build writes the lab files, the rendered lan.conf and a fresh run directory.
func (s *Shelf) build() error {
	labDir := filepath.Join(s.Dir, "lab")
	runDir := filepath.Join(s.Dir, "run")
	for _, d := range []string{labDir, runDir} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("clean %s: %w", d, err)
		}
	}
	err := fs.WalkDir(labFiles, "lab", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(s.Dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := labFiles.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") || strings.HasSuffix(p, ".py") {
			mode = 0o755
		}
		return os.WriteFile(dst, b, mode)
	})
	if err != nil {
		return fmt.Errorf("write lab files to %s: %w", labDir, err)
	}
	tmpl, err := template.ParseFS(labFiles, "lab/lan.conf.tmpl")
	if err != nil {
		return fmt.Errorf("parse lan.conf template: %w", err)
	}
	var bladeNames []string
	for _, b := range blades() {
		bladeNames = append(bladeNames, fmt.Sprintf("%02x", b))
	}
	var conf bytes.Buffer
	if err := tmpl.Execute(&conf, map[string]any{
		"Host": s.Host, "Port": s.Port, "ConsolePort": s.ConsolePort,
		"SerialPorts": s.serialPorts, "Blades": bladeNames,
	}); err != nil {
		return fmt.Errorf("render lan.conf: %w", err)
	}
	if err := os.WriteFile(filepath.Join(labDir, "lan.conf"), conf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write lan.conf: %w", err)
	}
	if len(s.cfg.commands) > 0 {
		emu, err := labFiles.ReadFile("lab/shelf.emu")
		if err != nil {
			return fmt.Errorf("read shelf.emu: %w", err)
		}
		emu = append(emu, "\n# added by labshelf.WithCommands\n"...)
		for _, c := range s.cfg.commands {
			emu = append(emu, c+"\n"...)
		}
		if err := os.WriteFile(filepath.Join(labDir, "shelf.emu"), emu, 0o644); err != nil {
			return fmt.Errorf("write shelf.emu: %w", err)
		}
	}
	stateDir := filepath.Join(runDir, "state", "ipmi_sim", "atcashelf")
	for _, d := range []string{stateDir, filepath.Join(runDir, "log"), filepath.Join(runDir, "sensors")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(runDir, "freeipmi-cache"), 0o700); err != nil {
		return fmt.Errorf("create FreeIPMI cache directory: %w", err)
	}
	sdr, err := labFiles.ReadFile("lab/gen/sdr.20.main." + string(s.cfg.mainSDR))
	if err != nil {
		return fmt.Errorf("read main SDR repository %q: %w", s.cfg.mainSDR, err)
	}
	// Like a repository compiled at shelf start, its most recent addition
	// time is now (regen.sh leaves 0 there).
	stamp := fmt.Appendf(nil, "last_add_time:i:%d\n", time.Now().Unix())
	if rest, ok := bytes.CutPrefix(sdr, []byte("last_add_time:i:0\n")); ok {
		sdr = append(stamp, rest...)
	}
	if err := os.WriteFile(filepath.Join(stateDir, "sdr.20.main"), sdr, 0o644); err != nil {
		return fmt.Errorf("write main SDR repository: %w", err)
	}
	for _, b := range blades() {
		if err := os.WriteFile(filepath.Join(runDir, "sensors", fmt.Sprintf("%02x-temp", b)), []byte("36\n"), 0o644); err != nil {
			return fmt.Errorf("write board temperature file: %w", err)
		}
	}
	freeipmiConf := fmt.Sprintf("username %s\npassword %s\n", s.User, s.Password)
	if err := os.WriteFile(filepath.Join(runDir, "freeipmi.conf"), []byte(freeipmiConf), 0o600); err != nil {
		return fmt.Errorf("write FreeIPMI configuration: %w", err)
	}
	return nil
}

// commandFileErrors returns the error lines ipmi_sim printed while it ran
// its command file, each after the command it echoed before (comments start
// with "#"). The log's lines end in "\n\r".
func commandFileErrors(log []byte) []string {
	var errs []string
	prev := ""
	for _, l := range strings.Split(string(log), "\n") {
		l = strings.Trim(l, "\r")
		if commandFileError.MatchString(l) {
			errs = append(errs, fmt.Sprintf("%s: %s", prev, l))
		}
		if strings.TrimSpace(l) != "" {
			prev = l
		}
	}
	return errs
}

var commandFileError = regexp.MustCompile(`^(\*\*|Could not|Unable|Invalid|Error)`)

// waitReady waits until the LAN channel answers an RMCP presence ping, sets
// the SEL clock, then waits until the console accepts commands, checks that
// the command file ran without errors and waits until every payload process
// runs (with hot-swap sync: until every blade reached M4).
func (s *Shelf) waitReady(ctx context.Context, logName string, sim *exec.Cmd, exited <-chan struct{}) error {
	fail := func(what string, err error) error {
		log, _ := os.ReadFile(logName)
		if lines := bindFailures(log); len(lines) > 0 {
			return fmt.Errorf("%s: %w: %v: %s", what, errBind, err, strings.Join(lines, "; "))
		}
		return fmt.Errorf("%s: %w\nipmi_sim log (tail):\n%s", what, err, tail(log, 2000))
	}
	poll := func(check func(context.Context) error) error {
		var err error
		for {
			select {
			case <-exited:
				return fmt.Errorf("ipmi_sim exited (%v)", sim.ProcessState)
			default:
			}
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			go func() { // a check ends when ipmi_sim does
				select {
				case <-exited:
					cancel()
				case <-cctx.Done():
				}
			}()
			err = check(cctx)
			cancel()
			if err == nil {
				return nil
			}
			if errors.As(err, new(errPermanent)) {
				return err
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if err := poll(func(ctx context.Context) error { return asfPing(ctx, s.Addr()) }); err != nil {
		return fail("wait for RMCP presence pong from "+s.Addr(), err)
	}
	// SEL time stamps start at 0 ("Pre-Init"): give the shelf a clock, then
	// let the payloads start their hot-swap walk (blade.sh waits for it).
	if _, err := s.Ipmitool(ctx, "sel", "time", "set", "now"); err != nil {
		return fail("set SEL time", err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "run", "sel-clock-set"), nil, 0o644); err != nil {
		return fmt.Errorf("mark SEL clock set: %w", err)
	}
	if err := poll(func(ctx context.Context) error {
		_, err := s.Console(ctx)
		return err
	}); err != nil {
		return fail("wait for emulator console "+s.ConsoleAddr(), err)
	}
	if log, err := os.ReadFile(logName); err != nil {
		return fmt.Errorf("read ipmi_sim log: %w", err)
	} else if errs := commandFileErrors(log); len(errs) > 0 {
		return fmt.Errorf("errors in the shelf's command file:\n%s\nipmi_sim log (tail):\n%s",
			strings.Join(errs, "\n"), tail(log, 2000))
	}
	for _, mc := range payloadMCs() {
		hs := s.cfg.hsSync && mc != ShMC
		if err := poll(func(context.Context) error { return s.payloadReady(mc, hs) }); err != nil {
			return fail(fmt.Sprintf("wait for payload of MC 0x%02x", mc), err)
		}
	}
	return nil
}

// payloadReady reports whether the payload of mc has written its pid file
// and, if hs, has walked its hot-swap sensor to M4.
func (s *Shelf) payloadReady(mc uint8, hs bool) error {
	run := filepath.Join(s.Dir, "run")
	if _, err := os.Stat(filepath.Join(run, fmt.Sprintf("blade-%02x.pid", mc))); err != nil {
		return err
	}
	if !hs {
		return nil
	}
	log, err := os.ReadFile(filepath.Join(run, fmt.Sprintf("blade-%02x.log", mc)))
	if err != nil {
		return err
	}
	if i := bytes.Index(log, []byte("hot-swap to M")); i >= 0 {
		return errPermanent{fmt.Errorf("payload could not set the hot-swap sensor: %s", bytes.SplitN(log[i:], []byte("\n"), 2)[0])}
	}
	if !bytes.Contains(log, []byte("-> M4 (cause")) {
		return errors.New("hot-swap sensor not yet in M4")
	}
	return nil
}

// errPermanent marks a readiness check that will not succeed by waiting.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

// bindFailures returns the lines of ipmi_sim's log that say a port was taken
// ("Unable to bind to LAN port: Address already in use", "bind to console
// socket: Address already in use").
func bindFailures(log []byte) []string {
	var lines []string
	for _, l := range strings.Split(string(log), "\n") {
		if l = strings.Trim(l, "\r"); strings.Contains(l, "Address already in use") {
			lines = append(lines, l)
		}
	}
	return lines
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// asfPing sends an RMCP/ASF presence ping to addr and waits for the pong.
func asfPing(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	// RMCP v1.0, seq 0xFF (no ACK), class ASF; ASF IANA 4542, presence ping.
	ping := []byte{0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x4c, 0x00, 0x00}
	if _, err := c.Write(ping); err != nil {
		return err
	}
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if n >= 12 && buf[3] == 0x06 && buf[8] == 0x40 && buf[9] == 0x4c {
			return nil
		}
	}
}

// Stop kills ipmi_sim and every payload process of the shelf and waits for
// them to go. It is idempotent and safe to call from a cleanup.
func (s *Shelf) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.stopped {
		return
	}
	s.stopped = true
	pgid := s.cmd.Process.Pid // Setpgid: the group id is ipmi_sim's pid
	// Kill the whole group first (ipmi_sim, payloads, their sleeps), so no
	// payload runs its power-off handler against a dying simulator.
	syscall.Kill(-pgid, syscall.SIGKILL)
	s.stdin.Close()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
	}
	// Anything that left the group but still works in the shelf's directory.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := s.processes()
		if len(left) == 0 || time.Now().After(deadline) {
			return
		}
		for _, p := range left {
			syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processes lists the live (not zombie) processes that belong to this shelf:
// ipmi_sim, the payloads and their children all work in Dir/lab.
func (s *Shelf) processes() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		cwd = strings.TrimSuffix(cwd, " (deleted)")
		if err != nil || !inDir(cwd, filepath.Join(s.Dir, "lab")) {
			continue
		}
		if zombie(pid) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

func inDir(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// zombie reports whether pid has exited and only waits to be reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) state ...; comm may contain spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}
