package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/pcp"
	"golang.org/x/net/ipv4"
)

// Addresses of LAB.md.
var (
	npLANHost   = netip.MustParseAddr(lab.LANHost4)
	npCPELAN    = netip.MustParseAddr(lab.CPELAN4)
	npCGNPublic = netip.MustParseAddr(lab.CGNPublic4)
)

// natpmpcMapped matches natpmpc's report of a mapping.
var natpmpcMapped = regexp.MustCompile(`Mapped public port (\d+) protocol (TCP|UDP) to local port (\d+) liftime (\d+)`)

// TestNATPMPClient drives pcpgw with the real natpmpc (libnatpmp) from the
// LAN host, miniupnpd being the provider's CGN (REQUIREMENTS 20-23):
// natpmpc prints the CGN's public address 203.0.113.1; -a makes a TCP and a
// UDP mapping that a host in namespace net reaches at 203.0.113.1:port;
// -a with lifetime 0 deletes them (the CGN's DNAT goes too). A listener on
// 224.0.0.1:5350 in the LAN namespace receives pcpgw's announcements from
// 192.0.2.1:5351: the PCP ANNOUNCE and the NAT-PMP external address.
func TestNATPMPClient(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})

	ann := listenAnnouncements(t, l)
	l.StartPcpgw(t, "--pcp-server", "100.64.0.1")

	natpmpc := func(args ...string) string {
		t.Helper()
		out, err := l.LAN.Output("natpmpc", append([]string{"-g", npCPELAN.String()}, args...)...)
		if err != nil {
			t.Logf("natpmpc %v: %v\n%s", args, err, out)
		}
		return out
	}
	lab.Eventually(t, 15*time.Second, func() bool {
		return strings.Contains(natpmpc(), "Public IP address : "+npCGNPublic.String())
	}, "natpmpc never printed the provider's public address %s", npCGNPublic)

	ann.wait(t, 15*time.Second)

	services := map[string]uint16{"tcp": 8080, "udp": 8081}
	serveLANPorts(t, l, services["tcp"], services["udp"])
	external := map[string]uint16{}
	for _, proto := range []string{"tcp", "udp"} {
		internal := services[proto]
		out := natpmpc("-a", strconv.Itoa(int(internal)+10000), strconv.Itoa(int(internal)), proto, "3600")
		mm := natpmpcMapped.FindStringSubmatch(out)
		if mm == nil {
			t.Fatalf("natpmpc -a %s: no mapping:\n%s", proto, out)
		}
		port, _ := strconv.Atoi(mm[1])
		life, _ := strconv.Atoi(mm[4])
		if mm[2] != strings.ToUpper(proto) || mm[3] != strconv.Itoa(int(internal)) || port == 0 || life <= 0 || life > 3600 {
			t.Errorf("natpmpc -a %s: %q", proto, mm[0])
		}
		external[proto] = uint16(port)
		t.Logf("natpmpc: %s", mm[0])
		addr := netip.AddrPortFrom(npCGNPublic, uint16(port))
		lab.Eventually(t, 10*time.Second, func() bool {
			s, err := reach(t, l.Net, proto, addr)
			return err == nil && s == fmt.Sprintf("hello from %d", internal)
		}, "%s %v from net never reached the LAN host's port %d", proto, addr, internal)
	}
	if n := m.DNATCount(t); n < 2 {
		t.Errorf("the CGN holds %d DNAT rules, want the TCP and UDP mappings", n)
	}

	// Asking again for the same internal port returns the same mapping.
	if mm := natpmpcMapped.FindStringSubmatch(natpmpc("-a", "0", "8080", "tcp", "3600")); mm == nil || mm[1] != strconv.Itoa(int(external["tcp"])) {
		t.Errorf("renewal of TCP 8080: %v, want external port %d", mm, external["tcp"])
	}

	// Deletes: TCP 8080, then all UDP mappings of the host (internal port 0).
	before := m.DNATCount(t)
	natpmpc("-a", "0", "8080", "tcp", "0")
	natpmpc("-a", "0", "0", "udp", "0")
	lab.Eventually(t, 10*time.Second, func() bool { return m.DNATCount(t) <= before-2 },
		"the CGN still holds the deleted mappings (%d DNAT rules, %d before)", m.DNATCount(t), before)
	for proto, port := range external {
		if s, err := reach(t, l.Net, proto, netip.AddrPortFrom(npCGNPublic, port)); err == nil && strings.HasPrefix(s, "hello") {
			t.Errorf("%s %d still reaches the LAN host after the delete", proto, port)
		}
	}
}

