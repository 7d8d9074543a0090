package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"hpiagent/cluster"
	"hpiagent/fencing"
	"hpiagent/shelf/devipmi"
	"hpiagent/shelf/ipmi"
	wdog "hpiagent/watchdog"
)

// node is the clustered part of a running agent: the cluster member,
// the fencing state machine and its coordinator, and the watchdog
// feeder. It is built from the cluster, fencing and watchdog sections.
type node struct {
	log     *slog.Logger
	audit   func(action, result, detail string) // the daemon's audit of its own changes
	cl      *cluster.Cluster
	fm      *fencing.Machine
	fc      *fencing.Coordinator
	hs      *hotswapNode  // nil without a hotswap section
	anchors *auditAnchors // nil without a cluster section
	feeder  *wdog.Feeder
	ctx     context.Context // ends when the node closes
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closeMu sync.Once
}

// newNode builds the node of d and starts its cluster member when d's
// configuration has a cluster or watchdog section; it returns nil, nil
// otherwise. The fencing FSM is registered before the cluster starts.
// Call start once the API serves, to start the coordinators and the
// watchdog feeder. The node closes itself (in the reverse order of
// starting) when ctx ends.
func newNode(ctx context.Context, d *daemon) (*node, error) {
	cfg := d.cfg
	if cfg.Cluster == nil && cfg.Watchdog == nil {
		return nil, nil
	}
	n := &node{log: d.log.With("component", "node"), audit: d.auditSelf}
	nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel, n.ctx = cancel, nctx
	if cfg.Cluster != nil {
		if err := n.startCluster(nctx, d); err != nil {
			n.close()
			return nil, err
		}
	}
	go func() {
		<-ctx.Done()
		n.close()
	}()
	return n, nil
}

