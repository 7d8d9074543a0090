package shelf

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"hpiagent/shelf/ipmi"
)

// maxRecentKeys bounds SELCursor.RecentKeys.
const maxRecentKeys = 32

// SELCursor is where a SELFollower stands in a controller's SEL. It is a
// small plain struct (JSON-friendly) that the caller may persist and hand
// back to a new follower, for example across restarts of the agent. The
// zero value means "nothing read yet".
type SELCursor struct {
	// Started is set once the SEL has been read (or skipped) at least once.
	Started bool
	// LastID is the record ID of the last record read, 0 when the SEL was
	// empty.
	LastID uint16
	// Last is that record's 16 bytes as read: if the ID is later found
	// holding other bytes, the ID was reused after a clear.
	Last []byte
	// LastRawTime is the IPMI time stamp of the last record read.
	LastRawTime uint32
	// RecentKeys are the EventKeys of the records read whose time stamp is
	// LastRawTime (at most 32), so that a re-read from the first record
	// does not report them again.
	RecentKeys []string
	// Entries, LastAddition and LastErase are Get SEL Info as of the last
	// complete read.
	Entries      uint16
	LastAddition time.Time
	LastErase    time.Time
	// Overflow is the SEL's overflow flag as last seen.
	Overflow bool
}

// SELFollower reads the new entries of one controller's SEL, incrementally:
// each Poll asks Get SEL Info, and when anything changed re-reads the last
// record it saw (to make sure it is still the same record) and then only
// the records after it. It notices a cleared SEL (erase time stamp moved,
// last record gone or its ID reused) and restarts from the first record,
// reporting a possible gap first; it reports an overflowing SEL (the
// controller drops new events) once. It never reports a record twice while
// the cursor is kept, and never skips one without a gap marker, with two
// limits: on a controller that keeps no erase time stamp, records added to
// a SEL that was empty at the last poll and cleared away before the next
// poll go unnoticed when newer records were added after the clear (the
// follower has no record of its own to miss); and a SEL cleared on such a
// controller whose last-read record ID was reused for a record with
// exactly the same 16 bytes (same time stamp second) looks unchanged.
//
// A follower is not safe for concurrent use.
type SELFollower struct {
	// Conn and To select the controller whose SEL is read (the zero Addr:
	// the shelf manager at the end of the session).
	Conn ipmi.Conn
	To   ipmi.Addr
	// Cursor is the position; set it to a persisted cursor to resume.
	Cursor SELCursor
	// SkipExisting makes the first Poll with a zero cursor start at the
	// current end of the SEL instead of reporting every record in it.
	SkipExisting bool
	// Log receives diagnostics; nil means slog.Default().
	Log *slog.Logger
}

func (f *SELFollower) log() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.Default()
}

func gapEvent(format string, args ...any) Event {
	return Event{Kind: EventGap, Source: SourceSEL, Gap: &GapEvent{Reason: fmt.Sprintf(format, args...)}}
}

// Poll reads what was added to the SEL since the last Poll and returns it
// as events, in SEL order, with possible-gap markers where events may have
// been lost. On an error it returns the events read so far with the error;
// the cursor then stands after the last of them, so the next Poll
// continues there.
func (f *SELFollower) Poll(ctx context.Context) ([]Event, error) {
	info, err := ipmi.GetSELInfo(ctx, f.Conn, f.To)
	if err != nil {
		return nil, fmt.Errorf("following sel of %s: %w", f.To, err)
	}
	c := &f.Cursor
	var out []Event
	if info.Overflow() && !c.Overflow {
		out = append(out, gapEvent("sel of %s is full: the controller drops new events until it is cleared", f.To))
	}
	c.Overflow = info.Overflow()

	start, filter, checkVanished := uint16(0), false, false
	switch {
	case !c.Started && f.SkipExisting:
		if err := f.skipToEnd(ctx); err != nil {
			return out, err
		}
		f.noteInfo(info)
		return out, nil
	case !c.Started:
		// Read everything from the first record.
	case sameInfo(c, info):
		return out, nil
	case !info.LastErase.Equal(c.LastErase):
		out = append(out, gapEvent("sel of %s was cleared at %s: events added before the erase and not read yet are lost", f.To, info.LastErase.Format(time.RFC3339)))
		c.LastID, c.Last = 0, nil
	case c.LastID == 0:
		// The SEL was empty: whatever it holds now is new. If its newest
		// record is older than the last addition, a record was added and
		// removed again since (a clear in the same second as the last
		// one, a deletion): it may be lost.
		checkVanished = info.LastAddition.After(c.LastAddition)
	default:
		r, next, err := ipmi.GetSELEntry(ctx, f.Conn, f.To, c.LastID)
		code, isCode := ipmi.CodeOf(err)
		switch {
		case isCode && code == ipmi.CCNotPresent, err == nil && !bytes.Equal(r.Marshal(), c.Last):
			out = append(out, gapEvent("sel of %s: record 0x%04x read last is gone or was replaced (sel cleared or rewritten): events not read yet may be lost", f.To, c.LastID))
			filter = true
		case err != nil:
			return out, fmt.Errorf("following sel of %s: re-reading the last record: %w", f.To, err)
		case next == ipmi.LastRecordID:
			f.noteInfo(info)
			return out, nil
		default:
			start = next
		}
	}

	// From here on the cursor's records belong to this erase epoch, even if
	// the read stops midway.
	c.Started, c.LastErase = true, info.LastErase
	mark := len(out)
	var newest time.Time
	seen := map[uint16]bool{}
	for id := start; id != ipmi.LastRecordID; {
		if seen[id] {
			return out, fmt.Errorf("following sel of %s: record chain loops back to 0x%04x", f.To, id)
		}
		seen[id] = true
		r, next, err := ipmi.GetSELEntry(ctx, f.Conn, f.To, id)
		if code, ok := ipmi.CodeOf(err); ok && code == ipmi.CCNotPresent && id == 0 {
			break // empty SEL
		}
		if err != nil {
			return out, fmt.Errorf("following sel of %s: %w", f.To, err)
		}
		ev := DecodeSELRecord(r)
		if filter && c.readBefore(r, ev.Key()) {
			f.log().Debug("sel record already reported", "controller", f.To, "record", r.RecordID)
		} else {
			out = append(out, ev)
		}
		c.advance(r, ev.Key())
		if r.Timestamp.After(newest) {
			newest = r.Timestamp
		}
		id = next
	}
	if checkVanished && newest.Before(info.LastAddition) {
		out = slices.Insert(out, mark, gapEvent("sel of %s: a record added since the last read is gone (sel cleared or entry deleted)", f.To))
	}
	f.noteInfo(info)
	return out, nil
}

