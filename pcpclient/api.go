package pcpclient

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
)

// MapRequest asks the provider's PCP server for a mapping (RFC 6887 §11),
// to create it, renew it, or (through Delete) remove it.
type MapRequest struct {
	Protocol uint8 // 6 TCP, 17 UDP
	// Internal is the internal address and port at the provider's NAT: the
	// CPE's WAN address in nat444 (RFC 6970 §5.5), the LAN host's address
	// in dslite (then ThirdParty is set, §5.4).
	Internal netip.AddrPort
	// SuggestedExternal is the wanted external address/port; zero parts
	// mean any. For a renewal, the assigned ones (§11.2.1).
	SuggestedExternal netip.AddrPort
	// Lifetime is the requested lifetime in seconds (the server clamps it).
	Lifetime uint32
	// PreferFailure adds PREFER_FAILURE (§13.2); on SUCCESS the client checks
	// that the assigned external port is the suggested one, and reports
	// CannotProvideExternal otherwise (deleting what the server gave).
	PreferFailure bool
	// ThirdParty adds THIRD_PARTY with Internal's address (§13.1).
	ThirdParty bool
	// Filters adds one FILTER option each (§13.3).
	Filters []pcp.Filter
	// Description adds DESCRIPTION (RFC 7220) when not empty.
	Description string
	// Nonce is the mapping's nonce: zero asks the client to make a fresh
	// random one; renewals and deletes must pass the one from the MapResult.
	Nonce pcp.Nonce
	// Prefix64 adds PREFIX64 (::/96) to ask the NAT64's prefixes (RFC
	// 7225 §4.3): for an IPv4 port for an IPv6 internal address.
	Prefix64 bool
}

// MapResult is a successful answer.
type MapResult struct {
	External netip.AddrPort // assigned external address and port
	Lifetime uint32         // granted lifetime in seconds
	Epoch    uint32         // server's epoch time in that response
	Nonce    pcp.Nonce      // the nonce used; keep it for renewals and deletes
	Server   netip.AddrPort // the server that answered
	// At is when the response was received (client clock): the base of the
	// renewal schedule.
	At time.Time
	// Prefix64 are the NAT64's Pref64::/n of the answer's PREFIX64
	// options (RFC 7225), in its order; nil without any.
	Prefix64 []netip.Prefix
}

// PeerRequest / PeerResult are the PEER opcode (§12).
type PeerRequest struct {
	MapRequest
	Remote netip.AddrPort
}

// PeerResult is a successful PEER answer.
type PeerResult = MapResult

// ResultError is a PCP error result from the server (§7.4, §8.3).
type ResultError struct {
	Op       pcp.Opcode
	Code     pcp.ResultCode
	Lifetime uint32    // error lifetime in seconds from the response
	Until    time.Time // the same request is not sent again before this
	// ByClient: the server answered SUCCESS with another external endpoint
	// than the suggested one to a PREFER_FAILURE request, and the client
	// deleted it and reports CANNOT_PROVIDE_EXTERNAL itself (RFC 6887 §13.2).
	ByClient bool
}

func (e *ResultError) Error() string {
	if e.ByClient {
		return fmt.Sprintf("pcp: server ignored PREFER_FAILURE to %v: %v (mapping given back)", e.Op, e.Code)
	}
	return fmt.Sprintf("pcp: server answered %v to %v (retry after %ds)", e.Code, e.Op, e.Lifetime)
}

// EventKind says what the client noticed about the server.
type EventKind uint8

const (
	// EventStateLost: the server lost its state (epoch check §8.5, or an
	// ANNOUNCE §14.1): every mapping must be re-created.
	EventStateLost EventKind = iota + 1
	// EventExternalChanged: a Mapping Update (§14.2) or a response showed a
	// new external address.
	EventExternalChanged
	// EventUnreachable: requests to the server time out.
	EventUnreachable
	// EventReachable: the server answers again after EventUnreachable.
	EventReachable
	// EventWithdrawn: the server ended a mapping this client made, in an
	// unsolicited MAP answer with an error result or lifetime 0 (§14.2):
	// Request and Mapping say which (its nonce), Error why.
	EventWithdrawn
)

// Event is one notice from the client to its owner (the mapping core).
type Event struct {
	Kind     EventKind
	Server   netip.AddrPort
	External netip.Addr // EventExternalChanged: the new external address
	// Mapping, for EventExternalChanged from a Mapping Update: the mapping
	// it is about (protocol, internal, nonce) and its new external endpoint.
	Mapping *MapResult
	Request *MapRequest
	// Error is the server's result for EventWithdrawn (Success when it
	// gave lifetime 0).
	Error *ResultError
}

// Status is what `pcpgw status` shows of the upstream.
type Status struct {
	Servers    []netip.AddrPort // candidate servers in use order
	Server     netip.AddrPort   // the one that answered last (zero if none)
	Protocol   string           // "pcp", "nat-pmp" (fallback), or "" if unknown
	Epoch      uint32
	External   netip.Addr // last external address seen
	LastAnswer time.Time
	LastError  string
	Reachable  bool
	Sent       uint64 // requests sent (with retransmissions)
	Received   uint64 // valid responses
	Dropped    uint64 // responses dropped by validation
	SendErrors uint64 // transmissions the local stack refused (also in Sent)
	// Announcements counts unsolicited announcements that made the client
	// ask the server again.
	Announcements uint64
}
