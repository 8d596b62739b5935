package e2e

import (
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/portset"
)

// v6plusRanges is the port set of PSID 1 with offset 4 and length 8 (the
// parameters of the large Japanese MAP-E providers): 15 ranges of 16.
var v6plusRanges = []string{"4112-4127", "8208-8223", "12304-12319", "16400-16415", "20496-20511", "24592-24607",
	"28688-28703", "32784-32799", "36880-36895", "40976-40991", "45072-45087", "49168-49183", "53264-53279",
	"57360-57375", "61456-61471"}

// mapRules is /tmp/map-<cfg>.rules as OpenWrt's map.sh writes it for
// the lab's shared address and v6plusRanges (mapcalc's output format).
func mapRules() string {
	return `rule=type=map-e,ipv6prefix=2001:db8::,prefix6len=32,ipv4prefix=203.0.113.0,prefix4len=24,offset=4,ealen=16,br=2001:db8::ffff
RULE_1_FMR=0
RULE_1_EALEN=16
RULE_1_PSIDLEN=8
RULE_1_OFFSET=4
RULE_1_PREFIX4LEN=24
RULE_1_PREFIX6LEN=32
RULE_1_IPV4PREFIX=203.0.113.0
RULE_1_IPV6PREFIX=2001:db8::
RULE_1_IPV6PD=2001:db8:901::
RULE_1_PD6LEN=56
RULE_1_PD6IFACE=wan6
RULE_1_IPV6ADDR=2001:db8:901:0:0:cb00:7109:1
RULE_BMR=1
RULE_1_IPV4ADDR=` + lab.MAPShared4 + `
RULE_1_ADDR4LEN=32
RULE_1_PORTSETS='` + strings.Join(v6plusRanges, " ") + ` '
RULE_1_BR=2001:db8::ffff
RULE_COUNT=1
`
}

// fw4MapSNAT installs in cpe what OpenWrt's map.sh has fw4 install for
// the map interface: one SNAT rule per range of the set, at fw4's srcnat
// priority (so, on its own, every outbound flow gets the first range).
func fw4MapSNAT(t *testing.T, l *lab.Lab) {
	t.Helper()
	var rules strings.Builder
	for _, r := range v6plusRanges {
		rules.WriteString("\t\tmeta nfproto ipv4 oifname \"" + l.CPEWANIf + "\" meta l4proto { tcp, udp, icmp } snat ip to " + lab.MAPShared4 + ":" + r + "\n")
	}
	ruleset := "table inet fw4 {\n\tchain srcnat {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n" + rules.String() + "\t}\n}\n"
	f := filepath.Join(l.Dir, "fw4.nft")
	if err := os.WriteFile(f, []byte(ruleset), 0o644); err != nil {
		t.Fatal(err)
	}
	l.CPE.Run(t, "nft", "-f", f)
}

// sources listens in net on NetHost4:port (TCP and UDP) and records the
// source port of every connection and datagram from the shared address.
type sources struct {
	mu    sync.Mutex
	ports map[string][]uint16 // "tcp", "udp"
}

func recordSources(t *testing.T, l *lab.Lab, port uint16) *sources {
	t.Helper()
	s := &sources{ports: map[string][]uint16{}}
	addr := netip.AddrPortFrom(netip.MustParseAddr(lab.NetHost4), port).String()
	var ln net.Listener
	var pc net.PacketConn
	var err error
	l.Net.Do(t, func() {
		if ln, err = net.Listen("tcp4", addr); err == nil {
			pc, err = net.ListenPacket("udp4", addr)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	note := func(proto string, a net.Addr) {
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil || ap.Addr().String() != lab.MAPShared4 {
			t.Errorf("%s flow from %v, not from the shared address", proto, a)
			return
		}
		s.mu.Lock()
		s.ports[proto] = append(s.ports[proto], ap.Port())
		s.mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			note("tcp", c.RemoteAddr())
			io.WriteString(c, "hello from net\n")
			// The client closes first (no TIME_WAIT here for a port the
			// router's NAT hands out again).
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
			note("udp", from)
			pc.WriteTo([]byte("hello from net\n"), from)
		}
	}()
	t.Cleanup(func() { ln.Close(); pc.Close(); wg.Wait() })
	return s
}

func (s *sources) get(proto string) []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint16(nil), s.ports[proto]...)
}

