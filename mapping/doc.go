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
//	portset the provider shares one IPv4 address with a fixed port set per
//	        customer and no NAT of its own (A+P: MAP-E, MAP-T, lw4o6): a DNAT
//	        on the CPE as in local, every external port in Config.PortSet
//	        (the part of the set kept for mappings), nothing upstream
//	auto    local with a public WAN address or no PCP server, nat444 with a
//	        private or shared (100.64.0.0/10) one, dslite with none (the
//	        daemon picks portset itself when it knows a port set)
//
// NAT64 (RFC 7225): a request for an IPv6 host with an IPv4 suggested
// external address (all zeros for any) asks for an IPv4 port at the
// provider's NAT64, in any mode with an upstream: made there with
// THIRD_PARTY and PREFIX64, and on the CPE as pinholes to the host's port
// that admit only the NAT64's prefixes (the provider's PREFIX64, else
// Config.Prefix64, else 64:ff9b::/96). Mapping.NAT64 marks it; it is no
// pinhole, and its IPv4 external address is not the CPE's.
//
// Upstreams (issue 15): behind a provider NAT the core asks one Upstream
// (package upstream: the provider's PCP server, a NAT-PMP gateway, an ISP
// box's UPnP IGD, or none), in PCP's terms whatever it speaks. A request
// that may go upstream (a mapping of an IPv4 port, NAT64's too, a PEER,
// the external address) and comes while the upstream is being detected
// waits for it (at most DetectWait, 5 s; Core.AwaitUpstream), and only
// then for the upstream's answer (Config.UpstreamTimeout): it is answered
// as the upstream found says. A front-end with a shorter bound of its own
// (the NAT-PMP/PCP server) calls AwaitUpstream before it starts it.
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
// moves; a LAN PCP client's that fails so ends, and its subscribers are
// told (EventMappingLost) so that the client learns it (RFC 6887 §14.2). What was not (NAT-PMP, PCP without PREFER_FAILURE,
// AddAnyPortMapping) may come back on another port; the core keeps the
// first port it gave (Mapping.Given) and tells its subscribers
// (EventMappingMoved), so that the front-ends tell the clients (a PCP
// Mapping Update, the NAT-PMP announcement with a restarted epoch, GENA);
// a NAT-PMP mapping's move to another port restarts pcpgw's epoch (RFC
// 6886 §3.7). A renewal is answered from the table only while 3/4 of the asked
// lifetime is left upstream (RFC 7648 §3). The lifetime told the LAN client
// is the one it asked for (within min_lifetime/max_lifetime), also when the
// upstream grants less: RFC 7648 §3 allows that ("NOT RECOMMENDED") when
// the proxy takes responsibility for renewing the upstream mapping itself,
// which the core does (renewAt, before the upstream's lifetime ends, for
// as long as the client's lease runs). Telling the upstream's lifetime
// instead would make every LAN client renew at the CGN's pace (two
// minutes at some), for NAT-PMP and UPnP clients too, whose lifetimes have
// no upstream in them; the promise kept is the same. A mapping the upstream ends by
// itself (§14.2) leaves the table and the kernel; NAT-PMP's delete-all
// deletes what it may; a host whose DHCP lease ended loses its mappings
// (RFC 6970 §5.10, by the daemon through Delete).
//
// Hairpin (RFC 7648 §3.1): a LAN host reaches a mapped LAN service at the
// endpoint the internet uses. In nat444 that is the upstream's external
// address and the port the upstream gave, which need not be the WAN port:
// each forward carries that port (firewall.Forward.UpstreamPort) while the
// mapping is made upstream, kept in step with the upstream's answers,
// Mapping Updates, withdrawals, a new upstream and restarts (hairpin.go);
// when two mappings claim one upstream port, the newer answer holds it.
// In local and portset mode, with no upstream (kind none) and in DS-Lite
// (the AFTR hairpins) no forward carries one: the WAN address is
// hairpinned by the WAN port.
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
// Persistence (issue 18): a request's success is sent only once its change
// would survive a crash of the process at any instant (kill -9, a panic,
// the OOM killer), with the nonces needed to renew or delete it upstream.
// The design is a database's: an append-only journal with group commit,
// compacted into a snapshot (journal.go).
//
//   - The snapshot is StateDir/state.json, written atomically (temporary
//     file, fsync, rename); its "journal" field names the first journal
//     generation to replay on it. A state file from before the journal has
//     none and loads as before.
//   - The journal is StateDir/journal.<generation>: one line per record,
//     "crc32 JSON", a mapping's whole state (put), a lease end that moved
//     (exp, rounded up to the second: a renewal within the same second
//     costs nothing), a removal (del), an undone request (undone), the
//     external address and upstream kind (head).
//   - Group commit: a change is marked under the core's lock (a pointer in
//     a list); Map, Delete and Renew return only after the journal holds
//     their change. Whoever needs that first collects everything marked so
//     far into one group and appends it with one write(2); requests that
//     arrive during the write wait and go in the next group. A request that
//     changed nothing waits only for its mapping's earlier changes. When the
//     journal cannot be written, requests are answered with
//     CodeNoResources (no unsaved success) until the next compaction
//     writes the whole table again.
//   - Upstream intents: before a mapping's first request leaves for the
//     upstream (and the first after a change of upstream), the core picks
//     its nonce (96 random bits) and the journal holds the mapping with that
//     nonce, marked tentative. It stays tentative until its requester is
//     answered (with success, or with a failure while it stays pending and
//     retried). A mapping made on the CPE only is never tentative: nothing
//     of it can be orphaned.
//   - Start: the state file is read and the journals replayed in order (a
//     torn or corrupt record, the tail a kill or a power loss cut, ends its
//     file's replay); ended leases are dropped; tentative mappings are
//     undone: not put back in the kernel and, when they have a nonce (their
//     request may have reached the upstream) and their lease runs, deleted
//     at the upstream with that nonce (PCP; by protocol and port for
//     NAT-PMP and IGD upstreams) once it is known, retried every 30 s until
//     it answers, their ports given to no new mapping meanwhile; the state
//     file keeps them (its "undo" list) until then. They are deleted rather
//     than left to expire because a lease without end asks the upstream for
//     as long as it gives (a day at miniupnpd, for ever at an IGD box). Then
//     the kernel is made to hold exactly the table (Firewall.Sync), the
//     upstream mappings are renewed with their stored nonces (not
//     duplicated), and a fresh state file and journal generation are
//     written.
//   - Deletes: the removal is in the journal before the answer; the
//     upstream delete (with the mapping's nonce) is sent once as the
//     answer goes out, as before. A crash during its round trip, or an
//     upstream that does not answer it, leaves the upstream's mapping to
//     its lifetime.
//   - Compaction: once the journal holds at least max(256 KiB, the last
//     state file's size), the state writer starts a new journal generation,
//     writes the state file (a chunk of mappings at a time, while requests
//     go on: records are whole states, so those also in the new journal
//     replay to the same result) and then removes the older journals: at
//     most one byte of state file per byte of journal. Also at start and at
//     a clean exit. The lease file (miniupnpd's format, OpenWrt's status
//     page) follows changes within 200 ms, renewals within 60 s.
//
// Why a journal and not the kernel's own elements as the record (nftables
// set elements carry user data): an element holds at most 256 octets of
// it, not enough for a description (up to 256 alone), two nonces, the
// provider's answer and the lease; user data cannot be changed in place
// (a delete and an add per change: a netlink batch for every renewal,
// where today a renewal within 20 s costs none); the intent must be on
// record before the upstream request, and the table's head (epoch,
// external address, upstream kind, mappings to undo) belongs to no
// element; the kernel loses everything on a reboot, so a file would still
// be needed, and two records would have to be merged at start; and the
// core reaches the kernel only through its Firewall interface (faked in
// tests, other firewalls later), which the journal leaves as it is.
//
// What a power loss can lose: the journal is written, not fsync'd. Against
// a crash of the process that is all it takes (what write(2) returned for
// is in the kernel's page cache). On OpenWrt, /var (the default state_dir
// /var/lib/pcpgw) is tmpfs: a power loss or reboot loses the whole state
// directory with the kernel's tables; the provider's mappings then end
// with their lifetimes (the LAN lease asked upstream, or the provider's
// maximum for a lease without end). With state_dir on flash, the state
// file survives whole (old or new), but the records of the journal not yet
// written back by the file system (its write-back interval: seconds, 30 s
// by default) can be lost, their tail detected by the checksums; an fsync
// per group would cost milliseconds and flash wear per request.
package mapping
