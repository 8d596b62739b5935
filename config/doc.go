// Package config turns pcpgw's UCI configuration file (/etc/config/pcpgw)
// and the flags of `pcpgw run` into one validated [Config].
//
// [Load] reads the file with the parser of package [github.com/pcpgw/pcpgw/config/uci],
// applies the flags registered by [RegisterFlags] on top (a flag that was
// given wins), validates, and returns the warnings about unknown sections
// and options. Every error is an [*Error] naming the file and line
// (`/etc/config/pcpgw:7: option http_port: "70000" is not a port`), or the
// flag. [Config.WriteUCI] prints the effective configuration in the same
// syntax (what `pcpgw check-config` shows); loading it gives back an equal
// Config.
//
// The file has one section of type pcpgw for the daemon, perm_rule
// sections with the meaning of miniupnpd's /etc/config/upnpd (first match
// wins, no match allows; see [PermRule] and [Permitted]) and forward
// sections for static forwards (see [Forward]):
//
//	config pcpgw 'main'
//		list lan 'br-lan'
//		option wan 'wan'
//		option mode 'auto'
//
//	config perm_rule
//		option action 'allow'
//		option ext_ports '1024-65535'
//		option int_addr '0.0.0.0/0'
//		option int_ports '1024-65535'
//		option comment 'Allow high ports'
//
// The options of the pcpgw section (REFERENCE.md has this table with the
// perm_rule and forward options; a test keeps both equal to the parser's
// own table):
//
//	| Option (config pcpgw) | Flag of pcpgw run | Default | Meaning |
//	| --- | --- | --- | --- |
//	| `enabled` |  | on | Read by the init script: start pcpgw at boot. |
//	| `lan` (list) | `--lan` (repeatable) | none (required) | LAN interface to serve. Every listener binds to the addresses of these interfaces only. |
//	| `wan` | `--wan` | none (required) | Interface toward the provider (IPv4 uplink). |
//	| `wan6` | `--wan6` | the wan interface | IPv6 uplink interface. |
//	| `pcp_server` (list) | `--pcp-server` (repeatable) | none: discovery | The provider's PCP server, ADDR[:PORT] (port 5351 if left out; IPv6 as [ADDR]:PORT or a bare ADDR). None: the servers file, then the default router. |
//	| `pcp_servers_file` |  | /var/run/pcpgw/pcp-servers | File where the DHCP hooks write the PCP servers learned from DHCPv4 option 158 and DHCPv6 option 86, one per line; re-read when it changes. |
//	| `mode` | `--mode` | auto | auto (pick one at start and on WAN changes), local (public WAN address: the CPE's own NAT only, no PCP), nat444 (CPE NAT behind the provider's NAT, RFC 6970 §5.5), dslite (no CPE NAT; PCP MAP with THIRD_PARTY, RFC 6970 §5.4) or portset (a shared IPv4 address with a port set: MAP-E, MAP-T, lw4o6; auto picks it when the WAN is a map interface or a port set is configured). |
//	| `upstream` | `--upstream` | auto | What opens ports beyond the CPE: auto (at start and on WAN changes try the provider's PCP server, then a NAT-PMP gateway, then an ISP box's UPnP IGD on the WAN link; none if nothing answers), pcp, natpmp, upnp, or none (mappings on the CPE only; the status says what to do). |
//	| `aftr_name` |  | none | DS-Lite AFTR name (DHCPv6 option 64; the DHCPv6 hook sets it): looked up with the WAN's resolvers, its address is the PCP server unless one is configured or learned from DHCP. A new name takes effect on reload. |
//	| `nat64_prefix` (list) |  | none: RFC 7050 discovery, else 64:ff9b::/96 | The provider's NAT64 prefix (Pref64::/n: /32, /40, /48, /56, /64 or /96): an IPv4 port made at its NAT64 for an IPv6 LAN host admits inbound IPv6 from it, when the provider's PCP answer names none (PREFIX64). |
//	| `wan_resolv_file` |  | /tmp/resolv.conf.d/resolv.conf.auto | The DNS resolvers learned on the WAN, in resolv.conf's format (OpenWrt's netifd writes this file); the AFTR name is looked up with them, else with the system's. |
//	| `portset_psid` |  | none | The router's PSID (RFC 7597 §5.1, as the provider gives it: right-aligned), with portset_psid_len and portset_offset: the provider's port set for mode portset, when no map interface says it. |
//	| `portset_psid_len` |  | none | PSID length in bits (1-16); the set has 2^offset - 1 ranges of 2^(16 - offset - length) ports. |
//	| `portset_offset` |  | 6 | PSID offset in bits (0-15; MAP's default 6; lw4o6 and some providers use 0 or 4). |
//	| `portset_ranges` (list) |  | none | The provider's port set as ranges (4112-4127 8208-8223 ...), instead of the PSID options. |
//	| `portset_addr` |  | the map interface's, else the WAN's | The IPv4 address the router shares with other customers (mode portset). |
//	| `portset_reserve` |  | 25% | Part of the port set kept for mappings (a percentage or a number of ports, always with the static forwards' ports); pcpgw gives the rest to the router's outbound connections with its own SNAT, before fw4's. 0: mappings may take any port of the set and outbound NAT is left to the main firewall. |
//	| `map_rules` |  | /tmp/<WAN device>.rules for a map-<name> WAN | OpenWrt's map rules file of the WAN's map interface (written by map.sh), read for the shared address and the port set. |
//	| `state_dir` | `--state-dir` | /var/lib/pcpgw | Directory of the persisted mapping table. |
//	| `socket` | `--socket` | /var/run/pcpgw.sock | Control socket (mode 0600) used by pcpgw status and pcpgw list. |
//	| `http_port` | `--http-port` | 5000 | TCP port of the UPnP HTTP server on the LAN addresses; 0: any free port. |
//	| `upnp` | `--upnp`, `--no-upnp` | on | Serve UPnP IGD (SSDP and HTTP) on the LAN. |
//	| `igdv1` |  | on | Offer the IGD:1 root device (many games and consoles only speak IGD:1). |
//	| `igdv2` |  | on | Offer the IGD:2 root device (with WANIPv6FirewallControl). |
//	| `natpmp` | `--natpmp`, `--no-natpmp` | on | Serve NAT-PMP (RFC 6886) on UDP 5351 on the LAN. |
//	| `pcp` | `--pcp`, `--no-pcp` | on | Serve PCP (RFC 6887, proxied per RFC 7648) on UDP 5351 on the LAN. |
//	| `ipv6_pinholes` | `--ipv6-pinholes`, `--no-ipv6-pinholes` | on | Let LAN hosts open IPv6 pinholes (IGD:2 firewall control, PCP MAP for IPv6). |
//	| `ipv6_firewall` |  | off | Install the RFC 6092 IPv6 baseline (stateful inbound filter, RFC 4890 ICMPv6) in pcpgw's own table; leave off when the router's firewall does it. |
//	| `secure_mode` | `--secure-mode`, `--no-secure-mode` | on | A LAN host may only map ports to itself; off, it may map for other LAN hosts too (UPnP NewInternalClient, PCP THIRD_PARTY). |
//	| `quota` |  | 128 | Mappings one LAN host may hold; 0: no limit. |
//	| `min_lifetime` |  | 120 | Shortest lease granted to a LAN host, in seconds. |
//	| `max_lifetime` |  | 86400 | Longest lease granted to a LAN host, in seconds. |
//	| `lease_file` |  | none | Also write the mappings to this file in miniupnpd's lease format (PROTO:eport:iaddr:iport:timestamp:desc) for LuCI's UPnP page. |
//	| `dhcp_leases` |  | /tmp/dhcp.leases | dnsmasq's lease file: when a LAN host's DHCP lease ends or is released, its mappings and pinholes are deleted (RFC 6970 §5.10); static forwards stay. '' turns it off (hosts with fixed addresses are never in the file and are left alone). |
//	| `nft_table` |  | pcpgw | pcpgw's own nftables table (family inet); created at start, removed at exit. Never fw4's. |
//	| `log_level` | `--log-level` | info | debug, info, warn or error. |
//	| `password_hash` |  | none: the page is read-only status | Hash of the password of the subscriber's page (argon2id, PHC string format), written by pcpgw passwd. Never printed by check-config. |
//	| `syslog` | `--syslog` | off | Log to syslog instead of stderr. |
package config
