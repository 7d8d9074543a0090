package watchdog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	uwd "github.com/u-root/u-root/pkg/watchdog"
	"golang.org/x/sys/unix"

	"hpiagent/shelf/ipmi"
)

// Device is one watchdog (node_exporter collector style: small and
// uniform). Arm starts it, Feed restarts its countdown, Disarm stops it on
// a clean shutdown. A device that cannot be disarmed says so with an error.
type Device interface {
	Name() string
	Arm(ctx context.Context) error
	Feed(ctx context.Context) error
	Disarm(ctx context.Context) error
}

// PreTimeoutInterrupt is the IPMI watchdog pre-timeout interrupt.
type PreTimeoutInterrupt uint8

// Pre-timeout interrupts (IPMI 2.0 table 27-4, bits 6:4).
const (
	PreTimeoutNone PreTimeoutInterrupt = 0
	PreTimeoutSMI  PreTimeoutInterrupt = 1
	PreTimeoutNMI  PreTimeoutInterrupt = 2 // a diagnostic interrupt: the kernel can panic and dump
	PreTimeoutMsg  PreTimeoutInterrupt = 3 // messaging interrupt
)

// IPMIConfig configures the BMC watchdog device.
type IPMIConfig struct {
	// Conn reaches the controller: the local BMC or IPMC (shelf/devipmi
	// on /dev/ipmi0), or a shelf manager's RMCP+ session that bridges to
	// the blade's IPMC. Required.
	Conn ipmi.Conn
	// Addr is the controller, normally the zero Addr (the controller at
	// the end of Conn); an IPMB address when Conn bridges to it.
	Addr ipmi.Addr
	// Timeout is the countdown. Default 60 s: several feeding intervals,
	// and longer than a slow health check, so only a real hang or a
	// deliberate stop lets it expire. At most 6553.5 s.
	Timeout time.Duration
	// Action on expiry. Default ipmi.WatchdogHardReset (a reset is enough
	// to stop the node's services; power down would need an operator).
	Action ipmi.WatchdogAction
	// PreTimeout is the pre-timeout interrupt and PreInterval how long
	// before expiry it fires. Default none / 0; with NMI the kernel can
	// write a crash dump before the reset. PreInterval < Timeout.
	PreTimeout  PreTimeoutInterrupt
	PreInterval time.Duration
}

// IPMI is the BMC watchdog timer (Set/Reset Watchdog Timer, SMS/OS use).
type IPMI struct{ cfg IPMIConfig }

