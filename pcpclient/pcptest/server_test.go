package pcptest

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
)

func exchange(t *testing.T, c *net.UDPConn, to netip.AddrPort, b []byte) []byte {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// TestServer: the fake answers MAP like a NAT, deletes with the right
// nonce only, counts what it got, and serves NAT-PMP in NATPMPOnly mode.
func TestServer(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	nonce := pcp.Nonce{1, 2, 3}
	req := pcp.Request{Opcode: pcp.OpMap, Lifetime: 100000, Client: local, Map: &pcp.Map{Nonce: nonce, Protocol: 6, InternalPort: 80, ExternalAddr: netip.IPv4Unspecified()}}
	resp, err := pcp.ParseResponse(exchange(t, c, s.Addr(), req.AppendMarshal(nil)))
	if err != nil || resp.Result != pcp.Success || resp.Lifetime != 86400 || resp.Map.ExternalPort != 80 || resp.Map.Nonce != nonce {
		t.Fatalf("map: %+v %v", resp, err)
	}
	del := req
	del.Lifetime = 0
	m := *req.Map
	m.Nonce[0] = 9
	del.Map = &m
	resp, _ = pcp.ParseResponse(exchange(t, c, s.Addr(), del.AppendMarshal(nil)))
	if resp.Result != pcp.NotAuthorized {
		t.Errorf("delete with another nonce: %v", resp.Result)
	}
	del.Map = req.Map
	resp, _ = pcp.ParseResponse(exchange(t, c, s.Addr(), del.AppendMarshal(nil)))
	if resp.Result != pcp.Success || s.Mappings() != 0 {
		t.Errorf("delete: %v, %d left", resp.Result, s.Mappings())
	}
	resp, _ = pcp.ParseResponse(exchange(t, c, s.Addr(), del.AppendMarshal(nil)))
	if resp.Result != pcp.NoResources {
		t.Errorf("delete again: %v", resp.Result)
	}
	bad := req
	bad.Client = netip.MustParseAddr("192.0.2.9")
	resp, _ = pcp.ParseResponse(exchange(t, c, s.Addr(), bad.AppendMarshal(nil)))
	if resp.Result != pcp.AddressMismatch {
		t.Errorf("address mismatch: %v", resp.Result)
	}
	if s.Received() != 5 || len(s.Requests()) != 5 || s.Requests()[0].PCP == nil {
		t.Errorf("received %d", s.Received())
	}

	s.SetMode(NATPMPOnly)
	b := exchange(t, c, s.Addr(), req.AppendMarshal(nil))
	if _, err := pcp.ParseResponse(b); err != pcp.ErrNATPMPOnly {
		t.Errorf("PCP to NAT-PMP-only: %v", err)
	}
	nr, err := pcp.ParseNATPMPResponse(exchange(t, c, s.Addr(), (&pcp.NATPMPRequest{Opcode: 2, InternalPort: 80, SuggestedExternalPort: 8080, Lifetime: 60}).AppendMarshal(nil)))
	if err != nil || nr.ExternalPort != 8080 || nr.Lifetime != 60 {
		t.Errorf("NAT-PMP map: %+v %v", nr, err)
	}
	nr, err = pcp.ParseNATPMPResponse(exchange(t, c, s.Addr(), (&pcp.NATPMPRequest{}).AppendMarshal(nil)))
	if err != nil || nr.ExternalAddr != netip.MustParseAddr("203.0.113.1") {
		t.Errorf("NAT-PMP address: %+v %v", nr, err)
	}
	s.Forget()
	if s.Mappings() != 0 {
		t.Error("Forget kept mappings")
	}
	s.Close()
	s.Close()
}

// TestOnMapIPv6: a server on an IPv6 address tells the hook each MAP it
// makes and deletes, with THIRD_PARTY's host as the internal address.
func TestOnMapIPv6(t *testing.T) {
	s, err := NewAt(netip.MustParseAddrPort("[::1]:0"))
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer s.Close()
	var events []MapEvent
	done := make(chan struct{}, 4)
	s.SetOnMap(func(ev MapEvent) { events = append(events, ev); done <- struct{}{} })
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	host := netip.MustParseAddr("2001:db8:1::100")
	req := pcp.Request{Opcode: pcp.OpMap, Lifetime: 600, Client: netip.IPv6Loopback(),
		Map:     &pcp.Map{Nonce: pcp.Nonce{1}, Protocol: 6, InternalPort: 9000, ExternalAddr: netip.IPv4Unspecified()},
		Options: []pcp.Option{{Code: pcp.OptThirdParty, ThirdParty: host}}}
	if resp, err := pcp.ParseResponse(exchange(t, c, s.Addr(), req.AppendMarshal(nil))); err != nil || resp.Result != pcp.Success {
		t.Fatalf("map: %+v %v", resp, err)
	}
	<-done
	req.Lifetime = 0
	exchange(t, c, s.Addr(), req.AppendMarshal(nil))
	<-done
	want := []MapEvent{
		{Proto: 6, Internal: netip.AddrPortFrom(host, 9000), External: netip.MustParseAddrPort("203.0.113.1:9000"), Lifetime: 600},
		{Proto: 6, Internal: netip.AddrPortFrom(host, 9000), External: netip.MustParseAddrPort("203.0.113.1:9000"), Lifetime: 0},
	}
	if len(events) != 2 || events[0] != want[0] || events[1] != want[1] {
		t.Errorf("events %+v, want %+v", events, want)
	}
}
