package apiclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SSEEvent is one server-sent event as read off the wire.
type SSEEvent struct {
	// ID is the event's id field ("" when absent).
	ID string
	// Type is the event field ("message" when absent).
	Type string
	// Data is the data lines joined by "\n".
	Data []byte
	// Retry is the retry field, when given.
	Retry time.Duration
}

// maxSSELine bounds one line of the stream; the API's events are a few
// hundred bytes.
const maxSSELine = 1 << 20

// SSEReader reads server-sent events (the text/event-stream format).
type SSEReader struct {
	br *bufio.Reader
	// OnLine, when set, is called for every line read (keep-alive
	// comments included): the follower's idle watchdog.
	OnLine func()
}

// NewSSEReader reads events from r.
func NewSSEReader(r io.Reader) *SSEReader {
	return &SSEReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next complete event. An event cut off by the end of the
// stream is dropped (the spec's rule), and io.EOF returned.
func (s *SSEReader) Next() (SSEEvent, error) {
	var ev SSEEvent
	var data [][]byte
	hasData, hasAny := false, false
	for {
		line, err := s.readLine()
		if err != nil {
			return SSEEvent{}, err
		}
		if s.OnLine != nil {
			s.OnLine()
		}
		if len(line) == 0 {
			if !hasAny {
				continue
			}
			if !hasData && ev.ID == "" && ev.Type == "" {
				// Only a retry field: nothing to dispatch, keep the setting.
				if ev.Retry > 0 {
					return ev, nil
				}
				ev, data, hasAny = SSEEvent{}, nil, false
				continue
			}
			if ev.Type == "" {
				ev.Type = "message"
			}
			ev.Data = bytes.Join(data, []byte("\n"))
			return ev, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		hasAny = true
		switch string(field) {
		case "id":
			if !bytes.Contains(value, []byte{0}) {
				ev.ID = string(value)
			}
		case "event":
			ev.Type = string(value)
		case "data":
			data = append(data, bytes.Clone(value))
			hasData = true
		case "retry":
			if n, err := strconv.ParseUint(string(value), 10, 32); err == nil {
				ev.Retry = time.Duration(n) * time.Millisecond
			}
		}
	}
}

// readLine returns one line without its end (LF, CRLF or CR... the API
// uses LF; CR-only line ends are not supported).
func (s *SSEReader) readLine() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := s.br.ReadSlice('\n')
		if len(buf)+len(chunk) > maxSSELine {
			return nil, fmt.Errorf("event stream line longer than %d bytes", maxSSELine)
		}
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF // a partial last line is never an event
			}
			return nil, err
		}
		buf = buf[:len(buf)-1]
		return bytes.TrimSuffix(buf, []byte("\r")), nil
	}
}

// StreamItem is what the follower delivers: exactly one of Event, Gap or
// Reset is set.
type StreamItem struct {
	// Event is an HPI event, delivered once.
	Event *Event
	// Raw is the event's JSON as the server sent it.
	Raw json.RawMessage
	// Gap says events were lost for good (the agent's log no longer holds
	// them).
	Gap *Gap
	// Reset says the agent's event IDs began again (it restarted).
	Reset *StreamReset
}

// Follower follows GET /v1/events, reconnecting after a drop and resuming
// with Last-Event-ID after the last event delivered, so that an event is
// never delivered twice and none is skipped silently.
type Follower struct {
	// Client is the API client. Required.
	Client *Client
	// After is the event ID to resume after. When Resume is false the
	// follower starts after the newest event in the agent's event log
	// (read first), so that even a drop before the first event loses
	// nothing.
	After  uint64
	Resume bool
	// Deliver receives every item in order; an error stops the follower.
	Deliver func(StreamItem) error
	// Notice receives reconnection notices for people (optional).
	Notice func(msg string)
	// MinBackoff and MaxBackoff bound the wait before reconnecting.
	// Defaults: the server's retry hint (else 1 s) and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// IdleTimeout ends a connection that sent nothing (not even a
	// keep-alive) for this long. Default 60 s, four of the server's 15 s
	// keep-alives.
	IdleTimeout time.Duration
	// MaxFailures stops the follower after this many connection attempts
	// in a row that delivered nothing. Default 0: never stop.
	MaxFailures int

	last uint64
}

