package upstream

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/pcpgw/pcpgw/igdclient"
	"github.com/pcpgw/pcpgw/igdclient/igdtest"
	"github.com/pcpgw/pcpgw/pcp"
)

// The CPE's "WAN address" in these tests: the fakes listen on 127.0.0.1,
// the WAN subnet is 127.0.0.0/29.
var (
	igdWAN    = netip.MustParseAddr("127.0.0.2")
	igdClock  = time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)
	netipComp = cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})
)

func newIGDFake(t *testing.T, opt igdtest.Options) *igdtest.Server {
	t.Helper()
	f, err := igdtest.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// newTestIGD discovers the fake f and makes its backend (checks every
// hour and no NOTIFY listener unless mod says otherwise).
func newTestIGD(t *testing.T, f *igdtest.Server, mod ...func(*IGDConfig)) *IGD {
	t.Helper()
	cfg := IGDConfig{
		Client: igdclient.Config{
			Subnets:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/29")},
			Local:    netip.MustParseAddr("127.0.0.1"),
			SSDPAddr: f.SSDPAddr(),
			Wait:     time.Second,
			Timeout:  2 * time.Second,
		},
		NotifyAddr:    "-",
		CheckInterval: time.Hour,
		Now:           func() time.Time { return igdClock },
	}
	var next atomic.Int32
	cfg.Rand = func(n int) int { return int(next.Add(1)) * 1000 % n } // ports 2024, 3024, ...
	for _, m := range mod {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g, err := DiscoverIGD(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func tcpReq(port, ext uint16) MapRequest {
	return MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(igdWAN, port), SuggestedExternal: netip.AddrPortFrom(netip.IPv4Unspecified(), ext),
		Lifetime: 3600, Description: "test app"}
}

// waitEvent reads events until one of kind comes (failing after d).
func waitEvent(t *testing.T, g *IGD, kind EventKind, d time.Duration) Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-g.Events():
			if !ok {
				t.Fatalf("events closed waiting for %v", kind)
			}
			if ev.Kind == kind {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no event %v within %v", kind, d)
		}
	}
}

// noEvent checks that no event is pending.
func noEvent(t *testing.T, g *IGD) {
	t.Helper()
	select {
	case ev := <-g.Events():
		t.Errorf("unexpected event %+v", ev)
	default:
	}
}

// poll waits up to 2 s for cond (checked every 10 ms).
func poll(cond func() bool) bool {
	for range 200 {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

func lastArgs(f *igdtest.Server, action string) map[string]string {
	rs := f.Requests()
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Action == action {
			return rs[i].Args
		}
	}
	return nil
}

func TestIGDMap(t *testing.T) {
	for _, v := range []int{1, 2} {
		t.Run(map[int]string{1: "IGD:1", 2: "IGD:2"}[v], func(t *testing.T) {
			f := newIGDFake(t, igdtest.Options{Version: v})
			g := newTestIGD(t, f)
			ctx := tctx(t)
			r := tcpReq(28081, 28081)
			r.PreferFailure = true
			r.Nonce = pcp.Nonce{1, 2, 3}
			res, err := g.Map(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			want := MapResult{External: netip.MustParseAddrPort("203.0.113.1:28081"), Lifetime: 3600, Nonce: r.Nonce,
				Server: g.device().Host, At: igdClock}
			if d := cmp.Diff(want, res, netipComp); d != "" {
				t.Errorf("result (-want +got):\n%s", d)
			}
			wantArgs := map[string]string{"NewRemoteHost": "", "NewExternalPort": "28081", "NewProtocol": "TCP", "NewInternalPort": "28081",
				"NewInternalClient": "127.0.0.2", "NewEnabled": "1", "NewPortMappingDescription": "test app", "NewLeaseDuration": "3600"}
			if d := cmp.Diff(wantArgs, lastArgs(f, "AddPortMapping")); d != "" {
				t.Errorf("AddPortMapping (-want +got):\n%s", d)
			}
			// A renewal re-adds the same mapping (no AddAny on IGD:2).
			r.PreferFailure = false
			r.SuggestedExternal = res.External
			if res2, err := g.Map(ctx, r); err != nil || res2.External != res.External {
				t.Errorf("renewal = %v, %v", res2.External, err)
			}
			if f.Count("AddPortMapping") != 2 || f.Count("AddAnyPortMapping") != 0 {
				t.Errorf("AddPortMapping %d, AddAnyPortMapping %d; want 2, 0", f.Count("AddPortMapping"), f.Count("AddAnyPortMapping"))
			}
			// As long as the box gives: 604800 s.
			r2 := tcpReq(28090, 28090)
			r2.Lifetime = math.MaxUint32
			res4, err := g.Map(ctx, r2)
			action := "AddAnyPortMapping"
			if v == 1 {
				action = "AddPortMapping"
			}
			if err != nil || res4.Lifetime != igdMaxLease || lastArgs(f, action)["NewLeaseDuration"] != "604800" {
				t.Errorf("MaxUint32 lifetime: %+v, %v, %s lease %q", res4, err, action, lastArgs(f, action)["NewLeaseDuration"])
			}
			// Another client holds 28085: without PreferFailure another
			// port; with it, CANNOT_PROVIDE_EXTERNAL.
			f.AddMapping(igdtest.Mapping{ExternalPort: 28085, Protocol: "TCP", InternalPort: 80, Client: "127.0.0.3", Enabled: true})
			r3 := tcpReq(28085, 28085)
			res3, err := g.Map(ctx, r3)
			if err != nil {
				t.Fatal(err)
			}
			wantPort := uint16(28086) // AddAnyPortMapping moves up
			if v == 1 {
				wantPort = 1024 + 1000 // the first random pick
			}
			if res3.External.Port() != wantPort {
				t.Errorf("taken port: got %v, want port %d", res3.External, wantPort)
			}
			if m, ok := f.Mapping("", wantPort, "TCP"); !ok || m.Client != "127.0.0.2" || m.InternalPort != 28085 {
				t.Errorf("box holds %+v, %v", m, ok)
			}
			r3.PreferFailure = true
			r3.Internal = netip.AddrPortFrom(igdWAN, 28099)
			_, err = g.Map(ctx, r3)
			var ue *Error
			if !errors.As(err, &ue) || ue.Code != pcp.CannotProvideExternal || ue.Kind != KindUPnP || ue.Detail != "UPnP error 718 ConflictInMappingEntry" ||
				ue.Lifetime == 0 || !ue.Until.Equal(igdClock.Add(time.Duration(ue.Lifetime)*time.Second)) {
				t.Errorf("PreferFailure on a taken port: %#v", err)
			}
			if m, _ := f.Mapping("", 28085, "TCP"); m.Client != "127.0.0.3" {
				t.Errorf("the other client's mapping was changed: %+v", m)
			}
		})
	}
}

func TestIGDRemoteHost(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{})
	g := newTestIGD(t, f)
	ctx := tctx(t)
	r := tcpReq(28081, 28081)
	r.PreferFailure = true
	r.Filters = []pcp.Filter{{Prefix: netip.MustParsePrefix("::ffff:198.51.100.7/128"), RemotePort: 443}}
	if _, err := g.Map(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got := lastArgs(f, "AddPortMapping")["NewRemoteHost"]; got != "198.51.100.7" {
		t.Errorf("NewRemoteHost %q", got)
	}
	// A prefix cannot be said: any remote host.
	r.Internal = netip.AddrPortFrom(igdWAN, 28082)
	r.SuggestedExternal = netip.AddrPortFrom(netip.IPv4Unspecified(), 28082)
	r.Filters = []pcp.Filter{{Prefix: netip.MustParsePrefix("198.51.100.0/24")}}
	if _, err := g.Map(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got := lastArgs(f, "AddPortMapping")["NewRemoteHost"]; got != "" {
		t.Errorf("NewRemoteHost %q for a prefix", got)
	}
	// The delete names the same remote host.
	r.Internal = netip.AddrPortFrom(igdWAN, 28081)
	r.SuggestedExternal = netip.MustParseAddrPort("203.0.113.1:28081")
	if err := g.Delete(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Mapping("198.51.100.7", 28081, "TCP"); ok {
		t.Error("the remote host's mapping is still there")
	}
	// A box that takes no remote host (726): asked again without.
	f2 := newIGDFake(t, igdtest.Options{WildcardRemoteOnly: true})
	g2 := newTestIGD(t, f2)
	r.Filters = []pcp.Filter{{Prefix: netip.MustParsePrefix("198.51.100.7/32")}}
	if _, err := g2.Map(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, ok := f2.Mapping("", 28081, "TCP"); !ok || f2.Count("AddPortMapping") != 2 {
		t.Errorf("726 not handled: %+v, %d adds", f2.Mappings(), f2.Count("AddPortMapping"))
	}
}

// TestIGDOnlyPermanent: an IGD:1 box answering 725 gets lease 0, and the
// core is given the re-check interval to renew in.
func TestIGDOnlyPermanent(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{Version: 1, OnlyPermanent: true})
	g := newTestIGD(t, f, func(c *IGDConfig) { c.PermanentRecheck = 20 * time.Minute })
	ctx := tctx(t)
	res, err := g.Map(ctx, tcpReq(28081, 28081))
	if err != nil {
		t.Fatal(err)
	}
	if res.Lifetime != 1200 || lastArgs(f, "AddPortMapping")["NewLeaseDuration"] != "0" || f.Count("AddPortMapping") != 2 {
		t.Errorf("result %+v, last lease %q, %d adds", res, lastArgs(f, "AddPortMapping")["NewLeaseDuration"], f.Count("AddPortMapping"))
	}
	// Remembered: the next one asks for 0 at once.
	if _, err := g.Map(ctx, tcpReq(28082, 28082)); err != nil {
		t.Fatal(err)
	}
	if f.Count("AddPortMapping") != 3 {
		t.Errorf("%d adds, want 3", f.Count("AddPortMapping"))
	}
}

// TestIGDConflictOnReAdd: a box that answers 718 to a re-add of pcpgw's
// own mapping: GetSpecificPortMappingEntry shows it is pcpgw's, which
// counts as success; with less than half its lease left it is made again.
func TestIGDConflictOnReAdd(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{Version: 1, ConflictOnReAdd: true})
	g := newTestIGD(t, f)
	ctx := tctx(t)
	r := tcpReq(28081, 28081)
	res, err := g.Map(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	r.SuggestedExternal = res.External
	res2, err := g.Map(ctx, r)
	if err != nil || res2.External != res.External || res2.Lifetime != 3600 {
		t.Fatalf("renewal: %+v, %v", res2, err)
	}
	if f.Count("GetSpecificPortMappingEntry") != 1 {
		t.Errorf("GetSpecificPortMappingEntry asked %d times", f.Count("GetSpecificPortMappingEntry"))
	}
	// 100 s left of 3600: deleted and made again.
	m, _ := f.Mapping("", 28081, "TCP")
	m.Lease = 100
	f.AddMapping(m)
	res3, err := g.Map(ctx, r)
	if err != nil || res3.Lifetime != 3600 || f.Count("DeletePortMapping") != 1 {
		t.Fatalf("renewal near the end: %+v, %v, %d deletes", res3, err, f.Count("DeletePortMapping"))
	}
	if m, ok := f.Mapping("", 28081, "TCP"); !ok || m.Lease != 3600 {
		t.Errorf("box holds %+v, %v", m, ok)
	}
	// Another client's 718 is not taken for pcpgw's.
	f.AddMapping(igdtest.Mapping{ExternalPort: 28090, Protocol: "TCP", InternalPort: 28090, Client: "127.0.0.3"})
	r4 := tcpReq(28090, 28090)
	r4.PreferFailure = true
	var ue *Error
	if _, err := g.Map(ctx, r4); !errors.As(err, &ue) || ue.Code != pcp.CannotProvideExternal {
		t.Errorf("another client's port: %v", err)
	}
}

func TestIGDRenewalAfterLoss(t *testing.T) {
	// The box lost the mapping and another client took the port: the
	// renewal (no PreferFailure) takes another port.
	f := newIGDFake(t, igdtest.Options{Version: 2})
	g := newTestIGD(t, f)
	ctx := tctx(t)
	r := tcpReq(28081, 28081)
	res, err := g.Map(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	f.Reboot(false)
	f.AddMapping(igdtest.Mapping{ExternalPort: 28081, Protocol: "TCP", InternalPort: 1, Client: "127.0.0.3"})
	r.SuggestedExternal = res.External
	res2, err := g.Map(ctx, r)
	if err != nil || res2.External.Port() == 28081 {
		t.Errorf("renewal = %v, %v; want another port", res2.External, err)
	}
}

func TestIGDNoAddAny(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{Version: 2})
	g := newTestIGD(t, f)
	f.Fail("AddAnyPortMapping", 602, 1)
	if _, err := g.Map(tctx(t), tcpReq(28081, 28081)); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Map(tctx(t), tcpReq(28082, 28082)); err != nil {
		t.Fatal(err)
	}
	if f.Count("AddAnyPortMapping") != 1 || f.Count("AddPortMapping") != 2 {
		t.Errorf("AddAny %d, Add %d; want 1, 2", f.Count("AddAnyPortMapping"), f.Count("AddPortMapping"))
	}
}

func TestIGDPortTriesBounded(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{Version: 1})
	g := newTestIGD(t, f, func(c *IGDConfig) { c.PortTries = 3 })
	f.Fail("AddPortMapping", 718, 10)
	_, err := g.Map(tctx(t), tcpReq(28081, 28081))
	var ue *Error
	if !errors.As(err, &ue) || ue.Code != pcp.NoResources || !strings.Contains(ue.Detail, "on 4 ports") {
		t.Errorf("Map = %v", err)
	}
	if n := f.Count("AddPortMapping"); n != 4 {
		t.Errorf("%d AddPortMapping, want 4", n)
	}
}

func TestIGDErrors(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{Version: 1})
	g := newTestIGD(t, f)
	ctx := tctx(t)
	for _, tc := range []struct {
		code int
		want pcp.ResultCode // 0: a plain error (no answer: retried)
	}{
		{606, pcp.NotAuthorized},
		{729, pcp.NotAuthorized},
		{716, pcp.UnsuppOption},
		{401, pcp.UnsuppOption},
		{728, pcp.NoResources},
		{724, pcp.CannotProvideExternal},
		{402, pcp.MalformedRequest},
		{899, pcp.NetworkFailure},
		{501, 0},
	} {
		f.Fail("AddPortMapping", tc.code, 1)
		r := tcpReq(28081, 28081)
		r.PreferFailure = true
		_, err := g.Map(ctx, r)
		var ue *Error
		switch {
		case tc.want == 0 && (err == nil || errors.As(err, &ue)):
			t.Errorf("%d: %v; want a plain error", tc.code, err)
		case tc.want != 0 && (!errors.As(err, &ue) || ue.Code != tc.want || ue.Kind != KindUPnP || ue.Op != "map" ||
			!strings.HasPrefix(ue.Detail, "UPnP error ") || ue.Until.Sub(igdClock) != time.Duration(ue.Lifetime)*time.Second || ue.Lifetime == 0):
			t.Errorf("%d: %#v; want %v", tc.code, err, tc.want)
		}
	}
	// No answer at all: a plain error wrapping igdclient.ErrNoAnswer.
	f.SetDown(true)
	_, err := g.Map(ctx, tcpReq(28081, 28081))
	var ue *Error
	if !errors.Is(err, igdclient.ErrNoAnswer) || errors.As(err, &ue) {
		t.Errorf("down: %v", err)
	}
	waitEvent(t, g, EventUnreachable, time.Second)
	if g.Info().Reachable {
		t.Error("Info().Reachable while down")
	}
	f.SetDown(false)
	if _, err := g.ExternalAddr(ctx); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, g, EventReachable, time.Second)
}

func TestIGDRequestChecks(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{})
	g := newTestIGD(t, f)
	ctx := tctx(t)
	var ue *Error
	for name, tc := range map[string]struct {
		r    MapRequest
		code pcp.ResultCode
	}{
		"third party outside": {MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("192.0.2.100:8080"), ThirdParty: true, Lifetime: 60}, pcp.NotAuthorized},
		"internal outside":    {MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("192.0.2.100:8080"), Lifetime: 60}, pcp.NotAuthorized},
		"IPv6":                {MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("[2001:db8:1::100]:8080"), Lifetime: 60}, pcp.UnsuppOption},
		"SCTP":                {MapRequest{Protocol: 132, Internal: netip.AddrPortFrom(igdWAN, 1), Lifetime: 60}, pcp.UnsuppProtocol},
		"other external addr": {MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(igdWAN, 1), SuggestedExternal: netip.MustParseAddrPort("198.51.100.1:1"), PreferFailure: true, Lifetime: 60}, pcp.CannotProvideExternal},
	} {
		if _, err := g.Map(ctx, tc.r); !errors.As(err, &ue) || ue.Code != tc.code || ue.Detail == "" {
			t.Errorf("%s: %v, want %v", name, err, tc.code)
		}
	}
	_, err := g.Map(ctx, MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("192.0.2.100:8080"), ThirdParty: true, Lifetime: 60})
	if !errors.As(err, &ue) || !strings.Contains(ue.Detail, "third-party") || !strings.Contains(ue.Detail, "127.0.0.0/29") {
		t.Errorf("third-party detail: %v", err)
	}
	if n := f.Count("AddPortMapping") + f.Count("AddAnyPortMapping"); n != 0 {
		t.Errorf("%d refused requests reached the box", n)
	}
	// A third-party mapping for another host of the WAN subnet is made.
	r := MapRequest{Protocol: 17, Internal: netip.MustParseAddrPort("127.0.0.5:5000"), ThirdParty: true, Lifetime: 60, PreferFailure: true,
		SuggestedExternal: netip.MustParseAddrPort("0.0.0.0:5000")}
	if _, err := g.Map(ctx, r); err != nil {
		t.Fatal(err)
	}
	if m, ok := f.Mapping("", 5000, "UDP"); !ok || m.Client != "127.0.0.5" {
		t.Errorf("box holds %+v, %v", m, ok)
	}
}