// NewIPMI validates cfg and returns the device.
func NewIPMI(cfg IPMIConfig) (*IPMI, error) {
	if cfg.Conn == nil {
		return nil, fmt.Errorf("watchdog: IPMI watchdog without a BMC connection")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.Timeout > 6553500*time.Millisecond {
		return nil, fmt.Errorf("watchdog: IPMI watchdog timeout %s above 6553.5 s", cfg.Timeout)
	}
	if cfg.Action == ipmi.WatchdogNoAction {
		cfg.Action = ipmi.WatchdogHardReset
	}
	if cfg.PreTimeout > PreTimeoutMsg || cfg.PreInterval < 0 || cfg.PreInterval >= cfg.Timeout || cfg.PreInterval > 255*time.Second {
		return nil, fmt.Errorf("watchdog: IPMI pre-timeout %d / %s invalid for timeout %s", cfg.PreTimeout, cfg.PreInterval, cfg.Timeout)
	}
	return &IPMI{cfg: cfg}, nil
}

// Name implements Device.
func (w *IPMI) Name() string {
	if w.cfg.Addr.Local() {
		return "ipmi-bmc"
	}
	return "ipmi-bmc (" + w.cfg.Addr.String() + ")"
}

func (w *IPMI) set(ctx context.Context, action ipmi.WatchdogAction, disarm bool) error {
	wd := ipmi.Watchdog{
		Use: ipmi.WatchdogUseSMSOS, DontLog: false, Running: false, Action: action,
		PreTimeout: uint8(w.cfg.PreTimeout), PreInterval: uint8(w.cfg.PreInterval / time.Second),
		ExpirationFlags: 1 << uint(ipmi.WatchdogUseSMSOS), Initial: w.cfg.Timeout,
	}
	if disarm {
		wd.PreTimeout, wd.PreInterval = 0, 0
	}
	return ipmi.SetWatchdog(ctx, w.cfg.Conn, w.cfg.Addr, wd)
}

// Arm implements Device: Set Watchdog Timer (SMS/OS use, action,
// pre-timeout, countdown), then Reset Watchdog Timer to start it.
func (w *IPMI) Arm(ctx context.Context) error {
	if err := w.set(ctx, w.cfg.Action, false); err != nil {
		return fmt.Errorf("watchdog: setting the BMC watchdog on %s: %w", w.cfg.Addr, err)
	}
	if err := ipmi.ResetWatchdog(ctx, w.cfg.Conn, w.cfg.Addr); err != nil {
		return fmt.Errorf("watchdog: starting the BMC watchdog on %s: %w", w.cfg.Addr, err)
	}
	return nil
}

// Feed implements Device: Reset Watchdog Timer. A controller that lost
// the timer's settings (0x80, after a BMC reset) is set up again.
func (w *IPMI) Feed(ctx context.Context) error {
	err := ipmi.ResetWatchdog(ctx, w.cfg.Conn, w.cfg.Addr)
	if code, ok := ipmi.CodeOf(err); ok && code == ipmi.CCWatchdogUninitialized {
		return w.Arm(ctx)
	}
	if err != nil {
		return fmt.Errorf("watchdog: resetting the BMC watchdog on %s: %w", w.cfg.Addr, err)
	}
	return nil
}

// Disarm implements Device: Set Watchdog Timer with "don't stop" clear and
// no action stops the timer.
func (w *IPMI) Disarm(ctx context.Context) error {
	if err := w.set(ctx, ipmi.WatchdogNoAction, true); err != nil {
		return fmt.Errorf("watchdog: stopping the BMC watchdog on %s: %w", w.cfg.Addr, err)
	}
	return nil
}

// DevConfig configures the kernel watchdog device.
type DevConfig struct {
	// Path is the device. Default /dev/watchdog.
	Path string
	// Timeout, if non-zero, is set with WDIOC_SETTIMEOUT (whole seconds).
	// Zero keeps the driver's timeout (softdog: 60 s).
	Timeout time.Duration
}

// Dev is the kernel watchdog (/dev/watchdog) through u-root's watchdog
// package: feeding writes to the device, disarming is the magic close
// ("V"), which a kernel built with CONFIG_WATCHDOG_NOWAYOUT ignores.
type Dev struct {
	cfg DevConfig
	mu  sync.Mutex
	wd  *uwd.Watchdog
}

// NewDev returns the device (not opened yet: Arm opens it).
func NewDev(cfg DevConfig) (*Dev, error) {
	if cfg.Path == "" {
		cfg.Path = uwd.Dev
	}
	if cfg.Timeout < 0 || cfg.Timeout%time.Second != 0 {
		return nil, fmt.Errorf("watchdog: %s timeout %s is not a whole number of seconds", cfg.Path, cfg.Timeout)
	}
	return &Dev{cfg: cfg}, nil
}

// Name implements Device.
func (d *Dev) Name() string { return d.cfg.Path }

// Arm implements Device: opening the device starts the kernel watchdog.
func (d *Dev) Arm(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.wd != nil {
		return nil
	}
	wd, err := uwd.Open(d.cfg.Path)
	if err != nil {
		return fmt.Errorf("watchdog: opening %s: %w", d.cfg.Path, err)
	}
	if d.cfg.Timeout > 0 {
		// u-root's SetTimeout passes a time.Duration where the kernel
		// reads an int of seconds; set it here.
		secs := int(d.cfg.Timeout / time.Second)
		if err := unix.IoctlSetPointerInt(int(wd.File.Fd()), unix.WDIOC_SETTIMEOUT, secs); err != nil {
			_ = wd.MagicClose()
			return fmt.Errorf("watchdog: setting %s timeout to %d s: %w", d.cfg.Path, secs, err)
		}
	}
	d.wd = wd
	return nil
}

// Feed implements Device.
func (d *Dev) Feed(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.wd == nil {
		return fmt.Errorf("watchdog: %s is not armed", d.cfg.Path)
	}
	if err := d.wd.KeepAlive(); err != nil {
		return fmt.Errorf("watchdog: feeding %s: %w", d.cfg.Path, err)
	}
	return nil
}

// Disarm implements Device: the magic close.
func (d *Dev) Disarm(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.wd == nil {
		return nil
	}
	err := d.wd.MagicClose()
	d.wd = nil
	if err != nil {
		return fmt.Errorf("watchdog: magic close of %s: %w", d.cfg.Path, err)
	}
	return nil
}

// Release closes the device without disarming it (the kernel keeps
// counting down): what happens when the agent stops unclean.
func (d *Dev) Release() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.wd == nil {
		return nil
	}
	err := d.wd.Close()
	d.wd = nil
	return err
}

// SystemdConfig configures the systemd service watchdog.
type SystemdConfig struct {
	// Notifier sends to systemd's notification socket. Required: the
	// agent's one Notifier, so that READY=1, STATUS= and WATCHDOG=1 come
	// from one writer and nothing but the Feeder sends WATCHDOG=1.
	Notifier Sender
	// Timeout is systemd's WatchdogSec (SystemdWatchdogTimeout). Default
	// 0, unknown. Informational: the Feeder's Interval must be well below
	// it (half or less).
	Timeout time.Duration
}

// ErrNoSystemdWatchdog: the service runs without NOTIFY_SOCKET.
var ErrNoSystemdWatchdog = errors.New("watchdog: no systemd notification socket")

// Systemd sends WATCHDOG=1 to systemd's notification socket (sd_notify).
// systemd's watchdog cannot be disarmed from the service; Disarm sends
// STOPPING=1 so the manager expects the exit.
type Systemd struct{ cfg SystemdConfig }

// NewSystemd returns the device. A Notifier that is a *Notifier without a
// socket is refused with ErrNoSystemdWatchdog: a configured systemd
// watchdog nobody listens to is a configuration error.
func NewSystemd(cfg SystemdConfig) (*Systemd, error) {
	if cfg.Notifier == nil {
		return nil, fmt.Errorf("watchdog: systemd watchdog without a notifier: %w", ErrNoSystemdWatchdog)
	}
	if n, ok := cfg.Notifier.(*Notifier); ok && !n.Enabled() {
		return nil, ErrNoSystemdWatchdog
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("watchdog: systemd watchdog timeout %s is negative", cfg.Timeout)
	}
	return &Systemd{cfg: cfg}, nil
}

// Timeout is systemd's watchdog timeout (0 if unknown).
func (s *Systemd) Timeout() time.Duration { return s.cfg.Timeout }

// Name implements Device.
func (s *Systemd) Name() string { return "systemd" }

// Arm implements Device (the first ping).
func (s *Systemd) Arm(ctx context.Context) error { return s.cfg.Notifier.Notify(ctx, "WATCHDOG=1") }

// Feed implements Device.
func (s *Systemd) Feed(ctx context.Context) error { return s.cfg.Notifier.Notify(ctx, "WATCHDOG=1") }

// Disarm implements Device.
func (s *Systemd) Disarm(ctx context.Context) error { return s.cfg.Notifier.Notify(ctx, "STOPPING=1") }
