package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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

// TestCheckConfigMapRules (issue 16): a static forward outside the port
// set of the WAN's map rules is refused by check-config with its line, as
// one outside the options' set is; one inside passes.
func TestCheckConfigMapRules(t *testing.T) {
	dir := t.TempDir()
	rules, err := os.ReadFile("../../portset/testdata/map-wan.rules") // ports 4112-4127, 8208-8223, ...
	if err != nil {
		t.Fatal(err)
	}
	rf := filepath.Join(dir, "map-wan.rules")
	if err := os.WriteFile(rf, rules, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := func(port int) string {
		f := filepath.Join(dir, fmt.Sprint(port))
		os.WriteFile(f, []byte(fmt.Sprintf("config pcpgw 'main'\n\tlist lan 'br-lan'\n\toption wan 'map-wan'\n\toption map_rules '%s'\n\n"+
			"config forward 'web'\n\toption ext_port '%d'\n\toption int_addr '192.0.2.100'\n", rf, port)), 0o644)
		return f
	}
	if code, _, errs := pcpgw(t, "check-config", "-c", conf(8210)); code != 0 {
		t.Errorf("forward inside the set: exit %d, stderr %q", code, errs)
	}
	bad := conf(8080)
	code, _, errs := pcpgw(t, "check-config", "-c", bad)
	if code != 1 || !strings.Contains(errs, bad+":6:") || !strings.Contains(errs, "outside the port set of the map rules") {
		t.Errorf("forward outside the set: exit %d, stderr %q; want 1 and %s:6: ... outside the port set", code, errs, bad)
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

// ctlSource is a daemon as the control socket sees it: one UPnP mapping
// (tcp 18080, id 1) and one static forward (tcp 18443, id 2).
type ctlSource struct{ deletes []control.DeleteRequest }

func (*ctlSource) Status() control.Status { return control.Status{} }
func (*ctlSource) List() []control.Row    { return nil }
func (s *ctlSource) Delete(_ context.Context, r control.DeleteRequest) (int, error) {
	s.deletes = append(s.deletes, r)
	switch {
	case r.ID == 2 || r == control.DeleteRequest{Proto: "tcp", Port: 18443}:
		return 0, errors.New(`tcp 18443 is the static forward "nas": remove or disable its forward section in /etc/config/pcpgw`)
	case r.ID == 1 || r == control.DeleteRequest{Proto: "tcp", Port: 18080}:
		return 1, nil
	}
	return 0, nil
}

// pcpgw delete: its arguments, its output as text and JSON, and the
// daemon's refusal as a clear error (exit 1).
func TestDeleteCommand(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	src := &ctlSource{}
	srv, err := control.Listen(sock, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	for _, tc := range []struct {
		args         []string
		code         int
		stdout, errs string
	}{
		{[]string{"tcp", "18080"}, 0, "deleted 1 mapping (tcp 18080)\n", ""},
		{[]string{"--json", "tcp", "18080"}, 0, "{\"deleted\":1}\n", ""},
		{[]string{"id", "1"}, 0, "deleted 1 mapping (id 1)\n", ""},
		{[]string{"udp", "18080"}, 0, "no mapping udp 18080: nothing deleted\n", ""},
		{[]string{"--json", "udp", "18080"}, 0, "{\"deleted\":0}\n", ""},
		{[]string{"tcp", "18443"}, 1, "", "pcpgw: tcp 18443 is the static forward \"nas\": remove or disable its forward section in /etc/config/pcpgw\n"},
		{[]string{"--json", "id", "2"}, 1, "", "pcpgw: tcp 18443 is the static forward \"nas\": remove or disable its forward section in /etc/config/pcpgw\n"},
		{[]string{"tcp"}, 2, "", "pcpgw delete: delete takes PROTO PORT (tcp or udp, 1-65535) or id ID\n"},
		{[]string{"icmp", "8"}, 2, "", "pcpgw delete: protocol \"icmp\" is neither tcp nor udp\n"},
		{[]string{"tcp", "0"}, 2, "", "pcpgw delete: port \"0\" is not a number from 1 to 65535\n"},
	} {
		code, out, errs := pcpgw(t, append([]string{"delete", "--socket", sock}, tc.args...)...)
		if tc.code == 2 {
			// The usage follows the message.
			errs, _, _ = strings.Cut(errs, "usage:")
		}
		if code != tc.code || out != tc.stdout || errs != tc.errs {
			t.Errorf("pcpgw delete %q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, out, errs, tc.code, tc.stdout, tc.errs)
		}
	}
	// Usage errors never reach the daemon.
	want := []control.DeleteRequest{{Proto: "tcp", Port: 18080}, {Proto: "tcp", Port: 18080}, {ID: 1},
		{Proto: "udp", Port: 18080}, {Proto: "udp", Port: 18080}, {Proto: "tcp", Port: 18443}, {ID: 2}}
	if diff := cmp.Diff(want, src.deletes); diff != "" {
		t.Errorf("requests the daemon got (-want +got):\n%s", diff)
	}
	code, _, errs := pcpgw(t, "delete", "--socket", filepath.Join(t.TempDir(), "none.sock"), "tcp", "1")
	if code != 1 || !strings.Contains(errs, "is pcpgw running?") {
		t.Errorf("delete without a daemon: %d %q", code, errs)
	}
}
