package pcpclient

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient/pcptest"
)

// TestOptions covers REQUIREMENT 11: THIRD_PARTY with the internal address,
// PREFER_FAILURE, FILTER and DESCRIPTION go out; unknown optional options in
// answers are ignored.
func TestOptions(t *testing.T) {
	srv := newFake(t)
	srv.AddResponseOption(pcp.Option{Code: 200, Raw: []byte{1, 2, 3, 4}})
	c := newClient(t, srv, nil)
	f := pcp.Filter{Prefix: netip.MustParsePrefix("198.51.100.0/24"), RemotePort: 443}
	res, err := c.Map(ctxT(t, 3*time.Second), MapRequest{
		Protocol:          6,
		Internal:          netip.AddrPortFrom(lanHost, 8080),
		SuggestedExternal: netip.MustParseAddrPort("203.0.113.1:18080"),
		Lifetime:          600,
		PreferFailure:     true,
		ThirdParty:        true,
		Filters:           []pcp.Filter{f},
		Description:       "game server",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.External != netip.MustParseAddrPort("203.0.113.1:18080") {
		t.Errorf("external %v", res.External)
	}
	q := srv.Requests()[0].PCP
	got := map[pcp.OptionCode]pcp.Option{}
	for _, o := range q.Options {
		got[o.Code] = o
	}
	if o, ok := got[pcp.OptThirdParty]; !ok || o.ThirdParty != lanHost {
		t.Errorf("THIRD_PARTY %+v", o)
	}
	if _, ok := got[pcp.OptPreferFailure]; !ok {
		t.Error("no PREFER_FAILURE")
	}
	if o, ok := got[pcp.OptFilter]; !ok || o.Filter != f {
		t.Errorf("FILTER %+v", o)
	}
	if o, ok := got[pcp.OptDescription]; !ok || o.Description != "game server " {
		t.Errorf("DESCRIPTION %+v", o)
	}
	if q.Client != netip.MustParseAddr("127.0.0.1") || q.Map.InternalPort != 8080 {
		t.Errorf("header client %v internal port %d", q.Client, q.Map.InternalPort)
	}
	// Renew and delete of the third-party mapping find it by its address.
	if err := c.Delete(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(lanHost, 8080), ThirdParty: true}); err != nil {
		t.Fatal(err)
	}
	if srv.Mappings() != 0 {
		t.Error("third-party mapping not deleted")
	}
}

// TestThirdPartyMismatch: an answer echoing THIRD_PARTY for another
// internal address is dropped (§11.4).
func TestThirdPartyMismatch(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, func(cfg *Config) { cfg.Linger = time.Minute })
	srv.SetMode(pcptest.Silent)
	r := MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(lanHost, 8080), Lifetime: 600, ThirdParty: true}
	done := make(chan error, 1)
	go func() { _, err := c.Map(ctxT(t, 500*time.Millisecond), r); done <- err }()
	eventually(t, time.Second, func() bool { return srv.Received() > 0 }, "no request")
	q := srv.Requests()[0]
	resp := pcp.Response{Opcode: pcp.OpMap, Lifetime: 600, Map: &pcp.Map{Nonce: q.PCP.Map.Nonce, Protocol: 6, InternalPort: 8080, ExternalPort: 8080, ExternalAddr: netip.MustParseAddr("203.0.113.1")},
		Options: []pcp.Option{{Code: pcp.OptThirdParty, ThirdParty: netip.MustParseAddr("192.0.2.101")}}}
	srv.SendRaw(q.From, resp.AppendMarshal(nil))
	if err := <-done; !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v", err)
	}
	if c.Status().Dropped == 0 {
		t.Error("not counted")
	}
}

