package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// File names inside a PKI directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// CertFile and KeyFile return the paths Cert.Save uses for name in dir.
func CertFile(dir, name string) string { return filepath.Join(dir, name+".crt") }

// KeyFile returns the path of name's key in dir.
func KeyFile(dir, name string) string { return filepath.Join(dir, name+".key") }

// Save writes ca.crt (0644) and ca.key (0600) into dir, creating dir
// (0700) if needed. It never overwrites a file.
func (ca *CA) Save(dir string) error {
	if ca.Key == nil {
		return errors.New("saving CA: no key to save")
	}
	return saveKeyPair(dir, CACertFile, CAKeyFile, ca.Cert, ca.Key)
}

// Save writes <name>.crt (0644) and <name>.key (0600) into dir, creating
// dir (0700) if needed. It never overwrites a file.
func (c *Cert) Save(dir string) error {
	name := c.Name()
	if err := ValidName(name); err != nil {
		return fmt.Errorf("saving certificate: %w", err)
	}
	return saveKeyPair(dir, name+".crt", name+".key", c.Cert, c.Key)
}

func saveKeyPair(dir, certName, keyName string, cert *x509.Certificate, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding key %s: %w", keyName, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating PKI directory %s: %w", dir, err)
	}
	// Key first: a certificate without its key is harmless, the reverse
	// would leave an unusable pair that blocks a retry.
	keyPath, certPath := filepath.Join(dir, keyName), filepath.Join(dir, certName)
	for _, p := range []string{keyPath, certPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("saving %s: %s already exists; not overwriting", certName, p)
		}
	}
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	if err := writeNew(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		os.Remove(keyPath)
		return err
	}
	return nil
}

// writeNew creates path (failing if it exists) with exactly mode perm,
// whatever the umask, and syncs it.
func writeNew(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("setting mode of %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", path, err)
	}
	return nil
}

// LoadCA reads ca.crt from dir, and ca.key when present (a node's copy of
// the PKI holds only ca.crt).
func LoadCA(dir string) (*CA, error) {
	cert, err := LoadCACert(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, CAKeyFile)
	if _, err := os.Lstat(keyPath); errors.Is(err, os.ErrNotExist) {
		return &CA{Cert: cert}, nil
	}
	kp, err := LoadKeyPair(filepath.Join(dir, CACertFile), keyPath)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: kp.Key}, nil
}

// LoadCACert reads a CA certificate file (one PEM certificate that is a CA).
func LoadCACert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	cert, err := parseCertPEM(b)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", path, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("CA certificate %s: not a CA certificate", path)
	}
	return cert, nil
}

// LoadCert reads <name>.crt and <name>.key from dir.
func LoadCert(dir, name string) (*Cert, error) {
	if err := ValidName(name); err != nil {
		return nil, fmt.Errorf("loading certificate: %w", err)
	}
	return LoadKeyPair(CertFile(dir, name), KeyFile(dir, name))
}

// LoadKeyPair reads a PEM certificate and its PEM private key from two
// files, checks that they belong together, and refuses a key file that
// group or others may access.
func LoadKeyPair(certPath, keyPath string) (*Cert, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err)
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key %s has mode %04o: group or others may read it; use chmod 600", keyPath, perm)
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	// tls.X509KeyPair checks that the key matches the certificate; its
	// errors never include key material.
	pair, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return nil, fmt.Errorf("loading key pair %s / %s: %w", certPath, keyPath, err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key %s: not a signing key", keyPath)
	}
	return &Cert{Cert: pair.Leaf, Key: signer}, nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	if len(rest) > 0 {
		if next, _ := pem.Decode(rest); next != nil {
			return nil, errors.New("more than one PEM block")
		}
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate: %w", err)
	}
	return cert, nil
}
