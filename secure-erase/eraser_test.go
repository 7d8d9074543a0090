package secureerase

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

type testEraser struct {
	*Eraser
	pub   ed25519.PublicKey
	store *Store
	pl    *progressLog
}

func newTestEraser(t *testing.T, cfg Config) testEraser {
	t.Helper()
	priv := testSigner(t)
	cfg.Signer = priv
	cfg.Node = "node-a"
	cfg.Tool = Tool{Name: "hpiagent", Version: "test"}
	store, err := OpenStore(filepath.Join(t.TempDir(), "certs"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = store
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	pl := &progressLog{}
	if cfg.Progress == nil {
		cfg.Progress = pl.fn
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return testEraser{e, priv.Public().(ed25519.PublicKey), store, pl}
}

// checkCert verifies the signature and that the store returns the same.
func (te testEraser) checkCert(t *testing.T, c *Certificate, outcome string) {
	t.Helper()
	if c == nil {
		t.Fatal("no certificate")
	}
	if c.Outcome != outcome {
		t.Fatalf("outcome %s, want %s (error %q)", c.Outcome, outcome, c.Error)
	}
	if err := Verify(c, te.pub); err != nil {
		t.Fatal(err)
	}
	got, err := te.store.Load(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(got, te.pub); err != nil {
		t.Fatalf("stored certificate: %v", err)
	}
	if c.Node != "node-a" || c.Sanitization.Tool.Version != "test" || c.Started.IsZero() || c.Completed.Before(c.Started) {
		t.Fatalf("certificate fields %+v", c)
	}
}

func TestEraserRefusals(t *testing.T) {
	t.Parallel()
	te := newTestEraser(t, Config{})
	dir := t.TempDir()
	planned, plannedData := randomFile(t, dir, "planned", 10000)
	other, otherData := randomFile(t, dir, "other", 10000)
	plannedDir := filepath.Join(dir, "planned-dir")
	os.Mkdir(plannedDir, 0o700)
	linkToOther := filepath.Join(dir, "link-to-other")
	os.Symlink(other, linkToOther)
	linkToPlanned := filepath.Join(dir, "link-to-planned")
	os.Symlink(planned, linkToPlanned)
	plan := WipePlan{FRU: "{SYSTEM_CHASSIS,1}{PHYSICAL_SLOT,4}", Targets: []PlanTarget{
		{Path: planned, Kind: KindFile},
		{Path: plannedDir, Kind: KindFile}, // a directory the plan calls a file
	}}
	// A plan that names a file through a symbolic link: replacing a planned
	// file by a link must not redirect the erase.
	plannedLink := filepath.Join(dir, "planned-link")
	os.Symlink(other, plannedLink)
	linkPlan := WipePlan{FRU: "fru", Targets: []PlanTarget{{Path: plannedLink, Kind: KindFile}}}
	tests := []struct {
		name string
		plan WipePlan
		path string
		want error
	}{
		{"not in plan", plan, other, ErrNotInPlan},
		{"symlink to a file not in the plan", plan, linkToOther, ErrNotInPlan},
		{"missing path", plan, filepath.Join(dir, "nope"), os.ErrNotExist},
		{"kind differs", plan, plannedDir, ErrIdentityMismatch},
		{"plan names a symlink", linkPlan, plannedLink, ErrIdentityMismatch},
		{"plan names a symlink, asked by target", linkPlan, other, ErrIdentityMismatch},
	}
	for _, tc := range tests {
		c, err := te.Erase(context.Background(), tc.plan, tc.path)
		if !errors.Is(err, tc.want) || c != nil {
			t.Errorf("%s: Erase = %v, %v; want %v", tc.name, c, err, tc.want)
		}
	}
	for p, want := range map[string][]byte{planned: plannedData, other: otherData} {
		if got, _ := os.ReadFile(p); !bytes.Equal(got, want) {
			t.Fatalf("%s changed by a refused erase", p)
		}
	}
	// A symbolic link to a file that is in the plan names that file.
	c, err := te.Erase(context.Background(), plan, linkToPlanned)
	if err != nil {
		t.Fatal(err)
	}
	te.checkCert(t, c, OutcomeSuccess)
	if _, err := os.Stat(planned); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("planned file not unlinked: %v", err)
	}
	if ids, _ := te.store.List(); len(ids) != 1 || ids[0] != c.ID {
		t.Fatalf("store lists %v", ids)
	}
}

func TestPlanValidation(t *testing.T) {
	t.Parallel()
	te := newTestEraser(t, Config{})
	tests := []struct {
		name string
		plan WipePlan
	}{
		{"empty", WipePlan{}},
		{"relative", WipePlan{Targets: []PlanTarget{{Path: "x", Kind: KindFile}}}},
		{"bad kind", WipePlan{Targets: []PlanTarget{{Path: "/x", Kind: "tape"}}}},
		{"unknown method", WipePlan{Targets: []PlanTarget{{Path: "/dev/x", Kind: KindBlockDevice, Methods: []string{"degauss"}}}}},
		{"discard of a file", WipePlan{Targets: []PlanTarget{{Path: "/x", Kind: KindFile, Methods: []string{"blkdiscard"}}}}},
		{"serial of a file", WipePlan{Targets: []PlanTarget{{Path: "/x", Kind: KindFile, Serial: "S1"}}}},
	}
	for _, tc := range tests {
		if err := te.Validate(tc.plan); !errors.Is(err, ErrBadPlan) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if _, err := te.Erase(context.Background(), tc.plan, "/x"); !errors.Is(err, ErrBadPlan) {
			t.Errorf("%s: Erase: %v", tc.name, err)
		}
	}
}

func TestEraserFileOverwritesBeforeUnlink(t *testing.T) {
	t.Parallel()
	te := newTestEraser(t, Config{Overwrite: OverwriteConfig{Pattern: PatternZero}})
	dir := t.TempDir()
	p, orig := randomFile(t, dir, "token", 70000)
	// A hard link outside the plan shows what became of the data.
	witness := filepath.Join(dir, "witness")
	if err := os.Link(p, witness); err != nil {
		t.Fatal(err)
	}
	c, err := te.Erase(context.Background(), WipePlan{FRU: "fru", Targets: []PlanTarget{{Path: p, Kind: KindFile}}}, p)
	if err != nil {
		t.Fatal(err)
	}
	te.checkCert(t, c, OutcomeSuccess)
	got, _ := os.ReadFile(witness)
	if len(got) != len(orig) || !allZero(got) {
		t.Fatal("the file's data was not overwritten with zeros")
	}
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("file not unlinked")
	}
	if c.Media.Type != "file" || c.Sanitization.Method != "Overwrite" || c.Sanitization.Category != Clear ||
		!c.Sanitization.Verification.Passed || c.Sanitization.Verification.Bytes != 70000 {
		t.Fatalf("certificate %+v", c.Sanitization)
	}
	te.pl.check(t, "erase", "verify")
}

func TestEraserEmptyFile(t *testing.T) {
	t.Parallel()
	te := newTestEraser(t, Config{})
	p, _ := randomFile(t, t.TempDir(), "empty", 0)
	c, err := te.Erase(context.Background(), WipePlan{FRU: "fru", Targets: []PlanTarget{{Path: p, Kind: KindFile}}}, p)
	if err != nil {
		t.Fatal(err)
	}
	te.checkCert(t, c, OutcomeSuccess)
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("empty file not unlinked")
	}
}

func TestEraserDirectory(t *testing.T) {
	t.Parallel()
	te := newTestEraser(t, Config{})
	root := t.TempDir()
	outside := filepath.Join(root, "outside")
	os.Mkdir(outside, 0o700)
	outFile, outData := randomFile(t, outside, "keep", 5000)
	planned := filepath.Join(root, "cache")
	os.MkdirAll(filepath.Join(planned, "a", "b"), 0o700)
	var witnesses []string
	for i, rel := range []string{"k1", "a/k2", "a/b/k3", "a/b/empty"} {
		size := 3000 * (i + 1)
		if rel == "a/b/empty" {
			size = 0
		}
		p, _ := randomFile(t, planned, rel, size)
		w := filepath.Join(root, fmt.Sprintf("witness%d", i))
		os.Link(p, w)
		witnesses = append(witnesses, w)
	}
	// Links out of the directory: to a file, to a directory, dangling.
	os.Symlink(outFile, filepath.Join(planned, "link-file"))
	os.Symlink(outside, filepath.Join(planned, "a", "link-dir"))
	os.Symlink("/nonexistent", filepath.Join(planned, "a", "b", "dangling"))
	plan := WipePlan{FRU: "fru", Targets: []PlanTarget{{Path: planned, Kind: KindDirectory}}}
	c, err := te.Erase(context.Background(), plan, planned)
	if err != nil {
		t.Fatal(err)
	}
	te.checkCert(t, c, OutcomeSuccess)
	if _, err := os.Lstat(planned); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("planned directory still there: %v", err)
	}
	if got, _ := os.ReadFile(outFile); !bytes.Equal(got, outData) {
		t.Fatal("a file outside the directory was changed through a symbolic link")
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatal("directory outside removed through a symbolic link")
	}
	for _, w := range witnesses {
		b, _ := os.ReadFile(w)
		// Random pattern: the old bytes are gone (compare against the
		// witness content being a keystream, not the original).
		if len(b) > 0 && allZero(b) {
			t.Fatalf("%s: zeros, expected the random pattern", w)
		}
	}
	if c.Media.Type != "directory" || c.Media.Size != 3000+6000+9000 {
		t.Fatalf("media %+v", c.Media)
	}
}

