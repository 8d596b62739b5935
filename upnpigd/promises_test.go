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
