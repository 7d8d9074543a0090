package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"hpiagent/api"
	"hpiagent/api/audit"
	"hpiagent/hpi"
	"hpiagent/shelf"
	"hpiagent/shelf/pet"
	"hpiagent/shelf/rmcpp"
	wdog "hpiagent/watchdog"
)

// Daemon timing that is not worth a configuration key.
const (
	// readyWait bounds how long READY=1 waits for the first discovery of
	// every shelf: an unreachable shelf manager must not keep the agent
	// (and its API, which reports the shelf as lost) from starting.
	readyWait = 30 * time.Second
	// statusInterval is how often STATUS= is refreshed.
	statusInterval = 5 * time.Second
	// dialRetryMax caps the back-off between RMCP+ session attempts.
	dialRetryMax = 30 * time.Second
	// stopTimeout bounds the clean shutdown of the API and the monitors.
	stopTimeout = 10 * time.Second
)

// daemonOptions are the outside world of a daemon, injected for tests.
type daemonOptions struct {
	// ConfigPath is re-read on SIGHUP.
	ConfigPath string
	// Getenv and LookupEnv read the environment (NOTIFY_SOCKET,
	// WATCHDOG_USEC, JOURNAL_STREAM, CREDENTIALS_DIRECTORY).
	Getenv    func(string) string
	LookupEnv func(string) (string, bool)
	// Stderr receives text logs; StderrFile is it as a file (journal
	// detection), nil when it is not one.
	Stderr     io.Writer
	StderrFile *os.File
	// Prompt asks for {prompt: true} secrets; nil when stdin is not a
	// terminal.
	Prompt func(string) ([]byte, error)
	// Reload delivers reload requests (SIGHUP); nil: none.
	Reload <-chan os.Signal
	// OnReady is called once the agent is ready, with the API address
	// (nil without API) and the status line.
	OnReady func(apiAddr net.Addr, status string)
	// OnReload is called after each reload attempt with its outcome.
	OnReload func(error)
	// started, when set, is called with the running daemon (tests).
	started func(*daemon)
	// Domain, when set, is used instead of a new one (the demo shares its
	// domain with its printer).
	Domain func(hpi.Config) *hpi.Domain
	// healthCheck, when set, is one more health check the watchdog
	// feeder depends on (tests).
	healthCheck wdog.HealthCheck
}

// daemon is a running agent: one HPI domain fed by one shelf.Monitor per
// shelf manager, the PET receiver, and the API.
type daemon struct {
	opts    daemonOptions
	level   *slog.LevelVar
	log     *slog.Logger
	notify  *wdog.Notifier // the one writer on systemd's notification socket
	secrets *SecretReader
	// sdWatchdog is systemd's watchdog timeout for this process (0: none).
	sdWatchdog time.Duration
	// sdFeeder feeds systemd's watchdog alone when no watchdog section
	// gives the node a feeder (nil otherwise); sdFeederCancel ends its
	// loop and sdFeederDone is closed when the loop has ended.
	sdFeeder       *wdog.Feeder
	sdFeederCancel context.CancelFunc
	sdFeederDone   chan struct{}
	// wd is the agent's one watchdog feeder, the node's or sdFeeder, for
	// the health view and STATUS= (read from the API's goroutines).
	wd atomic.Pointer[wdog.Feeder]

	mu  sync.Mutex // guards cfg, sec
	cfg *Config
	sec *Secrets

	domain  *hpi.Domain
	audit   *audit.Log
	shelves []*shelfRun
	api     *api.Server
	apiAddr net.Addr
	apiCert *tls.Certificate // the certificate in use, to see a renewal
	apiDone chan struct{}
	pet     *pet.Receiver
	node    *node // nil without cluster and watchdog sections
	// shelfCancel ends the shelf loops and closes their sessions; stop
	// calls it once the node has closed, so that the watchdog's disarm
	// and a fence in flight still have their shelf sessions.
	shelfCancel context.CancelFunc
}

// shelfRun keeps one shelf manager's session and Monitor alive.
type shelfRun struct {
	cfg  ShelfConfig
	pw   []byte
	log  *slog.Logger
	done chan struct{}

	mu   sync.Mutex
	sess *rmcpp.Session
	mon  *shelf.Monitor
}

func (r *shelfRun) monitor() *shelf.Monitor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mon
}

