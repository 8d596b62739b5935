package tolerance

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/pcp"
)

// who names a client host of a side.
type who uint8

const (
	self  who = iota // the host the case is about
	other            // a second host on the same link
)

func (w who) String() string { return [...]string{"self", "other"}[w] }

// side is one daemon under test and the clients that talk to it; every
// method runs on a goroutine inside ns (side.run).
type side struct {
	name   string
	ns     *lab.NS
	hosts  [2]netip.Addr // source addresses of self and other
	hosts6 [2]netip.Addr // their IPv6 addresses (pinholes)
	gw     netip.Addr    // the daemon's address toward the clients
	gw6    netip.Addr    // its IPv6 address
	ext    []netip.Addr  // external addresses it may report
	port   uint16        // its HTTP port
	// paths are the control URLs by service key: igd1 and igd2 are
	// WANIPConnection:1 and :2, ifc1 and ifc2 WANCommonInterfaceConfig:1
	// of the IGD:1 and IGD:2 devices.
	paths map[string]string
	// pace spaces UDP requests to stay under the daemon's per-host rate
	// limit (pcpgw: 50/s, burst 100); nil: no limit.
	pace *pacer
	// last is the table after the previous case.
	last []row
	// slow waits longer for NAT-PMP and PCP answers (cases run again).
	slow bool
	// pins are the pinholes the current case made, in order (UniqueID,
	// owner); the placeholder {pin} is the first one's UniqueID.
	pins []pin
}

// pin is a pinhole a case made.
type pin struct {
	id    string
	owner who
}

// Namespaces of the services, by service key.
var serviceNS = map[string]string{
	"igd1": "urn:schemas-upnp-org:service:WANIPConnection:1",
	"igd2": "urn:schemas-upnp-org:service:WANIPConnection:2",
	"fw":   "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1",
	"ifc1": "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1",
	"ifc2": "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1",
}

// expand replaces the placeholders {self}, {other}, {gw}, their IPv6
// forms {self6}, {other6}, {gw6}, and {pin} by s's addresses and the
// case's first pinhole.
func (s *side) expand(v string) string {
	if !strings.Contains(v, "{") {
		return v
	}
	p := "0"
	if len(s.pins) > 0 {
		p = s.pins[0].id
	}
	return strings.NewReplacer("{self}", s.hosts[self].String(), "{other}", s.hosts[other].String(),
		"{gw}", s.gw.String(), "{self6}", s.hosts6[self].String(), "{other6}", s.hosts6[other].String(),
		"{gw6}", s.gw6.String(), "{pin}", p).Replace(v)
}

// label normalises an address a side reports.
func (s *side) label(v string) string {
	a, err := netip.ParseAddr(strings.TrimSpace(v))
	if err != nil {
		return v
	}
	switch {
	case a == s.hosts[self] || a == s.hosts6[self]:
		return "self"
	case a == s.hosts[other] || a == s.hosts6[other]:
		return "other"
	case a == s.gw || a == s.gw6:
		return "gw"
	case slices.Contains(s.ext, a):
		return "ext"
	}
	return a.String()
}

// ports is the set of ports a case names: an external port that is none
// of them is shown as "*".
type ports map[uint16]bool

func (k ports) label(p uint16) string {
	if k == nil || k[p] {
		return strconv.Itoa(int(p))
	}
	return "*"
}

func (k ports) labelString(v string) string {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 16)
	if err != nil {
		return v
	}
	return k.label(uint16(n))
}

// leaseLabel rounds a lease in seconds to 10 s (0: no end), so that the
// second that passes between a request and the listing does not show; a
// lease under 10 s is 10 (miniupnpd lists a lease of 5 s as 5 or 4).
func leaseLabel(v string) string {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return v
	}
	switch {
	case n == 0:
		return "0"
	case n < 10:
		return "10"
	}
	return strconv.FormatUint((n+5)/10*10, 10)
}

