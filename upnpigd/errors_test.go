package upnpigd

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/mapping"
)

// addArgs are AddPortMapping arguments with overrides.
func addArgs(over ...string) []string {
	base := []string{"NewRemoteHost", "", "NewExternalPort", "18080", "NewProtocol", "TCP", "NewInternalPort", "8080",
		"NewInternalClient", "127.0.0.1", "NewEnabled", "1", "NewPortMappingDescription", "test", "NewLeaseDuration", "0"}
	for i := 0; i+1 < len(over); i += 2 {
		found := false
		for j := 0; j+1 < len(base); j += 2 {
			if base[j] == over[i] {
				if over[i+1] == "<omit>" {
					base = append(base[:j:j], base[j+2:]...)
				} else {
					base[j+1] = over[i+1]
				}
				found = true
				break
			}
		}
		if !found {
			base = append(base, over[i], over[i+1])
		}
	}
	return base
}

func pinArgs(over ...string) []string {
	base := []string{"RemoteHost", "", "RemotePort", "0", "InternalClient", "2001:db8:1::100", "InternalPort", "8080", "Protocol", "6", "LeaseTime", "3600"}
	for i := 0; i+1 < len(over); i += 2 {
		for j := 0; j+1 < len(base); j += 2 {
			if base[j] == over[i] {
				base[j+1] = over[i+1]
			}
		}
	}
	return base
}

