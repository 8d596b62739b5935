package mapping

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/firewall"
)

// BenchmarkCore measures the core's own cost (firewall faked) of adding,
// looking up and deleting one mapping with n live mappings held by many
// LAN hosts.
func BenchmarkCore(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		c, err := New(context.Background(), Config{Mode: ModeLocal, WANAddr: wanPub, Firewall: nopFirewall{}, Quota: 1 << 20})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		for i := range n {
			if p := 2000 + i; p == 5350 || p == 5351 {
				continue
			}
			h := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			if _, err := c.Map(ctx, Request{Origin: OriginUPnP, Client: h, Proto: TCP,
				Internal: netip.AddrPortFrom(h, 2000), ExternalPort: uint16(2000 + i), ExactPort: true, Lifetime: time.Hour}); err != nil {
				b.Fatal(err)
			}
		}
		probe := Request{Origin: OriginUPnP, Client: host, Proto: UDP, Internal: netip.AddrPortFrom(host, 40000),
			ExternalPort: 40000, ExactPort: true, Lifetime: time.Hour}
		b.Run(fmt.Sprintf("add-delete/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Map(ctx, probe); err != nil {
					b.Fatal(err)
				}
				if k, err := c.Delete(ctx, Selector{Client: host, Proto: UDP, External: 40000}); k != 1 || err != nil {
					b.Fatal(k, err)
				}
			}
		})
		b.Run(fmt.Sprintf("lookup/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			port := uint16(2000 + n/2)
			for b.Loop() {
				if got := c.Find(Selector{Proto: TCP, External: port}); len(got) != 1 {
					b.Fatal(got)
				}
			}
		})
		b.Run(fmt.Sprintf("renew/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			h := netip.AddrFrom4([4]byte{10, 0, 0, 1})
			r := Request{Origin: OriginUPnP, Client: h, Proto: TCP, Internal: netip.AddrPortFrom(h, 2000),
				ExternalPort: 2001, ExactPort: true, Lifetime: time.Hour}
			for b.Loop() {
				if _, err := c.Map(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		})
		c.Close()
	}
}

// nopFirewall is a kernel that costs nothing, so that the benchmark
// measures the core alone.
type nopFirewall struct{}

func (nopFirewall) Apply(context.Context, firewall.Change) error { return nil }
func (nopFirewall) Sync(context.Context, []firewall.Forward, []firewall.Pinhole) error {
	return nil
}
func (nopFirewall) Packets(context.Context, firewall.Pinhole) (uint64, error) { return 0, nil }
func (nopFirewall) SetWANAddr(context.Context, netip.Addr) error              { return nil }
func (nopFirewall) SetExternalAddr(context.Context, netip.Addr) error         { return nil }
