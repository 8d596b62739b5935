package e2e

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/pcp"
)

// TestExactMappingLost (RFC 6887 §11.3, §13.2, §14.2): a LAN PCP client
// maps 8080 on 28080 with PREFER_FAILURE. The CGN (miniupnpd 2.3.9)
// restarts empty, except that another subscriber took 28080 meanwhile.
// pcpgw asks for 28080 again with PREFER_FAILURE; miniupnpd offers
// another port (with SUCCESS: its port-in-use check runs first), which
// pcpgw gives back. The mapping is not moved behind the client's back:
// the client gets, on the socket its request came from, an unsolicited
// MAP response with CANNOT_PROVIDE_EXTERNAL, its nonce and the endpoint
// it knew; the mapping is gone from pcpgw's table, the CPE's kernel and
// the CGN (which holds the other subscriber's DNAT only). Asking again
// with PREFER_FAILURE it is told CANNOT_PROVIDE_EXTERNAL; without it, it
// gets another port that the internet reaches.
func TestExactMappingLost(t *testing.T) {
	l, m, p := startNAT444(t, lab.MiniupnpdOptions{})
	serveLAN(t, l, 8080)

	send, read := pcpSocket(t, l, 40124)
	// Each request below has its own nonce, so that an answer is told
	// from a late answer to an earlier one and from a notice.
	nonce := pcp.Nonce{0x17, 0xe, 0xa, 0xc, 5, 6, 7, 8, 9, 10, 11, 12}
	mapReq := func(nonce pcp.Nonce, preferFailure bool) []byte {
		r := pcp.Request{Opcode: pcp.OpMap, Lifetime: 3600, Client: npLANHost,
			Map: &pcp.Map{Nonce: nonce, Protocol: 6, InternalPort: 8080, ExternalPort: 28080, ExternalAddr: netip.IPv4Unspecified()}}
		if preferFailure {
			r.Options = []pcp.Option{{Code: pcp.OptPreferFailure}}
		}
		return r.AppendMarshal(nil)
	}
	// ask sends a MAP and returns the answer, retransmitted for up to
	// about 4 s; what came before it was sent (the repeats of a notice,
	// 750 ms at most) is read and dropped first.
	ask := func(nonce pcp.Nonce, preferFailure bool) pcp.Response {
		t.Helper()
		for range 20 {
			if _, ok := read(100 * time.Millisecond); !ok {
				break
			}
		}
		for range 4 {
			send(mapReq(nonce, preferFailure))
			for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
				if r, ok := read(time.Until(deadline)); ok && r.Opcode == pcp.OpMap && r.Map != nil && r.Map.Nonce == nonce {
					return r
				}
			}
		}
		t.Fatalf("no answer to the MAP (PREFER_FAILURE %v)", preferFailure)
		return pcp.Response{}
	}
	got := ask(nonce, true)
	if got.Result != pcp.Success || got.Map.ExternalPort != 28080 {
		t.Fatalf("MAP with PREFER_FAILURE: %v %+v", got.Result, got.Map)
	}
	if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, 28080), 5*time.Second) {
		t.Fatal("the internet does not reach the mapping")
	}

	m.RestartHolding(t, "TCP:28080:100.64.0.9:28080:0:taken")
	start := time.Now()
	var lost pcp.Response
	lab.Eventually(t, 30*time.Second, func() bool {
		r, ok := read(time.Second)
		if ok && r.Opcode == pcp.OpMap && r.Map != nil && r.Map.Nonce == nonce {
			lost = r
			return true
		}
		return false
	}, "no unsolicited MAP response for the exact mapping")
	if lost.Result != pcp.CannotProvideExternal || lost.Map.InternalPort != 8080 || lost.Map.ExternalPort != 28080 ||
		lost.Map.ExternalAddr.Unmap() != cgnPublic || lost.Lifetime == 0 {
		t.Errorf("the client was told %v (lifetime %d) %+v, want CANNOT_PROVIDE_EXTERNAL about %v:28080", lost.Result, lost.Lifetime, lost.Map, cgnPublic)
	}
	t.Logf("told %v %v after the CGN's restart", lost.Result, time.Since(start).Round(time.Millisecond))
	if rows := list(t, p); len(rows) != 0 {
		t.Errorf("pcpgw still lists %+v", rows)
	}
	if n := kernelForwards(t, l); n != 0 {
		t.Errorf("the CPE's kernel holds %d forwards", n)
	}
	// The port miniupnpd offered instead is given back.
	lab.Eventually(t, 10*time.Second, func() bool { return m.DNATCount(t) == 1 },
		"the CGN holds %d DNATs, want the other subscriber's only", m.DNATCount(t))

	// Asking again for 28080 exactly: refused, nothing made.
	if r := ask(pcp.Nonce{0x17, 2}, true); r.Result != pcp.CannotProvideExternal {
		t.Errorf("MAP with PREFER_FAILURE again: %v %+v", r.Result, r.Map)
	}
	if rows := list(t, p); len(rows) != 0 {
		t.Errorf("pcpgw lists %+v after the refused request", rows)
	}
	// Without PREFER_FAILURE: another port, reachable.
	r := ask(pcp.Nonce{0x17, 3}, false)
	if r.Result != pcp.Success || r.Map.ExternalPort == 28080 {
		t.Fatalf("MAP without PREFER_FAILURE: %v %+v", r.Result, r.Map)
	}
	if ext := netip.AddrPortFrom(cgnPublic, r.Map.ExternalPort); !reachable(t, l.Net, "tcp", ext, 5*time.Second) {
		t.Errorf("%v does not reach the LAN service\n%s", ext, m.Ruleset(t))
	}
}
