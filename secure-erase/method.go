package secureerase

import (
	"context"
	"errors"
	"os"
	"time"
)

// ErrNotSupported is returned (wrapped) by a Method that cannot work on a
// target at all, before it changed anything: the Eraser then tries the
// plan's next method.
var ErrNotSupported = errors.New("not supported by this target")

// ErrVerifyFailed is returned (wrapped) when verification found data that
// the erase should have removed.
var ErrVerifyFailed = errors.New("verification failed")

// Category is the NIST SP 800-88 sanitization method type.
type Category string

// NIST SP 800-88 categories used here.
const (
	Clear Category = "Clear"
	Purge Category = "Purge"
)

// Kind is what a target is.
type Kind string

// Target kinds.
const (
	KindBlockDevice Kind = "block-device"
	KindFile        Kind = "file"
	KindDirectory   Kind = "directory"
)

// Target is an opened block device or regular file handed to a Method. The
// Eraser opens it after every safety check (O_EXCL for block devices) and
// closes it afterwards; methods never open or close it themselves.
type Target struct {
	// Path is the resolved path (no symbolic links).
	Path string
	Kind Kind
	// File is open read-write.
	File *os.File
	// Size is the size in bytes (BLKGETSIZE64 for a block device).
	Size int64
	// Media describes the device for the certificate.
	Media Media
}

// Progress reports how far a method is.
type Progress struct {
	Target string `json:"target"`
	Method string `json:"method"`
	// Phase is "erase" or "verify".
	Phase string `json:"phase"`
	// Pass counts from 1 to Passes (overwrite); 1 otherwise.
	Pass   int   `json:"pass"`
	Passes int   `json:"passes"`
	Done   int64 `json:"done"`
	Total  int64 `json:"total"`
}

// ProgressFunc receives progress reports. It must not block for long.
type ProgressFunc func(Progress)

// Result is what a Method did.
type Result struct {
	Method   string   `json:"method"`
	Category Category `json:"category"`
	// Technique describes the technique ("overwrite, 3 passes, last pass
	// AES-256-CTR keystream").
	Technique string `json:"technique"`
	// Bytes is how many bytes were written or discarded.
	Bytes int64 `json:"bytes"`
	// Regions are the byte ranges erased (crypto erase: headers and key
	// slots); empty means the whole target.
	Regions []Region  `json:"regions,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`

	// key regenerates the last random pass for verification; it lives
	// only in memory, is never encoded or logged.
	key []byte
	// random is true when the last pass wrote the keystream.
	random bool
	// old holds digests of the bytes a region held before the erase
	// (crypto erase), to check that they are gone.
	old [][32]byte
}

// Verification is how an erase was checked.
type Verification struct {
	// Method is "full" or "sampled".
	Method string `json:"method"`
	// Bytes is how many bytes were read back.
	Bytes int64 `json:"bytes"`
	// Samples is the number of sampled blocks (sampled verification).
	Samples int  `json:"samples,omitempty"`
	Passed  bool `json:"passed"`
	// Detail says what was checked or, on failure, where it failed.
	Detail string `json:"detail"`
}

// Method is one sanitization technique. Erase changes the target and
// returns what it did; Verify reads the target back and checks the erase
// Erase reported. A method that cannot work on a target returns an error
// wrapping ErrNotSupported before changing anything. Both honour ctx
// between blocks and report progress through progress (which may be nil).
type Method interface {
	Name() string
	Erase(ctx context.Context, t *Target, progress ProgressFunc) (Result, error)
	Verify(ctx context.Context, t *Target, r Result, progress ProgressFunc) (Verification, error)
}
