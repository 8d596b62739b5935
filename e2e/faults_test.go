package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/pcp"
)

// startNAT444 builds the CGN lab with miniupnpd as the provider and pcpgw
// on the CPE, and a LAN service on port 8080.
func startNAT444(t *testing.T, o lab.MiniupnpdOptions, args ...string) (*lab.Lab, *lab.Miniupnpd, *lab.Pcpgw) {
	t.Helper()
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	o.ThirdParty = true
	m := l.StartMiniupnpd(t, o)
	p := l.StartPcpgw(t, append([]string{"--pcp-server", "100.64.0.1"}, args...)...)
	lab.Eventually(t, 10*time.Second, func() bool { return status(t, p).External == cgnPublic.String() },
		"pcpgw never learned the provider's external address")
	return l, m, p
}

// kernelForwards counts the DNAT entries in pcpgw's table in cpe.
func kernelForwards(t *testing.T, l *lab.Lab) int {
	t.Helper()
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	out := l.CPE.Run(t, "nft", "-j", "list", "map", "inet", "pcpgw", "fwd4")
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v\n%s", err, out)
	}
	for _, obj := range doc.Nftables {
		if raw, ok := obj["map"]; ok {
			var m struct {
				Elem []json.RawMessage `json:"elem"`
			}
			json.Unmarshal(raw, &m)
			return len(m.Elem)
		}
	}
	return 0
}

// TestProviderLosesState: miniupnpd's epoch reset with ANNOUNCE (SIGUSR1)
// and a full restart with an empty lease file; pcpgw re-creates every
// mapping and the internet host reaches the LAN service again.
func TestProviderLosesState(t *testing.T) {
	l, m, p := startNAT444(t, lab.MiniupnpdOptions{})
	serveLAN(t, l, 8080)
	ext := netip.AddrPortFrom(cgnPublic, 18080)
	if reachable(t, l.Net, "tcp", ext, 300*time.Millisecond) {
		t.Fatal("the LAN service is reachable before any mapping")
	}
	r := natpmpMapTCP(t, l, 8080, 18080, 3600)
	if r.ExternalPort != 18080 {
		t.Fatalf("external port %d, want 18080", r.ExternalPort)
	}
	if !reachable(t, l.Net, "tcp", ext, 5*time.Second) {
		t.Fatal("the internet host does not reach the LAN service through the mapping")
	}

	sent := status(t, p).Upstream.Sent
	start := time.Now()
	m.Announce(t)
	lab.Eventually(t, 10*time.Second, func() bool { return status(t, p).Upstream.Sent > sent },
		"no PCP request after miniupnpd's ANNOUNCE")
	t.Logf("re-created after ANNOUNCE within %v", time.Since(start).Round(time.Millisecond))
	if !reachable(t, l.Net, "tcp", ext, 5*time.Second) {
		t.Fatal("not reachable after the ANNOUNCE")
	}

	m.Restart(t, true)
	start = time.Now()
	if !reachable(t, l.Net, "tcp", ext, 10*time.Second) {
		t.Fatalf("the mapping was not re-created within 10 s of the provider's restart\n%s", m.Ruleset(t))
	}
	t.Logf("reachable again %v after the provider's restart", time.Since(start).Round(time.Millisecond))
	if n := m.DNATCount(t); n != 1 {
		t.Errorf("CGN holds %d DNAT rules, want 1", n)
	}
}

// TestProviderUnreachable: with UDP 5351 dropped at the provider, NAT-PMP
// answers result 3 within 3 s and other requests are still served; when
// the provider is back the pending mapping is made without the LAN host
// asking again.
func TestProviderUnreachable(t *testing.T) {
	l, m, p := startNAT444(t, lab.MiniupnpdOptions{})
	serveLAN(t, l, 8081)
	l.ISP.Run(t, "nft", "add table inet block; add chain inet block in { type filter hook input priority -10; policy accept; }; add rule inet block in udp dport 5351 drop")

	start := time.Now()
	r, err := natpmp(t, l, pcp.NATPMPRequest{Opcode: pcp.NATPMPOpMapTCP, InternalPort: 8081, SuggestedExternalPort: 18081, Lifetime: 3600})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("no NAT-PMP answer while the provider is unreachable: %v", err)
	}
	if r.Result != pcp.NATPMPNetworkFailure || took > 3*time.Second {
		t.Errorf("answer %v after %v, want NETWORK_FAILURE (3) within 3 s", r.Result, took)
	}
	// Other requests are still answered meanwhile.
	r0, err := natpmp(t, l, pcp.NATPMPRequest{Opcode: pcp.NATPMPOpExternalAddr})
	if err != nil || r0.ExternalAddr != cgnPublic {
		t.Errorf("external address while the provider is unreachable: %+v %v", r0, err)
	}
	rows := list(t, p)
	if len(rows) != 1 || rows[0].Upstream != mapping.UpstreamPending.String() {
		t.Errorf("list: %+v, want the pending mapping", rows)
	}

	l.ISP.Run(t, "nft", "delete", "table", "inet", "block")
	start = time.Now()
	if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, 18081), 60*time.Second) {
		t.Fatalf("the pending mapping was not made after the provider came back\n%s", m.Ruleset(t))
	}
	t.Logf("pending mapping made %v after the provider came back", time.Since(start).Round(time.Millisecond))
}

