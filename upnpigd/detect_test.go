package upnpigd

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pcpgw/pcpgw/firewall/firewalltest"
	"github.com/pcpgw/pcpgw/internal/httpd"
	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/upstream"
)

// detectingUpstream is the provider's PCP server behind an upstream that
// is being detected, as upstream.Auto is at start and after a WAN change:
// Kind, Map and ExternalAddr wait until detected is closed (or their
// context ends, then failing as Auto does). It grants the port asked for.
type detectingUpstream struct {
	detected chan struct{}
	mu       sync.Mutex
	maps     int
}

var errStillLooking = errors.New("upstream: still looking for an upstream NAT")

func (u *detectingUpstream) Kind(ctx context.Context) (upstream.Kind, uint64) {
	select {
	case <-u.detected:
		return upstream.KindPCP, 1
	case <-ctx.Done():
		return upstream.KindDetecting, 0
	}
}

func (u *detectingUpstream) Map(ctx context.Context, r upstream.MapRequest) (upstream.MapResult, error) {
	if k, _ := u.Kind(ctx); k == upstream.KindDetecting {
		return upstream.MapResult{}, errStillLooking
	}
	u.mu.Lock()
	u.maps++
	u.mu.Unlock()
	return upstream.MapResult{External: netip.AddrPortFrom(mustAddr("203.0.113.1"), r.SuggestedExternal.Port()),
		Lifetime: min(r.Lifetime, 3600), Nonce: r.Nonce, At: time.Now()}, nil
}

func (u *detectingUpstream) Delete(context.Context, upstream.MapRequest) error { return nil }

func (u *detectingUpstream) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	if k, _ := u.Kind(ctx); k == upstream.KindDetecting {
		return netip.Addr{}, errStillLooking
	}
	return mustAddr("203.0.113.1"), nil
}

func (u *detectingUpstream) Events() <-chan upstream.Event { return nil }

// TestActionsDuringDetection: GetExternalIPAddress and AddPortMapping
// that arrive while the upstream is being detected (3 s) are answered
// when detection ends as the upstream found says: the provider's address
// (not the empty string of an address not known yet) and the mapping it
// made, asked once. The IGD's own bound on a core call (20 s) is above
// the core's (detection at most mapping.DetectWait, then the upstream's
// timeout).
func TestActionsDuringDetection(t *testing.T) {
	const detection = 2 * time.Second // within externalAddrWait
	for _, tc := range []struct {
		action string
		args   []string
		want   string // in the answer
		maps   int
	}{
		{action: "GetExternalIPAddress", want: "<NewExternalIPAddress>203.0.113.1</NewExternalIPAddress>"},
		{action: "AddPortMapping", args: addArgs("NewInternalClient", "192.0.2.100"), want: "<u:AddPortMappingResponse", maps: 1},
	} {
		t.Run(tc.action, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				up := &detectingUpstream{detected: make(chan struct{})}
				ask := igdOnDetectingCore(t, up)
				time.AfterFunc(detection, func() { close(up.detected) })
				start := time.Now()
				w := ask(tc.action, tc.args...)
				if d := time.Since(start); d != detection {
					t.Errorf("answered after %v, want when detection ended (%v)", d, detection)
				}
				if w.Code != 200 || !strings.Contains(w.Body.String(), tc.want) {
					t.Errorf("HTTP %d, want 200 with %s:\n%s", w.Code, tc.want, w.Body)
				}
				up.mu.Lock()
				maps := up.maps
				up.mu.Unlock()
				if maps != tc.maps {
					t.Errorf("%d upstream requests, want %d", maps, tc.maps)
				}
			})
		})
	}
}

// TestSlowDetectionAnswersInTime (review finding): a detection that
// outlasts mapping.DetectWait (a kind change giving back the old box's
// mappings first) does not hold GetStatusInfo and GetExternalIPAddress
// past externalAddrWait: miniupnpc gives up after 5 s of silence, and
// upnpc asks GetStatusInfo before anything else. The answers say what is
// known then: Disconnected, the empty address (RFC 6970 §4.1).
func TestSlowDetectionAnswersInTime(t *testing.T) {
	for _, tc := range []struct{ action, want string }{
		{"GetExternalIPAddress", "<NewExternalIPAddress></NewExternalIPAddress>"},
		{"GetStatusInfo", "<NewConnectionStatus>Disconnected</NewConnectionStatus>"},
	} {
		t.Run(tc.action, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				up := &detectingUpstream{detected: make(chan struct{})}
				ask := igdOnDetectingCore(t, up)
				defer time.AfterFunc(10*time.Second, func() { close(up.detected) }).Stop()
				start := time.Now()
				w := ask(tc.action)
				if d := time.Since(start); d != externalAddrWait {
					t.Errorf("answered after %v, want %v", d, externalAddrWait)
				}
				if b := w.Body.String(); w.Code != 200 || !strings.Contains(b, tc.want) {
					t.Errorf("HTTP %d %s, want %s", w.Code, b, tc.want)
				}
				close(up.detected)
			})
		})
	}
}

// igdOnDetectingCore runs, until the test ends, a core in nat444 whose
// upstream is up and an IGD:1 server on it, and returns a func that sends
// one SOAP action (args: name, value, ...) from a LAN host and returns the
// answer.
func igdOnDetectingCore(t *testing.T, up *detectingUpstream) func(action string, args ...string) *recorder {
	t.Helper()
	core, err := mapping.New(context.Background(), mapping.Config{
		Mode: mapping.ModeNAT444, WANAddr: mustAddr("100.64.0.2"), Upstream: up, Firewall: firewalltest.New(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); core.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; core.Close() })
	s, err := New(Config{Core: core, IGDv1: true, UUID: "test", Resolve: noLookup})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	lan := mustAddr("192.0.2.1")
	return func(action string, args ...string) *recorder {
		r := &httpd.Request{
			Method: "POST", RequestURI: ctlIP1, Path: ctlIP1, Proto: "HTTP/1.1",
			Header: httpd.Header{"Host": {"192.0.2.1:5000"}, "Soapaction": {quoted(nsIP1, action)},
				"Content-Type": {`text/xml; charset="utf-8"`}},
			Host: "192.0.2.1:5000", Body: []byte(soapBody(nsIP1, action, args...)),
			RemoteAddr: mustAddrPort("192.0.2.100:40000"), LocalAddr: netip.AddrPortFrom(lan, 5000),
		}
		w := newRecorder()
		s.Handler(lan).ServeHTTP(w, r)
		return w
	}
}
