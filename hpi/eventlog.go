package hpi

import (
	"sort"
	"strconv"
	"time"
)

// OverflowAction is SaHpiEventLogOverflowActionT.
type OverflowAction uint8

// SaHpiEventLogOverflowActionT values.
const (
	OverflowDrop      OverflowAction = 0 // SAHPI_EL_OVERFLOW_DROP: new entries are dropped when full
	OverflowOverwrite OverflowAction = 1 // SAHPI_EL_OVERFLOW_OVERWRITE: the oldest entry is overwritten
)

// String returns the OpenHPI text form ("DROP").
func (a OverflowAction) String() string {
	switch a {
	case OverflowDrop:
		return "DROP"
	case OverflowOverwrite:
		return "OVERWRITE"
	}
	return "UNKNOWN(" + strconv.Itoa(int(a)) + ")"
}

// EventLogEntry is SaHpiEventLogEntryT of the domain event log.
type EventLogEntry struct {
	EntryID   uint32
	Timestamp time.Time
	Event     Event
}

// EventLogInfo is SaHpiEventLogInfoT of the domain event log.
type EventLogInfo struct {
	Entries         int
	Size            int
	UpdateTimestamp time.Time
	Enabled         bool
	OverflowFlag    bool
	OverflowAction  OverflowAction
	// Dropped counts events not logged (DROP) or overwritten (OVERWRITE)
	// since the last clear.
	Dropped uint64
}

// eventLog is a bounded ring of entries; the Domain's mutex guards it.
type eventLog struct {
	size    int
	action  OverflowAction
	entries []EventLogEntry // oldest first
	nextID  uint32
	flag    bool
	dropped uint64
	updated time.Time
	enabled bool
}

func (l *eventLog) add(ev Event, now time.Time) {
	if !l.enabled {
		return
	}
	if len(l.entries) >= l.size {
		l.flag = true
		l.dropped++
		if l.action == OverflowDrop {
			return
		}
		copy(l.entries, l.entries[1:])
		l.entries = l.entries[:len(l.entries)-1]
	}
	l.nextID++
	l.entries = append(l.entries, EventLogEntry{EntryID: l.nextID, Timestamp: now, Event: ev})
	l.updated = now
}

// EventLogEntries returns a copy of the domain event log, oldest first.
func (d *Domain) EventLogEntries() []EventLogEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]EventLogEntry, len(d.el.entries))
	for i, e := range d.el.entries {
		e.Event = e.Event.clone()
		out[i] = e
	}
	return out
}

// EventLogInfo describes the domain event log (saHpiEventLogInfoGet).
func (d *Domain) EventLogInfo() EventLogInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	return EventLogInfo{
		Entries: len(d.el.entries), Size: d.el.size, UpdateTimestamp: d.el.updated,
		Enabled: d.el.enabled, OverflowFlag: d.el.flag, OverflowAction: d.el.action, Dropped: d.el.dropped,
	}
}

// ClearEventLog removes every entry and resets the overflow flag
// (saHpiEventLogClear). Entry IDs keep increasing.
func (d *Domain) ClearEventLog() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.el.entries = nil
	d.el.flag = false
	d.el.dropped = 0
	d.el.updated = d.now()
}

// ResetEventLogOverflow clears the overflow flag
// (saHpiEventLogOverflowReset).
func (d *Domain) ResetEventLogOverflow() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.el.flag = false
}

// SetEventLogState enables or disables logging (saHpiEventLogStateSet).
func (d *Domain) SetEventLogState(enabled bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.el.enabled = enabled
}

// dedupSet remembers the last size keys, oldest evicted first.
type dedupSet struct {
	size int
	keys map[string]struct{}
	ring []string
	next int
}

func newDedupSet(size int) dedupSet {
	return dedupSet{size: size, keys: make(map[string]struct{}, size), ring: make([]string, 0, size)}
}

// seen records key and reports whether it was already there.
func (s *dedupSet) seen(key string) bool {
	if _, ok := s.keys[key]; ok {
		return true
	}
	if len(s.ring) < s.size {
		s.ring = append(s.ring, key)
	} else {
		delete(s.keys, s.ring[s.next])
		s.ring[s.next] = key
		s.next = (s.next + 1) % s.size
	}
	s.keys[key] = struct{}{}
	return false
}

// EventsSince returns the logged events whose event ID is greater than id,
// oldest first, for a consumer resuming a stream after the last event it
// saw. complete is true when the result holds every event published after
// id (IDs id+1 .. LastEventID without a gap); it is false when some of them
// are not in the log: overwritten or dropped on overflow, removed by
// ClearEventLog or not logged while logging was disabled. A consumer that
// gets complete == false has missed events and must resynchronize (read the
// RPT, sensors and alarms afresh). An id at or beyond LastEventID returns no
// entries and complete == true.
func (d *Domain) EventsSince(id uint64) (entries []EventLogEntry, complete bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.eventsSinceLocked(id)
}

func (d *Domain) eventsSinceLocked(id uint64) (entries []EventLogEntry, complete bool) {
	if id >= d.nextEventID {
		return nil, true
	}
	// Entries are in event ID order: find the first one after id.
	i := sort.Search(len(d.el.entries), func(i int) bool { return d.el.entries[i].Event.ID > id })
	next := id + 1
	complete = true
	for _, e := range d.el.entries[i:] {
		if e.Event.ID != next {
			complete = false
		}
		next = e.Event.ID + 1
		e.Event = e.Event.clone()
		entries = append(entries, e)
	}
	if next != d.nextEventID+1 {
		complete = false
	}
	return entries, complete
}
