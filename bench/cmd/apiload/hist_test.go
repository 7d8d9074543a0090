package main

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, 1<<63 - 1, 1<<64 - 1} {
		i := bucketOf(v)
		if up := bucketUpper(i); up < v {
			t.Errorf("value %d: bucket %d upper bound %d is below it", v, i, up)
		}
		if i > 0 {
			if prev := bucketUpper(i - 1); prev >= v {
				t.Errorf("value %d: bucket %d, previous bucket's upper bound %d is not below it", v, i, prev)
			}
		}
		if i >= len(histogram{}.counts) {
			t.Fatalf("value %d: bucket %d out of range", v, i)
		}
	}
}

func TestQuantile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		vals func() []time.Duration
	}{
		{"uniform µs", func() []time.Duration {
			var v []time.Duration
			for range 10000 {
				v = append(v, time.Duration(rng.IntN(1000))*time.Microsecond)
			}
			return v
		}},
		{"long tail", func() []time.Duration {
			var v []time.Duration
			for range 9900 {
				v = append(v, 200*time.Microsecond+time.Duration(rng.IntN(50000)))
			}
			for range 100 {
				v = append(v, 30*time.Millisecond+time.Duration(rng.IntN(1e6)))
			}
			return v
		}},
		{"one value", func() []time.Duration { return []time.Duration{42 * time.Millisecond} }},
		{"tiny exact", func() []time.Duration { return []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals := tt.vals()
			// Two halves merged must equal one histogram of everything.
			var a, b histogram
			for i, v := range vals {
				if i%2 == 0 {
					a.record(v)
				} else {
					b.record(v)
				}
			}
			a.merge(&b)
			slices.Sort(vals)
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
				rank := int(float64(len(vals))*q+0.999999) - 1
				want := vals[max(rank, 0)]
				got := a.quantile(q)
				if got < want || float64(got-want) > float64(want)*0.008+1 {
					t.Errorf("q%.3f = %v, want %v within 0.8%%", q, got, want)
				}
			}
			if a.n != uint64(len(vals)) || time.Duration(a.max) != vals[len(vals)-1] {
				t.Errorf("n=%d max=%v, want %d and %v", a.n, time.Duration(a.max), len(vals), vals[len(vals)-1])
			}
		})
	}
	var empty histogram
	if empty.quantile(0.99) != 0 || empty.mean() != 0 {
		t.Error("empty histogram should report 0")
	}
}

func FuzzReadPaths(f *testing.F) {
	f.Add("/v1/resources/1/sensors/3\n/v1/resources\n")
	f.Add("# comment\n\n  /a  \n")
	f.Add("no-slash\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		paths, err := readPaths(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, p := range paths {
			if !strings.HasPrefix(p, "/") || strings.TrimSpace(p) != p {
				t.Fatalf("path %q accepted", p)
			}
		}
	})
}

func TestReadPaths(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"/a\n/b\n", []string{"/a", "/b"}, false},
		{"# c\n\n /a \n", []string{"/a"}, false},
		{"", nil, false},
		{"/a\nb\n", nil, true},
	}
	for _, tt := range tests {
		got, err := readPaths(strings.NewReader(tt.in))
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("readPaths(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
