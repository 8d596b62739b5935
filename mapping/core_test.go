package mapping

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/firewall/firewalltest"
	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient"
	"github.com/pcpgw/pcpgw/upstream"
)

var (
	host   = netip.MustParseAddr("192.0.2.100")
	other  = netip.MustParseAddr("192.0.2.101")
	host6  = netip.MustParseAddr("2001:db8:1::100")
	wanPub = netip.MustParseAddr("203.0.113.2")
	wanCGN = netip.MustParseAddr("100.64.0.2")
)

var netipCmp = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

// newCore starts a core with cfg (firewall and upstream faked) and stops it
// at the end of the test.
func newCore(t *testing.T, cfg Config) (*Core, *firewalltest.Fake) {
	t.Helper()
	fw := firewalltest.New()
	cfg.Firewall = fw
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		c.Close()
	})
	return c, fw
}

func req(origin Origin, client netip.Addr, proto Proto, iport, eport uint16, life time.Duration) Request {
	return Request{Origin: origin, Client: client, Proto: proto, Internal: netip.AddrPortFrom(client, iport),
		ExternalPort: eport, Lifetime: life, ExactPort: origin == OriginUPnP}
}

func wantCode(t *testing.T, err error, want Code) {
	t.Helper()
	if got := CodeOf(err); got != want {
		t.Fatalf("error %v: code %v, want %v", err, got, want)
	}
}

func TestLocalMapDelete(t *testing.T) {
	c, fw := newCore(t, Config{Mode: ModeAuto, WANAddr: wanPub, SecureMode: true})
	if c.Mode() != ModeLocal {
		t.Fatalf("mode %v, want local (public WAN, no upstream)", c.Mode())
	}
	ctx := context.Background()
	m, err := c.Map(ctx, req(OriginUPnP, host, TCP, 8080, 18080, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddrPort("203.0.113.2:18080"); m.External != want || m.WANPort != 18080 {
		t.Errorf("external %v wan port %d, want %v 18080", m.External, m.WANPort, want)
	}
	want := []firewall.Forward{{Proto: 6, Port: 18080, To: netip.MustParseAddrPort("192.0.2.100:8080"), Timeout: time.Hour + firewallGrace}}
	if diff := cmp.Diff(want, fw.Forwards(), netipCmp); diff != "" {
		t.Errorf("kernel forwards (-want +got):\n%s", diff)
	}
	ext, err := c.ExternalAddr(ctx)
	if err != nil || ext != wanPub {
		t.Errorf("ExternalAddr = %v, %v; want %v", ext, err, wanPub)
	}
	if got := c.Find(Selector{Proto: TCP, External: 18080}); len(got) != 1 || got[0].ID != m.ID {
		t.Errorf("Find by external = %+v", got)
	}
	// Another host may not delete it.
	_, err = c.Delete(ctx, Selector{Client: other, Proto: TCP, External: 18080})
	wantCode(t, err, CodeNotAuthorized)
	n, err := c.Delete(ctx, Selector{Client: host, Proto: TCP, External: 18080})
	if err != nil || n != 1 {
		t.Fatalf("Delete = %d, %v", n, err)
	}
	if got := fw.Forwards(); len(got) != 0 {
		t.Errorf("forwards left after delete: %v", got)
	}
	if n, err := c.Delete(ctx, Selector{Client: host, Proto: TCP, External: 18080}); n != 0 || err != nil {
		t.Errorf("deleting again = %d, %v; want 0, nil", n, err)
	}
}

func TestPolicy(t *testing.T) {
	c, _ := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub, SecureMode: true, Quota: 3,
		ReservedPorts: []uint16{5000}})
	ctx := context.Background()
	tests := []struct {
		name string
		r    Request
		want Code
	}{
		{"secure mode: another host", Request{Origin: OriginUPnP, Client: other, Proto: TCP,
			Internal: netip.MustParseAddrPort("192.0.2.100:8080"), ExternalPort: 18080, ExactPort: true}, CodeNotAuthorized},
		{"internal port below 1024", req(OriginUPnP, host, TCP, 80, 18081, 0), CodeNotAuthorized},
		{"external port below 1024", req(OriginUPnP, host, TCP, 8080, 80, 0), CodeNotAuthorized},
		{"reserved 5351", req(OriginUPnP, host, UDP, 5351, 5351, 0), CodeNotAuthorized},
		{"reserved http port", req(OriginUPnP, host, TCP, 5000, 5000, 0), CodeNotAuthorized},
		{"natpmp internal port below 1024", req(OriginNATPMP, host, TCP, 22, 0, time.Hour), CodeNotAuthorized},
		{"protocol", Request{Origin: OriginPCP, Client: host, Proto: 132, Internal: netip.MustParseAddrPort("192.0.2.100:9000")}, CodeUnsupportedProtocol},
		{"internal port 0", Request{Origin: OriginPCP, Client: host, Proto: TCP, Internal: netip.AddrPortFrom(host, 0)}, CodeInvalid},
		{"loopback internal", Request{Origin: OriginPCP, Client: host, Proto: TCP, Internal: netip.MustParseAddrPort("127.0.0.1:9000")}, CodeInvalid},
		{"pinholes disabled", req(OriginPCP, host6, TCP, 9000, 0, time.Hour), CodeDisabled},
		{"allowed", req(OriginUPnP, host, TCP, 8080, 18080, 0), CodeOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Map(ctx, tt.r)
			wantCode(t, err, tt.want)
		})
	}
	// NAT-PMP asking for a reserved port gets another one.
	m, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 5351, 0, time.Hour))
	if err != nil || m.WANPort == 5351 || m.WANPort < 1024 {
		t.Errorf("NAT-PMP reserved port: %+v, %v", m, err)
	}
	// Quota: 2 live, a third fits, a fourth does not.
	if _, err := c.Map(ctx, req(OriginUPnP, host, TCP, 8081, 18081, 0)); err != nil {
		t.Fatal(err)
	}
	_, err = c.Map(ctx, req(OriginUPnP, host, TCP, 8082, 18082, 0))
	wantCode(t, err, CodeQuota)
	// Renewing an existing mapping does not count against the quota.
	if _, err := c.Map(ctx, req(OriginUPnP, host, TCP, 8081, 18081, 0)); err != nil {
		t.Errorf("renewal at quota: %v", err)
	}
}

