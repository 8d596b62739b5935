package pcpclient

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
)

// txnKind says what a transaction sends.
type txnKind uint8

const (
	kindMap      txnKind = iota // PCP MAP, or NAT-PMP opcode 1/2 after fallback
	kindPeer                    // PCP PEER
	kindAddr                    // NAT-PMP opcode 0 (external address), in either mode
	kindAnnounce                // PCP ANNOUNCE request (§14.1): the probe of a PCP server
)

// dispatchKey finds the transaction a response answers: for PCP the
// opcode, protocol, internal port and nonce (§8.3, §11.4, §12.4); for
// NAT-PMP the opcode and internal port.
type dispatchKey struct {
	natpmp bool
	op     uint8
	proto  uint8
	port   uint16
	nonce  pcp.Nonce
}

// reqID is "the same request" of RFC 6887 §8.3 for error lifetimes: the
// fields that decide the server's answer, without nonce or exact lifetime.
type reqID struct {
	kind          txnKind
	proto         uint8
	internal      netip.AddrPort
	external      netip.AddrPort
	remote        netip.AddrPort
	del           bool
	preferFailure bool
	thirdParty    bool
	filters       string
}

// joinKey identifies identical concurrent calls, which share one
// transaction (a zero nonce joins other zero-nonce calls).
type joinKey struct {
	id       reqID
	nonce    pcp.Nonce
	lifetime uint32
	desc     string
}

// mapKey identifies a mapping this client made.
type mapKey struct {
	proto    uint8
	internal netip.AddrPort
}

// known is what the client remembers of a mapping it made: enough to
// delete it without the caller's nonce and to recognise a Mapping Update.
type known struct {
	req MapRequest
	res MapResult
}

// txn is one request exchange: sent, retransmitted (§8.1.1), answered.
type txn struct {
	kind   txnKind
	req    MapRequest // normalized: Internal set, Nonce set
	remote netip.AddrPort
	id     reqID
	jk     joinKey

	done chan struct{} // closed when res/err are set
	stop chan struct{} // closed when no caller wants it any more
	wake chan struct{} // resend now: NAT-PMP fallback, or the confirm answered

	// confirm: a NAT-PMP request sent in PCP mode to check that the
	// server speaks NAT-PMP before the client falls back (or, with
	// ProtocolPCP, reports ErrNATPMPOnly).
	confirm bool
	// afterConfirm: t's last transmission was a PCP request to a server
	// that had already answered the confirm (server.natpmpConfirmed):
	// if it goes unanswered, the server speaks only NAT-PMP.
	afterConfirm bool
	// silentAfterConfirm counts t's PCP transmissions after the confirm's
	// answer that went unanswered: the fallback needs two (natpmpTimeoutLocked).
	silentAfterConfirm int
	// announced: sent because the server announced it may have lost
	// state (its answer's epoch is checked strictly).
	announced bool
	// addrProbe: ExternalAddr's probe, given back as soon as it is
	// answered, whether its caller still waits or has given up.
	addrProbe bool

	res      MapResult
	err      error
	waiters  int
	finished bool
	stopped  bool
	keys     []dispatchKey
	sentTo   map[netip.AddrPort]bool
	givenUp  map[netip.AddrPort]bool
	timeouts int
}

func filtersKey(fs []pcp.Filter) string {
	s := ""
	for _, f := range fs {
		s += fmt.Sprintf("%v/%d;", f.Prefix, f.RemotePort)
	}
	return s
}

// Map creates or renews a mapping (RFC 6887 §11). A zero r.Nonce makes a
// fresh random one (creation); a renewal passes the MapResult's nonce and,
// as §11.2.1 asks, the assigned external address and port as the
// suggestion. A zero internal address means the client's own source
// address toward the server.
//
// Map returns the server's answer, a *ResultError (errors.As) for an error
// result, ErrBackoff when the same request got an error whose lifetime
// still runs, ErrNoServer, or ErrTimeout wrapping ctx.Err() when ctx ends
// first. In that last case the request goes on in the background for
// Config.Linger (retransmitted, §8.1.1; RFC 6970 §5.1), and an identical
// call meanwhile joins it.
//
// With PreferFailure, a SUCCESS with another external port or address than
// the suggested one (miniupnpd does that) is deleted again and reported as
// *ResultError{Code: pcp.CannotProvideExternal} (§13.2).
func (c *Client) Map(ctx context.Context, r MapRequest) (MapResult, error) {
	return c.do(ctx, kindMap, r, netip.AddrPort{})
}

