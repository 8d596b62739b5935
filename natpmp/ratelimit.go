package natpmp

import (
	"net/netip"
	"sync"
	"time"
)

// limiter is a token bucket per source address, in a bounded map. A bucket
// that has refilled completely carries no information and is dropped when
// the map is full; when no bucket is idle the least recently seen one goes.
// Time comes in as an argument, so tests drive it.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	max   int // most buckets kept

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst, max int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), max: max, buckets: make(map[netip.Addr]*bucket)}
}

// allow takes one token from src's bucket at now and reports whether there
// was one.
func (l *limiter) allow(src netip.Addr, now time.Time) bool {
	src = src.WithZone("")
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[src]
	if !ok {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[src] = b
	}
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// evict makes room for one bucket: idle (refilled) buckets first, else the
// least recently seen one. Called with l.mu held.
func (l *limiter) evict(now time.Time) {
	var oldest netip.Addr
	var oldestT time.Time
	for a, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, a)
			continue
		}
		if !oldest.IsValid() || b.last.Before(oldestT) {
			oldest, oldestT = a, b.last
		}
	}
	if len(l.buckets) >= l.max && oldest.IsValid() {
		delete(l.buckets, oldest)
	}
}

// size is the number of buckets held (tests).
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
