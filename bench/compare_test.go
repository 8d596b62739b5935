package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// sizes are the live-mapping counts of the IGD curve (issue 9).
var sizes = []int{10, 1000, 3000, 10000}

// config of one bench run, from the environment the Makefile sets.
type config struct {
	out    string        // PCPGW_BENCH_OUT: out/bench.md goes in it, raw data in out/bench/
	budget time.Duration // PCPGW_BENCH_BUDGET: time allowed per curve size (fill + measure)
	pairs  int           // add+delete pairs measured at each size
	phases string        // PCPGW_BENCH_PHASES: comma-separated subset of miniupnpd,pcpgw,nat444,profile; empty: all
}

func (c config) phase(p string) bool {
	return c.phases == "" || slices.Contains(strings.Split(c.phases, ","), p)
}

func benchConfig(t *testing.T) config {
	t.Helper()
	if os.Getenv("PCPGW_BENCH") != "1" {
		t.Skip("bench: the daemon comparison runs only under `make bench` (PCPGW_BENCH=1)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("bench: PCPGW_BENCH=1 needs root (namespaces, nftables)")
	}
	c := config{out: "../out", budget: 90 * time.Second, pairs: 200}
	if v := os.Getenv("PCPGW_BENCH_OUT"); v != "" {
		c.out = v
	}
	c.phases = os.Getenv("PCPGW_BENCH_PHASES")
	if v := os.Getenv("PCPGW_BENCH_BUDGET"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("bench: PCPGW_BENCH_BUDGET=%q: want a positive duration", v)
		}
		c.budget = d
	}
	if err := os.MkdirAll(filepath.Join(c.out, "bench"), 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// point is one size of the IGD curve.
type point struct {
	size     int
	live     int             // live mappings reached (== size when reached)
	add, del []time.Duration // sorted latencies of the measured pairs
	cpu      time.Duration   // daemon CPU time over the measured pairs
	rss      int64           // daemon's VmRSS after the measured pairs
	fill     time.Duration   // time spent filling up to size
	note     string          // why the point is partial or missing
	floor    []time.Duration // sorted GetExternalIPAddress latencies (first size only)
	errs     int             // failed requests among the measured pairs
}

func (p point) reached() bool { return p.live >= p.size && len(p.add) > 0 }

// runCurve fills the daemon's table with AddPortMapping of distinct
// external ports (10000+i) to each size, then measures pairs of
// AddPortMapping + DeletePortMapping (ports 40000+j) at that size. Each
// size gets budget for fill and measure: once it runs out the curve stops
// there (a point is kept if at least 20 pairs were measured). after, when
// not nil, runs after each reached size.
func runCurve(t *testing.T, name string, c *igdClient, d daemon, cfg config, after func(size int)) []point {
	return runCurveSizes(t, name, c, d, cfg, sizes, after)
}

// runCurveSizes is runCurve at the given sizes.
func runCurveSizes(t *testing.T, name string, c *igdClient, d daemon, cfg config, sizes []int, after func(size int)) []point {
	t.Helper()
	live := 0
	var pts []point
	for _, size := range sizes {
		p := point{size: size}
		start := time.Now()
		deadline := start.Add(cfg.budget)
		var ferr error
		for live < size && time.Now().Before(deadline) {
			if _, ferr = c.add(10000 + live); ferr != nil {
				// Once more: the answer may have been lost to a busy
				// machine; a daemon that refuses twice stops the curve.
				if _, ferr = c.add(10000 + live); ferr != nil {
					break
				}
			}
			live++
		}
		p.fill, p.live = time.Since(start), live
		if live < size {
			p.note = fmt.Sprintf("stopped: %d live after the %v budget", live, cfg.budget)
			if ferr != nil {
				p.note = fmt.Sprintf("stopped: %d live, then %v", live, ferr)
			}
			t.Logf("bench: %s: %s", name, p.note)
			pts = append(pts, p)
			break
		}
		if len(pts) == 0 {
			// The floor: an action that changes nothing, over the same
			// connection.
			for range cfg.pairs {
				f, err := c.call("GetExternalIPAddress", "")
				if err != nil {
					t.Fatalf("bench: %s: GetExternalIPAddress: %v", name, err)
				}
				p.floor = append(p.floor, f)
			}
			sortDur(p.floor)
		}
		_, cpu0 := mustStats(t, d)
		for j := range cfg.pairs {
			if j >= 20 && time.Now().After(deadline) {
				p.note = fmt.Sprintf("%d of %d pairs within the budget", j, cfg.pairs)
				break
			}
			a, err := c.add(40000 + j)
			if err != nil {
				p.errs++
				t.Logf("bench: %s: add at %d live: %v", name, size, err)
				// The daemon may hold it anyway (pcpgw keeps a mapping
				// the provider did not answer for in time, pending):
				// remove it so the size stays as it is.
				c.del(40000 + j)
				continue
			}
			dl, err := c.del(40000 + j)
			if err != nil {
				p.errs++
				t.Logf("bench: %s: delete at %d live: %v", name, size, err)
				continue
			}
			p.add, p.del = append(p.add, a), append(p.del, dl)
		}
		rss, cpu1 := mustStats(t, d)
		p.cpu, p.rss = cpu1-cpu0, rss
		sortDur(p.add)
		sortDur(p.del)
		if p.errs > 0 {
			p.note = strings.TrimPrefix(p.note+fmt.Sprintf("; %d failed requests, see compare.log", p.errs), "; ")
		}
		t.Logf("bench: %s: %d live (filled in %v): add p50 %v p99 %v, delete p50 %v p99 %v, cpu %v for %d requests %s",
			name, size, p.fill.Round(time.Millisecond), pct(p.add, 50), pct(p.add, 99), pct(p.del, 50), pct(p.del, 99),
			p.cpu, 2*len(p.add), p.note)
		pts = append(pts, p)
		over := time.Now().After(deadline) // after's own time does not count
		if after != nil {
			after(size)
		}
		if over {
			break // the next, larger size cannot do better
		}
	}
	return pts
}

func sortDur(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

// pct is the p-th percentile (nearest rank) of sorted d; 0 when empty.
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := (len(d)*p+99)/100 - 1
	return d[max(0, min(i, len(d)-1))]
}

// run is what was measured of one daemon.
type run struct {
	curve         []point
	rssIdle       int64
	pmp           natpmpResult
	pmpNew        natpmpResult  // every request a new mapping (a kernel write each)
	recovery      time.Duration // nat444 only: until all are back
	recoveryFirst time.Duration // until the first is back
	recoveryNote  string
	cgnBefore     int // DNATs at the CGN just before its restart (pcpgw holding 1,000)
	// viaBox is pcpgw's IGD curve with an ISP box's IGD upstream; box the
	// same calls made to the box directly (phase upnp).
	viaBox, box []point
}

const (
	pmpWorkers      = 8
	pmpPerAddr      = 80 // under pcpgw's per-host burst of 100
	pmpPortsPerAddr = 4
	pmpBudget       = 15 * time.Second
	pmpRuns         = 3               // fresh daemons; the median run is reported
	pmpTimeout      = 2 * time.Second // a request not answered by then counts as lost
)

// measureDaemon runs the NAT-PMP load pmpRuns times, each on a fresh
// daemon, keeping the run of median rate, then the IGD curve on another
// fresh one; start starts it.
func measureDaemon(t *testing.T, name string, l *lab.Lab, cfg config, start func() daemon) run {
	var r run
	var runs []natpmpResult
	for i := range pmpRuns {
		d := start()
		waitQuiet(t, d)
		if i == 0 {
			r.rssIdle, _ = mustStats(t, d)
		}
		p := natpmpLoad(t, l, d, pmpWorkers, pmpPerAddr, pmpPortsPerAddr, pmpBudget)
		t.Logf("bench: %s: NAT-PMP %d sent, %d ok, %d lost, %d failed in %v: %.0f/s, p50 %v p99 %v, cpu %v",
			name, p.sent, p.ok, p.lost, p.failed, p.elapsed.Round(time.Millisecond), p.rate(),
			pct(p.lat, 50), pct(p.lat, 99), p.cpu)
		runs = append(runs, p)
		d.Stop(t)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].rate() < runs[j].rate() })
	r.pmp = runs[len(runs)/2]
	// The same load with every request for a new port: no renewals, each
	// request a new mapping and so a kernel write.
	d := start()
	waitQuiet(t, d)
	r.pmpNew = natpmpLoad(t, l, d, pmpWorkers, pmpPerAddr, pmpPerAddr, pmpBudget)
	t.Logf("bench: %s: NAT-PMP new mappings: %d ok in %v: %.0f/s, p50 %v p99 %v",
		name, r.pmpNew.ok, r.pmpNew.elapsed.Round(time.Millisecond), r.pmpNew.rate(), pct(r.pmpNew.lat, 50), pct(r.pmpNew.lat, 99))
	d.Stop(t)

	d = start()
	c := newIGDClient(t, l)
	r.curve = runCurve(t, name, c, d, cfg, nil)
	d.Stop(t)
	return r
}

