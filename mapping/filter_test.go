package mapping

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/firewall"
)

// TestRenewalReplacesFilter: a PCP renewal with another FILTER (RemoteHost
// and RemotePort) replaces the mapping's filter, in the table, in the
// kernel (the old element deleted, the new one added: no element is left
// open to the old remote host) and upstream, and is written to the state
// file at once; a FILTER of prefix length 0 (no remote host) removes it.
// The same holds for a PCP pinhole, which stays one pinhole.
func TestRenewalReplacesFilter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		up := newFakeUp()
		c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true, StateDir: dir, Pinholes: true})
		ctx := context.Background()
		rh1, rh2 := netip.MustParseAddr("203.0.113.50"), netip.MustParseAddr("203.0.113.60")
		r := req(OriginPCP, host, TCP, 8080, 18080, time.Hour)
		r.RemoteHost, r.RemotePort = rh1, 443
		m, err := c.Map(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		stored := func() (string, uint16) {
			t.Helper()
			// The state file and its journal, as a restart reads them.
			st, _, err := readStateDir(dir, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			for _, sm := range st.Mappings {
				if sm.ID == m.ID {
					return sm.RemoteHost, sm.RemotePort
				}
			}
			t.Fatalf("mapping %d not in the state file", m.ID)
			return "", 0
		}
		if h, p := stored(); h != rh1.String() || p != 443 {
			t.Fatalf("stored filter %s:%d", h, p)
		}
		n0, _ := up.counts()

		r.RemoteHost, r.RemotePort = rh2, 8443
		got, err := c.Map(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != m.ID || got.RemoteHost != rh2 || got.RemotePort != 8443 {
			t.Errorf("after the renewal: %+v", got)
		}
		want := []firewall.Forward{{Proto: 6, Port: 18080, To: netip.AddrPortFrom(host, 8080), Remote: rh2, Timeout: time.Hour + firewallGrace}}
		if diff := cmp.Diff(want, fw.Forwards(), netipCmp); diff != "" {
			t.Errorf("kernel forwards (-want +got):\n%s", diff)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if h, p := stored(); h != rh2.String() || p != 8443 {
			t.Errorf("stored filter %s:%d 1 s after the renewal, want %v:8443", h, p, rh2)
		}
		if n, _ := up.counts(); n != n0+1 {
			t.Fatalf("%d upstream requests after the new filter, want 1", n-n0)
		} else if f := up.lastMap().Filters; len(f) != 1 || f[0].Prefix.Addr() != rh2 || f[0].RemotePort != 8443 {
			t.Errorf("upstream filters %+v", f)
		}

		// No filter any more.
		r.RemoteHost, r.RemotePort = netip.Addr{}, 0
		if got, err = c.Map(ctx, r); err != nil || got.RemoteHost.IsValid() {
			t.Fatalf("filter removed: %+v %v", got, err)
		}
		// Without a remote host the forward carries the provider's port
		// for the hairpin of its address (hairpin.go).
		want[0].Remote, want[0].UpstreamPort = netip.Addr{}, 18080
		if diff := cmp.Diff(want, fw.Forwards(), netipCmp); diff != "" {
			t.Errorf("kernel forwards without a filter (-want +got):\n%s", diff)
		}

		// A pinhole: one pinhole, its filter replaced.
		p := req(OriginPCP, host6, UDP, 5000, 0, time.Hour)
		p.RemoteHost = netip.MustParseAddr("2001:db8:99::1")
		ph, err := c.Map(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		p.RemoteHost = netip.MustParseAddr("2001:db8:99::2")
		ph2, err := c.Map(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		pins := fw.Pinholes()
		if ph2.ID != ph.ID || len(pins) != 1 || pins[0].Remote != p.RemoteHost {
			t.Errorf("pinhole %d then %d, kernel %+v", ph.ID, ph2.ID, pins)
		}
	})
}
