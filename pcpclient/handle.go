package pcpclient

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
)

// readLoop reads one socket until it is closed: a server address's socket
// (s set) or an announcement listener (s nil).
func (c *Client) readLoop(pc packetConn, s *server) {
	defer c.wg.Done()
	buf := make([]byte, 2048) // more than MaxSize, to see oversized answers
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if isClosed(err) || c.ctx.Err() != nil {
				return
			}
			c.log.Debug("read", "err", err)
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond): // a transient error (ICMP): do not spin
			}
			continue
		}
		c.handle(buf[:n], from, s)
	}
}

// handle validates one datagram (RFC 6887 §8.3) and dispatches it.
// Everything not accepted is dropped and counted in Status.Dropped.
func (c *Client) handle(b []byte, from netip.AddrPort, sock *server) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	from = netip.AddrPortFrom(from.Addr().Unmap().WithZone(""), from.Port())
	var s *server
	for _, x := range c.servers {
		if netip.AddrPortFrom(x.addr.Addr().WithZone(""), x.addr.Port()) == from {
			s = x
		}
	}
	if s == nil && sock == nil {
		s = c.linkAnnouncerLocked(b, from)
	}
	if s == nil || (sock != nil && s != sock) || len(b) < 4 || b[1]&0x80 == 0 {
		c.st.Dropped++
		return
	}
	viaAnnounce := sock == nil
	switch b[0] {
	case pcp.VersionNATPMP:
		c.handleNATPMP(s, b, now, viaAnnounce)
	case pcp.Version:
		c.handlePCP(s, b, now, viaAnnounce)
	default:
		// A version we do not speak: a server answering UNSUPP_VERSION
		// with a version other than 0 and 2 (RFC 6887 §9 step 5). Only
		// an answer, on the request socket, to a pending request of that
		// opcode, from a server that never answered PCP.
		resp, _ := pcp.ParseResponse(b)
		var pending []*txn
		if !viaAnnounce && !s.pcpSeen && resp.Result == pcp.UnsuppVersion {
			pending = c.pendingPCPLocked(s, b[1]&0x7f)
		}
		if len(pending) == 0 {
			c.st.Dropped++
			return
		}
		c.acceptLocked(s, now)
		re := c.resultError(pcp.Opcode(b[1]&0x7f), pcp.UnsuppVersion, 30, now)
		c.st.LastError = re.Error()
		for _, t := range pending {
			c.finishLocked(t, MapResult{}, re)
		}
	}
}

// acceptLocked books a valid answer from s.
func (c *Client) acceptLocked(s *server, now time.Time) {
	c.st.Received++
	c.st.LastAnswer = now
	c.st.Server = s.addr
	c.st.LastError = ""
	c.preferred = s.addr
	if c.unreachable {
		c.unreachable = false
		c.emit(Event{Kind: EventReachable, Server: s.addr})
	}
}

// epochLocked runs the §8.5 check on an accepted answer and reports state
// loss.
func (c *Client) epochLocked(s *server, epoch uint32, now time.Time) bool {
	return c.epochStrictLocked(s, epoch, now, false)
}

// epochStrictLocked is epochLocked; announced: the answer to a request
// sent because the server announced a restart (epochState.checkStrict).
func (c *Client) epochStrictLocked(s *server, epoch uint32, now time.Time, announced bool) bool {
	valid := s.epoch.checkStrict(epoch, now, announced)
	c.st.Epoch = epoch
	if !valid {
		c.log.Info("PCP server lost state", "server", s.addr, "epoch", epoch)
		c.emit(Event{Kind: EventStateLost, Server: s.addr})
	}
	return valid
}

// noteExternalLocked records the provider's external IPv4 address and tells
// whether it changed from a known one.
func (c *Client) noteExternalLocked(a netip.Addr) bool {
	a = a.Unmap()
	if !a.Is4() || !pcp.UsableExternal(a) {
		return false
	}
	changed := c.ext4.IsValid() && c.ext4 != a
	c.ext4 = a
	return changed
}