// TestPreferFailure covers REQUIREMENT 11 (§13.2): a SUCCESS with another
// port than suggested (as miniupnpd may answer) is deleted again and
// reported as CANNOT_PROVIDE_EXTERNAL.
func TestPreferFailure(t *testing.T) {
	srv := newFake(t)
	srv.SetMode(pcptest.OtherPort)
	c := newClient(t, srv, func(cfg *Config) { cfg.Linger = time.Minute })
	_, err := c.Map(ctxT(t, 3*time.Second), MapRequest{
		Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:8080"),
		SuggestedExternal: netip.AddrPortFrom(netip.Addr{}, 18080), Lifetime: 600, PreferFailure: true,
	})
	var re *ResultError
	if !errors.As(err, &re) || re.Code != pcp.CannotProvideExternal || !re.ByClient {
		t.Fatalf("err %v", err)
	}
	eventually(t, 2*time.Second, func() bool { return srv.Mappings() == 0 }, "the wrong mapping was not deleted")
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[1].PCP.Lifetime != 0 || reqs[1].PCP.Map.Nonce != reqs[0].PCP.Map.Nonce {
		t.Fatalf("requests: %d, delete %+v", len(reqs), reqs[len(reqs)-1].PCP)
	}
	// Without PREFER_FAILURE another port is fine.
	res, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:8080"),
		SuggestedExternal: netip.AddrPortFrom(netip.Addr{}, 18080), Lifetime: 600})
	if err != nil || res.External.Port() != 18081 {
		t.Fatalf("%+v %v", res, err)
	}
}

