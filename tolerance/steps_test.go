package tolerance

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
)

// step is one request of a case.
type step interface {
	// run sends the request and returns its normalised reply.
	run(s *side, k ports) (string, error)
	// addPorts adds the ports the request names to k.
	addPorts(k ports)
}

// tcase is one case of the corpus: setup requests (which must succeed),
// then the request compared. Its outcome is the reply to req and the
// change it made to the table.
type tcase struct {
	id    string
	setup []step
	req   step
	// replyOnly compares the reply only: miniupnpd's mapping expires
	// at once (lifetimes of a second, or so long they wrap its clock),
	// so whether its table still holds it is a race.
	replyOnly bool
	// cleanup removes what the table cannot show or UPnP cannot delete
	// (miniupnpd's PCP mappings of other protocols); replies ignored.
	cleanup []step
	// insecure runs the case with secure mode off on both daemons.
	insecure bool
}

// soapStep is one SOAP action.
type soapStep struct {
	from   who
	svc    string // service key (serviceNS)
	action string
	args   []kv
	// mod changes the whole request (headers, body) after it is built.
	mod func(s *side, h *httpReq)
}

func (st soapStep) run(s *side, k ports) (string, error) {
	h := s.soapRequest(st.svc, st.action, "", st.args)
	v6 := st.svc == "fw" // WANIPv6FirewallControl: over IPv6
	if v6 {
		h.setHeader("Host", netip.AddrPortFrom(s.gw6, s.port).String())
	}
	if st.mod != nil {
		st.mod(s, h)
		h.body = s.expand(h.body)
	}
	r, err := s.do(st.from, h, v6)
	if err != nil {
		return "", err
	}
	if st.action == "AddPinhole" && r.status == 200 {
		id := strings.TrimSpace(leaves(r.body)["UniqueID"])
		if !slices.ContainsFunc(s.pins, func(p pin) bool { return p.id == id }) {
			s.pins = append(s.pins, pin{id: id, owner: st.from})
		}
	}
	return s.soapReply(st.action, r, k), nil
}

// pinState tells, for each pinhole the case made, whether it is still
// there: CheckPinholeWorking by its owner is 709 (no traffic yet) for a
// pinhole there and 704 for one that is gone (miniupnpd: 402, as for
// every UniqueID it does not hold); other answers are shown.
func (s *side) pinState() (string, error) {
	var out []string
	for i, p := range s.pins {
		h := s.soapRequest("fw", "CheckPinholeWorking", "", []kv{{"UniqueID", p.id}})
		h.setHeader("Host", netip.AddrPortFrom(s.gw6, s.port).String())
		r, err := s.do(p.owner, h, true)
		if err != nil {
			return "", err
		}
		st := s.soapReply("CheckPinholeWorking", r, nil)
		switch st {
		case "E709":
			st = "there"
		case "E704", "E402":
			st = "gone"
		}
		out = append(out, fmt.Sprintf("pin%d:%s", i+1, st))
	}
	return strings.Join(out, " "), nil
}

func (st soapStep) addPorts(k ports) {
	for _, a := range st.args {
		// The leading number, as the daemons read it ("+28080",
		// "28080abc").
		v := strings.TrimLeft(strings.TrimSpace(a.value), "+")
		if i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
			v = v[:i]
		}
		if n, err := strconv.ParseUint(v, 10, 16); err == nil && n > 0 {
			k[uint16(n)] = true
		}
	}
}

// udpStep is one NAT-PMP or PCP datagram.
type udpStep struct {
	from  who
	pkt   func(s *side, from netip.Addr) []byte
	ports []uint16
	// wait is how long to wait for an answer (default 750 ms: the
	// daemons answer in a few ms, but CI machines are busy; silence is
	// an outcome).
	wait time.Duration
}

