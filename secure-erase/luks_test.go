package secureerase

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

func TestParseLUKSHeader(t *testing.T) {
	t.Parallel()
	l1 := luks1Header(64, 4000, 4096)
	l2 := luks2Header(16384, map[string][2]int64{"0": {32768, 258048}, "3": {290816, 258048}}, 16<<20)
	tests := []struct {
		name     string
		buf      []byte
		size     int64
		wantErr  bool
		notLUKS  bool
		version  int
		slots    []Region
		headers  int
		dataOffs int64
	}{
		{"luks1", l1, 4 << 20, false, false, 1, []Region{{8 * 512, 256000, ""}, {(8 + 504) * 512, 256000, ""}}, 1, 4096 * 512},
		{"luks2", l2, 32 << 20, false, false, 2, []Region{{32768, 258048, ""}, {290816, 258048, ""}}, 2, 16 << 20},
		{"zeros", make([]byte, 4096), 0, true, true, 0, nil, 0, 0},
		{"short", []byte("LUK"), 0, true, true, 0, nil, 0, 0},
		{"luks1 truncated", l1[:300], 0, true, false, 0, nil, 0, 0},
		{"luks2 without JSON area", l2[:4096], 0, true, false, 0, nil, 0, 0},
		{"luks1 beyond the end", l1, 1 << 20, true, false, 0, nil, 0, 0},
		{"version 3", func() []byte { b := append([]byte(nil), l1...); b[7] = 3; return b }(), 0, true, false, 0, nil, 0, 0},
		{"luks1 bad slot state", func() []byte {
			b := append([]byte(nil), l1...)
			binary.BigEndian.PutUint32(b[luks1KeySlotOffset:], 7)
			return b
		}(), 0, true, false, 0, nil, 0, 0},
		{"luks1 slot over header", func() []byte {
			b := append([]byte(nil), l1...)
			binary.BigEndian.PutUint32(b[luks1KeySlotOffset+40:], 0)
			return b
		}(), 0, true, false, 0, nil, 0, 0},
		{"luks2 slot in header", luks2Header(16384, map[string][2]int64{"0": {4096, 100}}, 16<<20), 0, true, false, 0, nil, 0, 0},
		{"luks2 slot over data", luks2Header(16384, map[string][2]int64{"0": {32768, 16 << 20}}, 16<<20), 0, true, false, 0, nil, 0, 0},
		{"luks2 bad JSON", func() []byte { b := append([]byte(nil), l2...); b[4096] = 'x'; return b }(), 0, true, false, 0, nil, 0, 0},
		{"luks2 bad hdr size", func() []byte {
			b := append([]byte(nil), l2...)
			binary.BigEndian.PutUint64(b[8:], 5000)
			return b
		}(), 0, true, false, 0, nil, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseLUKSHeader(tc.buf, tc.size)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", h)
				}
				if errors.Is(err, ErrNotLUKS) != tc.notLUKS {
					t.Fatalf("error %v: ErrNotLUKS %v, want %v", err, errors.Is(err, ErrNotLUKS), tc.notLUKS)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Version != tc.version || len(h.Headers) != tc.headers || h.DataOffset != tc.dataOffs {
				t.Fatalf("header %+v", h)
			}
			if tc.version == 1 && len(h.KeySlots) != 8 {
				t.Fatalf("LUKS1: %d key slots, want 8", len(h.KeySlots))
			}
			for i, want := range tc.slots {
				if h.KeySlots[i].Offset != want.Offset || h.KeySlots[i].Length != want.Length {
					t.Fatalf("slot %d: %+v, want %d+%d", i, h.KeySlots[i], want.Offset, want.Length)
				}
			}
		})
	}
}

