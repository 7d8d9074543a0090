//go:build linux && amd64

package devipmi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"sync"
	"syscall"
	"testing"
	"time"

	"hpiagent/shelf/ipmi"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startFake opens a Conn on f. Unless the test says otherwise, the driver
// address is left alone (no discovery).
func startFake(t *testing.T, f *fakeDriver, opts Options) *Conn {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	c, err := start(context.Background(), "/dev/ipmi-test", f, opts)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestExchangeEncodesRequest(t *testing.T) {
	for _, tc := range []struct {
		name     string
		driverMy uint32
		to       ipmi.Addr
		req      ipmi.Request
		want     sentReq // fields compared: settime, addrType, channel, slave, lun, netfn, cmd, data, retries
		reply    []byte
		wantResp ipmi.Response
	}{
		{
			name:     "local get device id",
			driverMy: 0x20,
			to:       ipmi.Addr{},
			req:      ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 0x01},
			want:     sentReq{addrType: 0x0c, channel: 0x0f, netfn: 0x06, cmd: 0x01},
			reply:    []byte{0x00, 0x20, 0x81, 0x05, 0x02},
			wantResp: ipmi.Response{Code: 0, Data: []byte{0x20, 0x81, 0x05, 0x02}},
		},
		{
			name:     "local LUN 2 with data",
			driverMy: 0x20,
			to:       ipmi.Addr{LUN: 2},
			req:      ipmi.Request{NetFn: ipmi.NetFnSensor, Cmd: 0x2d, Data: []byte{0x07}},
			want:     sentReq{addrType: 0x0c, channel: 0x0f, lun: 2, netfn: 0x04, cmd: 0x2d, data: []byte{0x07}},
			reply:    []byte{0x00, 0x42, 0xc0, 0x00},
			wantResp: ipmi.Response{Data: []byte{0x42, 0xc0, 0x00}},
		},
		{
			name:     "bridged to IPMC 0x82",
			driverMy: 0x20,
			to:       ipmi.Addr{Slave: 0x82},
			req:      ipmi.Request{NetFn: ipmi.NetFnGroup, Cmd: 0x0c, Data: []byte{0x00, 0x00}},
			want:     sentReq{settime: true, addrType: 0x01, channel: 0, slave: 0x82, netfn: 0x2c, cmd: 0x0c, data: []byte{0x00, 0x00}, retries: 0},
			reply:    []byte{0x00, 0x00, 0x04},
			wantResp: ipmi.Response{Data: []byte{0x00, 0x04}},
		},
		{
			name:     "bridged on channel 7 LUN 1",
			driverMy: 0x20,
			to:       ipmi.Addr{Channel: 7, Slave: 0xa4, LUN: 1},
			req:      ipmi.Request{NetFn: ipmi.NetFnStorage, Cmd: 0x10, Data: []byte{0x00}, ReadOnly: true},
			want:     sentReq{settime: true, addrType: 0x01, channel: 7, slave: 0xa4, lun: 1, netfn: 0x0a, cmd: 0x10, data: []byte{0x00}},
			reply:    []byte{0x00, 0x00, 0x01, 0x00},
			wantResp: ipmi.Response{Data: []byte{0x00, 0x01, 0x00}},
		},
		{
			name:     "own IPMB address goes to the system interface",
			driverMy: 0x86,
			to:       ipmi.Addr{Slave: 0x86},
			req:      ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 0x01},
			want:     sentReq{addrType: 0x0c, channel: 0x0f, netfn: 0x06, cmd: 0x01},
			reply:    []byte{0x00, 0x12},
			wantResp: ipmi.Response{Data: []byte{0x12}},
		},
		{
			name:     "non-zero completion code is a response",
			driverMy: 0x20,
			to:       ipmi.Addr{Slave: 0x72},
			req:      ipmi.Request{NetFn: ipmi.NetFnGroup, Cmd: 0x12, Data: []byte{0x00, 0x00, 0x01}},
			want:     sentReq{settime: true, addrType: 0x01, slave: 0x72, netfn: 0x2c, cmd: 0x12, data: []byte{0x00, 0x00, 0x01}},
			reply:    []byte{0xc1},
			wantResp: ipmi.Response{Code: ipmi.CCInvalidCommand, Data: []byte{}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDriver()
			f.myAddr = tc.driverMy
			f.onSend = func(r sentReq) ([]kmsg, error) { return []kmsg{reply(r, tc.reply...)}, nil }
			c := startFake(t, f, Options{KeepDriverAddress: true, IPMBTimeout: 1500 * time.Millisecond})
			resp, err := c.Exchange(testCtx(t), tc.to, tc.req)
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if resp.Code != tc.wantResp.Code || !bytes.Equal(resp.Data, tc.wantResp.Data) {
				t.Errorf("response = %v % x, want %v % x", resp.Code, resp.Data, tc.wantResp.Code, tc.wantResp.Data)
			}
			sent := f.sentRequests()
			if len(sent) != 1 {
				t.Fatalf("driver saw %d requests, want 1", len(sent))
			}
			got, w := sent[0], tc.want
			if got.settime != w.settime || got.addrType != w.addrType || got.channel != w.channel || got.slave != w.slave ||
				got.lun != w.lun || got.netfn != w.netfn || got.cmd != w.cmd || !bytes.Equal(got.data, w.data) || got.retries != w.retries {
				t.Errorf("driver saw %+v\nwant          %+v", got, w)
			}
			if got.addrLen != 8 {
				t.Errorf("addr_len = %d, want 8 (sizeof the address structure)", got.addrLen)
			}
			if got.settime && got.retryMs != 1500 {
				t.Errorf("retry_time_ms = %d, want the configured 1500", got.retryMs)
			}
		})
	}
}

func TestExchangeRejectsBadRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		to   ipmi.Addr
		req  ipmi.Request
	}{
		{"LUN 4", ipmi.Addr{Slave: 0x82, LUN: 4}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 1}},
		{"local LUN 4", ipmi.Addr{LUN: 4}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 1}},
		{"channel 16", ipmi.Addr{Channel: 16, Slave: 0x82}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 1}},
		{"response netfn", ipmi.Addr{}, ipmi.Request{NetFn: ipmi.NetFnApp | 1, Cmd: 1}},
		{"netfn beyond 6 bits", ipmi.Addr{}, ipmi.Request{NetFn: 0x40, Cmd: 1}},
		{"data too long", ipmi.Addr{}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 1, Data: make([]byte, 273)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDriver()
			c := startFake(t, f, Options{KeepDriverAddress: true})
			_, err := c.Exchange(testCtx(t), tc.to, tc.req)
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("err = %v, want ErrBadRequest", err)
			}
			if n := len(f.sentRequests()); n != 0 {
				t.Fatalf("driver saw %d requests, want none", n)
			}
		})
	}
}

func TestExchangeMapsSendErrno(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EINVAL, syscall.EBUSY, syscall.EMSGSIZE, syscall.ENODEV} {
		t.Run(errno.Error(), func(t *testing.T) {
			f := newFakeDriver()
			f.onSend = func(sentReq) ([]kmsg, error) { return nil, errno }
			c := startFake(t, f, Options{KeepDriverAddress: true})
			_, err := c.Exchange(testCtx(t), ipmi.Addr{Slave: 0x82}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 1, ReadOnly: true})
			if !errors.Is(err, errno) {
				t.Fatalf("err = %v, want it to wrap %v", err, errno)
			}
		})
	}
}

