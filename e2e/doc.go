// Package e2e holds pcpgw's end-to-end tests: the real binary in the cpe
// namespace of the lab (internal/lab), miniupnpd 2.3.9 as the provider's
// CGN, and real LAN clients (upnpc, natpmpc, Go client libraries), proven
// by traffic from the internet namespace to a LAN listener.
//
// They need root; they skip with a reason otherwise, and fail instead of
// skipping when PCPGW_E2E=1 (CI).
package e2e
