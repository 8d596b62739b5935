package upnpigd

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
	ts    *httptest.Server
	base  string // http://127.0.0.1:port
}

// newTestIGD serves s.Handler(127.0.0.1) on a loopback httptest server.
func newTestIGD(t *testing.T, edit func(*Config)) *testIGD {
	t.Helper()
	clock := &fixedClock{t: time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC)}
	core := newFakeCore(clock.Now)
	cfg := Config{Core: core, IGDv1: true, IGDv2: true, Pinholes: true, UUID: "test", Now: clock.Now, BootID: 7}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler(netip.MustParseAddr("127.0.0.1")))
	t.Cleanup(func() {
		ts.Close()
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
