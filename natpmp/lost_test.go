package natpmp

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/pcp"
)

// loseMapping ends the fake core's mapping id and tells subscribers, as
// mapping.Core does when the upstream cannot give an exact mapping its
// port back (or withdrew it): the mapping as it was, the endpoint its
// client knew, and why.
func (f *fakeCore) loseMapping(id uint32, err error) {
	f.mu.Lock()
	var ev mapping.Event
	kept := f.maps[:0]
	for _, m := range f.maps {
		if m.ID == id {
			ev = mapping.Event{Kind: mapping.EventMappingLost, Mapping: m, Was: m.External, Err: err}
			continue
		}
		kept = append(kept, m)
	}
	f.maps = kept
	f.mu.Unlock()
	f.events <- ev
}

// TestMappingLostUpdate (RFC 6887 §14.2): when the core ends a PCP
// client's exact mapping because the upstream cannot give its port back,
// the client gets the unsolicited MAP response with CANNOT_PROVIDE_EXTERNAL
// (its nonce, protocol, internal port and the external endpoint it knew,
// the error's lifetime) on the socket its request came from, three times
// (0, 250 ms, 750 ms); the repeats stop once it asks again. A mapping the
// upstream just deleted is told with SUCCESS and lifetime 0; a NAT-PMP
// mapping's end sends no PCP message.
func TestMappingLostUpdate(t *testing.T) {
	core := newFakeCore(time.Now(), time.Now)
	s, err := New(Config{Core: core, Interfaces: []string{"lo"}, NATPMP: true, PCP: true, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	server := runOnLoopback(t, s)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1500)
	read := func(d time.Duration) (pcp.Response, time.Time, bool) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(d))
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return pcp.Response{}, time.Time{}, false
			}
			if from != server {
				t.Errorf("datagram from %v, not the server's %v", from, server)
				continue
			}
			r, err := pcp.ParseResponse(buf[:n])
			if err != nil {
				t.Fatalf("%x: %v", buf[:n], err)
			}
			return r, time.Now(), true
		}
	}
	nonce := pcp.Nonce{0xe, 0xa, 0xc}
	mapReq := (&pcp.Request{Opcode: pcp.OpMap, Lifetime: 3600, Client: netip.MustParseAddr("127.0.0.1"),
		Map:     &pcp.Map{Nonce: nonce, Protocol: 6, InternalPort: 8080, ExternalPort: 18080, ExternalAddr: netip.IPv4Unspecified()},
		Options: []pcp.Option{{Code: pcp.OptPreferFailure}}}).AppendMarshal(nil)
	ask := func() {
		t.Helper()
		if _, err := c.WriteToUDPAddrPort(mapReq, server); err != nil {
			t.Fatal(err)
		}
		// A repeat of a notice checked before the server took this
		// request may come first: the answer is the SUCCESS.
		for range 3 {
			r, _, ok := read(5 * time.Second)
			if ok && r.Result == pcp.CannotProvideExternal {
				continue
			}
			if !ok || r.Result != pcp.Success || r.Lifetime == 0 || r.Map.ExternalPort != 18080 {
				t.Fatalf("MAP answer %+v %v", r, ok)
			}
			return
		}
		t.Fatal("no answer to the MAP but notices")
	}
	ask()
	id := core.snapshot()[0].ID
	core.loseMapping(id, &mapping.Error{Code: mapping.CodeCannotProvideExternal, Lifetime: 30 * time.Second})
	var at []time.Time
	addrEq := cmp.Comparer(func(a, b netip.Addr) bool { return a.Unmap() == b.Unmap() })
	for range 3 {
		r, when, ok := read(3 * time.Second)
		if !ok {
			t.Fatalf("%d notices, want 3", len(at))
		}
		want := pcp.Map{Nonce: nonce, Protocol: 6, InternalPort: 8080, ExternalPort: 18080, ExternalAddr: netip.MustParseAddr("203.0.113.1")}
		if r.Opcode != pcp.OpMap || r.Result != pcp.CannotProvideExternal || r.Lifetime != 30 || r.Map == nil ||
			!cmp.Equal(*r.Map, want, addrEq) || len(r.Options) != 0 {
			t.Errorf("notice %+v %+v", r, r.Map)
		}
		at = append(at, when)
	}
	if d1, d2 := at[1].Sub(at[0]), at[2].Sub(at[1]); d1 < 240*time.Millisecond || d2 < 490*time.Millisecond {
		t.Errorf("notices %v and %v apart, want 250 ms and 500 ms", d1, d2)
	}
	if r, _, ok := read(time.Second); ok {
		t.Errorf("a fourth notice %+v", r)
	}

	// The client asks again after the first notice: the repeats stop.
	ask()
	id = core.snapshot()[0].ID
	core.loseMapping(id, &mapping.Error{Code: mapping.CodeCannotProvideExternal, Lifetime: 30 * time.Second})
	if r, _, ok := read(3 * time.Second); !ok || r.Result != pcp.CannotProvideExternal {
		t.Fatalf("notice %+v %v", r, ok)
	}
	ask()
	if r, _, ok := read(time.Second); ok {
		t.Errorf("a notice after the client asked again: %+v", r)
	}

	// Deleted by the upstream: SUCCESS, lifetime 0.
	id = core.snapshot()[0].ID
	core.loseMapping(id, nil)
	if r, _, ok := read(3 * time.Second); !ok || r.Result != pcp.Success || r.Lifetime != 0 || r.Map.Nonce != nonce {
		t.Errorf("notice of a deleted mapping %+v %v", r, ok)
	}
	for i := range 2 { // its repeats: read all, so that none comes late below
		if r, _, ok := read(3 * time.Second); !ok || r.Result != pcp.Success || r.Lifetime != 0 || r.Map.Nonce != nonce {
			t.Errorf("repeat %d of the notice of a deleted mapping %+v %v", i+1, r, ok)
		}
	}

	// A NAT-PMP mapping's end: no PCP message.
	core.mu.Lock()
	core.maps = append(core.maps, mapping.Mapping{ID: 99, Origin: mapping.OriginNATPMP, Client: netip.MustParseAddr("127.0.0.1"),
		Proto: mapping.UDP, Internal: netip.MustParseAddrPort("127.0.0.1:5000"), External: netip.MustParseAddrPort("203.0.113.1:5000"),
		Expires: time.Now().Add(time.Hour)})
	core.mu.Unlock()
	core.loseMapping(99, &mapping.Error{Code: mapping.CodeCannotProvideExternal})
	if r, _, ok := read(time.Second); ok {
		t.Errorf("a PCP message for a NAT-PMP mapping: %+v", r)
	}
}

