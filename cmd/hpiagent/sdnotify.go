package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"hpiagent/api"
	wdog "hpiagent/watchdog"
)

// The agent talks to systemd through one watchdog.Notifier (d.notify):
// READY=1, STATUS=, RELOADING=1 and STOPPING=1 from the daemon, WATCHDOG=1
// only from the one watchdog.Feeder of the agent, through its systemd
// device. That feeder is the node's when the configuration has a watchdog
// section (gated on quorum in a cluster), else a feeder of systemd's
// watchdog alone, on the agent's health checks, when systemd set
// WATCHDOG_USEC.

// newNotifier returns the Notifier for $NOTIFY_SOCKET as getenv sees it.
func newNotifier(getenv func(string) string) (*wdog.Notifier, error) {
	return wdog.NewNotifier(getenv("NOTIFY_SOCKET"))
}

// selfFenceMarkFile, in the cluster's data directory, keeps a self-fence
// decision for the rest of the boot (watchdog.SelfFenceMark).
const selfFenceMarkFile = "watchdog-self-fence"

// notifyTimeout bounds one notification of the daemon's own.
const notifyTimeout = 2 * time.Second

// sdNotify sends assignments to systemd; a failure is logged, never
// fatal (systemd restarts an agent whose pings stop).
func (d *daemon) sdNotify(assignments ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	defer cancel()
	if err := d.notify.Notify(ctx, assignments...); err != nil {
		d.log.Warn("notifying systemd", "err", err)
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, for RELOADING=1's
// MONOTONIC_USEC= (systemd 253 and later match it against the reload).
func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "0"
	}
	return strconv.FormatInt(ts.Nano()/1000, 10)
}

// watchdogChecks are what feeding the watchdogs depends on: the domain
// answers (a deadlock keeps the check from answering within the
// feeder's check timeout, which stops the feeds), every shelf's loop
// (session and monitor) is still running, and the API serves when one is
// configured. A shelf manager that does not answer is not a reason to
// reset this blade (every blade would): only the agent's own loops count.
func (d *daemon) watchdogChecks() []wdog.HealthCheck {
	checks := []wdog.HealthCheck{
		wdog.CheckFunc{N: "domain", F: func(context.Context) error { d.domain.Info(); return nil }},
		wdog.CheckFunc{N: "shelf-loops", F: func(context.Context) error {
			for _, r := range d.shelves {
				select {
				case <-r.done:
					return fmt.Errorf("the monitor loop of shelf %s stopped", r.cfg.Name)
				default:
				}
			}
			return nil
		}},
	}
	if d.cfg.API.Listen != "" {
		checks = append(checks, wdog.CheckFunc{N: "api", F: func(context.Context) error {
			if d.apiAddr == nil {
				return errors.New("the API is not serving")
			}
			select {
			case <-d.apiDone:
				return errors.New("the API server stopped")
			default:
			}
			return nil
		}})
	}
	if d.opts.healthCheck != nil {
		checks = append(checks, d.opts.healthCheck)
	}
	return checks
}

// feederConfig is the configuration of the agent's one watchdog feeder
// for devs: the agent's health checks, quorum gating when hasQuorum is
// set, and the feeding interval at most half systemd's watchdog timeout.
// Deciding to self-fence is audited (fsynced) and, with mark, recorded
// for this boot (fsynced) before the feeder goes on: an agent restarted
// by systemd after its pings stopped must not feed again.
func (d *daemon) feederConfig(devs []wdog.Device, hasQuorum func() bool, interval, selfFenceAfter time.Duration, mark *wdog.SelfFenceMark) wdog.FeederConfig {
	log := d.log.With("component", "watchdog")
	if d.sdWatchdog > 0 && (interval <= 0 || interval > d.sdWatchdog/2) {
		if interval > 0 {
			log.Info("feeding interval shortened to half systemd's watchdog timeout", "interval", interval, "systemd_timeout", d.sdWatchdog)
		}
		interval = d.sdWatchdog / 2
	}
	return wdog.FeederConfig{Devices: devs, Checks: d.watchdogChecks(), HasQuorum: hasQuorum,
		SelfFenceAfter: selfFenceAfter, Interval: interval, Logger: log,
		OnSelfFence: func(_ context.Context, reason string) {
			// The mark first: it keeps an agent that systemd restarts
			// from feeding again; then the audit record. Both are synced
			// before the feeder's next round.
			if mark != nil {
				if err := mark.Write(time.Now(), reason); err != nil {
					// The feeder stays self-fencing; only a restart of
					// the agent before the reset could feed again.
					log.Error("recording the self-fence for this boot", "err", err)
				}
			}
			d.auditSelf("watchdog.selffence", "ok", reason+"; watchdogs no longer fed, the node resets")
		},
	}
}

// systemdDevice is the device feeding systemd's service watchdog through
// the agent's Notifier.
func (d *daemon) systemdDevice() (*wdog.Systemd, error) {
	return wdog.NewSystemd(wdog.SystemdConfig{Notifier: d.notify, Timeout: d.sdWatchdog})
}

