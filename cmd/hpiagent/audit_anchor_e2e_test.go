package main

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"hpiagent/api/audit"
	"hpiagent/internal/labshelf"
)

// TestClusterAuditAnchors: every member anchors its audit log's head in
// the cluster log. A member stopped cleanly whose audit log is then cut
// back to before its anchored record (which the log's own hash chain
// cannot show: what is left verifies) finds this when it starts again,
// logs it as an error and writes it to its audit log; the other members
// find nothing wrong with theirs.
func TestClusterAuditAnchors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an ipmi_sim shelf and three agent processes")
	}
	labshelf.RequireTools(t, "ipmi_sim", "ipmitool")
	t.Parallel()
	bin := buildBinary(t, t.TempDir(), "./cmd/hpiagent")
	lab := newClusterLab(t, bin, 3, "    - {name: chassis, executors: [{type: chassis}]}\n", false)
	lab.waitFormed()
	lab.waitFor("every member to anchor its audit log and find it matching", 60*time.Second, func() bool {
		for _, ag := range lab.agents {
			if len(ag.records("audit log anchored in the cluster log")) == 0 || len(ag.records("audit log matches its anchors in the cluster log")) == 0 {
				return false
			}
		}
		return true
	})
	victim := lab.agents[2]
	anchored := victim.records("audit log anchored in the cluster log")[0]
	seq := uint64(anchored["seq"].(float64))
	path := filepath.Join(lab.dir, victim.name, "audit.log")

	// A clean stop (the others see it leave: no fence), then the log is
	// cut back to before the anchored record.
	victim.cmd.Process.Signal(syscall.SIGTERM)
	<-victim.done
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	if uint64(len(lines)) < seq {
		t.Fatalf("the audit log has %d lines, the anchored seq is %d", len(lines), seq)
	}
	cut := bytes.Join(lines[:seq-1], nil)
	if _, err := audit.Verify(bytes.NewReader(cut)); err != nil {
		t.Fatalf("the cut log does not verify by itself, so this test would not show what anchors add: %v", err)
	}
	if err := os.WriteFile(path, cut, 0o600); err != nil {
		t.Fatal(err)
	}
	lab.start(victim)
	lab.waitFor("the restarted member to find its audit log cut", 60*time.Second, func() bool {
		return len(victim.records("audit log cut short or rewritten")) > 0 || len(victim.records("audit anchor conflict")) > 0
	})
	// It is in the member's audit log, not only in its journal.
	lab.waitFor("the finding in the audit log", 10*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		return bytes.Contains(b, []byte(`"action":"audit.anchor-mismatch"`)) || bytes.Contains(b, []byte(`"action":"audit.anchor-conflict"`))
	})
	for _, ag := range lab.agents[:2] {
		if n := len(ag.records("audit log cut short or rewritten")) + len(ag.records("audit anchor conflict")); n != 0 {
			t.Errorf("%s reports its intact audit log as cut (%d)", ag.name, n)
		}
		if len(fenceEntries(ag, victim.name, "fence-requested")) != 0 {
			t.Errorf("%s fenced the cleanly stopped %s", ag.name, victim.name)
		}
	}
}