// TestPendingMappingDeleted (issue 17.3, RFC 7648 §3: a delete goes
// upstream regardless): a mapping deleted from the LAN while the provider
// has not answered its request is deleted at the provider too, with the
// request's nonce. pcpgw's PCP client goes on retransmitting an
// unanswered request for minutes (Linger): not ended by the delete, it
// would make at the provider, once reachable again, a mapping pcpgw has
// forgotten (and that would refuse the next mapping of the port with
// another nonce).
func TestPendingMappingDeleted(t *testing.T) {
	l, m, p := startNAT444(t, lab.MiniupnpdOptions{})
	serveLAN(t, l, 8082)
	ext := netip.AddrPortFrom(cgnPublic, 18082)
	l.ISP.Run(t, "nft", "add table inet block; add chain inet block in { type filter hook input priority -10; policy accept; }; add rule inet block in udp dport 5351 drop")
	r, err := natpmp(t, l, pcp.NATPMPRequest{Opcode: pcp.NATPMPOpMapTCP, InternalPort: 8082, SuggestedExternalPort: 18082, Lifetime: 3600})
	if err != nil || r.Result != pcp.NATPMPNetworkFailure {
		t.Fatalf("map while the provider is unreachable: %+v %v, want NETWORK_FAILURE", r, err)
	}
	if rows := list(t, p); len(rows) != 1 || rows[0].Upstream != mapping.UpstreamPending.String() {
		t.Fatalf("list: %+v, want the pending mapping", rows)
	}
	// Until pcpgw stops waiting for its request (45 s; the list then
	// shows when it asks again): an answer before that was already
	// undone. The PCP client goes on retransmitting it.
	start := time.Now()
	lab.Eventually(t, 60*time.Second, func() bool {
		rows := list(t, p)
		return len(rows) == 1 && !rows[0].RetryAt.IsZero()
	}, "pcpgw never stopped waiting for the provider")
	t.Logf("pcpgw stopped waiting for the provider after %v", time.Since(start).Round(time.Millisecond))
	d, err := natpmp(t, l, pcp.NATPMPRequest{Opcode: pcp.NATPMPOpMapTCP, InternalPort: 8082})
	if err != nil || d.Result != pcp.NATPMPSuccess {
		t.Fatalf("delete: %+v %v", d, err)
	}
	if rows := list(t, p); len(rows) != 0 {
		t.Fatalf("list after the delete: %+v", rows)
	}
	before := status(t, p).Upstream.Received
	l.ISP.Run(t, "nft", "delete", "table", "inet", "block")
	start = time.Now()
	lab.Eventually(t, 60*time.Second, func() bool { return status(t, p).Upstream.Received > before },
		"no answer from the provider after it came back")
	t.Logf("the provider answered %v after it came back", time.Since(start).Round(time.Millisecond))
	// The first thing it answered was the delete: it made nothing.
	if n := m.DNATCount(t); n != 0 {
		t.Fatalf("the provider holds %d DNAT rules for a mapping deleted from the LAN\n%s", n, m.Ruleset(t))
	}
	if reachable(t, l.Net, "tcp", ext, 300*time.Millisecond) {
		t.Fatal("the deleted mapping's port reaches the LAN service")
	}
	// And the port can be mapped again (a provider still holding the
	// old mapping would refuse the new nonce).
	r, err = natpmp(t, l, pcp.NATPMPRequest{Opcode: pcp.NATPMPOpMapTCP, InternalPort: 8082, SuggestedExternalPort: 18082, Lifetime: 3600})
	if err != nil || r.Result != pcp.NATPMPSuccess || r.ExternalPort != 18082 {
		t.Fatalf("mapping again: %+v %v", r, err)
	}
	if !reachable(t, l.Net, "tcp", ext, 5*time.Second) {
		t.Fatalf("the new mapping does not reach the LAN service\n%s", m.Ruleset(t))
	}
}

