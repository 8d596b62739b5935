package firewall_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/internal/lab"
)

// TestOutbound (PCP PEER, RFC 6887 §12): an Outbound makes the first
// packet of a flow from the LAN host to the remote leave the WAN with the
// chosen source (WAN address and port), UDP and TCP; FlowSource reads a
// flow's source from conntrack (with NAT, or without: the LAN host's own),
// ErrNotFound for a flow that never was; deleting the Outbound leaves the
// flow it started as it is, and a new flow is not translated.
func TestOutbound(t *testing.T) {
	l, fw := setup(t, false)
	ctx := context.Background()
	isp := netip.MustParseAddr(lab.CGN4)
	wan := netip.MustParseAddr(lab.CPEWAN4)
	host := netip.MustParseAddr(lab.LANHost4)

	// A UDP and a TCP listener in isp that tell the source they saw.
	var pc net.PacketConn
	var ln net.Listener
	l.ISP.Do(t, func() {
		var err error
		if pc, err = net.ListenPacket("udp4", lab.CGN4+":9000"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp4", lab.CGN4+":9000"); err != nil {
			t.Fatal(err)
		}
	})
	defer pc.Close()
	defer ln.Close()
	seenTCP := make(chan netip.AddrPort, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			seenTCP <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
			c.Close()
		}
	}()
	sendUDP := func(from uint16) netip.AddrPort {
		t.Helper()
		var c *net.UDPConn
		var err error
		l.LAN.Do(t, func() {
			c, err = net.DialUDP("udp4", &net.UDPAddr{IP: host.AsSlice(), Port: int(from)}, &net.UDPAddr{IP: isp.AsSlice(), Port: 9000})
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 64)
		_, src, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("nothing from the LAN host's port %d: %v", from, err)
		}
		return src.(*net.UDPAddr).AddrPort()
	}
	to := netip.AddrPortFrom(isp, 9000)
	o := firewall.Outbound{Proto: udp, From: netip.AddrPortFrom(host, 40000), To: to, Via: netip.AddrPortFrom(wan, 45000), Timeout: time.Minute}
	ot := firewall.Outbound{Proto: tcp, From: netip.AddrPortFrom(host, 40002), To: to, Via: netip.AddrPortFrom(wan, 45002), Timeout: time.Minute}
	apply(t, fw, firewall.Change{AddOutbound: []firewall.Outbound{o, ot}})

	if got := sendUDP(40000); got != o.Via {
		t.Errorf("UDP flow seen from %v, want %v", got, o.Via)
	}
	if got, err := fw.FlowSource(ctx, udp, o.From, to); err != nil || got != o.Via {
		t.Errorf("FlowSource of the UDP flow: %v %v, want %v", got, err, o.Via)
	}
	var c net.Conn
	var err error
	l.LAN.Do(t, func() {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: host.AsSlice(), Port: 40002}, Timeout: 3 * time.Second}
		c, err = d.Dial("tcp4", to.String())
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-seenTCP:
		if got != ot.Via {
			t.Errorf("TCP flow seen from %v, want %v", got, ot.Via)
		}
	case <-time.After(3 * time.Second):
		t.Error("no TCP connection in isp")
	}
	if got, err := fw.FlowSource(ctx, tcp, ot.From, to); err != nil || got != ot.Via {
		t.Errorf("FlowSource of the TCP flow: %v %v, want %v", got, err, ot.Via)
	}
	c.Close()

	// A flow without an Outbound keeps its source (the lab's CPE does no
	// other NAT): FlowSource says so.
	plain := netip.AddrPortFrom(host, 40001)
	if got := sendUDP(40001); got != plain {
		t.Errorf("plain flow seen from %v", got)
	}
	if got, err := fw.FlowSource(ctx, udp, plain, to); err != nil || got != plain {
		t.Errorf("FlowSource of the plain flow: %v %v", got, err)
	}
	if _, err := fw.FlowSource(ctx, udp, netip.AddrPortFrom(host, 40009), to); !errors.Is(err, firewall.ErrNotFound) {
		t.Errorf("FlowSource of no flow: %v, want ErrNotFound", err)
	}

	// Deleted: the flow it started keeps its NAT (conntrack); a new
	// flow from another port is not translated.
	apply(t, fw, firewall.Change{DelOutbound: []firewall.Outbound{o, ot}})
	if got := sendUDP(40000); got != o.Via {
		t.Errorf("the started flow after the delete: from %v, want %v", got, o.Via)
	}
	if err := fw.Sync(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.FlowSource(ctx, udp, netip.AddrPortFrom(netip.MustParseAddr("192.0.2.100"), 40000), netip.MustParseAddrPort("100.64.0.1:9000")); err != nil {
		t.Error(err)
	}
	if err := (firewall.Outbound{Proto: udp, From: o.From, To: to}).Validate(); !errors.Is(err, firewall.ErrInvalid) {
		t.Errorf("Outbound without Via: %v", err)
	}
}
