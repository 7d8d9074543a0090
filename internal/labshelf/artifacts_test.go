package labshelf

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"
)

// TestArtifactsUpToDate rebuilds the generated lab files (SDR commands, main
// SDR repositories, FRU images) from their sources with regen.sh and compares
// them with the embedded ones, so an edited source without regenerated
// artefacts fails here.
func TestArtifactsUpToDate(t *testing.T) {
	RequireTools(t, "sdrcomp", "python3", "bash")
	dir := t.TempDir()
	var generated []string
	err := fs.WalkDir(labFiles, "lab", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if path.Dir(p) == "lab/gen" || path.Ext(p) == ".bin" {
			generated = append(generated, p)
			return nil // must be rebuilt, not copied
		}
		b, err := labFiles.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(generated) < 10 {
		t.Fatalf("only %d generated files embedded: %v", len(generated), generated)
	}
	out, err := exec.Command("bash", "regen.sh", filepath.Join(dir, "lab")).CombinedOutput()
	if err != nil {
		t.Fatalf("regen.sh: %v\n%s", err, out)
	}
	for _, p := range generated {
		want, _ := labFiles.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			t.Errorf("regen.sh did not write %s: %v", p, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what regen.sh builds from the sources; run regen.sh", p)
		}
	}
}
