package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/memberlist"

	"hpiagent/internal/pki"
)

// Node is one entry of the cluster's allow-list: a node that may be a member,
// with the addresses every other node uses to reach it. A node binds its own
// listeners to the addresses of its own entry.
type Node struct {
	// Name is the node's name. It must equal the identity in the node's
	// certificate (see Config.Identity); gossip that claims this name from
	// another address, or an RPC/raft peer presenting another identity, is
	// refused. Required.
	Name string

	// GossipAddr is host:port of memberlist (UDP and TCP on the same port).
	// Alive messages for Name that advertise another address are refused.
	// Required.
	GossipAddr string

	// RaftAddr is host:port of the raft transport (TCP, mutual TLS).
	// Required for voters.
	RaftAddr string

	// RPCAddr is host:port of the peer RPC server (HTTPS, mutual TLS). The
	// cluster also dials it to bind a gossip member to its certificate.
	// Required.
	RPCAddr string

	// NonVoter makes the node a member (gossip, RPC, events) that is not a
	// raft voter. Default false: every listed node is a voter, because a
	// blade cluster is small and every blade should count for quorum.
	NonVoter bool
}

// Config configures one cluster node. Zero-valued durations and counts take
// the defaults documented on each field (see DefaultConfig).
//
// Failure detection with the defaults: a dead member is probed within one
// ProbeInterval (300 ms), its probe and indirect probes time out
// (ProbeTimeout 150 ms, the rest of the interval), then it is suspect for
// SuspicionMult*ProbeInterval = 1.2 s (3 or 4 members) up to
// SuspicionMaxTimeoutMult times that without confirmations (5+ members, where
// confirmations from the other members bring it back towards 1.2 s). Then
// the cluster dials the member's RPC port once to confirm (immediate for a
// crashed process or a host that answers with a reset, up to
// HandshakeTimeout for a silent one). Resulting detection: about 1.5–2 s on
// a LAN, 2.5–4 s for a host that vanished silently.
type Config struct {
	// NodeName is this node's name; it must be one of Nodes. Required.
	NodeName string

	// Nodes is the allow-list: every node that may join, with its
	// addresses, and the raft voters (those without NonVoter). Every node
	// of a cluster must have the same list. Required, at least this node.
	Nodes []Node

	// GossipKeys are the memberlist keyring keys (16, 24 or 32 bytes, AES);
	// the first one is the primary (used to encrypt), all decrypt. They come
	// from the secret loader, never from the config file. Required: there
	// is no unencrypted gossip. Rotate with InstallKey/UseKey/RemoveKey.
	GossipKeys [][]byte

	// Label is memberlist's label, bound into every packet and stream (as
	// authenticated data of the encryption); gossip from another cluster
	// with the same key but another label is dropped. Default "hpiagent".
	Label string

	// ServerTLS is the TLS configuration of the raft and RPC listeners: it
	// must hold this node's certificate (Certificates or GetCertificate)
	// and ClientCAs. The cluster clones it and forces TLS 1.3 and
	// RequireAndVerifyClientCert. Required.
	ServerTLS *tls.Config

	// ClientTLS is the TLS configuration for dialing peers: this node's
	// client certificate and RootCAs. The cluster clones it, forces TLS 1.3,
	// verifies the chain against RootCAs itself and then checks the peer's
	// identity equals the node it meant to reach (host names are not used:
	// a node is its certificate identity). Required.
	ClientTLS *tls.Config

	// Identity returns the identity of a verified peer certificate; PeerName
	// then turns it into a node name (hpiagent://peer/<name> → <name>,
	// other kinds refused, a plain common name as is). Default pki.Identity,
	// the one rule the API and the cluster share.
	Identity func(cert *x509.Certificate) (string, error)

	// DataDir holds raft's log and stable store (raft.db, bbolt) and its
	// snapshots (snapshots/). Required; created 0700 if missing.
	DataDir string

	// ProbeInterval is memberlist's interval between failure probes.
	// Default 300 ms (memberlist's LAN default is 1 s): we want a dead blade
	// detected in 1–2 s, and a blade LAN has sub-millisecond round trips.
	ProbeInterval time.Duration

	// ProbeTimeout is how long memberlist waits for a direct probe's ack
	// before indirect probes. Default 150 ms: far above a LAN round trip,
	// short enough to fit twice in ProbeInterval.
	ProbeTimeout time.Duration

	// SuspicionMult sets how long a member stays suspect before it is
	// declared dead: SuspicionMult*ProbeInterval (times log10 of the member
	// count for clusters of 10 or more). Default 4 (1.2 s): time for the
	// suspect to hear of it and refute even when some gossip is lost (3
	// let 5% packet loss declare live members dead now and then).
	SuspicionMult int

	// SuspicionMaxTimeoutMult bounds the suspicion time without
	// confirmations from other members. Default 3.
	SuspicionMaxTimeoutMult int

	// GossipInterval is memberlist's gossip period. Default 100 ms, so that
	// suspicions and refutations spread well within the suspicion time.
	GossipInterval time.Duration

	// GossipNodes is how many random members each gossip round goes to.
	// Default 4 (memberlist's LAN default is 3): in a blade cluster of up
	// to five that is every other member, so a refutation reaches each
	// suspecter in the first round even when some packets are lost.
	GossipNodes int

	// PushPullInterval is memberlist's full-state sync period. Default 15 s.
	PushPullInterval time.Duration

	// HeartbeatTimeout is raft's follower timeout without leader contact
	// before it becomes a candidate. Default 1 s (raft's default; on a LAN
	// it gives a new leader in about 1–3 s).
	HeartbeatTimeout time.Duration

	// ElectionTimeout is raft's candidate timeout. Default 1 s.
	ElectionTimeout time.Duration

	// LeaderLeaseTimeout is how long a leader keeps leading without contact
	// from a majority; also the window HasQuorum accepts for the last
	// contact. Default 500 ms.
	LeaderLeaseTimeout time.Duration

	// CommitTimeout is raft's idle time before a heartbeat carries the
	// commit index. Default 50 ms.
	CommitTimeout time.Duration

	// SnapshotThreshold is the number of log entries after which raft takes
	// a snapshot. Default 1024: the FSMs here are small.
	SnapshotThreshold uint64

	// HandshakeTimeout bounds a TLS handshake on the raft and RPC
	// listeners, and the dials of member verification and dead-member
	// confirmation. Default 2 s.
	HandshakeTimeout time.Duration

	// RPCTimeout is the default deadline of Call when its context has none.
	// Default 5 s.
	RPCTimeout time.Duration

	// AcceptRate and AcceptBurst rate-limit new, not yet authenticated
	// connections per source IP on each listener (raft and RPC): anyone
	// who can reach the port can make us start TLS handshakes, and one
	// source must not lock the peers out. Peers pool their connections, so
	// they need few. Default 50/s, burst 100.
	AcceptRate  float64
	AcceptBurst int

	// MaxHandshakes bounds TLS handshakes in progress per listener, over
	// all sources; connections beyond it are closed at once. Default 32.
	MaxHandshakes int

	// EventBuffer is the capacity of the MemberEvents channel; events that
	// do not fit are dropped and counted. Default 64.
	EventBuffer int

	// Logger receives the cluster's logs, including memberlist's and
	// raft's. Default slog.Default().
	Logger *slog.Logger

	// Faults injects packet loss and partitions (tests only). Default nil:
	// no faults.
	Faults *Faults
}

