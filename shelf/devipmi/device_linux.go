//go:build linux

package devipmi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fileDevice is /dev/ipmiN plus an eventfd that wakes the owner goroutine
// out of poll(2).
type fileDevice struct {
	fd int
	// mu guards wakeFD against use after close (the number could be
	// reused by an unrelated file).
	mu     sync.RWMutex
	wakeFD int
	closed bool
}

// openDevice opens the OpenIPMI character device at path.
func openDevice(path string) (device, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, openError(path, err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open %s: create eventfd: %w", path, err)
	}
	return &fileDevice{fd: fd, wakeFD: wfd}, nil
}

// openError explains the usual reasons why the device cannot be opened.
func openError(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("open %s: no such file — is ipmi_devintf loaded? (%w)", path, err)
	case errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENODEV):
		return fmt.Errorf("open %s: no IPMI interface behind the device node — is a system interface driver (ipmi_si, ipmi_ssif) loaded and did it find the controller? (%w)", path, err)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("open %s: permission denied — the agent needs read/write access to the device (%w)", path, err)
	default:
		return fmt.Errorf("open %s: %w", path, err)
	}
}

func (d *fileDevice) ioctl(op uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(d.fd), op, uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		default:
			return errno
		}
	}
}

func (d *fileDevice) poll() (bool, error) {
	fds := []unix.PollFd{
		{Fd: int32(d.fd), Events: unix.POLLIN},
		{Fd: int32(d.wakeFD), Events: unix.POLLIN},
	}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("poll: %w", err)
		}
		break
	}
	if fds[1].Revents&unix.POLLIN != 0 {
		var b [8]byte
		_, _ = unix.Read(d.wakeFD, b[:]) // reset the counter; EAGAIN is fine
	}
	if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
		return false, fmt.Errorf("poll: device reported revents 0x%x (interface removed?)", fds[0].Revents)
	}
	return fds[0].Revents&unix.POLLIN != 0, nil
}

func (d *fileDevice) wake() {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1) // eventfd takes a native-endian uint64
	_, _ = unix.Write(d.wakeFD, one[:])
}

func (d *fileDevice) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	unix.Close(d.wakeFD)
	return unix.Close(d.fd)
}
