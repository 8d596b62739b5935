package upnpigd

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// upnpc runs miniupnpc's upnpc against a description URL (-u skips SSDP).
func upnpc(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("upnpc")
	if err != nil {
		t.Skip("upnpc (Debian miniupnpc) is not installed: scripts/deps-test.sh installs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("upnpc %s: timed out\n%s", strings.Join(args, " "), out)
	}
	_ = err // upnpc exits 0 even on most failures; tests check its output
	return string(out)
}

func TestUpnpcDump(t *testing.T) {
	ti := newTestIGD(t, nil)
	for _, a := range [][]string{{"-s"}, {"-a", "127.0.0.1", "8080", "18080", "TCP"}, {"-l"}, {"-d", "18080", "TCP"}} {
		t.Log(upnpc(t, append([]string{"-u", ti.base + "/igd1.xml"}, a...)...))
	}
}
