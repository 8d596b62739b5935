package natpmp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pcpgw/pcpgw/firewall/firewalltest"
	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/upstream"
)

// detectingUpstream is the provider's PCP server behind an upstream that
// is being detected, as upstream.Auto is at start and after a WAN change:
// Kind waits until detected is closed (or its context ends: then
// KindDetecting), and so do Map and ExternalAddr before they ask (failing
// as Auto does when their context ends first).
type detectingUpstream struct {
	*fakeUpstream
	detected chan struct{}
}

func newDetectingUpstream() *detectingUpstream {
	return &detectingUpstream{fakeUpstream: newFakeUpstream(), detected: make(chan struct{})}
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
	return u.fakeUpstream.Map(ctx, r)
}

func (u *detectingUpstream) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	if k, _ := u.Kind(ctx); k == upstream.KindDetecting {
		return netip.Addr{}, errStillLooking
	}
	return u.fakeUpstream.ExternalAddr(ctx)
}

// newDetectServer is a server with the default CoreTimeout (2 s) over a
// real mapping core (nat444) whose upstream is being detected.
func newDetectServer(t *testing.T, up mapping.Upstream) *Server {
	t.Helper()
	core, err := mapping.New(context.Background(), mapping.Config{
		Mode: mapping.ModeNAT444, WANAddr: netip.MustParseAddr("100.64.0.2"), Upstream: up, Firewall: firewalltest.New(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); core.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; core.Close() })
	s, err := New(Config{Core: core, Interfaces: []string{"lo"}, NATPMP: true, PCP: true, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	s.lan.Store(testLAN())
	return s
}

// TestRequestDuringDetection: a NAT-PMP or PCP request that arrives while
// the upstream is being detected (3 s here, the probes' bound) gets the
// real answer when detection ends, not NETWORK_FAILURE when CoreTimeout
// (2 s) ends: CoreTimeout starts once the upstream is known. The answer
// is what the upstream granted; a retransmission that arrives meanwhile
// (served beside the first, as Handle has no duplicate check) gets the
// same answer, and the upstream is asked once: one mapping.
func TestRequestDuringDetection(t *testing.T) {
	const detection = 3 * time.Second
	natpmpMap := (&pcp.NATPMPRequest{Opcode: pcp.NATPMPOpMapTCP, InternalPort: 8080, SuggestedExternalPort: 18080, Lifetime: 3600}).AppendMarshal(nil)
	pcpMap := (&pcp.Request{Opcode: pcp.OpMap, Lifetime: 3600, Client: lanHost.Addr(),
		Map: &pcp.Map{Nonce: pcp.Nonce(testNonce), Protocol: 6, InternalPort: 8080, ExternalPort: 18080, ExternalAddr: netip.IPv4Unspecified()}}).AppendMarshal(nil)
	for _, tc := range []struct {
		name  string
		req   []byte
		check func(t *testing.T, b []byte)
		maps  int // upstream requests wanted
	}{
		{name: "NAT-PMP map", req: natpmpMap, maps: 1, check: func(t *testing.T, b []byte) {
			r, err := pcp.ParseNATPMPResponse(b)
			if err != nil || r.Result != pcp.NATPMPSuccess || r.ExternalPort != 18080 || r.Lifetime != 3600 {
				t.Errorf("answer %+v %v, want success 18080 for 3600 s", r, err)
			}
		}},
		{name: "PCP MAP", req: pcpMap, maps: 1, check: func(t *testing.T, b []byte) {
			r, err := pcp.ParseResponse(b)
			if err != nil || r.Result != pcp.Success || r.Map.ExternalPort != 18080 ||
				r.Map.ExternalAddr != netip.MustParseAddr("203.0.113.1") || r.Lifetime != 3600 {
				t.Errorf("answer %+v %v, want success 203.0.113.1:18080 for 3600 s", r, err)
			}
		}},
		{name: "NAT-PMP external address", req: []byte{0, 0}, check: func(t *testing.T, b []byte) {
			r, err := pcp.ParseNATPMPResponse(b)
			if err != nil || r.Result != pcp.NATPMPSuccess || r.ExternalAddr != netip.MustParseAddr("203.0.113.1") {
				t.Errorf("answer %+v %v, want the provider's address", r, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				up := newDetectingUpstream()
				s := newDetectServer(t, up)
				start := time.Now()
				time.AfterFunc(detection, func() { close(up.detected) })
				// The first copy, and a retransmission 250 ms later.
				var wg sync.WaitGroup
				answers := make([][]byte, 2)
				at := make([]time.Duration, 2)
				for i := range answers {
					wg.Go(func() {
						time.Sleep(time.Duration(i) * 250 * time.Millisecond)
						answers[i] = s.Handle(lanHost, cpeLAN, tc.req, time.Now())
						at[i] = time.Since(start)
					})
				}
				wg.Wait()
				for i, b := range answers {
					if at[i] != detection {
						t.Errorf("copy %d answered after %v, want when detection ended (%v)", i, at[i], detection)
					}
					tc.check(t, b)
				}
				if n := len(up.requests()); n != tc.maps {
					t.Errorf("%d upstream requests, want %d", n, tc.maps)
				}
			})
		})
	}
}

// TestDetectionBounded: detection that does not end holds a request at
// most mapping.DetectWait, then CoreTimeout: NETWORK_FAILURE (no upstream
// answered, which is then true), never a success the upstream did not
// give.
func TestDetectionBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newDetectingUpstream()
		s := newDetectServer(t, up)
		req := (&pcp.NATPMPRequest{Opcode: pcp.NATPMPOpMapUDP, InternalPort: 5000, SuggestedExternalPort: 5000, Lifetime: 3600}).AppendMarshal(nil)
		start := time.Now()
		r, err := pcp.ParseNATPMPResponse(s.Handle(lanHost, cpeLAN, req, time.Now()))
		if err != nil || r.Result != pcp.NATPMPNetworkFailure || r.ExternalPort != 0 || r.Lifetime != 0 {
			t.Errorf("answer %+v %v, want NETWORK_FAILURE", r, err)
		}
		if d, want := time.Since(start), mapping.DetectWait+DefaultCoreTimeout; d != want {
			t.Errorf("answered after %v, want %v", d, want)
		}
		close(up.detected)
	})
}

