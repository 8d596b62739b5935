package pcp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

// unhex decodes hex with spaces, newlines and #-comments allowed.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("bad hex: %v", err)
	}
	return b
}

var (
	nonce1 = Nonce{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c}
	client = netip.MustParseAddr("100.64.0.2")
)

// A MAP request worked out from RFC 6887 Figures 2 and 9 (§7.1, §11.1) with
// PREFER_FAILURE (Figure 14), a FILTER (Figure 15) and a DESCRIPTION
// (RFC 7220 Figure 1) of 5 octets padded to 8.
const mapRequestHex = `
02 01 0000  00000e10                              # v2, MAP, lifetime 3600
00000000 00000000 0000ffff 64400002               # client ::ffff:100.64.0.2
0102030405060708090a0b0c                          # nonce
06 000000 1f90 46a0                               # TCP, internal 8080, ext 18080
00000000 00000000 0000ffff cb007101               # suggested ::ffff:203.0.113.1
02 00 0000                                        # PREFER_FAILURE
03 00 0014 00 78 0050                             # FILTER /120 (IPv4 /24), port 80
00000000 00000000 0000ffff cb007132               # 203.0.113.50
80 00 0005 68 74 74 70 64 000000                  # DESCRIPTION "httpd" + pad
`

var mapRequest = Request{
	Version: 2, Opcode: OpMap, Lifetime: 3600, Client: client,
	Map: &Map{Nonce: nonce1, Protocol: 6, InternalPort: 8080, ExternalPort: 18080,
		ExternalAddr: netip.MustParseAddr("203.0.113.1")},
	Options: []Option{
		{Code: OptPreferFailure},
		{Code: OptFilter, Filter: Filter{Prefix: netip.MustParsePrefix("203.0.113.50/24"), RemotePort: 80}},
		{Code: OptDescription, Description: "httpd"},
	},
}

func TestParseRequestGolden(t *testing.T) {
	b := unhex(t, mapRequestHex)
	got, err := ParseRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(mapRequest, got, cmpOpts); d != "" {
		t.Errorf("ParseRequest (-want +got):\n%s", d)
	}
	if out := got.AppendMarshal(nil); !bytes.Equal(out, b) {
		t.Errorf("AppendMarshal:\n got %x\nwant %x", out, b)
	}
	if out := mapRequest.AppendMarshal(nil); !bytes.Equal(out, b) {
		t.Errorf("AppendMarshal of literal:\n got %x\nwant %x", out, b)
	}
}

