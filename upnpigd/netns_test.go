package upnpigd

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway1"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/internal/mcast"
)

const childEnv = "PCPGW_UPNPIGD_NETNS_CHILD"

// TestSSDPDiscoveryNetns runs TestSSDPDiscoveryChild inside a throwaway
// network namespace holding a veth pair (192.0.2.1 for pcpgw, 192.0.2.100
// for the control point), so that real multicast SSDP discovery works
// without touching the host's interfaces. The child is this test binary run again
// with `ip netns exec`, so every goroutine of goupnp's clients lives in
// the namespace.
func TestSSDPDiscoveryNetns(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("inside the namespace already")
	}
	lab.RequireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("ip (iproute2) is missing")
	}
	var b [4]byte
	rand.Read(b[:])
	ns := fmt.Sprintf("upigd%x", b)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
		}
	})
	// u0 is the router's LAN interface, u1 a LAN host's, both in this
	// namespace (goupnp searches only from non-loopback interfaces). The
	// host's address being local too, u0 must accept packets from a local
	// source.
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "u0", "type", "veth", "peer", "name", "u1"},
		{"addr", "add", "192.0.2.1/24", "dev", "u0"},
		{"addr", "add", "192.0.2.100/24", "dev", "u1"},
		{"link", "set", "u0", "up"},
		{"link", "set", "u1", "up"},
		{"route", "add", "239.0.0.0/8", "dev", "u1"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	for _, f := range []string{"all/accept_local", "u0/accept_local", "all/rp_filter", "u0/rp_filter"} {
		v := "1"
		if strings.HasSuffix(f, "rp_filter") {
			v = "0"
		}
		if out, err := exec.Command("ip", "netns", "exec", ns, "sh", "-c", "echo "+v+" > /proc/sys/net/ipv4/conf/"+f).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", f, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, os.Args[0],
		"-test.run=^TestSSDPDiscoveryChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestSSDPDiscoveryChild") {
		t.Fatalf("child failed: %v", err)
	}
}