// descLabel empties miniupnpd's own descriptions of NAT-PMP and PCP
// mappings ("NAT-PMP 28080 tcp", "PCP MAP xxxxxxxxxxxxxxxxxxxxxxxx").
func descLabel(d string) string {
	f := strings.Fields(d)
	switch {
	case len(f) == 3 && f[0] == "NAT-PMP" && (strings.EqualFold(f[2], "tcp") || strings.EqualFold(f[2], "udp")):
		return ""
	case len(f) == 3 && f[0] == "PCP" && (f[1] == "MAP" || f[1] == "PEER") && strings.Trim(f[2], "x0123456789abcdef") == "":
		return ""
	}
	return d
}

// row is one port mapping as GetGenericPortMappingEntry reports it.
type row struct {
	proto, client, rh, desc, lease string
	ext, iport                     uint16
}

func (r row) key() string { return fmt.Sprintf("%s/%05d", r.proto, r.ext) }

func (r row) show(k ports) string {
	s := fmt.Sprintf("%s/%s>%s:%d", r.proto, k.label(r.ext), r.client, r.iport)
	if r.rh != "" {
		s += " rh=" + r.rh
	}
	if r.desc != "" {
		s += " " + strconv.Quote(r.desc)
	}
	return s + " L" + r.lease
}