// resultError builds the error of an error result and its hold time: the
// server's error lifetime, limited to 24 h, and to 30 min for the
// short-lifetime errors (RFC 6887 §7.4, §8.3, §15).
func (c *Client) resultError(op pcp.Opcode, code pcp.ResultCode, lifetime uint32, now time.Time) *ResultError {
	hold := time.Duration(lifetime) * time.Second
	limit := maxErrorLifetime
	if !code.LongLifetime() {
		limit = maxShortErrorLife
	}
	hold = min(hold, limit)
	return &ResultError{Op: op, Code: code, Lifetime: lifetime, Until: now.Add(hold)}
}

// linkAnnouncerLocked is the server a PCP ANNOUNCE from an IPv6
// link-local address stands for: the first IPv6 server, or nil. RFC 6887
// §14.1.3 has a server send its restart announcement from the unicast
// address it takes requests on, but for ff02::1 the kernel picks the
// link-local one (RFC 6724 rule 2): miniupnpd 2.3.9 sends it so. The
// announcement listener only takes what arrives on the WAN interfaces,
// and an announcement is only a reason to ask the server (at most once
// per announceHold): taking one from the link costs at worst one ANNOUNCE
// request to the real server.
func (c *Client) linkAnnouncerLocked(b []byte, from netip.AddrPort) *server {
	if !from.Addr().Is6() || !from.Addr().IsLinkLocalUnicast() || len(b) < 2 || b[0] != pcp.Version ||
		b[1] != 0x80|byte(pcp.OpAnnounce) || c.natpmp {
		return nil
	}
	for _, x := range c.servers {
		if x.addr.Addr().Is6() {
			return x
		}
	}
	return nil
}

func (c *Client) handlePCP(s *server, b []byte, now time.Time, viaAnnounce bool) {
	if len(b) < pcp.HeaderSize || len(b) > pcp.MaxSize || len(b)%4 != 0 {
		c.st.Dropped++
		return
	}
	resp, err := pcp.ParseResponse(b)
	if err != nil {
		c.st.Dropped++
		return
	}
	switch resp.Opcode {
	case pcp.OpAnnounce:
		if t := c.txns[dispatchKey{op: uint8(pcp.OpAnnounce)}]; t != nil && !viaAnnounce && t.sentTo[s.addr] && !t.givenUp[s.addr] {
			// The answer to the client's own ANNOUNCE request: the
			// server speaks PCP, whatever the result (RFC 6887 §14 lets a
			// server leave ANNOUNCE out: UNSUPP_OPCODE), but for
			// ADDRESS_MISMATCH (a NAT between: not a usable server).
			s.announced = false
			s.pcpSeen = true
			c.acceptLocked(s, now)
			switch resp.Result {
			case pcp.Success:
				c.epochStrictLocked(s, resp.Epoch, now, t.announced)
				c.finishLocked(t, MapResult{Epoch: resp.Epoch, Server: s.addr, At: now}, nil)
			case pcp.AddressMismatch:
				c.finishLocked(t, MapResult{}, c.resultError(pcp.OpAnnounce, resp.Result, resp.Lifetime, now))
			default:
				c.finishLocked(t, MapResult{Server: s.addr, At: now}, nil)
			}
			return
		}
		if resp.Result != pcp.Success {
			c.st.Dropped++
			return
		}
		// RFC 6887 §14.1.3: a server sends an unsolicited ANNOUNCE when it
		// may have lost state. It is a reason to ask, not an answer: its
		// epoch is not taken; the client sends its own ANNOUNCE request,
		// whose answer's epoch says whether the server lost state (§8.5).
		// Repeats of one announcement ask once.
		if s.announced {
			c.st.Dropped++
			return
		}
		s.announced = true
		c.askAgainLocked(s, now, kindAnnounce)
		return
	case pcp.OpMap, pcp.OpPeer:
	default:
		c.st.Dropped++
		return
	}
	m := resp.Map
	if resp.Opcode == pcp.OpPeer && resp.Peer != nil {
		m = &resp.Peer.Map
	}
	if m == nil {
		c.st.Dropped++
		return
	}
	key := dispatchKey{op: uint8(resp.Opcode), proto: m.Protocol, port: m.InternalPort, nonce: m.Nonce}
	var tp netip.Addr
	for _, o := range resp.Options {
		if o.Code == pcp.OptThirdParty {
			tp = o.ThirdParty.Unmap()
		}
	}
	t := c.txns[key]
	if t == nil || viaAnnounce {
		if resp.Opcode == pcp.OpMap && c.mappingUpdateLocked(s, &resp, m, tp, now) {
			return
		}
		c.st.Dropped++
		return
	}
	if !t.sentTo[s.addr] || t.givenUp[s.addr] {
		c.st.Dropped++
		return
	}
	if t.kind == kindPeer && (resp.Peer == nil || resp.Peer.RemotePort != t.remote.Port() || resp.Peer.RemoteAddr.Unmap() != t.remote.Addr().Unmap()) {
		c.st.Dropped++
		return
	}
	// A renewal and a delete of the same mapping share the key: a
	// successful answer whose lifetime is of the other kind (a delete is
	// answered with lifetime 0, §15; a mapping with more) answers the
	// other request, sent before this one and superseded by it. Taken, it
	// would end a delete the server has not done (the mapping left there).
	if t.kind == kindMap && resp.Result == pcp.Success && (t.req.Lifetime == 0) != (resp.Lifetime == 0) {
		c.st.Dropped++
		return
	}
	// THIRD_PARTY: the internal address must match too (§11.4). A server
	// that does not echo the option is accepted (the nonce matched).
	if t.req.ThirdParty && tp.IsValid() && tp != t.req.Internal.Addr() {
		c.st.Dropped++
		return
	}
	s.announced = false
	s.pcpSeen = true
	c.acceptLocked(s, now)
	c.epochLocked(s, resp.Epoch, now)
	c.completePCPLocked(t, s, &resp, m, now)
}

