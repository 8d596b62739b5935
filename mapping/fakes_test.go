package mapping

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"

	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient"
)

// fakeFW records what the core asks of the firewall.
type fakeFW struct {
	mu      sync.Mutex
	fwds    map[firewall.Forward]bool // keyed without timeout
	pins    map[firewall.Pinhole]bool
	batches int
	synced  int
	fail    error
	wan     netip.Addr
}

func newFakeFW() *fakeFW {
	return &fakeFW{fwds: map[firewall.Forward]bool{}, pins: map[firewall.Pinhole]bool{}}
}

func (f *fakeFW) Apply(_ context.Context, c firewall.Change) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.batches++
	for _, x := range c.DelForwards {
		x.Timeout = 0
		delete(f.fwds, x)
	}
	for _, x := range c.DelPinholes {
		x.Timeout = 0
		delete(f.pins, x)
	}
	for _, x := range c.AddForwards {
		x.Timeout = 0
		f.fwds[x] = true
	}
	for _, x := range c.AddPinholes {
		x.Timeout = 0
		f.pins[x] = true
	}
	return nil
}

func (f *fakeFW) Sync(_ context.Context, fwds []firewall.Forward, pins []firewall.Pinhole) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced++
	clear(f.fwds)
	clear(f.pins)
	for _, x := range fwds {
		x.Timeout = 0
		f.fwds[x] = true
	}
	for _, x := range pins {
		x.Timeout = 0
		f.pins[x] = true
	}
	return nil
}

func (f *fakeFW) Packets(_ context.Context, p firewall.Pinhole) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p.Timeout = 0
	if !f.pins[p] {
		return 0, errors.New("no such pinhole")
	}
	return 7, nil
}

func (f *fakeFW) SetWANAddr(_ context.Context, a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wan = a
	return nil
}

func (f *fakeFW) forwards() []firewall.Forward {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []firewall.Forward
	for x := range f.fwds {
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b firewall.Forward) int { return int(a.Port) - int(b.Port) })
	return out
}

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
	events   chan pcpclient.Event
	nonceSeq byte
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
			return pcpclient.MapResult{}, &pcpclient.ResultError{Op: pcp.OpMap, Code: pcp.CannotProvideExternal, Lifetime: 30}
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
