package nat64

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestPrefixOf(t *testing.T) {
	for _, tc := range []struct {
		a    string
		want string
	}{
		// RFC 6052 §2.4's examples, with 192.0.0.170 (c0.00.00.aa) for
		// 192.0.2.33.
		{"2001:db8:c000:aa::", "2001:db8::/32"},
		{"2001:db8:1c0:0:aa::", "2001:db8:100::/40"},
		{"2001:db8:122:c000:0:aa00::", "2001:db8:122::/48"},
		{"2001:db8:122:3c0:0:aa:0:0", "2001:db8:122:300::/56"},
		{"2001:db8:122:344:c0:0:aa00:0", "2001:db8:122:344::/64"},
		{"2001:db8:122:344::192.0.0.170", "2001:db8:122:344::/96"},
		{"64:ff9b::192.0.0.171", "64:ff9b::/96"},
		{"2001:db8:64::c000:aa", "2001:db8:64::/96"},
		// 192.0.0.170 searched first.
		{"2001:db8:c000:aa::c000:ab", "2001:db8::/32"},
		// 192.0.0.170 twice: the search goes on with 192.0.0.171.
		{"2001:db8:c000:aa:0:0:c000:aa", ""},
		{"2001:db8:c000:aa:0:0:c000:ab", "2001:db8::/32"},
		{"2001:db8::1", ""},
		{"192.0.0.170", ""},
		{"::ffff:192.0.0.170", ""},
	} {
		p, ok := PrefixOf(netip.MustParseAddr(tc.a))
		got := ""
		if ok {
			got = p.String()
		}
		if got != tc.want {
			t.Errorf("PrefixOf(%s) = %q, want %q", tc.a, got, tc.want)
		}
	}
	got := Prefixes([]netip.Addr{netip.MustParseAddr("2001:db8:64::c000:aa"), netip.MustParseAddr("2001:db8:64::c000:ab"),
		netip.MustParseAddr("64:ff9b::c000:aa"), netip.MustParseAddr("2001:db8::1")})
	if len(got) != 2 || got[0].String() != "2001:db8:64::/96" || got[1].String() != "64:ff9b::/96" {
		t.Errorf("Prefixes = %v", got)
	}
}

func FuzzPrefixOf(f *testing.F) {
	for _, s := range []string{"2001:db8:122:344::192.0.0.170", "2001:db8:c000:aa::", "64:ff9b::c000:ab", "::1"} {
		b := netip.MustParseAddr(s).As16()
		f.Add(b[:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 16 {
			return
		}
		a := netip.AddrFrom16([16]byte(b))
		p, ok := PrefixOf(a)
		if !ok {
			return
		}
		if !p.Contains(a) || p != p.Masked() {
			t.Fatalf("PrefixOf(%v) = %v", a, p)
		}
		switch p.Bits() {
		case 32, 40, 48, 56, 64, 96:
		default:
			t.Fatalf("PrefixOf(%v) = %v: not an RFC 6052 length", a, p)
		}
	})
}

// TestDiscover: a DNS64 on loopback synthesizes ipv4only.arpa with a
// network-specific prefix; a resolver with no DNS64 gives ErrNone.
func TestDiscover(t *testing.T) {
	serve := func(answer func(q *dns.Msg, m *dns.Msg)) netip.AddrPort {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan struct{})
		srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
			Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
				m := new(dns.Msg)
				m.SetReply(q)
				answer(q, m)
				w.WriteMsg(m)
			})}
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
		return netip.MustParseAddrPort(pc.LocalAddr().String())
	}
	dns64 := serve(func(q, m *dns.Msg) {
		if q.Question[0].Name == WKN && q.Question[0].Qtype == dns.TypeAAAA {
			for _, a := range []string{"2001:db8:64::192.0.0.170", "2001:db8:64::192.0.0.171"} {
				rr, _ := dns.NewRR(WKN + " 60 IN AAAA " + a)
				m.Answer = append(m.Answer, rr)
			}
		}
	})
	plain := serve(func(q, m *dns.Msg) { m.SetRcode(q, dns.RcodeNameError) })
	ctx := context.Background()
	got, err := Discover(ctx, []netip.AddrPort{plain, dns64}, 5*time.Second)
	if err != nil || len(got) != 1 || got[0].String() != "2001:db8:64::/96" {
		t.Fatalf("Discover = %v, %v", got, err)
	}
	if _, err := Discover(ctx, []netip.AddrPort{plain}, 5*time.Second); !errors.Is(err, ErrNone) {
		t.Errorf("without a DNS64: %v, want ErrNone", err)
	}
	if _, err := Discover(ctx, nil, time.Second); err == nil {
		t.Error("no resolvers: no error")
	}
}
