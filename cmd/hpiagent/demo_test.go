package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
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

// TestDemo runs the demo for a few seconds against its embedded shelf and
// checks what an operator would look at: every sensor of the shelf in the
// sweep table and the hot-swap transitions of the scripted extraction.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for 3 s")
	}
	var stdout, stderr syncBuffer
	code := run([]string{"demo", "-duration", "3s", "-interval", "1s", "-hotswap-every", "1s"}, &stdout, &stderr)
	out := stdout.String()
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	if strings.Contains(stderr.String(), "level=ERROR") || strings.Contains(stderr.String(), "level=WARN") {
		t.Errorf("warnings or errors logged:\n%s", stderr.String())
	}
	sweeps := strings.Split(out, "\n--- sweep at ")
	if len(sweeps) < 3 {
		t.Fatalf("%d sweeps in 3 s at 1 s intervals:\n%s", len(sweeps)-1, out)
	}
	cfg := sim.DefaultConfig()
	type row struct{ name, owner, status string }
	var want []row
	for _, sc := range cfg.Sensors {
		want = append(want, row{regexp.QuoteMeta(sc.Name), "shelf manager", `ok|[lu](nc|cr|nr)`})
	}
	want = append(want, row{".+", "shelf manager", "M[0-7]"}) // its hot-swap sensor
	for _, m := range cfg.IPMCs {
		owner := fmt.Sprintf("IPMC 0x%02x", m.Addr)
		for _, sc := range m.Sensors {
			want = append(want, row{regexp.QuoteMeta(sc.Name), owner, `ok|[lu](nc|cr|nr)`})
		}
		want = append(want, row{".+", owner, "M[0-7]"})
	}
	for i, sweep := range sweeps[1:] {
		if !regexp.MustCompile(`(?m)^SENSOR\s+OWNER\s+VALUE\s+UNIT\s+STATUS$`).MatchString(sweep) {
			t.Errorf("sweep %d has no table header:\n%s", i, sweep)
		}
		for _, w := range want {
			re := regexp.MustCompile(`(?m)^` + w.name + `\s+` + regexp.QuoteMeta(w.owner) + `\s+.*\s(` + w.status + `)$`)
			if !re.MatchString(sweep) {
				t.Errorf("sweep %d: no row for %s of %s with status %s:\n%s", i, w.name, w.owner, w.status, sweep)
			}
		}
		if n := strings.Count(sweep, "\n") - 1; n < len(want) {
			t.Errorf("sweep %d has %d lines, the shelf has %d sensors", i, n, len(want))
		}
	}
	if !regexp.MustCompile(`(?m)^hot-swap: .+ \(0x[0-9a-f]{2}\) M[0-7] -> M[0-7]$`).MatchString(out) {
		t.Errorf("no hot-swap transition in the output:\n%s", out)
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
