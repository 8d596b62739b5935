package natpmp

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/pcp"
	"golang.org/x/net/ipv4"
)

// moveMapping changes the fake core's mapping id to external port port
// and tells subscribers, as mapping.Core does when the upstream gave the
// mapping another port.
func (f *fakeCore) moveMapping(id uint32, port uint16) {
	f.mu.Lock()
	var ev mapping.Event
	for i, m := range f.maps {
		if m.ID == id {
			ev = mapping.Event{Kind: mapping.EventMappingMoved, Was: m.External}
			m.External = netip.AddrPortFrom(m.External.Addr(), port)
			f.maps[i] = m
			ev.Mapping = m
		}
	}
	f.mu.Unlock()
	f.events <- ev
}

// TestMappingUpdate (issue 17.2, RFC 6887 §14.2): when a PCP client's
// mapping moves, the server sends it the unsolicited MAP response,
// from the socket the client asked (source 127.0.0.1:server port) to the
// address and port its request came from: three times (0, 250 ms,
// 750 ms), with the nonce, the new external port, the lease and the
// epoch; the repeats stop once the client asks again. When a NAT-PMP
// mapping moves, the address announcement goes to 224.0.0.1.
func TestMappingUpdate(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no lo interface:", err)
	}
	mc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	if err := ipv4.NewPacketConn(mc).JoinGroup(lo, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 1)}); err != nil {
		t.Fatal("join 224.0.0.1 on lo:", err)
	}
	core := newFakeCore(time.Now(), time.Now)
	s, err := New(Config{
		Core: core, Interfaces: []string{"lo"}, NATPMP: true, PCP: true,
		Port: -1, AnnouncePort: mc.LocalAddr().(*net.UDPAddr).Port,
	})
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
	// read returns the next datagram from the server within d.
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
	nonce := pcp.Nonce{0xa, 0xb, 0xc}
	mapReq := (&pcp.Request{Opcode: pcp.OpMap, Lifetime: 3600, Client: netip.MustParseAddr("127.0.0.1"),
		Map: &pcp.Map{Nonce: nonce, Protocol: 6, InternalPort: 8080, ExternalPort: 18080, ExternalAddr: netip.IPv4Unspecified()}}).AppendMarshal(nil)
	if _, err := c.WriteToUDPAddrPort(mapReq, server); err != nil {
		t.Fatal(err)
	}
	if r, _, ok := read(5 * time.Second); !ok || r.Result != pcp.Success || r.Map.ExternalPort != 18080 {
		t.Fatalf("MAP answer %+v %v", r, ok)
	}
	id := core.snapshot()[0].ID

	core.moveMapping(id, 19080)
	var at []time.Time
	for range 3 {
		r, when, ok := read(3 * time.Second)
		if !ok {
			t.Fatalf("%d Mapping Updates, want 3", len(at))
		}
		want := pcp.Map{Nonce: nonce, Protocol: 6, InternalPort: 8080, ExternalPort: 19080, ExternalAddr: netip.MustParseAddr("203.0.113.1")}
		if r.Opcode != pcp.OpMap || r.Result != pcp.Success || r.Map == nil || !cmp.Equal(*r.Map, want, cmp.Comparer(func(a, b netip.Addr) bool { return a.Unmap() == b.Unmap() })) ||
			r.Lifetime < 3590 || r.Lifetime > 3600 || len(r.Options) != 0 {
			t.Errorf("Mapping Update %+v %+v", r, r.Map)
		}
		at = append(at, when)
	}
	if d1, d2 := at[1].Sub(at[0]), at[2].Sub(at[1]); d1 < 240*time.Millisecond || d2 < 490*time.Millisecond {
		t.Errorf("updates %v and %v apart, want 250 ms and 500 ms", d1, d2)
	}
	if _, _, ok := read(time.Second); ok {
		t.Error("a fourth Mapping Update")
	}

	// The client asks again after the first: the repeats stop.
	core.moveMapping(id, 20080)
	if r, _, ok := read(3 * time.Second); !ok || r.Map.ExternalPort != 20080 {
		t.Fatalf("Mapping Update %+v %v", r, ok)
	}
	renew := slices.Clone(mapReq)
	if _, err := c.WriteToUDPAddrPort(renew, server); err != nil {
		t.Fatal(err)
	}
	if r, _, ok := read(3 * time.Second); !ok || r.Map.ExternalPort != 20080 || r.Epoch == 0 && r.Lifetime == 0 {
		t.Fatalf("renewal answer %+v %v", r, ok)
	}
	if r, _, ok := read(time.Second); ok {
		t.Errorf("an update after the client asked again: %+v", r)
	}
	if n := s.Stats().MappingUpdates; n != 4 {
		t.Errorf("MappingUpdates %d, want 4", n)
	}

	// The external address changes: every PCP client whose mapping's
	// endpoint is not what it was told gets an update.
	core.mu.Lock()
	core.maps[0].External = netip.MustParseAddrPort("203.0.113.9:20080")
	core.mu.Unlock()
	core.events <- mapping.Event{Kind: mapping.EventExternalAddr, External: netip.MustParseAddr("203.0.113.9")}
	if r, _, ok := read(3 * time.Second); !ok || r.Map.ExternalAddr.Unmap() != netip.MustParseAddr("203.0.113.9") || r.Map.ExternalPort != 20080 {
		t.Fatalf("Mapping Update after the address changed: %+v %v", r, ok)
	}
	core.mu.Lock()
	core.maps = core.maps[:0] // the PCP mapping is gone: no more updates for it
	core.mu.Unlock()

	// A NAT-PMP mapping moves: the address announcement.
	nb := make([]byte, 1500)
	for {
		mc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, _, err := mc.ReadFromUDPAddrPort(nb); err != nil {
			break // the start's announcements drained
		}
	}
	core.mu.Lock()
	core.maps = append(core.maps, mapping.Mapping{ID: 99, Origin: mapping.OriginNATPMP, Client: netip.MustParseAddr("127.0.0.1"),
		Proto: mapping.UDP, Internal: netip.MustParseAddrPort("127.0.0.1:5000"), External: netip.MustParseAddrPort("203.0.113.1:5000"),
		Expires: time.Now().Add(time.Hour)})
	core.mu.Unlock()
	core.moveMapping(99, 6000)
	mc.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		n, from, err := mc.ReadFromUDPAddrPort(nb)
		if err != nil {
			t.Fatal("no NAT-PMP announcement after a NAT-PMP mapping moved")
		}
		if from != server || nb[0] != 0 {
			continue
		}
		if r, err := pcp.ParseNATPMPResponse(nb[:n]); err != nil || r.Opcode != pcp.NATPMPOpExternalAddr || r.ExternalAddr != netip.MustParseAddr("203.0.113.1") {
			t.Errorf("announcement %+v %v", r, err)
		}
		break
	}
	// No PCP Mapping Update for it (nor more of the PCP mapping's).
	if r, _, ok := read(time.Second); ok {
		t.Errorf("a Mapping Update for a NAT-PMP mapping: %+v", r)
	}
}

