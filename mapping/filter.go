package mapping

import (
	"time"

	"github.com/pcpgw/pcpgw/firewall"
)

// refilterLocked applies the filter of a renewal r of e (PCP FILTER: the
// filter of a request replaces the mapping's, RFC 6887 §13.3 as pcpgw
// keeps one remote host and port per mapping; natpmp passes the old one
// when the request has no FILTER). The kernel's element is replaced (the
// old key deleted, the new one added, in change: nothing stays open to
// the old remote host), the table written at once, and the upstream
// asked again with the new filter. Other origins keep their filter on a
// renewal (IGD: the remote host is part of what a control point names).
func (c *Core) refilterLocked(e *entry, r Request, now time.Time, change *firewall.Change) {
	if e.Origin != OriginPCP || r.Origin != OriginPCP || r.RemoteHost == e.RemoteHost && r.RemotePort == e.RemotePort {
		return
	}
	change.DelForwards, change.DelPinholes = appendFW(change.DelForwards, change.DelPinholes, e, time.Time{})
	// The forward comes back without its hairpin (one with a remote host
	// has none), which rehairpinLocked gives back when it has no remote
	// host (hairpin.go), in the same batch.
	c.dropHairpinLocked(e)
	e.RemoteHost, e.RemotePort = r.RemoteHost, r.RemotePort
	change.AddForwards, change.AddPinholes = appendFW(change.AddForwards, change.AddPinholes, e, now)
	c.rehairpinLocked(e, now, change)
	c.dirtyLocked()
	if e.Upstream == UpstreamOK && c.upstreamLocked() && !e.IsPinhole() && !e.busy {
		c.startRenewLocked(e)
	}
}