func TestParseRequestErrors(t *testing.T) {
	base := unhex(t, mapRequestHex)
	hdr := base[:HeaderSize]
	mapOnly := base[:HeaderSize+MapSize]
	with := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	opt := func(code byte, body ...byte) []byte {
		o := []byte{code, 0, 0, byte(len(body))}
		o = append(o, body...)
		for len(o)%4 != 0 {
			o = append(o, 0)
		}
		return o
	}
	thirdParty := opt(1, unhex(t, "00000000 00000000 0000ffff c0000264")...)
	tests := []struct {
		name   string
		in     []byte
		plain  error      // a plain error: drop silently
		result ResultCode // else a *ParseError with this result
		sent   error      // and this sentinel
	}{
		{name: "empty", in: nil, plain: ErrShort},
		{name: "one octet", in: []byte{2}, plain: ErrShort},
		{name: "R bit", in: with(base, func(b []byte) []byte { b[1] |= 0x80; return b }), plain: ErrNotRequest},
		{name: "version 1 two octets", in: []byte{1, 1}, result: UnsuppVersion, sent: ErrVersion},
		{name: "version 3", in: with(base, func(b []byte) []byte { b[0] = 3; return b }), result: UnsuppVersion, sent: ErrVersion},
		{name: "version 0 NAT-PMP", in: []byte{0, 0}, result: UnsuppVersion, sent: ErrVersion},
		{name: "v2 short header", in: hdr[:20], plain: ErrShort},
		{name: "too long", in: append(bytes.Clone(mapOnly), make([]byte, 1104-len(mapOnly))...), result: MalformedRequest, sent: ErrLong},
		{name: "not multiple of 4", in: append(bytes.Clone(mapOnly), 0, 0), result: MalformedRequest, sent: ErrAlign},
		{name: "unknown opcode", in: with(hdr, func(b []byte) []byte { b[1] = 9; return b }), result: UnsuppOpcode, sent: ErrOpcode},
		{name: "MAP truncated", in: base[:HeaderSize+32], result: MalformedRequest, sent: ErrTruncated},
		{name: "PEER truncated", in: with(mapOnly, func(b []byte) []byte { b[1] = 2; return b }), result: MalformedRequest, sent: ErrTruncated},
		{name: "protocol 0 with port", in: with(mapOnly, func(b []byte) []byte { b[HeaderSize+12] = 0; return b }), result: MalformedRequest, sent: ErrMalformed},
		{name: "option overflows", in: append(bytes.Clone(mapOnly), 0x80, 0, 0, 8, 'a', 'b', 'c', 'd'), result: MalformedOption, sent: ErrOption},
		{name: "unknown mandatory option", in: append(bytes.Clone(mapOnly), opt(0x7f)...), result: UnsuppOption, sent: ErrUnknownOption},
		{name: "PREFER_FAILURE twice", in: append(append(bytes.Clone(mapOnly), opt(2)...), opt(2)...), result: MalformedOption, sent: ErrOption},
		{name: "PREFER_FAILURE with body", in: append(bytes.Clone(mapOnly), opt(2, 0, 0, 0, 0)...), result: MalformedOption, sent: ErrOption},
		{name: "THIRD_PARTY short", in: append(bytes.Clone(mapOnly), opt(1, 1, 2, 3, 4)...), result: MalformedOption, sent: ErrOption},
		{name: "THIRD_PARTY twice", in: append(append(bytes.Clone(mapOnly), thirdParty...), thirdParty...), result: MalformedOption, sent: ErrOption},
		{name: "FILTER in PEER", in: append(peerRequestBytes(t), base[HeaderSize+MapSize+4:HeaderSize+MapSize+28]...), result: MalformedOption, sent: ErrOption},
		{name: "THIRD_PARTY in ANNOUNCE", in: append(with(hdr, func(b []byte) []byte { b[1] = 0; return b }), thirdParty...), result: MalformedOption, sent: ErrOption},
		{name: "PREFER_FAILURE lifetime 0", in: append(with(mapOnly, func(b []byte) []byte { copy(b[4:8], []byte{0, 0, 0, 0}); return b }), opt(2)...), result: MalformedOption, sent: ErrOption},
		{name: "PREFER_FAILURE port 0", in: append(with(mapOnly, func(b []byte) []byte { b[HeaderSize+18], b[HeaderSize+19] = 0, 0; return b }), opt(2)...), result: MalformedOption, sent: ErrOption},
		{name: "THIRD_PARTY_ID alone", in: append(bytes.Clone(mapOnly), opt(13, 1, 2, 3)...), result: ThirdPartyMissingOption, sent: ErrThirdPartyMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest(tt.in)
			if tt.plain != nil {
				var pe *ParseError
				if !errors.Is(err, tt.plain) || errors.As(err, &pe) {
					t.Fatalf("err = %v, want plain %v", err, tt.plain)
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *ParseError", err)
			}
			if pe.Result != tt.result || !errors.Is(err, tt.sent) {
				t.Errorf("err = %v (result %s), want result %s wrapping %v", err, pe.Result, tt.result, tt.sent)
			}
		})
	}
}

func peerRequestBytes(t testing.TB) []byte {
	r := Request{Opcode: OpPeer, Lifetime: 60, Client: client, Peer: &Peer{
		Map:        Map{Nonce: nonce1, Protocol: 17, InternalPort: 5000},
		RemotePort: 443, RemoteAddr: netip.MustParseAddr("2001:db8::50"),
	}}
	return r.AppendMarshal(nil)
}

func TestParseRequestPartial(t *testing.T) {
	// UNSUPP_OPTION: the header, payload and options so far come back.
	b := append(unhex(t, mapRequestHex), 0x7e, 0, 0, 0)
	got, err := ParseRequest(b)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Result != UnsuppOption {
		t.Fatalf("err = %v", err)
	}
	want := mapRequest
	want.Options = append(append([]Option(nil), mapRequest.Options...), Option{Code: 0x7e, Raw: []byte{}})
	if d := cmp.Diff(want, got, cmpOpts); d != "" {
		t.Errorf("partial request (-want +got):\n%s", d)
	}
}

