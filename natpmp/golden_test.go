package natpmp

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/pcp"
)

// The golden packets below are worked out from the RFC figures: RFC 6886
// §3.2, §3.3, §3.4, §3.5 for NAT-PMP and RFC 6887 §7.1, §7.2, §8.2, §11.1,
// §12.1, §13 for PCP. The LAN is that of LAB.md: the CPE is 192.0.2.1,
// 2001:db8:1::1 and fe80::1 on c0, the LAN host 192.0.2.100 and
// 2001:db8:1::100, the provider's external address 203.0.113.1 (cb007101).
// The clock stands 1000 s (0x3e8) after the start of the epoch.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	epochHex = "000003e8"
	nonceHex = "0102030405060708090a0b0c"
	zeros12  = "000000000000000000000000"
	hostV4   = "00000000000000000000ffffc0000264" // ::ffff:192.0.2.100
	otherV4  = "00000000000000000000ffffc0000265" // ::ffff:192.0.2.101
	extV4    = "00000000000000000000ffffcb007101" // ::ffff:203.0.113.1
	anyV4    = "00000000000000000000ffff00000000" // ::ffff:0.0.0.0
	hostV6   = "20010db8000100000000000000000100" // 2001:db8:1::100
	anyV6    = "00000000000000000000000000000000"
	peerV4   = "00000000000000000000ffffcb007132" // ::ffff:203.0.113.50
)

var (
	lanHost   = netip.MustParseAddrPort("192.0.2.100:40001")
	lanHost6  = netip.MustParseAddrPort("[2001:db8:1::100]:40001")
	cpeLAN    = netip.MustParseAddr("192.0.2.1")
	cpeLAN6   = netip.MustParseAddr("2001:db8:1::1")
	cpeWAN    = netip.MustParseAddr("100.64.0.2")
	testNonce = mapping.Nonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
)

// testLAN is the LAN of LAB.md's cpe namespace.
func testLAN() *lanView {
	return &lanView{
		addrs: []lanAddr{
			{addr: netip.MustParseAddr("192.0.2.1"), ifname: "c0", ifindex: 2},
			{addr: netip.MustParseAddr("2001:db8:1::1"), ifname: "c0", ifindex: 2},
			{addr: netip.MustParseAddr("fe80::1%c0"), ifname: "c0", ifindex: 2},
		},
		prefixes: []netip.Prefix{
			netip.MustParsePrefix("192.0.2.0/24"),
			netip.MustParsePrefix("2001:db8:1::/64"),
			netip.MustParsePrefix("fe80::/64"),
		},
	}
}

type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

// newTestServer returns a server on the test LAN with a fake core, the
// clock at epoch 1000.
func newTestServer(t testing.TB, mod func(*Config)) (*Server, *fakeCore, *testClock) {
	t.Helper()
	clock := &testClock{t: t0.Add(1000 * time.Second)}
	core := newFakeCore(t0, clock.now)
	cfg := Config{
		Core: core, Interfaces: []string{"lo"}, NATPMP: true, PCP: true,
		Port: -1, CoreTimeout: 50 * time.Millisecond, Now: clock.now,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.lan.Store(testLAN())
	return s, core, clock
}

// hx decodes hex written in groups separated by spaces.
func hx(t testing.TB, parts ...string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(strings.Join(parts, ""), " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", parts, err)
	}
	return b
}

// pcpErr is the error response RFC 6887 §8.2 makes of req: the request
// copied, R bit set, result, lifetime and epoch written over octets 1-11,
// octets 12-23 zero unless the request could not be parsed (§7.2, §7.4).
func pcpErr(req []byte, code pcp.ResultCode, lifetime uint32) []byte {
	out := append([]byte(nil), req[:min(len(req), 1100)]...)
	for len(out)%4 != 0 || len(out) < 24 {
		out = append(out, 0)
	}
	out[0], out[1], out[2], out[3] = 2, out[1]|0x80, 0, byte(code)
	copy(out[4:], []byte{byte(lifetime >> 24), byte(lifetime >> 16), byte(lifetime >> 8), byte(lifetime)})
	copy(out[8:], []byte{0, 0, 3, 0xe8})
	if code != pcp.UnsuppVersion && code != pcp.MalformedRequest {
		clear(out[12:24]) // the request parsed: reserved octets zero (§7.2)
	}
	return out
}

// mapOf is a mapping the fake core holds before a test.
func mapOf(f *fakeCore, r mapping.Request) {
	if _, err := f.Map(context.Background(), r); err != nil {
		panic(err)
	}
	f.requests = nil
}

