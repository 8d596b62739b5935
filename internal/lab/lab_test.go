package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestPingEveryHop: the LAB.md topology and routes, and that lo is up in
// every namespace.
func TestPingEveryHop(t *testing.T) {
	t.Parallel()
	l := New(t, Options{})
	for _, c := range []struct {
		from *NS
		to   string
	}{
		{l.LAN, "127.0.0.1"},
		{l.LAN, CPELAN4},
		{l.LAN, CPELAN6},
		{l.CPE, CGN4},
		{l.CPE, CGN6},
		{l.ISP, CGNPublic4},
		{l.ISP, NetHost4},
		{l.LAN, CGN6},     // IPv6 through cpe
		{l.ISP, LANHost6}, // isp's route to 2001:db8:1::/64
		{l.LAN, CGN4},     // isp has no route back to the LAN: see below
	} {
		if c.to == CGN4 && c.from == l.LAN {
			// isp has no route to the LAN (the CPE NATs): no answer.
			if c.from.Ping(c.to, time.Second) == nil {
				t.Errorf("ping %s from lan answered without NAT on cpe", CGN4)
			}
			continue
		}
		if err := c.from.Ping(c.to, 3*time.Second); err != nil {
			t.Error(err)
		}
	}
	for _, n := range l.Namespaces() {
		if len(n.Name) > 15 {
			t.Errorf("namespace name %q longer than an interface name", n.Name)
		}
	}
	for _, name := range []string{l.LANIf, l.CPELANIf, l.CPEWANIf, l.ISPIf, l.ISPPubIf, l.NetIf} {
		if name == "" || len(name) > 15 || !strings.HasPrefix(name, l.Prefix) {
			t.Errorf("interface name %q: want prefix %q and at most 15 bytes", name, l.Prefix)
		}
	}
	for _, n := range []*NS{l.CPE, l.ISP, l.LAN} {
		want := "1"
		if n == l.LAN {
			want = "0"
		}
		n.Do(t, func() {
			for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
				b, err := os.ReadFile("/proc/sys/" + k)
				if got := strings.TrimSpace(string(b)); err != nil || got != want {
					t.Errorf("%s: %s = %q (%v), want %s", n.Name, k, got, err, want)
				}
			}
		})
	}
}

// TestLocalTopology: no isp, cpe's WAN straight on net's link.
func TestLocalTopology(t *testing.T) {
	t.Parallel()
	l := New(t, Options{Local: true})
	if l.ISP != nil || l.ISPIf != "" || l.ISPPubIf != "" {
		t.Errorf("Local topology has an isp: %+v", l)
	}
	if len(l.Namespaces()) != 3 {
		t.Errorf("Local topology: %d namespaces, want 3", len(l.Namespaces()))
	}
	for _, c := range []struct {
		from *NS
		to   string
	}{
		{l.LAN, CPELAN4},
		{l.CPE, NetHost4},
		{l.CPE, CGN6},     // net's 2001:db8:ff::1
		{l.LAN, CGN6},     // IPv6 through cpe
		{l.Net, LANHost6}, // net's route to 2001:db8:1::/64 via cpe
	} {
		if err := c.from.Ping(c.to, 3*time.Second); err != nil {
			t.Error(err)
		}
	}
	if got := l.WANAddr4(); got != LocalCPEWAN4 {
		t.Errorf("WANAddr4 = %s, want %s", got, LocalCPEWAN4)
	}
	if !strings.Contains(l.CPE.Run(t, "ip", "-4", "addr", "show", "dev", l.CPEWANIf), LocalCPEWAN4+"/24") {
		t.Errorf("cpe's %s lacks %s/24", l.CPEWANIf, LocalCPEWAN4)
	}
}

