package upnpigd

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/mapping"
)

// TestNATRSIPStatusDSLite (issue 17.9): NATEnabled says whether the CPE
// translates: 1 in local and nat444 mode, 0 in dslite (the CPE forwards
// the LAN hosts' own addresses; the provider's AFTR does the NAT).
func TestNATRSIPStatusDSLite(t *testing.T) {
	for _, tc := range []struct {
		mode mapping.Mode
		nat  string
	}{{mapping.ModeLocal, "1"}, {mapping.ModeNAT444, "1"}, {mapping.ModeDSLite, "0"}} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			ti := newTestIGD(t, nil)
			ti.core.mu.Lock()
			ti.core.mode = tc.mode
			ti.core.mu.Unlock()
			for _, sv := range []struct{ ctl, ns string }{{ctlIP1, nsIP1}, {ctlIP2, nsIP2}} {
				st, body := ti.post(t, sv.ctl, `"`+sv.ns+`#GetNATRSIPStatus"`, soapBody(sv.ns, "GetNATRSIPStatus"))
				if st != 200 || !strings.Contains(body, "<NewRSIPAvailable>0</NewRSIPAvailable>") ||
					!strings.Contains(body, "<NewNATEnabled>"+tc.nat+"</NewNATEnabled>") {
					t.Errorf("%s: %d %s", sv.ns, st, body)
				}
			}
		})
	}
}

