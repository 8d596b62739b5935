package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// tableT is the bench's one table: rows of metric | pcpgw | miniupnpd |
// ratio, after a machine line.
type tableT struct {
	machine string
	rows    [][4]string
}

func (tb *tableT) add(metric, pcpgw, mini, ratio string) {
	tb.rows = append(tb.rows, [4]string{metric, pcpgw, mini, ratio})
}

func (tb *tableT) markdown() string {
	var b strings.Builder
	b.WriteString(tb.machine + "\n\n")
	b.WriteString("| metric | pcpgw | miniupnpd | ratio |\n|---|---|---|---|\n")
	for _, r := range tb.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r[0], r[1], r[2], r[3])
	}
	return b.String()
}

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			load = strings.Join(f[:3], " ")
		}
	}
	return fmt.Sprintf("Machine: %s, %d CPUs, %s, %s, %s UTC, load average at the end %s (shared machine: absolute times are noisy). Ratio: how many times better pcpgw is (miniupnpd's time / pcpgw's; pcpgw's rate / miniupnpd's).",
		cpu, runtime.NumCPU(), kernel, runtime.Version(), time.Now().UTC().Format("2006-01-02 15:04"), load)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

// timeRatio is a/b for two durations of the same metric (miniupnpd's /
// pcpgw's), "—" when either is missing.
func ratio(mini, pcpgw float64) string {
	if mini <= 0 || pcpgw <= 0 {
		return "—"
	}
	if r := mini / pcpgw; r < 1 {
		return fmt.Sprintf("%.2f×", r)
	}
	return fmt.Sprintf("%.1f×", mini/pcpgw)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// curveCell formats percentile p of the add (or delete) latencies of the
// point of size, or why there is none.
func curveCell(pts []point, size int, del bool, p int) (string, time.Duration) {
	for _, pt := range pts {
		if pt.size != size {
			continue
		}
		if !pt.reached() {
			return "stopped at " + strconv.Itoa(pt.live) + " live (budget)", 0
		}
		lat := pt.add
		if del {
			lat = pt.del
		}
		v := pct(lat, p)
		s := ms(v)
		if pt.note != "" {
			s += " (" + pt.note + ")"
		}
		return s, v
	}
	return "not run (smaller size hit the budget)", 0
}

func fillCell(pts []point, size int) (string, float64) {
	for _, pt := range pts {
		if pt.size == size {
			v := pt.fill.Seconds()
			if pt.live < pt.size {
				return fmt.Sprintf("stopped at %d live after %.1f s", pt.live, v), 0
			}
			return fmt.Sprintf("%.2f s", v), v
		}
	}
	return "—", 0
}

func rssCell(pts []point, size int) (string, int64) {
	for _, pt := range pts {
		if pt.size == size && pt.reached() {
			return mb(pt.rss), pt.rss
		}
	}
	return "—", 0
}

func cpuPer1000(pts []point, size int) (string, float64) {
	for _, pt := range pts {
		if pt.size == size && pt.reached() {
			v := float64(pt.cpu) / float64(time.Millisecond) / float64(2*len(pt.add)) * 1000
			return fmt.Sprintf("%.0f ms", v), v
		}
	}
	return "—", 0
}

// table builds the bench table from the three daemon runs and the files the Makefile left in out/bench (micro.txt, cross.txt).
func table(t *testing.T, cfg config, mini, pg, nat run) *tableT {
	t.Helper()
	tb := &tableT{machine: machine()}
	// IGD curves.
	floor := func(pts []point) (string, time.Duration) {
		if len(pts) == 0 || len(pts[0].floor) == 0 {
			return "—", 0
		}
		v := pct(pts[0].floor, 50)
		return ms(v), v
	}
	pf, pfv := floor(pg.curve)
	mf, mfv := floor(mini.curve)
	tb.add(fmt.Sprintf("IGD GetExternalIPAddress p50, %d live (the HTTP+SOAP round trip alone, same client)", sizes[0]), pf, mf, ratio(float64(mfv), float64(pfv)))
	var p50at10 time.Duration
	for _, size := range sizes {
		for _, kind := range []struct {
			name string
			del  bool
		}{{"AddPortMapping", false}, {"DeletePortMapping", true}} {
			for _, p := range []int{50, 99} {
				ps, pv := curveCell(pg.curve, size, kind.del, p)
				msStr, mv := curveCell(mini.curve, size, kind.del, p)
				metric := fmt.Sprintf("IGD %s p%d, %d live (local NAT)", kind.name, p, size)
				if !kind.del && p == 50 {
					if size == 10 {
						p50at10 = pv
					}
					ok := pv > 0 && pv <= 500*time.Microsecond
					if size == 10000 {
						ok = ok && p50at10 > 0 && float64(pv) <= 1.5*float64(p50at10)
						metric += "; target ≤ 0.5 ms and ≤ 1.5× the 10-live p50: " + verdict(ok)
					} else {
						metric += "; target ≤ 0.5 ms: " + verdict(ok)
					}
				}
				tb.add(metric, ps, msStr, ratio(float64(mv), float64(pv)))
			}
		}
	}
	for _, size := range sizes {
		ps, pv := cpuPer1000(pg.curve, size)
		msStr, mv := cpuPer1000(mini.curve, size)
		tb.add(fmt.Sprintf("CPU time (utime+stime) per 1,000 IGD requests, %d live", size), ps, msStr, ratio(mv, pv))
	}
	for _, size := range sizes {
		ps, pv := fillCell(pg.curve, size)
		msStr, mv := fillCell(mini.curve, size)
		tb.add(fmt.Sprintf("Time to fill up to %d live (sequential AddPortMapping from the previous size)", size), ps, msStr, ratio(mv, pv))
	}
	for _, size := range sizes {
		ps, pv := rssCell(pg.curve, size)
		msStr, mv := rssCell(mini.curve, size)
		metric := fmt.Sprintf("Resident memory (VmRSS), %d live", size)
		if size == 10000 {
			metric += "; target ≤ 16 MB: " + verdict(pv > 0 && pv <= 16<<20)
		}
		tb.add(metric, ps, msStr, ratio(float64(mv), float64(pv)))
	}
	// NAT-PMP.
	pr, mr := pg.pmp, mini.pmp
	pmpDesc := fmt.Sprintf("%d LAN source addresses × %d requests (%d ports each: new, then renewals), %d clients in a closed loop, at most %v; median of %d runs",
		len(loadAddrs()), pmpPerAddr, pmpPortsPerAddr, pmpWorkers, pmpBudget, pmpRuns)
	tb.add("NAT-PMP map requests answered per second; "+pmpDesc+"; target ≥ 20,000: "+verdict(pr.rate() >= 20000),
		fmt.Sprintf("%.0f/s (%d ok, %d lost, %d failed)", pr.rate(), pr.ok, pr.lost, pr.failed),
		fmt.Sprintf("%.0f/s (%d ok, %d lost, %d failed)", mr.rate(), mr.ok, mr.lost, mr.failed),
		ratio(pr.rate(), mr.rate()))
	tb.add("NAT-PMP p50", ms(pct(pr.lat, 50)), ms(pct(mr.lat, 50)), ratio(float64(pct(mr.lat, 50)), float64(pct(pr.lat, 50))))
	tb.add("NAT-PMP p99; target < 2 ms: "+verdict(len(pr.lat) > 0 && pct(pr.lat, 99) < 2*time.Millisecond),
		ms(pct(pr.lat, 99)), ms(pct(mr.lat, 99)), ratio(float64(pct(mr.lat, 99)), float64(pct(pr.lat, 99))))
	pn, mn := pg.pmpNew, mini.pmpNew
	tb.add("NAT-PMP new mappings per second (the same load, every request for a new port: a kernel write each); p99",
		fmt.Sprintf("%.0f/s, p99 %s (%d ok, %d lost, %d failed)", pn.rate(), ms(pct(pn.lat, 99)), pn.ok, pn.lost, pn.failed),
		fmt.Sprintf("%.0f/s, p99 %s (%d ok, %d lost, %d failed)", mn.rate(), ms(pct(mn.lat, 99)), mn.ok, mn.lost, mn.failed),
		ratio(pn.rate(), mn.rate()))
	pc := float64(pr.cpu) / float64(time.Millisecond) / float64(max(1, pr.ok)) * 1000
	mc := float64(mr.cpu) / float64(time.Millisecond) / float64(max(1, mr.ok)) * 1000
	tb.add("CPU time per 1,000 NAT-PMP requests", fmt.Sprintf("%.0f ms", pc), fmt.Sprintf("%.0f ms", mc), ratio(mc, pc))
	// nat444.
	for _, size := range sizes {
		for _, p := range []int{50, 99} {
			ps, _ := curveCell(nat.curve, size, false, p)
			tb.add(fmt.Sprintf("IGD AddPortMapping p%d, %d live, nat444 through miniupnpd as CGN", p, size), ps, "n/a (no such mode)", "—")
		}
	}
	rec := fmt.Sprintf("%.2f s (first back after %.2f s)", nat.recovery.Seconds(), nat.recoveryFirst.Seconds())
	if nat.recovery == 0 {
		rec = "not measured"
		if nat.recoveryNote != "" {
			rec += " (" + nat.recoveryNote + ")"
		}
	} else if nat.recoveryNote != "" {
		rec += " (" + nat.recoveryNote + ")"
	}
	cgnFill := "—"
	for _, pt := range nat.curve {
		if pt.size == 1000 && pt.live >= 1000 {
			cgnFill = fmt.Sprintf("%.2f s", pt.fill.Seconds())
		}
	}
	tb.add("Re-create 1,000 mappings at the CGN after it lost its state (miniupnpd restarted empty; until its DNAT count is 1,000 again); target ≤ 10 s: "+
		verdict(nat.recovery > 0 && nat.recoveryNote == "" && nat.recovery <= 10*time.Second), rec, "n/a (no such mode)", "—")
	if nat.cgnBefore > 0 {
		tb.add("DNATs at the CGN while pcpgw holds 1,000 nat444 mappings (more: upstream mappings pcpgw no longer tracks)",
			strconv.Itoa(nat.cgnBefore), "n/a", "—")
	}
	tb.add("For scale: time the same CGN took to take mappings 11 to 1,000 one by one during the nat444 fill", cgnFill, "n/a", "—")
	// Double NAT: an ISP box's UPnP IGD upstream (issue 15).
	if len(nat.viaBox) > 0 || len(nat.box) > 0 {
		for _, size := range boxSizes {
			vs, vv := curveCell(nat.viaBox, size, false, 50)
			bs, bv := curveCell(nat.box, size, false, 50)
			over := "—"
			if vv > 0 && bv > 0 {
				over = fmt.Sprintf("pcpgw adds %s", ms(vv-bv))
			}
			tb.add(fmt.Sprintf("IGD AddPortMapping p50, %d live, through an ISP box's IGD (miniupnpd 2.3.9), beside the box's own time for the same call; target: pcpgw adds < 1 ms: %s",
				size, verdict(vv > 0 && bv > 0 && vv-bv < time.Millisecond)), vs, bs+" (the box, called directly)", over)
		}
	}
	// Footprint.
	tb.add("Resident memory (VmRSS), idle", mb(pg.rssIdle), mb(mini.rssIdle), ratio(float64(mini.rssIdle), float64(pg.rssIdle)))
	miniBin := filepath.Join(lab.PeersDir(), "root/usr/sbin/miniupnpd")
	miniSize := "—"
	if fi, err := os.Stat(miniBin); err == nil {
		miniSize = fmt.Sprintf("%.2f MB (x86_64, dynamic, + libmnl, libnftnl, libc)", float64(fi.Size())/(1<<20))
	}
	cross, err := os.ReadFile(filepath.Join(cfg.out, "bench", "cross.txt"))
	if err != nil {
		t.Logf("bench: no make cross output: %v", err)
	}
	for _, c := range parseCross(string(cross)) {
		m := "n/a"
		if c.target == "linux-amd64" {
			m = miniSize
		}
		metric := "Binary size, stripped, " + c.target
		if c.target == "linux-mipsle" {
			metric += "; target ≤ 6 MB: " + verdict(c.size <= 6<<20)
		}
		tb.add(metric, fmt.Sprintf("%.2f MB", float64(c.size)/(1<<20)), m, "—")
	}
	// Micro-benchmarks.
	micro, err := os.ReadFile(filepath.Join(cfg.out, "bench", "micro.txt"))
	if err != nil {
		t.Logf("bench: no micro-benchmark output: %v", err)
	}
	for _, m := range parseMicro(string(micro)) {
		v := fmt.Sprintf("%s/op", fmtNs(m.ns))
		if m.allocs >= 0 {
			v += fmt.Sprintf(", %.0f B/op, %.0f allocs/op", m.bytes, m.allocs)
		}
		tb.add("Go micro-benchmark "+m.pkg+" "+m.name+fmt.Sprintf(" (median of %d)", m.n), v, "n/a", "—")
	}
	return tb
}

func fmtNs(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

type crossSize struct {
	target string // "linux-mipsle"
	size   int64
}

// parseCross reads `make cross` output: "pcpgw-linux-mipsle   5123456 bytes".
func parseCross(s string) []crossSize {
	var out []crossSize
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "bytes" || !strings.HasPrefix(f[0], "pcpgw-") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, crossSize{strings.TrimPrefix(f[0], "pcpgw-"), n})
	}
	return out
}

