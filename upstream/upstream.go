package upstream

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
)

// Kind is what pcpgw asks to open ports beyond the CPE.
type Kind uint8

const (
	// KindDetecting: the upstream is being detected; requests wait.
	KindDetecting Kind = iota
	// KindPCP: the provider's PCP server (RFC 6887, RFC 6970, RFC 7648).
	KindPCP
	// KindNATPMP: a NAT-PMP gateway (RFC 6886) at the default router.
	KindNATPMP
	// KindUPnP: an ISP box's UPnP IGD on the WAN link (double NAT).
	KindUPnP
	// KindNone: nothing upstream forwards ports; mappings are made on the
	// CPE's own NAT only (they work when the ISP box exposes the CPE).
	KindNone
	// KindLocal: the WAN address is public; nothing is needed upstream.
	KindLocal
)

func (k Kind) String() string {
	switch k {
	case KindDetecting:
		return "detecting"
	case KindPCP:
		return "pcp"
	case KindNATPMP:
		return "natpmp"
	case KindUPnP:
		return "upnp"
	case KindNone:
		return "none"
	case KindLocal:
		return "local"
	}
	return fmt.Sprintf("kind-%d", uint8(k))
}

// MapRequest asks the upstream NAT for a mapping, to create or renew it,
// or (through Delete) to remove it. Its fields are those of
// pcpclient.MapRequest (a conversion turns one into the other).
type MapRequest struct {
	Protocol uint8 // 6 TCP, 17 UDP
	// Internal is the internal address and port at the upstream NAT: the
	// CPE's WAN address and port (nat444, RFC 6970 §5.5), or the LAN
	// host's own (dslite: ThirdParty is set, §5.4).
	Internal netip.AddrPort
	// SuggestedExternal is the wanted external address and port; zero
	// parts mean any. For a renewal, the assigned ones.
	SuggestedExternal netip.AddrPort
	// Lifetime is the wanted lifetime in seconds (the upstream clamps
	// it); math.MaxUint32 asks for as long as the upstream gives.
	Lifetime uint32
	// PreferFailure fails the request rather than give another external
	// port than the suggested one (RFC 6887 §13.2, IGD AddPortMapping):
	// the error's code is pcp.CannotProvideExternal.
	PreferFailure bool
	// ThirdParty maps for Internal's address, not the CPE's (§13.1).
	ThirdParty bool
	// Filters restrict the remote peers (PCP FILTER, IGD RemoteHost).
	Filters []pcp.Filter
	// Description is the LAN app's text (PCP DESCRIPTION, IGD
	// NewPortMappingDescription).
	Description string
	// Nonce is the mapping's PCP nonce: zero asks for a fresh one;
	// renewals and deletes pass the one of the MapResult. Upstreams
	// without nonces ignore it and give it back.
	Nonce pcp.Nonce
	// Prefix64 asks for the NAT64's prefixes (PCP PREFIX64, RFC 7225):
	// for an IPv4 port for an IPv6 internal address (ThirdParty set).
	Prefix64 bool
}

// MapResult is a successful answer.
type MapResult struct {
	External netip.AddrPort // assigned external address and port
	// Lifetime is the granted lifetime in seconds, after which the
	// mapping ends unless renewed; an upstream whose mappings do not end
	// gives the time after which it should be asked again (renewing
	// checks that the mapping still exists).
	Lifetime uint32
	Epoch    uint32         // PCP/NAT-PMP: the server's epoch time
	Nonce    pcp.Nonce      // the nonce used; keep it for renewals and deletes
	Server   netip.AddrPort // who answered
	// At is when the answer was received: the base of the renewal
	// schedule.
	At time.Time
	// Gen is the generation of the upstream that answered (Auto.Map; see
	// Event.Gen).
	Gen uint64
	// Prefix64 are the NAT64's Pref64::/n the answer names (PCP
	// PREFIX64, RFC 7225); nil without any.
	Prefix64 []netip.Prefix
}