// waitQuiet waits (at most 5 s) until the daemon has used no CPU for
// 200 ms: its start-up work is done before "idle" is read.
func waitQuiet(t testing.TB, d daemon) {
	t.Helper()
	_, last := mustStats(t, d)
	lab.Eventually(t, 5*time.Second, func() bool {
		time.Sleep(200 * time.Millisecond)
		_, cpu := mustStats(t, d)
		quiet := cpu == last
		last = cpu
		return quiet
	}, "bench: daemon (pid %d) still busy 5s after start", d.Pid())
}

// measureNAT444 runs the IGD curve of pcpgw in nat444 mode through
// miniupnpd as the provider's CGN, and the recovery after the CGN lost
// its state at 1,000 mappings (in the curve, or on its own when the curve
// stopped short of 1,000).
func measureNAT444(t *testing.T, l *lab.Lab, cfg config, bin string) run {
	var nat run
	cgn := l.StartMiniupnpd(t, lab.MiniupnpdOptions{})
	start := func() *pcpgwDaemon {
		return startPcpgw(t, l, bin, nil, "--mode", "nat444", "--pcp-server", lab.CGN4, "--log-level", "warn")
	}
	d := start()
	nat.curve = runCurve(t, "pcpgw nat444", newIGDClient(t, l), d, cfg, func(size int) {
		if size == 1000 {
			nat.recoveryFirst, nat.recovery, nat.recoveryNote = recovery(t, cgn, size, &nat.cgnBefore)
		}
	})
	d.Stop(t)
	if nat.recovery == 0 {
		cgn.Restart(t, true)
		d = start()
		c := newIGDClient(t, l)
		var err error
		for i := 0; i < 1000 && err == nil; i++ {
			if _, err = c.add(10000 + i); err != nil {
				_, err = c.add(10000 + i) // once more, as in runCurve
			}
		}
		if err != nil {
			nat.recoveryNote = fmt.Sprintf("not measured: filling to 1,000 for it: %v", err)
		} else {
			nat.recoveryFirst, nat.recovery, nat.recoveryNote = recovery(t, cgn, 1000, &nat.cgnBefore)
		}
		d.Stop(t)
	}
	cgn.Stop(t)
	return nat
}

