package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NS is a network namespace, /run/netns/Name.
type NS struct{ Name string }

// Cmd returns a command that runs name with args inside the namespace
// (through `ip netns exec`, which execs it: the process's pid is that of
// the command itself).
func (n *NS) Cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs name with args inside the namespace, waits for it (at most
// one minute), and returns its combined output; it fails the test with
// that output when the command fails.
func (n *NS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Output(name, args...)
	if err != nil {
		t.Fatalf("lab: %s: %s %s: %v\n%s", n.Name, name, strings.Join(args, " "), err, out)
	}
	return out
}

// Output runs name with args inside the namespace (at most one minute)
// and returns its combined output and error, without failing the test:
// for commands expected to fail.
func (n *NS) Output(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := n.Cmd(ctx, name, args...)
	c.WaitDelay = time.Second
	out, err := c.CombinedOutput()
	return string(out), err
}

// Do runs f with the calling goroutine locked to its OS thread and that
// thread inside the namespace; sockets created in f belong to the
// namespace and stay there after Do returns. Goroutines started by f run
// in the test's own namespace. The thread goes back to its namespace
// afterwards, also when f panics or calls t.Fatal; if that fails the
// thread stays locked so the runtime discards it with the goroutine.
func (n *NS) Do(t testing.TB, f func()) {
	t.Helper()
	if err := n.do(f); err != nil {
		t.Fatalf("lab: %v", err)
	}
}

// DoErr is Do for goroutines other than the test's (which must not call
// t.Fatal): it returns the error entering or leaving the namespace.
func (n *NS) DoErr(f func()) error { return n.do(f) }

// do is Do without a testing.TB: it returns errors entering or leaving
// the namespace.
func (n *NS) do(f func()) (err error) {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/run/netns", n.Name))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: %w", n.Name, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", n.Name, err)
	}
	defer func() {
		if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr != nil {
			// Leave the thread locked: the runtime kills it when the
			// goroutine exits, so no other goroutine runs in n.
			if err == nil {
				err = fmt.Errorf("setns back from %s: %w", n.Name, rerr)
			}
			return
		}
		runtime.UnlockOSThread()
	}()
	f()
	return nil
}

// sysctls writes net sysctls (paths under /proc/sys) inside n.
func (n *NS) sysctls(kv map[string]string) error {
	var werr error
	err := n.do(func() {
		for k, v := range kv {
			if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
				werr = errors.Join(werr, err)
			}
		}
	})
	return errors.Join(err, werr)
}

// ErrTimeout is returned by Proc.Wait when the process is still running.
var ErrTimeout = errors.New("lab: timed out")

// Proc is a long-lived process started by NS.Start.
type Proc struct {
	ns   *NS
	name string
	cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{}
	err  error // set before done is closed
}

// Start starts name with args inside the namespace, with stdout and
// stderr captured (Output). A t.Cleanup stops it (SIGTERM, then SIGKILL
// after 3 s) and logs its output if the test failed.
func (n *NS) Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	p := &Proc{ns: n, name: n.Name + ": " + name, done: make(chan struct{})}
	p.cmd = n.Cmd(context.Background(), name, args...)
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = &p.out
	// A child that keeps the pipes open must not block Wait forever.
	p.cmd.WaitDelay = time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("lab: %s: start %s: %v", n.Name, name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.terminate(3 * time.Second)
		if t.Failed() {
			t.Logf("lab: output of %s %s (pid %d, %v):\n%s", p.name,
				strings.Join(args, " "), p.Pid(), p.state(), p.Output())
		}
	})
	return p
}

// Output returns what the process wrote to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Pid is the process id (in the test's pid namespace).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits at most timeout for the process to exit and returns its
// exit error (nil for status 0), or ErrTimeout when it is still running.
func (p *Proc) Wait(timeout time.Duration) error {
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	select {
	case <-p.done:
		return p.err
	case <-tm.C:
		return fmt.Errorf("%w: %s still running after %v", ErrTimeout, p.name, timeout)
	}
}

// Stop sends SIGTERM and waits for the exit (at most 5 s, then SIGKILL).
// It returns the exit error (nil when the process exited with status 0,
// also when it had exited before) or an ErrTimeout error when it had to
// be killed.
func (p *Proc) Stop(t testing.TB) error {
	t.Helper()
	if p.Exited() {
		return p.err
	}
	p.Signal(syscall.SIGTERM)
	if err := p.Wait(5 * time.Second); !errors.Is(err, ErrTimeout) {
		return err
	}
	p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%w: %s did not exit within 5s of SIGTERM; killed", ErrTimeout, p.name)
}

func (p *Proc) terminate(grace time.Duration) {
	if p.Exited() {
		return
	}
	p.Signal(syscall.SIGTERM)
	if p.Wait(grace) != nil && !p.Exited() {
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *Proc) state() string {
	if !p.Exited() {
		return "running"
	}
	if p.err != nil {
		return p.err.Error()
	}
	return "exit status 0"
}

// syncBuffer is a bytes.Buffer safe for the writer goroutines of exec
// and readers in the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
