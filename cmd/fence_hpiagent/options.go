package main

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Exit codes of the fence-agents API (fencing.py). Every failure of an
// action exits with exitError, as fencing.py's fail() does; "status" of a
// node that is off exits with exitOff.
const (
	exitOK    = 0
	exitError = 1
	exitOff   = 2
)

// param is one agent parameter: its stdin name (Pacemaker passes these as
// key=value lines), its command-line spellings and its metadata.
type param struct {
	name      string // stdin key, metadata name
	short     string // "-o" or ""
	long      string // "--action"
	value     string // metavar for options that take a value ("" = boolean)
	def       string
	required  bool
	typ       string // string, integer, second, boolean, select
	choices   []string
	shortdesc string
	obsoletes string // an older stdin name that still maps here
	order     int
	// ignored parameters are accepted for compatibility with generic
	// fence-agents configurations and do nothing (not in the metadata).
	ignored bool
}

var params = []param{
	{name: "action", short: "-o", long: "--action", value: "action", def: "reboot", required: true, typ: "string", shortdesc: "Fencing action", order: 1},
	{name: "plug", short: "-n", long: "--plug", value: "id", typ: "string", shortdesc: "Cluster node name of the target (as configured in hpiagent's fencing targets)", obsoletes: "port", order: 2},
	{name: "ip", short: "-a", long: "--ip", value: "ip", def: "127.0.0.1", typ: "string", shortdesc: "Address of the local hpiagent API", obsoletes: "ipaddr", order: 3},
	{name: "ipport", short: "-u", long: "--ipport", value: "port", def: "8443", typ: "integer", shortdesc: "TCP port of the hpiagent API", order: 4},
	{name: "server_name", long: "--server-name", value: "name", typ: "string", shortdesc: "Name in the API server's certificate (default: the address)", order: 5},
	{name: "ssl_cert", long: "--ssl-cert", value: "file", required: true, typ: "string", shortdesc: "Client certificate (PEM) of a fencer-role identity for mutual TLS", order: 6},
	{name: "ssl_key", long: "--ssl-key", value: "file", required: true, typ: "string", shortdesc: "Private key (PEM, mode 0600) of the client certificate", order: 7},
	{name: "ssl_ca", long: "--ssl-ca", value: "file", required: true, typ: "string", shortdesc: "CA certificates (PEM) that sign the API server's certificate", order: 8},
	{name: "ssl_secure", long: "--ssl-secure", typ: "boolean", shortdesc: "Verify the server certificate (always on; accepted for compatibility)", order: 9},
	{name: "ssl_insecure", long: "--ssl-insecure", typ: "boolean", shortdesc: "Refused: certificate verification cannot be turned off", order: 10},
	{name: "power_timeout", long: "--power-timeout", value: "seconds", def: "60", typ: "second", shortdesc: "Test X seconds for status change after ON/OFF", order: 20},
	{name: "power_wait", long: "--power-wait", value: "seconds", def: "0", typ: "second", shortdesc: "Wait X seconds after issuing ON/OFF", order: 21},
	{name: "delay", long: "--delay", value: "seconds", def: "0", typ: "second", shortdesc: "Wait X seconds before fencing is started", order: 22},
	{name: "login_timeout", long: "--login-timeout", value: "seconds", def: "10", typ: "second", shortdesc: "Wait X seconds for the API to answer", order: 23},
	{name: "separator", short: "-C", long: "--separator", value: "char", def: ",", typ: "string", shortdesc: "Separator for the output of list", order: 24},
	{name: "verbose", short: "-v", long: "--verbose", typ: "boolean", shortdesc: "Verbose mode", order: 50},
	{name: "debug_file", short: "-D", long: "--debug-file", value: "debugfile", typ: "string", shortdesc: "Write debug information to given file", obsoletes: "debug", order: 51},
	{name: "version", short: "-V", long: "--version", typ: "boolean", shortdesc: "Display version information and exit", order: 52},
	{name: "help", short: "-h", long: "--help", typ: "boolean", shortdesc: "Display help and exit", order: 53},
	// The API authenticates the agent by its certificate; a login or
	// password in a generic configuration is accepted and not used.
	{name: "username", short: "-l", long: "--username", value: "name", obsoletes: "login", ignored: true, order: 90},
	{name: "password", short: "-p", long: "--password", value: "password", obsoletes: "passwd", ignored: true, order: 91},
}

