package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"hpiagent/api"
	"hpiagent/hpi"
)

type sseEvent struct {
	id, event, data string
}

// sseStream is an open event stream.
type sseStream struct {
	resp   *http.Response
	rd     *bufio.Reader
	cancel context.CancelFunc
}

func openStream(t *testing.T, h *harness, c *http.Client, query, lastID string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.url+"/v1/events"+query, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("open stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("open stream: status %d", resp.StatusCode)
	}
	s := &sseStream{resp: resp, rd: bufio.NewReader(resp.Body), cancel: cancel}
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event (comments and retry lines skipped).
func (s *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	var ev sseEvent
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			t.Fatalf("read stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev.event != "" || ev.data != "" {
				return ev
			}
		case strings.HasPrefix(line, ":"), strings.HasPrefix(line, "retry:"):
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		default:
			t.Fatalf("unexpected stream line %q", line)
		}
	}
}

func (s *sseStream) nextHPI(t *testing.T) api.EventView {
	t.Helper()
	ev := s.next(t)
	if ev.event != "hpi" {
		t.Fatalf("event %+v, want an hpi event", ev)
	}
	var v api.EventView
	if err := json.Unmarshal([]byte(ev.data), &v); err != nil {
		t.Fatal(err)
	}
	if ev.id != strconv.FormatUint(v.ID, 10) {
		t.Fatalf("SSE id %q for event %d", ev.id, v.ID)
	}
	return v
}

func publishUser(t *testing.T, d *hpi.Domain, text string) uint64 {
	ev, _, err := d.Publish(hpi.Event{Type: hpi.EventUser, Severity: hpi.Informational, Source: hpi.UnspecifiedResourceID, User: hpi.UserEvent{Data: text}}, "")
	if err != nil {
		t.Error(err)
	}
	return ev.ID
}

// TestEventStreamResume reads part of the stream while events are being
// published, disconnects, resumes with Last-Event-ID while events keep
// coming and checks that the IDs seen over both connections are exactly
// 1..last: no gap, no duplicate.
func TestEventStreamResume(t *testing.T) {
	t.Parallel()
	h := newHarnessLog(t, 1<<16, nil)
	c := h.client("viewer")
	for i := range 20 {
		publishUser(t, h.dom, fmt.Sprint("before ", i))
	}
	stop := make(chan struct{})
	lastID := make(chan uint64, 1)
	go func() {
		var id uint64
		defer func() { lastID <- id }()
		for i := 0; i < 20000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id = publishUser(t, h.dom, fmt.Sprint("during ", i))
			if i%8 == 0 {
				runtime.Gosched()
			}
		}
	}()
	s1 := openStream(t, h, c, "?after=0", "")
	var seen []uint64
	for range 300 {
		seen = append(seen, s1.nextHPI(t).ID)
	}
	s1.close()
	// The header wins over ?after.
	s2 := openStream(t, h, c, "?after=1", strconv.FormatUint(seen[len(seen)-1], 10))
	for range 300 {
		seen = append(seen, s2.nextHPI(t).ID)
	}
	close(stop)
	end := <-lastID
	for seen[len(seen)-1] < end {
		ev := s2.next(t)
		if ev.event != "hpi" {
			t.Fatalf("unexpected %s event %s", ev.event, ev.data)
		}
		id, _ := strconv.ParseUint(ev.id, 10, 64)
		seen = append(seen, id)
	}
	for i, id := range seen {
		if id != uint64(i+1) {
			t.Fatalf("event %d has ID %d: gap or duplicate (around: %v)", i, id, seen[max(0, i-3):min(len(seen), i+3)])
		}
	}
	t.Logf("%d events over two connections", len(seen))
}

// TestEventStreamGap resumes from an ID the event log no longer holds.
func TestEventStreamGap(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	var last uint64
	for i := range 400 { // the log keeps 256
		last = publishUser(t, h.dom, fmt.Sprint(i))
	}
	first := h.dom.EventLogEntries()[0].Event.ID
	if first <= 3 {
		t.Fatalf("log still holds event %d", first)
	}
	s := openStream(t, h, h.client("viewer"), "", "2")
	ev := s.next(t)
	var g api.GapView
	if ev.event != "gap" || json.Unmarshal([]byte(ev.data), &g) != nil {
		t.Fatalf("first event %+v, want a gap", ev)
	}
	if g.FirstMissing != 3 || g.LastMissing != first-1 || g.Count != first-3 || ev.id != strconv.FormatUint(first-1, 10) {
		t.Errorf("gap %+v id %s, want 3..%d", g, ev.id, first-1)
	}
	for want := first; want <= last; want++ {
		if got := s.nextHPI(t).ID; got != want {
			t.Fatalf("event %d, want %d", got, want)
		}
	}
	// Live events follow without a gap.
	id := publishUser(t, h.dom, "live")
	if got := s.nextHPI(t); got.ID != id || got.User == nil || got.User.Data != "live" {
		t.Errorf("live event %+v, want %d", got, id)
	}
}

