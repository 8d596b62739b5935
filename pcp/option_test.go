package pcp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOptionBodies: known options whose body does not fit their definition
// are kept as Raw in a response (clients ignore them, error responses echo
// them); the typed fields are set only for good bodies.
func TestOptionBodies(t *testing.T) {
	addr16 := func(s string) []byte { a := netip.MustParseAddr(s).As16(); return a[:] }
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	tests := []struct {
		name string
		code OptionCode
		body []byte
		want Option // Raw filled in by the test when wantRaw
		raw  bool
	}{
		{name: "third party v6", code: OptThirdParty, body: addr16("2001:db8:1::100"),
			want: Option{Code: OptThirdParty, ThirdParty: netip.MustParseAddr("2001:db8:1::100")}},
		{name: "third party short", code: OptThirdParty, body: []byte{1, 2, 3, 4}, raw: true},
		{name: "prefer failure with body", code: OptPreferFailure, body: []byte{0}, raw: true},
		{name: "filter short", code: OptFilter, body: make([]byte, 16), raw: true},
		{name: "filter prefix 129", code: OptFilter, body: cat([]byte{0, 129, 0, 0}, addr16("2001:db8::")), raw: true},
		{name: "filter IPv4 prefix 95", code: OptFilter, body: cat([]byte{0, 95, 0, 0}, addr16("192.0.2.1")), raw: true},
		{name: "filter IPv4 /32", code: OptFilter, body: cat([]byte{0, 128, 0x1f, 0x90}, addr16("192.0.2.1")),
			want: Option{Code: OptFilter, Filter: Filter{Prefix: netip.MustParsePrefix("192.0.2.1/32"), RemotePort: 8080}}},
		{name: "filter none", code: OptFilter, body: cat([]byte{0, 0, 0, 0}, addr16("192.0.2.1")),
			want: Option{Code: OptFilter, Filter: Filter{Prefix: netip.PrefixFrom(netip.MustParseAddr("::ffff:192.0.2.1"), 0)}}},
		{name: "description invalid UTF-8", code: OptDescription, body: []byte{0xc3, 0x28}, raw: true},
		{name: "description too long", code: OptDescription, body: []byte(strings.Repeat("x", 1017)), raw: true},
		{name: "description empty", code: OptDescription, body: []byte{}, want: Option{Code: OptDescription}},
		{name: "prefix64 well-known", code: OptPrefix64, body: cat([]byte{0, 12}, addr16("64:ff9b::")[:12]),
			want: Option{Code: OptPrefix64, Prefix64: Prefix64{Prefix: netip.MustParsePrefix("64:ff9b::/96")}}},
		{name: "prefix64 /40 suffix list", code: OptPrefix64,
			body: cat([]byte{0, 5}, addr16("2001:db8:100::")[:5], []byte{0, 0, 0, 0, 0, 0, 0}, []byte{0, 1, 0, 16, 198, 51, 0, 0}),
			want: Option{Code: OptPrefix64, Prefix64: Prefix64{Prefix: netip.MustParsePrefix("2001:db8:100::/40"), Suffix: make([]byte, 7),
				IPv4Pfxs: []netip.Prefix{netip.MustParsePrefix("198.51.0.0/16")}}}},
		{name: "prefix64 short", code: OptPrefix64, body: make([]byte, 13), raw: true},
		{name: "prefix64 bad length", code: OptPrefix64, body: cat([]byte{0, 9}, make([]byte, 12)), raw: true},
		{name: "prefix64 count cut", code: OptPrefix64, body: cat([]byte{0, 12}, make([]byte, 12), []byte{0}), raw: true},
		{name: "prefix64 count mismatch", code: OptPrefix64, body: cat([]byte{0, 12}, make([]byte, 12), []byte{0, 2, 0, 8, 10, 0, 0, 0}), raw: true},
		{name: "prefix64 IPv4 /33", code: OptPrefix64, body: cat([]byte{0, 12}, make([]byte, 12), []byte{0, 1, 0, 33, 10, 0, 0, 0}), raw: true},
		{name: "third party id", code: OptThirdPartyID, body: []byte{1, 2, 3, 4, 5}, raw: true},
		{name: "unknown optional", code: 0xc0, body: []byte{9}, raw: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := Option{Code: tt.code, Raw: tt.body}
			resp := Response{Opcode: OpAnnounce, Options: []Option{opt}}
			b := resp.AppendMarshal(nil)
			got, err := ParseResponse(b)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if tt.raw {
				want = Option{Code: tt.code, Raw: tt.body}
			}
			if d := cmp.Diff([]Option{want}, got.Options, cmpOpts); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if !tt.raw {
				// The typed form marshals back to the same body.
				b2 := (&Response{Opcode: OpAnnounce, Options: []Option{tt.want}}).AppendMarshal(nil)
				if d := cmp.Diff(b, b2); d != "" {
					t.Errorf("typed marshal (-raw +typed):\n%s", d)
				}
			}
		})
	}
}

