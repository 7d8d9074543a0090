// Command hpiagent is the per-blade hardware platform agent of an ATCA
// shelf: it talks RMCP+ to the shelf managers and, through them, to the
// blade controllers, keeps an HPI domain of the shelves, and serves it over
// a mutual-TLS API.
//
// Usage:
//
//	hpiagent demo                 run against an embedded simulated shelf
//	hpiagent run -config FILE     the agent (under systemd: Type=notify)
//	hpiagent check -config FILE   check a configuration file
//	hpiagent sensors [flags]      read every sensor of one shelf once
//
// `run` builds one hpi.Domain, one shelf.Monitor per configured shelf
// manager (each over its own RMCP+ session, under its own chassis entity
// path), the PET trap receiver when configured (traps go to the Monitor
// of the shelf whose trap sources include the sender), the audit log and
// the API, whose hardware actions go to the Monitor that owns the
// resource. Under systemd it speaks the notify protocol: READY=1 once the
// API listens and every shelf was discovered (or after 30 s), STATUS=
// with shelf and resource counts, WATCHDOG=1 at half WatchdogSec= while
// its health checks pass, RELOADING=1 on SIGHUP, STOPPING=1 on SIGTERM.
// It logs to the journal in its native protocol when stderr is the
// journal, else as text to stderr. SIGHUP re-reads the configuration and
// applies the log level (and, where the components allow it, poll
// intervals, the role map and the API certificate) without touching the
// domain or its subscriptions; a configuration with an error, or with a
// change that needs a restart, is refused and the running one stays.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: hpiagent <command> [flags]

commands:
  demo       run the agent against an embedded simulated ATCA shelf
  run        the agent: monitor the configured shelves, serve the API
  check      check a configuration file (and, with -secrets, its secrets)
  sensors    read every sensor of one shelf manager once and print them
  version    print the version

Run "hpiagent <command> -h" for the flags of a command.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "demo":
		err = cmdDemo(ctx, args[1:], stdout, stderr)
	case "run":
		err = cmdRun(ctx, args[1:], stderr)
	case "check":
		err = cmdCheck(args[1:], stdout, stderr)
	case "sensors":
		err = cmdSensors(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "hpiagent", version)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "hpiagent: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil, errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "hpiagent %s: %v\n", args[0], err)
		return 1
	}
}

// errUsage reports a command-line error already explained to the user.
var errUsage = errors.New("usage")
