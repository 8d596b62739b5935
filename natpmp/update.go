package natpmp

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/pcp"
)

// maxUpdateRecords bounds the PCP mappings whose clients are remembered
// for Mapping Updates (the least recently heard from go first).
const maxUpdateRecords = 4096

// updateSchedule is when a Mapping Update is sent (RFC 6887 §14.2): three
// times, the second 250 ms after the first, the third 500 ms after the
// second; the later ones only while the client has not asked again.
var updateSchedule = [...]time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond}

// pcpRecord is where the answers for one PCP mapping went: a Mapping
// Update goes "to the same client IP address and port that the PCP
// server used to send the prior response for that mapping" (§14.2), from
// the LAN address the request came to (§8.3: the client takes answers
// from its server's address and port only).
type pcpRecord struct {
	client   netip.AddrPort // the request's source
	local    netip.Addr     // the LAN address it was sent to
	nonce    mapping.Nonce
	proto    mapping.Proto
	internal netip.AddrPort
	told     netip.AddrPort // the external endpoint last told
	seen     time.Time      // the client's last request
	gen      uint32         // counts the updates started
}

// updates remembers, per mapping ID, the PCP client to send a Mapping
// Update to.
type updates struct {
	mu sync.Mutex
	m  map[uint32]*pcpRecord
}

// remember notes the answer to a PCP MAP request of src (to the LAN
// address dst) that made or renewed m.
func (u *updates) remember(m mapping.Mapping, src netip.AddrPort, dst netip.Addr, now time.Time) {
	if m.IsPinhole() || !m.External.IsValid() {
		return // a pinhole never moves
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = make(map[uint32]*pcpRecord)
	}
	r := u.m[m.ID]
	if r == nil {
		if len(u.m) >= maxUpdateRecords {
			u.evictLocked()
		}
		r = &pcpRecord{}
		u.m[m.ID] = r
	}
	gen := r.gen
	*r = pcpRecord{client: src, local: dst, nonce: m.Nonce, proto: m.Proto, internal: m.Internal,
		told: m.External, seen: now, gen: gen}
}

// evictLocked forgets the record heard from least recently.
func (u *updates) evictLocked() {
	var oldest uint32
	var at time.Time
	for id, r := range u.m {
		if at.IsZero() || r.seen.Before(at) {
			oldest, at = id, r.seen
		}
	}
	delete(u.m, oldest)
}

// forget drops the records of client's mappings of proto at internal
// (internal port 0: every port) made with nonce (a delete).
func (u *updates) forget(client netip.Addr, proto mapping.Proto, internal netip.AddrPort, nonce mapping.Nonce) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, r := range u.m {
		if r.client.Addr() == client && r.proto == proto && r.nonce == nonce && r.internal.Addr() == internal.Addr() &&
			(internal.Port() == 0 || r.internal.Port() == internal.Port()) {
			delete(u.m, id)
		}
	}
}

func (u *updates) ids() []uint32 {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]uint32, 0, len(u.m))
	for id := range u.m {
		out = append(out, id)
	}
	return out
}

// begin starts an update of id: it returns its record and generation.
func (u *updates) begin(id uint32) (pcpRecord, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.m[id]
	if r == nil {
		return pcpRecord{}, false
	}
	r.gen++
	return *r, true
}

func (u *updates) get(id uint32) (pcpRecord, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.m[id]
	if r == nil {
		return pcpRecord{}, false
	}
	return *r, true
}

func (u *updates) setTold(id uint32, gen uint32, x netip.AddrPort) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if r := u.m[id]; r != nil && r.gen == gen {
		r.told = x
	}
}

// take removes and returns the record of mapping id when it is the
// mapping of client, proto, internal and nonce (the ID of a mapping that
// ended may be another's by now).
func (u *updates) take(id uint32, client netip.Addr, proto mapping.Proto, internal netip.AddrPort, nonce mapping.Nonce) (pcpRecord, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.m[id]
	if r == nil || r.client.Addr() != client || r.proto != proto || r.internal != internal || r.nonce != nonce {
		return pcpRecord{}, false
	}
	delete(u.m, id)
	return *r, true
}

