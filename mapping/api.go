package mapping

import (
	"net/netip"
	"time"
)

// Proto is an IANA transport protocol number.
type Proto uint8

const (
	TCP Proto = 6
	UDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "proto-" + itoa(int(p))
}

// Origin says which front-end (or the configuration) asked for a mapping.
type Origin uint8

const (
	OriginUPnP   Origin = 1
	OriginNATPMP Origin = 2
	OriginPCP    Origin = 3
	OriginStatic Origin = 4 // a configured forward
)

func (o Origin) String() string {
	switch o {
	case OriginUPnP:
		return "upnp"
	case OriginNATPMP:
		return "natpmp"
	case OriginPCP:
		return "pcp"
	case OriginStatic:
		return "static"
	}
	return "origin-" + itoa(int(o))
}

// Nonce is a LAN PCP client's mapping nonce (RFC 6887 §11.3); zero for
// the other front-ends.
type Nonce [12]byte

// Request is what every front-end turns a LAN request into.
//
// An IPv4 Internal address asks for a port mapping (the CPE's DNAT and, behind
// a provider NAT, a PCP MAP upstream). An IPv6 Internal address asks for a
// pinhole in the CPE's IPv6 firewall (RFC 6092); its external endpoint is the
// internal one.
type Request struct {
	Origin Origin
	// Client is the requester's address, always taken from the socket.
	Client netip.Addr
	Proto  Proto
	// Internal is the LAN host and port the mapping leads to. In secure
	// mode Internal.Addr() must equal Client.
	Internal netip.AddrPort
	// ExternalPort is the wanted external port; 0 means any.
	ExternalPort uint16
	// ExternalAddr is a suggested external address (PCP); zero means any.
	ExternalAddr netip.Addr
	// Lifetime is the requested lease. Zero means no end: the mapping lives
	// until deleted (IGD:1 lease 0) and is renewed upstream forever.
	Lifetime time.Duration
	// ExactPort fails the request rather than give another external port
	// (IGD AddPortMapping, PCP PREFER_FAILURE). Without it a taken port is
	// replaced by a free one (AddAnyPortMapping, NAT-PMP, PCP).
	ExactPort bool
	// RemoteHost and RemotePort restrict who may use the mapping (IGD
	// RemoteHost, pinhole RemotePort, PCP FILTER). Zero means anyone.
	RemoteHost netip.Addr
	RemotePort uint16
	// Description is the app's text; the core sanitizes and truncates it.
	Description string
	// Nonce is the LAN PCP client's nonce (checked per RFC 6887 §11.3).
	Nonce Nonce
}

// Mapping is one live entry of the table, as the front-ends see it.
type Mapping struct {
	// ID is unique among live mappings; a pinhole's ID fits in 16 bits
	// (IGD:2 UniqueID).
	ID       uint32
	Origin   Origin
	Client   netip.Addr
	Proto    Proto
	Internal netip.AddrPort
	// External is what the internet sees: the provider's address and port
	// (nat444, dslite), the CPE's WAN address and port (local), or Internal
	// itself for a pinhole.
	External netip.AddrPort
	// WANPort is the CPE's own WAN port of its DNAT (nat444, local); 0 when
	// the CPE does no NAT for this mapping.
	WANPort uint16
	// Given is the first external port the mapping was given (what a LAN
	// client was told when it was made); External.Port() differs from it
	// after the mapping moved (EventMappingMoved). 0 until it has one.
	Given       uint16
	RemoteHost  netip.Addr
	RemotePort  uint16
	Description string
	Nonce       Nonce
	Created     time.Time
	// Expires is when the lease ends; zero for a mapping with no end.
	Expires time.Time
	// Upstream is the state of the provider side of this mapping.
	Upstream UpstreamState
	// UpstreamErr says why the provider has not made the mapping while
	// Upstream is pending or failing: its refusal ("CANNOT_PROVIDE_EXTERNAL:
	// the provider refused external port 8080") or that it did not answer.
	// "" otherwise, and before the provider's first answer.
	UpstreamErr string
	// RetryAt is when the provider is asked again while Upstream is
	// pending or failing (the error's lifetime, RFC 6887 §7.4); zero while
	// a request is in flight and otherwise.
	RetryAt time.Time
	// NAT64 marks an IPv4 port at the provider's NAT64 for an IPv6 LAN
	// host (RFC 7225): Internal is IPv6, External the NAT64's IPv4
	// address and port, and the CPE lets inbound IPv6 from Prefix64 (the
	// NAT64's Pref64::/n, where its translated IPv4 peers come from) to
	// Internal.
	NAT64    bool
	Prefix64 []netip.Prefix
}

// Lease returns the lease left at now (0 for a mapping with no end).
func (m Mapping) Lease(now time.Time) time.Duration {
	if m.Expires.IsZero() {
		return 0
	}
	if d := m.Expires.Sub(now); d > 0 {
		return d
	}
	return 0
}

// IsPinhole reports whether m is an IPv6 firewall pinhole.
func (m Mapping) IsPinhole() bool {
	return m.Internal.Addr().Is6() && !m.Internal.Addr().Is4In6() && !m.NAT64
}

