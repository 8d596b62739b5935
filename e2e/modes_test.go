package e2e

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/pcp"
)

// TestModeLocal: with a public WAN address auto picks local: pcpgw is a
// plain router's NAT-PMP server, talks to no PCP server, and a mapping
// makes the LAN service reachable on the CPE's own address.
func TestModeLocal(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{Local: true})
	p := l.StartPcpgw(t)
	s := status(t, p)
	if s.Mode != "local" || s.ModeConfig != "auto" || s.External != lab.LocalCPEWAN4 {
		t.Errorf("status: mode %q (config %q), external %q; want local by auto, %s", s.Mode, s.ModeConfig, s.External, lab.LocalCPEWAN4)
	}
	serveLAN(t, l, 8080)
	ext := netip.AddrPortFrom(netip.MustParseAddr(lab.LocalCPEWAN4), 18080)
	if reachable(t, l.Net, "tcp", ext, 300*time.Millisecond) {
		t.Fatal("reachable before any mapping")
	}
	r := natpmpMapTCP(t, l, 8080, 18080, 3600)
	ru, err := natpmp(t, l, pcp.NATPMPRequest{Opcode: pcp.NATPMPOpMapUDP, InternalPort: 8080, SuggestedExternalPort: 18080, Lifetime: 3600})
	if err != nil || ru.Result != pcp.NATPMPSuccess {
		t.Fatalf("UDP map: %+v %v", ru, err)
	}
	r0, err := natpmp(t, l, pcp.NATPMPRequest{Opcode: pcp.NATPMPOpExternalAddr})
	if err != nil || r0.ExternalAddr.String() != lab.LocalCPEWAN4 {
		t.Errorf("external address %v %v", r0.ExternalAddr, err)
	}
	for _, proto := range []string{"tcp", "udp"} {
		port := r.ExternalPort
		if proto == "udp" {
			port = ru.ExternalPort
		}
		if !reachable(t, l.Net, proto, netip.AddrPortFrom(ext.Addr(), port), 3*time.Second) {
			t.Errorf("%s: the internet host does not reach the LAN service", proto)
		}
	}
	if st := status(t, p); st.Upstream.Sent != 0 {
		t.Errorf("local mode sent %d PCP requests", st.Upstream.Sent)
	}
	if _, err := natpmp(t, l, pcp.NATPMPRequest{Opcode: pcp.NATPMPOpMapTCP, InternalPort: 8080, Lifetime: 0}); err != nil {
		t.Fatal(err)
	}
	if reachable(t, l.Net, "tcp", ext, 300*time.Millisecond) {
		t.Error("still reachable after the mapping was deleted")
	}
}

// TestModeDSLite: the CPE does no NAT; the provider routes the LAN prefix
// to it, and pcpgw maps the LAN host's own address upstream with
// THIRD_PARTY (RFC 6970 §5.4). (No softwire: this kernel has no IPv6
// tunnels; the PCP exchange and the data path through the provider's NAT
// are real.)
func TestModeDSLite(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	l.ISP.Run(t, "ip", "route", "add", "192.0.2.0/24", "via", "100.64.0.2")
	p := l.StartPcpgw(t, "--mode", "dslite", "--pcp-server", "100.64.0.1")
	serveLAN(t, l, 8085)
	// The first request may come while pcpgw still looks for its upstream:
	// it is answered when the upstream is known, as that one says.
	r := natpmpMapTCP(t, l, 8085, 18085, 3600)
	ext := netip.AddrPortFrom(cgnPublic, r.ExternalPort)
	if !reachable(t, l.Net, "tcp", ext, 5*time.Second) {
		t.Fatalf("not reachable through the provider's NAT:\n%s", m.Ruleset(t))
	}
	rows := list(t, p)
	if len(rows) != 1 || rows[0].WANPort != 0 || rows[0].External != ext.String() {
		t.Errorf("list %+v: want no CPE WAN port and external %v", rows, ext)
	}
	if rs := m.Ruleset(t); !strings.Contains(rs, "192.0.2.100") {
		t.Errorf("the CGN does not map to the LAN host's own address:\n%s", rs)
	}
	if s := status(t, p); s.Mode != "dslite" {
		t.Errorf("mode %q", s.Mode)
	}
	// The CPE does no NAT: IGD says so (issue 17.9).
	body := `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:GetNATRSIPStatus xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"></u:GetNATRSIPStatus></s:Body></s:Envelope>`
	code, answer := igdRequest(t, l, fmt.Sprintf("POST /igd1/WANIPConn1/ctl HTTP/1.1\r\nHost: %s:5000\r\nContent-Type: text/xml\r\nSOAPAction: \"urn:schemas-upnp-org:service:WANIPConnection:1#GetNATRSIPStatus\"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", lab.CPELAN4, len(body), body))
	if code != 200 || !strings.Contains(answer, "<NewNATEnabled>0</NewNATEnabled>") {
		t.Errorf("GetNATRSIPStatus in dslite: %d %s", code, answer)
	}
}

