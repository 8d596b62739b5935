package hardening_test

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/natpmp"
	"github.com/pcpgw/pcpgw/pcp"
)

// udpCase is one datagram to natpmp.Server.Handle and what must come of it.
type udpCase struct {
	name string
	from netip.AddrPort // zero: src (127.0.0.1:40000)
	to   netip.Addr     // zero: lo (127.0.0.1, a LAN address)
	pkt  []byte
	want []byte // the exact reply; nil: silence
	// dropped names the counter a silence must add one to: "malformed"
	// or "notlan".
	dropped string
	// core: the packet may reach the core (a valid request); otherwise
	// the core must not be asked anything.
	core bool
}

func runUDPCases(t *testing.T, s *natpmp.Server, core *fakeCore, cases []udpCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			from, to := c.from, c.to
			if !from.IsValid() {
				from = src
			}
			if !to.IsValid() {
				to = lo
			}
			before, calls := s.Stats(), core.calls()
			got := s.Handle(from, to, c.pkt, tNow)
			after := s.Stats()
			if c.want == nil {
				if got != nil {
					t.Fatalf("answered % x, want silence", got)
				}
			} else if !bytes.Equal(got, c.want) {
				t.Fatalf("reply (-want +got):\n%s", cmp.Diff(hex.Dump(c.want), hex.Dump(got)))
			}
			wantMal, wantNotLAN, wantReplies := before.Malformed, before.NotLAN, before.Replies
			switch {
			case c.want != nil:
				wantReplies++
			case c.dropped == "malformed":
				wantMal++
			case c.dropped == "notlan":
				wantNotLAN++
			default:
				t.Fatalf("bad case: silence without a counter")
			}
			if after.Malformed != wantMal || after.NotLAN != wantNotLAN || after.Replies != wantReplies {
				t.Errorf("counters malformed/notlan/replies = %d/%d/%d, want %d/%d/%d",
					after.Malformed, after.NotLAN, after.Replies, wantMal, wantNotLAN, wantReplies)
			}
			if !c.core && core.calls() != calls {
				t.Errorf("the core was asked %d times for a packet that must not reach it", core.calls()-calls)
			}
		})
	}
}

func setRBit(b []byte) []byte { b = append([]byte(nil), b...); b[1] |= 0x80; return b }

func withOpcode(b []byte, op byte) []byte { b = append([]byte(nil), b...); b[1] = op; return b }

func withVersion(b []byte, v byte) []byte { b = append([]byte(nil), b...); b[0] = v; return b }

func pad(b []byte, n int) []byte { return append(append([]byte(nil), b...), make([]byte, n)...) }

// TestShortAndResponsePacketsSilent: datagrams too short to answer
// (RFC 6887 §8.2: under 2 octets, or a version-2 header under 24; RFC 6886:
// a mapping request under 12), responses sent to the server (PCP R bit,
// NAT-PMP opcode >= 128: RFC 6887 §8.2, RFC 6886 §3.5), impossible
// source addresses, and packets to an address that is not a LAN address
// of pcpgw (RFC 6886 §3.3 / REQUIREMENTS 22): no reply at all, one count.
func TestShortAndResponsePacketsSilent(t *testing.T) {
	s, core, _ := newServer(t, nil)
	req := mapReq(lo, nil)
	cases := []udpCase{
		{name: "empty", pkt: []byte{}, dropped: "malformed"},
		{name: "one octet PCP", pkt: []byte{2}, dropped: "malformed"},
		{name: "one octet NAT-PMP", pkt: []byte{0}, dropped: "malformed"},
		{name: "PCP 4 octets", pkt: req[:4], dropped: "malformed"},
		{name: "PCP 20 octets", pkt: req[:20], dropped: "malformed"},
		{name: "PCP 23 octets", pkt: req[:23], dropped: "malformed"},
		{name: "PCP R bit set on MAP", pkt: setRBit(req), dropped: "malformed"},
		{name: "PCP R bit set on ANNOUNCE", pkt: setRBit(pad([]byte{2, 0}, 22)), dropped: "malformed"},
		{name: "PCP R bit set, version 3", pkt: setRBit(withVersion(req, 3)), dropped: "malformed"},
		{name: "NAT-PMP response opcode 128", pkt: pad([]byte{0, 128}, 10), dropped: "malformed"},
		{name: "NAT-PMP response opcode 130", pkt: setRBit(natpmpMap(2, 8080, 8080, 3600)), dropped: "malformed"},
		{name: "NAT-PMP map 2 octets", pkt: []byte{0, 2}, dropped: "malformed"},
		{name: "NAT-PMP map 11 octets", pkt: natpmpMap(1, 8080, 8080, 3600)[:11], dropped: "malformed"},
		{name: "source port 0", from: netip.AddrPortFrom(lo, 0), pkt: req, dropped: "malformed"},
		{name: "multicast source", from: netip.MustParseAddrPort("224.0.0.1:5350"), pkt: req, dropped: "malformed"},
		{name: "unspecified source", from: netip.MustParseAddrPort("0.0.0.0:5350"), pkt: req, dropped: "malformed"},
		{name: "to the WAN address", to: netip.MustParseAddr("100.64.0.2"), pkt: req, dropped: "notlan"},
		{name: "to the WAN IPv6 address", to: netip.MustParseAddr("2001:db8:ff::2"), pkt: natpmpMap(2, 8080, 8080, 3600), dropped: "notlan"},
		{name: "to a multicast group", to: netip.MustParseAddr("224.0.0.1"), pkt: []byte{0, 0}, dropped: "notlan"},
	}
	runUDPCases(t, s, core, cases)
}

