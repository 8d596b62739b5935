package mapping

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/upstream"
)

// NAT64 mappings (RFC 6887 §5 and §11, RFC 7225, RFC 7648): an IPv6-only
// LAN host (a NAS, a camera) asks, with its own PCP client, for an IPv4
// port at the provider's NAT64: a MAP of its IPv6 address with an IPv4
// suggested external address (all zeros for any). pcpgw relays it
// upstream with THIRD_PARTY and PREFIX64, lets inbound IPv6 from the
// NAT64's prefixes through to the host and port (the NAT64 translates its
// IPv4 peers into them), and answers the IPv4 external address and port.

// DefaultPrefix64 is RFC 6052's well-known prefix: what NAT64 mappings
// admit when neither the provider's answer (PREFIX64) nor Config.Prefix64
// names a prefix.
var DefaultPrefix64 = netip.MustParsePrefix("64:ff9b::/96")

// isNAT64 reports whether r asks for an IPv4 port for an IPv6 host.
func isNAT64(r Request) bool {
	ia := r.Internal.Addr()
	return ia.Is6() && !ia.Is4In6() && r.ExternalAddr.Unmap().Is4()
}

// planNAT64Locked makes e, a new NAT64 mapping, wait for the provider; it
// admits the prefixes known until the provider names its own.
func (c *Core) planNAT64Locked(e *entry) {
	e.Upstream = UpstreamPending
	e.Prefix64 = c.fallbackPrefix64Locked()
}

func (c *Core) fallbackPrefix64Locked() []netip.Prefix {
	if len(c.prefix64) > 0 {
		return slices.Clone(c.prefix64)
	}
	return []netip.Prefix{DefaultPrefix64}
}

// nat64Pinholes appends e's kernel entries: one pinhole to e's host and
// port per prefix, admitting sources in that prefix only.
func nat64Pinholes(pins []firewall.Pinhole, e *entry, timeout time.Duration) []firewall.Pinhole {
	for _, p := range e.Prefix64 {
		pins = append(pins, firewall.Pinhole{Proto: uint8(e.Proto), To: e.Internal, RemotePrefix: p, Timeout: timeout})
	}
	return pins
}

// nat64Request makes r the request for e at the NAT64: the host's own
// address with THIRD_PARTY (RFC 7648 §5: the CPE asks on its behalf), an
// IPv4 external address, and PREFIX64 to learn the NAT64's prefixes.
func nat64Request(e *entry, r *upstream.MapRequest) {
	r.Internal, r.ThirdParty, r.Prefix64 = e.Internal, true, true
	if !e.External.Addr().Is4() {
		r.SuggestedExternal = netip.AddrPortFrom(netip.IPv4Unspecified(), e.port)
	}
}

// nat64AnsweredLocked takes the prefixes the provider named (none: e
// keeps what it admits) and adds to change what the kernel then needs.
func (c *Core) nat64AnsweredLocked(e *entry, pfx []netip.Prefix, now time.Time, change *firewall.Change) {
	if len(pfx) == 0 || slices.Equal(pfx, e.Prefix64) {
		return
	}
	change.DelForwards, change.DelPinholes = appendFW(change.DelForwards, change.DelPinholes, e, time.Time{})
	e.Prefix64 = slices.Clone(pfx)
	e.fromProvider64 = true
	change.AddForwards, change.AddPinholes = appendFW(change.AddForwards, change.AddPinholes, e, now)
	c.log.Info("NAT64 prefixes from the provider", "internal", e.Internal, "prefix64", pfx)
}

// SetPrefix64 changes the NAT64 prefixes admitted by the NAT64 mappings
// whose provider named none (option nat64_prefix, RFC 7050 discovery);
// empty: the well-known one.
func (c *Core) SetPrefix64(ctx context.Context, pfx []netip.Prefix) {
	now := time.Now()
	c.mu.Lock()
	if slices.Equal(pfx, c.prefix64) {
		c.mu.Unlock()
		return
	}
	c.prefix64 = slices.Clone(pfx)
	var change firewall.Change
	for _, e := range c.order {
		if !e.NAT64 || e.fromProvider64 {
			continue
		}
		change.DelForwards, change.DelPinholes = appendFW(change.DelForwards, change.DelPinholes, e, time.Time{})
		e.Prefix64 = c.fallbackPrefix64Locked()
		change.AddForwards, change.AddPinholes = appendFW(change.AddForwards, change.AddPinholes, e, now)
	}
	c.dirtyLocked()
	c.mu.Unlock()
	c.apply(ctx, change)
}
