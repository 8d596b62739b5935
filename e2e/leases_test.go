package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// TestDHCPLeaseEnds (issue 17.6, RFC 6970 §5.10): when the LAN host's
// DHCP lease ends (dnsmasq rewrites its lease file without it), its
// mappings are deleted at pcpgw, in the kernel and at the provider; a
// static forward to it stays.
func TestDHCPLeaseEnds(t *testing.T) {
	dir := t.TempDir()
	leases := filepath.Join(dir, "dhcp.leases")
	line := "0 02:00:00:00:00:01 " + lab.LANHost4 + " lanhost *\n"
	if err := os.WriteFile(leases, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "pcpgw.conf")
	if err := os.WriteFile(conf, []byte("config pcpgw 'main'\n\toption dhcp_leases '"+leases+"'\n\n"+
		"config forward 'nas'\n\toption proto 'tcp'\n\toption ext_port '18443'\n\toption int_addr '"+lab.LANHost4+"'\n\toption int_port '8443'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, m, p := startNAT444(t, lab.MiniupnpdOptions{}, "-c", conf)
	natpmpMapTCP(t, l, 8097, 18097, 3600)
	lab.Eventually(t, 10*time.Second, func() bool { return len(list(t, p)) == 2 && m.DNATCount(t) == 2 },
		"mappings not made: %+v", list(t, p))
	// Another host's lease changes: nothing happens to this one.
	if err := os.WriteFile(leases, []byte(line+"0 02:00:00:00:00:02 192.0.2.101 other *\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second) // one poll of the file (5 s) must pass and delete nothing
	if n := len(list(t, p)); n != 2 {
		t.Fatalf("%d mappings after another host's lease changed", n)
	}
	if err := os.WriteFile(leases, []byte("0 02:00:00:00:00:02 192.0.2.101 other *\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, 15*time.Second, func() bool {
		rows := list(t, p)
		return len(rows) == 1 && rows[0].Origin == "static" && m.DNATCount(t) == 1 && kernelForwards(t, l) == 1
	}, "after the lease ended: list %+v, CGN %d DNATs, kernel %d", list(t, p), m.DNATCount(t), kernelForwards(t, l))
}