func TestRulesFirstMatchWins(t *testing.T) {
	rules := []Rule{
		{Allow: false, ExtLo: 0, ExtHi: 65535, IntAddr: netip.MustParsePrefix("192.0.2.200/32"), IntLo: 0, IntHi: 65535},
		{Allow: true, ExtLo: 80, ExtHi: 80, IntAddr: netip.MustParsePrefix("192.0.2.0/24"), IntLo: 80, IntHi: 80},
		{Allow: true, ExtLo: 1024, ExtHi: 65535, IntAddr: netip.MustParsePrefix("192.0.2.0/24"), IntLo: 1024, IntHi: 65535},
		{Allow: false, ExtLo: 0, ExtHi: 65535, IntAddr: netip.MustParsePrefix("0.0.0.0/0"), IntLo: 0, IntHi: 65535},
	}
	tests := []struct {
		ext  uint16
		addr string
		port uint16
		want bool
	}{
		{80, "192.0.2.100", 80, true},
		{81, "192.0.2.100", 80, false},
		{2000, "192.0.2.100", 2000, true},
		{2000, "192.0.2.200", 2000, false},
		{2000, "198.51.100.1", 2000, false},
	}
	for _, tt := range tests {
		if got := permitted(rules, tt.ext, netip.MustParseAddr(tt.addr), tt.port); got != tt.want {
			t.Errorf("permitted(%d, %s, %d) = %v, want %v", tt.ext, tt.addr, tt.port, got, tt.want)
		}
	}
	// As in miniupnpd, what no rule matches is allowed.
	if !permitted(rules[:1], 2000, netip.MustParseAddr("192.0.2.100"), 2000) {
		t.Error("a request no rule matches was denied")
	}
}

func TestCollisions(t *testing.T) {
	c, _ := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub, SecureMode: true})
	ctx := context.Background()
	if _, err := c.Map(ctx, req(OriginUPnP, host, TCP, 8080, 18080, 0)); err != nil {
		t.Fatal(err)
	}
	// IGD AddPortMapping of a taken port: 718.
	_, err := c.Map(ctx, req(OriginUPnP, other, TCP, 8080, 18080, 0))
	wantCode(t, err, CodeConflict)
	if code, _ := UPnPError(err, 1); code != 718 {
		t.Errorf("UPnP code %d, want 718", code)
	}
	// The other protocol is free.
	if _, err := c.Map(ctx, req(OriginUPnP, other, UDP, 8080, 18080, 0)); err != nil {
		t.Error(err)
	}
	// AddAnyPortMapping / NAT-PMP get another port.
	any := req(OriginUPnP, other, TCP, 8080, 18080, 0)
	any.ExactPort = false
	m, err := c.Map(ctx, any)
	if err != nil || m.WANPort == 18080 {
		t.Errorf("any port: %+v, %v", m, err)
	}
	m2, err := c.Map(ctx, req(OriginNATPMP, other, TCP, 9090, 18080, time.Hour))
	if err != nil || m2.WANPort == 18080 || m2.WANPort == m.WANPort {
		t.Errorf("NAT-PMP: %+v, %v", m2, err)
	}
	// NAT-PMP asking again for the same internal port gets the same mapping.
	m3, err := c.Map(ctx, req(OriginNATPMP, other, TCP, 9090, 0, time.Hour))
	if err != nil || m3.ID != m2.ID || m3.WANPort != m2.WANPort {
		t.Errorf("NAT-PMP again: %+v, %v; want the mapping %d", m3, err, m2.ID)
	}
	// The same host re-adding its port to another internal port replaces it.
	m4, err := c.Map(ctx, req(OriginUPnP, host, TCP, 8088, 18080, 0))
	if err != nil || m4.Internal.Port() != 8088 {
		t.Fatalf("replace: %+v, %v", m4, err)
	}
	if got := c.Find(Selector{Proto: TCP, External: 18080}); len(got) != 1 || got[0].Internal.Port() != 8088 {
		t.Errorf("after replace: %+v", got)
	}
}

func TestLeaseExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fw := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub})
		ctx := context.Background()
		ch, stop := c.Subscribe()
		defer stop()
		m, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 4500, 0, 10*time.Second)) // clamped to 120 s
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Lease(time.Now()); got != 120*time.Second {
			t.Errorf("lease %v, want the 120 s minimum", got)
		}
		time.Sleep(119 * time.Second)
		synctest.Wait()
		if c.Count() != 1 {
			t.Fatal("expired early")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if c.Count() != 0 || len(fw.Forwards()) != 0 {
			t.Fatalf("not expired: count %d, forwards %v", c.Count(), fw.Forwards())
		}
		var kinds []EventKind
		for len(ch) > 0 {
			kinds = append(kinds, (<-ch).Kind)
		}
		if diff := cmp.Diff([]EventKind{EventMappings, EventMappings}, kinds); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

func TestNAT444Upstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.lifetime = 1000
		c, fw := newCore(t, Config{Mode: ModeAuto, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		if c.Mode() != ModeNAT444 {
			t.Fatalf("mode %v, want nat444 (CGN WAN address with a PCP server)", c.Mode())
		}
		ctx := context.Background()
		r := req(OriginUPnP, host, TCP, 8080, 18080, 0)
		r.Description = "game\r\nserver"
		m, err := c.Map(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if want := netip.MustParseAddrPort("203.0.113.1:18080"); m.External != want || m.Upstream != UpstreamOK {
			t.Errorf("mapping %+v, want external %v upstream ok", m, want)
		}
		got := up.lastMap()
		if got.Internal != netip.MustParseAddrPort("100.64.0.2:18080") || !got.PreferFailure || got.ThirdParty ||
			got.Lifetime != 1<<32-1 || got.Description != "game  server" {
			t.Errorf("upstream request %+v", got)
		}
		if len(fw.Forwards()) != 1 || fw.Forwards()[0].Port != 18080 {
			t.Errorf("local DNAT %v", fw.Forwards())
		}
		if ext, _ := c.ExternalAddr(ctx); ext != up.ext {
			t.Errorf("external address %v, want the provider's %v", ext, up.ext)
		}
		// Renewal between 1/2 and 5/8 of the granted 1000 s, same nonce and port.
		time.Sleep(499 * time.Second)
		synctest.Wait()
		if n, _ := up.counts(); n != 1 {
			t.Fatalf("renewed before half the lifetime: %d requests", n)
		}
		time.Sleep(127 * time.Second)
		synctest.Wait()
		n, _ := up.counts()
		if n != 2 {
			t.Fatalf("%d upstream requests by 5/8 of the lifetime, want 2", n)
		}
		renew := up.lastMap()
		// An exact (IGD) mapping: its port, with PREFER_FAILURE, and no
		// address (an upstream back with another would refuse it forever).
		if renew.Nonce != up.maps[0].Nonce && up.maps[0].Nonce != (pcp.Nonce{}) || !renew.PreferFailure ||
			renew.SuggestedExternal != netip.AddrPortFrom(netip.IPv4Unspecified(), m.External.Port()) {
			t.Errorf("renewal %+v", renew)
		}
		// Delete goes upstream with the mapping's nonce.
		if _, err := c.Delete(ctx, Selector{Client: host, Proto: TCP, External: 18080}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		_, d := up.counts()
		if d != 1 || up.deletes[0].Nonce != renew.Nonce || up.deletes[0].Lifetime != 0 {
			t.Errorf("upstream deletes %+v", up.deletes)
		}
	})
}

func TestUpstreamRefusesExactPort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.taken[18080] = true
		c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up})
		_, err := c.Map(context.Background(), req(OriginUPnP, host, TCP, 8080, 18080, 0))
		wantCode(t, err, CodeCannotProvideExternal)
		if code, _ := UPnPError(err, 1); code != 718 {
			t.Errorf("UPnP %d, want 718", code)
		}
		synctest.Wait()
		if c.Count() != 0 || len(fw.Forwards()) != 0 {
			t.Errorf("left behind: %d mappings, forwards %v", c.Count(), fw.Forwards())
		}
		// NAT-PMP gets the port the provider gives.
		m, err := c.Map(context.Background(), req(OriginNATPMP, host, TCP, 8080, 18080, time.Hour))
		if err != nil || m.External.Port() != 19080 {
			t.Errorf("NAT-PMP: %+v, %v", m, err)
		}
	})
}

func TestUpstreamTimeoutThenRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.block = make(chan struct{})
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up})
		start := time.Now()
		_, err := c.Map(context.Background(), req(OriginNATPMP, host, UDP, 9000, 0, time.Hour))
		wantCode(t, err, CodeNetworkFailure)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("answered after %v, want within the 2 s upstream timeout", d)
		}
		if code := NATPMPResult(err); code != pcp.NATPMPNetworkFailure {
			t.Errorf("NAT-PMP result %v", code)
		}
		// Other LAN requests are not stalled by the slow one (local state only).
		if got := c.Find(Selector{Client: host}); len(got) != 1 || got[0].Upstream != UpstreamPending {
			t.Errorf("pending mapping: %+v", got)
		}
		// The provider answers later: the mapping completes without the LAN host asking again.
		close(up.block)
		synctest.Wait()
		got := c.Find(Selector{Client: host})
		if len(got) != 1 || got[0].Upstream != UpstreamOK || !got[0].External.IsValid() {
			t.Errorf("after the provider answered: %+v", got)
		}
	})
}

func TestUpstreamUnreachableRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.err = context.DeadlineExceeded
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up})
		_, err := c.Map(context.Background(), req(OriginNATPMP, host, UDP, 9000, 0, time.Hour))
		wantCode(t, err, CodeNetworkFailure)
		up.mu.Lock()
		up.err = nil
		up.mu.Unlock()
		up.events <- upstream.Event{Kind: upstream.EventReachable}
		synctest.Wait()
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := c.Find(Selector{Client: host}); len(got) != 1 || got[0].Upstream != UpstreamOK {
			t.Errorf("after reachable: %+v", got)
		}
	})
}

func TestStateLostRecreates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, Quota: 1000})
		for p := range uint16(50) {
			if _, err := c.Map(context.Background(), req(OriginNATPMP, host, TCP, 20000+p, 0, time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		before, _ := up.counts()
		up.events <- upstream.Event{Kind: upstream.EventStateLost}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		after, _ := up.counts()
		if after-before != 50 {
			t.Errorf("%d re-created within 5 s, want 50", after-before)
		}
	})
}

func TestExternalChangeEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up})
		if _, err := c.Map(context.Background(), req(OriginNATPMP, host, TCP, 9000, 0, time.Hour)); err != nil {
			t.Fatal(err)
		}
		ch, stop := c.Subscribe()
		defer stop()
		newExt := netip.MustParseAddr("203.0.113.9")
		up.events <- upstream.Event{Kind: upstream.EventExternalChanged, External: newExt}
		synctest.Wait()
		select {
		case ev := <-ch:
			if ev.Kind != EventExternalAddr || ev.External != newExt {
				t.Errorf("event %+v", ev)
			}
		default:
			t.Fatal("no event")
		}
		if got := c.Find(Selector{}); got[0].External.Addr() != newExt {
			t.Errorf("mapping external %v", got[0].External)
		}
	})
}

func TestDSLite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, fw := newCore(t, Config{Mode: ModeAuto, Upstream: up})
		if c.Mode() != ModeDSLite {
			t.Fatalf("mode %v, want dslite (no IPv4 WAN, PCP server)", c.Mode())
		}
		m, err := c.Map(context.Background(), req(OriginUPnP, host, TCP, 8080, 18080, 0))
		if err != nil {
			t.Fatal(err)
		}
		got := up.lastMap()
		if got.Internal != netip.MustParseAddrPort("192.0.2.100:8080") || !got.ThirdParty {
			t.Errorf("upstream request %+v, want the LAN host with THIRD_PARTY", got)
		}
		if m.WANPort != 0 || m.External.Port() != 18080 {
			t.Errorf("mapping %+v", m)
		}
		if f := fw.Forwards(); len(f) != 1 || f[0].Port != 0 {
			t.Errorf("forwards %v, want one accept-only", f)
		}
	})
}

func TestPinholes(t *testing.T) {
	c, fw := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub, Pinholes: true, SecureMode: true})
	ctx := context.Background()
	r := Request{Origin: OriginUPnP, Client: host6, Proto: TCP, Internal: netip.AddrPortFrom(host6, 22), Lifetime: time.Hour}
	m, err := c.Map(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if !m.IsPinhole() || m.External != m.Internal || m.ID == 0 || m.ID > 0xffff {
		t.Errorf("pinhole %+v", m)
	}
	if len(fw.Pinholes()) != 1 {
		t.Errorf("kernel pinholes %v", fw.Pinholes())
	}
	fw.SetPackets(firewall.Pinhole{Proto: 6, To: m.Internal}, 7)
	if n, err := c.Packets(ctx, m.ID); err != nil || n != 7 {
		t.Errorf("Packets = %d, %v", n, err)
	}
	if _, err := c.Renew(ctx, netip.MustParseAddr("2001:db8:1::200"), m.ID, time.Hour); CodeOf(err) != CodeNotAuthorized {
		t.Errorf("renew by another host: %v", err)
	}
	if c.Count() != 0 {
		t.Errorf("Count includes pinholes")
	}
	if n, err := c.Delete(ctx, Selector{Client: host6, ID: m.ID}); n != 1 || err != nil {
		t.Errorf("delete %d %v", n, err)
	}
	if len(fw.Pinholes()) != 0 {
		t.Errorf("kernel pinholes left %v", fw.Pinholes())
	}
}

