package pcpclient

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
)

// TestRetransmitSchedule covers REQUIREMENT 4 with testing/synctest: a
// server that never answers sees the request at 0, then after ~3 s, ~6 s,
// ~12 s ... capped at 1024 s, each interval within ±10% of
// min(2*previous, 1024 s) (the first within ±10% of 3 s), with the same
// nonce every time; the caller gets ErrTimeout when its ctx ends.
func TestRetransmitSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		server := netip.MustParseAddrPort("100.64.0.1:5351")
		mc := newMemConn(server)
		c, err := New(Config{
			Servers: []netip.AddrPort{server},
			Linger:  -1,
			dial: func(netip.AddrPort) (packetConn, netip.Addr, error) {
				return mc, netip.MustParseAddr("100.64.0.2"), nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 6000*time.Second)
		defer cancel()
		start := time.Now()
		_, err = c.Map(ctx, MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("100.64.0.2:80"), Lifetime: 600})
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrTimeout wrapping the deadline", err)
		}
		pkts := mc.packets()
		if len(pkts) < 12 {
			t.Fatalf("only %d transmissions in 6000 s", len(pkts))
		}
		if !pkts[0].at.Equal(start) {
			t.Errorf("first transmission at +%v, want at once", pkts[0].at.Sub(start))
		}
		var nonce pcp.Nonce
		var prev time.Duration
		capped := 0
		for i, p := range pkts {
			r := parseReq(t, p.b)
			if i == 0 {
				nonce = r.Map.Nonce
			} else if r.Map.Nonce != nonce {
				t.Errorf("transmission %d: nonce changed", i)
			}
			if r.Client != netip.MustParseAddr("100.64.0.2") {
				t.Errorf("transmission %d: client %v", i, r.Client)
			}
			if i == 0 {
				continue
			}
			got := p.at.Sub(pkts[i-1].at)
			base := 3 * time.Second
			if i > 1 {
				base = min(2*prev, 1024*time.Second)
			}
			if got < base*9/10 || got > base*11/10 {
				t.Errorf("interval %d = %v, want %v ±10%%", i, got, base)
			}
			if got > 1024*time.Second*11/10 {
				t.Errorf("interval %d = %v exceeds MRT+10%%", i, got)
			}
			if got >= 1024*time.Second*9/10 {
				capped++
			}
			t.Logf("transmission %d at +%v (interval %v)", i, p.at.Sub(start).Round(time.Millisecond), got.Round(time.Millisecond))
			prev = got
		}
		if capped < 2 {
			t.Errorf("only %d intervals reached the 1024 s cap", capped)
		}
		st := c.Status()
		if st.Sent != uint64(len(pkts)) || st.Reachable {
			t.Errorf("status %+v", st)
		}
	})
}

func TestNextRT(t *testing.T) {
	irt, mrt := 3*time.Second, 1024*time.Second
	for _, tc := range []struct {
		prev time.Duration
		rnd  float64
		want time.Duration
	}{
		{0, 0.5, 3 * time.Second},
		{0, 0, 2700 * time.Millisecond},
		{0, 1, 3300 * time.Millisecond},
		{3 * time.Second, 0.5, 6 * time.Second},
		{600 * time.Second, 0.5, 1024 * time.Second},
		{1024 * time.Second, 1, 1126400 * time.Millisecond},
	} {
		if got := nextRT(tc.prev, irt, mrt, tc.rnd); got != tc.want {
			t.Errorf("nextRT(%v, rnd %v) = %v, want %v", tc.prev, tc.rnd, got, tc.want)
		}
	}
}

