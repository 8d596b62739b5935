package natpmp

import (
	"context"
	"net/netip"
	"time"
)

// Announcement schedule (RFC 6886 §3.2.1, RFC 6887 §14.1.3): 10 sends, the
// first at once, then 250 ms later, each interval doubling the previous.
const (
	announceCount = 10
	announceFirst = 250 * time.Millisecond
)

var (
	mcast4 = netip.MustParseAddr("224.0.0.1")
	mcast6 = netip.MustParseAddr("ff02::1")
)

// announceLoop calls send on the announcement schedule each time trigger
// fires; a trigger during a schedule starts it again from the beginning. It
// returns when ctx ends.
func (s *Server) announceLoop(ctx context.Context, trigger <-chan struct{}, send func()) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	left, interval := 0, announceFirst
	for {
		select {
		case <-ctx.Done():
			return
		case <-trigger:
			left, interval = announceCount, announceFirst
		case <-timer.C:
		}
		if left == 0 {
			continue
		}
		send()
		left--
		if left > 0 {
			timer.Reset(interval)
			interval *= 2
		}
	}
}

// sendAnnouncements sends one round: on each LAN interface, from its first
// IPv4 socket the NAT-PMP external-address response (when NAT-PMP is on and
// the provider's address is known) and the PCP ANNOUNCE response to
// 224.0.0.1, and from its IPv6 socket (link-local preferred) the PCP
// ANNOUNCE response to ff02::1 on that link. The epoch is read at each send.
func (s *Server) sendAnnouncements(ctx context.Context) {
	now := s.now()
	epoch := s.cfg.Core.Epoch(now)
	var natpmpMsg []byte
	if s.cfg.NATPMP {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.CoreTimeout)
		ext, err := s.cfg.Core.ExternalAddr(cctx)
		cancel()
		if err == nil && ext.Unmap().Is4() {
			natpmpMsg = natpmpExternalAddrResponse(0, epoch, ext.Unmap())
		}
	}
	var pcpMsg []byte
	if s.cfg.PCP {
		pcpMsg = pcpAnnounceResponse(epoch)
	}
	type pick struct{ v4, v6 *lanConn }
	perIf := make(map[string]*pick)
	var order []string
	s.mu.Lock()
	for _, c := range s.conns {
		p := perIf[c.ifname]
		if p == nil {
			p = &pick{}
			perIf[c.ifname] = p
			order = append(order, c.ifname)
		}
		a := c.local.Addr()
		switch {
		case a.Is4():
			if p.v4 == nil || a.Less(p.v4.local.Addr()) {
				p.v4 = c
			}
		case p.v6 == nil,
			a.IsLinkLocalUnicast() && !p.v6.local.Addr().IsLinkLocalUnicast(),
			a.IsLinkLocalUnicast() == p.v6.local.Addr().IsLinkLocalUnicast() && a.Less(p.v6.local.Addr()):
			p.v6 = c
		}
	}
	s.mu.Unlock()
	port := uint16(s.cfg.AnnouncePort)
	for _, name := range order {
		p := perIf[name]
		if c := p.v4; c != nil {
			dst := netip.AddrPortFrom(mcast4, port)
			s.sendTo(c, natpmpMsg, dst)
			s.sendTo(c, pcpMsg, dst)
		}
		if c := p.v6; c != nil {
			s.sendTo(c, pcpMsg, netip.AddrPortFrom(mcast6.WithZone(name), port))
		}
	}
}

func (s *Server) sendTo(c *lanConn, msg []byte, dst netip.AddrPort) {
	if msg == nil {
		return
	}
	if _, err := c.conn.WriteToUDPAddrPort(msg, dst); err != nil {
		s.stats.sendErrors.Add(1)
		s.log.Debug("announce", "from", c.local, "to", dst, "err", err)
		return
	}
	s.stats.announcements.Add(1)
}
