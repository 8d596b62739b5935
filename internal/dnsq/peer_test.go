package dnsq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// peer is a miekg/dns server on UDP and TCP on one port of 127.0.0.1,
// which records the questions it is asked.
type peer struct {
	addr  netip.AddrPort
	mu    sync.Mutex
	asked []string // "name TYPE udp|tcp"
}

func (p *peer) questions() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.asked)
}

// bigAAAA are the AAAA records of big.example.: more than fit in 512
// octets.
var bigAAAA = func() []string {
	var out []string
	for i := range 40 {
		out = append(out, fmt.Sprintf("2001:db8:b16::%x", i+1))
	}
	return out
}()

func startPeer(t *testing.T) *peer {
	t.Helper()
	p := &peer{}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		_, tcp := w.RemoteAddr().(*net.TCPAddr)
		qq := q.Question[0]
		proto := "udp"
		if tcp {
			proto = "tcp"
		}
		p.mu.Lock()
		p.asked = append(p.asked, qq.Name+" "+dns.TypeToString[qq.Qtype]+" "+proto)
		p.mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(q)
		m.Compress = true
		add := func(s string) {
			rr, err := dns.NewRR(s)
			if err != nil {
				panic(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		switch name := dns.CanonicalName(qq.Name); {
		case name == "big.example." && qq.Qtype == dns.TypeAAAA:
			for _, a := range bigAAAA {
				add(qq.Name + " 60 IN AAAA " + a)
			}
		case name == "alias.example.":
			add(qq.Name + " 60 IN CNAME www.example.")
			if qq.Qtype == dns.TypeAAAA {
				add("www.example. 60 IN AAAA 2001:db8::80")
			}
		case name == "v4.example." && qq.Qtype == dns.TypeA:
			add(qq.Name + " 60 IN A 192.0.2.4")
		case name == "v4.example.", name == "empty.example.":
		case name == "broken.example.":
			m.Rcode = dns.RcodeServerFailure
		case name == "refused.example.":
			m.Rcode = dns.RcodeRefused
		case name == "lanhost.lan." && qq.Qtype == dns.TypeA:
			add(qq.Name + " 60 IN A 192.168.1.20")
		case name == "lanhost.lan." && qq.Qtype == dns.TypeAAAA:
			add(qq.Name + " 60 IN AAAA fd00::20")
		case name == "lanhost.lan.":
		default:
			m.Rcode = dns.RcodeNameError
		}
		if !tcp {
			m.Truncate(dns.MinMsgSize) // no EDNS in the query: 512 octets
		}
		w.WriteMsg(m)
	})
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 20 { // a port free for both UDP and TCP
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		p.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
		if ln, err = net.Listen("tcp4", p.addr.String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: mux}, {Listener: ln, Handler: mux}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { defer close(done); srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { srv.Shutdown(); <-done })
	}
	return p
}

// TestPeer: the client against miekg/dns's server: addresses of both
// families, a CNAME, the RCODEs, and an answer too big for UDP that comes
// truncated and is asked again over TCP.
func TestPeer(t *testing.T) {
	p := startPeer(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		typ   Type
		want  []string
		isErr error
		asked []string
	}{
		{"v4.example", TypeA, []string{"192.0.2.4"}, nil, []string{"v4.example. A udp"}},
		{"V4.Example.", TypeA, []string{"192.0.2.4"}, nil, []string{"V4.Example. A udp"}},
		{"v4.example", TypeAAAA, nil, ErrNoData, []string{"v4.example. AAAA udp"}},
		{"alias.example", TypeAAAA, []string{"2001:db8::80"}, nil, []string{"alias.example. AAAA udp"}},
		{"alias.example", TypeA, nil, ErrNoData, []string{"alias.example. A udp"}},
		{"big.example", TypeAAAA, bigAAAA, nil, []string{"big.example. AAAA udp", "big.example. AAAA tcp"}},
		{"gone.example", TypeAAAA, nil, ErrNXDomain, []string{"gone.example. AAAA udp"}},
		{"broken.example", TypeAAAA, nil, ErrServFail, []string{"broken.example. AAAA udp"}},
		{"refused.example", TypeAAAA, nil, &RcodeError{Rcode: RcodeRefused}, []string{"refused.example. AAAA udp"}},
		{"empty.example", TypeAAAA, nil, ErrNoData, []string{"empty.example. AAAA udp"}},
	} {
		t.Run(tc.name+" "+tc.typ.String(), func(t *testing.T) {
			before := len(p.questions())
			got, err := Query(ctx, p.addr, tc.name, tc.typ, 2*time.Second)
			if tc.isErr != nil {
				var re *RcodeError
				if want, ok := tc.isErr.(*RcodeError); ok {
					if !errors.As(err, &re) || *re != *want {
						t.Errorf("error %v, want %v", err, tc.isErr)
					}
				} else if !errors.Is(err, tc.isErr) {
					t.Errorf("error %v, want %v", err, tc.isErr)
				}
			} else if err != nil {
				t.Error(err)
			}
			var s []string
			for _, a := range got {
				s = append(s, a.String())
			}
			if d := cmp.Diff(tc.want, s); d != "" {
				t.Errorf("addresses (-want +got)\n%s", d)
			}
			if d := cmp.Diff(tc.asked, p.questions()[before:]); d != "" {
				t.Errorf("questions (-want +got)\n%s", d)
			}
		})
	}
}

// TestPeerSearch: a host name looked up with resolv.conf's search list
// and ndots, A and AAAA at once, against miekg/dns's server.
func TestPeerSearch(t *testing.T) {
	p := startPeer(t)
	ctx := context.Background()
	for _, tc := range []struct {
		host  string
		conf  Conf
		want  []string
		asked []string // sorted
	}{
		// One label, fewer dots than ndots: the search list first.
		{"lanhost", Conf{Search: []string{"lan"}, Ndots: 1}, []string{"192.168.1.20", "fd00::20"},
			[]string{"lanhost.lan. A udp", "lanhost.lan. AAAA udp"}},
		{"lanhost.lan", Conf{Search: []string{"lan"}, Ndots: 1}, []string{"192.168.1.20", "fd00::20"},
			[]string{"lanhost.lan. A udp", "lanhost.lan. AAAA udp"}},
		// As it is first, then with the search domains.
		{"lanhost", Conf{Search: []string{"lan"}, Ndots: 0}, []string{"192.168.1.20", "fd00::20"},
			[]string{"lanhost. A udp", "lanhost. AAAA udp", "lanhost.lan. A udp", "lanhost.lan. AAAA udp"}},
		{"v4", Conf{Search: []string{"nowhere", "example"}, Ndots: 1}, []string{"192.0.2.4"},
			[]string{"v4.example. A udp", "v4.example. AAAA udp", "v4.nowhere. A udp", "v4.nowhere. AAAA udp"}},
		// Rooted: no search.
		{"lanhost.", Conf{Search: []string{"lan"}, Ndots: 1}, nil,
			[]string{"lanhost. A udp", "lanhost. AAAA udp"}},
		{"alias.example", Conf{Ndots: 1}, []string{"2001:db8::80"},
			[]string{"alias.example. A udp", "alias.example. AAAA udp"}},
	} {
		t.Run(tc.host, func(t *testing.T) {
			before := len(p.questions())
			tc.conf.Servers = []netip.AddrPort{p.addr}
			got, err := lookupConf(ctx, tc.conf, tc.host)
			var s []string
			for _, a := range got {
				s = append(s, a.String())
			}
			if d := cmp.Diff(tc.want, s); d != "" {
				t.Errorf("addresses (-want +got)\n%s", d)
			}
			if (err != nil) != (tc.want == nil) || err != nil && !NotFound(err) {
				t.Errorf("error %v", err)
			}
			asked := p.questions()[before:]
			slices.Sort(asked)
			if d := cmp.Diff(tc.asked, asked); d != "" {
				t.Errorf("questions (-want +got)\n%s", d)
			}
		})
	}
}
