//go:build linux

package devipmi

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOpenMissingDevice(t *testing.T) {
	paths := []string{filepath.Join(t.TempDir(), "ipmi0")}
	if _, err := os.Stat(DefaultPath); errors.Is(err, fs.ErrNotExist) {
		paths = append(paths, DefaultPath) // the development machine has no OpenIPMI driver
	}
	for _, p := range paths {
		_, err := Open(context.Background(), p, Options{})
		if err == nil {
			t.Fatalf("Open(%s) succeeded", p)
		}
		want := "open " + p + ": no such file — is ipmi_devintf loaded?"
		if !strings.Contains(err.Error(), want) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%s) = %q, want it to contain %q and match fs.ErrNotExist", p, err, want)
		}
	}
}

func TestOpenErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		errno unix.Errno
		want  string
	}{
		{unix.ENOENT, "is ipmi_devintf loaded?"},
		{unix.ENXIO, "is a system interface driver (ipmi_si, ipmi_ssif) loaded"},
		{unix.ENODEV, "is a system interface driver (ipmi_si, ipmi_ssif) loaded"},
		{unix.EACCES, "permission denied"},
		{unix.EIO, "open /dev/ipmi0: input/output error"},
	} {
		err := openError("/dev/ipmi0", tc.errno)
		if !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.errno) {
			t.Errorf("%v: %q, want %q and the errno wrapped", tc.errno, err, tc.want)
		}
	}
}

// TestOpenNotADevice opens a regular file: the driver ioctls fail with a
// clear error and nothing leaks.
func TestOpenNotADevice(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ipmi0")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), p, Options{})
	if err == nil || !errors.Is(err, unix.ENOTTY) || !strings.Contains(err.Error(), "IPMICTL_SET_GETS_EVENTS_CMD") {
		t.Fatalf("Open(regular file) = %v, want ENOTTY from IPMICTL_SET_GETS_EVENTS_CMD", err)
	}
}

// TestFileDeviceWake checks the eventfd wake-up of the real device type on
// a stand-in file descriptor (a pipe that never becomes readable).
func TestFileDeviceWake(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[1])
	wfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	d := &fileDevice{fd: p[0], wakeFD: wfd}
	d.wake()
	readable, err := d.poll()
	if err != nil || readable {
		t.Fatalf("poll after wake = %v, %v; want not readable, no error", readable, err)
	}
	if _, err := unix.Write(p[1], []byte{1}); err != nil {
		t.Fatal(err)
	}
	readable, err = d.poll()
	if err != nil || !readable {
		t.Fatalf("poll with data = %v, %v; want readable", readable, err)
	}
	if err := d.close(); err != nil {
		t.Fatal(err)
	}
	d.wake() // after close: must not touch the closed descriptor
	if err := d.close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
