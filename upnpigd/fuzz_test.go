package upnpigd

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/httpd"
)

var fuzzPaths = []string{ctlIP1, ctlIP2, ctlFW, ctlWC1, "/igd2/WANCommonIFC1/ctl"}

// lanRequest makes a request as if it arrived on 127.0.0.1:5000 from
// 127.0.0.1:40000.
func lanRequest(method, path string, body string) *httpd.Request {
	return &httpd.Request{
		Method: method, RequestURI: path, Path: path, Proto: "HTTP/1.1",
		Header: httpd.Header{"Host": {"127.0.0.1:5000"}}, Host: "127.0.0.1:5000",
		Body:       []byte(body),
		RemoteAddr: netip.MustParseAddrPort("127.0.0.1:40000"),
		LocalAddr:  netip.MustParseAddrPort("127.0.0.1:5000"),
	}
}

// FuzzSOAP: the control handler, with any SOAPAction and body, answers
// 200 with a response that parses or a SOAP fault with a UPnPError (or 413),
// never panics.
func FuzzSOAP(f *testing.F) {
	f.Add(uint8(0), `"`+nsIP1+`#AddPortMapping"`, upnpcAddPortMapping)
	f.Add(uint8(0), `"`+nsIP1+`#GetSpecificPortMappingEntry"`, upnpcGetSpecific)
	f.Add(uint8(0), `"`+nsIP1+`#GetExternalIPAddress"`, upnpcGetExternal)
	f.Add(uint8(1), `"`+nsIP2+`#AddAnyPortMapping"`, upnpcAddAny)
	f.Add(uint8(1), `"`+nsIP2+`#GetListOfPortMappings"`, upnpcGetList)
	f.Add(uint8(1), nsIP2+`#DeletePortMappingRange`, soapBody(nsIP2, "DeletePortMappingRange", "NewStartPort", "1", "NewEndPort", "65535", "NewProtocol", "TCP", "NewManage", "1"))
	f.Add(uint8(2), `"`+nsFW+`#AddPinhole"`, soapBody(nsFW, "AddPinhole", pinArgs()...))
	f.Add(uint8(2), `"`+nsFW+`#CheckPinholeWorking"`, soapBody(nsFW, "CheckPinholeWorking", "UniqueID", "1"))
	f.Add(uint8(3), `"`+nsWC+`#GetTotalBytesSent"`, soapBody(nsWC, "GetTotalBytesSent"))
	clock := &fixedClock{t: time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC)}
	core := newFakeCore(clock.Now)
	core.secure = false
	s, err := New(Config{Core: core, IGDv1: true, IGDv2: true, Pinholes: true, UUID: "fuzz", Now: clock.Now, Resolve: noLookup})
	if err != nil {
		f.Fatal(err)
	}
	s.Close()
	h := s.Handler(netip.MustParseAddr("127.0.0.1"))
	f.Fuzz(func(t *testing.T, which uint8, soapAction, body string) {
		path := fuzzPaths[int(which)%len(fuzzPaths)]
		r := lanRequest("POST", path, body)
		r.Header.Set("SOAPAction", soapAction)
		w := newRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case 200:
			a, err := parseEnvelope(w.Body.Bytes())
			if err != nil || !strings.HasSuffix(a.action, "Response") {
				t.Fatalf("200 with a response that does not parse: %v\n%s", err, w.Body)
			}
		case 500:
			if !faultRe.Match(w.Body.Bytes()) {
				t.Fatalf("500 without UPnPError:\n%s", w.Body)
			}
		case 413:
		default:
			t.Fatalf("HTTP %d", w.Code)
		}
		if len(core.list()) > 200 {
			core.mu.Lock()
			core.maps = nil
			core.mu.Unlock()
		}
	})
}

// FuzzGENA: SUBSCRIBE/UNSUBSCRIBE with any headers never panics, answers
// a UDA status, and never accepts a callback that is not the subscriber.
func FuzzGENA(f *testing.F) {
	f.Add(true, "<http://127.0.0.1:4000/cb>", "upnp:event", "", "Second-1800")
	f.Add(true, "<http://192.0.2.77/cb>", "upnp:event", "", "infinite")
	f.Add(true, "", "", "uuid:00000000-0000-4000-8000-000000000000", "Second-300")
	f.Add(false, "", "", "uuid:00000000-0000-4000-8000-000000000000", "")
	f.Add(true, "<http://[::ffff:127.0.0.1]:1/><http://127.0.0.1:0/>", "upnp:event", "", "Second-x")
	core := newFakeCore(time.Now)
	s, err := New(Config{Core: core, IGDv1: true, IGDv2: true, UUID: "fuzz", MaxSubscriptions: 1000})
	if err != nil {
		f.Fatal(err)
	}
	s.Close() // no deliveries while fuzzing
	h := s.Handler(netip.MustParseAddr("127.0.0.1"))
	peer := netip.MustParseAddr("127.0.0.1")
	f.Fuzz(func(t *testing.T, subscribe bool, callback, nt, sid, timeout string) {
		method := "UNSUBSCRIBE"
		if subscribe {
			method = "SUBSCRIBE"
		}
		r := lanRequest(method, "/igd1/WANIPConn1/evt", "")
		for k, v := range map[string]string{"CALLBACK": callback, "NT": nt, "SID": sid, "TIMEOUT": timeout} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		w := newRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case 200, 400, 412, 503:
		default:
			t.Fatalf("HTTP %d", w.Code)
		}
		if w.Code == 200 && subscribe {
			if to := w.Header().Get("TIMEOUT"); to != "Second-300" && to != "Second-1800" && !strings.HasPrefix(to, "Second-") {
				t.Fatalf("TIMEOUT %q", to)
			}
		}
		s.gena.mu.Lock()
		defer s.gena.mu.Unlock()
		for _, sub := range s.gena.subs {
			a, err := netip.ParseAddr(strings.Trim(sub.callback.Hostname(), "[]"))
			if err != nil || a.Unmap() != peer || sub.callback.Scheme != "http" {
				t.Fatalf("accepted callback %v", sub.callback)
			}
		}
		if len(s.gena.subs) > 900 {
			clear(s.gena.subs)
		}
	})
}
