package httpd

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
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
// MaxConnsPerHost of them, 503 for the rest, and cannot take the slots of
// MaxConns from other hosts, which are still served; its slots come back
// when it closes them.
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
	open := 0
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		b, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && len(b) == 0 {
			open++ // still held by the server
		} else if !strings.HasPrefix(string(b), "HTTP/1.1 503 ") {
			t.Errorf("refused connection answered %q (%v)", b, err)
		}
	}
	if open != 2 || refused.Load() != 18 {
		t.Errorf("%d connections held, %d refused; want 2 and 18", open, refused.Load())
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

// TestEvictWaiting: a full server takes a new client by closing the
// connection that has waited longest for a request (a host with many
// addresses holding slow requests, an idle keep-alive), once it has waited
// evictAfter; a younger waiting connection, or one being answered, is
// never closed for it.
func TestEvictWaiting(t *testing.T) {
	release := make(chan struct{})
	var refused atomic.Int32
	s := &Server{MaxConns: 4, MaxConnsPerHost: 4, ConnRefused: func() { refused.Add(1) }}
	addr := start(t, s, func(w ResponseWriter, r *Request) {
		if r.Path == "/block" {
			<-release
		}
		echo(w, r)
	})
	get := func(src, path string) string {
		c := dialFrom(t, src, addr)
		c.SetDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(c)
		return string(b)
	}
	// Four slow requests from "several addresses of one host".
	var held []net.Conn
	for i := range 4 {
		c := dialFrom(t, "127.0.0."+strconv.Itoa(2+i), addr)
		io.WriteString(c, "GET / HTTP/1.1\r\n")
		held = append(held, c)
		time.Sleep(20 * time.Millisecond) // the first is the oldest
	}
	// Too young to give way: refused.
	if b := get("127.0.0.9", "/x"); !strings.HasPrefix(b, "HTTP/1.1 503 ") {
		t.Errorf("full, nothing waited %v: %q", evictAfter, b)
	}
	time.Sleep(evictAfter + 50*time.Millisecond)
	if b := get("127.0.0.9", "/x"); !strings.HasPrefix(b, "HTTP/1.1 200 ") {
		t.Errorf("full of slow requests: new client got %q", b)
	}
	// The oldest was closed, the others are still held.
	held[0].SetReadDeadline(time.Now().Add(time.Second))
	if _, err := held[0].Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("oldest slow connection not closed: %v", err)
	}
	for _, c := range held[1:] {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a younger slow connection was closed: %v", err)
		}
	}
	for _, c := range held {
		c.Close()
	}
	// Four requests being answered: never closed, a new client is refused.
	waitConns := func(n int) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for {
			s.mu.Lock()
			got := len(s.conns)
			s.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d connections open, want %d", got, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitConns(0)
	results := make(chan string, 4)
	for i := range 4 {
		go func() { results <- get("127.0.0."+strconv.Itoa(2+i), "/block") }()
	}
	waitConns(4)
	time.Sleep(evictAfter + 50*time.Millisecond)
	before := refused.Load()
	if b := get("127.0.0.9", "/x"); !strings.HasPrefix(b, "HTTP/1.1 503 ") {
		t.Errorf("full of requests being answered: new client got %q", b)
	}
	if refused.Load() != before+1 {
		t.Errorf("refusals %d -> %d", before, refused.Load())
	}
	close(release)
	for range 4 {
		if b := <-results; !strings.HasPrefix(b, "HTTP/1.1 200 ") {
			t.Errorf("a request being answered got %q", b)
		}
	}
}