type golden struct {
	name  string
	mod   func(*Config)
	setup func(*fakeCore)
	src   netip.AddrPort // default lanHost
	dst   netip.Addr     // default cpeLAN
	req   string
	want  string // "" = silence
	// wantFn computes the expected reply from the request (error copies).
	wantFn func(req []byte) []byte
	check  func(t *testing.T, f *fakeCore)
}

func runGolden(t *testing.T, tests []golden) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, core, clock := newTestServer(t, tt.mod)
			if tt.setup != nil {
				tt.setup(core)
			}
			src, dst := tt.src, tt.dst
			if !src.IsValid() {
				src = lanHost
			}
			if !dst.IsValid() {
				dst = cpeLAN
			}
			req := hx(t, tt.req)
			got := s.Handle(src, dst, req, clock.now())
			var want []byte
			switch {
			case tt.wantFn != nil:
				want = tt.wantFn(req)
			case tt.want != "":
				want = hx(t, tt.want)
			}
			if diff := cmp.Diff(hex.EncodeToString(want), hex.EncodeToString(got)); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
			if tt.check != nil {
				tt.check(t, core)
			}
			st := s.Stats()
			if want == nil && st.Replies != 0 {
				t.Errorf("silence counted as a reply: %+v", st)
			}
			if want != nil && st.Replies != 1 {
				t.Errorf("Replies = %d, want 1", st.Replies)
			}
		})
	}
}

var (
	errNotAuth = &mapping.Error{Code: mapping.CodeNotAuthorized}
	errNoRes   = &mapping.Error{Code: mapping.CodeNoResources}
	errNetFail = &mapping.Error{Code: mapping.CodeNetworkFailure}
	errQuota   = &mapping.Error{Code: mapping.CodeQuota}
)

func tcp8080(f *fakeCore) {
	mapOf(f, mapping.Request{Origin: mapping.OriginNATPMP, Client: lanHost.Addr(), Proto: mapping.TCP,
		Internal: netip.AddrPortFrom(lanHost.Addr(), 8080), ExternalPort: 8080, Lifetime: time.Hour})
}

func wantMaps(n int) func(*testing.T, *fakeCore) {
	return func(t *testing.T, f *fakeCore) {
		if got := len(f.snapshot()); got != n {
			t.Errorf("core holds %d mappings, want %d: %+v", got, n, f.snapshot())
		}
	}
}