// UpstreamState is the provider side of a mapping.
type UpstreamState uint8

const (
	UpstreamNone    UpstreamState = iota // no provider NAT involved (local mode, pinholes)
	UpstreamOK                           // mapped at the provider
	UpstreamPending                      // being (re)created; the provider has not answered yet
	UpstreamFailing                      // the provider refused or is unreachable; retried
)

func (s UpstreamState) String() string {
	switch s {
	case UpstreamNone:
		return "none"
	case UpstreamOK:
		return "ok"
	case UpstreamPending:
		return "pending"
	case UpstreamFailing:
		return "failing"
	}
	return "state-" + itoa(int(s))
}

// Selector picks mappings to delete or find. Zero fields match anything.
type Selector struct {
	// Client is the requester; with secure mode on only its own mappings
	// may be deleted (others give CodeNotAuthorized).
	Client netip.Addr
	Origin Origin // 0: any origin
	Proto  Proto  // 0: both protocols
	// Internal matches the internal endpoint; a zero port matches every
	// port of that address (NAT-PMP internal port 0).
	Internal netip.AddrPort
	// External matches the external port as the LAN sees it in IGD: the
	// CPE WAN port (or the provider's port when the CPE does no NAT).
	External   uint16
	RemoteHost netip.Addr
	// Nonce, when set, must match the mapping's (LAN-side PCP).
	Nonce *Nonce
	// ID matches one mapping (IGD:2 pinhole UniqueID); 0 matches any.
	ID uint32
}

// EventKind says what changed.
type EventKind uint8

const (
	// EventExternalAddr: the provider's (or the WAN's) external address changed.
	EventExternalAddr EventKind = iota + 1
	// EventStateLost: pcpgw's own state was lost (its epoch restarts):
	// front-ends announce (NAT-PMP opcode 0, PCP ANNOUNCE).
	EventStateLost
	// EventMappings: the number of mappings changed (GENA).
	EventMappings
	// EventFirewall: IPv6 pinholes were turned on or off (SetPinholes):
	// PinholesEnabled says which (GENA: InboundPinholeAllowed).
	EventFirewall
	// EventMappingMoved: one mapping's external endpoint changed from Was
	// to Mapping.External (the upstream gave another port after it lost
	// its state, after a change of upstream, or in a PCP Mapping Update):
	// its client must learn it (PCP Mapping Update, NAT-PMP announcement,
	// GENA). A NAT-PMP mapping's move of port also restarts pcpgw's epoch
	// (RFC 6886 §3.7: the only thing that makes NAT-PMP clients ask
	// again). Exact mappings never move: they fail instead.
	EventMappingMoved
	// EventMappingLost: a mapping ended without its client asking: the
	// upstream could not give a LAN PCP client's exact mapping
	// (PREFER_FAILURE) its external port back after it lost its state,
	// another upstream took over or it moved the mapping (Err
	// CodeCannotProvideExternal), or the upstream ended a mapping by
	// itself (RFC 6887 §14.2; Err its refusal, nil when it deleted it).
	// Mapping is the mapping as it was, Was the external endpoint its
	// client was last told. Its client must learn it (a PCP Mapping
	// Update with the error, RFC 6887 §14.2), not be moved.
	EventMappingLost
)

// Event is sent to subscribers of the core.
type Event struct {
	Kind     EventKind
	External netip.Addr // EventExternalAddr
	Count    int        // EventMappings: live port mappings
	// Mapping is the mapping as it now is (EventMappingMoved): its ID,
	// Origin, Client, Nonce, Internal, filter and new External; or as it
	// was (EventMappingLost).
	Mapping Mapping
	// Was is the external endpoint the mapping had (EventMappingMoved),
	// or its client was last told (EventMappingLost).
	Was netip.AddrPort
	// Err is why the mapping ended (EventMappingLost): a core *Error.
	Err error
}

// Mode is how pcpgw reaches the internet.
type Mode uint8

const (
	ModeAuto   Mode = iota // pick one of the others at start and on WAN changes
	ModeLocal              // public WAN address: only the CPE's own NAT
	ModeNAT444             // CPE NAT plus the provider's NAT (RFC 6970 §5.5)
	ModeDSLite             // no CPE NAT; MAP with THIRD_PARTY (RFC 6970 §5.4)
	// ModePortSet: the provider shares one IPv4 address among customers
	// with a fixed port set each and no NAT of its own (A+P: MAP-E RFC
	// 7597, MAP-T RFC 7599, lw4o6 RFC 7596): the CPE's own NAT, every
	// external port in Config.PortSet, nothing upstream to ask.
	ModePortSet
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeLocal:
		return "local"
	case ModeNAT444:
		return "nat444"
	case ModeDSLite:
		return "dslite"
	case ModePortSet:
		return "portset"
	}
	return "mode-" + itoa(int(m))
}

// ParseMode parses a mode name as the config and flags spell it.
func ParseMode(s string) (Mode, bool) {
	for m := ModeAuto; m <= ModePortSet; m++ {
		if m.String() == s {
			return m, true
		}
	}
	return 0, false
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	neg := i < 0
	if neg {
		i = -i
	}
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	if neg {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}
