package tolerance

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// miniupnpd's own default permission rules (its miniupnpd.conf), which
// are also pcpgw's defaults (mapping.DefaultRules).
var defaultRules = []string{
	"allow 1024-65535 0.0.0.0/0 1024-65535",
	"deny 0-65535 0.0.0.0/0 0-65535",
}

// Addresses of the second host of each side: an extra address on the
// link of the first.
const (
	miniupnpdOther  = "100.64.0.3"
	miniupnpdOther6 = "2001:db8:ff::3"
	pcpgwOther      = "192.0.2.101"
	pcpgwOther6     = "2001:db8:1::101"
)

// TestDifferential sends the corpus to miniupnpd 2.3.9 and to pcpgw and
// compares the outcomes with the documented differences (see the package
// doc): the whole corpus with secure mode on (pcpgw's default,
// secure_mode=yes in miniupnpd), and in a lab of its own at the same time
// the cases about another host with secure mode off on both. It takes
// 10-15 s.
func TestDifferential(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireMiniupnpd(t)
	docs, err := readAllDocumented()
	if err != nil {
		t.Fatal(err)
	}
	var secure, insecure []tcase
	for _, c := range corpus() {
		if c.insecure {
			insecure = append(insecure, c)
		} else {
			secure = append(secure, c)
		}
	}
	t.Run("secure_mode=yes", func(t *testing.T) {
		t.Parallel()
		runPhase(t, true, secure, docs)
	})
	t.Run("secure_mode=no", func(t *testing.T) {
		t.Parallel()
		runPhase(t, false, insecure, docs)
	})
}

