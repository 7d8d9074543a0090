package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"hpiagent/cmd/hpictl/internal/apiclient"
)

// command is one subcommand.
type command struct {
	name    string
	args    string // argument synopsis
	summary string
	// api says the command talks to the agent (connection flags apply).
	api bool
	// minArgs and maxArgs bound the positional arguments (maxArgs < 0: any).
	minArgs, maxArgs int
	// flags registers the command's own flags.
	flags func(fs *flag.FlagSet, o *opts)
	run   func(ctx context.Context, a *app, inv *invocation) error
}

// opts are every flag's value; each command registers the ones it uses.
type opts struct {
	conn   flagSettings
	json   bool
	follow bool
	after  uint64
	limit  int
	// workflows and certificates
	reason string
	verify bool
	pubkey string
	// pki
	name, kind, caName string
	dns, ips, anchors  stringList
	validity           time.Duration
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// invocation is a parsed command line.
type invocation struct {
	cmd  *command
	o    *opts
	args []string
	set  map[string]bool // flags given explicitly
	a    *app
}

// client builds the API client from the resolved settings.
func (inv *invocation) client() (*apiclient.Client, error) {
	s, err := resolveSettings(inv.o.conn, inv.a.getenv)
	if err != nil {
		return nil, &exitError{ExitUsage, err}
	}
	cfg := apiclient.Config{Endpoint: s.Endpoint, CAFile: s.CA, CertFile: s.Cert, KeyFile: s.Key,
		ServerName: s.ServerName, Timeout: s.Timeout}
	if inv.a.clientHook != nil {
		inv.a.clientHook(&cfg)
	}
	c, err := apiclient.New(cfg)
	if err != nil {
		return nil, &exitError{ExitUsage, err}
	}
	return c, nil
}

func connFlags(fs *flag.FlagSet, o *opts) {
	fs.StringVar(&o.conn.Config, "config", "", "config file (default $HPICTL_CONFIG, else ~/.config/hpictl/config.yaml)")
	fs.StringVar(&o.conn.Endpoint, "endpoint", "", "agent API, https://host:port (default $"+EnvEndpoint+")")
	fs.StringVar(&o.conn.CA, "ca", "", "cluster CA certificate file (default $"+EnvCA+")")
	fs.StringVar(&o.conn.Cert, "cert", "", "client certificate file (default $"+EnvCert+")")
	fs.StringVar(&o.conn.Key, "key", "", "client key file, mode 0600 (default $"+EnvKey+")")
	fs.StringVar(&o.conn.ServerName, "server-name", "", "name expected in the agent's certificate (default: the endpoint's host)")
	fs.DurationVar(&o.conn.Timeout, "timeout", 0, "bound on one request (default 60s)")
	fs.BoolVar(&o.json, "json", false, "print the API's JSON instead of a table")
}

var commands []*command

func init() {
	commands = []*command{
		{name: "resources", summary: "list the resources (RPT)", api: true, run: cmdResources},
		{name: "resource", args: "<id|entity-path>", summary: "show one resource", api: true, minArgs: 1, maxArgs: 1, run: cmdResource},
		{name: "rdrs", args: "<id|entity-path>", summary: "list a resource's RDRs", api: true, minArgs: 1, maxArgs: 1, run: cmdRDRs},
		{name: "sensors", args: "[<id|entity-path>]", summary: "read every sensor (of one resource, or of all)", api: true, maxArgs: 1, run: cmdSensors},
		{name: "sensor", args: "<id|entity-path> <num>", summary: "read one sensor with its thresholds", api: true, minArgs: 2, maxArgs: 2, run: cmdSensor},
		{name: "inventory", args: "<id|entity-path>", summary: "show a resource's inventory (FRU data)", api: true, minArgs: 1, maxArgs: 1, run: cmdInventory},
		{name: "hotswap", args: "<id|entity-path> [insert|extract|activate|deactivate]", summary: "show the hot-swap state, or ask for a hot-swap action", api: true, minArgs: 1, maxArgs: 2, run: cmdHotSwap},
		{name: "power", args: "<id|entity-path> [on|off|cycle]", summary: "show or set the power state", api: true, minArgs: 1, maxArgs: 2, run: cmdPower},
		{name: "reset", args: "<id|entity-path> <cold|warm|assert|deassert>", summary: "reset a resource", api: true, minArgs: 2, maxArgs: 2, run: cmdReset},
		{name: "led", args: "<id|entity-path> <num> <on|off|pulse_on|pulse_off>", summary: "set an LED (a digital control)", api: true, minArgs: 3, maxArgs: 3, run: cmdLED},
		{name: "control", args: "<id|entity-path> <num> <digital|discrete|analog|stream|text> <value>", summary: "set a control", api: true, minArgs: 4, maxArgs: 4, run: cmdControl},
		{name: "eventlog", summary: "show the domain event log", api: true, run: cmdEventLog, flags: func(fs *flag.FlagSet, o *opts) {
			fs.Uint64Var(&o.after, "after", 0, "only events after this event ID")
			fs.IntVar(&o.limit, "limit", -1, "at most this many entries")
		}},
		{name: "alarms", summary: "list the active alarms", api: true, run: cmdAlarms},
		{name: "ack", args: "<alarm-id>", summary: "acknowledge an alarm", api: true, minArgs: 1, maxArgs: 1, run: cmdAck},
		{name: "events", summary: "show events; with --follow, stream them as they happen", api: true, run: cmdEvents, flags: func(fs *flag.FlagSet, o *opts) {
			fs.BoolVar(&o.follow, "follow", false, "keep streaming (reconnects after a drop, never prints an event twice)")
			fs.Uint64Var(&o.after, "after", 0, "start after this event ID (default: all logged events; with --follow: from now)")
		}},
		{name: "cluster", summary: "show the cluster: members, leader, term, quorum", api: true, run: cmdCluster},
		{name: "fence", args: "[<node> [off|on|reboot]] [--reason <text>]", summary: "list the fencing targets, show one, or fence (off, reboot) or unfence (on) a node (fencer)", api: true, maxArgs: 2,
			run: cmdFence, flags: reasonFlag("why (recorded)")},
		{name: "workflows", summary: "list the hot-swap workflows", api: true, run: cmdWorkflows},
		{name: "workflow", args: "<workflow-id>", summary: "show one hot-swap workflow", api: true, minArgs: 1, maxArgs: 1, run: cmdWorkflow},
		{name: "extract", args: "<id|entity-path> [--reason <text>]", summary: "start a forced extraction of a FRU (revoke, wipe, deactivate)", api: true, minArgs: 1, maxArgs: 1, run: cmdExtract,
			flags: reasonFlag("why (recorded)")},
		{name: "override", args: "<workflow-id> --reason <text>", summary: "let a FRU whose wipe failed leave without a verified wipe (admin)", api: true, minArgs: 1, maxArgs: 1,
			run: workflowAction("override", true), flags: reasonFlag("why (required; recorded in the audit and cluster logs)")},
		{name: "abort", args: "<workflow-id> [--reason <text>]", summary: "abort a hot-swap workflow", api: true, minArgs: 1, maxArgs: 1,
			run: workflowAction("abort", false), flags: reasonFlag("why (recorded)")},
		{name: "retry", args: "<workflow-id>", summary: "retry a refused step or failed wipe of a workflow", api: true, minArgs: 1, maxArgs: 1, run: workflowAction("retry", false)},
		{name: "certs", summary: "list the secure-erase certificates", api: true, run: cmdCerts},
		{name: "anchors", args: "[<node>]", summary: "the audit log heads the cluster log holds (seq:hash for audit verify --anchor) and conflicts", api: true, maxArgs: 1, run: cmdAnchors},
		{name: "cert", args: "<certificate-id> [--verify --pubkey <file>]", summary: "show a secure-erase certificate; with --verify, check its signature", api: true, minArgs: 1, maxArgs: 1, run: cmdCert,
			flags: func(fs *flag.FlagSet, o *opts) {
				fs.BoolVar(&o.verify, "verify", false, "verify the certificate's signature (exit 1 when it does not verify)")
				fs.StringVar(&o.pubkey, "pubkey", "", "the node's public key (PEM PUBLIC KEY or CERTIFICATE) for --verify")
			}},
		{name: "whoami", summary: "show the identity, roles and permissions the agent sees", api: true, run: cmdWhoAmI},
		{name: "openapi", summary: "print the API's OpenAPI document", api: true, run: cmdOpenAPI},
		{name: "config", summary: "show the connection settings in effect and where each comes from", api: true, run: cmdConfig},
		{name: "audit", args: "verify [--anchor <seq>:<hash>]... <file>...", summary: "check an audit log's hash chain, rotated files oldest first (local; exit 1 when broken)", minArgs: 2, maxArgs: 1000, run: cmdAudit,
			flags: func(fs *flag.FlagSet, o *opts) {
				fs.BoolVar(&o.json, "json", false, "print the report as JSON")
				fs.Var(&o.anchors, "anchor", "a record's seq and hash kept outside the log, <seq>:<hash>: it must be in the log (repeatable)")
			}},
		{name: "pki", args: "init <dir> | issue <dir> --name <name> --kind server|client|peer", summary: "create the cluster CA, issue certificates (local)", minArgs: 2, maxArgs: 2, run: cmdPKI,
			flags: func(fs *flag.FlagSet, o *opts) {
				fs.StringVar(&o.caName, "ca-name", "hpiagent-cluster-ca", "init: the CA's name")
				fs.StringVar(&o.name, "name", "", "issue: the holder's name (letters, digits, . _ -)")
				fs.StringVar(&o.kind, "kind", "", "issue: server, client or peer")
				fs.Var(&o.dns, "dns", "issue: a DNS name the certificate is valid for (repeatable)")
				fs.Var(&o.ips, "ip", "issue: an IP address the certificate is valid for (repeatable)")
				fs.DurationVar(&o.validity, "validity", 0, "validity (default: CA 10 years, certificates 1 year)")
			}},
	}
}

func reasonFlag(usage string) func(fs *flag.FlagSet, o *opts) {
	return func(fs *flag.FlagSet, o *opts) { fs.StringVar(&o.reason, "reason", "", usage) }
}

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (a *app) usage(w io.Writer) {
	fmt.Fprintln(w, "usage: hpictl <command> [flags] [arguments]")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %s %s\n      %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w, `
Connection flags (API commands): --endpoint, --ca, --cert, --key, --server-name,
--timeout, --config, --json. Flags win over HPICTL_ENDPOINT, HPICTL_CA,
HPICTL_CERT, HPICTL_KEY (HPICTL_CONFIG names the config file), which win over
~/.config/hpictl/config.yaml (keys: endpoint, ca, cert, key, server_name, timeout).

Exit status: 0 ok, 1 error, 2 usage, 3 refused by the API (403),
4 agent unreachable, 5 TLS failure, 6 not found (404).
Run 'hpictl <command> -h' for a command's flags.`)
}

// parseInterleaved parses flags wherever they appear among the arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag stops at "--" too: everything after it is positional.
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (a *app) dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		a.usage(a.stderr)
		return usagef("no command given")
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		a.usage(a.stdout)
		return nil
	}
	c := findCommand(args[0])
	if c == nil {
		return usagef("unknown command %q", args[0])
	}
	o := &opts{limit: -1}
	fs := flag.NewFlagSet("hpictl "+c.name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "usage: hpictl %s [flags] %s\n  %s\n", c.name, c.args, c.summary)
		fs.PrintDefaults()
	}
	if c.api {
		connFlags(fs, o)
	}
	if c.flags != nil {
		c.flags(fs, o)
	}
	pos, err := parseInterleaved(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return &usageError{err.Error()}
	}
	if len(pos) < c.minArgs || (c.maxArgs >= 0 && len(pos) > c.maxArgs) {
		return usagef("%s: want arguments %s, got %d", c.name, strings.TrimSpace(c.args), len(pos))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return c.run(ctx, a, &invocation{cmd: c, o: o, args: pos, set: set, a: a})
}
