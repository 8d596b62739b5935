package pcp

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// golden is one datagram of testdata/miniupnpd-2.3.9.txt (see the file's
// header for where they came from).
type golden struct {
	name string // the "## name" block
	idx  int    // position of the datagram within its block
	kind string // pcp-request, pcp-response, natpmp-request, natpmp-response
	b    []byte
}

func loadGolden(t testing.TB) []golden {
	t.Helper()
	f, err := os.Open("testdata/miniupnpd-2.3.9.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []golden
	name, idx := "", 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			name, idx = strings.TrimPrefix(line, "## "), 0
			continue
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		kind, h, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("golden: bad line %q", line)
		}
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatalf("golden %s: %v", name, err)
		}
		out = append(out, golden{name, idx, kind, b})
		idx++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 40 {
		t.Fatalf("golden: only %d datagrams", len(out))
	}
	return out
}

// goldenRequestErrors: requests the capture sent on purpose broken, and the
// answer ParseRequest must choose (the server's; miniupnpd's own answer is
// in the file beside it).
var goldenRequestErrors = map[string]struct {
	res  ResultCode
	sent error
}{
	"pcp-bad-version":              {UnsuppVersion, ErrVersion},
	"pcp-version-1":                {UnsuppVersion, ErrVersion},
	"pcp-bad-opcode":               {UnsuppOpcode, ErrOpcode},
	"pcp-unaligned":                {MalformedRequest, ErrAlign},
	"pcp-truncated":                {MalformedRequest, ErrTruncated},
	"pcp-unknown-mandatory-option": {UnsuppOption, ErrUnknownOption},
}

// goldenResponseErrors: miniupnpd's answers that a strict client rejects.
var goldenResponseErrors = map[string]error{
	"pcp-version-1":  ErrVersion,   // it answers version 1 with version 1, MALFORMED_OPTION
	"pcp-bad-opcode": ErrOpcode,    // opcode 5 echoed
	"pcp-unaligned":  ErrVersion,   // version 0, opcode 0x80, result 3, 64 octets
	"pcp-truncated":  ErrTruncated, // 56 octets: the MAP payload echoed cut
}