// actions the agent implements, as the metadata lists them.
var actions = []string{"on", "off", "reboot", "status", "list", "list-status", "monitor", "metadata", "manpage", "validate-all"}

// options are the parsed parameters by stdin name.
type options struct {
	values   map[string]string
	warnings []string
}

func lookupParam(name string) (param, bool) {
	n := strings.ReplaceAll(name, "-", "_")
	for _, p := range params {
		if p.name == n || (p.obsoletes != "" && p.obsoletes == n) {
			return p, true
		}
	}
	// "option" is the historic name of "action"; Pacemaker passes "nodename".
	if n == "option" {
		return params[0], true
	}
	return param{}, false
}

// parseStdin reads key=value lines the way fencing.py does: blank lines and
// lines starting with # are skipped, surrounding double quotes are
// removed, unknown keys are ignored with a warning (Pacemaker passes
// nodename and its own meta parameters), boolean values are 1/yes/on/true.
func parseStdin(r io.Reader) (options, error) {
	o := options{values: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, _ := strings.Cut(line, "=")
		if len(value) >= 2 && strings.HasPrefix(value, `"`) && strings.HasSuffix(value, `"`) {
			value = value[1 : len(value)-1]
		}
		if name == "nodename" {
			continue
		}
		p, ok := lookupParam(name)
		if !ok {
			o.warnings = append(o.warnings, fmt.Sprintf("Parse error: Ignoring unknown option '%s'", name))
			continue
		}
		if p.ignored {
			o.warnings = append(o.warnings, fmt.Sprintf("Ignoring option '%s': hpiagent authenticates the agent by its client certificate", name))
			continue
		}
		if p.value == "" {
			switch strings.ToLower(value) {
			case "1", "yes", "on", "true":
				o.values[p.name] = "1"
			case "0", "no", "off", "false":
				o.values[p.name] = "0"
			default:
				o.warnings = append(o.warnings, fmt.Sprintf("Parse error: Ignoring option '%s' because it does not have value", name))
			}
			continue
		}
		o.values[p.name] = value
	}
	if err := sc.Err(); err != nil {
		return o, fmt.Errorf("reading options from stdin: %w", err)
	}
	return o, nil
}

// parseArgs parses getopt-style arguments: -o off, --action=off,
// --action off, -ooff; boolean flags take no value.
func parseArgs(args []string) (options, error) {
	o := options{values: map[string]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var p param
		var val string
		hasVal := false
		found := false
		switch {
		case strings.HasPrefix(a, "--"):
			name, v, eq := strings.Cut(a, "=")
			for _, q := range params {
				if q.long == name {
					p, found = q, true
				}
			}
			if !found && name == "--port" {
				p, found = params[1], true
			}
			val, hasVal = v, eq
		case strings.HasPrefix(a, "-") && len(a) >= 2:
			for _, q := range params {
				if q.short == a[:2] {
					p, found = q, true
				}
			}
			if len(a) > 2 {
				val, hasVal = a[2:], true
			}
		default:
			return o, fmt.Errorf("unexpected argument %q", a)
		}
		if !found {
			return o, fmt.Errorf("unknown option %q", a)
		}
		if p.ignored {
			o.warnings = append(o.warnings, fmt.Sprintf("Ignoring option %s: hpiagent authenticates the agent by its client certificate", p.long))
			if !hasVal {
				i++
			}
			continue
		}
		if p.value == "" {
			if hasVal {
				return o, fmt.Errorf("option %s takes no value", p.long)
			}
			o.values[p.name] = "1"
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return o, fmt.Errorf("option %s needs a value", p.long)
			}
			i++
			val = args[i]
		}
		o.values[p.name] = val
	}
	return o, nil
}

func (o options) get(name string) string {
	if v, ok := o.values[name]; ok {
		return v
	}
	p, _ := lookupParam(name)
	return p.def
}

func (o options) flag(name string) bool { return o.values[name] == "1" }

func (o options) seconds(name string) (time.Duration, error) {
	v := o.get(name)
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 86400 {
		return 0, fmt.Errorf("%s: %q is not a number of seconds", name, v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

func sortedParams() []param {
	var ps []param
	for _, p := range params {
		if !p.ignored {
			ps = append(ps, p)
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].order < ps[j].order })
	return ps
}