// mappingUpdateLocked handles an unsolicited MAP response (RFC 6887 §14.2)
// for a mapping this client made; it reports whether it was one.
func (c *Client) mappingUpdateLocked(s *server, resp *pcp.Response, m *pcp.Map, tp netip.Addr, now time.Time) bool {
	internal := s.local
	if tp.IsValid() {
		internal = tp
	}
	mk := mapKey{m.Protocol, netip.AddrPortFrom(internal, m.InternalPort)}
	k, ok := c.known[mk]
	if !ok || k.res.Nonce != m.Nonce {
		return false
	}
	s.announced = false
	c.acceptLocked(s, now)
	c.epochLocked(s, resp.Epoch, now)
	if resp.Result != pcp.Success || resp.Lifetime == 0 {
		// The server ended the mapping (§14.2: an error result, or
		// lifetime 0): the owner must forget it too.
		c.log.Info("PCP server withdrew a mapping", "server", s.addr, "proto", m.Protocol, "internal", mk.internal, "err", resp.Result)
		delete(c.known, mk)
		res, req := k.res, k.req
		res.Lifetime, res.Epoch, res.At, res.Server = 0, resp.Epoch, now, s.addr
		c.emit(Event{Kind: EventWithdrawn, Server: s.addr, Mapping: &res, Request: &req,
			Error: c.resultError(pcp.OpMap, resp.Result, resp.Lifetime, now)})
		return true
	}
	ext := netip.AddrPortFrom(m.ExternalAddr.Unmap(), m.ExternalPort)
	if resp.Lifetime != 0 && !pcp.UsableExternal(ext.Addr()) {
		c.st.Dropped++
		return true
	}
	addrChanged := c.noteExternalLocked(ext.Addr())
	if ext == k.res.External && resp.Lifetime != 0 {
		return true // a duplicate of the answer we have
	}
	res := k.res
	res.External, res.Lifetime, res.Epoch, res.At, res.Server = ext, resp.Lifetime, resp.Epoch, now, s.addr
	req := k.req
	c.known[mk] = known{req: req, res: res}
	c.log.Info("mapping update", "server", s.addr, "proto", m.Protocol, "internal", mk.internal, "external", ext, "lifetime", resp.Lifetime)
	ev := Event{Kind: EventExternalChanged, Server: s.addr, Mapping: &res, Request: &req}
	if addrChanged || ext.Addr().Is4() {
		ev.External = ext.Addr()
	}
	c.emit(ev)
	return true
}

