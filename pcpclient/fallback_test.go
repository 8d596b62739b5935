package pcpclient

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
)

// The NAT-PMP fallback step by step (testing/synctest, the server played
// by the test through an in-memory socket): which packets from the
// server's address make the client switch, and when (issue 18 §2, RFC
// 6887 §9 and Appendix A).

var (
	scriptServer = netip.MustParseAddrPort("100.64.0.1:5351")
	scriptLocal  = netip.MustParseAddr("100.64.0.2")
	scriptExt    = netip.MustParseAddr("203.0.113.1")
)

// scriptedClient is a client toward scriptServer through an in-memory
// socket, with the default IRT (3 s); call it inside synctest.Test.
func scriptedClient(t *testing.T, proto Protocol) (*Client, *memConn) {
	t.Helper()
	mc := newMemConn(scriptServer)
	c, err := New(Config{
		Servers:  []netip.AddrPort{scriptServer},
		Linger:   -1,
		Protocol: proto,
		dial: func(netip.AddrPort) (packetConn, netip.Addr, error) {
			return mc, scriptLocal, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, mc
}

// mapAsync runs Map of TCP port 80 with a 100 s deadline.
func mapAsync(c *Client) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
		defer cancel()
		_, err := c.Map(ctx, MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(scriptLocal, 80), Lifetime: 600})
		done <- err
	}()
	return done
}

// sentPkt returns the i-th packet the client sent, after synctest.Wait.
func sentPkt(t *testing.T, mc *memConn, i int) memPkt {
	t.Helper()
	synctest.Wait()
	pkts := mc.packets()
	if len(pkts) <= i {
		t.Fatalf("the client sent %d packets, want a packet %d", len(pkts), i)
	}
	return pkts[i]
}

// noMoreSent checks, after synctest.Wait, that the client sent n packets.
func noMoreSent(t *testing.T, mc *memConn, n int) {
	t.Helper()
	synctest.Wait()
	if pkts := mc.packets(); len(pkts) != n {
		t.Fatalf("the client sent %d packets, want %d; the last: %x", len(pkts), n, pkts[len(pkts)-1].b)
	}
}

func isPCPMap(b []byte) bool {
	r, err := pcp.ParseRequest(b)
	return err == nil && r.Opcode == pcp.OpMap
}

func isNATPMP(b []byte, op uint8) bool {
	r, err := pcp.ParseNATPMPRequest(b)
	return err == nil && b[0] == pcp.VersionNATPMP && r.Opcode == op
}

// mapAnswer is the server's PCP SUCCESS to the MAP request req.
func mapAnswer(t *testing.T, req []byte) []byte {
	t.Helper()
	q := parseReq(t, req)
	resp := pcp.Response{Version: pcp.Version, Opcode: pcp.OpMap, Lifetime: q.Lifetime, Epoch: 100,
		Map: &pcp.Map{Nonce: q.Map.Nonce, Protocol: q.Map.Protocol, InternalPort: q.Map.InternalPort, ExternalPort: 20080, ExternalAddr: scriptExt}}
	return resp.AppendMarshal(nil)
}

// addrAnswer is a NAT-PMP external address answer (opcode 0) carrying a.
func addrAnswer(a netip.Addr) []byte {
	resp := pcp.NATPMPResponse{Opcode: pcp.NATPMPOpExternalAddr, Epoch: 100, ExternalAddr: a}
	return resp.AppendMarshal(nil)
}

