package secureerase

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Media describes erased media for the certificate (NIST SP 800-88
// Appendix G "Media Information").
type Media struct {
	Manufacturer string `json:"manufacturer,omitempty"`
	Model        string `json:"model,omitempty"`
	Serial       string `json:"serial,omitempty"`
	WWN          string `json:"wwn,omitempty"`
	// Type is the media type: "block device (disk)", "block device
	// (partition)", "block device (loop)", "file", "directory".
	Type string `json:"type"`
	// Rotational is true for magnetic media (sysfs queue/rotational).
	Rotational bool   `json:"rotational,omitempty"`
	Path       string `json:"path"`
	// Device is the kernel name and number ("sda", "8:0").
	Device string `json:"device,omitempty"`
	Size   int64  `json:"size"`
}

// ErrInUse says a block device is mounted, used as swap or held by another
// device.
var ErrInUse = errors.New("device in use")

// sysfs reads the block device attributes the Eraser checks. Root is "/sys"
// and proc "/proc" outside tests.
type sysfs struct {
	root string
	proc string
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.Trim(string(b), "\x00"))
}

func majMin(rdev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev))
}

// blockDir returns the sysfs directory of the block device rdev.
func (s sysfs) blockDir(rdev uint64) (string, error) {
	p, err := filepath.EvalSymlinks(filepath.Join(s.root, "dev", "block", majMin(rdev)))
	if err != nil {
		return "", fmt.Errorf("sysfs entry of block device %s: %w", majMin(rdev), err)
	}
	return p, nil
}

// media describes the block device rdev from sysfs.
func (s sysfs) media(path string, rdev uint64, size int64) (Media, error) {
	dir, err := s.blockDir(rdev)
	if err != nil {
		return Media{}, err
	}
	m := Media{Path: path, Device: filepath.Base(dir) + " " + majMin(rdev), Size: size, Type: "block device (disk)"}
	disk := dir
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		m.Type = "block device (partition)"
		disk = filepath.Dir(dir)
	}
	name := filepath.Base(disk)
	switch {
	case strings.HasPrefix(name, "loop"):
		m.Type = "block device (loop)"
		if f := readTrim(filepath.Join(disk, "loop", "backing_file")); f != "" {
			m.Model = "loop device backed by " + f
		}
	case strings.HasPrefix(name, "dm-"):
		m.Type = "block device (device-mapper)"
	}
	m.Manufacturer = readTrim(filepath.Join(disk, "device", "vendor"))
	if m.Model == "" {
		m.Model = readTrim(filepath.Join(disk, "device", "model"))
	}
	m.Rotational = readTrim(filepath.Join(disk, "queue", "rotational")) == "1"
	for _, p := range []string{"device/serial", "serial"} {
		if v := readTrim(filepath.Join(disk, p)); v != "" {
			m.Serial = v
			break
		}
	}
	if m.Serial == "" {
		// SCSI/SATA: VPD page 0x80, a 4-byte header then the serial.
		if b, err := os.ReadFile(filepath.Join(disk, "device", "vpd_pg80")); err == nil && len(b) > 4 {
			m.Serial = strings.TrimSpace(strings.Trim(string(b[4:]), "\x00"))
		}
	}
	for _, p := range []string{"device/wwid", "wwid", "device/wwn"} {
		if v := readTrim(filepath.Join(disk, p)); v != "" {
			m.WWN = v
			break
		}
	}
	return m, nil
}

