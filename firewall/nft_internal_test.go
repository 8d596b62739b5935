package firewall

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// newInNS returns an NFT in a fresh namespace of its own.
func newInNS(t testing.TB) *NFT {
	t.Helper()
	l := lab.New(t, lab.Options{NoMiniupnpd: true})
	ns, err := os.Open(filepath.Join("/run/netns", l.CPE.Name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	f, err := New(Config{WAN: l.CPEWANIf, LAN: []string{l.CPELANIf}, NetNS: int(ns.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func elems(t *testing.T, f *NFT, id setID) []elem {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	es, err := f.readSets([]setID{id})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// When the caller's view disagrees with the kernel (a WAN port held with
// another target), Apply repairs from the kernel's state instead of
// failing the batch.
func TestApplyRepair(t *testing.T) {
	f := newInNS(t)
	ctx := context.Background()
	fwd := func(to string) Forward {
		return Forward{Proto: 6, Port: 18080, To: netip.MustParseAddrPort(to), Timeout: time.Hour}
	}
	if err := f.Apply(ctx, Change{AddForwards: []Forward{fwd("192.0.2.100:8080")}}); err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(ctx, Change{AddForwards: []Forward{fwd("192.0.2.100:9090")}}); err != nil {
		t.Fatalf("add over another target: %v", err)
	}
	es := elems(t, f, setFwd4)
	want, _ := forwardElems(fwd("192.0.2.100:9090"))
	if len(es) != 1 || string(es[0].val) != string(want[0].val) {
		t.Errorf("fwd4 holds %v, want only %v", es, want[0])
	}
	// deleting with a stale target still frees the WAN port
	if err := f.Apply(ctx, Change{DelForwards: []Forward{fwd("192.0.2.100:1111")}}); err != nil {
		t.Fatalf("delete with another target: %v", err)
	}
	if es := elems(t, f, setFwd4); len(es) != 0 {
		t.Errorf("fwd4 still holds %v", es)
	}
}

// Re-adding refreshes the timeout, both on kernels that update elements in
// place and with the delete-and-add fallback older kernels need.
func TestRefresh(t *testing.T) {
	for _, inPlace := range []bool{true, false} {
		t.Run(map[bool]string{true: "in place", false: "delete and add"}[inPlace], func(t *testing.T) {
			f := newInNS(t)
			if inPlace && !f.refreshInPlace {
				t.Skip("kernel does not update element timeouts in place (before Linux 6.10)")
			}
			f.refreshInPlace = inPlace
			ctx := context.Background()
			p := Pinhole{Proto: 6, To: netip.MustParseAddrPort("[2001:db8:1::100]:8080"), Timeout: time.Hour}
			if err := f.Apply(ctx, Change{AddPinholes: []Pinhole{p}}); err != nil {
				t.Fatal(err)
			}
			p.Timeout = 2 * time.Hour
			if err := f.Apply(ctx, Change{AddPinholes: []Pinhole{p}}); err != nil {
				t.Fatal(err)
			}
			es := elems(t, f, setPin6)
			if len(es) != 1 || es[0].timeout != 2*time.Hour {
				t.Errorf("pin6 holds %v, want one element with timeout 2h", es)
			}
			if err := f.Sync(ctx, nil, []Pinhole{p}); err != nil {
				t.Fatal(err)
			}
			if es := elems(t, f, setPin6); len(es) != 1 {
				t.Errorf("after Sync pin6 holds %v", es)
			}
		})
	}
}

// A change far larger than one netlink attribute can hold (the element
// list's length is 16 bits) still goes through as one batch.
func TestLargeChange(t *testing.T) {
	f := newInNS(t)
	ctx := context.Background()
	var fwds []Forward
	for i := range 20000 {
		fwds = append(fwds, Forward{Proto: 6, Port: uint16(1 + i),
			To: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.100"), uint16(1+i)), Timeout: time.Hour})
	}
	if err := f.Apply(ctx, Change{AddForwards: fwds}); err != nil {
		t.Fatalf("adding 20000: %v", err)
	}
	if n := len(elems(t, f, setFwd4)); n != 20000 {
		t.Errorf("fwd4 holds %d, want 20000", n)
	}
	if err := f.Apply(ctx, Change{DelForwards: fwds}); err != nil {
		t.Fatalf("deleting 20000: %v", err)
	}
	if n := len(elems(t, f, setAcc4)); n != 0 {
		t.Errorf("acc4 holds %d after deleting all", n)
	}
	// the connection is still in step afterwards
	if err := f.Apply(ctx, Change{AddForwards: fwds[:1]}); err != nil {
		t.Fatal(err)
	}
}

// applyQueued starts Apply(c) and returns once the call waits in the
// queue (mu is held by the test), so that calls queue in a known order.
func applyQueued(t *testing.T, f *NFT, c Change, errs chan<- error) {
	t.Helper()
	f.qmu.Lock()
	n := len(f.waiting)
	f.qmu.Unlock()
	go func() { errs <- f.Apply(context.Background(), c) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.qmu.Lock()
		m := len(f.waiting)
		f.qmu.Unlock()
		if m > n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Apply did not queue within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestApplyGroupCommit: Apply calls that arrive while a batch is with the
// kernel go together in the next batch, each applied whole and in call
// order; when the kernel refuses the shared batch, each change is sent on
// its own (and repaired from the kernel's state), so every call succeeds.
func TestApplyGroupCommit(t *testing.T) {
	f := newInNS(t)
	fwd := func(port uint16, to string) Forward {
		return Forward{Proto: 6, Port: port, To: netip.MustParseAddrPort(to), Timeout: time.Hour}
	}
	wait := func(errs chan error, n int) {
		t.Helper()
		for range n {
			select {
			case err := <-errs:
				if err != nil {
					t.Errorf("Apply: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Apply did not return within 10 s")
			}
		}
	}

	// 50 calls queued behind a batch in progress: one batch.
	errs := make(chan error, 100)
	f.mu.Lock()
	before := f.batches
	for i := range 50 {
		applyQueued(t, f, Change{AddForwards: []Forward{fwd(uint16(20000+i), "192.0.2.100:8080")}}, errs)
	}
	f.mu.Unlock()
	wait(errs, 50)
	f.mu.Lock()
	sent := f.batches - before
	f.mu.Unlock()
	if sent != 1 {
		t.Errorf("50 queued changes went in %d batches, want 1", sent)
	}
	if got := len(elems(t, f, setFwd4)); got != 50 {
		t.Errorf("fwd4 holds %d elements, want 50", got)
	}

	// Order within a batch: add X->a, delete X, add X->b ends with X->b.
	f.mu.Lock()
	before = f.batches
	applyQueued(t, f, Change{AddForwards: []Forward{fwd(18080, "192.0.2.100:1111")}}, errs)
	applyQueued(t, f, Change{DelForwards: []Forward{fwd(18080, "192.0.2.100:1111")}}, errs)
	applyQueued(t, f, Change{AddForwards: []Forward{fwd(18080, "192.0.2.100:2222")}}, errs)
	f.mu.Unlock()
	wait(errs, 3)
	f.mu.Lock()
	sent = f.batches - before
	f.mu.Unlock()
	if sent != 1 {
		t.Errorf("add, delete, add of one key: %d batches, want 1", sent)
	}

	// A refused shared batch: the first change adds 20000 (held with
	// another target: EEXIST on the fast path) next to a plain add.
	f.mu.Lock()
	before = f.batches
	applyQueued(t, f, Change{AddForwards: []Forward{fwd(20000, "192.0.2.101:9090")}}, errs)
	applyQueued(t, f, Change{AddForwards: []Forward{fwd(30000, "192.0.2.100:8080")}}, errs)
	f.mu.Unlock()
	wait(errs, 2)
	f.mu.Lock()
	sent = f.batches - before
	f.mu.Unlock()
	if sent != 3 {
		t.Errorf("refused shared batch: %d batches, want 3 (the shared one, then one per change)", sent)
	}
	want := map[uint16]string{18080: "192.0.2.100:2222", 20000: "192.0.2.101:9090", 30000: "192.0.2.100:8080"}
	for port, to := range want {
		w, _ := forwardElems(fwd(port, to))
		found := false
		for _, e := range elems(t, f, setFwd4) {
			if string(e.key) == string(w[0].key) {
				found = true
				if string(e.val) != string(w[0].val) {
					t.Errorf("port %d: value %x, want %x (%s)", port, e.val, w[0].val, to)
				}
			}
		}
		if !found {
			t.Errorf("port %d missing", port)
		}
	}
	if got := len(elems(t, f, setFwd4)); got != 52 {
		t.Errorf("fwd4 holds %d elements, want 52", got)
	}
}
