//go:build capture

// The golden packets of testdata/miniupnpd-2.3.9.txt come from this one-off
// capture, run as root in the namespace lab of ../shared/LAB.md:
//
//	go test -tags capture -run TestCaptureMiniupnpd ./pcp
//
// It rewrites the file. It is kept behind a build tag so the unit tests of
// this package never need root, namespaces or miniupnpd.
package pcp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
	"golang.org/x/sys/unix"
)

// sniffer records the UDP datagrams to or from ports 5350/5351 that cross one
// interface, in both directions, through an AF_PACKET socket.
type sniffer struct {
	fd   int
	mu   sync.Mutex
	pkts []sniffed
	done chan struct{}
}

type sniffed struct {
	src, dst netip.AddrPort
	payload  []byte
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func newSniffer(t *testing.T, ns *lab.NS, ifname string) *sniffer {
	s := &sniffer{done: make(chan struct{})}
	ns.Do(t, func() {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			t.Fatal(err)
		}
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			t.Fatal(err)
		}
		s.fd = fd
	})
	go s.loop()
	t.Cleanup(func() { close(s.done); unix.Close(s.fd) })
	return s
}

func (s *sniffer) loop() {
	buf := make([]byte, 2048)
	for {
		select {
		case <-s.done:
			return
		default:
		}
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil || n < 1 {
			continue
		}
		p := buf[:n]
		var src, dst netip.Addr
		var udp []byte
		switch p[0] >> 4 {
		case 4:
			ihl := int(p[0]&0x0f) * 4
			if n < ihl+8 || p[9] != 17 {
				continue
			}
			src, dst = netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
			udp = p[ihl:]
		case 6:
			if n < 48 || p[6] != 17 {
				continue
			}
			src, dst = netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
			udp = p[40:]
		default:
			continue
		}
		sp, dp := binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4])
		if sp != 5350 && sp != 5351 && dp != 5350 && dp != 5351 {
			continue
		}
		ulen := int(binary.BigEndian.Uint16(udp[4:6]))
		if ulen < 8 || ulen > len(udp) {
			continue
		}
		s.mu.Lock()
		s.pkts = append(s.pkts, sniffed{netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp), bytes.Clone(udp[8:ulen])})
		s.mu.Unlock()
	}
}

// take returns and forgets what was recorded so far, after waiting up to
// wait for at least n datagrams.
func (s *sniffer) take(n int, wait time.Duration) []sniffed {
	deadline := time.Now().Add(wait)
	for {
		s.mu.Lock()
		if len(s.pkts) >= n || time.Now().After(deadline) {
			p := s.pkts
			s.pkts = nil
			s.mu.Unlock()
			return p
		}
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond) // polling a bounded capture
	}
}

type goldenFile struct{ b strings.Builder }

func (g *goldenFile) add(name, comment string, entries ...string) {
	fmt.Fprintf(&g.b, "\n## %s\n", name)
	for _, l := range strings.Split(strings.TrimSpace(comment), "\n") {
		fmt.Fprintf(&g.b, "# %s\n", l)
	}
	for _, e := range entries {
		g.b.WriteString(e + "\n")
	}
}

func entry(kind string, b []byte) string { return kind + " " + hex.EncodeToString(b) }

