package pcpclient

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/pcpclient/pcptest"
)

// flakyConn is a real socket whose first fails writes return EPERM, as
// sendto does when netfilter drops a locally sent datagram (a conntrack
// insertion clash between concurrent first packets of one UDP flow).
type flakyConn struct {
	packetConn
	mu    sync.Mutex
	fails int
}

func (f *flakyConn) WriteTo(b []byte, to netip.AddrPort) (int, error) {
	f.mu.Lock()
	fail := f.fails > 0
	if fail {
		f.fails--
	}
	f.mu.Unlock()
	if fail {
		return 0, &net.OpError{Op: "write", Net: "udp", Err: os.NewSyscallError("sendto", syscall.EPERM)}
	}
	return f.packetConn.WriteTo(b, to)
}

// TestSendErrorRetransmits: a transmission that fails locally is a lost
// transmission, not the end of the request. With a single server address
// the request is retransmitted on its §8.1.1 schedule and its answer is
// taken; before the fix the client gave the address up after one failed
// write, dropped its answers and waited 15 minutes (RFC 7488's pause
// between rounds), so concurrent Maps hung with Status.Sent stuck.
func TestSendErrorRetransmits(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, func(cfg *Config) {
		cfg.dial = func(s netip.AddrPort) (packetConn, netip.Addr, error) {
			pc, local, err := dialUDP(s)
			if err != nil {
				return nil, local, err
			}
			return &flakyConn{packetConn: pc, fails: 20}, local, nil
		}
	})
	const n = 50
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = c.Map(ctx, MapRequest{Protocol: 17, Internal: netip.AddrPortFrom(lanHost, uint16(30000+i)), ThirdParty: true, Lifetime: 600})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("map %d: %v", i, err)
		}
	}
	if st := c.Status(); st.Received != n {
		t.Errorf("status %+v, want %d answers", st, n)
	}
}

// TestServerChangeWhilePending: the server's address changes (the DHCP
// hook rewrote the servers file) while a request is pending; its next
// transmission finds the old socket closed and goes to the new server
// instead of giving up for 15 minutes.
func TestServerChangeWhilePending(t *testing.T) {
	old, fresh := newFake(t), newFake(t)
	old.SetMode(pcptest.Silent)
	path := filepath.Join(t.TempDir(), "servers")
	if err := os.WriteFile(path, []byte(old.Addr().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{ServersFile: path, IRT: 30 * time.Millisecond, MRT: 200 * time.Millisecond, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.Map(ctxT(t, 5*time.Second), MapRequest{Protocol: 17, Internal: netip.AddrPortFrom(lanHost, 4000), ThirdParty: true, Lifetime: 600})
		done <- err
	}()
	eventually(t, 2*time.Second, func() bool { return old.Received() > 0 }, "request never reached the first server")
	if err := os.WriteFile(path, []byte(fresh.Addr().String()+"\n# moved\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.refreshServers(context.Background())
	if err := <-done; err != nil {
		t.Fatalf("pending Map after the server moved: %v", err)
	}
	if fresh.Received() == 0 {
		t.Error("the new server never got the request")
	}
}
