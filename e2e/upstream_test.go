package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/pcp"
)

// Issue 15: whatever NAT the home sits behind.

// waitUpstream waits until pcpgw's status names kind as its upstream.
func waitUpstream(t *testing.T, p *lab.Pcpgw, kind string) {
	t.Helper()
	lab.Eventually(t, 15*time.Second, func() bool { return status(t, p).Upstream.Kind == kind },
		"upstream never became %q: %+v", kind, status(t, p).Upstream)
}

// upnpcOut runs upnpc -i ARGS in the LAN host.
func upnpcOut(t *testing.T, l *lab.Lab, args ...string) string {
	t.Helper()
	out, err := l.LAN.Output("upnpc", append([]string{"-i", "-u", "http://" + lab.CPELAN4 + ":5000/igd1.xml"}, args...)...)
	if err != nil {
		t.Logf("upnpc %v: %v\n%s", args, err, out)
	}
	return out
}

// natpmpcOut runs natpmpc -g 192.0.2.1 ARGS in the LAN host (-a PUBLIC
// PRIVATE PROTO LIFETIME), up to three
// times until want appears (natpmpc takes a late answer to its first
// request for the answer to its retransmission on a loaded machine).
func natpmpcOut(t *testing.T, l *lab.Lab, want string, args ...string) string {
	t.Helper()
	var out string
	for range 3 {
		out, _ = l.LAN.Output("natpmpc", append([]string{"-g", lab.CPELAN4}, args...)...)
		if strings.Contains(out, want) {
			break
		}
	}
	return out
}

// TestUpstreamNATPMPBox: an ISP box in front of the router that speaks
// NAT-PMP and ignores PCP (miniupnpd with PCP dropped). pcpgw finds it
// by itself; natpmpc and upnpc on the LAN map ports that the internet
// host reaches through both NATs; a delete removes the mapping at both;
// the box rebooted with an empty table gets the mappings back within
// 10 s; its new external address reaches the LAN clients.
func TestUpstreamNATPMPBox(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{Box: lab.Box{DropPCP: true}})
	p := l.StartPcpgw(t)
	waitUpstream(t, p, "natpmp")
	st := status(t, p)
	if st.Upstream.Address != lab.CGN4+":5351" || st.Upstream.KindConfig != "auto" {
		t.Errorf("upstream %+v", st.Upstream)
	}
	if out := p.CLI(t, "list"); !strings.HasPrefix(out, "upstream: natpmp at "+lab.CGN4+":5351") {
		t.Errorf("pcpgw list:\n%s", out)
	}
	serveLAN(t, l, 8091)
	serveLAN(t, l, 8092)
	out := natpmpcOut(t, l, "Mapped public port 18091", "-a", "18091", "8091", "tcp", "3600")
	if !strings.Contains(out, "Mapped public port 18091 protocol TCP to local port 8091") {
		t.Fatalf("natpmpc -a:\n%s", out)
	}
	if out := natpmpcOut(t, l, "Public IP address", "-a", "18091", "8091", "tcp", "3600"); !strings.Contains(out, "Public IP address : "+lab.CGNPublic4) {
		t.Errorf("natpmpc: public address is not the box's:\n%s", out)
	}
	if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, 18091), 10*time.Second) {
		t.Fatalf("not reachable through both NATs\n%s", m.Ruleset(t))
	}
	out = upnpcOut(t, l, "-a", lab.LANHost4, "8092", "18092", "TCP", "3600")
	if !strings.Contains(out, "external "+lab.CGNPublic4+":18092 TCP is redirected to internal "+lab.LANHost4+":8092") {
		t.Fatalf("upnpc -a:\n%s", out)
	}
	if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, 18092), 10*time.Second) {
		t.Fatalf("upnpc's mapping not reachable through both NATs\n%s", m.Ruleset(t))
	}
	if n := m.DNATCount(t); n != 2 {
		t.Errorf("the box holds %d DNATs, want 2\n%s", n, m.Ruleset(t))
	}

	// A delete goes to the box too, and leaves the router's own NAT.
	upnpcOut(t, l, "-d", "18092", "TCP")
	lab.Eventually(t, 5*time.Second, func() bool { return m.DNATCount(t) == 1 && kernelForwards(t, l) == 1 },
		"after upnpc -d: the box holds %d DNATs, the router %d forwards; want 1 each\n%s", m.DNATCount(t), kernelForwards(t, l), m.Ruleset(t))
	if reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, 18092), 300*time.Millisecond) {
		t.Error("reachable after the delete")
	}

	// The box reboots with an empty table and a new external address.
	ann := listenAnnouncements(t, l)
	newPub := netip.MustParseAddr("203.0.113.3")
	l.ISP.Run(t, "ip", "addr", "del", lab.CGNPublic4+"/24", "dev", l.ISPPubIf)
	l.ISP.Run(t, "ip", "addr", "add", newPub.String()+"/24", "dev", l.ISPPubIf)
	m.Restart(t, true)
	start := time.Now()
	if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(newPub, 18091), 10*time.Second) {
		t.Fatalf("the mapping was not made again within 10 s of the box's reboot\n%s\n%+v", m.Ruleset(t), list(t, p))
	}
	t.Logf("reachable again %v after the box's reboot", time.Since(start).Round(time.Millisecond))
	lab.Eventually(t, 10*time.Second, func() bool {
		return status(t, p).External == newPub.String()
	}, "status does not show the box's new address: %+v", status(t, p))
	ann.waitFor(t, 10*time.Second, newPub)
	r, err := natpmp(t, l, pcp.NATPMPRequest{Opcode: pcp.NATPMPOpExternalAddr})
	if err != nil || r.ExternalAddr != newPub {
		t.Errorf("NAT-PMP external address %v %v, want %v", r.ExternalAddr, err, newPub)
	}

	// natpmpc's delete (lifetime 0) goes to the box and leaves the router.
	natpmpcOut(t, l, "Mapped public port", "-a", "18091", "8091", "tcp", "0")
	lab.Eventually(t, 5*time.Second, func() bool { return m.DNATCount(t) == 0 && kernelForwards(t, l) == 0 && len(list(t, p)) == 0 },
		"after natpmpc's delete: the box holds %d DNATs, the router %d forwards, list %+v\n%s", m.DNATCount(t), kernelForwards(t, l), list(t, p), m.Ruleset(t))
}

