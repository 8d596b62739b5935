package httpd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// served serves h with s's limits and returns the address and a channel
// that receives the client host of every connection the server starts
// serving (after it was counted), in order. If gated is valid, the
// connections of that host wait before their first read until release
// is called (a goroutine the scheduler has not run yet); release is also
// called at cleanup.
func served(t *testing.T, s *Server, h HandlerFunc, gated netip.Addr) (addr string, accepted <-chan netip.Addr, release func()) {
	t.Helper()
	ch := make(chan netip.Addr, 1000)
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	s.testHookServe = func(c net.Conn) {
		host := hostKey(c.RemoteAddr())
		ch <- host
		if host == gated {
			<-gate
		}
	}
	s.init() // for the look at s.listeners below
	addr = start(t, s, h)
	t.Cleanup(release) // before the server's Close (cleanups run last first)
	// Serve has set up the listener (TCP_DEFER_ACCEPT) before it counts it.
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.listeners) == 1
	}, "Serve did not take the listener")
	return addr, ch, release
}

// waitAccepted waits until the server has started serving a connection of
// host (and fails the test after 2 s).
func waitAccepted(t *testing.T, accepted <-chan netip.Addr, host string) {
	t.Helper()
	if !acceptedWithin(accepted, host, 2*time.Second) {
		t.Fatalf("no connection of %s served within 2 s", host)
	}
}

// acceptedWithin reports whether the server starts serving a connection
// of host within wait.
func acceptedWithin(accepted <-chan netip.Addr, host string, wait time.Duration) bool {
	want := netip.MustParseAddr(host)
	timeout := time.After(wait)
	for {
		select {
		case h := <-accepted:
			if h == want {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

// connState reports what the server did with c within wait: "open" (no
// answer, not closed), "closed" (EOF or reset without an answer), or the
// status line of its answer.
func peerState(c net.Conn, wait time.Duration) string {
	c.SetReadDeadline(time.Now().Add(wait))
	line, err := bufio.NewReader(c).ReadString('\n')
	switch {
	case line != "":
		return strings.TrimSpace(line)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "open"
	default:
		return "closed"
	}
}

// getFrom sends a whole GET from src on a new connection and returns the
// status line of the answer ("closed" if there is none).
func getFrom(t *testing.T, src, addr, path string) string {
	t.Helper()
	c := dialFrom(t, src, addr)
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	return peerState(c, 2*time.Second)
}

// TestHeaderTimeout: the request line and header must arrive whole within
// HeaderTimeout of the moment the server waits for them (a byte now and
// then is not a request), whatever ReadTimeout says; the body has the
// rest of ReadTimeout, and a kept-alive connection may idle for
// IdleTimeout before its next request, whose head then has HeaderTimeout
// again.
func TestHeaderTimeout(t *testing.T) {
	const headerTO = 300 * time.Millisecond
	s := &Server{HeaderTimeout: headerTO, ReadTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
	addr := start(t, s, echo)
	// trickle writes b one byte every 50 ms until done or the write
	// fails (at most 100 bytes).
	trickle := func(c net.Conn, b string, done <-chan struct{}) {
		for i := 0; i < len(b) && i < 100; i++ {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := c.Write([]byte{b[i]}); err != nil {
				return
			}
		}
	}
	// closedWithin reads c until the server closes it; it reports the time
	// that took from start, or fails after limit.
	closedWithin := func(t *testing.T, c net.Conn, start time.Time, limit time.Duration) time.Duration {
		t.Helper()
		c.SetReadDeadline(start.Add(limit))
		if _, err := io.ReadAll(c); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection still open after %v (header timeout %v, read timeout %v)", limit, headerTO, s.ReadTimeout)
		}
		return time.Since(start)
	}
	readAnswer := func(t *testing.T, br *bufio.Reader) string {
		t.Helper()
		var head strings.Builder
		n := 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the answer: %v (so far %q)", err, head.String())
			}
			head.WriteString(line)
			if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
				fmt.Sscan(v, &n)
			}
			if line == "\r\n" {
				break
			}
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatal(err)
		}
		return head.String() + string(body)
	}

	t.Run("trickled head", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", addr)
		start := time.Now()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n")
		done := make(chan struct{})
		defer close(done)
		go trickle(c, strings.Repeat("X-Slow: 1\r\n", 10), done)
		if d := closedWithin(t, c, start, 1500*time.Millisecond); d < headerTO-50*time.Millisecond {
			t.Errorf("closed after %v, before the header timeout %v", d, headerTO)
		}
	})
	t.Run("slow body within the read timeout", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", addr)
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 16\r\nConnection: close\r\n\r\n")
		go trickle(c, "0123456789abcdef", nil) // 800 ms: past the header timeout
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if got := readAnswer(t, bufio.NewReader(c)); !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.Contains(got, `"0123456789abcdef"`) {
			t.Errorf("answer:\n%s", got)
		}
	})
	t.Run("keep-alive idles longer than the header timeout", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", addr)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		br := bufio.NewReader(c)
		io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
		readAnswer(t, br)
		time.Sleep(2 * headerTO) // idle, the next request not started: IdleTimeout holds
		io.WriteString(c, "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
		if got := readAnswer(t, br); !strings.Contains(got, "GET /2") {
			t.Errorf("second request on the kept connection:\n%s", got)
		}
	})
	t.Run("keep-alive then a trickled head", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", addr)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
		readAnswer(t, bufio.NewReader(c))
		start := time.Now()
		io.WriteString(c, "G")
		done := make(chan struct{})
		defer close(done)
		go trickle(c, "ET / HTTP/1.1\r\nHost: h\r\n"+strings.Repeat("X-Slow: 1\r\n", 5), done)
		if d := closedWithin(t, c, start, 1500*time.Millisecond); d < headerTO-50*time.Millisecond {
			t.Errorf("closed after %v, before the header timeout %v", d, headerTO)
		}
	})
}