func TestEraserBlockDeviceFallsBack(t *testing.T) {
	t.Parallel()
	content := bytes.Repeat([]byte("secret!"), 1<<20)
	dev, _ := loopDevice(t, 8<<20, content)
	te := newTestEraser(t, Config{Overwrite: OverwriteConfig{Verify: VerifySampled, Samples: 32}})
	plan := WipePlan{FRU: "{PICMG_FRONT_BLADE,0}{PHYSICAL_SLOT,5}", Targets: []PlanTarget{{Path: dev, Kind: KindBlockDevice}}}
	c, err := te.Erase(context.Background(), plan, dev)
	if err != nil {
		t.Fatal(err)
	}
	te.checkCert(t, c, OutcomeSuccess)
	var methods []string
	for _, a := range c.Sanitization.Attempts {
		methods = append(methods, a.Method)
	}
	// A loop device has no LUKS header and no secure discard.
	if fmt.Sprint(methods) != "[crypto-erase blksecdiscard blkdiscard]" {
		t.Fatalf("attempts %v", methods)
	}
	for _, a := range c.Sanitization.Attempts[:2] {
		if a.Error == "" || a.Result != nil {
			t.Fatalf("unsupported attempt recorded as %+v", a)
		}
	}
	if c.Media.Type != "block device (loop)" || c.Media.Size != 8<<20 || c.Sanitization.VerificationMethod != "sampled" {
		t.Fatalf("certificate media %+v sanitization %+v", c.Media, c.Sanitization)
	}
	b := make([]byte, 8<<20)
	f, _ := os.Open(dev)
	f.ReadAt(b, 0)
	f.Close()
	if !allZero(b) {
		t.Fatal("device does not read back zeros")
	}
	te.pl.check(t, "erase", "verify")
}

