package dnsq

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

const fuzzID = 0x4242

// expect works out with miekg/dns what ParseAnswer should say of msg as
// an answer to the query (fuzzID, name, qtype): addresses, or an error
// that ParseAnswer's should match with errors.Is (ErrStray when msg does
// not answer the query). ok is false when miekg/dns cannot read msg.
func expect(msg []byte, name string, qtype uint16) (want []netip.Addr, wantErr error, ok bool) {
	var m dns.Msg
	if m.Unpack(msg) != nil {
		return nil, nil, false
	}
	if m.Id != fuzzID || !m.Response || m.Opcode != 0 || len(m.Question) != 1 ||
		dns.CanonicalName(m.Question[0].Name) != dns.CanonicalName(name) || m.Question[0].Qtype != qtype || m.Question[0].Qclass != dns.ClassINET {
		return nil, ErrStray, true
	}
	if m.Truncated {
		return nil, ErrTruncated, true
	}
	if rc := msg[3] & 0xf; rc != 0 { // the header's RCODE: no EDNS
		return nil, &RcodeError{Rcode: Rcode(rc)}, true
	}
	cur := dns.CanonicalName(name)
	for hops := 0; ; hops++ {
		next := ""
		for _, rr := range m.Answer {
			h := rr.Header()
			if h.Class != dns.ClassINET || dns.CanonicalName(h.Name) != cur {
				continue
			}
			switch r := rr.(type) {
			case *dns.A:
				if qtype == dns.TypeA {
					a, _ := netip.AddrFromSlice(r.A.To4())
					want = append(want, a)
				}
			case *dns.AAAA:
				if qtype == dns.TypeAAAA {
					a, _ := netip.AddrFromSlice(r.AAAA.To16())
					want = append(want, a)
				}
			case *dns.CNAME:
				if next == "" {
					next = dns.CanonicalName(r.Target)
				}
			}
		}
		switch {
		case len(want) > 0:
			return want, nil, true
		case next == "":
			return nil, ErrNoData, true
		case hops >= MaxCNAME:
			return nil, ErrCNAMELoop, true
		}
		cur = next
	}
}

func fuzzSeeds(f *testing.F) {
	one := []string{"aftr.example. 60 IN AAAA 2001:db8::1"}
	for _, b := range [][]byte{
		answer(f, "aftr.example.", dns.TypeAAAA, 0, one, nil),
		answer(f, "aftr.example.", dns.TypeAAAA, 0, append(one, "aftr.example. 60 IN AAAA 2001:db8::2", "aftr.example. 60 IN A 192.0.2.1"), nil),
		answer(f, "aftr.example.", dns.TypeA, 0, []string{"aftr.example. 60 IN A 192.0.2.1"}, nil),
		answer(f, "aftr.example.", dns.TypeAAAA, 0, []string{"aftr.example. 60 IN CNAME b.example.", "b.example. 60 IN CNAME c.example.", "c.example. 60 IN AAAA 2001:db8::c"}, nil),
		answer(f, "aftr.example.", dns.TypeAAAA, 0, []string{"aftr.example. 60 IN CNAME b.example.", "b.example. 60 IN CNAME aftr.example."}, nil),
		answer(f, "aftr.example.", dns.TypeAAAA, dns.RcodeNameError, nil, nil),
		answer(f, "aftr.example.", dns.TypeAAAA, 0, one, func(m *dns.Msg) { m.Truncated = true }),
		answer(f, "aftr.example.", dns.TypeAAAA, 0, one, func(m *dns.Msg) {
			m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "ns.example.", Mbox: "h.example."}}
		}),
	} {
		f.Add(b, false)
	}
	f.Add([]byte{0x42, 0x42, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 28, 0, 1}, false)
}

