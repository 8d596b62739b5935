package upnpigd

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/mapping"
)

const (
	nsIP1 = "urn:schemas-upnp-org:service:WANIPConnection:1"
	nsIP2 = "urn:schemas-upnp-org:service:WANIPConnection:2"
	nsFW  = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"
	nsWC  = "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1"

	ctlIP1 = "/igd1/WANIPConn1/ctl"
	ctlIP2 = "/igd2/WANIPConn1/ctl"
	ctlFW  = "/igd2/WANIPv6Firewall1/ctl"
	ctlWC1 = "/igd1/WANCommonIFC1/ctl"
)

// Requests captured from upnpc (miniupnpc 2.2.4, Debian 12) run with -u
// against this handler: `upnpc -a 127.0.0.1 8080 18080 TCP 3600`,
// `upnpc -n 127.0.0.1 8081 18081 UDP 3600` and `upnpc -L` (IGD:2). upnpc
// sends SOAPAction in quotes and Content-Type text/xml.
const (
	upnpcAddPortMapping = `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewRemoteHost></NewRemoteHost><NewExternalPort>18080</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>8080</NewInternalPort><NewInternalClient>127.0.0.1</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>libminiupnpc</NewPortMappingDescription><NewLeaseDuration>3600</NewLeaseDuration></u:AddPortMapping></s:Body></s:Envelope>
`
	upnpcGetSpecific = `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:GetSpecificPortMappingEntry xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewRemoteHost></NewRemoteHost><NewExternalPort>18080</NewExternalPort><NewProtocol>TCP</NewProtocol></u:GetSpecificPortMappingEntry></s:Body></s:Envelope>
`
	upnpcGetExternal = `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:GetExternalIPAddress xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"></u:GetExternalIPAddress></s:Body></s:Envelope>
`
	upnpcAddAny = `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:AddAnyPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewRemoteHost></NewRemoteHost><NewExternalPort>18081</NewExternalPort><NewProtocol>UDP</NewProtocol><NewInternalPort>8081</NewInternalPort><NewInternalClient>127.0.0.1</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>libminiupnpc</NewPortMappingDescription><NewLeaseDuration>3600</NewLeaseDuration></u:AddAnyPortMapping></s:Body></s:Envelope>
`
	upnpcGetList = `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:GetListOfPortMappings xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewStartPort>0</NewStartPort><NewEndPort>65535</NewEndPort><NewProtocol>UDP</NewProtocol><NewManage>1</NewManage><NewNumberOfPorts>1000</NewNumberOfPorts></u:GetListOfPortMappings></s:Body></s:Envelope>
`
)

// respArgs parses a SOAP response and returns its action and arguments.
func respArgs(t *testing.T, body string) (string, map[string]string) {
	t.Helper()
	r, err := parseEnvelope([]byte(body))
	if err != nil {
		t.Fatalf("response does not parse: %v\n%s", err, body)
	}
	return r.action, r.args
}

var faultRe = regexp.MustCompile(`<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>(\d+)</errorCode><errorDescription>([^<]*)</errorDescription></UPnPError>`)

