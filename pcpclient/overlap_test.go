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

// TestDeleteNotEndedByRenewalAnswer (issue 18): a renewal and a delete of
// the same mapping share opcode, protocol, internal port and nonce. The
// delete supersedes the renewal in flight; the renewal's answer (SUCCESS,
// lifetime 600) arriving then is not the delete's: the delete goes on
// until the server answers it (lifetime 0), and the server's mapping is
// gone. Taking it ended the delete while the server kept the mapping (an
// orphan: seen in the lab when pcpgw deleted mappings it was renewing).
func TestDeleteNotEndedByRenewalAnswer(t *testing.T) {
	srv := newFake(t)
	srv.SetEpoch(func() uint32 { return 1000 })
	c := newClient(t, srv, nil)
	ctx := ctxT(t, 10*time.Second)
	internal := netip.MustParseAddrPort("127.0.0.1:80")
	res, err := c.Map(ctx, MapRequest{Protocol: 6, Internal: internal, Lifetime: 600})
	if err != nil {
		t.Fatal(err)
	}
	to := srv.Requests()[0].From
	srv.DropNext(1 << 20)
	renew := MapRequest{Protocol: 6, Internal: internal, Lifetime: 600, Nonce: res.Nonce, SuggestedExternal: res.External}
	go c.Map(ctx, renew)
	sent := func(life uint32) func() bool {
		return func() bool {
			for _, r := range srv.Requests()[1:] {
				if r.PCP != nil && r.PCP.Lifetime == life {
					return true
				}
			}
			return false
		}
	}
	eventually(t, 2*time.Second, sent(600), "the renewal was not sent")
	deleted := make(chan error, 1)
	go func() { deleted <- c.Delete(ctx, MapRequest{Protocol: 6, Internal: internal, Nonce: res.Nonce}) }()
	eventually(t, 2*time.Second, sent(0), "the delete was not sent")

	// The renewal's answer comes (the server got it before the delete).
	before := c.Status().Dropped
	answer := pcp.Response{Version: pcp.Version, Opcode: pcp.OpMap, Result: pcp.Success, Lifetime: 600, Epoch: 1000,
		Map: &pcp.Map{Nonce: res.Nonce, Protocol: 6, InternalPort: internal.Port(), ExternalPort: res.External.Port(), ExternalAddr: res.External.Addr()}}
	if err := srv.SendRaw(to, answer.AppendMarshal(nil)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, func() bool {
		select {
		case err := <-deleted:
			deleted <- err
			return true
		default:
		}
		return c.Status().Dropped > before
	}, "the renewal's answer was neither taken nor dropped")
	select {
	case err := <-deleted:
		t.Fatalf("the delete ended with the renewal's answer (%v); the server still holds %d mappings", err, srv.Mappings())
	default:
	}
	srv.DropNext(0)
	if err := <-deleted; err != nil {
		t.Fatalf("delete: %v", err)
	}
	if n := srv.Mappings(); n != 0 {
		t.Fatalf("the server holds %d mappings after the delete", n)
	}
}

// creates lists the MAP requests with a lifetime (creations, renewals)
// among reqs, and the index of the first delete (lifetime 0), -1 if none.
func creates(reqs []pcptest.Request) (n []int, firstDelete int) {
	firstDelete = -1
	for i, r := range reqs {
		switch {
		case r.PCP == nil || r.PCP.Map == nil:
		case r.PCP.Lifetime > 0:
			n = append(n, i)
		case firstDelete < 0:
			firstDelete = i
		}
	}
	return n, firstDelete
}