// FuzzParseAnswer: no panic on any packet; addresses only without an
// error, all of the family asked for; and where miekg/dns reads the whole
// packet, the same answer as the rules applied to what it read. Where it
// does not, or where ParseAnswer finds the answer section or the
// question malformed, there is nothing to compare: ParseAnswer is
// stricter about compression pointers (they must point back) and does not
// read the last two sections.
func FuzzParseAnswer(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, msg []byte, a bool) {
		q := Question{Name: "aftr.example.", Type: TypeAAAA}
		if a {
			q.Type = TypeA
		}
		got, err := ParseAnswer(msg, fuzzID, q)
		if (err == nil) != (len(got) > 0) {
			t.Fatalf("%v with %d addresses", err, len(got))
		}
		for _, a := range got {
			if a.Is4() != (q.Type == TypeA) || a.Zone() != "" {
				t.Fatalf("%v in an answer for %v", a, q.Type)
			}
		}
		if errors.Is(err, ErrMalformed) || err != nil && strings.Contains(err.Error(), "question does not parse") {
			return
		}
		want, wantErr, ok := expect(msg, q.Name, uint16(q.Type))
		if !ok {
			return
		}
		var re, wre *RcodeError
		switch {
		case errors.As(wantErr, &wre):
			if !errors.As(err, &re) || *re != *wre {
				t.Fatalf("error %v, miekg/dns reads %v", err, wantErr)
			}
		case wantErr != nil:
			if !errors.Is(err, wantErr) {
				t.Fatalf("error %v, miekg/dns reads %v", err, wantErr)
			}
		case !slices.Equal(want, got):
			t.Fatalf("%v, %v; miekg/dns reads %v", got, err, want)
		}
	})
}

// FuzzAnswerRecords: answers that miekg/dns packs (compressed) from
// fuzzed records, always read, and read as miekg/dns reads them: no
// compressor's output is refused.
func FuzzAnswerRecords(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5}, false, true)
	f.Add([]byte{0x10, 0x21, 0x32, 0x03, 0x14, 0x25, 0x36, 0x07}, true, false)
	names := []string{"aftr.example.", "AFTR.Example.", "b.example.", "c.b.example.", "example.", "x.aftr.example."}
	f.Fuzz(func(t *testing.T, spec []byte, a, compress bool) {
		if len(spec) > 64 {
			return
		}
		qtype := dns.TypeAAAA
		if a {
			qtype = dns.TypeA
		}
		m := new(dns.Msg)
		m.SetQuestion("aftr.example.", qtype)
		m.Id, m.Response, m.Compress = fuzzID, true, compress
		// Each octet is a record: its owner (3 bits), its type and
		// class (3 bits), the CNAME target or address (2 bits).
		for i, b := range spec {
			owner := names[int(b&7)%len(names)]
			other := names[int(b>>6)%len(names)]
			hdr := dns.RR_Header{Name: owner, Class: dns.ClassINET, Ttl: 60}
			var rr dns.RR
			switch (b >> 3) & 7 {
			case 0, 1:
				hdr.Rrtype = dns.TypeAAAA
				rr = &dns.AAAA{Hdr: hdr, AAAA: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)}).AsSlice()}
			case 2, 3:
				hdr.Rrtype = dns.TypeA
				rr = &dns.A{Hdr: hdr, A: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).AsSlice()}
			case 4, 5:
				hdr.Rrtype = dns.TypeCNAME
				rr = &dns.CNAME{Hdr: hdr, Target: other}
			case 6:
				hdr.Rrtype = dns.TypeTXT
				rr = &dns.TXT{Hdr: hdr, Txt: []string{other}}
			case 7:
				hdr.Rrtype, hdr.Class = dns.TypeAAAA, dns.ClassCHAOS
				rr = &dns.AAAA{Hdr: hdr, AAAA: netip.MustParseAddr("2001:db8::ca05").AsSlice()}
			}
			m.Answer = append(m.Answer, rr)
		}
		msg, err := m.Pack()
		if err != nil {
			t.Skip(err)
		}
		want, wantErr, ok := expect(msg, "aftr.example.", qtype)
		if !ok {
			t.Fatal("miekg/dns does not read what it packed")
		}
		got, err := ParseAnswer(msg, fuzzID, Question{Name: "aftr.example", Type: Type(qtype)})
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Fatalf("error %v, want %v", err, wantErr)
			}
			return
		}
		if err != nil || !slices.Equal(want, got) {
			t.Fatalf("%v, %v; want %v", got, err, want)
		}
	})
}
