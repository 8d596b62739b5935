package firewalltest_test

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/firewall/firewalltest"
)

// The methods the mapping core calls, implemented by both.
type backend interface {
	Apply(ctx context.Context, c firewall.Change) error
	Sync(ctx context.Context, fwds []firewall.Forward, pins []firewall.Pinhole) error
	Packets(ctx context.Context, p firewall.Pinhole) (uint64, error)
	SetWANAddr(ctx context.Context, a netip.Addr) error
	SetExternalAddr(ctx context.Context, a netip.Addr) error
	Close() error
}

var (
	_ backend = (*firewall.NFT)(nil)
	_ backend = (*firewalltest.Fake)(nil)
)

var eq = cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})

var (
	ctx = context.Background()
	a   = firewall.Forward{Proto: 6, Port: 18080, To: netip.MustParseAddrPort("192.0.2.100:8080"), Timeout: time.Hour}
	b   = firewall.Forward{Proto: 17, Port: 18080, To: netip.MustParseAddrPort("192.0.2.101:8080")}
	ds  = firewall.Forward{Proto: 6, To: netip.MustParseAddrPort("192.0.2.102:22")}
	pin = firewall.Pinhole{Proto: 6, To: netip.MustParseAddrPort("[2001:db8:1::100]:8080")}
)

func TestApply(t *testing.T) {
	f := firewalltest.New()
	if err := f.Apply(ctx, firewall.Change{AddForwards: []firewall.Forward{a, b, ds}, AddPinholes: []firewall.Pinhole{pin}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]firewall.Forward{ds, a, b}, f.Forwards(), eq); diff != "" {
		t.Errorf("forwards (-want +got):\n%s", diff)
	}
	// adding again refreshes; a new target for the same WAN port replaces
	a2 := a
	a2.To = netip.MustParseAddrPort("192.0.2.103:8080")
	if err := f.Apply(ctx, firewall.Change{AddForwards: []firewall.Forward{a2}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]firewall.Forward{ds, a2, b}, f.Forwards(), eq); diff != "" {
		t.Errorf("forwards after replace (-want +got):\n%s", diff)
	}
	// deleting what is missing is not an error; deletions come first
	if err := f.Apply(ctx, firewall.Change{DelForwards: []firewall.Forward{b, b}, DelPinholes: []firewall.Pinhole{pin, pin}}); err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(ctx, firewall.Change{DelForwards: []firewall.Forward{a2}, AddForwards: []firewall.Forward{a2}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]firewall.Forward{ds, a2}, f.Forwards(), eq); diff != "" {
		t.Errorf("forwards after delete (-want +got):\n%s", diff)
	}
	if got := len(f.Pinholes()); got != 0 {
		t.Errorf("%d pinholes left", got)
	}
	if got := len(f.Batches()); got != 4 {
		t.Errorf("%d batches recorded, want 4", got)
	}
}

func TestInvalidIsAllOrNothing(t *testing.T) {
	f := firewalltest.New()
	bad := firewall.Forward{Proto: 1, Port: 1, To: a.To}
	err := f.Apply(ctx, firewall.Change{AddForwards: []firewall.Forward{a, bad}})
	if !errors.Is(err, firewall.ErrInvalid) {
		t.Fatalf("err %v, want ErrInvalid", err)
	}
	if got := f.Forwards(); len(got) != 0 {
		t.Errorf("a failed change installed %v", got)
	}
	bs := f.Batches()
	if len(bs) != 1 || bs[0].Err == nil {
		t.Errorf("batches %+v: want one failed", bs)
	}
}

func TestInjectedErrors(t *testing.T) {
	f := firewalltest.New()
	boom := errors.New("boom")
	f.FailNext(boom)
	if err := f.Apply(ctx, firewall.Change{AddForwards: []firewall.Forward{a}}); !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
	if len(f.Forwards()) != 0 {
		t.Error("a failed Apply changed the state")
	}
	if err := f.Apply(ctx, firewall.Change{AddForwards: []firewall.Forward{a}}); err != nil {
		t.Fatalf("FailNext failed more than once: %v", err)
	}
	f.SetErr(func(op firewalltest.Op) error {
		if op == firewalltest.OpSync {
			return boom
		}
		return nil
	})
	if err := f.Sync(ctx, nil, nil); !errors.Is(err, boom) {
		t.Errorf("Sync: %v, want boom", err)
	}
	if len(f.Forwards()) != 1 {
		t.Error("a failed Sync changed the state")
	}
	if err := f.SetWANAddr(ctx, netip.MustParseAddr("100.64.0.2")); err != nil {
		t.Errorf("SetWANAddr: %v", err)
	}
	f.SetErr(nil)
	if err := f.Sync(ctx, nil, nil); err != nil {
		t.Errorf("Sync after SetErr(nil): %v", err)
	}
}