// TestPcpgwRestart: with 200 live mappings, pcpgw killed with SIGKILL and
// stopped with SIGTERM, then started again: the kernel holds exactly the
// state file's mappings, the CGN holds no duplicates, and the LAN service
// is reached again within 5 s.
func TestPcpgwRestart(t *testing.T) {
	lab.RequireRoot(t)
	conf := filepath.Join(t.TempDir(), "pcpgw.conf")
	if err := os.WriteFile(conf, []byte("config pcpgw 'main'\n\toption quota '300'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, m, p := startNAT444(t, lab.MiniupnpdOptions{}, "-c", conf)
	serveLAN(t, l, 20000)
	const n = 200
	for i := range uint16(n) {
		natpmpMapTCP(t, l, 20000+i, 20000+i, 3600)
	}
	ext := netip.AddrPortFrom(cgnPublic, 20000)
	if !reachable(t, l.Net, "tcp", ext, 5*time.Second) {
		t.Fatal("not reachable before the restart")
	}
	if k, c := kernelForwards(t, l), m.DNATCount(t); k != n || c != n {
		t.Fatalf("before the restart: kernel %d, CGN %d DNATs; want %d", k, c, n)
	}
	// Every answered mapping is on disk (the journal) before its answer.
	if k := stateMappings(t, p); k != n {
		t.Fatalf("the state directory holds %d mappings, want %d", k, n)
	}
	outer := t // the restarted pcpgw must outlive each subtest
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			if err := p.Signal(sig); err != nil {
				t.Fatal(err)
			}
			p.Wait(5 * time.Second)
			if sig == syscall.SIGKILL {
				// The kernel keeps the forwards of a dead pcpgw (they expire with their leases).
				if k := kernelForwards(t, l); k != n {
					t.Errorf("kernel after kill -9: %d forwards, want %d", k, n)
				}
			}
			start := time.Now()
			p = l.StartPcpgw(outer, "-c", conf, "--pcp-server", "100.64.0.1")
			if !reachable(t, l.Net, "tcp", ext, 5*time.Second) {
				t.Fatalf("not reachable within 5 s of the restart")
			}
			t.Logf("reachable %v after the restart", time.Since(start).Round(time.Millisecond))
			lab.Eventually(t, 20*time.Second, func() bool {
				s := status(t, p)
				return len(list(t, p)) == n && s.Pending == 0 && s.Failing == 0 && s.Upstream.Received >= n
			},
				"not all mappings renewed after the restart: %+v", status(t, p))
			if k := kernelForwards(t, l); k != n {
				t.Errorf("kernel holds %d forwards, want %d", k, n)
			}
			if k := stateMappings(t, p); k != n {
				t.Errorf("state file holds %d mappings, want %d", k, n)
			}
			// miniupnpd replaces a rule it renews: let it settle.
			lab.Eventually(t, 5*time.Second, func() bool { return m.DNATCount(t) == n },
				"CGN holds %d DNATs after the restart, want %d (renewed, not duplicated)", m.DNATCount(t), n)
			t.Logf("all %d mappings renewed upstream %v after the restart", n, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestLeaseEnds: a LAN host's mapping ends with its lease: nothing is left
// in the kernel or at the CGN.
func TestLeaseEnds(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true, MinLifetime: 1})
	conf := filepath.Join(l.Dir, "pcpgw.conf")
	if err := os.WriteFile(conf, []byte("config pcpgw 'main'\n\toption min_lifetime '2'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := l.StartPcpgw(t, "-c", conf, "--pcp-server", "100.64.0.1")
	serveLAN(t, l, 8082)
	r := natpmpMapTCP(t, l, 8082, 18082, 3)
	if r.Lifetime != 3 {
		t.Errorf("granted lifetime %d, want 3", r.Lifetime)
	}
	if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, r.ExternalPort), 3*time.Second) {
		t.Fatal("not reachable while the lease runs")
	}
	lab.Eventually(t, 10*time.Second, func() bool {
		return len(list(t, p)) == 0 && kernelForwards(t, l) == 0 && m.DNATCount(t) == 0
	}, "after the lease: list %v, kernel %d, CGN %d", list(t, p), kernelForwards(t, l), m.DNATCount(t))
	if reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, r.ExternalPort), 300*time.Millisecond) {
		t.Error("still reachable after the lease ended")
	}
}

