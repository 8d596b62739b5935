package dhcpleases

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// A lease file as dnsmasq 2.90 writes it on OpenWrt (worked out from
// dnsmasq's lease.c format: expiry, MAC, address, name, client id; a
// "duid" line, then DHCPv6 leases with the IAID in place of the MAC).
const sample = `1767225600 02:00:00:00:00:01 192.0.2.100 nas 01:02:00:00:00:00:01
0 02:00:00:00:00:02 192.0.2.101 * *
duid 00:01:00:01:2c:5f:00:01:02:00:00:00:00:ff
1767225600 1234 2001:db8:1::100 nas 00:01:00:01:2c:5f:00:02
garbage line
1767225600 02:00:00:00:00:03 not-an-address x *
-5 02:00:00:00:00:04 192.0.2.104 y *
`

func TestParse(t *testing.T) {
	got := Parse(strings.NewReader(sample))
	want := map[netip.Addr]Lease{
		netip.MustParseAddr("192.0.2.100"):     {Addr: netip.MustParseAddr("192.0.2.100"), Expires: time.Unix(1767225600, 0), Hostname: "nas", Client: "02:00:00:00:00:01"},
		netip.MustParseAddr("192.0.2.101"):     {Addr: netip.MustParseAddr("192.0.2.101"), Client: "02:00:00:00:00:02"},
		netip.MustParseAddr("2001:db8:1::100"): {Addr: netip.MustParseAddr("2001:db8:1::100"), Expires: time.Unix(1767225600, 0), Hostname: "nas", Client: "1234"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for a, w := range want {
		if g := got[a]; g != w {
			t.Errorf("%v: %+v, want %+v", a, g, w)
		}
	}
}

func TestEnded(t *testing.T) {
	at := time.Unix(1767225600, 0)
	before := Parse(strings.NewReader(sample))
	now := Parse(strings.NewReader("1767225600 02:00:00:00:00:01 192.0.2.100 nas *\n0 02:00:00:00:00:02 192.0.2.101 * *\n"))
	got := Ended(before, now, at)
	slices.SortFunc(got, netip.Addr.Compare)
	// .100 expired at `at`; the IPv6 lease is gone; .101 has no end.
	want := []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("2001:db8:1::100")}
	if !slices.Equal(got, want) {
		t.Errorf("ended %v, want %v", got, want)
	}
	// The address leased again to another client: ended for the first.
	again := Parse(strings.NewReader("0 02:00:00:00:00:09 192.0.2.101 other *\n"))
	if got := Ended(now, again, at); len(got) != 2 {
		t.Errorf("re-leased: ended %v, want .100 (gone) and .101 (another client)", got)
	}
	// Relative expiry times (dnsmasq with HAVE_BROKEN_RTC) are not taken
	// for times of day.
	rel := Parse(strings.NewReader("3600 02:00:00:00:00:01 192.0.2.100 nas *\n"))
	if l := rel[netip.MustParseAddr("192.0.2.100")]; !l.Expires.IsZero() {
		t.Errorf("relative expiry read as %v", l.Expires)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add(strings.Repeat("x", 5000))
	f.Fuzz(func(t *testing.T, s string) {
		for a, l := range Parse(strings.NewReader(s)) {
			if a != l.Addr || !a.IsValid() {
				t.Fatalf("%v: %+v", a, l)
			}
		}
	})
}