func TestCompare(t *testing.T) {
	cfg := benchConfig(t)
	began := time.Now()
	l := lab.New(t, lab.Options{})
	lab.RequireMiniupnpd(t)
	addLoadAddrs(t, l)
	bin := lab.PcpgwBinary(t)

	var mini, pg, nat run
	if cfg.phase("miniupnpd") {
		mini = measureDaemon(t, "miniupnpd", l, cfg, func() daemon { return startMiniupnpdCPE(t, l) })
	}
	if cfg.phase("pcpgw") {
		pg = measureDaemon(t, "pcpgw local", l, cfg, func() daemon {
			return startPcpgw(t, l, bin, nil, "--mode", "local", "--log-level", "warn")
		})
	}
	if cfg.phase("nat444") {
		nat = measureNAT444(t, l, cfg, bin)
	}
	if cfg.phase("profile") {
		profilePcpgw(t, l, cfg)
	}
	if cfg.phase("upnp") {
		nat.viaBox, nat.box = measureUpstreamIGD(t, cfg, bin)
	}

	tab := table(t, cfg, mini, pg, nat)
	md := tab.markdown()
	if err := writeFile(filepath.Join(cfg.out, "bench.md"), []byte(md)); err != nil {
		t.Fatal(err)
	}
	t.Logf("bench: done in %v; table in %s", time.Since(began).Round(time.Second), filepath.Join(cfg.out, "bench.md"))
}