func TestUnknownOptionalKept(t *testing.T) {
	r := mapRequest
	r.Options = []Option{{Code: 0xfe, Raw: []byte{1, 2, 3}}, {Code: OptDescription, Raw: []byte{0xff, 0xfe}}}
	b := r.AppendMarshal(nil)
	got, err := ParseRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(r, got, cmpOpts); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	tests := []Request{
		{Version: 2, Opcode: OpAnnounce, Client: netip.MustParseAddr("2001:db8:ff::2")},
		{Version: 2, Opcode: OpPeer, Lifetime: 60, Client: client, Peer: &Peer{
			Map:        Map{Nonce: nonce1, Protocol: 17, InternalPort: 5000, ExternalAddr: netip.MustParseAddr("::")},
			RemotePort: 443, RemoteAddr: netip.MustParseAddr("2001:db8::50"),
		}, Options: []Option{
			{Code: OptThirdParty, ThirdParty: netip.MustParseAddr("192.0.2.100")},
			{Code: OptThirdPartyID, Raw: []byte{0xab, 0xcd, 0xe0}},
		}},
		{Version: 2, Opcode: OpMap, Client: client, Map: &Map{Nonce: nonce1, ExternalAddr: netip.MustParseAddr("0.0.0.0")},
			Options: []Option{{Code: OptPrefix64, Prefix64: Prefix64{Prefix: netip.MustParsePrefix("::/96")}}}},
		{Version: 2, Opcode: OpMap, Lifetime: 1, Client: client, Map: &Map{Nonce: nonce1, Protocol: 17, ExternalAddr: netip.MustParseAddr("0.0.0.0")},
			Options: []Option{
				{Code: OptFilter, Filter: Filter{Prefix: netip.MustParsePrefix("::ffff:0.0.0.0/0")}},
				{Code: OptFilter, Filter: Filter{Prefix: netip.MustParsePrefix("2001:db8::/32"), RemotePort: 1}},
				{Code: OptFilter, Filter: Filter{Prefix: netip.MustParsePrefix("0.0.0.0/0")}},
			}},
	}
	for _, r := range tests {
		t.Run(r.Opcode.String(), func(t *testing.T) {
			b := r.AppendMarshal(nil)
			if len(b)%4 != 0 {
				t.Fatalf("length %d", len(b))
			}
			got, err := ParseRequest(b)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(r, got, cmpOpts); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestResponseRoundTrip(t *testing.T) {
	p64 := Prefix64{Prefix: netip.MustParsePrefix("64:ff9b::/96")}
	p64b := Prefix64{Prefix: netip.MustParsePrefix("2001:db8:122::/48"), Suffix: []byte{0, 0, 0, 0, 0, 0},
		IPv4Pfxs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("0.0.0.0/0")}}
	p64c := Prefix64{Prefix: netip.MustParsePrefix("2001:db8::/32"), Suffix: make([]byte, 8), IPv4Pfxs: []netip.Prefix{}}
	tests := []Response{
		{Version: 2, Opcode: OpMap, Result: Success, Lifetime: 3600, Epoch: 12345, Map: &Map{
			Nonce: nonce1, Protocol: 6, InternalPort: 8080, ExternalPort: 18080, ExternalAddr: netip.MustParseAddr("203.0.113.1")}},
		{Version: 2, Opcode: OpAnnounce, Epoch: 7, Options: []Option{
			{Code: OptPrefix64, Prefix64: p64}, {Code: OptPrefix64, Prefix64: p64b}, {Code: OptPrefix64, Prefix64: p64c}}},
		{Version: 2, Opcode: OpPeer, Result: CannotProvideExternal, Lifetime: 30, Reserved: [12]byte{0, 0, 0xff, 0xff, 100, 64, 0, 2},
			Peer:    &Peer{Map: Map{Nonce: nonce1, Protocol: 6, ExternalAddr: netip.MustParseAddr("::")}, RemoteAddr: netip.MustParseAddr("203.0.113.50")},
			Options: []Option{{Code: 0x05, Raw: []byte{}}, {Code: OptFilter, Raw: []byte{1}}}},
	}
	for _, r := range tests {
		t.Run(r.Opcode.String(), func(t *testing.T) {
			b := r.AppendMarshal(nil)
			got, err := ParseResponse(b)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(r, got, cmpOpts); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if b2 := got.AppendMarshal(nil); !bytes.Equal(b, b2) {
				t.Errorf("remarshal differs:\n%x\n%x", b, b2)
			}
		})
	}
}

func TestParseResponseErrors(t *testing.T) {
	ok := (&Response{Opcode: OpMap, Map: &Map{}}).AppendMarshal(nil)
	set := func(i int, v byte) []byte { b := bytes.Clone(ok); b[i] = v; return b }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"short", ok[:20], ErrShort},
		{"long", append(bytes.Clone(ok), make([]byte, 1100)...), ErrLong},
		{"align", append(bytes.Clone(ok), 0), ErrAlign},
		{"no R bit", set(1, 1), ErrNotResponse},
		{"version 3", set(0, 3), ErrVersion},
		{"unknown opcode", set(1, 0x85), ErrOpcode},
		{"truncated MAP", ok[:HeaderSize+32], ErrTruncated},
		{"PEER truncated", set(1, 0x82), ErrTruncated},
		{"option overflow", append(bytes.Clone(ok), 1, 0, 0, 16), ErrOption},
		{"NAT-PMP success reply", unhex(t, "0080 0000 00000001 cb007101"), ErrVersion},
		{"NAT-PMP short", unhex(t, "0080 0001"), ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseResponse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseResponseNATPMPOnly(t *testing.T) {
	for _, in := range []string{
		"00 00 0001 0000002a",          // RFC 6886 §3.5 figure: OP = 0
		"00 81 0001 0000002a 00000000", // 128+op, with trailing octets
	} {
		got, err := ParseResponse(unhex(t, in))
		if !errors.Is(err, ErrNATPMPOnly) {
			t.Fatalf("%s: err = %v", in, err)
		}
		if got.Version != 0 || got.Result != UnsuppVersion || got.Epoch != 42 {
			t.Errorf("%s: got %+v", in, got)
		}
	}
}

func TestAppendErrorResponse(t *testing.T) {
	req := append(unhex(t, mapRequestHex), 0x7e, 0, 0, 0)
	got := AppendErrorResponse(nil, req, 0, UnsuppOption, 1800, 99)
	if len(got) != len(req) {
		t.Fatalf("length %d, want %d", len(got), len(req))
	}
	r, err := ParseResponse(got)
	if err != nil {
		t.Fatal(err)
	}
	if r.Result != UnsuppOption || r.Lifetime != 1800 || r.Epoch != 99 || r.Opcode != OpMap {
		t.Errorf("header: %+v", r)
	}
	if r.Reserved != [12]byte{} {
		t.Errorf("Reserved = %x, want zero (the request parsed)", r.Reserved)
	}
	// MALFORMED_REQUEST: the request did not parse; the reserved field
	// carries the last 96 bits of its client address (§7.2).
	r, err = ParseResponse(AppendErrorResponse(nil, append(unhex(t, mapRequestHex)[:60], make([]byte, 4)...), 0, MalformedRequest, 1800, 99))
	if err != nil {
		t.Fatal(err)
	}
	if want := [12]byte{0, 0, 0, 0, 0, 0, 0xff, 0xff, 100, 64, 0, 2}; r.Reserved != want {
		t.Errorf("Reserved = %x, want %x", r.Reserved, want)
	}
	if !bytes.Equal(got[24:], req[24:]) {
		t.Errorf("payload not copied")
	}
	// A 2-octet request of an unknown version: a full 24-octet header comes back.
	got = AppendErrorResponse(nil, []byte{7, 1}, 0, UnsuppVersion, 1800, 5)
	if want := unhex(t, "02 81 00 01 00000708 00000005 000000000000000000000000"); !bytes.Equal(got, want) {
		t.Errorf("got %x\nwant %x", got, want)
	}
	// Too long: truncated to 1100.
	got = AppendErrorResponse(nil, make([]byte, 1200), 0, MalformedRequest, 1800, 5)
	if len(got) != MaxSize {
		t.Errorf("length %d", len(got))
	}
}

func TestStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{Success.String(), "SUCCESS"},
		{ExcessiveRemotePeers.String(), "EXCESSIVE_REMOTE_PEERS"},
		{UnsuppThirdPartyIDLength.String(), "UNSUPP_THIRD_PARTY_ID_LENGTH"},
		{ResultCode(200).String(), "RESULT(200)"},
		{ResultCode(20).String(), "RESULT(20)"},
		{OpPeer.String(), "PEER"},
		{OpAnnounce.String(), "ANNOUNCE"},
		{OpMap.String(), "MAP"},
		{Opcode(9).String(), "OPCODE(9)"},
		{OptPrefix64.String(), "PREFIX64"},
		{OptThirdPartyID.String(), "THIRD_PARTY_ID"},
		{OptionCode(99).String(), "OPTION(99)"},
		{NATPMPOutOfResources.String(), "OUT_OF_RESOURCES"},
		{NATPMPResult(9).String(), "RESULT(9)"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestLongLifetime(t *testing.T) {
	long := map[ResultCode]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 9: true, 12: true, 13: true, 24: true, 25: true, 26: true}
	for c := range 256 {
		if got := ResultCode(c).LongLifetime(); got != long[ResultCode(c)] {
			t.Errorf("%s.LongLifetime() = %v", ResultCode(c), got)
		}
	}
}

func TestOptionCodeClass(t *testing.T) {
	if OptThirdParty.Optional() || OptThirdPartyID.Optional() || !OptDescription.Optional() || !OptPrefix64.Optional() {
		t.Error("Optional() wrong")
	}
	valid := map[OptionCode][]Opcode{
		OptThirdParty: {OpMap, OpPeer}, OptPreferFailure: {OpMap}, OptFilter: {OpMap},
		OptDescription: {OpMap, OpPeer}, OptPrefix64: {OpMap, OpAnnounce}, OptThirdPartyID: {OpMap, OpPeer},
	}
	for c := range 256 {
		for op := range Opcode(4) {
			want := false
			for _, v := range valid[OptionCode(c)] {
				want = want || v == op
			}
			if got := OptionCode(c).ValidFor(op); got != want {
				t.Errorf("%s.ValidFor(%s) = %v", OptionCode(c), op, got)
			}
		}
	}
}