// TestMappingUpdateOptions: the update of a mapping made for another host
// carries THIRD_PARTY, that of a filtered one its FILTER (RFC 6887 §14.2);
// the lease is what is left.
func TestMappingUpdateOptions(t *testing.T) {
	s, _, clock := newTestServer(t, nil)
	now := clock.now()
	m := mapping.Mapping{ID: 1, Origin: mapping.OriginPCP, Client: lanHost.Addr(), Proto: mapping.TCP,
		Internal: netip.MustParseAddrPort("192.0.2.101:8080"), External: netip.MustParseAddrPort("203.0.113.1:19080"),
		RemoteHost: netip.MustParseAddr("203.0.113.50"), RemotePort: 443, Nonce: testNonce, Expires: now.Add(600 * time.Second)}
	r, err := pcp.ParseResponse(s.mappingUpdateMsg(m, now))
	if err != nil {
		t.Fatal(err)
	}
	want := []pcp.Option{
		{Code: pcp.OptThirdParty, ThirdParty: netip.MustParseAddr("192.0.2.101")},
		{Code: pcp.OptFilter, Filter: pcp.Filter{Prefix: netip.MustParsePrefix("203.0.113.50/32"), RemotePort: 443}},
	}
	opts := cmp.Options{cmp.Comparer(func(a, b netip.Addr) bool { return a.Unmap() == b.Unmap() }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })}
	if diff := cmp.Diff(want, r.Options, opts); diff != "" {
		t.Errorf("options (-want +got):\n%s", diff)
	}
	if r.Lifetime != 600 || r.Epoch != 1000 || r.Map.ExternalPort != 19080 || r.Map.Nonce != pcp.Nonce(testNonce) {
		t.Errorf("update %+v %+v", r, r.Map)
	}
}

// runOnLoopback runs s until the test ends (its error fails the test) and
// returns its socket on 127.0.0.1.
func runOnLoopback(t *testing.T, s *Server) netip.AddrPort {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	})
	<-s.Ready()
	for _, a := range s.Addrs() {
		if a.Addr() == netip.MustParseAddr("127.0.0.1") {
			return a
		}
	}
	t.Fatalf("no socket on 127.0.0.1: %v", s.Addrs())
	return netip.AddrPort{}
}
