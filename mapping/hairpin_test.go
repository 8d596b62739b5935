package mapping

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/firewall/firewalltest"
	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/upstream"
)

// The provider's external address the fake upstream answers.
var provider = netip.MustParseAddr("203.0.113.1")

// hairpinTo is where the CPE sends a LAN host's TCP connection to dst
// (the zero AddrPort: nowhere on the CPE).
func hairpinTo(fw *firewalltest.Fake, dst netip.AddrPort) netip.AddrPort {
	to, _ := fw.Hairpin(6, dst)
	return to
}

// TestHairpinByUpstreamPort (RFC 7648 §3.1): the provider's port of a
// mapping differs from its WAN port (the CGN had 18080 taken and gave
// 19080), and another mapping's WAN port is that number. A LAN host
// connecting to the provider's address at 19080 reaches the first
// mapping's LAN host, not the second's; at the provider's 18080 (someone
// else's at the provider) nothing on the CPE; the WAN address still
// hairpins by the WAN port.
func TestHairpinByUpstreamPort(t *testing.T) {
	synctest.Test(t, testHairpinByUpstreamPort)
}

func testHairpinByUpstreamPort(t *testing.T) {
	up := newFakeUp()
	up.taken[18080] = true
	c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
	ctx := context.Background()
	if err := fw.SetWANAddr(ctx, wanCGN); err != nil { // as firewall.Config.WANAddr does
		t.Fatal(err)
	}
	a, err := c.Map(ctx, req(OriginNATPMP, host, TCP, 8080, 18080, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if a.WANPort != 18080 || a.External != netip.AddrPortFrom(provider, 19080) {
		t.Fatalf("first mapping %+v", a)
	}
	up.mu.Lock()
	up.taken[19080] = true // the first mapping's at the provider
	up.mu.Unlock()
	b, err := c.Map(ctx, req(OriginNATPMP, other, TCP, 9090, 19080, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if b.WANPort != 19080 || b.External != netip.AddrPortFrom(provider, 20080) {
		t.Fatalf("second mapping %+v", b)
	}
	if fw.ExternalAddr() != provider {
		t.Fatalf("external address hairpinned: %v", fw.ExternalAddr())
	}
	for _, tc := range []struct {
		dst, want string
	}{
		{"203.0.113.1:19080", "192.0.2.100:8080"}, // the first mapping's provider port
		{"203.0.113.1:20080", "192.0.2.101:9090"}, // the second's
		{"203.0.113.1:18080", ""},                 // another subscriber's at the provider
		{"100.64.0.2:18080", "192.0.2.100:8080"},  // the WAN address: by the WAN port
		{"100.64.0.2:19080", "192.0.2.101:9090"},
	} {
		var want netip.AddrPort
		if tc.want != "" {
			want = netip.MustParseAddrPort(tc.want)
		}
		if got := hairpinTo(fw, netip.MustParseAddrPort(tc.dst)); got != want {
			t.Errorf("LAN connection to %s goes to %v, want %v", tc.dst, got, want)
		}
	}
	want := []firewall.Forward{
		{Proto: 6, Port: 18080, To: a.Internal, UpstreamPort: 19080, Timeout: time.Hour + firewallGrace},
		{Proto: 6, Port: 19080, To: b.Internal, UpstreamPort: 20080, Timeout: time.Hour + firewallGrace},
	}
	if diff := cmp.Diff(want, fw.Forwards(), netipCmp); diff != "" {
		t.Errorf("kernel forwards (-want +got):\n%s", diff)
	}
	// Deleted: its hairpin goes with its forward.
	if _, err := c.Delete(ctx, Selector{Client: host, Proto: TCP, Internal: a.Internal}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]firewalltest.Hairpin{{Proto: 6, Port: 20080, To: b.Internal}}, fw.Hairpins(), netipCmp); diff != "" {
		t.Errorf("hairpins after the delete (-want +got):\n%s", diff)
	}
}

// TestHairpinSamePort: when the provider gives the WAN port, the forward
// carries it as its upstream port too; in local and portset mode, with
// nothing upstream (kind none) and in DS-Lite none is carried (the WAN
// address, or the AFTR, hairpins).
func TestHairpinSamePort(t *testing.T) {
	to := netip.AddrPortFrom(host, 8080)
	up := newFakeUp()
	c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
	if _, err := c.Map(context.Background(), req(OriginUPnP, host, TCP, 8080, 18080, 0)); err != nil {
		t.Fatal(err)
	}
	want := []firewall.Forward{{Proto: 6, Port: 18080, To: to, UpstreamPort: 18080}}
	if diff := cmp.Diff(want, fw.Forwards(), netipCmp); diff != "" {
		t.Errorf("nat444 (-want +got):\n%s", diff)
	}
	if got := hairpinTo(fw, netip.AddrPortFrom(provider, 18080)); got != to {
		t.Errorf("provider's 18080 goes to %v", got)
	}

	set := v6plus(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		port uint16 // asked for, and the WAN port
		want []firewall.Forward
	}{
		{"local", Config{Mode: ModeLocal, WANAddr: wanPub}, 18080, []firewall.Forward{{Proto: 6, Port: 18080, To: to}}},
		{"portset", Config{Mode: ModePortSet, WANAddr: shared, Upstream: newFakeUp(), PortSet: PortSet{Set: set, Pool: set.Upper(64)}},
			49170, []firewall.Forward{{Proto: 6, Port: 49170, To: to}}},
		{"kind none", Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: &fakeUp{ext: provider, kind: upstream.KindNone,
			taken: map[uint16]bool{}, events: make(chan upstream.Event, 8), lifetime: 3600}}, 18080, []firewall.Forward{{Proto: 6, Port: 18080, To: to}}},
		{"dslite", Config{Mode: ModeDSLite, Upstream: newFakeUp()}, 18080, []firewall.Forward{{Proto: 6, To: to}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, fw := newCore(t, tc.cfg)
			m, err := c.Map(context.Background(), req(OriginUPnP, host, TCP, 8080, tc.port, 0))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, fw.Forwards(), netipCmp); diff != "" {
				t.Errorf("kernel forwards of %+v (-want +got):\n%s", m, diff)
			}
			if hp := fw.Hairpins(); len(hp) != 0 {
				t.Errorf("hairpins %v", hp)
			}
		})
	}
}

// TestHairpinFollowsMoves: the provider lost its state and gave a
// mapping another port: the hairpin moves with it (the old port reaches
// nothing). A Mapping Update giving another mapping a port the first one
// held takes that hairpin over (the kernel holds one target per port, and
// a resync of the whole table is accepted).
func TestHairpinFollowsMoves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		ctx := context.Background()
		a, err := c.Map(ctx, req(OriginNATPMP, host, TCP, 8080, 18080, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Map(ctx, req(OriginPCP, other, TCP, 9090, 17000, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		up.mu.Lock()
		up.taken[18080] = true
		up.mu.Unlock()
		up.events <- upstream.Event{Kind: upstream.EventStateLost, Spread: true}
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if got, _ := c.Get(a.ID); got.External.Port() != 19080 {
			t.Fatalf("after the state loss %+v", got)
		}
		if got := hairpinTo(fw, netip.AddrPortFrom(provider, 19080)); got != a.Internal {
			t.Errorf("provider's 19080 goes to %v, want %v", got, a.Internal)
		}
		if got := hairpinTo(fw, netip.AddrPortFrom(provider, 18080)); got.IsValid() {
			t.Errorf("the old provider port still goes to %v", got)
		}

		// The provider moves b to 19080 (a's, which a has not heard of yet).
		c.mu.Lock()
		nonce := c.entries[b.ID].nonce
		c.mu.Unlock()
		res := upstream.MapResult{External: netip.AddrPortFrom(provider, 19080), Lifetime: 3600, Nonce: pcp.Nonce(nonce)}
		up.events <- upstream.Event{Kind: upstream.EventExternalChanged, Mapping: &res, Request: &upstream.MapRequest{Protocol: 6}}
		synctest.Wait()
		want := []firewalltest.Hairpin{{Proto: 6, Port: 19080, To: b.Internal}}
		if diff := cmp.Diff(want, fw.Hairpins(), netipCmp); diff != "" {
			t.Errorf("hairpins after the Mapping Update (-want +got):\n%s", diff)
		}
		for _, f := range fw.Forwards() {
			if f.To == a.Internal && (f.UpstreamPort != 0 || f.Port != 18080) {
				t.Errorf("a's forward %+v: want its WAN forward without the port b took", f)
			}
		}
		// A resync of the whole table holds one target per port.
		fw.FailNext(errors.New("netlink: injected"))
		if _, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 7000, 7000, time.Hour)); err == nil {
			t.Fatal("a change with a failing firewall succeeded")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		bs := fw.Batches()
		if last := bs[len(bs)-1]; last.Op != firewalltest.OpSync || last.Err != nil {
			t.Fatalf("last batch %+v, want a resync that succeeded", last)
		}
		if diff := cmp.Diff(want, fw.Hairpins(), netipCmp); diff != "" {
			t.Errorf("hairpins after the resync (-want +got):\n%s", diff)
		}
	})
}

// TestHairpinUpstreamChange: another upstream takes over: the old one's
// ports are not hairpinned while the mappings are made again (the WAN
// forward stays), then the new one's are; with nothing upstream (kind
// none) neither the external address nor any upstream port is. A new
// external address is hairpinned instead of the old one.
func TestHairpinUpstreamChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		m, err := c.Map(context.Background(), req(OriginNATPMP, host, TCP, 8080, 18080, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		block := make(chan struct{})
		up.mu.Lock()
		up.block = block
		up.taken[18080] = true
		up.mu.Unlock()
		up.setKind(upstream.KindNATPMP)
		synctest.Wait()
		if hp := fw.Hairpins(); len(hp) != 0 {
			t.Errorf("hairpins while the new upstream is asked: %v", hp)
		}
		if f := fw.Forwards(); len(f) != 1 || f[0].Port != 18080 || f[0].UpstreamPort != 0 {
			t.Errorf("forwards while the new upstream is asked: %v", f)
		}
		close(block)
		time.Sleep(time.Second)
		synctest.Wait()
		if got := hairpinTo(fw, netip.AddrPortFrom(provider, 19080)); got != m.Internal {
			t.Errorf("the new upstream's port goes to %v (hairpins %v)", got, fw.Hairpins())
		}

		// The provider's address changes.
		newExt := netip.MustParseAddr("198.51.100.20")
		up.mu.Lock()
		up.ext = newExt
		up.mu.Unlock()
		up.events <- upstream.Event{Kind: upstream.EventExternalChanged, External: newExt}
		synctest.Wait()
		if got := hairpinTo(fw, netip.AddrPortFrom(newExt, 19080)); got != m.Internal {
			t.Errorf("%v:19080 goes to %v", newExt, got)
		}
		if got := hairpinTo(fw, netip.AddrPortFrom(provider, 19080)); got.IsValid() {
			t.Errorf("the old address still goes to %v", got)
		}

		up.setKind(upstream.KindNone)
		time.Sleep(time.Second)
		synctest.Wait()
		if hp, ext := fw.Hairpins(), fw.ExternalAddr(); len(hp) != 0 || ext.IsValid() {
			t.Errorf("kind none: hairpins %v of %v", hp, ext)
		}
		if f := fw.Forwards(); len(f) != 1 || f[0].Port != 18080 || f[0].UpstreamPort != 0 {
			t.Errorf("kind none: forwards %v", f)
		}
	})
}