func TestIGDExternal(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{})
	g := newTestIGD(t, f)
	ctx := tctx(t)
	if a, err := g.ExternalAddr(ctx); err != nil || a != netip.MustParseAddr("203.0.113.1") {
		t.Fatalf("ExternalAddr = %v, %v", a, err)
	}
	noEvent(t, g)
	f.SetExternal("198.51.100.9")
	if a, err := g.ExternalAddr(ctx); err != nil || a != netip.MustParseAddr("198.51.100.9") {
		t.Fatalf("ExternalAddr = %v, %v", a, err)
	}
	if ev := waitEvent(t, g, EventExternalChanged, time.Second); ev.External != netip.MustParseAddr("198.51.100.9") || ev.Upstream != KindUPnP || ev.Spread {
		t.Errorf("event %+v", ev)
	}
	var ue *Error
	for _, bad := range []string{"", "0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "2001:db8::1"} {
		f.SetExternal(bad)
		if a, err := g.ExternalAddr(ctx); !errors.As(err, &ue) || ue.Code != pcp.NetworkFailure {
			t.Errorf("external %q: %v, %v", bad, a, err)
		}
	}
	// A new backend whose box has no address makes no mapping.
	f2 := newIGDFake(t, igdtest.Options{External: "0.0.0.0"})
	g2 := newTestIGD(t, f2)
	if _, err := g2.Map(ctx, tcpReq(1, 1)); !errors.As(err, &ue) || f2.Count("AddPortMapping")+f2.Count("AddAnyPortMapping") != 0 {
		t.Errorf("Map without an external address: %v", err)
	}
}

