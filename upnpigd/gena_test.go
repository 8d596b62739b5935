package upnpigd

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/mapping"
)

// eventSink is a control point's callback server on 127.0.0.1.
type eventSink struct {
	ts *httptest.Server
	ch chan notifyMsg
}

type notifyMsg struct {
	header http.Header
	body   string
}

func newEventSink(t *testing.T) *eventSink {
	es := &eventSink{ch: make(chan notifyMsg, 16)}
	es.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method == "NOTIFY" {
			es.ch <- notifyMsg{r.Header, string(b)}
		}
	}))
	t.Cleanup(es.ts.Close)
	return es
}

func (es *eventSink) next(t *testing.T) notifyMsg {
	t.Helper()
	select {
	case m := <-es.ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no NOTIFY within 10 s")
	}
	return notifyMsg{}
}

func (ti *testIGD) gena(t *testing.T, method, path string, h map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, ti.base+path, nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := ti.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

const evtIP1 = "/igd1/WANIPConn1/evt"

// TestGENAEvents: a subscriber on its own address gets the initial event
// with every evented variable, then a NOTIFY (SEQ 1) when the core says a
// mapping was added; renew and unsubscribe work.
func TestGENAEvents(t *testing.T) {
	ti := newTestIGD(t, nil)
	es := newEventSink(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ti.s.watchCore(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	resp := ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"CALLBACK": "<" + es.ts.URL + "/cb>", "NT": "upnp:event", "TIMEOUT": "Second-10"})
	sid := resp.Header.Get("SID")
	if resp.StatusCode != 200 || !strings.HasPrefix(sid, "uuid:") || resp.Header.Get("TIMEOUT") != "Second-300" {
		t.Fatalf("SUBSCRIBE: %d SID %q TIMEOUT %q", resp.StatusCode, sid, resp.Header.Get("TIMEOUT"))
	}
	m := es.next(t)
	if m.header.Get("SID") != sid || m.header.Get("SEQ") != "0" || m.header.Get("NT") != "upnp:event" || m.header.Get("NTS") != "upnp:propchange" {
		t.Errorf("initial event headers %v", m.header)
	}
	for _, want := range []string{"<PossibleConnectionTypes>IP_Routed</PossibleConnectionTypes>", "<ConnectionStatus>Connected</ConnectionStatus>",
		"<ExternalIPAddress>203.0.113.1</ExternalIPAddress>", "<PortMappingNumberOfEntries>0</PortMappingNumberOfEntries>"} {
		if !strings.Contains(m.body, want) {
			t.Errorf("initial event lacks %s:\n%s", want, m.body)
		}
	}

	st, body := ti.post(t, ctlIP1, `"`+nsIP1+`#AddPortMapping"`, soapBody(nsIP1, "AddPortMapping", addArgs()...))
	if st != 200 {
		t.Fatalf("AddPortMapping: %s", body)
	}
	m = es.next(t)
	if m.header.Get("SEQ") != "1" || !strings.Contains(m.body, "<PortMappingNumberOfEntries>1</PortMappingNumberOfEntries>") {
		t.Errorf("event after AddPortMapping: %v\n%s", m.header, m.body)
	}
	ti.core.setExternal(mustAddr("203.0.113.9"))
	m = es.next(t)
	if m.header.Get("SEQ") != "2" || !strings.Contains(m.body, "<ExternalIPAddress>203.0.113.9</ExternalIPAddress>") {
		t.Errorf("event after address change: %v\n%s", m.header, m.body)
	}

	if r := ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"SID": sid, "TIMEOUT": "Second-99999"}); r.StatusCode != 200 || r.Header.Get("TIMEOUT") != "Second-1800" {
		t.Errorf("renew: %d %q", r.StatusCode, r.Header.Get("TIMEOUT"))
	}
	if r := ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"SID": sid, "NT": "upnp:event"}); r.StatusCode != 400 {
		t.Errorf("renew with NT: %d, want 400", r.StatusCode)
	}
	if r := ti.gena(t, "SUBSCRIBE", "/igd2/WANIPConn1/evt", map[string]string{"SID": sid}); r.StatusCode != 412 {
		t.Errorf("renew on another service: %d, want 412", r.StatusCode)
	}
	if r := ti.gena(t, "UNSUBSCRIBE", evtIP1, map[string]string{"SID": sid}); r.StatusCode != 200 {
		t.Errorf("UNSUBSCRIBE: %d", r.StatusCode)
	}
	if r := ti.gena(t, "UNSUBSCRIBE", evtIP1, map[string]string{"SID": sid}); r.StatusCode != 412 {
		t.Errorf("UNSUBSCRIBE again: %d, want 412", r.StatusCode)
	}
	if r := ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"SID": sid}); r.StatusCode != 412 {
		t.Errorf("renew after UNSUBSCRIBE: %d, want 412", r.StatusCode)
	}
	// IGD:2 firewall events and SystemUpdateID.
	resp = ti.gena(t, "SUBSCRIBE", "/igd2/WANIPv6Firewall1/evt", map[string]string{"CALLBACK": "<" + es.ts.URL + "/fw>", "NT": "upnp:event"})
	if resp.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE firewall: %d", resp.StatusCode)
	}
	m = es.next(t)
	if !strings.Contains(m.body, "<FirewallEnabled>1</FirewallEnabled>") || !strings.Contains(m.body, "<InboundPinholeAllowed>1</InboundPinholeAllowed>") {
		t.Errorf("firewall initial event:\n%s", m.body)
	}
	ti.gena(t, "SUBSCRIBE", "/igd2/WANIPConn1/evt", map[string]string{"CALLBACK": "<" + es.ts.URL + "/ip2>", "NT": "upnp:event"})
	m = es.next(t)
	if !strings.Contains(m.body, "<SystemUpdateID>") {
		t.Errorf("IGD:2 initial event lacks SystemUpdateID:\n%s", m.body)
	}
}

