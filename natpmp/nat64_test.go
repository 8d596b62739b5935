package natpmp

import (
	"context"
	"net/netip"
	"testing"

	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/pcp"
)

// TestPCPNAT64: an IPv6 host's MAP with the all-zeros IPv4-mapped
// suggested external address asks the core for an IPv4 port (not a
// pinhole), and the answer carries the IPv4 external address and port and
// the NAT64's prefix (PREFIX64, RFC 7225).
func TestPCPNAT64(t *testing.T) {
	s, core, clock := newTestServer(t, nil)
	req := pcp.Request{Version: pcp.Version, Opcode: pcp.OpMap, Lifetime: 3600, Client: lanHost6.Addr(),
		Map:     &pcp.Map{Nonce: pcp.Nonce{1}, Protocol: 6, InternalPort: 9000, ExternalAddr: netip.IPv4Unspecified()},
		Options: []pcp.Option{{Code: pcp.OptPrefix64, Prefix64: pcp.Prefix64{Prefix: netip.PrefixFrom(netip.IPv6Unspecified(), 96)}}}}
	out := s.handle(context.Background(), lanHost6, cpeLAN6, req.AppendMarshal(nil), clock.now())
	resp, err := pcp.ParseResponse(out)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Result != pcp.Success || resp.Map.ExternalAddr != netip.MustParseAddr("203.0.113.1") || resp.Map.ExternalPort != 9000 {
		t.Fatalf("response %v %+v", resp.Result, resp.Map)
	}
	var got []netip.Prefix
	for _, o := range resp.Options {
		if o.Code == pcp.OptPrefix64 {
			got = append(got, o.Prefix64.Prefix)
		}
	}
	if len(got) != 1 || got[0] != netip.MustParsePrefix("2001:db8:64::/96") {
		t.Errorf("PREFIX64 in the answer: %v", got)
	}
	last := func() mapping.Request {
		core.mu.Lock()
		defer core.mu.Unlock()
		return core.requests[len(core.requests)-1]
	}
	if r := last(); r.ExternalAddr != netip.IPv4Unspecified() || r.Internal != netip.AddrPortFrom(lanHost6.Addr(), 9000) {
		t.Errorf("core request %+v", r)
	}
	// The plain pinhole request (IPv6 zeros) stays a pinhole.
	req.Map.ExternalAddr, req.Options = netip.IPv6Unspecified(), nil
	if _, err := pcp.ParseResponse(s.handle(context.Background(), lanHost6, cpeLAN6, req.AppendMarshal(nil), clock.now())); err != nil {
		t.Fatal(err)
	}
	if r := last(); r.ExternalAddr.IsValid() {
		t.Errorf("pinhole request passed a suggested address %v", r.ExternalAddr)
	}
}
