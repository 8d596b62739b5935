package firewall_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/internal/lab"
)

// setup builds a lab (lan -- cpe -- isp -- net) and a firewall in cpe.
func setup(t *testing.T, baseline bool) (*lab.Lab, *firewall.NFT) {
	t.Helper()
	l := lab.New(t, lab.Options{NoMiniupnpd: true})
	fw := newFW(t, l, firewall.Config{IPv6Baseline: baseline})
	return l, fw
}

func newFW(t testing.TB, l *lab.Lab, cfg firewall.Config) *firewall.NFT {
	t.Helper()
	ns, err := os.Open(filepath.Join("/run/netns", l.CPE.Name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	cfg.WAN, cfg.LAN, cfg.NetNS = l.CPEWANIf, []string{l.CPELANIf}, int(ns.Fd())
	if !cfg.WANAddr.IsValid() {
		cfg.WANAddr = netip.MustParseAddr(lab.CPEWAN4)
	}
	fw, err := firewall.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { fw.Close() })
	return fw
}

// listen starts a TCP and a UDP echo-ish server in ns: TCP accepts and
// writes "hello"; UDP answers every datagram with "hello".
func listen(t *testing.T, ns *lab.NS, addr string) {
	t.Helper()
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
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_ = n
			pc.WriteTo([]byte("hello"), from)
		}
	}()
}

// reach reports whether a TCP connection (or UDP exchange) from ns to addr
// gets "hello" back within a short timeout.
func reach(t *testing.T, ns *lab.NS, network, addr string) bool {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() {
		c, err = net.DialTimeout(network, addr, 700*time.Millisecond)
	})
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(700 * time.Millisecond))
	if network == "udp" {
		if _, err := c.Write([]byte("hi")); err != nil {
			return false
		}
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	return err == nil && string(buf[:n]) == "hello"
}

const (
	tcp = 6
	udp = 17
)

func apply(t *testing.T, fw *firewall.NFT, c firewall.Change) {
	t.Helper()
	if err := fw.Apply(context.Background(), c); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func wantReach(t *testing.T, ns *lab.NS, network, addr string, want bool) {
	t.Helper()
	if got := reach(t, ns, network, addr); got != want {
		t.Errorf("%s %s from %s: reached %v, want %v", network, addr, ns.Name, got, want)
	}
}

// Issue 4 (IPv4): a forward makes TCP and UDP from the provider side reach
// the LAN host; removing it stops new flows; hairpin from the LAN works.
func TestForward(t *testing.T) {
	l, fw := setup(t, false)
	listen(t, l.LAN, "192.0.2.100:8080")
	to := netip.MustParseAddrPort("192.0.2.100:8080")
	fwds := []firewall.Forward{{Proto: tcp, Port: 18080, To: to}, {Proto: udp, Port: 18080, To: to}}
	wan := lab.CPEWAN4 + ":18080"

	wantReach(t, l.ISP, "tcp", wan, false)
	wantReach(t, l.ISP, "udp", wan, false)
	apply(t, fw, firewall.Change{AddForwards: fwds})
	wantReach(t, l.ISP, "tcp", wan, true)
	wantReach(t, l.ISP, "udp", wan, true)
	// hairpin: the LAN host reaches itself through the WAN address
	wantReach(t, l.LAN, "tcp", wan, true)
	wantReach(t, l.LAN, "udp", wan, true)
	// adding again (a refresh) changes nothing
	apply(t, fw, firewall.Change{AddForwards: fwds})
	wantReach(t, l.ISP, "tcp", wan, true)

	apply(t, fw, firewall.Change{DelForwards: fwds})
	wantReach(t, l.ISP, "tcp", wan, false)
	wantReach(t, l.ISP, "udp", wan, false)
	wantReach(t, l.LAN, "tcp", wan, false)
	// deleting again is not an error
	apply(t, fw, firewall.Change{DelForwards: fwds})
}

// A forward with Remote set only DNATs that source (IGD RemoteHost).
func TestForwardRemote(t *testing.T) {
	l, fw := setup(t, false)
	listen(t, l.LAN, "192.0.2.100:8080")
	to := netip.MustParseAddrPort("192.0.2.100:8080")
	apply(t, fw, firewall.Change{AddForwards: []firewall.Forward{
		{Proto: tcp, Port: 18080, To: to, Remote: netip.MustParseAddr(lab.CGN4)},
	}})
	wantReach(t, l.ISP, "tcp", lab.CPEWAN4+":18080", true)
	// from the same namespace but another source address
	var err error
	l.ISP.Do(t, func() {
		d := net.Dialer{Timeout: 700 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(lab.CGNPublic4)}}
		var c net.Conn
		if c, err = d.Dial("tcp", lab.CPEWAN4+":18080"); err == nil {
			c.Close()
		}
	})
	if err == nil {
		t.Errorf("a source other than Remote reached the forward")
	}
}

