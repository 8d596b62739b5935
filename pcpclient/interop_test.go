package pcpclient

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/pcp"
)

// Interop tests against the real miniupnpd 2.3.9 as the provider's CGN in
// the LAB.md topology. They run as root (skip otherwise; fail with
// PCPGW_E2E=1). The client is created inside the cpe namespace, so its
// sockets (toward 100.64.0.1:5351 and the ANNOUNCE listeners joined on the
// WAN interface) live there.

var (
	cgnServer = netip.MustParseAddrPort(lab.CGN4 + ":5351")
	cpeWAN    = netip.MustParseAddr(lab.CPEWAN4)
	cgnPublic = netip.MustParseAddr(lab.CGNPublic4)
)

func newLabClient(t *testing.T, l *lab.Lab, announce bool) *Client {
	t.Helper()
	var c *Client
	l.CPE.Do(t, func() {
		var err error
		c, err = New(Config{
			Servers:        []netip.AddrPort{cgnServer},
			WANInterface:   l.CPEWANIf,
			ListenAnnounce: announce,
			IRT:            500 * time.Millisecond,
			MRT:            2 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func labCtx(t *testing.T) context.Context {
	return ctxT(t, 10*time.Second)
}

// drainEvents throws away events seen so far.
func drainEvents(c *Client) {
	for {
		select {
		case <-c.Events():
		default:
			return
		}
	}
}

func TestInteropMiniupnpd(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true, Debug: os.Getenv("DBG") == "1"})
	c := newLabClient(t, l, true)

	var web MapResult
	t.Run("map creates a DNAT", func(t *testing.T) {
		var err error
		web, err = c.Map(labCtx(t), MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(cpeWAN, 18080), Lifetime: 3600, Description: "pcpgw interop"})
		if err != nil {
			t.Fatal(err)
		}
		if web.External.Addr() != cgnPublic || web.Lifetime == 0 {
			t.Fatalf("result %+v", web)
		}
		rules := m.Ruleset(t)
		if !strings.Contains(rules, "dnat ip to "+lab.CPEWAN4+":18080") || m.DNATCount(t) != 1 {
			t.Fatalf("cgn table:\n%s", rules)
		}
		a, err := c.ExternalAddr(labCtx(t))
		if err != nil || a != cgnPublic {
			t.Fatalf("ExternalAddr %v %v", a, err)
		}
	})
	t.Run("renew keeps the port", func(t *testing.T) {
		ren, err := c.Map(labCtx(t), MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(cpeWAN, 18080), SuggestedExternal: web.External, Lifetime: 3600, Nonce: web.Nonce})
		if err != nil {
			t.Fatal(err)
		}
		if ren.External != web.External || m.DNATCount(t) != 1 {
			t.Fatalf("renewed %+v (was %v), %d DNATs", ren, web.External, m.DNATCount(t))
		}
	})
	t.Run("delete removes it", func(t *testing.T) {
		if err := c.Delete(labCtx(t), MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(cpeWAN, 18080), Nonce: web.Nonce}); err != nil {
			t.Fatal(err)
		}
		lab.Eventually(t, 2*time.Second, func() bool { return m.DNATCount(t) == 0 }, "DNAT left after delete:\n%s", m.Ruleset(t))
		// Deleting it again: miniupnpd says NO_RESOURCES, which counts as done.
		if err := c.Delete(labCtx(t), MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(cpeWAN, 18080), Nonce: web.Nonce}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("PREFER_FAILURE with a free port gets it", func(t *testing.T) {
		res, err := c.Map(labCtx(t), MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(cpeWAN, 8081), SuggestedExternal: netip.AddrPortFrom(netip.Addr{}, 28081), Lifetime: 600, PreferFailure: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.External != netip.AddrPortFrom(cgnPublic, 28081) {
			t.Fatalf("got %v", res.External)
		}
		if !strings.Contains(m.Ruleset(t), "28081") {
			t.Fatalf("cgn table:\n%s", m.Ruleset(t))
		}
	})
	t.Run("THIRD_PARTY for a LAN host", func(t *testing.T) {
		res, err := c.Map(labCtx(t), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort(lab.LANHost4 + ":8080"), SuggestedExternal: netip.AddrPortFrom(netip.Addr{}, 38080), Lifetime: 600, ThirdParty: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.External.Addr() != cgnPublic {
			t.Fatalf("got %v", res.External)
		}
		if rules := m.Ruleset(t); !strings.Contains(rules, "dnat ip to "+lab.LANHost4+":8080") {
			t.Fatalf("cgn table:\n%s", rules)
		}
		// PREFER_FAILURE for the port the LAN host holds (another
		// client): refused cleanly, whatever miniupnpd gives instead is
		// given back.
		before := m.DNATCount(t)
		_, err = c.Map(labCtx(t), MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(cpeWAN, 9000), SuggestedExternal: res.External, Lifetime: 600, PreferFailure: true})
		var re *ResultError
		if !errors.As(err, &re) || re.Code != pcp.CannotProvideExternal {
			t.Fatalf("taken port: %v", err)
		}
		t.Logf("taken port %v: %v (by client: %v)", res.External, err, re.ByClient)
		lab.Eventually(t, 3*time.Second, func() bool { return m.DNATCount(t) == before }, "a mapping was left behind:\n%s", m.Ruleset(t))
		if err := c.Delete(labCtx(t), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort(lab.LANHost4 + ":8080"), ThirdParty: true}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("kill -USR1 is state loss within 1 s", func(t *testing.T) {
		drainEvents(c)
		m.Announce(t)
		start := time.Now()
		ev := waitEvent(t, c, EventStateLost, time.Second)
		t.Logf("state loss seen after %v from %v", time.Since(start), ev.Server)
		if ev.Server != cgnServer {
			t.Errorf("from %v", ev.Server)
		}
	})
	t.Run("ANNOUNCE posing as the server from the LAN is dropped", func(t *testing.T) {
		// A LAN host takes the CGN's address and multicasts an ANNOUNCE
		// from 100.64.0.1:5351; with cpe's reverse-path filter off it
		// reaches the client's socket, which must drop it because it
		// came in on the LAN interface, not the WAN one.
		for _, k := range []string{"all", "default", l.CPELANIf} {
			l.CPE.Run(t, "sysctl", "-qw", "net.ipv4.conf."+k+".rp_filter=0")
		}
		l.LAN.Run(t, "ip", "addr", "add", lab.CGN4+"/32", "dev", l.LANIf)
		drainEvents(c)
		before := c.Status().Dropped
		b := (&pcp.Response{Opcode: pcp.OpAnnounce}).AppendMarshal(nil)
		l.LAN.Do(t, func() {
			ifi, err := net.InterfaceByName(l.LANIf)
			if err != nil {
				t.Fatal(err)
			}
			uc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(cgnServer))
			if err != nil {
				t.Fatal(err)
			}
			defer uc.Close()
			pc := ipv4.NewPacketConn(uc)
			if err := pc.SetMulticastInterface(ifi); err != nil {
				t.Fatal(err)
			}
			if _, err := pc.WriteTo(b, nil, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 1), Port: 5350}); err != nil {
				t.Fatal(err)
			}
		})
		// The announce socket is bound to the group and joined on the WAN
		// only, so the kernel does not even deliver it; if it did, the
		// client would drop it for its interface. Either way: no event.
		noEvent(t, c, EventStateLost, 500*time.Millisecond)
		t.Logf("dropped by the client: %d", c.Status().Dropped-before)
	})
	// (Dropped may count miniupnpd's IPv6 ANNOUNCE, from an address that
	// is not the configured server's.)
	if st := c.Status(); st.External != cgnPublic || st.Protocol != "pcp" || !st.Reachable {
		t.Errorf("status %+v", st)
	}
}

// TestInteropRestart: a restarted miniupnpd (new epoch, no state) is seen
// on the next renewal by the epoch check alone (no ANNOUNCE listener), and
// the renewal with the assigned port as suggestion re-creates the mapping.
func TestInteropRestart(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{})
	c := newLabClient(t, l, false)
	r := MapRequest{Protocol: 17, Internal: netip.AddrPortFrom(cpeWAN, 5000), Lifetime: 600}
	res, err := c.Map(labCtx(t), r)
	if err != nil {
		t.Fatal(err)
	}
	r.Nonce, r.SuggestedExternal = res.Nonce, res.External
	// Let the server's epoch grow past the 1 s reordering allowance.
	lab.Eventually(t, 10*time.Second, func() bool {
		got, err := c.Map(labCtx(t), r)
		return err == nil && got.Epoch >= 3
	}, "epoch does not advance")
	noEvent(t, c, EventStateLost, 10*time.Millisecond)
	m.Restart(t, true)
	if n := m.DNATCount(t); n != 0 {
		t.Fatalf("restart kept %d DNATs", n)
	}
	ren, err := c.Map(labCtx(t), r)
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, EventStateLost, time.Second)
	if ren.External != res.External || m.DNATCount(t) != 1 {
		t.Errorf("re-created %v (was %v), %d DNATs", ren.External, res.External, m.DNATCount(t))
	}
}
