// Package httpd is the small HTTP/1.1 server and client that UPnP needs:
// descriptions, SOAP control and GENA eventing on the LAN, NOTIFY toward
// subscribers.
//
// It exists for size. net/http brings crypto/tls, x509, HTTP/2 and their
// friends: on a MIPS router it alone makes a 6.7 MB binary, above pcpgw's
// budget for everything. UPnP uses a sliver of HTTP: requests with a
// Content-Length (or chunked) body of a few kilobytes, keep-alive, no TLS,
// no proxies.
//
// The API follows net/http's names (Handler, ResponseWriter, Request,
// Error, Status*) so that handlers read the same. Bodies are read whole
// before the handler runs, within Server.MaxBodyBytes (413 beyond it), and
// responses are buffered and sent with a Content-Length. Header lines are
// bounded by Server.MaxHeaderBytes (431 beyond), a request that sends both
// Content-Length and Transfer-Encoding is refused (request smuggling).
//
// Slow clients. A request's head must arrive whole within
// Server.HeaderTimeout (a byte now and then is not a request), its body
// within Server.ReadTimeout; a kept-alive connection may wait
// Server.IdleTimeout for its next request. Every connection counts
// against Server.MaxConns and, per client host (an IPv4 address, an IPv6
// /64), Server.MaxConnsPerHost. A connection is idle while it has no
// whole request to answer: waiting for its first or next one, or
// receiving one (head or body). A new connection takes its place:
//
//   - from a host at MaxConnsPerHost: that host's own connection idle the
//     longest is closed for it (a program leaking slow connections does
//     not lock its host's other programs out);
//   - on a full server: the connection idle the longest is closed for it,
//     however short that was (slow clients reconnecting in bursts would
//     keep every slot younger than any minimum age);
//   - a connection whose whole request has been read, or came with the
//     connection itself, is never closed for another: 503 when nothing
//     is idle.
//
// On Linux, Serve accepts a TCP connection once its first data has arrived
// (TCP_DEFER_ACCEPT) and reads what has arrived right away: a client that
// sends its request with its connection, as every UPnP control point
// does, is never idle, however long the scheduler takes to run the
// connection's goroutine.
package httpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Header is a MIME header with canonical keys.
type Header = textproto.MIMEHeader

// Status codes used by pcpgw.
const (
	StatusContinue                    = 100
	StatusOK                          = 200
	StatusBadRequest                  = 400
	StatusForbidden                   = 403
	StatusNotFound                    = 404
	StatusMethodNotAllowed            = 405
	StatusRequestTimeout              = 408
	StatusLengthRequired              = 411
	StatusPreconditionFailed          = 412
	StatusRequestEntityTooLarge       = 413
	StatusUnsupportedMediaType        = 415
	StatusRequestHeaderFieldsTooLarge = 431
	StatusInternalServerError         = 500
	StatusNotImplemented              = 501
	StatusServiceUnavailable          = 503
	StatusHTTPVersionNotSupported     = 505
)

var statusText = map[int]string{
	StatusContinue: "Continue", StatusOK: "OK", StatusBadRequest: "Bad Request",
	StatusForbidden: "Forbidden", StatusNotFound: "Not Found", StatusMethodNotAllowed: "Method Not Allowed",
	StatusRequestTimeout: "Request Timeout", StatusLengthRequired: "Length Required",
	StatusPreconditionFailed: "Precondition Failed", StatusRequestEntityTooLarge: "Request Entity Too Large",
	StatusUnsupportedMediaType: "Unsupported Media Type", StatusRequestHeaderFieldsTooLarge: "Request Header Fields Too Large",
	StatusInternalServerError: "Internal Server Error", StatusNotImplemented: "Not Implemented",
	StatusServiceUnavailable: "Service Unavailable", StatusHTTPVersionNotSupported: "HTTP Version Not Supported",
}

// StatusText returns the reason phrase of code ("" if unknown).
func StatusText(code int) string { return statusText[code] }

// TimeFormat is the format of HTTP dates (RFC 9110 §5.6.7).
const TimeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// Request is one parsed request, its body read whole.
type Request struct {
	Method     string
	RequestURI string // as sent
	Path       string // RequestURI without the query
	RawQuery   string
	Proto      string // "HTTP/1.1" or "HTTP/1.0"
	Header     Header
	Host       string
	Body       []byte
	RemoteAddr netip.AddrPort
	LocalAddr  netip.AddrPort
	ctx        context.Context
}

// Context is cancelled when the server closes.
func (r *Request) Context() context.Context {
	if r.ctx == nil {
		return context.Background()
	}
	return r.ctx
}

