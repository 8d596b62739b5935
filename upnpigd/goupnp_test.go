package upnpigd

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway1"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
	"github.com/pcpgw/pcpgw/mapping"
)

// upnpCode returns the UPnP errorCode of a goupnp error (0 if none).
func upnpCode(err error) int {
	if f, ok := err.(*soap.SOAPFaultError); ok {
		return f.Detail.UPnPError.Errorcode
	}
	return 0
}

// fakeSys writes a WAN statistics tree.
func fakeSys(t *testing.T) string {
	dir := t.TempDir()
	st := filepath.Join(dir, "class", "net", "wan0", "statistics")
	if err := os.MkdirAll(st, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"tx_bytes": "4294967297", "rx_bytes": "123456", "tx_packets": "10", "rx_packets": "20"} {
		os.WriteFile(filepath.Join(st, name), []byte(v+"\n"), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "class", "net", "wan0", "operstate"), []byte("up\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "class", "net", "wan0", "speed"), []byte("1000\n"), 0o644)
	return dir
}

// TestGoupnpIGD1 drives every IGD:1 action through goupnp's generated
// internetgateway1 clients, found from the description URL.
func TestGoupnpIGD1(t *testing.T) {
	ti := newTestIGD(t, func(c *Config) { c.WAN = "wan0"; c.SysDir = fakeSys(t) })
	loc, _ := url.Parse(ti.base + "/igd1.xml")
	ctx := context.Background()

	root, err := goupnp.DeviceByURLCtx(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	if root.Device.DeviceType != "urn:schemas-upnp-org:device:InternetGatewayDevice:1" {
		t.Errorf("root device type %q", root.Device.DeviceType)
	}
	ips, err := internetgateway1.NewWANIPConnection1ClientsByURLCtx(ctx, loc)
	if err != nil || len(ips) != 1 {
		t.Fatalf("WANIPConnection1 clients: %v %d", err, len(ips))
	}
	ip := ips[0]
	if a, err := ip.GetExternalIPAddress(); err != nil || a != "203.0.113.1" {
		t.Errorf("GetExternalIPAddress = %q, %v", a, err)
	}
	if err := ip.AddPortMapping("", 18080, "TCP", 8080, "127.0.0.1", true, "goupnp", 0); err != nil {
		t.Fatalf("AddPortMapping: %v", err)
	}
	if r := ti.core.reqs[len(ti.core.reqs)-1]; r.Lifetime != 0 || !r.ExactPort {
		t.Errorf("IGD:1 lease 0 must be permanent with the exact port: %+v", r)
	}
	if err := ip.AddPortMapping("", 18081, "UDP", 8081, "127.0.0.1", true, "goupnp udp", 600); err != nil {
		t.Fatalf("AddPortMapping UDP: %v", err)
	}
	rh, ep, proto, ipt, ic, en, desc, lease, err := ip.GetGenericPortMappingEntry(1)
	if err != nil || rh != "" || ep != 18081 || proto != "UDP" || ipt != 8081 || ic != "127.0.0.1" || !en || desc != "goupnp udp" || lease != 600 {
		t.Errorf("GetGenericPortMappingEntry(1) = %q %d %q %d %q %v %q %d %v", rh, ep, proto, ipt, ic, en, desc, lease, err)
	}
	if _, _, _, _, _, _, _, _, err := ip.GetGenericPortMappingEntry(2); upnpCode(err) != 713 {
		t.Errorf("GetGenericPortMappingEntry(2): %v, want 713", err)
	}
	ipt, ic, en, desc, lease, err = ip.GetSpecificPortMappingEntry("", 18080, "TCP")
	if err != nil || ipt != 8080 || ic != "127.0.0.1" || !en || desc != "goupnp" || lease != 0 {
		t.Errorf("GetSpecificPortMappingEntry = %d %q %v %q %d %v", ipt, ic, en, desc, lease, err)
	}
	if st, le, up, err := ip.GetStatusInfo(); err != nil || st != "Connected" || le != "ERROR_NONE" || up != 0 {
		t.Errorf("GetStatusInfo = %q %q %d %v", st, le, up, err)
	}
	if ct, pt, err := ip.GetConnectionTypeInfo(); err != nil || ct != "IP_Routed" || pt != "IP_Routed" {
		t.Errorf("GetConnectionTypeInfo = %q %q %v", ct, pt, err)
	}
	if rsip, nat, err := ip.GetNATRSIPStatus(); err != nil || rsip || !nat {
		t.Errorf("GetNATRSIPStatus = %v %v %v", rsip, nat, err)
	}
	// As miniupnpd answers: the connection type is read-only, the
	// connection the provider's.
	if err := ip.SetConnectionType("IP_Routed"); upnpCode(err) != 731 {
		t.Errorf("SetConnectionType(IP_Routed): %v, want 731", err)
	}
	if err := ip.RequestConnection(); upnpCode(err) != 606 {
		t.Errorf("RequestConnection: %v, want 606", err)
	}
	if err := ip.ForceTermination(); upnpCode(err) != 606 {
		t.Errorf("ForceTermination: %v, want 606", err)
	}
	if err := ip.DeletePortMapping("", 18080, "TCP"); err != nil {
		t.Errorf("DeletePortMapping: %v", err)
	}
	// Deleting what is not there is 714 (RFC 6970 §5.8).
	if err := ip.DeletePortMapping("", 18080, "TCP"); upnpCode(err) != 714 {
		t.Errorf("DeletePortMapping again: %v, want 714", err)
	}
	if n := len(ti.core.list()); n != 1 {
		t.Errorf("%d mappings left, want 1", n)
	}

	wcs, err := internetgateway1.NewWANCommonInterfaceConfig1ClientsByURLCtx(ctx, loc)
	if err != nil || len(wcs) != 1 {
		t.Fatalf("WANCommonInterfaceConfig1 clients: %v %d", err, len(wcs))
	}
	wc := wcs[0]
	if at, up, down, st, err := wc.GetCommonLinkProperties(); err != nil || at != "Ethernet" || up != 1000000000 || down != 1000000000 || st != "Up" {
		t.Errorf("GetCommonLinkProperties = %q %d %d %q %v", at, up, down, st, err)
	}
	if n, err := wc.GetTotalBytesSent(); err != nil || n != 1 { // 2^32+1 wraps (ui4)
		t.Errorf("GetTotalBytesSent = %d %v", n, err)
	}
	if n, err := wc.GetTotalBytesReceived(); err != nil || n != 123456 {
		t.Errorf("GetTotalBytesReceived = %d %v", n, err)
	}
	if n, err := wc.GetTotalPacketsSent(); err != nil || n != 10 {
		t.Errorf("GetTotalPacketsSent = %d %v", n, err)
	}
	if n, err := wc.GetTotalPacketsReceived(); err != nil || n != 20 {
		t.Errorf("GetTotalPacketsReceived = %d %v", n, err)
	}
}

// TestGoupnpIGD2 drives every IGD:2 action, pinholes included, through
// goupnp's internetgateway2 clients.
func TestGoupnpIGD2(t *testing.T) {
	ti := newTestIGD(t, nil)
	loc, _ := url.Parse(ti.base + "/igd2.xml")
	ctx := context.Background()
	ips, err := internetgateway2.NewWANIPConnection2ClientsByURLCtx(ctx, loc)
	if err != nil || len(ips) != 1 {
		t.Fatalf("WANIPConnection2 clients: %v %d", err, len(ips))
	}
	ip := ips[0]
	if err := ip.AddPortMapping("", 18080, "TCP", 8080, "127.0.0.1", true, "a", 0); err != nil {
		t.Fatal(err)
	}
	if r := ti.core.reqs[len(ti.core.reqs)-1]; r.Lifetime.Seconds() != 604800 {
		t.Errorf("IGD:2 lease 0 must become 604800 s: %v", r.Lifetime)
	}
	ti.core.taken[18090] = true
	port, err := ip.AddAnyPortMapping("", 18090, "TCP", 8090, "127.0.0.1", true, "any", 3600)
	if err != nil || port != 50000 {
		t.Errorf("AddAnyPortMapping = %d %v, want 50000", port, err)
	}
	if _, err := ip.AddAnyPortMapping("", 0, "UDP", 9000, "127.0.0.1", true, "wild", 3600); err != nil {
		t.Errorf("AddAnyPortMapping wildcard: %v", err)
	}
	listing, err := ip.GetListOfPortMappings(0, 65535, "TCP", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<p:NewExternalPort>18080</p:NewExternalPort>", "<p:NewExternalPort>50000</p:NewExternalPort>", "<p:NewDescription>any</p:NewDescription>"} {
		if !strings.Contains(listing, want) {
			t.Errorf("listing lacks %s:\n%s", want, listing)
		}
	}
	if listing, err := ip.GetListOfPortMappings(0, 65535, "TCP", false, 1); err != nil || strings.Contains(listing, "50000") {
		t.Errorf("NewNumberOfPorts 1: %v\n%s", err, listing)
	}
	if err := ip.DeletePortMappingRange(18000, 60000, "TCP", false); err != nil {
		t.Errorf("DeletePortMappingRange: %v", err)
	}
	if err := ip.DeletePortMappingRange(18000, 60000, "TCP", false); upnpCode(err) != 730 {
		t.Errorf("DeletePortMappingRange again: %v, want 730", err)
	}
	if n := ti.core.Count(); n != 1 {
		t.Errorf("%d mappings left, want the UDP one", n)
	}
	if a, err := ip.GetExternalIPAddress(); err != nil || a != "203.0.113.1" {
		t.Errorf("GetExternalIPAddress = %q %v", a, err)
	}
	ti.core.extErr = &mapping.Error{Code: mapping.CodeNetworkFailure}
	if a, err := ip.GetExternalIPAddress(); err != nil || a != "" {
		t.Errorf("GetExternalIPAddress unknown = %q %v, want empty (RFC 6970 §4.1)", a, err)
	}
	if st, _, _, err := ip.GetStatusInfo(); err != nil || st != "Disconnected" {
		t.Errorf("GetStatusInfo without external address = %q %v", st, err)
	}
	ti.core.extErr = nil

	fws, err := internetgateway2.NewWANIPv6FirewallControl1ClientsByURLCtx(ctx, loc)
	if err != nil || len(fws) != 1 {
		t.Fatalf("WANIPv6FirewallControl1 clients: %v %d", err, len(fws))
	}
	fw := fws[0]
	ti.core.secure = false // the test client is 127.0.0.1, the pinhole is for an IPv6 host
	if en, allowed, err := fw.GetFirewallStatus(); err != nil || !en || !allowed {
		t.Errorf("GetFirewallStatus = %v %v %v", en, allowed, err)
	}
	if to, err := fw.GetOutboundPinholeTimeout("", 0, "2001:db8:1::100", 8080, 17); err != nil || to == 0 {
		t.Errorf("GetOutboundPinholeTimeout = %d %v", to, err)
	}
	id, err := fw.AddPinhole("2001:db8:ff::50", 0, "2001:db8:1::100", 8080, 6, 3600)
	if err != nil {
		t.Fatalf("AddPinhole: %v", err)
	}
	if r := ti.core.reqs[len(ti.core.reqs)-1]; r.RemoteHost != mustAddr("2001:db8:ff::50") {
		t.Errorf("pinhole remote host %v", r.RemoteHost)
	}
	if err := fw.UpdatePinhole(id, 600); err != nil {
		t.Errorf("UpdatePinhole: %v", err)
	}
	if _, err := fw.CheckPinholeWorking(id); upnpCode(err) != 709 {
		t.Errorf("CheckPinholeWorking: %v, want 709", err)
	}
	ti.core.packets[uint32(id)] = 3
	if ok, err := fw.CheckPinholeWorking(id); err != nil || !ok {
		t.Errorf("CheckPinholeWorking = %v %v", ok, err)
	}
	if n, err := fw.GetPinholePackets(id); err != nil || n != 3 {
		t.Errorf("GetPinholePackets = %d %v", n, err)
	}
	if err := fw.DeletePinhole(id); err != nil {
		t.Errorf("DeletePinhole: %v", err)
	}
	if err := fw.DeletePinhole(id); upnpCode(err) != 704 {
		t.Errorf("DeletePinhole again: %v, want 704", err)
	}
	ti.core.pinholes = false
	if _, allowed, err := fw.GetFirewallStatus(); err != nil || allowed {
		t.Errorf("GetFirewallStatus with pinholes off: %v %v", allowed, err)
	}

	// An IGD:1 client type finds the IGD:2 description's WANIPConnection
	// only as :2; the IGD:1 description serves IGD:1-only clients.
	if c, err := internetgateway2.NewWANIPConnection1ClientsByURLCtx(ctx, loc); err == nil && len(c) != 0 {
		t.Errorf("IGD:2 description offers WANIPConnection:1")
	}
}
