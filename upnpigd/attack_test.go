package upnpigd

// Regression tests for the known attack classes of issue 10 on the UPnP
// front-end (HTTP, SOAP, XML, SSDP, GENA), one test each, named for the
// class. hardening/CLASSES.md maps every class to its test.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/httpd"
	"github.com/pcpgw/pcpgw/mapping"
)

// hostPort is the "127.0.0.1:port" of the test IGD.
func (ti *testIGD) hostPort() string { return strings.TrimPrefix(ti.base, "http://") }

// rawPost builds a SOAP POST as raw bytes with the given Content-Length
// header line (cl < 0: len(body)) and extra header lines (each ending in
// CRLF).
func rawPost(host, path, soapAction, body string, cl int, extra string) string {
	if cl < 0 {
		cl = len(body)
	}
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nSOAPAction: %s\r\nContent-Length: %d\r\n%s\r\n%s",
		path, host, soapAction, cl, extra, body)
}

// rawExchange writes raw on a new connection to addr and reads until the
// server closes the connection or wait passes. closed says whether the
// server ended the connection (EOF or reset) before wait.
func rawExchange(t *testing.T, addr, raw string, wait time.Duration) (got string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	go io.WriteString(c, raw) // the server may answer before reading it all
	b, err := io.ReadAll(c)
	var ne net.Error
	return string(b), !(errors.As(err, &ne) && ne.Timeout())
}

// statuses lists the status codes of the HTTP answers in s, in order.
func statuses(s string) []int {
	var out []int
	for {
		i := strings.Index(s, "HTTP/1.1 ")
		if i < 0 {
			return out
		}
		s = s[i+len("HTTP/1.1 "):]
		if len(s) >= 3 {
			if n, err := strconv.Atoi(s[:3]); err == nil {
				out = append(out, n)
			}
		}
	}
}

// totalAlloc is the bytes allocated by the process so far.
func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// quoted is the SOAPAction of action in service ns, quoted as UDA 1.1 says.
func quoted(ns, action string) string { return `"` + ns + "#" + action + `"` }

// TestAttackLongSOAPAction: over-long SOAPAction headers and action names
// (miniupnpd's stack overflow, CVE-2013-0230) get 401 Invalid Action, or
// 431 when the header is beyond MaxHeaderBytes; an argument with an
// over-long name is ignored (no UPnP name, as miniupnpd skips it); the
// server goes on answering.
func TestAttackLongSOAPAction(t *testing.T) {
	ti := newTestIGD(t, nil)
	good := soapBody(nsIP1, "GetExternalIPAddress")
	long := func(n int) string { return strings.Repeat("A", n) }
	for _, tt := range []struct {
		name, soapAction, body string
		status, code           int
	}{
		{"over-long SOAPAction", `"` + nsIP1 + strings.Repeat("x", 300) + "#GetExternalIPAddress\"", good, 500, 401},
		{"SOAPAction of 7 KiB", `"` + nsIP1 + "#" + long(7<<10) + `"`, good, 500, 401},
		{"action name of 65 bytes", quoted(nsIP1, long(65)), soapBody(nsIP1, long(65)), 500, 401},
		{"action name of 64 bytes (unknown)", quoted(nsIP1, long(64)), soapBody(nsIP1, long(64)), 500, 401},
		{"action element name of 4 KiB", quoted(nsIP1, "GetExternalIPAddress"), soapBody(nsIP1, long(4<<10)), 500, 401},
		{"action element name of 30 KiB", quoted(nsIP1, "GetExternalIPAddress"), soapBody(nsIP1, long(30<<10)), 500, 401},
		{"argument name of 30 KiB", quoted(nsIP1, "GetExternalIPAddress"), soapBody(nsIP1, "GetExternalIPAddress", long(30<<10), "1"), 200, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, body := ti.post(t, ctlIP1, tt.soapAction, tt.body)
			if st != tt.status {
				t.Errorf("HTTP %d, want %d: %.200s", st, tt.status, body)
			}
			if tt.code != 0 {
				if got := faultCode(t, st, body); got != tt.code {
					t.Errorf("code %d, want %d", got, tt.code)
				}
			}
		})
	}
	// Beyond the header limit: raw, since the server answers (and closes)
	// before the client has sent it all, which net/http reports as a
	// write error.
	got, closed := rawExchange(t, ti.hostPort(), rawPost(ti.hostPort(), ctlIP1, `"`+nsIP1+"#"+long(64<<10)+`"`, good, -1, ""), 5*time.Second)
	if sts := statuses(got); !closed || len(sts) != 1 || sts[0] != 431 {
		t.Errorf("SOAPAction beyond the header limit: %v (closed %v), want 431", sts, closed)
	}
	if st, body := ti.post(t, ctlIP1, quoted(nsIP1, "GetExternalIPAddress"), good); st != 200 {
		t.Errorf("a good request after the attack: %d %s", st, body)
	}
	if len(ti.core.reqs) != 0 {
		t.Errorf("the core was asked %d times", len(ti.core.reqs))
	}
}

// TestAttackSOAPActionUnquoted: SOAPAction without its quotes is accepted
// (upnpc and others send it so; UDA 1.1 §3.2.1 wants them), half-quoted,
// single-quoted or empty values are 401 Invalid Action.
func TestAttackSOAPActionUnquoted(t *testing.T) {
	ti := newTestIGD(t, nil)
	good := soapBody(nsIP1, "GetExternalIPAddress")
	for _, tt := range []struct {
		name, soapAction string
		status           int
	}{
		{"unquoted SOAPAction", nsIP1 + "#GetExternalIPAddress", 200},
		{"quoted", quoted(nsIP1, "GetExternalIPAddress"), 200},
		{"no SOAPAction", "", 500},
		{"leading quote only", `"` + nsIP1 + "#GetExternalIPAddress", 500},
		{"trailing quote only", nsIP1 + `#GetExternalIPAddress"`, 500},
		{"single quotes", "'" + nsIP1 + "#GetExternalIPAddress'", 500},
		{"one quote", `"`, 500},
		{"empty quotes", `""`, 500},
		{"quotes inside", `"` + nsIP1 + `"#"GetExternalIPAddress"`, 500},
		{"spaces inside the quotes", `" ` + nsIP1 + `#GetExternalIPAddress "`, 500},
		{"only a hash", "#", 500},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, body := ti.post(t, ctlIP1, tt.soapAction, good)
			if st != tt.status {
				t.Fatalf("HTTP %d, want %d: %s", st, tt.status, body)
			}
			if st == 200 {
				if _, out := respArgs(t, body); out["NewExternalIPAddress"] != "203.0.113.1" {
					t.Errorf("answer %v", out)
				}
			} else if code := faultCode(t, st, body); code != 401 {
				t.Errorf("code %d, want 401", code)
			}
		})
	}
}

