package secureerase

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMountInfo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []MountInfo
		wantErr bool
	}{
		{"typical", "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n" +
			"22 27 0:21 / /proc rw,relatime - proc proc rw\n",
			[]MountInfo{{"98:0", "/mnt2", "/dev/root"}, {"0:21", "/proc", "proc"}}, false},
		{"no optional fields", "1 0 7:3 / /mnt\\040point rw - ext4 /dev/loop3 rw\n",
			[]MountInfo{{"7:3", "/mnt point", "/dev/loop3"}}, false},
		{"several optional fields", "1 0 8:1 / /a rw shared:1 master:2 propagate_from:3 - xfs /dev/sda1 rw\n",
			[]MountInfo{{"8:1", "/a", "/dev/sda1"}}, false},
		{"blank lines", "\n\n", nil, false},
		{"no separator", "1 0 8:1 / /a rw shared:1 xfs /dev/sda1 rw\n", nil, true},
		{"short", "1 0 8:1\n", nil, true},
		{"bad device", "1 0 sda / /a rw - xfs /dev/sda1 rw\n", nil, true},
		{"separator last", "1 0 8:1 / /a rw - xfs\n", nil, true},
	}
	for _, tc := range tests {
		got, err := ParseMountInfo(strings.NewReader(tc.in))
		if (err != nil) != tc.wantErr {
			t.Fatalf("%s: error %v", tc.name, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Fatalf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// The real one parses.
	f, err := os.Open("/proc/self/mountinfo")
	if err == nil {
		defer f.Close()
		if ms, err := ParseMountInfo(f); err != nil || len(ms) == 0 {
			t.Fatalf("own mountinfo: %d mounts, %v", len(ms), err)
		}
	}
}

func FuzzParseMountInfo(f *testing.F) {
	f.Add("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n")
	f.Add("1 0 7:3 / /mnt\\040point rw - ext4 /dev/loop3 rw\n")
	f.Add("1 0 8:1 / /a rw - xfs\n")
	f.Add("\\\\\\0")
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseMountInfo(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, m := range ms {
			if !strings.Contains(m.MajorMinor, ":") {
				t.Fatalf("accepted device %q", m.MajorMinor)
			}
		}
	})
}

// fakeSys builds a sysfs and procfs tree: disk sda (8:0) with serial and
// WWN, partition sda1 (8:1), and a device-mapper dm-0 (253:0) holding
// sda1; loop0 (7:0) with neither.
func fakeSys(t *testing.T, mountinfo string) sysfs {
	t.Helper()
	root := t.TempDir()
	sys, proc := filepath.Join(root, "sys"), filepath.Join(root, "proc")
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	devs := filepath.Join(sys, "devices")
	sda := filepath.Join(devs, "pci0", "block", "sda")
	write(filepath.Join(sda, "dev"), "8:0\n")
	write(filepath.Join(sda, "device", "vendor"), "ATA     \n")
	write(filepath.Join(sda, "device", "model"), "ACME SSD 960\n")
	write(filepath.Join(sda, "device", "vpd_pg80"), "\x00\x80\x00\x0c  S3Z9NB0K1\x00")
	write(filepath.Join(sda, "device", "wwid"), "naa.5002538e40a1b2c3\n")
	write(filepath.Join(sda, "queue", "rotational"), "0\n")
	write(filepath.Join(sda, "sda1", "dev"), "8:1\n")
	write(filepath.Join(sda, "sda1", "partition"), "1\n")
	os.MkdirAll(filepath.Join(sda, "holders"), 0o755)
	os.MkdirAll(filepath.Join(sda, "sda1", "holders"), 0o755)
	dm := filepath.Join(devs, "virtual", "block", "dm-0")
	write(filepath.Join(dm, "dev"), "253:0\n")
	os.MkdirAll(filepath.Join(dm, "holders"), 0o755)
	loop := filepath.Join(devs, "virtual", "block", "loop0")
	write(filepath.Join(loop, "dev"), "7:0\n")
	write(filepath.Join(loop, "loop", "backing_file"), "/srv/disk.img\n")
	os.MkdirAll(filepath.Join(loop, "holders"), 0o755)
	os.MkdirAll(filepath.Join(sys, "dev", "block"), 0o755)
	for mm, dir := range map[string]string{"8:0": sda, "8:1": filepath.Join(sda, "sda1"), "253:0": dm, "7:0": loop} {
		if err := os.Symlink(dir, filepath.Join(sys, "dev", "block", mm)); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(proc, "self", "mountinfo"), "22 27 0:21 / /proc rw - proc proc rw\n"+mountinfo)
	write(filepath.Join(proc, "swaps"), "Filename\tType\tSize\tUsed\tPriority\n")
	return sysfs{root: sys, proc: proc}
}

func TestSysfsMedia(t *testing.T) {
	t.Parallel()
	s := fakeSys(t, "")
	m, err := s.media("/dev/sda", unix.Mkdev(8, 0), 960<<30)
	if err != nil {
		t.Fatal(err)
	}
	want := Media{Manufacturer: "ATA", Model: "ACME SSD 960", Serial: "S3Z9NB0K1", WWN: "naa.5002538e40a1b2c3",
		Type: "block device (disk)", Path: "/dev/sda", Device: "sda 8:0", Size: 960 << 30}
	if m != want {
		t.Fatalf("media %+v\nwant %+v", m, want)
	}
	p, err := s.media("/dev/sda1", unix.Mkdev(8, 1), 1)
	if err != nil || p.Type != "block device (partition)" || p.Serial != "S3Z9NB0K1" {
		t.Fatalf("partition media %+v %v", p, err)
	}
	l, err := s.media("/dev/loop0", unix.Mkdev(7, 0), 1)
	if err != nil || l.Type != "block device (loop)" || l.Serial != "" || !strings.Contains(l.Model, "/srv/disk.img") {
		t.Fatalf("loop media %+v %v", l, err)
	}
	if _, err := s.media("/dev/x", unix.Mkdev(9, 9), 1); err == nil {
		t.Fatal("unknown device accepted")
	}
}

func TestCheckNotInUse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		mountinfo string
		holder    bool
		dev       uint64
		inUse     bool
		mention   string
	}{
		{"idle", "", false, unix.Mkdev(8, 0), false, ""},
		{"disk mounted", "30 1 8:0 / /data rw - ext4 /dev/sda rw\n", false, unix.Mkdev(8, 0), true, "/data"},
		{"partition mounted", "30 1 8:1 / /boot rw - ext4 /dev/sda1 rw\n", false, unix.Mkdev(8, 0), true, "sda1"},
		{"holder of a partition mounted", "30 1 253:0 / /srv rw - xfs /dev/mapper/vg-srv rw\n", true, unix.Mkdev(8, 0), true, "dm-0"},
		{"holder not mounted", "", true, unix.Mkdev(8, 1), true, "held by dm-0"},
		{"disk whose partition is held", "", true, unix.Mkdev(8, 0), true, "dm-0 (holding sda1)"},
		{"other device mounted", "30 1 7:0 / /x rw - ext4 /dev/loop0 rw\n", false, unix.Mkdev(8, 0), false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := fakeSys(t, tc.mountinfo)
			if tc.holder {
				sda1 := filepath.Join(s.root, "dev", "block", "8:1")
				dir, _ := filepath.EvalSymlinks(sda1)
				os.Symlink(filepath.Join(s.root, "dev", "block", "253:0"), filepath.Join(dir, "holders", "dm-0"))
			}
			err := s.checkNotInUse("/dev/x", tc.dev)
			if errors.Is(err, ErrInUse) != tc.inUse {
				t.Fatalf("checkNotInUse: %v, in use %v", err, tc.inUse)
			}
			if tc.inUse && !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}