func TestPCPNonce(t *testing.T) {
	c, _ := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub, SecureMode: true})
	ctx := context.Background()
	r := req(OriginPCP, host, UDP, 5000, 0, time.Hour)
	r.Nonce = Nonce{1}
	if _, err := c.Map(ctx, r); err != nil {
		t.Fatal(err)
	}
	// A renewal from the mapping's own host with another nonce is accepted
	// (tailscale, miniupnpd's behaviour) and the new nonce is kept.
	r.Nonce = Nonce{2}
	m, err := c.Map(ctx, r)
	if err != nil || m.Nonce != r.Nonce {
		t.Fatalf("renewal with another nonce: %+v %v", m, err)
	}
	// A delete must carry the mapping's nonce.
	n1 := Nonce{1}
	_, err = c.Delete(ctx, Selector{Client: host, Proto: UDP, Internal: netip.AddrPortFrom(host, 5000), Nonce: &n1})
	wantCode(t, err, CodeNonceMismatch)
	if code, _ := PCPResult(err); code != pcp.NotAuthorized {
		t.Errorf("PCP %v", code)
	}
	// Third-party (secure mode off): another nonce is refused.
	c2, _ := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub})
	tp := Request{Origin: OriginPCP, Client: other, Proto: TCP, Internal: netip.AddrPortFrom(host, 6000), Lifetime: time.Hour, Nonce: Nonce{1}}
	if _, err := c2.Map(ctx, tp); err != nil {
		t.Fatal(err)
	}
	tp.Nonce = Nonce{3}
	_, err = c2.Map(ctx, tp)
	wantCode(t, err, CodeNonceMismatch)
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	lease := filepath.Join(dir, "upnp.leases")
	fw := firewalltest.New()
	ctx := context.Background()
	cfg := Config{Mode: ModeLocal, WANAddr: wanPub, Firewall: fw, StateDir: dir, LeaseFile: lease}
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := c.Map(ctx, Request{Origin: OriginUPnP, Client: host, Proto: TCP, Internal: netip.AddrPortFrom(host, 8080),
		ExternalPort: 18080, ExactPort: true, Description: "web:server"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 9000, 0, time.Hour)); err != nil {
		t.Fatal(err)
	}
	epoch := c.Epoch(time.Now())
	c.Close()
	b, err := os.ReadFile(lease)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "TCP:18080:192.0.2.100:8080:0:web:server\nUDP:9000:192.0.2.100:9000:") {
		t.Errorf("lease file:\n%s", b)
	}

	// A restart: the kernel still holds a stale entry and misses nothing else.
	stale := firewall.Forward{Proto: 6, Port: 1234, To: netip.MustParseAddrPort("192.0.2.9:1234")}
	if err := fw.Apply(ctx, firewall.Change{AddForwards: []firewall.Forward{stale}}); err != nil {
		t.Fatal(err)
	}
	c2, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	got := c2.Find(Selector{})
	if len(got) != 2 || got[0].ID != m1.ID || got[0].Description != "web:server" {
		t.Fatalf("restored %+v", got)
	}
	syncs := 0
	for _, b := range fw.Batches() {
		if b.Op == firewalltest.OpSync {
			syncs++
		}
	}
	if got := fw.Forwards(); len(got) != 2 || slices.ContainsFunc(got, func(f firewall.Forward) bool { return f.Port == stale.Port }) || syncs != 2 {
		t.Errorf("kernel after restart: %v (synced %d times)", got, syncs)
	}
	if e2 := c2.Epoch(time.Now()); e2 < epoch {
		t.Errorf("epoch went back: %d < %d", e2, epoch)
	}
}

func TestCorruptStateFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, StateFile), []byte("{not json"), 0o600)
	c, err := New(context.Background(), Config{Mode: ModeLocal, WANAddr: wanPub, Firewall: firewalltest.New(), StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Count() != 0 {
		t.Error("mappings from a corrupt file")
	}
	m, _ := filepath.Glob(filepath.Join(dir, StateFile+".corrupt-*"))
	if len(m) != 1 {
		t.Errorf("corrupt file not kept aside: %v", m)
	}
}

func TestExpiredDroppedOnLoad(t *testing.T) {
	dir := t.TempDir()
	st := `{"version":1,"epoch_start":"2026-01-01T00:00:00Z","mappings":[
	{"id":3,"origin":"natpmp","client":"192.0.2.100","proto":"udp","internal":"192.0.2.100:9000","wan_port":9000,"created":"2026-01-01T00:00:00Z","expires":"2026-01-01T01:00:00Z","lifetime_s":3600},
	{"id":4,"origin":"upnp","client":"192.0.2.100","proto":"tcp","internal":"192.0.2.100:8080","wan_port":18080,"created":"2026-01-01T00:00:00Z","lifetime_s":0}]}`
	os.WriteFile(filepath.Join(dir, StateFile), []byte(st), 0o600)
	fw := firewalltest.New()
	c, err := New(context.Background(), Config{Mode: ModeLocal, WANAddr: wanPub, Firewall: fw, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := c.Find(Selector{})
	if len(got) != 1 || got[0].ID != 4 {
		t.Errorf("loaded %+v, want only the mapping with no end", got)
	}
	if len(fw.Forwards()) != 1 {
		t.Errorf("kernel %v", fw.Forwards())
	}
}

func TestSetWANAddr(t *testing.T) {
	c, fw := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub})
	ch, stop := c.Subscribe()
	defer stop()
	if _, err := c.Map(context.Background(), req(OriginNATPMP, host, TCP, 9000, 0, time.Hour)); err != nil {
		t.Fatal(err)
	}
	<-ch
	na := netip.MustParseAddr("203.0.113.77")
	c.SetWANAddr(context.Background(), na)
	if ev := <-ch; ev.Kind != EventExternalAddr || ev.External != na {
		t.Errorf("event %+v", ev)
	}
	if got := c.Find(Selector{}); got[0].External.Addr() != na {
		t.Errorf("external %v", got[0].External)
	}
	if fw.WANAddr() != na {
		t.Errorf("firewall WAN %v", fw.WANAddr())
	}
}

func TestFirewallFailureRollsBack(t *testing.T) {
	c, fw := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub})
	fw.SetErr(func(op firewalltest.Op) error {
		if op == firewalltest.OpApply {
			return errors.New("netlink: no buffer space")
		}
		return nil
	})
	_, err := c.Map(context.Background(), req(OriginNATPMP, host, TCP, 9000, 0, time.Hour))
	wantCode(t, err, CodeNoResources)
	if c.Count() != 0 {
		t.Error("mapping kept after the firewall failed")
	}
}

func TestSanitizeDescription(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a\r\nb\x00c", "a  b c"},
		{"\xff\xfebad", "bad"},
		{strings.Repeat("é", 200), strings.Repeat("é", 128)},
	}
	for _, tt := range tests {
		if got := SanitizeDescription(tt.in); got != tt.want {
			t.Errorf("SanitizeDescription(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStaticForwardRefusedIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.taken[18443] = true
		c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up})
		r := Request{Origin: OriginStatic, Client: host, Proto: TCP, Internal: netip.AddrPortFrom(host, 443),
			ExternalPort: 18443, ExactPort: true, Description: "nas"}
		_, err := c.Map(context.Background(), r)
		wantCode(t, err, CodeCannotProvideExternal)
		got := c.Find(Selector{Origin: OriginStatic})
		if len(got) != 1 || got[0].Upstream != UpstreamFailing || len(fw.Forwards()) != 1 {
			t.Fatalf("a refused static forward must stay, failing: %+v", got)
		}
		// It is asked for again after the error's lifetime (30 s), never moved.
		up.mu.Lock()
		delete(up.taken, 18443)
		up.mu.Unlock()
		time.Sleep(31 * time.Second)
		synctest.Wait()
		got = c.Find(Selector{Origin: OriginStatic})
		if len(got) != 1 || got[0].Upstream != UpstreamOK || got[0].External.Port() != 18443 {
			t.Errorf("after the port became free: %+v", got)
		}
		if last := up.lastMap(); !last.PreferFailure {
			t.Errorf("retry without PREFER_FAILURE: %+v", last)
		}
		// LAN hosts cannot take or delete it.
		_, err = c.Map(context.Background(), req(OriginUPnP, host, TCP, 8080, 18443, 0))
		wantCode(t, err, CodeConflict)
		_, err = c.Delete(context.Background(), Selector{Client: host, Proto: TCP, External: 18443})
		wantCode(t, err, CodeNotAuthorized)
	})
}

