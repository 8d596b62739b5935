package lab

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestDialContext: a connection opened with NS.DialContext from a
// goroutine of the test's own namespace leaves from cpe: the listener in
// isp sees cpe's WAN address as its peer.
func TestDialContext(t *testing.T) {
	t.Parallel()
	l := New(t, Options{NoMiniupnpd: true})
	var ln net.Listener
	l.ISP.Do(t, func() {
		var err error
		if ln, err = net.Listen("tcp4", CGN4+":0"); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	peer := make(chan net.Addr, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			peer <- nil
			return
		}
		peer <- c.RemoteAddr()
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { // not the test goroutine, never in a namespace
		c, err := l.CPE.DialContext(ctx, "tcp4", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a := <-peer; a == nil || netip.MustParseAddrPort(a.String()).Addr() != netip.MustParseAddr(CPEWAN4) {
		t.Errorf("peer %v, want %s", a, CPEWAN4)
	}
	if _, err := (&NS{Name: l.Prefix + "nosuch"}).DialContext(ctx, "tcp4", ln.Addr().String()); err == nil {
		t.Error("dial from a missing namespace succeeded")
	}
}