// announcements collects what arrives on 224.0.0.1:5350 in the LAN namespace.
type announcements struct {
	mu     sync.Mutex
	natpmp []pcp.NATPMPResponse
	pcp    []pcp.Response
	bad    []string
	done   chan struct{}
}

func listenAnnouncements(t *testing.T, l *lab.Lab) *announcements {
	t.Helper()
	var c *net.UDPConn
	l.LAN.Do(t, func() {
		ifi, err := net.InterfaceByName(l.LANIf)
		if err != nil {
			t.Fatal(err)
		}
		if c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero, Port: pcp.ClientPort}); err != nil {
			t.Fatal(err)
		}
		if err := ipv4.NewPacketConn(c).JoinGroup(ifi, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 1)}); err != nil {
			t.Fatal(err)
		}
	})
	a := &announcements{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			a.mu.Lock()
			switch {
			case from != netip.AddrPortFrom(npCPELAN, pcp.ServerPort):
				a.bad = append(a.bad, fmt.Sprintf("from %v: %x", from, buf[:n]))
			case n > 0 && buf[0] == pcp.VersionNATPMP:
				if r, err := pcp.ParseNATPMPResponse(buf[:n]); err == nil {
					a.natpmp = append(a.natpmp, r)
				} else {
					a.bad = append(a.bad, fmt.Sprintf("%x: %v", buf[:n], err))
				}
			default:
				if r, err := pcp.ParseResponse(buf[:n]); err == nil {
					a.pcp = append(a.pcp, r)
				} else {
					a.bad = append(a.bad, fmt.Sprintf("%x: %v", buf[:n], err))
				}
			}
			a.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-a.done
	})
	return a
}

// wait waits for a PCP ANNOUNCE and a NAT-PMP announcement of the
// provider's address, and checks that nothing else arrived.
func (a *announcements) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	a.waitFor(t, timeout, npCGNPublic)
}

// waitFor is wait for the external address ext.
func (a *announcements) waitFor(t *testing.T, timeout time.Duration, ext netip.Addr) {
	t.Helper()
	lab.Eventually(t, timeout, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		gotPCP, gotNATPMP := false, false
		for _, r := range a.pcp {
			gotPCP = gotPCP || (r.Opcode == pcp.OpAnnounce && r.Result == pcp.Success)
		}
		for _, r := range a.natpmp {
			gotNATPMP = gotNATPMP || (r.Opcode == pcp.NATPMPOpExternalAddr && r.Result == pcp.NATPMPSuccess && r.ExternalAddr == ext)
		}
		return gotPCP && gotNATPMP
	}, "announcements on 224.0.0.1:5350: want a PCP ANNOUNCE and the NAT-PMP address %s", ext)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.bad) > 0 {
		t.Errorf("unexpected announcements: %v", a.bad)
	}
}