// TestUpstreamUPnPBox: an ISP box in front of the router that speaks UPnP
// IGD only (miniupnpd 2.3.9, IGD:2 and, in another run, IGD:1; NAT-PMP
// and PCP off). pcpgw finds it by SSDP on the WAN link and says which box
// it is; upnpc and natpmpc on the LAN map ports that the internet host
// reaches through both NATs; a delete removes the mapping at both; the
// box rebooted with an empty table gets every mapping back within 10 s;
// its new external address reaches the LAN clients (NAT-PMP
// announcement, GENA event, GetExternalIPAddress).
func TestUpstreamUPnPBox(t *testing.T) {
	lab.RequireRoot(t)
	for _, v1 := range []bool{false, true} {
		t.Run(map[bool]string{false: "IGD:2", true: "IGD:1"}[v1], func(t *testing.T) {
			t.Parallel()
			l := lab.New(t, lab.Options{})
			m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{Box: lab.Box{UPnP: true, NoPMP: true, IGDv1: v1}})
			p := l.StartPcpgw(t)
			waitUpstream(t, p, "upnp")
			st := status(t, p)
			if d := st.Upstream.Device; d == nil || d.FriendlyName != "ISP box" || d.Model != "LabBox" ||
				!strings.HasPrefix(st.Upstream.Address, lab.CGN4+":") || st.Upstream.External != lab.CGNPublic4 {
				t.Errorf("upstream %+v device %+v", st.Upstream, st.Upstream.Device)
			}
			if out := p.CLI(t, "status"); !strings.Contains(out, "upnp (auto): ISP box") {
				t.Errorf("pcpgw status:\n%s", out)
			}
			if out := p.CLI(t, "list"); !strings.HasPrefix(out, "upstream: upnp, ISP box") {
				t.Errorf("pcpgw list:\n%s", out)
			}
			serveLAN(t, l, 8091)
			serveLAN(t, l, 8092)
			out := upnpcOut(t, l, "-a", lab.LANHost4, "8092", "18092", "TCP", "3600")
			if !strings.Contains(out, "external "+lab.CGNPublic4+":18092 TCP is redirected to internal "+lab.LANHost4+":8092") {
				t.Fatalf("upnpc -a:\n%s", out)
			}
			if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, 18092), 10*time.Second) {
				t.Fatalf("upnpc's mapping not reachable through both NATs\n%s", m.Ruleset(t))
			}
			out = natpmpcOut(t, l, "Mapped public port 18091", "-a", "18091", "8091", "tcp", "3600")
			if !strings.Contains(out, "Mapped public port 18091 protocol TCP to local port 8091") {
				t.Fatalf("natpmpc -a:\n%s", out)
			}
			if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, 18091), 10*time.Second) {
				t.Fatalf("natpmpc's mapping not reachable through both NATs\n%s", m.Ruleset(t))
			}
			if n := m.DNATCount(t); n != 2 {
				t.Errorf("the box holds %d DNATs, want 2\n%s", n, m.Ruleset(t))
			}
			upnpcOut(t, l, "-d", "18092", "TCP")
			lab.Eventually(t, 5*time.Second, func() bool { return m.DNATCount(t) == 1 }, "the box still holds the deleted mapping\n%s", m.Ruleset(t))
			if reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, 18092), 300*time.Millisecond) {
				t.Error("reachable after the delete")
			}

			// The box reboots with an empty table and a new external address.
			ann := listenAnnouncements(t, l)
			events := gatherNOTIFY(t, l.LAN, netip.AddrPortFrom(lanHost, 8097))
			lab.Eventually(t, 10*time.Second, func() bool { return subscribeIGD(t, l, "http://192.0.2.100:8097/cb") == 200 },
				"SUBSCRIBE never accepted")
			events.next(t) // the initial event
			newPub := netip.MustParseAddr("203.0.113.3")
			l.ISP.Run(t, "ip", "addr", "del", lab.CGNPublic4+"/24", "dev", l.ISPPubIf)
			l.ISP.Run(t, "ip", "addr", "add", newPub.String()+"/24", "dev", l.ISPPubIf)
			m.SetExtIP(t, newPub.String())
			m.Restart(t, true)
			start := time.Now()
			if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(newPub, 18091), 10*time.Second) {
				t.Fatalf("the mapping was not made again within 10 s of the box's reboot\n%s\n%+v", m.Ruleset(t), list(t, p))
			}
			t.Logf("reachable again %v after the box's reboot", time.Since(start).Round(time.Millisecond))
			ann.waitFor(t, 15*time.Second, newPub)
			for {
				ev := events.next(t)
				if strings.Contains(ev.body, "<ExternalIPAddress>"+newPub.String()+"</ExternalIPAddress>") {
					break
				}
			}
			if out := upnpcOut(t, l, "-s"); !strings.Contains(out, "ExternalIPAddress = "+newPub.String()) {
				t.Errorf("upnpc -s after the change:\n%s", out)
			}
		})
	}
}

