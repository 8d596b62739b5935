package upnpigd

import (
	"context"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/pcpgw/pcpgw/mapping"
)

// fakeCore is an in-memory Core with the core's documented behaviour:
// secure mode, exact ports, any ports from 50000 up, pinholes.
type fakeCore struct {
	mu       sync.Mutex
	now      func() time.Time
	next     uint32
	maps     []mapping.Mapping
	ext      netip.Addr
	extErr   error
	secure   bool
	pinholes bool
	mode     mapping.Mode
	taken    map[uint16]bool // ports the "provider" cannot give
	packets  map[uint32]uint64
	subs     []chan mapping.Event
	reqs     []mapping.Request
	deletes  []mapping.Selector
}

func newFakeCore(now func() time.Time) *fakeCore {
	return &fakeCore{
		now:      now,
		next:     1,
		ext:      netip.MustParseAddr("203.0.113.1"),
		secure:   true,
		pinholes: true,
		mode:     mapping.ModeNAT444,
		taken:    map[uint16]bool{},
		packets:  map[uint32]uint64{},
	}
}

func (f *fakeCore) emitLocked(ev mapping.Event) {
	for _, c := range f.subs {
		select {
		case c <- ev:
		default:
		}
	}
}

func (f *fakeCore) countLocked() int {
	n := 0
	for _, m := range f.maps {
		if !m.IsPinhole() {
			n++
		}
	}
	return n
}

func (f *fakeCore) portFreeLocked(p uint16, proto mapping.Proto, client netip.Addr, internal netip.AddrPort) bool {
	if f.taken[p] {
		return false
	}
	for _, m := range f.maps {
		if m.Proto == proto && m.External.Port() == p && !m.IsPinhole() && !(m.Client == client && m.Internal == internal) {
			return false
		}
	}
	return true
}

func (f *fakeCore) Map(ctx context.Context, r mapping.Request) (mapping.Mapping, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r)
	if r.Proto != mapping.TCP && r.Proto != mapping.UDP {
		return mapping.Mapping{}, &mapping.Error{Code: mapping.CodeUnsupportedProtocol}
	}
	if f.secure && r.Internal.Addr() != r.Client {
		return mapping.Mapping{}, &mapping.Error{Code: mapping.CodeNotAuthorized, Msg: "secure mode"}
	}
	var expires time.Time
	if r.Lifetime > 0 {
		expires = f.now().Add(r.Lifetime)
	}
	if r.Internal.Addr().Is6() {
		if !f.pinholes {
			return mapping.Mapping{}, &mapping.Error{Code: mapping.CodeDisabled}
		}
		m := mapping.Mapping{ID: f.next, Origin: r.Origin, Client: r.Client, Proto: r.Proto, Internal: r.Internal,
			External: r.Internal, RemoteHost: r.RemoteHost, RemotePort: r.RemotePort, Created: f.now(), Expires: expires}
		f.next++
		f.maps = append(f.maps, m)
		return m, nil
	}
	port := r.ExternalPort
	if port == 0 || !f.portFreeLocked(port, r.Proto, r.Client, r.Internal) {
		if r.ExactPort {
			return mapping.Mapping{}, &mapping.Error{Code: mapping.CodeCannotProvideExternal}
		}
		port = 0
		for p := uint16(50000); p < 65535; p++ {
			if f.portFreeLocked(p, r.Proto, r.Client, r.Internal) {
				port = p
				break
			}
		}
		if port == 0 {
			return mapping.Mapping{}, &mapping.Error{Code: mapping.CodeNoResources}
		}
	}
	for i, m := range f.maps {
		if m.Client == r.Client && m.Proto == r.Proto && m.Internal == r.Internal {
			m.External = netip.AddrPortFrom(f.ext, port)
			m.WANPort = port
			m.Expires = expires
			m.Description = r.Description
			m.RemoteHost = r.RemoteHost
			f.maps[i] = m
			return m, nil
		}
	}
	m := mapping.Mapping{ID: f.next, Origin: r.Origin, Client: r.Client, Proto: r.Proto, Internal: r.Internal,
		External: netip.AddrPortFrom(f.ext, port), WANPort: port, Given: port, RemoteHost: r.RemoteHost, Description: r.Description,
		Created: f.now(), Expires: expires, Upstream: mapping.UpstreamOK}
	f.next++
	f.maps = append(f.maps, m)
	f.emitLocked(mapping.Event{Kind: mapping.EventMappings, Count: f.countLocked()})
	return m, nil
}