func (r *shelfRun) session() *rmcpp.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sess
}

// cmdRun is `hpiagent run`: the daemon under systemd (or by hand).
func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/hpiagent/hpiagent.yaml", "configuration `file`")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var ef *os.File
	if f, ok := stderr.(*os.File); ok {
		ef = f
	}
	return runDaemon(ctx, daemonOptions{
		ConfigPath: *path, Getenv: os.Getenv, LookupEnv: os.LookupEnv,
		Stderr: stderr, StderrFile: ef, Prompt: TerminalPrompt(os.Stdin, stderr), Reload: hup,
	})
}

// runDaemon runs the agent until ctx ends, then stops it cleanly.
func runDaemon(ctx context.Context, o daemonOptions) error {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	cfg, err := LoadConfig(o.ConfigPath)
	if err != nil {
		return err
	}
	d := &daemon{opts: o, level: new(slog.LevelVar), cfg: cfg,
		secrets: &SecretReader{LookupEnv: o.LookupEnv, Prompt: o.Prompt}}
	d.level.Set(parseLevel(cfg.LogLevel))
	log, where, err := logSetup{Format: cfg.LogFormat, Level: d.level, Stderr: o.Stderr, StderrFile: o.StderrFile, Getenv: o.Getenv}.build()
	if err != nil {
		return err
	}
	d.log = log
	if d.sec, err = cfg.ReadSecrets(d.secrets); err != nil {
		return fmt.Errorf("configuration %s: %w", o.ConfigPath, err)
	}
	if d.notify, err = newNotifier(o.Getenv); err != nil {
		return err
	}
	defer d.notify.Close()
	if d.sdWatchdog, err = wdog.SystemdWatchdogTimeout(o.Getenv, os.Getpid()); err != nil {
		d.log.Warn("systemd watchdog not used", "err", err)
	}
	d.log.Info("hpiagent starting", "version", version, "config", o.ConfigPath, "logs", where,
		"shelves", len(cfg.Shelves), "api", cfg.API.Listen, "pet", cfg.PET.Listen)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := d.start(runCtx); err != nil {
		cancel()
		d.stop()
		return err
	}
	d.auditSelf("agent.start", "ok", fmt.Sprintf("version %s, %d shelves", version, len(cfg.Shelves)))
	if o.started != nil {
		o.started(d)
	}

	ready := d.waitReady(runCtx)
	if runCtx.Err() == nil {
		d.sdNotify("READY=1", "STATUS="+d.status())
		d.log.Info("hpiagent ready", "status", d.status(), "shelves_discovered", ready)
		if o.OnReady != nil {
			o.OnReady(d.apiAddr, d.status())
		}
	}
	status := time.NewTicker(statusInterval)
	defer status.Stop()
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-o.Reload:
			err := d.reload()
			if o.OnReload != nil {
				o.OnReload(err)
			}
		case <-d.apiDone:
			d.log.Error("the API server stopped; shutting down")
			cancel()
			break loop
		case <-status.C:
			d.sdNotify("STATUS=" + d.status())
		}
	}
	d.sdNotify("STOPPING=1", "STATUS=stopping")
	d.log.Info("hpiagent stopping")
	cancel()
	d.stop()
	d.log.Info("hpiagent stopped")
	return nil
}

