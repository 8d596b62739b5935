package portset

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Range is the ports Lo to Hi, both included.
type Range struct{ Lo, Hi uint16 }

// Len is the number of ports in r (0 when Hi < Lo).
func (r Range) Len() int {
	if r.Hi < r.Lo {
		return 0
	}
	return int(r.Hi) - int(r.Lo) + 1
}

func (r Range) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// Set is a set of ports held as sorted, disjoint, non-adjacent ranges.
// The zero Set is empty. A Set is a value: its methods never change it.
type Set struct{ r []Range }

// New returns the set of the given ranges (in any order, overlapping or
// not). Ranges with Hi < Lo are empty; port 0 is left out.
func New(rs ...Range) Set {
	var out []Range
	for _, r := range rs {
		if r.Lo == 0 {
			if r.Hi == 0 {
				continue
			}
			r.Lo = 1
		}
		if r.Hi >= r.Lo {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Range) int { return int(a.Lo) - int(b.Lo) })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && int(r.Lo) <= int(merged[n-1].Hi)+1 {
			merged[n-1].Hi = max(merged[n-1].Hi, r.Hi)
			continue
		}
		merged = append(merged, r)
	}
	if len(merged) == 0 {
		return Set{}
	}
	return Set{r: slices.Clip(merged)}
}

// Empty reports whether s holds no port.
func (s Set) Empty() bool { return len(s.r) == 0 }

// Len is the number of ports in s.
func (s Set) Len() int {
	n := 0
	for _, r := range s.r {
		n += r.Len()
	}
	return n
}

// Ranges returns the ranges of s, ascending.
func (s Set) Ranges() []Range { return slices.Clone(s.r) }

// Contains reports whether port p is in s.
func (s Set) Contains(p uint16) bool {
	i := firstAtLeast(s.r, p)
	return i < len(s.r) && s.r[i].Lo <= p
}

// Equal reports whether s and t hold the same ports.
func (s Set) Equal(t Set) bool { return slices.Equal(s.r, t.r) }

// Union is the ports in s or t.
func (s Set) Union(t Set) Set { return New(append(slices.Clone(s.r), t.r...)...) }

// Minus is the ports of s that are not in t.
func (s Set) Minus(t Set) Set {
	var out []Range
	j := 0
	for _, r := range s.r {
		lo := int(r.Lo)
		for j < len(t.r) && int(t.r[j].Hi) < lo {
			j++
		}
		k := j
		for ; k < len(t.r) && int(t.r[k].Lo) <= int(r.Hi); k++ {
			if int(t.r[k].Lo) > lo {
				out = append(out, Range{uint16(lo), t.r[k].Lo - 1})
			}
			lo = int(t.r[k].Hi) + 1
		}
		if lo <= int(r.Hi) {
			out = append(out, Range{uint16(lo), r.Hi})
		}
	}
	return New(out...)
}

// Intersect is the ports in both s and t.
func (s Set) Intersect(t Set) Set { return s.Minus(s.Minus(t)) }

// Upper is the n highest ports of s (all of s when it holds n or fewer).
func (s Set) Upper(n int) Set {
	var out []Range
	for i := len(s.r) - 1; i >= 0 && n > 0; i-- {
		r := s.r[i]
		if r.Len() > n {
			r.Lo = r.Hi - uint16(n-1)
		}
		out = append(out, r)
		n -= r.Len()
	}
	return New(out...)
}

// BlockLen is the size of every range of s when they all have the same
// size (the 2^m ports of a PSID's ranges), else 0.
func (s Set) BlockLen() int {
	if len(s.r) == 0 {
		return 0
	}
	b := s.r[0].Len()
	for _, r := range s.r[1:] {
		if r.Len() != b {
			return 0
		}
	}
	return b
}

// Nearest returns the port of s closest to want for which ok is true
// (ok nil: any port of s); on a tie the higher one. It reports false when
// there is none.
func (s Set) Nearest(want uint16, ok func(uint16) bool) (uint16, bool) {
	if ok == nil {
		ok = func(uint16) bool { return true }
	}
	// up walks the ports >= want upward from range ui, down the ports
	// below want downward from range di.
	i := firstAtLeast(s.r, want)
	ui, up := i, int(want)
	if ui < len(s.r) {
		up = max(up, int(s.r[ui].Lo))
	}
	di, down := i, int(want)-1
	if di >= len(s.r) || int(s.r[di].Lo) > down {
		if di--; di >= 0 {
			down = int(s.r[di].Hi)
		}
	}
	for ui < len(s.r) || di >= 0 {
		useUp := ui < len(s.r) && (di < 0 || up-int(want) <= int(want)-down)
		if useUp {
			if ok(uint16(up)) {
				return uint16(up), true
			}
			if up++; up > int(s.r[ui].Hi) {
				if ui++; ui < len(s.r) {
					up = int(s.r[ui].Lo)
				}
			}
			continue
		}
		if ok(uint16(down)) {
			return uint16(down), true
		}
		if down--; down < int(s.r[di].Lo) {
			if di--; di >= 0 {
				down = int(s.r[di].Hi)
			}
		}
	}
	return 0, false
}

