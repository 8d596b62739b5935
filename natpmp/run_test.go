package natpmp

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/pcp"
	"golang.org/x/net/ipv4"
)

// waitFor polls cond every 10 ms for at most d.
func waitFor(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunLoopback runs the server on "lo" with ephemeral ports: it listens
// on the loopback addresses only, answers NAT-PMP and PCP over real
// sockets, announces on start and on EventStateLost, and leaves no
// goroutine behind when its context ends.
func TestRunLoopback(t *testing.T) {
	before := runtime.NumGoroutine()

	// The announcement listener: 224.0.0.1 joined on lo, an ephemeral port.
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no lo interface:", err)
	}
	mc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	if err := ipv4.NewPacketConn(mc).JoinGroup(lo, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 1)}); err != nil {
		t.Fatal("join 224.0.0.1 on lo:", err)
	}
	announcePort := mc.LocalAddr().(*net.UDPAddr).Port

	core := newFakeCore(time.Now(), time.Now)
	s, err := New(Config{
		Core: core, Interfaces: []string{"lo"}, NATPMP: true, PCP: true,
		Port: -1, AnnouncePort: announcePort, Rescan: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()

	// Ready means listening: the sockets are there without polling.
	select {
	case <-s.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("Ready not closed 5 s after Run")
	}
	if !slices.ContainsFunc(s.Addrs(), func(a netip.AddrPort) bool { return a.Addr() == netip.MustParseAddr("127.0.0.1") }) {
		t.Fatalf("Ready closed but no socket on 127.0.0.1: %v", s.Addrs())
	}
	var server netip.AddrPort
	waitFor(t, 5*time.Second, func() bool {
		for _, a := range s.Addrs() {
			if a.Addr() == netip.MustParseAddr("127.0.0.1") {
				server = a
			}
		}
		return server.IsValid()
	}, "a socket on 127.0.0.1")
	for _, a := range s.Addrs() {
		if !a.Addr().IsLoopback() {
			t.Errorf("listening on %v, not a loopback address", a)
		}
	}

	// The announcements of the start: NAT-PMP opcode 0 and PCP ANNOUNCE,
	// both from the server's socket.
	seen := map[string]bool{}
	mc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	for len(seen) < 2 {
		n, from, err := mc.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("announcements: got %v, then %v", seen, err)
		}
		if from.Port() != server.Port() {
			continue // from another of our sockets on lo (none expected for IPv4)
		}
		switch buf[0] {
		case 0:
			r, err := pcp.ParseNATPMPResponse(buf[:n])
			if err != nil || r.Result != pcp.NATPMPSuccess || r.ExternalAddr != netip.MustParseAddr("203.0.113.1") {
				t.Errorf("NAT-PMP announcement %x: %+v %v", buf[:n], r, err)
			}
			seen["natpmp"] = true
		case 2:
			r, err := pcp.ParseResponse(buf[:n])
			if err != nil || r.Opcode != pcp.OpAnnounce || r.Result != pcp.Success {
				t.Errorf("PCP announcement %x: %+v %v", buf[:n], r, err)
			}
			seen["pcp"] = true
		}
	}

	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip := func(req []byte) []byte {
		t.Helper()
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no reply to %x: %v", req, err)
		}
		return append([]byte(nil), buf[:n]...)
	}
	r, err := pcp.ParseNATPMPResponse(roundTrip([]byte{0, 0}))
	if err != nil || r.ExternalAddr != netip.MustParseAddr("203.0.113.1") {
		t.Fatalf("NAT-PMP external address: %+v %v", r, err)
	}
	req := pcp.Request{Opcode: pcp.OpMap, Lifetime: 600, Client: netip.MustParseAddr("127.0.0.1"),
		Map: &pcp.Map{Nonce: pcp.Nonce{9}, Protocol: 17, InternalPort: 4000}}
	resp, err := pcp.ParseResponse(roundTrip(req.AppendMarshal(nil)))
	if err != nil || resp.Result != pcp.Success || resp.Map.InternalPort != 4000 || resp.Lifetime != 600 {
		t.Fatalf("PCP MAP: %+v %v", resp, err)
	}
	if m := core.snapshot(); len(m) != 1 || m[0].Client != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("core holds %+v", m)
	}

	// State loss: a new round of announcements.
	n0 := s.Stats().Announcements
	core.events <- mapping.Event{Kind: mapping.EventStateLost}
	waitFor(t, 5*time.Second, func() bool { return s.Stats().Announcements > n0 }, "announcements after EventStateLost")
	// A new external address: the schedule restarts at once. After the
	// sends at 0 and 250 ms the next would be at 750 ms.
	time.Sleep(300 * time.Millisecond)
	n1 := s.Stats().Announcements
	core.events <- mapping.Event{Kind: mapping.EventExternalAddr, External: netip.MustParseAddr("203.0.113.1")}
	waitFor(t, 400*time.Millisecond, func() bool { return s.Stats().Announcements > n1 }, "announcements after EventExternalAddr")

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if a := s.Addrs(); len(a) != 0 {
		t.Errorf("still listening on %v after Run", a)
	}
	if core.subs != 0 {
		t.Error("core subscription not released")
	}
	c.Close()
	mc.Close()
	waitFor(t, 5*time.Second, func() bool { return runtime.NumGoroutine() <= before }, "goroutines to end")
}

// TestRunPortInUse: a port held by someone else is an error at start.
func TestRunPortInUse(t *testing.T) {
	held, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	s, err := New(Config{Core: newFakeCore(time.Now(), time.Now), Interfaces: []string{"lo"}, NATPMP: true,
		Port: held.LocalAddr().(*net.UDPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.Run(ctx); err == nil {
		t.Fatal("Run succeeded on a port in use")
	}
}

func TestNewErrors(t *testing.T) {
	core := newFakeCore(time.Now(), time.Now)
	for _, cfg := range []Config{
		{Interfaces: []string{"lo"}, NATPMP: true},
		{Core: core, NATPMP: true},
		{Core: core, Interfaces: []string{"lo"}},
		{Core: core, Interfaces: []string{"lo"}, NATPMP: true, Port: 70000},
		{Core: core, Interfaces: []string{"lo"}, NATPMP: true, MinLifetime: time.Hour, MaxLifetime: time.Minute},
		{Core: core, Interfaces: []string{"lo"}, NATPMP: true, RatePerHost: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
