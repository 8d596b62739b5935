package mcast_test

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/internal/mcast"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

func TestListenGroupNonMulticast(t *testing.T) {
	if _, err := mcast.ListenGroup(netip.MustParseAddrPort("192.0.2.1:5350"), nil); err == nil {
		t.Error("accepted a unicast address")
	}
	if _, err := mcast.ListenGroup(netip.MustParseAddrPort("224.0.0.1:5350"), nil); err == nil {
		t.Error("accepted no interface")
	}
}

// TestListenGroup: in the lab, a socket from ListenGroup on cpe's WAN gets
// the group's datagrams from isp, not unicast ones to cpe's WAN address,
// and the kernel shows it bound to the group, not to a wildcard.
func TestListenGroup(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	for _, tc := range []struct {
		group, unicast string
		network        string
	}{
		{"224.0.0.1:15350", "100.64.0.2:15350", "udp4"},
		{"[ff02::1]:15351", "[2001:db8:ff::2]:15351", "udp6"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			var c *net.UDPConn
			var err error
			l.CPE.Do(t, func() {
				ifi, e := net.InterfaceByName(l.CPEWANIf)
				if e != nil {
					err = e
					return
				}
				c, err = mcast.ListenGroup(netip.MustParseAddrPort(tc.group), []*net.Interface{ifi})
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			out := l.CPE.Run(t, "ss", "-H", "-lun")
			port := tc.group[strings.LastIndexByte(tc.group, ':'):]
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, port) && (strings.Contains(line, "0.0.0.0"+port) || strings.Contains(line, "*"+port) || strings.Contains(line, "[::]"+port)) {
					t.Errorf("wildcard socket: %s", line)
				}
			}
			send := func(to string) {
				l.ISP.Do(t, func() {
					var pc net.PacketConn
					pc, err = net.ListenPacket(tc.network, ":0")
					if err != nil {
						return
					}
					defer pc.Close()
					ifi, _ := net.InterfaceByName(l.ISPIf)
					dst := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(to))
					if tc.network == "udp4" {
						p := ipv4.NewPacketConn(pc)
						p.SetMulticastInterface(ifi)
						_, err = p.WriteTo([]byte(to), nil, dst)
					} else {
						p := ipv6.NewPacketConn(pc)
						p.SetMulticastInterface(ifi)
						_, err = p.WriteTo([]byte(to), nil, dst)
					}
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			send(tc.unicast)
			send(tc.group)
			buf := make([]byte, 100)
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("group datagram not received: %v", err)
			}
			if got := string(buf[:n]); strings.Contains(got, "100.64.0.2") || strings.Contains(got, "2001:db8:ff::2") {
				t.Errorf("received the unicast datagram %q", got)
			}
		})
	}
}
