package bench

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Output of `go test -bench . -benchmem -count 3` for two packages, in
// the shape Go 1.26 prints it (worked out from the testing package's
// format, numbers made up).
const microOut = `goos: linux
goarch: amd64
pkg: github.com/pcpgw/pcpgw/mapping
cpu: AMD EPYC
BenchmarkCore/add-delete/10-2         	  100000	      2000 ns/op	     512 B/op	       6 allocs/op
BenchmarkCore/add-delete/10-2         	  100000	      3000 ns/op	     512 B/op	       6 allocs/op
BenchmarkCore/add-delete/10-2         	  100000	      1000 ns/op	     520 B/op	       7 allocs/op
PASS
ok  	github.com/pcpgw/pcpgw/mapping	3.1s
pkg: github.com/pcpgw/pcpgw/pcp
BenchmarkParseRequestMap-2   	 5000000	        41.5 ns/op
BenchmarkParseRequestMap-2   	 5000000	        40.5 ns/op
ok  	github.com/pcpgw/pcpgw/pcp	1.0s
`

func TestParseMicro(t *testing.T) {
	want := []micro{
		{pkg: "mapping", name: "BenchmarkCore/add-delete/10", n: 3, ns: 2000, bytes: 512, allocs: 6},
		{pkg: "pcp", name: "BenchmarkParseRequestMap", n: 2, ns: 41, bytes: -1, allocs: -1},
	}
	if diff := cmp.Diff(want, parseMicro(microOut), cmp.AllowUnexported(micro{})); diff != "" {
		t.Errorf("parseMicro (-want +got):\n%s", diff)
	}
}

func TestParseCross(t *testing.T) {
	// The lines of the Makefile's cross target: printf '%-24s %9d bytes\n'.
	in := "pcpgw-linux-amd64          6111384 bytes\npcpgw-linux-mipsle         6619308 bytes\ngo: downloading x\n"
	want := []crossSize{{"linux-amd64", 6111384}, {"linux-mipsle", 6619308}}
	if diff := cmp.Diff(want, parseCross(in), cmp.AllowUnexported(crossSize{})); diff != "" {
		t.Errorf("parseCross (-want +got):\n%s", diff)
	}
}

func TestPct(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i))
	}
	for _, c := range []struct {
		p    int
		want time.Duration
	}{{50, 100}, {99, 198}, {100, 200}, {1, 2}} {
		if got := pct(d, c.p); got != c.want {
			t.Errorf("pct(1..200, %d) = %d, want %d", c.p, got, c.want)
		}
	}
	if got := pct(nil, 50); got != 0 {
		t.Errorf("pct(nil, 50) = %v, want 0", got)
	}
}
