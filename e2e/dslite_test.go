package e2e

import (
	"crypto/rand"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/pcp"
)

// dnsServer answers AAAA queries for the names of aaaa (name -> address)
// on addr (UDP) in ns, NXDOMAIN for others, and records the questions.
type dnsServer struct {
	mu      sync.Mutex
	queries []string
}

func (d *dnsServer) asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.queries)
}

func startDNS(t *testing.T, ns *lab.NS, addr string, aaaa map[string]string) *dnsServer {
	t.Helper()
	var pc net.PacketConn
	var err error
	ns.Do(t, func() { pc, err = net.ListenPacket("udp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := q.Question[0].Name
		d.mu.Lock()
		d.queries = append(d.queries, name+" "+dns.TypeToString[q.Question[0].Qtype])
		d.mu.Unlock()
		a, ok := aaaa[strings.TrimSuffix(name, ".")]
		switch {
		case !ok:
			m.SetRcode(q, dns.RcodeNameError)
		case q.Question[0].Qtype == dns.TypeAAAA:
			rr, _ := dns.NewRR(name + " 60 IN AAAA " + a)
			m.Answer = append(m.Answer, rr)
		}
		w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: mux, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return d
}

// TestDSLiteWiring: a DS-Lite home as OpenWrt makes it (the softwire holds
// the B4 address 192.0.0.2, the IPv6 uplink is another interface), the
// AFTR named by DHCPv6 option 64 and reached over IPv6, miniupnpd 2.3.9
// as its PCP server. By traffic and state:
//   - auto takes dslite (not local with 192.0.0.2 as the external address);
//   - the AFTR name is looked up with the resolvers learned on the WAN
//     (wan_resolv_file), not the system's (which answer another address),
//     and the AFTR is the PCP server;
//   - natpmpc's mapping is made at the AFTR over IPv6 with THIRD_PARTY
//     (miniupnpd DNATs to the LAN host's own address) and reached from the
//     internet host; the CPE does no NAT;
//   - the RFC 6092 baseline and the pinholes are on the IPv6 uplink: an
//     inbound IPv6 connection is dropped, then passes through a PCP
//     pinhole;
//   - the AFTR's ANNOUNCE (multicast on the IPv6 uplink) after it lost its
//     state makes pcpgw map again at once;
//   - a new AFTR name (the DHCPv6 hook rewrites aftr_name) is looked up
//     again on reload and its address becomes the PCP server.
func TestDSLiteWiring(t *testing.T) {
	lab.RequireRoot(t)
	start := time.Now()
	l := lab.New(t, lab.Options{DSLite: true})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	l.ISP.Run(t, "ip", "addr", "add", "2001:db8:ff::a/64", "dev", l.ISPIf, "nodad")

	// The provider's resolver, learned on the WAN, and the system's
	// (dnsmasq on OpenWrt), which knows another address for the name.
	wanDNS := startDNS(t, l.ISP, "[2001:db8:ff::1]:53", map[string]string{
		"aftr.example.net": "2001:db8:ff::1", "aftr2.example.net": "2001:db8:ff::a"})
	sysDNS := startDNS(t, l.CPE, "127.0.0.1:53", map[string]string{"aftr.example.net": "2001:db8:ff::dead"})
	dir := filepath.Join("/etc/netns", l.CPE.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resolvAuto := filepath.Join(l.Dir, "resolv.conf.auto")
	if err := os.WriteFile(resolvAuto, []byte("# Interface wan6\nnameserver 2001:db8:ff::1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(l.Dir, "pcpgw.conf")
	writeConf := func(aftr string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte("config pcpgw 'main'\n\toption aftr_name '"+aftr+"'\n\toption wan_resolv_file '"+resolvAuto+
			"'\n\toption ipv6_firewall '1'\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConf("aftr.example.net")
	p := l.StartPcpgw(t, "-c", conf)
	waitUpstream(t, p, "pcp")
	st := status(t, p)
	if st.Mode != "dslite" || st.ModeConfig != "auto" || st.WANAddr != lab.B4Addr4 || st.Upstream.Server != "[2001:db8:ff::1]:5351" {
		t.Fatalf("status: mode %q (config %q), WAN address %q, PCP server %q", st.Mode, st.ModeConfig, st.WANAddr, st.Upstream.Server)
	}
	if q := wanDNS.asked(); !slices.Contains(q, "aftr.example.net. AAAA") {
		t.Errorf("the WAN's resolver was not asked for the AFTR: %v", q)
	}
	if q := sysDNS.asked(); len(q) != 0 {
		t.Errorf("the system's resolver was asked: %v", q)
	}

	// A mapping at the AFTR, over IPv6, for the LAN host's own address.
	serveLAN(t, l, 8085)
	out := natpmpcOut(t, l, "Mapped public port 18085", "-a", "18085", "8085", "tcp", "3600")
	if !strings.Contains(out, "Mapped public port 18085 protocol TCP to local port 8085") {
		t.Fatalf("natpmpc -a 18085 8085 tcp:\n%s", out)
	}
	ext := netip.AddrPortFrom(cgnPublic, 18085)
	if !reachable(t, l.Net, "tcp", ext, 5*time.Second) {
		t.Fatalf("%v not reached from the internet host:\n%s", ext, m.Ruleset(t))
	}
	if rs := m.Ruleset(t); !strings.Contains(rs, "dnat ip to 192.0.2.100:8085") {
		t.Errorf("the AFTR does not map to the LAN host's own address (THIRD_PARTY):\n%s", rs)
	}
	rows := list(t, p)
	if len(rows) != 1 || rows[0].WANPort != 0 || rows[0].External != ext.String() || rows[0].Upstream != "ok" {
		t.Errorf("list %+v: want no CPE port, the AFTR's external port", rows)
	}
	if st := status(t, p); st.External != lab.CGNPublic4 {
		t.Errorf("external address %q, want the AFTR's %s", st.External, lab.CGNPublic4)
	}

	// The IPv6 uplink's firewall: the baseline drops unsolicited inbound
	// IPv6 arriving there, a pinhole lets it through.
	host6 := netip.MustParseAddr(lab.LANHost6)
	target := netip.AddrPortFrom(host6, 9000)
	serveTCP(t, l.LAN, target)
	if reachable(t, l.ISP, "tcp", target, 500*time.Millisecond) {
		t.Fatal("inbound IPv6 from the uplink reaches the LAN host without a pinhole")
	}
	var nonce pcp.Nonce
	rand.Read(nonce[:])
	if res := pcpMap(t, l, host6, nonce, 9000, 3600); res.Result != pcp.Success {
		t.Fatalf("PCP pinhole: %v", res.Result)
	}
	if !reachable(t, l.ISP, "tcp", target, 3*time.Second) {
		t.Fatal("the pinhole does not let inbound IPv6 from the uplink through")
	}
	fwd := l.CPE.Run(t, "nft", "list", "chain", "inet", "pcpgw", "forward")
	if !strings.Contains(fwd, `iifname "`+l.CPEWAN6If+`" ip6 daddr . meta l4proto . th dport @pin6`) ||
		!strings.Contains(fwd, `meta nfproto ipv6 iifname "`+l.CPEWAN6If+`" jump wan6_in`) ||
		!strings.Contains(fwd, `iifname "`+l.CPEWANIf+`" ip daddr . meta l4proto`) {
		t.Errorf("forward chain: IPv6 on %s, IPv4 on the softwire %s wanted:\n%s", l.CPEWAN6If, l.CPEWANIf, fwd)
	}

	// The AFTR restarts with an empty table and announces it on the IPv6
	// uplink: pcpgw maps again at once (its renewal is 30 min away).
	m.Restart(t, true)
	restarted := time.Now()
	if !reachable(t, l.Net, "tcp", ext, 10*time.Second) {
		t.Fatalf("not mapped again within 10 s of the AFTR's ANNOUNCE:\n%s", m.Ruleset(t))
	}
	t.Logf("reachable again %v after the AFTR's restart", time.Since(restarted).Round(time.Millisecond))

	// A new AFTR name (the DHCPv6 hook writes it): looked up again, and
	// its address is the PCP server, without a restart.
	writeConf("aftr2.example.net")
	lab.Eventually(t, 15*time.Second, func() bool { return status(t, p).Upstream.Server == "[2001:db8:ff::a]:5351" },
		"the new AFTR is not the PCP server: %+v", status(t, p).Upstream)
	if q := wanDNS.asked(); !slices.Contains(q, "aftr2.example.net. AAAA") {
		t.Errorf("the new AFTR name was not looked up with the WAN's resolver: %v", q)
	}
	if !reachable(t, l.Net, "tcp", ext, 10*time.Second) {
		t.Errorf("not reachable through the new AFTR:\n%s", m.Ruleset(t))
	}
	if q := sysDNS.asked(); len(q) != 0 {
		t.Errorf("the system's resolver was asked: %v", q)
	}
	t.Logf("TestDSLiteWiring took %v", time.Since(start).Round(time.Millisecond))
}
