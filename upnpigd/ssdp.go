package upnpigd

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pcpgw/pcpgw/internal/httpd"
)

// SSDP constants (UDA 1.1 §1).
var (
	ssdpGroup4 = netip.MustParseAddr(ssdpGroup)
	ssdpGroup6 = netip.MustParseAddr("ff02::c")
)

const (
	ssdpGroup     = "239.255.255.250"
	ssdpMaxAge    = 1800 // CACHE-CONTROL max-age, seconds
	ssdpMaxMX     = 5    // MX above this is treated as 5
	ssdpMaxPacket = 2048 // longer M-SEARCH requests are ignored
	configID      = 1    // CONFIGID.UPNP.ORG: the descriptions never change
)

var errNotMSearch = errors.New("upnpigd: not an M-SEARCH")

// mSearch is a parsed M-SEARCH request.
type mSearch struct {
	ST string
	MX int // -1 when absent (unicast search)
}

// parseMSearch parses an SSDP M-SEARCH request: request line
// `M-SEARCH * HTTP/1.1`, MAN "ssdp:discover", ST and (for multicast) MX.
func parseMSearch(b []byte) (mSearch, error) {
	m := mSearch{MX: -1}
	if len(b) > ssdpMaxPacket {
		return m, errNotMSearch
	}
	line, rest, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return m, errNotMSearch
	}
	if string(bytes.TrimRight(line, "\r")) != "M-SEARCH * HTTP/1.1" {
		return m, errNotMSearch
	}
	var man string
	seen := map[string]bool{}
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		l := string(bytes.TrimRight(line, "\r"))
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return m, errNotMSearch
		}
		k = strings.ToUpper(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if seen[k] {
			return m, errNotMSearch
		}
		seen[k] = true
		switch k {
		case "MAN":
			man = v
		case "ST":
			m.ST = v
		case "MX":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return m, errNotMSearch
			}
			m.MX = min(n, ssdpMaxMX)
		}
	}
	if man != `"ssdp:discover"` || m.ST == "" || len(m.ST) > 256 || strings.ContainsFunc(m.ST, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return m, errNotMSearch
	}
	return m, nil
}

// target is one NT/USN pair a root device advertises.
type target struct {
	nt, usn string
	dev     *rootDevice
}

// targets lists every NT/USN pair of d (UDA 1.1 §1.1.2: three for the
// root device, two for each embedded device, one for each service type).
func (d *rootDevice) targets() []target {
	t := []target{
		{"upnp:rootdevice", "uuid:" + d.uuidIGD + "::upnp:rootdevice", d},
		{"uuid:" + d.uuidIGD, "uuid:" + d.uuidIGD, d},
		{d.igdType(), "uuid:" + d.uuidIGD + "::" + d.igdType(), d},
		{"uuid:" + d.uuidWAN, "uuid:" + d.uuidWAN, d},
		{d.wanType(), "uuid:" + d.uuidWAN + "::" + d.wanType(), d},
		{"uuid:" + d.uuidConn, "uuid:" + d.uuidConn, d},
		{d.connType(), "uuid:" + d.uuidConn + "::" + d.connType(), d},
	}
	for _, sv := range d.services {
		owner := d.uuidConn
		if sv.kind == svcWANCommon {
			owner = d.uuidWAN
		}
		t = append(t, target{sv.typ, "uuid:" + owner + "::" + sv.typ, d})
	}
	return t
}

// splitVersion splits "urn:...:Name:2" into "urn:...:Name:" and 2.
func splitVersion(urn string) (string, int, bool) {
	if !strings.HasPrefix(urn, "urn:") {
		return "", 0, false
	}
	i := strings.LastIndexByte(urn, ':')
	v, err := strconv.Atoi(urn[i+1:])
	if err != nil || v < 1 {
		return "", 0, false
	}
	return urn[:i+1], v, true
}

// matches returns what answers a search for st: the targets with that
// NT, or, when no root device offers that version of a type, the higher
// versions of it (UDA 1.1 §1.3.2: a device answers searches for earlier
// versions of its type), with the searched ST echoed.
func (s *Server) matches(st string) []target {
	var out []target
	for _, d := range s.devices {
		for _, t := range d.targets() {
			if st == "ssdp:all" || t.nt == st {
				out = append(out, t)
			}
		}
	}
	if len(out) > 0 || st == "ssdp:all" {
		return out
	}
	prefix, v, ok := splitVersion(st)
	if !ok {
		return nil
	}
	for _, d := range s.devices {
		for _, t := range d.targets() {
			p, tv, ok := splitVersion(t.nt)
			if ok && p == prefix && tv > v {
				usn, _, _ := strings.Cut(t.usn, "::")
				out = append(out, target{nt: st, usn: usn + "::" + st, dev: d})
			}
		}
	}
	return out
}