// TestFirewallEvented (issue 17.9): when pinholes are turned off or on
// (ipv6_pinholes on a reload), a WANIPv6FirewallControl subscriber gets
// InboundPinholeAllowed's new value (FirewallEnabled does not change: it
// is not sent again); GetFirewallStatus says the same, and AddPinhole is
// refused (703) while they are off.
func TestFirewallEvented(t *testing.T) {
	ti := newTestIGD(t, nil)
	es := newEventSink(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ti.s.watchCore(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitSubscribed(t, ti.core)

	resp := ti.gena(t, "SUBSCRIBE", "/igd2/WANIPv6Firewall1/evt", map[string]string{"CALLBACK": "<" + es.ts.URL + "/fw>", "NT": "upnp:event"})
	if resp.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", resp.StatusCode)
	}
	if m := es.next(t); !strings.Contains(m.body, "<InboundPinholeAllowed>1</InboundPinholeAllowed>") {
		t.Fatalf("initial event:\n%s", m.body)
	}
	ti.core.setPinholes(false)
	m := es.next(t)
	if m.header.Get("SEQ") != "1" || !strings.Contains(m.body, "<InboundPinholeAllowed>0</InboundPinholeAllowed>") ||
		strings.Contains(m.body, "FirewallEnabled") {
		t.Errorf("event after pinholes off: %v\n%s", m.header, m.body)
	}
	if _, body := ti.post(t, ctlFW, `"`+nsFW+`#GetFirewallStatus"`, soapBody(nsFW, "GetFirewallStatus")); !strings.Contains(body, "<InboundPinholeAllowed>0</InboundPinholeAllowed>") {
		t.Errorf("GetFirewallStatus: %s", body)
	}
	ti.core.setPinholes(true)
	if m := es.next(t); m.header.Get("SEQ") != "2" || !strings.Contains(m.body, "<InboundPinholeAllowed>1</InboundPinholeAllowed>") {
		t.Errorf("event after pinholes on: %v\n%s", m.header, m.body)
	}
	// Another firewall event with nothing changed sends nothing.
	ti.s.coreEvent(mapping.Event{Kind: mapping.EventFirewall})
	waitIdle(t, ti.s)
	select {
	case m := <-es.ch:
		t.Errorf("NOTIFY without a change: %v\n%s", m.header, m.body)
	default:
	}
}

// waitSubscribed waits (bounded) until watchCore subscribed to the core.
func waitSubscribed(t *testing.T, f *fakeCore) {
	t.Helper()
	for range 1000 {
		f.mu.Lock()
		n := len(f.subs)
		f.mu.Unlock()
		if n > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("watchCore did not subscribe within 5 s")
}

// TestMappingMoved (issue 17.2): when the upstream gives a mapping made
// by AddAnyPortMapping another port, subscribers of both WANIPConnection
// services get an event (IGD:1: PortMappingNumberOfEntries; IGD:2 also
// SystemUpdateID, one more), GetGenericPortMappingEntry shows the new
// port, and GetSpecificPortMappingEntry and DeletePortMapping of the port
// the control point was given still find it.
func TestMappingMoved(t *testing.T) {
	ti := newTestIGD(t, nil)
	es := newEventSink(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ti.s.watchCore(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitSubscribed(t, ti.core)

	st, body := ti.post(t, ctlIP2, `"`+nsIP2+`#AddAnyPortMapping"`, soapBody(nsIP2, "AddAnyPortMapping", addArgs("NewLeaseDuration", "3600")...))
	if st != 200 || !strings.Contains(body, "<NewReservedPort>18080</NewReservedPort>") {
		t.Fatalf("AddAnyPortMapping: %d %s", st, body)
	}
	ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"CALLBACK": "<" + es.ts.URL + "/ip1>", "NT": "upnp:event"})
	es.next(t)
	ti.gena(t, "SUBSCRIBE", "/igd2/WANIPConn1/evt", map[string]string{"CALLBACK": "<" + es.ts.URL + "/ip2>", "NT": "upnp:event"})
	initial := es.next(t)
	id0 := between(initial.body, "<SystemUpdateID>", "</SystemUpdateID>")

	m := ti.core.list()[0]
	ti.core.moveMapping(m.ID, 19080)
	got := map[string]notifyMsg{}
	for range 2 {
		n := es.next(t)
		got[n.header.Get("SID")] = n
	}
	var ip1, ip2 bool
	for _, n := range got {
		if n.header.Get("SEQ") != "1" || !strings.Contains(n.body, "<PortMappingNumberOfEntries>1</PortMappingNumberOfEntries>") {
			t.Errorf("event after the move: %v\n%s", n.header, n.body)
		}
		if id := between(n.body, "<SystemUpdateID>", "</SystemUpdateID>"); id != "" {
			ip2 = true
			if id == id0 {
				t.Errorf("SystemUpdateID still %s after the move", id)
			}
		} else {
			ip1 = true
		}
	}
	if !ip1 || !ip2 {
		t.Errorf("events to IGD:1 %v, IGD:2 %v", ip1, ip2)
	}

	st, body = ti.post(t, ctlIP2, `"`+nsIP2+`#GetGenericPortMappingEntry"`, soapBody(nsIP2, "GetGenericPortMappingEntry", "NewPortMappingIndex", "0"))
	if st != 200 || !strings.Contains(body, "<NewExternalPort>19080</NewExternalPort>") {
		t.Errorf("GetGenericPortMappingEntry: %d %s", st, body)
	}
	for _, port := range []string{"19080", "18080"} {
		st, body = ti.post(t, ctlIP1, `"`+nsIP1+`#GetSpecificPortMappingEntry"`,
			soapBody(nsIP1, "GetSpecificPortMappingEntry", "NewRemoteHost", "", "NewExternalPort", port, "NewProtocol", "TCP"))
		if st != 200 || !strings.Contains(body, "<NewInternalPort>8080</NewInternalPort>") {
			t.Errorf("GetSpecificPortMappingEntry %s: %d %s", port, st, body)
		}
	}
	st, body = ti.post(t, ctlIP1, `"`+nsIP1+`#DeletePortMapping"`,
		soapBody(nsIP1, "DeletePortMapping", "NewRemoteHost", "", "NewExternalPort", "18080", "NewProtocol", "TCP"))
	if st != 200 || len(ti.core.list()) != 0 {
		t.Errorf("DeletePortMapping of the first port: %d %s; left %+v", st, body, ti.core.list())
	}
}

// between returns what s holds between from and to ("" when not there).
func between(s, from, to string) string {
	_, after, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, to)
	return v
}
