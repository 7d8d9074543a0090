package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ReadSecret returns the secret that ref points at. The secret itself never
// appears in an error. A file readable or writable by group or others is
// refused, as is a credential name that tries to leave the credentials
// directory.
func ReadSecret(ref SecretRef, lookupEnv func(string) (string, bool)) ([]byte, error) {
	switch {
	case ref.Credential != "":
		dir, ok := lookupEnv("CREDENTIALS_DIRECTORY")
		if !ok || dir == "" {
			return nil, fmt.Errorf("credential %q: $CREDENTIALS_DIRECTORY is not set (run under systemd with LoadCredential= or use file:)", ref.Credential)
		}
		if strings.ContainsRune(ref.Credential, '/') || ref.Credential == "." || ref.Credential == ".." {
			return nil, fmt.Errorf("credential %q: not a plain credential name", ref.Credential)
		}
		return readSecretFile(filepath.Join(dir, ref.Credential), false)
	case ref.File != "":
		return readSecretFile(ref.File, true)
	default:
		return nil, errors.New("no secret source configured")
	}
}

// maxSecretLen bounds a secret file; passwords and keys are short.
const maxSecretLen = 4096

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