// TestUnsuppVersionNoAnswer: a spoofed UNSUPP_VERSION while the server is
// down (nothing answers PCP nor NAT-PMP): the request is retransmitted in
// PCP until its caller gives up, and ends with ErrTimeout, not
// ErrNATPMPOnly; the client never speaks NAT-PMP but for its check.
func TestUnsuppVersionNoAnswer(t *testing.T) {
	for _, proto := range []Protocol{ProtocolAuto, ProtocolPCP} {
		t.Run(map[Protocol]string{ProtocolAuto: "auto", ProtocolPCP: "pcp"}[proto], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, mc := scriptedClient(t, proto)
				done := mapAsync(c)
				if p := sentPkt(t, mc, 0); !isPCPMap(p.b) {
					t.Fatalf("first packet %x", p.b)
				}
				mc.in <- unsuppVersion0(7)
				err := <-done
				if !errors.Is(err, ErrTimeout) || errors.Is(err, ErrNATPMPOnly) {
					t.Fatalf("protocol %d: map ended with %v, want ErrTimeout", proto, err)
				}
				maps, checks := 0, 0
				for _, p := range mc.packets() {
					switch {
					case isPCPMap(p.b):
						maps++
					case isNATPMP(p.b, pcp.NATPMPOpExternalAddr):
						checks++
					default:
						t.Errorf("protocol %d: the client sent %x", proto, p.b)
					}
				}
				// 0, 3, 9, 21, 45, 93 s (±10%).
				if maps < 5 || checks == 0 {
					t.Errorf("protocol %d: %d PCP requests and %d NAT-PMP checks in 100 s", proto, maps, checks)
				}
				if st := c.Status(); st.Protocol == "nat-pmp" {
					t.Errorf("protocol %d: the client speaks NAT-PMP", proto)
				}
			})
		})
	}
}

// TestUnsuppVersionCheckAnsweredAfterPCP: the server answers the PCP
// request before the NAT-PMP check (a spoofed UNSUPP_VERSION came first):
// the check's answer, arriving after that, changes nothing, neither the
// protocol nor the external address (its address is another one).
func TestUnsuppVersionCheckAnsweredAfterPCP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, mc := scriptedClient(t, ProtocolAuto)
		done := mapAsync(c)
		req := sentPkt(t, mc, 0)
		mc.in <- unsuppVersion0(7)
		if p := sentPkt(t, mc, 1); !isNATPMP(p.b, pcp.NATPMPOpExternalAddr) {
			t.Fatalf("after UNSUPP_VERSION the client sent %x, want its NAT-PMP check", p.b)
		}
		mc.in <- mapAnswer(t, req.b)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		mc.in <- addrAnswer(netip.MustParseAddr("198.51.100.7"))
		time.Sleep(time.Minute)
		synctest.Wait()
		st := c.Status()
		if st.Protocol != "pcp" || st.External != scriptExt {
			t.Fatalf("protocol %q external %v, want pcp %v", st.Protocol, st.External, scriptExt)
		}
		n := len(mc.packets())
		done = mapAsync(c)
		_ = done
		if p := sentPkt(t, mc, n); !isPCPMap(p.b) {
			t.Fatalf("next request %x, want PCP", p.b)
		}
	})
}

// TestUnsuppVersionCheckAnsweredSlowServer: a spoofed UNSUPP_VERSION and
// a spoofed (or real) answer to the client's NAT-PMP check come before a
// slow server answers PCP: the client sends its PCP request once more at
// once, and the server's answer to it within its retransmission time
// keeps the client with PCP.
func TestUnsuppVersionCheckAnsweredSlowServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, mc := scriptedClient(t, ProtocolAuto)
		done := mapAsync(c)
		sentPkt(t, mc, 0)
		mc.in <- unsuppVersion0(7)
		sentPkt(t, mc, 1)
		mc.in <- addrAnswer(netip.MustParseAddr("198.51.100.7"))
		again := sentPkt(t, mc, 2)
		if !isPCPMap(again.b) {
			t.Fatalf("after the check's answer the client sent %x, want its PCP request again", again.b)
		}
		time.Sleep(2500 * time.Millisecond) // within IRT (3 s -10%)
		noMoreSent(t, mc, 3)
		mc.in <- mapAnswer(t, again.b)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if st := c.Status(); st.Protocol != "pcp" || st.External != scriptExt {
			t.Fatalf("protocol %q external %v, want pcp %v", st.Protocol, st.External, scriptExt)
		}
	})
}