// TestErrorCodes runs every error path of the control actions and checks
// the UPnPError code of the SOAP fault (HTTP 500).
func TestErrorCodes(t *testing.T) {
	type tc struct {
		name   string
		setup  func(ti *testIGD)
		path   string
		ns     string
		action string
		args   []string
		code   int
	}
	other := func(ti *testIGD) {
		// A mapping of another host on TCP 18080.
		ti.core.Map(t.Context(), mapping.Request{Client: mustAddr("127.0.0.9"), Proto: mapping.TCP, Internal: mustAddrPort("127.0.0.9:80"), ExternalPort: 18080, ExactPort: true})
	}
	otherPinhole := func(ti *testIGD) {
		// A pinhole of another host (opened with secure mode off).
		ti.core.Map(t.Context(), mapping.Request{Client: mustAddr("2001:db8:1::9"), Proto: mapping.TCP, Internal: mustAddrPort("[2001:db8:1::9]:8080"), Lifetime: time.Hour})
	}
	tests := []tc{
		{"missing argument", nil, ctlIP1, nsIP1, "AddPortMapping", addArgs("NewProtocol", "<omit>"), 402},
		{"bad port", nil, ctlIP1, nsIP1, "AddPortMapping", addArgs("NewExternalPort", "70000"), 402},
		{"negative port", nil, ctlIP1, nsIP1, "AddPortMapping", addArgs("NewExternalPort", "-1"), 402},
		{"bad protocol", nil, ctlIP1, nsIP1, "AddPortMapping", addArgs("NewProtocol", "SCTP"), 402},
		{"bad internal client", nil, ctlIP1, nsIP1, "AddPortMapping", addArgs("NewInternalClient", "host.lan"), 402},
		{"IPv6 internal client", nil, ctlIP1, nsIP1, "AddPortMapping", addArgs("NewInternalClient", "2001:db8::1"), 402},
		{"disabled mapping", nil, ctlIP1, nsIP1, "AddPortMapping", addArgs("NewEnabled", "0"), 402},
		{"bad remote host", nil, ctlIP1, nsIP1, "AddPortMapping", addArgs("NewRemoteHost", "peer.example"), 402},
		{"wildcard external port", nil, ctlIP1, nsIP1, "AddPortMapping", addArgs("NewExternalPort", "0"), 716},
		{"wildcard external port v2", nil, ctlIP2, nsIP2, "AddPortMapping", addArgs("NewExternalPort", "0"), 716},
		{"internal port 0 v1", nil, ctlIP1, nsIP1, "AddPortMapping", addArgs("NewInternalPort", "0"), 402},
		{"internal port 0 v2", nil, ctlIP2, nsIP2, "AddPortMapping", addArgs("NewInternalPort", "0"), 732},
		{"secure mode v1", nil, ctlIP1, nsIP1, "AddPortMapping", addArgs("NewInternalClient", "127.0.0.2"), 718},
		{"secure mode v2", nil, ctlIP2, nsIP2, "AddPortMapping", addArgs("NewInternalClient", "127.0.0.2"), 606},
		{"port taken v1", other, ctlIP1, nsIP1, "AddPortMapping", addArgs(), 718},
		{"port taken v2", other, ctlIP2, nsIP2, "AddPortMapping", addArgs(), 718},
		{"provider cannot", func(ti *testIGD) { ti.core.taken[18080] = true }, ctlIP1, nsIP1, "AddPortMapping", addArgs(), 718},
		{"generic beyond end", nil, ctlIP1, nsIP1, "GetGenericPortMappingEntry", []string{"NewPortMappingIndex", "0"}, 713},
		{"generic bad index", nil, ctlIP1, nsIP1, "GetGenericPortMappingEntry", []string{"NewPortMappingIndex", "abc"}, 402},
		{"specific missing", nil, ctlIP1, nsIP1, "GetSpecificPortMappingEntry", []string{"NewRemoteHost", "", "NewExternalPort", "1234", "NewProtocol", "UDP"}, 714},
		{"delete port 0", nil, ctlIP1, nsIP1, "DeletePortMapping", []string{"NewRemoteHost", "", "NewExternalPort", "0", "NewProtocol", "UDP"}, 402},
		{"delete port out of range", nil, ctlIP1, nsIP1, "DeletePortMapping", []string{"NewRemoteHost", "", "NewExternalPort", "65616", "NewProtocol", "UDP"}, 402},
		{"delete without protocol", nil, ctlIP1, nsIP1, "DeletePortMapping", []string{"NewRemoteHost", "", "NewExternalPort", "1234"}, 402},
		{"delete other's v1", other, ctlIP1, nsIP1, "DeletePortMapping", []string{"NewRemoteHost", "", "NewExternalPort", "18080", "NewProtocol", "TCP"}, 718},
		{"delete other's v2", other, ctlIP2, nsIP2, "DeletePortMapping", []string{"NewRemoteHost", "", "NewExternalPort", "18080", "NewProtocol", "TCP"}, 606},
		{"range empty", nil, ctlIP2, nsIP2, "DeletePortMappingRange", []string{"NewStartPort", "1", "NewEndPort", "100", "NewProtocol", "TCP", "NewManage", "0"}, 730},
		{"range not own", other, ctlIP2, nsIP2, "DeletePortMappingRange", []string{"NewStartPort", "1", "NewEndPort", "65535", "NewProtocol", "TCP", "NewManage", "0"}, 730},
		{"range manage other's", other, ctlIP2, nsIP2, "DeletePortMappingRange", []string{"NewStartPort", "1", "NewEndPort", "65535", "NewProtocol", "TCP", "NewManage", "1"}, 606},
		{"range inverted", nil, ctlIP2, nsIP2, "DeletePortMappingRange", []string{"NewStartPort", "100", "NewEndPort", "1", "NewProtocol", "TCP", "NewManage", "0"}, 733},
		{"list inverted", nil, ctlIP2, nsIP2, "GetListOfPortMappings", []string{"NewStartPort", "100", "NewEndPort", "1", "NewProtocol", "TCP", "NewManage", "1", "NewNumberOfPorts", "0"}, 733},
		{"list without number", nil, ctlIP2, nsIP2, "GetListOfPortMappings", []string{"NewStartPort", "1", "NewEndPort", "100", "NewProtocol", "TCP", "NewManage", "1"}, 402},
		{"list start out of range", nil, ctlIP2, nsIP2, "GetListOfPortMappings", []string{"NewStartPort", "65536", "NewEndPort", "100", "NewProtocol", "TCP", "NewManage", "1", "NewNumberOfPorts", "0"}, 402},
		{"unknown action", nil, ctlIP1, nsIP1, "Frobnicate", nil, 401},
		{"pinhole action on IGD:1", nil, ctlIP1, nsIP1, "AddPinhole", pinArgs(), 401},
		{"request connection", nil, ctlIP1, nsIP1, "RequestConnection", nil, 606},
		{"request termination", nil, ctlIP1, nsIP1, "RequestTermination", nil, 501},
		{"force termination", nil, ctlIP2, nsIP2, "ForceTermination", nil, 606},
		{"set connection type", nil, ctlIP1, nsIP1, "SetConnectionType", []string{"NewConnectionType", "IP_Bridged"}, 731},
		{"set connection type IP_Routed", nil, ctlIP2, nsIP2, "SetConnectionType", []string{"NewConnectionType", "IP_Routed"}, 731},
		{"external unknown error", func(ti *testIGD) { ti.core.extErr = &mapping.Error{Code: mapping.CodeNotAuthorized} }, ctlIP2, nsIP2, "GetExternalIPAddress", nil, 606},
		{"pinhole protocol wildcard", nil, ctlFW, nsFW, "AddPinhole", pinArgs("Protocol", "65535"), 707},
		// As miniupnpd reads pinhole arguments (strtol; its order of checks).
		{"pinhole protocol name", nil, ctlFW, nsFW, "AddPinhole", pinArgs("Protocol", "tcp"), 705},
		{"pinhole protocol out of range", nil, ctlFW, nsFW, "AddPinhole", pinArgs("Protocol", "65536"), 402},
		{"pinhole without internal port", nil, ctlFW, nsFW, "AddPinhole", []string{"RemoteHost", "", "RemotePort", "0", "InternalClient", "2001:db8:1::100", "Protocol", "6", "LeaseTime", "3600"}, 706},
		{"pinhole without internal client", nil, ctlFW, nsFW, "AddPinhole", []string{"RemoteHost", "", "RemotePort", "0", "InternalPort", "8080", "Protocol", "6", "LeaseTime", "3600"}, 708},
		{"pinhole wildcard internal client", nil, ctlFW, nsFW, "AddPinhole", pinArgs("InternalClient", "*"), 708},
		{"pinhole privileged port", nil, ctlFW, nsFW, "AddPinhole", pinArgs("InternalPort", "1023"), 606},
		{"pinhole remote port out of range", nil, ctlFW, nsFW, "AddPinhole", pinArgs("RemotePort", "65536"), 402},
		{"pinhole packets of another host's", otherPinhole, ctlFW, nsFW, "GetPinholePackets", []string{"UniqueID", "1"}, 606},
		{"pinhole check of another host's", otherPinhole, ctlFW, nsFW, "CheckPinholeWorking", []string{"UniqueID", "1"}, 606},
		{"pinhole update of another host's", otherPinhole, ctlFW, nsFW, "UpdatePinhole", []string{"UniqueID", "1", "NewLeaseTime", "60"}, 606},
		{"pinhole delete of another host's", otherPinhole, ctlFW, nsFW, "DeletePinhole", []string{"UniqueID", "1"}, 606},
		{"pinhole protocol", nil, ctlFW, nsFW, "AddPinhole", pinArgs("Protocol", "132"), 705},
		{"pinhole internal port 0", nil, ctlFW, nsFW, "AddPinhole", pinArgs("InternalPort", "0"), 706},
		{"pinhole no client", nil, ctlFW, nsFW, "AddPinhole", pinArgs("InternalClient", ""), 708},
		{"pinhole IPv4 client", nil, ctlFW, nsFW, "AddPinhole", pinArgs("InternalClient", "192.0.2.100"), 402},
		{"pinhole lease 0", nil, ctlFW, nsFW, "AddPinhole", pinArgs("LeaseTime", "0"), 402},
		{"pinhole lease too long", nil, ctlFW, nsFW, "AddPinhole", pinArgs("LeaseTime", "86401"), 402},
		{"pinholes disabled", func(ti *testIGD) { ti.core.pinholes = false }, ctlFW, nsFW, "AddPinhole", pinArgs(), 703},
		{"pinhole secure mode", nil, ctlFW, nsFW, "AddPinhole", pinArgs(), 606},
		{"update missing", nil, ctlFW, nsFW, "UpdatePinhole", []string{"UniqueID", "9", "NewLeaseTime", "60"}, 704},
		{"delete missing pinhole", nil, ctlFW, nsFW, "DeletePinhole", []string{"UniqueID", "9"}, 704},
		{"packets missing", nil, ctlFW, nsFW, "GetPinholePackets", []string{"UniqueID", "9"}, 704},
		{"check missing", nil, ctlFW, nsFW, "CheckPinholeWorking", []string{"UniqueID", "9"}, 704},
		{"bad unique id", nil, ctlFW, nsFW, "DeletePinhole", []string{"UniqueID", "70000"}, 402},
		{"port mapping is no pinhole", other, ctlFW, nsFW, "DeletePinhole", []string{"UniqueID", "1"}, 704},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ti := newTestIGD(t, nil)
			if tt.setup != nil {
				tt.setup(ti)
			}
			st, body := ti.post(t, tt.path, `"`+tt.ns+"#"+tt.action+`"`, soapBody(tt.ns, tt.action, tt.args...))
			if got := faultCode(t, st, body); got != tt.code {
				t.Errorf("got code %d (HTTP %d), want %d\n%s", got, st, tt.code, body)
			}
		})
	}
}

