package upstream

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/igdclient"
	"github.com/pcpgw/pcpgw/internal/lab"
)

// TestIGDLab drives miniupnpd 2.3.9 as the ISP box (LAB.md "More
// upstreams": UPnP IGD:2, and IGD:1 with force_igd_desc_v1) from the cpe
// namespace: discovery on the WAN link, a mapping of 100.64.0.2:28081
// that miniupnpd turns into `dnat ip to 100.64.0.2:28081` and that a
// host on the internet reaches through both NATs, the external address,
// the delete, and the box's reboot with an empty table seen as
// EventStateLost within 10 s (IGD:2: from its NOTIFYs, the periodic check
// an hour away; IGD:1: from the periodic check, no NOTIFY listener).
func TestIGDLab(t *testing.T) {
	t.Parallel()
	lab.RequireRoot(t)
	for _, v1 := range []bool{false, true} {
		name := map[bool]string{false: "igd2", true: "igd1"}[v1]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := lab.New(t, lab.Options{})
			m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{Box: lab.Box{UPnP: true, NoPMP: true, IGDv1: v1}})
			cfg := IGDConfig{
				Client:        igdclient.Config{Interface: l.CPEWANIf, Dial: l.CPE.DialContext},
				CheckInterval: time.Hour,
				Logger:        slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
			}
			if v1 {
				cfg.NotifyAddr, cfg.CheckInterval = "-", 2*time.Second
			}
			var g *IGD
			l.CPE.Do(t, func() { // the SSDP and NOTIFY sockets belong to cpe
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				var err error
				if g, err = DiscoverIGD(ctx, cfg); err != nil {
					t.Fatal(err)
				}
			})
			defer g.Close()
			in := g.Info()
			wantSvc := igdclient.ServiceWANIP2
			if v1 {
				wantSvc = igdclient.ServiceWANIP1
			}
			loc := fmt.Sprintf("http://%s:%d/rootDesc.xml", lab.CGN4, lab.BoxHTTPPort)
			if in.Device == nil || in.Device.Service != wantSvc || in.Device.Location != loc || in.Device.FriendlyName != "ISP box" ||
				in.Device.Model != "LabBox" || in.Address != fmt.Sprintf("%s:%d", lab.CGN4, lab.BoxHTTPPort) {
				t.Fatalf("Info %+v, device %+v", in, in.Device)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if a, err := g.ExternalAddr(ctx); err != nil || a.String() != lab.CGNPublic4 {
				t.Fatalf("ExternalAddr = %v, %v", a, err)
			}
			r := MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort(lab.CPEWAN4 + ":28081"),
				SuggestedExternal: netip.MustParseAddrPort("0.0.0.0:28081"), Lifetime: 600, PreferFailure: true, Description: "pcpgw lab"}
			res, err := g.Map(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if res.External.String() != lab.CGNPublic4+":28081" || res.Lifetime != 600 {
				t.Errorf("Map = %+v", res)
			}
			if rs := m.Ruleset(t); !strings.Contains(rs, "dnat ip to "+lab.CPEWAN4+":28081") {
				t.Fatalf("no dnat to %s:28081 at the box:\n%s", lab.CPEWAN4, rs)
			}
			// Through both NATs: the CPE's own DNAT to the LAN host.
			reachLAN(t, l, 28081)

			// Renewal, then delete.
			r.PreferFailure, r.SuggestedExternal = false, res.External
			if res2, err := g.Map(ctx, r); err != nil || res2.External != res.External {
				t.Errorf("renewal = %+v, %v", res2, err)
			}
			if err := g.Delete(ctx, r); err != nil {
				t.Fatal(err)
			}
			if n := m.DNATCount(t); n != 0 {
				t.Errorf("%d dnat rules after Delete:\n%s", n, m.Ruleset(t))
			}

			// The box reboots and loses its table.
			if _, err := g.Map(ctx, r); err != nil {
				t.Fatal(err)
			}
			drain(g)
			m.Restart(t, true)
			start := time.Now()
			waitEvent(t, g, EventStateLost, 10*time.Second)
			t.Logf("state loss seen %v after the restart", time.Since(start).Round(time.Millisecond))
			if _, err := g.Map(ctx, r); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(m.Ruleset(t), "dnat ip to "+lab.CPEWAN4+":28081") {
				t.Errorf("mapping not made again:\n%s", m.Ruleset(t))
			}
			if err := g.ReleaseAll(ctx); err != nil || m.DNATCount(t) != 0 {
				t.Errorf("ReleaseAll: %v, %d dnat rules left", err, m.DNATCount(t))
			}
			if st := g.c.Stats(); st.Dropped != 0 {
				t.Errorf("the box's answers were refused: %+v", st)
			}
		})
	}
}

// testLog writes a logger's lines to the test's log (shown when it
// fails, or with -v).
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func drain(g *IGD) {
	for {
		select {
		case <-g.Events():
		default:
			return
		}
	}
}

// reachLAN adds a DNAT on cpe from its WAN port to 192.0.2.100:8080 and
// checks that a TCP connection from net to the box's public address
// reaches a listener on the LAN host (the recipe of lab.TestSeenWorking).
func reachLAN(t *testing.T, l *lab.Lab, port int) {
	t.Helper()
	nft := filepath.Join(l.Dir, "cpe-dnat.nft")
	rules := fmt.Sprintf(`table ip labdnat {
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		iifname "%s" tcp dport %d dnat to %s:8080
	}
}
`, l.CPEWANIf, port, lab.LANHost4)
	if err := os.WriteFile(nft, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	l.CPE.Run(t, "nft", "-f", nft)
	defer l.CPE.Run(t, "nft", "delete", "table", "ip", "labdnat")
	srv := l.LAN.Start(t, "nc", "-l", "8080")
	defer srv.Stop(t)
	token := "through-both-nats-" + l.Prefix
	var last string
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(srv.Output(), token); {
		if time.Now().After(deadline) {
			t.Fatalf("data from net did not reach the LAN host's listener; last nc: %s; listener: %q", last, srv.Output())
		}
		c := l.Net.Cmd(context.Background(), "nc", "-N", "-w", "2", lab.CGNPublic4, fmt.Sprint(port))
		c.Stdin = strings.NewReader(token + "\n")
		b, err := c.CombinedOutput()
		last = fmt.Sprintf("%v %s", err, b)
		if !strings.Contains(srv.Output(), token) {
			time.Sleep(50 * time.Millisecond) // the listener may not be up yet: poll
		}
	}
}
