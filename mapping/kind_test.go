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

// Issue 15: the upstream kinds seen from the core.

// TestKindNone: nothing upstream forwards ports. A mapping is made on the
// CPE's own NAT and succeeds with the CPE's WAN address as the external
// one; nothing is asked upstream; the status says none.
func TestKindNone(t *testing.T) {
	up := newFakeUp()
	up.kind = upstream.KindNone
	c, fw := newCore(t, Config{Mode: ModeAuto, WANAddr: wanCGN, Upstream: up, SecureMode: true})
	ctx := context.Background()
	m, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 5000, 15000, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.AddrPortFrom(wanCGN, 15000); m.External != want || m.Upstream != UpstreamNone || m.WANPort != 15000 {
		t.Errorf("mapping %+v, want external %v on the CPE only", m, want)
	}
	if n, _ := up.counts(); n != 0 {
		t.Errorf("%d upstream requests with kind none", n)
	}
	if len(fw.Forwards()) != 1 {
		t.Errorf("kernel forwards %v", fw.Forwards())
	}
	if a, err := c.ExternalAddr(ctx); err != nil || a != wanCGN {
		t.Errorf("ExternalAddr %v %v, want the WAN address %v", a, err, wanCGN)
	}
	if st := c.Status(); st.Upstream != upstream.KindNone || st.External != wanCGN || st.Pending != 0 {
		t.Errorf("status %+v", st)
	}
	// DS-Lite without port control cannot open anything.
	d, _ := newCore(t, Config{Mode: ModeDSLite, Upstream: up, SecureMode: true})
	_, err = d.Map(ctx, req(OriginNATPMP, host, UDP, 5000, 15000, time.Hour))
	wantCode(t, err, CodeNetworkFailure)
}

// TestKindChangeMovesMappings: another upstream takes over (an ISP box
// replaced, PCP appearing): every mapping is made again there, with a
// fresh nonce and the port the LAN knows; to none, they stay on the CPE
// with the WAN address; back to an upstream, they are made again.
func TestKindChangeMovesMappings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeAuto, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		ctx := context.Background()
		a, err := c.Map(ctx, req(OriginUPnP, host, TCP, 8080, 18080, 0))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 5000, 15000, time.Hour)); err != nil {
			t.Fatal(err)
		}
		first := up.lastMap().Nonce
		up.ext = netip.MustParseAddr("198.51.100.9")
		n0, _ := up.counts()
		up.setKind(upstream.KindUPnP)
		time.Sleep(time.Second)
		synctest.Wait()
		n1, _ := up.counts()
		if n1-n0 != 2 {
			t.Fatalf("%d requests at the new upstream, want 2", n1-n0)
		}
		for _, r := range up.maps[n0:] {
			// The mapping's nonce stays (harmless at another upstream, and
			// the same one again knows it); the port is asked for, not the
			// old upstream's address.
			if r.Nonce == (pcp.Nonce{}) {
				t.Errorf("re-created without the mapping's nonce (first %x)", first)
			}
			if r.SuggestedExternal.Addr() == netip.MustParseAddr("203.0.113.1") {
				t.Errorf("suggested the old upstream's address: %v", r.SuggestedExternal)
			}
			if p := r.SuggestedExternal.Port(); p != 18080 && p != 15000 {
				t.Errorf("asked for port %d", p)
			}
		}
		m, _ := c.Get(a.ID)
		if m.Upstream != UpstreamOK || m.External != netip.MustParseAddrPort("198.51.100.9:18080") {
			t.Errorf("after the move %+v", m)
		}
		if x, _ := c.ExternalAddr(ctx); x != up.ext {
			t.Errorf("external %v, want the new upstream's %v", x, up.ext)
		}

		up.setKind(upstream.KindNone)
		time.Sleep(time.Second)
		synctest.Wait()
		m, _ = c.Get(a.ID)
		if m.Upstream != UpstreamNone || m.External != netip.AddrPortFrom(wanCGN, 18080) {
			t.Errorf("with kind none %+v", m)
		}
		if x, _ := c.ExternalAddr(ctx); x != wanCGN {
			t.Errorf("external %v with kind none, want %v", x, wanCGN)
		}
		n2, _ := up.counts()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if n3, _ := up.counts(); n3 != n2 {
			t.Errorf("%d upstream requests with kind none", n3-n2)
		}

		up.setKind(upstream.KindNATPMP)
		time.Sleep(time.Second)
		synctest.Wait()
		m, _ = c.Get(a.ID)
		if m.Upstream != UpstreamOK || m.External.Port() != 18080 {
			t.Errorf("back upstream %+v", m)
		}
	})
}

