package ipmi

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// sent is one request seen by fakeConn.
type sent struct {
	To  Addr
	Req Request
}

// fakeConn answers requests with a handler; it records what was sent.
// Only for unit tests of encoding and decoding.
type fakeConn struct {
	handle func(to Addr, req Request) (Response, error)
	sent   []sent
}

func (f *fakeConn) Exchange(ctx context.Context, to Addr, req Request) (Response, error) {
	f.sent = append(f.sent, sent{To: to, Req: Request{NetFn: req.NetFn, Cmd: req.Cmd, Data: append([]byte(nil), req.Data...), ReadOnly: req.ReadOnly}})
	return f.handle(to, req)
}

func (f *fakeConn) Close() error { return nil }

// answer returns a fakeConn that answers every request with code and data.
func answer(code CompletionCode, data ...byte) *fakeConn {
	return &fakeConn{handle: func(Addr, Request) (Response, error) {
		return Response{Code: code, Data: append([]byte(nil), data...)}, nil
	}}
}

// hexb decodes a hex string with optional spaces (as ipmitool prints them).
func hexb(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// wantReq checks that the only request sent is netfn/cmd with data and
// the read-only flag.
func wantReq(t *testing.T, f *fakeConn, netfn NetFn, cmd uint8, data []byte, readOnly bool) {
	t.Helper()
	if len(f.sent) != 1 {
		t.Fatalf("sent %d requests, want 1: %+v", len(f.sent), f.sent)
	}
	r := f.sent[0].Req
	if r.NetFn != netfn || r.Cmd != cmd || !bytes.Equal(r.Data, data) || r.ReadOnly != readOnly {
		t.Fatalf("sent %s data % x readOnly %t, want netfn 0x%02x cmd 0x%02x data % x readOnly %t",
			r, r.Data, r.ReadOnly, uint8(netfn), cmd, data, readOnly)
	}
}

func fmtReq(r Request) string { return fmt.Sprintf("%s % x", r, r.Data) }