// A static forward the provider refuses shows the provider's reason and
// when it is asked again: on the error's lifetime, for the same port with
// PREFER_FAILURE, until the port is free; never moved to another port.
func TestStaticForwardFailingReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.taken[18080] = true
		up.refuseLife = 45 // not retryAfterTimeout: the error's own lifetime counts
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up})
		start := time.Now()
		r := Request{Origin: OriginStatic, Client: host, Proto: TCP, Internal: netip.AddrPortFrom(host, 80),
			ExternalPort: 18080, ExactPort: true, Description: "web"}
		_, err := c.Map(context.Background(), r)
		wantCode(t, err, CodeCannotProvideExternal)
		const reason = "CANNOT_PROVIDE_EXTERNAL: the provider refused external port 18080"
		check := func(when string, state UpstreamState, reason string, retry time.Time) {
			t.Helper()
			got := c.Find(Selector{Origin: OriginStatic})
			if len(got) != 1 {
				t.Fatalf("%s: %d static mappings, want 1", when, len(got))
			}
			m := got[0]
			if m.Upstream != state || m.UpstreamErr != reason || !m.RetryAt.Equal(retry) {
				t.Errorf("%s: upstream %v, error %q, retry at +%v; want %v, %q, +%v", when,
					m.Upstream, m.UpstreamErr, m.RetryAt.Sub(start), state, reason, retry.Sub(start))
			}
		}
		check("refused", UpstreamFailing, reason, start.Add(45*time.Second))
		if g, ok := c.Get(c.Find(Selector{Origin: OriginStatic})[0].ID); !ok || g.UpstreamErr != reason {
			t.Errorf("Get: %+v", g)
		}
		time.Sleep(44 * time.Second)
		synctest.Wait()
		if n, _ := up.counts(); n != 1 {
			t.Fatalf("asked again before the error lifetime: %d requests", n)
		}
		// Still taken at the retry: refused again, next retry one more lifetime on.
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n, _ := up.counts(); n != 2 {
			t.Fatalf("%d requests after the error lifetime, want 2", n)
		}
		check("refused again", UpstreamFailing, reason, start.Add(90*time.Second))
		up.mu.Lock()
		delete(up.taken, 18080)
		up.mu.Unlock()
		time.Sleep(45 * time.Second)
		synctest.Wait()
		check("port free", UpstreamOK, "", time.Time{})
		if m := c.Find(Selector{Origin: OriginStatic})[0]; m.External != netip.MustParseAddrPort("203.0.113.1:18080") {
			t.Errorf("mapped at %v, want the asked port 18080", m.External)
		}
		for i, q := range up.maps {
			if q.SuggestedExternal.Port() != 18080 || !q.PreferFailure {
				t.Errorf("request %d: %+v, want port 18080 with PREFER_FAILURE (never moved)", i, q)
			}
		}
	})
}

// Two static forwards may lead to the same LAN port from two external
// ports: each is its own mapping (one refused, one made), and asking for
// them again renews each, not the first one found for that LAN port.
func TestStaticForwardsSameInternal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.taken[18447] = true
		c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up})
		static := func(ext uint16) Request {
			return Request{Origin: OriginStatic, Client: host, Proto: TCP, Internal: netip.AddrPortFrom(host, 8446),
				ExternalPort: ext, ExactPort: true}
		}
		for range 2 {
			if _, err := c.Map(context.Background(), static(18446)); err != nil {
				t.Fatal(err)
			}
			_, err := c.Map(context.Background(), static(18447))
			wantCode(t, err, CodeCannotProvideExternal)
			synctest.Wait()
		}
		got := map[uint16]UpstreamState{}
		for _, m := range c.Find(Selector{Origin: OriginStatic}) {
			got[m.WANPort] = m.Upstream
		}
		if diff := cmp.Diff(map[uint16]UpstreamState{18446: UpstreamOK, 18447: UpstreamFailing}, got); diff != "" {
			t.Errorf("static mappings by WAN port (-want +got):\n%s", diff)
		}
		if len(fw.Forwards()) != 2 {
			t.Errorf("kernel forwards %v, want one per forward", fw.Forwards())
		}
	})
}

