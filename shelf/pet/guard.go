package pet

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"time"
)

// bucket is a token bucket.
type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b at rate tokens per second up to burst and takes one
// token if there is one.
func (b *bucket) take(now time.Time, rate float64, burst int) bool {
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(float64(burst), b.tokens+el*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// lru is a map bounded to max entries that evicts the least recently
// used one. Not safe for concurrent use.
type lru[K comparable, V any] struct {
	max   int
	order *list.List // front = most recent; values are *lruEntry
	m     map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	k K
	v V
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, order: list.New(), m: make(map[K]*list.Element)}
}

// get returns the entry for k, creating it with mk when absent (evicting
// the least recently used entry when full), and marks it used.
func (c *lru[K, V]) get(k K, mk func() V) (v *V, evicted bool) {
	if e, ok := c.m[k]; ok {
		c.order.MoveToFront(e)
		return &e.Value.(*lruEntry[K, V]).v, false
	}
	if c.order.Len() >= c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.m, old.Value.(*lruEntry[K, V]).k)
		evicted = true
	}
	ent := &lruEntry[K, V]{k: k, v: mk()}
	c.m[k] = c.order.PushFront(ent)
	return &ent.v, evicted
}

// lookup returns the entry for k without creating it.
func (c *lru[K, V]) lookup(k K) (*V, bool) {
	e, ok := c.m[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return &e.Value.(*lruEntry[K, V]).v, true
}

func (c *lru[K, V]) len() int { return c.order.Len() }

// limiter applies the per-source and the global token buckets. The
// per-source check comes first, so that one flooding source cannot drain
// the global bucket beyond its own rate.
type limiter struct {
	srcRate, globalRate   float64
	srcBurst, globalBurst int
	sources               *lru[netip.Addr, bucket]
	global                bucket
}

func newLimiter(c *Config, now time.Time) *limiter {
	return &limiter{
		srcRate: c.SourceRate, srcBurst: c.SourceBurst,
		globalRate: c.GlobalRate, globalBurst: c.GlobalBurst,
		sources: newLRU[netip.Addr, bucket](c.MaxSources),
		global:  bucket{tokens: float64(c.GlobalBurst), last: now},
	}
}

// allow returns "" or the reason for dropping a packet from src.
func (l *limiter) allow(src netip.Addr, now time.Time) Reason {
	b, _ := l.sources.get(src, func() bucket { return bucket{tokens: float64(l.srcBurst), last: now} })
	if !b.take(now, l.srcRate, l.srcBurst) {
		return ReasonRateLimitedSource
	}
	if !l.global.take(now, l.globalRate, l.globalBurst) {
		return ReasonRateLimitedGlobal
	}
	return ""
}

// timeWindow is the USM time window (RFC 3414 §2.2.3).
const timeWindow = 150 * time.Second

// engineTime is the receiver's notion of a remote authoritative engine's
// clock (RFC 3414 §2.3, §3.2 step 7b).
type engineTime struct {
	boots, time, latest int64
	at                  time.Time // local time when time was recorded
}

// engines tracks engineTime per authoritative engine ID, bounded.
type engines struct {
	m *lru[string, engineTime]
}

// check applies RFC 3414 §3.2 step 7b for a message whose authoritative
// engine is remote (a trap sender) and reports whether it is in the time
// window. The engine's notion is updated first, as the RFC says, so a
// newer boots value or a later time is learned. The first message of an
// engine not yet known is accepted and sets the notion.
func (e *engines) check(id []byte, boots, t int64, now time.Time) bool {
	et, ok := e.m.lookup(string(id))
	if !ok {
		et, _ = e.m.get(string(id), func() engineTime {
			return engineTime{boots: boots, time: t, latest: t, at: now}
		})
	}
	if boots > et.boots || (boots == et.boots && t > et.latest) {
		et.boots, et.time, et.latest, et.at = boots, t, t, now
	}
	local := et.time + int64(now.Sub(et.at)/time.Second)
	switch {
	case et.boots == maxInt31:
		return false
	case boots < et.boots:
		return false
	case boots == et.boots && t < local-int64(timeWindow/time.Second):
		return false
	}
	return true
}

// replayCache remembers authenticated messages for longer than the time
// window, so that an exact copy is refused even while it is still inside
// the window. Entries are kept in arrival order and expire from the front.
// When it is full of live entries, new messages are refused (fail
// closed): only authenticated, rate-limited messages get here.
type replayCache struct {
	max   int
	ttl   time.Duration
	seen  map[[32]byte]struct{}
	queue []replayEntry // arrival order; head at index head
	head  int
}

type replayEntry struct {
	key     [32]byte
	expires time.Time
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, ttl: 2 * timeWindow, seen: make(map[[32]byte]struct{})}
}

// replayKey digests what identifies one message: the authoritative engine,
// its boots and time, the msgID and the message authentication code.
func replayKey(m *message) [32]byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(m.usm.engineID)))
	h.Write(n[:])
	h.Write(m.usm.engineID)
	for _, v := range []int64{m.usm.boots, m.usm.time, m.msgID} {
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	h.Write(m.usm.authParams)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (c *replayCache) expire(now time.Time) {
	for c.head < len(c.queue) && !now.Before(c.queue[c.head].expires) {
		delete(c.seen, c.queue[c.head].key)
		c.head++
	}
	// Compact when the consumed prefix dominates.
	if c.head > 0 && c.head >= len(c.queue)/2 {
		n := copy(c.queue, c.queue[c.head:])
		clear(c.queue[n:])
		c.queue = c.queue[:n]
		c.head = 0
	}
}

// add records k; it returns ReasonReplay for a message already seen and
// ReasonReplayCacheFull when the cache cannot hold it.
func (c *replayCache) add(k [32]byte, now time.Time) Reason {
	c.expire(now)
	if _, ok := c.seen[k]; ok {
		return ReasonReplay
	}
	if len(c.seen) >= c.max {
		return ReasonReplayCacheFull
	}
	c.seen[k] = struct{}{}
	c.queue = append(c.queue, replayEntry{key: k, expires: now.Add(c.ttl)})
	return ""
}

func (c *replayCache) len() int { return len(c.seen) }