// Peer creates or extends an outbound mapping toward r.Remote (RFC 6887 §12).
// It is not possible with a NAT-PMP server (ErrNATPMPUnsupported).
func (c *Client) Peer(ctx context.Context, r PeerRequest) (PeerResult, error) {
	if !r.Remote.IsValid() || r.Remote.Port() == 0 || r.Protocol == 0 || r.Internal.Port() == 0 {
		return PeerResult{}, fmt.Errorf("%w: PEER needs protocol, internal port and remote peer", ErrInvalidRequest)
	}
	if r.PreferFailure {
		return PeerResult{}, fmt.Errorf("%w: PREFER_FAILURE is not allowed in PEER (§12.1)", ErrInvalidRequest)
	}
	return c.do(ctx, kindPeer, r.MapRequest, r.Remote)
}

// Delete removes a mapping: a MAP with lifetime 0 and the mapping's nonce
// (§11.2, §15). A zero r.Nonce takes the nonce of the mapping this client
// made for r.Protocol and r.Internal (ErrUnknownMapping if none). An
// answer of NO_RESOURCES counts as done: miniupnpd answers that for a
// mapping it does not have.
func (c *Client) Delete(ctx context.Context, r MapRequest) error {
	r.Lifetime = 0
	r.PreferFailure = false
	r.Filters = nil
	_, err := c.do(ctx, kindMap, r, netip.AddrPort{})
	var re *ResultError
	if errors.As(err, &re) && re.Code == pcp.NoResources && !errors.Is(err, ErrBackoff) {
		return nil
	}
	return err
}

// ExternalAddr returns the provider's external IPv4 address: the last one
// seen in any answer, else it asks. A NAT-PMP server is asked with opcode
// 0. PCP has no such request: RFC 6887 §11.6 says to make a short-lived
// mapping ("to the Discard service (TCP/9 or UDP/9) or some other port")
// and read its external address. The discard port does not do toward a
// CGN: miniupnpd's usual permission rules (allow 1024-65535) refuse
// external ports below 1024, and miniupnpd 2.3.9 then tries every port up
// to 1024, logging each refusal, before it answers (seconds, during which
// it serves no one else). So the probe maps UDP from the client's own
// address and the port of its own socket toward the server (see
// probePort): an ephemeral port, >= 1024, that no other program on this
// host holds, whose inbound datagrams the client drops and counts. The
// mapping lives probeLifetime and is deleted in the background as soon as
// it is answered, even when ctx ended first. A refused probe is not sent again while its error
// lifetime runs, nor within probeHold (ErrBackoff).
func (c *Client) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	c.refreshServers(ctx)
	c.mu.Lock()
	ext, natpmp := c.ext4, c.natpmp
	c.mu.Unlock()
	if ext.IsValid() {
		return ext, nil
	}
	if !natpmp {
		cands := c.candidates(true)
		if len(cands) == 0 {
			return netip.Addr{}, ErrNoServer
		}
		probe := MapRequest{
			Protocol:    17,
			Internal:    netip.AddrPortFrom(cands[0].local, cands[0].probe),
			Lifetime:    probeLifetime,
			Description: "pcpgw external address probe",
		}
		if a4 := c.cfg.WANAddr4; a4.IsValid() && cands[0].local.Is6() {
			// A server reached over IPv6 (DS-Lite's AFTR, a CGN or NAT64
			// on an IPv6 link): a MAP of the IPv6 address the request
			// comes from asks for an IPv6 pinhole. The CPE's own IPv4
			// address (DS-Lite: the softwire's, which the AFTR NATs like
			// the LAN's) with THIRD_PARTY gives the IPv4 external address.
			probe.Internal, probe.ThirdParty = netip.AddrPortFrom(a4, cands[0].probe), true
		}
		res, err := c.doTxn(ctx, kindMap, probe, netip.AddrPort{}, true)
		if err == nil {
			c.mu.Lock()
			ext = c.ext4
			natpmp = c.natpmp
			c.mu.Unlock()
			if a := res.External.Addr(); a.IsValid() && !a.IsUnspecified() {
				return a, nil
			}
			if ext.IsValid() {
				return ext, nil
			}
			if !natpmp {
				return netip.Addr{}, errors.New("pcpclient: the server's answer carried no external address")
			}
		} else {
			c.mu.Lock()
			natpmp = c.natpmp
			var re *ResultError
			if !natpmp && errors.As(err, &re) && !errors.Is(err, ErrBackoff) {
				// Callers asking again at once must not make the server
				// refuse the probe again: hold it at least probeHold.
				if until := c.now().Add(probeHold); re.Until.Before(until) {
					held := *re
					held.Until = until
					c.backoff[c.idOf(kindMap, probe, netip.AddrPort{})] = &held
				}
			}
			c.mu.Unlock()
			if !natpmp {
				return netip.Addr{}, err
			}
		}
	}
	res, err := c.do(ctx, kindAddr, MapRequest{}, netip.AddrPort{})
	if err != nil {
		return netip.Addr{}, err
	}
	return res.External.Addr(), nil
}