// TestPinholeNoTraffic: CheckPinholeWorking on a pinhole without packets
// is 709, with packets 1; the pinhole's owner may update and delete it.
func TestPinholeLifecycle(t *testing.T) {
	ti := newTestIGD(t, nil)
	ti.core.secure = false
	call := func(action string, args ...string) (int, map[string]string) {
		st, body := ti.post(t, ctlFW, `"`+nsFW+"#"+action+`"`, soapBody(nsFW, action, args...))
		if code := faultCode(t, st, body); code != 0 {
			return code, nil
		}
		_, a := respArgs(t, body)
		return 0, a
	}
	code, out := call("AddPinhole", pinArgs()...)
	if code != 0 || out["UniqueID"] != "1" {
		t.Fatalf("AddPinhole: %d %v", code, out)
	}
	r := ti.core.reqs[len(ti.core.reqs)-1]
	if r.Internal != netip.MustParseAddrPort("[2001:db8:1::100]:8080") || r.Proto != mapping.TCP || r.Lifetime.Seconds() != 3600 {
		t.Errorf("core request %+v", r)
	}
	if code, _ := call("CheckPinholeWorking", "UniqueID", "1"); code != 709 {
		t.Errorf("CheckPinholeWorking without traffic: %d, want 709", code)
	}
	ti.core.packets[1] = 5
	if code, out := call("CheckPinholeWorking", "UniqueID", "1"); code != 0 || out["IsWorking"] != "1" {
		t.Errorf("CheckPinholeWorking: %d %v", code, out)
	}
	if code, out := call("GetPinholePackets", "UniqueID", "1"); code != 0 || out["PinholePackets"] != "5" {
		t.Errorf("GetPinholePackets: %d %v", code, out)
	}
	if code, _ := call("UpdatePinhole", "UniqueID", "1", "NewLeaseTime", "7200"); code != 0 {
		t.Errorf("UpdatePinhole: %d", code)
	}
	if m, _ := ti.core.Get(1); m.Lease(ti.clock.Now()).Seconds() != 7200 {
		t.Errorf("lease after update %v", m.Lease(ti.clock.Now()))
	}
	if code, _ := call("DeletePinhole", "UniqueID", "1"); code != 0 {
		t.Errorf("DeletePinhole: %d", code)
	}
	if _, ok := ti.core.Get(1); ok {
		t.Error("pinhole still there")
	}
}

