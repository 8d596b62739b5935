package clients

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/huin/goupnp/dcps/internetgateway1"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/pcpgw/pcpgw/internal/lab"
)

// goupnpChildEnv carries TestGoupnpChild's action; unset, it skips.
const goupnpChildEnv = "PCPGW_CLIENTS_GOUPNP"

// goupnpResult is what TestGoupnpChild prints, on one line after
// goupnpMark.
type goupnpResult struct {
	V1ExternalIP string // GetExternalIPAddress through IGD:1's WANIPConnection:1
	V2ExternalIP string // GetExternalIPAddress through IGD:2's WANIPConnection:2
	V1Port       uint16 // the external port mapped through IGD:1 (TCP)
	V2Port       uint16 // the port AddAnyPortMapping reserved through IGD:2 (UDP)
	V1Lease      uint32 // GetSpecificPortMappingEntry's lease of the IGD:1 mapping
}

const goupnpMark = "GOUPNP-RESULT "

// igd1 is IGD:1's root device type (goupnp names only the embedded ones).
const igd1 = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"

// Ports of the goupnp test: the LAN services and the external port asked
// through IGD:1 (AddPortMapping) and IGD:2 (AddAnyPortMapping).
const (
	goupnpTCP, goupnpTCPExt = 8090, 18090
	goupnpUDP, goupnpUDPExt = 8091, 18091
)

// TestGoupnp drives pcpgw's UPnP IGD with github.com/huin/goupnp's
// generated clients from the LAN host, miniupnpd being the provider's CGN
// (issue 5's LAN clients, REQUIREMENTS 24): the clients find pcpgw's
// IGD:1 and IGD:2 root devices by multicast SSDP from the lan namespace,
// GetExternalIPAddress answers the CGN's public address through both,
// AddPortMapping (IGD:1, TCP) and AddAnyPortMapping (IGD:2, UDP) make
// mappings that a host in namespace net reaches at 203.0.113.1, and
// DeletePortMapping removes both (pcpgw's table and reachability).
//
// goupnp's HTTP requests dial from goroutines of net/http, so the clients
// run in a child process inside the lan namespace: this test binary run
// again through `ip netns exec` (TestGoupnpChild), printing its result.
func TestGoupnp(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	serve(t, g.Lab, "tcp", goupnpTCP)
	serve(t, g.Lab, "udp", goupnpUDP)

	r := goupnpChild(t, g, "map")
	t.Logf("goupnp: %+v", r)
	if r.V1ExternalIP != cgnPublic.String() || r.V2ExternalIP != cgnPublic.String() {
		t.Errorf("GetExternalIPAddress: IGD:1 %q, IGD:2 %q; want the CGN's public address %v", r.V1ExternalIP, r.V2ExternalIP, cgnPublic)
	}
	if r.V1Lease == 0 || r.V1Lease > 3600 {
		t.Errorf("GetSpecificPortMappingEntry lease %d s, want 1 to 3600", r.V1Lease)
	}
	tcpExt := netip.AddrPortFrom(cgnPublic, r.V1Port)
	udpExt := netip.AddrPortFrom(cgnPublic, r.V2Port)
	lab.Eventually(t, 10*time.Second, func() bool { return reaches(t, g, "tcp", tcpExt, goupnpTCP) },
		"TCP to %v from net never reached the LAN host's port %d", tcpExt, goupnpTCP)
	lab.Eventually(t, 10*time.Second, func() bool { return reaches(t, g, "udp", udpExt, goupnpUDP) },
		"UDP to %v from net never reached the LAN host's port %d", udpExt, goupnpUDP)
	for _, m := range []struct {
		proto string
		port  uint16
	}{{"tcp", goupnpTCP}, {"udp", goupnpUDP}} {
		if row, ok := g.row(t, m.proto, m.port); !ok || row.Origin != "upnp" {
			t.Errorf("pcpgw's table for %s %d: %+v (found %v), want a upnp mapping", m.proto, m.port, row, ok)
		}
	}

	goupnpChild(t, g, "delete "+strconv.Itoa(int(r.V1Port))+" "+strconv.Itoa(int(r.V2Port)))
	for _, m := range []struct {
		proto    string
		port     uint16
		external netip.AddrPort
	}{{"tcp", goupnpTCP, tcpExt}, {"udp", goupnpUDP, udpExt}} {
		if row, ok := g.row(t, m.proto, m.port); ok {
			t.Errorf("pcpgw still holds %s %d after DeletePortMapping: %+v", m.proto, m.port, row)
		}
		lab.Eventually(t, 10*time.Second, func() bool { return !reaches(t, g, m.proto, m.external, m.port) },
			"%s to %v from net still reaches the LAN host after DeletePortMapping", m.proto, m.external)
	}
}

