package pcpclient

import (
	"errors"
	"fmt"
	"github.com/pcpgw/pcpgw/internal/mcast"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// packetConn is the client's socket toward one server address. The real one
// is a UDP socket; tests may put an in-memory one in Config.dial.
type packetConn interface {
	ReadFrom(b []byte) (int, netip.AddrPort, error)
	WriteTo(b []byte, to netip.AddrPort) (int, error)
	Close() error
}

// dialFunc opens the socket toward server and returns it with the source
// address the client writes in its requests' headers.
type dialFunc func(server netip.AddrPort) (packetConn, netip.Addr, error)

type udpConn struct{ c *net.UDPConn }

func (u udpConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	n, from, err := u.c.ReadFromUDPAddrPort(b)
	return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), err
}

func (u udpConn) WriteTo(b []byte, to netip.AddrPort) (int, error) {
	return u.c.WriteToUDPAddrPort(b, to)
}

func (u udpConn) Close() error { return u.c.Close() }

func (u udpConn) localPort() uint16 {
	if a, ok := u.c.LocalAddr().(*net.UDPAddr); ok {
		return uint16(a.Port)
	}
	return 0
}

// dialUDP finds the source address toward server the way RFC 6887 §16.4
// suggests (connect() then getsockname() on a UDP socket), then opens a
// socket bound to that address on a random port (RFC 6056). The socket is
// not connected, so that the client itself sees, drops and counts packets
// from anyone but the server (§8.3).
func dialUDP(server netip.AddrPort) (packetConn, netip.Addr, error) {
	probe, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("pcpclient: no route to %v: %w", server, err)
	}
	local := probe.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	probe.Close()
	network := "udp4"
	if local.Unmap().Is6() {
		network = "udp6"
	}
	bind := &net.UDPAddr{IP: local.AsSlice(), Zone: local.Zone()}
	c, err := net.ListenUDP(network, bind)
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("pcpclient: socket toward %v: %w", server, err)
	}
	return udpConn{c}, local.Unmap(), nil
}

// listenAnnounce opens the socket for unsolicited ANNOUNCE and Mapping
// Update messages (RFC 6887 §14): a multicast group address is joined on
// ifi (nil: the system's choice); a unicast address (tests) is just bound.
func listenAnnounce(addr string, ifi *net.Interface) (packetConn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("pcpclient: announce address %q: %w", addr, err)
	}
	network := "udp4"
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		network = "udp6"
	}
	ua := net.UDPAddrFromAddrPort(ap)
	var c *net.UDPConn
	switch {
	case ap.Addr().IsMulticast() && ifi != nil:
		// Bound to the group, joined on the WAN only: not a listener on
		// the WAN's unicast addresses (RFC 6092 REC-50).
		c, err = mcast.ListenGroup(ap, []*net.Interface{ifi})
	case ap.Addr().IsMulticast():
		c, err = net.ListenMulticastUDP(network, nil, ua)
	default:
		c, err = net.ListenUDP(network, ua)
	}
	if err != nil {
		return nil, fmt.Errorf("pcpclient: listening for announcements on %v: %w", addr, err)
	}
	if ifi == nil || !ap.Addr().IsMulticast() {
		return udpConn{c}, nil
	}
	// Linux hands a socket bound to a group every datagram to that group
	// on any interface (IP_MULTICAST_ALL): keep only those that came in on
	// the WAN interface, so that a LAN host cannot pose as the server.
	ic := &ifaceConn{udpConn: udpConn{c}, index: ifi.Index}
	if network == "udp4" {
		ic.p4 = ipv4.NewPacketConn(c)
		err = ic.p4.SetControlMessage(ipv4.FlagInterface, true)
	} else {
		ic.p6 = ipv6.NewPacketConn(c)
		err = ic.p6.SetControlMessage(ipv6.FlagInterface, true)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("pcpclient: announcements on %v: %w", addr, err)
	}
	return ic, nil
}

// ifaceConn is an announcement socket that reports datagrams that did not
// arrive on interface index as coming from the invalid address (the
// client drops and counts them).
type ifaceConn struct {
	udpConn
	index int
	p4    *ipv4.PacketConn
	p6    *ipv6.PacketConn
}

func (c *ifaceConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	var (
		n    int
		from net.Addr
		idx  int
		err  error
	)
	if c.p4 != nil {
		var cm *ipv4.ControlMessage
		n, cm, from, err = c.p4.ReadFrom(b)
		if cm != nil {
			idx = cm.IfIndex
		}
	} else {
		var cm *ipv6.ControlMessage
		n, cm, from, err = c.p6.ReadFrom(b)
		if cm != nil {
			idx = cm.IfIndex
		}
	}
	if err != nil {
		return n, netip.AddrPort{}, err
	}
	ua, ok := from.(*net.UDPAddr)
	if !ok || idx != c.index {
		return n, netip.AddrPort{}, nil
	}
	ap := ua.AddrPort()
	return n, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// isClosed reports the error a read gets from a closed socket.
func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed)
}
