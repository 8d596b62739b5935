package pcpclient

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient/pcptest"
)

// TestServerSelection covers REQUIREMENT 3 (RFC 7488 §3): with several
// addresses of one server, each gets MRC=4 transmissions in order, with the
// same nonce; the one that answered is used first afterwards.
func TestServerSelection(t *testing.T) {
	dead := newFake(t)
	dead.SetMode(pcptest.Silent)
	live := newFake(t)
	c, err := New(Config{Servers: []netip.AddrPort{dead.Addr(), live.Addr()}, IRT: 10 * time.Millisecond, MRT: 40 * time.Millisecond, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Status().Servers; len(got) != 2 || got[0] != dead.Addr() {
		t.Fatalf("servers %v", got)
	}
	res, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 60})
	if err != nil {
		t.Fatal(err)
	}
	if res.Server != live.Addr() {
		t.Errorf("answered by %v", res.Server)
	}
	if n := dead.Received(); n != multiAddrMRC {
		t.Errorf("first address got %d transmissions, want %d", n, multiAddrMRC)
	}
	for _, r := range append(dead.Requests(), live.Requests()...) {
		if r.PCP.Map.Nonce != res.Nonce {
			t.Error("nonce differs across the server's addresses")
		}
	}
	// Now the live address goes first.
	if _, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:81"), Lifetime: 60}); err != nil {
		t.Fatal(err)
	}
	if n := dead.Received(); n != multiAddrMRC {
		t.Errorf("dead address asked again (%d)", n)
	}
	if c.Status().Server != live.Addr() {
		t.Errorf("status server %v", c.Status().Server)
	}
}

// TestServerSelectionLateAnswer: an answer from an address given up on is
// ignored (RFC 7488 §3 step 4).
func TestServerSelectionLateAnswer(t *testing.T) {
	a := newFake(t)
	a.SetMode(pcptest.Silent)
	b := newFake(t)
	b.SetMode(pcptest.Silent)
	c, err := New(Config{Servers: []netip.AddrPort{a.Addr(), b.Addr()}, IRT: 10 * time.Millisecond, MRT: 20 * time.Millisecond, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.Map(ctxT(t, time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 60})
		done <- err
	}()
	eventually(t, 2*time.Second, func() bool { return b.Received() > 0 }, "second address not tried")
	q := a.Requests()[0]
	resp := pcp.Response{Opcode: pcp.OpMap, Lifetime: 60, Map: &pcp.Map{Nonce: q.PCP.Map.Nonce, Protocol: 6, InternalPort: 80, ExternalPort: 80, ExternalAddr: netip.MustParseAddr("203.0.113.1")}}
	a.SendRaw(q.From, resp.AppendMarshal(nil))
	if err := <-done; !errors.Is(err, ErrTimeout) {
		t.Fatalf("late answer accepted: %v", err)
	}
}

func TestNoServer(t *testing.T) {
	old4, old6 := routeFile4, routeFile6
	routeFile4, routeFile6 = "/nonexistent", "/nonexistent"
	defer func() { routeFile4, routeFile6 = old4, old6 }()
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Map(ctxT(t, time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 60}); !errors.Is(err, ErrNoServer) {
		t.Errorf("err %v", err)
	}
	if _, err := c.ExternalAddr(ctxT(t, time.Second)); !errors.Is(err, ErrNoServer) {
		t.Errorf("ExternalAddr: %v", err)
	}
	if _, err := New(Config{Servers: []netip.AddrPort{{}}}); err == nil {
		t.Error("invalid server accepted")
	}
}

// TestServersFile covers REQUIREMENT 3: the servers file a DHCP hook writes
// (RFC 7291) is used, and read again when it changes.
func TestServersFile(t *testing.T) {
	a := newFake(t)
	b := newFake(t)
	path := filepath.Join(t.TempDir(), "pcp-servers")
	if err := os.WriteFile(path, []byte("# from DHCPv4 option 158\n"+a.Addr().String()+"\nbogus\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{ServersFile: path, IRT: 20 * time.Millisecond, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Status().Servers; len(got) != 1 || got[0] != a.Addr() {
		t.Fatalf("servers %v", got)
	}
	if _, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 60}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.Addr().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(path, later, later)
	res, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 60})
	if err != nil || res.Server != b.Addr() {
		t.Fatalf("after the change: %+v %v", res, err)
	}
	// The file emptied: no server left (no default route in this test).
	old4, old6 := routeFile4, routeFile6
	routeFile4, routeFile6 = "/nonexistent", "/nonexistent"
	defer func() { routeFile4, routeFile6 = old4, old6 }()
	os.WriteFile(path, nil, 0o644)
	later = later.Add(2 * time.Second)
	os.Chtimes(path, later, later)
	if _, err := c.Map(ctxT(t, time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 60}); !errors.Is(err, ErrNoServer) {
		t.Errorf("emptied file: %v", err)
	}
}

func TestParseServerLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
		err  bool
	}{
		{"100.64.0.1", "100.64.0.1:5351", true, false},
		{" 2001:db8::1 ", "[2001:db8::1]:5351", true, false},
		{"[2001:db8::1]:5000", "[2001:db8::1]:5000", true, false},
		{"100.64.0.1:0", "100.64.0.1:5351", true, false},
		{"::ffff:100.64.0.1", "100.64.0.1:5351", true, false},
		{"", "", false, false},
		{"# comment", "", false, false},
		{"pcp.example", "", false, true},
	} {
		ap, ok, err := parseServerLine(tc.in)
		if ok != tc.ok || (err != nil) != tc.err || (ok && ap.String() != tc.want) {
			t.Errorf("%q: %v %v %v", tc.in, ap, ok, err)
		}
	}
}

// TestDefaultRouters covers REQUIREMENT 3's last resort (§8.1): the IPv4
// and IPv6 default routers, from the kernel's route tables.
func TestDefaultRouters(t *testing.T) {
	route4 := `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
c1	00000000	010040640	0003	0	0	0	00000000	0	0	0
c1	00000000	01004064	0003	0	0	0	00000000	0	0	0
c1	00004064	00000000	0001	0	0	0	00FFFFFF	0	0	0
eth9	00000000	0101A8C0	0003	0	0	0	00000000	0	0	0
`
	route6 := `00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db800ff00000000000000000001 00000400 00000001 00000000 00000003     c1
20010db800ff00000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     c1
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     c1
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
`
	got4 := parseRoute4([]byte(route4), "c1")
	if len(got4) != 1 || got4[0] != netip.MustParseAddr("100.64.0.1") {
		t.Errorf("IPv4 %v", got4)
	}
	if all := parseRoute4([]byte(route4), ""); len(all) != 2 {
		t.Errorf("IPv4 any interface %v", all)
	}
	got6 := parseRoute6([]byte(route6), "c1")
	if len(got6) != 2 || got6[0] != netip.MustParseAddr("2001:db8:ff::1") || got6[1] != netip.MustParseAddr("fe80::1%c1") {
		t.Errorf("IPv6 %v", got6)
	}
	dir := t.TempDir()
	old4, old6 := routeFile4, routeFile6
	routeFile4, routeFile6 = filepath.Join(dir, "route"), filepath.Join(dir, "ipv6_route")
	defer func() { routeFile4, routeFile6 = old4, old6 }()
	os.WriteFile(routeFile4, []byte(route4), 0o644)
	os.WriteFile(routeFile6, []byte(route6), 0o644)
	var dialed []netip.AddrPort
	c, err := New(Config{WANInterface: "c1", dial: func(s netip.AddrPort) (packetConn, netip.Addr, error) {
		dialed = append(dialed, s)
		return newMemConn(s), netip.MustParseAddr("100.64.0.2"), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Status().Servers; len(got) != 3 || got[0] != netip.MustParseAddrPort("100.64.0.1:5351") {
		t.Errorf("servers %v (dialed %v)", got, dialed)
	}
	// An IPv4 mapping only goes to the IPv4 router (§8.1).
	if got := c.candidates(true); len(got) != 1 {
		t.Errorf("IPv4 candidates %d", len(got))
	}
}

// TestAFTR covers the DS-Lite part: the AFTR name (DHCPv6 option 64) is
// resolved (AAAA) with miekg/dns against the given resolver and becomes the
// server.
func TestAFTR(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc("aftr.example.", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		rr, _ := dns.NewRR("aftr.example. 60 IN AAAA 2001:db8:ff::1")
		m.Answer = append(m.Answer, rr)
		w.WriteMsg(m)
	})
	mux.HandleFunc("empty.example.", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		w.WriteMsg(m)
	})
	mux.HandleFunc("gone.example.", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeNameError)
		w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: mux, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	defer srv.Shutdown()
	resolver := netip.MustParseAddrPort(pc.LocalAddr().String())

	var dialed netip.AddrPort
	c, err := New(Config{AFTRName: "aftr.example", Resolvers: []netip.AddrPort{resolver}, dial: func(s netip.AddrPort) (packetConn, netip.Addr, error) {
		dialed = s
		return newMemConn(s), netip.MustParseAddr("2001:db8:ff::2"), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if want := netip.MustParseAddrPort("[2001:db8:ff::1]:5351"); dialed != want || c.Status().Servers[0] != want {
		t.Errorf("server %v, want %v", dialed, want)
	}
	for _, name := range []string{"empty.example", "gone.example"} {
		if _, err := resolveAFTR(ctxT(t, 3*time.Second), name, []netip.AddrPort{resolver}); err == nil {
			t.Errorf("%s resolved", name)
		}
	}
	if _, err := resolveAFTR(ctxT(t, 3*time.Second), "aftr.example", nil); err == nil {
		t.Error("no resolvers accepted")
	}
	// A resolver that does not answer: bounded.
	quiet, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	defer quiet.Close()
	start := time.Now()
	if _, err := resolveAFTR(ctxT(t, 10*time.Second), "aftr.example", []netip.AddrPort{netip.MustParseAddrPort(quiet.LocalAddr().String())}); err == nil || time.Since(start) > dnsTotalTimeout+time.Second {
		t.Errorf("silent resolver: %v after %v", err, time.Since(start))
	}
	// resolv.conf
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(rc, []byte("nameserver 192.0.2.53\nnameserver 2001:db8::53\n"), 0o644)
	got, err := systemResolvers(rc)
	if err != nil || len(got) != 2 || got[0] != netip.MustParseAddrPort("192.0.2.53:53") {
		t.Errorf("resolv.conf: %v %v", got, err)
	}
	if _, err := systemResolvers(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("missing resolv.conf accepted")
	}
}

// TestAFTRResolvers: the AFTR name is looked up with the configured
// resolvers, else those learned on the WAN (ResolvConf, read at each
// lookup), else the system's.
func TestAFTRResolvers(t *testing.T) {
	dir := t.TempDir()
	sys, wan := filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "resolv.conf.auto")
	os.WriteFile(sys, []byte("nameserver 127.0.0.1\n"), 0o644)
	old := resolvConf
	resolvConf = sys
	defer func() { resolvConf = old }()
	c := &Client{log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		name string
		cfg  Config
		wan  string // content of the WAN's file, "" for none
		want string
	}{
		{"configured", Config{Resolvers: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:53")}, ResolvConf: wan}, "nameserver 2001:db8:ff::1\n", "192.0.2.7:53"},
		// OpenWrt's resolv.conf.auto: one section per interface.
		{"the WAN's", Config{ResolvConf: wan}, "# Interface wan6\nnameserver 2001:db8:ff::1\nnameserver fe80::1%eth1\n", "[2001:db8:ff::1]:53 [fe80::1%eth1]:53"},
		{"none learned", Config{ResolvConf: wan}, "# Interface wan6\n", "127.0.0.1:53"},
		{"no file", Config{ResolvConf: wan}, "", "127.0.0.1:53"},
		{"not asked", Config{}, "nameserver 2001:db8:ff::1\n", "127.0.0.1:53"},
	} {
		os.Remove(wan)
		if tc.wan != "" {
			os.WriteFile(wan, []byte(tc.wan), 0o644)
		}
		c.cfg = tc.cfg
		var got []string
		for _, r := range c.aftrResolvers() {
			got = append(got, r.String())
		}
		if s := strings.Join(got, " "); s != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, s, tc.want)
		}
	}
}
