package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MiniupnpdOptions configures miniupnpd as the provider's CGN.
type MiniupnpdOptions struct {
	// MinLifetime and MaxLifetime are min_lifetime and max_lifetime in
	// seconds; zero means LAB.md's 120 and 86400.
	MinLifetime, MaxLifetime int
	// ThirdParty sets pcp_allow_thirdparty=yes (DS-Lite style mappings
	// on behalf of LAN hosts; it also lifts miniupnpd's check that the
	// sender is inside the listening subnet). False writes "no".
	ThirdParty bool
	// Extra lines appended to miniupnpd.conf (after LAB.md's, before the
	// permission rules).
	Extra []string
	// SecureMode writes secure_mode=yes (a host may only map ports to
	// itself, and in UPnP delete only its own); false writes LAB.md's
	// secure_mode=no.
	SecureMode bool
	// Rules, when not nil, replace LAB.md's permission rules (the
	// `allow|deny ext_ports int_addr/prefix int_ports` lines at the end of
	// miniupnpd.conf), e.g. miniupnpd's own defaults
	// {"allow 1024-65535 0.0.0.0/0 1024-65535", "deny 0-65535 0.0.0.0/0 0-65535"}.
	Rules []string
	// Box makes miniupnpd an ISP box in front of the CPE (double NAT)
	// instead of the CGN of LAB.md: which protocols it serves. The zero
	// value is the CGN: NAT-PMP and PCP, no UPnP.
	Box Box
	// Debug runs miniupnpd with -d: in the foreground with debug logging
	// captured (logged when the test fails; see Miniupnpd.Output). It is
	// slow once miniupnpd holds hundreds of rules. Without Debug,
	// miniupnpd forks, logs to syslog (usually nowhere) and is tracked
	// through its pid file.
	Debug bool
}

// Box says which port-control protocols miniupnpd serves toward the CPE
// (LAB.md "More upstreams"). miniupnpd 2.3.9 has one switch for NAT-PMP
// and PCP together (enable_natpmp and enable_pcp_pmp are the same flag),
// so a box that speaks NAT-PMP but not PCP is made with DropPCP.
type Box struct {
	// UPnP serves UPnP IGD (enable_upnp=yes) on BoxHTTPPort of the isp
	// interface toward the CPE, with ext_ip=203.0.113.1 (its
	// GetExternalIPAddress is empty otherwise) and IGD:2 descriptions.
	UPnP bool
	// IGDv1 describes the device as IGD:1 only (force_igd_desc_v1=yes).
	IGDv1 bool
	// NoPMP turns NAT-PMP and PCP off (enable_natpmp=no).
	NoPMP bool
	// DropPCP drops PCP requests (version 2) before they reach miniupnpd,
	// with an nftables rule in isp: a box that speaks NAT-PMP only and
	// ignores PCP.
	DropPCP bool
	// ExtIP, when valid, is written as ext_ip (with UPnP it defaults to
	// CGNPublic4).
	ExtIP string
}

// BoxHTTPPort is miniupnpd's HTTP port as an ISP box with UPnP.
const BoxHTTPPort = 5000

// Miniupnpd is miniupnpd 2.3.9 running in the lab's isp namespace as the
// provider's CGN and PCP server, on table inet cgn.
type Miniupnpd struct {
	lab  *Lab
	opt  MiniupnpdOptions
	Conf string // its miniupnpd.conf
	// LeaseFile is its lease_file.
	LeaseFile string
	pidFile   string
	pid       int   // daemon's pid (not Debug)
	proc      *Proc // foreground process (Debug)
	started   time.Time
}

// minAge is how long miniupnpd has run before Announce or Restart
// (whatever the test did meanwhile). Its PCP epoch counts whole seconds
// since it started: a restart within a second or two of its start is no
// regression a PCP client can see (RFC 6887 §8.5), which no CGN does in
// real life (they run for days).
const minAge = 3 * time.Second

// age waits until miniupnpd has run minAge.
func (m *Miniupnpd) age() {
	if d := minAge - time.Since(m.started); d > 0 {
		time.Sleep(d)
	}
}