func TestGoldenMiniupnpd(t *testing.T) {
	for _, g := range loadGolden(t) {
		t.Run(g.name+"/"+g.kind, func(t *testing.T) {
			switch g.kind {
			case "pcp-request":
				r, err := ParseRequest(g.b)
				if want, ok := goldenRequestErrors[g.name]; ok {
					var pe *ParseError
					if !errors.As(err, &pe) || pe.Result != want.res || !errors.Is(err, want.sent) {
						t.Fatalf("err = %v, want %s wrapping %v", err, want.res, want.sent)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if out := r.AppendMarshal(nil); !bytes.Equal(out, g.b) {
					t.Errorf("remarshal:\n got %x\nwant %x", out, g.b)
				}
			case "pcp-response":
				r, err := ParseResponse(g.b)
				if want, ok := goldenResponseErrors[g.name]; ok {
					if !errors.Is(err, want) {
						t.Fatalf("err = %v, want %v", err, want)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if out := r.AppendMarshal(nil); !bytes.Equal(out, g.b) {
					t.Errorf("remarshal:\n got %x\nwant %x", out, g.b)
				}
			case "natpmp-request":
				r, err := ParseNATPMPRequest(g.b)
				var pe *NATPMPParseError
				switch g.name {
				case "natpmp-bad-opcode":
					if !errors.As(err, &pe) || pe.Result != NATPMPUnsuppOpcode {
						t.Fatalf("err = %v, want UNSUPP_OPCODE", err)
					}
					return
				case "natpmp-version-1":
					if !errors.As(err, &pe) || pe.Result != NATPMPUnsuppVersion {
						t.Fatalf("err = %v, want UNSUPP_VERSION", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if out := r.AppendMarshal(nil); !bytes.Equal(out, g.b) {
					t.Errorf("remarshal:\n got %x\nwant %x", out, g.b)
				}
			case "natpmp-response":
				r, err := ParseNATPMPResponse(g.b)
				if err != nil {
					t.Fatal(err)
				}
				want := g.b
				if g.name == "natpmp-version-1" {
					// 24 octets (miniupnpd's PCP-style reply to a version-1
					// header); the 12 after the address are ignored.
					want = g.b[:NATPMPExternalAddrResponseSize]
				}
				if out := r.AppendMarshal(nil); !bytes.Equal(out, want) {
					t.Errorf("remarshal:\n got %x\nwant %x", out, want)
				}
			default:
				t.Fatalf("unknown kind %q", g.kind)
			}
		})
	}
}

func findGolden(t *testing.T, gs []golden, name string, idx int) []byte {
	t.Helper()
	for _, g := range gs {
		if g.name == name && g.idx == idx {
			return g.b
		}
	}
	t.Fatalf("golden %s[%d] missing", name, idx)
	return nil
}

// TestGoldenMiniupnpdMeaning checks what the captured answers say, as the
// client and the LAN server will read them.
func TestGoldenMiniupnpdMeaning(t *testing.T) {
	gs := loadGolden(t)
	cgn := netip.MustParseAddr("203.0.113.1")
	resp := func(name string) Response {
		t.Helper()
		r, err := ParseResponse(findGolden(t, gs, name, 1))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return r
	}
	req := func(name string) Request {
		t.Helper()
		r, err := ParseRequest(findGolden(t, gs, name, 0))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return r
	}

	t.Run("natpmpc", func(t *testing.T) {
		a, err := ParseNATPMPResponse(findGolden(t, gs, "natpmpc-map-tcp", 1))
		if err != nil || a.ExternalAddr != cgn || a.Result != NATPMPSuccess {
			t.Errorf("external address reply: %+v, %v", a, err)
		}
		q, err := ParseNATPMPRequest(findGolden(t, gs, "natpmpc-map-tcp", 2))
		if want := (NATPMPRequest{Opcode: NATPMPOpMapTCP, InternalPort: 18080, SuggestedExternalPort: 18080, Lifetime: 3600}); err != nil || q != want {
			t.Errorf("natpmpc map request: %+v, %v", q, err)
		}
		m, err := ParseNATPMPResponse(findGolden(t, gs, "natpmpc-map-tcp", 3))
		if want := (NATPMPResponse{Opcode: NATPMPOpMapTCP, InternalPort: 18080, ExternalPort: 18080, Lifetime: 3600}); err != nil || m != want {
			t.Errorf("map reply: %+v, %v", m, err)
		}
		d, err := ParseNATPMPResponse(findGolden(t, gs, "natpmpc-delete-tcp", 3))
		if want := (NATPMPResponse{Opcode: NATPMPOpMapTCP, Epoch: 1, InternalPort: 18080}); err != nil || d != want {
			t.Errorf("delete reply: %+v, %v", d, err)
		}
		u, err := ParseNATPMPResponse(findGolden(t, gs, "natpmp-bad-opcode", 1))
		if want := (NATPMPResponse{Opcode: 3, Result: NATPMPUnsuppOpcode, Epoch: 1}); err != nil || u != want {
			t.Errorf("unsupported opcode reply: %+v, %v", u, err)
		}
	})

	t.Run("map", func(t *testing.T) {
		q, r := req("pcp-map"), resp("pcp-map")
		if r.Result != Success || r.Opcode != OpMap || r.Lifetime != 3600 || r.Map == nil ||
			r.Map.Nonce != q.Map.Nonce || r.Map.ExternalAddr != cgn || r.Map.ExternalPort != 18081 ||
			r.Map.InternalPort != 8080 || r.Map.Protocol != 6 {
			t.Errorf("MAP reply: %+v %+v", r, r.Map)
		}
		if q.Map.ExternalAddr != netip.IPv4Unspecified() || q.Client != netip.MustParseAddr("100.64.0.2") {
			t.Errorf("MAP request addresses: %v %v", q.Map.ExternalAddr, q.Client)
		}
	})

	t.Run("options echoed", func(t *testing.T) {
		r := resp("pcp-map-options")
		if len(r.Options) != 3 || r.Options[0].Code != OptPreferFailure ||
			r.Options[1].Filter != (Filter{Prefix: netip.MustParsePrefix("203.0.113.50/32")}) ||
			r.Options[2].Description != "pcpgw golden" || r.Map.ExternalPort != 19000 {
			t.Errorf("options: %+v", r.Options)
		}
		tp := resp("pcp-map-third-party")
		if len(tp.Options) != 1 || tp.Options[0].ThirdParty != netip.MustParseAddr("192.0.2.100") || tp.Map.ExternalPort != 2222 {
			t.Errorf("third party: %+v", tp.Options)
		}
	})

	t.Run("peer", func(t *testing.T) {
		r := resp("pcp-peer")
		if r.Peer == nil || r.Peer.RemoteAddr != netip.MustParseAddr("203.0.113.50") || r.Peer.RemotePort != 443 ||
			r.Peer.ExternalAddr != cgn || r.Peer.ExternalPort != 40000 || r.Lifetime != 600 {
			t.Errorf("PEER reply: %+v", r.Peer)
		}
	})

	t.Run("errors", func(t *testing.T) {
		if r := resp("pcp-map-delete-unknown"); r.Result != NoResources || r.Lifetime != 30 {
			t.Errorf("delete of unknown mapping: %s lifetime %d (LAB.md: NO_RESOURCES, 30)", r.Result, r.Lifetime)
		}
		if r := resp("pcp-bad-version"); r.Result != UnsuppVersion || r.Version != Version {
			t.Errorf("bad version: %+v", r)
		}
		if r := resp("pcp-address-mismatch"); r.Result != AddressMismatch {
			t.Errorf("address mismatch: %s", r.Result)
		}
		r, err := ParseResponse(findGolden(t, gs, "pcp-unaligned", 1))
		if !errors.Is(err, ErrVersion) || r.Version != 0 || r.Result != MalformedRequest {
			t.Errorf("unaligned: %+v, %v", r, err)
		}
		r, err = ParseResponse(findGolden(t, gs, "pcp-version-1", 1))
		if !errors.Is(err, ErrVersion) || r.Version != 1 || r.Result != MalformedOption {
			t.Errorf("version 1: %+v, %v", r, err)
		}
	})

	// miniupnpd builds error responses as §8.2 says; so does
	// AppendErrorResponse, byte for byte, given its lifetime (0) and epoch.
	t.Run("AppendErrorResponse", func(t *testing.T) {
		for _, c := range []struct {
			name string
			res  ResultCode
		}{{"pcp-unknown-mandatory-option", UnsuppOption}, {"pcp-bad-opcode", UnsuppOpcode}, {"pcp-address-mismatch", AddressMismatch}} {
			in, want := findGolden(t, gs, c.name, 0), findGolden(t, gs, c.name, 1)
			if got := AppendErrorResponse(nil, in, 0, c.res, 0, 1); !bytes.Equal(got, want) {
				t.Errorf("%s:\n got %x\nwant %x", c.name, got, want)
			}
		}
	})

	t.Run("unsolicited", func(t *testing.T) {
		var n int
		for _, g := range gs {
			if g.name != "unsolicited-announce" {
				continue
			}
			n++
			if g.kind == "pcp-response" {
				r, err := ParseResponse(g.b)
				if err != nil || r.Opcode != OpAnnounce || r.Result != Success || r.Epoch != 0 {
					t.Errorf("ANNOUNCE: %+v, %v", r, err)
				}
			} else {
				r, err := ParseNATPMPResponse(g.b)
				if err != nil || r.Opcode != 0 || r.ExternalAddr != cgn {
					t.Errorf("NAT-PMP announcement: %+v, %v", r, err)
				}
			}
		}
		if n < 2 {
			t.Errorf("%d announcements", n)
		}
	})
}