// TestNextRenewal covers REQUIREMENT 9: [1/2, 5/8], [3/4, 3/4+1/16],
// [7/8, 7/8+1/32] of the lifetime, never less than 4 s after the previous.
func TestNextRenewal(t *testing.T) {
	g := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	life := 1600 * time.Second
	for _, tc := range []struct {
		attempt int
		lo, hi  time.Duration
	}{
		{0, 800 * time.Second, 1000 * time.Second},
		{1, 1200 * time.Second, 1300 * time.Second},
		{2, 1400 * time.Second, 1450 * time.Second},
		{3, 1500 * time.Second, 1525 * time.Second},
	} {
		if got := NextRenewal(g, life, tc.attempt, time.Time{}, 0); got != g.Add(tc.lo) {
			t.Errorf("attempt %d rnd 0: %v, want %v", tc.attempt, got.Sub(g), tc.lo)
		}
		if got := NextRenewal(g, life, tc.attempt, time.Time{}, 0.999999999); got.Sub(g) < tc.hi-time.Millisecond || got.Sub(g) > tc.hi {
			t.Errorf("attempt %d rnd ~1: %v, want ~%v", tc.attempt, got.Sub(g), tc.hi)
		}
		if got := NextRenewal(g, life, tc.attempt, time.Time{}, 0.5); got.Sub(g) != (tc.lo+tc.hi)/2 {
			t.Errorf("attempt %d rnd 0.5: %v", tc.attempt, got.Sub(g))
		}
	}
	// Late attempts on a short lifetime: at least 4 s after the previous one.
	prev := g.Add(118 * time.Second)
	if got := NextRenewal(g, 120*time.Second, 6, prev, 0); got != prev.Add(4*time.Second) {
		t.Errorf("gap: %v after prev, want 4s", got.Sub(prev))
	}
	// Out-of-range inputs are clamped, not trusted.
	if got := NextRenewal(g, life, -3, time.Time{}, -1); got != g.Add(800*time.Second) {
		t.Errorf("clamped: %v", got.Sub(g))
	}
	if got := NextRenewal(g, life, 500, time.Time{}, 5); got.After(g.Add(life)) {
		t.Errorf("attempt 500 after expiry: %v", got.Sub(g))
	}
}

// TestBackgroundAfterTimeout covers REQUIREMENT 4's second half: the caller
// gets ErrTimeout within its own deadline while the request keeps being
// retransmitted; the late answer is still booked (the mapping is known).
func TestBackgroundAfterTimeout(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, func(cfg *Config) { cfg.Linger = time.Minute })
	srv.DropNext(2)
	in := netip.MustParseAddrPort("127.0.0.1:8080")
	start := time.Now()
	_, err := c.Map(ctxT(t, 40*time.Millisecond), MapRequest{Protocol: 6, Internal: in, Lifetime: 60})
	if !errors.Is(err, ErrTimeout) || time.Since(start) > time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
	eventually(t, 3*time.Second, func() bool { return srv.Mappings() == 1 }, "background request never answered")
	eventually(t, 3*time.Second, func() bool { return c.Delete(ctxT(t, time.Second), MapRequest{Protocol: 6, Internal: in}) == nil }, "late answer not booked")
}

// TestLingerEnds: after Config.Linger without callers the retransmission
// of an unanswered request stops (testing/synctest).
func TestLingerEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		server := netip.MustParseAddrPort("100.64.0.1:5351")
		mc := newMemConn(server)
		c, err := New(Config{
			Servers: []netip.AddrPort{server},
			Linger:  100 * time.Second,
			dial: func(netip.AddrPort) (packetConn, netip.Addr, error) {
				return mc, netip.MustParseAddr("100.64.0.2"), nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.Map(ctx, MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("100.64.0.2:80"), Lifetime: 600}); !errors.Is(err, ErrTimeout) {
			t.Fatal(err)
		}
		n := len(mc.packets())
		time.Sleep(50 * time.Second)
		synctest.Wait()
		if m := len(mc.packets()); m <= n {
			t.Errorf("no retransmission within Linger (%d -> %d)", n, m)
		}
		time.Sleep(60 * time.Second) // past Linger
		synctest.Wait()
		n = len(mc.packets())
		time.Sleep(3000 * time.Second)
		synctest.Wait()
		if m := len(mc.packets()); m != n {
			t.Errorf("still retransmitting after Linger: %d -> %d", n, m)
		}
	})
}