// Port 0 (DS-Lite): no DNAT, only the forward accept (and its mark) for
// packets to the LAN address itself.
func TestForwardAcceptOnly(t *testing.T) {
	l, fw := setup(t, false)
	listen(t, l.LAN, "192.0.2.100:8080")
	// isp needs a route to the LAN for this (no NAT in the CPE)
	l.ISP.Run(t, "ip", "route", "add", "192.0.2.0/24", "via", lab.CPEWAN4)
	// a main firewall that drops what pcpgw did not mark
	l.CPE.Run(t, "nft", "-f", writeFile(t, fw4Ruleset(t, true)))
	wantReach(t, l.ISP, "tcp", "192.0.2.100:8080", false)
	apply(t, fw, firewall.Change{AddForwards: []firewall.Forward{{Proto: tcp, To: netip.MustParseAddrPort("192.0.2.100:8080")}}})
	wantReach(t, l.ISP, "tcp", "192.0.2.100:8080", true)
	wantReach(t, l.ISP, "tcp", lab.CPEWAN4+":8080", false) // no DNAT
}

// SetWANAddr moves hairpin NAT to the new WAN address.
func TestSetWANAddr(t *testing.T) {
	l, fw := setup(t, false)
	listen(t, l.LAN, "192.0.2.100:8080")
	apply(t, fw, firewall.Change{AddForwards: []firewall.Forward{{Proto: tcp, Port: 18080, To: netip.MustParseAddrPort("192.0.2.100:8080")}}})
	const other = "203.0.113.99" // held by nobody: only hairpin NAT answers
	wantReach(t, l.LAN, "tcp", other+":18080", false)
	if err := fw.SetWANAddr(context.Background(), netip.MustParseAddr(other)); err != nil {
		t.Fatal(err)
	}
	wantReach(t, l.LAN, "tcp", other+":18080", true)
	wantReach(t, l.LAN, "tcp", lab.CPEWAN4+":18080", false)
	if err := fw.SetWANAddr(context.Background(), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	wantReach(t, l.LAN, "tcp", other+":18080", false)
	if err := fw.SetWANAddr(context.Background(), netip.MustParseAddr("2001:db8::1")); err == nil {
		t.Error("SetWANAddr accepted an IPv6 address")
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// chainRules returns the rules of chain in `nft list table` output, with the
// lab's interface prefix replaced by "P".
func chainRules(out, chain, prefix string) []string {
	_, body, ok := strings.Cut(out, "\tchain "+chain+" {\n")
	if !ok {
		return nil
	}
	body, _, _ = strings.Cut("\n"+body, "\n\t}")
	var rules []string
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "type ") {
			continue
		}
		rules = append(rules, strings.ReplaceAll(line, prefix, "P"))
	}
	return rules
}

// The table's rules are the ones doc.go shows; a second New adopts the
// table: it replaces the rules (here without the baseline) and keeps the
// elements.
func TestTableLayout(t *testing.T) {
	l, fw := setup(t, true)
	out := l.CPE.Run(t, "nft", "list", "table", "inet", "pcpgw")
	want := map[string][]string{
		"prerouting": {
			`iifname "Pc1" dnat ip to ip saddr . meta l4proto . th dport map @fwd4h`,
			`meta nfproto ipv4 iifname "Pc1" dnat ip to meta l4proto . th dport map @fwd4`,
			`iifname @lan_ifs ip daddr @wan4 dnat ip to meta l4proto . th dport map @fwd4`,
			`iifname @lan_ifs ip daddr @ext4 dnat ip to meta l4proto . th dport map @fwd4x`,
		},
		"postrouting": {
			`meta nfproto ipv4 iifname @lan_ifs oifname @lan_ifs ct status dnat ct mark & 0x20000000 == 0x20000000 masquerade`,
			`oifname "Pc1" snat ip to ip saddr . meta l4proto . th sport . ip daddr . th dport map @peer4`,
		},
		"forward": {
			`iifname "Pc1" ip daddr . meta l4proto . th dport . ct original proto-dst @acc4 ct mark set ct mark | 0x20000000 accept`,
			`iifname "Pc1" ip saddr . ip daddr . meta l4proto . th dport . ct original proto-dst @acc4h ct mark set ct mark | 0x20000000 accept`,
			`iifname @lan_ifs ct status dnat ip daddr . meta l4proto . th dport . ct original proto-dst @acc4 ct mark set ct mark | 0x20000000 accept`,
			`iifname @lan_ifs ct status dnat ip daddr . meta l4proto . th dport . ct original proto-dst @acc4x ct mark set ct mark | 0x20000000 accept`,
			`iifname "Pc1" ip6 daddr . meta l4proto . th dport @pin6 ct mark set ct mark | 0x20000000 accept`,
			`iifname "Pc1" ip6 saddr . ip6 daddr . meta l4proto . th dport @pin6h ct mark set ct mark | 0x20000000 accept`,
			`iifname "Pc1" th sport . ip6 daddr . meta l4proto . th dport @pin6p ct mark set ct mark | 0x20000000 accept`,
			`iifname "Pc1" ip6 saddr . th sport . ip6 daddr . meta l4proto . th dport @pin6hp ct mark set ct mark | 0x20000000 accept`,
			`iifname "Pc1" ip6 saddr . ip6 daddr . meta l4proto . th dport @pin6s ct mark set ct mark | 0x20000000 accept`,
			`meta nfproto ipv6 iifname "Pc1" jump wan6_in`,
		},
		"wan6_in": {
			"ct state established,related accept",
			"ct state invalid drop",
			"icmpv6 type echo-request accept",
			"meta l4proto ah accept",
			"meta l4proto esp accept",
			"meta l4proto hip accept",
			"udp dport 500 accept",
			"udp dport 4500 accept",
			"drop",
		},
	}
	for chain, rules := range want {
		if diff := cmp.Diff(rules, chainRules(out, chain, l.Prefix)); diff != "" {
			t.Errorf("chain %s (-want +got):\n%s", chain, diff)
		}
	}

	apply(t, fw, firewall.Change{AddForwards: []firewall.Forward{{Proto: tcp, Port: 18080, To: netip.MustParseAddrPort("192.0.2.100:8080")}}})
	newFW(t, l, firewall.Config{IPv6Baseline: false})
	out = l.CPE.Run(t, "nft", "list", "table", "inet", "pcpgw")
	if got := chainRules(out, "forward", l.Prefix); len(got) != 9 {
		t.Errorf("forward chain after adopting without baseline:\n%s", strings.Join(got, "\n"))
	}
	if got := chainRules(out, "wan6_in", l.Prefix); len(got) != 0 {
		t.Errorf("wan6_in after adopting without baseline: %q", got)
	}
	if got := kernelElems(t, l, "pcpgw")["fwd4"]; len(got) != 1 {
		t.Errorf("fwd4 after adopting: %q, want the one forward kept", got)
	}

	// DS-Lite: IPv4 comes from the softwire (WAN), IPv6 from WAN6.
	newFW(t, l, firewall.Config{WAN6: "wan6x", IPv6Baseline: true})
	fwd := chainRules(l.CPE.Run(t, "nft", "list", "table", "inet", "pcpgw"), "forward", l.Prefix)
	if len(fwd) != 10 || !strings.HasPrefix(fwd[0], `iifname "Pc1" `) || !strings.HasPrefix(fwd[4], `iifname "wan6x" `) ||
		!strings.HasPrefix(fwd[8], `iifname "wan6x" `) || fwd[9] != `meta nfproto ipv6 iifname "wan6x" jump wan6_in` {
		t.Errorf("forward chain with WAN6:\n%s", strings.Join(fwd, "\n"))
	}
}

// fw4Ruleset is a ruleset shaped like OpenWrt fw4's (table inet fw4,
// forward chain with policy drop, chain-pre includes first), including
// fw4-include.nft when include is set.
func fw4Ruleset(t *testing.T, include bool) string {
	t.Helper()
	inc := ""
	if include {
		p, err := filepath.Abs("fw4-include.nft")
		if err != nil {
			t.Fatal(err)
		}
		inc = fmt.Sprintf("include %q", p)
	}
	return fmt.Sprintf(`table inet fw4 {
	chain forward {
		type filter hook forward priority filter; policy drop;
		%s
		ct state vmap { established : accept, related : accept, invalid : drop } comment "!fw4: Handle forwarded flows"
		jump handle_reject
	}
	chain handle_reject {
		meta l4proto tcp reject with tcp reset comment "!fw4: Reject TCP traffic"
		reject comment "!fw4: Reject any other traffic"
	}
}
`, inc)
}

// The snippet is valid nft inside fw4's forward chain, and with it a
// default-drop fw4 lets pcpgw's forwards through (and only them).
func TestFW4Include(t *testing.T) {
	l, fw := setup(t, false)
	listen(t, l.LAN, "192.0.2.100:8080")
	l.CPE.Run(t, "nft", "-c", "-f", writeFile(t, fw4Ruleset(t, true)))

	// Without the include, fw4 drops the forward pcpgw accepted.
	l.CPE.Run(t, "nft", "-f", writeFile(t, fw4Ruleset(t, false)))
	to := netip.MustParseAddrPort("192.0.2.100:8080")
	apply(t, fw, firewall.Change{AddForwards: []firewall.Forward{{Proto: tcp, Port: 18080, To: to}}})
	wantReach(t, l.ISP, "tcp", lab.CPEWAN4+":18080", false)

	l.CPE.Run(t, "nft", "delete", "table", "inet", "fw4")
	l.CPE.Run(t, "nft", "-f", writeFile(t, fw4Ruleset(t, true)))
	wantReach(t, l.ISP, "tcp", lab.CPEWAN4+":18080", true)
	wantReach(t, l.ISP, "udp", lab.CPEWAN4+":18080", false) // not forwarded: fw4 still drops
	wantReach(t, l.ISP, "tcp", lab.CPEWAN4+":18081", false)
}

// REQUIREMENTS 26, 28: with the baseline, inbound IPv6 to the LAN passes
// only while a pinhole lives (or for IPsec/IKE); outbound and replies pass.
func TestPinholeBaseline(t *testing.T) {
	l, fw := setup(t, true)
	ctx := context.Background()
	listen(t, l.LAN, "[2001:db8:1::100]:8080")
	listen(t, l.LAN, "[2001:db8:1::100]:500")
	listen(t, l.ISP, "[2001:db8:ff::1]:9090")
	lanAddr := "[2001:db8:1::100]:8080"

	wantReach(t, l.ISP, "tcp", lanAddr, false)
	wantReach(t, l.LAN, "tcp", "[2001:db8:ff::1]:9090", true) // outbound and its replies
	wantReach(t, l.LAN, "udp", "[2001:db8:ff::1]:9090", true)
	wantReach(t, l.ISP, "udp", "[2001:db8:1::100]:500", true)  // IKE (REC-24)
	wantReach(t, l.ISP, "tcp", "[2001:db8:1::100]:500", false) // only UDP 500

	pin := firewall.Pinhole{Proto: tcp, To: netip.MustParseAddrPort(lanAddr), Timeout: time.Hour}
	apply(t, fw, firewall.Change{AddPinholes: []firewall.Pinhole{pin}})
	wantReach(t, l.ISP, "tcp", lanAddr, true)
	wantReach(t, l.ISP, "udp", lanAddr, false) // TCP only
	n, err := fw.Packets(ctx, pin)
	if err != nil || n == 0 {
		t.Errorf("Packets = %d, %v; want > 0", n, err)
	}
	before := n
	wantReach(t, l.ISP, "tcp", lanAddr, true)
	if n, err := fw.Packets(ctx, pin); err != nil || n <= before {
		t.Errorf("Packets after a second connection = %d, %v; want > %d", n, err, before)
	}
	// a refresh keeps the counter on kernels that update in place
	apply(t, fw, firewall.Change{AddPinholes: []firewall.Pinhole{pin}})

	apply(t, fw, firewall.Change{DelPinholes: []firewall.Pinhole{pin}})
	wantReach(t, l.ISP, "tcp", lanAddr, false)
	if _, err := fw.Packets(ctx, pin); !errors.Is(err, firewall.ErrNotFound) {
		t.Errorf("Packets of a deleted pinhole: %v, want ErrNotFound", err)
	}
}

// Pinholes restricted to one remote host, and to one remote host and port.
func TestPinholeRemote(t *testing.T) {
	l, fw := setup(t, true)
	listen(t, l.LAN, "[2001:db8:1::100]:8080")
	to := netip.MustParseAddrPort("[2001:db8:1::100]:8080")
	dial := func(port int) bool {
		var c net.Conn
		var err error
		l.ISP.Do(t, func() {
			d := net.Dialer{Timeout: 700 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(lab.CGN6), Port: port}}
			c, err = d.Dial("tcp", to.String())
		})
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	other := firewall.Pinhole{Proto: tcp, To: to, Remote: netip.MustParseAddr("2001:db8:ff::99")}
	apply(t, fw, firewall.Change{AddPinholes: []firewall.Pinhole{other}})
	if dial(0) {
		t.Error("a pinhole for another remote host let isp in")
	}
	hp := firewall.Pinhole{Proto: tcp, To: to, Remote: netip.MustParseAddr(lab.CGN6), RemotePort: 40001}
	apply(t, fw, firewall.Change{AddPinholes: []firewall.Pinhole{hp}})
	if dial(40002) {
		t.Error("remote port 40002 passed a pinhole for remote port 40001")
	}
	if !dial(40001) {
		t.Error("remote host and port of the pinhole did not pass")
	}
	h := firewall.Pinhole{Proto: tcp, To: to, Remote: netip.MustParseAddr(lab.CGN6)}
	apply(t, fw, firewall.Change{AddPinholes: []firewall.Pinhole{h}, DelPinholes: []firewall.Pinhole{hp}})
	if !dial(40003) {
		t.Error("remote host of the pinhole did not pass")
	}
	p := firewall.Pinhole{Proto: tcp, To: to, RemotePort: 40004}
	apply(t, fw, firewall.Change{AddPinholes: []firewall.Pinhole{p}, DelPinholes: []firewall.Pinhole{h}})
	if !dial(40004) || dial(40005) {
		t.Error("pinhole for any host from port 40004 does not filter on the port")
	}
}

// REQUIREMENTS 27 (RFC 4890 §4.3.1, RFC 6092 REC-10, REC-18): inbound echo
// request passes; Packet Too Big about a flow the LAN host started passes;
// one about no known flow is dropped by the baseline (and passes without
// it, which shows the drop is the baseline's).
func TestICMPv6Baseline(t *testing.T) {
	for _, baseline := range []bool{true, false} {
		t.Run(fmt.Sprintf("baseline=%v", baseline), func(t *testing.T) {
			l, _ := setup(t, baseline)
			if err := l.ISP.Ping(lab.LANHost6, 3*time.Second); err != nil {
				t.Errorf("echo request from isp: %v", err)
			}
			// net gets IPv6 behind a 1280-byte link, so isp sends PTB
			// for bigger packets towards it.
			l.ISP.Run(t, "ip", "addr", "add", "2001:db8:2::1/64", "dev", l.ISPPubIf, "nodad")
			l.ISP.Run(t, "ip", "link", "set", l.ISPPubIf, "mtu", "1280")
			l.Net.Run(t, "ip", "link", "set", l.NetIf, "mtu", "1280")
			l.Net.Run(t, "ip", "addr", "add", "2001:db8:2::2/64", "dev", l.NetIf, "nodad")
			l.Net.Run(t, "ip", "route", "add", "::/0", "via", "2001:db8:2::1")
			// count PTBs arriving at the LAN host
			l.LAN.Run(t, "nft", "-f", writeFile(t, `table inet obs {
	chain input {
		type filter hook input priority 0; policy accept;
		icmpv6 type packet-too-big counter
	}
}
`))
			ptbs := func() int {
				out := l.LAN.Run(t, "nft", "list", "table", "inet", "obs")
				var n int
				if _, rest, ok := strings.Cut(out, "counter packets "); ok {
					fmt.Sscanf(rest, "%d", &n)
				}
				return n
			}
			// unsolicited PTB from isp about a flow nobody started
			sendPTB(t, l.ISP)
			// solicited: the LAN host sends a 1400-byte datagram to net
			l.LAN.Do(t, func() {
				c, err := net.Dial("udp", "[2001:db8:2::2]:9")
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.Write(make([]byte, 1400))
			})
			want := 1
			if !baseline {
				want = 2
			}
			lab.Eventually(t, 3*time.Second, func() bool { return ptbs() >= want }, "fewer than %d PTBs reached the LAN host", want)
			if got := ptbs(); got != want {
				t.Errorf("PTBs at the LAN host: %d, want %d", got, want)
			}
		})
	}
}

// sendPTB sends from ns an ICMPv6 Packet Too Big to the LAN host about a
// UDP datagram from it to 2001:db8:2::3, which it never sent.
func sendPTB(t *testing.T, ns *lab.NS) {
	t.Helper()
	inner := make([]byte, 48)
	inner[0] = 0x60
	inner[5] = 8  // payload length
	inner[6] = 17 // UDP
	inner[7] = 64
	copy(inner[8:24], netip.MustParseAddr(lab.LANHost6).AsSlice())
	copy(inner[24:40], netip.MustParseAddr("2001:db8:2::3").AsSlice())
	inner[40], inner[41], inner[42], inner[43] = 0x15, 0xb3, 0, 9
	msg := append([]byte{2, 0, 0, 0, 0, 0, 0x05, 0x00}, inner...) // type 2, MTU 1280
	ns.Do(t, func() {
		c, err := net.ListenPacket("ip6:ipv6-icmp", lab.CGN6)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.WriteTo(msg, &net.IPAddr{IP: net.ParseIP(lab.LANHost6)}); err != nil {
			t.Fatal(err)
		}
	})
}

// A table of the same name that pcpgw cannot adopt (another layout) is
// replaced, not left half-working.
func TestAdoptIncompatible(t *testing.T) {
	l := lab.New(t, lab.Options{NoMiniupnpd: true})
	l.CPE.Run(t, "nft", "-f", writeFile(t, `table inet pcpgw {
	set fwd4 {
		type ipv4_addr
		elements = { 192.0.2.7 }
	}
}
`))
	fw := newFW(t, l, firewall.Config{})
	to := netip.MustParseAddrPort("192.0.2.100:8080")
	apply(t, fw, firewall.Change{AddForwards: []firewall.Forward{{Proto: tcp, Port: 18080, To: to}}})
	if diff := cmp.Diff([]string{"tcp . 18080 : 192.0.2.100 . 8080"}, kernelElems(t, l, "pcpgw")["fwd4"]); diff != "" {
		t.Errorf("fwd4 (-want +got):\n%s", diff)
	}
}

// SetExternalAddr hairpins the upstream's external address beside the WAN
// address (RFC 7648 §3.1): a LAN host reaches a mapped LAN service at the
// address the internet uses, by the port the upstream gave
// (Forward.UpstreamPort), not by the WAN port.
func TestSetExternalAddr(t *testing.T) {
	l, fw := setup(t, false)
	listen(t, l.LAN, "192.0.2.100:8080")
	apply(t, fw, firewall.Change{AddForwards: []firewall.Forward{{Proto: tcp, Port: 18080, To: netip.MustParseAddrPort("192.0.2.100:8080"), UpstreamPort: 28080}}})
	const ext = "203.0.113.99" // held by nobody: only hairpin NAT answers
	wantReach(t, l.LAN, "tcp", ext+":28080", false)
	if err := fw.SetExternalAddr(context.Background(), netip.MustParseAddr(ext)); err != nil {
		t.Fatal(err)
	}
	wantReach(t, l.LAN, "tcp", ext+":28080", true)
	wantReach(t, l.LAN, "tcp", ext+":18080", false)        // the WAN port is not the upstream's
	wantReach(t, l.LAN, "tcp", lab.CPEWAN4+":18080", true) // the WAN address still, by the WAN port
	wantReach(t, l.LAN, "tcp", lab.CPEWAN4+":28080", false)
	// A WAN address change keeps the external one.
	if err := fw.SetWANAddr(context.Background(), netip.MustParseAddr("100.64.0.3")); err != nil {
		t.Fatal(err)
	}
	wantReach(t, l.LAN, "tcp", ext+":28080", true)
	if err := fw.SetExternalAddr(context.Background(), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	wantReach(t, l.LAN, "tcp", ext+":28080", false)
	if err := fw.SetExternalAddr(context.Background(), netip.MustParseAddr("2001:db8::1")); !errors.Is(err, firewall.ErrInvalid) {
		t.Errorf("SetExternalAddr(IPv6): %v", err)
	}
}

// listenSay is listen with another greeting than "hello", so that a test
// tells which service it reached.
func listenSay(t *testing.T, ns *lab.NS, addr, say string) {
	t.Helper()
	var ln net.Listener
	ns.Do(t, func() {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			t.Fatal(err)
		}
	})
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(say))
			c.Close()
		}
	}()
}

