package pcpclient

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient/pcptest"
)

// TestEpochCheck is the §8.5 procedure on its own (REQUIREMENT 8).
// TestEpochCheckAnnounced: after the server announced a restart, the
// answer to the client's own request is checked against the client's
// clock to the second: a server restarted a second or two after it
// started (epoch 1, then 0 two seconds later) is seen; one that did not
// restart is not (its epoch kept up, give or take the rounding).
func TestEpochCheckAnnounced(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		prev, curr uint32
		after      time.Duration
		valid      bool
	}{
		{1, 0, 2 * time.Second, false},
		{1, 1, 2 * time.Second, false},
		{1, 2, 2 * time.Second, true},
		{1, 3, 2 * time.Second, true},
		{1, 2, 2500 * time.Millisecond, true},
		{0, 0, 300 * time.Millisecond, true}, // within a second: no telling
		{500, 501, time.Second, true},
		{500, 499, 3 * time.Second, false},
	} {
		var e epochState
		e.check(tc.prev, t0)
		if got := e.checkStrict(tc.curr, t0.Add(tc.after), true); got != tc.valid {
			t.Errorf("%d then %d after %v: valid %v, want %v", tc.prev, tc.curr, tc.after, got, tc.valid)
		}
		var plain epochState
		plain.check(tc.prev, t0)
		if tc.prev == 1 && tc.curr == 1 && !plain.check(tc.curr, t0.Add(tc.after)) {
			t.Error("§8.5 alone should not see it (that is why the strict check exists)")
		}
	}
}

func TestEpochCheck(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		server uint32
		client time.Duration // since t0
		valid  bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"first is valid", []step{{5000, 0, true}}},
		{"steady", []step{{100, 0, true}, {110, 10 * time.Second, true}, {1110, 1010 * time.Second, true}}},
		{"back one second is fine", []step{{100, 0, true}, {99, time.Second, true}}},
		{"back two seconds", []step{{100, 0, true}, {98, time.Second, false}}},
		{"reset to zero", []step{{500, 0, true}, {0, 10 * time.Second, false}}},
		{"server fast", []step{{100, 0, true}, {200, 10 * time.Second, false}}},
		{"client fast", []step{{100, 0, true}, {110, 100 * time.Second, false}}},
		{"within 1/16 plus 2", []step{{0, 0, true}, {1600, 1600*time.Second + 100*time.Second + 2*time.Second, true}}},
		{"past 1/16 plus 2", []step{{0, 0, true}, {1600, 1600*time.Second + 110*time.Second, false}}},
		{"client clock back counts as 0", []step{{100, 10 * time.Second, true}, {101, 0, true}}},
		{"records after invalid", []step{{500, 0, true}, {0, time.Second, false}, {10, 11 * time.Second, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e epochState
			for i, s := range tc.steps {
				if got := e.check(s.server, t0.Add(s.client)); got != s.valid {
					t.Fatalf("step %d (%d at +%v): valid = %v, want %v", i, s.server, s.client, got, s.valid)
				}
			}
		})
	}
}

// TestEpochStateLost: a response whose epoch went back (a restarted
// server) or drifted raises EventStateLost (REQUIREMENT 8).
func TestEpochStateLost(t *testing.T) {
	for _, tc := range []struct {
		name          string
		second        uint32
		clientAdvance time.Duration
		lost          bool
	}{
		{"steady", 1060, 60 * time.Second, false},
		{"went back", 3, 60 * time.Second, true},
		{"drift", 1500, 60 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			srv := newFake(t)
			var epoch atomic.Uint32
			epoch.Store(1000)
			srv.SetEpoch(epoch.Load)
			c := newClient(t, srv, func(cfg *Config) { cfg.Now = clk.Now })
			r := MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:8080"), Lifetime: 600}
			res, err := c.Map(ctxT(t, 3*time.Second), r)
			if err != nil {
				t.Fatal(err)
			}
			if res.Epoch != 1000 {
				t.Errorf("epoch %d", res.Epoch)
			}
			clk.Add(tc.clientAdvance)
			epoch.Store(tc.second)
			r.Nonce, r.SuggestedExternal = res.Nonce, res.External
			if _, err := c.Map(ctxT(t, 3*time.Second), r); err != nil {
				t.Fatal(err)
			}
			if tc.lost {
				ev := waitEvent(t, c, EventStateLost, time.Second)
				if ev.Server != srv.Addr() {
					t.Errorf("event server %v", ev.Server)
				}
			} else {
				noEvent(t, c, EventStateLost, 100*time.Millisecond)
			}
			if c.Status().Epoch != tc.second {
				t.Errorf("status epoch %d", c.Status().Epoch)
			}
		})
	}
}

// freeUDPPort picks a loopback port for announcements.
func freeUDPPort(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	return ap
}

