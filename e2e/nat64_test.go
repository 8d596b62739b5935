package e2e

import (
	"crypto/rand"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient/pcptest"
)

// TestNAT64 (RFC 6887 §5 and §11, RFC 7225, RFC 7648): the provider runs
// a stateful NAT64 (tayga and nftables in isp) whose port mappings its
// PCP server (the project's pcptest, on [2001:db8:ff::1]:5351, saying
// its Pref64::/96 in PREFIX64) makes by changing the NAT's DNAT map. An
// IPv6-only service on the LAN host asks pcpgw, with its own PCP client,
// for an IPv4 port: a MAP of its IPv6 address with the all-zeros
// IPv4-mapped suggested external address. By traffic: pcpgw relays it
// (THIRD_PARTY, PREFIX64), answers the NAT64's IPv4 address and port and
// the prefix; an IPv4 host on the internet reaches the IPv6-only service
// through the NAT64 and the CPE's firewall (the RFC 6092 baseline on),
// which admits only the NAT64's prefix (a direct IPv6 connection from
// the provider's side is dropped); the client's delete closes it again.
func TestNAT64(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireTayga(t)
	start := time.Now()
	l := lab.New(t, lab.Options{})
	host6 := netip.MustParseAddr(lab.LANHost6)
	n64 := l.StartNAT64(t, lab.NAT64Options{Hosts: []netip.Addr{host6}})
	var srv *pcptest.Server
	var err error
	l.ISP.Do(t, func() { srv, err = pcptest.NewAt(netip.MustParseAddrPort("[2001:db8:ff::1]:5351")) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.AddResponseOption(pcp.Option{Code: pcp.OptPrefix64, Prefix64: pcp.Prefix64{Prefix: n64.Prefix}})
	forwardErr := make(chan error, 8)
	srv.SetOnMap(func(ev pcptest.MapEvent) {
		if ev.Internal.Addr() == host6 { // the NAT64's mappings (not the external-address probe's)
			forwardErr <- n64.Forward(ev.Proto, ev.External.Port(), ev.Internal, ev.Lifetime > 0)
		}
	})
	conf := filepath.Join(l.Dir, "pcpgw.conf")
	if err := os.WriteFile(conf, []byte("config pcpgw 'main'\n\toption ipv6_firewall '1'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := l.StartPcpgw(t, "-c", conf, "--pcp-server", "[2001:db8:ff::1]")
	waitUpstream(t, p, "pcp")

	service := netip.AddrPortFrom(host6, 9000)
	serveTCP(t, l.LAN, service) // IPv6 only
	var nonce pcp.Nonce
	rand.Read(nonce[:])
	ask := func(life uint32) pcp.Response {
		t.Helper()
		res, err := pcpAsk(t, l.LAN, netip.MustParseAddr(lab.CPELAN6), pcp.Request{Version: pcp.Version, Opcode: pcp.OpMap,
			Lifetime: life, Client: host6,
			Map:     &pcp.Map{Nonce: nonce, Protocol: 6, InternalPort: 9000, ExternalAddr: netip.IPv4Unspecified()},
			Options: []pcp.Option{{Code: pcp.OptPrefix64, Prefix64: pcp.Prefix64{Prefix: netip.PrefixFrom(netip.IPv6Unspecified(), 96)}}}})
		if err != nil {
			t.Fatalf("PCP MAP for an IPv4 port: %v", err)
		}
		return res
	}
	res := ask(3600)
	if res.Result != pcp.Success || res.Map == nil || res.Map.ExternalAddr != cgnPublic || res.Map.ExternalPort == 0 {
		t.Fatalf("answer %v %+v: want the NAT64's IPv4 address %v and a port", res.Result, res.Map, cgnPublic)
	}
	var pfx []netip.Prefix
	for _, o := range res.Options {
		if o.Code == pcp.OptPrefix64 {
			pfx = append(pfx, o.Prefix64.Prefix)
		}
	}
	if len(pfx) != 1 || pfx[0] != n64.Prefix {
		t.Errorf("PREFIX64 in the answer: %v, want %v", pfx, n64.Prefix)
	}
	if err := <-forwardErr; err != nil {
		t.Fatal(err)
	}
	q := srv.Requests()
	last := q[len(q)-1].PCP
	var tp netip.Addr
	var asked64 bool
	for _, o := range last.Options {
		switch o.Code {
		case pcp.OptThirdParty:
			tp = o.ThirdParty
		case pcp.OptPrefix64:
			asked64 = true
		}
	}
	if last.Client != netip.MustParseAddr(lab.CPEWAN6) || tp != host6 || !asked64 || !last.Map.ExternalAddr.Is4() {
		t.Errorf("relayed request: client %v, THIRD_PARTY %v, PREFIX64 asked %v, suggested %v", last.Client, tp, asked64, last.Map.ExternalAddr)
	}

	ext := netip.AddrPortFrom(cgnPublic, res.Map.ExternalPort)
	if !reachable(t, l.Net, "tcp", ext, 5*time.Second) {
		t.Fatalf("the IPv4 internet host does not reach the IPv6-only service at %v:\n%s\n%s", ext, n64.Forwards(t),
			l.CPE.Run(t, "nft", "list", "set", "inet", "pcpgw", "pin6s"))
	}
	if pins := l.CPE.Run(t, "nft", "list", "set", "inet", "pcpgw", "pin6s"); !strings.Contains(pins, n64.Prefix.String()+" . "+lab.LANHost6+" . tcp . 9000") {
		t.Errorf("the CPE's pinhole does not admit the NAT64's prefix:\n%s", pins)
	}
	// Outside the NAT64's prefix: dropped by the baseline.
	if reachable(t, l.ISP, "tcp", service, 500*time.Millisecond) {
		t.Error("a direct IPv6 connection from the provider's side reaches the service: the pinhole is not limited to the NAT64's prefix")
	}
	rows := list(t, p)
	if len(rows) != 1 || rows[0].External != ext.String() || rows[0].Internal != service.String() || rows[0].Upstream != "ok" {
		t.Errorf("list %+v", rows)
	}

	// The client deletes it: closed at the NAT64 and on the CPE.
	if res := ask(0); res.Result != pcp.Success {
		t.Fatalf("delete: %v", res.Result)
	}
	select {
	case err := <-forwardErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the delete did not reach the provider")
	}
	if reachable(t, l.Net, "tcp", ext, 500*time.Millisecond) {
		t.Error("still reachable after the delete")
	}
	if pins := l.CPE.Run(t, "nft", "list", "set", "inet", "pcpgw", "pin6s"); strings.Contains(pins, "9000") {
		t.Errorf("pinhole left after the delete:\n%s", pins)
	}
	t.Logf("TestNAT64 took %v", time.Since(start).Round(time.Millisecond))
}
