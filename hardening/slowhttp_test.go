package hardening_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// vmRSS reads VmRSS of pid in KiB.
func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// raiseNoFile makes sure the test process may hold n more descriptors and
// restores the limit at the end of the test.
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if old.Cur >= n {
		return
	}
	lim := old
	lim.Cur = n
	lim.Max = max(old.Max, n) // root may raise the hard limit
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("RLIMIT_NOFILE %d: %v", n, err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// TestLabSlowHTTPConnections: slowloris against the IGD's HTTP port (issue
// 10, "1,000 slow HTTP connections held open"). LAN host lan opens 1,000
// TCP connections to 192.0.2.1:5000 and feeds each a request that never
// ends, one header line every 300 ms. pcpgw keeps at most MaxConns/4 (8)
// of one host's connections (a per-host cap in internal/httpd: each new
// one closes the host's oldest idle one), so while that host holds its
// maximum:
//   - its own new connection with a whole request is answered (issue 18:
//     another program of that host is not locked out);
//   - another LAN host's AddPortMapping (raw SOAP on a fresh connection)
//     is answered 200 within 100 ms;
//   - pcpgw's resident memory stays under 40 MB and grows by less than
//     8 MB.
//
// Without the per-host cap the first 32 connections (MaxConns) took every
// slot for up to the 10 s read timeout, again and again, and every other
// host got 503.
func TestLabSlowHTTPConnections(t *testing.T) {
	lab.RequireRoot(t)
	const conns = 1000
	raiseNoFile(t, conns+1024)
	l := lab.New(t, lab.Options{Local: true, ExtraLANHosts: 1})
	p := l.StartPcpgw(t, "--http-port", "5000")
	attacker, victim := l.LANHosts[0], l.LANHosts[1]
	victim4, _ := l.LANHostAddrs(1)
	target := netip.AddrPortFrom(cpeLAN4, 5000).String()
	const svc = "urn:schemas-upnp-org:service:WANIPConnection:2"
	add := func(port int) (string, time.Duration) {
		start := time.Now()
		st, body := soap(t, victim, "/igd2/WANIPConn1/ctl", svc, "AddPortMapping",
			fmt.Sprintf("<NewRemoteHost></NewRemoteHost><NewExternalPort>%d</NewExternalPort><NewProtocol>TCP</NewProtocol>"+
				"<NewInternalPort>%d</NewInternalPort><NewInternalClient>%s</NewInternalClient><NewEnabled>1</NewEnabled>"+
				"<NewPortMappingDescription>slow</NewPortMappingDescription><NewLeaseDuration>3600</NewLeaseDuration>", port, port, victim4))
		d := time.Since(start)
		if !strings.Contains(st, " 200 ") {
			t.Errorf("AddPortMapping of port %d: %q %.300s", port, st, body)
		}
		return st, d
	}
	// The daemon serves HTTP (and has settled) before the attack.
	lab.Eventually(t, 5*time.Second, func() bool {
		st, _ := soap(t, victim, "/igd2/WANIPConn1/ctl", svc, "GetExternalIPAddress", "")
		return strings.Contains(st, " 200 ")
	}, "the IGD does not answer on %s", target)
	add(18000)
	rssBefore := vmRSS(t, p.Pid())

	// The attack: 1,000 connections from one host, each with a request
	// that never ends.
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	head := fmt.Sprintf("POST /igd2/WANIPConn1/ctl HTTP/1.1\r\nHost: %s\r\n", target)
	dialErrs := 0
	attacker.Do(t, func() {
		for range conns {
			c, err := net.DialTimeout("tcp", target, 2*time.Second)
			if err != nil {
				dialErrs++
				continue
			}
			held = append(held, c)
		}
	})
	if dialErrs > 0 {
		t.Logf("%d of %d connects failed", dialErrs, conns)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var mu sync.Mutex
	alive := len(held)
	wg.Add(1)
	go func() { // one more header line on every live connection, every 300 ms
		defer wg.Done()
		live := append([]net.Conn(nil), held...)
		for i := 0; ; i++ {
			next := live[:0]
			for _, c := range live {
				c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				var err error
				if i == 0 {
					_, err = io.WriteString(c, head)
				} else {
					_, err = fmt.Fprintf(c, "X-Slow-%d: %d\r\n", i, i)
				}
				if err == nil {
					next = append(next, c)
				}
			}
			live = next
			mu.Lock()
			alive = len(live)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(time.Second) // the refused ones are closed, the writer has seen it

	// The attacker is at its cap: a new connection of its own with a
	// whole request takes the place of one of its slow ones.
	var own net.Conn
	var err error
	attacker.Do(t, func() { own, err = net.DialTimeout("tcp", target, 2*time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	own.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(own, "GET /igd2.xml HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target)
	line, _ := bufio.NewReader(own).ReadString('\n')
	own.Close()
	if !strings.HasPrefix(line, "HTTP/1.1 200 ") {
		t.Errorf("the attacker's own new connection: %q, want 200 (its host gives up a slow one)", line)
	}

	// Another host's AddPortMapping gets through, fast. Best of 5: the
	// machine is shared with fuzzers and other tests, and one try can lose
	// its time slice for longer than the whole budget; the claim is that
	// pcpgw answers within 100 ms, not that the scheduler always lets it.
	best := time.Hour
	for i := range 5 {
		_, d := add(18001 + i)
		t.Logf("AddPortMapping %d under attack: %v", i+1, d)
		best = min(best, d)
	}
	if best > 100*time.Millisecond {
		t.Errorf("best AddPortMapping under attack took %v, want < 100 ms", best)
	}

	// Memory: the Go runtime and pcpgw's tables idle at 10-20 MB (bench:
	// 23 MB holding 10k mappings). A held connection costs a goroutine
	// (8 KiB stack) and 8 KiB of bufio; a refused one a 503 written and
	// closed. Even 1,000 held connections would add ~16 MB, so 40 MB in
	// all and 8 MB of growth leave room for the runtime's slack while
	// catching per-connection buffering that is not bounded.
	rss := vmRSS(t, p.Pid())
	mu.Lock()
	n := alive
	mu.Unlock()
	t.Logf("pcpgw VmRSS %d KiB before, %d KiB with %d of %d slow connections still open", rssBefore, rss, n, len(held))
	if rss > 40<<10 {
		t.Errorf("pcpgw VmRSS %d KiB under attack, bound 40 MB", rss)
	}
	if rss-rssBefore > 8<<10 {
		t.Errorf("pcpgw VmRSS grew by %d KiB under attack, bound 8 MB", rss-rssBefore)
	}
	// With TCP_DEFER_ACCEPT the kernel holds connections that sent
	// nothing, and each one pcpgw accepts from the host at its cap
	// closes the host's oldest idle one: the host's connections go down
	// to its cap as the writer meets the closed ones.
	lab.Eventually(t, 15*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n = alive
		return n <= 16
	}, "more than 16 slow connections of one host still open, cap 8")
}
