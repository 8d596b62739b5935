package clienttest

import (
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

var tsmapMapped = regexp.MustCompile(`mapped (\S+)`)

// TestTailscalePortmapper: tailscale.com/net/portmapper on the LAN host
// (the tsmap command, a process in the lan namespace), limited first to
// PCP and then to NAT-PMP, gets a UDP mapping from pcpgw on the provider's
// address 203.0.113.1 that namespace net reaches. Stopping it deletes the
// NAT-PMP mapping (the CGN's DNAT goes); its PCP release carries a fresh
// nonce and is refused, as RFC 6887 §11.3 asks, so that mapping stays.
func TestTailscalePortmapper(t *testing.T) {
	l, m := startLab(t)
	bin := filepath.Join(t.TempDir(), "tsmap")
	if out, err := exec.Command("go", "build", "-o", bin, "./tsmap").CombinedOutput(); err != nil {
		t.Fatalf("go build ./tsmap: %v\n%s", err, out)
	}
	for i, only := range []string{"pcp", "pmp"} {
		t.Run(only, func(t *testing.T) {
			port := uint16(8097 + i)
			serve(t, l, "udp", port)
			p := l.LAN.Start(t, bin, "-gw", cpeLAN.String(), "-self", lanHost.String(),
				"-port", strconv.Itoa(int(port)), "-only", only)
			lab.Eventually(t, 40*time.Second, func() bool {
				out := p.Output()
				return strings.Contains(out, "mapped ") || strings.Contains(out, "no mapping")
			}, "tsmap -only %s: no outcome:\n%s", only, p.Output())
			out := p.Output()
			mm := tsmapMapped.FindStringSubmatch(out)
			if mm == nil {
				t.Fatalf("tsmap -only %s found no mapping:\n%s", only, out)
			}
			ext, err := netip.ParseAddrPort(mm[1])
			if err != nil || ext.Addr() != cgnPublic || ext.Port() == 0 {
				t.Fatalf("tsmap -only %s mapped %q, want %v:port\n%s", only, mm[1], cgnPublic, out)
			}
			wantProbe := map[string]string{"pcp": "PCP:true", "pmp": "PMP:true"}[only]
			if !strings.Contains(out, wantProbe) {
				t.Errorf("tsmap -only %s: probe did not find %s:\n%s", only, wantProbe, out)
			}
			t.Logf("tailscale portmapper over %s: %v", only, ext)
			if !reached(t, l, "udp", ext, port) {
				t.Errorf("udp %v from net does not reach the LAN host's %d", ext, port)
			}
			before := m.DNATCount(t)
			if err := p.Stop(t); err != nil {
				t.Logf("tsmap stop: %v", err)
			}
			if only == "pmp" {
				lab.Eventually(t, 10*time.Second, func() bool { return m.DNATCount(t) < before },
					"the CGN kept the mapping after the client closed (%d DNAT rules)", before)
				return
			}
			// The portmapper releases a PCP mapping with a fresh random
			// nonce (tailscale.com/net/portmapper pcp.go, v1.102.5), which
			// RFC 6887 §11.3 makes NOT_AUTHORIZED: the mapping stays
			// until its lifetime ends.
			time.Sleep(time.Second)
			if n := m.DNATCount(t); n != before {
				t.Errorf("a release with another nonce changed the CGN's rules: %d -> %d", before, n)
			}
			if !reached(t, l, "udp", ext, port) {
				t.Errorf("the mapping went away after a release with another nonce")
			}
		})
	}
}
