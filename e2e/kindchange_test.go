package e2e

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// TestKindChangeMovesMappings (issue 15: "changing kind (... PCP appearing
// through DHCP) moves every mapping over"): the box in front of the router
// (miniupnpd 2.3.9) speaks NAT-PMP only at first; a LAN mapping is made
// there and reached from the internet. Then the box answers PCP too and
// DHCP names it as the PCP server (the servers file the DHCP hooks write):
// pcpgw takes PCP, gives the NAT-PMP mapping back and makes it again with
// PCP. The internet still reaches the service, through one DNAT at the
// box, and the mapping is listed as made upstream.
func TestKindChangeMovesMappings(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{Box: lab.Box{DropPCP: true}})
	servers := filepath.Join(l.Dir, "pcp-servers")
	conf := filepath.Join(l.Dir, "pcpgw.conf")
	if err := os.WriteFile(conf, []byte("config pcpgw 'main'\n\toption pcp_servers_file '"+servers+"'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := l.StartPcpgw(t, "-c", conf)
	waitUpstream(t, p, "natpmp")
	serveLAN(t, l, 8099)
	r := natpmpMapTCP(t, l, 8099, 18099, 3600)
	if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, r.ExternalPort), 5*time.Second) {
		t.Fatalf("not reachable through the NAT-PMP box\n%s", m.Ruleset(t))
	}

	l.ISP.Run(t, "nft", "delete", "table", "inet", "droppcp")
	if err := os.WriteFile(servers, []byte(lab.CGN4+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitUpstream(t, p, "pcp")
	var ext netip.AddrPort
	lab.Eventually(t, 15*time.Second, func() bool {
		rows := list(t, p)
		if len(rows) != 1 || rows[0].Upstream != "ok" {
			return false
		}
		ext = netip.MustParseAddrPort(rows[0].External)
		return ext.Addr() == cgnPublic && m.DNATCount(t) == 1
	}, "the mapping was not moved to PCP: list %+v, DNATs at the box %d\n%s", list(t, p), m.DNATCount(t), m.Ruleset(t))
	if !reachable(t, l.Net, "tcp", ext, 5*time.Second) {
		t.Fatalf("not reachable at %v after the move to PCP\n%s", ext, m.Ruleset(t))
	}
	t.Logf("moved from NAT-PMP to PCP %v after the servers file named the box (%v)", time.Since(start).Round(time.Millisecond), ext)
}
