package pcp

import (
	"encoding/binary"
	"net/netip"
)

const (
	rBit       = 0x80
	opcodeMask = 0x7f
)

// getAddr reads a 16-octet wire address and returns it unmapped: IPv4-mapped
// ::ffff:a.b.c.d comes back as a.b.c.d (Is4), anything else as IPv6.
func getAddr(b []byte) netip.Addr {
	return netip.AddrFrom16([16]byte(b[:16])).Unmap()
}

// appendAddr writes a as 16 octets: IPv4 as IPv4-mapped IPv6, an invalid
// (zero) Addr as all zeros (::).
func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		var z [16]byte
		return append(b, z[:]...)
	}
	x := a.As16()
	return append(b, x[:]...)
}

func payloadSize(op Opcode) (int, bool) {
	switch op {
	case OpAnnounce:
		return 0, true
	case OpMap:
		return MapSize, true
	case OpPeer:
		return PeerSize, true
	}
	return 0, false
}

func parseMap(b []byte) Map {
	var m Map
	copy(m.Nonce[:], b[0:12])
	m.Protocol = b[12]
	m.InternalPort = binary.BigEndian.Uint16(b[16:18])
	m.ExternalPort = binary.BigEndian.Uint16(b[18:20])
	m.ExternalAddr = getAddr(b[20:36])
	return m
}

func appendMap(b []byte, m *Map) []byte {
	if m == nil {
		m = &Map{}
	}
	b = append(b, m.Nonce[:]...)
	b = append(b, m.Protocol, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, m.InternalPort)
	b = binary.BigEndian.AppendUint16(b, m.ExternalPort)
	return appendAddr(b, m.ExternalAddr)
}

func parsePeer(b []byte) Peer {
	p := Peer{Map: parseMap(b[:MapSize])}
	p.RemotePort = binary.BigEndian.Uint16(b[36:38])
	p.RemoteAddr = getAddr(b[40:56])
	return p
}

func appendPeer(b []byte, p *Peer) []byte {
	if p == nil {
		p = &Peer{}
	}
	b = appendMap(b, &p.Map)
	b = binary.BigEndian.AppendUint16(b, p.RemotePort)
	b = append(b, 0, 0)
	return appendAddr(b, p.RemoteAddr)
}

