// Package sock opens TCP and UDP sockets from typed addresses, with the
// socket options pcpgw sets before bind (SO_BINDTODEVICE, SO_REUSEADDR,
// IP_FREEBIND, IP_MULTICAST_ALL).
//
// The standard library sets such options through net.ListenConfig and
// net.Dialer, which take the address as a string and so link Go's whole DNS
// resolver into the binary (about 260 KB on mipsle) even when every address
// is a literal. This package makes the socket with the system calls and
// hands it to the net package with net.FileConn, net.FilePacketConn and
// net.FileListener, which resolve nothing.
package sock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Options are the socket options set before bind (and connect).
type Options struct {
	// Device binds the socket to a network interface (SO_BINDTODEVICE,
	// which needs CAP_NET_RAW: the error then wraps syscall.EPERM).
	Device string
	// ReuseAddr sets SO_REUSEADDR. TCP listeners always have it, as Go's
	// do.
	ReuseAddr bool
	// FreeBind lets the socket bind an address that is not usable yet
	// (an IPv6 address in duplicate address detection at boot).
	FreeBind bool
	// OwnGroupsOnly turns IP_MULTICAST_ALL (IPV6_MULTICAST_ALL) off: the
	// socket receives only the multicast groups it joined itself, not
	// every group some socket of the host joined. Best effort for IPv6
	// (Linux 4.20 and later).
	OwnGroupsOnly bool
}

// ListenUDP returns a UDP socket bound to ap. An IPv6 address with a zone
// (an interface name or index) binds on that interface; IPv6 sockets are
// IPv6 only.
func ListenUDP(ap netip.AddrPort, o Options) (*net.UDPConn, error) {
	fd, err := open(ap.Addr(), unix.SOCK_DGRAM, o)
	if err != nil {
		return nil, err
	}
	if err := bind(fd, ap); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sock: listen udp %v: %w", ap, err)
	}
	f := os.NewFile(uintptr(fd), "udp "+ap.String())
	defer f.Close() // FilePacketConn dups the descriptor
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("sock: listen udp %v: %w", ap, err)
	}
	return pc.(*net.UDPConn), nil
}

// ListenTCP returns a TCP listener bound to ap (see ListenUDP for zones).
func ListenTCP(ap netip.AddrPort, o Options) (*net.TCPListener, error) {
	o.ReuseAddr = true
	fd, err := open(ap.Addr(), unix.SOCK_STREAM, o)
	if err != nil {
		return nil, err
	}
	if err := bind(fd, ap); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sock: listen tcp %v: %w", ap, err)
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil { // the kernel caps it at net.core.somaxconn
		unix.Close(fd)
		return nil, fmt.Errorf("sock: listen tcp %v: %w", ap, err)
	}
	f := os.NewFile(uintptr(fd), "tcp "+ap.String())
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("sock: listen tcp %v: %w", ap, err)
	}
	return ln.(*net.TCPListener), nil
}

