package upstream

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient"
	"github.com/pcpgw/pcpgw/pcpclient/pcptest"
)

var wanCGN = netip.MustParseAddr("100.64.0.2")

func newServer(t *testing.T, mode pcptest.Mode) *pcptest.Server {
	t.Helper()
	s, err := pcptest.New()
	if err != nil {
		t.Fatal(err)
	}
	s.SetMode(mode)
	t.Cleanup(func() { s.Close() })
	return s
}

// fakeIGD is an IGD backend that maps everything as asked.
type fakeIGD struct {
	mu      sync.Mutex
	loc     string
	maps    int
	closed  bool
	events  chan Event
	release int
	ext     netip.Addr // the external address Info reports (zero: none)
}

func newFakeIGD(loc string) *fakeIGD { return &fakeIGD{loc: loc, events: make(chan Event, 4)} }

func (f *fakeIGD) Kind() Kind { return KindUPnP }
func (f *fakeIGD) Map(_ context.Context, r MapRequest) (MapResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maps++
	return MapResult{External: netip.AddrPortFrom(netip.MustParseAddr("203.0.113.1"), r.SuggestedExternal.Port()), Lifetime: 3600, At: time.Now()}, nil
}
func (f *fakeIGD) Delete(context.Context, MapRequest) error { return nil }
func (f *fakeIGD) ExternalAddr(context.Context) (netip.Addr, error) {
	return netip.MustParseAddr("203.0.113.1"), nil
}
func (f *fakeIGD) Events() <-chan Event { return f.events }
func (f *fakeIGD) Info() Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Info{Kind: KindUPnP, Address: "100.64.0.1:5000", External: f.ext, Device: &Device{FriendlyName: "ISP box", Location: f.loc}}
}
func (f *fakeIGD) ReleaseAll(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.release++
	return nil
}
func (f *fakeIGD) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.events)
	}
	return nil
}

// discover returns an IGD discovery that finds igd (nil: nothing, after
// the probe's time).
func discover(igd func() *fakeIGD) func(ctx context.Context) (Backend, error) {
	return func(ctx context.Context) (Backend, error) {
		if f := igd(); f != nil {
			return f, nil
		}
		<-ctx.Done()
		return nil, errors.New("no IGD answered")
	}
}

func startAuto(t *testing.T, cfg Config) *Auto {
	t.Helper()
	if cfg.ProbeTimeout == 0 {
		cfg.ProbeTimeout = 500 * time.Millisecond
	}
	if !cfg.WANAddr.IsValid() {
		cfg.WANAddr = wanCGN
	}
	a := NewAuto(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		a.Close()
	})
	return a
}

func kindWithin(t *testing.T, a *Auto, d time.Duration) Kind {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	k, _ := a.Kind(ctx)
	return k
}

func waitKindEvent(t *testing.T, a *Auto, want Kind) uint64 {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-a.Events():
			if ev.Kind == EventKindChanged && ev.Upstream == want {
				return ev.Gen
			}
		case <-timeout:
			t.Fatalf("no EventKindChanged to %v", want)
		}
	}
}