func TestCaptureMiniupnpd(t *testing.T) {
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	_ = m
	sn := newSniffer(t, l.CPE, l.CPEWANIf)
	g := &goldenFile{}
	fmt.Fprintf(&g.b, "# Golden packets captured from miniupnpd 2.3.9 (Debian 13 miniupnpd-nftables)\n")
	fmt.Fprintf(&g.b, "# playing the CGN in namespace isp of ../shared/LAB.md (pcp_allow_thirdparty=yes,\n")
	fmt.Fprintf(&g.b, "# min_lifetime=120), on %s, by `go test -tags capture -run TestCaptureMiniupnpd ./pcp`\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&g.b, "# (pcp/capture_test.go): an AF_PACKET socket on the CPE's WAN interface recorded\n")
	fmt.Fprintf(&g.b, "# the UDP payloads to and from ports 5350/5351. Format: `## name`, `#` comments,\n")
	fmt.Fprintf(&g.b, "# then lines `<kind> <hex>`, kind one of pcp-request, pcp-response,\n")
	fmt.Fprintf(&g.b, "# natpmp-request, natpmp-response, in the order they crossed the wire.\n")

	// (a) natpmpc, libnatpmp's client, against miniupnpd's NAT-PMP.
	natpmpc := func(name, comment string, args ...string) {
		sn.take(0, 0)
		out := l.CPE.Run(t, "natpmpc", args...)
		t.Logf("natpmpc %v:\n%s", args, out)
		var es []string
		for _, p := range sn.take(100, 300*time.Millisecond) {
			kind := "natpmp-response"
			if p.dst.Port() == 5351 {
				kind = "natpmp-request"
			}
			es = append(es, entry(kind, p.payload))
		}
		g.add(name, comment, es...)
	}
	natpmpc("natpmpc-map-tcp", "`natpmpc -g 100.64.0.1 -a 18080 18080 tcp 3600` from cpe (100.64.0.2):\nexternal address request and reply, then the TCP map request and reply.",
		"-g", lab.CGN4, "-a", "18080", "18080", "tcp", "3600")
	natpmpc("natpmpc-map-udp", "`natpmpc -g 100.64.0.1 -a 0 5353 udp 7200` (no suggested port).",
		"-g", lab.CGN4, "-a", "0", "5353", "udp", "7200")
	natpmpc("natpmpc-delete-tcp", "`natpmpc -g 100.64.0.1 -a 18080 18080 tcp 0`: delete.",
		"-g", lab.CGN4, "-a", "18080", "18080", "tcp", "0")

	// (b) PCP and NAT-PMP datagrams written with this package's marshallers,
	// sent from cpe's WAN address, one request, one reply.
	var conn *net.UDPConn
	l.CPE.Do(t, func() {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(lab.CGN4+":5351")))
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	})
	defer conn.Close()
	wan := netip.MustParseAddr(lab.CPEWAN4)
	exchange := func(name, comment, reqKind, respKind string, req []byte) {
		sn.take(0, 0)
		if _, err := conn.Write(req); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2048)
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := conn.Read(buf)
		es := []string{entry(reqKind, req)}
		if err != nil {
			comment += "\nNo reply within 2 s."
			t.Logf("%s: no reply: %v", name, err)
		} else {
			es = append(es, entry(respKind, buf[:n]))
		}
		g.add(name, comment, es...)
	}
	n1 := Nonce{0x9e, 0x12, 0x44, 0x01, 0xc3, 0x5a, 0x77, 0x10, 0x00, 0x42, 0xbe, 0xef}
	mapReq := Request{Opcode: OpMap, Lifetime: 3600, Client: wan, Map: &Map{Nonce: n1, Protocol: 6, InternalPort: 8080, ExternalPort: 18081, ExternalAddr: netip.IPv4Unspecified()}}
	exchange("pcp-map", "PCP MAP TCP internal 8080, suggested 18081 on 0.0.0.0 (::ffff:0.0.0.0), lifetime 3600.", "pcp-request", "pcp-response", mapReq.AppendMarshal(nil))
	exchange("pcp-map-renew", "The same MAP again (renewal, same nonce).", "pcp-request", "pcp-response", mapReq.AppendMarshal(nil))

	pf := mapReq
	pf.Map = &Map{Nonce: Nonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, Protocol: 17, InternalPort: 9000, ExternalPort: 19000, ExternalAddr: netip.IPv4Unspecified()}
	pf.Options = []Option{
		{Code: OptPreferFailure},
		{Code: OptFilter, Filter: Filter{Prefix: netip.MustParsePrefix("203.0.113.50/32"), RemotePort: 0}},
		{Code: OptDescription, Description: "pcpgw golden"},
	}
	exchange("pcp-map-options", "PCP MAP UDP 9000 -> 19000 with PREFER_FAILURE, FILTER 203.0.113.50/32 (wire /128),\nDESCRIPTION \"pcpgw golden\".", "pcp-request", "pcp-response", pf.AppendMarshal(nil))

	tp := mapReq
	tp.Map = &Map{Nonce: Nonce{0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4, 5, 6, 7, 8}, Protocol: 6, InternalPort: 22, ExternalPort: 2222, ExternalAddr: netip.IPv4Unspecified()}
	tp.Options = []Option{{Code: OptThirdParty, ThirdParty: netip.MustParseAddr(lab.LANHost4)}}
	exchange("pcp-map-third-party", "PCP MAP TCP 22 -> 2222 with THIRD_PARTY 192.0.2.100 (pcp_allow_thirdparty=yes).", "pcp-request", "pcp-response", tp.AppendMarshal(nil))

	peer := Request{Opcode: OpPeer, Lifetime: 600, Client: wan, Peer: &Peer{
		Map:        Map{Nonce: Nonce{0x50, 0x45, 0x45, 0x52, 1, 2, 3, 4, 5, 6, 7, 8}, Protocol: 6, InternalPort: 40000, ExternalAddr: netip.IPv4Unspecified()},
		RemotePort: 443, RemoteAddr: netip.MustParseAddr(lab.NetHost4)}}
	exchange("pcp-peer", "PCP PEER TCP internal 40000 to 203.0.113.50:443, lifetime 600.", "pcp-request", "pcp-response", peer.AppendMarshal(nil))

	ann := Request{Opcode: OpAnnounce, Client: wan}
	exchange("pcp-announce", "PCP ANNOUNCE request (solicited).", "pcp-request", "pcp-response", ann.AppendMarshal(nil))

	del := mapReq
	del.Lifetime = 0
	del.Map = &Map{Nonce: n1, Protocol: 6, InternalPort: 8080, ExternalAddr: netip.IPv4Unspecified()}
	exchange("pcp-map-delete", "PCP MAP delete (lifetime 0) of pcp-map with its nonce.", "pcp-request", "pcp-response", del.AppendMarshal(nil))
	exchange("pcp-map-delete-unknown", "The same delete again: miniupnpd has no such mapping now.", "pcp-request", "pcp-response", del.AppendMarshal(nil))

	v3 := mapReq.AppendMarshal(nil)
	v3[0] = 3
	exchange("pcp-bad-version", "The pcp-map request with version 3.", "pcp-request", "pcp-response", v3)

	v1 := mapReq.AppendMarshal(nil)
	v1[0] = 1
	exchange("pcp-version-1", "The pcp-map request with version 1.", "pcp-request", "pcp-response", v1)

	op := mapReq.AppendMarshal(nil)
	op[1] = 5
	exchange("pcp-bad-opcode", "The pcp-map request with opcode 5.", "pcp-request", "pcp-response", op)

	exchange("pcp-unaligned", "The pcp-map request with 2 octets added (not a multiple of 4).", "pcp-request", "pcp-response", append(mapReq.AppendMarshal(nil), 0, 0))

	exchange("pcp-truncated", "The pcp-map request cut to 24+32 octets.", "pcp-request", "pcp-response", mapReq.AppendMarshal(nil)[:56])

	uo := mapReq
	uo.Options = []Option{{Code: 0x7e, Raw: []byte{1, 2, 3, 4}}}
	exchange("pcp-unknown-mandatory-option", "The pcp-map request with an unknown mandatory option 126.", "pcp-request", "pcp-response", uo.AppendMarshal(nil))

	mm := mapReq
	mm.Client = netip.MustParseAddr("100.64.0.99")
	exchange("pcp-address-mismatch", "The pcp-map request with client address 100.64.0.99 (the source is 100.64.0.2).", "pcp-request", "pcp-response", mm.AppendMarshal(nil))

	nr := NATPMPRequest{Opcode: 2, InternalPort: 8443, SuggestedExternalPort: 18443, Lifetime: 3600}
	exchange("natpmp-map-tcp", "NAT-PMP map TCP 8443 -> 18443 for 3600 s.", "natpmp-request", "natpmp-response", nr.AppendMarshal(nil))
	exchange("natpmp-bad-opcode", "NAT-PMP opcode 3.", "natpmp-request", "natpmp-response", []byte{0, 3, 0, 0, 0, 1, 0, 1, 0, 0, 0, 60})
	exchange("natpmp-version-1", "A 12-octet NAT-PMP map request with version 1.", "natpmp-request", "natpmp-response", []byte{1, 2, 0, 0, 0x20, 0xfb, 0x48, 0x0b, 0, 0, 0x0e, 0x10})

	// Unsolicited ANNOUNCE after SIGUSR1 (epoch reset), as it reaches cpe.
	sn.take(1000, 300*time.Millisecond) // drain what the exchanges above left
	m.Announce(t)
	var es []string
	for _, p := range sn.take(4, 3*time.Second) {
		if !p.dst.Addr().IsMulticast() {
			continue
		}
		kind := "pcp-response"
		if len(p.payload) > 0 && p.payload[0] == VersionNATPMP {
			kind = "natpmp-response"
		}
		es = append(es, entry(kind, p.payload)+" # "+p.src.String()+" -> "+p.dst.String())
	}
	g.add("unsolicited-announce", "After kill -USR1 miniupnpd: unsolicited NAT-PMP address announcements and PCP ANNOUNCE,\nmulticast, as seen on cpe's WAN link (source -> destination after each).", es...)

	if err := os.WriteFile("testdata/miniupnpd-2.3.9.txt", []byte(g.b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