// TestHostAtCapGivesWay: a host at MaxConnsPerHost gives up its own
// connection that has waited longest for a request to its new one (a
// program of that host leaking slow connections must not lock the host's
// other programs out); other hosts' connections are left alone, and a
// host whose connections are all being answered gets 503.
func TestHostAtCapGivesWay(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	s := &Server{MaxConns: 16, MaxConnsPerHost: 2}
	addr, accepted, _ := served(t, s, func(w ResponseWriter, r *Request) {
		if r.Path == "/block" {
			<-release
		}
		echo(w, r)
	}, netip.Addr{})
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // before the server's Close
	slow := func(src string) net.Conn {
		c := dialFrom(t, src, addr)
		io.WriteString(c, "GET / HTTP/1.1\r\n")
		waitAccepted(t, accepted, src)
		return c
	}
	other := slow("127.0.0.3") // the oldest of all, another host's
	a := slow("127.0.0.2")
	b := slow("127.0.0.2")
	if got := getFrom(t, "127.0.0.2", addr, "/new"); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Fatalf("the host at its cap: its new connection got %q, want 200", got)
	}
	for _, tt := range []struct {
		name string
		c    net.Conn
		want string
	}{{"its oldest", a, "closed"}, {"its younger one", b, "open"}, {"another host's", other, "open"}} {
		if got := peerState(tt.c, 200*time.Millisecond); got != tt.want {
			t.Errorf("%s slow connection: %s, want %s", tt.name, got, tt.want)
		}
	}

	// Both of a host's connections being answered: nothing to give up.
	results := make(chan string, 2)
	for range 2 {
		go func() {
			c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}).Dial("tcp", addr)
			if err != nil {
				results <- err.Error()
				return
			}
			defer c.Close()
			io.WriteString(c, "GET /block HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
			results <- peerState(c, 5*time.Second)
		}()
		waitAccepted(t, accepted, "127.0.0.4")
	}
	// Their requests are read (and blocked in the handler) once the two
	// connections are no longer waiting for one.
	waitFor(t, func() bool { return s.waitingOf(netip.MustParseAddr("127.0.0.4")) == 0 }, "the blocked requests are not being answered")
	if got := getFrom(t, "127.0.0.4", addr, "/x"); !strings.HasPrefix(got, "HTTP/1.1 503 ") {
		t.Errorf("host at its cap with both connections being answered: %q, want 503", got)
	}
	once.Do(func() { close(release) })
	for range 2 {
		if got := <-results; !strings.HasPrefix(got, "HTTP/1.1 200 ") {
			t.Errorf("a request being answered got %q", got)
		}
	}
	if got := peerState(b, 50*time.Millisecond); got != "open" {
		t.Errorf("host .2's slow connection after host .4's refusal: %s", got)
	}
}

