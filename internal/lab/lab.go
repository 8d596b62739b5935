package lab

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RequireRoot skips the test with a reason when it cannot build namespaces
// (not root, or ip/nft missing), and fails it instead when PCPGW_E2E=1.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "lab: privileged test needs root (namespaces, nftables); run as root or with sudo")
		return
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, fmt.Sprintf("lab: %s not found: run scripts/deps-test.sh", tool))
			return
		}
	}
}

// E2E reports whether PCPGW_E2E=1, under which privileged tests must run
// rather than skip.
func E2E() bool { return os.Getenv("PCPGW_E2E") == "1" }

func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if E2E() {
		t.Fatal(reason + " (PCPGW_E2E=1: failing instead of skipping)")
	}
	t.Skip(reason)
}

// Options selects the topology New builds. The zero value is the CGN
// topology of LAB.md with miniupnpd not started (New never starts it;
// see StartMiniupnpd).
type Options struct {
	// NoMiniupnpd records that the test does not want miniupnpd in isp.
	// New never starts miniupnpd by itself; the field documents intent
	// for helpers that start it on demand.
	NoMiniupnpd bool
	// Local builds the "local" topology: no isp namespace; cpe's WAN
	// interface holds 203.0.113.2/24 and 2001:db8:ff::2/64 on a link to
	// net (203.0.113.50/24, 2001:db8:ff::1/64). cpe routes by default via
	// net; net routes 2001:db8:1::/64 via cpe (for IPv6 pinhole tests) and
	// has no IPv4 route to the LAN (the CPE NATs).
	Local bool
	// ExtraLANHosts adds that many LAN hosts (at most 8) beside LAN, in
	// namespaces Prefix+"lan2", "lan3"..., holding 192.0.2.101,
	// 2001:db8:1::101 and up (see LANHostAddrs). cpe then holds its LAN
	// addresses on a bridge (Prefix+"br", like OpenWrt's br-lan) with c0 and
	// one veth per extra host as ports, and CPELANIf names the bridge.
	// Zero: the single lan host of LAB.md, c0 directly linked to l0.
	ExtraLANHosts int
	// PortSet builds the A+P topology (MAP-E, MAP-T, lw4o6 without the
	// softwire, which this kernel cannot make): cpe's WAN interface holds
	// the shared address MAPShared4/32 (and 2001:db8:ff::2/64), routed
	// to it by isp, which plays the stateless border relay: its forward
	// chain (table inet br) passes TCP and UDP to and from MAPShared4 only
	// on these ports, and nothing else from cpe's side. isp does no NAT;
	// net routes MAPShared4 via isp. The ranges are "lo-hi" or "port".
	PortSet []string
	// DSLite builds the DS-Lite topology (RFC 6333) without the IPv4-in-
	// IPv6 softwire, which this kernel cannot make: the softwire is a veth
	// of its own, cpe's CPEWANIf (192.0.0.2/29, the B4 address OpenWrt's
	// ds-<name> tunnel holds) to isp's ISPSoftwireIf (192.0.0.1/29, the
	// AFTR's end), which carries IPv4 only; c1 (CPEWAN6If) is the IPv6
	// uplink (2001:db8:ff::2/64, no IPv4), where the AFTR's IPv6 address
	// 2001:db8:ff::1 is. isp routes 192.0.2.0/24 over the softwire (the
	// AFTR knows the B4's LAN) and NATs it when miniupnpd runs.
	DSLite bool
}

