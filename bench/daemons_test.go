package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/lab"
)

// daemon is one IGD/NAT-PMP server running in the lab's cpe namespace.
type daemon interface {
	Pid() int
	Stop(t testing.TB)
}

// procStats reads a process's resident memory (VmRSS, bytes) and CPU
// time (utime+stime).
func procStats(pid int) (rss int64, cpu time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return 0, 0, fmt.Errorf("pid %d: odd VmRSS line %q", pid, line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("pid %d: VmRSS: %v", pid, err)
			}
			rss = kb << 10
		}
	}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("pid %d: odd stat %q", pid, s)
	}
	// After the comm: state is field 3; utime and stime are fields 14
	// and 15, in clock ticks (USER_HZ, 100 on Linux).
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("pid %d: short stat %q", pid, s)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("pid %d: utime/stime in %q", pid, s)
	}
	return rss, time.Duration(ut+st) * (time.Second / 100), nil
}

func mustStats(t testing.TB, d daemon) (int64, time.Duration) {
	t.Helper()
	rss, cpu, err := procStats(d.Pid())
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	return rss, cpu
}

// miniupnpdCPE is miniupnpd 2.3.9 playing the CPE's own IGD and NAT-PMP
// daemon in cpe, on its own table inet mupnp (made like LAB.md's cgn
// table), started without -d (it forks and logs to syslog).
type miniupnpdCPE struct {
	l       *lab.Lab
	dir     string
	pidFile string
	pid     int
}

const miniupnpdTable = "mupnp"

func (m *miniupnpdCPE) table() string {
	return `table inet ` + miniupnpdTable + ` {
	chain forward {
		type filter hook forward priority 0; policy accept;
		jump forward_upnp
	}
	chain forward_upnp {
	}
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		jump prerouting_upnp
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		jump postrouting_upnp
		oifname "` + m.l.CPEWANIf + `" masquerade
	}
	chain prerouting_upnp {
	}
	chain postrouting_upnp {
	}
}
`
}

func (m *miniupnpdCPE) conf() string {
	return strings.Join([]string{
		"ext_ifname=" + m.l.CPEWANIf,
		"listening_ip=" + m.l.CPELANIf,
		"port=5000",
		"enable_upnp=yes",
		"enable_natpmp=yes",
		"enable_pcp_pmp=yes",
		"force_igd_desc_v1=yes",
		"ext_allow_private_ipv4=yes",
		"secure_mode=no",
		"system_uptime=yes",
		"lease_file=" + filepath.Join(m.dir, "leases"),
		"uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07d",
		"upnp_table_name=" + miniupnpdTable,
		"upnp_nat_table_name=" + miniupnpdTable,
		"upnp_forward_chain=forward_upnp",
		"upnp_nat_chain=prerouting_upnp",
		"upnp_nat_postrouting_chain=postrouting_upnp",
		"allow 1024-65535 192.0.2.0/24 1024-65535",
		"deny 0-65535 0.0.0.0/0 0-65535",
	}, "\n") + "\n"
}

// startMiniupnpdCPE creates table inet mupnp in cpe, writes the conf and
// starts miniupnpd with an empty lease file, waiting until its IGD
// description answers from lan. A t.Cleanup stops it and deletes the
// table.
func startMiniupnpdCPE(t testing.TB, l *lab.Lab) *miniupnpdCPE {
	t.Helper()
	root := filepath.Join(lab.PeersDir(), "root")
	libdir := filepath.Join(root, "usr/lib/x86_64-linux-gnu")
	ld, bin := filepath.Join(libdir, "ld-linux-x86-64.so.2"), filepath.Join(root, "usr/sbin/miniupnpd")
	for _, f := range []string{ld, bin} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("bench: miniupnpd 2.3.9 not installed (%v): run scripts/deps-test.sh", err)
		}
	}
	m := &miniupnpdCPE{l: l, dir: filepath.Join(l.Dir, "miniupnpd-cpe")}
	m.pidFile = filepath.Join(m.dir, "miniupnpd.pid")
	os.RemoveAll(m.dir)
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"mupnp.nft": m.table(), "miniupnpd.conf": m.conf(), "leases": ""}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(m.dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l.CPE.Output("nft", "delete", "table", "inet", miniupnpdTable) // left by an earlier run in this lab
	l.CPE.Run(t, "nft", "-f", filepath.Join(m.dir, "mupnp.nft"))
	t.Cleanup(func() { m.Stop(t) })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := l.CPE.Cmd(ctx, ld, "--library-path", libdir, bin, "-f", filepath.Join(m.dir, "miniupnpd.conf"), "-P", m.pidFile)
	c.WaitDelay = time.Second
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("bench: miniupnpd: %v\n%s", err, out)
	}
	lab.Eventually(t, 5*time.Second, func() bool {
		b, err := os.ReadFile(m.pidFile)
		if err != nil {
			return false
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || !running(pid) {
			return false
		}
		m.pid = pid
		return true
	}, "bench: miniupnpd in cpe wrote no pid file of a live process within 5s")
	lab.Eventually(t, 10*time.Second, func() bool { return tcpOpen(t, l, lab.CPELAN4+":5000") },
		"bench: miniupnpd in cpe does not accept HTTP on %s:5000 within 10s", lab.CPELAN4)
	return m
}