// TestPeer: the PEER opcode, matched on the remote peer too.
func TestPeer(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, nil)
	remote := netip.MustParseAddrPort("198.51.100.7:443")
	res, err := c.Peer(ctxT(t, 3*time.Second), PeerRequest{MapRequest: MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:5555"), Lifetime: 120}, Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	if res.External.Addr() != netip.MustParseAddr("203.0.113.1") || res.Lifetime != 120 {
		t.Errorf("%+v", res)
	}
	q := srv.Requests()[0].PCP
	if q.Opcode != pcp.OpPeer || q.Peer.RemotePort != 443 || q.Peer.RemoteAddr != remote.Addr() {
		t.Errorf("request %+v", q)
	}
	for _, bad := range []PeerRequest{
		{MapRequest: MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:1")}},
		{MapRequest: MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:1"), PreferFailure: true}, Remote: remote},
	} {
		if _, err := c.Peer(ctxT(t, time.Second), bad); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// TestTooLarge covers REQUIREMENT 1: a request over 1100 octets is refused.
func TestTooLarge(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, nil)
	var fs []pcp.Filter
	for i := 0; i < 60; i++ {
		fs = append(fs, pcp.Filter{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 32)})
	}
	_, err := c.Map(ctxT(t, time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:1"), Lifetime: 60, Filters: fs})
	if !errors.Is(err, ErrTooLarge) || srv.Received() != 0 {
		t.Fatalf("err %v, sent %d", err, srv.Received())
	}
}

// TestNATPMPFallback covers REQUIREMENT 12: version 2 goes out; UNSUPP_VERSION
// with version 0 to it makes the client check NAT-PMP with a request of
// its own (opcode 0); its answer makes the client ask once more in PCP,
// and only when that goes unanswered does it switch to NAT-PMP (1/2 for
// maps) behind the same API; third-party and PEER requests are refused.
func TestNATPMPFallback(t *testing.T) {
	srv := newFake(t)
	srv.SetMode(pcptest.NATPMPOnly)
	ann := freeUDPPort(t)
	c := newClient(t, srv, func(cfg *Config) {
		cfg.ListenAnnounce = true
		cfg.AnnounceAddr4 = ann.String()
		cfg.AnnounceAddr6 = "-"
	})
	ctx := ctxT(t, 5*time.Second)
	res, err := c.Map(ctx, MapRequest{Protocol: 17, Internal: netip.MustParseAddrPort("127.0.0.1:5000"), SuggestedExternal: netip.AddrPortFrom(netip.Addr{}, 15000), Lifetime: 600})
	if err != nil {
		t.Fatal(err)
	}
	if res.External != netip.MustParseAddrPort("203.0.113.1:15000") || res.Lifetime != 600 {
		t.Errorf("result %+v", res)
	}
	reqs := srv.Requests()
	if reqs[0].Raw[0] != pcp.Version {
		t.Errorf("first request version %d, want 2", reqs[0].Raw[0])
	}
	// The PCP request, the check (opcode 0), the PCP request again (after
	// the check's answer: the server might speak both), then map UDP.
	var ops []uint8
	pcpAfterCheck := 0
	for _, r := range reqs[1:] {
		if r.NATPMP == nil {
			if slices.Contains(ops, pcp.NATPMPOpMapUDP) {
				t.Fatalf("after fallback a non-NAT-PMP request: %x", r.Raw)
			}
			if len(ops) > 0 {
				pcpAfterCheck++
			}
			continue
		}
		ops = append(ops, r.NATPMP.Opcode)
	}
	if fmt.Sprint(slices.Compact(slices.Clone(ops))) != "[0 1]" { // retransmissions allowed
		t.Errorf("NAT-PMP opcodes %v, want the external address check, then map UDP", ops)
	}
	if pcpAfterCheck == 0 {
		t.Error("fell back without asking in PCP again after the check's answer")
	}
	if st := c.Status(); st.Protocol != "nat-pmp" {
		t.Errorf("protocol %q", st.Protocol)
	}
	a, err := c.ExternalAddr(ctx)
	if err != nil || a != netip.MustParseAddr("203.0.113.1") {
		t.Errorf("ExternalAddr %v %v", a, err)
	}
	tcp, err := c.Map(ctx, MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:5001"), Lifetime: 600})
	if err != nil || tcp.External.Port() != 5001 {
		t.Errorf("TCP %+v %v", tcp, err)
	}
	if err := c.Delete(ctx, MapRequest{Protocol: 17, Internal: netip.MustParseAddrPort("127.0.0.1:5000")}); err != nil {
		t.Fatal(err)
	}
	if srv.Mappings() != 1 {
		t.Errorf("server holds %d mappings, want 1", srv.Mappings())
	}
	if _, err := c.Map(ctx, MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(lanHost, 80), Lifetime: 60, ThirdParty: true}); !errors.Is(err, ErrNATPMPThirdParty) {
		t.Errorf("third party: %v", err)
	}
	if _, err := c.Peer(ctx, PeerRequest{MapRequest: MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 60}, Remote: netip.MustParseAddrPort("198.51.100.1:80")}); !errors.Is(err, ErrNATPMPUnsupported) {
		t.Errorf("peer: %v", err)
	}
	if _, err := c.Map(ctx, MapRequest{Protocol: 132, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 60}); !errors.Is(err, ErrNATPMPUnsupported) {
		t.Errorf("SCTP: %v", err)
	}
	// NAT-PMP errors come back as ResultError with the matching PCP code.
	srv.SetNATPMPError(pcp.NATPMPOutOfResources)
	_, err = c.Map(ctx, MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:5002"), Lifetime: 600})
	var re *ResultError
	if !errors.As(err, &re) || re.Code != pcp.NoResources || re.Lifetime != 30 {
		t.Errorf("error: %v", err)
	}
	// An unsolicited address announcement with a new address.
	srv.SetNATPMPError(pcp.NATPMPSuccess)
	srv.SetExternal(netip.MustParseAddr("203.0.113.77"))
	// (to the announcement listener: the request socket takes answers only)
	srv.SendNATPMPAddress(ann)
	ev := waitEvent(t, c, EventExternalChanged, time.Second)
	if ev.External != netip.MustParseAddr("203.0.113.77") {
		t.Errorf("event %+v", ev)
	}
}

// TestNATPMPExternalAddrFirst: ExternalAddr against a NAT-PMP-only server
// before anything else (the probe MAP falls back, then opcode 0).
func TestNATPMPExternalAddrFirst(t *testing.T) {
	srv := newFake(t)
	srv.SetMode(pcptest.NATPMPOnly)
	c := newClient(t, srv, nil)
	a, err := c.ExternalAddr(ctxT(t, 3*time.Second))
	if err != nil || a != netip.MustParseAddr("203.0.113.1") {
		t.Fatalf("%v %v", a, err)
	}
}

// TestExternalAddrProbe: with PCP, a short UDP MAP of the client socket's
// own port (not the discard port, which a CGN with miniupnpd's permission
// rules refuses), deleted afterwards (§11.6).
func TestExternalAddrProbe(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, func(cfg *Config) { cfg.Linger = time.Minute })
	a, err := c.ExternalAddr(ctxT(t, 3*time.Second))
	if err != nil || a != netip.MustParseAddr("203.0.113.1") {
		t.Fatalf("%v %v", a, err)
	}
	eventually(t, 2*time.Second, func() bool { return srv.Received() == 2 && srv.Mappings() == 0 }, "probe not deleted")
	reqs := srv.Requests()
	q := reqs[0].PCP
	if q.Map.Protocol != 17 || q.Map.InternalPort < 1024 || q.Map.InternalPort != reqs[0].From.Port() || q.Lifetime != probeLifetime {
		t.Errorf("probe %+v lifetime %d from %v", q.Map, q.Lifetime, reqs[0].From)
	}
	if d := reqs[1].PCP; d.Lifetime != 0 || d.Map.InternalPort != q.Map.InternalPort || d.Map.Nonce != q.Map.Nonce {
		t.Errorf("delete %+v lifetime %d", d.Map, d.Lifetime)
	}
	// Known now: no more requests.
	if _, err := c.ExternalAddr(ctxT(t, time.Second)); err != nil || srv.Received() != 2 {
		t.Errorf("second call: %v, %d requests", err, srv.Received())
	}
}

// TestExternalAddrProbeAbandoned: a caller whose deadline ends before the
// probe is answered (a LAN request's short bound) leaves no mapping at
// the server: the answer that comes after it is given back all the same.
// Before, only the caller that got the answer deleted it, and the probe
// stayed at the CGN for its lifetime (an extra DNAT for two minutes).
func TestExternalAddrProbeAbandoned(t *testing.T) {
	srv := newFake(t)
	release := make(chan struct{})
	srv.SetOnMap(func(pcptest.MapEvent) { <-release })
	c := newClient(t, srv, func(cfg *Config) { cfg.Linger = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.ExternalAddr(ctx); !errors.Is(err, ErrTimeout) {
		t.Fatalf("ExternalAddr before the answer: %v, want ErrTimeout", err)
	}
	srv.SetOnMap(nil)
	close(release)
	eventually(t, 3*time.Second, func() bool { return srv.Received() >= 2 && srv.Mappings() == 0 }, "abandoned probe not deleted")
	reqs := srv.Requests()
	if d := reqs[len(reqs)-1].PCP; d.Lifetime != 0 || d.Map.Nonce != reqs[0].PCP.Map.Nonce {
		t.Errorf("last request %+v lifetime %d, want the probe's delete", d.Map, d.Lifetime)
	}
	// The answer taught the address: asked again, no new probe.
	n := srv.Received()
	if a, err := c.ExternalAddr(ctxT(t, time.Second)); err != nil || a != netip.MustParseAddr("203.0.113.1") || srv.Received() != n {
		t.Errorf("asked again: %v %v, %d requests (was %d)", a, err, srv.Received(), n)
	}
}

// TestConcurrent: many Map calls at once, one of them on a port whose
// answers never come; the others are not held up.
func TestConcurrent(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	start := time.Now()
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Map(ctxT(t, 5*time.Second), MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(10000+i)), Lifetime: 600})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if srv.Mappings() != 50 {
		t.Errorf("%d mappings", srv.Mappings())
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("took %v", d)
	}
	// Identical concurrent calls share one transaction (one nonce).
	srv.DropNext(1)
	var got [4]MapResult
	var wg2 sync.WaitGroup
	for i := range got {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			got[i], _ = c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 17, Internal: netip.MustParseAddrPort("127.0.0.1:20000"), Lifetime: 600})
		}()
	}
	wg2.Wait()
	for i := range got {
		if got[i].Nonce != got[0].Nonce || got[i].Nonce == (pcp.Nonce{}) {
			t.Errorf("call %d: %+v", i, got[i])
		}
	}
}