// ParseRequest parses a PCP request as a server receives it, following the
// order of RFC 6887 §8.2. The error says how the server must react:
//
//   - nil: a valid request. Version is 2; Map is set for MAP, Peer for PEER,
//     neither for ANNOUNCE; Options holds every option in wire order.
//   - ErrShort (plain): fewer than 2 octets, or version 2 and fewer than 24
//     octets. Drop silently. The Request is zero.
//   - ErrNotRequest (plain): the R bit is set. Drop silently. Zero Request.
//   - *ParseError: answer with an error response carrying its Result. Build
//     it with AppendErrorResponse, which copies the datagram as §8.2 asks.
//     The Request holds what could be parsed:
//     UnsuppVersion (ErrVersion): Version and Opcode only (the request
//     needs only 2 octets).
//     MalformedRequest with ErrLong or ErrAlign, UnsuppOpcode (ErrOpcode),
//     MalformedRequest with ErrTruncated: the header (Version, Opcode,
//     Lifetime, Client); Map, Peer and Options unset.
//     MalformedRequest with ErrMalformed (MAP/PEER with protocol 0 and a
//     non-zero internal port while the lifetime is not 0, §11.3): the header
//     and the opcode payload.
//     MalformedOption (ErrOption), UnsuppOption (ErrUnknownOption),
//     ThirdPartyMissingOption (ErrThirdPartyMissing): the header, the opcode
//     payload and the options up to and including the offending one.
//
// Option checks (§7.3, §13, RFC 7220, 7225, 7843): an option overflowing the
// datagram, a known option not valid for the opcode, a known option that may
// appear once appearing twice, a mandatory option with a bad body (THIRD_PARTY
// not 16 octets, PREFER_FAILURE not empty, FILTER not 20 octets or with a bad
// prefix length, THIRD_PARTY_ID over 1016 octets), PREFER_FAILURE or FILTER
// with lifetime 0, PREFER_FAILURE with suggested external port 0: all
// MalformedOption. An unknown mandatory option: UnsuppOption. Unknown
// optional options and optional options with a bad body (DESCRIPTION,
// PREFIX64) are kept in Option.Raw without error: a server may ignore them.
//
// What needs the packet's source address (ADDRESS_MISMATCH, THIRD_PARTY equal
// to the source) is left to the caller.
func ParseRequest(b []byte) (Request, error) {
	var r Request
	if len(b) < 2 {
		return r, ErrShort
	}
	if b[1]&rBit != 0 {
		return r, ErrNotRequest
	}
	if b[0] != Version {
		r.Version, r.Opcode = b[0], Opcode(b[1]&opcodeMask)
		return r, parseErr(UnsuppVersion, ErrVersion, "version %d", b[0])
	}
	if len(b) < HeaderSize {
		return r, ErrShort
	}
	r.Version = b[0]
	r.Opcode = Opcode(b[1] & opcodeMask)
	r.Lifetime = binary.BigEndian.Uint32(b[4:8])
	r.Client = getAddr(b[8:24])
	if len(b) > MaxSize {
		return r, parseErr(MalformedRequest, ErrLong, "%d octets", len(b))
	}
	if len(b)%4 != 0 {
		return r, parseErr(MalformedRequest, ErrAlign, "%d octets", len(b))
	}
	size, ok := payloadSize(r.Opcode)
	if !ok {
		return r, parseErr(UnsuppOpcode, ErrOpcode, "opcode %d", r.Opcode)
	}
	rest := b[HeaderSize:]
	if len(rest) < size {
		return r, parseErr(MalformedRequest, ErrTruncated, "%s payload: %d of %d octets", r.Opcode, len(rest), size)
	}
	var m *Map
	switch r.Opcode {
	case OpMap:
		mm := parseMap(rest)
		r.Map, m = &mm, &mm
	case OpPeer:
		p := parsePeer(rest)
		r.Peer, m = &p, &p.Map
	}
	if m != nil && m.Protocol == 0 && m.InternalPort != 0 && r.Lifetime != 0 {
		return r, parseErr(MalformedRequest, ErrMalformed, "protocol 0 with internal port %d", m.InternalPort)
	}
	rest = rest[size:]

	var seen optCounts
	for len(rest) > 0 {
		o, n, err := parseOption(rest)
		if err != nil {
			return r, parseErr(MalformedOption, ErrOption, "%v", err)
		}
		rest = rest[n:]
		r.Options = append(r.Options, o)
		if err := checkRequestOption(&r, &r.Options[len(r.Options)-1], &seen); err != nil {
			return r, err
		}
	}
	if seen.get(OptThirdPartyID) > 0 && seen.get(OptThirdParty) == 0 {
		return r, parseErr(ThirdPartyMissingOption, ErrThirdPartyMissing, "THIRD_PARTY_ID without THIRD_PARTY")
	}
	return r, nil
}

// optCounts counts the known options of a request that may appear once.
type optCounts [5]uint8

func (n *optCounts) index(c OptionCode) int {
	switch c {
	case OptThirdParty:
		return 0
	case OptPreferFailure:
		return 1
	case OptThirdPartyID:
		return 2
	case OptDescription:
		return 3
	case OptPrefix64:
		return 4
	}
	return -1
}

func (n *optCounts) get(c OptionCode) int {
	if i := n.index(c); i >= 0 {
		return int(n[i])
	}
	return 0
}

// inc counts one more c (saturating) and returns the new count.
func (n *optCounts) inc(c OptionCode) int {
	i := n.index(c)
	if i < 0 {
		return 0
	}
	if n[i] < 255 {
		n[i]++
	}
	return int(n[i])
}

