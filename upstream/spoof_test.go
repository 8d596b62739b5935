package upstream

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient"
	"github.com/pcpgw/pcpgw/pcpclient/pcptest"
)

// Issue 18 §2: a version-0 UNSUPP_VERSION carries no nonce; a forged one
// must not make detection pick NAT-PMP.

// firstAnnounce returns where srv's first PCP ANNOUNCE request came from
// (the PCP probe's socket), waiting for it at most d.
func firstAnnounce(t *testing.T, srv *pcptest.Server, d time.Duration) netip.AddrPort {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, r := range srv.Requests() {
			if r.PCP != nil && r.PCP.Opcode == pcp.OpAnnounce {
				return r.From
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no PCP probe")
	return netip.AddrPort{}
}

// TestDetectSpoofedUnsuppVersion (review finding): detection at a server
// that speaks PCP and NAT-PMP (miniupnpd) gets one forged UNSUPP_VERSION
// to its PCP probe while that is outstanding (the server slow to answer
// at first): it picks PCP. The PCP probe used to end at once with
// ErrNATPMPOnly, and that alone picked NAT-PMP.
func TestDetectSpoofedUnsuppVersion(t *testing.T) {
	srv := newServer(t, pcptest.Silent) // slow: nothing answered yet
	srv.SetAlsoNATPMP(true)
	a := startAuto(t, Config{routers: []netip.AddrPort{srv.Addr()}, ProbeTimeout: 3 * time.Second})
	probe := firstAnnounce(t, srv, 2*time.Second)
	srv.SendRaw(probe, []byte{0, 0x80, 0, 1, 0, 0, 0, 7}) // forged: version 0, ANNOUNCE, UNSUPP_VERSION
	srv.SetMode(pcptest.Normal)                           // the server answers from now on, PCP and NAT-PMP
	if k := kindWithin(t, a, 5*time.Second); k != KindPCP {
		t.Fatalf("kind %v after one forged UNSUPP_VERSION, want pcp", k)
	}
}

// TestDetectB4NATPMPOnly: in DS-Lite (WAN 192.0.0.2) the CPE has no IPv4
// address of its own for a NAT-PMP gateway to map, and no NAT-PMP probe
// runs: a server that the PCP probe finds to speak only NAT-PMP
// (UNSUPP_VERSION, then the probe's own NAT-PMP check answered, then no
// PCP answer) is not taken as a NAT-PMP gateway. It used to be, on the
// PCP probe's word alone.
func TestDetectB4NATPMPOnly(t *testing.T) {
	srv := newServer(t, pcptest.NATPMPOnly)
	a := startAuto(t, Config{WANAddr: netip.MustParseAddr("192.0.0.2"), routers: []netip.AddrPort{srv.Addr()}, ProbeTimeout: 3 * time.Second})
	if k := kindWithin(t, a, 6*time.Second); k != KindNone {
		t.Fatalf("kind %v in DS-Lite at a NAT-PMP-only server, want none", k)
	}
	// The PCP probe did find the server NAT-PMP-only: it sent its check
	// (opcode 0) and its ANNOUNCE again after the check's answer.
	var announces, checks int
	for _, r := range srv.Requests() {
		switch {
		case r.PCP != nil && r.PCP.Opcode == pcp.OpAnnounce:
			announces++
		case r.NATPMP != nil && r.NATPMP.Opcode == pcp.NATPMPOpExternalAddr:
			checks++
		}
	}
	if announces < 2 || checks != 1 {
		t.Errorf("%d ANNOUNCE requests and %d NAT-PMP checks, want the probe's check and its ANNOUNCE again", announces, checks)
	}
}

// TestNamedPCPServerNotTurnedNATPMP (review finding): a PCP server named by
// the configuration (or DHCP, the AFTR) that does not answer PCP yet while
// a NAT-PMP external-address answer comes from its address (forged: NAT-PMP
// answers carry no nonce) stays a PCP upstream: its client may fall back
// to NAT-PMP on its own exchange only. Before, the NAT-PMP probe's answer
// picked a NAT-PMP gateway for it.
func TestNamedPCPServerNotTurnedNATPMP(t *testing.T) {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() { // silent to PCP; answers NAT-PMP opcode 0
		buf := make([]byte, 1100)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n >= 2 && buf[0] == pcp.VersionNATPMP && buf[1] == pcp.NATPMPOpExternalAddr {
				r := pcp.NATPMPResponse{Opcode: pcp.NATPMPOpExternalAddr, Result: pcp.NATPMPSuccess, Epoch: 100, ExternalAddr: netip.MustParseAddr("198.51.100.7")}
				pc.WriteToUDPAddrPort(r.AppendMarshal(nil), from)
			}
		}
	}()
	server := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	a := startAuto(t, Config{PCP: pcpclient.Config{Servers: []netip.AddrPort{server}}, ProbeTimeout: time.Second})
	if k := waitKindEvent(t, a, KindPCP); k == 0 {
		t.Fatal("no generation")
	}
	if in := a.Info(); in.Kind != KindPCP || in.External == netip.MustParseAddr("198.51.100.7") {
		t.Errorf("upstream %+v: want the named PCP server kept as PCP, no address from the NAT-PMP answer", in)
	}
}
