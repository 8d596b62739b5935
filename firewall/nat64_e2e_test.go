package firewall_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/pcpgw/pcpgw/firewall"
)

// TestPinholePrefix: a pinhole restricted to a source prefix (a NAT64's
// Pref64::/96) lets inbound IPv6 from inside the prefix through to the
// LAN host's port, not from outside it; Sync and deletion handle it as
// any element.
func TestPinholePrefix(t *testing.T) {
	l, fw := setup(t, true)
	listen(t, l.LAN, "[2001:db8:1::100]:9000")
	pfx := netip.MustParsePrefix("2001:db8:ff::/96") // holds isp's 2001:db8:ff::1
	pin := firewall.Pinhole{Proto: tcp, To: netip.MustParseAddrPort("[2001:db8:1::100]:9000"), RemotePrefix: pfx}
	wantReach(t, l.ISP, "tcp", "[2001:db8:1::100]:9000", false)
	apply(t, fw, firewall.Change{AddPinholes: []firewall.Pinhole{pin}})
	wantReach(t, l.ISP, "tcp", "[2001:db8:1::100]:9000", true)
	if n, err := fw.Packets(context.Background(), pin); err != nil || n == 0 {
		t.Errorf("packets through the pinhole: %d %v", n, err)
	}
	out := l.CPE.Run(t, "nft", "list", "set", "inet", "pcpgw", "pin6s")
	if !strings.Contains(out, "2001:db8:ff::/96 . 2001:db8:1::100 . tcp . 9000") {
		t.Errorf("set pin6s:\n%s", out)
	}
	// Outside the prefix: isp's 2001:db8:ff::1 is replaced by a source in
	// another /96 of the same link.
	other := firewall.Pinhole{Proto: tcp, To: pin.To, RemotePrefix: netip.MustParsePrefix("2001:db8:64::/96")}
	if err := fw.Sync(context.Background(), nil, []firewall.Pinhole{other}); err != nil {
		t.Fatal(err)
	}
	wantReach(t, l.ISP, "tcp", "[2001:db8:1::100]:9000", false)
	apply(t, fw, firewall.Change{DelPinholes: []firewall.Pinhole{other}})
	if out := l.CPE.Run(t, "nft", "list", "set", "inet", "pcpgw", "pin6s"); strings.Contains(out, "9000") {
		t.Errorf("pin6s after the delete:\n%s", out)
	}
	if err := (firewall.Pinhole{Proto: tcp, To: pin.To, RemotePrefix: pfx, RemotePort: 5}).Validate(); err == nil {
		t.Error("a prefix with a remote port accepted")
	}
}