// firstAtLeast returns the index of the first range whose Hi is at least p.
func firstAtLeast(rs []Range, p uint16) int {
	i, _ := slices.BinarySearchFunc(rs, p, func(r Range, p uint16) int {
		if r.Hi < p {
			return -1
		}
		return 1
	})
	return i
}

// String lists the ranges: "4112-4127, 8208-8223"; "" when empty. Parse
// reads it back.
func (s Set) String() string {
	var b strings.Builder
	for i, r := range s.r {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.String())
	}
	return b.String()
}

// Summary is String cut after n ranges: "4112-4127, 8208-8223, ...".
func (s Set) Summary(n int) string {
	if len(s.r) <= n {
		return s.String()
	}
	return Set{r: s.r[:n]}.String() + ", ..."
}

// ErrSyntax is wrapped by Parse's errors.
var ErrSyntax = errors.New("portset: not a list of ports and ranges")

// Parse reads a list of ports and ranges ("4112-4127 8208-8223",
// "4112-4127, 8208-8223", "5000"), separated by spaces or commas, as the
// configuration and OpenWrt's map rules write them. Port 0 and ranges
// whose end is below their start are errors.
func Parse(text string) (Set, error) {
	var rs []Range
	for _, f := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		lo, hi, isRange := strings.Cut(f, "-")
		a, err := parsePort(lo)
		if err != nil {
			return Set{}, fmt.Errorf("%w: %q: %v", ErrSyntax, f, err)
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return Set{}, fmt.Errorf("%w: %q: %v", ErrSyntax, f, err)
			}
			if b < a {
				return Set{}, fmt.Errorf("%w: %q: the range ends before it starts", ErrSyntax, f)
			}
		}
		rs = append(rs, Range{a, b})
	}
	return New(rs...), nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return uint16(n), nil
}

// PSID is MAP's port-set parameters (RFC 7597 §5.1): the PSID offset a
// (MAP's default is 6; lw4o6 uses 0), the PSID length k and the PSID
// itself (k bits, right-aligned as RFC 7597 writes it).
type PSID struct {
	Offset uint8
	Len    uint8
	ID     uint16
}

// Set returns the ports PSID p owns (RFC 7597 §5.1). A length of 0 is the
// whole address, which is not a port set: an error.
func (p PSID) Set() (Set, error) {
	a, k := int(p.Offset), int(p.Len)
	switch {
	case k == 0:
		return Set{}, errors.New("portset: PSID length 0 is a whole address, not a port set")
	case a > 15 || k > 16 || a+k > 16:
		return Set{}, fmt.Errorf("portset: PSID offset %d and length %d exceed 16 bits", a, k)
	case int(p.ID) >= 1<<k:
		return Set{}, fmt.Errorf("portset: PSID %d does not fit in %d bits", p.ID, k)
	}
	m := 16 - a - k
	first := 0
	if a > 0 {
		first = 1
	}
	var rs []Range
	for A := first; A < 1<<a; A++ {
		lo := A<<(16-a) | int(p.ID)<<m
		rs = append(rs, Range{uint16(lo), uint16(lo + 1<<m - 1)})
	}
	s := New(rs...)
	if s.Empty() {
		return Set{}, errors.New("portset: the PSID owns no port but 0")
	}
	return s, nil
}

// Share is how much of a port set mappings take (the rest is left to the
// CPE's own outbound NAT): a number of ports or a percentage of the set.
// The zero Share means all of it, with no part kept for outbound flows.
type Share struct {
	Ports   int // a number of ports, when Percent is 0
	Percent int // 1-99: a percentage of the set
}

// ParseShare reads "25%" or "64"; "0" (or "0%") is the zero Share.
func ParseShare(v string) (Share, error) {
	if p, ok := strings.CutSuffix(v, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 99 {
			return Share{}, fmt.Errorf("%q is not a percentage from 0%% to 99%%", v)
		}
		return Share{Percent: n}, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 65535 {
		return Share{}, fmt.Errorf("%q is not a number of ports or a percentage (25%%)", v)
	}
	return Share{Ports: n}, nil
}

func (sh Share) String() string {
	if sh.Percent > 0 {
		return strconv.Itoa(sh.Percent) + "%"
	}
	return strconv.Itoa(sh.Ports)
}

// IsZero reports the Share that keeps nothing for outbound flows.
func (sh Share) IsZero() bool { return sh.Ports == 0 && sh.Percent == 0 }

// Split divides s between mappings (pool) and the CPE's outbound flows
// (rest): the pool is the sh highest ports of s (a percentage rounded up,
// to whole ranges when s is four or more ranges of one size, as a PSID's
// set is, and some are left) plus the ports of keep that are in s (the static forwards'). The
// zero Share gives all of s to the pool and nothing to rest.
func (s Set) Split(sh Share, keep Set) (pool, rest Set) {
	if sh.IsZero() {
		return s, Set{}
	}
	n := sh.Ports
	if sh.Percent > 0 {
		n = (s.Len()*sh.Percent + 99) / 100
		// Whole ranges, when they are a PSID's small blocks (four or
		// more of one size) and some are left over.
		if b := s.BlockLen(); b > 0 && len(s.r) >= 4 {
			if m := (n + b - 1) / b * b; m < s.Len() {
				n = m
			}
		}
	}
	pool = s.Upper(n).Union(s.Intersect(keep))
	return pool, s.Minus(pool)
}