// TestIPv6PinholePCP: with the RFC 6092 baseline on, an inbound IPv6
// connection from the provider's side reaches the LAN host only while a
// pinhole made with PCP MAP (as a pure firewall: external = internal,
// RFC 6887 §11.3) lives.
func TestIPv6PinholePCP(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	conf := filepath.Join(l.Dir, "pcpgw.conf")
	if err := os.WriteFile(conf, []byte("config pcpgw 'main'\n\toption ipv6_firewall '1'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l.StartPcpgw(t, "-c", conf, "--pcp-server", "100.64.0.1")
	host6 := netip.MustParseAddr(lab.LANHost6)
	target := netip.AddrPortFrom(host6, 9000)
	serveTCP(t, l.LAN, target)
	if reachable(t, l.ISP, "tcp", target, 500*time.Millisecond) {
		t.Fatal("inbound IPv6 reaches the LAN host without a pinhole")
	}
	var nonce pcp.Nonce
	rand.Read(nonce[:])
	res := pcpMap(t, l, host6, nonce, 9000, 3600)
	if res.Result != pcp.Success || res.Map == nil || res.Map.ExternalAddr != host6 || res.Map.ExternalPort != 9000 {
		t.Fatalf("PCP MAP for an IPv6 host: %+v %+v", res, res.Map)
	}
	if !reachable(t, l.ISP, "tcp", target, 3*time.Second) {
		t.Fatal("the pinhole does not let inbound IPv6 through")
	}
	res = pcpMap(t, l, host6, nonce, 9000, 0)
	if res.Result != pcp.Success {
		t.Fatalf("PCP delete: %v", res.Result)
	}
	lab.Eventually(t, 3*time.Second, func() bool { return !reachable(t, l.ISP, "tcp", target, 300*time.Millisecond) },
		"inbound IPv6 still reaches the LAN host after the pinhole was deleted")
}

// serveTCP runs a TCP service on addr in ns answering "hello from <port>".
func serveTCP(t *testing.T, ns *lab.NS, addr netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	var err error
	ns.Do(t, func() { ln, err = net.Listen("tcp", addr.String()) })
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
			c.Write([]byte(fmt.Sprintf("hello from %d\n", addr.Port())))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
}

// pcpMap asks pcpgw for a PCP MAP of TCP port for the LAN host at src.
func pcpMap(t *testing.T, l *lab.Lab, src netip.Addr, nonce pcp.Nonce, port uint16, life uint32) pcp.Response {
	t.Helper()
	server, any := cpeLAN, netip.IPv4Unspecified()
	if src.Is6() {
		server, any = netip.MustParseAddr(lab.CPELAN6), netip.IPv6Unspecified()
	}
	res, err := pcpAsk(t, l.LAN, server, pcp.Request{Version: pcp.Version, Opcode: pcp.OpMap, Lifetime: life, Client: src,
		Map: &pcp.Map{Nonce: nonce, Protocol: 6, InternalPort: port, ExternalAddr: any}})
	if err != nil {
		t.Fatalf("PCP MAP: %v", err)
	}
	return res
}