// Lab is one instance of the LAB.md topology:
//
//	lan(l0) -- (c0)cpe(c1) -- (i0)isp(i1) -- (n0)net
//
// or, with Options.Local, lan(l0) -- (c0)cpe(c1) -- (n0)net.
type Lab struct {
	LAN, CPE, ISP, Net *NS // namespaces (ISP is nil in the Local topology)

	// LANHosts are the LAN host namespaces, LAN first, then the
	// Options.ExtraLANHosts others; LANHostIfs their interfaces
	// (LANHostIfs[0] is LANIf).
	LANHosts   []*NS
	LANHostIfs []string

	// The real interface names, prefixed per lab (at most 15 bytes).
	// ISPIf and ISPPubIf are empty in the Local topology. CPELANIf is the
	// interface holding cpe's LAN addresses: c0, or the bridge with
	// Options.ExtraLANHosts.
	LANIf, CPELANIf, CPEWANIf, ISPIf, ISPPubIf, NetIf string
	// CPEWAN6If is cpe's IPv6 uplink: CPEWANIf, but c1 in the DSLite
	// topology, where CPEWANIf is the softwire and ISPSoftwireIf its isp
	// end ("" in the others).
	CPEWAN6If, ISPSoftwireIf string

	// Dir is a private temporary directory for this lab, removed at the
	// end of the test.
	Dir string

	// Prefix is the per-lab prefix of every namespace and interface name.
	Prefix string

	opt       Options
	all       []*NS
	miniupnpd bool // StartMiniupnpd was called
}

// Addresses of LAB.md.
const (
	LANHost4   = "192.0.2.100"
	LANHost6   = "2001:db8:1::100"
	CPELAN4    = "192.0.2.1"
	CPELAN6    = "2001:db8:1::1"
	CPEWAN4    = "100.64.0.2"
	CPEWAN6    = "2001:db8:ff::2"
	CGN4       = "100.64.0.1"
	CGN6       = "2001:db8:ff::1"
	CGNPublic4 = "203.0.113.1"
	NetHost4   = "203.0.113.50"
	// In the Local topology the CPE's WAN address is LocalCPEWAN4 and net
	// holds NetHost4 and CGN6 (2001:db8:ff::1) on the same link.
	LocalCPEWAN4 = "203.0.113.2"
	// MAPShared4 is the CPE's shared address in the PortSet topology.
	MAPShared4 = "203.0.113.9"
	// B4Addr4 and AFTRAddr4 are the softwire's ends in the DSLite
	// topology (RFC 6333 §5.7).
	B4Addr4   = "192.0.0.2"
	AFTRAddr4 = "192.0.0.1"
)

const prefixAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// newPrefix returns "p" and four random letters or digits: 5 bytes, so
// that prefix+role ("p3a9xcpe", "p3a9xc1") stays short.
func newPrefix() string {
	var b [4]byte
	rand.Read(b[:])
	p := []byte{'p'}
	for _, c := range b {
		p = append(p, prefixAlphabet[int(c)%len(prefixAlphabet)])
	}
	return string(p)
}

// New builds the LAB.md topology in fresh network namespaces whose names
// are unique to this test and process, waits until every link is up and
// every IPv6 address usable, and registers a t.Cleanup that kills every
// process left in the namespaces and deletes them (which removes their
// veths and nftables tables). It calls RequireRoot first.
func New(t testing.TB, opt Options) *Lab {
	t.Helper()
	RequireRoot(t)
	l := &Lab{Dir: t.TempDir(), opt: opt}
	start := time.Now()

	sweepStale()
	// Reserve a prefix by creating the lan namespace: `ip netns add`
	// fails when the name exists, whoever made it.
	var err error
	for range 20 {
		l.Prefix = newPrefix()
		l.LAN = &NS{Name: l.Prefix + "lan"}
		if err = addNetns(l.LAN.Name); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	l.all = []*NS{l.LAN}
	t.Cleanup(func() { l.cleanup(t) })
	if err := register(l.Prefix, l.Dir); err != nil {
		t.Fatalf("lab: %v", err)
	}

	l.CPE = &NS{Name: l.Prefix + "cpe"}
	l.Net = &NS{Name: l.Prefix + "net"}
	if !opt.Local {
		l.ISP = &NS{Name: l.Prefix + "isp"}
	}
	if opt.ExtraLANHosts < 0 || opt.ExtraLANHosts > 8 {
		t.Fatalf("lab: Options.ExtraLANHosts = %d, want 0 to 8", opt.ExtraLANHosts)
	}
	l.LANHosts = []*NS{l.LAN}
	for i := 2; i <= opt.ExtraLANHosts+1; i++ {
		l.LANHosts = append(l.LANHosts, &NS{Name: fmt.Sprintf("%slan%d", l.Prefix, i)})
	}
	for _, n := range append([]*NS{l.CPE, l.ISP, l.Net}, l.LANHosts[1:]...) {
		if n == nil {
			continue
		}
		if err := addNetns(n.Name); err != nil {
			t.Fatalf("lab: %v", err)
		}
		l.all = append(l.all, n)
	}
	// DAD off before any interface exists, so link-local and global IPv6
	// addresses are usable at once.
	for _, n := range l.all {
		if err := n.sysctls(map[string]string{
			"net/ipv6/conf/all/accept_dad":     "0",
			"net/ipv6/conf/default/accept_dad": "0",
		}); err != nil {
			t.Fatalf("lab: %s: %v", n.Name, err)
		}
	}
	for _, n := range []*NS{l.CPE, l.ISP} {
		if n == nil {
			continue
		}
		if err := n.sysctls(map[string]string{
			"net/ipv4/ip_forward":          "1",
			"net/ipv6/conf/all/forwarding": "1",
		}); err != nil {
			t.Fatalf("lab: %s: %v", n.Name, err)
		}
	}

	p := l.Prefix
	l.LANIf, l.CPELANIf, l.CPEWANIf, l.NetIf = p+"l0", p+"c0", p+"c1", p+"n0"
	l.CPEWAN6If = l.CPEWANIf
	links := []string{
		veth(p+"c0", l.CPE, l.LANIf, l.LAN),
	}
	l.LANHostIfs = []string{l.LANIf}
	var cpeLAN []string // cpe's commands for the LAN side
	if opt.ExtraLANHosts > 0 {
		l.CPELANIf = p + "br"
		cpeLAN = append(cpeLAN,
			"link add "+l.CPELANIf+" type bridge mcast_snooping 0",
			"link set "+p+"c0 master "+l.CPELANIf,
			"link set "+p+"c0 up")
		for i, n := range l.LANHosts[1:] {
			port, hostIf := fmt.Sprintf("%sb%d", p, i+2), fmt.Sprintf("%sl%d", p, i+2)
			links = append(links, veth(port, l.CPE, hostIf, n))
			l.LANHostIfs = append(l.LANHostIfs, hostIf)
			cpeLAN = append(cpeLAN, "link set "+port+" master "+l.CPELANIf, "link set "+port+" up")
		}
	}
	cpeLAN = append(cpeLAN,
		"addr add 192.0.2.1/24 dev "+l.CPELANIf,
		"addr add 2001:db8:1::1/64 dev "+l.CPELANIf+" nodad",
		"link set "+l.CPELANIf+" up")
	if opt.Local {
		links = append(links, veth(l.CPEWANIf, l.CPE, l.NetIf, l.Net))
	} else {
		l.ISPIf, l.ISPPubIf = p+"i0", p+"i1"
		links = append(links,
			veth(l.CPEWANIf, l.CPE, l.ISPIf, l.ISP),
			veth(l.ISPPubIf, l.ISP, l.NetIf, l.Net))
	}
	if opt.DSLite {
		l.CPEWANIf, l.ISPSoftwireIf = p+"ds", p+"a0"
		links = append(links, veth(l.CPEWANIf, l.CPE, l.ISPSoftwireIf, l.ISP))
	}
	if out, err := ipBatch("", links); err != nil {
		t.Fatalf("lab: creating veths: %v\n%s", err, out)
	}

	if opt.DSLite {
		// The softwire carries IPv4 only (an ipip6 tunnel), and net's link
		// has no IPv6 in this topology: isp's IPv6 (its announcements to
		// ff02::1) leaves only on the uplink.
		for n, ifs := range map[*NS][]string{l.CPE: {l.CPEWANIf}, l.ISP: {l.ISPSoftwireIf, l.ISPPubIf}, l.Net: {l.NetIf}} {
			kv := map[string]string{}
			for _, i := range ifs {
				kv["net/ipv6/conf/"+i+"/disable_ipv6"] = "1"
			}
			if err := n.sysctls(kv); err != nil {
				t.Fatalf("lab: %s: %v", n.Name, err)
			}
		}
	}
	cfg := map[*NS][]string{}
	for i, n := range l.LANHosts {
		a4, a6 := l.LANHostAddrs(i)
		cfg[n] = []string{
			"addr add " + a4 + "/24 dev " + l.LANHostIfs[i],
			"addr add " + a6 + "/64 dev " + l.LANHostIfs[i] + " nodad",
			"link set " + l.LANHostIfs[i] + " up",
			"route add default via 192.0.2.1",
			"route add ::/0 via 2001:db8:1::1",
		}
	}
	if opt.Local {
		cfg[l.CPE] = append(cpeLAN,
			"addr add 203.0.113.2/24 dev "+l.CPEWANIf,
			"addr add 2001:db8:ff::2/64 dev "+l.CPEWANIf+" nodad",
			"link set "+l.CPEWANIf+" up",
			"route add default via 203.0.113.50",
			"route add ::/0 via 2001:db8:ff::1",
		)
		cfg[l.Net] = []string{
			"addr add 203.0.113.50/24 dev " + l.NetIf,
			"addr add 2001:db8:ff::1/64 dev " + l.NetIf + " nodad",
			"link set " + l.NetIf + " up",
			"route add 2001:db8:1::/64 via 2001:db8:ff::2",
		}
	} else if opt.DSLite {
		cfg[l.CPE] = append(cpeLAN,
			"addr add 2001:db8:ff::2/64 dev "+l.CPEWAN6If+" nodad",
			"link set "+l.CPEWAN6If+" up",
			"addr add 192.0.0.2/29 dev "+l.CPEWANIf,
			"link set "+l.CPEWANIf+" up",
			"route add default via 192.0.0.1",
			"route add ::/0 via 2001:db8:ff::1",
		)
		cfg[l.ISP] = []string{
			"addr add 100.64.0.1/24 dev " + l.ISPIf,
			"addr add 2001:db8:ff::1/64 dev " + l.ISPIf + " nodad",
			"addr add 192.0.0.1/29 dev " + l.ISPSoftwireIf,
			"addr add 203.0.113.1/24 dev " + l.ISPPubIf,
			"link set " + l.ISPIf + " up",
			"link set " + l.ISPSoftwireIf + " up",
			"link set " + l.ISPPubIf + " up",
			"route add 192.0.2.0/24 via 192.0.0.2",
			"route add 2001:db8:1::/64 via 2001:db8:ff::2",
		}
		cfg[l.Net] = []string{
			"addr add 203.0.113.50/24 dev " + l.NetIf,
			"link set " + l.NetIf + " up",
		}
	} else if len(opt.PortSet) > 0 {
		cfg[l.CPE] = append(cpeLAN,
			"addr add "+MAPShared4+"/32 dev "+l.CPEWANIf,
			"addr add 2001:db8:ff::2/64 dev "+l.CPEWANIf+" nodad",
			"link set "+l.CPEWANIf+" up",
			"route add 100.64.0.1/32 dev "+l.CPEWANIf,
			"route add default via 100.64.0.1",
			"route add ::/0 via 2001:db8:ff::1",
		)
		cfg[l.ISP] = []string{
			"addr add 100.64.0.1/24 dev " + l.ISPIf,
			"addr add 2001:db8:ff::1/64 dev " + l.ISPIf + " nodad",
			"addr add 203.0.113.1/24 dev " + l.ISPPubIf,
			"link set " + l.ISPIf + " up",
			"link set " + l.ISPPubIf + " up",
			"route add " + MAPShared4 + "/32 dev " + l.ISPIf,
			"route add 2001:db8:1::/64 via 2001:db8:ff::2",
		}
		cfg[l.Net] = []string{
			"addr add 203.0.113.50/24 dev " + l.NetIf,
			"link set " + l.NetIf + " up",
			"route add " + MAPShared4 + "/32 via 203.0.113.1",
		}
	} else {
		cfg[l.CPE] = append(cpeLAN,
			"addr add 100.64.0.2/24 dev "+l.CPEWANIf,
			"addr add 2001:db8:ff::2/64 dev "+l.CPEWANIf+" nodad",
			"link set "+l.CPEWANIf+" up",
			"route add default via 100.64.0.1",
			"route add ::/0 via 2001:db8:ff::1",
		)
		cfg[l.ISP] = []string{
			"addr add 100.64.0.1/24 dev " + l.ISPIf,
			"addr add 2001:db8:ff::1/64 dev " + l.ISPIf + " nodad",
			"addr add 203.0.113.1/24 dev " + l.ISPPubIf,
			"link set " + l.ISPIf + " up",
			"link set " + l.ISPPubIf + " up",
			"route add 2001:db8:1::/64 via 2001:db8:ff::2",
		}
		cfg[l.Net] = []string{
			"addr add 203.0.113.50/24 dev " + l.NetIf,
			"link set " + l.NetIf + " up",
		}
	}
	for _, n := range l.all {
		cmds := append([]string{"link set lo up"}, cfg[n]...)
		if out, err := ipBatch(n.Name, cmds); err != nil {
			t.Fatalf("lab: configuring %s: %v\n%s", n.Name, err, out)
		}
	}
	if len(opt.PortSet) > 0 {
		if err := l.borderRelay(opt.PortSet); err != nil {
			t.Fatalf("lab: the border relay's filter: %v", err)
		}
	}
	for _, n := range l.all {
		if !poll(10*time.Second, n.linksReady) {
			t.Fatalf("lab: links of %s not up with usable addresses within 10s:\n%s", n.Name, n.state())
		}
	}
	t.Logf("lab %s: built in %v (dir %s)", l.Prefix, time.Since(start).Round(time.Millisecond), l.Dir)
	return l
}

// LANHostAddrs returns the IPv4 and IPv6 addresses of LAN host i
// (LANHosts[i]): 192.0.2.100 and 2001:db8:1::100 for LAN, then .101 and
// ::101, and so on.
func (l *Lab) LANHostAddrs(i int) (v4, v6 string) {
	return fmt.Sprintf("192.0.2.%d", 100+i), fmt.Sprintf("2001:db8:1::%d", 100+i)
}

// Namespaces returns every namespace of the lab.
func (l *Lab) Namespaces() []*NS { return append([]*NS(nil), l.all...) }

// WANAddr4 is the CPE's WAN IPv4 address in this lab's topology.
func (l *Lab) WANAddr4() string {
	switch {
	case l.opt.Local:
		return LocalCPEWAN4
	case len(l.opt.PortSet) > 0:
		return MAPShared4
	case l.opt.DSLite:
		return B4Addr4
	}
	return CPEWAN4
}

func veth(a string, an *NS, b string, bn *NS) string {
	return fmt.Sprintf("link add %s netns %s type veth peer name %s netns %s", a, an.Name, b, bn.Name)
}

func addNetns(name string) error {
	out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ipBatch runs `ip [-n ns] -batch -` with one command a line.
func ipBatch(ns string, cmds []string) (string, error) {
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	c := exec.Command("ip", args...)
	c.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	out, err := c.CombinedOutput()
	return string(out), err
}

// linksReady reports whether every non-loopback link of n is up (both
// veth ends) and no IPv6 address is tentative.
func (n *NS) linksReady() bool {
	out, err := exec.Command("ip", "-n", n.Name, "-j", "link", "show").Output()
	if err != nil {
		return false
	}
	var links []struct {
		Name      string `json:"ifname"`
		OperState string `json:"operstate"`
	}
	if json.Unmarshal(out, &links) != nil {
		return false
	}
	for _, lk := range links {
		if lk.Name != "lo" && lk.OperState != "UP" {
			return false
		}
	}
	out, err = exec.Command("ip", "-n", n.Name, "-6", "addr", "show", "tentative").Output()
	return err == nil && len(strings.TrimSpace(string(out))) == 0
}

func (n *NS) state() string {
	out, _ := exec.Command("ip", "-n", n.Name, "addr", "show").CombinedOutput()
	return string(out)
}

// cleanup kills every process in the lab's namespaces and deletes them.
func (l *Lab) cleanup(t testing.TB) {
	start := time.Now()
	defer func() {
		t.Logf("lab %s: torn down in %v", l.Prefix, time.Since(start).Round(time.Millisecond))
	}()
	for _, n := range l.all {
		killAll(n.Name)
	}
	for _, n := range l.all {
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Errorf("lab: ip netns del %s: %v: %s", n.Name, err, out)
		}
		removeNetnsEtc(n.Name)
	}
	os.Remove(filepath.Join(registryDir, l.Prefix))
}

// removeNetnsEtc removes /etc/netns/<ns>, the per-namespace files (a
// resolv.conf) that `ip netns exec` mounts, which a test may have made.
func removeNetnsEtc(ns string) {
	if ns != "" && !strings.ContainsAny(ns, "/.") {
		os.RemoveAll(filepath.Join("/etc/netns", ns))
	}
}

// registryDir records which process owns each lab prefix, so that a later
// New can remove the labs of a test binary that died without running its
// cleanups (killed, or "panic: test timed out").
const registryDir = "/run/pcpgw-lab"

// register records that this process owns prefix and dir.
func register(prefix, dir string) error {
	if err := os.MkdirAll(registryDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(registryDir, prefix), []byte(procID(os.Getpid())+"\n"+dir+"\n"), 0o644)
}

// procID identifies a process across pid reuse: its pid and start time.
func procID(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	// Fields after the comm: state is field 3, starttime field 22.
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return strconv.Itoa(pid) + " " + f[19]
}

// sweepStale removes the namespaces of labs whose owning process is gone.
func sweepStale() {
	ents, err := os.ReadDir(registryDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		f := filepath.Join(registryDir, e.Name())
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		owner, dir, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		pid, _, _ := strings.Cut(owner, " ")
		if n, err := strconv.Atoi(pid); err == nil && owner == procID(n) {
			continue // alive
		}
		left, _ := Leftovers(e.Name())
		for _, ns := range left {
			killAll(ns)
		}
		for _, ns := range left {
			exec.Command("ip", "netns", "del", ns).Run()
			removeNetnsEtc(ns)
		}
		if filepath.IsAbs(dir) && filepath.Dir(dir) != "/" {
			os.RemoveAll(dir)
			os.Remove(filepath.Dir(dir)) // the test's temp root, when empty
		}
		os.Remove(f)
	}
}

// killAll SIGKILLs every process in namespace name (`ip netns pids`) until
// none is left, for at most 5 s.
func killAll(name string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := netnsPids(name)
		if len(pids) == 0 || time.Now().After(deadline) {
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// netnsPids lists the live (non-zombie) processes in namespace name.
func netnsPids(name string) []int {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid exists and is not a zombie (the init of a
// container may not reap orphans quickly).
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	st := s[i+2]
	return st != 'Z' && st != 'X'
}

// Leftovers returns the namespaces in /run/netns whose names start with
// prefix: after a lab's cleanup there must be none with its Prefix.
func Leftovers(prefix string) ([]string, error) {
	ents, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var left []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			left = append(left, e.Name())
		}
	}
	return left, nil
}

// Eventually polls cond every 20 ms until it returns true, and fails the
// test with t.Fatalf(format, args...) when timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !poll(timeout, cond) {
		t.Fatalf(format, args...)
	}
}

// poll calls cond every 20 ms until it returns true (then poll returns
// true) or timeout passes (false). cond runs at least once.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