func TestNATPMPGolden(t *testing.T) {
	runGolden(t, []golden{
		{name: "external address", req: "0000", want: "0080 0000" + epochHex + "cb007101"},
		{name: "external address unknown is 3", setup: func(f *fakeCore) { f.extErr = errNetFail },
			req: "0000", want: "0080 0003" + epochHex + "00000000"},
		{name: "external address times out is 3", setup: func(f *fakeCore) { f.hang = true },
			req: "0000", want: "0080 0003" + epochHex + "00000000"},
		{name: "external address padded", req: "0000 0000", want: "0080 0000" + epochHex + "cb007101"},
		{name: "map tcp", req: "0002 0000 1f90 1f90 00000e10",
			want: "0082 0000" + epochHex + "1f90 1f90 00000e10",
			check: func(t *testing.T, f *fakeCore) {
				want := []mapping.Request{{Origin: mapping.OriginNATPMP, Client: lanHost.Addr(), Proto: mapping.TCP,
					Internal: netip.AddrPortFrom(lanHost.Addr(), 8080), ExternalPort: 8080, Lifetime: time.Hour}}
				if diff := cmp.Diff(want, f.requests, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
					cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
					t.Errorf("core requests (-want +got):\n%s", diff)
				}
			}},
		{name: "map udp any port", req: "0001 0000 1f90 0000 00001c20",
			want: "0081 0000" + epochHex + "1f90 9c41 00001c20"},
		{name: "lifetime clamped to 120", req: "0002 0000 1f90 1f90 0000000a",
			want: "0082 0000" + epochHex + "1f90 1f90 00000078"},
		{name: "lifetime clamped to 86400", req: "0002 0000 1f90 1f90 ffffffff",
			want: "0082 0000" + epochHex + "1f90 1f90 00015180"},
		{name: "same internal port returns existing", setup: tcp8080,
			req: "0002 0000 1f90 2382 00000e10", want: "0082 0000" + epochHex + "1f90 1f90 00000e10", check: wantMaps(1)},
		{name: "tcp and udp apart", setup: tcp8080,
			req: "0001 0000 1f90 1f90 00000e10", want: "0081 0000" + epochHex + "1f90 1f90 00000e10", check: wantMaps(2)},
		{name: "delete", setup: tcp8080,
			req: "0002 0000 1f90 0000 00000000", want: "0082 0000" + epochHex + "1f90 0000 00000000", check: wantMaps(0)},
		{name: "delete ignores suggested port", setup: tcp8080,
			req: "0002 0000 1f90 1234 00000000", want: "0082 0000" + epochHex + "1f90 0000 00000000", check: wantMaps(0)},
		{name: "delete what does not exist succeeds",
			req: "0002 0000 1f90 0000 00000000", want: "0082 0000" + epochHex + "1f90 0000 00000000"},
		{name: "delete all udp of the client", setup: func(f *fakeCore) {
			tcp8080(f)
			for _, p := range []uint16{8080, 9090} {
				mapOf(f, mapping.Request{Origin: mapping.OriginNATPMP, Client: lanHost.Addr(), Proto: mapping.UDP, Internal: netip.AddrPortFrom(lanHost.Addr(), p), Lifetime: time.Hour})
			}
			other := netip.MustParseAddr("192.0.2.101")
			mapOf(f, mapping.Request{Origin: mapping.OriginNATPMP, Client: other, Proto: mapping.UDP, Internal: netip.AddrPortFrom(other, 7000), Lifetime: time.Hour})
		}, req: "0001 0000 0000 0000 00000000", want: "0081 0000" + epochHex + "0000 0000 00000000",
			check: func(t *testing.T, f *fakeCore) {
				for _, m := range f.snapshot() {
					if m.Proto == mapping.UDP && m.Client == lanHost.Addr() {
						t.Errorf("UDP mapping left: %+v", m)
					}
				}
				wantMaps(2)(t, f)
			}},
		// As miniupnpd: a NAT-PMP delete removes NAT-PMP mappings only,
		// not the host's UPnP (or PCP) mapping of the same port.
		{name: "delete leaves a UPnP mapping of the port", setup: func(f *fakeCore) {
			mapOf(f, mapping.Request{Origin: mapping.OriginUPnP, Client: lanHost.Addr(), Proto: mapping.TCP,
				Internal: netip.AddrPortFrom(lanHost.Addr(), 8080), ExternalPort: 8080, Lifetime: time.Hour})
		}, req: "0002 0000 1f90 0000 00000000", want: "0082 0000" + epochHex + "1f90 0000 00000000", check: wantMaps(1)},
		{name: "delete all leaves UPnP mappings", setup: func(f *fakeCore) {
			tcp8080(f)
			mapOf(f, mapping.Request{Origin: mapping.OriginUPnP, Client: lanHost.Addr(), Proto: mapping.TCP,
				Internal: netip.AddrPortFrom(lanHost.Addr(), 9090), ExternalPort: 9090, Lifetime: time.Hour})
		}, req: "0002 0000 0000 0000 00000000", want: "0082 0000" + epochHex + "0000 0000 00000000",
			check: func(t *testing.T, f *fakeCore) {
				if ms := f.snapshot(); len(ms) != 1 || ms[0].Origin != mapping.OriginUPnP {
					t.Errorf("left %+v, want the UPnP mapping", ms)
				}
			}},
		{name: "refused is 2", setup: func(f *fakeCore) { f.mapErr = errNotAuth },
			req: "0002 0000 1f90 1f90 00000e10", want: "0082 0002" + epochHex + "1f90 0000 00000000"},
		{name: "delete refused is 2", setup: func(f *fakeCore) { f.delErr = errNotAuth },
			req: "0002 0000 1f90 0000 00000000", want: "0082 0002" + epochHex + "1f90 0000 00000000"},
		{name: "provider unreachable is 3", setup: func(f *fakeCore) { f.mapErr = errNetFail },
			req: "0001 0000 1f90 1f90 00000e10", want: "0081 0003" + epochHex + "1f90 0000 00000000"},
		{name: "core timeout is 3", setup: func(f *fakeCore) { f.hang = true },
			req: "0001 0000 1f90 1f90 00000e10", want: "0081 0003" + epochHex + "1f90 0000 00000000"},
		{name: "out of resources is 4", setup: func(f *fakeCore) { f.mapErr = errNoRes },
			req: "0002 0000 1f90 1f90 00000e10", want: "0082 0004" + epochHex + "1f90 0000 00000000"},
		{name: "unsupported opcode is 5", req: "0003", want: "0083 0005" + epochHex},
		{name: "unsupported opcode 127 with body", req: "007f 0000 1111 2222", want: "00ff 0005" + epochHex},
		{name: "internal port 0 with a lifetime is refused", req: "0002 0000 0000 1f90 00000e10",
			want: "0082 0002" + epochHex + "0000 0000 00000000"},
		{name: "unsupported version with PCP off is 1", mod: func(c *Config) { c.PCP = false },
			req: "0201 0000 00000e10" + hostV4, want: "0081 0001" + epochHex},
		{name: "map over IPv6 refused", src: lanHost6, dst: cpeLAN6,
			req: "0002 0000 1f90 1f90 00000e10", want: "0082 0002" + epochHex + "1f90 0000 00000000"},
		{name: "response is ignored", req: "0080 0000 00000000"},
		{name: "short map is ignored", req: "0002 0000 1f90"},
		{name: "one octet is ignored", req: "00"},
		{name: "not to a LAN address", dst: cpeWAN, req: "0000"},
	})
}

