package igdclient

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// badSSDP are datagrams no SSDP parser may take.
var badSSDP = []string{
	"",
	"\r\n\r\n",
	"garbage",
	"HTTP/1.1 404 Not Found\r\nST: a\r\nUSN: b\r\nLOCATION: http://100.64.0.1/\r\n\r\n",
	"HTTP/1.1 200 OK\r\nST: a\r\nUSN: b\r\n\r\n",                                // no LOCATION
	"HTTP/1.1 200 OK\r\nST a\r\nUSN: b\r\nLOCATION: http://100.64.0.1/\r\n\r\n", // no colon
	"HTTP/1.1 200 OK\r\nST: a\r\n folded\r\nUSN: b\r\nLOCATION: http://100.64.0.1/\r\n\r\n",
	"HTTP/1.1 200 OK\r\nST: a\r\nUSN: b\r\nLOCATION: http://100.64.0.1/\r\nLOCATION: http://192.0.2.1/\r\n\r\n",
	"HTTP/1.1 200 OK\r\nST: a\x00b\r\nUSN: b\r\nLOCATION: http://100.64.0.1/\r\n\r\n",
	"HTTP/1.1 200 OK\r\nST: a\r\nUSN: b\r\nLOCATION: http://100.64.0.1/\r\nBOOTID.UPNP.ORG: -1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nST: a\r\nUSN: b\r\nLOCATION: http://100.64.0.1/\r\nBOOTID.UPNP.ORG: 4294967296\r\n\r\n",
	"HTTP/1.1 200 OK\r\nST: a\r\nUSN: b\r\nLOCATION: http://100.64.0.1/\r\nBOOTID.UPNP.ORG: 2147483648\r\n\r\n",
	"HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: b\r\n", 40) + "ST: a\r\nUSN: b\r\nLOCATION: http://100.64.0.1/\r\n\r\n",
	"HTTP/1.1 200 OK\r\nST: a\r\nUSN: b\r\nLOCATION: http://100.64.0.1/" + strings.Repeat("a", 600) + "\r\n\r\n",
	"HTTP/1.1 200 OK\r\nST: a\r\nUSN: b\r\nLOCATION: http://100.64.0.1/\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n",
	"NOTIFY * HTTP/1.1\r\nNT: a\r\nNTS: ssdp:sleep\r\nUSN: b\r\n\r\n",
	"NOTIFY * HTTP/1.1\r\nNT: a\r\nNTS: ssdp:alive\r\nUSN: b\r\n\r\n", // alive without LOCATION
	"NOTIFY /x HTTP/1.1\r\nNT: a\r\nNTS: ssdp:byebye\r\nUSN: b\r\n\r\n",
	"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n",
}

func TestSSDPRefused(t *testing.T) {
	for _, s := range badSSDP {
		if r, err := ParseSearchResponse([]byte(s)); err == nil {
			t.Errorf("ParseSearchResponse(%.60q) = %+v", s, r)
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseSearchResponse(%.60q): %v is not ErrMalformed", s, err)
		}
		if n, err := ParseNotify([]byte(s)); err == nil {
			t.Errorf("ParseNotify(%.60q) = %+v", s, n)
		}
	}
}

func TestSSDPParse(t *testing.T) {
	// Written by hand after UDA 1.1 §1.2.4 (ssdp:update) and with the
	// liberties devices take: LF line ends, lower-case names, no final
	// empty line, other directives in CACHE-CONTROL, a body after the
	// header (ignored), a field given twice with the same value.
	n, err := ParseNotify([]byte("NOTIFY * HTTP/1.1\nhost: 239.255.255.250:1900\nlocation:  http://100.64.0.1:5000/d.xml \nnt: upnp:rootdevice\nnts: ssdp:update\n" +
		"usn: uuid:x::upnp:rootdevice\nusn: uuid:x::upnp:rootdevice\ncache-control: no-cache, max-age = 120\nBOOTID.UPNP.ORG: 7\nNEXTBOOTID.UPNP.ORG: 8\nCONFIGID.UPNP.ORG: 0"))
	if err != nil {
		t.Fatal(err)
	}
	want := Notify{NTS: NTSUpdate, NT: "upnp:rootdevice", USN: "uuid:x::upnp:rootdevice", Location: "http://100.64.0.1:5000/d.xml", MaxAge: 120,
		BootID: 7, HasBootID: true, NextBootID: 8, HasNextBootID: true, HasConfigID: true}
	if d := cmp.Diff(want, n); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	r, err := ParseSearchResponse([]byte("HTTP/1.0 200 OK\r\nST: s\r\nUSN: u\r\nLOCATION: l\r\n\r\nbody ignored"))
	if err != nil || r != (SearchResponse{ST: "s", USN: "u", Location: "l"}) {
		t.Errorf("ParseSearchResponse = %+v, %v", r, err)
	}
}