// TestLengthAndAlignmentErrors: PCP requests longer than 1100 octets, not
// a multiple of 4, or ending inside the opcode payload get
// MALFORMED_REQUEST with the request echoed (RFC 6887 §7, §8.2), the echo
// never longer than 1100 octets (no amplification); the length check comes
// before the client address check.
func TestLengthAndAlignmentErrors(t *testing.T) {
	s, core, _ := newServer(t, nil)
	req := mapReq(lo, nil)
	long := pad(req, pcp.MaxSize-len(req)+4) // 1104 octets
	mismatch := mapReq(netip.MustParseAddr("127.0.0.9"), nil)
	cases := []udpCase{
		{name: "1104 octets", pkt: long, want: wantPCPError(long, pcp.MalformedRequest)},
		{name: "1101 octets", pkt: long[:1101], want: wantPCPError(long[:1101], pcp.MalformedRequest)},
		{name: "64 KiB", pkt: pad(req, 65000), want: wantPCPError(pad(req, 65000), pcp.MalformedRequest)},
		{name: "61 octets", pkt: pad(req, 1), want: wantPCPError(pad(req, 1), pcp.MalformedRequest)},
		{name: "62 octets", pkt: pad(req, 2), want: wantPCPError(pad(req, 2), pcp.MalformedRequest)},
		{name: "25 octets", pkt: req[:25], want: wantPCPError(req[:25], pcp.MalformedRequest)},
		{name: "misaligned before address mismatch", pkt: pad(mismatch, 3), want: wantPCPError(pad(mismatch, 3), pcp.MalformedRequest)},
		{name: "MAP payload truncated", pkt: req[:44], want: wantPCPError(req[:44], pcp.MalformedRequest)},
		{name: "MAP header only", pkt: req[:24], want: wantPCPError(req[:24], pcp.MalformedRequest)},
		{name: "PEER payload truncated", pkt: peerReq(lo, 6)[:60], want: wantPCPError(peerReq(lo, 6)[:60], pcp.MalformedRequest)},
		{name: "client address mismatch", pkt: mismatch, want: wantPCPError(mismatch, pcp.AddressMismatch)},
		{name: "unknown opcode 3", pkt: withOpcode(req, 3), want: wantPCPError(withOpcode(req, 3), pcp.UnsuppOpcode)},
		{name: "unknown opcode 127", pkt: withOpcode(req, 127), want: wantPCPError(withOpcode(req, 127), pcp.UnsuppOpcode)},
	}
	runUDPCases(t, s, core, cases)
	if n := len(long); n != 1104 {
		t.Fatalf("long packet is %d octets", n)
	}
}

