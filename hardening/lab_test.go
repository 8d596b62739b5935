package hardening_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/pcp"
)

var (
	cpeLAN4 = netip.MustParseAddr(lab.CPELAN4)
	cpeLAN6 = netip.MustParseAddr(lab.CPELAN6)
	npPort  = netip.AddrPortFrom(cpeLAN4, pcp.ServerPort)
)

// dialUDP opens a UDP socket in ns connected to dst.
func dialUDP(t *testing.T, ns *lab.NS, dst netip.AddrPort) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.Dial("udp", dst.String()) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ask sends req from ns to pcpgw's 192.0.2.1:5351 and returns the reply,
// retransmitted 250 ms apart doubling (RFC 6886 §3.1) for about 4 s.
func ask(t *testing.T, ns *lab.NS, req []byte) ([]byte, error) {
	t.Helper()
	b, _, err := askTries(t, ns, req)
	return b, err
}

// askTries is ask that also says how many datagrams it sent.
func askTries(t *testing.T, ns *lab.NS, req []byte) ([]byte, int, error) {
	t.Helper()
	c := dialUDP(t, ns, npPort)
	buf := make([]byte, pcp.MaxSize)
	wait := 250 * time.Millisecond
	for try := 0; ; try++ {
		if _, err := c.Write(req); err != nil {
			return nil, try + 1, err
		}
		c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		if err == nil {
			return buf[:n], try + 1, nil
		}
		if try == 4 {
			return nil, try + 1, err
		}
		wait *= 2
	}
}

func askNATPMP(t *testing.T, ns *lab.NS, req []byte) pcp.NATPMPResponse {
	t.Helper()
	b, err := ask(t, ns, req)
	if err != nil {
		t.Fatalf("NAT-PMP % x: no answer: %v", req, err)
	}
	r, err := pcp.ParseNATPMPResponse(b)
	if err != nil {
		t.Fatalf("NAT-PMP answer % x: %v", b, err)
	}
	return r
}

func askPCP(t *testing.T, ns *lab.NS, req []byte) pcp.Response {
	t.Helper()
	b, err := ask(t, ns, req)
	if err != nil {
		t.Fatalf("PCP: no answer: %v", err)
	}
	r, err := pcp.ParseResponse(b)
	if err != nil {
		t.Fatalf("PCP answer % x: %v", b, err)
	}
	return r
}

