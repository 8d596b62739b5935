// Package mcast opens UDP sockets that receive one multicast group and
// nothing else.
//
// Go's net.ListenMulticastUDP (and ListenPacket on a group address) binds
// the wildcard address: such a socket also takes unicast datagrams to the
// port on every address of the host, WAN included, which is a listener on
// the WAN (RFC 6092 REC-50). ListenGroup binds the group address itself,
// joins it on the given interfaces only, and turns IP_MULTICAST_ALL off, so
// the socket sees that group's datagrams on those interfaces.
package mcast

import (
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// ListenGroup returns a UDP socket bound to group (an IPv4 or IPv6
// multicast address and port) and joined on each of ifaces. Several sockets
// may bind the same group and port (SO_REUSEADDR). An IPv6 link-scope
// group needs exactly one interface, which becomes the bind's zone.
func ListenGroup(group netip.AddrPort, ifaces []*net.Interface) (*net.UDPConn, error) {
	a := group.Addr().Unmap()
	if !a.IsMulticast() {
		return nil, fmt.Errorf("mcast: %v is not a multicast address", a)
	}
	if len(ifaces) == 0 {
		return nil, fmt.Errorf("mcast: %v: no interface to join on", group)
	}
	family := unix.AF_INET
	if a.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("mcast: socket: %w", err)
	}
	fail := func(what string, err error) (*net.UDPConn, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("mcast: %v: %s: %w", group, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if a.Is4() {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0); err != nil {
			return fail("IP_MULTICAST_ALL", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(group.Port()), Addr: a.As4()}); err != nil {
			return fail("bind", err)
		}
		for _, ifi := range ifaces {
			mreq := &unix.IPMreqn{Multiaddr: a.As4(), Ifindex: int32(ifi.Index)}
			if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq); err != nil {
				return fail("join on "+ifi.Name, err)
			}
		}
	} else {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0); err != nil {
			return fail("IPV6_MULTICAST_ALL", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("IPV6_V6ONLY", err)
		}
		sa := &unix.SockaddrInet6{Port: int(group.Port()), Addr: a.As16()}
		if a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
			if len(ifaces) != 1 {
				return fail("bind", fmt.Errorf("a link-scope group needs one interface, not %d", len(ifaces)))
			}
			sa.ZoneId = uint32(ifaces[0].Index)
		}
		if err := unix.Bind(fd, sa); err != nil {
			return fail("bind", err)
		}
		for _, ifi := range ifaces {
			mreq := &unix.IPv6Mreq{Multiaddr: a.As16(), Interface: uint32(ifi.Index)}
			if err := unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq); err != nil {
				return fail("join on "+ifi.Name, err)
			}
		}
	}
	f := os.NewFile(uintptr(fd), "mcast "+group.String())
	defer f.Close() // FilePacketConn dups the descriptor
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("mcast: %v: %w", group, err)
	}
	return pc.(*net.UDPConn), nil
}
