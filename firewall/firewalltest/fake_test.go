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