func labStatus(t *testing.T, p *lab.Pcpgw) control.Status {
	t.Helper()
	var s control.Status
	if err := json.Unmarshal([]byte(p.CLI(t, "status", "--json")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// labList is `pcpgw list --json`, only the rows of client when it is set.
func labList(t *testing.T, p *lab.Pcpgw, client string) []control.Row {
	t.Helper()
	var rows, out []control.Row
	if err := json.Unmarshal([]byte(p.CLI(t, "list", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if client == "" || r.Client == client {
			out = append(out, r)
		}
	}
	return out
}

// logLines is how many lines the daemon has written so far.
func logLines(p *lab.Pcpgw) int { return strings.Count(p.Output(), "\n") }

// TestLabWANSideSilent: nothing on the WAN side answers (REQUIREMENTS 22,
// 30). From namespace isp, NAT-PMP, PCP and SSDP datagrams to UDP 5351,
// 5350 and 1900 of the CPE's WAN addresses (100.64.0.2, 2001:db8:ff::2)
// and of its LAN addresses routed in through the WAN (192.0.2.1,
// 2001:db8:1::1) get no answer at all, and TCP to the HTTP port (5000) of
// the WAN addresses is refused or times out, never answered. The same
// NAT-PMP request from the LAN is answered (the daemon is there).
func TestLabWANSideSilent(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{NoMiniupnpd: true})
	p := l.StartPcpgw(t, "--pcp-server", lab.CGN4, "--http-port", "5000")
	l.ISP.Run(t, "ip", "route", "add", "192.0.2.0/24", "via", lab.CPEWAN4)

	// Control: the LAN is served (ANNOUNCE is answered at once, without
	// the unreachable provider).
	announce := (&pcp.Request{Opcode: pcp.OpAnnounce, Client: netip.MustParseAddr(lab.LANHost4)}).AppendMarshal(nil)
	if r := askPCP(t, l.LAN, announce); r.Result != pcp.Success {
		t.Fatalf("LAN PCP ANNOUNCE answer %+v", r)
	}

	isp4 := netip.MustParseAddr(lab.CGN4)
	isp6 := netip.MustParseAddr(lab.CGN6)
	pcpFrom := func(client netip.Addr, op pcp.Opcode) []byte {
		r := pcp.Request{Opcode: op, Lifetime: 3600, Client: client}
		if op == pcp.OpMap {
			r.Map = &pcp.Map{Nonce: nonce, Protocol: 6, InternalPort: 22, ExternalAddr: netip.IPv4Unspecified()}
		}
		return r.AppendMarshal(nil)
	}
	msearch := []byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n")
	targets := []netip.Addr{
		netip.MustParseAddr(lab.CPEWAN4), netip.MustParseAddr(lab.CPEWAN6), cpeLAN4, cpeLAN6,
	}
	var sock4, sock6 net.PacketConn
	var err4, err6 error
	l.ISP.Do(t, func() {
		sock4, err4 = net.ListenPacket("udp4", "0.0.0.0:0")
		sock6, err6 = net.ListenPacket("udp6", "[::]:0")
	})
	if err := errors.Join(err4, err6); err != nil {
		t.Fatal(err)
	}
	defer sock4.Close()
	defer sock6.Close()
	before := labStatus(t, p).Counters
	sent := 0
	for _, dst := range targets {
		sock, client := sock4, isp4
		if dst.Is6() {
			sock, client = sock6, isp6
		}
		payloads := map[uint16][][]byte{
			5351: {{0, 0}, natpmpMap(2, 22, 22, 3600), pcpFrom(client, pcp.OpAnnounce), pcpFrom(client, pcp.OpMap)},
			5350: {{0, 0}, pcpFrom(client, pcp.OpAnnounce)},
			1900: {msearch},
		}
		for port, ps := range payloads {
			for _, b := range ps {
				for range 3 {
					if _, err := sock.WriteTo(b, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, port))); err != nil {
						t.Fatalf("send to %v:%d: %v", dst, port, err)
					}
					sent++
				}
			}
		}
	}
	// Anything that comes back within 2 s is a failure.
	var wg sync.WaitGroup
	for _, sock := range []net.PacketConn{sock4, sock6} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			sock.SetReadDeadline(time.Now().Add(2 * time.Second))
			for {
				n, from, err := sock.ReadFrom(buf)
				if err != nil {
					return
				}
				t.Errorf("WAN side: %d octets came back from %v: %q", n, from, buf[:n])
			}
		}()
	}
	wg.Wait()
	// None of them even reached the NAT-PMP/PCP handler (the sockets are
	// bound to the LAN device): every lan_ counter but the announcements
	// is as it was.
	after := labStatus(t, p).Counters
	for k, v := range after {
		if strings.HasPrefix(k, "lan_") && k != "lan_announcements" && before[k] != v {
			t.Errorf("counter %s went from %d to %d during the WAN probe", k, before[k], v)
		}
	}
	t.Logf("sent %d datagrams from the WAN side; counters after: %v", sent, after)

	for _, dst := range targets[:2] {
		ap := netip.AddrPortFrom(dst, 5000)
		var c net.Conn
		var err error
		l.ISP.Do(t, func() { c, err = net.DialTimeout("tcp", ap.String(), 2*time.Second) })
		if err != nil {
			t.Logf("TCP %v from the WAN: %v (as it should)", ap, err)
			continue
		}
		fmt.Fprintf(c, "GET /igd2.xml HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", ap)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		got, _ := io.ReadAll(c)
		c.Close()
		t.Errorf("TCP %v from the WAN was accepted (answer %q)", ap, got)
	}
}

