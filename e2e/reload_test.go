package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// TestPinholesOffOnReload (issue 17.9): ipv6_pinholes turned off in the
// configuration and reloaded (SIGHUP) closes the open pinhole (the
// internet side no longer reaches the LAN host over IPv6), tells the
// WANIPv6FirewallControl subscriber (InboundPinholeAllowed 0, GENA), and
// upnpc -S says inbound pinholes are not allowed; turned on again, it is
// evented again.
func TestPinholesOffOnReload(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	conf := l.Dir + "/pcpgw.conf"
	write := func(pinholes string) {
		t.Helper()
		s := "config pcpgw 'main'\n\toption ipv6_firewall '1'\n\toption ipv6_pinholes '" + pinholes + "'\n"
		if err := os.WriteFile(conf, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("1")
	p := l.StartPcpgw(t, "-c", conf, "--pcp-server", lab.CGN4)

	host6 := netip.MustParseAddr(lab.LANHost6)
	var ln net.Listener
	var err error
	l.LAN.Do(t, func() { ln, err = net.Listen("tcp6", netip.AddrPortFrom(host6, 8090).String()) })
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello from 8090\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	target := netip.AddrPortFrom(host6, 8090)
	reaches := func() bool {
		s, err := reach(t, l.ISP, "tcp", target)
		return err == nil && s == "hello from 8090"
	}

	events := gatherNOTIFY(t, l.LAN, netip.AddrPortFrom(lanHost, 8095))
	lab.Eventually(t, 10*time.Second, func() bool {
		code, _ := igdRequest(t, l, fmt.Sprintf("SUBSCRIBE /igd2/WANIPv6Firewall1/evt HTTP/1.1\r\nHost: %s:5000\r\nCALLBACK: <http://%s:8095/fw>\r\nNT: upnp:event\r\nTIMEOUT: Second-300\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", lab.CPELAN4, lanHost))
		return code == 200
	}, "SUBSCRIBE never accepted")
	if ev := events.next(t); !strings.Contains(ev.body, "<InboundPinholeAllowed>1</InboundPinholeAllowed>") {
		t.Fatalf("initial event:\n%s", ev.body)
	}

	igd2 := "http://[" + lab.CPELAN6 + "]:5000/igd2.xml" // a pinhole is asked for by its IPv6 host
	upnpc := func(args ...string) string {
		t.Helper()
		out, _ := l.LAN.Output("upnpc", append([]string{"-i", "-u", igd2}, args...)...)
		return out
	}
	out := upnpc("-A", "", "0", lab.LANHost6, "8090", "6", "600")
	if upnpcPinholeID.FindStringSubmatch(out) == nil {
		t.Fatalf("upnpc -A: no pinhole:\n%s", out)
	}
	lab.Eventually(t, 10*time.Second, reaches, "%v not reachable through the pinhole", target)

	write("0")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	ev := events.next(t)
	if !strings.Contains(ev.body, "<InboundPinholeAllowed>0</InboundPinholeAllowed>") || ev.Header.Get("SEQ") != "1" {
		t.Errorf("event after pinholes off: SEQ %q\n%s", ev.Header.Get("SEQ"), ev.body)
	}
	lab.Eventually(t, 10*time.Second, func() bool { return !reaches() }, "%v still reachable with pinholes off", target)
	if out := upnpc("-S"); !strings.Contains(out, "Inbound Pinhole Allowed: No") {
		t.Errorf("upnpc -S with pinholes off:\n%s", out)
	}
	if out := upnpc("-A", "", "0", lab.LANHost6, "8090", "6", "600"); upnpcPinholeID.MatchString(out) {
		t.Errorf("a pinhole opened with pinholes off:\n%s", out)
	}
	if n := status(t, p).Pinholes; n != 0 {
		t.Errorf("status: %d pinholes", n)
	}

	write("1")
	p.Signal(syscall.SIGHUP)
	if ev := events.next(t); !strings.Contains(ev.body, "<InboundPinholeAllowed>1</InboundPinholeAllowed>") {
		t.Errorf("event after pinholes on:\n%s", ev.body)
	}
}
