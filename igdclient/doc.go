// Package igdclient is a small UPnP IGD control point for the WAN link: it
// finds the ISP box in front of the CPE (double NAT) and drives its WAN
// connection service, so that pcpgw can carry LAN port mappings through
// both NATs. It links no net/http: HTTP goes through internal/httpd's
// client, XML through encoding/xml (which pcpgw links anyway for its own
// IGD).
//
// # Implemented
//
//   - UDA 1.1 §1.3 (SSDP search): M-SEARCH for InternetGatewayDevice:2/:1,
//     WANIPConnection:2/:1 and WANPPPConnection:1 to 239.255.255.250:1900,
//     out of the WAN interface only (IP_MULTICAST_IF, SO_BINDTODEVICE),
//     TTL 2, MX 1, sent twice; answers read for Config.Wait (2 s). A unicast
//     M-SEARCH to a known device's address finds its new LOCATION after a
//     reboot (Client.DiscoverHost).
//   - UDA 1.1 §1.2 (SSDP advertisements): NOTIFY ssdp:alive, ssdp:byebye,
//     ssdp:update with NT, USN, LOCATION, BOOTID.UPNP.ORG,
//     CONFIGID.UPNP.ORG, NEXTBOOTID.UPNP.ORG, on a socket bound to the
//     group and joined on the WAN interface only (internal/mcast).
//   - UDA 1.1 §2.3 (device description): the root device's identity,
//     URLBase, and the WAN connection services of the device tree; the
//     control URL resolved against URLBase or LOCATION.
//   - UDA 1.1 §3.2 (SOAP control), WANIPConnection:1 and :2 (and the same
//     actions of WANPPPConnection:1): GetExternalIPAddress, GetStatusInfo,
//     AddPortMapping, AddAnyPortMapping (v2), DeletePortMapping,
//     GetSpecificPortMappingEntry. A SOAP fault comes back as *Error
//     (errors.As) with the UPnP errorCode and errorDescription.
//
// # What the WAN link may say
//
// Nothing an upstream says makes pcpgw talk to an address outside the WAN
// subnets (Config.Subnets): an SSDP answer or NOTIFY counts only from a
// source inside them; a LOCATION must be http:// to an IPv4 literal equal
// to that source (no host names: nothing is resolved, no redirection to
// another host); the description is fetched with a size cap (64 KiB) and
// a timeout, and no HTTP redirect is followed; URLBase and the control URL
// must stay on LOCATION's address; every connection is checked again
// against the URL's address at dial time. What is refused is counted
// (Stats.Dropped, Foreign, Malformed) and logged at Warn at most once a
// minute per reason.
//
// The parsers are pure (ParseSearchResponse, ParseNotify,
// ParseDescription, ParseActionResponse, ParseFault) and bounded: SSDP
// messages up to 4096 bytes and 32 header lines, a header field given
// twice with different values refused; XML without any DTD (so no entity
// declaration, let alone expansion: billion laughs cannot start; unknown
// entities are errors under Strict), UTF-8 only, no processing
// instruction but the declaration, elements nested at most 16 (SOAP 8)
// deep, at most 4096 (SOAP 256) elements and 16 attributes each, kept
// fields at most 1 KiB (SOAP values 4 KiB).
//
// # Wire layouts
//
// M-SEARCH (UDA 1.1 §1.3.2), one UDP datagram:
//
//	M-SEARCH * HTTP/1.1
//	HOST: 239.255.255.250:1900
//	MAN: "ssdp:discover"
//	MX: 1
//	ST: urn:schemas-upnp-org:device:InternetGatewayDevice:2
//	USER-AGENT: Linux UPnP/1.1 pcpgw/1
//
// Its answer (§1.3.3), unicast from the device (miniupnpd 2.3.9):
//
//	HTTP/1.1 200 OK
//	CACHE-CONTROL: max-age=1800
//	ST: urn:schemas-upnp-org:device:InternetGatewayDevice:2
//	USN: uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07c::urn:schemas-upnp-org:device:InternetGatewayDevice:2
//	EXT:
//	SERVER: Debian/6.18.44 UPnP/1.1 MiniUPnPd/2.3.9
//	LOCATION: http://100.64.0.1:5000/rootDesc.xml
//	BOOTID.UPNP.ORG: 1796357383
//	CONFIGID.UPNP.ORG: 1337
//
// NOTIFY (§1.2.2, §1.2.3) to 239.255.255.250:1900: start line
// "NOTIFY * HTTP/1.1", NT (the type), NTS (ssdp:alive, ssdp:byebye or
// ssdp:update), USN, and for alive and update LOCATION and CACHE-CONTROL;
// BOOTID.UPNP.ORG changes when the device reboots.
//
// Action request (§3.2.1), POST to the control URL with
// SOAPACTION: "urn:schemas-upnp-org:service:WANIPConnection:2#AddPortMapping":
//
//	<?xml version="1.0"?>
//	<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
//	  s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>
//	<u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2">
//	<NewRemoteHost></NewRemoteHost><NewExternalPort>28081</NewExternalPort>
//	<NewProtocol>TCP</NewProtocol><NewInternalPort>28081</NewInternalPort>
//	<NewInternalClient>100.64.0.2</NewInternalClient><NewEnabled>1</NewEnabled>
//	<NewPortMappingDescription>pcpgw</NewPortMappingDescription>
//	<NewLeaseDuration>3600</NewLeaseDuration></u:AddPortMapping></s:Body></s:Envelope>
//
// Answer: HTTP 200 with <u:AddPortMappingResponse> holding the output
// arguments, or HTTP 500 with a fault (§3.2.2):
//
//	<s:Envelope ...><s:Body><s:Fault><faultcode>s:Client</faultcode>
//	<faultstring>UPnPError</faultstring><detail>
//	<UPnPError xmlns="urn:schemas-upnp-org:control-1-0">
//	<errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription>
//	</UPnPError></detail></s:Fault></s:Body></s:Envelope>
//
// # Sockets
//
// Client.Discover and Client.ListenNotify open their UDP sockets in the
// calling goroutine; TCP connections go through Config.Dial (default: a
// connection bound to the WAN interface, internal/sock). The fake device for tests is
// package igdtest.
package igdclient