// Run follows the stream until ctx is done (returning nil), Deliver fails,
// or the server refuses the request for good (a 4xx other than 429).
func (f *Follower) Run(ctx context.Context) error {
	if f.MaxBackoff <= 0 {
		f.MaxBackoff = 30 * time.Second
	}
	if f.IdleTimeout <= 0 {
		f.IdleTimeout = 60 * time.Second
	}
	sleep := f.Client.sleep
	if f.Resume {
		f.last = f.After
	} else {
		el, err := f.Client.EventLog(ctx, 0, -1)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading the event log to find where the stream starts: %w", err)
		}
		for _, e := range el.Entries {
			f.last = max(f.last, e.Event.ID)
		}
	}
	retry := f.MinBackoff
	if retry <= 0 {
		retry = time.Second
	}
	backoff := retry
	failures := 0
	for {
		delivered, hint, err := f.connect(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var stop *stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		if hint > 0 && f.MinBackoff <= 0 {
			retry = hint
		}
		if delivered {
			backoff, failures = retry, 0
		} else {
			failures++
			if f.MaxFailures > 0 && failures >= f.MaxFailures {
				return fmt.Errorf("event stream: %d attempts failed, last: %w", failures, err)
			}
		}
		if f.Notice != nil {
			f.Notice(fmt.Sprintf("event stream lost (%v); reconnecting in %v after event %d", err, backoff, f.last))
		}
		if sleep(ctx, backoff) != nil {
			return nil
		}
		backoff = min(backoff*2, f.MaxBackoff)
	}
}

// stopError ends Run.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

// connect runs one connection. delivered says whether any item was
// delivered; hint is the server's retry field.
func (f *Follower) connect(ctx context.Context) (delivered bool, hint time.Duration, err error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, f.Client.url("/v1/events"), nil)
	if err != nil {
		return false, 0, &stopError{fmt.Errorf("building the event stream request: %w", err)}
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", strconv.FormatUint(f.last, 10))
	resp, err := f.Client.stream.Do(req)
	if err != nil {
		return false, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ae := errorFromResponse(resp)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			return false, 0, &stopError{ae}
		}
		return false, ae.RetryAfter, ae
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, 0, &stopError{fmt.Errorf("event stream: unexpected content type %q", ct)}
	}

	// Idle watchdog: a connection silent for IdleTimeout is dead.
	idle := time.AfterFunc(f.IdleTimeout, cancel)
	defer idle.Stop()
	sr := NewSSEReader(resp.Body)
	sr.OnLine = func() { idle.Reset(f.IdleTimeout) }
	for {
		ev, err := sr.Next()
		if err != nil {
			if err == io.EOF {
				err = errors.New("the agent closed the stream")
			}
			return delivered, hint, err
		}
		if ev.Retry > 0 {
			hint = ev.Retry
		}
		item, id, ok, err := f.item(ev)
		if err != nil {
			// A malformed event would come back on every reconnection.
			return delivered, hint, &stopError{err}
		}
		if !ok {
			continue
		}
		if err := f.Deliver(item); err != nil {
			return delivered, hint, &stopError{err}
		}
		delivered = true
		if id != nil {
			f.last = *id
		}
	}
}

// item turns a wire event into what Deliver gets; ok is false for events
// to skip (duplicates, unknown types, retry-only). id is the new resume
// point when the item moves it.
func (f *Follower) item(ev SSEEvent) (item StreamItem, id *uint64, ok bool, err error) {
	switch ev.Type {
	case "hpi":
		n, perr := strconv.ParseUint(ev.ID, 10, 64)
		if perr != nil {
			return item, nil, false, fmt.Errorf("event stream: event id %q is not a number", ev.ID)
		}
		if n <= f.last {
			return item, nil, false, nil // already delivered
		}
		var e Event
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			return item, nil, false, fmt.Errorf("event stream: event %d: %w", n, err)
		}
		return StreamItem{Event: &e, Raw: json.RawMessage(ev.Data)}, &n, true, nil
	case "gap":
		var g Gap
		if err := json.Unmarshal(ev.Data, &g); err != nil {
			return item, nil, false, fmt.Errorf("event stream: gap: %w", err)
		}
		if g.LastMissing <= f.last {
			return item, nil, false, nil
		}
		n := g.LastMissing
		return StreamItem{Gap: &g, Raw: json.RawMessage(ev.Data)}, &n, true, nil
	case "reset":
		var r StreamReset
		if err := json.Unmarshal(ev.Data, &r); err != nil {
			return item, nil, false, fmt.Errorf("event stream: reset: %w", err)
		}
		zero := uint64(0)
		return StreamItem{Reset: &r, Raw: json.RawMessage(ev.Data)}, &zero, true, nil
	}
	return item, nil, false, nil
}