// TestGENAForeignCallback: a callback that is not the subscriber itself
// gets 412 and nothing is ever sent to it (CallStranger, CVE-2020-12695).
func TestGENAForeignCallback(t *testing.T) {
	ti := newTestIGD(t, func(c *Config) { c.MaxSubscriptions = 2 })
	es := newEventSink(t)
	port := es.ts.URL[strings.LastIndexByte(es.ts.URL, ':'):]
	for _, cb := range []string{
		"<http://192.0.2.77" + port + "/cb>",
		"<http://127.0.0.2" + port + "/cb>",
		"<http://localhost" + port + "/cb>",
		"<https://127.0.0.1" + port + "/cb>",
		"<http://user@127.0.0.1" + port + "/cb>",
		"http://127.0.0.1" + port + "/cb",
		"",
		"<" + strings.Repeat("x", 2000) + ">",
	} {
		r := ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"CALLBACK": cb, "NT": "upnp:event"})
		if r.StatusCode != http.StatusPreconditionFailed {
			t.Errorf("CALLBACK %q: %d, want 412", cb, r.StatusCode)
		}
	}
	if r := ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"CALLBACK": "<" + es.ts.URL + ">", "NT": "upnp:other"}); r.StatusCode != 412 {
		t.Errorf("NT upnp:other: %d", r.StatusCode)
	}
	if n := ti.s.Stats().Subscriptions; n != 0 {
		t.Errorf("%d subscriptions", n)
	}
	// The first acceptable URL of several is used.
	r := ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"CALLBACK": "<http://192.0.2.77/x><" + es.ts.URL + "/ok>", "NT": "upnp:event"})
	if r.StatusCode != 200 {
		t.Fatalf("mixed CALLBACK: %d", r.StatusCode)
	}
	es.next(t)
	ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"CALLBACK": "<" + es.ts.URL + "/2>", "NT": "upnp:event"})
	es.next(t)
	if r := ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"CALLBACK": "<" + es.ts.URL + "/3>", "NT": "upnp:event"}); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("subscription beyond the cap: %d, want 503", r.StatusCode)
	}
	// Subscriptions expire (injected clock): room again.
	ti.clock.Add(31 * time.Minute)
	if r := ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"CALLBACK": "<" + es.ts.URL + "/4>", "NT": "upnp:event"}); r.StatusCode != 200 {
		t.Errorf("after expiry: %d", r.StatusCode)
	}
	es.next(t)
	waitIdle(t, ti.s)
	ti.s.Close()
	if st := ti.s.Stats(); st.EventsSent != 3 || st.SubscribeRefused < 9 {
		t.Errorf("stats %+v", st)
	}
	select {
	case m := <-es.ch:
		t.Errorf("unexpected NOTIFY %v", m.header)
	default:
	}
}

// A subscriber whose callback fails is dropped after a few failures.
func TestGENADeadSubscriber(t *testing.T) {
	ti := newTestIGD(t, nil)
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer dead.Close()
	if r := ti.gena(t, "SUBSCRIBE", evtIP1, map[string]string{"CALLBACK": "<" + dead.URL + ">", "NT": "upnp:event"}); r.StatusCode != 200 {
		t.Fatal(r.StatusCode)
	}
	for i := 0; i < 50 && ti.s.Stats().Subscriptions != 0; i++ {
		ti.s.coreEvent(mapping.Event{Kind: mapping.EventMappings})
		waitIdle(t, ti.s)
	}
	if st := ti.s.Stats(); st.Subscriptions != 0 || st.EventsFailed < maxNotifyFailure {
		t.Errorf("dead subscriber kept: %+v", st)
	}
}

// waitIdle waits until no event sender runs (bounded).
func waitIdle(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.gena.mu.Lock()
		busy := false
		for _, sub := range s.gena.subs {
			busy = busy || sub.sending
		}
		s.gena.mu.Unlock()
		if !busy {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("event senders still busy after 10 s")
}
