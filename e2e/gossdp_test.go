package e2e

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koron/go-ssdp"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// TestGoSSDPLAN: github.com/koron/go-ssdp, an SSDP implementation
// independent of pcpgw's, as a LAN host's control point (issue 15): its
// Monitor hears pcpgw's ssdp:alive when it starts and ssdp:byebye when it
// stops, and its searches for the IGD:1 and IGD:2 devices and the
// WANIPConnection services are answered by pcpgw's LAN address with the
// matching descriptions.
func TestGoSSDPLAN(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	l.StartMiniupnpd(t, lab.MiniupnpdOptions{})
	var mu sync.Mutex
	alive, bye := map[string]string{}, map[string]bool{}
	mon := &ssdp.Monitor{
		Alive: func(a *ssdp.AliveMessage) {
			mu.Lock()
			defer mu.Unlock()
			if strings.HasPrefix(a.From.String(), lab.CPELAN4+":") {
				alive[a.Type] = a.Location
			}
		},
		Bye: func(b *ssdp.ByeMessage) {
			mu.Lock()
			defer mu.Unlock()
			if strings.HasPrefix(b.From.String(), lab.CPELAN4+":") {
				bye[b.Type] = true
			}
		},
	}
	l.LAN.Do(t, func() {
		ifi, err := net.InterfaceByName(l.LANIf)
		if err != nil {
			t.Fatal(err)
		}
		ssdp.Interfaces = []net.Interface{*ifi}
		if err := mon.Start(); err != nil {
			t.Fatal(err)
		}
	})
	defer func() { ssdp.Interfaces = nil }()
	defer mon.Close()

	p := l.StartPcpgw(t, "--pcp-server", lab.CGN4)
	want := map[string]string{
		"urn:schemas-upnp-org:device:InternetGatewayDevice:1": "/igd1.xml",
		"urn:schemas-upnp-org:device:InternetGatewayDevice:2": "/igd2.xml",
		"urn:schemas-upnp-org:service:WANIPConnection:1":      "/igd1.xml",
		"urn:schemas-upnp-org:service:WANIPConnection:2":      "/igd2.xml",
	}
	lab.Eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for st := range want {
			if alive[st] == "" {
				return false
			}
		}
		return true
	}, "go-ssdp did not hear pcpgw's ssdp:alive for every type: %v", alive)
	mu.Lock()
	for st, path := range want {
		if alive[st] != "http://"+lab.CPELAN4+":5000"+path {
			t.Errorf("alive %s: LOCATION %q", st, alive[st])
		}
	}
	mu.Unlock()

	l.LAN.Do(t, func() {
		for st, path := range want {
			svcs, err := ssdp.Search(st, 1, lab.LANHost4+":0")
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, s := range svcs {
				found = found || s.Type == st && s.Location == "http://"+lab.CPELAN4+":5000"+path
			}
			if !found {
				t.Errorf("go-ssdp search %s: %+v", st, svcs)
			}
		}
	})

	if err := p.Proc.Stop(t); err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return bye["urn:schemas-upnp-org:device:InternetGatewayDevice:1"] && bye["urn:schemas-upnp-org:device:InternetGatewayDevice:2"]
	}, "go-ssdp did not hear pcpgw's ssdp:byebye: %v", bye)
}
