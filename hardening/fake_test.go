package hardening_test

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/natpmp"
	"github.com/pcpgw/pcpgw/pcp"
)

// t0 is the fake clock's start of epoch; every request of the unit tests
// arrives at t0+1000 s, so every answer carries epoch 1000.
var (
	t0    = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tNow  = t0.Add(1000 * time.Second)
	extIP = netip.MustParseAddr("203.0.113.1")

	// The test LAN is the loopback interface: 127.0.0.1 is both a LAN
	// address of the server and the requesting host; 127.0.0.2 is another
	// host on the same prefix.
	lo     = netip.MustParseAddr("127.0.0.1")
	loPeer = netip.MustParseAddr("127.0.0.2")
	src    = netip.AddrPortFrom(lo, 40000)
)

// fakeCore implements natpmp.Core: Map grants what is asked (the
// suggested external port, else 40000), Delete deletes nothing, and every
// call is recorded so that a test can tell that a refused packet never
// reached the core.
type fakeCore struct {
	mu    sync.Mutex
	maps  []mapping.Request
	dels  []mapping.Selector
	finds int
	exts  int
}

var _ natpmp.Core = (*fakeCore)(nil)

func (f *fakeCore) Map(_ context.Context, r mapping.Request) (mapping.Mapping, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maps = append(f.maps, r)
	port := r.ExternalPort
	if port == 0 {
		port = 40000
	}
	return mapping.Mapping{
		ID: uint32(len(f.maps)), Origin: r.Origin, Client: r.Client, Proto: r.Proto,
		Internal: r.Internal, External: netip.AddrPortFrom(extIP, port),
		Description: r.Description, Nonce: r.Nonce, Created: tNow, Expires: tNow.Add(r.Lifetime),
	}, nil
}

func (f *fakeCore) Delete(_ context.Context, s mapping.Selector) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dels = append(f.dels, s)
	return 0, nil
}

func (f *fakeCore) Find(mapping.Selector) []mapping.Mapping {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finds++
	return nil
}

func (f *fakeCore) ExternalAddr(context.Context) (netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exts++
	return extIP, nil
}

func (f *fakeCore) Epoch(now time.Time) uint32 { return uint32(now.Sub(t0) / time.Second) }

func (f *fakeCore) Subscribe() (<-chan mapping.Event, func()) {
	return make(chan mapping.Event), func() {}
}

func (f *fakeCore) PinholesEnabled() bool { return true }

// Peer answers the internal port on the external address.
func (f *fakeCore) Peer(_ context.Context, r mapping.PeerRequest) (mapping.PeerResult, error) {
	return mapping.PeerResult{External: netip.AddrPortFrom(extIP, r.Internal.Port()), Lifetime: r.Lifetime}, nil
}

// SecureMode is on, as by default.
func (f *fakeCore) SecureMode() bool { return true }

// AwaitUpstream returns at once: the upstream is known.
func (f *fakeCore) AwaitUpstream(context.Context) {}

// calls is how many times the core was asked anything that could change
// or reveal state.
func (f *fakeCore) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.maps) + len(f.dels) + f.finds + f.exts
}

func (f *fakeCore) lastMap(t *testing.T) mapping.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.maps) == 0 {
		t.Fatal("the core was never asked to map")
	}
	return f.maps[len(f.maps)-1]
}

func (f *fakeCore) lastDelete(t *testing.T) mapping.Selector {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.dels) == 0 {
		t.Fatal("the core was never asked to delete")
	}
	return f.dels[len(f.dels)-1]
}

// logCount is a slog.Handler that counts records by level; it is enabled
// at every level, so a per-packet log line at Debug would show.
type logCount struct {
	debug, other atomic.Int64
}

func (h *logCount) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCount) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logCount) WithGroup(string) slog.Handler            { return h }
func (h *logCount) Handle(_ context.Context, r slog.Record) error {
	if r.Level <= slog.LevelDebug {
		h.debug.Add(1)
	} else {
		h.other.Add(1)
	}
	return nil
}