// ResponseWriter builds the response of a handler.
type ResponseWriter interface {
	Header() Header
	Write([]byte) (int, error)
	WriteHeader(code int)
}

// Handler answers requests.
type Handler interface {
	ServeHTTP(ResponseWriter, *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ResponseWriter, *Request)

// ServeHTTP calls f.
func (f HandlerFunc) ServeHTTP(w ResponseWriter, r *Request) { f(w, r) }

// Error answers code with a plain-text message.
func Error(w ResponseWriter, msg string, code int) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("httpd: server closed")

// Server serves HTTP/1.x on listeners. Zero fields take the defaults shown.
type Server struct {
	Handler        Handler
	MaxHeaderBytes int           // request line and header; 8 KiB
	MaxBodyBytes   int           // 64 KiB
	ReadTimeout    time.Duration // whole request; 10 s
	WriteTimeout   time.Duration // whole response; 10 s
	IdleTimeout    time.Duration // between keep-alive requests; 30 s
	// HeaderTimeout bounds the arrival of a request's line and header,
	// from the moment the server waits for them (the connection's accept,
	// or the first byte of a kept-alive connection's next request); 2 s,
	// and never more than ReadTimeout.
	HeaderTimeout time.Duration
	MaxConns      int // open connections over every listener; 64
	// MaxConnsPerHost caps the open connections of one client host (an
	// IPv4 address, an IPv6 /64), so that one host holding connections
	// open (slowloris) cannot take every one of MaxConns; 0 means
	// MaxConns/4, at least 2 (a control point often keeps one connection
	// alive while it opens another) and at most MaxConns.
	MaxConnsPerHost int
	// ConnRefused is called (if set) when a connection is refused for
	// MaxConns or MaxConnsPerHost.
	ConnRefused func()

	// testHookServe, if set, is called by a connection's goroutine before
	// it reads anything.
	testHookServe func(net.Conn)

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	// conns holds every connection until its goroutine ends, also the
	// ones closed for a new client (closing of them): those count against
	// no limit, but Serve waits for them to end once they are MaxConns.
	conns   map[net.Conn]*connState
	closing int
	ended   *sync.Cond         // a closing connection's goroutine ended (on mu)
	perHost map[netip.Addr]int // connections by hostKey, closing ones left out
	closed  bool
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
	once    sync.Once
}

func (s *Server) init() {
	s.once.Do(func() {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[net.Conn]*connState{}
		s.perHost = map[netip.Addr]int{}
		s.ended = sync.NewCond(&s.mu)
		s.ctx, s.cancel = context.WithCancel(context.Background())
	})
}

func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// Serve accepts connections on ln until Close; it returns ErrServerClosed
// then. ln is closed when Serve returns.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	deferAccept(ln, s.headerTimeout())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	// What came with a new connection is read and parsed here, with
	// buffers owned by this loop.
	scratch := make([]byte, earlyReadSize)
	parse := bufio.NewReaderSize(nil, 4096)
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || strings.Contains(err.Error(), "too many open files") {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		early := s.readEarly(c, scratch, parse)
		now := time.Now()
		host := hostKey(c.RemoteAddr())
		s.mu.Lock()
		// Connections closed for new ones end at once, but their
		// goroutines may not have run yet: under a flood of new
		// connections, wait for them rather than pile them up.
		for s.closing >= orDefault(s.MaxConns, 64) && !s.closed {
			s.ended.Wait()
		}
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		if !s.admitLocked(host) {
			s.mu.Unlock()
			if s.ConnRefused != nil {
				s.ConnRefused()
			}
			c.SetWriteDeadline(now.Add(time.Second))
			io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			c.Close()
			continue
		}
		st := &connState{host: host}
		if early.req == nil {
			st.waiting.Store(now.UnixNano())
		} // else its request is here whole: not idle from the start
		s.conns[c] = st
		s.perHost[host]++
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c, st, early, now)
	}
}

// earlyReadSize is how much of what came with a connection Serve reads at
// once: a UPnP request is 1-2 KiB.
const earlyReadSize = 8 << 10

// early is what came with a connection, read by Serve before the
// connection's goroutine runs: its first request if it came whole (and
// what followed it), else the bytes to read it from.
type early struct {
	req  *Request
	rest []byte
}

// readEarly reads, without waiting, what has arrived on c and parses it
// with parse (reset on it).
func (s *Server) readEarly(c net.Conn, scratch []byte, parse *bufio.Reader) early {
	n := readNow(c, scratch)
	if n <= 0 {
		return early{}
	}
	return s.parseEarly(scratch[:n], parse)
}