// runPhase builds a lab, starts both daemons with secure mode on or off,
// runs cases on both and checks the outcomes against docs.
func runPhase(t *testing.T, secureMode bool, cases []tcase, docs map[string]documented) {
	start := time.Now()
	l := lab.New(t, lab.Options{})
	// Host names: "self.lan" is the requesting host in each daemon's
	// /etc/hosts; other names ("abc", "*") fail at once, without asking a
	// name server outside the lab: resolv.conf names the namespace's own
	// loopback, where nothing listens. (ip netns exec mounts the files of
	// /etc/netns/NS over /etc for what it starts; the lab removes the
	// directories.)
	for ns, self := range map[*lab.NS]string{l.CPE: lab.LANHost4, l.ISP: lab.CPEWAN4} {
		dir := filepath.Join("/etc/netns", ns.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]string{
			"resolv.conf": "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
			"hosts":       "127.0.0.1 localhost\n" + self + " self.lan\n",
		} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.CPE.Run(t, "ip", "addr", "add", miniupnpdOther+"/24", "dev", l.CPEWANIf)
	l.CPE.Run(t, "ip", "addr", "add", miniupnpdOther6+"/64", "dev", l.CPEWANIf, "nodad")
	l.LAN.Run(t, "ip", "addr", "add", pcpgwOther+"/24", "dev", l.LANIf)
	l.LAN.Run(t, "ip", "addr", "add", pcpgwOther6+"/64", "dev", l.LANIf, "nodad")
	l.StartMiniupnpd(t, lab.MiniupnpdOptions{Box: lab.Box{UPnP: true}, SecureMode: secureMode, Rules: defaultRules})
	args := []string{"--mode", "local", "--http-port", "5000"}
	if !secureMode {
		args = append(args, "--no-secure-mode")
	}
	p := l.StartPcpgw(t, args...)
	mu := &side{
		name: "miniupnpd", ns: l.CPE,
		hosts:  [2]netip.Addr{netip.MustParseAddr(lab.CPEWAN4), netip.MustParseAddr(miniupnpdOther)},
		hosts6: [2]netip.Addr{netip.MustParseAddr(lab.CPEWAN6), netip.MustParseAddr(miniupnpdOther6)},
		gw:     netip.MustParseAddr(lab.CGN4), gw6: netip.MustParseAddr(lab.CGN6),
		ext:  []netip.Addr{netip.MustParseAddr(lab.CGNPublic4)},
		port: lab.BoxHTTPPort,
		// miniupnpd serves every action on any control URL; these are
		// the ones of its description.
		paths: map[string]string{"igd1": "/ctl/IPConn", "igd2": "/ctl/IPConn", "ifc1": "/ctl/CmnIfCfg", "ifc2": "/ctl/CmnIfCfg", "fw": "/ctl/IP6FCtl"},
	}
	pg := &side{
		name: "pcpgw", ns: l.LAN,
		hosts:  [2]netip.Addr{netip.MustParseAddr(lab.LANHost4), netip.MustParseAddr(pcpgwOther)},
		hosts6: [2]netip.Addr{netip.MustParseAddr(lab.LANHost6), netip.MustParseAddr(pcpgwOther6)},
		gw:     netip.MustParseAddr(lab.CPELAN4), gw6: netip.MustParseAddr(lab.CPELAN6),
		ext:  []netip.Addr{netip.MustParseAddr(lab.CPEWAN4), netip.MustParseAddr(miniupnpdOther)},
		port: 5000,
		paths: map[string]string{"igd1": "/igd1/WANIPConn1/ctl", "igd2": "/igd2/WANIPConn1/ctl",
			"ifc1": "/igd1/WANCommonIFC1/ctl", "ifc2": "/igd2/WANCommonIFC1/ctl", "fw": "/igd2/WANIPv6Firewall1/ctl"},
		// pcpgw's NAT-PMP/PCP rate limit is 50/s, burst 100 per host.
		pace: newPacer(40, 90),
	}
	sides := []*side{mu, pg}
	// pcpgw's HTTP server may start a little after its control socket.
	lab.Eventually(t, 10*time.Second, func() bool {
		var err error
		pg.ns.Do(t, func() { _, err = pg.table() })
		return err == nil
	}, "pcpgw's IGD does not answer")
	setupDone := time.Now()

	// Each side runs the corpus on its own goroutine inside the
	// namespace of its clients.
	results := make([][2]string, len(cases))
	all := make([]int, len(cases))
	for j := range all {
		all[j] = j
	}
	took := runCases(t, sides, cases, all, results)
	t.Logf("%d cases; lab and daemons ready in %v; miniupnpd's side ran in %v, pcpgw's in %v",
		len(cases), setupDone.Sub(start).Round(time.Millisecond), took[0].Round(time.Millisecond), took[1].Round(time.Millisecond))
	// A case whose outcomes are not the documented ones runs again on
	// both sides (a case starts from an empty table, so it can), waiting
	// longer for NAT-PMP and PCP answers: on a busy machine an answer
	// can come after the first wait. The second outcomes count.
	var again []int
	for j, c := range cases {
		d, listed := docs[c.id]
		m, g := results[j][0], results[j][1]
		if listed && (d.miniupnpd != m || d.pcpgw != g) || !listed && m != g {
			again = append(again, j)
		}
	}
	if len(again) > 0 {
		for _, s := range sides {
			s.slow = true
		}
		runCases(t, sides, cases, again, results)
		var ids []string
		for _, j := range again[:min(len(again), 10)] {
			ids = append(ids, cases[j].id)
		}
		t.Logf("%d cases with unexpected outcomes ran again: %s", len(again), strings.Join(ids, "; "))
	}

	var harness, undocumented, changed, gone []string
	differ := 0
	for j, c := range cases {
		m, g := results[j][0], results[j][1]
		if strings.HasPrefix(m, "harness:") || strings.HasPrefix(g, "harness:") {
			harness = append(harness, fmt.Sprintf("%s\n\tminiupnpd: %s\n\tpcpgw:     %s", c.id, m, g))
			continue
		}
		d, listed := docs[c.id]
		if m == g {
			if listed {
				gone = append(gone, fmt.Sprintf("%s: %s (both: %s)", d.where, c.id, m))
			}
			continue
		}
		differ++
		switch {
		case !listed:
			undocumented = append(undocumented, fmt.Sprintf("%s: %s | %s | %s | WHY", docFileFor(c.id), c.id, m, g))
		case d.miniupnpd != m || d.pcpgw != g:
			changed = append(changed, fmt.Sprintf("%s: %s\n\tlisted: %s | %s\n\tnow:    %s | %s", d.where, c.id, d.miniupnpd, d.pcpgw, m, g))
		}
	}
	t.Logf("%d cases differ", differ)
	if len(harness) > 0 {
		t.Errorf("the harness failed in %d cases (setup or table reads):\n%s", len(harness), strings.Join(harness, "\n"))
	}
	if len(undocumented) > 0 {
		slices.Sort(undocumented)
		t.Errorf("%d outcomes differ from miniupnpd's and are not in the tables (rows to add, with the reason the difference is kept, or remove the difference):\n%s",
			len(undocumented), strings.Join(undocumented, "\n"))
	}
	if len(changed) > 0 {
		t.Errorf("%d documented differences have other outcomes now:\n%s", len(changed), strings.Join(changed, "\n"))
	}
	if len(gone) > 0 {
		t.Errorf("%d documented differences no longer occur (remove their rows):\n%s", len(gone), strings.Join(gone, "\n"))
	}
	if t.Failed() {
		t.Logf("pcpgw's log (tail):\n%s", tail(p.Output(), 30))
	}
}

// runCases runs cases[which] on every side, each side on its own
// goroutine inside the namespace of its clients, into results, and
// returns how long each side took.
func runCases(t *testing.T, sides []*side, cases []tcase, which []int, results [][2]string) []time.Duration {
	took := make([]time.Duration, len(sides))
	var wg sync.WaitGroup
	for i, s := range sides {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			s.ns.Do(t, func() {
				for _, j := range which {
					results[j][i] = s.runCase(cases[j])
				}
			})
			took[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	return took
}

// runCase runs c on s and returns its outcome, or "harness: ..." when the
// harness itself failed (a setup request refused, a table unreadable).
func (s *side) runCase(c tcase) string {
	k := ports{}
	for _, st := range c.setup {
		st.addPorts(k)
	}
	c.req.addPorts(k)
	if err := s.reset(); err != nil {
		s.last = nil
		return "harness: reset: " + err.Error()
	}
	for i, st := range c.setup {
		rep, err := st.run(s, k)
		if err != nil || !ok(rep) {
			s.last, _ = s.table()
			return fmt.Sprintf("harness: setup %d: %s %v", i, rep, err)
		}
	}
	before, err := s.table()
	if err != nil {
		return "harness: table before: " + err.Error()
	}
	s.last = before
	rep, err := c.req.run(s, k)
	if err != nil {
		s.last, _ = s.table()
		return "harness: request: " + err.Error()
	}
	after, err := s.table()
	if err != nil {
		return "harness: table after: " + err.Error()
	}
	s.last = after
	if len(c.cleanup) > 0 {
		for _, st := range c.cleanup {
			st.run(s, k)
		}
		if s.last, err = s.table(); err != nil {
			return "harness: table after cleanup: " + err.Error()
		}
	}
	if len(s.pins) > 0 && !c.replyOnly {
		ps, err := s.pinState()
		if err != nil {
			return "harness: pinholes: " + err.Error()
		}
		rep += " " + ps
	}
	if e := effect(before, after, k); e != "" && !c.replyOnly {
		return rep + " " + e
	}
	return rep
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
