package firewall_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/internal/lab"
)

// syncForwards returns forwards number lo..hi-1: even ones with a 1 h
// timeout (odd ones when flip), targets moved by shift.
func syncForwards(lo, hi int, shift uint16, flip func(i int) bool) []firewall.Forward {
	var out []firewall.Forward
	for i := lo; i < hi; i++ {
		f := firewall.Forward{Proto: tcp, Port: uint16(20000 + i),
			To: netip.AddrPortFrom(netip.MustParseAddr(lab.LANHost4), uint16(30000+i)+shift)}
		if (i%2 == 0) != flip(i) {
			f.Timeout = time.Hour
		}
		out = append(out, f)
	}
	return out
}

func syncPinholes(lo, hi int) []firewall.Pinhole {
	var out []firewall.Pinhole
	for i := lo; i < hi; i++ {
		out = append(out, firewall.Pinhole{Proto: udp, To: netip.AddrPortFrom(netip.MustParseAddr(lab.LANHost6), uint16(40000+i)), Timeout: time.Hour})
	}
	return out
}

// TestHelperFill is not a test: run by TestSyncAfterKill as a child process
// inside the cpe namespace, it fills the table, says "ready" and waits to
// be killed (at most a minute).
func TestHelperFill(t *testing.T) {
	table := os.Getenv("PCPGW_FW_HELPER_TABLE")
	if table == "" {
		t.Skip("helper process for TestSyncAfterKill")
	}
	fw, err := firewall.New(firewall.Config{Table: table, WAN: os.Getenv("PCPGW_FW_HELPER_WAN"), IPv6Baseline: true})
	if err != nil {
		t.Fatal(err)
	}
	fwds := syncForwards(0, 500, 0, func(int) bool { return false })
	for len(fwds) > 0 {
		n := min(len(fwds), 100)
		if err := fw.Apply(context.Background(), firewall.Change{AddForwards: fwds[:n]}); err != nil {
			t.Fatal(err)
		}
		fwds = fwds[n:]
	}
	if err := fw.Apply(context.Background(), firewall.Change{AddPinholes: syncPinholes(0, 20)}); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
}

// Issue 4: after pcpgw was killed with 500 forwards in the kernel, New
// adopts the table and Sync leaves exactly the wanted entries: stale ones
// removed, missing ones added, changed targets and timeouts corrected.
func TestSyncAfterKill(t *testing.T) {
	l := lab.New(t, lab.Options{NoMiniupnpd: true})
	const table = "pcpgwsync"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := l.CPE.Cmd(ctx, os.Args[0], "-test.run=^TestHelperFill$", "-test.v")
	cmd.Env = append(os.Environ(), "PCPGW_FW_HELPER_TABLE="+table, "PCPGW_FW_HELPER_WAN="+l.CPEWANIf)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	ready := false
	for sc.Scan() {
		if sc.Text() == "ready" {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatalf("helper did not get ready: %v", cmd.Wait())
	}
	if err := cmd.Process.Kill(); err != nil { // kill -9
		t.Fatal(err)
	}
	cmd.Wait()
	if got := len(kernelElems(t, l, table)["fwd4"]); got != 500 {
		t.Fatalf("left behind: %d DNAT entries, want 500", got)
	}

	fw := newFW(t, l, firewall.Config{Table: table, IPv6Baseline: true})
	// wanted now: 100..599; 100..109 moved to another LAN port;
	// 110..119 with the opposite timeout; pinholes 10..29.
	fwds := append(syncForwards(100, 110, 1000, func(int) bool { return false }),
		syncForwards(110, 600, 0, func(i int) bool { return i < 120 })...)
	pins := syncPinholes(10, 30)
	if err := fw.Sync(context.Background(), fwds, pins); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	got := kernelElems(t, l, table)
	want := wantElems(fwds, pins)
	for _, set := range []string{"fwd4", "acc4", "pin6", "fwd4h", "acc4h", "pin6h", "pin6p", "pin6hp"} {
		if diff := cmp.Diff(want[set], got[set]); diff != "" {
			t.Errorf("set %s after Sync (-want +got):\n%s", set, diff)
		}
	}
	// Sync again with the same state changes nothing.
	if err := fw.Sync(context.Background(), fwds, pins); err != nil {
		t.Fatalf("second Sync: %v", err)
	}
	got = kernelElems(t, l, table)
	for _, set := range []string{"fwd4", "acc4", "pin6"} {
		if diff := cmp.Diff(want[set], got[set]); diff != "" {
			t.Errorf("set %s after second Sync (-want +got):\n%s", set, diff)
		}
	}
	if diff := cmp.Diff([]string{l.CPELANIf}, got["lan_ifs"]); diff != "" {
		t.Errorf("lan_ifs (-want +got):\n%s", diff)
	}
}

// wantElems renders the elements fwds and pins should produce the way
// kernelElems renders nft's JSON.
func wantElems(fwds []firewall.Forward, pins []firewall.Pinhole) map[string][]string {
	m := map[string][]string{}
	to := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return fmt.Sprintf(" timeout=%d", int(d.Seconds()))
	}
	for _, f := range fwds {
		m["fwd4"] = append(m["fwd4"], fmt.Sprintf("tcp . %d%s : %s . %d", f.Port, to(f.Timeout), f.To.Addr(), f.To.Port()))
		m["acc4"] = append(m["acc4"], fmt.Sprintf("%s . tcp . %d . %d%s", f.To.Addr(), f.To.Port(), f.Port, to(f.Timeout)))
	}
	for _, p := range pins {
		m["pin6"] = append(m["pin6"], fmt.Sprintf("%s . udp . %d%s", p.To.Addr(), p.To.Port(), to(p.Timeout)))
	}
	for _, v := range m {
		sort.Strings(v)
	}
	return m
}