// TestOptionAttacks: an option whose length runs past the datagram, a
// mandatory option twice, an unknown mandatory option, an option not valid
// for the opcode (RFC 6887 §7.3, §13), THIRD_PARTY_ID alone (RFC 7843
// §5.2): the matching error with the request echoed and nothing asked of
// the core; an unknown optional option is ignored (§7.3).
func TestOptionAttacks(t *testing.T) {
	s, core, _ := newServer(t, nil)
	withExt := func(r *pcp.Request) { r.Map.ExternalPort = 8080 }
	desc := pcp.Option{Code: pcp.OptDescription, Description: "web"}
	pf := pcp.Option{Code: pcp.OptPreferFailure}
	filter := pcp.Option{Code: pcp.OptFilter, Filter: pcp.Filter{Prefix: netip.MustParsePrefix("198.51.100.7/32"), RemotePort: 443}}
	raw := func(opts ...[]byte) []byte {
		b := mapReq(lo, nil)
		for _, o := range opts {
			b = append(b, o...)
		}
		return b
	}
	errCase := func(name string, pkt []byte, code pcp.ResultCode) udpCase {
		return udpCase{name: name, pkt: pkt, want: wantPCPError(pkt, code)}
	}
	announceFilter := (&pcp.Request{Opcode: pcp.OpAnnounce, Client: lo, Options: []pcp.Option{filter}}).AppendMarshal(nil)
	cases := []udpCase{
		errCase("length 1024 past the end", raw(rawOption(pcp.OptDescription, 1024, []byte("abcd"))), pcp.MalformedOption),
		errCase("length 65535 past the end", raw(rawOption(pcp.OptDescription, 0xffff, []byte("abcd"))), pcp.MalformedOption),
		errCase("length 5 with 4 octets", raw(rawOption(pcp.OptDescription, 5, []byte("abcd"))), pcp.MalformedOption),
		errCase("FILTER length 16 of 20", raw(rawOption(pcp.OptFilter, 16, make([]byte, 16))), pcp.MalformedOption),
		errCase("THIRD_PARTY length 4", raw(rawOption(pcp.OptThirdParty, 4, []byte{127, 0, 0, 2})), pcp.MalformedOption),
		errCase("PREFER_FAILURE twice", mapReq(lo, withExt, pf, pf), pcp.MalformedOption),
		errCase("DESCRIPTION twice", mapReq(lo, nil, desc, desc), pcp.MalformedOption),
		errCase("THIRD_PARTY twice", mapReq(lo, nil,
			pcp.Option{Code: pcp.OptThirdParty, ThirdParty: loPeer},
			pcp.Option{Code: pcp.OptThirdParty, ThirdParty: loPeer}), pcp.MalformedOption),
		errCase("unknown mandatory option 4", raw(rawOption(4, 0, nil)), pcp.UnsuppOption),
		errCase("unknown mandatory option 127", raw(rawOption(127, 4, []byte("abcd"))), pcp.UnsuppOption),
		errCase("unknown mandatory after a valid one", mapReq(lo, nil, desc, pcp.Option{Code: 99, Raw: []byte{}}), pcp.UnsuppOption),
		errCase("FILTER in ANNOUNCE", announceFilter, pcp.MalformedOption),
		errCase("PREFER_FAILURE with lifetime 0", mapReq(lo, func(r *pcp.Request) { withExt(r); r.Lifetime = 0 }, pf), pcp.MalformedOption),
		errCase("THIRD_PARTY_ID without THIRD_PARTY", mapReq(lo, nil, pcp.Option{Code: pcp.OptThirdPartyID, Raw: []byte{1, 2, 3, 4}}), pcp.ThirdPartyMissingOption),
	}
	runUDPCases(t, s, core, cases)

	// An unknown optional option (128-191 range, here 200) is skipped and
	// not echoed; the mapping is made.
	t.Run("unknown optional option ignored", func(t *testing.T) {
		pkt := raw(rawOption(200, 4, []byte("abcd")))
		r := s.Handle(src, lo, pkt, tNow)
		resp, err := pcp.ParseResponse(r)
		if err != nil {
			t.Fatalf("reply % x: %v", r, err)
		}
		if resp.Result != pcp.Success || len(resp.Options) != 0 {
			t.Errorf("result %v with %d options, want SUCCESS and none", resp.Result, len(resp.Options))
		}
		if got := core.lastMap(t); got.Internal != netip.AddrPortFrom(lo, 8080) {
			t.Errorf("core mapped %v", got.Internal)
		}
	})
}

