package igdclient_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway1"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/koron/go-ssdp"
	"github.com/pcpgw/pcpgw/igdclient"
	"github.com/pcpgw/pcpgw/internal/lab"
	"golang.org/x/sys/unix"
)

// boxLab builds the lab with miniupnpd 2.3.9 as the ISP box and finds it
// with igdclient from cpe (on the WAN interface only).
func boxLab(t *testing.T, v1 bool) (*lab.Lab, *lab.Miniupnpd, *igdclient.Client, *igdclient.Device) {
	t.Helper()
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{Box: lab.Box{UPnP: true, NoPMP: true, IGDv1: v1}})
	var c *igdclient.Client
	var d *igdclient.Device
	l.CPE.Do(t, func() {
		var err error
		if c, err = igdclient.New(igdclient.Config{Interface: l.CPEWANIf, Dial: l.CPE.DialContext}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if d, err = c.Discover(ctx); err != nil {
			t.Fatal(err)
		}
	})
	return l, m, c, d
}

// TestGoupnpAgrees: github.com/huin/goupnp, discovering the same box from
// the same namespace, finds the same device, service, control URL and
// external address as igdclient. (Not parallel inside: goupnp's HTTP
// client is a package variable, pointed at one lab at a time.)
func TestGoupnpAgrees(t *testing.T) {
	t.Parallel()
	lab.RequireRoot(t)
	for _, v1 := range []bool{false, true} {
		t.Run(map[bool]string{false: "igd2", true: "igd1"}[v1], func(t *testing.T) {
			l, _, _, d := boxLab(t, v1)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ext, err := d.GetExternalIPAddress(ctx)
			if err != nil {
				t.Fatal(err)
			}
			transport := &http.Transport{DialContext: l.CPE.DialContext}
			defer transport.CloseIdleConnections()
			saved := goupnp.HTTPClientDefault
			goupnp.HTTPClientDefault = &http.Client{Transport: transport, Timeout: 5 * time.Second}
			defer func() { goupnp.HTTPClientDefault = saved }()
			var found []goupnp.MaybeRootDevice
			l.CPE.Do(t, func() {
				if found, err = goupnp.DiscoverDevicesCtx(ctx, d.DeviceType); err != nil {
					t.Fatal(err)
				}
			})
			var root *goupnp.RootDevice
			for _, f := range found {
				if f.Err == nil && f.Location.String() == d.Location {
					root = f.Root
				}
			}
			if root == nil {
				t.Fatalf("goupnp did not find %s: %+v", d.Location, found)
			}
			got := []string{root.Device.DeviceType, root.Device.FriendlyName, root.Device.Manufacturer, root.Device.ModelName, root.Device.UDN}
			want := []string{d.DeviceType, d.FriendlyName, d.Manufacturer, d.ModelName, d.UDN}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("root device (-igdclient +goupnp):\n%s", diff)
			}
			loc := found[0].Location
			var control, service, gext string
			if v1 {
				cs, err := internetgateway1.NewWANIPConnection1ClientsFromRootDevice(root, loc)
				if err != nil || len(cs) != 1 {
					t.Fatalf("goupnp WANIPConnection1 clients: %d, %v", len(cs), err)
				}
				cs[0].SOAPClient.HTTPClient.Transport = transport
				control, service = cs[0].SOAPClient.EndpointURL.String(), cs[0].Service.ServiceType
				gext, err = cs[0].GetExternalIPAddressCtx(ctx)
				if err != nil {
					t.Fatal(err)
				}
			} else {
				cs, err := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, loc)
				if err != nil || len(cs) != 1 {
					t.Fatalf("goupnp WANIPConnection2 clients: %d, %v", len(cs), err)
				}
				cs[0].SOAPClient.HTTPClient.Transport = transport
				control, service = cs[0].SOAPClient.EndpointURL.String(), cs[0].Service.ServiceType
				gext, err = cs[0].GetExternalIPAddressCtx(ctx)
				if err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff([]string{d.Control, d.Service, ext.String()}, []string{control, service, gext}); diff != "" {
				t.Errorf("control URL, service, external address (-igdclient +goupnp):\n%s", diff)
			}
			if ext.String() != lab.CGNPublic4 {
				t.Errorf("external %v", ext)
			}
		})
	}
}

// ssdpMu serializes the uses of go-ssdp, whose interfaces are a package
// variable.
var ssdpMu sync.Mutex

// TestGoSSDPSearchAgrees: github.com/koron/go-ssdp, searching the WAN link
// of cpe for each ST igdclient searches, gets answers from the box only,
// all pointing at the description igdclient found, with its BOOTID.
func TestGoSSDPSearchAgrees(t *testing.T) {
	t.Parallel()
	lab.RequireRoot(t)
	for _, v1 := range []bool{false, true} {
		t.Run(map[bool]string{false: "igd2", true: "igd1"}[v1], func(t *testing.T) {
			l, _, _, d := boxLab(t, v1)
			ssdpMu.Lock()
			defer ssdpMu.Unlock()
			l.CPE.Do(t, func() {
				ifi, err := net.InterfaceByName(l.CPEWANIf)
				if err != nil {
					t.Fatal(err)
				}
				ssdp.Interfaces = []net.Interface{*ifi}
				defer func() { ssdp.Interfaces = nil }()
				for _, st := range igdclient.SearchTargets {
					svcs, err := ssdp.Search(st, 1, lab.CPEWAN4+":0")
					if err != nil {
						t.Fatal(err)
					}
					// miniupnpd answers every ST, also the versions it
					// does not describe; igdclient takes the
					// description's word for the service.
					if len(svcs) == 0 {
						t.Errorf("go-ssdp: no answer to %s", st)
					}
					for _, s := range svcs {
						if s.Type != st || s.Location != d.Location || !strings.HasSuffix(s.USN, "::"+st) ||
							s.Header().Get("BOOTID.UPNP.ORG") != strconv.FormatUint(uint64(d.BootID), 10) || s.MaxAge() != 1800 {
							t.Errorf("go-ssdp answer to %s: %+v %v; igdclient found %s, BOOTID %d", st, s, s.Header(), d.Location, d.BootID)
						}
					}
				}
			})
		})
	}
}

