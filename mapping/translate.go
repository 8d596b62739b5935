package mapping

import (
	"time"

	"github.com/pcpgw/pcpgw/pcp"
)

// Error lifetimes recommended by RFC 6887 §7.4.
const (
	shortErrorLifetime = 30 * time.Second
	longErrorLifetime  = 30 * time.Minute
)

// UPnP error codes used by the IGD front-end (UPnP Device Architecture,
// IGD:1/IGD:2 WANIPConnection, RFC 6970 §4.3).
const (
	UPnPInvalidArgs          = 402
	UPnPActionFailed         = 501
	UPnPNotAuthorized        = 606
	UPnPArrayIndexInvalid    = 713
	UPnPNoSuchEntry          = 714
	UPnPConflict             = 718
	UPnPSamePortRequired     = 724
	UPnPOnlyPermanentLeases  = 725
	UPnPRemoteHostWildcard   = 726
	UPnPExternalPortWildcard = 727
	UPnPNoPortMapsAvailable  = 728
	UPnPConflictWithOther    = 729
	UPnPPortMappingNotFound  = 730
	UPnPReservedPort         = 732
	UPnPInconsistentParams   = 733
)

var upnpDescriptions = map[int]string{
	UPnPInvalidArgs:          "Invalid Args",
	UPnPActionFailed:         "Action Failed",
	UPnPNotAuthorized:        "Action not authorized",
	UPnPArrayIndexInvalid:    "SpecifiedArrayIndexInvalid",
	UPnPNoSuchEntry:          "NoSuchEntryInArray",
	UPnPConflict:             "ConflictInMappingEntry",
	UPnPSamePortRequired:     "SamePortValuesRequired",
	UPnPOnlyPermanentLeases:  "OnlyPermanentLeasesSupported",
	UPnPRemoteHostWildcard:   "RemoteHostOnlySupportsWildcard",
	UPnPExternalPortWildcard: "ExternalPortOnlySupportsWildcard",
	UPnPNoPortMapsAvailable:  "NoPortMapsAvailable",
	UPnPConflictWithOther:    "ConflictWithOtherMechanisms",
	UPnPPortMappingNotFound:  "PortMappingNotFound",
	UPnPReservedPort:         "WildCardNotPermittedInIntPort",
	UPnPInconsistentParams:   "InconsistentParameters",
}

// UPnPDescription returns the errorDescription of a UPnP error code.
func UPnPDescription(code int) string {
	if s, ok := upnpDescriptions[code]; ok {
		return s
	}
	return "Action Failed"
}

// UPnPError translates a core error to the UPnP error of WANIPConnection
// (igdVersion 1 or 2), following RFC 6970 §4.3 for what the provider said.
func UPnPError(err error, igdVersion int) (code int, description string) {
	v2 := igdVersion >= 2
	switch CodeOf(err) {
	case CodeInvalid, CodeUnsupportedProtocol:
		code = UPnPInvalidArgs
	case CodeNotAuthorized, CodeNonceMismatch, CodeDisabled:
		code = UPnPConflict // IGD:1 has no 606 for WANIPConnection (RFC 6970 §4.3)
		if v2 {
			code = UPnPNotAuthorized
		}
	case CodeConflict, CodeCannotProvideExternal:
		code = UPnPConflict
	case CodeOutsidePortSet:
		// The port belongs to another customer of the shared address
		// (or to the CPE's outbound NAT): IGD:2's "conflicts with
		// mappings from other mechanisms"; IGD:1 has only 718.
		code = UPnPConflict
		if v2 {
			code = UPnPConflictWithOther
		}
	case CodeQuota, CodeNoResources:
		code = UPnPActionFailed
		if v2 {
			code = UPnPNoPortMapsAvailable
		}
	case CodeNotFound:
		code = UPnPNoSuchEntry
	default:
		code = UPnPActionFailed
	}
	return code, UPnPDescription(code)
}

// WANIPv6FirewallControl:1 error codes.
const (
	UPnPPinholeSpaceExhausted    = 701
	UPnPFirewallDisabled         = 702
	UPnPInboundPinholeNotAllowed = 703
	UPnPPinholeNoSuchEntry       = 704
	UPnPProtocolNotSupported     = 705
	UPnPInternalPortWildcard     = 706
	UPnPProtocolWildcard         = 707
	UPnPWildcardNotPermitted     = 708
	UPnPNoPacketSent             = 709
)

