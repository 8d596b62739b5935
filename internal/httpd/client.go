package httpd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
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
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return 0, fmt.Errorf("httpd: %w", err)
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	path := u.RequestURI()
	bw := bufio.NewWriter(c)
	fmt.Fprintf(bw, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n", method, path, u.Host, len(body))
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
		return 0, fmt.Errorf("httpd: %w", err)
	}
	br := bufio.NewReader(io.LimitReader(c, 64<<10))
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("httpd: reading the status line: %w", err)
	}
	_, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	code, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	if err != nil || n < 100 || n > 999 {
		return 0, fmt.Errorf("httpd: malformed status line %q", line)
	}
	io.Copy(io.Discard, br)
	return n, nil
}
