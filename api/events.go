package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"hpiagent/hpi"
)

// The event stream (GET /v1/events) is text/event-stream. Each HPI event
// is an SSE event of type "hpi" whose id is the event's ID and whose data is
// its EventView. A client resumes after the last ID it saw with the
// Last-Event-ID header (browsers send it by themselves) or ?after=ID; with
// neither it gets the events published from now on, with after=0 the whole
// event log first.
//
// The stream never skips silently and never repeats: it subscribes before
// it reads the domain event log, sends the logged events after the resume
// point, then the live ones, dropping any ID it has sent already. When the
// log no longer holds an event the client missed (log overflow, or the
// client's queue overflowed and the log does not reach back either) it
// sends an SSE event of type "gap" with the missing ID range and the ID of
// its last missing event, so resuming after it continues correctly. A
// resume ID beyond the last published event (the agent restarted and its
// IDs began again) gets a "reset" event, then the whole event log.

// GapView is the data of a "gap" event: events FirstMissing..LastMissing
// (inclusive) will never be delivered.
type GapView struct {
	FirstMissing uint64 `json:"first_missing"`
	LastMissing  uint64 `json:"last_missing"`
	Count        uint64 `json:"count"`
}

// StreamResetView is the data of a "reset" event.
type StreamResetView struct {
	// ResumeID is the ID the client asked to resume after.
	ResumeID uint64 `json:"resume_id"`
	// LastEventID is the last ID the agent has published.
	LastEventID uint64 `json:"last_event_id"`
	Reason      string `json:"reason"`
}

// cursor is the stream position: the pure part of the no-gap, no-duplicate
// rule.
type cursor struct{ last uint64 }

// offer says what to do with the event of ID id: send it (after a gap of
// the IDs gapFrom..gapTo when gapTo > 0) or drop it as a duplicate.
func (c *cursor) offer(id uint64) (send bool, gapFrom, gapTo uint64) {
	if id <= c.last {
		return false, 0, 0
	}
	if id > c.last+1 {
		gapFrom, gapTo = c.last+1, id-1
	}
	c.last = id
	return true, gapFrom, gapTo
}

// parseResume reads the resume point of a stream request: the
// Last-Event-ID header, else the after query parameter. ok is false when
// neither is present.
func parseResume(header, query string) (after uint64, ok bool, err error) {
	v, name := header, "Last-Event-ID"
	if strings.TrimSpace(v) == "" {
		v, name = query, "after"
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s %q: want an event ID", name, v)
	}
	return n, true, nil
}

// acquireStream takes a stream slot for id.
func (s *Server) acquireStream(id string) bool {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.streams >= s.cfg.MaxEventStreams || s.streamsByID[id] >= s.cfg.MaxEventStreamsPerClient {
		return false
	}
	s.streams++
	s.streamsByID[id]++
	return true
}

func (s *Server) releaseStream(id string, sub *hpi.Subscription) {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	s.streams--
	if s.streamsByID[id]--; s.streamsByID[id] <= 0 {
		delete(s.streamsByID, id)
	}
	delete(s.streamSubs, sub)
}

// streamQueueDepth sums the queued events of every open stream.
func (s *Server) streamQueueDepth() (streams, depth int) {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	for sub := range s.streamSubs {
		depth += sub.Pending()
	}
	return s.streams, depth
}

// sseWriter writes SSE events with a write deadline per event.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (sw *sseWriter) write(event, id string, data any) error {
	var b strings.Builder
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	if event != "" {
		b.WriteString("event: " + event + "\n")
	}
	if data != nil {
		j, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("encode %s event: %w", event, err)
		}
		b.WriteString("data: ")
		b.Write(j)
		b.WriteString("\n")
	}
	b.WriteString("\n")
	return sw.raw(b.String())
}

func (sw *sseWriter) raw(s string) error {
	_ = sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout))
	if _, err := sw.w.Write([]byte(s)); err != nil {
		return err
	}
	return sw.rc.Flush()
}

