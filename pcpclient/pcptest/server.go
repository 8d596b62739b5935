// Package pcptest is a fault-injecting fake PCP server (RFC 6887) with a
// NAT-PMP (RFC 6886) mode, for testing pcpclient without a real server.
// It listens on a loopback port, answers like a small NAT (mappings with an
// external address and ports), and can be told to misbehave: stay silent,
// answer from another port or address, with a wrong nonce or opcode, with
// the R bit clear, truncated, oversized, with any error result and error
// lifetime, with a wrong epoch, or as a NAT-PMP-only server. It can push
// unsolicited ANNOUNCE and Mapping Update messages. It counts and records
// what it receives.
package pcptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
)

// Mode is how the server answers requests.
type Mode int

const (
	Normal        Mode = iota // answer as a PCP server
	Silent                    // record, never answer
	FromOtherPort             // answer correctly, but from another port
	FromOtherAddr             // answer correctly, but from 127.0.0.2
	WrongNonce                // answer with another nonce
	WrongOpcode               // answer PEER to MAP and MAP to PEER
	WrongPort                 // answer with another internal port
	RBitClear                 // answer with the R bit clear
	Truncated                 // answer cut inside the opcode payload
	Oversized                 // answer padded past 1100 octets
	ErrorResult               // answer Result with ErrorLifetime (SetError)
	NATPMPOnly                // UNSUPP_VERSION version 0 to PCP; serve NAT-PMP
	OtherPort                 // SUCCESS with another external port than suggested, ignoring PREFER_FAILURE (as miniupnpd may)
)

// Request is one datagram the server received.
type Request struct {
	At     time.Time
	From   netip.AddrPort
	Raw    []byte
	PCP    *pcp.Request       // set when it parsed as PCP
	NATPMP *pcp.NATPMPRequest // set when it parsed as NAT-PMP
}

type mapKey struct {
	proto    uint8
	internal netip.AddrPort
}

type mapping struct {
	nonce   pcp.Nonce
	ext     uint16
	expires time.Time
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	alsoNATPMP             bool // SetAlsoNATPMP
	conn, other, otherAddr *net.UDPConn
	wg                     sync.WaitGroup
	closeOnce              sync.Once

	mu          sync.Mutex
	mode        Mode
	code        pcp.ResultCode
	errLifetime uint32
	external    netip.Addr
	epochFn     func() uint32
	start       time.Time
	maxLifetime uint32
	dropFirst   int
	extraOpts   []pcp.Option
	natpmpErr   pcp.NATPMPResult
	onMap       func(MapEvent)
	reqs        []Request
	maps        map[mapKey]mapping
	natpmpMaps  map[mapKey]mapping
}

// New starts a server on 127.0.0.1 with a random port. The external address
// it hands out is 203.0.113.1.
func New() (*Server, error) { return NewAt(netip.MustParseAddrPort("127.0.0.1:0")) }

// NewAt starts a server on addr (port 0: a random one), in the network
// namespace of the calling thread: the provider's PCP server in a lab
// namespace. FromOtherAddr answers from 127.0.0.2 only on 127.0.0.1.
func NewAt(addr netip.AddrPort) (*Server, error) {
	lc := func(addr string) (*net.UDPConn, error) {
		ap := netip.MustParseAddrPort(addr)
		network := "udp4"
		if ap.Addr().Is6() {
			network = "udp6"
		}
		return net.ListenUDP(network, net.UDPAddrFromAddrPort(ap))
	}
	conn, err := lc(addr.String())
	if err != nil {
		return nil, err
	}
	other, err := lc(netip.AddrPortFrom(addr.Addr(), 0).String())
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &Server{
		conn:        conn,
		other:       other,
		external:    netip.MustParseAddr("203.0.113.1"),
		start:       time.Now(),
		maxLifetime: 86400,
		maps:        make(map[mapKey]mapping),
		natpmpMaps:  make(map[mapKey]mapping),
	}
	// 127.0.0.2 is loopback on Linux; without it FromOtherAddr falls back
	// to FromOtherPort.
	if addr.Addr() == netip.MustParseAddr("127.0.0.1") {
		if oa, err := lc("127.0.0.2:0"); err == nil {
			s.otherAddr = oa
		}
	}
	s.wg.Add(1)
	go s.loop()
	return s, nil
}

// Addr is where requests go.
func (s *Server) Addr() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Close stops the server and waits for its goroutine.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.conn.Close()
		s.other.Close()
		if s.otherAddr != nil {
			s.otherAddr.Close()
		}
		s.wg.Wait()
	})
	return nil
}