func TestEraserLUKSOnLoopDevice(t *testing.T) {
	t.Parallel()
	needTool(t, "cryptsetup", haveCmd("cryptsetup"))
	img := luksImage(t, "luks2", 20<<20)
	b, _ := os.ReadFile(img)
	dev, _ := loopDevice(t, int64(len(b)), b)
	te := newTestEraser(t, Config{})
	c, err := te.Erase(context.Background(), WipePlan{FRU: "fru", Targets: []PlanTarget{{Path: dev, Kind: KindBlockDevice}}}, dev)
	if err != nil {
		t.Fatal(err)
	}
	te.checkCert(t, c, OutcomeSuccess)
	if c.Sanitization.Method != "Cryptographic Erase" || c.Sanitization.Category != Purge || len(c.Sanitization.Attempts) != 1 {
		t.Fatalf("sanitization %+v", c.Sanitization)
	}
	if err := exec.Command("cryptsetup", "isLuks", dev).Run(); err == nil {
		t.Fatal("still LUKS")
	}
}

func TestEraserRefusesUnidentifiedDevice(t *testing.T) {
	t.Parallel()
	dev, _ := loopDevice(t, 1<<20, []byte("keep me"))
	te := newTestEraser(t, Config{})
	for _, pt := range []PlanTarget{
		{Path: dev, Kind: KindBlockDevice, Serial: "WD-123456"},
		{Path: dev, Kind: KindBlockDevice, WWN: "naa.5000c500a1b2c3d4"},
		{Path: dev, Kind: KindFile},
	} {
		c, err := te.Erase(context.Background(), WipePlan{FRU: "fru", Targets: []PlanTarget{pt}}, dev)
		if !errors.Is(err, ErrIdentityMismatch) || c != nil {
			t.Fatalf("%+v: %v", pt, err)
		}
	}
	b := make([]byte, 7)
	f, _ := os.Open(dev)
	f.Read(b)
	f.Close()
	if string(b) != "keep me" {
		t.Fatal("refused device changed")
	}
}

