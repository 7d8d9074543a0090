package shelf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"hpiagent/shelf/ipmi"
)

// sdrCacheFile is the on-disk form of a cached SDR repository.
type sdrCacheFile struct {
	Format       int       `json:"format"`
	RecordCount  uint16    `json:"record_count"`
	LastAddition time.Time `json:"last_addition"`
	LastErase    time.Time `json:"last_erase"`
	Records      [][]byte  `json:"records"`
}

const sdrCacheFormat = 1

// ReadSDRsCached returns the main SDR repository of the controller at to,
// from the cache file at path when the repository has not changed since it
// was cached (same record count and the same most recent addition and
// erase times, as Get SDR Repository Info reports them), otherwise read
// from the controller and written to path (mode 0600). A cache that cannot
// be read or parsed is ignored and rewritten: the cache can only cost a
// re-read, never give corrupt records. fromCache says which happened.
//
// Some controllers (ipmi_sim among them) leave both timestamps
// unspecified, so a change that keeps the record count cannot be seen. For
// them the cache is used only while it is younger than unversionedMaxAge
// (0: never), which bounds how stale it can be; FreeIPMI's cache trusts
// such a repository without limit.
func ReadSDRsCached(ctx context.Context, c ipmi.Conn, to ipmi.Addr, path string, unversionedMaxAge time.Duration) (sdrs []ipmi.SDR, fromCache bool, err error) {
	info, err := ipmi.GetSDRRepositoryInfo(ctx, c, to)
	if err != nil {
		return nil, false, err
	}
	if recs, ok := loadSDRCache(path, info, unversionedMaxAge); ok {
		return recs, true, nil
	}
	sdrs, err = ipmi.ReadSDRRepository(ctx, c, to, ipmi.MainSDR)
	if err != nil {
		return nil, false, err
	}
	// The repository may have changed while it was read; cache it only if
	// it still matches the info read before.
	if after, err := ipmi.GetSDRRepositoryInfo(ctx, c, to); err == nil && sameRepo(info, after) {
		if err := writeSDRCache(path, info, sdrs); err != nil {
			return sdrs, false, fmt.Errorf("SDRs read, but caching them failed: %w", err)
		}
	}
	return sdrs, false, nil
}

func sameRepo(a, b ipmi.SDRRepositoryInfo) bool {
	return a.RecordCount == b.RecordCount && a.LastAddition.Equal(b.LastAddition) && a.LastErase.Equal(b.LastErase)
}

func loadSDRCache(path string, info ipmi.SDRRepositoryInfo, unversionedMaxAge time.Duration) ([]ipmi.SDR, bool) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, false
	}
	if info.LastAddition.IsZero() && info.LastErase.IsZero() && time.Since(st.ModTime()) >= unversionedMaxAge {
		return nil, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var f sdrCacheFile
	if json.Unmarshal(b, &f) != nil || f.Format != sdrCacheFormat {
		return nil, false
	}
	if !sameRepo(info, ipmi.SDRRepositoryInfo{RecordCount: f.RecordCount, LastAddition: f.LastAddition, LastErase: f.LastErase}) {
		return nil, false
	}
	sdrs := make([]ipmi.SDR, 0, len(f.Records))
	for _, raw := range f.Records {
		r, err := ipmi.ParseSDR(raw)
		if err != nil {
			return nil, false
		}
		sdrs = append(sdrs, r)
	}
	return sdrs, true
}

func writeSDRCache(path string, info ipmi.SDRRepositoryInfo, sdrs []ipmi.SDR) error {
	f := sdrCacheFile{Format: sdrCacheFormat, RecordCount: info.RecordCount, LastAddition: info.LastAddition, LastErase: info.LastErase}
	for _, r := range sdrs {
		f.Records = append(f.Records, r.Raw)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".sdr-cache-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