// SetAlsoNATPMP makes a PCP server (mode Normal) answer NAT-PMP requests
// too, as miniupnpd does.
func (s *Server) SetAlsoNATPMP(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alsoNATPMP = on
}

// SetMode changes how the server answers from now on.
func (s *Server) SetMode(m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
}

// SetError makes the server answer every request with code and the error
// lifetime (mode ErrorResult).
func (s *Server) SetError(code pcp.ResultCode, lifetime uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode, s.code, s.errLifetime = ErrorResult, code, lifetime
}

// SetNATPMPError makes the NAT-PMP side (mode NATPMPOnly) answer r
// (NATPMPSuccess: answer normally).
func (s *Server) SetNATPMPError(r pcp.NATPMPResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.natpmpErr = r
}

// SetExternal changes the external address of later answers.
func (s *Server) SetExternal(a netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.external = a
}

// SetEpoch makes the server's epoch time come from f (nil: seconds since
// the server started). Tests make it jump back or drift with it.
func (s *Server) SetEpoch(f func() uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epochFn = f
}

// SetMaxLifetime clamps granted lifetimes (default 86400).
func (s *Server) SetMaxLifetime(l uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxLifetime = l
}

// DropNext makes the server ignore the next n requests (then answer).
func (s *Server) DropNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropFirst = n
}

// AddResponseOption makes the server append o to every PCP answer (to test
// that clients ignore unknown optional options, §7.3).
func (s *Server) AddResponseOption(o pcp.Option) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extraOpts = append(s.extraOpts, o)
}

// Forget clears the server's mappings (a restart losing state; pair it
// with an epoch reset through SetEpoch).
func (s *Server) Forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.maps)
	clear(s.natpmpMaps)
}

// Received is the number of datagrams received.
func (s *Server) Received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// Requests returns a copy of what was received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Mappings is the number of mappings the server holds (PCP and NAT-PMP).
func (s *Server) Mappings() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.maps) + len(s.natpmpMaps)
}

func (s *Server) epochLocked() uint32 {
	if s.epochFn != nil {
		return s.epochFn()
	}
	return uint32(time.Since(s.start) / time.Second)
}

// MapEvent is a mapping the server made, renewed or deleted (Lifetime 0).
type MapEvent struct {
	Proto    uint8
	Internal netip.AddrPort // the header's client address or THIRD_PARTY's
	External netip.AddrPort
	Lifetime uint32
}

// SetOnMap makes the server call f after each MAP it answers with
// SUCCESS (nil: none), outside its lock and before the answer is sent:
// a test makes the real NAT follow (the provider's NAT64 with tayga and
// nftables).
func (s *Server) SetOnMap(f func(MapEvent)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onMap = f
}

func (s *Server) loop() {
	defer s.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		b := append([]byte(nil), buf[:n]...)
		out, via := s.handle(b, from)
		s.mu.Lock()
		onMap := s.onMap
		s.mu.Unlock()
		if ev, ok := mapEvent(b, out); ok && onMap != nil {
			onMap(ev)
		}
		if out != nil {
			via.WriteToUDPAddrPort(out, from)
		}
	}
}

// mapEvent is the MapEvent of the answer out to request b, if it is a MAP
// SUCCESS.
func mapEvent(b, out []byte) (MapEvent, bool) {
	req, err := pcp.ParseRequest(b)
	if err != nil || req.Opcode != pcp.OpMap || req.Map == nil {
		return MapEvent{}, false
	}
	resp, err := pcp.ParseResponse(out)
	if err != nil || resp.Opcode != pcp.OpMap || resp.Result != pcp.Success || resp.Map == nil {
		return MapEvent{}, false
	}
	internal := req.Client
	for _, o := range req.Options {
		if o.Code == pcp.OptThirdParty {
			internal = o.ThirdParty
		}
	}
	return MapEvent{Proto: resp.Map.Protocol, Internal: netip.AddrPortFrom(internal, req.Map.InternalPort),
		External: netip.AddrPortFrom(resp.Map.ExternalAddr, resp.Map.ExternalPort), Lifetime: resp.Lifetime}, true
}

