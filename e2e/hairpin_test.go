package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/mapping"
)

// serveWho runs a TCP service on the LAN host's port that answers
// "<port> <peer address>" to every connection, until the test ends: a
// test tells which service it reached and from which address the
// connection came (the CPE's LAN address when the CPE hairpinned it).
func serveWho(t *testing.T, l *lab.Lab, port uint16) {
	t.Helper()
	var ln net.Listener
	var err error
	l.LAN.Do(t, func() { ln, err = net.Listen("tcp4", netip.AddrPortFrom(lanHost, port).String()) })
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
			peer := netip.MustParseAddrPort(c.RemoteAddr().String())
			fmt.Fprintf(c, "%d %v\n", port, peer.Addr().Unmap())
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
}

// who connects from ns to addr over TCP and returns what a serveWho
// service answers ("" when nothing does within a second).
func who(t *testing.T, ns *lab.NS, addr netip.AddrPort) string {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.DialTimeout("tcp4", addr.String(), time.Second) })
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// kernelHairpins returns the elements of pcpgw's map fwd4x in cpe (the
// hairpin of the provider's address by the provider's port) as
// "port:lan-addr:lan-port", sorted.
func kernelHairpins(t *testing.T, l *lab.Lab) []string {
	t.Helper()
	out := l.CPE.Run(t, "nft", "-j", "list", "map", "inet", "pcpgw", "fwd4x")
	var doc struct {
		Nftables []struct {
			Map *struct {
				Elem [][2]json.RawMessage `json:"elem"`
			} `json:"map"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v\n%s", err, out)
	}
	// An element: [{"concat": ["tcp", 18081]}, {"concat": ["192.0.2.100", 8080]}],
	// the key possibly wrapped in {"elem": {"val": ..., "timeout": ...}}.
	type concat struct {
		Concat []any `json:"concat"`
	}
	var got []string
	for _, o := range doc.Nftables {
		if o.Map == nil {
			continue
		}
		for _, el := range o.Map.Elem {
			var k, v concat
			var wrapped struct {
				Elem struct {
					Val concat `json:"val"`
				} `json:"elem"`
			}
			if json.Unmarshal(el[0], &wrapped); len(wrapped.Elem.Val.Concat) == 2 {
				k = wrapped.Elem.Val
			} else if err := json.Unmarshal(el[0], &k); err != nil {
				t.Fatalf("fwd4x key %s: %v", el[0], err)
			}
			if err := json.Unmarshal(el[1], &v); err != nil || len(k.Concat) != 2 || len(v.Concat) != 2 {
				t.Fatalf("fwd4x element %s %s: %v", el[0], el[1], err)
			}
			got = append(got, fmt.Sprintf("%v:%v:%v", k.Concat[1], v.Concat[0], v.Concat[1]))
		}
	}
	slices.Sort(got)
	return got
}

// rowOf returns the `pcpgw list` row of the LAN host's TCP mapping of
// iport.
func rowOf(t *testing.T, p *lab.Pcpgw, iport uint16) control.Row {
	t.Helper()
	internal := netip.AddrPortFrom(lanHost, iport).String()
	for _, r := range list(t, p) {
		if r.Proto == "tcp" && r.Internal == internal {
			return r
		}
	}
	t.Fatalf("no mapping of %s in %+v", internal, list(t, p))
	return control.Row{}
}

// TestHairpinProviderPort (issue 17.8, RFC 7648 §3.1): in nat444 behind
// miniupnpd 2.3.9 as the CGN, another subscriber holds 18080 at the CGN,
// so that the CGN gives LAN service A (LAN port 8080, asked for 18080,
// WAN port 18080) another external port pa. Service B (LAN port 8081)
// then asks for pa: its WAN port is pa, and the CGN gives it another
// port pb. A LAN host connecting to the provider's address
// 203.0.113.1:pa reaches A, not B whose WAN port is that number; at
// 203.0.113.1:pb it reaches B; at 203.0.113.1:18080 (the other
// subscriber's) nothing; each time through the CPE's own NAT (the service
// sees the CPE's LAN address), as the internet reaches them through the
// CGN at the same endpoints. The CPE's WAN address still hairpins by the
// WAN port. The kernel's hairpin map holds exactly pa→A and pb→B. Then
// the CGN restarts holding pa for the other subscriber: the mappings are
// made again on other ports and the hairpin follows them (pa reaches
// neither); and after pcpgw restarts (SIGTERM) the hairpin is back.
func TestHairpinProviderPort(t *testing.T) {
	l, m, p := startNAT444(t, lab.MiniupnpdOptions{})
	serveWho(t, l, 8080)
	serveWho(t, l, 8081)
	m.RestartHolding(t, "TCP:18080:100.64.0.9:18080:0:taken")

	at := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(cgnPublic, port) }
	wan := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(lab.CPEWAN4), port) }
	hairpinned := func(svc uint16) string { return fmt.Sprintf("%d %v", svc, cpeLAN) }
	// expect polls (bounded) until every endpoint answers as wanted from
	// ns ("" : nothing answers), then reports what differs.
	expect := func(ns *lab.NS, want map[netip.AddrPort]string) {
		t.Helper()
		got := map[netip.AddrPort]string{}
		ok := func() bool {
			same := true
			for addr, w := range want {
				got[addr] = who(t, ns, addr)
				same = same && got[addr] == w
			}
			return same
		}
		deadline := time.Now().Add(10 * time.Second)
		for !ok() && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		for addr, w := range want {
			if got[addr] != w {
				t.Errorf("from %s, %v answers %q, want %q", ns.Name, addr, got[addr], w)
			}
		}
	}

	a := natpmpMapTCP(t, l, 8080, 18080, 3600)
	pa := a.ExternalPort
	if pa == 18080 {
		t.Fatalf("the CGN gave 18080, held by another subscriber:\n%s", m.Ruleset(t))
	}
	b := natpmpMapTCP(t, l, 8081, pa, 3600)
	pb := b.ExternalPort
	ra, rb := rowOf(t, p, 8080), rowOf(t, p, 8081)
	if ra.WANPort != 18080 || rb.WANPort != pa || pb == pa || ra.External != at(pa).String() || rb.External != at(pb).String() {
		t.Fatalf("mappings A %+v and B %+v: want WAN ports 18080 and %d, provider ports %d and another", ra, rb, pa, pa)
	}
	t.Logf("A: WAN port 18080, provider port %d; B: WAN port %d, provider port %d", pa, pa, pb)

	// The internet reaches A at pa and B at pb through the CGN.
	netHost := lab.NetHost4
	expect(l.Net, map[netip.AddrPort]string{
		at(pa):    "8080 " + netHost,
		at(pb):    "8081 " + netHost,
		at(18080): "",
	})
	// The LAN host reaches them at the same endpoints through the CPE,
	// by the provider's port: pa is A's there, though it is B's WAN port.
	expect(l.LAN, map[netip.AddrPort]string{
		at(pa):     hairpinned(8080),
		at(pb):     hairpinned(8081),
		at(18080):  "",
		wan(18080): hairpinned(8080),
		wan(pa):    hairpinned(8081),
	})
	want := []string{fmt.Sprintf("%d:%v:8080", pa, lanHost), fmt.Sprintf("%d:%v:8081", pb, lanHost)}
	slices.Sort(want)
	if got := kernelHairpins(t, l); !slices.Equal(got, want) {
		t.Errorf("fwd4x holds %q, want %q", got, want)
	}

	// The CGN restarts and another subscriber took pa meanwhile.
	m.RestartHolding(t, fmt.Sprintf("TCP:%d:100.64.0.9:%d:0:taken", pa, pa))
	var na, nb uint16
	ok := mapping.UpstreamOK.String()
	// Made again: the CGN holds the other subscriber's DNAT and ours, and
	// then pcpgw lists both on their ports (one listing: a mapping not yet
	// answered still shows its old port, which is then the other's).
	made := func() bool {
		if m.DNATCount(t) != 3 {
			return false
		}
		var ea, eb netip.AddrPort
		for _, r := range list(t, p) {
			x, err := netip.ParseAddrPort(r.External)
			if err != nil || r.Proto != "tcp" || r.Upstream != ok {
				continue
			}
			switch r.Internal {
			case netip.AddrPortFrom(lanHost, 8080).String():
				ea = x
			case netip.AddrPortFrom(lanHost, 8081).String():
				eb = x
			}
		}
		na, nb = ea.Port(), eb.Port()
		return ea.IsValid() && eb.IsValid() && na != pa && na != nb
	}
	for deadline := time.Now().Add(30 * time.Second); !made(); time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the mappings were not made again off port %d: %+v\n%s", pa, list(t, p), m.Ruleset(t))
		}
	}
	t.Logf("after the CGN's restart: A on %d, B on %d", na, nb)
	afterMove := map[netip.AddrPort]string{
		at(na):     hairpinned(8080),
		at(nb):     hairpinned(8081),
		at(pa):     "", // the other subscriber's now
		wan(18080): hairpinned(8080),
		wan(pa):    hairpinned(8081),
	}
	expect(l.LAN, afterMove)
	expect(l.Net, map[netip.AddrPort]string{at(na): "8080 " + netHost, at(nb): "8081 " + netHost})

	// pcpgw restarts: the hairpin comes back from its state.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.Wait(5 * time.Second)
	p = l.StartPcpgw(t, "--pcp-server", "100.64.0.1")
	expect(l.LAN, afterMove)
}
