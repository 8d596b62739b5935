package mapping

import (
	"context"
	"net/netip"
	"sync"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient"
)

// fakeUp is a scripted provider: it maps every request to ext:port (the
// suggested port, or port+1000 when taken) unless told otherwise.
type fakeUp struct {
	mu       sync.Mutex
	ext      netip.Addr
	maps     []pcpclient.MapRequest
	deletes  []pcpclient.MapRequest
	err      error         // returned by Map when set
	block    chan struct{} // Map waits for it to be closed when set
	lifetime uint32
	taken    map[uint16]bool
	// refuseLife is the error lifetime of CANNOT_PROVIDE_EXTERNAL for a
	// taken port (PREFER_FAILURE); 0 means 30 s.
	refuseLife uint32
	events     chan pcpclient.Event
	nonceSeq   byte
}

func newFakeUp() *fakeUp {
	return &fakeUp{ext: netip.MustParseAddr("203.0.113.1"), lifetime: 3600,
		taken: map[uint16]bool{}, events: make(chan pcpclient.Event, 8)}
}

func (u *fakeUp) Map(ctx context.Context, r pcpclient.MapRequest) (pcpclient.MapResult, error) {
	u.mu.Lock()
	u.maps = append(u.maps, r)
	block, err := u.block, u.err
	u.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return pcpclient.MapResult{}, ctx.Err()
		}
	}
	if err != nil {
		return pcpclient.MapResult{}, err
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
			return pcpclient.MapResult{}, &pcpclient.ResultError{Op: pcp.OpMap, Code: pcp.CannotProvideExternal, Lifetime: life}
		}
		port += 1000
	}
	n := r.Nonce
	if n == (pcp.Nonce{}) {
		u.nonceSeq++
		n[0] = u.nonceSeq
	}
	return pcpclient.MapResult{External: netip.AddrPortFrom(u.ext, port), Lifetime: min(r.Lifetime, u.lifetime), Nonce: n}, nil
}

func (u *fakeUp) Delete(_ context.Context, r pcpclient.MapRequest) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.deletes = append(u.deletes, r)
	return nil
}

func (u *fakeUp) ExternalAddr(context.Context) (netip.Addr, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err != nil {
		return netip.Addr{}, u.err
	}
	return u.ext, nil
}

func (u *fakeUp) Events() <-chan pcpclient.Event { return u.events }

func (u *fakeUp) counts() (maps, deletes int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.maps), len(u.deletes)
}

func (u *fakeUp) lastMap() pcpclient.MapRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.maps[len(u.maps)-1]
}
