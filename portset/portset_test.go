package portset

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// v6plus is the set of PSID 1 with offset 4 and length 8: the parameters
// of the large Japanese MAP-E providers (15 ranges of 16 ports).
var v6plus = New(
	Range{4112, 4127}, Range{8208, 8223}, Range{12304, 12319}, Range{16400, 16415}, Range{20496, 20511},
	Range{24592, 24607}, Range{28688, 28703}, Range{32784, 32799}, Range{36880, 36895}, Range{40976, 40991},
	Range{45072, 45087}, Range{49168, 49183}, Range{53264, 53279}, Range{57360, 57375}, Range{61456, 61471},
)

func TestPSIDSet(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    PSID
		want Set
		err  bool
	}{
		{"v6plus", PSID{Offset: 4, Len: 8, ID: 1}, v6plus, false},
		// RFC 7597 §5.1 with the default offset: a=6, k=6 (m=4), PSID
		// 0x34: A from 1 to 63, ports A·1024 + 0x34·16 + j.
		{"rfc7597 default offset", PSID{Offset: 6, Len: 6, ID: 0x34}, func() Set {
			var rs []Range
			for A := 1; A < 64; A++ {
				lo := uint16(A*1024 + 0x34*16)
				rs = append(rs, Range{lo, lo + 15})
			}
			return New(rs...)
		}(), false},
		// lw4o6 (offset 0): one contiguous range of 2^(16-k) ports.
		{"lw4o6", PSID{Offset: 0, Len: 6, ID: 3}, New(Range{3072, 4095}), false},
		// Offset 0, PSID 0: port 0 is never in a set.
		{"psid 0 offset 0", PSID{Offset: 0, Len: 6, ID: 0}, New(Range{1, 1023}), false},
		{"one port", PSID{Offset: 0, Len: 16, ID: 5000}, New(Range{5000, 5000}), false},
		{"no psid", PSID{Offset: 6, Len: 0}, Set{}, true},
		{"too long", PSID{Offset: 6, Len: 11}, Set{}, true},
		{"psid too big", PSID{Offset: 4, Len: 8, ID: 256}, Set{}, true},
		{"only port 0", PSID{Offset: 0, Len: 16, ID: 0}, Set{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.p.Set()
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			if d := cmp.Diff(tc.want.String(), got.String()); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	if n := v6plus.Len(); n != 240 {
		t.Errorf("v6plus: %d ports, want 240", n)
	}
	if b := v6plus.BlockLen(); b != 16 {
		t.Errorf("v6plus: block %d, want 16", b)
	}
}

// TestPSIDExhaustive checks every small parameter set against the RFC's
// definition port by port: p is in the set of PSID id exactly when its
// PSID field equals id and, with an offset, its A field is not 0.
func TestPSIDExhaustive(t *testing.T) {
	for a := 0; a <= 6; a++ {
		for k := 1; a+k <= 10; k++ {
			for id := 0; id < 1<<k; id += max(1, (1<<k)/7) {
				s, err := PSID{Offset: uint8(a), Len: uint8(k), ID: uint16(id)}.Set()
				if err != nil {
					t.Fatalf("a=%d k=%d id=%d: %v", a, k, id, err)
				}
				m := 16 - a - k
				n := 0
				for p := 1; p < 1<<16; p++ {
					in := (p>>m)&(1<<k-1) == id && (a == 0 || p>>(16-a) != 0)
					if s.Contains(uint16(p)) != in {
						t.Fatalf("a=%d k=%d id=%d: Contains(%d) = %v", a, k, id, p, !in)
					}
					if in {
						n++
					}
				}
				if s.Len() != n {
					t.Fatalf("a=%d k=%d id=%d: Len %d, counted %d", a, k, id, s.Len(), n)
				}
			}
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"4112-4127 8208-8223", "4112-4127, 8208-8223", false},
		{"8208-8223,4112-4127", "4112-4127, 8208-8223", false},
		{" 5000 , 5001-5010\t7000 ", "5000-5010, 7000", false},
		{"1-65535", "1-65535", false},
		{"", "", false},
		{"0-100", "", true},
		{"100-50", "", true},
		{"65536", "", true},
		{"a-b", "", true},
		{"1-2-3", "", true},
		{"-5", "", true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("Parse(%q): err %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err != nil && !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q): %v does not wrap ErrSyntax", tc.in, err)
		}
		if got.String() != tc.want {
			t.Errorf("Parse(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// bitmap is a brute-force model of a set.
type bitmap [1 << 16]bool

func (b *bitmap) set() Set {
	var rs []Range
	for p := 1; p < 1<<16; p++ {
		if b[p] {
			rs = append(rs, Range{uint16(p), uint16(p)})
		}
	}
	return New(rs...)
}

func randomBitmap(r *rand.Rand) *bitmap {
	var b bitmap
	for range r.IntN(6) {
		lo := r.IntN(1 << 16)
		hi := min(lo+r.IntN(300), 1<<16-1)
		for p := max(lo, 1); p <= hi; p++ {
			b[p] = true
		}
	}
	return &b
}

// TestSetOps compares the set operations with the brute-force model on
// random sets.
func TestSetOps(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		ba, bb := randomBitmap(r), randomBitmap(r)
		a, b := ba.set(), bb.set()
		var union, minus bitmap
		for p := range ba {
			union[p] = ba[p] || bb[p]
			minus[p] = ba[p] && !bb[p]
		}
		if got, want := a.Union(b), union.set(); !got.Equal(want) {
			t.Fatalf("%d: %v ∪ %v = %v, want %v", i, a, b, got, want)
		}
		if got, want := a.Minus(b), minus.set(); !got.Equal(want) {
			t.Fatalf("%d: %v − %v = %v, want %v", i, a, b, got, want)
		}
		n := r.IntN(a.Len() + 2)
		up := a.Upper(n)
		if up.Len() != min(n, a.Len()) || !up.Minus(a).Empty() {
			t.Fatalf("%d: Upper(%d) of %v = %v", i, n, a, up)
		}
		if rest := a.Minus(up); !rest.Empty() && !up.Empty() && rest.r[len(rest.r)-1].Hi >= up.r[0].Lo {
			t.Fatalf("%d: Upper(%d) of %v = %v: not the highest ports", i, n, a, up)
		}
		// Nearest: the closest allowed port (allowed: odd ports), the
		// higher one on a tie.
		want := uint16(r.IntN(1 << 16))
		ok := func(p uint16) bool { return p%2 == 1 }
		best, found := -1, false
		for p := 1; p < 1<<16; p++ {
			if !ba[p] || !ok(uint16(p)) {
				continue
			}
			d, bd := abs(p-int(want)), abs(best-int(want))
			if !found || d < bd || d == bd && p > best {
				best, found = p, true
			}
		}
		got, gotFound := a.Nearest(want, ok)
		if gotFound != found || found && int(got) != best {
			t.Fatalf("%d: Nearest(%d) in %v = %d %v, want %d %v", i, want, a, got, gotFound, best, found)
		}
		for p := range 1 << 16 {
			if a.Contains(uint16(p)) != ba[p] {
				t.Fatalf("%d: Contains(%d) of %v", i, p, a)
			}
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestNearest(t *testing.T) {
	for _, tc := range []struct {
		want  uint16
		taken []uint16
		got   uint16
		ok    bool
	}{
		{8080, nil, 8208, true},
		{4112, nil, 4112, true},
		{4111, nil, 4112, true},
		{0, nil, 4112, true},
		{65535, nil, 61471, true},
		{8215, []uint16{8215}, 8216, true}, // 8214 and 8216 tie: the higher
		{8215, []uint16{8215, 8216}, 8214, true},
		{30000, nil, 28703, true},
	} {
		taken := map[uint16]bool{}
		for _, p := range tc.taken {
			taken[p] = true
		}
		got, ok := v6plus.Nearest(tc.want, func(p uint16) bool { return !taken[p] })
		if got != tc.got || ok != tc.ok {
			t.Errorf("Nearest(%d) = %d %v, want %d %v", tc.want, got, ok, tc.got, tc.ok)
		}
	}
	if _, ok := v6plus.Nearest(8080, func(uint16) bool { return false }); ok {
		t.Error("Nearest found a port where none is free")
	}
	if _, ok := (Set{}).Nearest(8080, nil); ok {
		t.Error("Nearest found a port in the empty set")
	}
}

func TestSummary(t *testing.T) {
	if got, want := v6plus.Summary(2), "4112-4127, 8208-8223, ..."; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	if got, want := New(Range{5000, 5010}).Summary(2), "5000-5010"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
}

func TestParseMapRules(t *testing.T) {
	for _, tc := range []struct {
		file string
		want MapRule
		err  error
	}{
		// Worked out from mapcalc.c's output format (OpenWrt
		// package/network/ipv6/map/src/mapcalc.c) for a MAP-E rule with
		// EA length 16 on 203.0.113.0/24 (PSID length 8), offset 4, and
		// the delegated prefix 2001:db8:901::/56: address 203.0.113.9,
		// PSID 1.
		{"map-wan.rules", MapRule{Type: "map-e", Addr: netip.MustParseAddr("203.0.113.9"), Ports: v6plus,
			PSID: PSID{Offset: 4, Len: 8}, EALen: 16}, nil},
		// lw4o6 with the PSID given (offset 0): one range.
		{"map-lw.rules", MapRule{Type: "lw4o6", Addr: netip.MustParseAddr("192.0.2.77"), Ports: New(Range{3072, 4095}),
			PSID: PSID{Offset: 0, Len: 6}, EALen: 6}, nil},
		// No PSID (EA bits only address bits): the whole address.
		{"map-full.rules", MapRule{Type: "map-e", Addr: netip.MustParseAddr("203.0.113.9"), PSID: PSID{Offset: 6},
			EALen: 8, Full: true}, nil},
		// A forwarding rule only: no BMR for this CPE.
		{"map-fmr-only.rules", MapRule{}, ErrNoBMR},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseMapRules(b)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if d := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b Set) bool { return a.Equal(b) }),
				cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestParseMapRulesErrors(t *testing.T) {
	for _, in := range []string{
		"RULE_BMR=x\n",
		"RULE_BMR=1\n", // no address
		"RULE_BMR=1\nRULE_1_IPV4ADDR=2001:db8::1\n",                 // not IPv4
		"RULE_BMR=1\nRULE_1_IPV4ADDR=0.0.0.0\n",                     // unspecified
		"RULE_BMR=1\nRULE_1_IPV4ADDR=192.0.2.1\nRULE_1_PSIDLEN=8\n", // a PSID length but no ports
		"RULE_BMR=1\nRULE_1_IPV4ADDR=192.0.2.1\nRULE_1_PORTSETS='0-5 '\n",
		"RULE_BMR=1\nRULE_1_IPV4ADDR=192.0.2.1\nRULE_1_PSIDLEN=99\n",
		"rule=type=6rd\nRULE_BMR=1\nRULE_1_IPV4ADDR=192.0.2.1\n",
	} {
		if r, err := ParseMapRules([]byte(in)); err == nil {
			t.Errorf("ParseMapRules(%q) = %+v, want an error", in, r)
		}
	}
	// A PSID from a fork that writes it, without port sets.
	r, err := ParseMapRules([]byte("RULE_BMR=2\nRULE_2_IPV4ADDR=192.0.2.1\nRULE_2_PSIDLEN=8\nRULE_2_OFFSET=4\nRULE_2_PSID=1\n"))
	if err != nil || !r.Ports.Equal(v6plus) {
		t.Errorf("PSID without port sets: %v %v", r.Ports, err)
	}
}

func TestSplit(t *testing.T) {
	keep := New(Range{4112, 4112}, Range{8080, 8080}) // 8080 is not in the set
	for _, tc := range []struct {
		share      string
		pool, rest int
		top        string
	}{
		// A quarter of 240 is 60: four whole ranges of 16, plus 4112.
		{"25%", 65, 175, "49168-49183, 53264-53279, 57360-57375, 61456-61471"},
		{"10", 11, 229, "61462-61471"},
		{"0", 240, 0, ""},
		{"99%", 239, 1, ""},   // 238 (not rounded to whole ranges: none would be left), and 4112
		{"50%", 129, 111, ""}, // 8 ranges, and 4112
	} {
		sh, err := ParseShare(tc.share)
		if err != nil {
			t.Fatal(err)
		}
		pool, rest := v6plus.Split(sh, keep)
		if pool.Len() != tc.pool || rest.Len() != tc.rest || !pool.Union(rest).Equal(v6plus) || !pool.Intersect(rest).Empty() {
			t.Errorf("%s: pool %v (%d), rest %v (%d); want %d and %d", tc.share, pool, pool.Len(), rest, rest.Len(), tc.pool, tc.rest)
		}
		if !pool.Contains(4112) {
			t.Errorf("%s: a kept port is not in the pool", tc.share)
		}
		if tc.top != "" && !strings.HasSuffix(pool.String(), tc.top) {
			t.Errorf("%s: pool %v does not end with %s", tc.share, pool, tc.top)
		}
	}
	for _, bad := range []string{"100%", "-1", "x", "1.5%", "70000"} {
		if _, err := ParseShare(bad); err == nil {
			t.Errorf("ParseShare(%q): no error", bad)
		}
	}
}
