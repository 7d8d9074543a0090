package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/hashicorp/raft"
)

// FSM is one kind of replicated state. Every node applies the same entries
// in the same order; Apply must be deterministic and do no I/O beyond the
// FSM's own state. Snapshot and Restore are never called concurrently with
// Apply.
type FSM interface {
	// Apply applies the committed entry at index; the result is returned to
	// the proposer by Propose on the leader (and discarded elsewhere).
	Apply(index uint64, payload []byte) any
	// Snapshot returns the FSM's whole state.
	Snapshot() ([]byte, error)
	// Restore replaces the FSM's state by a snapshot; nil means the
	// snapshot holds nothing for this kind (reset to the empty state).
	Restore(snapshot []byte) error
}

// ErrUnknownKind is the Apply result of an entry whose kind no FSM is
// registered for on this node (the entry is kept in the log and in
// snapshots; it is not lost).
var ErrUnknownKind = errors.New("no FSM registered for this kind")

const (
	entryVersion    = 1
	maxKindLen      = 64
	snapshotVersion = 1
)

// encodeEntry frames a log entry: version, kind length, kind, payload.
func encodeEntry(kind string, payload []byte) ([]byte, error) {
	if kind == "" || len(kind) > maxKindLen {
		return nil, fmt.Errorf("FSM kind %q: must be 1..%d bytes", kind, maxKindLen)
	}
	b := make([]byte, 0, 2+len(kind)+len(payload))
	b = append(b, entryVersion, byte(len(kind)))
	b = append(b, kind...)
	return append(b, payload...), nil
}

// decodeEntry is the inverse of encodeEntry.
func decodeEntry(b []byte) (kind string, payload []byte, err error) {
	if len(b) < 2 {
		return "", nil, errors.New("log entry shorter than its header")
	}
	if b[0] != entryVersion {
		return "", nil, fmt.Errorf("log entry version %d, want %d", b[0], entryVersion)
	}
	n := int(b[1])
	if n == 0 || n > maxKindLen {
		return "", nil, fmt.Errorf("log entry kind length %d out of range", n)
	}
	if len(b) < 2+n {
		return "", nil, fmt.Errorf("log entry truncated: kind of %d bytes, %d left", n, len(b)-2)
	}
	return string(b[2 : 2+n]), b[2+n:], nil
}

type snapshotDoc struct {
	Version int               `json:"version"`
	FSMs    map[string][]byte `json:"fsms"`
}

func encodeSnapshot(m map[string][]byte) ([]byte, error) {
	return json.Marshal(snapshotDoc{Version: snapshotVersion, FSMs: m})
}

func decodeSnapshot(b []byte) (map[string][]byte, error) {
	var d snapshotDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decoding snapshot: %w", err)
	}
	if d.Version != snapshotVersion {
		return nil, fmt.Errorf("snapshot version %d, want %d", d.Version, snapshotVersion)
	}
	for k := range d.FSMs {
		if k == "" || len(k) > maxKindLen {
			return nil, fmt.Errorf("snapshot holds an FSM kind %q out of range", k)
		}
	}
	if d.FSMs == nil {
		d.FSMs = map[string][]byte{}
	}
	return d.FSMs, nil
}

// muxFSM dispatches raft entries to the FSM registered for their kind.
type muxFSM struct {
	mu   sync.Mutex
	fsms map[string]FSM
	// orphans holds snapshot state of kinds not registered here, so that a
	// node that lacks an FSM passes the state on rather than dropping it.
	orphans map[string][]byte
	applied uint64
}

func newMuxFSM() *muxFSM {
	return &muxFSM{fsms: map[string]FSM{}, orphans: map[string][]byte{}}
}

func (m *muxFSM) register(kind string, f FSM) error {
	if kind == "" || len(kind) > maxKindLen {
		return fmt.Errorf("registering FSM %q: kind must be 1..%d bytes", kind, maxKindLen)
	}
	if f == nil {
		return fmt.Errorf("registering FSM %q: nil FSM", kind)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.fsms[kind]; dup {
		return fmt.Errorf("registering FSM %q: already registered", kind)
	}
	m.fsms[kind] = f
	return nil
}

// Apply implements raft.FSM.
func (m *muxFSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	kind, payload, err := decodeEntry(l.Data)
	m.mu.Lock()
	f := m.fsms[kind]
	m.applied = l.Index
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("log entry %d: %w", l.Index, err)
	}
	if f == nil {
		return fmt.Errorf("log entry %d of kind %q: %w", l.Index, kind, ErrUnknownKind)
	}
	return f.Apply(l.Index, payload)
}

// Snapshot implements raft.FSM: each FSM's state is taken now (on raft's FSM
// goroutine, so consistent with the applied index) and written later.
func (m *muxFSM) Snapshot() (raft.FSMSnapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	all := make(map[string][]byte, len(m.fsms)+len(m.orphans))
	for k, v := range m.orphans {
		all[k] = v
	}
	kinds := make([]string, 0, len(m.fsms))
	for k := range m.fsms {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		b, err := m.fsms[k].Snapshot()
		if err != nil {
			return nil, fmt.Errorf("snapshot of FSM %q: %w", k, err)
		}
		all[k] = b
	}
	data, err := encodeSnapshot(all)
	if err != nil {
		return nil, fmt.Errorf("encoding snapshot: %w", err)
	}
	return fsmSnapshot(data), nil
}

// Restore implements raft.FSM.
func (m *muxFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("reading snapshot: %w", err)
	}
	all, err := decodeSnapshot(data)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	orphans := map[string][]byte{}
	for k, v := range all {
		if _, ok := m.fsms[k]; !ok {
			orphans[k] = v
		}
	}
	for k, f := range m.fsms {
		if err := f.Restore(all[k]); err != nil {
			return fmt.Errorf("restoring FSM %q: %w", k, err)
		}
	}
	m.orphans = orphans
	return nil
}

type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("writing snapshot: %w", err)
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}
