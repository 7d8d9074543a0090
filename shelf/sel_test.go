package shelf

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"hpiagent/shelf/ipmi"
)

// fakeSEL is an in-process controller that answers Get SEL Info and Get
// SEL Entry from a list of records, for the follower's pure logic. Its
// clock is under the test's control.
type fakeSEL struct {
	mu         sync.Mutex
	recs       []ipmi.SELRecord
	nextID     uint16
	now        uint32
	lastAdd    uint32
	lastErase  uint32
	overflow   bool
	capacity   int
	noErase    bool // never updates the erase time stamp
	entryReads int
}

func newFakeSEL() *fakeSEL {
	return &fakeSEL{nextID: 1, now: 0x6b000000, lastAdd: 0xffffffff, lastErase: 0xffffffff, capacity: 1000}
}

func (f *fakeSEL) add(sensor uint8, d1 uint8) ipmi.SELRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.recs) >= f.capacity {
		f.overflow = true
		return ipmi.SELRecord{}
	}
	r := ipmi.SELRecord{RecordID: f.nextID, Type: ipmi.SELSystemEvent, RawTime: f.now, Generator: 0x0084,
		EvMRev: 4, SensorType: 0xf0, Sensor: sensor, EventType: 0x6f, EventData: [3]uint8{d1, 0xff, 0xff}}
	f.nextID++
	f.recs = append(f.recs, r)
	f.lastAdd = f.now
	return r
}

// clear erases the SEL; reuse restarts record IDs at 1.
func (f *fakeSEL) clear(reuse bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs, f.overflow = nil, false
	if !f.noErase {
		f.lastErase = f.now
	}
	if reuse {
		f.nextID = 1
	}
}

func (f *fakeSEL) remove(id uint16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs = slices.DeleteFunc(f.recs, func(r ipmi.SELRecord) bool { return r.RecordID == id })
}

func (f *fakeSEL) Close() error { return nil }

func (f *fakeSEL) Exchange(ctx context.Context, to ipmi.Addr, req ipmi.Request) (ipmi.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.NetFn != ipmi.NetFnStorage {
		return ipmi.Response{Code: ipmi.CCInvalidCommand}, nil
	}
	switch req.Cmd {
	case ipmi.CmdGetSELInfo:
		b := make([]byte, 14)
		b[0] = 0x51
		binary.LittleEndian.PutUint16(b[1:], uint16(len(f.recs)))
		binary.LittleEndian.PutUint16(b[3:], uint16((f.capacity-len(f.recs))*16))
		binary.LittleEndian.PutUint32(b[5:], f.lastAdd)
		binary.LittleEndian.PutUint32(b[9:], f.lastErase)
		b[13] = 0x0a
		if f.overflow {
			b[13] |= 0x80
		}
		return ipmi.Response{Data: b}, nil
	case ipmi.CmdGetSELEntry:
		f.entryReads++
		id := binary.LittleEndian.Uint16(req.Data[2:])
		i := -1
		switch {
		case len(f.recs) == 0:
		case id == 0:
			i = 0
		case id == 0xffff:
			i = len(f.recs) - 1
		default:
			i = slices.IndexFunc(f.recs, func(r ipmi.SELRecord) bool { return r.RecordID == id })
		}
		if i < 0 {
			return ipmi.Response{Code: ipmi.CCNotPresent}, nil
		}
		next := uint16(0xffff)
		if i+1 < len(f.recs) {
			next = f.recs[i+1].RecordID
		}
		return ipmi.Response{Data: append(binary.LittleEndian.AppendUint16(nil, next), f.recs[i].Marshal()...)}, nil
	}
	return ipmi.Response{Code: ipmi.CCInvalidCommand}, nil
}

// step is one thing that happens to the SEL before the next poll.
type step func(f *fakeSEL)

func adds(n int, sensor uint8) step {
	return func(f *fakeSEL) {
		for i := range n {
			f.add(sensor, uint8(i))
		}
	}
}

func tick(f *fakeSEL) { f.now++ }

