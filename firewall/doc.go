// Package firewall keeps the CPE's own nftables state in step with pcpgw's
// mapping table: IPv4 port forwards (DNAT from the WAN port to a LAN host,
// the forward accept, hairpin NAT) and IPv6 pinholes (RFC 6092 §2.3, IGD:2
// WANIPv6FirewallControl, PCP MAP for an IPv6 internal address), plus an
// optional RFC 6092 / RFC 4890 baseline for inbound IPv6.
//
// NFT talks to the kernel through github.com/google/nftables (netlink; it
// never runs nft). firewalltest.Fake implements the same methods in memory
// for the mapping core's tests.
//
// # Cost per change
//
// There is no rule per mapping. The rules are static; a forward or pinhole
// is one or two elements in hashed sets and maps with concatenated keys, so
// the kernel's lookup and the cost of a change do not depend on how many
// mappings there are, and no call lists the ruleset (Packets and Sync read
// one or all sets; Apply reads nothing unless the kernel refused the batch).
// Every Apply is one netlink batch: for each deletion the element is first
// added (a no-op when present) and then deleted, so deleting a missing
// entry cannot abort the batch; additions follow. Elements carry the lease
// as their timeout (Forward.Timeout, Pinhole.Timeout), so the kernel drops
// an entry when its lease ends even if pcpgw is dead. Re-adding an element
// refreshes its timeout in place on Linux 6.10 and later (New probes for
// it); on older kernels the batch deletes and adds it again.
//
// # Table layout (family inet; the table is "pcpgw" by default)
//
//	map fwd4   { type inet_proto . inet_service : ipv4_addr . inet_service; flags timeout }
//	           # l4proto . WAN port -> LAN address . port (Forward.Port != 0, any remote)
//	map fwd4h  { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags timeout }
//	           # remote . l4proto . WAN port -> LAN address . port (Forward.Remote set)
//	set acc4   { type ipv4_addr . inet_proto . inet_service . inet_service; flags timeout; counter }
//	           # LAN address . l4proto . LAN port . WAN port (WAN port = LAN port when Port is 0)
//	set acc4h  { type ipv4_addr . ipv4_addr . inet_proto . inet_service . inet_service; flags timeout; counter }
//	           # remote . the same
//	set pin6   { type ipv6_addr . inet_proto . inet_service; flags timeout; counter }
//	set pin6h  { type ipv6_addr . ipv6_addr . inet_proto . inet_service; ... }   # remote . LAN addr . proto . port
//	set pin6p  { type inet_service . ipv6_addr . inet_proto . inet_service; ... } # remote port . ...
//	set pin6hp { type ipv6_addr . inet_service . ipv6_addr . inet_proto . inet_service; ... }
//	set pin6s  { type ipv6_addr . ipv6_addr . inet_proto . inet_service; flags interval,timeout; counter }
//	           # remote prefix (Pinhole.RemotePrefix: a NAT64's Pref64::/n) . LAN addr . proto . port
//	map peer4  { type ipv4_addr . inet_proto . inet_service . ipv4_addr . inet_service : ipv4_addr . inet_service; flags timeout }
//	           # LAN address . l4proto . LAN port . remote . remote port -> WAN address . WAN port (Outbound: PCP PEER)
//	map fwd4x  { type inet_proto . inet_service : ipv4_addr . inet_service; flags timeout }
//	           # l4proto . upstream port -> LAN address . port (Forward.UpstreamPort: hairpin of the external address)
//	set acc4x  { type ipv4_addr . inet_proto . inet_service . inet_service; flags timeout }
//	           # LAN address . l4proto . LAN port . upstream port
//	set lan_ifs { type ifname }     # Config.LAN
//	set wan4    { type ipv4_addr }  # Config.WANAddr / SetWANAddr (hairpin by the WAN port)
//	set ext4    { type ipv4_addr }  # SetExternalAddr (hairpin by the upstream port)
//
// (WAN is Config.WAN; WAN6 is Config.WAN6, or WAN when that is empty.)
//
//	chain prerouting { type nat hook prerouting priority dstnat + 5; policy accept;
//	  iifname WAN dnat ip to ip saddr . meta l4proto . th dport map @fwd4h
//	  iifname WAN dnat ip to meta l4proto . th dport map @fwd4
//	  iifname @lan_ifs ip daddr @wan4 dnat ip to meta l4proto . th dport map @fwd4   # hairpin
//	  iifname @lan_ifs ip daddr @ext4 dnat ip to meta l4proto . th dport map @fwd4x  # hairpin
//	}
//	chain postrouting { type nat hook postrouting priority srcnat - 5; policy accept;
//	  iifname @lan_ifs oifname @lan_ifs ct status dnat ct mark & MARK == MARK masquerade  # hairpin replies
//	  oifname WAN snat ip to ip saddr . meta l4proto . th sport . ip daddr . th dport map @peer4
//	}
//	chain forward { type filter hook forward priority filter - 5; policy accept;
//	  iifname WAN ip daddr . meta l4proto . th dport . ct original proto-dst @acc4 ct mark set ct mark | MARK accept
//	  iifname WAN ip saddr . ip daddr . meta l4proto . th dport . ct original proto-dst @acc4h ct mark set ct mark | MARK accept
//	  iifname @lan_ifs ct status dnat ip daddr . meta l4proto . th dport . ct original proto-dst @acc4 ct mark set ct mark | MARK accept
//	  iifname @lan_ifs ct status dnat ip daddr . meta l4proto . th dport . ct original proto-dst @acc4x ct mark set ct mark | MARK accept
//	  iifname WAN6 ip6 daddr . meta l4proto . th dport @pin6 ct mark set ct mark | MARK accept
//	  iifname WAN6 ip6 saddr . ip6 daddr . meta l4proto . th dport @pin6h ct mark set ct mark | MARK accept
//	  iifname WAN6 th sport . ip6 daddr . meta l4proto . th dport @pin6p ct mark set ct mark | MARK accept
//	  iifname WAN6 ip6 saddr . th sport . ip6 daddr . meta l4proto . th dport @pin6hp ct mark set ct mark | MARK accept
//	  iifname WAN6 ip6 saddr . ip6 daddr . meta l4proto . th dport @pin6s ct mark set ct mark | MARK accept
//	  meta nfproto ipv6 iifname WAN6 jump wan6_in         # only with Config.IPv6Baseline
//	}
//	chain wan6_in {                                      # RFC 6092 baseline, empty without it
//	  ct state established,related accept                # REC-10, REC-18, REC-23: errors matching state
//	  ct state invalid drop                              # e.g. an ICMPv6 error about no known flow
//	  icmpv6 type echo-request accept                    # RFC 4890 §4.3.1
//	  meta l4proto ah accept                             # REC-21
//	  meta l4proto esp accept                            # REC-22
//	  meta l4proto hip accept                            # REC-26
//	  udp dport 500 accept                               # REC-24 (IKE)
//	  udp dport 4500 accept                              # IKE/ESP over UDP
//	  drop                                               # the rest: unsolicited inbound
//	}
//
// Portset mode (SetSNAT) adds the CPE's own outbound NAT over the part of
// the provider's port set that mappings do not use:
//
//	chain portset_snat { type nat hook postrouting priority -10; policy accept;
//	  meta nfproto ipv4 oifname WAN meta l4proto tcp numgen inc mod N vmap @portset_snat   # and udp, icmp
//	}
//	map portset_snat { type integer : verdict }   # i : jump portset_snat_i
//	chain portset_snat_0 { snat ip to ADDR:4112-4127 }   # one per range
//
// It runs before fw4's srcnat (100), so it decides the source port of
// every new outbound flow on the WAN; New leaves it empty.
//
// The forward accept is keyed by the DNATed destination plus the original
// destination port (ct original proto-dst), so two WAN ports forwarded to
// the same LAN port are two elements. DNAT runs at dstnat + 5, after the
// main firewall's own redirects, which therefore win. The counter of a
// pinhole element (Packets) counts every inbound packet that matched it.
//
// # Hairpin (RFC 7648 §3.1)
//
// A LAN host may connect to a mapped LAN service at the address the
// internet uses. At the CPE's WAN address that is the forward's WAN port
// (set wan4, map fwd4). At the upstream's external address (the
// provider's CGN address, the ISP box's WAN address: SetExternalAddr, set
// ext4) it is the port the upstream gave the mapping, which need not be
// the WAN port (the CGN had the WAN port taken, or translates ports): map
// fwd4x is keyed by it (Forward.UpstreamPort), so that a connection to
// the external address never lands on another forward whose WAN port
// happens to be that number. Its accept element (acc4x) carries the
// upstream port as the original destination port. The connection's
// source is masqueraded to the CPE's LAN address (postrouting), so that
// the replies come back through the CPE. A forward with a Remote
// has no hairpin (a LAN host is not its remote host). DS-Lite forwards
// (Port 0) have none either: the CPE does not NAT, and the AFTR hairpins.
//
// # Outbound flows (PCP PEER)
//
// An Outbound fixes the source a flow's first packet leaves the WAN with
// (RFC 6887 §12: a PEER mapping exists before its flow). The SNAT runs at
// srcnat - 5, before fw4's masquerade at srcnat: the first NAT chain to
// bind a connection wins, so the flow keeps the port pcpgw told its
// client. A flow that exists already keeps its NAT (conntrack decides a
// flow's NAT once); FlowSource reads it (one ctnetlink GET by the original
// tuple), so that a PEER for an existing flow is answered with the source
// it really has. Sync leaves the peer4 elements alone: they expire by
// their timeouts.
//
// # Living with a main firewall (OpenWrt fw4)
//
// An accept in pcpgw's table does not override a drop in another table:
// fw4's forward chain (table inet fw4, policy drop) still sees the packet.
// So pcpgw sets a conntrack mark bit (Config.Mark, DefaultMark 0x20000000)
// on every flow it accepts, in its forward chain at priority filter - 5,
// before fw4's chain at priority filter. One static rule in fw4's forward
// chain honours it; the OpenWrt package installs fw4-include.nft as
// /usr/share/nftables.d/chain-pre/forward/30-pcpgw.nft:
//
//	ct mark & 0x20000000 == 0x20000000 accept comment "!pcpgw: forwards and pinholes"
//
// The baseline (Config.IPv6Baseline, the ipv6_firewall option) is for
// systems with no other firewall; with fw4, leave it off and let fw4's
// own IPv6 policy apply, honouring the mark for pinholes.
//
// # Restart
//
// New adopts a table left behind (even by a pcpgw killed with SIGKILL): in
// one batch it creates what is missing and replaces the static rules, but
// keeps the set and map elements. Sync then reads the elements and deletes
// the unwanted ones and adds the missing ones, so entries that stay wanted
// keep forwarding throughout; nothing is flushed blindly. Close deletes
// the table.
//
// # Limits
//
// Pinholes need a port (no IGD "any port" wildcard); a pinhole's remote
// host and remote port are each one value or any. Element timeouts longer
// than MaxTimeout are not given to the kernel (32-bit kernels refuse
// them): such entries live until deleted or until Sync at the next start.
// A Change is one batch whatever its size (element lists are split into
// messages of at most 400 elements; tested with 20,000 forwards); Sync
// splits a large state into batches of 2,000 elements.
package firewall
