// Package dhcpleases reads dnsmasq's lease file (OpenWrt: /tmp/dhcp.leases)
// so that pcpgw can forget the mappings of a LAN host whose DHCP lease
// ended (RFC 6970 §5.10: "if an IP address expires or is released by an
// internal host, the IGD-PCP IWF MUST delete all the mappings bound to
// that internal IP address").
//
// Each line of the file is one lease, fields separated by spaces:
//
//	<expiry, seconds since 1970 or 0 for infinite> <MAC> <IP> <host name or *> <client id or *>
//	1767225600 02:00:00:00:00:01 192.0.2.100 nas 01:02:00:00:00:00:01
//
// DHCPv6 leases follow a "duid <server DUID>" line, with the IAID in the
// second field and the IPv6 address in the third.
package dhcpleases

import (
	"bufio"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Lease is one lease of the file.
type Lease struct {
	Addr     netip.Addr
	Expires  time.Time // zero: no end (or not an absolute time)
	Hostname string    // "" when the client gave none
	// Client is who holds it: the MAC address (IAID for DHCPv6).
	Client string
}

// absoluteAfter: an expiry before 2000 is not a time of day but what a
// dnsmasq built with HAVE_BROKEN_RTC writes (seconds left): not believed.
var absoluteAfter = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// maxLines bounds what is read of a file (a home has far fewer leases).
const maxLines = 65536

// Parse reads a lease file. Lines it cannot read are skipped: the file is
// written by dnsmasq, and a partial line must not hide the others.
func Parse(r io.Reader) map[netip.Addr]Lease {
	out := make(map[netip.Addr]Lease)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 4096)
	for n := 0; sc.Scan() && n < maxLines; n++ {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] == "duid" {
			continue
		}
		a, err := netip.ParseAddr(f[2])
		if err != nil || a.Zone() != "" {
			continue
		}
		exp, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || exp < 0 {
			continue
		}
		l := Lease{Addr: a.Unmap(), Client: f[1]}
		if exp > absoluteAfter {
			l.Expires = time.Unix(exp, 0)
		}
		if f[3] != "*" {
			l.Hostname = f[3]
		}
		out[l.Addr] = l
	}
	return out
}

// Ended returns the addresses that held a lease in before and no longer
// hold one in now, whose lease expired by at, or that another client
// holds now (the address was leased again: its old holder's mappings must
// not lead to the new one).
func Ended(before, now map[netip.Addr]Lease, at time.Time) []netip.Addr {
	var out []netip.Addr
	for a, old := range before {
		l, ok := now[a]
		if !ok || (!l.Expires.IsZero() && !l.Expires.After(at)) || l.Client != old.Client {
			out = append(out, a)
		}
	}
	return out
}