// TestUpstreamNone: the provider's NAT does no port control at all.
// pcpgw says so (status, advice), still makes the mappings on the router
// with its WAN address as the external one (upnpc and natpmpc succeed),
// and they work as soon as the box in front forwards to the router (its
// DMZ).
func TestUpstreamNone(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	l.StartPlainNAT(t)
	p := l.StartPcpgw(t)
	waitUpstream(t, p, "none")
	st := status(t, p)
	if st.Upstream.Advice == "" || st.External != lab.CPEWAN4 {
		t.Errorf("status %+v", st)
	}
	if out := p.CLI(t, "status"); !strings.Contains(out, "Nothing upstream forwards ports") || !strings.Contains(out, "none (auto)") {
		t.Errorf("pcpgw status:\n%s", out)
	}
	serveLAN(t, l, 8093)
	start := time.Now()
	out := upnpcOut(t, l, "-a", lab.LANHost4, "8093", "18093", "TCP", "3600")
	if !strings.Contains(out, "external "+lab.CPEWAN4+":18093 TCP is redirected to internal "+lab.LANHost4+":8093") {
		t.Fatalf("upnpc -a:\n%s", out)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("upnpc took %v", d)
	}
	out = natpmpcOut(t, l, "Mapped public port 18094", "-a", "18094", "8093", "udp", "3600")
	if !strings.Contains(out, "Mapped public port 18094 protocol UDP to local port 8093") {
		t.Fatalf("natpmpc -a:\n%s", out)
	}
	rows := list(t, p)
	if len(rows) != 2 || rows[0].Upstream != "none" || rows[0].External != lab.CPEWAN4+":18093" {
		t.Errorf("list %+v", rows)
	}
	if out := p.CLI(t, "list"); !strings.HasPrefix(out, "upstream: none: nothing upstream forwards ports") {
		t.Errorf("pcpgw list:\n%s", out)
	}
	ext := netip.AddrPortFrom(cgnPublic, 18093)
	if reachable(t, l.Net, "tcp", ext, 300*time.Millisecond) {
		t.Fatal("reachable without port forwarding at the provider")
	}
	// The ISP box forwards everything to the router (DMZ / exposed host).
	l.ISP.Run(t, "nft", "add", "rule", "inet", "cgn", "prerouting_pcp", "iifname", l.ISPPubIf, "dnat", "ip", "to", lab.CPEWAN4)
	if !reachable(t, l.Net, "tcp", ext, 5*time.Second) {
		t.Fatal("not reachable through the box's DMZ")
	}
}