type micro struct {
	pkg, name         string
	n                 int     // runs the median is over
	ns, bytes, allocs float64 // medians; bytes and allocs -1 without -benchmem
}

// parseMicro reads `go test -bench -benchmem` output of many packages
// (each block ends with "ok  <pkg>" or starts with "pkg: <pkg>") and
// returns one entry per benchmark with the medians over its -count runs,
// in the order first seen.
func parseMicro(s string) []micro {
	type acc struct {
		pkg, name         string
		ns, bytes, allocs []float64
	}
	var order []string
	accs := map[string]*acc{}
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "pkg:" {
			pkg = strings.TrimPrefix(f[1], "github.com/pcpgw/pcpgw/")
			continue
		}
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the GOMAXPROCS suffix
			}
		}
		key := pkg + " " + name
		a := accs[key]
		if a == nil {
			a = &acc{pkg: pkg, name: name}
			accs[key] = a
			order = append(order, key)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				a.ns = append(a.ns, v)
			case "B/op":
				a.bytes = append(a.bytes, v)
			case "allocs/op":
				a.allocs = append(a.allocs, v)
			}
		}
	}
	var out []micro
	for _, k := range order {
		a := accs[k]
		if len(a.ns) == 0 {
			continue
		}
		m := micro{pkg: a.pkg, name: a.name, n: len(a.ns), ns: median(a.ns), bytes: -1, allocs: -1}
		if len(a.allocs) > 0 {
			m.bytes, m.allocs = median(a.bytes), median(a.allocs)
		}
		out = append(out, m)
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
