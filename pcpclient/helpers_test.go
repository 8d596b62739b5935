package pcpclient

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient/pcptest"
)

// fakeClock is an injected clock for error lifetimes and the epoch check.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

// newFake starts a pcptest server closed at the end of the test.
func newFake(t *testing.T) *pcptest.Server {
	t.Helper()
	s, err := pcptest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newClient makes a client toward srv with fast retransmissions.
func newClient(t *testing.T, srv *pcptest.Server, mut func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		Servers: []netip.AddrPort{srv.Addr()},
		IRT:     30 * time.Millisecond,
		MRT:     200 * time.Millisecond,
		Linger:  -1,
	}
	if mut != nil {
		mut(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var lanHost = netip.MustParseAddr("192.0.2.100")

// waitEvent waits (bounded) for an event of kind k, skipping others.
func waitEvent(t *testing.T, c *Client, k EventKind, d time.Duration) Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("events closed waiting for %v", k)
			}
			if ev.Kind == k {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no event %v within %v", k, d)
		}
	}
}

// noEvent checks that no event of kind k arrives within d.
func noEvent(t *testing.T, c *Client, k EventKind, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev := <-c.Events():
			if ev.Kind == k {
				t.Fatalf("unexpected event %+v", ev)
			}
		case <-timer.C:
			return
		}
	}
}

// eventually polls cond every 10 ms for at most d.
func eventually(t *testing.T, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// goroutines counts goroutines, waiting (bounded) for them to fall to
// at most want.
func goroutinesSettle(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 200 && n > want; i++ {
		time.Sleep(5 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// memConn is an in-memory socket for testing/synctest (a goroutine blocked
// on a channel is durably blocked; one in a network read is not).
type memConn struct {
	server netip.AddrPort
	in     chan []byte
	closed chan struct{}
	once   sync.Once

	mu   sync.Mutex
	sent []memPkt
}

type memPkt struct {
	at time.Time
	b  []byte
}

func newMemConn(server netip.AddrPort) *memConn {
	return &memConn{server: server, in: make(chan []byte, 16), closed: make(chan struct{})}
}

func (m *memConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	select {
	case p := <-m.in:
		return copy(b, p), m.server, nil
	case <-m.closed:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (m *memConn) WriteTo(b []byte, to netip.AddrPort) (int, error) {
	select {
	case <-m.closed:
		return 0, net.ErrClosed
	default:
	}
	if to != m.server {
		return 0, errors.New("memConn: wrong destination")
	}
	m.mu.Lock()
	m.sent = append(m.sent, memPkt{time.Now(), append([]byte(nil), b...)})
	m.mu.Unlock()
	return len(b), nil
}

func (m *memConn) Close() error {
	m.once.Do(func() { close(m.closed) })
	return nil
}

func (m *memConn) packets() []memPkt {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]memPkt(nil), m.sent...)
}

// parseReq parses a request the client sent.
func parseReq(t *testing.T, b []byte) pcp.Request {
	t.Helper()
	r, err := pcp.ParseRequest(b)
	if err != nil {
		t.Fatalf("client sent an unparsable request: %v", err)
	}
	return r
}
