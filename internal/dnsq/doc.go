// Package dnsq asks DNS servers for the A or AAAA records of one name
// (RFC 1035, RFC 3596): the AFTR name of DS-Lite (RFC 6334),
// ipv4only.arpa for a NAT64's prefix (RFC 7050) and the host names of
// IGD:2 actions. It exists to keep Go's resolver (net.Resolver, about
// 260 KB on MIPS) out of the daemon: it opens its sockets with
// net.DialUDP and net.Dialer.DialTCP, which take typed addresses, and
// never with net.Dial, net.Dialer.Dial or net.Resolver, which reach the
// resolver. Its codec is its own (AppendQuery, ParseAnswer): it reads
// only the header, the question and the answer section, for about a
// third of the code golang.org/x/net/dns/dnsmessage adds.
//
// # Queries (RFC 1035 §4.2, RFC 5452, RFC 7766)
//
// A query asks one question, class IN, with RD set and CD clear (RFC 7050
// §3), no EDNS, a random 16-bit ID from the kernel (internal/crand). It
// goes over UDP from a connected socket (the kernel drops datagrams from
// other addresses and ports) and is sent once; a datagram that is not an
// answer to it (shorter than a header, QR clear, another ID or opcode,
// not exactly the question asked, compared without regard to case) is
// ignored and the wait goes on, so that a stray or spoofed packet cannot
// end the query. An answer with TC set is asked again over TCP, with a
// 2-octet length in front of each message (RFC 1035 §4.2.2). Each query
// is bounded by its timeout (DefaultTimeout, 2 s, unless told) and the
// caller's context, which also bounds the TCP connect.
//
// Lookup asks the servers in turn and returns the first answer with
// addresses; every failure, NXDOMAIN and NODATA too, moves on to the next
// server, and the errors of all are joined.
//
// # Answers (RFC 1034 §3.6.2, RFC 2308, RFC 4343)
//
// RCODE NOERROR gives the records of the type asked for, class IN, at the
// question's name, or at the end of the chain of CNAME records that
// starts there (at most MaxCNAME links); records of other types, classes
// or owners are ignored, and so are the authority and additional
// sections. No such record is ErrNoData, a chain that loops or is too
// long ErrCNAMELoop. Another RCODE is an *RcodeError, which errors.Is
// matches with ErrNXDomain (3) or ErrServFail (2); NotFound tells
// NXDOMAIN and NODATA from failures. An answer section that does not
// parse is ErrMalformed (the answer matched the query: the server is
// broken, asking it longer is no use).
//
// Names in answers may be compressed (RFC 1035 §4.1.4); a pointer must
// point before the piece of name it ends, as every compressor writes
// them, so that no loop is possible. Names are at most 255 octets.
//
//	                                1  1  1  1  1  1
//	  0  1  2  3  4  5  6  7  8  9  0  1  2  3  4  5
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//	|                      ID                       |
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//	|QR|   Opcode  |AA|TC|RD|RA| Z|AD|CD|   RCODE   |
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//	|                 QDCOUNT (1)                   |
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//	|  ANCOUNT, then NSCOUNT and ARCOUNT (16 each)  |
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//	| question: QNAME, QTYPE (1 or 28), QCLASS (1)  |
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//	| answer records: NAME, TYPE, CLASS, TTL (32),  |
//	| RDLENGTH, RDATA (A: 4, AAAA: 16, CNAME: name) |
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//
// # The system's names
//
// Resolver.LookupHost looks a host name up as the C library would with
// "hosts: files dns": the hosts file first (/etc/hosts), then A and AAAA
// at once from the nameservers of resolv.conf, with its search list and
// ndots and timeout options. On OpenWrt, dnsmasq on 127.0.0.1 answers
// from /etc/hosts and the DHCP leases anyway; reading the file first
// keeps the answer right where no dnsmasq runs or it ignores the file
// (no-hosts), as Go's resolver did, for a few hundred octets of code.
// ReadResolvConf is the one reader of resolv.conf files in pcpgw.
package dnsq
