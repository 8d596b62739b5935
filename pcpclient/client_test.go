package pcpclient

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
)

// TestMapRenewDelete covers REQUIREMENTS 1, 2, 5: requests of at most 1100
// octets in multiples of 4 to the server port, the client's own source
// address in the header, one random nonce per mapping reused for renewal
// and delete.
func TestMapRenewDelete(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, nil)
	ctx := ctxT(t, 5*time.Second)

	res, err := c.Map(ctx, MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(netip.Addr{}, 8080), Lifetime: 3600, Description: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddrPort("203.0.113.1:8080"); res.External != want || res.Lifetime != 3600 || res.Server != srv.Addr() {
		t.Fatalf("got %+v, want external %v lifetime 3600", res, want)
	}
	if res.Nonce == (pcp.Nonce{}) {
		t.Fatal("zero nonce")
	}
	// Renewal with the assigned external as suggestion keeps the port.
	ren, err := c.Map(ctx, MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:8080"), SuggestedExternal: res.External, Lifetime: 3600, Nonce: res.Nonce})
	if err != nil || ren.External != res.External || ren.Nonce != res.Nonce {
		t.Fatalf("renew: %+v %v", ren, err)
	}
	if err := c.Delete(ctx, MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:8080")}); err != nil {
		t.Fatal(err)
	}
	if n := srv.Mappings(); n != 0 {
		t.Fatalf("server still holds %d mappings", n)
	}
	reqs := srv.Requests()
	if len(reqs) != 3 {
		t.Fatalf("server got %d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if len(r.Raw) > pcp.MaxSize || len(r.Raw)%4 != 0 {
			t.Errorf("request %d: %d octets", i, len(r.Raw))
		}
		if r.Raw[0] != pcp.Version {
			t.Errorf("request %d: version %d", i, r.Raw[0])
		}
		if r.PCP == nil || r.PCP.Map == nil {
			t.Fatalf("request %d did not parse", i)
		}
		// §8.1: the header carries the packet's source address, IPv4-mapped.
		if r.PCP.Client != r.From.Addr() || r.PCP.Client != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("request %d: client address %v, source %v", i, r.PCP.Client, r.From)
		}
		if !isMapped(r.Raw[8:24]) {
			t.Errorf("request %d: client address not IPv4-mapped: %x", i, r.Raw[8:24])
		}
		if r.PCP.Map.Nonce != res.Nonce {
			t.Errorf("request %d: nonce %x, want the mapping's %x", i, r.PCP.Map.Nonce, res.Nonce)
		}
	}
	if reqs[2].PCP.Lifetime != 0 {
		t.Error("delete did not ask lifetime 0")
	}
	// A new mapping gets a new nonce.
	res2, err := c.Map(ctx, MapRequest{Protocol: 17, Internal: netip.MustParseAddrPort("127.0.0.1:5000"), Lifetime: 60})
	if err != nil || res2.Nonce == res.Nonce {
		t.Fatalf("second mapping: %v, nonce reused %v", err, res2.Nonce == res.Nonce)
	}
	st := c.Status()
	if st.Sent != 4 || st.Received != 4 || st.Protocol != "pcp" || !st.Reachable || st.External != netip.MustParseAddr("203.0.113.1") {
		t.Errorf("status %+v", st)
	}
	// Deleting what the client does not know, without a nonce, is refused.
	if err := c.Delete(ctx, MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:9999")}); !errors.Is(err, ErrUnknownMapping) {
		t.Errorf("delete unknown: %v", err)
	}
}

func isMapped(b []byte) bool {
	for _, x := range b[:10] {
		if x != 0 {
			return false
		}
	}
	return b[10] == 0xff && b[11] == 0xff
}
