package openwrt_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// fw4Include is the fw4 include snippet, installed by the package as
// /usr/share/nftables.d/chain-pre/forward/30-pcpgw.nft.
const fw4Include = "../firewall/fw4-include.nft"

// fw4Ruleset returns a ruleset shaped like the one fw4 (OpenWrt's
// firewall4, 22.03 and later) loads for its default zones lan and wan:
// table inet fw4, flushed and refilled on every reload (fw4 never touches
// other tables), forward and input with policy drop, the zone chains, and,
// when include is not empty, the chain-pre include at the top of forward
// as fw4 emits it for each file in /usr/share/nftables.d/chain-pre/forward.
// There is no "ct status dnat accept": fw4 adds that only for zones with
// its own port forwards.
func fw4Ruleset(lan, wan, include string) string {
	inc := ""
	if include != "" {
		inc = fmt.Sprintf("\t\tinclude %q\n", include)
	}
	return strings.NewReplacer("LAN", lan, "WAN", wan, "INCLUDE\n", inc).Replace(`table inet fw4
flush table inet fw4

table inet fw4 {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept comment "!fw4: Accept traffic from loopback"
		ct state vmap { established : accept, related : accept } comment "!fw4: Handle inbound flows"
		tcp flags syn / fin,syn,rst,ack jump syn_flood comment "!fw4: Rate limit TCP syn packets"
		iifname "LAN" jump input_lan comment "!fw4: Handle lan IPv4/IPv6 input traffic"
		iifname "WAN" jump input_wan comment "!fw4: Handle wan IPv4/IPv6 input traffic"
		jump handle_reject
	}

	chain forward {
		type filter hook forward priority filter; policy drop;
INCLUDE
		ct state vmap { established : accept, related : accept } comment "!fw4: Handle forwarded flows"
		iifname "LAN" jump forward_lan comment "!fw4: Handle lan IPv4/IPv6 forward traffic"
		iifname "WAN" jump forward_wan comment "!fw4: Handle wan IPv4/IPv6 forward traffic"
		jump handle_reject
	}

	chain output {
		type filter hook output priority filter; policy accept;
		oif "lo" accept comment "!fw4: Accept traffic towards loopback"
		ct state vmap { established : accept, related : accept } comment "!fw4: Handle outbound flows"
		oifname "LAN" jump output_lan comment "!fw4: Handle lan IPv4/IPv6 output traffic"
		oifname "WAN" jump output_wan comment "!fw4: Handle wan IPv4/IPv6 output traffic"
	}

	chain prerouting {
		type filter hook prerouting priority filter; policy accept;
		iifname "LAN" jump helper_lan comment "!fw4: Handle lan IPv4/IPv6 helper assignment"
	}

	chain handle_reject {
		meta l4proto tcp reject with tcp reset comment "!fw4: Reject TCP traffic"
		reject comment "!fw4: Reject any other traffic"
	}

	chain syn_flood {
		limit rate 25/second burst 50 packets return comment "!fw4: Accept SYN packets below rate-limit"
		drop comment "!fw4: Drop excess packets"
	}

	chain input_lan {
		jump accept_from_lan
	}

	chain output_lan {
		jump accept_to_lan
	}

	chain forward_lan {
		jump accept_to_wan comment "!fw4: Accept lan to wan forwarding"
		jump accept_to_lan
	}

	chain helper_lan {
	}

	chain accept_from_lan {
		iifname "LAN" counter accept comment "!fw4: accept lan IPv4/IPv6 traffic"
	}

	chain accept_to_lan {
		oifname "LAN" counter accept comment "!fw4: accept lan IPv4/IPv6 traffic"
	}

	chain input_wan {
		meta nfproto ipv4 udp dport 68 counter accept comment "!fw4: Allow-DHCP-Renew"
		icmp type echo-request counter accept comment "!fw4: Allow-Ping"
		meta nfproto ipv4 meta l4proto igmp counter accept comment "!fw4: Allow-IGMP"
		meta nfproto ipv6 udp dport 546 counter accept comment "!fw4: Allow-DHCPv6"
		icmpv6 type { echo-request, echo-reply, destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } limit rate 1000/second counter accept comment "!fw4: Allow-ICMPv6-Input"
		jump reject_from_wan
	}

	chain output_wan {
		jump accept_to_wan
	}

	chain forward_wan {
		icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, echo-request, echo-reply } limit rate 1000/second counter accept comment "!fw4: Allow-ICMPv6-Forward"
		meta l4proto esp counter jump accept_to_lan comment "!fw4: Allow-IPSec-ESP"
		udp dport 500 counter jump accept_to_lan comment "!fw4: Allow-ISAKMP"
		jump drop_to_wan
	}

	chain accept_to_wan {
		meta nfproto ipv4 oifname "WAN" ct state invalid counter drop comment "!fw4: Prevent NAT leakage"
		oifname "WAN" counter accept comment "!fw4: accept wan IPv4/IPv6 traffic"
	}

	chain reject_from_wan {
		iifname "WAN" counter jump handle_reject comment "!fw4: reject wan IPv4/IPv6 traffic"
	}

	chain drop_to_wan {
		oifname "WAN" counter drop comment "!fw4: drop wan IPv4/IPv6 traffic"
	}

	chain dstnat {
		type nat hook prerouting priority dstnat; policy accept;
	}

	chain srcnat {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "WAN" jump srcnat_wan comment "!fw4: Handle wan IPv4/IPv6 srcnat traffic"
	}

	chain srcnat_wan {
		meta nfproto ipv4 masquerade comment "!fw4: Masquerade IPv4 wan traffic"
	}

	chain raw_prerouting {
		type filter hook prerouting priority raw; policy accept;
	}

	chain raw_output {
		type filter hook output priority raw; policy accept;
	}

	chain mangle_prerouting {
		type filter hook prerouting priority mangle; policy accept;
	}

	chain mangle_postrouting {
		type filter hook postrouting priority mangle; policy accept;
	}

	chain mangle_input {
		type filter hook input priority mangle; policy accept;
	}

	chain mangle_output {
		type route hook output priority mangle; policy accept;
	}

	chain mangle_forward {
		type filter hook forward priority mangle; policy accept;
	}
}
`)
}

