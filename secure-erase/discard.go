package secureerase

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Discard is the BLKDISCARD (Secure false) or BLKSECDISCARD (Secure true)
// Method for block devices. Discarded blocks need not read back as zeros
// (discard_zeroes_data is not guaranteed), so verification reads them and
// requires zeros: a device that keeps the old data fails it.
type Discard struct {
	// Secure selects BLKSECDISCARD, which asks the device to erase the
	// blocks physically, including copies it moved (NIST Purge); plain
	// BLKDISCARD only unmaps them (recorded as Clear, and only once the
	// zero check passed).
	Secure bool
	// ChunkSize is the length of one ioctl, between which ctx is checked
	// and progress reported; 256 MiB when 0.
	ChunkSize int64
	// Check configures the zero check (mode, samples, block size, clock);
	// its Pattern and Passes are not used.
	Check OverwriteConfig
}

// Name is "blksecdiscard" or "blkdiscard".
func (d *Discard) Name() string {
	if d.Secure {
		return "blksecdiscard"
	}
	return "blkdiscard"
}

func (d *Discard) request() uint {
	if d.Secure {
		return unix.BLKSECDISCARD
	}
	return unix.BLKDISCARD
}

// notSupported reports whether an ioctl error means the device cannot do
// the request at all.
func notSupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.ENOSYS)
}

// Erase discards the whole device.
func (d *Discard) Erase(ctx context.Context, t *Target, progress ProgressFunc) (Result, error) {
	cfg := d.Check.withDefaults()
	res := Result{Method: d.Name(), Category: Clear, Start: cfg.Now()}
	if d.Secure {
		res.Category = Purge
	}
	if t.Kind != KindBlockDevice {
		return res, fmt.Errorf("%s of %s: not a block device: %w", d.Name(), t.Path, ErrNotSupported)
	}
	chunk := d.ChunkSize
	if chunk <= 0 {
		chunk = 256 << 20
	}
	chunk = chunk / 4096 * 4096
	if chunk == 0 {
		chunk = 4096
	}
	thr := &throttle{fn: progress, every: cfg.ProgressInterval, now: cfg.Now}
	p := Progress{Target: t.Path, Method: d.Name(), Phase: "erase", Pass: 1, Passes: 1, Total: t.Size}
	thr.report(p)
	for off := int64(0); off < t.Size; {
		if err := ctx.Err(); err != nil {
			res.End = cfg.Now()
			return res, fmt.Errorf("%s of %s at offset %d: %w", d.Name(), t.Path, off, err)
		}
		n := min(chunk, t.Size-off)
		rng := [2]uint64{uint64(off), uint64(n)}
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, t.File.Fd(), uintptr(d.request()), uintptr(unsafe.Pointer(&rng)))
		if errno != 0 {
			res.End = cfg.Now()
			if off == 0 && notSupported(errno) {
				return res, fmt.Errorf("%s of %s: %w (%w)", d.Name(), t.Path, ErrNotSupported, errno)
			}
			return res, fmt.Errorf("%s of %s at offset %d: %w", d.Name(), t.Path, off, errno)
		}
		off += n
		res.Bytes += n
		p.Done = off
		thr.report(p)
	}
	if err := dropCache(t.File, true); err != nil {
		res.End = cfg.Now()
		return res, fmt.Errorf("%s of %s: %w", d.Name(), t.Path, err)
	}
	res.Technique = d.Name() + " of the whole device, verified to read back zeros"
	if d.Secure {
		res.Technique = "BLKSECDISCARD (secure erase by the device) of the whole device, verified to read back zeros"
	}
	res.Regions = []Region{{0, t.Size, "whole device"}}
	res.End = cfg.Now()
	return res, nil
}

// Verify checks that the device reads back zeros.
func (d *Discard) Verify(ctx context.Context, t *Target, r Result, progress ProgressFunc) (Verification, error) {
	v, err := verifyExpected(ctx, t.File, []Region{{0, t.Size, "whole device"}}, zeroExpect, d.Name(), d.Check, progress)
	if err == nil {
		v.Detail = "zero check: " + v.Detail
	}
	return v, err
}
