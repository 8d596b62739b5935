package mapping

import (
	"container/heap"
	"context"
	"time"

	"github.com/pcpgw/pcpgw/firewall"
)

// schedHeap orders the entries that have a deadline (their lease end or
// next upstream renewal, whichever comes first) by it. Each entry is in it
// at most once, at index sidx, so a renewal moves it instead of adding an
// item: 8 bytes per mapping however often leases are renewed.
type schedHeap []*entry

func (h schedHeap) Len() int           { return len(h) }
func (h schedHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h schedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].sidx, h[j].sidx = int32(i), int32(j)
}
func (h *schedHeap) Push(x any) {
	e := x.(*entry)
	e.sidx = int32(len(*h))
	*h = append(*h, e)
}
func (h *schedHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.sidx = -1
	return e
}

// deadline is when e next needs attention (zero: never).
func (e *entry) deadline() time.Time {
	d := e.Expires
	if !e.renewAt.IsZero() && (d.IsZero() || e.renewAt.Before(d)) {
		d = e.renewAt
	}
	return d
}

// pushLocked (re)schedules e at its next deadline, or takes it out of the
// schedule when it has none or is removed.
func (c *Core) pushLocked(e *entry) {
	d := e.deadline()
	if d.IsZero() || e.removed {
		if e.sidx >= 0 {
			heap.Remove(&c.sched, int(e.sidx))
		}
		return
	}
	if len(c.sched) == 0 || d.Before(c.sched[0].due) {
		c.kickLocked()
	}
	e.due = d
	if e.sidx >= 0 {
		heap.Fix(&c.sched, int(e.sidx))
	} else {
		heap.Push(&c.sched, e)
	}
}

// resyncLocked makes the kernel hold exactly the table, after a batch
// failed. It holds mu meanwhile, so that no change of the table slips
// between the copy and the kernel (changes already made and still on their
// way to the kernel only repeat what the table holds).
func (c *Core) resyncLocked(ctx context.Context, now time.Time) {
	var fwds []firewall.Forward
	var pins []firewall.Pinhole
	for _, e := range c.order {
		fwds, pins = appendFW(fwds, pins, e, now)
	}
	if err := c.fw.Sync(ctx, fwds, pins); err != nil {
		c.syncBackoff = min(max(2*c.syncBackoff, time.Second), time.Minute)
		c.syncAt = now.Add(c.syncBackoff)
		for _, e := range c.order {
			e.kernelStale = true
		}
		c.log.Error("firewall: resync failed", "err", err, "retry", c.syncBackoff)
		return
	}
	c.needSync, c.syncBackoff = false, 0
	c.log.Info("firewall: kernel resynced with the table", "forwards", len(fwds), "pinholes", len(pins))
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
		c.mu.Lock()
		for len(c.sched) > 0 && !c.sched[0].due.After(now) {
			e := heap.Pop(&c.sched).(*entry)
			if !e.Expires.IsZero() && !e.Expires.After(now) {
				c.log.Debug("lease ended", "proto", e.Proto, "internal", e.Internal, "client", e.Client)
				c.removeLocked(e, &change)
				c.upstreamDeleteLocked(e)
				continue
			}
			if !e.renewAt.IsZero() && !e.renewAt.After(now) {
				e.renewAt = time.Time{}
				c.startRenewLocked(e)
			}
			c.pushLocked(e) // its next deadline, if it has one
		}
		if c.needSync && !now.Before(c.syncAt) {
			c.resyncLocked(ctx, now)
		}
		next := time.Hour
		if len(c.sched) > 0 {
			next = max(c.sched[0].due.Sub(now), time.Millisecond)
		}
		if c.needSync {
			next = min(next, max(c.syncAt.Sub(now), time.Millisecond))
		}
		c.mu.Unlock()
		c.apply(ctx, change)
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
