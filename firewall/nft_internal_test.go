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