func (m *miniupnpdCPE) Pid() int { return m.pid }

// Stop ends miniupnpd (SIGTERM every 200 ms, as its loop may miss one;
// SIGKILL after 10 s), then deletes its table so the next daemon starts
// from a clean cpe.
func (m *miniupnpdCPE) Stop(t testing.TB) {
	if m.pid != 0 {
		deadline := time.Now().Add(10 * time.Second)
		for running(m.pid) && time.Now().Before(deadline) {
			syscall.Kill(m.pid, syscall.SIGTERM)
			for i := 0; i < 10 && running(m.pid); i++ {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if running(m.pid) {
			syscall.Kill(m.pid, syscall.SIGKILL)
			t.Logf("bench: miniupnpd (pid %d) ignored SIGTERM for 10s; killed", m.pid)
		}
		m.pid = 0
	}
	m.l.CPE.Output("nft", "delete", "table", "inet", miniupnpdTable)
}

// running reports whether pid is a live, non-zombie process.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// tcpOpen reports whether a TCP connection from lan to addr succeeds.
func tcpOpen(t testing.TB, l *lab.Lab, addr string) bool {
	ok := false
	l.LAN.Do(t, func() {
		c, err := net.DialTimeout("tcp4", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			ok = true
		}
	})
	return ok
}

// pcpgwDaemon is `pcpgw run` in cpe with a fresh state directory.
type pcpgwDaemon struct {
	p    *lab.Proc
	sock string
}

// startPcpgw starts bin (`pcpgw run`) in cpe with a configuration file
// lifting the per-host quota (10,000 mappings come from one LAN host), an
// empty state directory and args, waiting until its IGD HTTP server
// answers from lan. env entries are added to its environment.
func startPcpgw(t testing.TB, l *lab.Lab, bin string, env []string, args ...string) *pcpgwDaemon {
	t.Helper()
	dir := filepath.Join(l.Dir, "pcpgw-bench")
	os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "pcpgw.conf")
	if err := os.WriteFile(conf, []byte("config pcpgw 'main'\n\toption quota '0'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &pcpgwDaemon{sock: filepath.Join(dir, "pcpgw.sock")}
	full := append([]string{"run", "-c", conf, "--lan", l.CPELANIf, "--wan", l.CPEWANIf,
		"--state-dir", filepath.Join(dir, "state"), "--socket", d.sock}, args...)
	if len(env) > 0 {
		// ip netns exec passes the environment on: run through env(1).
		d.p = l.CPE.Start(t, "env", append(append(append([]string(nil), env...), bin), full...)...)
	} else {
		d.p = l.CPE.Start(t, bin, full...)
	}
	lab.Eventually(t, 10*time.Second, func() bool { return d.p.Exited() || tcpOpen(t, l, lab.CPELAN4+":5000") },
		"bench: pcpgw does not accept HTTP on %s:5000 within 10s:\n%s", lab.CPELAN4, d.p.Output())
	if d.p.Exited() {
		t.Fatalf("bench: pcpgw exited at start:\n%s", d.p.Output())
	}
	return d
}

func (d *pcpgwDaemon) Pid() int { return d.p.Pid() }

func (d *pcpgwDaemon) Stop(t testing.TB) {
	t.Helper()
	if err := d.p.Stop(t); err != nil {
		t.Logf("bench: pcpgw stop: %v\n%s", err, d.p.Output())
	}
}

// statusJSON asks the daemon `status` over its control socket into v.
func (d *pcpgwDaemon) statusJSON(t testing.TB, v any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return control.Ask(ctx, d.sock, "status", v)
}

// pidDaemon is a process measured but stopped by its owner (the lab's
// miniupnpd).
type pidDaemon int

func (p pidDaemon) Pid() int        { return int(p) }
func (p pidDaemon) Stop(testing.TB) {}
