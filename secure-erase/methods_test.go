package secureerase

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// openTarget opens path read-write as a Target of the given kind.
func openTarget(t *testing.T, path string, kind Kind) *Target {
	t.Helper()
	flags := os.O_RDWR
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	size := int64(0)
	if kind == KindBlockDevice {
		if size, err = blockSize(f); err != nil {
			t.Fatal(err)
		}
	} else {
		st, _ := f.Stat()
		size = st.Size()
	}
	return &Target{Path: path, Kind: kind, File: f, Size: size}
}

// progressLog records progress reports and checks them: per phase and
// pass, Done never decreases and the last report reaches Total.
type progressLog struct {
	mu      sync.Mutex
	reports []Progress
}

func (l *progressLog) fn(p Progress) {
	l.mu.Lock()
	l.reports = append(l.reports, p)
	l.mu.Unlock()
}

func (l *progressLog) check(t *testing.T, wantPhases ...string) {
	t.Helper()
	type key struct {
		phase string
		pass  int
	}
	last := map[key]Progress{}
	var order []key
	for _, p := range l.reports {
		k := key{p.Phase, p.Pass}
		prev, seen := last[k]
		if !seen {
			order = append(order, k)
		} else if p.Done < prev.Done || p.Total != prev.Total {
			t.Fatalf("progress went back: %+v after %+v", p, prev)
		}
		if p.Done > p.Total {
			t.Fatalf("progress beyond total: %+v", p)
		}
		last[k] = p
	}
	for _, k := range order {
		if p := last[k]; p.Done != p.Total {
			t.Fatalf("phase %s pass %d ended at %d of %d", k.phase, k.pass, p.Done, p.Total)
		}
	}
	for _, ph := range wantPhases {
		found := false
		for _, k := range order {
			found = found || k.phase == ph
		}
		if !found {
			t.Fatalf("no progress for phase %s in %+v", ph, order)
		}
	}
}

func TestOverwriteFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  OverwriteConfig
		size int
	}{
		{"zero full", OverwriteConfig{Pattern: PatternZero, BlockSize: 4096}, 100_000},
		{"random full", OverwriteConfig{Pattern: PatternRandom, BlockSize: 4096}, 100_000},
		{"random 3 passes", OverwriteConfig{Pattern: PatternRandom, Passes: 3, BlockSize: 8192}, 50_001},
		{"zero sampled", OverwriteConfig{Pattern: PatternZero, Verify: VerifySampled, Samples: 8, BlockSize: 4096}, 1 << 20},
		{"random sampled", OverwriteConfig{Verify: VerifySampled, Samples: 16, SampleSize: 512}, 1<<20 + 17},
		{"one byte", OverwriteConfig{}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, orig := randomFile(t, t.TempDir(), "f", tc.size)
			tg := openTarget(t, path, KindFile)
			var pl progressLog
			m := &Overwrite{Config: tc.cfg}
			res, err := m.Erase(context.Background(), tg, pl.fn)
			if err != nil {
				t.Fatal(err)
			}
			wantPasses := max(1, tc.cfg.Passes)
			if res.Bytes != int64(tc.size*wantPasses) || res.Category != Clear {
				t.Fatalf("result %+v", res)
			}
			v, err := m.Verify(context.Background(), tg, res, pl.fn)
			if err != nil || !v.Passed {
				t.Fatalf("verify: %+v %v", v, err)
			}
			if tc.cfg.Verify == VerifySampled && (v.Samples == 0 || v.Bytes >= int64(tc.size)) {
				t.Fatalf("sampled verification read %d bytes in %d samples", v.Bytes, v.Samples)
			}
			pl.check(t, "erase", "verify")
			got, _ := os.ReadFile(path)
			if len(got) != tc.size {
				t.Fatalf("size changed to %d", len(got))
			}
			if tc.size > 64 && bytes.Contains(got, orig[:64]) {
				t.Fatal("original data still present")
			}
			if (tc.cfg.Pattern == PatternZero) != allZero(got) {
				t.Fatalf("pattern %q, content all zero: %v", tc.cfg.Pattern, allZero(got))
			}
		})
	}
}

