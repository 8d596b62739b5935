package e2e

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/pcp"
)

// TestPEERRelayed (issue 17.4, RFC 7648 §3, RFC 6887 §12): a LAN PCP
// client's PEER goes through pcpgw to the provider's PCP server (miniupnpd
// 2.3.9, built with PCP-PEER): pcpgw fixes the flow's WAN source on the
// CPE and relays a PEER for it; the client is answered the outermost
// endpoint, and the internet host then sees the flow (TCP and UDP) come
// from exactly that endpoint (also when the CPE's WAN port of the LAN
// port is taken by a mapping and another is chosen). For a flow that existed before its PEER
// (masqueraded by the router's own firewall), pcpgw relays the source the
// flow has, and the flow keeps coming from where it came from.
func TestPEERRelayed(t *testing.T) {
	l, _, _ := startNAT444(t, lab.MiniupnpdOptions{})
	netHost := netip.MustParseAddr(lab.NetHost4)
	remote := netip.AddrPortFrom(netHost, 8099)

	// The internet host tells the source of every connection and datagram.
	var ln net.Listener
	var pc net.PacketConn
	var err error
	l.Net.Do(t, func() {
		if ln, err = net.Listen("tcp4", remote.String()); err != nil {
			return
		}
		pc, err = net.ListenPacket("udp4", remote.String())
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	defer pc.Close()
	tcpSeen := make(chan netip.AddrPort, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tcpSeen <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
			c.Close()
		}
	}()
	udpFrom := func() netip.AddrPort {
		t.Helper()
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no datagram at the internet host: %v", err)
		}
		return from.(*net.UDPAddr).AddrPort()
	}

	peer := func(proto uint8, iport uint16) pcp.Response {
		t.Helper()
		req := pcp.Request{Opcode: pcp.OpPeer, Lifetime: 600, Client: npLANHost, Peer: &pcp.Peer{
			Map:        pcp.Map{Nonce: pcp.Nonce{0x9e, byte(iport)}, Protocol: proto, InternalPort: iport, ExternalAddr: netip.IPv4Unspecified()},
			RemotePort: remote.Port(), RemoteAddr: netHost}}
		var r pcp.Response
		lab.Eventually(t, 15*time.Second, func() bool {
			var err error
			r, err = pcpAsk(t, l.LAN, npCPELAN, req)
			return err == nil && r.Result != pcp.NetworkFailure
		}, "PEER never answered: %+v", r)
		if r.Result != pcp.Success || r.Opcode != pcp.OpPeer || r.Peer == nil || r.Peer.Map.Nonce != req.Peer.Map.Nonce ||
			r.Peer.RemotePort != remote.Port() || r.Peer.RemoteAddr.Unmap() != netHost || r.Peer.Map.ExternalAddr.Unmap() != cgnPublic || r.Lifetime == 0 {
			t.Fatalf("PEER answer %+v %+v", r, r.Peer)
		}
		return r
	}
	ext := func(r pcp.Response) netip.AddrPort {
		return netip.AddrPortFrom(r.Peer.Map.ExternalAddr.Unmap(), r.Peer.Map.ExternalPort)
	}

	// TCP: the PEER before the flow. A NAT-PMP mapping holds the CPE's
	// WAN port 40000, so the flow from the LAN port 40000 gets another.
	if r := natpmpMapTCP(t, l, 40000, 40000, 600); r.ExternalPort != 40000 {
		t.Fatalf("NAT-PMP mapping on %d", r.ExternalPort)
	}
	rt := peer(6, 40000)
	t.Logf("TCP PEER: %v, lifetime %d", ext(rt), rt.Lifetime)
	var c net.Conn
	l.LAN.Do(t, func() {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: npLANHost.AsSlice(), Port: 40000}, Timeout: 5 * time.Second}
		c, err = d.Dial("tcp4", remote.String())
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case got := <-tcpSeen:
		if got != ext(rt) {
			t.Errorf("the TCP flow reached the internet from %v, the PEER said %v", got, ext(rt))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no TCP connection at the internet host")
	}

	// UDP likewise.
	ru := peer(17, 40001)
	var uc *net.UDPConn
	l.LAN.Do(t, func() {
		uc, err = net.DialUDP("udp4", &net.UDPAddr{IP: npLANHost.AsSlice(), Port: 40001}, net.UDPAddrFromAddrPort(remote))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.Write([]byte("hi"))
	if got := udpFrom(); got != ext(ru) {
		t.Errorf("the UDP flow reached the internet from %v, the PEER said %v", got, ext(ru))
	}

	// A flow that exists before its PEER, masqueraded by the router's own
	// firewall (as fw4 does): it keeps its source; the PEER tells it.
	nat := filepath.Join(l.Dir, "cpe-masq.nft")
	if err := os.WriteFile(nat, []byte("table ip labmasq {\nchain postrouting {\ntype nat hook postrouting priority srcnat; policy accept;\noifname \""+l.CPEWANIf+"\" masquerade\n}\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l.CPE.Run(t, "nft", "-f", nat)
	var ec *net.UDPConn
	l.LAN.Do(t, func() {
		ec, err = net.DialUDP("udp4", &net.UDPAddr{IP: npLANHost.AsSlice(), Port: 40002}, net.UDPAddrFromAddrPort(remote))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	ec.Write([]byte("first"))
	before := udpFrom()
	re := peer(17, 40002)
	ec.Write([]byte("second"))
	after := udpFrom()
	t.Logf("existing UDP flow from %v; PEER said %v; then from %v", before, ext(re), after)
	if after != before {
		t.Errorf("the existing flow's source changed: %v, then %v", before, after)
	}
	if ext(re) != after {
		t.Errorf("PEER for the existing flow said %v, it comes from %v", ext(re), after)
	}
}
