package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// upnpcRedirect matches a line of `upnpc -l`, for example
//
//	0 TCP 18080->192.0.2.100:8080  'desc' '' 3599
var upnpcRedirect = regexp.MustCompile(`(?m)^\s*\d+ (TCP|UDP)\s+(\d+)->([0-9.]+):(\d+)\s+'([^']*)'`)

// TestUPnPClient drives pcpgw's IGD with the real upnpc (miniupnpc 2.2.4,
// Debian) from the LAN host, miniupnpd being the provider's CGN
// (REQUIREMENTS 13-19, 30): SSDP discovery finds the IGD:1 root on
// 192.0.2.1; -s shows the CGN's public address 203.0.113.1; -e/-a make a
// TCP and a UDP mapping that a host in namespace net reaches at
// 203.0.113.1:port; -l lists them; -r maps for the current host; the IGD:2
// description (-u) serves -L (GetListOfPortMappings), -n
// (AddAnyPortMapping) and -N (DeletePortMappingRange); after -d the TCP
// port is no longer reachable.
func TestUPnPClient(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	l.StartPcpgw(t, "--pcp-server", lab.CGN4)

	upnpc := func(args ...string) string {
		t.Helper()
		// -i: upnpc >= 2.2.3 calls an IGD whose external address is in a
		// reserved range "not connected" and stops without it; every
		// address of the lab is a documentation address.
		out, err := l.LAN.Output("upnpc", append([]string{"-i"}, args...)...)
		if err != nil {
			t.Logf("upnpc %v: %v\n%s", args, err, out)
		}
		return out
	}
	igd2 := "http://" + lab.CPELAN4 + ":5000/igd2.xml"

	// Discovery through SSDP on the LAN, then the provider's address.
	var status string
	lab.Eventually(t, 20*time.Second, func() bool {
		status = upnpc("-s")
		return strings.Contains(status, "ExternalIPAddress = "+lab.CGNPublic4)
	}, "upnpc -s never showed the provider's address %s", lab.CGNPublic4)
	if !strings.Contains(status, "IGD : http://"+lab.CPELAN4+":5000/igd1/WANIPConn1/ctl") {
		t.Errorf("upnpc did not find the IGD:1 root on the LAN address:\n%s", status)
	}
	if !strings.Contains(upnpc("-u", "http://"+lab.CPELAN4+":5000/igd1.xml", "-s"), "Connection Type : IP_Routed") {
		t.Error("upnpc -u igd1.xml -s failed")
	}

	serveLAN(t, l, 8080)
	serveLAN(t, l, 8082)
	for _, proto := range []string{"TCP", "UDP"} {
		out := upnpc("-e", "e2e "+proto, "-a", lab.LANHost4, "8080", "18080", proto, "3600")
		if !strings.Contains(out, "external "+lab.CGNPublic4+":18080 "+proto+" is redirected to internal "+lab.LANHost4+":8080") {
			t.Fatalf("upnpc -a %s:\n%s", proto, out)
		}
		addr := netip.AddrPortFrom(cgnPublic, 18080)
		if !reachable(t, l.Net, strings.ToLower(proto), addr, 15*time.Second) {
			t.Fatalf("%s %v from net does not reach the LAN host's port 8080", proto, addr)
		}
	}
	out := upnpc("-r", "8082", "TCP")
	if !strings.Contains(out, "is redirected to internal "+lab.LANHost4+":8082") {
		t.Errorf("upnpc -r 8082 TCP:\n%s", out)
	}
	if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, 8082), 15*time.Second) {
		t.Error("the -r mapping is not reachable from net")
	}

	list := upnpc("-l")
	got := map[string]string{}
	for _, m := range upnpcRedirect.FindAllStringSubmatch(list, -1) {
		got[m[1]+"/"+m[2]] = fmt.Sprintf("%s:%s '%s'", m[3], m[4], m[5])
	}
	for k, want := range map[string]string{
		"TCP/18080": lab.LANHost4 + ":8080 'e2e TCP'",
		"UDP/18080": lab.LANHost4 + ":8080 'e2e UDP'",
	} {
		if got[k] != want {
			t.Errorf("upnpc -l: %s is %q, want %q\n%s", k, got[k], want, list)
		}
	}
	if !strings.Contains(list, "GetGenericPortMappingEntry() returned 713") {
		t.Errorf("upnpc -l did not end on 713:\n%s", list)
	}

	// IGD:2 through its own description URL.
	listing := upnpc("-u", igd2, "-L")
	for _, want := range []string{"18080->" + lab.LANHost4 + ":8080", "8082->" + lab.LANHost4 + ":8082"} {
		if !strings.Contains(listing, want) {
			t.Errorf("upnpc -L lacks %s:\n%s", want, listing)
		}
	}
	if out := upnpc("-u", igd2, "-n", lab.LANHost4, "8083", "18083", "TCP", "600"); !strings.Contains(out, "is redirected to internal "+lab.LANHost4+":8083") {
		t.Errorf("upnpc -n (AddAnyPortMapping):\n%s", out)
	}
	if out := upnpc("-u", igd2, "-N", "18083", "18083", "TCP"); !strings.Contains(out, "UPNP_DeletePortMappingRange() returned : 0") {
		t.Errorf("upnpc -N (DeletePortMappingRange):\n%s", out)
	}
	if strings.Contains(upnpc("-u", igd2, "-L"), ":8083") {
		t.Error("DeletePortMappingRange left the 18083 mapping")
	}

	// Delete: the TCP port stops answering.
	if out := upnpc("-d", "18080", "TCP"); !strings.Contains(out, "UPNP_DeletePortMapping() returned : 0") {
		t.Errorf("upnpc -d:\n%s", out)
	}
	addr := netip.AddrPortFrom(cgnPublic, 18080)
	lab.Eventually(t, 10*time.Second, func() bool {
		_, err := reach(t, l.Net, "tcp", addr)
		return err != nil
	}, "TCP %v still reaches the LAN host after upnpc -d", addr)
	// Deleting what is not there is 714 (RFC 6970 §5.8).
	if out := upnpc("-d", "18080", "TCP"); !strings.Contains(out, "UPNP_DeletePortMapping() failed with code : 714") {
		t.Errorf("second upnpc -d:\n%s", out)
	}
	if !reachable(t, l.Net, "udp", addr, 5*time.Second) {
		t.Error("the UDP mapping went with the TCP one")
	}
}