// TestRequestWaitsForDetection: a LAN request that comes while the
// upstream is being detected waits for it, then is answered as the
// upstream found says (here none: success on the CPE), not failed.
func TestRequestWaitsForDetection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.kind = upstream.KindNone
		up.detecting = make(chan struct{})
		c, _ := newCore(t, Config{Mode: ModeAuto, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		type res struct {
			m   Mapping
			err error
		}
		done := make(chan res, 1)
		go func() {
			m, err := c.Map(context.Background(), req(OriginUPnP, host, TCP, 8080, 18080, 0))
			done <- res{m, err}
		}()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		select {
		case r := <-done:
			t.Fatalf("answered while detecting: %+v %v", r.m, r.err)
		default:
		}
		close(up.detecting)
		synctest.Wait()
		r := <-done
		if r.err != nil || r.m.External != netip.AddrPortFrom(wanCGN, 18080) {
			t.Fatalf("after detection: %+v %v", r.m, r.err)
		}
	})
}

// TestDetectionWaitBounded: detection that does not end within
// DetectWait leaves the request pending at the upstream, answered within
// the upstream timeout as no answer (RFC 6970 §5.1).
func TestDetectionWaitBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.detecting = make(chan struct{})
		up.block = make(chan struct{})
		c, _ := newCore(t, Config{Mode: ModeAuto, WANAddr: wanCGN, Upstream: up, SecureMode: true})
		start := time.Now()
		_, err := c.Map(context.Background(), req(OriginUPnP, host, TCP, 8080, 18080, 0))
		wantCode(t, err, CodeNetworkFailure)
		if d := time.Since(start); d != DetectWait+2*time.Second {
			t.Errorf("answered after %v, want %v", d, DetectWait+2*time.Second)
		}
		close(up.block)
		close(up.detecting)
	})
}

// TestStateKeepsKind: the state file says which upstream the mappings
// were made at. The same kind after a restart renews them with their
// nonces; another kind makes them again.
func TestStateKeepsKind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		up := newFakeUp()
		c, _ := newCore(t, Config{Mode: ModeAuto, WANAddr: wanCGN, Upstream: up, StateDir: dir})
		if _, err := c.Map(context.Background(), req(OriginUPnP, host, TCP, 8080, 18080, 0)); err != nil {
			t.Fatal(err)
		}
		nonce := up.lastMap().Nonce
		if nonce == (pcp.Nonce{}) {
			t.Fatal("the core sent no nonce of its own")
		}
		c.Close()
		st := readState(t, filepath.Join(dir, StateFile))
		if st.Upstream != "pcp" {
			t.Fatalf("state file upstream %q", st.Upstream)
		}

		same := newFakeUp()
		c2, _ := newCore(t, Config{Mode: ModeAuto, WANAddr: wanCGN, Upstream: same, StateDir: dir})
		time.Sleep(time.Second)
		synctest.Wait()
		if got := same.lastMap().Nonce; got != nonce {
			t.Errorf("renewed with nonce %x after a restart, want %x", got, nonce)
		}
		c2.Close()

		moved := newFakeUp()
		moved.kind = upstream.KindUPnP
		newCore(t, Config{Mode: ModeAuto, WANAddr: wanCGN, Upstream: moved, StateDir: dir})
		moved.events <- upstream.Event{Kind: upstream.EventKindChanged, Upstream: upstream.KindUPnP, Gen: 1}
		time.Sleep(time.Second)
		synctest.Wait()
		var again bool
		for _, r := range moved.maps {
			// Made again: the stored external address is not suggested.
			again = again || r.SuggestedExternal.Addr() == netip.IPv4Unspecified() && r.Nonce == nonce
		}
		if !again {
			t.Errorf("not made again at the new upstream: %+v", moved.maps)
		}
	})
}

func readState(t *testing.T, name string) stateFile {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestExternalAddrWaitsForDetection: the external address asked while the
// upstream is being detected is the one the upstream found says, given
// when detection ends: the provider's (PCP), or the CPE's WAN address
// when nothing upstream forwards ports. Before, it failed after the
// upstream timeout (NAT-PMP opcode 0 answered NETWORK_FAILURE, IGD
// GetExternalIPAddress the empty string).
func TestExternalAddrWaitsForDetection(t *testing.T) {
	for _, tc := range []struct {
		kind upstream.Kind
		want netip.Addr
	}{
		{upstream.KindPCP, netip.MustParseAddr("203.0.113.1")},
		{upstream.KindNone, wanCGN},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				up := newFakeUp()
				up.kind = tc.kind
				up.detecting = make(chan struct{})
				c, _ := newCore(t, Config{Mode: ModeAuto, WANAddr: wanCGN, Upstream: up})
				start := time.Now()
				time.AfterFunc(3*time.Second, func() { close(up.detecting) })
				a, err := c.ExternalAddr(context.Background())
				if err != nil || a != tc.want {
					t.Fatalf("ExternalAddr = %v, %v; want %v", a, err, tc.want)
				}
				if d := time.Since(start); d != 3*time.Second {
					t.Errorf("answered after %v, want when detection ended (3s)", d)
				}
			})
		})
	}
}