// TestAnnounce covers REQUIREMENT 10 (§14.1) with issue 18's rule: an
// unsolicited ANNOUNCE from the server's address is a reason to ask, not
// an answer. The client sends its own ANNOUNCE request; only when that
// answer's epoch shows state loss (§8.5) is EventStateLost raised.
// Repeats ask once; one from elsewhere is dropped.
func TestAnnounce(t *testing.T) {
	srv := newFake(t)
	var epoch atomic.Uint32
	epoch.Store(1000)
	srv.SetEpoch(epoch.Load)
	ann := freeUDPPort(t)
	c := newClient(t, srv, func(cfg *Config) {
		cfg.ListenAnnounce = true
		cfg.AnnounceAddr4 = ann.String()
		cfg.AnnounceAddr6 = "-"
	})
	if _, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 600}); err != nil {
		t.Fatal(err)
	}
	announceRequests := func() int {
		n := 0
		for _, r := range srv.Requests() {
			if r.PCP != nil && r.PCP.Opcode == pcp.OpAnnounce {
				n++
			}
		}
		return n
	}
	// The server still has its state (epoch as expected): the client
	// asks, and nothing is lost.
	if err := srv.SendAnnounce(ann); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, func() bool { return announceRequests() == 1 }, "no ANNOUNCE request after the announcement")
	noEvent(t, c, EventStateLost, 150*time.Millisecond)
	if st := c.Status(); st.Announcements != 1 {
		t.Errorf("Announcements = %d, want 1", st.Announcements)
	}
	// Repeats within announceHold: no new request.
	srv.SendAnnounce(ann)
	srv.SendAnnounce(ann)
	noEvent(t, c, EventStateLost, 150*time.Millisecond)
	if n := announceRequests(); n != 1 {
		t.Errorf("%d ANNOUNCE requests after repeats, want 1", n)
	}
	// From someone else: dropped.
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	before := c.Status().Dropped
	b := (&pcp.Response{Opcode: pcp.OpAnnounce}).AppendMarshal(nil)
	other.WriteToUDPAddrPort(b, ann)
	eventually(t, time.Second, func() bool { return c.Status().Dropped > before }, "foreign ANNOUNCE not dropped")
	noEvent(t, c, EventStateLost, 100*time.Millisecond)
}

// TestAnnounceStateLost: the server restarted (its epoch back to 0) and
// announces it; the answer to the client's own ANNOUNCE request shows the
// loss: EventStateLost from the server.
func TestAnnounceStateLost(t *testing.T) {
	srv := newFake(t)
	var epoch atomic.Uint32
	epoch.Store(1000)
	srv.SetEpoch(epoch.Load)
	ann := freeUDPPort(t)
	c := newClient(t, srv, func(cfg *Config) {
		cfg.ListenAnnounce = true
		cfg.AnnounceAddr4 = ann.String()
		cfg.AnnounceAddr6 = "-"
	})
	if _, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 600}); err != nil {
		t.Fatal(err)
	}
	epoch.Store(0)
	if err := srv.SendAnnounce(ann); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, c, EventStateLost, time.Second)
	if ev.Server != srv.Addr() {
		t.Errorf("server %v", ev.Server)
	}
}

// TestMappingUpdate covers REQUIREMENT 10 (§14.2): an unsolicited MAP
// response for a mapping the client made raises EventExternalChanged with
// the mapping; the new external address is remembered.
func TestMappingUpdate(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, nil)
	in := netip.MustParseAddrPort("127.0.0.1:8080")
	res, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: in, Lifetime: 600})
	if err != nil {
		t.Fatal(err)
	}
	to := srv.Requests()[0].From
	newExt := netip.MustParseAddrPort("203.0.113.9:9090")
	if err := srv.SendMappingUpdate(to, 6, in, newExt, 500); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, c, EventExternalChanged, time.Second)
	if ev.Mapping == nil || ev.Mapping.External != newExt || ev.Mapping.Nonce != res.Nonce || ev.Mapping.Lifetime != 500 {
		t.Fatalf("event %+v mapping %+v", ev, ev.Mapping)
	}
	if ev.Request == nil || ev.Request.Internal != in || ev.Request.Protocol != 6 {
		t.Fatalf("event request %+v", ev.Request)
	}
	if ev.External != newExt.Addr() || c.Status().External != newExt.Addr() {
		t.Errorf("external %v / %v", ev.External, c.Status().External)
	}
	// The same update again is a duplicate: no event.
	srv.SendMappingUpdate(to, 6, in, newExt, 500)
	noEvent(t, c, EventExternalChanged, 100*time.Millisecond)
	// Delete without the nonce uses the remembered one.
	if err := c.Delete(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: in}); err != nil {
		t.Fatal(err)
	}
	// An update for a mapping the client never made is dropped.
	before := c.Status().Dropped
	b := (&pcp.Response{Opcode: pcp.OpMap, Lifetime: 60, Map: &pcp.Map{Protocol: 17, InternalPort: 999, ExternalPort: 1, ExternalAddr: newExt.Addr()}}).AppendMarshal(nil)
	srv.SendRaw(to, b)
	eventually(t, time.Second, func() bool { return c.Status().Dropped > before }, "foreign update not dropped")
}

