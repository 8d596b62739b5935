package natpmp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/pcpgw/pcpgw/internal/sock"
	"github.com/pcpgw/pcpgw/mapping"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// lanView is what the LAN interfaces hold at one scan.
type lanView struct {
	addrs    []lanAddr      // every usable address, in interface order
	prefixes []netip.Prefix // the on-link prefixes (THIRD_PARTY check)
}

type lanAddr struct {
	addr    netip.Addr // with the interface as zone when link-local
	ifname  string
	ifindex int
}

// isLocal reports whether a is one of the LAN addresses (zone ignored).
func (v *lanView) isLocal(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, l := range v.addrs {
		if l.addr.WithZone("") == a {
			return true
		}
	}
	return false
}

// onLink reports whether a lies in one of the LAN prefixes.
func (v *lanView) onLink(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range v.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// scanLAN reads the addresses of the named interfaces. Interfaces that do
// not exist (yet) contribute nothing.
func scanLAN(names []string) *lanView {
	v := &lanView{}
	for _, name := range names {
		ifi, err := net.InterfaceByName(name)
		if err != nil || ifi.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			ones, _ := ipn.Mask.Size()
			if p, err := ip.Prefix(ones); err == nil {
				v.prefixes = append(v.prefixes, p)
			}
			if ip.Is6() && ip.IsLinkLocalUnicast() {
				ip = ip.WithZone(name)
			}
			v.addrs = append(v.addrs, lanAddr{addr: ip, ifname: name, ifindex: ifi.Index})
		}
	}
	return v
}

// lanConn is one socket, bound to one LAN address.
type lanConn struct {
	lanAddr
	conn  *net.UDPConn
	local netip.AddrPort // the bound address and port
}

// Addrs returns the addresses and ports the server listens on now.
func (s *Server) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c.local)
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return out
}

// Run listens on the LAN addresses, answers requests and sends the
// announcements (at start, and on the core's EventExternalAddr and
// EventStateLost, and when a NAT-PMP mapping moved) and the PCP Mapping
// Updates (when a PCP mapping moved or the external address changed)
// until ctx ends. It returns after every goroutine it
// started has ended. The LAN addresses are re-read every Config.Rescan:
// sockets are opened for new addresses and closed for gone ones (an IPv6
// address still in duplicate address detection is retried at the next scan).
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("natpmp: already running")
	}
	defer s.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.baseCtx.Store(&ctx)
	defer func() { bg := context.Background(); s.baseCtx.Store(&bg) }()

	events, unsubscribe := s.cfg.Core.Subscribe()
	defer unsubscribe()

	var wg sync.WaitGroup
	sem := make(chan struct{}, maxInFlight)
	defer func() {
		cancel()
		s.mu.Lock()
		for k, c := range s.conns {
			c.conn.Close()
			delete(s.conns, k)
		}
		s.mu.Unlock()
		wg.Wait()
	}()

	if _, err := s.rescan(ctx, &wg, sem, true); err != nil {
		return err
	}
	s.readyOnce.Do(func() { close(s.ready) })
	trigger := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.announceLoop(ctx, trigger, func() { s.sendAnnouncements(ctx) })
	}()
	poke := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	poke()
	tick := time.NewTicker(s.cfg.Rescan)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			switch ev.Kind {
			case mapping.EventExternalAddr, mapping.EventStateLost:
				s.log.Info("announcing", "event", ev.Kind, "external", ev.External)
				poke()
				if ev.Kind == mapping.EventExternalAddr {
					s.updateAll(ctx, &wg)
				}
			case mapping.EventMappingMoved:
				s.mappingMoved(ctx, &wg, ev, poke)
			case mapping.EventMappingLost:
				s.mappingLost(ctx, &wg, ev)
			}
		case <-tick.C:
			// Hosts on a LAN address that just appeared (an interface
			// coming up) hear the announcements too.
			if opened, _ := s.rescan(ctx, &wg, sem, false); opened > 0 {
				poke()
			}
		}
	}
}

