package pcp

import "net/netip"

// UsableExternal reports whether a may be an external address a NAT
// gives out: not invalid, unspecified, loopback, multicast or
// link-local, and for IPv4 not in 0.0.0.0/8, 240.0.0.0/4 or the limited
// broadcast address. Answers carrying another one are refused whoever
// sends them (a spoofed or broken announcement must not change the
// address LAN clients are told).
func UsableExternal(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() ||
		a.IsLinkLocalUnicast() || a.IsInterfaceLocalMulticast() {
		return false
	}
	if a.Is4() {
		b := a.As4()
		return b[0] != 0 && b[0] < 240
	}
	return true
}