// faultCode returns the UPnP errorCode of a SOAP fault, 0 if none.
func faultCode(t *testing.T, status int, body string) int {
	t.Helper()
	m := faultRe.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	if status != http.StatusInternalServerError || !strings.Contains(body, "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>") {
		t.Errorf("fault with HTTP %d or without s:Fault: %s", status, body)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestGoldenUpnpc(t *testing.T) {
	ti := newTestIGD(t, nil)
	quoted := func(ns, a string) string { return `"` + ns + "#" + a + `"` }

	st, body := ti.post(t, ctlIP1, quoted(nsIP1, "AddPortMapping"), upnpcAddPortMapping)
	if st != 200 {
		t.Fatalf("AddPortMapping: %d %s", st, body)
	}
	if a, args := respArgs(t, body); a != "AddPortMappingResponse" || len(args) != 0 {
		t.Errorf("AddPortMapping response %s %v", a, args)
	}
	reqs := ti.core.reqs
	want := mapping.Request{Origin: mapping.OriginUPnP, Client: mustAddr("127.0.0.1"), Proto: mapping.TCP,
		Internal: mustAddrPort("127.0.0.1:8080"), ExternalPort: 18080, Lifetime: time.Hour, ExactPort: true, Description: "libminiupnpc"}
	if diff := cmp.Diff(want, reqs[len(reqs)-1], cmpAddr); diff != "" {
		t.Errorf("core request (-want +got):\n%s", diff)
	}

	st, body = ti.post(t, ctlIP1, quoted(nsIP1, "GetSpecificPortMappingEntry"), upnpcGetSpecific)
	a, args := respArgs(t, body)
	wantArgs := map[string]string{"NewInternalPort": "8080", "NewInternalClient": "127.0.0.1", "NewEnabled": "1",
		"NewPortMappingDescription": "libminiupnpc", "NewLeaseDuration": "3600"}
	if st != 200 || a != "GetSpecificPortMappingEntryResponse" {
		t.Errorf("GetSpecificPortMappingEntry: %d %s", st, body)
	}
	if diff := cmp.Diff(wantArgs, args); diff != "" {
		t.Errorf("GetSpecificPortMappingEntry (-want +got):\n%s", diff)
	}

	st, body = ti.post(t, ctlIP1, quoted(nsIP1, "GetExternalIPAddress"), upnpcGetExternal)
	if _, args := respArgs(t, body); st != 200 || args["NewExternalIPAddress"] != "203.0.113.1" {
		t.Errorf("GetExternalIPAddress: %d %s", st, body)
	}

	// AddAnyPortMapping with a port the provider cannot give: another one.
	ti.core.taken[18081] = true
	st, body = ti.post(t, ctlIP2, quoted(nsIP2, "AddAnyPortMapping"), upnpcAddAny)
	if _, args := respArgs(t, body); st != 200 || args["NewReservedPort"] != "50000" {
		t.Errorf("AddAnyPortMapping: %d %s", st, body)
	}
	if r := ti.core.reqs[len(ti.core.reqs)-1]; r.ExactPort || r.ExternalPort != 18081 || r.Proto != mapping.UDP {
		t.Errorf("AddAnyPortMapping asked the core %+v", r)
	}

	st, body = ti.post(t, ctlIP2, quoted(nsIP2, "GetListOfPortMappings"), upnpcGetList)
	_, args = respArgs(t, body)
	wantList := `<?xml version="1.0" encoding="UTF-8"?>
<p:PortMappingList xmlns:p="urn:schemas-upnp-org:gw:WANIPConnection" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:schemas-upnp-org:gw:WANIPConnection http://www.upnp.org/schemas/gw/WANIPConnection-v2.xsd">
<p:PortMappingEntry>
<p:NewRemoteHost></p:NewRemoteHost>
<p:NewExternalPort>50000</p:NewExternalPort>
<p:NewProtocol>UDP</p:NewProtocol>
<p:NewInternalPort>8081</p:NewInternalPort>
<p:NewInternalClient>127.0.0.1</p:NewInternalClient>
<p:NewEnabled>1</p:NewEnabled>
<p:NewDescription>libminiupnpc</p:NewDescription>
<p:NewLeaseTime>3600</p:NewLeaseTime>
</p:PortMappingEntry>
</p:PortMappingList>
`
	if st != 200 {
		t.Fatalf("GetListOfPortMappings: %d %s", st, body)
	}
	if diff := cmp.Diff(wantList, args["NewPortListing"]); diff != "" {
		t.Errorf("GetListOfPortMappings (-want +got):\n%s", diff)
	}
	// The listing travels as CDATA inside the SOAP argument, as miniupnpd
	// sends it (miniupnpc does not decode entities).
	if !strings.Contains(body, "<NewPortListing><![CDATA[<?xml") {
		t.Errorf("listing not in CDATA: %s", body)
	}
}

// Requests captured from goupnp v1.3.1's generated internetgateway2
// clients (AddAnyPortMapping, AddPinhole), with their SOAPACTION
// (quoted) and Content-Type `text/xml; charset="utf-8"`; the answers are
// checked byte for byte.
const (
	goupnpAddAny     = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:AddAnyPortMapping xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:2\"><NewRemoteHost></NewRemoteHost><NewExternalPort>18090</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>8090</NewInternalPort><NewInternalClient>127.0.0.1</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>goupnp</NewPortMappingDescription><NewLeaseDuration>3600</NewLeaseDuration></u:AddAnyPortMapping></s:Body></s:Envelope>"
	goupnpAddPinhole = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:AddPinhole xmlns:u=\"urn:schemas-upnp-org:service:WANIPv6FirewallControl:1\"><RemoteHost></RemoteHost><RemotePort>0</RemotePort><InternalClient>2001:db8:1::100</InternalClient><InternalPort>8080</InternalPort><Protocol>6</Protocol><LeaseTime>3600</LeaseTime></u:AddPinhole></s:Body></s:Envelope>"
)

func TestGoldenGoupnp(t *testing.T) {
	ti := newTestIGD(t, nil)
	ti.core.secure = false
	const env = `<?xml version="1.0"?>` + "\n" + `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>`
	tests := []struct {
		path, action, body string
		status             int
		want               string
	}{
		{ctlIP2, `"` + nsIP2 + `#AddAnyPortMapping"`, goupnpAddAny, 200,
			env + `<u:AddAnyPortMappingResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewReservedPort>18090</NewReservedPort></u:AddAnyPortMappingResponse></s:Body></s:Envelope>` + "\n"},
		{ctlFW, `"` + nsFW + `#AddPinhole"`, goupnpAddPinhole, 200,
			env + `<u:AddPinholeResponse xmlns:u="urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"><UniqueID>2</UniqueID></u:AddPinholeResponse></s:Body></s:Envelope>` + "\n"},
		// The same port again for another host: with ExactPort, 718.
		{ctlIP2, `"` + nsIP2 + `#AddPortMapping"`, strings.NewReplacer("AddAnyPortMapping", "AddPortMapping", "<NewInternalPort>8090<", "<NewInternalPort>8091<", "127.0.0.1", "127.0.0.5").Replace(goupnpAddAny), 500,
			env + `<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>` + "\n"},
	}
	for _, tt := range tests {
		st, body := ti.post(t, tt.path, tt.action, tt.body)
		if st != tt.status {
			t.Errorf("%s: HTTP %d, want %d", tt.action, st, tt.status)
		}
		if diff := cmp.Diff(tt.want, body); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.action, diff)
		}
	}
}

