//go:build capture

// The golden messages of testdata/miniupnpd-2.3.9/ come from this one-off
// capture, run as root in the namespace lab of ../shared/LAB.md with
// miniupnpd 2.3.9 as the ISP box (lab.Box{UPnP: true, NoPMP: true}, IGD:2
// and, with force_igd_desc_v1, IGD:1):
//
//	go test -tags capture -run TestCaptureMiniupnpd ./igdclient
//
// From namespace cpe it sends M-SEARCHes to the box (unicast, so the
// answers are the box's and nothing else's), fetches rootDesc.xml, runs
// SOAP actions (raw requests written here, not through igdclient), and
// records the NOTIFYs the box multicasts on the WAN link while it is
// restarted (byebye, then alive with a new BOOTID). It rewrites the
// directory. It is kept behind a build tag so the unit tests of this
// package never need root, namespaces or miniupnpd.
package igdclient

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"github.com/pcpgw/pcpgw/internal/mcast"
)

func rawSOAP(host, path, svc, action, args string) string {
	body := `<?xml version="1.0"?>` + "\r\n" + `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:` +
		action + ` xmlns:u="` + svc + `">` + args + `</u:` + action + `></s:Body></s:Envelope>` + "\r\n"
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nSOAPAction: \"%s#%s\"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		path, host, svc, action, len(body), body)
}

func rawHTTP(t *testing.T, host, req string) string {
	c, err := net.DialTimeout("tcp4", host, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, req)
	b, _ := io.ReadAll(c)
	return string(b)
}

// shortName makes a file name part of an ST or NT:
// "InternetGatewayDevice-2", "rootdevice", "uuid-3d3c...", "all".
func shortName(st string) string {
	f := strings.Split(st, ":")
	switch {
	case len(f) >= 5 && f[0] == "urn":
		return f[len(f)-2] + "-" + f[len(f)-1]
	case f[0] == "uuid":
		return "uuid-" + strings.Join(f[1:], "-")
	}
	return f[len(f)-1]
}

func TestCaptureMiniupnpd(t *testing.T) {
	for _, v1 := range []bool{false, true} {
		name := "igd2"
		if v1 {
			name = "igd1"
		}
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", "miniupnpd-2.3.9", name)
			os.RemoveAll(dir)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			save := func(file, s string) {
				if err := os.WriteFile(filepath.Join(dir, file), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			l := lab.New(t, lab.Options{})
			m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{Box: lab.Box{UPnP: true, NoPMP: true, IGDv1: v1}})
			var g, u *net.UDPConn
			l.CPE.Do(t, func() {
				ifi, err := net.InterfaceByName(l.CPEWANIf)
				if err != nil {
					t.Fatal(err)
				}
				if g, err = mcast.ListenGroup(SSDPGroup, []*net.Interface{ifi}); err != nil {
					t.Fatal(err)
				}
				if u, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(lab.CPEWAN4)}); err != nil {
					t.Fatal(err)
				}
			})
			defer g.Close()
			defer u.Close()
			box := &net.UDPAddr{IP: net.ParseIP(lab.CGN4), Port: 1900}
			for _, st := range append(append([]string(nil), SearchTargets...), "ssdp:all") {
				u.WriteTo(AppendMSearch(nil, box.String(), st, 1), box)
				u.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
				for i := 1; ; i++ {
					b := make([]byte, 2048)
					n, _, err := u.ReadFrom(b)
					if err != nil {
						break
					}
					save(fmt.Sprintf("search-%s-%02d.txt", shortName(st), i), string(b[:n]))
				}
			}
			host := netip.AddrPortFrom(netip.MustParseAddr(lab.CGN4), lab.BoxHTTPPort).String()
			l.CPE.Do(t, func() {
				save("rootDesc.http", rawHTTP(t, host, "GET /rootDesc.xml HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"))
			})
			svc := ServiceWANIP2
			if v1 {
				svc = ServiceWANIP1
			}
			add := func(client, ext, lease string) string {
				return "<NewRemoteHost></NewRemoteHost><NewExternalPort>" + ext + "</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>28081</NewInternalPort><NewInternalClient>" +
					client + "</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>pcpgw test</NewPortMappingDescription><NewLeaseDuration>" + lease + "</NewLeaseDuration>"
			}
			key := func(ext string) string {
				return "<NewRemoteHost></NewRemoteHost><NewExternalPort>" + ext + "</NewExternalPort><NewProtocol>TCP</NewProtocol>"
			}
			for _, a := range []struct{ file, action, args string }{
				{"GetExternalIPAddress", "GetExternalIPAddress", ""},
				{"GetStatusInfo", "GetStatusInfo", ""},
				{"AddPortMapping", "AddPortMapping", add(lab.CPEWAN4, "28081", "600")},
				{"AddPortMapping-again", "AddPortMapping", add(lab.CPEWAN4, "28081", "600")},
				{"AddPortMapping-permanent", "AddPortMapping", add(lab.CPEWAN4, "28082", "0")},
				{"AddPortMapping-other-client-718", "AddPortMapping", add("100.64.0.3", "28081", "600")},
				{"AddPortMapping-wildcard-716", "AddPortMapping", add(lab.CPEWAN4, "0", "600")},
				{"AddPortMapping-port80-606", "AddPortMapping", add(lab.CPEWAN4, "80", "600")},
				{"AddAnyPortMapping", "AddAnyPortMapping", add(lab.CPEWAN4, "28081", "600")},
				{"AddAnyPortMapping-taken", "AddAnyPortMapping", add("100.64.0.3", "28081", "600")},
				{"GetSpecificPortMappingEntry", "GetSpecificPortMappingEntry", key("28081")},
				{"GetSpecificPortMappingEntry-714", "GetSpecificPortMappingEntry", key("29999")},
				{"DeletePortMapping", "DeletePortMapping", key("28081")},
				{"DeletePortMapping-missing", "DeletePortMapping", key("28081")},
				{"NoSuchAction-401", "NoSuchAction", ""},
				{"AddPortMapping-bad-args-402", "AddPortMapping", "<NewExternalPort>x</NewExternalPort>"},
			} {
				l.CPE.Do(t, func() {
					save("soap-"+a.file+".http", rawHTTP(t, host, rawSOAP(host, "/ctl/IPConn", svc, a.action, a.args)))
				})
			}
			// NOTIFYs of a restart: byebye from the old instance, then
			// alive (three rounds) from the new one; the first of each
			// is kept.
			m.Restart(t, true)
			deadline := time.Now().Add(3 * time.Second)
			seen := map[string]int{}
			bye := false
			for time.Now().Before(deadline) {
				g.SetReadDeadline(deadline)
				b := make([]byte, 2048)
				n, _, err := g.ReadFrom(b)
				if err != nil {
					break
				}
				nt, err := ParseNotify(b[:n])
				if err != nil {
					t.Fatalf("miniupnpd's NOTIFY does not parse: %v\n%s", err, b[:n])
				}
				if nt.NTS == NTSByeBye {
					bye = true
				} else if !bye {
					continue // the old instance's alive rounds
				}
				k := nt.NTS.String()[5:] + "-" + shortName(nt.NT)
				seen[k]++
				if seen[k] == 1 { // miniupnpd sends each alive three times
					save("notify-"+k+".txt", string(b[:n]))
				}
			}
		})
	}
}
