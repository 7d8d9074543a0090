package secureerase

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// dirStats counts what a directory wipe did.
type dirStats struct {
	files, others, dirs int
	bytes, verified     int64
}

// eraseDir wipes a planned directory: every regular file below it is
// overwritten, verified, fsynced and unlinked; symbolic links, sockets,
// FIFOs and device nodes are unlinked without being followed or written;
// subdirectories are entered by file descriptor (openat with O_NOFOLLOW), so
// no symbolic link can lead the wipe out of the directory, and never across
// a mount point; then the directories are removed, the planned one last.
func (e *Eraser) eraseDir(ctx context.Context, pt PlanTarget, resolved string, cert *Certificate) (opened bool, err error) {
	var st unix.Stat_t
	if err := unix.Lstat(resolved, &st); err != nil {
		return false, fmt.Errorf("stat %s: %w", resolved, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false, fmt.Errorf("%s is not a directory, the plan says one: %w", resolved, ErrIdentityMismatch)
	}
	fd, err := unix.Open(resolved, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("opening %s: %w", resolved, err)
	}
	cert.Media = Media{Type: "directory", Path: resolved, Device: majMin(st.Dev)}
	start := e.cfg.Now()
	var stats dirStats
	ow := &Overwrite{Config: e.cfg.Overwrite}
	ow.Config.Verify = VerifyFull
	err = e.wipeTree(ctx, fd, resolved, st.Dev, ow, &stats, cert, 0)
	unix.Close(fd)
	if err == nil {
		if rerr := unix.Rmdir(resolved); rerr != nil {
			err = fmt.Errorf("removing %s: %w", resolved, rerr)
		} else {
			stats.dirs++
		}
	}
	cert.Media.Size = stats.bytes
	res := Result{Method: "overwrite", Category: Clear, Bytes: stats.bytes, Start: start, End: e.cfg.Now(),
		Technique: fmt.Sprintf("%d file(s), %d bytes: overwrite with %d pass(es) of %s, fsync, unlink; %d other entries unlinked without following; %d directories removed",
			stats.files, stats.bytes, max(1, e.cfg.Overwrite.Passes), patternText(ow.Config.withDefaults().Pattern), stats.others, stats.dirs)}
	v := Verification{Method: string(VerifyFull), Bytes: stats.verified, Passed: err == nil,
		Detail: fmt.Sprintf("every file read back in full before unlinking (%d bytes)", stats.verified)}
	att := Attempt{Method: "overwrite", Result: &res, Verification: &v}
	if err != nil {
		att.Error = err.Error()
		v.Detail = "stopped: " + err.Error()
	}
	cert.Sanitization.Attempts = append(cert.Sanitization.Attempts, att)
	if err == nil {
		s := &cert.Sanitization
		s.Category, s.Method, s.Technique, s.VerificationMethod, s.Verification = Clear, "Overwrite", res.Technique, v.Method, v
	}
	return true, err
}

func (e *Eraser) wipeTree(ctx context.Context, dirfd int, dirPath string, rootDev uint64, ow *Overwrite, stats *dirStats, cert *Certificate, depth int) error {
	if depth > 256 {
		return fmt.Errorf("%s: directories nest deeper than 256", dirPath)
	}
	names, err := readDirNames(dirfd, dirPath)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wiping %s: %w", dirPath, err)
		}
		p := filepath.Join(dirPath, name)
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if st.Dev != rootDev {
				return fmt.Errorf("%s is a mount point; the wipe does not cross file systems: %w", p, ErrInUse)
			}
			sub, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("opening %s: %w", p, err)
			}
			var fst unix.Stat_t
			if err := unix.Fstat(sub, &fst); err != nil || fst.Ino != st.Ino || fst.Dev != st.Dev {
				unix.Close(sub)
				return fmt.Errorf("%s changed while it was opened: %w", p, ErrIdentityMismatch)
			}
			err = e.wipeTree(ctx, sub, p, rootDev, ow, stats, cert, depth+1)
			unix.Close(sub)
			if err != nil {
				return err
			}
			if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil {
				return fmt.Errorf("removing %s: %w", p, err)
			}
			stats.dirs++
		case unix.S_IFREG:
			if err := e.wipeFile(ctx, dirfd, name, p, &st, ow, stats); err != nil {
				return err
			}
		default:
			// Symbolic links, sockets, FIFOs, device nodes: remove the
			// entry itself, never what it points at.
			if err := unlinkSame(dirfd, name, p, &st); err != nil {
				return err
			}
			stats.others++
		}
	}
	return nil
}

func readDirNames(dirfd int, dirPath string) ([]string, error) {
	// A duplicate descriptor, so that closing the os.File leaves dirfd open.
	dup, err := unix.Dup(dirfd)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dirPath, err)
	}
	f := os.NewFile(uintptr(dup), dirPath)
	defer f.Close()
	var names []string
	for {
		batch, err := f.Readdirnames(256)
		names = append(names, batch...)
		if errors.Is(err, io.EOF) || (err == nil && len(batch) == 0) {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", dirPath, err)
		}
	}
}

func (e *Eraser) wipeFile(ctx context.Context, dirfd int, name, p string, st *unix.Stat_t, ow *Overwrite, stats *dirStats) error {
	f, err := openSameFile(dirfd, name, p, st)
	if err != nil {
		return err
	}
	if st.Size > 0 {
		t := &Target{Path: p, Kind: KindFile, File: f, Size: st.Size}
		res, err := ow.Erase(ctx, t, e.progress(p))
		if err == nil {
			var v Verification
			v, err = ow.Verify(ctx, t, res, e.progress(p))
			clear(res.key)
			stats.verified += v.Bytes
		}
		stats.bytes += res.Bytes
		if err != nil {
			f.Close()
			return fmt.Errorf("wiping %s: %w", p, err)
		}
	} else if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", p, err)
	}
	if err := unlinkSame(dirfd, name, p, st); err != nil {
		return err
	}
	stats.files++
	return nil
}
