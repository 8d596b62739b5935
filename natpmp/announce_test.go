package natpmp

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestAnnounceSchedule checks the 10 sends of RFC 6886 §3.2.1 and RFC 6887
// §14.1.3: at once, then 250 ms later, each interval doubling; and that a
// new trigger restarts the schedule.
func TestAnnounceSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _, _ := newTestServer(t, nil)
		ctx, cancel := context.WithCancel(t.Context())
		trigger := make(chan struct{}, 1)
		var mu sync.Mutex
		var sends []time.Duration
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.announceLoop(ctx, trigger, func() {
				mu.Lock()
				sends = append(sends, time.Since(start))
				mu.Unlock()
			})
		}()
		trigger <- struct{}{}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		ms := time.Millisecond
		want := []time.Duration{0, 250 * ms, 750 * ms, 1750 * ms, 3750 * ms, 7750 * ms, 15750 * ms, 31750 * ms, 63750 * ms, 127750 * ms}
		mu.Lock()
		if diff := cmp.Diff(want, sends); diff != "" {
			t.Errorf("send times (-want +got):\n%s", diff)
		}
		sends = nil
		mu.Unlock()

		// A trigger in the middle of a schedule starts it again.
		start = time.Now()
		trigger <- struct{}{}
		time.Sleep(2 * time.Second) // sends at 0, .25, .75, 1.75
		trigger <- struct{}{}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		want2 := []time.Duration{0, 250 * ms, 750 * ms, 1750 * ms}
		for _, d := range want {
			want2 = append(want2, 2*time.Second+d)
		}
		mu.Lock()
		if diff := cmp.Diff(want2, sends); diff != "" {
			t.Errorf("send times after a re-trigger (-want +got):\n%s", diff)
		}
		mu.Unlock()
		cancel()
		<-done
	})
}
