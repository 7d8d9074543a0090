//go:build !(mips || mipsle || mips64 || mips64le || ppc || ppc64 || ppc64le || sparc || sparc64)

package devipmi

// The generic ioctl encoding of include/uapi/asm-generic/ioctl.h (x86,
// arm, arm64, riscv, loongarch, s390).
const (
	iocSizeBits = 14
	iocWrite    = 1
	iocRead     = 2
)
