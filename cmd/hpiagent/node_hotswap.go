package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"

	"hpiagent/api"
	"hpiagent/api/adapt"
	"hpiagent/cluster"
	"hpiagent/fencing"
	"hpiagent/hotswap"
	"hpiagent/hpi"
	"hpiagent/internal/pki"
	secureerase "hpiagent/secure-erase"
	"hpiagent/shelf"
	"hpiagent/shelf/hotswaphw"
)

// hotswapNode is the hot-swap part of a clustered agent: the replicated
// workflow Machine, this node's Member (policy hooks and wipes), the
// Coordinator (which acts while this node leads) and this node's
// certificate store, which holds the certificates of its own wipes and
// the copies of every other member's that came through the log.
type hotswapNode struct {
	log    *slog.Logger
	m      *hotswap.Machine
	member *hotswap.Member
	coord  *hotswap.Coordinator
	store  *secureerase.Store
	hw     *shelfHotSwap
	cl     *cluster.Cluster
}

// hotswapForwardMethod is the peer RPC method by which a member hands an
// operator's workflow request, authorised by its own API, to the leader.
const hotswapForwardMethod = "hotswap.forward"

// buildHotSwap builds the hot-swap Machine, Member and Coordinator of d's
// hotswap section and registers the Machine and the peer RPC handlers with
// n's cluster. It must run before the cluster starts, so that the log
// replay reaches the Machine.
func (n *node) buildHotSwap(d *daemon) error {
	hc := d.cfg.HotSwap
	self := d.cfg.Cluster.Node
	log := d.log.With("component", "hotswap")
	h := &hotswapNode{log: log, m: hotswap.NewMachine(), hw: &shelfHotSwap{d: d}, cl: n.cl}
	if err := n.cl.RegisterFSM(hotswap.LogKind, h.m); err != nil {
		return fmt.Errorf("registering the hot-swap state machine: %w", err)
	}
	hooks, err := buildHooks(hc)
	if err != nil {
		return err
	}
	frus := map[string]HotSwapFRUConfig{}
	for _, f := range hc.FRUs {
		frus[hotswap.FRU{Shelf: f.Shelf, IPMB: f.IPMB, ID: f.FRU}.Key()] = f
	}
	mcfg := hotswap.MemberConfig{Name: self, StateDir: hc.StateDir, Hooks: hooks, Logger: log}
	// Only an owner of a wipe plan needs the signing key and the eraser.
	owns := false
	for _, f := range hc.FRUs {
		owns = owns || (f.Owner == self && f.Wipe != nil)
	}
	h.store, err = secureerase.OpenStore(hc.CertificatesDir)
	if err != nil {
		return fmt.Errorf("opening hotswap.certificates_dir %s: %w", hc.CertificatesDir, err)
	}
	peerCert, caPool, err := clusterPKI(d.cfg.Cluster)
	if err != nil {
		return err
	}
	if owns {
		ref, key := hc.SigningKey, "hotswap.signing_key"
		if ref.sources() == 0 {
			ref, key = d.cfg.Cluster.TLS.Key, "cluster.tls.key"
		}
		pemKey, err := d.secrets.Read(ref)
		if err != nil {
			return fmt.Errorf("reading %s: %w", key, err)
		}
		signer, err := parseSigningKey(pemKey)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		er, err := secureerase.New(secureerase.Config{Signer: signer, Node: self, Store: h.store,
			Tool: secureerase.Tool{Name: "hpiagent", Version: version}, Logger: log.With("part", "secure-erase")})
		if err != nil {
			return fmt.Errorf("configuring the secure erase: %w", err)
		}
		w := &planWiper{eraser: er, plans: map[string]HotSwapFRUConfig{}}
		for k, f := range frus {
			if f.Owner == self && f.Wipe != nil {
				if err := er.Validate(*f.wipePlan("")); err != nil {
					return fmt.Errorf("hotswap.frus: wipe plan of %s: %w", k, err)
				}
				w.plans[k] = f
			}
		}
		mcfg.Wiper = w
		if samePublicKey(signer.Public(), peerCert.PublicKey) {
			mcfg.SignerCertificate = peerCert.Raw
		} else {
			log.Warn("hotswap.signing_key is not the key of cluster.tls.cert: the certificates of this node's wipes stay on this node (the cluster log records their digests only)")
		}
	}
	h.member, err = hotswap.NewMember(mcfg)
	if err != nil {
		return fmt.Errorf("configuring the hot-swap member: %w", err)
	}
	for method, fn := range h.member.Handlers() {
		if err := n.cl.Handle(method, fn); err != nil {
			return fmt.Errorf("registering the hot-swap handler %s: %w", method, err)
		}
	}
	var members []string
	for _, nd := range d.cfg.Cluster.Nodes {
		members = append(members, nd.Name)
	}
	h.coord, err = hotswap.NewCoordinator(hotswap.CoordinatorConfig{
		Node: self, Log: n.cl, Peers: n.cl, Machine: h.m, Hardware: h.hw, Member: h.member,
		Members: func() []string { return members },
		Owner: func(fru hotswap.FRU) string {
			if f, ok := frus[fru.Key()]; ok && f.Owner != "" {
				return f.Owner
			}
			return self
		},
		DeviceClass: func(fru hotswap.FRU) string {
			if f, ok := frus[fru.Key()]; ok {
				return f.DeviceClass
			}
			return "*"
		},
		// The certificates of verified wipes go into the log when the
		// owner's signer certificate is its peer certificate of the
		// cluster CA, so that every member keeps them.
		VerifySigner:        hotswap.SignerVerifier(caPool, peerIdentity, nil),
		Veto:                n.fenceVeto(d),
		Waiting:             func() []hotswap.WaitingFRU { return waitingFRUs(d, h.hw) },
		MaxAttempts:         hc.MaxAttempts,
		LeaveActiveUnlocked: hc.LeaveActiveUnlocked,
		RetryDelay:          time.Duration(hc.RetryDelay),
		Alarm: func(a hotswap.AlarmInfo) {
			log.Warn("hot-swap alarm", "workflow", a.Workflow, "fru", a.FRU.Key(), "alarm", a.Text)
			d.auditCluster(log, "hotswap.alarm", a.FRU.Key(), "alarm", fmt.Sprintf("workflow %s: %s", a.Workflow, a.Text))
		},
		Logger: log,
	})
	if err != nil {
		return fmt.Errorf("configuring the hot-swap coordinator: %w", err)
	}
	if err := n.cl.Handle(hotswapForwardMethod, handleHotSwapForward(h.coord)); err != nil {
		return fmt.Errorf("registering the hot-swap forwarding handler: %w", err)
	}
	n.hs = h
	return nil
}