// TestAwaitUpstream: AwaitUpstream returns when detection ends, with the
// upstream found in force; at once when none runs or the CPE asks no
// upstream (local mode); after DetectWait when detection does not end;
// and when its context ends.
func TestAwaitUpstream(t *testing.T) {
	t.Run("ends with detection", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			up := newFakeUp()
			up.kind = upstream.KindNone
			up.detecting = make(chan struct{})
			c, _ := newCore(t, Config{Mode: ModeAuto, WANAddr: wanCGN, Upstream: up})
			time.AfterFunc(2500*time.Millisecond, func() { close(up.detecting) })
			start := time.Now()
			c.AwaitUpstream(context.Background())
			if d := time.Since(start); d != 2500*time.Millisecond {
				t.Errorf("returned after %v, want 2.5s", d)
			}
			if k := c.Status().Upstream; k != upstream.KindNone {
				t.Errorf("upstream in force %q, want none", k)
			}
		})
	})
	t.Run("no detection", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, _ := newCore(t, Config{Mode: ModeAuto, WANAddr: wanCGN, Upstream: newFakeUp()})
			start := time.Now()
			c.AwaitUpstream(context.Background())
			if d := time.Since(start); d != 0 {
				t.Errorf("returned after %v", d)
			}
		})
	})
	t.Run("local mode", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			up := newFakeUp()
			up.detecting = make(chan struct{}) // never closed: not asked
			c, _ := newCore(t, Config{Mode: ModeLocal, WANAddr: wanCGN, Upstream: up})
			start := time.Now()
			c.AwaitUpstream(context.Background())
			if d := time.Since(start); d != 0 {
				t.Errorf("returned after %v", d)
			}
		})
	})
	t.Run("bounded", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			up := newFakeUp()
			up.detecting = make(chan struct{})
			c, _ := newCore(t, Config{Mode: ModeAuto, WANAddr: wanCGN, Upstream: up})
			start := time.Now()
			c.AwaitUpstream(context.Background())
			if d := time.Since(start); d != DetectWait {
				t.Errorf("returned after %v, want DetectWait %v", d, DetectWait)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start = time.Now()
			c.AwaitUpstream(ctx)
			if d := time.Since(start); d != time.Second {
				t.Errorf("returned after %v, want its context's 1s", d)
			}
			close(up.detecting)
		})
	})
}

// TestNAT64WaitsForDetection: an IPv4 port for an IPv6 host goes to the
// provider's NAT64, so it waits for the upstream as an IPv4 mapping does:
// here nothing upstream forwards ports, which refuses it when detection
// ends instead of leaving it pending for an upstream that is not there.
// A pinhole does not wait.
func TestNAT64WaitsForDetection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUp()
		up.kind = upstream.KindNone
		up.detecting = make(chan struct{})
		c, _ := newCore(t, Config{Mode: ModeAuto, WANAddr: wanCGN, Upstream: up, Pinholes: true})
		time.AfterFunc(3*time.Second, func() { close(up.detecting) })
		start := time.Now()
		p, err := c.Map(context.Background(), Request{Origin: OriginPCP, Client: host6, Proto: TCP,
			Internal: netip.AddrPortFrom(host6, 9001), Lifetime: time.Hour, Nonce: Nonce{6, 4}})
		if err != nil || !p.IsPinhole() {
			t.Fatalf("pinhole: %+v %v", p, err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("the pinhole waited %v for detection", d)
		}
		_, err = c.Map(context.Background(), nat64Req(9000, time.Hour))
		wantCode(t, err, CodeNetworkFailure)
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("NAT64 request answered after %v, want when detection ended (3s)", d)
		}
		if n := len(c.Find(Selector{Client: host6})); n != 1 {
			t.Errorf("%d mappings of the IPv6 host, want the pinhole only", n)
		}
		if maps, _ := up.counts(); maps != 0 {
			t.Errorf("%d upstream requests to an upstream that forwards nothing", maps)
		}
	})
}