// TestFullEvictsOldestIdle: a full server takes a new client by closing
// the connection that has waited longest for its request, however short
// that wait (the attackers' fresh connections must not keep every slot
// younger than some minimum age), where waiting means: no whole request
// read yet (nothing, part of a head, or a head whose body is still
// coming), or a kept-alive connection since its last answer. A connection
// being answered is never closed; a server full of them answers 503.
func TestFullEvictsOldestIdle(t *testing.T) {
	release, hold := make(chan struct{}), make(chan struct{})
	var once, holdOnce sync.Once
	s := &Server{MaxConns: 4, MaxConnsPerHost: 4}
	addr, accepted, _ := served(t, s, func(w ResponseWriter, r *Request) {
		switch r.Path {
		case "/block":
			<-release
		case "/hold":
			<-hold
		}
		echo(w, r)
	}, netip.Addr{})
	t.Cleanup(func() { // before the server's Close
		once.Do(func() { close(release) })
		holdOnce.Do(func() { close(hold) })
	})
	conn := func(src, raw string) net.Conn {
		c := dialFrom(t, src, addr)
		io.WriteString(c, raw)
		waitAccepted(t, accepted, src)
		return c
	}
	// A keep-alive connection, first in, answered after the next two came:
	// it waits since its answer, not since it connected.
	keep := conn("127.0.0.2", "GET /hold HTTP/1.1\r\nHost: h\r\n\r\n")
	body := conn("127.0.0.3", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc") // its body still coming
	head := conn("127.0.0.4", "GET / HTTP/1.1\r\n")                                          // part of a head
	holdOnce.Do(func() { close(hold) })
	if got := peerState(keep, 2*time.Second); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Fatalf("keep-alive request: %q", got)
	}
	waitFor(t, func() bool { return s.waitingOf(netip.MustParseAddr("127.0.0.2")) == 1 }, "the kept-alive connection does not wait for its next request")
	nothing := conn("127.0.0.5", "X") // one byte of a request, now full
	// newClient sends a whole request on a new connection kept alive (the
	// server stays full) and returns the answer's status line.
	newClient := func(src string) string {
		c := dialFrom(t, src, addr)
		io.WriteString(c, "GET /new HTTP/1.1\r\nHost: h\r\n\r\n")
		return peerState(c, 2*time.Second)
	}
	for i, want := range []struct {
		gone net.Conn
		name string
	}{{body, "the body still coming"}, {head, "the part of a head"}, {keep, "the kept-alive one"}, {nothing, "the byte"}} {
		if got := newClient(fmt.Sprintf("127.0.0.%d", 10+i)); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
			t.Fatalf("new client %d on a full server: %q, want 200 (%s closed for it)", i+1, got, want.name)
		}
		if got := peerState(want.gone, time.Second); got != "closed" {
			t.Errorf("after new client %d: %s is %s, want closed", i+1, want.name, got)
		}
	}

	// Four requests being answered (they take the places of the four new
	// clients, idle since their answers): never closed, a new client is
	// refused.
	// (A connection becomes idle only once its answer is written: wait for
	// the four new clients' goroutines to get there.)
	waitFor(t, func() bool { return s.waitingOf(netip.Addr{}) == 4 }, "the four new clients are not idle after their answers")
	results := make(chan string, 4)
	for i := range 4 {
		src := fmt.Sprintf("127.0.0.%d", 20+i)
		go func() { results <- getFromNoT(src, addr, "/block") }()
		waitAccepted(t, accepted, src)
	}
	waitFor(t, func() bool { return s.waitingOf(netip.Addr{}) == 0 }, "the blocked requests are not being answered")
	if got := getFrom(t, "127.0.0.30", addr, "/x"); !strings.HasPrefix(got, "HTTP/1.1 503 ") {
		t.Errorf("full of requests being answered: new client got %q, want 503", got)
	}
	once.Do(func() { close(release) })
	for range 4 {
		if got := <-results; !strings.HasPrefix(got, "HTTP/1.1 200 ") {
			t.Errorf("a request being answered got %q", got)
		}
	}
}