// TestAttackSOAPArgsMissingEmptyDuplicateOversized: AddPortMapping with
// each argument missing, empty, given twice and longer than maxArgLen,
// and with more than maxArgs arguments, never crashes (miniupnpd's NULL
// dereferences from missing arguments, CVE-2013-0229 and kin). The
// arguments are read as miniupnpd reads them (issue 17): a missing or
// empty NewRemoteHost, NewInternalClient, NewEnabled, description or
// lease has its default, the last of two equal arguments wins,
// arguments beyond maxArgs are ignored; a missing external port,
// protocol or internal port, an unknown protocol and every oversized
// argument are refused (402; empty external port 716) and nothing
// reaches the core.
func TestAttackSOAPArgsMissingEmptyDuplicateOversized(t *testing.T) {
	names := []string{"NewRemoteHost", "NewExternalPort", "NewProtocol", "NewInternalPort", "NewInternalClient", "NewEnabled", "NewPortMappingDescription", "NewLeaseDuration"}
	type tc struct {
		name string
		body string
		code int // 0: the action succeeds
	}
	var tests []tc
	env := func(args ...string) string { return soapBody(nsIP1, "AddPortMapping", args...) }
	needed := map[string]bool{"NewExternalPort": true, "NewProtocol": true, "NewInternalPort": true}
	for _, n := range names {
		missing, empty, differing := 0, 0, 0
		if needed[n] {
			missing, empty = 402, 402
		}
		switch n {
		case "NewExternalPort":
			empty = 716 // 0: a wildcard
		case "NewProtocol", "NewInternalClient", "NewRemoteHost":
			differing = 402 // "9" is neither TCP nor UDP, nor an IPv4 address
		}
		tests = append(tests,
			tc{"missing " + n, env(addArgs(n, "<omit>")...), missing},
			tc{"empty " + n, env(addArgs(n, "")...), empty},
			tc{"duplicated " + n, env(append(addArgs(), n, addArgs()[indexOf(addArgs(), n)+1])...), 0},
			tc{"duplicated " + n + " differing", env(append(addArgs(), n, "9")...), differing},
			tc{"oversized " + n, env(addArgs(n, strings.Repeat("9", maxArgLen+1))...), 402},
		)
	}
	many := addArgs()
	for i := len(many) / 2; i <= maxArgs; i++ {
		many = append(many, fmt.Sprintf("X%d", i), "1")
	}
	tests = append(tests,
		tc{"too many arguments", env(many...), 0},
		tc{"argument of 60 KiB", env(addArgs("NewPortMappingDescription", strings.Repeat("d", 60<<10))...), 402},
		tc{"no arguments", env(), 402},
		tc{"all present (control)", env(addArgs()...), 0},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ti := newTestIGD(t, nil)
			st, body := ti.post(t, ctlIP1, quoted(nsIP1, "AddPortMapping"), tt.body)
			if tt.code == 0 {
				if st != 200 || len(ti.core.maps) != 1 {
					t.Errorf("HTTP %d, %d mappings: %s", st, len(ti.core.maps), body)
				}
				return
			}
			if code := faultCode(t, st, body); code != tt.code {
				t.Errorf("code %d (HTTP %d), want %d\n%s", code, st, tt.code, body)
			}
			if len(ti.core.reqs) != 0 {
				t.Errorf("the core was asked: %+v", ti.core.reqs)
			}
		})
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestAttackXMLEntities: documents with a DTD (internal, external and
// parameter entities, billion laughs) or with references to undeclared
// entities are 401 Invalid Action; nothing is expanded or fetched. The
// XML predefined entities and character references are ordinary text.
func TestAttackXMLEntities(t *testing.T) {
	ti := newTestIGD(t, nil)
	good := soapBody(nsIP1, "GetExternalIPAddress")
	afterDecl := good[len(`<?xml version="1.0" encoding="UTF-8"?>`)+1:]
	laughs := `<!DOCTYPE s:Envelope [<!ENTITY a "aaaaaaaaaa">`
	for i, prev := 'b', 'a'; i <= 'j'; i, prev = i+1, i {
		laughs += fmt.Sprintf(`<!ENTITY %c "%s">`, i, strings.Repeat("&"+string(prev)+";", 10))
	}
	laughs += `]>`
	spec := quoted(nsIP1, "GetSpecificPortMappingEntry")
	for _, tt := range []struct {
		name, soapAction, body string
	}{
		{"DTD", quoted(nsIP1, "GetExternalIPAddress"), `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>` + afterDecl},
		{"entity", spec, soapBody(nsIP1, "GetSpecificPortMappingEntry", "NewRemoteHost", "&xxe;", "NewExternalPort", "1", "NewProtocol", "TCP")},
		{"billion laughs", spec, `<?xml version="1.0"?>` + laughs + strings.Replace(soapBody(nsIP1, "GetSpecificPortMappingEntry", "NewRemoteHost", "&j;", "NewExternalPort", "1", "NewProtocol", "TCP"), `<?xml version="1.0" encoding="UTF-8"?>`, "", 1)},
		{"external entity", spec, `<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + strings.Replace(soapBody(nsIP1, "GetSpecificPortMappingEntry", "NewRemoteHost", "&xxe;", "NewExternalPort", "1", "NewProtocol", "TCP"), `<?xml version="1.0" encoding="UTF-8"?>`, "", 1)},
		{"parameter entity", quoted(nsIP1, "GetExternalIPAddress"), `<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY % p SYSTEM "http://192.0.2.77/x.dtd"> %p;]>` + afterDecl},
		{"DTD inside the body", quoted(nsIP1, "GetExternalIPAddress"), strings.Replace(good, "<s:Body>", `<s:Body><!DOCTYPE x>`, 1)},
		{"processing instruction", quoted(nsIP1, "GetExternalIPAddress"), strings.Replace(good, "<s:Body>", `<s:Body><?php evil?>`, 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			st, body := ti.post(t, ctlIP1, tt.soapAction, tt.body)
			if code := faultCode(t, st, body); code != 401 {
				t.Errorf("code %d (HTTP %d), want 401\n%s", code, st, body)
			}
			if strings.Contains(body, "root:") || strings.Contains(body, "aaaa") {
				t.Errorf("entity expanded into the answer:\n%s", body)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	if len(ti.core.reqs) != 0 {
		t.Errorf("the core was asked: %+v", ti.core.reqs)
	}
	// Predefined entities and character references are text.
	st, body := ti.post(t, ctlIP1, quoted(nsIP1, "AddPortMapping"), soapBody(nsIP1, "AddPortMapping", addArgs("NewPortMappingDescription", "a&amp;b&lt;&#x43;&#68;")...))
	if st != 200 || len(ti.core.maps) != 1 || ti.core.maps[0].Description != "a&b<CD" {
		t.Errorf("predefined entities: HTTP %d %+v\n%s", st, ti.core.maps, body)
	}
}

// TestAttackXMLDeepNesting: documents nested deeper than maxXMLDepth,
// wherever the nesting is (header, body, argument) and closed or not, are
// 401 Invalid Action at once.
func TestAttackXMLDeepNesting(t *testing.T) {
	ti := newTestIGD(t, nil)
	good := soapBody(nsIP1, "GetExternalIPAddress")
	deep := func(n int) string { return strings.Repeat("<b>", n) + strings.Repeat("</b>", n) }
	for _, tt := range []struct{ name, body string }{
		{"deep", soapBody(nsIP1, "GetExternalIPAddress", "a", deep(20))},
		{"9000 levels in an argument", soapBody(nsIP1, "GetExternalIPAddress", "a", deep(9000))},
		{"9000 unclosed levels", soapBody(nsIP1, "GetExternalIPAddress", "a", strings.Repeat("<b>", 9000))},
		{"deep in the header", strings.Replace(good, "<s:Body>", "<s:Header>"+deep(9000)+"</s:Header><s:Body>", 1)},
		{"deep beside the action", strings.Replace(good, "</s:Body>", deep(9000)+"</s:Body>", 1)},
		{"deep without an envelope", deep(9000)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			st, body := ti.post(t, ctlIP1, quoted(nsIP1, "GetExternalIPAddress"), tt.body)
			if code := faultCode(t, st, body); code != 401 {
				t.Errorf("code %d (HTTP %d), want 401", code, st)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	// maxXMLDepth levels are fine: Envelope, Body, action, argument.
	if st, _ := ti.post(t, ctlIP1, quoted(nsIP1, "GetExternalIPAddress"), good); st != 200 {
		t.Errorf("good request: %d", st)
	}
}

// TestAttackXMLManyAttributes: an element with more than maxXMLAttrs
// attributes (plain, namespace declarations, duplicated names) anywhere in
// the document is 401 Invalid Action; the few attributes control points
// send (xmlns, s:encodingStyle) are fine.
func TestAttackXMLManyAttributes(t *testing.T) {
	ti := newTestIGD(t, nil)
	good := soapBody(nsIP1, "GetExternalIPAddress")
	attrs := func(n int, f string) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, f, i)
		}
		return b.String()
	}
	for _, tt := range []struct{ name, body string }{
		{"5000 attributes on the action", strings.Replace(good, `<u:GetExternalIPAddress `, `<u:GetExternalIPAddress `+attrs(5000, ` a%d="x"`), 1)},
		{"2000 namespace declarations on the envelope", strings.Replace(good, `<s:Envelope `, `<s:Envelope `+attrs(2000, ` xmlns:n%d="urn:x"`), 1)},
		{"the same attribute 5000 times", strings.Replace(good, `<s:Body>`, `<s:Body `+strings.Repeat(` a="x"`, 5000)+`>`, 1)},
		{"attributes on an argument", soapBody(nsIP1, "GetExternalIPAddress", `a`+attrs(maxXMLAttrs+1, ` b%d="x"`), "1")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			st, body := ti.post(t, ctlIP1, quoted(nsIP1, "GetExternalIPAddress"), tt.body)
			if code := faultCode(t, st, body); code != 401 {
				t.Errorf("code %d (HTTP %d), want 401", code, st)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	if st, _ := ti.post(t, ctlIP1, quoted(nsIP1, "GetExternalIPAddress"), good); st != 200 {
		t.Errorf("good request: %d", st)
	}
}

// TestAttackBodyTooLarge: bodies beyond maxBodyBytes get 413, whether the
// Content-Length says so (answered before the body is read) or a chunked
// body grows past it; several 10 MB bodies leave the server's allocations
// small: it never buffers more than the limit.
func TestAttackBodyTooLarge(t *testing.T) {
	ti := newTestIGD(t, nil)
	good := soapBody(nsIP1, "GetExternalIPAddress")
	chunk := []byte(strings.Repeat("x", 64<<10))
	chunkHead := []byte(fmt.Sprintf("%x\r\n", len(chunk)))
	// send sends a body of size bytes and returns the answer's status
	// line; the server may answer (and close) before the body is sent.
	send := func(t *testing.T, size int, chunked bool) string {
		c, err := net.Dial("tcp", ti.hostPort())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		te := fmt.Sprintf("Content-Length: %d\r\n", size)
		if chunked {
			te = "Transfer-Encoding: chunked\r\n"
		}
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nSOAPAction: %s\r\n%s\r\n", ctlIP1, ti.hostPort(), quoted(nsIP1, "GetExternalIPAddress"), te)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the body, until the server stops taking it
			defer wg.Done()
			for sent := 0; sent < size; sent += len(chunk) {
				if chunked {
					if _, err := c.Write(chunkHead); err != nil {
						return
					}
				}
				if _, err := c.Write(chunk); err != nil {
					return
				}
				if chunked {
					if _, err := c.Write([]byte("\r\n")); err != nil {
						return
					}
				}
			}
		}()
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close() // ends the writer
		wg.Wait()
		return line
	}
	// Just beyond the limit (the old "too big" case of TestMalformedRequests).
	for _, chunked := range []bool{false, true} {
		if line := send(t, 70<<10, chunked); !strings.HasPrefix(line, "HTTP/1.1 413 ") {
			t.Errorf("70 KiB body (chunked %v): %q, want 413", chunked, line)
		}
	}
	const size = 10 << 20
	before := totalAlloc()
	for i := range 3 {
		for _, chunked := range []bool{false, true} {
			if line := send(t, size, chunked); !strings.HasPrefix(line, "HTTP/1.1 413 ") {
				t.Errorf("10 MB body %d (chunked %v): %q, want 413", i, chunked, line)
			}
		}
	}
	grown := totalAlloc() - before
	t.Logf("6 bodies of 10 MB: %d KiB allocated in the process", grown>>10)
	// Each refused body costs at most maxBodyBytes (the chunked one is read
	// up to the limit) and a connection's buffers: 6 x 64 KiB plus change.
	if grown > 4<<20 {
		t.Errorf("%d bytes allocated for 6 refused 10 MB bodies: the body is buffered", grown)
	}
	if st, _ := ti.post(t, ctlIP1, quoted(nsIP1, "GetExternalIPAddress"), good); st != 200 {
		t.Errorf("good request afterwards: %d", st)
	}
}

// TestAttackContentLengthShort: a Content-Length shorter than the body
// sent. The body as declared is cut and does not parse (401 Invalid
// Action); what follows it on the connection is read as the next request,
// which starts with the rest of the cut body: 400 and the connection is
// closed, so the complete AddPortMapping request hidden behind it is never
// executed (request smuggling), and nothing is mapped. A new connection is
// answered.
func TestAttackContentLengthShort(t *testing.T) {
	ti := newTestIGD(t, nil)
	host := ti.hostPort()
	smuggled := rawPost(host, ctlIP1, quoted(nsIP1, "AddPortMapping"), soapBody(nsIP1, "AddPortMapping", addArgs()...), -1, "")
	for _, tt := range []struct {
		name string
		raw  string
	}{
		// The envelope, cut where the declared length ends, then a
		// second request in what the server must treat as the rest of
		// the body.
		{"cut envelope", func() string {
			env := soapBody(nsIP1, "GetExternalIPAddress")
			return rawPost(host, ctlIP1, quoted(nsIP1, "GetExternalIPAddress"), env+"\r\n"+smuggled, len(env)-20, "")
		}()},
		// Content-Length 0 on a POST that carries a body.
		{"zero", rawPost(host, ctlIP1, quoted(nsIP1, "AddPortMapping"), soapBody(nsIP1, "AddPortMapping", addArgs("NewExternalPort", "18081")...)+smuggled, 0, "")},
		// The declared length ends inside the first request's own
		// (valid-looking) AddPortMapping, right before its last element.
		{"cut action", func() string {
			env := soapBody(nsIP1, "AddPortMapping", addArgs("NewExternalPort", "18082")...)
			return rawPost(host, ctlIP1, quoted(nsIP1, "AddPortMapping"), env+smuggled, strings.Index(env, "</s:Body>"), "")
		}()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			got, closed := rawExchange(t, host, tt.raw, 5*time.Second)
			sts := statuses(got)
			if !closed || time.Since(start) > 3*time.Second {
				t.Errorf("connection left open (%v)", time.Since(start))
			}
			if len(sts) == 0 || sts[0] != 500 || faultCode(t, 500, got[strings.Index(got, "\r\n\r\n")+4:]) != 401 {
				t.Errorf("answers %v, want 401 Invalid Action first:\n%s", sts, got)
			}
			for _, st := range sts[1:] {
				if st == 200 {
					t.Errorf("answers %v: the rest of the body was served as a request:\n%s", sts, got)
				}
			}
			if len(ti.core.maps) != 0 || len(ti.core.reqs) != 0 {
				t.Errorf("a smuggled request was executed: %+v", ti.core.reqs)
			}
		})
	}
	if st, _ := ti.post(t, ctlIP1, quoted(nsIP1, "GetExternalIPAddress"), soapBody(nsIP1, "GetExternalIPAddress")); st != 200 {
		t.Errorf("new connection: %d", st)
	}
}

// serveShort serves ti's handler on another loopback listener with a read
// timeout of readTO, so that tests of lying clients need not wait the
// daemon's 10 s.
func serveShort(t *testing.T, ti *testIGD, readTO time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httpd.Server{Handler: ti.s.Handler(netip.MustParseAddr("127.0.0.1")), MaxHeaderBytes: maxHeaderBytes, MaxBodyBytes: maxBodyBytes,
		ReadTimeout: readTO, WriteTimeout: writeTimeout, IdleTimeout: idleTimeout}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, httpd.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestAttackContentLengthLong: a Content-Length longer than the body sent
// (a client waiting for an answer to a body that never ends). The server
// waits at most its read timeout, then closes the connection without
// running the action; meanwhile, and afterwards, new connections are
// answered.
func TestAttackContentLengthLong(t *testing.T) {
	ti := newTestIGD(t, nil)
	const readTO = 500 * time.Millisecond
	addr := serveShort(t, ti, readTO)
	env := soapBody(nsIP1, "AddPortMapping", addArgs()...)
	for _, extra := range []int{1, 100, maxBodyBytes - len(env)} {
		t.Run(strconv.Itoa(extra), func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			io.WriteString(c, rawPost(addr, ctlIP1, quoted(nsIP1, "AddPortMapping"), env, len(env)+extra, ""))
			// Another client is served while this one hangs.
			g, closed := rawExchange(t, addr, rawPost(addr, ctlIP1, quoted(nsIP1, "GetExternalIPAddress"), soapBody(nsIP1, "GetExternalIPAddress"), -1, "Connection: close\r\n"), 2*time.Second)
			if sts := statuses(g); !closed || len(sts) != 1 || sts[0] != 200 {
				t.Errorf("other client while the body is missing: %v %q", closed, g)
			}
			c.SetReadDeadline(time.Now().Add(readTO + 3*time.Second))
			got, err := io.ReadAll(c)
			took := time.Since(start)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open after %v (read timeout %v)", took, readTO)
			}
			if took < readTO-50*time.Millisecond || took > readTO+2*time.Second {
				t.Errorf("closed after %v, read timeout %v", took, readTO)
			}
			if strings.Contains(string(got), "200 OK") {
				t.Errorf("answered %q", got)
			}
			if len(ti.core.reqs) != 0 {
				t.Errorf("the action ran: %+v", ti.core.reqs)
			}
		})
	}
}

// TestAttackChunkedBody: httpd takes chunked bodies (doc: "Content-Length
// (or chunked)"): an AddPortMapping sent in chunks, with chunk extensions
// and a trailer, maps exactly what it says. Malformed chunking gets 400,
// a chunk beyond the body limit 413, chunk lines beyond 64 KiB 431, both
// Content-Length and Transfer-Encoding 400 (smuggling), other transfer
// codings 501; none of them runs the action.
func TestAttackChunkedBody(t *testing.T) {
	ti := newTestIGD(t, nil)
	host := ti.hostPort()
	env := soapBody(nsIP1, "AddPortMapping", addArgs("NewExternalPort", "18090", "NewInternalPort", "8090", "NewPortMappingDescription", "chunked")...)
	head := func(te string) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nSOAPAction: %s\r\n%sConnection: close\r\n\r\n", ctlIP1, host, quoted(nsIP1, "AddPortMapping"), te)
	}
	var chunked strings.Builder
	for i := 0; i < len(env); i += 100 {
		part := env[i:min(i+100, len(env))]
		fmt.Fprintf(&chunked, "%x;ext=%d\r\n%s\r\n", len(part), i, part)
	}
	chunked.WriteString("0\r\nX-Trailer: 1\r\n\r\n")
	got, _ := rawExchange(t, host, head("Transfer-Encoding: chunked\r\n")+chunked.String(), 5*time.Second)
	if sts := statuses(got); len(sts) != 1 || sts[0] != 200 {
		t.Fatalf("chunked AddPortMapping: %v\n%s", sts, got)
	}
	if len(ti.core.maps) != 1 {
		t.Fatalf("%d mappings", len(ti.core.maps))
	}
	if m := ti.core.maps[0]; m.External.Port() != 18090 || m.Internal != mustAddrPort("127.0.0.1:8090") || m.Proto != mapping.TCP || m.Description != "chunked" {
		t.Errorf("mapping %+v", m)
	}
	ti.core.reqs = nil

	body := env[:50]
	for _, tt := range []struct {
		name, te, body string
		want           int
	}{
		{"bad chunk size", "Transfer-Encoding: chunked\r\n", "zz\r\n" + body + "\r\n0\r\n\r\n", 400},
		{"size overflow", "Transfer-Encoding: chunked\r\n", "1ffffffffffffffff\r\n" + body, 400},
		{"negative size", "Transfer-Encoding: chunked\r\n", "-32\r\n" + body, 400},
		{"4 GiB chunk", "Transfer-Encoding: chunked\r\n", "ffffffff\r\n" + body, 413},
		{"chunks past the limit", "Transfer-Encoding: chunked\r\n", strings.Repeat("8000\r\n"+strings.Repeat("x", 0x8000)+"\r\n", 3) + "0\r\n\r\n", 413},
		{"no CRLF after a chunk", "Transfer-Encoding: chunked\r\n", "32\r\n" + body + "XX0\r\n\r\n", 400},
		{"extension of 70 KiB", "Transfer-Encoding: chunked\r\n", "32;" + strings.Repeat("e", 70<<10) + "\r\n" + body + "\r\n0\r\n\r\n", 431},
		{"endless trailer", "Transfer-Encoding: chunked\r\n", "32\r\n" + body + "\r\n0\r\n" + strings.Repeat("X-T: 1\r\n", 10000) + "\r\n", 431},
		{"both lengths", fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n", len(env)), chunked.String(), 400},
		{"gzip, chunked", "Transfer-Encoding: gzip, chunked\r\n", chunked.String(), 501},
		{"chunked, gzip", "Transfer-Encoding: chunked, gzip\r\n", chunked.String(), 501},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, closed := rawExchange(t, host, head(tt.te)+tt.body, 5*time.Second)
			if sts := statuses(got); !closed || len(sts) != 1 || sts[0] != tt.want {
				t.Errorf("answers %v (closed %v), want %d:\n%.300s", sts, closed, tt.want, got)
			}
			if len(ti.core.reqs) != 0 {
				t.Errorf("the action ran: %+v", ti.core.reqs)
			}
		})
	}
}

// TestAttackHeaderFlood: too many header fields, one huge field, and an
// endless stream of header lines get 431 and the connection is closed
// after at most MaxHeaderBytes were read; the process allocates little
// while a client sends 10 MB of headers.
func TestAttackHeaderFlood(t *testing.T) {
	ti := newTestIGD(t, nil)
	host := ti.hostPort()
	get := "GET /igd1.xml HTTP/1.1\r\nHost: " + host + "\r\n"
	fields := func(n int, f string) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, f, i)
		}
		return b.String()
	}
	for _, tt := range []struct{ name, raw string }{
		{"200 fields", get + fields(200, "X-%d: v\r\n") + "\r\n"},
		{"one field of 16 KiB", get + "X-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n"},
		{"one field repeated 3000 times", get + strings.Repeat("X: a\r\n", 3000) + "\r\n"},
		{"request line of 16 KiB", "GET /" + strings.Repeat("a", 16<<10) + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"},
		{"line without end", get + "X: " + strings.Repeat("a", 1<<20)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, closed := rawExchange(t, host, tt.raw, 5*time.Second)
			if sts := statuses(got); !closed || len(sts) != 1 || sts[0] != 431 {
				t.Errorf("answers %v (closed %v), want 431:\n%.300s", sts, closed, got)
			}
		})
	}
	// 10 MB of header lines, several times over.
	line := []byte(strings.Repeat("X-Flood: "+strings.Repeat("f", 50)+"\r\n", 1000))
	before := totalAlloc()
	for range 3 {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, get)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent := 0; sent < 10<<20; sent += len(line) {
				if _, err := c.Write(line); err != nil {
					return
				}
			}
		}()
		status, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		wg.Wait()
		if !strings.HasPrefix(status, "HTTP/1.1 431 ") {
			t.Errorf("10 MB of headers: %q, want 431", status)
		}
	}
	grown := totalAlloc() - before
	t.Logf("3 floods of 10 MB of headers: %d KiB allocated in the process", grown>>10)
	if grown > 2<<20 {
		t.Errorf("%d bytes allocated for 3 header floods: headers are buffered beyond the limit", grown)
	}
	resp, err := ti.ts.Client().Get(ti.base + "/igd1.xml")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("good request afterwards: %d", resp.StatusCode)
	}
}

// TestAttackSSDPTruncated: every truncation of real M-SEARCH requests,
// and empty or one-byte datagrams, are ignored unless what is left is
// still a complete request (the ST line whole); nothing panics. Over a
// real socket the responder goes on answering after them.
func TestAttackSSDPTruncated(t *testing.T) {
	s := testSSDPServer(t, true, true)
	src := netip.MustParseAddrPort("192.0.2.100:40000")
	lan := netip.MustParseAddr("192.0.2.1")
	now := time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC)
	for _, full := range [][]byte{upnpcSearchIGD1, upnpcSearchIP1, goupnpSearchIGD2} {
		want, _ := parseMSearch(full)
		for n := 0; n < len(full); n++ {
			b := append([]byte(nil), full[:n]...) // a copy: the parser must not read past it
			rs, _ := s.searchReplies(src, lan, 5000, lanPrefixes, b, now, nil)
			for _, r := range rs {
				if _, h := headers(r); h["ST"] != want.ST {
					t.Errorf("%q cut at %d: answered ST %q", full, n, h["ST"])
				}
			}
		}
	}

	srv, _ := runLoopback(t, nil)
	c, err := net.Dial("udp", srv.SSDPAddrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := srv.Stats().SSDPMalformed
	sent := 0
	for _, b := range [][]byte{{}, {'M'}, []byte("M-SEARCH"), []byte("M-SEARCH * HTTP/1.1"), upnpcSearchIGD1[:40], upnpcSearchIGD1[:len(upnpcSearchIGD1)-30]} {
		c.Write(b)
		sent++
	}
	lab := time.Now().Add(5 * time.Second)
	for srv.Stats().SSDPMalformed < before+uint64(sent) && time.Now().Before(lab) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := srv.Stats().SSDPMalformed - before; got != uint64(sent) {
		t.Errorf("%d truncated datagrams counted as malformed, want %d", got, sent)
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 2048)
	if n, err := c.Read(buf); err == nil {
		t.Errorf("answered a truncated datagram: %q", buf[:n])
	}
	c.Write(upnpcSearchIGD1)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err != nil {
		t.Errorf("no answer to a complete search after the truncated ones: %v", err)
	}
}

// TestAttackSSDPMX: an M-SEARCH without MX is answered at once (unicast
// search), MX above ssdpMaxMX is capped to it, and negative, malformed or
// overflowing MX values are ignored. A multicast flood with large MX
// keeps at most maxPendingReply answers waiting (bounded goroutines);
// shutting down drops them at once.
func TestAttackSSDPMX(t *testing.T) {
	msearch := func(mx string) []byte {
		b := "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
		if mx != "<none>" {
			b += "MX: " + mx + "\r\n"
		}
		return []byte(b + "\r\n")
	}
	for _, tt := range []struct {
		mx   string
		want int // -2: ignored
	}{
		{"<none>", -1}, {"0", 0}, {"1", 1}, {"5", 5}, {"6", 5}, {"120", 5}, {"2147483648", 5},
		{"99999999999999999999999", -2}, {"-1", -2}, {"-99999999999999999999", -2}, {"", -2}, {"0x10", -2}, {"1.5", -2}, {"+3", 3}, {"3 3", -2},
	} {
		s := testSSDPServer(t, true, false)
		rs, mx := s.searchReplies(netip.MustParseAddrPort("192.0.2.100:40000"), netip.MustParseAddr("192.0.2.1"), 5000, lanPrefixes, msearch(tt.mx), time.Now(), nil)
		switch {
		case tt.want == -2 && len(rs) != 0:
			t.Errorf("MX %q answered", tt.mx)
		case tt.want != -2 && (len(rs) != 1 || mx != tt.want):
			t.Errorf("MX %q: %d answers, MX %d, want %d", tt.mx, len(rs), mx, tt.want)
		}
	}

	// The multicast path: answers wait a random time within MX.
	s := testSSDPServer(t, true, false)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	sinkAddr := netip.MustParseAddrPort(sink.LocalAddr().String())
	si := &ssdpIf{addr: netip.MustParseAddr("127.0.0.1"), prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, conn: conn, httpPort: 5000}
	sd := &ssdpServer{s: s, rl: newRateLimiter(ratePerSource, rateAll, rateSources)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	goBefore := runtime.NumGoroutine()
	for i := range 1000 {
		// Many sources, so that the byte limit does not stop them first.
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), sinkAddr.Port()) // never 127.0.0.0, the network address
		sd.handle(ctx, si, src, msearch("120"), true)
	}
	if p := sd.pending.Load(); p > maxPendingReply {
		t.Errorf("%d answers waiting, cap %d", p, maxPendingReply)
	}
	if g := runtime.NumGoroutine() - goBefore; g > maxPendingReply+5 {
		t.Errorf("%d more goroutines for delayed answers, cap %d", g, maxPendingReply)
	}
	// Every search was either refused for want of a place, or waits, or
	// (a short random delay) was answered already.
	if st := s.Stats(); st.SSDPRateLimited+st.SSDPReplies < 1000-maxPendingReply {
		t.Errorf("SSDPRateLimited %d, %d answered, after 1000 searches with %d places", st.SSDPRateLimited, st.SSDPReplies, maxPendingReply)
	}
	start := time.Now()
	cancel()
	sd.wg.Wait()
	if d := time.Since(start); d > time.Second {
		t.Errorf("waiting answers held the shutdown %v", d)
	}
	if p := sd.pending.Load(); p != 0 {
		t.Errorf("%d answers still pending", p)
	}
	// MX 0 on the group: answered at once.
	sd.handle(context.Background(), si, sinkAddr, msearch("0"), true)
	sink.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	if _, err := sink.Read(buf); err != nil {
		t.Errorf("MX 0 search not answered at once: %v", err)
	}
}

// TestAttackSSDPNonLANSource: M-SEARCH from outside the LAN prefixes, and
// from addresses inside them that no host has (network and broadcast
// addresses), multicast, unspecified or port 0 sources get no answer (they
// would reflect answers at a victim or at the whole link) and are counted
// as foreign. (pcpgw's own LAN address stays a valid source: programs on
// the router search for it too; the kernel drops such a source coming in
// from the link as a martian.)
func TestAttackSSDPNonLANSource(t *testing.T) {
	s := testSSDPServer(t, true, true)
	lan := netip.MustParseAddr("192.0.2.1")
	now := time.Now()
	for _, src := range []string{
		"203.0.113.50:1900", "100.64.0.1:40000", "0.0.0.0:40000", "255.255.255.255:40000",
		"192.0.2.255:40000", "192.0.2.0:40000", "239.255.255.250:1900", "224.0.0.1:40000",
		"192.0.2.100:0", "[::ffff:203.0.113.50]:1900", "[2001:db8:ff::1]:40000", "[fe80::1]:40000", "[::]:40000",
	} {
		before := s.Stats().SSDPForeign
		rs, _ := s.searchReplies(netip.MustParseAddrPort(src), lan, 5000, lanPrefixes, upnpcSearchIGD1, now, nil)
		if len(rs) != 0 {
			t.Errorf("source %s answered", src)
		}
		if s.Stats().SSDPForeign != before+1 {
			t.Errorf("source %s not counted as foreign", src)
		}
	}
	// IPv6: the prefix's subnet-router anycast address, and multicast.
	pfx6 := []netip.Prefix{netip.MustParsePrefix("2001:db8:1::/64")}
	for _, src := range []string{"[2001:db8:1::]:40000", "[ff02::1%l0]:40000", "[ff02::c%l0]:1900"} {
		if rs, _ := s.searchReplies(netip.MustParseAddrPort(src), netip.MustParseAddr("2001:db8:1::1"), 5000, pfx6, upnpcSearchIGD1, now, nil); len(rs) != 0 {
			t.Errorf("source %s answered", src)
		}
	}
	// A LAN host (control) is answered.
	if rs, _ := s.searchReplies(netip.MustParseAddrPort("192.0.2.100:40000"), lan, 5000, lanPrefixes, upnpcSearchIGD1, now, nil); len(rs) != 1 {
		t.Errorf("LAN host: %d answers", len(rs))
	}
	if rs, _ := s.searchReplies(netip.MustParseAddrPort("[2001:db8:1::100]:40000"), netip.MustParseAddr("2001:db8:1::1"), 5000, pfx6, upnpcSearchIGD1, now, nil); len(rs) != 1 {
		t.Errorf("IPv6 LAN host: %d answers", len(rs))
	}
}

// TestAttackSSDPAmplification: one source floods the real responder with
// ssdp:all searches (each answered by 19 datagrams, about 6.4 KB) for 2 s.
// What it is sent stays within the per-source token bucket: at most
// ratePerSource.burst plus ratePerSource.rate per second of flood, both as
// received and as counted by the server (datagrams times the smallest
// answer).
func TestAttackSSDPAmplification(t *testing.T) {
	srv, _ := runLoopback(t, nil)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadBuffer(4 << 20)
	dst := net.UDPAddrFromAddrPort(srv.SSDPAddrs()[0])
	search := []byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nST: ssdp:all\r\n\r\n")

	// The smallest answer datagram to this source.
	rs, _ := srv.searchReplies(netip.MustParseAddrPort(c.LocalAddr().String()), srv.SSDPAddrs()[0].Addr(), httpAddr4(t, srv).Port(), []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, search, time.Now(), nil)
	minDatagram := 1 << 20
	for _, r := range rs {
		minDatagram = min(minDatagram, len(r))
	}

	var received atomic.Int64
	var last time.Time // of the last answer; read after done
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			last = time.Now()
			received.Add(int64(n))
		}
	}()
	repliesBefore := srv.Stats().SSDPReplies
	start := time.Now()
	sentBytes := 0
	for time.Since(start) < 2*time.Second {
		for range 20 {
			c.WriteTo(search, dst)
			sentBytes += len(search)
		}
		time.Sleep(2 * time.Millisecond)
	}
	flood := time.Since(start)
	<-done // 500 ms without an answer
	replies := srv.Stats().SSDPReplies - repliesBefore
	// Searches still queued when the loop ends are handled (and given
	// tokens) later: the window is up to the last answer.
	window := max(flood, last.Sub(start))
	bound := ratePerSource.burst + ratePerSource.rate*window.Seconds()
	t.Logf("flood of %v (answers for %v): %d bytes of searches in, %d bytes of answers received, %d datagrams sent (>= %d bytes), bound %.0f",
		flood, window, sentBytes, received.Load(), replies, int(replies)*minDatagram, bound)
	if float64(received.Load()) > bound {
		t.Errorf("received %d bytes, bound %.0f", received.Load(), bound)
	}
	if float64(int(replies)*minDatagram) > bound {
		t.Errorf("server sent %d datagrams (at least %d bytes), bound %.0f", replies, int(replies)*minDatagram, bound)
	}
	if received.Load() == 0 || srv.Stats().SSDPRateLimited == 0 {
		t.Errorf("received %d, rate limited %d: the flood was not answered then limited", received.Load(), srv.Stats().SSDPRateLimited)
	}
}

// countingSink is a callback server that answers every NOTIFY 200 and
// counts them.
type countingSink struct {
	URL string
	n   atomic.Int64
}

// newCountingSinkOn listens on ip (a loopback address: another "host").
func newCountingSinkOn(t *testing.T, ip string) *countingSink {
	t.Helper()
	cs := &countingSink{}
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httpd.Server{Handler: httpd.HandlerFunc(func(w httpd.ResponseWriter, r *httpd.Request) {
		if r.Method == "NOTIFY" {
			cs.n.Add(1)
		}
	}), MaxConns: 256}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	cs.URL = "http://" + ln.Addr().String()
	return cs
}

// subscribeFrom sends n SUBSCRIBEs from the loopback address ip (its own
// host) with callbacks on a sink there, and returns the SIDs accepted and
// how many were refused with 503.
func subscribeFrom(t *testing.T, ti *testIGD, ip string, n int) (sids []string, refused int, cs *countingSink) {
	t.Helper()
	cs = newCountingSinkOn(t, ip)
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for i := range n {
		req, _ := http.NewRequest("SUBSCRIBE", ti.base+evtIP1, nil)
		req.Header.Set("CALLBACK", fmt.Sprintf("<%s/%d>", cs.URL, i))
		req.Header.Set("NT", "upnp:event")
		r, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		switch r.StatusCode {
		case 200:
			sids = append(sids, r.Header.Get("SID"))
		case http.StatusServiceUnavailable:
			refused++
		default:
			t.Fatalf("SUBSCRIBE %d from %s: %d", i, ip, r.StatusCode)
		}
	}
	return sids, refused, cs
}

// TestAttackGENASubscriptionFlood: one host sending 200 SUBSCRIBEs gets
// its share (a quarter of DefaultMaxSubscriptions), 503 for the rest;
// other hosts still subscribe, up to DefaultMaxSubscriptions in all;
// renewing an existing subscription still works at the cap, only the
// accepted ones get events, and expiry makes room again.
func TestAttackGENASubscriptionFlood(t *testing.T) {
	ti := newTestIGD(t, nil)
	perHost := DefaultMaxSubscriptions / 4
	sids, refused, cs := subscribeFrom(t, ti, "127.0.0.1", 200)
	if len(sids) != perHost || refused != 200-perHost {
		t.Errorf("one host: %d accepted, %d refused; per-host cap %d", len(sids), refused, perHost)
	}
	// Hosts 2-5 ask for 200 each: three more hosts fill the global cap,
	// the fifth gets nothing.
	total, others := len(sids), []*countingSink{cs}
	for h := 2; h <= 5; h++ {
		got, _, sink := subscribeFrom(t, ti, fmt.Sprintf("127.0.0.%d", h), 200)
		want := min(perHost, DefaultMaxSubscriptions-total)
		if len(got) != want {
			t.Errorf("host 127.0.0.%d: %d accepted, want %d", h, len(got), want)
		}
		total += len(got)
		others = append(others, sink)
	}
	st := ti.s.Stats()
	if st.Subscriptions != DefaultMaxSubscriptions || total != DefaultMaxSubscriptions {
		t.Errorf("subscriptions %d (counted %d), want the cap %d; stats %+v", st.Subscriptions, total, DefaultMaxSubscriptions, st)
	}
	if r := ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"SID": sids[0]}); r.StatusCode != 200 {
		t.Errorf("renewal at the cap: %d", r.StatusCode)
	}
	waitIdle(t, ti.s)
	var events int64
	for _, sink := range others {
		events += sink.n.Load()
	}
	if events != DefaultMaxSubscriptions {
		t.Errorf("%d initial events, want %d", events, DefaultMaxSubscriptions)
	}
	ti.clock.Add(maxSubscription + time.Second)
	if r := ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"CALLBACK": "<" + cs.URL + "/late>", "NT": "upnp:event"}); r.StatusCode != 200 {
		t.Errorf("after expiry: %d", r.StatusCode)
	}
	if n := ti.s.Stats().Subscriptions; n != 1 {
		t.Errorf("%d subscriptions after expiry", n)
	}
	waitIdle(t, ti.s)
}

// TestAttackGENADeadCallback: a subscriber whose callback accepts TCP and
// never answers, and one whose callback port is closed, block nothing: an
// AddPortMapping is answered at once, a live subscriber gets its event
// while the NOTIFY to the silent one still hangs, and closing the server
// does not wait for notifyTimeout.
func TestAttackGENADeadCallback(t *testing.T) {
	ti := newTestIGD(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ti.s.watchCore(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	// Accepts and holds every connection, reads nothing, answers nothing.
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var heldMu sync.Mutex
	accepted := make(chan time.Time, 16)
	holeDone := make(chan struct{})
	go func() {
		defer close(holeDone)
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
			select {
			case accepted <- time.Now():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		hole.Close()
		<-holeDone
		heldMu.Lock()
		for _, c := range held {
			c.Close()
		}
		heldMu.Unlock()
	})
	// A port with nothing listening.
	closedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closedLn.Addr().String()
	closedLn.Close()
	es := newEventSink(t)

	for _, cb := range []string{"http://" + hole.Addr().String() + "/cb", closedURL + "/cb", es.ts.URL + "/cb"} {
		if r := ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"CALLBACK": "<" + cb + ">", "NT": "upnp:event"}); r.StatusCode != 200 {
			t.Fatalf("SUBSCRIBE %s: %d", cb, r.StatusCode)
		}
	}
	es.next(t) // the live subscriber's initial event
	var holeSince time.Time
	select {
	case holeSince = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the silent callback was never connected to")
	}

	// While the silent one hangs (up to notifyTimeout), an action is
	// answered at once and the live subscriber gets the change.
	start := time.Now()
	st, body := ti.post(t, ctlIP1, quoted(nsIP1, "AddPortMapping"), soapBody(nsIP1, "AddPortMapping", addArgs()...))
	if st != 200 {
		t.Fatalf("AddPortMapping: %d %s", st, body)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("AddPortMapping took %v with a silent subscriber", d)
	}
	m := es.next(t)
	if !strings.Contains(m.body, "<PortMappingNumberOfEntries>1</PortMappingNumberOfEntries>") {
		t.Errorf("live subscriber's event:\n%s", m.body)
	}
	if d := time.Since(holeSince); d >= notifyTimeout {
		t.Errorf("the live event came %v after the silent NOTIFY started: it waited for it", d)
	}
	// The NOTIFY to the closed port runs beside the live one: it has
	// failed by now or fails shortly (a refused connect).
	for deadline := time.Now().Add(5 * time.Second); ti.s.Stats().EventsFailed == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Error("the NOTIFY to the closed port did not fail")
			break
		}
	}
	start = time.Now()
	ti.s.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close waited %v for the silent callback", d)
	}
}