// TestHairpinWithdrawnAndFailing: a mapping the provider withdrew loses
// its hairpin with its forward; a static forward it withdrew keeps its
// WAN forward but not the provider's port, which is not its any more.
func TestHairpinWithdrawnAndFailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		ctx := context.Background()
		m, err := c.Map(ctx, req(OriginNATPMP, host, TCP, 8080, 18080, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Map(ctx, Request{Origin: OriginStatic, Client: host, Proto: TCP, Internal: netip.AddrPortFrom(host, 80), ExternalPort: 18000, ExactPort: true})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(fw.Hairpins()); n != 2 {
			t.Fatalf("hairpins %v", fw.Hairpins())
		}
		for _, id := range []uint32{m.ID, s.ID} {
			c.mu.Lock()
			nonce := c.entries[id].nonce
			c.mu.Unlock()
			res := upstream.MapResult{Nonce: pcp.Nonce(nonce)}
			up.events <- upstream.Event{Kind: upstream.EventWithdrawn, Mapping: &res, Request: &upstream.MapRequest{Protocol: 6},
				Err: &upstream.Error{Kind: upstream.KindPCP, Code: pcp.NotAuthorized, Lifetime: 600, Until: time.Now().Add(600 * time.Second)}}
			synctest.Wait()
		}
		if hp := fw.Hairpins(); len(hp) != 0 {
			t.Errorf("hairpins after the withdrawals: %v", hp)
		}
		want := []firewall.Forward{{Proto: 6, Port: 18000, To: s.Internal}}
		if diff := cmp.Diff(want, fw.Forwards(), netipCmp); diff != "" {
			t.Errorf("forwards (-want +got):\n%s", diff)
		}
	})
}

