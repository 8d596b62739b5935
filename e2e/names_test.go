package e2e

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// TestUPnPHostNames: the real upnpc gives IGD:2 a host name as
// NewInternalClient (REQUIREMENTS 33); pcpgw looks it up with the system's
// resolver (cpe's resolv.conf names a DNS server on cpe's loopback, as
// OpenWrt's dnsmasq) and maps to the address; a name that does not exist
// is 402; IGD:1 takes names too (as miniupnpd).
func TestUPnPHostNames(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{Local: true})

	// ip netns exec bind-mounts /etc/netns/<ns>/resolv.conf over
	// /etc/resolv.conf for what it runs in that namespace; the lab
	// removes the directory with the namespace (also after a kill).
	dir := filepath.Join("/etc/netns", l.CPE.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var pc net.PacketConn
	l.CPE.Do(t, func() {
		var err error
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:53"); err != nil {
			t.Fatal(err)
		}
	})
	var (
		mu      sync.Mutex
		queries []string
	)
	seen := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), queries...) }
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := q.Question[0].Name
		mu.Lock()
		queries = append(queries, name+" "+dns.TypeToString[q.Question[0].Qtype])
		mu.Unlock()
		switch {
		case name == "lanhost.lan." && q.Question[0].Qtype == dns.TypeA:
			rr, _ := dns.NewRR("lanhost.lan. 60 IN A " + lab.LANHost4)
			m.Answer = append(m.Answer, rr)
		case name == "lanhost.lan.":
		default:
			m.SetRcode(q, dns.RcodeNameError)
		}
		w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: mux, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })

	p := l.StartPcpgw(t, "--http-port", "5000")
	upnpc := func(args ...string) string {
		t.Helper()
		out, err := l.LAN.Output("upnpc", append([]string{"-i"}, args...)...)
		if err != nil {
			t.Logf("upnpc %v: %v\n%s", args, err, out)
		}
		return out
	}
	igd1 := "http://" + lab.CPELAN4 + ":5000/igd1.xml"
	igd2 := "http://" + lab.CPELAN4 + ":5000/igd2.xml"

	out := upnpc("-u", igd2, "-e", "by name", "-a", "lanhost.lan", "8080", "18080", "TCP", "3600")
	if !strings.Contains(out, "is redirected to internal "+lab.LANHost4+":8080") {
		t.Fatalf("upnpc -a lanhost.lan (IGD:2):\n%s\nDNS queries: %v", out, seen())
	}
	if q := seen(); !slices.Contains(q, "lanhost.lan. A") {
		t.Errorf("pcpgw did not ask cpe's DNS server for lanhost.lan A: %v", q)
	}
	if list := p.CLI(t, "list"); !strings.Contains(list, lab.LANHost4+":8080") || !strings.Contains(list, "18080") {
		t.Errorf("pcpgw list after a mapping by name:\n%s", list)
	}
	if out := upnpc("-u", igd2, "-a", "nobody.lan", "8081", "18081", "TCP", "3600"); !strings.Contains(out, "402") {
		t.Errorf("upnpc -a nobody.lan (IGD:2): want 402:\n%s", out)
	}
	// IGD:1 takes names too, as miniupnpd does (issue 17).
	if out := upnpc("-u", igd1, "-a", "lanhost.lan", "8082", "18082", "TCP", "3600"); !strings.Contains(out, "is redirected to internal "+lab.LANHost4+":8082") {
		t.Errorf("upnpc -a lanhost.lan (IGD:1):\n%s", out)
	}
	if list := p.CLI(t, "list"); strings.Contains(list, "18081") || !strings.Contains(list, "18082") {
		t.Errorf("a refused name was mapped, or IGD:1's name was not:\n%s", list)
	}
}