// completePCPLocked turns a matched PCP answer into t's result.
func (c *Client) completePCPLocked(t *txn, s *server, resp *pcp.Response, m *pcp.Map, now time.Time) {
	if resp.Result != pcp.Success {
		re := c.resultError(resp.Opcode, resp.Result, resp.Lifetime, now)
		isDelete := t.kind == kindMap && t.req.Lifetime == 0
		if isDelete && resp.Result == pcp.NoResources {
			// miniupnpd's answer to deleting what it does not have: done.
			delete(c.known, mapKey{t.req.Protocol, t.req.Internal})
		} else if resp.Lifetime > 0 {
			c.backoff[t.id] = re
		}
		c.st.LastError = re.Error()
		c.finishLocked(t, MapResult{}, re)
		return
	}
	res := MapResult{
		External: netip.AddrPortFrom(m.ExternalAddr.Unmap(), m.ExternalPort),
		Lifetime: resp.Lifetime,
		Epoch:    resp.Epoch,
		Nonce:    t.req.Nonce,
		Server:   s.addr,
		At:       now,
	}
	for _, o := range resp.Options {
		if p := o.Prefix64.Prefix; o.Code == pcp.OptPrefix64 && p.IsValid() && p.Addr().Is6() && p.Bits() > 0 {
			res.Prefix64 = append(res.Prefix64, p.Masked())
		}
	}
	if t.req.Lifetime > 0 && resp.Lifetime > 0 && !pcp.UsableExternal(res.External.Addr()) {
		// No NAT gives out such an address (zero, loopback, multicast,
		// reserved): not an answer to take.
		c.st.Dropped++
		c.st.LastError = "the server offered external address " + res.External.Addr().String()
		return
	}
	if t.req.Internal.Addr().Unmap().Is4() || !res.External.Addr().Is4() {
		// An IPv4 port for an IPv6 host is the NAT64's (RFC 7225), which
		// need not be the address the CPE's own IPv4 flows get.
		c.externalFromResultLocked(s, res.External.Addr())
	}
	c.completeMapLocked(t, res, now)
}

// externalFromResultLocked reports a changed external address.
func (c *Client) externalFromResultLocked(s *server, a netip.Addr) {
	if c.noteExternalLocked(a) {
		c.log.Info("external address changed", "server", s.addr, "external", a)
		c.emit(Event{Kind: EventExternalChanged, Server: s.addr, External: a.Unmap()})
	}
}

// completeMapLocked finishes a successful MAP or PEER (either protocol):
// the PREFER_FAILURE check (§13.2) and the book of known mappings.
func (c *Client) completeMapLocked(t *txn, res MapResult, now time.Time) {
	mk := mapKey{t.req.Protocol, t.req.Internal}
	if t.kind != kindMap {
		c.finishLocked(t, res, nil)
		return
	}
	if t.req.Lifetime == 0 || res.Lifetime == 0 {
		delete(c.known, mk)
		c.finishLocked(t, res, nil)
		return
	}
	sug := t.req.SuggestedExternal
	if t.req.PreferFailure && ((sug.Port() != 0 && res.External.Port() != sug.Port()) ||
		(sug.Addr().IsValid() && !sug.Addr().IsUnspecified() && res.External.Addr().IsValid() && res.External.Addr() != sug.Addr().Unmap())) {
		// The server gave something else: give it back (§13.2).
		c.log.Info("server ignored PREFER_FAILURE, deleting", "proto", t.req.Protocol, "internal", t.req.Internal, "external", res.External)
		del := t.req
		del.Lifetime, del.PreferFailure, del.Filters = 0, false, nil
		del.Nonce = t.req.Nonce
		c.finishLocked(t, MapResult{}, &ResultError{Op: pcp.OpMap, Code: pcp.CannotProvideExternal, Until: now, ByClient: true})
		if !c.closed {
			c.startBackgroundLocked(kindMap, del)
		}
		return
	}
	if t.addrProbe {
		// ExternalAddr's probe: the answer carried the address; the
		// mapping goes back now (§11.6), also when its caller stopped
		// waiting before the answer (a short deadline), which would
		// otherwise leave it at the server for its lifetime.
		del := MapRequest{Protocol: t.req.Protocol, Internal: t.req.Internal, Nonce: t.req.Nonce, ThirdParty: t.req.ThirdParty}
		c.finishLocked(t, res, nil)
		if !c.closed {
			c.startBackgroundLocked(kindMap, del)
		}
		return
	}
	c.known[mk] = known{req: t.req, res: res}
	c.finishLocked(t, res, nil)
}

