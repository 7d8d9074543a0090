package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// raftStream is raft's StreamLayer over mutual TLS: accepted connections
// come from an allowed raft peer; dialed connections reach the node whose
// raft address it is, proven by its certificate.
type raftStream struct {
	*secureListener
	policy *tlsPolicy
	byAddr map[string]string // raft address → node
	faults *Faults
	self   string
}

// Dial implements raft.StreamLayer.
func (s *raftStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	name, ok := s.byAddr[normAddr(string(address))]
	if !ok {
		return nil, fmt.Errorf("raft dial %s: not the raft address of any listed node", address)
	}
	if s.faults != nil && !s.faults.Reachable(s.self, name) {
		return nil, fmt.Errorf("raft dial %q: %w", name, errPartitioned)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tc, err := s.policy.dial(ctx, string(address), name)
	if err != nil {
		return nil, fmt.Errorf("raft dial: %w", err)
	}
	if s.faults != nil {
		return s.faults.wrapConn(tc, s.self, name), nil
	}
	return tc, nil
}

// raftServers is the raft configuration taken from the allow-list.
func raftServers(cfg *Config) raft.Configuration {
	var conf raft.Configuration
	for _, n := range cfg.Nodes {
		if n.RaftAddr == "" {
			continue
		}
		s := raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.Name), Address: raft.ServerAddress(n.RaftAddr)}
		if n.NonVoter {
			s.Suffrage = raft.Nonvoter
		}
		conf.Servers = append(conf.Servers, s)
	}
	return conf
}

// raftNode bundles raft and its stores.
type raftNode struct {
	r     *raft.Raft
	store *raftboltdb.BoltStore
	trans *raft.NetworkTransport
}

// startRaft opens the stores in cfg.DataDir and starts raft. Every voter
// bootstraps with the same configuration (all listed nodes with a raft
// address) when its data directory holds no raft state; hashicorp/raft
// makes identical bootstraps safe, and no node has to be special.
func startRaft(cfg *Config, fsm raft.FSM, stream raft.StreamLayer, hlog hclog.Logger) (*raftNode, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating raft data dir %s: %w", cfg.DataDir, err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("opening raft log %s: %w", filepath.Join(cfg.DataDir, "raft.db"), err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hlog)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("opening raft snapshots in %s: %w", cfg.DataDir, err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hlog,
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeName)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.Logger = hlog
	if err := raft.ValidateConfig(rc); err != nil {
		trans.Close()
		store.Close()
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, fmt.Errorf("checking raft state in %s: %w", cfg.DataDir, err)
	}
	r, err := raft.NewRaft(rc, fsm, store, store, snaps, trans)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, fmt.Errorf("starting raft: %w", err)
	}
	if !existing {
		if err := r.BootstrapCluster(raftServers(cfg)).Error(); err != nil && err != raft.ErrCantBootstrap {
			r.Shutdown()
			trans.Close()
			store.Close()
			return nil, fmt.Errorf("bootstrapping raft: %w", err)
		}
	}
	return &raftNode{r: r, store: store, trans: trans}, nil
}

func (n *raftNode) shutdown() error {
	err := n.r.Shutdown().Error()
	if cerr := n.trans.Close(); err == nil {
		err = cerr
	}
	if cerr := n.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// logWriter turns the line-oriented logs of raft and memberlist into slog.
type logWriter struct {
	log       *slog.Logger
	component string
	mu        sync.Mutex
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		s := string(line)
		lvl := slog.LevelDebug
		switch {
		case bytes.Contains(line, []byte("[ERR")):
			lvl = slog.LevelError
		case bytes.Contains(line, []byte("[WARN")):
			lvl = slog.LevelWarn
		case bytes.Contains(line, []byte("[INFO")):
			lvl = slog.LevelInfo
		}
		w.log.Log(context.Background(), lvl, s, "component", w.component)
	}
	return len(p), nil
}

func newHCLogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Output: io.Writer(&logWriter{log: l, component: "raft"}),
		Level:  hclog.Info,
	})
}