// TestMalformedRequests: bodies and SOAPActions that do not parse give
// 401 Invalid Action, never a crash. (Its cases for missing, unquoted and
// over-long SOAPActions, DTDs, entities, deep nesting and bodies that are
// too big moved to the named tests of attack_test.go.)
func TestMalformedRequests(t *testing.T) {
	ti := newTestIGD(t, nil)
	good := soapBody(nsIP1, "GetExternalIPAddress")
	tests := []struct {
		name, soapAction, body string
		status, code           int
	}{
		{"SOAPAction without action", `"` + nsIP1 + `"`, good, 500, 401},
		// SOAPACTION decides, as in miniupnpd: AddPortMapping without
		// its arguments.
		{"SOAPAction names another action", `"` + nsIP1 + "#AddPortMapping\"", good, 500, 402},
		{"SOAPAction names an unknown action", `"` + nsIP1 + "#Frobnicate\"", good, 500, 401},
		{"not XML", `"` + nsIP1 + "#GetExternalIPAddress\"", "hello", 500, 401},
		{"two actions", `"` + nsIP1 + "#GetExternalIPAddress\"", strings.Replace(good, "</s:Body>", `<u:GetExternalIPAddress xmlns:u="`+nsIP1+`"/></s:Body>`, 1), 500, 401},
		{"UTF-16", `"` + nsIP1 + "#GetExternalIPAddress\"", strings.Replace(good, "UTF-8", "UTF-16", 1), 500, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := ti.post(t, ctlIP1, tt.soapAction, tt.body)
			if st != tt.status {
				t.Errorf("HTTP %d, want %d: %s", st, tt.status, body)
			}
			if tt.code != 0 {
				if got := faultCode(t, st, body); got != tt.code {
					t.Errorf("code %d, want %d", got, tt.code)
				}
			}
		})
	}
}
