package natpmp

import (
	"net/netip"
	"testing"
	"time"
)

func TestLimiterBucket(t *testing.T) {
	l := newLimiter(2, 3, 16) // 2 tokens/s, burst 3
	a := netip.MustParseAddr("192.0.2.100")
	b := netip.MustParseAddr("192.0.2.101")
	now := t0
	for i := range 3 {
		if !l.allow(a, now) {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	if l.allow(a, now) {
		t.Fatal("request past the burst allowed")
	}
	if !l.allow(b, now) {
		t.Fatal("another host starved by the first")
	}
	now = now.Add(499 * time.Millisecond)
	if l.allow(a, now) {
		t.Fatal("token before its time")
	}
	now = now.Add(time.Millisecond)
	if !l.allow(a, now) {
		t.Fatal("token not refilled after 500 ms at 2/s")
	}
	now = now.Add(time.Hour)
	for i := range 3 {
		if !l.allow(a, now) {
			t.Fatalf("refill past the burst: request %d refused", i)
		}
	}
	if l.allow(a, now) {
		t.Fatal("bucket refilled beyond the burst")
	}
	// A clock going backwards does not mint tokens.
	if l.allow(a, now.Add(-time.Minute)) {
		t.Fatal("token from a clock going backwards")
	}
}

func TestLimiterBounded(t *testing.T) {
	l := newLimiter(1, 2, 4)
	now := t0
	busy := netip.MustParseAddr("192.0.2.1")
	l.allow(busy, now) // not idle: 1 token left of 2
	for i := range 100 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		if !l.allow(a, now) {
			t.Fatalf("new host %v refused", a)
		}
		if n := l.size(); n > 4 {
			t.Fatalf("%d buckets kept, bound is 4", n)
		}
	}
	// Idle buckets go first: after a long pause, new hosts evict refilled
	// entries, and a host that was evicted starts with a full bucket.
	now = now.Add(time.Minute)
	for i := range 8 {
		l.allow(netip.AddrFrom4([4]byte{172, 16, 0, byte(i)}), now)
	}
	if n := l.size(); n > 4 {
		t.Fatalf("%d buckets kept, bound is 4", n)
	}
}

// TestRateLimitHandle floods from one host: past the burst its requests are
// dropped and counted, while another host is still answered.
func TestRateLimitHandle(t *testing.T) {
	s, _, clock := newTestServer(t, func(c *Config) { c.RatePerHost, c.Burst = 1, 5 })
	req := hx(t, "0000")
	answered := 0
	for range 50 {
		if s.Handle(lanHost, cpeLAN, req, clock.now()) != nil {
			answered++
		}
	}
	if answered != 5 {
		t.Errorf("flooding host answered %d times, want the burst of 5", answered)
	}
	other := netip.MustParseAddrPort("192.0.2.101:5350")
	if s.Handle(other, cpeLAN, req, clock.now()) == nil {
		t.Error("other host starved")
	}
	st := s.Stats()
	if st.RateLimited != 45 || st.Replies != 6 || st.NATPMPExternalAddr != 6 {
		t.Errorf("stats %+v: want 45 rate-limited, 6 replies", st)
	}
	clock.t = clock.t.Add(time.Second)
	if s.Handle(lanHost, cpeLAN, req, clock.now()) == nil {
		t.Error("flooding host not answered again after a second")
	}
}
