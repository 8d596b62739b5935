package igdclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/pcpgw/pcpgw/internal/mcast"
	"github.com/pcpgw/pcpgw/internal/sock"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// withDevice runs open with the options for a socket bound to Interface
// (SO_BINDTODEVICE), and again without (with a warning, once) when that is
// not permitted (no CAP_NET_RAW).
func (c *Client) withDevice(o sock.Options, open func(sock.Options) error) error {
	o.Device = c.cfg.Interface
	err := open(o)
	if !errors.Is(err, syscall.EPERM) || c.cfg.Interface == "" {
		return err
	}
	c.mu.Lock()
	warn := !c.warnedBind
	c.warnedBind = true
	c.mu.Unlock()
	if warn {
		c.log.Warn("cannot bind sockets to the WAN interface (no CAP_NET_RAW): bound to its address only", "interface", c.cfg.Interface, "err", err)
	}
	o.Device = ""
	return open(o)
}

// dial opens a TCP connection (address already checked by the caller: an
// IP address and port).
func (c *Client) dial(ctx context.Context, network, address string) (net.Conn, error) {
	if c.cfg.Dial != nil {
		return c.cfg.Dial(ctx, network, address)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil || network != "tcp" {
		return nil, fmt.Errorf("igdclient: cannot dial %s %q", network, address)
	}
	var conn net.Conn
	err = c.withDevice(sock.Options{}, func(o sock.Options) (err error) {
		conn, err = sock.DialTCP(ctx, netip.AddrPort{}, ap, o)
		return err
	})
	return conn, err
}

// openSearch opens the socket M-SEARCHes leave from and answers come back
// to: bound to Local (or any address) and an ephemeral port on Interface,
// multicast out of Interface only, TTL 2 (UDA 1.1 §1.1.2), loopback off.
func (c *Client) openSearch() (*net.UDPConn, error) {
	laddr := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if c.local.IsValid() {
		laddr = netip.AddrPortFrom(c.local, 0)
	}
	var conn *net.UDPConn
	err := c.withDevice(sock.Options{}, func(o sock.Options) (err error) {
		conn, err = sock.ListenUDP(laddr, o)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("igdclient: SSDP socket: %w", err)
	}
	p := ipv4.NewPacketConn(conn)
	if c.cfg.Interface != "" {
		ifi, err := net.InterfaceByName(c.cfg.Interface)
		if err == nil {
			err = p.SetMulticastInterface(ifi)
		}
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("igdclient: SSDP multicast on %s: %w", c.cfg.Interface, err)
		}
	}
	p.SetMulticastTTL(2)
	p.SetMulticastLoopback(false)
	return conn, nil
}

// NotifyListener receives SSDP NOTIFYs on the WAN link.
type NotifyListener struct {
	c    *Client
	conn *net.UDPConn
}

// ListenNotify opens the NOTIFY socket: "" binds 239.255.255.250:1900
// itself, joined on Interface only (internal/mcast.ListenGroup: no other
// interface's datagrams, no unicast to the host's other addresses); a
// unicast address:port (tests) is bound as it is.
func (c *Client) ListenNotify(addr string) (*NotifyListener, error) {
	var conn *net.UDPConn
	if addr == "" {
		if c.cfg.Interface == "" {
			return nil, errors.New("igdclient: NOTIFY: no WAN interface to join the SSDP group on")
		}
		ifi, err := net.InterfaceByName(c.cfg.Interface)
		if err != nil {
			return nil, fmt.Errorf("igdclient: NOTIFY: %w", err)
		}
		if conn, err = mcast.ListenGroup(SSDPGroup, []*net.Interface{ifi}); err != nil {
			return nil, fmt.Errorf("igdclient: NOTIFY: %w", err)
		}
		if err := c.withDevice(sock.Options{}, func(o sock.Options) error {
			if o.Device == "" {
				return nil
			}
			rc, err := conn.SyscallConn()
			if err != nil {
				return err
			}
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, o.Device)
			}); err != nil {
				return err
			}
			return serr
		}); err != nil {
			conn.Close()
			return nil, fmt.Errorf("igdclient: NOTIFY: %w", err)
		}
	} else {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return nil, fmt.Errorf("igdclient: NOTIFY address %q: %w", addr, err)
		}
		if conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap)); err != nil {
			return nil, fmt.Errorf("igdclient: NOTIFY: %w", err)
		}
	}
	return &NotifyListener{c: c, conn: conn}, nil
}

// LocalAddr is the address the listener is bound to.
func (l *NotifyListener) LocalAddr() netip.AddrPort {
	ap, _ := netip.ParseAddrPort(l.conn.LocalAddr().String())
	return ap
}

// Read returns the next NOTIFY from a host of the WAN subnets, and its
// source. Others (from outside the subnets, malformed, M-SEARCHes of
// other control points) are skipped and counted. After Close it returns
// net.ErrClosed.
func (l *NotifyListener) Read() (Notify, netip.AddrPort, error) {
	buf := make([]byte, MaxSSDPSize+1)
	for {
		n, src, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return Notify{}, netip.AddrPort{}, net.ErrClosed
			}
			continue
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		b := buf[:n]
		if len(b) >= 9 && string(b[:9]) == "M-SEARCH " {
			continue // another control point searching
		}
		if !l.c.inSubnets(src.Addr()) {
			l.c.foreign.Add(1)
			l.c.refuse("NOTIFY from outside the WAN subnets", "from", src)
			continue
		}
		nt, err := ParseNotify(b)
		if err != nil {
			l.c.malformedN.Add(1)
			l.c.refuse("malformed NOTIFY", "from", src, "err", err)
			continue
		}
		l.c.notifies.Add(1)
		return nt, src, nil
	}
}

// Close closes the socket; Read returns.
func (l *NotifyListener) Close() error { return l.conn.Close() }