func TestIGDDelete(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{})
	g := newTestIGD(t, f)
	ctx := tctx(t)
	res, err := g.Map(ctx, tcpReq(28081, 28081))
	if err != nil {
		t.Fatal(err)
	}
	r := tcpReq(28081, 0)
	r.SuggestedExternal = res.External
	if err := g.Delete(ctx, r); err != nil {
		t.Fatal(err)
	}
	if len(f.Mappings()) != 0 {
		t.Errorf("box holds %+v", f.Mappings())
	}
	if err := g.Delete(ctx, r); err != nil {
		t.Errorf("deleting again: %v", err)
	}
	// Gone at the box already (714 to the delete itself): success.
	if _, err := g.Map(ctx, tcpReq(28082, 28082)); err != nil {
		t.Fatal(err)
	}
	f.Fail("DeletePortMapping", 714, 1)
	if err := g.Delete(ctx, tcpReq(28082, 28082)); err != nil {
		t.Errorf("714: %v", err)
	}
	// Another client's mapping on that port is left alone.
	f.AddMapping(igdtest.Mapping{ExternalPort: 28083, Protocol: "TCP", InternalPort: 28083, Client: "127.0.0.3"})
	if err := g.Delete(ctx, tcpReq(28083, 28083)); err != nil {
		t.Errorf("another's: %v", err)
	}
	if _, ok := f.Mapping("", 28083, "TCP"); !ok {
		t.Error("another client's mapping was deleted")
	}
	// Found by the internal endpoint when the external port is not
	// given.
	res, err = g.Map(ctx, tcpReq(28084, 28084))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Delete(ctx, tcpReq(28084, 0)); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Mapping("", res.External.Port(), "TCP"); ok {
		t.Error("not deleted by internal endpoint")
	}
	// Refusals come back in PCP's terms, and the mapping is kept.
	if _, err := g.Map(ctx, tcpReq(28085, 28085)); err != nil {
		t.Fatal(err)
	}
	var ue *Error
	f.Fail("DeletePortMapping", 606, 1)
	if err := g.Delete(ctx, tcpReq(28085, 28085)); !errors.As(err, &ue) || ue.Code != pcp.NotAuthorized || ue.Op != "delete" {
		t.Errorf("delete refused: %v", err)
	}
	f.Fail("GetSpecificPortMappingEntry", 501, 1)
	if err := g.Delete(ctx, tcpReq(28085, 28085)); err == nil || errors.As(err, &ue) {
		t.Errorf("GetSpecificPortMappingEntry failing: %v, want a plain error", err)
	}
	if _, ok := f.Mapping("", 28085, "TCP"); !ok {
		t.Error("deleted despite the refusals")
	}
	// A box without GetSpecificPortMappingEntry: what the record holds
	// is deleted.
	f.Fail("GetSpecificPortMappingEntry", 401, 1)
	if err := g.Delete(ctx, tcpReq(28085, 28085)); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Mapping("", 28085, "TCP"); ok {
		t.Error("not deleted on a box without GetSpecificPortMappingEntry")
	}
}

