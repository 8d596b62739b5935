package pcpclient

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// Lab tests of the stuck-request and probe-port fixes against miniupnpd
// 2.3.9 (root; skip otherwise, fail with PCPGW_E2E=1).

// newDefaultLabClient is a client in the cpe namespace with the default
// retransmission times, as pcpgw makes it.
func newDefaultLabClient(t *testing.T, l *lab.Lab) *Client {
	t.Helper()
	var c *Client
	l.CPE.Do(t, func() {
		var err error
		c, err = New(Config{Servers: []netip.AddrPort{cgnServer}, WANInterface: l.CPEWANIf, ListenAnnounce: true})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// mapAll runs all of reqs at once and updates each with its answer's
// nonce and external endpoint (the next call renews them).
func mapAll(t *testing.T, c *Client, reqs []MapRequest, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(reqs))
	for i := range reqs {
		wg.Go(func() {
			res, err := c.Map(ctx, reqs[i])
			errs[i] = err
			if err == nil {
				reqs[i].Nonce, reqs[i].SuggestedExternal = res.Nonce, res.External
				reqs[i].Lifetime = uint32(600 - i)
			}
		})
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("map %d: %v", i, err)
			}
		}
	}
	t.Logf("%d of %d failed; status %+v", failed, len(reqs), c.Status())
}

// TestInteropRenewAllAfterRestart is case A of the stuck-request report:
// 200 mappings made by one client are renewed all at once, with their
// nonces, suggested endpoints and decreasing lifetimes, by a new client
// (pcpgw restarted) whose external-address probe runs at the same time.
// Every renewal completes.
func TestInteropRenewAllAfterRestart(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	const n = 200
	reqs := make([]MapRequest, n)
	for i := range reqs {
		reqs[i] = MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(cpeWAN, uint16(20000+i)), Lifetime: 600, Description: "renew all"}
	}
	c1 := newDefaultLabClient(t, l)
	mapAll(t, c1, reqs, 20*time.Second)
	c1.Close()
	c2 := newDefaultLabClient(t, l)
	probe := make(chan error, 1)
	go func() {
		_, err := c2.ExternalAddr(context.Background())
		probe <- err
	}()
	mapAll(t, c2, reqs, 20*time.Second)
	if err := <-probe; err != nil {
		t.Errorf("ExternalAddr: %v", err)
	}
	if got := m.DNATCount(t); got < n {
		t.Errorf("CGN holds %d DNATs, want at least %d", got, n)
	}
}

// TestInteropProbeGranted: the external-address probe is a mapping
// miniupnpd's default permission rules grant at once (before: UDP port 9,
// refused port by port up to 1024, ~3 s), and a PREFER_FAILURE MAP made
// at the same time (case B of the stuck-request report) is answered.
func TestInteropProbeGranted(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true, Debug: true})
	c := newDefaultLabClient(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	var a netip.Addr
	var aerr, merr error
	var res MapResult
	wg.Go(func() { a, aerr = c.ExternalAddr(ctx) })
	wg.Go(func() {
		res, merr = c.Map(ctx, MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort(lab.LANHost4 + ":8443"), SuggestedExternal: netip.AddrPortFrom(netip.Addr{}, 18443), ThirdParty: true, PreferFailure: true, Lifetime: 600, Description: "web server"})
	})
	wg.Wait()
	took := time.Since(start)
	if aerr != nil || a != cgnPublic {
		t.Errorf("ExternalAddr %v %v", a, aerr)
	}
	if merr != nil || res.External != netip.AddrPortFrom(cgnPublic, 18443) {
		t.Errorf("Map %v %v", res, merr)
	}
	// One transmission each, answered within IRT: no retransmission.
	if took > 2*time.Second {
		t.Errorf("took %v", took)
	}
	if out := m.Output(); strings.Contains(out, "port mapping rejected") {
		t.Errorf("miniupnpd refused something:\n%s", out)
	}
	t.Logf("both answered in %v; status %+v", took.Round(time.Millisecond), c.Status())
	if os.Getenv("DBG") == "1" {
		t.Log(m.Output())
	}
}
