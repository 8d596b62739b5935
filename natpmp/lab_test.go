package natpmp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/pcp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// TestLabNATPMPC runs the server (with the fake core) in the cpe namespace
// of the lab on the real LAN interface and port 5351, and drives it with
// the real natpmpc client from the lan namespace. A listener in the lan
// namespace on 224.0.0.1:5350 and [ff02::1]:5350 receives the
// announcements of the start: the NAT-PMP external address and the PCP
// ANNOUNCE, from the CPE's LAN addresses and port 5351. Privileged: it
// skips when not root (fails with PCPGW_E2E=1).
func TestLabNATPMPC(t *testing.T) {
	l := lab.New(t, lab.Options{Local: true, NoMiniupnpd: true})

	// The announcement listeners, in the lan namespace, before the server starts.
	var mc4 *net.UDPConn
	var mc6 *net.UDPConn
	l.LAN.Do(t, func() {
		ifi, err := net.InterfaceByName(l.LANIf)
		if err != nil {
			t.Fatal(err)
		}
		mc4, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero, Port: pcp.ClientPort})
		if err != nil {
			t.Fatal(err)
		}
		if err := ipv4.NewPacketConn(mc4).JoinGroup(ifi, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		mc6, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified, Port: pcp.ClientPort})
		if err != nil {
			t.Fatal(err)
		}
		if err := ipv6.NewPacketConn(mc6).JoinGroup(ifi, &net.UDPAddr{IP: net.ParseIP("ff02::1")}); err != nil {
			t.Fatal(err)
		}
	})
	defer mc4.Close()
	defer mc6.Close()

	core := newFakeCore(time.Now(), time.Now)
	s, err := New(Config{Core: core, Interfaces: []string{l.CPELANIf}, NATPMP: true, PCP: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		l.CPE.Do(t, func() { errc <- s.Run(ctx) })
	}()
	defer func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Error("Run:", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	}()
	lab.Eventually(t, 10*time.Second, func() bool {
		n4, n6 := 0, 0
		for _, a := range s.Addrs() {
			if a.Addr().Is4() {
				n4++
			} else if a.Addr().IsLinkLocalUnicast() {
				n6++
			}
		}
		return n4 > 0 && n6 > 0
	}, "server listening on %s (IPv4 and link-local)", l.CPELANIf)
	for _, a := range s.Addrs() {
		switch a.Addr().WithZone("") {
		case netip.MustParseAddr(lab.CPELAN4), netip.MustParseAddr(lab.CPELAN6):
		default:
			if !a.Addr().IsLinkLocalUnicast() || a.Addr().Zone() != l.CPELANIf {
				t.Errorf("listening on %v: not a LAN address", a)
			}
		}
		if a.Port() != pcp.ServerPort {
			t.Errorf("listening on %v: not port 5351", a)
		}
	}

	// Announcements of the start.
	readAnnouncement := func(c *net.UDPConn) (netip.AddrPort, []byte) {
		t.Helper()
		buf := make([]byte, 1500)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no announcement: %v", err)
		}
		return from, buf[:n]
	}
	got := map[string]bool{}
	for range 4 {
		from, b := readAnnouncement(mc4)
		if from != netip.MustParseAddrPort(lab.CPELAN4+":5351") {
			t.Errorf("IPv4 announcement from %v", from)
		}
		if b[0] == pcp.VersionNATPMP {
			r, err := pcp.ParseNATPMPResponse(b)
			if err != nil || r.ExternalAddr != netip.MustParseAddr(lab.CGNPublic4) {
				t.Errorf("NAT-PMP announcement %x: %+v %v", b, r, err)
			}
			got["natpmp"] = true
		} else {
			r, err := pcp.ParseResponse(b)
			if err != nil || r.Opcode != pcp.OpAnnounce || r.Result != pcp.Success {
				t.Errorf("PCP announcement %x: %+v %v", b, r, err)
			}
			got["pcp4"] = true
		}
		if got["natpmp"] && got["pcp4"] {
			break
		}
	}
	from, b := readAnnouncement(mc6)
	if !from.Addr().IsLinkLocalUnicast() || from.Port() != pcp.ServerPort {
		t.Errorf("IPv6 announcement from %v", from)
	}
	if r, err := pcp.ParseResponse(b); err != nil || r.Opcode != pcp.OpAnnounce {
		t.Errorf("IPv6 PCP announcement %x: %+v %v", b, r, err)
	}
	if !got["natpmp"] || !got["pcp4"] {
		t.Errorf("IPv4 announcements seen: %v", got)
	}

	// natpmpc: the public address, a TCP and a UDP mapping, deletes.
	natpmpc := func(args ...string) string {
		t.Helper()
		return l.LAN.Run(t, "natpmpc", append([]string{"-g", lab.CPELAN4}, args...)...)
	}
	if out := natpmpc(); !strings.Contains(out, "Public IP address : "+lab.CGNPublic4) {
		t.Errorf("natpmpc: no public address 203.0.113.1:\n%s", out)
	}
	if out := natpmpc("-a", "18080", "8080", "tcp", "3600"); !strings.Contains(out, "Mapped public port 18080 protocol TCP to local port 8080 liftime 3600") {
		t.Errorf("natpmpc -a tcp:\n%s", out)
	}
	if out := natpmpc("-a", "18080", "8080", "udp", "3600"); !strings.Contains(out, "Mapped public port 18080 protocol UDP to local port 8080 liftime 3600") {
		t.Errorf("natpmpc -a udp:\n%s", out)
	}
	host := netip.MustParseAddr(lab.LANHost4)
	ms := core.snapshot()
	if len(ms) != 2 {
		t.Fatalf("core holds %+v, want a TCP and a UDP mapping", ms)
	}
	for _, m := range ms {
		if m.Client != host || m.Internal != netip.AddrPortFrom(host, 8080) || m.Origin != mapping.OriginNATPMP {
			t.Errorf("mapping %+v not for the LAN host's 8080", m)
		}
	}
	natpmpc("-a", "0", "8080", "tcp", "0")
	if ms := core.snapshot(); len(ms) != 1 || ms[0].Proto != mapping.UDP {
		t.Errorf("after deleting TCP: %+v", ms)
	}
	natpmpc("-a", "0", "0", "udp", "0")
	if ms := core.snapshot(); len(ms) != 0 {
		t.Errorf("after deleting all UDP: %+v", ms)
	}
	if st := s.Stats(); st.Malformed != 0 || st.NATPMPMapTCP != 2 || st.NATPMPMapUDP != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestLabWANSideIgnored: requests sent from the WAN side (namespace net,
// through the CPE's WAN interface) to the CPE's LAN addresses get no answer
// (REQUIREMENTS 22, RFC 6886 §3.3, RFC 6887 §8.2): the sockets are bound
// to the LAN interface, not only to its addresses.
func TestLabWANSideIgnored(t *testing.T) {
	l := lab.New(t, lab.Options{Local: true, NoMiniupnpd: true})
	l.Net.Run(t, "ip", "route", "add", "192.0.2.0/24", "via", lab.LocalCPEWAN4)

	core := newFakeCore(time.Now(), time.Now)
	s, err := New(Config{Core: core, Interfaces: []string{l.CPELANIf}, NATPMP: true, PCP: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		l.CPE.Do(t, func() { errc <- s.Run(ctx) })
	}()
	defer func() {
		cancel()
		select {
		case <-errc:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	}()
	lab.Eventually(t, 10*time.Second, func() bool { return len(s.Addrs()) >= 2 }, "server listening")

	ask := func(ns *lab.NS, server string) error {
		t.Helper()
		var c net.Conn
		var err error
		ns.Do(t, func() { c, err = net.Dial("udp", net.JoinHostPort(server, "5351")) })
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 64)
		for range 3 {
			c.Write([]byte{0, 0})
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if n, err := c.Read(buf); err == nil {
				return fmt.Errorf("answered %x", buf[:n])
			}
		}
		return nil
	}
	// The same request from the LAN host is answered (the server works).
	if err := ask(l.LAN, lab.CPELAN4); err == nil {
		t.Fatal("LAN host not answered")
	}
	before := s.Stats().Replies
	for _, dst := range []string{lab.CPELAN4, lab.CPELAN6} {
		if err := ask(l.Net, dst); err != nil {
			t.Errorf("from the WAN side to %s: %v", dst, err)
		}
	}
	if st := s.Stats(); st.Replies != before {
		t.Errorf("replies to the WAN side: %+v", st)
	}
}
