package labshelf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Console sends emulator commands (ipmi_sim_cmd(5)), one after the other, to
// the shelf's console and returns what ipmi_sim answered to them, without
// echoes, prompts and the session log that ipmi_sim copies to every console.
// Most commands answer nothing. A command that ipmi_sim rejects (its reply
// starts with "**", e.g. "**Invalid MC address") ends the exchange with an
// error naming it; the commands after it are not sent. With no commands,
// Console only checks that the console answers. Without a deadline in ctx,
// a call gives up after 30 s.
//
// Example: s.Console(ctx, "sensor_set_bit_clr_rest 0x84 0 0 2 1") puts the
// blade IPMC 0x84 into M2 and logs the event. Never send "quit": it stops
// the simulator.
func (s *Shelf) Console(ctx context.Context, cmds ...string) (string, error) {
	for _, c := range cmds {
		if strings.ContainsAny(c, "\r\n") {
			return "", fmt.Errorf("console command %q: contains a line break", c)
		}
		if strings.TrimSpace(c) == "quit" {
			return "", errors.New("console command \"quit\" would stop the shelf")
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, consoleTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.ConsoleAddr())
	if err != nil {
		return "", fmt.Errorf("connect to emulator console %s: %w", s.ConsoleAddr(), err)
	}
	defer closeConsole(conn)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	r := &consoleReader{conn: conn}
	if _, err := r.untilPrompt(); err != nil {
		return "", fmt.Errorf("read emulator console %s greeting: %w", s.ConsoleAddr(), ctxErr(ctx, err))
	}
	var out strings.Builder
	for _, c := range cmds {
		if _, err := conn.Write([]byte(c + "\n")); err != nil {
			return out.String(), fmt.Errorf("send console command %q: %w", c, ctxErr(ctx, err))
		}
		raw, err := r.untilPrompt()
		if err != nil {
			return out.String(), fmt.Errorf("read reply to console command %q: %w", c, ctxErr(ctx, err))
		}
		reply, cmdErr := parseConsoleReply(c, raw)
		out.WriteString(reply)
		if cmdErr != nil {
			return out.String(), fmt.Errorf("console command %q: %w", c, cmdErr)
		}
	}
	return out.String(), nil
}

// closeConsole closes a console connection without a reset: it closes the
// sending side, so ipmi_sim sees end-of-file and closes its end, and reads
// until then. Closing a socket with unread input sends a TCP reset, and
// ipmi_sim, writing its session log to a reset console, dies of SIGPIPE.
func closeConsole(conn net.Conn) {
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		if tc.CloseWrite() != nil {
			return
		}
	}
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, conn)
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// consoleTimeout bounds a Console call whose context has no deadline.
const consoleTimeout = 30 * time.Second

// consolePrompt ends every reply of the console.
const consolePrompt = "\n\r> "

type consoleReader struct {
	conn net.Conn
	buf  []byte
}

// untilPrompt returns the bytes up to and including the next prompt. The
// first prompt of a connection comes without a line break before it.
func (r *consoleReader) untilPrompt() ([]byte, error) {
	tmp := make([]byte, 4096)
	for {
		if i := promptIndex(r.buf); i >= 0 {
			out := r.buf[:i]
			r.buf = append([]byte(nil), r.buf[i:]...)
			return out, nil
		}
		n, err := r.conn.Read(tmp)
		r.buf = append(r.buf, tmp[:n]...)
		if err != nil {
			if i := promptIndex(r.buf); i >= 0 {
				continue
			}
			return nil, err
		}
	}
}

// promptIndex returns the end of the first prompt in b, or -1.
func promptIndex(b []byte) int {
	if i := bytes.Index(b, []byte(consolePrompt)); i >= 0 {
		return i + len(consolePrompt)
	}
	// The greeting: telnet negotiation, then "> " without a line break.
	if j := bytes.Index(b, []byte("> ")); j >= 0 && len(bytes.TrimLeft(stripTelnet(b[:j]), "\r\n")) == 0 {
		return j + 2
	}
	return -1
}

// stripTelnet removes telnet commands (IAC sequences) from b.
func stripTelnet(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != 0xff {
			out = append(out, b[i])
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch c := b[i+1]; {
		case c == 0xff: // escaped 0xff data byte
			out = append(out, 0xff)
			i++
		case c >= 0xfb && c <= 0xfe: // WILL/WONT/DO/DONT option
			i += 2
		default:
			i++
		}
	}
	return out
}

// parseConsoleReply extracts ipmi_sim's answer to cmd from raw, the console
// bytes received after sending cmd up to the next prompt. It drops telnet
// commands, non-printable bytes, the echo of cmd, the prompt and the session
// log lines ipmi_sim copies to every console. Lines that start with "**" are
// ipmi_sim's error messages and make the returned error.
func parseConsoleReply(cmd string, raw []byte) (string, error) {
	text := stripTelnet(raw)
	var lines []string
	var errs []string
	echoed := false
	for _, line := range strings.Split(string(text), "\n") {
		line = printable(line)
		line = strings.TrimPrefix(line, "> ")
		if strings.TrimSpace(line) == "" || line == ">" {
			continue
		}
		if !echoed && strings.TrimSpace(line) == strings.TrimSpace(cmd) {
			echoed = true
			continue
		}
		if sessionLogLine(line) {
			continue
		}
		if strings.HasPrefix(line, "**") {
			errs = append(errs, strings.TrimSpace(strings.TrimPrefix(line, "**")))
		}
		lines = append(lines, line)
	}
	reply := ""
	if len(lines) > 0 {
		reply = strings.Join(lines, "\n") + "\n"
	}
	if len(errs) > 0 {
		return reply, fmt.Errorf("ipmi_sim: %s", strings.Join(errs, "; "))
	}
	return reply, nil
}

// printable keeps tabs and printable ASCII.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || (r >= 0x20 && r <= 0x7e) {
			return r
		}
		return -1
	}, s)
}

// sessionLogLine reports whether line is part of the session log that
// ipmi_sim copies to every console (session open/close, message dumps).
func sessionLogLine(line string) bool {
	for _, p := range []string{"Activate session", "Session closed", "Closed due", " channel=", " rq_lun=", "Session "} {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	// hex dump lines: " 02 00 00 00"
	f := strings.Fields(line)
	if len(f) == 0 || !strings.HasPrefix(line, " ") {
		return false
	}
	for _, w := range f {
		if len(w) != 2 || !isHex(w[0]) || !isHex(w[1]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