// mapReq is a MAP request from the LAN host for TCP 8080, suggested
// external 8080, lifetime 3600 (RFC 6887 Figures 2 and 9), then options.
func mapReq(lifetime, client, proto, iport, eport, eaddr string, opts ...string) string {
	return "0201 0000" + lifetime + client + nonceHex + proto + "000000" + iport + eport + eaddr + strings.Join(opts, "")
}

// mapResp is the SUCCESS response to such a request.
func mapResp(lifetime, proto, iport, eport, eaddr string, opts ...string) string {
	return "0281 0000" + lifetime + epochHex + zeros12 + nonceHex + proto + "000000" + iport + eport + eaddr + strings.Join(opts, "")
}

func peerReq(lifetime, client, iport string, opts ...string) string {
	return "0202 0000" + lifetime + client + nonceHex + "06000000" + iport + "0000" + anyV4 + "0050 0000" + peerV4 + strings.Join(opts, "")
}

const (
	optPreferFailure = "0200 0000"
	optFilterPeer    = "0300 0014 0080 0050" + peerV4 // 203.0.113.50/32 port 80
	optFilterOther   = "0300 0014 0080 0051" + peerV4 // same host, port 81
	optFilterNet     = "0300 0014 0078 0000" + peerV4 // 203.0.113.0/24
	optFilterNone    = "0300 0014 0000 0000" + anyV6  // prefix 0: no filter
	optThirdParty    = "0100 0010" + otherV4          // 192.0.2.101
	optThirdSelf     = "0100 0010" + hostV4
	optThirdOffLAN   = "0100 0010 00000000000000000000ffffc6336407" // 198.51.100.7
	optDescription   = "8000 0003 77656200"                         // "web"
	optUnknownMand   = "6400 0000"
	optUnknownOpt    = "c800 0004 deadbeef"
)

func errFn(code pcp.ResultCode, lifetime uint32) func([]byte) []byte {
	return func(req []byte) []byte { return pcpErr(req, code, lifetime) }
}

