package mapping

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/pcpgw/pcpgw/upstream"
)

// undoDeleteTimeout bounds one delete of an undone mapping at the
// upstream (the client retransmits within it).
const undoDeleteTimeout = 10 * time.Second

// undoLoop deletes at the upstream the mappings whose request was never
// answered before a crash (Core.undo), each with the nonce that was saved
// before its request left, once the upstream is known; those the upstream
// did not answer for are tried again every retryAfterTimeout until it
// does, or until their lease has ended (the upstream's mapping has ended
// then too). Their external ports are given to no new mapping meanwhile:
// a delete by protocol and port (NAT-PMP, UPnP upstreams) must not hit a
// new mapping of the same port.
func (c *Core) undoLoop(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		kctx, kcancel := context.WithTimeout(ctx, upstreamOpTimeout)
		k, _ := c.up.Kind(kctx)
		kcancel()
		now := time.Now()
		var items []*entry
		var reqs []upstream.MapRequest
		c.mu.Lock()
		other := k == upstream.KindNone || k == upstream.KindLocal || c.mode == ModeLocal ||
			c.undoKind != upstream.KindDetecting && k != upstream.KindDetecting && k != c.undoKind
		for _, e := range slices.Clone(c.undo) {
			switch {
			case other:
				c.log.Info("not undone: made at another upstream (it ends there with its lease)", "proto", e.Proto, "internal", e.Internal, "upstream", c.undoKind)
				c.undoDoneLocked(e)
			case !e.Expires.IsZero() && !e.Expires.After(now):
				c.undoDoneLocked(e) // ended at the upstream too
			default:
				r := c.upstreamRequestLocked(e)
				r.Lifetime, r.PreferFailure = 0, false
				items, reqs = append(items, e), append(reqs, r)
			}
		}
		c.mu.Unlock()
		if len(items) == 0 {
			return
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, maxRenewing)
		for i, e := range items {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				dctx, dcancel := context.WithTimeout(ctx, undoDeleteTimeout)
				err := c.up.Delete(dctx, reqs[i])
				dcancel()
				if err != nil && !answered(err) {
					c.log.Info("undoing an unanswered mapping upstream: no answer", "proto", e.Proto, "internal", e.Internal, "err", err)
					return
				}
				c.log.Info("undone upstream: a mapping whose request was never answered", "proto", e.Proto, "internal", e.Internal, "err", err)
				c.mu.Lock()
				c.undoDoneLocked(e)
				c.mu.Unlock()
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-time.After(retryAfterTimeout):
		}
	}
}

// undoDoneLocked forgets e, an undone mapping: its port is free again and
// the journal records it.
func (c *Core) undoDoneLocked(e *entry) {
	i := slices.Index(c.undo, e)
	if i < 0 {
		return
	}
	c.undo = slices.Delete(c.undo, i, i+1)
	k := keyOf(e.Proto, e.port)
	if c.undoKeys[k]--; c.undoKeys[k] <= 0 {
		delete(c.undoKeys, k)
	}
	if c.jr != nil {
		c.jr.undone = append(c.jr.undone, e.nonce)
	}
	c.dirtyLocked()
}