// fenceVeto returns the Coordinator's Veto: an insertion is not started
// from a hot-swap event for the blade of a cluster node that fencing has
// not left idle (fenced, being fenced or unfenced, or failed), so that an
// M1 observation cannot activate a blade a fence keeps off. nil without
// fencing.
func (n *node) fenceVeto(d *daemon) func(hotswap.Kind, hotswap.FRU) string {
	if n.fm == nil || d.cfg.Fencing == nil {
		return nil
	}
	return fenceVeto(d.cfg.Fencing.Nodes, n.fm.State)
}

// fenceVeto is the veto of the blades in nodes, by the fencing state that
// state reports.
func fenceVeto(nodes map[string]fencing.NodeHardware, state func(string) (fencing.TargetState, bool)) func(hotswap.Kind, hotswap.FRU) string {
	byFRU := map[string]string{}
	for name, hw := range nodes {
		byFRU[hotswap.FRU{Shelf: hw.Shelf, IPMB: hw.IPMB, ID: hw.FRU}.Key()] = name
	}
	return func(kind hotswap.Kind, fru hotswap.FRU) string {
		if kind != hotswap.KindInsertion {
			return ""
		}
		name, ok := byFRU[fru.Key()]
		if !ok {
			return ""
		}
		if st, ok := state(name); ok && st.Phase != fencing.PhaseIdle {
			return fmt.Sprintf("the blade of cluster node %s is %s by fencing; unfence it instead", name, st.Phase)
		}
		return ""
	}
}