// The wait before asking again follows the error lifetime as the PCP
// client holds it (capped there), else the core caps it.
func TestRetryWait(t *testing.T) {
	now := time.Now()
	huge := &upstream.Error{Kind: upstream.KindPCP, Code: pcp.CannotProvideExternal, Lifetime: 1<<32 - 1}
	held := &upstream.Error{Kind: upstream.KindPCP, Code: pcp.CannotProvideExternal, Lifetime: 1<<32 - 1, Until: now.Add(30 * time.Minute)}
	tests := []struct {
		err  error
		want time.Duration
	}{
		{held, 30 * time.Minute},
		{huge, maxRetryWait},
		{&upstream.Error{Kind: upstream.KindPCP, Code: pcp.CannotProvideExternal, ByClient: true, Until: now}, retryAfterTimeout},
		{&upstream.Error{Kind: upstream.KindPCP, Code: pcp.NoResources, Lifetime: 7}, 7 * time.Second},
		{context.DeadlineExceeded, retryAfterTimeout},
	}
	for _, tt := range tests {
		if got := retryWait(tt.err, upstreamError(tt.err), now); got != tt.want {
			t.Errorf("retryWait(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// The reason of a provider that does not answer, or refuses otherwise.
func TestUpstreamReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&upstream.Error{Kind: upstream.KindPCP, Code: pcp.CannotProvideExternal, Lifetime: 30}, "CANNOT_PROVIDE_EXTERNAL: the provider refused external port 8080"},
		{&upstream.Error{Kind: upstream.KindPCP, Code: pcp.CannotProvideExternal, ByClient: true}, "CANNOT_PROVIDE_EXTERNAL: the provider offered another port than 8080"},
		{fmt.Errorf("%w: %w", pcpclient.ErrBackoff, &upstream.Error{Kind: upstream.KindPCP, Code: pcp.NotAuthorized}), "NOT_AUTHORIZED: the provider refused the mapping"},
		{context.DeadlineExceeded, "no answer from the provider's PCP server (context deadline exceeded)"},
		{&upstream.Error{Kind: upstream.KindUPnP, Code: pcp.CannotProvideExternal, Detail: "UPnP error 718 ConflictInMappingEntry"},
			"CANNOT_PROVIDE_EXTERNAL: the ISP box's UPnP IGD refused external port 8080 (UPnP error 718 ConflictInMappingEntry)"},
		{&upstream.Error{Kind: upstream.KindNATPMP, Code: pcp.NotAuthorized, Detail: "NAT-PMP gateway answered NOT_AUTHORIZED"},
			"NOT_AUTHORIZED: the NAT-PMP gateway refused the mapping"},
	}
	for _, tt := range tests {
		k := upstream.KindPCP
		if ue, ok := tt.err.(*upstream.Error); ok {
			k = ue.Kind
		}
		if got := upstreamReason(tt.err, 8080, k); got != tt.want {
			t.Errorf("upstreamReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestSetPolicy(t *testing.T) {
	c, _ := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub, SecureMode: true, Quota: 1})
	ctx := context.Background()
	if _, err := c.Map(ctx, req(OriginNATPMP, host, TCP, 9000, 0, time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Map(ctx, req(OriginNATPMP, host, TCP, 9001, 0, time.Hour))
	wantCode(t, err, CodeQuota)
	c.SetPolicy(Policy{Quota: 5, Rules: []Rule{{Allow: false, ExtLo: 0, ExtHi: 65535, IntAddr: netip.MustParsePrefix("192.0.2.0/24"), IntLo: 9002, IntHi: 9002}}})
	if _, err := c.Map(ctx, req(OriginNATPMP, host, TCP, 9001, 0, time.Hour)); err != nil {
		t.Errorf("after raising the quota: %v", err)
	}
	_, err = c.Map(ctx, req(OriginNATPMP, host, TCP, 9002, 0, time.Hour))
	wantCode(t, err, CodeNotAuthorized)
	// Secure mode is now off: a host may map for another.
	r := req(OriginUPnP, other, TCP, 9003, 19003, 0)
	r.Internal = netip.AddrPortFrom(host, 9003)
	if _, err := c.Map(ctx, r); err != nil {
		t.Errorf("secure mode off: %v", err)
	}
	if got := c.Count(); got != 3 {
		t.Errorf("%d mappings, want the 3 made (live ones kept)", got)
	}
}

// TestRenewalWithoutAnswer: while the provider does not answer, renewals
// follow RFC 6887 §11.2.1 (1/2..5/8, then 3/4.., 7/8.. of the lifetime) and
// the mapping stays up until its upstream lifetime runs out.
func TestRenewalWithoutAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.lifetime = 1000
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up})
		if _, err := c.Map(context.Background(), req(OriginNATPMP, host, TCP, 9000, 0, 24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		up.mu.Lock()
		up.err = pcpclient.ErrTimeout
		up.mu.Unlock()
		var at []time.Duration
		start := time.Now()
		for n := 1; time.Since(start) < 1100*time.Second; {
			time.Sleep(time.Second)
			synctest.Wait()
			if k, _ := up.counts(); k > n {
				at = append(at, time.Since(start))
				n = k
			}
		}
		if len(at) < 3 || at[0] < 500*time.Second || at[0] > 625*time.Second || at[1] < 750*time.Second || at[1] > 813*time.Second {
			t.Errorf("renewal attempts at %v", at)
		}
		got := c.Find(Selector{})
		if len(got) != 1 || got[0].Upstream != UpstreamFailing {
			t.Errorf("after the upstream lifetime ran out: %+v", got)
		}
		if s := c.Status(); s.Mappings != 1 || s.Failing != 1 || s.Mode != ModeNAT444 {
			t.Errorf("status %+v", s)
		}
	})
}

// TestMappingUpdate: an unsolicited MAP response (RFC 6887 §14.2) moves the
// mapping to its new external endpoint.
func TestMappingUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up})
		m, err := c.Map(context.Background(), req(OriginNATPMP, host, UDP, 9000, 0, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		first := up.lastMap()
		res := upstream.MapResult{External: netip.MustParseAddrPort("203.0.113.1:40000"), Lifetime: 3600, Nonce: pcp.Nonce{1}}
		if first.Nonce != (pcp.Nonce{}) {
			res.Nonce = first.Nonce
		}
		up.events <- upstream.Event{Kind: upstream.EventExternalChanged, Request: &first, Mapping: &res}
		synctest.Wait()
		got, ok := c.Get(m.ID)
		if !ok || got.External != res.External {
			t.Errorf("after the Mapping Update: %+v", got)
		}
	})
}

// TestRenewalKernelWrites: a renewal writes the kernel only when its
// element's timeout must change: not for a client asking again within
// seconds, but 20 s later (refresh), for a shorter lease (refresh), and for
// a lease that becomes permanent or gets an end again (delete and add: an
// update in place keeps the old timeout). After a failed batch the next
// renewal rewrites the element.
func TestRenewalKernelWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fw := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub})
		ctx := context.Background()
		batches := func() int { return len(fw.Batches()) }
		renew := func(life time.Duration) {
			t.Helper()
			if _, err := c.Map(ctx, req(OriginUPnP, host, TCP, 8080, 18080, life)); err != nil {
				t.Fatal(err)
			}
		}
		timeout := func() time.Duration {
			t.Helper()
			f := fw.Forwards()
			if len(f) != 1 {
				t.Fatalf("forwards %v, want one", f)
			}
			return f[0].Timeout
		}
		lastChange := func() firewall.Change {
			b := fw.Batches()
			return b[len(b)-1].Change
		}
		renew(time.Hour)
		n := batches()
		for range 5 {
			time.Sleep(time.Second)
			renew(time.Hour)
		}
		if batches() != n {
			t.Fatalf("renewals within 5 s wrote the kernel %d times", batches()-n)
		}
		time.Sleep(20 * time.Second)
		renew(time.Hour)
		if batches() != n+1 || timeout() != time.Hour+firewallGrace {
			t.Fatalf("renewal 25 s later: batches +%d, timeout %v", batches()-n, timeout())
		}
		if ch := lastChange(); len(ch.DelForwards) != 0 {
			t.Errorf("a refresh deleted the element: %+v", ch)
		}
		renew(10 * time.Minute)
		if batches() != n+2 || timeout() != 10*time.Minute+firewallGrace {
			t.Fatalf("shorter lease: batches +%d, timeout %v", batches()-n, timeout())
		}
		renew(0) // permanent (UPnP lease 0)
		if ch := lastChange(); batches() != n+3 || len(ch.DelForwards) != 1 || timeout() != 0 {
			t.Fatalf("lease to permanent: batches +%d, change %+v, timeout %v", batches()-n, ch, timeout())
		}
		renew(0)
		if batches() != n+3 {
			t.Fatal("a permanent mapping renewed as permanent wrote the kernel")
		}
		renew(time.Hour)
		if ch := lastChange(); batches() != n+4 || len(ch.DelForwards) != 1 || timeout() != time.Hour+firewallGrace {
			t.Fatalf("permanent to a lease: batches +%d, change %+v, timeout %v", batches()-n, ch, timeout())
		}
		// A failed refresh: the scheduler resyncs the kernel with the
		// table (TestKernelRepairAfterFailedBatch has the rest).
		time.Sleep(30 * time.Second)
		fw.FailNext(errors.New("netlink: injected"))
		if _, err := c.Map(ctx, req(OriginUPnP, host, TCP, 8080, 18080, time.Hour)); err != nil {
			t.Logf("renewal with a failing firewall: %v", err)
		}
		synctest.Wait()
		b := fw.Batches()
		if last := b[len(b)-1]; last.Op != firewalltest.OpSync || last.Err != nil || timeout() != time.Hour+firewallGrace {
			t.Fatalf("after a failed batch: last batch %+v, timeout %v; want a resync", last, timeout())
		}
	})
}

