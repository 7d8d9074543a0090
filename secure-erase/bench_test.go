package secureerase

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkOverwriteRegions measures overwrite throughput on a temp file
// for several block sizes and both patterns (bytes/s is reported as MB/s).
func BenchmarkOverwriteRegions(b *testing.B) {
	const size = 32 << 20
	path := filepath.Join(b.TempDir(), "bench.img")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	for _, p := range []Pattern{PatternZero, PatternRandom} {
		for _, bs := range []int{64 << 10, 1 << 20, 4 << 20} {
			b.Run(fmt.Sprintf("%s/%dKiB", p, bs>>10), func(b *testing.B) {
				b.SetBytes(size)
				cfg := OverwriteConfig{Pattern: p, BlockSize: bs}
				for b.Loop() {
					if _, err := OverwriteRegions(context.Background(), f, []Region{{0, size, "bench"}}, false, "overwrite", cfg, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