func match(s mapping.Selector, m mapping.Mapping) bool {
	return (s.ID == 0 || s.ID == m.ID) && (s.Proto == 0 || s.Proto == m.Proto) &&
		(s.Origin == 0 || s.Origin == m.Origin) &&
		(!s.Internal.Addr().IsValid() || s.Internal.Addr() == m.Internal.Addr() && (s.Internal.Port() == 0 || s.Internal.Port() == m.Internal.Port())) &&
		(s.External == 0 || s.External == m.WANPort)
}

func (f *fakeCore) Delete(ctx context.Context, s mapping.Selector) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes = append(f.deletes, s)
	var keep []mapping.Mapping
	n := 0
	for _, m := range f.maps {
		if match(s, m) {
			if f.secure && s.Client.IsValid() && m.Client != s.Client {
				return 0, &mapping.Error{Code: mapping.CodeNotAuthorized}
			}
			n++
			continue
		}
		keep = append(keep, m)
	}
	f.maps = keep
	if n > 0 {
		f.emitLocked(mapping.Event{Kind: mapping.EventMappings, Count: f.countLocked()})
	}
	return n, nil
}

func (f *fakeCore) Find(s mapping.Selector) []mapping.Mapping {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []mapping.Mapping
	for _, m := range f.maps {
		if match(s, m) {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (f *fakeCore) Get(id uint32) (mapping.Mapping, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.maps {
		if m.ID == id {
			return m, true
		}
	}
	return mapping.Mapping{}, false
}

func (f *fakeCore) Renew(ctx context.Context, client netip.Addr, id uint32, lifetime time.Duration) (mapping.Mapping, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, m := range f.maps {
		if m.ID == id {
			if f.secure && m.Client != client {
				return m, &mapping.Error{Code: mapping.CodeNotAuthorized}
			}
			m.Expires = f.now().Add(lifetime)
			f.maps[i] = m
			return m, nil
		}
	}
	return mapping.Mapping{}, &mapping.Error{Code: mapping.CodeNotFound}
}

func (f *fakeCore) Packets(ctx context.Context, id uint32) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.packets[id], nil
}

func (f *fakeCore) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ext, f.extErr
}

func (f *fakeCore) setExternal(a netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ext = a
	f.emitLocked(mapping.Event{Kind: mapping.EventExternalAddr, External: a})
}

func (f *fakeCore) Subscribe() (<-chan mapping.Event, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(chan mapping.Event, 16)
	f.subs = append(f.subs, c)
	return c, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, x := range f.subs {
			if x == c {
				f.subs = append(f.subs[:i], f.subs[i+1:]...)
				return
			}
		}
	}
}

func (f *fakeCore) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.countLocked()
}

func (f *fakeCore) PinholesEnabled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pinholes
}

func (f *fakeCore) Mode() mapping.Mode {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mode
}

// moveMapping gives mapping id another external port (the CPE's WAN port
// stays) and tells subscribers, as mapping.Core does when the upstream
// gave it another port.
func (f *fakeCore) moveMapping(id uint32, port uint16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, m := range f.maps {
		if m.ID == id {
			was := m.External
			m.External = netip.AddrPortFrom(m.External.Addr(), port)
			f.maps[i] = m
			f.emitLocked(mapping.Event{Kind: mapping.EventMappingMoved, Mapping: m, Was: was})
		}
	}
}

// setPinholes turns pinholes on or off and tells subscribers, as
// mapping.Core.SetPinholes does.
func (f *fakeCore) setPinholes(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pinholes = on
	f.emitLocked(mapping.Event{Kind: mapping.EventFirewall})
}

func (f *fakeCore) list() []mapping.Mapping { return f.Find(mapping.Selector{}) }

var _ Core = (*fakeCore)(nil)