// boxSizes are the live counts of the curve through an ISP box's IGD.
var boxSizes = []int{10, 1000}

// measureUpstreamIGD times AddPortMapping through pcpgw whose upstream is
// an ISP box's UPnP IGD (miniupnpd 2.3.9, IGD:1, in its own lab), and the
// same call made to the box directly from the router at the same number
// of live mappings: what pcpgw adds to the box's own time.
func measureUpstreamIGD(t *testing.T, cfg config, bin string) (via, direct []point) {
	l := lab.New(t, lab.Options{})
	box := l.StartMiniupnpd(t, lab.MiniupnpdOptions{Box: lab.Box{UPnP: true, NoPMP: true, IGDv1: true}})
	boxDaemon := pidDaemon(box.Pid())
	c := newIGDClientIn(t, l.CPE, "http://"+lab.CGN4+":"+strconv.Itoa(lab.BoxHTTPPort)+"/rootDesc.xml", lab.CPEWAN4)
	direct = runCurveSizes(t, "ISP box directly", c, boxDaemon, cfg, boxSizes, nil)
	box.Restart(t, true)
	d := startPcpgw(t, l, bin, nil, "--upstream", "upnp", "--log-level", "warn")
	lab.Eventually(t, 20*time.Second, func() bool {
		var up struct {
			Upstream struct{ Kind string } `json:"upstream"`
		}
		return d.statusJSON(t, &up) == nil && up.Upstream.Kind == "upnp"
	}, "bench: pcpgw did not find the ISP box's IGD")
	via = runCurveSizes(t, "pcpgw through the ISP box's IGD", newIGDClient(t, l), d, cfg, boxSizes, nil)
	d.Stop(t)
	box.Stop(t)
	return via, direct
}