// heard reports whether the client of rec was answered for the same
// mapping (its socket, protocol, internal endpoint and nonce) after since.
func (u *updates) heard(rec pcpRecord, since time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.m {
		if r.client == rec.client && r.proto == rec.proto && r.internal == rec.internal && r.nonce == rec.nonce && r.seen.After(since) {
			return true
		}
	}
	return false
}

func (u *updates) drop(id uint32) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.m, id)
}

// mappingMoved tells the clients of a mapping that moved (the core's
// EventMappingMoved): a PCP client gets a Mapping Update; NAT-PMP
// clients hear the address announcement, with the epoch the core
// restarted, so that they ask for their mappings again (RFC 6886 §3.2.1,
// §3.7).
func (s *Server) mappingMoved(ctx context.Context, wg *sync.WaitGroup, ev mapping.Event, announce func()) {
	switch ev.Mapping.Origin {
	case mapping.OriginNATPMP:
		if s.cfg.NATPMP {
			s.log.Info("announcing: a NAT-PMP mapping moved", "client", ev.Mapping.Client, "external", ev.Mapping.External, "was", ev.Was)
			announce()
		}
	case mapping.OriginPCP:
		if s.cfg.PCP {
			s.startUpdate(ctx, wg, ev.Mapping.ID)
		}
	}
}

// mappingLost tells the PCP client of a mapping the core ended by itself
// (the core's EventMappingLost: the upstream could not give an exact
// mapping its port back, or withdrew the mapping) that it is gone: a
// Mapping Update with the error (RFC 6887 §14.2: CANNOT_PROVIDE_EXTERNAL
// for an exact mapping whose port cannot be provided again), or with
// lifetime 0 when the upstream just deleted it, sent as a move's is. The
// client is not told of a move: asking again, it gets the error too
// (§11.3).
func (s *Server) mappingLost(ctx context.Context, wg *sync.WaitGroup, ev mapping.Event) {
	if !s.cfg.PCP || ev.Mapping.Origin != mapping.OriginPCP {
		return
	}
	m := ev.Mapping
	rec, ok := s.updates.take(m.ID, m.Client, m.Proto, m.Internal, m.Nonce)
	if !ok {
		return // its client was never answered, or is forgotten
	}
	code, lifetime := mapping.PCPResult(ev.Err)
	if ev.Err == nil {
		code, lifetime = pcp.Success, 0
	}
	if ev.Was.IsValid() {
		m.External = ev.Was // what the client knows it by
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.sendLost(ctx, rec, m, code, lifetime)
	}()
}

// sendLost sends the Mapping Update of a mapping that ended on
// updateSchedule, stopping once its client asks again for it.
func (s *Server) sendLost(ctx context.Context, rec pcpRecord, m mapping.Mapping, code pcp.ResultCode, lifetime uint32) {
	started := s.now()
	for i, wait := range updateSchedule {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if i > 0 && s.updates.heard(rec, started) {
			return // the client asked again: it has its answer
		}
		if !s.sendUpdateMsg(rec, s.updateMsg(m, code, lifetime, s.now())) {
			return
		}
		if i == 0 {
			s.log.Info("PCP mapping update: mapping ended", "client", rec.client, "internal", m.Internal, "external", m.External, "result", code)
		}
	}
}

// updateAll sends a Mapping Update to every remembered PCP client whose
// mapping's external endpoint is not what it was told (the upstream's
// external address changed: RFC 6887 §14.2's own example).
func (s *Server) updateAll(ctx context.Context, wg *sync.WaitGroup) {
	if !s.cfg.PCP {
		return
	}
	for _, id := range s.updates.ids() {
		s.startUpdate(ctx, wg, id)
	}
}

func (s *Server) startUpdate(ctx context.Context, wg *sync.WaitGroup, id uint32) {
	rec, ok := s.updates.begin(id)
	if !ok {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.sendUpdates(ctx, id, rec.gen)
	}()
}

