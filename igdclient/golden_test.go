package igdclient

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The files of testdata/miniupnpd-2.3.9/igd2 and igd1 were captured from
// miniupnpd 2.3.9 as the lab's ISP box (IGD:2, and IGD:1 with
// force_igd_desc_v1=yes) by capture_test.go: search-<ST>-NN.txt are its
// answers to a unicast M-SEARCH from cpe, notify-<NTS>-<NT>.txt its
// multicast NOTIFYs on the WAN link around a restart, rootDesc.http its
// description, soap-<action>[-<case>].http its answers to raw SOAP
// requests (the error code, if any, ends the name).
var goldenDir = filepath.Join("testdata", "miniupnpd-2.3.9")

func goldenFiles(t testing.TB, pattern string) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(goldenDir, "*", pattern))
	if err != nil || len(names) == 0 {
		t.Fatalf("no golden files %s: %v", pattern, err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(goldenDir, n)
		out[rel] = b
	}
	return out
}

// splitHTTP splits a captured HTTP response into status and body.
func splitHTTP(t testing.TB, raw []byte) (int, []byte) {
	t.Helper()
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no header end in %q", raw)
	}
	f := strings.Fields(string(head))
	code, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

func TestGoldenSearchResponses(t *testing.T) {
	for name, b := range goldenFiles(t, "search-*.txt") {
		t.Run(name, func(t *testing.T) {
			r, err := ParseSearchResponse(b)
			if err != nil {
				t.Fatal(err)
			}
			if r.Location != "http://100.64.0.1:5000/rootDesc.xml" || r.MaxAge != 1800 || !r.HasBootID || r.BootID == 0 ||
				!r.HasConfigID || r.ConfigID != 1337 || !strings.Contains(r.Server, "MiniUPnPd/2.3.9") || !strings.HasPrefix(r.USN, "uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07") {
				t.Errorf("parsed %+v", r)
			}
			if !strings.Contains(name, "search-all-") {
				// search-InternetGatewayDevice-2-01.txt answers that ST.
				base := strings.TrimPrefix(filepath.Base(name), "search-")
				typ := base[:strings.LastIndexByte(base, '-')]
				if !strings.HasSuffix(r.ST, ":"+strings.Replace(typ, "-", ":", 1)) || r.USN != strings.SplitN(r.USN, "::", 2)[0]+"::"+r.ST {
					t.Errorf("ST %q USN %q for %s", r.ST, r.USN, name)
				}
			}
			roundTripSearch(t, r)
		})
	}
}

func roundTripSearch(t *testing.T, r SearchResponse) {
	t.Helper()
	b := r.AppendMarshal(nil)
	r2, err := ParseSearchResponse(b)
	if err != nil {
		t.Fatalf("marshalled answer does not parse: %v\n%s", err, b)
	}
	if d := cmp.Diff(r, r2); d != "" {
		t.Errorf("parse(marshal(x)) (-x +got):\n%s", d)
	}
	if b2 := r2.AppendMarshal(nil); !bytes.Equal(b, b2) {
		t.Errorf("marshal not stable:\n%q\n%q", b, b2)
	}
}

func TestGoldenNotify(t *testing.T) {
	boot := map[string]map[NTS]uint32{}
	for name, b := range goldenFiles(t, "notify-*.txt") {
		t.Run(name, func(t *testing.T) {
			n, err := ParseNotify(b)
			if err != nil {
				t.Fatal(err)
			}
			want := NTSAlive
			if strings.Contains(name, "notify-byebye-") {
				want = NTSByeBye
			}
			if n.NTS != want || !n.HasBootID || !n.HasConfigID || n.ConfigID != 1337 || !strings.HasPrefix(n.USN, "uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07") {
				t.Errorf("parsed %+v", n)
			}
			if (n.NTS == NTSAlive) != (n.Location == "http://100.64.0.1:5000/rootDesc.xml") || (n.NTS == NTSAlive) != (n.MaxAge == 1800) {
				t.Errorf("LOCATION %q max-age %d with %v", n.Location, n.MaxAge, n.NTS)
			}
			dir := filepath.Dir(name)
			if boot[dir] == nil {
				boot[dir] = map[NTS]uint32{}
			}
			if old, ok := boot[dir][n.NTS]; ok && old != n.BootID {
				t.Errorf("two BOOTIDs for %v in one capture: %d, %d", n.NTS, old, n.BootID)
			}
			boot[dir][n.NTS] = n.BootID
			roundTripNotify(t, n)
		})
	}
	// The capture restarted the box: byebye carries the old BOOTID, alive
	// the new one.
	for dir, b := range boot {
		if b[NTSAlive] <= b[NTSByeBye] {
			t.Errorf("%s: BOOTID of alive %d not after byebye's %d", dir, b[NTSAlive], b[NTSByeBye])
		}
	}
}

func roundTripNotify(t *testing.T, n Notify) {
	t.Helper()
	b := n.AppendMarshal(nil, "239.255.255.250:1900")
	n2, err := ParseNotify(b)
	if err != nil {
		t.Fatalf("marshalled NOTIFY does not parse: %v\n%s", err, b)
	}
	if d := cmp.Diff(n, n2); d != "" {
		t.Errorf("parse(marshal(x)) (-x +got):\n%s", d)
	}
	if b2 := n2.AppendMarshal(nil, "239.255.255.250:1900"); !bytes.Equal(b, b2) {
		t.Errorf("marshal not stable:\n%q\n%q", b, b2)
	}
}

