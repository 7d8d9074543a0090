package shelf

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hpiagent/shelf/ipmi"
)

// sdrRepoConn is a main SDR repository of whole records.
type sdrRepoConn struct {
	info    ipmi.SDRRepositoryInfo
	records [][]byte
	gets    int
}

func (c *sdrRepoConn) Exchange(ctx context.Context, to ipmi.Addr, req ipmi.Request) (ipmi.Response, error) {
	switch req.Cmd {
	case ipmi.CmdGetSDRRepositoryInfo:
		return ipmi.Response{Data: c.info.Marshal()}, nil
	case ipmi.CmdReserveSDRRepository:
		return ipmi.Response{Data: []byte{1, 0}}, nil
	case ipmi.CmdGetSDR:
		c.gets++
		id := int(req.Data[2]) | int(req.Data[3])<<8
		off, n := int(req.Data[4]), int(req.Data[5])
		if id >= len(c.records) {
			return ipmi.Response{Code: ipmi.CCNotPresent}, nil
		}
		next := id + 1
		if next == len(c.records) {
			next = 0xffff
		}
		rec := c.records[id]
		end := min(off+n, len(rec))
		if n == 0xff {
			end = len(rec)
		}
		return ipmi.Response{Data: append([]byte{byte(next), byte(next >> 8)}, rec[off:end]...)}, nil
	}
	return ipmi.Response{Code: ipmi.CCInvalidCommand}, nil
}

func (c *sdrRepoConn) Close() error { return nil }

func newSDRRepoConn(stamp time.Time) *sdrRepoConn {
	c := &sdrRepoConn{info: ipmi.SDRRepositoryInfo{Version: 0x51, RecordCount: 3, LastAddition: stamp}}
	for i := range 3 {
		r := &ipmi.SensorRecord{Type: ipmi.SDRFullSensor, OwnerID: 0x20, Number: uint8(i), EventReadingType: 1}
		r.ID = ipmi.Text8("Temp " + string(rune('A'+i)))
		c.records = append(c.records, r.Marshal(uint16(i)))
	}
	return c
}

func TestReadSDRsCached(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cache", "shelf.sdr")
	c := newSDRRepoConn(time.Unix(1700000000, 0).UTC())

	read := func(maxAge time.Duration) (int, bool) {
		t.Helper()
		sdrs, hit, err := ReadSDRsCached(ctx, c, ipmi.Addr{}, path, maxAge)
		if err != nil {
			t.Fatal(err)
		}
		return len(sdrs), hit
	}
	if n, hit := read(0); hit || n != 3 {
		t.Fatalf("first read: %d records, from cache %v", n, hit)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v %v, want mode 0600", st.Mode(), err)
	}
	gets := c.gets
	if n, hit := read(0); !hit || n != 3 || c.gets != gets {
		t.Fatalf("second read: %d records, from cache %v, %d Get SDR", n, hit, c.gets-gets)
	}

	// A record added: the timestamp moves, the cache is not used.
	c.info.LastAddition = c.info.LastAddition.Add(time.Second)
	if _, hit := read(0); hit {
		t.Fatal("cache used after the repository changed")
	}

	// A corrupt cache is re-read, not trusted.
	if err := os.WriteFile(path, []byte(`{"format":1,"record_count":3,"records":["AAA="]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, hit := read(0); hit || n != 3 {
		t.Fatalf("corrupt cache: %d records, from cache %v", n, hit)
	}

	// Unversioned repository (timestamps unspecified): only within maxAge.
	c.info.LastAddition = time.Time{}
	read(0) // rewrite the cache for the unversioned repository
	if _, hit := read(0); hit {
		t.Fatal("unversioned repository: cache used with max age 0")
	}
	if _, hit := read(time.Hour); !hit {
		t.Fatal("unversioned repository: fresh cache not used within max age")
	}
}
