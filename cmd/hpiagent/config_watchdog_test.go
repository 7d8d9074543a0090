package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// watchdogYAML is a valid standalone configuration (no cluster section)
// with an ipmi watchdog of each kind: the local controller through the
// OpenIPMI device and a blade IPMC behind a shelf manager's session.
const watchdogYAML = `shelves:
  - name: s1
    address: 192.0.2.1
    username: u
    password: {credential: s1pw}
  - name: s2
    address: 192.0.2.2
    username: u
    password: {credential: s2pw}
watchdog:
  interval: 2s
  devices:
    - {type: ipmi}
    - type: ipmi
      shelf: s2
      ipmb: 0x84
      timeout: 30s
      action: power-cycle
      pre_timeout: nmi
      pre_timeout_interval: 10s
    - {type: dev, timeout: 60s}
`

func TestWatchdogConfigIPMIDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(watchdogYAML))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster != nil {
		t.Fatal("standalone configuration has a cluster section")
	}
	tests := []struct {
		i             int
		device, shelf string
		ipmb          uint8
		timeout       time.Duration
		action, pre   string
		preInterval   time.Duration
	}{
		{0, "/dev/ipmi0", "", 0, 60 * time.Second, "hard-reset", "none", 0},
		{1, "", "s2", 0x84, 30 * time.Second, "power-cycle", "nmi", 10 * time.Second},
	}
	for _, tc := range tests {
		d := c.Watchdog.Devices[tc.i]
		if d.Device != tc.device || d.Shelf != tc.shelf || d.IPMB != tc.ipmb || time.Duration(d.Timeout) != tc.timeout ||
			d.Action != tc.action || d.PreTimeout != tc.pre || time.Duration(d.PreTimeoutInterval) != tc.preInterval {
			t.Errorf("devices[%d] = %+v, want %+v", tc.i, d, tc)
		}
	}
	if d := c.Watchdog.Devices[2]; d.Timeout != Duration(60*time.Second) || d.Device != "" || d.Action != "" {
		t.Errorf("dev device changed by the ipmi defaults: %+v", d)
	}
	// Defaults applied once give the same configuration as written out.
	again, err := ParseConfig([]byte(watchdogYAML))
	if err != nil || !SameClusterSections(c, again) {
		t.Errorf("parsing twice differs: %v", err)
	}
}

func TestWatchdogConfigIPMIErrors(t *testing.T) {
	const ipmiShelf = "      shelf: s2\n      ipmb: 0x84\n"
	tests := []struct {
		name, old, new string
		want           string // substring: key and reason
	}{
		{"unknown type", "{type: dev, timeout: 60s}", "{type: bmc}", `watchdog.devices[2].type: "bmc" is not one of dev, systemd, ipmi`},
		{"unknown action", "action: power-cycle", "action: reboot", `line 18: watchdog.devices[1].action: "reboot" is not one of hard-reset, power-down, power-cycle`},
		{"unknown pre-timeout", "pre_timeout: nmi", "pre_timeout: irq", `watchdog.devices[1].pre_timeout: "irq" is not one of none, smi, nmi, msg-interrupt`},
		{"odd timeout", "timeout: 30s", "timeout: 30050ms", "watchdog.devices[1].timeout: 30.05s is not a whole number of 100ms units"},
		{"timeout above the timer", "timeout: 30s", "timeout: 6554s", "watchdog.devices[1].timeout: 1h49m14s is above the IPMI timer's 6553.5s"},
		{"timeout under three intervals", "timeout: 30s", "timeout: 5900ms", "watchdog.devices[1].timeout: 5.9s is under three feeding intervals (2s)"},
		{"default timeout under three intervals", "  interval: 2s\n", "  interval: 21s\n", "watchdog.devices[0].timeout: 1m0s is under three feeding intervals (21s)"},
		{"negative timeout", "timeout: 30s", "timeout: -1s", "watchdog.devices[1].timeout: -1s is not a whole number of 100ms"},
		{"pre-interval equals timeout", "pre_timeout_interval: 10s", "pre_timeout_interval: 30s", "watchdog.devices[1].pre_timeout_interval: 30s is not below the timeout (30s)"},
		{"pre-interval above timeout", "pre_timeout_interval: 10s", "pre_timeout_interval: 40s", "is not below the timeout"},
		{"pre-interval above 255 s", "pre_timeout_interval: 10s", "pre_timeout_interval: 256s", "watchdog.devices[1].pre_timeout_interval: 4m16s is above 255s"},
		{"pre-interval fraction", "pre_timeout_interval: 10s", "pre_timeout_interval: 1500ms", "watchdog.devices[1].pre_timeout_interval: 1.5s is not a whole number of seconds"},
		{"pre-interval without pre-timeout", "      pre_timeout: nmi\n", "", "watchdog.devices[1].pre_timeout_interval: applies only with a pre_timeout"},
		{"pre-timeout without interval", "      pre_timeout_interval: 10s\n", "", "watchdog.devices[1].pre_timeout_interval: required with pre_timeout nmi"},
		{"pre-timeout too near the feeds", "pre_timeout_interval: 10s", "pre_timeout_interval: 25s", "the interrupt would fire 5s after the last feed, under three feeding intervals"},
		{"shelf not in shelves", "shelf: s2", "shelf: s9", `line 15: watchdog.devices[1].shelf: "s9" is not the name of a shelf in shelves`},
		{"shelf without ipmb", "      ipmb: 0x84\n", "", "watchdog.devices[1].ipmb: required with shelf"},
		{"odd ipmb", "ipmb: 0x84", "ipmb: 0x85", "watchdog.devices[1].ipmb: 0x85 is not an IPMB slave address"},
		{"ipmb out of range", "ipmb: 0x84", "ipmb: 0x184", "watchdog.devices[1].ipmb"},
		{"ipmb without shelf", "    - {type: ipmi}\n", "    - {type: ipmi, ipmb: 0x82}\n", "watchdog.devices[0].ipmb: ipmb applies with shelf only"},
		{"device and shelf", ipmiShelf, ipmiShelf + "      device: /dev/ipmi1\n", "watchdog.devices[1].device: device and shelf are exclusive"},
		{"relative device", "    - {type: ipmi}\n", "    - {type: ipmi, device: ipmi0}\n", `watchdog.devices[0].device: "ipmi0" is not an absolute path`},
		{"path on ipmi", "    - {type: ipmi}\n", "    - {type: ipmi, path: /dev/ipmi0}\n", "watchdog.devices[0].path: path is for type dev"},
		{"ipmi keys on dev", "{type: dev, timeout: 60s}", "{type: dev, action: power-down}", "watchdog.devices[2]: device, shelf, ipmb, action, pre_timeout and pre_timeout_interval apply to type ipmi only"},
		{"ipmi keys on systemd", "{type: dev, timeout: 60s}", "{type: systemd, shelf: s1}", "watchdog.devices[2]: device, shelf"},
		{"same controller twice", "{type: dev, timeout: 60s}", "{type: ipmi, shelf: s2, ipmb: 0x84}", "watchdog.devices[2]: the same controller (shelf s2 IPMB 0x84) as watchdog.devices[1]"},
		{"same device twice", "{type: dev, timeout: 60s}", "{type: ipmi, device: /dev/ipmi0}", "the same controller (device /dev/ipmi0) as watchdog.devices[0]"},
		{"unknown key", "      action: power-cycle\n", "      actoin: power-cycle\n", "watchdog.devices[1].actoin: unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantConfigError(t, watchdogYAML, tc.old, tc.new, tc.want)
		})
	}
}

