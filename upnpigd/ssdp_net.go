package upnpigd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pcpgw/pcpgw/internal/mcast"
	"github.com/pcpgw/pcpgw/internal/sock"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// SSDP scheduling.
const (
	notifyInterval  = 600 * time.Second // well inside max-age 1800
	maxPendingReply = 64                // delayed answers waiting for their MX time
)

// SSDP answer budget (issue 10: answers must not amplify without bound).
// It counts bytes, not datagrams or searches: one answer datagram is
// 290-380 bytes, an ssdp:all search gets 19 of them (6.4 KB), and
// tailscale's portmapper probe (two ssdp:all and one IGD search) about 40
// (13.5 KB). A host may probe several times back to back (96 KiB: about 7
// such probes, 260 datagrams) and once a second after that (16 KiB/s);
// every source together gets at most 512 KiB at once and 128 KiB/s, so
// that sources spoofed within the LAN prefixes do not multiply it.
var (
	ratePerSource = limit{burst: 96 << 10, rate: 16 << 10}
	rateAll       = limit{burst: 512 << 10, rate: 128 << 10}
)

const rateSources = 1024 // sources tracked at once; more are refused until some are full again

// ssdpIf is the SSDP side of one LAN interface and address family.
type ssdpIf struct {
	ifi      *net.Interface
	v6       bool
	addr     netip.Addr // the LOCATION host: the first IPv4, or the first non-link-local IPv6 address
	prefixes []netip.Prefix
	conn     *net.UDPConn // bound to the interface (SO_BINDTODEVICE), its address (IPv6: link-local) and SSDPPort: unicast searches, answers, NOTIFY
	group    *net.UDPConn // bound to the group address itself (239.255.255.250 or ff02::c%if) and SSDPPort, joined on this interface only; nil if the join failed
	httpPort uint16
	dst      *net.UDPAddr // where NOTIFYs go
}

// ssdpServer holds the SSDP sockets. None is a wildcard (0.0.0.0:1900 would
// take datagrams to every address of the router, WAN included: RFC 6092
// REC-50): per interface, one unicast socket on its address and one group
// socket bound to the group address with mcast.ListenGroup, which joins on
// that interface only and (IP_MULTICAST_ALL off) receives only that
// interface's datagrams to the group, so the socket says where a search
// came from.
type ssdpServer struct {
	s    *Server
	port int // the group port NOTIFYs go to
	ifs  []*ssdpIf

	mu      sync.Mutex
	rl      *rateLimiter
	pending atomic.Int32
	wg      sync.WaitGroup
}

// ssdpOptions are the options of the SSDP sockets: several daemons may
// share the port, an IPv6 address may still be in duplicate address
// detection at boot, and only the groups a socket joined are its own.
var ssdpOptions = sock.Options{ReuseAddr: true, FreeBind: true, OwnGroupsOnly: true}

// listenSSDP opens the group socket and one unicast socket per LAN
// interface (on its first IPv4 address).
func (s *Server) listenSSDP(lans []lanNet) (*ssdpServer, error) {
	sd := &ssdpServer{s: s, rl: newRateLimiter(ratePerSource, rateAll, rateSources)}
	port := s.cfg.SSDPPort
	if port == EphemeralPort {
		port = 0
	}
	fail := func(err error) (*ssdpServer, error) {
		sd.close()
		return nil, err
	}
	byIf := map[int]*ssdpIf{}
	for _, n := range lans {
		if !n.prefix.Addr().Is4() {
			continue
		}
		if si, ok := byIf[n.ifindex]; ok {
			si.prefixes = append(si.prefixes, n.prefix.Masked())
			continue
		}
		ifi, err := net.InterfaceByIndex(n.ifindex)
		if err != nil {
			return fail(fmt.Errorf("upnpigd: interface %s: %w", n.ifname, err))
		}
		hp, _ := s.httpPortOf(n.prefix.Addr())
		si := &ssdpIf{ifi: ifi, addr: n.prefix.Addr(), prefixes: []netip.Prefix{n.prefix.Masked()}, httpPort: hp}
		err = s.onDevice(ifi.Name, ssdpOptions, func(o sock.Options) (err error) {
			si.conn, err = sock.ListenUDP(netip.AddrPortFrom(si.addr, uint16(port)), o)
			return err
		})
		if err != nil {
			return fail(fmt.Errorf("upnpigd: SSDP socket on %s: %w", si.addr, err))
		}
		pc := ipv4.NewPacketConn(si.conn)
		if err := pc.SetMulticastInterface(ifi); err != nil {
			s.log.Warn("SSDP: cannot send multicast", "interface", ifi.Name, "err", err)
		}
		pc.SetMulticastTTL(2)
		byIf[n.ifindex] = si
		sd.ifs = append(sd.ifs, si)
		if port == 0 {
			port = int(netip.MustParseAddrPort(si.conn.LocalAddr().String()).Port())
		}
		s.mu.Lock()
		s.ssdp = append(s.ssdp, netip.MustParseAddrPort(si.conn.LocalAddr().String()))
		s.mu.Unlock()
	}
	if len(sd.ifs) == 0 {
		return fail(errors.New("upnpigd: no IPv4 address on the LAN interfaces for SSDP"))
	}
	sd.port = port
	for _, si := range sd.ifs {
		si.dst = &net.UDPAddr{IP: ssdpGroup4.AsSlice(), Port: port}
	}
	joined := 0
	for _, si := range sd.ifs {
		g, err := mcast.ListenGroup(netip.AddrPortFrom(ssdpGroup4, uint16(port)), []*net.Interface{si.ifi})
		if err != nil {
			s.log.Warn("SSDP: cannot join the group", "interface", si.ifi.Name, "err", err)
			continue
		}
		si.group = g
		joined++
	}
	if joined == 0 {
		s.log.Warn("SSDP: no interface joined the group; unicast searches only")
	}
	sd.listenSSDP6(lans)
	return sd, nil
}

