package e2e

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/pcp"
)

// crashRounds is how many times TestKillMidBurst kills pcpgw (issue 18).
const crashRounds = 20

// crashPMPHosts are the extra LAN source addresses of the NAT-PMP load
// (each its own host to pcpgw: its own rate-limit bucket and quota).
var crashPMPHosts = []netip.Addr{
	netip.MustParseAddr("192.0.2.20"), netip.MustParseAddr("192.0.2.21"),
	netip.MustParseAddr("192.0.2.22"), netip.MustParseAddr("192.0.2.23"),
}

// mapKey names a mapping as the LAN sees it: protocol and internal
// endpoint.
type mapKey struct {
	proto    string // "tcp", "udp"
	internal netip.AddrPort
}

func (k mapKey) String() string { return k.proto + " " + k.internal.String() }

// TestKillMidBurst (issue 18): pcpgw is killed with SIGKILL at 20 random
// instants of a burst of NAT-PMP (4 LAN hosts) and IGD AddPortMapping
// requests, nat444 behind miniupnpd as the provider's CGN. After each
// restart on the same state directory: every mapping whose success a
// client received is listed with the external port it was given, the
// kernel holds exactly the listed mappings, and the CGN exactly their
// DNATs (no orphan pcpgw no longer knows, once the restart's clean-up is
// done). Then every mapping is deleted through the LAN protocols and the
// CGN must be left empty: pcpgw deleted each with its own nonce
// (miniupnpd refuses a delete with another one). About 40-60 s (70 s
// on a loaded machine).
func TestKillMidBurst(t *testing.T) {
	lab.RequireRoot(t)
	start := time.Now()
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	// Debug logs: a failing round's are printed with the test's output.
	args := []string{"--pcp-server", lab.CGN4, "--log-level", "debug"}
	p := l.StartPcpgw(t, args...)
	lab.Eventually(t, 10*time.Second, func() bool { return status(t, p).External == cgnPublic.String() },
		"pcpgw never learned the provider's external address")
	var cmds []string
	for _, a := range crashPMPHosts {
		cmds = append(cmds, "addr add "+a.String()+"/24 dev "+l.LANIf)
	}
	l.LAN.Run(t, "ip", "-force", "-batch", writeTemp(t, l, "addrs.batch", strings.Join(cmds, "\n")+"\n"))
	lab.Eventually(t, 10*time.Second, func() bool {
		code, _ := igdRequest(t, l, "GET /igd1.xml HTTP/1.1\r\nHost: "+lab.CPELAN4+":5000\r\nConnection: close\r\n\r\n")
		return code == 200
	}, "the IGD never served its description")

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0x18))
	t.Logf("seed %d", seed)
	var totalAcked, totalLost, totalOrphans, failed int
	for round := range crashRounds {
		// Each round has its own ports, so that what one round left
		// behind (on a pcpgw that fails the test) is told apart.
		base := uint16(20000 + round*1000)
		b := startBurst(t, l, base)
		killAt := time.Duration(20+rng.IntN(280)) * time.Millisecond
		time.Sleep(killAt) // the random instant of the kill (the burst runs meanwhile)
		if err := p.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.Wait(5 * time.Second)
		acked, sent := b.stop()
		restarted := time.Now()
		p = l.StartPcpgw(t, args...)

		inRound := func(port uint16) bool { return port >= base && port < base+1000 }
		var rows []control.Row
		var kernel map[string]netip.AddrPort
		var cgn map[string]uint16
		settled := poll(20*time.Second, func() bool {
			s := status(t, p)
			rows = list(t, p)
			kernel = cpeForwards(t, l)
			cgn = cgnDNATs(t, m)
			return s.Pending == 0 && s.Failing == 0 && sameMappings(rows, kernel, cgn, inRound) == ""
		})
		lost, orphans := 0, 0
		listed := map[mapKey]control.Row{}
		for _, r := range rows {
			listed[mapKey{r.Proto, netip.MustParseAddrPort(r.Internal)}] = r
		}
		var problems []string
		for k, ext := range acked {
			r, ok := listed[k]
			switch {
			case !ok:
				lost++
				problems = append(problems, fmt.Sprintf("acknowledged %v (external port %d) not listed", k, ext))
			case netip.MustParseAddrPort(r.External).Port() != ext:
				problems = append(problems, fmt.Sprintf("acknowledged %v on external port %d, listed on %s", k, ext, r.External))
			}
		}
		wanOf := map[string]bool{}
		for _, r := range rows {
			wanOf[r.Proto+"/"+strconv.Itoa(int(netip.MustParseAddrPort(r.External).Port()))] = true
		}
		for k, wan := range cgn {
			if !wanOf[k] && inRound(wan) {
				orphans++
			}
		}
		if d := sameMappings(rows, kernel, cgn, inRound); d != "" {
			problems = append(problems, d)
		}
		slices.Sort(problems)
		totalAcked += len(acked)
		totalLost += lost
		totalOrphans += orphans
		// Listed but not acknowledged: made, and its answer on its way
		// when the kill came (allowed: the client was not told either way).
		extra := 0
		for k := range listed {
			if _, ok := acked[k]; !ok {
				extra++
			}
		}
		t.Logf("round %2d: killed %3v into the burst (%3d requests sent, %3d acknowledged); after the restart %3d listed (%d not acknowledged), %d acknowledged lost, %d orphans at the CGN; settled %v after the restart",
			round, killAt, sent, len(acked), len(rows), extra, lost, orphans, time.Since(restarted).Round(time.Millisecond))
		if !settled || len(problems) > 0 {
			failed++
			t.Errorf("round %d (killed %v into the burst): settled %v\n%s", round, killAt, settled, strings.Join(problems, "\n"))
			if failed == 3 {
				t.Fatalf("3 rounds failed; so far %d acknowledged, %d of them lost, %d orphans at the CGN", totalAcked, totalLost, totalOrphans)
			}
		}
		deleteAll(t, l, p, rows)
		var left []string
		ok := poll(20*time.Second, func() bool {
			left = left[:0]
			for _, r := range list(t, p) {
				left = append(left, "listed "+r.Proto+" "+r.Internal)
			}
			for k := range cpeForwards(t, l) {
				left = append(left, "kernel "+k)
			}
			for k, wan := range cgnDNATs(t, m) {
				if inRound(wan) {
					left = append(left, fmt.Sprintf("CGN %s to WAN port %d", k, wan))
				}
			}
			return len(left) == 0
		})
		if !ok {
			slices.Sort(left)
			t.Errorf("round %d: left after deleting every mapping (a provider mapping pcpgw cannot delete: a wrong nonce?):\n%s", round, strings.Join(left, "\n"))
			failed++
			if failed >= 3 {
				t.FailNow()
			}
		}
	}
	t.Logf("%d kills: %d acknowledged, %d of them lost, %d orphans at the CGN; %v in all",
		crashRounds, totalAcked, totalLost, totalOrphans, time.Since(start).Round(time.Millisecond))
}

