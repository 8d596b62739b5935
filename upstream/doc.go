// Package upstream is what pcpgw asks to open ports beyond the CPE: the
// provider's PCP server, a NAT-PMP gateway, an ISP box's UPnP IGD, or
// nothing (the upstream does not forward ports).
//
// Each kind is a Backend; the mapping core sees one Upstream whatever the
// kind, with requests, results and errors in PCP's terms (result codes of
// RFC 6887 §7.4: NAT-PMP's and UPnP's are mapped onto them), and events
// (state lost, external address changed, kind changed).
//
// # UPnP IGD (KindUPnP, igd.go)
//
// An ISP box in front of the CPE (double NAT) driven through its
// WANIPConnection:2, :1 or WANPPPConnection:1 service (package
// igdclient; UDA 1.1, IGD:1 and IGD:2). The mapping is of the CPE's WAN
// address and port (NAT444, RFC 6970 §5.5); a third-party mapping is
// made only for a host of the WAN subnets (the box reaches no other).
//
//   - Map: AddPortMapping with NewRemoteHost from a single one-host
//     filter (else ""), NewExternalPort the suggested port (else the
//     internal one), NewLeaseDuration the wanted lifetime capped at
//     604800 s (IGD:2's maximum; MaxUint32 asks for it).
//     PreferFailure: that port or CANNOT_PROVIDE_EXTERNAL. Otherwise
//     AddAnyPortMapping (IGD:2; its NewReservedPort), or on IGD:1 the
//     port and up to 8 random others on 718. A renewal re-adds the
//     mapping; a 718 to it is checked with GetSpecificPortMappingEntry
//     and is success when the entry is pcpgw's (internal client and
//     port). 725 OnlyPermanentLeasesSupported: lease 0 from then on, and
//     MapResult.Lifetime 25 minutes, so that the core renews and the
//     renewal finds a lost mapping; 726: NewRemoteHost "" from then on.
//     The external address is GetExternalIPAddress's, refused when
//     unusable (UsableExternal).
//   - Delete: DeletePortMapping, only of an entry that is pcpgw's; 714
//     NoSuchEntryInArray is success.
//   - Errors, RFC 6970 §4.3 read backwards: 718, 724, 714 ->
//     CANNOT_PROVIDE_EXTERNAL; 606, 729 -> NOT_AUTHORIZED; 728 ->
//     NO_RESOURCES; 401, 602, 715, 716, 725, 726, 727, 732 ->
//     UNSUPP_OPTION; 402, 600, 601 -> MALFORMED_REQUEST; other codes ->
//     NETWORK_FAILURE; 501 ActionFailed and no answer (HTTP failures,
//     broken answers) -> a plain error, which the core retries. The
//     Detail is the box's own words ("UPnP error 718
//     ConflictInMappingEntry").
//   - Events: every 30 s the box is asked its external address (a change
//     is EventExternalChanged) and for three of the mappings pcpgw made,
//     in turn (one missing or another client's: EventStateLost, at once);
//     a NOTIFY from the box with a new BOOTID.UPNP.ORG, a byebye then an
//     alive, or a new LOCATION only makes it ask now. A box that stops
//     answering is EventUnreachable, then asked at its address where it
//     is (unicast M-SEARCH: after a reboot it may serve on another port);
//     answering again is EventReachable and a check.
//   - ReleaseAll deletes every mapping pcpgw made (the box forgets
//     nothing by itself when another upstream takes over).
package upstream