func TestParseRequestOptionRules(t *testing.T) {
	mk := func(op Opcode, lifetime uint32, opts ...Option) []byte {
		r := Request{Opcode: op, Lifetime: lifetime, Client: client}
		switch op {
		case OpMap:
			r.Map = &Map{Nonce: nonce1, Protocol: 6, InternalPort: 80, ExternalPort: 8080}
		case OpPeer:
			r.Peer = &Peer{Map: Map{Nonce: nonce1, Protocol: 6, InternalPort: 80}, RemotePort: 1, RemoteAddr: client}
		}
		r.Options = opts
		return r.AppendMarshal(nil)
	}
	desc := Option{Code: OptDescription, Description: "a"}
	p64 := Option{Code: OptPrefix64, Prefix64: Prefix64{Prefix: netip.MustParsePrefix("::/96")}}
	tp := Option{Code: OptThirdParty, ThirdParty: netip.MustParseAddr("192.0.2.100")}
	tests := []struct {
		name string
		in   []byte
		want ResultCode // Success: no error
	}{
		{"description twice", mk(OpMap, 60, desc, desc), MalformedOption},
		{"prefix64 in announce", mk(OpAnnounce, 0, p64), Success},
		{"prefix64 twice", mk(OpAnnounce, 0, p64, p64), MalformedOption},
		{"prefix64 in PEER", mk(OpPeer, 60, p64), MalformedOption},
		{"description in PEER", mk(OpPeer, 60, desc, tp), Success},
		{"bad description ignored", mk(OpMap, 60, Option{Code: OptDescription, Raw: []byte{0xff}}), Success},
		{"unknown optional ignored", mk(OpMap, 60, Option{Code: 0xff, Raw: []byte{}}), Success},
		{"filter with lifetime 0", mk(OpMap, 0, Option{Code: OptFilter, Filter: Filter{Prefix: netip.MustParsePrefix("192.0.2.0/24")}}), MalformedOption},
		{"filters repeat", mk(OpMap, 60, Option{Code: OptFilter}, Option{Code: OptFilter}), Success},
		{"third party id too long", mk(OpMap, 60, Option{Code: OptThirdPartyID, Raw: make([]byte, 1020)}), MalformedOption},
		{"third party id twice", mk(OpMap, 60, tp, Option{Code: OptThirdPartyID, Raw: []byte{1}}, Option{Code: OptThirdPartyID, Raw: []byte{1}}), MalformedOption},
		{"third party id with third party", mk(OpPeer, 60, Option{Code: OptThirdPartyID, Raw: []byte{1}}, tp), Success},
		{"delete with protocol 0 and port", func() []byte {
			b := mk(OpMap, 0)
			b[HeaderSize+12] = 0
			return b
		}(), Success},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest(tt.in)
			if tt.want == Success {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Result != tt.want {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	_, err := ParseRequest([]byte{3, 1})
	if got := err.Error(); got != "pcp: UNSUPP_VERSION: version 3" {
		t.Errorf("ParseError: %q", got)
	}
	_, err = ParseNATPMPRequest([]byte{0, 9})
	if got := err.Error(); got != "natpmp: UNSUPP_OPCODE: opcode 9" || !errors.Is(err, ErrOpcode) {
		t.Errorf("NATPMPParseError: %q", got)
	}
	_, err = ParseResponse([]byte{1, 0x81, 0, 3})
	if got := err.Error(); got != "pcp: unsupported version: version 1" {
		t.Errorf("plain: %q", got)
	}
}

func TestMarshalNilPayload(t *testing.T) {
	// A MAP or PEER without its payload struct marshals zeros of the right
	// size; the NAT-PMP response for opcode 0 writes a non-IPv4 address as zeros.
	for _, r := range []Request{{Opcode: OpMap}, {Opcode: OpPeer}} {
		b := r.AppendMarshal(nil)
		want := HeaderSize + MapSize
		if r.Opcode == OpPeer {
			want = HeaderSize + PeerSize
		}
		if len(b) != want {
			t.Errorf("%s: %d octets", r.Opcode, len(b))
		}
	}
	b := (&Response{Opcode: OpPeer}).AppendMarshal(nil)
	if len(b) != HeaderSize+PeerSize {
		t.Errorf("PEER response: %d octets", len(b))
	}
	n := (&NATPMPResponse{ExternalAddr: netip.MustParseAddr("2001:db8::1")}).AppendMarshal(nil)
	if len(n) != 12 || n[8]|n[9]|n[10]|n[11] != 0 {
		t.Errorf("NAT-PMP IPv6 address: %x", n)
	}
	if n := (&NATPMPResponse{Opcode: 9}).AppendMarshal(nil); len(n) != 8 {
		t.Errorf("NAT-PMP unknown opcode: %x", n)
	}
}