// Probe asks the server whether it answers, and in which protocol: a PCP
// ANNOUNCE request (RFC 6887 §14.1; it creates nothing at the server), or
// with NAT-PMP an external address request (RFC 6886 §3.2). It returns
// "pcp" or "natpmp" when the server answered, ErrNATPMPOnly with
// ProtocolPCP when the server turned out to speak only NAT-PMP (it
// answered UNSUPP_VERSION, then a NAT-PMP request of the client's own,
// then not the ANNOUNCE sent again after that: about one IRT more), else
// the error (ErrTimeout when ctx ended first, ErrNoServer). With
// ProtocolAuto the client falls back to NAT-PMP on the way (on the same
// evidence) and Probe says "natpmp".
func (c *Client) Probe(ctx context.Context) (string, error) {
	c.refreshServers(ctx)
	c.mu.Lock()
	natpmp := c.natpmp
	c.mu.Unlock()
	kind := kindAnnounce
	if natpmp {
		kind = kindAddr
	}
	_, err := c.do(ctx, kind, MapRequest{}, netip.AddrPort{})
	c.mu.Lock()
	natpmp = c.natpmp
	c.mu.Unlock()
	switch {
	case err != nil:
		return "", err
	case natpmp:
		return "natpmp", nil
	}
	return "pcp", nil
}

// probePort returns the internal port of the external-address probe for a
// server reached through pc: pc's own local port (ephemeral, so >= 1024),
// else (a socket without one, as in tests) a random port of the dynamic
// range 49152-65535 (RFC 6335). It is fixed for the socket's life, so the
// error lifetime of a refusal applies to the next probe too.
func (c *Client) probePort(pc packetConn) uint16 {
	if lp, ok := pc.(interface{ localPort() uint16 }); ok {
		if p := lp.localPort(); p >= 1024 {
			return p
		}
	}
	return 49152 + uint16(c.rand()*16384)
}

func (c *Client) idOf(kind txnKind, r MapRequest, remote netip.AddrPort) reqID {
	return reqID{
		kind:          kind,
		proto:         r.Protocol,
		internal:      r.Internal,
		external:      r.SuggestedExternal,
		remote:        remote,
		del:           r.Lifetime == 0 && kind != kindAddr && kind != kindAnnounce,
		preferFailure: r.PreferFailure,
		thirdParty:    r.ThirdParty,
		filters:       filtersKey(r.Filters),
	}
}

// do runs one request through a transaction and waits for it.
func (c *Client) do(ctx context.Context, kind txnKind, r MapRequest, remote netip.AddrPort) (MapResult, error) {
	return c.doTxn(ctx, kind, r, remote, false)
}