// TestMappingWithdrawn: an unsolicited error for a known mapping forgets it.
func TestMappingWithdrawn(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, nil)
	in := netip.MustParseAddrPort("127.0.0.1:8081")
	res, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: in, Lifetime: 600})
	if err != nil {
		t.Fatal(err)
	}
	to := srv.Requests()[0].From
	b := (&pcp.Response{Opcode: pcp.OpMap, Result: pcp.NotAuthorized, Lifetime: 60, Map: &pcp.Map{Nonce: res.Nonce, Protocol: 6, InternalPort: 8081}}).AppendMarshal(nil)
	srv.SendRaw(to, b)
	eventually(t, time.Second, func() bool {
		err := c.Delete(ctxT(t, time.Second), MapRequest{Protocol: 6, Internal: in})
		return errors.Is(err, ErrUnknownMapping)
	}, "withdrawn mapping still known")
}

// TestExternalChanged: any answer with another external address than the
// last known one raises EventExternalChanged.
func TestExternalChanged(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, nil)
	if _, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 600}); err != nil {
		t.Fatal(err)
	}
	noEvent(t, c, EventExternalChanged, 50*time.Millisecond)
	srv.SetExternal(netip.MustParseAddr("203.0.113.7"))
	if _, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:81"), Lifetime: 600}); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, c, EventExternalChanged, time.Second)
	if ev.External != netip.MustParseAddr("203.0.113.7") || ev.Mapping != nil {
		t.Errorf("event %+v", ev)
	}
	a, err := c.ExternalAddr(ctxT(t, time.Second))
	if err != nil || a != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("ExternalAddr = %v, %v", a, err)
	}
}

// TestUnreachable: timeouts raise EventUnreachable once; the next answer
// EventReachable.
func TestUnreachable(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, func(cfg *Config) { cfg.Linger = time.Minute })
	srv.SetMode(pcptest.Silent)
	r := MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 600}
	if _, err := c.Map(ctxT(t, 300*time.Millisecond), r); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v", err)
	}
	waitEvent(t, c, EventUnreachable, time.Second)
	c.Map(ctxT(t, 100*time.Millisecond), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:81"), Lifetime: 600})
	noEvent(t, c, EventUnreachable, 200*time.Millisecond)
	if st := c.Status(); st.Reachable || st.LastError == "" {
		t.Errorf("status %+v", st)
	}
	srv.SetMode(pcptest.Normal)
	if _, err := c.Map(ctxT(t, 3*time.Second), r); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, c, EventReachable, time.Second)
	if ev.Server != srv.Addr() || !c.Status().Reachable {
		t.Errorf("event %+v status %+v", ev, c.Status())
	}
}

// TestLinkLocalAnnounce: a PCP ANNOUNCE from an IPv6 link-local address
// (miniupnpd's multicast restart announcement: the kernel picks that
// source for ff02::1) stands for the IPv6 server, only as an unsolicited
// ANNOUNCE on the announcement listener; anything else from an address
// that is no server's is not taken.
func TestLinkLocalAnnounce(t *testing.T) {
	v4 := &server{addr: netip.MustParseAddrPort("192.0.0.1:5351")}
	v6 := &server{addr: netip.MustParseAddrPort("[2001:db8:ff::1]:5351")}
	c := &Client{servers: []*server{v4, v6}}
	ann := (&pcp.Response{Opcode: pcp.OpAnnounce}).AppendMarshal(nil)
	mapResp := (&pcp.Response{Opcode: pcp.OpMap, Map: &pcp.Map{Protocol: 6, InternalPort: 80, ExternalAddr: netip.MustParseAddr("203.0.113.1")}}).AppendMarshal(nil)
	ll := netip.MustParseAddrPort("[fe80::1]:5351")
	if s := c.linkAnnouncerLocked(ann, ll); s != v6 {
		t.Errorf("ANNOUNCE from %v: %v, want the IPv6 server", ll, s)
	}
	for _, tc := range []struct {
		b    []byte
		from string
	}{
		{mapResp, "[fe80::1]:5351"},                       // not an ANNOUNCE
		{ann, "[2001:db8:ff::9]:5351"},                    // a global address that is no server's
		{ann, "192.0.0.9:5351"},                           // IPv4
		{ann[:1], "[fe80::1]:5351"},                       // short
		{append([]byte{0}, ann[1:]...), "[fe80::1]:5351"}, // NAT-PMP
	} {
		if s := c.linkAnnouncerLocked(tc.b, netip.MustParseAddrPort(tc.from)); s != nil {
			t.Errorf("%x from %s taken for %v", tc.b[:min(4, len(tc.b))], tc.from, s.addr)
		}
	}
	if s := (&Client{servers: []*server{v4}}).linkAnnouncerLocked(ann, ll); s != nil {
		t.Errorf("taken with no IPv6 server: %v", s.addr)
	}
}
