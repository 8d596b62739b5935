package nat64

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/pcpgw/pcpgw/internal/dnsq"
)

// WKN is the well-known IPv4-only name (RFC 7050 §2).
const WKN = "ipv4only.arpa."

// wka are the well-known IPv4 addresses of WKN (RFC 7050 §2), in the
// order they are searched for.
var wka = [2][4]byte{{192, 0, 0, 170}, {192, 0, 0, 171}}

// lengths are RFC 6052's prefix lengths, with the octets of the IPv6
// address that hold the IPv4 address (octet 8, bits 64-71, is skipped).
var lengths = []struct {
	bits int
	at   [4]int
}{
	{32, [4]int{4, 5, 6, 7}},
	{40, [4]int{5, 6, 7, 9}},
	{48, [4]int{6, 7, 9, 10}},
	{56, [4]int{7, 9, 10, 11}},
	{64, [4]int{9, 10, 11, 12}},
	{96, [4]int{12, 13, 14, 15}},
}

// PrefixOf returns the Pref64::/n an address synthesized for WKN is made
// of (RFC 7050 §3): the place of a well-known IPv4 address, found there
// only once (else the other one is searched for). It reports false for an
// address that is not IPv6 or holds neither at one place only.
func PrefixOf(a netip.Addr) (netip.Prefix, bool) {
	if !a.Is6() || a.Is4In6() {
		return netip.Prefix{}, false
	}
	b := a.As16()
	for _, w := range wka {
		found := -1
		n := 0
		for i, l := range lengths {
			if b[l.at[0]] == w[0] && b[l.at[1]] == w[1] && b[l.at[2]] == w[2] && b[l.at[3]] == w[3] {
				found, n = i, n+1
			}
		}
		if n == 1 {
			p, err := a.WithZone("").Prefix(lengths[found].bits)
			return p, err == nil
		}
	}
	return netip.Prefix{}, false
}

// Prefixes returns the distinct Pref64::/n of the answers, in their order
// (RFC 7050 §3: all of them, in the order received).
func Prefixes(addrs []netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		if p, ok := PrefixOf(a); ok && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// ErrNone is returned by Discover when the answers name no prefix (no
// DNS64 on the way: no NAT64 to find).
var ErrNone = errors.New("nat64: no Pref64::/n in the answers for ipv4only.arpa")

// queryTimeout bounds the query to one resolver.
const queryTimeout = 2 * time.Second

// Discover asks the resolvers, each in turn, for WKN's AAAA records and
// returns the prefixes of the first answer that has some, within timeout
// overall and 2 s for each resolver. A resolver that answers NXDOMAIN or
// NODATA (no synthesis), or addresses without a prefix, gives ErrNone;
// the errors of all are joined.
func Discover(ctx context.Context, resolvers []netip.AddrPort, timeout time.Duration) ([]netip.Prefix, error) {
	if len(resolvers) == 0 {
		return nil, errors.New("nat64: no DNS resolver")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var errs []error
	for _, r := range resolvers {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		addrs, err := dnsq.Query(ctx, r, WKN, dnsq.TypeAAAA, queryTimeout)
		if dnsq.NotFound(err) {
			err = ErrNone // the name's own answer: no synthesis
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%v: %w", r, err))
			continue
		}
		if p := Prefixes(addrs); len(p) > 0 {
			return p, nil
		}
		errs = append(errs, fmt.Errorf("%v: %w", r, ErrNone))
	}
	return nil, errors.Join(errs...)
}