// doTxn is do; addrProbe marks ExternalAddr's probe, whose mapping is
// given back as soon as it is answered (completeMapLocked).
func (c *Client) doTxn(ctx context.Context, kind txnKind, r MapRequest, remote netip.AddrPort, addrProbe bool) (MapResult, error) {
	c.refreshServers(ctx)
	v4 := !r.Internal.Addr().IsValid() || r.Internal.Addr().Unmap().Is4()
	cands := c.candidates(v4)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return MapResult{}, ErrClosed
	}
	if len(cands) == 0 {
		c.mu.Unlock()
		return MapResult{}, ErrNoServer
	}
	if kind == kindMap || kind == kindPeer {
		if a := r.Internal.Addr(); !a.IsValid() || a.IsUnspecified() {
			r.Internal = netip.AddrPortFrom(cands[0].local, r.Internal.Port())
		} else {
			r.Internal = netip.AddrPortFrom(a.Unmap(), r.Internal.Port())
		}
		if r.Lifetime == 0 && r.Nonce == (pcp.Nonce{}) {
			k, ok := c.known[mapKey{r.Protocol, r.Internal}]
			if !ok {
				c.mu.Unlock()
				return MapResult{}, ErrUnknownMapping
			}
			r.Nonce = k.res.Nonce
		}
	}
	id := c.idOf(kind, r, remote)
	if re := c.backoff[id]; re != nil {
		if c.now().Before(re.Until) {
			c.mu.Unlock()
			return MapResult{}, fmt.Errorf("%w: %w", ErrBackoff, re)
		}
		delete(c.backoff, id)
	}
	if kind == kindMap || kind == kindPeer {
		// Check the size once; every address gets the same length.
		if n := len(c.buildPCP(kind, r, remote, cands[0].local)); n > pcp.MaxSize {
			c.mu.Unlock()
			return MapResult{}, fmt.Errorf("%w (%d octets)", ErrTooLarge, n)
		}
	}
	jk := joinKey{id: id, nonce: r.Nonce, lifetime: r.Lifetime, desc: r.Description}
	t := c.joins[jk]
	if t == nil || t.finished || t.stopped {
		t = c.startLocked(kind, r, remote, id)
	}
	t.addrProbe = t.addrProbe || addrProbe
	t.waiters++
	c.mu.Unlock()

	select {
	case <-t.done:
		c.release(t)
	case <-ctx.Done():
		c.release(t)
		select {
		case <-t.done: // answered meanwhile
		default:
			return MapResult{}, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
		}
	}
	res, err := t.res, t.err
	if err == nil && kind == kindMap && r.Lifetime > 0 && !res.External.Addr().IsValid() {
		// NAT-PMP map responses carry no address (RFC 6886 §3.3).
		a, aerr := c.ExternalAddr(ctx)
		if aerr == nil {
			res.External = netip.AddrPortFrom(a, res.External.Port())
		}
	}
	return res, err
}

// startLocked makes and starts a transaction; c.mu is held.
func (c *Client) startLocked(kind txnKind, r MapRequest, remote netip.AddrPort, id reqID) *txn {
	jk := joinKey{id: id, nonce: r.Nonce, lifetime: r.Lifetime, desc: r.Description}
	if (kind == kindMap || kind == kindPeer) && r.Nonce == (pcp.Nonce{}) {
		r.Nonce = newNonce()
	}
	if kind == kindMap && r.Lifetime == 0 {
		c.supersedeLocked(r)
	}
	t := &txn{
		kind:    kind,
		req:     r,
		remote:  remote,
		id:      id,
		jk:      jk,
		done:    make(chan struct{}),
		stop:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		sentTo:  make(map[netip.AddrPort]bool),
		givenUp: make(map[netip.AddrPort]bool),
	}
	c.joins[jk] = t
	c.wg.Add(1)
	go c.run(t)
	return t
}

// supersedeLocked ends, for the delete del, the requests that would make
// its mapping (same protocol, internal endpoint and nonce) still in
// flight, those no caller waits for any more too (they linger, see
// Config.Linger): retransmitted after the delete, such a request would
// make the mapping again at the server, and the owner, who deleted it,
// would not renew or delete it again (an orphan for its lifetime, holding
// the internal port against a new mapping's nonce). Their callers get
// ErrSuperseded, and an answer of theirs that comes late is not the
// delete's (see handlePCP). The dispatch keys do the same when the
// delete is first sent (send), but another transaction's goroutine may
// send after it: here the order of the calls decides. c.mu is held.
func (c *Client) supersedeLocked(del MapRequest) {
	for _, t := range c.joins {
		if t.kind == kindMap && !t.finished && t.req.Lifetime > 0 && t.req.Protocol == del.Protocol &&
			t.req.Internal == del.Internal && t.req.Nonce == del.Nonce {
			c.finishLocked(t, MapResult{}, ErrSuperseded)
		}
	}
}

// release is called by a caller that stops waiting for t.
func (c *Client) release(t *txn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t.waiters--
	c.armLingerLocked(t)
}

