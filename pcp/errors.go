package pcp

import (
	"errors"
	"fmt"
)

// Sentinel errors. Parsers wrap them (directly or inside a *ParseError or
// *NATPMPParseError), so test with errors.Is.
var (
	// ErrShort: the datagram is too short to carry the header or the opcode
	// payload. From ParseRequest (plain, not inside a ParseError) it means
	// "drop silently" (§8.2: fewer than 2 octets, or version 2 and fewer than
	// 24 octets).
	ErrShort = errors.New("pcp: short packet")
	// ErrLong: the datagram is longer than MaxSize (1100) octets.
	ErrLong = errors.New("pcp: packet longer than 1100 octets")
	// ErrAlign: the datagram length is not a multiple of 4 octets.
	ErrAlign = errors.New("pcp: length not a multiple of 4")
	// ErrNotRequest: the R bit (PCP) or the top bit of the opcode (NAT-PMP)
	// is set in what should be a request. Drop silently (§8.2; RFC 6886 §3.5).
	ErrNotRequest = errors.New("pcp: response where a request was expected")
	// ErrNotResponse: the R bit / top opcode bit is clear in a response.
	ErrNotResponse = errors.New("pcp: request where a response was expected")
	// ErrVersion: the version octet is not the one expected.
	ErrVersion = errors.New("pcp: unsupported version")
	// ErrNATPMPOnly: ParseResponse got a version-0 UNSUPP_VERSION reply, so
	// the server speaks only NAT-PMP (RFC 6887 §9 step 4, Appendix A). The
	// returned Response still holds Version 0, Opcode, Result UnsuppVersion
	// and Epoch.
	ErrNATPMPOnly = errors.New("pcp: server speaks only NAT-PMP (UNSUPP_VERSION with version 0)")
	// ErrOpcode: the opcode is not ANNOUNCE, MAP or PEER (PCP) or not 0, 1, 2 (NAT-PMP).
	ErrOpcode = errors.New("pcp: unsupported opcode")
	// ErrTruncated: the datagram ends inside the opcode-specific payload.
	ErrTruncated = errors.New("pcp: opcode payload truncated")
	// ErrMalformed: the opcode payload is inconsistent (e.g. MAP with
	// protocol 0 and a non-zero internal port, §11.3).
	ErrMalformed = errors.New("pcp: malformed request")
	// ErrOption: an option is malformed: length overflowing the packet,
	// bad body, not valid for the opcode, or repeated when it may appear
	// only once (§7.3, §13).
	ErrOption = errors.New("pcp: malformed option")
	// ErrUnknownOption: a mandatory-to-process option (code < 128) that this
	// package does not know (§7.3).
	ErrUnknownOption = errors.New("pcp: unsupported mandatory option")
	// ErrThirdPartyMissing: THIRD_PARTY_ID without THIRD_PARTY (RFC 7843 §5.2).
	ErrThirdPartyMissing = errors.New("pcp: THIRD_PARTY_ID without THIRD_PARTY")
)

// ParseError is returned by ParseRequest when the server must answer with an
// error response carrying Result (RFC 6887 §8.2). Err is one of the sentinel
// errors above and is reachable with errors.Is.
type ParseError struct {
	Result ResultCode
	Msg    string
	Err    error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("pcp: %s: %s", e.Result, e.Msg)
}

// Unwrap returns the sentinel error.
func (e *ParseError) Unwrap() error { return e.Err }

// NATPMPParseError is returned by ParseNATPMPRequest when the server must
// answer with Result (UnsuppVersion or UnsuppOpcode, RFC 6886 §3.5). Opcode is
// the request's opcode (the response carries Opcode+128).
type NATPMPParseError struct {
	Result NATPMPResult
	Opcode uint8
	Msg    string
	Err    error
}

func (e *NATPMPParseError) Error() string {
	return fmt.Sprintf("natpmp: %s: %s", e.Result, e.Msg)
}

// Unwrap returns the sentinel error.
func (e *NATPMPParseError) Unwrap() error { return e.Err }

func parseErr(res ResultCode, err error, format string, args ...any) *ParseError {
	return &ParseError{Result: res, Msg: fmt.Sprintf(format, args...), Err: err}
}

// wrapped is a plain error with a message that unwraps to a sentinel.
type wrapped struct {
	msg string
	err error
}

func (e *wrapped) Error() string { return e.err.Error() + ": " + e.msg }
func (e *wrapped) Unwrap() error { return e.err }

func parseErrPlain(err error, format string, args ...any) error {
	return &wrapped{msg: fmt.Sprintf(format, args...), err: err}
}