// TestDo: sockets made in Do belong to the namespace, and the goroutine's
// thread comes back to the test's namespace, also after a panic in f.
func TestDo(t *testing.T) {
	t.Parallel()
	l := New(t, Options{})
	before := netnsID(t)
	var ln net.Listener
	l.LAN.Do(t, func() {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(LANHost4, "0"))
		if err != nil {
			t.Errorf("listen on the LAN host's address inside lan: %v", err)
		}
	})
	if ln == nil {
		t.FailNow()
	}
	defer ln.Close()
	if got := netnsID(t); got != before {
		t.Errorf("after Do the thread is in netns %s, want %s", got, before)
	}
	// The test's own namespace does not hold 192.0.2.100.
	if ln2, err := net.Listen("tcp", net.JoinHostPort(LANHost4, "0")); err == nil {
		ln2.Close()
		t.Errorf("listening on %s outside the lab succeeded: Do leaked its namespace", LANHost4)
	}
	// The listener still works from inside the namespace after Do.
	port := ln.Addr().(*net.TCPAddr).Port
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	out := l.CPE.Run(t, "nc", "-w", "5", LANHost4, strconv.Itoa(port))
	if out != "ok" {
		t.Errorf("nc from cpe to the listener made in lan: %q, want \"ok\"", out)
	}
	// A panic in f leaves the thread back home.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic in Do's f was swallowed")
			}
		}()
		l.CPE.Do(t, func() { panic("boom") })
	}()
	if got := netnsID(t); got != before {
		t.Errorf("after a panic in Do the thread is in netns %s, want %s", got, before)
	}
}

// netnsID is the network namespace of the calling goroutine's thread
// (locked while it reads it).
func netnsID(t *testing.T) string {
	t.Helper()
	l, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestProc: Start captures output, Stop returns the exit status, Wait
// times out on a running process.
func TestProc(t *testing.T) {
	t.Parallel()
	l := New(t, Options{Local: true})
	p := l.CPE.Start(t, "sh", "-c", `echo started; trap 'echo term; exit 3' TERM; while :; do sleep 0.05; done`)
	Eventually(t, 5*time.Second, func() bool { return strings.Contains(p.Output(), "started") }, "no output from sh: %q", p.Output())
	if err := p.Wait(50 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("Wait on a running process: %v, want a timeout", err)
	}
	err := p.Stop(t)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Errorf("Stop: %v, want exit status 3", err)
	}
	if !strings.Contains(p.Output(), "term") {
		t.Errorf("output %q lacks the trap's echo", p.Output())
	}
	if err := p.Stop(t); err == nil {
		t.Error("Stop of an exited process lost its exit status")
	}
}

// TestNoLeftovers: after a lab's test ends (here a subtest that also
// leaves a process running in a namespace), no namespace with its prefix
// and no process in it remains.
func TestNoLeftovers(t *testing.T) {
	RequireRoot(t) // else the subtest skips and there is nothing to check
	t.Parallel()
	var prefix string
	var pid int
	t.Run("lab", func(t *testing.T) {
		l := New(t, Options{})
		prefix = l.Prefix
		// A process not started through Start: only the lab's
		// `ip netns pids` sweep can end it.
		c := l.ISP.Cmd(context.Background(), "sleep", "600")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		pid = c.Process.Pid
		go c.Wait()
		l.CPE.Run(t, "nft", "add", "table", "inet", "leftover")
	})
	checkGone(t, prefix, pid)
}

func checkGone(t *testing.T, prefix string, pid int) {
	t.Helper()
	if prefix == "" {
		t.Fatal("the lab was not built")
	}
	left, err := Leftovers(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("namespaces left after cleanup: %v", left)
	}
	if pid != 0 {
		// The sweep SIGKILLs it; give the kernel a moment to finish.
		Eventually(t, 5*time.Second, func() bool { return !alive(pid) }, "process %d in the lab still alive after cleanup", pid)
	}
	out, _ := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if strings.Contains(string(out), prefix) {
		t.Errorf("links with prefix %s left in the root namespace:\n%s", prefix, out)
	}
}

