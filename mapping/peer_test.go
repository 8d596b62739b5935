package mapping

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/upstream"
)

var peerRemote = netip.MustParseAddrPort("203.0.113.50:443")

func peerReq(client netip.Addr, iport uint16, life time.Duration) PeerRequest {
	return PeerRequest{Client: client, Proto: TCP, Internal: netip.AddrPortFrom(client, iport), Remote: peerRemote,
		Lifetime: life, Nonce: Nonce{0xee, byte(iport)}}
}

// TestPeerRelayed (issue 17.4, RFC 7648 §3, RFC 6887 §12): in nat444
// behind the provider's PCP server, a PEER fixes the flow's WAN source on
// the CPE (the internal port, an Outbound NAT entry) and is relayed for
// that source with the remote peer and the client's nonce; the client is
// answered the provider's external endpoint and lifetime. A renewal with
// 3/4 of the asked lifetime left upstream is answered from the table;
// later, or once the provider lost its state, it goes upstream again.
func TestPeerRelayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.lifetime = 600
		c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		ctx := context.Background()
		r := peerReq(host, 40000, 600*time.Second)
		res, err := c.Peer(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		via := netip.AddrPortFrom(wanCGN, 40000)
		want := []firewall.Outbound{{Proto: 6, From: r.Internal, To: peerRemote, Via: via, Timeout: 600*time.Second + firewallGrace}}
		if diff := cmp.Diff(want, fw.Outbound(), netipCmp); diff != "" {
			t.Errorf("kernel outbound (-want +got):\n%s", diff)
		}
		reqs := up.peerRequests()
		if len(reqs) != 1 || reqs[0].Internal != via || reqs[0].Remote != peerRemote || reqs[0].Nonce != pcp.Nonce(r.Nonce) ||
			reqs[0].ThirdParty || reqs[0].PreferFailure || reqs[0].Lifetime != 600 || reqs[0].Protocol != 6 {
			t.Fatalf("upstream PEER %+v", reqs)
		}
		if res.External != netip.MustParseAddrPort("203.0.113.1:50000") || res.Lifetime != 600*time.Second {
			t.Errorf("answer %+v", res)
		}

		// Within 3/4: from the table.
		time.Sleep(100 * time.Second)
		if res2, err := c.Peer(ctx, r); err != nil || res2.External != res.External || len(up.peerRequests()) != 1 {
			t.Errorf("renewal with 500 s of 600 left: %+v %v, %d upstream requests", res2, err, len(up.peerRequests()))
		}
		// Less than 3/4 left: upstream again, for the same WAN source.
		time.Sleep(100 * time.Second)
		if _, err := c.Peer(ctx, r); err != nil || len(up.peerRequests()) != 2 || up.peerRequests()[1].Internal != via {
			t.Errorf("renewal with 400 s of 600 left: %v, upstream %+v", err, up.peerRequests())
		}
		// The provider lost its state: upstream again at once.
		up.events <- upstream.Event{Kind: upstream.EventStateLost}
		synctest.Wait()
		if _, err := c.Peer(ctx, r); err != nil || len(up.peerRequests()) != 3 {
			t.Errorf("after the provider's state loss: %v, %d upstream requests", err, len(up.peerRequests()))
		}
		if n := len(fw.Outbound()); n != 1 {
			t.Errorf("%d outbound entries, want 1", n)
		}
	})
}