// start starts the fencing coordinator (fed by membership and HPI
// domain events) and the watchdog feeder. A nil node does nothing.
func (n *node) start(d *daemon) error {
	if n == nil {
		return nil
	}
	if n.fc != nil {
		n.runFencing(n.ctx, d)
	}
	if n.hs != nil {
		n.runHotSwap(n.ctx, d)
	}
	if n.anchors != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.anchors.run(n.ctx)
		}()
	}
	if d.cfg.Watchdog != nil {
		if err := n.startWatchdog(n.ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// clusterConfig turns the cluster section and its secrets into a
// cluster.Config.
func clusterConfig(cc *ClusterConfig, keys [][]byte, tlsKey []byte, log *slog.Logger) (cluster.Config, error) {
	c := cluster.DefaultConfig()
	c.NodeName = cc.Node
	c.Label = cc.Label
	c.DataDir = cc.DataDir
	c.GossipKeys = keys
	c.Logger = log
	for _, nd := range cc.Nodes {
		c.Nodes = append(c.Nodes, cluster.Node{Name: nd.Name, GossipAddr: nd.Gossip, RaftAddr: nd.Raft, RPCAddr: nd.RPC, NonVoter: nd.NonVoter})
	}
	certPEM, err := os.ReadFile(cc.TLS.Cert)
	if err != nil {
		return c, fmt.Errorf("cluster.tls.cert: %w", err)
	}
	kp, err := tls.X509KeyPair(certPEM, tlsKey)
	if err != nil {
		return c, fmt.Errorf("cluster.tls: certificate %s and key do not form a key pair: %w", cc.TLS.Cert, err)
	}
	caPEM, err := os.ReadFile(cc.TLS.CA)
	if err != nil {
		return c, fmt.Errorf("cluster.tls.ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return c, fmt.Errorf("cluster.tls.ca: %s holds no PEM certificate", cc.TLS.CA)
	}
	c.ServerTLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{kp}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	c.ClientTLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{kp}, RootCAs: pool}
	return c, nil
}

// decodeGossipKey decodes a gossip key secret: the standard base64
// encoding of a 16, 24 or 32 byte AES key (what `openssl rand -base64 32`
// prints), surrounding white space ignored. Text, not raw bytes: a secret
// file's trailing line end is cut off, which would silently shorten a raw
// key ending in such a byte. The error never shows the secret.
func decodeGossipKey(b []byte) ([]byte, error) {
	t := bytes.TrimSpace(b)
	k := make([]byte, base64.StdEncoding.DecodedLen(len(t)))
	n, err := base64.StdEncoding.Decode(k, t)
	if err != nil {
		return nil, fmt.Errorf("the gossip key is not base64 text (%d bytes read; want the base64 encoding of a 16, 24 or 32 byte key, for example from `openssl rand -base64 32`)", len(t))
	}
	switch n {
	case 16, 24, 32:
		return k[:n], nil
	}
	return nil, fmt.Errorf("the gossip key decodes to %d bytes; want 16, 24 or 32 (AES-128, -192 or -256)", n)
}

func (n *node) startCluster(ctx context.Context, d *daemon) error {
	cc := d.cfg.Cluster
	var keys [][]byte
	for i, r := range cc.GossipKeys {
		b, err := d.secrets.Read(r)
		if err != nil {
			return fmt.Errorf("reading cluster.gossip_keys[%d]: %w", i, err)
		}
		k, err := decodeGossipKey(b)
		if err != nil {
			return fmt.Errorf("cluster.gossip_keys[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	tlsKey, err := d.secrets.Read(cc.TLS.Key)
	if err != nil {
		return fmt.Errorf("reading cluster.tls.key: %w", err)
	}
	ccfg, err := clusterConfig(cc, keys, tlsKey, d.log.With("component", "cluster"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cc.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating cluster.data_dir %s: %w", cc.DataDir, err)
	}
	cl, err := cluster.New(ccfg)
	if err != nil {
		return fmt.Errorf("configuring the cluster node %s: %w", cc.Node, err)
	}
	n.cl = cl
	if err := n.registerAuditAnchors(d); err != nil {
		return err
	}
	if d.cfg.Fencing != nil {
		if err := n.buildFencing(d); err != nil {
			return err
		}
	}
	if d.cfg.HotSwap != nil {
		if err := n.buildHotSwap(d); err != nil {
			return err
		}
	}
	if err := cl.Start(ctx); err != nil {
		_ = cl.Close() // whatever Start opened before it failed
		n.cl = nil
		return fmt.Errorf("starting the cluster node %s: %w", cc.Node, err)
	}
	n.log.Info("cluster node started", "node", cc.Node, "nodes", len(cc.Nodes))
	d.auditSelf("cluster.start", "ok", "node "+cc.Node)
	return nil
}

// buildFencing builds the fencing Machine and Coordinator and registers
// the Machine with the cluster (before Start, so the log replay reaches
// it).
func (n *node) buildFencing(d *daemon) error {
	fcfg := d.cfg.Fencing
	topo := fencing.TopologyConfig{Levels: fcfg.Levels, Nodes: fcfg.Nodes}
	levels, nodes, err := fencing.Build(topo, fencing.Resources{
		Conn: func(name string) (ipmi.Conn, error) {
			for _, r := range d.shelves {
				if r.cfg.Name == name {
					return shelfConn{r: r}, nil
				}
			}
			return nil, fmt.Errorf("no shelf named %q", name)
		},
		HotSwapSensor: func(name string, ipmb, fru uint8) (uint8, bool) {
			for _, r := range d.shelves {
				if r.cfg.Name == name {
					if m := r.monitor(); m != nil {
						return m.HotSwapSensorOf(ipmb, fru)
					}
				}
			}
			return 0, false
		},
		Switch: func(name string) (fencing.FabricConfig, error) { return fabricSwitch(d, name) },
	})
	if err != nil {
		return fmt.Errorf("building the fencing topology: %w", err)
	}
	n.fm = fencing.NewMachine()
	flog := d.log.With("component", "fencing")
	n.fm.Observe(func(o fencing.Outcome) {
		flog.Info("fencing entry observed", "index", o.Index, "kind", string(o.Kind), "target", o.Target,
			"id", o.ID, "accepted", o.Accepted, "phase", string(o.Phase), "done", o.Done, "failed", o.Failed,
			"unfenced", o.Unfenced, "note", o.Note)
		if o.Accepted {
			result := "ok"
			if o.Failed {
				result = "failed"
			}
			d.auditCluster(flog, "fencing."+string(o.Kind), o.Target, result, fmt.Sprintf("operation %s, phase %s, log index %d", o.ID, o.Phase, o.Index))
		}
	})
	if err := n.cl.RegisterFSM(fencing.LogKind, n.fm); err != nil {
		return fmt.Errorf("registering the fencing state machine: %w", err)
	}
	var sources []fencing.Source
	for _, s := range d.cfg.Cluster.Sources {
		sources = append(sources, fencing.Source(s))
	}
	cl := n.cl
	n.fc, err = fencing.NewCoordinator(fencing.CoordinatorConfig{
		Self: d.cfg.Cluster.Node, Log: cl, Machine: n.fm, Levels: levels, Nodes: nodes, Sources: sources,
		DeadMembers: func() []string {
			var dead []string
			for _, m := range cl.Status().Members {
				if m.State == cluster.StateDead {
					dead = append(dead, m.Name)
				}
			}
			return dead
		},
		// Hardware failures the model holds now, so that a new leader
		// fences what it saw only as a follower (or the old leader's
		// own blade after a hand-over).
		FailedHardware: func() []fencing.Failure {
			if d.domain == nil {
				return nil
			}
			return fencing.CurrentFailures(d.domain)
		},
		// The leader hands its leadership over when its own blade must
		// be fenced: audited like every fencing decision.
		OnHandOver: func(h fencing.HandOver) {
			result, detail := "ok", fmt.Sprintf("leadership handed to %s: %s", h.To, h.Reason)
			if h.Err != nil {
				result, detail = "failed", fmt.Sprintf("%s: %v", h.Reason, h.Err)
			}
			d.auditCluster(flog, "fencing.handover", h.Node, result, detail)
		},
		Logger: flog,
	})
	if err != nil {
		return fmt.Errorf("configuring the fencing coordinator: %w", err)
	}
	if err := n.cl.Handle(fenceForwardMethod, handleFenceForward(n.fc)); err != nil {
		return fmt.Errorf("registering the fence forwarding handler: %w", err)
	}
	return nil
}

// fabricSwitch is the fabric executor configuration of switch name, with
// its SNMPv3 passphrases read from where the configuration says.
func fabricSwitch(d *daemon, name string) (fencing.FabricConfig, error) {
	for i, sw := range d.cfg.Fencing.Switches {
		if sw.Name != name {
			continue
		}
		auth, err := d.secrets.Read(sw.AuthPassphrase)
		if err != nil {
			return fencing.FabricConfig{}, fmt.Errorf("reading fencing.switches[%d].auth_passphrase: %w", i, err)
		}
		priv, err := d.secrets.Read(sw.PrivPassphrase)
		if err != nil {
			return fencing.FabricConfig{}, fmt.Errorf("reading fencing.switches[%d].priv_passphrase: %w", i, err)
		}
		return fencing.FabricConfig{Name: "fabric@" + name, Address: sw.Address, User: sw.User,
			AuthProtocol: sw.AuthProtocol, AuthPassphrase: string(auth), PrivProtocol: sw.PrivProtocol, PrivPassphrase: string(priv),
			Timeout: time.Duration(sw.Timeout), Logger: d.log.With("component", "fencing", "switch", name)}, nil
	}
	return fencing.FabricConfig{}, fmt.Errorf("no fabric switch named %q in fencing.switches", name)
}

// runFencing starts the coordinator and feeds it the membership and HPI
// domain events.
func (n *node) runFencing(ctx context.Context, d *daemon) {
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		if err := n.fc.Run(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("fencing coordinator stopped", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		evs := n.cl.MemberEvents()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-evs:
				n.log.Info("cluster member event", "kind", string(ev.Kind), "member", ev.Node, "addr", ev.Addr)
				if ev.Kind != cluster.EventDead {
					continue
				}
				if _, err := n.fc.MemberDead(ctx, ev.Node, "declared dead by cluster membership"); err != nil && !isBenignFenceRefusal(err) {
					n.log.Warn("fence request for a dead member", "member", ev.Node, "err", err)
				}
			}
		}
	}()
	go func() {
		defer n.wg.Done()
		sub, err := d.domain.Subscribe(256)
		if err != nil {
			n.log.Error("subscribing fencing to the HPI domain", "err", err)
			return
		}
		if err := n.fc.WatchEvents(ctx, sub); err != nil && ctx.Err() == nil {
			n.log.Error("fencing stopped watching HPI events", "err", err)
		}
	}()
}

// isBenignFenceRefusal: not the leader (the leader acts on the same
// report), the node is this one, or it is not a fencing target.
func isBenignFenceRefusal(err error) bool {
	return errors.Is(err, fencing.ErrNotLeader) || errors.Is(err, fencing.ErrSelf) || errors.Is(err, fencing.ErrUnknownNode)
}

// startWatchdog builds the watchdog devices and starts the feeder. An
// ipmi device reaches its controller through the OpenIPMI device it opens
// here (closed once the feeder has stopped, after the clean stop's
// disarm) or through the daemon's session to a shelf manager, which is
// not up yet at start: the feeder arms it as soon as it answers.
func (n *node) startWatchdog(ctx context.Context, d *daemon) (err error) {
	w := d.cfg.Watchdog
	var opened []*devipmi.Conn
	defer func() {
		if err != nil {
			for _, c := range opened {
				_ = c.Close()
			}
		}
	}()
	actions := map[string]ipmi.WatchdogAction{"hard-reset": ipmi.WatchdogHardReset, "power-down": ipmi.WatchdogPowerDown, "power-cycle": ipmi.WatchdogPowerCycle}
	preTimeouts := map[string]wdog.PreTimeoutInterrupt{"none": wdog.PreTimeoutNone, "smi": wdog.PreTimeoutSMI, "nmi": wdog.PreTimeoutNMI, "msg-interrupt": wdog.PreTimeoutMsg}
	// shelfSessionWait bounds how long the first arming waits for the
	// shelf sessions that ipmi devices use.
	const shelfSessionWait = 10 * time.Second
	var shelfRuns []*shelfRun
	var devs []wdog.Device
	var names []string
	listsSystemd := false
	for i, dc := range w.Devices {
		switch dc.Type {
		case "dev":
			dev, err := wdog.NewDev(wdog.DevConfig{Path: dc.Path, Timeout: time.Duration(dc.Timeout)})
			if err != nil {
				return fmt.Errorf("watchdog.devices[%d]: %w", i, err)
			}
			devs = append(devs, dev)
		case "systemd":
			dev, err := d.systemdDevice()
			if err != nil {
				return fmt.Errorf("watchdog.devices[%d]: %w", i, err)
			}
			devs = append(devs, dev)
			listsSystemd = true
		case "ipmi":
			ic := wdog.IPMIConfig{Timeout: time.Duration(dc.Timeout), Action: actions[dc.Action],
				PreTimeout: preTimeouts[dc.PreTimeout], PreInterval: time.Duration(dc.PreTimeoutInterval)}
			if dc.Shelf != "" {
				for _, r := range d.shelves {
					if r.cfg.Name == dc.Shelf {
						ic.Conn = shelfConn{r: r}
						shelfRuns = append(shelfRuns, r)
					}
				}
				if ic.Conn == nil {
					return fmt.Errorf("watchdog.devices[%d]: no shelf named %q", i, dc.Shelf)
				}
				if dc.IPMB != ipmi.AddrBMC {
					ic.Addr = ipmi.Addr{Slave: dc.IPMB}
				} else {
					n.log.Warn("the ipmi watchdog is the shelf's own controller, not a blade IPMC: its expiry acts on that controller",
						"device", i, "shelf", dc.Shelf, "ipmb", fmt.Sprintf("%#x", dc.IPMB))
				}
			} else {
				// Only the local controller is addressed: no IPMB address
				// discovery, and no asynchronous events nobody reads.
				c, err := devipmi.Open(ctx, dc.Device, devipmi.Options{KeepDriverAddress: true, NoEvents: true, Logger: d.log.With("component", "devipmi")})
				if err != nil {
					return fmt.Errorf("watchdog.devices[%d]: opening %s: %w", i, dc.Device, err)
				}
				opened = append(opened, c)
				ic.Conn = c
				// Opening reads nothing from the controller: ask it once,
				// so that a wrong device or a controller that does not
				// answer stops the start instead of leaving the blade
				// without the watchdog it is configured with.
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err = ipmi.GetDeviceID(pctx, c, ipmi.Addr{})
				cancel()
				if err != nil {
					return fmt.Errorf("watchdog.devices[%d]: the controller behind %s does not answer Get Device ID: %w", i, dc.Device, err)
				}
			}
			dev, err := wdog.NewIPMI(ic)
			if err != nil {
				return fmt.Errorf("watchdog.devices[%d]: %w", i, err)
			}
			devs = append(devs, dev)
		}
		names = append(names, devs[len(devs)-1].Name())
	}
	// systemd's watchdog has one feeder: this one, when systemd set one
	// for the agent, even if the section does not list it.
	if !listsSystemd && d.sdWatchdog > 0 && d.notify.Enabled() {
		dev, err := d.systemdDevice()
		if err != nil {
			return fmt.Errorf("systemd watchdog: %w", err)
		}
		devs = append(devs, dev)
		names = append(names, dev.Name())
		n.log.Info("systemd's service watchdog (WatchdogSec=) is fed with the watchdog section's devices")
	}
	var hasQuorum func() bool
	var mark *wdog.SelfFenceMark
	selfFenced := ""
	if n.cl != nil {
		hasQuorum = n.cl.HasQuorum
		// A self-fence decided earlier in this boot (systemd restarted
		// the agent after its pings stopped) holds: nothing is armed or
		// fed, the watchdogs armed before run out.
		mark = &wdog.SelfFenceMark{Path: filepath.Join(d.cfg.Cluster.DataDir, selfFenceMarkFile)}
		reason, at, ok, err := mark.Read()
		if err != nil {
			return err
		}
		if ok {
			selfFenced = fmt.Sprintf("%s (decided %s, before the agent restarted)", reason, at.Format(time.RFC3339))
		}
	}
	fc := d.feederConfig(devs, hasQuorum, time.Duration(w.Interval), time.Duration(w.SelfFenceAfter), mark)
	fc.SelfFenced = selfFenced
	f, err := wdog.NewFeeder(fc)
	if err != nil {
		return fmt.Errorf("configuring the watchdog feeder: %w", err)
	}
	if err := d.setFeeder(f); err != nil {
		return err
	}
	n.feeder = f
	gate := "health checks only"
	if hasQuorum != nil {
		gate = "health checks and quorum, self-fencing after " + time.Duration(w.SelfFenceAfter).String()
	}
	if selfFenced != "" {
		n.log.Error("self-fencing since before a restart: no watchdog armed or fed", "reason", selfFenced)
		n.audit("watchdog.start", "refused", "self-fencing: no watchdog armed or fed: "+selfFenced)
	} else {
		n.audit("watchdog.start", "ok", fmt.Sprintf("devices %s (%s, every %s)", strings.Join(names, ", "), gate, f.Interval()))
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		// Run returns once ctx ends, which close does after the
		// feeder's Shutdown (the disarm) or never did arm.
		defer func() {
			for _, c := range opened {
				_ = c.Close()
			}
		}()
		// The shelf sessions open in the background: give them a
		// moment, so that a normal start arms every device at once,
		// without holding the other devices back for long when a
		// shelf manager does not answer (the feeder arms its device
		// later then).
		wait := time.NewTimer(shelfSessionWait)
		defer wait.Stop()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
	waiting:
		for _, r := range shelfRuns {
			for r.session() == nil {
				select {
				case <-ctx.Done():
					return
				case <-wait.C:
					break waiting
				case <-tick.C:
				}
			}
		}
		if err := f.Run(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("watchdog feeder stopped", "err", err)
		}
	}()
	return nil
}

// close stops the node in the reverse order of starting: the feeder
// disarms its watchdogs (a clean stop), the coordinators stop, the
// cluster leaves gracefully (members see "left", not "dead", and do not
// fence this node). It returns once all of it is done; a nil node does
// nothing.
func (n *node) close() {
	if n == nil {
		return
	}
	n.closeMu.Do(func() {
		if n.feeder != nil {
			// Audited as watchdog.stop (ok or failed); a self-fencing
			// node's watchdogs stay armed.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			stopFeeder(ctx, n.feeder, n.log, n.audit)
			cancel()
		}
		n.cancel()
		n.wg.Wait()
		if n.cl != nil {
			if err := n.cl.Close(); err != nil {
				n.log.Warn("leaving the cluster", "err", err)
				n.audit("cluster.stop", "failed", err.Error())
			} else {
				n.audit("cluster.stop", "ok", "left the cluster")
			}
		}
	})
}

// shelfConn is the current RMCP+ session of a shelf (the daemon
// reconnects it), as an ipmi.Conn for the fencing executors.
type shelfConn struct{ r *shelfRun }

// Exchange implements ipmi.Conn.
func (c shelfConn) Exchange(ctx context.Context, to ipmi.Addr, req ipmi.Request) (ipmi.Response, error) {
	s := c.r.session()
	if s == nil {
		return ipmi.Response{}, fmt.Errorf("no RMCP+ session to shelf %s yet", c.r.cfg.Name)
	}
	return s.Exchange(ctx, to, req)
}

// Close implements ipmi.Conn; the session belongs to the daemon.
func (shelfConn) Close() error { return nil }