func TestAppendMSearch(t *testing.T) {
	got := string(AppendMSearch(nil, "239.255.255.250:1900", DeviceIGD2, 9))
	want := "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 5\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\nUSER-AGENT: Linux UPnP/1.1 pcpgw/1\r\n\r\n"
	if got != want {
		t.Errorf("M-SEARCH:\n%q\nwant\n%q", got, want)
	}
}

// hostileXML are documents no XML parser here may take (or only take
// without harm).
var hostileXML = []string{
	// Billion laughs: refused at the DTD, nothing expanded.
	`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><root><device><deviceType>&lol3;</deviceType></device></root>`,
	// An entity without a DTD.
	`<root><device><deviceType>&xxe;</deviceType></device></root>`,
	// External entity.
	`<!DOCTYPE root [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><root><device><deviceType>&xxe;</deviceType></device></root>`,
	// Deep nesting.
	"<root>" + strings.Repeat("<a>", 5000) + strings.Repeat("</a>", 5000) + "</root>",
	// Many elements.
	"<root>" + strings.Repeat("<a/>", 5000) + "</root>",
	// A processing instruction.
	`<?xml-stylesheet href="x"?><root/>`,
	// Another charset.
	`<?xml version="1.0" encoding="ISO-8859-1"?><root/>`,
	// Truncated.
	`<root><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>`,
	// Many attributes.
	"<root " + func() string {
		var b strings.Builder
		for i := range 40 {
			b.WriteString("a" + strings.Repeat("x", i) + `="1" `)
		}
		return b.String()
	}() + "/>",
	"",
	"not xml",
}

func TestHostileXML(t *testing.T) {
	for _, s := range hostileXML {
		if d, err := ParseDescription([]byte(s)); err == nil {
			t.Errorf("ParseDescription(%.60q) = %+v", s, d)
		}
		if a, err := ParseActionResponse([]byte(s), "GetExternalIPAddress"); err == nil {
			t.Errorf("ParseActionResponse(%.60q) = %+v", s, a)
		}
		if e, err := ParseFault([]byte(s)); err == nil {
			t.Errorf("ParseFault(%.60q) = %+v", s, e)
		}
	}
}

// desc builds a description around the WANConnectionDevice's services.
func desc(urlBase string, services ...string) string {
	s := `<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0">`
	if urlBase != "" {
		s += "<URLBase>" + urlBase + "</URLBase>"
	}
	s += `<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><friendlyName>Box &amp; co</friendlyName>` +
		`<manufacturer>M</manufacturer><modelName>X1</modelName><UDN>uuid:1</UDN><deviceList><device>` +
		`<deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><deviceList><device>` +
		`<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType><serviceList>`
	for _, sv := range services {
		s += sv
	}
	return s + `</serviceList></device></deviceList></device></deviceList></device></root>`
}

func service(typ, ctl string) string {
	return "<service><serviceType>" + typ + "</serviceType><serviceId>id</serviceId><controlURL>" + ctl + "</controlURL></service>"
}

