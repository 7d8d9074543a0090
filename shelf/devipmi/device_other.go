//go:build !linux

package devipmi

import "fmt"

func openDevice(path string) (device, error) {
	return nil, fmt.Errorf("open %s: the OpenIPMI device interface exists only on Linux", path)
}
