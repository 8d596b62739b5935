package mapping

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/upstream"
)

// Issue 17: what pcpgw tells a LAN client must be true at the provider.

// TestPCPPreferFailureUpstream (17.1): a LAN PCP client's PREFER_FAILURE
// goes upstream; with the port taken at the provider the client is told
// CANNOT_PROVIDE_EXTERNAL and nothing is left behind. Without it, the
// client gets another port.
func TestPCPPreferFailureUpstream(t *testing.T) {
	up := newFakeUp()
	up.taken[18080] = true
	c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
	r := req(OriginPCP, host, TCP, 8080, 18080, time.Hour)
	r.ExactPort = true
	_, err := c.Map(context.Background(), r)
	wantCode(t, err, CodeCannotProvideExternal)
	if !up.lastMap().PreferFailure {
		t.Errorf("upstream request without PREFER_FAILURE: %+v", up.lastMap())
	}
	if c.Count() != 0 || len(fw.Forwards()) != 0 {
		t.Errorf("left behind: %d mappings, kernel %v", c.Count(), fw.Forwards())
	}
	r.ExactPort = false
	m, err := c.Map(context.Background(), r)
	if err != nil || m.External.Port() == 18080 || up.lastMap().PreferFailure {
		t.Errorf("without PREFER_FAILURE: %+v %v (request %+v)", m, err, up.lastMap())
	}
}

// TestRecreateKeepsPort (17.2, RFC 6970 §5.10): after the provider lost
// its state, an exact mapping is asked for again with PREFER_FAILURE; when
// another took its port meanwhile it stays on its port, failing, instead
// of moving, and lookups by its port still find it.
func TestRecreateKeepsPort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		m, err := c.Map(context.Background(), req(OriginUPnP, host, TCP, 8080, 18080, 0))
		if err != nil {
			t.Fatal(err)
		}
		up.mu.Lock()
		up.taken[18080] = true
		up.mu.Unlock()
		up.events <- upstream.Event{Kind: upstream.EventStateLost, Spread: true}
		time.Sleep(6 * time.Second)
		synctest.Wait()
		last := up.lastMap()
		if !last.PreferFailure || last.SuggestedExternal.Port() != 18080 {
			t.Errorf("re-created with %+v", last)
		}
		got, _ := c.Get(m.ID)
		if got.External != m.External || got.Upstream != UpstreamFailing {
			t.Errorf("after the re-creation %+v (was %v)", got, m.External)
		}
		if ms := c.Find(Selector{Proto: TCP, External: 18080}); len(ms) != 1 {
			t.Errorf("lookup by port 18080: %+v", ms)
		}
	})
}

