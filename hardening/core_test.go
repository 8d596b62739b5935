package hardening_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/firewall/firewalltest"
	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/natpmp"
	"github.com/pcpgw/pcpgw/pcp"
)

// stack is the LAN UDP server over the real mapping core and a fake
// firewall, in local mode (public WAN address 203.0.113.2, no provider).
type stack struct {
	srv  *natpmp.Server
	core *mapping.Core
	fw   *firewalltest.Fake
	dir  string // state dir; the lease file is dir/leases
	logs *syncBuffer
}

type stackOpts struct {
	secure, thirdParty bool
	quota              int
}

func newStack(t *testing.T, o stackOpts) *stack {
	t.Helper()
	st := &stack{fw: firewalltest.New(), dir: t.TempDir(), logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(st.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	core, err := mapping.New(ctx, mapping.Config{
		Mode: mapping.ModeLocal, WANAddr: netip.MustParseAddr("203.0.113.2"), Firewall: st.fw,
		SecureMode: o.secure, Quota: o.quota, StateDir: st.dir, LeaseFile: filepath.Join(st.dir, "leases"),
		Logger: log,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); core.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		core.Close()
	})
	st.core = core
	st.srv, err = natpmp.New(natpmp.Config{
		Core: lanShim{core}, Interfaces: []string{"lo"}, NATPMP: true, PCP: true, Port: -1,
		ThirdParty: o.thirdParty, RatePerHost: 1e9, Burst: 1 << 30, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// pcp sends a PCP request from host (port 40000) and parses the answer.
func (st *stack) pcp(t *testing.T, host netip.Addr, req []byte) pcp.Response {
	t.Helper()
	b := st.srv.Handle(netip.AddrPortFrom(host, 40000), lo, req, time.Now())
	r, err := pcp.ParseResponse(b)
	if err != nil {
		t.Fatalf("PCP reply % x: %v", b, err)
	}
	return r
}

// natpmp sends a NAT-PMP request from host and parses the answer.
func (st *stack) natpmp(t *testing.T, host netip.Addr, req []byte) pcp.NATPMPResponse {
	t.Helper()
	b := st.srv.Handle(netip.AddrPortFrom(host, 40000), lo, req, time.Now())
	r, err := pcp.ParseNATPMPResponse(b)
	if err != nil {
		t.Fatalf("NAT-PMP reply % x: %v", b, err)
	}
	return r
}

// mine is the mappings of host (a loopback address), as the server sees
// them.
func (st *stack) mine(host netip.Addr) []mapping.Mapping {
	var out []mapping.Mapping
	for _, m := range (lanShim{st.core}).Find(mapping.Selector{}) {
		if m.Client == host {
			out = append(out, m)
		}
	}
	return out
}

// lanShim puts the server's loopback "LAN" on the documentation LAN of
// LAB.md for the core, which refuses loopback internal addresses:
// 127.0.0.N is 192.0.2.(100+N) to the core, both ways.
type lanShim struct{ c *mapping.Core }

var _ natpmp.Core = lanShim{}

var (
	loNet  = netip.MustParsePrefix("127.0.0.0/24")
	lanNet = netip.MustParsePrefix("192.0.2.0/24")
)

func shift(a netip.Addr, from, to netip.Prefix, by int) netip.Addr {
	if !from.Contains(a) {
		return a
	}
	b := a.As4()
	b[0], b[1], b[2], b[3] = to.Addr().As4()[0], to.Addr().As4()[1], to.Addr().As4()[2], byte(int(b[3])+by)
	return netip.AddrFrom4(b)
}

func toLAN(a netip.Addr) netip.Addr   { return shift(a, loNet, lanNet, 100) }
func fromLAN(a netip.Addr) netip.Addr { return shift(a, lanNet, loNet, -100) }

func toLANSel(s mapping.Selector) mapping.Selector {
	s.Client = toLAN(s.Client)
	s.Internal = netip.AddrPortFrom(toLAN(s.Internal.Addr()), s.Internal.Port())
	return s
}

func fromLANMapping(m mapping.Mapping) mapping.Mapping {
	m.Client = fromLAN(m.Client)
	m.Internal = netip.AddrPortFrom(fromLAN(m.Internal.Addr()), m.Internal.Port())
	return m
}

func (l lanShim) Map(ctx context.Context, r mapping.Request) (mapping.Mapping, error) {
	r.Client = toLAN(r.Client)
	r.Internal = netip.AddrPortFrom(toLAN(r.Internal.Addr()), r.Internal.Port())
	m, err := l.c.Map(ctx, r)
	return fromLANMapping(m), err
}

func (l lanShim) Delete(ctx context.Context, s mapping.Selector) (int, error) {
	return l.c.Delete(ctx, toLANSel(s))
}

func (l lanShim) Find(s mapping.Selector) []mapping.Mapping {
	ms := l.c.Find(toLANSel(s))
	for i := range ms {
		ms[i] = fromLANMapping(ms[i])
	}
	return ms
}

func (l lanShim) ExternalAddr(ctx context.Context) (netip.Addr, error) { return l.c.ExternalAddr(ctx) }
func (l lanShim) Epoch(now time.Time) uint32                           { return l.c.Epoch(now) }
func (l lanShim) AwaitUpstream(ctx context.Context)                    { l.c.AwaitUpstream(ctx) }
func (l lanShim) Subscribe() (<-chan mapping.Event, func())            { return l.c.Subscribe() }
func (l lanShim) PinholesEnabled() bool                                { return l.c.PinholesEnabled() }
func (l lanShim) SecureMode() bool                                     { return l.c.SecureMode() }

func (l lanShim) Peer(ctx context.Context, r mapping.PeerRequest) (mapping.PeerResult, error) {
	r.Client = toLAN(r.Client)
	r.Internal = netip.AddrPortFrom(toLAN(r.Internal.Addr()), r.Internal.Port())
	return l.c.Peer(ctx, r)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSecureModeAcrossProtocols (NAT-PMP and PCP; UPnP in
// TestLabSecureModeAcrossProtocols): with secure mode a host can neither map for
// another host nor delete, renew or take over another host's mapping,
// whatever it puts in the packet; without secure mode the same THIRD_PARTY
// request succeeds (so the refusals come from the policy).
func TestSecureModeAcrossProtocols(t *testing.T) {
	a, b := lo, loPeer
	nonceB := pcp.Nonce{0xb, 0xb, 0xb}
	tp := func(h netip.Addr) pcp.Option { return pcp.Option{Code: pcp.OptThirdParty, ThirdParty: h} }
	setup := func(t *testing.T, secure bool) (*stack, mapping.Mapping) {
		st := newStack(t, stackOpts{secure: secure, thirdParty: true})
		r := st.pcp(t, b, mapReq(b, func(r *pcp.Request) { r.Map.Nonce = nonceB; r.Map.ExternalPort = 18080 }))
		if r.Result != pcp.Success {
			t.Fatalf("B's own mapping: %v", r.Result)
		}
		ms := st.mine(b)
		if len(ms) != 1 {
			t.Fatalf("B holds %d mappings", len(ms))
		}
		return st, ms[0]
	}
	unchanged := func(t *testing.T, st *stack, want mapping.Mapping) {
		t.Helper()
		ms := st.mine(b)
		if len(ms) != 1 || ms[0].ID != want.ID || ms[0].External != want.External ||
			ms[0].Internal != want.Internal || ms[0].Nonce != want.Nonce || ms[0].Client != b {
			t.Errorf("B's mapping changed: %+v, was %+v", ms, want)
		}
		if n := len(st.mine(a)); n != 0 {
			t.Errorf("A holds %d mappings", n)
		}
	}

	t.Run("PCP THIRD_PARTY map for another host", func(t *testing.T) {
		st, mb := setup(t, true)
		r := st.pcp(t, a, mapReq(a, func(r *pcp.Request) { r.Map.InternalPort = 9090 }, tp(b)))
		if r.Result != pcp.NotAuthorized {
			t.Errorf("result %v, want NOT_AUTHORIZED", r.Result)
		}
		unchanged(t, st, mb)
	})
	t.Run("PCP THIRD_PARTY renewal of another host's mapping", func(t *testing.T) {
		st, mb := setup(t, true)
		r := st.pcp(t, a, mapReq(a, func(r *pcp.Request) { r.Map.Nonce = nonceB; r.Lifetime = 120 }, tp(b)))
		if r.Result != pcp.NotAuthorized {
			t.Errorf("result %v, want NOT_AUTHORIZED", r.Result)
		}
		unchanged(t, st, mb)
	})
	t.Run("PCP THIRD_PARTY delete with the right nonce", func(t *testing.T) {
		st, mb := setup(t, true)
		r := st.pcp(t, a, mapReq(a, func(r *pcp.Request) { r.Map.Nonce = nonceB; r.Lifetime = 0 }, tp(b)))
		if r.Result != pcp.NotAuthorized {
			t.Errorf("result %v, want NOT_AUTHORIZED", r.Result)
		}
		unchanged(t, st, mb)
	})
	t.Run("PCP delete with another host's address in the header", func(t *testing.T) {
		st, mb := setup(t, true)
		r := st.pcp(t, a, mapReq(b, func(r *pcp.Request) { r.Map.Nonce = nonceB; r.Lifetime = 0 }))
		if r.Result != pcp.AddressMismatch {
			t.Errorf("result %v, want ADDRESS_MISMATCH", r.Result)
		}
		unchanged(t, st, mb)
	})
	t.Run("PCP delete of the same internal port deletes nothing of B", func(t *testing.T) {
		st, mb := setup(t, true)
		r := st.pcp(t, a, mapReq(a, func(r *pcp.Request) { r.Map.Nonce = nonceB; r.Lifetime = 0 }))
		if r.Result != pcp.Success || r.Lifetime != 0 {
			t.Errorf("result %v lifetime %d, want SUCCESS 0", r.Result, r.Lifetime)
		}
		unchanged(t, st, mb)
	})
	t.Run("PCP takeover of B's external port", func(t *testing.T) {
		st, mb := setup(t, true)
		r := st.pcp(t, a, mapReq(a, func(r *pcp.Request) { r.Map.ExternalPort = mb.External.Port() }, pcp.Option{Code: pcp.OptPreferFailure}))
		if r.Result != pcp.CannotProvideExternal {
			t.Errorf("result %v, want CANNOT_PROVIDE_EXTERNAL", r.Result)
		}
		unchanged(t, st, mb)
	})
	t.Run("NAT-PMP delete all and delete B's port", func(t *testing.T) {
		st, mb := setup(t, true)
		for _, port := range []uint16{0, 8080} {
			r := st.natpmp(t, a, natpmpMap(pcp.NATPMPOpMapTCP, port, 0, 0))
			if r.Result != pcp.NATPMPSuccess {
				t.Errorf("delete %d: result %v, want success (nothing of A's to delete)", port, r.Result)
			}
		}
		unchanged(t, st, mb)
	})
	t.Run("NAT-PMP takeover of B's external port", func(t *testing.T) {
		st, mb := setup(t, true)
		r := st.natpmp(t, a, natpmpMap(pcp.NATPMPOpMapTCP, 8080, mb.External.Port(), 3600))
		if r.Result != pcp.NATPMPSuccess || r.ExternalPort == mb.External.Port() || r.ExternalPort == 0 {
			t.Errorf("result %v external %d, want success on another port than B's %d", r.Result, r.ExternalPort, mb.External.Port())
		}
		ms := st.mine(b)
		if len(ms) != 1 || ms[0].External != mb.External {
			t.Errorf("B's mapping changed: %+v", ms)
		}
		mine := st.mine(a)
		if len(mine) != 1 || mine[0].Internal != netip.AddrPortFrom(a, 8080) {
			t.Errorf("A's mapping is %+v, want one to A itself", mine)
		}
	})
	t.Run("control: secure mode off", func(t *testing.T) {
		st, _ := setup(t, false)
		r := st.pcp(t, a, mapReq(a, func(r *pcp.Request) { r.Map.InternalPort = 9090 }, tp(b)))
		if r.Result != pcp.Success {
			t.Fatalf("result %v, want SUCCESS without secure mode", r.Result)
		}
		if ms := (lanShim{st.core}).Find(mapping.Selector{Internal: netip.AddrPortFrom(b, 9090)}); len(ms) != 1 || ms[0].Client != a {
			t.Errorf("mapping for B made by A: %+v", ms)
		}
	})
}

// TestQuotaExhaustion: one host asking for 10,000 NAT-PMP mappings gets
// the first 128 (the default quota) and then OUT_OF_RESOURCES (result 4)
// for every other one, and USER_EX_QUOTA over PCP; the table holds exactly
// its 128; another host still maps. (The lab version with the rate
// limiter and a real kernel is TestLabQuotaExhaustion.)
func TestQuotaExhaustion(t *testing.T) {
	st := newStack(t, stackOpts{secure: true})
	a, b := lo, loPeer
	results := map[pcp.NATPMPResult]int{}
	for i := range 10000 {
		port := uint16(1024 + i)
		r := st.natpmp(t, a, natpmpMap(pcp.NATPMPOpMapUDP, port, port, 3600))
		results[r.Result]++
		if i >= 128 && r.Result != pcp.NATPMPOutOfResources {
			t.Fatalf("request %d over the quota: result %v", i, r.Result)
		}
	}
	if results[pcp.NATPMPSuccess] != 128 || results[pcp.NATPMPOutOfResources] != 10000-128 {
		t.Errorf("results %v, want 128 successes and %d OUT_OF_RESOURCES", results, 10000-128)
	}
	if n := len(st.mine(a)); n != 128 {
		t.Errorf("A holds %d mappings, want 128", n)
	}
	if n := len(st.fw.Forwards()); n != 128 {
		t.Errorf("firewall holds %d forwards, want 128", n)
	}
	if r := st.pcp(t, a, mapReq(a, func(r *pcp.Request) { r.Map.InternalPort = 30000 })); r.Result != pcp.UserExQuota || r.Lifetime != 30 {
		t.Errorf("PCP over the quota: %v lifetime %d, want USER_EX_QUOTA 30", r.Result, r.Lifetime)
	}
	// A renewal of one of A's own mappings is not a new mapping.
	if r := st.natpmp(t, a, natpmpMap(pcp.NATPMPOpMapUDP, 1024, 1024, 7200)); r.Result != pcp.NATPMPSuccess {
		t.Errorf("renewal at the quota: %v", r.Result)
	}
	if r := st.natpmp(t, b, natpmpMap(pcp.NATPMPOpMapTCP, 8080, 8080, 3600)); r.Result != pcp.NATPMPSuccess || r.ExternalPort != 8080 {
		t.Errorf("another host: %v port %d, want success on 8080", r.Result, r.ExternalPort)
	}
}

// evilDescription is an app description meant to break the line formats:
// CR/LF and a forged lease-file line, NUL, and 400 more octets of
// two-octet runes; sanitized is what must be kept of it: controls as
// spaces, cut at 256 octets on a rune boundary (255 here).
var (
	evilDescription = "evil\r\nUDP:1:6.6.6.6:1:0:injected\x00" + strings.Repeat("é", 200)
	sanitized       = "evil  UDP:1:6.6.6.6:1:0:injected " + strings.Repeat("é", 111)
)

// TestDescriptionInjection: a PCP DESCRIPTION with CR/LF/NUL and over 256
// octets is kept sanitized and truncated, the same in the table, the state
// file and the lease file (one line per mapping, never a forged one), and
// never reaches the logs raw; a description that is not UTF-8 is ignored.
func TestDescriptionInjection(t *testing.T) {
	if len(sanitized) != 255 {
		t.Fatalf("sanitized is %d octets", len(sanitized))
	}
	st := newStack(t, stackOpts{secure: true})
	desc := pcp.Option{Code: pcp.OptDescription, Description: evilDescription}
	if r := st.pcp(t, lo, mapReq(lo, nil, desc)); r.Result != pcp.Success {
		t.Fatalf("map: %v", r.Result)
	}
	bad := mapReq(lo, func(r *pcp.Request) { r.Map.InternalPort = 8081 }, pcp.Option{Code: pcp.OptDescription, Raw: []byte("bad\xff\xfe\r\n")})
	if r := st.pcp(t, lo, bad); r.Result != pcp.Success {
		t.Fatalf("map with non-UTF-8 description: %v", r.Result)
	}
	long := pcp.Option{Code: pcp.OptDescription, Description: strings.Repeat("x", 1000)}
	if r := st.pcp(t, lo, mapReq(lo, func(r *pcp.Request) { r.Map.InternalPort = 8082 }, long)); r.Result != pcp.Success {
		t.Fatalf("map with a 1000-octet description: %v", r.Result)
	}
	want := map[uint16]string{8080: sanitized, 8081: "", 8082: strings.Repeat("x", 256)}
	for _, m := range st.mine(lo) {
		if got := m.Description; got != want[m.Internal.Port()] {
			t.Errorf("table: port %d description %q, want %q", m.Internal.Port(), got, want[m.Internal.Port()])
		}
	}
	st.core.Close() // writes the state and lease files

	raw, err := os.ReadFile(filepath.Join(st.dir, mapping.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Mappings []struct {
			Internal, Description string
		}
	}
	if err := json.Unmarshal(raw, &state); err != nil {
		t.Fatalf("state file: %v", err)
	}
	if len(state.Mappings) != 3 {
		t.Fatalf("state file holds %d mappings, want 3", len(state.Mappings))
	}
	for _, m := range state.Mappings {
		ap := netip.MustParseAddrPort(m.Internal)
		if m.Description != want[ap.Port()] {
			t.Errorf("state file: %s description %q, want %q", m.Internal, m.Description, want[ap.Port()])
		}
	}
	leases, err := os.ReadFile(filepath.Join(st.dir, "leases"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(leases), "\n"), "\n")
	if len(lines) != 3 || bytes.ContainsAny(leases, "\r\x00") {
		t.Fatalf("lease file has %d lines (want 3) or a CR/NUL:\n%q", len(lines), leases)
	}
	for _, line := range lines {
		f := strings.SplitN(line, ":", 6)
		if len(f) != 6 || f[0] != "TCP" || f[2] != "192.0.2.101" {
			t.Errorf("lease line %q", line)
			continue
		}
		port := map[string]uint16{"8080": 8080, "8081": 8081, "8082": 8082}[f[3]]
		if f[5] != want[port] {
			t.Errorf("lease file: port %s description %q, want %q", f[3], f[5], want[port])
		}
	}
	if logs := st.logs.String(); strings.Contains(logs, "\r") || strings.Contains(logs, "\x00") || strings.Contains(logs, "\ninjected") {
		t.Errorf("raw control characters in the logs:\n%q", logs)
	}
}