func TestSyncPacketsWANClose(t *testing.T) {
	f := firewalltest.New()
	if err := f.Apply(ctx, firewall.Change{AddForwards: []firewall.Forward{a, b}, AddPinholes: []firewall.Pinhole{pin}}); err != nil {
		t.Fatal(err)
	}
	if !f.SetPackets(pin, 7) {
		t.Fatal("SetPackets: pinhole not found")
	}
	if err := f.Sync(ctx, []firewall.Forward{b, ds}, []firewall.Pinhole{pin}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]firewall.Forward{ds, b}, f.Forwards(), eq); diff != "" {
		t.Errorf("after Sync (-want +got):\n%s", diff)
	}
	if n, err := f.Packets(ctx, pin); n != 7 || err != nil {
		t.Errorf("Packets = %d, %v; want 7", n, err)
	}
	f.Expire(firewall.Change{AddPinholes: []firewall.Pinhole{pin}})
	if _, err := f.Packets(ctx, pin); !errors.Is(err, firewall.ErrNotFound) {
		t.Errorf("Packets of an expired pinhole: %v", err)
	}
	if err := f.Sync(ctx, []firewall.Forward{a, {Proto: 6, Port: 18080, To: b.To}}, nil); !errors.Is(err, firewall.ErrInvalid) {
		t.Errorf("Sync with two targets for one port: %v", err)
	}
	if err := f.SetWANAddr(ctx, netip.MustParseAddr("2001:db8::1")); !errors.Is(err, firewall.ErrInvalid) {
		t.Errorf("SetWANAddr(IPv6): %v", err)
	}
	if err := f.SetWANAddr(ctx, netip.MustParseAddr("::ffff:100.64.0.2")); err != nil || f.WANAddr() != netip.MustParseAddr("100.64.0.2") {
		t.Errorf("SetWANAddr: %v, holds %v", err, f.WANAddr())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := f.Apply(ctx, firewall.Change{AddForwards: []firewall.Forward{a}}); !errors.Is(err, firewall.ErrClosed) {
		t.Errorf("Apply after Close: %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	var f firewalltest.Fake // the zero value works
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				x := firewall.Forward{Proto: 6, Port: uint16(1000 + i*100 + j), To: a.To}
				if err := f.Apply(ctx, firewall.Change{AddForwards: []firewall.Forward{x}}); err != nil {
					t.Error(err)
				}
				_ = f.Forwards()
				_ = f.Batches()
			}
		}()
	}
	wg.Wait()
	if got := len(f.Forwards()); got != 400 {
		t.Errorf("%d forwards, want 400", got)
	}
}

