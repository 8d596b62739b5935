package natpmp

import (
	"testing"
)

// BenchmarkHandle measures the handler itself (parse, translate, encode)
// with the fake core: the NAT-PMP external address, a NAT-PMP renewal and a
// PCP MAP renewal. How lookups scale with the number of mappings is the
// core's benchmark, not this one's.
func BenchmarkHandle(b *testing.B) {
	s, _, clock := newTestServer(b, func(c *Config) { c.RatePerHost, c.Burst = 1e12, 1<<40 })
	for _, bc := range []struct{ name, req string }{
		{"natpmp-external", "0000"},
		{"natpmp-map", "0002 0000 1f90 1f90 00000e10"},
		{"pcp-map", mapReq("00000e10", hostV4, "06", "1f90", "1f90", anyV4)},
		{"pcp-map-options", mapReq("00000e10", hostV4, "06", "1f90", "1f90", anyV4, optPreferFailure, optFilterPeer, optDescription)},
	} {
		req := hx(b, bc.req)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if s.Handle(lanHost, cpeLAN, req, clock.now()) == nil {
					b.Fatal("no reply")
				}
			}
		})
	}
}
