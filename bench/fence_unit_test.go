package bench

import (
	"math"
	"testing"
	"time"

	"hpiagent/fencing"
)

func TestFencePct(t *testing.T) {
	t.Parallel()
	xs := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, tc := range []struct {
		p    float64
		want float64
	}{{0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}, {0, 1}, {0.1, 1}, {0.11, 2}} {
		if got := fencePct(xs, tc.p); got != tc.want {
			t.Errorf("fencePct(p=%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := fencePct(nil, 0.5); !math.IsNaN(got) {
		t.Errorf("fencePct(nil) = %v, want NaN", got)
	}
}

// TestFenceRecorder: the bench's false-fence count and sample split follow
// the Machine's outcomes.
func TestFenceRecorder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		killed []string
		in     []fencing.Outcome
		falses int
		done   bool
	}{
		{"killed node fenced", []string{"a"}, []fencing.Outcome{
			{Kind: fencing.KindFenceRequested, Target: "a", Accepted: true},
			{Kind: fencing.KindLevelStarted, Target: "a", Accepted: true},
			{Kind: fencing.KindLevelResult, Target: "a", Accepted: true, Done: true},
		}, 0, true},
		{"live node requested", []string{"a"}, []fencing.Outcome{{Kind: fencing.KindFenceRequested, Target: "b", Accepted: true}}, 1, false},
		{"live node request refused", nil, []fencing.Outcome{{Kind: fencing.KindFenceRequested, Target: "b"}}, 0, false},
		{"result without confirmation", []string{"a"}, []fencing.Outcome{{Kind: fencing.KindLevelResult, Target: "a", Accepted: true}}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newFenceRecorder()
			for _, k := range tc.killed {
				r.kill(k)
			}
			t0 := time.Now()
			r.memberDead("a", t0.Add(time.Second))
			for _, o := range tc.in {
				r.observe(o)
			}
			if got := len(r.falses()); got != tc.falses {
				t.Errorf("false fences %d, want %d (%v)", got, tc.falses, r.falses())
			}
			s, ok := r.sample("a", t0)
			if ok != tc.done {
				t.Fatalf("sample done %v, want %v", ok, tc.done)
			}
			if ok && (s.dead < 1 || s.done < 0 || s.started > s.done || s.requested > s.started) {
				t.Errorf("sample %+v out of order", s)
			}
		})
	}
}