var pinholeDescriptions = map[int]string{
	UPnPPinholeSpaceExhausted:    "PinholeSpaceExhausted",
	UPnPFirewallDisabled:         "FirewallDisabled",
	UPnPInboundPinholeNotAllowed: "InboundPinholeNotAllowed",
	UPnPPinholeNoSuchEntry:       "NoSuchEntry",
	UPnPProtocolNotSupported:     "ProtocolNotSupported",
	UPnPInternalPortWildcard:     "InternalPortWildcardingNotAllowed",
	UPnPProtocolWildcard:         "ProtocolWildcardingNotAllowed",
	UPnPWildcardNotPermitted:     "WildCardNotPermittedInSrcIP",
	UPnPNoPacketSent:             "NoPacketSent",
}

// UPnPPinholeError translates a core error to the error of
// WANIPv6FirewallControl:1 (pinhole actions).
func UPnPPinholeError(err error) (code int, description string) {
	switch CodeOf(err) {
	case CodeInvalid:
		code = UPnPInvalidArgs
	case CodeUnsupportedProtocol:
		code = UPnPProtocolNotSupported
	case CodeNotAuthorized, CodeNonceMismatch:
		code = UPnPNotAuthorized
	case CodeDisabled:
		code = UPnPFirewallDisabled
	case CodeQuota, CodeNoResources, CodeConflict:
		code = UPnPPinholeSpaceExhausted
	case CodeNotFound:
		code = UPnPPinholeNoSuchEntry
	default:
		code = UPnPActionFailed
	}
	if s, ok := pinholeDescriptions[code]; ok {
		return code, s
	}
	return code, UPnPDescription(code)
}

// NATPMPResult translates a core error to a NAT-PMP result code
// (RFC 6886 §3.5). A missing mapping is not an error in NAT-PMP.
func NATPMPResult(err error) pcp.NATPMPResult {
	switch CodeOf(err) {
	case CodeOK, CodeNotFound:
		return pcp.NATPMPSuccess
	case CodeNotAuthorized, CodeNonceMismatch, CodeDisabled, CodeInvalid, CodeConflict, CodeOutsidePortSet:
		return pcp.NATPMPNotAuthorized
	case CodeQuota, CodeNoResources, CodeCannotProvideExternal:
		return pcp.NATPMPOutOfResources
	case CodeUnsupportedProtocol, CodeUnsupported:
		return pcp.NATPMPUnsuppOpcode
	default:
		return pcp.NATPMPNetworkFailure
	}
}

// PCPResult translates a core error to a PCP result code for a LAN PCP
// client, with the error lifetime in seconds (RFC 6887 §7.4): the one the
// core or the provider gave, else 30 s for short and 30 min for long errors.
func PCPResult(err error) (code pcp.ResultCode, lifetime uint32) {
	var long bool
	switch CodeOf(err) {
	case CodeOK:
		return pcp.Success, 0
	case CodeInvalid:
		code, long = pcp.MalformedRequest, true
	case CodeNotAuthorized, CodeNonceMismatch, CodeDisabled:
		code, long = pcp.NotAuthorized, true
	case CodeConflict, CodeCannotProvideExternal:
		code, long = pcp.CannotProvideExternal, false
	case CodeOutsidePortSet:
		// The port set changes only with the provider's configuration.
		code, long = pcp.CannotProvideExternal, true
	case CodeQuota:
		code = pcp.UserExQuota
	case CodeNoResources:
		code = pcp.NoResources
	case CodeUnsupportedProtocol:
		code, long = pcp.UnsuppProtocol, true
	case CodeUnsupported:
		code, long = pcp.UnsuppOpcode, true
	case CodeNotFound:
		// Deleting what does not exist succeeds (RFC 6887 §15: idempotent).
		return pcp.Success, 0
	default:
		code = pcp.NetworkFailure
	}
	d := shortErrorLifetime
	if long {
		d = longErrorLifetime
	}
	if e := asError(err); e != nil && e.Lifetime > 0 {
		d = e.Lifetime
	}
	return code, uint32(d / time.Second)
}

// CodeFromPCP is the core code for a PCP result from the provider
// (RFC 6970 §4.3 read the other way).
func CodeFromPCP(c pcp.ResultCode) Code {
	switch c {
	case pcp.Success:
		return CodeOK
	case pcp.NotAuthorized:
		return CodeNotAuthorized
	case pcp.NoResources:
		return CodeNoResources
	case pcp.UserExQuota:
		return CodeQuota
	case pcp.CannotProvideExternal:
		return CodeCannotProvideExternal
	case pcp.UnsuppProtocol:
		return CodeUnsupportedProtocol
	}
	return CodeNetworkFailure
}