// TestVersionErrors: versions 1, 3 and up (and the one of a disabled
// protocol) get the "unsupported version" answer of the protocols served
// (RFC 6887 §9 and Appendix A, RFC 6886 §3.5), never a mapping; a
// 2-octet datagram gets at most the 24-octet PCP header back.
func TestVersionErrors(t *testing.T) {
	req := mapReq(lo, nil)
	var cases []udpCase
	for _, v := range []byte{1, 3, 4, 0x7f, 0xff} {
		p := withVersion(req, v)
		cases = append(cases,
			udpCase{name: "PCP server, version " + strconv.Itoa(int(v)), pkt: p, want: wantPCPError(p, pcp.UnsuppVersion)},
			udpCase{name: "PCP server, version " + strconv.Itoa(int(v)) + ", 2 octets", pkt: p[:2], want: wantPCPError(p[:2], pcp.UnsuppVersion)})
	}
	s, core, _ := newServer(t, nil)
	runUDPCases(t, s, core, cases)

	t.Run("NAT-PMP only", func(t *testing.T) {
		s, core, _ := newServer(t, func(c *natpmp.Config) { c.PCP = false })
		runUDPCases(t, s, core, []udpCase{
			{name: "version 2 MAP", pkt: req, want: wantNATPMP(1, pcp.NATPMPUnsuppVersion, 0, 0, 0)[:8]},
			{name: "version 1", pkt: withVersion(req, 1), want: wantNATPMP(1, pcp.NATPMPUnsuppVersion, 0, 0, 0)[:8]},
			{name: "version 255, 2 octets", pkt: []byte{255, 0}, want: wantNATPMP(0, pcp.NATPMPUnsuppVersion, 0, 0, 0)},
		})
	})
	t.Run("PCP only", func(t *testing.T) {
		s, core, _ := newServer(t, func(c *natpmp.Config) { c.NATPMP = false })
		p := natpmpMap(2, 8080, 8080, 3600)
		runUDPCases(t, s, core, []udpCase{
			{name: "version 0 map", pkt: p, want: wantPCPError(p, pcp.UnsuppVersion)},
		})
	})
}

// TestNATPMPOpcodeAndPortAttacks: NAT-PMP with an unknown opcode gets
// UNSUPP_OPCODE (RFC 6886 §3.5); internal port 0 with a lifetime asks for
// "all ports" and is refused before the core; a request from an IPv6 host
// (NAT-PMP is IPv4 only) is refused; octets past the 12 of a mapping
// request are ignored.
func TestNATPMPOpcodeAndPortAttacks(t *testing.T) {
	s, core, _ := newServer(t, nil)
	v6 := netip.MustParseAddrPort("[::1]:40000")
	cases := []udpCase{
		{name: "opcode 3", pkt: pad([]byte{0, 3}, 10), want: wantNATPMP(3, pcp.NATPMPUnsuppOpcode, 0, 0, 0)},
		{name: "opcode 127, 2 octets", pkt: []byte{0, 127}, want: wantNATPMP(127, pcp.NATPMPUnsuppOpcode, 0, 0, 0)},
		{name: "internal port 0, TCP", pkt: natpmpMap(2, 0, 8080, 3600), want: wantNATPMP(2, pcp.NATPMPNotAuthorized, 0, 0, 0)},
		{name: "internal port 0, UDP, max lifetime", pkt: natpmpMap(1, 0, 0, 1<<32-1), want: wantNATPMP(1, pcp.NATPMPNotAuthorized, 0, 0, 0)},
		{name: "from an IPv6 host", from: v6, to: netip.IPv6Loopback(), pkt: natpmpMap(2, 8080, 8080, 3600), want: wantNATPMP(2, pcp.NATPMPNotAuthorized, 8080, 0, 0)},
	}
	runUDPCases(t, s, core, cases)
	t.Run("trailing octets ignored", func(t *testing.T) {
		got := s.Handle(src, lo, pad(natpmpMap(2, 8080, 9090, 3600), 100), tNow)
		if want := wantNATPMP(2, pcp.NATPMPSuccess, 8080, 9090, 3600); !bytes.Equal(got, want) {
			t.Errorf("reply % x, want % x", got, want)
		}
	})
}