// burst is the LAN load of one round: NAT-PMP map requests from each of
// crashPMPHosts and IGD AddPortMapping requests from the LAN host, each
// client waiting for its answer before the next request.
type burst struct {
	mu    sync.Mutex
	acked map[mapKey]uint16 // mapping -> external port it was given
	sent  int
	done  chan struct{}
	wg    sync.WaitGroup
}

// startBurst starts the load; ports base+1.. are asked for (NAT-PMP host
// i: base+100*i+k; IGD: base+900+k).
func startBurst(t *testing.T, l *lab.Lab, base uint16) *burst {
	b := &burst{acked: map[mapKey]uint16{}, done: make(chan struct{})}
	for i, src := range crashPMPHosts {
		var c *net.UDPConn
		var err error
		l.LAN.Do(t, func() {
			c, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
				net.UDPAddrFromAddrPort(netip.AddrPortFrom(cpeLAN, pcp.ServerPort)))
		})
		if err != nil {
			t.Fatal(err)
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer c.Close()
			buf := make([]byte, 64)
			for k := uint16(1); k < 100 && !b.stopped(); k++ {
				port := base + uint16(100*i) + k
				op, proto := pcp.NATPMPOpMapTCP, "tcp"
				if k%2 == 0 {
					op, proto = pcp.NATPMPOpMapUDP, "udp"
				}
				req := pcp.NATPMPRequest{Opcode: op, InternalPort: port, SuggestedExternalPort: port, Lifetime: 3600}
				b.count()
				if _, err := c.Write(req.AppendMarshal(nil)); err != nil {
					continue
				}
				c.SetReadDeadline(time.Now().Add(time.Second))
				for {
					n, err := c.Read(buf)
					if err != nil {
						break
					}
					r, err := pcp.ParseNATPMPResponse(buf[:n])
					if err != nil || r.InternalPort != port {
						continue
					}
					if r.Result == pcp.NATPMPSuccess {
						b.ack(mapKey{proto, netip.AddrPortFrom(src, port)}, r.ExternalPort)
					}
					break
				}
			}
		}()
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for k := uint16(1); k < 100 && !b.stopped(); k++ {
			port := base + 900 + k
			b.count()
			if addPortMappingOK(l, port) {
				b.ack(mapKey{"tcp", netip.AddrPortFrom(lanHost, port)}, port)
			}
		}
	}()
	return b
}