// PeersDir is where scripts/deps-test.sh extracted miniupnpd:
// $PCPGW_PEERS, or /var/cache/pcpgw-peers.
func PeersDir() string {
	if d := os.Getenv("PCPGW_PEERS"); d != "" {
		return d
	}
	return "/var/cache/pcpgw-peers"
}

// miniupnpdCmd returns the loader and its arguments that run the
// extracted miniupnpd with its own libraries, and an error when the
// peers are not installed.
func miniupnpdCmd() (string, []string, error) {
	root := filepath.Join(PeersDir(), "root")
	ld := filepath.Join(root, "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	bin := filepath.Join(root, "usr/sbin/miniupnpd")
	for _, f := range []string{ld, bin} {
		if _, err := os.Stat(f); err != nil {
			return "", nil, fmt.Errorf("miniupnpd 2.3.9 not installed (%v): run scripts/deps-test.sh", err)
		}
	}
	return ld, []string{"--library-path", filepath.Join(root, "usr/lib/x86_64-linux-gnu"), bin}, nil
}

// RequireMiniupnpd skips the test (fails it with PCPGW_E2E=1) when
// miniupnpd 2.3.9 is not installed under PeersDir.
func RequireMiniupnpd(t testing.TB) {
	t.Helper()
	if _, _, err := miniupnpdCmd(); err != nil {
		skipOrFail(t, "lab: "+err.Error())
	}
}

// cgnTable is LAB.md's table inet cgn, one statement a line for nft -f.
func (l *Lab) cgnTable() string {
	return `table inet cgn {
	chain forward {
		type filter hook forward priority 0; policy accept;
		jump forward_pcp
	}
	chain forward_pcp {
	}
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		jump prerouting_pcp
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		jump postrouting_pcp
		oifname "` + l.ISPPubIf + `" masquerade
	}
	chain prerouting_pcp {
	}
	chain postrouting_pcp {
	}
}
`
}

// StartMiniupnpd loads table inet cgn into isp, writes miniupnpd.conf
// (LAB.md's, with the lab's interface names and o) into the lab's Dir and
// starts miniupnpd 2.3.9, waiting until it answers a NAT-PMP external
// address request from cpe. It skips (or fails with PCPGW_E2E=1) when
// miniupnpd is not installed, and fails in the Local topology. A
// t.Cleanup stops it. Call it at most once per lab.
func (l *Lab) StartMiniupnpd(t testing.TB, o MiniupnpdOptions) *Miniupnpd {
	t.Helper()
	RequireMiniupnpd(t)
	if l.ISP == nil {
		t.Fatal("lab: StartMiniupnpd: no isp namespace in the Local topology")
	}
	if l.miniupnpd {
		t.Fatal("lab: StartMiniupnpd: miniupnpd already started in this lab (use Restart)")
	}
	l.miniupnpd = true
	if o.MinLifetime == 0 {
		o.MinLifetime = 120
	}
	if o.MaxLifetime == 0 {
		o.MaxLifetime = 86400
	}
	dir := filepath.Join(l.Dir, "miniupnpd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &Miniupnpd{
		lab:       l,
		opt:       o,
		Conf:      filepath.Join(dir, "miniupnpd.conf"),
		LeaseFile: filepath.Join(dir, "leases"),
		pidFile:   filepath.Join(dir, "miniupnpd.pid"),
	}
	nftFile := filepath.Join(dir, "cgn.nft")
	if err := os.WriteFile(nftFile, []byte(l.cgnTable()), 0o644); err != nil {
		t.Fatal(err)
	}
	l.ISP.Run(t, "nft", "-f", nftFile)
	if o.Box.DropPCP {
		f := filepath.Join(dir, "droppcp.nft")
		if err := os.WriteFile(f, []byte(dropPCPTable), 0o644); err != nil {
			t.Fatal(err)
		}
		l.ISP.Run(t, "nft", "-f", f)
	}
	if err := os.WriteFile(m.Conf, []byte(m.conf()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.stop(); err != nil {
			t.Errorf("lab: %v", err)
		}
		if t.Failed() && m.proc == nil {
			t.Logf("lab: miniupnpd ran without Debug (logs to syslog); set MiniupnpdOptions.Debug to see its log")
		}
	})
	m.start(t)
	return m
}

// dropPCPTable drops PCP (version 2) requests to UDP 5351 in isp
// (DropPCP): the first octet of the UDP payload is the version.
const dropPCPTable = `table inet droppcp {
	chain input {
		type filter hook input priority -10; policy accept;
		udp dport 5351 @th,64,8 2 drop
	}
}
`

func (m *Miniupnpd) conf() string {
	yn := map[bool]string{true: "yes", false: "no"}
	b := m.opt.Box
	lines := []string{
		"ext_ifname=" + m.lab.ISPPubIf,
		"listening_ip=" + m.lab.ISPIf,
		"ext_allow_private_ipv4=yes",
		"enable_natpmp=" + yn[!b.NoPMP],
		"enable_pcp_pmp=" + yn[!b.NoPMP],
		"enable_upnp=" + yn[b.UPnP],
		"secure_mode=" + yn[m.opt.SecureMode],
		"pcp_allow_thirdparty=" + yn[m.opt.ThirdParty],
		"min_lifetime=" + strconv.Itoa(m.opt.MinLifetime),
		"max_lifetime=" + strconv.Itoa(m.opt.MaxLifetime),
		"lease_file=" + m.LeaseFile,
		"uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07c",
		"upnp_table_name=cgn",
		"upnp_nat_table_name=cgn",
		"upnp_forward_chain=forward_pcp",
		"upnp_nat_chain=prerouting_pcp",
		"upnp_nat_postrouting_chain=postrouting_pcp",
	}
	ext := b.ExtIP
	if ext == "" && b.UPnP {
		ext = CGNPublic4
	}
	if ext != "" {
		lines = append(lines, "ext_ip="+ext)
	}
	if b.UPnP {
		lines = append(lines, "port="+strconv.Itoa(BoxHTTPPort), "friendly_name=ISP box", "model_name=LabBox")
	}
	if b.IGDv1 {
		lines = append(lines, "force_igd_desc_v1=yes")
	}
	if m.lab.opt.DSLite {
		// The AFTR: NAT-PMP on the softwire's end (the lab's readiness
		// probe), PCP over IPv6 on the uplink.
		lines = append(lines, "listening_ip="+m.lab.ISPSoftwireIf,
			"allow 1024-65535 192.0.0.0/29 1-65535") // the B4's own address
	}
	lines = append(lines, m.opt.Extra...)
	rules := m.opt.Rules
	if rules == nil {
		rules = []string{
			"allow 1024-65535 100.64.0.0/24 1-65535",
			"allow 1024-65535 192.0.2.0/24 1-65535",
			"deny 0-65535 0.0.0.0/0 0-65535",
		}
	}
	lines = append(lines, rules...)
	return strings.Join(lines, "\n") + "\n"
}

func (m *Miniupnpd) start(t testing.TB) {
	t.Helper()
	defer func() { m.started = time.Now() }()
	ld, args, err := miniupnpdCmd()
	if err != nil {
		skipOrFail(t, "lab: "+err.Error())
	}
	args = append(args, "-f", m.Conf, "-P", m.pidFile)
	os.Remove(m.pidFile)
	if m.opt.Debug {
		m.proc = m.lab.ISP.Start(t, ld, append(args, "-d")...)
	} else {
		// Without -d it forks; the parent exits once the daemon runs.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c := m.lab.ISP.Cmd(ctx, ld, args...)
		c.WaitDelay = time.Second
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("lab: miniupnpd: %v\n%s", err, out)
		}
		if !poll(5*time.Second, func() bool {
			b, err := os.ReadFile(m.pidFile)
			if err != nil {
				return false
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || !alive(pid) {
				return false
			}
			m.pid = pid
			return true
		}) {
			t.Fatalf("lab: miniupnpd wrote no pid file %s of a live process within 5s (it logs to syslog; retry with MiniupnpdOptions.Debug)", m.pidFile)
		}
	}
	if !poll(10*time.Second, func() bool {
		if m.proc != nil && m.proc.Exited() {
			return true
		}
		return m.probe() == nil
	}) || (m.proc != nil && m.proc.Exited()) {
		out := ""
		if m.proc != nil {
			out = m.proc.Output()
		}
		t.Fatalf("lab: miniupnpd does not answer NAT-PMP at %s:5351 from cpe within 10s: %v\n%s", CGN4, m.probe(), out)
	}
}

// probe checks from cpe that miniupnpd serves: a NAT-PMP external
// address request (version 0, opcode 0, RFC 6886 §3.2) answered with the
// right opcode, or with NAT-PMP off, its UPnP HTTP port accepting.
func (m *Miniupnpd) probe() error {
	if m.opt.Box.NoPMP {
		return m.probeHTTP()
	}
	var perr error
	err := m.lab.CPE.do(func() {
		c, err := net.Dial("udp4", net.JoinHostPort(CGN4, "5351"))
		if err != nil {
			perr = err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Write([]byte{0, 0}); err != nil {
			perr = err
			return
		}
		b := make([]byte, 64)
		n, err := c.Read(b)
		if err != nil {
			perr = err
			return
		}
		if n < 4 || b[0] != 0 || b[1] != 128 {
			perr = fmt.Errorf("unexpected NAT-PMP answer % x", b[:n])
		}
	})
	return errors.Join(err, perr)
}

// probeHTTP connects from cpe to the box's UPnP HTTP port.
func (m *Miniupnpd) probeHTTP() error {
	var perr error
	err := m.lab.CPE.do(func() {
		c, err := net.DialTimeout("tcp4", net.JoinHostPort(CGN4, strconv.Itoa(BoxHTTPPort)), 200*time.Millisecond)
		if err != nil {
			perr = err
			return
		}
		c.Close()
	})
	return errors.Join(err, perr)
}

// Output is miniupnpd's log with Debug, empty otherwise.
func (m *Miniupnpd) Output() string {
	if m.proc == nil {
		return ""
	}
	return m.proc.Output()
}

// Pid is the pid of the running miniupnpd (0 when stopped).
func (m *Miniupnpd) Pid() int {
	if m.proc != nil {
		if m.proc.Exited() {
			return 0
		}
		return m.proc.Pid()
	}
	if m.pid != 0 && !alive(m.pid) {
		return 0
	}
	return m.pid
}

// Ruleset returns `nft list table inet cgn` in isp.
func (m *Miniupnpd) Ruleset(t testing.TB) string {
	t.Helper()
	return m.lab.ISP.Run(t, "nft", "list", "table", "inet", "cgn")
}

// DNATCount is the number of dnat rules in cgn's prerouting_pcp chain.
func (m *Miniupnpd) DNATCount(t testing.TB) int {
	t.Helper()
	out := m.lab.ISP.Run(t, "nft", "list", "chain", "inet", "cgn", "prerouting_pcp")
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " dnat ") {
			n++
		}
	}
	return n
}

