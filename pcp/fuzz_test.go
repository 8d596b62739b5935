package pcp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// seed adds the golden datagrams of the given kinds and the extra seeds.
func seed(f *testing.F, kinds []string, extra ...[]byte) {
	for _, g := range loadGolden(f) {
		for _, k := range kinds {
			if g.kind == k {
				f.Add(g.b)
			}
		}
	}
	for _, b := range extra {
		f.Add(b)
	}
}

func FuzzParseRequest(f *testing.F) {
	seed(f, []string{"pcp-request"}, unhex(f, mapRequestHex), peerRequestBytes(f),
		(&Request{Opcode: OpAnnounce, Options: []Option{{Code: OptPrefix64, Prefix64: Prefix64{IPv4Pfxs: nil}}}}).AppendMarshal(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		var pe *ParseError
		if errors.As(err, &pe) {
			// The server answers these: the reply must be well formed.
			out := AppendErrorResponse(nil, b, 0, pe.Result, 1800, 1)
			if len(out)%4 != 0 || len(out) < HeaderSize || len(out) > MaxSize {
				t.Fatalf("error response of %d octets", len(out))
			}
			if out[1]&rBit == 0 || out[3] != byte(pe.Result) {
				t.Fatalf("error response header %x", out[:4])
			}
			return
		}
		if err != nil {
			return
		}
		out := r.AppendMarshal(nil)
		if len(out) != len(b) {
			t.Fatalf("marshal length %d, input %d", len(out), len(b))
		}
		r2, err := ParseRequest(out)
		if err != nil {
			t.Fatalf("reparse: %v\n%x", err, out)
		}
		if d := cmp.Diff(r, r2, cmpOpts); d != "" {
			t.Fatalf("reparse differs (-first +second):\n%s", d)
		}
		if out2 := r2.AppendMarshal(nil); !bytes.Equal(out, out2) {
			t.Fatalf("remarshal differs:\n%x\n%x", out, out2)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	seed(f, []string{"pcp-response"},
		(&Response{Opcode: OpAnnounce, Options: []Option{{Code: OptPrefix64, Prefix64: Prefix64{IPv4Pfxs: []netip.Prefix{}}}}}).AppendMarshal(nil),
		unhex(f, "00 80 0001 0000002a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResponse(b)
		if err != nil {
			return
		}
		out := r.AppendMarshal(nil)
		if len(out) != len(b) {
			t.Fatalf("marshal length %d, input %d", len(out), len(b))
		}
		r2, err := ParseResponse(out)
		if err != nil {
			t.Fatalf("reparse: %v\n%x", err, out)
		}
		if d := cmp.Diff(r, r2, cmpOpts); d != "" {
			t.Fatalf("reparse differs (-first +second):\n%s", d)
		}
		if out2 := r2.AppendMarshal(nil); !bytes.Equal(out, out2) {
			t.Fatalf("remarshal differs:\n%x\n%x", out, out2)
		}
	})
}

func FuzzParseNATPMPRequest(f *testing.F) {
	seed(f, []string{"natpmp-request"}, []byte{0, 0}, []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseNATPMPRequest(b)
		if err != nil {
			return
		}
		out := r.AppendMarshal(nil)
		// The input up to the marshalled length, with the reserved field
		// (ignored on reception, RFC 6886 §3.3) zeroed.
		want := bytes.Clone(b[:min(len(b), len(out))])
		if len(want) >= 4 {
			want[2], want[3] = 0, 0
		}
		if !bytes.Equal(want, out) {
			t.Fatalf("marshal %x is not the input %x", out, b)
		}
		r2, err := ParseNATPMPRequest(out)
		if err != nil || r2 != r {
			t.Fatalf("reparse: %+v, %v; first %+v", r2, err, r)
		}
		if out2 := r2.AppendMarshal(nil); !bytes.Equal(out, out2) {
			t.Fatalf("remarshal differs:\n%x\n%x", out, out2)
		}
	})
}

func FuzzParseNATPMPResponse(f *testing.F) {
	seed(f, []string{"natpmp-response"}, unhex(f, "00 80 0003 000003e8"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseNATPMPResponse(b)
		if err != nil {
			return
		}
		out := r.AppendMarshal(nil)
		if !bytes.HasPrefix(b, out) {
			t.Fatalf("marshal %x is not a prefix of the input %x", out, b)
		}
		r2, err := ParseNATPMPResponse(out)
		if err != nil || r2 != r {
			t.Fatalf("reparse: %+v, %v; first %+v", r2, err, r)
		}
		if out2 := r2.AppendMarshal(nil); !bytes.Equal(out, out2) {
			t.Fatalf("remarshal differs:\n%x\n%x", out, out2)
		}
	})
}