// startBackgroundLocked starts a transaction no caller waits for (the
// delete after a PREFER_FAILURE mismatch or an address probe); it lingers.
func (c *Client) startBackgroundLocked(kind txnKind, r MapRequest) {
	t := c.startLocked(kind, r, netip.AddrPort{}, c.idOf(kind, r, netip.AddrPort{}))
	c.armLingerLocked(t)
}

// startProbeLocked starts a transaction of the client's own that no
// caller waits for (the request after an announcement, the NAT-PMP check
// before a fallback): it is retransmitted for probeWindow, then dropped.
func (c *Client) startProbeLocked(kind txnKind) *txn {
	r := MapRequest{}
	id := c.idOf(kind, r, netip.AddrPort{})
	if t := c.joins[joinKey{id: id}]; t != nil && !t.finished && !t.stopped {
		return t
	}
	t := c.startLocked(kind, r, netip.AddrPort{}, id)
	time.AfterFunc(probeWindow, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.waiters == 0 && !t.finished && !t.stopped {
			t.stopped = true
			close(t.stop)
		}
	})
	return t
}

// armLingerLocked stops t after Config.Linger unless a caller waits for it
// again by then; c.mu is held.
func (c *Client) armLingerLocked(t *txn) {
	if t.waiters > 0 || t.finished || t.stopped {
		return
	}
	if c.linger < 0 {
		t.stopped = true
		close(t.stop)
		return
	}
	time.AfterFunc(c.linger, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.waiters == 0 && !t.finished && !t.stopped {
			t.stopped = true
			close(t.stop)
		}
	})
}

// finishLocked ends t with a result; c.mu is held.
func (c *Client) finishLocked(t *txn, res MapResult, err error) {
	if t.finished {
		return
	}
	t.finished = true
	t.res, t.err = res, err
	for _, k := range t.keys {
		if c.txns[k] == t {
			delete(c.txns, k)
		}
	}
	if c.joins[t.jk] == t {
		delete(c.joins, t.jk)
	}
	close(t.done)
}

func (c *Client) finish(t *txn, res MapResult, err error) {
	c.mu.Lock()
	c.finishLocked(t, res, err)
	c.mu.Unlock()
}

// run sends t and retransmits it (RFC 6887 §8.1.1) until it is answered,
// abandoned or the client closes. With several server addresses each gets
// MRC=4 transmissions in RFC 7488 order, with the same nonce; after the
// last, the round starts again 15 minutes after the previous one began.
func (c *Client) run(t *txn) {
	defer c.wg.Done()
	v4 := t.kind == kindAddr || t.kind == kindAnnounce || t.req.Internal.Addr().Is4()
round:
	for {
		cycleStart := time.Now()
		cands := c.candidates(v4)
		if len(cands) == 0 {
			c.finish(t, MapResult{}, ErrNoServer)
			return
		}
		mrc := 0
		if len(cands) > 1 {
			mrc = multiAddrMRC
		}
		c.mu.Lock()
		clear(t.givenUp)
		c.mu.Unlock()
		for _, s := range cands {
			var rt time.Duration
			for n := 0; mrc == 0 || n < mrc; n++ {
				if err := c.send(t, s); err != nil {
					var re *ResultError
					if errors.As(err, &re) || errors.Is(err, ErrNATPMPThirdParty) || errors.Is(err, ErrNATPMPUnsupported) {
						c.finish(t, MapResult{}, err)
						return
					}
					c.mu.Lock()
					c.st.SendErrors++
					c.st.LastError = err.Error()
					stale := !slices.Contains(c.servers, s)
					c.mu.Unlock()
					if stale && c.ctx.Err() == nil {
						// The server addresses changed under us (its socket
						// is closed): start over with the new ones.
						continue round
					}
					if len(cands) > 1 && unreachable(err) {
						c.log.Debug("send failed, next address", "server", s.addr, "err", err)
						break // a hard error: next address (RFC 7488 §3 step 4)
					}
					// Anything else (EPERM from a netfilter drop, ENOBUFS, a
					// route that is coming back) is a lost transmission: the
					// §8.1.1 schedule goes on, and an answer to an earlier
					// transmission is still taken.
					c.log.Debug("send failed, will retransmit", "server", s.addr, "err", err)
				}
				rt = nextRT(rt, c.irt, c.mrt, c.rand())
				timer := time.NewTimer(rt)
				select {
				case <-t.done:
					timer.Stop()
					return
				case <-t.stop:
					timer.Stop()
					c.finish(t, MapResult{}, ErrTimeout)
					return
				case <-c.ctx.Done():
					timer.Stop()
					c.finish(t, MapResult{}, ErrClosed)
					return
				case <-t.wake:
					timer.Stop()
					rt = 0
					n--
					continue
				case <-timer.C:
				}
				c.mu.Lock()
				if c.natpmpTimeoutLocked(t, s, c.now()) {
					// Fallen back: t goes on in NAT-PMP, from IRT.
					rt = 0
					c.mu.Unlock()
					continue
				}
				t.timeouts++
				if t.timeouts == unreachableAfter {
					c.markUnreachableLocked(s.addr)
				}
				c.mu.Unlock()
			}
			c.mu.Lock()
			t.givenUp[s.addr] = true
			if c.preferred == s.addr {
				c.preferred = netip.AddrPort{} // unresponsive (RFC 7488 §3 step 6)
			}
			c.mu.Unlock()
		}
		wait := time.Until(cycleStart.Add(cycleRepeat))
		if wait <= 0 {
			continue
		}
		timer := time.NewTimer(wait)
		select {
		case <-t.done:
			timer.Stop()
			return
		case <-t.stop:
			timer.Stop()
			c.finish(t, MapResult{}, ErrTimeout)
			return
		case <-c.ctx.Done():
			timer.Stop()
			c.finish(t, MapResult{}, ErrClosed)
			return
		case <-timer.C:
		}
	}
}

