package igdclient

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Every parser is fuzzed from the golden captures of miniupnpd 2.3.9
// (testdata/miniupnpd-2.3.9, see golden_test.go) and the hostile inputs of
// the unit tests. The property: no panic, bounded time, and, where the
// package can write the message, marshal(parse(x)) parses to the same
// value and marshals to the same bytes.

// fuzzBudget bounds one parse: 64 KiB of input must go through in far
// less (a generous bound for -race on a loaded machine).
const fuzzBudget = 2 * time.Second

func timed(t *testing.T, what string, f func()) {
	start := time.Now()
	f()
	if d := time.Since(start); d > fuzzBudget {
		t.Errorf("%s took %v", what, d)
	}
}

func FuzzSearchResponse(f *testing.F) {
	for _, b := range goldenFiles(f, "search-*.txt") {
		f.Add(b)
	}
	for _, s := range badSSDP {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r SearchResponse
		var err error
		timed(t, "ParseSearchResponse", func() { r, err = ParseSearchResponse(b) })
		if err != nil {
			return
		}
		if len(r.Location) > maxSSDPValue || len(r.ST) > maxSSDPValue || len(r.USN) > maxSSDPValue {
			t.Fatalf("over-long field kept: %+v", r)
		}
		roundTripSearch(t, r)
	})
}

func FuzzNotify(f *testing.F) {
	for _, b := range goldenFiles(f, "notify-*.txt") {
		f.Add(b)
	}
	for _, s := range badSSDP {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var n Notify
		var err error
		timed(t, "ParseNotify", func() { n, err = ParseNotify(b) })
		if err != nil {
			return
		}
		roundTripNotify(t, n)
	})
}

func FuzzDescription(f *testing.F) {
	for _, raw := range goldenFiles(f, "rootDesc.http") {
		_, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
		f.Add(body)
	}
	for _, s := range hostileXML {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > DefaultMaxDescription {
			return // the HTTP fetch caps it
		}
		var d Description
		var err error
		timed(t, "ParseDescription", func() { d, err = ParseDescription(b) })
		if err != nil {
			return
		}
		if len(d.Services) > maxDescServices {
			t.Fatalf("%d services kept", len(d.Services))
		}
		for _, s := range d.Candidates() {
			if wanServiceRank(s.ServiceType) < 0 || len(s.ControlURL) > maxDescText {
				t.Fatalf("candidate %+v", s)
			}
			// Whatever the description says, the control URL stays on
			// the LOCATION's address or is refused.
			if u, err := ResolveURL("http://100.64.0.1:5000/rootDesc.xml", d.URLBase, s.ControlURL); err == nil && u.Hostname() != "100.64.0.1" {
				t.Fatalf("control URL %s left the description's host", u)
			}
		}
	})
}

func FuzzActionResponse(f *testing.F) {
	for name, raw := range goldenFiles(f, "soap-*.http") {
		_, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
		action, _, _ := strings.Cut(strings.TrimPrefix(name[strings.LastIndexByte(name, '/')+1:], "soap-"), "-")
		f.Add(body, strings.TrimSuffix(action, ".http"))
	}
	for _, s := range hostileXML {
		f.Add([]byte(s), "GetExternalIPAddress")
	}
	f.Fuzz(func(t *testing.T, b []byte, action string) {
		if len(b) > maxSOAPBody || !isName(action) {
			return
		}
		var args []Arg
		var err error
		timed(t, "ParseActionResponse", func() { args, err = ParseActionResponse(b, action) })
		if err != nil {
			return
		}
		if len(args) > maxSOAPArgs {
			t.Fatalf("%d args", len(args))
		}
		for _, a := range args {
			if !isName(a.Name) {
				return // a prefixed or dotted name: not written back as it came
			}
		}
		// A device's answer with these arguments parses back to them.
		out := AppendActionResponse(nil, ServiceWANIP2, action, args)
		args2, err := ParseActionResponse(out, action)
		if err != nil {
			t.Fatalf("marshalled response does not parse: %v\n%s", err, out)
		}
		if d := cmp.Diff(args, args2, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("args (-parsed +again):\n%s", d)
		}
		if out2 := AppendActionResponse(nil, ServiceWANIP2, action, args2); !bytes.Equal(out, out2) {
			t.Fatalf("marshal not stable")
		}
	})
}

func FuzzFault(f *testing.F) {
	for _, raw := range goldenFiles(f, "soap-*.http") {
		_, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
		f.Add(body)
	}
	for _, s := range hostileXML {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxSOAPBody {
			return
		}
		var e *Error
		var err error
		timed(t, "ParseFault", func() { e, err = ParseFault(b) })
		if err != nil {
			return
		}
		if e.Code < 100 || e.Code > 999 {
			t.Fatalf("code %d", e.Code)
		}
		out := AppendFault(nil, e)
		e2, err := ParseFault(out)
		if err != nil || *e2 != *e {
			t.Fatalf("fault round trip: %+v -> %+v, %v", e, e2, err)
		}
		if !bytes.Equal(out, AppendFault(nil, e2)) {
			t.Fatal("marshal not stable")
		}
	})
}

// isName reports whether s can be an XML element name in the tests'
// marshalling (an action name: letters, digits, underscore).
func isName(s string) bool {
	if s == "" || len(s) > 64 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
