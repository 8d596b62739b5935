package mapping

import (
	"context"
	"errors"
	"net/netip"
	"sync"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/upstream"
)

// fakeUp is a scripted provider: it maps every request to ext:port (the
// suggested port, or port+1000 when taken) unless told otherwise.
type fakeUp struct {
	mu       sync.Mutex
	ext      netip.Addr
	maps     []upstream.MapRequest
	deletes  []upstream.MapRequest
	err      error         // returned by Map when set
	block    chan struct{} // Map waits for it to be closed when set
	lifetime uint32
	taken    map[uint16]bool
	// refuseLife is the error lifetime of CANNOT_PROVIDE_EXTERNAL for a
	// taken port (PREFER_FAILURE); 0 means 30 s.
	refuseLife uint32
	events     chan upstream.Event
	nonceSeq   byte
	kind       upstream.Kind
	detecting  chan struct{}
	gen        uint64 // setKind calls
	// onMap, when set, is called with each request as it arrives (before
	// block): what the disk holds at that instant is what a crash then
	// would leave.
	onMap func(upstream.MapRequest)
	// deleteErr is returned by Delete when set (the request still counts).
	deleteErr error
	// ext64 and prefix64: the answer to a request for an IPv6 host (a
	// NAT64's IPv4 address, its PREFIX64 prefixes).
	ext64    netip.Addr
	prefix64 []netip.Prefix
	peers    []upstream.PeerRequest
	peerErr  error // returned by Peer when set
}

// Peer grants an outbound mapping on the suggested port, else the
// internal port + 10000; a suggested port that is taken is
// CANNOT_PROVIDE_EXTERNAL (PEER implies PREFER_FAILURE, RFC 6887 §12.1).
func (u *fakeUp) Peer(_ context.Context, r upstream.PeerRequest) (upstream.MapResult, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.peers = append(u.peers, r)
	if u.peerErr != nil {
		return upstream.MapResult{}, u.peerErr
	}
	port := r.Internal.Port() + 10000
	if p := r.SuggestedExternal.Port(); p != 0 {
		if u.taken[p] {
			return upstream.MapResult{}, &upstream.Error{Kind: upstream.KindPCP, Op: "peer", Code: pcp.CannotProvideExternal, Lifetime: 30}
		}
		port = p
	}
	return upstream.MapResult{External: netip.AddrPortFrom(u.ext, port), Lifetime: min(r.Lifetime, u.lifetime), Nonce: r.Nonce}, nil
}

func (u *fakeUp) peerRequests() []upstream.PeerRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upstream.PeerRequest(nil), u.peers...)
}

func newFakeUp() *fakeUp {
	return &fakeUp{ext: netip.MustParseAddr("203.0.113.1"), lifetime: 3600,
		taken: map[uint16]bool{}, events: make(chan upstream.Event, 8)}
}

// detected waits, as upstream.Auto does before it asks a backend, while
// u.detecting is set and open: the error is Auto's when ctx ends first.
func (u *fakeUp) detected(ctx context.Context) error {
	u.mu.Lock()
	d := u.detecting
	u.mu.Unlock()
	if d == nil {
		return nil
	}
	select {
	case <-d:
		return nil
	case <-ctx.Done():
		return errors.New("upstream: still looking for an upstream NAT")
	}
}

func (u *fakeUp) Map(ctx context.Context, r upstream.MapRequest) (upstream.MapResult, error) {
	if err := u.detected(ctx); err != nil {
		return upstream.MapResult{}, err
	}
	u.mu.Lock()
	u.maps = append(u.maps, r)
	block, err, onMap := u.block, u.err, u.onMap
	u.mu.Unlock()
	if onMap != nil {
		onMap(r)
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return upstream.MapResult{}, ctx.Err()
		}
	}
	if err != nil {
		return upstream.MapResult{}, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	port := r.SuggestedExternal.Port()
	if u.taken[port] {
		if r.PreferFailure {
			life := u.refuseLife
			if life == 0 {
				life = 30
			}
			return upstream.MapResult{}, &upstream.Error{Kind: upstream.KindPCP, Op: "map", Code: pcp.CannotProvideExternal, Lifetime: life}
		}
		port += 1000
	}
	n := r.Nonce
	if n == (pcp.Nonce{}) {
		u.nonceSeq++
		n[0] = u.nonceSeq
	}
	res := upstream.MapResult{External: netip.AddrPortFrom(u.ext, port), Lifetime: min(r.Lifetime, u.lifetime), Nonce: n}
	if r.Internal.Addr().Is6() && u.ext64.IsValid() {
		res.External = netip.AddrPortFrom(u.ext64, port)
	}
	if r.Prefix64 {
		res.Prefix64 = u.prefix64
	}
	return res, nil
}

func (u *fakeUp) Delete(_ context.Context, r upstream.MapRequest) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.deletes = append(u.deletes, r)
	return u.deleteErr
}

func (u *fakeUp) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	if err := u.detected(ctx); err != nil {
		return netip.Addr{}, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err != nil {
		return netip.Addr{}, u.err
	}
	return u.ext, nil
}

func (u *fakeUp) Events() <-chan upstream.Event { return u.events }

func (u *fakeUp) counts() (maps, deletes int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.maps), len(u.deletes)
}

func (u *fakeUp) lastMap() upstream.MapRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.maps[len(u.maps)-1]
}

// Kind is the upstream's kind: u.kind, PCP when unset, and its
// generation (1, then one more with each setKind). While u.detecting is set
// it waits for it to be closed (detection running) or ctx.
func (u *fakeUp) Kind(ctx context.Context) (upstream.Kind, uint64) {
	u.mu.Lock()
	d := u.detecting
	u.mu.Unlock()
	if d != nil {
		select {
		case <-d:
		case <-ctx.Done():
			return upstream.KindDetecting, 0
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	k := u.kind
	if k == upstream.KindDetecting {
		k = upstream.KindPCP
	}
	return k, u.gen + 1
}

// setKind changes the kind and tells the core, as upstream.Auto does.
func (u *fakeUp) setKind(k upstream.Kind) {
	u.mu.Lock()
	u.kind = k
	u.gen++
	gen := u.gen + 1
	u.mu.Unlock()
	u.events <- upstream.Event{Kind: upstream.EventKindChanged, Upstream: k, Gen: gen}
}