// TestLabUDPFlood: two LAN hosts send 20,000 datagrams each to 5351 as
// fast as they can (valid requests, garbage and responses), and go on while
// a third LAN host makes 20 NAT-PMP mappings: every one of those is
// answered. The flood is counted (rate limited or malformed); the
// flooders get no more answers than their token buckets hold (burst 100,
// 50/s); worker-slot overload drops (lan_overload) happen only to
// datagrams that had a token, so a flood cannot crowd other hosts out of
// the worker slots; the daemon's log does not grow per packet. (Datagrams
// the kernel drops when the socket's buffer is full are outside pcpgw's
// reach; the test logs the count.)
func TestLabUDPFlood(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{Local: true, ExtraLANHosts: 2})
	p := l.StartPcpgw(t, "--no-upnp")
	flooders, victim := l.LANHosts[:2], l.LANHosts[2]
	if r := askNATPMP(t, victim, []byte{0, 0}); r.Result != pcp.NATPMPSuccess {
		t.Fatalf("before the flood: %+v", r)
	}
	lines := logLines(p)
	before := labStatus(t, p).Counters

	const n = 20000
	var victimDone atomic.Bool
	var wg sync.WaitGroup
	var sent [2]int
	var conns [2]net.Conn
	start := time.Now()
	for i, ns := range flooders {
		v4, _ := l.LANHostAddrs(i)
		kinds := [][]byte{
			{0, 0}, natpmpMap(1, 5000, 5000, 3600), {2}, setRBit(natpmpMap(2, 1, 1, 1)),
			make([]byte, 1100), mapReq(netip.MustParseAddr(v4), nil),
		}
		c := dialUDP(t, ns, npPort)
		conns[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			// At least n datagrams, and on while the victim asks (at
			// most 10n: bounded).
			for j := 0; j < n || (!victimDone.Load() && j < 10*n); j++ {
				if _, err := c.Write(kinds[j%len(kinds)]); err == nil {
					sent[i]++
				}
			}
		}()
	}
	answered, tries := 0, 0
	const asks = 20
	for i := range asks {
		port := uint16(30000 + i)
		b, n, err := askTries(t, victim, natpmpMap(2, port, port, 3600))
		tries += n
		if err != nil {
			t.Errorf("victim request %d during the flood: no answer after %d tries: %v", i, n, err)
			continue
		}
		r, err := pcp.ParseNATPMPResponse(b)
		if err != nil || r.Result != pcp.NATPMPSuccess || r.InternalPort != port {
			t.Errorf("victim request %d during the flood: %+v %v", i, r, err)
			continue
		}
		answered++
	}
	victimDone.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	// What the flooders got back: at most their token buckets' worth.
	replies := 0
	for _, c := range conns {
		buf := make([]byte, 2048)
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
			replies++
		}
	}
	after := labStatus(t, p).Counters
	diff := func(k string) uint64 { return after[k] - before[k] }
	tokens := uint64(2 * (100 + 50*(elapsed.Seconds()+1)))
	kernel, _ := l.CPE.Output("sh", "-c", "grep ^Udp: /proc/net/snmp")
	t.Logf("flood: %v sent in %v, %d answered; victim %d/%d answered in %d datagrams; rate limited %d, malformed %d, overload %d; kernel:\n%s",
		sent, elapsed.Round(time.Millisecond), replies, answered, asks, tries,
		diff("lan_ratelimited"), diff("lan_malformed"), diff("lan_overload"), kernel)
	if sent[0] < n || sent[1] < n {
		t.Errorf("flood sent %v, want %d each", sent, n)
	}
	if diff("lan_ratelimited") == 0 {
		t.Errorf("the flood was not counted as rate limited: before %v after %v", before, after)
	}
	if uint64(replies) > tokens {
		t.Errorf("the flooders got %d answers, more than their %d tokens", replies, tokens)
	}
	if diff("lan_overload") > tokens+uint64(tries) {
		t.Errorf("%d overload drops, more than the %d datagrams that had a token: the flood took worker slots", diff("lan_overload"), tokens+uint64(tries))
	}
	if grown := logLines(p) - lines; grown > 20 {
		t.Errorf("the log grew by %d lines during the flood:\n%s", grown, tail(p.Output(), 30))
	}
	if r := askNATPMP(t, victim, []byte{0, 0}); r.Result != pcp.NATPMPSuccess {
		t.Errorf("after the flood: %+v", r)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestLabQuotaExhaustion: one LAN host tries to create 10,000 NAT-PMP
// mappings (all at once, then paced under the rate limit); it gets 128
// (the default quota) and then result 4 (OUT_OF_RESOURCES), never another
// code; the daemon holds exactly 128 of its mappings; a second host then
// maps at once.
func TestLabQuotaExhaustion(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{Local: true, ExtraLANHosts: 1})
	p := l.StartPcpgw(t, "--no-upnp")
	greedy, other := l.LANHosts[0], l.LANHosts[1]

	c := dialUDP(t, greedy, npPort)
	var mu sync.Mutex
	ok := map[uint16]bool{}   // internal ports mapped
	full := map[uint16]bool{} // internal ports refused for the quota
	other4 := map[pcp.NATPMPResult]int{}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			r, err := pcp.ParseNATPMPResponse(buf[:n])
			if err != nil {
				continue
			}
			mu.Lock()
			switch r.Result {
			case pcp.NATPMPSuccess:
				ok[r.InternalPort] = true
			case pcp.NATPMPOutOfResources:
				full[r.InternalPort] = true
			default:
				other4[r.Result]++
			}
			mu.Unlock()
		}
	}()
	counts := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(ok), len(full)
	}
	const n = 10000
	for i := range n {
		port := uint16(20000 + i)
		if _, err := c.Write(natpmpMap(1, port, port, 3600)); err != nil {
			t.Fatal(err)
		}
	}
	// Then the remaining ones paced under the per-host rate (50/s),
	// until the quota answer has come back (bounded: 40 s).
	deadline := time.Now().Add(40 * time.Second)
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		if _, f := counts(); f > 5 {
			break
		}
		port := uint16(20000 + i)
		mu.Lock()
		done := ok[port] || full[port]
		mu.Unlock()
		if done {
			continue
		}
		if _, err := c.Write(natpmpMap(1, port, port, 3600)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Millisecond) // pacing under the limiter, not waiting on a condition
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	<-readerDone
	mapped, refused := counts()
	t.Logf("greedy host: %d mapped, %d refused with result 4, others %v", mapped, refused, other4)
	if mapped != 128 || refused == 0 || len(other4) != 0 {
		t.Errorf("greedy host: %d mapped (want 128), %d refused with 4 (want some), other results %v (want none)", mapped, refused, other4)
	}
	if rows := labList(t, p, lab.LANHost4); len(rows) != 128 {
		t.Errorf("pcpgw holds %d mappings of the greedy host, want 128", len(rows))
	}
	v4, _ := l.LANHostAddrs(1)
	r := askNATPMP(t, other, natpmpMap(2, 8080, 8080, 3600))
	if r.Result != pcp.NATPMPSuccess || r.ExternalPort == 0 {
		t.Fatalf("other host after the exhaustion: %+v", r)
	}
	if rows := labList(t, p, v4); len(rows) != 1 || rows[0].Internal != v4+":8080" {
		t.Errorf("other host's mappings: %+v", rows)
	}
}