func TestIGDReleaseAll(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{})
	g := newTestIGD(t, f)
	ctx := tctx(t)
	for _, p := range []uint16{28081, 28082} {
		if _, err := g.Map(ctx, tcpReq(p, p)); err != nil {
			t.Fatal(err)
		}
	}
	u := tcpReq(28083, 28083)
	u.Protocol = 17
	if _, err := g.Map(ctx, u); err != nil {
		t.Fatal(err)
	}
	f.AddMapping(igdtest.Mapping{ExternalPort: 9, Protocol: "TCP", InternalPort: 9, Client: "127.0.0.3"})
	if err := g.ReleaseAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.Mappings(); len(got) != 1 || got[0].Client != "127.0.0.3" {
		t.Errorf("box holds %+v; want only the other client's", got)
	}
}

// TestIGDStateLostByCheck: the periodic check finds a mapping missing.
func TestIGDStateLostByCheck(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{})
	g := newTestIGD(t, f, func(c *IGDConfig) { c.CheckInterval = 50 * time.Millisecond })
	ctx := tctx(t)
	if _, err := g.Map(ctx, tcpReq(28081, 28081)); err != nil {
		t.Fatal(err)
	}
	// Checks that find the mapping say nothing.
	for f.Count("GetSpecificPortMappingEntry") < 2 {
		select {
		case ev := <-g.Events():
			t.Fatalf("event %+v while the box holds the mapping", ev)
		case <-ctx.Done():
			t.Fatal("no check within 10 s")
		case <-time.After(10 * time.Millisecond):
		}
	}
	f.Reboot(false)
	if ev := waitEvent(t, g, EventStateLost, 5*time.Second); ev.Spread || ev.Upstream != KindUPnP {
		t.Errorf("event %+v", ev)
	}
	if len(g.maps) != 0 {
		t.Errorf("record kept %d mappings", len(g.maps))
	}
}

