package pcpclient

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient/pcptest"
)

// TestValidationDrops covers REQUIREMENT 6: answers from another address or
// port, with the wrong nonce, opcode or internal port, with the R bit clear,
// truncated or oversized are dropped and counted; the request goes on
// (same nonce) and takes the first valid answer.
func TestValidationDrops(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode pcptest.Mode
	}{
		{"other port", pcptest.FromOtherPort},
		{"other address", pcptest.FromOtherAddr},
		{"wrong nonce", pcptest.WrongNonce},
		{"wrong opcode", pcptest.WrongOpcode},
		{"wrong internal port", pcptest.WrongPort},
		{"R bit clear", pcptest.RBitClear},
		{"truncated", pcptest.Truncated},
		{"oversized", pcptest.Oversized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFake(t)
			c := newClient(t, srv, func(cfg *Config) { cfg.Linger = time.Minute })
			srv.SetMode(tc.mode)
			r := MapRequest{Protocol: 17, Internal: netip.MustParseAddrPort("127.0.0.1:4000"), Lifetime: 60}
			_, err := c.Map(ctxT(t, 200*time.Millisecond), r)
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("err = %v, want ErrTimeout", err)
			}
			st := c.Status()
			if st.Dropped == 0 || st.Received != 0 {
				t.Fatalf("status %+v: want drops and no valid answer", st)
			}
			// The request lingers in the background; once the server
			// behaves, an identical call joins it and gets the answer.
			srv.SetMode(pcptest.Normal)
			res, err := c.Map(ctxT(t, 3*time.Second), r)
			if err != nil {
				t.Fatal(err)
			}
			reqs := srv.Requests()
			for i, q := range reqs {
				if q.PCP.Map.Nonce != res.Nonce {
					t.Errorf("transmission %d used another nonce", i)
				}
			}
		})
	}
}

// TestDropsUnsolicitedJunk: datagrams nobody asked for are counted.
func TestDropsUnsolicitedJunk(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, nil)
	if _, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:81"), Lifetime: 60}); err != nil {
		t.Fatal(err)
	}
	to := srv.Requests()[0].From
	before := c.Status().Dropped
	junk := [][]byte{
		{2},              // too short
		make([]byte, 26), // not a multiple of 4, R clear
		append([]byte{2, 0x81}, make([]byte, 58)...),       // MAP answer nobody asked for
		append([]byte{7, 0x81, 0, 1}, make([]byte, 20)...), // UNSUPP_VERSION 7 while nothing is pending
		append([]byte{2, 0x85}, make([]byte, 22)...),       // unknown opcode
		append([]byte{0, 0x80, 0, 0}, make([]byte, 8)...),  // NAT-PMP answer to a PCP client
		append([]byte{2, 0x80, 0, 2}, make([]byte, 20)...), // ANNOUNCE with an error
	}
	for i, b := range junk {
		if err := srv.SendRaw(to, b); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, func() bool { return c.Status().Dropped >= before+uint64(i+1) }, fmt.Sprintf("junk %d not counted", i))
	}
}