// soapEvil is evilDescription's UPnP cousin as it travels in XML (NUL has
// no XML 1.0 character reference; TAB stands in), and soapSanitized what
// must be kept of it.
var (
	soapEvil      = "evil&#13;&#10;UDP:2:6.6.6.6:2:0:injected&#9;" + strings.Repeat("é", 200)
	soapSanitized = "evil  UDP:2:6.6.6.6:2:0:injected " + strings.Repeat("é", 111)
)

// TestLabDescriptionInjection: a PCP DESCRIPTION with CR/LF/NUL and over
// 256 octets, and a UPnP NewPortMappingDescription with CR/LF/TAB and over
// 256 octets, sent to the running daemon come out sanitized and truncated
// the same in `pcpgw list` (JSON and text), the state file and the lease
// file (option lease_file: one line per mapping, no forged line), and the
// daemon's log holds no raw CR or NUL.
func TestLabDescriptionInjection(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{Local: true})
	leases := filepath.Join(l.Dir, "leases")
	conf := filepath.Join(l.Dir, "pcpgw.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "config pcpgw 'main'\n\toption lease_file '%s'\n\toption log_level 'debug'\n", leases), 0o644); err != nil {
		t.Fatal(err)
	}
	p := l.StartPcpgw(t, "-c", conf, "--http-port", "5000")
	host := netip.MustParseAddr(lab.LANHost4)
	desc := pcp.Option{Code: pcp.OptDescription, Description: evilDescription}
	if r := askPCP(t, l.LAN, mapReq(host, nil, desc)); r.Result != pcp.Success {
		t.Fatalf("PCP MAP with the description: %v", r.Result)
	}
	if r := askNATPMP(t, l.LAN, natpmpMap(1, 8081, 8081, 3600)); r.Result != pcp.NATPMPSuccess {
		t.Fatalf("NAT-PMP map: %+v", r)
	}
	// The same attack through UPnP: CR, LF and TAB as XML character
	// references in NewPortMappingDescription.
	st, body := soap(t, l.LAN, "/igd2/WANIPConn1/ctl", "urn:schemas-upnp-org:service:WANIPConnection:2", "AddPortMapping",
		"<NewRemoteHost></NewRemoteHost><NewExternalPort>28082</NewExternalPort><NewProtocol>TCP</NewProtocol>"+
			"<NewInternalPort>8082</NewInternalPort><NewInternalClient>"+lab.LANHost4+"</NewInternalClient><NewEnabled>1</NewEnabled>"+
			"<NewPortMappingDescription>"+soapEvil+"</NewPortMappingDescription><NewLeaseDuration>3600</NewLeaseDuration>")
	if !strings.Contains(st, " 200 ") {
		t.Fatalf("SOAP AddPortMapping: %q %q", st, body)
	}
	wantDesc := map[string]string{"8080": sanitized, "8081": "", "8082": soapSanitized}
	rows := labList(t, p, "")
	if len(rows) != 3 {
		t.Fatalf("list: %+v", rows)
	}
	for _, r := range rows {
		_, port, _ := strings.Cut(r.Internal, ":")
		if want := wantDesc[port]; r.Description != want {
			t.Errorf("list --json: %s description %q, want %q", r.Internal, r.Description, want)
		}
	}
	text := p.CLI(t, "list")
	if strings.ContainsAny(text, "\r\x00") || strings.Contains(text, "\nUDP:1:6.6.6.6") {
		t.Errorf("pcpgw list holds raw control characters:\n%q", text)
	}

	// Answered, so on disk (the state file and its journal).
	state, err := mapping.ReadState(p.StateDir)
	if err != nil || len(state) != 3 {
		t.Fatalf("the state directory holds %d mappings (%v), want 3", len(state), err)
	}
	for _, m := range state {
		port := strconv.Itoa(int(m.Internal.Port()))
		if want := wantDesc[port]; m.Description != want {
			t.Errorf("state: %s description %q, want %q", m.Internal, m.Description, want)
		}
	}
	var lines []string
	lab.Eventually(t, 5*time.Second, func() bool {
		raw, err := os.ReadFile(leases)
		if err != nil {
			return false
		}
		lines = nil
		sc := bufio.NewScanner(strings.NewReader(string(raw)))
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		return len(lines) == 3
	}, "the lease file never held 3 lines: %q", lines)
	for _, line := range lines {
		f := strings.SplitN(line, ":", 6)
		if len(f) != 6 || f[2] != lab.LANHost4 || strings.ContainsAny(line, "\r\x00") {
			t.Errorf("lease line %q", line)
			continue
		}
		if want := wantDesc[f[3]]; f[5] != want {
			t.Errorf("lease file: port %s description %q, want %q", f[3], f[5], wantDesc[f[3]])
		}
	}
	if out := p.Output(); strings.ContainsAny(out, "\r\x00") || strings.Contains(out, "\nUDP:1:6.6.6.6") {
		t.Errorf("the daemon's log holds raw control characters:\n%q", tail(out, 20))
	}
}

