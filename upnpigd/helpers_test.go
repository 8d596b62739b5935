package upnpigd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/internal/dnsq"
	"github.com/pcpgw/pcpgw/internal/httpd"
)

// fixedClock is an injected clock that tests move by hand.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fixedClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testIGD struct {
	s     *Server
	core  *fakeCore
	clock *fixedClock
	ts    *testServer
	base  string // http://127.0.0.1:port
}

// testServer serves an httpd.Handler on 127.0.0.1:0 with the limits of
// the daemon; tests talk to it with net/http (test binaries are not
// shipped).
type testServer struct {
	URL    string
	srv    *httpd.Server
	client *http.Client
	done   chan error
}

func newTestServer(t *testing.T, h httpd.Handler) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{
		URL:    "http://" + ln.Addr().String(),
		srv:    &httpd.Server{Handler: h, MaxHeaderBytes: maxHeaderBytes, MaxBodyBytes: maxBodyBytes, ReadTimeout: readTimeout, WriteTimeout: writeTimeout, IdleTimeout: idleTimeout},
		client: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second},
		done:   make(chan error, 1),
	}
	go func() { ts.done <- ts.srv.Serve(ln) }()
	return ts
}

func (ts *testServer) Client() *http.Client { return ts.client }

func (ts *testServer) Close() error {
	ts.client.CloseIdleConnections()
	ts.srv.Close()
	if err := <-ts.done; !errors.Is(err, httpd.ErrServerClosed) {
		return err
	}
	return nil
}

// newTestIGD serves s.Handler(127.0.0.1) on a loopback httpd server.
func newTestIGD(t *testing.T, edit func(*Config)) *testIGD {
	t.Helper()
	clock := &fixedClock{t: time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC)}
	core := newFakeCore(clock.Now)
	cfg := Config{Core: core, IGDv1: true, IGDv2: true, Pinholes: true, UUID: "test", Now: clock.Now, BootID: 7, Resolve: noLookup}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, s.Handler(netip.MustParseAddr("127.0.0.1")))
	t.Cleanup(func() {
		if err := ts.Close(); err != nil {
			t.Errorf("Serve: %v", err)
		}
		s.Close()
	})
	return &testIGD{s: s, core: core, clock: clock, ts: ts, base: ts.URL}
}

// post sends a SOAP request as upnpc and goupnp do.
func (ti *testIGD) post(t *testing.T, path, soapAction, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", ti.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
	if soapAction != "" {
		req.Header.Set("SOAPAction", soapAction)
	}
	resp, err := ti.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// soapCall builds a request the way goupnp's soap.SOAPClient does.
// noLookup is the tests' resolver: every name is unknown, and nothing
// leaves the machine.
func noLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return nil, &dnsq.RcodeError{Rcode: dnsq.RcodeNXDomain}
}

func soapBody(ns, action string, args ...string) string {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>`)
	b.WriteString(`<u:` + action + ` xmlns:u="` + ns + `">`)
	for i := 0; i+1 < len(args); i += 2 {
		b.WriteString("<" + args[i] + ">" + args[i+1] + "</" + args[i] + ">")
	}
	b.WriteString(`</u:` + action + `></s:Body></s:Envelope>`)
	return b.String()
}

func mustAddr(s string) netip.Addr         { return netip.MustParseAddr(s) }
func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

var cmpAddr = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

// recorder is an httpd.ResponseWriter that keeps the answer, for calling a
// handler directly (fuzz targets).
type recorder struct {
	Code        int
	HeaderMap   httpd.Header
	Body        *bytes.Buffer
	wroteHeader bool
}

func newRecorder() *recorder {
	return &recorder{Code: httpd.StatusOK, HeaderMap: httpd.Header{}, Body: new(bytes.Buffer)}
}

func (r *recorder) Header() httpd.Header { return r.HeaderMap }

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.Code, r.wroteHeader = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.Body.Write(b)
}
