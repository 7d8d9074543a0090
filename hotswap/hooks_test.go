package hotswap

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// script writes an executable shell script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func testStep(op Op) Step {
	return Step{Key: stepKey("w1", op), Workflow: "w1", Kind: KindInsertion, Op: op, FRU: fruA, DeviceClass: "blade", Attempt: 1}
}

func TestExecHook(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name    string
		body    string
		timeout time.Duration
		wantErr string
		check   func(t *testing.T, out string)
	}{
		{name: "stdin and env", body: `cat > "$OUT"; echo "op=$HPIAGENT_OP key=$HPIAGENT_STEP_KEY home=$HOME" >> "$OUT"; echo applied`,
			check: func(t *testing.T, out string) {
				lines := strings.SplitN(out, "\n", 2)
				var s Step
				if err := json.Unmarshal([]byte(lines[0]), &s); err != nil {
					t.Fatalf("stdin was not the step JSON: %q: %v", lines[0], err)
				}
				if s.Workflow != "w1" || s.FRU != fruA || s.Op != OpApply {
					t.Fatalf("step = %+v", s)
				}
				if !strings.Contains(lines[1], "op=apply key=w1/apply home=\n") {
					t.Fatalf("environment: %q (nothing may be inherited)", lines[1])
				}
			}},
		{name: "exit status", body: `echo "policy engine down" >&2; exit 3`, wantErr: "exit status 3"},
		{name: "timeout kills the group", body: `sleep 30 & sleep 30`, timeout: 300 * time.Millisecond, wantErr: "deadline exceeded"},
		{name: "bounded output", body: `head -c 1000000 /dev/zero | tr '\0' x; echo ok`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "out"+string(rune('a'+i)))
			h := &ExecHook{HookName: "test", Command: CommandConfig{
				Path: script(t, dir, "hook"+string(rune('a'+i)), tc.body), Timeout: tc.timeout, MaxOutput: 4096,
				Env: []string{"PATH=/usr/bin:/bin", "OUT=" + out}}}
			start := time.Now()
			d, err := h.Apply(context.Background(), testStep(OpApply))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				var he *HookError
				if !errors.As(err, &he) {
					t.Fatalf("err is %T, not *HookError", err)
				}
				if tc.name == "exit status" && (he.ExitCode != 3 || !strings.Contains(he.Stderr, "policy engine down") || strings.Contains(err.Error(), "policy engine")) {
					t.Fatalf("exit %d, stderr %q, error %q (stderr must be captured, not in the error)", he.ExitCode, he.Stderr, err)
				}
				if time.Since(start) > 10*time.Second {
					t.Fatal("the hook's children kept it running")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !validDigest(string(d)) {
				t.Fatalf("digest %q", d)
			}
			if tc.check != nil {
				b, _ := os.ReadFile(out)
				tc.check(t, string(b))
			}
			// Same step, same output: same digest; revoke: another one.
			d2, _ := h.Apply(context.Background(), testStep(OpApply))
			if d2 != d {
				t.Fatal("digest not stable")
			}
			if r, _ := h.Revoke(context.Background(), testStep(OpRevoke)); r == d {
				t.Fatal("revoke has the apply digest")
			}
		})
	}
	if _, err := (&ExecHook{HookName: "rel", Command: CommandConfig{Path: "hook.sh"}}).Apply(context.Background(), testStep(OpApply)); err == nil {
		t.Fatal("relative command path accepted")
	}
}

func TestRuleFileHook(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.d")
	if err := os.Mkdir(rules, 0o755); err != nil {
		t.Fatal(err)
	}
	reloads := filepath.Join(dir, "reloads")
	reload := script(t, dir, "reload", `echo "$HPIAGENT_OP $(ls "$RULES" | tr '\n' ' ')" >> "$LOG"`)
	h := &RuleFileHook{HookName: "fw", Dir: rules,
		Render: func(s Step) ([]byte, error) {
			return []byte("allow ipmb " + s.FRU.Key() + " class " + s.DeviceClass + "\n"), nil
		},
		Reload: CommandConfig{Path: reload, Env: []string{"PATH=/usr/bin:/bin", "LOG=" + reloads, "RULES=" + rules}}}
	ctx := context.Background()
	d1, err := h.Apply(ctx, testStep(OpApply))
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(rules, "hpiagent-shelf-a-86-0.rules")
	b, err := os.ReadFile(name)
	if err != nil || string(b) != "allow ipmb shelf-a/0x86/0 class blade\n" {
		t.Fatalf("rule file: %q %v", b, err)
	}
	if fi, _ := os.Stat(name); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode())
	}
	d2, err := h.Apply(ctx, testStep(OpApply))
	if err != nil || d2 != d1 {
		t.Fatalf("re-apply: %v %s %s", err, d1, d2)
	}
	ents, _ := os.ReadDir(rules)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if _, err := h.Revoke(ctx, testStep(OpRevoke)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(name); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("rule file not removed")
	}
	if _, err := h.Revoke(ctx, testStep(OpRevoke)); err != nil {
		t.Fatalf("revoking again: %v", err)
	}
	log, _ := os.ReadFile(reloads)
	want := "apply hpiagent-shelf-a-86-0.rules \napply hpiagent-shelf-a-86-0.rules \nrevoke \nrevoke \n"
	if string(log) != want {
		t.Fatalf("reloads:\n%s\nwant:\n%s", log, want)
	}
	// A failing reload is an error (the rules are not in force).
	bad := &RuleFileHook{HookName: "fw", Dir: rules, Render: h.Render,
		Reload: CommandConfig{Path: script(t, dir, "badreload", "exit 1")}}
	if _, err := bad.Apply(ctx, testStep(OpApply)); err == nil {
		t.Fatal("failed reload not reported")
	}
	// File names from a template must stay in the directory.
	esc := &RuleFileHook{HookName: "fw", Dir: rules, Render: h.Render, Reload: h.Reload,
		FileName: func(Step) string { return "../escape" }}
	if _, err := esc.Apply(ctx, testStep(OpApply)); err == nil {
		t.Fatal("rule file name with a directory accepted")
	}
}

func TestCommandOutputIsBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := CommandConfig{Path: script(t, dir, "loud", `head -c 100000 /dev/zero | tr '\0' x; head -c 100000 /dev/zero | tr '\0' y >&2`),
		MaxOutput: 1000, Env: []string{"PATH=/usr/bin:/bin"}}.withDefaults()
	res, err := c.run(context.Background(), "loud", OpApply, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.stdout) != 1000 || len(res.stderr) != 1000 || !res.truncated {
		t.Fatalf("stdout %d, stderr %d bytes, truncated %v", len(res.stdout), len(res.stderr), res.truncated)
	}
}
