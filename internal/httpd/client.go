package httpd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pcpgw/pcpgw/internal/sock"
)

// Do sends one request (GENA NOTIFY, say) to an http:// URL and returns the
// response's status code, within ctx. The response body is read and thrown
// away (at most 64 KiB). The connection is not kept.
func Do(ctx context.Context, method, rawURL string, h Header, body []byte) (int, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, fmt.Errorf("httpd: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return 0, fmt.Errorf("httpd: %q: only http:// URLs", rawURL)
	}
	c, err := DialTCP(ctx, "tcp", hostPort(u))
	if err != nil {
		return 0, fmt.Errorf("httpd: %w", err)
	}
	defer c.Close()
	stop := deadlines(ctx, c)
	defer stop()
	if err := writeRequest(c, method, u, h, body); err != nil {
		return 0, err
	}
	br := bufio.NewReader(io.LimitReader(c, 64<<10))
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("httpd: reading the status line: %w", err)
	}
	n, err := parseStatusLine(line)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, br)
	return n, nil
}

// DialTCP connects to address, an IP address and port (no host name: the
// daemon resolves none), within ctx. Network must be "tcp".
func DialTCP(ctx context.Context, network, address string) (net.Conn, error) {
	if network != "tcp" {
		return nil, fmt.Errorf("httpd: network %q", network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("httpd: %q: want an IP address and port", address)
	}
	return sock.DialTCP(ctx, netip.AddrPort{}, ap, sock.Options{})
}

// hostPort is u's host with port 80 when it names none.
func hostPort(u *url.URL) string {
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "80")
	}
	return u.Host
}

// deadlines makes c's deadline ctx's (30 s without one) and cuts c off when
// ctx ends; the returned func stops the latter.
func deadlines(ctx context.Context, c net.Conn) func() bool {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	c.SetDeadline(deadline)
	return context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
}

// writeRequest writes an HTTP/1.1 request asking to close the connection.
// Header lines holding CR or LF are left out.
func writeRequest(c net.Conn, method string, u *url.URL, h Header, body []byte) error {
	bw := bufio.NewWriter(c)
	fmt.Fprintf(bw, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n", method, u.RequestURI(), u.Host, len(body))
	for k, vs := range h {
		for _, v := range vs {
			if !strings.ContainsAny(k+v, "\r\n") {
				fmt.Fprintf(bw, "%s: %s\r\n", k, v)
			}
		}
	}
	bw.WriteString("\r\n")
	bw.Write(body)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("httpd: %w", err)
	}
	return nil
}

func parseStatusLine(line string) (int, error) {
	proto, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	code, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	if err != nil || n < 100 || n > 999 || !strings.HasPrefix(proto, "HTTP/") {
		return 0, fmt.Errorf("httpd: malformed status line %q", line)
	}
	return n, nil
}

