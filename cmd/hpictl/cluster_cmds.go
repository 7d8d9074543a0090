package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"

	"hpiagent/cmd/hpictl/internal/apiclient"
	secureerase "hpiagent/secure-erase"
)

// The cluster, hot-swap workflow and erase certificate commands.

func cmdCluster(ctx context.Context, a *app, inv *invocation) error {
	return get(ctx, inv, "/v1/cluster", func(c apiclient.Cluster) error {
		quorum := "no quorum"
		if c.Quorum {
			quorum = "quorum"
		}
		fmt.Fprintf(a.stdout, "node %s (%s), leader %s, term %d, last index %d, commit %d, applied %d, %s\n",
			clean(c.Node), clean(c.State), clean(orDash(c.Leader)), c.Term, c.LastIndex, c.CommitIndex, c.AppliedIndex, quorum)
		t := newTable(a.stdout, "MEMBER", "ADDRESS", "STATE", "VERIFIED", "VOTER", "")
		for _, m := range c.Members {
			self := ""
			if m.Self {
				self = "(this node)"
			}
			if m.Name == c.Leader {
				self = strings.TrimSpace(self + " leader")
			}
			t.row(m.Name, m.Address, m.State, yesNo(m.Verified), yesNo(m.Voter), self)
		}
		return t.flush()
	})
}

func workflowRow(w apiclient.Workflow) []string {
	state := w.Phase
	if !w.Active && w.Outcome != "" {
		state += " (" + w.Outcome + ")"
	}
	return []string{w.ID, w.Kind, state, strconv.Itoa(w.Attempt), orDash(w.FRU.Entity), orDash(w.Alarm)}
}

func cmdWorkflows(ctx context.Context, a *app, inv *invocation) error {
	return get(ctx, inv, "/v1/workflows", func(ws []apiclient.Workflow) error {
		t := newTable(a.stdout, "ID", "KIND", "PHASE", "ATTEMPT", "FRU", "ALARM")
		for _, w := range ws {
			t.row(workflowRow(w)...)
		}
		return t.flush()
	})
}

func showWorkflow(a *app) func(apiclient.Workflow) error {
	return func(w apiclient.Workflow) error {
		t := newTable(a.stdout, "FIELD", "VALUE")
		t.row("id", w.ID)
		t.row("kind", w.Kind)
		t.row("phase", w.Phase)
		t.row("active", yesNo(w.Active))
		t.row("attempt", strconv.Itoa(w.Attempt))
		t.row("fru", fmt.Sprintf("%s (shelf %s, IPMB 0x%02x, FRU %d)", orDash(w.FRU.Entity), orDash(w.FRU.Shelf), w.FRU.IPMB, w.FRU.ID))
		t.row("started by", orDash(w.Actor))
		t.row("required members", orDash(strings.Join(w.Required, ",")))
		for _, m := range []struct {
			name string
			v    map[string]string
		}{{"applied", w.Applied}, {"refused", w.Refused}, {"revoked", w.Revoked}} {
			keys := make([]string, 0, len(m.v))
			for k := range m.v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				t.row(m.name, k+": "+m.v[k])
			}
		}
		t.row("wipe certificate", orDash(w.Certificate))
		if w.WipeError != "" {
			t.row("wipe error", w.WipeError)
		}
		if w.Override != nil {
			t.row("override", fmt.Sprintf("by %s: %s (log index %d)", w.Override.Actor, w.Override.Reason, w.Override.Index))
		}
		if w.Alarm != "" {
			t.row("alarm", w.Alarm)
		}
		if w.Outcome != "" {
			t.row("outcome", strings.TrimSpace(w.Outcome+" "+w.Reason))
		}
		t.row("log indexes", fmt.Sprintf("start %d, last %d, end %d", w.StartIndex, w.LastIndex, w.EndIndex))
		return t.flush()
	}
}

func cmdWorkflow(ctx context.Context, a *app, inv *invocation) error {
	return get(ctx, inv, apiclient.WorkflowPath(inv.args[0], ""), showWorkflow(a))
}

func cmdExtract(ctx context.Context, a *app, inv *invocation) error {
	return send(ctx, inv, http.MethodPost, apiclient.ResourcePath(inv.args[0], "/extract"), apiclient.WorkflowRequest{Reason: inv.o.reason},
		func(w apiclient.WorkflowStarted) error {
			fmt.Fprintf(a.stdout, "forced extraction started: workflow %s\n", clean(w.Workflow))
			return nil
		})
}

func workflowAction(sub string, needReason bool) func(ctx context.Context, a *app, inv *invocation) error {
	return func(ctx context.Context, a *app, inv *invocation) error {
		if needReason && strings.TrimSpace(inv.o.reason) == "" {
			return usagef("%s: --reason is required (it is recorded in the audit and cluster logs)", inv.cmd.name)
		}
		return send(ctx, inv, http.MethodPost, apiclient.WorkflowPath(inv.args[0], "/"+sub), apiclient.WorkflowRequest{Reason: inv.o.reason},
			func(w apiclient.Workflow) error {
				fmt.Fprintf(a.stdout, "workflow %s: %s done; now %s\n", clean(w.ID), sub, clean(w.Phase))
				return nil
			})
	}
}

func cmdCerts(ctx context.Context, a *app, inv *invocation) error {
	return get(ctx, inv, "/v1/erase-certificates", func(cs []apiclient.EraseCertificateSummary) error {
		t := newTable(a.stdout, "ID", "COMPLETED", "OUTCOME", "FRU", "NODE", "TARGET", "KEY")
		for _, c := range cs {
			if c.Error != "" {
				t.row(c.ID, "-", "error: "+c.Error, "", "", "", "")
				continue
			}
			done := "-"
			if c.Completed != nil {
				done = fmtTime(*c.Completed)
			}
			key := c.KeyID
			if len(key) > 16 {
				key = key[:16]
			}
			t.row(c.ID, done, c.Outcome, c.FRU, c.Node, c.Target, orDash(key))
		}
		return t.flush()
	})
}

