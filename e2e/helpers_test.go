package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/pcp"
)

// Addresses of LAB.md.
var (
	lanHost   = netip.MustParseAddr("192.0.2.100")
	cpeLAN    = netip.MustParseAddr("192.0.2.1")
	cgnPublic = netip.MustParseAddr("203.0.113.1")
)

// serveLAN runs a TCP and a UDP service on the LAN host's port that answer
// "hello from <port>" to anything, until the test ends.
func serveLAN(t *testing.T, l *lab.Lab, port uint16) { serveLANPorts(t, l, port, port) }

// serveLANPorts runs the TCP service on tcpPort and the UDP one on udpPort.
func serveLANPorts(t *testing.T, l *lab.Lab, tcpPort, udpPort uint16) {
	t.Helper()
	var tl net.Listener
	var ul net.PacketConn
	var err error
	l.LAN.Do(t, func() {
		if tl, err = net.Listen("tcp4", netip.AddrPortFrom(lanHost, tcpPort).String()); err != nil {
			return
		}
		ul, err = net.ListenPacket("udp4", netip.AddrPortFrom(lanHost, udpPort).String())
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

// reach connects from ns to addr (tcp or udp) and returns the first line
// the far end sends (for udp: the answer to a datagram), within 2 s.
func reach(t *testing.T, ns *lab.NS, proto string, addr netip.AddrPort) (string, error) {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() {
		c, err = net.DialTimeout(proto, addr.String(), 2*time.Second)
	})
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

// reachable polls reach until it answers the LAN service's greeting or the
// timeout passes.
func reachable(t *testing.T, ns *lab.NS, proto string, addr netip.AddrPort, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if s, err := reach(t, ns, proto, addr); err == nil && strings.HasPrefix(s, "hello from") {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// natpmp sends a NAT-PMP request from the LAN host to pcpgw, retransmitted
// as RFC 6886 §3.1 asks (250 ms, doubling; pcpgw rate-limits each host) for
// up to about 4 s, and returns the answer.
func natpmp(t *testing.T, l *lab.Lab, req pcp.NATPMPRequest) (pcp.NATPMPResponse, error) {
	t.Helper()
	var c net.Conn
	var err error
	l.LAN.Do(t, func() {
		c, err = net.Dial("udp4", netip.AddrPortFrom(cpeLAN, pcp.ServerPort).String())
	})
	if err != nil {
		return pcp.NATPMPResponse{}, err
	}
	defer c.Close()
	b := req.AppendMarshal(nil)
	buf := make([]byte, 64)
	wait := 250 * time.Millisecond
	for try := 0; ; try++ {
		if _, err := c.Write(b); err != nil {
			return pcp.NATPMPResponse{}, err
		}
		c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		if err == nil {
			return pcp.ParseNATPMPResponse(buf[:n])
		}
		if try == 4 {
			return pcp.NATPMPResponse{}, err
		}
		wait *= 2
	}
}

// natpmpMapTCP maps the LAN host's TCP port with NAT-PMP and fails the test
// unless it succeeds.
func natpmpMapTCP(t *testing.T, l *lab.Lab, iport, eport uint16, life uint32) pcp.NATPMPResponse {
	t.Helper()
	r, err := natpmp(t, l, pcp.NATPMPRequest{Opcode: pcp.NATPMPOpMapTCP, InternalPort: iport, SuggestedExternalPort: eport, Lifetime: life})
	if err != nil {
		t.Fatalf("NAT-PMP map %d: %v", iport, err)
	}
	if r.Result != pcp.NATPMPSuccess {
		t.Fatalf("NAT-PMP map %d: result %v", iport, r.Result)
	}
	return r
}

func status(t *testing.T, p *lab.Pcpgw) control.Status {
	t.Helper()
	var s control.Status
	if err := json.Unmarshal([]byte(p.CLI(t, "status", "--json")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func list(t *testing.T, p *lab.Pcpgw) []control.Row {
	t.Helper()
	var rows []control.Row
	if err := json.Unmarshal([]byte(p.CLI(t, "list", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// pcpAsk sends req from ns to server:5351 and returns the response,
// retransmitted 250 ms apart doubling (RFC 6887 §8.1.1 in short) for up to
// about 4 s.
func pcpAsk(t *testing.T, ns *lab.NS, server netip.Addr, req pcp.Request) (pcp.Response, error) {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.Dial("udp", netip.AddrPortFrom(server, pcp.ServerPort).String()) })
	if err != nil {
		return pcp.Response{}, err
	}
	defer c.Close()
	b := req.AppendMarshal(nil)
	buf := make([]byte, pcp.MaxSize)
	for try, wait := 0, 250*time.Millisecond; ; try, wait = try+1, wait*2 {
		if _, err = c.Write(b); err != nil {
			return pcp.Response{}, err
		}
		c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		if err == nil {
			return pcp.ParseResponse(buf[:n])
		}
		if try == 4 {
			return pcp.Response{}, err
		}
	}
}

// pcpSocket is a LAN PCP client's socket bound to port on the LAN host,
// closed when the test ends: send sends a request to pcpgw, read returns
// the next PCP datagram from pcpgw within d (false: none), failing the
// test on one that does not parse and reporting one from elsewhere.
func pcpSocket(t *testing.T, l *lab.Lab, port int) (send func(b []byte), read func(d time.Duration) (pcp.Response, bool)) {
	t.Helper()
	var pc *net.UDPConn
	var err error
	l.LAN.Do(t, func() { pc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(lab.LANHost4), Port: port}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	server := netip.AddrPortFrom(npCPELAN, pcp.ServerPort)
	buf := make([]byte, pcp.MaxSize)
	send = func(b []byte) {
		if _, err := pc.WriteToUDPAddrPort(b, server); err != nil {
			t.Fatal(err)
		}
	}
	read = func(d time.Duration) (pcp.Response, bool) {
		pc.SetReadDeadline(time.Now().Add(d))
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return pcp.Response{}, false
			}
			if from != server {
				t.Errorf("PCP datagram from %v, not pcpgw's %v", from, server)
				continue
			}
			r, err := pcp.ParseResponse(buf[:n])
			if err != nil {
				t.Fatalf("%x: %v", buf[:n], err)
			}
			return r, true
		}
	}
	return send, read
}