// TestDeleteStopsLingeringCreate (issue 17.3): a creation whose caller
// gave up (ErrTimeout) goes on in the background for Config.Linger; a
// delete of the same mapping (its nonce) ends it. After the delete the
// server gets no more of it (it would make again, for the rest of the
// linger, a mapping its owner has forgotten), and holds no mapping.
func TestDeleteStopsLingeringCreate(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, func(cfg *Config) { cfg.Linger = time.Minute })
	internal := netip.MustParseAddrPort("127.0.0.1:80")
	nonce := pcp.Nonce{0x17, 3}
	srv.DropNext(1 << 20)
	_, err := c.Map(ctxT(t, 100*time.Millisecond), MapRequest{Protocol: 6, Internal: internal, Lifetime: 600, Nonce: nonce})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("map: %v, want ErrTimeout", err)
	}
	deleted := make(chan error, 1)
	go func() {
		deleted <- c.Delete(ctxT(t, 10*time.Second), MapRequest{Protocol: 6, Internal: internal, Nonce: nonce})
	}()
	eventually(t, 2*time.Second, func() bool { _, d := creates(srv.Requests()); return d >= 0 }, "the delete was not sent")
	srv.DropNext(0)
	if err := <-deleted; err != nil {
		t.Fatalf("delete: %v", err)
	}
	// Several retransmission intervals (MRT 200 ms) of the creation, had
	// it lingered on.
	time.Sleep(3 * 200 * time.Millisecond)
	reqs := srv.Requests()
	cs, d := creates(reqs)
	if len(cs) == 0 {
		t.Fatal("the creation was never sent")
	}
	if last := cs[len(cs)-1]; last > d {
		t.Errorf("creation sent again after the delete (request %d, delete %d of %d)", last, d, len(reqs))
	}
	if n := srv.Mappings(); n != 0 {
		t.Errorf("the server holds %d mappings after the delete", n)
	}
}

// TestDeleteSupersedesAtStart: a delete started after a creation of the
// same mapping ends it, whichever of their goroutines sends first (with
// the dispatch keys alone, the creation sent second would end the delete
// and make the mapping again). Both are started under c.mu, so neither
// has sent when the delete starts.
func TestDeleteSupersedesAtStart(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, func(cfg *Config) { cfg.Linger = time.Minute })
	internal := netip.MustParseAddrPort("127.0.0.1:80")
	nonce := pcp.Nonce{0x17, 4}
	create := MapRequest{Protocol: 6, Internal: internal, Lifetime: 600, Nonce: nonce}
	del := MapRequest{Protocol: 6, Internal: internal, Nonce: nonce}
	// Another mapping's creation (another nonce) is not ended.
	other := MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:81"), Lifetime: 600, Nonce: pcp.Nonce{0x17, 5}}
	c.mu.Lock()
	ct := c.startLocked(kindMap, create, netip.AddrPort{}, c.idOf(kindMap, create, netip.AddrPort{}))
	ot := c.startLocked(kindMap, other, netip.AddrPort{}, c.idOf(kindMap, other, netip.AddrPort{}))
	dt := c.startLocked(kindMap, del, netip.AddrPort{}, c.idOf(kindMap, del, netip.AddrPort{}))
	for _, t := range []*txn{ct, ot, dt} {
		c.armLingerLocked(t)
	}
	c.mu.Unlock()
	for _, x := range []struct {
		name string
		t    *txn
		want error
	}{{"creation", ct, ErrSuperseded}, {"delete", dt, nil}, {"other creation", ot, nil}} {
		select {
		case <-x.t.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no result", x.name)
		}
		err := x.t.err
		var re *ResultError
		if x.t == dt && errors.As(err, &re) && re.Code == pcp.NoResources {
			err = nil // the fake's answer to deleting what it does not have (Delete: done)
		}
		if !errors.Is(err, x.want) || x.want == nil && err != nil {
			t.Errorf("%s: %v, want %v", x.name, x.t.err, x.want)
		}
	}
	for i, r := range srv.Requests() {
		if r.PCP != nil && r.PCP.Map != nil && r.PCP.Map.Nonce == nonce && r.PCP.Lifetime > 0 {
			t.Errorf("request %d: the superseded creation was sent", i)
		}
	}
	if n := srv.Mappings(); n != 1 {
		t.Errorf("the server holds %d mappings, want the other one", n)
	}
}
