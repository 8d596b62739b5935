package clients

import (
	"net"
	"net/netip"
	"testing"
	"time"

	natpmp "github.com/jackpal/go-nat-pmp"
	"github.com/pcpgw/pcpgw/internal/lab"
)

// TestGoNATPMP drives pcpgw with github.com/jackpal/go-nat-pmp from the
// LAN host, miniupnpd being the provider's CGN (REQUIREMENTS 20, 21, 24,
// 25): GetExternalAddress answers the CGN's public address 203.0.113.1,
// not the CPE's 100.64.0.2; AddPortMapping for TCP and for UDP returns a
// mapped external port that a host in namespace net reaches at
// 203.0.113.1:port (the LAN service sees the net host's address); asking
// again for the same internal port returns the same mapping; lifetime 0
// deletes the mapping, pcpgw's table and the CGN's DNAT both, and net no
// longer reaches the service.
//
// The client dials a new UDP socket for every call, so every call runs in
// l.LAN.Do: its socket then belongs to the lan namespace.
func TestGoNATPMP(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	c := natpmp.NewClientWithTimeout(net.IP(cpeLAN.AsSlice()), 10*time.Second)
	inLAN := func(f func()) { g.LAN.Do(t, f) }

	var ext *natpmp.GetExternalAddressResult
	var err error
	inLAN(func() { ext, err = c.GetExternalAddress() })
	if err != nil {
		t.Fatalf("GetExternalAddress: %v", err)
	}
	if got := netip.AddrFrom4(ext.ExternalIPAddress); got != cgnPublic {
		t.Fatalf("GetExternalAddress = %v, want the CGN's public address %v", got, cgnPublic)
	}
	epoch := ext.SecondsSinceStartOfEpoc

	services := []struct {
		proto    string
		internal uint16
	}{{"tcp", 8080}, {"udp", 8081}}
	external := map[string]uint16{}
	for _, sv := range services {
		svc := serve(t, g.Lab, sv.proto, sv.internal)
		var r *natpmp.AddPortMappingResult
		inLAN(func() { r, err = c.AddPortMapping(sv.proto, int(sv.internal), int(sv.internal)+10000, 3600) })
		if err != nil {
			t.Fatalf("AddPortMapping %s %d: %v", sv.proto, sv.internal, err)
		}
		t.Logf("go-nat-pmp: %s %d mapped to external port %d for %d s (epoch %d s)",
			sv.proto, r.InternalPort, r.MappedExternalPort, r.PortMappingLifetimeInSeconds, r.SecondsSinceStartOfEpoc)
		if r.InternalPort != sv.internal || r.MappedExternalPort == 0 ||
			r.PortMappingLifetimeInSeconds == 0 || r.PortMappingLifetimeInSeconds > 3600 {
			t.Fatalf("AddPortMapping %s %d = %+v", sv.proto, sv.internal, *r)
		}
		if r.SecondsSinceStartOfEpoc < epoch {
			t.Errorf("epoch went back from %d to %d s", epoch, r.SecondsSinceStartOfEpoc)
		}
		epoch = r.SecondsSinceStartOfEpoc
		external[sv.proto] = r.MappedExternalPort

		addr := netip.AddrPortFrom(cgnPublic, r.MappedExternalPort)
		lab.Eventually(t, 10*time.Second, func() bool { return reaches(t, g, sv.proto, addr, sv.internal) },
			"%s %v from net never reached the LAN host's port %d", sv.proto, addr, sv.internal)
		if !svc.sawFrom(netHost) {
			t.Errorf("the LAN service on %s %d was not reached from the net host %v", sv.proto, sv.internal, netHost)
		}
		if row, ok := g.row(t, sv.proto, sv.internal); !ok || row.Origin != "natpmp" {
			t.Errorf("pcpgw's table for %s %d: %+v (found %v), want a natpmp mapping", sv.proto, sv.internal, row, ok)
		}

		// Asking again for the same internal port renews the same mapping.
		inLAN(func() { r, err = c.AddPortMapping(sv.proto, int(sv.internal), 0, 3600) })
		if err != nil {
			t.Fatalf("renewing %s %d: %v", sv.proto, sv.internal, err)
		}
		if r.MappedExternalPort != external[sv.proto] {
			t.Errorf("renewing %s %d: external port %d, want the mapping's %d", sv.proto, sv.internal, r.MappedExternalPort, external[sv.proto])
		}
	}
	if n := g.cgn.DNATCount(t); n < 2 {
		t.Errorf("the CGN holds %d DNAT rules, want the TCP and UDP mappings", n)
	}

	// Lifetime 0 deletes (RFC 6886 §3.4: suggested external port 0 too).
	before := g.cgn.DNATCount(t)
	for _, sv := range services {
		var r *natpmp.AddPortMappingResult
		inLAN(func() { r, err = c.AddPortMapping(sv.proto, int(sv.internal), 0, 0) })
		if err != nil {
			t.Fatalf("deleting %s %d: %v", sv.proto, sv.internal, err)
		}
		if r.InternalPort != sv.internal || r.MappedExternalPort != 0 || r.PortMappingLifetimeInSeconds != 0 {
			t.Errorf("deleting %s %d = %+v, want internal port %d, external port 0, lifetime 0", sv.proto, sv.internal, *r, sv.internal)
		}
		if row, ok := g.row(t, sv.proto, sv.internal); ok {
			t.Errorf("pcpgw still holds %s %d after the delete: %+v", sv.proto, sv.internal, row)
		}
	}
	lab.Eventually(t, 10*time.Second, func() bool { return g.cgn.DNATCount(t) <= before-2 },
		"the CGN still holds the deleted mappings (%d DNAT rules, %d before)", g.cgn.DNATCount(t), before)
	for _, sv := range services {
		addr := netip.AddrPortFrom(cgnPublic, external[sv.proto])
		if reaches(t, g, sv.proto, addr, sv.internal) {
			t.Errorf("%s %v from net still reaches the LAN host's port %d after the delete", sv.proto, addr, sv.internal)
		}
	}
}
