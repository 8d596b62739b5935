package mapping

import (
	"errors"
	"time"
)

// Code is the outcome class of a failed core request. Front-ends translate it
// to their protocol's codes with UPnPError, NATPMPResult and PCPResult.
type Code uint8

const (
	CodeOK                    Code = iota
	CodeInvalid                    // malformed or missing arguments
	CodeNotAuthorized              // secure mode, perm_rule, reserved port, or the provider said NOT_AUTHORIZED
	CodeConflict                   // the external port is taken (by another host or a static forward)
	CodeQuota                      // the host's quota is used up (or the provider's USER_EX_QUOTA)
	CodeNoResources                // no port left, table full, or the provider's NO_RESOURCES
	CodeNetworkFailure             // the provider cannot be reached, or answered NETWORK_FAILURE
	CodeCannotProvideExternal      // the provider cannot give the asked external port/address
	CodeNotFound                   // no such mapping
	CodeUnsupportedProtocol        // neither TCP nor UDP
	CodeNonceMismatch              // LAN PCP: the mapping belongs to another nonce
	CodeDisabled                   // the function is turned off (e.g. pinholes)
	// CodeOutsidePortSet: the external port asked for exactly is not one
	// the CPE may map in portset mode: outside the provider's port set,
	// or in the part of it kept for the CPE's outbound flows.
	CodeOutsidePortSet
	CodeUnsupported // the operation cannot be done here (PCP PEER with an upstream that has none)
)

var codeNames = [...]string{
	CodeOK: "ok", CodeInvalid: "invalid", CodeNotAuthorized: "not authorized",
	CodeConflict: "conflict", CodeQuota: "quota exceeded", CodeNoResources: "no resources",
	CodeNetworkFailure: "network failure", CodeCannotProvideExternal: "cannot provide external",
	CodeNotFound: "not found", CodeUnsupportedProtocol: "unsupported protocol",
	CodeNonceMismatch: "nonce mismatch", CodeDisabled: "disabled", CodeOutsidePortSet: "outside the port set",
	CodeUnsupported: "unsupported",
}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "code-" + itoa(int(c))
}

// Error is the error type of the core. Lifetime, when not zero, is how long
// the same request will keep failing (PCP error lifetime, RFC 6887 §7.4).
type Error struct {
	Code     Code
	Lifetime time.Duration
	Msg      string // what was wrong, for logs and SOAP fault descriptions
	Err      error  // the cause, if any
}

func (e *Error) Error() string {
	s := "mapping: " + e.Code.String()
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the Code of err: CodeOK for nil, the Code of a wrapped
// *Error, else CodeNetworkFailure.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeNetworkFailure
}

func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
