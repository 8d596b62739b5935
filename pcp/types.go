package pcp

import "net/netip"

// Wire constants (RFC 6887 §7, §19.1; RFC 6886 §3).
const (
	Version       = 2    // PCP version this package speaks.
	VersionNATPMP = 0    // NAT-PMP (RFC 6886) shares the port and the first octet.
	ServerPort    = 5351 // Requests go to this port.
	ClientPort    = 5350 // Unsolicited ANNOUNCE / NAT-PMP address changes go to this port.
	MaxSize       = 1100 // Largest PCP message (§7).
	HeaderSize    = 24   // Common request/response header.
	MapSize       = 36   // MAP opcode-specific payload.
	PeerSize      = 56   // PEER opcode-specific payload.
)

// Opcode is a PCP opcode without the R bit (§7.1, §19.2).
type Opcode uint8

const (
	OpAnnounce Opcode = 0
	OpMap      Opcode = 1
	OpPeer     Opcode = 2
)

// ResultCode is a PCP result code (§7.4).
type ResultCode uint8

const (
	Success               ResultCode = 0
	UnsuppVersion         ResultCode = 1
	NotAuthorized         ResultCode = 2
	MalformedRequest      ResultCode = 3
	UnsuppOpcode          ResultCode = 4
	UnsuppOption          ResultCode = 5
	MalformedOption       ResultCode = 6
	NetworkFailure        ResultCode = 7
	NoResources           ResultCode = 8
	UnsuppProtocol        ResultCode = 9
	UserExQuota           ResultCode = 10
	CannotProvideExternal ResultCode = 11
	AddressMismatch       ResultCode = 12
	ExcessiveRemotePeers  ResultCode = 13

	// RFC 7843 §4.1 (THIRD_PARTY_ID).
	ThirdPartyIDUnknown      ResultCode = 24
	ThirdPartyMissingOption  ResultCode = 25
	UnsuppThirdPartyIDLength ResultCode = 26
)

// OptionCode is a PCP option code (§7.3, §19.4). Codes 128-191 are optional
// (may be ignored), 0-127 mandatory to process.
type OptionCode uint8

const (
	OptThirdParty    OptionCode = 1   // §13.1: 16 octets, an address.
	OptPreferFailure OptionCode = 2   // §13.2: empty.
	OptFilter        OptionCode = 3   // §13.3: 20 octets.
	OptThirdPartyID  OptionCode = 13  // RFC 7843 §4: opaque ID, mandatory range.
	OptDescription   OptionCode = 128 // RFC 7220: UTF-8 text.
	OptPrefix64      OptionCode = 129 // RFC 7225.
)

// Nonce is the 96-bit mapping nonce of MAP and PEER (§11.1, §12.1).
type Nonce [12]byte

// Map is the MAP opcode payload of a request or a response (§11.1).
// Protocol 0 means all protocols (then ports must be 0). Addresses are
// IPv4 or IPv6; IPv4 travels as IPv4-mapped IPv6 and is unmapped on parse.
// An all-zero external address (§11.1) parses as 0.0.0.0 when it is the
// IPv4-mapped ::ffff:0.0.0.0 and as :: when it is all zeros.
type Map struct {
	Nonce        Nonce
	Protocol     uint8 // IANA protocol number: 6 TCP, 17 UDP, 0 all.
	InternalPort uint16
	ExternalPort uint16     // suggested (request) or assigned (response)
	ExternalAddr netip.Addr // suggested (request) or assigned (response)
}

// Peer is the PEER opcode payload (§12.1): a Map plus the remote peer.
type Peer struct {
	Map
	RemotePort uint16
	RemoteAddr netip.Addr
}

// Filter is the FILTER option (§13.3). The wire prefix length counts IPv6
// bits; Prefix holds the unmapped form (an IPv4 filter has Prefix.Bits() =
// wire prefix length - 96). Wire prefix length 0 means "no filter" (remove all
// filters): it parses as an IPv6 /0 prefix holding the 16 address octets as
// they were (so ::ffff:0.0.0.0/0, not 0.0.0.0/0, which is wire length 96).
// Prefix bits past the length are kept, not masked. A zero RemotePort means
// all ports.
type Filter struct {
	Prefix     netip.Prefix
	RemotePort uint16
}

