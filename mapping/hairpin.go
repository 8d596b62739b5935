package mapping

import (
	"time"

	"github.com/pcpgw/pcpgw/firewall"
)

// Hairpin of the upstream's external address (RFC 7648 §3.1): a LAN host
// connecting to a mapping's outermost endpoint (the provider's address
// and the port the provider gave it) is sent to the mapping's LAN host by
// the CPE itself. The upstream's port need not be the CPE's WAN port (the
// CGN had the WAN port taken and gave another, or translates ports), so
// the firewall keys that hairpin by the upstream port each forward
// carries (firewall.Forward.UpstreamPort), never by the WAN port: a
// connection to the provider's address at some port reaches the mapping
// the provider gave that port, not another whose WAN port is that number.
//
// The core keeps entry.hairpin (what the kernel's forward of e carries)
// in step with hairpinPortLocked whenever a mapping's upstream endpoint
// or state changes: an upstream answer (a new mapping, a renewal given
// another port, a refusal), a Mapping Update, a withdrawal, another
// upstream taking over, a WAN address change; removal drops it with the
// forward. byHairpin makes sure no two forwards carry the same upstream
// port (the kernel's map holds one target per port).

// hairpinPortLocked is the upstream port e's forward is to carry: its
// external port while the upstream has made it and the CPE NATs it
// (nat444), else 0: local, portset and kind none (the external address is
// the WAN's, hairpinned by the WAN port), DS-Lite (the CPE does not NAT;
// the AFTR hairpins), NAT64 mappings and pinholes, a mapping with a
// remote host (a LAN host is not that host), one not made upstream
// (pending, failing) or removed.
func (c *Core) hairpinPortLocked(e *entry) uint16 {
	if e.removed || c.mode != ModeNAT444 || !c.upstreamLocked() || e.Upstream != UpstreamOK ||
		e.WANPort == 0 || e.NAT64 || e.IsPinhole() || e.RemoteHost.IsValid() || !e.External.IsValid() {
		return 0
	}
	return e.External.Port()
}

// rehairpinLocked brings e's hairpin in line with hairpinPortLocked,
// adding to change the kernel's update: e's forward deleted with the
// upstream port it carried and added with the new one (one batch, so the
// WAN forward never lapses). When another mapping's forward carries the
// same upstream port, the newer upstream answer (upAt) holds it: the
// upstream gave the port to that mapping last, so the other one's claim
// is stale (its own next answer gives it its new port). The older one
// loses it, so that rehairpinAllLocked does not hand a port back to a
// stale claim whatever the table's order. With change nil only the
// table's record is set (at start, before the kernel is synced with the
// table).
func (c *Core) rehairpinLocked(e *entry, now time.Time, change *firewall.Change) {
	p := c.hairpinPortLocked(e)
	if p != 0 && p != e.hairpin {
		if x := c.byHairpin[keyOf(e.Proto, p)]; x != nil && x != e {
			if x.upAt.After(e.upAt) {
				p = 0 // x's answer is newer: the port is x's
			} else {
				c.setHairpinLocked(x, 0, now, change)
			}
		}
	}
	if p == e.hairpin {
		return
	}
	c.setHairpinLocked(e, p, now, change)
}

// rehairpinAllLocked is rehairpinLocked for every port mapping: those
// that lose their hairpin first, so that one taking over another's port
// finds it free.
func (c *Core) rehairpinAllLocked(now time.Time, change *firewall.Change) {
	for _, e := range c.order {
		if e.hairpin != 0 && c.hairpinPortLocked(e) != e.hairpin {
			c.setHairpinLocked(e, 0, now, change)
		}
	}
	for _, e := range c.order {
		c.rehairpinLocked(e, now, change)
	}
}

func (c *Core) setHairpinLocked(e *entry, p uint16, now time.Time, change *firewall.Change) {
	if change != nil {
		change.DelForwards, change.DelPinholes = appendFW(change.DelForwards, change.DelPinholes, e, time.Time{})
	}
	c.dropHairpinLocked(e)
	e.hairpin = p
	if p != 0 {
		c.byHairpin[keyOf(e.Proto, p)] = e
	}
	if change != nil {
		change.AddForwards, change.AddPinholes = appendFW(change.AddForwards, change.AddPinholes, e, now)
	}
}

// dropHairpinLocked forgets e's hairpin in the table (its forward is
// deleted, or sent again, by the caller).
func (c *Core) dropHairpinLocked(e *entry) {
	if k := keyOf(e.Proto, e.hairpin); e.hairpin != 0 && c.byHairpin[k] == e {
		delete(c.byHairpin, k)
	}
	e.hairpin = 0
}