// TestLifetimeExtremes: lifetime 2^32-1 is clamped to the maximum (86400 s,
// RFC 6887 §15) in the answer and in what the core is asked, for PCP and
// NAT-PMP; lifetime 0 deletes only the sender's own mapping (RFC 6886
// §3.4: internal port 0 means all of them) and answers lifetime 0.
func TestLifetimeExtremes(t *testing.T) {
	s, core, _ := newServer(t, nil)
	max := func(r *pcp.Request) { r.Lifetime = 1<<32 - 1 }
	t.Run("PCP 2^32-1", func(t *testing.T) {
		resp, err := pcp.ParseResponse(s.Handle(src, lo, mapReq(lo, max), tNow))
		if err != nil || resp.Result != pcp.Success || resp.Lifetime != 86400 {
			t.Fatalf("result %v lifetime %d (%v), want SUCCESS 86400", resp.Result, resp.Lifetime, err)
		}
		if got := core.lastMap(t).Lifetime; got != 86400*time.Second {
			t.Errorf("core asked for %v", got)
		}
	})
	t.Run("PCP 0", func(t *testing.T) {
		resp, err := pcp.ParseResponse(s.Handle(src, lo, mapReq(lo, func(r *pcp.Request) { r.Lifetime = 0 }), tNow))
		if err != nil || resp.Result != pcp.Success || resp.Lifetime != 0 {
			t.Fatalf("result %v lifetime %d (%v), want SUCCESS 0", resp.Result, resp.Lifetime, err)
		}
		want := mapping.Selector{Client: lo, Proto: mapping.TCP, Internal: netip.AddrPortFrom(lo, 8080)}
		got := core.lastDelete(t)
		if got.Nonce == nil || *got.Nonce != mapping.Nonce(nonce) {
			t.Errorf("delete without the request's nonce: %v", got.Nonce)
		}
		got.Nonce = nil
		if got != want {
			t.Errorf("core delete %+v, want %+v", got, want)
		}
	})
	t.Run("NAT-PMP 2^32-1", func(t *testing.T) {
		got := s.Handle(src, lo, natpmpMap(1, 5353, 5353, 1<<32-1), tNow)
		if want := wantNATPMP(1, pcp.NATPMPSuccess, 5353, 5353, 86400); !bytes.Equal(got, want) {
			t.Errorf("reply % x, want % x", got, want)
		}
	})
	t.Run("NAT-PMP 0, port 0", func(t *testing.T) {
		got := s.Handle(src, lo, natpmpMap(2, 0, 9999, 0), tNow)
		if want := wantNATPMP(2, pcp.NATPMPSuccess, 0, 0, 0); !bytes.Equal(got, want) {
			t.Errorf("reply % x, want % x", got, want)
		}
		// NAT-PMP deletes NAT-PMP's own mappings only (as miniupnpd).
		want := mapping.Selector{Client: lo, Origin: mapping.OriginNATPMP, Proto: mapping.TCP, Internal: netip.AddrPortFrom(lo, 0)}
		if got := core.lastDelete(t); got != want {
			t.Errorf("core delete %+v, want %+v", got, want)
		}
	})
}

// TestProtocolAndPortAttacks: PCP MAP for internal port 0 ("all ports"),
// protocol 0 ("all protocols", a DMZ), protocol 0 with a port (malformed,
// RFC 6887 §11.1, also in a delete, §15.1), and protocols other than TCP
// and UDP: refused without asking the core.
func TestProtocolAndPortAttacks(t *testing.T) {
	s, core, _ := newServer(t, nil)
	mod := func(proto uint8, port uint16, lifetime uint32) func(*pcp.Request) {
		return func(r *pcp.Request) { r.Map.Protocol, r.Map.InternalPort, r.Lifetime = proto, port, lifetime }
	}
	errCase := func(name string, pkt []byte, code pcp.ResultCode) udpCase {
		return udpCase{name: name, pkt: pkt, want: wantPCPError(pkt, code)}
	}
	cases := []udpCase{
		errCase("internal port 0", mapReq(lo, mod(6, 0, 3600)), pcp.UnsuppProtocol),
		errCase("all protocols, all ports", mapReq(lo, mod(0, 0, 3600)), pcp.UnsuppProtocol),
		errCase("protocol 0 with a port", mapReq(lo, mod(0, 8080, 3600)), pcp.MalformedRequest),
		errCase("protocol 0 with a port, delete", mapReq(lo, mod(0, 8080, 0)), pcp.MalformedRequest),
		errCase("ICMP", mapReq(lo, mod(1, 8080, 3600)), pcp.UnsuppProtocol),
		errCase("SCTP", mapReq(lo, mod(132, 8080, 3600)), pcp.UnsuppProtocol),
		errCase("protocol 255", mapReq(lo, mod(255, 8080, 3600)), pcp.UnsuppProtocol),
		errCase("PEER ICMP", peerReq(lo, 1), pcp.UnsuppProtocol),
		errCase("PEER protocol 0 with a port", peerReq(lo, 0), pcp.MalformedRequest),
	}
	runUDPCases(t, s, core, cases)
}