func TestEraserRefusesMountedDevice(t *testing.T) {
	t.Parallel()
	needTool(t, "mkfs.ext4 and mount", haveCmd("mkfs.ext4") && haveCmd("mount"))
	dev, _ := loopDevice(t, 16<<20, nil)
	run(t, "mkfs.ext4", "-q", "-F", dev)
	mnt := t.TempDir()
	run(t, "mount", dev, mnt)
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	os.WriteFile(filepath.Join(mnt, "data"), []byte("still here"), 0o600)
	te := newTestEraser(t, Config{})
	c, err := te.Erase(context.Background(), WipePlan{FRU: "fru", Targets: []PlanTarget{{Path: dev, Kind: KindBlockDevice}}}, dev)
	if !errors.Is(err, ErrInUse) || c != nil {
		t.Fatalf("Erase of a mounted device: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "data")); err != nil || string(b) != "still here" {
		t.Fatalf("mounted file system damaged: %q %v", b, err)
	}
}

func TestEraserCancel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, _ := randomFile(t, dir, "big", 4<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	te := newTestEraser(t, Config{
		Overwrite: OverwriteConfig{BlockSize: 64 << 10, ProgressInterval: 1},
		Progress: func(pr Progress) {
			if pr.Done > 1<<20 {
				cancel()
			}
		},
	})
	c, err := te.Erase(ctx, WipePlan{FRU: "fru", Targets: []PlanTarget{{Path: p, Kind: KindFile}}}, p)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Erase: %v", err)
	}
	te.checkCert(t, c, OutcomeFailed)
	if c.Error == "" || len(c.Sanitization.Attempts) != 1 || c.Sanitization.Attempts[0].Result == nil ||
		c.Sanitization.Attempts[0].Result.Bytes == 0 || c.Sanitization.Attempts[0].Result.Bytes >= 4<<20 {
		t.Fatalf("partial result not recorded: %+v", c.Sanitization.Attempts)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal("a file whose erase was cancelled must not be unlinked")
	}
}