// TestHairpinRestored: a restart restores the provider's ports of the
// mappings made there with the rest of the kernel's state.
func TestHairpinRestored(t *testing.T) {
	dir := t.TempDir()
	up := newFakeUp()
	up.taken[18080] = true
	cfg := Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true, StateDir: dir}
	c, _ := newCore(t, cfg)
	m, err := c.Map(context.Background(), req(OriginNATPMP, host, TCP, 8080, 18080, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	fw := firewalltest.New()
	cfg.Firewall = fw
	c2, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got := hairpinTo(fw, netip.AddrPortFrom(provider, 19080)); got != m.Internal {
		t.Errorf("after the restart the provider's 19080 goes to %v (forwards %v)", got, fw.Forwards())
	}
}

// TestHairpinNewestAnswerHolds: two mappings claim one provider port (the
// provider moved the first-made mapping a onto b's port by a Mapping
// Update, and b has not been answered since): the newer answer holds the
// hairpin, also when the whole table is hairpinned again in its own order
// at a restart, where b comes after a and used to take the port back.
func TestHairpinNewestAnswerHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		up := newFakeUp()
		cfg := Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true, StateDir: dir}
		c, fw := newCore(t, cfg)
		ctx := context.Background()
		a, err := c.Map(ctx, req(OriginNATPMP, host, TCP, 8080, 18080, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Map(ctx, req(OriginNATPMP, other, TCP, 9090, 19080, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // a's next answer is newer than b's
		c.mu.Lock()
		nonce := c.entries[a.ID].nonce
		c.mu.Unlock()
		res := upstream.MapResult{External: netip.AddrPortFrom(provider, 19080), Lifetime: 3600, Nonce: pcp.Nonce(nonce)}
		up.events <- upstream.Event{Kind: upstream.EventExternalChanged, Mapping: &res, Request: &upstream.MapRequest{Protocol: 6}}
		synctest.Wait()
		want := []firewalltest.Hairpin{{Proto: 6, Port: 19080, To: a.Internal}}
		if diff := cmp.Diff(want, fw.Hairpins(), netipCmp); diff != "" {
			t.Fatalf("hairpins after the Mapping Update (-want +got):\n%s", diff)
		}
		if got, _ := c.Get(b.ID); got.External.Port() != 19080 {
			t.Fatalf("b %+v: want its stale claim on 19080 kept for this test", got)
		}
		c.Close()

		fw2 := firewalltest.New()
		cfg.Firewall = fw2
		c2, err := New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		if diff := cmp.Diff(want, fw2.Hairpins(), netipCmp); diff != "" {
			t.Errorf("hairpins after the restart (-want +got):\n%s", diff)
		}
		for _, f := range fw2.Forwards() {
			if f.To == b.Internal && (f.Port != 19080 || f.UpstreamPort != 0) {
				t.Errorf("b's forward after the restart %+v: want its WAN forward without a's port", f)
			}
		}
	})
}

// TestHairpinFilterChange: a PCP renewal that adds a FILTER to a
// hairpinned mapping takes its hairpin off in the same batch (a forward
// with a remote host has none: a LAN host is not that host), and one that
// removes the FILTER gives it back at once; no batch fails on the way.
func TestHairpinFilterChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		ctx := context.Background()
		r := req(OriginPCP, host, TCP, 8080, 18080, time.Hour)
		if _, err := c.Map(ctx, r); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the upstream's answer gives the hairpin, in its own batch
		to := r.Internal
		want := []firewall.Forward{{Proto: 6, Port: 18080, To: to, UpstreamPort: 18080, Timeout: time.Hour + firewallGrace}}
		if diff := cmp.Diff(want, fw.Forwards(), netipCmp); diff != "" {
			t.Fatalf("kernel forwards (-want +got):\n%s", diff)
		}
		rh := netip.MustParseAddr("203.0.113.50")
		r.RemoteHost, r.RemotePort = rh, 443
		if _, err := c.Map(ctx, r); err != nil {
			t.Fatal(err)
		}
		want = []firewall.Forward{{Proto: 6, Port: 18080, To: to, Remote: rh, Timeout: time.Hour + firewallGrace}}
		if diff := cmp.Diff(want, fw.Forwards(), netipCmp); diff != "" {
			t.Errorf("kernel forwards with the filter (-want +got):\n%s", diff)
		}
		if hp := fw.Hairpins(); len(hp) != 0 {
			t.Errorf("hairpins with the filter: %v", hp)
		}
		r.RemoteHost, r.RemotePort = netip.Addr{}, 0
		if _, err := c.Map(ctx, r); err != nil {
			t.Fatal(err)
		}
		want = []firewall.Forward{{Proto: 6, Port: 18080, To: to, UpstreamPort: 18080, Timeout: time.Hour + firewallGrace}}
		if diff := cmp.Diff(want, fw.Forwards(), netipCmp); diff != "" {
			t.Errorf("kernel forwards without the filter (-want +got):\n%s", diff)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		for _, b := range fw.Batches() {
			if b.Err != nil {
				t.Errorf("a %s batch failed: %v", b.Op, b.Err)
			}
		}
		if diff := cmp.Diff(want, fw.Forwards(), netipCmp); diff != "" {
			t.Errorf("kernel forwards after the upstream's answer (-want +got):\n%s", diff)
		}
	})
}