// rescan opens sockets for new LAN addresses and closes those of vanished
// ones, and returns how many it opened. At the first scan, an address that
// cannot be bound because the port is in use is an error (another server
// holds it).
func (s *Server) rescan(ctx context.Context, wg *sync.WaitGroup, sem chan struct{}, first bool) (opened int, err error) {
	view := scanLAN(s.cfg.Interfaces)
	s.lan.Store(view)
	want := make(map[netip.AddrPort]lanAddr)
	for _, a := range view.addrs {
		port := s.cfg.Port
		if port < 0 {
			port = 0
		}
		want[netip.AddrPortFrom(a.addr, uint16(port))] = a
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.conns {
		if _, ok := want[k]; !ok {
			s.log.Info("stop listening", "addr", c.local)
			c.conn.Close()
			delete(s.conns, k)
		}
	}
	var inUse error
	for k, a := range want {
		if _, ok := s.conns[k]; ok {
			continue
		}
		c, bound, err := listen(k, a)
		if err == nil && !bound && !s.warnedBind {
			s.warnedBind = true
			s.log.Warn("cannot bind sockets to the LAN interface (no CAP_NET_RAW): requests to a LAN address arriving from the WAN side are only kept out by the firewall", "interface", a.ifname)
		}
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				inUse = err
			}
			s.log.Debug("cannot listen yet", "addr", k, "err", err)
			continue
		}
		s.log.Info("listening", "addr", c.local, "interface", a.ifname)
		s.conns[k] = c
		opened++
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.readLoop(ctx, c, wg, sem)
		}()
	}
	if first && inUse != nil {
		for _, c := range s.conns {
			c.conn.Close()
		}
		clear(s.conns)
		return 0, inUse
	}
	return opened, nil
}

// listen binds one socket to ap and sets it up for the multicast
// announcements on the address's interface (TTL/hop limit 1). The socket is
// also bound to the LAN interface (SO_BINDTODEVICE): Linux delivers a
// datagram for a local address whatever interface it came in on, so
// without it a request sent from the WAN side to a LAN address would be
// read (RFC 6887 §8.2, RFC 6886 §3.3). Without the privilege for that
// (CAP_NET_RAW), the socket is bound to the address only and
// deviceBound is false.
func listen(ap netip.AddrPort, a lanAddr) (c *lanConn, deviceBound bool, err error) {
	deviceBound = true
	uc, err := sock.ListenUDP(ap, sock.Options{Device: a.ifname})
	if errors.Is(err, syscall.EPERM) {
		deviceBound = false
		uc, err = sock.ListenUDP(ap, sock.Options{})
	}
	if err != nil {
		return nil, false, err
	}
	ifi := &net.Interface{Index: a.ifindex, Name: a.ifname}
	if ap.Addr().Is4() {
		p := ipv4.NewPacketConn(uc)
		err = errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastTTL(1))
	} else {
		p := ipv6.NewPacketConn(uc)
		err = errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastHopLimit(1))
	}
	if err != nil {
		uc.Close()
		return nil, false, err
	}
	local := uc.LocalAddr().(*net.UDPAddr).AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap().WithZone(ap.Addr().Zone()), local.Port())
	return &lanConn{lanAddr: a, conn: uc, local: local}, deviceBound, nil
}

// readLoop reads requests from one socket and hands each to a worker; it
// ends when the socket is closed.
func (s *Server) readLoop(ctx context.Context, c *lanConn, wg *sync.WaitGroup, sem chan struct{}) {
	buf := make([]byte, 2048)
	dst := c.local.Addr()
	for {
		n, src, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			s.debug("read", "addr", c.local, "err", err)
			continue
		}
		// The per-host checks come before a worker slot is taken: a
		// flood from one host ends at its token bucket.
		now := s.now()
		client := netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if !s.admit(client, dst, now) {
			continue
		}
		// A retransmission of a request being served is dropped: the
		// answer to the first copy goes to the same source and serves
		// it (a client retransmits while the request waits for the
		// upstream's detection or a slow provider). The same client's
		// next retransmission after that answer is served again.
		pkt := slices.Clone(buf[:n])
		key := inflightKey{src: client, dst: dst, pkt: string(pkt)}
		switch s.inflight.take(key) {
		case duplicate:
			s.stats.duplicates.Add(1)
			continue
		case hostFull:
			s.stats.overload.Add(1)
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			s.inflight.done(key)
			s.stats.overload.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer s.inflight.done(key)
			reply := s.serve(ctx, client, dst, pkt, now)
			if reply == nil {
				return
			}
			if _, err := c.conn.WriteToUDPAddrPort(reply, src); err != nil {
				s.stats.sendErrors.Add(1)
				s.debug("reply", "client", src, "err", err)
			}
		}()
	}
}
