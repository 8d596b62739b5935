package upnpigd

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/mapping"
)

// TestTolerantRequests: requests that are not strictly valid but that
// miniupnpd 2.3.9 accepts are accepted with the meaning miniupnpd gives
// them (issue 17; the lab's tolerance.TestDifferential compares both
// daemons on a larger corpus): the core gets the request miniupnpd would
// have made, or the answer is miniupnpd's.
func TestTolerantRequests(t *testing.T) {
	want := mapping.Request{Origin: mapping.OriginUPnP, Client: mustAddr("127.0.0.1"), Proto: mapping.TCP,
		Internal: mustAddrPort("127.0.0.1:8080"), ExternalPort: 18080, ExactPort: true, Description: "test", Lifetime: igd2MaxLease * time.Second}
	with := func(f func(*mapping.Request)) mapping.Request {
		r := want
		f(&r)
		return r
	}
	body2 := func(args ...string) string { return soapBody(nsIP2, "AddPortMapping", args...) }
	tests := []struct {
		name, path, soapAction, body string
		want                         *mapping.Request // nil: no mapping asked for
		code                         int              // UPnP error; 0: success
	}{
		{"missing NewRemoteHost", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewRemoteHost", "<omit>")...), &want, 0},
		{"missing NewInternalClient is the requester", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewInternalClient", "<omit>")...), &want, 0},
		{"empty NewInternalClient is the requester", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewInternalClient", "")...), &want, 0},
		{"missing NewEnabled", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewEnabled", "<omit>")...), &want, 0},
		{"NewEnabled True", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewEnabled", "True")...), &want, 0},
		{"NewEnabled FALSE is refused", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewEnabled", "FALSE")...), nil, 402},
		{"missing description", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewPortMappingDescription", "<omit>")...),
			ptr(with(func(r *mapping.Request) { r.Description = "" })), 0},
		{"missing lease", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewLeaseDuration", "<omit>")...), &want, 0},
		{"lease -1 is the longest", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewLeaseDuration", "-1")...), &want, 0},
		{"lease with a sign", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewLeaseDuration", "+3600")...),
			ptr(with(func(r *mapping.Request) { r.Lifetime = time.Hour })), 0},
		{"port with a sign and a fraction", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewExternalPort", "+18080.0")...), &want, 0},
		{"port -1 is refused (miniupnpd: 65535)", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewExternalPort", "-1")...), nil, 402},
		{"port 65616 is refused (miniupnpd: 80)", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewExternalPort", "65616")...), nil, 402},
		{"port without digits is the wildcard", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewExternalPort", "abc")...), nil, 716},
		{"protocol in lower case", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewProtocol", " udp ")...),
			ptr(with(func(r *mapping.Request) { r.Proto = mapping.UDP })), 0},
		{"unknown protocol is refused (miniupnpd: TCP)", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(addArgs("NewProtocol", "SCTP")...), nil, 402},
		{"the last of two arguments", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(append(addArgs("NewExternalPort", "9"), "NewExternalPort", "18080")...), &want, 0},
		{"arguments that are no UPnP names are skipped", ctlIP2, quoted(nsIP2, "AddPortMapping"), body2(append(addArgs(), "New-Foo", "1", "x.y", "2")...), &want, 0},
		{"IGD:1 namespace on the IGD:2 URL", ctlIP2, quoted(nsIP1, "AddPortMapping"), soapBody(nsIP1, "AddPortMapping", addArgs()...), &want, 0},
		{"IGD:2 namespace on the IGD:1 URL", ctlIP1, quoted(nsIP2, "AddPortMapping"), soapBody(nsIP2, "AddPortMapping", addArgs("NewLeaseDuration", "60")...),
			ptr(with(func(r *mapping.Request) { r.Lifetime = time.Minute })), 0},
		{"body action differs from SOAPACTION", ctlIP2, quoted(nsIP2, "AddPortMapping"),
			strings.ReplaceAll(body2(addArgs()...), "u:AddPortMapping", "u:GetStatusInfo"), &want, 0},
		{"body namespace differs from SOAPACTION", ctlIP2, quoted(nsIP2, "AddPortMapping"), soapBody(nsWC, "AddPortMapping", addArgs()...), &want, 0},
		{"no envelope", ctlIP2, quoted(nsIP2, "AddPortMapping"),
			`<u:AddPortMapping xmlns:u="` + nsIP2 + `">` + strings.Join(wrap(addArgs()), "") + `</u:AddPortMapping>`, &want, 0},
		{"ISO-8859-1", ctlIP2, quoted(nsIP2, "AddPortMapping"),
			strings.Replace(body2(addArgs("NewPortMappingDescription", "caf\xe9")...), "UTF-8", "ISO-8859-1", 1),
			ptr(with(func(r *mapping.Request) { r.Description = "café" })), 0},
		{"AddAnyPortMapping on the IGD:1 URL", ctlIP1, quoted(nsIP1, "AddAnyPortMapping"), soapBody(nsIP1, "AddAnyPortMapping", addArgs()...),
			ptr(with(func(r *mapping.Request) { r.ExactPort = false })), 0},
		{"WANCommonInterfaceConfig action on the WANIPConnection URL", ctlIP1, quoted(nsWC, "GetCommonLinkProperties"), soapBody(nsWC, "GetCommonLinkProperties"), nil, 0},
		{"WANIPConnection action on the WANCommonInterfaceConfig URL", ctlWC1, quoted(nsIP1, "GetExternalIPAddress"), soapBody(nsIP1, "GetExternalIPAddress"), nil, 0},
		{"pinholes stay on IGD:2", ctlIP1, quoted(nsIP1, "GetFirewallStatus"), soapBody(nsIP1, "GetFirewallStatus"), nil, 401},
		{"delete of nothing is 714", ctlIP2, quoted(nsIP2, "DeletePortMapping"),
			soapBody(nsIP2, "DeletePortMapping", "NewRemoteHost", "", "NewExternalPort", "1234", "NewProtocol", "TCP"), nil, 714},
		{"generic index with trailing text", ctlIP2, quoted(nsIP2, "GetGenericPortMappingEntry"),
			soapBody(nsIP2, "GetGenericPortMappingEntry", "NewPortMappingIndex", "0abc"), nil, 713},
		{"generic index -1", ctlIP2, quoted(nsIP2, "GetGenericPortMappingEntry"),
			soapBody(nsIP2, "GetGenericPortMappingEntry", "NewPortMappingIndex", "-1"), nil, 713},
		{"empty list", ctlIP2, quoted(nsIP2, "GetListOfPortMappings"),
			soapBody(nsIP2, "GetListOfPortMappings", "NewStartPort", "1", "NewEndPort", "65535", "NewProtocol", "TCP", "NewManage", "1", "NewNumberOfPorts", ""), nil, 0},
		{"list without NewManage", ctlIP2, quoted(nsIP2, "GetListOfPortMappings"),
			soapBody(nsIP2, "GetListOfPortMappings", "NewStartPort", "1", "NewEndPort", "65535", "NewProtocol", "TCP", "NewNumberOfPorts", "0"), nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ti := newTestIGD(t, nil)
			st, body := ti.post(t, tt.path, tt.soapAction, tt.body)
			if tt.code != 0 {
				if code := faultCode(t, st, body); code != tt.code {
					t.Errorf("code %d (HTTP %d), want %d\n%s", code, st, tt.code, body)
				}
			} else if st != 200 {
				t.Errorf("HTTP %d, want 200\n%s", st, body)
			}
			var wantReqs []mapping.Request
			if tt.want != nil {
				wantReqs = []mapping.Request{*tt.want}
			}
			if diff := cmp.Diff(wantReqs, ti.core.reqs, cmpAddr); diff != "" {
				t.Errorf("core requests (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTolerantLookupIgnoresRemoteHost: as miniupnpd, lookups go by port
// and protocol only.
func TestTolerantLookupIgnoresRemoteHost(t *testing.T) {
	ti := newTestIGD(t, nil)
	if st, body := ti.post(t, ctlIP2, quoted(nsIP2, "AddPortMapping"), soapBody(nsIP2, "AddPortMapping", addArgs()...)); st != 200 {
		t.Fatalf("add: %d %s", st, body)
	}
	// miniupnpd looks mappings up by port and protocol: a remote host in
	// GetSpecificPortMappingEntry or DeletePortMapping does not hide the
	// mapping.
	key := []string{"NewRemoteHost", "203.0.113.50", "NewExternalPort", "18080", "NewProtocol", "tcp"}
	if st, body := ti.post(t, ctlIP2, quoted(nsIP2, "GetSpecificPortMappingEntry"), soapBody(nsIP2, "GetSpecificPortMappingEntry", key...)); st != 200 {
		t.Errorf("GetSpecificPortMappingEntry with a remote host: %d %s", st, body)
	}
	if st, body := ti.post(t, ctlIP2, quoted(nsIP2, "DeletePortMapping"), soapBody(nsIP2, "DeletePortMapping", key...)); st != 200 {
		t.Errorf("DeletePortMapping with a remote host: %d %s", st, body)
	}
	if n := len(ti.core.list()); n != 0 {
		t.Errorf("%d mappings left", n)
	}
}

// TestTolerantRemoteHostChange: AddPortMapping of the requester's own
// mapping with another remote host is 718 (as miniupnpd), not a renewal
// that would keep the old remote host.
func TestTolerantRemoteHostChange(t *testing.T) {
	ti := newTestIGD(t, nil)
	if st, body := ti.post(t, ctlIP2, quoted(nsIP2, "AddPortMapping"), soapBody(nsIP2, "AddPortMapping", addArgs()...)); st != 200 {
		t.Fatalf("add: %d %s", st, body)
	}
	st, body := ti.post(t, ctlIP2, quoted(nsIP2, "AddPortMapping"), soapBody(nsIP2, "AddPortMapping", addArgs("NewRemoteHost", "203.0.113.50")...))
	if code := faultCode(t, st, body); code != 718 {
		t.Errorf("code %d, want 718", code)
	}
	if st, body := ti.post(t, ctlIP2, quoted(nsIP2, "AddPortMapping"), soapBody(nsIP2, "AddPortMapping", addArgs()...)); st != 200 {
		t.Errorf("renewal with the same remote host: %d %s", st, body)
	}
}

func ptr[T any](v T) *T { return &v }

// wrap writes name/value pairs as argument elements.
func wrap(args []string) []string {
	var out []string
	for i := 0; i+1 < len(args); i += 2 {
		out = append(out, "<"+args[i]+">"+args[i+1]+"</"+args[i]+">")
	}
	return out
}
