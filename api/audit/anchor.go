package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// AnchorLogKind is the kind under which an AnchorBook is registered with
// the cluster's replicated log and every anchor entry is proposed.
const AnchorLogKind = "audit-anchor"

// MaxAnchorsPerNode bounds how many anchors an AnchorBook keeps per node:
// the newest ones, enough to check a log cut back by a long way.
const MaxAnchorsPerNode = 64

// maxNodeNameLen bounds a node name in an anchor entry.
const maxNodeNameLen = 128

// NodeAnchor is one node's audit log head as written to the cluster's
// replicated log: the seq and hash of its newest record at Time. Kept on
// every member, it lets a node (at start) and an operator (hpictl audit
// verify --anchor) see that records were cut off the end of a node's log
// or that the log was rewritten, which the hash chain alone cannot show.
type NodeAnchor struct {
	Node string    `json:"node"`
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
	// Index is the replicated log index of the entry (set by Apply).
	Index uint64 `json:"index,omitempty"`
}

// Anchor returns the anchor to pass to VerifyAnchored.
func (a NodeAnchor) Anchor() Anchor { return Anchor{Seq: a.Seq, Hash: a.Hash} }

// AnchorConflict is an anchor entry that contradicts an earlier one of
// the same node: a lower seq than already anchored (the node's log was
// cut and is being written again) or the same seq with another hash (the
// log was rewritten). Both are evidence and are kept, never replaced.
type AnchorConflict struct {
	Earlier NodeAnchor `json:"earlier"`
	Later   NodeAnchor `json:"later"`
	Reason  string     `json:"reason"`
}

// EncodeAnchor makes the payload of an anchor entry.
func EncodeAnchor(a NodeAnchor) ([]byte, error) {
	a.Index = 0
	if err := checkAnchor(a); err != nil {
		return nil, err
	}
	return json.Marshal(a)
}

func checkAnchor(a NodeAnchor) error {
	switch {
	case a.Node == "" || len(a.Node) > maxNodeNameLen || strings.ContainsFunc(a.Node, func(r rune) bool { return r < 0x21 || r > 0x7e }):
		return fmt.Errorf("audit anchor: node name %q is empty, too long or not printable ASCII", a.Node)
	case a.Seq == 0:
		return errors.New("audit anchor: seq 0 (an empty log has nothing to anchor)")
	case len(a.Hash) != 64 || strings.Trim(a.Hash, "0123456789abcdef") != "":
		return fmt.Errorf("audit anchor of %s: hash is not 64 lower-case hex digits", a.Node)
	case a.Time.IsZero():
		return fmt.Errorf("audit anchor of %s: no time", a.Node)
	}
	return nil
}

// AnchorBook is the replicated state of audit anchors: per node the newest
// anchors, and every conflict seen. It is a state machine with no I/O
// (the cluster applies the log to it on every member); safe for
// concurrent use.
type AnchorBook struct {
	mu        sync.Mutex
	byNode    map[string][]NodeAnchor // oldest first, at most MaxAnchorsPerNode
	conflicts []AnchorConflict        // at most maxConflicts, oldest dropped
}

const maxConflicts = 256

// NewAnchorBook returns an empty book.
func NewAnchorBook() *AnchorBook { return &AnchorBook{byNode: map[string][]NodeAnchor{}} }

// Apply applies one committed anchor entry. It returns the anchor as
// stored, or an error for a malformed entry (kept in the log, changing
// nothing here). An anchor equal to the newest one of its node is a
// duplicate and changes nothing; a conflicting one is recorded as a
// conflict and, when its seq is lower, becomes the node's newest anchor
// (the node's log goes on from there).
func (b *AnchorBook) Apply(index uint64, payload []byte) any {
	var a NodeAnchor
	if err := json.Unmarshal(payload, &a); err != nil {
		return fmt.Errorf("audit anchor entry %d: %w", index, err)
	}
	if err := checkAnchor(a); err != nil {
		return fmt.Errorf("audit anchor entry %d: %w", index, err)
	}
	a.Index = index
	b.mu.Lock()
	defer b.mu.Unlock()
	list := b.byNode[a.Node]
	if n := len(list); n > 0 {
		last := list[n-1]
		if a.Seq == last.Seq && a.Hash == last.Hash {
			return last
		}
		if a.Seq < last.Seq {
			b.conflict(last, a, fmt.Sprintf("seq %d is below the anchored seq %d: records were cut off the end of the log", a.Seq, last.Seq))
		}
		for i := n - 1; i >= 0; i-- {
			if list[i].Seq == a.Seq && list[i].Hash != a.Hash {
				b.conflict(list[i], a, fmt.Sprintf("record %d has another hash than anchored: the log was rewritten", a.Seq))
				break
			}
		}
	}
	list = append(list, a)
	if len(list) > MaxAnchorsPerNode {
		list = slices.Clone(list[len(list)-MaxAnchorsPerNode:])
	}
	b.byNode[a.Node] = list
	return a
}

func (b *AnchorBook) conflict(earlier, later NodeAnchor, reason string) {
	b.conflicts = append(b.conflicts, AnchorConflict{Earlier: earlier, Later: later, Reason: reason})
	if len(b.conflicts) > maxConflicts {
		b.conflicts = slices.Clone(b.conflicts[len(b.conflicts)-maxConflicts:])
	}
}

// Anchors returns the anchors kept for node, oldest first.
func (b *AnchorBook) Anchors(node string) []NodeAnchor {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.byNode[node])
}

// Latest returns the newest anchor of every node, by node name.
func (b *AnchorBook) Latest() []NodeAnchor {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]NodeAnchor, 0, len(b.byNode))
	for _, l := range b.byNode {
		out = append(out, l[len(l)-1])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// Conflicts returns the conflicts seen, oldest first.
func (b *AnchorBook) Conflicts() []AnchorConflict {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.conflicts)
}

type anchorSnapshot struct {
	V         int                     `json:"v"`
	Nodes     map[string][]NodeAnchor `json:"nodes"`
	Conflicts []AnchorConflict        `json:"conflicts,omitempty"`
}

// Snapshot returns the whole state.
func (b *AnchorBook) Snapshot() ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return json.Marshal(anchorSnapshot{V: 1, Nodes: b.byNode, Conflicts: b.conflicts})
}

// Restore replaces the state by a snapshot (nil: empty).
func (b *AnchorBook) Restore(snap []byte) error {
	s := anchorSnapshot{Nodes: map[string][]NodeAnchor{}}
	if snap != nil {
		if err := json.Unmarshal(snap, &s); err != nil {
			return fmt.Errorf("restoring audit anchors: %w", err)
		}
		if s.V != 1 {
			return fmt.Errorf("restoring audit anchors: snapshot version %d", s.V)
		}
		for node, l := range s.Nodes {
			if len(l) == 0 || len(l) > MaxAnchorsPerNode {
				return fmt.Errorf("restoring audit anchors: node %q has %d anchors", node, len(l))
			}
			for _, a := range l {
				if err := checkAnchor(a); err != nil || a.Node != node {
					return fmt.Errorf("restoring audit anchors of %q: %v", node, err)
				}
			}
		}
		if s.Nodes == nil {
			s.Nodes = map[string][]NodeAnchor{}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.byNode, b.conflicts = s.Nodes, s.Conflicts
	return nil
}
