package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"hpiagent/api/audit"
	"hpiagent/cluster"
	"hpiagent/fencing"
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
	hs      *hotswapNode // nil without a hotswap section
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

func (n *node) startCluster(ctx context.Context, d *daemon) error {
	cc := d.cfg.Cluster
	var keys [][]byte
	for i, r := range cc.GossipKeys {
		k, err := d.secrets.Read(r)
		if err != nil {
			return fmt.Errorf("reading cluster.gossip_keys[%d]: %w", i, err)
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
		HotSwapSensor: func(string, uint8, uint8) (uint8, bool) { return 0, false },
		Switch: func(name string) (fencing.FabricConfig, error) {
			return fencing.FabricConfig{}, fmt.Errorf("fabric switch %q: fabric executors are not configurable in this version", name)
		},
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
		if o.Accepted && d.audit != nil {
			result := "ok"
			if o.Failed {
				result = "failed"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := d.audit.Append(ctx, audit.Record{Actor: "cluster", Action: "fencing." + string(o.Kind), Target: o.Target, Result: result,
				Detail: fmt.Sprintf("operation %s, phase %s, log index %d", o.ID, o.Phase, o.Index)}); err != nil {
				flog.Error("writing the audit log", "err", err)
			}
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

func (n *node) startWatchdog(ctx context.Context, d *daemon) error {
	w := d.cfg.Watchdog
	var devs []wdog.Device
	for i, dc := range w.Devices {
		switch dc.Type {
		case "dev":
			dev, err := wdog.NewDev(wdog.DevConfig{Path: dc.Path, Timeout: time.Duration(dc.Timeout)})
			if err != nil {
				return fmt.Errorf("watchdog.devices[%d]: %w", i, err)
			}
			devs = append(devs, dev)
		case "systemd":
			dev, err := wdog.NewSystemd(wdog.SystemdConfig{})
			if err != nil {
				return fmt.Errorf("watchdog.devices[%d]: %w", i, err)
			}
			devs = append(devs, dev)
		}
	}
	// A shelf manager that does not answer is not a reason to reset this
	// blade (every blade would): the check is that the agent's own loop
	// keeping each shelf's session and monitor is still running.
	checks := []wdog.HealthCheck{wdog.CheckFunc{N: "shelf-loops", F: func(context.Context) error {
		for _, r := range d.shelves {
			select {
			case <-r.done:
				return fmt.Errorf("the monitor loop of shelf %s stopped", r.cfg.Name)
			default:
			}
		}
		return nil
	}}}
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
	fc := wdog.FeederConfig{Devices: devs, Checks: checks, SelfFenceAfter: time.Duration(w.SelfFenceAfter),
		Interval: time.Duration(w.Interval), Logger: d.log.With("component", "watchdog")}
	if n.cl != nil {
		fc.HasQuorum = n.cl.HasQuorum
	}
	f, err := wdog.NewFeeder(fc)
	if err != nil {
		return fmt.Errorf("configuring the watchdog feeder: %w", err)
	}
	n.feeder = f
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
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
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := n.feeder.Shutdown(ctx); err != nil {
				n.log.Warn("disarming the watchdogs", "err", err)
			}
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