// start builds the domain, opens the audit log and starts the monitors,
// the PET receiver and the API.
func (d *daemon) start(ctx context.Context) error {
	cfg := d.cfg
	hc := hpi.Config{EventLogSize: cfg.Domain.EventLogCapacity, Logger: d.log.With("component", "domain")}
	if cfg.Domain.EventLogOverflow == "overwrite" {
		hc.EventLogOverflow = hpi.OverflowOverwrite
	}
	if d.opts.Domain != nil {
		d.domain = d.opts.Domain(hc)
	} else {
		d.domain = hpi.NewDomain(hc)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Audit.Path), 0o700); err != nil {
		return fmt.Errorf("creating the audit log directory: %w", err)
	}
	maxBytes := int64(cfg.Audit.RotateMiB) << 20
	if cfg.Audit.RotateMiB < 0 {
		maxBytes = -1
	}
	al, err := audit.Open(cfg.Audit.Path, audit.Options{Logger: d.log.With("component", "audit"), MaxBytes: maxBytes})
	if err != nil {
		return fmt.Errorf("opening the audit log %s: %w", cfg.Audit.Path, err)
	}
	d.audit = al
	sctx, scancel := context.WithCancel(context.WithoutCancel(ctx))
	d.shelfCancel = scancel
	for i, sc := range cfg.Shelves {
		r := &shelfRun{cfg: sc, pw: d.sec.ShelfPasswords[sc.Name], log: d.log.With("shelf", sc.Name), done: make(chan struct{})}
		d.shelves = append(d.shelves, r)
		go d.runShelf(sctx, r, i)
	}
	if cfg.PET.Listen != "" {
		if err := d.startPET(ctx); err != nil {
			return err
		}
	}
	// The cluster node (cluster, fencing, watchdog) when configured; the
	// API serves its state; it closes itself when ctx ends.
	if d.node, err = newNode(ctx, d); err != nil {
		return err
	}
	if cfg.API.Listen != "" {
		if err := d.startAPI(ctx); err != nil {
			return err
		}
	}
	if err := d.node.start(d); err != nil {
		return err
	}
	// systemd's watchdog is fed by the node's feeder when there is one,
	// else by a feeder of its own: never by two.
	return d.startSystemdWatchdog(ctx)
}

// monitorConfig is the shelf.MonitorConfig of shelf i.
func monitorConfig(cfg *Config, i int) shelf.MonitorConfig {
	sc := cfg.Shelves[i]
	inst := sc.ChassisInstance
	if inst == 0 {
		inst = i + 1
	}
	return shelf.MonitorConfig{
		Name:        sc.Name,
		Poll:        pollConfig(cfg),
		SELInterval: time.Duration(cfg.Monitor.SELPollInterval),
		Model:       shelf.ModelOptions{Root: hpi.EntityPath{{Type: hpi.EntAdvancedTCAChassis, Location: hpi.EntityLocation(inst)}}},
	}
}

func pollConfig(cfg *Config) shelf.PollConfig {
	m := cfg.Monitor
	return shelf.PollConfig{
		Default:          time.Duration(m.PollInterval),
		ByType:           map[uint8]time.Duration{shelf.SensorTypeHotSwap: time.Duration(m.HotSwapPollInterval)},
		InFlight:         m.InFlight,
		ThresholdRefresh: time.Duration(m.ThresholdRefresh),
	}
}