// TestUnsuppVersionSlowProxy (review finding): as above, but the PCP
// server is slower still (a PCP proxy asking its own upstream, RFC 7648):
// its answer comes after the first PCP retransmission following the
// check's answer, 5 s on. One forged UNSUPP_VERSION and the server's true
// answer to the check do not make the client fall back meanwhile.
func TestUnsuppVersionSlowProxy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, mc := scriptedClient(t, ProtocolAuto)
		done := mapAsync(c)
		sentPkt(t, mc, 0)
		mc.in <- unsuppVersion0(7)
		sentPkt(t, mc, 1)
		mc.in <- addrAnswer(netip.MustParseAddr("198.51.100.7"))
		sentPkt(t, mc, 2)
		time.Sleep(5 * time.Second) // past the first post-check retransmission time
		again := sentPkt(t, mc, 3)
		if !isPCPMap(again.b) {
			t.Fatalf("one PCP request unanswered after the check's answer: the client sent %x, want PCP again", again.b)
		}
		mc.in <- mapAnswer(t, again.b)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if st := c.Status(); st.Protocol != "pcp" || st.External != scriptExt {
			t.Fatalf("protocol %q external %v, want pcp %v", st.Protocol, st.External, scriptExt)
		}
	})
}

// TestUnsuppVersionNATPMPOnly: a NAT-PMP-only gateway answers every PCP
// request with UNSUPP_VERSION and the check in NAT-PMP. The client asks
// twice more in PCP after the check's answer; when both go unanswered for
// their retransmission times (RFC 6887 §8.1.1: 3 s ±10%, then twice that
// ±10%: 7.5-10.6 s in all), ProtocolAuto
// sends the map in NAT-PMP (and reports the check's external address),
// ProtocolPCP ends the request with ErrNATPMPOnly; not before.
func TestUnsuppVersionNATPMPOnly(t *testing.T) {
	for _, proto := range []Protocol{ProtocolAuto, ProtocolPCP} {
		t.Run(map[Protocol]string{ProtocolAuto: "auto", ProtocolPCP: "pcp"}[proto], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, mc := scriptedClient(t, proto)
				done := mapAsync(c)
				sentPkt(t, mc, 0)
				mc.in <- unsuppVersion0(100)
				sentPkt(t, mc, 1)
				mc.in <- addrAnswer(scriptExt)
				again := sentPkt(t, mc, 2)
				confirmed := time.Now()
				if !isPCPMap(again.b) {
					t.Fatalf("after the check's answer the client sent %x, want its PCP request again", again.b)
				}
				mc.in <- unsuppVersion0(100)
				time.Sleep(2690 * time.Millisecond) // just before IRT -10%
				noMoreSent(t, mc, 3)
				time.Sleep(700 * time.Millisecond) // past IRT +10%: sent again, in PCP
				if p := sentPkt(t, mc, 3); !isPCPMap(p.b) {
					t.Fatalf("one PCP request unanswered after the check's answer: the client sent %x, want PCP again", p.b)
				}
				mc.in <- unsuppVersion0(100)
				time.Sleep(7500*time.Millisecond - time.Since(confirmed))
				noMoreSent(t, mc, 4)
				if proto == ProtocolPCP {
					err := <-done
					var re *ResultError
					if !errors.Is(err, ErrNATPMPOnly) || !errors.As(err, &re) || re.Code != pcp.UnsuppVersion {
						t.Fatalf("map ended with %v, want ErrNATPMPOnly", err)
					}
					if d := time.Since(confirmed); d < 7500*time.Millisecond || d > 10600*time.Millisecond {
						t.Errorf("ErrNATPMPOnly %v after the check's answer, want RT 3 s ±10%% then twice it ±10%%", d)
					}
					return
				}
				time.Sleep(10600*time.Millisecond - time.Since(confirmed))
				p := sentPkt(t, mc, 4)
				if !isNATPMP(p.b, pcp.NATPMPOpMapTCP) {
					t.Fatalf("after the PCP requests' timeouts the client sent %x, want a NAT-PMP map", p.b)
				}
				if d := p.at.Sub(confirmed); d < 7500*time.Millisecond || d > 10600*time.Millisecond {
					t.Errorf("NAT-PMP map %v after the check's answer, want RT 3 s ±10%% then twice it ±10%%", d)
				}
				resp := pcp.NATPMPResponse{Opcode: pcp.NATPMPOpMapTCP, Epoch: 104, InternalPort: 80, ExternalPort: 20080, Lifetime: 600}
				mc.in <- resp.AppendMarshal(nil)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if st := c.Status(); st.Protocol != "nat-pmp" || st.External != scriptExt {
					t.Fatalf("protocol %q external %v, want nat-pmp %v", st.Protocol, st.External, scriptExt)
				}
			})
		})
	}
}
