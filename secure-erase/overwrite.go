package secureerase

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"os"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Pattern is what an overwrite pass writes.
type Pattern string

// Patterns.
const (
	// PatternZero writes zeros.
	PatternZero Pattern = "zero"
	// PatternRandom writes an AES-256-CTR keystream under a fresh random
	// key per pass. Verification regenerates the keystream from the key,
	// which is kept in memory only, so a device that drops writes and reads
	// back zeros (thin provisioning, a lying controller) fails it.
	PatternRandom Pattern = "random"
)

// VerifyMode is how an erase is read back.
type VerifyMode string

// Verification modes.
const (
	// VerifyFull reads back every byte erased.
	VerifyFull VerifyMode = "full"
	// VerifySampled reads back the first and last block of every region and
	// Samples blocks at random offsets.
	VerifySampled VerifyMode = "sampled"
)

// OverwriteConfig configures overwriting and verification. The zero value
// is usable.
type OverwriteConfig struct {
	// Pattern is written by every pass; PatternRandom when empty, because
	// its verification proves the writes reached the media.
	Pattern Pattern
	// Passes is the number of passes; 1 when 0 (NIST SP 800-88 Clear asks
	// for one pass on current media).
	Passes int
	// BlockSize is the write and read size in bytes; 1 MiB when 0. Larger
	// blocks cost memory, smaller ones more system calls.
	BlockSize int
	// Verify is VerifyFull when empty.
	Verify VerifyMode
	// Samples is the number of random blocks VerifySampled reads; 1024
	// when 0.
	Samples int
	// SampleSize is the size of a sampled block; 4096 when 0 (one page,
	// the usual device block).
	SampleSize int
	// Rand is the source of keys and sample offsets; crypto/rand when nil.
	Rand io.Reader
	// ProgressInterval bounds the rate of progress reports (the first and
	// the last of a phase are always sent); 250ms when 0.
	ProgressInterval time.Duration
	// Now is the clock for timestamps and the progress rate; time.Now when
	// nil.
	Now func() time.Time
}

func (c OverwriteConfig) withDefaults() OverwriteConfig {
	if c.Pattern == "" {
		c.Pattern = PatternRandom
	}
	if c.Passes <= 0 {
		c.Passes = 1
	}
	if c.BlockSize <= 0 {
		c.BlockSize = 1 << 20
	}
	if c.Verify == "" {
		c.Verify = VerifyFull
	}
	if c.Samples <= 0 {
		c.Samples = 1024
	}
	if c.SampleSize <= 0 {
		c.SampleSize = 4096
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 250 * time.Millisecond
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c OverwriteConfig) validate() error {
	if c.Pattern != PatternZero && c.Pattern != PatternRandom {
		return fmt.Errorf("overwrite pattern %q: want %q or %q", c.Pattern, PatternZero, PatternRandom)
	}
	if c.Verify != VerifyFull && c.Verify != VerifySampled {
		return fmt.Errorf("verification mode %q: want %q or %q", c.Verify, VerifyFull, VerifySampled)
	}
	if c.Passes > 35 {
		return fmt.Errorf("%d overwrite passes: at most 35", c.Passes)
	}
	return nil
}

// throttle forwards progress at a bounded rate; the first report of a
// phase and pass and the one reaching the total always pass.
type throttle struct {
	fn    ProgressFunc
	every time.Duration
	now   func() time.Time
	last  time.Time
	key   string
}

func (t *throttle) report(p Progress) {
	if t.fn == nil {
		return
	}
	key := fmt.Sprint(p.Phase, p.Pass)
	now := t.now()
	if key != t.key || p.Done >= p.Total || now.Sub(t.last) >= t.every {
		t.key, t.last = key, now
		t.fn(p)
	}
}

// keystream fills dst with the AES-CTR keystream of key at byte offset off
// of the target.
func keystream(block cipher.Block, off int64, dst []byte) {
	var iv [aes.BlockSize]byte
	binary.BigEndian.PutUint64(iv[8:], uint64(off)/aes.BlockSize)
	ctr := cipher.NewCTR(block, iv[:])
	skip := int(off % aes.BlockSize)
	clear(dst)
	if skip > 0 {
		var pad [aes.BlockSize]byte
		ctr.XORKeyStream(pad[:skip], pad[:skip])
	}
	ctr.XORKeyStream(dst, dst)
}

// expectFunc fills dst with what the target should hold at off.
type expectFunc func(off int64, dst []byte)

func zeroExpect(_ int64, dst []byte) { clear(dst) }

func keyExpect(key []byte) (expectFunc, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keystream cipher: %w", err)
	}
	return func(off int64, dst []byte) { keystream(block, off, dst) }, nil
}