func TestPCPGolden(t *testing.T) {
	life := "00000e10"
	ok := mapReq(life, hostV4, "06", "1f90", "1f90", anyV4)
	okResp := mapResp(life, "06", "1f90", "1f90", extV4)
	long := strings.Repeat("00", 1104-24-36)
	runGolden(t, []golden{
		{name: "map", req: ok, want: okResp, check: func(t *testing.T, f *fakeCore) {
			r := f.requests[0]
			if r.Origin != mapping.OriginPCP || r.Nonce != testNonce || r.ExactPort || r.Lifetime != time.Hour ||
				r.Internal != netip.AddrPortFrom(lanHost.Addr(), 8080) || r.Client != lanHost.Addr() {
				t.Errorf("core request %+v", r)
			}
		}},
		{name: "map any port", req: mapReq(life, hostV4, "11", "1f90", "0000", anyV4),
			want: mapResp(life, "11", "1f90", "9c41", extV4)},
		{name: "lifetime clamped", req: mapReq("0000003c", hostV4, "06", "1f90", "1f90", anyV4),
			want: mapResp("00000078", "06", "1f90", "1f90", extV4)},
		{name: "answer is the lease left", setup: tcp8080,
			req:  mapReq("00015180", hostV4, "06", "1f90", "1f90", anyV4),
			want: mapResp("00015180", "06", "1f90", "1f90", extV4)},
		{name: "prefer failure", req: mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optPreferFailure),
			want: mapResp(life, "06", "1f90", "1f90", extV4, optPreferFailure),
			check: func(t *testing.T, f *fakeCore) {
				if !f.requests[0].ExactPort {
					t.Error("PREFER_FAILURE did not ask for the exact port")
				}
			}},
		{name: "prefer failure port taken is CANNOT_PROVIDE_EXTERNAL", setup: func(f *fakeCore) {
			o := netip.MustParseAddr("192.0.2.101")
			mapOf(f, mapping.Request{Client: o, Proto: mapping.TCP, Internal: netip.AddrPortFrom(o, 80), ExternalPort: 8080, Lifetime: time.Hour})
		}, req: mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optPreferFailure),
			wantFn: errFn(pcp.CannotProvideExternal, 30)},
		{name: "filter", req: mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optFilterPeer),
			want: mapResp(life, "06", "1f90", "1f90", extV4, optFilterPeer),
			check: func(t *testing.T, f *fakeCore) {
				r := f.requests[0]
				if r.RemoteHost != netip.MustParseAddr("203.0.113.50") || r.RemotePort != 80 {
					t.Errorf("filter not passed: %+v", r)
				}
			}},
		{name: "filter repeated identically", req: mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optFilterPeer, optFilterPeer),
			want: mapResp(life, "06", "1f90", "1f90", extV4, optFilterPeer, optFilterPeer)},
		{name: "two filters are UNSUPP_OPTION", req: mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optFilterPeer, optFilterOther),
			wantFn: errFn(pcp.UnsuppOption, 1800), check: wantMaps(0)},
		{name: "filter on a network is UNSUPP_OPTION", req: mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optFilterNet),
			wantFn: errFn(pcp.UnsuppOption, 1800), check: wantMaps(0)},
		{name: "filter prefix 0 clears", req: mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optFilterPeer, optFilterNone),
			want: mapResp(life, "06", "1f90", "1f90", extV4, optFilterPeer, optFilterNone),
			check: func(t *testing.T, f *fakeCore) {
				if f.requests[0].RemoteHost.IsValid() {
					t.Errorf("filter kept: %+v", f.requests[0])
				}
			}},
		{name: "renewal without filter keeps it", setup: func(f *fakeCore) {
			mapOf(f, mapping.Request{Client: lanHost.Addr(), Proto: mapping.TCP, Internal: netip.AddrPortFrom(lanHost.Addr(), 8080),
				ExternalPort: 8080, Lifetime: time.Hour, RemoteHost: netip.MustParseAddr("203.0.113.50"), RemotePort: 80, Nonce: testNonce})
		}, req: ok, want: okResp, check: func(t *testing.T, f *fakeCore) {
			if r := f.requests[0]; r.RemoteHost != netip.MustParseAddr("203.0.113.50") || r.RemotePort != 80 {
				t.Errorf("filter dropped on renewal: %+v", r)
			}
		}},
		{name: "filter with lifetime 0 is MALFORMED_OPTION", req: mapReq("00000000", hostV4, "06", "1f90", "0000", anyV4, optFilterPeer),
			wantFn: errFn(pcp.MalformedOption, 1800)},
		{name: "prefer failure twice is MALFORMED_OPTION", req: mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optPreferFailure, optPreferFailure),
			wantFn: errFn(pcp.MalformedOption, 1800)},
		{name: "description", req: mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optDescription),
			want: mapResp(life, "06", "1f90", "1f90", extV4, optDescription),
			check: func(t *testing.T, f *fakeCore) {
				if f.requests[0].Description != "web" {
					t.Errorf("description %q", f.requests[0].Description)
				}
			}},
		{name: "unknown optional option ignored", req: mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optUnknownOpt),
			want: okResp},
		{name: "unknown mandatory option is UNSUPP_OPTION", req: mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optUnknownMand),
			wantFn: errFn(pcp.UnsuppOption, 1800), check: wantMaps(0)},
		{name: "third party refused by default (secure mode)", req: mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optThirdParty),
			wantFn: errFn(pcp.UnsuppOption, 1800), check: wantMaps(0)},
		{name: "third party allowed", mod: func(c *Config) { c.ThirdParty = true },
			req:  mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optThirdParty),
			want: mapResp(life, "06", "1f90", "1f90", extV4, optThirdParty),
			check: func(t *testing.T, f *fakeCore) {
				r := f.requests[0]
				if r.Client != lanHost.Addr() || r.Internal != netip.MustParseAddrPort("192.0.2.101:8080") {
					t.Errorf("core request %+v", r)
				}
			}},
		{name: "third party allowed with secure mode off", setup: func(f *fakeCore) { f.secure = false },
			req:  mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optThirdParty),
			want: mapResp(life, "06", "1f90", "1f90", extV4, optThirdParty),
			check: func(t *testing.T, f *fakeCore) {
				r := f.requests[0]
				if r.Client != lanHost.Addr() || r.Internal != netip.MustParseAddrPort("192.0.2.101:8080") {
					t.Errorf("core request %+v", r)
				}
			}},
		{name: "third party naming the sender is MALFORMED_REQUEST", mod: func(c *Config) { c.ThirdParty = true },
			req: mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optThirdSelf), wantFn: errFn(pcp.MalformedRequest, 1800)},
		{name: "third party off the LAN is UNSUPP_OPTION", mod: func(c *Config) { c.ThirdParty = true },
			req: mapReq(life, hostV4, "06", "1f90", "1f90", anyV4, optThirdOffLAN), wantFn: errFn(pcp.UnsuppOption, 1800)},
		{name: "address mismatch", req: mapReq(life, otherV4, "06", "1f90", "1f90", anyV4),
			want: "0281 000c 00000708" + epochHex + zeros12 + nonceHex + "06000000 1f90 1f90" + anyV4},
		{name: "not authorized", setup: func(f *fakeCore) { f.mapErr = errNotAuth }, req: ok, wantFn: errFn(pcp.NotAuthorized, 1800)},
		{name: "no resources", setup: func(f *fakeCore) { f.mapErr = errNoRes }, req: ok, wantFn: errFn(pcp.NoResources, 30)},
		{name: "quota", setup: func(f *fakeCore) { f.mapErr = errQuota }, req: ok, wantFn: errFn(pcp.UserExQuota, 30)},
		{name: "network failure", setup: func(f *fakeCore) { f.mapErr = errNetFail }, req: ok, wantFn: errFn(pcp.NetworkFailure, 30)},
		{name: "core timeout is NETWORK_FAILURE", setup: func(f *fakeCore) { f.hang = true }, req: ok, wantFn: errFn(pcp.NetworkFailure, 30)},
		{name: "core error lifetime passed on", setup: func(f *fakeCore) {
			f.mapErr = &mapping.Error{Code: mapping.CodeNoResources, Lifetime: 77 * time.Second}
		}, req: ok, wantFn: errFn(pcp.NoResources, 77)},
		{name: "all protocols is UNSUPP_PROTOCOL", req: mapReq(life, hostV4, "00", "0000", "0000", anyV4),
			wantFn: errFn(pcp.UnsuppProtocol, 1800)},
		{name: "all ports is UNSUPP_PROTOCOL", req: mapReq(life, hostV4, "11", "0000", "0000", anyV4),
			wantFn: errFn(pcp.UnsuppProtocol, 1800)},
		{name: "sctp is UNSUPP_PROTOCOL", req: mapReq(life, hostV4, "84", "1f90", "1f90", anyV4),
			wantFn: errFn(pcp.UnsuppProtocol, 1800)},
		{name: "protocol 0 with a port is MALFORMED_REQUEST", req: mapReq(life, hostV4, "00", "1f90", "0000", anyV4),
			wantFn: errFn(pcp.MalformedRequest, 1800)},
		{name: "delete", setup: func(f *fakeCore) {
			mapOf(f, mapping.Request{Client: lanHost.Addr(), Proto: mapping.TCP, Internal: netip.AddrPortFrom(lanHost.Addr(), 8080), Lifetime: time.Hour, Nonce: testNonce})
		}, req: mapReq("00000000", hostV4, "06", "1f90", "0000", anyV4),
			want: mapResp("00000000", "06", "1f90", "0000", anyV4), check: wantMaps(0)},
		{name: "delete what does not exist succeeds", req: mapReq("00000000", hostV4, "06", "1f90", "0000", anyV4),
			want: mapResp("00000000", "06", "1f90", "0000", anyV4),
			check: func(t *testing.T, f *fakeCore) {
				if len(f.deletes) != 1 || f.deletes[0].Nonce == nil || *f.deletes[0].Nonce != testNonce {
					t.Errorf("delete not passed to the core with the nonce: %+v", f.deletes)
				}
			}},
		{name: "delete with another nonce is NOT_AUTHORIZED", setup: func(f *fakeCore) {
			mapOf(f, mapping.Request{Client: lanHost.Addr(), Proto: mapping.TCP, Internal: netip.AddrPortFrom(lanHost.Addr(), 8080), Lifetime: time.Hour})
		}, req: mapReq("00000000", hostV4, "06", "1f90", "0000", anyV4), wantFn: errFn(pcp.NotAuthorized, 3600), check: wantMaps(1)},
		{name: "delete all-ports succeeds", req: mapReq("00000000", hostV4, "06", "0000", "0000", anyV4),
			want: mapResp("00000000", "06", "0000", "0000", anyV4)},
		// As miniupnpd: an all-ports delete removes the requester's PCP
		// mappings of the protocol made with the nonce.
		{name: "delete all-ports deletes the nonce's mappings", setup: func(f *fakeCore) {
			for _, p := range []uint16{8080, 9090} {
				mapOf(f, mapping.Request{Origin: mapping.OriginPCP, Client: lanHost.Addr(), Proto: mapping.TCP,
					Internal: netip.AddrPortFrom(lanHost.Addr(), p), Lifetime: time.Hour, Nonce: testNonce})
			}
			mapOf(f, mapping.Request{Origin: mapping.OriginPCP, Client: lanHost.Addr(), Proto: mapping.UDP,
				Internal: netip.AddrPortFrom(lanHost.Addr(), 8080), Lifetime: time.Hour, Nonce: testNonce})
			mapOf(f, mapping.Request{Origin: mapping.OriginPCP, Client: lanHost.Addr(), Proto: mapping.TCP,
				Internal: netip.AddrPortFrom(lanHost.Addr(), 7070), Lifetime: time.Hour})
			mapOf(f, mapping.Request{Origin: mapping.OriginUPnP, Client: lanHost.Addr(), Proto: mapping.TCP,
				Internal: netip.AddrPortFrom(lanHost.Addr(), 6060), Lifetime: time.Hour})
		}, req: mapReq("00000000", hostV4, "06", "0000", "0000", anyV4),
			want: mapResp("00000000", "06", "0000", "0000", anyV4),
			check: func(t *testing.T, f *fakeCore) {
				var left []uint16
				for _, m := range f.snapshot() {
					left = append(left, m.Internal.Port())
				}
				if fmt.Sprint(left) != "[8080 7070 6060]" {
					t.Errorf("internal ports left %v, want the UDP one, the other nonce's and the UPnP one", left)
				}
			}},
		{name: "delete all-ports of other nonces only is NOT_AUTHORIZED", setup: func(f *fakeCore) {
			mapOf(f, mapping.Request{Origin: mapping.OriginPCP, Client: lanHost.Addr(), Proto: mapping.TCP,
				Internal: netip.AddrPortFrom(lanHost.Addr(), 7070), Lifetime: time.Hour})
		}, req: mapReq("00000000", hostV4, "06", "0000", "0000", anyV4), wantFn: errFn(pcp.NotAuthorized, 1800), check: wantMaps(1)},
		{name: "prefer failure with another suggested address is CANNOT_PROVIDE_EXTERNAL",
			req:    mapReq(life, hostV4, "06", "1f90", "1f90", otherV4, optPreferFailure),
			wantFn: errFn(pcp.CannotProvideExternal, 30), check: wantMaps(0)},
		{name: "prefer failure with the external address maps", req: mapReq(life, hostV4, "06", "1f90", "1f90", extV4, optPreferFailure),
			want: mapResp(life, "06", "1f90", "1f90", extV4, optPreferFailure)},
		{name: "another suggested address without prefer failure maps", req: mapReq(life, hostV4, "06", "1f90", "1f90", otherV4),
			want: okResp},
		{name: "ipv6 pinhole", src: lanHost6, dst: cpeLAN6,
			req:  mapReq(life, hostV6, "06", "1f90", "0000", anyV6),
			want: mapResp(life, "06", "1f90", "1f90", hostV6)},
		{name: "ipv6 pinholes disabled", src: lanHost6, dst: cpeLAN6, setup: func(f *fakeCore) { f.pinholes = false },
			req: mapReq(life, hostV6, "06", "1f90", "0000", anyV6), wantFn: errFn(pcp.NotAuthorized, 1800)},
		{name: "ipv6 link-local source refused", src: netip.MustParseAddrPort("[fe80::100%c0]:40001"), dst: netip.MustParseAddr("fe80::1%c0"),
			req: mapReq(life, "fe800000000000000000000000000100", "06", "1f90", "0000", anyV6), wantFn: errFn(pcp.NotAuthorized, 1800), check: wantMaps(0)},
		{name: "ipv6 link-local announce", src: netip.MustParseAddrPort("[fe80::100%c0]:40001"), dst: netip.MustParseAddr("fe80::1%c0"),
			req: "0200 0000 00000000 fe800000000000000000000000000100", want: "0280 0000 00000000" + epochHex + zeros12},
		{name: "announce", req: "0200 0000 00000000" + hostV4, want: "0280 0000 00000000" + epochHex + zeros12},
		{name: "announce with an option", req: "0200 0000 00000000" + hostV4 + optUnknownOpt, want: "0280 0000 00000000" + epochHex + zeros12},
		{name: "announce address mismatch", req: "0200 0000 00000000" + otherV4, wantFn: errFn(pcp.AddressMismatch, 1800)},
		{name: "peer goes to the core", req: peerReq(life, hostV4, "1f90"),
			// The fake core answers the internal port + 10000 (0x46a0).
			want: "0282 0000" + life + epochHex + zeros12 + nonceHex + "06000000 1f90 46a0" + extV4 + "0050 0000" + peerV4,
			check: func(t *testing.T, f *fakeCore) {
				want := []mapping.PeerRequest{{Client: lanHost.Addr(), Proto: mapping.TCP, Internal: netip.AddrPortFrom(lanHost.Addr(), 8080),
					Remote: netip.MustParseAddrPort("203.0.113.50:80"), Lifetime: time.Hour, Nonce: testNonce}}
				if diff := cmp.Diff(want, f.peers, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
					cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
					t.Errorf("core PEER (-want +got):\n%s", diff)
				}
			}},
		{name: "peer the upstream cannot make is UNSUPP_OPCODE", setup: func(f *fakeCore) {
			f.peerErr = &mapping.Error{Code: mapping.CodeUnsupported}
		}, req: peerReq(life, hostV4, "1f90"), wantFn: errFn(pcp.UnsuppOpcode, 1800)},
		{name: "peer without an answer upstream is NETWORK_FAILURE", setup: func(f *fakeCore) { f.peerErr = errNetFail },
			req: peerReq(life, hostV4, "1f90"), wantFn: errFn(pcp.NetworkFailure, 30)},
		{name: "peer with prefer failure is MALFORMED_REQUEST", req: peerReq(life, hostV4, "1f90", optPreferFailure), wantFn: errFn(pcp.MalformedRequest, 1800)},
		{name: "peer for another host with secure mode off", setup: func(f *fakeCore) { f.secure = false },
			req:  peerReq(life, hostV4, "1f90", optThirdParty),
			want: "0282 0000" + life + epochHex + zeros12 + nonceHex + "06000000 1f90 46a0" + extV4 + "0050 0000" + peerV4 + optThirdParty,
			check: func(t *testing.T, f *fakeCore) {
				if r := f.peers[0]; r.Client != lanHost.Addr() || r.Internal != netip.MustParseAddrPort("192.0.2.101:8080") {
					t.Errorf("core PEER %+v", r)
				}
			}},
		{name: "peer to an invalid peer is MALFORMED_REQUEST",
			req:    "0202 0000" + life + hostV4 + nonceHex + "06000000 1f90 0000" + anyV4 + "0050 0000" + "00000000000000000000ffff7f000001",
			wantFn: errFn(pcp.MalformedRequest, 1800)},
		{name: "ipv6 peer is stateless", src: lanHost6, dst: cpeLAN6,
			req:  "0202 0000" + life + hostV6 + nonceHex + "11000000 1f90 0000" + anyV6 + "0050 0000" + "20010db8000200000000000000000050",
			want: "0282 0000" + life + epochHex + zeros12 + nonceHex + "11000000 1f90 1f90" + hostV6 + "0050 0000" + "20010db8000200000000000000000050"},
		{name: "unknown opcode is UNSUPP_OPCODE", req: "0205 0000" + life + hostV4 + "11223344", wantFn: errFn(pcp.UnsuppOpcode, 1800)},
		{name: "version 1 is UNSUPP_VERSION", req: "0101 0000" + life + hostV4,
			want: "0281 0001 00000708" + epochHex + "00000000 0000ffff c0000264"},
		{name: "version 3 is UNSUPP_VERSION", req: "0301 0000", want: "0281 0001 00000708" + epochHex + zeros12},
		{name: "NAT-PMP off: version 0 is UNSUPP_VERSION", mod: func(c *Config) { c.NATPMP = false }, req: "0000",
			want: "0280 0001 00000708" + epochHex + zeros12},
		{name: "truncated map is MALFORMED_REQUEST", req: "0201 0000" + life + hostV4 + nonceHex + "06000000", wantFn: errFn(pcp.MalformedRequest, 1800)},
		{name: "not a multiple of 4 is MALFORMED_REQUEST", req: ok + "00", wantFn: errFn(pcp.MalformedRequest, 1800)},
		{name: "longer than 1100 is MALFORMED_REQUEST", req: ok + long, wantFn: errFn(pcp.MalformedRequest, 1800)},
		{name: "R bit set is ignored", req: "0281 0000" + life + hostV4},
		{name: "shorter than 24 is ignored", req: "0201 0000" + life},
		{name: "not to a LAN address", dst: cpeWAN, req: ok},
	})
}