// natpmpResult maps NAT-PMP result codes to PCP ones (RFC 6886 §3.5).
func natpmpResult(r pcp.NATPMPResult) pcp.ResultCode {
	switch r {
	case pcp.NATPMPUnsuppVersion:
		return pcp.UnsuppVersion
	case pcp.NATPMPNotAuthorized:
		return pcp.NotAuthorized
	case pcp.NATPMPNetworkFailure:
		return pcp.NetworkFailure
	case pcp.NATPMPOutOfResources:
		return pcp.NoResources
	case pcp.NATPMPUnsuppOpcode:
		return pcp.UnsuppOpcode
	}
	return pcp.MalformedRequest
}

// handleNATPMP takes a version-0 datagram: the answer to a NAT-PMP
// request of the client's (in NAT-PMP mode, or the request that confirms
// a fallback), in PCP mode the UNSUPP_VERSION of a NAT-PMP-only server
// (RFC 6887 §9, Appendix A), in NAT-PMP mode an address announcement
// (RFC 6886 §3.2.1). Only answers to requests of the client's own change
// what it believes: an announcement makes it ask again.
func (c *Client) handleNATPMP(s *server, b []byte, now time.Time, viaAnnounce bool) {
	resp, err := pcp.ParseNATPMPResponse(b)
	if viaAnnounce {
		// 5350 carries announcements only (RFC 6886 §3.2.1), never
		// answers: an address announcement is a reason to ask.
		if err == nil && c.natpmp && resp.Opcode == pcp.NATPMPOpExternalAddr && resp.Result == pcp.NATPMPSuccess {
			c.askAgainLocked(s, now, kindAddr)
			return
		}
		c.st.Dropped++
		return
	}
	if err == nil {
		key := dispatchKey{natpmp: true, op: resp.Opcode}
		if resp.Opcode != pcp.NATPMPOpExternalAddr {
			key.port = resp.InternalPort
		}
		if t := c.txns[key]; t != nil && t.sentTo[s.addr] && !t.givenUp[s.addr] &&
			(c.natpmp || t.confirm || resp.Result != pcp.NATPMPUnsuppVersion) {
			c.natpmpAnswerLocked(t, s, resp, now)
			return
		}
	}
	if !c.natpmp {
		if _, perr := pcp.ParseResponse(b); errors.Is(perr, pcp.ErrNATPMPOnly) {
			c.unsuppVersionLocked(s, b[1]&0x7f)
			return
		}
	}
	// Anything else on the request socket (an address announcement sent
	// there, an answer to nothing pending) is not taken.
	c.st.Dropped++
}

// askAgainLocked answers an unsolicited announcement from s: the client
// sends its own request (kind: NAT-PMP external address, or PCP
// ANNOUNCE) and believes only its answer. It asks at most once per
// announceHold: an announcement within the hold is not lost, it is asked
// about when the hold ends (a server restarted twice in a row is seen; a
// flood of spoofed announcements costs one request a hold).
func (c *Client) askAgainLocked(s *server, now time.Time, kind txnKind) {
	c.st.Announcements++
	if c.askArmed {
		return
	}
	if wait := c.lastAnnounce.Add(announceHold).Sub(now); !c.lastAnnounce.IsZero() && wait > 0 && wait <= announceHold {
		c.askArmed = true
		time.AfterFunc(wait, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.askArmed = false
			if !c.closed {
				c.askAgainLocked(s, c.now(), kind)
			}
		})
		return
	}
	c.lastAnnounce = now
	if c.natpmp {
		kind = kindAddr
	}
	c.log.Debug("announcement: asking the server", "server", s.addr)
	if !c.closed {
		c.startProbeLocked(kind).announced = true
	}
}

// pendingPCPLocked returns the PCP transactions sent to s and not yet
// answered whose opcode is op (0 ANNOUNCE, 1 MAP, 2 PEER); op 0xff: any.
func (c *Client) pendingPCPLocked(s *server, op uint8) []*txn {
	var pending []*txn
	for _, t := range c.txns {
		if t.kind == kindAddr || t.finished || !t.sentTo[s.addr] || t.givenUp[s.addr] || slices.Contains(pending, t) {
			continue
		}
		if op != 0xff && op != t.pcpOpcode() {
			continue
		}
		pending = append(pending, t)
	}
	return pending
}

