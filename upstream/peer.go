package upstream

import (
	"context"
	"net/netip"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient"
)

// PeerRequest asks the upstream for an outbound mapping toward Remote
// (PCP PEER, RFC 6887 §12): MapRequest's fields (PreferFailure is not
// allowed, §12.1: a suggested external endpoint implies it) and the
// remote peer.
type PeerRequest struct {
	MapRequest
	Remote netip.AddrPort
}

// Peerer is a Backend that can make PEER mappings: a PCP server's.
type Peerer interface {
	Peer(ctx context.Context, r PeerRequest) (MapResult, error)
}

// Peer makes or extends an outbound mapping at the provider's PCP server.
// A NAT-PMP gateway has no PEER: *Error with UNSUPP_OPCODE.
func (p *PCP) Peer(ctx context.Context, r PeerRequest) (MapResult, error) {
	if p.kind == KindNATPMP {
		return MapResult{}, noPeer(p.kind)
	}
	res, err := p.c.Peer(ctx, pcpclient.PeerRequest{MapRequest: pcpclient.MapRequest(r.MapRequest), Remote: r.Remote})
	if err != nil {
		return MapResult{}, p.error("peer", err)
	}
	return fromPCP(res), nil
}

// Peer makes or extends an outbound mapping at the upstream in force
// when it speaks PCP; any other kind answers *Error with UNSUPP_OPCODE
// (NAT-PMP and UPnP IGD have nothing like PEER; with nothing upstream the
// outermost NAT's port of a flow cannot be known).
func (a *Auto) Peer(ctx context.Context, r PeerRequest) (MapResult, error) {
	b, gen, err := a.backend(ctx, "peer")
	if err != nil {
		return MapResult{}, err
	}
	if pb, ok := b.(Peerer); ok {
		res, err := pb.Peer(ctx, r)
		res.Gen = gen
		return res, err
	}
	return MapResult{}, noPeer(b.Kind())
}

func noPeer(k Kind) *Error {
	return &Error{Kind: k, Op: "peer", Code: pcp.UnsuppOpcode, Lifetime: 1800, Detail: k.Noun() + " has no PEER"}
}

var (
	_ Peerer = (*PCP)(nil)
	_ Peerer = (*Auto)(nil)
)
