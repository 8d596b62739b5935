package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/pcp"
)

// TestPreferFailureAtCGN (issue 17.1, RFC 6887 §13.2): a LAN PCP client's
// MAP with PREFER_FAILURE for an external port that another subscriber
// holds at the CGN (miniupnpd 2.3.9, which ignores PREFER_FAILURE and
// gives another port) gets CANNOT_PROVIDE_EXTERNAL, and nothing is left:
// not at the CGN (pcpgw gives back the port it was given), not in pcpgw's
// table or the kernel. The same request without PREFER_FAILURE succeeds
// on another port, reached from the internet.
func TestPreferFailureAtCGN(t *testing.T) {
	l, m, p := startNAT444(t, lab.MiniupnpdOptions{})
	m.RestartHolding(t, "TCP:18080:100.64.0.9:18080:0:taken")
	serveLAN(t, l, 8080)
	req := pcp.Request{Opcode: pcp.OpMap, Lifetime: 3600, Client: npLANHost,
		Map:     &pcp.Map{Nonce: pcp.Nonce{0x17, 1}, Protocol: 6, InternalPort: 8080, ExternalPort: 18080, ExternalAddr: netip.IPv4Unspecified()},
		Options: []pcp.Option{{Code: pcp.OptPreferFailure}}}
	var r pcp.Response
	lab.Eventually(t, 20*time.Second, func() bool {
		var err error
		r, err = pcpAsk(t, l.LAN, npCPELAN, req)
		return err == nil && r.Result != pcp.NetworkFailure
	}, "no answer but NETWORK_FAILURE: %+v", r)
	if r.Result != pcp.CannotProvideExternal {
		t.Fatalf("PREFER_FAILURE for a port held at the CGN: %v, want CANNOT_PROVIDE_EXTERNAL", r.Result)
	}
	ours := func() []string { // the CGN's TCP DNATs toward the CPE
		var out []string
		for _, line := range strings.Split(m.Ruleset(t), "\n") {
			if strings.Contains(line, " dnat ip to "+lab.CPEWAN4+":") && strings.Contains(line, " 0x6 th dport ") { // TCP
				out = append(out, strings.TrimSpace(line))
			}
		}
		return out
	}
	lab.Eventually(t, 10*time.Second, func() bool {
		return len(ours()) == 0 && len(list(t, p)) == 0 && kernelForwards(t, l) == 0
	}, "left after the refusal: CGN %q, list %+v, kernel %d", ours(), list(t, p), kernelForwards(t, l))

	req.Options = nil
	req.Map.Nonce = pcp.Nonce{0x17, 2}
	r, err := pcpAsk(t, l.LAN, npCPELAN, req)
	if err != nil || r.Result != pcp.Success || r.Map.ExternalPort == 18080 || r.Map.ExternalAddr.Unmap() != cgnPublic {
		t.Fatalf("without PREFER_FAILURE: %+v %v", r, err)
	}
	if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, r.Map.ExternalPort), 5*time.Second) {
		t.Fatalf("not reachable at %v:%d\n%s", cgnPublic, r.Map.ExternalPort, m.Ruleset(t))
	}
	if got := ours(); len(got) != 1 { // what the refusal's check counted is there now
		t.Errorf("the CGN's DNATs toward the CPE: %q, want the one mapping\n%s", got, m.Ruleset(t))
	}
}