// pcpOpcode is the PCP opcode t sends.
func (t *txn) pcpOpcode() uint8 {
	switch t.kind {
	case kindAnnounce:
		return uint8(pcp.OpAnnounce)
	case kindPeer:
		return uint8(pcp.OpPeer)
	}
	return uint8(pcp.OpMap)
}

// unsuppVersionLocked takes NAT-PMP's UNSUPP_VERSION (its opcode op is
// the request's) to a PCP request (RFC 6887 §9, Appendix A). It carries no
// nonce, so anyone who can send from the server's address can forge it:
// it only says "maybe NAT-PMP", and it ends nothing and changes nothing.
// Taken only on the request socket, while a PCP request of that opcode to
// s is pending, from a server that never answered PCP, it makes the client
// send a NAT-PMP request of its own (the confirm) and go on retransmitting
// its PCP requests; confirmAnswerLocked and natpmpTimeoutLocked decide.
func (c *Client) unsuppVersionLocked(s *server, op uint8) {
	if s.pcpSeen || len(c.pendingPCPLocked(s, op)) == 0 {
		c.st.Dropped++
		return
	}
	if s.natpmpConfirmed {
		return // confirmed already: the pending requests' timeouts decide
	}
	for _, t := range c.joins {
		if t.confirm && !t.finished && !t.stopped {
			return // already checking
		}
	}
	c.log.Info("PCP server answered UNSUPP_VERSION 0: checking NAT-PMP", "server", s.addr)
	if !c.closed {
		c.startProbeLocked(kindAddr).confirm = true
	}
}