// parseEarly parses b, what came with a connection, with parse.
func (s *Server) parseEarly(b []byte, parse *bufio.Reader) early {
	r := bytes.NewReader(b)
	parse.Reset(r)
	defer parse.Reset(nil)
	req, err := s.readRequest(parse, nil, nil)
	if err != nil {
		// Not whole yet, or bad: the goroutine reads it again from the
		// start, and answers the error if there is one.
		return early{rest: bytes.Clone(b)}
	}
	used := len(b) - r.Len() - parse.Buffered()
	if used == len(b) {
		return early{req: req}
	}
	return early{req: req, rest: bytes.Clone(b[used:])}
}

// admitLocked reports whether a new connection of host may be served,
// closing an idle connection to make room if it must: the host's own if
// it is at its cap, else, on a full server, anyone's.
func (s *Server) admitLocked(host netip.Addr) bool {
	maxConns := orDefault(s.MaxConns, 64)
	switch {
	case s.perHost[host] >= s.maxPerHost():
		return s.evictLocked(host)
	case len(s.conns)-s.closing >= maxConns:
		return s.evictLocked(netip.Addr{})
	}
	return true
}

// connState is what eviction needs to know of a connection.
type connState struct {
	host netip.Addr // its hostKey
	// waiting is when the connection became idle: accepted without a
	// whole request, or done answering one (Unix ns); 0 from the moment
	// a whole request has been read until it is answered; evicted once
	// evictLocked has claimed it.
	waiting atomic.Int64
	closing bool // claimed by evictLocked (guarded by Server.mu)
}

// evicted marks a connection claimed by evictLocked: its request, if one
// arrives meanwhile, is not served.
const evicted = -1

// evictLocked closes the connection idle the longest (of host only, if
// host is valid), however long that was, so that a new connection takes
// its place; connections with a whole request read are never closed. It
// reports whether it closed one.
func (s *Server) evictLocked(host netip.Addr) bool {
	for range 3 { // a candidate that has just read its request: the next
		var victim net.Conn
		var vst *connState
		var oldest int64
		for c, st := range s.conns {
			if st.closing || host.IsValid() && st.host != host {
				continue
			}
			if w := st.waiting.Load(); w > 0 && (victim == nil || w < oldest) {
				victim, vst, oldest = c, st, w
			}
		}
		if victim == nil {
			return false
		}
		// Claimed only if it is still idle since then: one that has just
		// read its request (waiting 0) is being answered.
		if !vst.waiting.CompareAndSwap(oldest, evicted) {
			continue
		}
		vst.closing = true
		s.closing++
		if s.perHost[vst.host]--; s.perHost[vst.host] <= 0 {
			delete(s.perHost, vst.host)
		}
		victim.Close()
		return true
	}
	return false
}

func (s *Server) headerTimeout() time.Duration {
	return min(orDefault(s.HeaderTimeout, 2*time.Second), orDefault(s.ReadTimeout, 10*time.Second))
}

func (s *Server) maxPerHost() int {
	if s.MaxConnsPerHost > 0 {
		return s.MaxConnsPerHost
	}
	n := orDefault(s.MaxConns, 64)
	return min(n, max(2, n/4))
}

// hostKey is the client host a connection counts against: its IPv4
// address, or the /64 of its IPv6 address (a host picks any address of
// its prefix at will).
func hostKey(a net.Addr) netip.Addr {
	ip := addrPort(a).Addr()
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.Addr()
	}
	return ip
}

