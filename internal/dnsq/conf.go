package dnsq

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Conf is what a resolv.conf file says (resolv.conf(5)), of what this
// package uses.
type Conf struct {
	// Servers are the nameserver lines' addresses, port 53, in order
	// (all of them: there is no limit of 3).
	Servers []netip.AddrPort
	// Search is the search list: the last "search" or "domain" line.
	Search []string
	// Ndots is "options ndots:n" (default 1, at most 15).
	Ndots int
	// Timeout is "options timeout:n", in seconds (at most 30); zero when
	// not given.
	Timeout time.Duration
}

// ParseResolvConf reads a file in resolv.conf's format. Lines it does not
// know, and addresses that do not parse, are skipped, as the C library
// does.
func ParseResolvConf(b []byte) Conf {
	c := Conf{Ndots: 1}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if a, err := netip.ParseAddr(f[1]); err == nil {
				c.Servers = append(c.Servers, netip.AddrPortFrom(a.Unmap(), 53))
			}
		case "domain":
			c.Search = []string{strings.TrimSuffix(f[1], ".")}
		case "search":
			c.Search = c.Search[:0:0]
			for _, d := range f[1:] {
				c.Search = append(c.Search, strings.TrimSuffix(d, "."))
			}
		case "options":
			for _, o := range f[1:] {
				k, v, ok := strings.Cut(o, ":")
				n, err := strconv.Atoi(v)
				if !ok || err != nil || n < 0 {
					continue
				}
				switch k {
				case "ndots":
					c.Ndots = min(n, 15)
				case "timeout":
					c.Timeout = time.Duration(min(n, 30)) * time.Second
				}
			}
		}
	}
	return c
}

// ReadResolvConf reads a resolv.conf file. It is an error when the file
// cannot be read or names no server.
func ReadResolvConf(path string) (Conf, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Conf{}, err
	}
	c := ParseResolvConf(b)
	if len(c.Servers) == 0 {
		return c, fmt.Errorf("dnsq: no nameserver in %s", path)
	}
	return c, nil
}

// names is the list of names to ask for host, as the C library and Go's
// resolver make it: a name with a trailing dot as it is; else the name as
// it is first when it has at least Ndots dots, then with each search
// domain, then as it is when it has fewer.
func (c Conf) names(host string) []string {
	if strings.HasSuffix(host, ".") {
		return []string{host}
	}
	asIs := strings.Count(host, ".") >= c.Ndots
	var out []string
	if asIs {
		out = append(out, host+".")
	}
	for _, d := range c.Search {
		if d != "" {
			out = append(out, host+"."+d+".")
		}
	}
	if !asIs {
		out = append(out, host+".")
	}
	return out
}

// LookupHosts returns the addresses that a file in /etc/hosts's format
// gives host (hosts(5): an address then names, '#' to the end of a line
// is a comment), in the file's order; names are compared without regard
// to ASCII case or a trailing dot.
func LookupHosts(b []byte, host string) []netip.Addr {
	host = strings.TrimSuffix(host, ".")
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		for _, n := range f[1:] {
			if strings.EqualFold(strings.TrimSuffix(n, "."), host) {
				out = append(out, a.Unmap())
				break
			}
		}
	}
	return out
}

// Resolver looks up host names as the system does, without the C library
// or Go's resolver: the hosts file, then the servers of a resolv.conf
// file, both read at each lookup.
type Resolver struct {
	// ResolvConf is the resolv.conf file ("": /etc/resolv.conf).
	ResolvConf string
	// Hosts is the hosts file ("": /etc/hosts; "-": none).
	Hosts string
	// Timeout bounds one query to one server (0: the file's "options
	// timeout", else DefaultTimeout).
	Timeout time.Duration
}

// LookupHost returns host's addresses: those of the hosts file when it
// names host (no DNS query then, as with "hosts: files dns"); else the A
// and AAAA records (asked at once) of the first name of the search list
// (see Conf) that has some, each asked of the servers in turn (Lookup).
// The IPv4 addresses come first. NotFound(err) tells a name that does
// not exist or has no address from a failed lookup.
func (r Resolver) LookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	if host == "" {
		return nil, errors.New("dnsq: empty host name")
	}
	hosts := r.Hosts
	if hosts == "" {
		hosts = "/etc/hosts"
	}
	if hosts != "-" {
		if b, err := os.ReadFile(hosts); err == nil {
			if as := LookupHosts(b, host); len(as) > 0 {
				return as, nil
			}
		}
	}
	path := r.ResolvConf
	if path == "" {
		path = "/etc/resolv.conf"
	}
	conf, err := ReadResolvConf(path)
	if err != nil {
		return nil, err
	}
	if r.Timeout > 0 {
		conf.Timeout = r.Timeout
	}
	return lookupConf(ctx, conf, host)
}

// lookupConf asks conf's servers for host's A and AAAA records, with the
// search list.
//
// The error is NotFound only when every name of the list was: a name not
// found beside one whose lookup failed (nas.lan. NXDOMAIN, nas. timed
// out) is a failure, as Go's resolver and the C library report it.
func lookupConf(ctx context.Context, conf Conf, host string) ([]netip.Addr, error) {
	var failed, missing []error
	for _, name := range conf.names(host) {
		if ctx.Err() != nil {
			failed = append(failed, ctx.Err())
			break
		}
		var (
			wg     sync.WaitGroup
			a4, a6 []netip.Addr
			e4, e6 error
		)
		wg.Go(func() { a4, e4 = Lookup(ctx, conf.Servers, name, TypeA, conf.Timeout) })
		a6, e6 = Lookup(ctx, conf.Servers, name, TypeAAAA, conf.Timeout)
		wg.Wait()
		if as := append(a4, a6...); len(as) > 0 {
			return as, nil
		}
		for _, e := range []error{e4, e6} {
			if NotFound(e) {
				missing = append(missing, e)
			} else {
				failed = append(failed, e)
			}
		}
	}
	if len(failed) == 0 {
		return nil, fmt.Errorf("dnsq: looking up %s: %w", host, errors.Join(missing...))
	}
	if len(missing) == 0 {
		return nil, fmt.Errorf("dnsq: looking up %s: %w", host, errors.Join(failed...))
	}
	return nil, fmt.Errorf("dnsq: looking up %s: %w (not found: %v)", host, errors.Join(failed...), errors.Join(missing...))
}