// ClientRequest is one request for Send.
type ClientRequest struct {
	Method string
	// URL is an http:// URL. Send does not resolve names itself: a host
	// name goes to Dial as it is.
	URL    string
	Header Header
	Body   []byte
	// MaxBody bounds the response body; a longer one fails with
	// ErrTooLarge. Zero: 64 KiB.
	MaxBody int
	// Dial opens the connection to the URL's host:port (port 80 when
	// the URL names none). Nil: DialTCP.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// ClientResponse is the answer to a ClientRequest.
type ClientResponse struct {
	Status int
	Header Header
	Body   []byte
}

// Limits of Send's response parsing.
const (
	maxClientHeader      = 16 << 10 // status line and header fields
	maxClientHeaderLines = 64
	maxInterim           = 4 // 1xx responses skipped before the final one
	defaultMaxBody       = 64 << 10
)

// ErrTooLarge is a response longer than a ClientRequest's MaxBody, or a
// header past 16 KiB or 64 lines.
var ErrTooLarge = errors.New("httpd: response too large")

// Send sends one request and returns the response with its body, within
// ctx (30 s without a deadline). It follows no redirect: a 3xx is
// returned as it is. The body is read whole whatever the status:
// Content-Length, chunked (RFC 9112 §7.1), or until the server closes.
// The connection is not kept.
func Send(ctx context.Context, r ClientRequest) (ClientResponse, error) {
	u, err := url.Parse(r.URL)
	if err != nil {
		return ClientResponse{}, fmt.Errorf("httpd: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" || u.User != nil {
		return ClientResponse{}, fmt.Errorf("httpd: %q: only http:// URLs without user", r.URL)
	}
	maxBody := r.MaxBody
	if maxBody <= 0 {
		maxBody = defaultMaxBody
	}
	dial := r.Dial
	if dial == nil {
		dial = DialTCP
	}
	c, err := dial(ctx, "tcp", hostPort(u))
	if err != nil {
		return ClientResponse{}, fmt.Errorf("httpd: %w", err)
	}
	defer c.Close()
	stop := deadlines(ctx, c)
	defer stop()
	if err := writeRequest(c, r.Method, u, r.Header, r.Body); err != nil {
		return ClientResponse{}, err
	}
	// The limit grows by the body's bound once the header is read; the
	// chunked framing gets room of its own.
	lr := &io.LimitedReader{R: c, N: maxClientHeader}
	br := bufio.NewReader(lr)
	var resp ClientResponse
	for i := 0; ; i++ {
		if i > maxInterim {
			return ClientResponse{}, fmt.Errorf("httpd: more than %d interim responses", maxInterim)
		}
		resp, err = readResponseHeader(br)
		if err != nil {
			if lr.N <= 0 {
				err = ErrTooLarge
			}
			return ClientResponse{}, err
		}
		if resp.Status >= 200 {
			break
		}
	}
	lr.N += int64(maxBody) + 16<<10
	resp.Body, err = readClientBody(br, resp.Header, maxBody)
	if err != nil {
		return ClientResponse{}, err
	}
	return resp, nil
}

// readResponseHeader reads a status line and header fields.
func readResponseHeader(br *bufio.Reader) (ClientResponse, error) {
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		return ClientResponse{}, fmt.Errorf("httpd: reading the status line: %w", err)
	}
	n, err := parseStatusLine(line)
	if err != nil {
		return ClientResponse{}, err
	}
	h := Header{}
	for lines := 0; ; lines++ {
		if lines > maxClientHeaderLines {
			return ClientResponse{}, ErrTooLarge
		}
		l, err := tp.ReadLine()
		if err != nil {
			return ClientResponse{}, fmt.Errorf("httpd: reading the header: %w", err)
		}
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return ClientResponse{}, fmt.Errorf("httpd: malformed header line %q", l)
		}
		h.Add(k, strings.TrimSpace(v))
	}
	return ClientResponse{Status: n, Header: h}, nil
}

// readClientBody reads the body that header announces, at most max bytes.
func readClientBody(br *bufio.Reader, h Header, max int) ([]byte, error) {
	if te := h.Get("Transfer-Encoding"); te != "" {
		if !strings.EqualFold(te, "chunked") {
			return nil, fmt.Errorf("httpd: transfer encoding %q", te)
		}
		return readClientChunked(br, max)
	}
	if cl := h.Values("Content-Length"); len(cl) > 0 {
		n, err := strconv.ParseInt(strings.TrimSpace(cl[0]), 10, 64)
		if err != nil || n < 0 || len(cl) > 1 && cl[1] != cl[0] {
			return nil, fmt.Errorf("httpd: malformed Content-Length %q", cl)
		}
		if n > int64(max) {
			return nil, ErrTooLarge
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, fmt.Errorf("httpd: reading the body: %w", err)
		}
		return b, nil
	}
	// Until the server closes.
	b, err := io.ReadAll(io.LimitReader(br, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("httpd: reading the body: %w", err)
	}
	if len(b) > max {
		return nil, ErrTooLarge
	}
	return b, nil
}

// readClientChunked decodes a chunked body (RFC 9112 §7.1) of at most max
// bytes, with chunk-size lines of at most 1 KiB and 64 trailer lines.
func readClientChunked(br *bufio.Reader, max int) ([]byte, error) {
	tp := textproto.NewReader(br)
	readLine := func() (string, error) {
		l, err := tp.ReadLine()
		if err != nil {
			return "", fmt.Errorf("httpd: reading a chunk: %w", err)
		}
		if len(l) > 1024 {
			return "", fmt.Errorf("httpd: chunk line too long")
		}
		return l, nil
	}
	var body []byte
	for {
		line, err := readLine()
		if err != nil {
			return nil, err
		}
		sz, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseUint(strings.TrimSpace(sz), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("httpd: malformed chunk size %q", line)
		}
		if n == 0 {
			for range 64 { // trailer
				l, err := readLine()
				if err != nil {
					return nil, err
				}
				if l == "" {
					return body, nil
				}
			}
			return nil, ErrTooLarge
		}
		if uint64(len(body))+n > uint64(max) {
			return nil, ErrTooLarge
		}
		start := len(body)
		body = append(body, make([]byte, n)...)
		if _, err := io.ReadFull(br, body[start:]); err != nil {
			return nil, fmt.Errorf("httpd: reading a chunk: %w", err)
		}
		if l, err := readLine(); err != nil || l != "" {
			return nil, fmt.Errorf("httpd: malformed chunk end")
		}
	}
}