// TestEvictSparesRequestNotYetRead: a connection whose whole request came
// with it is not waiting for one, even before its goroutine has run to
// read it: the new connections that follow on a full server (a burst of
// an attacker's reconnections) close others, never it.
func TestEvictSparesRequestNotYetRead(t *testing.T) {
	s := &Server{MaxConns: 3, MaxConnsPerHost: 3}
	addr, accepted, release := served(t, s, echo, netip.MustParseAddr("127.0.0.9"))
	v := dialFrom(t, "127.0.0.9", addr)
	io.WriteString(v, "GET /v HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	waitAccepted(t, accepted, "127.0.0.9")
	// Old enough for any minimum age an eviction rule might want.
	time.Sleep(300 * time.Millisecond)
	var slow []net.Conn
	for i := range 5 {
		src := fmt.Sprintf("127.0.0.%d", 2+i)
		c := dialFrom(t, src, addr)
		io.WriteString(c, "GET / HTTP/1.1\r\n")
		if !acceptedWithin(accepted, src, time.Second) {
			t.Logf("slow connection %d not served: %s", i+1, peerState(c, 10*time.Millisecond))
		}
		slow = append(slow, c)
	}
	release() // the goroutine of v's connection runs now
	if got := peerState(v, 2*time.Second); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Errorf("the request that came with its connection: %q, want 200", got)
	}
	for i, c := range slow {
		want := "closed"
		if i >= 3 {
			want = "open"
		}
		if got := peerState(c, 200*time.Millisecond); got != want {
			t.Errorf("slow connection %d: %s, want %s", i+1, got, want)
		}
	}
}

// TestClosedConnectionsBounded: connections closed for new ones end as
// soon as their goroutines run; until then they are held, at most
// MaxConns of them, and Serve waits for them to end before it takes more
// connections (a flood of new connections cannot pile up goroutines and
// buffers faster than the scheduler runs them). Then it goes on.
func TestClosedConnectionsBounded(t *testing.T) {
	s := &Server{MaxConns: 2} // 2 per host too
	addr, accepted, release := served(t, s, echo, netip.MustParseAddr("127.0.0.9"))
	// Four slow connections of one host whose goroutines do not run: the
	// third and fourth close the first two, which cannot end yet.
	var slow []net.Conn
	for range 4 {
		c := dialFrom(t, "127.0.0.9", addr)
		io.WriteString(c, "GET / HTTP/1.1\r\n")
		waitAccepted(t, accepted, "127.0.0.9")
		slow = append(slow, c)
	}
	counts := func() (conns, closing int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.conns), s.closing
	}
	if n, closing := counts(); n != 4 || closing != 2 {
		t.Fatalf("%d connections held, %d of them closing; want 4 and 2", n, closing)
	}
	// A fifth, with its whole request, waits in the kernel's queue.
	v := dialFrom(t, "127.0.0.9", addr)
	io.WriteString(v, "GET /v HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	if acceptedWithin(accepted, "127.0.0.9", 300*time.Millisecond) {
		t.Error("a connection taken with MaxConns closed ones not ended")
	}
	if n, closing := counts(); n != 4 || closing != 2 {
		t.Errorf("%d connections held, %d of them closing; want still 4 and 2", n, closing)
	}
	release()
	if got := peerState(v, 2*time.Second); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Errorf("the fifth connection once the closed ones ended: %q, want 200", got)
	}
	for i, want := range []string{"closed", "closed", "closed", "open"} {
		if got := peerState(slow[i], 200*time.Millisecond); got != want {
			t.Errorf("slow connection %d: %s, want %s", i+1, got, want)
		}
	}
}