// TestVerificationCatchesSurvivingBlock writes old data back after the
// erase; full verification and sampled verification of the written spot
// must fail.
func TestVerificationCatchesSurvivingBlock(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    OverwriteConfig
		offset int64
	}{
		{"zero full middle", OverwriteConfig{Pattern: PatternZero}, 300_000},
		{"random full last byte", OverwriteConfig{Pattern: PatternRandom}, 1<<20 - 1},
		{"random sampled first block", OverwriteConfig{Verify: VerifySampled, Samples: 4}, 0},
		{"zero sampled last block", OverwriteConfig{Pattern: PatternZero, Verify: VerifySampled, Samples: 4}, 1<<20 - 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, _ := randomFile(t, t.TempDir(), "f", 1<<20)
			tg := openTarget(t, path, KindFile)
			m := &Overwrite{Config: tc.cfg}
			res, err := m.Erase(context.Background(), tg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tg.File.WriteAt([]byte{0x5A, 0xA5}[:min(2, 1<<20-tc.offset)], tc.offset); err != nil {
				t.Fatal(err)
			}
			v, err := m.Verify(context.Background(), tg, res, nil)
			if !errors.Is(err, ErrVerifyFailed) || v.Passed {
				t.Fatalf("verify after a surviving block: %+v %v", v, err)
			}
		})
	}
}

