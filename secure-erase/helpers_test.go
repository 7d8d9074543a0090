package secureerase

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTool skips (outside CI) or fails (in CI) a test whose real peer is
// missing.
func needTool(t *testing.T, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing; CI installs it (cryptsetup-bin, util-linux, e2fsprogs) and runs as root", what)
	}
	t.Skipf("%s is missing: skipping outside CI", what)
}

func haveCmd(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// loopDevice attaches a new sparse file of size bytes to a free loop device
// and detaches it when the test ends. With content, the file starts with it.
func loopDevice(t *testing.T, size int64, content []byte) (dev, backing string) {
	t.Helper()
	if testing.Short() {
		t.Skip("loop device test skipped in -short mode")
	}
	_, err := os.Stat("/dev/loop-control")
	needTool(t, "/dev/loop-control (loop devices, root)", err == nil && os.Geteuid() == 0)
	needTool(t, "losetup", haveCmd("losetup"))
	backing = filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(backing, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, size); err != nil {
		t.Fatal(err)
	}
	dev = run(t, "losetup", "--find", "--show", backing)
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v %s", dev, err, out)
		}
	})
	return dev, backing
}

// randomFile writes size random bytes to a new file and returns its path
// and content.
func randomFile(t *testing.T, dir, name string, size int) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func testSigner(t testing.TB) ed25519.PrivateKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// luks1Header builds a LUKS1 header by hand (as cryptsetup lays it out:
// key material of each slot from sector 8, 4000 stripes of a 64-byte key).
func luks1Header(keyBytes, stripes uint32, payloadSectors uint32) []byte {
	b := make([]byte, luks1HeaderSize)
	copy(b, luksMagic)
	binary.BigEndian.PutUint16(b[6:], 1)
	copy(b[8:], "aes")
	copy(b[40:], "xts-plain64")
	copy(b[72:], "sha256")
	binary.BigEndian.PutUint32(b[104:], payloadSectors)
	binary.BigEndian.PutUint32(b[108:], keyBytes)
	copy(b[168:], "0b5a3bcd-8bbf-4c0b-9a52-7d86e1a0c0de")
	slotSectors := (keyBytes*stripes + 511) / 512
	slotSectors = (slotSectors + 7) / 8 * 8
	for i := 0; i < luks1KeySlots; i++ {
		ks := b[luks1KeySlotOffset+i*luks1KeySlotSize:]
		state := uint32(luks1KeyDisabled)
		if i == 0 {
			state = luks1KeyActive
		}
		binary.BigEndian.PutUint32(ks[0:], state)
		binary.BigEndian.PutUint32(ks[40:], 8+uint32(i)*slotSectors)
		binary.BigEndian.PutUint32(ks[44:], stripes)
	}
	return b
}

// luks2Header builds a LUKS2 primary header with its JSON area by hand.
func luks2Header(hdrSize int, keyslots map[string][2]int64, dataOffset int64) []byte {
	b := make([]byte, hdrSize)
	copy(b, luksMagic)
	binary.BigEndian.PutUint16(b[6:], 2)
	binary.BigEndian.PutUint64(b[8:], uint64(hdrSize))
	copy(b[168:], "8fe4d7c4-3b32-47d6-9e5d-42f8025b7c0c")
	var ks []string
	for id, a := range keyslots {
		ks = append(ks, fmt.Sprintf(`%q:{"type":"luks2","key_size":64,"area":{"type":"raw","offset":"%d","size":"%d","encryption":"aes-xts-plain64","key_size":64}}`, id, a[0], a[1]))
	}
	js := fmt.Sprintf(`{"keyslots":{%s},"tokens":{},"segments":{"0":{"type":"crypt","offset":"%d","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":4096}},"digests":{},"config":{"json_size":"%d","keyslots_size":"16744448"}}`,
		strings.Join(ks, ","), dataOffset, hdrSize-4096)
	copy(b[4096:], js)
	return b
}

func allZero(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }
