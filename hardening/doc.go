// Package hardening holds only tests: regression tests for the attack
// classes of issue 10 on the LAN UDP side (NAT-PMP and PCP on UDP 5351) and
// on the WAN side, named for the class they cover.
//
// The unit tests drive natpmp.Server.Handle with a fake core (every
// malformed packet: silence and a counter, never a log line per packet) and
// with the real mapping core over firewalltest.Fake (secure mode, quotas,
// descriptions through the state and lease files). The lab tests (root;
// they skip otherwise and fail instead with PCPGW_E2E=1) run the daemon in
// the namespace lab of LAB.md: floods, exhaustion, requests from the WAN
// side, descriptions through `pcpgw list`, raw SOAP from another host.
package hardening