// TestCleanupAfterPanic runs this test binary again with a test that
// builds a lab and panics, and checks that the lab's cleanup still ran.
func TestCleanupAfterPanic(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLabChild$", "-test.v")
	c.Env = append(os.Environ(), "PCPGW_LAB_CHILD=panic")
	out, err := c.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "lab-panic-child") {
		t.Fatalf("child did not panic as planned (%v):\n%s", err, out)
	}
	prefix, pid := childLab(out)
	checkGone(t, prefix, pid)
}

// TestSweepKilledTestBinary: a test binary killed before its cleanups
// ran leaves its lab behind; the next New removes it.
func TestSweepKilledTestBinary(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLabChild$", "-test.v")
	c.Env = append(os.Environ(), "PCPGW_LAB_CHILD=hang")
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	var prefix string
	var pid int
	var seen bytes.Buffer
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		if prefix, pid = childLab(seen.Bytes()); prefix != "" {
			break
		}
	}
	c.Process.Kill()
	c.Wait()
	if prefix == "" {
		t.Fatalf("child printed no lab prefix:\n%s", seen.String())
	}
	if left, _ := Leftovers(prefix); len(left) == 0 {
		t.Fatalf("the killed child's lab %s is already gone: nothing to sweep", prefix)
	}
	b, err := os.ReadFile(filepath.Join(registryDir, prefix))
	if err != nil {
		t.Fatalf("the child's lab is not registered: %v", err)
	}
	_, dir, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the child's lab dir %q: %v", dir, err)
	}
	New(t, Options{Local: true})
	checkGone(t, prefix, pid)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the killed child's lab dir %s is still there (%v)", dir, err)
	}
	if _, err := os.Stat(filepath.Join(registryDir, prefix)); !os.IsNotExist(err) {
		t.Errorf("the killed child's lab is still registered (%v)", err)
	}
}

// childLab reads the LABPREFIX line a TestLabChild printed.
func childLab(out []byte) (prefix string, pid int) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if _, rest, ok := strings.Cut(sc.Text(), "LABPREFIX="); ok {
			fmt.Sscanf(rest, "%s %d", &prefix, &pid)
		}
	}
	return prefix, pid
}

// TestLabChild is the child of TestCleanupAfterPanic and
// TestSweepKilledTestBinary; it does nothing in a normal run.
func TestLabChild(t *testing.T) {
	mode := os.Getenv("PCPGW_LAB_CHILD")
	if mode == "" {
		t.Skip("only run by TestCleanupAfterPanic and TestSweepKilledTestBinary")
	}
	l := New(t, Options{})
	p := l.LAN.Start(t, "sleep", "600")
	fmt.Printf("LABPREFIX=%s %d\n", l.Prefix, p.Pid())
	if mode == "panic" {
		panic("lab-panic-child")
	}
	p.Wait(time.Minute) // killed by the parent long before
}

// TestParallelLabs: labs built at the same time get distinct names and
// each works.
func TestParallelLabs(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]bool{}
	for i := range 3 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			l := New(t, Options{Local: i == 2})
			mu.Lock()
			if seen[l.Prefix] {
				t.Errorf("prefix %s used twice", l.Prefix)
			}
			seen[l.Prefix] = true
			mu.Unlock()
			if err := l.LAN.Ping(CPELAN4, 3*time.Second); err != nil {
				t.Error(err)
			}
			l.CPE.Run(t, "nft", "add", "table", "inet", "same")
		})
	}
}

