package fencing

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/gosnmp/gosnmp"
)

// oidIfAdminStatus is IF-MIB::ifAdminStatus; the column's instance is the
// ifIndex. up(1), down(2), testing(3).
const oidIfAdminStatus = ".1.3.6.1.2.1.2.2.1.7"

// SNMP authentication and privacy protocols accepted for fabric switches.
// Only SNMPv3 authPriv is used: a fence over an unauthenticated channel
// could be forged or replayed.
const (
	AuthSHA    = "SHA"
	AuthSHA256 = "SHA-256"
	AuthSHA512 = "SHA-512"
	PrivAES    = "AES"
	PrivAES256 = "AES-256"
)

// FabricConfig configures a fabric port executor (one switch).
type FabricConfig struct {
	// Name is the executor's name in logs. Default "fabric-" + Address.
	Name string
	// Address is the switch's SNMP agent as host:port. Required.
	Address string
	// User is the SNMPv3 user with write access to ifAdminStatus. Required.
	User string
	// AuthProtocol is AuthSHA, AuthSHA256 or AuthSHA512. Default AuthSHA
	// (what most switches offer; SHA-2 preferred where available).
	AuthProtocol string
	// AuthPassphrase and PrivPassphrase are secrets (from systemd
	// credentials or a 0600 file): never logged nor put in errors.
	// Required, at least 8 bytes (RFC 3414).
	AuthPassphrase string
	// PrivProtocol is PrivAES or PrivAES256. Default PrivAES.
	PrivProtocol   string
	PrivPassphrase string
	// Ports maps cluster node names to the ifIndex values of their fabric
	// ports on this switch. A node is fenced when every one is down.
	Ports map[string][]int
	// Timeout is how long one SNMP request waits for its answer. Default
	// 2 s; Retries is how often it is resent (SETs of ifAdminStatus are
	// idempotent). Default 2.
	Timeout time.Duration
	Retries int
	// Logger receives debug messages. Default slog.Default().
	Logger *slog.Logger
}

// LogValue keeps the passphrases out of logs.
func (c FabricConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", c.Name), slog.String("address", c.Address), slog.String("user", c.User),
		slog.String("auth", c.AuthProtocol), slog.String("priv", c.PrivProtocol))
}

// String keeps the passphrases out of fmt output.
func (c FabricConfig) String() string {
	return fmt.Sprintf("fabric %s (%s, user %s, %s/%s)", c.Name, c.Address, c.User, c.AuthProtocol, c.PrivProtocol)
}

// GoString keeps the passphrases out of %#v output.
func (c FabricConfig) GoString() string { return "fencing.FabricConfig{" + c.String() + "}" }

// Fabric fences a node by setting its switch ports' ifAdminStatus to
// down(2) over SNMPv3 authPriv, confirmed by reading ifAdminStatus back.
type Fabric struct {
	cfg  FabricConfig
	host string
	port uint16
	auth gosnmp.SnmpV3AuthProtocol
	priv gosnmp.SnmpV3PrivProtocol
}

// NewFabric validates cfg and returns a fabric port executor.
func NewFabric(cfg FabricConfig) (*Fabric, error) {
	host, ps, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("fencing: fabric switch address %q: %w", cfg.Address, err)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("fencing: fabric switch address %q: bad port", cfg.Address)
	}
	if cfg.User == "" {
		return nil, fmt.Errorf("fencing: fabric switch %s: no SNMPv3 user", cfg.Address)
	}
	if len(cfg.AuthPassphrase) < 8 || len(cfg.PrivPassphrase) < 8 {
		return nil, fmt.Errorf("fencing: fabric switch %s: SNMPv3 passphrases must have at least 8 bytes", cfg.Address)
	}
	f := &Fabric{host: host, port: uint16(port)}
	switch cfg.AuthProtocol {
	case "", AuthSHA:
		cfg.AuthProtocol, f.auth = AuthSHA, gosnmp.SHA
	case AuthSHA256:
		f.auth = gosnmp.SHA256
	case AuthSHA512:
		f.auth = gosnmp.SHA512
	default:
		return nil, fmt.Errorf("fencing: fabric switch %s: authentication protocol %q not allowed (SHA, SHA-256, SHA-512)", cfg.Address, cfg.AuthProtocol)
	}
	switch cfg.PrivProtocol {
	case "", PrivAES:
		cfg.PrivProtocol, f.priv = PrivAES, gosnmp.AES
	case PrivAES256:
		f.priv = gosnmp.AES256
	default:
		return nil, fmt.Errorf("fencing: fabric switch %s: privacy protocol %q not allowed (AES, AES-256)", cfg.Address, cfg.PrivProtocol)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 2
	}
	if cfg.Name == "" {
		cfg.Name = "fabric-" + cfg.Address
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f.cfg = cfg
	return f, nil
}

