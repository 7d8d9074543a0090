// Command hpiagent is the per-blade hardware platform agent of an ATCA
// shelf: it talks RMCP+ to the shelf managers and, through them, to the
// blade controllers.
//
// Usage:
//
//	hpiagent demo                 run against an embedded simulated shelf
//	hpiagent run -config FILE     monitor the shelves of a configuration
//	hpiagent sensors [flags]      read every sensor of one shelf once
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: hpiagent <command> [flags]

commands:
  demo       run the agent against an embedded simulated ATCA shelf
  run        monitor the shelves named in a configuration file
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

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