// Error is an upstream's refusal of a request, in PCP's result codes
// whatever the upstream speaks (RFC 6887 Appendix A for NAT-PMP; the
// UPnP error table of RFC 6970 §4.3 read backwards for an IGD), so that
// the core translates it to each LAN protocol's codes one way.
type Error struct {
	Kind     Kind
	Op       string // "map", "delete", "external address"
	Code     pcp.ResultCode
	Lifetime uint32    // seconds the same request should not be repeated
	Until    time.Time // not asked again before this
	// ByClient: the upstream gave another external port than the one
	// asked for with PreferFailure; pcpgw gave it back and reports
	// CANNOT_PROVIDE_EXTERNAL itself.
	ByClient bool
	// Detail is the upstream's own words: "UPnP error 718
	// ConflictInMappingEntry", "NAT-PMP gateway answered NO_RESOURCES".
	Detail string
	// Err is the backend's error, if any (errors.Is/As reach it).
	Err error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s upstream: %s: %v", e.Kind, e.Op, e.Code)
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// EventKind says what an upstream noticed.
type EventKind uint8

const (
	// EventStateLost: the upstream lost its mappings (PCP epoch or
	// ANNOUNCE, NAT-PMP epoch, an IGD rebooted or found without them):
	// every mapping must be made again.
	EventStateLost EventKind = iota + 1
	// EventExternalChanged: the upstream's external address changed
	// (External), or one mapping's external endpoint did (Mapping and
	// Request, a PCP Mapping Update).
	EventExternalChanged
	// EventUnreachable: requests to the upstream go unanswered.
	EventUnreachable
	// EventReachable: the upstream answers again.
	EventReachable
	// EventKindChanged: another upstream took over (detection found
	// another kind, or none): every mapping is made again there.
	EventKindChanged
	// EventWithdrawn: the upstream ended one mapping by itself (a PCP
	// server's unsolicited MAP answer with an error or lifetime 0, RFC
	// 6887 §14.2): Request and Mapping say which, Err why.
	EventWithdrawn
)

// Event is one notice from the upstream to the mapping core.
type Event struct {
	Kind     EventKind
	Upstream Kind   // the upstream's kind
	Server   string // who: "100.64.0.1:5351", "http://100.64.0.1:5000/ctl/IPConn"
	External netip.Addr
	Mapping  *MapResult
	Request  *MapRequest
	// Spread asks the core to spread the re-creation of EventStateLost
	// over a random 0-5 s (RFC 6887 §14.1.1); false: at once.
	Spread bool
	// Err is the upstream's refusal of EventWithdrawn.
	Err *Error
	// Gen (EventKindChanged) counts the upstreams put in force: it grows
	// with every change, also of one backend for another of the same kind
	// (another box, a new WAN address). An answer whose MapResult.Gen is
	// older came from an upstream replaced since.
	Gen uint64
}

// Info is what the status shows of an upstream.
type Info struct {
	Kind     Kind
	Address  string // server, gateway or IGD host (ADDR:PORT)
	External netip.Addr
	// Device is the IGD's description (KindUPnP).
	Device     *Device
	Reachable  bool
	LastAnswer time.Time
	LastError  string
	Sent       uint64
	Received   uint64
	Dropped    uint64 // answers refused by validation (spoofed, malformed, off-subnet)
	Epoch      uint32
	Servers    []string
	Protocol   string
	// Detected is when the kind was last chosen; Advice says, for
	// KindNone or an upstream whose external address is not public,
	// what the user can do (both filled by Auto).
	Detected time.Time
	Advice   string
}

// Device names an upstream UPnP IGD.
type Device struct {
	FriendlyName, Manufacturer, Model string
	Service                           string // the WAN connection service type driven
	Location                          string // root description URL
}

// Backend is one upstream kind's client: the PCP client, a NAT-PMP
// gateway's, an IGD's. The Auto selector drives one at a time.
type Backend interface {
	Kind() Kind
	Map(ctx context.Context, r MapRequest) (MapResult, error)
	Delete(ctx context.Context, r MapRequest) error
	ExternalAddr(ctx context.Context) (netip.Addr, error)
	// Events delivers what the backend notices; closed by Close.
	Events() <-chan Event
	Info() Info
	Close() error
}

// UsableExternal reports whether a may be an external IPv4 address an
// upstream reports: see pcp.UsableExternal.
func UsableExternal(a netip.Addr) bool { return a.Unmap().Is4() && pcp.UsableExternal(a) }

// emit sends ev on ch without blocking: when ch is full its oldest event
// is dropped. Only one goroutine may send on ch.
func emit(ch chan Event, ev Event) {
	for {
		select {
		case ch <- ev:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}