// TestCloseNoLeak: Close is idempotent, makes pending calls return
// ErrClosed, and leaves no goroutine behind.
func TestCloseNoLeak(t *testing.T) {
	srv := newFake(t)
	base := runtime.NumGoroutine()
	ann := freeUDPPort(t)
	c, err := New(Config{Servers: []netip.AddrPort{srv.Addr()}, IRT: 20 * time.Millisecond, ListenAnnounce: true, AnnounceAddr4: ann.String(), AnnounceAddr6: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 60}); err != nil {
		t.Fatal(err)
	}
	srv.SetMode(pcptest.Silent)
	done := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			_, err := c.Map(context.Background(), MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(90+i)), Lifetime: 60})
			done <- err
		}()
	}
	eventually(t, 2*time.Second, func() bool { return srv.Received() >= 4 }, "requests not sent")
	c.Close()
	c.Close()
	for i := 0; i < 3; i++ {
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("pending call: %v", err)
		}
	}
	if _, ok := <-c.Events(); ok {
		// drain: events may hold a buffered one; the channel must end.
		for range c.Events() {
		}
	}
	if _, err := c.Map(ctxT(t, time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 60}); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v", err)
	}
	if n := goroutinesSettle(base); n > base {
		t.Errorf("%d goroutines after Close, %d before", n, base)
	}
}