// kernelElems lists `nft -j list table inet <table>` in cpe and renders
// each set's elements as "a . b timeout=N" (maps: "key : value"), sorted.
func kernelElems(t *testing.T, l *lab.Lab, table string) map[string][]string {
	t.Helper()
	out := l.CPE.Run(t, "nft", "-j", "list", "table", "inet", table)
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("nft -j: %v", err)
	}
	m := map[string][]string{}
	for _, obj := range doc.Nftables {
		raw, ok := obj["set"]
		if !ok {
			raw, ok = obj["map"]
		}
		if !ok {
			continue
		}
		var s struct {
			Name string `json:"name"`
			Elem []any  `json:"elem"`
		}
		d := json.NewDecoder(strings.NewReader(string(raw)))
		d.UseNumber()
		if err := d.Decode(&s); err != nil {
			t.Fatal(err)
		}
		for _, e := range s.Elem {
			if kv, ok := e.([]any); ok && len(kv) == 2 { // map element
				m[s.Name] = append(m[s.Name], render(kv[0])+" : "+render(kv[1]))
				continue
			}
			m[s.Name] = append(m[s.Name], render(e))
		}
		sort.Strings(m[s.Name])
	}
	return m
}

func render(v any) string {
	switch x := v.(type) {
	case map[string]any:
		if e, ok := x["elem"].(map[string]any); ok {
			s := render(e["val"])
			if to, ok := e["timeout"]; ok {
				s += fmt.Sprintf(" timeout=%v", to)
			}
			return s
		}
		if c, ok := x["concat"].([]any); ok {
			parts := make([]string, len(c))
			for i, p := range c {
				parts[i] = render(p)
			}
			return strings.Join(parts, " . ")
		}
	}
	return fmt.Sprint(v)
}

// Issue 4: element timeouts remove entries with nobody running: no call
// reaches the firewall after the add, and the kernel drops both the DNAT
// entry and the pinhole, and with them the traffic.
func TestElementTimeout(t *testing.T) {
	l, fw := setup(t, true)
	listen(t, l.LAN, "192.0.2.100:8080")
	listen(t, l.LAN, "[2001:db8:1::100]:8080")
	apply(t, fw, firewall.Change{
		AddForwards: []firewall.Forward{{Proto: tcp, Port: 18080, To: netip.MustParseAddrPort("192.0.2.100:8080"), Timeout: 2 * time.Second}},
		AddPinholes: []firewall.Pinhole{{Proto: tcp, To: netip.MustParseAddrPort("[2001:db8:1::100]:8080"), Timeout: 2 * time.Second}},
	})
	wantReach(t, l.ISP, "tcp", lab.CPEWAN4+":18080", true)
	wantReach(t, l.ISP, "tcp", "[2001:db8:1::100]:8080", true)
	lab.Eventually(t, 10*time.Second, func() bool {
		e := kernelElems(t, l, "pcpgw")
		return len(e["fwd4"])+len(e["acc4"])+len(e["pin6"]) == 0
	}, "kernel still holds the entries 10 s after their 2 s timeout")
	wantReach(t, l.ISP, "tcp", lab.CPEWAN4+":18080", false)
	wantReach(t, l.ISP, "tcp", "[2001:db8:1::100]:8080", false)
}

// Close removes the table, is idempotent, and later calls fail cleanly.
func TestClose(t *testing.T) {
	l, fw := setup(t, false)
	if err := fw.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if out, err := l.CPE.Output("nft", "list", "table", "inet", "pcpgw"); err == nil {
		t.Errorf("table still there after Close:\n%s", out)
	}
	if err := fw.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	err := fw.Apply(context.Background(), firewall.Change{AddForwards: []firewall.Forward{{Proto: tcp, Port: 1, To: netip.MustParseAddrPort("192.0.2.100:1")}}})
	if !errors.Is(err, firewall.ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}
}
