// Command fence_hpiagent is a fence agent for Pacemaker (the fence-agents
// API) that fences cluster nodes through hpiagent: it asks the local
// hpiagent's API, over HTTPS with mutual TLS 1.3, to fence, unfence or
// report a node, and hpiagent's cluster leader carries the fence out
// (quorum-safe, logged, confirmed by read-back of the hardware).
//
// Like every fence agent it takes its parameters as key=value lines on
// stdin when run without arguments (what Pacemaker does), or as command
// line options (-o/--action, -n/--plug, -a/--ip, ...). Actions: on, off,
// reboot, status, list, list-status, monitor, metadata, manpage,
// validate-all. Exit status: 0 success (status: on), 2 status off, 1 any
// failure.
//
// API contract used (served by hpiagent):
//
//	POST /v1/fence/{node}   {"action":"off"|"on"|"reboot"} → 202 {"op":"…","phase":"…"}
//	GET  /v1/fence/{node}   → 200 {"node","phase","power","fence":{"id","action","done","failed","error"}}
//	GET  /v1/fence          → 200 {"nodes":[{"node","phase","power"}]}
//
// power is "on", "off" or "unknown" as read back from the hardware;
// phase is idle, fencing, fenced, unfencing or failed.
//
// A Pacemaker stonith resource (the client certificate must carry the
// fencer role in hpiagent's RBAC; its key file must be mode 0600):
//
//	pcs stonith create fence-blades fence_hpiagent \
//	    ssl_cert=/etc/hpiagent/fencer.pem ssl_key=/etc/hpiagent/fencer.key \
//	    ssl_ca=/etc/hpiagent/ca.pem ipport=8443 pcmk_host_list="node1 node2 node3"
//
// ssl_insecure is refused, and login/password are accepted but not used.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const version = "hpiagent fence agent 1.0"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole agent, testable in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o options
	var err error
	if len(args) > 0 {
		o, err = parseArgs(args)
	} else {
		o, err = parseStdin(stdin)
	}
	if err != nil {
		fmt.Fprintf(stderr, "Failed: %v\n", err)
		usage(stderr)
		return exitError
	}
	for _, w := range o.warnings {
		fmt.Fprintln(stderr, w)
	}
	if o.flag("help") {
		usage(stdout)
		return exitOK
	}
	if o.flag("version") {
		fmt.Fprintln(stdout, version)
		return exitOK
	}
	a := &agent{o: o, out: stdout, errw: stderr}
	a.openDebug()
	defer a.closeDebug()
	switch action := o.get("action"); action {
	case "metadata":
		writeMetadata(stdout)
		return exitOK
	case "manpage":
		usage(stdout)
		return exitOK
	case "validate-all":
		if _, err := a.validate(true); err != nil {
			fmt.Fprintf(stderr, "Failed: %v\n", err)
			fmt.Fprintln(stderr, "validate-all failed")
			return exitError
		}
		return exitOK
	case "on", "off", "reboot", "status", "list", "list-status", "monitor", "enable", "disable":
		return a.do(ctx, action)
	default:
		fmt.Fprintf(stderr, "Failed: unrecognised action %q\n", action)
		usage(stderr)
		return exitError
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage:\n\tfence_hpiagent [options]\n\tfence_hpiagent < key=value lines\nOptions:")
	for _, p := range sortedParams() {
		fmt.Fprintf(w, "   %-30s %s\n", getoptMixed(p), p.shortdesc)
	}
	fmt.Fprintf(w, "Actions: %v\n", actions)
}