// TestFloodDuringDetection: requests that wait for the upstream's
// detection hold worker slots, and no more: at most 16 per host and 64 in
// all; a retransmission of a request being served is dropped as a
// duplicate (its answer is coming); the rest is dropped as overload,
// which clients answer by retransmitting. When detection ends every
// request held is answered once, and a client's next request (dropped
// ones asked again, a retransmission after its answer) is served.
func TestFloodDuringDetection(t *testing.T) {
	core := newFakeCore(time.Now(), time.Now)
	core.detecting = make(chan struct{})
	s, err := New(Config{Core: core, Interfaces: []string{"lo"}, NATPMP: true, Port: -1, Burst: 1000})
	if err != nil {
		t.Fatal(err)
	}
	server := runOnLoopback(t, s)
	before := runtime.NumGoroutine()

	// 8 hosts (127.0.0.2-9) send 20 different mapping requests each; the
	// first host also retransmits its first request 5 times.
	const hosts, perHost, dups = 8, 20, 5
	conns := make([]*net.UDPConn, hosts)
	for i := range conns {
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}, net.UDPAddrFromAddrPort(server))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	mapReq := func(port uint16) []byte {
		return (&pcp.NATPMPRequest{Opcode: pcp.NATPMPOpMapUDP, InternalPort: port, SuggestedExternalPort: port, Lifetime: 3600}).AppendMarshal(nil)
	}
	send := func(c *net.UDPConn, b []byte) {
		t.Helper()
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	send(conns[0], mapReq(10000))
	waitFor(t, 5*time.Second, func() bool {
		core.mu.Lock()
		defer core.mu.Unlock()
		return core.awaiting == 1
	}, "the first request to wait for the detection")
	for range dups {
		send(conns[0], mapReq(10000))
	}
	for i, c := range conns {
		for j := range perHost {
			if i == 0 && j == 0 {
				continue
			}
			send(c, mapReq(uint16(10000+j)))
		}
	}
	sent := hosts*perHost + dups
	waitFor(t, 5*time.Second, func() bool {
		st := s.Stats()
		return st.Overload+st.Duplicates+maxInFlight == uint64(sent)
	}, "every datagram to be read")
	// The last workers started may not have reached the core yet.
	waitFor(t, 5*time.Second, func() bool {
		core.mu.Lock()
		defer core.mu.Unlock()
		return core.awaiting == maxInFlight
	}, "every worker to wait for the detection")
	st := s.Stats()
	core.mu.Lock()
	awaiting, maxAwaiting := core.awaiting, core.maxAwaiting
	core.mu.Unlock()
	if st.Duplicates != dups || awaiting != maxInFlight || maxAwaiting != maxInFlight {
		t.Errorf("duplicates %d (want %d), waiting %d, at most %d (want %d)", st.Duplicates, dups, awaiting, maxAwaiting, maxInFlight)
	}
	// The slack is for the runtime's and the server's own goroutines that
	// come and go (timers, address rescans); one per datagram would be
	// 100 more.
	if g := runtime.NumGoroutine(); g > before+maxInFlight+16 {
		t.Errorf("%d goroutines, %d before the flood: more than one per worker slot", g, before)
	}

	// Detection ends: each held request gets its one answer, a success.
	close(core.detecting)
	waitFor(t, 5*time.Second, func() bool { return s.Stats().Replies == maxInFlight }, "the held requests' answers")
	answered := make([]map[uint16]bool, hosts)
	total := 0
	buf := make([]byte, 64)
	for i, c := range conns {
		answered[i] = map[uint16]bool{}
		for {
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, err := c.Read(buf)
			if err != nil {
				break // no more answers (bounded by the deadline)
			}
			r, err := pcp.ParseNATPMPResponse(buf[:n])
			if err != nil || r.Result != pcp.NATPMPSuccess || r.ExternalPort == 0 || r.Lifetime != 3600 {
				t.Errorf("host %d: answer %+v %v", i, r, err)
				continue
			}
			if answered[i][r.InternalPort] {
				t.Errorf("host %d: port %d answered twice", i, r.InternalPort)
			}
			answered[i][r.InternalPort] = true
			total++
		}
		if len(answered[i]) > maxInFlightHost {
			t.Errorf("host %d: %d requests held, more than %d", i, len(answered[i]), maxInFlightHost)
		}
	}
	if total != maxInFlight || len(core.snapshot()) != maxInFlight {
		t.Errorf("%d answers and %d mappings, want %d", total, len(core.snapshot()), maxInFlight)
	}

	// Clients ask again: what was dropped is served now, and so is the
	// first request (no longer in flight).
	roundTrip := func(c *net.UDPConn, port uint16) {
		t.Helper()
		send(c, mapReq(port))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("port %d asked again: %v", port, err)
		}
		if r, err := pcp.ParseNATPMPResponse(buf[:n]); err != nil || r.Result != pcp.NATPMPSuccess || r.InternalPort != port {
			t.Errorf("port %d asked again: %+v %v", port, r, err)
		}
	}
	roundTrip(conns[0], 10000)
	for j := range perHost {
		if p := uint16(10000 + j); !answered[hosts-1][p] {
			roundTrip(conns[hosts-1], p)
		}
	}
}

