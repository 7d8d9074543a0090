package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	secureerase "hpiagent/secure-erase"
)

// eraseBacking is where the loop device's backing file lives and how the
// loop driver reaches it.
type eraseBacking struct {
	name string
	dir  string
	// directIO sets the loop device's direct-io flag: the loop driver then
	// opens its backing file with O_DIRECT, so the backing file system's
	// page cache holds no second copy of what was written.
	directIO bool
}

// eraseCase is one timed way of wiping the device.
type eraseCase struct {
	name string
	// run wipes (and verifies, where the case does) dev and returns the
	// seconds spent writing and verifying.
	run func(ctx context.Context, t *testing.T, dev string) (write, verify float64)
}

// TestBenchErase: wipe throughput of hpiagent's overwrite with verification
// against dd of the same size on the same loop device, for a loop device
// backed by a file on a disk file system (with and without the loop
// driver's direct I/O) and on tmpfs. Every row is timed
// HPIAGENT_BENCH_ERASE_RUNS times (default 9) in rotating order; the
// figures are medians. HPIAGENT_BENCH_ERASE_MIB sets the size (default
// 256), HPIAGENT_BENCH_ERASE_DIR the disk directory (default /var/tmp).
func TestBenchErase(t *testing.T) {
	runs(t)
	if os.Geteuid() != 0 {
		t.Skip("benchmark: loop devices need root")
	}
	benchRequireCommands(t, "losetup", "dd")
	reps := benchEnvInt("HPIAGENT_BENCH_ERASE_RUNS", 9)
	size := int64(benchEnvInt("HPIAGENT_BENCH_ERASE_MIB", 256)) << 20
	diskDir := os.Getenv("HPIAGENT_BENCH_ERASE_DIR")
	if diskDir == "" {
		diskDir = "/var/tmp"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	backings := []eraseBacking{
		{name: "disk file, loop buffered", dir: diskDir},
		{name: "disk file, loop direct-io", dir: diskDir, directIO: true},
		{name: "tmpfs file, loop buffered", dir: "/dev/shm"},
	}
	cases := eraseCases(size)
	load0 := loadAvg()
	var sb strings.Builder
	fmt.Fprintf(&sb, "Wipe of a %d MiB loop device, median of %d runs per row, %s\n\n", size>>20, reps, time.Now().UTC().Format(time.DateOnly))
	fmt.Fprintf(&sb, "Effective MB/s is the device size over the whole time (write + verify); dd rows write (or read) only. Write and verify MB/s come from the run with the median total; ratios are effective MB/s over the dd row's.\n")
	for _, b := range backings {
		fsType, err := fsTypeOf(b.dir)
		if err != nil {
			t.Fatal(err)
		}
		if b.directIO && strings.HasPrefix(fsType, "tmpfs") {
			continue // the disk directory is on tmpfs here: nothing new to measure
		}
		times := measureBacking(ctx, t, b, size, reps, cases)
		fmt.Fprintf(&sb, "\n### %s (%s on %s)\n\n", b.name, fsType, b.dir)
		writeEraseTable(&sb, cases, times, size)
	}
	fmt.Fprintf(&sb, "\nLoad average (/proc/loadavg) at the start: %s, at the end: %s\n", load0, loadAvg())
	t.Log("\n" + sb.String())
	if err := os.MkdirAll("out", 0o755); err == nil {
		os.WriteFile(filepath.Join("out", "erase.md"), []byte(sb.String()), 0o644)
	}
}

// eraseCases returns the rows timed on each backing: dd as the reference
// and hpiagent's overwrite with the verifications a wipe plan may choose.
func eraseCases(size int64) []eraseCase {
	dd := func(args ...string) func(ctx context.Context, t *testing.T, dev string) (float64, float64) {
		return func(ctx context.Context, t *testing.T, dev string) (float64, float64) {
			t.Helper()
			a := append([]string{}, args...)
			for i, s := range a {
				a[i] = strings.ReplaceAll(s, "DEV", dev)
			}
			a = append(a, "count="+strconv.FormatInt(size>>20, 10))
			start := time.Now()
			out, err := exec.CommandContext(ctx, "dd", a...).CombinedOutput()
			if err != nil {
				t.Fatalf("dd %s: %v\n%s", strings.Join(a, " "), err, out)
			}
			return time.Since(start).Seconds(), 0
		}
	}
	hpi := func(cfg secureerase.OverwriteConfig) func(ctx context.Context, t *testing.T, dev string) (float64, float64) {
		return func(ctx context.Context, t *testing.T, dev string) (float64, float64) {
			t.Helper()
			// As the Eraser opens a block device: read-write, exclusive.
			f, err := os.OpenFile(dev, os.O_RDWR|unix.O_EXCL, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			start := time.Now()
			res, err := secureerase.OverwriteRegions(ctx, f, []secureerase.Region{{Offset: 0, Length: size, What: "bench"}}, true, "overwrite", cfg, nil)
			if err != nil {
				t.Fatalf("overwrite %s: %v", dev, err)
			}
			mid := time.Now()
			v, err := secureerase.VerifyRegions(ctx, f, res, cfg, nil)
			if err != nil || !v.Passed {
				t.Fatalf("verify %s: %+v: %v", dev, v, err)
			}
			end := time.Now()
			if res.Bytes != size {
				t.Fatalf("overwrite %s wrote %d bytes, want %d", dev, res.Bytes, size)
			}
			return mid.Sub(start).Seconds(), end.Sub(mid).Seconds()
		}
	}
	return []eraseCase{
		{"dd of=DEV bs=1M oflag=direct conv=fsync", dd("if=/dev/zero", "of=DEV", "bs=1M", "oflag=direct", "conv=fsync", "status=none")},
		{"dd of=DEV bs=1M conv=fsync", dd("if=/dev/zero", "of=DEV", "bs=1M", "conv=fsync", "status=none")},
		{"dd if=DEV bs=1M iflag=direct (read back)", dd("if=DEV", "of=/dev/null", "bs=1M", "iflag=direct", "status=none")},
		{"hpiagent overwrite zeros + full verify", hpi(secureerase.OverwriteConfig{Pattern: secureerase.PatternZero, Verify: secureerase.VerifyFull})},
		{"hpiagent overwrite random + full verify", hpi(secureerase.OverwriteConfig{Pattern: secureerase.PatternRandom, Verify: secureerase.VerifyFull})},
		{"hpiagent overwrite random + sampled verify", hpi(secureerase.OverwriteConfig{Pattern: secureerase.PatternRandom, Verify: secureerase.VerifySampled})},
	}
}

// eraseTimes are the medians of one row.
type eraseTimes struct{ write, verify float64 }

// measureBacking sets up a loop device on a file in b.dir, times every
// case reps times, rotating their order so that drifting load on the
// machine spreads over all rows, and removes both again (also when a
// case fails the test: t.Fatal runs the deferred calls).
func measureBacking(ctx context.Context, t *testing.T, b eraseBacking, size int64, reps int, cases []eraseCase) [][]eraseTimes {
	t.Helper()
	dir, err := os.MkdirTemp(b.dir, "hpiagent-bench-erase-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	backing := filepath.Join(dir, "disk.img")
	// Allocate every block first, so that no row pays for allocation.
	if out, err := exec.CommandContext(ctx, "dd", "if=/dev/zero", "of="+backing, "bs=1M", "count="+strconv.FormatInt(size>>20, 10), "conv=fsync", "status=none").CombinedOutput(); err != nil {
		t.Fatalf("creating %s: %v\n%s", backing, err, out)
	}
	args := []string{"-f", "--show"}
	if b.directIO {
		args = append(args, "--direct-io=on")
	}
	out, err := exec.CommandContext(ctx, "losetup", append(args, backing)...).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup %s: %v\n%s", backing, err, out)
	}
	dev := strings.TrimSpace(string(out))
	defer func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	}()
	t.Logf("%s: %s on %s", b.name, dev, backing)

	times := make([][]eraseTimes, len(cases))
	for rep := range reps {
		for k := range cases {
			i := (k + rep) % len(cases)
			if err := dropCaches(dev, backing); err != nil {
				t.Fatal(err)
			}
			w, v := cases[i].run(ctx, t, dev)
			times[i] = append(times[i], eraseTimes{w, v})
		}
	}
	return times
}

// medianTimes returns the run with the median total time, so that write and
// verify of one row come from the same run.
func medianTimes(ts []eraseTimes) eraseTimes {
	s := slices.Clone(ts)
	slices.SortFunc(s, func(a, b eraseTimes) int {
		x, y := a.write+a.verify, b.write+b.verify
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

func writeEraseTable(sb *strings.Builder, cases []eraseCase, times [][]eraseTimes, size int64) {
	mbps := func(s float64) float64 {
		if s <= 0 {
			return 0
		}
		return float64(size) / 1e6 / s
	}
	med := make([]eraseTimes, len(times))
	for i, ts := range times {
		med[i] = medianTimes(ts)
	}
	ddDirect, ddBuffered, ddRead := med[0].write, med[1].write, med[2].write
	fmt.Fprintf(sb, "| row | write MB/s | verify MB/s | effective MB/s | min–max of runs | / dd direct | / dd buffered | / dd direct write + read |\n|---|---|---|---|---|---|---|---|\n")
	for i, c := range cases {
		m := med[i]
		total := m.write + m.verify
		verify := "–"
		if m.verify > 0 {
			verify = fmt.Sprintf("%.0f", mbps(m.verify))
		}
		lo, hi := math.Inf(1), 0.0
		for _, r := range times[i] {
			v := mbps(r.write + r.verify)
			lo, hi = min(lo, v), max(hi, v)
		}
		fmt.Fprintf(sb, "| %s | %.0f | %s | %.0f | %.0f–%.0f | %.2f | %.2f | %.2f |\n", c.name, mbps(m.write), verify, mbps(total), lo, hi,
			ddDirect/total, ddBuffered/total, (ddDirect+ddRead)/total)
	}
}

// dropCaches writes back and drops the cached pages of the loop device and
// of its backing file, so that every row starts from the same state.
func dropCaches(dev, backing string) error {
	for _, p := range []string{dev, backing} {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("dropping the page cache of %s: %w", p, err)
		}
		err = f.Sync()
		if p == dev {
			_ = unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0)
		}
		_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
		if err != nil {
			return fmt.Errorf("dropping the page cache of %s: %w", p, err)
		}
	}
	return nil
}

// fsTypeOf names the file system type of dir as findmnt does.
func fsTypeOf(dir string) (string, error) {
	out, err := exec.Command("findmnt", "-n", "-o", "FSTYPE,SOURCE", "--target", dir).Output()
	if err != nil {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return "", fmt.Errorf("file system of %s: %w", dir, err)
		}
		return fmt.Sprintf("fs magic %#x", st.Type), nil
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "", errors.New("findmnt printed nothing for " + dir)
	}
	if len(f) > 1 {
		return f[0] + " " + f[1], nil
	}
	return f[0], nil
}

// benchEnvInt reads a positive integer from the environment, def otherwise.
func benchEnvInt(name string, def int) int {
	n, err := strconv.Atoi(os.Getenv(name))
	if err != nil || n <= 0 {
		return def
	}
	return n
}

// benchRequireCommands skips (fails in CI) when a command is missing.
func benchRequireCommands(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not installed", n)
			}
			t.Skipf("%s not installed", n)
		}
	}
}

// loadAvg returns the 1, 5 and 15 minute load averages, for the record:
// the figures depend on what else the machine ran.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
