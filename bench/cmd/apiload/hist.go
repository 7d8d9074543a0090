package main

import (
	"math"
	"math/bits"
	"time"
)

// subBits is the number of bits of resolution within each power of two:
// 2^7 = 128 buckets per octave bound the relative error of a recorded value
// to under 0.8 %.
const subBits = 7

const (
	subCount = 1 << subBits
	// octaves covers every uint64 nanosecond value.
	octaves = 64 - subBits + 1
)

// histogram is a log-linear latency histogram of fixed size (HdrHistogram's
// layout with one significant binary digit group): values below 128 ns are
// exact, larger ones fall into one of 128 buckets per power of two. It is
// not safe for concurrent use; each worker keeps its own and merges them.
type histogram struct {
	counts [octaves * subCount]uint64
	n      uint64
	sum    float64
	max    uint64
}

// bucketOf returns the bucket index of v nanoseconds.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - 1 - subBits
	return (shift+1)*subCount + int(v>>uint(shift)-subCount)
}

// bucketUpper returns the largest value that falls into bucket i.
func bucketUpper(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	shift := i/subCount - 1
	lower := uint64(i%subCount+subCount) << uint(shift)
	return lower + (1 << uint(shift)) - 1
}

// record adds one latency.
func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	h.max = max(h.max, v)
}

// merge adds the counts of o.
func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the latency at quantile q (0 < q <= 1): the upper bound
// of the bucket holding the ceil(q*n)-th smallest value, never above the
// largest value recorded. It is 0 for an empty histogram.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketUpper(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// mean returns the mean latency.
func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}
