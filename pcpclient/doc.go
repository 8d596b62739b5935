// Package pcpclient is pcpgw's one client of the provider's PCP server
// (RFC 6887): it creates, renews and deletes mappings at the provider's
// NAT (MAP, PEER), tells its owner (the mapping core) when the server lost
// state, changed the external address, ended a mapping or stopped
// answering, and speaks NAT-PMP (RFC 6886) to a gateway that speaks only
// that.
//
// # Server selection (RFC 6887 §8.1, RFC 7291, RFC 7488, RFC 6334)
//
// The server is, in this order: Config.Servers; else the addresses in
// Config.ServersFile, which a DHCP hook writes from DHCPv4 option 158 or
// DHCPv6 option 86 and which is read again when it changes; else the AFTR
// named by Config.AFTRName (DHCPv6 option 64), resolved (AAAA) with
// internal/dnsq (neither Go's resolver nor github.com/miekg/dns: see
// discovery.go), asking the WAN's resolvers in turn, 2 s each and 5 s in
// all: Config.Resolvers, else those listed in Config.ResolvConf, read at
// each lookup, else /etc/resolv.conf's; else the IPv4 and IPv6 default
// routers (for mappings of their own family; the IPv6 ones through
// Config.WAN6Interface). With Config.WANAddr4 (the WAN's or DS-Lite's B4
// address) the external-address probe through a server reached over IPv6
// maps that IPv4 address with THIRD_PARTY. The
// addresses of one server are tried in RFC 7488 §3 order: the one that
// answered last, then those of the request's address family, then the
// others, each with at most 4 transmissions (MRC) when there are several,
// all with the same nonce; after the last, the round repeats 15 minutes
// after it began. Answers from an address given up on are ignored.
//
// A transmission the local stack refuses (sendto fails: EPERM from a
// netfilter drop, ENOBUFS, a missing route) counts as lost: the §8.1.1
// schedule goes on and an answer to an earlier transmission is still
// taken (Status.SendErrors counts them). Only with several addresses does
// "no route to the address" move on to the next one (RFC 7488 §3 step 4);
// a socket closed because the server's addresses changed restarts the
// round with the new ones.
//
// For each server address the client learns its source address with
// connect() and getsockname() (§16.4) and writes it in the request header
// (IPv4 as IPv4-mapped IPv6, §8.1). It then sends from an unconnected
// socket bound to that address, so that it sees and counts datagrams from
// anyone else instead of leaving that to the kernel.
//
// # Requests and retransmission (§8.1.1)
//
// A request is sent at once, then again after RT = (1+RAND)*IRT and each
// later RT = (1+RAND)*min(2*RTprev, MRT), RAND uniform in [-0.1, +0.1],
// IRT 3 s and MRT 1024 s, with the same nonce every time. MRC and MRD are
// unbounded: the caller's context bounds its wait. When the caller gives
// up, the request goes on in the background for Config.Linger (RFC 6970
// §5.1: the LAN client gets its answer in bounded time while the upstream
// request continues); an identical call meanwhile joins it. Each mapping
// gets 96 random bits of nonce from crypto/rand (§11.2); renewals and
// deletes reuse the mapping's nonce (the client remembers it, so Delete
// needs only the protocol and internal endpoint). Messages never exceed
// 1100 octets (§7). NextRenewal gives the §11.2.1 renewal schedule.
//
// # Validation of answers (§8.3, §11.4, §12.4)
//
// An answer is taken only from an address and port the request went to,
// with the R bit set, a PCP length (24 to 1100 octets, a multiple of 4),
// and the request's opcode, protocol, internal port and nonce (and remote
// peer for PEER, and the THIRD_PARTY address when the server echoes it).
// Everything else is dropped and counted in Status.Dropped. Unknown
// optional options in answers are ignored (§7.3).
//
// An error result becomes a *ResultError. The same request (same opcode,
// protocol, internal and suggested endpoints, options; not the nonce) is
// not sent again while its error lifetime runs (§8.3): Map returns
// ErrBackoff wrapping the *ResultError. Lifetimes are capped at 30 minutes
// for the short-lifetime errors (7, 8, 10, 11) and 24 hours for the long
// ones (§7.4, §15). NO_RESOURCES to a delete counts as done (miniupnpd
// answers that for a mapping it does not have).
//
// With PreferFailure, a SUCCESS carrying another port or address than the
// suggested one (miniupnpd's port-in-use check may do that) is deleted in
// the background and reported as CANNOT_PROVIDE_EXTERNAL (§13.2).
//
// # Epoch and state loss (§8.5, §14)
//
// Every accepted answer's epoch is checked against the previous one from
// that server address, in integer seconds: the first is valid; an epoch
// more than 1 s lower than the previous one, or client_delta+2 <
// server_delta - server_delta/16, or server_delta+2 < client_delta -
// client_delta/16, means the server lost state: EventStateLost. An
// unsolicited ANNOUNCE from the server's address and port (§14.1.3) on
// 224.0.0.1:5350 or [ff02::1]:5350 (joined on the WAN interface, the IPv6
// group on Config.WAN6Interface when set; datagrams that came in on
// another interface are dropped, so a LAN host cannot pose as the server;
// an IPv6 one from a link-local address stands for the IPv6 server: the
// kernel gives ff02::1 that source, as miniupnpd sends it) is a reason to
// ask, not an answer: its epoch
// is not taken; the client sends its own ANNOUNCE request (§14.1.2) and
// the epoch of that answer decides (§8.5). Repeats of one announcement,
// and announcements within 5 s of the last one that made it ask, ask
// nothing. The event is sent at once: waiting a random 0-5 s before
// re-creating the mappings (§14.1.3) is the owner's job. An unsolicited
// MAP answer for a mapping the client made (its nonce; Mapping Update,
// §14.2) raises EventExternalChanged with the mapping; any answer to a
// request of the client's with another external IPv4 address than the
// last one raises EventExternalChanged with the address. Requests that go
// unanswered for two retransmission timeouts raise EventUnreachable, once,
// and the next answer EventReachable. Events never block the client: when
// the buffer is full the oldest is dropped.
//
// # NAT-PMP (§9, Appendix A; RFC 6886)
//
// Config.Protocol says what the client speaks. ProtocolNATPMP speaks
// NAT-PMP from the start (a NAT-PMP gateway as the upstream).
// ProtocolAuto sends version 2 and falls back to NAT-PMP only on the
// server's own answers. An answer with version 0 and result
// UNSUPP_VERSION carries no nonce: anyone who can send from the server's
// address can forge it (one such packet used to downgrade the client,
// issue 18). It is taken only on the request socket, while a PCP request
// of that opcode to that server address is pending, from a server that
// has never answered a PCP request of the client's (otherwise it is
// dropped and counted), and even then it ends nothing: the client sends a
// NAT-PMP external address request of its own (the confirm) and goes on
// retransmitting its PCP requests. When the confirm is answered, the
// pending PCP requests are sent again at once; only when such a request,
// sent after the confirm's answer, goes unanswered for two retransmission
// times (3 s, then 6 s: a PCP proxy asking its own upstream answers
// within that) and the server has still never answered PCP does the
// client switch to NAT-PMP and resend the pending requests in NAT-PMP at
// once. A server that speaks both (miniupnpd) answers those requests in
// PCP, and the client stays with PCP: a forged UNSUPP_VERSION costs a
// NAT-PMP request and one early retransmission. A NAT-PMP-only gateway
// costs about 9 s more than a fallback on the first UNSUPP_VERSION would
// (detection finds it sooner, by its own NAT-PMP probe). NAT-PMP answers
// carry no nonce either: a forger who also answers the confirm still
// downgrades a client whose server does not answer PCP within that time
// (down, or its PCP filtered);
// nothing in NAT-PMP can tell those answers from the server's. The
// announcement port (5350) carries
// announcements only: nothing read there is an answer. ProtocolPCP never
// falls back: where ProtocolAuto would, the pending request ends with
// ErrNATPMPOnly (Probe's too). Maps use opcodes 1 (UDP) and 2 (TCP), the
// external address opcode 0; the API stays the same. NAT-PMP maps only
// for the sender itself, so THIRD_PARTY requests fail with
// ErrNATPMPThirdParty; PEER, FILTER, IPv6 and other protocols with
// ErrNATPMPUnsupported. NAT-PMP errors become *ResultError with the
// matching PCP code and a 30 s (short) or 30 min (long) hold. An
// unsolicited address announcement (RFC 6886 §3.2.1) makes the client
// ask (opcode 0); the answer's address and epoch are what it believes.
//
// External addresses no NAT gives out (zero, loopback, multicast,
// 0.0.0.0/8, 240.0.0.0/4, link-local) are refused from any source: such
// an answer is dropped and counted (pcp.UsableExternal).
//
// Probe asks whether the server answers, creating nothing: a PCP ANNOUNCE
// request (§14.1.2), or NAT-PMP's external address request.
//
// # External address
//
// ExternalAddr returns the last external IPv4 address seen. Without one it
// asks: NAT-PMP opcode 0, or, since PCP has no such request (§11.6), a
// 120 s UDP mapping that is deleted again at once. Its internal port is the
// client socket's own (ephemeral, >= 1024), not the discard port that
// §11.6 names as an example: a CGN with miniupnpd's usual permission rules
// (allow 1024-65535) refuses external ports below 1024, and miniupnpd
// 2.3.9 stalls seconds trying every port up to 1024 before it answers. A
// refused probe is not repeated while its error lifetime runs (at least
// 30 s).
//
// # Wire layout (RFC 6887 §7.1, §11.1)
//
//	 0               1               2               3
//	+---------------+---------------+---------------+---------------+
//	|  Version = 2  |R|   Opcode    |   Reserved    |    Result     |
//	+---------------+---------------+---------------+---------------+
//	|                 Requested / granted Lifetime                  |
//	+---------------------------------------------------------------+
//	|   request: client's IP address (128 bits, IPv4-mapped)        |
//	|   response: Epoch Time (32 bits) + 96 reserved bits           |
//	+---------------------------------------------------------------+
//	|   MAP: nonce (96), protocol, internal port, external port,    |
//	|   external address (128); PEER adds remote port and address   |
//	+---------------------------------------------------------------+
//	|   options: code, reserved, length, data padded to 4 octets    |
//	+---------------------------------------------------------------+
//
// miniupnpd 2.3.9 does not skip option padding, so the client pads
// DESCRIPTION text with spaces to a multiple of 4 octets.
//
// # Concurrency and sockets
//
// The client is safe for concurrent use; many calls run at once, each
// waiting only for its own answer and context. One reader goroutine per
// server address and per announcement listener dispatches answers by
// (opcode, protocol, internal port, nonce). Sockets toward configured
// servers and the announcement listeners are opened in New, in the
// caller's network namespace. Close is idempotent, ends pending calls with
// ErrClosed, closes the sockets and the Events channel, and waits for the
// client's goroutines.
package pcpclient
