package upstream

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient"
	"github.com/pcpgw/pcpgw/pcpclient/pcptest"
)

func TestIsB4(t *testing.T) {
	for _, tc := range []struct {
		a          string
		b4, public bool
	}{
		{"192.0.0.2", true, false}, // OpenWrt's ds-<name> tunnel
		{"192.0.0.7", true, false},
		{"192.0.0.8", false, false}, // IETF protocol assignments: not public either
		{"192.0.0.1", true, false},  // the AFTR's end
		{"100.64.0.2", false, false},
		{"203.0.113.2", false, true},
		{"::ffff:192.0.0.2", true, false},
	} {
		a := netip.MustParseAddr(tc.a)
		if IsB4(a) != tc.b4 || IsPublic4(a) != tc.public {
			t.Errorf("%s: IsB4 %v IsPublic4 %v, want %v %v", a, IsB4(a), IsPublic4(a), tc.b4, tc.public)
		}
	}
}

// TestDetectB4: a WAN holding the B4 address 192.0.0.2 (DS-Lite) is not a
// public address (no kind local); no IGD is looked for on the softwire,
// and a PCP server that answers is taken.
func TestDetectB4(t *testing.T) {
	srv := newServer(t, pcptest.Silent)
	asked := false
	a := startAuto(t, Config{WANAddr: netip.MustParseAddr("192.0.0.2"), routers: []netip.AddrPort{srv.Addr()},
		DiscoverIGD: discover(func() *fakeIGD { asked = true; return newFakeIGD("http://192.0.0.1:5000/") })})
	if k := kindWithin(t, a, 5*time.Second); k != KindNone {
		t.Fatalf("kind %v, want none (only the AFTR's PCP server could help)", k)
	}
	if asked {
		t.Error("an IGD was looked for on the softwire")
	}
	pcpSrv := newServer(t, pcptest.Normal)
	a = startAuto(t, Config{WANAddr: netip.MustParseAddr("192.0.0.2"), routers: []netip.AddrPort{pcpSrv.Addr()}})
	if k := kindWithin(t, a, 5*time.Second); k != KindPCP {
		t.Fatalf("kind %v, want pcp", k)
	}
}

// TestPCPPrefix64: the PCP backend hands the NAT64's prefixes of the
// server's PREFIX64 options back with the mapping (an IPv4 port for an
// IPv6 host, THIRD_PARTY).
func TestPCPPrefix64(t *testing.T) {
	srv := newServer(t, pcptest.Normal)
	pfx := netip.MustParsePrefix("2001:db8:64::/96")
	srv.AddResponseOption(pcp.Option{Code: pcp.OptPrefix64, Prefix64: pcp.Prefix64{Prefix: pfx}})
	b, err := NewPCP(pcpclient.Config{Servers: []netip.AddrPort{srv.Addr()}, IRT: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := b.Map(ctx, MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:9000"), Lifetime: 600, Prefix64: true})
	if err != nil || len(res.Prefix64) != 1 || res.Prefix64[0] != pfx {
		t.Fatalf("Map = %+v, %v; want the prefix %v", res, err, pfx)
	}
}