// TestRequestsDuringDetection (issue 15, the symptom it opens with): LAN
// clients that ask while pcpgw still looks for its upstream (right after
// its start, nothing answering PCP, NAT-PMP or UPnP at the box) get the
// answer of the upstream found, not 501 or a network failure: upnpc and
// natpmpc at once after the start map on the router with its WAN address,
// once each (natpmpc asked once, without the helper's retries).
func TestRequestsDuringDetection(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	l.StartPlainNAT(t)
	serveLAN(t, l, 8097)
	p := l.StartPcpgw(t)
	start := time.Now()
	type result struct {
		out string
		d   time.Duration
	}
	igd, pmp := make(chan result, 1), make(chan result, 1)
	go func() {
		out, _ := l.LAN.Output("upnpc", "-i", "-u", "http://"+lab.CPELAN4+":5000/igd1.xml", "-a", lab.LANHost4, "8097", "18097", "TCP", "3600")
		igd <- result{out, time.Since(start)}
	}()
	go func() {
		out, _ := l.LAN.Output("natpmpc", "-g", lab.CPELAN4, "-a", "18098", "8097", "udp", "3600")
		pmp <- result{out, time.Since(start)}
	}()
	u, n := <-igd, <-pmp
	if st := status(t, p); st.Upstream.Kind != "none" {
		t.Errorf("upstream %q, want none", st.Upstream.Kind)
	}
	if !strings.Contains(u.out, "external "+lab.CPEWAN4+":18097 TCP is redirected to internal "+lab.LANHost4+":8097") {
		t.Errorf("upnpc -a at once after the start (%v):\n%s", u.d.Round(time.Millisecond), u.out)
	}
	if !strings.Contains(n.out, "Mapped public port 18098 protocol UDP to local port 8097") || !strings.Contains(n.out, "Public IP address : "+lab.CPEWAN4) {
		t.Errorf("natpmpc -a at once after the start (%v):\n%s", n.d.Round(time.Millisecond), n.out)
	}
	t.Logf("answered %v (upnpc) and %v (natpmpc) after the start", u.d.Round(time.Millisecond), n.d.Round(time.Millisecond))
	if rows := list(t, p); len(rows) != 2 {
		t.Errorf("list %+v, want the two mappings", rows)
	}
}

// TestUpstreamDetection: auto picks the right kind in each setup, and a
// configured one is obeyed.
func TestUpstreamDetection(t *testing.T) {
	lab.RequireRoot(t)
	tests := []struct {
		name string
		box  *lab.Box // nil: the plain NAT
		args []string
		want string
	}{
		{name: "CGN with PCP", box: &lab.Box{}, want: "pcp"},
		{name: "box with NAT-PMP", box: &lab.Box{DropPCP: true}, want: "natpmp"},
		{name: "box with UPnP IGD", box: &lab.Box{UPnP: true, NoPMP: true}, want: "upnp"},
		{name: "box with UPnP IGD and NAT-PMP", box: &lab.Box{UPnP: true, DropPCP: true}, want: "natpmp"},
		{name: "forced upnp at a box with everything", box: &lab.Box{UPnP: true}, args: []string{"--upstream", "upnp"}, want: "upnp"},
		{name: "no port control", want: "none"},
		{name: "forced natpmp at a PCP CGN", box: &lab.Box{}, args: []string{"--upstream", "natpmp"}, want: "natpmp"},
		{name: "forced none at a PCP CGN", box: &lab.Box{}, args: []string{"--upstream", "none"}, want: "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := lab.New(t, lab.Options{})
			if tt.box != nil {
				l.StartMiniupnpd(t, lab.MiniupnpdOptions{Box: *tt.box})
			} else {
				l.StartPlainNAT(t)
			}
			p := l.StartPcpgw(t, tt.args...)
			waitUpstream(t, p, tt.want)
			if tt.want == "none" {
				return
			}
			serveLAN(t, l, 8095)
			natpmpMapTCP(t, l, 8095, 18095, 600)
			if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, 18095), 10*time.Second) {
				t.Fatalf("not reachable through %s", tt.want)
			}
			// Hairpin (issue 17.8, RFC 7648 §3.1): the LAN host reaches the
			// service at the provider's address too, through the CPE.
			if !reachable(t, l.LAN, "tcp", netip.AddrPortFrom(cgnPublic, 18095), 5*time.Second) {
				t.Errorf("the LAN host does not reach %v:18095 (hairpin)", cgnPublic)
			}
		})
	}
}