// TestDeleteAllSkipsStatic (17.7, RFC 6886 §3.4): NAT-PMP's delete-all
// deletes what may be deleted; a static forward of the host stays and the
// others go, with no error.
func TestDeleteAllSkipsStatic(t *testing.T) {
	up := newFakeUp()
	c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
	ctx := context.Background()
	static := Request{Origin: OriginStatic, Client: host, Proto: TCP, Internal: netip.AddrPortFrom(host, 80), ExternalPort: 18000, ExactPort: true}
	if _, err := c.Map(ctx, static); err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint16{5000, 5001} {
		if _, err := c.Map(ctx, req(OriginNATPMP, host, TCP, p, p, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.Delete(ctx, Selector{Client: host, Proto: TCP, Internal: netip.AddrPortFrom(host, 0)})
	if err != nil || n != 2 {
		t.Fatalf("delete all: %d %v, want 2 nil", n, err)
	}
	if ms := c.Find(Selector{}); len(ms) != 1 || ms[0].Origin != OriginStatic {
		t.Errorf("left: %+v", ms)
	}
	// One mapping named: still refused.
	_, err = c.Delete(ctx, Selector{Client: host, Proto: TCP, Internal: netip.AddrPortFrom(host, 80)})
	wantCode(t, err, CodeNotAuthorized)
}

// TestWithdrawnMappingForgotten (17.5): the provider ends a mapping by
// itself (RFC 6887 §14.2); the core forgets it, kernel included, so no
// LAN client is told it exists. A static forward stays, failing, and is
// asked for again after the error's lifetime.
func TestWithdrawnMappingForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		ctx := context.Background()
		m, err := c.Map(ctx, req(OriginNATPMP, host, TCP, 8080, 18080, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		static := Request{Origin: OriginStatic, Client: host, Proto: TCP, Internal: netip.AddrPortFrom(host, 80), ExternalPort: 18000, ExactPort: true}
		s, err := c.Map(ctx, static)
		if err != nil {
			t.Fatal(err)
		}
		nonceOf := func(id uint32) Nonce {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.entries[id].nonce
		}
		withdraw := func(id uint32) {
			res := upstream.MapResult{Nonce: pcp.Nonce(nonceOf(id))}
			rq := upstream.MapRequest{Protocol: 6}
			up.events <- upstream.Event{Kind: upstream.EventWithdrawn, Mapping: &res, Request: &rq,
				Err: &upstream.Error{Kind: upstream.KindPCP, Code: pcp.NotAuthorized, Lifetime: 600, Until: time.Now().Add(600 * time.Second)}}
			synctest.Wait()
		}
		n0, _ := up.counts()
		withdraw(m.ID)
		if _, ok := c.Get(m.ID); ok || len(fw.Forwards()) != 1 {
			t.Errorf("still there: kernel %v", fw.Forwards())
		}
		withdraw(s.ID)
		got, ok := c.Get(s.ID)
		if !ok || got.Upstream != UpstreamFailing || got.UpstreamErr == "" {
			t.Fatalf("static forward after the withdrawal: %+v %v", got, ok)
		}
		time.Sleep(599 * time.Second)
		synctest.Wait()
		if n, _ := up.counts(); n != n0 {
			t.Errorf("asked again within the error lifetime: %d requests", n-n0)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n, _ := up.counts(); n != n0+1 {
			t.Errorf("not asked again after the error lifetime: %d requests", n-n0)
		}
	})
}

// TestRenewalThreeQuarters (17.4, RFC 7648 §3): a renewal is answered from
// the table only while at least 3/4 of the asked lifetime (or of what the
// provider grants at most, when less) is left at the provider; otherwise
// the provider is asked first and the answer waits.
func TestRenewalThreeQuarters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.lifetime = 600
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		ctx := context.Background()
		r := req(OriginPCP, host, UDP, 5000, 15000, 600*time.Second)
		if _, err := c.Map(ctx, r); err != nil {
			t.Fatal(err)
		}
		n0, _ := up.counts()
		// 600 s left of 600 asked: from the table.
		if _, err := c.Map(ctx, r); err != nil {
			t.Fatal(err)
		}
		if n, _ := up.counts(); n != n0 {
			t.Errorf("renewal with the lifetime left went upstream")
		}
		// 300 s left at the provider of the 600 it grants (< 450):
		// upstream first, answered after.
		time.Sleep(300 * time.Second)
		synctest.Wait()
		n0, _ = up.counts()
		up.block = make(chan struct{})
		r.Lifetime = 3600 * time.Second
		done := make(chan error, 1)
		go func() { _, err := c.Map(ctx, r); done <- err }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("answered before the provider: %v", err)
		default:
		}
		if n, _ := up.counts(); n != n0+1 {
			t.Fatalf("%d upstream requests, want 1", n-n0)
		}
		close(up.block)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestExactMappingFollowsNewAddress (review finding): the provider lost
// its state and came back with another external address; an exact
// mapping is asked for on its port with no address and is made again
// there, not left failing on the old address.
func TestExactMappingFollowsNewAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		m, err := c.Map(context.Background(), req(OriginUPnP, host, TCP, 8080, 18080, 0))
		if err != nil {
			t.Fatal(err)
		}
		up.mu.Lock()
		up.ext = netip.MustParseAddr("198.51.100.20")
		up.mu.Unlock()
		up.events <- upstream.Event{Kind: upstream.EventStateLost}
		time.Sleep(time.Second)
		synctest.Wait()
		got, _ := c.Get(m.ID)
		if got.Upstream != UpstreamOK || got.External != netip.MustParseAddrPort("198.51.100.20:18080") {
			t.Errorf("after the provider came back with another address: %+v", got)
		}
	})
}