// TestSSDPDiscoveryChild is the namespace side of TestSSDPDiscoveryNetns:
// a Server on u0 with the standard SSDP port; goupnp's internetgateway1
// and internetgateway2 clients and upnpc find it through multicast
// M-SEARCH and map ports; a group listener sees ssdp:alive at start and
// ssdp:byebye at stop.
func TestSSDPDiscoveryChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestSSDPDiscoveryNetns inside its namespace")
	}
	group := listenGroup(t)

	core := newFakeCore(time.Now)
	core.secure = false // the control point's connections come from 192.0.2.1
	s, err := New(Config{Core: core, Interfaces: []string{"u0"}, IGDv1: true, IGDv2: true, HTTPPort: EphemeralPort, UUID: "netns", BootID: 5})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	}
	t.Cleanup(stop)

	alive := group.wait(t, "NTS: ssdp:alive", "NT: urn:schemas-upnp-org:device:InternetGatewayDevice:1")
	// REQUIREMENTS 30: SSDP listens on the LAN interface only, never on
	// a wildcard address that the WAN could reach.
	if w := wildcardUDP(t); len(w) != 0 {
		t.Errorf("wildcard UDP listeners: %v", w)
	}
	h := httpAddr4(t, s)
	if !strings.Contains(alive, fmt.Sprintf("LOCATION: http://%s/igd1.xml\r\n", h)) || !strings.Contains(alive, "BOOTID.UPNP.ORG: 5\r\n") {
		t.Errorf("alive:\n%s", alive)
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer dcancel()
	for _, v := range []string{"1", "2"} {
		devs, err := goupnp.DiscoverDevicesCtx(dctx, "urn:schemas-upnp-org:device:InternetGatewayDevice:"+v)
		if err != nil {
			t.Fatalf("discover IGD:%s: %v", v, err)
		}
		found := 0
		for _, d := range devs {
			if d.Err != nil {
				t.Errorf("IGD:%s at %v: %v", v, d.Location, d.Err)
				continue
			}
			found++
			if want := fmt.Sprintf("http://%s/igd%s.xml", h, v); d.Location.String() != want {
				t.Errorf("IGD:%s location %v, want %s", v, d.Location, want)
			}
		}
		if found != 1 {
			t.Errorf("IGD:%s: %d devices", v, found)
		}
	}

	c1, _, err := internetgateway1.NewWANIPConnection1ClientsCtx(dctx)
	if err != nil || len(c1) != 1 {
		t.Fatalf("internetgateway1 WANIPConnection1 discovery: %v, %d clients", err, len(c1))
	}
	if c1[0].Location.Path != "/igd1.xml" {
		t.Errorf("an IGD:1 client was sent to %v", c1[0].Location)
	}
	if err := c1[0].AddPortMapping("", 18080, "TCP", 8080, "127.0.0.1", true, "igd1 via ssdp", 0); err != nil {
		t.Errorf("AddPortMapping through the discovered IGD:1: %v", err)
	}
	c2, _, err := internetgateway2.NewWANIPConnection2ClientsCtx(dctx)
	if err != nil || len(c2) != 1 {
		t.Fatalf("internetgateway2 WANIPConnection2 discovery: %v, %d clients", err, len(c2))
	}
	if port, err := c2[0].AddAnyPortMapping("", 18080, "TCP", 8081, "127.0.0.1", true, "igd2 via ssdp", 60); err != nil || port == 18080 {
		t.Errorf("AddAnyPortMapping through the discovered IGD:2: %d %v", port, err)
	}
	fw, _, err := internetgateway2.NewWANIPv6FirewallControl1ClientsCtx(dctx)
	if err != nil || len(fw) != 1 {
		t.Errorf("WANIPv6FirewallControl1 discovery: %v, %d clients", err, len(fw))
	}

	// Real upnpc discovery over multicast.
	if _, err := exec.LookPath("upnpc"); err == nil {
		octx, ocancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, _ := exec.CommandContext(octx, "upnpc", "-m", "u1", "-i", "-l").CombinedOutput()
		ocancel()
		if !strings.Contains(string(out), fmt.Sprintf("IGD : http://%s/igd1/WANIPConn1/ctl", h)) || !strings.Contains(string(out), "'igd1 via ssdp'") {
			t.Errorf("upnpc -l through SSDP:\n%s", out)
		}
	} else if lab.E2E() {
		t.Error("upnpc is missing")
	}
	if st := s.Stats(); st.SSDPSearches == 0 || st.SSDPReplies == 0 || st.SSDPNotifies == 0 {
		t.Errorf("stats %+v", st)
	}

	stop()
	bye := group.wait(t, "NTS: ssdp:byebye", "NT: upnp:rootdevice")
	if strings.Contains(bye, "LOCATION") {
		t.Errorf("byebye with LOCATION:\n%s", bye)
	}
}

type groupListener struct {
	c net.PacketConn
}

// listenGroup joins 239.255.255.250:1900 on u1, as a LAN host (bound to
// the group, not the wildcard, so that the namespace's socket table shows
// the wildcard only if the Server opened one).
func listenGroup(t *testing.T) *groupListener {
	t.Helper()
	host, err := net.InterfaceByName("u1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := mcast.ListenGroup(netip.AddrPortFrom(ssdpGroup4, 1900), []*net.Interface{host})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &groupListener{c: c}
}

// wildcardUDP lists the UDP sockets of the namespace bound to a wildcard
// address ("0.0.0.0:1900", "[::]:1900", "*:1900"), from the kernel's
// socket table.
func wildcardUDP(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ss", "-H", "-lun").CombinedOutput()
	if err != nil {
		t.Fatalf("ss: %v\n%s", err, out)
	}
	var w []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		local := f[3]
		if strings.HasPrefix(local, "0.0.0.0:") || strings.HasPrefix(local, "*:") || strings.HasPrefix(local, "[::]:") {
			w = append(w, local)
		}
	}
	return w
}

// wait returns the first datagram holding every string (10 s at most).
func (g *groupListener) wait(t *testing.T, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 4096)
	for {
		g.c.SetReadDeadline(deadline)
		n, _, err := g.c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no datagram with %q: %v", subs, err)
		}
		m := string(buf[:n])
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(m, s+"\r\n")
		}
		if ok {
			return m
		}
	}
}