// DefaultConfig returns a Config with every default filled in; the caller
// sets NodeName, Nodes, GossipKeys, ServerTLS, ClientTLS and DataDir.
func DefaultConfig() Config {
	return Config{
		Label:                   "hpiagent",
		Identity:                pki.Identity,
		ProbeInterval:           300 * time.Millisecond,
		ProbeTimeout:            150 * time.Millisecond,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 3,
		GossipInterval:          100 * time.Millisecond,
		GossipNodes:             4,
		PushPullInterval:        15 * time.Second,
		HeartbeatTimeout:        1000 * time.Millisecond,
		ElectionTimeout:         1000 * time.Millisecond,
		LeaderLeaseTimeout:      500 * time.Millisecond,
		CommitTimeout:           50 * time.Millisecond,
		SnapshotThreshold:       1024,
		HandshakeTimeout:        2 * time.Second,
		RPCTimeout:              5 * time.Second,
		AcceptRate:              50,
		AcceptBurst:             100,
		MaxHandshakes:           32,
		EventBuffer:             64,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Label == "" {
		c.Label = d.Label
	}
	if c.Identity == nil {
		c.Identity = d.Identity
	}
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setDur(&c.ProbeInterval, d.ProbeInterval)
	setDur(&c.ProbeTimeout, d.ProbeTimeout)
	setDur(&c.GossipInterval, d.GossipInterval)
	setDur(&c.PushPullInterval, d.PushPullInterval)
	setDur(&c.HeartbeatTimeout, d.HeartbeatTimeout)
	setDur(&c.ElectionTimeout, d.ElectionTimeout)
	setDur(&c.LeaderLeaseTimeout, d.LeaderLeaseTimeout)
	setDur(&c.CommitTimeout, d.CommitTimeout)
	setDur(&c.HandshakeTimeout, d.HandshakeTimeout)
	setDur(&c.RPCTimeout, d.RPCTimeout)
	if c.GossipNodes == 0 {
		c.GossipNodes = d.GossipNodes
	}
	if c.SuspicionMult == 0 {
		c.SuspicionMult = d.SuspicionMult
	}
	if c.SuspicionMaxTimeoutMult == 0 {
		c.SuspicionMaxTimeoutMult = d.SuspicionMaxTimeoutMult
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.AcceptRate == 0 {
		c.AcceptRate = d.AcceptRate
	}
	if c.AcceptBurst == 0 {
		c.AcceptBurst = d.AcceptBurst
	}
	if c.MaxHandshakes == 0 {
		c.MaxHandshakes = d.MaxHandshakes
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = d.EventBuffer
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate checks a Config with defaults applied.
func (c *Config) validate() error {
	if c.NodeName == "" {
		return errors.New("cluster config: NodeName is empty")
	}
	if len(c.Nodes) == 0 {
		return errors.New("cluster config: Nodes (the allow-list) is empty")
	}
	seen := map[string]bool{}
	addrs := map[string]string{}
	self, voters := false, 0
	for i, n := range c.Nodes {
		if n.Name == "" {
			return fmt.Errorf("cluster config: Nodes[%d] has no name", i)
		}
		if seen[n.Name] {
			return fmt.Errorf("cluster config: node %q listed twice", n.Name)
		}
		seen[n.Name] = true
		if n.Name == c.NodeName {
			self = true
		}
		check := func(what, a string, required bool) error {
			if a == "" {
				if required {
					return fmt.Errorf("cluster config: node %q: %s is empty", n.Name, what)
				}
				return nil
			}
			host, port, err := net.SplitHostPort(a)
			if err != nil {
				return fmt.Errorf("cluster config: node %q: %s %q: %w", n.Name, what, a, err)
			}
			if net.ParseIP(host) == nil {
				return fmt.Errorf("cluster config: node %q: %s %q: host must be an IP address", n.Name, what, a)
			}
			if port == "0" {
				return fmt.Errorf("cluster config: node %q: %s %q: port 0 is not allowed, peers must know it", n.Name, what, a)
			}
			if other, dup := addrs[a]; dup {
				return fmt.Errorf("cluster config: node %q: %s %q already used by %s", n.Name, what, a, other)
			}
			addrs[a] = fmt.Sprintf("%s of %q", what, n.Name)
			return nil
		}
		if err := check("GossipAddr", n.GossipAddr, true); err != nil {
			return err
		}
		if err := check("RaftAddr", n.RaftAddr, !n.NonVoter); err != nil {
			return err
		}
		if err := check("RPCAddr", n.RPCAddr, true); err != nil {
			return err
		}
		if !n.NonVoter {
			voters++
		}
	}
	if !self {
		return fmt.Errorf("cluster config: NodeName %q is not in Nodes", c.NodeName)
	}
	if voters == 0 {
		return errors.New("cluster config: no voters")
	}
	if len(c.GossipKeys) == 0 {
		return errors.New("cluster config: GossipKeys is empty; gossip is never sent in plaintext")
	}
	for i, k := range c.GossipKeys {
		if err := memberlist.ValidateKey(k); err != nil {
			return fmt.Errorf("cluster config: GossipKeys[%d]: %w", i, err)
		}
	}
	if len(c.Label) > memberlist.LabelMaxSize {
		return fmt.Errorf("cluster config: Label longer than %d bytes", memberlist.LabelMaxSize)
	}
	if c.ServerTLS == nil || (len(c.ServerTLS.Certificates) == 0 && c.ServerTLS.GetCertificate == nil) {
		return errors.New("cluster config: ServerTLS with a certificate is required")
	}
	if c.ServerTLS.ClientCAs == nil {
		return errors.New("cluster config: ServerTLS.ClientCAs is required (client certificates are verified)")
	}
	if c.ClientTLS == nil || (len(c.ClientTLS.Certificates) == 0 && c.ClientTLS.GetClientCertificate == nil) {
		return errors.New("cluster config: ClientTLS with a client certificate is required")
	}
	if c.ClientTLS.RootCAs == nil {
		return errors.New("cluster config: ClientTLS.RootCAs is required")
	}
	if c.DataDir == "" {
		return errors.New("cluster config: DataDir is empty")
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		return fmt.Errorf("cluster config: ProbeTimeout %v must be shorter than ProbeInterval %v", c.ProbeTimeout, c.ProbeInterval)
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		return fmt.Errorf("cluster config: LeaderLeaseTimeout %v must not exceed HeartbeatTimeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	return nil
}

// node returns the allow-list entry of name.
func (c *Config) node(name string) (Node, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}