// TestCertificateSignature signs with ed25519 and ECDSA P-256 and checks
// that changing any field, the signature or the key makes Verify fail.
func TestCertificateSignature(t *testing.T) {
	t.Parallel()
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edKey := testSigner(t)
	base := func() *Certificate {
		return &Certificate{ID: "0123456789abcdef0123456789abcdef", FRU: "{PHYSICAL_SLOT,4}", Node: "n1",
			PerformedBy: Person{Name: "hpiagent on n1", Organization: "ops"},
			Media:       Media{Manufacturer: "ACME", Model: "SSD", Serial: "S1", Type: "block device (disk)", Path: "/dev/sda", Size: 1 << 30},
			Target:      "/dev/sda", Outcome: OutcomeSuccess, Destination: "internal reuse",
			Sanitization: Sanitization{Category: Purge, Method: "Cryptographic Erase", Technique: "t",
				Tool: Tool{"hpiagent", "1.0"}, VerificationMethod: "full",
				Verification: Verification{Method: "full", Bytes: 10, Passed: true, Detail: "ok"},
				Attempts:     []Attempt{{Method: "crypto-erase", Result: &Result{Method: "crypto-erase", Bytes: 10}}}}}
	}
	signers := map[string]struct {
		sign func(*Certificate) error
		pub  any
	}{
		"ed25519": {func(c *Certificate) error { return c.Sign(edKey) }, edKey.Public()},
		"ecdsa":   {func(c *Certificate) error { return c.Sign(ecKey) }, &ecKey.PublicKey},
	}
	for name, s := range signers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := base()
			if err := s.sign(c); err != nil {
				t.Fatal(err)
			}
			if err := Verify(c, s.pub); err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(c)
			var tree map[string]any
			json.Unmarshal(raw, &tree)
			// Round trip through JSON keeps it valid.
			var rt Certificate
			json.Unmarshal(raw, &rt)
			if err := Verify(&rt, s.pub); err != nil {
				t.Fatalf("after a JSON round trip: %v", err)
			}
			n := 0
			mutateLeaves(tree, func(apply func()) {
				apply()
				b, _ := json.Marshal(tree)
				var m Certificate
				if err := json.Unmarshal(b, &m); err == nil {
					if err := Verify(&m, s.pub); err == nil {
						t.Errorf("a changed certificate verifies: %s", b)
					}
				}
				n++
			})
			if n < 20 {
				t.Fatalf("only %d fields mutated", n)
			}
			other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err := Verify(c, &other.PublicKey); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("verify with another key: %v", err)
			}
			c.Signature = nil
			if err := Verify(c, s.pub); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("verify unsigned: %v", err)
			}
		})
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err := base().Sign(p384); err == nil {
		t.Fatal("signed with P-384")
	}
}

// mutateLeaves calls visit once per leaf of a JSON tree with a function that
// changes that leaf; the change is undone after visit returns.
func mutateLeaves(node any, visit func(apply func())) {
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			switch v.(type) {
			case map[string]any, []any:
				mutateLeaves(v, visit)
				continue
			}
			old := v
			visit(func() { n[k] = mutated(old) })
			n[k] = old
		}
	case []any:
		for i, v := range n {
			switch v.(type) {
			case map[string]any, []any:
				mutateLeaves(v, visit)
				continue
			}
			old := v
			visit(func() { n[i] = mutated(old) })
			n[i] = old
		}
	}
}

func mutated(v any) any {
	switch x := v.(type) {
	case string:
		if x == "" {
			return "x"
		}
		// Keep base64 and time values decodable: change one character to
		// another valid one.
		b := []byte(x)
		if b[0] == 'A' {
			b[0] = 'B'
		} else if b[0] >= '0' && b[0] <= '8' {
			b[0]++
		} else {
			b[0] = 'A'
		}
		return string(b)
	case float64:
		return x + 1
	case bool:
		return !x
	case nil:
		return "x"
	}
	return v
}