// TestIGDStateLostByNotify: a NOTIFY with a new BOOTID makes the backend
// ask at once; the answer (the mapping is missing) is what counts.
func TestIGDStateLostByNotify(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{BootID: 10})
	g := newTestIGD(t, f, func(c *IGDConfig) { c.NotifyAddr = "127.0.0.1:0" })
	ctx := tctx(t)
	if _, err := g.Map(ctx, tcpReq(28081, 28081)); err != nil {
		t.Fatal(err)
	}
	dst := g.notify.LocalAddr()
	// The same BOOTID again: nothing asked.
	if err := f.Announce(dst, igdclient.NTSAlive); err != nil {
		t.Fatal(err)
	}
	before := f.Count("GetExternalIPAddress")
	if !poll(func() bool { return g.c.Stats().Notifies >= 3 }) {
		t.Fatal("the NOTIFYs did not arrive")
	}
	if f.Count("GetExternalIPAddress") != before {
		t.Error("a repeated alive made the backend ask")
	}
	// A reboot with a new BOOTID: asked, state lost.
	f.Reboot(false)
	if err := f.Announce(dst, igdclient.NTSAlive); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, g, EventStateLost, 5*time.Second)
	// Byebye then alive with the same BOOTID (a box that keeps it).
	if _, err := g.Map(ctx, tcpReq(28082, 28082)); err != nil {
		t.Fatal(err)
	}
	f.DeleteMapping("", 28082, "TCP")
	g.mu.Lock()
	g.lastKick = time.Time{} // the 5 s gap between NOTIFY checks
	g.mu.Unlock()
	f.Announce(dst, igdclient.NTSByeBye)
	f.Announce(dst, igdclient.NTSAlive)
	waitEvent(t, g, EventStateLost, 5*time.Second)
}