// runShelf opens the RMCP+ session (retrying with back-off: the session
// re-establishes itself after later losses) and runs the Monitor until ctx
// ends.
func (d *daemon) runShelf(ctx context.Context, r *shelfRun, i int) {
	defer close(r.done)
	backoff := time.Second
	var sess *rmcpp.Session
	for {
		var err error
		sess, err = dialShelf(ctx, r.cfg, r.pw, d.log)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("cannot open a session to the shelf manager; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, dialRetryMax)
	}
	d.mu.Lock()
	mcfg := monitorConfig(d.cfg, i)
	d.mu.Unlock()
	mon := shelf.NewMonitor(mcfg, sess, d.domain, d.log)
	r.mu.Lock()
	r.sess, r.mon = sess, mon
	r.mu.Unlock()
	r.log.Info("session to the shelf manager open", "cipher_suite", sess.CipherSuite())
	err := mon.Run(ctx)
	if ctx.Err() == nil {
		r.log.Error("shelf monitor stopped", "err", err)
	}
	sess.Close()
}

// startPET starts the trap receiver; traps go to the Monitor of the shelf
// whose trap sources include the sender.
func (d *daemon) startPET(ctx context.Context) error {
	p := d.cfg.PET
	pc := pet.Config{
		Addr: p.Listen, SourceRate: p.SourceRate, SourceBurst: p.SourceBurst,
		GlobalRate: p.GlobalRate, GlobalBurst: p.GlobalBurst,
		Logger: d.log.With("component", "pet"), Handler: d.routeTrap,
	}
	switch p.MinSecurity {
	case "authNoPriv":
		pc.MinSecurity = pet.AuthNoPriv
	case "noAuthNoPriv":
		pc.MinSecurity = pet.NoAuthNoPriv
	}
	for _, u := range p.Users {
		pu := pet.User{Name: u.Name, AuthPassphrase: d.sec.PETAuth[u.Name], PrivPassphrase: d.sec.PETPriv[u.Name]}
		switch u.Auth {
		case "sha":
			pu.Auth = pet.AuthSHA
		case "sha256":
			pu.Auth = pet.AuthSHA256
		}
		if u.Priv == "aes" {
			pu.Priv = pet.PrivAES128
		}
		for _, e := range u.EngineIDs {
			b, _ := hex.DecodeString(e) // validated with the configuration
			pu.EngineIDs = append(pu.EngineIDs, b)
		}
		pc.Users = append(pc.Users, pu)
	}
	for _, c := range d.sec.PETCommunities {
		pc.Communities = append(pc.Communities, pet.Secret(c))
	}
	r, err := pet.Listen(ctx, pc)
	if err != nil {
		return fmt.Errorf("starting the PET receiver on %s: %w", p.Listen, err)
	}
	d.pet = r
	d.log.Info("PET receiver listening", "addr", r.Addr().String())
	return nil
}

// routeTrap hands a trap to the Monitor of its shelf manager.
func (d *daemon) routeTrap(tr pet.Trap) {
	src := tr.Source.Addr().Unmap()
	for _, r := range d.shelves {
		if slices.Contains(r.cfg.trapSources, src) {
			if m := r.monitor(); m != nil {
				m.Trap(tr)
			}
			return
		}
	}
	d.log.Debug("trap from an address of no configured shelf", "source", tr.Source.String())
}

// startAPI loads the TLS identity and starts the HTTPS API.
func (d *daemon) startAPI(ctx context.Context) error {
	a := d.cfg.API
	cert, pool, err := loadAPITLS(a.TLS, d.sec.APIKey)
	if err != nil {
		return err
	}
	srv, err := api.New(api.Config{
		Certificate: cert, ClientCAs: pool, Roles: apiRoles(a.Roles),
		RateLimit: a.RateLimit.PerSecond, RateBurst: a.RateLimit.Burst,
		Logger: d.log.With("component", "api"),
	}, api.Deps{Domain: d.domain, Hardware: &hardwareRouter{d: d}, Auditor: auditAdapter{d.audit}, Health: d,
		Cluster: d.node.apiCluster(), Fencing: d.node.apiFencing(),
		Workflows: d.node.apiWorkflows(), EraseCertificates: d.node.apiEraseCertificates(), AuditAnchors: d.node.apiAuditAnchors()})
	if err != nil {
		return fmt.Errorf("starting the API: %w", err)
	}
	l, err := net.Listen("tcp", a.Listen)
	if err != nil {
		return fmt.Errorf("starting the API: %w", err)
	}
	d.api, d.apiAddr, d.apiCert, d.apiDone = srv, l.Addr(), cert, make(chan struct{})
	go func() {
		defer close(d.apiDone)
		if err := srv.Serve(ctx, l); err != nil && ctx.Err() == nil {
			d.log.Error("API server", "err", err)
		}
	}()
	d.log.Info("API listening", "addr", l.Addr().String())
	return nil
}

// loadAPITLS reads the API certificate chain and CA bundle named in t,
// with the private key already read as a secret.
func loadAPITLS(t TLSConfig, key []byte) (*tls.Certificate, *x509.CertPool, error) {
	certPEM, err := os.ReadFile(t.Cert)
	if err != nil {
		return nil, nil, fmt.Errorf("api.tls.cert: %w", err)
	}
	kp, err := tls.X509KeyPair(certPEM, key)
	if err != nil {
		// The error of X509KeyPair describes the PEM blocks, never the key.
		return nil, nil, fmt.Errorf("api.tls: certificate %s and key do not form a key pair: %w", t.Cert, err)
	}
	caPEM, err := os.ReadFile(t.CA)
	if err != nil {
		return nil, nil, fmt.Errorf("api.tls.ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("api.tls.ca: %s holds no PEM certificate", t.CA)
	}
	return &kp, pool, nil
}

func apiRoles(m map[string][]string) map[string][]api.Role {
	out := make(map[string][]api.Role, len(m))
	for id, rs := range m {
		for _, r := range rs {
			out[id] = append(out[id], api.Role(r))
		}
	}
	return out
}

// waitReady waits until every shelf has been discovered once, at most
// readyWait. It returns how many were.
func (d *daemon) waitReady(ctx context.Context) int {
	deadline := time.NewTimer(readyWait)
	defer deadline.Stop()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		n := 0
		for _, r := range d.shelves {
			if m := r.monitor(); m != nil && m.Stats().Discoveries > 0 {
				n++
			}
		}
		if n == len(d.shelves) {
			return n
		}
		select {
		case <-ctx.Done():
			return n
		case <-deadline.C:
			d.log.Warn("not every shelf discovered; ready anyway", "discovered", n, "shelves", len(d.shelves))
			return n
		case <-t.C:
		}
	}
}

// status is the one-line STATUS= for systemctl status.
func (d *daemon) status() string {
	disc, lost := 0, 0
	for _, r := range d.shelves {
		if m := r.monitor(); m != nil {
			st := m.Stats()
			if st.Discoveries > 0 {
				disc++
			}
			if st.Lost {
				lost++
			}
		}
	}
	s := fmt.Sprintf("%d/%d shelves discovered", disc, len(d.shelves))
	if lost > 0 {
		s += fmt.Sprintf(" (%d lost)", lost)
	}
	s += fmt.Sprintf(", %d resources", len(d.domain.Resources()))
	if d.apiAddr != nil {
		s += ", API on " + d.apiAddr.String()
	}
	if w := d.watchdogStatus(); w != "" {
		s += ", " + w
	}
	return s
}

// Health reports the sessions, the PET receiver and the watchdog feeder
// for /metrics.
func (d *daemon) Health() api.Health {
	var h api.Health
	for _, r := range d.shelves {
		sh := api.SessionHealth{Shelf: r.cfg.Name}
		if s := r.session(); s != nil {
			st := s.Stats()
			sh.Sent, sh.Retries, sh.Timeouts, sh.Reconnects, sh.Rejected = st.Sent, st.Retries, st.Timeouts, st.Reconnects, st.Rejected
			sh.Up = true
		}
		if m := r.monitor(); m != nil && m.Stats().Lost {
			sh.Up = false
		}
		h.Sessions = append(h.Sessions, sh)
	}
	if d.pet != nil {
		h.TrapsRejected = map[string]uint64{}
		for k, v := range d.pet.Stats().Dropped {
			h.TrapsRejected[string(k)] = v
		}
	}
	h.Watchdog = d.watchdogHealth()
	return h
}

// stop shuts everything down: the API stops accepting and closes its
// streams, the monitors and sessions end, the trap receiver closes, the
// audit log is flushed and closed. ctx of start must be cancelled first.
func (d *daemon) stop() {
	d.stopSystemdWatchdog() // a clean stop: audited, STOPPING=1
	d.node.close()          // started last, stopped first: leave the cluster gracefully
	if d.shelfCancel != nil {
		d.shelfCancel() // after the node: its watchdog disarms through them
	}
	deadline := time.After(stopTimeout)
	if d.apiDone != nil {
		select {
		case <-d.apiDone:
		case <-deadline:
			d.log.Warn("the API did not stop in time")
		}
	}
	for _, r := range d.shelves {
		select {
		case <-r.done:
		case <-deadline:
			d.log.Warn("a shelf monitor did not stop in time", "shelf", r.cfg.Name)
		}
	}
	if d.pet != nil {
		d.pet.Close()
	}
	if d.audit != nil {
		d.auditSelf("agent.stop", "ok", "")
		if err := d.audit.Close(); err != nil {
			d.log.Error("closing the audit log", "err", err)
		}
	}
}

// auditSelf records the agent's own state changes.
func (d *daemon) auditSelf(action, result, detail string) {
	if d.audit == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.audit.Append(ctx, audit.Record{Actor: "agent", Action: action, Target: "hpiagent", Result: result, Detail: detail}); err != nil {
		d.log.Error("writing the audit log", "action", action, "err", err)
	}
}

// auditCluster writes a record of what the cluster did (actor
// "cluster"); log receives a failure to write it.
func (d *daemon) auditCluster(log *slog.Logger, action, target, result, detail string) {
	if d.audit == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := d.audit.Append(ctx, audit.Record{Actor: "cluster", Action: action, Target: target, Result: result, Detail: detail}); err != nil {
		log.Error("writing the audit log", "action", action, "err", err)
	}
}

// Optional reload hooks. The daemon uses them when the component offers
// them; otherwise a reload that changes what they set is refused as
// needing a restart.
type (
	roleSetter interface {
		SetRoles(map[string][]api.Role) error
	}
	certSetter interface {
		SetCertificate(*tls.Certificate) error
	}
	pollSetter interface {
		SetPollConfig(shelf.PollConfig)
	}
)

// reload re-reads the configuration and applies what can change while
// running: log level, poll intervals, the API role map and certificate.
// A configuration with an error is refused and the running one stays.
// The domain, its event log and its subscriptions are untouched.
func (d *daemon) reload() error {
	d.sdNotify("RELOADING=1", "MONOTONIC_USEC="+monotonicUsec())
	defer func() { d.sdNotify("READY=1", "STATUS="+d.status()) }()
	d.log.Info("reloading the configuration", "config", d.opts.ConfigPath)
	err := d.applyReload()
	if err != nil {
		d.log.Error("configuration refused; the running configuration stays", "err", err)
		d.auditSelf("config.reload", "refused", err.Error())
		return err
	}
	d.auditSelf("config.reload", "ok", "")
	return nil
}

func (d *daemon) applyReload() error {
	cfg, err := LoadConfig(d.opts.ConfigPath)
	if err != nil {
		return err
	}
	sec, err := cfg.ReadSecrets(d.secrets)
	if err != nil {
		return fmt.Errorf("configuration %s: %w", d.opts.ConfigPath, err)
	}
	d.mu.Lock()
	old := d.cfg
	d.mu.Unlock()

	// Changes that need a restart are refused as a whole, so that what
	// runs is always exactly one configuration file's content.
	var restart []string
	if !sameShelves(old.Shelves, cfg.Shelves) || !slices.EqualFunc(d.shelves, cfg.Shelves, func(r *shelfRun, s ShelfConfig) bool { return string(r.pw) == string(sec.ShelfPasswords[s.Name]) }) {
		restart = append(restart, "shelves")
	}
	if old.API.Listen != cfg.API.Listen || old.API.RateLimit != cfg.API.RateLimit {
		restart = append(restart, "api.listen/api.rate_limit")
	}
	if !samePET(old.PET, cfg.PET) || !reflect.DeepEqual(d.sec.PETAuth, sec.PETAuth) || !reflect.DeepEqual(d.sec.PETPriv, sec.PETPriv) || !reflect.DeepEqual(d.sec.PETCommunities, sec.PETCommunities) {
		restart = append(restart, "pet")
	}
	if old.Audit != cfg.Audit {
		restart = append(restart, "audit")
	}
	if old.Domain != cfg.Domain {
		restart = append(restart, "domain")
	}
	restart = append(restart, ChangedClusterSections(old, cfg)...)
	if old.LogFormat != cfg.LogFormat {
		restart = append(restart, "log_format")
	}
	if len(restart) > 0 {
		return fmt.Errorf("changes to %s need a restart (systemctl restart hpiagent)", strings.Join(restart, ", "))
	}

	// Check everything before changing anything: a change this build
	// cannot apply while running is refused like any other error.
	var cert *tls.Certificate
	certChanged := false
	if d.api != nil { // re-read even from the same file: it may have been renewed in place
		if cert, _, err = loadAPITLS(cfg.API.TLS, sec.APIKey); err != nil {
			return err
		}
		if cfg.API.TLS.CA != old.API.TLS.CA {
			return errors.New("api.tls.ca: a new client CA needs a restart")
		}
		certChanged = !slices.EqualFunc(cert.Certificate, d.apiCert.Certificate, func(a, b []byte) bool { return string(a) == string(b) })
	}
	cs, canCert := any(d.api).(certSetter)
	if certChanged && !canCert {
		return errors.New("api.tls: this build cannot change the API certificate while running; restart to apply")
	}
	rolesChanged := !reflect.DeepEqual(old.API.Roles, cfg.API.Roles)
	rs, canRoles := any(d.api).(roleSetter)
	if d.api != nil && rolesChanged && !canRoles {
		return errors.New("api.roles: this build cannot change the role map while running; restart to apply")
	}
	monChanged := old.Monitor != cfg.Monitor
	if monChanged {
		for _, r := range d.shelves {
			if m := r.monitor(); m != nil {
				if _, ok := any(m).(pollSetter); !ok {
					return errors.New("monitor: this build cannot change poll intervals while running; restart to apply")
				}
			}
		}
	}

	if certChanged {
		if err := cs.SetCertificate(cert); err != nil {
			return fmt.Errorf("api.tls: %w", err)
		}
		d.apiCert = cert
	}
	if rolesChanged {
		if err := rs.SetRoles(apiRoles(cfg.API.Roles)); err != nil {
			return fmt.Errorf("api.roles: %w", err)
		}
	}
	if monChanged {
		// A monitor that starts later (its shelf manager was not reachable
		// yet) takes the new configuration from d.cfg.
		for _, r := range d.shelves {
			if m := r.monitor(); m != nil {
				m.SetPollConfig(pollConfig(cfg))
			}
		}
	}
	// Logged before the level changes, so that it shows at either level.
	d.log.Info("configuration reloaded", "log_level", cfg.LogLevel, "certificate_changed", certChanged, "roles_changed", rolesChanged, "monitor_changed", monChanged)
	d.level.Set(parseLevel(cfg.LogLevel))
	d.mu.Lock()
	d.cfg, d.sec = cfg, sec
	d.mu.Unlock()
	return nil
}

// unplaced returns r without where it was written, so that comparing
// configurations ignores lines that only moved.
func (r SecretRef) unplaced() SecretRef {
	r.key, r.line = "", 0
	return r
}

// samePET compares PET configurations, ignoring where secret references
// were written.
func samePET(a, b PETConfig) bool {
	strip := func(p PETConfig) PETConfig {
		p.Users = slices.Clone(p.Users)
		for i := range p.Users {
			p.Users[i].AuthPassphrase = p.Users[i].AuthPassphrase.unplaced()
			p.Users[i].PrivPassphrase = p.Users[i].PrivPassphrase.unplaced()
		}
		p.Communities = slices.Clone(p.Communities)
		for i := range p.Communities {
			p.Communities[i] = p.Communities[i].unplaced()
		}
		return p
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

// sameShelves compares shelf lists on everything but the password.
func sameShelves(a, b []ShelfConfig) bool {
	return slices.EqualFunc(a, b, func(x, y ShelfConfig) bool {
		x.Password, y.Password = SecretRef{}, SecretRef{}
		return reflect.DeepEqual(x, y)
	})
}

// hardwareRouter sends each action to the Monitor that owns the resource.
type hardwareRouter struct{ d *daemon }

// owner finds the Monitor of resource id.
func (h *hardwareRouter) owner(id hpi.ResourceID) (*shelf.Monitor, error) {
	for _, r := range h.d.shelves {
		if m := r.monitor(); m != nil && slices.Contains(m.Resources(), id) {
			return m, nil
		}
	}
	return nil, fmt.Errorf("resource %d belongs to no monitored shelf: %w", id, hpi.ErrInvalidResource)
}

func (h *hardwareRouter) SetPowerState(ctx context.Context, id hpi.ResourceID, s hpi.PowerState) error {
	m, err := h.owner(id)
	if err != nil {
		return err
	}
	return m.SetPowerState(ctx, id, s)
}

func (h *hardwareRouter) PowerState(ctx context.Context, id hpi.ResourceID) (hpi.PowerState, error) {
	m, err := h.owner(id)
	if err != nil {
		return 0, err
	}
	return m.PowerState(ctx, id)
}

func (h *hardwareRouter) Reset(ctx context.Context, id hpi.ResourceID, a hpi.ResetAction) error {
	m, err := h.owner(id)
	if err != nil {
		return err
	}
	return m.Reset(ctx, id, a)
}

func (h *hardwareRouter) HotSwapAction(ctx context.Context, id hpi.ResourceID, a hpi.IntentAction) error {
	m, err := h.owner(id)
	if err != nil {
		return err
	}
	return m.HotSwapAction(ctx, id, a)
}

func (h *hardwareRouter) SetControl(ctx context.Context, id hpi.ResourceID, num hpi.CtrlNum, s hpi.CtrlState) error {
	m, err := h.owner(id)
	if err != nil {
		return err
	}
	return m.SetControl(ctx, id, num, s)
}

// auditAdapter writes the API's audit records to the audit log.
type auditAdapter struct{ l *audit.Log }

func (a auditAdapter) Append(ctx context.Context, r api.AuditRecord) error {
	return a.l.Append(ctx, audit.Record{Time: r.Time, Actor: r.Actor, Roles: r.Roles, Action: r.Action, Target: r.Target, Result: r.Result, Detail: r.Detail})
}
