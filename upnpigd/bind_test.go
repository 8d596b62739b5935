package upnpigd

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/internal/sock"
	"golang.org/x/sys/unix"
)

// boundDevice returns the interface a socket is bound to (SO_BINDTODEVICE),
// "" for none.
func boundDevice(t *testing.T, c syscall.Conn) string {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var dev string
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		dev, gerr = unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatalf("getsockopt SO_BINDTODEVICE: %v", gerr)
	}
	return dev
}

// TestListenersBoundToDevice: every HTTP listener and unicast SSDP socket
// is bound to its LAN interface, not only to its address, so that packets
// routed to a LAN address over the WAN find no socket (REQUIREMENTS 30;
// hardening's TestLabHTTPNotServedToWAN checks it with traffic from the
// provider's namespace).
func TestListenersBoundToDevice(t *testing.T) {
	lab.RequireRoot(t) // SO_BINDTODEVICE needs CAP_NET_RAW on older kernels
	s, err := New(Config{Core: newFakeCore(time.Now), Interfaces: []string{"lo"}, IGDv1: true, HTTPPort: EphemeralPort, SSDPPort: EphemeralPort, UUID: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lans, err := lanAddrs([]string{"lo"})
	if err != nil {
		t.Fatal(err)
	}
	servers, err := s.listenHTTP(lans, true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, hs := range servers {
			hs.ln.Close()
		}
	}()
	if len(servers) == 0 {
		t.Fatal("no HTTP listener")
	}
	for _, hs := range servers {
		if dev := boundDevice(t, hs.ln.(*net.TCPListener)); dev != "lo" {
			t.Errorf("HTTP listener %v bound to device %q, want lo", hs.ln.Addr(), dev)
		}
	}
	sd, err := s.listenSSDP(lans)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.close()
	for _, si := range sd.ifs {
		if dev := boundDevice(t, si.conn); dev != "lo" {
			t.Errorf("SSDP socket %v bound to device %q, want lo", si.conn.LocalAddr(), dev)
		}
	}
}

// TestOnDeviceFallback: without the privilege to bind to a device (EPERM),
// the socket is opened again with the address binding only, and the
// warning is logged once however many sockets are opened.
func TestOnDeviceFallback(t *testing.T) {
	var logs bytes.Buffer
	s, err := New(Config{Core: newFakeCore(time.Now), IGDv1: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		var calls []sock.Options // the options of each attempt
		err := s.onDevice("lan0", sock.Options{FreeBind: true}, func(o sock.Options) error {
			calls = append(calls, o)
			if o.Device != "" {
				return fmt.Errorf("sock: SO_BINDTODEVICE: %w", syscall.EPERM)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("onDevice: %v", err)
		}
		want := []sock.Options{{FreeBind: true, Device: "lan0"}, {FreeBind: true}}
		if diff := cmp.Diff(want, calls); diff != "" {
			t.Fatalf("attempts (-want +got):\n%s", diff)
		}
	}
	if n := strings.Count(logs.String(), "cannot bind sockets to the LAN interface"); n != 1 {
		t.Errorf("warning logged %d times, want once:\n%s", n, logs.String())
	}

	// Any other error is returned as it is, without a second attempt.
	attempts := 0
	err = s.onDevice("lan0", sock.Options{}, func(sock.Options) error { attempts++; return syscall.EADDRINUSE })
	if !errors.Is(err, syscall.EADDRINUSE) || attempts != 1 {
		t.Errorf("onDevice = %v after %d attempts, want EADDRINUSE after 1", err, attempts)
	}
}