// unreachable reports a send error that says the address cannot be
// reached at all from here (no route, address gone), as opposed to a
// datagram the local stack dropped.
func unreachable(err error) bool {
	return errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT)
}

func (c *Client) markUnreachableLocked(server netip.AddrPort) {
	if c.unreachable {
		return
	}
	c.unreachable = true
	c.st.LastError = "no answer from " + server.String()
	c.emit(Event{Kind: EventUnreachable, Server: server})
}

// buildPCP makes the PCP request of a MAP or PEER transaction for a server
// address whose source address is local (RFC 6887 §8.1, §11.1, §12.1, §13).
func (c *Client) buildPCP(kind txnKind, r MapRequest, remote netip.AddrPort, local netip.Addr) []byte {
	req := pcp.Request{Version: pcp.Version, Opcode: pcp.OpMap, Lifetime: r.Lifetime, Client: local}
	m := pcp.Map{
		Nonce:        r.Nonce,
		Protocol:     r.Protocol,
		InternalPort: r.Internal.Port(),
		ExternalPort: r.SuggestedExternal.Port(),
		ExternalAddr: r.SuggestedExternal.Addr(),
	}
	if !m.ExternalAddr.IsValid() {
		// The address-family-specific all-zeros address (§11.1).
		m.ExternalAddr = netip.IPv4Unspecified()
		if r.Internal.Addr().Is6() {
			m.ExternalAddr = netip.IPv6Unspecified()
		}
	}
	if kind == kindPeer {
		req.Opcode = pcp.OpPeer
		req.Peer = &pcp.Peer{Map: m, RemotePort: remote.Port(), RemoteAddr: remote.Addr().Unmap()}
	} else {
		req.Map = &m
	}
	if r.ThirdParty {
		req.Options = append(req.Options, pcp.Option{Code: pcp.OptThirdParty, ThirdParty: r.Internal.Addr()})
	}
	if r.Prefix64 && r.Lifetime > 0 {
		// RFC 7225 §4.3: a request carries ::/96.
		req.Options = append(req.Options, pcp.Option{Code: pcp.OptPrefix64, Prefix64: pcp.Prefix64{Prefix: netip.PrefixFrom(netip.IPv6Unspecified(), 96)}})
	}
	if r.PreferFailure && kind == kindMap && r.Lifetime > 0 {
		req.Options = append(req.Options, pcp.Option{Code: pcp.OptPreferFailure})
	}
	if r.Lifetime > 0 {
		for _, f := range r.Filters {
			req.Options = append(req.Options, pcp.Option{Code: pcp.OptFilter, Filter: f})
		}
	}
	if r.Description != "" {
		req.Options = append(req.Options, pcp.Option{Code: pcp.OptDescription, Description: padDescription(r.Description)})
	}
	return req.AppendMarshal(make([]byte, 0, 128))
}