// TestSELFollower drives a fake SEL through additions, clears, ID reuse,
// deletions and overflow, polling after each round, and checks that every
// added record is reported exactly once, in order, with a gap marker
// wherever records may have been lost.
func TestSELFollower(t *testing.T) {
	tests := []struct {
		name   string
		skip   bool
		setup  func(f *fakeSEL)
		rounds [][]step
		// want per round: the sensor/data1 pairs reported ("s:d") and
		// "gap" for a gap marker.
		want [][]string
	}{
		{
			name:   "incremental",
			rounds: [][]step{{adds(2, 1)}, {}, {tick, adds(1, 2)}, {adds(2, 3)}},
			want:   [][]string{{"1:0", "1:1"}, nil, {"2:0"}, {"3:0", "3:1"}},
		},
		{
			name:   "skip existing",
			skip:   true,
			setup:  func(f *fakeSEL) { adds(3, 1)(f) },
			rounds: [][]step{{}, {adds(1, 2)}},
			want:   [][]string{nil, {"2:0"}},
		},
		{
			name:   "skip existing on an empty SEL",
			skip:   true,
			rounds: [][]step{{}, {adds(1, 2)}},
			want:   [][]string{nil, {"2:0"}},
		},
		{
			name:   "clear with erase time stamp, IDs continue",
			rounds: [][]step{{adds(2, 1)}, {tick, func(f *fakeSEL) { f.clear(false) }, adds(1, 2)}, {adds(1, 3)}},
			want:   [][]string{{"1:0", "1:1"}, {"gap", "2:0"}, {"3:0"}},
		},
		{
			name: "clear reusing IDs, no erase time stamp",
			setup: func(f *fakeSEL) {
				f.noErase = true
			},
			rounds: [][]step{{adds(3, 1)}, {tick, func(f *fakeSEL) { f.clear(true) }, adds(4, 2)}, {adds(1, 3)}},
			want:   [][]string{{"1:0", "1:1", "1:2"}, {"gap", "2:0", "2:1", "2:2", "2:3"}, {"3:0"}},
		},
		{
			name: "clear reusing IDs, fewer records than before, same second",
			setup: func(f *fakeSEL) {
				f.noErase = true
			},
			rounds: [][]step{{adds(3, 1)}, {func(f *fakeSEL) { f.clear(true) }, adds(1, 2)}, {adds(1, 3)}},
			want:   [][]string{{"1:0", "1:1", "1:2"}, {"gap", "2:0"}, {"3:0"}},
		},
		{
			name:   "last record deleted, older ones stay: no repeats",
			rounds: [][]step{{adds(3, 1)}, {tick, func(f *fakeSEL) { f.remove(3) }, adds(1, 2)}},
			want:   [][]string{{"1:0", "1:1", "1:2"}, {"gap", "2:0"}},
		},
		{
			name:   "older records deleted: nothing to report",
			rounds: [][]step{{adds(3, 1)}, {func(f *fakeSEL) { f.remove(1) }}, {adds(1, 2)}},
			want:   [][]string{{"1:0", "1:1", "1:2"}, nil, {"2:0"}},
		},
		{
			name:   "overflow reported once",
			setup:  func(f *fakeSEL) { f.capacity = 3 },
			rounds: [][]step{{adds(2, 1)}, {adds(3, 2)}, {adds(1, 3)}, {func(f *fakeSEL) { f.clear(false) }, adds(1, 4)}},
			want:   [][]string{{"1:0", "1:1"}, {"gap", "2:0"}, nil, {"gap", "4:0"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			sel := newFakeSEL()
			if tc.setup != nil {
				tc.setup(sel)
			}
			fol := &SELFollower{Conn: sel, SkipExisting: tc.skip}
			for i, round := range tc.rounds {
				for _, s := range round {
					s(sel)
				}
				evs, err := fol.Poll(ctx)
				if err != nil {
					t.Fatalf("round %d: %v", i, err)
				}
				var got []string
				for _, e := range evs {
					if e.Kind == EventGap {
						got = append(got, "gap")
						continue
					}
					got = append(got, fmt.Sprintf("%d:%d", e.Sensor, e.Data[0]))
				}
				if !slices.Equal(got, tc.want[i]) {
					t.Errorf("round %d: got %v, want %v", i, got, tc.want[i])
				}
			}
		})
	}
}

// TestSELFollowerUnchanged checks that an unchanged SEL costs one Get SEL
// Info and no entry reads.
func TestSELFollowerUnchanged(t *testing.T) {
	ctx := context.Background()
	sel := newFakeSEL()
	adds(5, 1)(sel)
	fol := &SELFollower{Conn: sel}
	if _, err := fol.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	before := sel.entryReads
	for range 3 {
		evs, err := fol.Poll(ctx)
		if err != nil || len(evs) != 0 {
			t.Fatalf("unchanged SEL: %d events, %v", len(evs), err)
		}
	}
	if sel.entryReads != before {
		t.Errorf("unchanged SEL read %d entries", sel.entryReads-before)
	}
}

// TestSELFollowerResume checks that a persisted cursor resumes where the
// last follower stopped.
func TestSELFollowerResume(t *testing.T) {
	ctx := context.Background()
	sel := newFakeSEL()
	adds(2, 1)(sel)
	a := &SELFollower{Conn: sel}
	if _, err := a.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	adds(1, 2)(sel)
	b := &SELFollower{Conn: sel, Cursor: a.Cursor, SkipExisting: true}
	evs, err := b.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Sensor != 2 {
		t.Fatalf("resumed follower reported %v, want the one new record", evs)
	}
}

// errConn fails every request after the first n.
type errConn struct {
	ipmi.Conn
	n int
}

func (e *errConn) Exchange(ctx context.Context, to ipmi.Addr, req ipmi.Request) (ipmi.Response, error) {
	if e.n <= 0 {
		return ipmi.Response{}, fmt.Errorf("session lost")
	}
	e.n--
	return e.Conn.Exchange(ctx, to, req)
}

// TestSELFollowerError checks that a poll failing midway keeps what it
// read and the next poll continues after it.
func TestSELFollowerError(t *testing.T) {
	ctx := context.Background()
	sel := newFakeSEL()
	adds(4, 1)(sel)
	conn := &errConn{Conn: sel, n: 3} // info + 2 entries
	fol := &SELFollower{Conn: conn}
	evs, err := fol.Poll(ctx)
	if err == nil || len(evs) != 2 {
		t.Fatalf("first poll: %d events, err %v; want 2 and an error", len(evs), err)
	}
	conn.n = 100
	evs2, err := fol.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint8
	for _, e := range append(evs, evs2...) {
		got = append(got, e.Data[0])
	}
	if !slices.Equal(got, []uint8{0, 1, 2, 3}) {
		t.Errorf("reported %v, want each record once in order", got)
	}
}

// TestSELFollowerRun checks Run's kick and sink plumbing.
func TestSELFollowerRun(t *testing.T) {
	sel := newFakeSEL()
	fol := &SELFollower{Conn: sel}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan Event, 10)
	kick := make(chan struct{})
	saved := make(chan SELCursor, 10)
	done := make(chan error)
	go func() {
		done <- fol.Run(ctx, time.Hour, kick, SinkFunc(func(_ context.Context, e Event) { got <- e }), func(c SELCursor) {
			select {
			case saved <- c:
			default:
			}
		})
	}()
	<-saved // first poll done
	adds(1, 7)(sel)
	kick <- struct{}{}
	select {
	case e := <-got:
		if e.Sensor != 7 {
			t.Errorf("got %+v", e)
		}
	case <-ctx.Done():
		t.Fatal("no event after a kick")
	}
	cancel()
	if err := <-done; err == nil {
		t.Error("Run returned nil after cancel")
	}
}