func TestResponseChecks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(r sentReq) kmsg
	}{
		{"netfn mismatch", func(r sentReq) kmsg { m := reply(r, 0); m.netfn = 0x0b; return m }},
		{"cmd mismatch", func(r sentReq) kmsg { m := reply(r, 0); m.cmd++; return m }},
		{"no completion code", func(r sentReq) kmsg { return reply(r) }},
		{"truncated by the driver", func(r sentReq) kmsg { return reply(r, make([]byte, 300)...) }},
		{"malformed source address", func(r sentReq) kmsg { m := reply(r, 0); m.addr = m.addr[:5]; return m }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDriver()
			f.onSend = func(r sentReq) ([]kmsg, error) { return []kmsg{tc.reply(r)}, nil }
			c := startFake(t, f, Options{KeepDriverAddress: true})
			resp, err := c.Exchange(testCtx(t), ipmi.Addr{}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 0x01})
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("Exchange = %v, %v; want ErrBadResponse", resp, err)
			}
			// The connection survives a bad message.
			f.onSend = func(r sentReq) ([]kmsg, error) { return []kmsg{reply(r, 0, 0x99)}, nil }
			resp, err = c.Exchange(testCtx(t), ipmi.Addr{}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 0x01})
			if err != nil || !bytes.Equal(resp.Data, []byte{0x99}) {
				t.Fatalf("next Exchange = %v % x, %v", resp.Code, resp.Data, err)
			}
		})
	}
}

func TestDriverErrorsAndRetries(t *testing.T) {
	ok := []byte{0x00, 0x55}
	for _, tc := range []struct {
		name      string
		to        ipmi.Addr
		readOnly  bool
		replies   [][]byte // one per attempt; the last one repeats
		wantSends int
		wantCode  ipmi.CompletionCode // of the error; 0 = success expected
	}{
		{"bridged write timeout is not resent", ipmi.Addr{Slave: 0x82}, false, [][]byte{{0xc3}}, 1, 0xc3},
		{"bridged read timeout then success", ipmi.Addr{Slave: 0x82}, true, [][]byte{{0xc3}, {0xc3}, ok}, 3, 0},
		{"bridged read gives up after retries", ipmi.Addr{Slave: 0x82}, true, [][]byte{{0xc3}}, 3, 0xc3},
		{"NAK on write is not resent", ipmi.Addr{Slave: 0x8a}, true, [][]byte{{0x83}}, 1, 0x83},
		{"bus error then success", ipmi.Addr{Slave: 0x84}, true, [][]byte{{0x82}, ok}, 2, 0},
		{"lost arbitration on a write is not resent", ipmi.Addr{Slave: 0x84}, false, [][]byte{{0x81}}, 1, 0x81},
		{"local interface failure then success", ipmi.Addr{}, true, [][]byte{{0xff}, ok}, 2, 0},
		{"local write interface failure", ipmi.Addr{}, false, [][]byte{{0xff}}, 1, 0xff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDriver()
			var mu sync.Mutex
			n := 0
			f.onSend = func(r sentReq) ([]kmsg, error) {
				mu.Lock()
				defer mu.Unlock()
				d := tc.replies[min(n, len(tc.replies)-1)]
				n++
				return []kmsg{reply(r, d...)}, nil
			}
			c := startFake(t, f, Options{KeepDriverAddress: true, Retries: 2})
			resp, err := c.Exchange(testCtx(t), tc.to, ipmi.Request{NetFn: ipmi.NetFnSensor, Cmd: 0x2d, Data: []byte{1}, ReadOnly: tc.readOnly})
			sent := f.sentRequests()
			if len(sent) != tc.wantSends {
				t.Errorf("driver saw %d sends, want %d", len(sent), tc.wantSends)
			}
			ids := map[int64]bool{}
			for _, s := range sent {
				if ids[s.msgid] {
					t.Errorf("msgid %d reused", s.msgid)
				}
				ids[s.msgid] = true
				if !tc.to.Local() && s.retries != 0 {
					t.Errorf("driver retries = %d, want 0", s.retries)
				}
			}
			if tc.wantCode == 0 {
				if err != nil || !bytes.Equal(resp.Data, ok[1:]) {
					t.Fatalf("Exchange = % x, %v; want success", resp.Data, err)
				}
				return
			}
			if !errors.Is(err, ErrNoResponse) {
				t.Fatalf("err = %v, want ErrNoResponse", err)
			}
			if code, found := ipmi.CodeOf(err); !found || code != tc.wantCode {
				t.Fatalf("CodeOf = %v %v, want %v", code, found, tc.wantCode)
			}
			var de *DriverError
			if !errors.As(err, &de) || de.Attempts != tc.wantSends {
				t.Fatalf("DriverError = %+v, want Attempts %d", de, tc.wantSends)
			}
		})
	}
}