// buildHooks turns the device classes into the Member's hooks.
func buildHooks(hc *HotSwapConfig) (map[string][]hotswap.Hook, error) {
	out := map[string][]hotswap.Hook{}
	for class, hks := range hc.DeviceClasses {
		for i, hk := range hks {
			switch hk.Type {
			case "exec":
				out[class] = append(out[class], &hotswap.ExecHook{HookName: hk.Name, Command: hotswap.CommandConfig{
					Path: hk.Command[0], Args: hk.Command[1:], Timeout: time.Duration(hk.Timeout)}})
			case "rule-file":
				src, err := os.ReadFile(hk.File)
				if err != nil {
					return nil, fmt.Errorf("hotswap.device_classes[%q][%d].file: %w", class, i, err)
				}
				tmpl, err := template.New(hk.Name).Option("missingkey=error").Parse(string(src))
				if err != nil {
					return nil, fmt.Errorf("hotswap.device_classes[%q][%d].file %s: %w", class, i, hk.File, err)
				}
				out[class] = append(out[class], &hotswap.RuleFileHook{HookName: hk.Name, Dir: hk.Dir,
					Render: func(s hotswap.Step) ([]byte, error) {
						var b bytes.Buffer
						if err := tmpl.Execute(&b, s); err != nil {
							return nil, fmt.Errorf("rendering rule template %s for %s: %w", hk.File, s.FRU.Key(), err)
						}
						return b.Bytes(), nil
					},
					Reload: hotswap.CommandConfig{Path: hk.Reload[0], Args: hk.Reload[1:], Timeout: time.Duration(hk.Timeout)}})
			default:
				return nil, fmt.Errorf("hotswap.device_classes[%q][%d].type: %q is not one of exec, rule-file", class, i, hk.Type)
			}
		}
	}
	return out, nil
}

// parseSigningKey parses a PEM private key (PKCS#8, or SEC 1 for ECDSA)
// that is ed25519 or ECDSA P-256. Errors never quote the key.
func parseSigningKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("holds no PEM block")
	}
	var key any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a PKCS#8 or EC private key", blk.Type)
	}
	if err != nil {
		return nil, errors.New("the private key does not parse")
	}
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("an ECDSA key must be on P-256")
		}
		return k, nil
	}
	return nil, fmt.Errorf("a %T key cannot sign certificates (want ed25519 or ECDSA P-256)", key)
}

// planWiper is the Member's Wiper: it runs the configured wipe plan of a
// FRU this node owns and returns the certificates (a JSON array).
type planWiper struct {
	eraser *secureerase.Eraser
	plans  map[string]HotSwapFRUConfig // by FRU key
}

// Wipe implements hotswap.Wiper.
func (w *planWiper) Wipe(ctx context.Context, fru hotswap.FRU) ([]byte, error) {
	f, ok := w.plans[fru.Key()]
	if !ok {
		return nil, fmt.Errorf("wiping FRU %s: no wipe plan for it on this node", fru.Key())
	}
	certs, err := w.eraser.EraseAll(ctx, *f.wipePlan(fru.Entity))
	if err != nil {
		return nil, fmt.Errorf("wiping FRU %s: %w", fru.Key(), err)
	}
	b, err := json.Marshal(certs)
	if err != nil {
		return nil, fmt.Errorf("encoding the certificates of FRU %s: %w", fru.Key(), err)
	}
	return b, nil
}