// emit sends ev through the cursor: a gap event first when IDs are missing.
func (sw *sseWriter) emit(cur *cursor, ev hpi.Event) error {
	send, from, to := cur.offer(ev.ID)
	if !send {
		return nil
	}
	if to > 0 {
		if err := sw.write("gap", strconv.FormatUint(to, 10), GapView{FirstMissing: from, LastMissing: to, Count: to - from + 1}); err != nil {
			return err
		}
	}
	return sw.write("hpi", strconv.FormatUint(ev.ID, 10), eventView(ev))
}

// backlog sends the logged events after the cursor.
func (s *Server) backlog(sw *sseWriter, cur *cursor) error {
	for _, en := range s.domain.EventLogEntries() {
		if en.Event.ID <= cur.last {
			continue
		}
		if err := sw.emit(cur, en.Event); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) getEvents(c *call) (any, error) {
	after, resume, err := parseResume(c.r.Header.Get("Last-Event-ID"), c.r.URL.Query().Get("after"))
	if err != nil {
		return nil, newErr(CodeBadRequest, err.Error())
	}
	if c.r.Method == http.MethodHead {
		c.w.Header().Set("Content-Type", "text/event-stream")
		c.w.WriteHeader(http.StatusOK)
		return handled{}, nil
	}
	if !s.acquireStream(c.identity) {
		return nil, newErr(CodeTooManyStreams, "too many event streams open; close one first")
	}
	sub, err := s.domain.Subscribe(s.cfg.EventQueueSize)
	if err != nil {
		s.releaseStream(c.identity, nil)
		return nil, fmt.Errorf("subscribe to domain events: %w", err)
	}
	s.streamMu.Lock()
	s.streamSubs[sub] = struct{}{}
	s.streamMu.Unlock()
	defer s.releaseStream(c.identity, sub)
	defer sub.Unsubscribe()
	s.metrics.streamsOpened.Inc()

	// The subscription is open: whatever is published from now on is
	// queued, and the log holds what came before.
	lastPublished := s.domain.LastEventID()
	cur := &cursor{last: lastPublished}
	reset := false
	if resume {
		cur.last = after
		if after > lastPublished {
			reset = true
			cur.last = 0
		}
	}

	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	c.w.WriteHeader(http.StatusOK)
	sw := &sseWriter{w: c.w, rc: http.NewResponseController(c.w), timeout: s.cfg.WriteTimeout}
	// The server's ReadTimeout would end the stream (net/http cancels the
	// request when its background read times out); a stream reads nothing
	// more, and a dead peer is found by the keep-alive writes.
	_ = sw.rc.SetReadDeadline(time.Time{})
	if err := sw.raw("retry: 2000\n\n"); err != nil {
		return handled{}, nil
	}
	if reset {
		if err := sw.write("reset", "", StreamResetView{ResumeID: after, LastEventID: lastPublished,
			Reason: "resume ID beyond the last event published: the agent's event IDs began again"}); err != nil {
			return handled{}, nil
		}
	}
	if resume {
		if err := s.backlog(sw, cur); err != nil {
			return handled{}, nil
		}
	}
	ctx := c.r.Context()
	for {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.KeepAlive)
		ev, err := sub.Receive(rctx)
		cancel()
		var oe *hpi.OverflowError
		switch {
		case err == nil:
			err = sw.emit(cur, ev)
		case errors.As(err, &oe):
			// This stream fell behind: catch up from the log; what the
			// log no longer holds becomes a gap at the next event.
			s.metrics.streamOverflows.Inc()
			err = s.backlog(sw, cur)
		case ctx.Err() != nil:
			return handled{}, nil
		case errors.Is(err, context.DeadlineExceeded):
			err = sw.raw(": keep-alive\n\n")
		default:
			return handled{}, nil
		}
		if err != nil {
			s.log.Debug("api: event stream ended", "actor", c.identity, "err", err)
			return handled{}, nil
		}
	}
}