// dropCache writes back and drops the cached pages of f so that a read
// afterwards comes from the media.
func dropCache(f *os.File, block bool) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	if block {
		// BLKFLSBUF flushes and invalidates the block device's buffer cache.
		_ = unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0)
	}
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	return nil
}

func totalLength(regions []Region) int64 {
	var n int64
	for _, r := range regions {
		n += r.Length
	}
	return n
}

// OverwriteRegions overwrites regions of f (the whole of a target is one
// region) with cfg.Passes passes of cfg.Pattern, flushing each pass to the
// media. It checks ctx between blocks; on cancellation it returns what was
// done so far with the context's error. method names the caller in
// progress reports. The result carries, in memory only, what
// VerifyRegions needs to check the last pass. It is exported so that
// benchmarks can measure throughput for a given BlockSize.
func OverwriteRegions(ctx context.Context, f *os.File, regions []Region, block bool, method string, cfg OverwriteConfig, progress ProgressFunc) (Result, error) {
	cfg = cfg.withDefaults()
	res := Result{Method: method, Category: Clear, Regions: regions, Start: cfg.Now()}
	if err := cfg.validate(); err != nil {
		return res, err
	}
	total := totalLength(regions)
	thr := &throttle{fn: progress, every: cfg.ProgressInterval, now: cfg.Now}
	buf := make([]byte, cfg.BlockSize)
	for pass := 1; pass <= cfg.Passes; pass++ {
		fill := expectFunc(zeroExpect)
		res.key, res.random = nil, cfg.Pattern == PatternRandom
		if res.random {
			key := make([]byte, 32)
			if _, err := io.ReadFull(cfg.Rand, key); err != nil {
				return res, fmt.Errorf("reading a random key: %w", err)
			}
			var err error
			if fill, err = keyExpect(key); err != nil {
				return res, err
			}
			res.key = key
		}
		var done int64
		p := Progress{Target: f.Name(), Method: method, Phase: "erase", Pass: pass, Passes: cfg.Passes, Total: total}
		thr.report(p)
		for _, r := range regions {
			for off := r.Offset; off < r.End(); {
				if err := ctx.Err(); err != nil {
					res.End = cfg.Now()
					return res, fmt.Errorf("overwriting %s, pass %d, at offset %d: %w", f.Name(), pass, off, err)
				}
				n := int(min(int64(len(buf)), r.End()-off))
				fill(off, buf[:n])
				if _, err := f.WriteAt(buf[:n], off); err != nil {
					res.End = cfg.Now()
					return res, fmt.Errorf("overwriting %s, pass %d, at offset %d: %w", f.Name(), pass, off, err)
				}
				off += int64(n)
				done += int64(n)
				res.Bytes += int64(n)
				p.Done = done
				thr.report(p)
			}
		}
		if err := dropCache(f, block); err != nil {
			res.End = cfg.Now()
			return res, fmt.Errorf("overwriting %s, pass %d: %w", f.Name(), pass, err)
		}
	}
	res.Technique = fmt.Sprintf("overwrite, %d pass(es) of %s", cfg.Passes, patternText(cfg.Pattern))
	res.End = cfg.Now()
	return res, nil
}

func patternText(p Pattern) string {
	if p == PatternRandom {
		return "AES-256-CTR keystream under a fresh random key"
	}
	return "zeros"
}

// VerifyRegions reads back the regions r says were overwritten and compares
// them with the last pass (zeros, or the keystream regenerated from the
// in-memory key), in full or sampled as cfg says. A mismatch returns a
// failed Verification and an error wrapping ErrVerifyFailed that names the
// offset.
func VerifyRegions(ctx context.Context, f *os.File, r Result, cfg OverwriteConfig, progress ProgressFunc) (Verification, error) {
	expect := expectFunc(zeroExpect)
	if r.random {
		var err error
		if expect, err = keyExpect(r.key); err != nil {
			return Verification{}, err
		}
	}
	regions := r.Regions
	return verifyExpected(ctx, f, regions, expect, r.Method, cfg, progress)
}