func (b *burst) stopped() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

func (b *burst) count() {
	b.mu.Lock()
	b.sent++
	b.mu.Unlock()
}

func (b *burst) ack(k mapKey, ext uint16) {
	b.mu.Lock()
	b.acked[k] = ext
	b.mu.Unlock()
}

// stop ends the load (requests in flight end with their deadline or the
// connection) and returns the successes the clients received and the
// requests sent.
func (b *burst) stop() (map[mapKey]uint16, int) {
	close(b.done)
	b.wg.Wait()
	return b.acked, b.sent
}

// addPortMappingOK sends IGD:1 AddPortMapping (TCP, lease 0, the same
// internal and external port) from the LAN host and reports whether it
// was answered 200 OK.
func addPortMappingOK(l *lab.Lab, port uint16) bool {
	body := fmt.Sprintf(`<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewRemoteHost></NewRemoteHost><NewExternalPort>%d</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>%d</NewInternalPort><NewInternalClient>%s</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>crash</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration></u:AddPortMapping></s:Body></s:Envelope>`, port, port, lanHost)
	raw := fmt.Sprintf("POST /igd1/WANIPConn1/ctl HTTP/1.1\r\nHost: %s:5000\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nSOAPAction: \"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping\"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", lab.CPELAN4, len(body), body)
	code, _, err := igdTry(l, raw)
	return err == nil && code == 200
}

// igdTry is igdRequest without failing the test: the connection may be
// refused or reset (pcpgw killed).
func igdTry(l *lab.Lab, raw string) (int, string, error) {
	var c net.Conn
	var err error
	if derr := l.LAN.DoErr(func() { c, err = net.DialTimeout("tcp4", lab.CPELAN4+":5000", time.Second) }); derr != nil {
		return 0, "", derr
	}
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// deleteAll deletes rows through the LAN protocols: NAT-PMP "delete all"
// (internal port 0, lifetime 0, RFC 6886 §3.4) from each NAT-PMP host,
// IGD DeletePortMapping for each IGD mapping.
func deleteAll(t *testing.T, l *lab.Lab, p *lab.Pcpgw, rows []control.Row) {
	t.Helper()
	for _, src := range crashPMPHosts {
		for _, op := range []uint8{pcp.NATPMPOpMapTCP, pcp.NATPMPOpMapUDP} {
			var c *net.UDPConn
			var err error
			l.LAN.Do(t, func() {
				c, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
					net.UDPAddrFromAddrPort(netip.AddrPortFrom(cpeLAN, pcp.ServerPort)))
			})
			if err != nil {
				t.Fatal(err)
			}
			req := pcp.NATPMPRequest{Opcode: op}
			buf := make([]byte, 64)
			answered := false
			for try := 0; try < 4 && !answered; try++ {
				c.Write(req.AppendMarshal(nil))
				c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				if n, err := c.Read(buf); err == nil {
					r, err := pcp.ParseNATPMPResponse(buf[:n])
					answered = err == nil && r.Result == pcp.NATPMPSuccess
				}
			}
			c.Close()
			if !answered {
				t.Errorf("NAT-PMP delete-all from %v (opcode %d) not answered with success", src, op)
			}
		}
	}
	for _, r := range rows {
		if r.Origin != "upnp" {
			continue
		}
		body := fmt.Sprintf(`<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:DeletePortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewRemoteHost></NewRemoteHost><NewExternalPort>%d</NewExternalPort><NewProtocol>%s</NewProtocol></u:DeletePortMapping></s:Body></s:Envelope>`, r.WANPort, strings.ToUpper(r.Proto))
		raw := fmt.Sprintf("POST /igd1/WANIPConn1/ctl HTTP/1.1\r\nHost: %s:5000\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nSOAPAction: \"urn:schemas-upnp-org:service:WANIPConnection:1#DeletePortMapping\"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", lab.CPELAN4, len(body), body)
		if code, body, err := igdTry(l, raw); err != nil || code != 200 {
			t.Errorf("DeletePortMapping %s %d: %d %v %s", r.Proto, r.WANPort, code, err, body)
		}
	}
}