// Close stops every listener and connection and waits for the handlers.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.closed = true
	s.ended.Broadcast()
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// errHeaderTooLarge and friends decide the status of a bad request.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// serveConn answers the requests of c, accepted at accepted, the first
// one from e.
func (s *Server) serveConn(c net.Conn, st *connState, e early, accepted time.Time) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		if st.closing {
			s.closing--
			s.ended.Broadcast()
		} else if s.perHost[st.host]--; s.perHost[st.host] <= 0 {
			delete(s.perHost, st.host)
		}
		s.mu.Unlock()
		c.Close()
		s.wg.Done()
	}()
	if s.testHookServe != nil {
		s.testHookServe(c)
	}
	local := addrPort(c.LocalAddr())
	remote := addrPort(c.RemoteAddr())
	var in io.Reader = c
	if len(e.rest) > 0 {
		in = io.MultiReader(bytes.NewReader(e.rest), c)
	}
	br := bufio.NewReaderSize(in, 4096)
	bw := bufio.NewWriterSize(c, 4096)
	readTimeout := orDefault(s.ReadTimeout, 10*time.Second)
	for first := true; ; first = false {
		req := e.req
		e.req = nil // (not kept for the connection's life)
		if req == nil {
			begin := accepted
			if !first {
				// Idle until the next request starts (waiting was set
				// at accept for the first one).
				st.waiting.Store(time.Now().UnixNano())
				c.SetReadDeadline(time.Now().Add(orDefault(s.IdleTimeout, 30*time.Second)))
				if _, err := br.Peek(1); err != nil {
					return
				}
				begin = time.Now()
			}
			// The head within HeaderTimeout, the whole request within
			// ReadTimeout, both from begin.
			c.SetReadDeadline(begin.Add(s.headerTimeout()))
			var err error
			req, err = s.readRequest(br, bw, func() { c.SetReadDeadline(begin.Add(readTimeout)) })
			if st.waiting.Swap(0) == evicted {
				return // closed for a new client while the request came in
			}
			if err != nil {
				var se *statusError
				if errors.As(err, &se) {
					c.SetWriteDeadline(time.Now().Add(time.Second))
					fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n",
						se.code, StatusText(se.code), len(se.msg)+1, se.msg)
					bw.Flush()
				}
				return
			}
		}
		req.LocalAddr, req.RemoteAddr, req.ctx = local, remote, s.ctx
		keep := wantsKeepAlive(req)
		rw := &response{header: Header{}, code: StatusOK}
		rw.send = func() error {
			c.SetWriteDeadline(time.Now().Add(orDefault(s.WriteTimeout, 10*time.Second)))
			if strings.EqualFold(rw.header.Get("Connection"), "close") {
				keep = false
			}
			if err := rw.writeTo(bw, req, keep); err != nil {
				return err
			}
			return bw.Flush()
		}
		s.Handler.ServeHTTP(rw, req)
		rw.Flush()
		if rw.err != nil || !keep {
			return
		}
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

func wantsKeepAlive(r *Request) bool {
	conn := strings.ToLower(r.Header.Get("Connection"))
	if r.Proto == "HTTP/1.0" {
		return strings.Contains(conn, "keep-alive")
	}
	return !strings.Contains(conn, "close")
}