func TestGenuineCodesAreResponses(t *testing.T) {
	for _, tc := range []struct {
		name string
		to   ipmi.Addr
		data []byte
	}{
		{"local 0x81 is command-specific", ipmi.Addr{}, []byte{0x81}},
		{"0xc3 with data", ipmi.Addr{Slave: 0x82}, []byte{0xc3, 0x01}},
		{"0xc1 not supported", ipmi.Addr{Slave: 0x82}, []byte{0xc1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDriver()
			f.onSend = func(r sentReq) ([]kmsg, error) { return []kmsg{reply(r, tc.data...)}, nil }
			c := startFake(t, f, Options{KeepDriverAddress: true})
			resp, err := c.Exchange(testCtx(t), tc.to, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 0x01, ReadOnly: true})
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if resp.Code != ipmi.CompletionCode(tc.data[0]) || !bytes.Equal(resp.Data, tc.data[1:]) {
				t.Fatalf("response %v % x, want % x", resp.Code, resp.Data, tc.data)
			}
			if n := len(f.sentRequests()); n != 1 {
				t.Fatalf("%d sends, want 1", n)
			}
		})
	}
	// ipmi.Do turns 0xC1 into ErrNotSupported.
	f := newFakeDriver()
	f.onSend = func(r sentReq) ([]kmsg, error) { return []kmsg{reply(r, 0xc1)}, nil }
	c := startFake(t, f, Options{KeepDriverAddress: true})
	if _, err := ipmi.Do(testCtx(t), c, ipmi.Addr{Slave: 0x82}, ipmi.Request{NetFn: ipmi.NetFnGroup, Cmd: 0x12, Data: []byte{0}}); !errors.Is(err, ipmi.ErrNotSupported) {
		t.Fatalf("Do = %v, want ErrNotSupported", err)
	}
}

func TestManyInFlightMatchedByMsgID(t *testing.T) {
	const n = 24
	f := newFakeDriver()
	f.sentCh = make(chan sentReq, n)
	c := startFake(t, f, Options{KeepDriverAddress: true})
	ctx := testCtx(t)

	type out struct {
		i    int
		resp ipmi.Response
		err  error
	}
	results := make(chan out, n)
	for i := range n {
		go func() {
			to := ipmi.Addr{Slave: 0x82 + 2*uint8(i%4)}
			resp, err := c.Exchange(ctx, to, ipmi.Request{NetFn: ipmi.NetFnSensor, Cmd: 0x2d, Data: []byte{byte(i)}, ReadOnly: true})
			results <- out{i, resp, err}
		}()
	}
	var sent []sentReq
	for range n {
		sent = append(sent, <-f.sentCh)
	}
	// A response nobody waits for is dropped; then the real ones arrive
	// in reverse order.
	f.deliver(kmsg{recvType: 1, addr: ipmbAddr(0, 0x82, 0), msgid: 1 << 40, netfn: 0x05, cmd: 0x2d, data: []byte{0, 0xee}})
	for i := len(sent) - 1; i >= 0; i-- {
		r := sent[i]
		f.deliver(reply(r, 0x00, r.data[0], r.slave))
	}
	for range n {
		o := <-results
		if o.err != nil {
			t.Errorf("request %d: %v", o.i, o.err)
			continue
		}
		wantSlave := 0x82 + 2*uint8(o.i%4)
		if !bytes.Equal(o.resp.Data, []byte{byte(o.i), wantSlave}) {
			t.Errorf("request %d got response % x, want %02x %02x", o.i, o.resp.Data, o.i, wantSlave)
		}
	}
}

