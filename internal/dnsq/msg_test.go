package dnsq

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// TestAppendQuery: the query's octets, worked out from RFC 1035 §4.1.1
// and §4.1.2 (and RFC 3596 §2.1 for AAAA's code), and read back by
// miekg/dns.
func TestAppendQuery(t *testing.T) {
	got, err := AppendQuery(nil, 0xbeef, Question{Name: "aftr.example", Type: TypeAAAA})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0xbe, 0xef, // ID
		0x01, 0x00, // QR 0, opcode 0, RD 1, CD 0, RCODE 0
		0, 1, 0, 0, 0, 0, 0, 0, // QDCOUNT 1
		4, 'a', 'f', 't', 'r', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0,
		0, 28, // AAAA
		0, 1, // IN
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
	var m dns.Msg
	if err := m.Unpack(got); err != nil {
		t.Fatal(err)
	}
	if m.Id != 0xbeef || m.Response || !m.RecursionDesired || m.CheckingDisabled || len(m.Question) != 1 ||
		m.Question[0] != (dns.Question{Name: "aftr.example.", Qtype: dns.TypeAAAA, Qclass: dns.ClassINET}) {
		t.Errorf("miekg/dns reads %v", &m)
	}
}

func TestWireName(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	for _, tc := range []struct {
		name string
		want string // wire form with '|' for length octets below ' ', "" for an error
	}{
		{"a.b", "\x01a\x01b\x00"},
		{"a.b.", "\x01a\x01b\x00"},
		{"ipv4only.arpa.", "\x08ipv4only\x04arpa\x00"},
		{".", "\x00"},
		{"", ""},
		{"..", ""},
		{"a..b", ""},
		{".a", ""},
		{long63 + ".x", "\x3f" + long63 + "\x01x\x00"},
		{long63 + "a.x", ""},
		// 253 characters make 255 octets, the most (RFC 1035 §3.1).
		{strings.Repeat("a.", 126) + "a", strings.Repeat("\x01a", 127) + "\x00"},
		{strings.Repeat("a.", 127) + "a", ""},
	} {
		b, err := wireName(tc.name)
		if (err != nil) != (tc.want == "") || err == nil && string(b) != tc.want {
			t.Errorf("wireName(%q) = %q, %v; want %q", tc.name, b, err, tc.want)
		}
	}
}

// TestReadName: compression pointers must point back, before the piece
// of name they end.
func TestReadName(t *testing.T) {
	// 12 octets of header, then the names.
	hdr := string(make([]byte, 12))
	for _, tc := range []struct {
		desc string
		msg  string
		off  int
		want string // "" for an error
		next int
	}{
		{"labels", hdr + "\x01a\x02bc\x00", 12, "\x01a\x02bc\x00", 18},
		{"pointer back", hdr + "\x02bc\x00\x01a\xc0\x0c", 16, "\x01a\x02bc\x00", 20},
		{"pointer only", hdr + "\x02bc\x00\xc0\x0c", 16, "\x02bc\x00", 18},
		{"two pointers, falling", hdr + "\x02bc\x00\x01a\xc0\x0c\x01x\xc0\x10", 20, "\x01x\x01a\x02bc\x00", 24},
		{"pointer to itself", hdr + "\xc0\x0c", 12, "", 0},
		{"pointer forward", hdr + "\xc0\x0e\x01a\x00", 12, "", 0},
		// The pointer goes back, but to a piece that reaches it again.
		{"pointer into its own name", hdr + "\x01a\xc0\x0c", 12, "", 0},
		{"pointers that would loop", hdr + "\x02bc\x00\x01a\xc0\x10\x01x\xc0\x12", 20, "", 0},
		{"reserved label type 01", hdr + "\x41a\x00", 12, "", 0},
		{"reserved label type 10", hdr + "\x81a\x00", 12, "", 0},
		{"label past the end", hdr + "\x05ab", 12, "", 0},
		{"no root label", hdr + "\x01a", 12, "", 0},
		{"half a pointer", hdr + "\x01a\xc0", 12, "", 0},
		{"nothing", hdr, 12, "", 0},
		{"longer than 255 octets", hdr + strings.Repeat("\x3f"+strings.Repeat("a", 63), 4) + "\x00", 12, "", 0},
	} {
		name, next, err := readName([]byte(tc.msg), tc.off)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: %q, want an error", tc.desc, name)
			}
			continue
		}
		if err != nil || string(name) != tc.want || next != tc.next {
			t.Errorf("%s: %q, %d, %v; want %q, %d", tc.desc, name, next, err, tc.want, tc.next)
		}
	}
}

