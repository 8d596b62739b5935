package firewall_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/internal/lab"
)

func benchForward(port int) firewall.Forward {
	return firewall.Forward{Proto: tcp, Port: uint16(port),
		To: netip.AddrPortFrom(netip.MustParseAddr(lab.LANHost4), uint16(port)), Timeout: time.Hour}
}

// benchFW returns a firewall in a throwaway namespace holding live
// forwards on WAN ports 1..live.
func benchFW(b *testing.B, live int) *firewall.NFT {
	b.Helper()
	l := lab.New(b, lab.Options{NoMiniupnpd: true})
	fw := newFW(b, l, firewall.Config{IPv6Baseline: true})
	var fwds []firewall.Forward
	for p := 1; p <= live; p++ {
		fwds = append(fwds, benchForward(p))
	}
	for len(fwds) > 0 {
		n := min(len(fwds), 500)
		if err := fw.Apply(context.Background(), firewall.Change{AddForwards: fwds[:n]}); err != nil {
			b.Fatal(err)
		}
		fwds = fwds[n:]
	}
	return fw
}

// Issue 4: the cost of one change must not grow with the number of live
// forwards (target: under 0.3 ms per add at 10,000).
func BenchmarkApply(b *testing.B) {
	ctx := context.Background()
	for _, live := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("add/live=%d", live), func(b *testing.B) {
			fw := benchFW(b, live)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				f := benchForward(20001 + i%40000)
				i++
				if err := fw.Apply(ctx, firewall.Change{AddForwards: []firewall.Forward{f}}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("delete/live=%d", live), func(b *testing.B) {
			fw := benchFW(b, live)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				f := benchForward(20001 + i%40000)
				i++
				b.StopTimer()
				if err := fw.Apply(ctx, firewall.Change{AddForwards: []firewall.Forward{f}}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := fw.Apply(ctx, firewall.Change{DelForwards: []firewall.Forward{f}}); err != nil {
					b.Fatal(err)
				}
			}
		})
		// Many requests at once (NAT-PMP bursts): concurrent Apply calls
		// share netlink batches.
		b.Run(fmt.Sprintf("add-parallel/live=%d", live), func(b *testing.B) {
			fw := benchFW(b, live)
			b.ReportAllocs()
			var next atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer() // not the lab's setup
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					f := benchForward(20001 + int(next.Add(1))%40000)
					if err := fw.Apply(ctx, firewall.Change{AddForwards: []firewall.Forward{f}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