func TestGoldenDescription(t *testing.T) {
	for name, raw := range goldenFiles(t, "rootDesc.http") {
		t.Run(name, func(t *testing.T) {
			code, body := splitHTTP(t, raw)
			if code != 200 {
				t.Fatalf("HTTP %d", code)
			}
			d, err := ParseDescription(body)
			if err != nil {
				t.Fatal(err)
			}
			v := "2"
			if strings.HasPrefix(name, "igd1") {
				v = "1"
			}
			want := Description{
				Root: DeviceInfo{DeviceType: "urn:schemas-upnp-org:device:InternetGatewayDevice:" + v, FriendlyName: "ISP box",
					Manufacturer: "Debian", ModelName: "LabBox", UDN: "uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07c"},
				Services: []ServiceInfo{{ServiceType: "urn:schemas-upnp-org:service:WANIPConnection:" + v, ServiceID: "urn:upnp-org:serviceId:WANIPConn1",
					ControlURL: "/ctl/IPConn", EventSubURL: "/evt/IPConn", SCPDURL: "/WANIPCn.xml",
					DeviceType: "urn:schemas-upnp-org:device:WANConnectionDevice:" + v}},
			}
			if d := cmp.Diff(want, d); d != "" {
				t.Errorf("description (-want +got):\n%s", d)
			}
			u, err := ResolveURL("http://100.64.0.1:5000/rootDesc.xml", d.URLBase, d.Candidates()[0].ControlURL)
			if err != nil || u.String() != "http://100.64.0.1:5000/ctl/IPConn" {
				t.Errorf("control URL %v, %v", u, err)
			}
		})
	}
}

func TestGoldenSOAP(t *testing.T) {
	wantArgs := map[string][]Arg{
		"GetExternalIPAddress":        {{"NewExternalIPAddress", "203.0.113.1"}},
		"AddAnyPortMapping":           {{"NewReservedPort", "28081"}},
		"AddAnyPortMapping-taken":     {{"NewReservedPort", "28080"}},
		"GetSpecificPortMappingEntry": {{"NewInternalPort", "28081"}, {"NewInternalClient", "100.64.0.2"}, {"NewEnabled", "1"}, {"NewPortMappingDescription", "pcpgw test"}, {"NewLeaseDuration", "600"}},
		"AddPortMapping":              nil,
		"AddPortMapping-again":        nil,
		"AddPortMapping-permanent":    nil,
		"DeletePortMapping":           nil,
		"DeletePortMapping-missing":   nil,
	}
	wantFault := map[string]Error{
		"AddPortMapping-other-client-718": {718, "ConflictInMappingEntry"},
		"AddPortMapping-wildcard-716":     {716, "WildCardNotPermittedInExtPort"},
		"AddPortMapping-port80-606":       {606, "Action not authorized"},
		"GetSpecificPortMappingEntry-714": {714, "NoSuchEntryInArray"},
		"NoSuchAction-401":                {401, "Invalid Action"},
		"AddPortMapping-bad-args-402":     {402, "Invalid Args"},
	}
	for name, raw := range goldenFiles(t, "soap-*.http") {
		t.Run(name, func(t *testing.T) {
			code, body := splitHTTP(t, raw)
			c := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(name), "soap-"), ".http")
			action, _, _ := strings.Cut(c, "-")
			if fe, ok := wantFault[c]; ok {
				if code != 500 {
					t.Fatalf("HTTP %d", code)
				}
				e, err := ParseFault(body)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(fe, *e); d != "" {
					t.Errorf("fault (-want +got):\n%s", d)
				}
				if _, err := ParseActionResponse(body, action); err == nil {
					t.Error("a fault parsed as an action response")
				}
				b := AppendFault(nil, e)
				if e2, err := ParseFault(b); err != nil || *e2 != *e {
					t.Errorf("fault round trip: %v %v", e2, err)
				}
				return
			}
			if action == "GetStatusInfo" {
				wantArgs[c] = []Arg{{"NewConnectionStatus", "Connected"}, {"NewLastConnectionError", "ERROR_NONE"}}
			}
			want, ok := wantArgs[c]
			if !ok {
				t.Fatalf("no expectation for %s", c)
			}
			if code != 200 {
				t.Fatalf("HTTP %d", code)
			}
			args, err := ParseActionResponse(body, action)
			if err != nil {
				t.Fatal(err)
			}
			if action == "GetStatusInfo" && len(args) == 3 && args[2].Name == "NewUptime" {
				args = args[:2] // the uptime varies
			}
			if d := cmp.Diff(want, args); d != "" {
				t.Errorf("args (-want +got):\n%s", d)
			}
			if _, err := ParseFault(body); err == nil {
				t.Error("an action response parsed as a fault")
			}
			if _, err := ParseActionResponse(body, "Other"); err == nil {
				t.Error("the response parsed as another action's")
			}
		})
	}
}
