package lab

import (
	"strings"
	"testing"
	"time"
)

// TestDSLiteTopology: IPv4 between cpe and isp goes over the softwire
// (192.0.0.2 - 192.0.0.1), IPv6 over the uplink, which has no IPv4; isp
// reaches the LAN's IPv4 through the softwire.
func TestDSLiteTopology(t *testing.T) {
	t.Parallel()
	l := New(t, Options{DSLite: true})
	if l.WANAddr4() != B4Addr4 || !strings.HasSuffix(l.CPEWANIf, "ds") || !strings.HasSuffix(l.CPEWAN6If, "c1") ||
		!strings.HasSuffix(l.ISPSoftwireIf, "a0") {
		t.Errorf("names: WAN %s WAN6 %s softwire %s, WAN address %s", l.CPEWANIf, l.CPEWAN6If, l.ISPSoftwireIf, l.WANAddr4())
	}
	for _, c := range []struct {
		from *NS
		to   string
	}{
		{l.CPE, AFTRAddr4},
		{l.CPE, CGN6},
		{l.LAN, CGN6},
		{l.ISP, LANHost4}, // through the softwire
		{l.ISP, LANHost6},
	} {
		if err := c.from.Ping(c.to, 3*time.Second); err != nil {
			t.Error(err)
		}
	}
	if out := l.CPE.Run(t, "ip", "-4", "addr", "show", "dev", l.CPEWAN6If); strings.Contains(out, "inet ") {
		t.Errorf("the IPv6 uplink holds IPv4:\n%s", out)
	}
	if out := l.CPE.Run(t, "ip", "-6", "addr", "show", "dev", l.CPEWANIf); strings.Contains(out, "inet6 ") {
		t.Errorf("the softwire holds IPv6:\n%s", out)
	}
	if out := l.CPE.Run(t, "ip", "-4", "route", "get", NetHost4); !strings.Contains(out, "dev "+l.CPEWANIf) {
		t.Errorf("IPv4 does not leave over the softwire:\n%s", out)
	}
}
