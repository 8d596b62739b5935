package clients

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// tsEvent is a line of cmd/tsmap's output.
type tsEvent struct {
	Event     string    `json:"event"`
	Gateway   string    `json:"gateway"`
	Self      string    `json:"self"`
	PCP       bool      `json:"pcp"`
	PMP       bool      `json:"pmp"`
	UPnP      bool      `json:"upnp"`
	Type      string    `json:"type"`
	External  string    `json:"external"`
	GoodUntil time.Time `json:"good_until"`
	Err       string    `json:"err"`
}

// tsEvents parses the JSON lines tsmap wrote so far (a line still being
// written is left out).
func tsEvents(out string) []tsEvent {
	var evs []tsEvent
	s := bufio.NewScanner(strings.NewReader(out))
	for s.Scan() {
		var e tsEvent
		if line := s.Text(); strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &e) == nil {
			evs = append(evs, e)
		}
	}
	return evs
}

// tsWait waits (at most timeout) for tsmap to report the event name and
// returns it; it fails the test when tsmap reports an error or exits
// first.
func tsWait(t *testing.T, p *lab.Proc, name string, timeout time.Duration) tsEvent {
	t.Helper()
	var got tsEvent
	var failed string
	lab.Eventually(t, timeout, func() bool {
		for _, e := range tsEvents(p.Output()) {
			switch e.Event {
			case name:
				got = e
				return true
			case "error":
				failed = e.Err
				return true
			}
		}
		if p.Exited() {
			failed = "exited"
			return true
		}
		return false
	}, "tsmap reported no %q event within %v:\n%s", name, timeout, p.Output())
	if failed != "" {
		t.Fatalf("tsmap before its %q event: %s\n%s", name, failed, p.Output())
	}
	return got
}

