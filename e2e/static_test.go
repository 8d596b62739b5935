package e2e

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/pcp"
)

// TestStaticForward: a `config forward` section is a permanent mapping kept
// at the provider without any LAN app asking: the internet host reaches the
// LAN service, also after the provider restarts with no state; removed from
// the configuration, it ends at the next start.
func TestStaticForward(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	conf := filepath.Join(l.Dir, "pcpgw.conf")
	write := func(s string) {
		if err := os.WriteFile(conf, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`config pcpgw 'main'
	option mode 'auto'

config forward 'nas'
	option proto 'tcp'
	option ext_port '18443'
	option int_addr '192.0.2.100'
	option int_port '8443'
	option description 'NAS web page'
`)
	serveLAN(t, l, 8443)
	p := l.StartPcpgw(t, "-c", conf, "--pcp-server", "100.64.0.1")
	ext := netip.AddrPortFrom(cgnPublic, 18443)
	if !reachable(t, l.Net, "tcp", ext, 10*time.Second) {
		t.Fatalf("the static forward does not reach the LAN service: %+v", list(t, p))
	}
	rows := list(t, p)
	if len(rows) != 1 || rows[0].Origin != "static" || rows[0].LeaseLeft != -1 || rows[0].Description != "NAS web page" {
		t.Errorf("list: %+v", rows)
	}
	m.Restart(t, true)
	if !reachable(t, l.Net, "tcp", ext, 10*time.Second) {
		t.Fatal("the static forward was not re-created after the provider lost its state")
	}

	// A reload (SIGHUP) adds a forward and changes the policy at once.
	write(`config pcpgw 'main'

config forward 'nas'
	option proto 'tcp'
	option ext_port '18443'
	option int_addr '192.0.2.100'
	option int_port '8443'
	option description 'NAS web page'

config forward 'game'
	option proto 'udp'
	option ext_port '18444'
	option int_addr '192.0.2.100'
	option int_port '8444'
`)
	serveLAN(t, l, 8444)
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !reachable(t, l.Net, "udp", netip.AddrPortFrom(cgnPublic, 18444), 10*time.Second) {
		t.Fatalf("the forward added by a reload does not work: %+v", list(t, p))
	}
	// Removed by a reload: gone at once.
	write(`config pcpgw 'main'

config forward 'nas'
	option proto 'tcp'
	option ext_port '18443'
	option int_addr '192.0.2.100'
	option int_port '8443'
	option description 'NAS web page'
`)
	p.Signal(syscall.SIGHUP)
	lab.Eventually(t, 5*time.Second, func() bool { return len(list(t, p)) == 1 }, "the forward removed by a reload is still listed: %+v", list(t, p))
	if !reachable(t, l.Net, "tcp", ext, 3*time.Second) {
		t.Fatal("the kept forward stopped working after the reload")
	}

	// A change of the file is picked up without a signal (checked every 2 s).
	write(`config pcpgw 'main'

config forward 'nas'
	option proto 'tcp'
	option ext_port '18443'
	option int_addr '192.0.2.100'
	option int_port '8443'
	option description 'NAS web page'

config forward 'voip'
	option proto 'udp'
	option ext_port '18445'
	option int_addr '192.0.2.100'
	option int_port '8444'
`)
	if !reachable(t, l.Net, "udp", netip.AddrPortFrom(cgnPublic, 18445), 15*time.Second) {
		t.Fatalf("the forward written into the file was not picked up: %+v", list(t, p))
	}

	// Removed from the configuration: gone after a restart.
	if err := p.Stop(t); err != nil {
		t.Fatal(err)
	}
	write("config pcpgw 'main'\n")
	p = l.StartPcpgw(t, "-c", conf, "--pcp-server", "100.64.0.1")
	lab.Eventually(t, 5*time.Second, func() bool { return len(list(t, p)) == 0 }, "the removed forward is still listed: %+v", list(t, p))
	lab.Eventually(t, 5*time.Second, func() bool { return !reachable(t, l.Net, "tcp", ext, 300*time.Millisecond) },
		"the removed forward still reaches the LAN service")
}

// TestStaticForwardRefused: miniupnpd as the CGN refuses a forward's
// external port because another mapping holds it there (a PCP client in
// cpe asked for it first, to another internal port; miniupnpd answers
// SUCCESS with the next port, which pcpgw gives back as
// CANNOT_PROVIDE_EXTERNAL, RFC 6887 §13.2), and another forward's port
// because a deny rule covers it (miniupnpd's own CANNOT_PROVIDE_EXTERNAL).
// Neither is moved to another port: `pcpgw list` and the control socket
// show each failing with the provider's reason and the time of the next
// request. Once the other mapping is deleted, the first forward becomes
// active on its own port by itself, at the retry (the error lifetime),
// while the denied one stays failing.
func TestStaticForwardRefused(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true, Extra: []string{"deny 18447 0.0.0.0/0 0-65535"}})
	const port = 18446
	cgn, wan := netip.MustParseAddr(lab.CGN4), netip.MustParseAddr(lab.CPEWAN4)
	blocker := func(life uint32) pcp.Response {
		t.Helper()
		res, err := pcpAsk(t, l.CPE, cgn, pcp.Request{Version: pcp.Version, Opcode: pcp.OpMap, Lifetime: life, Client: wan,
			Map: &pcp.Map{Nonce: pcp.Nonce{7, 7, 7}, Protocol: 6, InternalPort: 9446, ExternalPort: port, ExternalAddr: cgnPublic}})
		if err != nil {
			t.Fatalf("the other PCP client: %v", err)
		}
		return res
	}
	if r := blocker(600); r.Result != pcp.Success || r.Map.ExternalPort != port {
		t.Fatalf("the other mapping of port %d: %v %+v", port, r.Result, r.Map)
	}
	conf := filepath.Join(l.Dir, "pcpgw.conf")
	if err := os.WriteFile(conf, []byte(`config pcpgw 'main'

config forward 'web'
	option proto 'tcp'
	option ext_port '18446'
	option int_addr '192.0.2.100'
	option int_port '8446'
	option description 'web server'

config forward 'denied'
	option proto 'tcp'
	option ext_port '18447'
	option int_addr '192.0.2.100'
	option int_port '8446'
`), 0o644); err != nil {
		t.Fatal(err)
	}
	serveLAN(t, l, 8446)
	p := l.StartPcpgw(t, "-c", conf, "--pcp-server", lab.CGN4)

	// byPort finds the forwards' rows by their WAN port (nat444: the
	// CPE's port is the one asked at the provider).
	byPort := func(rows []control.Row) map[uint16]control.Row {
		m := map[uint16]control.Row{}
		for _, r := range rows {
			m[r.WANPort] = r
		}
		return m
	}
	var rows map[uint16]control.Row
	failing := func(r control.Row) bool { return r.Upstream == "failing" && !r.RetryAt.IsZero() } // not while asking again
	lab.Eventually(t, 15*time.Second, func() bool {
		rows = byPort(list(t, p))
		return len(rows) == 2 && failing(rows[port]) && failing(rows[18447])
	}, "the refused forwards are not listed failing: %+v", &rows)
	row, denied := rows[port], rows[18447]
	const reason = "CANNOT_PROVIDE_EXTERNAL: the provider "
	for _, r := range []control.Row{row, denied} {
		t.Logf("listed: port %d %s: %s (retry at %v)", r.WANPort, r.Upstream, r.Error, r.RetryAt)
		if r.Origin != "static" || r.External != "" || !strings.HasPrefix(r.Error, reason) ||
			!strings.Contains(r.Error, strconv.Itoa(int(r.WANPort))) || r.RetryAt.IsZero() {
			t.Errorf("failing forward: %+v, want the provider's reason about its port, a retry time and no external port", r)
		}
	}
	if want := "CANNOT_PROVIDE_EXTERNAL: the provider refused external port 18447"; denied.Error != want {
		t.Errorf("denied forward: %q, want %q", denied.Error, want)
	}
	if out := p.CLI(t, "list"); !strings.Contains(out, row.Error) || !strings.Contains(out, denied.Error) || !strings.Contains(out, "retry in") {
		t.Errorf("pcpgw list does not show the reasons:\n%s", out)
	}
	var sock []control.Row // the control socket itself, as the page asks it
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := control.Ask(ctx, p.Socket, "list", &sock); err != nil || len(sock) != 2 || sock[0].Error == "" || sock[1].Error == "" {
		t.Errorf("control socket: %+v, %v", sock, err)
	}
	if reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, port), time.Second) {
		t.Error("port 18446 at the CGN reaches the forward's LAN service while another mapping holds it")
	}

	// The other mapping ends: at the retry the forward gets its own port.
	if r := blocker(0); r.Result != pcp.Success {
		t.Fatalf("deleting the other mapping: %v", r.Result)
	}
	wait := time.Until(row.RetryAt) + 15*time.Second // the retry plus the provider's answer, on a loaded machine
	if wait > 3*time.Minute {
		t.Fatalf("the retry is %v away: the error lifetime was not followed", time.Until(row.RetryAt))
	}
	lab.Eventually(t, wait, func() bool { rows = byPort(list(t, p)); return rows[port].Upstream == "ok" },
		"the forward did not become active by its retry at %v: %+v", row.RetryAt, &rows)
	row = rows[port]
	if want := netip.AddrPortFrom(cgnPublic, port).String(); row.External != want || row.Error != "" || !row.RetryAt.IsZero() {
		t.Errorf("active forward: %+v, want external %s and no error", row, want)
	}
	if d := rows[18447]; d.Upstream != "failing" || d.Error != denied.Error || d.External != "" {
		t.Errorf("the denied forward: %+v, want still failing, not moved", d)
	}
	if !reachable(t, l.Net, "tcp", netip.AddrPortFrom(cgnPublic, port), 10*time.Second) {
		t.Errorf("the forward on its own port does not reach the LAN service: %+v", list(t, p))
	}
}