// waitingFRUs lists the FRU resources the model shows waiting in
// InsertionPending or ExtractionPending (hotswap.CoordinatorConfig.Waiting):
// at discovery a FRU's first state comes without an event, and an event
// seen while no node led, or dropped from a full subscription, starts
// nothing.
func waitingFRUs(d *daemon, hw *shelfHotSwap) []hotswap.WaitingFRU {
	var out []hotswap.WaitingFRU
	for _, r := range d.domain.Resources() {
		st, err := d.domain.HotSwapState(r.ResourceID)
		if err != nil || !st.Known || (st.State != hpi.HsStateInsertionPending && st.State != hpi.HsStateExtractionPending) {
			continue
		}
		if fru, ok := hw.FRUOf(r.ResourceID); ok {
			out = append(out, hotswap.WaitingFRU{FRU: fru, State: st.State})
		}
	}
	return out
}

// runHotSwap starts the Coordinator (which also reconciles FRUs waiting
// without an event, CoordinatorConfig.Waiting), feeds it the domain's
// hot-swap events and keeps the certificate store in step with the log.
func (n *node) runHotSwap(ctx context.Context, d *daemon) {
	h := n.hs
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		h.syncCertificates(ctx)
	}()
	go func() {
		defer n.wg.Done()
		if err := h.coord.Run(ctx); err != nil && ctx.Err() == nil {
			h.log.Error("hot-swap coordinator stopped", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		sub, err := d.domain.Subscribe(256)
		if err != nil {
			h.log.Error("subscribing the hot-swap workflows to the HPI domain", "err", err)
			return
		}
		if err := h.coord.RunEvents(ctx, sub, h.hw.Resolve); err != nil && ctx.Err() == nil {
			h.log.Error("hot-swap workflows stopped watching HPI events", "err", err)
		}
	}()
}

// apiWorkflows returns the API's workflow routes, nil without hotswap.
func (n *node) apiWorkflows() api.Workflows {
	if n == nil || n.hs == nil {
		return nil
	}
	h := n.hs
	w, err := adapt.Workflows(adapt.WorkflowsConfig{
		Coordinator: forwardingCoordinator{h: h},
		State:       h.m,
		FRU:         func(e hpi.RPTEntry) (hotswap.FRU, bool) { return h.hw.FRUOf(e.ResourceID) },
		Leader:      func() (string, string) { return h.cl.Status().Leader, "" },
	})
	if err != nil { // not reachable: every field is set
		h.log.Error("configuring the workflow routes", "err", err)
		return nil
	}
	return w
}

// apiEraseCertificates returns the API's certificate routes, nil without
// hotswap: this node's store and the certificates the log holds, so that
// any member serves the certificate of any member's wipe.
func (n *node) apiEraseCertificates() api.EraseCertificates {
	if n == nil || n.hs == nil {
		return nil
	}
	return adapt.EraseCertificates(n.hs.certificates())
}

func (h *hotswapNode) certificates() *clusterCertificates {
	return &clusterCertificates{store: h.store, log: h.m, cache: map[string][]*secureerase.Certificate{}}
}

// clusterPKI reads this node's peer certificate (the leaf of
// cluster.tls.cert) and the cluster CA (cluster.tls.ca).
func clusterPKI(cc *ClusterConfig) (*x509.Certificate, *x509.CertPool, error) {
	b, err := os.ReadFile(cc.TLS.Cert)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster.tls.cert: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("cluster.tls.cert: %s does not start with a PEM certificate", cc.TLS.Cert)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster.tls.cert %s: %w", cc.TLS.Cert, err)
	}
	caPEM, err := os.ReadFile(cc.TLS.CA)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster.tls.ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("cluster.tls.ca: %s holds no PEM certificate", cc.TLS.CA)
	}
	return leaf, pool, nil
}

