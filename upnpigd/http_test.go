package upnpigd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestHostHeader: only a LAN address of pcpgw, with the port of the
// connection or without a port, is accepted (DNS rebinding protection:
// no names).
func TestHostHeader(t *testing.T) {
	ti := newTestIGD(t, nil)
	port := ti.base[strings.LastIndexByte(ti.base, ':')+1:]
	for _, tt := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + port, 200},
		{"attacker.example:" + port, 403},
		{"attacker.example", 403},
		{"127.0.0.1", 200},
		{"[::1]", 403},
		{"::1", 403},
		{"127.0.0.1:1", 403},
		{"192.0.2.1:" + port, 403},
		{"[::1]:" + port, 403},
	} {
		req, _ := http.NewRequest("GET", ti.base+"/igd1.xml", nil)
		req.Host = tt.host
		resp, err := ti.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("Host %q: %d, want %d", tt.host, resp.StatusCode, tt.want)
		}
	}
	if st := ti.s.Stats(); st.HTTPBadHost != 7 {
		t.Errorf("HTTPBadHost %d", st.HTTPBadHost)
	}
}

func TestDescriptions(t *testing.T) {
	ti := newTestIGD(t, nil)
	get := func(path string) (int, string) {
		resp, err := ti.ts.Client().Get(ti.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	st, d1 := get("/igd1.xml")
	if st != 200 || !strings.Contains(d1, "<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>") ||
		strings.Contains(d1, ":2</") || strings.Contains(d1, "WANIPv6FirewallControl") {
		t.Errorf("IGD:1 description:\n%s", d1)
	}
	st, d2 := get("/igd2.xml")
	for _, want := range []string{"InternetGatewayDevice:2", "WANDevice:2", "WANConnectionDevice:2", "WANIPConnection:2",
		"WANCommonInterfaceConfig:1", "WANIPv6FirewallControl:1", "<presentationURL>" + ti.base + "/</presentationURL>"} {
		if st != 200 || !strings.Contains(d2, want) {
			t.Errorf("IGD:2 description lacks %s", want)
		}
	}
	for path, want := range map[string][]string{
		"/igd1/WANIPConn1.xml":       {"<name>AddPortMapping</name>", "<name>GetGenericPortMappingEntry</name>", `<stateVariable sendEvents="yes"><name>PortMappingNumberOfEntries</name>`},
		"/igd2/WANIPConn1.xml":       {"<name>AddAnyPortMapping</name>", "<name>GetListOfPortMappings</name>", "<name>DeletePortMappingRange</name>", "<name>SystemUpdateID</name>"},
		"/igd2/WANIPv6Firewall1.xml": {"<name>AddPinhole</name>", "<name>CheckPinholeWorking</name>", "<minimum>1</minimum><maximum>86400</maximum>"},
		"/igd1/WANCommonIFC1.xml":    {"<name>GetTotalBytesSent</name>", "<name>GetCommonLinkProperties</name>"},
	} {
		st, b := get(path)
		for _, w := range want {
			if st != 200 || !strings.Contains(b, w) {
				t.Errorf("%s lacks %s", path, w)
			}
		}
	}
	if st, b := get("/igd1/WANIPConn1.xml"); st != 200 || strings.Contains(b, "AddAnyPortMapping") {
		t.Errorf("IGD:1 SCPD offers IGD:2 actions")
	}
	if st, _ := get("/nope"); st != 404 {
		t.Errorf("unknown path: %d", st)
	}
	resp, _ := ti.ts.Client().Post(ti.base+"/igd1.xml", "text/xml", nil)
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("POST description: %d", resp.StatusCode)
	}
}

// runLoopback runs a whole Server on the loopback interface with
// kernel-chosen ports (no multicast: lo normally lacks it; the namespace
// test covers multicast discovery).
func runLoopback(t *testing.T, edit func(*Config)) (*Server, *fakeCore) {
	t.Helper()
	core := newFakeCore(time.Now)
	cfg := Config{Core: core, Interfaces: []string{"lo"}, IGDv1: true, IGDv2: true, HTTPPort: EphemeralPort, SSDPPort: EphemeralPort, UUID: "lo", Resolve: noLookup}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10 s")
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not start")
	}
	// Ready means listening for HTTP and SSDP.
	if len(s.Addrs()) == 0 || len(s.SSDPAddrs()) == 0 {
		t.Fatalf("Ready but not listening: http %v ssdp %v", s.Addrs(), s.SSDPAddrs())
	}
	return s, core
}

func httpAddr4(t *testing.T, s *Server) netip.AddrPort {
	for _, a := range s.Addrs() {
		if a.Addr().Is4() {
			return a
		}
	}
	t.Fatal("no IPv4 HTTP listener")
	return netip.AddrPort{}
}