// TestCPEWANAddressChanges: re-addressing the CPE's WAN is noticed without
// a restart; the mapping is made again for the new address.
func TestCPEWANAddressChanges(t *testing.T) {
	l, _, p := startNAT444(t, lab.MiniupnpdOptions{})
	serveLAN(t, l, 8083)
	natpmpMapTCP(t, l, 8083, 18083, 3600)
	// Deleting the primary address would take a secondary of its subnet
	// with it: delete first, then add, then restore the default route.
	l.CPE.Run(t, "ip", "addr", "del", "100.64.0.2/24", "dev", l.CPEWANIf)
	l.CPE.Run(t, "ip", "addr", "add", "100.64.0.3/24", "dev", l.CPEWANIf)
	l.CPE.Run(t, "ip", "route", "replace", "default", "via", "100.64.0.1")
	lab.Eventually(t, 10*time.Second, func() bool { return status(t, p).WANAddr == "100.64.0.3" },
		"pcpgw did not notice the new WAN address")
	var ext netip.AddrPort
	lab.Eventually(t, 15*time.Second, func() bool {
		rows := list(t, p)
		if len(rows) != 1 || rows[0].Upstream != "ok" {
			return false
		}
		ext = netip.MustParseAddrPort(rows[0].External)
		return reachable(t, l.Net, "tcp", ext, time.Second)
	}, "the mapping does not work for the new WAN address: %+v", list(t, p))
	t.Logf("external endpoint after the WAN change: %v", ext)
}

// TestProviderExternalAddressChanges: the CGN gets a new public address
// and restarts; LAN hosts hear NAT-PMP and PCP announcements on
// 224.0.0.1:5350, and pcpgw list shows the new address.
func TestProviderExternalAddressChanges(t *testing.T) {
	l, m, p := startNAT444(t, lab.MiniupnpdOptions{})
	serveLAN(t, l, 8084)
	natpmpMapTCP(t, l, 8084, 18084, 3600)

	var mc *net.UDPConn
	var err error
	l.LAN.Do(t, func() {
		ifi, e := net.InterfaceByName(l.LANIf)
		if e != nil {
			err = e
			return
		}
		mc, err = net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 1), Port: pcp.ClientPort})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()

	events := gatherNOTIFY(t, l.LAN, netip.AddrPortFrom(lanHost, 8097))
	lab.Eventually(t, 10*time.Second, func() bool { return subscribeIGD(t, l, "http://192.0.2.100:8097/cb") == 200 },
		"SUBSCRIBE never accepted")
	if ev := events.next(t); !strings.Contains(ev.body, "<ExternalIPAddress>"+cgnPublic.String()+"</ExternalIPAddress>") {
		t.Errorf("initial event:\n%s", ev.body)
	}

	newPub := netip.MustParseAddr("203.0.113.3")
	l.ISP.Run(t, "ip", "addr", "del", cgnPublic.String()+"/24", "dev", l.ISPPubIf)
	l.ISP.Run(t, "ip", "addr", "add", newPub.String()+"/24", "dev", l.ISPPubIf)
	m.Restart(t, true)

	// The provider may answer NETWORK_FAILURE while it starts: pcpgw then
	// waits the error's lifetime (30 s, RFC 6887 §8.3) before asking again.
	mc.SetReadDeadline(time.Now().Add(45 * time.Second))
	var gotNATPMP, gotPCP bool
	buf := make([]byte, 1100)
	for !(gotNATPMP && gotPCP) {
		k, from, err := mc.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("announcements heard: NAT-PMP %v, PCP %v: %v", gotNATPMP, gotPCP, err)
		}
		if from.Addr().Unmap() != cpeLAN {
			continue
		}
		switch {
		case k >= 12 && buf[0] == 0:
			if r, err := pcp.ParseNATPMPResponse(buf[:k]); err == nil && r.Opcode == 0 && r.ExternalAddr == newPub {
				gotNATPMP = true
			}
		case k >= 24 && buf[0] == 2:
			if r, err := pcp.ParseResponse(buf[:k]); err == nil && r.Opcode == pcp.OpAnnounce {
				gotPCP = true
			}
		}
	}
	lab.Eventually(t, 10*time.Second, func() bool {
		rows := list(t, p)
		return len(rows) == 1 && netip.MustParseAddrPort(rows[0].External).Addr() == newPub
	}, "list does not show the new external address: %+v", list(t, p))
	for {
		ev := events.next(t)
		if strings.Contains(ev.body, "<ExternalIPAddress>"+newPub.String()+"</ExternalIPAddress>") {
			break
		}
	}
	ext := netip.MustParseAddrPort(list(t, p)[0].External)
	if !reachable(t, l.Net, "tcp", ext, 5*time.Second) {
		t.Errorf("%v not reachable", ext)
	}
	if s := status(t, p); s.External != newPub.String() {
		t.Errorf("status external %q, want %v", s.External, newPub)
	}
}