// readRequest reads one request with its body, within the limits; it
// calls afterHead (if set) once the head is read, and answers Expect:
// 100-continue on bw (if set).
func (s *Server) readRequest(br *bufio.Reader, bw *bufio.Writer, afterHead func()) (*Request, error) {
	maxHeader := orDefault(s.MaxHeaderBytes, 8<<10)
	lr := &limitedLines{r: br, left: maxHeader}
	line, err := lr.readLine()
	if err != nil {
		return nil, err
	}
	method, rest, ok1 := strings.Cut(line, " ")
	uri, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method == "" || uri == "" || !validToken(method) {
		return nil, &statusError{StatusBadRequest, "malformed request line"}
	}
	switch proto {
	case "HTTP/1.1", "HTTP/1.0":
	default:
		return nil, &statusError{StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}
	h := Header{}
	for {
		l, err := lr.readLine()
		if err != nil {
			return nil, err
		}
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || k == "" || !validToken(k) {
			return nil, &statusError{StatusBadRequest, "malformed header line"}
		}
		if len(h) >= 100 {
			return nil, &statusError{StatusRequestHeaderFieldsTooLarge, "too many header fields"}
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(k), strings.TrimSpace(v))
	}
	r := &Request{Method: method, RequestURI: uri, Proto: proto, Header: h, Host: h.Get("Host")}
	r.Path, r.RawQuery, _ = strings.Cut(uri, "?")
	if proto == "HTTP/1.1" && len(h.Values("Host")) != 1 {
		return nil, &statusError{StatusBadRequest, "missing or repeated Host header"}
	}
	if afterHead != nil {
		afterHead()
	}
	maxBody := orDefault(s.MaxBodyBytes, 64<<10)
	te := strings.ToLower(h.Get("Transfer-Encoding"))
	cls := h.Values("Content-Length")
	if te != "" && len(cls) > 0 {
		return nil, &statusError{StatusBadRequest, "both Content-Length and Transfer-Encoding"}
	}
	if bw != nil && strings.EqualFold(h.Get("Expect"), "100-continue") && (te != "" || len(cls) > 0) {
		fmt.Fprintf(bw, "HTTP/1.1 100 Continue\r\n\r\n")
		if err := bw.Flush(); err != nil {
			return nil, err
		}
	}
	switch {
	case te == "chunked":
		body, err := readChunked(br, maxBody)
		if err != nil {
			return nil, err
		}
		r.Body = body
	case te != "":
		return nil, &statusError{StatusNotImplemented, "unsupported transfer encoding"}
	case len(cls) > 0:
		if len(cls) > 1 {
			for _, v := range cls[1:] {
				if v != cls[0] {
					return nil, &statusError{StatusBadRequest, "conflicting Content-Length"}
				}
			}
		}
		n, err := strconv.ParseInt(cls[0], 10, 64)
		if err != nil || n < 0 {
			return nil, &statusError{StatusBadRequest, "malformed Content-Length"}
		}
		if n > int64(maxBody) {
			return nil, &statusError{StatusRequestEntityTooLarge, "body too large"}
		}
		r.Body = make([]byte, n)
		if _, err := io.ReadFull(br, r.Body); err != nil {
			return nil, err // a lying Content-Length: the read deadline ends it
		}
	}
	return r, nil
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return s != ""
}

// limitedLines reads CRLF (or LF) lines within a byte budget.
type limitedLines struct {
	r    *bufio.Reader
	left int
}

func (l *limitedLines) readLine() (string, error) {
	var b []byte
	for {
		frag, err := l.r.ReadSlice('\n')
		l.left -= len(frag)
		if l.left < 0 {
			return "", &statusError{StatusRequestHeaderFieldsTooLarge, "request header too large"}
		}
		b = append(b, frag...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	b = bytes.TrimRight(b, "\r\n")
	if bytes.IndexByte(b, 0) >= 0 {
		return "", &statusError{StatusBadRequest, "NUL in header"}
	}
	return string(b), nil
}

// readChunked decodes a chunked body (RFC 9112 §7.1) of at most max bytes.
func readChunked(br *bufio.Reader, max int) ([]byte, error) {
	lines := &limitedLines{r: br, left: 64 << 10}
	var body []byte
	for {
		line, err := lines.readLine()
		if err != nil {
			return nil, err
		}
		sz, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseUint(strings.TrimSpace(sz), 16, 32)
		if err != nil {
			return nil, &statusError{StatusBadRequest, "malformed chunk size"}
		}
		if n == 0 {
			for { // trailer
				l, err := lines.readLine()
				if err != nil {
					return nil, err
				}
				if l == "" {
					return body, nil
				}
			}
		}
		if len(body)+int(n) > max {
			return nil, &statusError{StatusRequestEntityTooLarge, "body too large"}
		}
		start := len(body)
		body = append(body, make([]byte, n)...)
		if _, err := io.ReadFull(br, body[start:]); err != nil {
			return nil, err
		}
		if crlf, err := lines.readLine(); err != nil || crlf != "" {
			return nil, &statusError{StatusBadRequest, "malformed chunk"}
		}
	}
}

// Flusher is implemented by the ResponseWriter of Server: Flush sends the
// response as it stands (status, header, body so far, with its
// Content-Length) before the handler returns, so that the handler can act
// once the client has its answer (GENA sends the first event only after
// the SUBSCRIBE answer carrying the SID). Writes after Flush fail with
// ErrSent.
type Flusher interface {
	Flush()
}

// ErrSent is returned by Write after Flush.
var ErrSent = errors.New("httpd: response already sent")

// response buffers a handler's answer.
type response struct {
	header  Header
	code    int
	written bool
	body    bytes.Buffer
	send    func() error // writes the response on the connection
	sent    bool
	err     error // of send
}

var _ Flusher = (*response)(nil)

// Flush sends the response now (once).
func (w *response) Flush() {
	if w.sent || w.send == nil {
		return
	}
	w.sent = true
	w.err = w.send()
}

func (w *response) Header() Header { return w.header }

func (w *response) WriteHeader(code int) {
	if !w.written {
		w.code, w.written = code, true
	}
}

func (w *response) Write(b []byte) (int, error) {
	if w.sent {
		return 0, ErrSent
	}
	w.written = true
	return w.body.Write(b)
}

func (w *response) writeTo(bw *bufio.Writer, r *Request, keep bool) error {
	text := StatusText(w.code)
	if text == "" {
		text = "Status " + strconv.Itoa(w.code)
	}
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", w.code, text)
	w.header.Set("Content-Length", strconv.Itoa(w.body.Len()))
	if w.header.Get("Date") == "" {
		w.header.Set("Date", time.Now().UTC().Format(TimeFormat))
	}
	if !keep {
		w.header.Set("Connection", "close")
	}
	for k, vs := range w.header {
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				continue // never let a value split the header
			}
			fmt.Fprintf(bw, "%s: %s\r\n", k, v)
		}
	}
	bw.WriteString("\r\n")
	if r.Method != "HEAD" {
		bw.Write(w.body.Bytes())
	}
	return nil
}
