//go:build mips || mipsle || mips64 || mips64le || ppc || ppc64 || ppc64le || sparc || sparc64

package devipmi

// The ioctl encoding of MIPS, PowerPC and SPARC (arch/*/include/uapi/asm/ioctl.h):
// 13 size bits and 3 direction bits.
const (
	iocSizeBits = 13
	iocWrite    = 4
	iocRead     = 2
)
