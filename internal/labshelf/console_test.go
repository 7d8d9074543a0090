package labshelf

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseConsoleReply(t *testing.T) {
	tests := []struct {
		name      string
		cmd       string
		raw       string
		want      string
		wantErr   string // "" = no error
		notInWant string
	}{
		{
			name: "silent command",
			cmd:  "sensor_set_value 0x82 0 2 77 0",
			raw:  "sensor_set_value 0x82 0 2 77 0\n\r> ",
			want: "",
		},
		{
			name:    "rejected command",
			cmd:     "sensor_set_value 0x99 0 2 77 0",
			raw:     "sensor_set_value 0x99 0 2 77 0\n\r**Invalid MC address\n\r> ",
			want:    "**Invalid MC address\n",
			wantErr: "ipmi_sim: Invalid MC address",
		},
		{
			name: "session log around the echo",
			cmd:  "sensor_set_value 0x82 0 2 61 0",
			raw: "Activate session: Session started, max priv 0\n\r channel=1 netfn=0x6 cmd=0x38 rs_addr=0x20 rs_lun=0x0 rq_addr=0x81\n\r rq_lun=0x0 rq_seq=0x0\n\r 00 00 00 00 a4 a3\n\r" +
				"sensor_set_value 0x82 0 2 61 0\n\r" +
				"Session closed: Closed due to request\n\r channel=1 netfn=0x6 cmd=0x3c rs_addr=0x20\n\r 02 02 00 00\n\r> ",
			want:      "",
			notInWant: "Session",
		},
		{
			name:    "greeting prompt and telnet bytes before the echo",
			cmd:     "bogus 1",
			raw:     "\xff\xfb\x03\xff\xfb\x01\xff\xfe\x01> bogus 1\n\r**Unknown command: bogus\n\r> ",
			want:    "**Unknown command: bogus\n",
			wantErr: "Unknown command: bogus",
		},
		{
			name: "output that is not an error is kept",
			cmd:  "help",
			raw:  "help\n\rsome output\n\r\tindented\n\r> ",
			want: "some output\n\tindented\n",
		},
		{
			name:    "two errors",
			cmd:     "x",
			raw:     "x\n\r**first\n\r**second\n\r> ",
			want:    "**first\n**second\n",
			wantErr: "first; second",
		},
		{
			name: "a reply line equal to the command after the echo is kept",
			cmd:  "echo",
			raw:  "echo\n\recho\n\r> ",
			want: "echo\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConsoleReply(tc.cmd, []byte(tc.raw))
			if got != tc.want {
				t.Errorf("reply = %q, want %q", got, tc.want)
			}
			if tc.notInWant != "" && strings.Contains(got, tc.notInWant) {
				t.Errorf("reply %q contains %q", got, tc.notInWant)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error = %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestPromptIndex(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"greeting", "\xff\xfb\x03\xff\xfb\x01\xff\xfe\x01> ", 11},
		{"greeting then session log", "\xff\xfb\x03> Activate session\n\r", 5},
		{"reply", "cmd\n\r> ", 7},
		{"reply with error", "cmd\n\r**Invalid\n\r> rest", 18},
		{"incomplete", "cmd\n\r", -1},
		{"prompt-like text inside a line is no prompt", "a> b\n\r", -1},
		{"empty", "", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := promptIndex([]byte(tc.in)); got != tc.want {
				t.Errorf("promptIndex(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestStripTelnet(t *testing.T) {
	tests := []struct{ in, want string }{
		{"\xff\xfb\x03\xff\xfb\x01\xff\xfe\x01> ", "> "},
		{"a\xff\xffb", "a\xffb"},
		{"a\xff\xf1b", "ab"}, // one-byte command (NOP)
		{"abc\xff", "abc"},
		{"abc\xff\xfb", "abc"},
		{"plain", "plain"},
	}
	for _, tc := range tests {
		if got := string(stripTelnet([]byte(tc.in))); got != tc.want {
			t.Errorf("stripTelnet(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzParseConsoleReply feeds arbitrary console bytes to the reply parser:
// it must not panic, must return only printable lines, and must report an
// error exactly when a kept line starts with "**".
func FuzzParseConsoleReply(f *testing.F) {
	f.Add("sensor_set_value 0x82 0 2 77 0", []byte("sensor_set_value 0x82 0 2 77 0\n\r> "))
	f.Add("x", []byte("x\n\r**Invalid MC address\n\r> "))
	f.Add("x", []byte("\xff\xfb\x03\xff\xfb\x01\xff\xfe\x01> x\n\r**Unknown command: x\n\r> "))
	f.Add("y", []byte("Activate session: Session started\n\r channel=1\n\r 00 01\n\ry\n\r> "))
	f.Add("", []byte("\xff"))
	f.Add("z", []byte("z\n\r\x00\x01**\n\r> "))
	f.Fuzz(func(t *testing.T, cmd string, raw []byte) {
		reply, err := parseConsoleReply(cmd, raw)
		hasErrLine := false
		for _, l := range strings.Split(strings.TrimSuffix(reply, "\n"), "\n") {
			for _, c := range []byte(l) {
				if c != '\t' && (c < 0x20 || c > 0x7e) {
					t.Fatalf("reply %q has a non-printable byte", reply)
				}
			}
			if strings.HasPrefix(l, "**") {
				hasErrLine = true
			}
		}
		if hasErrLine != (err != nil) {
			t.Fatalf("reply %q, error %v: error lines and error disagree", reply, err)
		}
		_ = promptIndex(raw)
		if bytes.Contains(stripTelnet(raw), []byte{0xff, 0xfb}) && !bytes.Contains(raw, []byte{0xff, 0xff}) {
			t.Fatalf("stripTelnet left a telnet command in %q", raw)
		}
	})
}
