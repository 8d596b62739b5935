package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var build struct {
	once sync.Once
	path string
	err  error
}

// PcpgwBinary builds the module's cmd/pcpgw once per test binary and
// returns the binary's path; it fails the test when the build fails.
// PCPGW_BIN, when set, names a binary to use instead (a release build, say).
// The build lives in $TMPDIR/pcpgw-lab-bin-<pid>; each build removes the
// directories of test processes that are gone (a library cannot hook the
// end of the test binary).
func PcpgwBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		if b := os.Getenv("PCPGW_BIN"); b != "" {
			build.path, build.err = filepath.Abs(b)
			return
		}
		build.path, build.err = buildPcpgw()
	})
	if build.err != nil {
		t.Fatalf("lab: %v", build.err)
	}
	return build.path
}

// moduleRoot finds the pcpgw module's root: the directory of `go env
// GOMOD` or, for a nested test module, the nearest parent holding go.mod
// and cmd/pcpgw.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	for d := filepath.Dir(gomod); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(filepath.Join(d, "cmd", "pcpgw")); err == nil && fi.IsDir() {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no cmd/pcpgw in the module of %s or above", gomod)
		}
	}
}

func buildPcpgw() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	removeStaleBinDirs()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("pcpgw-lab-bin-%d", os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "pcpgw")
	// Built as `make build` does (static, stripped): what routers run.
	c := exec.Command("go", "build", "-trimpath", "-gcflags=github.com/pcpgw/pcpgw/...=-l", "-ldflags=-s -w", "-o", bin, "./cmd/pcpgw")
	c.Dir = root
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := c.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build ./cmd/pcpgw in %s: %v\n%s", root, err, out)
	}
	return bin, nil
}

// removeStaleBinDirs removes the pcpgw-lab-bin-<pid> directories of
// processes that no longer run.
func removeStaleBinDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pcpgw-lab-bin-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "pcpgw-lab-bin-"))
		if err == nil && pid != os.Getpid() && !alive(pid) {
			os.RemoveAll(d)
		}
	}
}

// maxSocketPath is the longest unix socket path Linux takes (sun_path
// is 108 bytes with the terminating NUL).
const maxSocketPath = 107

// Pcpgw is `pcpgw run` in the lab's cpe namespace.
type Pcpgw struct {
	*Proc
	Socket   string // its control socket
	StateDir string // its --state-dir
}

// StartPcpgw runs `pcpgw run --lan <CPELANIf> --wan <CPEWANIf> [--wan6
// <CPEWAN6If>] --state-dir <Dir>/pcpgw --socket <Dir>/pcpgw.sock ARGS...` in cpe and waits (at most
// 10 s) until its control socket accepts a connection; it fails the test
// with the process's output when it exits or the socket does not answer.
func (l *Lab) StartPcpgw(t testing.TB, args ...string) *Pcpgw {
	t.Helper()
	bin := PcpgwBinary(t)
	p := &Pcpgw{
		Socket:   filepath.Join(l.Dir, "pcpgw.sock"),
		StateDir: filepath.Join(l.Dir, "pcpgw"),
	}
	if len(p.Socket) > maxSocketPath {
		// A long TMPDIR or test name: a unix socket path holds at most
		// 107 bytes.
		d, err := os.MkdirTemp("", "pcpgw-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		p.Socket = filepath.Join(d, "pcpgw.sock")
	}
	if err := os.MkdirAll(p.StateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	base := []string{"run", "--lan", l.CPELANIf, "--wan", l.CPEWANIf}
	if l.CPEWAN6If != l.CPEWANIf {
		base = append(base, "--wan6", l.CPEWAN6If)
	}
	p.Proc = l.CPE.Start(t, bin, append(append(base,
		"--state-dir", p.StateDir, "--socket", p.Socket), args...)...)
	// Unix sockets are not network-namespaced: dial from here.
	ready := poll(10*time.Second, func() bool {
		if p.Exited() {
			return true
		}
		c, err := net.DialTimeout("unix", p.Socket, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	if !ready || p.Exited() {
		t.Fatalf("lab: pcpgw's control socket %s does not answer within 10s (%s):\n%s", p.Socket, p.state(), p.Output())
	}
	return p
}

// CLI runs `pcpgw ARGS... --socket <Socket>` in cpe and returns its
// stdout; it fails the test with stdout and stderr when it fails.
func (p *Pcpgw) CLI(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := p.ns.Cmd(ctx, PcpgwBinary(t), append(append([]string(nil), args...), "--socket", p.Socket)...)
	var stderr syncBuffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("lab: pcpgw %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}