func TestDeadline(t *testing.T) {
	f := newFakeDriver()
	f.sentCh = make(chan sentReq, 4)
	c := startFake(t, f, Options{KeepDriverAddress: true, IPMBTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := c.Exchange(ctx, ipmi.Addr{Slave: 0x82}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 0x01})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	first := <-f.sentCh
	if first.retryMs == 0 || first.retryMs > 30 {
		t.Errorf("retry_time_ms = %d, want at most the caller's 30 ms deadline", first.retryMs)
	}
	// The late response is dropped; the next request gets its own.
	f.deliver(reply(first, 0x00, 0xaa))
	f.onSend = func(r sentReq) ([]kmsg, error) { return []kmsg{reply(r, 0x00, 0xbb)}, nil }
	resp, err := c.Exchange(testCtx(t), ipmi.Addr{Slave: 0x82}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 0x01})
	if err != nil || !bytes.Equal(resp.Data, []byte{0xbb}) {
		t.Fatalf("next Exchange = % x, %v; want bb", resp.Data, err)
	}
	if len(c.pendingSnapshot()) != 0 {
		t.Fatalf("requests still pending: %v", c.pendingSnapshot())
	}
}

// pendingSnapshot lists the msgids the owner goroutine still waits for.
func (c *Conn) pendingSnapshot() []int64 {
	var ids []int64
	_ = c.control(context.Background(), func() error {
		for id := range c.pending {
			ids = append(ids, id)
		}
		return nil
	})
	return ids
}

func TestEventsDeliveryAndOverflow(t *testing.T) {
	f := newFakeDriver()
	f.onSend = func(r sentReq) ([]kmsg, error) { return []kmsg{reply(r, 0)}, nil }
	c := startFake(t, f, Options{KeepDriverAddress: true, EventBuffer: 2})
	settle := func() { // every message queued before this one has been handled
		if _, err := c.Exchange(testCtx(t), ipmi.Addr{}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 0x01}); err != nil {
			t.Fatal(err)
		}
	}
	sel := func(i byte) []byte {
		return []byte{i, 0x00, 0x02, 1, 2, 3, 4, 0x82, 0x00, 0x04, 0xf0, 0x00, 0x6f, 0xa4, 0x31, 0x00}
	}
	for i := range byte(5) {
		f.deliver(kmsg{recvType: 2, addr: siAddr(0), data: sel(i)})
	}
	settle()
	if got := c.Dropped(); got != 3 {
		t.Fatalf("Dropped = %d, want 3", got)
	}
	for i := range byte(2) {
		ev := <-c.Events()
		rec, err := ev.SEL()
		if err != nil || ev.Kind != AsyncEvent || rec[0] != i || ev.Lost != 0 {
			t.Fatalf("event %d = %+v (%v)", i, ev, err)
		}
	}
	// The next delivered event reports the loss; commands and odd-sized
	// events are delivered too.
	f.deliver(
		kmsg{recvType: 2, addr: siAddr(0), data: sel(9)},
		kmsg{recvType: 3, addr: ipmbAddr(0, 0x20, 0), msgid: 17, netfn: 0x2c, cmd: 0x0a, data: []byte{0x00, 0x01}},
	)
	settle()
	ev := <-c.Events()
	if ev.Kind != AsyncEvent || ev.Data[0] != 9 || ev.Lost != 3 {
		t.Fatalf("event = %+v, want record 9 with Lost 3", ev)
	}
	ev = <-c.Events()
	if ev.Kind != Command || ev.From != (ipmi.Addr{Slave: 0x20}) || ev.Seq != 17 || ev.NetFn != ipmi.NetFnGroup || ev.Cmd != 0x0a || !bytes.Equal(ev.Data, []byte{0, 1}) || ev.Lost != 0 {
		t.Fatalf("command event = %+v", ev)
	}
	if _, err := ev.SEL(); err == nil {
		t.Fatal("SEL of a command event succeeded")
	}
	f.deliver(kmsg{recvType: 2, addr: siAddr(0), data: []byte{1, 2, 3}})
	settle()
	ev = <-c.Events()
	if _, err := ev.SEL(); err == nil || !bytes.Equal(ev.Data, []byte{1, 2, 3}) {
		t.Fatalf("short event = %+v, SEL err %v; want raw data kept and SEL refused", ev, err)
	}
	if c.Dropped() != 3 {
		t.Fatalf("Dropped = %d, want still 3", c.Dropped())
	}
}