// TestTailscalePortmapper runs tailscale.com/net/portmapper, through
// cmd/tsmap, on the LAN host against pcpgw, miniupnpd being the provider's
// CGN (REQUIREMENTS 20, 21, 24, 25). The client probes the default gateway
// 192.0.2.1 for PCP (ANNOUNCE), NAT-PMP and UPnP IGD (SSDP), maps its
// local UDP port, and reports the external endpoint; a UDP datagram from
// namespace net to that endpoint on the CGN's public address must reach
// the LAN host's listener on the local port. Then tsmap is stopped and the
// client's Close releases the mapping.
//
// Subtests, in parallel, each with its own lab (a tailscale probe sends two
// ssdp:all searches and one for the IGD: about 39 answer datagrams, 13 KB;
// pcpgw's per-host SSDP budget of 96 KiB, 16 KiB/s, lets several probes
// through back to back, but separate labs keep the subtests independent).
//
//   - PCP: only PCP allowed. The mapping is a PCP MAP proxied by pcpgw.
//     tailscale v1.102.5 releases a PCP mapping with a fresh random nonce:
//     pcpgw must refuse that delete (RFC 6887 §11.3, REQUIREMENTS 25), so
//     the mapping stays in pcpgw's table and keeps working. A second
//     client (tailscaled restarted on its fixed port) then maps the same
//     port with a fresh nonce: pcpgw answers the same mapping.
//   - NATPMP: only NAT-PMP allowed; released with lifetime 0, gone after.
//   - UPnP: only UPnP IGD allowed (SSDP, SOAP AddPortMapping); released
//     with DeletePortMapping, gone after.
//   - Default: every protocol allowed, as tailscaled runs it: the probe
//     must see all three, and the client's own choice (it prefers NAT-PMP
//     when the probe saw it, PCP only when NAT-PMP did not answer) must
//     end with a working mapping.
func TestTailscalePortmapper(t *testing.T) {
	t.Parallel()
	lab.RequireRoot(t)
	bin := tsmapBinary(t)

	for _, c := range []struct {
		name, protocols string
		port            uint16
		wantType        string // "" for the client's choice
		origin          string // pcpgw's Row.Origin of the mapping
		released        bool   // the client's release deletes the mapping
	}{
		{"PCP", "pcp", 41641, "pcp", "pcp", false},
		{"NATPMP", "pmp", 41642, "pmp", "natpmp", true},
		{"UPnP", "upnp", 41643, "upnp", "upnp", true},
		{"Default", "pcp,pmp,upnp", 41644, "", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			g := newGateway(t)
			defer func() {
				if t.Failed() {
					b, _ := json.MarshalIndent(g.status(t), "", "  ")
					t.Logf("pcpgw status: %s", b)
				}
			}()
			start := time.Now()
			svc := serve(t, g.Lab, "udp", c.port)
			before := g.status(t).Counters
			p := g.LAN.Start(t, bin, "-port", strconv.Itoa(int(c.port)), "-protocols", c.protocols, "-timeout", "20s", "-v")

			probe := tsWait(t, p, "probe", 25*time.Second)
			if probe.Gateway != cpeLAN.String() || probe.Self != lanHost.String() {
				t.Errorf("probe from %s to gateway %s, want %v to %v", probe.Self, probe.Gateway, lanHost, cpeLAN)
			}
			allowed := map[string]bool{}
			for _, p := range strings.Split(c.protocols, ",") {
				allowed[p] = true
			}
			if probe.PCP != allowed["pcp"] || probe.PMP != allowed["pmp"] || probe.UPnP != allowed["upnp"] {
				t.Errorf("probe saw PCP %v, NAT-PMP %v, UPnP %v; want exactly the allowed %s",
					probe.PCP, probe.PMP, probe.UPnP, c.protocols)
			}

			m := tsWait(t, p, "mapping", 25*time.Second)
			t.Logf("tailscale portmapper (%s allowed): %s mapping, external %s, good until %v, %v after start",
				c.protocols, m.Type, m.External, m.GoodUntil.Format(time.TimeOnly), time.Since(start).Round(time.Millisecond))
			want := c.wantType
			if want == "" {
				want = m.Type
				if !allowed[want] {
					t.Fatalf("mapping type %q, want one of %s", m.Type, c.protocols)
				}
			}
			if m.Type != want {
				t.Fatalf("mapping type %q, want %q", m.Type, want)
			}
			ext, err := netip.ParseAddrPort(m.External)
			if err != nil || ext.Addr() != cgnPublic || ext.Port() == 0 {
				t.Fatalf("external endpoint %q, want the CGN's public address %v and a port", m.External, cgnPublic)
			}
			if life := time.Until(m.GoodUntil); life <= time.Minute {
				t.Errorf("mapping good for %v only", life)
			}
			origin := c.origin
			if origin == "" {
				origin = map[string]string{"pcp": "pcp", "pmp": "natpmp", "upnp": "upnp"}[m.Type]
			}
			row, ok := g.row(t, "udp", c.port)
			if !ok || row.Origin != origin || row.External != ext.String() {
				t.Errorf("pcpgw's table for UDP %d: %+v (found %v), want a %s mapping with external %v", c.port, row, ok, origin, ext)
			}

			lab.Eventually(t, 10*time.Second, func() bool { return reaches(t, g, "udp", ext, c.port) },
				"UDP to %v from net never reached the LAN host's port %d", ext, c.port)
			if !svc.sawFrom(netHost) {
				t.Errorf("the LAN listener on UDP %d was not reached from the net host %v", c.port, netHost)
			}

			// Stop: the client's Close releases the mapping.
			if err := p.Stop(t); err != nil {
				t.Fatalf("tsmap: %v\n%s", err, p.Output())
			}
			if evs := tsEvents(p.Output()); len(evs) == 0 || evs[len(evs)-1].Event != "closed" {
				t.Fatalf("tsmap did not report closing:\n%s", p.Output())
			}
			if c.released {
				lab.Eventually(t, 10*time.Second, func() bool { _, ok := g.row(t, "udp", c.port); return !ok },
					"pcpgw still holds UDP %d after the client's release", c.port)
				lab.Eventually(t, 10*time.Second, func() bool { return !reaches(t, g, "udp", ext, c.port) },
					"UDP to %v from net still reaches the LAN host after the release", ext)
				return
			}
			// The PCP release: a MAP with lifetime 0 and another nonce,
			// answered with an error once pcpgw has read it.
			lab.Eventually(t, 10*time.Second, func() bool {
				after := g.status(t).Counters
				return after["lan_pcpmap"] > before["lan_pcpmap"]+1 && after["lan_errorreplies"] > before["lan_errorreplies"]
			}, "pcpgw never answered the client's PCP release with an error: counters %v, before %v", g.status(t).Counters, before)
			if row, ok := g.row(t, "udp", c.port); !ok || row.External != ext.String() {
				t.Errorf("after a delete with a wrong nonce pcpgw's table for UDP %d is %+v (found %v), want the mapping kept", c.port, row, ok)
			}
			if !reaches(t, g, "udp", ext, c.port) {
				t.Errorf("after a delete with a wrong nonce UDP to %v from net no longer reaches the LAN host", ext)
			}

			// tailscaled restarting on its fixed port: a new client asks
			// for the same internal port with a fresh nonce while the old
			// mapping lives. pcpgw accepts that from the mapping's own
			// host and answers the same mapping.
			p = g.LAN.Start(t, bin, "-port", strconv.Itoa(int(c.port)), "-protocols", c.protocols, "-timeout", "20s", "-v")
			m = tsWait(t, p, "mapping", 25*time.Second)
			if m.Type != "pcp" || m.External != ext.String() {
				t.Errorf("after a restart: %s mapping, external %s; want the pcp mapping at %v", m.Type, m.External, ext)
			}
			if !reaches(t, g, "udp", ext, c.port) {
				t.Errorf("after a restart UDP to %v from net no longer reaches the LAN host", ext)
			}
			if err := p.Stop(t); err != nil {
				t.Fatalf("tsmap: %v\n%s", err, p.Output())
			}
		})
	}
}