// Option is one option of a request or response, in wire order (§7.3). The
// typed field selected by Code is meaningful; the others are zero.
//
// Raw, when non-nil, is the option body as it travels (without padding), and
// AppendMarshal writes it instead of any typed field, whatever the Code. The
// parsers set Raw (and leave the typed fields zero) for:
//   - THIRD_PARTY_ID (RFC 7843: an opaque identifier; empty body -> []byte{}),
//   - options this package does not know,
//   - known options whose body does not parse (wrong length, invalid UTF-8
//     DESCRIPTION, bad PREFIX64 ...): servers may ignore such optional options
//     (§7.3, RFC 7220 §3), ParseRequest fails on mandatory ones, and error
//     responses echo them (§8.2).
//
// Raw never aliases the parsed datagram.
type Option struct {
	Code        OptionCode
	ThirdParty  netip.Addr // OptThirdParty
	Filter      Filter     // OptFilter
	Description string     // OptDescription
	Prefix64    Prefix64   // OptPrefix64: one option carries one Pref64::/n
	Raw         []byte     // see above
}

// Prefix64 is the body of a PREFIX64 option (RFC 7225 §4.1).
//
//	Prefix   Pref64::/n, n in {32,40,48,56,64,96} (the wire says n/8 octets).
//	         A request carries ::/96.
//	Suffix   the 12 - n/8 octets after the prefix (nil for /96).
//	IPv4Pfxs the optional IPv4 prefix list: nil when absent from the wire,
//	         non-nil (maybe empty) when the Count field is present.
type Prefix64 struct {
	Prefix   netip.Prefix
	Suffix   []byte
	IPv4Pfxs []netip.Prefix
}

// Request is a PCP request (§7.1 header plus opcode payload plus options).
// AppendMarshal writes Version 0 as Version (2).
type Request struct {
	Version  uint8 // normally Version
	Opcode   Opcode
	Lifetime uint32     // requested lifetime in seconds; 0 deletes
	Client   netip.Addr // PCP client's IP address (unmapped form)
	Map      *Map       // set when Opcode == OpMap
	Peer     *Peer      // set when Opcode == OpPeer
	Options  []Option
}

// Response is a PCP response (§7.2 header plus opcode payload plus options).
// AppendMarshal writes Version 0 as Version (2).
type Response struct {
	Version  uint8
	Opcode   Opcode // without the R bit
	Result   ResultCode
	Lifetime uint32 // granted lifetime, or the error lifetime (§7.4)
	Epoch    uint32 // server epoch time (§8.5)
	// Reserved is the 96-bit reserved field: zero, except in error responses
	// to requests that did not parse, where the server copies the last 96
	// bits of the request's client address into it (§7.2).
	Reserved [12]byte
	Map      *Map  // set when Opcode == OpMap
	Peer     *Peer // set when Opcode == OpPeer
	Options  []Option
}

// NAT-PMP (RFC 6886) opcodes and result codes. Responses have opcode+128.
const (
	NATPMPOpExternalAddr uint8 = 0
	NATPMPOpMapUDP       uint8 = 1
	NATPMPOpMapTCP       uint8 = 2
)

// NATPMPResult is a NAT-PMP result code (RFC 6886 §3.5).
type NATPMPResult uint16

const (
	NATPMPSuccess        NATPMPResult = 0
	NATPMPUnsuppVersion  NATPMPResult = 1
	NATPMPNotAuthorized  NATPMPResult = 2 // refused / disabled
	NATPMPNetworkFailure NATPMPResult = 3 // e.g. no external address
	NATPMPOutOfResources NATPMPResult = 4
	NATPMPUnsuppOpcode   NATPMPResult = 5
)