// effect describes how the table changed: "+row" added, "-row" removed,
// "~row" changed (shown as it is after).
func effect(before, after []row, k ports) string {
	b := map[string]row{}
	for _, r := range before {
		b[r.key()] = r
	}
	a := map[string]row{}
	for _, r := range after {
		a[r.key()] = r
	}
	var keys []string
	for key := range b {
		keys = append(keys, key)
	}
	for key := range a {
		if _, ok := b[key]; !ok {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	var out []string
	for _, key := range keys {
		rb, inB := b[key]
		ra, inA := a[key]
		switch {
		case !inB:
			out = append(out, "+"+ra.show(k))
		case !inA:
			out = append(out, "-"+rb.show(k))
		case ra != rb:
			out = append(out, "~"+ra.show(k))
		}
	}
	return strings.Join(out, " ")
}

// httpReq is one raw HTTP request.
type httpReq struct {
	path    string
	headers [][2]string
	body    string
	chunked bool
}

func (h *httpReq) header(name string) (string, bool) {
	for _, kv := range h.headers {
		if strings.EqualFold(kv[0], name) {
			return kv[1], true
		}
	}
	return "", false
}

func (h *httpReq) setHeader(name, v string) {
	for i, kv := range h.headers {
		if strings.EqualFold(kv[0], name) {
			h.headers[i][1] = v
			return
		}
	}
	h.headers = append(h.headers, [2]string{name, v})
}

func (h *httpReq) delHeader(name string) {
	h.headers = slices.DeleteFunc(h.headers, func(kv [2]string) bool { return strings.EqualFold(kv[0], name) })
}

// httpResp is what came back.
type httpResp struct {
	status int
	body   string
}

// do sends h from host (over IPv6 with v6) and reads the answer (the
// daemons close the connection after it).
func (s *side) do(from who, h *httpReq, v6 ...bool) (httpResp, error) {
	src, dst := s.hosts[from], s.gw
	if len(v6) > 0 && v6[0] {
		src, dst = s.hosts6[from], s.gw6
	}
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	c, err := d.Dial("tcp", netip.AddrPortFrom(dst, s.port).String())
	if err != nil {
		return httpResp{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\n", h.path)
	for _, kv := range h.headers {
		fmt.Fprintf(&b, "%s: %s\r\n", kv[0], kv[1])
	}
	if h.chunked {
		b.WriteString("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
		body := h.body
		for len(body) > 0 {
			n := min(len(body), 100)
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
			body = body[n:]
		}
		b.WriteString("0\r\n\r\n")
	} else {
		fmt.Fprintf(&b, "Content-Length: %d\r\nConnection: close\r\n\r\n%s", len(h.body), h.body)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return httpResp{}, err
	}
	raw, err := io.ReadAll(c)
	if err != nil && len(raw) == 0 {
		return httpResp{}, err
	}
	head, body, _ := strings.Cut(string(raw), "\r\n\r\n")
	line, _, _ := strings.Cut(head, "\r\n")
	f := strings.Fields(line)
	if len(f) < 2 {
		return httpResp{}, fmt.Errorf("bad status line %q", line)
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return httpResp{}, fmt.Errorf("bad status line %q", line)
	}
	if strings.Contains(strings.ToLower(head), "transfer-encoding: chunked") {
		body = dechunk(body)
	}
	return httpResp{status: code, body: body}, nil
}

func dechunk(s string) string {
	var out strings.Builder
	for {
		line, rest, ok := strings.Cut(s, "\r\n")
		if !ok {
			return out.String()
		}
		n, err := strconv.ParseUint(strings.TrimSpace(line), 16, 32)
		if err != nil || n == 0 || int(n) > len(rest) {
			return out.String()
		}
		out.WriteString(rest[:n])
		s = strings.TrimPrefix(rest[n:], "\r\n")
	}
}

// leaves returns the text of the leaf elements of an XML document by
// local name (the last one wins), read leniently.
func leaves(doc string) map[string]string {
	d := xml.NewDecoder(strings.NewReader(doc))
	d.Strict = false
	out := map[string]string{}
	var name string
	var text strings.Builder
	leaf := false
	for {
		tok, err := d.Token()
		if err != nil {
			return out
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name, leaf = t.Name.Local, true
			text.Reset()
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			if leaf && t.Name.Local == name {
				out[name] = text.String()
			}
			leaf = false
		}
	}
}

// entries parses a PortMappingList (GetListOfPortMappings).
func entries(doc string) []map[string]string {
	var out []map[string]string
	for _, part := range strings.Split(doc, "PortMappingEntry>")[1:] {
		if strings.HasSuffix(part, "</p:") || strings.HasSuffix(part, "</") {
			out = append(out, leaves("<x>"+strings.TrimSuffix(strings.TrimSuffix(part, "</p:"), "</")+"</x>"))
		}
	}
	return out
}

// soapReply normalises the answer to a SOAP action: "ok" (with the
// output values that matter for the action), "E<errorCode>", or
// "H<status>" for an HTTP error without a UPnP error.
func (s *side) soapReply(action string, r httpResp, k ports) string {
	if r.status != 200 {
		l := leaves(r.body)
		if c, ok := l["errorCode"]; ok && r.status == 500 {
			return "E" + strings.TrimSpace(c)
		}
		return fmt.Sprintf("H%d", r.status)
	}
	l := leaves(r.body)
	var vals []string
	add := func(name string, f func(string) string) {
		v, ok := l[name]
		if !ok {
			vals = append(vals, name+"?")
			return
		}
		vals = append(vals, f(v))
	}
	id := func(v string) string { return v }
	q := func(v string) string { return strconv.Quote(descLabel(v)) }
	switch action {
	case "AddAnyPortMapping":
		add("NewReservedPort", k.labelString)
	case "GetGenericPortMappingEntry":
		add("NewRemoteHost", s.label)
		add("NewExternalPort", k.labelString)
		add("NewProtocol", id)
		fallthrough
	case "GetSpecificPortMappingEntry":
		add("NewInternalPort", id)
		add("NewInternalClient", s.label)
		add("NewEnabled", id)
		add("NewPortMappingDescription", q)
		add("NewLeaseDuration", leaseLabel)
	case "GetExternalIPAddress":
		add("NewExternalIPAddress", s.label)
	case "GetPinholePackets":
		add("PinholePackets", id)
	case "CheckPinholeWorking":
		add("IsWorking", id)
	case "GetFirewallStatus":
		add("FirewallEnabled", id)
		add("InboundPinholeAllowed", id)
	case "GetListOfPortMappings":
		// In port order (the daemons list in different orders), without
		// the protocol: the request names it, and miniupnpd writes the
		// request's spelling ("tcp", "xyz") into every entry.
		var es []string
		for _, e := range entries(l["NewPortListing"]) {
			es = append(es, fmt.Sprintf("%s>%s:%s", k.labelString(e["NewExternalPort"]),
				s.label(e["NewInternalClient"]), e["NewInternalPort"]))
		}
		slices.Sort(es)
		vals = append(vals, es...)
	}
	if len(vals) == 0 {
		return "ok"
	}
	return "ok[" + strings.Join(vals, " ") + "]"
}

// table reads the port mapping table through GetGenericPortMappingEntry.
func (s *side) table() ([]row, error) {
	var out []row
	for i := 0; i < 64; i++ {
		r, err := s.do(self, s.soapRequest("igd2", "GetGenericPortMappingEntry", "", []kv{{"NewPortMappingIndex", strconv.Itoa(i)}}))
		if err != nil {
			return nil, err
		}
		if r.status != 200 {
			if c := strings.TrimSpace(leaves(r.body)["errorCode"]); c != "713" {
				return nil, fmt.Errorf("GetGenericPortMappingEntry %d: status %d, error %q", i, r.status, c)
			}
			return out, nil
		}
		l := leaves(r.body)
		ext, _ := strconv.ParseUint(strings.TrimSpace(l["NewExternalPort"]), 10, 16)
		iport, _ := strconv.ParseUint(strings.TrimSpace(l["NewInternalPort"]), 10, 16)
		out = append(out, row{
			proto: l["NewProtocol"], ext: uint16(ext), iport: uint16(iport),
			client: s.label(l["NewInternalClient"]), rh: s.label(l["NewRemoteHost"]),
			desc: descLabel(l["NewPortMappingDescription"]), lease: leaseLabel(l["NewLeaseDuration"]),
		})
	}
	return nil, fmt.Errorf("more than 64 mappings")
}

// reset empties the table: every pinhole and every row is deleted by
// its owner.
func (s *side) reset() error {
	for _, p := range s.pins {
		h := s.soapRequest("fw", "DeletePinhole", "", []kv{{"UniqueID", p.id}})
		h.setHeader("Host", netip.AddrPortFrom(s.gw6, s.port).String())
		if _, err := s.do(p.owner, h, true); err != nil {
			return err
		}
	}
	s.pins = nil
	if len(s.last) == 0 {
		return nil
	}
	for _, r := range s.last {
		from := self
		switch r.client {
		case "self":
		case "other":
			from = other
		default:
			return fmt.Errorf("cannot delete %s: owner %s", r.show(nil), r.client)
		}
		resp, err := s.do(from, s.soapRequest("igd2", "DeletePortMapping", "", []kv{
			{"NewRemoteHost", ""}, {"NewExternalPort", strconv.Itoa(int(r.ext))}, {"NewProtocol", r.proto}}))
		if err != nil {
			return err
		}
		if resp.status != 200 && strings.TrimSpace(leaves(resp.body)["errorCode"]) != "714" {
			return fmt.Errorf("deleting %s: status %d %s", r.show(nil), resp.status, resp.body)
		}
	}
	t, err := s.table()
	if err != nil {
		return err
	}
	if len(t) != 0 {
		return fmt.Errorf("table not empty after reset: %v", t)
	}
	s.last = nil
	return nil
}

// kv is one SOAP argument. Its value goes into the body as it is (it may
// hold XML: CDATA, entities), after the placeholders are expanded; the
// value selfClosing writes <Name/>.
type kv struct{ name, value string }

const selfClosing = "\x00/"

// soapRequest builds a well-formed control request.
func (s *side) soapRequest(svc, action, ns string, args []kv) *httpReq {
	if ns == "" {
		ns = serviceNS[svc]
	}
	var b strings.Builder
	for _, a := range args {
		if a.value == selfClosing {
			fmt.Fprintf(&b, "<%s/>", a.name)
			continue
		}
		fmt.Fprintf(&b, "<%s>%s</%s>", a.name, s.expand(a.value), a.name)
	}
	return &httpReq{
		path: s.paths[svc],
		headers: [][2]string{
			{"Host", netip.AddrPortFrom(s.gw, s.port).String()},
			{"Content-Type", `text/xml; charset="utf-8"`},
			{"SOAPAction", `"` + ns + "#" + action + `"`},
		},
		body: envelope(action, ns, b.String()),
	}
}

func envelope(action, ns, args string) string {
	return `<?xml version="1.0"?>` + "\r\n" +
		`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">` +
		`<s:Body><u:` + action + ` xmlns:u="` + ns + `">` + args + `</u:` + action + `></s:Body></s:Envelope>` + "\r\n"
}

// pacer is a token bucket per source address.
type pacer struct {
	rate, burst float64
	tokens      map[netip.Addr]float64
	last        map[netip.Addr]time.Time
}

func newPacer(rate, burst float64) *pacer {
	return &pacer{rate: rate, burst: burst, tokens: map[netip.Addr]float64{}, last: map[netip.Addr]time.Time{}}
}

// wait blocks until a from may send.
func (p *pacer) wait(from netip.Addr) {
	if p == nil {
		return
	}
	now := time.Now()
	tok, ok := p.tokens[from]
	if !ok {
		tok = p.burst
	} else {
		tok = min(p.burst, tok+now.Sub(p.last[from]).Seconds()*p.rate)
	}
	if tok < 1 {
		d := time.Duration((1 - tok) / p.rate * float64(time.Second))
		time.Sleep(d) // a rate to keep, not an event to wait for
		now = now.Add(d)
		tok = 1
	}
	p.tokens[from], p.last[from] = tok-1, now
}

// udp sends one datagram from host to the daemon's port 5351 and returns
// the answer, or nil when none came within wait.
func (s *side) udp(from who, pkt []byte, wait time.Duration) ([]byte, error) {
	s.pace.wait(s.hosts[from])
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: s.hosts[from].AsSlice()}, &net.UDPAddr{IP: s.gw.AsSlice(), Port: 5351})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.Write(pkt); err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil, nil
		}
		return nil, err
	}
	return buf[:n], nil
}

// pmpReply normalises a NAT-PMP or PCP answer.
func (s *side) pmpReply(b []byte, k ports) string {
	if b == nil {
		return "silent"
	}
	if len(b) < 4 {
		return fmt.Sprintf("short(% x)", b)
	}
	if b[0] == 0 {
		res := binary.BigEndian.Uint16(b[2:4])
		switch {
		case res != 0:
			return fmt.Sprintf("op%d r%d", b[1], res)
		case b[1] == 128 && len(b) >= 12:
			return "op128 r0 ext=" + s.label(netip.AddrFrom4([4]byte(b[8:12])).String())
		case (b[1] == 129 || b[1] == 130) && len(b) >= 16:
			return fmt.Sprintf("op%d r0 ext=%s L%d", b[1], k.label(binary.BigEndian.Uint16(b[10:12])), binary.BigEndian.Uint32(b[12:16]))
		}
		return fmt.Sprintf("op%d r0 len%d", b[1], len(b))
	}
	if len(b) < 24 {
		return fmt.Sprintf("pcp-short(% x)", b)
	}
	out := fmt.Sprintf("v%d %s %s", b[0], pcp.Opcode(b[1]&0x7f), pcp.ResultCode(b[3]))
	if b[3] != 0 {
		return out
	}
	life := binary.BigEndian.Uint32(b[4:8])
	out += fmt.Sprintf(" L%d", life)
	// The external address and port of a delete's answer (lifetime 0)
	// are the request's copied back (RFC 6887 §15.1) or what was
	// deleted (miniupnpd): not compared.
	if life != 0 && (b[1]&0x7f == byte(pcp.OpMap) || b[1]&0x7f == byte(pcp.OpPeer)) && len(b) >= 24+36 {
		a := netip.AddrFrom16([16]byte(b[24+20 : 24+36])).Unmap()
		out += fmt.Sprintf(" ext=%s:%s", s.label(a.String()), k.label(binary.BigEndian.Uint16(b[24+18:24+20])))
	}
	return out
}
