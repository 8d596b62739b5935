package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/control"
)

func pcpgw(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = realMain(args, &o, &e)
	return code, o.String(), e.String()
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("config pcpgw 'main'\n\tlist lan 'br-lan'\n\toption wan 'wan'\n\toption mode 'nat444'\n"), 0o644)
	code, out, errs := pcpgw(t, "check-config", "-c", good)
	if code != 0 || !strings.Contains(out, "option mode 'nat444'") || !strings.Contains(out, "list lan 'br-lan'") {
		t.Errorf("good file: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("config pcpgw 'main'\n\tlist lan 'br-lan'\n\toption wan 'wan'\n\toption http_port '70000'\n"), 0o644)
	code, _, errs = pcpgw(t, "check-config", "-c", bad)
	if code != 1 || !strings.Contains(errs, bad+":4:") {
		t.Errorf("bad file: exit %d, stderr %q; want 1 and %s:4: ...", code, errs, bad)
	}
	code, _, errs = pcpgw(t, "check-config", "-c", filepath.Join(dir, "missing"))
	if code != 1 || errs == "" {
		t.Errorf("missing file: exit %d, stderr %q", code, errs)
	}
}

func TestCommands(t *testing.T) {
	if code, out, _ := pcpgw(t, "version"); code != 0 || !strings.HasPrefix(out, "pcpgw ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, errs := pcpgw(t, "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Errorf("unknown command: %d %q", code, errs)
	}
	if code, _, _ := pcpgw(t); code != 2 {
		t.Errorf("no command: %d", code)
	}
	// status without a daemon: a clear error, exit 1.
	code, _, errs := pcpgw(t, "status", "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if code != 1 || !strings.Contains(errs, "is pcpgw running?") {
		t.Errorf("status without a daemon: %d %q", code, errs)
	}
	// A bad flag value is a usage error (2); a configuration that does not
	// validate exits 1 before touching anything.
	if code, _, _ := pcpgw(t, "run", "--mode", "bogus"); code != 2 {
		t.Errorf("run with a bad mode: %d", code)
	}
	code, _, errs = pcpgw(t, "run", "--lan", "eth0", "--wan", "eth0")
	if code != 1 || !strings.Contains(errs, "eth0") {
		t.Errorf("run with the LAN as WAN: %d %q", code, errs)
	}
}

// pcpgw list ends the line of a mapping the provider has not made with
// the provider's reason and the time to the next retry.
func TestPrintList(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var b bytes.Buffer
	printList(&b, []control.Row{
		{Proto: "tcp", External: "203.0.113.1:18080", WANPort: 18080, Internal: "192.0.2.100:8080", LeaseLeft: -1, Origin: "static", Upstream: "ok", Description: "web"},
		{Proto: "tcp", WANPort: 18443, Internal: "192.0.2.100:443", LeaseLeft: -1, Origin: "static", Upstream: "failing", Description: "nas",
			Error: "CANNOT_PROVIDE_EXTERNAL: the provider refused external port 18443", RetryAt: now.Add(25 * time.Second)},
	}, now)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("output:\n%s", b.String())
	}
	if !strings.HasSuffix(lines[0], "DESCRIPTION  PROVIDER ERROR") || !strings.HasSuffix(strings.TrimRight(lines[1], " "), "ok        web") ||
		!strings.HasSuffix(lines[2], "failing   nas          CANNOT_PROVIDE_EXTERNAL: the provider refused external port 18443 (retry in 25s)") {
		t.Errorf("output:\n%s", b.String())
	}
}