// stateMappings counts the mappings pcpgw's state directory holds (the
// state file and its journal: what a restart restores).
func stateMappings(t *testing.T, p *lab.Pcpgw) int {
	t.Helper()
	ms, err := mapping.ReadState(p.StateDir)
	if err != nil {
		return -1
	}
	return len(ms)
}

// igdRequest sends one raw HTTP request from the LAN host to pcpgw's IGD
// and returns the status code and body.
func igdRequest(t *testing.T, l *lab.Lab, raw string) (int, string) {
	t.Helper()
	var c net.Conn
	var err error
	l.LAN.Do(t, func() { c, err = net.DialTimeout("tcp4", lab.CPELAN4+":5000", 2*time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("IGD answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// addPortMapping sends IGD:1 AddPortMapping for TCP as upnpc does.
func addPortMapping(t *testing.T, l *lab.Lab, eport, iport uint16) (int, string) {
	body := fmt.Sprintf(`<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewRemoteHost></NewRemoteHost><NewExternalPort>%d</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>%d</NewInternalPort><NewInternalClient>%s</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>e2e</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration></u:AddPortMapping></s:Body></s:Envelope>`, eport, iport, lanHost)
	return igdRequest(t, l, fmt.Sprintf("POST /igd1/WANIPConn1/ctl HTTP/1.1\r\nHost: %s:5000\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nSOAPAction: \"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping\"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", lab.CPELAN4, len(body), body))
}

// TestProviderUnreachableIGD: with the provider unreachable, an IGD
// AddPortMapping answers 501 ActionFailed within 3 s (RFC 6970 §5.1), and
// the mapping is made when the provider is back, without asking again.
func TestProviderUnreachableIGD(t *testing.T) {
	l, _, _ := startNAT444(t, lab.MiniupnpdOptions{})
	serveLAN(t, l, 8086)
	lab.Eventually(t, 10*time.Second, func() bool {
		code, _ := igdRequest(t, l, "GET /igd1.xml HTTP/1.1\r\nHost: "+lab.CPELAN4+":5000\r\nConnection: close\r\n\r\n")
		return code == 200
	}, "the IGD never served its description")
	l.ISP.Run(t, "nft", "add table inet block; add chain inet block in { type filter hook input priority -10; policy accept; }; add rule inet block in udp dport 5351 drop")
	start := time.Now()
	code, body := addPortMapping(t, l, 18086, 8086)
	took := time.Since(start)
	if code != 500 || !strings.Contains(body, "<errorCode>501</errorCode>") || took > 3*time.Second {
		t.Errorf("AddPortMapping with the provider unreachable: %d after %v\n%s", code, took, body)
	}
	l.ISP.Run(t, "nft", "delete", "table", "inet", "block")
	if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, 18086), 60*time.Second) {
		t.Fatal("the mapping was not made after the provider came back")
	}
}

// subscribeIGD subscribes the LAN host's callback to WANIPConnection:1's
// events and returns the status code.
func subscribeIGD(t *testing.T, l *lab.Lab, callback string) int {
	code, _ := igdRequest(t, l, fmt.Sprintf("SUBSCRIBE /igd1/WANIPConn1/evt HTTP/1.1\r\nHost: %s:5000\r\nCALLBACK: <%s>\r\nNT: upnp:event\r\nTIMEOUT: Second-300\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", lab.CPELAN4, callback))
	return code
}