// startSystemdWatchdog starts a feeder of systemd's watchdog alone, on
// the agent's health checks and without quorum, when systemd set a
// watchdog and no other feeder (the node's, from the watchdog section)
// runs.
func (d *daemon) startSystemdWatchdog(ctx context.Context) error {
	if d.feeder() != nil || d.sdWatchdog <= 0 {
		return nil
	}
	if !d.notify.Enabled() {
		d.log.Warn("WATCHDOG_USEC is set without NOTIFY_SOCKET: systemd's watchdog cannot be fed")
		return nil
	}
	dev, err := d.systemdDevice()
	if err != nil {
		return fmt.Errorf("systemd watchdog: %w", err)
	}
	f, err := wdog.NewFeeder(d.feederConfig([]wdog.Device{dev}, nil, 0, 0, nil))
	if err != nil {
		return fmt.Errorf("configuring the systemd watchdog feeder: %w", err)
	}
	if err := d.setFeeder(f); err != nil {
		return err
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	d.sdFeeder, d.sdFeederCancel, d.sdFeederDone = f, cancel, done
	d.auditSelf("watchdog.start", "ok", fmt.Sprintf("devices systemd (health checks only, every %s)", f.Interval()))
	go func() {
		defer close(done)
		if err := f.Run(fctx); err != nil && fctx.Err() == nil {
			d.log.Error("systemd watchdog feeder stopped", "err", err)
		}
	}()
	return nil
}

// stopSystemdWatchdog stops the feeder startSystemdWatchdog started
// (audited), if any.
func (d *daemon) stopSystemdWatchdog() {
	if d.sdFeeder == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	stopFeeder(ctx, d.sdFeeder, d.log.With("component", "watchdog"), d.auditSelf)
	cancel()
	d.sdFeederCancel()
	<-d.sdFeederDone
}

// stopFeeder shuts f down (a clean stop disarms; a self-fencing node
// stays armed) and audits it as watchdog.stop. Safe to call twice: the
// second call finds it stopped and records nothing.
func stopFeeder(ctx context.Context, f *wdog.Feeder, log *slog.Logger, audit func(action, result, detail string)) {
	if f.Status().Stopped {
		return
	}
	err := f.Shutdown(ctx)
	st := f.Status()
	var names []string
	for _, dv := range st.Devices {
		names = append(names, dv.Name)
	}
	switch {
	case err != nil:
		log.Warn("disarming the watchdogs", "err", err)
		audit("watchdog.stop", "failed", err.Error())
	case st.SelfFencing:
		audit("watchdog.stop", "ok", "feeding stopped; watchdogs left armed: the node is self-fencing ("+strings.Join(names, ", ")+")")
	default:
		audit("watchdog.stop", "ok", "watchdogs disarmed: "+strings.Join(names, ", "))
	}
}

// feeder is the agent's one watchdog feeder, nil when it feeds none.
func (d *daemon) feeder() *wdog.Feeder { return d.wd.Load() }

// setFeeder records f as the agent's one watchdog feeder. A second one is
// a programming error: it would feed systemd behind the first's back.
func (d *daemon) setFeeder(f *wdog.Feeder) error {
	if !d.wd.CompareAndSwap(nil, f) {
		return errors.New("a second watchdog feeder")
	}
	return nil
}

// watchdogHealth is the feeder's state for the API (nil without one).
func (d *daemon) watchdogHealth() *api.WatchdogHealth {
	f := d.feeder()
	if f == nil {
		return nil
	}
	st := f.Status()
	h := &api.WatchdogHealth{Feeding: st.Feeding, SelfFencing: st.SelfFencing, Reason: st.Reason, Clustered: st.Clustered}
	if !st.WithheldSince.IsZero() {
		h.Withheld = max(st.At.Sub(st.WithheldSince), 0)
	}
	if !st.QuorumLostSince.IsZero() {
		h.QuorumLost = max(st.At.Sub(st.QuorumLostSince), 0)
	}
	for _, c := range st.Checks {
		h.Checks = append(h.Checks, c.Name)
		if c.Failing {
			h.FailingChecks = append(h.FailingChecks, c.Name)
		}
	}
	for _, dv := range st.Devices {
		h.Devices = append(h.Devices, api.WatchdogDeviceHealth{Name: dv.Name, Armed: dv.Armed, Fed: dv.Fed,
			Feeds: dv.Feeds, Errors: dv.Errors, LastFeed: dv.LastFeed})
	}
	return h
}

// watchdogStatus is the watchdog part of STATUS= ("" without a feeder).
func (d *daemon) watchdogStatus() string {
	f := d.feeder()
	if f == nil {
		return ""
	}
	st := f.Status()
	switch {
	case st.SelfFencing:
		return "watchdogs not fed: self-fencing"
	case st.Feeding:
		return "watchdogs fed"
	case st.Reason != "":
		return "watchdogs not fed: " + st.Reason
	default:
		return "watchdogs not armed"
	}
}
