package natpmp

import (
	"net/netip"
	"testing"
)

// TestInflightIPv6Prefix (review finding): an IPv6 host that sends from
// many addresses of the LAN's /64 gets the slots of one host, not 16 per
// address; IPv4 hosts and link-local sources count one by one.
func TestInflightIPv6Prefix(t *testing.T) {
	var f inflight
	key := func(src string, n int) inflightKey {
		return inflightKey{src: netip.AddrPortFrom(netip.MustParseAddr(src), uint16(40000+n)), dst: netip.MustParseAddr("192.0.2.1"), pkt: "req"}
	}
	for i := range maxInFlightHost {
		// a new address of 2001:db8:1::/64 each time
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(i + 1)})
		if got := f.take(key(a.String(), i)); got != taken {
			t.Fatalf("IPv6 request %d: %d, want taken", i, got)
		}
	}
	if got := f.take(key("2001:db8:1::ffff", 99)); got != hostFull {
		t.Errorf("one more address of the same /64: %d, want hostFull", got)
	}
	if got := f.take(key("2001:db8:2::1", 0)); got != taken {
		t.Errorf("another /64: %d, want taken", got)
	}
	if got := f.take(key("fe80::1", 0)); got != taken {
		t.Errorf("a link-local source: %d, want taken", got)
	}
	if got := f.take(key("192.0.2.100", 0)); got != taken {
		t.Errorf("an IPv4 host: %d, want taken", got)
	}
	f.done(key("2001:db8:1::1", 0))
	if got := f.take(key("2001:db8:1::ffff", 99)); got != taken {
		t.Errorf("after one slot of the /64 was given back: %d, want taken", got)
	}
}
