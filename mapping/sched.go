package mapping

import (
	"container/heap"
	"context"
	"time"

	"github.com/pcpgw/pcpgw/firewall"
)

// schedItem is a deadline of one entry: its lease end or its next upstream
// renewal, whichever comes first. Items whose gen no longer matches the
// entry's are stale and skipped.
type schedItem struct {
	at  time.Time
	id  uint32
	gen uint64
}

type schedHeap []schedItem

func (h schedHeap) Len() int           { return len(h) }
func (h schedHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h schedHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *schedHeap) Push(x any)        { *h = append(*h, x.(schedItem)) }
func (h *schedHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// deadline is when e next needs attention (zero: never).
func (e *entry) deadline() time.Time {
	d := e.Expires
	if !e.renewAt.IsZero() && (d.IsZero() || e.renewAt.Before(d)) {
		d = e.renewAt
	}
	return d
}

// pushLocked schedules e's next deadline.
func (c *Core) pushLocked(e *entry) {
	d := e.deadline()
	if d.IsZero() || e.removed {
		return
	}
	if len(c.sched) == 0 || d.Before(c.sched[0].at) {
		c.kickLocked()
	}
	heap.Push(&c.sched, schedItem{at: d, id: e.ID, gen: e.gen})
	// Stale items pile up when leases are renewed often; compact now and then.
	if len(c.sched) > 4*len(c.entries)+64 {
		live := c.sched[:0]
		for _, it := range c.sched {
			if x := c.entries[it.id]; x != nil && x.gen == it.gen {
				live = append(live, it)
			}
		}
		c.sched = live
		heap.Init(&c.sched)
	}
}

func (c *Core) kickLocked() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// schedLoop expires leases and starts renewals at their deadlines.
func (c *Core) schedLoop(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := time.Now()
		var change firewall.Change
		var gone []*entry
		c.mu.Lock()
		for len(c.sched) > 0 && !c.sched[0].at.After(now) {
			it := heap.Pop(&c.sched).(schedItem)
			e := c.entries[it.id]
			if e == nil || e.gen != it.gen {
				continue
			}
			if !e.Expires.IsZero() && !e.Expires.After(now) {
				c.log.Debug("lease ended", "proto", e.Proto, "internal", e.Internal, "client", e.Client)
				c.removeLocked(e, &change)
				gone = append(gone, e)
				continue
			}
			if !e.renewAt.IsZero() && !e.renewAt.After(now) {
				e.renewAt = time.Time{}
				c.startRenewLocked(e)
			}
		}
		next := time.Hour
		if len(c.sched) > 0 {
			next = max(c.sched[0].at.Sub(now), time.Millisecond)
		}
		c.mu.Unlock()
		c.apply(ctx, change)
		for _, e := range gone {
			c.upstreamDeleteBG(e)
		}
		t.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-c.quit:
			return
		case <-c.wake:
		case <-t.C:
		}
	}
}