// skipToEnd positions the cursor after the last record of the SEL.
func (f *SELFollower) skipToEnd(ctx context.Context) error {
	r, _, err := ipmi.GetSELEntry(ctx, f.Conn, f.To, ipmi.LastRecordID)
	if code, ok := ipmi.CodeOf(err); ok && code == ipmi.CCNotPresent {
		return nil
	}
	if err != nil {
		return fmt.Errorf("following sel of %s: reading the last record: %w", f.To, err)
	}
	f.Cursor.advance(r, DecodeSELRecord(r).Key())
	return nil
}

func (f *SELFollower) noteInfo(info ipmi.SELInfo) {
	c := &f.Cursor
	c.Started = true
	c.Entries, c.LastAddition, c.LastErase = info.Entries, info.LastAddition, info.LastErase
}

// sameInfo reports whether the SEL looks unchanged since the last read.
func sameInfo(c *SELCursor, info ipmi.SELInfo) bool {
	return c.Entries == info.Entries && c.LastAddition.Equal(info.LastAddition) && c.LastErase.Equal(info.LastErase)
}

// advance moves the cursor past r.
func (c *SELCursor) advance(r ipmi.SELRecord, key string) {
	if r.RawTime != c.LastRawTime {
		c.RecentKeys = c.RecentKeys[:0]
	}
	c.LastID, c.Last, c.LastRawTime = r.RecordID, r.Marshal(), r.RawTime
	if len(c.RecentKeys) == maxRecentKeys {
		c.RecentKeys = slices.Delete(c.RecentKeys, 0, 1)
	}
	c.RecentKeys = append(c.RecentKeys, key)
}

// readBefore reports whether r, met while re-reading the SEL from its
// first record after the last record read vanished, was read before: its
// time stamp is older than the last record's, or the same and its key was
// seen. Pre-init time stamps do not order: such records count as new.
func (c *SELCursor) readBefore(r ipmi.SELRecord, key string) bool {
	if !r.Timestamped() || r.PreInit() || c.LastRawTime <= 0x20000000 {
		return false
	}
	switch {
	case r.RawTime < c.LastRawTime:
		return true
	case r.RawTime == c.LastRawTime:
		return slices.Contains(c.RecentKeys, key)
	}
	return false
}

// Run polls the SEL every interval, and at once whenever kick delivers
// (a PET trap hinted at a new event), handing every event to sink in
// order. After each poll save, if not nil, gets the cursor to persist. A
// failed poll is logged and retried at the next tick. Run returns when ctx
// ends.
func (f *SELFollower) Run(ctx context.Context, interval time.Duration, kick <-chan struct{}, sink EventSink, save func(SELCursor)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		evs, err := f.Poll(ctx)
		for _, e := range evs {
			sink.HandleShelfEvent(ctx, e)
		}
		if save != nil && (len(evs) > 0 || err == nil) {
			save(f.Cursor)
		}
		if err != nil && ctx.Err() == nil {
			f.log().Warn("reading sel failed", "controller", f.To.String(), "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("following sel of %s: %w", f.To, ctx.Err())
		case <-t.C:
		case <-kick:
		}
	}
}
