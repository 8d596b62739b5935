package pcp

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// NAT-PMP message sizes (RFC 6886 §3.2, §3.3, §3.5).
const (
	NATPMPExternalAddrRequestSize  = 2
	NATPMPMapRequestSize           = 12
	NATPMPHeaderSize               = 8 // version, opcode, result, epoch: every response
	NATPMPExternalAddrResponseSize = 12
	NATPMPMapResponseSize          = 16
)

// NATPMPRequest is a NAT-PMP request (RFC 6886 §3.2, §3.3). Opcode 0 (external
// address) has no body: the other fields are zero. Opcodes 1 (UDP) and 2
// (TCP) ask for a mapping; Lifetime 0 deletes (§3.4).
type NATPMPRequest struct {
	Opcode                uint8
	InternalPort          uint16
	SuggestedExternalPort uint16
	Lifetime              uint32
}

// NATPMPResponse is a NAT-PMP response (RFC 6886 §3.2, §3.3, §3.5). Opcode is
// the request's opcode, without the +128. ExternalAddr belongs to opcode 0;
// the ports and Lifetime to opcodes 1 and 2.
//
// Responses with Result UnsuppVersion or UnsuppOpcode are the 8-octet header
// only (§3.5): their body fields are zero. So is ExternalAddr (the invalid
// netip.Addr) in an opcode-0 error response that stops after the header.
type NATPMPResponse struct {
	Opcode       uint8
	Result       NATPMPResult
	Epoch        uint32 // seconds since start of epoch (§3.6)
	ExternalAddr netip.Addr
	InternalPort uint16
	ExternalPort uint16
	Lifetime     uint32
}

// ParseNATPMPRequest parses a NAT-PMP request as a server receives it
// (RFC 6886 §3.2-§3.5). The error says how the server must react:
//
//   - ErrShort (plain): fewer than 2 octets, or a mapping request (opcode 1,
//     2) of fewer than 12: drop silently (malformed; RFC 6886 defines no
//     answer).
//   - ErrNotRequest (plain): opcode 128 or more, a response: silently ignore
//     (§3.5).
//   - *NATPMPParseError with NATPMPUnsuppVersion (ErrVersion): the version
//     octet is not 0. Answer with the 8-octet UNSUPP_VERSION response.
//   - *NATPMPParseError with NATPMPUnsuppOpcode (ErrOpcode): an opcode below
//     128 other than 0, 1, 2. Answer UNSUPP_OPCODE with opcode+128.
//
// In both *NATPMPParseError cases the returned request holds Opcode. Octets
// after the request (past 2 for opcode 0, 12 for 1 and 2) are ignored: the
// RFC gives them no meaning, and clients that pad exist. The reserved field
// of a mapping request is ignored (§3.3).
func ParseNATPMPRequest(b []byte) (NATPMPRequest, error) {
	var r NATPMPRequest
	if len(b) < 2 {
		return r, ErrShort
	}
	r.Opcode = b[1]
	if b[0] != VersionNATPMP {
		return r, &NATPMPParseError{Result: NATPMPUnsuppVersion, Opcode: b[1], Msg: "version " + strconv.Itoa(int(b[0])), Err: ErrVersion}
	}
	if b[1] >= 128 {
		return NATPMPRequest{}, ErrNotRequest
	}
	switch b[1] {
	case NATPMPOpExternalAddr:
		return r, nil
	case NATPMPOpMapUDP, NATPMPOpMapTCP:
	default:
		return r, &NATPMPParseError{Result: NATPMPUnsuppOpcode, Opcode: b[1], Msg: "opcode " + strconv.Itoa(int(b[1])), Err: ErrOpcode}
	}
	if len(b) < NATPMPMapRequestSize {
		return NATPMPRequest{}, ErrShort
	}
	r.InternalPort = binary.BigEndian.Uint16(b[4:6])
	r.SuggestedExternalPort = binary.BigEndian.Uint16(b[6:8])
	r.Lifetime = binary.BigEndian.Uint32(b[8:12])
	return r, nil
}