// listenSSDP6 adds SSDP over IPv6 (ff02::c, UDA 1.1 §1.1.1) on each LAN
// interface that has a link-local address (the source of answers and
// NOTIFYs) and a global or unique-local one (the LOCATION host). An
// interface where that fails keeps IPv4 SSDP only.
func (sd *ssdpServer) listenSSDP6(lans []lanNet) {
	s := sd.s
	seen := map[int]bool{}
	var ok bool
	for _, n := range lans {
		if !n.prefix.Addr().Is6() || seen[n.ifindex] {
			continue
		}
		seen[n.ifindex] = true
		ifi, err := net.InterfaceByIndex(n.ifindex)
		if err != nil || ifi.Flags&net.FlagMulticast == 0 {
			continue
		}
		si := &ssdpIf{ifi: ifi, v6: true, addr: n.prefix.Addr()}
		if si.httpPort, ok = s.httpPortOf(si.addr); !ok {
			continue // no HTTP listener on that address
		}
		for _, m := range lans {
			if m.ifindex == n.ifindex && m.prefix.Addr().Is6() {
				si.prefixes = append(si.prefixes, m.prefix.Masked())
			}
		}
		ll, found := linkLocal6(ifi)
		if !found {
			continue
		}
		warn := func(what string, err error) {
			s.log.Warn("SSDP over IPv6 unavailable", "interface", ifi.Name, "step", what, "err", err)
		}
		err = s.onDevice(ifi.Name, ssdpOptions, func(o sock.Options) (err error) {
			si.conn, err = sock.ListenUDP(netip.AddrPortFrom(ll.WithZone(ifi.Name), uint16(sd.port)), o)
			return err
		})
		if err != nil {
			warn("unicast socket", err)
			continue
		}
		g, err := mcast.ListenGroup(netip.AddrPortFrom(ssdpGroup6, uint16(sd.port)), []*net.Interface{ifi})
		if err != nil {
			si.conn.Close()
			warn("group socket", err)
			continue
		}
		si.group = g
		pc := ipv6.NewPacketConn(si.conn)
		pc.SetMulticastInterface(ifi)
		pc.SetMulticastHopLimit(2)
		si.dst = &net.UDPAddr{IP: ssdpGroup6.AsSlice(), Port: sd.port, Zone: ifi.Name}
		sd.ifs = append(sd.ifs, si)
		s.mu.Lock()
		s.ssdp = append(s.ssdp, netip.MustParseAddrPort(si.conn.LocalAddr().String()))
		s.mu.Unlock()
	}
}

// linkLocal6 returns an IPv6 link-local address of ifi.
func linkLocal6(ifi *net.Interface) (netip.Addr, bool) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Is6() && !ip.Is4In6() && ip.IsLinkLocalUnicast() {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}

func (sd *ssdpServer) close() {
	for _, si := range sd.ifs {
		si.conn.Close()
		if si.group != nil {
			si.group.Close()
		}
	}
}

// run serves until ctx ends, then says byebye and closes the sockets.
func (sd *ssdpServer) run(ctx context.Context) {
	var readers sync.WaitGroup
	for _, si := range sd.ifs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			sd.read(ctx, si, si.conn, false)
		}()
		if si.group != nil {
			readers.Add(1)
			go func() {
				defer readers.Done()
				sd.read(ctx, si, si.group, true)
			}()
		}
	}
	sd.announce(true)
	t := time.NewTimer(time.Second) // a second round soon: UDP is lossy
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
			sd.announce(true)
			t.Reset(notifyInterval - time.Duration(rand.Int64N(int64(notifyInterval/10))))
		}
	}
	t.Stop()
	sd.announce(false)
	sd.close()
	readers.Wait()
	sd.wg.Wait()
}