// confirmAnswerLocked takes the answer to the confirm while the client
// speaks PCP. From a server that has never answered PCP, a successful one
// records that it may speak only NAT-PMP, and the pending PCP requests to
// it are sent again at once: if such a request, sent after this answer,
// goes unanswered for its retransmission time, the client falls back
// (natpmpTimeoutLocked). A server that speaks both (miniupnpd) answers
// that request in PCP, and the client stays with PCP: a forged
// UNSUPP_VERSION costs a NAT-PMP request and one early retransmission.
// Nothing else is taken from the answer until the fallback (not its
// address nor its epoch): the client still speaks PCP.
func (c *Client) confirmAnswerLocked(t *txn, s *server, resp pcp.NATPMPResponse, now time.Time) {
	c.finishLocked(t, MapResult{}, nil)
	if s.pcpSeen || resp.Result != pcp.NATPMPSuccess || s.natpmpConfirmed {
		c.st.Dropped++
		return
	}
	s.natpmpConfirmed = true
	s.natpmpEpoch, s.natpmpAt, s.natpmpExt = resp.Epoch, now, netip.Addr{}
	if pcp.UsableExternal(resp.ExternalAddr) {
		s.natpmpExt = resp.ExternalAddr
	}
	c.log.Info("the server answered NAT-PMP: asking once more in PCP before falling back", "server", s.addr)
	for _, p := range c.pendingPCPLocked(s, 0xff) {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// natpmpTimeoutLocked is called when a transmission of t to s went
// unanswered for its retransmission time. When it was the second PCP
// request sent after s answered the confirm to go unanswered, and s has
// still never answered PCP, s speaks only NAT-PMP: the UNSUPP_VERSION was
// followed by the server's own answer to the client's NAT-PMP request,
// and no PCP answer came for two retransmission times (3 s, then 6 s by
// default): a PCP server that is only slow (a proxy asking its own
// upstream, RFC 7648; a lost packet) while one UNSUPP_VERSION is forged
// answers within that. With ProtocolPCP t ends with ErrNATPMPOnly;
// with ProtocolAuto the client falls back: the confirm's address and
// epoch are taken, the other pending requests to s are sent again in
// NAT-PMP at once, and natpmpTimeoutLocked reports that t goes on in
// NAT-PMP (a pending ANNOUNCE, Probe's, ends: the server answered).
func (c *Client) natpmpTimeoutLocked(t *txn, s *server, now time.Time) bool {
	if !t.afterConfirm || t.finished || c.natpmp || s.pcpSeen || !s.natpmpConfirmed || !slices.Contains(c.servers, s) {
		return false // (s gone: the server list changed, and with it what c.natpmp is about)
	}
	if t.silentAfterConfirm++; t.silentAfterConfirm < 2 {
		return false
	}
	c.acceptLocked(s, now)
	if c.cfg.Protocol == ProtocolPCP {
		c.st.LastError = "the server speaks only NAT-PMP"
		if t.kind == kindAnnounce {
			c.finishLocked(t, MapResult{}, ErrNATPMPOnly)
		} else {
			re := c.resultError(pcp.Opcode(t.pcpOpcode()), pcp.UnsuppVersion, 30, now)
			c.finishLocked(t, MapResult{}, fmt.Errorf("%w: %w", ErrNATPMPOnly, re))
		}
		return false
	}
	c.log.Info("PCP server speaks only NAT-PMP: falling back", "server", s.addr)
	c.natpmp = true
	c.epochStrictLocked(s, s.natpmpEpoch, s.natpmpAt, false)
	if s.natpmpExt.IsValid() {
		c.externalFromResultLocked(s, s.natpmpExt)
	}
	announced := MapResult{Epoch: s.natpmpEpoch, Server: s.addr, At: s.natpmpAt}
	for _, p := range c.pendingPCPLocked(s, 0xff) {
		if p.kind == kindAnnounce {
			c.finishLocked(p, announced, nil)
			continue
		}
		if p == t {
			continue
		}
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	if t.kind == kindAnnounce {
		c.finishLocked(t, announced, nil)
	}
	return !t.finished
}

// natpmpAnswerLocked completes t with a NAT-PMP answer from s.
func (c *Client) natpmpAnswerLocked(t *txn, s *server, resp pcp.NATPMPResponse, now time.Time) {
	if t.kind == kindMap && resp.Result == pcp.NATPMPSuccess && (t.req.Lifetime == 0) != (resp.Lifetime == 0) {
		// The answer to a renewal or a delete of the same mapping sent
		// before this request (RFC 6886 §3.4: a delete is answered with
		// lifetime 0): not this one's (see handlePCP).
		c.st.Dropped++
		return
	}
	if t.confirm && !c.natpmp {
		c.confirmAnswerLocked(t, s, resp, now)
		return
	}
	c.acceptLocked(s, now)
	c.epochStrictLocked(s, resp.Epoch, now, t.announced)
	if resp.Result != pcp.NATPMPSuccess {
		code := natpmpResult(resp.Result)
		// NAT-PMP errors carry no lifetime: hold them as RFC 6887 §7.4
		// recommends for the PCP code (30 s short, 30 min long).
		life := uint32(30)
		if code.LongLifetime() {
			life = 30 * 60
		}
		re := c.resultError(pcp.OpMap, code, life, now)
		if t.kind == kindMap && t.req.Lifetime == 0 {
			re.Lifetime, re.Until = 0, now
		} else if t.kind == kindMap {
			c.backoff[t.id] = re
		}
		c.st.LastError = re.Error()
		c.finishLocked(t, MapResult{}, re)
		return
	}
	if t.kind == kindAddr {
		if !pcp.UsableExternal(resp.ExternalAddr) {
			c.st.LastError = "the server reported external address " + resp.ExternalAddr.String()
			c.finishLocked(t, MapResult{}, fmt.Errorf("%w: %v", ErrUnusableExternal, resp.ExternalAddr))
			return
		}
		c.externalFromResultLocked(s, resp.ExternalAddr)
		c.finishLocked(t, MapResult{External: netip.AddrPortFrom(resp.ExternalAddr, 0), Epoch: resp.Epoch, Server: s.addr, At: now}, nil)
		return
	}
	res := MapResult{
		External: netip.AddrPortFrom(c.ext4, resp.ExternalPort),
		Lifetime: resp.Lifetime,
		Epoch:    resp.Epoch,
		Nonce:    t.req.Nonce,
		Server:   s.addr,
		At:       now,
	}
	c.completeMapLocked(t, res, now)
}
