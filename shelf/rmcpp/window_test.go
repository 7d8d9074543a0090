package rmcpp

import (
	"context"
	"testing"
	"time"

	"hpiagent/shelf/ipmi"
)

func TestSeqWindow(t *testing.T) {
	for _, tc := range []struct {
		name string
		seqs []uint32
		want []bool
	}{
		{"in order", []uint32{5, 6, 7}, []bool{true, true, true}},
		{"zero never", []uint32{0, 1, 0}, []bool{false, true, false}},
		{"duplicate", []uint32{5, 6, 6, 5}, []bool{true, true, false, false}},
		{"reordered within window", []uint32{10, 12, 11, 9}, []bool{true, true, true, true}},
		{"too old", []uint32{100, 84, 85}, []bool{true, false, true}},
		{"too far ahead", []uint32{100, 133, 132}, []bool{true, false, true}},
		{"old after jump", []uint32{1, 33, 1, 2, 17, 18}, []bool{true, true, false, false, false, true}},
		{"big jumps forget old bits", []uint32{1, 30, 59, 88, 87, 88}, []bool{true, true, true, true, true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w SeqWindow
			for i, s := range tc.seqs {
				if got := w.Accept(s); got != tc.want[i] {
					t.Fatalf("accept(%d) #%d = %t, want %t", s, i, got, tc.want[i])
				}
			}
		})
	}
}

func TestParseCipherSuiteRecords(t *testing.T) {
	// As ipmi_sim 2.0.33 sends them (first 16 bytes of the list).
	b := []byte{0xc0, 0x00, 0x00, 0x40, 0x80, 0xc0, 0x01, 0x01, 0x40, 0x80, 0xc0, 0x02, 0x01, 0x41, 0x80, 0xc0, 0x03, 0x01, 0x41, 0x81,
		0xc1, 0x80, 0x57, 0x01, 0x00, 0x03, 0x44, 0x81}
	got, err := parseCipherSuiteRecords(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []offeredSuite{{0, 0, 0, 0, false}, {1, 1, 0, 0, false}, {2, 1, 1, 0, false}, {3, 1, 1, 1, false}, {0x80, 3, 4, 1, true}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range [][]byte{{0xc0}, {0xc1, 1, 2}, {0x01, 0xc0, 3}} {
		if _, err := parseCipherSuiteRecords(bad); err == nil {
			t.Errorf("% x accepted", bad)
		}
	}
}

func FuzzParseCipherSuiteRecords(f *testing.F) {
	f.Add([]byte{0xc0, 0x03, 0x01, 0x41, 0x81, 0xc0, 17, 0x03, 0x44, 0x81})
	f.Add([]byte{0xc1, 0x80, 0x57, 0x01, 0x00, 0x03, 0x44, 0x81})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := parseCipherSuiteRecords(b)
		if err == nil && len(b) > 0 && len(recs) == 0 {
			t.Fatalf("no records and no error for % x", b)
		}
	})
}

func TestKeepAlive(t *testing.T) {
	f := startFakeBMC(t, &fakeBMC{password: []byte("pw"), offered: []int{17}})
	cfg := fakeConfig(t, f)
	cfg.KeepAlive = 50 * time.Millisecond
	s := dial(t, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Sent < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := s.Stats()
	if st.Sent < 3 || st.Timeouts != 0 || len(st.Rejected) != 0 {
		t.Fatalf("idle session sent no keep-alives: %+v", st)
	}
	if _, err := ipmi.Do(context.Background(), s, ipmi.Addr{}, getDeviceID); err != nil {
		t.Fatal(err)
	}
}
