package lab

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestNAT64Lab: with a forward made at the NAT64, an IPv4 host on the
// internet reaches an IPv6-only listener of the LAN host through tayga
// (cpe routes IPv6 without a firewall here); without it, it does not.
func TestNAT64Lab(t *testing.T) {
	t.Parallel()
	RequireTayga(t)
	l := New(t, Options{})
	host := netip.MustParseAddr(LANHost6)
	n := l.StartNAT64(t, NAT64Options{Hosts: []netip.Addr{host}})
	var ln net.Listener
	var err error
	l.LAN.Do(t, func() { ln, err = net.Listen("tcp6", "["+LANHost6+"]:9000") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	from := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			from <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	dial := func() error {
		var err error
		l.Net.Do(t, func() {
			var c net.Conn
			if c, err = net.DialTimeout("tcp4", CGNPublic4+":40000", 700*time.Millisecond); err == nil {
				c.Close()
			}
		})
		return err
	}
	if dial() == nil {
		t.Fatal("reached without a forward at the NAT64")
	}
	if err := n.Forward(6, 40000, netip.AddrPortFrom(host, 9000), true); err != nil {
		t.Fatal(err)
	}
	if err := dial(); err != nil {
		t.Fatalf("through the NAT64: %v\n%s", err, n.Forwards(t))
	}
	// The peer arrives as its IPv4 address in the NAT64's prefix.
	if got, want := <-from, "[2001:db8:64::cb00:7132]"; len(got) < len(want) || got[:len(want)] != want {
		t.Errorf("peer %s, want %s (203.0.113.50 in %s)", got, want, NAT64Prefix)
	}
	if err := n.Forward(6, 40000, netip.AddrPortFrom(host, 9000), false); err != nil {
		t.Fatal(err)
	}
	if dial() == nil {
		t.Error("reached after the forward was removed")
	}
	if err := n.Forward(6, 1, netip.MustParseAddrPort("[2001:db8:1::99]:1"), true); err == nil {
		t.Error("a host tayga does not map accepted")
	}
}
