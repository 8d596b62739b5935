package firewall

import (
	"net/netip"
	"time"
)

// Forward is one IPv4 port forward on the CPE: packets arriving on the WAN
// for Proto/Port are DNATed to To and accepted in forward. Port 0 means the
// CPE does no NAT for it (DS-Lite): only the forward accept towards To.
//
// A LAN host reaches it through the CPE's own NAT too (hairpin, RFC 7648
// §3.1): at the WAN address (SetWANAddr) and Port, and at the upstream's
// external address (SetExternalAddr) and UpstreamPort.
type Forward struct {
	Proto uint8          // 6 TCP, 17 UDP
	Port  uint16         // the CPE's WAN port; 0: accept only, no DNAT
	To    netip.AddrPort // the LAN host and port
	// UpstreamPort is the forward's port at the upstream's external
	// address (the provider's CGN, the ISP box), which may differ from
	// Port (the CGN gave another one): LAN packets to that address and
	// port are DNATed to To. 0: none (nothing upstream, or not known yet).
	// It needs a Port and no Remote (a LAN host is never the remote).
	UpstreamPort uint16
	// Remote, when valid, restricts the forward to that source address.
	Remote netip.Addr
	// Timeout, when not zero, lets the kernel expire the entry on its own
	// (the lease end) even if pcpgw is dead; re-adding refreshes it.
	Timeout time.Duration
}

// Pinhole is one IPv6 firewall pinhole (RFC 6092 §2.3, IGD:2
// WANIPv6FirewallControl, PCP MAP for an IPv6 internal address): inbound
// packets to To (Proto, port) are accepted while it lives.
type Pinhole struct {
	Proto uint8 // 6 TCP, 17 UDP
	To    netip.AddrPort
	// Remote and RemotePort, when set, restrict the sources; zero: any.
	Remote     netip.Addr
	RemotePort uint16
	// RemotePrefix, when valid, restricts the sources to a prefix: a
	// NAT64's Pref64::/n (RFC 6052), whose translated IPv4 peers arrive
	// from it (RFC 7225). Remote and RemotePort are then zero.
	RemotePrefix netip.Prefix
	Timeout      time.Duration
}

// Outbound is the source NAT of one outbound IPv4 flow on the CPE (a PCP
// PEER mapping, RFC 6887 §12, RFC 7648 §3): packets of Proto from the LAN
// host From to the remote To leave the WAN with the source Via (the WAN
// address and a port chosen before the flow exists), instead of whatever
// port the main firewall's masquerade would pick. It only decides the
// NAT of a flow's first packet: a flow that exists keeps its own (see
// NFT.FlowSource).
type Outbound struct {
	Proto uint8 // 6 TCP, 17 UDP
	From  netip.AddrPort
	To    netip.AddrPort
	Via   netip.AddrPort
	// Timeout lets the kernel expire the entry (the PEER lifetime); the
	// flows it started keep their NAT in conntrack.
	Timeout time.Duration
}

// Change is one batch: everything in it reaches the kernel in one netlink
// transaction, deletions first.
type Change struct {
	AddForwards []Forward
	DelForwards []Forward
	AddPinholes []Pinhole
	DelPinholes []Pinhole
	AddOutbound []Outbound
	DelOutbound []Outbound
}

// Empty reports whether c changes nothing.
func (c Change) Empty() bool {
	return len(c.AddForwards)+len(c.DelForwards)+len(c.AddPinholes)+len(c.DelPinholes)+
		len(c.AddOutbound)+len(c.DelOutbound) == 0
}