// natpmpOp maps an IP protocol to the NAT-PMP opcode (RFC 6886 §3.3).
func natpmpOp(proto uint8) (uint8, bool) {
	switch proto {
	case 17:
		return pcp.NATPMPOpMapUDP, true
	case 6:
		return pcp.NATPMPOpMapTCP, true
	}
	return 0, false
}

// send transmits t to s, in PCP or, after fallback, NAT-PMP form, and
// registers the keys its answer will be found by.
func (c *Client) send(t *txn, s *server) error {
	c.mu.Lock()
	if t.finished {
		c.mu.Unlock()
		return nil
	}
	var pkt []byte
	var key dispatchKey
	if t.kind == kindAddr {
		pkt = (&pcp.NATPMPRequest{Opcode: pcp.NATPMPOpExternalAddr}).AppendMarshal(nil)
		key = dispatchKey{natpmp: true, op: pcp.NATPMPOpExternalAddr}
	} else if t.kind == kindAnnounce {
		if c.natpmp {
			c.mu.Unlock()
			return ErrNATPMPUnsupported
		}
		pkt = (&pcp.Request{Version: pcp.Version, Opcode: pcp.OpAnnounce, Client: s.local}).AppendMarshal(nil)
		key = dispatchKey{op: uint8(pcp.OpAnnounce)}
	} else if c.natpmp {
		switch {
		case t.kind == kindPeer || len(t.req.Filters) > 0 || (t.kind == kindMap && t.req.Internal.Addr().Is6()):
			c.mu.Unlock()
			return ErrNATPMPUnsupported
		case t.kind == kindMap && (t.req.ThirdParty || t.req.Internal.Addr() != s.local):
			c.mu.Unlock()
			return ErrNATPMPThirdParty
		default:
			op, ok := natpmpOp(t.req.Protocol)
			if !ok {
				c.mu.Unlock()
				return ErrNATPMPUnsupported
			}
			ext := t.req.SuggestedExternal.Port()
			if t.req.Lifetime == 0 {
				ext = 0 // RFC 6886 §3.4
			}
			pkt = (&pcp.NATPMPRequest{Opcode: op, InternalPort: t.req.Internal.Port(), SuggestedExternalPort: ext, Lifetime: t.req.Lifetime}).AppendMarshal(nil)
			key = dispatchKey{natpmp: true, op: op, port: t.req.Internal.Port()}
		}
	} else {
		pkt = c.buildPCP(t.kind, t.req, t.remote, s.local)
		op := uint8(pcp.OpMap)
		if t.kind == kindPeer {
			op = uint8(pcp.OpPeer)
		}
		key = dispatchKey{op: op, proto: t.req.Protocol, port: t.req.Internal.Port(), nonce: t.req.Nonce}
	}
	if old := c.txns[key]; old != nil && old != t {
		c.finishLocked(old, MapResult{}, ErrSuperseded)
	}
	c.txns[key] = t
	if !slices.Contains(t.keys, key) {
		t.keys = append(t.keys, key)
	}
	t.sentTo[s.addr] = true
	t.afterConfirm = !key.natpmp && s.natpmpConfirmed
	c.st.Sent++
	c.mu.Unlock()
	_, err := s.conn.WriteTo(pkt, s.addr)
	return err
}

// padDescription pads a DESCRIPTION (RFC 7220) with spaces to a multiple of
// 4 octets. RFC 6887 §7.3 pads options on the wire anyway, but miniupnpd
// 2.3.9 does not skip that padding and answers MALFORMED_OPTION to any
// option whose length is not a multiple of 4 (seen in the lab).
func padDescription(s string) string {
	for len(s)%4 != 0 {
		s += " "
	}
	return s
}

// ReleaseAll deletes every mapping this client made and still knows (the
// upstream is being replaced: what it holds would otherwise stay there
// until its lifetime ends), with their nonces, at most 8 at a time,
// within ctx. It returns the first error.
func (c *Client) ReleaseAll(ctx context.Context) error {
	c.mu.Lock()
	reqs := make([]MapRequest, 0, len(c.known))
	for _, k := range c.known {
		r := k.req
		r.Nonce = k.res.Nonce
		reqs = append(reqs, r)
	}
	c.mu.Unlock()
	sem := make(chan struct{}, 8)
	errs := make(chan error, len(reqs))
	for _, r := range reqs {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- c.Delete(ctx, r)
		}()
	}
	var first error
	for range reqs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
