package pcpclient

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient/pcptest"
)

// Issue 18 §2: packets posing as the server (from its address and port,
// to the client's socket) change nothing unless they answer a request the
// client has outstanding; announcements only make it ask.

// unsuppVersion0 is NAT-PMP's UNSUPP_VERSION answer to a PCP MAP request
// (RFC 6886 §3.5, RFC 6887 §9): version 0, opcode 128+1, result 1.
func unsuppVersion0(epoch uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{0, 0x81, 0, 1}, epoch)
}

// TestSpoofedUnsuppVersionIdle: with no request outstanding, version-0
// UNSUPP_VERSION packets from the server's address are dropped and the
// client stays with PCP (one packet used to switch it to NAT-PMP for good).
func TestSpoofedUnsuppVersionIdle(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, nil)
	if _, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 600}); err != nil {
		t.Fatal(err)
	}
	to := srv.Requests()[0].From
	before := c.Status().Dropped
	for i := range 5 {
		srv.SendRaw(to, unsuppVersion0(uint32(i)))
	}
	eventually(t, time.Second, func() bool { return c.Status().Dropped >= before+5 }, "spoofed UNSUPP_VERSION not dropped")
	if st := c.Status(); st.Protocol != "pcp" {
		t.Fatalf("protocol %q after spoofed UNSUPP_VERSION", st.Protocol)
	}
	n := len(srv.Requests())
	if _, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:81"), Lifetime: 600}); err != nil {
		t.Fatal(err)
	}
	if r := srv.Requests()[n]; r.PCP == nil {
		t.Fatalf("next request is not PCP: %x", r.Raw)
	}
}

// natpmpRequested reports whether srv received a NAT-PMP request of
// opcode op.
func natpmpRequested(srv *pcptest.Server, op uint8) bool {
	for _, r := range srv.Requests() {
		if r.NATPMP != nil && r.NATPMP.Opcode == op {
			return true
		}
	}
	return false
}

// TestSpoofedUnsuppVersionPending: one spoofed UNSUPP_VERSION (version 0,
// opcode MAP) while the client's first PCP request is outstanding, before
// the server has ever answered PCP (every start, a new server list, a
// slow provider): the client checks with a NAT-PMP request of its own but
// goes on retransmitting, its request is answered in PCP, and it stays
// with PCP, with ProtocolAuto and ProtocolPCP alike, whether the server
// ignores NAT-PMP or answers it too (miniupnpd). (It used to complete a
// MAP first, so the packet met a server already known to speak PCP.)
func TestSpoofedUnsuppVersionPending(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto Protocol
		both  bool
	}{
		{"auto, PCP-only server", ProtocolAuto, false},
		{"auto, server speaks both", ProtocolAuto, true},
		{"pcp, PCP-only server", ProtocolPCP, false},
		{"pcp, server speaks both", ProtocolPCP, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFake(t)
			srv.SetAlsoNATPMP(tc.both)
			srv.DropNext(1) // the first request stays outstanding until its retransmission
			c := newClient(t, srv, func(cfg *Config) {
				cfg.Protocol = tc.proto
				cfg.IRT, cfg.MRT = 300*time.Millisecond, time.Second
			})
			done := make(chan error, 1)
			go func() {
				_, err := c.Map(ctxT(t, 5*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:82"), Lifetime: 600})
				done <- err
			}()
			eventually(t, time.Second, func() bool { return len(srv.Requests()) >= 1 }, "no request")
			to := srv.Requests()[0].From
			srv.SendRaw(to, unsuppVersion0(7))
			// Taken while the request was pending: the client checks NAT-PMP.
			eventually(t, time.Second, func() bool { return natpmpRequested(srv, pcp.NATPMPOpExternalAddr) }, "the UNSUPP_VERSION was not taken as a reason to check")
			if err := <-done; err != nil {
				t.Fatalf("map after one spoofed UNSUPP_VERSION: %v", err)
			}
			if st := c.Status(); st.Protocol != "pcp" {
				t.Fatalf("protocol %q", st.Protocol)
			}
			n := len(srv.Requests())
			if _, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:83"), Lifetime: 600}); err != nil {
				t.Fatal(err)
			}
			if r := srv.Requests()[n]; r.PCP == nil {
				t.Fatalf("next request is not PCP: %x", r.Raw)
			}
		})
	}
}

