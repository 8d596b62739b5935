package mapping

import (
	"context"
	"strconv"

	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/portset"
)

// PortSet is what portset mode knows of the provider's port set.
type PortSet struct {
	// Set is every port the provider forwards to this CPE.
	Set portset.Set
	// Pool is the part of Set mappings take their external ports from;
	// the rest is left to the CPE's outbound NAT. Empty: all of Set.
	Pool portset.Set
}

// pool is the ports mappings may take.
func (ps PortSet) pool() portset.Set {
	if ps.Pool.Empty() {
		return ps.Set
	}
	return ps.Pool
}

// portAllowedLocked reports whether a port mapping may hold external port
// p: any port outside portset mode, a port of the pool in it.
func (c *Core) portAllowedLocked(p uint16) bool {
	return c.mode != ModePortSet || c.ports.pool().Contains(p)
}

// pickInSetLocked is pickPortLocked in portset mode: the port wanted when
// it is in the pool and free, else (unless r asks for that port exactly)
// the nearest free one of the pool. done is false for an exact request
// of a port of the pool that is not free: pickPortLocked says why.
func (c *Core) pickInSetLocked(r Request, want uint16, free func(uint16) bool) (port uint16, err error, done bool) {
	pool := c.ports.pool()
	if pool.Contains(want) && free(want) {
		return want, nil, true
	}
	if r.ExactPort {
		switch {
		case !c.ports.Set.Contains(want):
			return 0, &Error{Code: CodeOutsidePortSet,
				Msg: "port " + strconv.Itoa(int(want)) + " is outside the provider's port set (" + c.ports.Set.Summary(3) + ")"}, true
		case !pool.Contains(want):
			return 0, &Error{Code: CodeOutsidePortSet,
				Msg: "port " + strconv.Itoa(int(want)) + " is kept for the router's outbound connections (mappings take " + pool.Summary(3) + ")"}, true
		}
		return 0, nil, false
	}
	if p, ok := pool.Nearest(want, free); ok {
		return p, nil, true
	}
	if r.Origin != OriginStatic && !c.anyAllowed(r.Internal.Addr(), r.Internal.Port()) {
		return 0, &Error{Code: CodeNotAuthorized, Msg: "not allowed by the permission rules"}, true
	}
	return 0, &Error{Code: CodeNoResources, Msg: "no free port left in the port set (" + pool.Summary(3) + ")"}, true
}

// PortSet returns the port set in force (zero outside portset mode).
func (c *Core) PortSet() PortSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ports
}

// SetPortSet replaces the port set (the provider gave the CPE another
// one, say after a new delegated prefix). Mappings whose external port is
// not in the new pool are removed: their LAN hosts get a port of the new
// set when they ask again (NAT-PMP and PCP clients renew; the daemon
// makes the static forwards again).
func (c *Core) SetPortSet(ctx context.Context, ps PortSet) int {
	c.mu.Lock()
	if ps.Set.Equal(c.ports.Set) && ps.Pool.Equal(c.ports.Pool) {
		c.mu.Unlock()
		return 0
	}
	c.log.Info("port set changed", "set", ps.Set.Summary(3), "pool", ps.pool().Summary(3))
	c.ports = ps
	var change firewall.Change
	var gone []*entry
	for _, e := range c.order {
		if !e.IsPinhole() && !c.portAllowedLocked(e.port) {
			gone = append(gone, e)
		}
	}
	for _, e := range gone {
		c.log.Info("mapping outside the new port set removed", "proto", e.Proto, "external", e.port, "internal", e.Internal)
		c.removeLocked(e, &change)
	}
	c.mu.Unlock()
	c.apply(ctx, change)
	return len(gone)
}