// checkRequestOption applies the server-side rules of §7.3 and §13 to one
// option of a request.
func checkRequestOption(r *Request, o *Option, seen *optCounts) error {
	c := o.Code
	if !c.Known() {
		if c.Optional() {
			return nil
		}
		return parseErr(UnsuppOption, ErrUnknownOption, "option %d", uint8(c))
	}
	if c == OptPreferFailure && r.Opcode == OpPeer {
		// §12.1: "if a PCP server receives a PEER request containing the
		// PREFER_FAILURE option it MUST return a MALFORMED_REQUEST".
		return parseErr(MalformedRequest, ErrMalformed, "%s in a PEER request", c)
	}
	if !c.ValidFor(r.Opcode) {
		return parseErr(MalformedOption, ErrOption, "%s not valid for %s", c, r.Opcode)
	}
	if max := c.MaxInRequest(); max > 0 && seen.inc(c) > max {
		return parseErr(MalformedOption, ErrOption, "%s more than once", c)
	}
	if o.Raw != nil && !c.Optional() && c != OptThirdPartyID {
		return parseErr(MalformedOption, ErrOption, "%s: bad body of %d octets", c, len(o.Raw))
	}
	switch c {
	case OptThirdPartyID:
		if len(o.Raw) > maxThirdPartyID {
			return parseErr(MalformedOption, ErrOption, "%s: %d octets, more than %d", c, len(o.Raw), maxThirdPartyID)
		}
	case OptPreferFailure:
		if r.Lifetime == 0 {
			return parseErr(MalformedOption, ErrOption, "%s with lifetime 0", c)
		}
		if r.Map != nil && r.Map.ExternalPort == 0 {
			return parseErr(MalformedOption, ErrOption, "%s with suggested external port 0", c)
		}
	case OptFilter:
		if r.Lifetime == 0 {
			return parseErr(MalformedOption, ErrOption, "%s with lifetime 0", c)
		}
	}
	return nil
}

// ParseResponse parses a PCP response as a client receives it. It is strict
// about structure and returns plain errors (wrapping the sentinels); a client
// drops what does not parse:
//
//   - version 0, at least 8 octets, read as a NAT-PMP header (RFC 6886 §3.5):
//     the Response holds Version 0, Opcode (the octet without its top bit:
//     RFC 6886 shows 0, servers send 128+op), Result (the 16-bit result,
//     255 if larger) and Epoch. With result 1 (UNSUPP_VERSION) the server
//     speaks only NAT-PMP (RFC 6887 §9 step 4, Appendix A): ErrNATPMPOnly.
//     Otherwise ErrVersion: miniupnpd 2.3.9, for one, answers a PCP request
//     whose header it cannot parse (length not a multiple of 4) with version
//     0, opcode 0x80 and result 3 (MALFORMED_REQUEST).
//   - another version than 2: ErrVersion, with Version, Opcode and Result
//     filled in when the datagram has 4 octets (the client may log them).
//   - version 2: 24 to 1100 octets, a multiple of 4, R bit set (else
//     ErrNotResponse), opcode ANNOUNCE, MAP or PEER (else ErrOpcode), the
//     whole opcode payload (else ErrTruncated), and options whose lengths
//     fit (else ErrOption).
//
// Options of any code are accepted and kept in wire order (clients ignore
// what they do not understand, §7.3; error responses echo the request's
// options, §8.2). A known option with a body that does not parse is kept
// in Raw. Semantic checks (nonce, opcode, addresses, epoch) are the caller's.
func ParseResponse(b []byte) (Response, error) {
	var r Response
	if len(b) < 4 {
		return r, ErrShort
	}
	if b[0] == VersionNATPMP {
		if len(b) < NATPMPHeaderSize {
			return r, ErrShort
		}
		res := binary.BigEndian.Uint16(b[2:4])
		r.Opcode = Opcode(b[1] & opcodeMask)
		r.Result = ResultCode(min(res, 255))
		r.Epoch = binary.BigEndian.Uint32(b[4:8])
		if res != uint16(NATPMPUnsuppVersion) {
			return r, parseErrPlain(ErrVersion, "version 0 response with result %d", res)
		}
		return r, ErrNATPMPOnly
	}
	if b[0] != Version {
		r.Version, r.Opcode, r.Result = b[0], Opcode(b[1]&opcodeMask), ResultCode(b[3])
		return r, parseErrPlain(ErrVersion, "version %d", b[0])
	}
	if len(b) < HeaderSize {
		return Response{}, ErrShort
	}
	if len(b) > MaxSize {
		return r, ErrLong
	}
	if len(b)%4 != 0 {
		return r, ErrAlign
	}
	if b[1]&rBit == 0 {
		return r, ErrNotResponse
	}
	r.Version = b[0]
	r.Opcode = Opcode(b[1] & opcodeMask)
	size, ok := payloadSize(r.Opcode)
	if !ok {
		return Response{}, parseErrPlain(ErrOpcode, "opcode %d", r.Opcode)
	}
	r.Result = ResultCode(b[3])
	r.Lifetime = binary.BigEndian.Uint32(b[4:8])
	r.Epoch = binary.BigEndian.Uint32(b[8:12])
	copy(r.Reserved[:], b[12:24])
	rest := b[HeaderSize:]
	if len(rest) < size {
		return Response{}, parseErrPlain(ErrTruncated, "%s payload: %d of %d octets", r.Opcode, len(rest), size)
	}
	switch r.Opcode {
	case OpMap:
		m := parseMap(rest)
		r.Map = &m
	case OpPeer:
		p := parsePeer(rest)
		r.Peer = &p
	}
	rest = rest[size:]
	for len(rest) > 0 {
		o, n, err := parseOption(rest)
		if err != nil {
			return Response{}, parseErrPlain(ErrOption, "%v", err)
		}
		rest = rest[n:]
		r.Options = append(r.Options, o)
	}
	return r, nil
}

