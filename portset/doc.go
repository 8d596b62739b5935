// Package portset is the set of external ports a CPE may use when the
// provider shares one IPv4 address among several customers without a NAT
// of its own (A+P): MAP-E (RFC 7597), MAP-T (RFC 7599) and lw4o6 (RFC
// 7596). The provider's border relay is stateless: it forwards to a CPE
// only the ports of that CPE's set, so a mapping on any other port is
// silently useless.
//
// A Set is sorted, disjoint ranges of ports. It is built from explicit
// ranges (Parse), from MAP's port-set parameters (PSID.Set, RFC 7597 §5.1),
// or from OpenWrt's map rules file (ParseMapRules).
//
// # The port mapping algorithm (RFC 7597 §5.1)
//
// A port is split into three fields:
//
//	 0                   8                   15
//	+---------------+----------+------------+
//	|       A       |   PSID   |     j      |
//	+---------------+----------+------------+
//	|<--- a bits--->|<-k bits->|<--m bits-->|
//
// a is the PSID offset, k the PSID length, m = 16 - a - k. A CPE with
// PSID p owns every port A·2^(16-a) + p·2^m + j for j in [0, 2^m) and,
// when a > 0, A in [1, 2^a) (A = 0 would give the system ports 0-1023 for
// a = 6); with a = 0, A is 0 only (one contiguous range, as lw4o6 uses).
// That is 2^a - 1 (or 1) ranges of 2^m ports. Port 0 is never in a set.
//
// # OpenWrt's map rules file
//
// /lib/netifd/proto/map.sh, when the map interface <cfg> comes up, writes
// /tmp/map-<cfg>.rules: the rule it was given, then what mapcalc computed
// from it and the delegated prefix, as shell assignments:
//
//	rule=type=map-e,ipv6prefix=2001:db8::,prefix6len=32,ipv4prefix=203.0.113.0,prefix4len=24,ealen=16,offset=4,br=2001:db8::1
//	RULE_1_FMR=0
//	RULE_1_EALEN=16
//	RULE_1_PSIDLEN=8
//	RULE_1_OFFSET=4
//	...
//	RULE_BMR=1
//	RULE_1_IPV4ADDR=203.0.113.9
//	RULE_1_PORTSETS='4112-4127 8208-8223 ... 61456-61471 '
//
// RULE_BMR names the rule that applies to this CPE (the Basic Mapping
// Rule); its IPV4ADDR is the shared address and its PORTSETS the ranges
// fw4 SNATs outbound flows to, which ParseMapRules takes as the set. The
// map interface's device is "map-<cfg>".
package portset
