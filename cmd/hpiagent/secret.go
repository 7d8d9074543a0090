package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/term"
)

// SecretReader reads the secrets a configuration refers to. The secret
// itself never appears in an error or a log line; an error names the key
// of the reference and its line in the configuration.
type SecretReader struct {
	// LookupEnv finds $CREDENTIALS_DIRECTORY. Default: os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Prompt asks for a secret described by what on a terminal. Default:
	// none, so a prompt reference is an error (no terminal, e.g. under
	// systemd or in CI). See TerminalPrompt.
	Prompt func(what string) ([]byte, error)

	mu       sync.Mutex
	prompted map[string][]byte // by key: a reload does not ask again
}

// ReadSecret returns the secret that ref points at; see SecretReader.
func ReadSecret(ref SecretRef, lookupEnv func(string) (string, bool)) ([]byte, error) {
	r := &SecretReader{LookupEnv: lookupEnv}
	return r.Read(ref)
}

// Read returns the secret ref points at. A file readable or writable by
// group or others is refused, as is a credential name that tries to leave
// the credentials directory.
func (r *SecretReader) Read(ref SecretRef) ([]byte, error) {
	b, err := r.read(ref)
	if err != nil {
		if ref.key != "" {
			return nil, &ConfigError{Line: ref.line, Key: ref.key, Err: err}
		}
		return nil, err
	}
	return b, nil
}

func (r *SecretReader) read(ref SecretRef) ([]byte, error) {
	switch {
	case ref.sources() > 1:
		return nil, errors.New("set exactly one of credential, file or prompt")
	case ref.Credential != "":
		lookup := r.LookupEnv
		if lookup == nil {
			lookup = os.LookupEnv
		}
		dir, ok := lookup("CREDENTIALS_DIRECTORY")
		if !ok || dir == "" {
			return nil, fmt.Errorf("credential %q: $CREDENTIALS_DIRECTORY is not set (run under systemd with LoadCredential= or use file:)", ref.Credential)
		}
		if strings.ContainsRune(ref.Credential, '/') || ref.Credential == "." || ref.Credential == ".." {
			return nil, fmt.Errorf("credential %q: not a plain credential name", ref.Credential)
		}
		return readSecretFile(filepath.Join(dir, ref.Credential), false)
	case ref.File != "":
		return readSecretFile(ref.File, true)
	case ref.Prompt:
		r.mu.Lock()
		defer r.mu.Unlock()
		if b, ok := r.prompted[ref.key]; ok {
			return bytes.Clone(b), nil
		}
		if r.Prompt == nil {
			return nil, errors.New("prompt: no terminal to ask on (stdin is not a terminal); use a credential or a file")
		}
		what := ref.key
		if what == "" {
			what = "secret"
		}
		b, err := r.Prompt(what)
		if err != nil {
			return nil, fmt.Errorf("prompt: %w", err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, errors.New("prompt: empty answer")
		}
		if r.prompted == nil {
			r.prompted = map[string][]byte{}
		}
		r.prompted[ref.key] = bytes.Clone(b)
		return b, nil
	default:
		return nil, errNoSecretSource
	}
}

// TerminalPrompt returns a prompt function reading without echo from the
// terminal on stdin, or nil when stdin is not a terminal.
func TerminalPrompt(stdin *os.File, w io.Writer) func(string) ([]byte, error) {
	fd := int(stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil
	}
	return func(what string) ([]byte, error) {
		fmt.Fprintf(w, "hpiagent: %s: ", what)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(w)
		return b, err
	}
}

// maxSecretLen bounds a secret file; passwords, keys and PEM private keys
// are short.
const maxSecretLen = 16384

func readSecretFile(path string, checkMode bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading secret: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading secret %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("reading secret %s: not a regular file", path)
	}
	if checkMode && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("refusing secret file %s: mode %04o lets group or others access it; chmod 600 it", path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretLen+1))
	if err != nil {
		return nil, fmt.Errorf("reading secret %s: %w", path, err)
	}
	if len(b) > maxSecretLen {
		return nil, fmt.Errorf("secret file %s is larger than %d bytes", path, maxSecretLen)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("secret file %s is empty", path)
	}
	return b, nil
}

// Secrets are the secrets of a configuration, read once at start and
// again at reload. Its String method never shows them.
type Secrets struct {
	// ShelfPasswords are by shelf name.
	ShelfPasswords map[string][]byte
	// APIKey is the PEM private key of the API certificate.
	APIKey []byte
	// PETAuth and PETPriv are the passphrases of pet.users by name.
	PETAuth, PETPriv map[string][]byte
	// PETCommunities are the allowed v1/v2c communities.
	PETCommunities [][]byte
}

// String keeps secrets out of logs and errors.
func (s *Secrets) String() string { return "Secrets(REDACTED)" }

// ReadSecrets reads every secret c refers to. The first one that cannot
// be read is an error naming its key and line.
func (c *Config) ReadSecrets(r *SecretReader) (*Secrets, error) {
	s := &Secrets{ShelfPasswords: map[string][]byte{}, PETAuth: map[string][]byte{}, PETPriv: map[string][]byte{}}
	for _, sh := range c.Shelves {
		b, err := r.Read(sh.Password)
		if err != nil {
			return nil, err
		}
		s.ShelfPasswords[sh.Name] = b
	}
	if c.API.Listen != "" {
		b, err := r.Read(c.API.TLS.Key)
		if err != nil {
			return nil, err
		}
		s.APIKey = b
	}
	if c.PET.Listen != "" {
		for _, u := range c.PET.Users {
			if u.AuthPassphrase.IsSet() {
				b, err := r.Read(u.AuthPassphrase)
				if err != nil {
					return nil, err
				}
				s.PETAuth[u.Name] = b
			}
			if u.PrivPassphrase.IsSet() {
				b, err := r.Read(u.PrivPassphrase)
				if err != nil {
					return nil, err
				}
				s.PETPriv[u.Name] = b
			}
		}
		for _, ref := range c.PET.Communities {
			b, err := r.Read(ref)
			if err != nil {
				return nil, err
			}
			s.PETCommunities = append(s.PETCommunities, b)
		}
	}
	return s, nil
}
