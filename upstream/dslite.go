package upstream

import "net/netip"

// b4Space is RFC 6333 §5.7's 192.0.0.0/29, the IPv4 addresses of a
// DS-Lite softwire's ends: the AFTR takes 192.0.0.1 and the B4 one of the
// others (OpenWrt's ds-<name> tunnel holds 192.0.0.2).
var b4Space = netip.MustParsePrefix("192.0.0.0/29")

// IsB4 reports whether a is a DS-Lite B4 address: a WAN holding one has
// no IPv4 address of its own; only the AFTR's PCP server (over IPv6) can
// open ports.
func IsB4(a netip.Addr) bool { a = a.Unmap(); return a.Is4() && b4Space.Contains(a) }

// ietfSpace is 192.0.0.0/24, IETF protocol assignments (RFC 6890): not
// globally reachable, so never a CPE's public address.
var ietfSpace = netip.MustParsePrefix("192.0.0.0/24")

// SetAFTRName changes the DS-Lite AFTR name (DHCPv6 option 64, the
// option aftr_name): detection runs again (a blocking one, which puts a
// fresh backend in force), the new name is resolved and its AFTR replaces
// the PCP server in force (mappings are then made there). The same name
// again does nothing.
func (a *Auto) SetAFTRName(name string) {
	a.mu.Lock()
	same := name == a.aftr
	a.aftr = name
	a.mu.Unlock()
	if !same {
		a.Redetect("AFTR name " + name)
	}
}
