// Package nat64 finds a NAT64's Pref64::/n the way RFC 7050 says a node
// does: the AAAA records a DNS64 synthesizes for the well-known IPv4-only
// name ipv4only.arpa carry one of the well-known IPv4 addresses
// 192.0.0.170 and 192.0.0.171 at one of the places RFC 6052 §2.2 puts an
// IPv4 address in an IPv6 one; where it is gives the prefix's length.
//
//	+--+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
//	|PL| 0-------------32--40--48--56--64--72--80--88--96--104---------|
//	+--+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
//	|32|     prefix    |v4(32)         | u | suffix                    |
//	|40|     prefix        |v4(24)     | u |(8)| suffix                |
//	|48|     prefix            |v4(16) | u | (16)  | suffix            |
//	|56|     prefix                |(8)| u |  v4(24)   | suffix        |
//	|64|     prefix                    | u |   v4(32)      | suffix    |
//	|96|     prefix                                    |    v4(32)     |
//	+--+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
//
// PrefixOf is the pure part; Discover asks the given resolvers in turn
// (internal/dnsq: the query has CD clear, as §3 wants).
package nat64
