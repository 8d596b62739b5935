package dnsq

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// fakeServer listens on UDP and TCP on one port of 127.0.0.1 and answers
// each query with the packets its reply function makes of it (UDP: every
// one; TCP: the first). It counts the queries; its cleanup waits for its
// goroutines.
type fakeServer struct {
	addr     netip.AddrPort
	udp, tcp atomic.Int32
	reply    func(q *dns.Msg, tcp bool) [][]byte
}

func newFakeServer(t *testing.T, reply func(q *dns.Msg, tcp bool) [][]byte) *fakeServer {
	t.Helper()
	s := &fakeServer{reply: reply}
	var (
		uc  *net.UDPConn
		ln  *net.TCPListener
		err error
	)
	for range 20 { // a port free for both UDP and TCP
		if uc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		s.addr = uc.LocalAddr().(*net.UDPAddr).AddrPort()
		if ln, err = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(s.addr)); err == nil {
			break
		}
		uc.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 512)
		for {
			n, from, err := uc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			s.udp.Add(1)
			var q dns.Msg
			if q.Unpack(buf[:n]) != nil {
				continue
			}
			for _, p := range s.reply(&q, false) {
				uc.WriteToUDPAddrPort(p, from)
			}
		}
	})
	wg.Go(func() {
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				b := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, b); err != nil {
					return
				}
				s.tcp.Add(1)
				var q dns.Msg
				if q.Unpack(b) != nil {
					return
				}
				if ps := s.reply(&q, true); len(ps) > 0 {
					c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(ps[0]))), ps[0]...))
				}
			})
		}
	})
	t.Cleanup(func() {
		uc.Close()
		ln.Close()
		wg.Wait()
	})
	return s
}

