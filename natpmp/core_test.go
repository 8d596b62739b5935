package natpmp

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/firewall/firewalltest"
	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/upstream"
)

// fakeUpstream is the provider's PCP server for a real mapping core: it
// grants what is asked and records every request.
type fakeUpstream struct {
	mu     sync.Mutex
	maps   []upstream.MapRequest
	events chan upstream.Event
}

func newFakeUpstream() *fakeUpstream { return &fakeUpstream{events: make(chan upstream.Event, 8)} }

func (u *fakeUpstream) Map(_ context.Context, r upstream.MapRequest) (upstream.MapResult, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.maps = append(u.maps, r)
	n := r.Nonce
	if n == (pcp.Nonce{}) {
		n[0] = byte(len(u.maps))
	}
	return upstream.MapResult{External: netip.AddrPortFrom(netip.MustParseAddr("203.0.113.1"), r.SuggestedExternal.Port()),
		Lifetime: min(r.Lifetime, 3600), Nonce: n}, nil
}

func (u *fakeUpstream) Delete(context.Context, upstream.MapRequest) error { return nil }
func (u *fakeUpstream) ExternalAddr(context.Context) (netip.Addr, error) {
	return netip.MustParseAddr("203.0.113.1"), nil
}
func (u *fakeUpstream) Events() <-chan upstream.Event                { return u.events }
func (u *fakeUpstream) Kind(context.Context) (upstream.Kind, uint64) { return upstream.KindPCP, 1 }
func (u *fakeUpstream) requests() []upstream.MapRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upstream.MapRequest(nil), u.maps...)
}

// newCoreServer is a server on the test LAN over a real mapping core
// (firewall and upstream faked).
func newCoreServer(t *testing.T, cfg mapping.Config) (*Server, *mapping.Core, *firewalltest.Fake) {
	t.Helper()
	fw := firewalltest.New()
	cfg.Firewall = fw
	core, err := mapping.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); core.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; core.Close() })
	s, err := New(Config{Core: core, Interfaces: []string{"lo"}, NATPMP: true, PCP: true, Port: -1, CoreTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s.lan.Store(testLAN())
	return s, core, fw
}

// TestThirdPartyPolicy (RFC 6887 §13.1, RFC 7648 §3.3): THIRD_PARTY from
// a LAN client is refused (UNSUPP_OPTION) while secure mode is on, and
// taken while it is off. The core then maps for the host named: behind a
// NAT on the CPE (nat444) the CPE's DNAT leads to it and the provider is
// asked for the CPE's WAN port; where the CPE does no NAT (dslite) the
// request goes upstream with THIRD_PARTY for the host's own address.
func TestThirdPartyPolicy(t *testing.T) {
	third := netip.MustParseAddr("192.0.2.101")
	mapTP := func() []byte {
		r := pcp.Request{Opcode: pcp.OpMap, Lifetime: 3600, Client: lanHost.Addr(),
			Map:     &pcp.Map{Nonce: pcp.Nonce(testNonce), Protocol: 6, InternalPort: 8080, ExternalPort: 18080, ExternalAddr: netip.IPv4Unspecified()},
			Options: []pcp.Option{{Code: pcp.OptThirdParty, ThirdParty: third}}}
		return r.AppendMarshal(nil)
	}
	for _, tc := range []struct {
		name   string
		mode   mapping.Mode
		secure bool
		want   pcp.ResultCode
		// upstream request: its internal endpoint and THIRD_PARTY
		upInternal string
		upThird    bool
		kernelPort uint16 // the CPE's DNAT port (0: accept only)
	}{
		{name: "secure mode on", mode: mapping.ModeNAT444, secure: true, want: pcp.UnsuppOption},
		{name: "nat444", mode: mapping.ModeNAT444, want: pcp.Success, upInternal: "100.64.0.2:18080", kernelPort: 18080},
		{name: "dslite", mode: mapping.ModeDSLite, want: pcp.Success, upInternal: "192.0.2.101:8080", upThird: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newFakeUpstream()
			var wan netip.Addr
			if tc.mode == mapping.ModeNAT444 {
				wan = netip.MustParseAddr("100.64.0.2")
			}
			s, core, fw := newCoreServer(t, mapping.Config{Mode: tc.mode, WANAddr: wan, Upstream: up, SecureMode: tc.secure})
			b := s.Handle(lanHost, cpeLAN, mapTP(), time.Now())
			r, err := pcp.ParseResponse(b)
			if err != nil {
				t.Fatal(err)
			}
			if r.Result != tc.want {
				t.Fatalf("result %v, want %v", r.Result, tc.want)
			}
			if tc.want != pcp.Success {
				if n := len(core.Find(mapping.Selector{})); n != 0 || len(up.requests()) != 0 {
					t.Errorf("refused, yet %d mappings and %d upstream requests", n, len(up.requests()))
				}
				return
			}
			if r.Map.ExternalPort != 18080 || r.Map.ExternalAddr != netip.MustParseAddr("203.0.113.1") {
				t.Errorf("answer %+v", r.Map)
			}
			reqs := up.requests()
			if len(reqs) != 1 || reqs[0].Internal != netip.MustParseAddrPort(tc.upInternal) || reqs[0].ThirdParty != tc.upThird {
				t.Errorf("upstream requests %+v, want internal %s THIRD_PARTY %v", reqs, tc.upInternal, tc.upThird)
			}
			fwds := fw.Forwards()
			if len(fwds) != 1 || fwds[0].To != netip.AddrPortFrom(third, 8080) || fwds[0].Port != tc.kernelPort {
				t.Errorf("kernel forwards %+v", fwds)
			}
			ms := core.Find(mapping.Selector{})
			if len(ms) != 1 || ms[0].Client != lanHost.Addr() || ms[0].Internal != netip.AddrPortFrom(third, 8080) {
				t.Errorf("core mappings %+v", ms)
			}
		})
	}
}
