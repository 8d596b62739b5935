// Package natpmp is pcpgw's LAN side on UDP 5351: a NAT-PMP server
// (RFC 6886) and a PCP server acting as an RFC 7648 proxy (RFC 6887), both
// translating LAN requests into calls of the mapping core.
//
// # Shape
//
// Server.Handle is a pure handler from (source address, LAN address the
// datagram arrived on, bytes, now) to reply bytes or silence. Server.Run
// does the I/O: one UDP socket per LAN address (IPv4, IPv6 global and
// link-local with zone) of Config.Interfaces, never the wildcard, each
// also bound to its interface (SO_BINDTODEVICE; Linux would otherwise
// deliver a datagram for a LAN address that came in on the WAN side), so no
// request from the WAN side is ever read (REQUIREMENTS 22, 30); without
// CAP_NET_RAW the device binding is skipped with a warning. The addresses
// are re-read every Config.Rescan (5 s; polling rather than netlink
// events, to stay small) and sockets follow them; new addresses get the
// announcements too. A request whose destination is not a LAN address is
// dropped (counted NotLAN).
// Each request is handled in its own goroutine (at most 64 at once, more
// are dropped and counted) and every core call is bounded by
// Config.CoreTimeout (2 s): a LAN client gets NETWORK_FAILURE (NAT-PMP
// result 3, PCP result 7) rather than silence when the provider does not
// answer. The requester is always the packet's source address.
//
// # Protocol selection (RFC 6887 Appendix A, §9; RFC 6886 §3.5)
//
// The first octet picks the protocol: 0 NAT-PMP, 2 PCP. With both enabled,
// any other version (1, 3 and up) gets a PCP UNSUPP_VERSION response naming
// version 2. A disabled protocol is answered as a server without it would:
// with PCP off, non-zero versions get the 8-octet NAT-PMP "Unsupported
// Version" response (opcode+128, result 1, epoch); with NAT-PMP off, version
// 0 gets the PCP UNSUPP_VERSION response. Datagrams shorter than 2 octets,
// responses (R bit / opcode >= 128), PCP requests shorter than 24 octets and
// NAT-PMP mapping requests shorter than 12 octets get no answer and are
// counted as Malformed.
//
// NAT-PMP wire layout (RFC 6886 §3.2, §3.3):
//
//	request  op 0: | 0 | 0 |
//	request  op 1/2: | 0 | op | reserved(16) | internal port | suggested ext port | lifetime(32) |
//	response op 0: | 0 | 128 | result(16) | epoch(32) | external IPv4 |
//	response op 1/2: | 0 | 128+op | result(16) | epoch(32) | internal port | external port | lifetime(32) |
//
// # NAT-PMP (RFC 6886)
//
// Opcode 0 answers the provider's external address (Core.ExternalAddr,
// never the CPE's WAN address) or result 3 when it is unknown. Opcodes 1/2
// map the internal port of the source address (TCP and UDP apart); asking
// again returns the existing mapping, renewed by the core. Lifetime 0
// deletes, and internal port 0 with lifetime 0 deletes all of that client's
// mappings of that protocol (the suggested port is ignored, §3.4); deleting
// nothing succeeds. As in miniupnpd, a delete removes NAT-PMP mappings
// only: the host's UPnP and PCP mappings of the same port stay. Lifetimes are clamped to [MinLifetime, MaxLifetime] and
// the answer carries the lease the core reports. Errors translate with
// mapping.NATPMPResult. Unsupported opcodes get the 8-octet header with
// result 5. NAT-PMP mapping requests over IPv6 get result 2 (NAT-PMP maps
// IPv4 only). Every response carries the core's epoch (Core.Epoch).
//
// # PCP (RFC 6887 as an RFC 7648 proxy)
//
// Processing follows §8.2: length errors (longer than 1100 octets, not a
// multiple of 4) get MALFORMED_REQUEST, then a client address that differs
// from the source gets ADDRESS_MISMATCH, then the codec's opcode and option
// errors (UNSUPP_OPCODE, MALFORMED_REQUEST, MALFORMED_OPTION, UNSUPP_OPTION).
// Every error response is the request copied back (pcp.AppendErrorResponse,
// §8.2/§7.3) with the result, the error lifetime (30 s for short errors,
// 30 min for long ones, or what the core says) and pcpgw's own epoch.
//
//   - MAP with an IPv4 internal address becomes Core.Map with Origin PCP,
//     the nonce, PREFER_FAILURE as ExactPort, FILTER as RemoteHost/Port,
//     DESCRIPTION as Description. The core answers from its table or goes
//     upstream (RFC 7648 §3, the 3/4-lifetime rule is the core's). The
//     answer carries the outermost external address and port and the
//     lease left. MAP with an IPv6 internal address opens a pinhole and is
//     answered as a pure firewall, external = internal (§11.3); with
//     pinholes disabled, or for a link-local address, it gets
//     NOT_AUTHORIZED.
//   - MAP with lifetime 0 always goes to Core.Delete with the nonce, so
//     the core deletes upstream too and checks the nonce (§11.3,
//     NOT_AUTHORIZED with the existing mapping's lifetime); deleting
//     nothing succeeds (§15.1), with the request's suggested external
//     address and port copied back. Internal port 0 (the all-ports
//     mapping of §15.1, which pcpgw never makes) deletes, as in
//     miniupnpd, the requester's PCP mappings of that protocol made with
//     the nonce; when only mappings of other nonces are there it is
//     NOT_AUTHORIZED.
//   - PREFER_FAILURE with a suggested external address other than the
//     external address is CANNOT_PROVIDE_EXTERNAL (§13.2); without it the
//     suggestion is only a hint.
//   - All-protocol and all-port MAP requests (and protocols other than TCP
//     and UDP) get UNSUPP_PROTOCOL.
//   - FILTER: the core keeps one remote host and port per mapping. A FILTER
//     of prefix length 0 removes the filter; otherwise the FILTERs of one
//     request must all name the same single host (a full-length prefix),
//     else UNSUPP_OPTION and nothing changes (§13.3). A renewal without
//     FILTER keeps the mapping's filter. The filter replaces, rather than
//     adds to, an earlier one.
//   - THIRD_PARTY (§13.1) is refused with UNSUPP_OPTION unless
//     Config.ThirdParty (§7.3: a disabled option, or a client not
//     authorized to use it, gets UNSUPP_OPTION; the RFC recommends CPEs
//     refuse it by default). When enabled, it must name another host on a
//     LAN prefix (not the CPE): naming the sender itself is
//     MALFORMED_REQUEST, an address off the LAN is UNSUPP_OPTION.
//   - PEER (§12.3): the core has no outbound mappings to create, so PEER
//     is answered from what is known. For an IPv6 internal address the CPE
//     is a pure firewall with outbound traffic allowed: SUCCESS with
//     external = internal and the requested lifetime clamped (the stateless
//     answer of §11.3). For IPv4, if the requester has a mapping for that
//     protocol and internal port whose filter admits the peer, its
//     external address, port and lease left are returned (nothing
//     changes); otherwise NO_RESOURCES with a 30 s error lifetime, because
//     the port an outbound flow gets at the provider's NAT can neither be
//     known nor reserved from the CPE.
//   - ANNOUNCE from a client is answered here (SUCCESS, lifetime 0, our
//     epoch) and never relayed (RFC 7648 §3.5).
//   - Unknown opcodes and unknown mandatory options are rejected
//     (UNSUPP_OPCODE, UNSUPP_OPTION) rather than relayed: the proxy is
//     co-located with a NAT and is configured not to relay them (RFC 7648
//     §3.4.2). Unknown optional options are ignored and not echoed.
//
// The epoch in every response is pcpgw's own (Core.Epoch), never the
// upstream server's (RFC 7648 §3, REQUIREMENTS 25).
//
// # Announcements (RFC 6886 §3.2.1, RFC 6887 §14.1.3)
//
// At start, and on the core's EventExternalAddr and EventStateLost, the
// server sends 10 rounds, the first at once, then after 250 ms, each
// interval doubling (0, 0.25, 0.75, 1.75, 3.75 ... 127.75 s); a new event
// restarts the schedule. One round sends, on each LAN interface, from its
// IPv4 socket (source port 5351, multicast interface set, TTL 1) the
// NAT-PMP opcode-0 response (when NAT-PMP is on and the external address
// is known) and the PCP ANNOUNCE response to 224.0.0.1:AnnouncePort, and
// from its IPv6 socket (link-local preferred, hop limit 1) the PCP
// ANNOUNCE response to [ff02::1%if]:AnnouncePort. The epoch is read at each
// send.
//
// # Abuse
//
// Each source address has a token bucket (RatePerHost, Burst; 50/s, 100 by
// default) in a map of at most 4096 entries (refilled entries, then the
// least recently seen, are evicted), checked by the read loop before a
// datagram gets one of the 64 worker slots, so one flooding host cannot
// starve the others. Dropped packets are counted in Stats and logged at Debug at
// most once a second.
//
// # A CPE that does not NAT (REQUIREMENTS 24)
//
// RFC 6886 §3.8 says a gateway with NAT disabled must not answer NAT-PMP.
// pcpgw answers anyway in DS-Lite mode: it speaks for the provider's NAT,
// and the external address it reports is the provider's real one.
package natpmp