// TestDetect: each upstream found by what answers, by preference PCP,
// NAT-PMP, UPnP IGD, else none; a named PCP server that is down is kept.
func TestDetect(t *testing.T) {
	tests := []struct {
		name   string
		mode   pcptest.Mode
		igd    bool
		named  bool
		public bool
		want   Kind
	}{
		{name: "PCP server", mode: pcptest.Normal, igd: true, want: KindPCP},
		{name: "NAT-PMP gateway", mode: pcptest.NATPMPOnly, igd: true, want: KindNATPMP},
		{name: "UPnP IGD", mode: pcptest.Silent, igd: true, want: KindUPnP},
		{name: "nothing", mode: pcptest.Silent, want: KindNone},
		{name: "named PCP server down", mode: pcptest.Silent, named: true, want: KindPCP},
		{name: "public WAN address", mode: pcptest.Normal, igd: true, public: true, want: KindLocal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.mode)
			cfg := Config{routers: []netip.AddrPort{srv.Addr()}}
			if tt.named {
				cfg.routers, cfg.PCP.Servers = nil, []netip.AddrPort{srv.Addr()}
			}
			if tt.public {
				cfg.WANAddr = netip.MustParseAddr("203.0.113.2")
			}
			igd := newFakeIGD("http://100.64.0.1:5000/rootDesc.xml")
			cfg.DiscoverIGD = discover(func() *fakeIGD {
				if tt.igd {
					return igd
				}
				return nil
			})
			a := startAuto(t, cfg)
			if k := kindWithin(t, a, 5*time.Second); k != tt.want {
				t.Fatalf("kind %v, want %v", k, tt.want)
			}
			waitKindEvent(t, a, tt.want)
			in := a.Info()
			if in.Kind != tt.want || in.Detected.IsZero() {
				t.Errorf("info %+v", in)
			}
			if tt.want == KindNone && in.Advice == "" {
				t.Error("kind none without advice")
			}
			if tt.want != KindUPnP && tt.igd && !tt.public {
				igd.mu.Lock()
				closed := igd.closed
				igd.mu.Unlock()
				if !closed {
					t.Error("the IGD found but not chosen was not closed")
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, err := a.Map(ctx, MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 8080), SuggestedExternal: netip.AddrPortFrom(netip.Addr{}, 18080), Lifetime: 600})
			var ue *Error
			switch tt.want {
			case KindPCP:
				if tt.named {
					if err == nil || errors.As(err, &ue) {
						t.Errorf("map at a PCP server that is down: %v", err)
					}
				} else if err != nil {
					t.Errorf("map: %v", err)
				}
			case KindNATPMP, KindUPnP:
				if err != nil {
					t.Errorf("map: %v", err)
				}
			case KindNone, KindLocal:
				if !errors.As(err, &ue) || ue.Kind != tt.want || ue.Code != pcp.NetworkFailure {
					t.Errorf("map with kind %v: %v", tt.want, err)
				}
			}
		})
	}
}