// peerIdentity is the cluster's rule for the member a peer certificate
// names: pki.Identity, then cluster.PeerName.
func peerIdentity(c *x509.Certificate) (string, error) {
	id, err := pki.Identity(c)
	if err != nil {
		return "", err
	}
	return cluster.PeerName(id)
}

// samePublicKey reports whether a and b are the same public key.
func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// replicatedCertificates is the part of the hot-swap Machine the
// certificate routes read.
type replicatedCertificates interface {
	WipeCertificates() []hotswap.WipeCertificates
}

// clusterCertificates is adapt.CertificateStore over this node's store
// and the certificates of every member's verified wipes that the log
// holds (checked by the Machine: they match the logged digest, name the
// workflow's owner and verify with its peer key). The store answers first:
// a certificate of this node's own wipes, or a copy saveReplicated made.
type clusterCertificates struct {
	store *secureerase.Store
	log   replicatedCertificates

	mu    sync.Mutex
	cache map[string][]*secureerase.Certificate // decoded sets, by digest
}

// replicated returns the certificates the log holds, decoded once per set.
func (c *clusterCertificates) replicated() []*secureerase.Certificate {
	sets := c.log.WipeCertificates()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*secureerase.Certificate
	seen := make(map[string]bool, len(sets))
	for _, s := range sets {
		seen[s.Digest] = true
		certs, ok := c.cache[s.Digest]
		if !ok {
			var err error
			if certs, err = secureerase.DecodeCertificates(s.Certificates); err != nil {
				continue // not reachable: the Machine checked them
			}
			c.cache[s.Digest] = certs
		}
		out = append(out, certs...)
	}
	for d := range c.cache {
		if !seen[d] {
			delete(c.cache, d)
		}
	}
	return out
}