// TestIGDSpoofedByeByeKeepsState (issue 18 §2): a byebye then an alive
// with the box's address and BOOTID, while the box's table is intact (a
// forged pair, or a box that only re-announced), makes the backend check
// with the box, and the box's answer says nothing was lost: no
// EventStateLost, nothing made again.
func TestIGDSpoofedByeByeKeepsState(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{BootID: 10})
	g := newTestIGD(t, f, func(c *IGDConfig) { c.NotifyAddr = "127.0.0.1:0" })
	if _, err := g.Map(tctx(t), tcpReq(28081, 28081)); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.lastKick = time.Time{} // the 5 s gap between NOTIFY checks
	g.mu.Unlock()
	checks, adds := f.Count("GetSpecificPortMappingEntry"), f.Count("AddPortMapping")
	dst := g.notify.LocalAddr()
	f.Announce(dst, igdclient.NTSByeBye)
	f.Announce(dst, igdclient.NTSAlive)
	if !poll(func() bool { return f.Count("GetSpecificPortMappingEntry") > checks }) {
		t.Fatal("byebye then alive: the backend did not check with the box")
	}
	timer := time.NewTimer(500 * time.Millisecond)
	defer timer.Stop()
	for {
		select {
		case ev := <-g.Events():
			if ev.Kind == EventStateLost {
				t.Fatalf("state lost on a byebye/alive pair while the box's table is intact: %+v", ev)
			}
		case <-timer.C:
			if n := f.Count("AddPortMapping"); n != adds {
				t.Errorf("%d AddPortMapping after the pair, want none", n-adds)
			}
			return
		}
	}
}