// FuzzSELFollower drives the fake SEL with a random sequence of additions,
// clears (with and without record ID reuse), overflow and polls, and
// checks the follower's promises: no record is reported twice, records
// come in the order they were added, and a record that was never reported
// has a possible-gap marker after it was added. The SEL clock advances
// with every operation and the controller keeps an erase time stamp (see
// SELFollower for what one-second time stamps and controllers without an
// erase time stamp limit).
func FuzzSELFollower(f *testing.F) {
	f.Add([]byte{0, 0, 4, 0, 2, 0, 4, 4})
	f.Add([]byte{0, 4, 3, 0, 0, 4, 0, 4})
	f.Add([]byte{4, 0, 3, 4, 0, 0, 0, 0, 4, 2, 4})
	f.Add([]byte{0, 0, 0, 0, 0, 4, 0, 0, 4, 1, 4})
	f.Fuzz(func(t *testing.T, ops []byte) {
		ctx := context.Background()
		sel := newFakeSEL()
		sel.capacity = 4
		fol := &SELFollower{Conn: sel}
		seq := 0
		added := map[int]int{} // record sequence number -> operation index added at
		reported := map[int]bool{}
		lastReported := -1
		gapAfter := -1 // operation index of the last poll that reported a gap
		for i, op := range ops {
			sel.now++
			switch op % 5 {
			case 0:
				if r := sel.add(uint8(seq), uint8(seq>>8)); r.RecordID != 0 && fol.Cursor.Started {
					// Records lost before the first poll are no concern.
					added[seq] = i
				}
				seq++
			case 1:
				// ticks only
			case 2:
				sel.clear(false)
			case 3:
				sel.clear(true)
			case 4:
				evs, err := fol.Poll(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range evs {
					if e.Kind == EventGap {
						gapAfter = i
						continue
					}
					n := int(e.Sensor) | int(e.Data[0])<<8
					if reported[n] {
						t.Fatalf("op %d: record %d reported twice", i, n)
					}
					if n < lastReported {
						t.Fatalf("op %d: record %d after %d", i, n, lastReported)
					}
					reported[n], lastReported = true, n
				}
				// Every record added before this poll and not reported
				// must be covered by a gap marker reported after it was added.
				for n, at := range added {
					if !reported[n] && n < lastReported && gapAfter < at {
						t.Fatalf("op %d: record %d (added at op %d) skipped without a gap marker (last gap at op %d)", i, n, at, gapAfter)
					}
				}
			}
		}
	})
}
