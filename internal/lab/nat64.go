package lab

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// NAT64Prefix is the provider's NAT64 prefix in the lab (a network-specific
// prefix: the well-known 64:ff9b::/96 may not translate documentation
// addresses, RFC 6052 §3.1).
const NAT64Prefix = "2001:db8:64::/96"

// nat64Pool is tayga's IPv4 pool: the IPv6 hosts it translates appear
// with these addresses to the provider's NAT44 behind it.
const nat64Pool = "100.64.1.0/24"

// NAT64Options configures the provider's NAT64.
type NAT64Options struct {
	// Hosts are IPv6 LAN hosts tayga maps statically to addresses of its
	// pool (100.64.1.200 and up, in order), so that an inbound flow finds
	// them before they sent anything (its dynamic pool learns a host only
	// from its own packets).
	Hosts []netip.Addr
}

// NAT64 is the provider's stateful NAT64 in isp: Debian's tayga (a
// userspace NAT64 on a tun device, RFC 6145) translating NAT64Prefix to
// its pool, and nftables behind it: masquerade of the pool to the public
// address on ISPPubIf, and a DNAT map that Forward fills (the port
// mappings the provider's PCP server makes).
type NAT64 struct {
	lab    *Lab
	Tun    string       // tayga's tun device in isp
	Prefix netip.Prefix // NAT64Prefix
	hosts  map[netip.Addr]netip.Addr
	proc   *Proc
}

// RequireTayga skips the test (fails it with PCPGW_E2E=1) when tayga is
// not installed.
func RequireTayga(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("tayga"); err != nil {
		skipOrFail(t, "lab: tayga not found: run scripts/deps-test.sh")
	}
}

// StartNAT64 starts the NAT64 in isp (the CGN topology) and waits until
// tayga runs. The lab's cleanup kills tayga with the namespace's other
// processes; its tun device goes with the namespace.
func (l *Lab) StartNAT64(t testing.TB, o NAT64Options) *NAT64 {
	t.Helper()
	RequireTayga(t)
	if l.ISP == nil || l.opt.DSLite || len(l.opt.PortSet) > 0 {
		t.Fatal("lab: StartNAT64: the CGN topology only")
	}
	n := &NAT64{lab: l, Tun: l.Prefix + "t64", Prefix: netip.MustParsePrefix(NAT64Prefix), hosts: map[netip.Addr]netip.Addr{}}
	dir := filepath.Join(l.Dir, "tayga")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := []string{
		"tun-device " + n.Tun,
		"ipv4-addr 100.64.1.254",
		"prefix " + NAT64Prefix,
		"dynamic-pool 100.64.1.0/25",
		"data-dir " + dir,
	}
	for i, h := range o.Hosts {
		a := netip.AddrFrom4([4]byte{100, 64, 1, byte(200 + i)})
		n.hosts[h] = a
		conf = append(conf, "map "+a.String()+" "+h.String())
	}
	cf := filepath.Join(dir, "tayga.conf")
	if err := os.WriteFile(cf, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l.ISP.Run(t, "tayga", "-c", cf, "--mktun")
	if out, err := ipBatch(l.ISP.Name, []string{
		"link set " + n.Tun + " up",
		"route add " + nat64Pool + " dev " + n.Tun,
		"route add " + NAT64Prefix + " dev " + n.Tun,
	}); err != nil {
		t.Fatalf("lab: NAT64 routes: %v\n%s", err, out)
	}
	ruleset := fmt.Sprintf(`table inet nat64 {
	map dnat64 {
		type inet_proto . inet_service : ipv4_addr . inet_service
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "%[1]s" dnat ip to meta l4proto . th dport map @dnat64
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %[2]s oifname "%[1]s" masquerade
	}
}
`, l.ISPPubIf, nat64Pool)
	nf := filepath.Join(dir, "nat64.nft")
	if err := os.WriteFile(nf, []byte(ruleset), 0o644); err != nil {
		t.Fatal(err)
	}
	l.ISP.Run(t, "nft", "-f", nf)
	n.proc = l.ISP.Start(t, "tayga", "-c", cf, "--nodetach")
	// tayga holds the tun once it runs: its carrier comes up.
	if !poll(5*time.Second, func() bool {
		out, err := l.ISP.Output("ip", "-o", "link", "show", n.Tun)
		return err == nil && strings.Contains(out, "LOWER_UP") || n.proc.Exited()
	}) || n.proc.Exited() {
		t.Fatalf("lab: tayga does not run:\n%s", n.proc.Output())
	}
	return n
}

// Forward makes (on) or removes the provider's port mapping of external
// port ext (protocol 6 or 17) at the public address to host's port,
// through tayga: the DNAT to the host's pool address.
func (n *NAT64) Forward(proto uint8, ext uint16, host netip.AddrPort, on bool) error {
	a4, ok := n.hosts[host.Addr().WithZone("")]
	if !ok {
		return fmt.Errorf("lab: NAT64: %v is not a host tayga maps (NAT64Options.Hosts)", host.Addr())
	}
	p := map[uint8]string{6: "tcp", 17: "udp"}[proto]
	if p == "" {
		return fmt.Errorf("lab: NAT64: protocol %d", proto)
	}
	op := "delete"
	if on {
		op = "add"
	}
	out, err := n.lab.ISP.Output("nft", op, "element", "inet", "nat64", "dnat64",
		"{ "+p+" . "+strconv.Itoa(int(ext))+" : "+a4.String()+" . "+strconv.Itoa(int(host.Port()))+" }")
	if err != nil {
		return fmt.Errorf("lab: NAT64: nft %s element: %v: %s", op, err, out)
	}
	return nil
}

// Forwards lists the DNAT map's elements (nft's words).
func (n *NAT64) Forwards(t testing.TB) string {
	t.Helper()
	return n.lab.ISP.Run(t, "nft", "list", "map", "inet", "nat64", "dnat64")
}