// TestStateFileStreamed: the state file, written a mapping at a time, is
// exactly what json.Marshal gives for the whole state (and loads back).
func TestStateFileStreamed(t *testing.T) {
	c, _ := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub, Quota: 1000})
	ctx := context.Background()
	for i := range 3 {
		r := req(OriginUPnP, host, TCP, uint16(8080+i), uint16(18080+i), time.Hour)
		r.Description = fmt.Sprintf("app \"%d\" <é>", i)
		if _, err := c.Map(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{0, 1, 3} {
		c.mu.Lock()
		st := c.snapshotLocked()
		c.mu.Unlock()
		st.Mappings = st.Mappings[:n]
		want, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := writeStateJSON(w, st, func(f func([]stateMapping) error) error { return f(st.Mappings) }); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if got := buf.String(); got != string(want)+"\n" {
			t.Errorf("%d mappings:\n got %s\nwant %s", n, got, want)
		}
	}
	// The writer's own path: the table copied a chunk at a time.
	for i := range 600 {
		if _, err := c.Map(ctx, req(OriginNATPMP, other, UDP, uint16(10000+i), 0, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	st := c.snapshotLocked()
	c.mu.Unlock()
	want, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := writeStateJSON(w, st, c.eachStateChunk); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if len(st.Mappings) != 603 || buf.String() != string(want)+"\n" {
		t.Errorf("chunked write of %d mappings differs from json.Marshal", len(st.Mappings))
	}
}

// TestScheduleOnePerMapping: however often leases are renewed, the
// schedule holds each mapping once (it used to gain an item per renewal),
// and the lease still ends at the last renewal's end.
func TestScheduleOnePerMapping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fw := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub})
		ctx := context.Background()
		for i := range 1000 {
			for port := range uint16(3) {
				if _, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 4500+port, 0, time.Duration(200+i%7)*time.Second)); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		c.mu.Lock()
		n := len(c.sched)
		for i, e := range c.sched {
			if int(e.sidx) != i {
				t.Errorf("sched[%d] has sidx %d", i, e.sidx)
			}
		}
		c.mu.Unlock()
		if n != 3 {
			t.Fatalf("schedule holds %d items for 3 mappings renewed 1,000 times", n)
		}
		if _, err := c.Delete(ctx, Selector{Client: host, Proto: UDP, Internal: netip.AddrPortFrom(host, 4500)}); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		n = len(c.sched)
		c.mu.Unlock()
		if n != 2 {
			t.Fatalf("after a delete the schedule holds %d items, want 2", n)
		}
		time.Sleep(200 * time.Second) // the last lease was 200 + 999%7 = 206 s
		synctest.Wait()
		if c.Count() != 2 {
			t.Fatalf("ended before the last renewal's lease: count %d", c.Count())
		}
		time.Sleep(7 * time.Second)
		synctest.Wait()
		if c.Count() != 0 || len(fw.Forwards()) != 0 {
			t.Fatalf("not ended: count %d, forwards %v", c.Count(), fw.Forwards())
		}
	})
}

// TestRenewalPersistedLater: a renewal is in the journal before its
// answer (a crash right after it keeps the new lease end), one record per
// second of lease end at most; the lease file follows a renewal alone
// within renewPersistDelay (not at once: a busy LAN renews thousands of
// leases a second), a new mapping or a new description at once.
func TestRenewalPersistedLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		leases := filepath.Join(dir, "leases")
		c, _ := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub, StateDir: dir, LeaseFile: leases})
		ctx := context.Background()
		leaseEnd := func(port uint16) string {
			t.Helper()
			b, _ := os.ReadFile(leases)
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Split(line, ":"); len(f) == 6 && f[1] == fmt.Sprint(port) {
					return f[4]
				}
			}
			return ""
		}
		m, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 4500, 0, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got := crashLoad(t, dir, Config{Mode: ModeLocal, WANAddr: wanPub}); len(got) != 1 || got[0].Expires.Before(m.Expires) {
			t.Fatalf("after a crash right after the answer: %+v, want the mapping to %v", got, m.Expires)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		first := leaseEnd(4500)
		if first == "" {
			t.Fatal("a new mapping was not in the lease file within 1 s")
		}
		time.Sleep(time.Minute)
		writes := c.jr.writes.Load()
		m, err = c.Map(ctx, req(OriginNATPMP, host, UDP, 4500, 0, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got := crashLoad(t, dir, Config{Mode: ModeLocal, WANAddr: wanPub}); len(got) != 1 || got[0].Expires.Before(m.Expires) ||
			got[0].Expires.After(m.Expires.Add(time.Second)) {
			t.Fatalf("renewal not durable before its answer: after a crash %+v, want the lease to end at %v (to the second above)", got, m.Expires)
		}
		if n := c.jr.writes.Load() - writes; n != 1 {
			t.Errorf("a renewal took %d journal writes, want 1", n)
		}
		// Within the same second: the lease end recorded (rounded up)
		// holds, no write.
		writes = c.jr.writes.Load()
		if _, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 4500, 0, time.Hour)); err != nil {
			t.Fatal(err)
		}
		if n := c.jr.writes.Load() - writes; n != 0 {
			t.Errorf("a renewal within the same second took %d journal writes, want 0", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := leaseEnd(4500); got != first {
			t.Fatalf("renewal in the lease file at once: %v, want still %v", got, first)
		}
		time.Sleep(renewPersistDelay)
		synctest.Wait()
		renewed := leaseEnd(4500)
		if renewed == first {
			t.Fatalf("renewal not in the lease file within %v", renewPersistDelay)
		}
		// A renewal then a new mapping: both written at once.
		time.Sleep(time.Minute)
		if _, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 4500, 0, time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 4501, 0, time.Hour)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if leaseEnd(4501) == "" || leaseEnd(4500) == renewed {
			t.Fatalf("new mapping %q, renewal %q (before %q): want both written", leaseEnd(4501), leaseEnd(4500), renewed)
		}
		// A renewal that changes more than the lease end (here the
		// description) is written at once.
		r := req(OriginNATPMP, host, UDP, 4500, 0, time.Hour)
		r.Description = "renamed"
		if _, err := c.Map(ctx, r); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if b, _ := os.ReadFile(leases); !strings.Contains(string(b), ":renamed") {
			t.Errorf("a new description was not written at once")
		}
	})
}