func TestEventStreamStartPoints(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	c := h.client("viewer")
	logged := h.dom.LastEventID()
	if logged == 0 {
		t.Fatal("no events in the domain")
	}
	// No resume point: only new events.
	s := openStream(t, h, c, "", "")
	id := publishUser(t, h.dom, "new")
	if got := s.nextHPI(t).ID; got != id {
		t.Errorf("live-only stream: first event %d, want %d", got, id)
	}
	// A resume ID beyond the last event: reset, then the whole log.
	s2 := openStream(t, h, c, "?after=100000", "")
	ev := s2.next(t)
	var r api.StreamResetView
	if ev.event != "reset" || json.Unmarshal([]byte(ev.data), &r) != nil || r.ResumeID != 100000 || r.LastEventID != id {
		t.Fatalf("first event %+v, want reset", ev)
	}
	for want := uint64(1); want <= id; want++ {
		if got := s2.nextHPI(t).ID; got != want {
			t.Fatalf("after reset: event %d, want %d", got, want)
		}
	}
	// A malformed resume point.
	a := h.do(c, "GET", "/v1/events?after=x", nil)
	if a.status != http.StatusBadRequest || a.errorCode() != api.CodeBadRequest {
		t.Errorf("after=x: %d %s", a.status, a.body)
	}
}

func TestEventStreamLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *api.Config, _ *api.Deps) { c.MaxEventStreamsPerClient = 1 })
	c := h.client("viewer")
	s := openStream(t, h, c, "", "")
	n := len(h.aud.Records())
	status, code := streamStatus(t, c, h.url+"/v1/events")
	if status != http.StatusTooManyRequests || code != api.CodeTooManyStreams {
		t.Errorf("second stream: %d %s, want 429 too_many_streams", status, code)
	}
	if recs := h.aud.Records()[n:]; len(recs) != 1 || recs[0].Result != api.CodeTooManyStreams {
		t.Errorf("audit %+v", recs)
	}
	// Another client still gets one.
	if status, _ := streamStatus(t, h.client("admin"), h.url+"/v1/events"); status != http.StatusOK {
		t.Errorf("other client: %d", status)
	}
	s.close()
}

// TestEventStreamOutlivesReadTimeout keeps a stream open longer than the
// server's ReadTimeout and WriteTimeout, over HTTP/1.1 and HTTP/2.
func TestEventStreamOutlivesReadTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *api.Config, _ *api.Deps) {
		c.ReadTimeout = 300 * time.Millisecond
		c.WriteTimeout = 500 * time.Millisecond
		c.KeepAlive = 100 * time.Millisecond
	})
	for _, proto := range []string{"http/1.1", "h2"} {
		t.Run(proto, func(t *testing.T) {
			cert, err := h.ca.Client("x", identity("viewer"))
			if err != nil {
				t.Fatal(err)
			}
			tc := h.ca.ClientTLS(cert)
			tc.NextProtos = []string{proto}
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: proto == "h2"}}
			defer c.CloseIdleConnections()
			s := openStream(t, h, c, "", "")
			if got := s.resp.Proto; (proto == "h2") != (got == "HTTP/2.0") {
				t.Fatalf("protocol %s, want %s", got, proto)
			}
			time.Sleep(4 * 300 * time.Millisecond)
			id := publishUser(t, h.dom, "late")
			if got := s.nextHPI(t).ID; got != id {
				t.Errorf("event %d, want %d", got, id)
			}
		})
	}
}

// TestEventStreamOverflowCatchesUp lets a stream's queue (one event)
// overflow while events are published faster than it sends them: the
// stream catches up from the event log, so the client still sees every ID
// once, in order.
func TestEventStreamOverflowCatchesUp(t *testing.T) {
	t.Parallel()
	h := newHarnessLog(t, 1<<15, func(c *api.Config, _ *api.Deps) { c.EventQueueSize = 1 })
	c := h.client("viewer")
	s := openStream(t, h, c, "", "")
	first := h.dom.LastEventID() + 1
	var last uint64
	for i := range 5000 {
		last = publishUser(t, h.dom, fmt.Sprint(i))
	}
	for want := first; want <= last; want++ {
		if got := s.nextHPI(t).ID; got != want {
			t.Fatalf("event %d, want %d", got, want)
		}
	}
	a := h.do(c, "GET", "/metrics", nil)
	if strings.Contains(string(a.body), "hpiagent_api_event_stream_overflows_total 0\n") {
		t.Errorf("the stream's queue never overflowed; the test did not exercise the catch-up")
	}
}