// DialTCP connects to raddr from laddr (the zero AddrPort: any), within
// ctx (30 s without a deadline). The connection gets no deadline of its
// own.
func DialTCP(ctx context.Context, laddr, raddr netip.AddrPort, o Options) (*net.TCPConn, error) {
	if !raddr.IsValid() || raddr.Port() == 0 {
		return nil, fmt.Errorf("sock: dial tcp: bad address %v", raddr)
	}
	if laddr.IsValid() && laddr.Addr().Unmap().Is4() != raddr.Addr().Unmap().Is4() {
		return nil, fmt.Errorf("sock: dial tcp %v from %v: address families differ", raddr, laddr)
	}
	fail := func(err error) (*net.TCPConn, error) {
		return nil, fmt.Errorf("sock: dial tcp %v: %w", raddr, err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	fd, err := open(raddr.Addr(), unix.SOCK_STREAM, o)
	if err != nil {
		return nil, err
	}
	if laddr.IsValid() {
		if err := bind(fd, laddr); err != nil {
			unix.Close(fd)
			return fail(err)
		}
	}
	sa, err := sockaddr(raddr)
	if err != nil {
		unix.Close(fd)
		return fail(err)
	}
	// A non-blocking descriptor: os.NewFile registers it with the
	// runtime's poller, so the wait below honours the deadline. It is
	// registered before the connect starts: readiness that came before
	// the wait would be lost.
	f := os.NewFile(uintptr(fd), "tcp "+raddr.String())
	defer f.Close() // FileConn dups the descriptor
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	f.SetWriteDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
	err = connect(f, sa)
	stop()
	if err != nil {
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case ok && errors.Is(err, os.ErrDeadlineExceeded):
			// The poller's timer can beat the context's own.
			err = context.DeadlineExceeded
		}
		return fail(err)
	}
	c, err := net.FileConn(f)
	if err != nil {
		return fail(err)
	}
	return c.(*net.TCPConn), nil
}

// connect connects f's socket to sa and waits until that has ended.
func connect(f *os.File, sa unix.Sockaddr) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	started := false
	err = rc.Write(func(fd uintptr) bool {
		if !started {
			started = true
			switch err := unix.Connect(int(fd), sa); err {
			case nil:
				return true
			case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
				return false // wait until writable
			default:
				cerr = err
				return true
			}
		}
		n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			cerr = err
			return true
		}
		switch e := unix.Errno(n); e {
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		case 0:
			// Writable and no error can still be a spurious wakeup:
			// connected only once the socket has a peer.
			_, err := unix.Getpeername(int(fd))
			return err == nil
		default:
			cerr = e
			return true
		}
	})
	if err != nil {
		return err
	}
	return cerr
}

// open makes a non-blocking socket for addresses of a's family, with o set.
func open(a netip.Addr, typ int, o Options) (int, error) {
	if !a.IsValid() {
		return -1, errors.New("sock: no address")
	}
	v6 := a.Is6() && !a.Is4In6()
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("sock: socket: %w", err)
	}
	if err := o.apply(fd, v6); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (o Options) apply(fd int, v6 bool) error {
	set := func(level, opt int, what string) error {
		if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
			return fmt.Errorf("sock: %s: %w", what, err)
		}
		return nil
	}
	if v6 {
		if err := set(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, "IPV6_V6ONLY"); err != nil {
			return err
		}
	}
	if o.ReuseAddr {
		if err := set(unix.SOL_SOCKET, unix.SO_REUSEADDR, "SO_REUSEADDR"); err != nil {
			return err
		}
	}
	if o.FreeBind {
		var err error
		if v6 {
			err = set(unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, "IPV6_FREEBIND")
		} else {
			err = set(unix.IPPROTO_IP, unix.IP_FREEBIND, "IP_FREEBIND")
		}
		if err != nil {
			return err
		}
	}
	if o.OwnGroupsOnly {
		if v6 {
			unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0) // Linux >= 4.20
		} else if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0); err != nil {
			return fmt.Errorf("sock: IP_MULTICAST_ALL: %w", err)
		}
	}
	if o.Device != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, o.Device); err != nil {
			return fmt.Errorf("sock: SO_BINDTODEVICE %s: %w", o.Device, err)
		}
	}
	return nil
}

func bind(fd int, ap netip.AddrPort) error {
	sa, err := sockaddr(ap)
	if err != nil {
		return err
	}
	return unix.Bind(fd, sa)
}

// sockaddr converts ap; an IPv6 zone becomes its interface index.
func sockaddr(ap netip.AddrPort) (unix.Sockaddr, error) {
	a := ap.Addr()
	if a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}, nil
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		if n, err := strconv.ParseUint(z, 10, 32); err == nil {
			sa.ZoneId = uint32(n)
		} else {
			ifi, err := net.InterfaceByName(z)
			if err != nil {
				return nil, fmt.Errorf("zone %q: %w", z, err)
			}
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return sa, nil
}
