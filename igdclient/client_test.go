package igdclient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/pcpgw/pcpgw/igdclient"
	"github.com/pcpgw/pcpgw/igdclient/igdtest"
)

var netipEq = cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{}, netip.Prefix{})

func newFake(t *testing.T, opt igdtest.Options) *igdtest.Server {
	t.Helper()
	f, err := igdtest.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// newClient makes a client on loopback searching the fake f, with the
// WAN subnet 127.0.0.0/29 unless changed by mod.
func newClient(t *testing.T, f *igdtest.Server, mod ...func(*igdclient.Config)) *igdclient.Client {
	t.Helper()
	cfg := igdclient.Config{
		Subnets:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/29")},
		Local:    netip.MustParseAddr("127.0.0.1"),
		SSDPAddr: f.SSDPAddr(),
		Wait:     time.Second,
		Timeout:  2 * time.Second,
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := igdclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestDiscover(t *testing.T) {
	for _, tc := range []struct {
		opt     igdtest.Options
		service string
	}{
		{igdtest.Options{Version: 2}, igdclient.ServiceWANIP2},
		{igdtest.Options{Version: 1}, igdclient.ServiceWANIP1},
		{igdtest.Options{Version: 1, PPP: true}, igdclient.ServiceWANPPP1},
	} {
		t.Run(tc.service, func(t *testing.T) {
			f := newFake(t, tc.opt)
			c := newClient(t, f)
			d, err := c.Discover(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			want := &igdclient.Device{Location: f.Location(), Control: f.Control(), Service: tc.service,
				Host:         netip.MustParseAddrPort(strings.TrimSuffix(strings.TrimPrefix(f.Control(), "http://"), "/ctl/IPConn")),
				DeviceType:   fmt.Sprintf("urn:schemas-upnp-org:device:InternetGatewayDevice:%d", tc.opt.Version),
				FriendlyName: "Fake box", Manufacturer: "igdtest", ModelName: "FakeBox", UDN: "uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07c",
				BootID: 1, HasBootID: true}
			if d := cmp.Diff(want, d, cmpopts.IgnoreUnexported(igdclient.Device{}), netipEq); d != "" {
				t.Errorf("device (-want +got):\n%s", d)
			}
			if n := f.Count("desc"); n != 1 {
				t.Errorf("description fetched %d times, want 1 (one per LOCATION)", n)
			}
			if st := c.Stats(); st.Searches != 2*uint64(len(igdclient.SearchTargets)) && st.Searches != uint64(len(igdclient.SearchTargets)) || st.Dropped != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestDiscoverNothing(t *testing.T) {
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, err := igdclient.New(igdclient.Config{Subnets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		SSDPAddr: netip.MustParseAddrPort(silent.LocalAddr().String()), Wait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if d, err := c.Discover(context.Background()); err == nil {
		t.Fatalf("found %+v", d)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Discover took %v with Wait 300ms", el)
	}
}

func TestActions(t *testing.T) {
	for _, v := range []int{1, 2} {
		t.Run(fmt.Sprint("IGD:", v), func(t *testing.T) {
			f := newFake(t, igdtest.Options{Version: v})
			c := newClient(t, f)
			ctx := ctx(t)
			d, err := c.Discover(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d.Version() != v {
				t.Errorf("Version() = %d", d.Version())
			}
			if a, err := d.GetExternalIPAddress(ctx); err != nil || a != netip.MustParseAddr("203.0.113.1") {
				t.Errorf("GetExternalIPAddress = %v, %v", a, err)
			}
			if st, err := d.GetStatusInfo(ctx); err != nil || st != (igdclient.ConnectionStatus{ConnectionStatus: "Connected", LastConnectionError: "ERROR_NONE", Uptime: 42}) {
				t.Errorf("GetStatusInfo = %+v, %v", st, err)
			}
			m := igdclient.PortMapping{ExternalPort: 28081, Protocol: "TCP", InternalPort: 28081, InternalClient: netip.MustParseAddr("127.0.0.1"),
				Enabled: true, Description: "pcpgw <test> & co", LeaseDuration: 3600}
			if err := d.AddPortMapping(ctx, m); err != nil {
				t.Fatal(err)
			}
			if err := d.AddPortMapping(ctx, m); err != nil {
				t.Errorf("re-add by the same client: %v", err)
			}
			got, err := d.GetSpecificPortMappingEntry(ctx, "", 28081, "TCP")
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(m, got, netipEq); d != "" {
				t.Errorf("GetSpecificPortMappingEntry (-want +got):\n%s", d)
			}
			other := m
			other.InternalClient = netip.MustParseAddr("127.0.0.2")
			var ue *igdclient.Error
			if err := d.AddPortMapping(ctx, other); !errors.As(err, &ue) || ue.Code != igdclient.CodeConflictInMappingEntry || ue.Description != "ConflictInMappingEntry" {
				t.Errorf("another client's add: %v, want UPnP error 718", err)
			}
			if v == 2 {
				p, err := d.AddAnyPortMapping(ctx, other)
				if err != nil || p != 28082 {
					t.Errorf("AddAnyPortMapping = %d, %v; want 28082", p, err)
				}
			} else if _, err := d.AddAnyPortMapping(ctx, other); !errors.As(err, &ue) || ue.Code != 401 {
				t.Errorf("AddAnyPortMapping on IGD:1: %v", err)
			}
			if err := d.DeletePortMapping(ctx, "", 28081, "TCP"); err != nil {
				t.Fatal(err)
			}
			if err := d.DeletePortMapping(ctx, "", 28081, "TCP"); !errors.As(err, &ue) || ue.Code != igdclient.CodeNoSuchEntryInArray {
				t.Errorf("deleting again: %v, want 714", err)
			}
			if _, err := d.GetSpecificPortMappingEntry(ctx, "", 28081, "TCP"); !errors.As(err, &ue) || ue.Code != 714 {
				t.Errorf("GetSpecificPortMappingEntry of nothing: %v", err)
			}
			// What went on the wire, as the fake read it.
			reqs := f.Requests()
			var add igdtest.Request
			for _, r := range reqs {
				if r.Action == "AddPortMapping" {
					add = r
					break
				}
			}
			want := map[string]string{"NewRemoteHost": "", "NewExternalPort": "28081", "NewProtocol": "TCP", "NewInternalPort": "28081",
				"NewInternalClient": "127.0.0.1", "NewEnabled": "1", "NewPortMappingDescription": "pcpgw <test> & co", "NewLeaseDuration": "3600"}
			if d := cmp.Diff(want, add.Args); d != "" {
				t.Errorf("AddPortMapping arguments (-want +got):\n%s", d)
			}
		})
	}
}

func TestActionFailures(t *testing.T) {
	f := newFake(t, igdtest.Options{})
	c := newClient(t, f)
	ctx := ctx(t)
	d, err := c.Discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ue *igdclient.Error
	f.Fail("GetExternalIPAddress", 501, 1)
	if _, err := d.GetExternalIPAddress(ctx); !errors.As(err, &ue) || ue.Code != 501 {
		t.Errorf("injected 501: %v", err)
	}
	for name, tc := range map[string]struct {
		status int
		body   string
	}{
		"500 without fault": {500, "<html>oops</html>"},
		"malformed 200":     {200, "<s:Envelope><s:Body><u:GetExternalIPAddressResponse>"},
		"404":               {404, "not found"},
		"other response":    {200, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:OtherResponse/></s:Body></s:Envelope>`},
		"billion laughs": {200, `<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>` +
			`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetExternalIPAddressResponse><NewExternalIPAddress>&b;</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>`},
		"oversized": {200, strings.Repeat(" ", 70<<10)},
		"bad address": {200, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetExternalIPAddressResponse>` +
			`<NewExternalIPAddress>example.com</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>`},
	} {
		f.Raw("GetExternalIPAddress", tc.status, tc.body, 1)
		a, err := d.GetExternalIPAddress(ctx)
		if err == nil || errors.As(err, &ue) {
			t.Errorf("%s: %v, %v; want a plain error", name, a, err)
		}
	}
	f.Raw("GetExternalIPAddress", 200, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetExternalIPAddressResponse>`+
		`<NewExternalIPAddress></NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>`, 1)
	if a, err := d.GetExternalIPAddress(ctx); err != nil || a.IsValid() {
		t.Errorf("empty address: %v, %v; want the zero Addr", a, err)
	}
	f.SetDown(true)
	if _, err := d.GetExternalIPAddress(ctx); !errors.Is(err, igdclient.ErrNoAnswer) || errors.As(err, &ue) {
		t.Errorf("dropped connection: %v, want ErrNoAnswer", err)
	}
	f.SetDown(false)
	if st := c.Stats(); st.Malformed < 4 || st.Dropped < st.Malformed {
		t.Errorf("stats %+v: the malformed answers are not counted", st)
	}
}

// TestRefusals: nothing the WAN link says takes the client to another
// host: answers from outside the subnets, LOCATIONs on another host,
// redirects, URLBase and control URLs elsewhere.
func TestRefusals(t *testing.T) {
	t.Parallel()
	t.Run("answer from outside the subnets", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, igdtest.Options{})
		c := newClient(t, f, func(c *igdclient.Config) { c.Subnets = []netip.Prefix{netip.MustParsePrefix("127.0.0.8/29")} })
		if d, err := c.Discover(ctx(t)); err == nil {
			t.Fatalf("found %+v", d)
		}
		if f.Count("desc") != 0 || c.Stats().Foreign == 0 {
			t.Errorf("desc fetched %d times; stats %+v", f.Count("desc"), c.Stats())
		}
	})
	t.Run("LOCATION on another host", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, igdtest.Options{})
		other := newFake(t, igdtest.Options{Host: "127.0.0.2"})
		f.SetLocation(other.Location())
		c := newClient(t, f)
		if d, err := c.Discover(ctx(t)); err == nil {
			t.Fatalf("found %+v", d)
		}
		if f.Count("desc") != 0 || other.Count("desc") != 0 || c.Stats().Dropped == 0 {
			t.Errorf("desc fetched %d+%d times; stats %+v", f.Count("desc"), other.Count("desc"), c.Stats())
		}
	})
	t.Run("LOCATION with a host name", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, igdtest.Options{})
		f.SetLocation("http://localhost:5000/rootDesc.xml")
		c := newClient(t, f)
		if d, err := c.Discover(ctx(t)); err == nil {
			t.Fatalf("found %+v", d)
		}
	})
	t.Run("description redirected", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, igdtest.Options{})
		other := newFake(t, igdtest.Options{Host: "127.0.0.2"})
		f.SetDescription(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, other.Location(), http.StatusFound) })
		c := newClient(t, f)
		if d, err := c.Discover(ctx(t)); err == nil {
			t.Fatalf("found %+v", d)
		}
		if f.Count("desc") != 1 || other.Count("desc") != 0 {
			t.Errorf("desc fetched %d+%d times, want 1+0", f.Count("desc"), other.Count("desc"))
		}
	})
	for name, ctl := range map[string]string{
		"control URL on another host":  "http://127.0.0.2:%d/ctl/IPConn",
		"control URL with a host name": "http://localhost:%d/ctl/IPConn",
		"URLBase on another host":      "BASE",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, igdtest.Options{})
			other := newFake(t, igdtest.Options{Host: "127.0.0.2"})
			port := netip.MustParseAddrPort(strings.TrimSuffix(strings.TrimPrefix(other.Control(), "http://"), "/ctl/IPConn")).Port()
			doc := serviceDesc(igdclient.ServiceWANIP2, fmt.Sprintf(ctl, port), "")
			if ctl == "BASE" {
				doc = serviceDesc(igdclient.ServiceWANIP2, "/ctl/IPConn", fmt.Sprintf("http://127.0.0.2:%d/", port))
			}
			f.SetDescription(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, doc) })
			c := newClient(t, f)
			if d, err := c.Discover(ctx(t)); err == nil {
				t.Fatalf("found %+v", d)
			}
			if len(other.Requests()) != 0 || other.Count("desc") != 0 {
				t.Errorf("the other host was asked: %+v", other.Requests())
			}
		})
	}
	t.Run("description too large", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, igdtest.Options{})
		f.SetDescription(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, strings.Replace(serviceDesc(igdclient.ServiceWANIP2, "/ctl/IPConn", ""), "<UDN>", "<x>"+strings.Repeat("a", 70<<10)+"</x><UDN>", 1))
		})
		c := newClient(t, f)
		if d, err := c.Discover(ctx(t)); err == nil {
			t.Fatalf("found %+v", d)
		}
		if c.Stats().Dropped == 0 {
			t.Error("not counted")
		}
		// Under the limit it does.
		c = newClient(t, f, func(c *igdclient.Config) { c.MaxDescription = 128 << 10 })
		if _, err := c.Discover(ctx(t)); err != nil {
			t.Errorf("with MaxDescription 128 KiB: %v", err)
		}
	})
	t.Run("billion laughs", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, igdtest.Options{})
		f.SetDescription(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">`+
				`<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>`+strings.Replace(serviceDesc(igdclient.ServiceWANIP2, "/ctl/IPConn", ""), "Fake box", "&c;", 1))
		})
		c := newClient(t, f)
		if d, err := c.Discover(ctx(t)); err == nil {
			t.Fatalf("found %+v", d)
		}
		if c.Stats().Malformed == 0 {
			t.Error("not counted as malformed")
		}
	})
	t.Run("garbage answers first", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, igdtest.Options{})
		f.AddSearchAnswer([]byte("garbage"))
		f.AddSearchAnswer([]byte("HTTP/1.1 200 OK\r\nST: x\r\n\r\n"))
		c := newClient(t, f)
		if _, err := c.Discover(ctx(t)); err != nil {
			t.Fatal(err)
		}
		if c.Stats().Malformed == 0 {
			t.Error("garbage not counted")
		}
	})
}

// serviceDesc is a description with one WAN connection service.
func serviceDesc(typ, ctl, urlBase string) string {
	base := ""
	if urlBase != "" {
		base = "<URLBase>" + urlBase + "</URLBase>"
	}
	return `<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0">` + base + `<device><deviceType>` + igdclient.DeviceIGD2 +
		`</deviceType><friendlyName>Fake box</friendlyName><UDN>uuid:1</UDN><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType>` +
		`<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType><serviceList>` +
		`<service><serviceType>` + typ + `</serviceType><serviceId>x</serviceId><controlURL>` + ctl + `</controlURL></service>` +
		`</serviceList></device></deviceList></device></deviceList></device></root>`
}

// TestConnectedService: with several WAN connection services, the first
// whose GetStatusInfo says Connected is driven.
func TestConnectedService(t *testing.T) {
	f := newFake(t, igdtest.Options{Version: 1, PPP: true})
	doc := strings.Replace(serviceDesc(igdclient.ServiceWANIP1, "/ctl/dead", ""), "</serviceList>",
		"<service><serviceType>"+igdclient.ServiceWANPPP1+"</serviceType><serviceId>p</serviceId><controlURL>/ctl/IPConn</controlURL></service></serviceList>", 1)
	f.SetDescription(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, doc) })
	c := newClient(t, f)
	d, err := c.Discover(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d.Service != igdclient.ServiceWANPPP1 || d.Control != f.Control() {
		t.Errorf("drives %s at %s, want the connected PPP service", d.Service, d.Control)
	}
}

func TestDiscoverHost(t *testing.T) {
	f := newFake(t, igdtest.Options{})
	c := newClient(t, f)
	d, err := c.DiscoverHost(ctx(t), netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Location != f.Location() {
		t.Errorf("location %s", d.Location)
	}
	if _, err := c.DiscoverHost(ctx(t), netip.MustParseAddr("192.0.2.1")); err == nil {
		t.Error("asked a host outside the subnets")
	}
}

func TestNotifyListener(t *testing.T) {
	f := newFake(t, igdtest.Options{BootID: 7})
	c := newClient(t, f)
	l, err := c.ListenNotify("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dst := l.LocalAddr()
	send := func(from string, b []byte) {
		t.Helper()
		s, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(from)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.WriteToUDPAddrPort(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	alive := igdclient.Notify{NTS: igdclient.NTSAlive, NT: "upnp:rootdevice", USN: "uuid:x::upnp:rootdevice", Location: "http://127.0.0.9/", BootID: 9, HasBootID: true}
	// From outside 127.0.0.0/29, garbage, another control point's search:
	// skipped; then the fake's announcements.
	send("127.0.0.9", alive.AppendMarshal(nil, "239.255.255.250:1900"))
	send("127.0.0.2", []byte("NOTIFY * HTTP/1.1\r\nNTS: ssdp:alive\r\n\r\n"))
	send("127.0.0.2", igdclient.AppendMSearch(nil, "239.255.255.250:1900", "ssdp:all", 1))
	if err := f.Announce(dst, igdclient.NTSByeBye); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		n, src, err := l.Read()
		if err != nil {
			t.Fatal(err)
		}
		if src.Addr() != netip.MustParseAddr("127.0.0.1") || n.BootID != 7 || n.NTS != igdclient.NTSByeBye {
			t.Errorf("NOTIFY %+v from %v", n, src)
		}
		got = append(got, n.NT)
	}
	if d := cmp.Diff([]string{"upnp:rootdevice", igdclient.DeviceIGD2, igdclient.ServiceWANIP2}, got); d != "" {
		t.Errorf("NTs (-want +got):\n%s", d)
	}
	if st := c.Stats(); st.Foreign != 1 || st.Malformed != 1 || st.Notifies != 3 {
		t.Errorf("stats %+v", st)
	}
	l.Close()
	if _, _, err := l.Read(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
}

func TestNew(t *testing.T) {
	if _, err := igdclient.New(igdclient.Config{}); err == nil {
		t.Error("New without subnets succeeded")
	}
	if _, err := igdclient.New(igdclient.Config{Interface: "nonexistent0"}); err == nil {
		t.Error("New with a missing interface succeeded")
	}
	c, err := igdclient.New(igdclient.Config{Subnets: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/24"), netip.MustParsePrefix("2001:db8::/64")}})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]netip.Prefix{netip.MustParsePrefix("100.64.0.0/24")}, c.Subnets(), netipEq); d != "" {
		t.Errorf("subnets (-want +got):\n%s", d)
	}
	for a, ok := range map[string]bool{"100.64.0.1": true, "100.64.0.254": true, "100.64.0.0": false, "100.64.0.255": false, "100.64.1.1": false, "::ffff:100.64.0.1": true, "224.0.0.1": false} {
		if c.InSubnets(netip.MustParseAddr(a)) != ok {
			t.Errorf("InSubnets(%s) = %v", a, !ok)
		}
	}
}