// TestErrorLifetimes covers REQUIREMENT 7: each error result comes back as
// *ResultError with its lifetime; the same request is not sent again while
// the lifetime runs (ErrBackoff wrapping the *ResultError), and is after.
// Lifetimes are capped: 30 min for short errors (7, 8, 10, 11), 24 h for
// long ones.
func TestErrorLifetimes(t *testing.T) {
	codes := []pcp.ResultCode{
		pcp.NotAuthorized, pcp.MalformedRequest, pcp.UnsuppOpcode, pcp.UnsuppOption, pcp.MalformedOption,
		pcp.NetworkFailure, pcp.NoResources, pcp.UnsuppProtocol, pcp.UserExQuota, pcp.CannotProvideExternal,
		pcp.AddressMismatch, pcp.ExcessiveRemotePeers,
	}
	for _, code := range codes {
		t.Run(code.String(), func(t *testing.T) {
			clk := newFakeClock()
			srv := newFake(t)
			c := newClient(t, srv, func(cfg *Config) { cfg.Now = clk.Now })
			srv.SetError(code, 120)
			r := MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:8080"), Lifetime: 600}
			_, err := c.Map(ctxT(t, 3*time.Second), r)
			var re *ResultError
			if !errors.As(err, &re) || re.Code != code || re.Lifetime != 120 || re.Op != pcp.OpMap || !re.Until.Equal(clk.Now().Add(120*time.Second)) {
				t.Fatalf("err = %#v", err)
			}
			n := srv.Received()
			clk.Add(119 * time.Second)
			_, err = c.Map(ctxT(t, 3*time.Second), r)
			var re2 *ResultError
			if !errors.Is(err, ErrBackoff) || !errors.As(err, &re2) || re2.Code != code {
				t.Fatalf("within the lifetime: %v", err)
			}
			if srv.Received() != n {
				t.Fatal("the request was sent again within the error lifetime")
			}
			// Another request (other port) is not held back.
			if _, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:8081"), Lifetime: 600}); errors.Is(err, ErrBackoff) {
				t.Fatal("an unrelated request was held back")
			}
			clk.Add(2 * time.Second)
			srv.SetMode(pcptest.Normal)
			if _, err := c.Map(ctxT(t, 3*time.Second), r); err != nil {
				t.Fatalf("after the lifetime: %v", err)
			}
		})
	}
	t.Run("caps", func(t *testing.T) {
		clk := newFakeClock()
		srv := newFake(t)
		c := newClient(t, srv, func(cfg *Config) { cfg.Now = clk.Now })
		for _, tc := range []struct {
			code pcp.ResultCode
			want time.Duration
		}{
			{pcp.NoResources, 30 * time.Minute},
			{pcp.NotAuthorized, 24 * time.Hour},
		} {
			srv.SetError(tc.code, 1<<30)
			_, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 17, Internal: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(tc.code)+1000), Lifetime: 60})
			var re *ResultError
			if !errors.As(err, &re) || re.Until.Sub(clk.Now()) != tc.want {
				t.Errorf("%v: %v, hold %v want %v", tc.code, err, re.Until.Sub(clk.Now()), tc.want)
			}
		}
	})
	t.Run("delete NO_RESOURCES is done", func(t *testing.T) {
		srv := newFake(t)
		c := newClient(t, srv, nil)
		// The fake answers NO_RESOURCES (lifetime 30) for a mapping it
		// does not have, as miniupnpd does.
		var n pcp.Nonce
		n[0] = 1
		for i := 0; i < 2; i++ {
			if err := c.Delete(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:7000"), Nonce: n}); err != nil {
				t.Fatalf("delete %d: %v", i, err)
			}
		}
		if srv.Received() != 2 {
			t.Errorf("server got %d deletes, want 2 (no backoff on NO_RESOURCES for a delete)", srv.Received())
		}
	})
	t.Run("delete NOT_AUTHORIZED", func(t *testing.T) {
		srv := newFake(t)
		c := newClient(t, srv, nil)
		res, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:7001"), Lifetime: 60})
		if err != nil {
			t.Fatal(err)
		}
		bad := res.Nonce
		bad[0] ^= 1
		err = c.Delete(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:7001"), Nonce: bad})
		var re *ResultError
		if !errors.As(err, &re) || re.Code != pcp.NotAuthorized {
			t.Fatalf("delete with a wrong nonce: %v", err)
		}
	})
}

// TestUnsuppVersionOther: a server that wants a version we do not speak.
func TestUnsuppVersionOther(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, nil)
	srv.SetMode(pcptest.Silent)
	done := make(chan error, 1)
	go func() {
		_, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:82"), Lifetime: 60})
		done <- err
	}()
	eventually(t, 2*time.Second, func() bool { return srv.Received() > 0 }, "no request")
	to := srv.Requests()[0].From
	srv.SendRaw(to, append([]byte{3, 0x81, 0, byte(pcp.UnsuppVersion)}, make([]byte, 20)...))
	err := <-done
	var re *ResultError
	if !errors.As(err, &re) || re.Code != pcp.UnsuppVersion {
		t.Fatalf("err = %v", err)
	}
}

func ExampleNextRenewal() {
	granted := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	first := NextRenewal(granted, time.Hour, 0, time.Time{}, 0.5)
	second := NextRenewal(granted, time.Hour, 1, first, 0.5)
	fmt.Println(first.Sub(granted), second.Sub(granted))
	// Output: 33m45s 46m52.5s
}

// TestHandleGarbage: random and mutated datagrams from the server's
// address never panic and are never taken as answers.
func TestHandleGarbage(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, nil)
	res, err := c.Map(ctxT(t, 3*time.Second), MapRequest{Protocol: 6, Internal: netip.MustParseAddrPort("127.0.0.1:80"), Lifetime: 60})
	if err != nil {
		t.Fatal(err)
	}
	valid := (&pcp.Response{Opcode: pcp.OpMap, Lifetime: 60, Map: &pcp.Map{Nonce: res.Nonce, Protocol: 6, InternalPort: 80, ExternalPort: 80, ExternalAddr: netip.MustParseAddr("203.0.113.1")}}).AppendMarshal(nil)
	seed := uint64(1)
	next := func() byte {
		seed = seed*6364136223846793005 + 1442695040888963407
		return byte(seed >> 56)
	}
	c.mu.Lock()
	s := c.servers[0]
	c.mu.Unlock()
	for i := 0; i < 5000; i++ {
		var b []byte
		if i%2 == 0 {
			b = make([]byte, int(next())%64*4+int(next())%4)
			for j := range b {
				b[j] = next()
			}
			if len(b) > 1 && i%4 == 0 {
				b[0] = []byte{0, 2}[i%8/4]
				b[1] |= 0x80
			}
		} else {
			b = append([]byte(nil), valid...)
			b[int(next())%len(b)] ^= 1 << (next() % 8)
		}
		c.handle(b, s.addr, s)
		c.handle(b, s.addr, nil)
	}
	if st := c.Status(); st.Dropped == 0 {
		t.Errorf("status %+v", st)
	}
}