// cpeForwards returns pcpgw's DNATs in the cpe's kernel: "tcp/WANPORT" ->
// the LAN endpoint.
func cpeForwards(t *testing.T, l *lab.Lab) map[string]netip.AddrPort {
	t.Helper()
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	out := l.CPE.Run(t, "nft", "-j", "list", "map", "inet", "pcpgw", "fwd4")
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v\n%s", err, out)
	}
	got := map[string]netip.AddrPort{}
	for _, obj := range doc.Nftables {
		raw, ok := obj["map"]
		if !ok {
			continue
		}
		var m struct {
			Elem [][2]json.RawMessage `json:"elem"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("nft -j map: %v\n%s", err, raw)
		}
		for _, e := range m.Elem {
			var key struct {
				Concat []any `json:"concat"`
				Elem   struct {
					Val struct {
						Concat []any `json:"concat"`
					} `json:"val"`
				} `json:"elem"`
			}
			var val struct {
				Concat []any `json:"concat"`
			}
			if json.Unmarshal(e[0], &key) != nil || json.Unmarshal(e[1], &val) != nil {
				t.Fatalf("nft -j element %s : %s", e[0], e[1])
			}
			k := key.Concat
			if k == nil {
				k = key.Elem.Val.Concat
			}
			if len(k) != 2 || len(val.Concat) != 2 {
				t.Fatalf("nft -j element %s : %s", e[0], e[1])
			}
			to := netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprint(val.Concat[0])), uint16(val.Concat[1].(float64)))
			got[fmt.Sprintf("%v/%d", k[0], int(k[1].(float64)))] = to
		}
	}
	return got
}

// cgnDNAT matches one of miniupnpd's DNAT rules toward the CPE's WAN
// address: IP protocol, external port, CPE WAN port.
var cgnDNAT = regexp.MustCompile(`@nh,72,8 0x([0-9a-f]+) th dport (\d+) dnat ip to ` + regexp.QuoteMeta(lab.CPEWAN4) + `:(\d+)`)

// cgnDNATs returns the CGN's DNATs toward the CPE: "tcp/EXTPORT" -> the
// CPE's WAN port.
func cgnDNATs(t *testing.T, m *lab.Miniupnpd) map[string]uint16 {
	t.Helper()
	got := map[string]uint16{}
	for _, sm := range cgnDNAT.FindAllStringSubmatch(m.Ruleset(t), -1) {
		proto := map[string]string{"6": "tcp", "11": "udp"}[sm[1]]
		ext, _ := strconv.Atoi(sm[2])
		wan, _ := strconv.Atoi(sm[3])
		k := fmt.Sprintf("%s/%d", proto, ext)
		if _, dup := got[k]; dup {
			t.Errorf("CGN holds two DNATs for %s", k)
		}
		got[k] = uint16(wan)
	}
	return got
}

// sameMappings compares what pcpgw lists with the cpe's kernel and the
// CGN, for the WAN ports inRound selects; "" when they agree.
func sameMappings(rows []control.Row, kernel map[string]netip.AddrPort, cgn map[string]uint16, inRound func(uint16) bool) string {
	wantK := map[string]netip.AddrPort{}
	wantC := map[string]uint16{}
	for _, r := range rows {
		ext := netip.MustParseAddrPort(r.External)
		wantK[fmt.Sprintf("%s/%d", r.Proto, r.WANPort)] = netip.MustParseAddrPort(r.Internal)
		wantC[fmt.Sprintf("%s/%d", r.Proto, ext.Port())] = r.WANPort
	}
	var d []string
	for k, v := range wantK {
		if got, ok := kernel[k]; !ok || got != v {
			d = append(d, fmt.Sprintf("listed %s -> %v: kernel has %v", k, v, got))
		}
	}
	for k, v := range kernel {
		if _, ok := wantK[k]; !ok {
			d = append(d, fmt.Sprintf("kernel %s -> %v not listed", k, v))
		}
	}
	for k, v := range wantC {
		if got, ok := cgn[k]; !ok || got != v {
			d = append(d, fmt.Sprintf("listed external %s (WAN port %d): CGN has WAN port %d", k, v, got))
		}
	}
	for k, v := range cgn {
		if _, ok := wantC[k]; !ok && inRound(v) {
			d = append(d, fmt.Sprintf("CGN %s -> WAN port %d not listed (orphan)", k, v))
		}
	}
	slices.SortFunc(d, cmp.Compare)
	return strings.Join(d, "\n")
}

// poll calls cond every 100 ms until it returns true or timeout passes
// and reports whether it did.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeTemp writes s to a file in the lab's directory and returns its path.
func writeTemp(t *testing.T, l *lab.Lab, name, s string) string {
	t.Helper()
	f := l.Dir + "/" + name
	if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