// TestSpoofedUnsuppVersionDualServer (review finding, issue 18 §2): a
// spoofed UNSUPP_VERSION while the client's first PCP request to a
// server that speaks PCP and NAT-PMP (miniupnpd) is pending: the
// server answers the client's NAT-PMP check, but also its PCP request
// sent after that, so the client does not fall back. It used to switch
// to NAT-PMP for good on the check's answer.
func TestSpoofedUnsuppVersionDualServer(t *testing.T) {
	srv := newFake(t)
	srv.SetAlsoNATPMP(true)
	srv.DropNext(1) // the first PCP request stays outstanding until its retransmission
	c := newClient(t, srv, func(cfg *Config) { cfg.IRT = 300 * time.Millisecond; cfg.MRT = time.Second })
	done := make(chan error, 1)
	go func() {
		_, err := c.Map(ctxT(t, 5*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 600})
		done <- err
	}()
	eventually(t, time.Second, func() bool { return len(srv.Requests()) >= 1 }, "no request")
	to := srv.Requests()[0].From
	srv.SendRaw(to, []byte{0, 0x81, 0, 1, 0, 0, 0, 7}) // one spoofed packet, opcode MAP
	if err := <-done; err != nil {
		t.Fatalf("map: %v", err)
	}
	if !natpmpRequested(srv, pcp.NATPMPOpExternalAddr) {
		t.Fatal("the client did not check NAT-PMP: the spoofed packet came too late to test anything")
	}
	if st := c.Status(); st.Protocol != "pcp" {
		t.Fatalf("after one spoofed UNSUPP_VERSION the client speaks %q to a server that answers PCP", st.Protocol)
	}
	n := len(srv.Requests())
	if _, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 17, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 600}); err != nil {
		t.Fatal(err)
	}
	if r := srv.Requests()[n]; r.PCP == nil {
		t.Fatalf("next request is not PCP: %x", r.Raw)
	}
}

// TestSpoofedUnsuppVersionProbe (review finding, issue 18 §2): Probe (an
// ANNOUNCE request; upstream.Auto's PCP probe uses ProtocolPCP) toward a
// PCP server gets one spoofed UNSUPP_VERSION (opcode ANNOUNCE) while
// outstanding: it still reports "pcp". It used to end at once with
// ErrNATPMPOnly, and Auto then picked NAT-PMP at a server answering both.
func TestSpoofedUnsuppVersionProbe(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto Protocol
		both  bool
	}{
		{"pcp, server speaks both", ProtocolPCP, true},
		{"pcp, PCP-only server", ProtocolPCP, false},
		{"auto, server speaks both", ProtocolAuto, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFake(t)
			srv.SetAlsoNATPMP(tc.both)
			srv.DropNext(1)
			c := newClient(t, srv, func(cfg *Config) {
				cfg.Protocol = tc.proto
				cfg.IRT, cfg.MRT = 300*time.Millisecond, time.Second
			})
			type result struct {
				proto string
				err   error
			}
			done := make(chan result, 1)
			go func() {
				p, err := c.Probe(ctxT(t, 5*time.Second))
				done <- result{p, err}
			}()
			eventually(t, time.Second, func() bool { return len(srv.Requests()) >= 1 }, "no request")
			to := srv.Requests()[0].From
			srv.SendRaw(to, []byte{0, 0x80, 0, 1, 0, 0, 0, 7}) // spoofed, opcode 0 (ANNOUNCE)
			r := <-done
			if r.err != nil || r.proto != "pcp" {
				t.Fatalf("probe of a PCP server after one spoofed packet: %q, %v", r.proto, r.err)
			}
			if !natpmpRequested(srv, pcp.NATPMPOpExternalAddr) {
				t.Fatal("the client did not check NAT-PMP: the spoofed packet came too late to test anything")
			}
		})
	}
}

