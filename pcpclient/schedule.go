package pcpclient

import (
	"time"
)

// Retransmission defaults (RFC 6887 §8.1.1).
const (
	DefaultIRT = 3 * time.Second    // initial retransmission time
	DefaultMRT = 1024 * time.Second // maximum retransmission time
)

// minRenewalGap is the least time between two renewals of one mapping
// (RFC 6887 §11.2.1).
const minRenewalGap = 4 * time.Second

// nextRT returns the next retransmission timeout of RFC 6887 §8.1.1: the
// first (prev == 0) is (1+RAND)*IRT, each later one (1+RAND)*min(2*prev, MRT),
// with RAND uniform in [-0.1, +0.1] taken from rnd (a value in [0, 1)).
func nextRT(prev, irt, mrt time.Duration, rnd float64) time.Duration {
	base := irt
	if prev > 0 {
		base = 2 * prev
		if mrt > 0 && base > mrt {
			base = mrt
		}
	}
	factor := 1 + (rnd*0.2 - 0.1)
	return time.Duration(float64(base) * factor)
}

// NextRenewal returns when to send renewal number attempt (0 for the first)
// of a mapping granted at granted for lifetime (RFC 6887 §11.2.1): attempt 0
// at a uniformly random point of [1/2, 5/8] of the lifetime, attempt 1 in
// [3/4, 3/4+1/16], attempt 2 in [7/8, 7/8+1/32], and so on; rnd in [0, 1)
// picks the point. The result is never less than 4 s after prev (the time
// of the previous renewal request; zero: none), even when that falls after
// the mapping's expiry.
func NextRenewal(granted time.Time, lifetime time.Duration, attempt int, prev time.Time, rnd float64) time.Time {
	if attempt < 0 {
		attempt = 0
	}
	if attempt > 60 {
		attempt = 60
	}
	if rnd < 0 {
		rnd = 0
	}
	if rnd >= 1 {
		rnd = 1
	}
	// lower bound 1 - 2^-(attempt+1), window width 2^-(attempt+3).
	lo := 1 - 1/float64(uint64(1)<<uint(attempt+1))
	width := 1 / float64(uint64(1)<<uint(attempt+3))
	at := granted.Add(time.Duration(float64(lifetime) * (lo + rnd*width)))
	if !prev.IsZero() && at.Before(prev.Add(minRenewalGap)) {
		at = prev.Add(minRenewalGap)
	}
	return at
}
