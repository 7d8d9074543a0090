package hpi

import (
	"context"
	"fmt"
	"sync"
)

// Subscription is one subscriber's bounded event queue (saHpiSubscribe).
// The publisher never blocks on it: when the queue is full the event is
// dropped for this subscriber only, and Receive reports the gap with an
// *OverflowError at the place of the dropped events.
type Subscription struct {
	d      *Domain
	size   int
	mu     sync.Mutex
	queue  []subItem // events and overflow markers, oldest first
	events int       // events in queue (markers do not count)
	closed bool
	notify chan struct{} // capacity 1: "queue changed"
}

type subItem struct {
	ev     Event
	missed uint64 // >0: an overflow marker
}

// Subscribe opens a subscription that receives every event published after
// this call. bufferSize (at least 1) bounds the queued events.
func (d *Domain) Subscribe(bufferSize int) (*Subscription, error) {
	if bufferSize < 1 {
		return nil, fmt.Errorf("hpi: subscribe: buffer size %d, want at least 1: %w", bufferSize, ErrInvalidParams)
	}
	s := &Subscription{d: d, size: bufferSize, notify: make(chan struct{}, 1)}
	d.mu.Lock()
	d.subs[s] = struct{}{}
	d.mu.Unlock()
	return s, nil
}

// Unsubscribe closes the subscription (saHpiUnsubscribe). Queued events are
// discarded; a blocked Receive returns ErrUnsubscribed. Calling it twice is
// harmless.
func (s *Subscription) Unsubscribe() {
	s.d.mu.Lock()
	delete(s.d.subs, s)
	s.d.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.queue = nil
	s.events = 0
	s.mu.Unlock()
	s.wake()
}

func (s *Subscription) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// push queues ev or, when the queue is full, counts it as missed. It never
// blocks.
func (s *Subscription) push(ev Event) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.events >= s.size {
		if n := len(s.queue); n > 0 && s.queue[n-1].missed > 0 {
			s.queue[n-1].missed++
		} else {
			s.queue = append(s.queue, subItem{missed: 1})
		}
	} else {
		s.queue = append(s.queue, subItem{ev: ev})
		s.events++
	}
	s.mu.Unlock()
	s.wake()
}

// Receive returns the next event, waiting until one is published, ctx is
// done or the subscription is closed. When events were dropped for this
// subscriber it returns, in their place, a zero Event and an
// *OverflowError with their count; the next Receive continues with the
// event published after them.
func (s *Subscription) Receive(ctx context.Context) (Event, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return Event{}, fmt.Errorf("hpi: receive: %w", ErrUnsubscribed)
		}
		if len(s.queue) > 0 {
			it := s.queue[0]
			s.queue[0] = subItem{}
			s.queue = s.queue[1:]
			if it.missed > 0 {
				s.mu.Unlock()
				return Event{}, &OverflowError{Missed: it.missed}
			}
			s.events--
			s.mu.Unlock()
			return it.ev, nil
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return Event{}, fmt.Errorf("hpi: receive: %w", ctx.Err())
		case <-s.notify:
		}
	}
}

// Pending returns the number of queued events (overflow markers not
// counted).
func (s *Subscription) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events
}

// SubscribeAfter is Subscribe for a consumer resuming a stream after event
// afterID (0 for the start): atomically with opening the subscription it
// returns the logged events after afterID (EventsSince), so that no event
// falls between the backlog and the subscription and none appears in both.
// complete is false when some events after afterID are no longer in the
// event log; the consumer then has a gap and must resynchronize.
func (d *Domain) SubscribeAfter(afterID uint64, bufferSize int) (s *Subscription, backlog []EventLogEntry, complete bool, err error) {
	if bufferSize < 1 {
		return nil, nil, false, fmt.Errorf("hpi: subscribe after event %d: buffer size %d, want at least 1: %w", afterID, bufferSize, ErrInvalidParams)
	}
	s = &Subscription{d: d, size: bufferSize, notify: make(chan struct{}, 1)}
	d.mu.Lock()
	defer d.mu.Unlock()
	backlog, complete = d.eventsSinceLocked(afterID)
	d.subs[s] = struct{}{}
	return s, backlog, complete, nil
}