// TestArgConversions: ui2, ui4 and boolean arguments read as goupnp's
// soap package reads them (decimal digits only, in range; the six UDA 1.1
// §2.5 boolean spellings), surrounding white space ignored, anything else
// 402 Invalid Args.
func TestArgConversions(t *testing.T) {
	for _, tt := range []struct {
		v      string
		ui2    uint16
		ok2    bool
		ui4    uint32
		ok4    bool
		b, okb bool
	}{
		{"0", 0, true, 0, true, false, true},
		{"1", 1, true, 1, true, true, true},
		{" 65535\n", 65535, true, 65535, true, false, false},
		{"65536", 0, false, 65536, true, false, false},
		{"4294967295", 0, false, 4294967295, true, false, false},
		{"4294967296", 0, false, 0, false, false, false},
		{"-1", 0, false, 0, false, false, false},
		{"+1", 0, false, 0, false, false, false},
		{"0x10", 0, false, 0, false, false, false},
		{"1_0", 0, false, 0, false, false, false},
		{"", 0, false, 0, false, false, false},
		{"true", 0, false, 0, false, true, true},
		{"yes", 0, false, 0, false, true, true},
		{"false", 0, false, 0, false, false, true},
		{"no", 0, false, 0, false, false, true},
		{"TRUE", 0, false, 0, false, false, false},
	} {
		c := &call{args: map[string]string{"A": tt.v}}
		n2, err2 := c.ui2("A")
		n4, err4 := c.ui4("A")
		b, errb := c.boolean("A")
		if (err2 == nil) != tt.ok2 || n2 != tt.ui2 || (err4 == nil) != tt.ok4 || n4 != tt.ui4 || (errb == nil) != tt.okb || b != tt.b {
			t.Errorf("%q: ui2 %d %v, ui4 %d %v, boolean %v %v", tt.v, n2, err2, n4, err4, b, errb)
		}
		for _, err := range []error{err2, err4, errb} {
			var ue *upnpError
			if err != nil && (!errors.As(err, &ue) || ue.code != mapping.UPnPInvalidArgs) {
				t.Errorf("%q: error %v is not Invalid Args", tt.v, err)
			}
		}
	}
	if _, err := (&call{args: map[string]string{}}).ui4("Missing"); err == nil {
		t.Error("missing argument accepted")
	}
}
