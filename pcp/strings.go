package pcp

import "strconv"

var resultNames = [...]string{
	Success:                  "SUCCESS",
	UnsuppVersion:            "UNSUPP_VERSION",
	NotAuthorized:            "NOT_AUTHORIZED",
	MalformedRequest:         "MALFORMED_REQUEST",
	UnsuppOpcode:             "UNSUPP_OPCODE",
	UnsuppOption:             "UNSUPP_OPTION",
	MalformedOption:          "MALFORMED_OPTION",
	NetworkFailure:           "NETWORK_FAILURE",
	NoResources:              "NO_RESOURCES",
	UnsuppProtocol:           "UNSUPP_PROTOCOL",
	UserExQuota:              "USER_EX_QUOTA",
	CannotProvideExternal:    "CANNOT_PROVIDE_EXTERNAL",
	AddressMismatch:          "ADDRESS_MISMATCH",
	ExcessiveRemotePeers:     "EXCESSIVE_REMOTE_PEERS",
	ThirdPartyIDUnknown:      "THIRD_PARTY_ID_UNKNOWN",
	ThirdPartyMissingOption:  "THIRD_PARTY_MISSING_OPTION",
	UnsuppThirdPartyIDLength: "UNSUPP_THIRD_PARTY_ID_LENGTH",
}

// String returns the RFC name of the result code (e.g. "NO_RESOURCES"), or
// "RESULT(n)" for an unassigned one.
func (c ResultCode) String() string {
	if int(c) < len(resultNames) && resultNames[c] != "" {
		return resultNames[c]
	}
	return "RESULT(" + strconv.Itoa(int(c)) + ")"
}

// LongLifetime reports whether c is a "long lifetime" error of RFC 6887 §7.4
// (RECOMMENDED 30 minutes) rather than a short one (30 seconds).
//
// Long: 1-6, 9, 12, 13 (§7.4) and 24-26 (RFC 7843 §4.1). Short: 7, 8, 10.
// CANNOT_PROVIDE_EXTERNAL (11) has a lifetime that "depends on the reason":
// this package classifies it short, because its usual cause (the suggested
// port is held by another mapping, §13.2) ends when that mapping ends; a
// server that knows the holder's remaining lifetime should answer that plus
// TIME_WAIT instead. Success and unknown codes report false.
func (c ResultCode) LongLifetime() bool {
	switch c {
	case UnsuppVersion, NotAuthorized, MalformedRequest, UnsuppOpcode,
		UnsuppOption, MalformedOption, UnsuppProtocol, AddressMismatch,
		ExcessiveRemotePeers, ThirdPartyIDUnknown, ThirdPartyMissingOption,
		UnsuppThirdPartyIDLength:
		return true
	}
	return false
}

// String returns "ANNOUNCE", "MAP", "PEER" or "OPCODE(n)".
func (o Opcode) String() string {
	switch o {
	case OpAnnounce:
		return "ANNOUNCE"
	case OpMap:
		return "MAP"
	case OpPeer:
		return "PEER"
	}
	return "OPCODE(" + strconv.Itoa(int(o)) + ")"
}

// String returns the RFC name of the option (e.g. "PREFER_FAILURE"), or
// "OPTION(n)" for one this package does not know.
func (c OptionCode) String() string {
	switch c {
	case OptThirdParty:
		return "THIRD_PARTY"
	case OptPreferFailure:
		return "PREFER_FAILURE"
	case OptFilter:
		return "FILTER"
	case OptThirdPartyID:
		return "THIRD_PARTY_ID"
	case OptDescription:
		return "DESCRIPTION"
	case OptPrefix64:
		return "PREFIX64"
	}
	return "OPTION(" + strconv.Itoa(int(c)) + ")"
}

// Optional reports whether the option is in the optional-to-process range
// (most significant bit set, §7.3): a server may ignore it. Options with the
// bit clear are mandatory: a server that does not know one answers
// UNSUPP_OPTION.
func (c OptionCode) Optional() bool { return c&0x80 != 0 }

// Known reports whether this package parses the option's body into typed
// fields.
func (c OptionCode) Known() bool {
	switch c {
	case OptThirdParty, OptPreferFailure, OptFilter, OptThirdPartyID, OptDescription, OptPrefix64:
		return true
	}
	return false
}

// ValidFor reports whether the option may accompany opcode op, per the
// "Valid for Opcodes" lines of RFC 6887 §13.1-13.3, RFC 7220 §2, RFC 7225
// §4.1 and RFC 7843 §4:
//
//	THIRD_PARTY     MAP, PEER
//	PREFER_FAILURE  MAP
//	FILTER          MAP
//	DESCRIPTION     MAP, PEER
//	PREFIX64        MAP, ANNOUNCE
//	THIRD_PARTY_ID  MAP, PEER
//
// It reports false for options this package does not know.
func (c OptionCode) ValidFor(op Opcode) bool {
	switch c {
	case OptThirdParty, OptDescription, OptThirdPartyID:
		return op == OpMap || op == OpPeer
	case OptPreferFailure, OptFilter:
		return op == OpMap
	case OptPrefix64:
		return op == OpMap || op == OpAnnounce
	}
	return false
}

// MaxInRequest is how many times the option may appear in one request: 1 for
// all known options but FILTER, which may repeat (0 means no limit). Unknown
// options report 0.
func (c OptionCode) MaxInRequest() int {
	switch c {
	case OptThirdParty, OptPreferFailure, OptThirdPartyID, OptDescription, OptPrefix64:
		return 1
	}
	return 0
}

var natpmpResultNames = [...]string{
	NATPMPSuccess:        "SUCCESS",
	NATPMPUnsuppVersion:  "UNSUPP_VERSION",
	NATPMPNotAuthorized:  "NOT_AUTHORIZED",
	NATPMPNetworkFailure: "NETWORK_FAILURE",
	NATPMPOutOfResources: "OUT_OF_RESOURCES",
	NATPMPUnsuppOpcode:   "UNSUPP_OPCODE",
}

// String returns the name of the NAT-PMP result code, or "RESULT(n)".
func (r NATPMPResult) String() string {
	if int(r) < len(natpmpResultNames) {
		return natpmpResultNames[r]
	}
	return "RESULT(" + strconv.Itoa(int(r)) + ")"
}
