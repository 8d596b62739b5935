package mapping

import (
	"context"

	"github.com/pcpgw/pcpgw/firewall"
)

// SetPinholes turns IPv6 pinholes on or off (the ipv6_pinholes option,
// changed by a reload). Turning them off closes every live pinhole, in
// the kernel too, so that none stays open that the configuration no
// longer allows; requests for pinholes then get CodeDisabled. Subscribers
// get EventFirewall when the setting changes. It returns how many
// pinholes it closed.
func (c *Core) SetPinholes(ctx context.Context, on bool) int {
	var change firewall.Change
	c.mu.Lock()
	if c.pinholesOn.Load() == on {
		c.mu.Unlock()
		return 0
	}
	c.pinholesOn.Store(on)
	var gone []*entry
	if !on {
		for _, e := range c.order {
			if e.IsPinhole() {
				gone = append(gone, e)
			}
		}
		for _, e := range gone {
			c.removeLocked(e, &change)
		}
	}
	c.emitLocked(Event{Kind: EventFirewall})
	c.mu.Unlock()
	c.log.Info("IPv6 pinholes", "enabled", on, "closed", len(gone))
	c.apply(ctx, change)
	return len(gone)
}