func TestCloseWithRequestsInFlight(t *testing.T) {
	const n = 16
	f := newFakeDriver()
	f.sentCh = make(chan sentReq, n)
	c := startFake(t, f, Options{KeepDriverAddress: true})
	errs := make(chan error, n)
	for i := range n {
		go func() {
			to := ipmi.Addr{}
			if i%2 == 1 {
				to = ipmi.Addr{Slave: 0x84}
			}
			_, err := c.Exchange(context.Background(), to, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 0x01})
			errs <- err
		}()
	}
	for range n {
		<-f.sentCh
	}
	var wg sync.WaitGroup
	closeErrs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); closeErrs <- c.Close() }()
	}
	wg.Wait()
	close(closeErrs)
	for err := range closeErrs {
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	for range n {
		if err := <-errs; !errors.Is(err, ipmi.ErrClosed) {
			t.Errorf("in-flight Exchange: %v, want ErrClosed", err)
		}
	}
	if _, err := c.Exchange(testCtx(t), ipmi.Addr{}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 1}); !errors.Is(err, ipmi.ErrClosed) {
		t.Errorf("Exchange after Close: %v, want ErrClosed", err)
	}
	if _, open := <-c.Events(); open {
		t.Error("Events still open after Close")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closeCount != 1 {
		t.Errorf("device closed %d times, want 1", f.closeCount)
	}
}