// TestRunLoopback: Run listens on the LAN interface's addresses only,
// answers a unicast M-SEARCH with this interface's LOCATION, bounds
// headers, caps connections, and stops cleanly.
func TestRunLoopback(t *testing.T) {
	s, core := runLoopback(t, func(c *Config) { c.MaxConns = 2 })
	for _, a := range s.Addrs() {
		if a.Addr().IsUnspecified() || !a.Addr().IsLoopback() {
			t.Errorf("listener on %v", a)
		}
	}
	h := httpAddr4(t, s)

	c, err := net.Dial("udp", s.SSDPAddrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(upnpcSearchIGD1)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no SSDP answer: %v", err)
	}
	_, hdr := headers(buf[:n])
	if hdr["LOCATION"] != fmt.Sprintf("http://%s/igd1.xml", h) {
		t.Errorf("LOCATION %q, HTTP on %v", hdr["LOCATION"], h)
	}
	resp, err := http.Get(hdr["LOCATION"])
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("description: %v %v", err, resp)
	}
	resp.Body.Close()

	// Headers beyond 8 KiB: 431.
	req, _ := http.NewRequest("GET", hdr["LOCATION"], nil)
	req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("big header: %d", resp.StatusCode)
	}

	// Connection cap (2, this host's): two slow requests hold both slots;
	// a new connection with its whole request is answered, and one of the
	// slow ones is closed for it (issue 18: a host at its cap gives up its
	// own idle connection).
	http.DefaultClient.CloseIdleConnections()
	dial := func(raw string) net.Conn {
		c, err := net.Dial("tcp", h.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, raw)
		return c
	}
	// status reads c's status line ("" if closed without one, "open" if
	// nothing came within wait).
	status := func(c net.Conn, wait time.Duration) string {
		c.SetReadDeadline(time.Now().Add(wait))
		line, err := bufio.NewReader(c).ReadString('\n')
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return "open"
		}
		return strings.TrimSpace(line)
	}
	slow := []net.Conn{dial("GET /igd1.xml HTTP/1.1\r\n"), dial("GET /igd1.xml HTTP/1.1\r\n")}
	get := fmt.Sprintf("GET /igd1.xml HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", h)
	if got := status(dial(get), 5*time.Second); got != "HTTP/1.1 200 OK" {
		t.Errorf("new connection with both slots slow: %q, want 200", got)
	}
	if a, b := status(slow[0], 100*time.Millisecond), status(slow[1], 100*time.Millisecond); (a == "open") == (b == "open") || a+b != "open" {
		t.Errorf("the slow connections after the new one: %q and %q, want one closed, one open", a, b)
	}
	// Both slots held by requests being answered (the core is busy): a
	// new connection gets 503 and is closed at once, never the
	// description, and the refusal is counted.
	core.mu.Lock()
	ask := rawPost(h.String(), ctlIP1, quoted(nsIP1, "GetExternalIPAddress"), soapBody(nsIP1, "GetExternalIPAddress"), -1, "Connection: close\r\n")
	busy := []net.Conn{dial(ask), dial(ask)} // on loopback, queued before the next one
	got := status(dial(get), 5*time.Second)
	core.mu.Unlock()
	if got != "HTTP/1.1 503 Service Unavailable" {
		t.Errorf("new connection with both slots answering: %q, want 503", got)
	}
	for i, c := range busy {
		if got := status(c, 5*time.Second); got != "HTTP/1.1 200 OK" {
			t.Errorf("request %d being answered: %q", i+1, got)
		}
	}
	if s.Stats().HTTPConnsRefused == 0 {
		t.Error("refused connection not counted")
	}
}

func TestNewErrors(t *testing.T) {
	core := newFakeCore(time.Now)
	for _, cfg := range []Config{
		{IGDv1: true},
		{Core: core},
		{Core: core, IGDv1: true, HTTPPort: 70000},
		{Core: core, IGDv1: true, SSDPPort: -7},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	s, err := New(Config{Core: core, IGDv1: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("Run without interfaces accepted")
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("second Run accepted")
	}
	s2, _ := New(Config{Core: core, IGDv1: true, Interfaces: []string{"nonexistent0"}})
	if err := s2.Run(context.Background()); err == nil {
		t.Error("Run on a missing interface accepted")
	}
}

// A config option turns either root device off: its description and
// services are gone.
func TestSingleRoot(t *testing.T) {
	for _, tt := range []struct {
		v1, v2    bool
		have, not string
	}{
		{true, false, "/igd1.xml", "/igd2.xml"},
		{false, true, "/igd2.xml", "/igd1.xml"},
	} {
		ti := newTestIGD(t, func(c *Config) { c.IGDv1, c.IGDv2 = tt.v1, tt.v2 })
		for path, want := range map[string]int{tt.have: 200, tt.not: 404, strings.TrimSuffix(tt.not, ".xml") + "/WANIPConn1.xml": 404} {
			resp, err := ti.ts.Client().Get(ti.base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("v1=%v v2=%v %s: %d, want %d", tt.v1, tt.v2, path, resp.StatusCode, want)
			}
		}
	}
}
