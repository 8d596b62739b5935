package httpd

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// dialFrom connects to addr from the local address src (another loopback
// address is another client host).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestMaxConnsPerHost: one host holding connections open (slowloris) gets
// MaxConnsPerHost of them, each new one closing its oldest, and cannot take
// the slots of MaxConns from other hosts, which are still served; its
// slots come back when it closes them.
func TestMaxConnsPerHost(t *testing.T) {
	var refused atomic.Int32
	s := &Server{MaxConns: 8, ConnRefused: func() { refused.Add(1) }}
	addr := start(t, s, echo)
	if got := s.maxPerHost(); got != 2 {
		t.Fatalf("default per host %d, want MaxConns/4 = 2", got)
	}
	var held []net.Conn
	for range 20 {
		c := dialFrom(t, "127.0.0.2", addr)
		io.WriteString(c, "GET / HTTP/1.1\r\n") // a request never finished
		held = append(held, c)
	}
	var open []int
	for i, c := range held {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		b, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && len(b) == 0 {
			open = append(open, i) // still held by the server
		} else if len(b) != 0 {
			t.Errorf("connection %d answered %q (%v)", i, b, err)
		}
	}
	if len(open) != 2 || refused.Load() != 0 {
		t.Errorf("connections %v held, %d refused; want the last 2 and none", open, refused.Load())
	}
	// Another host is served.
	c := dialFrom(t, "127.0.0.3", addr)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	if b, _ := io.ReadAll(c); !strings.HasPrefix(string(b), "HTTP/1.1 200 ") {
		t.Errorf("other host: %q", b)
	}
	// The hog's slots come back once its connections are gone.
	for _, c := range held {
		c.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		s.mu.Lock()
		n := s.perHost[hostKey(held[0].LocalAddr())]
		s.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			if n != 0 {
				t.Fatalf("%d connections still counted for the host", n)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c = dialFrom(t, "127.0.0.2", addr)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	if b, _ := io.ReadAll(c); !strings.HasPrefix(string(b), "HTTP/1.1 200 ") {
		t.Errorf("the host after closing its connections: %q", b)
	}
}

func TestHostKey(t *testing.T) {
	for _, tt := range []struct {
		a    *net.TCPAddr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.100"), Port: 1}, "192.0.2.100"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.100"), Port: 1}, "192.0.2.100"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1::100"), Port: 1}, "2001:db8:1::"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1::abcd:1"), Port: 1}, "2001:db8:1::"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 1, Zone: "eth0"}, "fe80::"},
	} {
		if got := hostKey(tt.a).String(); got != tt.want {
			t.Errorf("hostKey(%v) = %s, want %s", tt.a, got, tt.want)
		}
	}
}