// TestEventsDropOldest: a full event buffer drops the oldest event and
// never blocks the client.
func TestEventsDropOldest(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, func(cfg *Config) { cfg.EventBuffer = 2 })
	for i := 0; i < 5; i++ {
		c.emit(Event{Kind: EventStateLost, External: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})})
	}
	a, b := <-c.Events(), <-c.Events()
	if a.External.As4()[3] != 3 || b.External.As4()[3] != 4 {
		t.Errorf("kept %v %v, want the newest two", a.External, b.External)
	}
}

// TestExternalAddrProbeB4: DS-Lite, the AFTR reached over IPv6: the
// external-address probe maps the B4's IPv4 address with THIRD_PARTY
// (a MAP of the client's IPv6 address would ask for an IPv6 pinhole),
// and the answer's IPv4 external address is taken.
func TestExternalAddrProbeB4(t *testing.T) {
	aftr := netip.MustParseAddrPort("[2001:db8:ff::1]:5351")
	mc := newMemConn(aftr)
	c, err := New(Config{Servers: []netip.AddrPort{aftr}, WANAddr4: netip.MustParseAddr("192.0.0.2"), IRT: time.Second, Linger: -1,
		dial: func(netip.AddrPort) (packetConn, netip.Addr, error) {
			return mc, netip.MustParseAddr("2001:db8:ff::2"), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	type result struct {
		a   netip.Addr
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := c.ExternalAddr(ctxT(t, 3*time.Second))
		done <- result{a, err}
	}()
	var q pcp.Request
	eventually(t, 2*time.Second, func() bool { return len(mc.packets()) > 0 }, "no probe sent")
	q = parseReq(t, mc.packets()[0].b)
	var tp netip.Addr
	for _, o := range q.Options {
		if o.Code == pcp.OptThirdParty {
			tp = o.ThirdParty.Unmap()
		}
	}
	if q.Client != netip.MustParseAddr("2001:db8:ff::2") || tp != netip.MustParseAddr("192.0.0.2") || q.Map.ExternalAddr != netip.IPv4Unspecified() {
		t.Fatalf("probe from %v, THIRD_PARTY %v, suggested %v", q.Client, tp, q.Map.ExternalAddr)
	}
	resp := pcp.Response{Version: pcp.Version, Opcode: pcp.OpMap, Lifetime: q.Lifetime, Epoch: 10,
		Map:     &pcp.Map{Nonce: q.Map.Nonce, Protocol: 17, InternalPort: q.Map.InternalPort, ExternalPort: 40000, ExternalAddr: netip.MustParseAddr("203.0.113.1")},
		Options: []pcp.Option{{Code: pcp.OptThirdParty, ThirdParty: tp}}}
	mc.in <- resp.AppendMarshal(nil)
	if r := <-done; r.err != nil || r.a != netip.MustParseAddr("203.0.113.1") {
		t.Fatalf("ExternalAddr = %v, %v", r.a, r.err)
	}
}