// recovery restarts the CGN with empty state and measures until its
// DNAT count is back to want (pcpgw re-creates the mappings on its
// ANNOUNCE or its next renewal), for at most 60 s: the time until the
// first mapping is back and until all are.
func recovery(t *testing.T, cgn *lab.Miniupnpd, want int, before *int) (first, all time.Duration, note string) {
	t.Helper()
	*before = cgn.DNATCount(t)
	if *before != want {
		t.Logf("bench: CGN holds %d DNATs before the restart, want %d", *before, want)
	}
	cgn.Restart(t, true)
	start := time.Now()
	last := 0
	for time.Since(start) < 60*time.Second {
		last = cgn.DNATCount(t)
		if last > 0 && first == 0 {
			first = time.Since(start)
		}
		if last >= want {
			all = time.Since(start)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("bench: recovery: %d of %d DNATs at the CGN after %v (first after %v)", last, want,
		time.Since(start).Round(time.Millisecond), first.Round(time.Millisecond))
	if all == 0 {
		return first, time.Since(start), fmt.Sprintf("only %d of %d after 60 s", last, want)
	}
	return first, all, ""
}

// profilePcpgw runs pcpgw --mode local built with the bench's pprof
// listener (testdata/pprofmain.go added to package main through
// `go build -overlay`, so cmd/ is untouched), fills it to 10,000
// mappings, takes a CPU profile over IGD add+delete pairs and a NAT-PMP
// load, then a heap profile, into out/bench/, and returns `go tool pprof
// -top` of each.
func profilePcpgw(t *testing.T, l *lab.Lab, cfg config) string {
	t.Helper()
	dir := filepath.Join(cfg.out, "bench")
	bin := filepath.Join(dir, "pcpgw-pprof")
	overlay := filepath.Join(t.TempDir(), "overlay.json")
	src, err := filepath.Abs("testdata/pprofmain.go")
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	js := fmt.Sprintf(`{"Replace":{%q:%q}}`, filepath.Join(root, "cmd/pcpgw/zz_bench_pprof.go"), src)
	if err := writeFile(overlay, []byte(js)); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-overlay", overlay, "-o", bin, "./cmd/pcpgw")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as shipped
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("bench: building the pprof binary: %v\n%s", err, out)
	}
	sock := filepath.Join(t.TempDir(), "pprof.sock")
	d := startPcpgw(t, l, bin, []string{"PCPGW_BENCH_PPROF=" + sock}, "--mode", "local", "--log-level", "warn")
	defer d.Stop(t)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", sock)
	}}}
	c := newIGDClient(t, l)
	for i := range 10000 {
		if _, err := c.add(10000 + i); err != nil {
			t.Fatalf("bench: profile run: filling, mapping %d: %v", i+1, err)
		}
	}
	// profile takes a CPU profile of secs seconds while load runs.
	profile := func(name string, secs int, load func(until time.Time)) []byte {
		type got struct {
			b   []byte
			err error
		}
		ch := make(chan got, 1)
		go func() {
			b, err := fetch(hc, "http://pprof/debug/pprof/profile?seconds="+strconv.Itoa(secs))
			ch <- got{b, err}
		}()
		load(time.Now().Add(time.Duration(secs) * time.Second))
		g := <-ch
		if g.err != nil {
			t.Fatalf("bench: CPU profile %s: %v", name, g.err)
		}
		return g.b
	}
	igd := profile("igd", 8, func(until time.Time) {
		for j := 0; time.Now().Before(until); j++ {
			if _, err := c.add(40000 + j%1000); err != nil {
				t.Fatalf("bench: profile run: add: %v", err)
			}
			if _, err := c.del(40000 + j%1000); err != nil {
				t.Fatalf("bench: profile run: delete: %v", err)
			}
		}
	})
	pmp := profile("natpmp", 8, func(until time.Time) {
		natpmpLoad(t, l, d, pmpWorkers, pmpPerAddr, pmpPortsPerAddr, time.Until(until))
	})
	heap, err := fetch(hc, "http://pprof/debug/pprof/heap?gc=1")
	if err != nil {
		t.Fatalf("bench: heap profile: %v", err)
	}
	rss, _ := mustStats(t, d)
	summary := fmt.Sprintf("pcpgw --mode local at 10,000 IGD mappings (+ NAT-PMP load), VmRSS %s\n", mb(rss))
	for _, p := range []struct {
		name string
		b    []byte
		args []string
	}{
		{"cpu-igd.pprof", igd, []string{"-cum"}},
		{"cpu-natpmp.pprof", pmp, []string{"-cum"}},
		{"heap.pprof", heap, []string{"-sample_index=inuse_space"}},
		{"heap.pprof", heap, []string{"-sample_index=alloc_space", "-cum"}},
	} {
		f := filepath.Join(dir, p.name)
		if err := writeFile(f, p.b); err != nil {
			t.Fatal(err)
		}
		args := append(append([]string{"tool", "pprof", "-top", "-nodecount=30"}, p.args...), bin, f)
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			t.Logf("bench: go tool pprof %s: %v\n%s", f, err, out)
		}
		summary += "== " + p.name + " " + strings.Join(p.args, " ") + "\n" + string(out)
	}
	if err := writeFile(filepath.Join(dir, "pprof-top.txt"), []byte(summary)); err != nil {
		t.Fatal(err)
	}
	t.Logf("bench: profiles of pcpgw at 10,000 mappings:\n%s", summary)
	return summary
}

func fetch(hc *http.Client, u string) ([]byte, error) {
	resp, err := hc.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func writeFile(name string, b []byte) error { return os.WriteFile(name, b, 0o644) }
