package secureerase

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// CryptoErase is the crypto erase Method for LUKS1 and LUKS2 volumes: it
// overwrites every key-slot area and the binary headers with their JSON
// areas (both LUKS2 copies) with an AES-CTR keystream, after which the
// volume key cannot be recovered and the encrypted data is unreadable
// (NIST SP 800-88 cryptographic erase, Purge). The data area itself is not
// touched. A target without a LUKS header gives ErrNotSupported.
type CryptoErase struct {
	// Config configures the overwrite of the metadata (Pattern is always
	// random here, Passes as set) and its verification (always full: the
	// regions are small).
	Config OverwriteConfig
}

// Name is "crypto-erase".
func (c *CryptoErase) Name() string { return "crypto-erase" }

func (c *CryptoErase) config() OverwriteConfig {
	cfg := c.Config
	cfg.Pattern = PatternRandom
	cfg.Verify = VerifyFull
	return cfg.withDefaults()
}

// readLUKS reads and parses the LUKS header of t.
func readLUKS(t *Target) (*LUKSHeader, error) {
	head := make([]byte, min(t.Size, luksMaxJSONAreaSize))
	n, err := t.File.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the LUKS header of %s: %w", t.Path, err)
	}
	h, err := ParseLUKSHeader(head[:n], t.Size)
	if err != nil {
		return nil, fmt.Errorf("LUKS header of %s: %w", t.Path, err)
	}
	return h, nil
}

// Erase overwrites the LUKS metadata.
func (c *CryptoErase) Erase(ctx context.Context, t *Target, progress ProgressFunc) (Result, error) {
	cfg := c.config()
	h, err := readLUKS(t)
	if err != nil {
		res := Result{Method: c.Name(), Category: Purge, Start: cfg.Now(), End: cfg.Now()}
		if errors.Is(err, ErrNotLUKS) {
			return res, fmt.Errorf("crypto erase: %w: %w", err, ErrNotSupported)
		}
		return res, fmt.Errorf("crypto erase: %w", err)
	}
	regions := h.Regions()
	// Remember digests of what the regions hold, to prove they changed.
	old := make([][32]byte, len(regions))
	for i, r := range regions {
		buf := make([]byte, r.Length)
		if _, err := t.File.ReadAt(buf, r.Offset); err != nil {
			return Result{Method: c.Name(), Category: Purge}, fmt.Errorf("crypto erase of %s: reading %s: %w", t.Path, r.What, err)
		}
		old[i] = sha256.Sum256(buf)
	}
	res, err := OverwriteRegions(ctx, t.File, regions, t.Kind == KindBlockDevice, c.Name(), cfg, progress)
	res.Category = Purge
	res.old = old
	res.Technique = fmt.Sprintf("cryptographic erase of LUKS%d volume %s: %d key slot area(s) and %d header area(s) overwritten with an AES-256-CTR keystream",
		h.Version, h.UUID, len(h.KeySlots), len(h.Headers))
	return res, err
}

// Verify checks that every region holds the keystream written, no longer
// holds its old bytes, and that no LUKS header magic is left at any offset
// where a primary or secondary header may live.
func (c *CryptoErase) Verify(ctx context.Context, t *Target, r Result, progress ProgressFunc) (Verification, error) {
	v, err := VerifyRegions(ctx, t.File, r, c.config(), progress)
	if err != nil {
		return v, err
	}
	for i, reg := range r.Regions {
		if i >= len(r.old) {
			break
		}
		buf := make([]byte, reg.Length)
		if _, err := t.File.ReadAt(buf, reg.Offset); err != nil {
			v.Passed = false
			return v, fmt.Errorf("verifying crypto erase of %s: reading %s: %w", t.Path, reg.What, err)
		}
		if sha256.Sum256(buf) == r.old[i] {
			v.Passed = false
			v.Detail = reg.What + " still holds its old bytes"
			return v, fmt.Errorf("verifying crypto erase of %s: %s: %w", t.Path, v.Detail, ErrVerifyFailed)
		}
	}
	for _, off := range append([]int64{0}, luks2SecondaryOffsets...) {
		if off+6 > t.Size {
			continue
		}
		magic := make([]byte, 6)
		if _, err := t.File.ReadAt(magic, off); err != nil {
			return v, fmt.Errorf("verifying crypto erase of %s: reading offset %d: %w", t.Path, off, err)
		}
		if bytes.Equal(magic, luksMagic) || bytes.Equal(magic, luks2SecondMagi) {
			v.Passed = false
			v.Detail = fmt.Sprintf("a LUKS header magic is still at offset %d", off)
			return v, fmt.Errorf("verifying crypto erase of %s: %s: %w", t.Path, v.Detail, ErrVerifyFailed)
		}
	}
	v.Detail = "key slots and headers hold the written keystream, none holds its old bytes, no LUKS magic left; " + v.Detail
	return v, nil
}
