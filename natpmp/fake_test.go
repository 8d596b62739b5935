package natpmp

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/pcpgw/pcpgw/mapping"
)

// fakeCore is an in-memory Core: it renews a client's existing mapping of
// the same (Client, Proto, Internal), hands out the suggested external port
// when free (else 40000+ID), answers pinholes with external = internal, and
// checks a delete's nonce as the real core does. Fields set before use
// force outcomes.
type fakeCore struct {
	start time.Time
	now   func() time.Time

	mu       sync.Mutex
	ext      netip.Addr
	extErr   error
	mapErr   error // returned by Map when set
	delErr   error // returned by Delete when set
	hang     bool  // Map and ExternalAddr wait for the context to end
	pinholes bool
	secure   bool // SecureMode
	maps     []mapping.Mapping
	nextID   uint32
	requests []mapping.Request
	deletes  []mapping.Selector
	events   chan mapping.Event
	subs     int
	peers    []mapping.PeerRequest
	peerErr  error // returned by Peer when set
	// detecting, when set, makes AwaitUpstream wait for it to be closed
	// (the upstream is being detected) or its context; awaiting counts
	// the calls waiting, maxAwaiting the most at once, awaited all calls.
	detecting             chan struct{}
	awaiting, maxAwaiting int
	awaited               int
}

func (f *fakeCore) AwaitUpstream(ctx context.Context) {
	f.mu.Lock()
	d := f.detecting
	f.awaited++
	if d != nil {
		f.awaiting++
		f.maxAwaiting = max(f.maxAwaiting, f.awaiting)
	}
	f.mu.Unlock()
	if d == nil {
		return
	}
	select {
	case <-d:
	case <-ctx.Done():
	}
	f.mu.Lock()
	f.awaiting--
	f.mu.Unlock()
}

// Peer answers the flow's outermost endpoint as the ext address and the
// internal port + 10000, for the lifetime asked.
func (f *fakeCore) Peer(ctx context.Context, r mapping.PeerRequest) (mapping.PeerResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers = append(f.peers, r)
	if f.peerErr != nil {
		return mapping.PeerResult{}, f.peerErr
	}
	return mapping.PeerResult{External: netip.AddrPortFrom(f.ext, r.Internal.Port()+10000), Lifetime: r.Lifetime}, nil
}

func newFakeCore(start time.Time, now func() time.Time) *fakeCore {
	return &fakeCore{
		start: start, now: now,
		ext:      netip.MustParseAddr("203.0.113.1"),
		pinholes: true,
		secure:   true,
		events:   make(chan mapping.Event, 8),
	}
}

func (f *fakeCore) Epoch(now time.Time) uint32 { return uint32(now.Sub(f.start) / time.Second) }

func (f *fakeCore) PinholesEnabled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pinholes
}

func (f *fakeCore) SecureMode() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.secure
}

func (f *fakeCore) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	f.mu.Lock()
	hang, ext, err := f.hang, f.ext, f.extErr
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return netip.Addr{}, ctx.Err()
	}
	return ext, err
}

func (f *fakeCore) Subscribe() (<-chan mapping.Event, func()) {
	f.mu.Lock()
	f.subs++
	f.mu.Unlock()
	return f.events, func() {
		f.mu.Lock()
		f.subs--
		f.mu.Unlock()
	}
}

func (f *fakeCore) Map(ctx context.Context, r mapping.Request) (mapping.Mapping, error) {
	f.mu.Lock()
	f.requests = append(f.requests, r)
	if f.hang {
		f.mu.Unlock()
		<-ctx.Done()
		return mapping.Mapping{}, ctx.Err()
	}
	defer f.mu.Unlock()
	if f.mapErr != nil {
		return mapping.Mapping{}, f.mapErr
	}
	now := f.now()
	for i, m := range f.maps {
		if m.Client == r.Client && m.Proto == r.Proto && m.Internal == r.Internal {
			m.Expires = now.Add(r.Lifetime)
			m.RemoteHost, m.RemotePort, m.Nonce = r.RemoteHost, r.RemotePort, r.Nonce
			f.maps[i] = m
			return m, nil
		}
	}
	f.nextID++
	m := mapping.Mapping{
		ID: f.nextID, Origin: r.Origin, Client: r.Client, Proto: r.Proto, Internal: r.Internal,
		RemoteHost: r.RemoteHost, RemotePort: r.RemotePort, Description: r.Description,
		Nonce: r.Nonce, Created: now, Expires: now.Add(r.Lifetime),
	}
	if r.Internal.Addr().Is6() && r.ExternalAddr.Is4() {
		// An IPv4 port at the provider's NAT64 for an IPv6 host.
		m.NAT64, m.Prefix64 = true, []netip.Prefix{netip.MustParsePrefix("2001:db8:64::/96")}
		m.External = netip.AddrPortFrom(f.ext, r.Internal.Port())
	} else if r.Internal.Addr().Is6() {
		m.External = r.Internal
	} else {
		port := r.ExternalPort
		if port == 0 || f.taken(r.Proto, port) {
			if r.ExactPort {
				f.nextID--
				return mapping.Mapping{}, &mapping.Error{Code: mapping.CodeConflict}
			}
			port = uint16(40000 + f.nextID)
		}
		m.External = netip.AddrPortFrom(f.ext, port)
	}
	f.maps = append(f.maps, m)
	return m, nil
}

func (f *fakeCore) taken(p mapping.Proto, port uint16) bool {
	for _, m := range f.maps {
		if m.Proto == p && m.External.Port() == port {
			return true
		}
	}
	return false
}

func (f *fakeCore) Delete(ctx context.Context, s mapping.Selector) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes = append(f.deletes, s)
	if f.delErr != nil {
		return 0, f.delErr
	}
	n := 0
	kept := f.maps[:0]
	var err error
	for _, m := range f.maps {
		if !f.match(m, s) {
			kept = append(kept, m)
			continue
		}
		if s.Nonce != nil && *s.Nonce != m.Nonce {
			kept = append(kept, m)
			err = &mapping.Error{Code: mapping.CodeNonceMismatch, Lifetime: m.Lease(f.now())}
			continue
		}
		n++
	}
	f.maps = kept
	return n, err
}

func (f *fakeCore) match(m mapping.Mapping, s mapping.Selector) bool {
	if s.Client.IsValid() && m.Client != s.Client {
		return false
	}
	if s.Origin != 0 && m.Origin != s.Origin {
		return false
	}
	if s.ID != 0 && m.ID != s.ID {
		return false
	}
	if s.Proto != 0 && m.Proto != s.Proto {
		return false
	}
	if s.Internal.Addr().IsValid() {
		if m.Internal.Addr() != s.Internal.Addr() || (s.Internal.Port() != 0 && m.Internal.Port() != s.Internal.Port()) {
			return false
		}
	}
	return true
}

func (f *fakeCore) Find(s mapping.Selector) []mapping.Mapping {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []mapping.Mapping
	for _, m := range f.maps {
		if f.match(m, s) {
			out = append(out, m)
		}
	}
	return out
}

func (f *fakeCore) snapshot() []mapping.Mapping {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mapping.Mapping(nil), f.maps...)
}