// reply packs an answer to q (compressed) with the records given in
// presentation format; edit may change it first.
func reply(q *dns.Msg, rcode int, rrs []string, edit func(*dns.Msg)) []byte {
	m := new(dns.Msg)
	m.SetRcode(q, rcode)
	m.Compress = true
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	if edit != nil {
		edit(m)
	}
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

// TestQuery: the checks of an answer, with a fake server on loopback:
// packets that do not answer the query are ignored and the wait goes on;
// a truncated answer is asked again over TCP; the answer's records and
// code decide.
func TestQuery(t *testing.T) {
	const name = "host.example."
	good := func(q *dns.Msg) []byte { return reply(q, 0, []string{name + " 60 IN AAAA 2001:db8::1"}, nil) }
	for _, tc := range []struct {
		desc     string
		reply    func(q *dns.Msg, tcp bool) [][]byte
		want     []netip.Addr
		isErr    error  // when want is nil
		errText  string // in the error, when not ""
		udp, tcp int32  // queries the server saw
	}{
		{"answer", func(q *dns.Msg, _ bool) [][]byte { return [][]byte{good(q)} }, addrs("2001:db8::1"), nil, "", 1, 0},
		{"wrong ID first", func(q *dns.Msg, _ bool) [][]byte {
			return [][]byte{reply(q, 0, []string{name + " 60 IN AAAA 2001:db8::bad"}, func(m *dns.Msg) { m.Id++ }), good(q)}
		}, addrs("2001:db8::1"), nil, "", 1, 0},
		{"the query echoed first (QR clear)", func(q *dns.Msg, _ bool) [][]byte {
			b, _ := q.Pack()
			return [][]byte{b, good(q)}
		}, addrs("2001:db8::1"), nil, "", 1, 0},
		{"wrong question first", func(q *dns.Msg, _ bool) [][]byte {
			return [][]byte{reply(q, 0, []string{"other.example. 60 IN AAAA 2001:db8::bad"}, func(m *dns.Msg) { m.Question[0].Name = "other.example." }), good(q)}
		}, addrs("2001:db8::1"), nil, "", 1, 0},
		{"wrong type asked first", func(q *dns.Msg, _ bool) [][]byte {
			return [][]byte{reply(q, 0, []string{name + " 60 IN A 192.0.2.1"}, func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeA }), good(q)}
		}, addrs("2001:db8::1"), nil, "", 1, 0},
		{"NXDOMAIN with a wrong ID first", func(q *dns.Msg, _ bool) [][]byte {
			return [][]byte{reply(q, dns.RcodeNameError, nil, func(m *dns.Msg) { m.Id ^= 0x8000 }), good(q)}
		}, addrs("2001:db8::1"), nil, "", 1, 0},
		{"garbage first", func(q *dns.Msg, _ bool) [][]byte { return [][]byte{{1, 2, 3}, good(q)} }, addrs("2001:db8::1"), nil, "", 1, 0},
		{"only stray packets", func(q *dns.Msg, _ bool) [][]byte {
			return [][]byte{reply(q, 0, nil, func(m *dns.Msg) { m.Id++ }), {0}}
		}, nil, context.DeadlineExceeded, "2 stray packets ignored", 1, 0},
		{"no answer", func(q *dns.Msg, _ bool) [][]byte { return nil }, nil, context.DeadlineExceeded, "no answer", 1, 0},
		{"truncated: TCP", func(q *dns.Msg, tcp bool) [][]byte {
			if !tcp {
				return [][]byte{reply(q, 0, nil, func(m *dns.Msg) { m.Truncated = true })}
			}
			return [][]byte{reply(q, 0, []string{name + " 60 IN AAAA 2001:db8::1", name + " 60 IN AAAA 2001:db8::2"}, nil)}
		}, addrs("2001:db8::1", "2001:db8::2"), nil, "", 1, 1},
		{"truncated: TCP answer with a wrong ID", func(q *dns.Msg, tcp bool) [][]byte {
			if !tcp {
				return [][]byte{reply(q, 0, nil, func(m *dns.Msg) { m.Truncated = true })}
			}
			return [][]byte{reply(q, 0, []string{name + " 60 IN AAAA 2001:db8::1"}, func(m *dns.Msg) { m.Id++ })}
		}, nil, ErrStray, "over TCP", 1, 1},
		{"truncated: TCP closed without an answer", func(q *dns.Msg, tcp bool) [][]byte {
			if !tcp {
				return [][]byte{reply(q, 0, nil, func(m *dns.Msg) { m.Truncated = true })}
			}
			return nil
		}, nil, io.EOF, "over TCP", 1, 1},
		{"CNAME chain", func(q *dns.Msg, _ bool) [][]byte {
			return [][]byte{reply(q, 0, []string{name + " 60 IN CNAME a.example.", "a.example. 60 IN CNAME b.example.", "b.example. 60 IN AAAA 2001:db8::b"}, nil)}
		}, addrs("2001:db8::b"), nil, "", 1, 0},
		{"CNAME loop", func(q *dns.Msg, _ bool) [][]byte {
			return [][]byte{reply(q, 0, []string{name + " 60 IN CNAME a.example.", "a.example. 60 IN CNAME " + name}, nil)}
		}, nil, ErrCNAMELoop, "", 1, 0},
		{"wrong type", func(q *dns.Msg, _ bool) [][]byte {
			return [][]byte{reply(q, 0, []string{name + " 60 IN A 192.0.2.1"}, nil)}
		}, nil, ErrNoData, "", 1, 0},
		{"NXDOMAIN", func(q *dns.Msg, _ bool) [][]byte { return [][]byte{reply(q, dns.RcodeNameError, nil, nil)} }, nil, ErrNXDomain, "", 1, 0},
		{"SERVFAIL", func(q *dns.Msg, _ bool) [][]byte { return [][]byte{reply(q, dns.RcodeServerFailure, nil, nil)} }, nil, ErrServFail, "", 1, 0},
		{"REFUSED", func(q *dns.Msg, _ bool) [][]byte { return [][]byte{reply(q, dns.RcodeRefused, nil, nil)} }, nil, &RcodeError{}, "REFUSED", 1, 0},
		{"malformed answer", func(q *dns.Msg, _ bool) [][]byte { b := good(q); return [][]byte{b[:len(b)-3]} }, nil, ErrMalformed, "", 1, 0},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s := newFakeServer(t, tc.reply)
			const timeout = 300 * time.Millisecond
			start := time.Now()
			got, err := Query(context.Background(), s.addr, "Host.Example", TypeAAAA, timeout)
			if took := time.Since(start); took > timeout+time.Second {
				t.Errorf("took %v, timeout %v", took, timeout)
			}
			if tc.want != nil {
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
					t.Errorf("(-want +got)\n%s", d)
				}
			} else {
				var re *RcodeError
				if _, ok := tc.isErr.(*RcodeError); ok && !errors.As(err, &re) || !ok && !errors.Is(err, tc.isErr) {
					t.Errorf("error %v, want %v", err, tc.isErr)
				}
				if err != nil && !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("error %q does not say %q", err, tc.errText)
				}
			}
			if u, tcp := s.udp.Load(), s.tcp.Load(); u != tc.udp || tcp != tc.tcp {
				t.Errorf("server saw %d UDP and %d TCP queries, want %d and %d", u, tcp, tc.udp, tc.tcp)
			}
		})
	}
}