// TestEpochAfterDetectionWait (review finding): a PCP MAP read at t=0
// waits for the detection (3 s); an ANNOUNCE read at t=2 is answered at
// once with epoch 2. The MAP's answer, sent at t=3, carries the epoch of
// when it is sent (3), not of when it was read (0): "less than the
// previously received Epoch time by more than one second" would tell the
// client that the server lost its state (RFC 6887 §8.5).
func TestEpochAfterDetectionWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newDetectingUpstream()
		s := newDetectServer(t, up)
		time.AfterFunc(3*time.Second, func() { close(up.detected) })
		mapReq := (&pcp.Request{Opcode: pcp.OpMap, Lifetime: 3600, Client: lanHost.Addr(),
			Map: &pcp.Map{Nonce: pcp.Nonce(testNonce), Protocol: 6, InternalPort: 8080, ExternalPort: 18080, ExternalAddr: netip.IPv4Unspecified()}}).AppendMarshal(nil)
		annReq := (&pcp.Request{Opcode: pcp.OpAnnounce, Client: lanHost.Addr()}).AppendMarshal(nil)
		var wg sync.WaitGroup
		var mapAns, annAns []byte
		wg.Go(func() { mapAns = s.Handle(lanHost, cpeLAN, mapReq, time.Now()) })
		wg.Go(func() {
			time.Sleep(2 * time.Second)
			annAns = s.Handle(lanHost, cpeLAN, annReq, time.Now())
		})
		wg.Wait()
		m, err1 := pcp.ParseResponse(mapAns)
		a, err2 := pcp.ParseResponse(annAns)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if m.Result != pcp.Success || a.Epoch != 2 || m.Epoch != 3 {
			t.Errorf("ANNOUNCE epoch %d (want 2); MAP %v epoch %d (want SUCCESS, 3)", a.Epoch, m.Result, m.Epoch)
		}
	})
}