// soap sends one raw SOAP action over a plain TCP connection from ns to
// pcpgw's HTTP port and returns the status line and body.
func soap(t *testing.T, ns *lab.NS, path, service, action, args string) (status, body string) {
	t.Helper()
	env := `<?xml version="1.0"?>` +
		`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">` +
		`<s:Body><u:` + action + ` xmlns:u="` + service + `">` + args + `</u:` + action + `></s:Body></s:Envelope>`
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.DialTimeout("tcp", netip.AddrPortFrom(cpeLAN4, 5000).String(), 2*time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s:5000\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n"+
		"SOAPAction: \"%s#%s\"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", path, cpeLAN4, service, action, len(env), env)
	raw, err := io.ReadAll(c)
	if err != nil && len(raw) == 0 {
		t.Fatalf("SOAP %s: %v", action, err)
	}
	s := string(raw)
	status, _, _ = strings.Cut(s, "\r\n")
	if _, b, ok := strings.Cut(s, "\r\n\r\n"); ok {
		body = b
	}
	return status, body
}

// TestLabSecureModeAcrossProtocols: with secure mode (the default) a LAN
// host's raw SOAP AddPortMapping naming another host as NewInternalClient
// is refused (606 on IGD:2, 718 on IGD:1; RFC 6970 §4.3), and its
// DeletePortMapping of another host's mapping is refused too; PCP and
// NAT-PMP give it no way to name another host; the other host's mapping
// stays, and nothing is mapped for the attacker.
func TestLabSecureModeAcrossProtocols(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{Local: true, ExtraLANHosts: 1})
	p := l.StartPcpgw(t, "--http-port", "5000")
	attacker, victim := l.LANHosts[0], l.LANHosts[1]
	v4, _ := l.LANHostAddrs(1)
	// The victim's own mapping, over NAT-PMP.
	r := askNATPMP(t, victim, natpmpMap(2, 8080, 18080, 3600))
	if r.Result != pcp.NATPMPSuccess {
		t.Fatalf("victim's mapping: %+v", r)
	}
	ext := r.ExternalPort
	for _, igd := range []struct {
		v    int
		path string
		code string
	}{{2, "/igd2/WANIPConn1/ctl", "606"}, {1, "/igd1/WANIPConn1/ctl", "718"}} {
		svc := fmt.Sprintf("urn:schemas-upnp-org:service:WANIPConnection:%d", igd.v)
		t.Run(fmt.Sprintf("IGD%d add for another host", igd.v), func(t *testing.T) {
			st, body := soap(t, attacker, igd.path, svc, "AddPortMapping",
				"<NewRemoteHost></NewRemoteHost><NewExternalPort>28080</NewExternalPort><NewProtocol>TCP</NewProtocol>"+
					"<NewInternalPort>8080</NewInternalPort><NewInternalClient>"+v4+"</NewInternalClient><NewEnabled>1</NewEnabled>"+
					"<NewPortMappingDescription>x</NewPortMappingDescription><NewLeaseDuration>3600</NewLeaseDuration>")
			if !strings.Contains(st, " 500 ") || !strings.Contains(body, "<errorCode>"+igd.code+"</errorCode>") {
				t.Errorf("status %q body %q, want 500 with errorCode %s", st, body, igd.code)
			}
		})
		t.Run(fmt.Sprintf("IGD%d delete of another host's mapping", igd.v), func(t *testing.T) {
			st, body := soap(t, attacker, igd.path, svc, "DeletePortMapping",
				fmt.Sprintf("<NewRemoteHost></NewRemoteHost><NewExternalPort>%d</NewExternalPort><NewProtocol>TCP</NewProtocol>", ext))
			if !strings.Contains(st, " 500 ") || !strings.Contains(body, "<errorCode>"+igd.code+"</errorCode>") {
				t.Errorf("status %q body %q, want 500 with errorCode %s", st, body, igd.code)
			}
		})
	}
	// PCP: THIRD_PARTY is not offered by the daemon to LAN hosts
	// (UNSUPP_OPTION, RFC 6887 §13.1), for another host's map or delete
	// alike, nor for the sender itself; a header naming the victim is an
	// ADDRESS_MISMATCH. NAT-PMP: deleting "all" deletes only the sender's.
	attackerIP := netip.MustParseAddr(lab.LANHost4)
	victimIP := netip.MustParseAddr(v4)
	tp := func(a netip.Addr) pcp.Option { return pcp.Option{Code: pcp.OptThirdParty, ThirdParty: a} }
	del := func(r *pcp.Request) { r.Lifetime = 0 }
	for _, c := range []struct {
		name string
		req  []byte
		want pcp.ResultCode
	}{
		{"PCP THIRD_PARTY map for the victim", mapReq(attackerIP, nil, tp(victimIP)), pcp.UnsuppOption},
		{"PCP THIRD_PARTY delete of the victim's", mapReq(attackerIP, del, tp(victimIP)), pcp.UnsuppOption},
		{"PCP THIRD_PARTY naming the sender", mapReq(attackerIP, nil, tp(attackerIP)), pcp.UnsuppOption},
		{"PCP delete with the victim's address in the header", mapReq(victimIP, del), pcp.AddressMismatch},
	} {
		if r := askPCP(t, attacker, c.req); r.Result != c.want {
			t.Errorf("%s: %v, want %v", c.name, r.Result, c.want)
		}
	}
	if r := askNATPMP(t, attacker, natpmpMap(2, 0, 0, 0)); r.Result != pcp.NATPMPSuccess {
		t.Errorf("NAT-PMP delete all: %+v", r)
	}
	if rows := labList(t, p, lab.LANHost4); len(rows) != 0 {
		t.Errorf("the attacker made mappings: %+v", rows)
	}
	rows := labList(t, p, v4)
	if len(rows) != 1 || rows[0].Internal != v4+":8080" {
		t.Errorf("victim's mappings now: %+v", rows)
	}
}