// Name implements Executor.
func (f *Fabric) Name() string { return f.cfg.Name }

func (f *Fabric) ports(node string) ([]int, error) {
	p := f.cfg.Ports[node]
	if len(p) == 0 {
		return nil, fmt.Errorf("%s: node %q: %w", f.cfg.Name, node, ErrUnknownTarget)
	}
	return p, nil
}

// client returns a connected SNMPv3 authPriv client for one operation
// (gosnmp clients are not safe for concurrent use).
func (f *Fabric) client(ctx context.Context) (*gosnmp.GoSNMP, error) {
	g := &gosnmp.GoSNMP{
		Target: f.host, Port: f.port, Transport: "udp", Version: gosnmp.Version3,
		Timeout: f.cfg.Timeout, Retries: f.cfg.Retries, Context: ctx, MaxOids: gosnmp.MaxOids,
		SecurityModel: gosnmp.UserSecurityModel, MsgFlags: gosnmp.AuthPriv,
		SecurityParameters: &gosnmp.UsmSecurityParameters{
			UserName:                 f.cfg.User,
			AuthenticationProtocol:   f.auth,
			AuthenticationPassphrase: f.cfg.AuthPassphrase,
			PrivacyProtocol:          f.priv,
			PrivacyPassphrase:        f.cfg.PrivPassphrase,
		},
	}
	if err := g.Connect(); err != nil {
		return nil, fmt.Errorf("connecting to switch %s: %w", f.cfg.Address, err)
	}
	return g, nil
}

func (f *Fabric) setAdmin(ctx context.Context, node string, v int) error {
	ports, err := f.ports(node)
	if err != nil {
		return err
	}
	g, err := f.client(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", f.cfg.Name, err)
	}
	defer g.Conn.Close()
	pdus := make([]gosnmp.SnmpPDU, len(ports))
	for i, p := range ports {
		pdus[i] = gosnmp.SnmpPDU{Name: fmt.Sprintf("%s.%d", oidIfAdminStatus, p), Type: gosnmp.Integer, Value: v}
	}
	res, err := g.Set(pdus)
	if err != nil {
		return fmt.Errorf("%s: setting ifAdminStatus of ports %v of %q to %d: %w", f.cfg.Name, ports, node, v, err)
	}
	if res.Error != gosnmp.NoError {
		return fmt.Errorf("%s: setting ifAdminStatus of ports %v of %q to %d: switch answered %v (index %d)", f.cfg.Name, ports, node, v, res.Error, res.ErrorIndex)
	}
	return nil
}

// Off implements Executor: ifAdminStatus down(2) on every port of node.
func (f *Fabric) Off(ctx context.Context, node string) error { return f.setAdmin(ctx, node, 2) }

// On implements Executor: ifAdminStatus up(1) on every port of node.
func (f *Fabric) On(ctx context.Context, node string) error { return f.setAdmin(ctx, node, 1) }

// Status implements Executor: off when every port of node reads down(2),
// on when every port reads up(1), unknown otherwise.
func (f *Fabric) Status(ctx context.Context, node string) (PowerStatus, error) {
	ports, err := f.ports(node)
	if err != nil {
		return PowerUnknown, err
	}
	g, err := f.client(ctx)
	if err != nil {
		return PowerUnknown, fmt.Errorf("%s: %w", f.cfg.Name, err)
	}
	defer g.Conn.Close()
	oids := make([]string, len(ports))
	for i, p := range ports {
		oids[i] = fmt.Sprintf("%s.%d", oidIfAdminStatus, p)
	}
	res, err := g.Get(oids)
	if err != nil {
		return PowerUnknown, fmt.Errorf("%s: reading ifAdminStatus of ports %v of %q: %w", f.cfg.Name, ports, node, err)
	}
	if res.Error != gosnmp.NoError {
		return PowerUnknown, fmt.Errorf("%s: reading ifAdminStatus of ports %v of %q: switch answered %v", f.cfg.Name, ports, node, res.Error)
	}
	up, down := 0, 0
	for _, v := range res.Variables {
		if v.Type != gosnmp.Integer {
			return PowerUnknown, fmt.Errorf("%s: ifAdminStatus %s of %q: %v", f.cfg.Name, v.Name, node, v.Type)
		}
		switch gosnmp.ToBigInt(v.Value).Int64() {
		case 1:
			up++
		case 2:
			down++
		}
	}
	switch {
	case down == len(ports):
		return PowerOff, nil
	case up == len(ports):
		return PowerOn, nil
	}
	return PowerUnknown, nil
}