// loadPublicKey reads a PEM "PUBLIC KEY" (PKIX) file or a certificate
// whose key is the node's.
func loadPublicKey(path string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the public key: %w", err)
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("public key %s: no PEM PUBLIC KEY or CERTIFICATE block", path)
		}
		switch blk.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("public key %s: %w", path, err)
			}
			return k, nil
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("public key %s: %w", path, err)
			}
			return c.PublicKey, nil
		}
	}
}

func cmdCert(ctx context.Context, a *app, inv *invocation) error {
	if inv.o.verify && inv.o.pubkey == "" {
		return usagef("cert: --verify needs --pubkey <file> (the node's public key, PEM)")
	}
	var pub any
	if inv.o.verify {
		k, err := loadPublicKey(inv.o.pubkey)
		if err != nil {
			return &exitError{ExitUsage, err}
		}
		pub = k
	}
	c, err := inv.client()
	if err != nil {
		return err
	}
	raw, err := c.Call(ctx, http.MethodGet, apiclient.EraseCertificatePath(inv.args[0]), nil, nil)
	if err != nil {
		return err
	}
	var cert secureerase.Certificate
	if err := json.Unmarshal(raw, &cert); err != nil {
		return fmt.Errorf("decoding certificate %s: %w", clean(inv.args[0]), err)
	}
	if inv.o.verify {
		if err := secureerase.Verify(&cert, pub); err != nil {
			return fmt.Errorf("certificate %s does NOT verify: %w", clean(cert.ID), err)
		}
	}
	if inv.o.json {
		if err := printJSON(a.stdout, raw); err != nil {
			return err
		}
	} else {
		t := newTable(a.stdout, "FIELD", "VALUE")
		t.row("id", cert.ID)
		t.row("fru", cert.FRU)
		t.row("node", cert.Node)
		t.row("target", cert.Target)
		t.row("outcome", cert.Outcome)
		if cert.Error != "" {
			t.row("error", cert.Error)
		}
		t.row("started", fmtTime(cert.Started))
		t.row("completed", fmtTime(cert.Completed))
		if cert.Signature != nil {
			t.row("signed by key", cert.Signature.KeyID+" ("+cert.Signature.Algorithm+")")
		} else {
			t.row("signed by key", "unsigned")
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if inv.o.verify {
		fmt.Fprintf(a.stderr, "hpictl: certificate %s: signature verified\n", clean(cert.ID))
	}
	return nil
}

func fenceRow(n apiclient.FenceNode) []string {
	op := "-"
	if f := n.Fence; f != nil {
		op = f.ID + " " + f.Action + " by " + f.Source
		switch {
		case f.Done:
			op += " (done)"
		case f.Failed:
			op += " (failed: " + f.Error + ")"
		}
	}
	return []string{n.Node, n.Phase, n.Power, op}
}

// cmdFence lists the fencing targets, shows one, or fences (off, reboot)
// or unfences (on) one.
func cmdFence(ctx context.Context, a *app, inv *invocation) error {
	header := []string{"NODE", "PHASE", "POWER", "LAST FENCE"}
	switch len(inv.args) {
	case 0:
		return get(ctx, inv, "/v1/fence", func(l apiclient.FenceList) error {
			t := newTable(a.stdout, header...)
			for _, n := range l.Nodes {
				t.row(fenceRow(n)...)
			}
			return t.flush()
		})
	case 1:
		return get(ctx, inv, apiclient.FencePath(inv.args[0]), func(n apiclient.FenceNode) error {
			t := newTable(a.stdout, header...)
			t.row(fenceRow(n)...)
			return t.flush()
		})
	}
	act := strings.ToLower(inv.args[1])
	switch act {
	case "off", "on", "reboot":
	default:
		return usagef("fence action %q: want off, on or reboot", inv.args[1])
	}
	return send(ctx, inv, http.MethodPost, apiclient.FencePath(inv.args[0]), apiclient.FenceRequest{Action: act, Reason: inv.o.reason},
		func(o apiclient.FenceOutcome) error {
			note := ""
			if o.Note != "" {
				note = " (" + o.Note + ")"
			}
			fmt.Fprintf(a.stdout, "%s of %s recorded as operation %s; phase %s%s\n", act, clean(o.Node), clean(o.Op), clean(o.Phase), clean(note))
			return nil
		})
}

func cmdAnchors(ctx context.Context, a *app, inv *invocation) error {
	path := "/v1/audit/anchors"
	if len(inv.args) == 1 {
		path += "?node=" + url.QueryEscape(inv.args[0])
	}
	return get(ctx, inv, path, func(v apiclient.AuditAnchors) error {
		t := newTable(a.stdout, "NODE", "ANCHOR", "TIME", "LOG INDEX")
		for _, an := range v.Anchors {
			t.row(an.Node, fmt.Sprintf("%d:%s", an.Seq, an.Hash), fmtTime(an.Time), fmt.Sprint(an.Index))
		}
		if err := t.flush(); err != nil {
			return err
		}
		for _, c := range v.Conflicts {
			fmt.Fprintf(a.stdout, "CONFLICT %s: %s (anchored %d, then %d)\n", clean(c.Node), clean(c.Reason), c.Earlier.Seq, c.Later.Seq)
		}
		return nil
	})
}
