package firewall_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/portset"
)

// sourcePorts listens on addr (TCP and UDP) in ns and records the source
// port of every connection and datagram.
type sourcePorts struct {
	mu    sync.Mutex
	tcp   map[uint16]int
	udp   map[uint16]int
	total int
}

func recordSources(t *testing.T, ns *lab.NS, addr string) *sourcePorts {
	t.Helper()
	s := &sourcePorts{tcp: map[uint16]int{}, udp: map[uint16]int{}}
	var ln net.Listener
	var pc net.PacketConn
	ns.Do(t, func() {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			t.Fatal(err)
		}
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			t.Fatal(err)
		}
	})
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); pc.Close(); wg.Wait() })
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.note(s.tcp, c.RemoteAddr())
			c.Write([]byte("hello"))
			// The client closes first: no TIME_WAIT here that a port
			// the NAT hands out again would run into.
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.note(s.udp, from)
			pc.WriteTo([]byte("hello"), from)
		}
	}()
	return s
}

func (s *sourcePorts) note(m map[uint16]int, a net.Addr) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return
	}
	s.mu.Lock()
	m[ap.Port()]++
	s.total++
	s.mu.Unlock()
}

func (s *sourcePorts) ports(proto string) []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.tcp
	if proto == "udp" {
		m = s.udp
	}
	var out []uint16
	for p := range m {
		out = append(out, p)
	}
	return out
}

// TestSNATPortSet: with the portset outbound NAT, every flow from the LAN
// leaves with the given address and a port of the given ranges (both
// protocols, the ranges taken in turn); a zero SNAT removes the rules.
func TestSNATPortSet(t *testing.T) {
	l, fw := setup(t, false)
	ports := portset.New(portset.Range{Lo: 40000, Hi: 40009}, portset.Range{Lo: 50000, Hi: 50009}, portset.Range{Lo: 60000, Hi: 60009})
	if err := fw.SetSNAT(context.Background(), firewall.SNAT{Addr: netip.MustParseAddr(lab.CPEWAN4), Ports: ports}); err != nil {
		t.Fatal(err)
	}
	out := l.CPE.Run(t, "nft", "list", "table", "inet", "pcpgw")
	want := map[string][]string{
		"portset_snat": {
			`meta nfproto ipv4 oifname "Pc1" meta l4proto tcp numgen inc mod 3 vmap @portset_snat`,
			`meta nfproto ipv4 oifname "Pc1" meta l4proto udp numgen inc mod 3 vmap @portset_snat`,
			`oifname "Pc1" meta l4proto icmp numgen inc mod 3 vmap @portset_snat`, // nft leaves out the implied nfproto,
		},
		"portset_snat_0": {`snat ip to 100.64.0.2:40000-40009`},
		"portset_snat_1": {`snat ip to 100.64.0.2:50000-50009`},
		"portset_snat_2": {`snat ip to 100.64.0.2:60000-60009`},
	}
	if strings.Contains(out, "Error") {
		t.Errorf("nft cannot show the table:\n%s", out)
	}
	for chain, rules := range want {
		if d := cmp.Diff(rules, chainRules(out, chain, l.Prefix)); d != "" {
			t.Errorf("chain %s (-want +got):\n%s\n%s", chain, d, out)
		}
	}
	if !strings.Contains(out, "elements = { 0 : jump portset_snat_0, 1 : jump portset_snat_1, 2 : jump portset_snat_2 }") {
		t.Errorf("map portset_snat:\n%s", out)
	}
	src := recordSources(t, l.ISP, lab.CGN4+":7000")
	const flows = 24 // a range of 10 ports holds 10 flows to one destination (TIME_WAIT)
	for i := range flows {
		for _, proto := range []string{"tcp", "udp"} {
			if !reach(t, l.LAN, proto, lab.CGN4+":7000") {
				t.Fatalf("%s flow %d from the LAN does not reach the provider's side (sources seen: tcp %v udp %v)\n%s", proto, i,
					src.ports("tcp"), src.ports("udp"), "")
			}
		}
	}
	for _, proto := range []string{"tcp", "udp"} {
		got := src.ports(proto)
		inRange := map[int]bool{}
		for _, p := range got {
			if !ports.Contains(p) {
				t.Errorf("%s flow left with port %d, outside %v", proto, p, ports)
			}
			for i, r := range ports.Ranges() {
				if p >= r.Lo && p <= r.Hi {
					inRange[i] = true
				}
			}
		}
		if len(inRange) != 3 {
			t.Errorf("%s: flows used ranges %v of 3 (ports %v)", proto, inRange, got)
		}
	}

	if err := fw.SetSNAT(context.Background(), firewall.SNAT{}); err != nil {
		t.Fatal(err)
	}
	out = l.CPE.Run(t, "nft", "list", "table", "inet", "pcpgw")
	if got := chainRules(out, "portset_snat", l.Prefix); len(got) != 0 || strings.Contains(out, "portset_snat_") {
		t.Errorf("after a zero SNAT the chain holds %q:\n%s", got, out)
	}
	// A table adopted from a run with an outbound NAT starts without it.
	if err := fw.SetSNAT(context.Background(), firewall.SNAT{Addr: netip.MustParseAddr(lab.CPEWAN4), Ports: ports}); err != nil {
		t.Fatal(err)
	}
	newFW(t, l, firewall.Config{})
	out = l.CPE.Run(t, "nft", "list", "table", "inet", "pcpgw")
	if got := chainRules(out, "portset_snat", l.Prefix); len(got) != 0 || strings.Contains(out, "portset_snat_") {
		t.Errorf("adopted table keeps the old outbound NAT: %q\n%s", got, out)
	}
}