func (s *Server) handle(b []byte, from netip.AddrPort) ([]byte, *net.UDPConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := Request{At: time.Now(), From: from, Raw: b}
	if req, err := pcp.ParseRequest(b); err == nil {
		rec.PCP = &req
	} else if nr, err := pcp.ParseNATPMPRequest(b); err == nil {
		rec.NATPMP = &nr
	}
	s.reqs = append(s.reqs, rec)
	if s.dropFirst > 0 {
		s.dropFirst--
		return nil, nil
	}
	via := s.conn
	switch s.mode {
	case Silent:
		return nil, nil
	case FromOtherPort:
		via = s.other
	case FromOtherAddr:
		via = s.other
		if s.otherAddr != nil {
			via = s.otherAddr
		}
	}
	if len(b) < 2 {
		return nil, nil
	}
	if s.mode == NATPMPOnly || b[0] == pcp.VersionNATPMP {
		if s.mode != NATPMPOnly && b[0] == pcp.VersionNATPMP && !s.alsoNATPMP {
			return nil, nil // a PCP-only server ignores NAT-PMP here
		}
		return s.natpmpLocked(b, rec.NATPMP), via
	}
	if rec.PCP == nil {
		return nil, nil
	}
	resp := s.answerLocked(rec.PCP, from)
	resp.Options = append(resp.Options, s.extraOpts...)
	out := resp.AppendMarshal(nil)
	switch s.mode {
	case RBitClear:
		out[1] &^= 0x80
	case Truncated:
		out = out[:pcp.HeaderSize+8]
	case Oversized:
		for len(out) <= pcp.MaxSize {
			out = append(out, 0, 0, 0, 0)
		}
	}
	return out, via
}

// answerLocked builds the answer to a parsed PCP request.
func (s *Server) answerLocked(req *pcp.Request, from netip.AddrPort) pcp.Response {
	resp := pcp.Response{Version: pcp.Version, Opcode: req.Opcode, Epoch: s.epochLocked()}
	var m *pcp.Map
	var nonce pcp.Nonce
	var internalPort uint16
	switch req.Opcode {
	case pcp.OpMap:
		c := *req.Map
		m = &c
		resp.Map = m
	case pcp.OpPeer:
		c := *req.Peer
		resp.Peer = &c
		m = &c.Map
	}
	if m != nil {
		nonce, internalPort = m.Nonce, m.InternalPort
	}
	for _, o := range req.Options {
		if o.Code == pcp.OptThirdParty {
			resp.Options = append(resp.Options, o)
		}
	}
	switch s.mode {
	case ErrorResult:
		resp.Result, resp.Lifetime = s.code, s.errLifetime
		return resp
	case WrongNonce:
		if m != nil {
			m.Nonce[0] ^= 0xff
		}
	case WrongOpcode:
		switch req.Opcode {
		case pcp.OpMap:
			resp.Opcode, resp.Map, resp.Peer = pcp.OpPeer, nil, &pcp.Peer{Map: *m, RemotePort: 1, RemoteAddr: netip.MustParseAddr("198.51.100.1")}
			m = &resp.Peer.Map
		case pcp.OpPeer:
			resp.Opcode, resp.Peer, resp.Map = pcp.OpMap, nil, m
		}
	case WrongPort:
		if m != nil {
			m.InternalPort++
		}
	}
	if m == nil {
		return resp // ANNOUNCE: SUCCESS, lifetime 0
	}
	if req.Client != from.Addr() {
		resp.Result, resp.Lifetime = pcp.AddressMismatch, 1800
		return resp
	}
	internal := req.Client
	for _, o := range req.Options {
		if o.Code == pcp.OptThirdParty {
			internal = o.ThirdParty
		}
	}
	key := mapKey{m.Protocol, netip.AddrPortFrom(internal, internalPort)}
	if req.Opcode == pcp.OpPeer {
		key.proto += 100 // PEER mappings apart from MAP ones
	}
	life := min(req.Lifetime, s.maxLifetime)
	if req.Lifetime == 0 {
		old, ok := s.maps[key]
		if !ok {
			resp.Result, resp.Lifetime = pcp.NoResources, 30 // as miniupnpd
			return resp
		}
		if old.nonce != nonce {
			resp.Result, resp.Lifetime = pcp.NotAuthorized, 30
			return resp
		}
		delete(s.maps, key)
		m.ExternalPort, m.ExternalAddr = old.ext, s.external
		return resp
	}
	ext := m.ExternalPort
	if ext == 0 {
		ext = key.internal.Port()
	}
	if s.mode == OtherPort {
		ext++
	}
	if old, ok := s.maps[key]; ok {
		ext = old.ext
	}
	for s.portTakenLocked(key, ext) {
		ext++
	}
	s.maps[key] = mapping{nonce: nonce, ext: ext, expires: time.Now().Add(time.Duration(life) * time.Second)}
	m.ExternalPort, m.ExternalAddr = ext, s.external
	resp.Lifetime = life
	return resp
}