// answer builds an answer to a query for name and type t with ID 0x4242,
// as miekg/dns packs it (compressed), with the records given in
// presentation format; edit may change it before packing.
func answer(t testing.TB, name string, qtype uint16, rcode int, rrs []string, edit func(*dns.Msg)) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0x4242
	m.Response, m.RecursionAvailable, m.Compress = true, true, true
	m.Rcode = rcode
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	if edit != nil {
		edit(m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// chain returns the records of a chain of n CNAMEs from c0.example to
// c<n>.example, which has an AAAA record.
func chain(n int, last string) []string {
	var rrs []string
	for i := range n {
		rrs = append(rrs, "c"+itoa(i)+".example. 60 IN CNAME c"+itoa(i+1)+".example.")
	}
	return append(rrs, "c"+itoa(n)+".example. 60 IN AAAA "+last)
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// TestParseAnswer: the checks of an answer, on answers packed by
// miekg/dns and edited by hand.
func TestParseAnswer(t *testing.T) {
	const aaaa = dns.TypeAAAA
	q := Question{Name: "aftr.example.", Type: TypeAAAA}
	one := []string{"aftr.example. 60 IN AAAA 2001:db8::1"}
	cut := func(b []byte, n int) []byte { return b[:len(b)-n] }
	for _, tc := range []struct {
		desc  string
		msg   []byte
		q     Question // zero: q
		want  []netip.Addr
		isErr error
	}{
		{"one record", answer(t, "aftr.example.", aaaa, 0, one, nil), q, addrs("2001:db8::1"), nil},
		{"two records", answer(t, "aftr.example.", aaaa, 0, append(one, "aftr.example. 60 IN AAAA 2001:db8::2"), nil), q, addrs("2001:db8::1", "2001:db8::2"), nil},
		{"A", answer(t, "v4.example.", dns.TypeA, 0, []string{"v4.example. 60 IN A 192.0.2.1"}, nil), Question{"v4.example", TypeA}, addrs("192.0.2.1"), nil},
		{"question in another case", answer(t, "AfTr.ExAmPlE.", aaaa, 0, []string{"AFTR.example. 60 IN AAAA 2001:db8::1"}, nil), q, addrs("2001:db8::1"), nil},
		{"another ID", answer(t, "aftr.example.", aaaa, 0, one, func(m *dns.Msg) { m.Id++ }), q, nil, ErrStray},
		{"QR clear", answer(t, "aftr.example.", aaaa, 0, one, func(m *dns.Msg) { m.Response = false }), q, nil, ErrStray},
		{"opcode NOTIFY", answer(t, "aftr.example.", aaaa, 0, one, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), q, nil, ErrStray},
		{"no question", answer(t, "aftr.example.", aaaa, 0, one, func(m *dns.Msg) { m.Question = nil }), q, nil, ErrStray},
		{"two questions", answer(t, "aftr.example.", aaaa, 0, one, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), q, nil, ErrStray},
		{"another name", answer(t, "aftr2.example.", aaaa, 0, []string{"aftr2.example. 60 IN AAAA 2001:db8::1"}, nil), q, nil, ErrStray},
		{"another type asked", answer(t, "aftr.example.", dns.TypeA, 0, []string{"aftr.example. 60 IN A 192.0.2.1"}, nil), q, nil, ErrStray},
		{"another class asked", answer(t, "aftr.example.", aaaa, 0, one, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), q, nil, ErrStray},
		{"shorter than a header", []byte{0x42, 0x42, 0x81, 0x80}, q, nil, ErrStray},
		{"question cut", answer(t, "aftr.example.", aaaa, 0, nil, nil)[:20], q, nil, ErrStray},
		{"truncated", answer(t, "aftr.example.", aaaa, 0, one, func(m *dns.Msg) { m.Truncated = true }), q, nil, ErrTruncated},
		{"truncated in the middle of a record", cut(answer(t, "aftr.example.", aaaa, 0, one, func(m *dns.Msg) { m.Truncated = true }), 5), q, nil, ErrTruncated},
		{"NXDOMAIN", answer(t, "aftr.example.", aaaa, dns.RcodeNameError, nil, nil), q, nil, ErrNXDomain},
		{"SERVFAIL", answer(t, "aftr.example.", aaaa, dns.RcodeServerFailure, nil, nil), q, nil, ErrServFail},
		{"NXDOMAIN with a CNAME", answer(t, "aftr.example.", aaaa, dns.RcodeNameError, []string{"aftr.example. 60 IN CNAME gone.example."}, nil), q, nil, ErrNXDomain},
		{"no data", answer(t, "aftr.example.", aaaa, 0, nil, nil), q, nil, ErrNoData},
		{"only another type", answer(t, "aftr.example.", aaaa, 0, []string{"aftr.example. 60 IN A 192.0.2.1", "aftr.example. 60 IN TXT \"x\""}, nil), q, nil, ErrNoData},
		{"another class", answer(t, "aftr.example.", aaaa, 0, []string{"aftr.example. 60 CH AAAA 2001:db8::1"}, nil), q, nil, ErrNoData},
		{"another owner", answer(t, "aftr.example.", aaaa, 0, []string{"other.example. 60 IN AAAA 2001:db8::1"}, nil), q, nil, ErrNoData},
		{"records of other types and owners skipped", answer(t, "aftr.example.", aaaa, 0, []string{"aftr.example. 60 IN TXT \"hello\"", "other.example. 60 IN AAAA 2001:db8::9", "aftr.example. 60 IN AAAA 2001:db8::1"}, nil), q, addrs("2001:db8::1"), nil},
		{"CNAME chain", answer(t, "c00.example.", aaaa, 0, chain(3, "2001:db8::3"), nil), Question{"c00.example", TypeAAAA}, addrs("2001:db8::3"), nil},
		{"CNAME chain out of order", answer(t, "c00.example.", aaaa, 0, []string{"c02.example. 60 IN AAAA 2001:db8::3", "c01.example. 60 IN CNAME c02.example.", "c00.example. 60 IN CNAME C01.EXAMPLE."}, nil), Question{"c00.example", TypeAAAA}, addrs("2001:db8::3"), nil},
		{"CNAME chain of MaxCNAME", answer(t, "c00.example.", aaaa, 0, chain(MaxCNAME, "2001:db8::8"), nil), Question{"c00.example", TypeAAAA}, addrs("2001:db8::8"), nil},
		{"CNAME chain too long", answer(t, "c00.example.", aaaa, 0, chain(MaxCNAME+1, "2001:db8::9"), nil), Question{"c00.example", TypeAAAA}, nil, ErrCNAMELoop},
		{"CNAME loop", answer(t, "a.example.", aaaa, 0, []string{"a.example. 60 IN CNAME b.example.", "b.example. 60 IN CNAME a.example."}, nil), Question{"a.example", TypeAAAA}, nil, ErrCNAMELoop},
		{"CNAME to itself", answer(t, "a.example.", aaaa, 0, []string{"a.example. 60 IN CNAME a.example."}, nil), Question{"a.example", TypeAAAA}, nil, ErrCNAMELoop},
		{"CNAME to nothing", answer(t, "a.example.", aaaa, 0, []string{"a.example. 60 IN CNAME b.example."}, nil), Question{"a.example", TypeAAAA}, nil, ErrNoData},
		{"CNAME, the target's records of another type", answer(t, "a.example.", aaaa, 0, []string{"a.example. 60 IN CNAME b.example.", "b.example. 60 IN A 192.0.2.1"}, nil), Question{"a.example", TypeAAAA}, nil, ErrNoData},
		{"records off the chain ignored", answer(t, "a.example.", aaaa, 0, []string{"a.example. 60 IN CNAME b.example.", "a2.example. 60 IN AAAA 2001:db8::a", "b.example. 60 IN AAAA 2001:db8::b"}, nil), Question{"a.example", TypeAAAA}, addrs("2001:db8::b"), nil},
		{"record cut", cut(answer(t, "aftr.example.", aaaa, 0, one, nil), 5), q, nil, ErrMalformed},
		{"AAAA of 4 octets", answer(t, "aftr.example.", aaaa, 0, nil, func(m *dns.Msg) {
			m.Answer = []dns.RR{&dns.RFC3597{Hdr: dns.RR_Header{Name: "aftr.example.", Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 60}, Rdata: "c0000201"}}
		}), q, nil, ErrMalformed},
		{"CNAME data longer than its name", answer(t, "a.example.", aaaa, 0, nil, func(m *dns.Msg) {
			m.Answer = []dns.RR{&dns.RFC3597{Hdr: dns.RR_Header{Name: "a.example.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Rdata: "0162000000"}}
		}), Question{"a.example", TypeAAAA}, nil, ErrMalformed},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := ParseAnswer(tc.msg, 0x4242, tc.q)
			if tc.isErr != nil {
				if !errors.Is(err, tc.isErr) {
					t.Errorf("error %v, want %v", err, tc.isErr)
				}
				if got != nil {
					t.Errorf("addresses %v with the error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestRcodeError(t *testing.T) {
	for _, tc := range []struct {
		rcode              Rcode
		nx, servfail, none bool
		text               string
	}{
		{RcodeNXDomain, true, false, true, "dnsq: answer NXDOMAIN"},
		{RcodeServFail, false, true, false, "dnsq: answer SERVFAIL"},
		{RcodeRefused, false, false, false, "dnsq: answer REFUSED"},
		{9, false, false, false, "dnsq: answer RCODE9"},
	} {
		var err error = &RcodeError{Rcode: tc.rcode}
		if errors.Is(err, ErrNXDomain) != tc.nx || errors.Is(err, ErrServFail) != tc.servfail || NotFound(err) != tc.none || err.Error() != tc.text {
			t.Errorf("%v: Is NXDOMAIN %v, SERVFAIL %v, NotFound %v, %q", tc.rcode, errors.Is(err, ErrNXDomain), errors.Is(err, ErrServFail), NotFound(err), err)
		}
	}
	if !NotFound(errors.Join(errors.New("timeout"), ErrNoData)) || NotFound(errors.New("timeout")) {
		t.Error("NotFound of joined errors")
	}
}

// TestPointerChain (review finding): a name made of a long chain of
// pointers, each two octets back, is refused instead of being followed
// thousands of steps per record; a few pointers are fine.
func TestPointerChain(t *testing.T) {
	chain := func(n int) []byte {
		msg := make([]byte, headerLen)
		msg = append(msg, 1, 'x', 0) // the name "x." at 12
		for i := range n {
			target := len(msg) - 2
			if i == 0 {
				target = headerLen
			}
			msg = binary.BigEndian.AppendUint16(msg, 0xc000|uint16(target))
		}
		return msg
	}
	for _, tc := range []struct {
		n  int
		ok bool
	}{{1, true}, {maxPointers, true}, {maxPointers + 1, false}, {8000, false}} {
		msg := chain(tc.n)
		name, _, err := readName(msg, len(msg)-2)
		if tc.ok && (err != nil || string(name) != "\x01x\x00") {
			t.Errorf("%d pointers: %q %v", tc.n, name, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("%d pointers: read %q, want an error", tc.n, name)
		}
	}
}