// AppendMarshal appends the request: 2 octets for opcode 0, 12 for any other
// opcode (reserved zero).
func (r *NATPMPRequest) AppendMarshal(b []byte) []byte {
	b = append(b, VersionNATPMP, r.Opcode)
	if r.Opcode == NATPMPOpExternalAddr {
		return b
	}
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint16(b, r.InternalPort)
	b = binary.BigEndian.AppendUint16(b, r.SuggestedExternalPort)
	return binary.BigEndian.AppendUint32(b, r.Lifetime)
}

// ParseNATPMPResponse parses a NAT-PMP response as a client receives it. It
// wants version 0 (else ErrVersion), the top opcode bit set (else
// ErrNotResponse) and at least the 8-octet header (else ErrShort). Then:
// UNSUPP_VERSION and UNSUPP_OPCODE responses are the header alone (a body, if
// present, is ignored); opcode 0 needs 12 octets (the external address, which
// may be missing in an error response: ExternalAddr then stays invalid);
// opcodes 1 and 2 need 16; other opcodes with another result: ErrOpcode.
// Octets past those lengths are ignored.
func ParseNATPMPResponse(b []byte) (NATPMPResponse, error) {
	var r NATPMPResponse
	if len(b) < NATPMPHeaderSize {
		return r, ErrShort
	}
	if b[0] != VersionNATPMP {
		return r, parseErrPlain(ErrVersion, "version %d", b[0])
	}
	if b[1] < 128 {
		return r, ErrNotResponse
	}
	r.Opcode = b[1] - 128
	r.Result = NATPMPResult(binary.BigEndian.Uint16(b[2:4]))
	r.Epoch = binary.BigEndian.Uint32(b[4:8])
	if r.Result == NATPMPUnsuppVersion || r.Result == NATPMPUnsuppOpcode {
		return r, nil
	}
	switch r.Opcode {
	case NATPMPOpExternalAddr:
		if len(b) < NATPMPExternalAddrResponseSize {
			if r.Result != NATPMPSuccess {
				return r, nil
			}
			return NATPMPResponse{}, ErrShort
		}
		r.ExternalAddr = netip.AddrFrom4([4]byte(b[8:12]))
	case NATPMPOpMapUDP, NATPMPOpMapTCP:
		if len(b) < NATPMPMapResponseSize {
			return NATPMPResponse{}, ErrShort
		}
		r.InternalPort = binary.BigEndian.Uint16(b[8:10])
		r.ExternalPort = binary.BigEndian.Uint16(b[10:12])
		r.Lifetime = binary.BigEndian.Uint32(b[12:16])
	default:
		return NATPMPResponse{}, parseErrPlain(ErrOpcode, "opcode %d with result %s", r.Opcode, r.Result)
	}
	return r, nil
}

// AppendMarshal appends the response: the 8-octet header (opcode+128), then
// for UnsuppVersion and UnsuppOpcode nothing; for opcode 0 the external
// IPv4 address (nothing when ExternalAddr is invalid, zeros when it is not
// IPv4); for opcodes 1 and 2 ports and lifetime; for other opcodes nothing.
func (r *NATPMPResponse) AppendMarshal(b []byte) []byte {
	b = append(b, VersionNATPMP, r.Opcode|128)
	b = binary.BigEndian.AppendUint16(b, uint16(r.Result))
	b = binary.BigEndian.AppendUint32(b, r.Epoch)
	if r.Result == NATPMPUnsuppVersion || r.Result == NATPMPUnsuppOpcode {
		return b
	}
	switch r.Opcode {
	case NATPMPOpExternalAddr:
		if !r.ExternalAddr.IsValid() {
			return b
		}
		a := r.ExternalAddr.Unmap()
		if a.Is4() {
			x := a.As4()
			return append(b, x[:]...)
		}
		return append(b, 0, 0, 0, 0)
	case NATPMPOpMapUDP, NATPMPOpMapTCP:
		b = binary.BigEndian.AppendUint16(b, r.InternalPort)
		b = binary.BigEndian.AppendUint16(b, r.ExternalPort)
		return binary.BigEndian.AppendUint32(b, r.Lifetime)
	}
	return b
}
