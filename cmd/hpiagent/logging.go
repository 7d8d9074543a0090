package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// journalSocket is where journald receives native-protocol datagrams.
const journalSocket = "/run/systemd/journal/socket"

// parseLevel parses a configured log level (validated by the configuration).
func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// newLogger returns a text logger at a fixed level (the one-shot commands).
func newLogger(w io.Writer, level string) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: parseLevel(level)}))
}

// logSetup says where the daemon logs go.
type logSetup struct {
	// Format is auto, text, json or journal.
	Format string
	// Level is changed on reload.
	Level *slog.LevelVar
	// Stderr receives text and JSON logs.
	Stderr io.Writer
	// StderrFile is stderr as a file, to compare with $JOURNAL_STREAM;
	// nil when stderr is not a file.
	StderrFile *os.File
	// Getenv reads $JOURNAL_STREAM.
	Getenv func(string) string
	// JournalSocket is journald's socket; journalSocket when empty.
	JournalSocket string
}

// build returns the daemon's logger and a description of where it logs.
func (s logSetup) build() (*slog.Logger, string, error) {
	opts := &slog.HandlerOptions{Level: s.Level}
	sock := s.JournalSocket
	if sock == "" {
		sock = journalSocket
	}
	format := s.Format
	if format == "auto" || format == "" {
		format = "text"
		if s.stderrIsJournal() {
			if _, err := os.Stat(sock); err == nil {
				format = "journal"
			}
		}
	}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(s.Stderr, opts)), "json on stderr", nil
	case "journal":
		h, err := newJournalHandler(sock, opts)
		if err != nil {
			return nil, "", err
		}
		return slog.New(h), "journal", nil
	default:
		return slog.New(slog.NewTextHandler(s.Stderr, opts)), "text on stderr", nil
	}
}

// stderrIsJournal reports whether $JOURNAL_STREAM names stderr's device
// and inode (systemd sets it when stdout/stderr go to the journal).
func (s logSetup) stderrIsJournal() bool {
	if s.StderrFile == nil || s.Getenv == nil {
		return false
	}
	v := s.Getenv("JOURNAL_STREAM")
	dev, ino, ok := strings.Cut(v, ":")
	if !ok {
		return false
	}
	d, err1 := strconv.ParseUint(dev, 10, 64)
	i, err2 := strconv.ParseUint(ino, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	fi, err := s.StderrFile.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == d && st.Ino == i
}

// journalHandler writes records to journald in its native protocol, with
// the syslog priority of the level, the message as MESSAGE and the
// attributes rendered as logfmt text after it (and nothing else: the
// attributes of hpiagent's records are already sanitized for logs).
type journalHandler struct {
	shared *journalConn
	text   slog.Handler // renders attributes into shared.buf
}

type journalConn struct {
	mu   sync.Mutex
	conn *net.UnixConn
	buf  bytes.Buffer
}

func newJournalHandler(sock string, opts *slog.HandlerOptions) (*journalHandler, error) {
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("connecting to the journal at %s: %w", sock, err)
	}
	jc := &journalConn{conn: c}
	o := *opts
	o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
			return slog.Attr{} // the journal has the time and level; the message comes first
		}
		return a
	}
	return &journalHandler{shared: jc, text: slog.NewTextHandler(&jc.buf, &o)}, nil
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.text.Enabled(ctx, l)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{shared: h.shared, text: h.text.WithAttrs(as)}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{shared: h.shared, text: h.text.WithGroup(name)}
}

// priority maps a level to a syslog priority.
func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.shared.mu.Lock()
	defer h.shared.mu.Unlock()
	h.shared.buf.Reset()
	if err := h.text.Handle(ctx, r); err != nil {
		return err
	}
	text := r.Message
	if attrs := strings.TrimSpace(h.shared.buf.String()); attrs != "" {
		text += " " + attrs
	}
	var d bytes.Buffer
	journalField(&d, "MESSAGE", text)
	journalField(&d, "PRIORITY", strconv.Itoa(priority(r.Level)))
	journalField(&d, "SYSLOG_IDENTIFIER", "hpiagent")
	_, err := h.shared.conn.Write(d.Bytes())
	return err
}

// journalField appends one field in the native protocol: NAME=value, or
// for values with a newline NAME, a little-endian 64-bit length, the
// value.
func journalField(b *bytes.Buffer, name, value string) {
	if !strings.ContainsRune(value, '\n') {
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(value)
		b.WriteByte('\n')
		return
	}
	b.WriteString(name)
	b.WriteByte('\n')
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(value)))
	b.Write(n[:])
	b.WriteString(value)
	b.WriteByte('\n')
}