// verifyExpected reads regions of f (in full or sampled) and compares them
// with expect.
func verifyExpected(ctx context.Context, f *os.File, regions []Region, expect expectFunc, method string, cfg OverwriteConfig, progress ProgressFunc) (Verification, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return Verification{}, err
	}
	v := Verification{Method: string(cfg.Verify)}
	blocks, err := verifyBlocks(regions, cfg)
	if err != nil {
		return v, err
	}
	var total int64
	for _, b := range blocks {
		total += b.Length
	}
	if cfg.Verify == VerifySampled {
		v.Samples = len(blocks)
	}
	thr := &throttle{fn: progress, every: cfg.ProgressInterval, now: cfg.Now}
	p := Progress{Target: f.Name(), Method: method, Phase: "verify", Pass: 1, Passes: 1, Total: total}
	thr.report(p)
	got := make([]byte, cfg.BlockSize)
	want := make([]byte, cfg.BlockSize)
	for _, b := range blocks {
		for off := b.Offset; off < b.End(); {
			if err := ctx.Err(); err != nil {
				v.Detail = fmt.Sprintf("cancelled at offset %d", off)
				return v, fmt.Errorf("verifying %s at offset %d: %w", f.Name(), off, err)
			}
			n := int(min(int64(len(got)), b.End()-off))
			if _, err := f.ReadAt(got[:n], off); err != nil {
				v.Detail = fmt.Sprintf("read error at offset %d", off)
				return v, fmt.Errorf("verifying %s: reading at offset %d: %w", f.Name(), off, err)
			}
			expect(off, want[:n])
			if !bytes.Equal(got[:n], want[:n]) {
				i := 0
				for got[i] == want[i] {
					i++
				}
				v.Detail = fmt.Sprintf("byte at offset %d differs from what the erase wrote", off+int64(i))
				return v, fmt.Errorf("verifying %s: %s: %w", f.Name(), v.Detail, ErrVerifyFailed)
			}
			off += int64(n)
			v.Bytes += int64(n)
			p.Done = v.Bytes
			thr.report(p)
		}
	}
	v.Passed = true
	if cfg.Verify == VerifySampled {
		v.Detail = fmt.Sprintf("%d sampled blocks (%d bytes) of %d bytes match", len(blocks), v.Bytes, totalLength(regions))
	} else {
		v.Detail = fmt.Sprintf("all %d bytes match", v.Bytes)
	}
	return v, nil
}

// verifyBlocks returns what verification reads: every region in full, or
// the first and last sample of every region plus cfg.Samples random ones,
// sorted and without overlaps.
func verifyBlocks(regions []Region, cfg OverwriteConfig) ([]Region, error) {
	if cfg.Verify == VerifyFull {
		return regions, nil
	}
	ss := int64(cfg.SampleSize)
	var out []Region
	sample := func(r Region, off int64) {
		n := min(ss, r.End()-off)
		out = append(out, Region{Offset: off, Length: n, What: "sample"})
	}
	total := totalLength(regions)
	for _, r := range regions {
		sample(r, r.Offset)
		if r.Length > ss {
			sample(r, r.End()-ss)
		}
	}
	if total > 0 {
		for i := 0; i < cfg.Samples; i++ {
			nb, err := rand.Int(cfg.Rand, big.NewInt(total))
			if err != nil {
				return nil, fmt.Errorf("choosing sample offsets: %w", err)
			}
			pos := nb.Int64()
			for _, r := range regions {
				if pos < r.Length {
					off := r.Offset + pos/512*512
					if off+ss > r.End() {
						off = max(r.Offset, r.End()-ss)
					}
					sample(r, off)
					break
				}
				pos -= r.Length
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Offset < out[j].Offset })
	merged := out[:0]
	for _, b := range out {
		if n := len(merged); n > 0 && b.Offset <= merged[n-1].End() {
			if b.End() > merged[n-1].End() {
				merged[n-1].Length = b.End() - merged[n-1].Offset
			}
			continue
		}
		merged = append(merged, b)
	}
	return merged, nil
}

// Overwrite is the overwrite Method.
type Overwrite struct {
	Config OverwriteConfig
}

// Name is "overwrite".
func (o *Overwrite) Name() string { return "overwrite" }

// Erase overwrites the whole target (an empty file needs no writes and
// verifies trivially).
func (o *Overwrite) Erase(ctx context.Context, t *Target, progress ProgressFunc) (Result, error) {
	if t.Size < 0 {
		return Result{Method: o.Name()}, fmt.Errorf("overwrite %s: size %d: %w", t.Path, t.Size, ErrNotSupported)
	}
	return OverwriteRegions(ctx, t.File, []Region{{0, t.Size, "whole target"}}, t.Kind == KindBlockDevice, o.Name(), o.Config, progress)
}

// Verify reads the target back.
func (o *Overwrite) Verify(ctx context.Context, t *Target, r Result, progress ProgressFunc) (Verification, error) {
	return VerifyRegions(ctx, t.File, r, o.Config, progress)
}
