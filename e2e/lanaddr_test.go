package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/lab"
)

// TestLANAddressChange: an address added to the LAN interface while pcpgw
// runs (a second IPv4 subnet, a new IPv6 prefix from the provider) gets
// the IGD's HTTP listener within the rescan (5 s) and the real upnpc
// drives the IGD there; a removed address loses its listener.
func TestLANAddressChange(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{Local: true})
	p := l.StartPcpgw(t, "--http-port", "5000")
	listeners := func() []string {
		t.Helper()
		var st control.Status
		if err := json.Unmarshal([]byte(p.CLI(t, "status", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		return st.Listeners
	}
	const v4, v6 = "192.0.2.2", "2001:db8:1:2::1"
	l.CPE.Run(t, "ip", "addr", "add", v4+"/24", "dev", l.CPELANIf)
	l.CPE.Run(t, "ip", "addr", "add", v6+"/64", "dev", l.CPELANIf, "nodad")
	var ls []string
	lab.Eventually(t, 15*time.Second, func() bool {
		ls = listeners()
		return slices.Contains(ls, "tcp "+v4+":5000") && slices.Contains(ls, "tcp ["+v6+"]:5000")
	}, "no IGD listener on the added addresses: %v", &ls)

	var status string
	lab.Eventually(t, 10*time.Second, func() bool {
		status, _ = l.LAN.Output("upnpc", "-i", "-u", "http://"+v4+":5000/igd1.xml", "-s")
		return strings.Contains(status, "ExternalIPAddress = "+l.WANAddr4())
	}, "upnpc through the added address")
	out, _ := l.LAN.Output("upnpc", "-i", "-u", "http://"+v4+":5000/igd1.xml", "-a", lab.LANHost4, "8080", "18080", "TCP", "3600")
	if !strings.Contains(out, "is redirected to internal "+lab.LANHost4+":8080") {
		t.Errorf("upnpc -a through the added address:\n%s", out)
	}
	// The original address still serves.
	if out, _ := l.LAN.Output("upnpc", "-i", "-u", "http://"+lab.CPELAN4+":5000/igd1.xml", "-l"); !strings.Contains(out, "18080") {
		t.Errorf("upnpc -l through the first address:\n%s", out)
	}

	// An address added whose HTTP port another program holds is skipped:
	// the IGD goes on serving the others.
	// The other program binds first (ip_nonlocal_bind: before the
	// address exists), so that pcpgw's rescan cannot take the port.
	const v4b = "192.0.2.3"
	l.CPE.Run(t, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind")
	l.CPE.Start(t, "nc", "-l", "-k", "-s", v4b, "-p", "5000")
	lab.Eventually(t, 5*time.Second, func() bool {
		out, _ := l.CPE.Output("ss", "-Hltn", "src", v4b+":5000")
		return strings.Contains(out, v4b+":5000")
	}, "nc does not listen on %s:5000", v4b)
	l.CPE.Run(t, "ip", "addr", "add", v4b+"/24", "dev", l.CPELANIf)
	// pcpgw has seen it once its log says so (the rescan is every 5 s).
	lab.Eventually(t, 15*time.Second, func() bool {
		return strings.Contains(p.Output(), v4b+"/24")
	}, "pcpgw did not notice %s", v4b)
	lab.Eventually(t, 15*time.Second, func() bool {
		ls = listeners()
		return slices.Contains(ls, "tcp "+lab.CPELAN4+":5000") && slices.Contains(ls, "tcp "+v4+":5000") && !slices.Contains(ls, "tcp "+v4b+":5000")
	}, "with %s:5000 held by another program, want the IGD on the other addresses: %v", v4b, &ls)
	if out, _ := l.LAN.Output("upnpc", "-i", "-u", "http://"+lab.CPELAN4+":5000/igd1.xml", "-l"); !strings.Contains(out, "18080") {
		t.Errorf("upnpc -l through the first address with %s's port held:\n%s", v4b, out)
	}
	l.CPE.Run(t, "ip", "addr", "del", v4b+"/24", "dev", l.CPELANIf)

	l.CPE.Run(t, "ip", "addr", "del", v4+"/24", "dev", l.CPELANIf)
	lab.Eventually(t, 15*time.Second, func() bool {
		ls = listeners()
		return !slices.Contains(ls, "tcp "+v4+":5000")
	}, "the removed address keeps its listener: %v", &ls)
	if !slices.Contains(listeners(), "tcp "+lab.CPELAN4+":5000") {
		t.Errorf("the first address lost its listener: %v", listeners())
	}
}