func TestIGDNotifyFromElsewhere(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{BootID: 10})
	other := newIGDFake(t, igdtest.Options{Host: "127.0.0.3", BootID: 99})
	g := newTestIGD(t, f, func(c *IGDConfig) { c.NotifyAddr = "127.0.0.1:0" })
	before := f.Count("GetExternalIPAddress")
	if err := other.Announce(g.notify.LocalAddr(), igdclient.NTSAlive); err != nil {
		t.Fatal(err)
	}
	if !poll(func() bool { return g.c.Stats().Notifies >= 3 }) {
		t.Fatal("the other device's NOTIFYs did not arrive")
	}
	if f.Count("GetExternalIPAddress") != before || other.Count("desc") != 0 {
		t.Error("another device's announcement made the backend ask")
	}
}

// TestIGDRelocated: the box comes back from a reboot on another HTTP
// port; the check finds it with a unicast M-SEARCH and goes on there.
func TestIGDRelocated(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{})
	g := newTestIGD(t, f, func(c *IGDConfig) { c.CheckInterval = 50 * time.Millisecond })
	ctx := tctx(t)
	if _, err := g.Map(ctx, tcpReq(28081, 28081)); err != nil {
		t.Fatal(err)
	}
	old := g.Info().Address
	if err := f.Reboot(true); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, g, EventStateLost, 5*time.Second)
	if in := g.Info(); in.Address == old || in.Device.Location != f.Location() {
		t.Errorf("still at %s (%s), box at %s", in.Address, in.Device.Location, f.Location())
	}
}