// writeRuleset writes an fw4-shaped ruleset into dir and returns its path.
func writeRuleset(t *testing.T, dir, name, lan, wan, include string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(fw4Ruleset(lan, wan, include)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFW4IncludeChecks has nft check (nft -c: parsed and validated by the
// kernel, nothing committed) fw4's ruleset with pcpgw's include at the top
// of its forward chain, in a network namespace of its own; a damaged copy
// of the include must fail the same check.
func TestFW4IncludeChecks(t *testing.T) {
	lab.RequireRoot(t)
	inc, err := filepath.Abs(fw4Include)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	check := func(include string) ([]byte, error) {
		p := writeRuleset(t, dir, "fw4.nft", "br-lan", "wan", include)
		// unshare: a fresh network namespace, so even a check touches
		// nothing of this machine's.
		return exec.Command("unshare", "--net", "nft", "-c", "-f", p).CombinedOutput()
	}
	if out, err := check(inc); err != nil {
		t.Fatalf("nft -c rejects fw4's ruleset with %s: %v\n%s", fw4Include, err, out)
	}
	if out, err := check(""); err != nil {
		t.Fatalf("nft -c rejects the fw4-shaped ruleset itself: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.nft")
	b := strings.Replace(string(readFile(t, fw4Include)), "0x20000000 accept", "0x20000000 acept", 1)
	if err := os.WriteFile(bad, []byte(b), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := check(bad); err == nil {
		t.Fatalf("nft -c accepts a damaged include: the check proves nothing\n%s", out)
	}
}

// TestFW4ReloadKeepsMappings: in the lab's CPE, an fw4-shaped ruleset with
// forward policy drop and pcpgw's include; pcpgw (nat444 behind miniupnpd)
// maps a port for natpmpc on the LAN host, and a host on the internet
// reaches the LAN host's listener through it. After fw4 reloads (the same
// ruleset loaded again: table inet fw4 flushed and refilled) a new
// connection still gets through, and pcpgw's table is untouched. Loaded
// without the include, fw4's drop stops new connections (the include is
// what lets them through); with it again, they pass.
func TestFW4ReloadKeepsMappings(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireMiniupnpd(t)
	for _, tool := range []string{"natpmpc"} {
		if _, err := exec.LookPath(tool); err != nil {
			if lab.E2E() {
				t.Fatalf("%s not found: run scripts/deps-test.sh", tool)
			}
			t.Skipf("%s not found: run scripts/deps-test.sh", tool)
		}
	}
	inc, err := filepath.Abs(fw4Include)
	if err != nil {
		t.Fatal(err)
	}
	l := lab.New(t, lab.Options{})
	with := writeRuleset(t, l.Dir, "fw4.nft", l.CPELANIf, l.CPEWANIf, inc)
	without := writeRuleset(t, l.Dir, "fw4-noinclude.nft", l.CPELANIf, l.CPEWANIf, "")
	fw4Reload := func(path string) {
		t.Helper()
		l.CPE.Run(t, "nft", "-f", path)
	}
	fw4Reload(with)

	l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	l.StartPcpgw(t, "--pcp-server", lab.CGN4)

	const lanPort = 8080
	serveHello(t, l, lanPort)

	mapped := regexp.MustCompile(`Mapped public port (\d+) protocol TCP to local port 8080`)
	var public string
	lab.Eventually(t, 20*time.Second, func() bool {
		out, _ := l.LAN.Output("natpmpc", "-g", lab.CPELAN4, "-a", "18080", "8080", "tcp", "3600")
		if m := mapped.FindStringSubmatch(out); m != nil {
			public = m[1]
			return true
		}
		return false
	}, "natpmpc never got a TCP mapping for port 8080 from pcpgw")
	addr := net.JoinHostPort(lab.CGNPublic4, public)

	reaches := func(timeout time.Duration) bool {
		deadline := time.Now().Add(timeout)
		for {
			if hello(t, l.Net, addr) {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !reaches(15 * time.Second) {
		t.Fatalf("before any reload, %s from net never reached the LAN host's port %d", addr, lanPort)
	}
	// pcpgw's table without counters (-s) and element expiry times.
	expires := regexp.MustCompile(` expires [0-9hms]+`)
	table := func() string {
		return expires.ReplaceAllString(l.CPE.Run(t, "nft", "-s", "list", "table", "inet", "pcpgw"), "")
	}
	pcpgwTable := table()

	fw4Reload(with)
	if !reaches(5 * time.Second) {
		t.Fatalf("after an fw4 reload with the include, %s from net no longer reaches the LAN host", addr)
	}
	if got := table(); got != pcpgwTable {
		t.Errorf("fw4's reload changed pcpgw's table:\nbefore:\n%s\nafter:\n%s", pcpgwTable, got)
	}

	fw4Reload(without)
	if reaches(3 * time.Second) {
		t.Fatalf("without the include, fw4's forward drop let %s through: the test shows nothing", addr)
	}
	fw4Reload(with)
	if !reaches(5 * time.Second) {
		t.Fatalf("with the include back, %s from net does not reach the LAN host", addr)
	}
}

// serveHello answers "hello" on the LAN host's TCP port until the test ends.
func serveHello(t *testing.T, l *lab.Lab, port int) {
	t.Helper()
	var ln net.Listener
	var err error
	l.LAN.Do(t, func() {
		ln, err = net.Listen("tcp4", net.JoinHostPort(lab.LANHost4, fmt.Sprint(port)))
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
}

// hello connects from ns to addr and reports whether the LAN service
// answered within a second.
func hello(t *testing.T, ns *lab.NS, addr string) bool {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() {
		c, err = net.DialTimeout("tcp4", addr, time.Second)
	})
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "hello\n"
}
