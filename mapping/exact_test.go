package mapping

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/upstream"
)

// eventsOf collects the events of kind k waiting on ch.
func eventsOf(ch <-chan Event, k EventKind) []Event {
	var out []Event
	for {
		select {
		case ev := <-ch:
			if ev.Kind == k {
				out = append(out, ev)
			}
		default:
			return out
		}
	}
}

func exactPCP(client netip.Addr, proto Proto, iport, eport uint16, nonce byte) Request {
	r := req(OriginPCP, client, proto, iport, eport, time.Hour)
	r.ExactPort = true
	r.Nonce = Nonce{nonce}
	return r
}

// TestExactPCPLostPort (RFC 6887 §11.3, §13.2, §14.2): a LAN PCP client's
// PREFER_FAILURE mapping whose port the provider cannot give back after it
// lost its state is not moved, nor kept as if it stood: it ends (kernel
// included), subscribers get EventMappingLost with CANNOT_PROVIDE_EXTERNAL
// and the endpoint the client knew, and the client asking again with
// PREFER_FAILURE is told CANNOT_PROVIDE_EXTERNAL; without it, it gets
// another port.
func TestExactPCPLostPort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		ctx := context.Background()
		events, stop := c.Subscribe()
		defer stop()
		r := exactPCP(host, TCP, 8080, 18080, 9)
		m, err := c.Map(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		eventsOf(events, EventMappingLost)
		up.mu.Lock()
		up.taken[18080] = true
		up.mu.Unlock()
		up.events <- upstream.Event{Kind: upstream.EventStateLost, Spread: true}
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if last := up.lastMap(); !last.PreferFailure || last.SuggestedExternal.Port() != 18080 {
			t.Errorf("re-created with %+v", last)
		}
		var all []Event
		for {
			select {
			case ev := <-events:
				all = append(all, ev)
				continue
			default:
			}
			break
		}
		var lost []Event
		for _, ev := range all {
			switch ev.Kind {
			case EventMappingLost:
				lost = append(lost, ev)
			case EventMappingMoved:
				t.Errorf("moved: %+v", ev)
			}
		}
		if len(lost) != 1 || lost[0].Mapping.ID != m.ID || lost[0].Mapping.Nonce != r.Nonce || lost[0].Was != m.External ||
			CodeOf(lost[0].Err) != CodeCannotProvideExternal {
			t.Fatalf("lost events %+v", lost)
		}
		if _, ok := c.Get(m.ID); ok || len(fw.Forwards()) != 0 || len(fw.Hairpins()) != 0 {
			t.Errorf("still there: kernel %v %v", fw.Forwards(), fw.Hairpins())
		}
		_, err = c.Map(ctx, r)
		wantCode(t, err, CodeCannotProvideExternal)
		if code, _ := PCPResult(err); code != pcp.CannotProvideExternal {
			t.Errorf("PCP result %v", code)
		}
		if c.Count() != 0 {
			t.Errorf("%d mappings after the refused request", c.Count())
		}
		r.ExactPort = false
		got, err := c.Map(ctx, r)
		if err != nil || got.External.Port() != 19080 {
			t.Errorf("without PREFER_FAILURE: %+v %v", got, err)
		}
	})
}

// TestExactPCPLostAtNewUpstream: another upstream takes over and cannot
// give the exact mapping its port: it ends and its client is told, as
// after a loss of state; an IGD AddPortMapping one stays on its port,
// failing (RFC 6970 §5.10: IGD has no way to tell its control point).
func TestExactPCPLostAtNewUpstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		ctx := context.Background()
		events, stop := c.Subscribe()
		defer stop()
		p, err := c.Map(ctx, exactPCP(host, UDP, 5000, 15000, 3))
		if err != nil {
			t.Fatal(err)
		}
		u, err := c.Map(ctx, req(OriginUPnP, host, TCP, 8081, 18081, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		up.mu.Lock()
		up.taken[15000], up.taken[18081] = true, true
		up.mu.Unlock()
		up.setKind(upstream.KindNATPMP)
		time.Sleep(time.Second)
		synctest.Wait()
		if lost := eventsOf(events, EventMappingLost); len(lost) != 1 || lost[0].Mapping.ID != p.ID || lost[0].Was != p.External {
			t.Errorf("lost events %+v", lost)
		}
		if _, ok := c.Get(p.ID); ok {
			t.Error("the PCP mapping is still there")
		}
		if got, ok := c.Get(u.ID); !ok || got.Upstream != UpstreamFailing {
			t.Errorf("the IGD mapping %+v %v", got, ok)
		}
	})
}