// TestWatchdogConfigIPMIValid: configurations at the limits are accepted.
func TestWatchdogConfigIPMIValid(t *testing.T) {
	tests := []struct{ name, old, new string }{
		{"longest timeout and pre-interval", "timeout: 30s\n      action: power-cycle\n      pre_timeout: nmi\n      pre_timeout_interval: 10s\n",
			"timeout: 6553.5s\n      action: power-down\n      pre_timeout: msg-interrupt\n      pre_timeout_interval: 255s\n"},
		{"100 ms units", "timeout: 30s", "timeout: 30100ms"},
		{"pre-timeout fires three intervals after the feed", "pre_timeout_interval: 10s", "pre_timeout_interval: 24s"},
		{"smi", "pre_timeout: nmi", "pre_timeout: smi"},
		{"explicit none", "      pre_timeout: nmi\n      pre_timeout_interval: 10s\n", "      pre_timeout: none\n"},
		{"shelf manager's own controller", "ipmb: 0x84", "ipmb: 0x20"},
		{"another OpenIPMI device", "    - {type: ipmi}\n", "    - {type: ipmi, device: /dev/ipmi1}\n"},
		{"two blades' controllers", "{type: dev, timeout: 60s}", "{type: ipmi, shelf: s1, ipmb: 0x84}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(watchdogYAML, tc.old) {
				t.Fatalf("test input %q not in the base configuration", tc.old)
			}
			if _, err := ParseConfig([]byte(strings.Replace(watchdogYAML, tc.old, tc.new, 1))); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// FuzzParseWatchdogConfig runs the strict decoder and the watchdog
// validation on mutations of configurations with ipmi watchdogs: no
// panic, an error is always a *ConfigError, and an accepted ipmi device
// has its defaults applied and fits the IPMI timer.
func FuzzParseWatchdogConfig(f *testing.F) {
	f.Add([]byte(watchdogYAML))
	f.Add([]byte("watchdog:\n  devices: [{type: ipmi, timeout: 0.3s, pre_timeout: smi, pre_timeout_interval: 1s}]\n  interval: 100ms\n"))
	f.Add([]byte("shelves: [{name: a, address: h, username: u, password: {file: /p}}]\nwatchdog:\n  devices: [{type: ipmi, shelf: a, ipmb: 0x20}]\n"))
	f.Add([]byte("watchdog:\n  devices: [{type: ipmi, ipmb: 255, device: ''}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ConfigError", err)
			}
			return
		}
		if c.Watchdog == nil {
			return
		}
		for i, d := range c.Watchdog.Devices {
			if d.Type != "ipmi" {
				continue
			}
			to, pre := time.Duration(d.Timeout), time.Duration(d.PreTimeoutInterval)
			if d.Action == "" || d.PreTimeout == "" || (d.Device == "") == (d.Shelf == "") ||
				to < 3*time.Duration(c.Watchdog.Interval) || to > maxIPMIWatchdogTimeout || to%(100*time.Millisecond) != 0 ||
				pre >= to || pre > maxIPMIPreTimeoutInterval || (d.Shelf != "" && (d.IPMB == 0 || d.IPMB&1 != 0)) {
				t.Fatalf("devices[%d] accepted: %+v", i, d)
			}
		}
	})
}