// TestForced: the configured kind is used without probing the others.
func TestForced(t *testing.T) {
	srv := newServer(t, pcptest.NATPMPOnly)
	for _, want := range []Kind{KindNone, KindNATPMP, KindUPnP} {
		t.Run(want.String(), func(t *testing.T) {
			asked := false
			a := startAuto(t, Config{Want: want, PCP: pcpclient.Config{Servers: []netip.AddrPort{srv.Addr()}},
				DiscoverIGD: func(context.Context) (Backend, error) { asked = true; return newFakeIGD("http://x/"), nil }})
			if k := kindWithin(t, a, 5*time.Second); k != want {
				t.Fatalf("kind %v", k)
			}
			if asked != (want == KindUPnP) {
				t.Errorf("IGD discovery asked: %v", asked)
			}
		})
	}
	// Forced PCP against a NAT-PMP-only server falls back to NAT-PMP
	// behind the same kind (after its own NAT-PMP request is answered).
	a := startAuto(t, Config{Want: KindPCP, PCP: pcpclient.Config{Servers: []netip.AddrPort{srv.Addr()}, IRT: 50 * time.Millisecond}})
	if k := kindWithin(t, a, 5*time.Second); k != KindPCP {
		t.Fatalf("kind %v", k)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Map(ctx, MapRequest{Protocol: 17, Internal: netip.MustParseAddrPort("127.0.0.1:5000"), Lifetime: 600}); err != nil {
		t.Fatal(err)
	}
}

// TestKindWaitsForDetection: Kind blocks while detection runs, bounded by
// its context.
func TestKindWaitsForDetection(t *testing.T) {
	srv := newServer(t, pcptest.Silent)
	a := NewAuto(Config{routers: []netip.AddrPort{srv.Addr()}, WANAddr: wanCGN, ProbeTimeout: time.Second})
	t.Cleanup(func() { a.Close() })
	if k := kindWithin(t, a, 50*time.Millisecond); k != KindDetecting {
		t.Fatalf("kind %v before detection", k)
	}
	go a.Run(context.Background())
	start := time.Now()
	if k := kindWithin(t, a, 5*time.Second); k != KindNone {
		t.Fatalf("kind %v", k)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("Kind returned after %v, before detection could end", d)
	}
}

// TestSwitch: a PCP server appearing (DHCP's servers file) takes over from
// none; an IGD replaced by another one at another address takes over and
// the old one's mappings are released; a WAN address going public makes
// the upstream local.
func TestSwitch(t *testing.T) {
	silent := newServer(t, pcptest.Silent)
	file := filepath.Join(t.TempDir(), "pcp-servers")
	var mu sync.Mutex
	var igd *fakeIGD
	a := startAuto(t, Config{routers: []netip.AddrPort{silent.Addr()}, PCP: pcpclient.Config{ServersFile: file},
		DiscoverIGD: discover(func() *fakeIGD { mu.Lock(); defer mu.Unlock(); return igd }),
		Recheck:     time.Second})
	waitKindEvent(t, a, KindNone)

	srv := newServer(t, pcptest.Normal)
	if err := os.WriteFile(file, []byte(srv.Addr().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitKindEvent(t, a, KindPCP)
	if in := a.Info(); in.Address != srv.Addr().String() {
		t.Errorf("address %q, want %v", in.Address, srv.Addr())
	}

	// The servers file emptied and an IGD appears.
	first := newFakeIGD("http://100.64.0.1:5000/rootDesc.xml")
	mu.Lock()
	igd = first
	mu.Unlock()
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	g1 := waitKindEvent(t, a, KindUPnP)
	// Another box of the same kind: a new generation (the core makes the
	// mappings again), the old box closed but not emptied (it is gone or
	// rebooted; emptying it could remove what the new one made).
	second := newFakeIGD("http://100.64.0.9:5000/rootDesc.xml")
	mu.Lock()
	igd = second
	mu.Unlock()
	a.Redetect("test")
	if g2 := waitKindEvent(t, a, KindUPnP); g2 <= g1 {
		t.Errorf("generation %d after another box, was %d", g2, g1)
	}
	first.mu.Lock()
	if !first.closed || first.release != 0 {
		t.Errorf("replaced box: closed %v, released %d", first.closed, first.release)
	}
	first.mu.Unlock()
	// Another kind takes over: the box's mappings are given back first.
	a.SetWAN(netip.MustParseAddr("203.0.113.2"))
	waitKindEvent(t, a, KindLocal)
	second.mu.Lock()
	if !second.closed || second.release != 1 {
		t.Errorf("box replaced by another kind: closed %v, released %d", second.closed, second.release)
	}
	second.mu.Unlock()
}

// TestWANChangeSameBoxGivesBack (review finding): the CPE gets another
// WAN address behind the same ISP box: the box's entries made for the old
// address are given back before the mappings are asked for again (else
// they forward to the old address for their lease, forever on a box that
// takes lease 0 only, and hold the ports: 718 for the exact ones). A new
// WAN address behind another box gives nothing back (checked in
// TestSwitch), nor does the same box and address found again.
func TestWANChangeSameBoxGivesBack(t *testing.T) {
	var mu sync.Mutex
	var boxes []*fakeIGD
	a := startAuto(t, Config{routers: []netip.AddrPort{newServer(t, pcptest.Silent).Addr()},
		DiscoverIGD: func(context.Context) (Backend, error) {
			mu.Lock()
			defer mu.Unlock()
			f := newFakeIGD("http://100.64.0.1:5000/rootDesc.xml")
			boxes = append(boxes, f)
			return f, nil
		}})
	inForce := func() *fakeIGD {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.back.(*fakeIGD)
	}
	g1 := waitKindEvent(t, a, KindUPnP)
	first := inForce()
	// Detection again (blocking: a new backend in force) at the same WAN
	// address: the box's entries are the new backend's too, nothing given
	// back.
	a.Redetect("test")
	g2 := waitKindEvent(t, a, KindUPnP)
	first.mu.Lock()
	if g2 <= g1 || !first.closed || first.release != 0 {
		t.Errorf("the same box at the same address: generation %d (was %d), old backend closed %v, released %d; want closed, nothing given back",
			g2, g1, first.closed, first.release)
	}
	first.mu.Unlock()

	second := inForce()
	a.SetWAN(netip.MustParseAddr("100.64.0.3"))
	if g3 := waitKindEvent(t, a, KindUPnP); g3 <= g2 {
		t.Errorf("generation %d after the WAN change, was %d", g3, g2)
	}
	second.mu.Lock()
	defer second.mu.Unlock()
	if second.release != 1 || !second.closed {
		t.Errorf("the box's old entries: released %d times, closed %v; want given back once, then closed", second.release, second.closed)
	}
}

// TestNewPCPFails (review finding): a PCP backend that cannot be made (no
// route to the named server yet) leaves no backend, never a typed nil:
// the upstream is reported as not found and nothing panics.
func TestNewPCPFails(t *testing.T) {
	a := startAuto(t, Config{Want: KindPCP, PCP: pcpclient.Config{Servers: []netip.AddrPort{netip.MustParseAddrPort("[2001:db8:ffff::1]:5351")}}})
	if k := kindWithin(t, a, 5*time.Second); k != KindPCP {
		t.Fatalf("kind %v", k)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := a.Map(ctx, MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 60}); err == nil {
		t.Fatal("mapped without a backend")
	}
	a.Redetect("again") // Run goes on: no panic on the missing backend
	time.Sleep(100 * time.Millisecond)
	if in := a.Info(); in.Kind != KindPCP {
		t.Errorf("info %+v", in)
	}
}

// TestWANChangeNewBackend (review finding): a new WAN address makes a new
// PCP backend even toward the same server (the old one's socket and source
// address are stale); the core hears a new generation.
func TestWANChangeNewBackend(t *testing.T) {
	srv := newServer(t, pcptest.Normal)
	a := startAuto(t, Config{routers: []netip.AddrPort{srv.Addr()}})
	g1 := waitKindEvent(t, a, KindPCP)
	a.mu.Lock()
	b1 := a.back
	a.mu.Unlock()
	a.SetWAN(netip.MustParseAddr("100.64.0.3"))
	g2 := waitKindEvent(t, a, KindPCP)
	a.mu.Lock()
	b2 := a.back
	a.mu.Unlock()
	if g2 <= g1 || b2 == b1 {
		t.Errorf("after a WAN change: generation %d (was %d), same backend %v", g2, g1, b2 == b1)
	}
}

// TestQuietRecheck (review finding): while nothing upstream forwards ports,
// looking again does not hold requests up.
func TestQuietRecheck(t *testing.T) {
	srv := newServer(t, pcptest.Silent)
	a := startAuto(t, Config{routers: []netip.AddrPort{srv.Addr()}, Recheck: time.Second, ProbeTimeout: 2 * time.Second})
	waitKindEvent(t, a, KindNone)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		start := time.Now()
		if k := kindWithin(t, a, 3*time.Second); k != KindNone {
			t.Fatalf("kind %v", k)
		}
		// A re-check's probes take ProbeTimeout (2 s): waiting for them
		// would take that long; 1 s leaves room for a loaded machine.
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Kind waited %v during a periodic re-check", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNoneSaidInTheLog: when nothing upstream forwards ports, the log says
// so at Warn, with what the user can do (as the status and the page do).
func TestNoneSaidInTheLog(t *testing.T) {
	var mu sync.Mutex
	var buf strings.Builder
	h := slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(b)
	}), nil)
	a := startAuto(t, Config{routers: []netip.AddrPort{newServer(t, pcptest.Silent).Addr()}, Logger: slog.New(h)})
	waitKindEvent(t, a, KindNone)
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "level=WARN msg=\"Nothing upstream forwards ports") || !strings.Contains(buf.String(), "DMZ") {
		t.Errorf("log:\n%s", buf.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestPrivateExternalAdvice: an ISP box whose own external address is not
// public (it sits behind the provider's NAT) is used, and the status says
// why the internet does not reach the mappings; a public one gets no
// advice.
func TestPrivateExternalAdvice(t *testing.T) {
	box := newFakeIGD("http://100.64.0.1:5000/rootDesc.xml")
	a := startAuto(t, Config{routers: []netip.AddrPort{newServer(t, pcptest.Silent).Addr()},
		DiscoverIGD: discover(func() *fakeIGD { return box })})
	waitKindEvent(t, a, KindUPnP)
	for _, tc := range []struct {
		ext    string
		advice bool
	}{{"100.64.7.9", true}, {"10.1.2.3", true}, {"203.0.113.1", false}} {
		box.mu.Lock()
		box.ext = netip.MustParseAddr(tc.ext)
		box.mu.Unlock()
		in := a.Info()
		if got := strings.Contains(in.Advice, tc.ext+" is not a public address"); got != tc.advice {
			t.Errorf("external %s: advice %q", tc.ext, in.Advice)
		}
	}
}
