package sock

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var loop4 = netip.MustParseAddrPort("127.0.0.1:0")

func TestListenUDP(t *testing.T) {
	for _, ap := range []netip.AddrPort{loop4, netip.MustParseAddrPort("[::1]:0")} {
		c, err := ListenUDP(ap, Options{ReuseAddr: true, FreeBind: true, OwnGroupsOnly: true})
		if err != nil {
			if ap.Addr().Is6() {
				t.Logf("no IPv6 loopback: %v", err)
				continue
			}
			t.Fatal(err)
		}
		local := c.LocalAddr().(*net.UDPAddr).AddrPort()
		if local.Addr() != ap.Addr() || local.Port() == 0 {
			t.Errorf("bound to %v, want %v with a port", local, ap.Addr())
		}
		// The socket works with the runtime's poller: a read deadline
		// ends a read, and a datagram sent to it arrives.
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, _, err := c.ReadFromUDPAddrPort(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read with a deadline: %v, want a timeout", err)
		}
		s, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(local))
		if err != nil {
			t.Fatal(err)
		}
		s.Write([]byte("ping"))
		s.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 8)
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "ping" {
			t.Errorf("read %q, %v; want ping", buf[:n], err)
		}
		c.Close()
	}
}

func TestListenTCPDial(t *testing.T) {
	ln, err := ListenTCP(loop4, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = io.WriteString(c, "hello")
			c.Close()
		}
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := DialTCP(ctx, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 0), addr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.RemoteAddr().(*net.TCPAddr).AddrPort(); got != addr {
		t.Errorf("remote %v, want %v", got, addr)
	}
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hello" {
		t.Errorf("read %q, %v", b, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDialTCPRefused(t *testing.T) {
	ln, err := ListenTCP(loop4, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = DialTCP(ctx, netip.AddrPort{}, addr, Options{})
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("dial of a closed port: %v, want ECONNREFUSED", err)
	}
}

// TestDialTCPContext dials a listener whose accept queue is full, where
// the kernel drops the SYNs: the dial ends with its context.
func TestDialTCPContext(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*unix.SockaddrInet4).Port))
	// Fill the queue (never accepted), then one more must hang.
	var held []*net.TCPConn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; ; i++ {
		if i == 8 {
			t.Skip("the kernel accepted every connection: no full accept queue to test with")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		c, err := DialTCP(ctx, netip.AddrPort{}, addr, Options{})
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("dial %d: %v, want the context's deadline", i, err)
			}
			break
		}
		held = append(held, c)
	}
	// Cancelling ends a dial too.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := DialTCP(ctx, netip.AddrPort{}, addr, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled dial: %v, want context.Canceled", err)
	}
}

func TestBadAddresses(t *testing.T) {
	ctx := context.Background()
	if _, err := DialTCP(ctx, netip.AddrPort{}, netip.AddrPort{}, Options{}); err == nil {
		t.Error("dial of no address: no error")
	}
	if _, err := DialTCP(ctx, netip.MustParseAddrPort("[::1]:0"), netip.MustParseAddrPort("127.0.0.1:80"), Options{}); err == nil {
		t.Error("dial across families: no error")
	}
	if _, err := ListenUDP(netip.MustParseAddrPort("[fe80::1%no-such-if0]:0"), Options{}); err == nil {
		t.Error("listen on an unknown zone: no error")
	}
	if _, err := ListenUDP(netip.AddrPort{}, Options{}); err == nil {
		t.Error("listen on no address: no error")
	}
}

func TestDevice(t *testing.T) {
	c, err := ListenUDP(loop4, Options{Device: "lo"})
	if errors.Is(err, unix.EPERM) {
		t.Skip("SO_BINDTODEVICE needs CAP_NET_RAW")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, _ := c.SyscallConn()
	var dev string
	rc.Control(func(fd uintptr) { dev, err = unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE) })
	if err != nil || dev != "lo" {
		t.Errorf("bound to device %q, %v; want lo", dev, err)
	}
	if _, err := ListenUDP(loop4, Options{Device: "no-such-if0"}); err == nil {
		t.Error("bound to an unknown device: no error")
	}
}