// announce multicasts ssdp:alive (or byebye) for every target on every
// LAN interface.
func (sd *ssdpServer) announce(alive bool) {
	for _, si := range sd.ifs {
		for _, d := range sd.s.devices {
			loc := ""
			if alive {
				loc = sd.s.location(d, si.addr, si.httpPort)
			}
			for _, t := range d.targets() {
				b := sd.s.appendNotify(nil, t, loc, si.v6, sd.port)
				if _, err := si.conn.WriteTo(b, si.dst); err != nil {
					sd.s.log.Debug("SSDP NOTIFY", "interface", si.ifi.Name, "err", err)
					continue
				}
				sd.s.st.ssdpNotifies.Add(1)
			}
		}
	}
}

// read reads a socket of one interface: its unicast socket or its group
// socket.
func (sd *ssdpServer) read(ctx context.Context, si *ssdpIf, c *net.UDPConn, multicast bool) {
	buf := make([]byte, 4096)
	for {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		sd.handle(ctx, si, src, buf[:n], multicast)
	}
}

// searchReplies is the pure part of answering an M-SEARCH that arrived on
// an interface with LAN prefixes, whose descriptions are at
// local:httpPort: it returns the answers and the MX (-1: answer at once).
func (s *Server) searchReplies(src netip.AddrPort, local netip.Addr, httpPort uint16, prefixes []netip.Prefix, b []byte, now time.Time, rl *rateLimiter) ([][]byte, int) {
	m, err := parseMSearch(b)
	if err != nil {
		// NOTIFYs of other devices arrive here too; count only garbage.
		if len(b) < 7 || string(b[:7]) != "NOTIFY " {
			s.st.ssdpMalformed.Add(1)
		}
		return nil, -1
	}
	srcA := src.Addr().Unmap()
	// On an IPv6 socket of one interface, link-local sources are on that
	// link by definition.
	inLAN := srcA.Is6() && srcA.IsLinkLocalUnicast() && srcA.Zone() != ""
	srcA = srcA.WithZone("")
	for _, p := range prefixes {
		if p.Contains(srcA) && !hostless(p, srcA) {
			inLAN = true
		}
	}
	if !inLAN || src.Port() == 0 {
		s.st.ssdpForeign.Add(1)
		return nil, -1
	}
	ts := s.matches(m.ST)
	if len(ts) == 0 {
		return nil, -1
	}
	out := make([][]byte, 0, len(ts))
	size := 0
	for _, t := range ts {
		r := s.appendSearchReply(nil, t, s.location(t.dev, local, httpPort), now)
		out = append(out, r)
		size += len(r)
	}
	if rl != nil && !rl.allow(srcA, size, now) {
		s.st.ssdpRateLimited.Add(1)
		return nil, -1
	}
	s.st.ssdpSearches.Add(1)
	return out, m.MX
}

// hostless reports whether a, inside p, is an address no host has: the
// network address (IPv6: the subnet-router anycast address) or the IPv4
// broadcast address of p. A search "from" one of them is spoofed, and
// answering it would reflect the answers at every host of the link.
func hostless(p netip.Prefix, a netip.Addr) bool {
	bits := a.BitLen() - p.Bits()
	if bits < 1 || a.Is4() && bits < 2 {
		return false // /32, /128, /31: every address is a host
	}
	if a == p.Masked().Addr() {
		return true
	}
	if !a.Is4() {
		return false
	}
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	return v&(1<<bits-1) == 1<<bits-1
}

func (sd *ssdpServer) handle(ctx context.Context, si *ssdpIf, src netip.AddrPort, b []byte, multicast bool) {
	if !si.v6 {
		src = netip.AddrPortFrom(src.Addr().Unmap().WithZone(""), src.Port())
	}
	sd.mu.Lock()
	replies, mx := sd.s.searchReplies(src, si.addr, si.httpPort, si.prefixes, b, sd.s.now(), sd.rl)
	sd.mu.Unlock()
	if len(replies) == 0 {
		return
	}
	send := func() {
		for _, r := range replies {
			if _, err := si.conn.WriteToUDPAddrPort(r, src); err == nil {
				sd.s.st.ssdpReplies.Add(1)
			}
		}
	}
	if !multicast || mx <= 0 {
		send()
		return
	}
	if sd.pending.Add(1) > maxPendingReply {
		sd.pending.Add(-1)
		sd.s.st.ssdpRateLimited.Add(1)
		return
	}
	// Within MX, leaving half a second for the way back: some control
	// points (goupnp) stop listening exactly MX seconds after sending.
	delay := time.Duration(rand.Int64N(int64(mx)*int64(time.Second) - int64(500*time.Millisecond)))
	sd.wg.Add(1)
	go func() {
		defer sd.wg.Done()
		defer sd.pending.Add(-1)
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
			send()
		}
	}()
}