func (s *Server) portTakenLocked(self mapKey, port uint16) bool {
	for k, v := range s.maps {
		if k != self && k.proto == self.proto && v.ext == port {
			return true
		}
	}
	return false
}

// natpmpLocked answers as a NAT-PMP-only server (RFC 6886).
func (s *Server) natpmpLocked(b []byte, req *pcp.NATPMPRequest) []byte {
	epoch := s.epochLocked()
	if b[0] != pcp.VersionNATPMP {
		// RFC 6886 §3.5: UNSUPP_VERSION, version 0.
		out := []byte{0, b[1] | 0x80, 0, byte(pcp.NATPMPUnsuppVersion)}
		return binary.BigEndian.AppendUint32(out, epoch)
	}
	if req == nil {
		return nil
	}
	resp := pcp.NATPMPResponse{Opcode: req.Opcode, Epoch: epoch}
	switch req.Opcode {
	case pcp.NATPMPOpExternalAddr:
		resp.ExternalAddr = s.external
	default:
		key := mapKey{req.Opcode, netip.AddrPortFrom(netip.Addr{}, req.InternalPort)}
		resp.InternalPort = req.InternalPort
		if req.Lifetime == 0 {
			delete(s.natpmpMaps, key)
			break
		}
		ext := req.SuggestedExternalPort
		if ext == 0 {
			ext = req.InternalPort
		}
		if old, ok := s.natpmpMaps[key]; ok {
			ext = old.ext
		}
		life := min(req.Lifetime, s.maxLifetime)
		s.natpmpMaps[key] = mapping{ext: ext, expires: time.Now().Add(time.Duration(life) * time.Second)}
		resp.ExternalPort, resp.Lifetime = ext, life
	}
	if s.natpmpErr != pcp.NATPMPSuccess {
		resp.Result, resp.ExternalPort, resp.Lifetime = s.natpmpErr, 0, 0
	}
	return resp.AppendMarshal(nil)
}

// SendAnnounce sends an unsolicited ANNOUNCE (RFC 6887 §14.1.3) with the
// server's current epoch from its request port to to.
func (s *Server) SendAnnounce(to netip.AddrPort) error {
	s.mu.Lock()
	resp := pcp.Response{Version: pcp.Version, Opcode: pcp.OpAnnounce, Epoch: s.epochLocked()}
	s.mu.Unlock()
	_, err := s.conn.WriteToUDPAddrPort(resp.AppendMarshal(nil), to)
	return err
}

// SendMappingUpdate sends an unsolicited MAP response (RFC 6887 §14.2) for
// the mapping of proto/internal (made through this server) with a new
// external port and the given external address, to to.
func (s *Server) SendMappingUpdate(to netip.AddrPort, proto uint8, internal netip.AddrPort, ext netip.AddrPort, lifetime uint32) error {
	s.mu.Lock()
	key := mapKey{proto, internal}
	old, ok := s.maps[key]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("pcptest: no mapping %d %v", proto, internal)
	}
	old.ext = ext.Port()
	s.maps[key] = old
	s.external = ext.Addr()
	resp := pcp.Response{Version: pcp.Version, Opcode: pcp.OpMap, Lifetime: lifetime, Epoch: s.epochLocked(),
		Map: &pcp.Map{Nonce: old.nonce, Protocol: proto, InternalPort: internal.Port(), ExternalPort: ext.Port(), ExternalAddr: ext.Addr()}}
	s.mu.Unlock()
	_, err := s.conn.WriteToUDPAddrPort(resp.AppendMarshal(nil), to)
	return err
}

// SendNATPMPAddress sends an unsolicited NAT-PMP external address
// announcement (RFC 6886 §3.2.1) to to.
func (s *Server) SendNATPMPAddress(to netip.AddrPort) error {
	s.mu.Lock()
	resp := pcp.NATPMPResponse{Opcode: pcp.NATPMPOpExternalAddr, Epoch: s.epochLocked(), ExternalAddr: s.external}
	s.mu.Unlock()
	_, err := s.conn.WriteToUDPAddrPort(resp.AppendMarshal(nil), to)
	return err
}

// SendRaw sends b from the server's request port to to.
func (s *Server) SendRaw(to netip.AddrPort, b []byte) error {
	_, err := s.conn.WriteToUDPAddrPort(b, to)
	return err
}