func TestDeviceFailureFailsPending(t *testing.T) {
	f := newFakeDriver()
	f.sentCh = make(chan sentReq, 1)
	c := startFake(t, f, Options{KeepDriverAddress: true})
	done := make(chan error, 1)
	go func() {
		_, err := c.Exchange(context.Background(), ipmi.Addr{}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 1})
		done <- err
	}()
	<-f.sentCh
	cause := errors.New("interface removed")
	f.failPoll(cause)
	err := <-done
	if !errors.Is(err, ipmi.ErrClosed) || !errors.Is(err, cause) {
		t.Fatalf("err = %v, want ErrClosed wrapping the cause", err)
	}
	if _, err := c.Exchange(testCtx(t), ipmi.Addr{}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 1}); !errors.Is(err, ipmi.ErrClosed) {
		t.Fatalf("Exchange after failure: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestOpenSetup(t *testing.T) {
	addrInfo := func(ipmb0 byte) func(r sentReq) ([]kmsg, error) {
		return func(r sentReq) ([]kmsg, error) {
			if r.netfn == 0x2c && r.cmd == 0x01 && bytes.Equal(r.data, []byte{0x00}) && r.addrType == 0x0c {
				// PICMG ID, HW address, IPMB-0, IPMB-1 (reserved), FRU 0, site 3, site type ATCA board
				return []kmsg{reply(r, 0x00, 0x00, 0x43, ipmb0, 0xff, 0x00, 0x03, 0x00)}, nil
			}
			return []kmsg{reply(r, 0x00)}, nil
		}
	}
	notPICMG := func(r sentReq) ([]kmsg, error) { return []kmsg{reply(r, 0xc1)}, nil }
	for _, tc := range []struct {
		name       string
		opts       Options
		onSend     func(r sentReq) ([]kmsg, error)
		wantEvents []int32
		wantSet    []uint32
		wantSI     uint8 // this slave address must go to the system interface afterwards
	}{
		{"discovered from PICMG Get Address Info", Options{}, addrInfo(0x86), []int32{1}, []uint32{0x86}, 0x86},
		{"not a PICMG controller", Options{}, notPICMG, []int32{1}, nil, 0x20},
		{"discovered address equals the driver's", Options{}, addrInfo(0x20), []int32{1}, nil, 0x20},
		{"invalid reported address", Options{}, addrInfo(0x83), []int32{1}, nil, 0x20},
		{"configured address", Options{IPMBAddress: 0x84, NoEvents: true}, addrInfo(0x86), nil, []uint32{0x84}, 0x84},
		{"driver address kept", Options{IPMBAddress: 0x84, KeepDriverAddress: true}, addrInfo(0x86), []int32{1}, nil, 0x20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDriver()
			f.onSend = tc.onSend
			c := startFake(t, f, tc.opts)
			f.mu.Lock()
			gotEv, gotSet := append([]int32(nil), f.getsEvents...), append([]uint32(nil), f.setAddrs...)
			f.mu.Unlock()
			if !slicesEqual(gotEv, tc.wantEvents) || !slicesEqual(gotSet, tc.wantSet) {
				t.Fatalf("gets-events %v, set-address %v; want %v, %v", gotEv, gotSet, tc.wantEvents, tc.wantSet)
			}
			before := len(f.sentRequests())
			if _, err := c.Exchange(testCtx(t), ipmi.Addr{Slave: tc.wantSI}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 1}); err != nil {
				t.Fatal(err)
			}
			if s := f.sentRequests()[before]; s.addrType != 0x0c {
				t.Fatalf("request to own address 0x%02x went out as %+v, want system interface", tc.wantSI, s)
			}
		})
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOpenFailures(t *testing.T) {
	t.Run("events refused", func(t *testing.T) {
		f := newFakeDriver()
		f.getsEventsErr = syscall.EINVAL
		_, err := start(context.Background(), "/dev/ipmi-test", f, Options{Logger: quietLogger()})
		if !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("err = %v", err)
		}
		if f.closeCount != 1 {
			t.Fatalf("device closed %d times, want 1", f.closeCount)
		}
	})
	t.Run("local controller silent during discovery", func(t *testing.T) {
		f := newFakeDriver()
		f.onSend = func(r sentReq) ([]kmsg, error) { return []kmsg{reply(r, 0xc3)}, nil }
		_, err := start(context.Background(), "/dev/ipmi-test", f, Options{Logger: quietLogger()})
		if !errors.Is(err, ErrNoResponse) {
			t.Fatalf("err = %v, want ErrNoResponse", err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.closeCount != 1 {
			t.Fatalf("device closed %d times, want 1", f.closeCount)
		}
	})
}

func TestMsgIDWrapsAndSkipsPending(t *testing.T) {
	f := newFakeDriver()
	f.sentCh = make(chan sentReq, 2)
	c := startFake(t, f, Options{KeepDriverAddress: true})
	// One request stays in flight with msgid 1; the counter then sits at
	// the 31-bit limit.
	go c.Exchange(testCtx(t), ipmi.Addr{}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 0x01})
	if first := <-f.sentCh; first.msgid != 1 {
		t.Fatalf("first msgid = %d, want 1", first.msgid)
	}
	_ = c.control(testCtx(t), func() error { c.lastID = math.MaxInt32; return nil })
	go c.Exchange(testCtx(t), ipmi.Addr{}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 0x02})
	if next := <-f.sentCh; next.msgid != 2 {
		t.Fatalf("msgid after wrap = %d, want 2 (1 is still in flight)", next.msgid)
	}
}
