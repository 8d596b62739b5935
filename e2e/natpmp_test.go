package e2e

import (
	"bufio"
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
	npServe(t, l, services["tcp"], services["udp"])
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
			s, err := npReach(t, l.Net, proto, addr)
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
		if s, err := npReach(t, l.Net, proto, netip.AddrPortFrom(npCGNPublic, port)); err == nil && strings.HasPrefix(s, "hello") {
			t.Errorf("%s %d still reaches the LAN host after the delete", proto, port)
		}
	}
}

// npServe runs a TCP service on tcpPort and a UDP service on udpPort of the
// LAN host that answer "hello from <port>", until the test ends.
func npServe(t *testing.T, l *lab.Lab, tcpPort, udpPort uint16) {
	t.Helper()
	var tl net.Listener
	var ul net.PacketConn
	var err error
	l.LAN.Do(t, func() {
		if tl, err = net.Listen("tcp4", netip.AddrPortFrom(npLANHost, tcpPort).String()); err != nil {
			return
		}
		ul, err = net.ListenPacket("udp4", netip.AddrPortFrom(npLANHost, udpPort).String())
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello from %d\n", tcpPort)
			c.Close()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			_, from, err := ul.ReadFrom(buf)
			if err != nil {
				return
			}
			ul.WriteTo(fmt.Appendf(nil, "hello from %d\n", udpPort), from)
		}
	}()
	t.Cleanup(func() {
		tl.Close()
		ul.Close()
		wg.Wait()
	})
}

// npReach connects from ns to addr and returns the first line it answers
// (for udp, the answer to one datagram), within 2 s.
func npReach(t *testing.T, ns *lab.NS, proto string, addr netip.AddrPort) (string, error) {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.DialTimeout(proto, addr.String(), 2*time.Second) })
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if proto == "udp" {
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return "", err
		}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
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
	lab.Eventually(t, timeout, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		gotPCP, gotNATPMP := false, false
		for _, r := range a.pcp {
			gotPCP = gotPCP || (r.Opcode == pcp.OpAnnounce && r.Result == pcp.Success)
		}
		for _, r := range a.natpmp {
			gotNATPMP = gotNATPMP || (r.Opcode == pcp.NATPMPOpExternalAddr && r.Result == pcp.NATPMPSuccess && r.ExternalAddr == npCGNPublic)
		}
		return gotPCP && gotNATPMP
	}, "announcements on 224.0.0.1:5350: want a PCP ANNOUNCE and the NAT-PMP address %s", npCGNPublic)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.bad) > 0 {
		t.Errorf("unexpected announcements: %v", a.bad)
	}
}