// TestQueryIDs: every query has its own random ID.
func TestQueryIDs(t *testing.T) {
	var mu sync.Mutex
	ids := map[uint16]bool{}
	s := newFakeServer(t, func(q *dns.Msg, _ bool) [][]byte {
		mu.Lock()
		ids[q.Id] = true
		mu.Unlock()
		return [][]byte{reply(q, dns.RcodeNameError, nil, nil)}
	})
	for range 20 {
		if _, err := Query(context.Background(), s.addr, "x.example", TypeA, time.Second); !errors.Is(err, ErrNXDomain) {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) < 18 { // 20 draws of 16 bits: a repeat is rare, two are rarer
		t.Errorf("%d IDs in 20 queries", len(ids))
	}
}

// TestLookup: the servers are asked in turn, and the first answer with
// addresses wins; NXDOMAIN moves on too; the errors of all are joined;
// the caller's context bounds it all.
func TestLookup(t *testing.T) {
	nx := newFakeServer(t, func(q *dns.Msg, _ bool) [][]byte { return [][]byte{reply(q, dns.RcodeNameError, nil, nil)} })
	ok := newFakeServer(t, func(q *dns.Msg, _ bool) [][]byte {
		return [][]byte{reply(q, 0, []string{q.Question[0].Name + " 60 IN A 192.0.2.9"}, nil)}
	})
	silent := newFakeServer(t, func(q *dns.Msg, _ bool) [][]byte { return nil })
	ctx := context.Background()

	got, err := Lookup(ctx, []netip.AddrPort{nx.addr, ok.addr}, "x.example", TypeA, time.Second)
	if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("192.0.2.9") {
		t.Errorf("NXDOMAIN then an answer: %v, %v", got, err)
	}
	if nx.udp.Load() != 1 || ok.udp.Load() != 1 {
		t.Errorf("asked %d and %d times", nx.udp.Load(), ok.udp.Load())
	}
	_, err = Lookup(ctx, []netip.AddrPort{nx.addr, silent.addr}, "x.example", TypeA, 200*time.Millisecond)
	if !errors.Is(err, ErrNXDomain) || !errors.Is(err, context.DeadlineExceeded) || !NotFound(err) ||
		!strings.Contains(err.Error(), nx.addr.String()) || !strings.Contains(err.Error(), silent.addr.String()) {
		t.Errorf("NXDOMAIN and silence: %v", err)
	}
	if _, err := Lookup(ctx, nil, "x.example", TypeA, time.Second); !errors.Is(err, ErrNoServers) {
		t.Errorf("no servers: %v", err)
	}
	if _, err := Lookup(ctx, []netip.AddrPort{ok.addr}, "a..b", TypeA, time.Second); err == nil {
		t.Error("a bad name was asked")
	}

	// The caller's bound ends the lookup, whatever the timeout of one
	// query.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Lookup(cctx, []netip.AddrPort{silent.addr, silent.addr, silent.addr}, "x.example", TypeA, 10*time.Second)
	if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > 2*time.Second {
		t.Errorf("bounded by the context: %v after %v", err, took)
	}
	// Cancelled, not timed out.
	cctx, cancel = context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err = Query(cctx, silent.addr, "x.example", TypeA, 10*time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}

	// A port nobody listens on: ICMP port unreachable ends the query.
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	start = time.Now()
	_, err = Query(ctx, closedAddr, "x.example", TypeA, 5*time.Second)
	if took := time.Since(start); !errors.Is(err, syscall.ECONNREFUSED) || took > 2*time.Second {
		t.Errorf("closed port: %v after %v", err, took)
	}
}
