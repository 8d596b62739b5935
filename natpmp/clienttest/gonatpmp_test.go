package clienttest

import (
	"net"
	"net/netip"
	"testing"
	"time"

	natpmp "github.com/jackpal/go-nat-pmp"
	"github.com/pcpgw/pcpgw/internal/lab"
)

// TestGoNATPMP: github.com/jackpal/go-nat-pmp on the LAN host learns the
// provider's address 203.0.113.1 from pcpgw and maps a TCP and a UDP port
// that namespace net reaches; a delete answers external port 0.
func TestGoNATPMP(t *testing.T) {
	l, _ := startLab(t)
	serve(t, l, "tcp", 8095)
	serve(t, l, "udp", 8096)
	c := natpmp.NewClientWithTimeout(net.IP(cpeLAN.AsSlice()), 5*time.Second)
	// Every call makes its socket while running: inside LAN.Do it is the
	// LAN host's.
	var ext *natpmp.GetExternalAddressResult
	lab.Eventually(t, 20*time.Second, func() bool {
		var err error
		l.LAN.Do(t, func() { ext, err = c.GetExternalAddress() })
		return err == nil && netip.AddrFrom4(ext.ExternalIPAddress) == cgnPublic
	}, "go-nat-pmp never got the provider's address %v: %+v", cgnPublic, ext)

	for _, tc := range []struct {
		proto    string
		internal int
	}{{"tcp", 8095}, {"udp", 8096}} {
		var r *natpmp.AddPortMappingResult
		var err error
		l.LAN.Do(t, func() { r, err = c.AddPortMapping(tc.proto, tc.internal, tc.internal+10000, 3600) })
		if err != nil {
			t.Fatalf("AddPortMapping %s: %v", tc.proto, err)
		}
		if int(r.InternalPort) != tc.internal || r.MappedExternalPort == 0 || r.PortMappingLifetimeInSeconds == 0 || r.PortMappingLifetimeInSeconds > 3600 {
			t.Fatalf("AddPortMapping %s: %+v", tc.proto, r)
		}
		t.Logf("go-nat-pmp %s %d -> %v:%d for %d s", tc.proto, tc.internal, cgnPublic, r.MappedExternalPort, r.PortMappingLifetimeInSeconds)
		if !reached(t, l, tc.proto, netip.AddrPortFrom(cgnPublic, r.MappedExternalPort), uint16(tc.internal)) {
			t.Errorf("%s %v:%d from net does not reach the LAN host's %d", tc.proto, cgnPublic, r.MappedExternalPort, tc.internal)
		}
		l.LAN.Do(t, func() { r, err = c.AddPortMapping(tc.proto, tc.internal, 0, 0) })
		if err != nil || r.MappedExternalPort != 0 || r.PortMappingLifetimeInSeconds != 0 {
			t.Errorf("delete %s: %+v %v", tc.proto, r, err)
		}
	}
}
