package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"hpiagent/shelf/sim"
)

// syncBuffer is a bytes.Buffer safe for the demo's concurrent loggers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemo runs the demo for a few seconds in-process and checks what an
// operator looks at: the agent becomes ready with the shelf discovered, the
// hpictl instructions name files that exist while it runs, the scripted
// hot-swap shows up as HPI hot-swap events, nothing is logged at warning
// level or above, and the exit is clean.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for 4 s")
	}
	t.Parallel()
	var stdout, stderr syncBuffer
	dir := t.TempDir()
	code := run([]string{"demo", "-duration", "4s", "-interval", "1s", "-hotswap-every", "1s", "-state-dir", dir}, &stdout, &stderr)
	out := stdout.String()
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	if strings.Contains(stderr.String(), "level=ERROR") || strings.Contains(stderr.String(), "level=WARN") {
		t.Errorf("warnings or errors logged:\n%s", stderr.String())
	}
	cfg := sim.DefaultConfig()
	if !regexp.MustCompile(`(?m)^agent ready: 1/1 shelves discovered, \d+ resources, API on 127\.0\.0\.1:\d+$`).MatchString(out) {
		t.Errorf("no ready line:\n%s", out)
	}
	// One resource per controller at least (ShMC, fan tray, blades).
	if n := strings.Count(out, ": ADDED ("); n < 1+len(cfg.IPMCs) {
		t.Errorf("%d resources added, the shelf has %d controllers:\n%s", n, 1+len(cfg.IPMCs), out)
	}
	for _, name := range []string{"HPICTL_ENDPOINT=https://127.0.0.1:", "HPICTL_CA=" + dir, "HPICTL_CERT=" + dir, "HPICTL_KEY=" + dir, "hpictl resources", "hpictl sensors", "hpictl events --follow"} {
		if !strings.Contains(out, name) {
			t.Errorf("instructions lack %q:\n%s", name, out)
		}
	}
	if !regexp.MustCompile(`(?m)^event \d+: hot-swap .+ \(\d+\): ACTIVE -> EXTRACTION_PENDING`).MatchString(out) {
		t.Errorf("no hot-swap event from the scripted extraction:\n%s", out)
	}
	// The audit log of the run is complete and verifies.
	b, err := os.ReadFile(filepath.Join(dir, "audit.log"))
	if err != nil || !strings.Contains(string(b), `"agent.start"`) || !strings.Contains(string(b), `"agent.stop"`) {
		t.Errorf("audit log: %v\n%s", err, b)
	}
}

func TestDrifter(t *testing.T) {
	const unc = 3
	sensor := func(nominal, uncTh, mask uint8) sim.SensorConfig {
		sc := sim.SensorConfig{Number: 7, Nominal: nominal, ThresholdMask: mask}
		sc.Thresholds[unc] = uncTh
		return sc
	}
	tests := []struct {
		name string
		sc   sim.SensorConfig
		ok   bool
	}{
		{"upper non-critical far above nominal", sensor(52, 85, 0x3f), true},
		{"just enough room", sensor(24, 27, 0x08), true},
		{"near the top of the range", sensor(240, 253, 0x08), true},
		{"near the bottom of the range", sensor(1, 40, 0x08), true},
		{"no upper non-critical threshold", sensor(160, 0, 0x07), false},
		{"threshold too close to nominal", sensor(24, 26, 0x08), false},
		{"threshold at the top of the range", sensor(100, 254, 0x08), false},
		{"nominal zero", sensor(0, 40, 0x08), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := newDrifter(0x20, tc.sc)
			if ok != tc.ok {
				t.Fatalf("newDrifter ok = %t, want %t", ok, tc.ok)
			}
			if !ok {
				return
			}
			// Over many steps the reading stays between one below
			// nominal and one past the threshold, crosses the threshold
			// and comes back to nominal afterwards.
			rng := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			crossed, back := false, false
			for range 2000 {
				d.step(rng)
				if d.raw < tc.sc.Nominal-1 || d.raw > tc.sc.Thresholds[unc]+1 {
					t.Fatalf("raw %d outside [%d, %d]", d.raw, tc.sc.Nominal-1, tc.sc.Thresholds[unc]+1)
				}
				if d.raw > tc.sc.Thresholds[unc] {
					crossed = true
				}
				if crossed && d.raw <= tc.sc.Nominal+1 {
					back = true
				}
			}
			if !crossed || !back {
				t.Errorf("crossed the threshold: %t, came back: %t", crossed, back)
			}
		})
	}
}
