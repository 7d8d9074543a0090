package audit

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func hashN(i int) string { return fmt.Sprintf("%064x", i) }

func anchorEntry(t *testing.T, node string, seq uint64, hash string) []byte {
	t.Helper()
	b, err := EncodeAnchor(NodeAnchor{Node: node, Seq: seq, Hash: hash, Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAnchorBook(t *testing.T) {
	b := NewAnchorBook()
	idx := uint64(0)
	apply := func(node string, seq uint64, hash string) any {
		idx++
		return b.Apply(idx, anchorEntry(t, node, seq, hash))
	}
	apply("n1", 10, hashN(10))
	apply("n1", 20, hashN(20))
	apply("n2", 5, hashN(5))
	if got := apply("n1", 20, hashN(20)); got.(NodeAnchor).Index != 2 {
		t.Errorf("a repeated anchor was stored again: %+v", got)
	}
	if l := b.Anchors("n1"); len(l) != 2 || l[1].Seq != 20 {
		t.Fatalf("n1 anchors %+v", l)
	}
	if len(b.Conflicts()) != 0 {
		t.Fatalf("conflicts without cause: %+v", b.Conflicts())
	}
	// n1's log was cut back to 15, then a record 10 was rewritten.
	apply("n1", 15, hashN(15))
	apply("n1", 10, hashN(99))
	c := b.Conflicts()
	if len(c) != 3 || !strings.Contains(c[0].Reason, "cut off") || c[0].Earlier.Seq != 20 ||
		!strings.Contains(c[2].Reason, "rewritten") || c[2].Earlier.Hash != hashN(10) {
		t.Fatalf("conflicts %+v", c)
	}
	latest := b.Latest()
	if len(latest) != 2 || latest[0].Node != "n1" || latest[0].Seq != 10 || latest[1].Node != "n2" {
		t.Fatalf("latest %+v", latest)
	}
	// Bounded per node.
	for i := range 2 * MaxAnchorsPerNode {
		apply("n3", uint64(i+1), hashN(i+1))
	}
	if l := b.Anchors("n3"); len(l) != MaxAnchorsPerNode || l[len(l)-1].Seq != 2*MaxAnchorsPerNode {
		t.Fatalf("n3 keeps %d anchors ending at %d", len(l), l[len(l)-1].Seq)
	}
	// Snapshot and restore give the same state.
	snap, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b2 := NewAnchorBook()
	if err := b2.Restore(snap); err != nil {
		t.Fatal(err)
	}
	s2, _ := b2.Snapshot()
	if string(s2) != string(snap) {
		t.Fatal("restored book differs")
	}
	if err := b2.Restore(nil); err != nil || len(b2.Latest()) != 0 {
		t.Fatalf("restore nil: %v %+v", err, b2.Latest())
	}
}

func TestAnchorEntriesRefused(t *testing.T) {
	good := NodeAnchor{Node: "n1", Seq: 3, Hash: hashN(3), Time: t0}
	for _, tc := range []struct {
		name string
		mod  func(*NodeAnchor)
	}{
		{"no node", func(a *NodeAnchor) { a.Node = "" }},
		{"node with a space", func(a *NodeAnchor) { a.Node = "n 1" }},
		{"seq 0", func(a *NodeAnchor) { a.Seq = 0 }},
		{"short hash", func(a *NodeAnchor) { a.Hash = "abc" }},
		{"upper-case hash", func(a *NodeAnchor) { a.Hash = strings.ToUpper(hashN(0xabcdef)) }},
		{"no time", func(a *NodeAnchor) { a.Time = time.Time{} }},
	} {
		a := good
		tc.mod(&a)
		if _, err := EncodeAnchor(a); err == nil {
			t.Errorf("%s: encoded", tc.name)
		}
		raw, _ := json.Marshal(a)
		b := NewAnchorBook()
		if res, ok := b.Apply(1, raw).(error); !ok || res == nil {
			t.Errorf("%s: applied: %v", tc.name, res)
		}
		if len(b.Latest()) != 0 {
			t.Errorf("%s: stored", tc.name)
		}
	}
	if res, ok := NewAnchorBook().Apply(1, []byte("{not json")).(error); !ok || res == nil {
		t.Error("garbage applied")
	}
}

func FuzzAnchorBookApply(f *testing.F) {
	good, _ := EncodeAnchor(NodeAnchor{Node: "n1", Seq: 3, Hash: hashN(3), Time: t0})
	f.Add(good)
	f.Add([]byte(`{"node":"n1","seq":1,"hash":"` + hashN(1) + `","time":"2026-11-23T00:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		b := NewAnchorBook()
		res := b.Apply(1, payload)
		if a, ok := res.(NodeAnchor); ok {
			if checkAnchor(a) != nil || len(b.Anchors(a.Node)) != 1 {
				t.Fatalf("stored an invalid anchor %+v", a)
			}
		} else if _, ok := res.(error); !ok {
			t.Fatalf("Apply returned %T", res)
		}
		snap, err := b.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if err := NewAnchorBook().Restore(snap); err != nil {
			t.Fatalf("own snapshot does not restore: %v", err)
		}
	})
}