// TestPCPClientLAN: a PCP client on the LAN host (RFC 6887 requests made
// with package pcp) through pcpgw acting as an RFC 7648 proxy, miniupnpd
// being the provider's PCP server (REQUIREMENTS 25, 29): MAP gives the
// CGN's public address and a port that net reaches; a renewal with the
// same nonce keeps the port; a delete with another nonce is NOT_AUTHORIZED
// and with the mapping's nonce removes it; ANNOUNCE is answered with
// lifetime 0; THIRD_PARTY is refused (UNSUPP_OPTION); a MAP for the host's
// IPv6 address is answered as a firewall, external = internal.
func TestPCPClientLAN(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	l.StartPcpgw(t, "--pcp-server", "100.64.0.1")
	serveLANPorts(t, l, 8090, 8091)

	nonce := pcp.Nonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	mapReq := func(lifetime uint32, n pcp.Nonce, opts ...pcp.Option) pcp.Request {
		return pcp.Request{Opcode: pcp.OpMap, Lifetime: lifetime, Client: npLANHost, Options: opts,
			Map: &pcp.Map{Nonce: n, Protocol: 6, InternalPort: 8090, ExternalPort: 18090}}
	}
	var resp pcp.Response
	lab.Eventually(t, 15*time.Second, func() bool {
		var err error
		resp, err = pcpAsk(t, l.LAN, npCPELAN, mapReq(600, nonce))
		return err == nil && resp.Result == pcp.Success
	}, "PCP MAP never succeeded: %+v", resp)
	if resp.Opcode != pcp.OpMap || resp.Map.Nonce != nonce || resp.Map.InternalPort != 8090 || resp.Map.Protocol != 6 ||
		resp.Map.ExternalAddr != npCGNPublic || resp.Map.ExternalPort == 0 || resp.Lifetime == 0 || resp.Lifetime > 600 {
		t.Fatalf("MAP response %+v %+v", resp, resp.Map)
	}
	ext := netip.AddrPortFrom(resp.Map.ExternalAddr, resp.Map.ExternalPort)
	t.Logf("PCP MAP: %v, lifetime %d, epoch %d", ext, resp.Lifetime, resp.Epoch)
	lab.Eventually(t, 10*time.Second, func() bool {
		s, err := reach(t, l.Net, "tcp", ext)
		return err == nil && s == "hello from 8090"
	}, "%v from net never reached the LAN host's port 8090", ext)

	// Renewal: same nonce, same external endpoint.
	if r, err := pcpAsk(t, l.LAN, npCPELAN, mapReq(600, nonce)); err != nil || r.Result != pcp.Success ||
		netip.AddrPortFrom(r.Map.ExternalAddr, r.Map.ExternalPort) != ext {
		t.Errorf("renewal: %+v %v", r, err)
	}
	// Client ANNOUNCE: answered here, lifetime 0.
	if r, err := pcpAsk(t, l.LAN, npCPELAN, pcp.Request{Opcode: pcp.OpAnnounce, Client: npLANHost}); err != nil ||
		r.Result != pcp.Success || r.Opcode != pcp.OpAnnounce || r.Lifetime != 0 {
		t.Errorf("ANNOUNCE: %+v %v", r, err)
	}
	// THIRD_PARTY from a LAN client: refused by default (RFC 6887 §13.1).
	tp := pcp.Option{Code: pcp.OptThirdParty, ThirdParty: netip.MustParseAddr("192.0.2.101")}
	if r, err := pcpAsk(t, l.LAN, npCPELAN, mapReq(600, nonce, tp)); err != nil || r.Result != pcp.UnsuppOption {
		t.Errorf("THIRD_PARTY: %+v %v, want UNSUPP_OPTION", r, err)
	}
	// Delete with another nonce: NOT_AUTHORIZED, the mapping stays.
	other := pcp.Nonce{12, 11, 10}
	del := func(n pcp.Nonce) pcp.Request {
		r := mapReq(0, n)
		r.Map.ExternalPort = 0
		return r
	}
	if r, err := pcpAsk(t, l.LAN, npCPELAN, del(other)); err != nil || r.Result != pcp.NotAuthorized {
		t.Errorf("delete with another nonce: %+v %v, want NOT_AUTHORIZED", r, err)
	}
	if s, err := reach(t, l.Net, "tcp", ext); err != nil || s != "hello from 8090" {
		t.Errorf("mapping gone after a refused delete: %q %v", s, err)
	}
	before := m.DNATCount(t)
	if r, err := pcpAsk(t, l.LAN, npCPELAN, del(nonce)); err != nil || r.Result != pcp.Success || r.Lifetime != 0 {
		t.Errorf("delete: %+v %v", r, err)
	}
	lab.Eventually(t, 10*time.Second, func() bool { return m.DNATCount(t) < before },
		"the CGN still holds the deleted mapping")

	// IPv6: a pinhole, answered as a firewall: external = internal.
	host6 := netip.MustParseAddr(lab.LANHost6)
	r6, err := pcpAsk(t, l.LAN, netip.MustParseAddr(lab.CPELAN6), pcp.Request{Opcode: pcp.OpMap, Lifetime: 600, Client: host6,
		Map: &pcp.Map{Nonce: nonce, Protocol: 6, InternalPort: 8090}})
	if err != nil || r6.Result != pcp.Success || r6.Map.ExternalAddr != host6 || r6.Map.ExternalPort != 8090 {
		t.Errorf("IPv6 MAP: %+v %v", r6, err)
	} else {
		t.Logf("IPv6 MAP: [%v]:%d lifetime %d", r6.Map.ExternalAddr, r6.Map.ExternalPort, r6.Lifetime)
	}
}