// appendSearchReply appends the unicast answer to an M-SEARCH (UDA 1.1
// §1.3.3).
func (s *Server) appendSearchReply(b []byte, t target, location string, now time.Time) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\n"...)
	b = fmt.Appendf(b, "CACHE-CONTROL: max-age=%d\r\n", ssdpMaxAge)
	b = fmt.Appendf(b, "DATE: %s\r\n", now.UTC().Format(httpd.TimeFormat))
	b = append(b, "EXT:\r\n"...)
	b = fmt.Appendf(b, "LOCATION: %s\r\n", location)
	b = fmt.Appendf(b, "SERVER: %s\r\n", serverHeader)
	b = fmt.Appendf(b, "ST: %s\r\n", t.nt)
	b = fmt.Appendf(b, "USN: %s\r\n", t.usn)
	b = fmt.Appendf(b, "BOOTID.UPNP.ORG: %d\r\n", s.cfg.BootID)
	b = fmt.Appendf(b, "CONFIGID.UPNP.ORG: %d\r\n", configID)
	return append(b, "\r\n"...)
}

// appendNotify appends a NOTIFY ssdp:alive (location != "") or
// ssdp:byebye to the IPv4 or IPv6 group at port.
func (s *Server) appendNotify(b []byte, t target, location string, v6 bool, port int) []byte {
	b = append(b, "NOTIFY * HTTP/1.1\r\n"...)
	if v6 {
		b = fmt.Appendf(b, "HOST: [FF02::C]:%d\r\n", port)
	} else {
		b = fmt.Appendf(b, "HOST: %s:%d\r\n", ssdpGroup, port)
	}
	if location != "" {
		b = fmt.Appendf(b, "CACHE-CONTROL: max-age=%d\r\n", ssdpMaxAge)
		b = fmt.Appendf(b, "LOCATION: %s\r\n", location)
		b = fmt.Appendf(b, "SERVER: %s\r\n", serverHeader)
	}
	b = fmt.Appendf(b, "NT: %s\r\n", t.nt)
	if location != "" {
		b = append(b, "NTS: ssdp:alive\r\n"...)
	} else {
		b = append(b, "NTS: ssdp:byebye\r\n"...)
	}
	b = fmt.Appendf(b, "USN: %s\r\n", t.usn)
	b = fmt.Appendf(b, "BOOTID.UPNP.ORG: %d\r\n", s.cfg.BootID)
	b = fmt.Appendf(b, "CONFIGID.UPNP.ORG: %d\r\n", configID)
	return append(b, "\r\n"...)
}

// location is the description URL of d on LAN address a.
func (s *Server) location(d *rootDevice, a netip.Addr, port uint16) string {
	return "http://" + netip.AddrPortFrom(a, port).String() + d.descPath
}

// limit is a token bucket: burst bytes at once, refilled at rate bytes
// per second.
type limit struct {
	burst, rate float64
}

// rateLimiter bounds the bytes of answers per source (at most maxSources
// sources tracked) and over every source together.
type rateLimiter struct {
	perSource, all limit
	maxSources     int
	buckets        map[netip.Addr]*bucket
	global         bucket
	started        bool
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(perSource, all limit, maxSources int) *rateLimiter {
	return &rateLimiter{perSource: perSource, all: all, maxSources: maxSources, buckets: make(map[netip.Addr]*bucket)}
}

// refill brings b up to now.
func (b *bucket) refill(l limit, now time.Time) {
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(l.burst, b.tokens+el*l.rate)
	}
	b.last = now
}

// allow takes n bytes from src's bucket and the global one at now, if
// both hold them; an answer is sent whole or not at all.
func (r *rateLimiter) allow(src netip.Addr, n int, now time.Time) bool {
	if !r.started {
		r.global = bucket{tokens: r.all.burst, last: now}
		r.started = true
	}
	r.global.refill(r.all, now)
	b, ok := r.buckets[src]
	if !ok {
		if len(r.buckets) >= r.maxSources {
			for k, v := range r.buckets {
				if now.Sub(v.last).Seconds()*r.perSource.rate+v.tokens >= r.perSource.burst {
					delete(r.buckets, k)
				}
			}
			if len(r.buckets) >= r.maxSources {
				return false
			}
		}
		b = &bucket{tokens: r.perSource.burst, last: now}
		r.buckets[src] = b
	}
	b.refill(r.perSource, now)
	if b.tokens < float64(n) || r.global.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	r.global.tokens -= float64(n)
	return true
}