// notifyTuple is what both parsers read of a NOTIFY.
type notifyTuple struct {
	NTS, NT, USN, Location string
	MaxAge                 int
	BootID                 string
}

// TestGoSSDPNotifyAgrees: the box's real announcements around a restart
// (byebye, then rounds of alive), read by go-ssdp's Monitor on the WAN
// link and by igdclient.ParseNotify from the same datagrams sniffed on the
// interface, give the same fields.
func TestGoSSDPNotifyAgrees(t *testing.T) {
	t.Parallel()
	lab.RequireRoot(t)
	l, m, _, _ := boxLab(t, false)
	ssdpMu.Lock()
	defer ssdpMu.Unlock()
	var mu sync.Mutex
	var theirs, ours []notifyTuple
	mon := &ssdp.Monitor{
		Alive: func(a *ssdp.AliveMessage) {
			mu.Lock()
			defer mu.Unlock()
			theirs = append(theirs, notifyTuple{"ssdp:alive", a.Type, a.USN, a.Location, a.MaxAge(), a.Header().Get("BOOTID.UPNP.ORG")})
		},
		Bye: func(b *ssdp.ByeMessage) {
			mu.Lock()
			defer mu.Unlock()
			theirs = append(theirs, notifyTuple{"ssdp:byebye", b.Type, b.USN, "", -1, b.Header().Get("BOOTID.UPNP.ORG")})
		},
	}
	var sniff *sniffer
	l.CPE.Do(t, func() {
		ifi, err := net.InterfaceByName(l.CPEWANIf)
		if err != nil {
			t.Fatal(err)
		}
		ssdp.Interfaces = []net.Interface{*ifi}
		if err := mon.Start(); err != nil {
			t.Fatal(err)
		}
		if sniff, err = newSniffer(ifi.Index); err != nil {
			t.Fatal(err)
		}
	})
	defer func() { ssdp.Interfaces = nil }()
	defer mon.Close()
	closeSniff := sync.OnceFunc(func() { sniff.close() })
	defer closeSniff()
	sniff.start(func(src netip.AddrPort, payload []byte) {
		if !strings.HasPrefix(string(payload), "NOTIFY ") {
			return
		}
		n, err := igdclient.ParseNotify(payload)
		if err != nil {
			t.Errorf("igdclient refuses the box's NOTIFY from %v: %v\n%s", src, err, payload)
			return
		}
		tu := notifyTuple{n.NTS.String(), n.NT, n.USN, n.Location, int(n.MaxAge), strconv.FormatUint(uint64(n.BootID), 10)}
		if n.NTS == igdclient.NTSByeBye {
			tu.MaxAge = -1 // go-ssdp has no max-age for byebye
		}
		mu.Lock()
		ours = append(ours, tu)
		mu.Unlock()
	})
	m.Restart(t, true)
	// 12 byebye and 3 rounds of 12 alive; wait for the counts to settle.
	settled := func() bool {
		mu.Lock()
		defer mu.Unlock()
		byes := 0
		for _, x := range ours {
			if x.NTS == "ssdp:byebye" {
				byes++
			}
		}
		return len(ours) >= 36 && byes > 0 && len(theirs) == len(ours)
	}
	for deadline := time.Now().Add(10 * time.Second); !settled(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("announcements within 10 s: igdclient %d, go-ssdp %d", len(ours), len(theirs))
		}
	}
	closeSniff()
	mu.Lock()
	defer mu.Unlock()
	sortTuples := func(x []notifyTuple) {
		slices.SortFunc(x, func(a, b notifyTuple) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	}
	sortTuples(ours)
	sortTuples(theirs)
	if diff := cmp.Diff(theirs, ours); diff != "" {
		t.Errorf("NOTIFYs (-go-ssdp +igdclient):\n%s", diff)
	}
	t.Logf("%d NOTIFYs read alike", len(ours))
}

// sniffer reads the UDP datagrams to port 1900 crossing one interface
// (an AF_PACKET socket; both directions).
type sniffer struct {
	fd   int
	done chan struct{}
	wg   sync.WaitGroup
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func newSniffer(ifindex int) (*sniffer, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &sniffer{fd: fd, done: make(chan struct{})}, nil
}

func (s *sniffer) start(f func(src netip.AddrPort, payload []byte)) {
	s.wg.Go(func() { s.run(f) })
}

func (s *sniffer) run(f func(src netip.AddrPort, payload []byte)) {
	buf := make([]byte, 65536)
	for {
		select {
		case <-s.done:
			return
		default:
		}
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil || n < 28 || buf[0]>>4 != 4 || buf[9] != 17 {
			continue
		}
		ihl := int(buf[0]&0x0f) * 4
		if n < ihl+8 || binary.BigEndian.Uint16(buf[ihl+2:]) != 1900 {
			continue
		}
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[12:16])), binary.BigEndian.Uint16(buf[ihl:]))
		f(src, append([]byte(nil), buf[ihl+8:n]...))
	}
}

func (s *sniffer) close() {
	close(s.done)
	s.wg.Wait()
	unix.Close(s.fd)
}