// greeting connects from ns to addr over TCP and returns what the far end
// says ("" when nothing answers).
func greeting(t *testing.T, ns *lab.NS, addr string) string {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.DialTimeout("tcp", addr, 700*time.Millisecond) })
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(700 * time.Millisecond))
	buf := make([]byte, 32)
	n, _ := c.Read(buf)
	return string(buf[:n])
}

// The hairpin of the upstream's external address is keyed by the
// upstream port: forward A has WAN port 18080 and upstream port 18081,
// forward B WAN port 18081 and upstream port 18082. A LAN host connecting
// to the external address at 18081 reaches A (not B, whose WAN port is
// that number), at 18082 B, at 18080 nothing; the WAN address still goes
// by the WAN port, and the WAN side is not let in by the upstream ports.
// A forward's upstream port changes in one batch (delete and add); the
// kernel holds what Sync asks, hairpin elements included.
func TestHairpinUpstreamPort(t *testing.T) {
	l, fw := setup(t, false)
	listenSay(t, l.LAN, "192.0.2.100:8080", "A")
	listenSay(t, l.LAN, "192.0.2.100:9090", "B")
	const ext = "203.0.113.99"
	if err := fw.SetExternalAddr(context.Background(), netip.MustParseAddr(ext)); err != nil {
		t.Fatal(err)
	}
	a := firewall.Forward{Proto: tcp, Port: 18080, To: netip.MustParseAddrPort("192.0.2.100:8080"), UpstreamPort: 18081, Timeout: time.Hour}
	b := firewall.Forward{Proto: tcp, Port: 18081, To: netip.MustParseAddrPort("192.0.2.100:9090"), UpstreamPort: 18082, Timeout: time.Hour}
	apply(t, fw, firewall.Change{AddForwards: []firewall.Forward{a, b}})
	check := func(ns *lab.NS, want map[string]string) {
		t.Helper()
		for addr, say := range want {
			if got := greeting(t, ns, addr); got != say {
				t.Errorf("%s from %s: %q, want %q", addr, ns.Name, got, say)
			}
		}
	}
	check(l.LAN, map[string]string{
		ext + ":18081":         "A",
		ext + ":18082":         "B",
		ext + ":18080":         "",
		lab.CPEWAN4 + ":18080": "A",
		lab.CPEWAN4 + ":18081": "B",
		lab.CPEWAN4 + ":18082": "",
	})
	check(l.ISP, map[string]string{
		lab.CPEWAN4 + ":18080": "A",
		lab.CPEWAN4 + ":18081": "B",
		lab.CPEWAN4 + ":18082": "",
	})
	if diff := cmp.Diff([]string{"tcp . 18081 timeout=3600 : 192.0.2.100 . 8080", "tcp . 18082 timeout=3600 : 192.0.2.100 . 9090"},
		kernelElems(t, l, "pcpgw")["fwd4x"]); diff != "" {
		t.Errorf("fwd4x (-want +got):\n%s", diff)
	}

	// A moves to upstream port 18083: one batch.
	a2 := a
	a2.UpstreamPort = 18083
	apply(t, fw, firewall.Change{DelForwards: []firewall.Forward{a}, AddForwards: []firewall.Forward{a2}})
	check(l.LAN, map[string]string{
		ext + ":18081":         "",
		ext + ":18083":         "A",
		lab.CPEWAN4 + ":18080": "A",
	})
	// Sync to a state where B holds 18081 too.
	b2 := b
	b2.UpstreamPort = 18081
	if err := fw.Sync(context.Background(), []firewall.Forward{a2, b2}, nil); err != nil {
		t.Fatal(err)
	}
	check(l.LAN, map[string]string{
		ext + ":18081": "B",
		ext + ":18082": "",
		ext + ":18083": "A",
	})
	if got := kernelElems(t, l, "pcpgw")["acc4x"]; len(got) != 2 {
		t.Errorf("acc4x %q, want two", got)
	}
	apply(t, fw, firewall.Change{DelForwards: []firewall.Forward{a2, b2}})
	if got := kernelElems(t, l, "pcpgw"); len(got["fwd4x"])+len(got["acc4x"])+len(got["fwd4"]) != 0 {
		t.Errorf("left after deleting: %v", got)
	}
}