// upnpcPinholeID matches upnpc -A's report of the pinhole's UniqueID.
// "AddPinhole: ([]:0 -> [2001:db8:1::100]:8090) / Pinhole ID = 1".
var upnpcPinholeID = regexp.MustCompile(`AddPinhole: .* / Pinhole ID = (\d+)`)

// TestUPnPPinhole: upnpc -6 discovers pcpgw through SSDP over IPv6
// (ff02::c). With pcpgw's IPv6 baseline on (RFC 6092), upnpc -A from
// the LAN host through the IGD:2 description on pcpgw's IPv6 LAN address
// opens a pinhole (WANIPv6FirewallControl:1, REQUIREMENTS 26, 29): a TCP
// connection from the provider's side (namespace isp, 2001:db8:ff::1)
// reaches [2001:db8:1::100]:8090 only while the pinhole lives; -S, -G, -K,
// -C and -U answer, -D removes it.
func TestUPnPPinhole(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	conf := l.Dir + "/pcpgw.conf"
	if err := os.WriteFile(conf, []byte("config pcpgw 'main'\n\toption ipv6_firewall '1'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l.StartPcpgw(t, "-c", conf, "--pcp-server", lab.CGN4)

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
	if reaches() {
		t.Fatal("the LAN host is reachable over IPv6 without a pinhole: no baseline")
	}

	// SSDP over IPv6 (ff02::c) finds pcpgw's IPv6 description URL.
	var disc string
	lab.Eventually(t, 20*time.Second, func() bool {
		disc, _ = l.LAN.Output("upnpc", "-6", "-i", "-m", l.LANIf, "-S")
		return strings.Contains(disc, "IGD : http://["+lab.CPELAN6+"]:5000/igd")
	}, "upnpc -6 never discovered pcpgw over ff02::c:\n%s", disc)
	igd2 := "http://[" + lab.CPELAN6 + "]:5000/igd2.xml"
	upnpc := func(args ...string) string {
		t.Helper()
		out, err := l.LAN.Output("upnpc", append([]string{"-i", "-u", igd2}, args...)...)
		if err != nil {
			t.Logf("upnpc %v: %v\n%s", args, err, out)
		}
		return out
	}
	if out := upnpc("-S"); !strings.Contains(out, "Firewall Enabled: Yes") || !strings.Contains(out, "Inbound Pinhole Allowed: Yes") {
		t.Errorf("upnpc -S:\n%s", out)
	}
	if out := upnpc("-G", lab.CGN6, "0", lab.LANHost6, "8090", "6"); !strings.Contains(out, "/ Timeout = ") {
		t.Errorf("upnpc -G:\n%s", out)
	}
	out := upnpc("-A", "", "0", lab.LANHost6, "8090", "6", "600")
	m := upnpcPinholeID.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("upnpc -A: no unique id:\n%s", out)
	}
	id := m[1]
	lab.Eventually(t, 10*time.Second, reaches, "%v not reachable from isp with pinhole %s", target, id)
	if out := upnpc("-C", id); !strings.Contains(out, "Pinhole ID = "+id+" / IsWorking = Yes") {
		t.Errorf("upnpc -C:\n%s", out)
	}
	if out := upnpc("-K", id); !strings.Contains(out, "PinholePackets = ") || strings.Contains(out, "PinholePackets = 0\n") {
		t.Errorf("upnpc -K:\n%s", out)
	}
	if out := upnpc("-U", id, "1200"); !strings.Contains(out, "UpdatePinhole: Pinhole ID = "+id+" with Lease Time: 1200") {
		t.Errorf("upnpc -U:\n%s", out)
	}
	if out := upnpc("-D", id); strings.Contains(out, "failed") {
		t.Errorf("upnpc -D:\n%s", out)
	}
	lab.Eventually(t, 10*time.Second, func() bool { return !reaches() }, "%v still reachable after -D", target)
}

// TestUPnPEvents: GENA against the running daemon (REQUIREMENTS 19, issue
// 6): a LAN host subscribing with a callback on itself gets the initial
// event and a NOTIFY when it adds a mapping with upnpc; a subscription
// whose callback is the internet host 203.0.113.50 gets 412 and that host
// never receives anything (CallStranger, CVE-2020-12695).
func TestUPnPEvents(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	l.StartPcpgw(t, "--pcp-server", lab.CGN4)

	lanEvents := gatherNOTIFY(t, l.LAN, netip.AddrPortFrom(lanHost, 8099))
	netEvents := gatherNOTIFY(t, l.Net, netip.MustParseAddrPort(lab.NetHost4+":8099"))

	subscribe := func(callback string) *http.Response {
		t.Helper()
		var resp *http.Response
		lab.Eventually(t, 15*time.Second, func() bool {
			var c net.Conn
			var err error
			l.LAN.Do(t, func() { c, err = net.DialTimeout("tcp4", lab.CPELAN4+":5000", 2*time.Second) })
			if err != nil {
				return false
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "SUBSCRIBE /igd1/WANIPConn1/evt HTTP/1.1\r\nHOST: %s:5000\r\nCALLBACK: <%s>\r\nNT: upnp:event\r\nTIMEOUT: Second-300\r\nContent-Length: 0\r\n\r\n", lab.CPELAN4, callback)
			resp, err = http.ReadResponse(bufio.NewReader(c), nil)
			return err == nil
		}, "SUBSCRIBE to %s never answered", lab.CPELAN4)
		return resp
	}
	if r := subscribe("http://" + lab.NetHost4 + ":8099/cb"); r.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("SUBSCRIBE with a foreign callback: %s, want 412", r.Status)
	}
	r := subscribe("http://" + lanHost.String() + ":8099/cb")
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("SID"), "uuid:") {
		t.Fatalf("SUBSCRIBE: %s SID %q", r.Status, r.Header.Get("SID"))
	}
	first := lanEvents.next(t)
	if first.Header.Get("SEQ") != "0" || !strings.Contains(first.body, "<ExternalIPAddress>"+lab.CGNPublic4+"</ExternalIPAddress>") {
		t.Errorf("initial event: SEQ %q\n%s", first.Header.Get("SEQ"), first.body)
	}
	if out, err := l.LAN.Output("upnpc", "-i", "-u", "http://"+lab.CPELAN4+":5000/igd1.xml", "-a", lanHost.String(), "8098", "18098", "TCP"); err != nil {
		t.Fatalf("upnpc -a: %v\n%s", err, out)
	}
	// Events in order (SEQ 1, 2, ...) until the one with the new mapping
	// count; the provider's address arriving just after the SUBSCRIBE may
	// come first.
	for seq := 1; ; seq++ {
		ev := lanEvents.next(t)
		if got := ev.Header.Get("SEQ"); got != strconv.Itoa(seq) {
			t.Fatalf("event SEQ %q, want %d\n%s", got, seq, ev.body)
		}
		if strings.Contains(ev.body, "<PortMappingNumberOfEntries>1</PortMappingNumberOfEntries>") {
			break
		}
		if seq == 3 {
			t.Fatalf("no event with PortMappingNumberOfEntries 1 after upnpc -a; last:\n%s", ev.body)
		}
	}
	if n := netEvents.count(); n != 0 {
		t.Errorf("the internet host received %d requests", n)
	}
}