func TestIGDInfo(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{Version: 2})
	g := newTestIGD(t, f)
	if _, err := g.ExternalAddr(tctx(t)); err != nil {
		t.Fatal(err)
	}
	in := g.Info()
	want := Info{Kind: KindUPnP, Address: strings.TrimSuffix(strings.TrimPrefix(f.Control(), "http://"), "/ctl/IPConn"), External: netip.MustParseAddr("203.0.113.1"),
		Device:    &Device{FriendlyName: "Fake box", Manufacturer: "igdtest", Model: "FakeBox", Service: igdclient.ServiceWANIP2, Location: f.Location()},
		Reachable: true, LastAnswer: igdClock, Servers: []string{f.Control()}, Protocol: "WANIPConnection:2"}
	if d := cmp.Diff(want, in, netipComp, cmpopts.IgnoreFields(Info{}, "Sent", "Received")); d != "" {
		t.Errorf("Info (-want +got):\n%s", d)
	}
	if in.Sent < 2 || in.Received != in.Sent {
		t.Errorf("Sent %d Received %d", in.Sent, in.Received)
	}
}

func TestDiscoverIGDNothing(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{})
	cfg := IGDConfig{Client: igdclient.Config{Subnets: []netip.Prefix{netip.MustParsePrefix("127.0.0.8/29")}, SSDPAddr: f.SSDPAddr(), Wait: 300 * time.Millisecond}}
	start := time.Now()
	b, err := IGDDiscoverer(cfg)(context.Background())
	if err == nil || b != nil {
		t.Fatalf("found %v, %v", b, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	if _, err := NewIGD(IGDConfig{}); err == nil {
		t.Error("NewIGD without a device")
	}
}

// TestIGDCloseWithEvents: Close with events pending and calls racing it
// neither blocks nor panics; Events is closed.
func TestIGDCloseWithEvents(t *testing.T) {
	f := newIGDFake(t, igdtest.Options{})
	g := newTestIGD(t, f, func(c *IGDConfig) { c.EventBuffer = 1 })
	f.SetDown(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5 {
			g.ExternalAddr(context.Background())
			f.SetDown(false)
			g.ExternalAddr(context.Background())
			f.SetDown(true)
		}
	}()
	g.Close()
	<-done
	for range g.Events() {
	}
	g.Close()
}