// AppendMarshal appends the request in its canonical wire form: reserved
// fields zero, IPv4 addresses IPv4-mapped, an invalid (zero) netip.Addr as
// ::, options padded to 4 octets. The opcode payload is written from Map for
// MAP and from Peer for PEER (nil writes zeros); other opcodes have none.
// It does not check sizes: keep the message within MaxSize.
func (r *Request) AppendMarshal(b []byte) []byte {
	v := r.Version
	if v == 0 {
		v = Version
	}
	b = append(b, v, uint8(r.Opcode)&opcodeMask, 0, 0)
	b = binary.BigEndian.AppendUint32(b, r.Lifetime)
	b = appendAddr(b, r.Client)
	switch r.Opcode {
	case OpMap:
		b = appendMap(b, r.Map)
	case OpPeer:
		b = appendPeer(b, r.Peer)
	}
	for i := range r.Options {
		b = r.Options[i].appendMarshal(b)
	}
	return b
}

// AppendMarshal appends the response in its canonical wire form (see
// Request.AppendMarshal); the R bit is set and Reserved is written as is.
func (r *Response) AppendMarshal(b []byte) []byte {
	v := r.Version
	if v == 0 {
		v = Version
	}
	b = append(b, v, rBit|uint8(r.Opcode)&opcodeMask, 0, uint8(r.Result))
	b = binary.BigEndian.AppendUint32(b, r.Lifetime)
	b = binary.BigEndian.AppendUint32(b, r.Epoch)
	b = append(b, r.Reserved[:]...)
	switch r.Opcode {
	case OpMap:
		b = appendMap(b, r.Map)
	case OpPeer:
		b = appendPeer(b, r.Peer)
	}
	for i := range r.Options {
		b = r.Options[i].appendMarshal(b)
	}
	return b
}

// AppendErrorResponse appends the error response a server sends for the
// request datagram req (RFC 6887 §8.2, §7.2, §7.3): a copy of at most MaxSize
// octets of req, zero-padded to a multiple of 4 and to at least HeaderSize
// octets, with the version octet set to version (a server answering
// UNSUPP_VERSION puts the version it supports there; 0 means Version), the R
// bit set, the reserved octet zeroed, and result, lifetime and epoch written.
// The opcode payload and the options come back as they came (§7.3: "a
// complete copy of the request packet").
//
// Octets 12-23 (the response's 96 reserved bits) keep the last 96 bits of the
// request's client address when result is UnsuppVersion or MalformedRequest,
// the two results meaning the request "could not be successfully parsed"
// (§7.4), as §7.2 asks; for every other result they are zeroed, as for a
// request that parsed. (miniupnpd 2.3.9 zeroes them always.)
//
// req must hold at least 2 octets (ParseRequest drops shorter ones).
func AppendErrorResponse(b, req []byte, version uint8, result ResultCode, lifetime, epoch uint32) []byte {
	if version == 0 {
		version = Version
	}
	if len(req) > MaxSize {
		req = req[:MaxSize]
	}
	start := len(b)
	b = append(b, req...)
	n := (len(req) + 3) &^ 3
	if n < HeaderSize {
		n = HeaderSize
	}
	for len(b)-start < n {
		b = append(b, 0)
	}
	h := b[start:]
	h[0] = version
	if len(req) < 2 {
		h[1] = rBit
	} else {
		h[1] = rBit | req[1]&opcodeMask
	}
	h[2] = 0
	h[3] = uint8(result)
	binary.BigEndian.PutUint32(h[4:8], lifetime)
	binary.BigEndian.PutUint32(h[8:12], epoch)
	if result != UnsuppVersion && result != MalformedRequest {
		clear(h[12:HeaderSize])
	}
	return b
}
