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
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// SSDP scheduling.
const (
	notifyInterval  = 600 * time.Second // well inside max-age 1800
	maxPendingReply = 64                // delayed answers waiting for their MX time
	rateBurst       = 64                // answer datagrams per source at once
	rateRefill      = 16                // answer datagrams per source per second
	rateSources     = 1024
)

// ssdpIf is the SSDP side of one LAN interface.
type ssdpIf struct {
	ifi      *net.Interface
	addr     netip.Addr // its first IPv4 address: the LOCATION host
	prefixes []netip.Prefix
	conn     *net.UDPConn // bound to addr:SSDPPort: unicast searches, answers, NOTIFY
	pc       *ipv4.PacketConn
	httpPort uint16
}

type ssdpServer struct {
	s     *Server
	group *net.UDPConn // bound to 239.255.255.250:SSDPPort, joined on each LAN interface
	gpc   *ipv4.PacketConn
	port  int // the group port NOTIFYs go to
	ifs   []*ssdpIf

	mu      sync.Mutex
	rl      *rateLimiter
	pending atomic.Int32
	wg      sync.WaitGroup
}

func reuseAddr(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if serr == nil {
			// Only the groups this socket joined, not every group of the host.
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// listenSSDP opens the group socket and one unicast socket per LAN
// interface (on its first IPv4 address).
func (s *Server) listenSSDP(lans []lanNet) (*ssdpServer, error) {
	sd := &ssdpServer{s: s, rl: newRateLimiter(rateBurst, rateRefill, rateSources)}
	lc := net.ListenConfig{Control: reuseAddr}
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
		c, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(si.addr, uint16(port)).String())
		if err != nil {
			return fail(fmt.Errorf("upnpigd: SSDP socket on %s: %w", si.addr, err))
		}
		si.conn = c.(*net.UDPConn)
		si.pc = ipv4.NewPacketConn(si.conn)
		if err := si.pc.SetMulticastInterface(ifi); err != nil {
			s.log.Warn("SSDP: cannot send multicast", "interface", ifi.Name, "err", err)
		}
		si.pc.SetMulticastTTL(2)
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
	c, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("%s:%d", ssdpGroup, port))
	if err != nil {
		return fail(fmt.Errorf("upnpigd: SSDP group socket: %w", err))
	}
	sd.group = c.(*net.UDPConn)
	sd.gpc = ipv4.NewPacketConn(sd.group)
	joined := 0
	for _, si := range sd.ifs {
		if err := sd.gpc.JoinGroup(si.ifi, &net.UDPAddr{IP: net.ParseIP(ssdpGroup)}); err != nil {
			s.log.Warn("SSDP: cannot join the group", "interface", si.ifi.Name, "err", err)
			continue
		}
		joined++
	}
	if joined == 0 {
		s.log.Warn("SSDP: no interface joined the group; unicast searches only")
	}
	if err := sd.gpc.SetControlMessage(ipv4.FlagInterface, true); err != nil {
		return fail(fmt.Errorf("upnpigd: SSDP control messages: %w", err))
	}
	return sd, nil
}

func (sd *ssdpServer) close() {
	if sd.group != nil {
		sd.group.Close()
	}
	for _, si := range sd.ifs {
		si.conn.Close()
	}
}

// run serves until ctx ends, then says byebye and closes the sockets.
func (sd *ssdpServer) run(ctx context.Context) {
	var readers sync.WaitGroup
	readers.Add(1 + len(sd.ifs))
	go func() {
		defer readers.Done()
		sd.readGroup(ctx)
	}()
	for _, si := range sd.ifs {
		go func() {
			defer readers.Done()
			sd.readUnicast(ctx, si)
		}()
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
	dst := &net.UDPAddr{IP: net.ParseIP(ssdpGroup), Port: sd.port}
	for _, si := range sd.ifs {
		for _, d := range sd.s.devices {
			loc := ""
			if alive {
				loc = sd.s.location(d, si.addr, si.httpPort)
			}
			for _, t := range d.targets() {
				b := sd.s.appendNotify(nil, t, loc, sd.port)
				if _, err := si.conn.WriteTo(b, dst); err != nil {
					sd.s.log.Debug("SSDP NOTIFY", "interface", si.ifi.Name, "err", err)
					continue
				}
				sd.s.st.ssdpNotifies.Add(1)
			}
		}
	}
}

func (sd *ssdpServer) readGroup(ctx context.Context) {
	buf := make([]byte, 4096)
	for {
		n, cm, src, err := sd.gpc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ua, ok := src.(*net.UDPAddr)
		if !ok || cm == nil {
			continue
		}
		var si *ssdpIf
		for _, x := range sd.ifs {
			if x.ifi.Index == cm.IfIndex {
				si = x
			}
		}
		if si == nil {
			sd.s.st.ssdpForeign.Add(1)
			continue
		}
		sd.handle(ctx, si, ua.AddrPort(), buf[:n], true)
	}
}

func (sd *ssdpServer) readUnicast(ctx context.Context, si *ssdpIf) {
	buf := make([]byte, 4096)
	for {
		n, src, err := si.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		sd.handle(ctx, si, src, buf[:n], false)
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
	inLAN := false
	for _, p := range prefixes {
		if p.Contains(srcA) {
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
	if rl != nil && !rl.allow(srcA, len(ts), now) {
		s.st.ssdpRateLimited.Add(1)
		return nil, -1
	}
	s.st.ssdpSearches.Add(1)
	out := make([][]byte, 0, len(ts))
	for _, t := range ts {
		out = append(out, s.appendSearchReply(nil, t, s.location(t.dev, local, httpPort), now))
	}
	return out, m.MX
}

func (sd *ssdpServer) handle(ctx context.Context, si *ssdpIf, src netip.AddrPort, b []byte, multicast bool) {
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
	delay := time.Duration(rand.Int64N(int64(mx) * int64(time.Second)))
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
