package httpd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// start serves h on 127.0.0.1:0 with s's limits and returns the address.
func start(t *testing.T, s *Server, h HandlerFunc) string {
	t.Helper()
	s.Handler = h
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

func echo(w ResponseWriter, r *Request) {
	w.Header().Set("X-Method", r.Method)
	fmt.Fprintf(w, "%s %s %q host=%s remote-ok=%v", r.Method, r.Path, r.Body, r.Host, r.RemoteAddr.IsValid())
}

// exchange writes raw to a new connection and returns everything read
// until the server closes it or 2 s pass.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, raw)
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestRequests(t *testing.T) {
	addr := start(t, &Server{MaxBodyBytes: 100, MaxHeaderBytes: 300}, echo)
	tests := []struct {
		name, raw string
		want      []string // substrings of the whole answer
	}{
		{"get", "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			[]string{"HTTP/1.1 200 OK\r\n", "X-Method: GET", `GET /a "" host=x remote-ok=true`}},
		{"post content-length", "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
			[]string{"200 OK", `POST /c "hello"`}},
		{"post chunked", "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nTrailer: x\r\n\r\n",
			[]string{"200 OK", `"hello"`}},
		// The body came with the head: no 100 (RFC 9110 §10.1.1 allows
		// it); TestExpectContinue waits for it.
		{"expect 100-continue, body sent", "POST /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
			[]string{"HTTP/1.1 200 OK", `"hi"`}},
		{"head has no body", "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", []string{"200 OK", "Content-Length: "}},
		{"http/1.0 closes", "GET / HTTP/1.0\r\n\r\n", []string{"200 OK", "Connection: close"}},
		{"smuggling", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []string{"400 Bad Request"}},
		{"conflicting lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", []string{"400 Bad Request"}},
		{"negative length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", []string{"400 Bad Request"}},
		{"body too large", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", []string{"413 Request Entity Too Large"}},
		{"chunked too large", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n", []string{"413"}},
		{"header too large", "GET / HTTP/1.1\r\nHost: x\r\nX-A: " + strings.Repeat("a", 400) + "\r\n\r\n", []string{"431"}},
		{"bad request line", "GARBAGE\r\n\r\n", []string{"400 Bad Request"}},
		{"bad method", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", []string{"400 Bad Request"}},
		{"version", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", []string{"505"}},
		{"no host", "GET / HTTP/1.1\r\n\r\n", []string{"400"}},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", []string{"400"}},
		{"bad header", "GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", []string{"400"}},
		{"gzip encoding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", []string{"501"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := exchange(t, addr, tt.raw)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("answer lacks %q:\n%s", w, got)
				}
			}
			if tt.name == "head has no body" && strings.Contains(got, "HEAD /") {
				t.Errorf("HEAD answered with a body:\n%s", got)
			}
		})
	}
}

// TestExpectContinue: a client that sends Expect: 100-continue and waits
// for the 100 before its body gets it, then the answer.
func TestExpectContinue(t *testing.T) {
	addr := start(t, &Server{}, echo)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, "POST /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(c)
	if line, err := br.ReadString('\n'); line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("before the body: %q (%v)", line, err)
	}
	io.WriteString(c, "hi")
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "HTTP/1.1 200 OK\r\n") || !strings.Contains(string(rest), `POST /c "hi"`) {
		t.Errorf("after the body:\n%s", rest)
	}
}

func TestKeepAlive(t *testing.T) {
	var n atomic.Int32
	addr := start(t, &Server{}, func(w ResponseWriter, r *Request) { fmt.Fprintf(w, "%d", n.Add(1)) })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(c)
	for i := 1; i <= 3; i++ {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		var body string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if line == "\r\n" {
				break
			}
		}
		b := make([]byte, 1)
		io.ReadFull(br, b)
		body = string(b)
		if body != fmt.Sprint(i) {
			t.Errorf("request %d answered %q", i, body)
		}
	}
}

func TestIdleAndSlowClients(t *testing.T) {
	addr := start(t, &Server{ReadTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond}, echo)
	// A client that never finishes its request is dropped after ReadTimeout.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	if _, err := io.ReadAll(c); err != nil || time.Since(start) > 2*time.Second {
		t.Errorf("slow client not dropped: %v after %v", err, time.Since(start))
	}
}

