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
// Each request is handled in its own goroutine (at most 64 at once, 16
// of one host, the IPv6 hosts of one /64 counting as one; more are
// dropped and counted as Overload) and every core
// call is bounded by Config.CoreTimeout (2 s): a LAN client gets
// NETWORK_FAILURE (NAT-PMP result 3, PCP result 7) rather than silence
// when the provider does not answer. The requester is always the packet's
// source address.
//
// # Requests while the upstream is being detected
//
// At start and after a WAN change pcpgw detects its upstream (PCP, NAT-PMP,
// UPnP IGD, or none: package upstream, about 3 s). A request that may go
// upstream (an IPv4 or NAT64 mapping, a PEER, the external address) and
// arrives meanwhile waits for the detection (Core.AwaitUpstream, at most
// mapping.DetectWait, 5 s), and CoreTimeout starts after it: the client
// gets the answer of the upstream found, at most 7 s later. Not
// NETWORK_FAILURE: that is an error the client did nothing to earn, which
// a PCP client then does not repeat for its lifetime (RFC 6887 §8.3: 30 s
// for NETWORK_FAILURE, §7.4), and NAT-PMP's result 3 is for a gateway
// without an external address (RFC 6886 §3.5), not one that will know in
// seconds (libnatpmp hands it to the application as
// NATPMP_ERR_NETWORKFAILURE and stops retransmitting; natpmpc exits 1).
// Not silence either: the answer would then wait for the client's next
// retransmission (PCP: 3 s, 6 s, ... RFC 6887 §8.1.1) instead of going
// out when the upstream is known. Clients wait long enough: NAT-PMP
// clients retransmit 250 ms doubling up to 9 times (RFC 6886 §3.1, 127 s
// in all; libnatpmp's readnatpmpresponseorretry does), PCP clients retry
// without end (MRC 0). Their retransmissions while the request waits are
// the same datagram from the same source: one that arrives while its
// first copy is served is dropped (Stats.Duplicates) and the first
// copy's answer serves both, so a waiting request holds one worker slot
// however often it is sent; a retransmission after the answer is served
// again (the core renews the same mapping: a request asked twice makes
// one mapping). A detection that does not end within DetectWait leaves
// the request to CoreTimeout: NETWORK_FAILURE, true by then. Requests for
// IPv6 pinholes and deletes do not wait.
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
//   - THIRD_PARTY (§13.1) follows the policy: refused with UNSUPP_OPTION
//     while secure mode is on (§7.3: a disabled option, or a client not
//     authorized to use it, gets UNSUPP_OPTION; the RFC recommends CPEs
//     refuse it by default, and secure mode is on by default), taken
//     while it is off (the user's out-of-band choice the RFC asks for),
//     or always with Config.ThirdParty. When taken, it must name another
//     host on a LAN prefix (not the CPE): naming the sender itself is
//     MALFORMED_REQUEST, an address off the LAN is UNSUPP_OPTION. The
//     core maps for the host named: behind the CPE's own NAT the provider
//     is asked for the CPE's WAN port (the mapping's external address is
//     the CPE's); where the CPE does no NAT (dslite) the upstream request
//     carries THIRD_PARTY with the host's address (RFC 7648 §3.3).
//   - PEER (§12) for an IPv4 flow goes to the core (Core.Peer), which
//     makes it true: where the CPE translates (local, nat444) it fixes the
//     flow's WAN source before the flow exists (an nftables source NAT for
//     that flow: the internal port when no mapping's WAN port holds it,
//     else another), or, for a flow that exists, reads the source it has
//     from conntrack (its NAT cannot change); behind the provider's PCP
//     server it relays a PEER for that source (dslite: for the LAN host,
//     with THIRD_PARTY) with the client's remote peer, suggested external
//     endpoint and nonce (RFC 7648 §3), and the client is answered the
//     outermost endpoint and the provider's lifetime; in local mode the
//     CPE's NAT is the outermost. A renewal with 3/4 of the asked lifetime
//     left is answered from the table. An upstream with nothing like PEER
//     (a NAT-PMP gateway, an ISP box's IGD, or none) cannot tell the port
//     a flow gets at the outermost NAT: UNSUPP_OPCODE (30 min). THIRD_PARTY
//     follows the policy as for MAP; PREFER_FAILURE is MALFORMED_REQUEST
//     (§12.1). For an IPv6 internal address the CPE is a pure firewall with
//     outbound traffic allowed: SUCCESS with external = internal and the
//     requested lifetime clamped (the stateless answer of §11.3).
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
// # Mappings that move (RFC 6887 §14.2, RFC 6886 §3.2.1)
//
// A mapping that was not asked for exactly may come back from the
// upstream on another external port (the provider lost its state,
// another upstream took over, a PCP Mapping Update from the provider);
// the core then says so (EventMappingMoved). Its client learns it:
//
//   - a PCP client gets the Mapping Update: the MAP response its request
//     would now get (its nonce, protocol and internal port, the new
//     external address and port, the lease left, the epoch), with
//     THIRD_PARTY when the mapping is for another host and FILTER when it
//     has one, no optional option, sent from the LAN socket its request
//     came to (source 5351, so that the client takes it, §8.3) to the
//     address and port the request came from, three times (at once, 250
//     ms later, 500 ms after that), the repeats stopping once the client
//     asks again. The server remembers, for each PCP mapping, where the
//     last request for it came from (at most 4096 mappings; the least
//     recently heard from are forgotten first; a delete forgets it). The
//     same update goes to every remembered client whose mapping's
//     endpoint changed when the external address changes
//     (EventExternalAddr, §14.2's own example).
//   - NAT-PMP has no notice for one mapping: the core restarts pcpgw's
//     epoch when a NAT-PMP mapping moves to another port (its mapping at
//     the old port is lost state, RFC 6886 §3.7), and the server sends the
//     announcements (below), whose epoch tells every NAT-PMP client to ask
//     for its mappings again (§3.2.1, §3.6); the client of the moved
//     mapping is answered its new port.
//
// A PCP client's exact mapping (PREFER_FAILURE, RFC 6887 §13.2) never
// moves: when the upstream cannot give it its port back (it lost its
// state, another upstream took over), or the upstream ends a mapping by
// itself, the core ends it and says so (EventMappingLost). Its PCP client
// gets, as a Mapping Update is sent (same socket, same schedule, stopping
// once it asks again), an unsolicited MAP response about the endpoint it
// knew with the error (CANNOT_PROVIDE_EXTERNAL and its lifetime, §14.2),
// or SUCCESS with lifetime 0 when the upstream just deleted it; asking
// again with PREFER_FAILURE it is told CANNOT_PROVIDE_EXTERNAL (§11.3). A
// renewal with PREFER_FAILURE that suggests another port than the
// mapping's is refused the same way and changes nothing.
//
// # Announcements (RFC 6886 §3.2.1, RFC 6887 §14.1.3)
//
// At start, on the core's EventExternalAddr and EventStateLost, and when
// a NAT-PMP mapping moved, the server sends 10 rounds, the first at once, then after 250 ms, each
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
// datagram gets one of the 64 worker slots; one host holds at most 16 of
// them, and a retransmission of a request being served takes none (see
// above), so one flooding host cannot starve the others, also while
// requests wait for the upstream's detection. Dropped packets are counted
// in Stats and logged at Debug at most once a second.
//
// # A CPE that does not NAT (REQUIREMENTS 24)
//
// RFC 6886 §3.8 says a gateway with NAT disabled must not answer NAT-PMP.
// pcpgw answers anyway in DS-Lite mode: it speaks for the provider's NAT,
// and the external address it reports is the provider's real one.
//
// # Differences from miniupnpd
//
// Many NAT-PMP and PCP clients were only tested against miniupnpd. The
// differential test tolerance.TestDifferential (run in CI; see the
// package doc of upnpigd for the method) also sends NAT-PMP and PCP
// requests to miniupnpd 2.3.9 and to pcpgw: lifetimes and ports at their
// edges, lengths, versions, opcodes, options, renewals, and deletes in
// unusual forms. The answers read "opN rR ext=PORT LLIFETIME" (NAT-PMP)
// and "vV OPCODE RESULT LLIFETIME ext=ADDR:PORT" (PCP; the external
// address and port of a delete's answer are not compared), "silent" for
// no answer; the table effect as in upnpigd (miniupnpd's own descriptions
// of NAT-PMP and PCP mappings read as empty). Every outcome that still
// differs is a row of the table below, which the test keeps true; the
// last column says why it is kept:
//
//   - security: max_lifetime: NAT-PMP lifetimes are at most max_lifetime
//     (86400 s), which bounds how long a mapping outlives its host;
//     miniupnpd grants any (2^31 s and more wrap its clock).
//   - security: own ports: the NAT-PMP/PCP ports and pcpgw's HTTP port
//     are never mapped; miniupnpd maps its own.
//   - security: FILTER: a FILTER is applied (one remote host) or, when
//     the core cannot enforce it as asked (a network, several hosts),
//     refused with UNSUPP_OPTION (RFC 6887 §13.3); miniupnpd ignores
//     FILTER: the mapping is open to every host.
//   - security: amplification: a PCP request shorter than its header is
//     malformed: no answer (counted); miniupnpd answers it.
//   - both refuse: only the result code differs.
//   - lenient: pcpgw takes what miniupnpd refuses: a delete of nothing is
//     SUCCESS (RFC 6887 §15.1: retransmissions; miniupnpd NO_RESOURCES),
//     DESCRIPTION is taken (miniupnpd 2.3.9: MALFORMED_OPTION), a NAT-PMP
//     lifetime below min_lifetime is raised to it (clients renew by the
//     lifetime answered; miniupnpd grants a mapping of one second).
//   - rfc: existing mapping: a request for an internal port that has a
//     mapping, with another suggested port, returns that mapping (RFC 6886
//     §3.3, RFC 6887 §11.3); miniupnpd makes a second one.
//   - rfc: delete all: a NAT-PMP delete of internal port 0 removes the
//     client's mappings of the opcode's protocol (RFC 6886 §3.4);
//     miniupnpd removes both protocols'.
//   - rfc: PREFER_FAILURE: with PREFER_FAILURE a port held by another host
//     is CANNOT_PROVIDE_EXTERNAL (RFC 6887 §13.2); miniupnpd hands out
//     another port.
//   - rfc: ANNOUNCE: the ANNOUNCE answer's lifetime is 0 (RFC 6887
//     §14.1); miniupnpd copies the request's.
//   - core: protocols: the core maps TCP and UDP only and says
//     UNSUPP_PROTOCOL (RFC 6887 §7.4) for ICMP and SCTP. miniupnpd answers
//     SUCCESS there, but what its table then holds is a UDP entry (the
//     rows below): a success that forwards nothing of the protocol asked,
//     the broken promise this project exists to avoid, and a UDP port open
//     that nobody asked for; a client told UNSUPP_PROTOCOL falls back
//     (relays, TCP) instead of waiting for traffic that never comes.
//   - core: origin: a host's UPnP mapping of the same internal port is
//     another mapping in the core, so NAT-PMP and PCP make their own;
//     miniupnpd turns the UPnP mapping into theirs. Security: two programs
//     on one host (a game's UPnP mapping, a torrent client's NAT-PMP one)
//     must not take over each other's mappings: with miniupnpd the NAT-PMP
//     client's lifetime, and its delete (lifetime 0), end the UPnP
//     program's mapping under it.
//
// The rows, by reason:
//
//	case | miniupnpd | pcpgw | why
//	natpmp map lifetime 2147483648 | op130 r0 ext=28080 L2147483648 | op130 r0 ext=28080 L86400 | security: max_lifetime
//	natpmp map lifetime 4294967295 | op130 r0 ext=28080 L4294967295 | op130 r0 ext=28080 L86400 | security: max_lifetime
//	natpmp map lifetime 86401 | op130 r0 ext=28080 L86401 +TCP/28080>self:8080 L86400 | op130 r0 ext=28080 L86400 +TCP/28080>self:8080 L86400 | security: max_lifetime
//	natpmp map suggested port 5000 | op130 r0 ext=5000 L3600 +TCP/5000>self:8080 L3600 | op130 r0 ext=* L3600 +TCP/*>self:8080 L3600 | security: own ports
//	natpmp map suggested port 5351 UDP | op129 r0 ext=5351 L3600 +UDP/5351>self:8080 L3600 | op129 r0 ext=* L3600 +UDP/*>self:8080 L3600 | security: own ports
//	pcp map FILTER a /24 | v2 MAP SUCCESS L3600 ext=ext:28080 +TCP/28080>self:8080 L3600 | v2 MAP UNSUPP_OPTION | security: FILTER
//	pcp map FILTER one host | v2 MAP SUCCESS L3600 ext=ext:28080 +TCP/28080>self:8080 L3600 | v2 MAP SUCCESS L3600 ext=ext:28080 +TCP/28080>self:8080 rh=203.0.113.50 L3600 | security: FILTER
//	pcp map FILTER one host and port | v2 MAP SUCCESS L3600 ext=ext:28080 +TCP/28080>self:8080 L3600 | v2 MAP SUCCESS L3600 ext=ext:28080 +TCP/28080>self:8080 rh=203.0.113.50 L3600 | security: FILTER
//	pcp map FILTER two hosts | v2 MAP SUCCESS L3600 ext=ext:28080 +TCP/28080>self:8080 L3600 | v2 MAP UNSUPP_OPTION | security: FILTER
//	pcp map 20 octets | op128 r3 | silent | security: amplification
//	natpmp version 1 | op128 r3 | v2 PEER UNSUPP_VERSION | both refuse
//	natpmp version 3 | op128 r3 | v2 PEER UNSUPP_VERSION | both refuse
//	pcp map internal and suggested port 0 | v2 MAP MALFORMED_REQUEST | v2 MAP UNSUPP_PROTOCOL | both refuse
//	pcp map internal port 0 | v2 MAP NOT_AUTHORIZED | v2 MAP UNSUPP_PROTOCOL | both refuse
//	pcp map length not a multiple of 4 | op128 r3 | v2 MAP MALFORMED_REQUEST | both refuse
//	pcp map protocol 0 | v2 MAP MALFORMED_REQUEST | v2 MAP UNSUPP_PROTOCOL | both refuse
//	pcp map version 1 | v1 MAP UNSUPP_OPTION | v2 MAP UNSUPP_VERSION | both refuse
//	natpmp map lifetime 1 | op130 r0 ext=28080 L1 | op130 r0 ext=28080 L120 | lenient
//	natpmp map lifetime 119 | op130 r0 ext=28080 L119 +TCP/28080>self:8080 L120 | op130 r0 ext=28080 L120 +TCP/28080>self:8080 L120 | lenient
//	natpmp map lifetime 60 | op130 r0 ext=28080 L60 +TCP/28080>self:8080 L60 | op130 r0 ext=28080 L120 +TCP/28080>self:8080 L120 | lenient
//	pcp delete nothing there | v2 MAP NO_RESOURCES | v2 MAP SUCCESS L0 | lenient
//	pcp delete protocol 0 (all) | v2 MAP NO_RESOURCES | v2 MAP SUCCESS L0 | lenient
//	pcp delete the other host's internal port | v2 MAP NO_RESOURCES | v2 MAP SUCCESS L0 | lenient
//	pcp delete the other host's internal port (secure_mode=no) | v2 MAP NO_RESOURCES | v2 MAP SUCCESS L0 | lenient
//	pcp map DESCRIPTION | v2 MAP MALFORMED_OPTION | v2 MAP SUCCESS L3600 ext=ext:28080 +TCP/28080>self:8080 "tol" L3600 | lenient
//	natpmp map again, other suggested port | op130 r0 ext=28081 L3600 +TCP/28081>self:8080 L3600 | op130 r0 ext=28080 L3600 | rfc: existing mapping
//	natpmp map again, suggested port 0 | op130 r0 ext=8080 L3600 +TCP/8080>self:8080 L3600 | op130 r0 ext=28080 L3600 | rfc: existing mapping
//	pcp map again, other suggested port | v2 MAP SUCCESS L3600 ext=ext:28081 +TCP/28081>self:8080 L3600 | v2 MAP SUCCESS L3600 ext=ext:28080 | rfc: existing mapping
//	natpmp delete all TCP | op130 r0 ext=* L0 -TCP/28080>self:8080 L3600 -TCP/28081>self:8081 L3600 -UDP/28080>self:8080 L3600 | op130 r0 ext=* L0 -TCP/28080>self:8080 L3600 -TCP/28081>self:8081 L3600 | rfc: delete all
//	natpmp delete all UDP | op129 r0 ext=* L0 -TCP/28080>self:8080 L3600 -UDP/28080>self:8080 L3600 | op129 r0 ext=* L0 -UDP/28080>self:8080 L3600 | rfc: delete all
//	pcp map port held by the other host, PREFER_FAILURE | v2 MAP SUCCESS L3600 ext=ext:* +TCP/*>self:8080 L3600 | v2 MAP CANNOT_PROVIDE_EXTERNAL | rfc: PREFER_FAILURE
//	pcp map port held by the other host, PREFER_FAILURE (secure_mode=no) | v2 MAP SUCCESS L3600 ext=ext:* +TCP/*>self:8080 L3600 | v2 MAP CANNOT_PROVIDE_EXTERNAL | rfc: PREFER_FAILURE
//	pcp announce with a lifetime | v2 ANNOUNCE SUCCESS L3600 | v2 ANNOUNCE SUCCESS L0 | rfc: ANNOUNCE
//	pcp map ICMP | v2 MAP SUCCESS L3600 ext=ext:28080 +UDP/*>self:8080 L0 | v2 MAP UNSUPP_PROTOCOL | core: protocols
//	pcp map SCTP | v2 MAP SUCCESS L3600 ext=ext:28080 +UDP/*>self:8080 L0 | v2 MAP UNSUPP_PROTOCOL | core: protocols
//	natpmp map over own UPnP mapping of the internal port | op130 r0 ext=28080 L3600 ~TCP/28080>self:8080 L3600 | op130 r0 ext=* L3600 +TCP/*>self:8080 L3600 | core: origin
//	pcp map over own UPnP mapping | v2 MAP SUCCESS L3600 ext=ext:28080 ~TCP/28080>self:8080 L3600 | v2 MAP SUCCESS L3600 ext=ext:* +TCP/*>self:8080 L3600 | core: origin
package natpmp