func (st udpStep) run(s *side, k ports) (string, error) {
	w := st.wait
	if w == 0 {
		w = 750 * time.Millisecond
	}
	if s.slow {
		w = max(w, 3*time.Second)
	}
	b, err := s.udp(st.from, st.pkt(s, s.hosts[st.from]), w)
	if err != nil {
		return "", err
	}
	return s.pmpReply(b, k), nil
}

func (st udpStep) addPorts(k ports) {
	for _, p := range st.ports {
		if p > 0 {
			k[p] = true
		}
	}
}

// ok reports whether a normalised reply is a success.
func ok(reply string) bool {
	return reply == "ok" || strings.HasPrefix(reply, "ok[") ||
		strings.Contains(reply, " r0 ") || strings.HasSuffix(reply, " r0") ||
		strings.Contains(reply, " SUCCESS")
}

// natpmpPkt is a NAT-PMP mapping request (RFC 6886 §3.3): op 1 UDP, 2 TCP.
func natpmpPkt(op uint8, iport, sugg uint16, life uint32) []byte {
	b := []byte{0, op, 0, 0}
	b = binary.BigEndian.AppendUint16(b, iport)
	b = binary.BigEndian.AppendUint16(b, sugg)
	return binary.BigEndian.AppendUint32(b, life)
}

// natpmp is a NAT-PMP step.
func natpmp(from who, op uint8, iport, sugg uint16, life uint32) udpStep {
	return udpStep{from: from, ports: []uint16{iport, sugg}, pkt: func(*side, netip.Addr) []byte {
		return natpmpPkt(op, iport, sugg, life)
	}}
}

// rawUDP sends fixed bytes.
func rawUDP(from who, b []byte, ports ...uint16) udpStep {
	return udpStep{from: from, ports: ports, pkt: func(*side, netip.Addr) []byte { return b }}
}

// pcpMapReq describes a PCP MAP request; zero fields take the defaults
// of pcpMap.
type pcpMapReq struct {
	version  uint8
	life     uint32
	proto    uint8
	iport    uint16
	sugg     uint16
	suggAddr string // "" none; else an address (placeholders allowed)
	nonce    byte
	client   string // "" the sender; else an address (placeholders)
	opts     []pcp.Option
	// raw changes the marshalled request.
	raw func(b []byte) []byte
}

var nonceBase = pcp.Nonce{0x70, 0x63, 0x70, 0x67, 0x77, 0x2d, 0x74, 0x6f, 0x6c, 0x00, 0x00}

// pcpMap is a PCP MAP step (RFC 6887 §11.1).
func pcpMap(from who, r pcpMapReq) udpStep {
	return udpStep{from: from, ports: []uint16{r.iport, r.sugg}, pkt: func(s *side, src netip.Addr) []byte {
		n := nonceBase
		n[11] = r.nonce
		client := src
		if r.client != "" {
			client = netip.MustParseAddr(s.expand(r.client))
		}
		m := &pcp.Map{Nonce: n, Protocol: r.proto, InternalPort: r.iport, ExternalPort: r.sugg, ExternalAddr: netip.IPv6Unspecified()}
		if r.suggAddr != "" {
			m.ExternalAddr = netip.MustParseAddr(s.expand(r.suggAddr))
		}
		b := (&pcp.Request{Version: r.version, Opcode: pcp.OpMap, Lifetime: r.life, Client: client, Map: m, Options: r.opts}).AppendMarshal(nil)
		if r.raw != nil {
			b = r.raw(b)
		}
		return b
	}}
}

// pcpOther is a PCP request of another opcode (ANNOUNCE, PEER, unknown).
func pcpOther(from who, op pcp.Opcode, life uint32, peer *pcp.Peer, raw func(b []byte) []byte, ports ...uint16) udpStep {
	return udpStep{from: from, ports: ports, pkt: func(s *side, src netip.Addr) []byte {
		b := (&pcp.Request{Opcode: op, Lifetime: life, Client: src, Peer: peer}).AppendMarshal(nil)
		if raw != nil {
			b = raw(b)
		}
		return b
	}}
}
