package e2e

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/pcp"
)

// TestMappingMovedLearned (issue 17.2): the CGN (miniupnpd 2.3.9)
// restarts empty, except that while it was down another subscriber took
// the ports of two LAN mappings that were not asked for exactly, a PCP
// MAP without PREFER_FAILURE and a NAT-PMP one. pcpgw makes them again
// and the CGN gives them other ports. Every LAN client concerned learns
// it: the PCP client, on the very socket its request came from, gets the
// unsolicited MAP response (RFC 6887 §14.2) with its nonce and the new
// port; NAT-PMP clients hear the address announcement on 224.0.0.1:5350
// with a restarted epoch (RFC 6886 §3.2.1, §3.7), and the NAT-PMP client
// asking again gets the new port; a GENA subscriber gets an event
// (SystemUpdateID one more). The internet host reaches both LAN services
// on their new ports.
func TestMappingMovedLearned(t *testing.T) {
	l, m, p := startNAT444(t, lab.MiniupnpdOptions{})
	serveLANPorts(t, l, 8080, 8080)
	serveLAN(t, l, 8081)
	ann := listenAnnouncements(t, l)

	// A GENA subscriber (IGD:2, which events SystemUpdateID).
	events := gatherNOTIFY(t, l.LAN, netip.AddrPortFrom(lanHost, 8096))
	lab.Eventually(t, 10*time.Second, func() bool {
		code, _ := igdRequest(t, l, fmt.Sprintf("SUBSCRIBE /igd2/WANIPConn1/evt HTTP/1.1\r\nHost: %s:5000\r\nCALLBACK: <http://%s:8096/cb>\r\nNT: upnp:event\r\nTIMEOUT: Second-300\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", lab.CPELAN4, lanHost))
		return code == 200
	}, "SUBSCRIBE never accepted")
	updateID := func(body string) int {
		_, v, ok := strings.Cut(body, "<SystemUpdateID>")
		if !ok {
			return -1
		}
		v, _, _ = strings.Cut(v, "<")
		n, _ := strconv.Atoi(v)
		return n
	}
	id0 := updateID(events.next(t).body)

	// The PCP client: one socket, its requests from port 40123.
	send, read := pcpSocket(t, l, 40123)
	nonce := pcp.Nonce{0x17, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	mapReq := (&pcp.Request{Opcode: pcp.OpMap, Lifetime: 3600, Client: npLANHost,
		Map: &pcp.Map{Nonce: nonce, Protocol: 6, InternalPort: 8080, ExternalPort: 28080, ExternalAddr: netip.IPv4Unspecified()}}).AppendMarshal(nil)
	var got pcp.Response
	lab.Eventually(t, 15*time.Second, func() bool {
		send(mapReq)
		r, ok := read(time.Second)
		got = r
		return ok && r.Result == pcp.Success
	}, "PCP MAP never succeeded: %+v", got)
	if got.Map.ExternalPort != 28080 {
		t.Fatalf("PCP mapping on port %d, want 28080", got.Map.ExternalPort)
	}
	pmp := natpmpMapTCP(t, l, 8081, 28081, 3600)
	if pmp.ExternalPort != 28081 {
		t.Fatalf("NAT-PMP mapping on port %d, want 28081", pmp.ExternalPort)
	}
	epochBefore := pmp.Epoch

	m.RestartHolding(t, "TCP:28080:100.64.0.9:28080:0:taken", "TCP:28081:100.64.0.9:28081:0:taken")
	start := time.Now()

	// The PCP client's Mapping Update.
	var upd pcp.Response
	lab.Eventually(t, 30*time.Second, func() bool {
		r, ok := read(time.Second)
		if ok && r.Opcode == pcp.OpMap && r.Map != nil && r.Map.Nonce == nonce {
			upd = r
			return true
		}
		return false
	}, "no Mapping Update for the PCP client")
	newPCP := netip.AddrPortFrom(upd.Map.ExternalAddr.Unmap(), upd.Map.ExternalPort)
	if upd.Result != pcp.Success || newPCP.Addr() != cgnPublic || newPCP.Port() == 28080 || upd.Map.InternalPort != 8080 || upd.Lifetime == 0 {
		t.Errorf("Mapping Update %+v %+v", upd, upd.Map)
	}
	t.Logf("PCP Mapping Update %v after the CGN's restart: %v (was :28080)", time.Since(start).Round(time.Millisecond), newPCP)

	// The NAT-PMP announcement with a restarted epoch, then the client
	// asking again gets its mapping's new port.
	lab.Eventually(t, 30*time.Second, func() bool {
		ann.mu.Lock()
		defer ann.mu.Unlock()
		for _, r := range ann.natpmp {
			if r.Opcode == pcp.NATPMPOpExternalAddr && r.ExternalAddr == cgnPublic && r.Epoch < epochBefore {
				return true
			}
		}
		return false
	}, "no NAT-PMP announcement with an epoch below %d", epochBefore)
	var again pcp.NATPMPResponse
	lab.Eventually(t, 30*time.Second, func() bool {
		again = natpmpMapTCP(t, l, 8081, 28081, 3600)
		return again.ExternalPort != 28081
	}, "the NAT-PMP mapping is still on 28081")
	newPMP := netip.AddrPortFrom(cgnPublic, again.ExternalPort)
	t.Logf("NAT-PMP mapping now %v", newPMP)

	// GENA: SystemUpdateID moved on.
	lab.Eventually(t, 30*time.Second, func() bool {
		select {
		case ev := <-events.got:
			return updateID(ev.body) > id0
		case <-time.After(time.Second):
			return false
		}
	}, "no GENA event with a SystemUpdateID above %d", id0)

	for _, ext := range []netip.AddrPort{newPCP, newPMP} {
		if !reachable(t, l.Net, "tcp", ext, 10*time.Second) {
			t.Errorf("%v does not reach the LAN host\n%s", ext, m.Ruleset(t))
		}
	}
	rows := list(t, p)
	t.Logf("pcpgw list: %+v", rows)
}
