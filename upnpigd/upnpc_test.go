package upnpigd

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// upnpc runs miniupnpc's upnpc against a description URL (-u skips SSDP).
func upnpc(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("upnpc")
	if err != nil {
		if lab.E2E() {
			t.Fatal("upnpc (Debian miniupnpc) is not installed")
		}
		t.Skip("upnpc (Debian miniupnpc) is not installed: scripts/deps-test.sh installs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("upnpc %s: timed out\n%s", strings.Join(args, " "), out)
	}
	// upnpc's exit status says little; tests check its output.
	return string(out)
}

// TestUpnpcLoopback drives the handler with the real upnpc over loopback
// (no privileges): -s, -a, -l, -d on the IGD:1 description and -n, -L, -N
// on the IGD:2 one.
func TestUpnpcLoopback(t *testing.T) {
	ti := newTestIGD(t, nil)
	igd1 := []string{"-u", ti.base + "/igd1.xml"}
	igd2 := []string{"-u", ti.base + "/igd2.xml"}
	run := func(base []string, args ...string) string {
		return upnpc(t, append(append([]string{}, base...), args...)...)
	}

	out := run(igd1, "-s")
	for _, want := range []string{"Connection Type : IP_Routed", "Status : Connected", "ExternalIPAddress = 203.0.113.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("upnpc -s lacks %q:\n%s", want, out)
		}
	}
	out = run(igd1, "-e", "loop", "-a", "127.0.0.1", "8080", "18080", "TCP", "3600")
	if !strings.Contains(out, "external 203.0.113.1:18080 TCP is redirected to internal 127.0.0.1:8080 (duration=3600)") {
		t.Errorf("upnpc -a:\n%s", out)
	}
	out = run(igd1, "-l")
	if !strings.Contains(out, "0 TCP 18080->127.0.0.1:8080  'loop' '' 3600") || !strings.Contains(out, "GetGenericPortMappingEntry() returned 713") {
		t.Errorf("upnpc -l:\n%s", out)
	}
	out = run(igd2, "-n", "127.0.0.1", "8081", "18080", "TCP", "600")
	if !strings.Contains(out, "external 203.0.113.1:50000 TCP is redirected to internal 127.0.0.1:8081") {
		t.Errorf("upnpc -n with a taken port:\n%s", out)
	}
	out = run(igd2, "-L")
	if !strings.Contains(out, "18080->127.0.0.1:8080") || !strings.Contains(out, "50000->127.0.0.1:8081") {
		t.Errorf("upnpc -L:\n%s", out)
	}
	if out := run(igd2, "-N", "50000", "50000", "TCP"); !strings.Contains(out, "UPNP_DeletePortMappingRange() returned : 0") {
		t.Errorf("upnpc -N:\n%s", out)
	}
	if out := run(igd1, "-d", "18080", "TCP"); !strings.Contains(out, "UPNP_DeletePortMapping() returned : 0") {
		t.Errorf("upnpc -d:\n%s", out)
	}
	// Deleting what is not there is 714 (RFC 6970 §5.8).
	if out := run(igd1, "-d", "18080", "TCP"); !strings.Contains(out, "UPNP_DeletePortMapping() failed with code : 714") {
		t.Errorf("second upnpc -d:\n%s", out)
	}
	if n := len(ti.core.list()); n != 0 {
		t.Errorf("%d mappings left", n)
	}
}
