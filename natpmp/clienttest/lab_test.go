package clienttest

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// Addresses of LAB.md.
var (
	lanHost   = netip.MustParseAddr(lab.LANHost4)
	cpeLAN    = netip.MustParseAddr(lab.CPELAN4)
	cgnPublic = netip.MustParseAddr(lab.CGNPublic4)
)

// startLab builds the CGN lab with miniupnpd as the provider and pcpgw on
// the CPE.
func startLab(t *testing.T) (*lab.Lab, *lab.Miniupnpd) {
	t.Helper()
	lab.RequireRoot(t)
	lab.RequireMiniupnpd(t)
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	l.StartPcpgw(t, "--pcp-server", "100.64.0.1")
	return l, m
}

// serve runs a TCP or UDP service on the LAN host's port answering
// "hello from <port>", until the test ends.
func serve(t *testing.T, l *lab.Lab, proto string, port uint16) {
	t.Helper()
	addr := netip.AddrPortFrom(lanHost, port).String()
	msg := fmt.Sprintf("hello from %d\n", port)
	var wg sync.WaitGroup
	var closeFn func() error
	var err error
	l.LAN.Do(t, func() {
		if proto == "tcp" {
			var tl net.Listener
			if tl, err = net.Listen("tcp4", addr); err != nil {
				return
			}
			closeFn = tl.Close
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					c, err := tl.Accept()
					if err != nil {
						return
					}
					c.Write([]byte(msg))
					c.Close()
				}
			}()
			return
		}
		var ul net.PacketConn
		if ul, err = net.ListenPacket("udp4", addr); err != nil {
			return
		}
		closeFn = ul.Close
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1500)
			for {
				_, from, err := ul.ReadFrom(buf)
				if err != nil {
					return
				}
				ul.WriteTo([]byte(msg), from)
			}
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		closeFn()
		wg.Wait()
	})
}

// reached reports whether a connection from namespace net to addr gets the
// greeting of the LAN service on port want, polling for up to 10 s.
func reached(t *testing.T, l *lab.Lab, proto string, addr netip.AddrPort, want uint16) bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var c net.Conn
		var err error
		l.Net.Do(t, func() { c, err = net.DialTimeout(proto, addr.String(), 2*time.Second) })
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			if proto == "udp" {
				c.Write([]byte("ping\n"))
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.TrimSpace(line) == fmt.Sprintf("hello from %d", want) {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