// TestSeenWorking is LAB.md's "seen working" path: a NAT-PMP request from
// cpe makes miniupnpd add a dnat in table cgn; with a hand-made DNAT on
// cpe, a TCP connection from net to the CGN's public address reaches a
// listener on the LAN host and data comes through.
func TestSeenWorking(t *testing.T) {
	t.Parallel()
	l := New(t, Options{})
	m := l.StartMiniupnpd(t, MiniupnpdOptions{})
	if n := m.DNATCount(t); n != 0 {
		t.Fatalf("fresh cgn holds %d dnat rules", n)
	}
	// natpmpc retransmits after 250 ms and then takes whatever answer
	// comes next: on a loaded machine it can read the late answer to its
	// first request as the answer to its second (seen: "Mapped public port
	// 369 protocol UNKNOWN"). The request is idempotent: ask up to 3 times.
	var out string
	for range 3 {
		if out = l.CPE.Run(t, "natpmpc", "-g", CGN4, "-a", "18080", "18080", "tcp", "3600"); strings.Contains(out, "Mapped public port 18080") {
			break
		}
	}
	if !strings.Contains(out, "Mapped public port 18080") {
		t.Fatalf("natpmpc:\n%s", out)
	}
	if !strings.Contains(m.Ruleset(t), "dnat ip to "+CPEWAN4+":18080") {
		t.Fatalf("no dnat to %s:18080 in cgn:\n%s", CPEWAN4, m.Ruleset(t))
	}
	if n := m.DNATCount(t); n != 1 {
		t.Errorf("DNATCount = %d, want 1", n)
	}
	nft := filepath.Join(l.Dir, "cpe.nft")
	rules := `table ip labdnat {
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		iifname "` + l.CPEWANIf + `" tcp dport 18080 dnat to 192.0.2.100:8080
	}
}
`
	if err := os.WriteFile(nft, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	l.CPE.Run(t, "nft", "-f", nft)
	srv := l.LAN.Start(t, "nc", "-l", "8080")
	token := "hello-from-net-" + l.Prefix
	var last string
	if !poll(10*time.Second, func() bool {
		if !strings.Contains(srv.Output(), token) {
			c := l.Net.Cmd(context.Background(), "nc", "-N", "-w", "2", CGNPublic4, "18080")
			c.Stdin = strings.NewReader(token + "\n")
			b, err := c.CombinedOutput()
			last = fmt.Sprintf("%v %s", err, b)
		}
		return strings.Contains(srv.Output(), token)
	}) {
		t.Fatalf("data from net did not reach the LAN host's listener; last nc: %s; listener: %q", last, srv.Output())
	}
}

// TestAnnounceMulticast: kill -USR1 makes miniupnpd multicast an
// unsolicited ANNOUNCE that a listener on 224.0.0.1:5350 in cpe, joined
// on its WAN link, receives (RFC 6887 §14.1.3).
func TestAnnounceMulticast(t *testing.T) {
	t.Parallel()
	l := New(t, Options{})
	m := l.StartMiniupnpd(t, MiniupnpdOptions{Debug: os.Getenv("DBG") == "1"})
	var c *net.UDPConn
	l.CPE.Do(t, func() {
		ifi, err := net.InterfaceByName(l.CPEWANIf)
		if err != nil {
			t.Fatal(err)
		}
		c, err = net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 1), Port: 5350})
		if err != nil {
			t.Fatal(err)
		}
	})
	defer c.Close()
	var c6 *net.UDPConn
	l.CPE.Do(t, func() {
		ifi, err := net.InterfaceByName(l.CPEWANIf)
		if err != nil {
			t.Fatal(err)
		}
		c6, err = net.ListenMulticastUDP("udp6", ifi, &net.UDPAddr{IP: net.ParseIP("ff02::1"), Port: 5350})
		if err != nil {
			t.Fatal(err)
		}
	})
	defer c6.Close()
	m.Announce(t)
	var wg sync.WaitGroup
	for _, cc := range []*net.UDPConn{c, c6} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if from, err := readAnnounce(cc); err != nil {
				t.Errorf("no ANNOUNCE on %v in cpe: %v", cc.LocalAddr(), err)
			} else {
				t.Logf("ANNOUNCE on %v from %v", cc.LocalAddr(), from)
			}
		}()
	}
	wg.Wait()
}