// TestMappingUpdateDoesNotMoveExact (review finding): an unsolicited MAP
// answer giving an exact mapping another port does not move it: its port
// is asked for again.
func TestMappingUpdateDoesNotMoveExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		m, err := c.Map(context.Background(), req(OriginUPnP, host, TCP, 8080, 18080, 0))
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		nonce := c.entries[m.ID].nonce
		c.mu.Unlock()
		n0, _ := up.counts()
		res := upstream.MapResult{External: netip.MustParseAddrPort("203.0.113.1:19999"), Lifetime: 3600, Nonce: pcp.Nonce(nonce)}
		rq := upstream.MapRequest{Protocol: 6}
		up.events <- upstream.Event{Kind: upstream.EventExternalChanged, Mapping: &res, Request: &rq}
		time.Sleep(time.Second)
		synctest.Wait()
		got, _ := c.Get(m.ID)
		if got.External.Port() != 18080 {
			t.Errorf("moved to %v", got.External)
		}
		if n, _ := up.counts(); n != n0+1 || !up.lastMap().PreferFailure || up.lastMap().SuggestedExternal.Port() != 18080 {
			t.Errorf("not asked for its port again: %d requests, last %+v", n-n0, up.lastMap())
		}
	})
}

// TestRetryKeepsFirstNonce (17.3): a mapping the provider has not
// answered is asked again, after the retry wait and when the provider is
// heard from again, with the nonce of its first request (RFC 6887
// §8.1.1, §11.2): the first request may still be made at the provider
// (the upstream client retransmits it), and a request or a delete with
// another nonce would be refused there.
func TestRetryKeepsFirstNonce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.err = context.DeadlineExceeded
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up})
		_, err := c.Map(context.Background(), req(OriginNATPMP, host, UDP, 9000, 0, time.Hour))
		wantCode(t, err, CodeNetworkFailure)
		time.Sleep(retryAfterTimeout) // the scheduled retry, unanswered too
		synctest.Wait()
		up.mu.Lock()
		up.err = nil
		up.mu.Unlock()
		up.events <- upstream.Event{Kind: upstream.EventReachable}
		synctest.Wait()
		ms := c.Find(Selector{Client: host})
		if len(ms) != 1 || ms[0].Upstream != UpstreamOK {
			t.Fatalf("after the provider answered: %+v", ms)
		}
		up.mu.Lock()
		maps := slices.Clone(up.maps)
		up.mu.Unlock()
		if len(maps) < 3 {
			t.Fatalf("%d upstream requests, want the first, the timed retry and the one after EventReachable", len(maps))
		}
		for i, r := range maps {
			if r.Nonce != maps[0].Nonce || r.Nonce == (pcp.Nonce{}) {
				t.Errorf("request %d nonce %x, first %x", i, r.Nonce, maps[0].Nonce)
			}
		}
	})
}

// TestDeletePendingGoesUpstream (17.3, RFC 7648 §3: a delete goes
// upstream "regardless of whether or not a local mapping existed"): a
// mapping deleted while its request has not been answered is deleted at
// the provider with that request's nonce. pcpclient retransmits an
// unanswered request for Config.Linger after the core stopped waiting; a
// provider answering it then would hold a mapping pcpgw has forgotten
// (and refuse a later mapping of the same WAN port with a fresh nonce).
func TestDeletePendingGoesUpstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.err = context.DeadlineExceeded
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up})
		_, err := c.Map(context.Background(), req(OriginNATPMP, host, UDP, 9000, 0, time.Hour))
		wantCode(t, err, CodeNetworkFailure)
		synctest.Wait()
		n, err := c.Delete(context.Background(), Selector{Client: host, Origin: OriginNATPMP, Proto: UDP, Internal: netip.AddrPortFrom(host, 9000)})
		if err != nil || n != 1 {
			t.Fatalf("delete: %d %v", n, err)
		}
		synctest.Wait()
		up.mu.Lock()
		defer up.mu.Unlock()
		if len(up.deletes) != 1 {
			t.Fatalf("%d upstream deletes, want 1", len(up.deletes))
		}
		d, m := up.deletes[0], up.maps[0]
		if d.Nonce != m.Nonce || d.Internal != m.Internal || d.Protocol != m.Protocol || d.Lifetime != 0 {
			t.Errorf("delete %+v for request %+v", d, m)
		}
	})
}

// orderUp is fakeUp telling in which order its calls began and ended.
type orderUp struct {
	*fakeUp
	mu  sync.Mutex
	log []string
	at  time.Time // when Delete was called
	// gate, when set, holds Delete until it is closed.
	gate chan struct{}
}

func (o *orderUp) note(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.log = append(o.log, s)
	if s == "delete" {
		o.at = time.Now()
	}
}

func (o *orderUp) Map(ctx context.Context, r upstream.MapRequest) (upstream.MapResult, error) {
	o.note("map")
	defer o.note("map returned")
	return o.fakeUp.Map(ctx, r)
}

