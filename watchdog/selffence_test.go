package watchdog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSelfFenceMark: a mark written in this boot reads back; one of an
// earlier boot reads as none and is removed; a damaged one is an error
// and stays; no mark reads as none.
func TestSelfFenceMark(t *testing.T) {
	t.Parallel()
	boot := "boot-1"
	tests := []struct {
		name      string
		content   string // written as the file ("" : Write is used)
		readBoot  string
		wantOK    bool
		wantErr   bool
		wantExist bool // the file after Read
	}{
		{"same boot", "", "boot-1", true, false, true},
		{"earlier boot", "", "boot-2", false, false, false},
		{"damaged", `{"boot_id":"boot-1","time":`, "boot-1", false, true, true},
		{"unknown field", `{"boot_id":"boot-1","time":"2026-11-23T19:00:00Z","reason":"r","x":1}`, "boot-1", false, true, true},
		{"reason missing", `{"boot_id":"boot-1","time":"2026-11-23T19:00:00Z"}`, "boot-1", false, true, true},
		{"two records", `{"boot_id":"boot-1","time":"2026-11-23T19:00:00Z","reason":"r"}{}`, "boot-1", false, true, true},
	}
	at := time.Date(2026, 11, 23, 19, 0, 0, 0, time.FixedZone("x", 3600))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "self-fence")
			m := SelfFenceMark{Path: path, BootID: func() (string, error) { return boot, nil }}
			if tc.content == "" {
				if err := m.Write(at, "no quorum since ...: self-fencing"); err != nil {
					t.Fatal(err)
				}
				if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("mark file %v %v", fi, err)
				}
			} else if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			r := SelfFenceMark{Path: path, BootID: func() (string, error) { return tc.readBoot, nil }}
			reason, when, ok, err := r.Read()
			if ok != tc.wantOK || (err != nil) != tc.wantErr {
				t.Fatalf("Read: %q %v %v %v, want ok %v error %v", reason, when, ok, err, tc.wantOK, tc.wantErr)
			}
			if ok && (!strings.Contains(reason, "self-fencing") || !when.Equal(at)) {
				t.Fatalf("Read: %q at %v", reason, when)
			}
			if _, err := os.Stat(path); (err == nil) != tc.wantExist {
				t.Fatalf("file exists after Read: %v, want %v", err == nil, tc.wantExist)
			}
		})
	}
	m := SelfFenceMark{Path: filepath.Join(t.TempDir(), "none")}
	if _, _, ok, err := m.Read(); ok || err != nil {
		t.Fatalf("no mark: %v %v", ok, err)
	}
	bad := SelfFenceMark{Path: filepath.Join(t.TempDir(), "m"), BootID: func() (string, error) { return "", errors.New("no /proc") }}
	if err := bad.Write(at, "r"); err == nil {
		t.Fatal("written without a boot ID")
	}
	if _, err := (SelfFenceMark{}).bootID(); err != nil && !strings.Contains(err.Error(), "boot") {
		t.Fatalf("boot ID error %v", err)
	}
}

// FuzzParseMark: any file content is a mark with every field or an
// error, never a panic.
func FuzzParseMark(f *testing.F) {
	for _, s := range []string{
		`{"boot_id":"b","time":"2026-11-23T19:00:00Z","reason":"r"}`,
		`{"boot_id":"b","time":"2026-11-23T19:00:00Z","reason":"r"}` + "\n",
		`{"boot_id":"","time":"2026-11-23T19:00:00Z","reason":"r"}`,
		`{}`, `[]`, ``, `{"boot_id":1}`, `{"time":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := parseMark(b)
		if err == nil && (rec.BootID == "" || rec.Reason == "" || rec.Time.IsZero()) {
			t.Fatalf("incomplete mark accepted: %+v", rec)
		}
	})
}

// TestFeederStartsSelfFenced: a feeder started with a self-fence decided
// before a restart arms nothing, feeds nothing whatever the checks and
// quorum say, reports self-fencing and leaves everything as it is at
// shutdown.
func TestFeederStartsSelfFenced(t *testing.T) {
	ctx := context.Background()
	clk := &clock{now: t0}
	dev := &fakeDevice{}
	fenced := 0
	f, err := NewFeeder(FeederConfig{Devices: []Device{dev}, HasQuorum: func() bool { return true }, Now: clk.Now, Logger: quiet(),
		SelfFenced: "no quorum since earlier: self-fencing", OnSelfFence: func(context.Context, string) { fenced++ }})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Arm(ctx); !errors.Is(err, ErrSelfFencing) {
		t.Fatalf("Arm: %v, want ErrSelfFencing", err)
	}
	for range 3 {
		d, err := f.Tick(ctx)
		if err != nil || d.Feed || !d.SelfFencing {
			t.Fatalf("tick: %+v %v", d, err)
		}
		clk.now = clk.now.Add(time.Second)
	}
	st := f.Status()
	if !st.SelfFencing || st.Feeding || !st.SelfFencingSince.Equal(t0) || !st.WithheldSince.Equal(t0) || st.Reason != "no quorum since earlier: self-fencing" {
		t.Fatalf("status %+v", st)
	}
	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if dev.arms != 0 || dev.feeds != 0 || dev.disarms != 0 || fenced != 0 {
		t.Fatalf("arms %d feeds %d disarms %d hook %d, want none", dev.arms, dev.feeds, dev.disarms, fenced)
	}
}