// newServer returns a NAT-PMP/PCP server on the loopback "LAN" with a fake
// core, a fixed clock, no rate limit to speak of (the floods have their own
// test) and a log counter.
func newServer(t *testing.T, mod func(*natpmp.Config)) (*natpmp.Server, *fakeCore, *logCount) {
	t.Helper()
	core := &fakeCore{}
	logs := &logCount{}
	cfg := natpmp.Config{
		Core: core, Interfaces: []string{"lo"}, NATPMP: true, PCP: true, Port: -1,
		RatePerHost: 1e9, Burst: 1 << 30, Logger: slog.New(logs),
		Now: func() time.Time { return tNow },
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := natpmp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Stats() != (natpmp.Stats{}) {
		t.Fatal("fresh server with counters")
	}
	return s, core, logs
}

// nonce is the nonce of every PCP request of the unit tests.
var nonce = pcp.Nonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

// mapReq is a PCP MAP request from client for TCP port 8080, lifetime
// 3600 s, with opts, as AppendMarshal writes it.
func mapReq(client netip.Addr, mod func(*pcp.Request), opts ...pcp.Option) []byte {
	r := pcp.Request{
		Opcode: pcp.OpMap, Lifetime: 3600, Client: client,
		Map:     &pcp.Map{Nonce: nonce, Protocol: 6, InternalPort: 8080, ExternalAddr: netip.IPv4Unspecified()},
		Options: opts,
	}
	if mod != nil {
		mod(&r)
	}
	return r.AppendMarshal(nil)
}

// peerReq is a PCP PEER request from client, TCP 8080 to 198.51.100.7:443.
func peerReq(client netip.Addr, proto uint8) []byte {
	r := pcp.Request{
		Opcode: pcp.OpPeer, Lifetime: 3600, Client: client,
		Peer: &pcp.Peer{
			Map:        pcp.Map{Nonce: nonce, Protocol: proto, InternalPort: 8080, ExternalAddr: netip.IPv4Unspecified()},
			RemotePort: 443, RemoteAddr: netip.MustParseAddr("198.51.100.7"),
		},
	}
	return r.AppendMarshal(nil)
}

// natpmpMap is a NAT-PMP mapping request (RFC 6886 §3.3).
func natpmpMap(op uint8, internal, external uint16, lifetime uint32) []byte {
	r := pcp.NATPMPRequest{Opcode: op, InternalPort: internal, SuggestedExternalPort: external, Lifetime: lifetime}
	return r.AppendMarshal(nil)
}

// rawOption is an option header with the given length field followed by
// body, written by hand (AppendMarshal would write an honest length).
func rawOption(code pcp.OptionCode, length uint16, body []byte) []byte {
	b := []byte{byte(code), 0}
	b = binary.BigEndian.AppendUint16(b, length)
	return append(b, body...)
}

// wantPCPError is the error response RFC 6887 §8.2 and §7.2 ask for,
// worked out here independently of pcp.AppendErrorResponse: the request
// (at most 1100 octets) copied and zero-padded to a multiple of 4 and at
// least 24 octets, version 2, the R bit set on the opcode, the result
// code, the error lifetime (§7.4: 30 s for the short errors, 1800 s for
// the others), the epoch 1000, and octets 12-23 zero unless the header
// could not be parsed (UNSUPP_VERSION, MALFORMED_REQUEST: they keep the
// request's octets).
func wantPCPError(req []byte, code pcp.ResultCode) []byte {
	out := append([]byte(nil), req[:min(len(req), pcp.MaxSize)]...)
	for len(out)%4 != 0 || len(out) < pcp.HeaderSize {
		out = append(out, 0)
	}
	var lifetime uint32 = 1800
	switch code {
	case pcp.NetworkFailure, pcp.NoResources, pcp.UserExQuota, pcp.CannotProvideExternal:
		lifetime = 30
	}
	op := byte(0)
	if len(req) > 1 {
		op = req[1] & 0x7f
	}
	out[0], out[1], out[2], out[3] = pcp.Version, 0x80|op, 0, byte(code)
	binary.BigEndian.PutUint32(out[4:8], lifetime)
	binary.BigEndian.PutUint32(out[8:12], 1000)
	if code != pcp.UnsuppVersion && code != pcp.MalformedRequest {
		clear(out[12:24])
	}
	return out
}

// wantNATPMP is a NAT-PMP response (RFC 6886 §3.2, §3.3, §3.5): the
// 8-octet header for opcode op with result res and epoch 1000, plus for a
// mapping opcode the internal port, external port and lifetime.
func wantNATPMP(op uint8, res pcp.NATPMPResult, internal, external uint16, lifetime uint32) []byte {
	b := []byte{0, 0x80 | op}
	b = binary.BigEndian.AppendUint16(b, uint16(res))
	b = binary.BigEndian.AppendUint32(b, 1000)
	if op == pcp.NATPMPOpMapUDP || op == pcp.NATPMPOpMapTCP {
		b = binary.BigEndian.AppendUint16(b, internal)
		b = binary.BigEndian.AppendUint16(b, external)
		b = binary.BigEndian.AppendUint32(b, lifetime)
	}
	return b
}
