package natpmp

import (
	"context"
	"net/netip"
	"time"

	"github.com/pcpgw/pcpgw/mapping"
)

// Core is the part of the mapping core (*mapping.Core) the LAN server uses.
// It is declared here, by its consumer, so tests can fake it.
type Core interface {
	// Map creates, or renews/updates, the requester's mapping of the same
	// (Client, Proto, Internal). An IPv6 Internal address asks for a pinhole.
	Map(ctx context.Context, r mapping.Request) (mapping.Mapping, error)
	// Delete deletes what s selects and returns how many; 0 and nil when
	// nothing matched.
	Delete(ctx context.Context, s mapping.Selector) (int, error)
	// Find returns a snapshot of the mappings s selects, sorted by ID.
	Find(s mapping.Selector) []mapping.Mapping
	// ExternalAddr is the provider's external IPv4 address; an error with
	// CodeNetworkFailure when it is unknown or unreachable.
	ExternalAddr(ctx context.Context) (addr netip.Addr, err error)
	// AwaitUpstream waits while the upstream is being detected (at start,
	// after a WAN change), bounded by the core (mapping.DetectWait) and
	// ctx; at once otherwise. The server calls it before it starts
	// CoreTimeout for a request that may go upstream.
	AwaitUpstream(ctx context.Context)
	// Epoch is pcpgw's own epoch: seconds since its start of epoch.
	Epoch(now time.Time) uint32
	// Subscribe delivers events until the returned func is called.
	Subscribe() (<-chan mapping.Event, func())
	// PinholesEnabled reports whether IPv6 pinholes may be opened.
	PinholesEnabled() bool
	// Peer serves a PCP PEER for an IPv4 flow (RFC 6887 §12, RFC 7648 §3).
	Peer(ctx context.Context, r mapping.PeerRequest) (mapping.PeerResult, error)
	// SecureMode reports whether secure mode is on (a host maps only to
	// itself): with it off, PCP THIRD_PARTY is accepted.
	SecureMode() bool
}

// *mapping.Core is the Core of the daemon.
var _ Core = (*mapping.Core)(nil)