// readAnnounce waits (at most 5 s) for a PCP ANNOUNCE response on c and
// returns its sender.
func readAnnounce(c *net.UDPConn) (*net.UDPAddr, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1100)
	for {
		n, from, err := c.ReadFromUDP(b)
		if err != nil {
			return nil, err
		}
		// PCP response header: version 2, R bit and opcode 0 (ANNOUNCE),
		// result SUCCESS (RFC 6887 §7.2, §14.1.3).
		if n >= 24 && b[0] == 2 && b[1] == 0x80 && b[3] == 0 {
			return from, nil
		}
	}
}

// TestMiniupnpdRestart: Restart(true) loses every mapping (lease file and
// cgn chains), Restart(false) keeps them; miniupnpd answers after each.
func TestMiniupnpdRestart(t *testing.T) {
	t.Parallel()
	l := New(t, Options{})
	m := l.StartMiniupnpd(t, MiniupnpdOptions{MinLifetime: 60, MaxLifetime: 7200, ThirdParty: true})
	conf, err := os.ReadFile(m.Conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"min_lifetime=60\n", "max_lifetime=7200\n", "pcp_allow_thirdparty=yes\n",
		"ext_ifname=" + l.ISPPubIf + "\n", "listening_ip=" + l.ISPIf + "\n", "lease_file=" + m.LeaseFile + "\n"} {
		if !bytes.Contains(conf, []byte(want)) {
			t.Errorf("miniupnpd.conf lacks %q:\n%s", want, conf)
		}
	}
	for _, port := range []string{"18080", "18081"} {
		l.CPE.Run(t, "natpmpc", "-g", CGN4, "-a", port, port, "tcp", "3600")
	}
	if n := m.DNATCount(t); n != 2 {
		t.Fatalf("DNATCount = %d after two mappings, want 2:\n%s", n, m.Ruleset(t))
	}
	pid := m.Pid()
	m.Restart(t, false)
	if m.Pid() == 0 || m.Pid() == pid {
		t.Errorf("Restart: pid %d -> %d", pid, m.Pid())
	}
	if n := m.DNATCount(t); n != 2 {
		t.Errorf("DNATCount = %d after Restart(false), want 2:\n%s", n, m.Ruleset(t))
	}
	m.Restart(t, true)
	if n := m.DNATCount(t); n != 0 {
		t.Errorf("DNATCount = %d after Restart(true), want 0:\n%s", n, m.Ruleset(t))
	}
	rs := m.Ruleset(t)
	if strings.Contains(rs, "18080") || strings.Contains(rs, "18081") {
		t.Errorf("cgn still mentions the old ports after Restart(true):\n%s", rs)
	}
	// miniupnpd removes an empty lease file.
	if b, err := os.ReadFile(m.LeaseFile); (err != nil && !os.IsNotExist(err)) || len(b) != 0 {
		t.Errorf("lease file after Restart(true): %q, %v", b, err)
	}
	// Still serving.
	l.CPE.Run(t, "natpmpc", "-g", CGN4, "-a", "18082", "18082", "tcp", "3600")
	if n := m.DNATCount(t); n != 1 {
		t.Errorf("DNATCount = %d after a new mapping, want 1", n)
	}
	m.Stop(t)
	if m.Pid() != 0 || alive(pid) {
		t.Errorf("miniupnpd still running after Stop")
	}
}