// The hairpin of the upstream's external address is keyed as the
// kernel's map fwd4x is, by protocol and upstream port, apart from the
// WAN forwards: adding a forward with an upstream port another holds
// takes it over, deleting a forward deletes what holds its upstream port,
// Sync refuses two targets for one upstream port, expiry removes it.
// SetExternalAddr is recorded and fails as the other calls do.
func TestHairpin(t *testing.T) {
	f := firewalltest.New()
	wan, ext := netip.MustParseAddr("100.64.0.2"), netip.MustParseAddr("203.0.113.1")
	if err := f.SetWANAddr(ctx, wan); err != nil {
		t.Fatal(err)
	}
	if err := f.SetExternalAddr(ctx, ext); err != nil {
		t.Fatal(err)
	}
	x := firewall.Forward{Proto: 6, Port: 18080, To: netip.MustParseAddrPort("192.0.2.100:8080"), UpstreamPort: 19080}
	y := firewall.Forward{Proto: 6, Port: 19080, To: netip.MustParseAddrPort("192.0.2.101:9090"), UpstreamPort: 20080}
	if err := f.Apply(ctx, firewall.Change{AddForwards: []firewall.Forward{x, y}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dst  netip.AddrPort
		want netip.AddrPort
	}{
		{netip.AddrPortFrom(ext, 19080), x.To},
		{netip.AddrPortFrom(ext, 20080), y.To},
		{netip.AddrPortFrom(ext, 18080), netip.AddrPort{}},
		{netip.AddrPortFrom(wan, 19080), y.To},
		{netip.AddrPortFrom(wan, 18080), x.To},
		{netip.MustParseAddrPort("203.0.113.9:19080"), netip.AddrPort{}},
	} {
		if got, ok := f.Hairpin(6, tc.dst); got != tc.want || ok != tc.want.IsValid() {
			t.Errorf("Hairpin(%v) = %v %v, want %v", tc.dst, got, ok, tc.want)
		}
	}
	if _, ok := f.Hairpin(17, netip.AddrPortFrom(ext, 19080)); ok {
		t.Error("Hairpin of another protocol")
	}
	// y takes 19080 over (x's kernel forward still says 19080).
	y2 := y
	y2.UpstreamPort = 19080
	if err := f.Apply(ctx, firewall.Change{DelForwards: []firewall.Forward{y}, AddForwards: []firewall.Forward{y2}}); err != nil {
		t.Fatal(err)
	}
	want := []firewalltest.Hairpin{{Proto: 6, Port: 19080, To: y.To}}
	if diff := cmp.Diff(want, f.Hairpins(), eq); diff != "" {
		t.Errorf("hairpins after the take-over (-want +got):\n%s", diff)
	}
	// Deleting x (with the upstream port it was added with) deletes what
	// holds 19080, as the kernel deletes by key.
	if err := f.Apply(ctx, firewall.Change{DelForwards: []firewall.Forward{x}}); err != nil {
		t.Fatal(err)
	}
	if hp := f.Hairpins(); len(hp) != 0 {
		t.Errorf("hairpins after deleting x: %v", hp)
	}
	if err := f.Sync(ctx, []firewall.Forward{x, y2}, nil); !errors.Is(err, firewall.ErrInvalid) {
		t.Errorf("Sync with two targets for one upstream port: %v", err)
	}
	if err := f.Sync(ctx, []firewall.Forward{x, y}, nil); err != nil {
		t.Fatal(err)
	}
	f.Expire(firewall.Change{AddForwards: []firewall.Forward{x}})
	if diff := cmp.Diff([]firewalltest.Hairpin{{Proto: 6, Port: 20080, To: y.To}}, f.Hairpins(), eq); diff != "" {
		t.Errorf("hairpins after x expired (-want +got):\n%s", diff)
	}
	bad := firewall.Forward{Proto: 6, To: x.To, UpstreamPort: 1}
	if err := f.Apply(ctx, firewall.Change{AddForwards: []firewall.Forward{bad}}); !errors.Is(err, firewall.ErrInvalid) {
		t.Errorf("an upstream port without a WAN port: %v", err)
	}

	boom := errors.New("boom")
	f.FailNext(boom)
	if err := f.SetExternalAddr(ctx, netip.MustParseAddr("198.51.100.1")); !errors.Is(err, boom) || f.ExternalAddr() != ext {
		t.Errorf("failing SetExternalAddr: %v, holds %v", err, f.ExternalAddr())
	}
	if err := f.SetExternalAddr(ctx, netip.MustParseAddr("2001:db8::1")); !errors.Is(err, firewall.ErrInvalid) {
		t.Errorf("SetExternalAddr(IPv6): %v", err)
	}
	if err := f.SetExternalAddr(ctx, netip.Addr{}); err != nil || f.ExternalAddr().IsValid() {
		t.Errorf("clearing the external address: %v, holds %v", err, f.ExternalAddr())
	}
	if _, ok := f.Hairpin(6, netip.AddrPortFrom(ext, 20080)); ok {
		t.Error("hairpinned after the external address was cleared")
	}
	n := 0
	for _, b := range f.Batches() {
		if b.Op == firewalltest.OpExtAddr {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d SetExternalAddr calls recorded, want 4", n)
	}
	f.Close()
	if err := f.SetExternalAddr(ctx, ext); !errors.Is(err, firewall.ErrClosed) {
		t.Errorf("SetExternalAddr after Close: %v", err)
	}
}