type gatheredNOTIFY struct {
	http.Header
	body string
}

type notifySink struct {
	mu  sync.Mutex
	n   int
	got chan gatheredNOTIFY
}

func (s *notifySink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *notifySink) next(t *testing.T) gatheredNOTIFY {
	t.Helper()
	select {
	case m := <-s.got:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no NOTIFY within 10 s")
	}
	return gatheredNOTIFY{}
}

// gatherNOTIFY runs an HTTP server in ns on addr that records every
// request (a GENA control point's callback).
func gatherNOTIFY(t *testing.T, ns *lab.NS, addr netip.AddrPort) *notifySink {
	t.Helper()
	var ln net.Listener
	var err error
	ns.Do(t, func() { ln, err = net.Listen("tcp4", addr.String()) })
	if err != nil {
		t.Fatal(err)
	}
	s := &notifySink{got: make(chan gatheredNOTIFY, 16)}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		s.mu.Lock()
		s.n++
		s.mu.Unlock()
		if r.Method == "NOTIFY" {
			select {
			case s.got <- gatheredNOTIFY{r.Header, string(b)}:
			default:
			}
		}
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return s
}

// TestUPnPSSDPProbes: SSDP answers against the running daemon (issue 10,
// the e2e/clients report on tailscale). tailscale's portmapper probe (two
// ssdp:all searches and one for InternetGatewayDevice:1, sent to the
// gateway) gets about 40 answer datagrams; the same host probing four
// more times back to back gets every answer each time (under the former
// limit of 64 datagrams and 16/s, a second probe a second later lost
// UPnP). A flood of ssdp:all from that host then gets at most the
// per-source budget (96 KiB at once, 16 KiB/s) in return, far less than it
// asks for.
func TestUPnPSSDPProbes(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	l.StartPcpgw(t, "--pcp-server", lab.CGN4)

	var c *net.UDPConn
	var err error
	l.LAN.Do(t, func() { c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lanHost, 0))) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadBuffer(1 << 20)
	gw := netip.MustParseAddrPort(lab.CPELAN4 + ":1900")
	search := func(st string) []byte {
		return []byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nST: " + st + "\r\nMX: 2\r\n\r\n")
	}
	all := search("ssdp:all")
	igd := search("urn:schemas-upnp-org:device:InternetGatewayDevice:1")
	buf := make([]byte, 4096)
	// collect reads answers until quiet for 1 s (at most 15 s).
	collect := func() (datagrams, size int) {
		end := time.Now().Add(15 * time.Second)
		for time.Now().Before(end) {
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return datagrams, size
			}
			if strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200 OK\r\n") {
				datagrams++
				size += n
			}
		}
		return datagrams, size
	}
	probe := func() int {
		t.Helper()
		for _, m := range [][]byte{all, all, igd} {
			if _, err := c.WriteToUDPAddrPort(m, gw); err != nil {
				t.Fatal(err)
			}
		}
		d, _ := collect()
		return d
	}
	// Wait for the daemon's SSDP side with single IGD searches (one
	// answer each, well inside the budget).
	lab.Eventually(t, 15*time.Second, func() bool {
		c.WriteToUDPAddrPort(igd, gw)
		d, _ := collect()
		return d > 0
	}, "no SSDP answer from %v", gw)

	first := probe()
	if first < 30 {
		t.Fatalf("first probe: %d answers, want the ~40 of two ssdp:all and an IGD search", first)
	}
	// Back to back, with no refill at all: stricter than the report's
	// second probe a second later.
	for i := 2; i <= 5; i++ {
		if got := probe(); got != first {
			t.Errorf("probe %d: %d answers, the first had %d", i, got, first)
		}
	}

	// Flood: 300 ssdp:all at once would be 300 x ~6.4 KB.
	start := time.Now()
	for range 300 {
		c.WriteToUDPAddrPort(all, gw)
	}
	d, size := collect()
	elapsed := time.Since(start).Seconds()
	bound := 96<<10 + int(16<<10*elapsed)
	t.Logf("flood of 300 ssdp:all: %d answers, %d bytes in %.1f s", d, size, elapsed)
	if size > bound || d == 0 {
		t.Errorf("flood answered with %d bytes in %.1f s, bound %d", size, elapsed, bound)
	}
}
