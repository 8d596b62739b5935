package mapping

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/upstream"
)

// moves collects the EventMappingMoved events waiting on ch.
func moves(ch <-chan Event) []Event {
	var out []Event
	for {
		select {
		case ev := <-ch:
			if ev.Kind == EventMappingMoved {
				out = append(out, ev)
			}
		default:
			return out
		}
	}
}

// TestMovedAfterStateLoss (issue 17.2): a mapping that was not asked for
// exactly (NAT-PMP, PCP without PREFER_FAILURE, AddAnyPortMapping) comes
// back from the provider on another port after it lost its state: the
// core takes it, keeps the first port it gave (Given, in the state file
// too), and tells subscribers (EventMappingMoved with the mapping, its
// origin and client, and the old endpoint). A NAT-PMP mapping's move
// restarts the epoch (RFC 6886 §3.7), a PCP one's does not (its client
// gets a Mapping Update).
func TestMovedAfterStateLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		up := newFakeUp()
		c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true, StateDir: dir})
		ctx := context.Background()
		events, stop := c.Subscribe()
		defer stop()
		pmp, err := c.Map(ctx, req(OriginNATPMP, host, TCP, 8080, 18080, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		r := req(OriginPCP, host, UDP, 5000, 15000, time.Hour)
		r.Nonce = Nonce{7}
		pcpm, err := c.Map(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if pmp.Given != 18080 || pcpm.Given != 15000 {
			t.Fatalf("given ports %d %d", pmp.Given, pcpm.Given)
		}
		time.Sleep(time.Hour / 2)
		epoch := c.Epoch(time.Now())
		moves(events)

		up.mu.Lock()
		up.taken[18080], up.taken[15000] = true, true
		up.mu.Unlock()
		up.events <- upstream.Event{Kind: upstream.EventStateLost, Spread: true}
		time.Sleep(6 * time.Second)
		synctest.Wait()

		got := map[uint32]Event{}
		for _, ev := range moves(events) {
			got[ev.Mapping.ID] = ev
		}
		for _, w := range []struct {
			m      Mapping
			origin Origin
			port   uint16
		}{{pmp, OriginNATPMP, 19080}, {pcpm, OriginPCP, 16000}} {
			ev, ok := got[w.m.ID]
			if !ok {
				t.Errorf("no move event for the %v mapping", w.origin)
				continue
			}
			if ev.Was != w.m.External || ev.Mapping.External != netip.AddrPortFrom(w.m.External.Addr(), w.port) ||
				ev.Mapping.Origin != w.origin || ev.Mapping.Client != host || ev.Mapping.Given != w.m.Given {
				t.Errorf("move of the %v mapping: was %v now %+v", w.origin, ev.Was, ev.Mapping)
			}
			m, _ := c.Get(w.m.ID)
			if m.External.Port() != w.port || m.Given != w.m.Given || m.WANPort != w.m.WANPort {
				t.Errorf("%v mapping after the move: %+v", w.origin, m)
			}
		}
		if len(got) != 2 {
			t.Errorf("%d moves, want 2", len(got))
		}
		// The CPE's own DNAT (WAN port to the LAN host) did not change.
		if n := len(fw.Forwards()); n != 2 {
			t.Errorf("kernel forwards %v", fw.Forwards())
		}
		if e := c.Epoch(time.Now()); e >= epoch {
			t.Errorf("epoch %d after a NAT-PMP mapping moved, was %d: not restarted", e, epoch)
		}
		// The state file keeps the first port given.
		time.Sleep(time.Second)
		synctest.Wait()
		b, err := os.ReadFile(filepath.Join(dir, StateFile))
		if err != nil {
			t.Fatal(err)
		}
		var st stateFile
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		for _, sm := range st.Mappings {
			if sm.ID == pmp.ID && (sm.Given != 18080 || sm.External != "203.0.113.1:19080") {
				t.Errorf("stored %+v", sm)
			}
		}
	})
}

// TestMovedPCPKeepsEpoch: a PCP mapping that moves (here by the
// provider's Mapping Update, RFC 6887 §14.2) is told to subscribers; the
// epoch goes on (the LAN client gets a Mapping Update, not a restart).
func TestMovedPCPKeepsEpoch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		ctx := context.Background()
		events, stop := c.Subscribe()
		defer stop()
		m, err := c.Map(ctx, req(OriginPCP, host, UDP, 5000, 15000, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		epoch := c.Epoch(time.Now())
		c.mu.Lock()
		nonce := c.entries[m.ID].nonce
		c.mu.Unlock()
		res := upstream.MapResult{External: netip.MustParseAddrPort("203.0.113.1:25000"), Lifetime: 3600, Nonce: pcp.Nonce(nonce)}
		rq := upstream.MapRequest{Protocol: 17}
		up.events <- upstream.Event{Kind: upstream.EventExternalChanged, Mapping: &res, Request: &rq}
		synctest.Wait()
		ms := moves(events)
		if len(ms) != 1 || ms[0].Was != m.External || ms[0].Mapping.External != res.External || ms[0].Mapping.Nonce != m.Nonce {
			t.Fatalf("moves %+v", ms)
		}
		if e := c.Epoch(time.Now()); e < epoch {
			t.Errorf("epoch restarted (%d, was %d) for a PCP mapping", e, epoch)
		}
		// A renewal that finds it where it is tells nothing.
		if _, err := c.Map(ctx, req(OriginPCP, host, UDP, 5000, 15000, time.Hour)); err != nil {
			t.Fatal(err)
		}
		if ms := moves(events); len(ms) != 0 {
			t.Errorf("moves after a renewal: %+v", ms)
		}
	})
}

// TestMovedAtAnotherUpstream: when another upstream takes over (here a
// NAT-PMP gateway that gives other ports), a mapping made there again on
// another port is a move; an exact one keeps its port or fails.
func TestMovedAtAnotherUpstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		ctx := context.Background()
		events, stop := c.Subscribe()
		defer stop()
		anyPort := req(OriginUPnP, host, TCP, 8080, 18080, time.Hour)
		anyPort.ExactPort = false // AddAnyPortMapping
		m, err := c.Map(ctx, anyPort)
		if err != nil {
			t.Fatal(err)
		}
		exact, err := c.Map(ctx, req(OriginUPnP, host, TCP, 8081, 18081, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		moves(events)
		up.mu.Lock()
		up.taken[18080], up.taken[18081] = true, true
		up.mu.Unlock()
		up.setKind(upstream.KindNATPMP)
		time.Sleep(time.Second)
		synctest.Wait()
		ms := moves(events)
		if len(ms) != 1 || ms[0].Mapping.ID != m.ID || ms[0].Mapping.External.Port() != 19080 || ms[0].Was != m.External {
			t.Fatalf("moves %+v", ms)
		}
		if got, _ := c.Get(exact.ID); got.Upstream != UpstreamFailing || got.Given != 18081 {
			t.Errorf("exact mapping %+v", got)
		}
		// Lookups by the first port still find the moved mapping.
		if got, _ := c.Get(m.ID); got.Given != 18080 || got.External.Port() != 19080 {
			t.Errorf("moved mapping %+v", got)
		}
	})
}
