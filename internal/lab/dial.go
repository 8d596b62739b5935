package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// DialContext opens a connection from inside the namespace, for clients
// whose background goroutines dial (Do covers only the calling
// goroutine): pass it as a net.Dialer-like Dial function. Each call runs
// on a goroutine locked to an OS thread moved into n; the goroutine exits
// still locked, so the runtime discards that thread and nothing else ever
// runs in n by accident. That thread is never the main one: the runtime
// cannot end the main thread and would leave it in n for good, where the
// lab's cleanup (killing every process in its namespaces, as `ip netns
// pids` sees the main thread's) would kill the test binary.
func (n *NS) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	var dial func()
	dial = func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if unix.Gettid() == os.Getpid() {
			// The main thread: keep it (locked, so the next goroutine
			// gets another thread) and dial from a new goroutine.
			done := make(chan struct{})
			go func() { defer close(done); dial() }()
			<-done
			runtime.UnlockOSThread()
			return
		}
		f, err := os.Open(filepath.Join("/run/netns", n.Name))
		if err != nil {
			ch <- result{err: fmt.Errorf("lab: netns %s: %w", n.Name, err)}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("lab: setns %s: %w", n.Name, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		ch <- result{c, err}
	}
	go dial()
	r := <-ch
	return r.c, r.err
}