func TestDescription(t *testing.T) {
	const loc = "http://100.64.0.1:5000/rootDesc.xml"
	for _, tc := range []struct {
		name    string
		doc     string
		want    []string // candidates' service types
		control string   // the first candidate's resolved control URL; "" refused
	}{
		{name: "ppp then ip1", doc: desc("", service(ServiceWANPPP1, "/ppp"), service(ServiceWANIP1, "/ip")),
			want: []string{ServiceWANIP1, ServiceWANPPP1}, control: "http://100.64.0.1:5000/ip"},
		{name: "ip2 first", doc: desc("", service(ServiceWANIP1, "/ip1"), service(ServiceWANIP2, "ctl/ip2")),
			want: []string{ServiceWANIP2, ServiceWANIP1}, control: "http://100.64.0.1:5000/ctl/ip2"},
		{name: "other services ignored", doc: desc("", service("urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1", "/c"), service(ServiceWANIP1, "/ip")),
			want: []string{ServiceWANIP1}, control: "http://100.64.0.1:5000/ip"},
		{name: "URLBase same host other port", doc: desc("http://100.64.0.1:49000/", service(ServiceWANIP1, "upnp/ctl")),
			want: []string{ServiceWANIP1}, control: "http://100.64.0.1:49000/upnp/ctl"},
		{name: "URLBase other host", doc: desc("http://192.0.2.66/", service(ServiceWANIP1, "/ctl")),
			want: []string{ServiceWANIP1}},
		{name: "absolute control URL other host", doc: desc("", service(ServiceWANIP1, "http://100.64.0.9:5000/ctl")),
			want: []string{ServiceWANIP1}},
		{name: "protocol-relative other host", doc: desc("", service(ServiceWANIP1, "//203.0.113.9/ctl")),
			want: []string{ServiceWANIP1}},
		{name: "host name", doc: desc("", service(ServiceWANIP1, "http://box.lan:5000/ctl")),
			want: []string{ServiceWANIP1}},
		{name: "https", doc: desc("", service(ServiceWANIP1, "https://100.64.0.1/ctl")),
			want: []string{ServiceWANIP1}},
		{name: "user info", doc: desc("", service(ServiceWANIP1, "http://u@100.64.0.1/ctl")),
			want: []string{ServiceWANIP1}},
		{name: "no service", doc: desc(""), want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDescription([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if d.Root.FriendlyName != "Box & co" || d.Root.UDN != "uuid:1" || d.Root.ModelName != "X1" {
				t.Errorf("root %+v", d.Root)
			}
			var got []string
			for _, s := range d.Candidates() {
				got = append(got, s.ServiceType)
				if s.DeviceType != "urn:schemas-upnp-org:device:WANConnectionDevice:1" {
					t.Errorf("service %s in %q", s.ServiceType, s.DeviceType)
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("candidates (-want +got):\n%s", d)
			}
			if len(got) == 0 {
				return
			}
			u, err := ResolveURL(loc, d.URLBase, d.Candidates()[0].ControlURL)
			switch {
			case tc.control == "" && err == nil:
				t.Errorf("control URL %s taken", u)
			case tc.control != "" && (err != nil || u.String() != tc.control):
				t.Errorf("control URL %v, %v; want %s", u, err, tc.control)
			}
		})
	}
}

func TestDescriptionLimits(t *testing.T) {
	for name, doc := range map[string]string{
		"long control URL": desc("", service(ServiceWANIP1, "/"+strings.Repeat("a", 2000))),
		"too many services": desc("", func() string {
			var b strings.Builder
			for range 70 {
				b.WriteString(service(ServiceWANIP1, "/x"))
			}
			return b.String()
		}()),
		"not root":       `<html><body>hi</body></html>`,
		"two roots":      `<root><device><deviceType>a</deviceType></device></root><root/>`,
		"no device type": `<root><device></device></root>`,
		"two root devices": `<root><device><deviceType>a</deviceType></device>` +
			`<device><deviceType>b</deviceType></device></root>`,
		"too many devices": "<root><device><deviceType>a</deviceType><deviceList>" +
			strings.Repeat("<device><deviceType>b</deviceType></device>", 40) + "</deviceList></device></root>",
	} {
		if d, err := ParseDescription([]byte(doc)); err == nil {
			t.Errorf("%s: parsed %+v", name, d)
		}
	}
	// A long field that is not kept does no harm.
	doc := strings.Replace(desc("", service(ServiceWANIP1, "/ip")), "<UDN>", "<presentationURL>"+strings.Repeat("p", 3000)+"</presentationURL><UDN>", 1)
	if _, err := ParseDescription([]byte(doc)); err != nil {
		t.Errorf("long unkept field: %v", err)
	}
}

func TestParseLocation(t *testing.T) {
	for loc, ok := range map[string]bool{
		"http://100.64.0.1:5000/rootDesc.xml": true,
		"http://100.64.0.1/d":                 true,
		"http://[2001:db8::1]:5000/d":         false,
		"http://box:5000/d":                   false,
		"https://100.64.0.1/d":                false,
		"http://100.64.0.1:0/d":               false,
		"http://100.64.0.1:70000/d":           false,
		"http://user:pw@100.64.0.1/d":         false,
		"http:100.64.0.1":                     false,
		"":                                    false,
	} {
		if _, _, err := ParseLocation(loc); (err == nil) != ok {
			t.Errorf("ParseLocation(%q): %v", loc, err)
		}
	}
}

func TestSOAPCodec(t *testing.T) {
	args := []Arg{{"NewRemoteHost", ""}, {"NewPortMappingDescription", "a<b>&\"c'\r\n\x01\xff"}}
	b := AppendRequest(nil, ServiceWANIP1, "AddPortMapping", args)
	want := `<?xml version="1.0"?>` + "\r\n" + `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>` +
		`<u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewRemoteHost></NewRemoteHost>` +
		`<NewPortMappingDescription>a&lt;b&gt;&amp;&#34;c&#39;&#xD;` + "\n\uFFFD\uFFFD" + `</NewPortMappingDescription></u:AddPortMapping></s:Body></s:Envelope>` + "\r\n"
	if string(b) != want {
		t.Errorf("request:\n%s\nwant\n%s", b, want)
	}
	// The same arguments in a device's answer come back escaped-through.
	got, err := ParseActionResponse(AppendActionResponse(nil, ServiceWANIP1, "X", args[:1]), "X")
	if err != nil || len(got) != 1 || got[0] != args[0] {
		t.Errorf("round trip %+v, %v", got, err)
	}
	for name, body := range map[string]string{
		"two responses": soapEnvelopeStart + "<u:XResponse/><u:XResponse/>" + soapEnvelopeEnd,
		"other element": soapEnvelopeStart + "<u:YResponse/>" + soapEnvelopeEnd,
		"nested arg":    soapEnvelopeStart + "<u:XResponse><A><B>1</B></A></u:XResponse>" + soapEnvelopeEnd,
		"duplicate arg": soapEnvelopeStart + "<u:XResponse><A>1</A><A>2</A></u:XResponse>" + soapEnvelopeEnd,
		"many args":     soapEnvelopeStart + "<u:XResponse>" + strings.Repeat("<A>1</A>", 40) + "</u:XResponse>" + soapEnvelopeEnd,
		"long value":    soapEnvelopeStart + "<u:XResponse><A>" + strings.Repeat("v", 5000) + "</A></u:XResponse>" + soapEnvelopeEnd,
		"no body":       `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"></s:Envelope>`,
		"not envelope":  `<html/>`,
		"two bodies":    soapEnvelopeStart + "<u:XResponse/></s:Body><s:Body>" + soapEnvelopeEnd,
	} {
		if a, err := ParseActionResponse([]byte(body), "X"); err == nil {
			t.Errorf("%s: parsed %+v", name, a)
		}
	}
	// A SOAP Header is allowed.
	hdr := `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><h><i/></h></s:Header><s:Body><u:XResponse><A> 1 </A></u:XResponse></s:Body></s:Envelope>`
	if a, err := ParseActionResponse([]byte(hdr), "X"); err != nil || len(a) != 1 || a[0] != (Arg{"A", " 1 "}) {
		t.Errorf("with Header: %+v, %v", a, err)
	}
	for name, body := range map[string]string{
		"no code":    soapEnvelopeStart + "<s:Fault><detail><UPnPError><errorDescription>x</errorDescription></UPnPError></detail></s:Fault>" + soapEnvelopeEnd,
		"bad code":   soapEnvelopeStart + "<s:Fault><detail><UPnPError><errorCode>7x</errorCode></UPnPError></detail></s:Fault>" + soapEnvelopeEnd,
		"small code": soapEnvelopeStart + "<s:Fault><detail><UPnPError><errorCode>7</errorCode></UPnPError></detail></s:Fault>" + soapEnvelopeEnd,
		"two codes":  soapEnvelopeStart + "<s:Fault><detail><UPnPError><errorCode>718</errorCode><errorCode>714</errorCode></UPnPError></detail></s:Fault>" + soapEnvelopeEnd,
		"no detail":  soapEnvelopeStart + "<s:Fault><faultcode>s:Client</faultcode></s:Fault>" + soapEnvelopeEnd,
	} {
		if e, err := ParseFault([]byte(body)); err == nil {
			t.Errorf("%s: parsed %+v", name, e)
		}
	}
	e := &Error{Code: 718, Description: "ConflictInMappingEntry"}
	if e.Error() != "UPnP error 718 ConflictInMappingEntry" {
		t.Errorf("Error() = %q", e.Error())
	}
	if s := (&Error{Code: 725}).Error(); s != "UPnP error 725 OnlyPermanentLeasesSupported" {
		t.Errorf("Error() without a description = %q", s)
	}
	if s := (&Error{Code: 899}).Error(); s != "UPnP error 899" {
		t.Errorf("Error() of an unknown code = %q", s)
	}
}
