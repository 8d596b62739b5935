package clients

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/lab"
)

// Addresses of LAB.md.
var (
	lanHost   = netip.MustParseAddr(lab.LANHost4)
	cpeLAN    = netip.MustParseAddr(lab.CPELAN4)
	cgnPublic = netip.MustParseAddr(lab.CGNPublic4)
	netHost   = netip.MustParseAddr(lab.NetHost4)
)

// gateway is a lab with miniupnpd as the provider's CGN in isp and pcpgw
// on the CPE in nat444 mode, its upstream PCP server being the CGN.
type gateway struct {
	*lab.Lab
	cgn   *lab.Miniupnpd
	pcpgw *lab.Pcpgw
}

// newGateway builds the gateway and waits (at most 15 s) until pcpgw has
// learnt the provider's external address through PCP.
func newGateway(t *testing.T) *gateway {
	t.Helper()
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	g := &gateway{Lab: l}
	g.cgn = l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	g.pcpgw = l.StartPcpgw(t, "--pcp-server", lab.CGN4)
	lab.Eventually(t, 15*time.Second, func() bool { return g.status(t).External == cgnPublic.String() },
		"pcpgw never learnt the provider's external address %v: status %+v", cgnPublic, g.status(t))
	return g
}

func (g *gateway) status(t *testing.T) control.Status {
	t.Helper()
	var s control.Status
	if err := json.Unmarshal([]byte(g.pcpgw.CLI(t, "status", "--json")), &s); err != nil {
		t.Fatalf("pcpgw status --json: %v", err)
	}
	return s
}

func (g *gateway) list(t *testing.T) []control.Row {
	t.Helper()
	var rows []control.Row
	if err := json.Unmarshal([]byte(g.pcpgw.CLI(t, "list", "--json")), &rows); err != nil {
		t.Fatalf("pcpgw list --json: %v", err)
	}
	return rows
}

// row returns pcpgw's mapping of the LAN host's proto port, if any.
func (g *gateway) row(t *testing.T, proto string, port uint16) (control.Row, bool) {
	t.Helper()
	internal := netip.AddrPortFrom(lanHost, port).String()
	for _, r := range g.list(t) {
		if r.Proto == proto && r.Internal == internal {
			return r, true
		}
	}
	return control.Row{}, false
}

// service is a TCP or UDP service on a port of the LAN host that answers
// "hello from <port>" to every connection or datagram and records who
// reached it.
type service struct {
	port uint16
	mu   sync.Mutex
	from []netip.Addr
}

// serve runs a service on the LAN host's proto ("tcp" or "udp") port
// until the test ends.
func serve(t *testing.T, l *lab.Lab, proto string, port uint16) *service {
	t.Helper()
	s := &service{port: port}
	addr := netip.AddrPortFrom(lanHost, port).String()
	var wg sync.WaitGroup
	var closer interface{ Close() error }
	switch proto {
	case "tcp":
		var ln net.Listener
		var err error
		l.LAN.Do(t, func() { ln, err = net.Listen("tcp4", addr) })
		if err != nil {
			t.Fatal(err)
		}
		closer = ln
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				s.saw(c.RemoteAddr())
				fmt.Fprintf(c, "hello from %d\n", port)
				c.Close()
			}
		})
	case "udp":
		var pc net.PacketConn
		var err error
		l.LAN.Do(t, func() { pc, err = net.ListenPacket("udp4", addr) })
		if err != nil {
			t.Fatal(err)
		}
		closer = pc
		wg.Go(func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				s.saw(from)
				pc.WriteTo(fmt.Appendf(nil, "hello from %d\n", port), from)
			}
		})
	default:
		t.Fatalf("serve: unknown protocol %q", proto)
	}
	t.Cleanup(func() {
		closer.Close()
		wg.Wait()
	})
	return s
}

func (s *service) saw(a net.Addr) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return
	}
	s.mu.Lock()
	s.from = append(s.from, ap.Addr().Unmap())
	s.mu.Unlock()
}

// sawFrom reports whether the service was reached from addr.
func (s *service) sawFrom(addr netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.from {
		if a == addr {
			return true
		}
	}
	return false
}

// reach connects from ns to addr with proto and returns the first line
// the far end answers (for udp: the answer to one datagram), within 2 s.
func reach(t *testing.T, ns *lab.NS, proto string, addr netip.AddrPort) (string, error) {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.DialTimeout(proto, addr.String(), 2*time.Second) })
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if proto == "udp" {
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return "", err
		}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// reaches reports whether proto to addr from net answers the greeting of
// the LAN service on port.
func reaches(t *testing.T, g *gateway, proto string, addr netip.AddrPort, port uint16) bool {
	t.Helper()
	s, err := reach(t, g.Net, proto, addr)
	return err == nil && s == fmt.Sprintf("hello from %d", port)
}

var tsmapBuild struct {
	once sync.Once
	path string
	err  error
}

// tsmapBinary builds ./cmd/tsmap once per test binary, into binDir, and
// returns its path; it fails the test when the build fails.
func tsmapBinary(t *testing.T) string {
	t.Helper()
	tsmapBuild.once.Do(func() {
		dir := filepath.Join(binDir, "tsmap")
		c := exec.Command("go", "build", "-o", dir, "./cmd/tsmap")
		out, err := c.CombinedOutput()
		if err != nil {
			tsmapBuild.err = fmt.Errorf("go build ./cmd/tsmap: %v\n%s", err, out)
			return
		}
		tsmapBuild.path = dir
	})
	if tsmapBuild.err != nil {
		t.Fatal(tsmapBuild.err)
	}
	return tsmapBuild.path
}

// binDir holds the binaries the tests build, $TMPDIR/pcpgw-clients-<pid>;
// TestMain removes it, and those of test processes that died before
// removing theirs.
var binDir string

func TestMain(m *testing.M) {
	stale, _ := filepath.Glob(filepath.Join(os.TempDir(), "pcpgw-clients-*"))
	for _, d := range stale {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "pcpgw-clients-"))
		if _, gone := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil && os.IsNotExist(gone) {
			os.RemoveAll(d)
		}
	}
	binDir = filepath.Join(os.TempDir(), fmt.Sprintf("pcpgw-clients-%d", os.Getpid()))
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}