// TestPeerSource: the flow's WAN source is the one conntrack knows when
// the flow exists (its NAT cannot change), else the internal port unless
// a mapping's WAN port holds it (then another).
func TestPeerSource(t *testing.T) {
	up := newFakeUp()
	c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
	ctx := context.Background()
	r := peerReq(host, 40001, time.Hour)
	fw.SetFlow(6, r.Internal, peerRemote, netip.AddrPortFrom(wanCGN, 45678))
	if _, err := c.Peer(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got := up.peerRequests()[0].Internal; got != netip.AddrPortFrom(wanCGN, 45678) {
		t.Errorf("existing flow relayed for %v, want its source :45678", got)
	}
	if _, err := c.Map(ctx, req(OriginNATPMP, other, TCP, 40002, 40002, time.Hour)); err != nil {
		t.Fatal(err)
	}
	r2 := peerReq(host, 40002, time.Hour)
	if _, err := c.Peer(ctx, r2); err != nil {
		t.Fatal(err)
	}
	if got := up.peerRequests()[1].Internal; got.Port() == 40002 || got.Addr() != wanCGN {
		t.Errorf("flow relayed for %v: the WAN port of a mapping", got)
	}
	outs := fw.Outbound()
	if len(outs) != 2 || outs[0].Via.Port() != 45678 || outs[1].Via != up.peerRequests()[1].Internal {
		t.Errorf("kernel outbound %+v", outs)
	}
}

// TestPeerModes: local mode answers the CPE's own NAT; dslite relays with
// THIRD_PARTY for the LAN host and sets no NAT; an upstream with no PEER
// (NAT-PMP, UPnP, nothing) is CodeUnsupported (UNSUPP_OPCODE) and changes
// nothing; a refusal upstream is passed on and leaves nothing behind;
// another host's flow needs secure mode off.
func TestPeerModes(t *testing.T) {
	ctx := context.Background()
	t.Run("local", func(t *testing.T) {
		c, fw := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub, SecureMode: true})
		res, err := c.Peer(ctx, peerReq(host, 40000, time.Hour))
		if err != nil || res.External != netip.AddrPortFrom(wanPub, 40000) || res.Lifetime != time.Hour || len(fw.Outbound()) != 1 {
			t.Errorf("%+v %v, kernel %+v", res, err, fw.Outbound())
		}
	})
	t.Run("dslite", func(t *testing.T) {
		up := newFakeUp()
		c, fw := newCore(t, Config{Mode: ModeDSLite, Upstream: up, SecureMode: true})
		r := peerReq(host, 40000, time.Hour)
		if _, err := c.Peer(ctx, r); err != nil {
			t.Fatal(err)
		}
		if q := up.peerRequests(); len(q) != 1 || q[0].Internal != r.Internal || !q[0].ThirdParty || len(fw.Outbound()) != 0 {
			t.Errorf("upstream %+v, kernel %+v", q, fw.Outbound())
		}
	})
	for _, k := range []upstream.Kind{upstream.KindNATPMP, upstream.KindUPnP, upstream.KindNone} {
		t.Run(k.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				up := newFakeUp()
				up.kind = k
				c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
				_, err := c.Peer(ctx, peerReq(host, 40000, time.Hour))
				wantCode(t, err, CodeUnsupported)
				if code, life := PCPResult(err); code != pcp.UnsuppOpcode || life != 1800 {
					t.Errorf("PCP %v %d", code, life)
				}
				if len(up.peerRequests()) != 0 || len(fw.Outbound()) != 0 {
					t.Errorf("upstream %+v, kernel %+v", up.peerRequests(), fw.Outbound())
				}
			})
		})
	}
	t.Run("refused", func(t *testing.T) {
		up := newFakeUp()
		up.taken[50000] = true
		c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		r := peerReq(host, 40000, time.Hour)
		r.SuggestedExternal = netip.MustParseAddrPort("203.0.113.1:50000")
		_, err := c.Peer(ctx, r)
		wantCode(t, err, CodeCannotProvideExternal)
		if len(fw.Outbound()) != 0 {
			t.Errorf("kernel %+v", fw.Outbound())
		}
	})
	t.Run("third party", func(t *testing.T) {
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		r := peerReq(host, 40000, time.Hour)
		r.Internal = netip.AddrPortFrom(other, 40000)
		_, err := c.Peer(ctx, r)
		wantCode(t, err, CodeNotAuthorized)
		c.SetPolicy(Policy{SecureMode: false})
		if _, err := c.Peer(ctx, r); err != nil {
			t.Fatal(err)
		}
		// Another nonce for another host's flow: NOT_AUTHORIZED (§12.3).
		r.Nonce = Nonce{1}
		_, err = c.Peer(ctx, r)
		wantCode(t, err, CodeNonceMismatch)
	})
	t.Run("invalid", func(t *testing.T) {
		c, _ := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub})
		for _, remote := range []string{"0.0.0.0:443", "127.0.0.1:443", "224.0.0.1:443", "203.0.113.50:0", "[2001:db8::1]:443"} {
			r := peerReq(host, 40000, time.Hour)
			r.Remote = netip.MustParseAddrPort(remote)
			_, err := c.Peer(ctx, r)
			wantCode(t, err, CodeInvalid)
		}
	})
}