// TestLabMalformedCounted: the running daemon answers nothing to the
// malformed datagrams of TestShortAndResponsePacketsSilent and counts each
// in lan_malformed; it answers the length, option, version and protocol
// attacks with the exact error of the unit tests (only the epoch is its
// own), clamps lifetime 2^32-1 to 86400 s, and writes no log line for any
// of them.
func TestLabMalformedCounted(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{Local: true})
	p := l.StartPcpgw(t, "--no-upnp")
	host := netip.MustParseAddr(lab.LANHost4)
	announce := (&pcp.Request{Opcode: pcp.OpAnnounce, Client: host}).AppendMarshal(nil)
	if r := askPCP(t, l.LAN, announce); r.Result != pcp.Success {
		t.Fatalf("ANNOUNCE: %v", r.Result)
	}
	before := labStatus(t, p).Counters
	lines := logLines(p)

	req := mapReq(host, nil)
	silent := [][]byte{
		{}, {2}, {0}, req[:4], req[:23], setRBit(req), setRBit(withVersion(req, 3)),
		natpmpMap(1, 8080, 8080, 3600)[:11], setRBit(natpmpMap(2, 8080, 8080, 3600)), {0, 128},
	}
	c := dialUDP(t, l.LAN, npPort)
	for _, b := range silent {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := c.Read(buf); err == nil {
		t.Errorf("a malformed datagram was answered: % x", buf[:n])
	}
	mod := func(proto uint8, port uint16) func(*pcp.Request) {
		return func(r *pcp.Request) { r.Map.Protocol, r.Map.InternalPort = proto, port }
	}
	long := pad(req, pcp.MaxSize-len(req)+4)
	errs := []struct {
		name      string
		pkt, want []byte
	}{
		{"1104 octets", long, wantPCPError(long, pcp.MalformedRequest)},
		{"61 octets", pad(req, 1), wantPCPError(pad(req, 1), pcp.MalformedRequest)},
		{"option length overflow", append(mapReq(host, nil), rawOption(pcp.OptDescription, 1024, []byte("abcd"))...), nil},
		{"unknown mandatory option", append(mapReq(host, nil), rawOption(99, 0, nil)...), nil},
		{"version 3", withVersion(req, 3), wantPCPError(withVersion(req, 3), pcp.UnsuppVersion)},
		{"version 1", withVersion(req, 1), wantPCPError(withVersion(req, 1), pcp.UnsuppVersion)},
		{"protocol 0 with a port", mapReq(host, mod(0, 8080)), wantPCPError(mapReq(host, mod(0, 8080)), pcp.MalformedRequest)},
		{"internal port 0", mapReq(host, mod(6, 0)), wantPCPError(mapReq(host, mod(6, 0)), pcp.UnsuppProtocol)},
		{"ICMP", mapReq(host, mod(1, 8080)), wantPCPError(mapReq(host, mod(1, 8080)), pcp.UnsuppProtocol)},
		{"address mismatch", mapReq(cpeLAN4, nil), wantPCPError(mapReq(cpeLAN4, nil), pcp.AddressMismatch)},
		{"NAT-PMP opcode 3", pad([]byte{0, 3}, 10), wantNATPMP(3, pcp.NATPMPUnsuppOpcode, 0, 0, 0)},
		{"NAT-PMP internal port 0", natpmpMap(2, 0, 8080, 3600), wantNATPMP(2, pcp.NATPMPNotAuthorized, 0, 0, 0)},
	}
	errs[2].want = wantPCPError(errs[2].pkt, pcp.MalformedOption)
	errs[3].want = wantPCPError(errs[3].pkt, pcp.UnsuppOption)
	for _, e := range errs {
		got, err := ask(t, l.LAN, e.pkt)
		if err != nil {
			t.Errorf("%s: no answer: %v", e.name, err)
			continue
		}
		// The epoch is the daemon's own: octets 4-7 in NAT-PMP, 8-11 in PCP.
		want := append([]byte(nil), e.want...)
		if len(got) == len(want) {
			at := 8
			if want[0] == 0 {
				at = 4
			}
			copy(want[at:at+4], got[at:at+4])
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: reply (-want +got):\n%s", e.name, cmp.Diff(hex.Dump(want), hex.Dump(got)))
		}
	}
	r := askNATPMP(t, l.LAN, natpmpMap(1, 8080, 8080, 1<<32-1))
	if r.Result != pcp.NATPMPSuccess || r.Lifetime != 86400 {
		t.Errorf("NAT-PMP lifetime 2^32-1: %+v, want success with 86400", r)
	}
	pr := askPCP(t, l.LAN, mapReq(host, func(r *pcp.Request) { r.Lifetime = 1<<32 - 1 }))
	if pr.Result != pcp.Success || pr.Lifetime != 86400 {
		t.Errorf("PCP lifetime 2^32-1: %v lifetime %d, want SUCCESS with 86400", pr.Result, pr.Lifetime)
	}
	if pr := askPCP(t, l.LAN, mapReq(host, func(r *pcp.Request) { r.Lifetime = 0 })); pr.Result != pcp.Success || pr.Lifetime != 0 {
		t.Errorf("PCP lifetime 0: %v lifetime %d, want SUCCESS with 0", pr.Result, pr.Lifetime)
	}
	if rows := labList(t, p, lab.LANHost4); len(rows) != 1 || rows[0].Proto != "udp" {
		t.Errorf("after the PCP delete the host holds %+v, want only the NAT-PMP UDP mapping", rows)
	}
	lab.Eventually(t, 5*time.Second, func() bool {
		return labStatus(t, p).Counters["lan_malformed"]-before["lan_malformed"] == uint64(len(silent))
	}, "lan_malformed did not count the %d malformed datagrams", len(silent))
	after := labStatus(t, p).Counters
	if got := after["lan_errorreplies"] - before["lan_errorreplies"]; got < uint64(len(errs)) {
		t.Errorf("lan_errorreplies grew by %d, want at least %d", got, len(errs))
	}
	if grown := logLines(p) - lines; grown != 0 {
		t.Errorf("the daemon logged %d lines for bad packets:\n%s", grown, tail(p.Output(), grown+1))
	}
}