// List implements adapt.CertificateStore: the IDs of the store and of
// the log, sorted, each once.
func (c *clusterCertificates) List() ([]string, error) {
	ids, err := c.store.List()
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(ids))
	for _, id := range ids {
		have[id] = true
	}
	for _, ct := range c.replicated() {
		if !have[ct.ID] {
			have[ct.ID] = true
			ids = append(ids, ct.ID)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Load implements adapt.CertificateStore.
func (c *clusterCertificates) Load(id string) (*secureerase.Certificate, error) {
	ct, err := c.store.Load(id)
	if !errors.Is(err, secureerase.ErrNoCertificate) {
		return ct, err
	}
	for _, r := range c.replicated() {
		if r.ID == id {
			cp := *r
			return &cp, nil
		}
	}
	return nil, err
}

// saveReplicated copies the certificates the log holds into this node's
// store, which keeps them after the Machine dropped their workflow (it
// keeps the most recent finished workflows only) and serves them like this
// node's own. It returns how many it saved.
func (c *clusterCertificates) saveReplicated() (int, error) {
	n := 0
	var errs []error
	for _, ct := range c.replicated() {
		if c.store.Has(ct.ID) {
			continue
		}
		if err := c.store.Save(ct); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// certificateSyncEvery is how often a member copies the certificates the
// log holds into its store. 10 s: the API serves them from the log in the
// meantime; the copy only has to happen long before the Machine drops the
// workflow (after 256 later workflows finished).
const certificateSyncEvery = 10 * time.Second

// syncCertificates copies the certificates the log holds into this
// node's store now and then, until ctx ends.
func (h *hotswapNode) syncCertificates(ctx context.Context) {
	c := h.certificates()
	tick := time.NewTicker(certificateSyncEvery)
	defer tick.Stop()
	for {
		n, err := c.saveReplicated()
		if err != nil {
			h.log.Error("copying the erase certificates of the cluster log into the certificate store", "err", err)
		}
		if n > 0 {
			h.log.Info("erase certificates of the cluster log stored", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// shelfHotSwap is hotswap.Hardware over the daemon's current Monitors (a
// shelf's Monitor is replaced when its session is re-established).
type shelfHotSwap struct{ d *daemon }

func (s *shelfHotSwap) hw() (*hotswaphw.Hardware, error) {
	var mons []*shelf.Monitor
	for _, r := range s.d.shelves {
		if m := r.monitor(); m != nil {
			mons = append(mons, m)
		}
	}
	if len(mons) == 0 {
		return nil, fmt.Errorf("no shelf manager session is open yet: %w", hpi.ErrCapability)
	}
	return hotswaphw.New(mons...)
}

// SetActivationLock implements hotswap.Hardware.
func (s *shelfHotSwap) SetActivationLock(ctx context.Context, fru hotswap.FRU, locked bool) error {
	h, err := s.hw()
	if err != nil {
		return err
	}
	return h.SetActivationLock(ctx, fru, locked)
}

// SetDeactivationLock implements hotswap.Hardware.
func (s *shelfHotSwap) SetDeactivationLock(ctx context.Context, fru hotswap.FRU, locked bool) error {
	h, err := s.hw()
	if err != nil {
		return err
	}
	return h.SetDeactivationLock(ctx, fru, locked)
}

// ActivationPolicy implements hotswap.Hardware.
func (s *shelfHotSwap) ActivationPolicy(ctx context.Context, fru hotswap.FRU) (hotswap.Policy, error) {
	h, err := s.hw()
	if err != nil {
		return hotswap.Policy{}, err
	}
	return h.ActivationPolicy(ctx, fru)
}

// Activate implements hotswap.Hardware.
func (s *shelfHotSwap) Activate(ctx context.Context, fru hotswap.FRU) error {
	h, err := s.hw()
	if err != nil {
		return err
	}
	return h.Activate(ctx, fru)
}

// Deactivate implements hotswap.Hardware.
func (s *shelfHotSwap) Deactivate(ctx context.Context, fru hotswap.FRU) error {
	h, err := s.hw()
	if err != nil {
		return err
	}
	return h.Deactivate(ctx, fru)
}

// MState implements hotswap.Hardware.
func (s *shelfHotSwap) MState(ctx context.Context, fru hotswap.FRU) (hpi.MState, error) {
	h, err := s.hw()
	if err != nil {
		return 0, err
	}
	return h.MState(ctx, fru)
}

// SetBlueLED implements hotswap.Hardware.
func (s *shelfHotSwap) SetBlueLED(ctx context.Context, fru hotswap.FRU, on bool) error {
	h, err := s.hw()
	if err != nil {
		return err
	}
	return h.SetBlueLED(ctx, fru, on)
}

// FRUOf maps a resource to its FRU.
func (s *shelfHotSwap) FRUOf(id hpi.ResourceID) (hotswap.FRU, bool) {
	h, err := s.hw()
	if err != nil {
		return hotswap.FRU{}, false
	}
	return h.FRUOf(id)
}

// Resolve is the resolver of Coordinator.RunEvents.
func (s *shelfHotSwap) Resolve(e hpi.Event) (hotswap.FRU, bool) {
	h, err := s.hw()
	if err != nil {
		return hotswap.FRU{}, false
	}
	return h.Resolve(e)
}

// hotswapForward is the request of hotswapForwardMethod.
type hotswapForward struct {
	Op       string       `json:"op"` // start, override, abort, retry
	Kind     hotswap.Kind `json:"kind,omitempty"`
	FRU      *hotswap.FRU `json:"fru,omitempty"`
	Workflow string       `json:"workflow,omitempty"`
	Actor    string       `json:"actor"`
	Reason   string       `json:"reason,omitempty"`
}

// hotswapForwardReply is the answer of hotswapForwardMethod.
type hotswapForwardReply struct {
	Workflow string `json:"workflow,omitempty"`
}

// forwardingCoordinator runs operator requests on the local Coordinator
// and, when this node does not lead, hands them to the leader.
type forwardingCoordinator struct{ h *hotswapNode }

func (f forwardingCoordinator) forward(ctx context.Context, req hotswapForward) (string, error) {
	st := f.h.cl.Status()
	if st.Leader == "" || st.Leader == st.Node {
		return "", hotswap.ErrNotLeaderHere
	}
	var out hotswapForwardReply
	if err := f.h.cl.Call(ctx, st.Leader, hotswapForwardMethod, req, &out); err != nil {
		var re *cluster.RemoteError
		if errors.As(err, &re) && strings.Contains(re.Message, hotswap.ErrNotLeaderHere.Error()) {
			return "", hotswap.ErrNotLeaderHere
		}
		return "", fmt.Errorf("forwarding the hot-swap %s request to the leader %s: %w", req.Op, st.Leader, err)
	}
	return out.Workflow, nil
}

// Start implements adapt.WorkflowCoordinator.
func (f forwardingCoordinator) Start(ctx context.Context, kind hotswap.Kind, fru hotswap.FRU, actor, reason string) (string, error) {
	id, err := f.h.coord.Start(ctx, kind, fru, actor, reason)
	if errors.Is(err, hotswap.ErrNotLeaderHere) {
		return f.forward(ctx, hotswapForward{Op: "start", Kind: kind, FRU: &fru, Actor: actor, Reason: reason})
	}
	return id, err
}

// Override implements adapt.WorkflowCoordinator.
func (f forwardingCoordinator) Override(ctx context.Context, workflow, actor, reason string) error {
	err := f.h.coord.Override(ctx, workflow, actor, reason)
	if errors.Is(err, hotswap.ErrNotLeaderHere) {
		_, err = f.forward(ctx, hotswapForward{Op: "override", Workflow: workflow, Actor: actor, Reason: reason})
	}
	return err
}

// Abort implements adapt.WorkflowCoordinator.
func (f forwardingCoordinator) Abort(ctx context.Context, workflow, actor, reason string) error {
	err := f.h.coord.Abort(ctx, workflow, actor, reason)
	if errors.Is(err, hotswap.ErrNotLeaderHere) {
		_, err = f.forward(ctx, hotswapForward{Op: "abort", Workflow: workflow, Actor: actor, Reason: reason})
	}
	return err
}

// Retry implements adapt.WorkflowCoordinator.
func (f forwardingCoordinator) Retry(ctx context.Context, workflow, actor string) error {
	err := f.h.coord.Retry(ctx, workflow, actor)
	if errors.Is(err, hotswap.ErrNotLeaderHere) {
		_, err = f.forward(ctx, hotswapForward{Op: "retry", Workflow: workflow, Actor: actor})
	}
	return err
}

// handleHotSwapForward serves hotswapForwardMethod on the leader. The
// caller is a cluster member proven by its certificate; the operator's
// identity was authenticated and authorised by that member's API and is
// recorded as "<actor>@<member>" (the log's actor names allow no spaces).
func handleHotSwapForward(co *hotswap.Coordinator) cluster.Handler {
	return func(ctx context.Context, from string, raw json.RawMessage) (any, error) {
		var req hotswapForward
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, fmt.Errorf("decoding a forwarded hot-swap request: %w", err)
		}
		actor := req.Actor + "@" + from
		var id string
		var err error
		switch req.Op {
		case "start":
			if req.FRU == nil {
				return nil, errors.New("forwarded hot-swap start without a FRU")
			}
			id, err = co.Start(ctx, req.Kind, *req.FRU, actor, req.Reason)
		case "override":
			err = co.Override(ctx, req.Workflow, actor, req.Reason)
		case "abort":
			err = co.Abort(ctx, req.Workflow, actor, req.Reason)
		case "retry":
			err = co.Retry(ctx, req.Workflow, actor)
		default:
			return nil, fmt.Errorf("forwarded hot-swap operation %q is not start, override, abort or retry", req.Op)
		}
		if err != nil {
			return nil, err
		}
		return hotswapForwardReply{Workflow: id}, nil
	}
}
