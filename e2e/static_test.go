package e2e

import (
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
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
