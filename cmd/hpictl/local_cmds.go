package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"hpiagent/api/audit"
	"hpiagent/internal/pki"
)

func cmdAudit(ctx context.Context, a *app, inv *invocation) error {
	if inv.args[0] != "verify" {
		return usagef("audit: unknown subcommand %q (want: audit verify <file>...)", inv.args[0])
	}
	paths := inv.args[1:]
	var anchors []audit.Anchor
	for _, s := range inv.o.anchors {
		an, err := audit.ParseAnchor(s)
		if err != nil {
			return &usageError{err.Error()}
		}
		anchors = append(anchors, an)
	}
	var files []audit.File
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("opening audit log: %w", err)
		}
		defer f.Close()
		files = append(files, audit.File{Name: p, R: f})
	}
	what := paths[0]
	if len(paths) > 1 {
		what = fmt.Sprintf("%s ... %s (%d files)", paths[0], paths[len(paths)-1], len(paths))
	}
	rep, err := audit.VerifyFiles(files, anchors...)
	var ce *audit.ChainError
	if err != nil && !errors.As(err, &ce) {
		return fmt.Errorf("verifying %s: %w", what, err)
	}
	if inv.o.json {
		if perr := printValue(a.stdout, rep); perr != nil {
			return perr
		}
	} else if ce == nil {
		fmt.Fprintf(a.stdout, "%s: chain intact: %d records, last seq %d, last hash %s\n", clean(what), rep.Records, rep.LastSeq, rep.LastHash)
		if rep.FirstSeq > 1 {
			fmt.Fprintf(a.stdout, "(starts at seq %d, continuing a rotated file not given here: pass the rotated files too, oldest first, to check them)\n", rep.FirstSeq)
		}
		if len(anchors) == 0 {
			fmt.Fprintln(a.stdout, "(records cut off the end cannot be seen without an anchor: keep the last seq:hash elsewhere and pass it with --anchor)")
		}
	} else {
		fmt.Fprintf(a.stdout, "%s: CHAIN BROKEN: %d problem(s) in %d lines\n", clean(what), rep.ProblemCount, rep.Lines)
		for _, p := range rep.Problems {
			fmt.Fprintf(a.stdout, "  %s\n", clean(p.String()))
		}
		if rep.ProblemCount > len(rep.Problems) {
			fmt.Fprintf(a.stdout, "  ... and %d more\n", rep.ProblemCount-len(rep.Problems))
		}
	}
	if ce != nil {
		return &exitError{ExitError, fmt.Errorf("%s: %w", what, ce)}
	}
	return nil
}

func cmdPKI(ctx context.Context, a *app, inv *invocation) error {
	dir := inv.args[1]
	switch inv.args[0] {
	case "init":
		for _, f := range []string{"name", "kind", "dns", "ip"} {
			if inv.set[f] {
				return usagef("pki init: --%s is for pki issue", f)
			}
		}
		ca, err := pki.NewCA(inv.o.caName, inv.o.validity)
		if err != nil {
			return err
		}
		if err := ca.Save(dir); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "created CA %q in %s (%s, key %s, mode 0600), valid until %s\n", ca.Cert.Subject.CommonName, dir,
			pki.CACertFile, pki.CAKeyFile, ca.Cert.NotAfter.UTC().Format("2006-01-02"))
		return nil
	case "issue":
		if inv.o.name == "" || inv.o.kind == "" {
			return usagef("pki issue: --name and --kind are required")
		}
		kind, err := pki.ParseKind(inv.o.kind)
		if err != nil {
			return &usageError{err.Error()}
		}
		var ips []net.IP
		for _, s := range inv.o.ips {
			ip := net.ParseIP(s)
			if ip == nil {
				return usagef("pki issue: --ip %q is not an IP address", s)
			}
			ips = append(ips, ip)
		}
		ca, err := pki.LoadCA(dir)
		if err != nil {
			return err
		}
		if ca.Key == nil {
			return fmt.Errorf("pki issue: %s has no %s: only the CA's home can issue", dir, pki.CAKeyFile)
		}
		c, err := ca.Issue(pki.IssueRequest{Name: inv.o.name, Kind: kind, DNSNames: inv.o.dns, IPs: ips, Validity: inv.o.validity})
		if err != nil {
			return err
		}
		if err := c.Save(dir); err != nil {
			return err
		}
		id, err := pki.Identity(c.Cert)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "issued %s certificate %s and key %s (mode 0600), valid until %s\nidentity: %s\n",
			kind, pki.CertFile(dir, inv.o.name), pki.KeyFile(dir, inv.o.name), c.Cert.NotAfter.UTC().Format("2006-01-02"), id)
		if kind != pki.KindServer {
			fmt.Fprintf(a.stdout, "grant it roles in the agent's configuration under this identity\n")
		}
		return nil
	}
	return usagef("pki: unknown subcommand %q (want init or issue)", inv.args[0])
}
