package secureerase

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Store keeps signed certificates as JSON files in a directory (mode 0700,
// files 0600) for the API to serve.
type Store struct {
	dir string
}

// ErrNoCertificate says a certificate ID is unknown.
var ErrNoCertificate = errors.New("no such certificate")

var certIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// OpenStore opens (creating it if needed) the certificate directory.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certificate store %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

// Save writes c atomically (temporary file, fsync, rename).
func (s *Store) Save(c *Certificate) error {
	if !certIDPattern.MatchString(c.ID) {
		return fmt.Errorf("saving certificate %q: malformed ID", c.ID)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("saving certificate %s: %w", c.ID, err)
	}
	tmp, err := os.CreateTemp(s.dir, ".cert-*")
	if err != nil {
		return fmt.Errorf("saving certificate %s: %w", c.ID, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(s.dir, c.ID+".json"))
	}
	if err != nil {
		return fmt.Errorf("saving certificate %s: %w", c.ID, err)
	}
	return nil
}

// Load reads the certificate with the given ID. It does not verify the
// signature; callers use Verify with the node's public key.
func (s *Store) Load(id string) (*Certificate, error) {
	if !certIDPattern.MatchString(id) {
		return nil, fmt.Errorf("loading certificate %q: %w", id, ErrNoCertificate)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, id+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("loading certificate %s: %w", id, ErrNoCertificate)
	}
	if err != nil {
		return nil, fmt.Errorf("loading certificate %s: %w", id, err)
	}
	var c Certificate
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("loading certificate %s: %w", id, err)
	}
	return &c, nil
}

// List returns the IDs of the stored certificates, sorted.
func (s *Store) List() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("listing certificates: %w", err)
	}
	var ids []string
	for _, e := range entries {
		name := e.Name()
		if id, ok := strings.CutSuffix(name, ".json"); ok && certIDPattern.MatchString(id) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}