// getFromNoT is getFrom for goroutines other than the test's.
func getFromNoT(src, addr, path string) string {
	c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}).Dial("tcp", addr)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	return peerState(c, 5*time.Second)
}

// waitFor polls cond every 5 ms for at most 2 s.
func waitFor(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitingOf counts the connections of host (every host if host is the
// zero Addr) still waiting for a request.
func (s *Server) waitingOf(host netip.Addr) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c, st := range s.conns {
		if (!host.IsValid() || hostKey(c.RemoteAddr()) == host) && st.waiting.Load() > 0 {
			n++
		}
	}
	return n
}

// FuzzEarlyRequest: whatever part of the input came with the connection
// (read and parsed by Serve before the connection's goroutine runs), the
// goroutine then reads the same requests, with the same bodies, and ends
// on the same error, as if it had read everything itself.
func FuzzEarlyRequest(f *testing.F) {
	f.Add([]byte("POST /ctl HTTP/1.1\r\nHost: 192.0.2.1:5000\r\nSOAPAction: \"urn:x#A\"\r\nContent-Length: 4\r\n\r\nbody"), 60)
	f.Add([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHo"), 30)
	f.Add([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"), 28)
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\nGET / HTTP/1.0\r\n\r\n"), 70)
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"), 75)
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\nX: "+strings.Repeat("a", 5000)+"\r\n\r\n"), 4500)
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), 5)
	f.Fuzz(func(t *testing.T, b []byte, k int) {
		if k < 0 || k > len(b) {
			return
		}
		s := &Server{MaxBodyBytes: 1000, MaxHeaderBytes: 1000}
		type result struct {
			Method, URI, Proto string
			Header             Header
			Body               []byte
		}
		// readAll reads requests from r until an error; it returns them
		// and the error's status (0 for an I/O error such as EOF).
		readAll := func(r io.Reader, first *Request) ([]result, int) {
			var got []result
			add := func(q *Request) {
				got = append(got, result{q.Method, q.RequestURI, q.Proto, q.Header, q.Body})
			}
			if first != nil {
				add(first)
			}
			br := bufio.NewReaderSize(r, 4096)
			for range len(b) + 1 {
				q, err := s.readRequest(br, nil, nil)
				if err != nil {
					var se *statusError
					if errors.As(err, &se) {
						return got, se.code
					}
					return got, 0
				}
				add(q)
			}
			t.Fatalf("more requests than bytes in %q", b)
			return nil, 0
		}
		want, wantErr := readAll(bytes.NewReader(b), nil)
		e := s.parseEarly(b[:k], bufio.NewReaderSize(nil, 4096))
		got, gotErr := readAll(io.MultiReader(bytes.NewReader(e.rest), bytes.NewReader(b[k:])), e.req)
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" || gotErr != wantErr {
			t.Errorf("early part %q, then %q: requests (-whole +early):\n%s\nerror status %d, whole %d", b[:k], b[k:], diff, gotErr, wantErr)
		}
	})
}