// goupnpChild runs TestGoupnpChild with action in the lan namespace (at
// most one minute) and returns its result; it fails the test when the
// child fails.
func goupnpChild(t *testing.T, g *gateway, action string) goupnpResult {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := g.LAN.Cmd(ctx, exe, "-test.run=^TestGoupnpChild$", "-test.v", "-test.count=1")
	c.Env = append(os.Environ(), goupnpChildEnv+"="+action)
	c.WaitDelay = time.Second
	b, err := c.CombinedOutput()
	out := string(b)
	if err != nil || !strings.Contains(out, "--- PASS: TestGoupnpChild") {
		t.Fatalf("goupnp client (%s) in the lan namespace: %v\n%s", action, err, out)
	}
	var r goupnpResult
	for line := range strings.Lines(out) {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), goupnpMark); ok {
			if err := json.Unmarshal([]byte(s), &r); err != nil {
				t.Fatalf("goupnp client (%s): result %q: %v", action, s, err)
			}
			return r
		}
	}
	if action == "map" {
		t.Fatalf("goupnp client (%s) printed no result:\n%s", action, out)
	}
	return r
}

// TestGoupnpChild is TestGoupnp's client side, run by it inside the lan
// namespace with the action in $PCPGW_CLIENTS_GOUPNP: "map" discovers
// pcpgw's IGD:1 and IGD:2 by SSDP, asks both for the external address,
// maps TCP 8090 through IGD:1 and UDP 8091 through IGD:2 and prints the
// result; "delete V1PORT V2PORT" deletes those mappings.
func TestGoupnpChild(t *testing.T) {
	action := os.Getenv(goupnpChildEnv)
	if action == "" {
		t.Skip("run by TestGoupnp inside the lab's lan namespace")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Version 1 searches also find IGD:2's services (a device answers
	// searches for lower versions): keep the IGD:1 root device's.
	c1s, errs, err := internetgateway1.NewWANIPConnection1ClientsCtx(ctx)
	if err != nil {
		t.Fatalf("SSDP search for WANIPConnection:1: %v", err)
	}
	var c1 *internetgateway1.WANIPConnection1
	for _, c := range c1s {
		if c.RootDevice.Device.DeviceType == igd1 {
			c1 = c
		}
	}
	c2s, errs2, err := internetgateway2.NewWANIPConnection2ClientsCtx(ctx)
	if err != nil {
		t.Fatalf("SSDP search for WANIPConnection:2: %v", err)
	}
	if c1 == nil || len(c2s) != 1 {
		t.Fatalf("found %d WANIPConnection:1 clients (none of IGD:1: %v) and %d WANIPConnection:2; errors %v %v",
			len(c1s), c1 == nil, len(c2s), errs, errs2)
	}
	c2 := c2s[0]
	t.Logf("IGD:1 at %v, IGD:2 at %v", c1.Location, c2.Location)

	if rest, ok := strings.CutPrefix(action, "delete "); ok {
		var p1, p2 uint16
		if _, err := fmt.Sscan(rest, &p1, &p2); err != nil {
			t.Fatalf("action %q: %v", action, err)
		}
		if err := c1.DeletePortMappingCtx(ctx, "", p1, "TCP"); err != nil {
			t.Errorf("IGD:1 DeletePortMapping TCP %d: %v", p1, err)
		}
		if err := c2.DeletePortMappingCtx(ctx, "", p2, "UDP"); err != nil {
			t.Errorf("IGD:2 DeletePortMapping UDP %d: %v", p2, err)
		}
		return
	}
	if action != "map" {
		t.Fatalf("unknown action %q", action)
	}
	var r goupnpResult
	if r.V1ExternalIP, err = c1.GetExternalIPAddressCtx(ctx); err != nil {
		t.Fatalf("IGD:1 GetExternalIPAddress: %v", err)
	}
	if r.V2ExternalIP, err = c2.GetExternalIPAddressCtx(ctx); err != nil {
		t.Fatalf("IGD:2 GetExternalIPAddress: %v", err)
	}
	if err := c1.AddPortMappingCtx(ctx, "", goupnpTCPExt, "TCP", goupnpTCP, lanHost.String(), true, "pcpgw e2e goupnp IGD:1", 3600); err != nil {
		t.Fatalf("IGD:1 AddPortMapping TCP %d -> %d: %v", goupnpTCPExt, goupnpTCP, err)
	}
	r.V1Port = goupnpTCPExt
	_, client, enabled, _, lease, err := c1.GetSpecificPortMappingEntryCtx(ctx, "", goupnpTCPExt, "TCP")
	if err != nil || client != lanHost.String() || !enabled {
		t.Fatalf("IGD:1 GetSpecificPortMappingEntry TCP %d: client %q, enabled %v, %v", goupnpTCPExt, client, enabled, err)
	}
	r.V1Lease = lease
	if r.V2Port, err = c2.AddAnyPortMappingCtx(ctx, "", goupnpUDPExt, "UDP", goupnpUDP, lanHost.String(), true, "pcpgw e2e goupnp IGD:2", 3600); err != nil {
		t.Fatalf("IGD:2 AddAnyPortMapping UDP %d -> %d: %v", goupnpUDPExt, goupnpUDP, err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%s\n", goupnpMark, b)
}