// TestStartPcpgw: the module's pcpgw builds, runs in cpe with the lab's
// interfaces, answers its control socket through CLI, and its Stop
// reports the exit status.
func TestStartPcpgw(t *testing.T) {
	t.Parallel()
	l := New(t, Options{})
	l.StartMiniupnpd(t, MiniupnpdOptions{ThirdParty: true})
	p := l.StartPcpgw(t, "--pcp-server", CGN4)
	if !strings.HasPrefix(p.Socket, l.Dir) && len(filepath.Join(l.Dir, "pcpgw.sock")) <= maxSocketPath {
		t.Errorf("socket %s outside the lab's dir %s", p.Socket, l.Dir)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(p.CLI(t, "status", "--json")), &st); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	if len(st) == 0 {
		t.Error("status --json: empty object")
	}
	if err := p.Stop(t); err != nil {
		t.Errorf("pcpgw on SIGTERM: %v\n%s", err, p.Output())
	}
	if _, err := os.Stat(p.Socket); !os.IsNotExist(err) {
		t.Errorf("socket %s still there after exit: %v", p.Socket, err)
	}
}

// TestRequireRootAsNobody runs this test binary as uid 65534: the lab's
// tests skip with a reason, and fail instead under PCPGW_E2E=1.
func TestRequireRootAsNobody(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	dir, err := os.MkdirTemp("", "pcpgw-lab-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "lab.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e2e := range []string{"", "1"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		c := exec.CommandContext(ctx, bin, "-test.run=^TestPingEveryHop$", "-test.v")
		c.Dir = dir
		c.Env = append(os.Environ(), "PCPGW_E2E="+e2e)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := c.CombinedOutput()
		// A parallel test's fork may still hold the copy open for writing
		// for a moment (ETXTBSY, golang/go#22315): try again, bounded.
		for try := 0; errors.Is(err, syscall.ETXTBSY) && try < 50; try++ {
			time.Sleep(20 * time.Millisecond)
			c = exec.CommandContext(ctx, bin, c.Args[1:]...)
			c.Dir = dir
			c.Env = append(os.Environ(), "PCPGW_E2E="+e2e)
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, err = c.CombinedOutput()
		}
		cancel()
		want, wantErr := "--- SKIP: TestPingEveryHop", false
		if e2e == "1" {
			want, wantErr = "--- FAIL: TestPingEveryHop", true
		}
		if !strings.Contains(string(out), want) || !strings.Contains(string(out), "needs root") || (err != nil) != wantErr {
			t.Errorf("as nobody with PCPGW_E2E=%q: %v, want %q with a reason:\n%s", e2e, err, want, out)
		}
	}
}

// TestExtraLANHosts: more LAN hosts behind a bridge in cpe reach the CPE,
// each other and, over IPv6, the CGN.
func TestExtraLANHosts(t *testing.T) {
	t.Parallel()
	l := New(t, Options{ExtraLANHosts: 2})
	if len(l.LANHosts) != 3 || l.LANHosts[0] != l.LAN || len(l.LANHostIfs) != 3 || l.LANHostIfs[0] != l.LANIf {
		t.Fatalf("LANHosts %v, LANHostIfs %v", l.LANHosts, l.LANHostIfs)
	}
	if !strings.Contains(l.CPE.Run(t, "ip", "-d", "link", "show", "dev", l.CPELANIf), "bridge") {
		t.Errorf("CPELANIf %s is not a bridge", l.CPELANIf)
	}
	if v4, v6 := l.LANHostAddrs(2); v4 != "192.0.2.102" || v6 != "2001:db8:1::102" {
		t.Errorf("LANHostAddrs(2) = %s, %s", v4, v6)
	}
	for i, n := range l.LANHosts {
		if len(n.Name) > 15 || len(l.LANHostIfs[i]) > 15 {
			t.Errorf("names too long: %s %s", n.Name, l.LANHostIfs[i])
		}
		a4, a6 := l.LANHostAddrs(i)
		if !strings.Contains(n.Run(t, "ip", "addr", "show", "dev", l.LANHostIfs[i]), a4+"/24") {
			t.Errorf("%s lacks %s", n.Name, a4)
		}
		for _, to := range []string{CPELAN4, CPELAN6, CGN6} {
			if err := n.Ping(to, 3*time.Second); err != nil {
				t.Error(err)
			}
		}
		if i > 0 {
			if err := n.Ping(LANHost4, 3*time.Second); err != nil {
				t.Error(err)
			}
			if err := l.LAN.Ping(a6, 3*time.Second); err != nil {
				t.Error(err)
			}
		}
	}
}

// TestBoxUPnP: miniupnpd as an ISP box speaking UPnP IGD only (LAB.md
// "More upstreams"): upnpc in cpe discovers it on the WAN link and maps a
// port toward the CPE's WAN address, and NAT-PMP gets no answer.
func TestBoxUPnP(t *testing.T) {
	t.Parallel()
	for _, v1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("igdv1=%v", v1), func(t *testing.T) {
			t.Parallel()
			l := New(t, Options{})
			m := l.StartMiniupnpd(t, MiniupnpdOptions{Box: Box{UPnP: true, NoPMP: true, IGDv1: v1}})
			out := l.CPE.Run(t, "upnpc", "-i", "-m", l.CPEWANIf, "-a", CPEWAN4, "28081", "28081", "TCP", "600")
			if !strings.Contains(out, "external "+CGNPublic4+":28081 TCP is redirected to internal "+CPEWAN4+":28081") {
				t.Fatalf("upnpc -a:\n%s", out)
			}
			want := "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
			if v1 {
				want = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
			}
			if desc := l.CPE.Run(t, "sh", "-c", "upnpc -i -m "+l.CPEWANIf+" -l 2>&1"); !strings.Contains(desc, "desc: http://"+CGN4+":") {
				t.Fatalf("upnpc -l:\n%s", desc)
			}
			var body string
			l.CPE.Do(t, func() {
				c, err := net.DialTimeout("tcp4", net.JoinHostPort(CGN4, fmt.Sprint(BoxHTTPPort)), time.Second)
				if err != nil {
					body = err.Error()
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * time.Second))
				fmt.Fprintf(c, "GET /rootDesc.xml HTTP/1.0\r\n\r\n")
				b, _ := io.ReadAll(c)
				body = string(b)
			})
			if !strings.Contains(body, want) || !strings.Contains(body, "ISP box") {
				t.Fatalf("rootDesc.xml has no %s or friendly name:\n%s", want, body)
			}
			if !strings.Contains(m.Ruleset(t), "dnat ip to "+CPEWAN4+":28081") {
				t.Fatalf("no dnat to %s:28081 in cgn:\n%s", CPEWAN4, m.Ruleset(t))
			}
			if out, err := l.CPE.Output("natpmpc", "-g", CGN4); err == nil && strings.Contains(out, "Public IP address") {
				t.Fatalf("NAT-PMP answered with NoPMP:\n%s", out)
			}
		})
	}
}

// TestBoxDropPCP: with DropPCP the box answers NAT-PMP but not PCP.
func TestBoxDropPCP(t *testing.T) {
	t.Parallel()
	l := New(t, Options{})
	m := l.StartMiniupnpd(t, MiniupnpdOptions{Box: Box{DropPCP: true}})
	if err := m.probe(); err != nil {
		t.Fatalf("NAT-PMP: %v", err)
	}
	// A PCP ANNOUNCE request (RFC 6887 §7.1: version 2, opcode 0, lifetime
	// 0, the client's address as IPv4-mapped IPv6) gets no answer.
	var got error
	if err := l.CPE.do(func() {
		c, err := net.Dial("udp4", net.JoinHostPort(CGN4, "5351"))
		if err != nil {
			got = err
			return
		}
		defer c.Close()
		req := make([]byte, 24)
		req[0] = 2
		req[18], req[19] = 0xff, 0xff
		copy(req[20:], net.ParseIP(CPEWAN4).To4())
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write(req)
		b := make([]byte, 1100)
		if n, err := c.Read(b); err == nil {
			got = fmt.Errorf("PCP answered: % x", b[:n])
		}
	}); err != nil {
		t.Fatal(err)
	}
	if got != nil {
		t.Fatal(got)
	}
}
