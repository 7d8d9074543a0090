// Command hpictl is the operator's client of hpiagent: it calls the agent's
// HTTPS API with mutual TLS (resources, sensors, inventory, hot-swap,
// power, reset, LEDs and other controls, the event log, alarms, the live
// event stream), and works locally on audit logs (hpictl audit verify) and
// on the cluster PKI (hpictl pki init, hpictl pki issue).
//
// Connection settings come from flags, else the environment (HPICTL_ENDPOINT,
// HPICTL_CA, HPICTL_CERT, HPICTL_KEY, HPICTL_CONFIG), else the config file
// (~/.config/hpictl/config.yaml or --config). Output is a table for people;
// --json prints the API's JSON.
//
// Exit status: 0 success; 1 error (including an API error not listed
// here, and an audit log that does not verify); 2 usage or configuration
// error (bad arguments, unreadable certificate files, a key readable by
// others); 3 the API refused the call (403: the identity lacks the role);
// 4 the API could not be reached; 5 TLS failure (the agent's certificate
// is not trusted, or it refused ours); 6 not found (404: no such resource,
// sensor or alarm). README.md has the details.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"hpiagent/cmd/hpictl/internal/apiclient"
)

// Exit statuses.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitRefused     = 3
	ExitUnreachable = 4
	ExitTLS         = 5
	ExitNotFound    = 6
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(a.run(ctx, os.Args[1:]))
}

// app is one invocation's environment (tests supply their own).
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// clientHook, when set, adjusts the client configuration (tests).
	clientHook func(*apiclient.Config)
}

// usageError is a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitError carries a chosen exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode maps an error to the documented exit status.
func exitCode(err error) int {
	var ue *usageError
	var ee *exitError
	var ae *apiclient.APIError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &ae):
		switch ae.Status {
		case 403:
			return ExitRefused
		case 404:
			return ExitNotFound
		}
		return ExitError
	case apiclient.IsTLSError(err):
		return ExitTLS
	case apiclient.IsUnreachable(err):
		return ExitUnreachable
	}
	return ExitError
}

func (a *app) run(ctx context.Context, args []string) int {
	err := a.dispatch(ctx, args)
	code := exitCode(err)
	if err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(a.stderr, "hpictl: %v\nRun 'hpictl help' for usage.\n", err)
		} else if !errors.Is(err, errReported) {
			fmt.Fprintf(a.stderr, "hpictl: %s\n", clean(err.Error()))
		}
	}
	return code
}

// errReported: the command has printed its own diagnosis.
var errReported = errors.New("reported")