// TestPCPPreferFailureRenewal (RFC 6887 §11.3, first rule): a renewal
// with PREFER_FAILURE whose suggested port is not the mapping's is told
// CANNOT_PROVIDE_EXTERNAL and changes nothing; suggesting the mapping's
// own port it succeeds and the mapping keeps that port from then on: when
// the provider cannot give it back, it ends instead of moving.
func TestPCPPreferFailureRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		ctx := context.Background()
		events, stop := c.Subscribe()
		defer stop()
		r := req(OriginPCP, host, UDP, 5000, 15000, time.Hour)
		r.Nonce = Nonce{5}
		m, err := c.Map(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		// The provider lost its state and gave it 16000 (a move, its
		// client told).
		up.mu.Lock()
		up.taken[15000] = true
		up.mu.Unlock()
		up.events <- upstream.Event{Kind: upstream.EventStateLost}
		time.Sleep(time.Second)
		synctest.Wait()
		if ms := eventsOf(events, EventMappingMoved); len(ms) != 1 || ms[0].Mapping.External.Port() != 16000 {
			t.Fatalf("moves %+v", ms)
		}
		// The client did not hear of it and asks for 15000 exactly.
		r.ExactPort = true
		_, err = c.Map(ctx, r)
		wantCode(t, err, CodeCannotProvideExternal)
		if got, ok := c.Get(m.ID); !ok || got.External.Port() != 16000 || got.Upstream != UpstreamOK {
			t.Errorf("after the refused renewal %+v %v", got, ok)
		}
		// For 16000 exactly: renewed.
		r.ExternalPort = 16000
		got, err := c.Map(ctx, r)
		if err != nil || got.ID != m.ID || got.External.Port() != 16000 {
			t.Fatalf("renewal of its own port: %+v %v", got, err)
		}
		// Now exact: the provider cannot give 16000 back, so it ends.
		up.mu.Lock()
		up.taken[16000] = true
		up.mu.Unlock()
		up.events <- upstream.Event{Kind: upstream.EventStateLost}
		time.Sleep(time.Second)
		synctest.Wait()
		if last := up.lastMap(); !last.PreferFailure || last.SuggestedExternal.Port() != 16000 {
			t.Errorf("re-created with %+v", last)
		}
		if lost := eventsOf(events, EventMappingLost); len(lost) != 1 || lost[0].Mapping.ID != m.ID {
			t.Errorf("lost events %+v", lost)
		}
		if _, ok := c.Get(m.ID); ok {
			t.Error("still there")
		}
	})
}

// TestPCPExactDoesNotReplace: PCP has no replacing: PREFER_FAILURE for a
// port the host's mapping of another internal port holds is refused
// (CANNOT_PROVIDE_EXTERNAL) and that mapping stays, where IGD's
// AddPortMapping replaces it.
func TestPCPExactDoesNotReplace(t *testing.T) {
	up := newFakeUp()
	c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
	ctx := context.Background()
	a, err := c.Map(ctx, exactPCP(host, TCP, 8080, 18080, 1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Map(ctx, exactPCP(host, TCP, 9090, 18080, 2))
	if code, _ := PCPResult(err); code != pcp.CannotProvideExternal {
		t.Errorf("PREFER_FAILURE for a port the host's other mapping holds: %v (%v)", code, err)
	}
	if _, ok := c.Get(a.ID); !ok || c.Count() != 1 {
		t.Errorf("the mapping holding the port is gone (%d mappings)", c.Count())
	}
}

// TestWithdrawnPCPTold: a PCP mapping the provider ends by itself (RFC
// 6887 §14.2) is told to subscribers with the provider's refusal, so that
// its client learns it.
func TestWithdrawnPCPTold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		events, stop := c.Subscribe()
		defer stop()
		m, err := c.Map(context.Background(), req(OriginPCP, host, TCP, 8080, 18080, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		nonce := c.entries[m.ID].nonce
		c.mu.Unlock()
		res := upstream.MapResult{Nonce: pcp.Nonce(nonce)}
		up.events <- upstream.Event{Kind: upstream.EventWithdrawn, Mapping: &res, Request: &upstream.MapRequest{Protocol: 6},
			Err: &upstream.Error{Kind: upstream.KindPCP, Code: pcp.NotAuthorized, Lifetime: 600}}
		synctest.Wait()
		lost := eventsOf(events, EventMappingLost)
		if len(lost) != 1 || lost[0].Mapping.ID != m.ID || lost[0].Was != m.External {
			t.Fatalf("lost events %+v", lost)
		}
		if code, life := PCPResult(lost[0].Err); code != pcp.NotAuthorized || life != 600 {
			t.Errorf("told %v lifetime %d", code, life)
		}
	})
}
