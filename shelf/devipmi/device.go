package devipmi

import "unsafe"

// device is the OpenIPMI character device as the owner goroutine uses it.
// The real one is a file descriptor (device_linux.go); tests use an
// in-process stand-in for the driver. Only the owner goroutine calls ioctl,
// poll and close; wake may be called from any goroutine, also after close.
type device interface {
	// ioctl issues request op with argument arg (a pointer to the
	// structure op expects) and returns the errno as error.
	ioctl(op uintptr, arg unsafe.Pointer) error
	// poll blocks until the driver has a message to receive (readable) or
	// wake was called (not readable). A wake that happens before poll makes
	// the next poll return at once.
	poll() (readable bool, err error)
	// wake makes a blocked or the next poll return.
	wake()
	// close releases the device.
	close() error
}