func TestMaxConns(t *testing.T) {
	refused := 0
	release := make(chan struct{})
	s := &Server{MaxConns: 1, ConnRefused: func() { refused++ }}
	addr := start(t, s, func(w ResponseWriter, r *Request) { <-release })
	c1, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	io.WriteString(c1, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(50 * time.Millisecond) // let the first connection be counted
	got := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	close(release)
	if !strings.HasPrefix(got, "HTTP/1.1 503") || refused != 1 {
		t.Errorf("second connection: %q, refused %d", got, refused)
	}
}

func TestHeaderInjection(t *testing.T) {
	addr := start(t, &Server{}, func(w ResponseWriter, r *Request) {
		w.Header().Set("X-Evil", "a\r\nSet-Cookie: b")
		w.WriteHeader(StatusPreconditionFailed)
	})
	got := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if strings.Contains(got, "Set-Cookie") || !strings.HasPrefix(got, "HTTP/1.1 412 Precondition Failed") {
		t.Errorf("answer:\n%s", got)
	}
}

func TestDo(t *testing.T) {
	got := make(chan *Request, 1)
	addr := start(t, &Server{}, func(w ResponseWriter, r *Request) {
		got <- r
		w.WriteHeader(StatusOK)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	h := Header{}
	h.Set("NT", "upnp:event")
	h.Set("SEQ", "0")
	code, err := Do(ctx, "NOTIFY", "http://"+addr+"/cb?x=1", h, []byte("<e/>"))
	if err != nil || code != 200 {
		t.Fatalf("Do = %d, %v", code, err)
	}
	r := <-got
	if r.Method != "NOTIFY" || r.RequestURI != "/cb?x=1" || r.Header.Get("Nt") != "upnp:event" || !bytes.Equal(r.Body, []byte("<e/>")) {
		t.Errorf("server saw %+v", r)
	}
	// A dead callback: bounded by ctx.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	start := time.Now()
	if _, err := Do(ctx2, "NOTIFY", "http://"+ln.Addr().String()+"/", nil, nil); err == nil || time.Since(start) > time.Second {
		t.Errorf("silent peer: %v after %v", err, time.Since(start))
	}
	if _, err := Do(ctx, "NOTIFY", "https://example/", nil, nil); err == nil {
		t.Error("https accepted")
	}
}

// FuzzReadRequest: any bytes give a request or an error, never a panic,
// and a request stays within the limits.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte("POST /ctl HTTP/1.1\r\nHost: 192.0.2.1:5000\r\nSOAPAction: \"urn:x#A\"\r\nContent-Length: 4\r\n\r\nbody"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n"))
	f.Add([]byte("SUBSCRIBE /evt HTTP/1.1\r\nHost: x\r\nCALLBACK: <http://192.0.2.100:1234/>\r\nNT: upnp:event\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &Server{MaxBodyBytes: 1000, MaxHeaderBytes: 1000}
		var out bytes.Buffer
		r, err := s.readRequest(bufio.NewReader(bytes.NewReader(b)), bufio.NewWriter(&out), nil)
		if err == nil && len(r.Body) > 1000 {
			t.Fatalf("body of %d bytes", len(r.Body))
		}
	})
}

// TestFlush: a handler that flushes has its answer on the wire before it
// returns; what it writes afterwards is refused, and keep-alive goes on.
func TestFlush(t *testing.T) {
	sent := make(chan struct{})
	var lateErr atomic.Value
	addr := start(t, &Server{}, func(w ResponseWriter, r *Request) {
		w.Header().Set("SID", "uuid:x")
		io.WriteString(w, "ok")
		w.(Flusher).Flush()
		if r.Path == "/wait" {
			<-sent // the client read the answer while the handler runs
		}
		_, err := io.WriteString(w, "late")
		lateErr.Store(err)
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(c)
	read := func() string {
		var head string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the answer: %v (so far %q)", err, head)
			}
			head += line
			if line == "\r\n" {
				break
			}
		}
		b := make([]byte, 2)
		if _, err := io.ReadFull(br, b); err != nil {
			t.Fatal(err)
		}
		return head + string(b)
	}
	io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	got := read()
	close(sent)
	if !strings.Contains(got, "Sid: uuid:x\r\n") || !strings.Contains(got, "Content-Length: 2\r\n") || !strings.HasSuffix(got, "\r\n\r\nok") {
		t.Errorf("flushed answer:\n%s", got)
	}
	io.WriteString(c, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := read(); !strings.HasSuffix(got, "ok") {
		t.Errorf("second answer on the kept connection:\n%s", got)
	}
	if err, _ := lateErr.Load().(error); err != ErrSent {
		t.Errorf("Write after Flush: %v, want ErrSent", err)
	}
}