func TestOverwriteCancel(t *testing.T) {
	t.Parallel()
	path, _ := randomFile(t, t.TempDir(), "f", 1<<20)
	tg := openTarget(t, path, KindFile)
	ctx, cancel := context.WithCancel(context.Background())
	m := &Overwrite{Config: OverwriteConfig{BlockSize: 4096, ProgressInterval: time.Nanosecond}}
	res, err := m.Erase(ctx, tg, func(p Progress) {
		if p.Done >= 64<<10 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Erase after cancel: %v", err)
	}
	if res.Bytes < 64<<10 || res.Bytes >= 1<<20 {
		t.Fatalf("partial result wrote %d bytes", res.Bytes)
	}
}

func TestProgressRateBounded(t *testing.T) {
	t.Parallel()
	path, _ := randomFile(t, t.TempDir(), "f", 1<<20)
	tg := openTarget(t, path, KindFile)
	// An injected clock that advances 1ms per reading: with a 10ms interval
	// at most about one report in ten blocks passes, plus first and last.
	now := time.Unix(0, 0)
	clock := func() time.Time { now = now.Add(time.Millisecond); return now }
	var pl progressLog
	m := &Overwrite{Config: OverwriteConfig{BlockSize: 4096, ProgressInterval: 10 * time.Millisecond, Now: clock}}
	if _, err := m.Erase(context.Background(), tg, pl.fn); err != nil {
		t.Fatal(err)
	}
	blocks := (1 << 20) / 4096
	if n := len(pl.reports); n > blocks/10+3 || n < 2 {
		t.Fatalf("%d reports for %d blocks", n, blocks)
	}
	pl.check(t, "erase")
}

func TestMethodsOnLoopDevice(t *testing.T) {
	t.Parallel()
	const size = 8 << 20
	tests := []struct {
		name        string
		method      Method
		unsupported bool
	}{
		{"overwrite zero", &Overwrite{Config: OverwriteConfig{Pattern: PatternZero}}, false},
		{"overwrite random sampled", &Overwrite{Config: OverwriteConfig{Verify: VerifySampled, Samples: 64}}, false},
		{"blkdiscard", &Discard{ChunkSize: 1 << 20}, false},
		// Loop devices do not implement secure erase.
		{"blksecdiscard", &Discard{Secure: true}, true},
		{"crypto erase of a device without LUKS", &CryptoErase{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			content := make([]byte, size)
			for i := range content {
				content[i] = byte(i*7 + 1)
			}
			dev, _ := loopDevice(t, size, content)
			tg := openTarget(t, dev, KindBlockDevice)
			if tg.Size != size {
				t.Fatalf("BLKGETSIZE64 = %d", tg.Size)
			}
			var pl progressLog
			res, err := tc.method.Erase(context.Background(), tg, pl.fn)
			if tc.unsupported {
				if !errors.Is(err, ErrNotSupported) {
					t.Fatalf("Erase: %v, want ErrNotSupported", err)
				}
				// Nothing changed.
				got := make([]byte, 4096)
				tg.File.ReadAt(got, 4096)
				if !bytes.Equal(got, content[4096:8192]) {
					t.Fatal("an unsupported method changed the device")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v, err := tc.method.Verify(context.Background(), tg, res, pl.fn)
			if err != nil || !v.Passed {
				t.Fatalf("verify: %+v %v", v, err)
			}
			pl.check(t, "erase", "verify")
			// Inject a block that was not erased: verification must fail.
			tg.File.WriteAt(content[:4096], 0)
			tg.File.Sync()
			if v, err := tc.method.Verify(context.Background(), tg, res, nil); !errors.Is(err, ErrVerifyFailed) || v.Passed {
				t.Fatalf("verify after injecting old data: %+v %v", v, err)
			}
		})
	}
}

func TestCryptoEraseLUKS(t *testing.T) {
	t.Parallel()
	needTool(t, "cryptsetup", haveCmd("cryptsetup"))
	for _, typ := range []string{"luks1", "luks2"} {
		for _, onLoop := range []bool{false, true} {
			name := typ + " file"
			if onLoop {
				name = typ + " loop device"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				img := luksImage(t, typ, 20<<20)
				path, kind := img, KindFile
				if onLoop {
					b, _ := os.ReadFile(img)
					path, _ = loopDevice(t, int64(len(b)), b)
					kind = KindBlockDevice
				}
				if out, err := exec.Command("cryptsetup", "isLuks", path).CombinedOutput(); err != nil {
					t.Fatalf("not LUKS before the erase: %v %s", err, out)
				}
				tg := openTarget(t, path, kind)
				before := make([]byte, tg.Size)
				tg.File.ReadAt(before, 0)
				m := &CryptoErase{}
				var pl progressLog
				res, err := m.Erase(context.Background(), tg, pl.fn)
				if err != nil {
					t.Fatal(err)
				}
				if res.Category != Purge || len(res.Regions) < 2 {
					t.Fatalf("result %+v", res)
				}
				v, err := m.Verify(context.Background(), tg, res, pl.fn)
				if err != nil || !v.Passed {
					t.Fatalf("verify: %+v %v", v, err)
				}
				pl.check(t, "erase", "verify")
				if out, err := exec.Command("cryptsetup", "isLuks", path).CombinedOutput(); err == nil {
					t.Fatalf("cryptsetup still sees LUKS after the erase: %s", out)
				}
				kf := filepath.Join(t.TempDir(), "key")
				os.WriteFile(kf, []byte("correct horse battery staple"), 0o600)
				if out, err := exec.Command("cryptsetup", "open", "--test-passphrase", "--key-file", kf, path).CombinedOutput(); err == nil {
					t.Fatalf("the passphrase still opens the volume: %s", out)
				}
				// The data area is untouched; only metadata changed.
				after := make([]byte, tg.Size)
				tg.File.ReadAt(after, 0)
				end := res.Regions[len(res.Regions)-1].End()
				if !bytes.Equal(before[end:], after[end:]) {
					t.Fatal("crypto erase changed bytes beyond the LUKS metadata")
				}
				// Writing the old key slot back must fail verification.
				ks := res.Regions[len(res.Regions)-1]
				tg.File.WriteAt(before[ks.Offset:ks.End()], ks.Offset)
				tg.File.Sync()
				if v, err := m.Verify(context.Background(), tg, res, nil); !errors.Is(err, ErrVerifyFailed) || v.Passed {
					t.Fatalf("verify after restoring a key slot: %+v %v", v, err)
				}
			})
		}
	}
}

// TestCryptoEraseHandBuiltLUKS1 needs no cryptsetup: a LUKS1 header built by
// hand on a temp file.
func TestCryptoEraseHandBuiltLUKS1(t *testing.T) {
	t.Parallel()
	path, _ := randomFile(t, t.TempDir(), "luks.img", 4<<20)
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt(luks1Header(64, 4000, 4096), 0)
	f.Close()
	tg := openTarget(t, path, KindFile)
	m := &CryptoErase{}
	res, err := m.Erase(context.Background(), tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Regions) != 9 {
		t.Fatalf("%d regions, want header + 8 key slots", len(res.Regions))
	}
	if v, err := m.Verify(context.Background(), tg, res, nil); err != nil || !v.Passed {
		t.Fatalf("verify: %+v %v", v, err)
	}
	// Putting the magic back fails verification.
	tg.File.WriteAt(luksMagic, 0)
	if _, err := m.Verify(context.Background(), tg, res, nil); !errors.Is(err, ErrVerifyFailed) {
		t.Fatalf("verify with the magic restored: %v", err)
	}
}