// TestParseLUKSHeaderMatchesCryptsetup compares the parser with
// cryptsetup luksDump on volumes cryptsetup formatted.
func TestParseLUKSHeaderMatchesCryptsetup(t *testing.T) {
	t.Parallel()
	needTool(t, "cryptsetup", haveCmd("cryptsetup"))
	for _, typ := range []string{"luks1", "luks2"} {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			img := luksImage(t, typ, 20<<20)
			dump := run(t, "cryptsetup", "luksDump", img)
			b, _ := os.ReadFile(img)
			h, err := ParseLUKSHeader(b[:luksMaxJSONAreaSize], int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`UUID:\s*` + regexp.QuoteMeta(h.UUID)).MatchString(dump) {
				t.Fatalf("UUID %q not in luksDump:\n%s", h.UUID, dump)
			}
			if typ == "luks1" {
				m := regexp.MustCompile(`Key material offset:\s*(\d+)`).FindAllStringSubmatch(dump, -1)
				if len(m) != 1 {
					t.Fatalf("luksDump lists %d key material offsets, want the one enabled slot's", len(m))
				}
				for i, s := range m {
					sec, _ := strconv.ParseInt(s[1], 10, 64)
					if h.KeySlots[i].Offset != sec*512 {
						t.Errorf("slot %d at %d, cryptsetup says sector %d", i, h.KeySlots[i].Offset, sec)
					}
				}
				if p := regexp.MustCompile(`Payload offset:\s*(\d+)`).FindStringSubmatch(dump); p == nil || strconv.FormatInt(h.DataOffset/512, 10) != p[1] {
					t.Errorf("data offset %d, luksDump %v", h.DataOffset, p)
				}
				return
			}
			off := regexp.MustCompile(`Area offset:\s*(\d+)`).FindStringSubmatch(dump)
			length := regexp.MustCompile(`Area length:\s*(\d+)`).FindStringSubmatch(dump)
			if off == nil || length == nil || len(h.KeySlots) != 1 ||
				strconv.FormatInt(h.KeySlots[0].Offset, 10) != off[1] || strconv.FormatInt(h.KeySlots[0].Length, 10) != length[1] {
				t.Fatalf("key slots %+v, luksDump area %v %v", h.KeySlots, off, length)
			}
			if md := regexp.MustCompile(`Metadata area:\s*(\d+)`).FindStringSubmatch(dump); md == nil || strconv.FormatInt(h.Headers[0].Length, 10) != md[1] {
				t.Fatalf("header area %d, luksDump %v", h.Headers[0].Length, md)
			}
		})
	}
}

// luksImage formats a file with cryptsetup (fast PBKDF) and returns it.
func luksImage(t *testing.T, typ string, size int64) string {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, typ+".img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	kf := filepath.Join(dir, "key")
	os.WriteFile(kf, []byte("correct horse battery staple"), 0o600)
	args := []string{"luksFormat", "--batch-mode", "--type", typ, "--pbkdf-force-iterations", "1000", "--key-file", kf, img}
	if typ == "luks2" {
		args = append(args[:4], append([]string{"--pbkdf", "pbkdf2"}, args[4:]...)...)
	}
	run(t, "cryptsetup", args...)
	return img
}

func FuzzParseLUKSHeader(f *testing.F) {
	f.Add(luks1Header(64, 4000, 4096), int64(4<<20))
	f.Add(luks1Header(32, 4000, 2056), int64(0))
	f.Add(luks2Header(16384, map[string][2]int64{"0": {32768, 258048}}, 16<<20), int64(32<<20))
	f.Add(luks2Header(16384, map[string][2]int64{"1": {32768, 258048}, "x": {290816, 1}}, 0), int64(0))
	f.Add([]byte("LUKS\xba\xbe\x00\x02"), int64(0))
	f.Add([]byte{}, int64(-1))
	f.Fuzz(func(t *testing.T, buf []byte, size int64) {
		h, err := ParseLUKSHeader(buf, size)
		if err != nil {
			return
		}
		for _, r := range h.Regions() {
			if r.Offset < 0 || r.Length <= 0 || r.End() < r.Offset {
				t.Fatalf("accepted region %+v", r)
			}
			if size > 0 && r.End() > size {
				t.Fatalf("region %+v beyond size %d", r, size)
			}
		}
	})
}
