package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/lab"
)

// lanAddrs are the CPE's LAN addresses in the lab (LAB.md).
var lanAddrs = []string{"192.0.2.1", "2001:db8:1::1"}

// listeners returns the local addresses of the listening TCP sockets and
// the unconnected UDP sockets in ns, from the kernel's socket table.
func listeners(t *testing.T, ns *lab.NS) []string {
	t.Helper()
	out := ns.Run(t, "ss", "-H", "-ltun")
	var addrs []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 {
			addrs = append(addrs, f[0]+" "+f[4])
		}
	}
	return addrs
}

// TestDaemonSkeleton: pcpgw run in cpe listens only on LAN addresses,
// answers `pcpgw status --json` on its socket, and on SIGTERM exits 0
// within 2 s removing its socket and its nftables table.
func TestDaemonSkeleton(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	p := l.StartPcpgw(t, "--pcp-server", "100.64.0.1")

	var st control.Status
	if err := json.Unmarshal([]byte(p.CLI(t, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != "nat444" || st.ModeConfig != "auto" || st.WANAddr != "100.64.0.2" {
		t.Errorf("status: mode %q (config %q), WAN %q; want nat444 chosen by auto on 100.64.0.2", st.Mode, st.ModeConfig, st.WANAddr)
	}
	if len(st.Listeners) == 0 {
		t.Errorf("status shows no listeners")
	}
	lab.Eventually(t, 10*time.Second, func() bool {
		var s control.Status
		json.Unmarshal([]byte(p.CLI(t, "status", "--json")), &s)
		return s.External == "203.0.113.1"
	}, "the provider's external address never showed in status")
	var rows []control.Row
	if err := json.Unmarshal([]byte(p.CLI(t, "list", "--json")), &rows); err != nil || len(rows) != 0 {
		t.Errorf("list: %v %v, want an empty list", rows, err)
	}

	// Nothing listens on the WAN side or on a wildcard address.
	ls := listeners(t, l.CPE)
	if len(ls) == 0 {
		t.Fatal("no listening sockets in cpe")
	}
	for _, s := range ls {
		proto, local, _ := strings.Cut(s, " ")
		ap, err := parseSSAddr(local)
		if err != nil {
			t.Errorf("cannot read socket address %q: %v", local, err)
			continue
		}
		a := ap.Addr()
		switch {
		case proto == "udp" && a == netip.MustParseAddr("100.64.0.2") && ap.Port() >= 32768:
			// The PCP client's own socket toward the provider: an
			// ephemeral port, unconnected so that it can count forged
			// answers (RFC 6887 §8.3); it serves nothing.
		case a.IsMulticast():
			// Group memberships (SSDP, PCP ANNOUNCE) are bound to the group.
		case a.IsLinkLocalUnicast():
			// fe80:: on the LAN interface (NAT-PMP/PCP on IPv6 link-local).
		case a.IsUnspecified():
			t.Errorf("%s socket on a wildcard address %s: reachable from the WAN", proto, local)
		default:
			ok := false
			for _, la := range lanAddrs {
				ok = ok || a == netip.MustParseAddr(la)
			}
			if !ok {
				t.Errorf("%s socket on %s, not a LAN address", proto, local)
			}
		}
	}
	t.Logf("listeners: %v", ls)

	if !strings.Contains(l.CPE.Run(t, "nft", "list", "tables"), "pcpgw") {
		t.Errorf("no pcpgw table while running")
	}
	start := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(2 * time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v (%v)\n%s", err, time.Since(start), p.Output())
	}
	if _, err := os.Stat(p.Socket); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
	if out := l.CPE.Run(t, "nft", "list", "tables"); strings.Contains(out, "pcpgw") {
		t.Errorf("nftables table left behind:\n%s", out)
	}
}

// parseSSAddr reads a local address as ss prints it: 1.2.3.4:5, *:5,
// [2001:db8::1]:5, [fe80::1]%eth0:5.
func parseSSAddr(s string) (netip.AddrPort, error) {
	if rest, ok := strings.CutPrefix(s, "*:"); ok {
		s = "0.0.0.0:" + rest
	}
	if i := strings.IndexByte(s, '%'); i >= 0 && !strings.HasPrefix(s, "[") {
		// 192.0.2.1%eth0:5351 (bound to a device): drop the device.
		j := strings.LastIndexByte(s, ':')
		s = s[:i] + s[j:]
	}
	if strings.HasPrefix(s, "[") {
		host, rest, _ := strings.Cut(s[1:], "]")
		i := strings.LastIndexByte(rest, ':')
		if i < 0 {
			return netip.AddrPort{}, fmt.Errorf("no port")
		}
		return netip.ParseAddrPort("[" + host + "]" + rest[i:])
	}
	return netip.ParseAddrPort(s)
}
