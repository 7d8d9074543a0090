package watchdog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// BootIDFile is where Linux gives the current boot's random ID.
const BootIDFile = "/proc/sys/kernel/random/boot_id"

// SelfFenceMark keeps a self-fence decision across restarts of the agent
// within one boot of the node. Without it, systemd restarting an agent
// whose pings stopped would arm and feed the watchdogs again, and a node
// the majority counts as reset would live on. The mark names the boot it
// was written in; after a reboot it is stale and removed.
type SelfFenceMark struct {
	// Path is the file. Required; its directory must exist and be the
	// agent's own (the cluster's data directory).
	Path string
	// BootID returns the current boot's ID. Default: read BootIDFile.
	BootID func() (string, error)
}

// markRecord is the file's content.
type markRecord struct {
	BootID string    `json:"boot_id"`
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
}

func (m SelfFenceMark) bootID() (string, error) {
	if m.BootID != nil {
		return m.BootID()
	}
	b, err := os.ReadFile(BootIDFile)
	if err != nil {
		return "", fmt.Errorf("reading the boot ID: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("%s is empty", BootIDFile)
	}
	return id, nil
}

// Write records the decision taken at with reason, durably: written to a
// temporary file, synced, renamed over Path, and the directory synced.
func (m SelfFenceMark) Write(at time.Time, reason string) error {
	id, err := m.bootID()
	if err != nil {
		return fmt.Errorf("watchdog: writing the self-fence mark %s: %w", m.Path, err)
	}
	b, err := json.Marshal(markRecord{BootID: id, Time: at.UTC(), Reason: reason})
	if err != nil {
		return fmt.Errorf("watchdog: writing the self-fence mark %s: %w", m.Path, err)
	}
	tmp := m.Path + ".tmp"
	if err := writeSynced(tmp, append(b, '\n')); err != nil {
		return fmt.Errorf("watchdog: writing the self-fence mark %s: %w", m.Path, err)
	}
	if err := os.Rename(tmp, m.Path); err != nil {
		return fmt.Errorf("watchdog: writing the self-fence mark %s: %w", m.Path, err)
	}
	d, err := os.Open(filepath.Dir(m.Path))
	if err != nil {
		return fmt.Errorf("watchdog: syncing the directory of the self-fence mark %s: %w", m.Path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("watchdog: syncing the directory of the self-fence mark %s: %w", m.Path, err)
	}
	return nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Read returns the reason of a self-fence decided earlier in this boot
// (ok true), with when it was decided. A mark of an earlier boot is
// removed (the node was reset: the decision is done) and reads as none.
// A mark that cannot be parsed is an error: whether the node must stay
// fenced cannot be known, and the agent must not start feeding.
func (m SelfFenceMark) Read() (reason string, at time.Time, ok bool, err error) {
	b, err := os.ReadFile(m.Path)
	if errors.Is(err, os.ErrNotExist) {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, fmt.Errorf("watchdog: reading the self-fence mark %s: %w", m.Path, err)
	}
	rec, err := parseMark(b)
	if err != nil {
		return "", time.Time{}, false, fmt.Errorf("watchdog: the self-fence mark %s: %w (after checking that this node may run, remove it)", m.Path, err)
	}
	id, err := m.bootID()
	if err != nil {
		return "", time.Time{}, false, fmt.Errorf("watchdog: reading the self-fence mark %s: %w", m.Path, err)
	}
	if rec.BootID != id {
		if err := os.Remove(m.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", time.Time{}, false, fmt.Errorf("watchdog: removing the self-fence mark %s of an earlier boot: %w", m.Path, err)
		}
		return "", time.Time{}, false, nil
	}
	return rec.Reason, rec.Time, true, nil
}

// parseMark decodes a mark strictly.
func parseMark(b []byte) (markRecord, error) {
	var rec markRecord
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return rec, fmt.Errorf("not a self-fence mark: %w", err)
	}
	if dec.More() {
		return rec, errors.New("not a self-fence mark: data after the record")
	}
	if rec.BootID == "" || rec.Reason == "" || rec.Time.IsZero() {
		return rec, errors.New("not a self-fence mark: boot_id, time or reason missing")
	}
	return rec, nil
}
