// Package upstream is what pcpgw asks to open ports beyond the CPE: the
// provider's PCP server, a NAT-PMP gateway, an ISP box's UPnP IGD, or
// nothing (the upstream does not forward ports).
//
// Each kind is a Backend; the mapping core sees one Upstream whatever the
// kind, with requests, results and errors in PCP's terms (result codes of
// RFC 6887 §7.4: NAT-PMP's and UPnP's are mapped onto them), and events
// (state lost, external address changed, kind changed).
package upstream