// TestLabHTTPNotServedToWAN: the UPnP HTTP port must not answer the WAN
// side on the CPE's LAN addresses either (REQUIREMENTS 30, RFC 6092
// REC-50): a packet for 192.0.2.1 or 2001:db8:1::1 (a global address: any
// host on the internet can route to it) that comes in on the WAN
// interface is refused or dropped, never served. NAT-PMP/PCP pass the same
// probe (TestLabWANSideSilent: their sockets are bound to the LAN device).
func TestLabHTTPNotServedToWAN(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{NoMiniupnpd: true})
	l.StartPcpgw(t, "--pcp-server", lab.CGN4, "--http-port", "5000")
	l.ISP.Run(t, "ip", "route", "add", "192.0.2.0/24", "via", lab.CPEWAN4)
	// Control: the LAN host is served.
	if st, _ := soap(t, l.LAN, "/igd2/WANIPConn1/ctl", "urn:schemas-upnp-org:service:WANIPConnection:2", "GetExternalIPAddress", ""); st == "" {
		t.Fatal("the LAN host gets no HTTP answer")
	}
	for _, a := range []netip.Addr{cpeLAN4, cpeLAN6} {
		ap := netip.AddrPortFrom(a, 5000)
		var c net.Conn
		var err error
		l.ISP.Do(t, func() { c, err = net.DialTimeout("tcp", ap.String(), 2*time.Second) })
		if err != nil {
			t.Logf("TCP %v from the WAN: %v (as it should)", ap, err)
			continue
		}
		fmt.Fprintf(c, "GET /igd2.xml HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", ap)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		got, _ := io.ReadAll(c)
		c.Close()
		line, _, _ := strings.Cut(string(got), "\r\n")
		t.Errorf("TCP %v from the WAN side was accepted and answered %q (%d octets): the HTTP listener needs binding to the LAN device (or an input filter)", ap, line, len(got))
	}
}
