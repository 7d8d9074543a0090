package labshelf

import (
	"strings"
	"testing"
)

func TestCommandFileErrors(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want []string
	}{
		{
			name: "clean",
			log:  "IPMI Simulator version 1.0.13\nmc_setbmc 0x20\n\rmc_enable 0x20\n\r",
			want: nil,
		},
		{
			name: "error after its command, lines end in LF CR",
			log:  "mc_setbmc 0x20\n\rsensor_set_value 0x99 0 2 93 0\n\r**Invalid MC address\n\r",
			want: []string{"sensor_set_value 0x99 0 2 93 0: **Invalid MC address"},
		},
		{
			name: "blank lines between command and error",
			log:  "bogus 1\n\r\n\r**Unknown command: bogus\n\rnext\n\rUnable to bind to LAN port: Address already in use\n",
			want: []string{"bogus 1: **Unknown command: bogus", "next: Unable to bind to LAN port: Address already in use"},
		},
		{
			name: "comments and session log are no errors",
			log:  "# Invalid things are explained here\n\rActivate session: Session started\n\r channel=1\n\r",
			want: nil,
		},
		{
			name: "error on the first line",
			log:  "**Invalid\n",
			want: []string{": **Invalid"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := commandFileErrors([]byte(tc.log))
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("commandFileErrors = %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzCommandFileErrors: any log parses without panic, and every reported
// error holds one of ipmi_sim's error markers.
func FuzzCommandFileErrors(f *testing.F) {
	f.Add([]byte("cmd\n\r**Invalid MC address\n\r"))
	f.Add([]byte("Unable to bind\n"))
	f.Add([]byte("\r\r\n\n**"))
	f.Add([]byte("# comment\n\rCould not open file\n\r"))
	f.Fuzz(func(t *testing.T, log []byte) {
		for _, e := range commandFileErrors(log) {
			ok := false
			for _, m := range []string{": **", ": Could not", ": Unable", ": Invalid", ": Error"} {
				ok = ok || strings.Contains(e, m)
			}
			if !ok {
				t.Fatalf("error %q without a marker", e)
			}
		}
	})
}