// TestKernelRepairAfterFailedBatch: a renewal whose batch failed is
// rewritten by the next renewal even when nothing else changed (a lease
// made permanent stayed timed out in the kernel); a removal whose batch
// failed, or was asked with a cancelled context, does not leave the
// element behind: the scheduler resyncs the kernel with the table,
// retrying while that fails.
func TestKernelRepairAfterFailedBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, fw := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub})
		ctx := context.Background()
		m := func(life time.Duration) {
			t.Helper()
			if _, err := c.Map(ctx, req(OriginUPnP, host, TCP, 8080, 18080, life)); err != nil {
				t.Logf("Map: %v", err)
			}
		}
		m(time.Hour)
		fw.FailNext(errors.New("netlink: injected"))
		m(0)
		m(0)
		synctest.Wait()
		if f := fw.Forwards(); len(f) != 1 || f[0].Timeout != 0 {
			t.Fatalf("permanent after a failed batch: kernel %v", f)
		}

		// A delete with a cancelled context still reaches the kernel.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if n, _ := c.Delete(cctx, Selector{Client: host, Proto: TCP, External: 18080}); n != 1 {
			t.Fatalf("Delete = %d", n)
		}
		if f := fw.Forwards(); len(f) != 0 {
			t.Fatalf("deleted with a cancelled context, kernel keeps %v", f)
		}

		// A failed delete: the resync removes the element; a failing
		// resync is retried.
		m(time.Hour)
		synctest.Wait()
		fw.FailNext(errors.New("netlink: injected")) // the delete's batch
		fw.FailNext(errors.New("netlink: injected")) // the first resync
		c.Delete(ctx, Selector{Client: host, Proto: TCP, External: 18080})
		synctest.Wait() // the scheduler tried to resync, and waits 1 s
		if len(fw.Forwards()) != 1 {
			t.Fatalf("both failures injected, the element should still be there: %v", fw.Forwards())
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if f := fw.Forwards(); len(f) != 0 || c.Count() != 0 {
			t.Fatalf("after the resync: kernel %v, table %d", f, c.Count())
		}
	})
}

// TestKernelUpdate: what a renewal sends to the kernel, by the element's
// last known timeout and the new lease.
func TestKernelUpdate(t *testing.T) {
	now := time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)
	hour := now.Add(time.Hour)
	for _, tt := range []struct {
		name             string
		expires, kernel  time.Time
		stale            bool
		refresh, replace bool
	}{
		{"asked again at once", hour, hour.Add(firewallGrace), false, false, false},
		{"asked again 15 s later", hour, hour.Add(firewallGrace - 15*time.Second), false, false, false},
		{"asked again 25 s later", hour, hour.Add(firewallGrace - 25*time.Second), false, true, false},
		{"shorter lease", hour, hour.Add(time.Hour), false, true, false},
		{"to permanent", time.Time{}, hour, false, true, true},
		{"from permanent", hour, time.Time{}, false, true, true},
		{"permanent both", time.Time{}, time.Time{}, false, false, false},
		{"stale, permanent both", time.Time{}, time.Time{}, true, true, true},
		{"stale, same lease", hour, hour.Add(firewallGrace), true, true, true},
	} {
		e := &entry{Mapping: Mapping{Expires: tt.expires}, kernelExp: tt.kernel, kernelStale: tt.stale}
		if refresh, replace := kernelUpdate(e, now); refresh != tt.refresh || replace != tt.replace {
			t.Errorf("%s: kernelUpdate = %v, %v; want %v, %v", tt.name, refresh, replace, tt.refresh, tt.replace)
		}
	}
}

// TestDSLiteProviderPortTakesSlot: in dslite the provider's external port
// decides which mapping a lookup by that port finds; a mapping holding it
// only by its own unconfirmed local pick gives way (it was left out of the
// index, so DeletePortMapping of the provider's port found nothing).
func TestDSLiteProviderPortTakesSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeDSLite, Upstream: up})
		ctx := context.Background()
		// B asks for 19000; the provider does not answer: pending on its
		// local pick.
		up.mu.Lock()
		up.err = &upstream.Error{Kind: upstream.KindPCP, Op: "map", Code: pcp.NetworkFailure, Lifetime: 30}
		up.mu.Unlock()
		b := req(OriginNATPMP, other, TCP, 9000, 19000, time.Hour)
		c.Map(ctx, b)
		up.mu.Lock()
		up.err = nil
		up.taken[18000] = true
		up.mu.Unlock()
		// A asks for 18000, the provider gives 19000.
		ma, err := c.Map(ctx, req(OriginNATPMP, host, TCP, 8000, 18000, time.Hour))
		if err != nil || ma.External.Port() != 19000 {
			t.Fatalf("A: %+v, %v; want external port 19000", ma, err)
		}
		got := c.Find(Selector{Proto: TCP, External: 19000})
		if len(got) != 1 || got[0].ID != ma.ID {
			t.Fatalf("lookup by 19000 finds %+v, want A (id %d)", got, ma.ID)
		}
	})
}

// TestRunRacingClose: Run started in a goroutine and Close called at once
// (a daemon stopping during start) neither race (WaitGroup Add against
// Wait, seen under -race) nor hang; Run after Close returns at once.
func TestRunRacingClose(t *testing.T) {
	for range 50 {
		c, err := New(context.Background(), Config{Mode: ModeLocal, WANAddr: wanPub, Firewall: firewalltest.New()})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); c.Run(context.Background()) }()
		c.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after Close")
		}
	}
}

// TestUpstreamUnsuppVersionNotARefusal: an upstream answering
// UNSUPP_VERSION (a PCP client that may not fall back to NAT-PMP, after a
// server answered in NAT-PMP's version) does not refuse the LAN client's
// mapping (CodeFromPCP makes it a network failure): it stays, pending,
// asked again later, and the client hears NETWORK_FAILURE, never
// UNSUPP_VERSION about a version it did not use.
func TestUpstreamUnsuppVersionNotARefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.err = &upstream.Error{Kind: upstream.KindPCP, Code: pcp.UnsuppVersion}
		c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up})
		_, err := c.Map(context.Background(), req(OriginNATPMP, host, TCP, 8080, 18080, time.Hour))
		wantCode(t, err, CodeNetworkFailure)
		got := c.Find(Selector{Client: host})
		if len(got) != 1 || got[0].Upstream != UpstreamPending || len(fw.Forwards()) != 1 {
			t.Fatalf("the mapping after UNSUPP_VERSION upstream: %+v, %d forwards; want it kept, pending", got, len(fw.Forwards()))
		}
	})
}
