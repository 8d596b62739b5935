// Package pcp is the wire format of the Port Control Protocol (RFC 6887) and
// of NAT-PMP (RFC 6886), shared by pcpgw's upstream client (pcpclient) and its
// LAN-side server (natpmp). It is pure: no sockets, clocks, randomness or
// logs; nonces and epochs come in as values. Every parser is
// Parse...(b []byte) (T, error) and every message has
// AppendMarshal(b []byte) []byte, which writes the canonical form (reserved
// fields zero, options padded) without allocating when b has room, so that
// marshal(parse(x)) == x for every canonical x.
//
// # Implemented
//
//   - RFC 6887 §7.1, §7.2: request and response headers; §7.3: options (TLV,
//     padding, mandatory/optional ranges, per-opcode validity, maximum
//     occurrences); §7.4: result codes and their long/short lifetimes; §8.2:
//     the order in which a server classifies a request (ParseRequest) and how
//     it builds an error response (AppendErrorResponse); §9 and Appendix A:
//     version negotiation, a version-0 UNSUPP_VERSION reply meaning a
//     NAT-PMP-only server (ErrNATPMPOnly); §11.1 MAP, §12.1 PEER, §14.1
//     ANNOUNCE; §13.1 THIRD_PARTY, §13.2 PREFER_FAILURE, §13.3 FILTER.
//   - RFC 7220 DESCRIPTION, RFC 7225 PREFIX64, RFC 7843 THIRD_PARTY_ID (and
//     its result codes 24-26). Other options travel as raw bytes.
//   - RFC 6886 §3.2-§3.5: NAT-PMP requests and responses (external address,
//     UDP and TCP mappings, result codes, UNSUPP_VERSION / UNSUPP_OPCODE).
//
// Addresses are 16 octets on the PCP wire: IPv4 travels IPv4-mapped
// (::ffff:a.b.c.d) and comes back unmapped (netip.Addr.Is4); marshalling maps
// it again. An invalid (zero) netip.Addr marshals as ::.
//
// # Errors
//
// ParseRequest serves a server: a plain error (ErrShort, ErrNotRequest) means
// drop silently; a *ParseError carries the result code to answer with, and the
// partly parsed Request (see ParseRequest for which fields are valid). Likewise
// ParseNATPMPRequest and *NATPMPParseError. ParseResponse and
// ParseNATPMPResponse serve a client and return plain errors wrapping the
// sentinels (errors.Is).
//
// # PCP wire layouts (RFC 6887)
//
// Request header (§7.1), 24 octets:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+---------------+-+-------------+-------------------------------+
//	|  Version = 2  |R|   Opcode    |         Reserved              |
//	+---------------+-+-------------+-------------------------------+
//	|                 Requested Lifetime (32 bits)                  |
//	+---------------------------------------------------------------+
//	|            PCP Client's IP Address (128 bits)                 |
//	+---------------------------------------------------------------+
//	:   opcode payload (MAP 36, PEER 56, ANNOUNCE 0), then options  :
//
// Response header (§7.2), 24 octets:
//
//	+---------------+-+-------------+---------------+---------------+
//	|  Version = 2  |R|   Opcode    |   Reserved    |  Result Code  |
//	+---------------+-+-------------+---------------+---------------+
//	|                      Lifetime (32 bits)                       |
//	+---------------------------------------------------------------+
//	|                     Epoch Time (32 bits)                      |
//	+---------------------------------------------------------------+
//	|                      Reserved (96 bits)                       |
//	+---------------------------------------------------------------+
//
// MAP payload (§11.1), 36 octets; PEER (§12.1) adds 20:
//
//	+---------------------------------------------------------------+
//	|                 Mapping Nonce (96 bits)                       |
//	+---------------+-----------------------------------------------+
//	|   Protocol    |          Reserved (24 bits)                   |
//	+---------------+---------------+-------------------------------+
//	|        Internal Port          |    Suggested External Port    |
//	+-------------------------------+-------------------------------+
//	|           Suggested External IP Address (128 bits)            |
//	+-------------------------------+-------------------------------+
//	|       Remote Peer Port        |     Reserved (16 bits)        |  PEER
//	+-------------------------------+-------------------------------+
//	|               Remote Peer IP Address (128 bits)               |  PEER
//	+---------------------------------------------------------------+
//
// Option (§7.3); the body is padded with zeros to a multiple of 4, the
// length counts the body only:
//
//	+---------------+---------------+-------------------------------+
//	|  Option Code  |  Reserved     |       Option Length           |
//	+---------------+---------------+-------------------------------+
//	:                       (optional) Data                         :
//
//	THIRD_PARTY (1)       16: internal IP address
//	PREFER_FAILURE (2)    0
//	FILTER (3)            20: reserved(8) prefix-length(8) remote-port(16) remote-IP(128)
//	THIRD_PARTY_ID (13)   opaque, at most 1016 (RFC 7843)
//	DESCRIPTION (128)     UTF-8, at most 1016 (RFC 7220)
//	PREFIX64 (129)        prefix64-length(16) prefix64 suffix [count(16) {len(16) IPv4(32)}*] (RFC 7225)
//
// # NAT-PMP wire layouts (RFC 6886)
//
//	external address request (§3.2)   |0|0|
//	external address response (§3.2)  |0|128|result(16)|epoch(32)|IPv4(32)|
//	map request (§3.3)                |0|op|reserved(16)|internal(16)|suggested(16)|lifetime(32)|
//	map response (§3.3)               |0|128+op|result(16)|epoch(32)|internal(16)|external(16)|lifetime(32)|
//	error response (§3.5)             |0|128+op|result(16)|epoch(32)|
//
// op is 1 for UDP and 2 for TCP. RFC 6886 §3.5 draws the UNSUPP_VERSION
// response with opcode 0; ParseResponse accepts that and 128+op alike.
//
// # Golden packets
//
// testdata/miniupnpd-2.3.9.txt holds datagrams captured from miniupnpd 2.3.9
// (the CGN of the lab) and natpmpc by capture_test.go (build tag capture, as
// root); the unit tests also use packets worked out from the RFC figures.
package pcp