// TestSpoofedNATPMPAnnouncement: a NAT-PMP gateway's client gets a spoofed
// address announcement (198.51.100.7, then reserved addresses): it asks
// the gateway with a request of its own and keeps the address the gateway
// answers (203.0.113.1). Reserved, multicast, zero and loopback addresses
// are refused even from the gateway's answer.
func TestSpoofedNATPMPAnnouncement(t *testing.T) {
	srv := newFake(t)
	srv.SetMode(pcptest.NATPMPOnly)
	ann := freeUDPPort(t)
	c := newClient(t, srv, func(cfg *Config) {
		cfg.Protocol = ProtocolNATPMP
		cfg.ListenAnnounce = true
		cfg.AnnounceAddr4 = ann.String()
		cfg.AnnounceAddr6 = "-"
	})
	ctx := ctxT(t, 5*time.Second)
	if a, err := c.ExternalAddr(ctx); err != nil || a != netip.MustParseAddr("203.0.113.1") {
		t.Fatalf("ExternalAddr %v %v", a, err)
	}
	opcode0 := func() int {
		n := 0
		for _, r := range srv.Requests() {
			if r.NATPMP != nil && r.NATPMP.Opcode == pcp.NATPMPOpExternalAddr {
				n++
			}
		}
		return n
	}
	asked := opcode0()
	spoof := pcp.NATPMPResponse{Opcode: pcp.NATPMPOpExternalAddr, Epoch: 5, ExternalAddr: netip.MustParseAddr("198.51.100.7")}
	// From the server's own port to the announcement listener.
	srv.SendRaw(ann, spoof.AppendMarshal(nil))
	eventually(t, time.Second, func() bool { return opcode0() > asked }, "the announcement did not make the client ask")
	noEvent(t, c, EventExternalChanged, 200*time.Millisecond)
	if st := c.Status(); st.External != netip.MustParseAddr("203.0.113.1") {
		t.Fatalf("external %v after a spoofed announcement", st.External)
	}
	// The gateway itself answers with unusable addresses: refused.
	for _, bad := range []string{"0.128.0.0", "0.0.0.0", "127.0.0.1", "224.0.0.9", "255.255.255.255", "240.1.2.3"} {
		srv.SetExternal(netip.MustParseAddr(bad))
		c2 := newClient(t, srv, func(cfg *Config) { cfg.Protocol = ProtocolNATPMP })
		if a, err := c2.ExternalAddr(ctxT(t, 2*time.Second)); err == nil {
			t.Errorf("%s: ExternalAddr gave %v", bad, a)
		}
	}
}

// TestSpoofedMappingUpdates: unsolicited MAP answers with random nonces
// from the server's address change no mapping and no address.
func TestSpoofedMappingUpdates(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, nil)
	res, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 600})
	if err != nil {
		t.Fatal(err)
	}
	to := srv.Requests()[0].From
	before := c.Status().Dropped
	for i := range 50 {
		var n pcp.Nonce
		rand.Read(n[:])
		resp := pcp.Response{Version: pcp.Version, Opcode: pcp.OpMap, Lifetime: 600, Epoch: uint32(i),
			Map: &pcp.Map{Nonce: n, Protocol: 6, InternalPort: 80, ExternalPort: uint16(1000 + i), ExternalAddr: netip.MustParseAddr("198.51.100.7")}}
		srv.SendRaw(to, resp.AppendMarshal(nil))
	}
	eventually(t, time.Second, func() bool { return c.Status().Dropped >= before+50 }, "spoofed updates not dropped")
	noEvent(t, c, EventExternalChanged, 100*time.Millisecond)
	noEvent(t, c, EventStateLost, 10*time.Millisecond)
	if st := c.Status(); st.External != res.External.Addr() {
		t.Fatalf("external %v, want %v", st.External, res.External.Addr())
	}
	// The right nonce but an unusable address: refused too.
	bad := pcp.Response{Version: pcp.Version, Opcode: pcp.OpMap, Lifetime: 600, Epoch: 60,
		Map: &pcp.Map{Nonce: res.Nonce, Protocol: 6, InternalPort: 80, ExternalPort: 2000, ExternalAddr: netip.MustParseAddr("0.128.0.0")}}
	srv.SendRaw(to, bad.AppendMarshal(nil))
	noEvent(t, c, EventExternalChanged, 200*time.Millisecond)
}

