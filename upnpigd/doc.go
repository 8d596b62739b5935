// Package upnpigd is pcpgw's UPnP Internet Gateway Device front-end: SSDP
// discovery, device and service descriptions, SOAP control and GENA
// events, carried through the mapping core to the provider's NAT as
// RFC 6970 (UPnP IGD-PCP Interworking Function) describes.
//
// # Devices
//
// Two root devices are offered, each with its own UUIDs (derived from
// Config.UUID, so stable across restarts) and description URL, because
// many IGD:1-only control points (Windows, consoles, older games,
// libminiupnpc's first search) refuse an IGD:2 description:
//
//	/igd1.xml  InternetGatewayDevice:1
//	             WANDevice:1            WANCommonInterfaceConfig:1
//	               WANConnectionDevice:1  WANIPConnection:1
//	/igd2.xml  InternetGatewayDevice:2
//	             WANDevice:2            WANCommonInterfaceConfig:1
//	               WANConnectionDevice:2  WANIPConnection:2, WANIPv6FirewallControl:1
//
// Service paths are /igdN/<serviceId>.xml (SCPD), /igdN/<serviceId>/ctl
// (control) and /igdN/<serviceId>/evt (events). The SCPDs list exactly the
// actions implemented, with the argument names of the UPnP Forum SCPDs
// (the ones goupnp's dcps clients are generated from).
//
// # SSDP (UDA 1.1 §1)
//
// IPv4, per LAN interface: one socket bound to 239.255.255.250:SSDPPort
// itself and joined on that interface only, with IP_MULTICAST_ALL off
// (internal/mcast.ListenGroup), so it receives that interface's searches
// and nothing else, and one socket bound to the interface's IPv4 address
// and SSDPPort for unicast searches, answers and NOTIFYs. IPv6, on each
// LAN interface with a link-local and a global or unique-local address:
// one socket bound to [ff02::c%if]:SSDPPort and joined there, one bound to
// the link-local address; LOCATION names the global address. Nothing binds
// the wildcard (a socket on 0.0.0.0:1900 would take datagrams to the WAN
// address too: RFC 6092 REC-50), and the unicast SSDP sockets and the HTTP
// listeners are also bound to their LAN interface (SO_BINDTODEVICE): Linux
// takes a packet for any local address on any interface, so an address
// binding alone would let the WAN side reach them by routing to a LAN
// address. Without CAP_NET_RAW they are bound to the address only, with a
// warning.
// M-SEARCH is answered for ssdp:all, upnp:rootdevice, every device UUID and
// every device and service type offered; a search for a version no root
// offers is answered by a higher version, echoing the searched ST. Only
// sources inside the receiving interface's prefixes, other than their
// network and broadcast addresses (and, on IPv6, its link-local sources)
// get answers, after a random delay within MX (capped at 5 s; unicast searches at once).
// Token buckets of answer bytes bound amplification: per source 96 KiB at
// once and 16 KiB/s (an ssdp:all search gets 6.4 KB, tailscale's probe
// 13.5 KB: several probes back to back pass), every source together 512
// KiB and 128 KiB/s, 1024 sources tracked. Malformed packets get no
// answer and are counted.
// ssdp:alive is multicast at start, 1 s later and every ~10 minutes
// (CACHE-CONTROL max-age=1800), ssdp:byebye at stop. Answers carry
// LOCATION of the interface's own address, SERVER, BOOTID.UPNP.ORG
// (Config.BootID) and CONFIGID.UPNP.ORG. Interface addresses are read
// when Run starts and every Config.Rescan (5 s); when they change, the
// HTTP and SSDP listeners are opened again on the new set (byebye, then
// alive with the new LOCATIONs).
//
// # Control (SOAP 1.1)
//
// WANIPConnection:1: GetExternalIPAddress, AddPortMapping,
// DeletePortMapping, GetGenericPortMappingEntry,
// GetSpecificPortMappingEntry, GetStatusInfo, GetConnectionTypeInfo,
// GetNATRSIPStatus, SetConnectionType (IP_Routed only), RequestConnection,
// RequestTermination, ForceTermination (501: the connection is the
// provider's). WANIPConnection:2 adds AddAnyPortMapping,
// DeletePortMappingRange, GetListOfPortMappings.
// WANCommonInterfaceConfig:1: GetCommonLinkProperties (link state and
// speed of Config.WAN), GetTotalBytes/PacketsSent/Received (the WAN's
// /sys counters, wrapping at 2^32 as their ui4 type says).
// WANIPv6FirewallControl:1: GetFirewallStatus, GetOutboundPinholeTimeout
// (conntrack's timeouts), AddPinhole, UpdatePinhole, DeletePinhole,
// GetPinholePackets, CheckPinholeWorking.
//
// Translation (RFC 6970 §4-5), the requester always being the TCP peer:
//
//   - AddPortMapping: Core.Map with ExactPort (PREFER_FAILURE); a port the
//     provider cannot give is 718. External port 0 (wildcard) is 716;
//     internal port 0 is 402 on IGD:1, 732 on IGD:2; NewEnabled must be 1
//     (§4.1). Internal and external ports may differ, so 724
//     SamePortValuesRequired never occurs.
//   - AddAnyPortMapping: Core.Map without ExactPort; NewReservedPort is
//     Mapping.External's port, the port on the address
//     GetExternalIPAddress reports (the provider's in NAT444).
//   - Leases: IGD:1 0 is permanent (Lifetime 0); IGD:2 0 and anything
//     above 604800 s become 604800 s; pinholes 1-86400 s.
//   - GetExternalIPAddress: Core.ExternalAddr; while the provider's
//     address is unknown (CodeNetworkFailure) the answer is the empty
//     string, as §4.1 says for ExternalIPAddress, and GetStatusInfo says
//     Disconnected.
//   - GetGeneric/GetSpecific/GetListOfPortMappings are answered from the
//     core's table (§5.7), pinholes excluded, in creation order;
//     an index beyond the end is 713, a missing entry 714, an empty range
//     730, start above end 733. The listing follows WANIPConnection-v2.xsd
//     and travels as CDATA, as miniupnpd sends it (libminiupnpc does not
//     decode entities).
//   - DeletePortMapping(Range) delete by the mapping's ID with the
//     requester as Client, so secure mode applies in the core; nothing
//     matching is 714 (range: 730). NewManage 0 limits a range to the
//     requester's own mappings.
//   - RemoteHost: empty or the unspecified address is any; an address is
//     passed to the core (FILTER). IGD:2 services also take host names in
//     RemoteHost and InternalClient (REQUIREMENTS 33): looked up with
//     Config.Resolve (the system's resolver) within Config.ResolveTimeout
//     (2 s), the first address of the family wanted is used; a name that
//     does not exist or has none is 402, a failed lookup 501. IGD:1 takes
//     addresses only (402).
//   - Core errors become UPnP codes through mapping.UPnPError (IGD version
//     of the service) and mapping.UPnPPinholeError; the front-end's own
//     argument checks give 402 and the codes above. Faults are HTTP 500
//     with s:Fault/detail/UPnPError{errorCode, errorDescription}.
//
// # HTTP and GENA hardening
//
//   - Listeners on the LAN interfaces' addresses only (IPv4 and
//     non-link-local IPv6), Config.HTTPPort (EphemeralPort for tests),
//     with FREEBIND so that an address still in duplicate address
//     detection at boot can be bound; an IPv6 listener that still fails
//     is skipped with a warning, an IPv4 one fails Run.
//   - The Host header must be an IP literal of pcpgw's LAN side with the
//     port the connection arrived on, else 403 (DNS rebinding).
//   - HTTP is internal/httpd (no net/http: it would not fit a router's
//     flash). Headers at most 8 KiB (431), bodies 64 KiB (413), request
//     with both Content-Length and Transfer-Encoding 400; request head
//     read within 2 s, whole request within 10 s, answer written within
//     30 s, idle 30 s; at most MaxConns connections per listener and
//     MaxConns/4 from one host (an IPv4 address or IPv6 /64). A new
//     connection from a host at its cap closes that host's connection idle
//     the longest (a program leaking connections cannot lock its host's
//     other programs out); on a full listener it closes the connection
//     idle the longest, whoever's, however briefly idle (hosts with many
//     addresses cannot lock the others out); idle means no whole request
//     to answer, and a request that came with its connection (every
//     control point sends it at once) is never idle. 503 only when no
//     connection is idle. IPv4 and IPv6 listeners count apart: a flood on
//     one leaves the other alone.
//   - SOAPACTION with or without quotes, at most 256 bytes, must name the
//     body's action and the service (or an earlier version of it).
//     encoding/xml never expands external entities; DTDs, processing
//     instructions, unknown entities, non-UTF-8 charsets, depth above 8
//     and elements with more than 16 attributes are 401; more than 32
//     arguments, one given twice, above 4 KiB or with a name that is not a
//     UPnP name are 402.
//   - GENA: SUBSCRIBE (NT upnp:event, CALLBACK), renewal by SID,
//     UNSUBSCRIBE; SIDs are random uuid:s; TIMEOUT clamped to 300-1800 s;
//     at most MaxSubscriptions, and MaxSubscriptionsPerHost for one host
//     (IPv4 address or IPv6 /64; 503 beyond). The CALLBACK used is the
//     first http URL whose host is the subscriber's own TCP peer address;
//     none gives 412 and nothing is ever sent (CallStranger,
//     CVE-2020-12695). The initial event (SEQ 0, every evented variable)
//     follows the flushed answer; core events (Core.Subscribe) mark
//     ExternalIPAddress, ConnectionStatus, PortMappingNumberOfEntries and
//     SystemUpdateID changed; each subscription has at most one sender
//     goroutine, which coalesces changes and sends current values, with a
//     5 s timeout and no redirects; three failed NOTIFYs in a row end the
//     subscription. The firewall service events FirewallEnabled and
//     InboundPinholeAllowed.
//
// Everything a LAN host can trigger logs at Debug only; Stats counts it.
package upnpigd