// TestPreferFailureRenewalOtherPort (RFC 6887 §11.3): over the real core,
// a PREFER_FAILURE renewal suggesting another port than the mapping's is
// answered CANNOT_PROVIDE_EXTERNAL and leaves the mapping; suggesting its
// own port renews it.
func TestPreferFailureRenewalOtherPort(t *testing.T) {
	up := newFakeUpstream()
	s, core, _ := newCoreServer(t, mapping.Config{Mode: mapping.ModeNAT444, WANAddr: netip.MustParseAddr("100.64.0.2"), Upstream: up, SecureMode: true})
	mapReq := func(port uint16) []byte {
		r := pcp.Request{Opcode: pcp.OpMap, Lifetime: 3600, Client: lanHost.Addr(),
			Map:     &pcp.Map{Nonce: pcp.Nonce(testNonce), Protocol: 6, InternalPort: 8080, ExternalPort: port, ExternalAddr: netip.IPv4Unspecified()},
			Options: []pcp.Option{{Code: pcp.OptPreferFailure}}}
		return r.AppendMarshal(nil)
	}
	for _, tc := range []struct {
		port uint16
		want pcp.ResultCode
	}{{18080, pcp.Success}, {18081, pcp.CannotProvideExternal}, {18080, pcp.Success}} {
		r, err := pcp.ParseResponse(s.Handle(lanHost, cpeLAN, mapReq(tc.port), time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if r.Result != tc.want || tc.want == pcp.Success && r.Map.ExternalPort != 18080 {
			t.Errorf("PREFER_FAILURE for %d: %v %+v, want %v", tc.port, r.Result, r.Map, tc.want)
		}
		if ms := core.Find(mapping.Selector{}); len(ms) != 1 || ms[0].External.Port() != 18080 {
			t.Errorf("after asking for %d: %+v", tc.port, ms)
		}
	}
}