// TestWithdrawn (issue 17.5): an unsolicited MAP answer with an error
// result, or with lifetime 0, for a mapping the client made ends it: the
// owner hears EventWithdrawn with the mapping's nonce and the reason.
func TestWithdrawn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		result   pcp.ResultCode
		lifetime uint32
	}{
		{"error result", pcp.NotAuthorized, 600},
		{"lifetime 0", pcp.Success, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFake(t)
			c := newClient(t, srv, nil)
			res, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 600})
			if err != nil {
				t.Fatal(err)
			}
			to := srv.Requests()[0].From
			resp := pcp.Response{Version: pcp.Version, Opcode: pcp.OpMap, Result: tc.result, Lifetime: tc.lifetime, Epoch: 60,
				Map: &pcp.Map{Nonce: res.Nonce, Protocol: 6, InternalPort: 80, ExternalPort: res.External.Port(), ExternalAddr: res.External.Addr()}}
			srv.SendRaw(to, resp.AppendMarshal(nil))
			ev := waitEvent(t, c, EventWithdrawn, time.Second)
			if ev.Mapping == nil || ev.Mapping.Nonce != res.Nonce || ev.Request == nil || ev.Request.Internal.Port() != 80 ||
				ev.Error == nil || ev.Error.Code != tc.result {
				t.Errorf("event %+v", ev)
			}
			// The client forgot it: a delete without its nonce is refused.
			if err := c.Delete(ctxT(t, time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80")}); !errors.Is(err, ErrUnknownMapping) {
				t.Errorf("delete after the withdrawal: %v", err)
			}
		})
	}
}

// TestSpoofedAnnouncementsAreNotAnswers (review finding): with a NAT-PMP
// request of the client's outstanding, forged address announcements on
// the announcement socket are not taken as its answer; the address stays
// the gateway's.
func TestSpoofedAnnouncementsAreNotAnswers(t *testing.T) {
	srv := newFake(t)
	srv.SetMode(pcptest.NATPMPOnly)
	ann := freeUDPPort(t)
	c := newClient(t, srv, func(cfg *Config) {
		cfg.Protocol = ProtocolNATPMP
		cfg.ListenAnnounce = true
		cfg.AnnounceAddr4 = ann.String()
		cfg.AnnounceAddr6 = "-"
		cfg.IRT = time.Second
	})
	if a, err := c.ExternalAddr(ctxT(t, 3*time.Second)); err != nil || a != netip.MustParseAddr("203.0.113.1") {
		t.Fatalf("ExternalAddr %v %v", a, err)
	}
	srv.DropNext(100) // the gateway says nothing for now: the client's request stays outstanding
	spoof := pcp.NATPMPResponse{Opcode: pcp.NATPMPOpExternalAddr, Epoch: 9, ExternalAddr: netip.MustParseAddr("198.51.100.7")}
	for range 5 {
		srv.SendRaw(ann, spoof.AppendMarshal(nil))
		time.Sleep(300 * time.Millisecond)
	}
	noEvent(t, c, EventExternalChanged, 200*time.Millisecond)
	if st := c.Status(); st.External != netip.MustParseAddr("203.0.113.1") {
		t.Fatalf("external %v after forged announcements", st.External)
	}
}

// TestSpoofedUnsuppVersionServerSpeaksBoth (review finding): a server that
// has answered PCP also speaks NAT-PMP (miniupnpd does); one forged
// UNSUPP_VERSION (version 0, or another version) while a PCP request is
// pending does not downgrade the client nor end the request.
func TestSpoofedUnsuppVersionServerSpeaksBoth(t *testing.T) {
	for _, p := range []Protocol{ProtocolAuto, ProtocolPCP} {
		srv := newFake(t)
		srv.SetAlsoNATPMP(true)
		c := newClient(t, srv, func(cfg *Config) { cfg.Protocol = p })
		if _, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 600}); err != nil {
			t.Fatal(err)
		}
		to := srv.Requests()[0].From
		srv.DropNext(3)
		done := make(chan error, 1)
		go func() {
			_, err := c.Map(ctxT(t, 5*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:82"), Lifetime: 600})
			done <- err
		}()
		eventually(t, time.Second, func() bool { return len(srv.Requests()) >= 2 }, "second request not sent")
		srv.SendRaw(to, unsuppVersion0(7))
		srv.SendRaw(to, []byte{1, 0x81, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
		if err := <-done; err != nil {
			t.Fatalf("protocol %d: %v", p, err)
		}
		if st := c.Status(); st.Protocol != "pcp" {
			t.Fatalf("protocol %d: now %q", p, st.Protocol)
		}
	}
}
