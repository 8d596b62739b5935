package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

const wanIPConn1 = "urn:schemas-upnp-org:service:WANIPConnection:1"

// discoverIGD sends an SSDP M-SEARCH for IGD:1 from lan (UDP to
// 239.255.255.250:1900, RFC-less UDA 1.1 §1.3.2) and returns the LOCATION
// of the first answer.
func discoverIGD(t testing.TB, lan *lab.NS) string {
	t.Helper()
	var conn *net.UDPConn
	lan.Do(t, func() {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(lab.LANHost4)})
		if err != nil {
			t.Fatalf("bench: ssdp socket: %v", err)
		}
		conn = c
	})
	defer conn.Close()
	msg := "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\n" +
		"ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n"
	dst := &net.UDPAddr{IP: net.IPv4(239, 255, 255, 250), Port: 1900}
	buf := make([]byte, 2048)
	for range 10 {
		if _, err := conn.WriteToUDP([]byte(msg), dst); err != nil {
			t.Fatalf("bench: M-SEARCH: %v", err)
		}
		conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				break
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(buf[:n])), nil)
			if err != nil {
				continue
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				return loc
			}
		}
	}
	t.Fatalf("bench: no SSDP answer for IGD:1 within 5s")
	return ""
}

// controlURL fetches the device description at loc and returns the
// absolute control URL of its WANIPConnection:1 service.
func controlURL(t testing.TB, c *http.Client, loc string) string {
	t.Helper()
	resp, err := c.Get(loc)
	if err != nil {
		t.Fatalf("bench: GET %s: %v", loc, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("bench: GET %s: %s", loc, resp.Status)
	}
	dec := xml.NewDecoder(resp.Body)
	var typ, ctl, cur string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("bench: description %s: %v", loc, err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			cur = e.Name.Local
			if cur == "service" {
				typ, ctl = "", ""
			}
		case xml.CharData:
			switch cur {
			case "serviceType":
				typ += strings.TrimSpace(string(e))
			case "controlURL":
				ctl += strings.TrimSpace(string(e))
			}
		case xml.EndElement:
			cur = ""
			if e.Name.Local == "service" && typ == wanIPConn1 && ctl != "" {
				base, err := url.Parse(loc)
				if err != nil {
					t.Fatalf("bench: LOCATION %q: %v", loc, err)
				}
				u, err := base.Parse(ctl)
				if err != nil {
					t.Fatalf("bench: controlURL %q: %v", ctl, err)
				}
				return u.String()
			}
		}
	}
	t.Fatalf("bench: no %s service in %s", wanIPConn1, loc)
	return ""
}

// igdClient is a SOAP client of WANIPConnection:1 with one keep-alive
// HTTP connection whose sockets live in the lan namespace.
type igdClient struct {
	hc   *http.Client
	ctl  string
	host string // NewInternalClient
}

func newIGDClient(t testing.TB, l *lab.Lab) *igdClient {
	t.Helper()
	return newIGDClientIn(t, l.LAN, "", lab.LANHost4)
}

// newIGDClientIn is an igdClient whose sockets live in ns, for the IGD
// whose description is at loc ("": discovered from lan by SSDP), mapping
// to the internal client host.
func newIGDClientIn(t testing.TB, ns *lab.NS, loc, host string) *igdClient {
	t.Helper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			var err error
			ns.Do(t, func() {
				d := net.Dialer{Timeout: 5 * time.Second}
				c, err = d.DialContext(ctx, network, addr)
			})
			return c, err
		},
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		DisableCompression:  true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	if loc == "" {
		loc = discoverIGD(t, ns)
	}
	return &igdClient{hc: hc, ctl: controlURL(t, hc, loc), host: host}
}

// call posts one SOAP action and returns the time from sending the
// request to having read the whole answer.
func (c *igdClient) call(action, args string) (time.Duration, error) {
	body := `<?xml version="1.0"?>` + "\r\n" +
		`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">` +
		`<s:Body><u:` + action + ` xmlns:u="` + wanIPConn1 + `">` + args + `</u:` + action + `></s:Body></s:Envelope>` + "\r\n"
	req, err := http.NewRequest(http.MethodPost, c.ctl, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
	req.Header.Set("SOAPAction", `"`+wanIPConn1+`#`+action+`"`)
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(action+"Response")) {
		return 0, fmt.Errorf("%s: %s: UPnP error %s (%s)", action, resp.Status, between(b, "errorCode>"), between(b, "errorDescription>"))
	}
	return d, nil
}

func (c *igdClient) add(port int) (time.Duration, error) {
	return c.call("AddPortMapping", fmt.Sprintf("<NewRemoteHost></NewRemoteHost><NewExternalPort>%d</NewExternalPort>"+
		"<NewProtocol>TCP</NewProtocol><NewInternalPort>%d</NewInternalPort><NewInternalClient>%s</NewInternalClient>"+
		"<NewEnabled>1</NewEnabled><NewPortMappingDescription>bench</NewPortMappingDescription>"+
		"<NewLeaseDuration>7200</NewLeaseDuration>", port, port, c.host))
}

func (c *igdClient) del(port int) (time.Duration, error) {
	return c.call("DeletePortMapping", fmt.Sprintf("<NewRemoteHost></NewRemoteHost><NewExternalPort>%d</NewExternalPort>"+
		"<NewProtocol>TCP</NewProtocol>", port))
}

// between returns the text of the first <tag>text</tag> in b, tag given
// as "tag>"; "?" when there is none.
func between(b []byte, tag string) string {
	_, rest, ok := bytes.Cut(b, []byte(tag))
	if !ok {
		return "?"
	}
	v, _, ok := bytes.Cut(rest, []byte("</"))
	if !ok {
		return "?"
	}
	return string(v)
}
