package pcpclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/pcpgw/pcpgw/internal/dnsq"
	"github.com/pcpgw/pcpgw/pcp"
)

// Bounds of the AFTR name resolution (RFC 6334 / REQUIREMENTS 31).
const (
	dnsQueryTimeout = 2 * time.Second // one query to one resolver
	dnsTotalTimeout = 5 * time.Second // the whole resolution
)

// withDefaultPort gives a server address with port 0 the PCP server port.
func withDefaultPort(ap netip.AddrPort) netip.AddrPort {
	if ap.Port() == 0 {
		return netip.AddrPortFrom(ap.Addr().Unmap(), pcp.ServerPort)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// parseServerLine reads one line of a servers file: an address ("100.64.0.1",
// "2001:db8::1") or an address and port ("100.64.0.1:5351",
// "[2001:db8::1]:5351"). Blank lines and lines starting with '#' give ok=false.
func parseServerLine(line string) (ap netip.AddrPort, ok bool, err error) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return netip.AddrPort{}, false, nil
	}
	if a, err := netip.ParseAddr(line); err == nil {
		return withDefaultPort(netip.AddrPortFrom(a, 0)), true, nil
	}
	ap, err = netip.ParseAddrPort(line)
	if err != nil {
		return netip.AddrPort{}, false, fmt.Errorf("pcpclient: bad server address %q", line)
	}
	return withDefaultPort(ap), true, nil
}

// readServersFile reads the file a DHCP hook writes (RFC 7291: DHCPv4 option
// 158, DHCPv6 option 86): one server address per line. Lines that do not
// parse are reported in the error but do not hide the good ones.
func readServersFile(path string) ([]netip.AddrPort, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []netip.AddrPort
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		ap, ok, err := parseServerLine(sc.Text())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", path, n, err))
			continue
		}
		if ok {
			out = appendUnique(out, ap)
		}
	}
	return out, errors.Join(errs...)
}

func appendUnique(list []netip.AddrPort, ap netip.AddrPort) []netip.AddrPort {
	for _, x := range list {
		if x == ap {
			return list
		}
	}
	return append(list, ap)
}

// resolvConf is where the system's resolvers are listed when
// Config.Resolvers is empty.
var resolvConf = "/etc/resolv.conf"

// systemResolvers reads the nameserver lines of a resolv.conf file.
func systemResolvers(path string) ([]netip.AddrPort, error) {
	c, err := dnsq.ReadResolvConf(path)
	return c.Servers, err
}

// resolveAFTR looks up the AAAA records of the DS-Lite AFTR name (DHCPv6
// option 64, RFC 6334) with the given resolvers, each in turn, each query
// within dnsQueryTimeout and all within dnsTotalTimeout. The AFTR is where
// the provider's PCP server lives (RFC 6970 §1). The name is fully
// qualified: no search list.
//
// It uses internal/dnsq rather than Go's resolver (about 260 KB on a MIPS
// router) or github.com/miekg/dns (which brings crypto/tls, about 1.5 MB).
func resolveAFTR(ctx context.Context, name string, resolvers []netip.AddrPort) ([]netip.Addr, error) {
	if len(resolvers) == 0 {
		return nil, errors.New("pcpclient: no DNS resolver for the AFTR name")
	}
	ctx, cancel := context.WithTimeout(ctx, dnsTotalTimeout)
	defer cancel()
	fqdn := strings.TrimSuffix(name, ".") + "."
	addrs, err := dnsq.Lookup(ctx, resolvers, fqdn, dnsq.TypeAAAA, dnsQueryTimeout)
	if err != nil {
		return nil, fmt.Errorf("pcpclient: resolving AFTR %q: %w", name, err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if !a.Is4In6() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("pcpclient: resolving AFTR %q: only IPv4-mapped addresses", name)
	}
	return out, nil
}

// Route tables of the calling thread's network namespace (thread-self, so
// that a goroutine locked into another namespace reads that one).
var (
	routeFile4 = "/proc/thread-self/net/route"
	routeFile6 = "/proc/thread-self/net/ipv6_route"
)

// defaultRouters returns the IPv4 and IPv6 default routers (RFC 6887 §8.1
// step 2) of the main routing table, only those through iface (IPv4) and
// iface6 (IPv6) when they are not empty.
func defaultRouters(iface, iface6 string) []netip.Addr {
	var out []netip.Addr
	if b, err := os.ReadFile(routeFile4); err == nil {
		out = append(out, parseRoute4(b, iface)...)
	}
	if b, err := os.ReadFile(routeFile6); err == nil {
		out = append(out, parseRoute6(b, iface6)...)
	}
	return out
}

// parseRoute4 reads /proc/net/route: Iface Destination Gateway Flags RefCnt
// Use Metric Mask ..., addresses as little-endian hex.
func parseRoute4(b []byte, iface string) []netip.Addr {
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[0] == "Iface" || (iface != "" && f[0] != iface) {
			continue
		}
		if f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		g, err := hex.DecodeString(f[2])
		if err != nil || len(g) != 4 {
			continue
		}
		a := netip.AddrFrom4([4]byte{g[3], g[2], g[1], g[0]})
		if !a.IsUnspecified() {
			out = append(out, a)
		}
	}
	return out
}

// parseRoute6 reads /proc/net/ipv6_route: dest plen src splen nexthop
// metric refcnt use flags iface, addresses as 32 hex digits.
func parseRoute6(b []byte, iface string) []netip.Addr {
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || (iface != "" && f[9] != iface) {
			continue
		}
		if f[0] != strings.Repeat("0", 32) || f[1] != "00" {
			continue
		}
		g, err := hex.DecodeString(f[4])
		if err != nil || len(g) != 16 {
			continue
		}
		a := netip.AddrFrom16([16]byte(g))
		if a.IsUnspecified() {
			continue
		}
		if a.IsLinkLocalUnicast() && f[9] != "" {
			a = a.WithZone(f[9])
		}
		out = append(out, a)
	}
	return out
}
