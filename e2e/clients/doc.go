// Package clients holds pcpgw's end-to-end tests against heavy Go LAN
// clients, in a module of its own so that the daemon's module does not
// carry their dependencies:
//
//   - github.com/jackpal/go-nat-pmp, a NAT-PMP client (RFC 6886);
//   - tailscale.com/net/portmapper, tailscale's PCP, NAT-PMP and UPnP IGD
//     client, run by cmd/tsmap inside the lab's lan namespace;
//   - github.com/huin/goupnp's IGD:1 and IGD:2 clients (already a
//     dependency of the daemon's module), discovering pcpgw by SSDP from
//     the lan namespace in a child process.
//
// Each test builds the lab of ../../internal/lab (the home network behind
// a carrier-grade NAT of LAB.md), runs miniupnpd 2.3.9 as the provider's
// CGN and PCP server and pcpgw on the CPE (nat444 mode, upstream PCP to
// 100.64.0.1), and proves that the client ends with a mapping that a host
// in namespace net reaches at the CGN's public address 203.0.113.1.
//
// The tests are privileged: they skip with a reason when not root and
// fail instead when PCPGW_E2E=1. They run in parallel, each in its own
// lab, in about 15 s (goupnp's SSDP searches wait their MX time).
package clients