// TestThirdPartyIsSender: THIRD_PARTY naming the sender itself (in any
// spelling: IPv4-mapped) is MALFORMED_REQUEST when THIRD_PARTY is enabled
// (RFC 6887 §13.1), UNSUPP_OPTION when it is not (the CPE default);
// THIRD_PARTY for an address off the LAN or for pcpgw's own is refused.
func TestThirdPartyIsSender(t *testing.T) {
	tp := func(a netip.Addr) pcp.Option { return pcp.Option{Code: pcp.OptThirdParty, ThirdParty: a} }
	errCase := func(name string, pkt []byte, code pcp.ResultCode) udpCase {
		return udpCase{name: name, pkt: pkt, want: wantPCPError(pkt, code)}
	}
	t.Run("disabled", func(t *testing.T) {
		s, core, _ := newServer(t, nil)
		runUDPCases(t, s, core, []udpCase{
			errCase("sender", mapReq(lo, nil, tp(lo)), pcp.UnsuppOption),
			errCase("another host", mapReq(lo, nil, tp(loPeer)), pcp.UnsuppOption),
		})
	})
	t.Run("enabled", func(t *testing.T) {
		s, core, _ := newServer(t, func(c *natpmp.Config) { c.ThirdParty = true })
		runUDPCases(t, s, core, []udpCase{
			errCase("sender", mapReq(lo, nil, tp(lo)), pcp.MalformedRequest),
			errCase("sender in PEER", append(peerReq(lo, 6), tpRaw(lo)...), pcp.MalformedRequest),
			errCase("off the LAN", mapReq(lo, nil, tp(netip.MustParseAddr("198.51.100.7"))), pcp.UnsuppOption),
			errCase("IPv6 loopback (pcpgw's own)", mapReq(lo, nil, tp(netip.IPv6Loopback())), pcp.UnsuppOption),
			errCase("unspecified", mapReq(lo, nil, tp(netip.IPv4Unspecified())), pcp.UnsuppOption),
		})
		// The one allowed case: another host of the LAN prefix; the core
		// is asked for that host, with the sender as the client (the core's
		// secure mode decides; TestSecureModeAcrossProtocols).
		r := s.Handle(src, lo, mapReq(lo, nil, tp(loPeer)), tNow)
		if resp, err := pcp.ParseResponse(r); err != nil || resp.Result != pcp.Success {
			t.Fatalf("THIRD_PARTY for another LAN host: %v %v", resp.Result, err)
		}
		got := core.lastMap(t)
		if got.Client != lo || got.Internal != netip.AddrPortFrom(loPeer, 8080) {
			t.Errorf("core asked client %v internal %v, want %v and %v:8080", got.Client, got.Internal, lo, loPeer)
		}
	})
}

// tpRaw is a THIRD_PARTY option for a, as the wire carries it.
func tpRaw(a netip.Addr) []byte {
	b := a.As16()
	return rawOption(pcp.OptThirdParty, 16, b[:])
}

// TestMalformedFloodNotLogged: 10,000 bad datagrams of every kind above
// are each counted once and produce at most the burst of the per-packet
// debug log limiter (10 lines), none above Debug: a LAN host cannot fill
// the log.
func TestMalformedFloodNotLogged(t *testing.T) {
	s, _, logs := newServer(t, nil)
	bad := [][]byte{{}, {2}, mapReq(lo, nil)[:23], setRBit(mapReq(lo, nil)), natpmpMap(1, 1, 1, 1)[:11], setRBit(natpmpMap(1, 1, 1, 1))}
	const n = 10000
	for i := range n {
		if r := s.Handle(src, lo, bad[i%len(bad)], tNow.Add(time.Duration(i)*time.Millisecond)); r != nil {
			t.Fatalf("packet %d answered", i)
		}
	}
	if got := s.Stats().Malformed; got != n {
		t.Errorf("malformed counter %d, want %d", got, n)
	}
	if d, o := logs.debug.Load(), logs.other.Load(); d > 20 || o != 0 {
		t.Errorf("%d debug and %d other log records for %d bad packets over 10 s; want at most 20 and 0", d, o, n)
	}
}