// related returns the device numbers of rdev, its partitions and
// everything that holds any of them (device-mapper, loop, md), recursively,
// with their kernel names.
func (s sysfs) related(rdev uint64) (devs map[string]string, holders []string, err error) {
	dir, err := s.blockDir(rdev)
	if err != nil {
		return nil, nil, err
	}
	out := map[string]string{}
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		if depth > 16 {
			return fmt.Errorf("block device holders of %s nest too deep", dir)
		}
		dev := readTrim(filepath.Join(dir, "dev"))
		if dev == "" {
			return fmt.Errorf("sysfs %s has no dev attribute", dir)
		}
		if _, seen := out[dev]; seen {
			return nil
		}
		out[dev] = filepath.Base(dir)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			sub := filepath.Join(dir, e.Name())
			if _, err := os.Stat(filepath.Join(sub, "partition")); err == nil {
				if err := walk(sub, depth+1); err != nil {
					return err
				}
			}
		}
		hs, _ := os.ReadDir(filepath.Join(dir, "holders"))
		for _, h := range hs {
			hd, err := filepath.EvalSymlinks(filepath.Join(dir, "holders", h.Name()))
			if err != nil {
				return fmt.Errorf("holder %s of %s: %w", h.Name(), filepath.Base(dir), err)
			}
			holders = append(holders, h.Name()+" (holding "+filepath.Base(dir)+")")
			if err := walk(hd, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(dir, 0); err != nil {
		return nil, nil, err
	}
	return out, holders, nil
}

// MountInfo is one line of /proc/self/mountinfo.
type MountInfo struct {
	MajorMinor string
	MountPoint string
	Source     string
}

// ParseMountInfo parses /proc/self/mountinfo (proc(5)). Mount points are
// unescaped (\040 is a space).
func ParseMountInfo(r io.Reader) ([]MountInfo, error) {
	var out []MountInfo
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d: %d fields, no separator", line, len(f))
		}
		if !strings.Contains(f[2], ":") {
			return nil, fmt.Errorf("mountinfo line %d: device %q is not major:minor", line, f[2])
		}
		out = append(out, MountInfo{MajorMinor: f[2], MountPoint: unescapeMount(f[4]), Source: unescapeMount(f[sep+2])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	return out, nil
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// checkNotInUse refuses a block device that is mounted (itself, a
// partition or a holder), held by another device (device-mapper, md, a
// holder of one of its partitions) or used as swap.
func (s sysfs) checkNotInUse(path string, rdev uint64) error {
	rel, holders, err := s.related(rdev)
	if err != nil {
		return fmt.Errorf("checking whether %s is in use: %w", path, err)
	}
	self := majMin(rdev)
	f, err := os.Open(filepath.Join(s.proc, "self", "mountinfo"))
	if err != nil {
		return fmt.Errorf("checking whether %s is mounted: %w", path, err)
	}
	mounts, err := ParseMountInfo(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("checking whether %s is mounted: %w", path, err)
	}
	for _, m := range mounts {
		name, hit := rel[m.MajorMinor]
		if !hit && strings.HasPrefix(m.Source, "/dev/") {
			// Filesystems with anonymous device numbers (btrfs) name the
			// device only as the mount source.
			var st unix.Stat_t
			if unix.Stat(m.Source, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
				name, hit = rel[majMin(st.Rdev)]
			}
		}
		if hit {
			what := path
			if m.MajorMinor != self {
				what = fmt.Sprintf("%s (through %s)", path, name)
			}
			return fmt.Errorf("%s is mounted at %s: %w", what, m.MountPoint, ErrInUse)
		}
	}
	if len(holders) > 0 {
		return fmt.Errorf("%s is held by %s: %w", path, strings.Join(holders, ", "), ErrInUse)
	}
	if b, err := os.ReadFile(filepath.Join(s.proc, "swaps")); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			var st unix.Stat_t
			if unix.Stat(unescapeMount(f[0]), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
				if name, hit := rel[majMin(st.Rdev)]; hit {
					return fmt.Errorf("%s is used as swap (%s): %w", path, name, ErrInUse)
				}
			}
		}
	}
	return nil
}

// blockSize returns the size of an open block device.
func blockSize(f *os.File) (int64, error) {
	var size uint64
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(unix.BLKGETSIZE64), uintptr(unsafe.Pointer(&size)))
	if errno != 0 {
		return 0, fmt.Errorf("BLKGETSIZE64 of %s: %w", f.Name(), errno)
	}
	return int64(size), nil
}