// Announce sends SIGUSR1, once miniupnpd has run a few seconds (minAge):
// it resets its epoch and multicasts an unsolicited ANNOUNCE to
// 224.0.0.1:5350 and [ff02::1]:5350.
func (m *Miniupnpd) Announce(t testing.TB) {
	t.Helper()
	pid := m.Pid()
	if pid == 0 {
		t.Fatal("lab: Announce: miniupnpd is not running")
	}
	m.age()
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatalf("lab: kill -USR1 miniupnpd: %v", err)
	}
	// A signal that lands while miniupnpd is busy is only seen after its
	// poll(2) wakes up (see stop): wake it with a harmless NAT-PMP
	// external address request from cpe. The signal is pending before
	// the request is sent, so whatever wakes the loop sees it.
	m.probe()
}

// Restart stops miniupnpd and starts it again, as a reboot of the CGN,
// once it has run a few seconds (minAge).
// With clearLeases it also empties the lease file and flushes the cgn
// chains it manages, so the new instance starts without any mapping (a
// rebooted CGN box loses its state); without, it reloads its lease file.
func (m *Miniupnpd) Restart(t testing.TB, clearLeases bool) {
	t.Helper()
	if clearLeases {
		m.RestartHolding(t)
		return
	}
	m.age()
	if err := m.stop(); err != nil {
		t.Fatalf("lab: %v", err)
	}
	m.start(t)
}