// outbound makes n TCP connections and n UDP exchanges from the LAN host
// to net's recorder and fails the test when one does not get through.
func outbound(t *testing.T, l *lab.Lab, port uint16, n int) {
	t.Helper()
	to := netip.AddrPortFrom(netip.MustParseAddr(lab.NetHost4), port)
	for i := range n {
		for _, proto := range []string{"tcp", "udp"} {
			if s, err := reach(t, l.LAN, proto, to); err != nil || s != "hello from net" {
				t.Fatalf("outbound %s flow %d from the LAN: %q %v", proto, i, s, err)
			}
		}
	}
}

var upnpcAdded = regexp.MustCompile(`external ` + regexp.QuoteMeta(lab.MAPShared4) + `:(\d+) (TCP|UDP) is redirected to internal`)

// TestPortSetMAPE: a MAP-E home (the shared address 203.0.113.9 with PSID
// 1 of offset 4 and length 8: 240 ports), its border relay passing only
// those ports. pcpgw, in mode auto with OpenWrt's map rules, takes mode
// portset; keeps the upper quarter of the set (64 ports) for mappings and
// SNATs the router's outbound flows over the rest. By traffic: mappings
// made with upnpc (IGD:1 and IGD:2) and natpmpc land in the pool and are
// reached from the internet host; one outside the set is refused with
// 718 (IGD:1) / 729 (IGD:2); 60 TCP and 60 UDP outbound flows from the
// LAN all leave from the outbound part (several ranges, never a mapping
// port, never dropped by the border relay), while the mapped ports stay
// reachable.
func TestPortSetMAPE(t *testing.T) {
	lab.RequireRoot(t)
	start := time.Now()
	l := lab.New(t, lab.Options{PortSet: v6plusRanges})
	set, err := portset.Parse(strings.Join(v6plusRanges, " "))
	if err != nil {
		t.Fatal(err)
	}
	pool, snat := set.Split(portset.Share{Percent: 25}, portset.Set{})
	fw4MapSNAT(t, l)
	rec := recordSources(t, l, 7000)
	// OpenWrt's own SNAT alone: every flow in the first range.
	outbound(t, l, 7000, 3)
	for _, p := range rec.get("tcp") {
		if p < 4112 || p > 4127 {
			t.Errorf("before pcpgw: outbound TCP from port %d, want fw4's first range", p)
		}
	}

	rules := filepath.Join(l.Dir, "map-wan.rules")
	conf := filepath.Join(l.Dir, "pcpgw.conf")
	if err := os.WriteFile(rules, []byte(mapRules()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("config pcpgw 'main'\n\toption map_rules '"+rules+"'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := l.StartPcpgw(t, "-c", conf)
	st := status(t, p)
	wantText := "ports 4112-4127, 8208-8223, 12304-12319, ...: 240 usable, 64 for mappings (49168-49183, 53264-53279, 57360-57375, ...), 176 for outbound connections, 0 mapped"
	if st.Mode != "portset" || st.ModeConfig != "auto" || st.External != lab.MAPShared4 || st.PortSet == nil ||
		st.PortSet.Text != wantText || st.PortSet.Source != "map rules "+rules {
		t.Fatalf("status: mode %q (config %q), external %q, port set %+v", st.Mode, st.ModeConfig, st.External, st.PortSet)
	}
	if out := p.CLI(t, "status"); !strings.Contains(out, "port set") || !strings.Contains(out, "portset (auto)") {
		t.Errorf("pcpgw status:\n%s", out)
	}

	serveLAN(t, l, 8080)
	serveLAN(t, l, 8081)
	igd2 := "http://" + lab.CPELAN4 + ":5000/igd2.xml"
	// AddPortMapping outside the set: refused, saying why.
	if out := upnpcOut(t, l, "-a", lab.LANHost4, "8080", "8080", "TCP", "3600"); !strings.Contains(out, "failed with code 718") {
		t.Errorf("IGD:1 AddPortMapping of port 8080 (outside the set):\n%s", out)
	}
	out, _ := l.LAN.Output("upnpc", "-i", "-u", igd2, "-a", lab.LANHost4, "8080", "8080", "TCP", "3600")
	if !strings.Contains(out, "failed with code 729") { // upnpc 2.2.4 has no name for 729
		t.Errorf("IGD:2 AddPortMapping of port 8080 (outside the set):\n%s", out)
	}
	// In the set, but in the part kept for outbound flows: refused too.
	if out, _ := l.LAN.Output("upnpc", "-i", "-u", igd2, "-a", lab.LANHost4, "8080", "4112", "TCP", "3600"); !strings.Contains(out, "failed with code 729") {
		t.Errorf("IGD:2 AddPortMapping of port 4112 (kept for outbound):\n%s", out)
	}
	// In the pool: made, and reached from the internet host.
	out = upnpcOut(t, l, "-a", lab.LANHost4, "8080", "49170", "TCP", "3600")
	if !strings.Contains(out, "external "+lab.MAPShared4+":49170 TCP is redirected to internal "+lab.LANHost4+":8080") {
		t.Fatalf("upnpc -a 49170:\n%s", out)
	}
	// AddAnyPortMapping (IGD:2) of 8081: the nearest free port of the pool.
	out, _ = l.LAN.Output("upnpc", "-i", "-u", igd2, "-n", lab.LANHost4, "8081", "8081", "UDP", "3600")
	m := upnpcAdded.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("upnpc -n 8081 UDP:\n%s", out)
	}
	anyPort, _ := strconv.Atoi(m[1])
	if anyPort != 49168 {
		t.Errorf("AddAnyPortMapping for 8081 gave %d, want 49168 (the pool's port nearest to 8081)", anyPort)
	}
	// NAT-PMP asking for 8081: the nearest free port of the pool.
	out = natpmpcOut(t, l, "Mapped public port", "-a", "8081", "8081", "tcp", "3600")
	m = natpmpcMapped.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("natpmpc -a 8081 8081 tcp:\n%s", out)
	}
	natpmpPort, _ := strconv.Atoi(m[1])
	if natpmpPort != 49168 {
		t.Errorf("NAT-PMP for 8081 gave %d, want 49168", natpmpPort)
	}
	shared := netip.MustParseAddr(lab.MAPShared4)
	mapped := []struct {
		proto string
		port  uint16
	}{{"tcp", 49170}, {"udp", uint16(anyPort)}, {"tcp", uint16(natpmpPort)}}
	for _, mp := range mapped {
		if !pool.Contains(mp.port) {
			t.Errorf("%s mapping on port %d, outside the pool", mp.proto, mp.port)
		}
		if !reachable(t, l.Net, mp.proto, netip.AddrPortFrom(shared, mp.port), 5*time.Second) {
			t.Errorf("%s %s:%d not reached from the internet host", mp.proto, lab.MAPShared4, mp.port)
		}
	}
	if st := status(t, p); st.PortSet.Mapped != 3 || !strings.HasSuffix(st.PortSet.Text, "3 mapped") {
		t.Errorf("port set status after three mappings: %+v", st.PortSet)
	}

	// The router's outbound flows: only the outbound part, several
	// ranges, none dropped by the border relay.
	before := len(rec.get("tcp"))
	_, outDropsBefore, _, _ := l.BRDrops()
	const flows = 60
	outbound(t, l, 7000, flows)
	for _, proto := range []string{"tcp", "udp"} {
		ports := rec.get(proto)[before:]
		ranges := map[uint16]bool{}
		for _, port := range ports {
			if !snat.Contains(port) {
				t.Errorf("outbound %s flow from port %d: not in the outbound part of the set", proto, port)
			}
			ranges[port&^15] = true
		}
		if len(ports) != flows || len(ranges) < 5 {
			t.Errorf("outbound %s: %d flows over %d ranges (ports %v)", proto, len(ports), len(ranges), ports)
		}
	}
	if _, outDrops, _, err := l.BRDrops(); err != nil || outDrops != outDropsBefore {
		t.Errorf("the border relay dropped %d outbound packets (%v)", outDrops-outDropsBefore, err)
	}
	for _, mp := range mapped {
		if !reachable(t, l.Net, mp.proto, netip.AddrPortFrom(shared, mp.port), 3*time.Second) {
			t.Errorf("%s port %d no longer reached after the outbound flows", mp.proto, mp.port)
		}
	}
	rows := list(t, p)
	if len(rows) != 3 {
		t.Fatalf("list %+v", rows)
	}
	for _, r := range rows {
		if !strings.HasPrefix(r.External, lab.MAPShared4+":") || r.Upstream != "none" {
			t.Errorf("list row %+v: want the shared address, made on the router only", r)
		}
	}

	// The provider gives the router another PSID (a new delegated
	// prefix: map.sh writes the rules again): pcpgw follows within its
	// 2 s poll, drops the mappings the new set leaves out and moves the
	// outbound NAT.
	next := strings.ReplaceAll(mapRules(), "RULE_1_PORTSETS='"+strings.Join(v6plusRanges, " ")+" '", "RULE_1_PORTSETS='5000-5099 6000-6099 '")
	if err := os.WriteFile(rules, []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, 10*time.Second, func() bool {
		ps := status(t, p).PortSet
		return ps != nil && ps.Usable == 200
	}, "the new port set is not in force: %+v", status(t, p).PortSet)
	st = status(t, p)
	if want := "ports 5000-5099, 6000-6099: 200 usable, 50 for mappings (6050-6099), 150 for outbound connections, 0 mapped"; st.PortSet.Text != want {
		t.Errorf("new port set: %q, want %q", st.PortSet.Text, want)
	}
	if rows := list(t, p); len(rows) != 0 {
		t.Errorf("mappings outside the new set are kept: %+v", rows)
	}
	if rs := l.CPE.Run(t, "nft", "list", "table", "inet", "pcpgw"); !strings.Contains(rs, "snat ip to 203.0.113.9:5000-5099") ||
		!strings.Contains(rs, "snat ip to 203.0.113.9:6000-6049") || strings.Contains(rs, "4112") {
		t.Errorf("the outbound NAT does not follow the new set:\n%s", rs)
	}
	out = natpmpcOut(t, l, "Mapped public port", "-a", "8081", "8081", "tcp", "3600")
	if m := natpmpcMapped.FindStringSubmatch(out); m == nil || m[1] != "6099" {
		t.Errorf("NAT-PMP after the change (want 6099, the new pool's nearest to 8081):\n%s", out)
	}
	t.Logf("TestPortSetMAPE took %v", time.Since(start).Round(time.Millisecond))
}

// TestPortSetCheckConfig: a static forward outside the port set the
// options give is refused by check-config, naming its line.
func TestPortSetCheckConfig(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{PortSet: v6plusRanges})
	conf := filepath.Join(l.Dir, "pcpgw.conf")
	os.WriteFile(conf, []byte(`config pcpgw 'main'
	list lan 'br-lan'
	option wan 'eth1'
	option portset_psid '1'
	option portset_psid_len '8'
	option portset_offset '4'

config forward 'nas'
	option ext_port '8443'
	option int_addr '192.0.2.100'
	option int_port '443'
`), 0o644)
	out, err := l.CPE.Output(lab.PcpgwBinary(t), "check-config", "-c", conf)
	if err == nil || !strings.Contains(out, conf+`:8: forward "nas": external port 8443 is outside the port set (4112-4127, 8208-8223, 12304-12319, ...)`) {
		t.Errorf("check-config: %v\n%s", err, out)
	}
}