// sendUpdates sends the Mapping Update of mapping id on updateSchedule,
// each with the epoch and lease of its time; it stops when the client
// asks again, when another update of the mapping starts, or when the
// mapping is gone or not there upstream.
func (s *Server) sendUpdates(ctx context.Context, id, gen uint32) {
	started := s.now()
	for i, wait := range updateSchedule {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		rec, ok := s.updates.get(id)
		if !ok || rec.gen != gen || i > 0 && rec.seen.After(started) {
			return
		}
		var m mapping.Mapping
		found := false
		for _, x := range s.cfg.Core.Find(mapping.Selector{ID: id}) {
			if x.ID == id && x.Origin == mapping.OriginPCP && x.Client == rec.client.Addr() && x.Nonce == rec.nonce &&
				x.Proto == rec.proto && x.Internal == rec.internal {
				m, found = x, true
			}
		}
		if !found {
			s.updates.drop(id) // gone, or the ID is another mapping's now
			return
		}
		if !m.External.IsValid() || i == 0 && m.External == rec.told {
			return // not there upstream now, or nothing new to tell
		}
		if !s.sendUpdateMsg(rec, s.mappingUpdateMsg(m, s.now())) {
			return
		}
		if i == 0 {
			s.log.Info("PCP mapping update", "client", rec.client, "internal", m.Internal, "external", m.External, "was", rec.told)
		}
		s.updates.setTold(id, gen, m.External)
	}
}

// sendUpdateMsg sends an unsolicited MAP response to rec's client from the
// LAN address it asked (RFC 6887 §14.2); false when it cannot be sent (the
// address is gone, the send failed: counted).
func (s *Server) sendUpdateMsg(rec pcpRecord, msg []byte) bool {
	c := s.connFor(rec.local)
	if c == nil {
		return false
	}
	if _, err := c.conn.WriteToUDPAddrPort(msg, rec.client); err != nil {
		s.stats.sendErrors.Add(1)
		s.debug("mapping update", "client", rec.client, "err", err)
		return false
	}
	s.stats.mappingUpdates.Add(1)
	return true
}

// mappingUpdateMsg is the unsolicited MAP response telling m's client
// where m is now (RFC 6887 §14.2): what a MAP answer would say, with
// THIRD_PARTY when the mapping is for another host and FILTER when it has
// one; no optional options.
func (s *Server) mappingUpdateMsg(m mapping.Mapping, now time.Time) []byte {
	return s.updateMsg(m, pcp.Success, leaseSeconds(m, s.cfg.MaxLifetime, now), now)
}

// updateMsg is an unsolicited MAP response about m with result code and
// lifetime: a Mapping Update, or (an error) the notice that m ended.
func (s *Server) updateMsg(m mapping.Mapping, code pcp.ResultCode, lifetime uint32, now time.Time) []byte {
	r := pcp.Response{
		Version: pcp.Version, Opcode: pcp.OpMap, Result: code,
		Lifetime: lifetime, Epoch: s.cfg.Core.Epoch(now),
		Map: &pcp.Map{
			Nonce: pcp.Nonce(m.Nonce), Protocol: uint8(m.Proto), InternalPort: m.Internal.Port(),
			ExternalPort: m.External.Port(), ExternalAddr: m.External.Addr(),
		},
	}
	if m.Internal.Addr() != m.Client {
		r.Options = append(r.Options, pcp.Option{Code: pcp.OptThirdParty, ThirdParty: m.Internal.Addr()})
	}
	if m.RemoteHost.IsValid() {
		bits := 32
		if m.RemoteHost.Is6() {
			bits = 128
		}
		r.Options = append(r.Options, pcp.Option{Code: pcp.OptFilter,
			Filter: pcp.Filter{Prefix: netip.PrefixFrom(m.RemoteHost, bits), RemotePort: m.RemotePort}})
	}
	return r.AppendMarshal(make([]byte, 0, pcp.HeaderSize+pcp.MapSize+48))
}

// connFor returns the socket bound to the LAN address a.
func (s *Server) connFor(a netip.Addr) *lanConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		if c.local.Addr() == a {
			return c
		}
	}
	return nil
}