// RestartHolding restarts miniupnpd as Restart with clearLeases does (a
// rebooted CGN that lost its state), except that it comes back holding
// the given mappings: lines of its lease file,
// PROTO:eport:iaddr:iport:expiry:description with the expiry in Unix
// seconds or 0 for none ("TCP:28080:100.64.0.9:28080:0:taken"), e.g. ports
// another subscriber took while it restarted.
func (m *Miniupnpd) RestartHolding(t testing.TB, leases ...string) {
	t.Helper()
	m.age()
	if err := m.stop(); err != nil {
		t.Fatalf("lab: %v", err)
	}
	var content []byte
	for _, l := range leases {
		content = append(content, l+"\n"...)
	}
	if err := os.WriteFile(m.LeaseFile, content, 0o644); err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, c := range []string{"forward_pcp", "prerouting_pcp", "postrouting_pcp"} {
		cmds = append(cmds, "flush chain inet cgn "+c)
	}
	f := filepath.Join(m.lab.Dir, "miniupnpd", "flush.nft")
	if err := os.WriteFile(f, []byte(strings.Join(cmds, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.lab.ISP.Run(t, "nft", "-f", f)
	m.start(t)
}

// Stop stops miniupnpd (SIGTERM, SIGKILL after 5 s).
func (m *Miniupnpd) Stop(t testing.TB) {
	t.Helper()
	if err := m.stop(); err != nil {
		t.Fatalf("lab: %v", err)
	}
}

// stop ends miniupnpd with SIGTERM, repeated every 200 ms: its main loop
// checks its quit flag before building the poll set, so a SIGTERM that
// lands between the check and poll(2) (likely when it is busy, e.g. just
// after a request or SIGUSR1) leaves it asleep until another signal comes.
// After 5 s it is killed.
func (m *Miniupnpd) stop() error {
	pid, gone := m.pid, func() bool { return !alive(m.pid) }
	if m.proc != nil {
		pid, gone = m.proc.Pid(), m.proc.Exited
	}
	if pid == 0 || gone() {
		m.pid = 0
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		syscall.Kill(pid, syscall.SIGTERM)
		if poll(200*time.Millisecond, gone) {
			m.pid = 0
			return nil
		}
	}
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	syscall.Kill(pid, syscall.SIGKILL)
	poll(2*time.Second, gone)
	m.pid = 0
	return fmt.Errorf("miniupnpd (pid %d) did not exit within 5s of SIGTERM; killed (stat %q)", pid, stat)
}

// StartPlainNAT makes isp a provider NAT without port control: table
// inet cgn (LAB.md's, masquerading toward the internet) and no
// miniupnpd, so nothing answers PCP, NAT-PMP or UPnP. The chain
// prerouting_pcp is where a test adds the DNAT of an ISP box's "DMZ".
func (l *Lab) StartPlainNAT(t testing.TB) {
	t.Helper()
	if l.ISP == nil {
		t.Fatal("lab: StartPlainNAT: no isp namespace in the Local topology")
	}
	f := filepath.Join(l.Dir, "cgn.nft")
	if err := os.WriteFile(f, []byte(l.cgnTable()), 0o644); err != nil {
		t.Fatal(err)
	}
	l.ISP.Run(t, "nft", "-f", f)
}

// SetExtIP changes the box's ext_ip (Box.ExtIP) for its next start
// (Restart): its GetExternalIPAddress answers that address.
func (m *Miniupnpd) SetExtIP(t testing.TB, ip string) {
	t.Helper()
	m.opt.Box.ExtIP = ip
	if err := os.WriteFile(m.Conf, []byte(m.conf()), 0o644); err != nil {
		t.Fatal(err)
	}
}
