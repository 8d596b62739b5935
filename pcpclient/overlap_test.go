package pcpclient

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient/pcptest"
)

// TestConcurrentOverlappingMaps: many concurrent Maps, identical ones
// (joined), near-identical ones (same mapping and nonce, another lifetime)
// and fresh ones, while the server loses a share of the requests: every
// call ends well before its deadline, with an answer or ErrSuperseded,
// never by waiting out its context.
func TestConcurrentOverlappingMaps(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, nil)
	const n = 60
	ctx := ctxT(t, 10*time.Second)
	// Existing mappings to renew with their nonces.
	base := make([]MapResult, n)
	for i := range n {
		r, err := c.Map(ctx, MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(lanHost, uint16(40000+i)), ThirdParty: true, Lifetime: 600})
		if err != nil {
			t.Fatal(err)
		}
		base[i] = r
	}
	srv.DropNext(2 * n)
	callCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var hung, superseded, ok int
	for i := range n {
		renew := MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(lanHost, uint16(40000+i)), ThirdParty: true, Lifetime: 600, Nonce: base[i].Nonce, SuggestedExternal: base[i].External}
		near := renew
		near.Lifetime = uint32(300 + i)
		fresh := MapRequest{Protocol: 17, Internal: netip.AddrPortFrom(lanHost, uint16(40000+i)), ThirdParty: true, Lifetime: 600, PreferFailure: true, SuggestedExternal: netip.AddrPortFrom(netip.Addr{}, uint16(50000+i))}
		for _, r := range []MapRequest{renew, renew, near, fresh, fresh} {
			wg.Go(func() {
				_, err := c.Map(callCtx, r)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, ErrSuperseded):
					superseded++
				default:
					hung++
					if hung < 5 {
						t.Errorf("%+v: %v", r, err)
					}
				}
			})
		}
	}
	wg.Wait()
	t.Logf("ok %d, superseded %d, failed %d; %+v", ok, superseded, hung, c.Status())
	if ok < 3*n {
		t.Errorf("only %d answered", ok)
	}
}

// TestPreferFailureWhileProbeRefused: the external-address probe is refused
// (NOT_AUTHORIZED with an error lifetime, as a CGN refusing the probe
// port) while a PREFER_FAILURE MAP for another mapping runs: the MAP is
// neither held back nor answered with the probe's error, and the probe is
// not repeated within probeHold.
func TestPreferFailureWhileProbeRefused(t *testing.T) {
	srv := newFake(t)
	clk := newFakeClock()
	c := newClient(t, srv, func(cfg *Config) { cfg.Now = clk.Now })
	// An error lifetime of 0: the probe is still held probeHold.
	srv.SetError(pcp.NotAuthorized, 0)
	srv.SetMode(pcptest.ErrorResult)
	ctx := ctxT(t, 5*time.Second)
	if _, err := c.ExternalAddr(ctx); err == nil {
		t.Fatal("probe not refused")
	}
	sent := c.Status().Sent
	for range 3 {
		if _, err := c.ExternalAddr(ctx); !errors.Is(err, ErrBackoff) {
			t.Fatalf("repeated probe: %v, want ErrBackoff", err)
		}
	}
	if got := c.Status().Sent; got != sent {
		t.Errorf("refused probe repeated: Sent %d -> %d", sent, got)
	}
	clk.Add(probeHold + time.Second)
	if _, err := c.ExternalAddr(ctx); errors.Is(err, ErrBackoff) || c.Status().Sent != sent+1 {
		t.Errorf("probe after the hold: %v, Sent %d -> %d", err, sent, c.Status().Sent)
	}
	srv.SetMode(pcptest.Normal)
	res, err := c.Map(ctx, MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(lanHost, 8443), ThirdParty: true, PreferFailure: true, SuggestedExternal: netip.AddrPortFrom(netip.Addr{}, 18443), Lifetime: 600, Description: "web server"})
	if err != nil || res.External.Port() != 18443 {
		t.Fatalf("map %v %v", res, err)
	}
}
