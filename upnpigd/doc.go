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
// GetNATRSIPStatus, SetConnectionType, RequestConnection,
// RequestTermination, ForceTermination (errors: the connection is the
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
//   - Arguments are read as miniupnpd reads them (issue 17: most control
//     points were only tested against it): numbers as C's strtol
//     ("+8080", " 8080", "8080abc" are 8080; no digits is 0), but a port
//     outside 0-65535 is 402 (miniupnpd takes it modulo 65536: another
//     port than named); protocols TCP and UDP in any case, anything else
//     402 when adding (miniupnpd opens TCP) and TCP when deleting or
//     looking up; a missing NewRemoteHost is any, a missing or empty
//     NewInternalClient the requester, a missing description empty, a
//     missing or unreadable lease 0, one beyond the ui4 range 604800 s.
//   - AddPortMapping: Core.Map with ExactPort (PREFER_FAILURE); a port the
//     provider cannot give is 718. External port 0 (wildcard) is 716;
//     internal port 0 is 402 on IGD:1, 732 on IGD:2; NewEnabled 0, false
//     or no is 402 (§4.1), any other value or none is 1. The requester's
//     mapping of the port with another remote host is 718 (as miniupnpd).
//     Internal and external ports may differ, so 724
//     SamePortValuesRequired never occurs.
//   - AddAnyPortMapping: Core.Map without ExactPort; NewReservedPort is
//     Mapping.External's port, the port on the address
//     GetExternalIPAddress reports (the provider's in NAT444).
//   - Leases: IGD:1 0 is permanent (Lifetime 0); IGD:2 (and
//     AddAnyPortMapping on IGD:1) 0 and anything above 604800 s become
//     604800 s; the core keeps UPnP leases of 1-604800 s as asked
//     (min_lifetime and max_lifetime bound NAT-PMP and PCP);
//     pinholes 1-86400 s.
//   - GetExternalIPAddress: Core.ExternalAddr; while the provider's
//     address is unknown (CodeNetworkFailure) the answer is the empty
//     string, as §4.1 says for ExternalIPAddress, and GetStatusInfo says
//     Disconnected.
//   - GetGeneric/GetSpecific/GetListOfPortMappings are answered from the
//     core's table (§5.7), pinholes excluded, in creation order; a
//     mapping is looked up by port and protocol (a remote host does not
//     tell mappings apart), and one that moved (the upstream gave an
//     AddAnyPortMapping, NAT-PMP or PCP mapping another port; an exact one
//     never moves) by its port now or else by the port first given
//     (Mapping.Given), so that GetSpecificPortMappingEntry and
//     DeletePortMapping of what the control point was told still find it; an index out of range is 713, a missing entry
//     714, start above end 733, an empty range an empty listing (as
//     miniupnpd; WANIPConnection:2 says 730). The listing follows
//     WANIPConnection-v2.xsd and travels as CDATA, as miniupnpd sends it
//     (libminiupnpc does not decode entities).
//   - DeletePortMapping(Range) delete by the mapping's ID with the
//     requester as Client, so secure mode applies in the core; deleting
//     what is not there is 714 (RFC 6970 §5.8, the IGD specification;
//     miniupnpd 2.3.9's nftables backend answers success), an empty range
//     is 730. NewManage 0 limits a range to the requester's own mappings;
//     missing, it is 1 (miniupnpd ignores it).
//   - Pinholes (WANIPv6FirewallControl:1): arguments read as miniupnpd
//     reads them (strtol; its order of checks, so its error codes); as
//     miniupnpd does and the service recommends for control points that
//     are not authenticated, a pinhole leads to a port of 1024 or more
//     (606 otherwise), and only the host that opened a pinhole may update,
//     delete or read it (606), whatever secure mode says.
//   - SetConnectionType is 731 ReadOnly, RequestConnection and
//     ForceTermination 606, RequestTermination 501: the connection is the
//     provider's.
//   - GetNATRSIPStatus: RSIP 0; NATEnabled 1, but 0 in dslite mode (the
//     CPE does no NAT: the LAN hosts' own addresses reach the provider's
//     AFTR, which translates them; Core.Mode).
//   - GetFirewallStatus: FirewallEnabled 1 (pinholes only mean something
//     behind a firewall that drops unsolicited inbound IPv6: pcpgw's
//     RFC 6092 baseline or the router's own), InboundPinholeAllowed
//     whether the core allows pinholes now (ipv6_pinholes, which a
//     reload changes; turned off, the open pinholes are closed and
//     AddPinhole is 703).
//   - RemoteHost: empty or the unspecified address is any; an address is
//     passed to the core (FILTER). Host names are taken in RemoteHost and
//     InternalClient (REQUIREMENTS 33 for IGD:2; on IGD:1 too, as in
//     miniupnpd): looked up with Config.Resolve (by default /etc/hosts,
//     then A and AAAA from the servers of /etc/resolv.conf, with
//     internal/dnsq rather than Go's resolver, for the router's flash)
//     within Config.ResolveTimeout (2 s), the first address of the family
//     wanted is used; a name that does not exist or has none is 402, a
//     failed lookup 501.
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
//     port the connection arrived on, or without a port, else 403 (DNS
//     rebinding).
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
//   - SOAPACTION, with or without quotes, at most 256 bytes, names the
//     action; as in miniupnpd, its service type and the body's action
//     element (name, namespace, or no Envelope around it) need not agree.
//     The action is served by the service of the control URL, else by
//     another service of the same root device (WANCommonInterfaceConfig
//     actions on the WANIPConnection URL and the other way round); the
//     IGD:1 WANIPConnection also serves the actions IGD:2 added, without
//     describing them. encoding/xml never expands external entities;
//     DTDs, processing instructions, unknown entities, charsets other than
//     UTF-8, US-ASCII and ISO-8859-1, depth above 8 and elements with
//     more than 16 attributes are 401; an argument above 4 KiB is 402; an
//     argument given twice takes its last value, arguments beyond 32 and
//     those whose name is no UPnP name are ignored.
//   - GENA: SUBSCRIBE (NT upnp:event, CALLBACK), renewal by SID,
//     UNSUBSCRIBE; SIDs are random uuid:s; TIMEOUT clamped to 300-1800 s;
//     at most MaxSubscriptions, and MaxSubscriptionsPerHost for one host
//     (IPv4 address or IPv6 /64; 503 beyond). The CALLBACK used is the
//     first http URL whose host is the subscriber's own TCP peer address;
//     none gives 412 and nothing is ever sent (CallStranger,
//     CVE-2020-12695). The initial event (SEQ 0, every evented variable)
//     follows the flushed answer; core events (Core.Subscribe) mark
//     ExternalIPAddress, ConnectionStatus, PortMappingNumberOfEntries and
//     SystemUpdateID changed (SystemUpdateID, IGD:2's, goes up with every
//     change of a mapping: added, deleted, or moved to another port by the
//     upstream, EventMappingMoved; on a move IGD:1 subscribers get
//     PortMappingNumberOfEntries, unchanged, the only variable of theirs
//     that tells them to read the table again); each subscription has at most one sender
//     goroutine, which coalesces changes and sends current values, with a
//     5 s timeout and no redirects; three failed NOTIFYs in a row end the
//     subscription. The firewall service events FirewallEnabled and
//     InboundPinholeAllowed: in the initial event, and each that changed
//     when the core says pinholes were turned on or off (EventFirewall).
//
// Everything a LAN host can trigger logs at Debug only; Stats counts it.
//
// # Differences from miniupnpd
//
// Most control points were only ever tested against miniupnpd, so pcpgw
// reads requests as miniupnpd 2.3.9 does (see Control). The differential
// test tolerance.TestDifferential (run in CI) sends about a thousand raw
// requests to miniupnpd 2.3.9 and to pcpgw in the namespace lab: every
// action with valid arguments, then each argument missing, empty,
// self-closing, padded, renamed, prefixed, given twice, with edge and
// malformed values, with extra arguments, in other namespaces and request
// shapes, and deletes in unusual forms; the pinhole actions over IPv6.
// miniupnpd runs with secure_mode=yes and its default permission rules
// (pcpgw's defaults); the cases about another host run again with secure
// mode off on both. The test compares the outcomes: the answer ("ok" with
// the values that matter, E and the UPnP error code, H and an HTTP
// status) and the change to the mapping table read back through
// GetGenericPortMappingEntry ("+" added, "-" removed, "~" changed:
// PROTO/external>client:internal, "rh=" the remote host, the description,
// "L" the lease rounded to 10 s; "*" an external port the case does not
// name; "self" the requester, "other" another LAN host, "gw" the daemon,
// "ext" its external address; "pinN:there" or "pinN:gone" whether a
// pinhole the case opened is still there). Every outcome that still
// differs is a row of the table below, which the test keeps true (a row
// that no longer differs fails it too). The last column says why the
// difference is kept:
//
//   - security: port range: a port outside 0-65535. miniupnpd takes it
//     modulo 65536 (-1 is 65535, 4294996376 is 29080; 65536 starts a
//     range at 0) and maps, deletes or lists another port than the one
//     named.
//   - security: disabled mapping: NewEnabled 0, false or no asks for a
//     mapping that is off; miniupnpd ignores the argument and opens the
//     port.
//   - security: unknown protocol: miniupnpd opens TCP for any NewProtocol
//     but UDP ("", "6", "ANY"): a TCP port the control point did not ask
//     for.
//   - security: remote host: a remote host that names no host of the
//     mapping's family ("::1" for a port mapping, an IPv4 address for a
//     pinhole, a name that does not resolve) cannot restrict it as asked;
//     miniupnpd opens it to every host.
//   - security: own ports: pcpgw's HTTP port and 5350/5351 are never
//     mapped (the IGD and NAT-PMP/PCP would face the internet); miniupnpd
//     maps its own ports.
//   - security: secure mode: with secure mode on, DeletePortMappingRange
//     deletes the requester's mappings only; miniupnpd deletes every
//     host's.
//   - security: descriptions: descriptions are sanitized (control
//     characters become spaces, trimmed, at most 256 bytes:
//     mapping.SanitizeDescription) before the state and lease files, logs
//     and LuCI see them.
//   - both refuse: only the error code differs (IGD:1 has no 606, so 718,
//     RFC 6970 §4.3; an internal client that can be no host is 402 before
//     secure mode is checked; internal port 0 is 732 on IGD:2; no
//     SOAPACTION is 401 rather than HTTP 400; a Host that is a name is 403
//     rather than 404; a pinhole UniqueID the daemon does not hold is 704,
//     NoSuchEntry, where miniupnpd says 402).
//   - lenient: pcpgw takes what miniupnpd 2.3.9 refuses or fails on: an
//     empty or missing NewInternalClient (miniupnpd's code means the
//     requester, but 2.3.9 answers 501), padded addresses and numbers
//     (miniupnpd's range and AddAnyPortMapping ports must be bare digits),
//     an IPv4-mapped internal client, a chunked body, a padded SOAPACTION,
//     a description of 300 bytes (miniupnpd: 501) or one with a "<" (which
//     breaks miniupnpd's own listing), GetOutboundPinholeTimeout (which
//     miniupnpd 2.3.9 does not implement: 501).
//   - listing: remote host: both restrict the mapping to the remote host
//     (miniupnpd in its forward chain), but miniupnpd's listings do not
//     show it.
//   - miniupnpd bug: its AddPortMapping of an existing mapping keeps the
//     old description (and, asked by another host with secure mode off,
//     the old lease); pcpgw renews it as asked.
//   - free choice: both succeed; the port AddAnyPortMapping takes when the
//     one asked is no port, and which mapping a listing cut short by
//     NewNumberOfPorts shows, are each daemon's own choice (pcpgw: the
//     internal port first; creation order).
//   - spec: no such entry: deleting a mapping that is not there is 714
//     NoSuchEntryInArray (WANIPConnection, RFC 6970 §5.8, REQUIREMENTS
//     15); miniupnpd 2.3.9's nftables backend answers success.
//   - spec: NewManage 0 limits listings and range deletes to the
//     requester's own mappings (WANIPConnection:2); miniupnpd ignores
//     NewManage.
//   - IGD:1 permanent: an IGD:1 lease of 0 is permanent (WANIPConnection:1);
//     miniupnpd built with IGD:2 support (as distributions build it) gives
//     604800 s.
//
// The rows, by reason:
//
//	case | miniupnpd | pcpgw | why
//	fw AddPinhole RemotePort="-1" | ok pin1:there | E402 | security: port range
//	fw AddPinhole RemotePort="65536" | ok pin1:there | E402 | security: port range
//	igd1 AddPortMapping NewExternalPort="-1" | ok +TCP/*>self:8080 "tol" L3600 | E402 | security: port range
//	igd1 AddPortMapping NewExternalPort="4294996376" | ok +TCP/*>self:8080 "tol" L3600 | E402 | security: port range
//	igd1 AddPortMapping NewInternalPort="-1" | ok +TCP/28080>self:65535 "tol" L3600 | E402 | security: port range
//	igd1 AddPortMapping NewInternalPort="4294996376" | ok +TCP/28080>self:29080 "tol" L3600 | E402 | security: port range
//	igd1 DeletePortMapping NewExternalPort="-1" | ok | E402 | security: port range
//	igd1 DeletePortMapping NewExternalPort="4294996376" | ok | E402 | security: port range
//	igd2 AddAnyPortMapping NewInternalPort="-1" | ok[28080] +TCP/28080>self:65535 "tol" L3600 | E402 | security: port range
//	igd2 AddAnyPortMapping NewInternalPort="4294996376" | ok[28080] +TCP/28080>self:29080 "tol" L3600 | E402 | security: port range
//	igd2 AddPortMapping NewExternalPort="-1" | ok +TCP/*>self:8080 "tol" L3600 | E402 | security: port range
//	igd2 AddPortMapping NewExternalPort="4294996376" | ok +TCP/*>self:8080 "tol" L3600 | E402 | security: port range
//	igd2 AddPortMapping NewInternalPort="-1" | ok +TCP/28080>self:65535 "tol" L3600 | E402 | security: port range
//	igd2 AddPortMapping NewInternalPort="4294996376" | ok +TCP/28080>self:29080 "tol" L3600 | E402 | security: port range
//	igd2 DeletePortMapping NewExternalPort="-1" | ok | E402 | security: port range
//	igd2 DeletePortMapping NewExternalPort="4294996376" | ok | E402 | security: port range
//	igd2 DeletePortMappingRange NewEndPort="4294996376" | ok -TCP/28080>self:8080 "tol" L3600 | E402 | security: port range
//	igd2 DeletePortMappingRange NewStartPort="65536" | ok -TCP/28080>self:8080 "tol" L3600 | E402 | security: port range
//	igd2 GetListOfPortMappings NewEndPort="4294996376" | ok[28080>self:8080] | E402 | security: port range
//	igd2 GetListOfPortMappings NewStartPort="65536" | ok[28080>self:8080] | E402 | security: port range
//	igd1 AddPortMapping NewEnabled="0" | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: disabled mapping
//	igd1 AddPortMapping NewEnabled="false" | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: disabled mapping
//	igd1 AddPortMapping NewEnabled="no" | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: disabled mapping
//	igd2 AddAnyPortMapping NewEnabled="0" | ok[28080] +TCP/28080>self:8080 "tol" L3600 | E402 | security: disabled mapping
//	igd2 AddAnyPortMapping NewEnabled="false" | ok[28080] +TCP/28080>self:8080 "tol" L3600 | E402 | security: disabled mapping
//	igd2 AddAnyPortMapping NewEnabled="no" | ok[28080] +TCP/28080>self:8080 "tol" L3600 | E402 | security: disabled mapping
//	igd2 AddPortMapping NewEnabled="0" | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: disabled mapping
//	igd2 AddPortMapping NewEnabled="false" | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: disabled mapping
//	igd2 AddPortMapping NewEnabled="no" | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: disabled mapping
//	igd1 AddPortMapping NewProtocol empty | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: unknown protocol
//	igd1 AddPortMapping NewProtocol="6" | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: unknown protocol
//	igd1 AddPortMapping NewProtocol="ANY" | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: unknown protocol
//	igd1 AddPortMapping NewProtocol="xyz" | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: unknown protocol
//	igd2 AddAnyPortMapping NewProtocol empty | ok[28080] +TCP/28080>self:8080 "tol" L3600 | E402 | security: unknown protocol
//	igd2 AddAnyPortMapping NewProtocol="6" | ok[28080] +TCP/28080>self:8080 "tol" L3600 | E402 | security: unknown protocol
//	igd2 AddAnyPortMapping NewProtocol="ANY" | ok[28080] +TCP/28080>self:8080 "tol" L3600 | E402 | security: unknown protocol
//	igd2 AddAnyPortMapping NewProtocol="xyz" | ok[28080] +TCP/28080>self:8080 "tol" L3600 | E402 | security: unknown protocol
//	igd2 AddPortMapping NewProtocol empty | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: unknown protocol
//	igd2 AddPortMapping NewProtocol="6" | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: unknown protocol
//	igd2 AddPortMapping NewProtocol="ANY" | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: unknown protocol
//	igd2 AddPortMapping NewProtocol="xyz" | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: unknown protocol
//	fw AddPinhole RemoteHost="203.0.113.50" | ok pin1:there | E402 | security: remote host
//	fw AddPinhole RemoteHost="abc" | ok pin1:there | E501 | security: remote host
//	igd1 AddPortMapping NewRemoteHost="::1" | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: remote host
//	igd1 AddPortMapping NewRemoteHost="abc" | ok +TCP/28080>self:8080 "tol" L3600 | E501 | security: remote host
//	igd2 AddAnyPortMapping NewRemoteHost="::1" | ok[28080] +TCP/28080>self:8080 "tol" L3600 | E402 | security: remote host
//	igd2 AddAnyPortMapping NewRemoteHost="abc" | ok[28080] +TCP/28080>self:8080 "tol" L3600 | E501 | security: remote host
//	igd2 AddPortMapping NewRemoteHost="::1" | ok +TCP/28080>self:8080 "tol" L3600 | E402 | security: remote host
//	igd2 AddPortMapping NewRemoteHost="abc" | ok +TCP/28080>self:8080 "tol" L3600 | E501 | security: remote host
//	igd1 AddPortMapping port 5000 (the daemon's HTTP port) | ok +TCP/5000>self:8080 "tol" L3600 | E718 | security: own ports
//	igd1 AddPortMapping port 5351 UDP (the daemon's NAT-PMP port) | ok +UDP/5351>self:8080 "tol" L3600 | E718 | security: own ports
//	igd2 AddPortMapping port 5000 (the daemon's HTTP port) | ok +TCP/5000>self:8080 "tol" L3600 | E606 | security: own ports
//	igd2 AddPortMapping port 5351 UDP (the daemon's NAT-PMP port) | ok +UDP/5351>self:8080 "tol" L3600 | E606 | security: own ports
//	igd2 DeletePortMappingRange only the other host's mapping | ok -TCP/28090>other:8090 "theirs" L3600 | E606 | security: secure mode
//	igd2 DeletePortMappingRange with the other host's mapping | ok -TCP/28080>self:8080 "tol" L3600 -TCP/28090>other:8090 "theirs" L3600 | ok -TCP/28080>self:8080 "tol" L3600 | security: secure mode
//	igd1 AddPortMapping NewPortMappingDescription spaces | ok +TCP/28080>self:8080 "  tol  " L3600 | ok +TCP/28080>self:8080 "tol" L3600 | security: descriptions
//	igd1 AddPortMapping NewPortMappingDescription="a\tb" | ok +TCP/28080>self:8080 "a\tb" L3600 | ok +TCP/28080>self:8080 "a b" L3600 | security: descriptions
//	igd2 AddAnyPortMapping NewPortMappingDescription spaces | ok[28080] +TCP/28080>self:8080 "  tol  " L3600 | ok[28080] +TCP/28080>self:8080 "tol" L3600 | security: descriptions
//	igd2 AddAnyPortMapping NewPortMappingDescription="a\tb" | ok[28080] +TCP/28080>self:8080 "a\tb" L3600 | ok[28080] +TCP/28080>self:8080 "a b" L3600 | security: descriptions
//	igd2 AddPortMapping NewPortMappingDescription pretty | ok +TCP/28080>self:8080 "\n\t\ttol\n\t" L3600 | ok +TCP/28080>self:8080 "tol" L3600 | security: descriptions
//	igd2 AddPortMapping NewPortMappingDescription spaces | ok +TCP/28080>self:8080 "  tol  " L3600 | ok +TCP/28080>self:8080 "tol" L3600 | security: descriptions
//	igd2 AddPortMapping NewPortMappingDescription="a\tb" | ok +TCP/28080>self:8080 "a\tb" L3600 | ok +TCP/28080>self:8080 "a b" L3600 | security: descriptions
//	fw AddPinhole InternalClient="::1" | E606 | E402 | both refuse
//	fw AddPinhole InternalClient="fe80::1" | E606 | E402 | both refuse
//	fw AddPinhole InternalPort="65536" | E706 | E402 | both refuse
//	fw AddPinhole Protocol selfclosing | E402 | E705 | both refuse
//	fw CheckPinholeWorking UniqueID="0" | E402 pin1:there | E704 pin1:there | both refuse
//	fw CheckPinholeWorking UniqueID="{pin}0" | E402 pin1:there | E704 pin1:there | both refuse
//	fw DeletePinhole UniqueID="0" | E402 pin1:there | E704 pin1:there | both refuse
//	fw DeletePinhole UniqueID="{pin}0" | E402 pin1:there | E704 pin1:there | both refuse
//	fw GetOutboundPinholeTimeout InternalClient missing | E501 | E708 | both refuse
//	fw GetPinholePackets UniqueID="0" | E402 pin1:there | E704 pin1:there | both refuse
//	fw GetPinholePackets UniqueID="{pin}0" | E402 pin1:there | E704 pin1:there | both refuse
//	fw UpdatePinhole UniqueID="0" | E402 pin1:there | E704 pin1:there | both refuse
//	fw UpdatePinhole UniqueID="{pin}0" | E402 pin1:there | E704 pin1:there | both refuse
//	igd1 AddPortMapping Host name | H404 | H403 | both refuse
//	igd1 AddPortMapping NewExternalPort="1" | E606 | E718 | both refuse
//	igd1 AddPortMapping NewExternalPort="1023" | E606 | E718 | both refuse
//	igd1 AddPortMapping NewExternalPort="65536" | E716 | E402 | both refuse
//	igd1 AddPortMapping NewInternalClient="0.0.0.0" | E606 | E402 | both refuse
//	igd1 AddPortMapping NewInternalClient="127.0.0.1" | E606 | E402 | both refuse
//	igd1 AddPortMapping NewInternalClient="255.255.255.255" | E606 | E718 | both refuse
//	igd1 AddPortMapping NewInternalClient="{gw}" | E606 | E718 | both refuse
//	igd1 AddPortMapping NewInternalClient="{other}" | E606 | E718 | both refuse
//	igd1 AddPortMapping NewInternalPort empty | E606 | E402 | both refuse
//	igd1 AddPortMapping NewInternalPort="0" | E606 | E402 | both refuse
//	igd1 AddPortMapping NewInternalPort="0x6db0" | E606 | E402 | both refuse
//	igd1 AddPortMapping NewInternalPort="1" | E606 | E718 | both refuse
//	igd1 AddPortMapping NewInternalPort="1023" | E606 | E718 | both refuse
//	igd1 AddPortMapping NewInternalPort="65536" | E606 | E402 | both refuse
//	igd1 AddPortMapping NewInternalPort="abc" | E606 | E402 | both refuse
//	igd1 AddPortMapping SOAPAction missing | H400 | E401 | both refuse
//	igd1 AddPortMapping the other host's mapping for it | E606 | E718 | both refuse
//	igd1 DeletePortMapping the other host's mapping | E606 | E718 | both refuse
//	igd1 GetSpecificPortMappingEntry NewExternalPort="-1" | E714 | E402 | both refuse
//	igd1 GetSpecificPortMappingEntry NewExternalPort="4294996376" | E714 | E402 | both refuse
//	igd1 RequestTermination valid | E401 | E501 | both refuse
//	igd2 AddAnyPortMapping NewInternalClient="0.0.0.0" | E606 | E402 | both refuse
//	igd2 AddAnyPortMapping NewInternalClient="127.0.0.1" | E606 | E402 | both refuse
//	igd2 AddAnyPortMapping NewInternalPort empty | E402 | E732 | both refuse
//	igd2 AddAnyPortMapping NewInternalPort="0" | E402 | E732 | both refuse
//	igd2 AddAnyPortMapping NewInternalPort="0x6db0" | E402 | E732 | both refuse
//	igd2 AddAnyPortMapping NewInternalPort="1" | E728 | E606 | both refuse
//	igd2 AddAnyPortMapping NewInternalPort="1023" | E728 | E606 | both refuse
//	igd2 AddAnyPortMapping NewInternalPort="abc" | E402 | E732 | both refuse
//	igd2 AddPortMapping Host name | H404 | H403 | both refuse
//	igd2 AddPortMapping NewExternalPort selfclosing | E402 | E716 | both refuse
//	igd2 AddPortMapping NewExternalPort="65536" | E716 | E402 | both refuse
//	igd2 AddPortMapping NewInternalClient="0.0.0.0" | E606 | E402 | both refuse
//	igd2 AddPortMapping NewInternalClient="127.0.0.1" | E606 | E402 | both refuse
//	igd2 AddPortMapping NewInternalPort empty | E606 | E732 | both refuse
//	igd2 AddPortMapping NewInternalPort selfclosing | E402 | E732 | both refuse
//	igd2 AddPortMapping NewInternalPort="0" | E606 | E732 | both refuse
//	igd2 AddPortMapping NewInternalPort="0x6db0" | E606 | E732 | both refuse
//	igd2 AddPortMapping NewInternalPort="65536" | E606 | E402 | both refuse
//	igd2 AddPortMapping NewInternalPort="abc" | E606 | E732 | both refuse
//	igd2 AddPortMapping SOAPAction missing | H400 | E401 | both refuse
//	igd2 DeletePortMappingRange NewEndPort="0x6db0" | E402 | E733 | both refuse
//	igd2 DeletePortMappingRange NewEndPort="65536" | E733 | E402 | both refuse
//	igd2 DeletePortMappingRange NewEndPort="abc" | E402 | E733 | both refuse
//	igd2 DeletePortMappingRange NewStartPort="4294996376" | E733 | E402 | both refuse
//	igd2 GetExternalIPAddress Host name | H404 | H403 | both refuse
//	igd2 GetExternalIPAddress SOAPAction missing | H400 | E401 | both refuse
//	igd2 GetListOfPortMappings NewEndPort="0x6db0" | E402 | E733 | both refuse
//	igd2 GetListOfPortMappings NewEndPort="65536" | E733 | E402 | both refuse
//	igd2 GetListOfPortMappings NewEndPort="abc" | E402 | E733 | both refuse
//	igd2 GetListOfPortMappings NewStartPort="4294996376" | E733 | E402 | both refuse
//	igd2 GetSpecificPortMappingEntry NewExternalPort="-1" | E714 | E402 | both refuse
//	igd2 GetSpecificPortMappingEntry NewExternalPort="4294996376" | E714 | E402 | both refuse
//	igd2 RequestTermination valid | E401 | E501 | both refuse
//	fw AddPinhole InternalClient spaces | E402 | ok pin1:there | lenient
//	fw GetOutboundPinholeTimeout Protocol="65535" | E501 | ok | lenient
//	fw GetOutboundPinholeTimeout valid | E501 | ok | lenient
//	igd1 AddPortMapping NewInternalClient empty | E501 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd1 AddPortMapping NewInternalClient missing | E501 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd1 AddPortMapping NewInternalClient spaces | E402 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd1 AddPortMapping NewInternalClient="::ffff:{self}" | E402 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd1 AddPortMapping NewPortMappingDescription="<![CDATA[x<y]]>" | ok +TCP/28080>self:8080 L | ok +TCP/28080>self:8080 "x<y" L3600 | lenient
//	igd1 AddPortMapping NewPortMappingDescription="dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd" | E501 | ok +TCP/28080>self:8080 "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd" L3600 | lenient
//	igd1 AddPortMapping SOAPAction with spaces | E401 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd1 AddPortMapping chunked | E402 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddAnyPortMapping NewExternalPort spaces | E402 | ok[28080] +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddAnyPortMapping NewExternalPort="+28080" | E402 | ok[28080] +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddAnyPortMapping NewExternalPort="-1" | E402 | ok[8080] +TCP/8080>self:8080 "tol" L3600 | lenient
//	igd2 AddAnyPortMapping NewExternalPort="0x6db0" | E402 | ok[8080] +TCP/8080>self:8080 "tol" L3600 | lenient
//	igd2 AddAnyPortMapping NewExternalPort="28080.0" | E402 | ok[28080] +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddAnyPortMapping NewExternalPort="28080abc" | E402 | ok[28080] +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddAnyPortMapping NewExternalPort="abc" | E402 | ok[8080] +TCP/8080>self:8080 "tol" L3600 | lenient
//	igd2 AddAnyPortMapping NewInternalClient empty | E402 | ok[28080] +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddAnyPortMapping NewInternalClient missing | E402 | ok[28080] +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddAnyPortMapping NewInternalClient spaces | E402 | ok[28080] +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddAnyPortMapping NewInternalClient="::ffff:{self}" | E402 | ok[28080] +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddAnyPortMapping NewPortMappingDescription="<![CDATA[x<y]]>" | ok[28080] +TCP/28080>self:8080 L | ok[28080] +TCP/28080>self:8080 "x<y" L3600 | lenient
//	igd2 AddAnyPortMapping NewPortMappingDescription="dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd" | E501 | ok[28080] +TCP/28080>self:8080 "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd" L3600 | lenient
//	igd2 AddPortMapping NewInternalClient empty | E501 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddPortMapping NewInternalClient lowername | E501 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddPortMapping NewInternalClient missing | E501 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddPortMapping NewInternalClient pretty | E402 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddPortMapping NewInternalClient selfclosing | E501 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddPortMapping NewInternalClient spaces | E402 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddPortMapping NewInternalClient="::ffff:{self}" | E402 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddPortMapping NewPortMappingDescription="<![CDATA[x<y]]>" | ok +TCP/28080>self:8080 L | ok +TCP/28080>self:8080 "x<y" L3600 | lenient
//	igd2 AddPortMapping NewPortMappingDescription="dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd" | E501 | ok +TCP/28080>self:8080 "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd" L3600 | lenient
//	igd2 AddPortMapping SOAPAction with spaces | E401 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 AddPortMapping chunked | E402 | ok +TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 DeletePortMappingRange NewEndPort spaces | E402 | ok -TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 DeletePortMappingRange NewEndPort="+28080" | E402 | ok -TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 DeletePortMappingRange NewEndPort="28080.0" | E402 | ok -TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 DeletePortMappingRange NewEndPort="28080abc" | E402 | ok -TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 DeletePortMappingRange NewStartPort spaces | E402 | ok -TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 DeletePortMappingRange NewStartPort="+28080" | E402 | ok -TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 DeletePortMappingRange NewStartPort="0x6db0" | E402 | ok -TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 DeletePortMappingRange NewStartPort="28080.0" | E402 | ok -TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 DeletePortMappingRange NewStartPort="28080abc" | E402 | ok -TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 DeletePortMappingRange NewStartPort="abc" | E402 | ok -TCP/28080>self:8080 "tol" L3600 | lenient
//	igd2 GetExternalIPAddress SOAPAction with spaces | E401 | ok[ext] | lenient
//	igd2 GetListOfPortMappings NewEndPort spaces | E402 | ok[28080>self:8080] | lenient
//	igd2 GetListOfPortMappings NewEndPort="+28080" | E402 | ok[28080>self:8080] | lenient
//	igd2 GetListOfPortMappings NewEndPort="28080.0" | E402 | ok[28080>self:8080] | lenient
//	igd2 GetListOfPortMappings NewEndPort="28080abc" | E402 | ok[28080>self:8080] | lenient
//	igd2 GetListOfPortMappings NewNumberOfPorts spaces | E402 | ok[28080>self:8080] | lenient
//	igd2 GetListOfPortMappings NewNumberOfPorts="-1" | E402 | ok[28080>self:8080] | lenient
//	igd2 GetListOfPortMappings NewNumberOfPorts="abc" | E402 | ok[28080>self:8080] | lenient
//	igd2 GetListOfPortMappings NewStartPort spaces | E402 | ok[28080>self:8080] | lenient
//	igd2 GetListOfPortMappings NewStartPort="+28080" | E402 | ok[28080>self:8080] | lenient
//	igd2 GetListOfPortMappings NewStartPort="0x6db0" | E402 | ok[28080>self:8080] | lenient
//	igd2 GetListOfPortMappings NewStartPort="28080.0" | E402 | ok[28080>self:8080] | lenient
//	igd2 GetListOfPortMappings NewStartPort="28080abc" | E402 | ok[28080>self:8080] | lenient
//	igd2 GetListOfPortMappings NewStartPort="abc" | E402 | ok[28080>self:8080] | lenient
//	igd1 AddPortMapping NewRemoteHost="203.0.113.50" | ok +TCP/28080>self:8080 "tol" L3600 | ok +TCP/28080>self:8080 rh=203.0.113.50 "tol" L3600 | listing: remote host
//	igd1 AddPortMapping NewRemoteHost="self.lan" | ok +TCP/28080>self:8080 "tol" L3600 | ok +TCP/28080>self:8080 rh=self "tol" L3600 | listing: remote host
//	igd1 AddPortMapping NewRemoteHost="{self}" | ok +TCP/28080>self:8080 "tol" L3600 | ok +TCP/28080>self:8080 rh=self "tol" L3600 | listing: remote host
//	igd2 AddAnyPortMapping NewRemoteHost="203.0.113.50" | ok[28080] +TCP/28080>self:8080 "tol" L3600 | ok[28080] +TCP/28080>self:8080 rh=203.0.113.50 "tol" L3600 | listing: remote host
//	igd2 AddAnyPortMapping NewRemoteHost="self.lan" | ok[28080] +TCP/28080>self:8080 "tol" L3600 | ok[28080] +TCP/28080>self:8080 rh=self "tol" L3600 | listing: remote host
//	igd2 AddAnyPortMapping NewRemoteHost="{self}" | ok[28080] +TCP/28080>self:8080 "tol" L3600 | ok[28080] +TCP/28080>self:8080 rh=self "tol" L3600 | listing: remote host
//	igd2 AddPortMapping NewRemoteHost="203.0.113.50" | ok +TCP/28080>self:8080 "tol" L3600 | ok +TCP/28080>self:8080 rh=203.0.113.50 "tol" L3600 | listing: remote host
//	igd2 AddPortMapping NewRemoteHost="self.lan" | ok +TCP/28080>self:8080 "tol" L3600 | ok +TCP/28080>self:8080 rh=self "tol" L3600 | listing: remote host
//	igd2 AddPortMapping NewRemoteHost="{self}" | ok +TCP/28080>self:8080 "tol" L3600 | ok +TCP/28080>self:8080 rh=self "tol" L3600 | listing: remote host
//	igd1 AddPortMapping same port, new description and lease | ok ~TCP/28080>self:8080 "tol" L7200 | ok ~TCP/28080>self:8080 "new" L7200 | miniupnpd bug
//	igd2 AddPortMapping same port, new description and lease | ok ~TCP/28080>self:8080 "tol" L7200 | ok ~TCP/28080>self:8080 "new" L7200 | miniupnpd bug
//	igd2 AddAnyPortMapping NewExternalPort empty | ok[*] +TCP/*>self:8080 "tol" L3600 | ok[8080] +TCP/8080>self:8080 "tol" L3600 | free choice
//	igd2 AddAnyPortMapping NewExternalPort="0" | ok[*] +TCP/*>self:8080 "tol" L3600 | ok[8080] +TCP/8080>self:8080 "tol" L3600 | free choice
//	igd2 AddAnyPortMapping NewExternalPort="4294996376" | ok[*] +TCP/*>self:8080 "tol" L3600 | ok[8080] +TCP/8080>self:8080 "tol" L3600 | free choice
//	igd2 AddAnyPortMapping NewExternalPort="65536" | ok[*] +TCP/*>self:8080 "tol" L3600 | ok[8080] +TCP/8080>self:8080 "tol" L3600 | free choice
//	igd2 GetListOfPortMappings NewNumberOfPorts=1 of two | ok[28081>self:8081] | ok[28080>self:8080] | free choice
//	igd2 DeletePortMappingRange NewManage=0 with the other host's mapping | ok -TCP/28080>self:8080 "tol" L3600 -TCP/28090>other:8090 "theirs" L3600 | ok -TCP/28080>self:8080 "tol" L3600 | spec: NewManage
//	igd2 DeletePortMappingRange NewManage=0 with the other host's mapping (secure_mode=no) | ok -TCP/28080>self:8080 "tol" L3600 -TCP/28090>other:8090 "theirs" L3600 | ok -TCP/28080>self:8080 "tol" L3600 | spec: NewManage
//	igd2 GetListOfPortMappings NewManage=0 with the other host's mapping | ok[28080>self:8080 28090>other:8090] | ok[28080>self:8080] | spec: NewManage
//	igd2 GetListOfPortMappings NewManage=0 with the other host's mapping (secure_mode=no) | ok[28080>self:8080 28090>other:8090] | ok[28080>self:8080] | spec: NewManage
//	igd1 AddPortMapping NewLeaseDuration empty | ok +TCP/28080>self:8080 "tol" L604800 | ok +TCP/28080>self:8080 "tol" L0 | IGD:1 permanent
//	igd1 AddPortMapping NewLeaseDuration missing | ok +TCP/28080>self:8080 "tol" L604800 | ok +TCP/28080>self:8080 "tol" L0 | IGD:1 permanent
//	igd1 AddPortMapping NewLeaseDuration="0" | ok +TCP/28080>self:8080 "tol" L604800 | ok +TCP/28080>self:8080 "tol" L0 | IGD:1 permanent
//	igd1 AddPortMapping NewLeaseDuration="abc" | ok +TCP/28080>self:8080 "tol" L604800 | ok +TCP/28080>self:8080 "tol" L0 | IGD:1 permanent
//	igd1 DeletePortMapping NewExternalPort="1" | ok | E714 | spec: no such entry
//	igd1 DeletePortMapping NewExternalPort="1023" | ok | E714 | spec: no such entry
//	igd1 DeletePortMapping NewExternalPort="1024" | ok | E714 | spec: no such entry
//	igd1 DeletePortMapping NewExternalPort="65535" | ok | E714 | spec: no such entry
//	igd1 DeletePortMapping NewProtocol="UDP" | ok | E714 | spec: no such entry
//	igd1 DeletePortMapping NewProtocol="udp" | ok | E714 | spec: no such entry
//	igd1 DeletePortMapping by the internal port | ok | E714 | spec: no such entry
//	igd1 DeletePortMapping nothing there | ok | E714 | spec: no such entry
//	igd1 DeletePortMapping wrong protocol | ok | E714 | spec: no such entry
//	igd2 DeletePortMapping NewExternalPort="1" | ok | E714 | spec: no such entry
//	igd2 DeletePortMapping NewExternalPort="1023" | ok | E714 | spec: no such entry
//	igd2 DeletePortMapping NewExternalPort="1024" | ok | E714 | spec: no such entry
//	igd2 DeletePortMapping NewExternalPort="65535" | ok | E714 | spec: no such entry
//	igd2 DeletePortMapping NewProtocol="UDP" | ok | E714 | spec: no such entry
//	igd2 DeletePortMapping NewProtocol="udp" | ok | E714 | spec: no such entry
//	igd2 DeletePortMapping by the internal port | ok | E714 | spec: no such entry
//	igd2 DeletePortMapping nothing there | ok | E714 | spec: no such entry
//	igd2 DeletePortMapping wrong protocol | ok | E714 | spec: no such entry
//	igd1 AddPortMapping the other host's mapping for it (secure_mode=no) | ok | ok ~TCP/28090>other:8090 "tol" L3600 | miniupnpd bug
//	igd2 AddPortMapping the other host's mapping for it (secure_mode=no) | ok | ok ~TCP/28090>other:8090 "tol" L3600 | miniupnpd bug
package upnpigd
