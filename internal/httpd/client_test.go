package httpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rawServer answers every connection on 127.0.0.1:0 with the bytes of
// reply after reading the request header; it counts connections and its
// cleanup waits for its goroutines.
func rawServer(t *testing.T, reply func(req string) string) (addr string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = new(atomic.Int32)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				var req strings.Builder
				for {
					l, err := br.ReadString('\n')
					req.WriteString(l)
					if err != nil || l == "\r\n" {
						break
					}
				}
				io.WriteString(c, reply(req.String()))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), conns
}

func TestSend(t *testing.T) {
	big := strings.Repeat("x", 100)
	for _, tc := range []struct {
		name    string
		reply   string
		maxBody int
		want    ClientResponse
		wantErr error // nil: success; errAny: some error
	}{
		{name: "content-length", reply: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
			want: ClientResponse{Status: 200, Header: Header{"Content-Length": {"5"}, "X-A": {"b"}}, Body: []byte("hello")}},
		{name: "chunked", reply: "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
			want: ClientResponse{Status: 500, Header: Header{"Transfer-Encoding": {"chunked"}}, Body: []byte("abcde")}},
		{name: "until close", reply: "HTTP/1.0 200 OK\r\n\r\nbody",
			want: ClientResponse{Status: 200, Header: Header{}, Body: []byte("body")}},
		{name: "interim skipped", reply: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			want: ClientResponse{Status: 200, Header: Header{"Content-Length": {"0"}}, Body: []byte{}}},
		{name: "redirect not followed", reply: "HTTP/1.1 302 Found\r\nLocation: http://192.0.2.9/\r\nContent-Length: 0\r\n\r\n",
			want: ClientResponse{Status: 302, Header: Header{"Location": {"http://192.0.2.9/"}, "Content-Length": {"0"}}, Body: []byte{}}},
		{name: "content-length too large", reply: "HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n" + big, maxBody: 100, wantErr: ErrTooLarge},
		{name: "until close too large", reply: "HTTP/1.1 200 OK\r\n\r\nx" + big, maxBody: 100, wantErr: ErrTooLarge},
		{name: "chunked too large", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + big + "\r\n1\r\nx\r\n0\r\n\r\n", maxBody: 100, wantErr: ErrTooLarge},
		{name: "header too large", reply: "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("y", 20<<10) + "\r\n\r\n", wantErr: ErrTooLarge},
		{name: "too many header lines", reply: "HTTP/1.1 200 OK\r\n" + strings.Repeat("X: y\r\n", 70) + "\r\n", wantErr: ErrTooLarge},
		{name: "garbage", reply: "SSH-2.0-OpenSSH\r\n\r\n", wantErr: errAny},
		{name: "short body", reply: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", wantErr: errAny},
		{name: "bad chunk", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantErr: errAny},
		{name: "other encoding", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", wantErr: errAny},
		{name: "conflicting lengths", reply: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", wantErr: errAny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reqs := make(chan string, 1)
			addr, conns := rawServer(t, func(req string) string { reqs <- req; return tc.reply })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := Send(ctx, ClientRequest{Method: "POST", URL: "http://" + addr + "/ctl?a=1", Header: Header{"Soapaction": {`"x#y"`}}, Body: []byte("<b/>"), MaxBody: tc.maxBody})
			if n := conns.Load(); n != 1 {
				t.Errorf("%d connections, want 1", n)
			}
			got := <-reqs
			if !strings.HasPrefix(got, "POST /ctl?a=1 HTTP/1.1\r\nHost: "+addr+"\r\nContent-Length: 4\r\nConnection: close\r\n") || !strings.Contains(got, "Soapaction: \"x#y\"\r\n") {
				t.Errorf("request header:\n%s", got)
			}
			switch {
			case tc.wantErr == errAny:
				if err == nil {
					t.Fatalf("Send = %+v, want an error", resp)
				}
				return
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Send error %v, want %v", err, tc.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, resp); d != "" {
				t.Errorf("response (-want +got):\n%s", d)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestSendDialAndRefusals(t *testing.T) {
	addr, _ := rawServer(t, func(string) string { return "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n" })
	var dialed []string
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		dialed = append(dialed, network+" "+address)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	ctx := context.Background()
	resp, err := Send(ctx, ClientRequest{Method: "GET", URL: "http://192.0.2.7/desc.xml", Dial: dial})
	if err != nil || resp.Status != 204 {
		t.Fatalf("Send through Dial = %+v, %v", resp, err)
	}
	if d := cmp.Diff([]string{"tcp 192.0.2.7:80"}, dialed); d != "" {
		t.Errorf("dialed (-want +got):\n%s", d)
	}
	for _, u := range []string{"https://" + addr + "/", "http://user@" + addr + "/", "ftp://" + addr, "http:///x", "%zz"} {
		if _, err := Send(ctx, ClientRequest{Method: "GET", URL: u, Dial: dial}); err == nil {
			t.Errorf("Send(%q) succeeded", u)
		}
	}
	if len(dialed) != 1 {
		t.Errorf("refused URLs were dialed: %v", dialed)
	}
}

// TestSendTimeout: a server that never answers is cut off at ctx's
// deadline.
func TestSendTimeout(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	held := make(chan net.Conn, 1)
	wg.Go(func() {
		c, err := ln.Accept()
		if err == nil {
			held <- c
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		select {
		case c := <-held:
			c.Close()
		default:
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Send(ctx, ClientRequest{Method: "GET", URL: "http://" + ln.Addr().String() + "/"}); err == nil {
		t.Fatal("Send succeeded against a silent server")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Send took %v with a 200 ms deadline", d)
	}
}

// FuzzClientResponse: Send's response parsing (status line, header,
// body by Content-Length, chunked or until the end) never panics and
// never returns a body over its bound. Seeds: the replies of TestSend and
// miniupnpd 2.3.9's answer to GetExternalIPAddress (igdclient/testdata).
func FuzzClientResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
		"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nbody",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nConnection: close\r\nContent-Length: 357\r\nServer: Debian/6.18.44 UPnP/1.1 MiniUPnPd/2.3.9\r\nExt:\r\n\r\n" +
			`<?xml version="1.0"?>` + "\r\n" + `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewExternalIPAddress>203.0.113.1</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>` + "\r\n",
	} {
		f.Add([]byte(s), uint16(100))
	}
	f.Fuzz(func(t *testing.T, b []byte, maxBody uint16) {
		lr := &io.LimitedReader{R: bytes.NewReader(b), N: maxClientHeader}
		br := bufio.NewReader(lr)
		resp, err := readResponseHeader(br)
		if err != nil {
			return
		}
		if resp.Status < 100 || resp.Status > 999 {
			t.Fatalf("status %d", resp.Status)
		}
		lr.N += int64(maxBody) + 16<<10
		body, err := readClientBody(br, resp.Header, int(maxBody))
		if err == nil && len(body) > int(maxBody) {
			t.Fatalf("body of %d bytes over %d", len(body), maxBody)
		}
	})
}
