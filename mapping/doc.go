// Package mapping is pcpgw's one mapping table: every port mapping and IPv6
// pinhole that any front-end (UPnP IGD, NAT-PMP, LAN-side PCP) or the
// configuration (static forwards) asks for.
//
// Front-ends translate a LAN request into a Request (the requester always
// taken from the socket), call Core.Map or Core.Delete, and translate the
// Mapping or the *Error back with UPnPError, UPnPPinholeError, NATPMPResult
// or PCPResult. The core decides under its lock (policy, collisions,
// quotas, leases) and does the kernel and network work after releasing it.
//
// Modes (RFC 6970 §5):
//
//	local   public WAN address: a DNAT on the CPE, nothing upstream
//	nat444  DNAT from the CPE's WAN port to the LAN host, and a PCP MAP for
//	        the CPE's WAN address and port at the provider (§5.5)
//	dslite  no NAT on the CPE: a PCP MAP for the LAN host's own address with
//	        THIRD_PARTY (§5.4), and a forward accept on the CPE
//	auto    local with a public WAN address or no PCP server, nat444 with a
//	        private or shared (100.64.0.0/10) one, dslite with none
//
// Upstreams (issue 15): behind a provider NAT the core asks one Upstream
// (package upstream: the provider's PCP server, a NAT-PMP gateway, an ISP
// box's UPnP IGD, or none), in PCP's terms whatever it speaks. A request
// that comes while the upstream is being detected waits for it (5 s).
// With kind none the mapping is made on the CPE only and its external
// address is the CPE's WAN address (it works where the box in front
// exposes the CPE); the status says what to do. When another kind takes
// over, every mapping is made again there (a fresh nonce, the same port
// asked for); answers from the replaced upstream are not taken. The state
// file records the kind the mappings were made at.
//
// Policy: secure mode (a host maps only to itself and deletes only its
// own), perm_rule ACLs with miniupnpd's meaning (first match wins;
// DefaultRules allow 1024-65535 for everyone), ports 5350/5351 and pcpgw's
// HTTP port never mapped, a per-host quota, and collisions resolved as each
// protocol asks: an exact request (IGD AddPortMapping, PCP PREFER_FAILURE)
// fails with CodeConflict, the others get another free port.
//
// Leases and the provider: a LAN lease (zero: no end) is kept apart from the
// provider's lifetime. Each upstream mapping is renewed on the RFC 6887
// §11.2.1 schedule (pcpclient.NextRenewal) until its LAN lease ends, with
// its nonce and its assigned external port as the suggestion; the
// provider's lost state (an epoch jump or ANNOUNCE) re-creates every
// mapping after a random 0-5 s wait (§14.1); a LAN request waits at most
// Config.UpstreamTimeout for the provider (then CodeNetworkFailure, RFC
// 6970 §5.1) while the upstream request goes on, and a mapping the provider
// has not answered for is retried, at once when it is heard from again.
// What was asked for exactly (IGD AddPortMapping, PCP PREFER_FAILURE,
// static forwards) is asked for with PREFER_FAILURE on creation, renewal
// and re-creation (RFC 6970 §5.10): it keeps its port or fails, never
// moves. What was not (NAT-PMP, PCP without PREFER_FAILURE,
// AddAnyPortMapping) may come back on another port; the core keeps the
// first port it gave (Mapping.Given) and tells its subscribers
// (EventMappingMoved), so that the front-ends tell the clients (a PCP
// Mapping Update, the NAT-PMP announcement with a restarted epoch, GENA);
// a NAT-PMP mapping's move to another port restarts pcpgw's epoch (RFC
// 6886 §3.7). A renewal is answered from the table only while 3/4 of the asked
// lifetime is left upstream (RFC 7648 §3). A mapping the upstream ends by
// itself (§14.2) leaves the table and the kernel; NAT-PMP's delete-all
// deletes what it may; a host whose DHCP lease ended loses its mappings
// (RFC 6970 §5.10, by the daemon through Delete).
//
// PEER (RFC 6887 §12, relayed as RFC 7648 §3 says): Core.Peer fixes an
// outbound flow's WAN source on the CPE before the flow exists
// (firewall.Outbound), or takes the source an existing flow has
// (conntrack), relays a PEER for it to the provider's PCP server (dslite:
// for the LAN host, with THIRD_PARTY), and answers the outermost endpoint;
// in local mode the CPE's own NAT is the outermost. Other upstreams have
// no PEER: CodeUnsupported. PEER mappings are kept in memory only (their
// clients renew them; their kernel entries expire by themselves) and are
// not answered from the table after the upstream changed or lost its
// state.
//
// Persistence: the table is written to StateDir/state.json atomically
// (temporary file, fsync, rename), coalesced to at most one write every
// 200 ms, and optionally to miniupnpd's lease-file format for OpenWrt's
// status page. At start, mappings whose lease ended are dropped, the kernel
// is reconciled to hold exactly the rest (Firewall.Sync), and the upstream
// ones are renewed with their stored nonces (not duplicated at the
// provider). A corrupt state file is kept aside and the core starts clean.
package mapping