func (o *orderUp) Delete(ctx context.Context, r upstream.MapRequest) error {
	o.note("delete")
	defer o.note("delete returned")
	o.mu.Lock()
	gate := o.gate
	o.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return o.fakeUp.Delete(ctx, r)
}

// TestDeleteWhileAskingGoesUpstreamAfter (17.3): a mapping deleted while
// its request is at the provider (no answer yet) cancels that request and
// is deleted there at once, with its nonce, once, and only after the
// request's call returned: a delete that overtook its request (the
// upstream client's goroutines) would leave the request to make the
// mapping again.
func TestDeleteWhileAskingGoesUpstreamAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &orderUp{fakeUp: newFakeUp()}
		up.block = make(chan struct{}) // the provider never answers
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up})
		_, err := c.Map(context.Background(), req(OriginNATPMP, host, UDP, 9000, 0, time.Hour))
		wantCode(t, err, CodeNetworkFailure) // after Config.UpstreamTimeout; the request goes on
		synctest.Wait()
		if _, d := up.counts(); d != 0 {
			t.Fatalf("%d deletes before the mapping was deleted", d)
		}
		start := time.Now()
		n, err := c.Delete(context.Background(), Selector{Client: host, Origin: OriginNATPMP, Proto: UDP, Internal: netip.AddrPortFrom(host, 9000)})
		if err != nil || n != 1 {
			t.Fatalf("delete: %d %v", n, err)
		}
		synctest.Wait()
		up.mu.Lock()
		log, at := slices.Clone(up.log), up.at
		up.mu.Unlock()
		if diff := cmp.Diff([]string{"map", "map returned", "delete", "delete returned"}, log); diff != "" {
			t.Errorf("upstream calls (-want +got):\n%s", diff)
		}
		if at != start {
			t.Errorf("the upstream delete came %v after the LAN's, want at once", at.Sub(start))
		}
		up.fakeUp.mu.Lock()
		defer up.fakeUp.mu.Unlock()
		if len(up.deletes) != 1 || up.deletes[0].Nonce != up.maps[0].Nonce {
			t.Errorf("deletes %+v for request %+v", up.deletes, up.maps[0])
		}
	})
}

// TestNewMappingWaitsForDelete (17.3): a mapping of a WAN port whose
// previous mapping's delete is still on its way upstream is asked for
// only when that delete is done. A NAT-PMP gateway or an IGD deletes by
// protocol and port (the same internal port at the upstream: the CPE's
// WAN port), and would delete the new mapping if the delete came after
// its request; a PCP server still holding the old mapping would refuse
// the new one's nonce.
func TestNewMappingWaitsForDelete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &orderUp{fakeUp: newFakeUp()}
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up})
		r := req(OriginNATPMP, host, UDP, 9000, 0, time.Hour)
		if _, err := c.Map(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		up.mu.Lock()
		up.gate = make(chan struct{}) // the upstream is slow to delete
		up.mu.Unlock()
		sel := Selector{Client: host, Origin: OriginNATPMP, Proto: UDP, Internal: r.Internal}
		if n, err := c.Delete(context.Background(), sel); err != nil || n != 1 {
			t.Fatalf("delete: %d %v", n, err)
		}
		type result struct {
			m   Mapping
			err error
		}
		mapped := make(chan result, 1)
		go func() {
			m, err := c.Map(context.Background(), r)
			mapped <- result{m, err}
		}()
		synctest.Wait()
		up.mu.Lock()
		log := slices.Clone(up.log)
		close(up.gate)
		up.mu.Unlock()
		if diff := cmp.Diff([]string{"map", "map returned", "delete"}, log); diff != "" {
			t.Errorf("upstream calls while the delete is on its way (-want +got):\n%s", diff)
		}
		res := <-mapped
		if res.err != nil || res.m.External.Port() != 9000 {
			t.Fatalf("new mapping: %+v %v", res.m, res.err)
		}
		up.mu.Lock()
		log = slices.Clone(up.log)
		up.mu.Unlock()
		want := []string{"map", "map returned", "delete", "delete returned", "map", "map returned"}
		if diff := cmp.Diff(want, log); diff != "" {
			t.Errorf("upstream calls (-want +got):\n%s", diff)
		}
		up.fakeUp.mu.Lock()
		defer up.fakeUp.mu.Unlock()
		if a, b := up.maps[0], up.maps[1]; a.Internal != b.Internal || a.Nonce == b.Nonce {
			t.Errorf("the new mapping's request %+v, the old one's %+v: want the same WAN port, another nonce", b, a)
		}
	})
}
